//! `PUT /api/v1/snapshot` (SPEC §4 bulk load) against a running proxy: the
//! body is streamed into the compiler and applied whole, or not at all
//! (too large, invalid, or broken off by the client), and the API snapshot
//! is overlaid on the config's `[[user]]`/`[[package]]`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "test-admin-token";

/// A proxy with `auth` on `/live/` (`ip` lets loopback in) and the state in
/// `state`.
fn config(origin: std::net::SocketAddr, state: &std::path::Path, auth: &str) -> ConfigBuilder {
    loopback_config(origin, auth).state(state)
}

async fn api(proxy: &TestProxy, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
    admin_call(proxy, method, path, Some(TOKEN), body.as_ref()).await
}

/// Status of the entry playlist of `channel` for the holder of `token`.
async fn play(proxy: &TestProxy, channel: &str, token: &str) -> u16 {
    fetch(proxy, &format!("/live/{channel}/index.m3u8?token={token}"))
        .await
        .0
}

/// A snapshot of `n` users `u0…`, each with token `t<i>` and package
/// `basic`, blocking 127.0.0.1 (what the `ip` method lets in).
fn snapshot(n: usize) -> Value {
    let users: serde_json::Map<String, Value> = (0..n)
        .map(|i| {
            let user = json!({"tokens": [format!("t{i}")], "packages": ["basic"]});
            (format!("u{i}"), user)
        })
        .collect();
    json!({
        "users": users,
        "packages": {"basic": {"channels": ["ch1", "news/*"]}},
        "blocklist": {"users": [], "tokens": [], "ips": ["127.0.0.1"]},
    })
}

