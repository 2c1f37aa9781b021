//! Table-style tests of the rewriter's edge cases (the golden files cover
//! whole playlists), and tests that the shared checkers of
//! [`super::testkit`] fail on output that breaks the rules.

use bytes::Bytes;

use crate::capability::{ByteRange, Serve};

use super::testkit::{CAP, FakeSigner, check_keys, check_structure, context};
use super::{Kind, RewriteError, Template, compile};

const PATH: &str = "/live/ch1/index.m3u8";

/// Compiles `body` at [`PATH`] (encrypting with `rotate` when given) and
/// returns the output rendered with [`CAP`], the template and the signer's
/// calls; runs the structural and key checks on the way.
fn rewrite(body: &str, rotate: Option<u64>) -> (String, Template, Vec<(String, Serve)>) {
    let signer = FakeSigner::default();
    let t = compile(body.as_bytes(), &context(PATH, rotate, &signer)).unwrap();
    check_structure(body.as_bytes(), &t, rotate.is_some());
    check_keys(&t, rotate.is_some());
    let out = String::from_utf8(t.render(CAP).to_vec()).unwrap();
    let calls = signer.calls.take();
    (out, t, calls)
}

/// The lines of `out` that are not in `body`, in order.
fn changed(body: &str, out: &str) -> Vec<String> {
    let before: Vec<&str> = body.lines().collect();
    out.lines()
        .filter(|l| !before.contains(l))
        .map(str::to_owned)
        .collect()
}

fn encrypt(inc_period_msn: (u64, u64), range: Option<ByteRange>) -> Serve {
    let (period, msn) = inc_period_msn;
    Serve::Encrypt {
        inc: super::testkit::INC,
        period,
        msn,
        range,
    }
}

#[test]
fn errors() {
    let signer = FakeSigner::default();
    let mut ctx = context(PATH, None, &signer);
    ctx.max_bytes = 18;
    let not = Err(RewriteError::NotPlaylist);
    for body in ["", "EXTM3U", " #EXTM3U", "\u{feff}", "<html>", "\n#EXTM3U"] {
        assert_eq!(compile(body.as_bytes(), &ctx).map(|_| ()), not, "{body:?}");
    }
    let ok = ["#EXTM3U", "\u{feff}#EXTM3U\n", "#EXTM3U\n#EXT-X-X:1"];
    for body in ok {
        let t = compile(body.as_bytes(), &ctx).unwrap();
        assert_eq!(&t.render(CAP)[..], body.as_bytes());
        assert_eq!(t.kind(), Kind::Master);
    }
    assert!(compile(b"#EXTM3U\n#EXT-X-X:1", &ctx).is_ok(), "18 bytes");
    let too_large = compile(b"#EXTM3U\n#EXT-X-X:12", &ctx).map(|_| ());
    assert_eq!(too_large, Err(RewriteError::TooLarge));
    // Size is checked first: a large non-playlist is too large.
    assert_eq!(
        compile(&[b'x'; 19], &ctx).map(|_| ()),
        Err(RewriteError::TooLarge)
    );
}

#[test]
fn attribute_syntax_is_kept() {
    let body = "#EXTM3U\n\
        #EXT-X-MEDIA:TYPE=AUDIO, URI = \"a.m3u8\" ,NAME=\"x,y\",\n\
        #EXT-X-MEDIA:TYPE=AUDIO,URI=unquoted.m3u8\n\
        #EXT-X-MEDIA:URI=\"first.m3u8\",URI=\"second.m3u8\"\n\
        #EXT-X-MEDIA:TYPE=AUDIO,URI=\"\"\n";
    let (out, ..) = rewrite(body, None);
    assert_eq!(
        changed(body, &out),
        [
            "#EXT-X-MEDIA:TYPE=AUDIO, URI = \"a.m3u8?tg=CAP\" ,NAME=\"x,y\",",
            "#EXT-X-MEDIA:TYPE=AUDIO,URI=unquoted.m3u8?tg=CAP",
            // Only the first of duplicate attributes is the URI.
            "#EXT-X-MEDIA:URI=\"first.m3u8?tg=CAP\",URI=\"second.m3u8\"",
        ]
    );
}

