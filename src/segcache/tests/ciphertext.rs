//! The bytes: equal to a one-shot `CbcStream` and to `openssl enc`,
//! however the origin chunks them, and no key in `Debug`.

use super::*;

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

fn openssl_enc(c: &Cipher, pt: &[u8]) -> Vec<u8> {
    crate::cbc::tests::openssl_enc(&c.key, &c.iv, pt)
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
