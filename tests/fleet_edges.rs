//! Two tollgate processes sharing one real Redis (`sessions.store`) enforce a
//! user's session limit between them (issue 5, acceptance 2): the backend
//! says `X-Max-Sessions: 1`, a session on edge A keeps edge B from admitting
//! a second one; with Redis stopped each edge follows `store_fail`; when
//! Redis comes back, limits hold again.
//!
//! A store that forgets (issue 11, SPEC §6): a Redis restarted empty loses
//! no playing viewer and the limit is exact again within one heartbeat;
//! `/healthz` reports a dead or frozen store within a second; a kick or an
//! eviction on one edge ends playback on the other within 2 s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::process::Tollgate;
use common::redis::RedisServer;
use common::*;
use http::{Request, Response};
use hyper::body::Incoming;

/// A Flussonic-style backend: every viewer is alice, one session at a time.
async fn backend() -> TestOrigin {
    start_origin(|_req: Request<Incoming>| async {
        let mut r = Response::new(full("ok"));
        r.headers_mut().insert("x-userid", "alice".parse().unwrap());
        r.headers_mut()
            .insert("x-max-sessions", "1".parse().unwrap());
        r
    })
    .await
}

fn config(origin: SocketAddr, backend: SocketAddr, redis: &str, fail: &str) -> String {
    ConfigBuilder::new(origin)
        .sessions(&format!(
            "store = \"{redis}\"\nstore_fail = \"{fail}\"\nstore_timeout = \"300ms\"\n\
             idle_timeout = \"30s\""
        ))
        .live(&["backend"])
        .backend(&format!("http://{backend}/auth"), "")
        .build()
}

async fn code(edge: &Tollgate, path: &str) -> (u16, String) {
    let r = h1_client().get(edge.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_edges_share_one_limit_and_follow_the_fail_mode() {
    let mut redis = RedisServer::start();
    let fleet = Fleet::start(&redis).await;
    let a = fleet.edge_failing("open").await;
    let b = fleet.edge_failing("closed").await;

    // Alice on edge A, channel 1: admitted; reloads are the same session.
    assert_eq!(code(&a, "/live/ch1/index.m3u8?token=t").await.0, 200);
    assert_eq!(code(&a, "/live/ch1/index.m3u8?token=t").await.0, 200);
    // A second session anywhere in the fleet is over the limit.
    let (status, body) = code(&b, "/live/ch2/index.m3u8?token=t").await;
    assert_eq!(
        (status, body.as_str()),
        (403, "{\"error\":\"session_limit\"}\n")
    );
    let (status, _) = code(&a, "/live/ch3/index.m3u8?token=t").await;
    assert_eq!(status, 403, "edge A counts the fleet, not itself");

    // Redis down: edge A (fail open) admits new sessions, edge B (closed) refuses.
    redis.kill();
    assert_eq!(code(&a, "/live/ch4/index.m3u8?token=t").await.0, 200);
    let (status, body) = code(&b, "/live/ch5/index.m3u8?token=t").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "{\"error\":\"store_unavailable\"}\n")
    );
    // A session already playing keeps playing on both.
    assert_eq!(code(&a, "/live/ch1/index.m3u8?token=t").await.0, 200);

    // Redis back (empty: nothing persisted): the limit holds again.
    redis.spawn();
    eventually("edge B to recover once Redis is back", async || match code(
        &b,
        "/live/ch6/index.m3u8?token=t",
    )
    .await
    {
        (200, _) => Ok(()),
        other => Err(format!("{other:?}")),
    })
    .await;
    let (status, body) = code(&a, "/live/ch7/index.m3u8?token=t").await;
    assert_eq!(
        (status, body.as_str()),
        (403, "{\"error\":\"session_limit\"}\n")
    );
}

/// The master both edges share, so a capability minted on one plays on the other.
const MASTER: &str = "hex:000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f";

/// [`config`] plus a shared `[keys] master`, an admin token and `sessions` keys.
fn fleet_config(origin: SocketAddr, backend: SocketAddr, redis: &str, sessions: &str) -> String {
    ConfigBuilder::new(origin)
        .admin("test-admin-token")
        .section("keys", &format!("master = \"{MASTER}\""))
        .sessions(&format!(
            "store = \"{redis}\"\nstore_timeout = \"300ms\"\n{sessions}"
        ))
        .live(&["backend"])
        .backend(&format!("http://{backend}/auth"), "")
        .build()
}

/// What the edges of a test share besides Redis: the origin, the auth
/// backend, and the Redis URL (the same across a restart on its port).
struct Fleet {
    origin: TestOrigin,
    auth: TestOrigin,
    redis: String,
}

