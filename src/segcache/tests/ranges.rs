//! Byte ranges over completed and growing fills.

use super::*;

#[tokio::test]
async fn ranges_over_a_completed_fill() {
    let (cache, c, key) = setup(12, "http://origin/o.ts");
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
    let (_cache, pt, want, tx, seg) = growing_fill(13, "http://origin/p.ts", 5000).await;
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
