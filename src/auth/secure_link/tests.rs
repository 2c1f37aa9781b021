//! `secure_link` against the independent nginx vectors (every case, none
//! skipped), sign/check round trips and no-panic properties, config errors
//! and the masking of secrets.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::auth::vectors::{Case, cases};

fn raw_md5(template: &str, hash_arg: &str, expires_arg: &str) -> RawConfig {
    RawConfig {
        template: Some(template.to_owned()),
        hash_arg: Some(hash_arg.to_owned()),
        expires_arg: Some(expires_arg.to_owned()),
        ..RawConfig::default()
    }
}

fn build(raw: &RawConfig) -> SecureLink {
    SecureLink::new(raw, Path::new(".")).unwrap_or_else(|e| panic!("{e:?}"))
}

/// Run a raw request target through the proxy's normalization and `check`.
fn check_target(s: &SecureLink, target: &str, ip: &str, now: u64) -> Check {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let Ok(path) = crate::path::normalize(path, 4096) else {
        // The proxy answers 400 before any scheme runs.
        return Check::Forbidden;
    };
    let headers = http::HeaderMap::new();
    s.check(&AuthRequest {
        client_ip: ip.parse().unwrap(),
        path: &path,
        query,
        headers: &headers,
        channel: None,
        now,
    })
}

fn verdict(c: &Check) -> &'static str {
    match c {
        Check::Allow(id) if *id == Identity::default() => "allow",
        Check::Allow(_) => "allow-with-identity",
        Check::Forbidden => "forbidden",
        Check::Expired => "expired",
        Check::NotYetValid => "not_yet_valid",
        Check::Pass => "pass",
    }
}

fn run_group(group: &str, make: impl Fn(&Case) -> SecureLink) -> usize {
    let list = cases(group);
    for c in &list {
        let s = make(c);
        let ip = c.inputs["client_ip"].as_str().unwrap_or("127.0.0.1");
        let now = c.inputs["now"].as_u64().unwrap_or(1_700_000_000);
        let got = check_target(&s, c.s("request_target"), ip, now);
        assert_eq!(verdict(&got), c.verdict(), "{group}/{}", c.name);
    }
    list.len()
}

#[test]
fn nginx_secure_link_vectors() {
    let n = run_group("nginx_secure_link", |c| {
        let expires = c.inputs["expires_arg"].as_str().unwrap_or("");
        build(&raw_md5(c.s("md5_template"), c.s("hash_arg"), expires))
    });
    assert_eq!(n, 33);
}

#[test]
fn nginx_secure_link_secret_vectors() {
    let n = run_group("nginx_secure_link_secret", |c| {
        build(&RawConfig {
            mode: Some("secret".into()),
            secret: Some(c.s("secret").to_owned()),
            path_prefix: Some(c.s("location").to_owned()),
            ..RawConfig::default()
        })
    });
    assert_eq!(n, 9);
    // nginx's own rule (skip the first segment, whatever it is) agrees.
    let n = run_group("nginx_secure_link_secret", |c| {
        build(&RawConfig {
            mode: Some("secret".into()),
            secret: Some(c.s("secret").to_owned()),
            ..RawConfig::default()
        })
    });
    assert_eq!(n, 9);
}

#[test]
fn ministra_tmp_link_vectors() {
    let n = run_group("ministra_tmp_link", |c| {
        build(&raw_md5(c.s("md5_template"), "st", "e"))
    });
    assert_eq!(n, 3);
}

/// nginx.org's example with the secret in `$secret`, as the docs show it.
fn doc_scheme(tolerance: &str) -> SecureLink {
    build(&RawConfig {
        secret: Some("secret".into()),
        tolerance: Some(tolerance.into()),
        ..RawConfig::default()
    })
}

const DOC_LINK: &str = "/s/link?md5=_e4Nc3iduzkWRm01TBBNYw&expires=2147483647";

