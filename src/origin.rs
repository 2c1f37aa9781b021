//! Origins: one pooled hyper-util client per `[[origin]]`, with connect,
//! first-byte and idle-body timeouts and a total deadline, and the mapping
//! of transport failures to [`ProxyError`] (unreachable → 502, timeout → 504).
//!
//! [`Origin::send`] is the one way any request reaches an origin (playlists,
//! encrypted-segment fills, clear and passthrough resources): every fetch
//! gets the same timers, and its time to the response head is recorded in
//! `tollgate_origin_duration_seconds`. Its body is an [`OriginBody`], which
//! fails once `total_timeout` has passed since the request was sent, so
//! neither a slow head nor a trickling body holds a fetch (and an origin
//! connection) for longer than that.
//!
//! Clients are kept across reloads when an origin's settings did not change,
//! so a SIGHUP does not throw away warm keep-alive connections.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use crate::body::{Deadline, IdleTimeout};
use crate::config::OriginConfig;
use crate::error::ProxyError;
use crate::metrics::{HistogramFamily, OriginLabel};

/// The body of every origin response: the idle timeout between frames and
/// the fetch's total deadline, both ending it with an error (never a clean
/// short end).
pub type OriginBody = Deadline<IdleTimeout<Incoming>>;

/// Where origin fetch times are recorded (`tollgate_origin_duration_seconds`).
pub type OriginTimings = HistogramFamily<OriginLabel>;

/// A configured origin and its connection pool. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Origin {
    config: OriginConfig,
    /// Origin base path without a trailing slash (`""` for the root).
    base_path: String,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Origin {
    /// Build the client and pool for `config`.
    pub fn new(config: OriginConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(60)));
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        let base_path = config.url.path().trim_end_matches('/').to_owned();
        Self {
            config,
            base_path,
            client,
        }
    }

    /// Reuse `previous` when its settings equal `config` (keeps the warm pool).
    pub fn reuse_or_new(config: &OriginConfig, previous: &[Arc<Origin>]) -> Arc<Origin> {
        previous
            .iter()
            .find(|o| o.config == *config)
            .cloned()
            .unwrap_or_else(|| Arc::new(Origin::new(config.clone())))
    }

    /// The origin URL's base path without a trailing slash (`""` for the root).
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// The origin's settings.
    pub fn config(&self) -> &OriginConfig {
        &self.config
    }

    /// The URI at the origin for an already-encoded path and query: the
    /// origin URL's base path followed by the request path.
    pub fn uri_for(&self, encoded_path: &str, query: Option<&str>) -> Result<Uri, ProxyError> {
        let mut pq = String::with_capacity(self.base_path.len() + encoded_path.len() + 64);
        pq.push_str(&self.base_path);
        pq.push_str(encoded_path);
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        let mut parts = self.config.url.clone().into_parts();
        parts.path_and_query = Some(pq.parse().map_err(|_| ProxyError::BadPath)?);
        Uri::from_parts(parts).map_err(|_| ProxyError::Internal)
    }

    /// Send `req` and wait for the response head, at most
    /// `first_byte_timeout` and never past `total_timeout`; the body must
    /// end by then too, and pause at most `idle_timeout` between frames.
    /// The time to the head is recorded in `timings`.
    pub async fn send(
        &self,
        req: Request<Empty<Bytes>>,
        timings: &OriginTimings,
    ) -> Result<Response<OriginBody>, ProxyError> {
        self.send_within(req, timings, self.config.total_timeout)
            .await
    }

    /// [`Self::send`] for a continuous stream (an MPEG-TS route): the head
    /// within `first_byte_timeout`, then no total deadline, only the idle
    /// timeout between bytes; the viewer's session bounds it.
    pub async fn send_stream(
        &self,
        req: Request<Empty<Bytes>>,
        timings: &OriginTimings,
    ) -> Result<Response<OriginBody>, ProxyError> {
        // A year: an instant tokio can always add, and longer than any session.
        self.send_within(req, timings, Duration::from_secs(366 * 86_400))
            .await
    }

    async fn send_within(
        &self,
        req: Request<Empty<Bytes>>,
        timings: &OriginTimings,
        total: Duration,
    ) -> Result<Response<OriginBody>, ProxyError> {
        let sent = Instant::now();
        let deadline = sent + total;
        let head_by = deadline.min(sent + self.config.first_byte_timeout);
        let resp = match tokio::time::timeout_at(head_by, self.client.request(req)).await {
            Err(_) => return Err(ProxyError::OriginTimeout),
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => return Err(classify(&e)),
        };
        timings
            .get_or_create(&OriginLabel {
                origin: self.config.name.clone(),
            })
            .observe(sent.elapsed().as_secs_f64());
        let idle = self.config.idle_timeout;
        Ok(resp.map(|body| Deadline::new(IdleTimeout::new(body, idle), deadline, total)))
    }
}

/// A connect timeout is a timeout (504, like nginx); everything else that
/// fails before a response head is "unavailable" (502).
fn classify(e: &hyper_util::client::legacy::Error) -> ProxyError {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return ProxyError::OriginTimeout;
        }
        source = s.source();
    }
    ProxyError::OriginUnavailable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(url: &str) -> Origin {
        Origin::new(OriginConfig {
            name: "o".into(),
            url: url.parse().unwrap(),
            connect_timeout: Duration::from_secs(1),
            first_byte_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            total_timeout: Duration::from_secs(2),
            pool_idle_timeout: Duration::from_secs(1),
            pool_max_idle: 1,
        })
    }

    #[tokio::test]
    async fn uri_joins_base_path() {
        let o = origin("http://127.0.0.1:8081/base/");
        assert_eq!(
            o.uri_for("/live/ch1/index.m3u8", Some("a=1"))
                .unwrap()
                .to_string(),
            "http://127.0.0.1:8081/base/live/ch1/index.m3u8?a=1"
        );
        let o = origin("http://127.0.0.1:8081");
        assert_eq!(
            o.uri_for("/x.ts", None).unwrap().to_string(),
            "http://127.0.0.1:8081/x.ts"
        );
    }

    #[tokio::test]
    async fn refused_connection_is_unavailable() {
        // Bind then drop: the port is (very likely) closed right after.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let o = origin(&format!("http://127.0.0.1:{port}"));
        let req = Request::get(o.uri_for("/", None).unwrap())
            .body(Empty::new())
            .unwrap();
        let timings = OriginTimings::new_with_constructor(|| {
            prometheus_client::metrics::histogram::Histogram::new([1.0])
        });
        assert_eq!(
            o.send(req, &timings).await.err(),
            Some(ProxyError::OriginUnavailable)
        );
    }
}
