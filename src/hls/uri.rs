//! Decides whether a URI found in a playlist is the proxy's own and, if so,
//! which normalized proxy path its segment tag is bound to and what text the
//! rewritten playlist carries for it.
//!
//! Owns RFC 3986 reference resolution of the path part against the
//! playlist's path, the mapping of absolute origin URIs back to proxy paths
//! (docs/hls.md §6), `EXT-X-DEFINE` variable substitution for resolution,
//! and where the proxy's parameters go in a URI (after the query, before
//! the fragment). Must not sign anything or know about sessions. Anything it
//! cannot resolve is [`Target::Foreign`]: left alone, never given a
//! capability.

use std::borrow::Cow;

use crate::path::{encode_for_origin, normalize};

use super::OriginBase;

/// What a playlist URI is to the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    /// Served by this proxy.
    Own {
        /// The normalized, decoded proxy path (no query), as the request
        /// handler computes it; the segment tag is bound to it.
        path: String,
        /// The URI text to write, up to its fragment: the original text, or
        /// the proxy path + query of an absolute origin URI.
        head: Cow<'a, str>,
        /// The fragment (`#…`) to write after the parameters, or "".
        fragment: &'a str,
        /// Whether the parameters join an existing query: `Some(true)` after
        /// a query that ends in `?` or `&`, `Some(false)` after any other
        /// query, `None` when there is no query.
        query: Option<bool>,
    },
    /// Another host or scheme, `data:`, `skd://`, or not resolvable: copied
    /// byte for byte, no parameters.
    Foreign,
}

/// `EXT-X-DEFINE` variables with a `VALUE` in this playlist.
pub(crate) type Defines = Vec<(String, String)>;

/// Resolves the URIs of one playlist.
pub(crate) struct Resolver<'a> {
    /// The playlist's directory, percent-encoded, ending in `/`.
    base_dir: String,
    /// The playlist's own path, percent-encoded (target of a ref with an
    /// empty path).
    base: String,
    origin: OriginBase<'a>,
    /// The origin's base path without a trailing `/` ("" for none).
    origin_base: &'a str,
    defines: Defines,
}

impl<'a> Resolver<'a> {
    /// A resolver for the playlist at the normalized proxy path
    /// `playlist_path`.
    pub fn new(playlist_path: &str, origin: OriginBase<'a>, defines: Defines) -> Self {
        // The playlist path is decoded; re-encoding it lets `normalize`
        // decode the merged path exactly once (a `%` in a directory name
        // stays a `%`).
        let base = encode_for_origin(playlist_path);
        let dir_end = base.rfind('/').map_or(0, |i| i + 1);
        Resolver {
            base_dir: base.get(..dir_end).unwrap_or_default().to_owned(),
            base,
            origin,
            origin_base: origin.base_path.trim_end_matches('/'),
            defines,
        }
    }

