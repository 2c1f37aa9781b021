//! CORS for browser players (hls.js fetches playlists, segments and keys with
//! XHR/fetch, so every viewer response must allow the page's origin).
//!
//! Viewer URLs carry their own capability and no cookies, so echoing the
//! request's `Origin` is safe: a page on another site learns nothing it could
//! not fetch without CORS. Credentials are not allowed (no
//! `Access-Control-Allow-Credentials`), so a browser never attaches cookies.

use http::header::{self, HeaderMap, HeaderValue};

/// Headers a browser may read from our responses besides the safelisted ones.
const EXPOSE: HeaderValue = HeaderValue::from_static("Content-Length, Content-Range");

/// Request headers a preflight may ask for; anything else is not allowed.
const ALLOW_HEADERS: &str = "range, accept, accept-language, content-type, origin";

/// Add the CORS response headers for a request whose headers were `request`.
pub fn decorate(request_origin: Option<&HeaderValue>, response: &mut HeaderMap) {
    response.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = request_origin {
        response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE);
    }
}

/// Headers of the answer to a preflight (`OPTIONS` with `Origin`).
pub fn preflight(request: &HeaderMap) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    // Echo only the requested headers we allow, so a preflight for a
    // custom header fails in the browser instead of silently passing.
    let asked = request
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let allowed: Vec<&str> = asked
        .split(',')
        .map(str::trim)
        .filter(|name| {
            !name.is_empty()
                && ALLOW_HEADERS
                    .split(", ")
                    .any(|a| a.eq_ignore_ascii_case(name))
        })
        .collect();
    if !allowed.is_empty()
        && let Ok(v) = HeaderValue::from_str(&allowed.join(", "))
    {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_origin_and_varies() {
        let mut h = HeaderMap::new();
        let origin = HeaderValue::from_static("https://player.example");
        decorate(Some(&origin), &mut h);
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://player.example"
        );
        assert_eq!(h[header::VARY], "Origin");
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
        let mut h = HeaderMap::new();
        decorate(None, &mut h);
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert_eq!(h[header::VARY], "Origin");
    }

    #[test]
    fn preflight_allows_only_known_headers() {
        let mut req = HeaderMap::new();
        req.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("Range, X-Custom"),
        );
        let h = preflight(&req);
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_HEADERS], "Range");
        assert!(
            h[header::ACCESS_CONTROL_ALLOW_METHODS]
                .to_str()
                .unwrap()
                .contains("GET")
        );
        let h = preflight(&HeaderMap::new());
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_HEADERS).is_none());
    }
}
