//! The smaller hostile findings of issue 11, through the real proxy (in
//! process, on 127.0.0.1:0) and the real binary (`tollgate check`):
//!
//! - user ids `.`/`..` and tokens/passwords with NUL/CR/LF are refused by the
//!   admin API (one id rule everywhere);
//! - a viewer refused `not_entitled` holds no `max_sessions` slot;
//! - Akamai EdgeAuth tokens in a cookie or header, and `Authorization`,
//!   never reach the origin;
//! - `token` and `backend` share a route (an unknown token passes on);
//! - `packages = ["*"]` means every channel, in the config and the API, and
//!   a `[[user]]` without `packages` is refused by `tollgate check`;
//! - `tollgate check` prints every error, each with its key path.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate::config::Config;
use tollgate::sign::{SignOptions, sign};

const ADMIN: &str = "test-admin-token";

/// One HTTP/1.1 request written byte for byte (no client normalizes the
/// path): the status code.
async fn raw_status(addr: SocketAddr, method: &str, path: &str, body: &str) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ADMIN}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    text.split(' ').nth(1).unwrap().parse().unwrap()
}

/// A proxy whose `/live/` route takes user tokens and whose admin API keeps
/// its state in a temporary directory, plus `extra` TOML.
fn api_config(origin: SocketAddr, state: &std::path::Path, extra: &str) -> String {
    ConfigBuilder::new(origin)
        .server(extra)
        .admin(ADMIN)
        .state(state)
        .live(&["token"])
        .build()
}

