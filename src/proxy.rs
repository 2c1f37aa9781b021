//! The order of request phases, in one place (pingora's `proxy_trait.rs`
//! idea, as plain functions): check method and size → normalize path →
//! key endpoint? → route → client address → authenticate (entry
//! credentials, or the session capability) → admit the session → fetch
//! (playlist micro-cache, encrypted-segment cache, or straight through) →
//! rewrite or encrypt → respond, streaming → log when the body ends.
//!
//! Every early exit is a [`ProxyError`]; [`crate::error`] decides what it
//! looks like. Nothing here blocks or holds a lock across an await.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::access_log::{RequestRecord, loggable_target};
use crate::auth::{AuthMethod, AuthRequest, Decision, Identity, SessionLimit, Step, Verdict};
use crate::body::{BodyEnd, ProxyBody, Tracked};
use crate::capability::{ByteRange, Claims, Scope, Serve};
use crate::config::OnLimit;
use crate::config::RouteConfig;
use crate::error::ProxyError;
use crate::headers;
use crate::metrics::{AuthLabels, ResultLabel};
use crate::origin::Origin;
use crate::playlist::{Compile, Fetched};
use crate::revocation::{Credential, Reason};
use crate::runtime::{Live, Shared, unix_now};
use crate::session::{Admitted, Ask, Policy, Refused, Session};

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// TCP peer.
    pub peer: SocketAddr,
    /// `http` or `https`, for `X-Forwarded-Proto`.
    pub scheme: &'static str,
}

/// Serve one viewer request. Never fails: every failure becomes a response.
pub async fn handle(
    shared: Arc<Shared>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let live = shared.live();
    let cors_origin = req.headers().get(header::ORIGIN).cloned();
    let client_ip = headers::client_ip(conn.peer.ip(), req.headers(), &live.trusted_proxies);
    let mut record = RequestRecord {
        start: Instant::now(),
        client_ip,
        method: req.method().clone(),
        version: req.version(),
        // Only the access log reads it: no strip and no allocation without one.
        path: if live.config.log.access {
            loggable_target(req.uri().path(), req.uri().query(), &live.credentials)
        } else {
            String::new()
        },
        route: None,
        channel: None,
        status: 0,
        code: "proxied",
        blame: None,
        user: None,
        origin_status: None,
        origin_latency: None,
        session: None,
    };
    let result = if req.method() == Method::OPTIONS {
        record.code = "preflight";
        Ok(preflight(req.headers()))
    } else {
        forward(&live, &shared, conn, req, &mut record).await
    };
    let mut response = result.unwrap_or_else(|e| {
        record.code = e.code();
        record.blame = Some(e.blame());
        error_response(e)
    });
    crate::cors::decorate(cors_origin.as_ref(), response.headers_mut());
    record.status = response.status().as_u16();
    let log = live.config.log.access;
    let (parts, body) = response.into_parts();
    let shared2 = shared.clone();
    let tracked = Tracked::new(body, move |bytes, end: BodyEnd| {
        record.finish(&shared2.metrics, log, bytes, end);
    });
    Response::from_parts(parts, tracked.boxed_unsync())
}

/// Phase 4: walk the route's methods; the synchronous ones in
/// [`crate::auth`], and at a `backend` entry await the backends, going on
/// with the next method when it passes.
async fn authenticate(
    live: &Live,
    shared: &Shared,
    methods: &[AuthMethod],
    req: &AuthRequest<'_>,
) -> Decision {
    // The API's own layer: the `token` method asks it which `[[user]]`
    // ids the API replaced (their config credentials no longer count).
    let api = shared.api_layer();
    let mut start = 0;
    loop {
        let at = match live.auth.decide_from(methods, start, req, Some(&api)) {
            Step::Done(decision) => return decision,
            Step::Backend(at) => at,
        };
        // Validation guarantees a client when a route lists `backend`;
        // without one, fail closed.
        let verdict = match &live.backend {
            Some(backend) => backend.check(req).await,
            None => Verdict::Deny(ProxyError::Internal),
        };
        let result = match verdict {
            Verdict::Allow(id) => Ok(id),
            Verdict::Deny(e) => Err(e),
            Verdict::Pass => {
                start = at + 1;
                continue;
            }
        };
        return Decision {
            result,
            method: Some(AuthMethod::Backend),
        };
    }
}

