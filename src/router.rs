//! The route table: picks the route for a normalized path by longest
//! prefix, and names the channel a path points into.
//!
//! It owns prefix-match semantics and nothing else: it does not normalize
//! (callers pass the output of [`crate::path::normalize`]), does not know
//! what a route does, and never refuses a request itself (no match is
//! `None`; the caller decides the status).
//!
//! Pure core: no I/O, no clock, no logging. A [`RouteTable`] is built once
//! per config load and never changes; the shell shares it behind an `Arc`,
//! so lookups take no lock, and they do not allocate.
//!
//! # Prefix semantics
//!
//! - A prefix ending in `/` matches every path that starts with it.
//! - Any other prefix matches the path equal to it, or starting with it
//!   followed by `/`: `/live` matches `/live` and `/live/x`, never
//!   `/livestream/x`.
//! - `/` matches every absolute path. The longest matching prefix wins; when
//!   two routes share a prefix the first one in the slice wins.
//!
//! # How a lookup works
//!
//! A match can only end where a prefix length ends, and at such a length
//! `l` the candidate is exactly `path[..l]`. So the table keeps the distinct
//! prefix lengths, longest first, and for each one that falls on a segment
//! boundary of the path it makes a single hash probe. The work is bounded
//! by the number of distinct lengths, not of routes. On the `route_lookup`
//! tables of `benches/routing.rs`, a longest-first linear scan (measured
//! while choosing; not kept) was a few ns faster at 3 routes and 5-10x
//! slower at 100.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// One route as the table sees it: its prefix and which path segment after
/// the prefix names the channel (1 = first; 0 = the route has no channel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// The path prefix, matched as described in the module docs.
    pub prefix: String,
    /// Which segment after the prefix is the channel name, counting from 1.
    pub channel: usize,
}

/// Immutable table built once per config load; lookups take no lock and do
/// not allocate.
#[derive(Debug, Clone)]
pub struct RouteTable {
    /// Each distinct prefix, mapped to the id of the first route declaring it.
    by_prefix: HashMap<Box<[u8]>, usize, BuildHasherDefault<Fnv1a>>,
    /// The distinct prefix lengths, longest first: the only places a
    /// matching prefix can end.
    lengths: Box<[usize]>,
    /// Per route id: its spec as given to [`RouteTable::new`].
    routes: Box<[RouteSpec]>,
}

impl RouteTable {
    /// Builds the table; index `i` in `routes` is route id `i`. Duplicate
    /// prefixes are allowed here (config validation rejects them) and
    /// resolve deterministically to the first.
    pub fn new(routes: &[RouteSpec]) -> Self {
        let mut by_prefix = HashMap::with_capacity_and_hasher(routes.len(), Default::default());
        for (id, route) in routes.iter().enumerate() {
            by_prefix
                .entry(route.prefix.as_bytes().into())
                .or_insert(id);
        }
        let mut lengths: Vec<usize> = routes.iter().map(|r| r.prefix.len()).collect();
        lengths.sort_unstable_by(|a, b| b.cmp(a));
        lengths.dedup();
        Self {
            by_prefix,
            lengths: lengths.into(),
            routes: routes.into(),
        }
    }

    /// Longest matching prefix wins; returns the route id, or `None` when
    /// no prefix matches.
    pub fn lookup(&self, normalized_path: &str) -> Option<usize> {
        let path = normalized_path.as_bytes();
        self.lengths.iter().find_map(|&len| {
            let candidate = path.get(..len)?;
            if !ends_on_boundary(candidate, path) {
                return None;
            }
            self.by_prefix.get(candidate).copied()
        })
    }

    /// The channel name for a path matched by route `id`: the `channel`-th
    /// path segment after the prefix, only if that segment is non-empty and
    /// followed by more path (a channel needs something under it):
    /// `/live/ch1/index.m3u8` gives `ch1`; `/live/ch1` and `/live/ch1/` give
    /// `None`. Also `None` when `id` is unknown, the route's `channel` is 0,
    /// or the route's prefix does not match the path.
    pub fn channel<'a>(&self, id: usize, normalized_path: &'a str) -> Option<&'a str> {
        let route = self.routes.get(id)?;
        let index = route.channel.checked_sub(1)?;
        let prefix = route.prefix.as_bytes();
        let matched = normalized_path.as_bytes().get(..prefix.len())?;
        if matched != prefix || !ends_on_boundary(matched, normalized_path.as_bytes()) {
            return None;
        }
        let rest = normalized_path.get(prefix.len()..)?;
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        let mut segments = rest.split('/');
        let name = segments.nth(index)?;
        let under = segments.next()?;
        (!name.is_empty() && !under.is_empty()).then_some(name)
    }
}

