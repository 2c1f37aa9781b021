//! Nimble Streamer / WMSPanel "WMSAuth" hotlink protection: the `wmsAuthSign`
//! query parameter (see `docs/auth.md`).
//!
//! `wmsAuthSign` is standard base64 of
//! `server_time=<T>&hash_value=<H>&validminutes=<N>[&strm_len=<L>][&id=<ID>[&checkip=true]]`
//! where `H` is base64 of the raw MD5 of a plain concatenation:
//!
//! | token carries            | string hashed                       |
//! |--------------------------|-------------------------------------|
//! | no `id`                  | `ip + key + T + N [+ stream]`       |
//! | `id`                     | `id + key + T + N [+ stream]`       |
//! | `id` and `checkip=true`  | `ip + id + key + T + N [+ stream]`  |
//!
//! `stream` is the first `strm_len` characters of the request path without its
//! leading `/` (inferred from the samples; unconfirmed against Nimble).
//! `T` is hashed exactly as received: the samples pad it differently.
//!
//! Pure core: no I/O, no clock reads, no logging. Invariants: the key never
//! reaches `Debug`; the MD5 is compared in constant time; nothing reachable
//! from a request panics.

mod server_time;
#[cfg(test)]
mod tests;

use std::path::Path;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use md5::{Digest, Md5};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::wire::IpText;
use super::{AuthRequest, Check, Identity, Scheme, SignRequest, query};
use crate::secret::{RawSecret, Secret};
use crate::units::parse_duration;

/// Default query parameter name.
pub const DEFAULT_PARAM: &str = "wmsAuthSign";
/// Default time tolerance: the original WMSAuth verifier's `timetolerance`,
/// within the vendor's recommended 60–90 s.
pub const DEFAULT_TOLERANCE: &str = "90s";

/// `[auth.wmsauth]` as written in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The WMSAuth rule's password (inline, `env:NAME` or `file:PATH`).
    pub key: Option<RawSecret>,
    /// Allowed clock skew; also prolongs expiry (Nimble "Time tolerance").
    pub tolerance: Option<String>,
    /// Query parameter carrying the signature.
    pub param: Option<String>,
    /// Refuse pay-per-view tokens that carry `id=` without `checkip=true`.
    pub require_ip: Option<bool>,
}

/// The compiled scheme.
#[derive(Debug)]
pub struct WmsAuth {
    key: Secret,
    tolerance: u64,
    param: String,
    require_ip: bool,
}

/// Lenient outer base64: `=` padding optional, trailing bits ignored (the
/// reference decoder re-pads and accepts whatever Python accepts).
const OUTER: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// `hash_value`: standard base64 with its padding.
const INNER: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

impl WmsAuth {
    /// Validate `[auth.wmsauth]`; errors are (key under the section, message).
    pub fn new(raw: &RawConfig, base_dir: &Path) -> Result<Self, Vec<(String, String)>> {
        let mut errs = Vec::new();
        let key = match raw.key.as_deref() {
            None => {
                errs.push(("key".to_owned(), "is required".to_owned()));
                None
            }
            Some(text) => Secret::resolve(text, base_dir)
                .map_err(|e| errs.push(("key".to_owned(), e)))
                .ok(),
        };
        let tolerance = parse_duration(raw.tolerance.as_deref().unwrap_or(DEFAULT_TOLERANCE))
            .map(|d| d.as_secs())
            .map_err(|e| errs.push(("tolerance".to_owned(), e)))
            .ok();
        let param = raw.param.as_deref().unwrap_or(DEFAULT_PARAM);
        if !query::is_param_name(param) {
            errs.push((
                "param".to_owned(),
                format!("{param:?} is not a query parameter name (letters, digits, '_', '-', '.')"),
            ));
        }
        match (key, tolerance) {
            (Some(key), Some(tolerance)) if errs.is_empty() => Ok(Self {
                key,
                tolerance,
                param: param.to_owned(),
                require_ip: raw.require_ip.unwrap_or(false),
            }),
            _ => Err(errs),
        }
    }

    /// Verify one `wmsAuthSign` value (raw, as in the query).
    fn verify(&self, value: &str, req: &AuthRequest<'_>) -> Check {
        // Borrowed unless the value really holds escapes (`%3D`).
        let decoded = query::percent_decode(value);
        let Ok(outer) = OUTER.decode(decoded.trim_ascii()) else {
            return Check::Forbidden;
        };
        let Ok(text) = std::str::from_utf8(&outer) else {
            return Check::Forbidden;
        };
        let Some(token) = Token::parse(text) else {
            return Check::Forbidden;
        };
        if self.require_ip && token.id.is_some() && !token.checkip {
            return Check::Forbidden;
        }
        let stream = signed_stream(req.path, token.strm_len);
        let ip = IpText::new(req.client_ip);
        let digest = self.digest(&token, ip.as_str(), stream);
        let mut got = [0u8; 24];
        let Ok(len) = INNER.decode_slice(token.hash_value, &mut got) else {
            return Check::Forbidden;
        };
        if !bool::from(got[..len].ct_eq(digest.as_slice())) {
            return Check::Forbidden;
        }
        let Some(issued) = server_time::parse(token.server_time) else {
            return Check::Forbidden;
        };
        let (now, tol) = (i128::from(req.now), i128::from(self.tolerance));
        let issued = i128::from(issued);
        if issued - now > tol {
            // The reference answers "time must be synchronized": not a
            // validity window, so it is a plain refusal.
            return Check::Forbidden;
        }
        if now - issued > i128::from(token.validminutes) * 60 + tol {
            return Check::Expired;
        }
        Check::Allow(Identity {
            user: token.id.filter(|id| !id.is_empty()).map(str::to_owned),
            session_limit: None,
            ..Identity::default()
        })
    }

