//! Request path normalization: turns the raw path of a request URI into the
//! one canonical, decoded form that routing, authorization and the origin
//! request all see, and turns it back into a wire path for the origin.
//!
//! It owns percent-decoding (exactly once), merging repeated slashes,
//! resolving dot-segments, and refusing paths that try to smuggle structure
//! past the router: encoded backslashes, backslashes, control bytes, invalid
//! UTF-8, `..` above the root, and segments another server could read as a
//! dot-segment or a separator (see [`PathError::AmbiguousSegment`]). It
//! works like nginx's `$uri`, but stricter.
//!
//! One rule for what bytes reach an origin: the origin is sent
//! [`encode_for_origin`] of the normalized path, in which every byte besides
//! letters, digits, `-._~!$&'()*,=:@` and `/` is percent-encoded (`;` and
//! `+` included: servlet containers cut `;` parameters, and some origins
//! read `+` as a space). A path whose meaning would still depend on the
//! origin's reading is refused before routing, so what tollgate routed and
//! authorized is what every origin serves.
//!
//! Pure core: no I/O, no clock, no logging, no panics reachable from input.
//! Failures are a [`PathError`]; the error module picks the status code.
//!
//! # Invariants of a path returned by [`normalize`]
//!
//! - it starts with `/` and never contains `//`;
//! - it has no `.` or `..` segment, decoded ones included;
//! - it contains no byte below 0x20, no 0x7f and no `\`;
//! - it is valid UTF-8 and no longer than the raw input;
//! - no segment is [`PathError::AmbiguousSegment`];
//! - a trailing `/` in the input (or left by a final dot-segment) is kept;
//! - `normalize(&encode_for_origin(p), n) == Ok(p)` (and the same for
//!   [`encode_canonical`]): the origin is sent exactly the path that was
//!   routed and authorized, never a re-decoded one.

use std::borrow::Cow;

use icu_normalizer::ComposingNormalizerBorrowed;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, utf8_percent_encode};

/// Why a request path was refused. Every variant maps to HTTP 400 except
/// [`PathError::TooLong`] (414).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/` (`*`, an absolute URI, empty).
    #[error("request path is not absolute")]
    NotAbsolute,
    /// A `%` is not followed by two hex digits.
    #[error("malformed percent-encoding in request path")]
    BadEncoding,
    /// An encoded `\` (`%5C`) or a literal `\` (Windows-style traversal).
    /// (`%2F` is decoded to a real `/`, as nginx does.)
    #[error("encoded or backslash path separator in request path")]
    EncodedSeparator,
    /// A byte below 0x20 or 0x7f, literal or decoded (`%00`, CR, LF, TAB).
    #[error("control character in request path")]
    ControlChar,
    /// The decoded bytes are not valid UTF-8 (including overlong forms).
    #[error("request path is not valid UTF-8 after decoding")]
    NotUtf8,
    /// A `..` segment would climb above the root.
    #[error("request path escapes the root")]
    EscapesRoot,
    /// A segment that is not `.` or `..` to tollgate but that another
    /// server could read as one, or as holding a separator: servlet
    /// containers cut `;parameters` (`..;`, `.;x`, `%2e%2e;jsessionid=1`),
    /// Windows/IIS drop trailing dots and spaces and `:streams` (`...`,
    /// `.. `, `..::$DATA`), an origin that decodes twice reads `%252e%252e`
    /// as `..` and `%252f` as `/`, and a Unicode-normalizing one reads
    /// fullwidth and other compatibility forms (`．．`, `‥`, `／`, `＼`)
    /// as their ASCII letters.
    #[error("path segment another server could read as a dot-segment or separator")]
    AmbiguousSegment,
    /// The raw path is longer than the configured limit.
    #[error("request path too long")]
    TooLong,
}

