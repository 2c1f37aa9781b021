//! Every metric tollgate exports, named in one place (like sozu's `names.rs`).
//!
//! Metrics live in an explicit [`Metrics`] value (no global registry) so tests
//! can build their own. Label sets are small typed structs; route and origin
//! labels come from the operator's config, never from request data, so a
//! viewer cannot blow up cardinality. Secrets never become label values.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Metric names (without the `tollgate_` prefix and the `_total` suffix that
/// counters get on export).
pub mod names {
    /// Viewer requests by route, status class and code.
    pub const REQUESTS: &str = "requests";
    /// Viewer request duration, accept of the head to the last body byte.
    pub const REQUEST_DURATION: &str = "request_duration_seconds";
    /// Origin latency: request sent to response head received.
    pub const ORIGIN_DURATION: &str = "origin_duration_seconds";
    /// Response body bytes sent to viewers.
    pub const BYTES_SENT: &str = "bytes_sent";
    /// Connections open now, by listener (`http`, `https`, `admin`).
    pub const OPEN_CONNECTIONS: &str = "open_connections";
    /// Connections closed at accept because a connection budget was full
    /// (`server.max_connections`, `server.max_connections_per_ip`,
    /// `admin.max_connections`).
    pub const CONNECTIONS_REJECTED: &str = "connections_rejected";
    /// Connections closed by a lifetime timer, by listener and timer
    /// (`header_read_timeout`, `idle_timeout`).
    pub const CONNECTIONS_TIMED_OUT: &str = "connections_timed_out";
    /// Config reloads by result (`success` / `failure`).
    pub const CONFIG_RELOADS: &str = "config_reloads";
    /// Authentication decisions by method and outcome.
    pub const AUTH_DECISIONS: &str = "auth_decisions";
    /// Requests refused by `[rate_limit]`, by kind (`entry`, `failed_auth`).
    pub const RATE_LIMITED: &str = "rate_limited";
    /// Viewer sessions live now.
    pub const SESSIONS: &str = "sessions";
    /// Sessions created (entry requests and adopted capabilities).
    pub const SESSIONS_CREATED: &str = "sessions_created";
    /// Encrypted-segment cache look-ups by result (`hit`, `joined`, `miss`).
    pub const SEGMENT_CACHE: &str = "segment_cache_lookups";
    /// Bytes held by the encrypted-segment cache.
    pub const SEGMENT_CACHE_BYTES: &str = "segment_cache_bytes";
    /// Segment body bytes sent with `sendfile` from a memory file
    /// (`cache.zero_copy`, plain HTTP/1.x).
    pub const ZERO_COPY_BYTES: &str = "zero_copy_bytes";
    /// Playlists rewritten for a session.
    pub const PLAYLISTS_REWRITTEN: &str = "playlists_rewritten";
    /// Content keys handed out.
    pub const KEYS_SERVED: &str = "keys_served";
    /// Control-plane syncs by result (see [`super::SYNC_RESULTS`]).
    pub const SYNCS: &str = "control_plane_syncs";
    /// Unix time of the last good control-plane sync (0 = none yet).
    pub const SYNC_LAST_SUCCESS: &str = "control_plane_last_success_timestamp_seconds";
    /// Control-plane syncs failed in a row since the last good one.
    pub const SYNC_FAILURES: &str = "control_plane_consecutive_failures";
    /// Version of the control plane's state this edge holds (-1 = none).
    pub const SYNC_VERSION: &str = "control_plane_version";
    /// Entries (users, tokens, networks) on the control plane's deny list.
    pub const SYNC_DENIED: &str = "control_plane_denied";
}

/// Every `result` of [`names::SYNCS`]: `applied` (state or deny list
/// changed), `unchanged`, `unreachable` (connect, timeout, oversized or cut
/// answer), `bad_status` (not 2xx), `bad_answer` (not the documented shape,
/// or invalid users/networks), `bad_solution` (`nimble_ppv`: wrong
/// Solution), `version_gap` (a delta from another version), `storage` (the
/// state dir could not be written).
pub const SYNC_RESULTS: [&str; 8] = [
    "applied",
    "unchanged",
    "unreachable",
    "bad_status",
    "bad_answer",
    "bad_solution",
    "version_gap",
    "storage",
];

