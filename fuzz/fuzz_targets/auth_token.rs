//! The `token` method: `?token=` and `?auth=user:password` against the
//! config's `[[user]]` and the admin API's users together (what the proxy
//! runs), and the links `tollgate sign --user` makes.
//!
//! Asserted: never a panic; deterministic; an allow names a known user;
//! no credential at all is `Pass`; a signed link is accepted as its user.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate::auth::{AuthRequest, Check, token};
use tollgate::config::Config;
use tollgate::entitlements::Entitlements;
use tollgate_fuzz::{Promises, check_scheme, config, request};

/// Users the admin API set (a second source of tokens and passwords).
const API: &str = r#"{"users": {
    "bob": {"tokens": ["tok-bob", "b%20b"], "password": "pw:with:colons", "packages": []},
    "carol": {"password": "sha256:df53c27a66157885ba143e34f25d6380e12168b0f7da4f0c46efa54cd9a083b7"}
}}"#;

fn state() -> &'static (Config, Entitlements) {
    static S: OnceLock<(Config, Entitlements)> = OnceLock::new();
    S.get_or_init(|| {
        let api = Entitlements::from_json_slice(API.as_bytes())
            .unwrap_or_else(|e| panic!("fuzz target API users refused: {e:?}"));
        (config(""), api)
    })
}

fuzz_target!(|data: &[u8]| {
    let req = request(data);
    let (config, api) = state();
    let Some(tokens) = config.auth.token.as_deref() else {
        panic!("config without [[user]] tokens");
    };
    check_scheme(
        tokens,
        &req,
        Promises {
            binds_ip: false,
            expires: false,
            carries_user: true,
        },
    );
    let Ok(path) = tollgate::path::normalize(&req.raw_path, tollgate_fuzz::MAX_PATH) else {
        return;
    };
    let auth = AuthRequest {
        client_ip: req.ip,
        path: &path,
        query: req.query.as_deref(),
        headers: &req.headers,
        channel: None,
        now: req.now,
    };
    let verdict = token::check_all(Some(tokens), Some(api), &auth);
    assert_eq!(verdict, token::check_all(Some(tokens), Some(api), &auth));
    match &verdict {
        Check::Allow(id) => {
            let user = id.user.as_deref();
            assert!(
                matches!(user, Some("alice" | "bob" | "carol")),
                "allowed as unknown user {user:?}"
            );
        }
        Check::Pass => {}
        Check::Forbidden => assert!(req.query.is_some(), "forbidden without a query"),
        other => panic!("token method answered {other:?}"),
    }
});
