//! Property tests of the rewriter over random playlists built from a
//! grammar of lines (tags with and without URI attributes, URI lines of
//! every kind, comments, blanks, LF and CRLF), and over arbitrary bytes.
//!
//! Asserted for every generated playlist, plain and encrypting:
//! - no URI is lost or added: the URIs of the output, stripped of the
//!   proxy's parameters, are the input's, in order;
//! - the rendered output holds the capability exactly once per own URI
//!   plus once per injected AES-128 key line;
//! - the structural check and the key check of [`super::testkit`] pass;
//! - the MSNs are the media sequence plus skipped segments plus the index.
//!
//! And for arbitrary bytes: compiling never panics, and a compiled template
//! renders to its text plus one capability per splice.

use proptest::prelude::*;

use super::testkit::{
    CAP, FakeSigner, KEY_PREFIX, check_keys, check_structure, context, same_uri, uris,
};
use super::{Kind, RewriteError, compile};

/// URIs the proxy serves, relative to `/live/ch1/index.m3u8`.
const OWN: &[&str] = &[
    "seg1.ts",
    "a/b.ts?x=1",
    "../up.ts#f",
    "/abs/p.ts?",
    "s%20p.ts",
    "http://origin.example:8081/base/live/x.ts?k=v",
    "//origin.example:8081/base/y.ts",
];

/// URIs left alone: other hosts and schemes, outside the origin's base
/// path, or not resolvable.
const FOREIGN: &[&str] = &[
    "https://other.example/x.ts",
    "data:,x",
    "skd://k",
    "http://origin.example:8081/other/z.ts",
    "../../../../x.ts",
];

/// Tags with a URI attribute; `{u}` is replaced by a URI.
const URI_TAGS: &[&str] = &[
    r#"#EXT-X-MAP:URI="{u}""#,
    r#"#EXT-X-MAP:URI="{u}",BYTERANGE="10@0""#,
    r#"#EXT-X-PART:DURATION=1.0,URI="{u}""#,
    r#"#EXT-X-PART:DURATION=1.0,URI="{u}",BYTERANGE="5@0",INDEPENDENT=YES"#,
    r#"#EXT-X-PART:BYTERANGE="7",URI="{u}""#,
    r#"#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{u}""#,
    r#"#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{u}",BYTERANGE-START=10"#,
    r#"#EXT-X-PRELOAD-HINT:BYTERANGE-LENGTH=5,TYPE=MAP,URI="{u}""#,
    r#"#EXT-X-KEY:METHOD=AES-128,URI="{u}""#,
    r#"#EXT-X-SESSION-KEY:METHOD=AES-128,URI="{u}""#,
    r#"#EXT-X-SESSION-DATA:DATA-ID="x",URI="{u}""#,
    r#"#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="n,1",URI="{u}""#,
    r#"#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI="{u}""#,
    r#"#EXT-X-RENDITION-REPORT:URI="{u}",LAST-MSN=1"#,
    r#"#EXT-X-CONTENT-STEERING:SERVER-URI="{u}",PATHWAY-ID="p""#,
];

/// Lines without a URI the rewriter may touch.
const OTHER: &[&str] = &[
    "",
    " ",
    "# comment",
    "#EXTINF:6.0,",
    "#EXTINF:6.0,",
    "#EXT-X-TARGETDURATION:6",
    "#EXT-X-TARGETDURATION:6.0",
    "#EXT-X-MEDIA-SEQUENCE:4294967290",
    "#EXT-X-MEDIA-SEQUENCE:12",
    "#EXT-X-DISCONTINUITY",
    "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00Z",
    "#EXT-X-GAP",
    "#EXT-X-KEY:METHOD=NONE",
    "#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL=12,CAN-BLOCK-RELOAD=YES",
    "#EXT-X-SKIP:SKIPPED-SEGMENTS=3",
    "#EXT-X-STREAM-INF:BANDWIDTH=1",
    "#EXT-X-UNKNOWN:URI=\"u.ts\"",
    "#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,INSTREAM-ID=\"CC1\"",
    "#EXT-X-ENDLIST",
    "#EXT-X-PART-INF:PART-TARGET=1",
];

/// Tags that make a playlist a media playlist (left out of masters).
const MEDIA_ONLY: &[&str] = &[
    "#EXTINF",
    "#EXT-X-TARGETDURATION",
    "#EXT-X-MEDIA-SEQUENCE",
    "#EXT-X-PART",
    "#EXT-X-ENDLIST",
];

fn any_uri() -> impl Strategy<Value = &'static str> {
    prop::sample::select([OWN, FOREIGN].concat())
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any_uri().prop_map(str::to_owned),
        1 => any_uri().prop_map(|u| format!("  {u} ")),
        2 => (prop::sample::select(URI_TAGS), any_uri()).prop_map(|(t, u)| t.replace("{u}", u)),
        1 => (1u64..100, prop::option::of(0u64..50)).prop_map(|(n, o)| match o {
            Some(o) => format!("#EXT-X-BYTERANGE:{n}@{o}"),
            None => format!("#EXT-X-BYTERANGE:{n}"),
        }),
        4 => prop::sample::select(OTHER).prop_map(str::to_owned),
    ]
}

