//! Phase 6 for a playlist: the origin's, from the micro-cache, rendered
//! for this session (every URI gains the session's capability).

use std::sync::Arc;

use http::Response;
use http::header::{self, HeaderValue};
use tokio::time::Instant;

use super::Ctx;
use crate::access_log::RequestRecord;
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::origin::Origin;
use crate::playlist_cache::Fetched;

/// A rewritten playlist for this session.
pub(super) async fn serve_playlist(
    ctx: &Ctx<'_>,
    origin: &Arc<Origin>,
    uri: http::Uri,
    record: &mut RequestRecord,
) -> Result<Response<ProxyBody>, ProxyError> {
    let compile = ctx.compile(origin);
    let sent = Instant::now();
    let timings = &ctx.shared.metrics.origin_duration;
    let fetched = ctx
        .live
        .playlists
        .get(origin, uri, &compile, timings)
        .await?;
    record.origin_latency = Some(sent.elapsed());
    render(ctx, &fetched, record)
}

/// Turn a fetched playlist into this session's response.
pub(super) fn render(
    ctx: &Ctx<'_>,
    fetched: &Fetched,
    record: &mut RequestRecord,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (status, content_type, body) = match fetched {
        Fetched::Playlist {
            template,
            content_type,
        } => {
            ctx.shared.metrics.playlists_rewritten.inc();
            let ct = content_type
                .clone()
                .unwrap_or(HeaderValue::from_static("application/vnd.apple.mpegurl"));
            (http::StatusCode::OK, Some(ct), template.render(&ctx.mint()))
        }
        Fetched::Other {
            status,
            content_type,
            body,
        } => (*status, content_type.clone(), body.clone()),
    };
    record.origin_status = Some(status.as_u16());
    let mut resp = Response::new(if ctx.is_head {
        crate::body::empty()
    } else {
        crate::body::full(body.clone())
    });
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if let Some(ct) = content_type {
        h.insert(header::CONTENT_TYPE, ct);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(resp)
}