#[test]
fn doc_example_and_pass_rules() {
    let s = doc_scheme("0s");
    let now = 1_700_000_000;
    assert_eq!(
        check_target(&s, DOC_LINK, "127.0.0.1", now),
        Check::Allow(Identity::default())
    );
    // No secure_link argument at all: later methods decide.
    assert_eq!(check_target(&s, "/s/link", "127.0.0.1", now), Check::Pass);
    assert_eq!(
        check_target(&s, "/s/link?token=x&md5", "127.0.0.1", now),
        Check::Pass
    );
    // Present but empty or bad: forbidden.
    assert_eq!(
        check_target(&s, "/s/link?md5=", "127.0.0.1", now),
        Check::Forbidden
    );
    assert_eq!(
        check_target(&s, "/s/link?expires=1", "127.0.0.1", now),
        Check::Forbidden
    );
    // A comma in the hash argument moves nginx's split point: forbidden.
    let comma = "/s/link?md5=_e4Nc3iduzkWRm01TBBNYw,2147483647&expires=2147483647";
    assert_eq!(check_target(&s, comma, "127.0.0.1", now), Check::Forbidden);
    assert_eq!(s.params(), ["md5", "expires"]);
}

#[test]
fn no_expiry_form_reads_expiry_after_a_comma_like_nginx() {
    // `secure_link $arg_md5;`: "<hash>,<t>" in the one argument is an expiry.
    let s = build(&RawConfig {
        secret: Some("k".into()),
        expires_arg: Some(String::new()),
        template: Some("$secure_link_expires$uri$secret".into()),
        ..RawConfig::default()
    });
    assert_eq!(s.params(), ["md5"]);
    let link = s
        .sign(&SignRequest {
            path: "/a",
            client_ip: None,
            channel: None,
            start: 0,
            expires: 100,
            user: None,
        })
        .unwrap();
    let hash = link.strip_prefix("/a?md5=").unwrap();
    // Signed with an empty $secure_link_expires: never expires.
    assert_eq!(
        check_target(&s, &link, "::1", u64::MAX),
        Check::Allow(Identity::default())
    );
    let mut h = Md5::new();
    h.update(b"100/ak");
    let with_exp = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize())
    };
    let target = format!("/a?md5={with_exp},100");
    assert_eq!(
        check_target(&s, &target, "::1", 100),
        Check::Allow(Identity::default())
    );
    assert_eq!(check_target(&s, &target, "::1", 101), Check::Expired);
    assert_eq!(
        check_target(&s, &format!("/a?md5={hash},0"), "::1", 1),
        Check::Forbidden
    );
}

#[test]
fn tolerance_extends_validity_only_for_valid_hashes() {
    let now = 1_700_000_000;
    let sign = |s: &SecureLink, exp| {
        s.sign(&SignRequest {
            path: "/live/ch1/index.m3u8",
            client_ip: Some("127.0.0.1".parse().unwrap()),
            channel: None,
            start: 0,
            expires: exp,
            user: None,
        })
        .unwrap()
    };
    let strict = doc_scheme("0s");
    let lenient = doc_scheme("30s");
    let ok = Check::Allow(Identity::default());
    for (s, exp, want) in [
        (&strict, now, ok.clone()),
        (&strict, now - 1, Check::Expired),
        (&lenient, now - 30, ok.clone()),
        (&lenient, now - 31, Check::Expired),
    ] {
        assert_eq!(
            check_target(s, &sign(s, exp), "127.0.0.1", now),
            want,
            "{exp}"
        );
    }
    assert_eq!(
        check_target(&lenient, &sign(&strict, now - 10), "10.0.0.1", now),
        Check::Forbidden
    );
}

