//! Tests of the Wowza core: every `wowza_securetoken` vector (both content
//! path modes), sign → check round trips, never-panic properties and a
//! masked `Debug`.

use crate::auth::vectors::any_ip;
use std::net::IpAddr;
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::auth::vectors::{self, Case};

fn raw(secret: &str) -> RawConfig {
    RawConfig {
        secret: Some(secret.into()),
        ..RawConfig::default()
    }
}

fn from_case(c: &Case, content_path: &str) -> Wowza {
    let raw = RawConfig {
        prefix: Some(c.s("prefix").to_owned()),
        algorithm: Some(c.s("alg").to_owned()),
        include_client_ip: c.inputs["include_ip"].as_bool(),
        content_path: Some(content_path.to_owned()),
        ..raw(c.s("secret"))
    };
    Wowza::new(&raw, Path::new(".")).unwrap()
}

fn check(s: &Wowza, path: &str, query: &str, ip: &str, now: u64) -> Check {
    let headers = http::HeaderMap::new();
    s.check(&vectors::request(path, Some(query), &headers, ip, now))
}

fn want(verdict: &str) -> Check {
    match verdict {
        "allow" => Check::Allow(Identity::default()),
        "forbidden" => Check::Forbidden,
        "expired" => Check::Expired,
        "not_yet_valid" => Check::NotYetValid,
        other => panic!("unexpected verdict {other}"),
    }
}

#[test]
fn every_wowza_vector() {
    let cases = vectors::cases("wowza_securetoken");
    let mut run = 0;
    for c in &cases {
        let (cp, query, ip, now) = (
            c.s("content_path"),
            c.s("query"),
            c.s("client_ip"),
            c.u("now"),
        );
        // As given: the content path is the whole path.
        let got = check(&from_case(c, "full"), cp, query, ip, now);
        assert_eq!(got, want(c.verdict()), "{} (full)", c.name);
        // As a player requests it: the playlist below the content path.
        let path = format!("/{cp}/playlist.m3u8");
        let got = check(&from_case(c, "parent"), &path, query, ip, now);
        assert_eq!(got, want(c.verdict()), "{} (parent)", c.name);
        run += 1;
    }
    assert_eq!(run, 13);
}

#[test]
fn pass_only_without_any_prefixed_parameter() {
    let s = Wowza::new(&raw("s"), Path::new(".")).unwrap();
    let ip = "192.0.2.1";
    for (query, want) in [
        ("type=m3u8&x=1", Check::Pass),
        ("WOWZATOKENHASH=x", Check::Pass),
        ("wowzatokenendtime=9", Check::Forbidden),
        ("wowzatokenhash", Check::Forbidden),
    ] {
        assert_eq!(check(&s, "/a/b/i.m3u8", query, ip, 1), want, "{query}");
    }
    assert_eq!(s.params(), vec!["wowzatoken*".to_owned()]);
    let headers = http::HeaderMap::new();
    let no_query = vectors::request("/a", None, &headers, ip, 1);
    assert_eq!(s.check(&no_query), Check::Pass);
}

#[test]
fn tolerance_widens_both_bounds() {
    let cfg = |tol: &str| RawConfig {
        tolerance: Some(tol.to_owned()),
        ..raw("s")
    };
    let strict = Wowza::new(&cfg("0s"), Path::new(".")).unwrap();
    let loose = Wowza::new(&cfg("30s"), Path::new(".")).unwrap();
    let link = strict
        .sign(&SignRequest {
            path: "/live/ch1/index.m3u8",
            client_ip: None,
            channel: None,
            start: 1000,
            expires: 2000,
            user: None,
        })
        .unwrap();
    let (path, query) = link.split_once('?').unwrap();
    let ip = "192.0.2.1";
    assert_eq!(check(&strict, path, query, ip, 999), Check::NotYetValid);
    assert_eq!(check(&strict, path, query, ip, 2001), Check::Expired);
    assert_eq!(check(&strict, path, query, ip, 2000), want("allow"));
    assert_eq!(check(&loose, path, query, ip, 970), want("allow"));
    assert_eq!(check(&loose, path, query, ip, 2030), want("allow"));
    assert_eq!(check(&loose, path, query, ip, 2031), Check::Expired);
    // Same directory, another file: same content path, same token.
    assert_eq!(
        check(&strict, "/live/ch1/seg7.ts", query, ip, 1500),
        want("allow")
    );
    assert_eq!(
        check(&strict, "/live/ch2/index.m3u8", query, ip, 1500),
        Check::Forbidden
    );
}

#[test]
fn config_errors_name_their_keys() {
    let bad = RawConfig {
        secret: None,
        prefix: Some("a=b".into()),
        algorithm: Some("md5".into()),
        include_client_ip: None,
        tolerance: Some("x".into()),
        content_path: Some("dir".into()),
    };
    let errs = Wowza::new(&bad, Path::new(".")).unwrap_err();
    let keys: Vec<&str> = errs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["secret", "prefix", "algorithm", "tolerance", "content_path"]
    );
}

