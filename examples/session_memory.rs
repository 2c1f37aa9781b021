//! Memory per live session (SPEC §5: < 2 KiB): the resident-set growth of
//! a fresh process after admitting N sessions through the real session
//! table, divided by N.
//!
//! Run: `cargo run --release --example session_memory -- [SESSIONS]`
//! (default 100,000). Each session has its own user (`viewer-<i>`, so the
//! per-user index holds one entry per session: the worst case), one of ten
//! channels on route `live`, and its own client IP, exactly as the proxy
//! creates them for entry requests. What a session costs besides the table
//! (nothing: playlists, segments and keys are shared per channel and
//! rendered per request) is not in this figure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};

use tollgate::session::{Ask, Policy, Session, Sessions};

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(100_000, |a| a.parse().expect("SESSIONS is a number"));
    let channels: Vec<String> = (0..10).map(|c| format!("ch{c}")).collect();
    let users: Vec<String> = (0..n).map(|i| format!("viewer-{i}")).collect();
    let table = Sessions::new();
    let before = vm_rss_kib();
    for (i, user) in users.iter().enumerate() {
        let i = i as u64;
        let channel = &channels[(i % 10) as usize];
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32));
        let id = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let ask = Ask {
            id,
            user: Some(user),
            max_sessions: 2,
            policy: Policy::Reject,
            entry: true,
            now: 1_000_000,
            tombstone_until: 1_000_000,
        };
        table
            .admit(&ask, || {
                Session::new(id, Some(user), None, "live", channel, ip, 1_000_000)
            })
            .expect("admitted");
    }
    let after = vm_rss_kib();
    assert_eq!(table.len() as u64, n);
    let per = (after.saturating_sub(before) * 1024) as f64 / n as f64;
    println!("sessions            {n}");
    println!("RSS before          {before} KiB");
    println!("RSS after           {after} KiB");
    println!("bytes per session   {per:.0}");
    // Keep the table (and the user names it does not own) alive to here.
    drop(table);
    drop(users);
}