/// The bytes besides ASCII letters and digits that a path may carry
/// unescaped: RFC 3986 unreserved, sub-delims, `:`, `@` (together `pchar`)
/// and `/`. `%` is not among them: a normalized path holds decoded bytes.
const PATH_SAFE: &[u8] = b"-._~!$&'()*+,;=:@/";

/// Bytes [`encode_canonical`] escapes: everything not in [`PATH_SAFE`].
const CANONICAL_ESCAPE: &AsciiSet = &escape_set(PATH_SAFE);

/// What an origin may receive unescaped: [`PATH_SAFE`] without `;`
/// (servlet path parameters) and `+` (a space to some origins), the two
/// `pchar`s that origins are known to read as something other than
/// themselves.
const ORIGIN_SAFE: &[u8] = b"-._~!$&'()*,=:@/";

/// Bytes [`encode_for_origin`] escapes: everything not in [`ORIGIN_SAFE`].
const ORIGIN_ESCAPE: &AsciiSet = &escape_set(ORIGIN_SAFE);

const fn escape_set(safe: &[u8]) -> AsciiSet {
    // `AsciiSet` is not `Copy`; a union with the empty set is an owned copy.
    let mut set = NON_ALPHANUMERIC.union(AsciiSet::EMPTY);
    let mut i = 0;
    while i < safe.len() {
        set = set.remove(safe[i]);
        i += 1;
    }
    set
}

/// Normalize the raw path of a request URI (no query) into its canonical,
/// decoded form.
///
/// `raw.len() > max_len` fails with [`PathError::TooLong`] before any other
/// work, then [`PathError::NotAbsolute`]. The result satisfies every
/// invariant in the module docs. A path breaking several other rules gets
/// the error of one of them; which one is not part of the contract.
pub fn normalize(raw: &str, max_len: usize) -> Result<String, PathError> {
    if raw.len() > max_len {
        return Err(PathError::TooLong);
    }
    let bytes = raw.as_bytes();
    let Some((b'/', rest)) = bytes.split_first() else {
        return Err(PathError::NotAbsolute);
    };
    if is_already_canonical(bytes) {
        return Ok(raw.to_owned());
    }
    full_pass(raw, rest)
}

/// Everything but the fast path: `%2F` becomes a separator, then segments
/// are decoded and dot-segments resolved. `rest` is `raw` after its `/`.
fn full_pass(raw: &str, rest: &[u8]) -> Result<String, PathError> {
    match decode_slashes(raw) {
        Cow::Borrowed(_) => normalize_segments(rest, raw.len()),
        Cow::Owned(decoded) => {
            normalize_segments(decoded.as_bytes().get(1..).unwrap_or_default(), raw.len())
        }
    }
}

/// nginx decodes `%2F` to `/` before it merges slashes and resolves dot
/// segments, so a link signed for `/s/a/link` is valid as `/s/a%2F%2Flink`
/// and `/a%2F..%2Fb` is `/b`. Decoding them first, as real separators, keeps
/// the router, the signature schemes and the origin on one path. Escapes are
/// read as triplets, so `%252F` stays the literal `%2F` it encodes.
fn decode_slashes(raw: &str) -> Cow<'_, str> {
    let is_slash = |t: &str| t.eq_ignore_ascii_case("%2f");
    let bytes = raw.as_bytes();
    let has_any = bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'%' && raw.get(i..i + 3).is_some_and(is_slash));
    if !has_any {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while let Some(rel) = raw.get(i..).and_then(|r| r.find('%')) {
        let at = i + rel;
        out.push_str(raw.get(i..at).unwrap_or_default());
        match raw.get(at..at + 3) {
            Some(t) if is_slash(t) => out.push('/'),
            Some(t) => out.push_str(t),
            // A short or split escape: keep it; the full pass refuses it.
            None => {
                out.push_str(raw.get(at..).unwrap_or_default());
                return Cow::Owned(out);
            }
        }
        i = at + 3;
    }
    out.push_str(raw.get(i..).unwrap_or_default());
    Cow::Owned(out)
}