/// The `{"error":"<code>"}` response for `e`.
pub fn error_response(e: ProxyError) -> Response<ProxyBody> {
    let mut resp = Response::new(
        Full::new(e.body())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = e.status();
    for (name, value) in e.headers() {
        resp.headers_mut().insert(name, value);
    }
    if e == ProxyError::MethodNotAllowed {
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    resp
}

/// The answer to a CORS preflight.
fn preflight(request: &http::HeaderMap) -> Response<ProxyBody> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = http::StatusCode::NO_CONTENT;
    *resp.headers_mut() = crate::cors::preflight(request);
    resp
}

fn empty() -> ProxyBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn full(bytes: Bytes) -> ProxyBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A request target ending in a playlist extension.
fn is_playlist_path(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or("");
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    ext.eq_ignore_ascii_case("m3u8") || ext.eq_ignore_ascii_case("m3u")
}

/// A `Content-Type` naming an HLS playlist.
fn is_playlist_type(v: Option<&HeaderValue>) -> bool {
    v.and_then(|v| v.to_str().ok()).is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t.contains("mpegurl")
    })
}

async fn forward(
    live: &Live,
    shared: &Shared,
    conn: ConnInfo,
    req: Request<Incoming>,
    record: &mut RequestRecord,
) -> Result<Response<ProxyBody>, ProxyError> {
    // 1. Method and size: HLS players only ever GET (and some HEAD).
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Err(ProxyError::MethodNotAllowed);
    }
    let target_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > live.config.server.max_uri_bytes {
        return Err(ProxyError::UriTooLong);
    }

    // 2. Normalize: everything after this sees only the canonical path.
    let path = crate::path::normalize(req.uri().path(), live.config.server.max_uri_bytes).map_err(
        |e| match e {
            crate::path::PathError::TooLong => ProxyError::UriTooLong,
            _ => ProxyError::BadPath,
        },
    )?;
    let now = unix_now();

    // 2b. The key endpoint lives under a reserved path, outside every route.
    if path.starts_with(crate::keyserver::PREFIX) {
        return serve_key(live, shared, &path, req.uri().query(), record, now).await;
    }

    // 3. Route and channel.
    let route_id = live.routes.lookup(&path).ok_or(ProxyError::NoRoute)?;
    let route = live
        .config
        .routes
        .get(route_id)
        .ok_or(ProxyError::Internal)?;
    record.route = Some(route.name.clone());
    record.channel = live.routes.channel(route_id, &path).map(str::to_owned);
    let channel = record.channel.clone().unwrap_or_default();

    // 4. Who is asking: the session capability, or entry credentials.
    let query = req.uri().query();
    let sessions = &live.config.sessions;
    let scope = Scope {
        route: &route.name,
        channel: &channel,
        client_ip: record.client_ip,
    };
    let capability =
        query.and_then(|q| crate::auth::query::param_exact(q, &sessions.capability_param));
    let mut limit = None;
    let mut method = None;
    let claims = match capability {
        Some(token) => verify_capability(live, token, &scope, now)?,
        None => {
            let (identity, by) = entry(live, shared, route, &path, &req, record, now).await?;
            limit = identity.session_limit;
            method = by;
            let user = identity.user;
            let sid =
                live.keys
                    .session_id(user.as_deref(), &route.name, &channel, record.client_ip);
            // An entry the `ip` method allowed had its address as its only
            // credential: the capability never works from elsewhere.
            let by_address = method == Some(AuthMethod::Ip);
            Claims {
                sid,
                expires: shared
                    .revocations
                    .mint_expiry(sid, sessions.capability_expiry(now)),
                user,
                bind_ip: sessions.bind_ip.binding(record.client_ip, by_address),
            }
        }
    };
    record.user = claims.user.clone();
    // A token on a blocklist is refused wherever it is presented, whatever
    // method read it (checked at entry: capabilities carry no token).
    let presented = match capability {
        Some(_) => None,
        None => query
            .and_then(|q| crate::auth::query::param(q, "token"))
            .map(|t| String::from_utf8_lossy(&crate::auth::query::percent_decode(t)).into_owned()),
    };

    // 5. Admit: create or refresh the session. (Entitlements, limits and
    //    blocklists hook in here.)
    record.session = Some(
        admit(
            live,
            shared,
            &claims,
            &scope,
            Admission {
                entry: capability.is_none(),
                vouched: route.auth.iter().any(|m| m.vouches_for_users()),
                limit,
                token: presented.as_deref(),
            },
            now,
        )
        .await?,
    );
    // Remember what admitted it, so a token block or a replaced user finds
    // the session later (also after a restart).
    if capability.is_none()
        && let Some((credential, of_user)) =
            entry_credential(query, presented.as_deref(), method, claims.user.is_some())
    {
        shared.revocations.admit(
            claims.sid,
            claims.user.as_deref(),
            credential,
            of_user,
            claims.expires,
            now,
        );
    }

    // 6. Fetch and answer: by segment tag, by playlist path, or straight through.
    let origin = live.origins.get(route.origin).ok_or(ProxyError::Internal)?;
    let origin_query = query.and_then(|q| live.credentials.strip(q));
    let uri = origin.uri_for(
        &crate::path::encode_for_origin(&path),
        origin_query.as_deref(),
    )?;
    let is_head = req.method() == Method::HEAD;
    let tag = query.and_then(|q| crate::auth::query::param_exact(q, &sessions.tag_param));
    let ctx = Ctx {
        live,
        shared,
        route,
        channel: &channel,
        path: &path,
        claims: &claims,
        scope: &scope,
        now,
        is_head,
    };
    if route.encrypt
        && let Some(tag) = tag
    {
        // The tag signs the URI's own query; what a viewer added after the
        // proxy's parameters is dropped (not forwarded, not a cache key).
        let signed = crate::capability::signed_query(
            query.unwrap_or_default(),
            &sessions.capability_param,
            &sessions.tag_param,
        );
        let serve = live
            .keys
            .verify_tag_with_query(tag, &route.name, &channel, &path, signed)
            .map_err(|_| ProxyError::Forbidden)?;
        let uri = origin.uri_for(
            &crate::path::encode_for_origin(&path),
            live.credentials.strip(signed).as_deref(),
        )?;
        return match serve {
            Serve::Encrypt { .. } => {
                serve_encrypted(&ctx, origin, uri, serve, req.headers(), record).await
            }
            Serve::Clear { range } => {
                passthrough(&ctx, origin, uri, conn, req, Through::Tagged(range), record).await
            }
            // Signed for a key path only, so never verifies here.
            Serve::Key { .. } => Err(ProxyError::Forbidden),
        };
    }
    if is_playlist_path(&path) {
        return serve_playlist(&ctx, origin, uri, record).await;
    }
    passthrough(&ctx, origin, uri, conn, req, Through::Untagged, record).await
}

