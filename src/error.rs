//! The one place that decides what a failed request looks like: its HTTP
//! status, the stable machine-readable code in the `{"error":"<code>"}` body,
//! and who is to blame (for metrics and alerting).
//!
//! The enum is closed on purpose: adding a failure means choosing its status,
//! code and blame here, once. Bodies never carry detail that helps an attacker.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

/// Who caused a failure: the viewer, the origin, or tollgate itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Blame {
    /// Bad request, bad credentials, no route: nothing an operator must fix.
    Client,
    /// The origin was unreachable, slow or broke the response.
    Origin,
    /// A bug or resource exhaustion inside tollgate.
    Internal,
}

impl Blame {
    /// Label value used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Blame::Client => "client",
            Blame::Origin => "origin",
            Blame::Internal => "internal",
        }
    }
}

/// Every way tollgate itself answers a viewer request with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ProxyError {
    /// The path is malformed, escapes the root or carries tricks (400).
    #[error("bad path")]
    BadPath,
    /// The request target exceeds `server.max_uri_bytes` (414).
    #[error("uri too long")]
    UriTooLong,
    /// Only GET, HEAD and OPTIONS reach an HLS origin (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// No route matches the path (404).
    #[error("no route")]
    NoRoute,
    /// Bad, missing or tampered credentials, or no method allowed the request (403).
    #[error("forbidden")]
    Forbidden,
    /// Valid signature whose validity window is over (410).
    #[error("expired")]
    Expired,
    /// Client IP is on a deny list (403).
    #[error("ip denied")]
    IpDenied,
    /// User blocked by the control plane (403).
    #[error("blocked")]
    Blocked,
    /// User not entitled to this channel (403).
    #[error("not entitled")]
    NotEntitled,
    /// A catch-up request reaching further back than the viewer's depth,
    /// or any on a channel without catch-up (403, SPEC §7.4).
    #[error("beyond the archive depth")]
    DvrDepth,
    /// User over `max_sessions` with policy `reject` (403).
    #[error("session limit")]
    SessionLimit,
    /// Session ended by a newer one under `evict_oldest` (403).
    #[error("session evicted")]
    SessionEvicted,
    /// The origin refused the connection or failed before answering (502).
    #[error("origin unavailable")]
    OriginUnavailable,
    /// The origin did not answer within its timeout (504).
    #[error("origin timeout")]
    OriginTimeout,
    /// The origin answered in a way that cannot be served safely: a
    /// content-encoded segment, or a whole file where a range was asked (502).
    #[error("bad origin response")]
    BadOriginResponse,
    /// The origin's playlist is larger than `cache.max_playlist` (502).
    #[error("playlist too large")]
    PlaylistTooLarge,
    /// The origin answered a playlist request with something else (502).
    #[error("bad playlist")]
    BadPlaylist,
    /// The fleet session store is unreachable and `store_fail = "closed"` (503).
    #[error("session store unavailable")]
    StoreUnavailable,
    /// Too many entry requests or failed authentications from this
    /// address (`[rate_limit]`, 429 with `Retry-After`).
    #[error("rate limited")]
    RateLimited {
        /// Seconds until the address may try again.
        retry_after: u32,
    },
    /// A bug: something that should not happen did (500).
    #[error("internal error")]
    Internal,
}

