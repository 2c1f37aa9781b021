//! The master secret and what is derived from it directly: the four sub-keys
//! (docs/hls.md §3), the session id (§2) and the content key of one key
//! period (§3).
//!
//! Each sub-key is turned into a keyed HMAC state once, in
//! [`MasterKeys::new`]; every MAC afterwards clones that state, so no
//! request pays for a key schedule. Neither the master nor a sub-key is kept
//! as bytes once keyed, and `Debug` prints neither.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::digest::Key;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// HMAC-SHA256, the one MAC of this module.
pub(super) type HmacSha256 = Hmac<Sha256>;

/// Fewest bytes a `hex:` or `base64:` master may decode to.
pub const MIN_ENCODED_MASTER: usize = 16;
/// Fewest bytes a master given as plain text may have (text carries less
/// entropy per byte than random bytes).
pub const MIN_RAW_MASTER: usize = 32;

/// Labels of the sub-keys: `K_x = HMAC-SHA256(master, label)`.
pub(super) const LABEL_CAP: &[u8] = b"tollgate/v1/capability";
pub(super) const LABEL_TAG: &[u8] = b"tollgate/v1/segment-tag";
pub(super) const LABEL_SID: &[u8] = b"tollgate/v1/session-id";
pub(super) const LABEL_CONT: &[u8] = b"tollgate/v1/content-key";

/// Standard alphabet, padding optional (`openssl rand -base64 32` output).
const B64_STD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
/// URL-safe alphabet, padding optional.
const B64_URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decode the `[keys] master` text (after `env:`/`file:` resolution):
///
/// - `hex:<hex>`: hex digits of either case, at least
///   [`MIN_ENCODED_MASTER`] bytes once decoded;
/// - `base64:<b64>`: standard or URL-safe alphabet, padding optional, at
///   least [`MIN_ENCODED_MASTER`] bytes once decoded;
/// - anything else: the UTF-8 bytes of the text itself, at least
///   [`MIN_RAW_MASTER`] of them.
///
/// Nothing is trimmed. Errors are operator-readable sentences (the config
/// layer prefixes the key path) and never quote the secret.
pub fn parse_master(text: &str) -> Result<Vec<u8>, String> {
    if let Some(digits) = text.strip_prefix("hex:") {
        let bytes = hex::decode(digits).map_err(|e| match e {
            hex::FromHexError::InvalidHexCharacter { index, .. } => {
                format!("`hex:` master has a character that is not a hex digit at position {index}")
            }
            _ => "`hex:` master must have an even number of hex digits".to_owned(),
        })?;
        return at_least(bytes, MIN_ENCODED_MASTER, "`hex:` master decodes to");
    }
    if let Some(b64) = text.strip_prefix("base64:") {
        let engine = if b64.contains(['-', '_']) {
            &B64_URL
        } else {
            &B64_STD
        };
        let bytes = engine.decode(b64).map_err(|e| match e {
            base64::DecodeError::InvalidByte(at, _) => {
                format!("`base64:` master has a character that is not base64 at position {at}")
            }
            _ => "`base64:` master is not valid base64 (standard or URL-safe alphabet, \
                  padding optional)"
                .to_owned(),
        })?;
        return at_least(bytes, MIN_ENCODED_MASTER, "`base64:` master decodes to");
    }
    at_least(
        text.as_bytes().to_vec(),
        MIN_RAW_MASTER,
        "master given as text has",
    )
    .map_err(|e| format!("{e} (or give random bytes as `hex:…` or `base64:…`, 16 at least)"))
}

