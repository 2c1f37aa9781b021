//! Akamai EdgeAuth / Token Auth 2.0 (`__token__`, `hdnts`, `__hdnea__`):
//! verify tokens carried in the query, a cookie or a header, and sign them
//! for `tollgate sign`.
//!
//! Owns `[auth.akamai]` validation and the request-level rules (where the
//! token rides, IP binding, ACL or URL binding, the time window with a
//! clock tolerance, key transition). The token format lives in [`token`].
//! Pure core: no I/O, no clock (`now` comes in the request), no logging.
//!
//! Invariants: the HMAC is verified before any other field is trusted; every
//! configured key is tried (key transition), compared in constant time; key
//! material never appears in `Debug`. An absent token is `Pass`; a present
//! but empty or malformed one is `Forbidden`.

pub mod token;

use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

use super::{AuthRequest, Check, Identity, Scheme, SignRequest, query};
use crate::secret::{RawSecret, Secret};
use crate::units::parse_duration;
use token::{Algorithm, KeyedMac};

/// Token names Akamai properties use.
const TOKEN_NAMES: [&str; 3] = ["__token__", "hdnts", "__hdnea__"];

/// `[auth.akamai]` as written in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Hex keys (secrets: inline, `env:`, `file:`). The first signs; all
    /// verify, so a new key can be rolled out before the old one is removed.
    #[serde(default)]
    pub keys: Vec<RawSecret>,
    /// `sha256` (default), `sha1` or `md5`.
    pub algorithm: Option<String>,
    /// `__token__` (default), `hdnts` or `__hdnea__`.
    pub token_name: Option<String>,
    /// Where to look, in order: any of `query`, `cookie`, `header`.
    pub locations: Option<Vec<String>>,
    /// Optional salt appended to the HMAC input (a secret).
    pub salt: Option<RawSecret>,
    /// URL-encode `ip`, `id`, `data` and `url` before hashing.
    #[serde(default)]
    pub escape_early: bool,
    /// Clock skew allowed on both `st` and `exp` (a duration, default `0s`).
    pub tolerance: Option<String>,
    /// What `tollgate sign` binds: `directory` (default, `acl=<dir>/*`),
    /// `path` (`acl=<exact path>`) or `url` (a URL token without ACL).
    pub sign_scope: Option<String>,
}

/// Where a token may ride.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// `?<token_name>=<token>`.
    Query,
    /// `Cookie: <token_name>=<token>`.
    Cookie,
    /// `<token_name>: <token>` request header.
    Header,
}

/// What `sign` binds the token to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignScope {
    /// `acl=` the path's directory followed by `*`.
    Directory,
    /// `acl=` the exact path.
    Path,
    /// A URL token: no `acl`, the path is folded into the HMAC.
    Url,
}

/// The compiled scheme. `Debug` shows no key or salt.
#[derive(Debug)]
pub struct Akamai {
    keys: Vec<KeyedMac>,
    token_name: String,
    locations: Vec<Location>,
    salt: Option<Secret>,
    escape_early: bool,
    tolerance: u64,
    sign_scope: SignScope,
}

type Errors = Vec<(String, String)>;

