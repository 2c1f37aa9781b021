//! Issue acceptance 4 with real processes (SPEC §4 "survives a restart"):
//! a restarted `tollgate` keeps everything the admin API set, whether the
//! previous process drained on SIGTERM or was SIGKILLed right after its last
//! API call returned; and a process SIGKILLed while `PUT /api/v1/snapshot`
//! is loading a large snapshot restarts with exactly the previous complete
//! state or exactly the new one, never a mix, a corrupt file or a failure
//! to start, whatever moment the kill hit.
//!
//! Viewers authenticate with the `token` method and the token `<id>-token`
//! of the config's `[[user]]`; the API's user of the same id replaces
//! everything about them, credentials included (SPEC §6), so each API user
//! lists that token again, and decides the rest (packages, ips, expiry,
//! disabled, limit), as in `admin_state.rs`.
//!
//! Timings steer when the bulk-load test kills the process; no assertion
//! depends on them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup errors

mod common;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::process::{PATIENCE, Tollgate, config};
use common::{admin_call, content_origin, fetch};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The admin token of `common::config_for`.
const TOKEN: &str = "test-admin-token";

/// `common::config_for` with the `token` method on `/live/`, the state in
/// `state`, and `users` (TOML) appended.
fn config_with_state(origin: SocketAddr, state: &Path, users: &str) -> String {
    let server = format!(
        "shutdown_grace = \"5s\"\n[state]\ndir = \"{}\"\n{users}",
        state.display()
    );
    config(
        origin,
        &[
            ("auth = [\"ip\"]", "auth = [\"token\"]"),
            ("shutdown_grace = \"5s\"", &server),
        ],
    )
}

async fn api(tg: &Tollgate, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
    admin_call(tg, method, path, Some(TOKEN), body.as_ref()).await
}

/// Apply `changes` in order, each answered 204: PUT `/api/v1/<path>` with
/// the body, or DELETE it when there is none.
async fn apply(tg: &Tollgate, changes: Vec<(String, Option<Value>)>) {
    for (path, body) in changes {
        let method = if body.is_some() { "PUT" } else { "DELETE" };
        let (status, text) = api(tg, method, &format!("/api/v1/{path}"), body).await;
        assert_eq!(status, 204, "{method} {path}: {text}");
    }
}

// ---------------------------------------------------------------------------
// Restart keeps everything the API set.
// ---------------------------------------------------------------------------

/// The config's users: a token `<id>-token` each, nothing else; the API
/// decides the rest.
fn viewers() -> String {
    ["alice", "bob", "carol", "dave", "erin", "frank"]
        .iter()
        .map(|id| {
            format!("[[user]]\nid = \"{id}\"\npackages = [\"*\"]\ntokens = [\"{id}-token\"]\n")
        })
        .collect()
}

/// The blocklist the API sets, with these users on it.
fn blocklist(users: &[&str]) -> Value {
    json!({
        "users": users,
        "tokens": ["leaked-token"],
        "ips": ["203.0.113.0/24", "2001:db8::/32"],
    })
}

const ALICE_PASSWORD: &str = "alice-plaintext-password";

/// Every API change of the first process; the last one deletes a user the
/// config also has (so frank falls back to the config's: every channel).
fn first_changes() -> Vec<(String, Option<Value>)> {
    let alice = json!({
        "tokens": ["alice-token", "alice-api-2"],
        "password": ALICE_PASSWORD,
        "max_sessions": 1,
        "packages": ["sports"],
        "ips": ["127.0.0.0/8", "::1"],
        "expires_at": "2099-01-01T00:00:00Z",
        "disabled": false,
    });
    [
        ("packages/sports", Some(json!({"channels": ["sport-*"]}))),
        (
            "packages/news",
            Some(json!({"channels": ["news", "news/*"]})),
        ),
        ("users/alice", Some(alice)),
        (
            "users/bob",
            Some(json!({"tokens": ["bob-token"], "packages": ["news"], "disabled": true})),
        ),
        (
            "users/carol",
            Some(json!({"tokens": ["carol-token"], "expires_at": "2020-01-01T00:00:00Z"})),
        ),
        (
            "users/dave",
            Some(json!({"tokens": ["dave-token"], "ips": ["10.0.0.0/8"]})),
        ),
        (
            "users/erin",
            Some(json!({"tokens": ["erin-token"], "packages": ["news"]})),
        ),
        (
            "users/frank",
            Some(json!({"tokens": ["frank-token"], "packages": ["news"]})),
        ),
        ("users/gina", Some(json!({"tokens": ["gina-api-token"]}))),
        ("blocklist", Some(blocklist(&["erin"]))),
        ("users/gina", None),
        ("users/frank", None),
    ]
    .into_iter()
    .map(|(path, body)| (path.to_owned(), body))
    .collect()
}

