//! Capabilities: round trips, scope binding, expiry, user ids, refusals.

use super::*;

#[test]
fn capability_round_trips() {
    let k = keys();
    for user in [None, Some(""), Some("alice"), Some("ünïcødé ✓ 視聴者")] {
        for bind in [false, true] {
            let c = claims(user, bind);
            let tok = k.mint(&c, &scope(V6));
            assert_eq!(k.verify(&tok, &scope(V6), NOW), Ok(c));
        }
    }
}

#[test]
fn capability_is_bound_to_route_channel_and_master() {
    let k = keys();
    let tok = k.mint(&claims(Some("alice"), false), &scope(V4));
    let other_route = Scope {
        route: "vod",
        ..scope(V4)
    };
    let other_channel = Scope {
        channel: "ch2",
        ..scope(V4)
    };
    // The route/channel boundary moves: still another scope.
    let shifted = Scope {
        route: "live\0ch1",
        channel: "",
        ..scope(V4)
    };
    for s in [other_route, other_channel] {
        assert_eq!(k.verify(&tok, &s, NOW), Err(CapError::BadSignature));
    }
    assert!(k.verify(&tok, &shifted, NOW).is_err());
    assert_eq!(
        MasterKeys::new(&[7; 32]).verify(&tok, &scope(V4), NOW),
        Err(CapError::BadSignature)
    );
}

#[test]
fn bound_capability_checks_the_ip_unbound_does_not() {
    let k = keys();
    let bound = k.mint(&claims(None, true), &scope(V4));
    assert!(k.verify(&bound, &scope(V4), NOW).is_ok());
    for ip in [V4_OTHER, V6] {
        assert_eq!(
            k.verify(&bound, &scope(ip), NOW),
            Err(CapError::BadSignature)
        );
    }
    let free = k.mint(&claims(None, false), &scope(V4));
    for ip in [V4, V4_OTHER, V6, IpAddr::V4(Ipv4Addr::UNSPECIFIED)] {
        assert!(k.verify(&free, &scope(ip), NOW).is_ok());
    }
}

#[test]
fn prefix_binding_covers_the_network_only() {
    let k = keys();
    let net = |bits| Claims {
        bind_ip: Binding::Prefix(bits),
        ..claims(Some("alice"), false)
    };
    let v4 = |a: [u8; 4]| IpAddr::from(a);
    let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
    // (prefix, minted for, accepted from, refused from)
    let cases: &[(u8, IpAddr, &[IpAddr], &[IpAddr])] = &[
        (
            24,
            v4([192, 0, 2, 7]),
            &[
                v4([192, 0, 2, 8]),
                v4([192, 0, 2, 255]),
                v6("::ffff:192.0.2.1"),
            ],
            &[v4([192, 0, 3, 7]), v4([193, 0, 2, 7]), v6("2001:db8::1")],
        ),
        (
            56,
            v6("2001:db8:1:2ff::1"),
            &[v6("2001:db8:1:200::9"), v6("2001:db8:1:2ff:ffff::")],
            &[v6("2001:db8:1:300::1"), v4([192, 0, 2, 7])],
        ),
        (
            1,
            v4([10, 0, 0, 1]),
            &[v4([127, 255, 255, 255])],
            &[v4([128, 0, 0, 0])],
        ),
    ];
    assert!(!cases.is_empty());
    for &(bits, minted, same, others) in cases {
        let tok = k.mint(&net(bits), &scope(minted));
        for &ip in same.iter().chain([&minted]) {
            assert_eq!(
                k.verify(&tok, &scope(ip), NOW).map(|c| c.bind_ip),
                Ok(Binding::Prefix(bits)),
                "/{bits} from {minted} at {ip}"
            );
        }
        for &ip in others {
            assert_eq!(
                k.verify(&tok, &scope(ip), NOW),
                Err(CapError::BadSignature),
                "/{bits} from {minted} at {ip}"
            );
        }
    }
    // A prefix as wide as the address is the address; an empty one, none.
    let whole = k.mint(&net(32), &scope(V4));
    assert_eq!(whole, k.mint(&claims(Some("alice"), true), &scope(V4)));
    let none = k.mint(&net(0), &scope(V4));
    assert_eq!(none, k.mint(&claims(Some("alice"), false), &scope(V4)));
}

#[test]
fn prefix_byte_is_checked() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let k = keys();
    let c = Claims {
        bind_ip: Binding::Prefix(24),
        ..claims(None, false)
    };
    let raw = URL_SAFE_NO_PAD.decode(k.mint(&c, &scope(V4))).unwrap();
    // ver, flags, sid(8), expires(4), len = 0, prefix, mac.
    assert_eq!((raw[1], raw[15]), (0b110, 24));
    for (flags, prefix) in [(0b100, 24), (0b110, 0), (0b110, 128), (0b110, 255)] {
        let mut t = raw.clone();
        t[1] = flags;
        t[15] = prefix;
        let tok = URL_SAFE_NO_PAD.encode(&t);
        assert_eq!(k.verify(&tok, &scope(V4), NOW), Err(CapError::Malformed));
    }
    // A /40 cannot have been minted for an IPv4 client.
    let mut t = raw.clone();
    t[15] = 40;
    let tok = URL_SAFE_NO_PAD.encode(&t);
    assert_eq!(k.verify(&tok, &scope(V4), NOW), Err(CapError::BadSignature));
}

