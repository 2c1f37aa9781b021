//! Property tests: round trips of arbitrary claims and serves, every
//! single-byte (and single-character) tamper refused, and arbitrary input
//! that never panics.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;

use super::*;

fn keys() -> MasterKeys {
    MasterKeys::new(b"property tests master, 32+ bytes")
}

/// Characters a tamper may put in: the base64url alphabet, the tag
/// grammar's own characters and a few strangers.
const POOL: &[char] = &[
    'A', 'B', 'Q', 'g', 'w', 'z', '0', '1', '9', '-', '_', '.', 'e', 'c', '+', '/', '=', ' ', '%',
    'é', '\0',
];

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ]
}

fn arb_claims() -> impl Strategy<Value = Claims> {
    (
        any::<u64>(),
        any::<u32>(),
        proptest::option::of(".{0,300}"),
        prop_oneof![
            Just(Binding::Unbound),
            Just(Binding::Address),
            any::<u8>().prop_map(Binding::Prefix),
        ],
        proptest::option::of("[A-Za-z0-9:._@-]{1,128}"),
    )
        .prop_map(|(sid, expires, user, bind_ip, device)| Claims {
            sid,
            expires: u64::from(expires),
            user,
            bind_ip,
            device,
        })
}

fn arb_range() -> impl Strategy<Value = Option<ByteRange>> {
    proptest::option::of(
        (any::<u64>(), proptest::option::of(any::<u64>()))
            .prop_map(|(offset, length)| ByteRange { offset, length }),
    )
}

fn arb_serve() -> impl Strategy<Value = Serve> {
    prop_oneof![
        (any::<u64>(), any::<u64>(), any::<u64>(), arb_range()).prop_map(
            |(inc, period, msn, range)| Serve::Encrypt {
                inc,
                period,
                msn,
                range
            }
        ),
        arb_range().prop_map(|range| Serve::Clear { range }),
        any::<u64>().prop_map(|until| Serve::Key { until }),
    ]
}

