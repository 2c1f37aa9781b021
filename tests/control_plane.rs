//! Pull sync against a real HTTP control plane in the test (SPEC §4,
//! docs/control-plane.md): users added, changed, deleted and blocked through
//! full and delta snapshots and the deny list; usage reports carry sessions
//! and bytes; a control plane that is down, slow or answering garbage
//! leaves the last good state serving (also across a restart); in
//! `nimble_ppv` mode the report is Nimble's, `DenyList.ID` blocks at once
//! and an answer with a wrong Solution is refused and counted. (Transport
//! and answer authentication: `tests/hostile_cplane.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::control_plane::{Behaviour, CP_TOKEN, ControlPlane, metrics, syncs, wait_sync};
use common::*;
use serde_json::{Value, json};

/// A proxy whose route authenticates with `auth`, pulling from the control
/// plane at `cp` every 200 ms (`extra`: more `[control_plane]` keys, then
/// any other tables).
fn config_auth(
    origin: SocketAddr,
    auth: &str,
    cp: SocketAddr,
    state: &std::path::Path,
    extra: &str,
) -> String {
    let control_plane = format!(
        "url = \"http://{cp}/sync\"\ntoken = \"{CP_TOKEN}\"\ninterval = \"200ms\"\n\
         timeout = \"1s\"\nmax_backoff = \"400ms\"\nedge_id = \"edge-test-1\"\n{extra}"
    );
    loopback_config(origin, auth)
        .state(state)
        .section("control_plane", &control_plane)
        .build()
}

fn config(origin: SocketAddr, cp: SocketAddr, state: &std::path::Path, extra: &str) -> String {
    config_auth(origin, "token", cp, state, extra)
}

/// GET until the status and body are `want` (a sync lands within a few
/// hundred milliseconds).
async fn wait_fetch(proxy: &TestProxy, path: &str, want: (u16, &str)) {
    eventually(&format!("GET {path} -> {want:?}"), async || {
        let (s, b) = fetch(proxy, path).await;
        if s == want.0 && (want.1.is_empty() || b == want.1) {
            Ok(())
        } else {
            Err(format!("{s} {b}"))
        }
    })
    .await;
}

async fn play(proxy: &TestProxy, channel: &str, token: &str) -> String {
    let (s, body) = fetch(proxy, &format!("/live/{channel}/index.m3u8?token={token}")).await;
    assert_eq!(s, 200, "{channel} as {token}: {body}");
    first_segment(channel, &body)
}

