//! The live timeline of the simulated origin: which media sequence numbers
//! (msns) exist at a given position of the live clock.
//!
//! Pure and clock-free: callers pass the position (microseconds of scaled
//! live time since start), so every rule here is unit-tested exactly.
//!
//! The timeline: at position 0 the first `window` segments (msn
//! `0..window`) are already published, so a player gets a full playlist at
//! once. After that, segment `window + k` is published when the durations of
//! segments `window ..= window + k` have elapsed. Segment msn plays cycle
//! entry `msn % cycle_len`; msns grow without bound.
//!
//! Invariants: `window >= 1`; every duration is at least one millisecond, so
//! the cycle has positive length and the clock always advances.

use std::time::Duration;

/// How many windows behind the live edge a segment stays fetchable, so a
/// player that fetched an older playlist (or a slow proxy) does not get 404s
/// for segments that just slid out.
const RETAINED_WINDOWS: u64 = 3;

/// Shortest segment duration accepted; shorter ones are raised to it so the
/// timeline cannot stall or divide by zero.
const MIN_DURATION_US: u64 = 1_000;

/// The live timeline of one source; identical for every channel.
#[derive(Debug, Clone)]
pub(super) struct Schedule {
    /// Durations of one cycle of segments, in microseconds, in play order.
    cycle_us: Vec<u64>,
    /// Sum of `cycle_us`.
    cycle_total_us: u64,
    /// Segments listed in the media playlist.
    window: u64,
    /// Whether a new cycle restarts timestamps (a looped recording), which
    /// players must be told with `#EXT-X-DISCONTINUITY`.
    discontinuous_wrap: bool,
}

impl Schedule {
    /// Builds the timeline. An empty `cycle` is treated as one segment of the
    /// minimum duration and `window` 0 as 1, so no input can break the
    /// invariants.
    pub(super) fn new(cycle: &[Duration], window: usize, discontinuous_wrap: bool) -> Self {
        let mut cycle_us: Vec<u64> = cycle
            .iter()
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
            .map(|us| us.clamp(MIN_DURATION_US, u64::MAX / 2 / cycle.len().max(1) as u64))
            .collect();
        if cycle_us.is_empty() {
            cycle_us.push(MIN_DURATION_US);
        }
        let cycle_total_us = cycle_us.iter().sum();
        Self {
            cycle_us,
            cycle_total_us,
            window: window.max(1) as u64,
            discontinuous_wrap,
        }
    }

    /// Segments per media playlist.
    pub(super) fn window(&self) -> u64 {
        self.window
    }

    /// Number of segments in one cycle of the source.
    fn cycle_len(&self) -> u64 {
        self.cycle_us.len() as u64
    }

    /// Duration of segment `msn`, in microseconds.
    pub(super) fn duration_us(&self, msn: u64) -> u64 {
        self.cycle_us[(msn % self.cycle_len()) as usize]
    }

    /// `#EXT-X-TARGETDURATION`: the longest segment, rounded up to whole
    /// seconds as RFC 8216 section 4.3.3.1 requires.
    pub(super) fn target_duration_secs(&self) -> u64 {
        let max_us = self
            .cycle_us
            .iter()
            .copied()
            .max()
            .unwrap_or(MIN_DURATION_US);
        max_us.div_ceil(1_000_000)
    }

    /// The newest published msn at live position `pos_us`.
    pub(super) fn latest_msn(&self, pos_us: u64) -> u64 {
        let loops = pos_us / self.cycle_total_us;
        let mut rest = pos_us % self.cycle_total_us;
        let mut extra = 0;
        // Walk the partial cycle starting at the first msn published after
        // start (msn `window`), which may sit anywhere in the cycle.
        let first_new = self.window % self.cycle_len();
        for i in 0..self.cycle_len() {
            let d = self.cycle_us[((first_new + i) % self.cycle_len()) as usize];
            if d > rest {
                break;
            }
            rest -= d;
            extra += 1;
        }
        (self.window - 1)
            .saturating_add(loops.saturating_mul(self.cycle_len()))
            .saturating_add(extra)
    }

    /// `#EXT-X-MEDIA-SEQUENCE` at live position `pos_us`: the first msn of
    /// the window ending at the newest segment.
    pub(super) fn first_msn(&self, pos_us: u64) -> u64 {
        // latest >= window - 1 always holds, so this cannot underflow.
        self.latest_msn(pos_us) - (self.window - 1)
    }

    /// Whether `msn` is fetchable at `pos_us`: already published and at most
    /// [`RETAINED_WINDOWS`] windows older than the playlist's first segment.
    pub(super) fn is_available(&self, msn: u64, pos_us: u64) -> bool {
        let latest = self.latest_msn(pos_us);
        let kept = self.window.saturating_mul(RETAINED_WINDOWS + 1);
        let oldest = latest.saturating_add(1).saturating_sub(kept);
        (oldest..=latest).contains(&msn)
    }

    /// Content time (µs) at which segment `msn` starts: the durations of
    /// every segment before it. Saturates.
    pub(super) fn start_us(&self, msn: u64) -> u64 {
        let len = self.cycle_len();
        let loops = (msn / len).saturating_mul(self.cycle_total_us);
        let partial: u64 = self.cycle_us.iter().take((msn % len) as usize).sum();
        loops.saturating_add(partial)
    }

    /// The first msn starting at or after content time `t_us`.
    pub(super) fn first_msn_from(&self, t_us: u64) -> u64 {
        let len = self.cycle_len();
        let loops = t_us / self.cycle_total_us;
        let mut rest = t_us % self.cycle_total_us;
        let mut i = 0;
        while i < len && rest > 0 {
            let d = self.cycle_us[i as usize];
            rest = rest.saturating_sub(d);
            i += 1;
        }
        loops.saturating_mul(len).saturating_add(i)
    }