#[test]
fn key_goes_before_the_segment_block() {
    // No EXTINF: the key goes right before the URI line.
    let (out, t, _) = rewrite("#EXTM3U\n#EXT-X-TARGETDURATION:6\nx.ts\n", Some(60));
    let tag = super::testkit::fake_tag(
        "/.tollgate/key/live/ch1/7/0.key",
        &Serve::Key {
            until: super::testkit::KEY_UNTIL,
        },
    );
    let key = format!(
        "#EXT-X-KEY:METHOD=AES-128,URI=\"/.tollgate/key/live/ch1/7/0.key?tg=CAP&tgs={tag}\""
    );
    let key = key.as_str();
    assert_eq!(out.lines().nth(2), Some(key));
    assert_eq!(t.injected_key_lines(), 1);
    // Comments, unknown tags and DATERANGE are not segment-scoped: the key
    // goes after them, before the first EXTINF/PDT/DISCONTINUITY…
    let body = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n# c\n#EXT-X-DATERANGE:ID=\"a\"\n\
        #EXT-X-DISCONTINUITY\n#EXT-X-FOO\n#EXTINF:6,\nx.ts\n";
    let (out, ..) = rewrite(body, Some(60));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.get(4), Some(&key));
    assert_eq!(lines.get(5), Some(&"#EXT-X-DISCONTINUITY"));
}

#[test]
fn foreign_parts_and_maps_between_parts() {
    let body = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:5\n\
        #EXT-X-PART:DURATION=1,URI=\"p1.mp4\"\n\
        #EXT-X-PART:DURATION=1,URI=\"https://cdn.example/p2.mp4\"\n\
        #EXT-X-PART:DURATION=1,URI=\"p3.mp4\"\n\
        #EXT-X-MAP:URI=\"init.mp4\"\n\
        #EXT-X-PART:DURATION=1,URI=\"p4.mp4\"\n";
    let (out, t, calls) = rewrite(body, Some(40));
    let kinds: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-KEY:METHOD="))
        .map(|l| &l[..4])
        .collect();
    assert_eq!(kinds, ["AES-", "NONE", "AES-", "NONE", "AES-"]);
    assert_eq!(t.injected_key_lines(), 5);
    let msns: Vec<Option<u64>> = calls
        .iter()
        // Key URIs are signed too; only the URIs of the playlist count here.
        .filter(|(_, s)| !matches!(s, Serve::Key { .. }))
        .map(|(_, s)| match s {
            Serve::Encrypt { msn, .. } => Some(*msn),
            Serve::Clear { .. } | Serve::Key { .. } => None,
        })
        .collect();
    // p1, p3, init (clear), p4: all parts of segment 5.
    assert_eq!(msns, [Some(5), Some(5), None, Some(5)]);
}

#[test]
fn master_playlists_get_no_keys() {
    let body = "#EXTM3U\n#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"k.key\"\n\
        #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"odd.mp4\"\n\
        #EXT-X-PRELOAD-HINT:TYPE=WHAT,URI=\"odd2.mp4\"\n\
        #EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\nloose.m3u8\n";
    let (out, t, calls) = rewrite(body, Some(60));
    assert_eq!(t.kind(), Kind::Master);
    assert_eq!(t.injected_key_lines(), 0);
    assert!(t.segment_msns().is_empty());
    assert!(!out.contains("#EXT-X-KEY"));
    // A part hint in a master is signed to be encrypted, never clear; an
    // unknown hint type and playlists get the capability only.
    let clear = Serve::Clear { range: None };
    assert_eq!(
        calls,
        [
            ("/live/ch1/k.key".to_owned(), clear),
            ("/live/ch1/odd.mp4".to_owned(), encrypt((0, 0), None)),
        ]
    );
    assert!(out.contains("odd2.mp4?tg=CAP\"") && out.contains("\nloose.m3u8?tg=CAP\n"));
}

