//! Cesbo Astra / Alta securetoken: temporary links
//! `?token=<sha1hex>-<salt>-<end>-<start>` where the hash is
//! `SHA1(subject + client_ip + start + end + secret + salt)`.
//!
//! Owns `[auth.cesbo]` validation, the token format, `check` and `sign`.
//! The other Astra authorization kinds are pure cores in [`rules`] (IP rule
//! lists) and [`users`] (built-in users), not wired into the proxy yet.
//! Pure core: no I/O, no clock (`now` comes in the request), no logging.
//!
//! Invariants: a token that does not have the securetoken shape is `Pass`
//! (Astra moves on to the next method); a securetoken-shaped one decides.
//! The digest is compared in constant time; the secret never appears in
//! `Debug`. The client IP is always part of the hash (Astra has no unbound
//! form), so `sign` needs one.

pub mod rules;
pub mod users;

use std::path::Path;

use serde::Deserialize;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use super::{AuthRequest, Check, Identity, Scheme, SignRequest, query};
use crate::secret::{RawSecret, Secret};
use crate::units::parse_duration;

pub use rules::{IpRule, ip_rules};
pub use users::{User, user_auth};

/// `[auth.cesbo]` as written in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The securetoken secret (inline, `env:` or `file:`).
    pub secret: Option<RawSecret>,
    /// What the hash binds: `path` (default, the request path — what Cesbo's
    /// own example token uses) or `channel` (the route's channel id — what
    /// Cesbo's doc text says).
    pub subject: Option<String>,
    /// Query parameter carrying the token (default `token`).
    pub param: Option<String>,
    /// Clock skew allowed on both ends of the window (default `0s`).
    pub tolerance: Option<String>,
}

/// What the hash is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The normalized request path (`/tv/travel-channel/index.m3u8`).
    Path,
    /// The channel id of the route (`travel-channel`).
    Channel,
}

/// The compiled scheme. `Debug` shows no secret.
#[derive(Debug)]
pub struct Cesbo {
    secret: Secret,
    subject: Subject,
    param: String,
    tolerance: u64,
}

/// A securetoken split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// The 20-byte SHA-1 the token presents.
    pub hash: [u8; 20],
    /// The salt (any non-empty text without `-`).
    pub salt: &'a str,
    /// Unix seconds the link stops being valid (inclusive).
    pub end: u64,
    /// Unix seconds the link starts being valid.
    pub start: u64,
}

impl<'a> Token<'a> {
    /// Parse `<40 hex>-<salt>-<end digits>-<start digits>`; `None` when the
    /// text does not have that shape (or a number overflows).
    pub fn parse(text: &'a str) -> Option<Self> {
        let mut it = text.rsplitn(3, '-');
        let (start, end, rest) = (it.next()?, it.next()?, it.next()?);
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(start) || !digits(end) {
            return None;
        }
        let (hash_hex, salt) = rest.split_at_checked(40)?;
        let salt = salt.strip_prefix('-')?;
        if salt.is_empty() || salt.contains('-') {
            return None;
        }
        let mut hash = [0u8; 20];
        hex::decode_to_slice(hash_hex, &mut hash).ok()?;
        Some(Self {
            hash,
            salt,
            end: end.parse().ok()?,
            start: start.parse().ok()?,
        })
    }
}

