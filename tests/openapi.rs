//! `docs/openapi.yaml` matches the admin listener (SPEC §4): every
//! documented operation is called on a running proxy, without the token
//! (401 exactly as documented) and with it (a documented status and a body
//! that validates against the documented schema, with the document's own
//! examples as requests); the cheap error cases (400, 404, 413, 500) and the
//! 405/404 convention for undocumented methods and paths are checked too.
//! An operation added to the document without a case here fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "openapi/doc.rs"]
mod doc;

use std::collections::BTreeSet;

use common::*;
use doc::{Direction, Doc, Op};
use serde_json::{Value, json};

const TOKEN: &str = "test-admin-token";

/// alice's box in the config (the `device` examples of the session and
/// user lists): the main loop's session plays on it.
const ALICE_BOX: &str = "00:1A:79:00:00:01";

/// [`admin_api_config`] with the `device` method on the live route too
/// and [`ALICE_BOX`] as a config `[[device]]`.
fn config(origin: std::net::SocketAddr, state: &std::path::Path) -> String {
    ConfigBuilder::new(origin)
        .admin(TOKEN)
        .state(state)
        .live(&["token", "device"])
        .user("alice", &["alice-token"], &["*"])
        .user("carol", &["carol-token"], &["*"])
        .extra(&format!(
            "[[device]]\nhwid = \"{ALICE_BOX}\"\nuser = \"alice\""
        ))
        .build()
}

/// Every documented operation in the order the test calls it, with the
/// status it must answer given the document's examples.
const CASES: [(&str, u16); 26] = [
    ("GET /metrics", 200),
    ("GET /livez", 200),
    ("GET /readyz", 200),
    ("GET /healthz", 200),
    ("GET /api/v1/sessions", 200),
    ("DELETE /api/v1/sessions/{id}", 204),
    ("PUT /api/v1/packages/{name}", 204),
    ("GET /api/v1/packages/{name}", 200),
    ("PUT /api/v1/channels/{name}", 204),
    ("GET /api/v1/channels/{name}", 200),
    ("GET /api/v1/channels", 200),
    ("PUT /api/v1/devices/{hwid}", 204),
    ("GET /api/v1/devices/{hwid}", 200),
    ("GET /api/v1/devices", 200),
    ("PUT /api/v1/users/{id}", 204),
    ("GET /api/v1/users/{id}", 200),
    ("PUT /api/v1/blocklist", 204),
    ("GET /api/v1/blocklist", 200),
    ("PUT /api/v1/snapshot", 204),
    ("GET /api/v1/users", 200),
    ("POST /api/v1/keys/rotate", 200),
    ("POST /api/v1/sign", 200),
    ("DELETE /api/v1/users/{id}", 204),
    // Before the package its example names.
    ("DELETE /api/v1/devices/{hwid}", 204),
    ("DELETE /api/v1/packages/{name}", 204),
    ("DELETE /api/v1/channels/{name}", 204),
];

/// Documented answers this test does not provoke, and why; every other
/// documented (operation, status) must be seen.
const NOT_PROVOKED: [&str; 8] = [
    // Draining with the admin listener still up needs a response held open
    // (tests/lifecycle.rs does that).
    "GET /readyz 503",
    "GET /healthz 503",
    // Only a poisoned state lock.
    "GET /api/v1/users/{id} 500",
    "GET /api/v1/packages/{name} 500",
    "GET /api/v1/channels/{name} 500",
    "GET /api/v1/devices/{hwid} 500",
    "GET /api/v1/blocklist 500",
    // A 1 GiB body.
    "PUT /api/v1/snapshot 413",
];

/// `METHOD /path status` of every documented answer [`expect`] saw.
static SEEN: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());

/// An answer of the admin listener.
struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

