//! Playlist text that a player could read differently from tollgate: such a
//! URI never carries a capability.
//!
//! Players do not resolve URIs byte for byte. hls.js trims each URI with
//! JavaScript's `String.prototype.trim` (every Unicode space, U+FEFF, line
//! terminators) before resolving it; the WHATWG URL parser strips leading
//! and trailing C0 controls and spaces, deletes tabs and newlines anywhere
//! and reads `\` as `/`. So ` //evil.example/x` or `\u{a0}//evil.example/x`,
//! a relative path to a byte-exact RFC 3986 reader, is another host to a
//! browser. And players split lines at more than `\n`: hls.js and ExoPlayer
//! at a lone `\r`, ffmpeg also at NUL, Apple's parsers perhaps at U+2028.
//! A line holding such a byte is one line to tollgate and two to a player,
//! whose second part may be a URI on another host.
//!
//! The rule is therefore conservative: a URI that a trimming parser would
//! change, or that holds a byte some player reads as structure, is foreign
//! (copied byte for byte, no capability), and so is every URI on a line
//! that some player would split. Legitimate playlists have neither.
//!
//! Pure core: no I/O, no allocation, never panics.

/// Whether the URI text `uri` (quotes removed; for a URI line, the blanks
/// around it removed) could be read differently by a player: it starts or
/// ends with a character some parser trims (see [`is_trimmed`]), or holds a
/// control character, DEL, `\` or a Unicode line separator anywhere.
pub(crate) fn is_hostile(uri: &str) -> bool {
    let edges = [uri.chars().next(), uri.chars().next_back()];
    if edges.into_iter().flatten().any(is_trimmed) {
        return true;
    }
    let odd_ascii = uri.bytes().fold(false, |acc, b| {
        acc | (b < 0x20) | (b == 0x7f) | (b == b'\\')
    });
    odd_ascii || (!uri.is_ascii() && uri.chars().any(is_line_break))
}

/// Whether some player would end a line inside `content` (one line's bytes
/// without its `\n` or `\r\n`): at a lone `\r` (hls.js, ExoPlayer, ffmpeg),
/// NUL (ffmpeg), a vertical tab or form feed, or U+0085, U+2028, U+2029
/// (parsers that split at every Unicode newline).
pub(crate) fn splits_line(content: &[u8]) -> bool {
    let odd_control = content.iter().fold(false, |acc, &b| {
        acc | (b == b'\r') | (b == 0) | (b == 0x0b) | (b == 0x0c)
    });
    // U+0085 is C2 85, U+2028/U+2029 are E2 80 A8/A9 in UTF-8.
    let next = content.get(1..).unwrap_or_default();
    let odd_pair = content.iter().zip(next).fold(false, |acc, (&a, &b)| {
        acc | ((a == 0xc2) & (b == 0x85)) | ((a == 0x80) & ((b == 0xa8) | (b == 0xa9)))
    });
    odd_control || (odd_pair && std::str::from_utf8(content).map_or(true, has_line_break))
}

fn has_line_break(s: &str) -> bool {
    s.chars().any(is_line_break)
}

