//! Regions and devices through the real binary (SPEC §7.2, §7.3): London
//! and Paris users each play and list only their region's channel; a
//! device's packages replace its user's; a disabled device is `blocked`
//! while the user's other device plays, also mid-session (the capability
//! carries the device); the `device` method's signed links from `tollgate
//! sign --scheme device` play, and a wrong signature, a stale `ts`, a
//! foreign HWID and a signature replayed from another HWID are refused;
//! `auto_register` registers at most N devices, persists them and audits
//! them; each device is a session of its own that counts toward the
//! user's `max_sessions` and is listed with its device.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use common::process::Tollgate;
use common::*;
use tokio_util::sync::CancellationToken;
use tollgate::simorigin::{SimOrigin, SimOriginOptions};

const ADMIN: &str = "test-admin-token";

/// The simulated origin with ch1 (London news), ch2 (sport) and ch3
/// (Paris news), on 127.0.0.1:0.
async fn origin() -> (SocketAddr, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let origin = SimOrigin::new(SimOriginOptions {
        channels: vec!["ch1".into(), "ch2".into(), "ch3".into()],
        ..SimOriginOptions::default()
    });
    tokio::spawn(origin.serve(listener, stop.clone()));
    (addr, stop)
}

/// `lon` (London) and `par` (Paris) take news; `ann` takes news with two
/// boxes: `box-news` (hers, no packages of its own), `box-sport` (sport
/// only: its packages replace hers) and `box-off` (disabled); `bob` owns
/// `box-bob`. `[auth.device]` registers up to `auto` devices per user.
/// ann may hold `ann_max` sessions.
fn config(origin: SocketAddr, state: &std::path::Path, auto: u32, ann_max: u32) -> String {
    ConfigBuilder::new(origin)
        .admin(ADMIN)
        .state(state)
        .section(
            "keys",
            "master = \"hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"",
        )
        .route(Route::live(&["token", "device"]).keys("encrypt = true"))
        .section(
            "auth.device",
            &format!("tolerance = \"5m\"\nauto_register = {auto}"),
        )
        .extra(
            &r#"
[[channel]]
name = "ch1"
title = "London News"
tags = ["news"]
regions = ["london"]

[[channel]]
name = "ch2"
title = "Sport"
tags = ["sport"]

[[channel]]
name = "ch3"
title = "Paris News"
tags = ["news"]
regions = ["paris"]

[[package]]
name = "news"
tags = ["news"]

[[package]]
name = "sport"
tags = ["sport"]

[[user]]
id = "lon"
tokens = ["lon-token"]
packages = ["news"]
region = "london"

[[user]]
id = "par"
tokens = ["par-token"]
packages = ["news"]
region = "paris"

[[user]]
id = "ann"
tokens = ["ann-token"]
packages = ["news"]
region = "london"
max_sessions = ANN_MAX

[[user]]
id = "bob"
tokens = ["bob-token"]
packages = ["news", "sport"]
region = "london"

[[device]]
hwid = "box-news"
user = "ann"

[[device]]
hwid = "box-sport"
user = "ann"
packages = ["sport"]

[[device]]
hwid = "box-off"
user = "ann"
disabled = true

[[device]]
hwid = "box-bob"
user = "bob"
"#
            .replace("ANN_MAX", &ann_max.to_string()),
        )
        .build()
}

