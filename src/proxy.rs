//! The order of request phases, in one place (pingora's `proxy_trait.rs`
//! idea, as plain functions):
//!
//! 1. check method and size; 2. normalize the path (2b: the key endpoint,
//!    [`crate::keyserver`]); 3. route; 4. who is asking: the session
//!    capability, or entry credentials ([`entry`]); 5. admit the session
//!    ([`crate::admit`], whose pure core is [`crate::admission`]); 6. fetch
//!    and answer: an encrypted segment ([`segment`]), a rewritten playlist
//!    ([`playlist`]) or straight through ([`passthrough`]); 7. respond,
//!    streaming; 8. log when the body ends.
//!
//! Every early exit is a [`ProxyError`]; [`crate::error`] decides what it
//! looks like. Nothing here blocks or holds a lock across an await.

mod backend_server;
mod channel_list;
mod entry;
mod mpegts;
mod passthrough;
mod playlist;
mod segment;

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::access_log::{RequestRecord, loggable_target};
use crate::admit::{Admission, admit, verify_capability};
use crate::auth::query::param_exact;
use crate::auth::{AuthMethod, SessionLimit};
use crate::body::{BodyEnd, ProxyBody, Tracked};
use crate::capability::{ByteRange, Claims, Scope, Serve};
use crate::config::RouteConfig;
use crate::error::ProxyError;
use crate::headers;
use crate::origin::Origin;
use crate::playlist_cache::Compile;
use crate::runtime::{Live, Shared};
use crate::zerocopy::ZeroCopy;

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
    let mut record = record_for(&live, conn, &req);
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
    let tracked = Tracked::new(body, move |bytes, end: BodyEnd| {
        record.finish(&shared.metrics, log, bytes, end);
    });
    Response::from_parts(parts, tracked.boxed_unsync())
}

/// The access-log record of a request, filled in as its phases go.
fn record_for(live: &Live, conn: ConnInfo, req: &Request<Incoming>) -> RequestRecord {
    RequestRecord {
        start: Instant::now(),
        client_ip: headers::client_ip(conn.peer.ip(), req.headers(), &live.trusted_proxies),
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
    }
}

/// The `{"error":"<code>"}` response for `e` ([`ProxyError::response`]).
pub fn error_response(e: ProxyError) -> Response<ProxyBody> {
    e.response()
        .map(|b| b.map_err(|never| match never {}).boxed_unsync())
}

/// The answer to a CORS preflight.
fn preflight(request: &http::HeaderMap) -> Response<ProxyBody> {
    let mut resp = Response::new(crate::body::empty());
    *resp.status_mut() = http::StatusCode::NO_CONTENT;
    *resp.headers_mut() = crate::cors::preflight(request);
    resp
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

/// Who is asking, after phase 4.
struct Who {
    claims: Claims,
    /// A limit the auth method set (entry requests only).
    limit: Option<SessionLimit>,
    /// The method that allowed an entry request.
    method: Option<AuthMethod>,
    /// The `?token=` an entry request presented (for the blocklists).
    presented: Option<String>,
}

async fn forward(
    live: &Live,
    shared: &Arc<Shared>,
    conn: ConnInfo,
    req: Request<Incoming>,
    record: &mut RequestRecord,
) -> Result<Response<ProxyBody>, ProxyError> {
    // 1–2. Method, size, canonical path: everything after sees only it.
    let path = canonical_path(live, &req)?;
    let now = shared.clock.now();
    // 2b. The key endpoint lives under a reserved path, outside every route.
    if path.starts_with(crate::keyserver::PREFIX) {
        return crate::keyserver::serve(live, shared, &path, req.uri().query(), record, now).await;
    }
    // 2c. The channel list, outside every route too.
    if channel_list::is_list_path(&path) && live.config.channel_list.is_some() {
        return channel_list::serve(live, shared, conn, &req, record, now);
    }
    // 2d. `[backend_server]`: another streaming server asking.
    if let Some(bs) = &live.config.backend_server
        && path == bs.path
    {
        return backend_server::serve(live, shared, bs, &req, record, now).await;
    }
    // 3. Route and channel.
    let route = route(live, &path, record)?;
    let channel = record.channel.clone().unwrap_or_default();
    let scope = Scope {
        route: &route.name,
        channel: &channel,
        client_ip: record.client_ip,
    };
    // 4. Who is asking: the session capability, or entry credentials.
    let query = req.uri().query();
    let capability = query.and_then(|q| param_exact(q, &live.config.sessions.capability_param));
    let who = match capability {
        Some(token) => Who {
            claims: verify_capability(live, token, &scope, now)?,
            limit: None,
            method: None,
            presented: None,
        },
        None => entry::entry(live, shared, route, &path, &req, record, now).await?,
    };
    record.user = who.claims.user.clone();
    // 5. Admit: create or refresh the session.
    let how = Admission {
        entry: capability.is_none(),
        vouched: route.auth.iter().any(|m| m.vouches_for_users()),
        limit: who.limit,
        token: who.presented.as_deref(),
        archive_from: route
            .catchup
            .then(|| crate::catchup::window(&path))
            .flatten()
            .map(|w| w.earliest(now)),
    };
    record.session = Some(admit(live, shared, &who.claims, &scope, how, now).await?);
    if capability.is_none() {
        remember_entry(shared, &who, query, now);
    }
    // 6. Fetch and answer.
    let ctx = Ctx {
        live,
        shared,
        route,
        channel: &channel,
        path: &path,
        claims: &who.claims,
        scope: &scope,
        now,
        is_head: req.method() == Method::HEAD,
    };
    answer(&ctx, conn, req, record).await
}

/// Phases 1 and 2: GET or HEAD (HLS players never send anything else), a
/// target within `server.max_uri_bytes`, and its path normalized.
fn canonical_path(live: &Live, req: &Request<Incoming>) -> Result<String, ProxyError> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Err(ProxyError::MethodNotAllowed);
    }
    let max = live.config.server.max_uri_bytes;
    let target_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > max {
        return Err(ProxyError::UriTooLong);
    }
    crate::path::normalize(req.uri().path(), max).map_err(|e| match e {
        crate::path::PathError::TooLong => ProxyError::UriTooLong,
        _ => ProxyError::BadPath,
    })
}

