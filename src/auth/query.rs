//! Reading (and, for `sign`, writing) query strings: the one place the
//! schemes split `name=value` pairs, look a parameter up and percent-decode
//! a value.
//!
//! The schemes mirror different software, so lookup comes in the variants
//! they need, each named for its rule, never chosen by a flag:
//!
//! | function        | occurrence | name match             | `name` without `=` |
//! |-----------------|------------|------------------------|--------------------|
//! | [`arg`]         | first      | ASCII case-insensitive | skipped (nginx)    |
//! | [`param`]       | first      | ASCII case-insensitive | empty value        |
//! | [`param_exact`] | first      | byte for byte          | empty value        |
//! | [`pairs`]       | all, in order          | (none)                 | empty value        |
//!
//! Values are returned raw; [`percent_decode`] decodes `%XX` only (a `+`
//! stays a `+`, a malformed `%` sequence is kept literally). Akamai's
//! escape-early fields are the one place `+` means a space; that scheme
//! replaces it itself before calling [`percent_decode`].
//!
//! Pure functions: no I/O, no allocation except [`percent_encode`] and a
//! decoded value that really holds escapes; nothing here panics on any input.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// What [`percent_encode`] escapes: everything but RFC 3986 unreserved
/// characters, so `&`, `=`, `+`, `%`, `#` and non-ASCII bytes never break
/// the query.
const VALUE_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Every `(name, value)` of `query` (no leading `?`), raw, in order; a
/// parameter without `=` has the empty value. Reversible, for "last wins".
pub fn pairs(query: &str) -> impl DoubleEndedIterator<Item = (&str, &str)> {
    query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// nginx `$arg_NAME` (`ngx_http_arg`): the raw value of the first argument
/// whose name equals `name` ASCII case-insensitively. An argument without
/// `=` does not count (the search goes on past it).
pub fn arg<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.eq_ignore_ascii_case(name).then_some(v)
    })
}

/// The raw value of the first parameter whose name equals `name` ASCII
/// case-insensitively (as [`crate::credentials`] strips them); `""` for a
/// bare `name`.
pub fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    pairs(query).find_map(|(k, v)| k.eq_ignore_ascii_case(name).then_some(v))
}

/// The raw value of the first parameter named exactly `name` (byte for
/// byte); `""` for a bare `name`.
pub fn param_exact<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    pairs(query).find_map(|(k, v)| (k == name).then_some(v))
}

/// Percent-decode a raw value to bytes, `%XX` only; borrows when there is
/// no `%`.
pub fn percent_decode(raw: &str) -> Cow<'_, [u8]> {
    percent_decode_str(raw).into()
}

/// Percent-encode a value for a query string; [`percent_decode`] inverts it.
pub fn percent_encode(value: &str) -> String {
    utf8_percent_encode(value, VALUE_ESCAPE).to_string()
}

/// A parameter name (or prefix) that can be written into a link as is:
/// letters, digits, `_`, `-`, `.`, not empty.
pub fn is_param_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arg_table() {
        let q = "foo=bar&MD5=abc&md5=def&flag&e=&x=1=2";
        assert_eq!(arg(q, "md5"), Some("abc"));
        assert_eq!(arg(q, "foo"), Some("bar"));
        assert_eq!(arg(q, "flag"), None);
        assert_eq!(arg(q, "e"), Some(""));
        assert_eq!(arg(q, "x"), Some("1=2"));
        assert_eq!(arg(q, "fo"), None);
        assert_eq!(arg("", "md5"), None);
        assert_eq!(arg("a=%5F", "a"), Some("%5F"));
    }

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
            assert_eq!([param(q, "token"), param(q, "auth")], want, "{q:?}");
        }
    }

    #[test]
    fn the_lookups_differ_only_where_documented() {
        let q = "flag&FLAG=x&Tok=1&tok=2&tok=3";
        assert_eq!(arg(q, "flag"), Some("x"));
        assert_eq!(param(q, "flag"), Some(""));
        assert_eq!(param_exact(q, "FLAG"), Some("x"));
        assert_eq!(param(q, "tok"), Some("1"));
        assert_eq!(param_exact(q, "tok"), Some("2"));
        assert_eq!(param_exact(q, "TOK"), None);
        let last = pairs(q).rev().find(|&(k, _)| k == "tok");
        assert_eq!(last, Some(("tok", "3")));
        assert_eq!(pairs("").collect::<Vec<_>>(), [("", "")]);
    }

    #[test]
    fn decode_and_encode_round_trip() {
        assert_eq!(&*percent_decode("a%20b+c"), b"a b+c");
        assert_eq!(&*percent_decode("%zz%4"), b"%zz%4");
        assert_eq!(&*percent_decode("%ff"), [0xff]);
        for v in ["plain", "a b&c=d+e%f#g", "ключ", "-._~"] {
            let enc = percent_encode(v);
            assert!(!enc.contains(['&', '=', '+', ' ', '#']), "{enc}");
            assert_eq!(&*percent_decode(&enc), v.as_bytes());
        }
        assert_eq!(percent_encode("-._~"), "-._~");
    }

    #[test]
    fn param_names() {
        for good in ["wmsAuthSign", "wowzatoken", "a.b-c_d", "0"] {
            assert!(is_param_name(good), "{good:?}");
        }
        for bad in ["", "a b", "a=b", "a&b", "a%62", "ключ", "a#"] {
            assert!(!is_param_name(bad), "{bad:?}");
        }
    }
}
