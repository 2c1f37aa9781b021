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
