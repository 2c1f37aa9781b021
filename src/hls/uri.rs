//! Decides whether a URI found in a playlist is the proxy's own and, if so,
//! which normalized proxy path its segment tag is bound to and what text the
//! rewritten playlist carries for it.
//!
//! Owns RFC 3986 reference resolution of the path part against the
//! playlist's path, the mapping of absolute origin URIs back to proxy paths
//! (docs/hls.md §6), `EXT-X-DEFINE` variable substitution for resolution,
//! and where the proxy's parameters go in a URI (after the query, before
//! the fragment). Must not sign anything or know about sessions. Anything it
//! cannot resolve, and any text a player could read differently
//! ([`super::hostile_uris`]), is [`Target::Foreign`]: left alone, never given
//! a capability.

use std::borrow::Cow;

use crate::path::{encode_canonical, normalize};

use super::OriginBase;
use super::hostile_uris::is_hostile;

/// What a playlist URI is to the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// Served by this proxy.
    Own {
        /// The normalized, decoded proxy path (no query), as the request
        /// handler computes it; the segment tag is bound to it.
        path: String,
        /// What to write instead of the URI text before its fragment (the
        /// proxy path + query of an absolute origin URI); None: that text
        /// as it is.
        rewritten: Option<String>,
        /// Where the fragment (`#…`, written after the parameters) starts
        /// in the raw text; its length when there is none.
        fragment_at: usize,
        /// Whether the parameters join an existing query: `Some(true)` after
        /// a query that is only `?` or ends in `&`, `Some(false)` after any other
        /// query, `None` when there is no query.
        query: Option<bool>,
        /// The query the segment tag signs (variables substituted, as the
        /// player will send it; see `capability::origin_query_of`); `None`
        /// when it is empty.
        signed_query: Option<String>,
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
    /// Whether `base_dir` is a path `normalize` keeps as it is.
    base_dir_canonical: bool,
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
        let base = encode_canonical(playlist_path);
        let dir_end = base.rfind('/').map_or(0, |i| i + 1);
        let base_dir = base.get(..dir_end).unwrap_or_default().to_owned();
        Resolver {
            base_dir_canonical: plainly_canonical(&base_dir),
            base_dir,
            base,
            origin,
            origin_base: origin.base_path.trim_end_matches('/'),
            defines,
        }
    }

    /// Resolves the raw URI text `raw` (quotes and blanks already removed).
    /// `buf` is where the path is built: pass the path of an earlier target
    /// back in to save an allocation per URI.
    pub fn resolve(&self, raw: &[u8], buf: String) -> Target {
        let Ok(raw) = std::str::from_utf8(raw) else {
            return Target::Foreign;
        };
        if raw.is_empty() || is_hostile(raw) {
            return Target::Foreign;
        }
        let first = Shape::of(raw);
        let fragment_at = first.fragment_at;
        let raw_head = raw.get(..fragment_at).unwrap_or_default();
        // Variables are rare: only a `{` costs a second look.
        let (subst, shape) = if first.brace {
            let subst = self.substitute(raw_head);
            if is_hostile(&subst) {
                return Target::Foreign;
            }
            let shape = Shape::of(&subst);
            (subst, shape)
        } else {
            (Cow::Borrowed(raw_head), first)
        };
        let (ref_path, ref_query) = subst.split_at(shape.query_at.unwrap_or(subst.len()));
        if shape.brace && has_variable(ref_path) {
            // A variable this playlist does not define (IMPORT, QUERYPARAM):
            // its value, hence the path, is unknown here.
            return Target::Foreign;
        }
        let query = query_state(ref_query);
        let signed_query = Some(crate::capability::origin_query_of(ref_query))
            .filter(|q| !q.is_empty())
            .map(str::to_owned);
        // A `:` before any `/` that does not end a scheme is no relative
        // reference either (RFC 3986 §4.2); some players take it for one.
        let absolute = shape.scheme_colon || ref_path.starts_with("//");
        if absolute {
            return match absolute_rest(ref_path).and_then(|rest| self.origin_path(rest)) {
                Some(path) => {
                    let mut head = encode_canonical(&path);
                    head.push_str(ref_query);
                    Target::Own {
                        path,
                        rewritten: Some(head),
                        fragment_at,
                        query,
                        signed_query,
                    }
                }
                None => Target::Foreign,
            };
        }
        let mut merged = buf;
        merged.clear();
        let canonical = if ref_path.starts_with('/') {
            merged.push_str(ref_path);
            !shape.unclean
        } else if ref_path.is_empty() {
            merged.push_str(&self.base);
            false
        } else {
            merged.push_str(&self.base_dir);
            merged.push_str(ref_path);
            let lead = matches!(ref_path.as_bytes().first(), Some(b'/' | b'.'));
            self.base_dir_canonical && !shape.unclean && !lead
        };
        let path = if canonical {
            merged
        } else {
            match normalize(&merged, usize::MAX) {
                Ok(path) => path,
                Err(_) => return Target::Foreign,
            }
        };
        Target::Own {
            path,
            rewritten: None,
            fragment_at,
            query,
            signed_query,
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
        if self.defines.is_empty() || !has_variable(text) {
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

/// Where the parts of a URI start, and what its path part holds.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// The first `#`, or the length.
    fragment_at: usize,
    /// The first `?` before `fragment_at`.
    query_at: Option<usize>,
    /// Whether the path part has a `:` before any `/`: a scheme may end
    /// there.
    scheme_colon: bool,
    /// Whether there is a `{` (perhaps a variable) before `fragment_at`.
    brace: bool,
    /// Whether the path part (before `query_at` and `fragment_at`) holds a
    /// byte or pair that `normalize` must look at: `%`, `\\`, a control
    /// byte, a non-ASCII byte, `//`, `/.` or ` .`.
    unclean: bool,
}

/// Bytes [`Shape::of`] must look at; every other byte only moves it on.
const NOTABLE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = matches!(
            b as u8,
            b'#' | b'?' | b':' | b'/' | b'.' | b'{' | b'%' | b'\\' | 0..0x20 | 0x7f..=0xff
        );
        b += 1;
    }
    table
};

