//! The `backend` auth method's shell: asks the `[[auth.backend]]` services
//! over HTTP and caches their answers. The decisions themselves (what a
//! status and its `X-*` headers mean, how several answers combine, the
//! session key) are the pure core in [`crate::auth::backend`].
//!
//! Per request: the session key `token|ip|name` (name = the route's channel,
//! else the path without its leading `/`, so a playlist and its segments are
//! one session) is looked up in a moka cache of answers. A fresh answer
//! (younger than its `X-AuthDuration`, capped at [`MAX_AUTH_DURATION`]) is
//! used as is, allows and denials alike. On a miss every backend is asked at
//! once; concurrent misses for one key share that look-up (`try_get_with`),
//! so a playlist burst costs one request per backend.
//!
//! Backend down (refused, timeout, 5xx): the core is given the session's
//! last decision (kept in a second, longer-lived cache), so a viewer allowed
//! earlier keeps playing and a new viewer is refused. Such answers are not
//! cached as fresh, except that a stale allow is reused for
//! [`STALE_RETRY`] so an outage does not make every playlist request wait
//! for the timeout.
//!
//! `X-Max-Sessions` and `X-Unique` travel in the cached [`SessionParams`]
//! and become the viewer's [`crate::auth::SessionLimit`], which admission
//! (`proxy::admit`, and the fleet store) enforces. A backend redirect
//! (301/302 + `Location`) is refused with 403 since [`ProxyError`] has no
//! redirect outcome yet.
//!
//! Must not: log or label metrics with a token (the session key holds one);
//! hold a lock across an await (moka's futures do not).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;
use http::{HeaderMap, Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use moka::Expiry;
use moka::future::Cache;
use sha2::{Digest, Sha256};

use crate::auth::backend::{
    AnswerSource, BackendAnswer, BackendQuery, BackendVerdict, Cached, RequestType, SessionParams,
    combine, interpret, session_key,
};
use crate::auth::{AuthRequest, Identity, Verdict, query};
use crate::config::{BackendConfig, BackendEndpoint};
use crate::error::ProxyError;

/// Longest time an answer is trusted without asking again, whatever
/// `X-AuthDuration` says.
pub const MAX_AUTH_DURATION: Duration = Duration::from_secs(3600);

/// How long a stale allow (backend down, earlier grant reused) is reused
/// before the backends are tried again.
pub const STALE_RETRY: Duration = Duration::from_secs(5);

/// How long a session's last decision is remembered after its last
/// look-up, for `update_session` numbering and for outages. Longer than the
/// longest grant, so a grant that runs out during an outage still finds it.
const LAST_IDLE: Duration = Duration::from_secs(2 * 3600);

/// Most sessions remembered (each cache).
const MAX_SESSIONS: u64 = 200_000;

/// Largest backend answer body read (it is discarded; reading it lets the
/// connection go back to the pool).
const MAX_BODY: usize = 64 * 1024;

/// The `proto` sent to backends.
const PROTO: &str = "hls";

/// A cached answer and how long it stays fresh.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The combined answer.
    pub answer: BackendAnswer,
    /// The terms it set (the last known ones for a stale allow).
    pub params: Option<SessionParams>,
    /// How long this grant is used without asking again.
    ttl: Duration,
}

/// What is remembered of a session between look-ups.
#[derive(Debug, Clone)]
struct Last {
    decision: Cached,
    params: Option<SessionParams>,
    request_number: u64,
}

/// Each grant expires after its own `ttl`.
struct GrantExpiry;

impl Expiry<String, Arc<Grant>> for GrantExpiry {
    fn expire_after_create(&self, _: &String, g: &Arc<Grant>, _: Instant) -> Option<Duration> {
        Some(g.ttl)
    }
}

/// The backends of one config generation, their connection pool and the
/// session caches. Cheap to share (`Arc`); kept across reloads when the
/// settings did not change.
pub struct BackendClient {
    config: BackendConfig,
    client: Client<HttpConnector, Empty<Bytes>>,
    fresh: Cache<String, Arc<Grant>>,
    last: Cache<String, Last>,
}

impl std::fmt::Debug for BackendClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The cache keys hold tokens: show sizes only.
        f.debug_struct("BackendClient")
            .field("config", &self.config)
            .field("sessions", &self.last.entry_count())
            .finish()
    }
}

