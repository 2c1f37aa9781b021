//! Table tests of the `token` method: loading `[[user]]`, `check`, `sign`,
//! and that no secret reaches `Debug` or an error message.

use std::path::Path;

use super::*;
use crate::auth::vectors;
use crate::auth::{AuthRequest, Check, Identity, Scheme, SignRequest};

/// `printf %s bob-password | sha256sum`.
const BOB_SHA256: &str = "df53c27a66157885ba143e34f25d6380e12168b0f7da4f0c46efa54cd9a083b7";

#[derive(serde::Deserialize)]
struct Doc {
    user: Vec<RawUser>,
}

fn parse(text: &str) -> Vec<RawUser> {
    toml::from_str::<Doc>(text).unwrap().user
}

fn load(text: &str, base: &Path) -> Result<Tokens, Vec<(String, String)>> {
    Tokens::new(&parse(text), base)
}

fn users() -> Tokens {
    let text = format!(
        r#"
[[user]]
id = "alice"
tokens = ["alice-token-1", "alice token&2=%"]
password = "correct horse battery staple"

[[user]]
id = "bob"
tokens = ["bob-token"]
password = "sha256:{BOB_SHA256}"

[[user]]
id = "carol"
tokens = ["carol-token"]

[[user]]
id = "dave"
password = "dave-pass"
"#
    );
    load(&text, Path::new(".")).unwrap()
}

fn check(t: &Tokens, query: Option<&str>) -> Check {
    let headers = http::HeaderMap::new();
    let req = AuthRequest {
        client_ip: "192.0.2.1".parse().unwrap(),
        path: "/live/ch1/index.m3u8",
        query,
        headers: &headers,
        channel: Some("ch1"),
        now: 1_700_000_000,
    };
    t.check(&req)
}

fn allow(id: &str) -> Check {
    Check::Allow(Identity {
        user: Some(id.to_owned()),
        session_limit: None,
        ..Identity::default()
    })
}

fn sign(t: &Tokens, path: &str, user: Option<&str>) -> Result<String, String> {
    t.sign(&SignRequest {
        path,
        client_ip: None,
        channel: Some("ch1"),
        start: 1_700_000_000,
        expires: 1_700_003_600,
        user,
    })
}

#[test]
fn check_table() {
    let t = users();
    let cases: &[(Option<&str>, Check)] = &[
        (Some("token=alice-token-1"), allow("alice")),
        (Some("token=bob-token"), allow("bob")),
        (Some("TOKEN=carol-token"), allow("carol")),
        (Some("token=alice%20token%262%3D%25"), allow("alice")),
        // `+` is not a space in the query: only `%XX` is decoded.
        (Some("token=alice+token%262%3D%25"), Check::Pass),
        (Some("x=1&token=carol-token&token=nope"), allow("carol")),
        (Some("token=nope&token=carol-token"), Check::Pass),
        (Some("token=unknown"), Check::Pass),
        (Some("token="), Check::Pass),
        (Some("token"), Check::Pass),
        (Some("token=%ff%fe"), Check::Pass),
        (
            Some("auth=alice:correct%20horse%20battery%20staple"),
            allow("alice"),
        ),
        (Some("auth=bob:bob-password"), allow("bob")),
        (Some("auth=bob%3Abob-password"), allow("bob")),
        (Some("auth=dave:dave-pass"), allow("dave")),
        (Some("auth=alice:wrong"), Check::Forbidden),
        (Some("auth=alice:"), Check::Forbidden),
        (Some("auth=bob:"), Check::Forbidden),
        (
            Some(&format!("auth=bob:sha256:{BOB_SHA256}")),
            Check::Forbidden,
        ),
        (Some("auth=mallory:dave-pass"), Check::Forbidden),
        (Some("auth=dave"), Check::Forbidden),
        (Some("auth=:dave-pass"), Check::Forbidden),
        (Some("auth=dave:dave-pass:x"), Check::Forbidden),
        (Some("auth=carol:carol-token"), Check::Forbidden),
        (Some("auth=%ff:dave-pass"), Check::Forbidden),
        (Some("auth="), Check::Forbidden),
        // `token` wins over `auth`, whatever the order; an unknown token
        // passes to the route's next method (cesbo, backend share ?token=).
        (Some("auth=dave:dave-pass&token=nope"), Check::Pass),
        (Some("auth=dave:nope&token=bob-token"), allow("bob")),
        (None, Check::Pass),
        (Some(""), Check::Pass),
        (
            Some("tokens=bob-token&xauth=dave:dave-pass&a=1"),
            Check::Pass,
        ),
    ];
    for (query, want) in cases {
        assert_eq!(&check(&t, *query), want, "{query:?}");
    }
}