#[test]
fn secrets_never_in_debug() {
    let r = raw("hunter2-wowza");
    let s = Wowza::new(&r, Path::new(".")).unwrap();
    for shown in [format!("{r:?}"), format!("{s:?}")] {
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("MASKED"), "{shown}");
    }
}

proptest! {
    #[test]
    fn sign_then_check_round_trips(
        ip in any_ip(),
        other in any_ip(),
        include_ip in any::<bool>(),
        alg in prop_oneof![Just("sha256"), Just("sha384"), Just("sha512")],
        prefix in "[a-z]{1,12}",
        path in "(/[A-Za-z0-9_.:-]{1,10}){1,4}",
        start in 0u64..4_000_000_000,
        secs in 0u64..100_000,
        at in 0u64..100_000,
    ) {
        let cfg = RawConfig {
            prefix: Some(prefix),
            algorithm: Some(alg.to_owned()),
            include_client_ip: Some(include_ip),
            ..raw("prop-secret")
        };
        let s = Wowza::new(&cfg, Path::new(".")).unwrap();
        let req = SignRequest {
            path: &path, client_ip: Some(ip), channel: None, start, expires: start + secs, user: None,
        };
        let link = s.sign(&req).unwrap();
        let (lpath, query) = link.split_once('?').unwrap();
        prop_assert_eq!(lpath, path.as_str());
        let headers = http::HeaderMap::new();
        let mut areq = AuthRequest {
            client_ip: ip, path: lpath, query: Some(query), headers: &headers, channel: None,
            now: start + at.min(secs),
        };
        prop_assert_eq!(s.check(&areq), Check::Allow(Identity::default()));
        areq.now = start + secs + 1 + at;
        prop_assert_eq!(s.check(&areq), Check::Expired);
        if start > 0 {
            areq.now = start - 1;
            prop_assert_eq!(s.check(&areq), Check::NotYetValid);
        }
        areq.now = start;
        areq.client_ip = other;
        let want = if include_ip && other != ip { Check::Forbidden } else { Check::Allow(Identity::default()) };
        prop_assert_eq!(s.check(&areq), want);
    }

    #[test]
    fn arbitrary_queries_never_panic(
        query in "((wowzatoken(hash|starttime|endtime|[A-Za-z]{0,4})|[a-z%]{0,4})(=[^&]{0,30})?&?){0,8}|.{0,200}",
        path in "/?.{0,40}",
        now in any::<u64>(),
        tol in prop_oneof![Just("0s"), Just("100000000000s")],
    ) {
        let cfg = RawConfig { tolerance: Some(tol.to_owned()), include_client_ip: Some(true), ..raw("s") };
        let s = Wowza::new(&cfg, Path::new(".")).unwrap();
        let headers = http::HeaderMap::new();
        let _ = s.check(&AuthRequest {
            client_ip: IpAddr::from([10, 0, 0, 1]), path: &path, query: Some(&query),
            headers: &headers, channel: None, now,
        });
    }
}

/// The worked example of `docs/auth.md` (also checked with authref.py).
#[test]
fn docs_worked_example() {
    let cfg = RawConfig {
        include_client_ip: Some(true),
        ..raw("wowza-example-secret")
    };
    let s = Wowza::new(&cfg, Path::new(".")).unwrap();
    let t = 1_704_445_387;
    let link = s
        .sign(&SignRequest {
            path: "/live/ch1/index.m3u8",
            client_ip: Some(IpAddr::from([127, 0, 0, 1])),
            channel: Some("ch1"),
            start: t,
            expires: t + 3600,
            user: None,
        })
        .unwrap();
    let query = "wowzatokenstarttime=1704445387&wowzatokenendtime=1704448987\
                 &wowzatokenhash=97D0KEimU3Rb6FqV1Mnrew4kaVduEV23V59BLSD9634=";
    assert_eq!(link, format!("/live/ch1/index.m3u8?{query}"));
    let path = "/live/ch1/index.m3u8";
    assert_eq!(check(&s, path, query, "127.0.0.1", t + 60), want("allow"));
    assert_eq!(
        check(&s, path, query, "127.0.0.1", t + 3601),
        Check::Expired
    );
    assert_eq!(
        check(&s, path, query, "127.0.0.1", t - 1),
        Check::NotYetValid
    );
    assert_eq!(
        check(&s, path, query, "192.0.2.1", t + 60),
        Check::Forbidden
    );
}

/// The docs' TOML loads through the real config parser, and a bad key is
/// reported with its full path.
#[test]
fn docs_config_loads() {
    let text = vectors::live_route_config(
        "wowza",
        r#"
        [auth.wowza]
        secret = "wowza-example-secret"
        prefix = "wowzatoken"
        algorithm = "sha256"
        include_client_ip = true
        tolerance = "0s"
        content_path = "parent"
    "#,
    );
    let config = vectors::parse_config(&text).unwrap();
    let s = config.auth.wowza.as_ref().unwrap();
    assert_eq!(s.params(), vec!["wowzatoken*".to_owned()]);
    let paths = vectors::config_error_paths(&text.replace("\"sha256\"", "\"md5\""));
    assert!(
        paths.iter().any(|p| p == "auth.wowza.algorithm"),
        "{paths:?}"
    );
}
