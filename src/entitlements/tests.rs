use std::net::IpAddr;

use super::*;

const NOW: u64 = 1_900_000_000; // 2030-03-17

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The fixture every decide test uses, as JSON (the SPEC §4 shapes).
const FIXTURE: &str = r#"{
  "users": {
    "alice": {"tokens":["alice-token-1","alice-token-2"],"password":"opensesame","max_sessions":2,"packages":["basic"]},
    "bob":   {"tokens":["bob-token"],"password":"sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae","packages":["basic","sports"],"ips":["10.0.0.0/8","192.0.2.7"]},
    "carol": {"tokens":["carol-token"],"packages":["sports"],"expires_at":"2030-03-17T17:46:40Z"},
    "dave":  {"tokens":["dave-token"],"packages":["basic"],"disabled":true},
    "erin":  {"tokens":["erin-token"],"packages":["basic"]},
    "frank": {"tokens":["frank-token"],"packages":[]},
    "gina":  {"tokens":["leaked-token"],"packages":["basic"],"max_sessions":1}
  },
  "packages": {
    "basic":  {"channels":["ch1","news/*"]},
    "sports": {"channels":["sports-*","ch?"]}
  },
  "blocklist": {"users":["erin","mallory"],"tokens":["leaked-token"],"ips":["203.0.113.0/24","2001:db8:bad::/48"]}
}"#;

fn fixture() -> Entitlements {
    Entitlements::from_json_slice(FIXTURE.as_bytes()).unwrap()
}

/// (user, token, channel, ip, expected)
type Case = (
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
    &'static str,
    Result<Grant, Denial>,
);

#[test]
fn decide_table() {
    use Denial::*;
    let e = fixture();
    let ok = |n| Ok(Grant { max_sessions: n });
    let cases: &[Case] = &[
        // Entitled: exact name and glob.
        (Some("alice"), None, "ch1", "198.51.100.1", ok(2)),
        (Some("alice"), None, "news/bbc", "198.51.100.1", ok(2)),
        (
            Some("alice"),
            Some("alice-token-1"),
            "news/a/b",
            "198.51.100.1",
            ok(2),
        ),
        // Not entitled.
        (Some("alice"), None, "ch2", "198.51.100.1", Err(NotEntitled)),
        (
            Some("alice"),
            None,
            "news",
            "198.51.100.1",
            Err(NotEntitled),
        ),
        (
            Some("alice"),
            None,
            "sports-1",
            "198.51.100.1",
            Err(NotEntitled),
        ),
        (Some("frank"), None, "ch1", "198.51.100.1", Err(NotEntitled)),
        // Two packages: union.
        (Some("bob"), None, "sports-1", "10.1.2.3", ok(0)),
        (Some("bob"), None, "ch7", "10.1.2.3", ok(0)),
        (Some("bob"), None, "news/x", "192.0.2.7", ok(0)),
        (Some("bob"), None, "ch1", "::ffff:10.9.9.9", ok(0)),
        // User IP restriction.
        (Some("bob"), None, "ch1", "192.0.2.8", Err(IpDenied)),
        (Some("bob"), None, "ch1", "2001:db8::1", Err(IpDenied)),
        // IP check before entitlement: the code says which rule failed first.
        (Some("bob"), None, "nope", "192.0.2.8", Err(IpDenied)),
        // Unknown, disabled.
        (Some("zed"), None, "ch1", "198.51.100.1", Err(Forbidden)),
        (Some("dave"), None, "ch1", "198.51.100.1", Err(Forbidden)),
        // Blocklist: user (known or not), token, networks v4/v6/mapped.
        (Some("erin"), None, "ch1", "198.51.100.1", Err(Blocked)),
        (Some("mallory"), None, "ch1", "198.51.100.1", Err(Blocked)),
        (
            Some("gina"),
            Some("leaked-token"),
            "ch1",
            "198.51.100.1",
            Err(Blocked),
        ),
        (Some("gina"), None, "ch1", "198.51.100.1", ok(1)),
        (Some("alice"), None, "ch1", "203.0.113.9", Err(IpDenied)),
        (
            Some("alice"),
            None,
            "ch1",
            "::ffff:203.0.113.9",
            Err(IpDenied),
        ),
        (Some("alice"), None, "ch1", "2001:db8:bad::1", Err(IpDenied)),
        // Blocked IP beats blocked user.
        (Some("erin"), None, "ch1", "203.0.113.9", Err(IpDenied)),
        // Anonymous: only the blocklist.
        (None, None, "anything", "198.51.100.1", ok(0)),
        (None, None, "ch1", "203.0.113.1", Err(IpDenied)),
        (
            None,
            Some("leaked-token"),
            "ch1",
            "198.51.100.1",
            Err(Blocked),
        ),
        (None, Some("other"), "ch1", "198.51.100.1", ok(0)),
    ];
    assert!(!cases.is_empty());
    for (user, token, channel, addr, want) in cases {
        let got = e.decide(*user, *token, channel, ip(addr), NOW - 1);
        assert_eq!(got, *want, "{user:?} {token:?} {channel} {addr}");
    }
}