#[test]
fn config_errors_are_all_reported_by_key_without_secrets() {
    let text = r#"
[[user]]
id = ""
tokens = ["t1"]
[[user]]
id = "a"
tokens = ["t2", "t2"]
[[user]]
id = "a"
tokens = ["t3"]
[[user]]
id = "b"
tokens = ["t2"]
[[user]]
id = "c:d"
password = "p"
[[user]]
id = "e"
tokens = [""]
[[user]]
id = "f"
password = "sha256:abc"
[[user]]
id = "g"
[[user]]
id = "h"
tokens = ["env:TOLLGATE_SURELY_UNSET_VAR"]
[[user]]
id = "i"
tokens = ["file:missing"]
password = ""
[[user]]
id = "j\u0007"
tokens = ["t4"]
"#;
    let dir = tempfile::tempdir().unwrap();
    let errs = load(text, dir.path()).unwrap_err();
    let keys: Vec<&str> = errs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "[0].id",
            "[1].tokens[1]",
            "[2].id",
            "[3].tokens[0]",
            "[4].id",
            "[5].tokens[0]",
            "[6].password",
            "[7]",
            "[8].tokens[0]",
            "[9].tokens[0]",
            "[9].password",
            "[10].id",
        ]
    );
    let msg = |k: &str| &errs.iter().find(|(key, _)| key == k).unwrap().1;
    assert!(msg("[0].id").contains("1 to 255 of"));
    assert!(msg("[1].tokens[1]").contains("tokens[0]"), "{errs:?}");
    assert!(msg("[2].id").contains("duplicate user id \"a\" (also user[1])"));
    let cross = msg("[3].tokens[0]");
    assert!(cross.contains("\"b\"") && cross.contains("user[1].tokens[0] (\"a\")"));
    assert!(msg("[4].id").contains("1 to 255 of"));
    assert!(msg("[5].tokens[0]").contains("empty"));
    assert!(msg("[6].password").contains("64 hex digits"));
    assert!(msg("[7]").contains("neither tokens nor a password"));
    assert!(msg("[8].tokens[0]").contains("TOLLGATE_SURELY_UNSET_VAR"));
    assert!(msg("[9].tokens[0]").contains("missing"));
    assert!(msg("[10].id").contains("1 to 255 of"));
    for (_, m) in &errs {
        assert!(!m.contains("t2") && !m.contains("t1"), "secret in {m}");
    }
}

#[test]
fn unknown_keys_are_refused() {
    let err = toml::from_str::<Doc>("[[user]]\nid = \"a\"\ntokens = [\"t\"]\nmax_session = 2\n")
        .err()
        .unwrap();
    assert!(err.to_string().contains("unknown field"), "{err}");
    // The entitlement keys of SPEC §2 are known.
    toml::from_str::<Doc>(
        "[[user]]\nid = \"a\"\ntokens = [\"t\"]\nmax_sessions = 2\npackages = [\"p\"]\n\
         ips = [\"10.0.0.0/8\"]\nexpires_at = \"2030-01-01T00:00:00Z\"\ndisabled = false\n",
    )
    .unwrap();
}

#[test]
fn env_and_file_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("carol.tok"), "from-file-token\n").unwrap();
    std::fs::write(dir.path().join("bob.pw"), format!("sha256:{BOB_SHA256}\n")).unwrap();
    let text = r#"