async fn call(
    proxy: &TestProxy,
    method: &str,
    target: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Reply {
    let mut r = h1_client().request(method.parse().unwrap(), proxy.admin_url(target));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.header("content-type", "application/json").body(b);
    }
    let resp = r.send().await.unwrap();
    Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

/// Panic unless `reply` is what `response` (a resolved OpenAPI response
/// object) documents: its headers, its media type, a body that validates
/// against the schema, no body when none is documented, and for an error
/// with a single `example`, exactly that body.
fn assert_documented(doc: &Doc, response: &Value, reply: &Reply, what: &str) {
    let what = format!("{what} -> {} {}", reply.status, reply.body);
    for (name, h) in response
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let value = reply
            .headers
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{what}: documented header {name} missing"));
        let value = Value::String(value.to_str().unwrap().to_owned());
        doc.assert_valid(&h["schema"], &value, Direction::Response, &what);
    }
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        assert!(
            reply.body.is_empty(),
            "{what}: body where none is documented"
        );
        return;
    };
    let media_type = reply
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let media = content
        .get(&media_type)
        .unwrap_or_else(|| panic!("{what}: Content-Type {media_type:?} is not documented"));
    let value = if media_type == "application/json" {
        serde_json::from_str(&reply.body).unwrap()
    } else {
        Value::String(reply.body.clone())
    };
    doc.assert_valid(&media["schema"], &value, Direction::Response, &what);
    if let Some(example) = media.get("example").filter(|_| reply.status >= 400) {
        assert_eq!(&value, example, "{what}: not the documented error body");
    }
}

/// Call `op` (on `target`) and check the answer is `expect` as documented.
async fn expect(
    proxy: &TestProxy,
    doc: &Doc,
    op: &Op<'_>,
    target: &str,
    token: Option<&str>,
    body: Option<String>,
    status: u16,
) -> Reply {
    let reply = call(proxy, &op.method, target, token, body).await;
    let what = format!("{} {target} (token {token:?})", op.method);
    assert_eq!(reply.status, status, "{what}: {}", reply.body);
    let response = op
        .response(doc, status)
        .unwrap_or_else(|| panic!("{}: {status} is not documented", op.key()));
    assert_documented(doc, response, &reply, &what);
    SEEN.lock()
        .unwrap()
        .insert(format!("{} {status}", op.key()));
    reply
}

