//! Criterion benches for the authenticate step with Akamai EdgeAuth and
//! Cesbo securetoken: `check` on a valid and on a tampered token (the
//! tampered one must cost the same work: parse + MAC + compare). One
//! element = one `check` call.
//!
//! Run: `cargo bench --bench auth_akamai_cesbo -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate::auth::{AuthRequest, Check, Scheme, akamai, cesbo};

const NOW: u64 = 1_700_000_100;
const PATH: &str = "/live/ch1/index.m3u8";

/// Flip the last character of the query (the end of the MAC or the start time).
fn tamper(q: &str) -> String {
    let mut t = q.to_owned();
    let last = if t.ends_with('0') { "1" } else { "0" };
    t.pop();
    t.push_str(last);
    t
}

fn run(c: &mut Criterion, group: &str, scheme: &dyn Scheme, query: &str) {
    let headers = http::HeaderMap::new();
    let req = |q| AuthRequest {
        client_ip: IpAddr::from([192, 0, 2, 1]),
        path: PATH,
        query: Some(q),
        headers: &headers,
        channel: Some("ch1"),
        now: NOW,
    };
    let bad = tamper(query);
    assert!(matches!(scheme.check(&req(query)), Check::Allow(_)));
    assert_eq!(scheme.check(&req(&bad)), Check::Forbidden);
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    g.bench_function("check_valid", |b| {
        b.iter(|| scheme.check(black_box(&req(query))))
    });
    g.bench_function("check_tampered", |b| {
        b.iter(|| scheme.check(black_box(&req(&bad))))
    });
    g.finish();
}

fn sign(scheme: &dyn Scheme) -> String {
    let s = tollgate::auth::SignRequest {
        path: PATH,
        client_ip: Some(IpAddr::from([192, 0, 2, 1])),
        channel: Some("ch1"),
        start: NOW - 100,
        expires: NOW + 3600,
        user: Some("viewer42"),
    };
    match scheme.sign(&s).as_deref().map(|l| l.split_once('?')) {
        Ok(Some((_, q))) => q.to_owned(),
        other => panic!("sign failed: {other:?}"),
    }
}

fn bench_akamai(c: &mut Criterion) {
    let raw = akamai::RawConfig {
        keys: vec!["52a152a152a152a152a152a152a1".into()],
        ..Default::default()
    };
    let Ok(a) = akamai::Akamai::new(&raw, Path::new(".")) else {
        panic!("akamai config refused");
    };
    let q = sign(&a);
    run(c, "akamai", &a, &q);
}

fn bench_cesbo(c: &mut Criterion) {
    let raw = cesbo::RawConfig {
        secret: Some("secret".into()),
        ..Default::default()
    };
    let Ok(s) = cesbo::Cesbo::new(&raw, Path::new(".")) else {
        panic!("cesbo config refused");
    };
    let q = sign(&s);
    run(c, "cesbo", &s, &q);
}

criterion_group!(benches, bench_akamai, bench_cesbo);
criterion_main!(benches);
