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
enum Resource<'p> {
    /// `{prefix}{ch}/index.m3u8`
    Master,
    /// `{prefix}{ch}/media.m3u8`
    Media,
    /// `{prefix}{ch}/seg-{msn}.ts`
    Segment(u64),
    /// `{prefix}{ch}/index-{window}.m3u8`: a master playlist whose one
    /// variant is `mono-{window}.m3u8` (with DVR only).
    ArchiveMaster(&'p str),
    /// An archive media playlist (with DVR only).
    Archive(Window),
}

/// Flussonic's archive windows, as this origin serves them (unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    /// `archive-`, `video-`, `mono-FROM-DURATION` (`None`: `-now`).
    Range { from: u64, duration: Option<u64> },
    /// `timeshift_abs-FROM`: a live window starting at FROM.
    Abs { from: u64 },
    /// `timeshift_rel-OFFSET`: the live window OFFSET seconds ago.
    Rel { offset: u64 },
}

/// Most segments one archive playlist lists.
const MAX_ARCHIVE_SEGMENTS: u64 = 50_000;

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
    let schedule = &shared.schedule;
    match (resource, shared.epoch_ms) {
        (Resource::Master, _) => ok(PLAYLIST_TYPE, shared.master.clone(), head),
        (Resource::Media, None) => {
            let first = schedule.first_msn(pos_us);
            let text = playlist::media(schedule, first);
            ok(PLAYLIST_TYPE, Bytes::from(text), head)
        }
        (Resource::Media, Some(epoch)) => {
            let first = schedule.first_msn(pos_us);
            let msns = first..first.saturating_add(schedule.window());
            let text = playlist::dated(schedule, msns, first, epoch, false);
            ok(PLAYLIST_TYPE, Bytes::from(text), head)
        }
        // With DVR every published segment stays.
        (Resource::Segment(msn), Some(_)) if msn <= schedule.latest_msn(pos_us) => {
            ok(SEGMENT_TYPE, shared.content.segment(channel, msn), head)
        }
        (Resource::Segment(msn), None) if schedule.is_available(msn, pos_us) => {
            ok(SEGMENT_TYPE, shared.content.segment(channel, msn), head)
        }
        (Resource::ArchiveMaster(window), Some(_)) => {
            let text = shared.master_text(&format!("mono-{window}.m3u8"));
            ok(PLAYLIST_TYPE, Bytes::from(text), head)
        }
        (Resource::Archive(window), Some(epoch)) => {
            match archive(schedule, window, epoch, pos_us) {
                Some(text) => ok(PLAYLIST_TYPE, Bytes::from(text), head),
                None => not_found(),
            }
        }
        _ => not_found(),
    }
}

/// The archive playlist of `window` at live position `pos_us`, `None`
/// when it lists nothing (before the archive starts, or in the future).
fn archive(
    schedule: &super::schedule::Schedule,
    window: Window,
    epoch_ms: i64,
    pos_us: u64,
) -> Option<String> {
    // Unix seconds to content time (µs), clamped at the archive's start.
    let content = |unix_s: u64| -> u64 {
        let ms = i64::try_from(unix_s.saturating_mul(1000))
            .unwrap_or(i64::MAX)
            .saturating_sub(epoch_ms);
        u64::try_from(ms).unwrap_or(0).saturating_mul(1000)
    };
    let edge = schedule.live_edge_us(pos_us);
    let latest = schedule.latest_msn(pos_us);
    let (first, last, end) = match window {
        Window::Range { from, duration } => {
            let first = schedule.first_msn_from(content(from));
            let last = match duration {
                Some(d) => schedule
                    .first_msn_from(content(from.saturating_add(d)))
                    .checked_sub(1)?
                    .min(latest),
                None => latest,
            };
            (first, last, duration.is_some())
        }
        Window::Abs { from } => {
            let first = schedule.first_msn_from(content(from));
            let last = first.saturating_add(schedule.window() - 1).min(latest);
            (first, last, false)
        }
        Window::Rel { offset } => {
            let at = edge.saturating_sub(offset.saturating_mul(1_000_000));
            let last = schedule.first_msn_from(at).checked_sub(1)?.min(latest);
            let first = last.saturating_add(1).saturating_sub(schedule.window());
            (first, last, false)
        }
    };
    if first > last {
        return None;
    }
    let last = last.min(first.saturating_add(MAX_ARCHIVE_SEGMENTS - 1));
    // A closed window is numbered from 0, like a VOD (so the same segment
    // sits at another position than in the live playlist).
    let sequence = if end { 0 } else { first };
    Some(playlist::dated(
        schedule,
        first..last.saturating_add(1),
        sequence,
        epoch_ms,
        end,
    ))
}