/// `SHA1(subject + client_ip + start + end + secret + salt)`.
pub fn digest(subject: &str, ip: &str, start: u64, end: u64, secret: &str, salt: &str) -> [u8; 20] {
    let mut h = Sha1::new();
    for part in [
        subject,
        ip,
        &start.to_string(),
        &end.to_string(),
        secret,
        salt,
    ] {
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

impl Cesbo {
    /// Validate `[auth.cesbo]`; errors are (key under the section, message).
    pub fn new(raw: &RawConfig, base_dir: &Path) -> Result<Self, Vec<(String, String)>> {
        let mut errs = Vec::new();
        let secret = match raw.secret.as_deref().map(|s| Secret::resolve(s, base_dir)) {
            Some(Ok(s)) => Some(s),
            Some(Err(m)) => {
                errs.push(("secret".to_owned(), m));
                None
            }
            None => {
                errs.push(("secret".to_owned(), "a secret is required".to_owned()));
                None
            }
        };
        let subject = match raw.subject.as_deref() {
            None | Some("path") => Subject::Path,
            Some("channel") => Subject::Channel,
            Some(other) => {
                errs.push((
                    "subject".into(),
                    format!("{other:?} is not path or channel"),
                ));
                Subject::Path
            }
        };
        let param = raw.param.clone().unwrap_or_else(|| "token".to_owned());
        if param.is_empty() || param.contains(['&', '=', '#', ' ']) {
            errs.push((
                "param".into(),
                format!("{param:?} is not a query parameter name"),
            ));
        }
        let tolerance = match raw.tolerance.as_deref().map(parse_duration) {
            None => 0,
            Some(Ok(d)) => d.as_secs(),
            Some(Err(m)) => {
                errs.push(("tolerance".into(), m));
                0
            }
        };
        match secret {
            Some(secret) if errs.is_empty() => Ok(Self {
                secret,
                subject,
                param,
                tolerance,
            }),
            _ => Err(errs),
        }
    }

    /// The subject text for a request, `None` when the route names no channel.
    fn subject<'r>(&self, path: &'r str, channel: Option<&'r str>) -> Option<&'r str> {
        match self.subject {
            Subject::Path => Some(path),
            Subject::Channel => channel,
        }
    }

    /// Verify a token text (percent-decoded) for `req`.
    pub fn verify(&self, text: &str, req: &AuthRequest<'_>) -> Check {
        let Some(tok) = Token::parse(text) else {
            return Check::Pass;
        };
        // A channel-bound token on a route without a channel cannot verify.
        let Some(subject) = self.subject(req.path, req.channel) else {
            return Check::Forbidden;
        };
        let ip = req.client_ip.to_string();
        let secret = self.secret.expose();
        let want = digest(subject, &ip, tok.start, tok.end, secret, tok.salt);
        if !bool::from(want.ct_eq(&tok.hash)) {
            return Check::Forbidden;
        }
        if req.now.saturating_add(self.tolerance) < tok.start {
            return Check::NotYetValid;
        }
        if req.now > tok.end.saturating_add(self.tolerance) {
            return Check::Expired;
        }
        Check::Allow(Identity::default())
    }
}

impl Scheme for Cesbo {
    fn check(&self, req: &AuthRequest<'_>) -> Check {
        let Some(raw) = req.query.and_then(|q| query::param_exact(q, &self.param)) else {
            return Check::Pass;
        };
        let decoded = query::percent_decode(raw);
        self.verify(&String::from_utf8_lossy(&decoded), req)
    }

    /// The salt is derived from the inputs (8 hex digits) because signing is
    /// pure; Astra accepts any salt, it only makes links differ.
    fn sign(&self, req: &SignRequest<'_>) -> Result<String, String> {
        let ip = req
            .client_ip
            .ok_or("a Cesbo securetoken always binds the client IP; give one")?
            .to_string();
        let subject = self
            .subject(req.path, req.channel)
            .ok_or("subject = \"channel\" but the route names no channel")?;
        if req.expires < req.start {
            return Err("expiry is before start".into());
        }
        let secret = self.secret.expose();
        let seed = digest(subject, &ip, req.start, req.expires, secret, "salt");
        let salt = hex::encode(&seed[..4]);
        let hash = digest(subject, &ip, req.start, req.expires, secret, &salt);
        Ok(format!(
            "{}?{}={}-{salt}-{}-{}",
            crate::path::encode_for_origin(req.path),
            self.param,
            hex::encode(hash),
            req.expires,
            req.start
        ))
    }

    fn params(&self) -> Vec<String> {
        vec![self.param.clone()]
    }
}

#[cfg(test)]
mod tests;