/// Labels of [`names::REQUESTS`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route name, or `none` when no route matched.
    pub route: String,
    /// `2xx` … `5xx`.
    pub status_class: &'static str,
    /// Error code, or `proxied` when the origin's response was passed on.
    pub code: &'static str,
}

/// A single `route` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// Route name, or `none`.
    pub route: String,
}

/// A single `origin` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OriginLabel {
    /// Origin name from the config.
    pub origin: String,
}

/// A single `listener` label (`http`, `https`, `admin`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    /// Listener kind.
    pub listener: &'static str,
}

/// Labels of [`names::CONNECTIONS_TIMED_OUT`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TimeoutLabels {
    /// Listener kind.
    pub listener: &'static str,
    /// Which timer: `header_read_timeout` or `idle_timeout`.
    pub timer: &'static str,
}

/// A single `result` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `success` or `failure` (for syncs, one of [`SYNC_RESULTS`]).
    pub result: &'static str,
}

/// Labels of [`names::RATE_LIMITED`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// Which bucket refused: `entry` or `failed_auth`.
    pub kind: &'static str,
}

/// Labels of [`names::AUTH_DECISIONS`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    /// Method that decided, `deny_list` or `none` (every method passed).
    pub method: &'static str,
    /// `allow` or the error code.
    pub outcome: &'static str,
}

/// A histogram per label set, each with the family's buckets.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs … ~52 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

