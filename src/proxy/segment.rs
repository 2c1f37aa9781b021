//! Phase 6 for a tagged segment of an encrypting route: the ciphertext from
//! the shared cache (one origin fetch and one encryption however many
//! viewers ask at once), answered whole, as one byte range, or 416.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};

use super::Ctx;
use crate::access_log::RequestRecord;
use crate::body::ProxyBody;
use crate::capability::MasterKeys;
use crate::capability::{ByteRange, Serve};
use crate::error::ProxyError;
use crate::metrics::ResultLabel;
use crate::origin::Origin;
use crate::segcache::{Cipher, Lookup, RangeAnswer, SegKey, Segment};
use crate::zerocopy::ZeroCopy;

/// A segment tag that said "encrypt", and the keys of the master that
/// signed it (its content keys are that master's, SPEC §7.6).
pub(super) struct Tagged<'k> {
    pub serve: Serve,
    pub keys: &'k MasterKeys,
}

/// An encrypted segment for this session.
pub(super) async fn serve_encrypted(
    ctx: &Ctx<'_>,
    origin: &Arc<Origin>,
    uri: http::Uri,
    tagged: Tagged<'_>,
    viewer: &HeaderMap,
    zero_copy: Option<ZeroCopy>,
    record: &mut RequestRecord,
) -> Result<Response<ProxyBody>, ProxyError> {
    let segment = fetch(ctx, origin, uri, tagged).await?;
    let head = segment.head();
    record.origin_status = Some(head.status.as_u16());
    let content_type = head
        .content_type
        .clone()
        .unwrap_or(HeaderValue::from_static("video/mp2t"));
    if !head.status.is_success() {
        // The origin's error passes through, in the clear (it is not media).
        let mut resp = Response::new(crate::body::empty());
        *resp.status_mut() = head.status;
        set_type(resp.headers_mut(), content_type);
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
        if !ctx.is_head {
            *resp.body_mut() = segment.body(None).boxed_unsync();
        }
        return Ok(resp);
    }
    let answer = viewer.get(header::RANGE).map_or(RangeAnswer::Full, |r| {
        crate::segcache::parse_range(r, head.length)
    });
    let (mut resp, range) = range_head(answer, head.length);
    if resp.status() != StatusCode::RANGE_NOT_SATISFIABLE {
        set_type(resp.headers_mut(), content_type);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    if !ctx.is_head && resp.status() != StatusCode::RANGE_NOT_SATISFIABLE {
        *resp.body_mut() = segment.body_to(range, zero_copy).boxed_unsync();
    }
    Ok(resp)
}

fn set_type(h: &mut HeaderMap, content_type: HeaderValue) {
    h.insert(header::CONTENT_TYPE, content_type);
}

/// The ciphertext of the segment `serve` names, from the shared cache or
/// one origin fetch, counted by how the cache answered.
async fn fetch(
    ctx: &Ctx<'_>,
    origin: &Arc<Origin>,
    uri: http::Uri,
    tagged: Tagged<'_>,
) -> Result<Segment, ProxyError> {
    let Serve::Encrypt {
        inc,
        period,
        msn,
        range,
    } = tagged.serve
    else {
        return Err(ProxyError::Internal);
    };
    let key = tagged
        .keys
        .content_key(&ctx.route.name, ctx.channel, inc, period);
    let cipher = Cipher {
        key,
        iv: crate::cbc::iv_for_msn(msn),
    };
    let seg_key = SegKey::new(uri.to_string(), range, &cipher);
    let fetch_origin = Arc::clone(origin);
    let timings = ctx.shared.metrics.origin_duration.clone();
    let fetch = move || async move {
        let mut req = Request::get(uri)
            .header(header::ACCEPT_ENCODING, "identity")
            .body(Empty::<Bytes>::new())
            .map_err(|_| ProxyError::Internal)?;
        if let Some(r) = range_header(range) {
            req.headers_mut().insert(header::RANGE, r);
        }
        let resp = fetch_origin.send(req, &timings).await?;
        if range.is_some() && resp.status() == StatusCode::OK {
            // The origin ignored `Range:`: encrypting the whole file as the
            // range would serve the wrong bytes to everyone.
            return Err(ProxyError::BadOriginResponse);
        }
        Ok(resp)
    };
    let deadline = origin.config().total_timeout;
    let shared = ctx.shared;
    let (lookup, segment) = shared
        .segments
        .get_within(seg_key, cipher, deadline, fetch)
        .await?;
    let label = match lookup {
        Lookup::Hit => "hit",
        Lookup::Joined => "joined",
        Lookup::Miss => "miss",
    };
    let m = &shared.metrics;
    m.segment_cache
        .get_or_create(&ResultLabel { result: label })
        .inc();
    m.segment_cache_bytes
        .set(i64::try_from(shared.segments.weighted_bytes()).unwrap_or(i64::MAX));
    Ok(segment)
}

/// The head of a successful segment answer for the viewer's `Range:`
/// (`answer`) over a body of `length` bytes (`None`: not known yet), and the
/// inclusive byte range its body carries (`None`: the whole body). Pure.
pub(super) fn range_head(
    answer: RangeAnswer,
    length: Option<u64>,
) -> (Response<ProxyBody>, Option<(u64, u64)>) {
    let mut resp = Response::new(crate::body::empty());
    let accept = if length.is_some() { "bytes" } else { "none" };
    resp.headers_mut()
        .insert(header::ACCEPT_RANGES, HeaderValue::from_static(accept));
    let (status, length, content_range, range) = match (answer, length) {
        (RangeAnswer::Partial(s, e), Some(total)) => (
            StatusCode::PARTIAL_CONTENT,
            Some(e - s + 1),
            Some(format!("bytes {s}-{e}/{total}")),
            Some((s, e)),
        ),
        (RangeAnswer::Unsatisfiable, Some(total)) => (
            StatusCode::RANGE_NOT_SATISFIABLE,
            None,
            Some(format!("bytes */{total}")),
            None,
        ),
        _ => (StatusCode::OK, length, None, None),
    };
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if let Some(n) = length {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    if let Some(v) = content_range.and_then(|v| HeaderValue::from_str(&v).ok()) {
        h.insert(header::CONTENT_RANGE, v);
    }
    (resp, range)
}

/// `Range:` for fetching one byte range of an origin resource.
pub(super) fn range_header(range: Option<ByteRange>) -> Option<HeaderValue> {
    let r = range?;
    let text = match r.length {
        Some(0) => return None,
        Some(len) => format!("bytes={}-{}", r.offset, r.offset.saturating_add(len - 1)),
        None => format!("bytes={}-", r.offset),
    };
    HeaderValue::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Headers = Vec<(String, String)>;

    fn head(answer: RangeAnswer, length: Option<u64>) -> (u16, Headers, Option<(u64, u64)>) {
        let (resp, range) = range_head(answer, length);
        let mut headers: Headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        (resp.status().as_u16(), headers, range)
    }

    fn pairs(list: &[(&str, &str)]) -> Headers {
        let mut v: Headers = list
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn range_answers() {
        let table = [
            (
                RangeAnswer::Full,
                Some(1000),
                200,
                pairs(&[("accept-ranges", "bytes"), ("content-length", "1000")]),
                None,
            ),
            (
                RangeAnswer::Partial(10, 19),
                Some(1000),
                206,
                pairs(&[
                    ("accept-ranges", "bytes"),
                    ("content-length", "10"),
                    ("content-range", "bytes 10-19/1000"),
                ]),
                Some((10, 19)),
            ),
            (
                RangeAnswer::Unsatisfiable,
                Some(1000),
                416,
                pairs(&[
                    ("accept-ranges", "bytes"),
                    ("content-range", "bytes */1000"),
                ]),
                None,
            ),
            // Length unknown (still filling): the whole body, no ranges.
            (
                RangeAnswer::Full,
                None,
                200,
                pairs(&[("accept-ranges", "none")]),
                None,
            ),
        ];
        for (answer, length, status, headers, range) in table {
            assert_eq!(
                head(answer, length),
                (status, headers, range),
                "{answer:?} {length:?}"
            );
        }
    }

    #[test]
    fn origin_range_requests() {
        let r = |offset, length| Some(ByteRange { offset, length });
        assert_eq!(range_header(None), None);
        assert_eq!(range_header(r(0, Some(0))), None);
        assert_eq!(range_header(r(100, Some(50))).unwrap(), "bytes=100-149");
        assert_eq!(range_header(r(100, None)).unwrap(), "bytes=100-");
        assert_eq!(
            range_header(r(u64::MAX, Some(2))).unwrap(),
            format!("bytes={}-{}", u64::MAX, u64::MAX)
        );
    }
}
