//! The audit trail (SPEC §8) through the real binary: every admin-API and
//! control-plane change writes one `tollgate::audit` JSON line saying who
//! and what, and no line holds a secret.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::control_plane::{Behaviour, CP_TOKEN, ControlPlane};
use common::process::Tollgate;
use common::*;
use serde_json::{Value, json};

const TOKEN: &str = "test-admin-token";

#[tokio::test(flavor = "multi_thread")]
async fn every_api_and_control_plane_change_is_audited_without_secrets() {
    let origin = content_origin().await;
    let cp = ControlPlane::start().await;
    cp.answer(Behaviour::Answer(json!({
        "version": 1,
        "snapshot": {"users": {"cp-user": {"tokens": ["cp-user-secret-token"], "packages": []}}},
        "deny": {"users": ["mallory"], "tokens": ["denied-secret-token"], "ips": []}
    })));
    let state = tempfile::tempdir().unwrap();
    let control_plane = format!(
        "url = \"http://{}/sync\"\ntoken = \"{CP_TOKEN}\"\ninterval = \"200ms\"\ntimeout = \"1s\"\nmax_backoff = \"400ms\"",
        cp.addr()
    );
    let toml = loopback_config(origin.addr, "token")
        .state(state.path())
        .section("keys", "master = \"hex:000102030405060708090a0b0c0d0e0f\"")
        .section("control_plane", &control_plane)
        .build();
    let mut tg = Tollgate::start(&toml).await;
    // The control plane's snapshot and deny list land first (a full
    // snapshot replaces the API's state; version 1 is then held).
    let mut lines = Vec::new();
    let mut cp_seen = std::collections::BTreeSet::new();
    while cp_seen.len() < 2 {
        let v = tg
            .log_line("a control-plane audit line", |v| {
                v["target"] == "tollgate::audit"
            })
            .await;
        assert_eq!(v["who"], "control_plane", "{v}");
        cp_seen.insert((
            v["action"].as_str().unwrap().to_owned(),
            v["object"].as_str().unwrap().to_owned(),
        ));
        lines.push(v.to_string());
    }
    assert!(
        cp_seen.contains(&("replace".into(), "snapshot".into())),
        "{cp_seen:?}"
    );
    assert!(
        cp_seen.contains(&("put".into(), "deny_list".into())),
        "{cp_seen:?}"
    );
    let call = async |method: &str, path: &str, body: Option<Value>| {
        let (s, b) = admin_call(&tg, method, path, Some(TOKEN), body.as_ref()).await;
        assert!(s < 300, "{method} {path}: {s} {b}");
    };
    call(
        "PUT",
        "/api/v1/packages/p1",
        Some(json!({"channels": ["ch1"]})),
    )
    .await;
    call(
        "PUT",
        "/api/v1/users/ann",
        Some(json!({"tokens": ["ann-secret-token"], "password": "ann-secret-pw", "packages": ["p1"]})),
    )
    .await;
    call("PUT", "/api/v1/channels/ch1", Some(json!({"title": "One"}))).await;
    // A hardware id sent percent-encoded is audited decoded.
    call(
        "PUT",
        "/api/v1/devices/00%3A1A%3A79%3A00%3A00%3A01",
        Some(json!({"user": "ann"})),
    )
    .await;
    call(
        "PUT",
        "/api/v1/blocklist",
        Some(json!({"tokens": ["blocked-secret-token"]})),
    )
    .await;
    call(
        "POST",
        "/api/v1/keys/rotate",
        Some(json!({"channel": "ch1"})),
    )
    .await;
    call("DELETE", "/api/v1/users/ann", None).await;
    // Refused changes are not audited.
    let (s, _) = admin_call(&tg, "DELETE", "/api/v1/users/nobody", Some(TOKEN), None).await;
    assert_eq!(s, 404);

    let want = [
        ("put", "package", "p1"),
        ("put", "user", "ann"),
        ("put", "channel", "ch1"),
        ("put", "device", "00:1A:79:00:00:01"),
        ("put", "blocklist", ""),
        ("rotate", "keys", "ch1"),
        ("delete", "user", "ann"),
    ];
    let mut api_seen = Vec::new();
    while api_seen.len() < want.len() {
        let v = tg
            .log_line("an API audit line", |v| v["target"] == "tollgate::audit")
            .await;
        lines.push(v.to_string());
        let key = |f: &str| v[f].as_str().unwrap_or_default().to_owned();
        assert_eq!(key("who"), "api", "{v}");
        api_seen.push((key("action"), key("object"), key("id")));
    }
    let api: Vec<(&str, &str, &str)> = api_seen
        .iter()
        .map(|(a, o, i)| (a.as_str(), o.as_str(), i.as_str()))
        .collect();
    assert_eq!(api, want);
    for line in &lines {
        for secret in [
            "ann-secret-token",
            "ann-secret-pw",
            "blocked-secret-token",
            "cp-user-secret-token",
            CP_TOKEN,
            "denied-secret-token",
            TOKEN,
        ] {
            assert!(!line.contains(secret), "{secret} in {line}");
        }
    }
}
