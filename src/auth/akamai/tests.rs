//! Known-answer vectors (every `akamai_edgeauth` case), carriage, config
//! errors, masking, and property tests for the Akamai scheme.

use crate::auth::vectors::any_ip;
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::auth::vectors::{self, Case, request as req};

const KEY: &str = "52a152a152a152a152a152a152a1";

fn raw(keys: &[&str]) -> RawConfig {
    RawConfig {
        keys: keys.iter().map(|k| (*k).into()).collect(),
        ..RawConfig::default()
    }
}

fn scheme(r: &RawConfig) -> Akamai {
    Akamai::new(r, Path::new(".")).unwrap()
}

/// `a`'s verdict on case `c`'s path, client and time, with `query`.
fn check_case(a: &Akamai, c: &Case, query: &str) -> Check {
    let h = http::HeaderMap::new();
    a.check(&req(
        c.s("path"),
        Some(query),
        &h,
        c.s("client_ip"),
        c.u("now"),
    ))
}

#[test]
fn every_vector_case() {
    let cases = vectors::cases("akamai_edgeauth");
    let mut run = 0;
    for c in &cases {
        let mut r = raw(&[c.s("key_hex")]);
        r.algorithm = Some(c.s("alg").to_owned());
        r.salt = c.inputs["salt"].as_str().map(Into::into);
        r.escape_early = c.inputs["escape_early"].as_bool().unwrap();
        let a = scheme(&r);
        // The token rides in the query; an empty token is a present-but-empty
        // parameter (forbidden), unlike an absent one (pass, tested below).
        let got = check_case(&a, c, &format!("a=1&__token__={}", c.s("token")));
        c.assert_verdict(&got);
        run += 1;
    }
    assert_eq!(run, 18);
}

#[test]
fn id_becomes_the_user() {
    let c = vectors::cases("akamai_edgeauth")
        .into_iter()
        .find(|c| c.name == "ip_bound_valid")
        .unwrap();
    let a = scheme(&raw(&[KEY]));
    let got = check_case(&a, &c, &format!("__token__={}", c.s("token")));
    assert_eq!(
        got,
        Check::Allow(Identity {
            user: Some("sess1".into()),
            session_limit: None,
            ..Identity::default()
        })
    );
}

const ACL_TOKEN: &str = "st=1700000000~exp=1700000300~acl=/hls/live/*~hmac=703fb8f8c47d00335cce577481de6f91a29b823837f7e726881b89e0098ed021";

#[test]
fn carriage_absent_cookie_header_and_names() {
    let a = scheme(&raw(&[KEY]));
    let path = "/hls/live/index.m3u8";
    let empty = http::HeaderMap::new();
    assert_eq!(
        a.check(&req(path, None, &empty, "192.0.2.1", 1_700_000_100)),
        Check::Pass
    );
    assert_eq!(
        a.check(&req(path, Some("x=1"), &empty, "192.0.2.1", 1_700_000_100)),
        Check::Pass
    );
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::COOKIE,
        format!("a=b; __token__={ACL_TOKEN}; c=d").parse().unwrap(),
    );
    assert!(matches!(
        a.check(&req(path, None, &h, "192.0.2.1", 1_700_000_100)),
        Check::Allow(_)
    ));
    // Header carriage is off by default.
    let mut hh = http::HeaderMap::new();
    hh.insert("__token__", ACL_TOKEN.parse().unwrap());
    assert_eq!(
        a.check(&req(path, None, &hh, "192.0.2.1", 1_700_000_100)),
        Check::Pass
    );
    let mut r = raw(&[KEY]);
    r.locations = Some(vec!["header".into()]);
    r.token_name = Some("hdnts".into());
    let b = scheme(&r);
    let mut hh = http::HeaderMap::new();
    hh.insert("hdnts", ACL_TOKEN.parse().unwrap());
    assert!(matches!(
        b.check(&req(path, None, &hh, "192.0.2.1", 1_700_000_100)),
        Check::Allow(_)
    ));
    assert_eq!(b.params(), vec!["hdnts".to_owned()]);
}

#[test]
fn transition_keys_and_tolerance() {
    let mut r = raw(&["00ff", KEY]);
    r.tolerance = Some("10s".into());
    let a = scheme(&r);
    let q = format!("__token__={ACL_TOKEN}");
    let h = http::HeaderMap::new();
    let at = |now| a.check(&req("/hls/live/a.ts", Some(&q), &h, "192.0.2.1", now));
    assert!(matches!(at(1_700_000_310), Check::Allow(_)));
    assert_eq!(at(1_700_000_311), Check::Expired);
    assert!(matches!(at(1_699_999_990), Check::Allow(_)));
    assert_eq!(at(1_699_999_989), Check::NotYetValid);
}

