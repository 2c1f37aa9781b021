//! Phase 6 on a `kind = "mpegts"` route (SPEC §8): continuous MPEG-TS over
//! one long response (Flussonic's and Astra's `/CHANNEL/mpegts`, what
//! set-top boxes play). The request was an entry (credentials checked,
//! session admitted); the response *is* the session:
//!
//! - the origin's stream is passed through with no total deadline (only
//!   the origin's idle timeout between bytes);
//! - every [`CHECK_EVERY`] the session is admitted again by the one pure
//!   admission core ([`crate::admission::admit`]: deny lists,
//!   entitlements, revocation, the session table), which also keeps it
//!   alive in the table while it streams; a kick, a block, a removed
//!   package or an expired user ends the response within that second;
//! - the bytes count toward the session as they go (usage reports to the
//!   control plane see a stream that is still open);
//! - one stream per session (a second connection of the same viewer is
//!   `session_limit`), and a stream whose session left the table (kicked,
//!   evicted) ends: it never recreates one outside the fleet's count;
//! - when the response ends, fails or the viewer goes away, the session is
//!   released at once (here and in the fleet store): its `max_sessions`
//!   slot is free for the next connection.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::{ConnInfo, Ctx};
use crate::access_log::RequestRecord;
use crate::admit::Admission;
use crate::body::{ProxyBody, Watch, Watched};
use crate::capability::{Claims, Scope};
use crate::error::ProxyError;
use crate::headers;
use crate::origin::Origin;
use crate::runtime::Shared;
use crate::session::Session;

/// How often an open stream's session is admitted again.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Stream `uri` from the origin as the session's response.
pub(super) async fn serve(
    ctx: &Ctx<'_>,
    origin: &Arc<Origin>,
    uri: http::Uri,
    conn: ConnInfo,
    req: Request<Incoming>,
    record: &mut RequestRecord,
) -> Result<Response<ProxyBody>, ProxyError> {
    // The stream counts its own bytes into the session as they go.
    let session = record.session.take().ok_or(ProxyError::Internal)?;
    // One open stream per session: a session is one viewer (user, device,
    // channel, address), and its max_sessions slot carries one stream.
    if !session.open_stream() {
        return Err(ProxyError::SessionLimit);
    }
    let out = super::passthrough::origin_request(ctx, uri, conn, req, None);
    let sent = Instant::now();
    let resp = match origin
        .send_stream(out, &ctx.shared.metrics.origin_duration)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            release(ctx.shared, &session);
            return Err(e);
        }
    };
    record.origin_latency = Some(sent.elapsed());
    record.origin_status = Some(resp.status().as_u16());
    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    parts.version = http::Version::HTTP_11;
    if !parts.status.is_success() || ctx.is_head {
        release(ctx.shared, &session);
        return Ok(Response::from_parts(parts, body.boxed_unsync()));
    }
    record.code = "mpegts";
    let watch = Stream {
        shared: Arc::clone(ctx.shared),
        claims: ctx.claims.clone(),
        route: ctx.route.name.clone(),
        channel: ctx.channel.to_owned(),
        ip: ctx.scope.client_ip,
        vouched: ctx.route.auth.iter().any(|m| m.vouches_for_users()),
        session,
    };
    let body = Watched::new(body, watch, CHECK_EVERY);
    Ok(Response::from_parts(parts, body.boxed_unsync()))
}

/// True while the table holds `session` itself (not gone, not replaced by
/// a newer session of the same id).
fn in_table(shared: &Shared, session: &Arc<Session>) -> bool {
    shared
        .sessions
        .get(session.id)
        .is_some_and(|s| Arc::ptr_eq(&s, session))
}

/// The stream of `session` closed: free its slot now (here and in the
/// fleet store), unless the table holds another session of that id by
/// now (kicked and re-entered): that one is not this stream's to free.
fn release(shared: &Arc<Shared>, session: &Arc<Session>) {
    session.close_stream();
    if !in_table(shared, session) {
        return;
    }
    let (shared, id, user) = (
        Arc::clone(shared),
        session.id,
        session.user.as_deref().map(str::to_owned),
    );
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move { shared.release_session(id, user.as_deref()).await });
    }
}

/// An open stream's session, as the admission core sees it.
struct Stream {
    shared: Arc<Shared>,
    claims: Claims,
    route: String,
    channel: String,
    ip: IpAddr,
    vouched: bool,
    session: Arc<Session>,
}

impl Watch for Stream {
    fn still(&self) -> bool {
        let shared = &self.shared;
        // Gone from the table (kicked, evicted, forgotten): the stream ends.
        // It never makes a session anew outside the fleet store's count.
        if !in_table(shared, &self.session) {
            return false;
        }
        let live = shared.live();
        let scope = Scope {
            route: &self.route,
            channel: &self.channel,
            client_ip: self.ip,
        };
        let how = Admission {
            entry: false,
            vouched: self.vouched,
            limit: None,
            token: None,
            archive_from: None,
        };
        let fleet = shared.fleet.is_some() && self.claims.user.is_some();
        let req =
            crate::admit::request(&live, &self.claims, &scope, how, fleet, shared.clock.now());
        let ents = shared.store.entitlements();
        let deny = shared.store.deny_guard();
        crate::admission::admit(&req, &ents, &deny, &shared.revocations, &shared.sessions).is_ok()
    }

    fn sent(&self, n: u64) {
        self.session.add_bytes(n);
    }

    fn closed(&self) {
        release(&self.shared, &self.session);
    }
}
