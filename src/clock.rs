//! The shell's clock for session bookkeeping, in unix seconds: capability
//! expiry, idle sessions, revocation cutoffs, sync ages. Cores never read a
//! clock; they take `now` as an argument from here.
//!
//! [`Clock::system`] reads the system time; [`Clock::manual`] stands still
//! until [`Clock::advance`] moves it, so tests of TTL, idle and expiry paths
//! advance time instead of sleeping. A clone shares the same time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Unix seconds now, from the system clock (0 before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Debug)]
enum Source {
    System,
    Manual(AtomicU64),
}

/// A source of unix seconds; cheap to clone.
#[derive(Debug, Clone)]
pub struct Clock(Arc<Source>);

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(Source::System))
    }

    /// A clock standing at `start` (unix seconds) until advanced.
    pub fn manual(start: u64) -> Self {
        Self(Arc::new(Source::Manual(AtomicU64::new(start))))
    }

    /// Unix seconds now.
    pub fn now(&self) -> u64 {
        match &*self.0 {
            Source::System => unix_now(),
            Source::Manual(t) => t.load(Ordering::Relaxed),
        }
    }

    /// Move a manual clock forward by `by` (whole seconds); the system
    /// clock cannot be moved and ignores it.
    pub fn advance(&self, by: Duration) {
        if let Source::Manual(t) = &*self.0 {
            t.fetch_add(by.as_secs(), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_until_advanced_and_clones_share_it() {
        let c = Clock::manual(1_000);
        let other = c.clone();
        assert_eq!(c.now(), 1_000);
        c.advance(Duration::from_millis(2_500));
        assert_eq!((c.now(), other.now()), (1_002, 1_002));
        let system = Clock::system();
        let before = unix_now();
        system.advance(Duration::from_secs(3600));
        assert!(system.now() >= before && system.now() < before + 3600);
    }
}
