//! The edge's side of the fleet store (`[sessions] store = "redis://…"`,
//! SPEC §6): three loops that keep the shared store and this edge's session
//! table telling the same story, whatever Redis forgets.
//!
//! - **Probe**: a `PING` every [`PROBE_EVERY`], so `/healthz` shows a dead or
//!   frozen store within a second even when no viewer is asking.
//! - **Heartbeat**: every `sessions.store_heartbeat`, one script call per
//!   user carries the edge's playing sessions (those the store admitted)
//!   with their last-seen times: Redis raises them, adds back the ones it
//!   lost (restart, failover) and names the ones ended elsewhere, which end
//!   here. A playing viewer is never evicted because Redis forgot it.
//! - **Ended**: a subscription to the ids every edge publishes as it evicts
//!   or kicks a session; each ends here at once (milliseconds, not a
//!   heartbeat). While it is down the heartbeat still finds the ended
//!   markers; each new subscription, and the store coming back, start a
//!   heartbeat at once for what was missed.
//!
//! Must not: end a session because Redis is unreachable or does not know
//! it, log per session or per failed attempt (the store logs its health
//! transitions), or run without a fleet store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;

use super::Shared;
use crate::config::SessionStore;
use crate::fleet::{FleetError, FleetStore, PROBE_EVERY};

/// Heartbeat calls in flight at once (each one user's sessions).
const BEATS_IN_FLIGHT: usize = 16;

/// Wait between two attempts to subscribe while Redis is unreachable.
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(500);

/// Run the probe, the heartbeat and the ended subscription until the task
/// is aborted; returns at once without a fleet store.
pub async fn run(shared: Arc<Shared>) {
    let Some(store) = shared.fleet.clone() else {
        return;
    };
    // `beat_now`: beat before the period is up; `resubscribe`: drop the
    // subscription (it may hang on a connection the store gave up on).
    let beat_now = Notify::new();
    let resubscribe = Notify::new();
    tokio::join!(
        probe(&store, &beat_now, &resubscribe),
        heartbeat(&shared, &store, &beat_now),
        watch_ended(&shared, &store, &beat_now, &resubscribe),
    );
}

async fn probe(store: &FleetStore, beat_now: &Notify, resubscribe: &Notify) {
    let mut every = tokio::time::interval(PROBE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_up = true;
    loop {
        every.tick().await;
        let up = store.probe().await;
        if up && !was_up {
            beat_now.notify_one();
            resubscribe.notify_one();
        }
        was_up = up;
    }
}

/// The configured heartbeat period (validated shorter than the idle timeout).
fn period(shared: &Shared) -> Duration {
    match &shared.live().config.sessions.store {
        SessionStore::Redis { heartbeat, .. } => *heartbeat,
        SessionStore::Local => Duration::from_secs(5),
    }
}

async fn heartbeat(shared: &Shared, store: &FleetStore, beat_now: &Notify) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(period(shared)) => {}
            () = beat_now.notified() => {}
        }
        beat(shared, store).await;
    }
}

/// One heartbeat of every session the store admitted, grouped by user.
async fn beat(shared: &Shared, store: &FleetStore) {
    let now = shared.clock.now();
    let mut by_user: HashMap<Box<str>, Vec<(u64, u64)>> = HashMap::new();
    for s in shared.sessions.list() {
        if let (true, Some(user)) = (s.in_fleet(), s.user.as_ref()) {
            by_user
                .entry(user.clone())
                .or_default()
                .push((s.id, s.last_seen().saturating_mul(1000)));
        }
    }
    if by_user.is_empty() {
        return;
    }
    let now_ms = now.saturating_mul(1000);
    let until = shared.live().config.sessions.capability_expiry(now);
    let mut calls = futures_util::stream::iter(by_user)
        .map(|(user, sessions)| async move { store.beat(&user, &sessions, now_ms).await })
        .buffer_unordered(BEATS_IN_FLIGHT);
    while let Some(result) = calls.next().await {
        match result {
            Ok(found) => {
                for id in found.ended {
                    shared.sessions.end(id, until);
                }
            }
            // Unreachable: end nothing (only an ended marker does) and stop
            // this beat rather than wait out every user's call; the next
            // period, or the probe seeing the store back, beats again.
            Err(FleetError::Unavailable(_)) => break,
            Err(_) => {}
        }
    }
}

async fn watch_ended(shared: &Shared, store: &FleetStore, beat_now: &Notify, resubscribe: &Notify) {
    let end_here = |id: u64| {
        let until = shared
            .live()
            .config
            .sessions
            .capability_expiry(shared.clock.now());
        shared.sessions.end(id, until);
    };
    loop {
        let lost = tokio::select! {
            e = store.watch_ended(|| beat_now.notify_one(), end_here) => Some(e),
            () = resubscribe.notified() => None,
        };
        if let Some(e) = lost {
            tracing::debug!(error = %e, "fleet store subscription lost");
            tokio::time::sleep(RESUBSCRIBE_AFTER).await;
        }
    }
}
