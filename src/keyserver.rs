//! The key endpoint (docs/hls.md §8): `GET /.tollgate/key/<route>/<channel>/<inc>/<period>.key?tg=…`
//! answers exactly the 16 bytes of that key period's content key to a live
//! session holding a valid capability for that route and channel.
//!
//! Keys are derived, never stored ([`crate::capability::MasterKeys::content_key`]),
//! so any edge with the same master serves any key URI another edge wrote.
//! Answers are `private, no-store`: a key must never sit in a shared cache.
//!
//! [`uri`] is the key URI's format (pure, shared with the rewriter);
//! [`serve`] is the endpoint (phase 2b of `crate::proxy`), which admits the
//! session like every other request.

use http::Response;
use http::header::{self, HeaderValue};

use crate::access_log::RequestRecord;
use crate::admit::{Admission, admit, verify_capability};
use crate::auth::query::param_exact;
use crate::body::ProxyBody;
use crate::capability::{Scope, Serve};
use crate::error::ProxyError;
use crate::runtime::{Live, Shared};

pub mod uri;

pub use uri::PREFIX;
use uri::{body, not_found, parse};

/// `GET /.tollgate/key/...`: the content key, to a live session only.
pub async fn serve(
    live: &Live,
    shared: &Shared,
    path: &str,
    query: Option<&str>,
    record: &mut RequestRecord,
    now: u64,
) -> Result<Response<ProxyBody>, ProxyError> {
    let kp = parse(path).ok_or_else(not_found)?;
    let route = live
        .config
        .routes
        .iter()
        .find(|r| r.name == kp.route && r.encrypt)
        .ok_or_else(not_found)?;
    record.route = Some(route.name.clone());
    record.channel = Some(kp.channel.to_owned());
    let sessions = &live.config.sessions;
    let param = |name: &str| query.and_then(|q| param_exact(q, name));
    let token = param(&sessions.capability_param).ok_or(ProxyError::Forbidden)?;
    let scope = Scope {
        route: &route.name,
        channel: kp.channel,
        client_ip: record.client_ip,
    };
    // Only a key period a playlist of this channel named, while its tag
    // lasts: never a far-future period or a foreign incarnation.
    let tag = param(&sessions.tag_param).ok_or(ProxyError::Forbidden)?;
    // The master that signed the tag derives the key (SPEC §7.6).
    let keys = match live.verify_with(|k| k.verify_tag(tag, &route.name, kp.channel, path)) {
        Ok((Serve::Key { until }, keys)) if now <= until => keys,
        _ => return Err(ProxyError::Forbidden),
    };
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
        archive_from: None,
    };
    record.session = Some(admit(live, shared, &claims, &scope, again, now).await?);
    let key = keys.content_key(&route.name, kp.channel, kp.inc, kp.period);
    shared.metrics.keys_served.inc();
    record.code = "key";
    let mut resp = Response::new(crate::body::full(body(key)));
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