#[test]
fn sign_refuses_what_it_cannot_sign() {
    let req = |path, ip: Option<IpAddr>, expires| SignRequest {
        path,
        client_ip: ip,
        channel: None,
        start: 0,
        expires,
        user: None,
    };
    let s = doc_scheme("0s");
    let ip = Some("127.0.0.1".parse().unwrap());
    assert!(
        s.sign(&req("/a", None, 5))
            .unwrap_err()
            .contains("$remote_addr")
    );
    assert!(s.sign(&req("/a", ip, 0)).is_err());
    assert!(
        s.sign(&req("/a//b", ip, 5))
            .unwrap_err()
            .contains("normalized")
    );
    assert!(s.sign(&req("/a/../b", ip, 5)).is_err());
    assert!(s.sign(&req("a", ip, 5)).is_err());
    // A literal `%` is part of a decoded path: escaped on the wire.
    assert!(
        s.sign(&req("/a%zz", ip, 5))
            .unwrap()
            .starts_with("/a%25zz?")
    );
    let other = build(&raw_md5("$arg_user$uri$secret", "md5", "expires").with_secret("k"));
    assert!(
        other
            .sign(&req("/a", ip, 5))
            .unwrap_err()
            .contains("$arg_user")
    );
    let secret = build(&RawConfig {
        mode: Some("secret".into()),
        secret: Some("k".into()),
        ..RawConfig::default()
    });
    assert!(secret.sign(&req("/live", ip, 5)).is_err());
    assert!(secret.sign(&req("/live/", ip, 5)).is_err());
    assert_eq!(secret.params(), Vec::<String>::new());
}

impl RawConfig {
    fn with_secret(mut self, s: &str) -> Self {
        self.secret = Some(s.to_owned());
        self
    }
}

#[test]
fn config_errors_name_their_keys() {
    let errs = |raw: &RawConfig| -> Vec<String> {
        let e = SecureLink::new(raw, Path::new(".")).unwrap_err();
        e.into_iter().map(|(k, m)| format!("{k}: {m}")).collect()
    };
    let has = |list: &[String], want: &str| {
        assert!(
            list.iter().any(|e| e.starts_with(want)),
            "{want} not in {list:?}"
        );
    };
    // Everything at once.
    let mut vars = BTreeMap::new();
    vars.insert("uri".to_owned(), "x".to_owned());
    vars.insert("bad-name".to_owned(), "x".to_owned());
    let all = errs(&RawConfig {
        hash_arg: Some("md-5".into()),
        expires_arg: Some("MD-5".into()),
        template: Some("$uri$nope".into()),
        tolerance: Some("30".into()),
        path_prefix: Some("/p/".into()),
        variables: Some(vars),
        ..RawConfig::default()
    });
    for key in [
        "hash_arg:",
        "expires_arg:",
        "template: unknown variable \"$nope\"",
        "tolerance:",
        "path_prefix:",
        "variables.uri:",
        "variables.bad-name:",
    ] {
        has(&all, key);
    }
    has(
        &errs(&RawConfig::default()),
        "secret: required: the template uses $secret",
    );
    has(
        &errs(&raw_md5("$uri$remote_addr", "md5", "e")),
        "template: hashes only",
    );
    has(
        &errs(&raw_md5("$args$secret", "md5", "e").with_secret("k")),
        "template: $args",
    );
    has(
        &errs(&raw_md5("$arg_MD5 k", "md5", "e")),
        "template: $arg_md5",
    );
    has(
        &errs(&raw_md5("$uri k", "md5", "md5")),
        "expires_arg: must differ",
    );
    has(
        &errs(&raw_md5("${uri", "md5", "e")),
        "template: the closing bracket",
    );
    has(
        &errs(&RawConfig {
            mode: Some("sha1".into()),
            ..RawConfig::default()
        }),
        "mode:",
    );
    has(
        &errs(&RawConfig {
            secret: Some("env:TOLLGATE_UNSET_VAR_X".into()),
            ..RawConfig::default()
        }),
        "secret: environment",
    );
    let secret_mode = errs(&RawConfig {
        mode: Some("secret".into()),
        template: Some("$uri".into()),
        tolerance: Some("1s".into()),
        path_prefix: Some("/p".into()),
        ..RawConfig::default()
    });
    for key in [
        "template: only applies",
        "tolerance: only applies",
        "secret: required",
        "path_prefix:",
    ] {
        has(&secret_mode, key);
    }
}

