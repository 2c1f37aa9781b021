//! An immutable set of IPv4/IPv6 networks with longest-prefix lookup.
//!
//! Built once per config load (and later per control-plane snapshot) and
//! swapped atomically; lookups take no lock and do not allocate. One hash set
//! of masked addresses per distinct prefix length, probed from the longest
//! length down: O(distinct lengths) hash probes, which for real allow/deny
//! lists (a handful of lengths) is a few tens of nanoseconds.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;

/// A set of networks answering "does any contain this address, and how specific".
#[derive(Debug, Clone, Default)]
pub struct IpNetSet {
    v4: Vec<(u8, HashSet<u32>)>,
    v6: Vec<(u8, HashSet<u128>)>,
}

fn mask32(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

fn mask128(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

impl IpNetSet {
    /// Build from a list of networks (host bits are ignored).
    pub fn new<'a>(nets: impl IntoIterator<Item = &'a IpNet>) -> Self {
        let mut set = Self::default();
        for net in nets {
            match net {
                IpNet::V4(n) => {
                    let len = n.prefix_len();
                    let key = u32::from(n.addr()) & mask32(len);
                    insert(&mut set.v4, len, key);
                }
                IpNet::V6(n) => {
                    let len = n.prefix_len();
                    let key = u128::from(n.addr()) & mask128(len);
                    insert(&mut set.v6, len, key);
                }
            }
        }
        set
    }

    /// True when no network is in the set.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// The prefix length of the most specific network containing `ip`.
    /// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are looked up as IPv4.
    pub fn longest_match(&self, ip: IpAddr) -> Option<u8> {
        match ip {
            IpAddr::V4(a) => lookup(&self.v4, u32::from(a), mask32),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => lookup(&self.v4, u32::from(v4), mask32),
                None => lookup(&self.v6, u128::from(a), mask128),
            },
        }
    }

    /// True when some network in the set contains `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.longest_match(ip).is_some()
    }
}

fn insert<K: std::hash::Hash + Eq>(levels: &mut Vec<(u8, HashSet<K>)>, len: u8, key: K) {
    match levels.iter_mut().find(|(l, _)| *l == len) {
        Some((_, keys)) => {
            keys.insert(key);
        }
        None => {
            levels.push((len, HashSet::from([key])));
            // Longest first, so the first hit is the most specific.
            levels.sort_by_key(|level| std::cmp::Reverse(level.0));
        }
    }
}

fn lookup<K: Copy + std::hash::Hash + Eq + std::ops::BitAnd<Output = K>>(
    levels: &[(u8, HashSet<K>)],
    addr: K,
    mask: fn(u8) -> K,
) -> Option<u8> {
    levels
        .iter()
        .find(|(len, keys)| keys.contains(&(addr & mask(*len))))
        .map(|(len, _)| *len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(list: &[&str]) -> IpNetSet {
        let nets: Vec<IpNet> = list.iter().map(|s| s.parse().unwrap()).collect();
        IpNetSet::new(&nets)
    }

    #[test]
    fn v4_and_v6_longest_match() {
        let s = set(&[
            "10.0.0.0/8",
            "10.1.0.0/16",
            "192.0.2.7/32",
            "2001:db8::/32",
            "0.0.0.0/0",
        ]);
        let cases: [(&str, Option<u8>); 7] = [
            ("10.2.3.4", Some(8)),
            ("10.1.9.9", Some(16)),
            ("192.0.2.7", Some(32)),
            ("192.0.2.8", Some(0)),
            ("2001:db8::1", Some(32)),
            ("2001:db9::1", None),
            ("::ffff:10.1.0.1", Some(16)),
        ];
        for (ip, want) in cases {
            assert_eq!(s.longest_match(ip.parse().unwrap()), want, "{ip}");
        }
    }

    #[test]
    fn empty_and_host_bits() {
        assert!(set(&[]).is_empty());
        assert!(!set(&[]).contains("1.2.3.4".parse().unwrap()));
        // Host bits set in the config are masked off, as operators expect.
        let s = set(&["203.0.113.77/24"]);
        assert!(s.contains("203.0.113.1".parse().unwrap()));
        assert!(!s.contains("203.0.114.1".parse().unwrap()));
    }

    proptest::proptest! {
        #[test]
        fn matches_linear_scan(nets in proptest::collection::vec((proptest::num::u32::ANY, 0u8..=32), 0..20), probe: u32) {
            let nets: Vec<IpNet> = nets.iter().map(|(a, l)| IpNet::V4(ipnet::Ipv4Net::new((*a).into(), *l).unwrap())).collect();
            let s = IpNetSet::new(&nets);
            let ip = IpAddr::V4(probe.into());
            let want = nets.iter().filter(|n| n.contains(&ip)).map(|n| n.prefix_len()).max();
            proptest::prop_assert_eq!(s.longest_match(ip), want);
        }
    }
}