/// Why a request goes straight through.
#[derive(Debug, Clone, Copy)]
enum Through {
    /// A segment tag said "serve clear", optionally one byte range.
    Tagged(Option<ByteRange>),
    /// No tag: fine on a route without encryption; on an encrypting route
    /// only a playlist may be answered.
    Untagged,
}

/// How a request asks to be admitted.
#[derive(Debug, Clone, Copy)]
struct Admission<'a> {
    /// The viewer just presented fresh credentials (clears a kick).
    entry: bool,
    /// The route has a method that names users the entitlements need not
    /// list ([`AuthMethod::vouches_for_users`]).
    vouched: bool,
    /// The `?token=` the viewer presented at entry (for the blocklists).
    token: Option<&'a str>,
    /// A limit the auth method set (the backend's `X-Max-Sessions` /
    /// `X-Unique`).
    limit: Option<SessionLimit>,
}

/// Create or refresh the session `claims` name, counting a new one.
///
/// Limits: the one the auth method set; the user's own `max_sessions` comes
/// with the entitlements layer (until then, unlimited).
async fn admit(
    live: &Live,
    shared: &Shared,
    claims: &Claims,
    scope: &Scope<'_>,
    how: Admission<'_>,
    now: u64,
) -> Result<Arc<Session>, ProxyError> {
    let policy = match (how.limit, live.config.sessions.on_limit) {
        (
            Some(SessionLimit {
                evict_oldest: true, ..
            }),
            _,
        )
        | (_, OnLimit::EvictOldest) => Policy::EvictOldest,
        _ => Policy::Reject,
    };
    // Entitlements on every request: a blocked, disabled or removed user's
    // sessions stop at their very next playlist, segment or key request.
    let ents = shared.entitlements();
    if let Err(denial) = shared.check_deny(claims.user.as_deref(), how.token, scope.client_ip) {
        return Err(refused(shared, claims, denial).await);
    }
    let grant = match claims.user.as_deref() {
        Some(user) if ents.user(user).is_some() => {
            ents.decide(Some(user), how.token, scope.channel, scope.client_ip, now)
        }
        // Users an auth method of the route vouches for but the
        // entitlements do not list (a backend's X-UserId, a WMSAuth id)
        // only meet the blocklist.
        Some(user) if how.vouched => ents
            .check_blocklist(Some(user), how.token, scope.client_ip)
            .map(|()| crate::entitlements::Grant { max_sessions: 0 }),
        // Anyone else must be listed: a deleted user's capability (even one
        // re-adopting a session the table forgot) is refused.
        Some(_) => Err(crate::entitlements::Denial::Forbidden),
        None => ents.decide(None, how.token, scope.channel, scope.client_ip, now),
    };
    let grant = match grant {
        Ok(grant) => grant,
        Err(denial) => return Err(refused(shared, claims, denial).await),
    };
    // Revoked (kicked, token blocked, credential replaced): every request
    // kind comes through here, so playlists, segments and keys alike.
    check_revoked(shared, claims)?;
    let max = how.limit.map_or(grant.max_sessions, |l| l.max);
    let until = live.config.sessions.capability_expiry(now);
    // With a fleet store the fleet counts; this edge only keeps its table.
    let fleet = shared.fleet.as_ref().zip(claims.user.as_deref());
    let ask = Ask {
        id: claims.sid,
        user: claims.user.as_deref(),
        max_sessions: if fleet.is_some() { 0 } else { max },
        policy,
        entry: how.entry,
        now,
        tombstone_until: until,
    };
    let (session, admitted) = shared
        .sessions
        .admit(&ask, || {
            Session::new(
                claims.sid,
                claims.user.as_deref(),
                scope.route,
                scope.channel,
                scope.client_ip,
                now,
            )
        })
        .map_err(|refused| match refused {
            Refused::Limit => ProxyError::SessionLimit,
            Refused::Ended => ProxyError::SessionEvicted,
        })?;
    if let Some((store, user)) = fleet {
        fleet_admit(
            shared, store, user, &session, &admitted, max, policy, how.entry, until, now,
        )
        .await?;
    }
    if matches!(admitted, Admitted::Created { .. }) {
        shared.metrics.sessions_created.inc();
        shared
            .metrics
            .sessions
            .set(i64::try_from(shared.sessions.len()).unwrap_or(i64::MAX));
    }
    Ok(session)
}

