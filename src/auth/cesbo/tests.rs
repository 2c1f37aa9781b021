//! Every `cesbo_astra` vector (securetoken, IP rules, users) through the
//! Rust cores, config errors, masking and property tests.

use crate::auth::vectors::any_ip;
use std::net::IpAddr;
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::auth::vectors::{self, Case};

const DOC_TOKEN: &str = "e8bff06f373694dda657e8417fe76f6b54b69807-a5cd6c00-1669890000-1669810000";

fn cesbo(secret: &str, subject: &str) -> Cesbo {
    let raw = RawConfig {
        secret: Some(secret.into()),
        subject: Some(subject.into()),
        ..RawConfig::default()
    };
    Cesbo::new(&raw, Path::new(".")).unwrap()
}

fn secret(v: &serde_json::Value) -> Option<Secret> {
    v.as_str()
        .map(|s| Secret::resolve(s, Path::new(".")).unwrap())
}

/// Run one case through the matching core.
fn run(c: &Case) -> Check {
    let ip: IpAddr = c.s("client_ip").parse().unwrap();
    let h = http::HeaderMap::new();
    match c.s("kind") {
        "securetoken" => {
            // The subject input is either a path or a channel id: put it
            // where the configured subject kind reads it.
            let subj = c.s("subject");
            let kind = if subj.starts_with('/') {
                "path"
            } else {
                "channel"
            };
            let s = cesbo(c.s("secret"), kind);
            let q = format!("x=1&token={}", c.s("token"));
            let req = AuthRequest {
                client_ip: ip,
                path: if kind == "path" {
                    subj
                } else {
                    "/tv/travel-channel/index.m3u8"
                },
                query: Some(&q),
                headers: &h,
                channel: (kind == "channel").then_some(subj),
                now: c.u("now"),
            };
            s.check(&req)
        }
        "ip_rules" => {
            let list = c.inputs["rules"].as_array().unwrap();
            let rules: Vec<IpRule> = list
                .iter()
                .map(|r| IpRule::parse(r.as_str().unwrap()).unwrap())
                .collect();
            ip_rules(&rules, ip)
        }
        "user" => {
            let users: Vec<User> = c.inputs["users"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(login, u)| User {
                    login: login.clone(),
                    password: secret(&u["password"]),
                    token: secret(&u["token"]),
                    ip: u["ip"].as_str().map(|s| s.parse().unwrap()),
                    expire: u["expire"].as_u64(),
                    limit: u["limit"].as_u64().map(|l| u32::try_from(l).unwrap()),
                })
                .collect();
            let active = c.inputs["active_sessions"].clone();
            let count = |login: &str| {
                active[login]
                    .as_u64()
                    .map_or(0, |n| u32::try_from(n).unwrap())
            };
            user_auth(&users, c.s("query"), ip, c.u("now"), count)
        }
        other => panic!("{}: unknown kind {other}", c.name),
    }
}

#[test]
fn every_vector_case() {
    let mut run_count = 0;
    for c in vectors::cases("cesbo_astra") {
        let got = run(&c);
        c.assert_verdict(&got);
        run_count += 1;
    }
    assert_eq!(run_count, 18);
}

#[test]
fn doc_token_parses_and_no_param_passes() {
    let t = Token::parse(DOC_TOKEN).unwrap();
    assert_eq!(
        (t.salt, t.end, t.start),
        ("a5cd6c00", 1_669_890_000, 1_669_810_000)
    );
    for bad in [
        "",
        "abc",
        "e8bff06f373694dda657e8417fe76f6b54b69807-a5cd6c00-1669890000",
        "zz-a-1-2",
    ] {
        assert_eq!(Token::parse(bad), None, "{bad}");
    }
    let s = cesbo("secret", "path");
    let h = http::HeaderMap::new();
    let req = AuthRequest {
        client_ip: "192.168.88.98".parse().unwrap(),
        path: "/tv/travel-channel/index.m3u8",
        query: None,
        headers: &h,
        channel: None,
        now: 1_669_850_000,
    };
    assert_eq!(s.check(&req), Check::Pass);
    assert_eq!(
        s.check(&AuthRequest {
            query: Some("auth=a:b"),
            ..req
        }),
        Check::Pass
    );
    // subject = channel on a route without a channel fails closed.
    let q = format!("token={DOC_TOKEN}");
    let c = cesbo("secret", "channel");
    assert_eq!(
        c.check(&AuthRequest {
            query: Some(&q),
            ..req
        }),
        Check::Forbidden
    );
    assert_eq!(s.params(), vec!["token".to_owned()]);
}

