//! Tests of the WMSAuth core: every `nimble_wmsauth` vector, sign → check
//! round trips, never-panic properties and a masked `Debug`.

use crate::auth::vectors::any_ip;
use std::net::IpAddr;
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::auth::vectors;

fn scheme(key: &str, tolerance: u64) -> WmsAuth {
    let raw = RawConfig {
        key: Some(key.into()),
        tolerance: Some(format!("{tolerance}s")),
        ..RawConfig::default()
    };
    WmsAuth::new(&raw, Path::new(".")).unwrap()
}

fn check(s: &WmsAuth, query: &str, path: &str, ip: &str, now: u64) -> Check {
    let headers = http::HeaderMap::new();
    s.check(&vectors::request(path, Some(query), &headers, ip, now))
}

/// `s`'s verdict on vector `c` with its signature in `query`.
fn check_case(s: &WmsAuth, c: &vectors::Case, query: &str) -> Check {
    check(s, query, c.s("request_path"), c.s("client_ip"), c.u("now"))
}

#[test]
fn every_nimble_vector() {
    let cases = vectors::cases("nimble_wmsauth");
    let mut run = 0;
    for c in &cases {
        let s = scheme(c.s("key"), c.u("tolerance"));
        let query = format!("nimblesessionid=7&wmsAuthSign={}", c.s("wmsAuthSign"));
        let got = check_case(&s, c, &query);
        c.assert_verdict(&got);
        if let Check::Allow(id) = &got {
            assert_eq!(
                id.user.as_deref(),
                c.inputs["decoded"]["id"].as_str(),
                "{}",
                c.name
            );
        }
        run += 1;
    }
    assert_eq!(run, 18);
}

#[test]
fn no_param_passes_and_name_is_case_insensitive() {
    let s = scheme("defaultpassword", 0);
    let c = &vectors::cases("nimble_wmsauth")[1];
    let (path, ip, now) = (c.s("request_path"), c.s("client_ip"), c.u("now"));
    assert_eq!(check(&s, "a=1&wmsAuthSignX=1", path, ip, now), Check::Pass);
    let upper = format!("WMSAUTHSIGN={}", c.s("wmsAuthSign"));
    assert!(matches!(check(&s, &upper, path, ip, now), Check::Allow(_)));
    assert_eq!(check(&s, "wmsAuthSign", path, ip, now), Check::Forbidden);
    assert_eq!(s.params(), vec!["wmsAuthSign".to_owned()]);
}

#[test]
fn require_ip_refuses_unbound_ppv_tokens() {
    let raw = RawConfig {
        key: Some("defaultpassword".into()),
        tolerance: Some("0s".into()),
        require_ip: Some(true),
        ..RawConfig::default()
    };
    let s = WmsAuth::new(&raw, Path::new(".")).unwrap();
    for c in vectors::cases("nimble_wmsauth") {
        let got = check_case(&s, &c, &format!("wmsAuthSign={}", c.s("wmsAuthSign")));
        if c.name == "ppv_id_only_any_ip" {
            assert_eq!(got, Check::Forbidden);
        } else if c.name == "ppv_id_and_ip_valid" {
            assert!(matches!(got, Check::Allow(_)));
        }
    }
}

#[test]
fn config_errors_name_their_keys() {
    let raw = RawConfig {
        key: None,
        tolerance: Some("soon".into()),
        param: Some("a&b".into()),
        require_ip: None,
    };
    let errs = WmsAuth::new(&raw, Path::new(".")).unwrap_err();
    let keys: Vec<&str> = errs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["key", "tolerance", "param"]);
}

#[test]
fn secrets_never_in_debug() {
    let raw = RawConfig {
        key: Some("hunter2-wms".into()),
        ..RawConfig::default()
    };
    let s = WmsAuth::new(&raw, Path::new(".")).unwrap();
    for shown in [format!("{raw:?}"), format!("{s:?}")] {
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("MASKED"), "{shown}");
    }
}

#[test]
fn sign_refuses_what_it_cannot_express() {
    let s = scheme("k", 0);
    let mut req = SignRequest {
        path: "/live/ch1/index.m3u8",
        client_ip: None,
        channel: None,
        start: 1_700_000_000,
        expires: 1_700_000_600,
        user: None,
    };
    assert!(s.sign(&req).is_err(), "neither user nor IP");
    req.user = Some("a&b");
    assert!(s.sign(&req).is_err());
    req.user = Some("5");
    req.expires = req.start;
    assert!(s.sign(&req).is_err());
}

