//! Criterion benches for the route step of the data path: path
//! normalization, re-encoding for the origin, route lookup and channel
//! extraction. One element = one call.
//!
//! Run: `cargo bench --bench routing -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate::path::{encode_for_origin, normalize};
use tollgate::router::{RouteSpec, RouteTable};

const MAX_LEN: usize = 8192;

/// A typical clean segment request: the fast path.
const CLEAN: &str = "/live/ch1/1080p/seg-123456.ts";
/// The same request with encoded dot-segments and repeated slashes.
const DIRTY: &str = "/live//ch9/%2e%2e/ch1/./1080p//%2E%2E/1080p/seg-123456.ts";

/// A clean path of exactly 200 bytes.
fn long_path() -> String {
    let mut p = String::from("/live/ch1/1080p");
    while p.len() < 190 {
        p.push_str("/segment");
    }
    p.push_str("/seg-1.ts");
    p.truncate(200);
    p
}

fn specs(prefixes: &[String]) -> Vec<RouteSpec> {
    prefixes
        .iter()
        .map(|prefix| RouteSpec {
            prefix: prefix.clone(),
            channel: 1,
        })
        .collect()
}

/// Three routes, the shape of a small deployment.
fn small_table() -> RouteTable {
    let prefixes = ["/live", "/vod/", "/"].map(String::from);
    RouteTable::new(&specs(&prefixes))
}

/// A hundred routes, per-tenant prefixes of mixed lengths and both
/// trailing-slash styles, no catch-all.
fn large_table() -> RouteTable {
    let prefixes: Vec<String> = (0..100)
        .map(|i| match i % 4 {
            0 => format!("/live/tenant{i}/"),
            1 => format!("/vod/t{i}"),
            2 => format!("/ch{i}"),
            _ => format!("/live/tenant{i}/premium"),
        })
        .collect();
    RouteTable::new(&specs(&prefixes))
}

fn bench_normalize(c: &mut Criterion) {
    let long = long_path();
    assert_eq!(long.len(), 200);
    let mut g = c.benchmark_group("normalize");
    g.throughput(Throughput::Elements(1));
    for (name, raw) in [
        ("clean", CLEAN),
        ("dot_segments", DIRTY),
        ("200_bytes", &long),
    ] {
        assert!(normalize(raw, MAX_LEN).is_ok(), "{name} must normalize");
        g.bench_function(name, |b| b.iter(|| normalize(black_box(raw), MAX_LEN)));
    }
    g.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_for_origin");
    g.throughput(Throughput::Elements(1));
    for (name, path) in [
        ("clean", CLEAN),
        ("needs_escapes", "/live/ch 1/caf\u{e9}/%2e?x.ts"),
    ] {
        g.bench_function(name, |b| b.iter(|| encode_for_origin(black_box(path))));
    }
    g.finish();
}

fn bench_lookup(c: &mut Criterion) {
    let small = small_table();
    let large = large_table();
    let cases = [
        ("3_routes/hit", &small, CLEAN, true),
        ("3_routes/miss", &small, "/livestream/ch1/seg.ts", true),
        (
            "100_routes/hit",
            &large,
            "/live/tenant56/ch1/1080p/seg-123456.ts",
            true,
        ),
        (
            "100_routes/hit_premium",
            &large,
            "/live/tenant99/premium/ch1/seg-1.ts",
            true,
        ),
        (
            "100_routes/miss",
            &large,
            "/nothing/here/1080p/seg-123456.ts",
            false,
        ),
    ];
    let mut g = c.benchmark_group("route_lookup");
    g.throughput(Throughput::Elements(1));
    for (name, table, path, hits) in cases {
        // 3_routes/miss only misses `/live`; the catch-all `/` still answers.
        assert_eq!(table.lookup(path).is_some(), hits, "{name}");
        g.bench_function(name, |b| b.iter(|| table.lookup(black_box(path))));
    }
    g.finish();
}

fn bench_channel(c: &mut Criterion) {
    let small = small_table();
    let large = large_table();
    let large_path = "/live/tenant56/ch1/1080p/seg-123456.ts";
    assert_eq!(large.lookup(large_path), Some(56));
    assert_eq!(small.channel(0, CLEAN), Some("ch1"));
    let mut g = c.benchmark_group("channel");
    g.throughput(Throughput::Elements(1));
    g.bench_function("3_routes", |b| {
        b.iter(|| small.channel(0, black_box(CLEAN)))
    });
    g.bench_function("100_routes", |b| {
        b.iter(|| large.channel(56, black_box(large_path)))
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_normalize,
    bench_encode,
    bench_lookup,
    bench_channel
);
criterion_main!(benches);
