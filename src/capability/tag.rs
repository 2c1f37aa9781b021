//! The segment tag (`tgs`, docs/hls.md §5): how one URI is served, signed
//! for one route, channel and normalized proxy path, the same for every
//! session.
//!
//! ```text
//! tgs  = <body>.<tag>
//! body = e.<inc>.<period>.<msn>[.<off>.<len>] | c[.<off>.<len>] | k.<until>
//! tag  = base64url_nopad(HMAC-SHA256(K_tag, route ‖ 0 ‖ channel ‖ 0 ‖ path ‖ 0 ‖ body)[0..12])
//! ```
//!
//! Numbers are canonical decimal u64 (`0` or a non-zero digit first; no
//! sign, no leading zero), `<len>` may be `-` (to the end). The body is
//! written by `Display for Serve` and parsed back by `FromStr for Serve`,
//! which accepts exactly what `Display` writes, so one [`Serve`] has one encoding.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use subtle::ConstantTimeEq;

use super::keys::{MasterKeys, finish, prefix};
use super::{ByteRange, CapError, Serve};

/// MAC bytes kept in a tag.
const TAG_MAC_LEN: usize = 12;
/// Their unpadded base64url length (12 bytes: no padding, no spare bits).
const TAG_TEXT_LEN: usize = 16;
/// Most `.`-separated fields in a body (`e`, inc, period, msn, off, len).
const MAX_FIELDS: usize = 6;

impl MasterKeys {
    /// The whole `tgs` value for serving `path` of (`route`, `channel`) as
    /// `serve` says.
    pub fn sign_tag(&self, route: &str, channel: &str, path: &str, serve: &Serve) -> String {
        let mut out = serve.to_string();
        let mac: [u8; TAG_MAC_LEN] = prefix(&self.tag_mac(route, channel, path, &out));
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(mac, &mut out);
        out
    }

    /// Check a `tgs` value for `path` of (`route`, `channel`) and return how
    /// to serve it. [`CapError::Malformed`] when the value does not follow
    /// the grammar (checked first); [`CapError::BadSignature`] when the MAC,
    /// compared in constant time, does not match. Allocates nothing.
    pub fn verify_tag(
        &self,
        value: &str,
        route: &str,
        channel: &str,
        path: &str,
    ) -> Result<Serve, CapError> {
        let (body, tag) = value.rsplit_once('.').ok_or(CapError::Malformed)?;
        if tag.len() != TAG_TEXT_LEN {
            return Err(CapError::Malformed);
        }
        let mut given = [0u8; TAG_TEXT_LEN];
        let n = URL_SAFE_NO_PAD
            .decode_slice(tag, &mut given)
            .map_err(|_| CapError::Malformed)?;
        let given = given.get(..n).ok_or(CapError::Malformed)?;
        let serve = parse_body(body)?;
        let want: [u8; TAG_MAC_LEN] = prefix(&self.tag_mac(route, channel, path, body));
        if !bool::from(want.as_slice().ct_eq(given)) {
            return Err(CapError::BadSignature);
        }
        Ok(serve)
    }

    /// `HMAC(K_tag, route ‖ 0 ‖ channel ‖ 0 ‖ path ‖ 0 ‖ body)`.
    fn tag_mac(&self, route: &str, channel: &str, path: &str, body: &str) -> [u8; 32] {
        let mut m = self.tag.clone();
        for part in [route, channel, path] {
            m.update(part.as_bytes());
            m.update(&[0]);
        }
        m.update(body.as_bytes());
        finish(m)
    }
}

impl std::str::FromStr for Serve {
    type Err = CapError;

    /// Parse a tag body (the `tgs` value before its final `.`), the inverse
    /// of `Display`: anything `Display` would not write is
    /// [`CapError::Malformed`].
    fn from_str(body: &str) -> Result<Self, CapError> {
        parse_body(body)
    }
}

/// Parse a tag body; see `FromStr for Serve`.
fn parse_body(body: &str) -> Result<Serve, CapError> {
    let mut fields = [""; MAX_FIELDS];
    let mut count = 0;
    for field in body.split('.') {
        *fields.get_mut(count).ok_or(CapError::Malformed)? = field;
        count += 1;
    }
    match (fields, count) {
        (["e", inc, period, msn, ..], 4) => Ok(Serve::Encrypt {
            inc: number(inc)?,
            period: number(period)?,
            msn: number(msn)?,
            range: None,
        }),
        (["e", inc, period, msn, off, len], 6) => Ok(Serve::Encrypt {
            inc: number(inc)?,
            period: number(period)?,
            msn: number(msn)?,
            range: Some(range(off, len)?),
        }),
        (["c", ..], 1) => Ok(Serve::Clear { range: None }),
        (["c", off, len, ..], 3) => Ok(Serve::Clear {
            range: Some(range(off, len)?),
        }),
        (["k", until, ..], 2) => Ok(Serve::Key {
            until: number(until)?,
        }),
        _ => Err(CapError::Malformed),
    }
}

/// `<off>.<len>`, `<len>` being `-` for "to the end".
fn range(off: &str, len: &str) -> Result<ByteRange, CapError> {
    Ok(ByteRange {
        offset: number(off)?,
        length: if len == "-" { None } else { Some(number(len)?) },
    })
}

/// A canonical decimal u64: `0`, or digits without a leading zero, no sign,
/// no overflow.
fn number(text: &str) -> Result<u64, CapError> {
    let canonical = match text.as_bytes() {
        [] => false,
        [b'0'] => true,
        [b'0', ..] => false,
        digits => digits.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return Err(CapError::Malformed);
    }
    text.parse().map_err(|_| CapError::Malformed)
}
