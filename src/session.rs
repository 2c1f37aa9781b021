//! The session table: who is watching what right now (docs/hls.md §2).
//!
//! A session is one viewer on one channel, keyed by the id
//! [`crate::capability::MasterKeys::session_id`] derives from (user, route,
//! channel, client IP), so the same viewer reloading, switching variant or
//! reconnecting lands on the same entry without any look-up by identity.
//! Entry requests create or reuse a session; every request carrying the
//! session's capability refreshes it; [`Sessions::sweep`] forgets sessions idle
//! for longer than the idle timeout.
//!
//! Must not: read the clock (`now` is an argument, unix seconds), do I/O,
//! log, or hold a lock across anything but a map operation. Per-request work
//! is one sharded-map look-up and two relaxed atomic stores.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

/// One live session.
#[derive(Debug)]
pub struct Session {
    /// Session id (docs/hls.md §2).
    pub id: u64,
    /// The authenticated user, if the method named one.
    pub user: Option<Box<str>>,
    /// Route name.
    pub route: Box<str>,
    /// Channel name (empty when the route's paths name none).
    pub channel: Box<str>,
    /// Client IP of the request that created the entry.
    pub ip: IpAddr,
    /// Unix seconds when the entry was created.
    pub started: u64,
    last_seen: AtomicU64,
    bytes: AtomicU64,
}

impl Session {
    /// A session seen for the first time at `now`.
    pub fn new(
        id: u64,
        user: Option<&str>,
        route: &str,
        channel: &str,
        ip: IpAddr,
        now: u64,
    ) -> Self {
        Self {
            id,
            user: user.map(Into::into),
            route: route.into(),
            channel: channel.into(),
            ip,
            started: now,
            last_seen: AtomicU64::new(now),
            bytes: AtomicU64::new(0),
        }
    }

    /// Unix seconds of the last request.
    pub fn last_seen(&self) -> u64 {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// Body bytes sent to this session so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Count `n` more body bytes sent.
    pub fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    fn touch(&self, now: u64) {
        // Monotonic: a late request never moves last_seen backwards.
        self.last_seen.fetch_max(now, Ordering::Relaxed);
    }
}

/// Whether [`Sessions::touch`] found the session or created it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touch {
    /// It was live already.
    Existing,
    /// It was created now (an entry request, or a capability that outlived
    /// its session's idle time, a restart, or came from another edge).
    Created,
}

/// All live sessions of this edge.
#[derive(Debug, Default)]
pub struct Sessions {
    map: DashMap<u64, Arc<Session>>,
}

impl Sessions {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Refresh session `id` at `now`, creating it with `make` if absent.
    pub fn touch(
        &self,
        id: u64,
        now: u64,
        make: impl FnOnce() -> Session,
    ) -> (Arc<Session>, Touch) {
        if let Some(s) = self.map.get(&id) {
            s.touch(now);
            return (Arc::clone(s.value()), Touch::Existing);
        }
        let mut created = false;
        let entry = self
            .map
            .entry(id)
            .or_insert_with(|| {
                created = true;
                Arc::new(make())
            })
            .clone();
        entry.touch(now);
        let how = if created {
            Touch::Created
        } else {
            Touch::Existing
        };
        (entry, how)
    }

    /// The live session `id`, if any.
    pub fn get(&self, id: u64) -> Option<Arc<Session>> {
        self.map.get(&id).map(|s| Arc::clone(s.value()))
    }

    /// End session `id` now; true if it was live.
    pub fn remove(&self, id: u64) -> bool {
        self.map.remove(&id).is_some()
    }

    /// Forget sessions whose last request is more than `idle_secs` before `now`;
    /// returns how many ended.
    pub fn sweep(&self, now: u64, idle_secs: u64) -> usize {
        let before = self.map.len();
        self.map
            .retain(|_, s| now.saturating_sub(s.last_seen()) <= idle_secs);
        before.saturating_sub(self.map.len())
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nobody is watching.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A snapshot of every live session (for the admin API).
    pub fn list(&self) -> Vec<Arc<Session>> {
        self.map.iter().map(|s| Arc::clone(s.value())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip() -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }

    #[test]
    fn touch_creates_once_then_refreshes() {
        let t = Sessions::new();
        let (a, how) = t.touch(7, 100, || {
            Session::new(7, Some("alice"), "live", "ch1", ip(), 100)
        });
        assert_eq!(how, Touch::Created);
        let (b, how) = t.touch(7, 105, || unreachable!("exists"));
        assert_eq!(how, Touch::Existing);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(b.last_seen(), 105);
        assert_eq!(b.started, 100);
        assert_eq!(t.len(), 1);
        // A late request does not move last_seen back.
        t.touch(7, 101, || unreachable!());
        assert_eq!(a.last_seen(), 105);
    }

    #[test]
    fn sweep_forgets_only_idle_sessions() {
        let t = Sessions::new();
        t.touch(1, 100, || Session::new(1, None, "live", "a", ip(), 100));
        t.touch(2, 100, || Session::new(2, None, "live", "b", ip(), 100));
        t.touch(2, 125, || unreachable!());
        assert_eq!(t.sweep(130, 30), 0, "both within 30 s");
        assert_eq!(t.sweep(131, 30), 1, "session 1 idle for 31 s");
        assert!(t.get(1).is_none());
        assert!(t.get(2).is_some());
        assert_eq!(t.sweep(200, 30), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn bytes_and_remove() {
        let t = Sessions::new();
        let (s, _) = t.touch(9, 1, || Session::new(9, None, "r", "c", ip(), 1));
        s.add_bytes(10);
        s.add_bytes(5);
        assert_eq!(t.get(9).map(|s| s.bytes()), Some(15));
        assert!(t.remove(9));
        assert!(!t.remove(9));
        assert_eq!(t.list().len(), 0);
    }
}
