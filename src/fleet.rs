//! Session admission shared by a fleet of edges through one Redis
//! (`store = "redis://..."`, SPEC §3.2: `max_sessions` holds across every
//! edge sharing the store).
//!
//! Owns: the connection to Redis (a [`redis::aio::ConnectionManager`], made
//! by [`FleetStore::connect`] or lazily by the first call of a
//! [`FleetStore::new`] store, which then reconnects by itself), the two Lua scripts, the key
//! layout, the time bound on every Redis call, the fail-open/fail-closed
//! decision and the counters that report it. It is part of the I/O shell.
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
//! Admitting a session also deletes its own ended marker: an evicted or
//! kicked viewer who comes back through the entry URL is a new admission.
//! The heartbeat script refreshes a session only while it is held (never
//! resurrecting an expired or evicted one). Needs Redis >= 6.2 (`ZADD GT`).
//!
//! # When Redis is unreachable or slow
//!
//! Every call is bounded by `op_timeout`. [`FleetStore::admit`] then answers
//! per [`FailMode`]: `Open` admits (counted in `fail_open`), `Closed` returns
//! [`FleetError::Unavailable`] (counted in `fail_closed`). The other calls
//! return the error and leave the policy to the caller. [`FleetStore::healthy`]
//! says whether the last call reached Redis. A call cut off by the timeout
//! may still run on the server (a late admission then holds a slot until
//! `session_ttl` passes). A restarted Redis without persistence forgets every
//! session: the fleet re-learns them from the next admissions and heartbeats.

mod layout;
mod options;

pub use options::{FailMode, FleetOptions, Policy};

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script};
use tokio::sync::OnceCell;

use layout::{KeyLayout, parse_admission};

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
}

#[derive(Debug, Default)]
struct Counters {
    unhealthy: AtomicBool,
    fail_open: AtomicU64,
    fail_closed: AtomicU64,
    errors: AtomicU64,
}

struct Shared {
    client: redis::Client,
    config: ConnectionManagerConfig,
    admit: Script,
    heartbeat: Script,
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
                heartbeat: Script::new(include_str!("fleet/heartbeat.lua")),
                keys,
                opts,
                counters: Counters::default(),
            }),
        })
    }

    /// Admit, refresh, reject or evict (see the module docs for the script's
    /// contract). `max_sessions = 0` means unlimited; the session is still
    /// tracked. While Redis is unavailable the answer follows
    /// [`FleetOptions::fail`].
    pub async fn admit(
        &self,
        user: &str,
        sid: u64,
        max_sessions: u32,
        policy: Policy,
        now_ms: u64,
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
            .arg(millis(s.opts.ended_ttl));
        let reply = self
            .bounded(|mut conn| async move { inv.invoke_async::<Vec<String>>(&mut conn).await })
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

    /// Refresh a held session's last-seen time to `now_ms`. `Ok(false)` when
    /// the fleet no longer holds it (expired, evicted or kicked); it is not
    /// re-added.
    pub async fn heartbeat(&self, user: &str, sid: u64, now_ms: u64) -> Result<bool, FleetError> {
        let s = &self.shared;
        let ttl = millis(s.opts.session_ttl);
        let mut inv = s.heartbeat.prepare_invoke();
        inv.key(s.keys.user(user))
            .arg(now_ms)
            .arg(now_ms.saturating_sub(ttl))
            .arg(ttl)
            .arg(sid);
        let held = self
            .bounded(|mut conn| async move { inv.invoke_async::<i64>(&mut conn).await })
            .await?;
        Ok(held == 1)
    }

    /// Whether `sid` was evicted or kicked anywhere in the fleet within the
    /// last `ended_ttl`.
    pub async fn is_ended(&self, sid: u64) -> Result<bool, FleetError> {
        let key = self.shared.keys.ended(sid);
        self.bounded(|mut conn| async move {
            redis::cmd("EXISTS")
                .arg(key)
                .query_async::<bool>(&mut conn)
                .await
        })
        .await
    }

    /// Kick `sid` fleet-wide (admin `DELETE /api/v1/sessions/{id}`): write
    /// its ended marker and, when the user is known, free its slot at once.
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
        self.bounded(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
            .await
    }

    /// Free `sid`'s slot among `user`'s sessions without marking it ended
    /// (a viewer refused at admission: it may come back once allowed).
    pub async fn release(&self, sid: u64, user: &str) -> Result<(), FleetError> {
        let s = &self.shared;
        let mut cmd = redis::cmd("ZREM");
        cmd.arg(s.keys.user(user)).arg(sid);
        self.bounded(|mut conn| async move { cmd.query_async::<()>(&mut conn).await })
            .await
    }

    /// Whether the last Redis call succeeded (readiness); true before the
    /// first call of a lazy store.
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
        }
    }

    /// The options this store was connected with.
    pub fn options(&self) -> &FleetOptions {
        &self.shared.opts
    }

    /// Run one Redis call within `op_timeout` (connecting first if no
    /// connection was ever made), keeping the health flag and error counter.
    async fn bounded<T, F>(
        &self,
        call: impl FnOnce(ConnectionManager) -> F,
    ) -> Result<T, FleetError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let s = &self.shared;
        let timeout = s.opts.op_timeout;
        let attempt = async {
            // Concurrent first callers share one attempt; a failed one leaves
            // the cell empty for the next caller.
            let conn = self
                .conn
                .get_or_try_init(|| {
                    ConnectionManager::new_with_config(s.client.clone(), s.config.clone())
                })
                .await?;
            if s.counters.unhealthy.load(Ordering::Relaxed) {
                // After an outage the manager still holds the dead
                // connection: the first command fails and starts the
                // reconnect, the second waits for it. Probe with PING so
                // the real call (not idempotent in general) runs once, on a
                // live connection.
                let mut probe = conn.clone();
                if redis::cmd("PING")
                    .query_async::<()>(&mut probe)
                    .await
                    .is_err()
                {
                    let mut probe = conn.clone();
                    redis::cmd("PING").query_async::<()>(&mut probe).await?;
                }
            }
            call(conn.clone()).await
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
