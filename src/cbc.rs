//! Sans-IO AES-128-CBC stream cipher for HLS `METHOD=AES-128` segments.
//!
//! Owns the chaining state of one segment's encryption and the plaintext
//! remainder (at most 15 bytes) that has not yet completed a 16-byte block.
//! Each [`CbcStream::update`] encrypts every whole block it can in one bulk
//! call and appends the ciphertext to a caller-owned `BytesMut`; the caller
//! decides when to split and send it. [`CbcStream::finish`] adds PKCS#7
//! padding (always 1..=16 bytes) to the remainder and appends the final block.
//!
//! Must not: do I/O, read the clock, log, allocate except by growing the
//! caller's buffer, or reveal the key (its `Debug` shows only the carry length).
//!
//! Invariants: `carried() <= 15` between calls; for `n` plaintext bytes the
//! total output is exactly [`encrypted_len`]`(n)` bytes and byte-identical to
//! `openssl enc -aes-128-cbc` (tested below), however the input was chunked.
//! A body that ended short must not be finished: padding a truncated
//! segment would hand the player a well-formed but wrong ciphertext.

use std::fmt;

use ::cbc::Encryptor;
use ::cbc::cipher::generic_array::GenericArray;
use ::cbc::cipher::inout::InOutBuf;
use ::cbc::cipher::{BlockEncryptMut, KeyIvInit};
use aes::Aes128;
use bytes::BytesMut;

/// AES block size in bytes.
const BLOCK: usize = 16;

/// The HLS IV for media sequence number `msn` (RFC 8216 §5.2: 128-bit big-endian).
///
/// The MSN goes into the low 8 bytes, big-endian; the high 8 bytes are zero.
/// Players differ above 2^32 (hls.js keeps only 32 bits), so callers should
/// keep MSNs below 2^32 or emit an explicit IV.
pub fn iv_for_msn(msn: u64) -> [u8; 16] {
    u128::from(msn).to_be_bytes()
}

/// Encrypted length for a plaintext of `n` bytes (PKCS#7 always adds 1..=16).
///
/// Equals `16 * (n / 16 + 1)`. Saturates at `u64::MAX` for `n >= 2^64 - 16`,
/// a size no real body has.
pub fn encrypted_len(n: u64) -> u64 {
    (n | (BLOCK as u64 - 1)).saturating_add(1)
}

/// The encryption state of one segment: CBC chaining block plus the carried
/// plaintext remainder.
pub struct CbcStream {
    enc: Encryptor<Aes128>,
    carry: [u8; BLOCK],
    carry_len: usize,
}

impl fmt::Debug for CbcStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CbcStream")
            .field("carried", &self.carry_len)
            .finish_non_exhaustive()
    }
}

impl CbcStream {
    /// A stream that encrypts with `key` starting from `iv` (see [`iv_for_msn`]).
    pub fn new(key: &[u8; 16], iv: &[u8; 16]) -> Self {
        Self {
            enc: Encryptor::<Aes128>::new(key.into(), iv.into()),
            carry: [0; BLOCK],
            carry_len: 0,
        }
    }

    /// Encrypt as much of `input` as completes whole blocks (with the carried remainder),
    /// appending ciphertext to `out`; carries at most 15 bytes. Allocation only by `out` growing.
    pub fn update(&mut self, mut input: &[u8], out: &mut BytesMut) {
        let start = out.len();
        if self.carry_len > 0 {
            let take = (BLOCK - self.carry_len).min(input.len());
            let (head, rest) = input.split_at(take);
            self.carry[self.carry_len..self.carry_len + take].copy_from_slice(head);
            self.carry_len += take;
            input = rest;
            if self.carry_len < BLOCK {
                return;
            }
            out.reserve(BLOCK + input.len());
            out.extend_from_slice(&self.carry);
            self.carry_len = 0;
        }
        let whole = input.len() - input.len() % BLOCK;
        let (aligned, tail) = input.split_at(whole);
        out.extend_from_slice(aligned);
        self.encrypt_in_place(&mut out[start..]);
        self.carry[..tail.len()].copy_from_slice(tail);
        self.carry_len = tail.len();
    }

