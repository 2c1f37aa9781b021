//! Request handling of the simulated origin: path → resource → response.
//!
//! Synchronous and clock-free (the live position is an argument), so the
//! whole routing table is unit-tested without sockets. Owns the status codes
//! and headers the origin sends; knows nothing of the proxy.
//!
//! Invariants: only `GET` and `HEAD` succeed; `HEAD` gets the same headers as
//! `GET` (including `Content-Length`) and an empty body; segment bodies are
//! refcounted [`Bytes`], never copied.

use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;

use super::{Shared, playlist};

/// Media type of HLS playlists (RFC 8216 section 4).
const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
/// Media type of MPEG-TS segments.
const SEGMENT_TYPE: &str = "video/mp2t";

/// What a request path names under the origin's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource {
    /// `{prefix}{ch}/index.m3u8`
    Master,
    /// `{prefix}{ch}/media.m3u8`
    Media,
    /// `{prefix}{ch}/seg-{msn}.ts`
    Segment(u64),
}

/// Answers one request at live position `pos_us`.
pub(super) fn respond(
    shared: &Shared,
    method: &Method,
    path: &str,
    pos_us: u64,
) -> Response<Full<Bytes>> {
    let head = match *method {
        Method::GET => false,
        Method::HEAD => true,
        _ => return method_not_allowed(),
    };
    let Some((channel, resource)) = route(&shared.prefix, path) else {
        return not_found();
    };
    if !shared.channels.iter().any(|c| c == channel) {
        return not_found();
    }
    match resource {
        Resource::Master => ok(PLAYLIST_TYPE, shared.master.clone(), head),
        Resource::Media => {
            let first = shared.schedule.first_msn(pos_us);
            let text = playlist::media(&shared.schedule, first);
            ok(PLAYLIST_TYPE, Bytes::from(text), head)
        }
        Resource::Segment(msn) if shared.schedule.is_available(msn, pos_us) => {
            ok(SEGMENT_TYPE, shared.content.segment(channel, msn), head)
        }
        Resource::Segment(_) => not_found(),
    }
}

/// Splits `{prefix}{channel}/{file}` and names the file. `None` for anything
/// else, including extra path segments and non-canonical msns (`seg-007.ts`,
/// `seg-+7.ts`), so each segment has exactly one URL for caches to key on.
fn route<'p>(prefix: &str, path: &'p str) -> Option<(&'p str, Resource)> {
    let rest = path.strip_prefix(prefix)?;
    let (channel, file) = rest.split_once('/')?;
    if channel.is_empty() || file.contains('/') {
        return None;
    }
    let resource = match file {
        "index.m3u8" => Resource::Master,
        "media.m3u8" => Resource::Media,
        _ => {
            let digits = file.strip_prefix("seg-")?.strip_suffix(".ts")?;
            let canonical = digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'));
            if !canonical {
                return None;
            }
            // Overflow (more than 20 digits) is just another unknown name.
            Resource::Segment(digits.parse().ok()?)
        }
    };
    Some((channel, resource))
}

