//! Wowza Streaming Engine SecureToken v2, hash mode (see `docs/auth.md`).
//!
//! The viewer's query carries `<prefix>hash` plus any `<prefix>*` parameters
//! (`starttime`, `endtime`, custom ones). The hash is
//!
//! ```text
//! items  = every "<prefix>name=value" except <prefix>hash, the secret,
//!          and the client IP when include_client_ip is on
//! string = content_path + "?" + join("&", sort_bytewise(items))
//! hash   = base64url(SHA-256 | SHA-384 | SHA-512 (string)), '=' padding kept
//! ```
//!
//! `content_path` is `app[/instance]/stream` without a leading `/` and without
//! the HLS file name. Values are percent-decoded before hashing; names are
//! matched case-sensitively (they are hashed as written). Non-prefixed
//! parameters are not hashed.
//!
//! Pure core: no I/O, no clock reads, no logging. Invariants: the secret never
//! reaches `Debug`; the hash text is compared in constant time; nothing
//! reachable from a request panics.

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use serde::Deserialize;
use sha2::{Digest, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;

use super::{AuthRequest, Check, Identity, Scheme, SignRequest, query};
use crate::secret::{RawSecret, Secret};
use crate::units::parse_duration;

/// Default parameter prefix.
pub const DEFAULT_PREFIX: &str = "wowzatoken";

/// `[auth.wowza]` as written in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The shared secret (inline, `env:NAME` or `file:PATH`).
    pub secret: Option<RawSecret>,
    /// Query parameter prefix (`wowzatoken`).
    pub prefix: Option<String>,
    /// `sha256` (default), `sha384` or `sha512`.
    pub algorithm: Option<String>,
    /// Whether the client IP is one of the hashed items.
    pub include_client_ip: Option<bool>,
    /// Clock skew allowed on both `starttime` and `endtime` (default `0s`).
    pub tolerance: Option<String>,
    /// How the content path is taken from the request path: `parent`
    /// (default, the directory of the requested file) or `full`.
    pub content_path: Option<String>,
}

/// The hash function of the hash items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// SHA-256 (Wowza's default).
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// Where the hashed content path comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentPath {
    /// The request path without its leading `/` and its last segment:
    /// `/live/ch1/index.m3u8` → `live/ch1` (Wowza's `app/stream/playlist.m3u8`).
    Parent,
    /// The whole request path without its leading `/`.
    Full,
}

/// The compiled scheme.
#[derive(Debug)]
pub struct Wowza {
    secret: Secret,
    prefix: String,
    hash_param: String,
    algorithm: Algorithm,
    include_client_ip: bool,
    tolerance: u64,
    content_path: ContentPath,
}

/// Longest hash text: base64 of a 64-byte SHA-512 digest.
const MAX_HASH_TEXT: usize = 88;

impl Wowza {
    /// Validate `[auth.wowza]`; errors are (key under the section, message).
    pub fn new(raw: &RawConfig, base_dir: &Path) -> Result<Self, Vec<(String, String)>> {
        let secret = match raw.secret.as_deref() {
            None => Err("is required".to_owned()),
            Some(text) => Secret::resolve(text, base_dir),
        };
        let prefix = raw.prefix.as_deref().unwrap_or(DEFAULT_PREFIX);
        let prefix_check = if query::is_param_name(prefix) {
            Ok(())
        } else {
            Err(format!(
                "{prefix:?} is not a query parameter name prefix (letters, digits, '_', '-', '.')"
            ))
        };
        let algorithm = match raw.algorithm.as_deref().unwrap_or("sha256") {
            "sha256" => Ok(Algorithm::Sha256),
            "sha384" => Ok(Algorithm::Sha384),
            "sha512" => Ok(Algorithm::Sha512),
            other => Err(format!(
                "unknown algorithm {other:?} (use \"sha256\", \"sha384\" or \"sha512\")"
            )),
        };
        let tolerance =
            parse_duration(raw.tolerance.as_deref().unwrap_or("0s")).map(|d| d.as_secs());
        let content_path = match raw.content_path.as_deref().unwrap_or("parent") {
            "parent" => Ok(ContentPath::Parent),
            "full" => Ok(ContentPath::Full),
            other => Err(format!(
                "unknown content_path {other:?} (use \"parent\" or \"full\")"
            )),
        };
        let errs: Vec<(String, String)> = [
            ("secret", secret.as_ref().err()),
            ("prefix", prefix_check.as_ref().err()),
            ("algorithm", algorithm.as_ref().err()),
            ("tolerance", tolerance.as_ref().err()),
            ("content_path", content_path.as_ref().err()),
        ]
        .into_iter()
        .filter_map(|(key, e)| Some((key.to_owned(), e?.clone())))
        .collect();
        match (secret, algorithm, tolerance, content_path) {
            (Ok(secret), Ok(algorithm), Ok(tolerance), Ok(content_path)) if errs.is_empty() => {
                Ok(Self {
                    secret,
                    prefix: prefix.to_owned(),
                    hash_param: format!("{prefix}hash"),
                    algorithm,
                    include_client_ip: raw.include_client_ip.unwrap_or(false),
                    tolerance,
                    content_path,
                })
            }
            _ => Err(errs),
        }
    }

