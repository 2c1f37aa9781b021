//! Criterion bench for the CBC stream cipher on the encrypt step: one 1 MiB
//! segment fed in 16 KiB chunks (a typical origin body frame), into a
//! buffer reused across iterations. Throughput in bytes of plaintext.
//! Target (SPEC): >= 0.9x `openssl speed -evp aes-128-cbc` per core.
//!
//! Run: `cargo bench --bench cbc -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate::cbc::{CbcStream, encrypted_len, iv_for_msn};

const SEGMENT: usize = 1 << 20;
const CHUNK: usize = 16 << 10;

fn bench(c: &mut Criterion) {
    let key = [0x42u8; 16];
    let iv = iv_for_msn(7);
    let pt: Vec<u8> = (0..SEGMENT).map(|i| (i * 31 % 251) as u8).collect();
    let mut out = BytesMut::with_capacity(encrypted_len(SEGMENT as u64) as usize);

    let mut g = c.benchmark_group("cbc");
    g.throughput(Throughput::Bytes(SEGMENT as u64));
    g.bench_function("encrypt_1MiB_in_16KiB_chunks", |b| {
        b.iter(|| {
            out.clear();
            let mut s = CbcStream::new(black_box(&key), black_box(&iv));
            for chunk in pt.chunks(CHUNK) {
                s.update(black_box(chunk), &mut out);
            }
            assert!(s.finish(&mut out).is_ok(), "backend failed");
            black_box(&out);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