impl Shape {
    /// One pass over the bytes, which runs once per URI: a table lookup per
    /// byte, and a branch only for the few bytes that matter.
    fn of(s: &str) -> Shape {
        let mut shape = Shape {
            fragment_at: s.len(),
            query_at: None,
            scheme_colon: false,
            brace: false,
            unclean: false,
        };
        let (mut in_path, mut slash_seen, mut prev) = (true, false, 0u8);
        for (i, c) in s.bytes().enumerate() {
            if !NOTABLE.get(usize::from(c)).copied().unwrap_or(true) {
                prev = c;
                continue;
            }
            match c {
                b'#' => {
                    shape.fragment_at = i;
                    break;
                }
                b'?' if in_path => {
                    shape.query_at = Some(i);
                    in_path = false;
                }
                b'{' => shape.brace = true,
                _ if !in_path => {}
                b':' => shape.scheme_colon |= !slash_seen,
                b'/' | b'.' => {
                    shape.unclean |= prev == b'/' || (c == b'.' && prev == b' ');
                    slash_seen |= c == b'/';
                }
                // `%`, `\\`, control and non-ASCII bytes.
                _ => shape.unclean = true,
            }
            prev = c;
        }
        shape
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

/// Whether `s` holds a variable reference (`{$`). Branch-free, like the
/// checks below, so that it vectorizes: it runs once per URI.
fn has_variable(s: &str) -> bool {
    let b = s.as_bytes();
    let next = b.get(1..).unwrap_or_default();
    b.iter()
        .zip(next)
        .fold(false, |acc, (&x, &y)| acc | ((x == b'{') & (y == b'$')))
}

/// True when `s` is a path [`normalize`] returns unchanged through its fast
/// path (absolute; no `%`, `\\`, control or non-ASCII byte, `//`, `/.` or
/// ` .`), so that a
/// path merged onto it needs only the checks [`Shape`] makes. A
/// conservative subset: anything else goes through `normalize`.
fn plainly_canonical(s: &str) -> bool {
    let shape = Shape::of(s);
    s.starts_with('/') && !shape.unclean && shape.query_at.is_none() && shape.fragment_at == s.len()
}

fn query_state(query: &str) -> Option<bool> {
    if query.is_empty() {
        None
    } else {
        // Only the query's own `?` is a separator; a later `?` is data
        // (`?a=b?` + `tg=` would read as the one pair `a=b?tg=…`).
        Some(query == "?" || query.ends_with('&'))
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

    /// Checks `resolve(raw)` against an expected path, written head,
    /// fragment and query state.
    fn check(r: &Resolver<'_>, raw: &str, want: Option<(&str, &str, &str, Option<bool>)>) {
        let got = r.resolve(raw.as_bytes(), String::new());
        let Some((path, head, fragment, query)) = want else {
            assert_eq!(got, Target::Foreign, "{raw:?}");
            return;
        };
        let Target::Own {
            path: p,
            rewritten,
            fragment_at,
            query: q,
            ..
        } = &got
        else {
            panic!("{raw:?} is foreign");
        };
        let written = rewritten
            .clone()
            .unwrap_or_else(|| raw[..*fragment_at].to_owned());
        assert_eq!(
            (p.as_str(), written.as_str(), &raw[*fragment_at..], *q),
            (path, head, fragment, query),
            "{raw:?}"
        );
    }

    #[test]
    fn resolve_table() {
        let defines = vec![
            ("dir".to_owned(), "hd".to_owned()),
            ("q".to_owned(), "a=1".to_owned()),
        ];
        let r = Resolver::new("/live/ch 1/index.m3u8", ORIGIN, defines);
        type Want = Option<(&'static str, &'static str, &'static str, Option<bool>)>;
        let cases: &[(&str, Want)] = &[
            ("seg1.ts", Some(("/live/ch 1/seg1.ts", "seg1.ts", "", None))),
            (
                "a/../b.ts?x=1#t=2",
                Some(("/live/ch 1/b.ts", "a/../b.ts?x=1", "#t=2", Some(false))),
            ),
            (
                "../ch2/i.m3u8",
                Some(("/live/ch2/i.m3u8", "../ch2/i.m3u8", "", None)),
            ),
            ("%2e%2e/x.ts", Some(("/live/x.ts", "%2e%2e/x.ts", "", None))),
            (
                "/abs/x.ts?",
                Some(("/abs/x.ts", "/abs/x.ts?", "", Some(true))),
            ),
            (
                "s%20p.ts",
                Some(("/live/ch 1/s p.ts", "s%20p.ts", "", None)),
            ),
            (
                "{$dir}/s.ts?{$q}",
                Some(("/live/ch 1/hd/s.ts", "{$dir}/s.ts?{$q}", "", Some(false))),
            ),
            (
                "?only",
                Some(("/live/ch 1/index.m3u8", "?only", "", Some(false))),
            ),
            (
                "http://origin.example:8081/base/live/x.ts?k=v",
                Some(("/live/x.ts", "/live/x.ts?k=v", "", Some(false))),
            ),
            (
                "HTTP://ORIGIN.EXAMPLE:8081/base",
                Some(("/", "/", "", None)),
            ),
            (
                "//origin.example:8081/base/a%20b.ts#f",
                Some(("/a b.ts", "/a%20b.ts", "#f", None)),
            ),
            ("http://origin.example:8081/basement/x.ts", None),
            ("http://origin.example:8081/x.ts", None),
            ("https://origin.example:8081/base/x.ts", None),
            ("http://other.example/base/x.ts", None),
            ("data:text/plain,hi", None),
            ("skd://key-id", None),
            ("../../../etc/passwd", None),
            ("a\\b.ts", None),
            ("{$undefined}/s.ts", None),
            ("", None),
        ];
        for (raw, want) in cases {
            check(&r, raw, *want);
        }
        assert_eq!(r.resolve(b"\xff.ts", String::new()), Target::Foreign);
    }

    /// A `?` inside a query is data, not a separator: `a.ts?x=1?` gets
    /// `&tg=`, so the capability stays a parameter of its own (found by
    /// fuzz/hls_rewrite: it was appended as `?x=1?tg=…`, which the proxy
    /// reads as the one pair `x=1?tg`, and the viewer was refused).
    #[test]
    fn question_mark_inside_a_query_is_not_a_separator() {
        let r = Resolver::new("/live/ch1/index.m3u8", ORIGIN, Vec::new());
        check(
            &r,
            "a.ts?x=1?",
            Some(("/live/ch1/a.ts", "a.ts?x=1?", "", Some(false))),
        );
        check(
            &r,
            "a.ts??",
            Some(("/live/ch1/a.ts", "a.ts??", "", Some(false))),
        );
        check(
            &r,
            "a.ts?",
            Some(("/live/ch1/a.ts", "a.ts?", "", Some(true))),
        );
    }

    proptest::proptest! {
        /// The shortcut agrees with the request handler's normalization.
        #[test]
        fn plainly_canonical_paths_normalize_to_themselves(
            s in "[/a.%\\\\\\x00\\x7fé?#-]{0,24}"
        ) {
            if plainly_canonical(&s) {
                proptest::prop_assert_eq!(normalize(&s, usize::MAX), Ok(s.clone()));
            }
            // Every path `resolve` takes as canonical, `normalize` agrees.
            let r = Resolver::new("/live/ch1/i.m3u8", ORIGIN, Vec::new());
            if let Target::Own { path, rewritten: None, .. } = r.resolve(s.as_bytes(), String::new()) {
                let head = &s[..s.find(['?', '#']).unwrap_or(s.len())];
                let merged = if head.starts_with('/') { head.to_owned() } else { format!("/live/ch1/{head}") };
                let merged = if head.is_empty() { "/live/ch1/i.m3u8".to_owned() } else { merged };
                proptest::prop_assert_eq!(normalize(&merged, usize::MAX), Ok(path));
            }
        }
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
            check(&r, raw, Some(("/x.ts", "/x.ts", "", None)));
        }
        check(&r, "https://cdn.example:8443/x.ts", None);
        check(&r, "x.ts", Some(("/x.ts", "x.ts", "", None)));
    }
}