fn full_v1() -> Value {
    json!({
        "version": 1,
        "snapshot": {
            "users": {
                "alice": {"tokens": ["alice-tok"], "packages": ["basic"], "max_sessions": 2},
                "bob": {"tokens": ["bob-tok"], "packages": ["basic"]},
            },
            "packages": {"basic": {"channels": ["ch1"]}},
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn tollgate_mode_drives_users_and_keeps_serving_when_the_control_plane_fails() {
    let origin = content_origin().await;
    let mut cp = ControlPlane::start().await;
    let state = tempfile::tempdir().unwrap();
    let text = config(origin.addr, cp.addr(), state.path(), "");
    let proxy = start_proxy(&text).await;

    // Before any good sync (and with nothing persisted) the edge is not ready.
    cp.wait_reports(1).await;
    let r = get_h1(proxy.admin_url("/readyz")).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.text().await.unwrap(), "no control-plane state yet\n");
    assert_eq!(
        fetch(&proxy, "/live/ch1/index.m3u8?token=alice-tok").await,
        (403, error_body("forbidden"))
    );

    // 1. A full snapshot: users appear.
    cp.answer(Behaviour::Answer(full_v1()));
    wait_fetch(&proxy, "/live/ch1/index.m3u8?token=alice-tok", (200, "")).await;
    // The sync's health is recorded just after its state is published.
    wait_ready(&proxy).await;
    let alice_seg = play(&proxy, "ch1", "alice-tok").await;
    let bob_seg = play(&proxy, "ch1", "bob-tok").await;
    assert_eq!(fetch(&proxy, &alice_seg).await.0, 200);
    assert_eq!(fetch(&proxy, &bob_seg).await.0, 200);
    assert_eq!(
        fetch(&proxy, "/live/ch2/index.m3u8?token=alice-tok").await,
        (403, error_body("not_entitled"))
    );

    // The reports: bearer token, edge id, the version held, and the
    // sessions with their viewing and bytes.
    cp.wait_reports(2).await;
    let reports = cp.reports();
    for (auth, r) in &reports {
        assert_eq!(auth.as_deref(), Some(&*format!("Bearer {CP_TOKEN}")));
        assert_eq!(r["edge"], "edge-test-1");
    }
    assert_eq!(reports[0].1["version"], Value::Null);
    let last = &reports.last().unwrap().1;
    assert_eq!(last["version"], 1);
    let bytes_for = |user: &str| -> u64 {
        cp.reports()
            .iter()
            .flat_map(|(_, r)| r["sessions"].as_array().cloned().unwrap_or_default())
            .filter(|s| s["user"] == user)
            .map(|s| s["bytes"].as_u64().unwrap())
            .sum()
    };
    let alice_line = cp
        .reports()
        .iter()
        .flat_map(|(_, r)| r["sessions"].as_array().cloned().unwrap_or_default())
        .find(|s| s["user"] == "alice")
        .expect("alice reported");
    assert_eq!(alice_line["channel"], "ch1");
    assert_eq!(alice_line["route"], "live");
    assert_eq!(alice_line["ip"], "127.0.0.1");
    assert_eq!(alice_line["ended"], false);
    assert_eq!(alice_line["id"].as_str().unwrap().len(), 16);
    // Deltas add up to what was sent: the playlist and the "ok" segment.
    assert!(
        bytes_for("alice") > 2,
        "alice's bytes: {}",
        bytes_for("alice")
    );

    // 2. A delta: alice gets a second package, carol is added, bob deleted.
    cp.answer(Behaviour::Answer(json!({
        "version": 2,
        "delta": {
            "since": 1,
            "users": {
                "alice": {"tokens": ["alice-tok"], "packages": ["basic", "extra"], "max_sessions": 2},
                "carol": {"tokens": ["carol-tok"], "password": "carol-pw", "packages": ["extra"]},
                "bob": null,
            },
            "packages": {"extra": {"channels": ["ch2"]}},
        }
    })));
    wait_fetch(&proxy, "/live/ch2/index.m3u8?token=alice-tok", (200, "")).await;
    play(&proxy, "ch2", "carol-tok").await;
    let (s, _) = fetch(&proxy, "/live/ch2/index.m3u8?auth=carol:carol-pw").await;
    assert_eq!(s, 200, "password login of a control-plane user");
    // Bob is no longer listed: his playing session is refused at its next
    // request (an unlisted user on a `token` route), and his token is unknown.
    assert_eq!(
        fetch(&proxy, &bob_seg).await,
        (403, error_body("forbidden"))
    );
    assert_eq!(
        fetch(&proxy, "/live/ch1/index.m3u8?token=bob-tok").await,
        (403, error_body("forbidden"))
    );
    // The state held is version 2, and the password is stored as a digest.
    let saved = std::fs::read_to_string(state.path().join("snapshot.json")).unwrap();
    assert!(!saved.contains("carol-pw"), "{saved}");
    // (sync.json is written just after the snapshot is published.)
    eventually("sync.json to hold version 2", async || {
        let text = std::fs::read_to_string(state.path().join("sync.json")).unwrap();
        let sync: Value = serde_json::from_str(&text).unwrap();
        if sync["version"] == 2 {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;

    // The same answer again changes nothing (idempotent).
    let m = metrics(&proxy).await;
    wait_sync(&proxy, "unchanged", syncs(&m, "unchanged")).await;
    assert_eq!(syncs(&metrics(&proxy).await, "version_gap"), 0.0);

    // 3. Blocked through a delta: alice's next segment is refused.
    cp.answer(Behaviour::Answer(json!({
        "version": 3,
        "delta": {"since": 2, "blocklist": {"users": ["alice"]}},
    })));
    wait_fetch(&proxy, &alice_seg, (403, &error_body("blocked"))).await;

    // 4. The deny list (any version): carol is refused at once.
    let carol_seg = play(&proxy, "ch2", "carol-tok").await;
    assert_eq!(fetch(&proxy, &carol_seg).await.0, 200);
    cp.answer(Behaviour::Answer(json!({
        "version": 3,
        "deny": {"users": ["carol"], "tokens": [], "ips": []},
    })));
    wait_fetch(&proxy, &carol_seg, (403, &error_body("blocked"))).await;
    let m = metrics(&proxy).await;
    assert_eq!(metric(&m, "tollgate_control_plane_denied"), 1.0);
    assert_eq!(metric(&m, "tollgate_control_plane_version"), 3.0);

    // A delta from a version the edge does not hold is refused, counted,
    // and the next report asks for a full snapshot (version null).
    let m = metrics(&proxy).await;
    cp.answer(Behaviour::Answer(json!({
        "version": 9,
        "delta": {"since": 7, "users": {"mallory": {"tokens": ["m-tok"]}}},
    })));
    wait_sync(&proxy, "version_gap", syncs(&m, "version_gap")).await;
    cp.answer(Behaviour::Status(503));
    cp.wait_reports(1).await;
    assert_eq!(cp.reports().last().unwrap().1["version"], Value::Null);
    assert_eq!(
        fetch(&proxy, "/live/ch1/index.m3u8?token=m-tok").await,
        (403, error_body("forbidden"))
    );

    // 5. Failures: a 503, garbage, an invalid snapshot, then no control
    // plane at all. Each is counted; the last good state keeps serving.
    let dave = json!({
        "version": 4,
        "snapshot": {
            "users": {
                "dave": {"tokens": ["dave-tok"], "packages": ["all"]},
                "carol": {"tokens": ["carol-tok"], "packages": ["all"]},
            },
            "packages": {"all": {"channels": ["*"]}},
        },
    });
    cp.answer(Behaviour::Answer(dave));
    wait_fetch(&proxy, "/live/ch9/index.m3u8?token=dave-tok", (200, "")).await;
    // Alice is no longer in the control plane's state.
    assert_eq!(
        fetch(&proxy, "/live/ch1/index.m3u8?token=alice-tok").await,
        (403, error_body("forbidden"))
    );
    // The deny list persists until the control plane sends another.
    assert_eq!(
        fetch(&proxy, "/live/ch1/index.m3u8?token=carol-tok").await,
        (403, error_body("blocked"))
    );
    for (behaviour, result) in [
        (Behaviour::Status(503), "bad_status"),
        (Behaviour::Garbage, "bad_answer"),
        (
            Behaviour::Answer(json!({
                "version": 5,
                "snapshot": {"users": {"x": {"ips": ["not-a-network"]}}},
            })),
            "bad_answer",
        ),
    ] {
        let m = metrics(&proxy).await;
        cp.answer(behaviour);
        wait_sync(&proxy, result, syncs(&m, result)).await;
        assert_eq!(
            fetch(&proxy, "/live/ch9/index.m3u8?token=dave-tok").await.0,
            200
        );
    }
    let m = metrics(&proxy).await;
    cp.stop();
    wait_sync(&proxy, "unreachable", syncs(&m, "unreachable")).await;
    let dave_seg = play(&proxy, "ch9", "dave-tok").await;
    assert_eq!(fetch(&proxy, &dave_seg).await.0, 200);
    let health: Value =
        serde_json::from_str(&get_text(&proxy.admin_url("/healthz")).await).unwrap();
    let cph = &health["control_plane"];
    assert!(cph["consecutive_failures"].as_u64().unwrap() >= 2, "{cph}");
    assert!(
        cph["last_error"]
            .as_str()
            .unwrap()
            .starts_with("unreachable"),
        "{cph}"
    );
    assert_eq!(cph["version"], 4);
    // Still ready: the last good state serves (no max_stale set).
    assert_eq!(get_text(&proxy.admin_url("/readyz")).await, "ready\n");
    assert!(
        metric(
            &metrics(&proxy).await,
            "tollgate_control_plane_consecutive_failures"
        ) >= 2.0
    );

    // 6. A restart with the control plane still down serves the last good
    // state from the state dir, and is ready.
    drop(proxy);
    let proxy = start_proxy(&text).await;
    assert_eq!(get_text(&proxy.admin_url("/readyz")).await, "ready\n");
    assert_eq!(
        fetch(&proxy, "/live/ch9/index.m3u8?token=dave-tok").await.0,
        200
    );
    assert_eq!(
        fetch(&proxy, "/live/ch1/index.m3u8?token=carol-tok").await,
        (403, error_body("blocked"))
    );
    let health: Value =
        serde_json::from_str(&get_text(&proxy.admin_url("/healthz")).await).unwrap();
    assert_eq!(health["control_plane"]["loaded"], true);
    assert_eq!(health["control_plane"]["version"], 4);
}

/// With `max_stale`, an edge whose control plane has been failing for
/// longer than that leaves rotation, and comes back with the next good sync.
#[tokio::test(flavor = "multi_thread")]
async fn max_stale_fails_readiness_until_the_next_good_sync() {
    let origin = content_origin().await;
    let cp = ControlPlane::start().await;
    let state = tempfile::tempdir().unwrap();
    let text = config(origin.addr, cp.addr(), state.path(), "max_stale = \"1s\"");
    let proxy = start_proxy(&text).await;
    cp.answer(Behaviour::Answer(full_v1()));
    wait_fetch(&proxy, "/live/ch1/index.m3u8?token=alice-tok", (200, "")).await;
    // The sync's health is recorded just after its state is published.
    wait_ready(&proxy).await;
    cp.answer(Behaviour::Status(500));
    wait_readyz(&proxy, 503, "control-plane state is stale\n").await;
    // Still serving the last good state while out of rotation.
    assert_eq!(
        fetch(&proxy, "/live/ch1/index.m3u8?token=alice-tok")
            .await
            .0,
        200
    );
    cp.answer(Behaviour::Answer(full_v1()));
    wait_ready(&proxy).await;
}

/// Wait until `/readyz` answers 200 `ready`.
async fn wait_ready(proxy: &TestProxy) {
    wait_readyz(proxy, 200, "ready\n").await;
}

/// Wait until `/readyz` answers `status` with `body`.
async fn wait_readyz(proxy: &TestProxy, status: u16, body: &str) {
    eventually(&format!("readyz to answer {status} {body:?}"), async || {
        let r = get_h1(proxy.admin_url("/readyz")).await;
        let (s, b) = (r.status(), r.text().await.unwrap());
        if s == status && b == body {
            Ok(())
        } else {
            Err(format!("{s} {b}"))
        }
    })
    .await;
}

fn ppv_config(origin: SocketAddr, cp: SocketAddr, state: &std::path::Path) -> String {
    config_auth(
        origin,
        "wmsauth",
        cp,
        state,
        "mode = \"nimble_ppv\"\n[auth.wmsauth]\nkey = \"wms-key\"",
    )
}

fn wms_link(text: &str, channel: &str, id: &str) -> String {
    let config = tollgate::config::Config::parse(text, std::path::Path::new("/")).unwrap();
    tollgate::sign::sign(
        &config,
        &tollgate::sign::SignOptions {
            route: "live",
            path: &format!("/live/{channel}/index.m3u8"),
            ip: None,
            ttl: Duration::from_secs(600),
            user: Some(id),
            scheme: Some("wmsauth"),
            hwid: None,
        },
        tollgate::clock::unix_now(),
    )
    .unwrap()
}

/// The handler side of Nimble's protocol, as Softvelum's sample does it:
/// check the Signature, answer the deny list with the Solution.
fn ppv_handler(deny: &'static [&'static str], token: &'static str) -> Behaviour {
    Behaviour::Compute(Arc::new(move |report: &Value| {
        let ids: Vec<String> = deny.iter().map(|s| (*s).to_owned()).collect();
        tollgate::sync::ppv::handle_sync(&report.to_string(), token, &ids)
            .map(|v| v.to_string())
            .unwrap_or_else(|e| format!("refused: {e}"))
    }))
}

#[tokio::test(flavor = "multi_thread")]
async fn nimble_ppv_mode_reports_like_nimble_and_checks_the_solution() {
    let origin = content_origin().await;
    let mut cp = ControlPlane::start().await;
    let state = tempfile::tempdir().unwrap();
    let text = ppv_config(origin.addr, cp.addr(), state.path());
    let proxy = start_proxy(&text).await;

    cp.answer(ppv_handler(&[], CP_TOKEN));
    wait_sync(&proxy, "unchanged", 0.0).await;
    let link1 = wms_link(&text, "ch1", "1");
    let link2 = wms_link(&text, "ch2", "2");
    let (s, p1) = fetch(&proxy, &link1).await;
    assert_eq!(s, 200, "{p1}");
    let (s, p2) = fetch(&proxy, &link2).await;
    assert_eq!(s, 200, "{p2}");
    let seg1 = first_segment("ch1", &p1);
    let seg2 = first_segment("ch2", &p2);
    assert_eq!(fetch(&proxy, &seg1).await.0, 200);
    cp.wait_reports(2).await;

    // Nimble's report, exactly: ID, Puzzle, Signature (which the handler
    // verified), and PayPerViewInfo grouped by vhost/app/instance/stream.
    let (auth, report) = cp.reports().last().unwrap().clone();
    assert_eq!(
        auth, None,
        "nimble_ppv authenticates by Signature, not a header"
    );
    let mut keys: Vec<&str> = report
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["ID", "PayPerViewInfo", "Puzzle", "Signature"]);
    assert_eq!(
        report["Signature"],
        tollgate::sync::ppv::signature(
            report["ID"].as_str().unwrap(),
            report["Puzzle"].as_str().unwrap(),
            CP_TOKEN
        )
    );
    let vhost = &report["PayPerViewInfo"]["VHost"][0];
    assert_eq!(vhost["name"], "_defaultVHost_");
    let app = &vhost["Application"][0];
    assert_eq!(app["name"], "live");
    assert_eq!(app["Instance"][0]["name"], "_definst_");
    let streams = app["Instance"][0]["Stream"].as_array().unwrap();
    let names: Vec<&str> = streams
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ch1", "ch2"]);
    let player = &streams[0]["Player"][0];
    assert_eq!(player["id"], "1");
    assert_eq!(player["ip"], "127.0.0.1");
    assert!(player["bytes_sent"].as_u64().unwrap() > 0, "{player}");
    assert!(player["delta"].is_u64());
    // Puzzles are fresh per sync; the ID is stable.
    let reports = cp.reports();
    let (a, b) = (&reports[reports.len() - 2].1, &reports[reports.len() - 1].1);
    assert_eq!(a["ID"], b["ID"]);
    assert_ne!(a["Puzzle"], b["Puzzle"]);

    // DenyList.ID blocks viewer 1 at once: its next segment and a new link.
    cp.answer(ppv_handler(&["1"], CP_TOKEN));
    wait_fetch(&proxy, &seg1, (403, &error_body("blocked"))).await;
    assert_eq!(fetch(&proxy, &link1).await, (403, error_body("blocked")));
    assert_eq!(fetch(&proxy, &seg2).await.0, 200);

    // A handler that does not know the token: wrong Solution, refused and
    // counted; the deny list it sends (unblocking 1, blocking 2) is ignored.
    let m = metrics(&proxy).await;
    cp.answer(ppv_handler(&["2"], "not-the-token"));
    // (Its Signature check fails, so it answers garbage; then a forged answer.)
    wait_sync(&proxy, "bad_answer", syncs(&m, "bad_answer")).await;
    let forged = Behaviour::Compute(Arc::new(|_report: &Value| {
        json!({"DenyList": {"ID": ["2"]}, "Solution": tollgate::sync::ppv::solution("old-puzzle", CP_TOKEN)})
            .to_string()
    }));
    cp.answer(forged);
    wait_sync(&proxy, "bad_solution", syncs(&m, "bad_solution")).await;
    assert_eq!(
        fetch(&proxy, &seg2).await.0,
        200,
        "a forged answer blocked no one"
    );
    assert_eq!(fetch(&proxy, &link1).await, (403, error_body("blocked")));

    // Control plane down: the deny list stays.
    let m = metrics(&proxy).await;
    cp.stop();
    wait_sync(&proxy, "unreachable", syncs(&m, "unreachable")).await;
    assert_eq!(fetch(&proxy, &link1).await, (403, error_body("blocked")));
    assert_eq!(fetch(&proxy, &link2).await.0, 200);
    let sync: Value =
        serde_json::from_str(&std::fs::read_to_string(state.path().join("sync.json")).unwrap())
            .unwrap();
    assert_eq!(sync["deny"]["users"], json!(["1"]));
}