/// Whether a prefix equal to `candidate` (a leading slice of `path`) may
/// match `path`: it ends in `/`, or the path ends or continues with `/`
/// right after it.
fn ends_on_boundary(candidate: &[u8], path: &[u8]) -> bool {
    candidate.last() == Some(&b'/') || matches!(path.get(candidate.len()), None | Some(b'/'))
}

/// FNV-1a, a short-key hash several times cheaper here than std's SipHash.
/// Flooding resistance buys nothing: the keys come from the config file,
/// and a client only chooses which few of them are probed.
#[derive(Debug, Clone, Copy)]
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(prefixes: &[(&str, usize)]) -> RouteTable {
        let specs: Vec<RouteSpec> = prefixes
            .iter()
            .map(|&(prefix, channel)| RouteSpec {
                prefix: prefix.to_owned(),
                channel,
            })
            .collect();
        RouteTable::new(&specs)
    }

    #[test]
    fn longest_prefix_and_boundaries() {
        let t = table(&[
            ("/", 0),
            ("/live", 1),
            ("/live/premium/", 1),
            ("/vod/", 1),
            ("/live/premium/ch9", 1),
        ]);
        let cases = [
            ("/", Some(0)),
            ("/other/x", Some(0)),
            ("/live", Some(1)),
            ("/live/", Some(1)),
            ("/live/ch1/index.m3u8", Some(1)),
            ("/livestream/x", Some(0)),
            ("/live/premium", Some(1)),
            ("/live/premium/", Some(2)),
            ("/live/premium/ch1/a.ts", Some(2)),
            ("/live/premium/ch9", Some(4)),
            ("/live/premium/ch9/a.ts", Some(4)),
            ("/live/premium/ch99/a.ts", Some(2)),
            ("/vod", Some(0)),
            ("/vod/", Some(3)),
            ("/vod/movie/a.ts", Some(3)),
            ("/caf\u{e9}/x", Some(0)),
        ];
        for (path, want) in cases {
            assert_eq!(t.lookup(path), want, "lookup({path:?})");
        }
    }

    #[test]
    fn no_root_route_means_misses() {
        let t = table(&[("/live", 1), ("/vod/", 1)]);
        for path in ["/", "/livestream/x", "/vod", "/x/live/a", "", "live/a"] {
            assert_eq!(t.lookup(path), None, "lookup({path:?})");
        }
        assert_eq!(table(&[]).lookup("/live/a"), None);
    }

    #[test]
    fn duplicate_prefix_resolves_to_first() {
        let t = table(&[("/a", 1), ("/live", 1), ("/live", 2)]);
        assert_eq!(t.lookup("/live/x/y"), Some(1));
        assert_eq!(t.channel(1, "/live/x/y"), Some("x"));
    }

    #[test]
    fn channel_table() {
        let t = table(&[("/live", 1), ("/t/", 2), ("/", 1), ("/raw", 0)]);
        let cases = [
            (0, "/live/ch1/index.m3u8", Some("ch1")),
            (0, "/live/ch1/1080p/seg-1.ts", Some("ch1")),
            (0, "/live/ch1", None),
            (0, "/live/ch1/", None),
            (0, "/live", None),
            (0, "/live/", None),
            (0, "/livestream/ch1/x", None),
            (0, "/vod/ch1/x", None),
            (1, "/t/acme/ch2/index.m3u8", Some("ch2")),
            (1, "/t/acme/ch2/", None),
            (1, "/t/acme/ch2", None),
            (1, "/t/acme/", None),
            (2, "/ch3/seg.ts", Some("ch3")),
            (2, "/ch3", None),
            (2, "/", None),
            (3, "/raw/ch1/x", None),
            (4, "/live/ch1/x", None),
            (usize::MAX, "/live/ch1/x", None),
        ];
        for (id, path, want) in cases {
            assert_eq!(t.channel(id, path), want, "channel({id}, {path:?})");
        }
    }

    /// The semantics written out the slow, obvious way.
    fn reference_lookup(prefixes: &[String], path: &str) -> Option<usize> {
        let matches = |p: &String| {
            path.starts_with(p.as_str())
                && (p.ends_with('/') || path.len() == p.len() || path[p.len()..].starts_with('/'))
        };
        let mut best: Option<usize> = None;
        for (id, p) in prefixes.iter().enumerate() {
            if matches(p) && best.is_none_or(|b| p.len() > prefixes[b].len()) {
                best = Some(id);
            }
        }
        best
    }

    proptest! {
        #[test]
        fn lookup_agrees_with_reference(
            prefixes in prop::collection::vec("/([ab]{1,2}/?){0,3}", 0..12),
            path in "/([ab]{1,2}/?){0,5}",
        ) {
            let specs: Vec<RouteSpec> = prefixes
                .iter()
                .map(|p| RouteSpec { prefix: p.clone(), channel: 1 })
                .collect();
            let t = RouteTable::new(&specs);
            prop_assert_eq!(t.lookup(&path), reference_lookup(&prefixes, &path));
        }
    }
}
