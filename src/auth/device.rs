//! The `device` method (SPEC §7.3, IPTV CAS Studio's token + HWID):
//! `?token=T&hwid=H&ts=UNIX&sig=S` with
//! `S = base64url_nopad(HMAC-SHA256(key = T, msg = H ":" ts))`.
//!
//! A request carrying `hwid` is this method's alone (the route's other
//! methods are not asked, and `token` never admits it). In order:
//! 1. `token`, `ts` and `sig` present, `H` follows the hardware-id rule,
//!    `|now − ts| ≤ tolerance`, `S` the signature (constant-time compare);
//! 2. `T` is a user's play token (the `token` method's own lookup: the
//!    config's `[[user]]`, then the API's users);
//! 3. `H` is a device of that user: another user's is refused, a disabled
//!    one is `blocked`; an unknown one registers itself while the user has
//!    fewer than `auto_register` devices ([`Identity::register_device`],
//!    the shell writes it), and is refused otherwise.
//!
//! Every refusal but the disabled device is `forbidden`, and they all look
//! alike on the wire. Pure core: no I/O, no clock (`now` is in the
//! request), no logging.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{AuthRequest, Check, Identity, query};
use crate::entitlements::{Entitlements, rules};

/// Default `|now − ts|` allowed: five minutes.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Most devices `auto_register` may let one user register.
pub const MAX_AUTO_REGISTER: u32 = 1000;

/// `[auth.device]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// How far `ts` may be from the edge's clock (default `5m`).
    pub tolerance: Option<String>,
    /// How many unknown devices of a user register themselves (default 0:
    /// devices are registered by the API, the config or the control plane).
    pub auto_register: Option<u32>,
}

/// The compiled `[auth.device]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceAuth {
    /// Seconds `ts` may be off.
    tolerance: u64,
    /// Devices a user may register by playing.
    auto_register: u32,
}

impl Default for DeviceAuth {
    fn default() -> Self {
        Self {
            tolerance: DEFAULT_TOLERANCE.as_secs(),
            auto_register: 0,
        }
    }
}

/// The query parameter that makes a request the `device` method's.
pub const HWID_PARAM: &str = "hwid";

/// The parameters the method reads: stripped before the request goes to
/// the origin and before the access log.
pub const PARAMS: [&str; 4] = ["token", HWID_PARAM, "ts", "sig"];

/// True when `req` carries `hwid` (then only the `device` method decides).
pub fn carries_hwid(req: &AuthRequest<'_>) -> bool {
    req.query
        .is_some_and(|q| query::param(q, HWID_PARAM).is_some())
}

/// `HMAC-SHA256(key = token, msg = hwid ":" ts)`; `None` never happens
/// (HMAC takes a key of any length), and callers fail closed on it.
fn mac(token: &[u8], hwid: &str, ts: &str) -> Option<[u8; 32]> {
    let mut m = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(token).ok()?;
    m.update(hwid.as_bytes());
    m.update(b":");
    m.update(ts.as_bytes());
    Some(m.finalize().into_bytes().into())
}

/// `base64url_nopad(HMAC-SHA256(key = token, msg = hwid ":" ts))`.
pub fn signature(token: &str, hwid: &str, ts: u64) -> Option<String> {
    mac(token.as_bytes(), hwid, &ts.to_string()).map(|m| URL_SAFE_NO_PAD.encode(m))
}

impl DeviceAuth {
    /// Compile `[auth.device]`; `None` (no section) is the defaults.
    pub fn new(raw: Option<&RawConfig>) -> Result<Self, Vec<(String, String)>> {
        let mut out = Self::default();
        let Some(raw) = raw else {
            return Ok(out);
        };
        let mut errs = Vec::new();
        match raw.tolerance.as_deref().map(crate::units::parse_duration) {
            None => {}
            Some(Ok(d)) if d <= Duration::from_secs(86_400) => out.tolerance = d.as_secs(),
            Some(Ok(_)) => errs.push((
                "tolerance".to_owned(),
                "at most 1d: a signed link must not live for days".to_owned(),
            )),
            Some(Err(m)) => errs.push(("tolerance".to_owned(), m)),
        }
        match raw.auto_register {
            Some(n) if n > MAX_AUTO_REGISTER => errs.push((
                "auto_register".to_owned(),
                format!("at most {MAX_AUTO_REGISTER} devices per user"),
            )),
            Some(n) => out.auto_register = n,
            None => {}
        }
        if errs.is_empty() { Ok(out) } else { Err(errs) }
    }

    /// `auto_register`.
    pub fn auto_register(&self) -> u32 {
        self.auto_register
    }

    /// Verify `req` (see the module docs). `user_of_token` is the `token`
    /// method's lookup of `?token=`; `ents` the effective entitlements,
    /// whose devices these are. `Pass` only for a request without `hwid`.
    pub fn check(
        &self,
        req: &AuthRequest<'_>,
        user_of_token: impl FnOnce() -> Option<String>,
        ents: &Entitlements,
    ) -> Check {
        let Some(q) = req.query else {
            return Check::Pass;
        };
        let Some(hwid) = query::param(q, HWID_PARAM) else {
            return Check::Pass;
        };
        let (Some(token), Some(ts), Some(sig)) = (
            query::param(q, "token"),
            query::param(q, "ts"),
            query::param(q, "sig"),
        ) else {
            return Check::Forbidden;
        };
        let hwid = query::percent_decode(hwid);
        let Ok(hwid) = std::str::from_utf8(&hwid) else {
            return Check::Forbidden;
        };
        if rules::check_hwid(hwid).is_err() {
            return Check::Forbidden;
        }
        // Digits only: the signed text is the one the client sent, so
        // `+5`, ` 5` or `05` must not verify as another spelling of 5.
        let ts_ok = !ts.is_empty() && ts.len() <= 20 && ts.bytes().all(|b| b.is_ascii_digit());
        let Some(when) = ts_ok.then(|| ts.parse::<u64>().ok()).flatten() else {
            return Check::Forbidden;
        };
        if req.now.abs_diff(when) > self.tolerance {
            return Check::Forbidden;
        }
        let mut presented = [0u8; 33];
        let decoded = URL_SAFE_NO_PAD.decode_slice(sig.as_bytes(), &mut presented);
        let token = query::percent_decode(token);
        let good = match (decoded, mac(&token, hwid, ts)) {
            (Ok(32), Some(want)) => presented
                .get(..32)
                .is_some_and(|p| bool::from(p.ct_eq(&want))),
            _ => false,
        };
        if !good {
            return Check::Forbidden;
        }
        let Some(user) = user_of_token() else {
            return Check::Forbidden;
        };
        let register = match ents.device(hwid) {
            Some(d) if d.user() != user => return Check::Forbidden,
            Some(d) if d.is_disabled() => return Check::Blocked,
            Some(_) => false,
            None if ents.device_count(&user) < self.auto_register => true,
            None => return Check::Forbidden,
        };
        Check::Allow(Identity {
            user: Some(user),
            device: Some(hwid.to_owned()),
            register_device: register,
            ..Identity::default()
        })
    }
}

#[cfg(test)]
mod tests;
