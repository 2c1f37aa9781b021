//! Every signature method through the running proxy: a link from
//! `tollgate::sign` (what `tollgate sign` prints) gets the origin's bytes;
//! tampered → 403; expired → 410 (secure_link) or 403; signed for another IP
//! → 403 (IP-bound schemes); client on `[ip] deny` → 403 even with a valid
//! link. A real hyper origin and the real proxy on 127.0.0.1:0.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use tollgate::config::Config;
use tollgate::sign::{SignOptions, sign};

/// One method under test.
struct Method {
    name: &'static str,
    /// Its config section(s).
    section: &'static str,
    /// Status for a correctly signed but expired link (`None`: links do not expire).
    expired: Option<u16>,
    /// Whether links are bound to the client IP.
    ip_bound: bool,
    /// The user the link names, for schemes that carry one.
    user: Option<&'static str>,
}

/// Every signing method, configured the way an operator would.
const METHODS: [Method; 6] = [
    Method {
        name: "token",
        section: "[[user]]\nid = \"alice\"\npackages = [\"*\"]\ntokens = [\"alice-token-1\"]\npassword = \"a-long-random-password\"\n",
        expired: None,
        ip_bound: false,
        user: Some("alice"),
    },
    Method {
        name: "secure_link",
        section: "[auth.secure_link]\nsecret = \"s3cret-link-key\"\nhash_arg = \"md5\"\nexpires_arg = \"expires\"\ntemplate = \"$secure_link_expires$uri$remote_addr $secret\"\n",
        expired: Some(410),
        ip_bound: true,
        user: None,
    },
    Method {
        name: "wmsauth",
        section: "[auth.wmsauth]\nkey = \"nimble-key\"\ntolerance = \"0s\"\n",
        expired: Some(403),
        ip_bound: true,
        user: Some("viewer-42"),
    },
    Method {
        name: "wowza",
        section: "[auth.wowza]\nsecret = \"wowza-shared-secret\"\nprefix = \"wowzatoken\"\nalgorithm = \"sha256\"\ninclude_client_ip = true\n",
        expired: Some(403),
        ip_bound: true,
        user: None,
    },
    Method {
        name: "akamai",
        section: "[auth.akamai]\nkeys = [\"a7f3c9e1b2d4f6a8c0e2b4d6f8a0c2e4\"]\nalgorithm = \"sha256\"\ntoken_name = \"__token__\"\n",
        expired: Some(403),
        ip_bound: true,
        user: None,
    },
    Method {
        name: "cesbo",
        section: "[auth.cesbo]\nsecret = \"astra-secret\"\nsubject = \"path\"\n",
        expired: Some(403),
        ip_bound: true,
        user: None,
    },
];

fn method(name: &str) -> &'static Method {
    METHODS.iter().find(|m| m.name == name).unwrap()
}

const PATH: &str = "/live/ch1/index.m3u8";