#[test]
fn config_errors_name_their_keys() {
    let r = RawConfig {
        keys: vec!["xyz".into(), "abc".into()],
        algorithm: Some("sha512".into()),
        token_name: Some("tok".into()),
        locations: Some(vec!["body".into()]),
        tolerance: Some("10".into()),
        sign_scope: Some("all".into()),
        ..RawConfig::default()
    };
    let errs = Akamai::new(&r, Path::new(".")).unwrap_err();
    let keys: Vec<&str> = errs.iter().map(|(k, _)| k.as_str()).collect();
    for k in [
        "algorithm",
        "keys[0]",
        "keys[1]",
        "token_name",
        "locations[0]",
        "tolerance",
        "sign_scope",
    ] {
        assert!(keys.contains(&k), "{k} missing in {errs:?}");
    }
    assert!(Akamai::new(&raw(&[]), Path::new(".")).is_err());
}

#[test]
fn debug_shows_no_secrets() {
    let mut r = raw(&[KEY]);
    r.salt = Some("pepper-secret".into());
    let shown = format!("{:?}", scheme(&r));
    assert!(
        !shown.contains("pepper") && !shown.to_lowercase().contains("52a1"),
        "{shown}"
    );
    assert!(shown.contains("MASKED"));
}

#[test]
fn acl_wildcards() {
    assert!(token::acl_match("/hls/*", "/hls/a/b.ts"));
    assert!(token::acl_match("/hls/*/index.m3u8", "/hls/x/y/index.m3u8"));
    assert!(token::acl_match("/a?c", "/aéc"));
    assert!(!token::acl_match("/a?c", "/abbc"));
    assert!(!token::acl_match("/hls/live", "/hls/live/x"));
    assert!(token::acl_covers("/x!/y/*", "/y/1"));
    assert_eq!(token::escape_early("/hls/my file~x"), "%2fhls%2fmy+file~x");
}

proptest! {
    #[test]
    fn sign_then_check_allows(
        seg in "[a-z0-9_.-]{1,12}", file in "[a-z0-9]{1,8}\\.(m3u8|ts)",
        start in 1u64..4_000_000_000, life in 0u64..100_000, ip in proptest::option::of(any_ip()),
        user in proptest::option::of("[ -}]{1,10}"), scope in 0usize..3, esc: bool, alg in 0usize..3,
    ) {
        let mut r = raw(&[KEY]);
        r.escape_early = esc;
        r.salt = Some("s".into());
        r.sign_scope = Some(["directory", "path", "url"][scope].into());
        r.algorithm = Some(["sha256", "sha1", "md5"][alg].into());
        let a = scheme(&r);
        let path = format!("/live/{seg}/{file}");
        let s = SignRequest { path: &path, client_ip: ip, channel: None, start, expires: start + life, user: user.as_deref() };
        let Ok(link) = a.sign(&s) else {
            // Only a user id that cannot ride in a URL may refuse.
            let id = user.unwrap_or_default();
            prop_assert!(id.contains('~') || (!esc && !url_safe(&id)), "{id:?}");
            return Ok(());
        };
        let q = link.split_once('?').unwrap().1;
        let h = http::HeaderMap::new();
        let client = ip.unwrap_or(IpAddr::from([192, 0, 2, 1]));
        let rq = AuthRequest { client_ip: client, path: &path, query: Some(q), headers: &h, channel: None, now: start + life / 2 };
        prop_assert_eq!(a.check(&rq), Check::Allow(Identity { user: user.clone(), session_limit: None, ..Identity::default() }));
        let late = AuthRequest { now: start + life + 1, ..rq };
        prop_assert_eq!(a.check(&late), Check::Expired);
    }

    #[test]
    fn arbitrary_input_never_panics(q in "\\PC{0,200}", c in "[ -~]{0,200}", p in "/\\PC{0,40}", now: u64) {
        let mut r = raw(&[KEY]);
        r.locations = Some(vec!["query".into(), "cookie".into(), "header".into()]);
        r.escape_early = now % 2 == 0;
        r.tolerance = Some("1h".into());
        let a = scheme(&r);
        let mut h = http::HeaderMap::new();
        if let Ok(v) = c.parse() { h.insert(http::header::COOKIE, v); }
        if let Ok(v) = c.parse() { h.insert("__token__", v); }
        let _ = a.check(&req(&p, Some(&q), &h, "::1", now));
        let tq = format!("__token__={q}");
        let _ = a.check(&req(&p, Some(&tq), &h, "::1", now));
    }
}

/// The worked example of docs/auth.md (also reproduced by authref.py).
#[test]
fn docs_example() {
    let a = scheme(&raw(&[KEY]));
    let s = SignRequest {
        path: "/live/ch1/index.m3u8",
        client_ip: None,
        channel: Some("ch1"),
        start: 1_700_000_000,
        expires: 1_700_003_600,
        user: None,
    };
    let tok = "st=1700000000~exp=1700003600~acl=/live/ch1/*~hmac=1bbc1059f0a3422def1238e18351f9677a44d5f11852061edf07c642575e86d3";
    assert_eq!(
        a.sign(&s).unwrap(),
        format!("/live/ch1/index.m3u8?__token__={tok}")
    );
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::COOKIE,
        format!("__token__={tok}").parse().unwrap(),
    );
    let got = a.check(&req(
        "/live/ch1/index.m3u8",
        None,
        &h,
        "127.0.0.1",
        1_700_000_100,
    ));
    assert_eq!(got, Check::Allow(Identity::default()));
}
