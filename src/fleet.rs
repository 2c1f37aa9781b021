//! Session admission shared by a fleet of edges through one Redis
//! (`store = "redis://..."`, SPEC §3.2: `max_sessions` holds across every
//! edge sharing the store).
//!
//! Owns: the connection to Redis (a [`redis::aio::ConnectionManager`], made
//! by [`FleetStore::connect`] or lazily by the first call of a
//! [`FleetStore::new`] store, which then reconnects by itself), the ended
//! sessions' pub/sub subscription ([`FleetStore::watch_ended`]), the two Lua
//! scripts, the key layout, the time bound on every Redis call, the health
//! probe, the fail-open/fail-closed decision and the counters that report
//! it. It is part of the I/O shell; what drives the probe, the heartbeat
//! and the subscription on an edge is `runtime::fleet_agent`.
//!
//! Must not: read the clock (every time is the caller's `now_ms`, unix
//! milliseconds, never Redis `TIME`, so the scripts are deterministic and
//! testable), wait on Redis longer than `op_timeout`, log more than one line
//! per health transition, or put the Redis URL (it may hold a password) in a
//! log line or an error.
//!
//! # Key layout
//!
//! | key | type | holds | expiry |
//! |---|---|---|---|
//! | `{prefix}user:{<user>}` | ZSET | member = session id (decimal), score = last-seen unix ms | `session_ttl` after the last admit/heartbeat |
//! | `{prefix}ended:{<sid>}` | string `1` | the session was evicted or kicked somewhere in the fleet | `ended_ttl` |
//! | `{prefix}ended` | pub/sub channel | each evicted or kicked session id (decimal), as it ends | — |
//!
//! The braces are Redis Cluster hash tags: every key of one user is one key,
//! so a user's admission touches one slot. The admission script also writes
//! the ended markers of the sessions it evicts, which live in other slots:
//! that is fine on a single Redis or a Sentinel-managed primary (what a
//! `ConnectionManager` talks to) and is the one thing a Redis Cluster port
//! would have to move out of the script.
//!
//! # The admission script's contract (`fleet/admit.lua`)
//!
//! One `EVALSHA`, atomic on the server, for `(user, sid, max, policy, now)`:
//! 1. drop the user's sessions whose last-seen is `<= now - session_ttl`;
//! 2. `sid` still present → raise its score to `now` (never lower), reset
//!    the key's expiry → [`Admission::Refreshed`] (a reconnect never counts
//!    twice);
//! 3. else if `max > 0` and the user holds `>= max` sessions: policy
//!    [`Policy::Reject`] → [`Admission::Rejected`], nothing written;
//!    [`Policy::EvictOldest`] → remove the `held - max + 1` oldest, write an
//!    ended marker for each, then admit → [`Admission::Evicted`] with their ids;
//! 4. else add `sid` at `now` → [`Admission::Admitted`].
//!
//! Admitting a session ([`FleetStore::admit`], an entry request) also
//! deletes its own ended marker: an evicted or kicked viewer who comes back
//! through the entry URL is a new admission. A capability request new to an
//! edge ([`FleetStore::readmit`]) meets the marker first and gets
//! [`Admission::Ended`], writing nothing.
//! Needs Redis >= 6.2 (`ZADD GT`).
//!
//! # The heartbeat script's contract (`fleet/beat.lua`)
//!
//! An edge is the authority on which of its sessions are playing; Redis is
//! the authority on which were ended. One `EVALSHA` per user
//! ([`FleetStore::beat`]) carries the edge's live sessions of that user with
//! their last-seen times: a session with an ended marker is dropped from the
//! set and reported ([`Beat::ended`]); any other whose last-seen is within
//! `session_ttl` gets `ZADD GT` (raised, never lowered) — which also adds it
//! back when Redis lost it (restarted empty, failed over to a replica that
//! never saw it), counted in [`Beat::readded`]. So a restart evicts nobody
//! and the limits are exact again once every edge has beaten once. Between
//! the restart and that beat, a newcomer may be admitted over the limit; the
//! beat never evicts to correct that (the sessions it re-adds were admitted
//! before), the excess ends when one of them does.
//!
//! # Ended sessions reach every edge at once
//!
//! The admission script (for each session it evicts) and [`FleetStore::end`]
//! publish the ended id on `{prefix}ended`; every edge subscribes
//! ([`FleetStore::watch_ended`]) and ends the session locally. Pub/sub is
//! lossy while an edge is disconnected: the ended markers stay the truth
//! and the next heartbeat finds them.
//!
//! # When Redis is unreachable or slow
//!
//! Every call is bounded by `op_timeout`. [`FleetStore::admit`] then answers
//! per [`FailMode`]: `Open` admits (counted in `fail_open`), `Closed` returns
//! [`FleetError::Unavailable`] (counted in `fail_closed`). The other calls
//! return the error and leave the policy to the caller. [`FleetStore::healthy`]
//! says whether the last call reached Redis; [`FleetStore::probe`] (a `PING`
//! bounded by [`PROBE_TIMEOUT`], run every [`PROBE_EVERY`] by the edge) keeps
//! that within a second of a failure when no viewer is asking. A call cut
//! off by the timeout may still run on the server (a late admission then
//! holds a slot until `session_ttl` passes). A restarted Redis without
//! persistence forgets every session: the fleet re-learns them from the next
//! heartbeat.