    /// Pad the carried remainder (PKCS#7) and append the final block(s). Consumes self.
    ///
    /// Always appends exactly one block: with nothing carried it is a full
    /// block of `0x10`.
    pub fn finish(mut self, out: &mut BytesMut) {
        // carry_len <= 15, so the pad value is 1..=16 and fits a byte.
        let pad = (BLOCK - self.carry_len) as u8;
        self.carry[self.carry_len..].fill(pad);
        let mut block = GenericArray::from(self.carry);
        self.enc.encrypt_block_mut(&mut block);
        out.extend_from_slice(&block);
    }

    /// Bytes carried (0..=15), for tests and invariants.
    pub fn carried(&self) -> usize {
        self.carry_len
    }

    /// Encrypt `buf` (a whole number of blocks) in place with one bulk call.
    fn encrypt_in_place(&mut self, buf: &mut [u8]) {
        let (blocks, tail) = InOutBuf::from(buf).into_chunks();
        debug_assert!(tail.is_empty(), "caller passes whole blocks only");
        self.enc.encrypt_blocks_inout_mut(blocks);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{ErrorKind, Write};
    use std::process::Command;

    use proptest::prelude::*;

    use super::*;

    const KEY: [u8; 16] = *b"tollgate-key-016";
    const IV: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf];