#[test]
fn origin_encryption_is_recognized_by_method() {
    // No METHOD, or METHOD=NONE: not encrypted by the origin; our key ends
    // at the origin's key line and is written again.
    for key in ["#EXT-X-KEY:URI=\"k\"", "#EXT-X-KEY:METHOD=NONE"] {
        let body = format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\na.ts\n{key}\n#EXTINF:6,\nb.ts\n"
        );
        let (_, t, _) = rewrite(&body, Some(60));
        assert!(!t.origin_encrypted(), "{key}");
        assert_eq!(t.injected_key_lines(), 2, "{key}");
    }
    for method in ["AES-128", "SAMPLE-AES", "SAMPLE-AES-CTR", "FUTURE"] {
        let body = format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-KEY:METHOD={method},URI=\"k\"\n#EXTINF:6,\na.ts\n"
        );
        let (_, t, calls) = rewrite(&body, Some(60));
        assert!(t.origin_encrypted(), "{method}");
        assert_eq!(t.injected_key_lines(), 0);
        assert!(
            calls
                .iter()
                .all(|(_, s)| matches!(s, Serve::Clear { range: None }))
        );
    }
}

#[test]
fn variables_resolve_tag_paths() {
    let body = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-DEFINE:NAME=\"d\",VALUE=\"hd\"\n\
        #EXT-X-DEFINE:IMPORT=\"imp\"\n#EXTINF:6,\n{$d}/a.ts?x={$imp}\n#EXTINF:6,\n{$imp}/b.ts\n";
    let (out, _, calls) = rewrite(body, Some(60));
    // The query is signed as written: a variable this playlist does not
    // define is not substituted (a player that does gets 403 on an
    // encrypting route; docs/hls.md §5).
    assert_eq!(
        calls,
        [
            (
                "/.tollgate/key/live/ch1/7/0.key".to_owned(),
                Serve::Key {
                    until: super::testkit::KEY_UNTIL
                }
            ),
            (
                "/live/ch1/hd/a.ts?x={$imp}".to_owned(),
                encrypt((0, 0), None)
            )
        ]
    );
    assert!(out.contains("\n{$d}/a.ts?x={$imp}&tg=CAP&tgs=e.7.0.0."));
    // An imported variable in the path: unknown here, left alone (clear).
    assert!(out.contains("#EXT-X-KEY:METHOD=NONE\n#EXTINF:6,\n{$imp}/b.ts\n"));
}

#[test]
fn key_periods() {
    let periods = |body: &str, rotate| -> Vec<u64> {
        let (_, _, calls) = rewrite(body, Some(rotate));
        calls
            .iter()
            .filter_map(|(_, s)| match s {
                Serve::Encrypt { period, .. } => Some(*period),
                Serve::Clear { .. } | Serve::Key { .. } => None,
            })
            .collect()
    };
    let segs = "#EXTINF:1,\na.ts\n#EXTINF:1,\nb.ts\n#EXTINF:1,\nc.ts\n";
    let live = |head: &str| format!("#EXTM3U\n{head}#EXT-X-MEDIA-SEQUENCE:11\n{segs}");
    // No (or a malformed) target duration: 10 s, so 60 s is 6 segments a
    // period: 11/6 = 1, 12/6 = 2, 13/6 = 2.
    assert_eq!(periods(&live(""), 60), [1, 2, 2]);
    assert_eq!(periods(&live("#EXT-X-TARGETDURATION:x\n"), 60), [1, 2, 2]);
    // A rotation shorter than a segment: a period per segment.
    assert_eq!(periods(&live("#EXT-X-TARGETDURATION:6\n"), 1), [11, 12, 13]);
    // 6.5 s counts as 7: 60 / 7 = 8 segments per period.
    assert_eq!(periods(&live("#EXT-X-TARGETDURATION:6.5\n"), 60), [1, 1, 1]);
    assert_eq!(periods(&live("#EXT-X-TARGETDURATION:0\n"), 2), [5, 6, 6]);
}

