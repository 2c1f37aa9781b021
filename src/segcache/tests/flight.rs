//! Single flight and streaming: one fetch for many callers, bytes as soon
//! as they are encrypted, fills that outlive their first viewer.

use std::sync::Mutex;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_gets_fetch_once() {
    let (cache, c, key) = setup(7, "http://origin/c.ts");
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
    let (_cache, pt, want, tx, seg) = growing_fill(1, "http://origin/d.ts", 5000).await;
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

#[tokio::test]
async fn fill_goes_on_when_the_first_viewer_leaves() {
    let (cache, c, key) = setup(8, "http://origin/j.ts");
    let calls = counter();
    let pt = plaintext(20_000, 8);
    let (lookup, seg, tx) = fed_fill(&cache, &key, &c, pt.len(), &calls).await;
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

/// Readers on other threads racing a stream of tiny pushes: a reader that
/// looked, found nothing and parked after a push would hang here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_lost_wake_ups_under_racing_pushes() {
    let (cache, c, key) = setup(14, "http://origin/q.ts");
    let pt = Arc::new(plaintext(17 * 4000, 14));
    let want = Arc::new(one_shot(&c, &pt));
    let (_, seg, tx) = fed_fill(&cache, &key, &c, pt.len(), &counter()).await;
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
