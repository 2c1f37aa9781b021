use super::*;
use proptest::prelude::*;

fn user(max: u32) -> User {
    User {
        max_sessions: max,
        ..User::default()
    }
}

#[test]
fn full_snapshot_is_compiled() {
    let a = parse_answer(
        br#"{"version":7,"snapshot":{"users":{"alice":{"tokens":["t1"],"packages":["p"]}},
             "packages":{"p":{"channels":["ch*"]}},"blocklist":{"users":["mallory"]}}}"#,
        None,
        Entitlements::from_json_slice,
    )
    .expect("valid");
    assert_eq!(a.version, 7);
    let Change::Full(e) = a.change else {
        panic!("not full: {:?}", a.change)
    };
    assert_eq!(e.user_by_token("t1"), Some("alice"));
    assert!(e.is_user_blocked("mallory"));
    assert!(a.deny.is_none());
}

#[test]
fn delta_and_deny() {
    let a = parse_answer(
        br#"{"version":8,"delta":{"since":7,"users":{"bob":{"max_sessions":2},"alice":null},
             "packages":{"old":null}},"deny":{"users":["eve"],"ips":["203.0.113.0/24"]}}"#,
        None,
        Entitlements::from_json_slice,
    )
    .expect("valid");
    let Change::Delta(d) = &a.change else {
        panic!("not a delta")
    };
    assert_eq!(d.since, 7);
    assert_eq!(d.users.get("bob"), Some(&Some(user(2))));
    assert_eq!(d.users.get("alice"), Some(&None));
    let (list, layer) = a.deny.as_ref().expect("deny");
    assert_eq!(list.users, ["eve"]);
    let ip = "203.0.113.9".parse().expect("ip");
    assert!(
        layer
            .check_blocklist(Some("eve"), None, "192.0.2.1".parse().expect("ip"))
            .is_err()
    );
    assert!(layer.check_blocklist(None, None, ip).is_err());
    assert!(
        layer
            .check_blocklist(Some("bob"), None, "192.0.2.1".parse().expect("ip"))
            .is_ok()
    );
}

