//! `GET /playlist.m3u8?token=T` (and `/playlist.m3u`, `?auth=user:password`):
//! the viewer's channel list (SPEC §7.5), rendered by
//! [`crate::channel_list`]. The credential is checked by the `token`
//! method's own rules (config and API users alike, `[ip] deny` first); the
//! channels are the ones [`crate::entitlements::Entitlements::channel_list`]
//! gives, and every URL in the list carries the viewer's credential, so it
//! plays as is.

use http::header::{self, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;

use super::ConnInfo;
use crate::access_log::RequestRecord;
use crate::auth::token::{self, Credential};
use crate::auth::{AuthMethod, AuthRequest};
use crate::body::ProxyBody;
use crate::channel_list::{Links, query_pair, render, valid_host};
use crate::error::ProxyError;
use crate::runtime::{Live, Shared};

/// The paths of the channel list.
pub(super) fn is_list_path(path: &str) -> bool {
    path == "/playlist.m3u8" || path == "/playlist.m3u"
}

/// Answer a channel-list request.
pub(super) fn serve(
    live: &Live,
    shared: &Shared,
    conn: ConnInfo,
    req: &Request<Incoming>,
    record: &mut RequestRecord,
    now: u64,
) -> Result<Response<ProxyBody>, ProxyError> {
    let config = &live.config;
    let list = config.channel_list.as_ref().ok_or(ProxyError::NoRoute)?;
    let route = config.routes.get(list.route).ok_or(ProxyError::Internal)?;
    record.route = Some("channel_list".to_owned());
    shared.rate_limit_entry(live, record.client_ip, false)?;
    let query = req.uri().query();
    let auth = AuthRequest {
        client_ip: record.client_ip,
        path: req.uri().path(),
        query,
        headers: req.headers(),
        channel: None,
        now,
    };
    let layers = shared.store.layers();
    let result = live
        .auth
        .decide(&[AuthMethod::Token], &auth, Some(&layers.known()))
        .result;
    shared.rate_limit_outcome(live, record.client_ip, false, &result);
    let identity = result?;
    let user = identity.user.ok_or(ProxyError::Forbidden)?;
    record.user = Some(user.clone());
    // The credential the token method read, as the list's URLs carry it.
    let (name, value) = match token::credential(&auth) {
        Some(Credential::Token(t)) => ("token", String::from_utf8_lossy(&t).into_owned()),
        Some(Credential::Password(p)) => ("auth", String::from_utf8_lossy(&p).into_owned()),
        None => return Err(ProxyError::Forbidden),
    };
    let token = (name == "token").then_some(value.as_str());
    let deny = shared.store.deny_guard();
    deny.check_blocklist(Some(&user), token, record.client_ip)?;
    let ents = shared.store.entitlements();
    let items = ents.channel_list(&user, token, record.client_ip, now)?;
    let base = match &list.base_url {
        Some(b) => b.clone(),
        None => {
            let host = req
                .uri()
                .authority()
                .map(|a| a.as_str())
                .or_else(|| req.headers().get(header::HOST)?.to_str().ok())
                .filter(|h| valid_host(h))
                .ok_or(ProxyError::BadPath)?;
            format!("{}://{host}", conn.scheme)
        }
    };
    let credential = query_pair(name, &value);
    let links = Links {
        base: &base,
        prefix: &route.prefix,
        file: &list.file,
        credential: &credential,
    };
    let body = render(items, &links);
    record.code = "channel_list";
    let mut resp = Response::new(crate::body::full(bytes::Bytes::from(body)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("audio/x-mpegurl"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(resp)
}
