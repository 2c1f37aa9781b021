//! The control plane and the config's secrets under attack (issue 11, SPEC
//! §6): an HTTPS control plane verified against a configured CA syncs, and
//! one the edge cannot verify does not; an answer tampered with or replayed
//! on the path (its HMAC no longer matches) is refused and the last good
//! state keeps serving; `http://` to a non-loopback control plane is
//! refused by `tollgate check`; no secret of the config shows in a raw
//! config's `Debug`, in a parse error, or in the log and health of an edge
//! whose Redis refuses it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::control_plane::{
    Behaviour, CP_TOKEN, ControlPlane, metrics, syncs, wait_sync, write_cp_cert,
};
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};
use tollgate::sync::signature;

/// A proxy whose `/live/` route takes `token` users from the control plane
/// at `url`, pulled every 200 ms; `extra` goes into `[control_plane]`.
fn config(origin: SocketAddr, url: &str, state: &Path, extra: &str) -> String {
    let control_plane = format!(
        "url = \"{url}\"\ntoken = \"{CP_TOKEN}\"\ninterval = \"200ms\"\ntimeout = \"2s\"\n\
         max_backoff = \"400ms\"\nedge_id = \"edge-hostile\"\n{extra}"
    );
    loopback_config(origin, "token")
        .state(state)
        .section("control_plane", &control_plane)
        .build()
}

fn snapshot(version: u64, users: Value) -> Value {
    json!({
        "version": version,
        "snapshot": {"users": users, "packages": {"basic": {"channels": ["ch1"]}}},
    })
}

fn alice(version: u64) -> Value {
    snapshot(
        version,
        json!({"alice": {"tokens": ["alice-tok"], "packages": ["basic"]}}),
    )
}

async fn wait_status(proxy: &TestProxy, path: &str, want: u16) {
    eventually(&format!("GET {path} -> {want}"), async || {
        let (s, b) = fetch(proxy, path).await;
        if s == want {
            Ok(())
        } else {
            Err(format!("{s} {b}"))
        }
    })
    .await;
}

const ALICE: &str = "/live/ch1/index.m3u8?token=alice-tok";
const MALLORY: &str = "/live/ch1/index.m3u8?token=mallory-tok";

#[tokio::test(flavor = "multi_thread")]
async fn https_control_plane_verified_by_the_configured_ca_syncs() {
    let origin = content_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write_cp_cert(dir.path());
    let cp = ControlPlane::start_tls(dir.path()).await;
    cp.answer(Behaviour::Answer(alice(1)));
    let url = format!("https://127.0.0.1:{}/sync", cp.addr().port());

    // Trusting the control plane's CA: the sync lands over TLS.
    let state = tempfile::tempdir().unwrap();
    let ca_line = format!("ca = \"{}\"", ca.display());
    let proxy = start_proxy(&config(origin.addr, &url, state.path(), &ca_line)).await;
    wait_status(&proxy, ALICE, 200).await;
    let (auth, report) = cp.reports().last().unwrap().clone();
    assert_eq!(auth.as_deref(), Some(&*format!("Bearer {CP_TOKEN}")));
    assert_eq!(report["edge"], "edge-hostile");
    drop(proxy);

    // Without the CA (system roots only) the self-signed control plane is
    // not believed: every try fails, nothing is applied.
    let state = tempfile::tempdir().unwrap();
    let proxy = start_proxy(&config(origin.addr, &url, state.path(), "")).await;
    wait_sync(&proxy, "unreachable", 0.0).await;
    wait_sync(&proxy, "unreachable", 1.0).await;
    let m = metrics(&proxy).await;
    assert_eq!(syncs(&m, "applied"), 0.0, "{m}");
    assert_eq!(fetch(&proxy, ALICE).await.0, 403);
}

/// What the relay on the path does to the control plane's answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Relay {
    /// Pass them on untouched.
    Pass,
    /// Rewrite the body (add mallory), keep the signature header.
    Tamper,
    /// Drop the signature header.
    Strip,
    /// Keep this answer (signed for this report's nonce) and answer 503;
    /// from then on, serve the kept answer to every report.
    Capture,
}

#[derive(Default)]
struct RelayState {
    mode: Option<Relay>,
    kept: Option<(Option<String>, Bytes)>,
}