#[test]
fn denial_codes_are_spec_codes() {
    let table = [
        (Denial::Forbidden, "forbidden"),
        (Denial::IpDenied, "ip_denied"),
        (Denial::NotEntitled, "not_entitled"),
        (Denial::Blocked, "blocked"),
    ];
    for (d, code) in table {
        assert_eq!(d.code(), code);
        assert_eq!(ProxyError::from(d).status(), http::StatusCode::FORBIDDEN);
    }
}

#[test]
fn expiry_boundary() {
    let e = fixture();
    // carol expires at 2030-03-17T17:46:40Z = 1_900_000_000.
    let carol = e.user("carol").unwrap();
    assert_eq!(carol.expires_at(), Some(NOW));
    let at = |now| e.decide(Some("carol"), None, "ch1", ip("198.51.100.1"), now);
    assert_eq!(at(NOW - 1), Ok(Grant { max_sessions: 0 }));
    assert_eq!(at(NOW), Err(Denial::Forbidden));
    assert_eq!(at(NOW + 1), Err(Denial::Forbidden));
    // Never-expiring users have no expiry.
    assert_eq!(e.user("alice").unwrap().expires_at(), None);
    assert!(e.user("alice").unwrap().is_active(u64::MAX));
}

#[test]
fn expiry_parsing() {
    use compile::expiry_second;
    assert_eq!(expiry_second("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(expiry_second("1969-12-31T23:59:59Z"), Some(0));
    // Fractions round up: still valid during the second they start in.
    assert_eq!(expiry_second("1970-01-01T00:00:10.5Z"), Some(11));
    assert_eq!(expiry_second("1970-01-01T01:00:00+01:00"), Some(0));
    assert_eq!(expiry_second("2030-03-17T17:46:40Z"), Some(NOW));
    for bad in ["", "2030-03-17", "yesterday", "2030-03-17T17:46:40"] {
        assert_eq!(expiry_second(bad), None, "{bad}");
    }
}

#[test]
fn disabled_user_is_known_but_refused() {
    let e = fixture();
    let dave = e.user("dave").unwrap();
    assert!(dave.is_disabled());
    assert!(!dave.is_active(0));
    assert_eq!(e.user_by_token("dave-token"), Some("dave"));
}

#[test]
fn token_to_user() {
    let e = fixture();
    let cases = [
        ("alice-token-1", Some("alice")),
        ("alice-token-2", Some("alice")),
        ("bob-token", Some("bob")),
        ("alice-token-", None),
        ("alice-token-11", None),
        ("", None),
        ("ALICE-TOKEN-1", None),
    ];
    for (t, want) in cases {
        assert_eq!(e.user_by_token(t), want, "{t}");
    }
    assert!(e.is_user_blocked("mallory"));
    assert!(!e.is_user_blocked("alice"));
}

#[test]
fn passwords_plaintext_and_sha256() {
    let e = fixture();
    // alice: plaintext "opensesame"; bob: sha256 of "foo".
    assert!(e.check_password("alice", b"opensesame"));
    assert!(!e.check_password("alice", b"opensesam"));
    assert!(!e.check_password("alice", b""));
    assert!(e.check_password("bob", b"foo"));
    assert!(!e.check_password(
        "bob",
        b"sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
    ));
    // No password set, unknown user.
    assert!(!e.check_password("carol", b""));
    assert!(!e.check_password("zed", b"opensesame"));
    // Read back as a digest, never as the plaintext.
    let alice = e.user_record("alice").unwrap();
    assert!(alice.password.starts_with("sha256:"), "{}", alice.password);
    assert_eq!(alice.password.len(), 7 + 64);
}

fn problems(json: &str) -> Vec<String> {
    match Entitlements::from_json_slice(json.as_bytes()) {
        Err(LoadError::Invalid(v)) => {
            assert_eq!(v.total(), v.problems().len());
            v.problems().iter().map(ToString::to_string).collect()
        }
        other => panic!("expected validation errors, got {other:?}"),
    }
}

#[test]
fn validation_reports_every_problem_with_its_path() {
    let got = problems(
        r#"{
      "packages": {"basic": {"channels": ["ch1", "", "bad\u0001"]}, "": {}},
      "blocklist": {"users": [""], "tokens": ["", "ok"], "ips": ["300.1.1.1", "10.0.0.0/8"]},
      "users": {
        "alice": {"tokens": ["t1", "", "t1"], "password": "sha256:zz-supersecret",
                  "packages": ["basic", "gold"], "ips": ["10.0.0.0/8", "1.2.3.4", "x"],
                  "expires_at": "soon"},
        "bob": {"tokens": ["t1"]},
        "a:b": {},
        "": {}
      }
    }"#,
    );
    let want = [
        r#"packages[""]: must be 1 to 255 of A-Z a-z 0-9 - _ . @, and not "." or "..""#,
        r#"packages["basic"].channels[1]: empty channel name"#,
        r#"packages["basic"].channels[2]: channel contains a control character"#,
        r#"blocklist.ips[0]: invalid network "300.1.1.1""#,
        r#"blocklist.users[0]: must be 1 to 255 of A-Z a-z 0-9 - _ . @, and not "." or "..""#,
        r#"blocklist.tokens[0]: token must not be empty"#,
        r#"users["alice"].password: a pre-hashed password is sha256: followed by 64 hex digits"#,
        r#"users["alice"].ips[2]: invalid network "x""#,
        r#"users["alice"].expires_at: invalid RFC 3339 time "soon""#,
        r#"users["alice"].tokens[1]: token must not be empty"#,
        r#"users["alice"].tokens[2]: duplicate token: listed twice for this user"#,
        r#"users["bob"].tokens[0]: duplicate token: users["alice"] has the same one; a token must identify one user"#,
        r#"users["a:b"]: must be 1 to 255 of A-Z a-z 0-9 - _ . @, and not "." or "..""#,
        r#"users[""]: must be 1 to 255 of A-Z a-z 0-9 - _ . @, and not "." or "..""#,
        r#"users["alice"].packages[1]: unknown package "gold""#,
    ];
    assert_eq!(got, want);
    let all = got.join("\n");
    assert!(
        !all.contains("supersecret") && !all.contains("\"t1\""),
        "{all}"
    );
}

#[test]
fn duplicate_user_ids_are_refused() {
    let got = problems(r#"{"users":{"a":{},"a":{}}}"#);
    assert_eq!(got, [r#"users["a"]: duplicate user id (listed twice)"#]);
}

#[test]
fn many_problems_are_capped_and_counted() {
    let users: Vec<String> = (0..250)
        .map(|i| format!(r#""u{i}":{{"ips":["bad"]}}"#))
        .collect();
    let json = format!(r#"{{"users":{{{}}}}}"#, users.join(","));
    let Err(LoadError::Invalid(v)) = Entitlements::from_json_slice(json.as_bytes()) else {
        panic!("expected validation errors");
    };
    assert_eq!(v.total(), 250);
    assert_eq!(v.problems().len(), compile::MAX_LISTED);
    assert!(v.to_string().ends_with("... and 150 more"), "{v}");
}

#[test]
fn spec_bodies_round_trip() {
    let user = r#"{"tokens":["t"],"password":"","max_sessions":0,"packages":["basic"],"ips":["10.0.0.0/8"],"expires_at":"2030-01-01T00:00:00Z","disabled":false}"#;
    let u: User = serde_json::from_str(user).unwrap();
    assert_eq!(u.expires_at.as_deref(), Some("2030-01-01T00:00:00Z"));
    assert_eq!(serde_json::to_string(&u).unwrap(), user);
    let package = r#"{"channels":["ch1","sports/*"]}"#;
    let p: Package = serde_json::from_str(package).unwrap();
    assert_eq!(serde_json::to_string(&p).unwrap(), package);
    let blocklist = r#"{"users":[],"tokens":[],"ips":["203.0.113.0/24"]}"#;
    let b: Blocklist = serde_json::from_str(blocklist).unwrap();
    assert_eq!(serde_json::to_string(&b).unwrap(), blocklist);
    // Missing fields default; null expiry is none; unknown fields are refused.
    let d: User = serde_json::from_str(r#"{"expires_at":null}"#).unwrap();
    assert_eq!(d, User::default());
    assert!(serde_json::from_str::<User>(r#"{"token":"x"}"#).is_err());
    assert!(serde_json::from_str::<Package>(r#"{"channels":[],"x":1}"#).is_err());
    assert!(serde_json::from_str::<Snapshot>(r#"{"users":{},"extra":{}}"#).is_err());
    assert!(Entitlements::from_json_slice(br#"{"users":{},"extra":{}}"#).is_err());
    assert!(Entitlements::from_json_slice(br#"{"users":{},"users":{}}"#).is_err());
    assert!(Entitlements::from_json_slice(br#"{} trailing"#).is_err());
}

#[test]
fn streaming_and_snapshot_builds_agree_and_read_back() {
    let s: Snapshot = serde_json::from_str(FIXTURE).unwrap();
    assert_eq!(s.users.len(), 7);
    let built = Entitlements::build(s.clone()).unwrap();
    let streamed = fixture();
    let a = built.to_snapshot();
    let b = streamed.to_snapshot();
    assert_eq!(a, b);
    // Reading back gives the input, except passwords come back hashed.
    let mut want = s.clone();
    for (_, u) in &mut want.users.0 {
        if !u.password.is_empty() && !u.password.starts_with("sha256:") {
            u.password = format!("sha256:{}", hex::encode(sha256(u.password.as_bytes())));
        }
    }
    assert_eq!(a, want);
    // Serializing the entitlements gives the same document, which builds again.
    let json = serde_json::to_string(&built).unwrap();
    assert_eq!(serde_json::from_str::<Snapshot>(&json).unwrap(), want);
    assert_eq!(
        Entitlements::from_json_slice(json.as_bytes())
            .unwrap()
            .to_snapshot(),
        want
    );
    assert_eq!(
        built.user_record("bob").unwrap().ips,
        ["10.0.0.0/8", "192.0.2.7"]
    );
    assert_eq!(
        built.package("sports").unwrap().channels,
        ["sports-*", "ch?"]
    );
    assert_eq!(built.blocklist().users, ["erin", "mallory"]);
    assert!(built.user_record("zed").is_none());
}

#[test]
fn many_networks_use_the_prefix_set() {
    let nets: Vec<String> = (0..20).map(|i| format!("\"10.{i}.0.0/16\"")).collect();
    let json = format!(
        r#"{{"users":{{"u":{{"packages":["p"],"ips":[{}]}}}},"packages":{{"p":{{"channels":["*"]}}}}}}"#,
        nets.join(",")
    );
    let e = Entitlements::from_json_slice(json.as_bytes()).unwrap();
    let u = e.user("u").unwrap();
    assert!(u.allows_ip(ip("10.19.1.1")));
    assert!(u.allows_ip(ip("::ffff:10.3.1.1")));
    assert!(!u.allows_ip(ip("10.20.1.1")));
    assert_eq!(
        e.decide(Some("u"), None, "x", ip("10.20.0.1"), 0),
        Err(Denial::IpDenied)
    );
}

#[test]
fn debug_never_shows_secrets() {
    let e = fixture();
    let s: Snapshot = serde_json::from_str(FIXTURE).unwrap();
    let shown = format!(
        "{e:?} {:?} {s:?} {:?}",
        e.user("alice").unwrap(),
        e.blocklist()
    );
    for secret in ["alice-token-1", "opensesame", "leaked-token", "2c26b46b"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("alice"));
}

#[test]
fn empty_entitlements_refuse_users_and_allow_anonymous() {
    let e = Entitlements::default();
    assert!(e.is_empty());
    assert_eq!(
        e.decide(Some("a"), None, "ch1", ip("127.0.0.1"), 0),
        Err(Denial::Forbidden)
    );
    assert_eq!(
        e.decide(None, None, "ch1", ip("127.0.0.1"), 0),
        Ok(Grant { max_sessions: 0 })
    );
    assert_eq!(e.user_by_token("x"), None);
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let _ = Entitlements::from_json_slice(&bytes);
        let _ = serde_json::from_slice::<Snapshot>(&bytes);
    }

    #[test]
    fn mutated_fixture_never_panics(cut in 0usize..2000, at in 0usize..2000, byte in proptest::num::u8::ANY) {
        let mut bytes = FIXTURE.as_bytes().to_vec();
        if let Some(b) = bytes.get_mut(at) {
            *b = byte;
        }
        bytes.truncate(cut.max(1));
        let _ = Entitlements::from_json_slice(&bytes);
        if let Ok(s) = serde_json::from_slice::<Snapshot>(&bytes) {
            let _ = Entitlements::build(s);
        }
    }

    #[test]
    fn arbitrary_snapshots_build_or_report(
        ids in proptest::collection::vec("[a-c:]{0,3}", 0..6),
        tokens in proptest::collection::vec("[xy]{0,2}", 0..6),
        ips in proptest::collection::vec("[0-9./:a-f]{0,12}", 0..4),
        channel in "[a-z/*?]{0,6}",
    ) {
        let mut s = Snapshot::default();
        s.packages.insert("p".to_owned(), Package { channels: vec![channel.clone()], ..Package::default() });
        for (i, id) in ids.iter().enumerate() {
            let user = User {
                tokens: tokens.iter().skip(i).take(2).cloned().collect(),
                packages: vec!["p".to_owned()],
                ips: ips.clone(),
                ..User::default()
            };
            s.users.0.push((id.clone(), user));
        }
        match Entitlements::build(s) {
            Ok(e) => {
                for id in &ids {
                    let _ = e.decide(Some(id), None, &channel, ip("10.0.0.1"), 0);
                }
            }
            Err(v) => proptest::prop_assert!(v.total() > 0 && !v.problems().is_empty()),
        }
    }
}

/// A string value holding `"` is redacted whole: serde writes it escaped
/// (`"\"tail"`), and an escaped quote does not end the redaction (found by
/// fuzz/sync_native: the rest of such a value was echoed in the error).
#[test]
fn json_errors_redact_values_with_quotes() {
    let body = br#"{"users": {"a": {"max_sessions": "\"secret-tail\\\"more"}}}"#;
    let Err(super::LoadError::Json(message)) = Entitlements::from_json_slice(body) else {
        panic!("a string max_sessions must be refused as malformed");
    };
    assert!(message.contains("invalid type: string"), "{message}");
    assert!(
        !message.contains("secret") && !message.contains("tail") && !message.contains("more"),
        "{message}"
    );
}

#[test]
fn star_means_every_channel_and_is_no_package() {
    let e = Entitlements::from_json_slice(
        br#"{"users":{"all":{"tokens":["t"],"packages":["*"]},
                      "some":{"tokens":["u"],"packages":["basic"]}},
             "packages":{"basic":{"channels":["ch1"]}}}"#,
    )
    .unwrap();
    let ok = Ok(Grant { max_sessions: 0 });
    for channel in ["ch1", "ch2", "sports/final", ""] {
        assert_eq!(
            e.decide(Some("all"), None, channel, ip("192.0.2.1"), NOW),
            ok
        );
    }
    assert_eq!(
        e.decide(Some("some"), None, "ch2", ip("192.0.2.1"), NOW),
        Err(Denial::NotEntitled)
    );
    // Read back as the name the user gave, never as a package of its own.
    assert_eq!(e.user_record("all").unwrap().packages, ["*"]);
    assert!(e.package("*").is_none());
    let snapshot = e.to_snapshot();
    assert!(!snapshot.packages.contains_key("*"), "{snapshot:?}");
    let again = Entitlements::build(snapshot).unwrap();
    assert_eq!(
        again.decide(Some("all"), None, "ch9", ip("192.0.2.1"), NOW),
        ok
    );
    // A layer over other packages (the admin API's over the config's).
    let layer = Entitlements::build_layer(
        Snapshot {
            users: [(
                "x".to_owned(),
                User {
                    packages: vec!["*".to_owned()],
                    ..User::default()
                },
            )]
            .into_iter()
            .collect(),
            ..Snapshot::default()
        },
        ["basic".to_owned()].into_iter().collect(),
    )
    .unwrap();
    assert!(!layer.has_external_packages());
    assert_eq!(
        layer.decide(Some("x"), None, "ch7", ip("192.0.2.1"), NOW),
        ok
    );
    // No package may be called `*`.
    assert_eq!(
        problems(r#"{"packages":{"*":{"channels":["ch1"]}}}"#),
        [
            r#"packages["*"]: "*" is not a package name: in a user's packages it means every channel"#
        ]
    );
}

#[test]
fn ids_follow_one_rule_and_secrets_hold_no_control_characters() {
    let got = problems(
        r#"{"users":{".":{},"..":{},"a b":{},"ok":{"tokens":["a\u0000b","c\r\nd"],"password":"p\nq"}},
            "packages":{"..":{}},
            "blocklist":{"users":["."],"tokens":["x\ny"]}}"#,
    );
    let rule = rules::ID_RULE;
    let want = [
        format!(r#"users["."]: {rule}"#),
        format!(r#"users[".."]: {rule}"#),
        format!(r#"users["a b"]: {rule}"#),
        r#"users["ok"].password: contains a control character (NUL, CR, LF, ...)"#.to_owned(),
        r#"users["ok"].tokens[0]: token contains a control character (NUL, CR, LF, ...)"#
            .to_owned(),
        r#"users["ok"].tokens[1]: token contains a control character (NUL, CR, LF, ...)"#
            .to_owned(),
        format!(r#"packages[".."]: {rule}"#),
        format!(r#"blocklist.users[0]: {rule}"#),
        r#"blocklist.tokens[0]: token contains a control character (NUL, CR, LF, ...)"#.to_owned(),
    ];
    assert_eq!(got, want);
    // Hashing leaves such a password as it is, for validation to refuse.
    let mut u = User {
        password: "p\nq".to_owned(),
        ..User::default()
    };
    u.hash_password();
    assert_eq!(u.password, "p\nq");
}

/// Channels, tags and catch-up depth (SPEC §7.1, §7.4).
mod channels {
    use super::*;

    const TV: &str = r#"{
      "users": {
        "ann":  {"tokens":["ann-t"],"packages":["news-tariff"]},
        "ben":  {"tokens":["ben-t"],"packages":["news-tariff","premium"]},
        "cat":  {"tokens":["cat-t"],"packages":["by-name"]},
        "dan":  {"tokens":["dan-t"],"packages":["*"]},
        "eve":  {"tokens":["eve-t"],"packages":["news-tariff","uncapped"]}
      },
      "packages": {
        "news-tariff": {"tags":["news"],"dvr_depth":"1d"},
        "premium":     {"tags":["news","movies"],"dvr_depth":"2d"},
        "by-name":     {"channels":["ch2"]},
        "uncapped":    {"channels":["ch1"]}
      },
      "channels": {
        "ch1":   {"title":"Channel One","group":"News","logo":"https://cdn.example/1.png","tags":["news","public"],"dvr_depth":"3d"},
        "ch2":   {"title":"Two","tags":["movies"],"dvr_depth":"12h"},
        "live3": {"tags":["news"]}
      }
    }"#;

    fn tv() -> Entitlements {
        Entitlements::from_json_slice(TV.as_bytes()).unwrap()
    }

    const DAY: u64 = 86_400;

    #[test]
    fn a_package_gives_the_channels_carrying_its_tags() {
        let e = tv();
        let any = ip("198.51.100.1");
        let d = |u, ch| e.decide(Some(u), None, ch, any, NOW).map(|_| ());
        assert_eq!(d("ann", "ch1"), Ok(()));
        assert_eq!(d("ann", "live3"), Ok(()));
        // ch2 carries "movies", not "news".
        assert_eq!(d("ann", "ch2"), Err(Denial::NotEntitled));
        assert_eq!(d("ben", "ch2"), Ok(()));
        // By name still works; a tag never matches an undeclared channel.
        assert_eq!(d("cat", "ch2"), Ok(()));
        assert_eq!(d("ann", "undeclared"), Err(Denial::NotEntitled));
        assert_eq!(d("dan", "undeclared"), Ok(()));
    }

    #[test]
    fn depth_is_the_channels_capped_by_the_largest_giving_package() {
        let e = tv();
        // ch1 keeps 3 days; ann's tariff caps it at 1 day.
        assert_eq!(e.dvr_depth(Some("ann"), None, "ch1"), DAY);
        // ben: two packages give ch1 (1d and 2d caps): the larger cap.
        assert_eq!(e.dvr_depth(Some("ben"), None, "ch1"), 2 * DAY);
        // A cap above the channel's depth does not extend it.
        assert_eq!(e.dvr_depth(Some("ben"), None, "ch2"), DAY / 2);
        // A giving package without dvr_depth does not cap.
        assert_eq!(e.dvr_depth(Some("eve"), None, "ch1"), 3 * DAY);
        assert_eq!(e.dvr_depth(Some("dan"), None, "ch1"), 3 * DAY);
        // A package that does not give the channel does not count.
        assert_eq!(e.dvr_depth(Some("cat"), None, "ch2"), DAY / 2);
        // No depth declared, or not declared at all: no catch-up.
        assert_eq!(e.dvr_depth(Some("ann"), None, "live3"), NO_DVR);
        assert_eq!(e.dvr_depth(Some("dan"), None, "undeclared"), NO_DVR);
        // Anonymous, or a user only the auth method knows: the channel's.
        assert_eq!(e.dvr_depth(None, None, "ch1"), 3 * DAY);
        assert_eq!(e.dvr_depth(Some("backend-user"), None, "ch1"), 3 * DAY);
    }

    #[test]
    fn channels_keep_their_order_and_read_back() {
        let e = tv();
        let names: Vec<&str> = e.channels().map(|(n, _)| n).collect();
        assert_eq!(names, ["ch1", "ch2", "live3"]);
        let ch1 = e.channel("ch1").unwrap();
        assert_eq!(ch1.title, "Channel One");
        assert_eq!(ch1.dvr_depth.as_deref(), Some("3d"));
        assert_eq!(e.package("premium").unwrap().tags, ["news", "movies"]);
        // Serialized, streamed back and rebuilt: the same snapshot.
        let snap = e.to_snapshot();
        let json = serde_json::to_string(&e).unwrap();
        let again = Entitlements::from_json_slice(json.as_bytes()).unwrap();
        assert_eq!(again.to_snapshot(), snap);
        assert_eq!(
            Entitlements::build(snap.clone()).unwrap().to_snapshot(),
            snap
        );
        // Channel order survives the round trip.
        let order: Vec<String> = snap.channels.iter().map(|(n, _)| n.to_owned()).collect();
        assert_eq!(order, ["ch1", "ch2", "live3"]);
    }

    #[test]
    fn bad_channels_and_tags_are_refused_with_their_paths() {
        let got = problems(
            r#"{
          "packages": {"p": {"tags":["ok","bad tag"],"dvr_depth":"5"}},
          "channels": {
            "ch 1": {},
            "c2": {"title":"say \"hi\"","logo":"javascript:alert(1)","dvr_depth":"forever"},
            "c3": {"group":"a\u0007b","tags":[""],"dvr_depth":"11000d"},
            "c2": {}
          }
        }"#,
        );
        let want = [
            "packages[\"p\"].tags[1]",
            "packages[\"p\"].dvr_depth",
            "channels[\"ch 1\"]",
            "channels[\"c2\"].title",
            "channels[\"c2\"].logo",
            "channels[\"c2\"].dvr_depth",
            "channels[\"c3\"].group",
            "channels[\"c3\"].tags[0]",
            "channels[\"c3\"].dvr_depth",
            "channels[\"c2\"]: duplicate channel",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.starts_with(w), "{g} should start with {w}\n{got:#?}");
        }
        // Unknown channel fields are refused, not ignored.
        assert!(Entitlements::from_json_slice(br#"{"channels":{"c":{"name":"x"}}}"#).is_err());
    }

    #[test]
    fn regional_channels_are_only_their_regions_users() {
        let e = Entitlements::from_json_slice(
            br#"{
          "users": {
            "lon": {"packages": ["all"], "region": "london", "name": "L", "email": "l@example.com", "comment": "vip"},
            "par": {"packages": ["all"], "region": "paris"},
            "nowhere": {"packages": ["all"]}
          },
          "packages": {"all": {"tags": ["tv"]}},
          "channels": {
            "news-london": {"tags": ["tv"], "regions": ["london"]},
            "news-paris": {"tags": ["tv"], "regions": ["paris"]},
            "global": {"tags": ["tv"]}
          }
        }"#,
        )
        .unwrap();
        let any = ip("198.51.100.1");
        let d = |u, ch| e.decide(Some(u), None, ch, any, NOW).map(|_| ());
        assert_eq!(d("lon", "news-london"), Ok(()));
        assert_eq!(d("lon", "news-paris"), Err(Denial::NotEntitled));
        assert_eq!(d("par", "news-paris"), Ok(()));
        assert_eq!(d("par", "news-london"), Err(Denial::NotEntitled));
        assert_eq!(d("nowhere", "news-london"), Err(Denial::NotEntitled));
        assert_eq!(d("nowhere", "global"), Ok(()));
        let list = |u| -> Vec<String> {
            e.channel_list(u, None, any, NOW)
                .unwrap()
                .iter()
                .map(|l| l.name.to_owned())
                .collect()
        };
        assert_eq!(list("lon"), ["news-london", "global"]);
        assert_eq!(list("par"), ["news-paris", "global"]);
        assert_eq!(list("nowhere"), ["global"]);
        // The profile reads back; bad regions are refused with their path.
        let lon = e.user_record("lon").unwrap();
        assert_eq!(lon.region.as_deref(), Some("london"));
        assert_eq!(
            (lon.name.as_str(), lon.email.as_str(), lon.comment.as_str()),
            ("L", "l@example.com", "vip")
        );
        assert_eq!(e.to_snapshot().users.get("lon"), Some(&lon));
        let got = problems(
            r#"{"users":{"x":{"region":"a b","comment":"x\u0000"}},"channels":{"c":{"regions":[""]}}}"#,
        );
        assert_eq!(got.len(), 3, "{got:#?}");
    }
}

/// The Flussonic IPTV plugin's documented user bodies (its API page),
/// accepted on the native API or refused with a problem list.
#[test]
fn flussonic_user_bodies_are_read_as_it_means_them() {
    let create = br#"{"name":"flussonic","email":"support1@flussonic.com","max_sessions":"3"}"#;
    let u = User::from_api_json(create).unwrap();
    assert_eq!((u.name.as_str(), u.max_sessions), ("flussonic", 3));
    assert_eq!(u.email, "support1@flussonic.com");
    let update = br#"{"created_at":null,"email":"support3@flussonic.com","id":10,"key":"newtoken","max_sessions":3,"name":"support","packages":null,"updated_at":null}"#;
    let u = User::from_api_json(update).unwrap();
    assert_eq!(u.tokens, ["newtoken"]);
    assert!(u.packages.is_empty());
    assert_eq!(u.max_sessions, 3);
    let delete = br#"{"created_at":null,"email":"user1@example.com","id":11,"key":"mPSfFitQl3","max_sessions":1,"name":"user1","packages":[],"updated_at":null}"#;
    assert_eq!(User::from_api_json(delete).unwrap().tokens, ["mPSfFitQl3"]);
    // The native shape still reads as before; key joins tokens once.
    let native = br#"{"tokens":["a","b"],"key":"b","max_sessions":2}"#;
    assert_eq!(User::from_api_json(native).unwrap().tokens, ["a", "b"]);
    // Never misread: each refusal names the field, never the value.
    for (body, field) in [
        (&br#"{"max_sessions":"three"}"#[..], "max_sessions"),
        (br#"{"max_sessions":"-1"}"#, "max_sessions"),
        (br#"{"key":5}"#, "key"),
        (br#"{"key":""}"#, "key"),
        (br#"{"id":{"x":1}}"#, "id"),
        (br#"{"nmae":"typo"}"#, "nmae"),
        (br#"{"max_sessions":1.5}"#, "max_sessions"),
        (br#"[]"#, "body"),
    ] {
        let problems = User::from_api_json(body).unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains(field)),
            "{}: {problems:?}",
            String::from_utf8_lossy(body)
        );
        assert!(
            !problems
                .iter()
                .any(|p| p.contains("three") || p.contains("typo"))
        );
    }
}

#[test]
fn users_page_filters_and_pages_in_a_stable_order() {
    let e = fixture();
    let all = |offset, limit| UserQuery {
        offset,
        limit,
        ..UserQuery::default()
    };
    let ids = |p: &UserPage| p.users.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>();
    let first = e.users_page(&all(0, 3));
    assert_eq!(first.total, 7);
    assert_eq!(ids(&first), ["alice", "bob", "carol"]);
    assert_eq!(ids(&e.users_page(&all(3, 3))), ["dave", "erin", "frank"]);
    assert_eq!(ids(&e.users_page(&all(6, 3))), ["gina"]);
    assert!(e.users_page(&all(7, 3)).users.is_empty());
    let by = |q: UserQuery<'static>| ids(&e.users_page(&UserQuery { limit: 10, ..q }));
    assert_eq!(
        by(UserQuery {
            package: Some("sports"),
            ..UserQuery::default()
        }),
        ["bob", "carol"]
    );
    assert_eq!(
        by(UserQuery {
            token: Some("bob-token"),
            ..UserQuery::default()
        }),
        ["bob"]
    );
    assert!(
        by(UserQuery {
            token: Some("nobody"),
            ..UserQuery::default()
        })
        .is_empty()
    );
    assert_eq!(
        by(UserQuery {
            text: Some("AR"),
            ..UserQuery::default()
        }),
        ["carol"]
    );
    assert_eq!(
        by(UserQuery {
            package: Some("basic"),
            text: Some("a"),
            ..UserQuery::default()
        }),
        ["alice", "dave", "gina"]
    );
    assert!(
        by(UserQuery {
            region: Some("london"),
            ..UserQuery::default()
        })
        .is_empty()
    );
    // A page's users read back like GET /api/v1/users/{id}.
    assert_eq!(first.users[0].1, e.user_record("alice").unwrap());
}

/// Devices (SPEC §7.3): a device's packages replace its user's (its user's
/// when it has none); another user's or an unknown device is forbidden, a
/// disabled one blocked, each before the channel is looked at; the depth
/// follows the device's packages; the streamed loader, the document model
/// and the persisted form agree; problems name their path.
#[test]
fn devices_replace_their_users_packages() {
    let json = r#"{
      "users": {
        "ann": {"tokens": ["ann-t"], "packages": ["news"]},
        "ben": {"tokens": ["ben-t"], "packages": ["news"]}
      },
      "packages": {
        "news": {"channels": ["news"], "dvr_depth": "1h"},
        "kids": {"channels": ["cartoons"]}
      },
      "channels": {"news": {"dvr_depth": "1d"}, "cartoons": {"dvr_depth": "1d"}},
      "devices": {
        "00:1A:79:00:00:01": {"user": "ann"},
        "kids-box": {"user": "ann", "packages": ["kids"]},
        "off-box": {"user": "ann", "disabled": true},
        "ben-box": {"user": "ben"}
      }
    }"#;
    let e = Entitlements::from_json_slice(json.as_bytes()).unwrap();
    let any = ip("198.51.100.1");
    let d = |dev, ch| {
        e.decide_on(Some("ann"), dev, None, ch, any, NOW)
            .map(|_| ())
    };
    let cases = [
        (None, "news", Ok(())),
        (None, "cartoons", Err(Denial::NotEntitled)),
        (Some("00:1A:79:00:00:01"), "news", Ok(())),
        (
            Some("00:1A:79:00:00:01"),
            "cartoons",
            Err(Denial::NotEntitled),
        ),
        (Some("kids-box"), "cartoons", Ok(())),
        (Some("kids-box"), "news", Err(Denial::NotEntitled)),
        (Some("off-box"), "news", Err(Denial::Blocked)),
        (Some("off-box"), "nothing", Err(Denial::Blocked)),
        (Some("ben-box"), "news", Err(Denial::Forbidden)),
        (Some("unknown"), "news", Err(Denial::Forbidden)),
    ];
    for (dev, ch, want) in cases {
        assert_eq!(d(dev, ch), want, "{dev:?} on {ch}");
    }
    // The news package caps news at 1 h; the kids box's package does not cap.
    assert_eq!(e.dvr_depth(Some("ann"), None, "news"), 3600);
    assert_eq!(
        e.dvr_depth(Some("ann"), Some("kids-box"), "cartoons"),
        86_400
    );
    assert_eq!(e.device_count("ann"), 3);
    assert_eq!(e.device_count("ben"), 1);
    assert_eq!(e.device_count("nobody"), 0);
    assert_eq!(e.device("kids-box").map(|d| d.user()), Some("ann"));
    // GET /api/v1/users?device= finds the owner.
    let owner = e.users_page(&UserQuery {
        device: Some("ben-box"),
        limit: 10,
        ..UserQuery::default()
    });
    assert_eq!(
        owner
            .users
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>(),
        ["ben"]
    );
    // The document model compiles to the same, and the persisted form
    // (the state file) loads back to it.
    let model: Snapshot = serde_json::from_str(json).unwrap();
    let built = Entitlements::build(model).unwrap();
    assert_eq!(built.to_snapshot(), e.to_snapshot());
    let saved = serde_json::to_vec(&e).unwrap();
    let loaded = Entitlements::from_json_slice(&saved).unwrap();
    assert_eq!(loaded.to_snapshot(), e.to_snapshot());
    assert_eq!(loaded.device_record("kids-box").unwrap().packages, ["kids"]);
    // Problems, with their paths.
    let bad = r#"{"devices": {
        "a/b": {"user": "ann"},
        "x": {"user": "no one"},
        "y": {"user": "ann", "packages": ["missing"]}
    }}"#;
    let Err(LoadError::Invalid(err)) = Entitlements::from_json_slice(bad.as_bytes()) else {
        panic!("bad devices compiled");
    };
    let paths: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            r#"devices["a/b"]"#,
            r#"devices["x"].user"#,
            r#"devices["y"].packages[0]"#
        ]
    );
    let dup = Snapshot {
        devices: Named(vec![
            (
                "box".into(),
                Device {
                    user: "ann".into(),
                    ..Device::default()
                },
            ),
            (
                "box".into(),
                Device {
                    user: "ben".into(),
                    ..Device::default()
                },
            ),
        ]),
        ..Snapshot::default()
    };
    let err = Entitlements::build(dup).unwrap_err();
    assert_eq!(err.problems()[0].path, r#"devices["box"]"#);
}
