//! The master text, the sub-keys, session ids and content keys.

use super::*;

#[test]
fn parse_master_accepts() {
    let sixteen: Vec<u8> = (0u8..16).collect();
    let cases: [(&str, Vec<u8>); 8] = [
        ("hex:000102030405060708090a0b0c0d0e0f", sixteen.clone()),
        ("hex:000102030405060708090A0B0C0D0E0F", sixteen.clone()),
        ("base64:AAECAwQFBgcICQoLDA0ODw==", sixteen.clone()),
        ("base64:AAECAwQFBgcICQoLDA0ODw", sixteen.clone()),
        // Fewer `=` than canonical is tolerated (DecodePaddingMode::Indifferent).
        ("base64:AAECAwQFBgcICQoLDA0ODw=", sixteen.clone()),
        // 0xfb 0xff…: `+`/`/` in standard, `-`/`_` in URL-safe.
        (
            "base64:+////////////////////w==",
            [vec![0xfb], vec![0xff; 15]].concat(),
        ),
        (
            "base64:-____________________w",
            [vec![0xfb], vec![0xff; 15]].concat(),
        ),
        (
            "a passphrase of thirty-two bytes",
            b"a passphrase of thirty-two bytes".to_vec(),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse_master(text), Ok(want), "{text}");
    }
}

#[test]
fn parse_master_refuses_without_quoting_the_secret() {
    let cases = [
        ("hex:000102030405060708090a0b0c0d0e", "15 bytes"),
        ("hex:000102030405060708090a0b0c0d0e0", "even number"),
        ("hex:zz0102030405060708090a0b0c0d0e0f", "position 0"),
        ("hex:", "0 bytes"),
        ("base64:AAECAwQFBgcICQoLDA0O", "15 bytes"),
        ("base64:AAECAwQFBgcICQoLDA0ODw===", "base64"),
        ("base64:AAECAwQFBgcICQ*LDA0ODw", "position 14"),
        ("base64:+AECAwQFBgcICQoLDA0O_w", "base64"),
        ("a passphrase of thirty-one byte", "31 bytes"),
        ("", "0 bytes"),
    ];
    for (text, want) in cases {
        let err = match parse_master(text) {
            Err(e) => e,
            Ok(v) => panic!("{text:?} accepted as {v:?}"),
        };
        assert!(err.contains(want), "{text:?}: {err}");
        let payload = text.split_once(':').map_or(text, |(_, p)| p);
        assert!(
            payload.len() < 4 || !err.contains(payload),
            "{text:?} quoted in {err}"
        );
    }
}

#[test]
fn debug_shows_no_key_material() {
    let k = keys();
    let shown = format!("{k:?} {k:#?}");
    assert_eq!(format!("{k:?}"), "MasterKeys(MASKED)");
    for label in [LABEL_CAP, LABEL_TAG, LABEL_SID, LABEL_CONT] {
        let sub = derive_for_test(&master(), label);
        assert!(!shown.contains(&hex::encode(&sub[..4])));
    }
    assert!(!shown.contains("000102"));
}

#[test]
fn session_id_separates_its_inputs() {
    let k = keys();
    let sid = |user, route, channel, ip| k.session_id(user, route, channel, ip);
    let base = sid(Some("alice"), "live", "ch1", V4);
    assert_eq!(base, sid(Some("alice"), "live", "ch1", V4));
    let others = [
        sid(None, "live", "ch1", V4),
        sid(Some(""), "live", "ch1", V4),
        sid(Some("bob"), "live", "ch1", V4),
        sid(Some("alice"), "vod", "ch1", V4),
        sid(Some("alice"), "live", "ch2", V4),
        sid(Some("alice"), "live", "ch1", V4_OTHER),
        sid(Some("alice"), "live", "ch1", V6),
        MasterKeys::new(&[7; 32]).session_id(Some("alice"), "live", "ch1", V4),
    ];
    for (i, other) in others.iter().enumerate() {
        assert_ne!(base, *other, "case {i}");
    }
    // Anonymous and the empty user are different viewers.
    assert_ne!(others[0], others[1]);
    // A user cannot smuggle a route boundary: ("a\0b" is refused upstream,
    // but the length prefix keeps even that apart).
    assert_ne!(sid(Some("a"), "b", "c", V4), sid(Some("a\0b"), "", "c", V4));
}

#[test]
fn ipv4_mapped_is_ipv4() {
    let k = keys();
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
    assert_eq!(
        k.session_id(None, "live", "ch1", V4),
        k.session_id(None, "live", "ch1", mapped)
    );
    let tok = k.mint(&claims(None, true), &scope(V4));
    assert!(k.verify(&tok, &scope(mapped), NOW).is_ok());
}

#[test]
fn content_key_separates_its_inputs() {
    let k = keys();
    let base = k.content_key("live", "ch1", 1, 2);
    for other in [
        k.content_key("live", "ch1", 1, 3),
        k.content_key("live", "ch1", 2, 2),
        k.content_key("live", "ch2", 1, 2),
        k.content_key("vod", "ch1", 1, 2),
        MasterKeys::new(&[7; 32]).content_key("live", "ch1", 1, 2),
    ] {
        assert_ne!(base, other);
    }
    assert_eq!(base, keys().content_key("live", "ch1", 1, 2));
}