mod layout;
mod options;

pub use options::{FailMode, FleetOptions, Policy};

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};
use tokio::sync::OnceCell;

use layout::{KeyLayout, parse_admission, parse_beat};

/// How often an edge probes the store ([`FleetStore::probe`]).
pub const PROBE_EVERY: Duration = Duration::from_millis(250);

/// The most a probe waits for `PONG` (less when `op_timeout` is shorter):
/// with [`PROBE_EVERY`], a dead or frozen store shows in
/// [`FleetStore::healthy`] within 750 ms.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Sessions carried by one heartbeat script call (a user with more on one
/// edge takes several calls), so one call never holds Redis for long.
const BEAT_CHUNK: usize = 256;

/// The outcome of [`FleetStore::admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A new session, within the user's limit.
    Admitted,
    /// The session was already held; its last-seen time moved to now.
    Refreshed,
    /// The user is at `max_sessions` and the policy is [`Policy::Reject`].
    Rejected,
    /// Admitted after ending these older sessions of the user (oldest first);
    /// each now has an ended marker ([`FleetStore::is_ended`]).
    Evicted(Vec<u64>),
    /// [`FleetStore::readmit`] only: the session was evicted or kicked
    /// somewhere in the fleet; its capability no longer plays anywhere.
    Ended,
}

/// What one [`FleetStore::beat`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Beat {
    /// Sessions Redis had lost (restart, failover, expiry) and now holds again.
    pub readded: u32,
    /// Sessions ended elsewhere in the fleet (evicted or kicked): end them here.
    pub ended: Vec<u64>,
}

/// Why a fleet store call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FleetError {
    /// Redis could not be reached or did not answer within `op_timeout`.
    #[error("fleet store unavailable: {0}")]
    Unavailable(String),
    /// Redis answered something the scripts never return.
    #[error("fleet store reply: {0}")]
    Reply(String),
    /// Bad URL or options.
    #[error("fleet store config: {0}")]
    Config(String),
}

/// A snapshot of the store's health counters, for metrics and readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetStats {
    /// Whether the last Redis call succeeded.
    pub healthy: bool,
    /// Admissions granted without Redis ([`FailMode::Open`]).
    pub fail_open: u64,
    /// Admissions refused because Redis was unavailable ([`FailMode::Closed`]).
    pub fail_closed: u64,
    /// Redis calls that failed or timed out (any operation).
    pub errors: u64,
    /// Playing sessions a heartbeat registered again after Redis lost them.
    pub readopted: u64,
}

#[derive(Debug, Default)]
struct Counters {
    unhealthy: AtomicBool,
    fail_open: AtomicU64,
    fail_closed: AtomicU64,
    errors: AtomicU64,
    readopted: AtomicU64,
}

struct Shared {
    client: redis::Client,
    config: ConnectionManagerConfig,
    admit: Script,
    beat: Script,
    keys: KeyLayout,
    opts: FleetOptions,
    counters: Counters,
}