    /// Resolves the raw URI text `raw` (quotes and blanks already removed).
    pub fn resolve<'r>(&self, raw: &'r [u8]) -> Target<'r> {
        let Ok(raw) = std::str::from_utf8(raw) else {
            return Target::Foreign;
        };
        if raw.is_empty() {
            return Target::Foreign;
        }
        let (raw_head, fragment) = split_at_char(raw, '#');
        let subst = self.substitute(raw_head);
        let (ref_path, ref_query) = split_at_char(&subst, '?');
        if ref_path.contains("{$") {
            // A variable this playlist does not define (IMPORT, QUERYPARAM):
            // its value, hence the path, is unknown here.
            return Target::Foreign;
        }
        let query = query_state(ref_query);
        if let Some(rest) = absolute_rest(ref_path) {
            return match self.origin_path(rest) {
                Some(path) => {
                    let head = format!("{}{}", encode_for_origin(&path), ref_query);
                    Target::Own {
                        path,
                        head: Cow::Owned(head),
                        fragment,
                        query,
                    }
                }
                None => Target::Foreign,
            };
        }
        let merged = if ref_path.starts_with('/') {
            Cow::Borrowed(ref_path)
        } else if ref_path.is_empty() {
            Cow::Borrowed(self.base.as_str())
        } else {
            Cow::Owned(format!("{}{}", self.base_dir, ref_path))
        };
        match normalize(&merged, usize::MAX) {
            Ok(path) => Target::Own {
                path,
                head: Cow::Borrowed(raw_head),
                fragment,
                query,
            },
            Err(_) => Target::Foreign,
        }
    }

    /// The proxy path of an absolute URI (`rest` = what follows the scheme's
    /// `:`), when it points into the origin under its base path.
    fn origin_path(&self, rest: AbsoluteRest<'_>) -> Option<String> {
        let origin = &self.origin;
        let scheme_ok = rest
            .scheme
            .is_none_or(|s| s.eq_ignore_ascii_case(origin.scheme));
        if !scheme_ok || !same_authority(rest.authority?, origin.authority, origin.scheme) {
            return None;
        }
        let path = if rest.path.is_empty() { "/" } else { rest.path };
        let path = normalize(path, usize::MAX).ok()?;
        if self.origin_base.is_empty() {
            return Some(path);
        }
        let below = path.strip_prefix(self.origin_base)?;
        match below {
            "" => Some("/".to_owned()),
            b if b.starts_with('/') => Some(b.to_owned()),
            _ => None,
        }
    }

    /// `text` with every `{$name}` this playlist defines replaced.
    fn substitute<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if self.defines.is_empty() || !text.contains("{$") {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find("{$") {
            let (before, from) = rest.split_at(open);
            out.push_str(before);
            let name_end = from.find('}');
            let value = name_end.and_then(|end| {
                let name = from.get(2..end)?;
                self.defines.iter().find(|(n, _)| n == name).map(|(_, v)| v)
            });
            match (value, name_end) {
                (Some(v), Some(end)) => {
                    out.push_str(v);
                    rest = from.get(end + 1..).unwrap_or_default();
                }
                _ => {
                    out.push_str("{$");
                    rest = from.get(2..).unwrap_or_default();
                }
            }
        }
        out.push_str(rest);
        Cow::Owned(out)
    }
}

/// An absolute URI or network-path reference, split after its scheme.
struct AbsoluteRest<'a> {
    /// None for a network-path reference (`//host/…`).
    scheme: Option<&'a str>,
    /// None when there is no `//authority` (`data:`, `urn:…`).
    authority: Option<&'a str>,
    path: &'a str,
}

/// Splits an absolute URI (`scheme:…`) or a network-path reference
/// (`//…`); None for a relative reference. `s` has no query or fragment.
fn absolute_rest(s: &str) -> Option<AbsoluteRest<'_>> {
    let (scheme, hier) = match scheme_end(s) {
        Some(colon) => (s.get(..colon), s.get(colon + 1..).unwrap_or_default()),
        None if s.starts_with("//") => (None, s),
        None => return None,
    };
    let (authority, path) = match hier.strip_prefix("//") {
        Some(a) => {
            let end = a.find('/').unwrap_or(a.len());
            (a.get(..end), a.get(end..).unwrap_or_default())
        }
        None => (None, hier),
    };
    Some(AbsoluteRest {
        scheme,
        authority,
        path,
    })
}

/// The index of the `:` ending a URI scheme (RFC 3986 §3.1:
/// `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`), if `s` starts with one.
fn scheme_end(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    if !bytes.first()?.is_ascii_alphabetic() {
        return None;
    }
    let end = bytes
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.'))?;
    (bytes.get(end) == Some(&b':')).then_some(end)
}

/// Authorities compare case-insensitively, with the scheme's default port
/// (or an empty port) equal to no port.
fn same_authority(a: &str, b: &str, scheme: &str) -> bool {
    let default = if scheme.eq_ignore_ascii_case("https") {
        ":443"
    } else if scheme.eq_ignore_ascii_case("http") {
        ":80"
    } else {
        ""
    };
    let strip = |s: &'_ str| -> String {
        let s = s.to_ascii_lowercase();
        let s = s.strip_suffix(':').unwrap_or(&s);
        match (default.is_empty(), s.strip_suffix(default)) {
            (false, Some(host)) => host.to_owned(),
            _ => s.to_owned(),
        }
    };
    strip(a) == strip(b)
}