/// Re-encode a normalized path for sending to an origin: percent-encode
/// (upper-case hex) every byte that is not a letter, a digit, `/` or one of
/// `-._~!$&'()*,=:@`, so `%`, `?`, `#`, `;`, `+`, space and non-ASCII bytes
/// are all escaped. This is the only form in which a path reaches an origin.
pub fn encode_for_origin(normalized: &str) -> String {
    Cow::from(utf8_percent_encode(normalized, ORIGIN_ESCAPE)).into_owned()
}

/// Re-encode a normalized path as a canonical client sends it: like
/// [`encode_for_origin`], but every RFC 3986 `pchar` (`;` and `+` included)
/// stays as it is. Signatures over the request target (the `secure_link`
/// secret form) hash this form, which is what nginx sees from such a client.
pub fn encode_canonical(normalized: &str) -> String {
    Cow::from(utf8_percent_encode(normalized, CANONICAL_ESCAPE)).into_owned()
}

/// The fast path: true when the path has no `%`, `\`, control byte,
/// non-ASCII byte, `//`, `/.` or ` .`, so it is already canonical (a
/// segment of dots and spaces starts with `.` or has a space before a dot).
/// Anything else takes the full pass, which also names the error. Both
/// folds are branch-free so that they vectorize: this runs on every request.
fn is_already_canonical(bytes: &[u8]) -> bool {
    let odd_byte = bytes.iter().fold(false, |acc, &b| {
        acc | (b == b'%') | (b == b'\\') | !(0x20..0x7f).contains(&b)
    });
    let next = bytes.get(1..).unwrap_or_default();
    let odd_pair = bytes.iter().zip(next).fold(false, |acc, (&a, &b)| {
        acc | ((a == b'/') & ((b == b'/') | (b == b'.'))) | ((a == b' ') & (b == b'.'))
    });
    !(odd_byte | odd_pair)
}

/// The full pass over the segments after the leading `/`. `out` always
/// ends with `/` between segments; a decoded segment is appended in place
/// and then kept, dropped (`.`) or dropped with its parent (`..`).
fn normalize_segments(rest: &[u8], capacity: usize) -> Result<String, PathError> {
    let mut out = Vec::with_capacity(capacity);
    out.push(b'/');
    let mut ends_in_dir = true;
    for raw_segment in rest.split(|&b| b == b'/') {
        let start = out.len();
        let had_escape = decode_segment(raw_segment, &mut out)?;
        let name = out.get(start..).unwrap_or_default();
        // Checked per segment so that a bad segment is refused even when a
        // later `..` would have removed it.
        if had_escape && std::str::from_utf8(name).is_err() {
            return Err(PathError::NotUtf8);
        }
        if !matches!(name, b"" | b"." | b"..") && is_ambiguous(name) {
            return Err(PathError::AmbiguousSegment);
        }
        ends_in_dir = match name {
            b"" => true,
            b"." => {
                out.truncate(start);
                true
            }
            b".." => {
                out.truncate(start);
                pop_segment(&mut out)?;
                true
            }
            _ => {
                out.push(b'/');
                false
            }
        };
    }
    if !ends_in_dir {
        out.pop();
    }
    String::from_utf8(out).map_err(|_| PathError::NotUtf8)
}

/// Removes the last kept segment of `out` (which ends with `/`), or fails
/// when only the root is left.
fn pop_segment(out: &mut Vec<u8>) -> Result<(), PathError> {
    let parent_end = out.len().saturating_sub(1);
    let parent = out.get(..parent_end).unwrap_or_default();
    match parent.iter().rposition(|&b| b == b'/') {
        Some(slash) => {
            out.truncate(slash + 1);
            Ok(())
        }
        None => Err(PathError::EscapesRoot),
    }
}

