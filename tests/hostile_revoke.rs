//! Issue 11, "Revocation is not durable" and "Keys for any period", through
//! the real binary (SPEC §6): a kicked viewer's capability stays refused
//! after a restart; blocking a token stops the sessions already playing on
//! it, also ones admitted before a restart; an API user replaces every
//! credential of the config's `[[user]]` of the same id; the key endpoint
//! serves only key periods and incarnations a playlist named; a media
//! sequence near 2^64 that would reuse a (key, IV) is `502 bad_playlist`.
//!
//! Every viewer connects from loopback; the origin is a small hyper server
//! in the test. Restarts are SIGTERM then a new process on the same config
//! and state dir.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup errors

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::process::{Tollgate, client, get};
use common::{ConfigBuilder, Route, TestOrigin, User, admin_call, error_body, full, start_origin};
use http::{Request, Response};
use hyper::body::Incoming;
use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN: &str = "test-admin-token";
const MASTER: &str = "hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// The media playlist every `.m3u8` of [`origin`] is, but for `huge/`.
const PLAYLIST: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n\
    #EXT-X-MEDIA-SEQUENCE:100\n#EXTINF:2.000,\nseg-100.ts\n#EXTINF:2.000,\nseg-101.ts\n";

/// A media sequence whose second segment would reuse the first one's MSN.
const HUGE_MSN: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n\
    #EXT-X-MEDIA-SEQUENCE:18446744073709551615\n#EXTINF:2.000,\na.ts\n#EXTINF:2.000,\nb.ts\n";

/// Playlists as above; anything else is one 188-byte TS packet.
async fn origin() -> TestOrigin {
    start_origin(|req: Request<Incoming>| async move {
        let path = req.uri().path().to_owned();
        let body = if path.contains("/huge/") {
            HUGE_MSN.as_bytes().to_vec()
        } else if path.ends_with(".m3u8") {
            PLAYLIST.as_bytes().to_vec()
        } else {
            vec![0x47; 188]
        };
        let mut resp = Response::new(full(body));
        if path.ends_with(".m3u8") {
            resp.headers_mut().insert(
                "content-type",
                "application/vnd.apple.mpegurl".parse().unwrap(),
            );
        }
        resp
    })
    .await
}

/// One `/live/` route authenticated by user tokens (encrypting when
/// `encrypt`), a fixed master, the state in `state`, and the config users
/// alice (`alice-token`, password `alice-pass`) and bob (`bob-token`).
fn config(origin: SocketAddr, state: &Path, encrypt: bool) -> String {
    ConfigBuilder::new(origin)
        .server("shutdown_grace = \"2s\"")
        .admin(ADMIN)
        .state(state)
        .section(
            "keys",
            &format!("master = \"{MASTER}\"\nrotate_every = \"10m\""),
        )
        .route(Route::live(&["token"]).keys(&format!("encrypt = {encrypt}")))
        .package("all", &["*"])
        .add_user(User::new("alice", &["alice-token"], &["all"]).keys("password = \"alice-pass\""))
        .user("bob", &["bob-token"], &["all"])
        .build()
}

/// The [`origin`], a fresh state dir, the [`config`] on them, and a
/// tollgate started with it.
async fn start(encrypt: bool) -> (TestOrigin, tempfile::TempDir, String, Tollgate) {
    let origin = origin().await;
    let state = tempfile::tempdir().unwrap();
    let toml = config(origin.addr, state.path(), encrypt);
    let tg = Tollgate::start(&toml).await;
    (origin, state, toml, tg)
}

async fn api(tg: &Tollgate, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
    admin_call(tg, method, path, Some(ADMIN), body.as_ref()).await
}

