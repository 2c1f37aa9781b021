//! The fleet store (src/fleet.rs) against a real `redis-server` this test
//! starts on 127.0.0.1 and a free port: limits across two "edges" (two
//! `FleetStore`s on one Redis), atomicity under concurrent admits, expiry,
//! eviction and kicks seen fleet-wide, and what admission answers while Redis
//! is dead or frozen, then recovery when it comes back on the same port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::redis::RedisServer;
use tollgate::fleet::Admission::{self, Admitted, Ended, Evicted, Refreshed, Rejected};
use tollgate::fleet::{Beat, FailMode, FleetError, FleetOptions, FleetStore, Policy};

const T0: u64 = 1_700_000_000_000;

fn opts(prefix: &str) -> FleetOptions {
    FleetOptions {
        key_prefix: prefix.into(),
        op_timeout: Duration::from_millis(300),
        ..FleetOptions::new(Duration::from_secs(30))
    }
}

async fn store(redis: &RedisServer, o: FleetOptions) -> FleetStore {
    FleetStore::connect(&redis.url(), o).await.unwrap()
}

/// [`FleetStore::admit`], which must reach Redis.
async fn admit(s: &FleetStore, user: &str, sid: u64, max: u32, p: Policy, now: u64) -> Admission {
    s.admit(user, sid, max, p, now).await.unwrap()
}

/// [`FleetStore::readmit`], which must reach Redis.
async fn readmit(s: &FleetStore, user: &str, sid: u64, max: u32, p: Policy, now: u64) -> Admission {
    s.readmit(user, sid, max, p, now).await.unwrap()
}

/// [`FleetStore::beat`], which must reach Redis.
async fn beat(s: &FleetStore, user: &str, sessions: &[(u64, u64)], now: u64) -> Beat {
    s.beat(user, sessions, now).await.unwrap()
}

/// The answer to the Redis command `cmd key`.
fn query<T: redis::FromRedisValue>(raw: &mut redis::Connection, cmd: &str, key: &str) -> T {
    redis::cmd(cmd).arg(key).query(raw).unwrap()
}

/// The sessions a user key holds, with their last-seen times.
fn sessions_of(raw: &mut redis::Connection, key: &str) -> Vec<(String, u64)> {
    redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(raw)
        .unwrap()
}

/// [`opts`] `t:` answering `fail` while Redis is away.
fn failing(fail: FailMode) -> FleetOptions {
    FleetOptions { fail, ..opts("t:") }
}

/// A fresh Redis and two edges of one fleet on it (key prefix `t:`).
async fn two_edges() -> (RedisServer, FleetStore, FleetStore) {
    let redis = RedisServer::start();
    let (a, b) = (
        store(&redis, opts("t:")).await,
        store(&redis, opts("t:")).await,
    );
    (redis, a, b)
}

#[tokio::test]
async fn admits_up_to_the_limit_then_rejects_and_reconnects_never_count_twice() {
    let redis = RedisServer::start();
    let s = store(&redis, opts("t:")).await;
    let r = Policy::Reject;
    assert_eq!(admit(&s, "alice", 1, 2, r, T0).await, Admitted);
    assert_eq!(admit(&s, "alice", 2, 2, r, T0 + 1).await, Admitted);
    assert_eq!(admit(&s, "alice", 3, 2, r, T0 + 2).await, Rejected);
    for t in 3..10 {
        assert_eq!(admit(&s, "alice", 1, 2, r, T0 + t).await, Refreshed);
    }
    assert_eq!(admit(&s, "alice", 3, 2, r, T0 + 10).await, Rejected);
    // Another user has a limit of their own.
    assert_eq!(admit(&s, "bob", 3, 1, r, T0).await, Admitted);

    // Exactly the two admitted sessions are stored, under the documented key.
    let mut raw = redis.raw();
    let held: Vec<(String, u64)> = sessions_of(&mut raw, "t:user:{alice}");
    assert_eq!(held, vec![("2".into(), T0 + 1), ("1".into(), T0 + 9)]);
    let ttl: i64 = query(&mut raw, "PTTL", "t:user:{alice}");
    assert!(ttl > 0 && ttl <= 30_000, "{ttl}");

    // 0 = unlimited, still tracked.
    for sid in 100..110 {
        assert_eq!(admit(&s, "carol", sid, 0, r, T0).await, Admitted);
    }
    assert_eq!(admit(&s, "carol", 100, 0, r, T0 + 1).await, Refreshed);
    let n: u64 = query(&mut raw, "ZCARD", "t:user:{carol}");
    assert_eq!(n, 10);
    assert!(s.healthy());
    assert_eq!(s.stats().errors, 0);
}