/// All metrics and the registry that exports them.
pub struct Metrics {
    registry: Registry,
    /// See [`names::REQUESTS`].
    pub requests: Family<RequestLabels, Counter>,
    /// See [`names::REQUEST_DURATION`].
    pub request_duration: HistogramFamily<RouteLabel>,
    /// See [`names::ORIGIN_DURATION`].
    pub origin_duration: HistogramFamily<OriginLabel>,
    /// See [`names::BYTES_SENT`].
    pub bytes_sent: Family<RouteLabel, Counter>,
    /// See [`names::OPEN_CONNECTIONS`].
    pub open_connections: Family<ListenerLabel, Gauge>,
    /// See [`names::CONNECTIONS_REJECTED`].
    pub connections_rejected: Counter,
    /// See [`names::CONNECTIONS_TIMED_OUT`].
    pub connections_timed_out: Family<TimeoutLabels, Counter>,
    /// See [`names::CONFIG_RELOADS`].
    pub config_reloads: Family<ResultLabel, Counter>,
    /// See [`names::AUTH_DECISIONS`].
    pub auth_decisions: Family<AuthLabels, Counter>,
    /// See [`names::RATE_LIMITED`].
    pub rate_limited: Family<KindLabel, Counter>,
    /// See [`names::SESSIONS`].
    pub sessions: Gauge,
    /// See [`names::SESSIONS_CREATED`].
    pub sessions_created: Counter,
    /// See [`names::SEGMENT_CACHE`].
    pub segment_cache: Family<ResultLabel, Counter>,
    /// See [`names::SEGMENT_CACHE_BYTES`].
    pub segment_cache_bytes: Gauge,
    /// See [`names::ZERO_COPY_BYTES`].
    pub zero_copy_bytes: Counter,
    /// See [`names::PLAYLISTS_REWRITTEN`].
    pub playlists_rewritten: Counter,
    /// See [`names::KEYS_SERVED`].
    pub keys_served: Counter,
    /// See [`names::SYNCS`].
    pub syncs: Family<ResultLabel, Counter>,
    /// See [`names::SYNC_LAST_SUCCESS`].
    pub sync_last_success: Gauge,
    /// See [`names::SYNC_FAILURES`].
    pub sync_failures: Gauge,
    /// See [`names::SYNC_VERSION`].
    pub sync_version: Gauge,
    /// See [`names::SYNC_DENIED`].
    pub sync_denied: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tollgate");
        let m = Self {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            origin_duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            bytes_sent: Family::default(),
            open_connections: Family::default(),
            connections_rejected: Counter::default(),
            connections_timed_out: Family::default(),
            config_reloads: Family::default(),
            auth_decisions: Family::default(),
            rate_limited: Family::default(),
            sessions: Gauge::default(),
            sessions_created: Counter::default(),
            segment_cache: Family::default(),
            segment_cache_bytes: Gauge::default(),
            zero_copy_bytes: Counter::default(),
            playlists_rewritten: Counter::default(),
            keys_served: Counter::default(),
            syncs: Family::default(),
            sync_last_success: Gauge::default(),
            sync_failures: Gauge::default(),
            sync_version: Gauge::default(),
            sync_denied: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(names::REQUESTS, "Viewer requests", m.requests.clone());
        registry.register(
            names::REQUEST_DURATION,
            "Viewer request duration to the last body byte",
            m.request_duration.clone(),
        );
        registry.register(
            names::ORIGIN_DURATION,
            "Origin time to response head",
            m.origin_duration.clone(),
        );
        registry.register(
            names::BYTES_SENT,
            "Body bytes sent to viewers",
            m.bytes_sent.clone(),
        );
        registry.register(
            names::OPEN_CONNECTIONS,
            "Connections open now",
            m.open_connections.clone(),
        );
        registry.register(
            names::CONNECTIONS_REJECTED,
            "Connections closed at accept because a connection budget was full",
            m.connections_rejected.clone(),
        );
        registry.register(
            names::CONNECTIONS_TIMED_OUT,
            "Connections closed by header_read_timeout or idle_timeout",
            m.connections_timed_out.clone(),
        );
        registry.register(
            names::CONFIG_RELOADS,
            "Config reloads by result",
            m.config_reloads.clone(),
        );
        registry.register(
            names::AUTH_DECISIONS,
            "Authentication decisions by method and outcome",
            m.auth_decisions.clone(),
        );
        registry.register(
            names::RATE_LIMITED,
            "Requests refused by [rate_limit], by kind",
            m.rate_limited.clone(),
        );
        registry.register(
            names::SESSIONS,
            "Viewer sessions live now",
            m.sessions.clone(),
        );
        registry.register(
            names::SESSIONS_CREATED,
            "Sessions created",
            m.sessions_created.clone(),
        );
        registry.register(
            names::SEGMENT_CACHE,
            "Encrypted-segment cache look-ups by result",
            m.segment_cache.clone(),
        );
        registry.register(
            names::SEGMENT_CACHE_BYTES,
            "Bytes held by the encrypted-segment cache",
            m.segment_cache_bytes.clone(),
        );
        registry.register(
            names::ZERO_COPY_BYTES,
            "Segment body bytes sent with sendfile from a memory file",
            m.zero_copy_bytes.clone(),
        );
        registry.register(
            names::PLAYLISTS_REWRITTEN,
            "Playlists rewritten for a session",
            m.playlists_rewritten.clone(),
        );
        registry.register(
            names::KEYS_SERVED,
            "Content keys handed out",
            m.keys_served.clone(),
        );
        registry.register(
            names::SYNCS,
            "Control-plane syncs by result",
            m.syncs.clone(),
        );
        registry.register(
            names::SYNC_LAST_SUCCESS,
            "Unix time of the last good control-plane sync (0 = none yet)",
            m.sync_last_success.clone(),
        );
        registry.register(
            names::SYNC_FAILURES,
            "Control-plane syncs failed in a row",
            m.sync_failures.clone(),
        );
        registry.register(
            names::SYNC_VERSION,
            "Version of the control plane's state held (-1 = none)",
            m.sync_version.clone(),
        );
        registry.register(
            names::SYNC_DENIED,
            "Entries on the control plane's deny list",
            m.sync_denied.clone(),
        );
        m.sync_version.set(-1);
        for result in SYNC_RESULTS {
            let _ = m.syncs.get_or_create(&ResultLabel { result });
        }
        // Export both series from the start so dashboards and alerts see a 0.
        for result in ["success", "failure"] {
            let _ = m.config_reloads.get_or_create(&ResultLabel { result });
        }
        Self { registry, ..m }
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// `2xx`-style class of a status code.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_text() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                route: "live".into(),
                status_class: "2xx",
                code: "proxied",
            })
            .inc();
        let text = m.encode();
        assert!(
            text.contains(
                r#"tollgate_requests_total{route="live",status_class="2xx",code="proxied"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"tollgate_config_reloads_total{result="failure"} 0"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
