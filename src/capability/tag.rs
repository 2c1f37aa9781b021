//! The segment tag (`tgs`, docs/hls.md §5): how one URI is served, signed
//! for one route, channel, normalized proxy path and origin query, the
//! same for every session.
//!
//! ```text
//! tgs  = <body>.<tag>
//! body = e.<inc>.<period>.<msn>[.<off>.<len>] | c[.<off>.<len>] | k.<until>
//! tag  = base64url_nopad(HMAC-SHA256(K_tag, route ‖ 0 ‖ channel ‖ 0 ‖ path ‖ 0 ‖ body [‖ 0 ‖ query])[0..12])
//! ```
//!
//! `query` is the URI's own query as the origin's playlist wrote it
//! ([`origin_query_of`]), absent when empty (so a URI without one has the
//! tag it always had). On a request it is everything before the proxy's
//! first own parameter ([`signed_query`]): the rewriter writes the
//! capability and the tag after the origin's query, so parameters a viewer
//! appends are outside it. Those are dropped, never forwarded, and never
//! part of a cache key; a changed signed parameter fails the MAC.
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
    /// The whole `tgs` value for serving `path` (without a query) of
    /// (`route`, `channel`) as `serve` says.
    pub fn sign_tag(&self, route: &str, channel: &str, path: &str, serve: &Serve) -> String {
        self.sign_tag_with_query(route, channel, path, "", serve)
    }

    /// [`MasterKeys::sign_tag`] for `path?query` (`query` as
    /// [`origin_query_of`] gives it; `""` for none).
    pub fn sign_tag_with_query(
        &self,
        route: &str,
        channel: &str,
        path: &str,
        query: &str,
        serve: &Serve,
    ) -> String {
        let mut out = serve.to_string();
        let mac: [u8; TAG_MAC_LEN] = prefix(&self.tag_mac(route, channel, path, &out, query));
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
        self.verify_tag_with_query(value, route, channel, path, "")
    }

    /// [`MasterKeys::verify_tag`] for `path?query` (`query` as
    /// [`signed_query`] gives it).
    pub fn verify_tag_with_query(
        &self,
        value: &str,
        route: &str,
        channel: &str,
        path: &str,
        query: &str,
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
        let want: [u8; TAG_MAC_LEN] = prefix(&self.tag_mac(route, channel, path, body, query));
        if !bool::from(want.as_slice().ct_eq(given)) {
            return Err(CapError::BadSignature);
        }
        Ok(serve)
    }

    /// `HMAC(K_tag, route ‖ 0 ‖ channel ‖ 0 ‖ path ‖ 0 ‖ body [‖ 0 ‖ query])`
    /// (a body never holds a 0 byte, so the two forms cannot collide).
    fn tag_mac(&self, route: &str, channel: &str, path: &str, body: &str, query: &str) -> [u8; 32] {
        let mut m = self.tag.clone();
        for part in [route, channel, path] {
            m.update(part.as_bytes());
            m.update(&[0]);
        }
        m.update(body.as_bytes());
        if !query.is_empty() {
            m.update(&[0]);
            m.update(query.as_bytes());
        }
        finish(m)
    }
}

/// The query a tag signs for a playlist URI whose query part (from its `?`
/// on, before any fragment) is `ref_query`: without the `?` and without
/// one trailing `&` (the rewriter's parameters follow it directly).
pub fn origin_query_of(ref_query: &str) -> &str {
    let q = ref_query.strip_prefix('?').unwrap_or(ref_query);
    q.strip_suffix('&').unwrap_or(q)
}

/// The signed part of a request's query: the raw text before the first
/// parameter named exactly `cap_param` or `tag_param`, without the `&`
/// that separates them. Parameters after it are the viewer's own.
pub fn signed_query<'q>(query: &'q str, cap_param: &str, tag_param: &str) -> &'q str {
    let mut at = 0;
    for pair in crate::auth::query::split_pairs(query) {
        let name = crate::auth::query::split_name(pair).map_or(pair, |(n, _)| n);
        if name == cap_param || name == tag_param {
            let before = query.get(..at).unwrap_or_default();
            return before.strip_suffix('&').unwrap_or(before);
        }
        at += pair.len() + 1;
    }
    query
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

#[cfg(test)]
mod query_tests {
    use super::*;

    /// What the rewriter writes after a URI's query (see `hls::compile`):
    /// `?tg=` without one, `tg=` after one ending in `?` or `&`, else `&tg=`.
    fn rewritten(ref_query: &str) -> String {
        let sep = match ref_query {
            "" => "?",
            q if q.ends_with('?') || q.ends_with('&') => "",
            _ => "&",
        };
        format!("{ref_query}{sep}tg=CAP&tgs=TAG")
    }

    #[test]
    fn request_side_finds_what_the_playlist_side_signed() {
        let cases = [
            "",
            "?",
            "?a=1",
            "?a=1&",
            "?a=1&b=x%26y",
            "?a&b=",
            "?a=1&&",
            "?tgx=1",
        ];
        assert!(!cases.is_empty());
        for ref_query in cases {
            let signed = origin_query_of(ref_query);
            let url_query = rewritten(ref_query);
            let url_query = url_query.strip_prefix('?').unwrap_or(&url_query);
            assert_eq!(
                signed_query(url_query, "tg", "tgs"),
                signed,
                "{ref_query:?}"
            );
            // A viewer's additions after the proxy's parameters are not signed.
            let added = format!("{url_query}&cb=1&tg=x");
            assert_eq!(signed_query(&added, "tg", "tgs"), signed, "{ref_query:?}");
        }
        // Before them, they are: and so they break the MAC.
        assert_eq!(signed_query("cb=1&a=1&tg=C&tgs=T", "tg", "tgs"), "cb=1&a=1");
        // No capability (an IP-allowed viewer): up to the tag.
        assert_eq!(signed_query("a=1&tgs=T&cb=2", "tg", "tgs"), "a=1");
        assert_eq!(signed_query("a=1", "tg", "tgs"), "a=1");
    }

    #[test]
    fn the_query_is_signed() {
        let k = MasterKeys::new(&[9; 32]);
        let serve = Serve::Clear { range: None };
        let plain = k.sign_tag("live", "ch1", "/live/ch1/a.ts", &serve);
        assert_eq!(
            plain,
            k.sign_tag_with_query("live", "ch1", "/live/ch1/a.ts", "", &serve)
        );
        let with = k.sign_tag_with_query("live", "ch1", "/live/ch1/a.ts", "o=1", &serve);
        assert_ne!(plain, with);
        let verify =
            |tag: &str, q: &str| k.verify_tag_with_query(tag, "live", "ch1", "/live/ch1/a.ts", q);
        assert_eq!(verify(&with, "o=1"), Ok(serve));
        assert_eq!(verify(&with, "o=2"), Err(CapError::BadSignature));
        assert_eq!(verify(&with, ""), Err(CapError::BadSignature));
        assert_eq!(verify(&plain, "o=1"), Err(CapError::BadSignature));
    }
}