/// A handle on the fleet's session store; cheap to clone (one Redis
/// connection, multiplexed, shared by every clone).
#[derive(Clone)]
pub struct FleetStore {
    /// Set by the first call that reaches Redis; the manager then reconnects
    /// by itself.
    conn: Arc<OnceCell<ConnectionManager>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FleetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No URL: it may carry a password.
        f.debug_struct("FleetStore")
            .field("opts", &self.shared.opts)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn from_redis(e: &RedisError) -> FleetError {
    // Display names the failure (io error, server error text); it never
    // carries the URL or its password.
    let what = e.to_string();
    if matches!(
        e.kind(),
        redis::ErrorKind::UnexpectedReturnType | redis::ErrorKind::Parse
    ) {
        FleetError::Reply(what)
    } else {
        FleetError::Unavailable(what)
    }
}

impl FleetStore {
    /// Connect to the Redis at `url` (`redis://[user:pass@]host:port[/db]`).
    ///
    /// Fails with [`FleetError::Unavailable`] when Redis does not answer
    /// within `op_timeout`; after that, reconnection is automatic.
    pub async fn connect(url: &str, opts: FleetOptions) -> Result<Self, FleetError> {
        let store = Self::new(url, opts)?;
        store.bounded(|_| async { Ok(()) }).await?;
        Ok(store)
    }

    /// A store that connects on its first call instead: an edge can start
    /// while Redis is down and [`FleetOptions::fail`] applies until it is up.
    /// Fails only on a bad URL or bad options.
    pub fn new(url: &str, opts: FleetOptions) -> Result<Self, FleetError> {
        let keys = KeyLayout::new(&opts.key_prefix)?;
        if opts.session_ttl < Duration::from_millis(1) || opts.ended_ttl < Duration::from_millis(1)
        {
            return Err(FleetError::Config(
                "session_ttl and ended_ttl must be at least 1 ms".into(),
            ));
        }
        if opts.op_timeout.is_zero() {
            return Err(FleetError::Config("op_timeout must be positive".into()));
        }
        let client = redis::Client::open(url)
            .map_err(|e| FleetError::Config(format!("invalid store url: {:?}", e.kind())))?;
        // No backoff inside the manager: a failed reconnect makes the next
        // call start a new attempt (at most one in flight), so the store
        // recovers as soon as Redis is back instead of after a long sleep.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(opts.op_timeout))
            .set_response_timeout(Some(opts.op_timeout));
        Ok(Self {
            conn: Arc::new(OnceCell::new()),
            shared: Arc::new(Shared {
                client,
                config,
                admit: Script::new(include_str!("fleet/admit.lua")),
                beat: Script::new(include_str!("fleet/beat.lua")),
                keys,
                opts,
                counters: Counters::default(),
            }),
        })
    }

    /// Admit, refresh, reject or evict a session whose viewer came with
    /// fresh credentials (an entry request: an ended marker of `sid` is
    /// cleared, it is a new admission); see the module docs for the
    /// script's contract. `max_sessions = 0` means unlimited; the session is
    /// still tracked. While Redis is unavailable the answer follows
    /// [`FleetOptions::fail`].
    pub async fn admit(
        &self,
        user: &str,
        sid: u64,
        max_sessions: u32,
        policy: Policy,
        now_ms: u64,
    ) -> Result<Admission, FleetError> {
        self.admission(user, sid, max_sessions, policy, now_ms, true)
            .await
    }

    /// [`Self::admit`] for a session new to this edge that came with a
    /// capability (another edge's viewer, a session this edge forgot):
    /// [`Admission::Ended`] if it was evicted or kicked anywhere in the
    /// fleet, so a kick reaches edges that had not seen the session yet.
    pub async fn readmit(
        &self,
        user: &str,
        sid: u64,
        max_sessions: u32,
        policy: Policy,
        now_ms: u64,
    ) -> Result<Admission, FleetError> {
        self.admission(user, sid, max_sessions, policy, now_ms, false)
            .await
    }