impl Akamai {
    /// Validate `[auth.akamai]`; errors are (key under the section, message).
    pub fn new(raw: &RawConfig, base_dir: &Path) -> Result<Self, Errors> {
        let mut errs: Errors = Vec::new();
        let mut err = |k: &str, m: String| errs.push((k.to_owned(), m));
        let alg = match raw.algorithm.as_deref() {
            None => Algorithm::Sha256,
            Some(name) => Algorithm::from_name(name).unwrap_or_else(|| {
                err("algorithm", format!("{name:?} is not sha256, sha1 or md5"));
                Algorithm::Sha256
            }),
        };
        if raw.keys.is_empty() {
            err("keys", "at least one hex key is required".to_owned());
        }
        let mut keys = Vec::new();
        for (i, k) in raw.keys.iter().enumerate() {
            match Secret::resolve(k, base_dir).and_then(|s| KeyedMac::new(alg, s.expose())) {
                Ok(m) => keys.push(m),
                Err(m) => err(&format!("keys[{i}]"), m),
            }
        }
        let token_name = raw
            .token_name
            .clone()
            .unwrap_or_else(|| TOKEN_NAMES[0].into());
        if !TOKEN_NAMES.contains(&token_name.as_str()) {
            err(
                "token_name",
                format!("{token_name:?} is not one of {TOKEN_NAMES:?}"),
            );
        }
        let mut locations = Vec::new();
        let names = raw.locations.clone();
        for (i, l) in names
            .unwrap_or_else(|| vec!["query".into(), "cookie".into()])
            .iter()
            .enumerate()
        {
            match l.as_str() {
                "query" => locations.push(Location::Query),
                "cookie" => locations.push(Location::Cookie),
                "header" => locations.push(Location::Header),
                other => err(
                    &format!("locations[{i}]"),
                    format!("{other:?} is not query, cookie or header"),
                ),
            }
        }
        if locations.is_empty() && raw.locations.as_ref().is_some_and(Vec::is_empty) {
            err(
                "locations",
                "list at least one of query, cookie, header".to_owned(),
            );
        }
        let salt = raw.salt.as_deref().and_then(|s| {
            Secret::resolve(s, base_dir)
                .map_err(|m| err("salt", m))
                .ok()
        });
        let tolerance = match raw.tolerance.as_deref().map(parse_duration) {
            None => 0,
            Some(Ok(d)) => d.as_secs(),
            Some(Err(m)) => {
                err("tolerance", m);
                0
            }
        };
        let sign_scope = match raw.sign_scope.as_deref() {
            None | Some("directory") => SignScope::Directory,
            Some("path") => SignScope::Path,
            Some("url") => SignScope::Url,
            Some(other) => {
                err(
                    "sign_scope",
                    format!("{other:?} is not directory, path or url"),
                );
                SignScope::Directory
            }
        };
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Self {
            keys,
            token_name,
            locations,
            salt,
            escape_early: raw.escape_early,
            tolerance,
            sign_scope,
        })
    }

    /// The token as presented, from the first configured location that has one.
    /// A query token is the first parameter named exactly `token_name`, raw:
    /// Akamai libraries put tokens into URLs verbatim, and escaped fields
    /// carry `%xx` that is part of the signed text.
    fn find_token<'r>(&self, req: &AuthRequest<'r>) -> Option<&'r str> {
        self.locations.iter().find_map(|loc| match loc {
            Location::Query => query::param_exact(req.query?, &self.token_name),
            Location::Cookie => req
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(|v| cookie(v, &self.token_name)),
            Location::Header => req.headers.get(self.token_name.as_str())?.to_str().ok(),
        })
    }

    /// Verify a token text (already extracted) for `req`.
    pub fn verify(&self, tok: &str, req: &AuthRequest<'_>) -> Check {
        let Ok(f) = token::parse(tok) else {
            return Check::Forbidden;
        };
        let escaped;
        let url: &str = if self.escape_early {
            escaped = token::escape_early(req.path);
            &escaped
        } else {
            req.path
        };
        let salt = self.salt.as_ref().map_or("", |s| s.expose());
        let mut parts: [&[u8]; 5] = [f.signed.as_bytes(), b"", b"", b"", b""];
        if f.acl.is_none() {
            parts[1] = b"~url=";
            parts[2] = url.as_bytes();
        }
        if !salt.is_empty() {
            parts[3] = b"~salt=";
            parts[4] = salt.as_bytes();
        }
        let mut ok = false;
        for k in &self.keys {
            ok |= k.verify(&parts, f.hmac);
        }
        if !ok {
            return Check::Forbidden;
        }
        let st = match f.st.map(token::parse_epoch) {
            Some(None) => return Check::Forbidden,
            Some(Some(v)) => Some(v),
            None => None,
        };
        let Some(exp) = token::parse_epoch(f.exp) else {
            return Check::Forbidden;
        };
        let ip_ok = f.ip.is_none_or(|ip| {
            let parsed = if self.escape_early {
                unquote_plus(ip).parse::<IpAddr>()
            } else {
                ip.parse::<IpAddr>()
            };
            parsed.ok() == Some(req.client_ip)
        });
        if !ip_ok || f.acl.is_some_and(|acl| !token::acl_covers(acl, req.path)) {
            return Check::Forbidden;
        }
        if st.is_some_and(|st| req.now.saturating_add(self.tolerance) < st) {
            return Check::NotYetValid;
        }
        if req.now > exp.saturating_add(self.tolerance) {
            return Check::Expired;
        }
        let user = f.id.map(|id| {
            if self.escape_early {
                unquote_plus(id)
            } else {
                id.to_owned()
            }
        });
        Check::Allow(Identity {
            user,
            session_limit: None,
            ..Identity::default()
        })
    }

    /// The token text `sign` produces (without the `name=` prefix).
    pub fn token(&self, req: &SignRequest<'_>) -> Result<String, String> {
        let esc = |s: &str| {
            if self.escape_early {
                token::escape_early(s)
            } else {
                s.to_owned()
            }
        };
        if req.expires < req.start {
            return Err("expiry is before start".into());
        }
        let mut body: Vec<String> = Vec::with_capacity(5);
        if let Some(ip) = req.client_ip {
            body.push(format!("ip={}", esc(&ip.to_string())));
        }
        if req.start != 0 {
            body.push(format!("st={}", req.start));
        }
        body.push(format!("exp={}", req.expires));
        let acl = match self.sign_scope {
            SignScope::Directory => Some(format!(
                "{}*",
                &req.path[..=req.path.rfind('/').unwrap_or(0)]
            )),
            SignScope::Path => Some(req.path.to_owned()),
            SignScope::Url => None,
        };
        if let Some(acl) = &acl {
            if acl.contains(['!', '~']) {
                return Err("paths with '!' or '~' cannot be put in an ACL".into());
            }
            body.push(format!("acl={acl}"));
        }
        if let Some(id) = req.user {
            body.push(format!("id={}", esc(id)));
        }
        if !body.iter().all(|f| url_safe(f)) {
            return Err(
                "a field holds '~', '&', '#', a space or a non-URL character; \
                        use escape_early or change the value"
                    .into(),
            );
        }
        let signed = body.join("~");
        let url = if acl.is_none() {
            format!("~url={}", esc(req.path))
        } else {
            String::new()
        };
        let salt = self
            .salt
            .as_ref()
            .map(|s| format!("~salt={}", s.expose()))
            .unwrap_or_default();
        let key = self.keys.first().ok_or("no key configured")?;
        let mac = key.hex(&[signed.as_bytes(), url.as_bytes(), salt.as_bytes()]);
        Ok(format!("{signed}~hmac={mac}"))
    }
}

