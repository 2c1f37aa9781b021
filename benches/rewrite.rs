//! Criterion bench for the playlist rewriter (docs/hls.md §6): compile an
//! origin playlist into a template, render it for one session, and both,
//! for a 10-segment and a 2,000-segment (DVR) live TS playlist on an
//! encrypting route. The signer is what the real one does per URI:
//! HMAC-SHA256 over route, channel, path and tag body, truncated to 12 bytes,
//! base64url (docs/hls.md §5), from a keyed state cloned per call.
//! Target (SPEC): compile + render < 10 µs for 10 segments, < 1 ms for 2,000.
//! Catch-up (SPEC §7.4, docs/iptv.md): a 20,000-segment archive window in
//! catch-up mode (a dated key line per segment, `hls::stable`), and the
//! per-request depth check (archive form, viewer's depth, window).
//!
//! Run: `cargo bench --bench rewrite -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench may panic on setup errors

use std::fmt::Write as _;
use std::hint::black_box;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tollgate::capability::Serve;
use tollgate::hls::{Context, Encrypt, OriginBase, TagSigner, compile};

/// The segment-tag signer as docs/hls.md §5 specifies it.
struct HmacSigner {
    keyed: Hmac<Sha256>,
    route: &'static str,
    channel: &'static str,
}

