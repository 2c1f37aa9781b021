//! The few admin API calls the harness makes (docs/openapi.yaml): create
//! the users and the package a scenario needs, and list live sessions.
//!
//! Bearer-authenticated JSON over HTTP/1.1 to the proxy's admin listener
//! (loopback only). Errors are strings for the report, never a panic.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use url::Url;

/// Largest admin answer read (a session list of 10,000 viewers is ~2 MB).
const ANSWER_LIMIT: usize = 64 << 20;

/// One live session as `GET /api/v1/sessions` lists it (fields the harness
/// uses).
#[derive(Debug, Clone, Deserialize)]
pub struct SessionInfo {
    /// Session id.
    pub id: String,
    /// The user, `None` for anonymous viewers.
    pub user: Option<String>,
    /// Channel name.
    pub channel: String,
}

#[derive(Deserialize)]
struct SessionList {
    sessions: Vec<SessionInfo>,
}

/// A client of one proxy's admin API.
#[derive(Clone)]
pub struct AdminClient {
    base: Url,
    token: String,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("base", &self.base.as_str())
            .field("token", &"MASKED")
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    /// A client for the admin listener at `base` (`http://127.0.0.1:9090/`).
    pub fn new(base: Url, token: String, timeout: Duration) -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self {
            base,
            token,
            client,
            timeout,
        }
    }

    /// `PUT /api/v1/packages/{name}` with these channel patterns.
    pub async fn put_package(&self, name: &str, channels: &[String]) -> Result<(), String> {
        let body = serde_json::json!({ "channels": channels });
        self.call(
            http::Method::PUT,
            &format!("api/v1/packages/{name}"),
            Some(body),
        )
        .await
        .map(drop)
    }

    /// `PUT /api/v1/users/{id}`: a user with `max_sessions` and `packages`.
    pub async fn put_user(
        &self,
        id: &str,
        max_sessions: u64,
        packages: &[&str],
    ) -> Result<(), String> {
        let body = serde_json::json!({ "max_sessions": max_sessions, "packages": packages });
        self.call(http::Method::PUT, &format!("api/v1/users/{id}"), Some(body))
            .await
            .map(drop)
    }

    /// `GET /api/v1/sessions`: every live session of the edge.
    pub async fn sessions(&self) -> Result<Vec<SessionInfo>, String> {
        let body = self
            .call(http::Method::GET, "api/v1/sessions", None)
            .await?;
        let list: SessionList =
            serde_json::from_slice(&body).map_err(|e| format!("session list: {e}"))?;
        Ok(list.sessions)
    }

    async fn call(
        &self,
        method: http::Method,
        path: &str,
        json: Option<serde_json::Value>,
    ) -> Result<Bytes, String> {
        let url = self.base.join(path).map_err(|e| format!("{path}: {e}"))?;
        let body = json.map(|v| Bytes::from(v.to_string())).unwrap_or_default();
        let req = http::Request::builder()
            .method(method.clone())
            .uri(url.as_str())
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| format!("{path}: {e}"))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("{method} {path}: {e}"))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), ANSWER_LIMIT)
                .collect()
                .await
                .map_err(|e| format!("{method} {path}: body: {e}"))?
                .to_bytes();
            if !status.is_success() {
                let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                return Err(format!("{method} {path}: HTTP {status}: {text}"));
            }
            Ok(body)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(format!("{method} {path}: timeout")))
    }
}
