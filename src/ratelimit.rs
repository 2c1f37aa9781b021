//! `[rate_limit]` (SPEC §8): per-address token buckets (GCRA, `governor`)
//! on entry requests and on failed authentications, so 300 wrong-token
//! guesses from one address meet 429 `rate_limited`, not 300 answers that
//! tell right from wrong.
//!
//! Two buckets per address (IPv4 by its address, IPv6 by its /64: what one
//! subscriber is given):
//! - `entry`: every request that presents credentials (no capability yet:
//!   entry playlists and channel lists) takes one cell before anything
//!   else; an empty bucket is 429.
//! - `failed`: every failed authentication takes one cell. When the bucket
//!   is empty the address is *penalized* until a cell is back: every entry
//!   from it is 429 **before** its credentials are looked at, so a guess
//!   made while penalized learns nothing, right or wrong.
//!
//! Memory is bounded by `max_addresses` per bucket: the sweep drops idle
//! addresses; past the bound (a flood from many addresses) new addresses
//! are counted by their network (IPv4 /16, IPv6 /32), past twice the bound
//! in one overflow bucket, until the sweep makes room; the penalty list is
//! a bounded cache. A reload keeps the buckets when
//! `[rate_limit]` is unchanged.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::RateLimitConfig;
use crate::error::ProxyError;
use crate::ipnet_set::IpNetSet;

/// The key an address is counted under: IPv4 (and IPv4-mapped IPv6) by the
/// address, IPv6 by its /64.
pub fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// The network `key` is counted by while a bucket is over `max_addresses`.
fn coarse(key: IpAddr) -> IpAddr {
    match key {
        IpAddr::V4(v4) => IpAddr::V4(std::net::Ipv4Addr::from(u32::from(v4) & 0xffff_0000)),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 96) - 1))),
    }
}

/// The key every address shares while a bucket is over twice
/// `max_addresses`.
const OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// Which bucket refused (the metric's `kind` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Too many entry requests.
    Entry,
    /// Too many failed authentications.
    FailedAuth,
}

impl Kind {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Entry => "entry",
            Self::FailedAuth => "failed_auth",
        }
    }
}

/// One kind of bucket, keyed by address.
struct Buckets {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    max: usize,
}

impl Buckets {
    /// `per` refills one cell; `burst` cells at most. `None` when off.
    fn new(per: Duration, burst: u32, max: usize) -> Option<Self> {
        let quota = Quota::with_period(per)?.allow_burst(NonZeroU32::new(burst)?);
        Some(Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            max,
        })
    }

    /// Take one cell for `key`; `Err(wait)` when there is none. Past
    /// `max` addresses new ones are counted by their network (IPv4 /16,
    /// IPv6 /32), past twice that all in one bucket: memory stays bounded
    /// and a flood from many addresses is limited by where it comes from
    /// before it is limited as one.
    fn take(&self, key: IpAddr) -> Result<(), Duration> {
        let len = self.limiter.len();
        let key = if len < self.max {
            key
        } else if len < self.max.saturating_mul(2) {
            coarse(key)
        } else {
            OVERFLOW
        };
        self.limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    fn sweep(&self) {
        self.limiter.retain_recent();
        if self.limiter.len() < self.max / 2 {
            self.limiter.shrink_to_fit();
        }
    }
}

/// The compiled `[rate_limit]`.
pub struct RateLimits {
    config: RateLimitConfig,
    exempt: IpNetSet,
    entry: Option<Buckets>,
    failed: Option<Buckets>,
    /// Addresses out of failed-authentication cells, until when.
    penalized: moka::sync::Cache<IpAddr, Instant>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("config", &self.config)
            .field("penalized", &self.penalized.entry_count())
            .finish_non_exhaustive()
    }
}

/// Whole seconds for `Retry-After`, at least 1.
fn seconds(wait: Duration) -> u32 {
    let s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    u32::try_from(s.max(1)).unwrap_or(u32::MAX)
}

impl RateLimits {
    /// Build from the config.
    pub fn new(config: &RateLimitConfig) -> Self {
        let on = config.enabled;
        let entry = (on && config.entry_per_second > 0)
            .then(|| {
                Buckets::new(
                    Duration::from_secs(1) / config.entry_per_second,
                    config.entry_burst,
                    config.max_addresses,
                )
            })
            .flatten();
        let failed = (on && config.failed_per_minute > 0)
            .then(|| {
                Buckets::new(
                    Duration::from_secs(60) / config.failed_per_minute,
                    config.failed_burst,
                    config.max_addresses,
                )
            })
            .flatten();
        Self {
            config: config.clone(),
            exempt: IpNetSet::new(&config.exempt),
            entry,
            failed,
            penalized: moka::sync::Cache::builder()
                .max_capacity(u64::try_from(config.max_addresses).unwrap_or(u64::MAX))
                .time_to_live(Duration::from_secs(3600))
                .build(),
        }
    }

    /// These limits, or `previous` when it was built from the same config
    /// (a reload keeps the buckets and the penalties).
    pub fn reuse_or_new(
        config: &RateLimitConfig,
        previous: Option<&std::sync::Arc<RateLimits>>,
    ) -> std::sync::Arc<RateLimits> {
        match previous {
            Some(p) if p.config == *config => std::sync::Arc::clone(p),
            _ => std::sync::Arc::new(Self::new(config)),
        }
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        self.exempt.contains(ip.to_canonical())
    }

