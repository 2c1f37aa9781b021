//! Session capabilities (`tg`): decoding hostile text, and
//! `verify(mint(claims)) == claims` for any claims and scope.
//!
//! Input: the claims and scope as fields (see `tollgate_fuzz::Reader`),
//! then a tamper position and byte, then text tried as a token as is.
//!
//! Asserted: verify never panics on any text; a minted capability is
//! 42–555 URL-safe characters (a prefix binding adds a byte, a device up
//! to 129) and verifies to its claims (expiry clamped to 32 bits, long user
//! ids in their `sha256:` form, a device id beyond 128 bytes left out); it is refused for
//! another route or channel, from another address when bound, after its
//! expiry, and after any one character is changed. Session ids ignore
//! the IPv4-mapped spelling of an address. The admin API's session id
//! text round-trips.
#![no_main]

use std::net::IpAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate::capability::{Binding, CapError, Claims, MasterKeys, Scope, wire_user};
use tollgate::session::SessionId;
use tollgate_fuzz::{Reader, other_ip};

fn keys() -> &'static MasterKeys {
    static K: OnceLock<MasterKeys> = OnceLock::new();
    K.get_or_init(|| MasterKeys::new(b"fuzzing master key, 32 bytes long"))
}

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fuzz_target!(|data: &[u8]| {
    let keys = keys();
    let mut r = Reader(data);
    let flags = r.u8();
    let sid = r.u64();
    let expires = r.u64() >> (r.u8() % 64);
    let user = (flags & 1 != 0).then(|| r.string(usize::from(u8::MAX) + 64));
    let device = (flags & 8 != 0).then(|| r.string(160));
    let prefix = r.u8() % 129;
    let bind_ip = match (flags >> 1) & 3 {
        0 => Binding::Unbound,
        1 => Binding::Address,
        _ => Binding::Prefix(prefix),
    };
    let route = r.string(32);
    let channel = r.string(32);
    let ip = r.ip();
    let tamper_at = usize::from(r.u8());
    let tamper_with = r.u8();
    let raw = r.rest();

    let scope = Scope {
        route: &route,
        channel: &channel,
        client_ip: ip,
    };
    // Hostile text: never a panic, and never accepted (no MAC is forged).
    if let Ok(c) = keys.verify(&raw, &scope, 0) {
        assert_eq!(
            keys.mint(&c, &scope),
            raw,
            "accepted a token mint would not write"
        );
    }

    let claims = Claims {
        sid,
        expires,
        user: user.clone(),
        bind_ip,
        device: device.clone(),
    };
    let token = keys.mint(&claims, &scope);
    assert!((42..=555).contains(&token.len()), "length {}", token.len());
    assert!(token.bytes().all(|b| B64URL.contains(&b)), "{token:?}");
    let wire_expires = expires.min(u64::from(u32::MAX));
    let want = Claims {
        sid,
        expires: wire_expires,
        user: user.as_deref().map(|u| wire_user(u).into_owned()),
        bind_ip: bind_ip.for_ip(ip),
        // An id the hardware-id rule never admits is left out.
        device: device.filter(|d| (1..=128).contains(&d.len())),
    };
    assert_eq!(keys.verify(&token, &scope, wire_expires), Ok(want.clone()));

    let refused = |s: &Scope<'_>, now| keys.verify(&token, s, now).is_err();
    let other_channel = format!("{channel}x");
    assert!(
        refused(
            &Scope {
                channel: &other_channel,
                ..scope
            },
            0
        ),
        "other channel"
    );
    let other_route = format!("{route}\0");
    assert!(
        refused(
            &Scope {
                route: &other_route,
                ..scope
            },
            0
        ),
        "other route"
    );
    let moved = Scope {
        client_ip: other_ip(ip),
        ..scope
    };
    // `other_ip` flips the lowest bit: outside the binding only when it is
    // the whole address (a shorter prefix covers both).
    let exact = want.bind_ip == Binding::Address;
    assert_eq!(refused(&moved, 0), exact, "bound: {bind_ip:?} for {ip}");
    if wire_expires < u64::MAX {
        assert_eq!(
            keys.verify(&token, &scope, wire_expires + 1),
            Err(CapError::Expired)
        );
    }
    let mut bytes = token.clone().into_bytes();
    let at = tamper_at % bytes.len();
    let with = B64URL[usize::from(tamper_with) % B64URL.len()];
    if bytes[at] != with {
        bytes[at] = with;
        let tampered = String::from_utf8_lossy(&bytes);
        assert!(
            refused_text(keys, &tampered, &scope),
            "tampered {tampered:?} accepted"
        );
    }

    // Session ids: deterministic, and the same for `a.b.c.d` and `::ffff:a.b.c.d`.
    let sid_of = |ip: IpAddr| keys.session_id(user.as_deref(), &route, &channel, ip);
    assert_eq!(sid_of(ip), sid_of(ip.to_canonical()));
    if let IpAddr::V4(v4) = ip {
        assert_eq!(sid_of(ip), sid_of(IpAddr::V6(v4.to_ipv6_mapped())));
    }
    assert_eq!(SessionId(sid).to_string().parse(), Ok(SessionId(sid)));
    if let Ok(id) = raw.parse::<SessionId>() {
        assert_eq!(id.to_string(), raw);
    }
});

fn refused_text(keys: &MasterKeys, token: &str, scope: &Scope<'_>) -> bool {
    keys.verify(token, scope, 0).is_err()
}
