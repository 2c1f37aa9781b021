//! The web console and the player page in a real browser (SPEC §8),
//! through the real binary: Debian's Chromium, driven by puppeteer-core
//! (`tests/browser/console.mjs`), plays an encrypted channel on the player
//! page for at least 20 s of media (currentTime advancing, frames decoded,
//! zero hls.js errors), the console lists that session, its Kick button
//! ends it and the player reports `session_evicted`. The screenshots go to
//! `docs/screenshots/` (linked from the README).
//!
//! Needs chromium and node (`scripts/test.sh` installs them); the test
//! runs `npm ci` in `tests/browser/` when its `node_modules` is missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::process::Tollgate;
use common::*;
use tokio_util::sync::CancellationToken;
use tollgate::simorigin::{SimOrigin, SimOriginOptions};

const ADMIN: &str = "console-test-token";
const MISSING: &str = "chromium and node are needed: apt-get install -y chromium nodejs npm (scripts/test.sh does this)";

fn require(tool: &str) {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "`{tool} --version` failed. {MISSING}");
}

fn npm_ci(dir: &Path) {
    if dir.join("node_modules/puppeteer-core").exists() {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("npm: {e}. {MISSING}"));
    assert!(
        out.status.success(),
        "npm ci in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_player_plays_and_the_console_kicks() {
    require("chromium");
    require("node");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scripts = root.join("tests/browser");
    let npm = scripts.clone();
    tokio::task::spawn_blocking(move || npm_ci(&npm))
        .await
        .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(SimOrigin::new(SimOriginOptions::default()).serve(listener, stop.clone()));
    let state = tempfile::tempdir().unwrap();
    let toml = ConfigBuilder::new(origin)
        .admin(ADMIN)
        .state(state.path())
        .section(
            "keys",
            "master = \"hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\nrotate_every = \"10s\"",
        )
        .route(Route::live(&["token"]).keys("encrypt = true"))
        .extra(
            "[[channel]]\nname = \"ch1\"\ntitle = \"Channel One\"\ngroup = \"News\"\n\n\
             [[user]]\nid = \"viewer\"\ntokens = [\"viewer-token\"]\npackages = [\"*\"]\nname = \"Demo Viewer\"\n",
        )
        .build();
    let tg = Tollgate::start(&toml).await;
    let shots = root.join("docs/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let base = tg.admin_url("");
    let out = tokio::task::spawn_blocking({
        let (scripts, shots) = (scripts.clone(), shots.clone());
        move || {
            Command::new("node")
                .arg(scripts.join("console.mjs"))
                .args([base.as_str(), ADMIN, "ch1", "viewer"])
                .arg(&shots)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser run failed: {stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        tg.stderr_so_far()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let played = &seen["played"];
    assert!(played["advanced"].as_f64().unwrap() >= 20.0, "{seen}");
    assert!(
        played["wallSeconds"].as_f64().unwrap() >= 15.0,
        "played in real time: {seen}"
    );
    assert!(played["decodedFrames"].as_u64().unwrap() > 100, "{seen}");
    assert_eq!(played["errors"].as_array().unwrap().len(), 0, "{seen}");
    let listed = seen["listed"].to_string();
    assert!(
        listed.contains("viewer"),
        "the console lists the session: {listed}"
    );
    assert_eq!(seen["kicked"]["reason"], "session_evicted", "{seen}");
    for f in ["player.png", "console.png", "player-kicked.png"] {
        let len = std::fs::metadata(shots.join(f)).unwrap().len();
        assert!(len > 10_000, "{f}: {len} bytes");
    }
    // The console's assets carry their policy; the API behind it its token.
    let r = h1_client().get(tg.admin_url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let r = h1_client()
        .get(tg.admin_url("/console/hls.js-LICENSE"))
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("Apache License"));
    let (s, _) = admin_call(&tg, "GET", "/api/v1/sessions", None, None).await;
    assert_eq!(s, 401);
    stop.cancel();
}