#[tokio::test]
async fn evict_oldest_ends_the_oldest_fleet_wide() {
    let (redis, edge_a, edge_b) = two_edges().await;
    let e = Policy::EvictOldest;
    assert_eq!(admit(&edge_a, "u", 11, 2, e, T0).await, Admitted);
    assert_eq!(admit(&edge_a, "u", 12, 2, e, T0 + 5).await, Admitted);
    // 11 refreshed on A after 12 arrived: 12 is now the oldest.
    assert_eq!(
        beat(&edge_a, "u", &[(11, T0 + 10)], T0 + 10).await,
        Beat::default()
    );
    assert_eq!(
        admit(&edge_b, "u", 13, 2, e, T0 + 20).await,
        Evicted(vec![12])
    );
    // Edge A learns it; the others are untouched.
    assert!(edge_a.is_ended(12).await.unwrap());
    assert!(!edge_a.is_ended(11).await.unwrap());
    assert!(!edge_a.is_ended(13).await.unwrap());
    // The evicted session is not brought back by its edge's heartbeat: the
    // heartbeat tells its edge to end it.
    assert_eq!(
        beat(&edge_a, "u", &[(12, T0 + 21)], T0 + 21).await,
        Beat {
            readded: 0,
            ended: vec![12]
        }
    );
    assert_eq!(admit(&edge_a, "u", 11, 2, e, T0 + 22).await, Refreshed);

    // Lowering the limit evicts as many as needed, oldest first.
    assert_eq!(
        admit(&edge_a, "u", 14, 1, e, T0 + 30).await,
        Evicted(vec![13, 11])
    );
    assert!(edge_b.is_ended(11).await.unwrap() && edge_b.is_ended(13).await.unwrap());

    // The evicted viewer coming back through the entry URL is a new admission
    // and its ended marker goes away.
    assert_eq!(
        admit(&edge_b, "u", 12, 1, e, T0 + 40).await,
        Evicted(vec![14])
    );
    assert!(!edge_a.is_ended(12).await.unwrap());
    assert!(edge_a.is_ended(14).await.unwrap());

    // The marker carries its own TTL.
    let ttl: i64 = query(&mut redis.raw(), "PTTL", "t:ended:{14}");
    assert!(ttl > 0 && ttl <= 3_600_000, "{ttl}");
}

