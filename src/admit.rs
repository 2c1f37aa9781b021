//! Phase 4b, the shell of admission: run the pure core
//! ([`crate::admission`]) against the live state, free a refused viewer's
//! slot (here and in the fleet store), take the fleet store's word for a
//! session new to this edge, and count what happened. Every request kind
//! (entry, playlist, segment, key) comes through [`admit`].

use std::sync::Arc;

use crate::admission::{Admit, Refusal, Request};
use crate::auth::SessionLimit;
use crate::capability::{Claims, Scope};
use crate::error::ProxyError;
use crate::fleet::{Admission as Fleet, FleetStore};
use crate::runtime::{Live, Shared};
use crate::session::{Admitted, Session};

/// How a request asks to be admitted.
#[derive(Debug, Clone, Copy)]
pub struct Admission<'a> {
    /// The viewer just presented fresh credentials (clears a kick).
    pub entry: bool,
    /// The route has a method that names users the entitlements need not
    /// list ([`crate::auth::AuthMethod::vouches_for_users`]).
    pub vouched: bool,
    /// The `?token=` the viewer presented at entry (for the blocklists).
    pub token: Option<&'a str>,
    /// A limit the auth method set (the backend's `X-Max-Sessions` /
    /// `X-Unique`).
    pub limit: Option<SessionLimit>,
    /// A catch-up request: the first second of its window.
    pub archive_from: Option<u64>,
}

/// The one check of a session capability, for playlists, segments and
/// keys alike: authentic, unexpired, for this route and channel (and
/// address, when bound). Whether it was revoked (kicked, its token
/// blocked, its user's credential replaced, also before a restart) is
/// asked in [`admit`], which every request kind passes.
pub fn verify_capability(
    live: &Live,
    token: &str,
    scope: &Scope<'_>,
    now: u64,
) -> Result<Claims, ProxyError> {
    live.verify_with(|keys| keys.verify(token, scope, now))
        .map(|(claims, _)| claims)
        .map_err(|_| ProxyError::Forbidden)
}

/// What the pure core ([`crate::admission::admit`]) is asked for the
/// session `claims` name in `scope`; `fleet`: a fleet store counts the
/// user's sessions.
pub fn request<'a>(
    live: &Live,
    claims: &'a Claims,
    scope: &Scope<'a>,
    how: Admission<'a>,
    fleet: bool,
    now: u64,
) -> Request<'a> {
    let sessions = &live.config.sessions;
    Request {
        sid: claims.sid,
        user: claims.user.as_deref(),
        device: claims.device.as_deref(),
        expires: claims.expires,
        route: scope.route,
        channel: scope.channel,
        client_ip: scope.client_ip,
        token: how.token,
        entry: how.entry,
        vouched: how.vouched,
        limit: how.limit,
        on_limit: sessions.on_limit,
        fleet,
        archive_from: how.archive_from,
        now,
        tombstone_until: sessions.capability_expiry(now),
    }
}

/// Create or refresh the session `claims` name, counting a new one.
/// Entitlements are asked on every request: a blocked, disabled or removed
/// user's sessions stop at their very next playlist, segment or key request.
pub async fn admit(
    live: &Live,
    shared: &Shared,
    claims: &Claims,
    scope: &Scope<'_>,
    how: Admission<'_>,
    now: u64,
) -> Result<Arc<Session>, ProxyError> {
    let fleet = shared.fleet.as_ref().zip(claims.user.as_deref());
    let req = request(live, claims, scope, how, fleet.is_some(), now);
    let until = req.tombstone_until;
    let ents = shared.store.entitlements();
    let deny = shared.store.deny_guard();
    let admitted =
        crate::admission::admit(&req, &ents, &deny, &shared.revocations, &shared.sessions);
    let admitted = match admitted {
        Ok(a) => a,
        Err(Refusal::Denied(denial)) => {
            // A viewer refused at admission (no longer entitled, blocked, …)
            // holds no `max_sessions` slot: its session, if it had one, goes
            // now (here and in the fleet store, before the answer), not when
            // it would have gone idle.
            shared
                .release_session(claims.sid, claims.user.as_deref())
                .await;
            return Err(ProxyError::from(denial));
        }
        Err(refusal) => return Err(ProxyError::from(refusal)),
    };
    if let Some((store, user)) = fleet {
        fleet_admit(shared, store, user, &admitted, how.entry, until, now).await?;
    }
    if matches!(admitted.admitted, Admitted::Created { .. }) {
        shared.metrics.sessions_created.inc();
        shared
            .metrics
            .sessions
            .set(i64::try_from(shared.sessions.len()).unwrap_or(i64::MAX));
    }
    Ok(admitted.session)
}

/// The fleet half of admission: a session new to this edge asks the shared
/// store (which counts the user's sessions on every edge), and the local
/// table follows its answer. A live one asks nothing: the edge's heartbeat
/// (`runtime::fleet_agent`) carries it, adds it back if Redis lost it, and
/// ends it here when another edge evicted it or an operator kicked it.
async fn fleet_admit(
    shared: &Shared,
    store: &FleetStore,
    user: &str,
    admitted: &Admit,
    entry: bool,
    until: u64,
    now: u64,
) -> Result<(), ProxyError> {
    if matches!(admitted.admitted, Admitted::Existing) {
        return Ok(());
    }
    let session = &admitted.session;
    let (max, policy, now_ms) = (admitted.max, admitted.policy, now.saturating_mul(1000));
    let answer = if entry {
        store.admit(user, session.id, max, policy, now_ms).await
    } else {
        store.readmit(user, session.id, max, policy, now_ms).await
    };
    match answer {
        Ok(Fleet::Ended) => {
            // Kicked or evicted on another edge before this one saw it.
            shared.sessions.end(session.id, until);
            Err(ProxyError::SessionEvicted)
        }
        Ok(Fleet::Admitted | Fleet::Refreshed) => {
            session.set_in_fleet();
            Ok(())
        }
        Ok(Fleet::Evicted(ids)) => {
            session.set_in_fleet();
            for id in ids {
                shared.sessions.end(id, until);
            }
            Ok(())
        }
        Ok(Fleet::Rejected) => {
            shared.sessions.forget(session.id);
            Err(ProxyError::SessionLimit)
        }
        Err(_) => {
            // store_fail = "closed": no new sessions while the store is down.
            shared.sessions.forget(session.id);
            Err(ProxyError::StoreUnavailable)
        }
    }
}
