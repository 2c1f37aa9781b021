//! The `token` method: `?token=T` matched against the tokens of `[[user]]`
//! entries, and `?auth=user:password` against their passwords (SPEC §3.1;
//! the Flussonic IPTV user `key` and Cesbo built-in users work this way),
//! then against the users the admin API and the control plane set
//! ([`check_all`]).
//!
//! Pure core: no I/O on the request path, no clock, no logging. Files named by
//! `file:` secrets are read once, at load ([`Tokens::new`], in `load`).
//!
//! Invariants:
//! - Lookup tables never hold a plaintext token or password: tokens are keyed
//!   by their SHA-256 digest (one hash and one `HashMap` probe per request),
//!   passwords are kept only as SHA-256 digests and compared in constant time.
//!   The only plaintext kept is each user's *first* token, in a [`Secret`],
//!   because [`Scheme::sign`] must hand it out.
//! - A token identifies exactly one user (duplicates are a config error).
//! - `Debug` prints counts, never tokens or digests.
//!
//! Why plain SHA-256 and not a slow password hash: tokens are operator-issued
//! random strings, so a fast hash loses nothing and keeps `check` well under a
//! microsecond. Passwords share that design (and the `sha256:<hex>` form an
//! operator can compute with `sha256sum`), which is only sound for long random
//! passwords: a short human password whose digest leaks from the config file
//! is brute-forced quickly. `docs/auth.md` tells operators so.

mod load;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthRequest, Check, Identity, Scheme, SignRequest, query};
use crate::secret::Secret;

pub use load::RawUser;

/// A SHA-256 digest of a token or password.
type Digest = [u8; 32];

/// SHA-256 of `bytes`.
fn digest(bytes: &[u8]) -> Digest {
    Sha256::digest(bytes).into()
}

/// One compiled `[[user]]`.
struct User {
    /// The id reported in [`Identity::user`].
    id: String,
    /// The first configured token, the one [`Scheme::sign`] puts in links.
    sign_token: Option<Secret>,
    /// SHA-256 of the password, if the user may log in with `?auth=`.
    password: Option<Digest>,
}

/// Users' tokens and passwords, compiled from `[[user]]` by [`Tokens::new`].
pub struct Tokens {
    /// Every user, in config order.
    users: Vec<User>,
    /// Token digest → index into `users`.
    by_token: HashMap<Digest, usize>,
    /// User id → index into `users`.
    by_id: HashMap<String, usize>,
}

impl Tokens {
    /// `Allow` with the id of `users[i]`; fails closed on a bad index.
    fn allow(&self, i: usize) -> Check {
        match self.users.get(i) {
            Some(u) => Check::Allow(Identity {
                user: Some(u.id.clone()),
                session_limit: None,
                ..Identity::default()
            }),
            None => Check::Forbidden,
        }
    }

    /// `?token=T`, already percent-decoded. A token no user holds is
    /// `Pass`: `?token=` is also how Cesbo securetoken and Flussonic
    /// backends are asked, so a later method of the route may know it.
    fn check_token(&self, token: &[u8]) -> Check {
        match self.by_token.get(&digest(token)) {
            Some(&i) => self.allow(i),
            None => Check::Pass,
        }
    }

    /// `?auth=user:password`, already percent-decoded; split at the first
    /// `:` (so a password may contain `:`, an id may not).
    fn check_password(&self, cred: &[u8]) -> Check {
        let Some(colon) = cred.iter().position(|&b| b == b':') else {
            return Check::Forbidden;
        };
        let (id, rest) = cred.split_at(colon);
        let password = rest.get(1..).unwrap_or_default();
        // Hash before looking the user up, so an unknown user and a wrong
        // password cost the same.
        let presented = digest(password);
        let user = std::str::from_utf8(id)
            .ok()
            .and_then(|id| self.by_id.get(id))
            .copied();
        let stored = user.and_then(|i| self.users.get(i)?.password);
        match (user, stored) {
            (Some(i), Some(stored)) if bool::from(stored.ct_eq(&presented)) => self.allow(i),
            _ => Check::Forbidden,
        }
    }
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("users", &self.users.len())
            .field("tokens", &self.by_token.len())
            .field(
                "passwords",
                &self.users.iter().filter(|u| u.password.is_some()).count(),
            )
            .finish()
    }
}

/// The credential a request presents to the `token` method: `token` wins
/// over `auth` when both are present; the first occurrence of each
/// parameter counts. Percent-decoded.
pub enum Credential<'a> {
    /// `?token=T`.
    Token(std::borrow::Cow<'a, [u8]>),
    /// `?auth=user:password`, whole.
    Password(std::borrow::Cow<'a, [u8]>),
}

/// The credential `req` presents to the `token` method, if any.
pub fn credential<'a>(req: &AuthRequest<'a>) -> Option<Credential<'a>> {
    let q = req.query?;
    if let Some(token) = query::param(q, "token") {
        Some(Credential::Token(query::percent_decode(token)))
    } else {
        query::param(q, "auth").map(|a| Credential::Password(query::percent_decode(a)))
    }
}