#[test]
fn refusals_are_whole_and_redacted() {
    let cases: [(&[u8], &str); 8] = [
        (b"garbage", "not valid JSON"),
        (b"[]", "not valid JSON"),
        (br#"{"snapshot":{}}"#, "version"),
        (br#"{"version":-1}"#, "not valid JSON"),
        (br#"{"version":1,"extra":true}"#, "extra"),
        (
            br#"{"version":1,"snapshot":{},"delta":{"since":0}}"#,
            "both",
        ),
        (
            br#"{"version":1,"snapshot":{"users":{"a":{"ips":["nope"]}}}}"#,
            "snapshot.users[\"a\"].ips[0]",
        ),
        (
            br#"{"version":1,"deny":{"ips":["10.0.0.0/99"]}}"#,
            "deny.ips[0]",
        ),
    ];
    for (body, want) in cases {
        let e = parse_answer(body, None, Entitlements::from_json_slice)
            .expect_err(&String::from_utf8_lossy(body));
        assert!(e.to_string().contains(want), "{e} lacks {want}");
    }
    let e = parse_answer(
        br#"{"version":1,"snapshot":{"users":{"a":{"tokens":"SECRET"}}}}"#,
        None,
        Entitlements::from_json_slice,
    )
    .expect_err("wrong type");
    assert!(!e.to_string().contains("SECRET"), "{e}");
    let e = parse_answer(
        br#"{"version":1,"snapshot":{"users":{"a":{"tokens":[987654321]}}}}"#,
        None,
        Entitlements::from_json_slice,
    )
    .expect_err("a number is not a token");
    assert!(!e.to_string().contains("987654321"), "{e}");
}

#[test]
fn delta_apply_is_idempotent() {
    let mut s = Snapshot::default();
    s.users.insert("alice".into(), user(1));
    s.users.insert("carol".into(), user(1));
    let d = Delta {
        since: 1,
        users: [
            ("alice".to_owned(), None),
            (
                "bob".to_owned(),
                Some(User {
                    password: "pw".into(),
                    ..user(3)
                }),
            ),
            ("nobody".to_owned(), None),
        ]
        .into_iter()
        .collect(),
        packages: [("p".to_owned(), Some(Package::default()))]
            .into_iter()
            .collect(),
        channels: [
            ("c1".to_owned(), Some(Channel::default())),
            ("gone".to_owned(), None),
        ]
        .into_iter()
        .collect(),
        devices: [
            (
                "00:1A:79:00:00:01".to_owned(),
                Some(Device {
                    user: "bob".into(),
                    ..Device::default()
                }),
            ),
            ("gone".to_owned(), None),
        ]
        .into_iter()
        .collect(),
        blocklist: Some(Blocklist {
            users: vec!["carol".into()],
            ..Blocklist::default()
        }),
    };
    let mut twice = s.clone();
    d.clone().apply(&mut s);
    assert!(s.users.get("alice").is_none());
    assert_eq!(s.users.get("carol"), Some(&user(1)));
    assert_eq!(s.blocklist.users, ["carol"]);
    assert!(s.packages.contains_key("p"));
    assert_eq!(s.channels.get("c1"), Some(&Channel::default()));
    assert_eq!(
        s.devices.get("00:1A:79:00:00:01").map(|d| d.user.as_str()),
        Some("bob")
    );
    let bob = s.users.get("bob").expect("bob");
    assert!(bob.password.starts_with("sha256:"), "stored hashed");
    d.clone().apply(&mut twice);
    d.apply(&mut twice);
    assert_eq!(twice, s);
}

#[test]
fn plans() {
    let delta = |since| {
        Change::Delta(Delta {
            since,
            ..Delta::default()
        })
    };
    let full = Change::Full(Box::default());
    assert_eq!(plan(None, 5, &full), Plan::Apply);
    assert_eq!(plan(Some(4), 5, &full), Plan::Apply);
    assert_eq!(
        plan(Some(9), 5, &full),
        Plan::Apply,
        "a reset control plane is obeyed"
    );
    assert_eq!(plan(Some(5), 5, &full), Plan::Skip);
    assert_eq!(plan(Some(4), 5, &delta(4)), Plan::Apply);
    assert_eq!(plan(Some(5), 5, &delta(4)), Plan::Skip, "same answer twice");
    assert_eq!(plan(Some(3), 5, &delta(4)), Plan::Gap);
    assert_eq!(plan(None, 5, &delta(4)), Plan::Gap);
    assert_eq!(plan(Some(3), 5, &Change::Unchanged), Plan::Skip);
}

#[test]
fn report_shape() {
    let r = Report {
        edge: "e1",
        version: None,
        sent_at: "2026-11-21T00:00:00Z".into(),
        sessions: vec![SessionUsage {
            id: "00000000000000ff".into(),
            user: Some("alice"),
            device: None,
            route: "live",
            channel: "ch1",
            ip: "192.0.2.1".parse().expect("ip"),
            started: "2026-11-20T23:59:00Z".into(),
            last_seen: "2026-11-21T00:00:00Z".into(),
            viewed: 10,
            bytes: 5,
            viewed_total: 60,
            bytes_total: 50,
            ended: false,
        }],
    };
    let v: serde_json::Value = serde_json::to_value(&r).expect("json");
    assert_eq!(v["version"], serde_json::Value::Null);
    assert_eq!(v["sessions"][0]["ip"], "192.0.2.1");
    assert_eq!(v["sessions"][0]["viewed"], 10);
    // No device: no key (the report of an edge without devices is as before).
    assert!(v["sessions"][0].get("device").is_none());
    let mut on_box = r.clone();
    on_box.sessions[0].device = Some("00:1A:79:00:00:01");
    let v: serde_json::Value = serde_json::to_value(&on_box).expect("json");
    assert_eq!(v["sessions"][0]["device"], "00:1A:79:00:00:01");
}

proptest! {
    /// No body panics the parser.
    #[test]
    fn arbitrary_answers_never_panic(body in prop::collection::vec(any::<u8>(), 0..256), text in ".{0,200}") {
        let _ = parse_answer(&body, None, Entitlements::from_json_slice);
        let _ = parse_answer(text.as_bytes(), None, Entitlements::from_json_slice);
        let wrapped = format!(r#"{{"version":1,"delta":{{"since":0,"users":{{"a":{text}}}}}}}"#);
        let _ = parse_answer(wrapped.as_bytes(), None, Entitlements::from_json_slice);
    }
}

/// A snapshot of the version already held is not compiled (not even read
/// as users): skipping it costs nothing.
#[test]
fn held_snapshot_is_not_compiled() {
    let body = br#"{"version":7,"snapshot":{"users":{"a":{"ips":["not-a-network"]}}}}"#;
    let compiled = std::cell::Cell::new(false);
    let a = parse_answer(body, Some(7), |b| {
        compiled.set(true);
        Entitlements::from_json_slice(b)
    })
    .expect("skipped, so not validated");
    assert!(matches!(a.change, Change::Unchanged));
    assert!(!compiled.get());
    assert!(parse_answer(body, Some(6), Entitlements::from_json_slice).is_err());
}

/// New users keep a stable (sorted) order after the existing ones, changed
/// users stay where they were.
#[test]
fn delta_keeps_order() {
    let mut s = Snapshot::default();
    for id in ["c", "a", "b"] {
        s.users.insert(id.into(), user(1));
    }
    Delta {
        since: 0,
        users: [
            ("z".to_owned(), Some(user(2))),
            ("a".to_owned(), Some(user(3))),
            ("y".to_owned(), Some(user(2))),
            ("b".to_owned(), None),
        ]
        .into_iter()
        .collect(),
        ..Delta::default()
    }
    .apply(&mut s);
    let ids: Vec<&str> = s.users.iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["c", "a", "y", "z"]);
    assert_eq!(s.users.get("a"), Some(&user(3)));
}

#[test]
fn answers_follow_the_id_rule_and_refuse_control_characters() {
    let refused = |body: &[u8]| match parse_answer(body, None, Entitlements::from_json_slice) {
        Err(AnswerError::Invalid(p)) => p,
        other => panic!("not refused: {other:?}"),
    };
    let p = refused(br#"{"version":1,"snapshot":{"users":{"..":{"tokens":["t"]}}}}"#);
    assert!(p[0].starts_with(r#"snapshot.users[".."]"#), "{p:?}");
    let p = refused(br#"{"version":1,"snapshot":{"users":{"a":{"tokens":["t\r\nx"]}}}}"#);
    assert!(p[0].contains("control character"), "{p:?}");
    let p = refused(br#"{"version":1,"deny":{"users":["."]}}"#);
    assert!(p[0].starts_with("deny.users[0]"), "{p:?}");
    let p = refused(br#"{"version":1,"deny":{"tokens":["a\u0000b"]}}"#);
    assert!(p[0].contains("control character"), "{p:?}");
    // A delta is applied to the held state, then compiled: the same rule.
    let a = parse_answer(
        br#"{"version":2,"delta":{"since":1,"users":{"b":{"tokens":["ok"],"password":"p\nq"}}}}"#,
        None,
        Entitlements::from_json_slice,
    )
    .expect("shape");
    let Change::Delta(d) = a.change else {
        panic!("not a delta")
    };
    let mut state = Snapshot::default();
    d.apply(&mut state);
    let e = Entitlements::build(state).expect_err("control character in a password");
    assert!(e.to_string().contains("password"), "{e}");
    assert!(!format!("{e:?}").contains("p\nq"), "{e:?}");
}
