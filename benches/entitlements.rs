//! Criterion benches for the entitlement check on the request path
//! (`Entitlements::decide`) against a 1,000,000-user snapshot, plus the
//! token and password lookups. One element = one call.
//!
//! Run: `cargo bench --bench entitlements -- --warm-up-time 1 --measurement-time 3`
//!
//! The 1M-user load itself (JSON → Entitlements, time and peak RSS) is a
//! one-off: `cargo run --release --example snapshot_load`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate::entitlements::{Entitlements, UserQuery};

const USERS: u64 = 1_000_000;
const NOW: u64 = 1_800_000_000;

fn snapshot_json(users: u64) -> String {
    let mut s = String::from(
        r#"{"packages":{"basic":{"channels":["ch1","ch2","ch3","news/*"]},"sports":{"channels":["sports-*","ch9"]}},"blocklist":{"users":["user0000007"],"tokens":[],"ips":["203.0.113.0/24"]},"users":{"#,
    );
    for i in 0..users {
        if i > 0 {
            s.push(',');
        }
        let packages = if i % 2 == 0 {
            r#"["basic","sports"]"#
        } else {
            r#"["basic"]"#
        };
        let region = if i % 3 == 0 {
            r#","region":"london""#
        } else {
            ""
        };
        write!(
            s,
            r#""user{i:07}":{{"tokens":["tk-{i:07}"],"password":"pw{i}","max_sessions":2,"packages":{packages}{region}}}"#
        )
        .unwrap();
    }
    // A box for every fourth user; every eighth box has packages of its own.
    s.push_str(r#"},"devices":{"#);
    for i in (0..users).step_by(4) {
        if i > 0 {
            s.push(',');
        }
        let own = if i % 8 == 0 {
            r#","packages":["sports"]"#
        } else {
            ""
        };
        write!(s, r#""hw-{i:07}":{{"user":"user{i:07}"{own}}}"#).unwrap();
    }
    s.push_str("}}");
    s
}

fn bench(c: &mut Criterion) {
    let ents = Entitlements::from_json_slice(snapshot_json(USERS).as_bytes()).unwrap();
    let ip: IpAddr = "198.51.100.7".parse().unwrap();
    let mut g = c.benchmark_group("entitlements");
    g.throughput(Throughput::Elements(1));
    let cases: [(&str, Option<&str>, &str); 4] = [
        ("decide/entitled_exact", Some("user0424242"), "ch3"),
        ("decide/entitled_glob", Some("user0424242"), "sports-hd"),
        ("decide/not_entitled", Some("user0424243"), "sports-hd"),
        ("decide/anonymous", None, "ch1"),
    ];
    for (name, user, channel) in cases {
        assert!(
            ents.decide(user, None, channel, ip, NOW).is_ok() != name.ends_with("not_entitled")
        );
        g.bench_function(name, |b| {
            b.iter(|| {
                ents.decide(
                    black_box(user),
                    None,
                    black_box(channel),
                    black_box(ip),
                    NOW,
                )
            })
        });
    }
    // On a box with packages of its own (sports only).
    assert!(
        ents.decide_on(
            Some("user0424240"),
            Some("hw-0424240"),
            None,
            "ch3",
            ip,
            NOW
        )
        .is_err()
    );
    g.bench_function("decide/on_device", |b| {
        b.iter(|| {
            ents.decide_on(
                black_box(Some("user0424240")),
                black_box(Some("hw-0424240")),
                None,
                black_box("sports-hd"),
                black_box(ip),
                NOW,
            )
        })
    });
    g.bench_function("user_by_token", |b| {
        b.iter(|| ents.user_by_token(black_box("tk-0424242")))
    });
    g.bench_function("check_password", |b| {
        b.iter(|| ents.check_password(black_box("user0424242"), black_box(b"pw424242")))
    });
    g.finish();

    // GET /api/v1/users over the million (one element = one page).
    let mut g = c.benchmark_group("users_page");
    g.sample_size(10);
    let base = UserQuery {
        limit: 100,
        ..UserQuery::default()
    };
    let cases: [(&str, UserQuery<'static>, usize); 7] = [
        ("first_page", base, USERS as usize),
        (
            "last_page",
            UserQuery {
                offset: 999_900,
                ..base
            },
            USERS as usize,
        ),
        (
            "package",
            UserQuery {
                package: Some("sports"),
                offset: 250_000,
                ..base
            },
            500_000,
        ),
        (
            "token",
            UserQuery {
                token: Some("tk-0424242"),
                ..base
            },
            1,
        ),
        (
            "region",
            UserQuery {
                region: Some("london"),
                offset: 300_000,
                ..base
            },
            333_334,
        ),
        (
            "device",
            UserQuery {
                device: Some("hw-0424240"),
                ..base
            },
            1,
        ),
        (
            "text",
            UserQuery {
                text: Some("r04242"),
                ..base
            },
            100,
        ),
    ];
    for (name, q, total) in cases {
        let got = ents.users_page(&q);
        assert_eq!(
            (got.total, got.users.len()),
            (total, total.min(100)),
            "{name}"
        );
        g.bench_function(name, |b| b.iter(|| ents.users_page(black_box(&q))));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