/// Every example in the document validates against its own schema.
fn examples_match_their_schemas(doc: &Doc) {
    let mut checked = 0;
    for op in doc.operations() {
        for p in &op.params {
            let what = format!("{} parameter {}", op.key(), p["name"]);
            doc.assert_valid(&p["schema"], &p["example"], Direction::Request, &what);
            checked += 1;
        }
        if let Some((schema, example)) = op.request_body(doc) {
            let what = format!("{} request example", op.key());
            doc.assert_valid(schema, example, Direction::Request, &what);
            checked += 1;
        }
        for status in op.statuses() {
            let response = op.response(doc, status).unwrap();
            for media in response
                .get("content")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(_, m)| m)
            {
                let examples = media.get("example").into_iter().chain(
                    media
                        .get("examples")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                        .map(|(_, e)| &e["value"]),
                );
                for example in examples {
                    let what = format!("{} {status} example", op.key());
                    doc.assert_valid(&media["schema"], example, Direction::Response, &what);
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 10, "only {checked} examples");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_operation_behaves_as_documented() {
    let doc = Doc::load();
    assert_eq!(
        doc.open_objects(),
        Vec::<String>::new(),
        "set additionalProperties"
    );
    examples_match_their_schemas(&doc);
    let ops = doc.operations();
    let documented: BTreeSet<String> = ops.iter().map(Op::key).collect();
    let tested: BTreeSet<String> = CASES.iter().map(|(k, _)| (*k).to_owned()).collect();
    assert_eq!(CASES.len(), tested.len(), "a case is listed twice");
    assert_eq!(
        documented, tested,
        "documented operations and test cases differ"
    );

    let origin = content_origin().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start_proxy(&config(origin.addr, state.path())).await;
    // A live session for the session calls, on alice's box.
    let ts = tollgate::clock::unix_now();
    let sig = tollgate::auth::device::signature("alice-token", ALICE_BOX, ts).unwrap();
    let link = format!("/live/ch1/index.m3u8?token=alice-token&hwid={ALICE_BOX}&ts={ts}&sig={sig}");
    let (status, body) = fetch(&proxy, &link).await;
    assert_eq!(status, 200, "{body}");

    let mut session_id = String::new();
    for (key, status) in CASES {
        let op = ops.iter().find(|o| o.key() == key).unwrap();
        // The session to end is the one just listed; all else is the document's examples.
        let overrides: &[(&str, &str)] = if key == "DELETE /api/v1/sessions/{id}" {
            &[("id", &session_id)]
        } else {
            &[]
        };
        let target = op.target(overrides);
        let body = op
            .request_body(&doc)
            .map(|(_, example)| example.to_string());
        let token = if op.needs_token(&doc) {
            for wrong in [None, Some("wrong"), Some(&TOKEN[1..])] {
                expect(&proxy, &doc, op, &target, wrong, body.clone(), 401).await;
            }
            Some(TOKEN)
        } else {
            assert!(op.response(&doc, 401).is_none(), "{key}: 401 without auth");
            None
        };
        let reply = expect(&proxy, &doc, op, &target, token, body, status).await;
        if key == "GET /api/v1/sessions" {
            // The filters are the examples (alice on ch1 on her box): her
            // session, checked above.
            let listed: Value = serde_json::from_str(&reply.body).unwrap();
            let sessions = listed["sessions"].as_array().unwrap();
            assert_eq!(sessions.len(), 1, "{listed}");
            assert_eq!(sessions[0]["device"], ALICE_BOX, "{listed}");
            session_id = sessions[0]["id"].as_str().unwrap().to_owned();
        }
        if key == "POST /api/v1/sign" {
            // alice's config token on the live route, on the viewer
            // listener: a link the proxy accepts.
            let signed: Value = serde_json::from_str(&reply.body).unwrap();
            let path = signed["path"].as_str().unwrap();
            assert_eq!(path, "/live/ch1/index.m3u8?token=alice-token", "{signed}");
            assert_eq!(signed["url"], proxy.url(path), "{signed}");
            let played = h1_client()
                .get(signed["url"].as_str().unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(played.status(), 200, "{signed}");
        }
        if key == "GET /api/v1/devices" {
            // The filter is the example's user: the device just put, with
            // its hardware id (config devices are not the API's).
            let put = doc.find("PUT", "/api/v1/devices/{hwid}").unwrap();
            let mut device = put.request_body(&doc).unwrap().1.clone();
            device["hwid"] = put.params[0]["example"].clone();
            let listed: Value = serde_json::from_str(&reply.body).unwrap();
            assert_eq!(listed, json!({ "devices": [device] }));
        }
    }

    // The auth scheme is case-insensitive.
    let lower = h1_client()
        .get(proxy.admin_url("/api/v1/blocklist"))
        .header("authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status(), 200);

    error_cases(&proxy, &doc, &session_id).await;
    unmatched_requests(&proxy, &doc).await;
    state_dir_failure(&proxy, &doc, state.path()).await;

    let answers: BTreeSet<String> = ops
        .iter()
        .flat_map(|o| o.statuses().into_iter().map(|s| format!("{} {s}", o.key())))
        .collect();
    let seen = SEEN.lock().unwrap().clone();
    let missing: BTreeSet<&str> = answers.difference(&seen).map(String::as_str).collect();
    assert_eq!(
        missing,
        BTreeSet::from(NOT_PROVOKED),
        "documented answers not provoked"
    );
}

/// The documented 400, 404 and 413 answers that are cheap to provoke.
async fn error_cases(proxy: &TestProxy, doc: &Doc, ended_session: &str) {
    let ended = format!("/api/v1/sessions/{ended_session}");
    let cases: [(&str, &str, Option<&str>, u16); 39] = [
        ("DELETE", &ended, None, 404),
        ("DELETE", "/api/v1/sessions/not-a-session-id", None, 404),
        ("GET", "/api/v1/users/nobody", None, 404),
        ("GET", "/api/v1/users?limit=5000", None, 400),
        ("DELETE", "/api/v1/users/nobody", None, 404),
        ("GET", "/api/v1/packages/nothing", None, 404),
        ("DELETE", "/api/v1/packages/nothing", None, 404),
        ("GET", "/api/v1/channels/nothing", None, 404),
        ("DELETE", "/api/v1/channels/nothing", None, 404),
        ("GET", "/api/v1/devices/nothing", None, 404),
        ("DELETE", "/api/v1/devices/nothing", None, 404),
        // Outside the hardware-id rule: no such device.
        ("GET", "/api/v1/devices/a%2Fb", None, 404),
        // Unknown field, invalid user, bad reference, hwid outside the rule.
        (
            "PUT",
            "/api/v1/devices/box-9",
            Some(r#"{"user":"carol","disabeld":true}"#),
            400,
        ),
        (
            "PUT",
            "/api/v1/devices/box-9",
            Some(r#"{"user":"a/b"}"#),
            400,
        ),
        (
            "PUT",
            "/api/v1/devices/box-9",
            Some(r#"{"user":"carol","packages":["none"]}"#),
            400,
        ),
        (
            "PUT",
            "/api/v1/devices/a%2Fb",
            Some(r#"{"user":"carol"}"#),
            400,
        ),
        // The hardware id is percent-decoded: one device either way.
        (
            "PUT",
            "/api/v1/devices/00%3A1A%3A79%3A00%3A00%3A03",
            Some(r#"{"user":"carol"}"#),
            204,
        ),
        ("GET", "/api/v1/devices/00:1A:79:00:00:03", None, 200),
        (
            "DELETE",
            "/api/v1/devices/00%3A1A%3A79%3A00%3A00%3A03",
            None,
            204,
        ),
        ("GET", "/api/v1/devices/00:1A:79:00:00:03", None, 404),
        (
            "PUT",
            "/api/v1/channels/ch9",
            Some(r#"{"logo":"javascript:alert(1)"}"#),
            400,
        ),
        (
            "PUT",
            "/api/v1/channels/ch9",
            Some(r#"{"dvr_depth":"3"}"#),
            400,
        ),
        ("PUT", "/api/v1/channels/a%2Fb", Some("{}"), 400),
        (
            "POST",
            "/api/v1/keys/rotate",
            Some(r#"{"channel":"a/b"}"#),
            400,
        ),
        (
            "POST",
            "/api/v1/keys/rotate",
            Some(r#"{"chanel":"ch1"}"#),
            400,
        ),
        // No token for the user anywhere, a channel outside the id rule,
        // no such route, an unknown field.
        (
            "POST",
            "/api/v1/sign",
            Some(r#"{"channel":"ch1","user":"nobody"}"#),
            400,
        ),
        (
            "POST",
            "/api/v1/sign",
            Some(r#"{"channel":"a/b","user":"alice"}"#),
            400,
        ),
        (
            "POST",
            "/api/v1/sign",
            Some(r#"{"channel":"ch1","user":"alice","route":"x"}"#),
            400,
        ),
        (
            "POST",
            "/api/v1/sign",
            Some(r#"{"channel":"ch1","user":"alice","rout":"live"}"#),
            400,
        ),
        // Unknown field, invalid value, name outside the pattern, bad reference.
        (
            "PUT",
            "/api/v1/users/dave",
            Some(r#"{"max_sesions":1}"#),
            400,
        ),
        (
            "PUT",
            "/api/v1/users/dave",
            Some(r#"{"ips":["not-a-net"]}"#),
            400,
        ),
        ("PUT", "/api/v1/users/a%2Fb", Some("{}"), 400),
        (
            "PUT",
            "/api/v1/users/dave",
            Some(r#"{"packages":["none"]}"#),
            400,
        ),
        (
            "PUT",
            "/api/v1/packages/news",
            Some(r#"{"channels":[""]}"#),
            400,
        ),
        (
            "PUT",
            "/api/v1/blocklist",
            Some(r#"{"ips":"10.0.0.0/8"}"#),
            400,
        ),
        (
            "PUT",
            "/api/v1/snapshot",
            Some(r#"{"users":{"x":{"packages":["none"]}}}"#),
            400,
        ),
        // A package an API user still names cannot go.
        (
            "PUT",
            "/api/v1/packages/kids",
            Some(r#"{"channels":["cartoons"]}"#),
            204,
        ),
        (
            "PUT",
            "/api/v1/users/erin",
            Some(r#"{"packages":["kids"]}"#),
            204,
        ),
        ("DELETE", "/api/v1/packages/kids", None, 400),
    ];
    for (method, path, body, status) in cases {
        let op = doc
            .find(method, path.split('?').next().unwrap_or(path))
            .unwrap_or_else(|| panic!("{method} {path} is not documented"));
        let reply = expect(
            proxy,
            doc,
            &op,
            path,
            Some(TOKEN),
            body.map(str::to_owned),
            status,
        )
        .await;
        if status == 400 {
            let v: Value = serde_json::from_str(&reply.body).unwrap();
            assert_eq!(v["error"], "invalid", "{method} {path}");
            assert!(
                !v["problems"].as_array().unwrap().is_empty(),
                "{method} {path}"
            );
        }
    }
    // A device's problems name it by its decoded hardware id.
    for (path, body, problem) in [
        (
            "/api/v1/devices/box-9",
            r#"{"user":"carol","packages":["none"]}"#,
            r#"devices["box-9"].packages[0]: unknown package "none""#,
        ),
        (
            "/api/v1/devices/a%2Fb",
            "{}",
            r#"path: the hardware id after /devices/ must be 1 to 128 of A-Z a-z 0-9 - _ . @ :, and not "." or "..""#,
        ),
    ] {
        let reply = call(proxy, "PUT", path, Some(TOKEN), Some(body.to_owned())).await;
        let v: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(
            v,
            json!({"error": "invalid", "problems": [problem]}),
            "{path}"
        );
    }
    // A link that cannot be signed says why.
    for (body, problems) in [
        (
            r#"{"channel":"ch1","user":"nobody"}"#,
            json!([r#"no [[user]] with id "nobody""#]),
        ),
        (
            r#"{"channel":"a/b","user":"."}"#,
            json!([
                r#"channel: must be 1 to 255 of A-Z a-z 0-9 - _ . @, and not "." or "..""#,
                r#"user: must be 1 to 255 of A-Z a-z 0-9 - _ . @, and not "." or "..""#,
            ]),
        ),
        (
            r#"{"channel":"ch1","user":"alice","route":"x"}"#,
            json!([r#"route: no route named "x""#]),
        ),
    ] {
        let reply = call(
            proxy,
            "POST",
            "/api/v1/sign",
            Some(TOKEN),
            Some(body.to_owned()),
        )
        .await;
        let v: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(
            v,
            json!({"error": "invalid", "problems": problems}),
            "{body}"
        );
    }
    // One byte over 1 MiB (valid JSON, padded) on every small-body PUT.
    let mut big = " ".repeat(1 << 20);
    big.push_str("{}");
    let mut puts = 0;
    for op in doc.operations() {
        if matches!(op.method.as_str(), "PUT" | "POST") && op.path != "/api/v1/snapshot" {
            let target = op.target(&[]);
            expect(
                proxy,
                doc,
                &op,
                &target,
                Some(TOKEN),
                Some(big.clone()),
                413,
            )
            .await;
            puts += 1;
        }
    }
    assert_eq!(puts, 7);
}

/// Undocumented methods on documented paths and undocumented paths answer
/// as `x-unmatched` says; under `/api/` only after the token.
async fn unmatched_requests(proxy: &TestProxy, doc: &Doc) {
    let unmatched = &doc.root["x-unmatched"];
    let status = |kind: &str| {
        unmatched[kind]["status"]
            .as_str()
            .unwrap()
            .parse::<u16>()
            .unwrap()
    };
    let response = |kind: &str| doc.resolve(&unmatched[kind]["response"]);
    let mut tried = 0;
    for (path, item) in doc.root["paths"].as_object().unwrap() {
        let ops: Vec<Op> = doc
            .operations()
            .into_iter()
            .filter(|o| o.path == path)
            .collect();
        let target = ops[0].target(&[]);
        let mut allow: Vec<String> = ops.iter().map(|o| o.method.clone()).collect();
        if !path.starts_with("/api/") && item.get("get").is_some() {
            allow.push("HEAD".into());
        }
        for method in ["GET", "PUT", "POST", "DELETE", "PATCH"] {
            if allow.iter().any(|m| m == method) {
                continue;
            }
            let token = path.starts_with("/api/").then_some(TOKEN);
            if token.is_some() {
                assert_eq!(call(proxy, method, &target, None, None).await.status, 401);
            }
            let reply = call(proxy, method, &target, token, None).await;
            let what = format!("{method} {target}");
            assert_eq!(reply.status, status("method"), "{what}: {}", reply.body);
            assert_documented(doc, response("method"), &reply, &what);
            assert_eq!(reply.headers["allow"], allow.join(", ").as_str(), "{what}");
            tried += 1;
        }
    }
    assert!(tried > 20, "{tried}");
    for path in [
        "/nope",
        "/metrics/x",
        "/api/v1/nope",
        "/api/v1/user",
        "/api/v1/users/a/b",
        "/api/v1/device",
        "/api/v1/devices/a/b",
        "/api/v1/sessions/0000000000000001/x",
        "/api/v1",
        "/api/v2/users/a",
        "/api/v1//api/v1/blocklist",
    ] {
        assert!(!doc.has_path(path), "{path} is documented");
        for method in ["GET", "DELETE"] {
            let token = path.starts_with("/api/").then_some(TOKEN);
            if token.is_some() {
                assert_eq!(
                    call(proxy, method, path, None, None).await.status,
                    401,
                    "{path}"
                );
            }
            let reply = call(proxy, method, path, token, None).await;
            let what = format!("{method} {path}");
            assert_eq!(reply.status, status("path"), "{what}: {}", reply.body);
            assert_documented(doc, response("path"), &reply, &what);
        }
    }
}

/// With the state dir unwritable every change documenting a 500 answers
/// it (a kick too: its revocation cannot be saved) and nothing changes;
/// once the dir is back, changes apply again.
async fn state_dir_failure(proxy: &TestProxy, doc: &Doc, state: &std::path::Path) {
    // Something for each example to act on: the package the user and
    // device examples name, and a user and a device (naming no package, so
    // the package can go).
    for (path, body) in [
        ("/api/v1/packages/sports", json!({"channels": ["sport-*"]})),
        ("/api/v1/users/carol", json!({})),
        ("/api/v1/channels/ch1", json!({"title": "One"})),
        (
            "/api/v1/devices/00:1A:79:00:00:02",
            json!({"user": "carol"}),
        ),
    ] {
        let op = doc.find("PUT", path).unwrap();
        expect(
            proxy,
            doc,
            &op,
            path,
            Some(TOKEN),
            Some(body.to_string()),
            204,
        )
        .await;
    }
    let reads = [
        "/api/v1/users/carol",
        "/api/v1/packages/sports",
        "/api/v1/channels/ch1",
        "/api/v1/devices/00:1A:79:00:00:02",
        "/api/v1/blocklist",
    ];
    let mut before = Vec::new();
    for path in reads {
        before.push(call(proxy, "GET", path, Some(TOKEN), None).await.body);
    }

    // A live session to kick: a kick is saved in the state dir too.
    let (status, _) = fetch(proxy, "/live/ch1/index.m3u8?token=alice-token").await;
    assert_eq!(status, 200);
    let listed = call(
        proxy,
        "GET",
        "/api/v1/sessions?user=alice",
        Some(TOKEN),
        None,
    )
    .await;
    let listed: Value = serde_json::from_str(&listed.body).unwrap();
    let kick_id = listed["sessions"][0]["id"].as_str().unwrap().to_owned();

    std::fs::remove_dir_all(state).unwrap();
    std::fs::write(state, "not a directory").unwrap();
    let kick = doc.find("DELETE", "/api/v1/sessions/{id}").unwrap();
    let target = kick.target(&[("id", &kick_id)]);
    expect(proxy, doc, &kick, &target, Some(TOKEN), None, 500).await;
    let mut changes = 0;
    for op in doc.operations() {
        // Signing a link changes nothing.
        if op.path.starts_with("/api/v1/sessions")
            || op.method == "GET"
            || op.path == "/api/v1/sign"
        {
            continue;
        }
        let body = op.request_body(doc).map(|(_, example)| example.to_string());
        expect(proxy, doc, &op, &op.target(&[]), Some(TOKEN), body, 500).await;
        changes += 1;
    }
    assert_eq!(changes, 11);
    for (path, before) in reads.into_iter().zip(before) {
        assert_eq!(
            call(proxy, "GET", path, Some(TOKEN), None).await.body,
            before
        );
    }

    std::fs::remove_file(state).unwrap();
    std::fs::create_dir(state).unwrap();
    let op = doc.find("DELETE", "/api/v1/users/carol").unwrap();
    expect(
        proxy,
        doc,
        &op,
        "/api/v1/users/carol",
        Some(TOKEN),
        None,
        204,
    )
    .await;
}
