//! Splits a playlist body into lines and classifies each one, without
//! copying: every [`Line`] is a set of byte offsets into the body.
//!
//! Owns the definition of a line (content, then `\n` or `\r\n`, or nothing
//! at the end of the body), of a tag line (`#EXT…`, its name up to `:`), a
//! comment, a blank line and a URI line. Must not interpret tags; that is
//! [`super::compile()`]'s job. Works on arbitrary bytes and never panics: a
//! line that is not UTF-8 is still a line.

/// The UTF-8 byte order mark some origins put before `#EXTM3U`.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One line of the body: `body[start..end]` is its content, `body[end..next]`
/// its terminator (`\n`, `\r\n`, or empty for a last line without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Line {
    pub start: usize,
    pub end: usize,
    pub next: usize,
}

/// Splits `body` into lines. An empty body has no lines; a body ending with
/// a terminator has no empty last line.
pub(crate) fn split(body: &[u8]) -> Vec<Line> {
    // Playlists have short lines; a cheap estimate saves regrowing.
    let mut lines = Vec::with_capacity(body.len() / 24 + 1);
    let mut start = 0;
    while start < body.len() {
        let rest = body.get(start..).unwrap_or_default();
        let line = match find_lf(rest) {
            Some(lf) => {
                let lf = start + lf;
                let cr = lf > start && body.get(lf - 1) == Some(&b'\r');
                let end = if cr { lf - 1 } else { lf };
                Line {
                    start,
                    end,
                    next: lf + 1,
                }
            }
            None => Line {
                start,
                end: body.len(),
                next: body.len(),
            },
        };
        lines.push(line);
        start = line.next;
    }
    lines
}

/// The index of the first `\n` in `s`: the hot loop of [`split`].
fn find_lf(s: &[u8]) -> Option<usize> {
    find_byte(s, b'\n')
}

/// The index of the first `byte` in `s`. Looks at eight bytes at a time:
/// playlist lines are 15–60 bytes, too short for a vector loop to pay off
/// and long enough for a byte loop to show.
fn find_byte(s: &[u8], byte: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * u64::from(byte);
    let mut chunks = s.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or_default());
        let x = word ^ pattern;
        // Nonzero iff some byte of `x` is zero, i.e. some byte was `byte`
        // (exact as to whether; which byte, the scan below finds).
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            return chunk.iter().position(|&b| b == byte).map(|i| at + i);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == byte)
        .map(|i| at + i)
}

/// What a line is, by its first bytes (RFC 8216 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class<'a> {
    /// Empty or only spaces/tabs.
    Blank,
    /// `#` not followed by `EXT`.
    Comment,
    /// `#EXT…`: `name` without the `#`, up to `:` (trailing blanks
    /// trimmed); `value` is the offset in the content just after the first
    /// `:` (None if the line has none).
    Tag {
        name: &'a [u8],
        value: Option<usize>,
    },
    /// Anything else: a URI, at `content[at.0..at.1]` (surrounding
    /// blanks excluded, and kept in place by the rewriter).
    Uri { at: (usize, usize) },
}

/// Classifies one line's content (terminator excluded).
pub(crate) fn classify(content: &[u8]) -> Class<'_> {
    let Some(first) = content.iter().position(|b| !is_blank(*b)) else {
        return Class::Blank;
    };
    if content.get(first) == Some(&b'#') {
        // Tags must start in column 0; an indented `#EXT` is a comment to
        // players too, and keeping it verbatim is the safe reading.
        if first == 0 && content.starts_with(b"#EXT") {
            let body = content.get(1..).unwrap_or_default();
            let colon = body.iter().position(|&b| b == b':');
            let name_end = colon.unwrap_or(body.len());
            let name = trim_end(body.get(..name_end).unwrap_or_default());
            let value = colon.map(|c| c + 2);
            return Class::Tag { name, value };
        }
        return Class::Comment;
    }
    let last = content
        .iter()
        .rposition(|b| !is_blank(*b))
        .map_or(first, |l| l + 1);
    Class::Uri { at: (first, last) }
}

/// Spaces and tabs: what may surround a URI on its line.
pub(crate) fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `s` without leading or trailing spaces and tabs.
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    trim_end(trim_start(s))
}

fn trim_start(s: &[u8]) -> &[u8] {
    let from = s.iter().position(|b| !is_blank(*b)).unwrap_or(s.len());
    s.get(from..).unwrap_or_default()
}

