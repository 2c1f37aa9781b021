//! The first pass over a playlist: the playlist-wide facts the rewrite
//! depends on before it reaches them (kind, media sequence, target
//! duration, whether the origin encrypted it, `EXT-X-DEFINE` values), and
//! the parsers for the few numbers the rewriter reads.
//!
//! Must not write anything. Lenient like players: a malformed number is
//! treated as absent rather than failing the playlist.

use std::collections::HashMap;

use crate::capability::ByteRange;

use super::attrs;
use super::lines::{Class, Line, classify, trim};
use super::template::{Facts, Kind};
use super::uri::Defines;

/// Tags only a media playlist has; any of them makes it one.
const MEDIA_TAGS: &[&[u8]] = &[
    b"EXTINF",
    b"EXT-X-TARGETDURATION",
    b"EXT-X-MEDIA-SEQUENCE",
    b"EXT-X-PART",
    b"EXT-X-PART-INF",
    b"EXT-X-ENDLIST",
    b"EXT-X-PLAYLIST-TYPE",
];

/// Tags with a URI attribute the rewriter may extend.
const URI_TAGS: &[&[u8]] = &[
    b"EXT-X-MEDIA",
    b"EXT-X-I-FRAME-STREAM-INF",
    b"EXT-X-MAP",
    b"EXT-X-KEY",
    b"EXT-X-SESSION-KEY",
    b"EXT-X-SESSION-DATA",
    b"EXT-X-PART",
    b"EXT-X-PRELOAD-HINT",
    b"EXT-X-RENDITION-REPORT",
    b"EXT-X-CONTENT-STEERING",
];

/// What one pass over a playlist finds before the rewrite.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub facts: Facts,
    pub defines: Defines,
    /// URI lines plus tags that may carry a URI: sizes the output.
    pub uris: usize,
    /// URI lines: the media segments of a media playlist.
    pub segments: u64,
    /// An `EXT-X-PART` or `EXT-X-PRELOAD-HINT` (LL-HLS) is present.
    pub parts: bool,
}

/// Facts and defines from one pass over `lines`.
pub(crate) fn scan(body: &[u8], lines: &[Line]) -> Scan {
    let mut uris = 0;
    let mut segments = 0u64;
    let mut facts = Facts::default();
    let mut defines = Defines::new();
    let mut media = false;
    let (mut seq, mut target) = (None, None);
    let mut keyed = false;
    let mut parts = false;
    for l in lines {
        let content = body.get(l.start..l.end).unwrap_or_default();
        // The most frequent lines, settled without a full look.
        if content.starts_with(b"#EXTINF:") {
            media = true;
            continue;
        }
        if content.starts_with(b"#EXT-X-PROGRAM-DATE-TIME:") {
            continue;
        }
        let (name, value) = match classify(content) {
            Class::Tag { name, value } => (name, value),
            Class::Uri { .. } => {
                uris += 1;
                segments += 1;
                continue;
            }
            _ => continue,
        };
        let from = value.unwrap_or(content.len());
        let text = content.get(from..).unwrap_or_default();
        media = media || MEDIA_TAGS.contains(&name);
        uris += usize::from(URI_TAGS.contains(&name));
        match name {
            b"EXT-X-MEDIA-SEQUENCE" if seq.is_none() => seq = Some(parse_u64(text)),
            b"EXT-X-TARGETDURATION" if target.is_none() => target = Some(parse_ceil(text)),
            b"EXT-X-ENDLIST" => facts.end_list = true,
            b"EXT-X-PART" | b"EXT-X-PRELOAD-HINT" => parts = true,
            b"EXT-X-KEY" => {
                let method = attrs::find(content, from, b"METHOD").map(|a| a.value(content));
                keyed |= method.is_some_and(|m| m != b"NONE");
            }
            b"EXT-X-DEFINE" => {
                let name = attrs::find(content, from, b"NAME").map(|a| a.value(content));
                let val = attrs::find(content, from, b"VALUE").map(|a| a.value(content));
                let utf8 = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_owned);
                if let (Some(n), Some(v)) = (name.and_then(utf8), val.and_then(utf8)) {
                    defines.push((n, v));
                }
            }
            _ => {}
        }
    }
    facts.kind = if media { Kind::Media } else { Kind::Master };
    facts.media_sequence = seq.flatten().unwrap_or(0);
    facts.target_duration = target.flatten();
    facts.origin_encrypted = media && keyed;
    Scan {
        facts,
        defines,
        uris,
        segments,
        parts,
    }
}

/// A decimal integer with optional surrounding blanks.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    let s = trim(s);
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// A decimal number (`6`, `6.0`, ` 6 `, `6.5`) rounded up to an integer.
pub(crate) fn parse_ceil(s: &[u8]) -> Option<u64> {
    let s = trim(s);
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(dot) => (s.get(..dot)?, s.get(dot + 1..)?),
        None => (s, &b""[..]),
    };
    if int.is_empty() && frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let whole = if int.is_empty() { 0 } else { parse_u64(int)? };
    let up = u64::from(frac.iter().any(|&b| b != b'0'));
    whole.checked_add(up)
}

