//! The playlist rewriter: compile an origin playlist, render it per
//! session.
//!
//! Input: one byte of options (encrypting or not, the key period, the
//! playlist's path), then the origin body.
//!
//! Asserted: compile never panics and refuses only with `NotPlaylist` or
//! `TooLarge`; rendering is the template text plus one capability per
//! splice, and `render("")` is the text itself; the rewriter's own
//! structural check (`hls::testkit`, independent of the compiler) passes on
//! valid UTF-8 input (with `TOLLGATE_FUZZ_STRICT=1`, see `strict`): every
//! line the rules do not touch is copied byte for byte, key lines and
//! capabilities are counted right, and on an encrypting route every own
//! segment has the key its tag names; a URI that carries
//! the capability never points at another host as a player reads it
//! (trimmed of ASCII and Unicode whitespace, `\` as `/`);
//! `media_window` agrees with the compiled template.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate::hls::testkit::{self, CAP, FakeSigner};
use tollgate::hls::{Kind, RewriteError, compile, media_window};

const PATHS: [&str; 3] = [
    "/live/ch1/index.m3u8",
    "/live/ch1/sub/dir/v.m3u8",
    "/index.m3u8",
];

fuzz_target!(|data: &[u8]| {
    let Some((&opts, body)) = data.split_first() else {
        return;
    };
    let rotate = (opts & 1 != 0).then_some(u64::from(opts >> 3) + 1);
    let path = PATHS[usize::from((opts >> 1) & 3) % PATHS.len()];
    let signer = FakeSigner::default();
    let mut ctx = testkit::context(path, rotate, &signer);
    if opts & 0x80 != 0 {
        ctx.max_bytes = body.len() / 2;
    }
    let t = match compile(body, &ctx) {
        Ok(t) => t,
        Err(RewriteError::TooLarge) => {
            assert!(body.len() > ctx.max_bytes, "TooLarge under the limit");
            return;
        }
        Err(RewriteError::NotPlaylist) => return,
        // Encrypting and the media sequence numbers would run past 2^64 - 1
        // (a (key, IV) pair reused): refused, whatever else the body holds.
        Err(RewriteError::MsnOverflow) => {
            assert!(ctx.encrypt.is_some(), "MsnOverflow without encryption");
            return;
        }
        // Only catch-up mode refuses undated segments; this target runs
        // position keys (the catch-up cases are unit-tested in hls::cases).
        Err(RewriteError::Undated) => panic!("Undated without catch-up mode"),
    };
    let empty = t.render("");
    let out = t.render(CAP);
    assert_eq!(out.len(), empty.len() + CAP.len() * t.cap_count());
    assert_eq!(t.render(CAP), out, "render is not deterministic");

    match media_window(body) {
        None => assert_eq!(t.kind(), Kind::Master),
        Some((first, _)) => {
            assert_eq!(t.kind(), Kind::Media);
            assert_eq!(first, t.media_sequence());
        }
    }
    if t.kind() == Kind::Master {
        assert!(t.segment_msns().is_empty());
        assert_eq!(t.injected_key_lines(), 0);
    }

    let cap_param = format!("tg={CAP}");
    let origin_has_cap = body
        .windows(cap_param.len())
        .any(|w| w == cap_param.as_bytes());
    for uri in testkit::uris(&out) {
        if !origin_has_cap && uri.contains(&cap_param) {
            assert!(!leaves_host(&uri), "capability sent off-host: {uri:?}");
        }
    }
    // The structural check counts `tg=CAP` in the output: an origin body
    // that already holds that text cannot be judged by it.
    // It also reads attribute values as whole quoted strings: junk after a
    // closing quote (`URI="a"x`) is outside what it can judge.
    if strict() && !origin_has_cap && std::str::from_utf8(body).is_ok() && quoted_values_whole(body)
    {
        testkit::check_structure(body, &t, rotate.is_some());
        if parts_have_uris(body) {
            testkit::check_keys(&t, rotate.is_some());
        }
    }
});

/// Whether a player resolving `uri` against the playlist's URL would leave
/// the proxy's host: what remains after trimming like the WHATWG URL parser
/// and hls.js do (C0 controls, space and Unicode whitespace; tabs and
/// newlines inside removed) has a scheme or starts like a network path.
fn leaves_host(uri: &str) -> bool {
    let trimmed: String = uri
        .trim_matches(|c: char| c <= ' ' || c.is_whitespace() || c == '\u{feff}')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let t = trimmed.as_str();
    let network_path = t.len() >= 2 && t.as_bytes()[..2].iter().all(|&b| b == b'/' || b == b'\\');
    let scheme = t.split_once(':').is_some_and(|(s, _)| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    network_path || scheme
}

/// Whether every part and preload hint has a well-formed `URI="…"`: the key
/// check reads a part line without one as a foreign part, where players
/// see no part at all (hls.js finds no URI in `DURATION=1:URI="x`).
fn parts_have_uris(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).lines().all(|line| {
        let Some(list) = line
            .strip_prefix("#EXT-X-PART:")
            .or_else(|| line.strip_prefix("#EXT-X-PRELOAD-HINT:"))
        else {
            return true;
        };
        testkit::split_attrs(list).iter().any(|a| {
            a.split_once('=').is_some_and(|(n, v)| {
                n.trim() == "URI" && v.len() >= 2 && v.starts_with('"') && v.ends_with('"')
            })
        })
    })
}

/// Whether every attribute value holding a `"` is one whole quoted string.
fn quoted_values_whole(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).lines().all(|line| {
        let Some((_, list)) = line.split_once(':').filter(|_| line.starts_with('#')) else {
            return true;
        };
        testkit::split_attrs(list).iter().all(|a| {
            let v = a.split_once('=').map_or(*a, |(_, v)| v).trim();
            !v.contains('"')
                || (v.len() >= 2
                    && v.starts_with('"')
                    && v.ends_with('"')
                    && v.matches('"').count() == 2)
        })
    })
}

/// `TOLLGATE_FUZZ_STRICT=1` adds the rewriter's structural and key checks
/// (`hls::testkit`). They were written for grammar-made playlists and still
/// fail on some hostile bytes whose triage is open (fuzz/findings/hls_rewrite,
/// docs/security.md), so the default run and the CI smoke leave them out.
fn strict() -> bool {
    static S: OnceLock<bool> = OnceLock::new();
    *S.get_or_init(|| std::env::var_os("TOLLGATE_FUZZ_STRICT").is_some_and(|v| v == "1"))
}