fn trim_end(s: &[u8]) -> &[u8] {
    let to = s.iter().rposition(|b| !is_blank(*b)).map_or(0, |i| i + 1);
    s.get(..to).unwrap_or_default()
}

/// The line ending injected lines use: the one ending the first line.
pub(crate) fn eol_of(body: &[u8], lines: &[Line]) -> &'static [u8] {
    match lines.first() {
        Some(l) if body.get(l.end..l.next) == Some(b"\r\n") => b"\r\n",
        _ => b"\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(body: &[u8]) -> Vec<(&[u8], &[u8])> {
        split(body)
            .iter()
            .map(|l| (&body[l.start..l.end], &body[l.end..l.next]))
            .collect()
    }

    #[test]
    fn split_keeps_every_byte() {
        type Case<'a> = (&'a [u8], &'a [(&'a [u8], &'a [u8])]);
        let cases: &[Case] = &[
            (b"", &[]),
            (b"a", &[(b"a", b"")]),
            (b"a\n", &[(b"a", b"\n")]),
            (b"a\r\nb", &[(b"a", b"\r\n"), (b"b", b"")]),
            (b"\n\n", &[(b"", b"\n"), (b"", b"\n")]),
            (b"a\rb\n", &[(b"a\rb", b"\n")]),
            (b"\r\n", &[(b"", b"\r\n")]),
            (b"x\r", &[(b"x\r", b"")]),
        ];
        for (body, want) in cases {
            assert_eq!(pieces(body), *want, "{:?}", String::from_utf8_lossy(body));
            let joined: Vec<u8> = pieces(body)
                .iter()
                .flat_map(|(c, t)| [*c, *t].concat())
                .collect();
            assert_eq!(&joined, body);
        }
    }

    #[test]
    fn find_lf_agrees_with_a_scan() {
        let mut s = vec![b'a'; 40];
        assert_eq!(find_lf(&s), None);
        for at in 0..40 {
            s[at] = b'\n';
            assert_eq!(find_lf(&s), Some(at), "{at}");
            assert_eq!(find_lf(&s[..at]), None);
            s[at] = 0x8a; // `\n` with the high bit set
            assert_eq!(find_lf(&s), None, "{at}");
            s[at] = b'a';
        }
        assert_eq!(find_lf(b"\x0b\x09\x8a\x0a"), Some(3));
        for byte in [b'#', b'?', 0, 0xff] {
            let mut s = vec![byte.wrapping_add(1); 19];
            assert_eq!(find_byte(&s, byte), None);
            s[17] = byte;
            s[18] = byte;
            assert_eq!(find_byte(&s, byte), Some(17));
            s[9] = byte;
            assert_eq!(find_byte(&s, byte), Some(9));
        }
    }

    #[test]
    fn classify_table() {
        let tag = |name: &'static [u8], value| Class::Tag { name, value };
        let cases: [(&[u8], Class<'_>); 11] = [
            (b"", Class::Blank),
            (b" \t", Class::Blank),
            (b"# comment", Class::Comment),
            (b"#EXT", tag(b"EXT", None)),
            (b" #EXTINF:1,", Class::Comment),
            (b"#ext-x-key:x", Class::Comment),
            (b"#EXT-X-ENDLIST ", tag(b"EXT-X-ENDLIST", None)),
            (b"#EXTINF:4.0,title", tag(b"EXTINF", Some(8))),
            (b"seg.ts", Class::Uri { at: (0, 6) }),
            (b"  seg.ts \t", Class::Uri { at: (2, 8) }),
            (b"\xff\xfe", Class::Uri { at: (0, 2) }),
        ];
        for (line, want) in cases {
            assert_eq!(
                classify(line),
                want,
                "{:?}",
                line.escape_ascii().to_string()
            );
        }
    }

    #[test]
    fn eol_follows_the_first_line() {
        let crlf = b"#EXTM3U\r\nx\n";
        assert_eq!(eol_of(crlf, &split(crlf)), b"\r\n");
        let lf = b"#EXTM3U\nx\r\n";
        assert_eq!(eol_of(lf, &split(lf)), b"\n");
        let none = b"#EXTM3U";
        assert_eq!(eol_of(none, &split(none)), b"\n");
    }
}