impl BackendClient {
    /// A client for `config` (`None` when no backend is configured).
    pub fn new(config: &BackendConfig) -> Option<Self> {
        let longest = config.backends.iter().map(|b| b.timeout).max()?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(longest));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Some(Self {
            config: config.clone(),
            client,
            fresh: Cache::builder()
                .max_capacity(MAX_SESSIONS)
                .expire_after(GrantExpiry)
                .build(),
            last: Cache::builder()
                .max_capacity(MAX_SESSIONS)
                .time_to_idle(LAST_IDLE)
                .build(),
        })
    }

    /// Reuse `previous` (warm pool, live sessions) when its settings equal
    /// `config`, else build a new client.
    pub fn reuse_or_new(
        config: &BackendConfig,
        previous: Option<&Arc<BackendClient>>,
    ) -> Option<Arc<BackendClient>> {
        match previous {
            Some(p) if p.config == *config => Some(p.clone()),
            _ => BackendClient::new(config).map(Arc::new),
        }
    }

    /// The backends' verdict on `req`: allow (with `X-UserId` as the user)
    /// or deny; never pass (the backend decides even without a token).
    pub async fn check(&self, req: &AuthRequest<'_>) -> Verdict {
        let token = req
            .query
            .and_then(|q| query::param(q, "token"))
            .map(|raw| String::from_utf8_lossy(&query::percent_decode(raw)).into_owned());
        let name = req
            .channel
            .unwrap_or_else(|| req.path.trim_start_matches('/'));
        let key = session_key(token.as_deref().unwrap_or(""), req.client_ip, name);
        let lookup = Lookup {
            token: token.as_deref(),
            ip: req.client_ip,
            name,
            headers: req.headers,
        };
        match self
            .fresh
            .try_get_with_by_ref(&key, self.ask(&key, &lookup))
            .await
        {
            Ok(grant) => verdict(&grant),
            // Not cached as fresh (backend down): still the answer for now,
            // for this request and those that waited on the same look-up.
            Err(grant) => verdict(&grant),
        }
    }

    /// Ask every backend for `key` and remember the outcome. `Err` carries
    /// an answer that must not be cached as fresh.
    async fn ask(&self, key: &str, l: &Lookup<'_>) -> Result<Arc<Grant>, Grant> {
        let last = self.last.get(key).await;
        let (request_type, number) = match &last {
            None => (RequestType::NewSession, 0),
            Some(l) => (
                RequestType::UpdateSession,
                l.request_number.saturating_add(1),
            ),
        };
        let mut q = BackendQuery::new(l.name, l.ip, PROTO, request_type, &session_id(key))
            .request_number(number);
        if let Some(t) = l.token {
            q = q.token(t);
        }
        for (header, set) in [
            (
                http::header::USER_AGENT,
                BackendQuery::user_agent as fn(_, &str) -> _,
            ),
            (http::header::REFERER, BackendQuery::referer),
            (http::header::HOST, BackendQuery::host),
        ] {
            if let Some(v) = l.headers.get(header).and_then(|v| v.to_str().ok()) {
                q = set(q, v);
            }
        }
        let qs = q.to_query_string();
        let cached = last.as_ref().map(|l| l.decision);
        let answers = join_all(self.config.backends.iter().map(|b| async {
            let (status, headers) = self.one(b, &qs).await;
            interpret(status, &headers, cached)
        }))
        .await;
        let answer = combine(&answers, self.config.allow_default);
        // `combine` keeps the terms of an allow only; a denial is cached
        // for the shortest `X-AuthDuration` among the backends that set
        // terms, so the viewer is re-checked as soon as any of them asks.
        let params = answer
            .params
            .clone()
            .or_else(|| {
                answers
                    .iter()
                    .filter_map(|a| a.params.clone())
                    .min_by_key(|p| p.auth_duration)
            })
            .or_else(|| last.as_ref().and_then(|l| l.params.clone()));
        let decision = match answer.verdict {
            BackendVerdict::Allow => Cached::Allow,
            _ => Cached::Forbidden,
        };
        if answer.source != AnswerSource::Unavailable {
            let remembered = Last {
                decision,
                params: params.clone(),
                request_number: number,
            };
            self.last.insert(key.to_owned(), remembered).await;
        }
        let duration = params
            .as_ref()
            .map_or(crate::auth::backend::DEFAULT_AUTH_DURATION, |p| {
                p.auth_duration
            })
            .min(MAX_AUTH_DURATION);
        let ttl = match answer.source {
            AnswerSource::Backend => duration,
            AnswerSource::StaleCache => duration.min(STALE_RETRY),
            AnswerSource::Unavailable => Duration::ZERO,
        };
        let grant = Grant {
            answer,
            params,
            ttl,
        };
        if ttl.is_zero() {
            Err(grant)
        } else {
            Ok(Arc::new(grant))
        }
    }

    /// One backend's status and headers; `None` when it did not answer in
    /// time (connect, head and body all within its timeout).
    async fn one(&self, b: &BackendEndpoint, qs: &str) -> (Option<u16>, HeaderMap) {
        let Some(uri) = with_query(&b.url, qs) else {
            return (None, HeaderMap::new());
        };
        let Ok(req) = Request::get(uri).body(Empty::new()) else {
            return (None, HeaderMap::new());
        };
        let exchange = async {
            let resp = self.client.request(req).await.ok()?;
            let (parts, body) = resp.into_parts();
            // Read (and drop) the body so the connection can be reused; an
            // oversized or broken body does not change the answer.
            let _ = Limited::new(body, MAX_BODY).collect().await;
            Some((parts.status.as_u16(), parts.headers))
        };
        match tokio::time::timeout(b.timeout, exchange).await {
            Ok(Some((status, headers))) => (Some(status), headers),
            Ok(None) | Err(_) => (None, HeaderMap::new()),
        }
    }
}

