//! Broken origins: short, long and failing bodies, non-2xx answers,
//! errors before the head, compressed bodies, a panicking fetch.

use std::pin::Pin;
use std::task::Poll;

use tokio::sync::oneshot;

use super::*;

#[derive(Debug, Clone, Copy)]
enum Broken {
    Short,
    Long,
    MidError,
}

#[tokio::test]
async fn broken_origin_bodies_fail_every_reader_and_are_not_cached() {
    for case in [Broken::Short, Broken::Long, Broken::MidError] {
        let (cache, c, key) = setup(2, "http://origin/e.ts");
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
        assert_refetches(&cache, &key, &c, &calls, &pt, &format!("{case:?}")).await;
    }
}

#[tokio::test]
async fn non_2xx_is_passed_through_to_joined_callers_and_not_cached() {
    let (cache, c, key) = setup(3, "http://origin/f.ts");
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
    let (cache, c, key) = setup(4, "http://origin/g.ts");
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
    assert_refetches(
        &cache,
        &key,
        &c,
        &calls,
        &plaintext(100, 5),
        "after the timeout",
    )
    .await;
}

#[tokio::test]
async fn content_encoded_origin_answer_is_refused() {
    let (cache, c, key) = setup(5, "http://origin/h.ts");
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
                assert_eq!(e, ProxyError::BadOriginResponse);
            }
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_panicking_fetch_fails_its_waiters_and_is_retried() {
    let (cache, c, key) = setup(9, "http://origin/k.ts");
    let fetch = || -> Fetched { panic!("fetch bug (expected by this test)") };
    let got = within(cache.get(key.clone(), c.clone(), fetch)).await;
    assert_eq!(got.unwrap_err(), ProxyError::Internal);
    let resp = response(200, Some(3), body_of(vec![data(b"abc")]));
    let (lookup, seg) = get_ok(&cache, &key, &c, fetch_ok(&counter(), resp)).await;
    assert_eq!(lookup, Lookup::Miss);
    assert!(read_all(seg.body(None)).await.data == one_shot(&c, b"abc"));
}
