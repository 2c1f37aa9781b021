//! Correctness under load: a sample of the segments the players fetched is
//! decrypted with the key from its key URI and its IV (the `IV` attribute or
//! the MSN) and compared with the bytes the origin serves for the same
//! segment, fetched straight from the origin.
//!
//! Decryption uses the RustCrypto `aes` + `cbc` crates, independent of
//! tollgate's own cipher (aws-lc), so a bug there cannot hide itself.
//! The origin's answer for a path is cached briefly: every viewer of a
//! channel fetches the same segments, and the simulated origin's segments
//! are deterministic per path (`/live/<ch>/seg-<msn>.ts`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use aes::Aes128;
use bytes::Bytes;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, KeyIvInit};
use url::Url;

use crate::client::HttpClient;
use crate::report::{Kind, Recorder};

/// Origin answers kept for comparison; cleared when full (the live window
/// moves on, old entries are useless).
const ORIGIN_CACHE_ENTRIES: usize = 512;

/// Decrypts an AES-128-CBC body with PKCS#7 padding; `None` when the length
/// or the padding is wrong (a wrong key or IV usually shows up here).
pub fn decrypt(key: &[u8; 16], iv: &[u8; 16], body: &[u8]) -> Option<Vec<u8>> {
    cbc::Decryptor::<Aes128>::new(key.into(), iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(body)
        .ok()
}

/// Samples segments and checks them against the origin.
pub struct Verifier {
    /// The origin's base URL (`http://127.0.0.1:PORT`); a segment's proxy
    /// path is appended to it.
    origin: String,
    client: HttpClient,
    every: u64,
    seen: AtomicU64,
    cache: Mutex<HashMap<String, Bytes>>,
    max_body: usize,
}

impl Verifier {
    /// Checks every `every`-th segment (0 = none) against `origin`.
    pub fn new(origin: &Url, every: u64, client: HttpClient, max_body: usize) -> Self {
        Self {
            origin: origin.as_str().trim_end_matches('/').to_owned(),
            client,
            every,
            seen: AtomicU64::new(0),
            cache: Mutex::new(HashMap::new()),
            max_body,
        }
    }

    /// Whether the next fetched segment is in the sample.
    pub fn sample(&self) -> bool {
        self.every > 0
            && self
                .seen
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(self.every)
    }

    /// Checks one fetched segment: `body` as the proxy served it from
    /// `segment`, `key` and `iv` when it is encrypted. Outcomes go to `rec`.
    pub async fn check(
        &self,
        segment: &Url,
        key: Option<(&[u8; 16], &[u8; 16])>,
        body: &[u8],
        rec: &Recorder,
    ) {
        let plain = match key {
            Some((k, iv)) => match decrypt(k, iv, body) {
                Some(p) => Bytes::from(p),
                None => {
                    rec.verified(false, false);
                    rec.check_failed(
                        Kind::Segment,
                        "verify: does not decrypt (length or padding)",
                    );
                    return;
                }
            },
            None => Bytes::copy_from_slice(body),
        };
        let expected = match self.origin_bytes(segment.path()).await {
            Ok(b) => b,
            Err(cause) => {
                rec.check_failed(Kind::Segment, &format!("verify: origin {cause}"));
                return;
            }
        };
        let matched = plain == expected;
        rec.verified(key.is_some(), matched);
        if !matched {
            rec.check_failed(
                Kind::Segment,
                "verify: plaintext differs from the origin's bytes",
            );
        }
    }

    async fn origin_bytes(&self, path: &str) -> Result<Bytes, String> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .cloned();
        if let Some(b) = cached {
            return Ok(b);
        }
        let url = Url::parse(&format!("{}{path}", self.origin)).map_err(|_| "bad URL")?;
        let bytes = self
            .client
            .get(&url, self.max_body)
            .await
            .map_err(|e| e.cause())?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= ORIGIN_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(path.to_owned(), bytes.clone());
        Ok(bytes)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    #[test]
    fn decrypts_what_tollgate_encrypts_and_refuses_a_wrong_key() {
        let key = [7u8; 16];
        let iv = tollgate::cbc::iv_for_msn(42);
        let plain: Vec<u8> = (0..1000u32).map(|i| (i * 31) as u8).collect();
        let mut out = BytesMut::new();
        let mut enc = tollgate::cbc::CbcStream::new(&key, &iv);
        enc.update(&plain, &mut out);
        enc.finish(&mut out).unwrap();
        assert_eq!(decrypt(&key, &iv, &out).unwrap(), plain);
        let wrong = [8u8; 16];
        assert_ne!(decrypt(&wrong, &iv, &out), Some(plain.clone()));
        assert_eq!(decrypt(&key, &iv, &out[..out.len() - 1]), None);
    }
}