#[test]
fn media_sequence_edges() {
    let body =
        "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:18446744073709551615\n#EXTINF:1,\na.ts\n#EXTINF:1,\nb.ts\n";
    let (_, t, _) = rewrite(body, None);
    // Saturates rather than wrapping (or panicking) past u64::MAX.
    assert_eq!(t.segment_msns(), [u64::MAX, u64::MAX]);
    // Encrypting, the second segment would reuse the first one's (key, IV).
    let signer = FakeSigner::default();
    let enc = compile(body.as_bytes(), &context(PATH, Some(60), &signer));
    assert_eq!(enc.err(), Some(RewriteError::MsnOverflow));
    // So would a part of the segment after the last, or an EXT-X-SKIP past the end.
    for tail in [
        "#EXT-X-PART:DURATION=1,URI=\"p.ts\"\n",
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p.ts\"\n",
    ] {
        let body = format!(
            "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:18446744073709551615\n#EXTINF:1,\na.ts\n{tail}"
        );
        let enc = compile(body.as_bytes(), &context(PATH, Some(60), &signer));
        assert_eq!(enc.err(), Some(RewriteError::MsnOverflow), "{tail}");
    }
    let skip = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:18446744073709551610\n\
        #EXT-X-SKIP:SKIPPED-SEGMENTS=10\n#EXTINF:1,\na.ts\n";
    let enc = compile(skip.as_bytes(), &context(PATH, Some(60), &signer));
    assert_eq!(enc.err(), Some(RewriteError::MsnOverflow));
    // The very last MSN alone is fine (explicit IV, hls.js keeps 32 bits).
    let last = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:18446744073709551615\n#EXTINF:1,\na.ts\n";
    let (out, t, _) = rewrite(last, Some(60));
    assert_eq!(t.segment_msns(), [u64::MAX]);
    assert!(
        out.contains(",IV=0x0000000000000000ffffffffffffffff"),
        "{out}"
    );
    let body = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:-3\n#EXTINF:1,\na.ts\n";
    let (_, t, _) = rewrite(body, Some(60));
    assert_eq!((t.media_sequence(), t.segment_msns()), (0, &[0][..]));
}

#[test]
fn templates_are_deterministic_and_cap_free() {
    let body = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\na.ts\n";
    let signer = FakeSigner::default();
    let ctx = context(PATH, Some(60), &signer);
    let t = compile(body.as_bytes(), &ctx).unwrap();
    assert_eq!(compile(body.as_bytes(), &ctx).unwrap(), t);
    assert_eq!(t.cap_count(), 2);
    assert_eq!(t.render(""), t.text);
    let (a, b) = (t.render("Q1"), t.render("Q22"));
    assert_eq!(b.len(), a.len() + t.cap_count());
    assert_eq!(
        String::from_utf8_lossy(&b).replace("Q22", "Q1").as_bytes(),
        &a[..]
    );
}

/// A template whose rendered text is `text` with [`CAP`] at each `tg=`.
fn template_of(text: &str, like: &Template) -> Template {
    let bare = text.replace(&format!("tg={CAP}"), "tg=");
    let caps = bare.match_indices("tg=").map(|(i, _)| i + 3).collect();
    Template {
        text: Bytes::from(bare),
        caps,
        facts: like.facts.clone(),
    }
}

const LIVE: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:9\n\
    #EXT-X-MAP:URI=\"i.mp4\"\n#EXTINF:6,t\na.ts?x=1\n#EXT-X-BYTERANGE:5@0\n#EXTINF:6,\nb.ts\n\
    #EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"j.mp4\"\n#EXTINF:6,\nc.ts\n";