/// PUT `text` as the snapshot, sent in chunks of `chunk` bytes (chunked
/// transfer encoding: the proxy cannot know the length in advance).
async fn put_chunked(proxy: &TestProxy, text: &str, chunk: usize) -> (u16, String) {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = text
        .as_bytes()
        .chunks(chunk)
        .map(|c| Ok(c.to_vec()))
        .collect();
    assert!(chunks.len() > 1);
    let resp = h1_client()
        .put(proxy.admin_url("/api/v1/snapshot"))
        .bearer_auth(TOKEN)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Send a raw HTTP/1.1 `PUT /api/v1/snapshot` declaring `length` bytes,
/// then `body`, then close the sending side; everything the proxy answers
/// before it closes the connection.
async fn put_raw(proxy: &TestProxy, length: u64, body: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(proxy.admin).await.unwrap();
    let head = format!(
        "PUT /api/v1/snapshot HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: {length}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // The proxy may answer (and close) before taking the whole body.
    let _ = s.write_all(body).await;
    let _ = s.shutdown().await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        s.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "the proxy never closed the connection");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_snapshot_is_streamed_and_applied_whole_or_not_at_all() {
    let origin = content_origin().await;
    let state = tempfile::tempdir().unwrap();
    // No config users: the API layer is the effective entitlements.
    let text = config(origin.addr, state.path(), "ip").build();
    let proxy = start_proxy(&text).await;
    let denied = (403, error_body("ip_denied"));
    assert_eq!(fetch(&proxy, "/live/ch1/index.m3u8").await.0, 200);

    // Streamed in small chunks: applied, visible to the very next request.
    let text_snapshot = snapshot(2_000).to_string();
    let (s, b) = put_chunked(&proxy, &text_snapshot, 1_000).await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(fetch(&proxy, "/live/ch1/index.m3u8").await, denied);
    let (s, b) = api(&proxy, "GET", "/api/v1/users/u1999", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        serde_json::from_str::<Value>(&b).unwrap()["packages"],
        json!(["basic"])
    );
    let file = state.path().join("snapshot.json");
    let saved = std::fs::read(&file).unwrap();
    let on_disk: Value = serde_json::from_slice(&saved).unwrap();
    assert_eq!(on_disk["users"].as_object().unwrap().len(), 2_000);

    let unchanged = async || {
        assert_eq!(fetch(&proxy, "/live/ch1/index.m3u8").await, denied);
        assert_eq!(api(&proxy, "GET", "/api/v1/users/u1999", None).await.0, 200);
        assert_eq!(
            api(&proxy, "GET", "/api/v1/users/mallory", None).await.0,
            404
        );
        assert_eq!(std::fs::read(&file).unwrap(), saved);
    };

    // A declared length over the 1 GiB limit: 413 before reading the body.
    let answer = put_raw(&proxy, 2 << 30, b"{\"users\":{}}").await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");
    unchanged().await;

    // Invalid: 400 with every problem's path, secrets not echoed.
    let bad = json!({
        "users": {
            "mallory": {"tokens": ["mallory-token"], "packages": ["nope"], "ips": ["x"]},
        },
        "packages": {},
    });
    let (s, b) = put_chunked(&proxy, &bad.to_string(), 16).await;
    assert_eq!(s, 400, "{b}");
    let body: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(body["error"], "invalid");
    let problems = body["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{b}");
    assert!(b.contains(r#"users[\"mallory\"].packages[0]"#), "{b}");
    assert!(b.contains(r#"users[\"mallory\"].ips[0]"#), "{b}");
    unchanged().await;

    // Not JSON, or not the snapshot shape: 400, values redacted.
    for text in [
        r#"{"users":{"mallory":{"tokens":["mallory-token"]}}"#.to_owned(),
        r#"{"users":{},"surprise":"mallory-token"}"#.to_owned(),
        format!("{} trailing", snapshot(1)),
    ] {
        let (s, b) = put_chunked(&proxy, &text, 8).await;
        assert_eq!(s, 400, "{text}: {b}");
        assert_eq!(
            serde_json::from_str::<Value>(&b).unwrap()["error"],
            "invalid"
        );
        assert!(!b.contains("mallory-token"), "{b}");
        unchanged().await;
    }

    // The client goes away mid-body, after a complete-looking document:
    // not applied (a broken-off body is never taken for a whole one).
    let whole = json!({"users": {"mallory": {"tokens": ["mallory-token"]}}}).to_string();
    let answer = put_raw(&proxy, whole.len() as u64 + 1_000, whole.as_bytes()).await;
    // The sending side is closed, not the receiving one: the proxy still
    // answers, which also says it is done with the request.
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("bad_body"), "{answer}");
    unchanged().await;

    // And after all that, the state still loads after a restart.
    stop(proxy).await;
    let proxy = start_proxy(&text).await;
    assert_eq!(fetch(&proxy, "/live/ch1/index.m3u8").await, denied);
    assert_eq!(api(&proxy, "GET", "/api/v1/users/u1999", None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn api_snapshot_is_overlaid_on_the_config_users_and_packages() {
    let origin = content_origin().await;
    let state = tempfile::tempdir().unwrap();
    let text = config(origin.addr, state.path(), "token")
        .package("config-pkg", &["cfg-*"])
        .user("alice", &["alice-token"], &["*"])
        .user("bob", &["bob-token"], &[])
        .user("carol", &["carol-token"], &["config-pkg"])
        .build();
    let proxy = start_proxy(&text).await;
    assert_eq!(play(&proxy, "cfg-1", "carol-token").await, 200);

    assert_eq!(play(&proxy, "cfg-1", "bob-token").await, 403);

    // The API's carol and bob (same ids) replace the config's; bob's
    // packages include one only the config defines; the config's alice
    // stays, and the API's blocklist blocks her.
    let snapshot = json!({
        "users": {
            "carol": {"tokens": ["carol-token"], "packages": ["api-pkg"]},
            "bob": {"tokens": ["bob-token"], "packages": ["config-pkg", "api-pkg"]},
        },
        "packages": {"api-pkg": {"channels": ["api-*"]}},
        "blocklist": {"users": ["alice"]},
    });
    let (s, b) = put_chunked(&proxy, &snapshot.to_string(), 32).await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(play(&proxy, "cfg-1", "carol-token").await, 403);
    assert_eq!(play(&proxy, "api-1", "carol-token").await, 200);
    assert_eq!(play(&proxy, "cfg-1", "bob-token").await, 200);
    assert_eq!(play(&proxy, "api-1", "bob-token").await, 200);
    assert_eq!(
        fetch(&proxy, "/live/ch1/index.m3u8?token=alice-token").await,
        (403, error_body("blocked"))
    );
    // The API's own view: its packages only; its users as given.
    let (s, _) = api(&proxy, "GET", "/api/v1/packages/config-pkg", None).await;
    assert_eq!(s, 404);
    let (s, b) = api(&proxy, "GET", "/api/v1/users/bob", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        serde_json::from_str::<Value>(&b).unwrap()["packages"],
        json!(["config-pkg", "api-pkg"])
    );

    // A package neither the API nor the config defines: refused, nothing
    // changes.
    let unknown = json!({"users": {"bob": {"packages": ["config-pkg", "gone"]}}});
    let (s, b) = api(&proxy, "PUT", "/api/v1/snapshot", Some(unknown)).await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b.contains(r#"users[\"bob\"].packages[1]: unknown package"#),
        "{b}"
    );
    assert_eq!(play(&proxy, "api-1", "bob-token").await, 200);

    // Single-user edits go through the same layer and merge.
    let (s, b) = api(
        &proxy,
        "PUT",
        "/api/v1/users/carol",
        Some(json!({"tokens": ["carol-token"], "packages": ["config-pkg"]})),
    )
    .await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(play(&proxy, "cfg-2", "carol-token").await, 200);
    assert_eq!(play(&proxy, "api-2", "carol-token").await, 403);

    // Restart: the layer (naming a config package) loads again.
    stop(proxy).await;
    let proxy = start_proxy(&text).await;
    assert_eq!(play(&proxy, "cfg-1", "bob-token").await, 200);
    assert_eq!(play(&proxy, "api-1", "bob-token").await, 200);
    assert_eq!(play(&proxy, "cfg-2", "carol-token").await, 200);
    assert_eq!(
        fetch(&proxy, "/live/ch1/index.m3u8?token=alice-token").await,
        (403, error_body("blocked"))
    );
}
