//! Two tollgate processes sharing one real Redis (`sessions.store`) enforce a
//! user's session limit between them (issue 5, acceptance 2): the backend
//! says `X-Max-Sessions: 1`, a session on edge A keeps edge B from admitting
//! a second one; with Redis stopped each edge follows `store_fail`; when
//! Redis comes back, limits hold again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

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
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
[admin]
listen = "127.0.0.1:0"
[sessions]
store = "{redis}"
store_fail = "{fail}"
store_timeout = "300ms"
idle_timeout = "30s"
[[origin]]
name = "o"
url = "http://{origin}"
[[route]]
name = "live"
prefix = "/live/"
origin = "o"
channel = 1
auth = ["backend"]
[[auth.backend]]
url = "http://{backend}/auth"
"#
    )
}

async fn code(edge: &Tollgate, path: &str) -> (u16, String) {
    let r = h1_client().get(edge.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_edges_share_one_limit_and_follow_the_fail_mode() {
    let mut redis = RedisServer::start();
    let origin = content_origin().await;
    let auth = backend().await;
    let a = Tollgate::start(&config(origin.addr, auth.addr, &redis.url(), "open")).await;
    let b = Tollgate::start(&config(origin.addr, auth.addr, &redis.url(), "closed")).await;

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
