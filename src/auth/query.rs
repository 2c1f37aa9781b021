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

/// The raw `name=value` pieces of `query`, split at `&` (empty pieces
/// included), like `query.split('&')`.
///
/// Scans bytes rather than using a `char` pattern: queries are a few dozen
/// bytes, where the searcher behind `split('&')` spends more on setting up
/// each search than on the scan (BENCHMARKS.md, "Playlist path"). `&` is
/// ASCII, so every split point is a char boundary.
pub fn split_pairs(query: &str) -> impl DoubleEndedIterator<Item = &str> {
    SplitAmp { rest: Some(query) }
}

/// `pair` split at its first `=` into name and value, like
/// `pair.split_once('=')` (a byte scan, for the reason of [`split_pairs`]).
pub fn split_name(pair: &str) -> Option<(&str, &str)> {
    let i = pair.bytes().position(|b| b == b'=')?;
    Some((pair.get(..i)?, pair.get(i + 1..)?))
}

/// The iterator behind [`split_pairs`]; `None` once the last piece is out.
struct SplitAmp<'q> {
    rest: Option<&'q str>,
}

impl<'q> Iterator for SplitAmp<'q> {
    type Item = &'q str;

    fn next(&mut self) -> Option<&'q str> {
        let rest = self.rest?;
        match rest.bytes().position(|b| b == b'&') {
            Some(i) => {
                self.rest = rest.get(i + 1..);
                rest.get(..i)
            }
            None => self.rest.take(),
        }
    }
}

impl<'q> DoubleEndedIterator for SplitAmp<'q> {
    fn next_back(&mut self) -> Option<&'q str> {
        let rest = self.rest?;
        match rest.bytes().rposition(|b| b == b'&') {
            Some(i) => {
                self.rest = rest.get(..i);
                rest.get(i + 1..)
            }
            None => self.rest.take(),
        }
    }
}

/// Every `(name, value)` of `query` (no leading `?`), raw, in order; a
/// parameter without `=` has the empty value. Reversible, for "last wins".
pub fn pairs(query: &str) -> impl DoubleEndedIterator<Item = (&str, &str)> {
    split_pairs(query).map(|pair| split_name(pair).unwrap_or((pair, "")))
}

/// nginx `$arg_NAME` (`ngx_http_arg`): the raw value of the first argument
/// whose name equals `name` ASCII case-insensitively. An argument without
/// `=` does not count (the search goes on past it).
pub fn arg<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    split_pairs(query).find_map(|pair| {
        let (k, v) = split_name(pair)?;
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
    fn split_name_is_split_once_at_equals() {
        for pair in ["", "=", "a", "a=", "=b", "a=b=c", "é=ü", "a%3D=b"] {
            assert_eq!(split_name(pair), pair.split_once('='), "{pair:?}");
        }
    }

    #[test]
    fn split_pairs_is_split_at_ampersand_both_ways() {
        let cases = ["", "&", "&&", "a", "a=1&b=2", "&a&", "é=ü&&ß", "x=%26&y"];
        for q in cases {
            let want: Vec<&str> = q.split('&').collect();
            assert_eq!(split_pairs(q).collect::<Vec<_>>(), want, "{q:?}");
            let want: Vec<&str> = q.split('&').rev().collect();
            assert_eq!(split_pairs(q).rev().collect::<Vec<_>>(), want, "{q:?}");
        }
        let mut both = split_pairs("a&b&c&d");
        assert_eq!(
            [both.next(), both.next_back(), both.next(), both.next_back()],
            [Some("a"), Some("d"), Some("b"), Some("c")]
        );
        assert_eq!((both.next(), both.next_back()), (None, None));
    }

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