/// A viewer refused at admission (no longer entitled, blocked, …) holds no
/// `max_sessions` slot: its session, if it had one, goes now (here and in the
/// fleet store, before the answer), not when it would have gone idle.
async fn refused(
    shared: &Shared,
    claims: &Claims,
    denial: crate::entitlements::Denial,
) -> ProxyError {
    shared
        .release_session(claims.sid, claims.user.as_deref())
        .await;
    ProxyError::from(denial)
}

/// The fleet half of admission: a session new to this edge asks the shared
/// store (which counts the user's sessions on every edge). A live one asks
/// nothing: the edge's heartbeat (`runtime::fleet_agent`) carries it, adds
/// it back if Redis lost it, and ends it here when another edge evicted it
/// or an operator kicked it.
#[allow(clippy::too_many_arguments)]
async fn fleet_admit(
    shared: &Shared,
    store: &crate::fleet::FleetStore,
    user: &str,
    session: &Session,
    admitted: &Admitted,
    max: u32,
    policy: Policy,
    entry: bool,
    until: u64,
    now: u64,
) -> Result<(), ProxyError> {
    use crate::fleet::{Admission as Fleet, Policy as FleetPolicy};
    let now_ms = now.saturating_mul(1000);
    if matches!(admitted, Admitted::Existing) {
        return Ok(());
    }
    let policy = match policy {
        Policy::Reject => FleetPolicy::Reject,
        Policy::EvictOldest => FleetPolicy::EvictOldest,
    };
    let admission = if entry {
        store.admit(user, session.id, max, policy, now_ms).await
    } else {
        store.readmit(user, session.id, max, policy, now_ms).await
    };
    match admission {
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

/// What every answer of one request needs to know.
struct Ctx<'a> {
    live: &'a Live,
    shared: &'a Shared,
    route: &'a RouteConfig,
    channel: &'a str,
    path: &'a str,
    claims: &'a Claims,
    scope: &'a Scope<'a>,
    now: u64,
    is_head: bool,
}

impl Ctx<'_> {
    /// A fresh capability for this session, for the URIs of a rewritten playlist.
    fn mint(&self) -> String {
        let sid = self.claims.sid;
        let revocations = &self.shared.revocations;
        let expires =
            revocations.mint_expiry(sid, self.live.config.sessions.capability_expiry(self.now));
        revocations.extend(sid, expires);
        let claims = Claims {
            expires,
            ..self.claims.clone()
        };
        self.live.keys.mint(&claims, self.scope)
    }

    fn compile<'s>(&'s self, origin: &'s Origin) -> Compile<'s> {
        Compile {
            route: &self.route.name,
            channel: self.channel,
            path: self.path,
            origin,
            encrypt: self.route.encrypt,
            rotate_every_secs: self.live.config.keys.rotate_every.as_secs().max(1),
            cap_param: &self.live.config.sessions.capability_param,
            tag_param: &self.live.config.sessions.tag_param,
            keys: &self.live.keys,
            incarnations: &self.shared.incarnations,
            max_bytes: self.live.config.cache.max_playlist,
            now: self.now,
            key_until: self.live.config.sessions.capability_expiry(self.now),
        }
    }
}