/// Percent-decodes one segment onto `out`, refusing separators and control
/// bytes in either form. Returns whether the segment held any escape (only
/// then can the appended bytes be invalid UTF-8).
fn decode_segment(segment: &[u8], out: &mut Vec<u8>) -> Result<bool, PathError> {
    let mut had_escape = false;
    let mut bytes = segment.iter();
    while let Some(&b) = bytes.next() {
        if b != b'%' {
            check_literal(b)?;
            out.push(b);
            continue;
        }
        let hi = bytes.next().and_then(|&h| hex_value(h));
        let lo = bytes.next().and_then(|&l| hex_value(l));
        let (Some(hi), Some(lo)) = (hi, lo) else {
            return Err(PathError::BadEncoding);
        };
        let decoded = (hi << 4) | lo;
        if decoded == b'/' || decoded == b'\\' {
            return Err(PathError::EncodedSeparator);
        }
        if is_control(decoded) {
            return Err(PathError::ControlChar);
        }
        out.push(decoded);
        had_escape = true;
    }
    Ok(had_escape)
}

/// Whether a decoded segment (not `.` or `..`) is one that another server
/// could read as a dot-segment or as holding a separator; see
/// [`PathError::AmbiguousSegment`]. Only a segment with a dot, a `%` or a
/// non-ASCII byte can be one.
fn is_ambiguous(name: &[u8]) -> bool {
    if reads_as_dots(name) {
        return true;
    }
    // An origin that decodes once more.
    if name.contains(&b'%') {
        let twice: Vec<u8> = percent_decode(name).collect();
        if reads_as_dots(&twice) || twice.iter().any(|&b| b == b'/' || b == b'\\') {
            return true;
        }
    }
    // An origin that applies Unicode compatibility normalization (NFKC).
    if !name.is_ascii() {
        let Ok(text) = std::str::from_utf8(name) else {
            return true;
        };
        let folded = ComposingNormalizerBorrowed::new_nfkc().normalize(text);
        if let Cow::Owned(folded) = folded {
            let bytes = folded.as_bytes();
            return reads_as_dots(bytes)
                || bytes.iter().any(|&b| b == b'/' || b == b'\\' || b == b'%');
        }
    }
    false
}

/// Whether `segment`, read up to its first `;` (a servlet path parameter)
/// or `:` (a Windows stream name), is only dots and spaces with at least
/// one dot: `..;x`, `.;`, `...`, `.. `, `..::$DATA` (Windows drops
/// trailing dots and spaces from a name).
fn reads_as_dots(segment: &[u8]) -> bool {
    let head_len = segment
        .iter()
        .position(|&b| b == b';' || b == b':')
        .unwrap_or(segment.len());
    let head = segment.get(..head_len).unwrap_or_default();
    head.contains(&b'.') && head.iter().all(|&b| b == b'.' || b == b' ')
}