/// The second process's changes: a new API-only user and frank (the
/// config's again) on the blocklist.
fn second_changes() -> Vec<(String, Option<Value>)> {
    let henry = json!({"tokens": ["henry-api-token"], "packages": ["news"], "max_sessions": 3});
    vec![
        ("users/henry".to_owned(), Some(henry)),
        ("blocklist".to_owned(), Some(blocklist(&["erin", "frank"]))),
    ]
}

/// What the proxy answers about everything the API set: admin reads, then
/// viewer requests, as `(request, status, JSON body or null)`.
async fn observe(tg: &Tollgate) -> Vec<(String, u16, Value)> {
    let mut seen = Vec::new();
    let reads = [
        "users/alice",
        "users/bob",
        "users/carol",
        "users/dave",
        "users/erin",
        "users/frank",
        "users/gina",
        "users/henry",
        "packages/sports",
        "packages/news",
        "blocklist",
    ];
    for what in reads {
        let (status, body) = api(tg, "GET", &format!("/api/v1/{what}"), None).await;
        assert!(
            !body.contains(ALICE_PASSWORD) && !body.contains("sha256"),
            "{what}: {body}"
        );
        seen.push((
            format!("GET {what}"),
            status,
            serde_json::from_str(&body).unwrap(),
        ));
    }
    let views = [
        ("alice", "sport-1"),
        // max_sessions = 1: a second channel is a second session.
        ("alice", "sport-2"),
        ("alice", "ch1"),
        ("bob", "news"),
        ("carol", "ch1"),
        ("dave", "ch1"),
        ("erin", "news"),
        ("frank", "ch1"),
    ];
    for (user, channel) in views {
        let path = format!("/live/{channel}/index.m3u8?token={user}-token");
        let (status, body) = fetch(tg, &path).await;
        let body = serde_json::from_str(&body).unwrap_or(Value::Null);
        seen.push((format!("{user} on {channel}"), status, body));
    }
    seen
}