/// Rewrites [`LIVE`] encrypting, applies `mutate` to the output, and runs
/// both checks on the result: each mutation below must make them fail.
fn check_mutated(mutate: impl Fn(&str) -> String) {
    let (out, t, _) = rewrite(LIVE, Some(60));
    let bad = mutate(&out);
    assert_ne!(bad, out, "the mutation changed nothing");
    let bad = template_of(&bad, &t);
    check_structure(LIVE.as_bytes(), &bad, true);
    check_keys(&bad, true);
}

#[test]
fn checks_pass_on_the_unmutated_output() {
    let (out, t, _) = rewrite(LIVE, Some(60));
    let same = template_of(&out, &t);
    check_structure(LIVE.as_bytes(), &same, true);
    check_keys(&same, true);
}

#[test]
#[should_panic(expected = "does not align")]
fn structure_check_catches_a_lost_uri() {
    check_mutated(|o| o.replacen("a.ts?x=1&", "a.ts?", 1));
}

#[test]
#[should_panic(expected = "does not align")]
fn structure_check_catches_a_changed_title() {
    check_mutated(|o| o.replacen("#EXTINF:6,t", "#EXTINF:6,u", 1));
}

#[test]
#[should_panic(expected = "does not align")]
fn structure_check_catches_a_lost_comment_or_line() {
    check_mutated(|o| o.replacen("#EXT-X-DISCONTINUITY\n", "", 1));
}

#[test]
#[should_panic(expected = "injected key lines")]
fn structure_check_counts_injected_keys() {
    check_mutated(|o| o.replacen("#EXT-X-KEY:METHOD=NONE\n", "", 1));
}

#[test]
#[should_panic(expected = "a key is in effect")]
fn key_check_catches_a_key_over_a_map() {
    // The NONE line moved from before the second MAP to after it.
    check_mutated(|o| {
        let mut lines: Vec<&str> = o.split_inclusive('\n').collect();
        let none = lines
            .iter()
            .position(|l| *l == "#EXT-X-KEY:METHOD=NONE\n")
            .unwrap();
        lines.swap(none, none + 1);
        lines.concat()
    });
}

#[test]
#[should_panic(expected = "key in effect")]
fn key_check_catches_a_wrong_period() {
    check_mutated(|o| o.replacen("/7/0.key", "/7/1.key", 1));
}

#[test]
fn clear_ranges_are_bounded() {
    let body = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n\
        #EXT-X-MAP:URI=\"f.mp4\",BYTERANGE=\"700\"\n\
        #EXT-X-PRELOAD-HINT:TYPE=MAP,URI=\"f.mp4\",BYTERANGE-START=9000\n\
        #EXT-X-PRELOAD-HINT:TYPE=MAP,URI=\"f.mp4\",BYTERANGE-LENGTH=800\n";
    let (out, _, calls) = rewrite(body, Some(60));
    let clear = |offset, length| Serve::Clear {
        range: Some(ByteRange {
            offset,
            length: Some(length),
        }),
    };
    let path = "/live/ch1/f.mp4".to_owned();
    assert_eq!(
        calls,
        [(path.clone(), clear(0, 700)), (path, clear(0, 800))]
    );
    // The open-ended hint: capability only, its attributes kept.
    assert!(
        out.contains("\n#EXT-X-PRELOAD-HINT:TYPE=MAP,URI=\"f.mp4?tg=CAP\",BYTERANGE-START=9000\n")
    );
    // Without encryption nothing is converted or signed.
    let (plain, _, calls) = rewrite(body, None);
    assert!(calls.is_empty());
    assert_eq!(plain.replace("?tg=CAP", ""), body);
}