/// `s` split before the first `c` (the second half keeps `c`).
fn split_at_char(s: &str, c: char) -> (&str, &str) {
    s.split_at(s.find(c).unwrap_or(s.len()))
}

fn query_state(query: &str) -> Option<bool> {
    if query.is_empty() {
        None
    } else {
        Some(query.ends_with('?') || query.ends_with('&'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: OriginBase<'static> = OriginBase {
        scheme: "http",
        authority: "Origin.example:8081",
        base_path: "/base",
    };

    fn own(path: &str, head: &str, fragment: &'static str, query: Option<bool>) -> Target<'static> {
        Target::Own {
            path: path.to_owned(),
            head: Cow::Owned(head.to_owned()),
            fragment,
            query,
        }
    }

    #[test]
    fn resolve_table() {
        let defines = vec![
            ("dir".to_owned(), "hd".to_owned()),
            ("q".to_owned(), "a=1".to_owned()),
        ];
        let r = Resolver::new("/live/ch 1/index.m3u8", ORIGIN, defines);
        let cases: &[(&str, Target<'static>)] = &[
            ("seg1.ts", own("/live/ch 1/seg1.ts", "seg1.ts", "", None)),
            (
                "a/../b.ts?x=1#t=2",
                own("/live/ch 1/b.ts", "a/../b.ts?x=1", "#t=2", Some(false)),
            ),
            (
                "../ch2/i.m3u8",
                own("/live/ch2/i.m3u8", "../ch2/i.m3u8", "", None),
            ),
            ("%2e%2e/x.ts", own("/live/x.ts", "%2e%2e/x.ts", "", None)),
            ("/abs/x.ts?", own("/abs/x.ts", "/abs/x.ts?", "", Some(true))),
            ("s%20p.ts", own("/live/ch 1/s p.ts", "s%20p.ts", "", None)),
            (
                "{$dir}/s.ts?{$q}",
                own("/live/ch 1/hd/s.ts", "{$dir}/s.ts?{$q}", "", Some(false)),
            ),
            (
                "?only",
                own("/live/ch 1/index.m3u8", "?only", "", Some(false)),
            ),
            (
                "http://origin.example:8081/base/live/x.ts?k=v",
                own("/live/x.ts", "/live/x.ts?k=v", "", Some(false)),
            ),
            ("HTTP://ORIGIN.EXAMPLE:8081/base", own("/", "/", "", None)),
            (
                "//origin.example:8081/base/a%20b.ts#f",
                own("/a b.ts", "/a%20b.ts", "#f", None),
            ),
            ("http://origin.example:8081/basement/x.ts", Target::Foreign),
            ("http://origin.example:8081/x.ts", Target::Foreign),
            ("https://origin.example:8081/base/x.ts", Target::Foreign),
            ("http://other.example/base/x.ts", Target::Foreign),
            ("data:text/plain,hi", Target::Foreign),
            ("skd://key-id", Target::Foreign),
            ("../../../etc/passwd", Target::Foreign),
            ("a\\b.ts", Target::Foreign),
            ("{$undefined}/s.ts", Target::Foreign),
            ("", Target::Foreign),
        ];
        for (raw, want) in cases {
            assert_eq!(&r.resolve(raw.as_bytes()), want, "{raw:?}");
        }
        assert_eq!(r.resolve(b"\xff.ts"), Target::Foreign);
    }

    #[test]
    fn default_ports_and_empty_base() {
        let o = OriginBase {
            scheme: "https",
            authority: "cdn.example",
            base_path: "",
        };
        let r = Resolver::new("/index.m3u8", o, Vec::new());
        for raw in [
            "https://cdn.example:443/x.ts",
            "https://CDN.example:/x.ts",
            "https://cdn.example/x.ts",
        ] {
            assert_eq!(
                r.resolve(raw.as_bytes()),
                own("/x.ts", "/x.ts", "", None),
                "{raw}"
            );
        }
        assert_eq!(r.resolve(b"https://cdn.example:8443/x.ts"), Target::Foreign);
        assert_eq!(r.resolve(b"x.ts"), own("/x.ts", "x.ts", "", None));
    }
}