/// The request facts a look-up needs.
struct Lookup<'a> {
    token: Option<&'a str>,
    ip: IpAddr,
    name: &'a str,
    headers: &'a HeaderMap,
}

/// The `session_id` sent for `key`: stable per session, and not the key
/// itself (the key holds the token; a backend log of session ids should
/// not).
fn session_id(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    hex::encode(&digest[..16])
}

/// `base` with `qs` appended (after `&` when it already has a query).
fn with_query(base: &Uri, qs: &str) -> Option<Uri> {
    let pq = match base.path_and_query() {
        Some(pq) if pq.query().is_some() => format!("{pq}&{qs}"),
        Some(pq) => format!("{}?{qs}", pq.path()),
        None => format!("/?{qs}"),
    };
    let mut parts = base.clone().into_parts();
    parts.path_and_query = Some(pq.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// The limit a backend's answer sets: `X-Unique: true` means one session,
/// the newest winning (Flussonic disconnects the others); otherwise
/// `X-Max-Sessions` under the configured policy.
fn session_limit(p: &crate::auth::backend::SessionParams) -> Option<crate::auth::SessionLimit> {
    if p.unique {
        return Some(crate::auth::SessionLimit {
            max: 1,
            evict_oldest: true,
        });
    }
    p.max_sessions.map(|max| crate::auth::SessionLimit {
        max,
        evict_oldest: false,
    })
}

/// The proxy's verdict for a grant.
fn verdict(g: &Grant) -> Verdict {
    match g.answer.verdict {
        BackendVerdict::Allow => Verdict::Allow(Identity {
            user: g.params.as_ref().and_then(|p| p.user_id.clone()),
            session_limit: g.params.as_ref().and_then(session_limit),
            ..Identity::default()
        }),
        BackendVerdict::Forbidden | BackendVerdict::Redirect { .. } => {
            Verdict::Deny(ProxyError::Forbidden)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_appended_to_the_backend_url() {
        let cases = [
            ("http://a:1/auth", "http://a:1/auth?x=1"),
            ("http://a:1/auth?k=v", "http://a:1/auth?k=v&x=1"),
            ("http://a:1", "http://a:1/?x=1"),
        ];
        for (base, want) in cases {
            let got = with_query(&base.parse().unwrap(), "x=1").unwrap();
            assert_eq!(got.to_string(), want, "{base}");
        }
    }

    #[test]
    fn session_id_is_stable_and_hides_the_key() {
        let key = session_key("secret-token", "192.0.2.1".parse().unwrap(), "ch1");
        let id = session_id(&key);
        assert_eq!(id, session_id(&key));
        assert_eq!(id.len(), 32);
        assert!(!id.contains("secret"));
        assert_ne!(
            id,
            session_id(&session_key("other", "192.0.2.1".parse().unwrap(), "ch1"))
        );
    }
}