/// Phase 4 for an entry request: run the route's methods, count the decision;
/// the identity and the method that allowed it.
async fn entry(
    live: &Live,
    shared: &Shared,
    route: &RouteConfig,
    path: &str,
    req: &Request<Incoming>,
    record: &RequestRecord,
    now: u64,
) -> Result<(Identity, Option<AuthMethod>), ProxyError> {
    let auth_request = AuthRequest {
        client_ip: record.client_ip,
        path,
        query: req.uri().query(),
        headers: req.headers(),
        channel: record.channel.as_deref(),
        now,
    };
    let decision = authenticate(live, shared, &route.auth, &auth_request).await;
    shared
        .metrics
        .auth_decisions
        .get_or_create(&AuthLabels {
            method: match (decision.method, &decision.result) {
                (Some(m), _) => m.as_str(),
                (None, Err(ProxyError::IpDenied)) => "deny_list",
                (None, _) => "none",
            },
            outcome: decision.result.as_ref().err().map_or("allow", |e| e.code()),
        })
        .inc();
    decision.result.map(|id| (id, decision.method))
}

/// The one check of a session capability, for playlists, segments and
/// keys alike: authentic, unexpired, for this route and channel (and
/// address, when bound). Whether it was revoked (kicked, its token
/// blocked, its user's credential replaced, also before a restart) is
/// [`check_revoked`], in [`admit`], which every request kind passes.
fn verify_capability(
    live: &Live,
    token: &str,
    scope: &Scope<'_>,
    now: u64,
) -> Result<Claims, ProxyError> {
    live.keys
        .verify(token, scope, now)
        .map_err(|_| ProxyError::Forbidden)
}

/// Phase 5's revocation check, after the entitlements (a blocked or
/// deleted user is told so, whatever else happened to the session).
fn check_revoked(shared: &Shared, claims: &Claims) -> Result<(), ProxyError> {
    shared
        .revocations
        .check(claims.sid, claims.expires)
        .map_err(|reason| match reason {
            Reason::Ended => ProxyError::SessionEvicted,
            Reason::Blocked => ProxyError::Blocked,
            Reason::Revoked => ProxyError::Forbidden,
        })
}