/// Refuses a literal (not percent-encoded) byte that may not appear.
fn check_literal(b: u8) -> Result<(), PathError> {
    if b == b'\\' {
        Err(PathError::EncodedSeparator)
    } else if is_control(b) {
        Err(PathError::ControlChar)
    } else {
        Ok(())
    }
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use PathError::*;
    use proptest::prelude::*;

    const MAX: usize = 1024;

    #[test]
    fn normalize_table() {
        let cases: &[(&str, Result<&str, PathError>)] = &[
            // Already canonical (fast path).
            ("/", Ok("/")),
            ("/live/ch1/index.m3u8", Ok("/live/ch1/index.m3u8")),
            ("/live/", Ok("/live/")),
            ("/live/a.b/c..d/.x", Ok("/live/a.b/c..d/.x")),
            ("/live/a;b/c+d", Ok("/live/a;b/c+d")),
            ("/.well-known/x", Ok("/.well-known/x")),
            ("/live/caf\u{e9}", Ok("/live/caf\u{e9}")),
            // Not absolute.
            ("", Err(NotAbsolute)),
            ("*", Err(NotAbsolute)),
            ("http://x/live", Err(NotAbsolute)),
            ("live/ch1", Err(NotAbsolute)),
            // Repeated slashes.
            ("/live//ch1", Ok("/live/ch1")),
            ("//live///ch1//", Ok("/live/ch1/")),
            ("//", Ok("/")),
            // Dot-segments, literal and encoded; trailing slash kept.
            ("/a/./b/../c", Ok("/a/c")),
            ("/live/ch1/..", Ok("/live/")),
            ("/live/ch1/.", Ok("/live/ch1/")),
            ("/live/%2e%2e/x", Ok("/x")),
            ("/live/%2E/x", Ok("/live/x")),
            ("/live/.%2e/x", Ok("/x")),
            ("/.", Ok("/")),
            ("/a/..", Ok("/")),
            ("/live/../../etc/passwd", Err(EscapesRoot)),
            ("/live/%2E%2E/%2E%2E/etc", Err(EscapesRoot)),
            ("/..", Err(EscapesRoot)),
            ("/a/../..", Err(EscapesRoot)),
            // Decoding happens once: %252e is the literal name "%2e".
            ("/live/%252e%252ex/x", Ok("/live/%2e%2ex/x")),
            ("/live/%41%62c", Ok("/live/Abc")),
            ("/live/a%20b", Ok("/live/a b")),
            ("/live/%3f%23", Ok("/live/?#")),
            ("/live/caf%C3%A9", Ok("/live/caf\u{e9}")),
            // Malformed escapes.
            ("/live/%", Err(BadEncoding)),
            ("/live/%2", Err(BadEncoding)),
            ("/live/%zz", Err(BadEncoding)),
            ("/live/%g0/x", Err(BadEncoding)),
            // Separators.
            // %2F is a separator, as in nginx's $uri.
            ("/live/%2fetc", Ok("/live/etc")),
            ("/live/%2Fetc", Ok("/live/etc")),
            ("/s/a%2F%2Flink", Ok("/s/a/link")),
            ("/live/%252Cx", Ok("/live/%2Cx")),
            ("/live/a%2F..%2F..%2F..%2Fetc", Err(EscapesRoot)),
            ("/live/%5cetc", Err(EncodedSeparator)),
            ("/live/%5C..%5Cetc", Err(EncodedSeparator)),
            ("/live/..%2f..%2fetc", Err(EscapesRoot)),
            ("/live/x%2f..%2fy", Ok("/live/y")),
            ("/live/%2", Err(BadEncoding)),
            ("/live\\..\\etc", Err(EncodedSeparator)),
            ("/live//..\\etc", Err(EncodedSeparator)),
            // Control characters.
            ("/live/a%00b", Err(ControlChar)),
            ("/live/a%0d%0aSet-Cookie", Err(ControlChar)),
            ("/live/a%09b", Err(ControlChar)),
            ("/live/a%7fb", Err(ControlChar)),
            ("/live/a\tb", Err(ControlChar)),
            ("/live//a\nb", Err(ControlChar)),
            // Invalid UTF-8, including overlong dots, even if later popped.
            ("/live/%c0%ae%c0%ae/", Err(NotUtf8)),
            ("/live/%ff/../x", Err(NotUtf8)),
            ("/live/%c3", Err(NotUtf8)),
        ];
        assert!(!cases.is_empty());
        for (raw, want) in cases {
            let got = normalize(raw, MAX);
            assert_eq!(got.as_deref(), want.as_deref(), "normalize({raw:?})");
        }
    }

    #[test]
    fn length_is_checked_first() {
        let long = format!("/{}", "a".repeat(MAX));
        assert_eq!(normalize(&long, MAX), Err(TooLong));
        assert_eq!(normalize("no-slash-but-long", 4), Err(TooLong));
        assert_eq!(normalize("/abcd", 5).as_deref(), Ok("/abcd"));
        assert_eq!(normalize("/abcde", 5), Err(TooLong));
    }

    /// Segments that are not dot-segments to tollgate but are to a
    /// servlet container, Windows/IIS, an origin decoding twice or one
    /// applying NFKC: all refused, wherever they are in the path.
    #[test]
    fn ambiguous_segments_are_refused() {
        let segments = [
            "..;",
            "..;jsessionid=1",
            ".;x",
            ".;",
            "%2e%2e;",
            "%2E%2E%3B",
            "..%3B",
            "..%3bx=1",
            ".%2e;a",
            "...",
            "....",
            ".. ",
            ". ",
            " ..",
            "..::$DATA",
            "..:x",
            "%252e%252e",
            "%252E.",
            "a%252Fb",
            "a%255Cb",
            "\u{ff0e}\u{ff0e}",
            "%EF%BC%8E%EF%BC%8E",
            "\u{ff0e}.",
            "\u{2025}",
            "\u{2024}\u{2024}",
            "\u{fe52}\u{fe52}",
            "\u{2026}",
            "\u{ff0e}\u{ff0e}\u{ff1b}x",
            "..\u{ff1b}",
            "a\u{ff0f}b",
            "\u{ff3c}",
            "a\u{fe68}b",
            "\u{2100}",
            "\u{ff05}2e",
        ];
        assert!(!segments.is_empty());
        for seg in segments {
            for raw in [
                format!("/live/cha/{seg}/chb/index.m3u8"),
                format!("/live/{seg}"),
                format!("/{seg}/x/"),
            ] {
                assert_eq!(normalize(&raw, MAX), Err(AmbiguousSegment), "{raw:?}");
            }
        }
        // Names that merely contain these characters stay names.
        for (raw, want) in [
            ("/live/a..;b/x", "/live/a..;b/x"),
            ("/live/;/x", "/live/;/x"),
            ("/live/;../x", "/live/;../x"),
            ("/live/a.ts;v=1", "/live/a.ts;v=1"),
            ("/live/v1.2:3", "/live/v1.2:3"),
            ("/live/x. y", "/live/x. y"),
            ("/live/\u{ff0e}a", "/live/\u{ff0e}a"),
            (
                "/live/caf%C3%A9/\u{65e5}\u{672c}",
                "/live/caf\u{e9}/\u{65e5}\u{672c}",
            ),
            ("/live/%2525", "/live/%25"),
        ] {
            assert_eq!(normalize(raw, MAX).as_deref(), Ok(want), "{raw:?}");
        }
    }

    #[test]
    fn encode_canonical_keeps_pchar() {
        let cases = [
            ("/k=v;x,y:z@w!$&'()*+~_", "/k=v;x,y:z@w!$&'()*+~_"),
            ("/a b?c#d", "/a%20b%3Fc%23d"),
            ("/caf\u{e9}", "/caf%C3%A9"),
        ];
        for (normalized, want) in cases {
            assert_eq!(encode_canonical(normalized), want, "{normalized:?}");
            assert_eq!(normalize(want, MAX).as_deref(), Ok(normalized));
        }
    }

    #[test]
    fn encode_for_origin_table() {
        let cases = [
            ("/", "/"),
            ("/live/ch1/seg-1.ts", "/live/ch1/seg-1.ts"),
            ("/live/%2e%2e", "/live/%252e%252e"),
            ("/a b?c#d", "/a%20b%3Fc%23d"),
            ("/caf\u{e9}", "/caf%C3%A9"),
            ("/k=v;x,y:z@w!$&'()*+~_", "/k=v%3Bx,y:z@w!$&'()*%2B~_"),
            ("/..;/x", "/..%3B/x"),
            ("/[x]\"<>^`{|}", "/%5Bx%5D%22%3C%3E%5E%60%7B%7C%7D"),
        ];
        for (normalized, want) in cases {
            assert_eq!(encode_for_origin(normalized), want, "{normalized:?}");
        }
    }

    /// Raw paths built by joining pieces that matter to the rules above.
    fn path_of(pieces: &[&'static str]) -> impl Strategy<Value = String> + use<> {
        let piece = prop::sample::select(pieces.to_vec());
        prop::collection::vec(piece, 0..24).prop_map(|parts| format!("/{}", parts.concat()))
    }

    /// Pieces that can trip every rule.
    const HOSTILE: &[&str] = &[
        "/",
        "/",
        ".",
        "..",
        "%2e",
        "%2E",
        "%2f",
        "%5C",
        "\\",
        "%",
        "%2",
        "%zz",
        "%00",
        "%0a",
        "\t",
        "%25",
        "%c0%ae",
        "%C3%A9",
        "\u{e9}",
        "%ff",
        "a",
        "ch1",
        "%20",
        " ",
        "?",
        "#",
        "%3F",
        "~",
        ";",
        "%3B",
        ":",
        "+",
        "\u{ff0e}",
        "%EF%BC%8E",
        "\u{ff0f}",
        "\u{2025}",
        "%252e",
    ];

    /// Pieces whose only possible refusal is climbing above the root, so the
    /// output properties run on many `Ok` values, not just on refusals.
    const BENIGN: &[&str] = &[
        "/", "/", "/", ".", "..", "%2e", "%2E", "%25", "%252e", "%C3%A9", "\u{e9}", "a", "ch1",
        "seg.ts", "%20", "?", "#", "%3F", "~", ";", "%41",
    ];

    fn check_invariants(raw: &str, out: &str) {
        let shape = out.starts_with('/') && !out.contains("//") && out.len() <= raw.len();
        let bytes = !out.bytes().any(|b| is_control(b) || b == b'\\');
        let no_dots = out
            .split('/')
            .all(|s| s != "." && s != ".." && (s.is_empty() || !is_ambiguous(s.as_bytes())));
        assert!(shape && bytes && no_dots, "{raw:?} -> {out:?}");
        for (encoded, safe) in [
            (encode_for_origin(out), ORIGIN_SAFE),
            (encode_canonical(out), PATH_SAFE),
        ] {
            check_encoded(&encoded, safe);
            assert_eq!(
                normalize(&encoded, usize::MAX),
                Ok(out.to_owned()),
                "{raw:?}"
            );
        }
    }

    fn check_encoded(encoded: &str, safe: &[u8]) {
        let pchar = |b: u8| b.is_ascii_alphanumeric() || safe.contains(&b);
        let upper_hex = |b: u8| b.is_ascii_digit() || (b'A'..=b'F').contains(&b);
        let mut bytes = encoded.bytes();
        while let Some(b) = bytes.next() {
            let ok = match b {
                b'%' => bytes.next().is_some_and(upper_hex) && bytes.next().is_some_and(upper_hex),
                _ => pchar(b),
            };
            assert!(ok, "{encoded:?}");
        }
    }

    proptest! {
        #[test]
        fn benign_paths_normalize_or_escape(raw in path_of(BENIGN)) {
            match normalize(&raw, MAX) {
                Ok(out) => check_invariants(&raw, &out),
                Err(e) => prop_assert!(matches!(e, EscapesRoot | AmbiguousSegment), "{:?}", raw),
            }
        }

        #[test]
        fn any_output_holds_invariants(
            raw in prop_oneof![path_of(HOSTILE), "/?\\PC{0,64}"]
        ) {
            let result = normalize(&raw, MAX);
            if let Some(rest) = raw.strip_prefix('/') {
                // The fast path must agree with the full pass.
                prop_assert_eq!(&result, &full_pass(&raw, rest.as_bytes()));
            }
            if let Ok(out) = result {
                check_invariants(&raw, &out);
            }
        }

        #[test]
        fn encode_output_is_pchar_only(s in "\\PC{0,64}") {
            check_encoded(&encode_for_origin(&s), ORIGIN_SAFE);
            check_encoded(&encode_canonical(&s), PATH_SAFE);
        }
    }
}
