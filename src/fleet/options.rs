//! Settings of a [`super::FleetStore`]: the limit policy, the fail mode and
//! the time bounds. Plain data, no I/O.

use std::time::Duration;

/// The limit policy is the session table's ([`crate::session::Policy`],
/// `[sessions] on_limit`), the fail mode the config's (`store_fail`).
pub use crate::config::FailMode;
pub use crate::session::Policy;

/// Settings of a [`super::FleetStore`].
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Put before every key, e.g. `tollgate:`; must not contain `{` or `}`.
    pub key_prefix: String,
    /// Liveness: a session not admitted or heartbeaten for this long is gone
    /// (set it to `sessions.idle_timeout`). At least 1 ms.
    pub session_ttl: Duration,
    /// How long an ended marker lives; at least the capability lifetime, so
    /// an evicted session cannot outlive its marker.
    pub ended_ttl: Duration,
    /// What `admit` answers while Redis is unreachable.
    pub fail: FailMode,
    /// Upper bound on every Redis call, connection attempts included.
    pub op_timeout: Duration,
}

impl FleetOptions {
    /// Defaults around `session_ttl`: prefix `tollgate:`, ended markers kept
    /// for one hour (or `session_ttl` if longer), fail open, 250 ms per call.
    pub fn new(session_ttl: Duration) -> Self {
        Self {
            key_prefix: "tollgate:".into(),
            session_ttl,
            ended_ttl: session_ttl.max(Duration::from_secs(3600)),
            fail: FailMode::Open,
            op_timeout: Duration::from_millis(250),
        }
    }
}