/// Phase 3: the route by longest prefix, and the channel its paths name.
fn route<'l>(
    live: &'l Live,
    path: &str,
    record: &mut RequestRecord,
) -> Result<&'l RouteConfig, ProxyError> {
    let route_id = live.routes.lookup(path).ok_or(ProxyError::NoRoute)?;
    let route = live
        .config
        .routes
        .get(route_id)
        .ok_or(ProxyError::Internal)?;
    record.route = Some(route.name.clone());
    record.channel = live.routes.channel(route_id, path).map(str::to_owned);
    Ok(route)
}

/// Remember what admitted an entry, so a token block or a replaced user
/// finds the session later (also after a restart).
fn remember_entry(shared: &Shared, who: &Who, query: Option<&str>, now: u64) {
    let claims = &who.claims;
    let Some((credential, of_user)) = entry::entry_credential(
        query,
        who.presented.as_deref(),
        who.method,
        claims.user.is_some(),
    ) else {
        return;
    };
    shared.revocations.admit(
        claims.sid,
        claims.user.as_deref(),
        credential,
        of_user,
        claims.expires,
        now,
    );
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

/// Phase 6: by segment tag, by playlist path, or straight through.
async fn answer(
    ctx: &Ctx<'_>,
    conn: ConnInfo,
    req: Request<Incoming>,
    record: &mut RequestRecord,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (live, route, path) = (ctx.live, ctx.route, ctx.path);
    let sessions = &live.config.sessions;
    let origin = live.origins.get(route.origin).ok_or(ProxyError::Internal)?;
    let query = req.uri().query();
    let tag = query.and_then(|q| param_exact(q, &sessions.tag_param));
    let origin_path = crate::path::encode_for_origin(path);
    let Some(tag) = tag.filter(|_| route.encrypt) else {
        let origin_query = query.and_then(|q| live.credentials.strip(q));
        let uri = origin.uri_for(&origin_path, origin_query.as_deref())?;
        if route.mpegts {
            return mpegts::serve(ctx, origin, uri, conn, req, record).await;
        }
        if is_playlist_path(path) {
            return playlist::serve_playlist(ctx, origin, uri, record).await;
        }
        return passthrough::passthrough(ctx, origin, uri, conn, req, Through::Untagged, record)
            .await;
    };
    // The tag signs the URI's own query; what a viewer added after the
    // proxy's parameters is dropped (not forwarded, not a cache key).
    let signed = crate::capability::signed_query(
        query.unwrap_or_default(),
        &sessions.capability_param,
        &sessions.tag_param,
    );
    let (serve, keys) = live
        .verify_with(|k| k.verify_tag_with_query(tag, &route.name, ctx.channel, path, signed))
        .map_err(|_| ProxyError::Forbidden)?;
    let uri = origin.uri_for(&origin_path, live.credentials.strip(signed).as_deref())?;
    match serve {
        Serve::Encrypt { .. } => {
            // Present only on a plain HTTP/1.x connection (crate::zerocopy).
            let zero_copy = req.extensions().get::<ZeroCopy>().cloned();
            let viewer = req.headers();
            let tagged = segment::Tagged { serve, keys };
            segment::serve_encrypted(ctx, origin, uri, tagged, viewer, zero_copy, record).await
        }
        Serve::Clear { range } => {
            let through = Through::Tagged(range);
            passthrough::passthrough(ctx, origin, uri, conn, req, through, record).await
        }
        // Signed for a key path only, so never verifies here.
        Serve::Key { .. } => Err(ProxyError::Forbidden),
    }
}

/// What every answer of one request needs to know.
struct Ctx<'a> {
    live: &'a Live,
    shared: &'a Arc<Shared>,
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
        let config = &self.live.config;
        Compile {
            route: &self.route.name,
            channel: self.channel,
            path: self.path,
            origin,
            encrypt: self.route.encrypt,
            rotate_every_secs: config.keys.rotate_every.as_secs().max(1),
            cap_param: &config.sessions.capability_param,
            tag_param: &config.sessions.tag_param,
            keys: &self.live.keys,
            incarnations: &self.shared.incarnations,
            max_bytes: config.cache.max_playlist,
            now: self.now,
            key_until: config.sessions.capability_expiry(self.now),
            stable: self.route.encrypt
                && self.shared.store.entitlements().has_catchup(self.channel),
            rotations: self.shared.rotations.load_full(),
        }
    }
}
