//! The byte budget shared by every fill in flight (`cache.max_fill_bytes`).
//!
//! A fill takes bytes before it holds them and gives them back when it no
//! longer does (it entered the completed cache, which has its own weight
//! budget; it failed; a streaming fill's readers passed them; it was
//! dropped). Taking succeeds at once or not at all ([`Budget::try_take`]):
//! nobody waits on the budget, so fills whose viewers stopped reading
//! cannot make the others wait; the total taken never exceeds the limit.

use tokio::sync::Semaphore;

/// Bytes fills may hold together. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub(crate) struct Budget {
    permits: Semaphore,
}

impl Budget {
    /// A budget of `max` bytes (capped at what a semaphore can count).
    pub(crate) fn new(max: u64) -> Self {
        let max = usize::try_from(max)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Self {
            permits: Semaphore::new(max),
        }
    }

    /// Take `n` bytes if they are free now.
    pub(crate) fn try_take(&self, n: u64) -> bool {
        let Ok(n) = u32::try_from(n) else {
            return false;
        };
        match self.permits.try_acquire_many(n) {
            Ok(permit) => {
                permit.forget();
                true
            }
            Err(_) => false,
        }
    }

    /// Give back `n` bytes taken earlier.
    pub(crate) fn give(&self, n: u64) {
        if n > 0 {
            self.permits
                .add_permits(usize::try_from(n).unwrap_or(usize::MAX));
        }
    }

    /// Bytes free now.
    pub(crate) fn available(&self) -> u64 {
        self.permits.available_permits() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_and_gives_within_the_limit() {
        let b = Budget::new(100);
        assert!(b.try_take(60));
        assert!(!b.try_take(41));
        assert!(b.try_take(40));
        assert_eq!(b.available(), 0);
        b.give(30);
        assert!(b.try_take(30));
        assert!(!b.try_take(1));
        assert!(!b.try_take(u64::MAX));
        b.give(100);
        assert_eq!(b.available(), 100);
    }
}