impl ProxyError {
    /// HTTP status sent to the viewer.
    pub fn status(self) -> StatusCode {
        use ProxyError::*;
        match self {
            BadPath => StatusCode::BAD_REQUEST,
            UriTooLong => StatusCode::URI_TOO_LONG,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            NoRoute => StatusCode::NOT_FOUND,
            Forbidden | IpDenied | Blocked | NotEntitled | DvrDepth | SessionLimit
            | SessionEvicted => StatusCode::FORBIDDEN,
            Expired => StatusCode::GONE,
            OriginUnavailable | BadOriginResponse | PlaylistTooLarge | BadPlaylist => {
                StatusCode::BAD_GATEWAY
            }
            OriginTimeout => StatusCode::GATEWAY_TIMEOUT,
            StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable code in the JSON body, logs and metrics (SPEC §3.1).
    pub fn code(self) -> &'static str {
        use ProxyError::*;
        match self {
            BadPath => "bad_path",
            UriTooLong => "uri_too_long",
            MethodNotAllowed => "method_not_allowed",
            NoRoute => "no_route",
            Forbidden => "forbidden",
            Expired => "expired",
            IpDenied => "ip_denied",
            Blocked => "blocked",
            NotEntitled => "not_entitled",
            DvrDepth => "dvr_depth",
            SessionLimit => "session_limit",
            SessionEvicted => "session_evicted",
            OriginUnavailable => "origin_unavailable",
            OriginTimeout => "origin_timeout",
            BadOriginResponse => "bad_origin_response",
            PlaylistTooLarge => "playlist_too_large",
            BadPlaylist => "bad_playlist",
            StoreUnavailable => "store_unavailable",
            RateLimited { .. } => "rate_limited",
            Internal => "internal",
        }
    }

    /// Who is to blame.
    pub fn blame(self) -> Blame {
        use ProxyError::*;
        match self {
            OriginUnavailable | OriginTimeout | BadOriginResponse | PlaylistTooLarge
            | BadPlaylist => Blame::Origin,
            Internal | StoreUnavailable => Blame::Internal,
            _ => Blame::Client,
        }
    }

    /// The JSON body `{"error":"<code>"}`.
    pub fn body(self) -> Bytes {
        Bytes::from(format!("{{\"error\":\"{}\"}}\n", self.code()))
    }

    /// The whole error answer: [`Self::status`], the JSON [`Self::body`],
    /// `Cache-Control: no-store`, and `Allow` on a 405.
    pub fn response(self) -> Response<Full<Bytes>> {
        let mut r = json_response(self.status(), self.body());
        let h = r.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self == ProxyError::MethodNotAllowed {
            h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        if let ProxyError::RateLimited { retry_after } = self {
            h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        r
    }
}

/// A JSON answer: `status`, `Content-Type: application/json` and `body`.
/// Every error answer is one: a viewer's ([`ProxyError::response`]) and the
/// admin API's (`{"error":"<code>"}`, with `problems` where it lists them).
pub fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The admin API's error answer: `status` and `{"error":"<code>"}`.
pub fn api_error(status: StatusCode, code: &str) -> Response<Full<Bytes>> {
    json_response(status, format!("{{\"error\":\"{code}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ProxyError; 20] = {
        use ProxyError::*;
        [
            BadPath,
            UriTooLong,
            MethodNotAllowed,
            NoRoute,
            Forbidden,
            Expired,
            IpDenied,
            Blocked,
            NotEntitled,
            DvrDepth,
            SessionLimit,
            SessionEvicted,
            OriginUnavailable,
            OriginTimeout,
            BadOriginResponse,
            PlaylistTooLarge,
            BadPlaylist,
            StoreUnavailable,
            RateLimited { retry_after: 7 },
            Internal,
        ]
    };

    #[test]
    fn every_error_answer_is_json_and_never_cached() {
        for e in ALL {
            let r = e.response();
            assert_eq!(r.status(), e.status());
            assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
            assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
            assert_eq!(
                r.headers().get(header::ALLOW).is_some(),
                e == ProxyError::MethodNotAllowed
            );
            let retry = r.headers().get(header::RETRY_AFTER);
            assert_eq!(
                retry.and_then(|v| v.to_str().ok()),
                matches!(e, ProxyError::RateLimited { .. }).then_some("7")
            );
        }
        let api = api_error(StatusCode::NOT_FOUND, "not_found");
        assert_eq!(api.status(), StatusCode::NOT_FOUND);
        assert_eq!(api.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn spec_table() {
        // SPEC §3.1 outcome table, row by row.
        let spec = [
            (ProxyError::Forbidden, 403, "forbidden"),
            (ProxyError::Expired, 410, "expired"),
            (ProxyError::IpDenied, 403, "ip_denied"),
            (ProxyError::Blocked, 403, "blocked"),
            (ProxyError::NotEntitled, 403, "not_entitled"),
            (ProxyError::DvrDepth, 403, "dvr_depth"),
            (ProxyError::SessionLimit, 403, "session_limit"),
            (ProxyError::SessionEvicted, 403, "session_evicted"),
            (ProxyError::OriginUnavailable, 502, "origin_unavailable"),
            (ProxyError::OriginTimeout, 504, "origin_timeout"),
            (
                ProxyError::RateLimited { retry_after: 7 },
                429,
                "rate_limited",
            ),
        ];
        for (e, status, code) in spec {
            assert_eq!(e.status().as_u16(), status, "{e:?}");
            assert_eq!(e.code(), code);
        }
    }

    #[test]
    fn codes_unique_and_bodies_are_json() {
        let mut seen = std::collections::HashSet::new();
        for e in ALL {
            assert!(seen.insert(e.code()), "duplicate code {}", e.code());
            let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
            assert_eq!(v["error"], e.code());
            assert!(e.status().is_client_error() || e.status().is_server_error());
            // Origin faults are 5xx, client faults 4xx.
            match e.blame() {
                Blame::Client => assert!(e.status().is_client_error(), "{e:?}"),
                Blame::Origin | Blame::Internal => assert!(e.status().is_server_error(), "{e:?}"),
            }
        }
    }
}
