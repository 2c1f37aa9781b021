//! tollgate's own control-plane protocol (`docs/control-plane.md`): the
//! usage report the edge sends and the answer it applies.
//!
//! Pure core: no I/O, no clock, no logging. Invariants: nothing reachable
//! from an answer body panics; an answer is either accepted whole (every
//! user, package and network in it valid) or refused whole, so a half-applied
//! sync cannot exist; errors never quote a token or a password.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::entitlements::{
    Blocklist, Channel, Device, Entitlements, LoadError, Named, Package, Snapshot, User,
    redact_json_error,
};

/// One session's line in a usage report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionUsage<'a> {
    /// Session id, 16 lowercase hex digits (as in `/api/v1/sessions`).
    pub id: String,
    /// The user, when the auth method named one.
    pub user: Option<&'a str>,
    /// The device, when the `device` method admitted the session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<&'a str>,
    /// Route name.
    pub route: &'a str,
    /// Channel name (`""` when the route names none).
    pub channel: &'a str,
    /// Client IP.
    pub ip: IpAddr,
    /// RFC 3339.
    pub started: String,
    /// RFC 3339.
    pub last_seen: String,
    /// Seconds of viewing since the last acknowledged report.
    pub viewed: u64,
    /// Bytes sent since the last acknowledged report.
    pub bytes: u64,
    /// Seconds of viewing since the session started.
    pub viewed_total: u64,
    /// Bytes sent since the session started.
    pub bytes_total: u64,
    /// The session has ended (idle, kicked, evicted); this is its last line.
    pub ended: bool,
}

/// The body the edge POSTs every interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report<'a> {
    /// `[control_plane] edge_id`.
    pub edge: &'a str,
    /// The version of the control plane's state this edge holds; `None`
    /// (JSON `null`) asks for a full snapshot.
    pub version: Option<u64>,
    /// RFC 3339.
    pub sent_at: String,
    /// Sessions live now, and those that ended since the last acknowledged
    /// report.
    pub sessions: Vec<SessionUsage<'a>>,
}

/// Changes since version `since`: users and packages set (an object) or
/// deleted (`null`), and optionally the whole blocklist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delta {
    /// The version these changes apply to.
    pub since: u64,
    /// User id → the new user, or `null` to delete.
    #[serde(default)]
    pub users: BTreeMap<String, Option<User>>,
    /// Package name → the new package, or `null` to delete.
    #[serde(default)]
    pub packages: BTreeMap<String, Option<Package>>,
    /// Channel name → the new channel (a new one goes last in channel
    /// lists, a changed one keeps its place), or `null` to delete.
    #[serde(default)]
    pub channels: BTreeMap<String, Option<Channel>>,
    /// Hardware id → the new device, or `null` to delete.
    #[serde(default)]
    pub devices: BTreeMap<String, Option<Device>>,
    /// The new blocklist, replacing the old one; absent = unchanged.
    pub blocklist: Option<Blocklist>,
}

/// Apply a delta's `name → value or null` map to an ordered list: a new
/// name goes last, a changed one keeps its place.
fn set_or_delete<T>(state: &mut Named<T>, changes: BTreeMap<String, Option<T>>) {
    for (name, value) in changes {
        match value {
            Some(v) => {
                state.insert(name, v);
            }
            None => {
                state.remove(&name);
            }
        }
    }
}

impl Delta {
    /// Apply to `state`. Deleting what is absent is not an error, so a
    /// delta applied twice gives the same state. Passwords are stored as
    /// digests only.
    pub fn apply(self, state: &mut Snapshot) {
        if !self.users.is_empty() {
            // One pass over the state, not a search per changed user: a
            // delta of k users over n costs O(n + k), not O(n·k).
            let mut changes: std::collections::HashMap<String, Option<User>> =
                self.users.into_iter().collect();
            let old = std::mem::take(&mut state.users.0);
            let mut users = Vec::with_capacity(old.len() + changes.len());
            for (id, user) in old {
                match changes.remove(&id) {
                    None => users.push((id, user)),
                    Some(None) => {}
                    Some(Some(mut new)) => {
                        new.hash_password();
                        users.push((id, new));
                    }
                }
            }
            let mut added: Vec<(String, User)> = changes
                .into_iter()
                .filter_map(|(id, user)| user.map(|u| (id, u)))
                .collect();
            added.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            for (id, mut user) in added {
                user.hash_password();
                users.push((id, user));
            }
            state.users.0 = users;
        }
        for (name, package) in self.packages {
            match package {
                Some(p) => {
                    state.packages.insert(name, p);
                }
                None => {
                    state.packages.remove(&name);
                }
            }
        }
        set_or_delete(&mut state.channels, self.channels);
        set_or_delete(&mut state.devices, self.devices);
        if let Some(blocklist) = self.blocklist {
            state.blocklist = blocklist;
        }
    }
}

