//! Stream incarnations: the guard that keeps an origin restart from reusing
//! a (content key, IV) pair (docs/hls.md §6, hls-encryption.md §1.9).
//!
//! The IV of a segment is its media sequence number, so if an origin restarts
//! and counts MSNs from 0 again, the same (key period, MSN) would encrypt new
//! plaintext under the same key and IV. Each rendition therefore carries an
//! incarnation number, mixed into its content keys and carried in every URL
//! that needs it: chosen when this edge first sees the rendition and chosen
//! anew whenever the rendition's window of media sequence numbers moves
//! backwards (a restart; also a stale copy, which costs only new key URIs).
//!
//! Incarnation = `(unix seconds << 16) | a 16-bit counter`, so two renditions
//! first seen in the same second still differ (a shared content key with
//! equal MSNs would reuse IVs across renditions) and a value never repeats
//! for one rendition (a new one is always greater than the old).
//!
//! Must not: read the clock (`now` is an argument) or do I/O. State is a
//! bounded cache; forgetting a rendition only means a fresh incarnation
//! (new key URIs) the next time, never a reused one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the edge remembers about one rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    inc: u64,
    first_msn: u64,
    last_msn: u64,
}

/// Incarnations of every rendition this edge has served.
#[derive(Debug)]
pub struct Incarnations {
    seen: moka::sync::Cache<String, Arc<Mutex<Seen>>>,
    counter: AtomicU64,
}

impl Default for Incarnations {
    fn default() -> Self {
        Self::new(100_000, Duration::from_secs(24 * 3600))
    }
}

impl Incarnations {
    /// Remember at most `capacity` renditions, each for `idle` after its last use.
    pub fn new(capacity: u64, idle: Duration) -> Self {
        Self {
            seen: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(idle)
                .build(),
            counter: AtomicU64::new(0),
        }
    }

    /// The incarnation for rendition `key` whose playlist now lists
    /// segments `first_msn..=last_msn`, at unix time `now`.
    pub fn observe(&self, key: &str, first_msn: u64, last_msn: u64, now: u64) -> u64 {
        let fresh = |prev: Option<u64>| {
            let low = self.counter.fetch_add(1, Ordering::Relaxed) & 0xffff;
            let candidate = ((now & 0xffff_ffff) << 16) | low;
            match prev {
                Some(p) if candidate <= p => p.saturating_add(1 << 16),
                _ => candidate,
            }
        };
        let entry = self.seen.get_with_by_ref(key, || {
            Arc::new(Mutex::new(Seen {
                inc: fresh(None),
                first_msn,
                last_msn,
            }))
        });
        let Ok(mut seen) = entry.lock() else {
            // A poisoned lock means a panic elsewhere; a fresh incarnation is always safe.
            return fresh(None);
        };
        step(&mut seen, first_msn, last_msn, fresh)
    }
}

/// Advance `seen` by one observation; pure.
fn step(seen: &mut Seen, first_msn: u64, last_msn: u64, fresh: impl Fn(Option<u64>) -> u64) -> u64 {
    if first_msn < seen.first_msn || last_msn < seen.last_msn {
        // The window moved backwards: the sequence restarted, or this is a
        // stale copy. Treating a stale copy as a restart only costs new key
        // URIs; missing a restart would reuse (key, IV) pairs.
        seen.inc = fresh(Some(seen.inc));
    }
    seen.first_msn = first_msn;
    seen.last_msn = last_msn;
    seen.inc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_while_the_window_slides() {
        let t = Incarnations::default();
        let a = t.observe("/live/ch1/media.m3u8", 0, 4, 1000);
        assert_eq!(t.observe("/live/ch1/media.m3u8", 1, 5, 1002), a);
        assert_eq!(t.observe("/live/ch1/media.m3u8", 2, 6, 1004), a);
        assert_eq!(
            t.observe("/live/ch1/media.m3u8", 2, 6, 1005),
            a,
            "same window"
        );
        // A VOD playlist never moves.
        let v = t.observe("/vod/a.m3u8", 0, 99, 1000);
        assert_eq!(t.observe("/vod/a.m3u8", 0, 99, 5000), v);
    }

    #[test]
    fn a_reset_media_sequence_gets_a_new_incarnation() {
        let t = Incarnations::default();
        let a = t.observe("r", 100, 104, 1000);
        let b = t.observe("r", 0, 4, 1000); // same second, sequence restarted
        assert_ne!(a, b);
        assert!(b > a);
        assert_eq!(t.observe("r", 1, 5, 1001), b);
        // A restart soon after the last one, overlapping its window.
        let c = t.observe("r", 0, 2, 2000);
        assert!(c > b);
        assert_eq!(t.observe("r", 0, 3, 2002), c);
    }

    #[test]
    fn renditions_differ_even_in_the_same_second() {
        let t = Incarnations::default();
        let a = t.observe("/live/ch1/720p.m3u8", 0, 4, 1000);
        let b = t.observe("/live/ch1/360p.m3u8", 0, 4, 1000);
        assert_ne!(a, b);
        assert_eq!(a >> 16, b >> 16, "same second");
        assert_eq!(t.observe("/live/ch1/720p.m3u8", 1, 5, 1001), a);
        assert_eq!(t.observe("/live/ch1/360p.m3u8", 1, 5, 1001), b);
    }

    #[test]
    fn step_is_monotonic() {
        let mut seen = Seen {
            inc: 5 << 16,
            first_msn: 10,
            last_msn: 20,
        };
        let fresh = |p: Option<u64>| p.map_or(1, |p| p + (1 << 16));
        assert_eq!(step(&mut seen, 11, 21, fresh), 5 << 16);
        assert_eq!(step(&mut seen, 0, 3, fresh), 6 << 16);
        assert_eq!(seen.first_msn, 0);
        assert_eq!(step(&mut seen, 0, 2, fresh), 7 << 16, "last MSN went back");
    }
}
