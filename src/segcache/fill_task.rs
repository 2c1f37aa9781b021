//! The one task per fill: fetch, publish the head, encrypt the origin body
//! into the fill as it arrives, then hand a good result to the cache.
//!
//! Must not: pad a body that ended short or long (the fill fails instead,
//! so readers abort rather than receive a well-formed wrong segment),
//! encrypt a content-encoded body, cache anything but a complete encrypted
//! segment held whole, hold bytes it has no room for ([`Fill::room`]), run
//! past its deadline, or go on once nobody holds the fill: then it stops,
//! dropping the origin response (and so closing its connection). A
//! [`Cleanup`] guard fails the fill and clears the in-flight slot even if
//! the task is dropped or `fetch` panics, so no waiter hangs.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use http::{HeaderMap, Response, StatusCode, header};
use http_body::Body;
use http_body_util::BodyExt;

use super::fill::{Fill, MAX_PIECE, SegmentError, SegmentHead};
use super::{Cached, Cipher, SegKey};
use crate::body::BoxError;
use crate::cbc::{CbcStream, encrypted_len};
use crate::error::ProxyError;

/// Plaintext fed to the cipher per call: with up to 15 carried bytes the
/// ciphertext of one call stays within [`MAX_PIECE`].
const MAX_PLAIN: usize = MAX_PIECE - 16;

/// Where a finished fill goes.
pub(super) struct Job {
    pub(super) key: SegKey,
    pub(super) cipher: Cipher,
    pub(super) fill: Arc<Fill>,
    pub(super) completed: moka::sync::Cache<SegKey, Cached>,
    pub(super) inflight: Arc<DashMap<SegKey, Arc<Fill>>>,
    pub(super) max_entry_bytes: u64,
    /// The whole fill must end within this (the origin's `total_timeout`).
    pub(super) deadline: std::time::Duration,
    /// A cached fill may get a memory file (`SegmentCache::with_zero_copy`).
    pub(super) zero_copy: bool,
}

/// The fill ran past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("segment fill not finished within {0:?}")]
struct FillDeadline(std::time::Duration);

/// Run one fill to its end (spawned by `SegmentCache::get` on a miss).
pub(super) async fn run<F, Fut, B>(job: Job, fetch: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Response<B>, ProxyError>>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let cleanup = Cleanup {
        key: &job.key,
        fill: &job.fill,
        inflight: &job.inflight,
    };
    let produced = tokio::select! {
        biased;
        () = abandoned(&job) => None,
        r = tokio::time::timeout(job.deadline, produce(&job.fill, &job.cipher, fetch)) => {
            r.unwrap_or_else(|_| {
                job.fill.set_head(Err(ProxyError::OriginTimeout));
                job.fill.fail(SegmentError::Origin(Arc::new(FillDeadline(job.deadline))));
                None
            })
        }
    };
    if let Some(len) = produced {
        // Every byte is in the fill. Cache it before completing it (no await
        // in between, so cancellation cannot leave a cached fill open) and
        // before it leaves the in-flight map, so a caller that misses one
        // finds the other (see `SegmentCache::lookup`) and a reader that saw
        // the end finds the entry cached.
        if len <= job.max_entry_bytes && !job.fill.is_streaming() {
            // The cache weighs it from now on.
            job.fill.release_budget();
            // With zero copy on, the memory file a hit may add weighs like
            // the pieces from the start (moka weighs an entry once).
            let copies = if job.zero_copy { 2 } else { 1 };
            let weight = u32::try_from(len.saturating_mul(copies)).unwrap_or(u32::MAX);
            let cached = Cached {
                fill: Arc::clone(&job.fill),
                weight,
            };
            job.completed.insert(job.key.clone(), cached);
        }
        job.fill.complete();
    }
    drop(cleanup);
}

/// Resolves once nobody holds the fill and it can no longer be joined (it
/// was taken out of the in-flight map, or was not in it any more).
async fn abandoned(job: &Job) {
    loop {
        let left = job.fill.left().notified();
        if job.fill.readers() == 0 && forget(job) {
            return;
        }
        left.await;
    }
}

/// Under the map's shard lock (where callers join), take the fill out of
/// the map if still nobody holds it; true when nobody can hold it again.
fn forget(job: &Job) -> bool {
    match job.inflight.entry(job.key.clone()) {
        Entry::Occupied(e) if Arc::ptr_eq(e.get(), &job.fill) => {
            let nobody = job.fill.readers() == 0;
            if nobody {
                e.remove();
            }
            nobody
        }
        _ => job.fill.readers() == 0,
    }
}

/// Fails a fill that was left open and removes it from the in-flight map.
struct Cleanup<'a> {
    key: &'a SegKey,
    fill: &'a Arc<Fill>,
    inflight: &'a DashMap<SegKey, Arc<Fill>>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.fill.is_done() {
            self.fill.fail(SegmentError::Aborted);
        }
        // Only our own fill: a failed one may already have been replaced.
        self.inflight
            .remove_if(self.key, |_, fill| Arc::ptr_eq(fill, self.fill));
    }
}