/// 200 with `body` (or, for `HEAD`, its length only).
fn ok(content_type: &'static str, body: Bytes, head: bool) -> Response<Full<Bytes>> {
    let len = body.len() as u64;
    let mut response = Response::new(Full::new(if head { Bytes::new() } else { body }));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    if content_type == PLAYLIST_TYPE {
        // Live playlists change every target duration; caches must revalidate.
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    response
}

/// A short plain-text error response.
fn error(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

fn not_found() -> Response<Full<Bytes>> {
    error(StatusCode::NOT_FOUND, "not found\n")
}

fn method_not_allowed() -> Response<Full<Bytes>> {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup errors
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt;

    use super::*;
    use crate::simorigin::{SegmentSource, SimOrigin, SimOriginOptions};

    #[test]
    fn route_table() {
        let table: &[(&str, Option<(&str, Resource)>)] = &[
            ("/live/ch1/index.m3u8", Some(("ch1", Resource::Master))),
            ("/live/ch1/media.m3u8", Some(("ch1", Resource::Media))),
            ("/live/ch1/seg-0.ts", Some(("ch1", Resource::Segment(0)))),
            ("/live/x/seg-123.ts", Some(("x", Resource::Segment(123)))),
            ("/live/ch1/seg-007.ts", None),
            ("/live/ch1/seg-+7.ts", None),
            ("/live/ch1/seg-.ts", None),
            ("/live/ch1/seg--1.ts", None),
            ("/live/ch1/seg-99999999999999999999999.ts", None),
            ("/live/ch1/seg-1.ts/x", None),
            ("/live/ch1/other.m3u8", None),
            ("/live//index.m3u8", None),
            ("/live/ch1", None),
            ("/other/ch1/index.m3u8", None),
            ("/live", None),
        ];
        for (path, want) in table {
            assert_eq!(route("/live/", path), *want, "{path}");
        }
    }

    fn origin() -> SimOrigin {
        SimOrigin::new(SimOriginOptions {
            window: 3,
            segment_source: SegmentSource::Synthetic {
                bytes: 1000,
                duration: Duration::from_secs(2),
            },
            ..SimOriginOptions::default()
        })
    }

    fn status(o: &SimOrigin, method: Method, path: &str, pos_us: u64) -> StatusCode {
        respond(&o.shared, &method, path, pos_us).status()
    }

    #[test]
    fn status_table() {
        let o = origin();
        let t = 10_000_000; // latest msn 2 + 5 = 7
        let table = [
            (Method::GET, "/live/ch1/index.m3u8", StatusCode::OK),
            (Method::GET, "/live/ch2/media.m3u8", StatusCode::OK),
            (Method::GET, "/live/ch3/media.m3u8", StatusCode::NOT_FOUND),
            (Method::GET, "/live/ch1/seg-7.ts", StatusCode::OK),
            (Method::GET, "/live/ch1/seg-8.ts", StatusCode::NOT_FOUND),
            (Method::GET, "/live/ch1/seg-0.ts", StatusCode::OK),
            (Method::HEAD, "/live/ch1/seg-7.ts", StatusCode::OK),
            (
                Method::POST,
                "/live/ch1/seg-7.ts",
                StatusCode::METHOD_NOT_ALLOWED,
            ),
            (Method::DELETE, "/nowhere", StatusCode::METHOD_NOT_ALLOWED),
        ];
        for (method, path, want) in table {
            assert_eq!(status(&o, method.clone(), path, t), want, "{method} {path}");
        }
        // Twelve segments on, msn 0 is more than three windows old.
        assert_eq!(
            status(&o, Method::GET, "/live/ch1/seg-0.ts", 34_000_000),
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn head_has_length_but_no_body() {
        let o = origin();
        let get = respond(&o.shared, &Method::GET, "/live/ch1/seg-1.ts", 0);
        let head = respond(&o.shared, &Method::HEAD, "/live/ch1/seg-1.ts", 0);
        assert_eq!(get.headers(), head.headers());
        assert_eq!(head.headers()[CONTENT_LENGTH], "1000");
        assert_eq!(head.headers()[CONTENT_TYPE], SEGMENT_TYPE);
        let get_body = get.into_body().collect().await.unwrap().to_bytes();
        let head_body = head.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(get_body, o.segment_bytes("ch1", 1).unwrap());
        assert!(head_body.is_empty());
    }

    #[test]
    fn playlists_are_not_cacheable() {
        let o = origin();
        for path in ["/live/ch1/index.m3u8", "/live/ch1/media.m3u8"] {
            let r = respond(&o.shared, &Method::GET, path, 0);
            assert_eq!(r.headers()[CACHE_CONTROL], "no-cache", "{path}");
            assert_eq!(r.headers()[CONTENT_TYPE], PLAYLIST_TYPE, "{path}");
        }
    }
}