    async fn admission(
        &self,
        user: &str,
        sid: u64,
        max_sessions: u32,
        policy: Policy,
        now_ms: u64,
        entry: bool,
    ) -> Result<Admission, FleetError> {
        let s = &self.shared;
        let ttl = millis(s.opts.session_ttl);
        let mut inv = s.admit.prepare_invoke();
        inv.key(s.keys.user(user))
            .key(s.keys.ended(sid))
            .arg(now_ms)
            .arg(now_ms.saturating_sub(ttl))
            .arg(ttl)
            .arg(max_sessions)
            .arg(sid)
            .arg(if policy == Policy::EvictOldest {
                "1"
            } else {
                "0"
            })
            .arg(s.keys.ended_prefix())
            .arg(millis(s.opts.ended_ttl))
            .arg(s.keys.ended_channel())
            .arg(if entry { "1" } else { "0" });
        let reply = self
            .bounded(|mut conn| {
                let inv = &inv;
                async move { inv.invoke_async::<Vec<String>>(&mut conn).await }
            })
            .await;
        match reply.and_then(|r| parse_admission(&r)) {
            Ok(a) => Ok(a),
            Err(e) => match s.opts.fail {
                FailMode::Open => {
                    s.counters.fail_open.fetch_add(1, Ordering::Relaxed);
                    Ok(Admission::Admitted)
                }
                FailMode::Closed => {
                    s.counters.fail_closed.fetch_add(1, Ordering::Relaxed);
                    Err(match e {
                        FleetError::Unavailable(_) => e,
                        other => FleetError::Unavailable(other.to_string()),
                    })
                }
            },
        }
    }

    /// The heartbeat of `user`'s sessions this edge serves: `sessions` are
    /// (session id, last-seen unix ms). Raises each one's last-seen, adds
    /// back those Redis lost, and reports those ended elsewhere (see the
    /// module docs for the script's contract).
    pub async fn beat(
        &self,
        user: &str,
        sessions: &[(u64, u64)],
        now_ms: u64,
    ) -> Result<Beat, FleetError> {
        let s = &self.shared;
        let ttl = millis(s.opts.session_ttl);
        let mut out = Beat::default();
        for chunk in sessions.chunks(BEAT_CHUNK) {
            let mut inv = s.beat.prepare_invoke();
            inv.key(s.keys.user(user))
                .arg(now_ms.saturating_sub(ttl))
                .arg(ttl)
                .arg(s.keys.ended_prefix());
            for &(sid, seen_ms) in chunk {
                inv.arg(sid).arg(seen_ms);
            }
            let reply = self
                .bounded(|mut conn| {
                    let inv = &inv;
                    async move { inv.invoke_async::<Vec<String>>(&mut conn).await }
                })
                .await?;
            let beat = parse_beat(&reply)?;
            out.readded = out.readded.saturating_add(beat.readded);
            out.ended.extend(beat.ended);
        }
        if out.readded > 0 {
            s.counters
                .readopted
                .fetch_add(u64::from(out.readded), Ordering::Relaxed);
        }
        Ok(out)
    }

    /// Whether `sid` was evicted or kicked anywhere in the fleet within the
    /// last `ended_ttl`.
    pub async fn is_ended(&self, sid: u64) -> Result<bool, FleetError> {
        let key = &self.shared.keys.ended(sid);
        self.bounded(|mut conn| async move {
            redis::cmd("EXISTS")
                .arg(key)
                .query_async::<bool>(&mut conn)
                .await
        })
        .await
    }

