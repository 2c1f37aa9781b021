//! The audit trail (SPEC §8): one JSON line under the target
//! `tollgate::audit` for every change the admin API or the control plane
//! makes to what viewers may do, and every device that registers itself:
//! who (`api`, `control_plane` or `device`), what
//! (`action` on an `object` with its `id`), never a secret (ids and names
//! only; tokens, passwords and bodies are never logged).
//!
//! `RUST_LOG=tollgate::audit=off` silences it; ship it apart with a log
//! router on the target.

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The admin API (bearer token).
    Api,
    /// Pull sync with the control plane.
    ControlPlane,
    /// A device registering itself (`[auth.device] auto_register`).
    Device,
}

impl Who {
    fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::ControlPlane => "control_plane",
            Self::Device => "device",
        }
    }
}

/// Record one change: `action` (`put`, `delete`, `kick`, `rotate`,
/// `replace`, `apply`, `register`, `sign`) on `object` (`user`, `package`,
/// `channel`, `device`, `blocklist`, `snapshot`, `session`, `keys`,
/// `deny_list`, `delta`, `link`) named
/// `id` (`""` when the object is a singleton), with `detail` (counts,
/// versions; never a secret).
pub fn record(who: Who, action: &str, object: &str, id: &str, detail: &str) {
    tracing::info!(
        target: "tollgate::audit",
        who = who.as_str(),
        action,
        object,
        id,
        detail,
        "change"
    );
}