#[test]
fn config_errors_and_masking() {
    let raw = RawConfig {
        secret: None,
        subject: Some("stream".into()),
        param: Some("a=b".into()),
        tolerance: Some("5".into()),
    };
    let errs = Cesbo::new(&raw, Path::new(".")).unwrap_err();
    let keys: Vec<&str> = errs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["secret", "subject", "param", "tolerance"]);
    let shown = format!("{:?}", cesbo("hunter2-secret", "path"));
    assert!(
        !shown.contains("hunter2") && shown.contains("MASKED"),
        "{shown}"
    );
    let u = User {
        login: "a".into(),
        password: Some(Secret::resolve("pw-hunter3", Path::new(".")).unwrap()),
        token: None,
        ip: None,
        expire: None,
        limit: None,
    };
    assert!(!format!("{u:?}").contains("hunter3"));
}

#[test]
fn tolerance_widens_both_ends() {
    let raw = RawConfig {
        secret: Some("secret".into()),
        tolerance: Some("30s".into()),
        ..RawConfig::default()
    };
    let s = Cesbo::new(&raw, Path::new(".")).unwrap();
    let h = http::HeaderMap::new();
    let q = format!("token={DOC_TOKEN}");
    let at = |now| {
        s.check(&AuthRequest {
            client_ip: "192.168.88.98".parse().unwrap(),
            path: "/tv/travel-channel/index.m3u8",
            query: Some(&q),
            headers: &h,
            channel: None,
            now,
        })
    };
    assert!(matches!(at(1_669_890_030), Check::Allow(_)));
    assert_eq!(at(1_669_890_031), Check::Expired);
    assert!(matches!(at(1_669_809_970), Check::Allow(_)));
    assert_eq!(at(1_669_809_969), Check::NotYetValid);
}

proptest! {
    #[test]
    fn sign_then_check_allows(
        path in "/[a-z0-9/_.-]{1,40}", chan in "[a-z0-9-]{1,12}", ip in any_ip(),
        start in 0u64..4_000_000_000, life in 0u64..100_000, by_channel: bool,
    ) {
        let s = cesbo("s3cret", if by_channel { "channel" } else { "path" });
        let sr = SignRequest { path: &path, client_ip: Some(ip), channel: Some(&chan), start, expires: start + life, user: None };
        let link = s.sign(&sr).unwrap();
        let (p, q) = link.split_once('?').unwrap();
        prop_assert_eq!(p, path.as_str());
        let h = http::HeaderMap::new();
        let req = AuthRequest { client_ip: ip, path: &path, query: Some(q), headers: &h, channel: Some(&chan), now: start + life };
        prop_assert_eq!(s.check(&req), Check::Allow(Identity::default()));
        prop_assert_eq!(s.check(&AuthRequest { now: start + life + 1, ..req }), Check::Expired);
        let other: IpAddr = if ip.is_ipv4() { "::2".parse().unwrap() } else { "10.0.0.2".parse().unwrap() };
        prop_assert_eq!(s.check(&AuthRequest { client_ip: other, ..req }), Check::Forbidden);
    }

    #[test]
    fn arbitrary_input_never_panics(q in "\\PC{0,200}", p in "/\\PC{0,40}", now: u64, rule in "\\PC{0,40}") {
        let s = cesbo("s", "path");
        let h = http::HeaderMap::new();
        let req = AuthRequest { client_ip: "::1".parse().unwrap(), path: &p, query: Some(&q), headers: &h, channel: None, now };
        let _ = s.check(&req);
        let tq = format!("token={q}");
        let _ = s.check(&AuthRequest { query: Some(&tq), ..req });
        let _ = IpRule::parse(&rule);
        let _ = user_auth(&[], &q, "::1".parse().unwrap(), now, |_| 0);
    }
}

/// The worked example of docs/auth.md (also reproduced by authref.py).
#[test]
fn docs_example() {
    let tok = "f91ae264a89b644bc2cc55560603af621862ac3b-a5cd6c00-1700003600-1700000000";
    let want = digest(
        "/live/ch1/index.m3u8",
        "127.0.0.1",
        1_700_000_000,
        1_700_003_600,
        "secret",
        "a5cd6c00",
    );
    assert_eq!(hex::encode(want), &tok[..40]);
    let h = http::HeaderMap::new();
    let q = format!("token={tok}");
    let req = AuthRequest {
        client_ip: "127.0.0.1".parse().unwrap(),
        path: "/live/ch1/index.m3u8",
        query: Some(&q),
        headers: &h,
        channel: Some("ch1"),
        now: 1_700_000_100,
    };
    assert!(matches!(
        cesbo("secret", "path").check(&req),
        Check::Allow(_)
    ));
    let by_channel = "9758199f372e476c0eaa7cdda1177acdd0a49778-a5cd6c00-1700003600-1700000000";
    let q = format!("token={by_channel}");
    let req = AuthRequest {
        query: Some(&q),
        ..req
    };
    assert!(matches!(
        cesbo("secret", "channel").check(&req),
        Check::Allow(_)
    ));
}
