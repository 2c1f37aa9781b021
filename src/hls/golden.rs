//! Golden-file tests of the rewriter: every `tests/fixtures/hls/<name>.m3u8`
//! is compiled plain and encrypting, rendered with the capability `CAP`, and
//! compared byte for byte with `<name>.plain.out.m3u8` and
//! `<name>.encrypt.out.m3u8`; the encrypting run also lists each signed URI
//! (`<tag> <path>`) in `<name>.encrypt.tags.txt`, so that the path each tag
//! is bound to can be read. The golden files are the spec: they were read
//! line by line against docs/hls.md §6 when written.
//!
//! `UPDATE_GOLDEN=1 cargo test --lib hls::golden` rewrites them.
//!
//! Every fixture also passes the structural check
//! ([`super::testkit::check_structure`]) and, unless noted, m3u8-rs parses
//! input and output to the same number of segments (or variants) and the
//! same media sequence.

use std::path::PathBuf;

use m3u8_rs::Playlist;

use super::compile;
use super::lines::BOM;
use super::testkit::{CAP, FakeSigner, check_keys, check_structure, context};

struct Fixture {
    name: &'static str,
    /// The proxy path the playlist is served at.
    path: &'static str,
    /// `rotate_every` of the encrypting run, in seconds.
    rotate: u64,
    /// Why m3u8-rs cannot be compared on this fixture, if it cannot.
    m3u8_rs_broken: Option<&'static str>,
}

const fn fx(name: &'static str, path: &'static str, rotate: u64) -> Fixture {
    Fixture {
        name,
        path,
        rotate,
        m3u8_rs_broken: None,
    }
}

const FIXTURES: &[Fixture] = &[
    fx("master", "/live/ch1/master.m3u8", 600),
    fx("live_ts", "/live/ch1/720p/index.m3u8", 60),
    Fixture {
        // m3u8-rs 6 parses `#EXT-X-TARGETDURATION:6.0` as 6 followed by a
        // phantom segment `.0` (research doc §4.1).
        m3u8_rs_broken: Some("TARGETDURATION:6.0 phantom segment"),
        ..fx("vod", "/vod/movie/index.m3u8", 12)
    },
    fx("fmp4", "/live/ch1/video/index.m3u8", 60),
    // Init section and segments are ranges of one file: the init's clear
    // tag must cover only its range.
    fx("fmp4_single_file", "/vod/film/index.m3u8", 8),
    // m3u8-rs drops the LL-HLS tail (parts and hints after the last
    // segment, research doc §4.1); segments and media sequence, which are
    // all that is compared, are unaffected.
    fx("llhls", "/live/ch1/ll/index.m3u8", 1072),
    fx("llhls_byterange", "/live/ch1/llbr/index.m3u8", 60),
    fx("byterange", "/vod/packed/index.m3u8", 60),
    fx("iframes", "/live/ch1/720p/iframes.m3u8", 60),
    fx("origin_encrypted", "/live/ch2/index.m3u8", 60),
    fx("absolute", "/live/ch1/index.m3u8", 60),
    fx("msn_2_32", "/live/ch1/index.m3u8", 60),
    fx("crlf_bom", "/live/ch1/index.m3u8", 60),
    fx("skip", "/live/ch1/index.m3u8", 60),
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hls")
}

/// Compares `got` with the golden file `file` (or writes it).
fn golden(file: &str, got: &[u8], failures: &mut Vec<String>) {
    let path = dir().join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    match std::fs::read(&path) {
        Ok(want) if want == got => {}
        Ok(want) => failures.push(format!(
            "{file} differs:\n--- want\n{}\n--- got\n{}",
            String::from_utf8_lossy(&want),
            String::from_utf8_lossy(got)
        )),
        Err(e) => failures.push(format!("{file}: {e} (run with UPDATE_GOLDEN=1)")),
    }
}

/// Segment count and media sequence (media) or variant and rendition counts
/// (master), as m3u8-rs sees them.
fn m3u8_rs_summary(body: &[u8]) -> (usize, u64) {
    let body = body.strip_prefix(BOM).unwrap_or(body);
    match m3u8_rs::parse_playlist_res(body) {
        Ok(Playlist::MediaPlaylist(p)) => (p.segments.len(), p.media_sequence),
        Ok(Playlist::MasterPlaylist(p)) => (p.variants.len(), p.alternatives.len() as u64),
        Err(e) => panic!("m3u8-rs: {e:?}"),
    }
}

#[test]
fn fixtures_are_all_listed() {
    assert!(!FIXTURES.is_empty());
    // Every file belongs to a listed fixture (no stale golden files).
    for entry in std::fs::read_dir(dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let fixture = name.split('.').next().unwrap_or_default();
        assert!(
            FIXTURES.iter().any(|f| f.name == fixture),
            "stray file {name}"
        );
    }
    let mut inputs: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".m3u8") && !n.ends_with(".out.m3u8"))
        .collect();
    inputs.sort();
    let mut listed: Vec<String> = FIXTURES
        .iter()
        .map(|f| format!("{}.m3u8", f.name))
        .collect();
    listed.sort();
    assert_eq!(inputs, listed);
}

#[test]
fn golden_files() {
    let mut failures = Vec::new();
    for f in FIXTURES {
        let input = std::fs::read(dir().join(format!("{}.m3u8", f.name))).unwrap();
        let marker = format!("tg={CAP}");
        assert!(
            !input.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "{}",
            f.name
        );
        for (variant, rotate) in [("plain", None), ("encrypt", Some(f.rotate))] {
            let signer = FakeSigner::default();
            let ctx = context(f.path, rotate, &signer);
            let t = compile(&input, &ctx).unwrap();
            let out = t.render(CAP);
            golden(
                &format!("{}.{variant}.out.m3u8", f.name),
                &out,
                &mut failures,
            );
            if rotate.is_some() {
                let tags: String = signer
                    .calls
                    .borrow()
                    .iter()
                    .map(|(path, serve)| {
                        format!("{} {path}\n", super::testkit::fake_tag(path, serve))
                    })
                    .collect();
                golden(
                    &format!("{}.encrypt.tags.txt", f.name),
                    tags.as_bytes(),
                    &mut failures,
                );
            } else {
                assert!(
                    signer.calls.borrow().is_empty(),
                    "{}: tags without encrypt",
                    f.name
                );
            }
            check_structure(&input, &t, rotate.is_some());
            check_keys(&t, rotate.is_some());
            if f.m3u8_rs_broken.is_none() {
                let want = m3u8_rs_summary(&input);
                assert_eq!(m3u8_rs_summary(&out), want, "{}.{variant}: m3u8-rs", f.name);
                if t.kind() == super::Kind::Media {
                    assert_eq!(
                        (t.segment_msns().len(), t.media_sequence()),
                        want,
                        "{}",
                        f.name
                    );
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