fn config_text(origin: std::net::SocketAddr, m: &Method, deny_loopback: bool) -> String {
    let deny = if deny_loopback {
        "deny = [\"127.0.0.1/32\"]"
    } else {
        ""
    };
    ConfigBuilder::new(origin)
        .section("ip", deny)
        .route(Route::new("live", "/live/").auth(&[m.name]))
        .extra(m.section)
        .build()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn signed(text: &str, m: &Method, ip: Option<&str>, at: u64, ttl: u64) -> String {
    let config = Config::parse(text, std::path::Path::new("."))
        .unwrap_or_else(|e| panic!("{}: {e}", m.name));
    let opts = SignOptions {
        route: "live",
        path: PATH,
        ip: ip.map(|s| s.parse().unwrap()),
        ttl: Duration::from_secs(ttl),
        user: m.user,
        scheme: None,
        hwid: None,
    };
    sign(&config, &opts, at).unwrap_or_else(|e| panic!("{}: sign: {e}", m.name))
}

/// Change one character of the longest query value (the signature, in every scheme).
fn tamper(url: &str) -> String {
    let (path, query) = url.split_once('?').expect("signed URL has a query");
    let pairs: Vec<&str> = query.split('&').collect();
    let longest = pairs
        .iter()
        .enumerate()
        .max_by_key(|(_, p)| p.len())
        .map(|(i, _)| i)
        .unwrap();
    let mut out = Vec::new();
    for (i, p) in pairs.iter().enumerate() {
        if i == longest {
            let (k, v) = p.split_once('=').unwrap();
            let mut chars: Vec<char> = v.chars().collect();
            let mid = chars.len() / 2;
            // A different value, not just a different case: hex digests may
            // be compared case-insensitively, where 'a' and 'A' are equal.
            chars[mid] = match chars[mid] {
                '0'..='8' => ((chars[mid] as u8) + 1) as char,
                '9' => '0',
                'a' => 'b',
                'A' => 'B',
                c if c.is_ascii_uppercase() => 'A',
                _ => 'a',
            };
            out.push(format!("{k}={}", chars.into_iter().collect::<String>()));
        } else {
            out.push((*p).to_owned());
        }
    }
    format!("{path}?{}", out.join("&"))
}

async fn status_and_body(proxy: &TestProxy, target: &str) -> (u16, String) {
    let r = h1_client().get(proxy.url(target)).send().await.unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    if status == 200 {
        // Child URIs carry the session capability, never the viewer's credentials.
        assert!(body.contains("seg-7.ts?tg="), "{body}");
    }
    (status, strip_capabilities(&body))
}

async fn exercise(m: &Method) {
    let origin = content_origin().await;
    let text = config_text(origin.addr, m, false);
    let proxy = start_proxy(&text).await;
    let t = now();
    let ip = m.ip_bound.then_some("127.0.0.1");

    let good = signed(&text, m, ip, t, 3600);
    let (status, body) = status_and_body(&proxy, &good).await;
    assert_eq!(
        (status, body.as_str()),
        (200, PLAYLIST),
        "{}: valid link {good}",
        m.name
    );

    let (status, body) = status_and_body(&proxy, &tamper(&good)).await;
    assert_eq!(status, 403, "{}: tampered {}", m.name, tamper(&good));
    assert_eq!(body.trim(), r#"{"error":"forbidden"}"#);

    if let Some(expired) = m.expired {
        let old = signed(&text, m, ip, t - 7200, 3600);
        let (status, _) = status_and_body(&proxy, &old).await;
        assert_eq!(status, expired, "{}: expired link {old}", m.name);
    }

    if m.ip_bound {
        let other = signed(&text, m, Some("198.51.100.7"), t, 3600);
        let (status, _) = status_and_body(&proxy, &other).await;
        assert_eq!(status, 403, "{}: link for another IP {other}", m.name);
    }

    let (status, body) = status_and_body(&proxy, PATH).await;
    assert_eq!(
        (status, body.trim()),
        (403, r#"{"error":"forbidden"}"#),
        "{}: no credentials",
        m.name
    );

    let denied_text = config_text(origin.addr, m, true);
    let denied = start_proxy(&denied_text).await;
    let (status, body) = status_and_body(&denied, &good).await;
    assert_eq!(
        (status, body.trim()),
        (403, r#"{"error":"ip_denied"}"#),
        "{}: deny list",
        m.name
    );

    // Only the valid link reached the origin, without its credentials.
    let seen = origin.seen_paths();
    assert_eq!(seen, [PATH], "{}: origin saw {seen:?}", m.name);
}

/// One test per signing method, each named after it.
macro_rules! exercise_each {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                exercise(method(stringify!($name))).await;
            }
        )*
    };
}

exercise_each!(token, secure_link, wmsauth, wowza, akamai, cesbo);

/// What `tollgate sign` prints (the binary, from the same config file) is
/// accepted by the proxy running that file, for every signing method.
#[tokio::test(flavor = "multi_thread")]
async fn sign_command_output_is_accepted_for_every_method() {
    let origin = content_origin().await;
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(METHODS.len(), 6);
    for m in &METHODS {
        let text = config_text(origin.addr, m, false);
        let file = dir.path().join(format!("{}.toml", m.name));
        std::fs::write(&file, &text).unwrap();
        let proxy = start_proxy(&text).await;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"));
        cmd.args([
            "sign", "--route", "live", "--path", PATH, "--ttl", "10m", "-c",
        ])
        .arg(&file);
        if m.ip_bound {
            cmd.args(["--ip", "127.0.0.1"]);
        }
        if let Some(user) = m.user {
            cmd.args(["--user", user]);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{}: tollgate sign failed: {stderr}",
            m.name
        );
        let link = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(link.starts_with(PATH), "{}: {link}", m.name);
        let (status, body) = status_and_body(&proxy, &link).await;
        assert_eq!(
            (status, body.as_str()),
            (200, PLAYLIST),
            "{}: {link}",
            m.name
        );
    }
}