/// What [`observe`] must see after [`first_changes`], and after
/// [`second_changes`] too when `second`.
fn expected(second: bool) -> Vec<(String, u16, Value)> {
    let not_found = json!({"error": "not_found"});
    let denied = |code: &str| (403, json!({ "error": code }));
    let user = |packages: Value, extra: Value| {
        let mut u = json!({
            "tokens": ["***"], "password": "", "max_sessions": 0, "packages": packages,
            "ips": [], "expires_at": null, "disabled": false,
            "region": null, "name": "", "email": "", "comment": "",
        });
        u.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        (200, u)
    };
    let henry = if second {
        user(
            json!(["news"]),
            json!({"tokens": ["***"], "max_sessions": 3}),
        )
    } else {
        (404, not_found.clone())
    };
    let blocked_users: &[&str] = if second {
        &["erin", "frank"]
    } else {
        &["erin"]
    };
    let frank_view = if second {
        denied("blocked")
    } else {
        (200, Value::Null)
    };
    let rows = [
        (
            "GET users/alice",
            user(
                json!(["sports"]),
                json!({
                    "tokens": ["***", "***"],
                    "password": "***",
                    "max_sessions": 1,
                    "ips": ["127.0.0.0/8", "::1"],
                    "expires_at": "2099-01-01T00:00:00Z",
                }),
            ),
        ),
        (
            "GET users/bob",
            user(json!(["news"]), json!({"disabled": true})),
        ),
        (
            "GET users/carol",
            user(json!([]), json!({"expires_at": "2020-01-01T00:00:00Z"})),
        ),
        (
            "GET users/dave",
            user(json!([]), json!({"ips": ["10.0.0.0/8"]})),
        ),
        ("GET users/erin", user(json!(["news"]), json!({}))),
        ("GET users/frank", (404, not_found.clone())),
        ("GET users/gina", (404, not_found)),
        ("GET users/henry", henry),
        (
            "GET packages/sports",
            (200, json!({"channels": ["sport-*"]})),
        ),
        (
            "GET packages/news",
            (200, json!({"channels": ["news", "news/*"]})),
        ),
        ("GET blocklist", (200, blocklist(blocked_users))),
        ("alice on sport-1", (200, Value::Null)),
        ("alice on sport-2", denied("session_limit")),
        ("alice on ch1", denied("not_entitled")),
        ("bob on news", denied("forbidden")),
        ("carol on ch1", denied("forbidden")),
        ("dave on ch1", denied("ip_denied")),
        ("erin on news", denied("blocked")),
        ("frank on ch1", frank_view),
    ];
    rows.into_iter()
        .map(|(what, (status, body))| (what.to_owned(), status, body))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_keeps_everything_the_api_set_after_sigterm_or_sigkill() {
    let origin = content_origin().await;
    let state = tempfile::tempdir().unwrap();
    let toml = config_with_state(origin.addr, state.path(), &viewers());

    let mut tg = Tollgate::start(&toml).await;
    apply(&tg, first_changes()).await;
    assert_eq!(observe(&tg).await, expected(false), "before any restart");
    let saved = std::fs::read_to_string(state.path().join("snapshot.json")).unwrap();
    assert!(!saved.contains(ALICE_PASSWORD), "plaintext password saved");

    // SIGTERM: a drain, then a clean exit.
    tg.signal(Signal::SIGTERM);
    let status = tg.exit_within(PATIENCE).await;
    assert!(
        status.success(),
        "{status}: {}",
        tg.stderr_after_exit().await
    );
    let mut tg = Tollgate::start(&toml).await;
    assert_eq!(observe(&tg).await, expected(false), "after SIGTERM");

    // SIGKILL as soon as the last change was answered: 204 means saved.
    apply(&tg, second_changes()).await;
    tg.signal(Signal::SIGKILL);
    let status = tg.exit_within(PATIENCE).await;
    assert_eq!(status.code(), None, "killed by a signal: {status}");
    let tg = Tollgate::start(&toml).await;
    assert_eq!(observe(&tg).await, expected(true), "after SIGKILL");
}

/// `PUT /api/v1/users/{id}` stores only a password's digest; a bulk load
/// must not be the way a plaintext password reaches the state dir.
#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_load_saves_no_plaintext_password() {
    let origin = content_origin().await;
    let state = tempfile::tempdir().unwrap();
    let tg = Tollgate::start(&config_with_state(origin.addr, state.path(), &viewers())).await;
    let snapshot = json!({"users": {"ivan": {"password": ALICE_PASSWORD}}});
    apply(&tg, vec![("snapshot".to_owned(), Some(snapshot))]).await;
    let (status, shown) = api(&tg, "GET", "/api/v1/users/ivan", None).await;
    assert_eq!(
        (
            status,
            serde_json::from_str::<Value>(&shown).unwrap()["password"].clone()
        ),
        (200, json!("***"))
    );
    let saved = std::fs::read_to_string(state.path().join("snapshot.json")).unwrap();
    assert!(
        !saved.contains(ALICE_PASSWORD),
        "plaintext password saved: {saved}"
    );
    assert!(saved.contains("sha256:"), "{saved}");
}

// ---------------------------------------------------------------------------
// SIGKILL during a bulk load.
// ---------------------------------------------------------------------------

/// Users in the bulk snapshot B: enough that loading it takes a while.
const BULK_USERS: usize = 150_000;

/// Bound for the bulk PUT and for starting on B (debug builds are slow).
const BULK_PATIENCE: Duration = Duration::from_secs(60);

/// The state A every run starts from: a few users and one package (one, so
/// the saved file's bytes do not depend on hash order).
fn state_a() -> Vec<(String, Option<Value>)> {
    let users = (1..=3).map(|i| {
        let body = json!({"tokens": [format!("a-token-{i}")], "packages": ["basic"]});
        (format!("users/a-user-{i}"), Some(body))
    });
    let basic = json!({"channels": ["ch1"]});
    std::iter::once(("packages/basic".to_owned(), Some(basic)))
        .chain(users)
        .collect()
}

