//! Admission, the pure core of phase 4: may this request's session go on,
//! and how is it counted on this edge?
//!
//! Every request kind (entry, playlist, segment, key) passes [`admit`]
//! after its credentials or capability checked out. In order:
//! 1. the control plane's deny list;
//! 2. the entitlements ([`grant`]): a listed user meets their packages
//!    (their device's, on a device with packages of its own), expiry,
//!    addresses, blocklist and their device's state; a user the route's auth method vouches
//!    for but the entitlements do not list (a backend's `X-UserId`, a
//!    WMSAuth id) meets only the blocklist; any other named user is refused
//!    (a deleted user's capability, even one re-adopting a session the table
//!    forgot); an anonymous viewer meets the anonymous rules;
//! 3. a catch-up request's window against the viewer's depth (refused
//!    before the session is touched: it goes on live);
//! 4. revocation (kicked, token blocked, credential replaced);
//! 5. the session table's limit ([`crate::session::Sessions::admit`]), which
//!    leaves the count to the fleet store when there is one.
//!
//! Must not: read the clock (`now` is an argument), do I/O, log or await.
//! What the shell does with a refusal (free the slot here and in the
//! fleet, answer) and the fleet round trip live in `proxy::admit`.

use std::net::IpAddr;
use std::sync::Arc;

use crate::auth::SessionLimit;
use crate::entitlements::{Denial, Entitlements, Grant};
use crate::error::ProxyError;
use crate::revocation::{Reason, Revocations};
use crate::session::{Admitted, Ask, Policy, Refused, Session, Sessions};

/// One request asking to be admitted.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Session id.
    pub sid: u64,
    /// The user the credentials or the capability named.
    pub user: Option<&'a str>,
    /// The device the credentials or the capability named (SPEC §7.3).
    pub device: Option<&'a str>,
    /// The capability's expiry (unix seconds), for the revocation check.
    pub expires: u64,
    /// Route name.
    pub route: &'a str,
    /// Channel name.
    pub channel: &'a str,
    /// The viewer's address.
    pub client_ip: IpAddr,
    /// The `?token=` the viewer presented at entry (for the blocklists).
    pub token: Option<&'a str>,
    /// The viewer just presented fresh credentials (clears a kick).
    pub entry: bool,
    /// The route has a method that names users the entitlements need not
    /// list ([`crate::auth::AuthMethod::vouches_for_users`]).
    pub vouched: bool,
    /// A limit the auth method set (the backend's `X-Max-Sessions` /
    /// `X-Unique`).
    pub limit: Option<SessionLimit>,
    /// `[sessions] on_limit`.
    pub on_limit: Policy,
    /// A fleet store counts this user's sessions (this edge does not).
    pub fleet: bool,
    /// A catch-up request: the first second of the window it names
    /// ([`crate::catchup::Window::earliest`]); `None` for live.
    pub archive_from: Option<u64>,
    /// Unix seconds.
    pub now: u64,
    /// Until when an ended session's tombstone lasts (unix seconds).
    pub tombstone_until: u64,
}

/// A request let in on this edge.
#[derive(Debug)]
pub struct Admit {
    /// The session, live in the table.
    pub session: Arc<Session>,
    /// Whether it was live already or created now.
    pub admitted: Admitted,
    /// The user's limit (0 = unlimited), for the fleet store.
    pub max: u32,
    /// The policy over the limit, for the fleet store.
    pub policy: Policy,
}

/// Why a request was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not entitled, blocked, denied: the session holds no slot any more
    /// (the shell releases it).
    Denied(Denial),
    /// The session was revoked.
    Revoked(Reason),
    /// The session table refused (over the limit, or ended).
    Session(Refused),
    /// A catch-up window beyond the viewer's depth: this request is
    /// refused, the session (live on the same channel) goes on.
    DvrDepth,
}

impl From<Refusal> for ProxyError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Denied(d) => ProxyError::from(d),
            Refusal::Revoked(Reason::Ended) | Refusal::Session(Refused::Ended) => {
                ProxyError::SessionEvicted
            }
            Refusal::Revoked(Reason::Blocked) => ProxyError::Blocked,
            Refusal::Revoked(Reason::Revoked) => ProxyError::Forbidden,
            Refusal::Session(Refused::Limit) => ProxyError::SessionLimit,
            Refusal::DvrDepth => ProxyError::DvrDepth,
        }
    }
}

/// The limit policy: the auth method's `X-Unique` wins over `on_limit`.
pub fn policy(limit: Option<SessionLimit>, on_limit: Policy) -> Policy {
    match (limit, on_limit) {
        (
            Some(SessionLimit {
                evict_oldest: true, ..
            }),
            _,
        )
        | (_, Policy::EvictOldest) => Policy::EvictOldest,
        _ => Policy::Reject,
    }
}

/// Steps 1 and 2: the deny list, then the entitlements (the vouched-user
/// rule, see the module docs).
pub fn grant(req: &Request<'_>, ents: &Entitlements, deny: &Entitlements) -> Result<Grant, Denial> {
    deny.check_blocklist(req.user, req.token, req.client_ip)?;
    match req.user {
        Some(user) if ents.user(user).is_some() => ents.decide_on(
            Some(user),
            req.device,
            req.token,
            req.channel,
            req.client_ip,
            req.now,
        ),
        Some(user) if req.vouched => ents
            .check_blocklist(Some(user), req.token, req.client_ip)
            .map(|()| Grant { max_sessions: 0 }),
        Some(_) => Err(Denial::Forbidden),
        None => ents.decide(None, req.token, req.channel, req.client_ip, req.now),
    }
}

/// Admit `req` on this edge: every step of the module docs, in order.
pub fn admit(
    req: &Request<'_>,
    ents: &Entitlements,
    deny: &Entitlements,
    revocations: &Revocations,
    sessions: &Sessions,
) -> Result<Admit, Refusal> {
    let grant = grant(req, ents, deny).map_err(Refusal::Denied)?;
    if let Some(from) = req.archive_from {
        let depth = ents.dvr_depth(req.user, req.device, req.channel);
        crate::catchup::check(from, depth, req.now).map_err(|_| Refusal::DvrDepth)?;
    }
    revocations
        .check(req.sid, req.expires)
        .map_err(Refusal::Revoked)?;
    let max = req.limit.map_or(grant.max_sessions, |l| l.max);
    let policy = policy(req.limit, req.on_limit);
    let ask = Ask {
        id: req.sid,
        user: req.user,
        // With a fleet store the fleet counts; this edge only keeps its table.
        max_sessions: if req.fleet && req.user.is_some() {
            0
        } else {
            max
        },
        policy,
        entry: req.entry,
        now: req.now,
        tombstone_until: req.tombstone_until,
    };
    let (session, admitted) = sessions
        .admit(&ask, || {
            Session::new(
                req.sid,
                req.user,
                req.device,
                req.route,
                req.channel,
                req.client_ip,
                req.now,
            )
        })
        .map_err(Refusal::Session)?;
    Ok(Admit {
        session,
        admitted,
        max,
        policy,
    })
}

#[cfg(test)]
mod tests;
