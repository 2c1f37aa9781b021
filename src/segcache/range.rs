//! `Range:` request headers over an encrypted segment (RFC 9110 §14).
//!
//! Only a single `bytes=` range is honoured; anything else (several ranges,
//! another unit, bad syntax, an unknown total length) is answered with the
//! whole body, which RFC 9110 allows a server to do for any range request.

use http::HeaderValue;

/// What to answer to a `Range:` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Ignore the header: 200 with the whole body.
    Full,
    /// 206 with bytes `start..=end` (inclusive, `start <= end < total`).
    Partial(u64, u64),
    /// 416: the range starts at or after the end of the body.
    Unsatisfiable,
}

/// Interpret `header` against a body of `total` bytes.
///
/// Accepts `bytes=a-b`, the open form `bytes=a-` and the suffix form
/// `bytes=-n`; an end past the body is clamped to its last byte. A start at
/// or past the end, or a zero-length suffix, is [`RangeAnswer::Unsatisfiable`].
/// With `total` unknown, or for anything else, the answer is
/// [`RangeAnswer::Full`].
pub fn parse_range(header: &HeaderValue, total: Option<u64>) -> RangeAnswer {
    let Some(total) = total else {
        return RangeAnswer::Full;
    };
    let Ok(text) = header.to_str() else {
        return RangeAnswer::Full;
    };
    let Some((unit, spec)) = text.trim().split_once('=') else {
        return RangeAnswer::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    match (number(first), number(last)) {
        // bytes=-n: the last n bytes.
        (None, Some(n)) if first.is_empty() => {
            if n == 0 || total == 0 {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Partial(total - n.min(total), total - 1)
            }
        }
        // bytes=a-: from a to the end.
        (Some(a), None) if last.is_empty() => within(a, u64::MAX, total),
        (Some(a), Some(b)) if a <= b => within(a, b, total),
        _ => RangeAnswer::Full,
    }
}

/// `a..=b` clamped to a body of `total` bytes.
fn within(a: u64, b: u64, total: u64) -> RangeAnswer {
    if a >= total {
        RangeAnswer::Unsatisfiable
    } else {
        RangeAnswer::Partial(a, b.min(total - 1))
    }
}

/// A non-empty run of ASCII digits that fits a `u64` (no sign, no spaces).
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeAnswer::{Full, Partial, Unsatisfiable};

    #[test]
    fn table() {
        let cases: &[(&str, Option<u64>, RangeAnswer)] = &[
            ("bytes=0-99", Some(1000), Partial(0, 99)),
            ("bytes=0-0", Some(1000), Partial(0, 0)),
            ("bytes=10-2000", Some(1000), Partial(10, 999)),
            ("bytes=999-999", Some(1000), Partial(999, 999)),
            ("bytes=500-", Some(1000), Partial(500, 999)),
            ("bytes=0-", Some(1000), Partial(0, 999)),
            ("bytes=-100", Some(1000), Partial(900, 999)),
            ("bytes=-5000", Some(1000), Partial(0, 999)),
            ("BYTES=1-2", Some(1000), Partial(1, 2)),
            (" bytes = 1-2 ", Some(1000), Partial(1, 2)),
            ("bytes=1000-", Some(1000), Unsatisfiable),
            ("bytes=1000-1001", Some(1000), Unsatisfiable),
            ("bytes=-0", Some(1000), Unsatisfiable),
            ("bytes=0-", Some(0), Unsatisfiable),
            ("bytes=-1", Some(0), Unsatisfiable),
            // Unknown total: always the whole body.
            ("bytes=0-99", None, Full),
            ("bytes=-1", None, Full),
            // Several ranges, other units, bad syntax.
            ("bytes=0-1,5-6", Some(1000), Full),
            ("items=0-1", Some(1000), Full),
            ("bytes=5-1", Some(1000), Full),
            ("bytes=-", Some(1000), Full),
            ("bytes=a-b", Some(1000), Full),
            ("bytes=+1-2", Some(1000), Full),
            ("bytes=1 - 2", Some(1000), Full),
            ("bytes=0-99999999999999999999999", Some(1000), Full),
            ("bytes 0-1", Some(1000), Full),
            ("", Some(1000), Full),
        ];
        assert!(!cases.is_empty());
        for &(text, total, want) in cases {
            let header = HeaderValue::from_str(text).unwrap();
            assert_eq!(
                parse_range(&header, total),
                want,
                "{text:?} total={total:?}"
            );
        }
    }

    #[test]
    fn non_ascii_header_is_full() {
        let header = HeaderValue::from_bytes(b"bytes=0-1\xff").unwrap();
        assert_eq!(parse_range(&header, Some(10)), Full);
    }
}
