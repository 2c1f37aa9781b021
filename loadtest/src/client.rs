//! The harness's HTTP client: GET with a deadline and a body limit, and
//! failures named the way the report counts them (HTTP status plus
//! tollgate's `{"error":"<code>"}` code, or the transport step that failed).
//!
//! One [`HttpClient`] per virtual player (its own keep-alive connection,
//! optionally from its own loopback source address, like a real viewer);
//! cheap to clone. Must not retry: players decide that.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use url::Url;

/// Largest error body read to find tollgate's error code.
const ERROR_BODY_LIMIT: usize = 4 << 10;

/// Why a GET failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// A non-2xx answer, with tollgate's `error` code when the body had one.
    Status(u16, Option<String>),
    /// No complete answer within the deadline.
    Timeout,
    /// Connecting or sending failed.
    Connect,
    /// The body broke off or exceeded the limit.
    Body,
    /// The URL cannot be requested (not http, unparsable).
    BadUrl,
}

impl FetchError {
    /// The cause as the report shows it.
    pub fn cause(&self) -> String {
        match self {
            FetchError::Status(s, Some(code)) => format!("HTTP {s} {code}"),
            FetchError::Status(s, None) => format!("HTTP {s}"),
            FetchError::Timeout => "transport: timeout".to_owned(),
            FetchError::Connect => "transport: connect/send".to_owned(),
            FetchError::Body => "transport: body".to_owned(),
            FetchError::BadUrl => "bad URL".to_owned(),
        }
    }
}

/// A pooled HTTP/1.1 client with a per-request deadline.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

impl HttpClient {
    /// A client whose connections leave from `source` (any port) when
    /// given, each request bounded by `timeout` (head and whole body).
    pub fn new(source: Option<IpAddr>, timeout: Duration, max_idle: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_local_address(source);
        connector.set_connect_timeout(Some(timeout));
        let inner = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(max_idle)
            .build(connector);
        Self { inner, timeout }
    }

    /// GET `url`, reading at most `limit` body bytes.
    pub async fn get(&self, url: &Url, limit: usize) -> Result<Bytes, FetchError> {
        let req = self.request(url, None)?;
        self.send(req, limit).await
    }

    /// A GET request for `url` with an optional bearer token.
    pub fn request(
        &self,
        url: &Url,
        bearer: Option<&str>,
    ) -> Result<http::Request<Empty<Bytes>>, FetchError> {
        let uri: hyper::Uri = url.as_str().parse().map_err(|_| FetchError::BadUrl)?;
        let mut req = http::Request::get(uri);
        if let Some(token) = bearer {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        req.body(Empty::new()).map_err(|_| FetchError::BadUrl)
    }

    /// Sends `req` and reads a 2xx body of at most `limit` bytes.
    pub async fn send(
        &self,
        req: http::Request<Empty<Bytes>>,
        limit: usize,
    ) -> Result<Bytes, FetchError> {
        let exchange = async {
            let resp = self
                .inner
                .request(req)
                .await
                .map_err(|_| FetchError::Connect)?;
            let status = resp.status();
            if !status.is_success() {
                let body = Limited::new(resp.into_body(), ERROR_BODY_LIMIT)
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                return Err(FetchError::Status(status.as_u16(), error_code(&body)));
            }
            Limited::new(resp.into_body(), limit)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .map_err(|_| FetchError::Body)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(FetchError::Timeout))
    }
}

/// tollgate's error code from a `{"error":"<code>"}` body; codes are short
/// identifiers, anything else is not trusted into the report.
fn error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    let code = parsed.error;
    (!code.is_empty()
        && code.len() <= 40
        && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    .then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_only_when_they_look_like_codes() {
        assert_eq!(
            error_code(br#"{"error":"session_evicted"}"#).as_deref(),
            Some("session_evicted")
        );
        assert_eq!(error_code(b"not json"), None);
        assert_eq!(error_code(br#"{"error":"<script>"}"#), None);
        assert_eq!(
            FetchError::Status(403, Some("forbidden".into())).cause(),
            "HTTP 403 forbidden"
        );
        assert_eq!(FetchError::Status(404, None).cause(), "HTTP 404");
    }
}
