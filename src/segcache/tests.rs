//! Cache-level tests: fake origins are `StreamBody`s over iterators or
//! test-controlled channels, so every interleaving below is deterministic.

use std::future::Future;
use std::io::{ErrorKind, Write};
use std::pin::Pin;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use http::{Response, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::cbc::{CbcStream, encrypted_len, iv_for_msn};

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
    s.finish(&mut out);
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
struct Read {
    data: Vec<u8>,
    error: Option<BoxError>,
    frames: Vec<usize>,
}

async fn read_all(body: SegmentBody) -> Read {
    let mut body = Box::pin(body);
    let mut read = Read {
        data: Vec::new(),
        error: None,
        frames: Vec::new(),
    };
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

fn segment_error(e: &BoxError) -> &SegmentError {
    e.downcast_ref::<SegmentError>()
        .unwrap_or_else(|| panic!("not a SegmentError: {e}"))
}

#[tokio::test]
async fn ciphertext_equals_one_shot_for_random_chunkings() {
    let mut rng = 0x1234_5678_9abc_def0_u64;
    let mut lengths = vec![0, 1, 15, 16, 17, 4095, 65_520, 65_536, 200_000];
    lengths.extend((0..20).map(|_| (next(&mut rng) % 5000) as usize));
    for (i, &n) in lengths.iter().enumerate() {
        let c = cipher(i as u64);
        let pt = plaintext(n, i as u64);
        let want = one_shot(&c, &pt);
        assert_eq!(want.len() as u64, encrypted_len(n as u64));
        let mut chunks = Vec::new();
        let mut rest = &pt[..];
        while !rest.is_empty() {
            // Every fourth segment arrives as one frame (up to 200 KB).
            let size = if i % 4 == 0 {
                rest.len()
            } else {
                1 + (next(&mut rng) % 3000) as usize
            };
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            chunks.push(data(chunk));
            rest = tail;
        }
        let declared = (i % 3 != 2).then_some(n);
        let want_len = declared.map(|n| encrypted_len(n as u64));
        let cache = SegmentCache::new(BIG, TTL, BIG);
        let calls = counter();
        let resp = response(200, declared, body_of(chunks));
        let key = seg_key("http://origin/a.ts?x=1", &c);
        let (lookup, seg) = get_ok(&cache, &key, &c, fetch_ok(&calls, resp)).await;
        assert_eq!(lookup, Lookup::Miss);
        let head = seg.head();
        assert_eq!((head.status, head.encrypted), (StatusCode::OK, true));
        assert_eq!(head.length, want_len, "n={n}");
        assert_eq!(head.content_type.as_ref().unwrap(), "video/mp2t");
        let body = seg.body(None);
        assert_eq!(body.size_hint().exact(), want_len);
        let read = read_all(body).await;
        assert!(read.error.is_none(), "n={n}: {:?}", read.error);
        assert!(read.data == want, "n={n}: ciphertext differs");
        assert!(read.frames.iter().all(|&f| (1..=65_536).contains(&f)));
    }
}

/// The reference ciphertext from the real `openssl enc` binary.
fn openssl_enc(c: &Cipher, pt: &[u8]) -> Vec<u8> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(pt).unwrap();
    file.flush().unwrap();
    let run = Command::new("openssl")
        .args(["enc", "-aes-128-cbc", "-K"])
        .arg(hex::encode(c.key))
        .arg("-iv")
        .arg(hex::encode(c.iv))
        .arg("-in")
        .arg(file.path())
        .output();
    let output = match run {
        Ok(o) => o,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            panic!("openssl not found: apt-get install openssl")
        }
        Err(e) => panic!("running openssl: {e}"),
    };
    assert!(
        output.status.success(),
        "openssl enc failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[tokio::test]
async fn ciphertext_equals_openssl_enc() {
    for (msn, n) in [(3_u64, 1000_usize), (4, 188 * 7), (5, 0)] {
        let c = cipher(msn);
        let pt = plaintext(n, msn);
        let want = openssl_enc(&c, &pt);
        assert_eq!(want.len() as u64, encrypted_len(n as u64));
        let chunks = pt.chunks(188).map(data).collect();
        let cache = SegmentCache::new(BIG, TTL, BIG);
        let resp = response(200, Some(n), body_of(chunks));
        let key = seg_key("http://origin/b.ts", &c);
        let (_, seg) = get_ok(&cache, &key, &c, fetch_ok(&counter(), resp)).await;
        let read = read_all(seg.body(None)).await;
        assert!(read.error.is_none());
        assert!(read.data == want, "n={n}: differs from openssl");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_gets_fetch_once() {
    let cache = SegmentCache::new(BIG, TTL, BIG);
    let c = cipher(7);
    let key = seg_key("http://origin/c.ts", &c);
    let pt = plaintext(300_000, 7);
    let want = Arc::new(one_shot(&c, &pt));
    let calls = counter();
    let (tx, body) = channel_body();
    // Every caller gets a fetch; only the one of the Miss may be called.
    let slot = Arc::new(Mutex::new(Some(response(200, Some(pt.len()), body))));
    let (lookups_tx, mut lookups) = mpsc::unbounded_channel();
    let mut readers = Vec::new();
    for _ in 0..50 {
        let (cache, key, c) = (cache.clone(), key.clone(), c.clone());
        let (slot, calls, lookups_tx) = (Arc::clone(&slot), Arc::clone(&calls), lookups_tx.clone());
        readers.push(tokio::spawn(async move {
            let fetch = move || {
                calls.fetch_add(1, Ordering::SeqCst);
                std::future::ready(slot.lock().unwrap().take().ok_or(ProxyError::Internal))
            };
            let (lookup, seg) = cache.get(key, c, fetch).await.unwrap();
            lookups_tx.send(lookup).unwrap();
            read_all(seg.body(None)).await
        }));
    }
    // All 50 have their head while the origin body has not sent a byte.
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen.push(within(lookups.recv()).await.unwrap());
    }
    let count = |l| seen.iter().filter(|&&s| s == l).count();
    assert_eq!((count(Lookup::Miss), count(Lookup::Joined)), (1, 49));
    for chunk in pt.chunks(7000) {
        tx.send(data(chunk)).unwrap();
    }
    drop(tx);
    for reader in readers {
        let read = within(reader).await.unwrap();
        assert!(read.error.is_none(), "{:?}", read.error);
        assert!(read.data == *want, "a reader got different bytes");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let (lookup, seg) = get_ok(&cache, &key, &c, fetch_never(&calls)).await;
    assert_eq!(lookup, Lookup::Hit);
    assert!(read_all(seg.body(None)).await.data == *want);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn reader_gets_ciphertext_before_the_origin_finishes() {
    let cache = SegmentCache::new(BIG, TTL, BIG);
    let c = cipher(1);
    let key = seg_key("http://origin/d.ts", &c);
    let pt = plaintext(5000, 1);
    let want = one_shot(&c, &pt);
    let (tx, body) = channel_body();
    let resp = response(200, Some(pt.len()), body);
    let (_, seg) = get_ok(&cache, &key, &c, fetch_ok(&counter(), resp)).await;
    let mut reader = Box::pin(seg.body(None));
    tx.send(data(&pt[..1000])).unwrap();
    // The origin now blocks until the test sends more: the first 62 whole
    // blocks must already be readable.
    let first = within(reader.frame()).await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), want[..992]);
    tx.send(data(&pt[1000..])).unwrap();
    drop(tx);
    let mut rest = Vec::new();
    while let Some(frame) = within(reader.frame()).await {
        rest.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    assert!(rest == want[992..]);
}

#[derive(Debug, Clone, Copy)]
enum Broken {
    Short,
    Long,
    MidError,
}

#[tokio::test]
async fn broken_origin_bodies_fail_every_reader_and_are_not_cached() {
    for case in [Broken::Short, Broken::Long, Broken::MidError] {
        let cache = SegmentCache::new(BIG, TTL, BIG);
        let c = cipher(2);
        let key = seg_key("http://origin/e.ts", &c);
        let calls = counter();
        let (tx, body) = channel_body();
        let (declared, sent) = match case {
            Broken::Short => (1000, 500),
            Broken::Long => (500, 1000),
            Broken::MidError => (1000, 200),
        };
        let pt = plaintext(sent, 2);
        let resp = response(200, Some(declared), body);
        let (first, seg1) = get_ok(&cache, &key, &c, fetch_ok(&calls, resp)).await;
        let (second, seg2) = get_ok(&cache, &key, &c, fetch_never(&calls)).await;
        assert_eq!((first, second), (Lookup::Miss, Lookup::Joined), "{case:?}");
        let prefix = one_shot(&c, &pt);
        tx.send(data(&pt)).unwrap();
        // A reader already parked when the fill fails must hear of it.
        let mut parked = Box::pin(seg1.body(None));
        if !matches!(case, Broken::Long) {
            let first = within(parked.frame()).await.unwrap().unwrap();
            let first = first.into_data().unwrap();
            assert!(first == prefix[..first.len()], "{case:?}");
        }
        let (ended, ()) = tokio::join!(within(parked.frame()), async move {
            if let Broken::MidError = case {
                tx.send(Err("connection reset".into())).unwrap();
            }
            drop(tx);
        });
        assert!(matches!(ended, Some(Err(_))), "{case:?}");
        // A body that ended short never gets its (well-formed) padding
        // block: readers see whole blocks of what arrived, then an error.
        let whole_blocks = sent / 16 * 16;
        for seg in [seg1, seg2] {
            let read = read_all(seg.body(None)).await;
            let error = read.error.unwrap_or_else(|| panic!("{case:?}: no error"));
            match (case, segment_error(&error)) {
                (
                    Broken::Short,
                    SegmentError::Truncated {
                        declared: 1000,
                        received: 500,
                    },
                ) => {}
                (Broken::Long, SegmentError::Overlong { declared: 500 }) => {}
                (Broken::MidError, SegmentError::Origin(e)) => {
                    assert_eq!(e.to_string(), "connection reset");
                }
                (_, other) => panic!("{case:?}: wrong error {other:?}"),
            }
            assert!(read.data.len() <= whole_blocks, "{case:?}: padding sent");
            assert!(read.data == prefix[..read.data.len()], "{case:?}");
        }
        // Nothing was cached: the next call fetches again and succeeds.
        let pt = plaintext(declared, 3);
        let chunks = vec![data(&pt)];
        let resp = response(200, Some(declared), body_of(chunks));
        let (lookup, seg) = get_ok(&cache, &key, &c, fetch_ok(&calls, resp)).await;
        assert_eq!(lookup, Lookup::Miss, "{case:?}");
        assert!(read_all(seg.body(None)).await.data == one_shot(&c, &pt));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}

#[tokio::test]
async fn non_2xx_is_passed_through_to_joined_callers_and_not_cached() {
    let cache = SegmentCache::new(BIG, TTL, BIG);
    let c = cipher(3);
    let key = seg_key("http://origin/f.ts", &c);
    let calls = counter();
    let (tx, body) = channel_body();
    let mut resp = response(404, Some(15), body);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
    let (first, seg1) = get_ok(&cache, &key, &c, fetch_ok(&calls, resp)).await;
    let (second, seg2) = get_ok(&cache, &key, &c, fetch_never(&calls)).await;
    assert_eq!((first, second), (Lookup::Miss, Lookup::Joined));
    tx.send(data(b"no such ")).unwrap();
    tx.send(data(b"segment")).unwrap();
    // One reader has everything and waits for the end, which comes later.
    let mut early = Box::pin(seg1.body(None));
    let frame = within(early.frame()).await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), &b"no such "[..]);
    let frame = within(early.frame()).await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), &b"segment"[..]);
    let (end, ()) = tokio::join!(within(early.frame()), async { drop(tx) });
    assert!(end.is_none());
    for seg in [seg1, seg2] {
        let head = seg.head();
        assert_eq!(
            (head.status, head.encrypted, head.length),
            (StatusCode::NOT_FOUND, false, None)
        );
        assert_eq!(head.content_type.as_ref().unwrap(), "text/plain");
        let read = read_all(seg.body(None)).await;
        assert!(read.error.is_none());
        assert_eq!(read.data, b"no such segment");
    }
    // Not cached: asked again, the origin is asked again.
    let big = plaintext(100_000, 4);
    let resp = response(503, Some(big.len()), body_of(vec![data(&big)]));
    let (lookup, seg) = get_ok(&cache, &key, &c, fetch_ok(&calls, resp)).await;
    assert_eq!(
        (lookup, seg.head().status),
        (Lookup::Miss, StatusCode::SERVICE_UNAVAILABLE)
    );
    // Only the first 64 KiB of an error body is relayed.
    assert_eq!(read_all(seg.body(None)).await.data, big[..65_536]);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

type GetFuture<'a> = Pin<Box<dyn Future<Output = Result<(Lookup, Segment), ProxyError>> + 'a>>;

#[tokio::test]
async fn fetch_error_reaches_every_joined_caller_then_a_retry_works() {
    let cache = SegmentCache::new(BIG, TTL, BIG);
    let c = cipher(4);
    let key = seg_key("http://origin/g.ts", &c);
    let calls = counter();
    let (gate, gated) = oneshot::channel::<()>();
    let calls1 = Arc::clone(&calls);
    let fetch = move || async move {
        calls1.fetch_add(1, Ordering::SeqCst);
        let _ = gated.await;
        Err::<Response<TestBody>, _>(ProxyError::OriginTimeout)
    };
    let mut gets: Vec<GetFuture<'_>> = vec![Box::pin(cache.get(key.clone(), c.clone(), fetch))];
    for _ in 0..4 {
        gets.push(Box::pin(cache.get(
            key.clone(),
            c.clone(),
            fetch_never(&calls),
        )));
    }
    // Poll each once: all five find (or start) the one fill before it fails.
    std::future::poll_fn(|cx| {
        for get in &mut gets {
            assert!(get.as_mut().poll(cx).is_pending());
        }
        Poll::Ready(())
    })
    .await;
    gate.send(()).unwrap();
    for get in gets {
        assert_eq!(within(get).await.unwrap_err(), ProxyError::OriginTimeout);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let pt = plaintext(100, 5);
    let resp = response(200, Some(100), body_of(vec![data(&pt)]));
    let (lookup, seg) = get_ok(&cache, &key, &c, fetch_ok(&calls, resp)).await;
    assert_eq!(lookup, Lookup::Miss);
    assert!(read_all(seg.body(None)).await.data == one_shot(&c, &pt));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn content_encoded_origin_answer_is_refused() {
    let cache = SegmentCache::new(BIG, TTL, BIG);
    let c = cipher(5);
    let key = seg_key("http://origin/h.ts", &c);
    let calls = counter();
    for (encoding, ok) in [("gzip", false), ("identity", true), ("identity, br", false)] {
        let mut resp = response(200, Some(3), body_of(vec![data(b"abc")]));
        resp.headers_mut()
            .insert(header::CONTENT_ENCODING, encoding.parse().unwrap());
        let got = within(cache.get(key.clone(), c.clone(), fetch_ok(&calls, resp))).await;
        match got {
            Ok((lookup, seg)) => {
                assert!(ok, "{encoding} accepted");
                assert_eq!(lookup, Lookup::Miss);
                assert!(read_all(seg.body(None)).await.data == one_shot(&c, b"abc"));
                // Start afresh for the next case.
                cache.completed.invalidate(&key);
            }
            Err(e) => {
                assert!(!ok, "{encoding} refused");
                assert_eq!(e, ProxyError::OriginUnavailable);
            }
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn partial_content_from_origin_is_a_success() {
    let cache = SegmentCache::new(BIG, TTL, BIG);
    let c = cipher(6);
    let range = ByteRange {
        offset: 100,
        length: Some(50),
    };
    let key = SegKey::new("http://origin/i.ts", Some(range), &c);
    let pt = plaintext(50, 6);
    let resp = response(206, Some(50), body_of(vec![data(&pt)]));
    let (_, seg) = get_ok(&cache, &key, &c, fetch_ok(&counter(), resp)).await;
    assert_eq!(seg.head().status, StatusCode::OK);
    assert_eq!(seg.head().length, Some(64));
    assert!(read_all(seg.body(None)).await.data == one_shot(&c, &pt));
    // The same URI whole is another entry.
    let whole = seg_key("http://origin/i.ts", &c);
    let calls = counter();
    let resp = response(200, Some(3), body_of(vec![data(b"abc")]));
    let (lookup, _) = get_ok(&cache, &whole, &c, fetch_ok(&calls, resp)).await;
    assert_eq!(lookup, Lookup::Miss);
}

#[tokio::test]
async fn fill_goes_on_when_the_first_viewer_leaves() {
    let cache = SegmentCache::new(BIG, TTL, BIG);
    let c = cipher(8);
    let key = seg_key("http://origin/j.ts", &c);
    let calls = counter();
    let pt = plaintext(20_000, 8);
    let (tx, body) = channel_body();
    let resp = response(200, Some(pt.len()), body);
    let (lookup, seg) = get_ok(&cache, &key, &c, fetch_ok(&calls, resp)).await;
    assert_eq!(lookup, Lookup::Miss);
    let mut first = Box::pin(seg.body(None));
    tx.send(data(&pt[..4000])).unwrap();
    within(first.frame()).await.unwrap().unwrap();
    drop(first);
    drop(seg);
    tx.send(data(&pt[4000..])).unwrap();
    drop(tx);
    let (lookup, seg) = get_ok(&cache, &key, &c, fetch_never(&calls)).await;
    assert_ne!(lookup, Lookup::Miss);
    assert!(read_all(seg.body(None)).await.data == one_shot(&c, &pt));
    let (lookup, _) = get_ok(&cache, &key, &c, fetch_never(&calls)).await;
    assert_eq!(lookup, Lookup::Hit);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_panicking_fetch_fails_its_waiters_and_is_retried() {
    let cache = SegmentCache::new(BIG, TTL, BIG);
    let c = cipher(9);
    let key = seg_key("http://origin/k.ts", &c);
    let fetch = || -> Fetched { panic!("fetch bug (expected by this test)") };
    let got = within(cache.get(key.clone(), c.clone(), fetch)).await;
    assert_eq!(got.unwrap_err(), ProxyError::Internal);
    let resp = response(200, Some(3), body_of(vec![data(b"abc")]));
    let (lookup, seg) = get_ok(&cache, &key, &c, fetch_ok(&counter(), resp)).await;
    assert_eq!(lookup, Lookup::Miss);
    assert!(read_all(seg.body(None)).await.data == one_shot(&c, b"abc"));
}

#[tokio::test]
async fn a_key_for_another_cipher_is_refused() {
    let cache = SegmentCache::new(BIG, TTL, BIG);
    let key = seg_key("http://origin/l.ts", &cipher(1));
    let calls = counter();
    let got = cache.get(key, cipher(2), fetch_never(&calls)).await;
    assert_eq!(got.unwrap_err(), ProxyError::Internal);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn debug_hides_the_key() {
    let c = Cipher {
        key: [0xab; 16],
        iv: iv_for_msn(1),
    };
    let key = seg_key("http://origin/m.ts", &c);
    for shown in [format!("{c:?}"), format!("{key:?}")] {
        assert!(!shown.contains("abab") && !shown.contains("171"), "{shown}");
        assert!(shown.contains("MASKED"), "{shown}");
    }
}

#[tokio::test]
async fn oversized_entry_is_served_but_not_cached() {
    let cache = SegmentCache::new(BIG, TTL, 1000);
    let calls = counter();
    // 2000 bytes → 2016 of ciphertext: over the limit. 500 → 512: under it.
    for (n, cached) in [(2000, false), (500, true)] {
        let c = cipher(n as u64);
        let key = seg_key("http://origin/n.ts", &c);
        let pt = plaintext(n, 10);
        let resp = response(200, Some(n), body_of(vec![data(&pt)]));
        let (lookup, seg) = get_ok(&cache, &key, &c, fetch_ok(&calls, resp)).await;
        assert_eq!(lookup, Lookup::Miss);
        assert!(read_all(seg.body(None)).await.data == one_shot(&c, &pt));
        let before = calls.load(Ordering::SeqCst);
        let resp = response(200, Some(n), body_of(vec![data(&pt)]));
        let (lookup, seg) = get_ok(&cache, &key, &c, fetch_ok(&calls, resp)).await;
        let want = if cached { Lookup::Hit } else { Lookup::Miss };
        assert_eq!(lookup, want, "n={n}");
        assert!(read_all(seg.body(None)).await.data == one_shot(&c, &pt));
        assert_eq!(calls.load(Ordering::SeqCst), before + usize::from(!cached));
    }
    cache.completed.run_pending_tasks();
    assert_eq!((cache.entries(), cache.weighted_bytes()), (1, 512));
}

#[tokio::test]
async fn weigher_keeps_the_cache_within_its_byte_budget() {
    let cache = SegmentCache::new(10_000, TTL, 5000);
    let calls = counter();
    let c = cipher(11);
    let keys: Vec<SegKey> = (0..20)
        .map(|i| seg_key(&format!("http://origin/{i}.ts"), &c))
        .collect();
    for key in &keys {
        let pt = plaintext(1000, 11);
        let resp = response(200, Some(1000), body_of(vec![data(&pt)]));
        let (_, seg) = get_ok(&cache, key, &c, fetch_ok(&calls, resp)).await;
        assert_eq!(read_all(seg.body(None)).await.data.len(), 1008);
        cache.completed.run_pending_tasks();
    }
    let (entries, bytes) = (cache.entries(), cache.weighted_bytes());
    assert!(bytes <= 10_000, "{bytes} bytes cached");
    assert!((1..20).contains(&entries), "{entries} entries");
    assert_eq!(bytes, entries * 1008);
    // LRU: the newest segment is the one kept.
    let newest = keys.last().unwrap();
    let (lookup, _) = get_ok(&cache, newest, &c, fetch_never(&calls)).await;
    assert_eq!(lookup, Lookup::Hit);
}

#[tokio::test]
async fn ranges_over_a_completed_fill() {
    let cache = SegmentCache::new(BIG, TTL, BIG);
    let c = cipher(12);
    let key = seg_key("http://origin/o.ts", &c);
    let pt = plaintext(200_000, 12);
    let want = one_shot(&c, &pt);
    let total = want.len() as u64;
    let chunks = pt.chunks(3001).map(data).collect();
    let resp = response(200, Some(pt.len()), body_of(chunks));
    let (_, seg) = get_ok(&cache, &key, &c, fetch_ok(&counter(), resp)).await;
    assert!(read_all(seg.body(None)).await.data == want);
    let (lookup, seg) = get_ok(&cache, &key, &c, fetch_never(&counter())).await;
    assert_eq!(lookup, Lookup::Hit);
    let ranges = [
        (0, 0),
        (0, 15),
        (5, 70_000),
        (3000, 3001),
        (65_535, 65_536),
        (100, total - 1),
        (total - 1, total - 1),
        (0, total - 1),
    ];
    for (s, e) in ranges {
        let body = seg.body(Some((s, e)));
        assert_eq!(body.size_hint().exact(), Some(e - s + 1));
        let read = read_all(body).await;
        assert!(read.error.is_none(), "{s}-{e}");
        assert!(read.data == want[s as usize..=e as usize], "{s}-{e}");
        assert!(read.frames.iter().all(|&f| f <= 65_536));
    }
    // A range past the end fails instead of ending short.
    let read = read_all(seg.body(Some((total - 16, total + 5)))).await;
    assert_eq!(read.data, want[want.len() - 16..]);
    assert!(matches!(
        segment_error(&read.error.unwrap()),
        SegmentError::RangeBeyondEnd { .. }
    ));
    // Through parse_range, as the proxy uses it.
    let header = http::HeaderValue::from_static("bytes=-100");
    let RangeAnswer::Partial(s, e) = parse_range(&header, seg.head().length) else {
        panic!("not partial");
    };
    assert!(read_all(seg.body(Some((s, e)))).await.data == want[want.len() - 100..]);
}

#[tokio::test]
async fn ranges_over_a_growing_fill() {
    let cache = SegmentCache::new(BIG, TTL, BIG);
    let c = cipher(13);
    let key = seg_key("http://origin/p.ts", &c);
    let pt = plaintext(5000, 13);
    let want = one_shot(&c, &pt);
    let (tx, body) = channel_body();
    let resp = response(200, Some(pt.len()), body);
    let (_, seg) = get_ok(&cache, &key, &c, fetch_ok(&counter(), resp)).await;
    // Opened before any byte exists.
    let mut ranged = Box::pin(seg.body(Some((1000, 2999))));
    tx.send(data(&pt[..600])).unwrap();
    tx.send(data(&pt[600..1500])).unwrap();
    // Ciphertext up to 1488 exists: the reader gets 1000..1488 now.
    let mut got = within(ranged.frame())
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap()
        .to_vec();
    assert!(!got.is_empty() && got[..] == want[1000..1000 + got.len()]);
    assert!(1000 + got.len() <= 1488);
    tx.send(data(&pt[1500..])).unwrap();
    drop(tx);
    while let Some(frame) = within(ranged.frame()).await {
        got.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    assert!(got == want[1000..=2999]);
}

/// Readers on other threads racing a stream of tiny pushes: a reader that
/// looked, found nothing and parked after a push would hang here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_lost_wake_ups_under_racing_pushes() {
    let cache = SegmentCache::new(BIG, TTL, BIG);
    let c = cipher(14);
    let key = seg_key("http://origin/q.ts", &c);
    let pt = Arc::new(plaintext(17 * 4000, 14));
    let want = Arc::new(one_shot(&c, &pt));
    let (tx, body) = channel_body();
    let resp = response(200, Some(pt.len()), body);
    let (_, seg) = get_ok(&cache, &key, &c, fetch_ok(&counter(), resp)).await;
    let readers: Vec<_> = (0..6)
        .map(|_| {
            let (seg, want) = (seg.clone(), Arc::clone(&want));
            tokio::spawn(async move { read_all(seg.body(None)).await.data == *want })
        })
        .collect();
    let feeder = tokio::spawn(async move {
        for (i, chunk) in pt.chunks(17).enumerate() {
            tx.send(data(chunk)).unwrap();
            if i % 8 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    within(feeder).await.unwrap();
    for reader in readers {
        assert!(
            within(reader).await.unwrap(),
            "a reader got different bytes"
        );
    }
}

#[tokio::test]
async fn an_absurd_ttl_is_capped_not_a_panic() {
    let cache = SegmentCache::new(BIG, Duration::MAX, BIG);
    let c = cipher(15);
    let key = seg_key("http://origin/r.ts", &c);
    let resp = response(200, Some(3), body_of(vec![data(b"abc")]));
    let (_, seg) = get_ok(&cache, &key, &c, fetch_ok(&counter(), resp)).await;
    assert!(read_all(seg.body(None)).await.data == one_shot(&c, b"abc"));
    let (lookup, _) = get_ok(&cache, &key, &c, fetch_never(&counter())).await;
    assert_eq!(lookup, Lookup::Hit);
}