    /// Kick `sid` fleet-wide (admin `DELETE /api/v1/sessions/{id}`): write
    /// its ended marker, publish its id to every edge and, when the user is
    /// known, free its slot at once.
    pub async fn end(&self, sid: u64, user: Option<&str>) -> Result<(), FleetError> {
        let s = &self.shared;
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(s.keys.ended(sid))
            .arg(1)
            .arg("PX")
            .arg(millis(s.opts.ended_ttl))
            .ignore();
        if let Some(user) = user {
            pipe.cmd("ZREM").arg(s.keys.user(user)).arg(sid).ignore();
        }
        pipe.cmd("PUBLISH")
            .arg(s.keys.ended_channel())
            .arg(sid)
            .ignore();
        let pipe = &pipe;
        self.bounded(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
            .await
    }

    /// Free `sid`'s slot among `user`'s sessions without marking it ended
    /// (a viewer refused at admission: it may come back once allowed).
    pub async fn release(&self, sid: u64, user: &str) -> Result<(), FleetError> {
        let s = &self.shared;
        let mut cmd = redis::cmd("ZREM");
        cmd.arg(s.keys.user(user)).arg(sid);
        // ZREM twice is ZREM once: safe to resend after a reconnect.
        self.bounded(|mut conn| {
            let cmd = cmd.clone();
            async move { cmd.query_async::<()>(&mut conn).await }
        })
        .await
    }

    /// One `PING` within [`PROBE_TIMEOUT`] (or `op_timeout` if shorter),
    /// recorded like any call in [`Self::healthy`]; true if Redis answered.
    /// While Redis is unreachable each probe is also a reconnect attempt.
    pub async fn probe(&self) -> bool {
        let within = self.shared.opts.op_timeout.min(PROBE_TIMEOUT);
        self.bounded_within(within, |mut conn| async move {
            redis::cmd("PING").query_async::<()>(&mut conn).await
        })
        .await
        .is_ok()
    }

    /// Subscribe to the ids of sessions ended anywhere in the fleet: call
    /// `subscribed` once the subscription is in place (anything ended before
    /// it was missed: beat now), then `ended` for each id, as published.
    /// Returns only when the subscription is lost (or could not be made
    /// within `op_timeout`), with why; the caller retries. A frozen Redis
    /// keeps it waiting: drop the future to give up on it.
    pub async fn watch_ended(
        &self,
        subscribed: impl FnOnce(),
        mut ended: impl FnMut(u64),
    ) -> FleetError {
        let s = &self.shared;
        let timeout = s.opts.op_timeout;
        let connect = async {
            let mut pubsub = s.client.get_async_pubsub().await?;
            pubsub.subscribe(s.keys.ended_channel()).await?;
            Ok::<_, RedisError>(pubsub)
        };
        let pubsub = match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return from_redis(&e),
            Err(_) => return timed_out(timeout),
        };
        subscribed();
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            // Only tollgate publishes here; anything else is ignored.
            if let Some(sid) = msg
                .get_payload::<String>()
                .ok()
                .and_then(|p| p.parse::<u64>().ok())
            {
                ended(sid);
            }
        }
        FleetError::Unavailable("subscription closed".into())
    }

    /// Whether the last Redis call (or probe) succeeded (readiness); true
    /// before the first call of a lazy store.
    pub fn healthy(&self) -> bool {
        !self.shared.counters.unhealthy.load(Ordering::Relaxed)
    }

    /// Health counters for metrics.
    pub fn stats(&self) -> FleetStats {
        let c = &self.shared.counters;
        FleetStats {
            healthy: self.healthy(),
            fail_open: c.fail_open.load(Ordering::Relaxed),
            fail_closed: c.fail_closed.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            readopted: c.readopted.load(Ordering::Relaxed),
        }
    }

    /// The options this store was connected with.
    pub fn options(&self) -> &FleetOptions {
        &self.shared.opts
    }

    /// Run one Redis call within `op_timeout` (connecting first if no
    /// connection was ever made), keeping the health flag and error counter.
    async fn bounded<T, F>(&self, call: impl Fn(ConnectionManager) -> F) -> Result<T, FleetError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        self.bounded_within(self.shared.opts.op_timeout, call).await
    }

    /// [`Self::bounded`] within `timeout`.
    async fn bounded_within<T, F>(
        &self,
        timeout: Duration,
        call: impl Fn(ConnectionManager) -> F,
    ) -> Result<T, FleetError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let s = &self.shared;
        let attempt = async {
            // Concurrent first callers share one attempt; a failed one leaves
            // the cell empty for the next caller.
            let conn = self
                .conn
                .get_or_try_init(|| {
                    ConnectionManager::new_with_config(s.client.clone(), s.config.clone())
                })
                .await?;
            // After an outage or a Redis restart the manager still holds
            // the dead connection: the first command fails and starts the
            // reconnect, the next one waits for it. Every call of this store
            // is idempotent (admitting a held session refreshes it; a beat,
            // an end or a PING twice is the same as once), so one that
            // failed that way is sent once more, on the new connection,
            // instead of failing open or closed while Redis is up.
            match call(conn.clone()).await {
                Err(e) if e.is_unrecoverable_error() => call(conn.clone()).await,
                other => other,
            }
        };
        let result = match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(from_redis(&e)),
            Err(_) => Err(timed_out(timeout)),
        };
        let c = &self.shared.counters;
        match &result {
            Ok(_) => {
                if c.unhealthy.swap(false, Ordering::Relaxed) {
                    tracing::info!("fleet store reachable again");
                }
            }
            Err(e) => {
                c.errors.fetch_add(1, Ordering::Relaxed);
                if !c.unhealthy.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "fleet store unavailable");
                }
            }
        }
        result
    }
}

fn timed_out(timeout: Duration) -> FleetError {
    FleetError::Unavailable(format!("no answer within {} ms", timeout.as_millis()))
}