#[test]
fn secrets_never_in_debug() {
    let mut vars = BTreeMap::new();
    vars.insert("salt".to_owned(), "pepper-value-42".to_owned());
    let raw = RawConfig {
        secret: Some("hunter2-secret".into()),
        template: Some("$uri inline-key-99 $salt $secret".into()),
        variables: Some(vars),
        ..RawConfig::default()
    };
    let s = build(&raw);
    let secret_mode = build(&RawConfig {
        mode: Some("secret".into()),
        secret: Some("hunter2-secret".into()),
        ..RawConfig::default()
    });
    for shown in [
        format!("{s:?}"),
        format!("{raw:?}"),
        format!("{secret_mode:?}"),
    ] {
        for needle in ["hunter2", "inline-key-99", "pepper-value-42"] {
            assert!(!shown.contains(needle), "{needle} in {shown}");
        }
        assert!(shown.contains("MASKED"), "{shown}");
    }
}

fn arb_path() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-zA-Z0-9 ._~+%é-]{1,8}", 1..5).prop_filter_map(
        "normalizable",
        |segs| {
            let p = format!("/{}", segs.join("/"));
            crate::path::normalize(&encode_for_origin(&p), 4096)
                .ok()
                .filter(|n| *n == p)
        },
    )
}

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u16; 8]>().prop_map(IpAddr::from)
    ]
}

proptest! {
    #[test]
    fn sign_then_check_round_trips(
        path in arb_path(),
        ip in arb_ip(),
        expires in 1u64..=i64::MAX as u64,
        now in any::<u64>(),
        secret_mode in any::<bool>(),
    ) {
        let s = if secret_mode {
            build(&RawConfig { mode: Some("secret".into()), ..RawConfig::default() }.with_secret("k"))
        } else {
            doc_scheme("0s")
        };
        let signed = s.sign(&SignRequest {
            path: &path, client_ip: Some(ip), channel: None, start: 0, expires, user: None,
        });
        let Ok(link) = signed else {
            // Only the secret form refuses, for a path with a single segment.
            prop_assert!(secret_mode && path.matches('/').count() < 2, "{signed:?}");
            return Ok(());
        };
        let got = check_target(&s, &link, &ip.to_string(), now);
        let want = if !secret_mode && expires < now { Check::Expired } else { Check::Allow(Identity::default()) };
        prop_assert_eq!(got, want, "{}", link);
        // Another client address never verifies an IP-bound link.
        if !secret_mode {
            let other = if ip.is_ipv4() { "::1" } else { "127.0.0.1" };
            prop_assert_eq!(check_target(&s, &link, other, now), Check::Forbidden);
        }
    }

    #[test]
    fn check_never_panics(query in ".{0,80}", hash in "[A-Za-z0-9_=,+/%-]{0,30}", path in "/[^?#]{0,30}", ip in arb_ip(), now in any::<u64>()) {
        let s = doc_scheme("1h");
        let secret_mode = build(&RawConfig { mode: Some("secret".into()), ..RawConfig::default() }.with_secret("k"));
        for q in [query.clone(), format!("md5={hash}&expires={query}"), format!("{query}&md5={hash}")] {
            let headers = http::HeaderMap::new();
            let req = AuthRequest { client_ip: ip, path: &path, query: Some(&q), headers: &headers, channel: None, now };
            let _ = s.check(&req);
            let _ = secret_mode.check(&req);
        }
    }

    #[test]
    fn new_never_panics(template in ".{0,40}", hash_arg in ".{0,6}", expires_arg in ".{0,6}", tolerance in ".{0,6}", prefix in ".{0,6}") {
        for mode in ["md5", "secret", ""] {
            let raw = RawConfig {
                mode: Some(mode.into()),
                secret: Some("k".into()),
                hash_arg: Some(hash_arg.clone()),
                expires_arg: Some(expires_arg.clone()),
                template: Some(template.clone()),
                tolerance: Some(tolerance.clone()),
                path_prefix: Some(prefix.clone()),
                variables: None,
            };
            let _ = SecureLink::new(&raw, Path::new("."));
        }
        let _ = Template::parse(&template, &[]);
    }
}