    /// An entry request from `ip`, before its credentials are looked at:
    /// refused while the address is penalized for failed authentications,
    /// or when its entry bucket is empty.
    ///
    /// `exempt = false` for an address a caller named (the `ip` of a
    /// `/tv/auth` ask), which `[rate_limit] exempt` never covers.
    pub fn entry(&self, ip: IpAddr, exempt: bool) -> Result<(), (Kind, ProxyError)> {
        if exempt && self.exempt(ip) {
            return Ok(());
        }
        let k = key(ip);
        if let Some(until) = self.penalized.get(&k) {
            let now = Instant::now();
            if until > now {
                let retry_after = seconds(until - now);
                return Err((Kind::FailedAuth, ProxyError::RateLimited { retry_after }));
            }
            self.penalized.invalidate(&k);
        }
        match self.entry.as_ref().map(|b| b.take(k)) {
            Some(Err(wait)) => Err((
                Kind::Entry,
                ProxyError::RateLimited {
                    retry_after: seconds(wait),
                },
            )),
            _ => Ok(()),
        }
    }

    /// An authentication from `ip` failed: take a cell; without one the
    /// address is penalized until the next cell is back.
    /// `exempt` as in [`Self::entry`].
    pub fn failed(&self, ip: IpAddr, exempt: bool) {
        if exempt && self.exempt(ip) {
            return;
        }
        let k = key(ip);
        if let Some(Err(wait)) = self.failed.as_ref().map(|b| b.take(k)) {
            self.penalized.insert(k, Instant::now() + wait);
        }
    }

    /// Drop idle addresses (call every few seconds).
    pub fn sweep(&self) {
        for b in [&self.entry, &self.failed].into_iter().flatten() {
            b.sweep();
        }
        self.penalized.run_pending_tasks();
    }

    /// Addresses tracked now (entry and failed buckets, penalties).
    pub fn tracked(&self) -> (usize, usize, u64) {
        let len = |b: &Option<Buckets>| b.as_ref().map_or(0, |b| b.limiter.len());
        (
            len(&self.entry),
            len(&self.failed),
            self.penalized.entry_count(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(edit: impl FnOnce(&mut RateLimitConfig)) -> RateLimits {
        let mut c = RateLimitConfig::default();
        edit(&mut c);
        RateLimits::new(&c)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn keys_are_addresses_and_ipv6_slash_64s() {
        assert_eq!(key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(key(ip("2001:db8:1:2:ffff::9")), ip("2001:db8:1:2::"));
        assert_ne!(key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
    }

    #[test]
    fn entry_bucket_refuses_past_its_burst() {
        let l = limits(|c| {
            c.entry_per_second = 1;
            c.entry_burst = 3;
        });
        for _ in 0..3 {
            assert_eq!(l.entry(ip("192.0.2.1"), true), Ok(()));
        }
        let Err((Kind::Entry, ProxyError::RateLimited { retry_after })) =
            l.entry(ip("192.0.2.1"), true)
        else {
            panic!("the fourth entry is limited");
        };
        assert_eq!(retry_after, 1);
        // Another address, and the exempt loopback, are not.
        assert_eq!(l.entry(ip("192.0.2.2"), true), Ok(()));
        for _ in 0..10 {
            assert_eq!(l.entry(ip("127.0.0.1"), true), Ok(()));
            assert_eq!(l.entry(ip("::1"), true), Ok(()));
        }
        // An address a caller named is never exempt.
        let named: Vec<bool> = (0..4)
            .map(|_| l.entry(ip("127.0.0.1"), false).is_ok())
            .collect();
        assert_eq!(named, [true, true, true, false]);
    }

    /// Once the failures are used up, the address is refused before its
    /// credentials are looked at: a right guess then is 429 too.
    #[test]
    fn failures_penalize_the_address() {
        let l = limits(|c| {
            c.failed_per_minute = 1;
            c.failed_burst = 2;
        });
        let a = ip("2001:db8::1");
        for _ in 0..2 {
            assert_eq!(l.entry(a, true), Ok(()));
            l.failed(a, true);
        }
        assert_eq!(
            l.entry(a, true),
            Ok(()),
            "two failures are within the burst"
        );
        l.failed(a, true);
        let Err((Kind::FailedAuth, ProxyError::RateLimited { retry_after })) = l.entry(a, true)
        else {
            panic!("penalized");
        };
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        // The same /64 is the same subscriber; another is not.
        assert!(l.entry(ip("2001:db8::2"), true).is_err());
        assert_eq!(l.entry(ip("2001:db8:0:1::1"), true), Ok(()));
    }

    #[test]
    fn off_means_off() {
        let l = limits(|c| {
            c.enabled = false;
            c.entry_burst = 1;
            c.failed_burst = 1;
        });
        for _ in 0..100 {
            assert_eq!(l.entry(ip("192.0.2.1"), true), Ok(()));
            l.failed(ip("192.0.2.1"), true);
        }
    }

    /// Past `max_addresses` new addresses share one bucket: memory stays
    /// bounded, and a flood from many addresses is limited as one.
    #[test]
    fn a_flood_of_addresses_is_bounded() {
        let l = limits(|c| {
            c.entry_per_second = 1;
            c.entry_burst = 5;
            c.max_addresses = 100;
        });
        let mut refused = 0;
        for i in 0..10_000u32 {
            let a = IpAddr::from((0x0a00_0000 + i).to_be_bytes());
            refused += usize::from(l.entry(a, true).is_err());
        }
        let (entry, _, _) = l.tracked();
        assert!(entry <= 201, "{entry} addresses tracked");
        assert!(refused >= 9_000, "{refused} refused");
        // Another network still gets its own bucket past the first bound.
        assert_eq!(l.entry(ip("192.0.2.1"), true), Ok(()));
    }
}