/// Splits `{prefix}{channel}/{file}` and names the file. `None` for anything
/// else, including extra path segments and non-canonical msns (`seg-007.ts`,
/// `seg-+7.ts`), so each segment has exactly one URL for caches to key on.
fn route<'p>(prefix: &str, path: &'p str) -> Option<(&'p str, Resource<'p>)> {
    let rest = path.strip_prefix(prefix)?;
    let (channel, file) = rest.split_once('/')?;
    if channel.is_empty() || file.contains('/') {
        return None;
    }
    let resource = match file {
        "index.m3u8" => Resource::Master,
        "media.m3u8" => Resource::Media,
        _ if file.ends_with(".m3u8") => archive_name(file.strip_suffix(".m3u8")?)?,
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

/// Flussonic's archive playlist names (`index-1733100000-3600`, …).
fn archive_name(stem: &str) -> Option<Resource<'_>> {
    let number = |t: &str| {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse::<u64>().ok())
            .flatten()
    };
    if let Some(n) = stem.strip_prefix("timeshift_abs-") {
        return Some(Resource::Archive(Window::Abs { from: number(n)? }));
    }
    if let Some(n) = stem.strip_prefix("timeshift_rel-") {
        return Some(Resource::Archive(Window::Rel { offset: number(n)? }));
    }
    let (kind, rest) = stem.split_once('-')?;
    let (from, until) = rest.split_once('-')?;
    let from = number(from)?;
    let duration = match until {
        "now" => None,
        d => Some(number(d)?),
    };
    match kind {
        "index" => Some(Resource::ArchiveMaster(rest)),
        "archive" | "video" | "mono" => Some(Resource::Archive(Window::Range { from, duration })),
        _ => None,
    }
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

    fn dvr_origin() -> SimOrigin {
        SimOrigin::new(SimOriginOptions {
            window: 3,
            segment_source: SegmentSource::Synthetic {
                bytes: 1000,
                duration: Duration::from_secs(2),
            },
            dvr: Duration::from_secs(3600),
            ..SimOriginOptions::default()
        })
    }

    fn text(o: &SimOrigin, path: &str, pos_us: u64) -> (StatusCode, String) {
        let r = respond(&o.shared, &Method::GET, path, pos_us);
        let status = r.status();
        let body = body_text(r);
        (status, body)
    }

    fn body_text(r: Response<Full<Bytes>>) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = rt.block_on(r.into_body().collect()).unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn dvr_serves_every_archive_form_with_dates_that_agree_with_live() {
        let o = dvr_origin();
        let epoch_ms = o.shared.epoch_ms.unwrap();
        // One hour of archive: live edge at content time 6 s + 3600 s.
        let pos = 3_600_000_000;
        let live_edge_s = u64::try_from(epoch_ms / 1000).unwrap() + 3606;
        let (s, live) = text(&o, "/live/ch1/media.m3u8", pos);
        assert_eq!(s, StatusCode::OK);
        assert!(live.contains("#EXT-X-PROGRAM-DATE-TIME:"), "{live}");
        assert!(!live.contains("ENDLIST"));
        // A closed window 60 s long, 10 minutes back: 30 segments from 0.
        let from = live_edge_s - 600;
        for kind in ["archive", "video", "mono"] {
            let (s, body) = text(&o, &format!("/live/ch1/{kind}-{from}-60.m3u8"), pos);
            assert_eq!(s, StatusCode::OK, "{kind}");
            assert_eq!(body.matches("#EXTINF:").count(), 30, "{body}");
            assert!(body.contains("#EXT-X-MEDIA-SEQUENCE:0\n"));
            assert!(body.ends_with("#EXT-X-ENDLIST\n"));
        }
        let (_, master) = text(&o, &format!("/live/ch1/index-{from}-60.m3u8"), pos);
        assert!(
            master.contains(&format!("\nmono-{from}-60.m3u8\n")),
            "{master}"
        );
        let (_, open) = text(&o, &format!("/live/ch1/archive-{from}-now.m3u8"), pos);
        assert!(!open.contains("ENDLIST"));
        assert_eq!(open.matches("#EXTINF:").count(), 300);
        let (_, abs) = text(&o, &format!("/live/ch1/timeshift_abs-{from}.m3u8"), pos);
        assert_eq!(abs.matches("#EXTINF:").count(), 3);
        let (_, rel) = text(&o, "/live/ch1/timeshift_rel-600.m3u8", pos);
        assert_eq!(rel.matches("#EXTINF:").count(), 3);
        // The live playlist's last segment and the -now window's last agree
        // on its date.
        let last_date = |t: &str| {
            t.lines()
                .rfind(|l| l.starts_with("#EXT-X-PROGRAM"))
                .map(str::to_owned)
        };
        assert_eq!(last_date(&live), last_date(&open));
        // Before the archive, or in the future: nothing.
        let (s, _) = text(&o, "/live/ch1/archive-1000-60.m3u8", pos);
        assert_eq!(s, StatusCode::NOT_FOUND, "before the archive");
        let (s, _) = text(
            &o,
            &format!("/live/ch1/archive-{}-60.m3u8", live_edge_s + 100),
            pos,
        );
        assert_eq!(s, StatusCode::NOT_FOUND);
        // Old segments stay; without DVR the archive forms are unknown.
        assert_eq!(
            status(&o, Method::GET, "/live/ch1/seg-0.ts", pos),
            StatusCode::OK
        );
        let plain = origin();
        assert_eq!(
            status(
                &plain,
                Method::GET,
                &format!("/live/ch1/archive-{from}-60.m3u8"),
                0
            ),
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
