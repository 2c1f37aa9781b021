//! `[backend_server]` through the real binary (SPEC §8): tollgate answers
//! the Flussonic auth-backend protocol from its own users, packages and
//! session table. Requests shaped exactly like Flussonic's documented ones
//! (`name`, `ip`, `token`, `session_id`, `proto`, `request_type`,
//! `request_number`) get 200 with `X-UserId`, `X-Max-Sessions` and
//! `X-AuthDuration` or the SPEC §3.1 refusal; the asking server's viewer is
//! a session here, counted toward the same `max_sessions` as tollgate's own
//! viewers, listed and kicked like them; only the `allow` networks may ask.
//! And two real processes: a second tollgate whose route uses the `backend`
//! method pointed at the first plays with the first's users and limits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::process::Tollgate;
use common::*;
use tokio_util::sync::CancellationToken;
use tollgate::simorigin::{SimOrigin, SimOriginOptions};

const ADMIN: &str = "test-admin-token";

async fn origin() -> (std::net::SocketAddr, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let options = SimOriginOptions {
        channels: vec!["ch1".into(), "ch2".into()],
        ..SimOriginOptions::default()
    };
    tokio::spawn(SimOrigin::new(options).serve(listener, stop.clone()));
    (addr, stop)
}

/// The auth server: ann (one session, ch1 only) and bob (unlimited).
fn server_config(origin: std::net::SocketAddr, state: &std::path::Path) -> String {
    server_builder(origin, state).build()
}

fn server_builder(origin: std::net::SocketAddr, state: &std::path::Path) -> ConfigBuilder {
    ConfigBuilder::new(origin)
        .admin(ADMIN)
        .state(state)
        .server("trusted_proxies = [\"127.0.0.1/32\"]")
        .section(
            "backend_server",
            "enabled = true\nallow = [\"127.0.0.1/32\"]\nauth_duration = \"20s\"",
        )
        .route(Route::live(&["token"]))
        .extra(
            "[[package]]\nname = \"one\"\nchannels = [\"ch1\"]\n\n\
             [[user]]\nid = \"ann\"\ntokens = [\"ann-token\"]\nmax_sessions = 1\npackages = [\"one\"]\n\n\
             [[user]]\nid = \"bob\"\ntokens = [\"bob-token\"]\npackages = [\"*\"]\n",
        )
}

