//! Criterion benches for the authenticate step with Nimble WMSAuth and Wowza
//! SecureToken: `check` of a valid and of a tampered request (a wrong hash,
//! so the whole verification runs before the refusal). One element = one
//! `check` call.
//!
//! Run: `cargo bench --bench auth_wmsauth_wowza -- --warm-up-time 1 --measurement-time 3`

#![allow(
    clippy::expect_used,
    reason = "bench setup: a failed expectation means a broken bench, like a test"
)]

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate::auth::{AuthRequest, Check, Scheme, SignRequest, wmsauth, wowza};

const PATH: &str = "/live/ch1/index.m3u8";
const NOW: u64 = 1_704_445_387;

/// The signed query of `scheme` for `ip`, and the same with the hash broken.
fn queries(scheme: &dyn Scheme, ip: IpAddr, user: Option<&str>) -> (String, String) {
    let link = scheme
        .sign(&SignRequest {
            path: PATH,
            client_ip: Some(ip),
            channel: Some("ch1"),
            start: NOW,
            expires: NOW + 3600,
            user,
        })
        .expect("sign");
    let (_, query) = link.split_once('?').expect("query");
    let valid = query.to_owned();
    assert!(matches!(
        scheme.check(&request(ip, &valid)),
        Check::Allow(_)
    ));
    // Flip one character inside the hash (WMSAuth: inside the base64 token).
    let at = valid.len() - 12;
    let mut tampered = valid.into_bytes();
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    assert!(matches!(
        scheme.check(&request(ip, &tampered)),
        Check::Forbidden | Check::Expired
    ));
    (query.to_owned(), tampered)
}

/// A request for `PATH` from `ip` with `query`, a minute after signing.
fn request(ip: IpAddr, query: &str) -> AuthRequest<'_> {
    AuthRequest {
        client_ip: ip,
        path: PATH,
        query: Some(query),
        headers: &HEADERS,
        channel: Some("ch1"),
        now: NOW + 60,
    }
}

static HEADERS: std::sync::LazyLock<http::HeaderMap> =
    std::sync::LazyLock::new(http::HeaderMap::new);

fn bench_scheme(c: &mut Criterion, group: &str, scheme: &dyn Scheme, user: Option<&str>) {
    let ip = IpAddr::from([203, 0, 113, 7]);
    let (valid, tampered) = queries(scheme, ip, user);
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    for (name, query) in [("check_valid", &valid), ("check_tampered", &tampered)] {
        let req = request(ip, query);
        g.bench_function(name, |b| b.iter(|| scheme.check(black_box(&req))));
    }
    g.finish();
}

fn wmsauth(c: &mut Criterion) {
    let raw = wmsauth::RawConfig {
        key: Some("bench-key".into()),
        ..Default::default()
    };
    let scheme = wmsauth::WmsAuth::new(&raw, Path::new(".")).expect("config");
    bench_scheme(c, "wmsauth", &scheme, Some("viewer-42"));
}

fn wowza(c: &mut Criterion) {
    let raw = wowza::RawConfig {
        secret: Some("bench-secret".into()),
        include_client_ip: Some(true),
        ..Default::default()
    };
    let scheme = wowza::Wowza::new(&raw, Path::new(".")).expect("config");
    bench_scheme(c, "wowza", &scheme, None);
}

criterion_group!(benches, wmsauth, wowza);
criterion_main!(benches);