fn at_least(bytes: Vec<u8>, min: usize, what: &str) -> Result<Vec<u8>, String> {
    if bytes.len() < min {
        return Err(format!(
            "{what} {} bytes; at least {min} are required",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// The sub-keys of one master secret, each already keyed into an HMAC state.
///
/// Cheap to clone (four HMAC states, no heap). `Debug` shows no key
/// material. Build one per master at config load and share it.
#[derive(Clone)]
pub struct MasterKeys {
    /// `K_cap`: capabilities (§4).
    pub(super) cap: HmacSha256,
    /// `K_tag`: segment tags (§5).
    pub(super) tag: HmacSha256,
    /// `K_sid`: session ids (§2).
    sid: HmacSha256,
    /// `K_cont`: content keys (§3).
    cont: HmacSha256,
}

impl fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKeys(MASKED)")
    }
}

impl MasterKeys {
    /// Derive `K_cap`, `K_tag`, `K_sid` and `K_cont` from `master`
    /// (docs/hls.md §3: `K_x = HMAC-SHA256(master, "tollgate/v1/<x>")`).
    ///
    /// Any length is accepted here; [`parse_master`] enforces the minimum
    /// for configured masters.
    pub fn new(master: &[u8]) -> Self {
        let keyed_master = keyed(master);
        let sub = |label: &[u8]| keyed(&derive(&keyed_master, label));
        Self {
            cap: sub(LABEL_CAP),
            tag: sub(LABEL_TAG),
            sid: sub(LABEL_SID),
            cont: sub(LABEL_CONT),
        }
    }

    /// The AES-128 key of key period `period` of stream incarnation `inc`
    /// of (`route`, `channel`):
    /// `HMAC-SHA256(K_cont, route ‖ 0 ‖ channel ‖ 0 ‖ be64(inc) ‖ be64(period))[0..16]`.
    ///
    /// Every edge with the same master derives the same key.
    pub fn content_key(&self, route: &str, channel: &str, inc: u64, period: u64) -> [u8; 16] {
        let mut m = self.cont.clone();
        m.update(route.as_bytes());
        m.update(&[0]);
        m.update(channel.as_bytes());
        m.update(&[0]);
        m.update(&inc.to_be_bytes());
        m.update(&period.to_be_bytes());
        prefix(&finish(m))
    }

    /// The id of the session of one viewer on one channel (docs/hls.md §2):
    /// the first 8 bytes, big-endian, of
    ///
    /// ```text
    /// HMAC-SHA256(K_sid, user_enc ‖ 0 ‖ route ‖ 0 ‖ channel ‖ 0 ‖ ip_enc)
    /// user_enc = 0x00                            (anonymous)
    ///          | 0x01 ‖ be64(len(user)) ‖ user   (a user, possibly "")
    /// ip_enc   = 0x04 ‖ 4 octets | 0x06 ‖ 16 octets
    /// ```
    ///
    /// `ip` is canonicalized first (`::ffff:a.b.c.d` is `a.b.c.d`). The
    /// user is taken whole (no length limit, unlike a capability).
    pub fn session_id(&self, user: Option<&str>, route: &str, channel: &str, ip: IpAddr) -> u64 {
        self.session_id_on(user, None, route, channel, ip)
    }

    /// [`Self::session_id`] of a viewer on a device (SPEC §7.3): the same
    /// HMAC input followed by `0 ‖ 0x02 ‖ be64(len(hwid)) ‖ hwid`, so each
    /// of a user's devices holds a session of its own (and counts toward
    /// the user's `max_sessions`). Without a device it is
    /// [`Self::session_id`] exactly.
    pub fn session_id_on(
        &self,
        user: Option<&str>,
        device: Option<&str>,
        route: &str,
        channel: &str,
        ip: IpAddr,
    ) -> u64 {
        let mut m = self.sid.clone();
        match user {
            None => m.update(&[0]),
            Some(u) => {
                m.update(&[1]);
                m.update(&(u.len() as u64).to_be_bytes());
                m.update(u.as_bytes());
            }
        }
        m.update(&[0]);
        m.update(route.as_bytes());
        m.update(&[0]);
        m.update(channel.as_bytes());
        m.update(&[0]);
        update_ip(&mut m, ip);
        if let Some(hwid) = device {
            m.update(&[0, 2]);
            m.update(&(hwid.len() as u64).to_be_bytes());
            m.update(hwid.as_bytes());
        }
        u64::from_be_bytes(prefix(&finish(m)))
    }
}

/// An HMAC-SHA256 state keyed with `key`, infallibly: the key block of
/// RFC 2104 (the key zero-padded to the block size, hashed first when
/// longer), which is exactly what `Hmac::new_from_slice` does but without a
/// `Result` that cannot be an error.
fn keyed(key: &[u8]) -> HmacSha256 {
    let mut block = Key::<HmacSha256>::default();
    let hashed;
    let key = if key.len() > block.len() {
        hashed = Sha256::digest(key);
        hashed.as_slice()
    } else {
        key
    };
    for (b, k) in block.iter_mut().zip(key) {
        *b = *k;
    }
    HmacSha256::new(&block)
}

/// `HMAC(keyed_master, label)`: one sub-key's bytes.
pub(super) fn derive(keyed_master: &HmacSha256, label: &[u8]) -> [u8; 32] {
    let mut m = keyed_master.clone();
    m.update(label);
    finish(m)
}

/// The full 32-byte MAC.
pub(super) fn finish(m: HmacSha256) -> [u8; 32] {
    m.finalize().into_bytes().into()
}

/// The first `N` bytes of a MAC (`N` ≤ 32).
pub(super) fn prefix<const N: usize>(mac: &[u8; 32]) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, m) in out.iter_mut().zip(mac) {
        *o = *m;
    }
    out
}

/// Feed `ip_enc(ip)`: a family byte (4 or 6) and the octets of the
/// canonical address.
pub(super) fn update_ip(m: &mut HmacSha256, ip: IpAddr) {
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            m.update(&[4]);
            m.update(&a.octets());
        }
        IpAddr::V6(a) => {
            m.update(&[6]);
            m.update(&a.octets());
        }
    }
}

#[cfg(test)]
pub(super) fn derive_for_test(master: &[u8], label: &[u8]) -> [u8; 32] {
    derive(&keyed(master), label)
}
