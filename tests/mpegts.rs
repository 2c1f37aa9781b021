//! HTTP MPEG-TS through the real binary (SPEC §8): on a `kind = "mpegts"`
//! route the session is the open response. ffmpeg decodes the proxied
//! stream; while it streams the session is listed with its bytes growing;
//! a kick and a block end the response within seconds; closing it frees
//! the user's `max_sessions` slot at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::media::{framemd5, media};
use common::process::Tollgate;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};

const ADMIN: &str = "test-admin-token";

/// An origin answering `/live/<ch>/mpegts` with the test media's TS
/// segments in a loop, for ever, in 32 KiB chunks every 10 ms.
async fn ts_origin() -> TestOrigin {
    let m = media().await;
    let mut all = Vec::new();
    for i in 0..common::media::SEGMENTS {
        all.extend(m.read(&format!("/vod/ts/seg{i}.ts")));
    }
    let all = Bytes::from(all);
    start_origin(move |req: Request<Incoming>| {
        let all = all.clone();
        async move {
            if !req.uri().path().ends_with("/mpegts") {
                return Response::builder().status(404).body(full("no")).unwrap();
            }
            let stream = futures_util::stream::unfold(0usize, move |at| {
                let all = all.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    let start = at % all.len();
                    let end = (start + (32 << 10)).min(all.len());
                    Some((
                        Ok::<_, std::io::Error>(Frame::data(all.slice(start..end))),
                        end,
                    ))
                }
            });
            Response::builder()
                .header("content-type", "video/mp2t")
                .body(BodyExt::boxed(StreamBody::new(stream)))
                .unwrap()
        }
    })
    .await
}

fn config(origin: std::net::SocketAddr, state: &std::path::Path) -> String {
    ConfigBuilder::new(origin)
        .admin(ADMIN)
        .state(state)
        .origin_keys("first_byte_timeout = \"5s\"\nidle_timeout = \"5s\"\ntotal_timeout = \"2s\"")
        .route(Route::live(&["token"]).keys("kind = \"mpegts\""))
        .extra(
            "[[user]]\nid = \"ann\"\ntokens = [\"ann-token\"]\nmax_sessions = 1\npackages = [\"*\"]\n",
        )
        .build()
}

