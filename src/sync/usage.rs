//! Usage accounting for the control-plane report: per session, what was
//! viewed and sent since the last report the control plane acknowledged.
//!
//! Counters advance only on [`Usage::delivered`], so a control plane that
//! is down for a while gets the whole gap in its next good sync, and a
//! session that ended in between is reported once more, as ended, with its
//! final figures (the tracker keeps the session's `Arc` until then).
//!
//! No I/O, no clock, no logging.

use std::collections::HashMap;
use std::sync::Arc;

use crate::session::Session;

/// Ended sessions kept for a report while the control plane is down;
/// beyond this the oldest are dropped (and counted).
pub const MAX_ENDED_PENDING: usize = 100_000;

/// One session's figures for one report.
#[derive(Debug, Clone)]
pub struct Line {
    /// The session.
    pub session: Arc<Session>,
    /// Seconds viewed since the last delivered report.
    pub viewed: u64,
    /// Bytes sent since the last delivered report.
    pub bytes: u64,
    /// Seconds viewed in all (`last_seen - started`).
    pub viewed_total: u64,
    /// Bytes sent in all.
    pub bytes_total: u64,
    /// No longer in the session table.
    pub ended: bool,
}

#[derive(Debug)]
struct Tracked {
    session: Arc<Session>,
    viewed: u64,
    bytes: u64,
    /// Order in which it was seen to end (for dropping the oldest).
    ended_at: Option<u64>,
}

/// The tracker.
#[derive(Debug, Default)]
pub struct Usage {
    tracked: HashMap<u64, Tracked>,
    ended_seq: u64,
    dropped: u64,
}

fn viewed(s: &Session) -> u64 {
    s.last_seen().saturating_sub(s.started)
}

impl Usage {
    /// The lines of the next report, given the sessions live now.
    pub fn collect(&mut self, live: &[Arc<Session>]) -> Vec<Line> {
        let mut lines = Vec::with_capacity(live.len());
        let mut seen = std::collections::HashSet::with_capacity(live.len());
        for s in live {
            seen.insert(s.id);
            let t = self.tracked.entry(s.id).or_insert_with(|| Tracked {
                session: s.clone(),
                viewed: 0,
                bytes: 0,
                ended_at: None,
            });
            if !Arc::ptr_eq(&t.session, s) {
                // The same id, a new session object (ended, then re-adopted):
                // the old one's unreported remainder is lost; start afresh.
                *t = Tracked {
                    session: s.clone(),
                    viewed: 0,
                    bytes: 0,
                    ended_at: None,
                };
            }
            t.ended_at = None;
            lines.push(line(t, false));
        }
        for (id, t) in &mut self.tracked {
            if !seen.contains(id) && t.ended_at.is_none() {
                self.ended_seq += 1;
                t.ended_at = Some(self.ended_seq);
            }
        }
        self.bound();
        lines.extend(
            self.tracked
                .values()
                .filter(|t| t.ended_at.is_some())
                .map(|t| line(t, true)),
        );
        lines
    }

    /// The control plane acknowledged a report of `lines`: advance their
    /// counters and forget the ended ones.
    pub fn delivered(&mut self, lines: &[Line]) {
        for l in lines {
            let Some(t) = self.tracked.get_mut(&l.session.id) else {
                continue;
            };
            if !Arc::ptr_eq(&t.session, &l.session) {
                continue;
            }
            if l.ended {
                self.tracked.remove(&l.session.id);
            } else {
                t.viewed = l.viewed_total;
                t.bytes = l.bytes_total;
            }
        }
    }

    /// Ended sessions dropped unreported since the start (bounded memory
    /// during a long control-plane outage).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Sessions tracked (live and ended-unreported).
    pub fn len(&self) -> usize {
        self.tracked.len()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.tracked.is_empty()
    }

    fn bound(&mut self) {
        let ended = self
            .tracked
            .values()
            .filter(|t| t.ended_at.is_some())
            .count();
        if ended <= MAX_ENDED_PENDING {
            return;
        }
        let mut order: Vec<(u64, u64)> = self
            .tracked
            .iter()
            .filter_map(|(id, t)| t.ended_at.map(|e| (e, *id)))
            .collect();
        order.sort_unstable();
        for (_, id) in order.iter().take(ended - MAX_ENDED_PENDING) {
            self.tracked.remove(id);
            self.dropped += 1;
        }
    }
}

fn line(t: &Tracked, ended: bool) -> Line {
    let (viewed_total, bytes_total) = (viewed(&t.session), t.session.bytes());
    Line {
        session: t.session.clone(),
        viewed: viewed_total.saturating_sub(t.viewed),
        bytes: bytes_total.saturating_sub(t.bytes),
        viewed_total,
        bytes_total,
        ended,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn session(id: u64, started: u64) -> Arc<Session> {
        Arc::new(Session::new(
            id,
            Some("alice"),
            None,
            "live",
            "ch1",
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            started,
        ))
    }

    #[test]
    fn deltas_advance_only_when_delivered() {
        let mut u = Usage::default();
        let s = session(1, 100);
        s.add_bytes(1000);
        s.touch(110);
        let sessions = vec![s.clone()];
        let l = u.collect(&sessions);
        assert_eq!((l[0].viewed, l[0].bytes, l[0].ended), (10, 1000, false));
        // Not delivered (control plane down): the next report has it all.
        s.add_bytes(500);
        s.touch(120);
        let l = u.collect(&sessions);
        assert_eq!((l[0].viewed, l[0].bytes), (20, 1500));
        u.delivered(&l);
        s.add_bytes(1);
        s.touch(125);
        let l = u.collect(&sessions);
        assert_eq!((l[0].viewed, l[0].bytes), (5, 1));
        assert_eq!((l[0].viewed_total, l[0].bytes_total), (25, 1501));
    }

    #[test]
    fn ended_sessions_are_reported_once_more_then_forgotten() {
        let mut u = Usage::default();
        let s = session(7, 0);
        let l = u.collect(std::slice::from_ref(&s));
        u.delivered(&l);
        s.add_bytes(42);
        s.touch(9);
        // Gone from the table.
        let l = u.collect(&[]);
        assert_eq!(l.len(), 1);
        assert!(l[0].ended);
        assert_eq!((l[0].viewed, l[0].bytes), (9, 42));
        // Undelivered: reported again.
        assert_eq!(u.collect(&[]).len(), 1);
        let l = u.collect(&[]);
        u.delivered(&l);
        assert!(u.collect(&[]).is_empty());
        assert!(u.is_empty());
    }

    #[test]
    fn ended_backlog_is_bounded() {
        let mut u = Usage::default();
        let all: Vec<_> = (0..(MAX_ENDED_PENDING as u64 + 10))
            .map(|i| session(i, 0))
            .collect();
        u.collect(&all);
        let l = u.collect(&[]);
        assert_eq!(l.len(), MAX_ENDED_PENDING);
        assert_eq!(u.dropped(), 10);
    }
}
