//! `[sessions] bind_ip`: to which client addresses a capability is bound.
//!
//! `false` (the default), `true` (the whole address), or a prefix:
//! `"/24"` binds IPv4 clients to their /24, `"/56"` IPv6 clients to their
//! /56 (a single prefix of at most 32 bits is an IPv4 one, a longer one an
//! IPv6 one; the other family stays bound to the whole address), and
//! `"/24,/56"` names both. Whatever it says, a capability minted for an
//! entry that the `ip` method allowed is bound: the address was the
//! credential ([`BindIp::binding`]).
//!
//! Pure: parsing and the binding decision, no I/O.

use std::net::IpAddr;

use serde::Deserialize;

use crate::capability::Binding;

/// The value as written in the file: a boolean or a prefix text.
#[derive(Debug, Clone)]
pub enum RawBindIp {
    /// `true` / `false`.
    Flag(bool),
    /// `"/24"`, `"/56"`, `"/24,/56"`.
    Prefix(String),
}

impl<'de> Deserialize<'de> for RawBindIp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawBindIp;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false or a prefix such as \"/24\", \"/56\" or \"/24,/56\"")
            }
            fn visit_bool<E>(self, v: bool) -> Result<RawBindIp, E> {
                Ok(RawBindIp::Flag(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<RawBindIp, E> {
                Ok(RawBindIp::Prefix(v.to_owned()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// How many leading bits of a client's address its capabilities are bound
/// to, per address family; 0 = not bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BindIp {
    /// Bits of an IPv4 address (0–32).
    pub v4: u8,
    /// Bits of an IPv6 address (0–128).
    pub v6: u8,
}

impl BindIp {
    /// `bind_ip = true`: the whole address.
    pub const ADDRESS: BindIp = BindIp { v4: 32, v6: 128 };

    /// Reads the file's value; errors are sentences for `sessions.bind_ip`.
    pub fn from_raw(raw: &RawBindIp) -> Result<BindIp, String> {
        match raw {
            RawBindIp::Flag(false) => Ok(BindIp::default()),
            RawBindIp::Flag(true) => Ok(BindIp::ADDRESS),
            RawBindIp::Prefix(text) => parse(text).ok_or_else(|| {
                format!(
                    "{text:?} is not a prefix: expected true, false, \"/N\" (N = 1-32 for \
                     IPv4, 33-128 for IPv6) or \"/V4,/V6\" such as \"/24,/56\""
                )
            }),
        }
    }

    /// The binding of a capability minted for a viewer at `ip`.
    /// `by_address`: the entry was allowed by the `ip` method, so the
    /// address is the credential and the capability is bound even with
    /// `bind_ip = false` (to the whole address then; to the configured
    /// prefix when one is set, the operator's word for "the same client").
    pub fn binding(self, ip: IpAddr, by_address: bool) -> Binding {
        let bits = if ip.to_canonical().is_ipv4() {
            self.v4
        } else {
            self.v6
        };
        match bits {
            0 if by_address => Binding::Address,
            0 => Binding::Unbound,
            n => Binding::Prefix(n).for_ip(ip),
        }
    }
}

fn parse(text: &str) -> Option<BindIp> {
    let bits = |part: &str, max: u8| -> Option<u8> {
        let digits = part.trim().strip_prefix('/')?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<u8>().ok().filter(|n| (1..=max).contains(n))
    };
    match text.split_once(',') {
        Some((v4, v6)) => Some(BindIp {
            v4: bits(v4, 32)?,
            v6: bits(v6, 128)?,
        }),
        None => {
            let n = bits(text, 128)?;
            Some(if n <= 32 {
                BindIp { v4: n, v6: 128 }
            } else {
                BindIp { v4: 32, v6: n }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(text: &str) -> Result<BindIp, String> {
        BindIp::from_raw(&RawBindIp::Prefix(text.to_owned()))
    }

    #[test]
    fn values() {
        let b = |v4, v6| Ok(BindIp { v4, v6 });
        assert_eq!(BindIp::from_raw(&RawBindIp::Flag(false)), b(0, 0));
        assert_eq!(BindIp::from_raw(&RawBindIp::Flag(true)), b(32, 128));
        let cases = [
            ("/24", b(24, 128)),
            ("/32", b(32, 128)),
            ("/56", b(32, 56)),
            ("/128", b(32, 128)),
            ("/24,/56", b(24, 56)),
            (" /16 , /48 ", b(16, 48)),
            ("/1,/1", b(1, 1)),
        ];
        for (text, want) in cases {
            assert_eq!(from(text), want, "{text:?}");
        }
        for bad in [
            "",
            "/",
            "24",
            "/0",
            "/129",
            "/-1",
            "/+8",
            "/24,",
            ",/56",
            "/33,/56",
            "/24,/0",
            "/24,/56,/64",
            "/2 4",
            "true",
        ] {
            assert!(from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reads_booleans_and_strings_only() {
        #[derive(Deserialize)]
        struct S {
            bind_ip: RawBindIp,
        }
        let read = |text: &str| toml::from_str::<S>(text).map(|s| s.bind_ip);
        assert!(matches!(read("bind_ip = true"), Ok(RawBindIp::Flag(true))));
        assert!(matches!(read("bind_ip = \"/24\""), Ok(RawBindIp::Prefix(p)) if p == "/24"));
        let err = read("bind_ip = 24").err().unwrap().to_string();
        assert!(err.contains("true, false or a prefix"), "{err}");
    }

    #[test]
    fn binding_per_family_and_method() {
        let v4: IpAddr = [192, 0, 2, 7].into();
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        let off = BindIp::default();
        assert_eq!(off.binding(v4, false), Binding::Unbound);
        assert_eq!(off.binding(v6, false), Binding::Unbound);
        // The `ip` method's entries are always bound.
        assert_eq!(off.binding(v4, true), Binding::Address);
        assert_eq!(off.binding(v6, true), Binding::Address);
        let all = BindIp::ADDRESS;
        assert_eq!(all.binding(v4, false), Binding::Address);
        assert_eq!(all.binding(v6, true), Binding::Address);
        let nets = from("/24,/56").unwrap();
        assert_eq!(nets.binding(v4, false), Binding::Prefix(24));
        assert_eq!(nets.binding(v6, true), Binding::Prefix(56));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(nets.binding(mapped, false), Binding::Prefix(24));
        let v4_only = from("/24").unwrap();
        assert_eq!(v4_only.binding(v6, false), Binding::Address);
    }
}
