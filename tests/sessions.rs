//! Sessions (SPEC §3.2, docs/hls.md §2): one viewer on one channel is one
//! session however often it reloads, switches variant or reconnects; the
//! session ends after `idle_timeout`; a capability still valid brings it back.
//! Counted through the `tollgate_sessions` gauge and
//! `tollgate_sessions_created_total`, as an operator would watch them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

const MASTER: &str = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nhi/media.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=400000\nlo/media.m3u8\n";
const MEDIA: &str =
    "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n#EXTINF:2.0,\nseg-3.ts\n";

async fn origin() -> TestOrigin {
    start_origin(|req: http::Request<hyper::body::Incoming>| async move {
        let p = req.uri().path();
        let body = if p.ends_with("index.m3u8") {
            MASTER
        } else if p.ends_with(".m3u8") {
            MEDIA
        } else {
            "segment"
        };
        http::Response::new(full(body))
    })
    .await
}

fn config(origin: std::net::SocketAddr) -> String {
    ConfigBuilder::new(origin)
        .section(
            "keys",
            "master = \"hex:000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f\"",
        )
        .sessions("idle_timeout = \"1s\"")
        .live(&["token"])
        .user("alice", &["alice-token"], &["*"])
        .user("bob", &["bob-token"], &["*"])
        .build()
}

/// The first child URI of a playlist (relative to `base`).
fn child(base: &str, playlist: &str) -> String {
    let line = playlist
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .unwrap();
    format!("{base}{line}")
}

async fn gauge(proxy: &TestProxy) -> (f64, f64) {
    let m = get_text(&proxy.admin_url("/metrics")).await;
    (
        metric(&m, "tollgate_sessions "),
        metric(&m, "tollgate_sessions_created_total "),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn one_viewer_is_one_session_until_idle() {
    let origin = origin().await;
    // The proxy's clock stands still until the test moves it: no session
    // goes idle behind the assertions' back however slow the machine is.
    let proxy = start_proxy_on_manual_clock(&config(origin.addr)).await;
    let c = h1_client();

    // Entry, reload, both variants, a segment, and a new connection: one session.
    let master = get_text(&proxy.url("/live/ch1/index.m3u8?token=alice-token")).await;
    let again = get_text(&proxy.url("/live/ch1/index.m3u8?token=alice-token")).await;
    assert!(master.contains("hi/media.m3u8?tg="), "{master}");
    assert!(again.contains("lo/media.m3u8?tg="), "{again}");
    let hi = child(&proxy.url("/live/ch1/"), &master);
    let media = get_text(&hi).await;
    let lo = master
        .lines()
        .find(|l| l.starts_with("lo/"))
        .map(|l| proxy.url(&format!("/live/ch1/{l}")))
        .unwrap();
    assert_eq!(c.get(&lo).send().await.unwrap().status(), 200);
    let seg = child(&proxy.url("/live/ch1/hi/"), &media);
    let fresh = h1_client(); // a reconnect: another connection pool
    let r = fresh.get(&seg).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "segment");
    let (live, created) = gauge(&proxy).await;
    assert_eq!((live, created), (1.0, 1.0), "one viewer, one session");

    // Another user on the same channel is another session.
    get_text(&proxy.url("/live/ch1/index.m3u8?token=bob-token")).await;
    assert_eq!(gauge(&proxy).await, (2.0, 2.0));

    // Idle: both sessions end (at the sweeper's next round).
    proxy.control.clock.advance(Duration::from_secs(2));
    eventually("sessions to expire after idle_timeout", async || {
        let g = gauge(&proxy).await;
        if g.0 == 0.0 {
            Ok(())
        } else {
            Err(format!("{g:?}"))
        }
    })
    .await;

    // Alice's capability is still valid: her player comes back to the same
    // session id, counted as a new session.
    let r = c.get(&seg).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The gauge is also set by the sweeper, which may have counted the table
    // just before this request: wait for its next round.
    eventually("the returning session to be counted", async || {
        let g = gauge(&proxy).await;
        if g == (1.0, 3.0) {
            Ok(())
        } else {
            Err(format!("{g:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn capabilities_are_per_channel_and_tamper_proof() {
    let origin = origin().await;
    let proxy = start_proxy(&config(origin.addr)).await;
    let c = h1_client();
    let master = get_text(&proxy.url("/live/ch1/index.m3u8?token=alice-token")).await;
    let line = master.lines().find(|l| l.starts_with("hi/")).unwrap();
    let cap = line.split_once("tg=").unwrap().1;
    // The viewer's token never appears in child URIs.
    assert!(!master.contains("alice-token"), "{master}");
    for (target, want) in [
        (format!("/live/ch1/{line}"), 200),
        (format!("/live/ch2/hi/media.m3u8?tg={cap}"), 403),
        (
            format!("/live/ch1/hi/media.m3u8?tg={}x", &cap[..cap.len() - 1]),
            403,
        ),
        ("/live/ch1/hi/media.m3u8?tg=".to_owned(), 403),
        // A bad capability is refused even with good entry credentials.
        (
            format!("/live/ch1/index.m3u8?token=alice-token&tg={cap}A"),
            403,
        ),
    ] {
        let r = c.get(proxy.url(&target)).send().await.unwrap();
        assert_eq!(r.status(), want, "{target}");
        if want == 403 {
            assert_eq!(r.text().await.unwrap(), "{\"error\":\"forbidden\"}\n");
        }
    }
}

/// Reloads seconds apart, within one capability step (`capability_ttl / 8`),
/// carry the same capability, so the key URIs in them, and players' key
/// caches, stay put: one key request per key period, not per reload.
#[tokio::test(flavor = "multi_thread")]
async fn reloads_within_a_step_reuse_the_capability() {
    let origin = origin().await;
    let text = config(origin.addr).replace(
        "idle_timeout = \"1s\"",
        "idle_timeout = \"30s\"\ncapability_ttl = \"80s\"",
    );
    let proxy = start_proxy_on_manual_clock(&text).await;
    let master = get_text(&proxy.url("/live/ch1/index.m3u8?token=alice-token")).await;
    let media = child(&proxy.url("/live/ch1/"), &master);
    // Three reloads a second apart on the proxy's clock: each in another
    // second, so a capability minted per second would differ every time; a
    // 10 s step is crossed at most once.
    let mut bodies = Vec::new();
    for i in 0..3 {
        if i > 0 {
            proxy.control.clock.advance(Duration::from_secs(1));
        }
        bodies.push(get_text(&media).await);
    }
    assert!(bodies[0].contains("seg-3.ts?tg="), "{}", bodies[0]);
    assert!(
        bodies[0] == bodies[1] || bodies[1] == bodies[2],
        "every reload carried another capability: {bodies:#?}"
    );
}
