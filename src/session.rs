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
//! Session limits live here too: [`Sessions::admit`] counts a user's live
//! sessions on this edge and, over `max_sessions`, refuses the newcomer or
//! ends the oldest. An ended (evicted or kicked) session leaves a tombstone
//! until its capability would have expired, so its player's next request is
//! told `session_evicted` instead of quietly starting a new session; a fresh
//! entry request (the viewer signing in again) clears it.
//!
//! Must not: read the clock (`now` is an argument, unix seconds), do I/O,
//! log, or hold a lock across anything but a map operation. Per-request work
//! for a live session is one sharded-map look-up and two relaxed atomic
//! stores; the per-user index is only touched when a session starts.
//! Lock order, where two are held: the per-user index, then the session map.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use dashmap::DashMap;

/// A session id as the admin API and the control plane show it: 16
/// lowercase hex digits (`Display`); [`FromStr`](std::str::FromStr)
/// accepts exactly that form and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub u64);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Not a session id in its 16-lowercase-hex-digit form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadSessionId;

impl std::str::FromStr for SessionId {
    type Err = BadSessionId;

    fn from_str(text: &str) -> Result<Self, BadSessionId> {
        let well_formed = text.len() == 16
            && text
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if !well_formed {
            return Err(BadSessionId);
        }
        u64::from_str_radix(text, 16)
            .map(Self)
            .map_err(|_| BadSessionId)
    }
}

/// One live session.
#[derive(Debug)]
pub struct Session {
    /// Session id (docs/hls.md §2).
    pub id: u64,
    /// The authenticated user, if the method named one.
    pub user: Option<Box<str>>,
    /// The device it plays on, when the `device` method admitted it.
    pub device: Option<Box<str>>,
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
    /// The fleet store admitted it (or admitted it failing open): from then
    /// on the edge's heartbeat carries it.
    in_fleet: AtomicBool,
    /// An MPEG-TS response is open for it (one at a time: a session is
    /// one viewer's one stream).
    streaming: AtomicBool,
}

impl Session {
    /// A session seen for the first time at `now`.
    pub fn new(
        id: u64,
        user: Option<&str>,
        device: Option<&str>,
        route: &str,
        channel: &str,
        ip: IpAddr,
        now: u64,
    ) -> Self {
        Self {
            id,
            user: user.map(Into::into),
            device: device.map(Into::into),
            route: route.into(),
            channel: channel.into(),
            ip,
            started: now,
            last_seen: AtomicU64::new(now),
            bytes: AtomicU64::new(0),
            in_fleet: AtomicBool::new(false),
            streaming: AtomicBool::new(false),
        }
    }

    /// Open the session's one continuous stream; false when one is open.
    pub fn open_stream(&self) -> bool {
        self.streaming
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The session's stream closed.
    pub fn close_stream(&self) {
        self.streaming.store(false, Ordering::Release);
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

    /// Record that the fleet store admitted this session. Until then the
    /// heartbeat leaves it out, so it never adds a session the admission
    /// script has not counted yet.
    pub fn set_in_fleet(&self) {
        self.in_fleet.store(true, Ordering::Relaxed);
    }

    /// Whether the fleet store admitted this session ([`Self::set_in_fleet`]).
    pub fn in_fleet(&self) -> bool {
        self.in_fleet.load(Ordering::Relaxed)
    }

    /// Record a request at `now`.
    pub(crate) fn touch(&self, now: u64) {
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

/// What a user over their limit gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Refuse the newcomer.
    Reject,
    /// End the oldest sessions to make room.
    EvictOldest,
}

/// How [`Sessions::admit`] let a request in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// The session was live already.
    Existing,
    /// A new session; these older sessions of the user were ended for it.
    Created {
        /// Ids of the sessions evicted to make room (empty under the limit).
        evicted: Vec<u64>,
    },
}

/// Why [`Sessions::admit`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The user has `max_sessions` live sessions and the policy is reject.
    Limit,
    /// This session was ended (evicted or kicked) and may not come back
    /// with its old capability.
    Ended,
}

/// One request asking to be let in.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// Session id.
    pub id: u64,
    /// The user, if known (anonymous sessions are never limited).
    pub user: Option<&'a str>,
    /// The user's limit; 0 = unlimited.
    pub max_sessions: u32,
    /// What to do over the limit.
    pub policy: Policy,
    /// True for an entry request (fresh credentials): clears a tombstone.
    pub entry: bool,
    /// Unix seconds.
    pub now: u64,
    /// Until when an evicted session's tombstone lasts (unix seconds).
    pub tombstone_until: u64,
}

