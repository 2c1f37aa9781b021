//! Flussonic-compatible authorization backend (auth-schemes.md §5): the
//! pure core. An HTTP backend is asked, with a GET query ([`BackendQuery`]),
//! whether a viewer may play; its status and `X-*` headers decide and set
//! the session's terms.
//!
//! Owns: the query string sent ([`request`]), the reading of one answer
//! ([`interpret`]), the rule for several backends ([`combine`]) and the
//! session cache key ([`session_key`]), all exactly as `authref.py`
//! (`flussonic_*`) models them and checked against every
//! `flussonic_backend` vector.
//!
//! Must not: do I/O, read the clock, log, or panic on anything a backend
//! sends. Header values are untrusted bytes: garbage reads as absent (or
//! the default), never as an error.
//!
//! What the shell does with it next (not in this module):
//!
//! * A moka cache keyed by [`session_key`] holds each [`BackendAnswer`] for
//!   its [`SessionParams::auth_duration`] (allows *and* denials, like
//!   Flussonic); concurrent misses for one key are coalesced into a single
//!   backend request (`try_get_with`), so a playlist burst costs one call.
//!   Expiry triggers an `update_session` look-up (`request_number` + 1).
//! * Backend down (5xx, refused, timeout: `status == None`): [`interpret`]
//!   is given the cached verdict, so an existing grant continues
//!   ([`AnswerSource::StaleCache`]) and a new session is refused
//!   ([`AnswerSource::Unavailable`]); `allow default` in [`combine`] is the
//!   only way to let new viewers in while every backend is down. The shell
//!   should not cache an unavailable answer for 30 s.
//! * `X-UserId` / `X-Max-Sessions` / `X-Unique` feed the session table's
//!   per-user limits; a redirect becomes a 302 to the viewer.
//!
//! Known ambiguities (auth-schemes.md §9 item 6): 302 handling differs by
//! Flussonic version (here: redirect when a `Location` is given, as newer
//! versions do); "any backend allows" is the model's reading of the
//! parallel-backend rule; the 30 s default duration is the legacy one.

pub mod client;
pub mod request;

use std::net::IpAddr;
use std::time::Duration;

use http::HeaderMap;

use super::query;

pub use request::{BackendQuery, RequestType};

/// `X-AuthDuration` when the backend sends none (or garbage): the legacy
/// default of 30 s.
pub const DEFAULT_AUTH_DURATION: Duration = Duration::from_secs(30);

/// What the backend decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendVerdict {
    /// Play.
    Allow,
    /// Refuse (403).
    Forbidden,
    /// Send the viewer elsewhere (301/302 with a non-empty `Location`).
    Redirect {
        /// The backend's `Location`, verbatim.
        location: String,
    },
}

/// Where a [`BackendAnswer`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerSource {
    /// The backend answered (any non-5xx status).
    Backend,
    /// The backend is down; the session's cached allow is reused.
    StaleCache,
    /// The backend is down and there is no cached allow.
    Unavailable,
}

/// The session terms a backend's headers set (on 200 and on denials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParams {
    /// `X-UserId`: the user that session limits count against; `None` when
    /// absent, empty or not UTF-8.
    pub user_id: Option<String>,
    /// `X-Max-Sessions`: concurrent sessions allowed for `user_id`; `None`
    /// unless all ASCII digits (saturates at `u32::MAX`).
    pub max_sessions: Option<u32>,
    /// `X-AuthDuration`: how long to cache this answer before re-checking;
    /// [`DEFAULT_AUTH_DURATION`] unless all ASCII digits (seconds, saturating).
    pub auth_duration: Duration,
    /// `X-Unique: true` (any ASCII case): disconnect the user's other sessions.
    pub unique: bool,
}

/// One backend's answer, or the verdict standing in for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendAnswer {
    /// The decision.
    pub verdict: BackendVerdict,
    /// Headers read: `Some` exactly when the backend answered with a status
    /// other than a redirect (as the reference reports them).
    pub params: Option<SessionParams>,
    /// Whether the backend answered.
    pub source: AnswerSource,
}

/// The decision cached for a session from an earlier answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cached {
    /// The session was allowed.
    Allow,
    /// The session was refused.
    Forbidden,
}

