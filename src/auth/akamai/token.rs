//! The Akamai EdgeAuth token itself: field parsing, the HMAC input, ACL
//! wildcard matching and the Python library's "escape early" encoding.
//!
//! Pure and allocation-light: parsing borrows from the token text; nothing
//! here knows about requests, clocks or configuration files. Byte-compatible
//! with akamai/EdgeAuth-Token-Python (research/auth-schemes.md §4).

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Separator between token fields.
pub const FIELD_DELIMITER: char = '~';
/// Separator between several ACL patterns in one `acl=` field.
pub const ACL_DELIMITER: char = '!';
/// Most fields a token may carry; more is refused (bounds the duplicate scan).
const MAX_FIELDS: usize = 16;

/// Why a token could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// `hmac=` is missing or is not the last field.
    HmacNotLast,
    /// A field without `=`, or more than `MAX_FIELDS` fields.
    Malformed,
    /// The same field twice.
    Duplicate,
    /// No `exp=` field.
    NoExp,
}

/// A token split into its fields. Values are the raw (possibly escaped) text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields<'a> {
    /// The text the HMAC covers (everything before `~hmac=`).
    pub signed: &'a str,
    /// The hex digest the token presents.
    pub hmac: &'a str,
    /// `ip=`.
    pub ip: Option<&'a str>,
    /// `st=`.
    pub st: Option<&'a str>,
    /// `exp=` (mandatory).
    pub exp: &'a str,
    /// `acl=`; `None` for a URL token.
    pub acl: Option<&'a str>,
    /// `id=`.
    pub id: Option<&'a str>,
}

/// Split `token` the way the edge does: `hmac=` last, `key=value` fields,
/// no duplicates, `exp` required. Unknown fields are kept in `signed` only.
pub fn parse(token: &str) -> Result<Fields<'_>, ParseError> {
    const MARKER: &str = "~hmac=";
    let idx = match token.rfind(MARKER) {
        Some(i) if i > 0 => i,
        _ => return Err(ParseError::HmacNotLast),
    };
    let (signed, hmac) = (&token[..idx], &token[idx + MARKER.len()..]);
    if hmac.contains(FIELD_DELIMITER) {
        return Err(ParseError::HmacNotLast);
    }
    let mut keys: [&str; MAX_FIELDS] = [""; MAX_FIELDS];
    let (mut ip, mut st, mut exp, mut acl, mut id) = (None, None, None, None, None);
    for (n, part) in signed.split(FIELD_DELIMITER).enumerate() {
        let (key, value) = part.split_once('=').ok_or(ParseError::Malformed)?;
        if n >= MAX_FIELDS {
            return Err(ParseError::Malformed);
        }
        if keys[..n].contains(&key) {
            return Err(ParseError::Duplicate);
        }
        keys[n] = key;
        match key {
            "ip" => ip = Some(value),
            "st" => st = Some(value),
            "exp" => exp = Some(value),
            "acl" => acl = Some(value),
            "id" => id = Some(value),
            _ => {}
        }
    }
    Ok(Fields {
        signed,
        hmac,
        ip,
        st,
        exp: exp.ok_or(ParseError::NoExp)?,
        acl,
        id,
    })
}

/// A decimal `st`/`exp` value; `None` when empty, non-digit or overflowing.
pub fn parse_epoch(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The HMAC algorithm (`algorithm` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// HMAC-SHA256, Akamai's default.
    #[default]
    Sha256,
    /// HMAC-SHA1.
    Sha1,
    /// HMAC-MD5.
    Md5,
}

impl Algorithm {
    /// Parse a config name (`sha256`, `sha1`, `md5`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Self::Sha256),
            "sha1" => Some(Self::Sha1),
            "md5" => Some(Self::Md5),
            _ => None,
        }
    }
}