/// `n[@o]` (EXT-X-BYTERANGE, the BYTERANGE attribute): length and optional
/// offset.
pub(crate) fn parse_range(s: &[u8]) -> Option<(u64, Option<u64>)> {
    let s = trim(s);
    match s.iter().position(|&b| b == b'@') {
        Some(at) => Some((parse_u64(s.get(..at)?)?, Some(parse_u64(s.get(at + 1..)?)?))),
        None => Some((parse_u64(s)?, None)),
    }
}

/// `EXT-X-PART`'s `BYTERANGE="n[@o]"` attribute, if present and valid.
pub(crate) fn part_range(line: &[u8], from: usize) -> Option<(u64, Option<u64>)> {
    parse_range(attrs::find(line, from, b"BYTERANGE")?.value(line))
}

/// `EXT-X-PRELOAD-HINT`'s `BYTERANGE-START` (default 0) and
/// `BYTERANGE-LENGTH` (default: to the end), if either is present and
/// both present are valid.
pub(crate) fn hint_range(line: &[u8], from: usize) -> Option<ByteRange> {
    let start = attrs::find(line, from, b"BYTERANGE-START");
    let length = attrs::find(line, from, b"BYTERANGE-LENGTH");
    if start.is_none() && length.is_none() {
        return None;
    }
    let num = |a: Option<attrs::Attr>| match a {
        Some(a) => parse_u64(a.value(line)).map(Some),
        None => Some(None),
    };
    Some(ByteRange {
        offset: num(start)?.unwrap_or(0),
        length: num(length)?,
    })
}

/// Implicit byte-range offsets (RFC 8216 §4.3.2.2, bis §4.4.4.9): where the
/// previous range of each resource ended.
#[derive(Debug, Default)]
pub(crate) struct RangeEnds(HashMap<Vec<u8>, u64>);

impl RangeEnds {
    /// The range `length[@offset]` of the resource `uri`; without an offset
    /// it starts where the previous range of `uri` ended (0 if none did).
    pub fn next(&mut self, uri: &[u8], length: u64, offset: Option<u64>) -> ByteRange {
        let offset = offset.or_else(|| self.0.get(uri).copied()).unwrap_or(0);
        let end = offset.saturating_add(length);
        match self.0.get_mut(uri) {
            Some(e) => *e = end,
            None => {
                self.0.insert(uri.to_vec(), end);
            }
        }
        ByteRange {
            offset,
            length: Some(length),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b" 42 "), Some(42));
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        for (s, want) in [
            ("6", Some(6)),
            ("6.0", Some(6)),
            (" 6 ", Some(6)),
            ("6.", Some(6)),
            ("6.5", Some(7)),
            (".5", Some(1)),
            ("0", Some(0)),
            ("", None),
            (".", None),
            ("6,0", None),
            ("x", None),
            ("6.0.0", None),
        ] {
            assert_eq!(parse_ceil(s.as_bytes()), want, "{s:?}");
        }
        assert_eq!(parse_range(b"100@20"), Some((100, Some(20))));
        assert_eq!(parse_range(b" 100 "), Some((100, None)));
        assert_eq!(parse_range(b"100@"), None);
        assert_eq!(parse_range(b"@5"), None);
    }

    #[test]
    fn range_attributes() {
        let part = br#"#EXT-X-PART:DURATION=1,URI="p.mp4",BYTERANGE="20@4""#;
        assert_eq!(part_range(part, 12), Some((20, Some(4))));
        assert_eq!(part_range(br#"#EXT-X-PART:URI="p.mp4""#, 12), None);
        assert_eq!(part_range(br#"#EXT-X-PART:BYTERANGE="x""#, 12), None);
        let r = |offset, length| Some(ByteRange { offset, length });
        let hint = |s: &str| hint_range(s.as_bytes(), 20);
        assert_eq!(hint("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p\""), None);
        assert_eq!(hint("#EXT-X-PRELOAD-HINT:BYTERANGE-START=5"), r(5, None));
        assert_eq!(
            hint("#EXT-X-PRELOAD-HINT:BYTERANGE-LENGTH=5"),
            r(0, Some(5))
        );
        assert_eq!(
            hint("#EXT-X-PRELOAD-HINT:BYTERANGE-LENGTH=5,BYTERANGE-START=7"),
            r(7, Some(5))
        );
        assert_eq!(hint("#EXT-X-PRELOAD-HINT:BYTERANGE-START=x"), None);
    }

    #[test]
    fn implicit_offsets_follow_each_resource() {
        let mut ends = RangeEnds::default();
        let r = |o, l| ByteRange {
            offset: o,
            length: Some(l),
        };
        assert_eq!(ends.next(b"a", 10, None), r(0, 10));
        assert_eq!(ends.next(b"a", 5, None), r(10, 5));
        assert_eq!(ends.next(b"b", 7, Some(100)), r(100, 7));
        assert_eq!(ends.next(b"a", 1, None), r(15, 1));
        assert_eq!(ends.next(b"b", 3, None), r(107, 3));
        assert_eq!(ends.next(b"a", 2, Some(0)), r(0, 2));
        assert_eq!(ends.next(b"a", 2, None), r(2, 2));
    }
}
