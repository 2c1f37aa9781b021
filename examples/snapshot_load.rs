//! One-off timing of a bulk snapshot load (`PUT /api/v1/snapshot` with
//! 1,000,000 users): JSON → `Snapshot` → `Entitlements`, with peak RSS.
//!
//! Run: `cargo run --release --example snapshot_load -- [USERS] [--reader]`
//! or, to only write the JSON (for `scripts/bench-snapshot-put.sh`):
//! `cargo run --release --example snapshot_load -- [USERS] --write FILE`
//!
//! The JSON is generated into a temporary file by a first process, then a
//! fresh process (this binary re-run) measures, so peak RSS (`VmHWM` from
//! /proc/self/status) covers only the load. By default the body is read into
//! memory first (as the admin API holds a request body) and compiled from
//! the slice while parsing (`Entitlements::from_json_slice`); `--reader`
//! compiles from a buffered file reader (`Entitlements::from_json_reader`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufWriter, Write};
use std::time::Instant;

use tollgate::entitlements::Entitlements;

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A realistic mix: one token each, 1–2 packages, 10% with networks,
/// 10% expiring, 5% with a password.
fn generate(path: &std::path::Path, users: u64) {
    let mut w = BufWriter::new(std::fs::File::create(path).unwrap());
    write!(w, r#"{{"packages":{{"basic":{{"channels":["ch1","ch2","news/*"]}},"sports":{{"channels":["sports-*","ch9"]}},"premium":{{"channels":["*-hd","movies/*"]}}}},"blocklist":{{"users":["user0000007"],"tokens":[],"ips":["203.0.113.0/24"]}},"users":{{"#).unwrap();
    for i in 0..users {
        if i > 0 {
            w.write_all(b",").unwrap();
        }
        let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let packages = match i % 4 {
            0 => r#"["basic"]"#,
            1 => r#"["basic","sports"]"#,
            2 => r#"["premium"]"#,
            _ => r#"["basic","premium"]"#,
        };
        write!(w, r#""user{i:07}":{{"tokens":["tk-{i:07}-{h:016x}"],"max_sessions":{},"packages":{packages}"#, i % 3 + 1).unwrap();
        if i % 10 == 3 {
            write!(w, r#","ips":["10.{}.{}.0/24"]"#, i % 250, (i / 250) % 250).unwrap();
        }
        if i % 10 == 5 {
            w.write_all(br#","expires_at":"2030-01-01T00:00:00Z""#)
                .unwrap();
        }
        if i % 20 == 7 {
            write!(
                w,
                r#","password":"sha256:{h:016x}{h:016x}{h:016x}{h:016x}""#
            )
            .unwrap();
        }
        w.write_all(b"}").unwrap();
    }
    w.write_all(b"}}").unwrap();
    w.flush().unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let users: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let reader = args.iter().any(|a| a == "--reader");
    if let Some(path) = args
        .iter()
        .position(|a| a == "--write")
        .and_then(|i| args.get(i + 1))
    {
        generate(std::path::Path::new(path), users);
        return;
    }
    if let Ok(path) = std::env::var("SNAPSHOT_LOAD_FILE") {
        measure(std::path::Path::new(&path), reader);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snapshot.json");
    generate(&path, users);
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "generated {users} users, {:.1} MiB of JSON",
        size as f64 / 1048576.0
    );
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(&args[1..])
        .env("SNAPSHOT_LOAD_FILE", &path)
        .status()
        .unwrap();
    assert!(status.success());
}

fn measure(path: &std::path::Path, reader: bool) {
    let start = Instant::now();
    let ents = if reader {
        let file = std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(path).unwrap());
        Entitlements::from_json_reader(file).unwrap()
    } else {
        let body = std::fs::read(path).unwrap();
        println!("read body into memory: {:?}", start.elapsed());
        Entitlements::from_json_slice(&body).unwrap()
    };
    let built = start.elapsed();
    println!(
        "{} users: JSON -> Entitlements (streaming compile) {built:?}; peak RSS (VmHWM) {:.1} MiB; {ents:?}",
        ents.len(),
        vm_hwm_kib() as f64 / 1024.0
    );
}
