//! Pull sync's state and health, shared with the rest of the proxy (the
//! runtime holds one [`Status`]; `/readyz` and `/healthz` read it).

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::config::ControlPlaneConfig;
use crate::entitlements::Blocklist;

/// The file in the state dir holding [`Persisted`].
pub const FILE_NAME: &str = "sync.json";

/// What the control plane last said, as persisted in [`FILE_NAME`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Persisted {
    /// The version of its state the edge holds (`tollgate` mode).
    pub version: Option<u64>,
    /// Its deny list.
    pub deny: Blocklist,
}

/// How pull sync is doing, for `/readyz` and `/healthz`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    /// Unix seconds of the last good sync.
    pub last_success: Option<u64>,
    /// Unix seconds of the last try.
    pub last_attempt: Option<u64>,
    /// Syncs failed in a row.
    pub consecutive_failures: u32,
    /// The last failure's result label and words (no secrets, no values).
    pub last_error: Option<String>,
    /// The version held (filled from the state held by [`Status::health`]).
    pub version: Option<u64>,
    /// Entries on the deny list (likewise).
    pub denied: usize,
    /// A state synced earlier was loaded from the state dir at start.
    pub loaded: bool,
    /// Ended sessions dropped from the report backlog during an outage.
    pub usage_dropped: u64,
    /// Unix seconds when pull sync started.
    pub started: u64,
}

/// Pull-sync state shared with the rest of the proxy.
#[derive(Debug, Default)]
pub struct Status {
    persisted: Mutex<Persisted>,
    health: Mutex<Health>,
}

impl Status {
    /// The version held (`None`: ask for a full snapshot).
    pub fn version(&self) -> Option<u64> {
        self.persisted.lock().ok().and_then(|p| p.version)
    }

    /// A copy of the health figures (version and deny-list size read from
    /// the state held).
    pub fn health(&self) -> Health {
        let mut h = self.health.lock().map(|h| h.clone()).unwrap_or_default();
        if let Ok(p) = self.persisted.lock() {
            h.version = p.version;
            h.denied = denied(&p.deny);
        }
        h
    }

    /// `Some(reason)` when `/readyz` must fail because of the control plane:
    /// no state at all yet (never synced, nothing persisted), or, with
    /// `max_stale`, no good sync for that long (a state loaded at start
    /// counts from the start).
    pub fn not_ready(&self, cp: &ControlPlaneConfig, now: u64) -> Option<&'static str> {
        let h = self.health();
        if h.last_success.is_none() && !h.loaded {
            return Some("no control-plane state yet\n");
        }
        let max = cp.max_stale?.as_secs();
        let since = h.last_success.unwrap_or(h.started);
        (now.saturating_sub(since) > max).then_some("control-plane state is stale\n")
    }

    /// Note the start of pull sync (the age of a state loaded at start
    /// counts from here).
    pub fn started(&self, now: u64) {
        self.update(|h| h.started = now);
    }

    pub(super) fn set(&self, p: Persisted) {
        if let Ok(mut g) = self.persisted.lock() {
            *g = p;
        }
    }

    pub(super) fn persisted(&self) -> Persisted {
        self.persisted.lock().map(|p| p.clone()).unwrap_or_default()
    }

    pub(super) fn update(&self, f: impl FnOnce(&mut Health)) {
        if let Ok(mut h) = self.health.lock() {
            f(&mut h);
        }
    }
}

/// Entries on a deny list.
pub(super) fn denied(b: &Blocklist) -> usize {
    b.users.len() + b.tokens.len() + b.ips.len()
}