    /// Content time (µs) of the live edge at position `pos_us`: where the
    /// segment after the first window starts, plus the position.
    pub(super) fn live_edge_us(&self, pos_us: u64) -> u64 {
        self.start_us(self.window).saturating_add(pos_us)
    }

    /// Whether segment `msn` starts a new cycle after an earlier one, so its
    /// playlist entry needs `#EXT-X-DISCONTINUITY`. Msn 0 starts the stream,
    /// not a wrap.
    pub(super) fn starts_wrap(&self, msn: u64) -> bool {
        self.discontinuous_wrap && msn > 0 && msn.is_multiple_of(self.cycle_len())
    }

    /// `#EXT-X-DISCONTINUITY-SEQUENCE` for a playlist starting at `first`:
    /// the number of discontinuity tags on segments before it (RFC 8216
    /// section 4.3.3.3).
    pub(super) fn discontinuity_sequence(&self, first: u64) -> u64 {
        if self.discontinuous_wrap && first > 0 {
            (first - 1) / self.cycle_len()
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    fn secs(list: &[f64]) -> Vec<Duration> {
        list.iter().map(|s| Duration::from_secs_f64(*s)).collect()
    }

    #[test]
    fn window_is_full_at_start_then_slides_per_duration() {
        let s = Schedule::new(&secs(&[2.0; 5]), 5, true);
        let table = [
            (0, 4, 0),
            (2 * S - 1, 4, 0),
            (2 * S, 5, 1),
            (4 * S, 6, 2),
            (10 * S - 1, 8, 4),
            (10 * S, 9, 5),
            (1_000 * S, 504, 500),
        ];
        for (pos, latest, first) in table {
            assert_eq!(s.latest_msn(pos), latest, "latest at {pos}");
            assert_eq!(s.first_msn(pos), first, "first at {pos}");
        }
    }

    #[test]
    fn uneven_durations_start_mid_cycle() {
        // Cycle 1 s, 2 s, 3 s; window 2 so msn 2 (3 s) is published first.
        let s = Schedule::new(&secs(&[1.0, 2.0, 3.0]), 2, true);
        let table = [
            (0, 1),
            (3 * S - 1, 1),
            (3 * S, 2),
            (4 * S, 3),
            (6 * S, 4),
            (9 * S, 5),
        ];
        for (pos, latest) in table {
            assert_eq!(s.latest_msn(pos), latest, "latest at {pos}");
        }
        assert_eq!(s.target_duration_secs(), 3);
        assert_eq!(s.duration_us(4), 2 * S);
    }

    #[test]
    fn availability_covers_retention_and_excludes_future() {
        let s = Schedule::new(&secs(&[1.0]), 2, false);
        let pos = 100 * S; // latest 101, first 100
        assert!(s.is_available(101, pos));
        assert!(!s.is_available(102, pos));
        assert!(s.is_available(100, pos));
        assert!(s.is_available(94, pos)); // three windows behind the first
        assert!(!s.is_available(93, pos));
        assert!(s.is_available(0, 0));
        assert!(!s.is_available(u64::MAX, 0));
    }

    #[test]
    fn content_time_and_its_inverse() {
        let s = Schedule::new(&secs(&[1.0, 2.0, 3.0]), 2, true);
        let starts: Vec<u64> = (0..7).map(|m| s.start_us(m)).collect();
        assert_eq!(starts, [0, S, 3 * S, 6 * S, 7 * S, 9 * S, 12 * S]);
        for (t, msn) in [(0, 0), (1, 1), (S, 1), (S + 1, 2), (6 * S, 3), (11 * S, 6)] {
            assert_eq!(s.first_msn_from(t), msn, "at {t}");
        }
        for m in 0..50 {
            assert_eq!(s.first_msn_from(s.start_us(m)), m);
        }
        // The live edge: segments 0 and 1 at position 0, so 3 s of content.
        assert_eq!(s.live_edge_us(0), 3 * S);
    }

    #[test]
    fn discontinuities_mark_each_wrap() {
        let s = Schedule::new(&secs(&[2.0; 5]), 5, true);
        let wraps: Vec<u64> = (0..16).filter(|m| s.starts_wrap(*m)).collect();
        assert_eq!(wraps, [5, 10, 15]);
        let table = [(0, 0), (1, 0), (5, 0), (6, 1), (10, 1), (11, 2)];
        for (first, seq) in table {
            assert_eq!(s.discontinuity_sequence(first), seq, "first {first}");
        }
        let synthetic = Schedule::new(&secs(&[2.0]), 5, false);
        assert!(!(0..10).any(|m| synthetic.starts_wrap(m)));
        assert_eq!(synthetic.discontinuity_sequence(9), 0);
    }

    #[test]
    fn degenerate_inputs_are_clamped() {
        let s = Schedule::new(&[], 0, true);
        assert_eq!(s.window(), 1);
        assert_eq!(s.latest_msn(0), 0);
        assert_eq!(s.latest_msn(MIN_DURATION_US), 1);
        let zero = Schedule::new(&[Duration::ZERO], 3, false);
        assert_eq!(zero.target_duration_secs(), 1);
        assert_eq!(zero.latest_msn(u64::MAX), 2 + u64::MAX / MIN_DURATION_US);
        let huge = Schedule::new(&[Duration::MAX], 3, false);
        assert_eq!(huge.latest_msn(u64::MAX), 4);
    }
}
