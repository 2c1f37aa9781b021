//! Phase 4 for an entry request (no session capability yet): run the
//! route's auth methods, count the decision, and name the session the
//! credentials open; and what revocation remembers of them.

use http::Request;
use hyper::body::Incoming;

use super::Who;
use crate::access_log::RequestRecord;
use crate::auth::query::{param, percent_decode};
use crate::auth::{AuthMethod, AuthRequest, Decision, Step, Verdict};
use crate::capability::Claims;
use crate::config::RouteConfig;
use crate::error::ProxyError;
use crate::metrics::AuthLabels;
use crate::revocation::Credential;
use crate::runtime::{Live, Shared};
use crate::store::ChangeError;

/// Authenticate an entry request and mint its session's claims.
pub(super) async fn entry(
    live: &Live,
    shared: &Shared,
    route: &RouteConfig,
    path: &str,
    req: &Request<Incoming>,
    record: &RequestRecord,
    now: u64,
) -> Result<Who, ProxyError> {
    shared.rate_limit_entry(live, record.client_ip, false)?;
    let auth_request = AuthRequest {
        client_ip: record.client_ip,
        path,
        query: req.uri().query(),
        headers: req.headers(),
        channel: record.channel.as_deref(),
        now,
    };
    let decision = authenticate(live, shared, &route.auth, &auth_request).await;
    count(shared, &decision);
    shared.rate_limit_outcome(live, record.client_ip, false, &decision.result);
    let method = decision.method;
    let identity = decision.result?;
    let channel = record.channel.as_deref().unwrap_or_default();
    let sessions = &live.config.sessions;
    let user = identity.user;
    let device = identity.device;
    if identity.register_device
        && let (Some(u), Some(hwid)) = (user.as_deref(), device.as_deref())
    {
        register_device(live, shared, u, hwid).await?;
    }
    let viewer = Viewer {
        user: user.as_deref(),
        device: device.as_deref(),
    };
    let sid = session_id(live, shared, viewer, &route.name, channel, record);
    // An entry the `ip` method allowed had its address as its only
    // credential: the capability never works from elsewhere.
    let by_address = method == Some(AuthMethod::Ip);
    let claims = Claims {
        sid,
        expires: shared
            .revocations
            .mint_expiry(sid, sessions.capability_expiry(now)),
        user,
        bind_ip: sessions.bind_ip.binding(record.client_ip, by_address),
        device,
    };
    // A token on a blocklist is refused wherever it is presented, whatever
    // method read it (checked at entry: capabilities carry no token).
    let presented = req
        .uri()
        .query()
        .and_then(|q| param(q, "token"))
        .map(|t| String::from_utf8_lossy(&percent_decode(t)).into_owned());
    Ok(Who {
        claims,
        limit: identity.session_limit,
        method,
        presented,
    })
}

/// The id of the session these credentials open: the current master's,
/// unless the viewer's session is live under an earlier master's id (a
/// master roll, SPEC §7.6: the viewer who reopens the entry URL keeps the
/// session they hold rather than counting twice).
fn session_id(
    live: &Live,
    shared: &Shared,
    viewer: Viewer<'_>,
    route: &str,
    channel: &str,
    record: &RequestRecord,
) -> u64 {
    let ip = record.client_ip;
    let of = |k: &crate::capability::MasterKeys| {
        k.session_id_on(viewer.user, viewer.device, route, channel, ip)
    };
    let current = of(&live.keys);
    if live.previous_keys.is_empty() || shared.sessions.get(current).is_some() {
        return current;
    }
    live.previous_keys
        .iter()
        .map(of)
        .find(|sid| shared.sessions.get(*sid).is_some())
        .unwrap_or(current)
}

/// Who the credentials name: the user, and the device they play on.
#[derive(Debug, Clone, Copy)]
struct Viewer<'a> {
    user: Option<&'a str>,
    device: Option<&'a str>,
}

/// Register `hwid` to `user` (the `device` method's `auto_register`,
/// SPEC §7.3): in the API layer, persisted and audited like an API change.
/// Checked again under the store's writer lock, so concurrent first plays
/// of several new boxes never register more than `auto_register`.
/// Registered before admission: a box refused right after (no package for
/// the channel, the user's limit) stays registered, as it would after a
/// refused first play on a middleware that registers boxes.
async fn register_device(
    live: &Live,
    shared: &Shared,
    user: &str,
    hwid: &str,
) -> Result<(), ProxyError> {
    let limit = live.auth.schemes().device.auto_register();
    let store = shared.store.clone();
    let (user, hwid) = (user.to_owned(), hwid.to_owned());
    let audited = (user.clone(), hwid.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        store.change(|s| {
            // Read under the writer lock: every registration before this
            // one is in, so concurrent first plays never pass the limit, and
            // a device someone else set meanwhile is never overwritten.
            let effective = store.entitlements();
            match (effective.device(&hwid), s.devices.get(&hwid)) {
                (Some(d), _) if d.user() == user => return Ok(()),
                (Some(_), _) | (None, Some(_)) => {
                    return Err(ChangeError::Invalid(vec!["another user's".into()]));
                }
                (None, None) if effective.device_count(&user) >= limit => {
                    return Err(ChangeError::Invalid(vec!["auto_register is full".into()]));
                }
                (None, None) => {}
            }
            s.devices.insert(
                hwid,
                crate::entitlements::Device {
                    user,
                    ..Default::default()
                },
            );
            Ok(())
        })
    })
    .await;
    match outcome {
        Ok(Ok(())) => {
            crate::audit::record(
                crate::audit::Who::Device,
                "register",
                "device",
                &audited.1,
                &format!("user={}", audited.0),
            );
            Ok(())
        }
        Ok(Err(ChangeError::Invalid(_))) => Err(ProxyError::Forbidden),
        Ok(Err(e)) => {
            tracing::warn!(error = ?e, "device registration not saved");
            Err(ProxyError::Internal)
        }
        Err(_) => Err(ProxyError::Internal),
    }
}

/// Walk the route's methods; the synchronous ones in [`crate::auth`], and
/// at a `backend` entry await the backends, going on with the next method
/// when it passes.
async fn authenticate(
    live: &Live,
    shared: &Shared,
    methods: &[AuthMethod],
    req: &AuthRequest<'_>,
) -> Decision {
    // The API's own layer: the `token` method asks it which `[[user]]`
    // ids the API replaced (their config credentials no longer count).
    let layers = shared.store.layers();
    let known = layers.known();
    let mut start = 0;
    loop {
        let at = match live.auth.decide_from(methods, start, req, Some(&known)) {
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

/// `tollgate_auth_decisions_total{method, outcome}`.
fn count(shared: &Shared, decision: &Decision) {
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
}

/// The credential an entry request presented, as revocation remembers it,
/// and whether the `token` method vouched for the user with it: a
/// `?token=` whatever method read it (a block of the token must find the
/// session), or the password of `?auth=` when the `token` method admitted.
pub(super) fn entry_credential(
    query: Option<&str>,
    token: Option<&str>,
    method: Option<AuthMethod>,
    has_user: bool,
) -> Option<(Credential, bool)> {
    // The device method vouches with the user's token too.
    let by_token = matches!(method, Some(AuthMethod::Token | AuthMethod::Device)) && has_user;
    if let Some(t) = token {
        return Some((Credential::token(t.as_bytes()), by_token));
    }
    if !by_token {
        return None;
    }
    let auth = param(query?, "auth")?;
    let auth = percent_decode(auth);
    let colon = auth.iter().position(|&b| b == b':')?;
    let password = auth.get(colon + 1..).unwrap_or_default();
    Some((Credential::password(password), true))
}
