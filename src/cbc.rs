//! Sans-IO AES-128-CBC stream cipher for HLS `METHOD=AES-128` segments.
//!
//! Owns the chaining state of one segment's encryption (an aws-lc
//! `EVP_CIPHER_CTX`, through [`aws_lc_rs::cipher::StreamingEncryptingKey`])
//! and the plaintext remainder (at most 15 bytes) that has not yet completed
//! a 16-byte block. Each [`CbcStream::update`] encrypts every whole block it
//! can and appends the ciphertext to a caller-owned `BytesMut`; the caller
//! decides when to split and send it. [`CbcStream::finish`] hands the
//! remainder to aws-lc, which adds PKCS#7 padding (always 1..=16 bytes) and
//! emits the final block.
//!
//! The remainder is kept here, not in aws-lc, so aws-lc only ever sees whole
//! blocks until `finish`: its output for a call is then exactly its input,
//! which lets us size the caller's buffer exactly (no slack block, no
//! scratch copy) and keeps [`CbcStream::carried`] a plain fact, not a guess
//! about the backend's internal buffer.
//!
//! Must not: do I/O, read the clock, log, allocate except by growing the
//! caller's buffer (plus one aws-lc context per stream, in [`CbcStream::new`]),
//! or reveal the key (its `Debug` shows only the carry length).
//!
//! Invariants: `carried() <= 15` between calls; each `update` appends exactly
//! the whole blocks completed by `carried() + input.len()` bytes; for `n`
//! plaintext bytes the total output is exactly [`encrypted_len`]`(n)` bytes
//! and byte-identical to `openssl enc -aes-128-cbc` (tested below), however
//! the input was chunked. A body that ended short must not be finished:
//! padding a truncated segment would hand the player a well-formed but wrong
//! ciphertext.
//!
//! Backend failure: aws-lc reports errors as `Result`s. For AES-128-CBC with
//! a 16-byte key and IV, whole-block inputs below `i32::MAX` and output
//! slices of the exact size, none of them can happen (short of the context
//! allocation failing). Rather than panic or widen `update`'s signature, a
//! failure poisons the stream: that call and every later one append nothing
//! more (the output so far is a strict, block-aligned prefix of the
//! ciphertext), and [`CbcStream::finish`] returns [`CipherFailed`] without
//! appending a padding block. Callers treat that like a truncated body: the
//! segment ends with an error, never with a well-formed but wrong ciphertext.

use std::fmt;

use aws_lc_rs::cipher::{AES_128, EncryptionContext, StreamingEncryptingKey, UnboundCipherKey};
use aws_lc_rs::error::Unspecified;
use bytes::BytesMut;

/// AES block size in bytes.
const BLOCK: usize = 16;

/// Most plaintext handed to aws-lc in one call: a whole number of blocks,
/// far below its `i32` length limit, and small enough that the output
/// region we zero just before the call is still in L1/L2 when aws-lc writes it.
const PIECE: usize = 64 << 10;

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

/// The cipher backend (aws-lc) failed; the ciphertext emitted so far is an
/// incomplete prefix and no padding block was added. See the module docs:
/// not expected to happen for AES-128-CBC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("AES-128-CBC backend failed; ciphertext incomplete")]
pub struct CipherFailed;

/// The encryption state of one segment: CBC chaining state (in aws-lc) plus
/// the carried plaintext remainder.
pub struct CbcStream {
    /// `None` once the backend failed (or could not be set up): poisoned.
    key: Option<StreamingEncryptingKey>,
    carry: [u8; BLOCK],
    carry_len: usize,
}

impl fmt::Debug for CbcStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CbcStream")
            .field("carried", &self.carry_len)
            .field("failed", &self.key.is_none())
            .finish_non_exhaustive()
    }
}

impl CbcStream {
    /// A stream that encrypts with `key` starting from `iv` (see [`iv_for_msn`]).
    ///
    /// Infallible by signature: if aws-lc cannot set up the context, the
    /// stream starts poisoned and [`Self::finish`] reports [`CipherFailed`].
    pub fn new(key: &[u8; 16], iv: &[u8; 16]) -> Self {
        let key = UnboundCipherKey::new(&AES_128, key).and_then(|key| {
            StreamingEncryptingKey::less_safe_cbc_pkcs7(key, EncryptionContext::Iv128(iv.into()))
        });
        Self {
            key: key.ok(),
            carry: [0; BLOCK],
            carry_len: 0,
        }
    }

