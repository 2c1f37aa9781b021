//! Property tests: every link `sign` makes is accepted by `check` as the
//! right user, every `?auth=` built from a user's password is too, and no
//! query string makes `check` panic or name a user that does not exist.

use std::collections::BTreeSet;
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::auth::{AuthRequest, Check, Identity, Scheme, SignRequest};

fn check(t: &Tokens, query: &str) -> Check {
    let headers = http::HeaderMap::new();
    let req = AuthRequest {
        client_ip: "192.0.2.1".parse().unwrap(),
        path: "/live/ch1/index.m3u8",
        query: Some(query),
        headers: &headers,
        channel: Some("ch1"),
        now: 0,
    };
    t.check(&req)
}

/// Users with unique ids and unique tokens, dealt round-robin (so some users
/// get none); every user has a password, made of any characters.
fn users() -> impl Strategy<Value = Vec<RawUser>> {
    (
        // Ids follow the id rule (never `.` or `..`).
        prop::collection::btree_set("[A-Za-z0-9_@-][A-Za-z0-9_.@-]{0,11}", 1..6),
        // A leading `t` keeps a token from reading as `env:`/`file:`.
        prop::collection::btree_set("t\\PC{0,24}", 0..12),
        "\\PC{1,16}",
    )
        .prop_map(
            |(ids, tokens, pw): (BTreeSet<String>, BTreeSet<String>, String)| {
                let ids: Vec<String> = ids.into_iter().collect();
                let mut users: Vec<RawUser> = ids
                    .iter()
                    .map(|id| RawUser {
                        id: id.clone(),
                        tokens: Vec::new(),
                        password: Some(format!("p{pw}{id}").into()),
                        max_sessions: None,
                        packages: None,
                        ips: Vec::new(),
                        expires_at: None,
                        disabled: None,
                        region: None,
                        name: None,
                        email: None,
                        comment: None,
                    })
                    .collect();
                let n = users.len();
                for (i, token) in tokens.into_iter().enumerate() {
                    users[i % n].tokens.push(token.into());
                }
                users
            },
        )
}

proptest! {
    #[test]
    fn sign_then_check_round_trips(raw in users(), path in "/[a-z0-9 ./%?#&]{0,20}") {
        let t = Tokens::new(&raw, Path::new(".")).unwrap();
        for user in &raw {
            let want = Check::Allow(Identity { user: Some(user.id.clone()), session_limit: None, ..Identity::default() });
            let signed = t.sign(&SignRequest {
                path: &path,
                client_ip: None,
                channel: None,
                start: 0,
                expires: 0,
                user: Some(&user.id),
            });
            match user.tokens.first() {
                Some(_) => {
                    let link = signed.unwrap();
                    // The path is escaped, so the first `?` starts the query.
                    let (p, q) = link.split_once('?').unwrap();
                    prop_assert_eq!(p, crate::path::encode_canonical(&path));
                    prop_assert_eq!(check(&t, q), want.clone());
                }
                None => prop_assert!(signed.is_err()),
            }
            for token in &user.tokens {
                let q = format!("a=1&token={}", query::percent_encode(token));
                prop_assert_eq!(check(&t, &q), want.clone());
            }
            let pw = user.password.as_deref().unwrap();
            let q = format!("auth={}:{}", query::percent_encode(&user.id), query::percent_encode(pw));
            prop_assert_eq!(check(&t, &q), want.clone());
            let q = format!("auth={}:{}x", query::percent_encode(&user.id), query::percent_encode(pw));
            prop_assert_eq!(check(&t, &q), Check::Forbidden);
        }
    }

    #[test]
    fn any_query_is_safe(
        raw in users(),
        q in prop_oneof![
            any::<String>(),
            "((token|auth|TOKEN|Auth)(=[%0-9a-fA-F:+&=]{0,8})?&?){0,6}",
        ],
    ) {
        let t = Tokens::new(&raw, Path::new(".")).unwrap();
        match check(&t, &q) {
            Check::Allow(Identity { user: Some(id), session_limit: None, .. }) => {
                prop_assert!(raw.iter().any(|u| u.id == id));
            }
            Check::Forbidden | Check::Pass => {}
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}