/// What an answer does to the control plane's state.
#[derive(Debug)]
pub enum Change {
    /// Nothing (`{"version": N}` alone).
    Unchanged,
    /// Replace it whole with this, already compiled.
    Full(Box<Entitlements>),
    /// Apply these changes to version `since`.
    Delta(Delta),
}

/// An answer, validated.
#[derive(Debug)]
pub struct Answer {
    /// The version the state has once this answer is applied.
    pub version: u64,
    /// The change.
    pub change: Change,
    /// The complete current deny list (a blocklist-only [`Entitlements`]),
    /// when the answer carries one; absent = unchanged.
    pub deny: Option<(Blocklist, Entitlements)>,
}

/// Why an answer was refused (nothing of it is applied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// Not JSON of the answer's shape (message redacted of values).
    #[error("answer is not valid JSON of the documented shape: {0}")]
    Shape(String),
    /// Both `snapshot` and `delta`.
    #[error("answer carries both a snapshot and a delta")]
    Ambiguous,
    /// A user, package or network in it does not validate.
    #[error("answer does not validate: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnswer<'a> {
    version: u64,
    #[serde(borrow)]
    snapshot: Option<&'a RawValue>,
    delta: Option<Delta>,
    deny: Option<Blocklist>,
}

/// Parse and validate an answer body. A full snapshot's bytes are handed
/// to `compile` (the shell's streaming loader, which knows the config's
/// packages: no intermediate [`Snapshot`]), so a million-user answer costs
/// what a bulk load does.
///
/// A snapshot whose version is the one `held` is not compiled at all (it
/// would be skipped, see [`plan`]), so a control plane that always answers
/// with a full snapshot costs a parse, not a compile, while nothing changes.
pub fn parse_answer(
    body: &[u8],
    held: Option<u64>,
    compile: impl FnOnce(&[u8]) -> Result<Entitlements, LoadError>,
) -> Result<Answer, AnswerError> {
    let raw: RawAnswer<'_> =
        serde_json::from_slice(body).map_err(|e| AnswerError::Shape(redact_json_error(&e)))?;
    let change = match (raw.snapshot, raw.delta) {
        (Some(_), Some(_)) => return Err(AnswerError::Ambiguous),
        (Some(_), None) if held == Some(raw.version) => Change::Unchanged,
        (Some(s), None) => Change::Full(Box::new(compile(s.get().as_bytes()).map_err(|e| {
            match e {
                LoadError::Json(m) => AnswerError::Shape(format!("snapshot: {m}")),
                LoadError::Invalid(v) => AnswerError::Invalid(
                    v.problems()
                        .iter()
                        .map(|p| format!("snapshot.{p}"))
                        .collect(),
                ),
            }
        })?)),
        (None, Some(d)) => Change::Delta(d),
        (None, None) => Change::Unchanged,
    };
    let deny = match raw.deny {
        None => None,
        Some(list) => Some((list.clone(), deny_layer(list)?)),
    };
    Ok(Answer {
        version: raw.version,
        change,
        deny,
    })
}

/// A deny list compiled as a blocklist-only [`Entitlements`] (ask it with
/// [`Entitlements::check_blocklist`]).
pub fn deny_layer(list: Blocklist) -> Result<Entitlements, AnswerError> {
    Entitlements::build(Snapshot {
        blocklist: list,
        ..Snapshot::default()
    })
    .map_err(|v| {
        AnswerError::Invalid(
            v.problems()
                .iter()
                .map(|p| format!("deny.{}", p.to_string().trim_start_matches("blocklist.")))
                .collect(),
        )
    })
}

/// What to do with an answer's [`Change`], given the version held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Apply it.
    Apply,
    /// Already applied (the answer's version is the one held): skip, so a
    /// control plane that always sends a full snapshot costs nothing while
    /// nothing changes.
    Skip,
    /// A delta from another version than the one held: refuse it and ask
    /// for a full snapshot next time.
    Gap,
}

/// Decide what to do with `change` arriving as `version` when `held` is held.
pub fn plan(held: Option<u64>, version: u64, change: &Change) -> Plan {
    match change {
        Change::Unchanged => Plan::Skip,
        _ if held == Some(version) => Plan::Skip,
        Change::Full(_) => Plan::Apply,
        Change::Delta(d) if held == Some(d.since) => Plan::Apply,
        Change::Delta(_) => Plan::Gap,
    }
}

#[cfg(test)]
mod tests;
