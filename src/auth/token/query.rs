//! Reading and writing the `token` method's query parameters.
//!
//! Names are matched ASCII-case-insensitively on the raw name, like
//! [`crate::credentials`] strips them, so a parameter that is stripped is
//! also one that is checked. Values are percent-decoded once (`%XX` only: a
//! `+` stays a `+`, as in nginx `$arg_NAME`); a malformed `%` sequence is kept
//! literally. Nothing here can panic on any input.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// What [`encode`] escapes: everything but RFC 3986 unreserved characters,
/// so `&`, `=`, `+`, `%`, `#` and non-ASCII bytes never break the query.
const VALUE_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The raw value of the first occurrence of each of `names` in `query`
/// (no leading `?`). A parameter without `=` has the empty value.
pub(super) fn first_of<'q, const N: usize>(
    query: &'q str,
    names: [&str; N],
) -> [Option<&'q str>; N] {
    let mut found = [None; N];
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        for (slot, want) in found.iter_mut().zip(names) {
            if slot.is_none() && name.eq_ignore_ascii_case(want) {
                *slot = Some(value);
            }
        }
    }
    found
}

/// Percent-decode a raw value to bytes; borrows when there is no `%`.
pub(super) fn decode(raw: &str) -> Cow<'_, [u8]> {
    percent_decode_str(raw).into()
}

/// Percent-encode a value for a query string; [`decode`] inverts it.
pub(super) fn encode(value: &str) -> String {
    utf8_percent_encode(value, VALUE_ESCAPE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_occurrence_case_insensitive_and_bare_names() {
        let cases: [(&str, [Option<&str>; 2]); 7] = [
            ("", [None, None]),
            ("token=a", [Some("a"), None]),
            ("x=1&TOKEN=a&token=b", [Some("a"), None]),
            ("auth=u:p&token=t", [Some("t"), Some("u:p")]),
            ("token&auth=", [Some(""), Some("")]),
            ("tokens=a&xauth=b", [None, None]),
            ("token=a=b", [Some("a=b"), None]),
        ];
        for (q, want) in cases {
            assert_eq!(first_of(q, ["token", "auth"]), want, "{q:?}");
        }
    }

    #[test]
    fn decode_and_encode_round_trip() {
        assert_eq!(&*decode("a%20b+c"), b"a b+c");
        assert_eq!(&*decode("%zz%4"), b"%zz%4");
        assert_eq!(&*decode("%ff"), [0xff]);
        for v in ["plain", "a b&c=d+e%f#g", "ключ", "-._~"] {
            let enc = encode(v);
            assert!(!enc.contains(['&', '=', '+', ' ', '#']), "{enc}");
            assert_eq!(&*decode(&enc), v.as_bytes());
        }
        assert_eq!(encode("-._~"), "-._~");
    }
}
