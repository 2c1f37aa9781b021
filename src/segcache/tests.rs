//! Cache-level tests. Fake origins are `StreamBody`s over iterators or
//! over channels the test feeds, so the test decides when each byte, end or
//! error arrives; [`within`] turns a hang (a lost wake-up) into a failure.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use http::{Response, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::mpsc;

use super::*;
use crate::body::BoxError;
use crate::cbc::{CbcStream, encrypted_len, iv_for_msn};

mod budgets;
mod ciphertext;
mod failures;
mod flight;
mod limits;
mod ranges;

type Chunk = Result<Frame<Bytes>, BoxError>;
type TestBody = StreamBody<BoxStream<'static, Chunk>>;
type Fetched = std::future::Ready<Result<Response<TestBody>, ProxyError>>;

const KEY: [u8; 16] = *b"segcache-key-016";
const BIG: u64 = 1 << 30;
const TTL: Duration = Duration::from_secs(60);

fn cipher(msn: u64) -> Cipher {
    Cipher {
        key: KEY,
        iv: iv_for_msn(msn),
    }
}

fn seg_key(uri: &str, c: &Cipher) -> SegKey {
    SegKey::new(uri, None, c)
}

/// A cache with room for everything, the cipher of `msn` and the key of
/// `uri` under it: how most tests start.
fn setup(msn: u64, uri: &str) -> (SegmentCache, Cipher, SegKey) {
    let c = cipher(msn);
    let key = seg_key(uri, &c);
    (SegmentCache::new(BIG, TTL, BIG), c, key)
}

/// xorshift64: deterministic pseudo-random numbers without a crate.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn plaintext(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n).map(|_| next(&mut s) as u8).collect()
}

fn one_shot(c: &Cipher, pt: &[u8]) -> Vec<u8> {
    let mut s = CbcStream::new(&c.key, &c.iv);
    let mut out = BytesMut::new();
    s.update(pt, &mut out);
    s.finish(&mut out).unwrap();
    out.to_vec()
}

fn data(bytes: &[u8]) -> Chunk {
    Ok(Frame::data(Bytes::copy_from_slice(bytes)))
}

/// An origin body that yields `chunks` and ends.
fn body_of(chunks: Vec<Chunk>) -> TestBody {
    StreamBody::new(stream::iter(chunks).boxed())
}

/// An origin body the test feeds by hand; it ends when the sender is dropped.
fn channel_body() -> (mpsc::UnboundedSender<Chunk>, TestBody) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stream = stream::poll_fn(move |cx| rx.poll_recv(cx));
    (tx, StreamBody::new(stream.boxed()))
}

fn response(status: u16, declared: Option<usize>, body: TestBody) -> Response<TestBody> {
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "video/mp2t");
    if let Some(n) = declared {
        b = b.header(header::CONTENT_LENGTH, n);
    }
    b.body(body).unwrap()
}

/// A fetch that counts its calls and answers `resp`.
fn fetch_ok(
    calls: &Arc<AtomicUsize>,
    resp: Response<TestBody>,
) -> impl FnOnce() -> Fetched + Send + 'static {
    let calls = Arc::clone(calls);
    move || {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(resp))
    }
}

/// A fetch that must not be called (the caller joins a running fill).
fn fetch_never(calls: &Arc<AtomicUsize>) -> impl FnOnce() -> Fetched + Send + 'static {
    let calls = Arc::clone(calls);
    move || {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Err(ProxyError::Internal))
    }
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// Await `f`, failing after 10 s. Unlike `tokio::time::timeout`, the
/// deadline is checked first, so a lost wake-up cannot pass as slow success.
async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::select! {
        biased;
        () = tokio::time::sleep(Duration::from_secs(10)) => panic!("test step hung (lost wake-up?)"),
        v = f => v,
    }
}

/// Everything a body yields: its data, its error if any, and frame sizes.
#[derive(Default)]
struct Read {
    data: Vec<u8>,
    error: Option<BoxError>,
    frames: Vec<usize>,
}

async fn read_all(body: SegmentBody) -> Read {
    let mut body = Box::pin(body);
    let mut read = Read::default();
    while let Some(frame) = within(body.frame()).await {
        match frame {
            Ok(frame) => {
                let bytes = frame.into_data().unwrap();
                read.frames.push(bytes.len());
                read.data.extend_from_slice(&bytes);
            }
            Err(e) => {
                read.error = Some(e);
                break;
            }
        }
    }
    // After the end (or an error) the body stays ended.
    assert!(body.frame().await.is_none());
    assert!(body.is_end_stream());
    read
}

async fn get_ok(
    cache: &SegmentCache,
    key: &SegKey,
    c: &Cipher,
    fetch: impl FnOnce() -> Fetched + Send + 'static,
) -> (Lookup, Segment) {
    within(cache.get(key.clone(), c.clone(), fetch))
        .await
        .unwrap()
}

/// A fill whose origin declares `declared` bytes and whose body the test
/// feeds through the returned sender (the fetch counts in `calls`).
async fn fed_fill(
    cache: &SegmentCache,
    key: &SegKey,
    c: &Cipher,
    declared: usize,
    calls: &Arc<AtomicUsize>,
) -> (Lookup, Segment, mpsc::UnboundedSender<Chunk>) {
    let (tx, body) = channel_body();
    let resp = response(200, Some(declared), body);
    let (lookup, seg) = get_ok(cache, key, c, fetch_ok(calls, resp)).await;
    (lookup, seg, tx)
}

/// A fill of `plaintext(n, msn)` under way: the test feeds its origin body
/// through the sender, and nobody has read the segment yet. Returns the
/// cache (keep it alive), the plaintext, its ciphertext, the sender and the
/// segment.
async fn growing_fill(
    msn: u64,
    uri: &str,
    n: usize,
) -> (
    SegmentCache,
    Vec<u8>,
    Vec<u8>,
    mpsc::UnboundedSender<Chunk>,
    Segment,
) {
    let (cache, c, key) = setup(msn, uri);
    let pt = plaintext(n, msn);
    let want = one_shot(&c, &pt);
    let (_, seg, tx) = fed_fill(&cache, &key, &c, pt.len(), &counter()).await;
    (cache, pt, want, tx, seg)
}

/// Nothing was cached: the next get misses, fetches again (the second
/// fetch counted in `calls`) and serves `pt` encrypted.
async fn assert_refetches(
    cache: &SegmentCache,
    key: &SegKey,
    c: &Cipher,
    calls: &Arc<AtomicUsize>,
    pt: &[u8],
    what: &str,
) {
    let resp = response(200, Some(pt.len()), body_of(vec![data(pt)]));
    let (lookup, seg) = get_ok(cache, key, c, fetch_ok(calls, resp)).await;
    assert_eq!(lookup, Lookup::Miss, "{what}");
    assert!(read_all(seg.body(None)).await.data == one_shot(c, pt));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

fn segment_error(e: &BoxError) -> &SegmentError {
    e.downcast_ref::<SegmentError>()
        .unwrap_or_else(|| panic!("not a SegmentError: {e}"))
}