#[tokio::test]
async fn sessions_expire_after_session_ttl_without_heartbeat() {
    let redis = RedisServer::start();
    let o = FleetOptions {
        session_ttl: Duration::from_millis(1000),
        ..opts("x:")
    };
    let s = store(&redis, o).await;
    let r = Policy::Reject;
    assert_eq!(admit(&s, "u", 1, 1, r, T0).await, Admitted);
    assert_eq!(
        beat(&s, "u", &[(1, T0 + 900)], T0 + 900).await,
        Beat::default()
    );
    // Seen at +900: still live at +1500 (600 ms idle)…
    assert_eq!(admit(&s, "u", 2, 1, r, T0 + 1500).await, Rejected);
    // …gone at +1900 (1000 ms idle = session_ttl).
    assert_eq!(admit(&s, "u", 2, 1, r, T0 + 1900).await, Admitted);
    // A heartbeat carrying a last-seen time past the expiry revives
    // nothing (the edge forgets such a session too)…
    assert_eq!(
        beat(&s, "u", &[(1, T0 + 900)], T0 + 1950).await,
        Beat::default()
    );
    // …nor keeps alive one already past its expiry when it arrives.
    assert_eq!(
        beat(&s, "u", &[(2, T0 + 1900)], T0 + 2900).await,
        Beat::default()
    );
    assert_eq!(admit(&s, "u", 1, 1, r, T0 + 2900).await, Admitted);

    // Redis drops the whole key once nobody heartbeats (real time, bounded).
    let short = store(
        &redis,
        FleetOptions {
            session_ttl: Duration::from_millis(150),
            ..opts("y:")
        },
    )
    .await;
    assert_eq!(admit(&short, "v", 1, 1, r, T0).await, Admitted);
    let mut raw = redis.raw();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let exists: bool = query(&mut raw, "EXISTS", "y:user:{v}");
        if !exists {
            break;
        }
        assert!(Instant::now() < deadline, "user key never expired");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_edges_enforce_one_session_atomically() {
    let redis = RedisServer::start();
    let edges = [
        store(&redis, opts("t:")).await,
        store(&redis, opts("t:")).await,
    ];
    // Sequential: a session admitted on A blocks a second one on B.
    assert_eq!(
        admit(&edges[0], "solo", 1, 1, Policy::Reject, T0).await,
        Admitted
    );
    assert_eq!(
        admit(&edges[1], "solo", 2, 1, Policy::Reject, T0 + 1).await,
        Rejected
    );
    assert_eq!(
        admit(&edges[1], "solo", 1, 1, Policy::Reject, T0 + 2).await,
        Refreshed
    );

    // 20 concurrent newcomers, split over both edges: exactly one wins.
    let start = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20u64)
        .map(|i| {
            let edge = edges[usize::from(i % 2 == 1)].clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                admit(&edge, "race", 1000 + i, 1, Policy::Reject, T0).await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let admitted = outcomes.iter().filter(|a| **a == Admitted).count();
    let rejected = outcomes.iter().filter(|a| **a == Rejected).count();
    assert_eq!((admitted, rejected), (1, 19), "{outcomes:?}");
    let n: u64 = query(&mut redis.raw(), "ZCARD", "t:user:{race}");
    assert_eq!(n, 1);
}

#[tokio::test]
async fn end_kicks_a_session_everywhere() {
    let (_redis, edge_a, edge_b) = two_edges().await;
    let r = Policy::Reject;
    assert_eq!(admit(&edge_a, "u", 1, 1, r, T0).await, Admitted);
    assert_eq!(admit(&edge_b, "u", 2, 1, r, T0 + 1).await, Rejected);
    edge_b.end(1, Some("u")).await.unwrap();
    assert!(edge_a.is_ended(1).await.unwrap());
    assert_eq!(
        beat(&edge_a, "u", &[(1, T0 + 2)], T0 + 2).await.ended,
        vec![1]
    );
    // The slot is free at once.
    assert_eq!(admit(&edge_b, "u", 2, 1, r, T0 + 3).await, Admitted);
    // A capability of the kicked session does not bring it back on an edge
    // new to it; only a fresh entry request may, as a newcomer within the
    // limit.
    assert_eq!(readmit(&edge_b, "u", 1, 2, r, T0 + 4).await, Ended);
    assert_eq!(readmit(&edge_b, "u", 3, 2, r, T0 + 4).await, Admitted);
    assert_eq!(
        admit(&edge_b, "u", 1, 2, r, T0 + 5).await,
        Rejected,
        "the kicked viewer is a newcomer, over the limit"
    );
    assert_eq!(
        readmit(&edge_b, "u", 1, 2, r, T0 + 5).await,
        Ended,
        "a refused entry clears nothing"
    );
    // Without the user, only the marker is written (anonymous sessions).
    edge_a.end(77, None).await.unwrap();
    assert!(edge_b.is_ended(77).await.unwrap());
    // Ending twice is fine.
    edge_a.end(77, None).await.unwrap();
}

#[tokio::test]
async fn the_heartbeat_gives_a_restarted_redis_its_playing_sessions_back() {
    let (mut redis, edge_a, edge_b) = two_edges().await;
    let r = Policy::Reject;
    assert_eq!(admit(&edge_a, "u", 1, 1, r, T0).await, Admitted);
    // Redis restarts empty: it has forgotten session 1.
    redis.kill();
    redis.spawn();
    // The first call after the restart meets the dead connection and is
    // sent again on a new one: it neither fails open nor errs.
    assert_eq!(
        beat(&edge_a, "u", &[(1, T0 + 5)], T0 + 5).await,
        Beat {
            readded: 1,
            ended: vec![]
        }
    );
    assert_eq!(edge_a.stats().readopted, 1);
    assert_eq!(edge_a.stats().fail_open, 0);
    // The limit is exact again: a second session anywhere is refused.
    assert_eq!(admit(&edge_b, "u", 2, 1, r, T0 + 6).await, Rejected);
    assert_eq!(edge_b.stats().fail_open, 0);
    // Idempotent: the next beat only refreshes; the score is the last-seen.
    assert_eq!(
        beat(&edge_a, "u", &[(1, T0 + 7)], T0 + 7).await,
        Beat::default()
    );
    let held: Vec<(String, u64)> = sessions_of(&mut redis.raw(), "t:user:{u}");
    assert_eq!(held, vec![("1".into(), T0 + 7)]);
    // A kick written without the user (an edge that did not know it) still
    // reaches the edge serving it, and frees the slot.
    edge_b.end(1, None).await.unwrap();
    assert_eq!(
        beat(&edge_a, "u", &[(1, T0 + 8)], T0 + 8).await.ended,
        vec![1]
    );
    assert_eq!(admit(&edge_b, "u", 2, 1, r, T0 + 9).await, Admitted);
    // A user with more sessions on one edge than one script call carries.
    let many: Vec<(u64, u64)> = (100..700).map(|sid| (sid, T0 + 10)).collect();
    let beat = beat(&edge_a, "w", &many, T0 + 10).await;
    assert_eq!((beat.readded, beat.ended), (600, vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_edge_hears_of_a_kick_or_an_eviction_as_it_happens() {
    let (redis, edge_a, edge_b) = two_edges().await;
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
    let (ended_tx, mut ended_rx) = tokio::sync::mpsc::unbounded_channel();
    let watcher = {
        let edge_b = edge_b.clone();
        tokio::spawn(async move {
            edge_b
                .watch_ended(
                    || {
                        let _ = subscribed_tx.send(());
                    },
                    |sid| {
                        let _ = ended_tx.send(sid);
                    },
                )
                .await
        })
    };
    subscribed_rx.await.unwrap();
    edge_a.end(5, None).await.unwrap();
    assert_eq!(ended_rx.recv().await, Some(5));
    let e = Policy::EvictOldest;
    admit(&edge_a, "u", 6, 1, e, T0).await;
    assert_eq!(admit(&edge_a, "u", 7, 1, e, T0 + 1).await, Evicted(vec![6]));
    assert_eq!(ended_rx.recv().await, Some(6));
    // Other traffic on the channel is ignored.
    redis::cmd("PUBLISH")
        .arg("t:ended")
        .arg("not a session")
        .exec(&mut redis.raw())
        .unwrap();
    edge_a.end(8, None).await.unwrap();
    assert_eq!(ended_rx.recv().await, Some(8));
    // Redis going away ends the watch with an error, for the caller to retry.
    drop(redis);
    let err = tokio::time::timeout(Duration::from_secs(10), watcher)
        .await
        .expect("the watch outlived its connection")
        .unwrap();
    assert!(matches!(err, FleetError::Unavailable(_)), "{err:?}");
}

/// Wait, bounded, until `store` reaches Redis again (the manager reconnects
/// on its own; each failed call starts a new attempt).
async fn wait_recovered(s: &FleetStore) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.is_ended(0).await.is_err() {
        assert!(Instant::now() < deadline, "store never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(s.healthy());
}

#[tokio::test]
async fn redis_down_fails_open_or_closed_without_hanging_then_recovers() {
    let r = Policy::Reject;
    let mut redis = RedisServer::start();
    let op_timeout = Duration::from_millis(300);
    let open = store(&redis, failing(FailMode::Open)).await;
    let closed = store(&redis, failing(FailMode::Closed)).await;
    assert_eq!(admit(&open, "u", 1, 1, r, T0).await, Admitted);
    assert_eq!(admit(&closed, "u", 2, 1, r, T0).await, Rejected);
    // A bound that catches a hang but not a slow CI machine.
    let bound = op_timeout * 3 + Duration::from_secs(1);

    // 1. Frozen (SIGSTOP): the TCP connection stays up but nothing answers,
    //    so only op_timeout stands between the caller and a hang.
    nix::sys::signal::kill(redis.pid(), nix::sys::signal::Signal::SIGSTOP).unwrap();
    let t = Instant::now();
    assert_eq!(admit(&open, "u", 3, 1, r, T0).await, Admitted);
    assert!(
        t.elapsed() >= op_timeout && t.elapsed() < bound,
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let err = closed.admit("u", 3, 1, r, T0).await.unwrap_err();
    assert!(matches!(err, FleetError::Unavailable(_)), "{err:?}");
    assert!(t.elapsed() < bound, "{:?}", t.elapsed());
    assert!(!open.healthy() && !closed.healthy());
    let t = Instant::now();
    assert!(closed.is_ended(1).await.is_err());
    assert!(closed.beat("u", &[(1, T0)], T0).await.is_err());
    assert!(closed.end(1, Some("u")).await.is_err());
    assert!(t.elapsed() < bound * 3, "{:?}", t.elapsed());
    nix::sys::signal::kill(redis.pid(), nix::sys::signal::Signal::SIGCONT).unwrap();
    wait_recovered(&open).await;
    wait_recovered(&closed).await;

    // 2. Killed: connection refused, answered well within op_timeout.
    redis.kill();
    for i in 0..5 {
        let t = Instant::now();
        assert_eq!(admit(&open, "u", 10 + i, 1, r, T0).await, Admitted);
        let err = closed.admit("u", 10 + i, 1, r, T0).await.unwrap_err();
        assert!(matches!(err, FleetError::Unavailable(_)), "{err:?}");
        assert!(t.elapsed() < bound, "{:?}", t.elapsed());
    }
    let (so, sc) = (open.stats(), closed.stats());
    assert!(!so.healthy && !sc.healthy);
    assert_eq!((so.fail_open, so.fail_closed), (6, 0));
    assert_eq!((sc.fail_open, sc.fail_closed), (0, 6));
    assert!(sc.errors >= 9, "{sc:?}");

    // 3. Restarted on the same port (empty: no persistence): the same stores
    //    recover and enforce limits again.
    redis.spawn();
    wait_recovered(&open).await;
    wait_recovered(&closed).await;
    assert_eq!(admit(&closed, "u", 20, 1, r, T0).await, Admitted);
    assert_eq!(admit(&open, "u", 21, 1, r, T0).await, Rejected);
    assert_eq!(open.stats().fail_open, 6);
}

#[tokio::test]
async fn a_lazy_store_starts_while_redis_is_down_and_connects_when_it_is_up() {
    let r = Policy::Reject;
    let mut redis = RedisServer::start();
    redis.kill();
    let open = FleetStore::new(&redis.url(), opts("t:")).unwrap();
    let closed = FleetStore::new(&redis.url(), failing(FailMode::Closed)).unwrap();
    assert_eq!(admit(&open, "u", 1, 1, r, T0).await, Admitted);
    assert!(closed.admit("u", 1, 1, r, T0).await.is_err());
    assert!(!open.healthy() && !closed.healthy());
    redis.spawn();
    wait_recovered(&open).await;
    wait_recovered(&closed).await;
    assert_eq!(admit(&closed, "u", 1, 1, r, T0).await, Admitted);
    assert_eq!(admit(&open, "u", 2, 1, r, T0).await, Rejected);
}

#[tokio::test]
async fn connect_errors_are_typed() {
    // Nothing listens on a port we just closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = FleetStore::connect(&format!("redis://127.0.0.1:{port}/"), opts("t:"))
        .await
        .unwrap_err();
    assert!(matches!(err, FleetError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("refused"), "{err}");
    let err = FleetStore::connect(&format!("redis://:hunter2@127.0.0.1:{port}/"), opts("t:"))
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2") && !format!("{err:?}").contains("hunter2"));
    let err = FleetStore::connect("http://nope", opts("t:"))
        .await
        .unwrap_err();
    assert!(matches!(err, FleetError::Config(_)), "{err:?}");
    let err = FleetStore::connect("redis://127.0.0.1:1/", opts("bad{prefix"))
        .await
        .unwrap_err();
    assert!(matches!(err, FleetError::Config(_)), "{err:?}");
}

/// Admission rate against the local redis-server (not a pass/fail test):
/// `cargo test --release --test fleet -- --ignored --nocapture admit_rate`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints admits/s"]
async fn admit_rate() {
    let redis = RedisServer::start();
    let s = store(&redis, opts("b:")).await;
    const N: u64 = 20_000;
    // Sequential: one admit at a time, 1,000 users with max_sessions 3.
    let t = Instant::now();
    for i in 0..N {
        admit(
            &s,
            &format!("user{}", i % 1000),
            i,
            3,
            Policy::EvictOldest,
            T0 + i,
        )
        .await;
    }
    let seq = N as f64 / t.elapsed().as_secs_f64();
    // 16 concurrent tasks on the one multiplexed connection.
    let t = Instant::now();
    let tasks: Vec<_> = (0..16u64)
        .map(|task| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in (task..N).step_by(16) {
                    admit(
                        &s,
                        &format!("user{}", i % 1000),
                        N + i,
                        3,
                        Policy::EvictOldest,
                        T0 + N + i,
                    )
                    .await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let conc = N as f64 / t.elapsed().as_secs_f64();
    assert_eq!(s.stats().errors, 0);
    println!(
        "fleet admit: sequential {seq:.0} admits/s, 16 concurrent {conc:.0} admits/s (N = {N})"
    );
}
