//! `secure_link` against the independent nginx vectors (every case, none
//! skipped), the pass/expiry/tolerance rules and what `sign` refuses; also
//! the helpers the other test modules share.

use std::net::IpAddr;
use std::path::Path;

use super::*;
use crate::auth::vectors::{Case, cases};

pub(super) fn raw_md5(template: &str, hash_arg: &str, expires_arg: &str) -> RawConfig {
    RawConfig {
        template: Some(template.to_owned()),
        hash_arg: Some(hash_arg.to_owned()),
        expires_arg: Some(expires_arg.to_owned()),
        ..RawConfig::default()
    }
}

pub(super) fn build(raw: &RawConfig) -> SecureLink {
    SecureLink::new(raw, Path::new(".")).unwrap_or_else(|e| panic!("{e:?}"))
}

/// Run a raw request target through the proxy's normalization and `check`.
pub(super) fn check_target(s: &SecureLink, target: &str, ip: &str, now: u64) -> Check {
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
        Check::Blocked => "blocked",
        Check::Pass => "pass",
    }
}

fn run_group(group: &str, make: impl Fn(&Case) -> SecureLink) -> usize {
    let list = cases(group);
    for c in &list {
        let s = make(c);
        let ip = c.inputs["client_ip"].as_str().unwrap_or("127.0.0.1");
        let now = c.inputs["now"].as_u64().unwrap_or(1_700_000_000);
        let target = c.s("request_target");
        // No vector path is one the proxy refuses before auth runs.
        let path = target.split('?').next().unwrap_or_default();
        assert!(
            crate::path::normalize(path, 4096).is_ok(),
            "{group}/{}",
            c.name
        );
        let got = check_target(&s, target, ip, now);
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
            secret: Some(c.s("secret").into()),
            path_prefix: Some(c.s("location").to_owned()),
            ..RawConfig::default()
        })
    });
    assert_eq!(n, 9);
    // nginx's own rule (skip the first segment, whatever it is) agrees.
    let n = run_group("nginx_secure_link_secret", |c| {
        build(&RawConfig {
            mode: Some("secret".into()),
            secret: Some(c.s("secret").into()),
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
pub(super) fn doc_scheme(tolerance: &str) -> SecureLink {
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
    pub(super) fn with_secret(mut self, s: &str) -> Self {
        self.secret = Some(s.into());
        self
    }
}

/// The worked example of `docs/auth.md`, both forms.
#[test]
fn docs_worked_example() {
    let sign = |s: &SecureLink| {
        s.sign(&SignRequest {
            path: "/live/ch1/index.m3u8",
            client_ip: Some("127.0.0.1".parse().unwrap()),
            channel: Some("ch1"),
            start: 1_700_000_000,
            expires: 2_147_483_647,
            user: None,
        })
        .unwrap()
    };
    let md5 = build(&RawConfig::default().with_secret("yourverysecretkey1"));
    let link = sign(&md5);
    assert_eq!(
        link,
        "/live/ch1/index.m3u8?md5=imfHGFfESKvrEgyfgfk8DA&expires=2147483647"
    );
    let ok = Check::Allow(Identity::default());
    assert_eq!(check_target(&md5, &link, "127.0.0.1", 1_700_000_000), ok);
    assert_eq!(
        check_target(&md5, &link, "127.0.0.2", 1_700_000_000),
        Check::Forbidden
    );
    assert_eq!(
        check_target(&md5, &link, "127.0.0.1", 2_147_483_648),
        Check::Expired
    );
    let secret = build(
        &RawConfig {
            mode: Some("secret".into()),
            ..RawConfig::default()
        }
        .with_secret("yourverysecretkey1"),
    );
    let link = sign(&secret);
    assert_eq!(
        link,
        "/live/0ac6f7499399482b5f0f38179314346b/ch1/index.m3u8"
    );
    assert_eq!(check_target(&secret, &link, "192.0.2.1", 0), ok);
}