/// `tollgate sign --scheme device` from the binary, for `path`.
fn sign(tg: &Tollgate, path: &str, user: &str, hwid: &str) -> String {
    let file = tg.dir.path().join("tollgate.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args([
            "sign", "--route", "live", "--scheme", "device", "--path", path,
        ])
        .args(["--user", user, "--hwid", hwid, "-c"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The signed link's query with `name` set to `value`.
fn with(link: &str, name: &str, value: &str) -> String {
    let (path, query) = link.split_once('?').unwrap();
    let query: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k == name => format!("{k}={value}"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

fn param<'a>(link: &'a str, name: &str) -> &'a str {
    let query = link.split_once('?').unwrap().1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap()
}

/// The first child URI of a rewritten playlist, as a path+query.
fn first_child(playlist: &str, dir: &str) -> String {
    let line = playlist
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or_else(|| panic!("no child URI in {playlist}"));
    if line.starts_with('/') {
        line.to_owned()
    } else {
        format!("{dir}{line}")
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Acceptance 1: regions, device packages, a disabled device.
#[tokio::test(flavor = "multi_thread")]
async fn regions_and_device_subscriptions_through_the_binary() {
    let (addr, _stop) = origin().await;
    let state = tempfile::tempdir().unwrap();
    let tg = Tollgate::start(&config(addr, state.path(), 0, 0)).await;

    // London and Paris: each their own channel, each list only theirs.
    for (token, mine, theirs) in [("lon-token", "ch1", "ch3"), ("par-token", "ch3", "ch1")] {
        let (s, body) = fetch(&tg, &format!("/live/{mine}/index.m3u8?token={token}")).await;
        assert_eq!(s, 200, "{token} on {mine}: {body}");
        let (s, body) = fetch(&tg, &format!("/live/{theirs}/index.m3u8?token={token}")).await;
        assert_eq!(
            (s, body),
            (403, error_body("not_entitled")),
            "{token} on {theirs}"
        );
        let (s, list) = fetch(&tg, &format!("/playlist.m3u8?token={token}")).await;
        assert_eq!(s, 200, "{list}");
        let ids: Vec<String> = crispy_m3u::parse(&list)
            .unwrap()
            .entries
            .into_iter()
            .filter_map(|e| e.tvg_id)
            .collect();
        assert_eq!(ids, [mine], "{token}'s list: {list}");
    }

    // ann's own packages give news, not sport.
    let (s, _) = fetch(&tg, "/live/ch1/index.m3u8?token=ann-token").await;
    assert_eq!(s, 200);
    let (s, body) = fetch(&tg, "/live/ch2/index.m3u8?token=ann-token").await;
    assert_eq!((s, body), (403, error_body("not_entitled")));
    // box-news has none of its own: hers. box-sport's replace hers.
    let on = |hwid: &str, ch: &str| sign(&tg, &format!("/live/{ch}/index.m3u8"), "ann", hwid);
    assert_eq!(fetch(&tg, &on("box-news", "ch1")).await.0, 200);
    assert_eq!(
        fetch(&tg, &on("box-news", "ch2")).await,
        (403, error_body("not_entitled"))
    );
    let (s, sport) = fetch(&tg, &on("box-sport", "ch2")).await;
    assert_eq!(s, 200, "box-sport plays sport: {sport}");
    assert_eq!(
        fetch(&tg, &on("box-sport", "ch1")).await,
        (403, error_body("not_entitled")),
        "box-sport's packages replace ann's news"
    );
    // The disabled box is blocked; her other box plays on.
    assert_eq!(
        fetch(&tg, &on("box-off", "ch1")).await,
        (403, error_body("blocked"))
    );
    let (s, news) = fetch(&tg, &on("box-news", "ch1")).await;
    assert_eq!(s, 200);

    // Mid-session: the capability names the device, so disabling it
    // stops the box at its next request while the other box goes on.
    let news_child = first_child(&news, "/live/ch1/");
    let sport_child = first_child(&sport, "/live/ch2/");
    assert_eq!(fetch(&tg, &sport_child).await.0, 200);
    let (s, b) = admin_call(
        &tg,
        "PUT",
        "/api/v1/devices/box-sport",
        Some(ADMIN),
        Some(&serde_json::json!({"user": "ann", "packages": ["sport"], "disabled": true})),
    )
    .await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(fetch(&tg, &sport_child).await, (403, error_body("blocked")));
    assert_eq!(fetch(&tg, &news_child).await.0, 200, "box-news plays on");

    // The session listing names the device.
    let (s, body) = admin_call(&tg, "GET", "/api/v1/sessions?user=ann", Some(ADMIN), None).await;
    assert_eq!(s, 200);
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let devices: Vec<Option<&str>> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["device"].as_str())
        .collect();
    assert!(devices.contains(&Some("box-news")), "{listed}");
    assert!(devices.contains(&None), "her token session: {listed}");
}

/// Acceptance 2: the `device` method's refusals, `auto_register`, one
/// session per device within `max_sessions`, and persistence and audit of
/// what registered itself.
#[tokio::test(flavor = "multi_thread")]
async fn the_device_method_signs_refuses_and_registers() {
    let (addr, _stop) = origin().await;
    let state = tempfile::tempdir().unwrap();
    let toml = config(addr, state.path(), 3, 2);
    let mut tg = Tollgate::start(&toml).await;
    let path = "/live/ch1/index.m3u8";
    let link = sign(&tg, path, "ann", "box-news");
    assert!(
        link.starts_with("/live/ch1/index.m3u8?token=ann-token&hwid=box-news&ts="),
        "{link}"
    );
    let (s, body) = fetch(&tg, &link).await;
    assert_eq!(s, 200, "{link}: {body}");
    // Its parameters are credentials: never in the access log (nor, by the
    // same strip, sent to the origin).
    let line = tg
        .log_line("the entry's access line", |v| {
            common::process::is_access_line(v, path)
        })
        .await
        .to_string();
    for secret in ["ann-token", param(&link, "sig"), "hwid=", "ts="] {
        assert!(!line.contains(secret), "{secret} in {line}");
    }
    // Its capability plays the media playlist, the segment and the key.
    let media = first_child(&body, "/live/ch1/");
    let (s, media_body) = fetch(&tg, &media).await;
    assert_eq!(s, 200, "{media_body}");
    let segment = first_child(&media_body, "/live/ch1/");
    assert_eq!(fetch(&tg, &segment).await.0, 200);

    let forbidden = (403, error_body("forbidden"));
    // A wrong signature.
    let sig = param(&link, "sig");
    let flipped = format!(
        "{}{}",
        if sig.starts_with('A') { "B" } else { "A" },
        &sig[1..]
    );
    assert_eq!(fetch(&tg, &with(&link, "sig", &flipped)).await, forbidden);
    // A stale ts (re-signed for then, so only the age is wrong).
    let stale_ts = unix_now() - 600;
    let stale = tollgate::auth::device::signature("ann-token", "box-news", stale_ts).unwrap();
    let stale = with(&with(&link, "ts", &stale_ts.to_string()), "sig", &stale);
    assert_eq!(fetch(&tg, &stale).await, forbidden, "stale ts");
    // A foreign HWID: correctly signed, but bob's box.
    assert_eq!(
        fetch(&tg, &sign(&tg, path, "ann", "box-bob")).await,
        forbidden
    );
    // The signature replayed from another box.
    assert_eq!(
        fetch(&tg, &with(&link, "hwid", "box-copy")).await,
        forbidden
    );
    // The plain token beside hwid is not the token method's to admit.
    assert_eq!(
        fetch(&tg, &format!("{path}?token=ann-token&hwid=box-news")).await,
        forbidden
    );

    // bob owns one box; auto_register = 3 lets two more in, not a third.
    for hwid in ["bob-2", "bob-3"] {
        let (s, body) = fetch(&tg, &sign(&tg, path, "bob", hwid)).await;
        assert_eq!(s, 200, "{hwid}: {body}");
    }
    assert_eq!(
        fetch(&tg, &sign(&tg, path, "bob", "bob-4")).await,
        forbidden
    );
    let (s, body) = admin_call(&tg, "GET", "/api/v1/devices?user=bob", Some(ADMIN), None).await;
    assert_eq!(s, 200);
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let hwids: Vec<&str> = listed["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["hwid"].as_str().unwrap())
        .collect();
    assert_eq!(
        hwids,
        ["bob-2", "bob-3"],
        "the API layer holds what registered: {listed}"
    );
    tg.log_line("the audit line of a registration", |v| {
        v["target"] == "tollgate::audit" && v["who"] == "device" && v["id"] == "bob-2"
    })
    .await;
    let (s, body) = admin_call(&tg, "GET", "/api/v1/devices/bob-3", Some(ADMIN), None).await;
    assert_eq!(
        (s, body.contains("\"user\":\"bob\"")),
        (200, true),
        "{body}"
    );

    // ann: max_sessions = 2. Her box and her token session on ch1 are
    // two; her sport box is a third session, over the limit.
    let (s, _) = fetch(&tg, "/live/ch1/index.m3u8?token=ann-token").await;
    assert_eq!(s, 200);
    let (s, body) = fetch(&tg, &sign(&tg, "/live/ch2/index.m3u8", "ann", "box-sport")).await;
    assert_eq!(
        (s, body),
        (403, error_body("session_limit")),
        "a third session"
    );

    // A restart keeps what registered itself.
    tg.signal(nix::sys::signal::Signal::SIGTERM);
    tg.exit_within(std::time::Duration::from_secs(10)).await;
    let tg = Tollgate::start(&toml).await;
    let (s, body) = fetch(&tg, &sign(&tg, path, "bob", "bob-3")).await;
    assert_eq!(s, 200, "after a restart: {body}");
    assert_eq!(
        fetch(&tg, &sign(&tg, path, "bob", "bob-4")).await,
        forbidden
    );
}

/// The device method's known answers (`tollgate_device`, checked against
/// the Rust method in `auth::device`'s unit tests) are what the
/// independent Python reference writes and decides.
#[test]
fn the_python_reference_writes_and_agrees_with_the_vectors() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let out = std::process::Command::new("python3")
        .arg(dir.join("device_ref.py"))
        .arg("check")
        .arg(dir.join("auth-vectors.json"))
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 is needed ({e}): apt-get install -y python3, or run scripts/test.sh")
        });
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("14 cases agree"));
}
