//! The two HTTP calls the benchmark makes (a ClickHouse query, a metrics page), over plain
//! HTTP/1.0 on a fresh connection: no client library, nothing kept between calls.

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `http://host:port/path` → (`host:port`, `path` without its leading slash).
fn split_url(url: &str) -> Result<(&str, &str)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// URLs are supported"))?;
    Ok(rest.split_once('/').unwrap_or((rest, "")))
}

/// Sends `method` `url` with `body`; returns the response body, failing on a non-200 status.
pub async fn call(method: &str, url: &str, body: &str) -> Result<String> {
    let (host, path) = split_url(url)?;
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .with_context(|| format!("connect to {host}"))?;
    let request = format!(
        "{method} /{path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!(
            "{url} answered {}: {body}",
            head.lines().next().unwrap_or("")
        );
    }
    Ok(body.to_owned())
}

/// Runs `query` on ClickHouse database `database`; returns the body.
pub async fn clickhouse(url: &str, database: &str, query: &str) -> Result<String> {
    let url = format!("{}/?database={database}", url.trim_end_matches('/'));
    call("POST", &url, query).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:9465/metrics").unwrap(),
            ("127.0.0.1:9465", "metrics")
        );
        assert_eq!(split_url("http://h:1").unwrap(), ("h:1", ""));
        assert!(split_url("https://h").is_err());
    }
}
