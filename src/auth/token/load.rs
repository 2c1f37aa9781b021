//! `[[user]]` as written in the config, and its validation into [`Tokens`].
//!
//! Every error is collected (none stops the others) and reported as
//! `(key, message)` with the key starting at the user's index
//! (`[0].tokens[1]`, `[2].password`); config validation prefixes `user`.
//! Messages name users by index and id, never a token or password.
//! This is the only part of the method that does I/O (`env:` / `file:`
//! secrets, through [`Secret::resolve`]), once, at config load.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use super::{Digest, Tokens, User, digest};
use crate::secret::RawSecret;
use crate::secret::Secret;

/// Prefix of a pre-hashed password: `sha256:` and 64 hex digits.
const SHA256_PREFIX: &str = "sha256:";

/// One `[[user]]` as written in the config file. The other user keys of
/// SPEC §2 (`max_sessions`, `packages`, …) are not accepted yet.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    /// User id: non-empty, unique, no `:` (it ends the id in `?auth=`), no
    /// control characters (it is written to the access log).
    pub id: String,
    /// Play tokens (`?token=`), each a secret (inline, `env:`, `file:`),
    /// non-empty and unique across all users.
    #[serde(default)]
    pub tokens: Vec<RawSecret>,
    /// Password for `?auth=id:password`: a secret whose value is either the
    /// plaintext or `sha256:<64 hex digits>` (the SHA-256 of the plaintext).
    pub password: Option<RawSecret>,
    /// Concurrent sessions allowed (0 = unlimited); entitlements.
    pub max_sessions: Option<u32>,
    /// Packages (`[[package]]` names) the user may watch; absent = every
    /// channel, `[]` = none. Entitlements.
    pub packages: Option<Vec<String>>,
    /// Networks the user may watch from (empty = any). Entitlements.
    #[serde(default)]
    pub ips: Vec<String>,
    /// RFC 3339 time from which the user is refused. Entitlements.
    pub expires_at: Option<String>,
    /// Refuse the user (403 forbidden). Entitlements.
    pub disabled: Option<bool>,
    /// The user's region (SPEC §7.2). Entitlements.
    pub region: Option<String>,
    /// Display name, contact address, operator's note. Entitlements.
    pub name: Option<String>,
    pub email: Option<String>,
    pub comment: Option<String>,
}

impl fmt::Debug for RawUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawUser")
            .field("id", &self.id)
            .field("tokens", &self.tokens.len())
            .field("password", &self.password.is_some())
            .finish()
    }
}

impl Tokens {
    /// Validate the `[[user]]` list; errors are (key under `user[i]`, message)
    /// with the key path starting at the index, e.g. `[0].tokens[1]`.
    pub fn new(users: &[RawUser], base_dir: &Path) -> Result<Self, Vec<(String, String)>> {
        let mut errs = Vec::new();
        let mut by_id: HashMap<String, usize> = HashMap::new();
        // Digest → (user index, token index), to name both sides of a duplicate.
        let mut seen: HashMap<Digest, (usize, usize)> = HashMap::new();
        let mut compiled = Vec::with_capacity(users.len());
        for (i, raw) in users.iter().enumerate() {
            if let Err(m) = check_id(&raw.id) {
                errs.push((format!("[{i}].id"), m));
            } else if let Some(&j) = by_id.get(&raw.id) {
                errs.push((
                    format!("[{i}].id"),
                    format!("duplicate user id {:?} (also user[{j}])", raw.id),
                ));
            } else {
                by_id.insert(raw.id.clone(), i);
            }
            let mut sign_token = None;
            for (t, text) in raw.tokens.iter().enumerate() {
                let key = format!("[{i}].tokens[{t}]");
                let secret = match Secret::resolve(text, base_dir) {
                    Ok(s) => s,
                    Err(m) => {
                        errs.push((key, format!("token: {m}")));
                        continue;
                    }
                };
                if let Err(m) = crate::entitlements::rules::check_secret(secret.expose()) {
                    errs.push((key, format!("token {m}")));
                    continue;
                }
                match seen.entry(digest(secret.expose().as_bytes())) {
                    Entry::Occupied(e) => {
                        let (u, k) = *e.get();
                        errs.push((key, duplicate_token(users, (u, k), (i, t))));
                    }
                    Entry::Vacant(e) => {
                        e.insert((i, t));
                    }
                }
                sign_token.get_or_insert(secret);
            }
            let password = raw.password.as_deref().and_then(|text| {
                password_digest(text, base_dir)
                    .map_err(|m| errs.push((format!("[{i}].password"), m)))
                    .ok()
            });
            if raw.tokens.is_empty() && raw.password.is_none() {
                errs.push((
                    format!("[{i}]"),
                    "user has neither tokens nor a password: nobody could log in as it".to_owned(),
                ));
            }
            compiled.push(User {
                id: raw.id.clone(),
                sign_token,
                password,
            });
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Self {
            users: compiled,
            by_token: seen.into_iter().map(|(d, (i, _))| (d, i)).collect(),
            by_id,
        })
    }
}

/// The one id rule of every user id ([`crate::entitlements::rules`]).
fn check_id(id: &str) -> Result<(), String> {
    crate::entitlements::rules::check_id(id).map_err(|m| format!("user id {id:?} {m}"))
}

/// The message for a token already seen at `first` (user, token index),
/// found again at `again`: names both users, never the token.
fn duplicate_token(users: &[RawUser], first: (usize, usize), again: (usize, usize)) -> String {
    let id = |u: usize| users.get(u).map(|r| r.id.as_str()).unwrap_or_default();
    if first.0 == again.0 {
        format!(
            "duplicate token: user {:?} lists the same token as its tokens[{}]",
            id(again.0),
            first.1
        )
    } else {
        format!(
            "duplicate token: user {:?} has the same token as user[{}].tokens[{}] ({:?}); \
             a token must identify one user",
            id(again.0),
            first.0,
            first.1,
            id(first.0)
        )
    }
}

/// The SHA-256 of a password given as a secret whose value is the plaintext
/// or `sha256:<hex>`; the prefix is looked for after `env:`/`file:`
/// resolution, so a file may hold the pre-hashed form.
fn password_digest(text: &str, base_dir: &Path) -> Result<Digest, String> {
    let secret = Secret::resolve(text, base_dir).map_err(|m| format!("password: {m}"))?;
    crate::entitlements::rules::check_secret(secret.expose())
        .map_err(|m| format!("password {m}"))?;
    match secret.expose().strip_prefix(SHA256_PREFIX) {
        None => Ok(digest(secret.expose().as_bytes())),
        Some(hex_text) => {
            let mut out = [0u8; 32];
            hex::decode_to_slice(hex_text, &mut out).map_err(|_| {
                "a pre-hashed password is sha256: followed by 64 hex digits \
                 (printf %s 'PASSWORD' | sha256sum)"
                    .to_owned()
            })?;
            Ok(out)
        }
    }
}
