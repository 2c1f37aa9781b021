//! `[rate_limit]` through the real binary (SPEC §8): wrong-token guesses
//! from one address meet 429 `rate_limited` with `Retry-After` once its
//! failures are used up, and then even the right token is refused without
//! being looked at (a guess learns nothing); entry requests past their
//! burst are 429 too; `tollgate_rate_limited_total{kind}` counts both;
//! another address (and the default's exempt loopback) is not limited.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::process::{Tollgate, client};
use common::*;
use tokio_util::sync::CancellationToken;
use tollgate::simorigin::{SimOrigin, SimOriginOptions};

async fn origin() -> (std::net::SocketAddr, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(SimOrigin::new(SimOriginOptions::default()).serve(listener, stop.clone()));
    (addr, stop)
}

/// A request whose client address is `ip` (the proxy trusts loopback's
/// `X-Forwarded-For`).
async fn from(tg: &Tollgate, ip: &str, path: &str) -> (u16, Option<String>, String) {
    let r = h1_client()
        .get(tg.url(path))
        .header("x-forwarded-for", ip)
        .send()
        .await
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), retry, r.text().await.unwrap())
}

fn config(origin: std::net::SocketAddr, state: &std::path::Path, limits: &str) -> String {
    ConfigBuilder::new(origin)
        .admin("test-admin-token")
        .state(state)
        .server("trusted_proxies = [\"127.0.0.1/32\"]")
        .section("rate_limit", limits)
        .route(Route::live(&["token"]))
        .extra("[[user]]\nid = \"ann\"\ntokens = [\"ann-token\"]\npackages = [\"*\"]\n")
        .build()
}

#[tokio::test(flavor = "multi_thread")]
async fn guesses_and_floods_meet_429() {
    let (addr, _stop) = origin().await;
    let state = tempfile::tempdir().unwrap();
    let limits = "exempt = []\nfailed_per_minute = 1\nfailed_burst = 5\n\
                  entry_per_second = 1\nentry_burst = 1000";
    let tg = Tollgate::start(&config(addr, state.path(), limits)).await;
    let guesser = "198.51.100.7";
    // Five failures are the burst; the sixth fails and empties the bucket.
    for i in 0..6 {
        let (s, retry, body) = from(
            &tg,
            guesser,
            &format!("/live/ch1/index.m3u8?token=guess{i}"),
        )
        .await;
        assert_eq!(
            (s, retry, body),
            (403, None, error_body("forbidden")),
            "guess {i}"
        );
    }
    // From now on every guess, and the right token too, is 429.
    for token in ["guess7", "ann-token"] {
        let (s, retry, body) =
            from(&tg, guesser, &format!("/live/ch1/index.m3u8?token={token}")).await;
        assert_eq!((s, body), (429, error_body("rate_limited")), "{token}");
        let retry: u32 = retry.expect("Retry-After").parse().unwrap();
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
    }
    // The channel list is an entry too.
    let (s, _, _) = from(&tg, guesser, "/playlist.m3u8?token=ann-token").await;
    assert_eq!(s, 429);
    // Another address plays.
    let (s, _, body) = from(&tg, "198.51.100.8", "/live/ch1/index.m3u8?token=ann-token").await;
    assert_eq!(s, 200, "{body}");
    let metrics = tg.metrics(&client()).await;
    assert!(
        metrics.contains("tollgate_rate_limited_total{kind=\"failed_auth\"} 3"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn entry_floods_meet_429_and_loopback_is_exempt_by_default() {
    let (addr, _stop) = origin().await;
    let state = tempfile::tempdir().unwrap();
    let limits = "entry_per_second = 1\nentry_burst = 3";
    let tg = Tollgate::start(&config(addr, state.path(), limits)).await;
    let path = "/live/ch1/index.m3u8?token=ann-token";
    let mut entry = String::new();
    for _ in 0..3 {
        let (s, _, body) = from(&tg, "203.0.113.9", path).await;
        assert_eq!(s, 200);
        entry = body;
    }
    let (s, retry, body) = from(&tg, "203.0.113.9", path).await;
    assert_eq!(
        (s, retry.as_deref(), body),
        (429, Some("1"), error_body("rate_limited"))
    );
    // The session it opened goes on: capabilities are not entries.
    let child = entry
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap();
    for _ in 0..5 {
        let (s, _, body) = from(&tg, "203.0.113.9", &format!("/live/ch1/{child}")).await;
        assert_eq!(s, 200, "{body}");
    }
    // Loopback (no X-Forwarded-For) is exempt by default.
    for _ in 0..20 {
        assert_eq!(fetch(&tg, path).await.0, 200);
    }
    let metrics = tg.metrics(&client()).await;
    assert!(
        metrics.contains("tollgate_rate_limited_total{kind=\"entry\"} 1"),
        "{metrics}"
    );
}