/// All live sessions of this edge.
#[derive(Debug, Default)]
pub struct Sessions {
    map: DashMap<u64, Arc<Session>>,
    /// Live session ids per user (may hold ids already gone from `map`;
    /// pruned when read).
    by_user: DashMap<Box<str>, Vec<u64>>,
    /// Ended sessions: id → unix seconds until which they stay ended.
    ended: DashMap<u64, u64>,
}

impl Sessions {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Let a request of session `ask.id` in: refresh it if live, else create
    /// it with `make` within the user's limit.
    pub fn admit(
        &self,
        ask: &Ask<'_>,
        make: impl FnOnce() -> Session,
    ) -> Result<(Arc<Session>, Admitted), Refused> {
        if let Some(s) = self.map.get(&ask.id) {
            s.touch(ask.now);
            return Ok((Arc::clone(s.value()), Admitted::Existing));
        }
        if ask.entry {
            self.ended.remove(&ask.id);
        } else if self
            .ended
            .get(&ask.id)
            .is_some_and(|until| *until >= ask.now)
        {
            return Err(Refused::Ended);
        }
        let Some(user) = ask.user else {
            let (s, how) = self.touch(ask.id, ask.now, make);
            let admitted = match how {
                Touch::Existing => Admitted::Existing,
                Touch::Created => Admitted::Created {
                    evicted: Vec::new(),
                },
            };
            return Ok((s, admitted));
        };
        // Hold the user's index entry while counting and inserting, so two
        // concurrent newcomers cannot both take the last place.
        let mut ids = self.by_user.entry(user.into()).or_default();
        ids.retain(|id| self.map.contains_key(id));
        if let Some(s) = self.map.get(&ask.id) {
            s.touch(ask.now);
            return Ok((Arc::clone(s.value()), Admitted::Existing));
        }
        let mut evicted = Vec::new();
        let max = usize::try_from(ask.max_sessions).unwrap_or(usize::MAX);
        if max > 0 && ids.len() >= max {
            if ask.policy == Policy::Reject {
                return Err(Refused::Limit);
            }
            // Oldest first: by start time, then id for a stable order.
            let mut live: Vec<(u64, u64)> = ids
                .iter()
                .filter_map(|id| self.map.get(id).map(|s| (s.started, *id)))
                .collect();
            live.sort_unstable();
            let excess = live.len() + 1 - max;
            for &(_, id) in live.iter().take(excess) {
                self.map.remove(&id);
                self.ended.insert(id, ask.tombstone_until);
                evicted.push(id);
            }
            ids.retain(|id| !evicted.contains(id));
        }
        let session = Arc::new(make());
        session.touch(ask.now);
        self.map.insert(ask.id, Arc::clone(&session));
        ids.push(ask.id);
        Ok((session, Admitted::Created { evicted }))
    }

    /// End session `id` now (a kick); its capability stays refused until
    /// `until`. False (and nothing recorded) if it was not live here.
    pub fn end(&self, id: u64, until: u64) -> bool {
        let was_live = self.map.remove(&id).is_some();
        if was_live {
            self.ended.insert(id, until);
        }
        was_live
    }

    /// Forget session `id` without a tombstone (it was never admitted by
    /// the fleet). True if it was live.
    pub fn forget(&self, id: u64) -> bool {
        self.map.remove(&id).is_some()
    }

