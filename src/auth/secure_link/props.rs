//! Property tests for `secure_link`: whatever `sign` makes, `check`
//! accepts for the same path, client and time (and refuses for another
//! client); arbitrary queries, hashes, paths and config values never panic.

use crate::auth::vectors::any_ip;
use std::path::Path;

use proptest::prelude::*;

use super::tests::{build, check_target, doc_scheme};
use super::*;

fn arb_path() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-zA-Z0-9 ._~+%é-]{1,8}", 1..5).prop_filter_map(
        "normalizable",
        |segs| {
            let p = format!("/{}", segs.join("/"));
            crate::path::normalize(&encode_canonical(&p), 4096)
                .ok()
                .filter(|n| *n == p)
        },
    )
}

proptest! {
    #[test]
    fn sign_then_check_round_trips(
        path in arb_path(),
        ip in any_ip(),
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
    fn check_never_panics(query in ".{0,80}", hash in "[A-Za-z0-9_=,+/%-]{0,30}", path in "/[^?#]{0,30}", ip in any_ip(), now in any::<u64>()) {
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
