//! The operator's window (SPEC §8): the web console and the player page,
//! static files built into the binary (`console/`, hls.js vendored from its
//! npm package with its licence) and served by the admin listener without
//! a token: they hold no data. Everything they show and do goes through
//! `/api/v1` with the bearer token the operator types once, and
//! `POST /api/v1/sign` ([`sign`]) gives the player a freshly signed link.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

/// One file of the console.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: [Asset; 6] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../console/index.html"),
    },
    Asset {
        path: "/console/player.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../console/player.html"),
    },
    Asset {
        path: "/console/console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/console.js"),
    },
    Asset {
        path: "/console/player.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/player.js"),
    },
    Asset {
        path: "/console/console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../console/console.css"),
    },
    Asset {
        path: "/console/hls.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/vendor/hls.js-1.6.13/hls.min.js"),
    },
];

/// The licence of the vendored hls.js, at `/console/hls.js-LICENSE`.
const HLS_LICENSE: &[u8] = include_bytes!("../../console/vendor/hls.js-1.6.13/LICENSE");

/// Scripts and styles from the console itself only; streams, keys and
/// playlists from anywhere (the viewer listener is another origin); hls.js
/// runs its transmuxer in a blob worker and plays from a blob URL.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    connect-src 'self' http: https:; media-src 'self' blob:; worker-src blob:; \
    img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The console file at `path`, if there is one.
pub(super) fn asset(path: &str) -> Option<Response<Full<Bytes>>> {
    let (content_type, body) = match ASSETS.iter().find(|a| a.path == path) {
        Some(a) => (a.content_type, a.body),
        None if path == "/console/hls.js-LICENSE" => ("text/plain; charset=utf-8", HLS_LICENSE),
        None => return None,
    };
    let mut r = Response::new(Full::new(Bytes::from_static(body)));
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(r)
}

/// `POST /api/v1/sign` `{"channel":"ch1","user":"ann","route":"live"}`:
/// the path and the full viewer URL of a link the proxy accepts now, for
/// the player page (and scripts). The route defaults to the channel
/// list's; the file is `[channel_list] file` (`mpegts` on an MPEG-TS
/// route). Signed as `tollgate sign` signs (the route's first signing
/// method, a `[[user]]`'s token), or with the API user's first token on a
/// route that lists `token`. Behind the admin token: a link carries the
/// user's credential.
pub(super) fn sign(
    shared: &crate::runtime::Shared,
    channel: &str,
    user: &str,
    route: Option<&str>,
) -> Result<serde_json::Value, String> {
    use crate::auth::AuthMethod;
    let live = shared.live();
    let config = &live.config;
    let route = match route {
        Some(name) => config
            .routes
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| format!("route: no route named {name:?}"))?,
        None => config
            .channel_list
            .as_ref()
            .and_then(|l| config.routes.get(l.route))
            .or_else(|| config.routes.iter().find(|r| r.channel == 1))
            .ok_or("route: no route names a channel right after its prefix; give one")?,
    };
    let file = if route.mpegts {
        "mpegts"
    } else {
        config
            .channel_list
            .as_ref()
            .map_or("index.m3u8", |l| l.file.as_str())
    };
    let path = format!("{}{channel}/{file}", route.prefix);
    let now = shared.clock.now();
    let opts = crate::sign::SignOptions {
        route: &route.name,
        path: &path,
        ip: None,
        ttl: std::time::Duration::from_secs(3600),
        user: Some(user),
        scheme: None,
        hwid: None,
    };
    let signed = crate::sign::sign(config, &opts, now).or_else(|first| {
        // A user the API or the control plane set: their first token.
        let token = shared
            .store
            .entitlements()
            .user(user)
            .and_then(|u| u.first_token().map(str::to_owned));
        match token {
            Some(t) if route.auth.contains(&AuthMethod::Token) => Ok(format!(
                "{}?token={}",
                crate::path::encode_canonical(&path),
                crate::auth::query::percent_encode(&t)
            )),
            _ => Err(first),
        }
    })?;
    let base = shared.viewer_base().unwrap_or_default();
    Ok(serde_json::json!({ "path": signed, "url": format!("{base}{signed}") }))
}