/// Read one backend answer. `status` is `None` when there was no HTTP
/// answer (refused, reset, timeout); `cached` is the session's previous
/// decision, if any.
///
/// 200 allows; 301/302 with a non-empty `Location` redirects; 5xx and
/// `None` reuse a cached allow or refuse; anything else refuses. Header
/// names are case-insensitive; a repeated header counts its last value.
pub fn interpret(
    status: Option<u16>,
    headers: &HeaderMap,
    cached: Option<Cached>,
) -> BackendAnswer {
    let status = match status {
        Some(s) if !(500..=599).contains(&s) => s,
        _ => {
            let (verdict, source) = if cached == Some(Cached::Allow) {
                (BackendVerdict::Allow, AnswerSource::StaleCache)
            } else {
                (BackendVerdict::Forbidden, AnswerSource::Unavailable)
            };
            return BackendAnswer {
                verdict,
                params: None,
                source,
            };
        }
    };
    let (verdict, params) = match status {
        200 => (BackendVerdict::Allow, Some(params(headers))),
        301 | 302 => match text(headers, "location") {
            Some(location) => (BackendVerdict::Redirect { location }, None),
            None => (BackendVerdict::Forbidden, Some(params(headers))),
        },
        _ => (BackendVerdict::Forbidden, Some(params(headers))),
    };
    BackendAnswer {
        verdict,
        params,
        source: AnswerSource::Backend,
    }
}

/// Several backends asked in parallel: the first allowing answer wins (with
/// its terms); else the first redirect; else, when every backend was
/// unavailable, `allow_default` decides; else forbidden. No answers at all
/// is forbidden.
pub fn combine(answers: &[BackendAnswer], allow_default: bool) -> BackendAnswer {
    let first = |v: fn(&BackendVerdict) -> bool| answers.iter().find(|a| v(&a.verdict)).cloned();
    if let Some(a) = first(|v| *v == BackendVerdict::Allow) {
        return a;
    }
    if let Some(a) = first(|v| matches!(v, BackendVerdict::Redirect { .. })) {
        return a;
    }
    let all_down = !answers.is_empty()
        && answers
            .iter()
            .all(|a| a.source == AnswerSource::Unavailable);
    let verdict = if all_down && allow_default {
        BackendVerdict::Allow
    } else {
        BackendVerdict::Forbidden
    };
    BackendAnswer {
        verdict,
        params: None,
        source: if all_down {
            AnswerSource::Unavailable
        } else {
            AnswerSource::Backend
        },
    }
}

/// The session cache key: Flussonic's legacy session identity, the triple
/// (token, client IP, stream name), as `token|ip|name`.
///
/// Token and name are percent-encoded first, so a `|` inside one cannot make
/// two triples share a key (the reference joins them raw; the keys are equal
/// for values without reserved characters). The key holds the token: never
/// log it.
pub fn session_key(token: &str, ip: IpAddr, name: &str) -> String {
    format!(
        "{}|{ip}|{}",
        query::percent_encode(token),
        query::percent_encode(name)
    )
}

/// The header terms, with the reference's defaults.
fn params(headers: &HeaderMap) -> SessionParams {
    SessionParams {
        user_id: text(headers, "x-userid"),
        max_sessions: digits(headers, "x-max-sessions")
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        auth_duration: digits(headers, "x-authduration")
            .map_or(DEFAULT_AUTH_DURATION, Duration::from_secs),
        unique: last(headers, "x-unique").is_some_and(|v| v.eq_ignore_ascii_case(b"true")),
    }
}

/// The last value of header `name`, as bytes.
fn last<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers
        .get_all(name)
        .iter()
        .next_back()
        .map(|v| v.as_bytes())
}

/// The last value of `name` as non-empty UTF-8 text.
fn text(headers: &HeaderMap, name: &str) -> Option<String> {
    let v = std::str::from_utf8(last(headers, name)?).ok()?;
    (!v.is_empty()).then(|| v.to_owned())
}

/// The last value of `name` when it is one or more ASCII digits (Python's
/// `isdigit()` for header text), saturating at `u64::MAX`.
fn digits(headers: &HeaderMap, name: &str) -> Option<u64> {
    let v = last(headers, name)?;
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests;