    /// Deterministic, non-repeating-looking plaintext (no crate needed).
    fn plaintext(n: usize) -> Vec<u8> {
        let mut x: u32 = 0x9e37_79b9;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x.to_le_bytes()[0]
            })
            .collect()
    }

    /// Encrypt `pt` fed in the given chunk sizes (cycled), checking the
    /// carry invariant after every update.
    fn encrypt_chunked(key: &[u8; 16], iv: &[u8; 16], pt: &[u8], chunks: &[usize]) -> Vec<u8> {
        let mut s = CbcStream::new(key, iv);
        let mut out = BytesMut::new();
        let mut rest = pt;
        let mut sizes = chunks.iter().copied().cycle();
        while !rest.is_empty() {
            let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
            let (chunk, tail) = rest.split_at(n);
            s.update(chunk, &mut out);
            assert!(s.carried() <= 15, "carried {}", s.carried());
            rest = tail;
        }
        s.finish(&mut out);
        out.to_vec()
    }

    /// The reference ciphertext from the real `openssl enc` binary.
    fn openssl_enc(key: &[u8; 16], iv: &[u8; 16], pt: &[u8]) -> Vec<u8> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(pt).unwrap();
        file.flush().unwrap();
        let run = Command::new("openssl")
            .args(["enc", "-aes-128-cbc", "-K"])
            .arg(hex::encode(key))
            .arg("-iv")
            .arg(hex::encode(iv))
            .arg("-in")
            .arg(file.path())
            .output();
        let output = match run {
            Ok(o) => o,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                panic!("install openssl: apt-get install -y openssl")
            }
            Err(e) => panic!("running openssl: {e}"),
        };
        assert!(
            output.status.success(),
            "openssl enc failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    #[test]
    fn matches_openssl_byte_for_byte() {
        let lengths = [0, 1, 15, 16, 17, 1000, 188 * 7, 1 << 20];
        // One-shot, TS-packet-sized, awkward primes, and single bytes (short inputs only).
        let chunkings: [&[usize]; 4] = [&[usize::MAX], &[188], &[1, 7, 31, 3001], &[1]];
        for (i, &n) in lengths.iter().enumerate() {
            let mut iv = iv_for_msn(i as u64 + 7);
            iv[0] ^= IV[1]; // exercise a nonzero high byte too
            let pt = plaintext(n);
            let want = openssl_enc(&KEY, &iv, &pt);
            assert_eq!(want.len() as u64, encrypted_len(n as u64), "n={n}");
            for chunks in chunkings {
                if chunks == [1] && n > 4096 {
                    continue;
                }
                let got = encrypt_chunked(&KEY, &iv, &pt, chunks);
                assert!(got == want, "n={n} chunks={chunks:?}: differs from openssl");
            }
        }
    }

    /// NIST SP 800-38A, F.2.1 CBC-AES128.Encrypt (all four blocks; the
    /// first is the one the brief requires, the rest check chaining).
    #[test]
    fn nist_sp800_38a_f21() {
        let key = hex::decode("2b7e151628aed2a6abf7158809cf4f3c").unwrap();
        let iv = hex::decode("000102030405060708090a0b0c0d0e0f").unwrap();
        let pt = hex::decode(concat!(
            "6bc1bee22e409f96e93d7e117393172a",
            "ae2d8a571e03ac9c9eb76fac45af8e51",
            "30c81c46a35ce411e5fbc1191a0a52ef",
            "f69f2445df4f9b17ad2b417be66c3710",
        ))
        .unwrap();
        let want = [
            "7649abac8119b246cee98e9b12e9197d",
            "5086cb9b507219ee95db113a917678b2",
            "73bed6b8e3c1743b7116e69e22229516",
            "3ff1caa1681fac09120eca307586e1a7",
        ];
        let mut s = CbcStream::new(&key.try_into().unwrap(), &iv.try_into().unwrap());
        let mut out = BytesMut::new();
        s.update(&pt[..16], &mut out);
        assert_eq!(hex::encode(&out), want[0]);
        s.update(&pt[16..], &mut out);
        assert_eq!(s.carried(), 0);
        assert_eq!(hex::encode(&out), want.concat());
        s.finish(&mut out);
        assert_eq!(out.len(), 80, "a full padding block follows aligned input");
    }

    #[test]
    fn iv_for_msn_table() {
        let cases: [(u64, &str); 4] = [
            (0, "00000000000000000000000000000000"),
            (1, "00000000000000000000000000000001"),
            (1 << 32, "00000000000000000000000100000000"),
            (u64::MAX, "0000000000000000ffffffffffffffff"),
        ];
        for (msn, want) in cases {
            assert_eq!(hex::encode(iv_for_msn(msn)), want, "msn={msn}");
        }
    }

    #[test]
    fn encrypted_len_table() {
        let cases: [(u64, u64); 8] = [
            (0, 16),
            (1, 16),
            (15, 16),
            (16, 32),
            (17, 32),
            (37_600, 37_616),
            (37_788, 37_792),
            (u64::MAX, u64::MAX),
        ];
        for (n, want) in cases {
            assert_eq!(encrypted_len(n), want, "n={n}");
        }
    }

    #[test]
    fn writes_into_reserved_buffer_without_reallocating() {
        let pt = plaintext(188 * 1000 + 5);
        let mut out = BytesMut::with_capacity(encrypted_len(pt.len() as u64) as usize);
        let ptr = out.as_ptr();
        let mut s = CbcStream::new(&KEY, &IV);
        for chunk in pt.chunks(1500) {
            s.update(chunk, &mut out);
        }
        s.finish(&mut out);
        assert_eq!(out.as_ptr(), ptr);
        assert_eq!(out.len() as u64, encrypted_len(pt.len() as u64));
    }

    #[test]
    fn debug_hides_key() {
        let s = CbcStream::new(&[0xab; 16], &IV);
        let shown = format!("{s:?}");
        assert!(!shown.contains("ab") && !shown.contains("171"), "{shown}");
        assert!(shown.contains("carried: 0"), "{shown}");
    }

    proptest! {
        #[test]
        fn any_chunking_equals_one_shot(
            key in any::<[u8; 16]>(),
            iv in any::<[u8; 16]>(),
            pt in proptest::collection::vec(any::<u8>(), 0..2048),
            chunks in proptest::collection::vec(1usize..100, 1..20),
        ) {
            let one_shot = encrypt_chunked(&key, &iv, &pt, &[usize::MAX]);
            let chunked = encrypt_chunked(&key, &iv, &pt, &chunks);
            prop_assert_eq!(one_shot.len() as u64, encrypted_len(pt.len() as u64));
            prop_assert_eq!(chunked, one_shot);
        }
    }
}