/// Ask `tg` as Flussonic does (its documented query, in its order).
async fn flussonic_ask(
    tg: &Tollgate,
    name: &str,
    ip: &str,
    token: &str,
    request_type: &str,
    number: u32,
) -> reqwest::Response {
    let url = tg.url(&format!(
        "/tv/auth?name={name}&ip={ip}&token={token}&session_id=5f3a9&proto=hls\
         &request_type={request_type}&request_number={number}"
    ));
    h1_client().get(url).send().await.unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn flussonic_shaped_asks_are_answered_from_tollgates_own_state() {
    let (addr, _stop) = origin().await;
    let state = tempfile::tempdir().unwrap();
    let tg = Tollgate::start(&server_config(addr, state.path())).await;

    let r = flussonic_ask(&tg, "ch1", "192.0.2.10", "ann-token", "new_session", 0).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-userid"), Some("ann"));
    assert_eq!(header(&r, "x-max-sessions"), Some("1"));
    assert_eq!(header(&r, "x-authduration"), Some("20"));
    // The re-check of the same viewer is the same session.
    let r = flussonic_ask(&tg, "ch1", "192.0.2.10", "ann-token", "update_session", 1).await;
    assert_eq!(r.status(), 200);
    let listed = sessions_of(&tg, ADMIN, "ann").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["route"], "backend:tv_auth");
    assert_eq!(
        (listed[0]["channel"].as_str(), listed[0]["ip"].as_str()),
        (Some("ch1"), Some("192.0.2.10"))
    );

    // Refusals, with tollgate's codes.
    for (name, token, code) in [
        ("ch2", "ann-token", "not_entitled"),
        ("ch1", "wrong-token", "forbidden"),
    ] {
        let r = flussonic_ask(&tg, name, "192.0.2.10", token, "new_session", 0).await;
        assert_eq!(r.status(), 403);
        assert_eq!(r.text().await.unwrap(), error_body(code), "{name} {token}");
    }
    // ann's one session is taken: a second viewer elsewhere, and ann
    // playing through tollgate itself, are over her limit.
    let r = flussonic_ask(&tg, "ch1", "192.0.2.11", "ann-token", "new_session", 0).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap(), error_body("session_limit"));
    assert_eq!(
        fetch(&tg, "/live/ch1/index.m3u8?token=ann-token").await,
        (403, error_body("session_limit"))
    );
    // Kicked here, the asking server's next re-check is refused.
    let id = listed[0]["id"].as_str().unwrap();
    let (s, _) = admin_call(
        &tg,
        "DELETE",
        &format!("/api/v1/sessions/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let r = flussonic_ask(&tg, "ch1", "192.0.2.10", "ann-token", "update_session", 2).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap(), error_body("session_evicted"));
    // A blocked user is refused at the next re-check too.
    let r = flussonic_ask(&tg, "ch2", "192.0.2.20", "bob-token", "new_session", 0).await;
    assert_eq!(r.status(), 200);
    let (s, _) = admin_call(
        &tg,
        "PUT",
        "/api/v1/blocklist",
        Some(ADMIN),
        Some(&serde_json::json!({"users": ["bob"]})),
    )
    .await;
    assert_eq!(s, 204);
    let r = flussonic_ask(&tg, "ch2", "192.0.2.20", "bob-token", "update_session", 1).await;
    assert_eq!(r.text().await.unwrap(), error_body("blocked"));

    // Only the allow networks may ask (here a caller behind the trusted
    // proxy, from elsewhere).
    let r = h1_client()
        .get(tg.url("/tv/auth?name=ch1&ip=192.0.2.10&token=ann-token"))
        .header("x-forwarded-for", "198.51.100.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A malformed ask.
    assert_eq!(
        fetch(&tg, "/tv/auth?token=ann-token").await,
        (400, error_body("bad_path"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_tollgate_uses_the_first_as_its_backend() {
    let (addr, _stop) = origin().await;
    let state = tempfile::tempdir().unwrap();
    let auth = Tollgate::start(&server_config(addr, state.path())).await;
    let edge_state = tempfile::tempdir().unwrap();
    let edge = Tollgate::start(
        &ConfigBuilder::new(addr)
            .admin(ADMIN)
            .state(edge_state.path())
            .backend(&auth.url("/tv/auth"), "timeout = \"5s\"")
            .route(Route::live(&["backend"]))
            .build(),
    )
    .await;
    // The edge knows no users: the auth server's decide.
    let (s, body) = fetch(&edge, "/live/ch1/index.m3u8?token=ann-token").await;
    assert_eq!(s, 200, "{body}");
    let (s, _) = fetch(&edge, "/live/ch1/index.m3u8?token=wrong").await;
    assert_eq!(s, 403);
    let (s, _) = fetch(&edge, "/live/ch2/index.m3u8?token=ann-token").await;
    assert_eq!(s, 403, "ch2 is not ann's on the auth server");
    // The edge's viewer is a session of ann's on the auth server, so her
    // limit of one holds across both.
    let listed = sessions_of(&auth, ADMIN, "ann").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["route"], "backend:tv_auth");
    assert_eq!(
        fetch(&auth, "/live/ch1/index.m3u8?token=ann-token").await,
        (403, error_body("session_limit"))
    );
    // bob plays through the edge, with the auth server's X-UserId.
    let (s, _) = fetch(&edge, "/live/ch2/index.m3u8?token=bob-token").await;
    assert_eq!(s, 200);
    let on_edge = sessions_of(&edge, ADMIN, "bob").await;
    assert_eq!(
        on_edge.len(),
        1,
        "the edge names the user the auth server gave"
    );
}

/// Two auth servers sharing a fleet store: a viewer admitted by one
/// counts against the user's limit on the other.
#[tokio::test(flavor = "multi_thread")]
async fn asks_to_two_servers_share_the_fleet_limit() {
    let redis = common::redis::RedisServer::start();
    let (addr, _stop) = origin().await;
    let config = |state: &std::path::Path| {
        server_builder(addr, state)
            .sessions(&format!(
                "store = \"{}\"\nstore_timeout = \"1s\"",
                redis.url()
            ))
            .build()
    };
    let (sa, sb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Tollgate::start(&config(sa.path())).await;
    let b = Tollgate::start(&config(sb.path())).await;
    let r = flussonic_ask(&a, "ch1", "192.0.2.10", "ann-token", "new_session", 0).await;
    assert_eq!(r.status(), 200);
    let r = flussonic_ask(&b, "ch1", "192.0.2.11", "ann-token", "new_session", 0).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.text().await.unwrap(),
        error_body("session_limit"),
        "the fleet counts A's viewer on B"
    );
}