    /// Encrypt as much of `input` as completes whole blocks (with the carried remainder),
    /// appending ciphertext to `out`; carries at most 15 bytes. Allocation only by `out` growing.
    ///
    /// Appends exactly `16 * ((carried() + input.len()) / 16)` bytes, unless
    /// the stream is poisoned (then nothing; see the module docs).
    pub fn update(&mut self, mut input: &[u8], out: &mut BytesMut) {
        let mut block = None;
        if self.carry_len > 0 {
            let take = (BLOCK - self.carry_len).min(input.len());
            let (head, rest) = input.split_at(take);
            self.carry[self.carry_len..self.carry_len + take].copy_from_slice(head);
            self.carry_len += take;
            input = rest;
            if self.carry_len < BLOCK {
                return;
            }
            block = Some(self.carry);
            self.carry_len = 0;
        }
        let whole = input.len() - input.len() % BLOCK;
        let (aligned, tail) = input.split_at(whole);
        // Grow `out` at most once for this call, to exactly what it appends.
        out.reserve(whole + if block.is_some() { BLOCK } else { 0 });
        if let Some(block) = block {
            self.encrypt_blocks(&block, out);
        }
        for piece in aligned.chunks(PIECE) {
            self.encrypt_blocks(piece, out);
        }
        self.carry[..tail.len()].copy_from_slice(tail);
        self.carry_len = tail.len();
    }

    /// Pad the carried remainder (PKCS#7) and append the final block. Consumes self.
    ///
    /// Always appends exactly one block: with nothing carried it is a full
    /// block of `0x10`.
    ///
    /// # Errors
    /// [`CipherFailed`] if the stream is poisoned (the backend failed at some
    /// point, see the module docs); then nothing is appended and the output
    /// so far must not be served as a complete segment.
    pub fn finish(mut self, out: &mut BytesMut) -> Result<(), CipherFailed> {
        let key = self.key.take().ok_or(CipherFailed)?;
        let start = out.len();
        out.resize(start + BLOCK, 0);
        if pad_final(key, &self.carry[..self.carry_len], &mut out[start..]).is_err() {
            out.truncate(start);
            return Err(CipherFailed);
        }
        Ok(())
    }

    /// Bytes carried (0..=15), for tests and invariants.
    pub fn carried(&self) -> usize {
        self.carry_len
    }

    /// Encrypt `blocks` (a whole number of blocks, at most [`PIECE`] bytes)
    /// straight into `out`'s spare capacity. The region is zeroed first:
    /// handing it to aws-lc as `&mut [u8]` without `unsafe` requires
    /// initialised bytes (the same cost as the old copy-then-encrypt-in-place).
    fn encrypt_blocks(&mut self, blocks: &[u8], out: &mut BytesMut) {
        let Some(key) = self.key.as_mut() else {
            return;
        };
        let start = out.len();
        out.resize(start + blocks.len(), 0);
        // With whole blocks in, aws-lc buffers nothing and writes exactly
        // `blocks.len()` bytes; `less_safe_update` (unlike `update`) accepts
        // an output slice of exactly that size instead of demanding 15 bytes
        // of slack, so `out` never grows past the ciphertext.
        let written = key
            .less_safe_update(blocks, &mut out[start..])
            .map(|update| update.written().len());
        if !matches!(written, Ok(n) if n == blocks.len()) {
            out.truncate(start);
            self.key = None;
        }
    }
}

