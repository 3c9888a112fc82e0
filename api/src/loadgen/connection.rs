//! One keep-alive HTTP/1.1 connection of the load generator, straight on hyper's client
//! connection (no pool, no URL parsing per request): the request paths and bodies are built once
//! and cheaply cloned, so that the generator spends as little as possible of the CPU it shares
//! with the API and Postgres.

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A request failed before a whole answer came back.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The TCP connection could not be opened.
    #[error("failed to connect to {addr}")]
    Connect {
        /// The API's address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed (handshake, request, or reading the answer).
    #[error("http error")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("invalid request")]
    Request(#[from] http::Error),
}

/// Where requests go: the API's socket address and the `Host` header naming it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The API's socket address.
    pub addr: SocketAddr,
    /// The `Host` header of every request.
    pub host: HeaderValue,
}

/// One open connection; one request in flight at a time.
#[derive(Debug)]
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

static JSON: HeaderValue = HeaderValue::from_static("application/json");

impl Connection {
    /// Opens a connection (no Nagle delay) and drives it on a task of the current runtime.
    pub async fn open(target: &Target) -> Result<Self, ConnectionError> {
        let connect_error = |source| ConnectionError::Connect {
            addr: target.addr,
            source,
        };
        let stream = TcpStream::connect(target.addr)
            .await
            .map_err(connect_error)?;
        stream.set_nodelay(true).map_err(connect_error)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // NB: its error also fails the request in flight, which reports it.
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            host: target.host.clone(),
        })
    }

    /// Whether the server closed the connection (a new one is then needed).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends a request (a JSON body when `body` is given) and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        uri: Uri,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), ConnectionError> {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(HOST, self.host.clone());
        if body.is_some() {
            request = request.header(CONTENT_TYPE, JSON.clone());
        }
        let request = request.body(Full::new(body.unwrap_or_default()))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}
