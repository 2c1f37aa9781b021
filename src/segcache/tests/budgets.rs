//! Fill budgets: a segment over `max_segment` or over what the fill budget
//! has room for streams in a bounded window and is not cached; a fill
//! nobody holds stops; a fill past its deadline fails.

use super::*;
use crate::segcache::fill::{MAX_PIECE, STREAM_WINDOW};

const MIB: u64 = 1 << 20;

/// Most a streaming fill may hold: its window plus the piece it is pushing.
const STREAM_HOLD: u64 = STREAM_WINDOW + MAX_PIECE as u64;

/// Read `body` one frame at a time, checking after each that the fills
/// hold at most `hold` bytes of `budget`.
async fn read_watching(cache: &SegmentCache, body: SegmentBody, budget: u64, hold: u64) -> Read {
    let mut body = Box::pin(body);
    let mut read = Read::default();
    while let Some(frame) = within(body.frame()).await {
        let held = budget - cache.fill_bytes_free();
        assert!(held <= hold, "fills hold {held} bytes, more than {hold}");
        match frame {
            Ok(frame) => read.data.extend_from_slice(&frame.into_data().unwrap()),
            Err(e) => {
                read.error = Some(e);
                break;
            }
        }
        // Let the fill task run ahead as far as it may.
        tokio::task::yield_now().await;
    }
    read
}