/// Whether a token field can ride verbatim in a query, cookie or header:
/// printable ASCII without the field delimiter, query separators or
/// characters URLs forbid.
pub fn url_safe(field: &str) -> bool {
    field
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b"~&#\"<>\\^`{|}".contains(&b))
}

/// Undo escape-early (Python's `unquote_plus`, lossy) for `ip`/`id` values:
/// unlike every other query value here, a `+` is a space.
fn unquote_plus(s: &str) -> String {
    let plus = s.replace('+', " ");
    String::from_utf8_lossy(&query::percent_decode(&plus)).into_owned()
}

/// The value of cookie `name` in one `Cookie` header value, quotes removed.
pub fn cookie<'c>(header: &'c str, name: &str) -> Option<&'c str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k.trim() == name).then(|| {
            let v = v.trim();
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
        })
    })
}

impl Scheme for Akamai {
    fn check(&self, req: &AuthRequest<'_>) -> Check {
        match self.find_token(req) {
            None => Check::Pass,
            Some(tok) => self.verify(tok, req),
        }
    }

    fn sign(&self, req: &SignRequest<'_>) -> Result<String, String> {
        Ok(format!(
            "{}?{}={}",
            crate::path::encode_for_origin(req.path),
            self.token_name,
            self.token(req)?
        ))
    }

    fn params(&self) -> Vec<String> {
        vec![self.token_name.clone()]
    }
}

#[cfg(test)]
mod tests;