/// The credential an entry request presented, as revocation remembers it,
/// and whether the `token` method vouched for the user with it: a
/// `?token=` whatever method read it (a block of the token must find the
/// session), or the password of `?auth=` when the `token` method admitted.
fn entry_credential(
    query: Option<&str>,
    token: Option<&str>,
    method: Option<AuthMethod>,
    has_user: bool,
) -> Option<(Credential, bool)> {
    let by_token = method == Some(AuthMethod::Token) && has_user;
    if let Some(t) = token {
        return Some((Credential::token(t.as_bytes()), by_token));
    }
    if !by_token {
        return None;
    }
    let auth = crate::auth::query::param(query?, "auth")?;
    let auth = crate::auth::query::percent_decode(auth);
    let colon = auth.iter().position(|&b| b == b':')?;
    let password = auth.get(colon + 1..).unwrap_or_default();
    Some((Credential::password(password), true))
}

/// A rewritten playlist for this session.
async fn serve_playlist(
    ctx: &Ctx<'_>,
    origin: &Arc<Origin>,
    uri: http::Uri,
    record: &mut RequestRecord,
) -> Result<Response<ProxyBody>, ProxyError> {
    let compile = ctx.compile(origin);
    let sent = Instant::now();
    let timings = &ctx.shared.metrics.origin_duration;
    let fetched = ctx
        .live
        .playlists
        .get(origin, uri, &compile, timings)
        .await?;
    record.origin_latency = Some(sent.elapsed());
    render(ctx, &fetched, record)
}