/// Feed the remainder (0..=15 bytes; aws-lc buffers it and writes nothing)
/// and let aws-lc pad and encrypt the final block into `buf` (16 bytes).
fn pad_final(
    mut key: StreamingEncryptingKey,
    remainder: &[u8],
    buf: &mut [u8],
) -> Result<(), Unspecified> {
    if !remainder.is_empty() && !key.less_safe_update(remainder, buf)?.written().is_empty() {
        return Err(Unspecified);
    }
    let (_, last) = key.finish(buf)?;
    if last.written().len() != BLOCK {
        return Err(Unspecified);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
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
            let (before, carried) = (out.len(), s.carried());
            s.update(chunk, &mut out);
            assert!(s.carried() <= 15, "carried {}", s.carried());
            assert_eq!(s.carried(), (carried + n) % 16);
            assert_eq!(
                out.len() - before,
                (carried + n) / 16 * 16,
                "whole blocks, at once"
            );
            rest = tail;
        }
        let before = out.len();
        s.finish(&mut out).unwrap();
        assert_eq!(out.len() - before, 16, "finish appends exactly one block");
        out.to_vec()
    }

    /// The same encryption by an independent implementation (RustCrypto
    /// `aes` + `cbc`, dev-dependencies only).
    fn rustcrypto_enc(key: &[u8; 16], iv: &[u8; 16], pt: &[u8]) -> Vec<u8> {
        use ::cbc::cipher::block_padding::Pkcs7;
        use ::cbc::cipher::{BlockEncryptMut, KeyIvInit};
        let mut buf = vec![0; pt.len() + 16];
        ::cbc::Encryptor::<aes::Aes128>::new(key.into(), iv.into())
            .encrypt_padded_b2b_mut::<Pkcs7>(pt, &mut buf)
            .unwrap()
            .to_vec()
    }

    /// `openssl enc -aes-128-cbc` of `pt`, run as a process: the independent
    /// reference other modules' tests compare against too.
    pub(crate) fn openssl_enc(key: &[u8; 16], iv: &[u8; 16], pt: &[u8]) -> Vec<u8> {
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
        s.finish(&mut out).unwrap();
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
        s.finish(&mut out).unwrap();
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

    /// A poisoned stream (what a backend failure leaves) appends nothing,
    /// keeps the carry bookkeeping, and refuses to finish.
    #[test]
    fn poisoned_stream_emits_nothing_and_finish_fails() {
        let mut s = CbcStream::new(&KEY, &IV);
        let mut out = BytesMut::new();
        s.update(&plaintext(40), &mut out);
        assert_eq!(out.len(), 32);
        s.key = None;
        s.update(&plaintext(100), &mut out);
        assert_eq!((out.len(), s.carried()), (32, (40 + 100) % 16));
        assert!(format!("{s:?}").contains("failed: true"));
        assert_eq!(s.finish(&mut out), Err(CipherFailed));
        assert_eq!(out.len(), 32, "no padding block after a failure");
    }

    /// Inputs larger than one backend call ([`PIECE`]) split on whole blocks,
    /// with a carry in front, still match the reference.
    #[test]
    fn inputs_spanning_several_pieces() {
        let pt = plaintext(3 * PIECE + 37);
        let want = rustcrypto_enc(&KEY, &IV, &pt);
        assert_eq!(
            encrypt_chunked(&KEY, &IV, &pt, &[5, 2 * PIECE + 3, PIECE]),
            want
        );
    }

    /// A random key and IV, a plaintext shorter than `max_len` and 1 to 19
    /// chunk sizes, each from 1 to below `max_chunk`.
    fn stream_case(
        max_len: usize,
        max_chunk: usize,
    ) -> impl Strategy<Value = ([u8; 16], [u8; 16], Vec<u8>, Vec<usize>)> {
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            proptest::collection::vec(any::<u8>(), 0..max_len),
            proptest::collection::vec(1usize..max_chunk, 1..20),
        )
    }

    proptest! {
        /// Random keys, IVs, lengths and chunkings against an independent
        /// implementation (the `openssl enc` tests above use fixed keys).
        #[test]
        fn matches_rustcrypto_reference((key, iv, pt, chunks) in stream_case(4096, 600)) {
            let want = rustcrypto_enc(&key, &iv, &pt);
            prop_assert_eq!(encrypt_chunked(&key, &iv, &pt, &chunks), want);
        }

        #[test]
        fn any_chunking_equals_one_shot((key, iv, pt, chunks) in stream_case(2048, 100)) {
            let one_shot = encrypt_chunked(&key, &iv, &pt, &[usize::MAX]);
            let chunked = encrypt_chunked(&key, &iv, &pt, &chunks);
            prop_assert_eq!(one_shot.len() as u64, encrypted_len(pt.len() as u64));
            prop_assert_eq!(chunked, one_shot);
        }
    }
}
