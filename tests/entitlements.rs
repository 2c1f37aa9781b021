//! Entitlements from `[[user]]` and `[[package]]` (SPEC §3.1, §3.2): channels
//! outside a user's packages get `not_entitled`, disabled or expired users
//! `forbidden`, users outside their networks `ip_denied`; `max_sessions`
//! refuses (`session_limit`) or evicts (`session_evicted`) per `on_limit`,
//! and a reload or reconnect never counts twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

fn config(origin: std::net::SocketAddr, on_limit: &str) -> String {
    ConfigBuilder::new(origin)
        .sessions(&format!("on_limit = \"{on_limit}\""))
        .live(&["token"])
        .package("basic", &["ch1", "news-*"])
        .add_user(User::new("alice", &["alice-token"], &["basic"]).max_sessions(1))
        .add_user(User::new("carol", &["carol-token"], &["*"]).keys("disabled = true"))
        .add_user(
            User::new("dave", &["dave-token"], &["*"])
                .keys("expires_at = \"2020-01-01T00:00:00Z\""),
        )
        .add_user(User::new("erin", &["erin-token"], &["*"]).keys("ips = [\"10.0.0.0/8\"]"))
        .user("frank", &["frank-token"], &["*"])
        .build()
}

#[tokio::test(flavor = "multi_thread")]
async fn packages_status_and_limits() {
    let origin = content_origin().await;
    let proxy = start_proxy(&config(origin.addr, "reject")).await;
    // Outside the packages: not_entitled, and it opens no session.
    assert_eq!(
        fetch(&proxy, "/live/ch9/index.m3u8?token=alice-token").await,
        (403, error_body("not_entitled"))
    );
    assert_eq!(
        fetch(&proxy, "/live/ch1/index.m3u8?token=alice-token")
            .await
            .0,
        200
    );
    assert_eq!(
        fetch(&proxy, "/live/ch1/index.m3u8?token=alice-token")
            .await
            .0,
        200
    );
    // Entitled by the glob, but one session is alice's limit.
    assert_eq!(
        fetch(&proxy, "/live/news-world/index.m3u8?token=alice-token").await,
        (403, error_body("session_limit"))
    );
    assert_eq!(
        fetch(&proxy, "/live/ch1/index.m3u8?token=carol-token").await,
        (403, error_body("forbidden"))
    );
    assert_eq!(
        fetch(&proxy, "/live/ch1/index.m3u8?token=dave-token").await,
        (403, error_body("forbidden"))
    );
    assert_eq!(
        fetch(&proxy, "/live/ch1/index.m3u8?token=erin-token").await,
        (403, error_body("ip_denied"))
    );
    // No `packages`: every channel, no limit.
    for ch in ["ch1", "ch9", "news-x"] {
        let path = format!("/live/{ch}/index.m3u8?token=frank-token");
        assert_eq!(fetch(&proxy, &path).await.0, 200, "{ch}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn evict_oldest_ends_the_first_session_at_its_next_request() {
    let origin = content_origin().await;
    let proxy = start_proxy(&config(origin.addr, "evict_oldest")).await;
    let (status, first) = fetch(&proxy, "/live/ch1/index.m3u8?token=alice-token").await;
    assert_eq!(status, 200);
    let seg = first_segment("ch1", &first);
    assert_eq!(fetch(&proxy, &seg).await.0, 200);
    assert_eq!(
        fetch(&proxy, "/live/news-1/index.m3u8?token=alice-token")
            .await
            .0,
        200
    );
    assert_eq!(
        fetch(&proxy, &seg).await,
        (403, error_body("session_evicted"))
    );
}