#[tokio::test(flavor = "multi_thread")]
async fn api_refuses_dot_ids_and_control_characters_in_secrets() {
    let origin = content_origin().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start_proxy(&api_config(origin.addr, state.path(), "")).await;
    let user = r#"{"tokens":["fine-token"],"packages":["*"]}"#;
    for id in [".", "..", "%2e", "a%00b"] {
        for kind in ["users", "packages"] {
            let body = if kind == "users" {
                user
            } else {
                r#"{"channels":["ch1"]}"#
            };
            let path = format!("/api/v1/{kind}/{id}");
            assert_eq!(
                raw_status(proxy.admin, "PUT", &path, body).await,
                400,
                "{path}"
            );
        }
    }
    for body in [
        json!({"tokens": ["a\u{0}b"], "packages": ["*"]}),
        json!({"tokens": ["a\r\nx-injected: 1"], "packages": ["*"]}),
        json!({"tokens": ["ok-token"], "password": "p\nq", "packages": ["*"]}),
    ] {
        let (s, b) = admin_call(&proxy, "PUT", "/api/v1/users/eve", Some(ADMIN), Some(&body)).await;
        assert_eq!(s, 400, "{body}: {b}");
        assert!(b.contains("control character"), "{b}");
        assert!(
            !b.contains("a\\u0000b") && !b.contains("p\\nq"),
            "secret echoed: {b}"
        );
    }
    let (s, b) = admin_call(
        &proxy,
        "PUT",
        "/api/v1/blocklist",
        Some(ADMIN),
        Some(&json!({"users": [".."], "tokens": []})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = admin_call(
        &proxy,
        "PUT",
        "/api/v1/blocklist",
        Some(ADMIN),
        Some(&json!({"tokens": ["x\ny"]})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    // Nothing of it was kept.
    let (s, _) = admin_call(&proxy, "GET", "/api/v1/users/eve", Some(ADMIN), None).await;
    assert_eq!(s, 404);
    // A good id still works.
    assert_eq!(
        raw_status(proxy.admin, "PUT", "/api/v1/users/eve@example.com", user).await,
        204
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_viewer_holds_no_session_slot() {
    refused_viewer_frees_its_slot("").await;
}

/// The same with the fleet store: the slot is freed in Redis too, before
/// the refusal is answered.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_viewer_holds_no_fleet_slot() {
    let redis = common::redis::RedisServer::start();
    refused_viewer_frees_its_slot(&format!("[sessions]\nstore = \"{}\"\n", redis.url())).await;
}

async fn refused_viewer_frees_its_slot(sessions: &str) {
    let origin = content_origin().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start_proxy(&api_config(origin.addr, state.path(), sessions)).await;
    for (name, channel) in [("pa", "cha"), ("pb", "chb")] {
        let (s, b) = admin_call(
            &proxy,
            "PUT",
            &format!("/api/v1/packages/{name}"),
            Some(ADMIN),
            Some(&json!({"channels": [channel]})),
        )
        .await;
        assert_eq!(s, 204, "{b}");
    }
    let put_user = async |packages: &[&str]| {
        let (s, b) = admin_call(
            &proxy,
            "PUT",
            "/api/v1/users/viewer",
            Some(ADMIN),
            Some(&json!({"tokens": ["viewer-token"], "max_sessions": 1, "packages": packages})),
        )
        .await;
        assert_eq!(s, 204, "{b}");
    };
    put_user(&["pa"]).await;
    // Regression guard: an entry refused `not_entitled` never took a slot
    // (entitlements are decided before the session table is asked).
    let (s, b) = fetch(&proxy, "/live/chb/index.m3u8?token=viewer-token").await;
    assert_eq!((s, b.as_str()), (403, error_body("not_entitled").as_str()));
    let (s, b) = fetch(&proxy, "/live/cha/index.m3u8?token=viewer-token").await;
    assert_eq!(s, 200, "{b}");
    // Now playing cha; the operator moves the user to pb. The cha session is
    // refused `not_entitled` at its next request, and must not keep the one
    // slot the user has from chb.
    put_user(&["pb"]).await;
    let (s, b) = fetch(&proxy, "/live/cha/index.m3u8?token=viewer-token").await;
    assert_eq!((s, b.as_str()), (403, error_body("not_entitled").as_str()));
    let (s, b) = fetch(&proxy, "/live/chb/index.m3u8?token=viewer-token").await;
    assert_eq!(s, 200, "a refused session still held the slot: {b}");
    let (s, b) = admin_call(&proxy, "GET", "/api/v1/sessions", Some(ADMIN), None).await;
    assert_eq!(s, 200);
    let list: serde_json::Value = serde_json::from_str(&b).unwrap();
    let channels: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["chb"], "{b}");
}

const AKAMAI: &str = "[auth.akamai]\nkeys = [\"a7f3c9e1b2d4f6a8c0e2b4d6f8a0c2e4\"]\n\
                      algorithm = \"sha256\"\ntoken_name = \"__token__\"\n\
                      locations = [\"query\", \"cookie\", \"header\"]\n";

#[tokio::test(flavor = "multi_thread")]
async fn akamai_cookie_header_and_authorization_never_reach_the_origin() {
    let origin = content_origin().await;
    let text = ConfigBuilder::new(origin.addr)
        .route(Route::new("live", "/live/").auth(&["akamai"]))
        .extra(AKAMAI)
        .build();
    let config = Config::parse(&text, std::path::Path::new(".")).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let link = sign(
        &config,
        &SignOptions {
            route: "live",
            path: "/live/ch1/seg-1.ts",
            ip: None,
            ttl: Duration::from_secs(3600),
            user: None,
            scheme: None,
            hwid: None,
        },
        now,
    )
    .unwrap();
    let token = link.split_once("__token__=").unwrap().1.to_owned();
    let proxy = start_proxy(&text).await;
    let url = proxy.url("/live/ch1/seg-1.ts");
    let client = h1_client();
    let by_cookie = client
        .get(&url)
        .header("cookie", format!("keep=1; __token__={token}; other=2"))
        .header("authorization", "Basic dmlld2VyOnNlY3JldA==")
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), 200);
    let by_header = client
        .get(&url)
        .header("__token__", &token)
        .header("authorization", "Bearer viewer-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 200);
    let seen = origin.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for s in &seen {
        let all = format!("{:?}", s.headers);
        assert!(!all.contains("hmac="), "token reached the origin: {all}");
        assert!(s.headers.get("authorization").is_none(), "{all}");
        assert!(s.headers.get("__token__").is_none(), "{all}");
    }
    assert_eq!(seen[0].headers.get("cookie").unwrap(), "keep=1; other=2");
    assert!(seen[1].headers.get("cookie").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn token_and_backend_share_a_route() {
    let origin = content_origin().await;
    // The backend knows one token the config does not.
    let backend = start_origin(|req: Request<Incoming>| async move {
        let known = req
            .uri()
            .query()
            .unwrap_or_default()
            .contains("token=bk-token");
        let mut r = Response::new(full(""));
        if known {
            r.headers_mut()
                .insert("x-userid", "backend-user".parse().unwrap());
        } else {
            *r.status_mut() = StatusCode::FORBIDDEN;
        }
        r
    })
    .await;
    let text = ConfigBuilder::new(origin.addr)
        .live(&["token", "backend"])
        .backend(&format!("http://{}/auth", backend.addr), "")
        .user("alice", &["alice-token"], &["*"])
        .build();
    let proxy = start_proxy(&text).await;
    let (s, b) = fetch(&proxy, "/live/ch1/index.m3u8?token=alice-token").await;
    assert_eq!(s, 200, "{b}");
    assert!(
        backend.seen_paths().is_empty(),
        "a known token asked the backend"
    );
    let (s, b) = fetch(&proxy, "/live/ch1/index.m3u8?token=bk-token").await;
    assert_eq!(s, 200, "the backend's token: {b}");
    let (s, b) = fetch(&proxy, "/live/ch1/index.m3u8?token=nobody-knows").await;
    assert_eq!((s, b.as_str()), (403, error_body("forbidden").as_str()));
    assert_eq!(backend.seen_paths().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn star_means_every_channel_in_config_and_api() {
    let origin = content_origin().await;
    let state = tempfile::tempdir().unwrap();
    let users = "[[user]]\nid = \"alice\"\ntokens = [\"alice-token\"]\npackages = [\"*\"]\n";
    let proxy = start_proxy(&api_config(origin.addr, state.path(), users)).await;
    let (s, b) = admin_call(
        &proxy,
        "PUT",
        "/api/v1/users/bob",
        Some(ADMIN),
        Some(&json!({"tokens": ["bob-token"], "packages": ["*"]})),
    )
    .await;
    assert_eq!(s, 204, "an API user with packages [\"*\"]: {b}");
    for who in ["alice-token", "bob-token"] {
        for channel in ["ch1", "sports", "anything"] {
            let (s, b) = fetch(&proxy, &format!("/live/{channel}/index.m3u8?token={who}")).await;
            assert_eq!(s, 200, "{who} on {channel}: {b}");
        }
    }
    let (s, b) = admin_call(
        &proxy,
        "PUT",
        "/api/v1/packages/*",
        Some(ADMIN),
        Some(&json!({"channels": ["ch1"]})),
    )
    .await;
    assert_eq!(s, 400, "a package named *: {b}");
}

/// `tollgate check -c <text>`: exit code and stderr.
fn check(text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tollgate.toml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["check", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const BASE: &str = "[[origin]]\nname = \"o\"\nurl = \"http://127.0.0.1:1\"\n\
                    [[route]]\nname = \"r\"\nprefix = \"/\"\norigin = \"o\"\nauth = [\"token\"]\n";

#[test]
fn check_refuses_a_user_without_packages() {
    let (code, err) = check(&format!("{BASE}[[user]]\nid = \"a\"\ntokens = [\"t\"]\n"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("user[0].packages: "), "{err}");
    assert!(err.contains("packages = [\"*\"]"), "{err}");
    let (code, err) = check(&format!(
        "{BASE}[[user]]\nid = \"a\"\ntokens = [\"t\"]\npackages = [\"*\"]\n"
    ));
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn check_prints_every_error_with_its_key_path() {
    let text = format!(
        "{BASE}[server]\nlisn = [\"127.0.0.1:0\"]\nmax_connections = \"lots\"\n\
         [sessions]\nidle_timeout = \"soon\"\n\
         [[user]]\nid = \"..\"\ntokens = [\"t\"]\npackages = [\"*\"]\nmax_session = 2\n"
    );
    let (code, err) = check(&text);
    assert_eq!(code, Some(1), "{err}");
    for path in [
        "server.lisn: ",
        "server.max_connections: ",
        "user[0].max_session: ",
        "sessions.idle_timeout: ",
        "user[0].id: ",
    ] {
        assert!(err.contains(path), "{path} missing from:\n{err}");
    }
}