/// An on-path attacker: a plain-HTTP relay in front of the control plane
/// that forwards each report (headers included) and answers as `mode` says.
async fn relay(cp: SocketAddr, state: Arc<Mutex<RelayState>>) -> TestOrigin {
    start_origin(move |req: Request<Incoming>| {
        let state = state.clone();
        async move {
            let mut fwd = h1_client().post(format!("http://{cp}/sync"));
            for name in ["authorization", "content-type", signature::NONCE_HEADER] {
                if let Some(v) = req.headers().get(name) {
                    fwd = fwd.header(name, v.to_str().unwrap());
                }
            }
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let answer = fwd.body(body).send().await.unwrap();
            let status = answer.status().as_u16();
            let mac = answer
                .headers()
                .get(signature::SIGNATURE_HEADER)
                .map(|v| v.to_str().unwrap().to_owned());
            let body = answer.bytes().await.unwrap();
            let mode = state.lock().unwrap().mode.unwrap_or(Relay::Pass);
            let (status, mac, body) = match mode {
                Relay::Pass => (status, mac, body),
                Relay::Strip => (status, None, body),
                Relay::Tamper => {
                    let mut v: Value = serde_json::from_slice(&body).unwrap();
                    v["snapshot"]["users"]["mallory"] =
                        json!({"tokens": ["mallory-tok"], "packages": ["basic"]});
                    (status, mac, Bytes::from(v.to_string()))
                }
                Relay::Capture => {
                    let mut s = state.lock().unwrap();
                    match s.kept.clone() {
                        None => {
                            s.kept = Some((mac, body));
                            (503, None, Bytes::new())
                        }
                        Some((mac, body)) => (200, mac, body),
                    }
                }
            };
            let mut resp = Response::new(full(body));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap();
            if let Some(mac) = mac {
                resp.headers_mut()
                    .insert(signature::SIGNATURE_HEADER, mac.parse().unwrap());
            }
            resp
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_stripped_or_replayed_answers_are_refused_and_the_last_good_state_kept() {
    let origin = content_origin().await;
    let cp = ControlPlane::start().await;
    let state = Arc::new(Mutex::new(RelayState::default()));
    let path = relay(cp.addr(), state.clone()).await;
    let set = |mode| state.lock().unwrap().mode = Some(mode);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{}/sync", path.addr);
    let proxy = start_proxy(&config(origin.addr, &url, dir.path(), "")).await;

    // Untouched, the signed answer applies.
    cp.answer(Behaviour::Answer(alice(1)));
    wait_status(&proxy, ALICE, 200).await;

    // The relay adds a user to the next snapshot: refused, counted, and
    // the last good state (alice, no mallory) keeps serving.
    cp.answer(Behaviour::Answer(alice(2)));
    set(Relay::Tamper);
    let m = metrics(&proxy).await;
    wait_sync(&proxy, "bad_signature", syncs(&m, "bad_signature")).await;
    wait_sync(&proxy, "bad_signature", syncs(&m, "bad_signature") + 1.0).await;
    assert_eq!(
        fetch(&proxy, MALLORY).await.0,
        403,
        "tampered user admitted"
    );
    assert_eq!(fetch(&proxy, ALICE).await.0, 200);

    // The signature header removed: refused too (fail closed).
    let m = metrics(&proxy).await;
    set(Relay::Strip);
    wait_sync(&proxy, "bad_signature", syncs(&m, "bad_signature")).await;
    assert_eq!(fetch(&proxy, ALICE).await.0, 200);
    let m = metrics(&proxy).await;
    assert_eq!(syncs(&m, "applied"), 1.0, "{m}");

    // A genuine, signed answer (alice removed, mallory added) captured
    // from one sync and replayed to later ones: its MAC is for another
    // nonce, so it is refused as well.
    cp.answer(Behaviour::Answer(snapshot(
        3,
        json!({"mallory": {"tokens": ["mallory-tok"], "packages": ["basic"]}}),
    )));
    set(Relay::Capture);
    let m = metrics(&proxy).await;
    wait_sync(&proxy, "bad_status", syncs(&m, "bad_status")).await;
    wait_sync(&proxy, "bad_signature", syncs(&m, "bad_signature")).await;
    assert_eq!(
        fetch(&proxy, MALLORY).await.0,
        403,
        "replayed answer applied"
    );
    assert_eq!(fetch(&proxy, ALICE).await.0, 200);
    let health: Value =
        serde_json::from_str(&get_text(&proxy.admin_url("/healthz")).await).unwrap();
    let last_error = health["control_plane"]["last_error"].as_str().unwrap();
    assert!(last_error.starts_with("bad_signature"), "{last_error}");
    assert_eq!(health["control_plane"]["version"], 1);

    // The path clean again: the same answer, signed for its own report,
    // applies (so the refusals above were for the MAC alone).
    set(Relay::Pass);
    wait_status(&proxy, MALLORY, 200).await;
    assert_eq!(fetch(&proxy, ALICE).await.0, 403);
}

/// `tollgate check` on `toml`, written into `dir`: exit code and stderr.
fn check(dir: &Path, toml: &str) -> (Option<i32>, String) {
    let file = dir.join("check.toml");
    std::fs::write(&file, toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["check", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    (out.status.code(), text)
}

fn control_plane_toml(cp: &str) -> String {
    format!(
        r#"
[[origin]]
name = "o"
url = "http://127.0.0.1:8081"
[[route]]
name = "r"
prefix = "/live/"
origin = "o"
auth = ["token"]
[control_plane]
token = "t"
{cp}
"#
    )
}

#[test]
fn check_refuses_http_to_a_non_loopback_control_plane() {
    let dir = tempfile::tempdir().unwrap();
    let ca = write_cp_cert(dir.path());
    for url in [
        "http://192.0.2.10/sync",
        "http://cp.example.net:8000/sync",
        "http://10.0.0.5/sync",
        "http://[2001:db8::1]/sync",
    ] {
        let (code, out) = check(dir.path(), &control_plane_toml(&format!("url = \"{url}\"")));
        assert_eq!(code, Some(1), "{url} accepted:\n{out}");
        assert!(
            out.contains("control_plane.url: ") && out.contains("not a loopback"),
            "{url}:\n{out}"
        );
    }
    for cp in [
        "url = \"https://cp.example.net/sync\"".to_owned(),
        format!(
            "url = \"https://cp.example.net/sync\"\nca = \"{}\"",
            ca.display()
        ),
        "url = \"http://127.0.0.1:8000/sync\"".to_owned(),
        "url = \"http://localhost:8000/sync\"".to_owned(),
        "url = \"http://[::1]:8000/sync\"".to_owned(),
        "url = \"http://192.0.2.10/sync\"\nallow_http = true".to_owned(),
    ] {
        let (code, out) = check(dir.path(), &control_plane_toml(&cp));
        assert_eq!(code, Some(0), "{cp}:\n{out}");
    }
    // Credentials in the URL are refused, and not repeated.
    let cp = "url = \"https://edge:SECRET-userinfo@cp.example.net/sync\"";
    let (code, out) = check(dir.path(), &control_plane_toml(cp));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("control_plane.url: "), "{out}");
    assert!(!out.contains("SECRET-userinfo"), "{out}");
    // A CA file that is missing or holds no certificate is named.
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    for ca in ["missing.pem", "empty.pem"] {
        let cp = format!("url = \"https://cp.example.net/sync\"\nca = \"{ca}\"");
        let (code, out) = check(dir.path(), &control_plane_toml(&cp));
        assert_eq!(code, Some(1), "{ca}:\n{out}");
        assert!(out.contains("control_plane.ca: "), "{ca}:\n{out}");
    }
}

/// Every secret the config can hold, each a distinct marker.
const SECRETS: [&str; 13] = [
    "SECRET-admin-token",
    "SECRET-master-0123456789abcdef0123456789abcdef",
    "SECRET-cp-token",
    "SECRET-redis-pw",
    "a1a1a1a1deadbeef5ec7e7",
    "SECRET-akamai-salt",
    "SECRET-cesbo",
    "SECRET-secure-link",
    "SECRET-wmsauth",
    "SECRET-wowza",
    "SECRET-user-token",
    "SECRET-user-password",
    "SECRET-user-token-2",
];

fn all_secrets_toml(redis: &str) -> String {
    let s = SECRETS;
    let password = format!("password = \"{}\"", s[11]);
    ConfigBuilder::new("127.0.0.1:1".parse().unwrap())
        .admin(s[0])
        .section("keys", &format!("master = \"{}\"", s[1]))
        .section(
            "control_plane",
            &format!(
                "url = \"https://cp.example.net/sync\"\ntoken = \"{}\"",
                s[2]
            ),
        )
        .sessions(&format!("store = \"redis://:{}@{redis}/0\"", s[3]))
        .auth(
            "akamai",
            &format!("keys = [\"{}\"]\nsalt = \"{}\"", s[4], s[5]),
        )
        .auth("cesbo", &format!("secret = \"{}\"", s[6]))
        .auth("secure_link", &format!("secret = \"{}\"", s[7]))
        .auth("wmsauth", &format!("key = \"{}\"", s[8]))
        .auth("wowza", &format!("secret = \"{}\"", s[9]))
        .package("all", &["*"])
        .add_user(User::new("u", &[s[10]], &["all"]).keys(&password))
        .user("v", &[s[12]], &["all"])
        .live(&["token"])
        .build()
}

fn assert_no_secret(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows {s}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_in_debug_parse_errors_or_redis_failure_logs() {
    // Debug of the raw config, and of the validated one.
    let text = all_secrets_toml("127.0.0.1:6390");
    let raw: tollgate::config::raw::RawConfig = toml::from_str(&text).unwrap();
    for shown in [format!("{raw:?}"), format!("{raw:#?}")] {
        assert_no_secret("Debug of RawConfig", &shown);
        assert!(shown.contains("MASKED"), "{shown}");
        // The Redis URL keeps everything but its password.
        assert!(
            shown.contains("redis://:MASKED@127.0.0.1:6390/0"),
            "{shown}"
        );
    }
    let config = tollgate::config::Config::parse(&text, Path::new("/")).unwrap();
    assert_no_secret("Debug of Config", &format!("{config:?}"));

    // A secret given with the wrong type: the error names the key, never
    // the value (in the library's errors and in `tollgate check`'s output).
    let dir = tempfile::tempdir().unwrap();
    for (bad, path) in [
        (
            text.replacen(
                "tokens = [\"SECRET-user-token\"]",
                "tokens = \"SECRET-user-token\"",
                1,
            ),
            "user[0].tokens",
        ),
        (
            text.replacen(
                "password = \"SECRET-user-password\"",
                "password = 31337424242",
                1,
            ),
            "user[0].password",
        ),
        (
            text.replacen(
                "keys = [\"a1a1a1a1deadbeef5ec7e7\"]",
                "keys = \"a1a1a1a1deadbeef5ec7e7\"",
                1,
            ),
            "auth.akamai.keys",
        ),
        (
            text.replacen(
                "key = \"SECRET-wmsauth\"",
                "key = { v = \"SECRET-wmsauth\" }",
                1,
            ),
            "auth.wmsauth.key",
        ),
    ] {
        assert_ne!(bad, text, "{path}: the edit did not apply");
        let e = tollgate::config::Config::parse(&bad, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(path), "{path} not named: {e}");
        assert_no_secret(path, &e);
        assert!(!e.contains("31337424242"), "{e}");
        let (code, out) = check(dir.path(), &bad);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains(path), "{path} not named: {out}");
        assert_no_secret(path, &out);
        assert!(!out.contains("31337424242"), "{out}");
    }

    // A Redis that refuses the edge: a real one without that password,
    // and a closed port. Neither the log nor /healthz nor /metrics shows
    // the password.
    let redis = common::redis::RedisServer::start();
    // A port nothing listens on (bound, then released).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let redis_addr = redis.url();
    let redis_addr = redis_addr
        .trim_start_matches("redis://")
        .trim_end_matches('/');
    for addr in [redis_addr.to_owned(), closed.to_string()] {
        let text = all_secrets_toml(&addr).replace(
            "url = \"https://cp.example.net/sync\"",
            "url = \"http://127.0.0.1:1/sync\"",
        );
        let mut edge = common::process::Tollgate::start(&text).await;
        let client = common::process::client();
        let (status, _) = common::process::get(
            &client,
            &edge.url("/live/ch1/index.m3u8?token=SECRET-user-token-2"),
        )
        .await;
        assert_ne!(status, 200);
        // The store failure is seen by /healthz (its probe runs from start,
        // so the log line may come before the listeners'); the log is
        // read whole at exit.
        let mut health = String::new();
        for _ in 0..100 {
            health = String::from_utf8_lossy(
                &common::process::get(&client, &edge.admin_url("/healthz"))
                    .await
                    .1,
            )
            .into_owned();
            if health.contains("\"healthy\":false") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(health.contains("\"healthy\":false"), "{health}");
        assert_no_secret("/healthz", &health);
        assert_no_secret("/metrics", &edge.metrics(&client).await);
        edge.signal(nix::sys::signal::Signal::SIGTERM);
        edge.exit_within(std::time::Duration::from_secs(10)).await;
        let log = edge.stderr_after_exit().await;
        assert!(
            log.lines()
                .any(|l| l.contains("\"target\":\"tollgate::fleet\"")),
            "the store failure was not logged: {log}"
        );
        assert_no_secret("the log", &log);
    }
}
