//! One JSON access-log line and one set of metric updates per viewer request,
//! written when the response body ends (so bytes and duration are final).
//!
//! Lines go through `tracing` under the target `tollgate::access` at INFO, so
//! `RUST_LOG=tollgate::access=off` silences them. The logged path never holds
//! a credential: the query passes through [`crate::credentials::CredentialParams::strip`].

use std::net::IpAddr;
use std::time::Duration;

use http::{Method, Version};
use tokio::time::Instant;

use crate::body::BodyEnd;
use crate::credentials::CredentialParams;
use crate::error::Blame;
use crate::metrics::{Metrics, RequestLabels, RouteLabel, status_class};

/// Everything known about a request by the time its response head is sent.
#[derive(Debug)]
pub struct RequestRecord {
    /// When the request head was received.
    pub start: Instant,
    /// Client address (after trusted-proxy handling).
    pub client_ip: IpAddr,
    /// Request method.
    pub method: Method,
    /// HTTP version of the viewer's connection.
    pub version: Version,
    /// Request path as received, with the query stripped of credentials;
    /// empty when the access log is off (nothing else reads it).
    pub path: String,
    /// Matched route name.
    pub route: Option<String>,
    /// Channel named by the path.
    pub channel: Option<String>,
    /// Status sent to the viewer.
    pub status: u16,
    /// Error code, or `proxied` when the origin's answer went through.
    pub code: &'static str,
    /// Who caused the error, when tollgate answered with one.
    pub blame: Option<Blame>,
    /// The user the credentials named, if any.
    pub user: Option<String>,
    /// Status the origin answered with.
    pub origin_status: Option<u16>,
    /// Origin time to response head.
    pub origin_latency: Option<Duration>,
    /// The viewer session the request belongs to; its byte count grows by
    /// the body sent.
    pub session: Option<std::sync::Arc<crate::session::Session>>,
}

/// The logged form of a request target: the raw path plus the query without
/// credential parameters.
pub fn loggable_target(path: &str, query: Option<&str>, credentials: &CredentialParams) -> String {
    match query.and_then(|q| credentials.strip(q)) {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    }
}

impl RequestRecord {
    /// Record metrics and (when `log` is set) write the access-log line.
    pub fn finish(self, metrics: &Metrics, log: bool, bytes: u64, end: BodyEnd) {
        let duration = self.start.elapsed();
        if let Some(session) = &self.session {
            session.add_bytes(bytes);
        }
        if log {
            self.log(bytes, duration, end);
        }
        // The route name moves into the labels: one copy, for the family
        // that keeps two labels.
        let route = self.route.unwrap_or_else(|| "none".to_owned());
        metrics
            .requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                status_class: status_class(self.status),
                code: self.code,
            })
            .inc();
        let label = RouteLabel { route };
        metrics
            .request_duration
            .get_or_create(&label)
            .observe(duration.as_secs_f64());
        metrics.bytes_sent.get_or_create(&label).inc_by(bytes);
    }

    /// The access-log line.
    fn log(&self, bytes: u64, duration: Duration, end: BodyEnd) {
        let end = match end {
            BodyEnd::Complete => "complete",
            BodyEnd::Failed => "failed",
            BodyEnd::Cancelled => "cancelled",
        };
        tracing::info!(
            target: "tollgate::access",
            client_ip = %self.client_ip,
            method = %self.method,
            proto = ?self.version,
            path = %self.path,
            status = self.status,
            code = self.code,
            blame = self.blame.map(Blame::as_str),
            bytes,
            duration_ms = duration.as_secs_f64() * 1000.0,
            origin_status = self.origin_status,
            origin_ms = self.origin_latency.map(|d| d.as_secs_f64() * 1000.0),
            route = self.route.as_deref(),
            user = self.user.as_deref(),
            channel = self.channel.as_deref(),
            end,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_target_has_no_credentials() {
        let c = CredentialParams::default();
        assert_eq!(
            loggable_target(
                "/live/ch1/index.m3u8",
                Some("token=s3cr3t&lang=en&tg=cap"),
                &c
            ),
            "/live/ch1/index.m3u8?lang=en"
        );
        assert_eq!(loggable_target("/a", Some("auth=u:p"), &c), "/a");
        assert_eq!(loggable_target("/a", None, &c), "/a");
    }
}
