//! Size and time limits of the completed-segment cache.

use super::*;

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

#[tokio::test]
async fn zero_copy_entries_weigh_twice_and_get_a_file_only_on_a_zero_copy_hit() {
    let cache = SegmentCache::new(BIG, TTL, BIG).with_zero_copy(true);
    let calls = counter();
    let c = cipher(12);
    let key = seg_key("http://origin/z.ts", &c);
    let pt = plaintext(1000, 12);
    let resp = response(200, Some(1000), body_of(vec![data(&pt)]));
    let (lookup, seg) = get_ok(&cache, &key, &c, fetch_ok(&calls, resp)).await;
    assert_eq!(lookup, Lookup::Miss);
    let zc = crate::zerocopy::ZeroCopy::default();
    // A miss never starts a file, even with a queue.
    let first = read_all(seg.body_to(None, Some(zc.clone()))).await;
    assert!(first.data == one_shot(&c, &pt));
    cache.completed.run_pending_tasks();
    // The entry's weight covers the file it may get.
    assert_eq!((cache.entries(), cache.weighted_bytes()), (1, 2 * 1008));
    assert_eq!(cache.files(), 0);
    // A hit without a queue (https, h2) writes no file either.
    let (lookup, seg) = get_ok(&cache, &key, &c, fetch_never(&calls)).await;
    assert_eq!(lookup, Lookup::Hit);
    assert!(read_all(seg.body_to(None, None)).await.data == first.data);
    assert_eq!(cache.files(), 0);
    // The first zero-copy hit writes it (off the async workers), once.
    let (_, seg) = get_ok(&cache, &key, &c, fetch_never(&calls)).await;
    assert!(read_all(seg.body_to(None, Some(zc.clone()))).await.data == first.data);
    within(async {
        while cache.files() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let (_, seg) = get_ok(&cache, &key, &c, fetch_never(&calls)).await;
    // A marker, not bytes (only the connection's stream can send it; the
    // bytes are checked through the binary in tests/zerocopy.rs).
    let by_file = read_all(seg.body_to(Some((10, 99)), Some(zc))).await;
    assert_eq!(by_file.frames, [90], "one marker for the range");
    assert_eq!(cache.files(), 1);
}