/// `text` with its `i`-th character replaced by a pool character other
/// than the one there.
fn replace_char(text: &str, i: usize, pick: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut c = POOL[pick % POOL.len()];
    if c == chars[i] {
        c = POOL[(pick + 1) % POOL.len()];
    }
    let mut out = chars;
    out[i] = c;
    out.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn capability_round_trips(c in arb_claims(), ip in arb_ip(), now in any::<u32>()) {
        let k = keys();
        let s = Scope { route: "live", channel: "ch1", client_ip: ip };
        let tok = k.mint(&c, &s);
        let want = Claims {
            user: c.user.as_deref().map(|u| wire_user(u).into_owned()),
            bind_ip: c.bind_ip.for_ip(ip),
            ..c.clone()
        };
        let now = u64::from(now);
        let got = k.verify(&tok, &s, now);
        if now > c.expires {
            prop_assert_eq!(got, Err(CapError::Expired));
        } else {
            prop_assert_eq!(got, Ok(want));
        }
    }

    /// A capability bound to a prefix is valid from exactly the addresses
    /// of that network (of the same family).
    #[test]
    fn prefix_binding_accepts_exactly_the_network(
        c in arb_claims(),
        ip in arb_ip(),
        other in arb_ip(),
        bits in 1u8..=128,
    ) {
        let k = keys();
        let at = |client_ip| Scope { route: "live", channel: "ch1", client_ip };
        let c = Claims { bind_ip: Binding::Prefix(bits), ..c };
        let tok = k.mint(&c, &at(ip));
        let same_family = ip.to_canonical().is_ipv4() == other.to_canonical().is_ipv4();
        let bits = bits.min(if ip.to_canonical().is_ipv4() { 32 } else { 128 });
        let same_net = same_family
            && super::token::network(ip, bits) == super::token::network(other, bits);
        prop_assert_eq!(k.verify(&tok, &at(other), 0).is_ok(), same_net);
    }

    #[test]
    fn every_byte_tamper_of_a_capability_is_refused(
        c in arb_claims(),
        ip in arb_ip(),
        delta in 1u8..=255,
    ) {
        let k = keys();
        let s = Scope { route: "live", channel: "ch1", client_ip: ip };
        let raw = URL_SAFE_NO_PAD.decode(k.mint(&c, &s)).unwrap();
        for i in 0..raw.len() {
            let mut t = raw.clone();
            t[i] ^= delta;
            let tok = URL_SAFE_NO_PAD.encode(&t);
            prop_assert!(k.verify(&tok, &s, 0).is_err(), "byte {} ^ {}", i, delta);
        }
    }

    #[test]
    fn every_char_tamper_of_a_capability_is_refused(
        c in arb_claims(),
        pick in any::<usize>(),
    ) {
        let k = keys();
        let s = Scope { route: "live", channel: "ch1", client_ip: [10, 0, 0, 1].into() };
        let tok = k.mint(&c, &s);
        for i in 0..tok.len() {
            let t = replace_char(&tok, i, pick.wrapping_add(i));
            prop_assert!(k.verify(&t, &s, 0).is_err(), "char {} of {}: {}", i, tok, t);
        }
    }

    #[test]
    fn tag_round_trips(serve in arb_serve(), path in "/[a-z0-9/._-]{0,40}") {
        let k = keys();
        prop_assert_eq!(serve.to_string().parse::<Serve>(), Ok(serve));
        let tgs = k.sign_tag("live", "ch1", &path, &serve);
        prop_assert_eq!(k.verify_tag(&tgs, "live", "ch1", &path), Ok(serve));
    }

    #[test]
    fn every_char_tamper_of_a_tag_is_refused(serve in arb_serve(), pick in any::<usize>()) {
        let k = keys();
        let tgs = k.sign_tag("live", "ch1", "/live/ch1/s.ts", &serve);
        for i in 0..tgs.len() {
            let t = replace_char(&tgs, i, pick.wrapping_add(i));
            prop_assert!(
                k.verify_tag(&t, "live", "ch1", "/live/ch1/s.ts").is_err(),
                "char {} of {}: {}", i, tgs, t
            );
        }
    }

    #[test]
    fn every_bit_tamper_of_a_tag_mac_is_refused(serve in arb_serve()) {
        let k = keys();
        let tgs = k.sign_tag("live", "ch1", "/p", &serve);
        let (body, tag) = tgs.rsplit_once('.').unwrap();
        let mac = URL_SAFE_NO_PAD.decode(tag).unwrap();
        for bit in 0..mac.len() * 8 {
            let mut m = mac.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            let t = format!("{body}.{}", URL_SAFE_NO_PAD.encode(&m));
            prop_assert_eq!(k.verify_tag(&t, "live", "ch1", "/p"), Err(CapError::BadSignature));
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,500}", now in any::<u64>(), ip in arb_ip()) {
        let k = keys();
        let s = Scope { route: "live", channel: "ch1", client_ip: ip };
        let _ = k.verify(&text, &s, now);
        let _ = k.verify_tag(&text, "live", "ch1", "/p");
        let _ = text.parse::<Serve>();
        let _ = parse_master(&text);
        let _ = parse_master(&format!("hex:{text}"));
        let _ = parse_master(&format!("base64:{text}"));
    }

    #[test]
    fn base64_shaped_text_never_panics(text in "[A-Za-z0-9_-]{38,390}") {
        let k = keys();
        let s = Scope { route: "live", channel: "ch1", client_ip: [10, 0, 0, 1].into() };
        prop_assert!(k.verify(&text, &s, 0).is_err());
        let _ = parse_master(&format!("base64:{text}"));
    }

    #[test]
    fn arbitrary_bytes_as_capability_are_refused(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
        let k = keys();
        let s = Scope { route: "live", channel: "ch1", client_ip: [10, 0, 0, 1].into() };
        prop_assert!(k.verify(&URL_SAFE_NO_PAD.encode(&raw), &s, 0).is_err());
    }

    #[test]
    fn tag_shaped_text_never_verifies(text in "[ec0-9.-]{0,60}\\.[A-Za-z0-9_-]{14,18}") {
        prop_assert!(keys().verify_tag(&text, "live", "ch1", "/p").is_err());
    }
}