/// Turn a fetched playlist into this session's response.
fn render(
    ctx: &Ctx<'_>,
    fetched: &Fetched,
    record: &mut RequestRecord,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (status, content_type, body) = match fetched {
        Fetched::Playlist {
            template,
            content_type,
        } => {
            ctx.shared.metrics.playlists_rewritten.inc();
            let ct = content_type
                .clone()
                .unwrap_or(HeaderValue::from_static("application/vnd.apple.mpegurl"));
            (http::StatusCode::OK, Some(ct), template.render(&ctx.mint()))
        }
        Fetched::Other {
            status,
            content_type,
            body,
        } => (*status, content_type.clone(), body.clone()),
    };
    record.origin_status = Some(status.as_u16());
    let mut resp = Response::new(if ctx.is_head {
        empty()
    } else {
        full(body.clone())
    });
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if let Some(ct) = content_type {
        h.insert(header::CONTENT_TYPE, ct);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(resp)
}

/// An encrypted segment from the shared cache (one origin fetch and one
/// encryption however many viewers ask at once).
async fn serve_encrypted(
    ctx: &Ctx<'_>,
    origin: &Arc<Origin>,
    uri: http::Uri,
    serve: Serve,
    viewer: &http::HeaderMap,
    record: &mut RequestRecord,
) -> Result<Response<ProxyBody>, ProxyError> {
    let Serve::Encrypt {
        inc,
        period,
        msn,
        range,
    } = serve
    else {
        return Err(ProxyError::Internal);
    };
    let key = ctx
        .live
        .keys
        .content_key(&ctx.route.name, ctx.channel, inc, period);
    let cipher = crate::segcache::Cipher {
        key,
        iv: crate::cbc::iv_for_msn(msn),
    };
    let seg_key = crate::segcache::SegKey::new(uri.to_string(), range, &cipher);
    let fetch_origin = Arc::clone(origin);
    let timings = ctx.shared.metrics.origin_duration.clone();
    let fetch = move || async move {
        let mut req = Request::get(uri)
            .header(header::ACCEPT_ENCODING, "identity")
            .body(Empty::<Bytes>::new())
            .map_err(|_| ProxyError::Internal)?;
        if let Some(r) = range_header(range) {
            req.headers_mut().insert(header::RANGE, r);
        }
        let resp = fetch_origin.send(req, &timings).await?;
        if range.is_some() && resp.status() == http::StatusCode::OK {
            // The origin ignored `Range:`: encrypting the whole file as the
            // range would serve the wrong bytes to everyone.
            return Err(ProxyError::BadOriginResponse);
        }
        Ok(resp)
    };
    let deadline = origin.config().total_timeout;
    let (lookup, segment) = ctx
        .shared
        .segments
        .get_within(seg_key, cipher, deadline, fetch)
        .await?;
    let label = match lookup {
        crate::segcache::Lookup::Hit => "hit",
        crate::segcache::Lookup::Joined => "joined",
        crate::segcache::Lookup::Miss => "miss",
    };
    ctx.shared
        .metrics
        .segment_cache
        .get_or_create(&ResultLabel { result: label })
        .inc();
    ctx.shared
        .metrics
        .segment_cache_bytes
        .set(i64::try_from(ctx.shared.segments.weighted_bytes()).unwrap_or(i64::MAX));
    let head = segment.head();
    record.origin_status = Some(head.status.as_u16());
    let mut resp = Response::new(empty());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        head.content_type
            .clone()
            .unwrap_or(HeaderValue::from_static("video/mp2t")),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    if !head.status.is_success() {
        // The origin's error passes through, in the clear (it is not media).
        *resp.status_mut() = head.status;
        if !ctx.is_head {
            *resp.body_mut() = segment.body(None).boxed_unsync();
        }
        return Ok(resp);
    }
    let answer = viewer
        .get(header::RANGE)
        .map_or(crate::segcache::RangeAnswer::Full, |r| {
            crate::segcache::parse_range(r, head.length)
        });
    let h = resp.headers_mut();
    h.insert(
        header::ACCEPT_RANGES,
        HeaderValue::from_static(if head.length.is_some() {
            "bytes"
        } else {
            "none"
        }),
    );
    let range = match (answer, head.length) {
        (crate::segcache::RangeAnswer::Partial(s, e), Some(total)) => {
            *resp.status_mut() = http::StatusCode::PARTIAL_CONTENT;
            let h = resp.headers_mut();
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(e - s + 1));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {s}-{e}/{total}")) {
                h.insert(header::CONTENT_RANGE, v);
            }
            Some((s, e))
        }
        (crate::segcache::RangeAnswer::Unsatisfiable, Some(total)) => {
            *resp.status_mut() = http::StatusCode::RANGE_NOT_SATISFIABLE;
            let h = resp.headers_mut();
            h.remove(header::CONTENT_TYPE);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                h.insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
        _ => {
            if let Some(total) = head.length {
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(total));
            }
            None
        }
    };
    if !ctx.is_head {
        *resp.body_mut() = segment.body(range).boxed_unsync();
    }
    Ok(resp)
}

/// `Range:` for fetching one byte range of an origin resource.
fn range_header(range: Option<ByteRange>) -> Option<HeaderValue> {
    let r = range?;
    let text = match r.length {
        Some(0) => return None,
        Some(len) => format!("bytes={}-{}", r.offset, r.offset.saturating_add(len - 1)),
        None => format!("bytes={}-", r.offset),
    };
    HeaderValue::from_str(&text).ok()
}

