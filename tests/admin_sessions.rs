//! The session part of the admin API (SPEC §4): `GET /api/v1/sessions`
//! lists live sessions with their bytes, `DELETE /api/v1/sessions/{id}` kicks
//! one so that its player's next request gets 403 `session_evicted`; both
//! need the bearer token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use reqwest::Method;
use serde_json::Value;

const TOKEN: &str = "test-admin-token";

fn config(origin: std::net::SocketAddr) -> String {
    ConfigBuilder::new(origin)
        .admin(TOKEN)
        .live(&["token"])
        .user("alice", &["alice-token"], &["*"])
        .user("bob", &["bob-token"], &["*"])
        .build()
}

async fn api(proxy: &TestProxy, method: Method, path: &str, token: Option<&str>) -> (u16, String) {
    admin_call(proxy, method.as_str(), path, token, None).await
}

/// [`api`] with the admin token.
async fn admin(proxy: &TestProxy, method: Method, path: &str) -> (u16, String) {
    api(proxy, method, path, Some(TOKEN)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn list_and_kick_sessions() {
    let origin = content_origin().await;
    let proxy = start_proxy(&config(origin.addr)).await;
    let c = h1_client();
    let playlist = get_text(&proxy.url("/live/ch1/index.m3u8?token=alice-token")).await;
    let seg = proxy.url(&first_segment("ch1", &playlist));
    assert_eq!(send(c.get(&seg)).await.status(), 200);
    get_text(&proxy.url("/live/ch2/index.m3u8?token=bob-token")).await;

    // Without the token: 401, whatever the path.
    for (m, p) in [
        (Method::GET, "/api/v1/sessions"),
        (Method::DELETE, "/api/v1/sessions/0000000000000001"),
    ] {
        assert_eq!(api(&proxy, m.clone(), p, None).await.0, 401, "{p}");
        assert_eq!(api(&proxy, m, p, Some("wrong")).await.0, 401, "{p}");
    }

    let (status, body) = admin(&proxy, Method::GET, "/api/v1/sessions").await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let all = v["sessions"].as_array().unwrap();
    assert_eq!(all.len(), 2, "{body}");
    let (status, body) = admin(&proxy, Method::GET, "/api/v1/sessions?user=alice").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    let alice = &v["sessions"][0];
    assert_eq!(v["sessions"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(alice["user"], "alice");
    assert_eq!(alice["channel"], "ch1");
    assert_eq!(alice["ip"], "127.0.0.1");
    assert!(
        alice["bytes"].as_u64().unwrap() >= 2,
        "playlist + segment bytes: {alice}"
    );
    assert!(alice["started"].as_str().unwrap().ends_with('Z'), "{alice}");
    let (_, body) = admin(&proxy, Method::GET, "/api/v1/sessions?channel=ch2").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["sessions"][0]["user"], "bob", "{body}");

    // Kick alice: her player's next segment is refused with session_evicted.
    let id = alice["id"].as_str().unwrap().to_owned();
    let kick = format!("/api/v1/sessions/{id}");
    assert_eq!(admin(&proxy, Method::DELETE, &kick).await.0, 204);
    let r = send(c.get(&seg)).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap(), "{\"error\":\"session_evicted\"}\n");
    // Gone from the list, and a second kick finds nothing.
    let (_, body) = admin(&proxy, Method::GET, "/api/v1/sessions?user=alice").await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["sessions"],
        serde_json::json!([])
    );
    assert_eq!(admin(&proxy, Method::DELETE, &kick).await.0, 404);
    assert_eq!(
        admin(&proxy, Method::DELETE, "/api/v1/sessions/nope")
            .await
            .0,
        404
    );
    assert_eq!(admin(&proxy, Method::POST, "/api/v1/sessions").await.0, 405);
    // Signing in again is a new start.
    let again = get_h1(proxy.url("/live/ch1/index.m3u8?token=alice-token")).await;
    assert_eq!(again.status(), 200);
}