/// Snapshot B as a `PUT /api/v1/snapshot` body: `users` users named
/// `b-000000`…, none of A's.
fn snapshot_b(users: usize) -> Vec<u8> {
    let mut s = String::with_capacity(users * 80);
    s.push_str(r#"{"packages":{"bulk":{"channels":["ch1","bulk-*"]}},"#);
    s.push_str(r#""blocklist":{"users":["a-user-2"],"tokens":[],"ips":[]},"users":{"#);
    for i in 0..users {
        if i > 0 {
            s.push(',');
        }
        write!(
            s,
            r#""b-{i:06}":{{"tokens":["b-token-{i:06}"],"packages":["bulk"],"max_sessions":2}}"#
        )
        .unwrap();
    }
    s.push_str("}}");
    s.into_bytes()
}

/// When [`put_snapshot`] SIGKILLs the process.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// Never: the PUT runs to its answer.
    Never,
    /// Once this share of the body is written: the server cannot have B.
    MidBody(f64),
    /// This long after the whole body was written: the server is parsing,
    /// compiling or saving B, or has answered.
    AfterBody(Duration),
    /// Once `snapshot.json.tmp` holds this many bytes: B is being saved.
    Saving(u64),
    /// Once `snapshot.json.tmp`, having existed, is gone: B was renamed
    /// into place and the answer is on its way.
    Saved,
}

/// A `PUT /api/v1/snapshot` as the client saw it.
#[derive(Debug)]
struct Put {
    /// The answer's status; `None` when the connection died first.
    status: Option<u16>,
    /// From connecting until the whole body was written, if it was.
    sent: Option<Duration>,
    /// From connecting until the answer or the connection's end.
    ended: Duration,
}

/// PUT `body` as the snapshot over a fresh connection (one request,
/// `connection: close`) to `tg`, whose state dir is `state`, and SIGKILL
/// `tg` as `kill` says. The kill moment is the only thing timing steers.
async fn put_snapshot(tg: &Tollgate, state: &Path, body: &[u8], kill: Kill) -> Put {
    let start = Instant::now();
    let (mut rx, mut tx) = TcpStream::connect(tg.admin).await.unwrap().into_split();
    let mut answer = tokio::spawn(async move {
        let mut answer = Vec::new();
        // EOF, or a reset when the process dies with our bytes unread.
        let _ = rx.read_to_end(&mut answer).await;
        (answer, start.elapsed())
    });
    let head = format!(
        "PUT /api/v1/snapshot HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        tg.admin,
        body.len()
    );
    tx.write_all(head.as_bytes()).await.unwrap();
    let cut = match kill {
        Kill::MidBody(share) => (body.len() as f64 * share) as usize,
        _ => body.len(),
    };
    tx.write_all(&body[..cut]).await.unwrap();
    let sent = (cut == body.len()).then(|| start.elapsed());
    let killed = match kill {
        Kill::Never => false,
        Kill::MidBody(_) => true,
        Kill::AfterBody(after) => tokio::select! {
            _ = &mut answer => false,
            () = tokio::time::sleep(after) => true,
        },
        Kill::Saving(_) | Kill::Saved => {
            let tmp = state.join("snapshot.json.tmp");
            let mut existed = false;
            loop {
                let len = std::fs::metadata(&tmp).ok().map(|m| m.len());
                existed |= len.is_some();
                let now = match (kill, len) {
                    (Kill::Saving(at), Some(len)) => len >= at,
                    (Kill::Saved, None) => existed,
                    _ => false,
                };
                if now || answer.is_finished() {
                    break now;
                }
                // Spaces out the polls: saving B takes far longer.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    if killed {
        tg.signal(Signal::SIGKILL);
    }
    let (answer, ended) = tokio::time::timeout(BULK_PATIENCE, answer)
        .await
        .expect("no answer and no end to the connection")
        .unwrap();
    let status = std::str::from_utf8(&answer)
        .ok()
        .and_then(|a| a.strip_prefix("HTTP/1.1 "))
        .and_then(|a| a.get(..3))
        .map(|code| code.parse().unwrap());
    Put {
        status,
        sent,
        ended,
    }
}

/// Which complete state a state file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Landed {
    A,
    B,
}

/// A user only A has, and B's first and last users: `(id, in A, in B)`.
fn witnesses() -> [(String, bool, bool); 3] {
    [
        ("a-user-1".to_owned(), true, false),
        ("b-000000".to_owned(), false, true),
        (format!("b-{:06}", BULK_USERS - 1), false, true),
    ]
}

/// Start `tollgate` on `toml` (its state dir holding `landed`) and check
/// that it serves exactly that state's users.
async fn restart_serves(toml: &str, landed: Landed) {
    let started = Instant::now();
    let tg = Tollgate::start_within(toml, BULK_PATIENCE).await;
    let startup = started.elapsed();
    for (id, in_a, in_b) in witnesses() {
        let present = if landed == Landed::A { in_a } else { in_b };
        let (status, body) = api(&tg, "GET", &format!("/api/v1/users/{id}"), None).await;
        let want = if present { 200 } else { 404 };
        assert_eq!(status, want, "landed on {landed:?}: {id}: {body}");
    }
    eprintln!("  restart on {landed:?} took {startup:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_a_bulk_load_restarts_with_the_old_or_the_new_state() {
    let origin = content_origin().await;
    let b_body = snapshot_b(BULK_USERS);
    let toml = |dir: &Path| config_with_state(origin.addr, dir, &viewers());

    // A, saved through the API by a first process.
    let a_dir = tempfile::tempdir().unwrap();
    let a_file = a_dir.path().join("snapshot.json");
    {
        let tg = Tollgate::start(&toml(a_dir.path())).await;
        apply(&tg, state_a()).await;
    }
    let a_bytes = std::fs::read(&a_file).unwrap();
    // A run's state dir, holding A (copied: same bytes, same mode).
    let with_a = || {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&a_file, dir.path().join("snapshot.json")).unwrap();
        dir
    };

    // One complete load: B's saved bytes, and how long the PUT takes.
    let dir = with_a();
    let full = {
        let tg = Tollgate::start(&toml(dir.path())).await;
        put_snapshot(&tg, dir.path(), &b_body, Kill::Never).await
    };
    assert_eq!(full.status, Some(204), "{full:?}");
    let b_bytes = std::fs::read(dir.path().join("snapshot.json")).unwrap();
    assert_ne!(a_bytes, b_bytes);
    eprintln!(
        "B: {BULK_USERS} users, body {} bytes, state file {} bytes; complete PUT: {full:?}",
        b_body.len(),
        b_bytes.len()
    );
    restart_serves(&toml(dir.path()), Landed::B).await;

    // Kill moments spread over the whole request: mid-body; at steps of
    // the time the server took after the body (parsing, compiling); while
    // B is saved (temporary file empty, half and fully written) and just
    // after its rename.
    let after_body = full.ended - full.sent.unwrap();
    let b_len = u64::try_from(b_bytes.len()).unwrap();
    let mut kills = vec![Kill::MidBody(0.3), Kill::MidBody(0.9)];
    kills.extend((0..3).map(|step| Kill::AfterBody(after_body * step / 3)));
    kills.extend([
        Kill::Saving(0),
        Kill::Saving(b_len / 2),
        Kill::Saving(b_len),
        Kill::Saved,
    ]);
    let mut landings = Vec::new();
    for kill in kills {
        let dir = with_a();
        let mut tg = Tollgate::start(&toml(dir.path())).await;
        let put = put_snapshot(&tg, dir.path(), &b_body, kill).await;
        if put.status.is_some() {
            // Answered before the kill (or never killed): let it go now.
            tg.signal(Signal::SIGKILL);
        }
        let status = tg.exit_within(PATIENCE).await;
        assert_eq!(status.code(), None, "{kill:?}: not killed: {status}");
        drop(tg);

        let file = std::fs::read(dir.path().join("snapshot.json")).unwrap();
        let landed = if file == a_bytes {
            Landed::A
        } else if file == b_bytes {
            Landed::B
        } else {
            panic!(
                "{kill:?}: snapshot.json ({} bytes) is neither A nor B",
                file.len()
            );
        };
        let tmp = std::fs::metadata(dir.path().join("snapshot.json.tmp"))
            .ok()
            .map(|m| m.len());
        eprintln!("{kill:?}: {put:?} -> {landed:?}, leftover tmp: {tmp:?} bytes");
        match put.status {
            None => {}
            Some(204) => assert_eq!(landed, Landed::B, "{kill:?}: 204 but not saved"),
            Some(other) => panic!("{kill:?}: PUT answered {other}"),
        }
        if let Kill::MidBody(_) = kill {
            assert_eq!(
                (put.status, landed),
                (None, Landed::A),
                "killed before the body was complete"
            );
        }

        // The restarted process serves exactly what the file holds; a
        // leftover temporary file changes nothing.
        restart_serves(&toml(dir.path()), landed).await;
        landings.push((kill, put.status, landed));
    }

    let count = |want: Landed| landings.iter().filter(|(_, _, l)| *l == want).count();
    eprintln!(
        "landed on A: {}, on B: {} (of {})",
        count(Landed::A),
        count(Landed::B),
        landings.len()
    );
    assert!(
        landings
            .iter()
            .any(|(_, status, landed)| status.is_none() && *landed == Landed::A),
        "no run was killed mid-load and kept A: {landings:?}"
    );
}
