//! Criterion benches for the `secure_link` check on the authenticate step:
//! nginx.org's documented link (valid) and the same link for another path
//! (tampered: the full work, one MD5 and a failed compare). One element =
//! one `check` call. Target: < 2 µs each.
//!
//! Run: `cargo bench --bench auth_secure_link -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate::auth::secure_link::{RawConfig, SecureLink};
use tollgate::auth::{AuthRequest, Check, Scheme};

/// nginx.org's example: `md5("2147483647/s/link127.0.0.1 secret")`.
const VALID: &str = "md5=_e4Nc3iduzkWRm01TBBNYw&expires=2147483647";

fn bench(c: &mut Criterion) {
    let raw = RawConfig {
        secret: Some("secret".into()),
        template: Some("$secure_link_expires$uri$remote_addr $secret".into()),
        ..RawConfig::default()
    };
    let scheme = match SecureLink::new(&raw, Path::new(".")) {
        Ok(s) => s,
        Err(e) => panic!("bench config: {e:?}"),
    };
    let headers = http::HeaderMap::new();
    let req = |path| AuthRequest {
        client_ip: [127, 0, 0, 1].into(),
        path,
        query: Some(VALID),
        headers: &headers,
        channel: None,
        now: 1_700_000_000,
    };
    let valid = req("/s/link");
    let tampered = req("/s/link2");
    assert!(matches!(scheme.check(&valid), Check::Allow(_)));
    assert_eq!(scheme.check(&tampered), Check::Forbidden);

    let mut g = c.benchmark_group("secure_link");
    g.throughput(Throughput::Elements(1));
    g.bench_function("check_valid", |b| {
        b.iter(|| scheme.check(black_box(&valid)))
    });
    g.bench_function("check_tampered", |b| {
        b.iter(|| scheme.check(black_box(&tampered)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
