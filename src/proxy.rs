//! The order of request phases, in one place (pingora's `proxy_trait.rs`
//! idea, as plain functions): check method and size → normalize path →
//! route → client address → authenticate → build the origin request →
//! fetch → pass the response on, streaming → log when the body ends.
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
use crate::auth::{AuthMethod, AuthRequest, Decision, Step, Verdict};
use crate::body::{BodyEnd, IdleTimeout, ProxyBody, Tracked};
use crate::error::ProxyError;
use crate::headers;
use crate::metrics::AuthLabels;
use crate::runtime::{Live, Shared};

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
    let client_ip = headers::client_ip(conn.peer.ip(), req.headers(), &live.trusted_proxies);
    let mut record = RequestRecord {
        start: Instant::now(),
        client_ip,
        method: req.method().clone(),
        version: req.version(),
        path: loggable_target(req.uri().path(), req.uri().query(), &live.credentials),
        route: None,
        channel: None,
        status: 0,
        code: "proxied",
        blame: None,
        user: None,
        origin_status: None,
        origin_latency: None,
    };
    let result = forward(&live, &shared, conn, req, &mut record).await;
    let response = result.unwrap_or_else(|e| {
        record.code = e.code();
        record.blame = Some(e.blame());
        error_response(e)
    });
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
async fn authenticate(live: &Live, methods: &[AuthMethod], req: &AuthRequest<'_>) -> Decision {
    let mut start = 0;
    loop {
        let at = match live.auth.decide_from(methods, start, req) {
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

    // 3. Route and channel.
    let route_id = live.routes.lookup(&path).ok_or(ProxyError::NoRoute)?;
    let route = live
        .config
        .routes
        .get(route_id)
        .ok_or(ProxyError::Internal)?;
    record.route = Some(route.name.clone());
    record.channel = live.routes.channel(route_id, &path).map(str::to_owned);

    // 4. Authenticate.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let auth_request = AuthRequest {
        client_ip: record.client_ip,
        path: &path,
        query: req.uri().query(),
        headers: req.headers(),
        channel: record.channel.as_deref(),
        now,
    };
    let decision = authenticate(live, &route.auth, &auth_request).await;
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
    record.user = decision.result?.user;

    // 5. Build the origin request: normalized path, query without our own
    //    parameters, end-to-end headers only.
    let origin = live.origins.get(route.origin).ok_or(ProxyError::Internal)?;
    let query = req.uri().query().and_then(|q| live.credentials.strip(q));
    let uri = origin.uri_for(&crate::path::encode_for_origin(&path), query.as_deref())?;
    let (parts, _body) = req.into_parts();
    let mut out = Request::new(Empty::<Bytes>::new());
    *out.method_mut() = parts.method;
    *out.uri_mut() = uri;
    *out.headers_mut() = parts.headers;
    let h = out.headers_mut();
    headers::strip_hop_by_hop(h);
    h.remove(header::HOST);
    // Like nginx's $proxy_add_x_forwarded_for: the hop we saw is the TCP
    // peer (a trusted load balancer has already listed the client).
    headers::append_forwarded_for(h, conn.peer.ip());
    h.insert("x-forwarded-proto", HeaderValue::from_static(conn.scheme));

    // 6. Fetch the response head.
    let sent = Instant::now();
    let resp = origin.send(out).await?;
    let latency = sent.elapsed();
    record.origin_latency = Some(latency);
    record.origin_status = Some(resp.status().as_u16());
    shared
        .metrics
        .origin_duration
        .get_or_create(&crate::metrics::OriginLabel {
            origin: origin.config().name.clone(),
        })
        .observe(latency.as_secs_f64());

    // 7. Pass it on, streaming; an origin failure mid-body aborts the response.
    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    // The viewer's connection has its own version; an HTTP/1.0 origin must
    // not turn the viewer's response into HTTP/1.0.
    parts.version = http::Version::HTTP_11;
    let body = IdleTimeout::new(body, origin.config().idle_timeout);
    Ok(Response::from_parts(parts, body.boxed_unsync()))
}
