//! The entitlement part of the admin API (SPEC §4) against a running proxy:
//! users, packages and the blocklist change what the very next request may
//! do; bad input gets a 400 naming the problem; everything persists in the
//! state dir and survives a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};

const TOKEN: &str = "test-admin-token";

async fn api(proxy: &TestProxy, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
    admin_call(proxy, method, path, Some(TOKEN), body.as_ref()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_apply_at_once_and_survive_a_restart() {
    let origin = content_origin().await;
    let state = tempfile::tempdir().unwrap();
    let text = admin_api_config(origin.addr, state.path());
    let proxy = start_proxy(&text).await;

    // Alice is playing.
    let (status, playlist) = fetch(&proxy, "/live/ch1/index.m3u8?token=alice-token").await;
    assert_eq!(status, 200);
    let seg = first_segment("ch1", &playlist);
    assert_eq!(fetch(&proxy, &seg).await.0, 200);

    // Blocked through the API: her very next segment is refused.
    let (s, b) = api(
        &proxy,
        "PUT",
        "/api/v1/blocklist",
        Some(json!({"users": ["alice"]})),
    )
    .await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(fetch(&proxy, &seg).await, (403, error_body("blocked")));
    assert_eq!(
        fetch(&proxy, "/live/ch1/index.m3u8?token=alice-token").await,
        (403, error_body("blocked"))
    );
    let (s, b) = api(&proxy, "GET", "/api/v1/blocklist", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&b).unwrap()["users"],
        json!(["alice"])
    );

    // A package and a user from the API override the config's carol, her
    // credentials included (SPEC §6): the API's user lists the token.
    let (s, b) = api(
        &proxy,
        "PUT",
        "/api/v1/packages/sports",
        Some(json!({"channels": ["sport-*"]})),
    )
    .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = api(
        &proxy,
        "PUT",
        "/api/v1/users/carol",
        Some(json!({"tokens": ["carol-token"], "packages": ["sports"], "max_sessions": 1})),
    )
    .await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(
        fetch(&proxy, "/live/ch1/index.m3u8?token=carol-token").await,
        (403, error_body("not_entitled"))
    );
    assert_eq!(
        fetch(&proxy, "/live/sport-1/index.m3u8?token=carol-token")
            .await
            .0,
        200
    );
    let (s, b) = api(&proxy, "GET", "/api/v1/users/carol", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&b).unwrap()["packages"],
        json!(["sports"])
    );

    // Bad input: 400 naming the problem, nothing changes.
    let (s, b) = api(
        &proxy,
        "PUT",
        "/api/v1/users/dave",
        Some(json!({"ips": ["not-a-net"]})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("ips"), "{b}");
    let (s, b) = api(
        &proxy,
        "PUT",
        "/api/v1/users/dave",
        Some(json!({"max_sesions": 1})),
    )
    .await;
    assert_eq!(s, 400, "unknown field: {b}");
    assert_eq!(api(&proxy, "GET", "/api/v1/users/dave", None).await.0, 404);
    assert_eq!(
        api(&proxy, "PUT", "/api/v1/users/a%2Fb", Some(json!({})))
            .await
            .0,
        400
    );
    let huge = json!({"channels": vec!["x".repeat(100); 20_000]});
    assert_eq!(
        api(&proxy, "PUT", "/api/v1/packages/big", Some(huge))
            .await
            .0,
        413
    );
    let unauth = get_h1(proxy.admin_url("/api/v1/blocklist")).await;
    assert_eq!(unauth.status(), 401);

    // The state file is the owner's only and never holds a plaintext password.
    let (s, b) = api(
        &proxy,
        "PUT",
        "/api/v1/users/erin",
        Some(json!({"password": "hunter2-secret"})),
    )
    .await;
    assert_eq!(s, 204, "{b}");
    let file = state.path().join("snapshot.json");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(!saved.contains("hunter2-secret"), "{saved}");
    assert!(saved.contains("sha256:"), "{saved}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (_, shown) = api(&proxy, "GET", "/api/v1/users/erin", None).await;
    assert!(
        !shown.contains("sha256") && !shown.contains("hunter2"),
        "{shown}"
    );

    // Restart on the same state dir: everything the API set is still there.
    stop(proxy).await;
    let proxy = start_proxy(&text).await;
    assert_eq!(
        fetch(&proxy, "/live/ch1/index.m3u8?token=alice-token").await,
        (403, error_body("blocked"))
    );
    assert_eq!(
        fetch(&proxy, "/live/ch1/index.m3u8?token=carol-token").await,
        (403, error_body("not_entitled"))
    );

    // Deleting the API's carol brings back the config's (every channel);
    // a bulk snapshot replaces everything at once.
    assert_eq!(
        api(&proxy, "DELETE", "/api/v1/users/carol", None).await.0,
        204
    );
    assert_eq!(
        api(&proxy, "DELETE", "/api/v1/users/carol", None).await.0,
        404
    );
    assert_eq!(
        fetch(&proxy, "/live/ch1/index.m3u8?token=carol-token")
            .await
            .0,
        200
    );
    let (s, b) = api(
        &proxy,
        "PUT",
        "/api/v1/snapshot",
        Some(json!({"users": {}, "packages": {}, "blocklist": {"users": [], "tokens": [], "ips": []}})),
    )
    .await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(
        fetch(&proxy, "/live/ch1/index.m3u8?token=alice-token")
            .await
            .0,
        200
    );
}

/// A user deleted while their player is paused (the session already
/// forgotten after `idle_timeout`, so there is nothing to end) is still
/// refused when the player comes back with its old capability: on a `token`
/// route every user must be listed.
#[tokio::test(flavor = "multi_thread")]
async fn a_user_deleted_during_a_pause_cannot_resume() {
    let origin = content_origin().await;
    let state = tempfile::tempdir().unwrap();
    let text = admin_api_builder(origin.addr, state.path())
        .sessions("idle_timeout = \"1s\"")
        .build();
    let proxy = start_proxy(&text).await;
    let (s, b) = api(
        &proxy,
        "PUT",
        "/api/v1/packages/all",
        Some(json!({"channels": ["*"]})),
    )
    .await;
    assert_eq!(s, 204, "{b}");
    let (s, b) = api(
        &proxy,
        "PUT",
        "/api/v1/users/dave",
        Some(json!({"tokens": ["dave-token"], "packages": ["all"]})),
    )
    .await;
    assert_eq!(s, 204, "{b}");
    let (status, playlist) = fetch(&proxy, "/live/ch1/index.m3u8?token=dave-token").await;
    assert_eq!(status, 200, "{playlist}");
    let seg = first_segment("ch1", &playlist);
    assert_eq!(fetch(&proxy, &seg).await.0, 200);
    // Paused: the session is forgotten.
    eventually("dave's session to be swept", async || {
        let (_, b) = api(&proxy, "GET", "/api/v1/sessions?user=dave", None).await;
        if b.contains("\"sessions\":[]") {
            Ok(())
        } else {
            Err(b)
        }
    })
    .await;
    let (s, b) = api(&proxy, "DELETE", "/api/v1/users/dave", None).await;
    assert_eq!(s, 204, "{b}");
    // Resumes with the capability it holds: refused, not re-adopted.
    assert_eq!(fetch(&proxy, &seg).await, (403, error_body("forbidden")));
}