impl Fleet {
    async fn start(redis: &RedisServer) -> Self {
        Self {
            origin: content_origin().await,
            auth: backend().await,
            redis: redis.url(),
        }
    }

    /// An edge with [`config`] and the store's fail mode `fail`.
    async fn edge_failing(&self, fail: &str) -> Tollgate {
        Tollgate::start(&config(self.origin.addr, self.auth.addr, &self.redis, fail)).await
    }

    /// An edge with [`fleet_config`] and these `[sessions]` keys.
    async fn edge(&self, sessions: &str) -> Tollgate {
        let text = fleet_config(self.origin.addr, self.auth.addr, &self.redis, sessions);
        Tollgate::start(&text).await
    }
}

/// Call `edge`'s admin API with the admin token: status and body.
async fn admin(edge: &Tollgate, method: &str, path: &str) -> (u16, String) {
    admin_call(edge, method, path, Some("test-admin-token"), None).await
}

/// Enter channel `ch` on `edge` as alice; the path of its segment, with the
/// capability, which plays on every edge of the fleet.
async fn enter(edge: &Tollgate, ch: &str) -> String {
    let (status, body) = code(edge, &format!("/live/{ch}/index.m3u8?token=t")).await;
    assert_eq!(status, 200, "{body}");
    let seg = body
        .lines()
        .find(|l| l.starts_with("seg-7.ts?"))
        .unwrap_or_else(|| panic!("no segment in {body}"));
    format!("/live/{ch}/{seg}")
}

/// The members of alice's session set in Redis, with their scores.
fn held(redis: &RedisServer) -> Vec<(String, u64)> {
    ::redis::cmd("ZRANGE")
        .arg("tollgate:user:{alice}")
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(&mut redis.raw())
        .unwrap()
}