proptest! {
    #[test]
    fn sign_then_check_round_trips(
        ip in any_ip(),
        other in any_ip(),
        bind_ip in any::<bool>(),
        user in proptest::option::of("[A-Za-z0-9_.-]{1,12}"),
        start in 0u64..4_000_000_000,
        secs in 1u64..100_000,
        at in 0u64..100_000,
    ) {
        let s = scheme("prop-key", 0);
        let user = if bind_ip { user } else { Some(user.unwrap_or_else(|| "u".into())) };
        let req = SignRequest {
            path: "/live/ch1/index.m3u8",
            client_ip: bind_ip.then_some(ip),
            channel: None,
            start,
            expires: start + secs,
            user: user.as_deref(),
        };
        let link = s.sign(&req).unwrap();
        let (path, query) = link.split_once('?').unwrap();
        prop_assert_eq!(path, req.path);
        let headers = http::HeaderMap::new();
        let mut areq = AuthRequest {
            client_ip: ip, path, query: Some(query), headers: &headers, channel: None,
            now: start + at.min(secs),
        };
        prop_assert_eq!(s.check(&areq), Check::Allow(Identity { user: user.clone(), session_limit: None, ..Identity::default() }));
        areq.now = start + secs.div_ceil(60) * 60 + 1 + at;
        prop_assert_eq!(s.check(&areq), Check::Expired);
        areq.now = start;
        areq.client_ip = other;
        let want = if bind_ip && other != ip { Check::Forbidden } else { Check::Allow(Identity { user, session_limit: None, ..Identity::default() }) };
        prop_assert_eq!(s.check(&areq), want);
    }

    #[test]
    fn arbitrary_queries_never_panic(query in ".{0,200}", path in "/?.{0,40}", now in any::<u64>()) {
        let s = scheme("k", 90);
        let headers = http::HeaderMap::new();
        let _ = s.check(&AuthRequest {
            client_ip: IpAddr::from([10, 0, 0, 1]), path: &path, query: Some(&query),
            headers: &headers, channel: None, now,
        });
    }

    #[test]
    fn arbitrary_tokens_never_panic(
        text in "(server_time=[0-9/: APM]{0,24}|hash_value=[A-Za-z0-9+/=]{0,26}|validminutes=[0-9]{0,22}|strm_len=[0-9]{0,22}|id=.{0,5}|checkip=true|.{0,8})(&(server_time=[0-9/: APM]{0,24}|hash_value=[A-Za-z0-9+/=]{0,26}|validminutes=[0-9]{0,22}|strm_len=[0-9]{0,22}|id=.{0,5}|checkip=true|.{0,8})){0,6}",
        path in "/?.{0,40}",
        now in any::<u64>(),
    ) {
        let s = scheme("k", u64::from(u32::MAX));
        let query = format!("wmsAuthSign={}", STANDARD.encode(text));
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
    let s = scheme("wms-example-key", 90);
    let t = 1_704_445_387;
    let link = s
        .sign(&SignRequest {
            path: "/live/ch1/index.m3u8",
            client_ip: Some(IpAddr::from([127, 0, 0, 1])),
            channel: Some("ch1"),
            start: t,
            expires: t + 20 * 60,
            user: None,
        })
        .unwrap();
    let token = "c2VydmVyX3RpbWU9MS81LzIwMjQgOTowMzowNyBBTSZoYXNoX3ZhbHVlPTNILytxQ0VZeXQ4Z1hWUzI0UXpSaVE9PSZ2YWxpZG1pbnV0ZXM9MjA=";
    assert_eq!(link, format!("/live/ch1/index.m3u8?wmsAuthSign={token}"));
    let query = format!("wmsAuthSign={token}");
    let path = "/live/ch1/index.m3u8";
    assert!(matches!(
        check(&s, &query, path, "127.0.0.1", t + 60),
        Check::Allow(_)
    ));
    assert!(matches!(
        check(&s, &query, path, "127.0.0.1", t + 1290),
        Check::Allow(_)
    ));
    assert_eq!(
        check(&s, &query, path, "127.0.0.1", t + 1291),
        Check::Expired
    );
    assert_eq!(
        check(&s, &query, path, "10.0.0.1", t + 60),
        Check::Forbidden
    );
}

/// The docs' TOML loads through the real config parser, and a bad key is
/// reported with its full path.
#[test]
fn docs_config_loads() {
    let text = vectors::live_route_config(
        "wmsauth",
        r#"
        [auth.wmsauth]
        key = "wms-example-key"
        tolerance = "90s"
        param = "wmsAuthSign"
        require_ip = false
    "#,
    );
    let config = vectors::parse_config(&text).unwrap();
    let s = config.auth.wmsauth.as_ref().unwrap();
    assert_eq!(s.params(), vec!["wmsAuthSign".to_owned()]);
    let paths = vectors::config_error_paths(&text.replace("\"90s\"", "\"90\""));
    assert!(
        paths.iter().any(|p| p == "auth.wmsauth.tolerance"),
        "{paths:?}"
    );
}