    /// MD5 of the hash input for `token` (see the module table).
    fn digest(&self, token: &Token<'_>, ip: &str, stream: &str) -> [u8; 16] {
        let mut md5 = Md5::new();
        match token.id {
            None => md5.update(ip),
            Some(id) => {
                if token.checkip {
                    md5.update(ip);
                }
                md5.update(id);
            }
        }
        md5.update(self.key.expose());
        md5.update(token.server_time);
        md5.update(token.validminutes_text);
        md5.update(stream);
        md5.finalize().into()
    }
}

impl Scheme for WmsAuth {
    fn check(&self, req: &AuthRequest<'_>) -> Check {
        // First `param` (ASCII case-insensitive), `""` when it has no `=`.
        match req.query.and_then(|q| query::param(q, &self.param)) {
            None => Check::Pass,
            Some(value) => self.verify(value, req),
        }
    }

    /// `path?wmsAuthSign=…` issued at `start` (PHP time format), valid for
    /// `expires - start` rounded up to whole minutes. With a user the token
    /// is the pay-per-view form (`id=`, plus `checkip=true` when an IP is
    /// given); without one it must be bound to an IP.
    fn sign(&self, req: &SignRequest<'_>) -> Result<String, String> {
        if req.expires <= req.start {
            return Err("the link must expire after it starts".to_owned());
        }
        let minutes = (req.expires - req.start).div_ceil(60);
        let server_time = server_time::format(req.start)
            .ok_or_else(|| format!("start time {} is out of range", req.start))?;
        let ip = req.client_ip.map(|ip| ip.to_string());
        if req.user.is_none() && ip.is_none() {
            return Err("a WMSAuth link without a user id must be bound to a client IP".into());
        }
        if self.require_ip && ip.is_none() {
            return Err("require_ip is set: give the client IP".into());
        }
        if let Some(user) = req.user
            && (user.is_empty() || user.contains(['&', '=']))
        {
            return Err(format!(
                "user id {user:?} cannot be carried in a WMSAuth token"
            ));
        }
        let validminutes = minutes.to_string();
        let token = Token {
            server_time: &server_time,
            hash_value: "",
            validminutes: minutes,
            validminutes_text: &validminutes,
            strm_len: 0,
            id: req.user,
            checkip: req.user.is_some() && ip.is_some(),
        };
        let hash = STANDARD.encode(self.digest(&token, ip.as_deref().unwrap_or(""), ""));
        let mut text =
            format!("server_time={server_time}&hash_value={hash}&validminutes={minutes}");
        if let Some(user) = req.user {
            text.push_str("&id=");
            text.push_str(user);
            if token.checkip {
                text.push_str("&checkip=true");
            }
        }
        // The outer base64 only holds [A-Za-z0-9=]; '=' is legal in a query value.
        Ok(format!(
            "{}?{}={}",
            crate::path::encode_for_origin(req.path),
            self.param,
            STANDARD.encode(text)
        ))
    }

    fn params(&self) -> Vec<String> {
        vec![self.param.clone()]
    }
}

/// The fields of a decoded `wmsAuthSign`, borrowed from its text.
#[derive(Debug)]
struct Token<'a> {
    server_time: &'a str,
    hash_value: &'a str,
    validminutes: u64,
    /// `validminutes` exactly as received: it is hashed verbatim.
    validminutes_text: &'a str,
    strm_len: usize,
    id: Option<&'a str>,
    checkip: bool,
}

impl<'a> Token<'a> {
    /// Split on `&`, each pair at its first `=`; the first occurrence of a
    /// key wins and unknown keys (`is_free=1`, …) are ignored.
    fn parse(text: &'a str) -> Option<Self> {
        let (mut server_time, mut hash_value, mut validminutes) = (None, None, None);
        let (mut strm_len, mut id, mut checkip) = (None, None, None);
        for pair in text.split('&') {
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            let slot = match k {
                "server_time" => &mut server_time,
                "hash_value" => &mut hash_value,
                "validminutes" => &mut validminutes,
                "strm_len" => &mut strm_len,
                "id" => &mut id,
                "checkip" => &mut checkip,
                _ => continue,
            };
            slot.get_or_insert(v);
        }
        let validminutes_text = validminutes?;
        let strm_len = match strm_len {
            None => 0,
            Some(n) => decimal(n)?.try_into().unwrap_or(usize::MAX),
        };
        Some(Self {
            server_time: server_time?,
            hash_value: hash_value?,
            validminutes: decimal(validminutes_text)?,
            validminutes_text,
            strm_len,
            id,
            checkip: checkip.is_some_and(|c| c.eq_ignore_ascii_case("true")),
        })
    }
}

/// ASCII digits as a number; absurdly large values saturate (they can only
/// mean "very long", and the hash still has to match the text).
fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

/// The first `len` characters of `path` without its leading `/`.
fn signed_stream(path: &str, len: usize) -> &str {
    let path = path.trim_start_matches('/');
    match path.char_indices().nth(len) {
        Some((end, _)) => &path[..end],
        None => path,
    }
}