#[tokio::test]
async fn a_segment_over_max_segment_streams_in_a_window_and_is_not_cached() {
    let budget = 8 * MIB;
    for declared in [true, false] {
        let cache = SegmentCache::new(BIG, TTL, BIG).with_fill_limits(MIB, budget);
        let c = cipher(21);
        let key = seg_key("http://origin/huge.ts", &c);
        let pt = plaintext(6 * MIB as usize, 21);
        let (tx, body) = channel_body();
        // The origin sends everything at once; only the fill holds back.
        for chunk in pt.chunks(50_000) {
            tx.send(data(chunk)).unwrap();
        }
        drop(tx);
        let resp = response(200, declared.then_some(pt.len()), body);
        let calls = counter();
        let (_, seg) = get_ok(&cache, &key, &c, fetch_ok(&calls, resp)).await;
        let read = read_watching(&cache, seg.body(None), budget, STREAM_HOLD).await;
        assert!(read.error.is_none(), "{:?}", read.error);
        assert!(read.data == one_shot(&c, &pt), "declared={declared}");
        drop(seg);
        // Not cached: the next caller fetches again.
        let resp = response(200, Some(3), body_of(vec![data(b"abc")]));
        let (lookup, _) = get_ok(&cache, &key, &c, fetch_ok(&calls, resp)).await;
        assert_eq!(lookup, Lookup::Miss, "declared={declared}");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}

#[tokio::test]
async fn fills_beyond_the_budget_stream_and_every_byte_is_given_back() {
    let budget = 2 * MIB;
    let cache = SegmentCache::new(BIG, TTL, BIG).with_fill_limits(2 * MIB, budget);
    let c = cipher(22);
    let pt = plaintext(1_500_000, 22);
    let (first_tx, first_body) = channel_body();
    let (second_tx, second_body) = channel_body();
    let (k1, k2) = (
        seg_key("http://origin/1.ts", &c),
        seg_key("http://origin/2.ts", &c),
    );
    let resp1 = response(200, Some(pt.len()), first_body);
    let resp2 = response(200, Some(pt.len()), second_body);
    let (_, s1) = get_ok(&cache, &k1, &c, fetch_ok(&counter(), resp1)).await;
    let (_, s2) = get_ok(&cache, &k2, &c, fetch_ok(&counter(), resp2)).await;
    // The first took its whole length; the second did not fit and streams.
    assert!(!s1.reader.fill().is_streaming());
    assert!(s2.reader.fill().is_streaming());
    for chunk in pt.chunks(40_000) {
        first_tx.send(data(chunk)).unwrap();
        second_tx.send(data(chunk)).unwrap();
    }
    drop((first_tx, second_tx));
    let want = one_shot(&c, &pt);
    let held = encrypted_len(pt.len() as u64);
    let r2 = read_watching(&cache, s2.body(None), budget, held + STREAM_HOLD).await;
    let r1 = read_all(s1.body(None)).await;
    assert!(r1.data == want && r2.data == want);
    drop((s1, s2));
    // The whole one went to the cache (which weighs it), the streaming one
    // let everything go: the budget is whole again.
    assert_eq!(cache.fill_bytes_free(), budget);
    let (lookup, _) = get_ok(&cache, &k1, &c, fetch_never(&counter())).await;
    assert_eq!(lookup, Lookup::Hit);
}

#[tokio::test]
async fn a_fill_nobody_holds_stops_and_drops_its_origin_body() {
    let (cache, c, key) = setup(23, "http://origin/left.ts");
    let pt = plaintext(20_000, 23);
    let (tx, body) = channel_body();
    let calls = counter();
    let resp = response(200, Some(pt.len()), body);
    let (_, seg) = get_ok(&cache, &key, &c, fetch_ok(&calls, resp)).await;
    let mut first = Box::pin(seg.body(None));
    tx.send(data(&pt[..4000])).unwrap();
    within(first.frame()).await.unwrap().unwrap();
    // Another holder keeps it going.
    let other = seg.clone();
    drop((first, seg));
    tokio::task::yield_now().await;
    assert!(!tx.is_closed(), "stopped while still held");
    drop(other);
    // Nobody left: the fill task drops the origin body.
    within(tx.closed()).await;
    let resp = response(200, Some(3), body_of(vec![data(b"abc")]));
    let (lookup, seg) = get_ok(&cache, &key, &c, fetch_ok(&calls, resp)).await;
    assert_eq!(lookup, Lookup::Miss);
    assert!(read_all(seg.body(None)).await.data == one_shot(&c, b"abc"));
}

#[tokio::test]
async fn a_viewer_leaving_before_the_head_stops_the_fetch() {
    let (cache, c, key) = setup(24, "http://origin/early.ts");
    let (gate_tx, gate) = tokio::sync::oneshot::channel::<()>();
    let (dropped_tx, dropped) = tokio::sync::oneshot::channel::<()>();
    // A fetch that never answers and reports when it is dropped.
    struct Report(Option<tokio::sync::oneshot::Sender<()>>);
    impl Drop for Report {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }
    let fetch = move || async move {
        let _report = Report(Some(dropped_tx));
        let _ = gate.await;
        Err::<Response<TestBody>, _>(ProxyError::Internal)
    };
    {
        let get = cache.get(key.clone(), c.clone(), fetch);
        // Give it a moment to start, then the viewer goes away.
        tokio::select! {
            _ = get => panic!("answered without an origin"),
            () = tokio::task::yield_now() => {}
        }
    }
    within(dropped).await.unwrap();
    drop(gate_tx);
}

#[tokio::test(start_paused = true)]
async fn a_fill_past_its_deadline_fails_with_a_timeout() {
    let (cache, c, key) = setup(25, "http://origin/slow.ts");
    let (tx, body) = channel_body();
    tx.send(data(&[0; 100])).unwrap();
    let resp = response(200, Some(1000), body);
    let deadline = Duration::from_secs(30);
    let (_, seg) = cache
        .get_within(key, c, deadline, fetch_ok(&counter(), resp))
        .await
        .unwrap();
    let start = tokio::time::Instant::now();
    // Not `read_all`: its 10 s guard would fire first on the paused clock.
    let mut body = Box::pin(seg.body(None));
    let error = loop {
        match body.frame().await {
            Some(Ok(_)) => {}
            Some(Err(e)) => break e,
            None => panic!("a body short of its declared length ended cleanly"),
        }
    };
    assert!(
        matches!(segment_error(&error), SegmentError::Origin(_)),
        "{error}"
    );
    assert_eq!(start.elapsed(), deadline);
    assert!(tx.is_closed());
}

#[tokio::test]
async fn a_stalled_fill_holding_the_budget_does_not_stall_the_others() {
    let budget = MIB;
    let cache = SegmentCache::new(BIG, TTL, BIG).with_fill_limits(MIB, budget);
    let c = cipher(26);
    let stalled_pt = plaintext(1_000_000, 26);
    let (stalled_tx, stalled_body) = channel_body();
    stalled_tx.send(data(&stalled_pt)).unwrap();
    let resp = response(200, Some(stalled_pt.len()), stalled_body);
    let stalled_key = seg_key("http://origin/stalled.ts", &c);
    // Its viewer never reads: the fill holds (nearly) the whole budget.
    let (_, stalled) = get_ok(&cache, &stalled_key, &c, fetch_ok(&counter(), resp)).await;
    let _stalled_body = stalled.body(None);
    let pt = plaintext(3_000_000, 27);
    let resp = response(200, Some(pt.len()), body_of(vec![data(&pt)]));
    let key = seg_key("http://origin/moving.ts", &c);
    let (_, seg) = get_ok(&cache, &key, &c, fetch_ok(&counter(), resp)).await;
    let read = read_watching(&cache, seg.body(None), budget, budget).await;
    assert!(read.error.is_none(), "{:?}", read.error);
    assert!(read.data == one_shot(&c, &pt));
    drop(stalled_tx);
}