/// Unicode characters some parser ends a line at.
fn is_line_break(c: char) -> bool {
    matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Characters a player may strip from either end of a URI: the WHATWG URL
/// parser's C0 controls and space, JavaScript's `trim` (Unicode
/// `White_Space`, U+FEFF), and the invisible format characters older
/// engines or other players also strip (U+180E, U+200B–U+200D, U+2060).
fn is_trimmed(c: char) -> bool {
    c <= ' '
        || c.is_whitespace()
        || matches!(
            c,
            '\u{7f}' | '\u{180e}' | '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}'
        )
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{CAP, FakeSigner, context};
    use super::*;

    /// Characters that JavaScript's `trim` or the WHATWG URL parser strip.
    const TRIMMED: &[char] = &[
        ' ', '\t', '\n', '\r', '\u{0}', '\u{1}', '\u{1f}', '\u{b}', '\u{c}', '\u{a0}', '\u{1680}',
        '\u{2000}', '\u{2005}', '\u{200a}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}',
        '\u{3000}', '\u{feff}', '\u{85}', '\u{180e}', '\u{200b}',
    ];

    #[test]
    fn trimmable_edges_are_hostile() {
        assert!(!TRIMMED.is_empty());
        for &c in TRIMMED {
            for uri in [
                format!("{c}//evil.example/x.ts"),
                format!("{c}https://evil.example/x.ts"),
                format!("seg.ts{c}"),
                format!("{c}seg.ts"),
            ] {
                assert!(is_hostile(&uri), "{uri:?}");
            }
        }
    }

    #[test]
    fn odd_bytes_anywhere_are_hostile() {
        for uri in [
            "/\t/evil.example/x.ts",
            "\\\\evil.example/x.ts",
            "/\\evil.example/x.ts",
            "seg.ts?a=\r//evil.example/x",
            "seg.ts#\n",
            "se\u{7f}g.ts",
            "seg.ts?\u{2028}//evil.example/x",
            "a\u{85}b",
        ] {
            assert!(is_hostile(uri), "{uri:?}");
        }
    }

    #[test]
    fn ordinary_uris_are_not() {
        for uri in [
            "seg-1.ts",
            "../ch2/index.m3u8?x=1#t=2",
            "https://cdn.example/a%20b.ts",
            "caf\u{e9}/\u{65e5}\u{672c}.ts",
            "a\u{a0}b.ts",
            "{$dir}/s.ts",
            "x",
        ] {
            assert!(!is_hostile(uri), "{uri:?}");
        }
    }

    #[test]
    fn lines_players_split() {
        for line in [
            &b"seg.ts?x\r//evil.example/a.ts"[..],
            b"#EXT-X-KEY:METHOD=AES-128,IV=0x1\r//evil.example/x,URI=\"k\"",
            b"seg.ts\0//evil.example/a.ts",
            b"seg.ts\x0b//evil.example/a.ts",
            b"seg.ts\x0c",
            "seg.ts\u{2028}//evil.example/a.ts".as_bytes(),
            "seg.ts\u{2029}".as_bytes(),
            "seg.ts\u{85}x".as_bytes(),
        ] {
            assert!(splits_line(line), "{line:?}");
        }
        for line in [
            &b"seg.ts"[..],
            b"#EXTINF:2.0,\ttitle",
            "#EXTINF:2,caf\u{e9} \u{2027}\u{8028}\u{a0}".as_bytes(),
            b"",
        ] {
            assert!(!splits_line(line), "{line:?}");
        }
        // Not UTF-8, with the bytes of a separator: judged as splitting.
        assert!(splits_line(b"\xff\xe2\x80\xa8"));
    }

    /// The whole rewriter (`compile` and `render`), rendering [`CAP`].
    fn rewrite(body: &str, rotate: Option<u64>) -> String {
        let signer = FakeSigner::default();
        let ctx = context("/live/ch1/index.m3u8", rotate, &signer);
        let t = super::super::compile(body.as_bytes(), &ctx).unwrap();
        String::from_utf8(t.render(CAP).to_vec()).unwrap()
    }

    /// URIs a trimming player (hls.js, the WHATWG URL parser) would send to
    /// another host, and every URI on a line some player splits, are copied
    /// without a capability; an ordinary URI on a clean line still gets one.
    #[test]
    fn player_trimmed_and_split_uris_get_no_capability() {
        let foreign = [
            " //evil.example/a.ts",
            "\u{a0}//evil.example/a.ts",
            "\u{feff}https://evil.example/a.ts",
            "\u{3000}//evil.example/a.ts",
            "\u{2009}//evil.example/a.ts",
            "\u{1}//evil.example/a.ts",
            "1http://evil.example/a.ts",
        ];
        for uri in foreign {
            for encrypting in [None, Some(2)] {
                let body = format!(
                    "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"{uri}\"\n\
                     #EXTINF:2,\nseg-1.ts\n#EXT-X-PART:DURATION=1,URI=\"{uri}\"\n"
                );
                let out = rewrite(&body, encrypting);
                for line in out.lines().filter(|l| l.contains("evil.example")) {
                    assert!(!line.contains(CAP), "{uri:?}: {line:?}");
                }
                assert!(out.contains(&format!("seg-1.ts?tg={CAP}")), "{out}");
            }
        }
        // One line to tollgate, two to hls.js/ExoPlayer/ffmpeg: nothing on it
        // is signed, the lines around it are.
        for split in ["\r", "\u{0}", "\u{2028}", "\u{b}"] {
            let body = format!(
                "#EXTM3U\n#EXT-X-TARGETDURATION:2\n\
                 #EXT-X-MAP:X-A=\"{split}//evil.example/m\",URI=\"init.mp4\"\n\
                 #EXTINF:2,\nseg-1.ts?x{split}//evil.example/a.ts\n#EXTINF:2,\nseg-2.ts\n"
            );
            let out = rewrite(&body, None);
            for line in out.split('\n').filter(|l| l.contains("evil.example")) {
                assert!(!line.contains(CAP), "{split:?}: {line:?}");
            }
            assert!(out.contains(&format!("seg-2.ts?tg={CAP}")), "{out}");
        }
    }
}
