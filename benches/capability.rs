//! Criterion benches for the capability core on the capability-request
//! path: verifying a `tg` (every playlist, segment and key request), a
//! `tgs` (every segment of an encrypted route), deriving a content key
//! (every key request and segment encryption), and the minting side
//! (every playlist response, and once per URI per playlist template).
//! One element = one call. Target: verify < 1 µs.
//!
//! Run: `cargo bench --bench capability -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate::capability::{Binding, ByteRange, Claims, MasterKeys, Scope, Serve};

const NOW: u64 = 1_700_000_000;

fn bench(c: &mut Criterion) {
    let keys = MasterKeys::new(b"a bench master of thirty-two+ bytes");
    let scope = Scope {
        route: "live",
        channel: "channel-042",
        client_ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)),
    };
    let with_user = Claims {
        sid: 0x0123_4567_89ab_cdef,
        expires: NOW + 12 * 3600,
        user: Some("subscriber-1234567@example.com".to_owned()),
        bind_ip: Binding::Address,
        device: None,
    };
    let anonymous = Claims {
        user: None,
        bind_ip: Binding::Unbound,
        ..with_user.clone()
    };
    let tok_user = keys.mint(&with_user, &scope);
    let tok_anon = keys.mint(&anonymous, &scope);
    assert_eq!(keys.verify(&tok_user, &scope, NOW), Ok(with_user.clone()));
    assert_eq!(keys.verify(&tok_anon, &scope, NOW), Ok(anonymous.clone()));

    let path = "/live/channel-042/720p/segment-1700000000.ts";
    let serve = Serve::Encrypt {
        inc: 0x1234_5678_9abc,
        period: 2_833_333,
        msn: 170_000_000,
        range: Some(ByteRange {
            offset: 1_128_000,
            length: Some(376_000),
        }),
    };
    let tgs = keys.sign_tag("live", "channel-042", path, &serve);
    assert_eq!(
        keys.verify_tag(&tgs, "live", "channel-042", path),
        Ok(serve)
    );

    let mut g = c.benchmark_group("capability");
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify_user_bound", |b| {
        b.iter(|| keys.verify(black_box(&tok_user), black_box(&scope), NOW))
    });
    g.bench_function("verify_anonymous", |b| {
        b.iter(|| keys.verify(black_box(&tok_anon), black_box(&scope), NOW))
    });
    g.bench_function("mint_user_bound", |b| {
        b.iter(|| keys.mint(black_box(&with_user), black_box(&scope)))
    });
    g.bench_function("sign_tag", |b| {
        b.iter(|| keys.sign_tag("live", "channel-042", black_box(path), black_box(&serve)))
    });
    g.bench_function("verify_tag", |b| {
        b.iter(|| keys.verify_tag(black_box(&tgs), "live", "channel-042", black_box(path)))
    });
    g.bench_function("content_key", |b| {
        b.iter(|| {
            keys.content_key(
                "live",
                black_box("channel-042"),
                0x1234_5678_9abc,
                2_833_333,
            )
        })
    });
    g.bench_function("session_id", |b| {
        b.iter(|| {
            keys.session_id(
                black_box(Some("subscriber-1234567@example.com")),
                "live",
                "channel-042",
                black_box(scope.client_ip),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
