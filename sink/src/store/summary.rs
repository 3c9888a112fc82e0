//! Statements whose answer is how many rows they wrote: an `INSERT ... SELECT` answers with no rows,
//! and ClickHouse reports what it wrote only in the `X-ClickHouse-Summary` response header, which the
//! `clickhouse` crate does not expose. So these statements go over plain HTTP here, with the same
//! endpoint, database, credentials and settings as the crate's client (the sink speaks HTTP, not
//! HTTPS, to ClickHouse, like the crate without a TLS feature).
//!
//! `wait_end_of_query=1` makes the server answer only when the statement is done, so the summary
//! counts every row and a failure is a failed status with ClickHouse's `Code: N. DB::Exception`
//! text, which [`super::exception_code`] reads as it reads the crate's errors.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::StoreConfig;

/// A client for statements that report the rows they wrote.
#[derive(Clone, Debug)]
pub struct SummaryClient {
    http: Client<HttpConnector, Full<Bytes>>,
    /// The endpoint with the database and settings as query parameters.
    uri: String,
    /// The credentials' headers, the password's marked sensitive (`Debug` does not show it).
    credentials: Vec<(&'static str, HeaderValue)>,
}

impl SummaryClient {
    /// A client for `config`, sending `settings` with every statement.
    pub fn new(config: &StoreConfig, settings: &[(&str, &str)]) -> Self {
        let parameters: Vec<String> = [("database", config.database.as_str())]
            .iter()
            .chain(settings)
            .chain(&[("wait_end_of_query", "1")])
            .map(|(name, value)| format!("{}={}", percent_encoded(name), percent_encoded(value)))
            .collect();
        SummaryClient {
            http: Client::builder(TokioExecutor::new()).build_http(),
            uri: format!("{}{}", endpoint(&config.url), parameters.join("&")),
            credentials: credentials(config),
        }
    }

    /// Runs `sql` and returns the rows it wrote.
    pub async fn written_rows(&self, sql: &str) -> Result<u64, clickhouse::error::Error> {
        use clickhouse::error::Error;
        let mut request = Request::post(&self.uri).header(CONTENT_TYPE, "text/plain");
        for (name, value) in &self.credentials {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(sql.as_bytes())))
            .map_err(|error| Error::InvalidParams(Box::new(error)))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|error| Error::Network(Box::new(error)))?;
        let status = response.status();
        let failed = !status.is_success() || response.headers().contains_key(EXCEPTION_CODE);
        let summary = response
            .headers()
            .get("X-ClickHouse-Summary")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| Error::Network(Box::new(error)))?
            .to_bytes();
        if failed {
            let text = String::from_utf8_lossy(&body).trim().to_owned();
            return Err(Error::BadResponse(if text.is_empty() {
                format!("{status}")
            } else {
                text
            }));
        }
        let summary = summary.ok_or_else(|| {
            Error::BadResponse("the answer has no X-ClickHouse-Summary header".to_owned())
        })?;
        written_rows(&summary).ok_or_else(|| {
            Error::BadResponse(format!(
                "X-ClickHouse-Summary has no written_rows: {summary}"
            ))
        })
    }
}

/// The headers the `clickhouse` crate sends a user and a password in. A value a header cannot hold
/// is left out (the crate's own client then fails the same way on its statements).
fn credentials(config: &StoreConfig) -> Vec<(&'static str, HeaderValue)> {
    let user = config
        .user
        .as_deref()
        .map(|user| ("X-ClickHouse-User", user));
    let key = config
        .password
        .as_deref()
        .map(|key| ("X-ClickHouse-Key", key));
    user.into_iter()
        .chain(key)
        .filter_map(|(name, text)| {
            let mut value = HeaderValue::from_str(text).ok()?;
            value.set_sensitive(name == "X-ClickHouse-Key");
            Some((name, value))
        })
        .collect()
}

/// `url` ready for query parameters: with a path (`/` when it has none) and a `?` or `&` at the end.
fn endpoint(url: &str) -> String {
    if url.contains('?') {
        return format!("{url}&");
    }
    let has_path = url
        .split_once("://")
        .is_some_and(|(_, rest)| rest.contains('/'));
    if has_path {
        format!("{url}?")
    } else {
        format!("{url}/?")
    }
}

const EXCEPTION_CODE: &str = "X-ClickHouse-Exception-Code";

/// `written_rows` of a summary header, `{"read_rows":"0",...,"written_rows":"12",...}` (ClickHouse
/// writes the numbers as strings).
fn written_rows(summary: &str) -> Option<u64> {
    let fields: serde_json::Map<String, serde_json::Value> = serde_json::from_str(summary).ok()?;
    match fields.get("written_rows")? {
        serde_json::Value::String(text) => text.parse().ok(),
        serde_json::Value::Number(number) => number.as_u64(),
        _ => None,
    }
}

/// `text` with every byte but the unreserved ones of RFC 3986 percent-encoded.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_written_rows_as_clickhouse_writes_them() {
        let header =
            r#"{"read_rows":"5","read_bytes":"40","written_rows":"12","written_bytes":"96"}"#;
        assert_eq!(written_rows(header), Some(12));
        assert_eq!(written_rows(r#"{"written_rows":3}"#), Some(3));
        assert_eq!(written_rows(r#"{"read_rows":"5"}"#), None);
        assert_eq!(written_rows("not json"), None);
    }

    #[test]
    fn the_uri_carries_database_settings_and_the_wait() {
        let config = StoreConfig {
            url: "http://ch:8123".into(),
            database: "shop star".into(),
            user: None,
            password: None,
        };
        let client = SummaryClient::new(&config, &[("insert_quorum", "auto")]);
        assert_eq!(
            client.uri,
            "http://ch:8123/?database=shop%20star&insert_quorum=auto&wait_end_of_query=1"
        );
        assert_eq!(endpoint("http://ch:8123/ch"), "http://ch:8123/ch?");
        let with_password = StoreConfig {
            password: Some("hunter2".into()),
            ..config
        };
        let client = SummaryClient::new(&with_password, &[]);
        assert!(!format!("{client:?}").contains("hunter2"));
        assert_eq!(
            endpoint("http://ch:8123/?user=a"),
            "http://ch:8123/?user=a&"
        );
    }
}