impl TagSigner for HmacSigner {
    fn tag(&self, path: &str, _query: &str, serve: &Serve) -> String {
        let mut body = String::with_capacity(48);
        let range = |body: &mut String, r: &Option<tollgate::capability::ByteRange>| {
            if let Some(r) = r {
                let _ = write!(body, ".{}.", r.offset);
                match r.length {
                    Some(l) => {
                        let _ = write!(body, "{l}");
                    }
                    None => body.push('-'),
                }
            }
        };
        match serve {
            Serve::Encrypt {
                inc,
                period,
                msn,
                range: r,
            } => {
                let _ = write!(body, "e.{inc}.{period}.{msn}");
                range(&mut body, r);
            }
            Serve::Clear { range: r } => {
                body.push('c');
                range(&mut body, r);
            }
            Serve::Key { until } => {
                let _ = write!(body, "k.{until}");
            }
        }
        let mut mac = self.keyed.clone();
        for part in [self.route, self.channel, path] {
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
        mac.update(body.as_bytes());
        let digest = mac.finalize().into_bytes();
        body.push('.');
        URL_SAFE_NO_PAD.encode_string(&digest[..12], &mut body);
        body
    }
}

/// A signer that costs nothing: isolates the rewriter's own work.
struct FreeSigner;

impl TagSigner for FreeSigner {
    fn tag(&self, _path: &str, _query: &str, _serve: &Serve) -> String {
        String::from("e.20015998343868.2057.1234567.AAAAAAAAAAAAAAAA")
    }
}

/// A closed Flussonic archive window of `n` dated segments (VOD-like).
fn archive_ts(n: u64) -> Vec<u8> {
    let mut p = String::from(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXT-X-PLAYLIST-TYPE:VOD\n",
    );
    for i in 0..n {
        let t = 1_796_000_000 + i * 6;
        let (h, m, sec) = (t / 3600 % 24, t / 60 % 60, t % 60);
        let _ = writeln!(
            p,
            "#EXT-X-PROGRAM-DATE-TIME:2026-11-30T{h:02}:{m:02}:{sec:02}.000Z\n#EXTINF:6.000,\n\
             {}/{:02}/{:02}/{}-6000.ts",
            2026, 11, 30, t
        );
    }
    p.push_str("#EXT-X-ENDLIST\n");
    p.into_bytes()
}

/// A live TS media playlist of `n` segments, as packagers write them.
fn live_ts(n: u64) -> Vec<u8> {
    let first = 1_234_567u64;
    let mut p = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n");
    let _ = writeln!(p, "#EXT-X-MEDIA-SEQUENCE:{first}");
    for i in 0..n {
        let (min, sec) = ((i * 6) / 60 % 60, (i * 6) % 60);
        let _ = writeln!(
            p,
            "#EXT-X-PROGRAM-DATE-TIME:2026-11-21T20:{min:02}:{sec:02}.000+00:00"
        );
        let _ = writeln!(p, "#EXTINF:6.000,\nsegment-{}.ts", first + i);
    }
    p.into_bytes()
}

fn bench(c: &mut Criterion) {
    let signer = HmacSigner {
        keyed: Hmac::<Sha256>::new_from_slice(&[0x5a; 32]).unwrap(),
        route: "live",
        channel: "ch1",
    };
    let ctx = Context {
        playlist_path: "/live/ch1/720p/index.m3u8",
        origin: OriginBase {
            scheme: "http",
            authority: "127.0.0.1:8081",
            base_path: "",
        },
        encrypt: Some(Encrypt {
            inc: 0x1234_5678_9abc,
            rotate_every_secs: 600,
            key_uri_prefix: "/.tollgate/key/live/ch1/",
            key_path_prefix: "/.tollgate/key/live/ch1/",
            generations: &[],
            key_until: 1_800_000_000,
            stable: false,
        }),
        cap_param: "tg",
        tag_param: "tgs",
        signer: &signer,
        max_bytes: 4 << 20,
    };
    // The length of a real capability (docs/hls.md §4, no user).
    let cap = "AQAAAAAAAAAAAAAAAGdV_ZoAAAAAAAAAAAAAAAAAAAAAAA";

    let mut g = c.benchmark_group("rewrite");
    for n in [10u64, 2000] {
        let body = live_ts(n);
        let template = compile(&body, &ctx).unwrap();
        assert_eq!(template.segment_msns().len() as u64, n);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("compile", n), &body, |b, body| {
            b.iter(|| compile(black_box(body), &ctx).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("render", n), &template, |b, t| {
            b.iter(|| t.render(black_box(cap)))
        });
        g.bench_with_input(BenchmarkId::new("compile_render", n), &body, |b, body| {
            b.iter(|| {
                compile(black_box(body), &ctx)
                    .unwrap()
                    .render(black_box(cap))
            })
        });
        let free = Context {
            signer: &FreeSigner,
            ..ctx
        };
        g.bench_with_input(
            BenchmarkId::new("compile_free_signer", n),
            &body,
            |b, body| b.iter(|| compile(black_box(body), &free).unwrap()),
        );
    }
    g.finish();

    // Catch-up: a day-long window (20,000 six-second segments is 33 h).
    let stable = Context {
        encrypt: ctx.encrypt.map(|e| Encrypt {
            inc: 0,
            stable: true,
            ..e
        }),
        ..ctx
    };
    let mut g = c.benchmark_group("rewrite_catchup");
    let n = 20_000u64;
    let body = archive_ts(n);
    let template = compile(&body, &stable).unwrap();
    assert_eq!(
        template.injected_key_lines() as u64,
        n,
        "a key line per segment"
    );
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.sample_size(20);
    g.bench_with_input(BenchmarkId::new("compile", n), &body, |b, body| {
        b.iter(|| compile(black_box(body), &stable).unwrap())
    });
    g.bench_with_input(BenchmarkId::new("render", n), &template, |b, t| {
        b.iter(|| t.render(black_box(cap)))
    });
    g.finish();

    let ents = tollgate::entitlements::Entitlements::from_json_slice(
        br#"{"users":{"alice":{"tokens":["t"],"packages":["news","sport"]}},
             "packages":{"news":{"tags":["news"],"dvr_depth":"1d"},"sport":{"channels":["sport-*"]}},
             "channels":{"ch1":{"tags":["news"],"dvr_depth":"3d"}}}"#,
    )
    .unwrap();
    let now = 1_796_100_000u64;
    let path = format!("/live/ch1/index-{}-3600.m3u8", now - 7200);
    c.bench_function("catchup_depth_check", |b| {
        b.iter(|| {
            let w = tollgate::catchup::window(black_box(&path)).unwrap();
            let depth = ents.dvr_depth(Some(black_box("alice")), None, "ch1");
            tollgate::catchup::check(w.earliest(now), depth, now)
        })
    });
    c.bench_function("catchup_live_path_check", |b| {
        b.iter(|| tollgate::catchup::window(black_box("/live/ch1/index.m3u8")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