/// Read `resp` until it ends; when it ended, how long that took and how
/// many bytes.
async fn drain(
    mut resp: reqwest::Response,
    within: Duration,
) -> (std::time::Instant, Duration, u64, bool) {
    let start = std::time::Instant::now();
    let mut bytes = 0;
    let ended = tokio::time::timeout(within, async {
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => bytes += c.len() as u64,
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await
    .is_ok();
    (std::time::Instant::now(), start.elapsed(), bytes, ended)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mpegts_stream_is_a_session_that_ends_on_kick_block_and_close() {
    let origin = ts_origin().await;
    let state = tempfile::tempdir().unwrap();
    let tg = Tollgate::start(&config(origin.addr, state.path())).await;
    let url = tg.url("/live/ch1/mpegts?token=ann-token");

    // ffmpeg plays it (longer than the origin's total_timeout of 2 s: a
    // stream has none).
    let frames = framemd5(&[], &url, &["-map", "0:v", "-t", "3"]).await;
    assert!(frames.len() >= 30, "{} frames", frames.len());
    // ffmpeg's close freed the session.
    eventually("ffmpeg's session released", async || {
        let n = sessions_of(&tg, ADMIN, "ann").await.len();
        if n == 0 {
            Ok(())
        } else {
            Err(format!("{n} sessions"))
        }
    })
    .await;

    // Open: one session, bytes growing; a second stream is over her limit.
    let client = h1_client();
    let a = client.get(&url).send().await.unwrap();
    assert_eq!(a.status(), 200);
    assert_eq!(a.headers()["content-type"], "video/mp2t");
    let listed = eventually("bytes counted while it streams", async || {
        let s = sessions_of(&tg, ADMIN, "ann").await;
        match s.first().and_then(|s| s["bytes"].as_u64()) {
            Some(b) if b > 100_000 => Ok(s),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        fetch(&tg, "/live/ch2/mpegts?token=ann-token").await,
        (403, error_body("session_limit"))
    );
    // The same viewer's second connection to the same channel is the same
    // session: one stream per session, not a free second stream.
    assert_eq!(
        fetch(&tg, "/live/ch1/mpegts?token=ann-token").await,
        (403, error_body("session_limit"))
    );
    // Past the origin's total_timeout (2 s) it still streams: a stream has
    // none, and its session stays alive.
    let reader = tokio::spawn(drain(a, Duration::from_secs(20)));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let bytes = async || {
        sessions_of(&tg, ADMIN, "ann").await[0]["bytes"]
            .as_u64()
            .unwrap()
    };
    let before = bytes().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(bytes().await > before, "still streaming after 2.9 s");
    // A kick ends the response within seconds.
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    let kicked = std::time::Instant::now();
    let (s, _) = admin_call(
        &tg,
        "DELETE",
        &format!("/api/v1/sessions/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (end, _, _, ended) = reader.await.unwrap();
    let took = end - kicked;
    assert!(ended, "the kicked stream still runs");
    assert!(
        took < Duration::from_secs(3),
        "ended {took:?} after the kick"
    );

    // Closing frees the slot: ch2 opens, is dropped, ch1 opens again.
    let b = client
        .get(tg.url("/live/ch2/mpegts?token=ann-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(b.status(), 200, "a fresh entry after the kick");
    drop(b);
    let c = eventually("the closed stream's slot is free", async || {
        let r = client.get(&url).send().await.unwrap();
        if r.status() == 200 {
            Ok(r)
        } else {
            Err(r.status().to_string())
        }
    })
    .await;
    // A block ends it too.
    let (s, _) = admin_call(
        &tg,
        "PUT",
        "/api/v1/blocklist",
        Some(ADMIN),
        Some(&serde_json::json!({"users": ["ann"]})),
    )
    .await;
    assert_eq!(s, 204);
    let (_, took, bytes, ended) = drain(c, Duration::from_secs(5)).await;
    assert!(
        ended && took < Duration::from_secs(3),
        "blocked stream ran {took:?}"
    );
    assert!(bytes > 0);
    assert_eq!(
        fetch(&tg, "/live/ch1/mpegts?token=ann-token").await,
        (403, error_body("blocked"))
    );
}

/// The bytes of an open stream reach the control plane's usage reports as
/// they go, and its close is reported as the session's end.
#[tokio::test(flavor = "multi_thread")]
async fn an_open_stream_is_reported_to_the_control_plane() {
    use common::control_plane::{Behaviour, CP_TOKEN, ControlPlane};
    let origin = ts_origin().await;
    let cp = ControlPlane::start().await;
    cp.answer(Behaviour::Answer(serde_json::json!({
        "version": 1,
        "snapshot": {"users": {"ann": {"tokens": ["ann-token"], "packages": ["*"]}}}
    })));
    let state = tempfile::tempdir().unwrap();
    let toml = ConfigBuilder::new(origin.addr)
        .admin(ADMIN)
        .state(state.path())
        .section(
            "control_plane",
            &format!(
                "url = \"http://{}/sync\"\ntoken = \"{CP_TOKEN}\"\ninterval = \"200ms\"\n\
                 timeout = \"1s\"\nmax_backoff = \"400ms\"\nedge_id = \"edge-ts\"",
                cp.addr()
            ),
        )
        .route(Route::live(&["token"]).keys("kind = \"mpegts\""))
        .build();
    let proxy = start_proxy(&toml).await;
    let url = proxy.url("/live/ch1/mpegts?token=ann-token");
    let stream = eventually("the snapshot's user streams", async || {
        let r = h1_client().get(&url).send().await.unwrap();
        if r.status() == 200 {
            Ok(r)
        } else {
            Err(r.status().to_string())
        }
    })
    .await;
    let reader = tokio::spawn(drain(stream, Duration::from_millis(1500)));
    // Reports while it is open: ann's ch1 session, not ended, bytes growing.
    let open_bytes = |r: &serde_json::Value| -> Option<u64> {
        r["sessions"].as_array()?.iter().find_map(|s| {
            (s["user"] == "ann" && s["channel"] == "ch1" && s["ended"] == false)
                .then(|| s["bytes_total"].as_u64())
                .flatten()
        })
    };
    let first = eventually("an open stream in a report", async || {
        cp.reports()
            .iter()
            .rev()
            .find_map(|(_, r)| open_bytes(r).filter(|b| *b > 0))
            .ok_or_else(|| "not yet".to_owned())
    })
    .await;
    eventually("its bytes growing in later reports", async || {
        let last = cp.reports().iter().rev().find_map(|(_, r)| open_bytes(r));
        match last {
            Some(b) if b > first => Ok(()),
            other => Err(format!("{other:?} after {first}")),
        }
    })
    .await;
    // The client stops reading at 1.5 s and drops the stream: its end is
    // reported.
    reader.await.unwrap();
    eventually("the stream's end in a report", async || {
        let ended = cp.reports().iter().any(|(_, r)| {
            r["sessions"].as_array().is_some_and(|ss| {
                ss.iter().any(|s| {
                    s["user"] == "ann"
                        && s["ended"] == true
                        && s["bytes_total"].as_u64() > Some(first)
                })
            })
        });
        if ended {
            Ok(())
        } else {
            Err("not yet".to_owned())
        }
    })
    .await;
}