/// The `token` method over both sources of users: the config's `[[user]]`
/// (`config`) first, then the users the admin API and the control plane set
/// (`api`, the effective entitlements, whose tokens and password digests
/// are indexed there). Either allowing is an allow; a token neither knows,
/// or none at all, is `Pass` (the route's next method decides: `?token=`
/// is shared with `cesbo` and `backend`); a wrong `?auth=` is `Forbidden`.
///
/// A user the API layer defines replaces every credential of the
/// `[[user]]` with the same id (SPEC §6): the config's token or password of
/// that id no longer admits anyone.
pub fn check_all(
    config: Option<&Tokens>,
    api: Option<&crate::entitlements::Entitlements>,
    req: &AuthRequest<'_>,
) -> Check {
    let Some(cred) = credential(req) else {
        return Check::Pass;
    };
    let unknown = match cred {
        Credential::Token(_) => Check::Pass,
        Credential::Password(_) => Check::Forbidden,
    };
    let from_config = config.map_or(unknown, |t| t.check_credential(&cred));
    let replaced = |id: &Identity| {
        api.zip(id.user.as_deref())
            .is_some_and(|(ents, u)| ents.user(u).is_some())
    };
    match (from_config, api) {
        (Check::Allow(id), Some(ents)) if replaced(&id) => check_api(ents, &cred),
        (Check::Allow(id), _) => Check::Allow(id),
        (_, Some(ents)) => check_api(ents, &cred),
        (other, None) => other,
    }
}

/// `cred` against the API's users (constant-time compares inside
/// [`crate::entitlements::Entitlements`]).
fn check_api(ents: &crate::entitlements::Entitlements, cred: &Credential<'_>) -> Check {
    let user = match cred {
        Credential::Token(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|t| ents.user_by_token(t)),
        Credential::Password(c) => {
            let colon = c.iter().position(|&b| b == b':');
            colon.and_then(|at| {
                let (id, rest) = c.split_at(at);
                let id = std::str::from_utf8(id).ok()?;
                ents.check_password(id, rest.get(1..).unwrap_or_default())
                    .then_some(id)
            })
        }
    };
    match (user, cred) {
        (Some(id), _) => Check::Allow(Identity {
            user: Some(id.to_owned()),
            session_limit: None,
            ..Identity::default()
        }),
        (None, Credential::Token(_)) => Check::Pass,
        (None, Credential::Password(_)) => Check::Forbidden,
    }
}

impl Tokens {
    /// The id of the user holding the token whose SHA-256 is `digest`.
    pub fn user_of_token_digest(&self, digest: &[u8; 32]) -> Option<&str> {
        let i = *self.by_token.get(digest)?;
        self.users.get(i).map(|u| u.id.as_str())
    }

    /// Is `digest` the SHA-256 of user `id`'s password?
    pub fn is_password_digest(&self, id: &str, digest: &[u8; 32]) -> bool {
        self.by_id
            .get(id)
            .and_then(|&i| self.users.get(i)?.password)
            .is_some_and(|p| bool::from(p.ct_eq(digest)))
    }

    /// The token links of `[[user]]` `id` carry: its first one.
    pub fn sign_token(&self, id: &str) -> Result<&str, String> {
        let user = self
            .by_id
            .get(id)
            .and_then(|&i| self.users.get(i))
            .ok_or_else(|| format!("no [[user]] with id {id:?}"))?;
        let token = user.sign_token.as_ref().ok_or_else(|| {
            format!("user {id:?} has no tokens (a password alone cannot be put in a link)")
        })?;
        Ok(token.expose())
    }

    /// True when user `id` is a `[[user]]` of the config.
    pub fn has_user(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    fn check_credential(&self, cred: &Credential<'_>) -> Check {
        match cred {
            Credential::Token(t) => self.check_token(t),
            Credential::Password(c) => self.check_password(c),
        }
    }
}

impl Scheme for Tokens {
    /// The config's users only ([`check_all`] adds the API's). An unknown
    /// token or none at all is `Pass` (so `token`, `cesbo` and `backend`
    /// share a route in any order); a wrong `?auth=` is `Forbidden`.
    fn check(&self, req: &AuthRequest<'_>) -> Check {
        match credential(req) {
            Some(cred) => self.check_credential(&cred),
            None => Check::Pass,
        }
    }

    /// `path?token=<the user's first token>`, percent-encoded.
    fn sign(&self, req: &SignRequest<'_>) -> Result<String, String> {
        let id = req
            .user
            .ok_or("the token method signs for a user: give a user id")?;
        let token = self.sign_token(id)?;
        Ok(format!(
            "{}?token={}",
            crate::path::encode_canonical(req.path),
            query::percent_encode(token)
        ))
    }

    fn params(&self) -> Vec<String> {
        vec!["token".to_owned(), "auth".to_owned()]
    }
}