    /// The content path Wowza would hash for a request to `path`.
    fn content_path<'p>(&self, path: &'p str) -> &'p str {
        let path = path.trim_start_matches('/');
        match self.content_path {
            ContentPath::Full => path,
            ContentPath::Parent => path.rsplit_once('/').map_or("", |(dir, _)| dir),
        }
    }

    /// The expected hash text of `items` (the prefixed `name=value` pairs,
    /// percent-decoded) for `content_path`, written into `out`.
    fn hash_text<'a, 'o>(
        &'a self,
        content_path: &str,
        mut items: Vec<Cow<'a, [u8]>>,
        ip: Option<&'a str>,
        out: &'o mut [u8; MAX_HASH_TEXT],
    ) -> &'o [u8] {
        items.push(Cow::Borrowed(self.secret.expose().as_bytes()));
        if let Some(ip) = ip {
            items.push(Cow::Borrowed(ip.as_bytes()));
        }
        items.sort_unstable();
        let feed = |d: &mut dyn FnMut(&[u8])| {
            d(content_path.as_bytes());
            d(b"?");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    d(b"&");
                }
                d(item);
            }
        };
        let written = match self.algorithm {
            Algorithm::Sha256 => encode(digest::<Sha256>(feed).as_slice(), out),
            Algorithm::Sha384 => encode(digest::<Sha384>(feed).as_slice(), out),
            Algorithm::Sha512 => encode(digest::<Sha512>(feed).as_slice(), out),
        };
        &out[..written]
    }
}

/// Run `feed` into a fresh `D` and finish it.
fn digest<D: Digest>(feed: impl FnOnce(&mut dyn FnMut(&[u8]))) -> sha2::digest::Output<D> {
    let mut d = D::new();
    feed(&mut |bytes| d.update(bytes));
    d.finalize()
}

/// base64url with padding into `out`; the length written.
fn encode(digest: &[u8], out: &mut [u8; MAX_HASH_TEXT]) -> usize {
    // A digest of at most 64 bytes always fits in 88 characters.
    URL_SAFE.encode_slice(digest, out).unwrap_or(0)
}

impl Scheme for Wowza {
    fn check(&self, req: &AuthRequest<'_>) -> Check {
        let Some(q) = req.query else {
            return Check::Pass;
        };
        let (mut hash, mut start, mut end) = (None, None, None);
        let mut items = Vec::new();
        for (name, value) in query::pairs(q) {
            if !name.starts_with(&self.prefix) {
                continue;
            }
            let value = query::percent_decode(value);
            if name == self.hash_param {
                hash.get_or_insert(value);
                continue;
            }
            // Later duplicates win for the times, as in the reference.
            match &name[self.prefix.len()..] {
                "starttime" => start = Some(value.clone()),
                "endtime" => end = Some(value.clone()),
                _ => {}
            }
            let mut item = Vec::with_capacity(name.len() + 1 + value.len());
            item.extend_from_slice(name.as_bytes());
            item.push(b'=');
            item.extend_from_slice(&value);
            items.push(Cow::Owned(item));
        }
        let Some(hash) = hash else {
            // Prefixed parameters without a hash are a broken token, not
            // the absence of one.
            return if items.is_empty() {
                Check::Pass
            } else {
                Check::Forbidden
            };
        };
        let ip = self.include_client_ip.then(|| req.client_ip.to_string());
        let mut buf = [0u8; MAX_HASH_TEXT];
        let want = self.hash_text(self.content_path(req.path), items, ip.as_deref(), &mut buf);
        // Text compare, '=' padding included (a stripped hash fails in Wowza too).
        if !bool::from(hash.as_ref().ct_eq(want)) {
            return Check::Forbidden;
        }
        let (Some(start), Some(end)) = (bound(start.as_deref()), bound(end.as_deref())) else {
            return Check::Forbidden;
        };
        let (now, tol) = (u128::from(req.now), u128::from(self.tolerance));
        if start.is_some_and(|s| now + tol < u128::from(s)) {
            return Check::NotYetValid;
        }
        if end.is_some_and(|e| now > u128::from(e) + tol) {
            return Check::Expired;
        }
        Check::Allow(Identity::default())
    }

    /// `path?<prefix>starttime=S&<prefix>endtime=E&<prefix>hash=H`
    /// (`starttime` omitted when `start` is 0).
    fn sign(&self, req: &SignRequest<'_>) -> Result<String, String> {
        if req.expires < req.start {
            return Err("the link must not expire before it starts".to_owned());
        }
        let ip = match (self.include_client_ip, req.client_ip) {
            (false, _) => None,
            (true, Some(ip)) => Some(ip.to_string()),
            (true, None) => return Err("include_client_ip is set: give the client IP".into()),
        };
        let p = &self.prefix;
        let mut params = Vec::with_capacity(2);
        if req.start > 0 {
            params.push(format!("{p}starttime={}", req.start));
        }
        params.push(format!("{p}endtime={}", req.expires));
        let items = params.iter().map(|s| Cow::Borrowed(s.as_bytes())).collect();
        let mut buf = [0u8; MAX_HASH_TEXT];
        let hash = self.hash_text(self.content_path(req.path), items, ip.as_deref(), &mut buf);
        let hash = String::from_utf8_lossy(hash);
        Ok(format!(
            "{}?{}&{}={hash}",
            crate::path::encode_for_origin(req.path),
            params.join("&"),
            self.hash_param
        ))
    }

    fn params(&self) -> Vec<String> {
        vec![format!("{}*", self.prefix)]
    }
}

/// A time bound: `Some(None)` when absent, empty or `0` (check off),
/// `Some(Some(t))` for decimal seconds (saturating), `None` when malformed.
fn bound(value: Option<&[u8]>) -> Option<Option<u64>> {
    match value {
        None | Some(b"") | Some(b"0") => Some(None),
        Some(v) if v.iter().all(u8::is_ascii_digit) => Some(Some(
            std::str::from_utf8(v).ok()?.parse().unwrap_or(u64::MAX),
        )),
        Some(_) => None,
    }
}
