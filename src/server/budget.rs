//! Connection budgets: how many connections a listener group may hold at
//! once in total and from one client address, as RAII permits (pingora
//! `pingora-limits` style).
//!
//! One [`Budget`] is shared by every viewer listener (http and https); the
//! admin listener has its own. Both caps are plain atomics read at accept, so
//! a SIGHUP [`Budget::resize`] takes effect for the very next connection;
//! lowering a cap closes nothing already open, it only refuses new
//! connections until enough have ended.
//!
//! Connections are counted per address even while the per-address cap is off,
//! so a cap switched on by SIGHUP during a flood counts the flood already open.
//!
//! Invariant: `open` equals the number of live [`Permit`]s, and the per-address
//! map holds exactly the addresses with at least one live permit and their
//! count (entries are removed at zero, so the map cannot grow past the open
//! connections).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The total cap is reached.
    Total,
    /// This client address holds its cap already.
    PerIp,
}

/// A resizable connection budget. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Budget {
    total: AtomicUsize,
    per_ip: AtomicUsize,
    open: AtomicUsize,
    by_ip: Mutex<HashMap<IpAddr, usize>>,
    emptied: Notify,
}

impl Budget {
    /// A budget of `total` connections, at most `per_ip` from one address
    /// (0 = no per-address cap).
    pub fn new(total: usize, per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            total: AtomicUsize::new(total),
            per_ip: AtomicUsize::new(per_ip),
            open: AtomicUsize::new(0),
            by_ip: Mutex::new(HashMap::new()),
            emptied: Notify::new(),
        })
    }

    /// Apply new caps; connections already open stay open.
    pub fn resize(&self, total: usize, per_ip: usize) {
        self.total.store(total, Ordering::Relaxed);
        self.per_ip.store(per_ip, Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A permit for one connection from `ip`, or why not.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refused> {
        let total = self.total.load(Ordering::Relaxed);
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < total).then_some(n + 1)
            })
            .map_err(|_| Refused::Total)?;
        let per_ip = self.per_ip.load(Ordering::Relaxed);
        let mut by_ip = self.by_ip.lock().unwrap_or_else(PoisonError::into_inner);
        let held = by_ip.entry(ip).or_insert(0);
        if per_ip > 0 && *held >= per_ip {
            drop(by_ip);
            self.release_total();
            return Err(Refused::PerIp);
        }
        *held += 1;
        Ok(Permit {
            budget: self.clone(),
            ip,
        })
    }

    /// Resolves once no permit is held (at once when none is).
    pub async fn all_closed(&self) {
        loop {
            let notified = self.emptied.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }

    fn release(&self, ip: IpAddr) {
        {
            let mut by_ip = self.by_ip.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(held) = by_ip.get_mut(&ip) {
                *held = held.saturating_sub(1);
                if *held == 0 {
                    by_ip.remove(&ip);
                }
            }
        }
        self.release_total();
    }

    fn release_total(&self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.emptied.notify_waiters();
        }
    }
}

/// One open connection's share of a [`Budget`]; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    budget: Arc<Budget>,
    /// The address this connection is counted against.
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.budget.release(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn total_cap_holds_and_frees_on_drop() {
        let budget = Budget::new(2, 0);
        let p1 = budget.try_acquire(A).unwrap();
        let _p2 = budget.try_acquire(B).unwrap();
        assert_eq!(budget.try_acquire(A).unwrap_err(), Refused::Total);
        drop(p1);
        assert!(budget.try_acquire(A).is_ok());
    }

    #[test]
    fn per_ip_cap_counts_one_address_and_forgets_it_at_zero() {
        let budget = Budget::new(10, 2);
        let a1 = budget.try_acquire(A).unwrap();
        let a2 = budget.try_acquire(A).unwrap();
        assert_eq!(budget.try_acquire(A).unwrap_err(), Refused::PerIp);
        // The refused attempt gave its total slot back.
        assert_eq!(budget.open(), 2);
        let _b = budget.try_acquire(B).unwrap();
        drop((a1, a2));
        assert_eq!(budget.open(), 1);
        assert!(!budget.by_ip.lock().unwrap().contains_key(&A));
    }

    #[test]
    fn resize_applies_to_the_next_connection_and_closes_nothing() {
        let budget = Budget::new(1, 0);
        let held = budget.try_acquire(A).unwrap();
        assert_eq!(budget.try_acquire(B).unwrap_err(), Refused::Total);
        budget.resize(3, 1);
        let _b = budget.try_acquire(B).unwrap();
        // A's connection from before the per-address cap existed counts.
        assert_eq!(budget.try_acquire(A).unwrap_err(), Refused::PerIp);
        budget.resize(3, 2);
        let _a = budget.try_acquire(A).unwrap();
        assert_eq!(budget.try_acquire(A).unwrap_err(), Refused::Total);
        budget.resize(0, 0);
        drop(held);
        assert_eq!(budget.try_acquire(B).unwrap_err(), Refused::Total);
    }

    #[tokio::test]
    async fn all_closed_waits_for_the_last_permit() {
        let budget = Budget::new(2, 0);
        budget.all_closed().await;
        let p = budget.try_acquire(A).unwrap();
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.all_closed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(p);
        waiter.await.unwrap();
    }
}