/// A playlist: `#EXTM3U`, then lines, each ended by LF or CRLF, the last
/// one maybe by nothing. A master when `master` (media-only tags removed).
fn playlist() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        prop::collection::vec((line(), any::<bool>()), 0..40),
        any::<bool>(),
    )
        .prop_map(|(master, lines, final_eol)| {
            let mut body = String::from("#EXTM3U\n");
            let kept = lines
                .iter()
                .filter(|(l, _)| !master || !MEDIA_ONLY.iter().any(|m| l.starts_with(m)));
            for (l, crlf) in kept {
                body.push_str(l);
                body.push_str(if *crlf { "\r\n" } else { "\n" });
            }
            if !final_eol && body.ends_with('\n') {
                body.pop();
                if body.ends_with('\r') {
                    body.pop();
                }
            }
            body.into_bytes()
        })
}

/// The MSNs the input's segments must get, computed without the rewriter:
/// the first media sequence (or 0) + skipped segments so far + index.
fn expected_msns(body: &[u8]) -> Vec<u64> {
    let text = String::from_utf8_lossy(body);
    let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    let base = lines
        .iter()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let mut next = base;
    let mut msns = Vec::new();
    for l in lines.iter().skip(1) {
        if let Some(n) = l.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS=") {
            next += n.parse::<u64>().unwrap();
        } else if !l.starts_with('#') && !l.trim().is_empty() {
            msns.push(next);
            next += 1;
        }
    }
    msns
}

fn check_playlist(body: &[u8], rotate: Option<u64>) -> Result<(), TestCaseError> {
    let signer = FakeSigner::default();
    let ctx = context("/live/ch1/index.m3u8", rotate, &signer);
    let t = compile(body, &ctx).unwrap();
    let out = t.render(CAP);

    let injected = |u: &String| u.starts_with(KEY_PREFIX);
    let (ins, mut outs) = (uris(body), uris(&out));
    outs.retain(|u| !injected(u));
    prop_assert_eq!(ins.len(), outs.len(), "URI count");
    for (i, o) in ins.iter().zip(&outs) {
        prop_assert!(same_uri(i, o), "{:?} became {:?}", i, o);
        prop_assert_eq!(
            o.contains(&format!("tg={CAP}")),
            OWN.contains(&i.as_str()),
            "{:?}",
            o
        );
    }
    let own = ins.iter().filter(|u| OWN.contains(&u.as_str())).count();
    let text = String::from_utf8_lossy(&out);
    let key_lines = text
        .matches("#EXT-X-KEY:METHOD=AES-128,URI=\"/.tollgate/")
        .count();
    prop_assert_eq!(text.matches(&format!("tg={CAP}")).count(), own + key_lines);
    prop_assert_eq!(t.cap_count(), own + key_lines);

    check_structure(body, &t, rotate.is_some());
    check_keys(&t, rotate.is_some());
    if t.kind() == Kind::Media {
        prop_assert_eq!(t.segment_msns(), &expected_msns(body)[..]);
    } else {
        prop_assert!(t.segment_msns().is_empty());
        prop_assert_eq!(t.injected_key_lines(), 0);
    }
    Ok(())
}

/// Pieces that steer arbitrary bytes into the rewriter's corners.
const HOSTILE: &[&str] = &[
    "\n",
    "\r\n",
    "\r",
    "#EXT-X-PART:URI=\"",
    "#EXT-X-MAP:URI=",
    "#EXTINF:1,\n",
    "\"",
    ",",
    "=",
    "URI=\"",
    "BYTERANGE=\"",
    "@",
    "#EXT-X-BYTERANGE:",
    "#EXT-X-KEY:METHOD=NONE\n",
    "#EXT-X-PRELOAD-HINT:TYPE=PART,",
    "BYTERANGE-START=",
    "{$",
    "}",
    "%",
    "%2e%2e/",
    "../",
    "//",
    "http://origin.example:8081/base/",
    "?",
    "#",
    "\u{e9}",
    "\u{feff}",
    "18446744073709551615",
    "#EXT-X-MEDIA-SEQUENCE:",
    "#EXT-X-SKIP:SKIPPED-SEGMENTS=",
    "#EXT-X-TARGETDURATION:",
    "0",
    "#EXT-X-DEFINE:NAME=\"a\",VALUE=\"",
    "seg.ts",
    " ",
    "\t",
];

fn hostile() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => prop::sample::select(HOSTILE).prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..8),
    ];
    prop::collection::vec(piece, 0..80).prop_map(|pieces| {
        let mut body = b"#EXTM3U\n".to_vec();
        body.extend(pieces.concat());
        body
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rewrite_keeps_uris_and_places_keys(body in playlist(), rotate in prop_oneof![Just(None), (1u64..120).prop_map(Some)]) {
        check_playlist(&body, rotate)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in prop_oneof![hostile(), prop::collection::vec(any::<u8>(), 0..256)], encrypt in any::<bool>()) {
        let signer = FakeSigner::default();
        let ctx = context("/live/ch1/index.m3u8", encrypt.then_some(60), &signer);
        match compile(&body, &ctx) {
            Ok(t) => {
                let out = t.render(CAP);
                prop_assert_eq!(out.len(), t.text.len() + CAP.len() * t.cap_count());
                let empty = t.render("");
                prop_assert_eq!(&empty, &t.text);
                let cap_sites = t.caps.windows(2).all(|w| w[0] <= w[1]);
                prop_assert!(cap_sites && t.caps.last().is_none_or(|&c| c <= t.text.len()));
            }
            // An encrypting rewrite refuses a media sequence number whose
            // IV would wrap (hostile pieces include huge ones).
            Err(e) => prop_assert!(
                e == RewriteError::NotPlaylist || (encrypt && e == RewriteError::MsnOverflow),
                "{:?}",
                e
            ),
        }
    }
}
