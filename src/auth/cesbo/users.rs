//! Cesbo built-in users: `?auth=<login>:<password>` or `?token=<token>`,
//! with the user's optional IP pin, expiry date and connection limit.
//!
//! Pure core, not wired into the proxy yet (tollgate's `[[user]]` tokens
//! cover the same ground); the number of active sessions is an input, the
//! caller owns the session table. Passwords and tokens are [`Secret`]s,
//! compared in constant time.

use std::net::IpAddr;

use crate::auth::{Check, Identity, query};
use crate::secret::Secret;

/// One Astra user (Settings → Users).
#[derive(Debug, Clone)]
pub struct User {
    /// Login, reported as the identity.
    pub login: String,
    /// Password for `?auth=login:password`.
    pub password: Option<Secret>,
    /// Token for `?token=`.
    pub token: Option<Secret>,
    /// The only client address allowed, if pinned.
    pub ip: Option<IpAddr>,
    /// Unix seconds after which the account is expired.
    pub expire: Option<u64>,
    /// Most simultaneous sessions (0 or `None`: unlimited).
    pub limit: Option<u32>,
}

/// Last value of `name` (matched exactly) in `q`, percent-decoded (`+`
/// stays a `+`): Astra reads the query into a table, so a later duplicate
/// wins, unlike every other lookup in [`query`].
fn param(q: &str, name: &str) -> Option<String> {
    let (_, raw) = query::pairs(q).rev().find(|&(k, _)| k == name)?;
    Some(String::from_utf8_lossy(&query::percent_decode(raw)).into_owned())
}

/// Authorize `query` against `users`. `active(login)` is how many sessions
/// the user has open now. No credential, an unknown login, a wrong password
/// or an unknown token → `Pass` (the next method may know the client).
pub fn user_auth(
    users: &[User],
    query: &str,
    client_ip: IpAddr,
    now: u64,
    active: impl Fn(&str) -> u32,
) -> Check {
    let found = match (param(query, "auth"), param(query, "token")) {
        (Some(auth), _) if auth.contains(':') => {
            let (login, pw) = auth.split_once(':').unwrap_or((&auth, ""));
            users.iter().find(|u| {
                u.login == login
                    && u.password
                        .as_ref()
                        .is_some_and(|p| p.matches(pw.as_bytes()))
            })
        }
        (_, Some(tok)) => users
            .iter()
            .find(|u| u.token.as_ref().is_some_and(|t| t.matches(tok.as_bytes()))),
        _ => None,
    };
    let Some(u) = found else {
        return Check::Pass;
    };
    if u.ip.is_some_and(|ip| ip != client_ip) {
        return Check::Forbidden;
    }
    if u.expire.is_some_and(|e| e != 0 && now > e) {
        return Check::Expired;
    }
    if u.limit.is_some_and(|l| l != 0 && active(&u.login) >= l) {
        return Check::Forbidden;
    }
    Check::Allow(Identity {
        user: Some(u.login.clone()),
        session_limit: None,
        ..Identity::default()
    })
}