fn unix_ms() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(d.as_millis()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_restarted_empty_evicts_no_viewer_and_the_limit_is_exact_within_one_heartbeat() {
    let mut redis = RedisServer::start();
    let fleet = Fleet::start(&redis).await;
    // idle_timeout 3 s: before issue 11 an edge heartbeat every 1 s, and the
    // first one after the restart evicted the viewer.
    let sessions = "idle_timeout = \"3s\"\nstore_heartbeat = \"300ms\"";
    let a = fleet.edge(sessions).await;
    let b = fleet.edge(sessions).await;

    // Alice plays channel 1 on edge A; edge B refuses her a second session.
    let playing = enter(&a, "ch1").await;
    assert_eq!(code(&a, &playing).await.0, 200);
    let sid = match held(&redis).as_slice() {
        [(sid, _)] => sid.clone(),
        other => panic!("{other:?}"),
    };
    let refused = code(&b, "/live/ch2/index.m3u8?token=t").await;
    assert_eq!(refused, (403, error_body("session_limit")));

    // Redis restarts empty (no persistence): it forgets alice's session.
    redis.kill();
    redis.spawn();
    let restarted = unix_ms();
    assert!(held(&redis).is_empty());

    // Edge A's next heartbeat registers it again (same id)…
    eventually(
        "edge A to re-register the playing session",
        async || match held(&redis).as_slice() {
            [(s, _)] if *s == sid => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    // …so the limit is exact again: edge B refuses the second viewer.
    let refused = code(&b, "/live/ch2/index.m3u8?token=t").await;
    assert_eq!(refused, (403, error_body("session_limit")));

    // The viewer plays on through heartbeats for 2 s after the restart
    // (its score in Redis is its last request, carried by each heartbeat),
    // never told session_evicted.
    let deadline = Deadline::new(
        Duration::from_secs(20),
        "heartbeats to carry the viewer's requests",
    );
    loop {
        let (status, body) = code(&a, &playing).await;
        assert_eq!(status, 200, "the playing viewer was refused: {body}");
        let seen = held(&redis);
        if let [(s, score)] = seen.as_slice()
            && *s == sid
            && *score >= restarted + 2000
        {
            break;
        }
        deadline.tick(seen).await;
    }
    let refused = code(&b, "/live/ch2/index.m3u8?token=t").await;
    assert_eq!(refused, (403, error_body("session_limit")));
}

/// `/healthz`'s `store.healthy`.
async fn store_healthy(edge: &Tollgate) -> bool {
    let body = get_text(&edge.admin_url("/healthz")).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["store"]["healthy"]
        .as_bool()
        .unwrap_or_else(|| panic!("no store.healthy in {body}"))
}

/// Poll `/healthz` until `store.healthy` is `want`; how long that took.
async fn health_becomes(edge: &Tollgate, want: bool, within: Duration) -> Duration {
    let t = Instant::now();
    let deadline = Deadline::new(within, format!("store.healthy = {want}"));
    loop {
        let healthy = store_healthy(edge).await;
        if healthy == want {
            return t.elapsed();
        }
        deadline.tick(healthy).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_reports_a_dead_or_frozen_store_within_a_second() {
    let mut redis = RedisServer::start();
    let fleet = Fleet::start(&redis).await;
    // No viewers at all: nothing but the edge itself notices Redis is gone.
    let edge = fleet.edge("").await;
    health_becomes(&edge, true, Duration::from_secs(10)).await;

    // The contract (SPEC §6) is 1 s; 0.5 s more absorbs a loaded test machine.
    let bound = Duration::from_millis(1500);
    redis.kill();
    let took = health_becomes(&edge, false, Duration::from_secs(10)).await;
    eprintln!("a dead store reported after {took:?}");
    assert!(took < bound, "a dead store reported after {took:?}");

    redis.spawn();
    health_becomes(&edge, true, Duration::from_secs(10)).await;
    // Frozen (SIGSTOP): the connection stays up but nothing answers.
    nix::sys::signal::kill(redis.pid(), nix::sys::signal::Signal::SIGSTOP).unwrap();
    let took = health_becomes(&edge, false, Duration::from_secs(10)).await;
    nix::sys::signal::kill(redis.pid(), nix::sys::signal::Signal::SIGCONT).unwrap();
    eprintln!("a frozen store reported after {took:?}");
    assert!(took < bound, "a frozen store reported after {took:?}");
    health_becomes(&edge, true, Duration::from_secs(10)).await;
}

/// Poll `path` on `edge` until it answers 403 `session_evicted`; how long
/// that took. Every answer before it must be a 200 (still playing).
async fn ended_on(edge: &Tollgate, path: &str) -> Duration {
    let t = Instant::now();
    let deadline = Deadline::new(Duration::from_secs(20), format!("{path} to end"));
    loop {
        let (status, body) = code(edge, path).await;
        if (status, &body) == (403, &error_body("session_evicted")) {
            return t.elapsed();
        }
        assert_eq!(status, 200, "{body}");
        deadline.tick(status).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kick_or_an_eviction_on_one_edge_ends_playback_on_the_other_within_two_seconds() {
    let redis = RedisServer::start();
    let fleet = Fleet::start(&redis).await;
    // The default heartbeat (5 s): what reaches the other edge sooner is
    // not the heartbeat.
    let sessions = "on_limit = \"evict_oldest\"";
    let a = fleet.edge(sessions).await;
    let b = fleet.edge(sessions).await;
    // SPEC §6: 2 s; seen in milliseconds.
    let bound = Duration::from_secs(2);

    // Alice enters on A; her player's requests land on both edges.
    let playing = enter(&a, "ch1").await;
    assert_eq!(code(&a, &playing).await.0, 200);
    assert_eq!(code(&b, &playing).await.0, 200);
    let list = admin(&a, "GET", "/api/v1/sessions").await;
    let v: serde_json::Value = serde_json::from_str(&list.1).unwrap();
    let id = v["sessions"][0]["id"].as_str().unwrap().to_owned();
    // An operator kicks her on A: B stops serving her.
    let kicked = admin(&a, "DELETE", &format!("/api/v1/sessions/{id}")).await;
    assert_eq!(kicked.0, 204, "{}", kicked.1);
    let took = ended_on(&b, &playing).await;
    eprintln!("the kick reached edge B after {took:?}");
    assert!(took < bound, "the kick reached edge B after {took:?}");

    // Alice plays channel 2 on B; entering channel 3 on A evicts it (one
    // session at a time, evict_oldest): B stops serving channel 2.
    let second = enter(&b, "ch2").await;
    assert_eq!(code(&b, &second).await.0, 200);
    let third = enter(&a, "ch3").await;
    let took = ended_on(&b, &second).await;
    eprintln!("the eviction reached edge B after {took:?}");
    assert!(took < bound, "the eviction reached edge B after {took:?}");

    // A kick also holds on an edge that had not seen the session yet: the
    // kicked capability does not start it again there.
    let list = admin(&a, "GET", "/api/v1/sessions?channel=ch3").await;
    let v: serde_json::Value = serde_json::from_str(&list.1).unwrap();
    let id = v["sessions"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/sessions/{id}");
    let kicked = admin(&a, "DELETE", &path).await;
    assert_eq!(kicked.0, 204, "{}", kicked.1);
    assert_eq!(code(&b, &third).await, (403, error_body("session_evicted")));
    assert_eq!(code(&a, &third).await, (403, error_body("session_evicted")));
}