    /// Ids of the live sessions of `user` on this edge.
    pub fn user_sessions(&self, user: &str) -> Vec<u64> {
        self.by_user.get(user).map_or_else(Vec::new, |ids| {
            ids.iter()
                .copied()
                .filter(|id| self.map.contains_key(id))
                .collect()
        })
    }

    /// Live sessions of `user` on this edge.
    pub fn count_user(&self, user: &str) -> usize {
        self.by_user.get(user).map_or(0, |ids| {
            ids.iter().filter(|id| self.map.contains_key(id)).count()
        })
    }

    /// Refresh session `id` at `now`, creating it with `make` if absent
    /// (no limit, no tombstone check).
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

    /// Forget sessions whose last request is more than `idle_secs` before `now`;
    /// returns how many ended.
    pub fn sweep(&self, now: u64, idle_secs: u64) -> usize {
        let before = self.map.len();
        self.map
            .retain(|_, s| now.saturating_sub(s.last_seen()) <= idle_secs);
        self.ended.retain(|_, until| *until >= now);
        self.by_user.retain(|_, ids| {
            ids.retain(|id| self.map.contains_key(id));
            !ids.is_empty()
        });
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

    #[test]
    fn session_ids_round_trip_and_refuse_other_forms() {
        for id in [0, 1, 0xdead_beef, u64::MAX] {
            let text = SessionId(id).to_string();
            assert_eq!(text.len(), 16);
            assert_eq!(text.parse(), Ok(SessionId(id)));
        }
        for bad in [
            "",
            "1",
            "DEADBEEFDEADBEEF",
            "+000000000000001",
            "0000000000000000a",
            "zzzzzzzzzzzzzzzz",
        ] {
            assert_eq!(bad.parse::<SessionId>(), Err(BadSessionId), "{bad:?}");
        }
    }

    fn ip() -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }

    #[test]
    fn touch_creates_once_then_refreshes() {
        let t = Sessions::new();
        let (a, how) = t.touch(7, 100, || {
            Session::new(7, Some("alice"), None, "live", "ch1", ip(), 100)
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
        t.touch(1, 100, || {
            Session::new(1, None, None, "live", "a", ip(), 100)
        });
        t.touch(2, 100, || {
            Session::new(2, None, None, "live", "b", ip(), 100)
        });
        t.touch(2, 125, || unreachable!());
        assert_eq!(t.sweep(130, 30), 0, "both within 30 s");
        assert_eq!(t.sweep(131, 30), 1, "session 1 idle for 31 s");
        assert!(t.get(1).is_none());
        assert!(t.get(2).is_some());
        assert_eq!(t.sweep(200, 30), 1);
        assert!(t.is_empty());
    }

    fn ask(id: u64, user: Option<&str>, max: u32, policy: Policy, now: u64) -> Ask<'_> {
        Ask {
            id,
            user,
            max_sessions: max,
            policy,
            entry: false,
            now,
            tombstone_until: now + 3600,
        }
    }

    fn new_session(id: u64, user: Option<&str>, now: u64) -> Session {
        Session::new(id, user, None, "live", "ch", ip(), now)
    }

    #[test]
    fn reject_refuses_the_newcomer_but_never_counts_a_reconnect_twice() {
        let t = Sessions::new();
        let a = |id, now| ask(id, Some("alice"), 2, Policy::Reject, now);
        for (id, now) in [(1, 10), (2, 11)] {
            let (_, how) = t
                .admit(&a(id, now), || new_session(id, Some("alice"), now))
                .unwrap();
            assert_eq!(how, Admitted::Created { evicted: vec![] });
        }
        // The same sessions again (reload, variant switch, reconnect).
        for id in [1, 2, 1] {
            let (_, how) = t.admit(&a(id, 12), || unreachable!()).unwrap();
            assert_eq!(how, Admitted::Existing);
        }
        assert_eq!(
            t.admit(&a(3, 13), || unreachable!()).unwrap_err(),
            Refused::Limit
        );
        assert_eq!(t.count_user("alice"), 2);
        let mut ids = t.user_sessions("alice");
        ids.sort_unstable();
        assert_eq!(ids, vec![1, 2]);
        assert!(t.user_sessions("nobody").is_empty());
        // Another user and anonymous viewers are not limited by alice's count.
        t.admit(&ask(4, Some("bob"), 2, Policy::Reject, 13), || {
            new_session(4, Some("bob"), 13)
        })
        .unwrap();
        for id in 5..10 {
            t.admit(&ask(id, None, 1, Policy::Reject, 13), || {
                new_session(id, None, 13)
            })
            .unwrap();
        }
        // When one of alice's sessions idles out, the newcomer fits.
        t.touch(2, 40, || unreachable!());
        t.sweep(45, 30);
        assert_eq!(t.count_user("alice"), 1);
        t.admit(&a(3, 45), || new_session(3, Some("alice"), 45))
            .unwrap();
    }

    #[test]
    fn evict_oldest_ends_the_first_session_and_tombstones_it() {
        let t = Sessions::new();
        let a = |id, now| ask(id, Some("alice"), 1, Policy::EvictOldest, now);
        t.admit(&a(1, 10), || new_session(1, Some("alice"), 10))
            .unwrap();
        let (_, how) = t
            .admit(&a(2, 20), || new_session(2, Some("alice"), 20))
            .unwrap();
        assert_eq!(how, Admitted::Created { evicted: vec![1] });
        assert!(t.get(1).is_none());
        // The evicted player's next request (its old capability) is refused.
        assert_eq!(
            t.admit(&a(1, 21), || unreachable!()).unwrap_err(),
            Refused::Ended
        );
        // Signing in again is a newcomer: it evicts session 2 in turn.
        let again = Ask {
            entry: true,
            ..a(1, 22)
        };
        let (_, how) = t
            .admit(&again, || new_session(1, Some("alice"), 22))
            .unwrap();
        assert_eq!(how, Admitted::Created { evicted: vec![2] });
        assert_eq!(t.count_user("alice"), 1);
        // Tombstones expire with the capability they stand for.
        t.sweep(21 + 3600 + 1, 10_000);
        assert!(
            t.admit(&a(2, 3700), || new_session(2, Some("alice"), 3700))
                .is_ok()
        );
    }

    #[test]
    fn concurrent_newcomers_never_exceed_the_limit() {
        let t = Arc::new(Sessions::new());
        let threads: Vec<_> = (0..8u64)
            .map(|id| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    t.admit(&ask(id, Some("carol"), 3, Policy::Reject, 5), || {
                        new_session(id, Some("carol"), 5)
                    })
                    .is_ok()
                })
            })
            .collect();
        let admitted = threads
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(admitted, 3);
        assert_eq!(t.count_user("carol"), 3);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn kick_ends_a_session_until_its_capability_expires() {
        let t = Sessions::new();
        let a = ask(7, Some("dave"), 0, Policy::Reject, 1);
        t.admit(&a, || new_session(7, Some("dave"), 1)).unwrap();
        assert!(t.end(7, 100));
        assert!(!t.end(7, 100));
        assert_eq!(
            t.admit(
                &ask(7, Some("dave"), 0, Policy::Reject, 50),
                || unreachable!()
            )
            .unwrap_err(),
            Refused::Ended
        );
        assert!(
            t.admit(&ask(7, Some("dave"), 0, Policy::Reject, 101), || {
                new_session(7, Some("dave"), 101)
            })
            .is_ok()
        );
    }

    #[test]
    fn bytes_and_forget() {
        let t = Sessions::new();
        let (s, _) = t.touch(9, 1, || Session::new(9, None, None, "r", "c", ip(), 1));
        s.add_bytes(10);
        s.add_bytes(5);
        assert_eq!(t.get(9).map(|s| s.bytes()), Some(15));
        assert!(t.forget(9));
        assert!(!t.forget(9));
        assert_eq!(t.list().len(), 0);
    }
}
