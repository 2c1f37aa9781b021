//! The key URI's format (docs/hls.md §8):
//! `/.tollgate/key/<route>/<channel>/<inc>/<period>.key`, one URI per key.
//! Pure: the rewriter writes these paths, the endpoint parses them.

use bytes::Bytes;

use crate::error::ProxyError;

/// Reserved path prefix of key URIs; never forwarded to an origin.
pub const PREFIX: &str = "/.tollgate/key/";

/// A parsed key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath<'a> {
    /// Route name.
    pub route: &'a str,
    /// Channel name (decoded, as the router names it).
    pub channel: &'a str,
    /// Stream incarnation.
    pub inc: u64,
    /// Key period.
    pub period: u64,
}

/// Parse a normalized request path under [`PREFIX`]; anything malformed is
/// `None` (the caller answers 404, like any unknown path).
pub fn parse(path: &str) -> Option<KeyPath<'_>> {
    let rest = path.strip_prefix(PREFIX)?;
    let mut parts = rest.split('/');
    let route = parts.next().filter(|s| !s.is_empty())?;
    let channel = parts.next().filter(|s| !s.is_empty())?;
    let inc = canonical_u64(parts.next()?)?;
    let period = canonical_u64(parts.next()?.strip_suffix(".key")?)?;
    if parts.next().is_some() {
        return None;
    }
    Some(KeyPath {
        route,
        channel,
        inc,
        period,
    })
}

/// A decimal number with no sign and no leading zeros: one key, one URI.
fn canonical_u64(text: &str) -> Option<u64> {
    if text.is_empty() || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The body of a key answer.
pub fn body(key: [u8; 16]) -> Bytes {
    Bytes::copy_from_slice(&key)
}

/// Not a key path at all, or a malformed one.
pub fn not_found() -> ProxyError {
    ProxyError::NoRoute
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_uri_the_rewriter_writes() {
        assert_eq!(
            parse("/.tollgate/key/live/ch1/123456/7.key"),
            Some(KeyPath {
                route: "live",
                channel: "ch1",
                inc: 123_456,
                period: 7
            })
        );
        for bad in [
            "/.tollgate/key/live/ch1/1/7",
            "/.tollgate/key/live/ch1/01/7.key",
            "/.tollgate/key/live/ch1/1/+7.key",
            "/.tollgate/key/live/ch1/1/7.key/x",
            "/.tollgate/key/live//1/7.key",
            "/.tollgate/key/live/ch1/1",
            "/.tollgate/key/",
            "/live/ch1/1/7.key",
            "/.tollgate/key/live/ch1/99999999999999999999/7.key",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(body([7; 16]).len(), 16);
    }
}