#[test]
fn media_window_counts_segments_like_the_rewriter() {
    use crate::hls::media_window;
    let p = b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE: 7 \n#EXTINF:2,\na.ts\n\n#EXTINF:2,\r\nb.ts\r\n";
    assert_eq!(media_window(p), Some((7, 8)));
    assert_eq!(
        media_window(b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n"),
        Some((0, 0))
    );
    assert_eq!(
        media_window(b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"),
        None
    );
}

/// Catch-up mode (`hls::stable`): compile `body` with stable segment ids.
fn rewrite_stable(body: &str) -> Result<(String, Vec<(String, Serve)>), RewriteError> {
    let signer = FakeSigner::default();
    let mut ctx = context(PATH, Some(600), &signer);
    ctx.encrypt = ctx.encrypt.map(|e| super::Encrypt { stable: true, ..e });
    let t = compile(body.as_bytes(), &ctx)?;
    check_structure(body.as_bytes(), &t, true);
    let out = String::from_utf8(t.render(CAP).to_vec()).unwrap();
    Ok((out, signer.calls.take()))
}

/// (segment path, period, id) of every encrypted segment, and every key
/// line's IV, in order.
fn stable_serves(calls: &[(String, Serve)]) -> Vec<(String, u64, u64)> {
    calls
        .iter()
        .filter_map(|(path, s)| match s {
            Serve::Encrypt { period, msn, .. } => Some((path.clone(), *period, *msn)),
            _ => None,
        })
        .collect()
}

#[test]
fn catch_up_segments_get_the_same_key_and_iv_in_every_window() {
    let day = 1_733_097_600_000_i64; // 2024-12-02T00:00:00Z
    let live = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:100\n\
        #EXT-X-PROGRAM-DATE-TIME:2024-12-02T00:00:00.000Z\n\
        #EXTINF:6,\nseg-100.ts\n#EXTINF:6,\nseg-101.ts\n#EXTINF:6,\nseg-102.ts\n\
        #EXTINF:6,\nseg-103.ts\n";
    // An archive window listing two of them at other positions, dated per
    // segment (as Flussonic does), VOD-like.
    let archive = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-PLAYLIST-TYPE:VOD\n\
        #EXT-X-PROGRAM-DATE-TIME:2024-12-02T00:00:12.000Z\n#EXTINF:6,\nseg-102.ts\n\
        #EXT-X-PROGRAM-DATE-TIME:2024-12-02T00:00:18.000Z\n#EXTINF:6,\nseg-103.ts\n\
        #EXT-X-PROGRAM-DATE-TIME:2024-12-02T00:00:24.000Z\n#EXTINF:6,\nseg-104.ts\n\
        #EXT-X-ENDLIST\n";
    let (live_out, live_calls) = rewrite_stable(live).unwrap();
    let (arch_out, arch_calls) = rewrite_stable(archive).unwrap();
    let a = stable_serves(&live_calls);
    let b = stable_serves(&arch_calls);
    assert_eq!(a.len(), 4);
    assert_eq!(b.len(), 3);
    assert_eq!(a[2], b[0], "seg-102");
    assert_eq!(a[3], b[1], "seg-103");
    // Each id is the documented hash of the segment and its time.
    for (i, (path, period, id)) in a.iter().enumerate() {
        let t = day + 6_000 * i as i64;
        assert_eq!(*id, super::stable::segment_id(path, None, None, t));
        assert_eq!(*period, super::stable::period(t, 600));
    }
    // Ids differ between segments; every segment has its own key line
    // whose IV is the id.
    let ids: std::collections::HashSet<u64> = a.iter().chain(&b).map(|s| s.2).collect();
    assert_eq!(ids.len(), 5);
    for (out, serves) in [(&live_out, &a), (&arch_out, &b)] {
        let ivs: Vec<String> = out
            .lines()
            .filter(|l| l.starts_with("#EXT-X-KEY:METHOD=AES-128"))
            .map(|l| l.rsplit_once(",IV=0x").unwrap().1.to_owned())
            .collect();
        let want: Vec<String> = serves.iter().map(|s| format!("{:032x}", s.2)).collect();
        assert_eq!(ivs, want, "{out}");
        // The key line comes before the segment's EXTINF and date.
        assert!(!out.contains("#EXTINF:6,\n#EXT-X-KEY"), "{out}");
    }
}

#[test]
fn catch_up_without_dates_or_with_parts_falls_back_to_position_keys() {
    let undated = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\na.ts\n";
    assert_eq!(
        rewrite_stable(undated).map(|_| ()),
        Err(RewriteError::Undated)
    );
    // A date after the first segment leaves that one undated.
    let late = "#EXTM3U\n#EXTINF:6,\na.ts\n\
        #EXT-X-PROGRAM-DATE-TIME:2024-12-02T00:00:00Z\n#EXTINF:6,\nb.ts\n";
    assert_eq!(rewrite_stable(late).map(|_| ()), Err(RewriteError::Undated));
    let broken = "#EXTM3U\n#EXT-X-PROGRAM-DATE-TIME:yesterday\n#EXTINF:6,\na.ts\n";
    assert_eq!(
        rewrite_stable(broken).map(|_| ()),
        Err(RewriteError::Undated)
    );
    // Parts: position keys at once (no error).
    let ll = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:5\n#EXT-X-PROGRAM-DATE-TIME:2024-12-02T00:00:00Z\n\
        #EXT-X-PART:DURATION=1,URI=\"p1.mp4\"\n#EXTINF:1,\ns5.mp4\n";
    let (_, calls) = rewrite_stable(ll).unwrap();
    assert!(stable_serves(&calls).iter().all(|s| s.2 == 5), "{calls:?}");
    // A foreign segment still moves the clock: the next one is dated right.
    let mixed = "#EXTM3U\n#EXT-X-PROGRAM-DATE-TIME:2024-12-02T00:00:00Z\n\
        #EXTINF:6,\nhttps://elsewhere.example/x.ts\n#EXTINF:6,\nb.ts\n";
    let (_, calls) = rewrite_stable(mixed).unwrap();
    let s = stable_serves(&calls);
    assert_eq!(s.len(), 1);
    assert_eq!(
        s[0].2,
        super::stable::segment_id("/live/ch1/b.ts", None, None, 1_733_097_606_000)
    );
}

#[test]
fn catch_up_generations_switch_keys_at_their_first_period() {
    // Three 10-minute periods of two-minute segments from 2024-12-02T00:00Z;
    // a second generation from the third period (index 2_888_498 + 2).
    let p0 = 1_733_097_600 / 600;
    let mut body = String::from("#EXTM3U\n#EXT-X-TARGETDURATION:120\n");
    for i in 0..15 {
        let t = 1_733_097_600 + 120 * i;
        body.push_str(&format!(
            "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:120,\ns{i}.ts\n",
            crate::units::rfc3339(t)
        ));
    }
    let signer = FakeSigner::default();
    let generations = [(p0 + 2, 0xabc)];
    let mut ctx = context(PATH, Some(600), &signer);
    ctx.encrypt = ctx.encrypt.map(|e| super::Encrypt {
        stable: true,
        generations: &generations,
        ..e
    });
    let t = compile(body.as_bytes(), &ctx).unwrap();
    let out = String::from_utf8(t.render(CAP).to_vec()).unwrap();
    let incs: Vec<(u64, u64)> = stable_serves(&signer.calls.take())
        .iter()
        .map(|(_, period, _)| *period)
        .zip(
            out.lines()
                .filter_map(|l| l.split("/.tollgate/key/live/ch1/").nth(1))
                .map(|rest| rest.split('/').next().unwrap().parse().unwrap()),
        )
        .collect();
    assert_eq!(incs.len(), 15);
    for (period, inc) in incs {
        let want = if period >= p0 + 2 {
            0xabc
        } else {
            super::testkit::INC
        };
        assert_eq!(inc, want, "period {period}");
    }
}