/// Fetch and fill. Returns the ciphertext length when every byte of an
/// encrypted segment is in the fill, which the caller then completes.
/// Every other result is not worth caching and ends the fill here.
async fn produce<F, Fut, B>(fill: &Fill, cipher: &Cipher, fetch: F) -> Option<u64>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Response<B>, ProxyError>>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let response = match fetch().await {
        Ok(response) => response,
        Err(e) => {
            fill.set_head(Err(e));
            fill.fail(SegmentError::Aborted);
            return None;
        }
    };
    let (parts, body) = response.into_parts();
    if !is_identity(&parts.headers) {
        // Encrypting (or relaying without its header) a compressed body
        // would corrupt it; the proxy asked for identity.
        fill.set_head(Err(ProxyError::BadOriginResponse));
        fill.fail(SegmentError::Aborted);
        return None;
    }
    let content_type = parts.headers.get(header::CONTENT_TYPE).cloned();
    if !matches!(parts.status, StatusCode::OK | StatusCode::PARTIAL_CONTENT) {
        fill.set_head(Ok(SegmentHead {
            status: parts.status,
            encrypted: false,
            content_type,
            last_modified: None,
            length: None,
        }));
        match relay_prefix(fill, body).await {
            Ok(()) => fill.complete(),
            Err(e) => fill.fail(e),
        }
        return None;
    }
    let declared = content_length(&parts.headers).or_else(|| body.size_hint().exact());
    fill.plan(declared.map(encrypted_len));
    fill.set_head(Ok(SegmentHead {
        status: StatusCode::OK,
        encrypted: true,
        content_type,
        last_modified: parts.headers.get(header::LAST_MODIFIED).cloned(),
        length: declared.map(encrypted_len),
    }));
    match encrypt(fill, cipher, declared, body).await {
        Ok(()) => Some(fill.len()),
        Err(e) => {
            fill.fail(e);
            None
        }
    }
}

/// Stream `body` through the cipher into `fill`, checking the declared
/// length. The padding block is added only after that check passed.
async fn encrypt<B>(
    fill: &Fill,
    cipher: &Cipher,
    declared: Option<u64>,
    body: B,
) -> Result<(), SegmentError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut body = pin!(body);
    let mut stream = CbcStream::new(&cipher.key, &cipher.iv);
    let mut out = BytesMut::with_capacity(MAX_PIECE);
    let mut received: u64 = 0;
    loop {
        // Not `while let`: its scrutinee would live across the awaits below.
        let Some(frame) = body.frame().await else {
            break;
        };
        let Some(data) = data_of(frame)? else {
            continue; // trailers
        };
        received += data.len() as u64;
        if let Some(declared) = declared
            && received > declared
        {
            return Err(SegmentError::Overlong { declared });
        }
        for plain in data.chunks(MAX_PLAIN) {
            out.reserve(plain.len() + 16);
            stream.update(plain, &mut out);
            let piece = out.split().freeze();
            fill.room(piece.len() as u64).await;
            fill.push(piece);
        }
    }
    if let Some(declared) = declared
        && received != declared
    {
        return Err(SegmentError::Truncated { declared, received });
    }
    // On a backend failure nothing is appended and the fill fails below.
    stream.finish(&mut out)?;
    let piece = out.split().freeze();
    fill.room(piece.len() as u64).await;
    fill.push(piece);
    Ok(())
}

/// Copy the first 64 KiB of a non-2xx answer's body into `fill`, as is.
async fn relay_prefix<B>(fill: &Fill, body: B) -> Result<(), SegmentError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut body = pin!(body);
    let mut room = MAX_PIECE;
    while room > 0 {
        let Some(frame) = body.frame().await else {
            break;
        };
        if let Some(mut data) = data_of(frame)? {
            data.truncate(room);
            room -= data.len();
            fill.room(data.len() as u64).await;
            fill.push(data);
        }
    }
    Ok(())
}

/// The data of a frame (`None` for trailers), or the body's error.
fn data_of<E: Into<BoxError>>(
    frame: Result<http_body::Frame<Bytes>, E>,
) -> Result<Option<Bytes>, SegmentError> {
    match frame {
        Ok(frame) => Ok(frame.into_data().ok()),
        Err(e) => Err(origin_error(e)),
    }
}

fn origin_error(e: impl Into<BoxError>) -> SegmentError {
    SegmentError::Origin(Arc::from(e.into()))
}

/// No `Content-Encoding`, or only `identity`.
fn is_identity(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONTENT_ENCODING).iter().all(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .map(str::trim)
                .all(|c| c.is_empty() || c.eq_ignore_ascii_case("identity"))
        })
    })
}

/// The `Content-Length`, when present and a plain number.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    let text = headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}