/// GET `path` (with its query) on the proxy: status and body text.
async fn fetch(tg: &Tollgate, path: &str) -> (StatusCode, String) {
    let (status, body) = get(&client(), &tg.url(path)).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Enter `/live/ch1/index.m3u8` with `credentials`; the playlist's first
/// segment URI (with its `tg`) as a proxy path.
async fn enter(tg: &Tollgate, credentials: &str) -> String {
    let (status, body) = fetch(tg, &format!("/live/ch1/index.m3u8?{credentials}")).await;
    assert_eq!(status, StatusCode::OK, "entry with {credentials}: {body}");
    let line = body
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .unwrap_or_else(|| panic!("no segment in {body}"));
    assert!(line.contains("tg="), "segment without capability: {line}");
    format!("/live/ch1/{line}")
}

/// SIGTERM `tg`, wait for it to exit, start a new process on `toml`.
async fn restart(mut tg: Tollgate, toml: &str) -> Tollgate {
    tg.signal(Signal::SIGTERM);
    let status = tg.exit_within(Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "{status}: {}",
        tg.stderr_after_exit().await
    );
    Tollgate::start(toml).await
}

/// The ids of the live sessions of `user`.
async fn session_ids(tg: &Tollgate, user: &str) -> Vec<String> {
    let (status, body) = api(tg, "GET", &format!("/api/v1/sessions?user={user}"), None).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kicked_viewers_capability_stays_refused_after_a_restart() {
    let (_origin, _state, toml, tg) = start(false).await;
    let segment = enter(&tg, "token=alice-token").await;
    assert_eq!(fetch(&tg, &segment).await.0, StatusCode::OK);
    let ids = session_ids(&tg, "alice").await;
    assert_eq!(ids.len(), 1, "{ids:?}");
    let (status, body) = api(&tg, "DELETE", &format!("/api/v1/sessions/{}", ids[0]), None).await;
    assert_eq!(status, 204, "{body}");
    let evicted = (StatusCode::FORBIDDEN, error_body("session_evicted"));
    assert_eq!(fetch(&tg, &segment).await, evicted);

    let tg = restart(tg, &toml).await;
    assert_eq!(
        fetch(&tg, &segment).await,
        evicted,
        "the kicked capability works again after a restart"
    );
    // Signing in again is a new start, not the old capability.
    let again = enter(&tg, "token=alice-token").await;
    assert_eq!(fetch(&tg, &again).await.0, StatusCode::OK);
    assert_eq!(fetch(&tg, &segment).await, evicted);
}

#[tokio::test(flavor = "multi_thread")]
async fn blocking_a_token_stops_the_sessions_playing_on_it_also_across_a_restart() {
    let (_origin, _state, toml, tg) = start(false).await;
    let blocked = (StatusCode::FORBIDDEN, error_body("blocked"));

    // Playing, then its token is blocked: the very next request stops.
    let alice = enter(&tg, "token=alice-token").await;
    assert_eq!(fetch(&tg, &alice).await.0, StatusCode::OK);
    let list = json!({"users": [], "tokens": ["alice-token"], "ips": []});
    let (status, body) = api(&tg, "PUT", "/api/v1/blocklist", Some(list)).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        fetch(&tg, &alice).await,
        blocked,
        "a playing session on a blocked token"
    );

    // Admitted before a restart, blocked after it.
    let bob = enter(&tg, "token=bob-token").await;
    assert_eq!(fetch(&tg, &bob).await.0, StatusCode::OK);
    let tg = restart(tg, &toml).await;
    assert_eq!(fetch(&tg, &bob).await.0, StatusCode::OK);
    assert_eq!(
        fetch(&tg, &alice).await,
        blocked,
        "still blocked after the restart"
    );
    let list = json!({"users": [], "tokens": ["alice-token", "bob-token"], "ips": []});
    let (status, body) = api(&tg, "PUT", "/api/v1/blocklist", Some(list)).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        fetch(&tg, &bob).await,
        blocked,
        "a session admitted before the restart plays on after its token is blocked"
    );
    // Unblocking lets new entries in; the old capability stays refused.
    let list = json!({"users": [], "tokens": [], "ips": []});
    assert_eq!(
        api(&tg, "PUT", "/api/v1/blocklist", Some(list)).await.0,
        204
    );
    let again = enter(&tg, "token=bob-token").await;
    assert_eq!(fetch(&tg, &again).await.0, StatusCode::OK);
    assert_eq!(fetch(&tg, &bob).await, blocked);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_user_replaces_every_credential_of_the_config_user() {
    let (_origin, _state, toml, tg) = start(false).await;
    let by_token = enter(&tg, "token=alice-token").await;
    let by_password = enter(&tg, "auth=alice:alice-pass").await;
    let bob = enter(&tg, "token=bob-token").await;

    let user = json!({"tokens": ["alice-api-token"], "packages": ["all"]});
    let (status, body) = api(&tg, "PUT", "/api/v1/users/alice", Some(user)).await;
    assert_eq!(status, 204, "{body}");
    let forbidden = (StatusCode::FORBIDDEN, error_body("forbidden"));
    for old in ["token=alice-token", "auth=alice:alice-pass"] {
        assert_eq!(
            fetch(&tg, &format!("/live/ch1/index.m3u8?{old}")).await,
            forbidden,
            "the config's credential {old} still admits after the API replaced alice"
        );
    }
    // Sessions those credentials admitted stop too; bob is untouched.
    assert_eq!(fetch(&tg, &by_token).await, forbidden);
    assert_eq!(fetch(&tg, &by_password).await, forbidden);
    assert_eq!(fetch(&tg, &bob).await.0, StatusCode::OK);
    // The API's credential works, from the same viewer (same session id).
    let new = enter(&tg, "token=alice-api-token").await;
    assert_eq!(fetch(&tg, &new).await.0, StatusCode::OK);

    // And after a restart.
    let tg = restart(tg, &toml).await;
    assert_eq!(
        fetch(&tg, "/live/ch1/index.m3u8?token=alice-token").await,
        forbidden
    );
    assert_eq!(fetch(&tg, &by_token).await, forbidden);
    assert_eq!(fetch(&tg, &new).await.0, StatusCode::OK);
}

/// `uri` with the `n`-th path segment from the end (0 = last) replaced.
fn with_segment(uri: &str, n: usize, value: &str) -> String {
    let (path, query) = uri.split_once('?').unwrap();
    let mut parts: Vec<&str> = path.split('/').collect();
    let at = parts.len() - 1 - n;
    parts[at] = value;
    format!("{}?{query}", parts.join("/"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_endpoint_serves_only_periods_a_playlist_named() {
    let (_origin, _state, _toml, tg) = start(true).await;
    let (status, body) = fetch(&tg, "/live/ch1/index.m3u8?token=alice-token").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let key_uri = body
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("#EXT-X-KEY:METHOD=AES-128,URI=\"")?;
            rest.split('"').next()
        })
        .unwrap_or_else(|| panic!("no key line in {body}"))
        .to_owned();
    // /.tollgate/key/live/ch1/<inc>/<period>.key?...
    let (status, key) = get(&client(), &tg.url(&key_uri)).await;
    assert_eq!((status, key.len()), (StatusCode::OK, 16), "{key_uri}");
    let path = key_uri.split('?').next().unwrap();
    let parts: Vec<&str> = path.split('/').collect();
    let inc: u64 = parts[5].parse().unwrap();
    let period: u64 = parts[6].strip_suffix(".key").unwrap().parse().unwrap();
    assert_eq!(
        period,
        100 / 300,
        "MSN 100, 300 two-second segments per period"
    );

    let forbidden = (StatusCode::FORBIDDEN, error_body("forbidden"));
    for (what, uri) in [
        (
            "a far-future period",
            with_segment(&key_uri, 0, &format!("{}.key", period + 1_000_000)),
        ),
        (
            "a foreign incarnation",
            with_segment(&key_uri, 1, &(inc + 1).to_string()),
        ),
        (
            "no key tag",
            format!(
                "{path}?{}",
                key_uri
                    .split_once('?')
                    .unwrap()
                    .1
                    .split('&')
                    .filter(|p| p.starts_with("tg="))
                    .collect::<Vec<_>>()
                    .join("&")
            ),
        ),
    ] {
        assert_eq!(fetch(&tg, &uri).await, forbidden, "{what}: {uri}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_media_sequence_that_would_reuse_an_iv_is_a_bad_playlist() {
    let (origin, _state, _toml, tg) = start(true).await;
    assert_eq!(
        fetch(&tg, "/live/huge/index.m3u8?token=alice-token").await,
        (StatusCode::BAD_GATEWAY, error_body("bad_playlist"))
    );
    // The same playlist without encryption has no IV to reuse.
    let other = tempfile::tempdir().unwrap();
    let plain = Tollgate::start(&config(origin.addr, other.path(), false)).await;
    assert_eq!(
        fetch(&plain, "/live/huge/index.m3u8?token=alice-token")
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_that_drops_a_config_token_stops_the_sessions_it_admitted() {
    let (_origin, _state, toml, mut tg) = start(false).await;
    let alice = enter(&tg, "token=alice-token").await;
    let bob = enter(&tg, "token=bob-token").await;
    tg.rewrite_config(&toml.replace("\"alice-token\"", "\"alice-token-2\""));
    tg.signal(Signal::SIGHUP);
    tg.log_line("\"configuration reloaded\"", |v| {
        common::process::is_message(v, "configuration reloaded")
    })
    .await;
    let forbidden = (StatusCode::FORBIDDEN, error_body("forbidden"));
    assert_eq!(
        fetch(&tg, &alice).await,
        forbidden,
        "a session on a token the config no longer has"
    );
    assert_eq!(fetch(&tg, &bob).await.0, StatusCode::OK);
    let again = enter(&tg, "token=alice-token-2").await;
    assert_eq!(fetch(&tg, &again).await.0, StatusCode::OK);
}
