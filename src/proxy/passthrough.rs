//! Phase 6 straight through to the origin, streaming: non-encrypted routes,
//! clear resources of encrypted ones (fMP4 inits, origin keys), and
//! anything the origin turns out to answer with a playlist.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::{ConnInfo, Ctx, Through};
use crate::access_log::RequestRecord;
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::headers;
use crate::origin::Origin;

/// Forward the viewer's request to `uri` and stream the answer back.
pub(super) async fn passthrough(
    ctx: &Ctx<'_>,
    origin: &Arc<Origin>,
    uri: http::Uri,
    conn: ConnInfo,
    req: Request<Incoming>,
    through: Through,
    record: &mut RequestRecord,
) -> Result<Response<ProxyBody>, ProxyError> {
    let range = match through {
        Through::Tagged(range) => range,
        Through::Untagged => None,
    };
    let out = origin_request(
        ctx,
        uri,
        conn,
        req,
        range.is_some().then(|| super::segment::range_header(range)),
    );
    let sent = Instant::now();
    let resp = origin
        .send(out, &ctx.shared.metrics.origin_duration)
        .await?;
    record.origin_latency = Some(sent.elapsed());
    record.origin_status = Some(resp.status().as_u16());

    let (mut parts, body) = resp.into_parts();
    // A playlist found by its type, not its name: rewrite it like any other.
    if parts.status == http::StatusCode::OK
        && super::is_playlist_type(parts.headers.get(header::CONTENT_TYPE))
    {
        let fetched =
            crate::playlist_cache::from_response(parts, body, &ctx.compile(origin)).await?;
        return super::playlist::render(ctx, &fetched, record);
    }
    if ctx.route.encrypt && matches!(through, Through::Untagged) && parts.status.is_success() {
        // No tag: nothing on an encrypting route leaves in the clear.
        return Err(ProxyError::Forbidden);
    }
    headers::strip_hop_by_hop(&mut parts.headers);
    if range.is_some() && parts.status == http::StatusCode::PARTIAL_CONTENT {
        parts.status = http::StatusCode::OK;
        parts.headers.remove(header::CONTENT_RANGE);
    }
    // The viewer's connection has its own version; an HTTP/1.0 origin must
    // not turn the viewer's response into HTTP/1.0.
    parts.version = http::Version::HTTP_11;
    Ok(Response::from_parts(parts, body.boxed_unsync()))
}

/// The origin request: end-to-end headers only, no viewer credentials, and
/// `range` (`Some`: the tag names one, which replaces the viewer's).
pub(super) fn origin_request(
    ctx: &Ctx<'_>,
    uri: http::Uri,
    conn: ConnInfo,
    req: Request<Incoming>,
    range: Option<Option<HeaderValue>>,
) -> Request<Empty<Bytes>> {
    let (parts, _body) = req.into_parts();
    let mut out = Request::new(Empty::<Bytes>::new());
    *out.method_mut() = parts.method;
    *out.uri_mut() = uri;
    *out.headers_mut() = parts.headers;
    let h = out.headers_mut();
    headers::strip_hop_by_hop(h);
    // Cookies, headers and `Authorization` carrying viewer credentials.
    ctx.live.credentials.strip_headers(h);
    h.remove(header::HOST);
    if let Some(range) = range {
        // The tag names the range; the viewer sees it as a whole resource.
        h.remove(header::RANGE);
        h.remove(header::IF_RANGE);
        if let Some(v) = range {
            h.insert(header::RANGE, v);
        }
    }
    // Like nginx's $proxy_add_x_forwarded_for: the hop we saw is the TCP
    // peer (a trusted load balancer has already listed the client).
    headers::append_forwarded_for(h, conn.peer.ip());
    h.insert("x-forwarded-proto", HeaderValue::from_static(conn.scheme));
    out
}