#[test]
fn expiry_boundary() {
    let k = keys();
    let c = claims(None, false);
    let tok = k.mint(&c, &scope(V4));
    assert!(k.verify(&tok, &scope(V4), 0).is_ok());
    assert!(k.verify(&tok, &scope(V4), c.expires).is_ok());
    assert_eq!(
        k.verify(&tok, &scope(V4), c.expires + 1),
        Err(CapError::Expired)
    );
    assert_eq!(k.verify(&tok, &scope(V4), u64::MAX), Err(CapError::Expired));
    // A bad signature is reported as such even when also expired.
    let other = Scope {
        channel: "ch2",
        ..scope(V4)
    };
    assert_eq!(
        k.verify(&tok, &other, u64::MAX),
        Err(CapError::BadSignature)
    );
}

#[test]
fn expiry_past_32_bits_is_clamped_down() {
    let k = keys();
    for (asked, kept) in [
        (u64::from(u32::MAX), u64::from(u32::MAX)),
        (u64::from(u32::MAX) + 1, u64::from(u32::MAX)),
        (u64::MAX, u64::from(u32::MAX)),
        (0, 0),
    ] {
        let c = Claims {
            expires: asked,
            ..claims(None, false)
        };
        let got = k.verify(&k.mint(&c, &scope(V4)), &scope(V4), 0);
        assert_eq!(got.map(|c| c.expires), Ok(kept));
    }
}

#[test]
fn user_length_edges() {
    let k = keys();
    let check = |user: &str, want: &str| {
        let tok = k.mint(&claims(Some(user), false), &scope(V4));
        let got = k.verify(&tok, &scope(V4), NOW).map(|c| c.user);
        assert_eq!(
            got,
            Ok(Some(want.to_owned())),
            "user of {} bytes",
            user.len()
        );
        tok
    };
    let at_max = "u".repeat(MAX_USER_LEN);
    let tok = check(&at_max, &at_max);
    assert_eq!(tok.len(), 382, "longest token");
    // 255 bytes of multi-byte characters, then one more character.
    let wide = "é".repeat(127) + "x";
    assert_eq!(wide.len(), 255);
    check(&wide, &wide);
    for long in ["x".repeat(256), "é".repeat(128), "y".repeat(10_000)] {
        let wired = wire_user(&long).into_owned();
        assert!(wired.starts_with("sha256:") && wired.len() == 39, "{wired}");
        check(&long, &wired);
    }
    // Two long ids sharing their first 255 bytes stay apart.
    let a = "p".repeat(255) + "a";
    let b = "p".repeat(255) + "b";
    assert_ne!(wire_user(&a), wire_user(&b));
    assert_eq!(wire_user("short"), "short");
    // The shortest token: anonymous.
    assert_eq!(k.mint(&claims(None, false), &scope(V4)).len(), 42);
}

/// Re-encode `raw` bytes with a fresh MAC-less edit; used to build tokens
/// that are well signed nowhere but exercise the parser.
fn reencode(token: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut raw = URL_SAFE_NO_PAD.decode(token).unwrap();
    edit(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

#[test]
fn malformed_capabilities() {
    let k = keys();
    let good = k.mint(&claims(Some("alice"), false), &scope(V4));
    let anon = k.mint(&claims(None, false), &scope(V4));
    let cases = [
        String::new(),
        "A".repeat(41),
        "A".repeat(383),
        format!("{good}A"),
        format!("{good}AA"),
        format!("{good}="),
        format!("{good}=="),
        format!(" {good}"),
        format!("{good}&x=1"),
        format!("+{}", &good[1..]),
        format!("{}/", &good[..good.len() - 1]),
        good[..good.len() - 1].to_owned(),
        // Non-canonical last character: the spare bits must be zero.
        {
            let mut t = anon.clone();
            t.pop();
            t.push('R');
            t
        },
        reencode(&good, |r| r[0] = 2),
        reencode(&good, |r| r[0] = 0),
        reencode(&good, |r| r[1] |= 0b100),
        reencode(&good, |r| r[1] |= 0x80),
        reencode(&anon, |r| r.insert(15, b'x')),
        reencode(&anon, |r| {
            r[14] = 1;
            r.insert(15, b'x');
        }),
        reencode(&good, |r| r[14] = 4),
        reencode(&good, |r| r[14] = 6),
        reencode(&good, |r| r.push(0)),
        reencode(&good, |r| {
            r.pop();
        }),
    ];
    for tok in cases {
        assert_eq!(
            k.verify(&tok, &scope(V4), NOW),
            Err(CapError::Malformed),
            "{tok:?}"
        );
    }
}

#[test]
fn invalid_utf8_user_with_a_valid_mac_is_malformed() {
    // Only a minter holding the key could produce this; it is refused anyway.
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{KeyInit, Mac};
    let k_cap = derive_for_test(&master(), LABEL_CAP);
    let mut raw = vec![1u8, 1];
    raw.extend_from_slice(&1u64.to_be_bytes());
    raw.extend_from_slice(&2_000_000_000u32.to_be_bytes());
    raw.extend_from_slice(&[2, 0xc3, 0x28]);
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(&k_cap).unwrap();
    m.update(&raw);
    m.update(b"\0live\0ch1");
    let mac = m.finalize().into_bytes();
    raw.extend_from_slice(&mac[..16]);
    let tok = URL_SAFE_NO_PAD.encode(raw);
    assert_eq!(
        keys().verify(&tok, &scope(V4), NOW),
        Err(CapError::Malformed)
    );
}