/// Straight through to the origin, streaming: non-encrypted routes, clear
/// resources of encrypted ones (fMP4 inits, origin keys), and anything the
/// origin turns out to answer with a playlist.
async fn passthrough(
    ctx: &Ctx<'_>,
    origin: &Arc<Origin>,
    uri: http::Uri,
    conn: ConnInfo,
    req: Request<Incoming>,
    through: Through,
    record: &mut RequestRecord,
) -> Result<Response<ProxyBody>, ProxyError> {
    let range = match through {
        Through::Tagged(range) => range,
        Through::Untagged => None,
    };
    // Build the origin request: end-to-end headers only.
    let (parts, _body) = req.into_parts();
    let mut out = Request::new(Empty::<Bytes>::new());
    *out.method_mut() = parts.method;
    *out.uri_mut() = uri.clone();
    *out.headers_mut() = parts.headers;
    let h = out.headers_mut();
    headers::strip_hop_by_hop(h);
    // Cookies, headers and `Authorization` carrying viewer credentials.
    ctx.live.credentials.strip_headers(h);
    h.remove(header::HOST);
    if range.is_some() {
        // The tag names the range; the viewer sees it as a whole resource.
        h.remove(header::RANGE);
        h.remove(header::IF_RANGE);
        if let Some(v) = range_header(range) {
            h.insert(header::RANGE, v);
        }
    }
    // Like nginx's $proxy_add_x_forwarded_for: the hop we saw is the TCP
    // peer (a trusted load balancer has already listed the client).
    headers::append_forwarded_for(h, conn.peer.ip());
    h.insert("x-forwarded-proto", HeaderValue::from_static(conn.scheme));

    // Fetch the response head.
    let sent = Instant::now();
    let resp = origin
        .send(out, &ctx.shared.metrics.origin_duration)
        .await?;
    record.origin_latency = Some(sent.elapsed());
    record.origin_status = Some(resp.status().as_u16());

    let (mut parts, body) = resp.into_parts();
    // A playlist found by its type, not its name: rewrite it like any other.
    if parts.status == http::StatusCode::OK
        && is_playlist_type(parts.headers.get(header::CONTENT_TYPE))
    {
        let fetched = crate::playlist::from_response(parts, body, &ctx.compile(origin)).await?;
        return render(ctx, &fetched, record);
    }
    if ctx.route.encrypt && matches!(through, Through::Untagged) && parts.status.is_success() {
        // No tag: nothing on an encrypting route leaves in the clear.
        return Err(ProxyError::Forbidden);
    }
    headers::strip_hop_by_hop(&mut parts.headers);
    if range.is_some() && parts.status == http::StatusCode::PARTIAL_CONTENT {
        parts.status = http::StatusCode::OK;
        parts.headers.remove(header::CONTENT_RANGE);
    }
    // The viewer's connection has its own version; an HTTP/1.0 origin must
    // not turn the viewer's response into HTTP/1.0.
    parts.version = http::Version::HTTP_11;
    Ok(Response::from_parts(parts, body.boxed_unsync()))
}

/// `GET /.tollgate/key/...`: the content key, to a live session only.
async fn serve_key(
    live: &Live,
    shared: &Shared,
    path: &str,
    query: Option<&str>,
    record: &mut RequestRecord,
    now: u64,
) -> Result<Response<ProxyBody>, ProxyError> {
    let kp = crate::keyserver::parse(path).ok_or_else(crate::keyserver::not_found)?;
    let route = live
        .config
        .routes
        .iter()
        .find(|r| r.name == kp.route && r.encrypt)
        .ok_or_else(crate::keyserver::not_found)?;
    record.route = Some(route.name.clone());
    record.channel = Some(kp.channel.to_owned());
    let sessions = &live.config.sessions;
    let token = query
        .and_then(|q| crate::auth::query::param_exact(q, &sessions.capability_param))
        .ok_or(ProxyError::Forbidden)?;
    let scope = Scope {
        route: &route.name,
        channel: kp.channel,
        client_ip: record.client_ip,
    };
    // Only a key period a playlist of this channel named, while its tag
    // lasts: never a far-future period or a foreign incarnation.
    let tag = query
        .and_then(|q| crate::auth::query::param_exact(q, &sessions.tag_param))
        .ok_or(ProxyError::Forbidden)?;
    match live.keys.verify_tag(tag, &route.name, kp.channel, path) {
        Ok(Serve::Key { until }) if now <= until => {}
        _ => return Err(ProxyError::Forbidden),
    }
    let claims = verify_capability(live, token, &scope, now)?;
    record.user = claims.user.clone();
    // The session must be live: a capability still valid brings back one the
    // table forgot (idle, restart, another edge). Kicked sessions, blocked
    // users and entitlements are checked here by the entitlements layer.
    let again = Admission {
        entry: false,
        vouched: route.auth.iter().any(|m| m.vouches_for_users()),
        limit: None,
        token: None,
    };
    record.session = Some(admit(live, shared, &claims, &scope, again, now).await?);
    let key = live
        .keys
        .content_key(&route.name, kp.channel, kp.inc, kp.period);
    shared.metrics.keys_served.inc();
    record.code = "key";
    let mut resp = Response::new(full(crate::keyserver::body(key)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(16));
    Ok(resp)
}