[[user]]
id = "carol"
tokens = ["file:carol.tok", "env:PATH"]
[[user]]
id = "bob"
password = "file:bob.pw"
"#;
    let t = load(text, dir.path()).unwrap();
    // PATH is always set in a test process; it has `/` and `:` to encode.
    let path = std::env::var("PATH").unwrap();
    let from_env = format!("token={}", query::percent_encode(&path));
    for q in ["token=from-file-token", from_env.as_str()] {
        assert_eq!(check(&t, Some(q)), allow("carol"), "{q}");
    }
    assert_eq!(check(&t, Some("token=file:carol.tok")), Check::Pass);
    assert_eq!(check(&t, Some("auth=bob:bob-password")), allow("bob"));
}

#[test]
fn sign_links_check_back() {
    let t = users();
    let link = sign(&t, "/live/ch1/index.m3u8", Some("alice")).unwrap();
    assert_eq!(link, "/live/ch1/index.m3u8?token=alice-token-1");
    let link = sign(&t, "/live/my ch/index.m3u8", Some("carol")).unwrap();
    assert_eq!(link, "/live/my%20ch/index.m3u8?token=carol-token");
    let (_, q) = link.split_once('?').unwrap();
    assert_eq!(check(&t, Some(q)), allow("carol"));

    let no_user = sign(&t, "/live/ch1/index.m3u8", None).unwrap_err();
    assert!(no_user.contains("user id"), "{no_user}");
    let unknown = sign(&t, "/live/ch1/index.m3u8", Some("mallory")).unwrap_err();
    assert!(
        unknown.contains("no [[user]] with id \"mallory\""),
        "{unknown}"
    );
    let no_tokens = sign(&t, "/live/ch1/index.m3u8", Some("dave")).unwrap_err();
    assert!(no_tokens.contains("has no tokens"), "{no_tokens}");
}

#[test]
fn first_token_is_signed_and_encoded() {
    let text = "[[user]]\nid = \"x\"\ntokens = [\"a b&c=d+e\", \"second\"]\n";
    let t = load(text, Path::new(".")).unwrap();
    let link = sign(&t, "/a", Some("x")).unwrap();
    assert_eq!(link, "/a?token=a%20b%26c%3Dd%2Be");
    let (_, q) = link.split_once('?').unwrap();
    assert_eq!(check(&t, Some(q)), allow("x"));
    assert_eq!(check(&t, Some("token=second")), allow("x"));
}

#[test]
fn params_are_token_and_auth() {
    assert_eq!(users().params(), ["token", "auth"]);
}

#[test]
fn debug_shows_counts_not_secrets() {
    let t = users();
    let shown = format!("{t:?}");
    assert_eq!(shown, "Tokens { users: 4, tokens: 4, passwords: 3 }");
    let raw = parse(&format!(
        "[[user]]\nid = \"bob\"\ntokens = [\"bob-token\"]\npassword = \"sha256:{BOB_SHA256}\"\n"
    ));
    let shown = format!("{raw:?}");
    assert!(
        shown.contains("bob") && shown.contains("tokens: 1"),
        "{shown}"
    );
    for secret in ["bob-token", BOB_SHA256, "sha256"] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[test]
fn config_file_prefixes_user_and_wires_the_route() {
    let good = vectors::live_route_config(
        "token",
        "[[user]]\nid = \"alice\"\ntokens = [\"t\"]\npackages = [\"*\"]\n",
    );
    let config = vectors::parse_config(&good).unwrap();
    assert!(config.auth.token.is_some());
    let bad = vectors::live_route_config(
        "token",
        "[[user]]\nid = \"a\"\ntokens = [\"t\"]\npackages = [\"*\"]\n[[user]]\nid = \"b\"\ntokens = [\"t\"]\npackages = [\"*\"]\n",
    );
    let paths = vectors::config_error_paths(&bad);
    assert!(paths.iter().any(|p| p == "user[1].tokens[0]"), "{paths:?}");
}
