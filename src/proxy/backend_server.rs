//! `[backend_server]` (SPEC §8): tollgate as a Flussonic-compatible auth
//! backend. Another streaming server (Flussonic's multiauth, Nimble's
//! playback authorization, another tollgate's `backend` method) asks
//!
//! ```text
//! GET /tv/auth?name=CHANNEL&ip=VIEWER&token=T&session_id=S&proto=hls&request_type=new_session
//! ```
//!
//! and gets 200 with `X-UserId`, `X-Max-Sessions` and `X-AuthDuration`, or
//! a refusal (403 and the SPEC §3.1 code, 429 when the viewer's address is
//! rate-limited). The answer is tollgate's own decision for that viewer:
//! the `token` method's users (config and API), `[ip] deny`, the deny
//! list, entitlements (packages, regions, expiry, addresses) and the
//! session table's limits, the fleet store's included: the asking server's
//! viewer *is* a session here (route [`BACKEND_SERVER_ROUTE`]), kept alive
//! by the server's `update_session` re-checks, listed, kicked and blocked
//! like any other, and counted toward the same `max_sessions` as viewers
//! playing through tollgate itself.
//!
//! Only the `allow` networks may ask: the endpoint tells valid tokens from
//! invalid ones.

use http::header::HeaderValue;
use http::{Request, Response};
use hyper::body::Incoming;

use super::Who;
use crate::access_log::RequestRecord;
use crate::admit::{Admission, admit};
use crate::auth::query::{param, percent_decode};
use crate::auth::{AuthMethod, AuthRequest};
use crate::body::ProxyBody;
use crate::capability::{Binding, Claims, Scope};
use crate::config::{BACKEND_SERVER_ROUTE, BackendServerConfig};
use crate::error::ProxyError;
use crate::runtime::{Live, Shared};

/// What the asking server sent, decoded.
struct Ask {
    name: String,
    ip: std::net::IpAddr,
    token: String,
    /// `request_type=update_session`: a re-check of a session that plays.
    update: bool,
}

/// The query's parameters, or `bad_path` for a malformed ask (no name, no
/// viewer address), `forbidden` for one without a token.
fn ask(query: Option<&str>) -> Result<Ask, ProxyError> {
    let q = query.ok_or(ProxyError::BadPath)?;
    let text = |name: &str| {
        param(q, name).map(|v| String::from_utf8_lossy(&percent_decode(v)).into_owned())
    };
    let name = text("name")
        .filter(|n| !n.is_empty() && n.len() <= 1024 && !n.chars().any(char::is_control))
        .ok_or(ProxyError::BadPath)?;
    let ip = text("ip")
        .and_then(|i| i.parse().ok())
        .ok_or(ProxyError::BadPath)?;
    let token = text("token")
        .filter(|t| !t.is_empty())
        .ok_or(ProxyError::Forbidden)?;
    let update = text("request_type").as_deref() == Some("update_session");
    Ok(Ask {
        name,
        ip,
        token,
        update,
    })
}

/// Answer one ask.
pub(super) async fn serve(
    live: &Live,
    shared: &Shared,
    config: &BackendServerConfig,
    req: &Request<Incoming>,
    record: &mut RequestRecord,
    now: u64,
) -> Result<Response<ProxyBody>, ProxyError> {
    if !live
        .backend_server_allow
        .contains(record.client_ip.to_canonical())
    {
        return Err(ProxyError::Forbidden);
    }
    let ask = ask(req.uri().query())?;
    record.channel = Some(ask.name.clone());
    record.route = Some(BACKEND_SERVER_ROUTE.to_owned());
    // The viewer's address is the one limited, not the asking server's;
    // on re-checks too (a re-check admits like an entry when the session
    // is gone), and never exempt: the caller named it.
    shared.rate_limit_entry(live, ask.ip, true)?;
    let token_query = format!("token={}", crate::auth::query::percent_encode(&ask.token));
    let path = format!("/{}", ask.name);
    let auth_request = AuthRequest {
        client_ip: ask.ip,
        path: &path,
        query: Some(&token_query),
        headers: req.headers(),
        channel: Some(&ask.name),
        now,
    };
    let layers = shared.store.layers();
    let result = live
        .auth
        .decide(&[AuthMethod::Token], &auth_request, Some(&layers.known()))
        .result;
    shared.rate_limit_outcome(live, ask.ip, true, &result);
    let user = result?.user.ok_or(ProxyError::Forbidden)?;
    record.user = Some(user.clone());
    let sid = live
        .keys
        .session_id(Some(&user), BACKEND_SERVER_ROUTE, &ask.name, ask.ip);
    let sessions = &live.config.sessions;
    let who = Who {
        claims: Claims {
            sid,
            expires: shared
                .revocations
                .mint_expiry(sid, sessions.capability_expiry(now)),
            user: Some(user.clone()),
            bind_ip: Binding::Unbound,
            device: None,
        },
        limit: None,
        method: Some(AuthMethod::Token),
        presented: Some(ask.token.clone()),
    };
    let scope = Scope {
        route: BACKEND_SERVER_ROUTE,
        channel: &ask.name,
        client_ip: ask.ip,
    };
    let how = Admission {
        entry: !ask.update,
        vouched: false,
        limit: None,
        token: Some(&ask.token),
        archive_from: None,
    };
    record.session = Some(admit(live, shared, &who.claims, &scope, how, now).await?);
    if !ask.update {
        super::remember_entry(shared, &who, Some(&token_query), now);
    }
    let max = layers.effective.user(&user).map_or(0, |u| u.max_sessions());
    record.code = "backend_allow";
    let mut resp = Response::new(crate::body::full(bytes::Bytes::new()));
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&user) {
        h.insert("x-userid", v);
    }
    h.insert("x-max-sessions", HeaderValue::from(max));
    h.insert(
        "x-authduration",
        HeaderValue::from(config.auth_duration.as_secs()),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_are_read_as_flussonic_sends_them() {
        let a = ask(Some(
            "name=ch1&ip=192.0.2.10&token=ann%2Btoken&session_id=5f1&proto=hls&request_type=update_session&request_number=3",
        ))
        .unwrap();
        assert_eq!(
            (
                a.name.as_str(),
                a.ip.to_string(),
                a.token.as_str(),
                a.update
            ),
            ("ch1", "192.0.2.10".to_owned(), "ann+token", true)
        );
        let a = ask(Some("name=live%2Fch1&ip=2001:db8::1&token=t")).unwrap();
        assert_eq!((a.name.as_str(), a.update), ("live/ch1", false));
        for (q, want) in [
            (None, ProxyError::BadPath),
            (Some("ip=192.0.2.1&token=t"), ProxyError::BadPath),
            (Some("name=ch1&token=t"), ProxyError::BadPath),
            (Some("name=ch1&ip=nope&token=t"), ProxyError::BadPath),
            (Some("name=%0a&ip=192.0.2.1&token=t"), ProxyError::BadPath),
            (Some("name=ch1&ip=192.0.2.1"), ProxyError::Forbidden),
            (Some("name=ch1&ip=192.0.2.1&token="), ProxyError::Forbidden),
        ] {
            assert_eq!(ask(q).err(), Some(want), "{q:?}");
        }
    }
}