/// An HMAC already keyed with one hex-decoded key; cloned per use so the
/// key schedule is computed once. `Debug` never shows key material.
#[derive(Clone)]
pub enum KeyedMac {
    /// HMAC-SHA256.
    Sha256(Hmac<Sha256>),
    /// HMAC-SHA1.
    Sha1(Hmac<Sha1>),
    /// HMAC-MD5.
    Md5(Hmac<Md5>),
}

impl std::fmt::Debug for KeyedMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedMac(MASKED)")
    }
}

/// Longest digest among the algorithms (SHA-256).
pub const MAX_DIGEST: usize = 32;

impl KeyedMac {
    /// Key `alg` with the hex text `key_hex` (even length, non-empty).
    pub fn new(alg: Algorithm, key_hex: &str) -> Result<Self, String> {
        let key = hex::decode(key_hex)
            .map_err(|e| format!("key must be hex (an even number of 0-9a-f digits): {e}"))?;
        if key.is_empty() {
            return Err("key is empty".to_owned());
        }
        // HMAC takes keys of any length, so new_from_slice cannot fail here.
        let bad = |_| "key rejected by HMAC".to_owned();
        Ok(match alg {
            Algorithm::Sha256 => Self::Sha256(Hmac::new_from_slice(&key).map_err(bad)?),
            Algorithm::Sha1 => Self::Sha1(Hmac::new_from_slice(&key).map_err(bad)?),
            Algorithm::Md5 => Self::Md5(Hmac::new_from_slice(&key).map_err(bad)?),
        })
    }

    /// MAC of the concatenation of `parts`; returns the buffer and the length used.
    pub fn digest(&self, parts: &[&[u8]]) -> ([u8; MAX_DIGEST], usize) {
        fn run<M: Mac + Clone>(m: &M, parts: &[&[u8]], out: &mut [u8; MAX_DIGEST]) -> usize {
            let mut m = m.clone();
            for p in parts {
                m.update(p);
            }
            let tag = m.finalize().into_bytes();
            let n = tag.len().min(MAX_DIGEST);
            out[..n].copy_from_slice(&tag[..n]);
            n
        }
        let mut out = [0u8; MAX_DIGEST];
        let n = match self {
            Self::Sha256(m) => run(m, parts, &mut out),
            Self::Sha1(m) => run(m, parts, &mut out),
            Self::Md5(m) => run(m, parts, &mut out),
        };
        (out, n)
    }

    /// Whether `given_hex` (either case) is the MAC of `parts`, compared in
    /// constant time.
    pub fn verify(&self, parts: &[&[u8]], given_hex: &str) -> bool {
        let (want, n) = self.digest(parts);
        let mut given = [0u8; MAX_DIGEST];
        if given_hex.len() != 2 * n || hex::decode_to_slice(given_hex, &mut given[..n]).is_err() {
            return false;
        }
        want[..n].ct_eq(&given[..n]).into()
    }

    /// Lower-case hex MAC of `parts`.
    pub fn hex(&self, parts: &[&[u8]]) -> String {
        let (d, n) = self.digest(parts);
        hex::encode(&d[..n])
    }
}

/// Whether the ACL pattern `pattern` (`*` = any run, `?` = one character)
/// covers all of `path`. Iterative, with single-star backtracking: linear in
/// practice, never recursive.
pub fn acl_match(pattern: &str, path: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), path.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    let char_len = |i: usize| path[i..].chars().next().map_or(1, char::len_utf8);
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == b'?' {
            pi += 1;
            si += char_len(si);
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            let next = ss + char_len(ss);
            star = Some((sp, next));
            pi = sp + 1;
            si = next;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// Whether any of the `!`-separated patterns of `acl` covers `path`.
pub fn acl_covers(acl: &str, path: &str) -> bool {
    acl.split(ACL_DELIMITER).any(|pat| acl_match(pat, path))
}

/// The Python library's "escape early": `quote_plus` (unreserved
/// `A-Za-z0-9_.-~` kept, space → `+`) with lower-case `%xx`.
pub fn escape_early(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(text.len() * 3);
    for &b in text.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
    out
}
