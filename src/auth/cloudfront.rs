//! AWS CloudFront signed URLs, canned policy (research `auth-schemes.md`
//! §8.1): a verifier only.
//!
//! A canned-policy link is `<resource>[?|&]Expires=<epoch>&Signature=<sig>&Key-Pair-Id=<id>`
//! where `sig` is RSA PKCS#1 v1.5 (SHA-1, or SHA-256 for links signed with
//! `Hash-Algorithm=SHA256`) over the exact policy text
//! `{"Statement":[{"Resource":"<resource>","Condition":{"DateLessThan":{"AWS:EpochTime":<Expires>}}}]}`,
//! written in CloudFront's base64 alphabet (`-`, `_`, `~` for `+`, `=`, `/`).
//!
//! Owns the policy text, the CloudFront base64 decoding and the verdict.
//! Pure core: no I/O, no clock (`now` is an argument), no logging. The
//! RSA arithmetic is aws-lc-rs; nothing secret is compared here (the key is
//! public and the signature check is aws-lc's).
//!
//! **Not wired as a proxy method**: there is no `[auth.cloudfront]` config,
//! no [`super::AuthMethod`] and no [`super::Scheme`] impl, because `sign`
//! would need the private key and `Key-Pair-Id` would need a key table.
//! Wiring it (config, key selection by `Key-Pair-Id`, param stripping) is
//! future work; this module is the tested core that wiring will call.
//!
//! Semantics follow `authref.py` `cloudfront_verify` exactly, in its order:
//!
//! 1. `Expires`, `Signature` and `Key-Pair-Id` must all be present, else
//!    `Forbidden`. Each is read raw (not percent-decoded), the *last*
//!    occurrence winning (the reference builds a dict). `Key-Pair-Id` is
//!    not checked against anything (one key per call).
//! 2. The resource is the URL up to the first `?` plus the URL's own query:
//!    every non-empty `&`-part except `Expires`, `Signature`, `Key-Pair-Id`
//!    and `Hash-Algorithm`, in order, each written back as `name=value`
//!    (a bare `flag` becomes `flag=`). It goes into the policy as is, no
//!    JSON escaping, like the reference.
//! 3. `Expires` must be ASCII digits, else `Forbidden`; the policy carries
//!    the number without leading zeros.
//! 4. A signature that does not decode, does not fit the modulus or does
//!    not verify under `alg` is `Forbidden`.
//! 5. Only then time: `DateLessThan` is strict, so `now >= Expires` is
//!    `Expired` (at `now == Expires` access is refused).
//!
//! Deliberate differences from the reference, all on inputs no signer
//! produces and all refusing: non-ASCII digits in `Expires` (Python's
//! `isdigit`) and signature integers at least the modulus (Python reduces
//! them mod n) are `Forbidden`.

use std::fmt;

use aws_lc_rs::signature::{
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, RsaParameters,
    RsaPublicKeyComponents,
};

use super::wire::{STANDARD, base64_digit};
use super::{Check, Identity, query};

/// The query parameters CloudFront signing adds; never part of the resource.
const SIGNING_PARAMS: [&str; 4] = ["Expires", "Signature", "Key-Pair-Id", "Hash-Algorithm"];

/// The digest the link was signed with (the caller decides; the
/// `Hash-Algorithm` parameter itself is not trusted to choose it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// RSA-SHA1, CloudFront's default.
    Sha1,
    /// RSA-SHA256 (`Hash-Algorithm=SHA256`).
    Sha256,
}

impl HashAlgorithm {
    fn params(self) -> &'static RsaParameters {
        match self {
            HashAlgorithm::Sha1 => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            HashAlgorithm::Sha256 => &RSA_PKCS1_2048_8192_SHA256,
        }
    }
}

/// A CloudFront public key: RSA modulus and exponent, validated.
#[derive(Clone, PartialEq, Eq)]
pub struct CloudFrontKey {
    /// Modulus, big-endian, no leading zero bytes, 2048–8192 bits.
    n: Vec<u8>,
    /// Public exponent, big-endian, no leading zero bytes, odd and > 1.
    e: Vec<u8>,
}

impl fmt::Debug for CloudFrontKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudFrontKey")
            .field("modulus_bits", &bit_len(&self.n))
            .finish_non_exhaustive()
    }
}

impl CloudFrontKey {
    /// A key from the hex modulus `n_hex` and exponent `e_hex` (upper or
    /// lower case, odd length allowed, leading zeros ignored). Errors name
    /// what is wrong: not hex, a modulus outside 2048–8192 bits, an even or
    /// trivial exponent.
    pub fn new(n_hex: &str, e_hex: &str) -> Result<Self, String> {
        let n = hex_number(n_hex).map_err(|e| format!("modulus: {e}"))?;
        let e = hex_number(e_hex).map_err(|e| format!("exponent: {e}"))?;
        let bits = bit_len(&n);
        if !(2048..=8192).contains(&bits) {
            return Err(format!(
                "modulus: {bits} bits, CloudFront keys have 2048 to 8192"
            ));
        }
        if e.last().is_none_or(|b| b & 1 == 0) || e == [1] {
            return Err("exponent: must be odd and greater than 1".to_owned());
        }
        Ok(CloudFrontKey { n, e })
    }
}

/// Verify a canned-policy signed URL (`url_with_query`: the full URL as
/// signed, e.g. `https://d1.cloudfront.net/a/index.m3u8?Expires=…`) with
/// `key` under `alg` at Unix time `now`. `Allow` carries no user; every
/// failure is `Forbidden` except a valid signature past `Expires`, which is
/// `Expired`. Never panics.
pub fn verify(url_with_query: &str, key: &CloudFrontKey, now: u64, alg: HashAlgorithm) -> Check {
    let (base, query) = url_with_query
        .split_once('?')
        .unwrap_or((url_with_query, ""));
    let last = |name: &str| {
        query::pairs(query)
            .rev()
            .find_map(|(k, v)| (k == name).then_some(v))
    };
    let (Some(expires), Some(signature), Some(_key_pair_id)) =
        (last("Expires"), last("Signature"), last("Key-Pair-Id"))
    else {
        return Check::Forbidden;
    };
    if expires.is_empty() || !expires.bytes().all(|b| b.is_ascii_digit()) {
        return Check::Forbidden;
    }
    let expires = expires.trim_start_matches('0');
    let expires = if expires.is_empty() { "0" } else { expires };
    let policy = canned_policy(&resource(base, query), expires);
    let Some(signature) = cf_unb64(signature).and_then(|s| fit_to_modulus(s, key.n.len())) else {
        return Check::Forbidden;
    };
    let public = RsaPublicKeyComponents {
        n: key.n.as_slice(),
        e: key.e.as_slice(),
    };
    if public
        .verify(alg.params(), policy.as_bytes(), &signature)
        .is_err()
    {
        return Check::Forbidden;
    }
    // More than 20 digits is past any u64 `now`: not expired.
    match expires.parse::<u64>() {
        Ok(at) if now >= at => Check::Expired,
        _ => Check::Allow(Identity::default()),
    }
}

/// `base` plus the URL's own query without the signing parameters, as the
/// reference rebuilds it: non-empty parts only, each as `name=value`.
fn resource(base: &str, query: &str) -> String {
    let mut out = base.to_owned();
    let own = query
        .split('&')
        .filter(|part| !part.is_empty())
        .flat_map(query::pairs)
        .filter(|(k, _)| !SIGNING_PARAMS.contains(k));
    for (i, (k, v)) in own.enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// The canned policy text, byte for byte (no whitespace, no escaping).
fn canned_policy(resource: &str, expires: &str) -> String {
    format!(
        r#"{{"Statement":[{{"Resource":"{resource}","Condition":{{"DateLessThan":{{"AWS:EpochTime":{expires}}}}}}}]}}"#
    )
}

/// The signature as exactly `k` big-endian bytes (the modulus length):
/// leading zero bytes dropped or added; `None` if it is longer than that.
fn fit_to_modulus(sig: Vec<u8>, k: usize) -> Option<Vec<u8>> {
    let start = sig.iter().position(|&b| b != 0).unwrap_or(sig.len());
    let digits = sig.get(start..)?;
    let pad = k.checked_sub(digits.len())?;
    let mut out = vec![0u8; pad];
    out.extend_from_slice(digits);
    Some(out)
}

/// CloudFront base64 (`-_~` for `+=/`) decoded as Python's
/// `base64.b64decode` does without `validate`: characters outside the
/// alphabet are skipped, a complete pad sequence ends the input, an
/// incomplete final quantum is an error, non-ASCII input is an error.
fn cf_unb64(s: &str) -> Option<Vec<u8>> {
    if !s.is_ascii() {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3 + 3);
    let (mut quad_pos, mut pads, mut left) = (0u8, 0u8, 0u8);
    for c in s.bytes() {
        let c = match c {
            b'-' => b'+',
            b'_' => b'=',
            b'~' => b'/',
            c => c,
        };
        if c == b'=' {
            if quad_pos >= 2 {
                pads += 1;
                if quad_pos + pads >= 4 {
                    return Some(out);
                }
            }
            continue;
        }
        let Some(v) = base64_digit(c, STANDARD) else {
            continue;
        };
        pads = 0;
        match quad_pos {
            0 => left = v,
            1 => {
                out.push((left << 2) | (v >> 4));
                left = v & 0x0f;
            }
            2 => {
                out.push((left << 4) | (v >> 2));
                left = v & 0x03;
            }
            _ => {
                out.push((left << 6) | v);
                left = 0;
            }
        }
        quad_pos = (quad_pos + 1) % 4;
    }
    (quad_pos == 0).then_some(out)
}

/// A hex number as big-endian bytes without leading zeros (odd length
/// allowed); an error for empty, non-hex or zero.
fn hex_number(s: &str) -> Result<Vec<u8>, String> {
    let digits = s.trim_start_matches('0');
    if s.is_empty() || digits.is_empty() {
        return Err("empty or zero".to_owned());
    }
    let padded;
    let even = if digits.len() % 2 == 1 {
        padded = format!("0{digits}");
        &padded
    } else {
        digits
    };
    hex::decode(even).map_err(|e| format!("not hex: {e}"))
}

/// Bits in a big-endian number without leading zero bytes.
fn bit_len(n: &[u8]) -> usize {
    n.first()
        .map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::vectors;
    use proptest::prelude::*;

    fn vector_key() -> CloudFrontKey {
        let c = &vectors::cases("cloudfront_canned")[0];
        CloudFrontKey::new(c.s("n_hex"), c.s("e_hex")).unwrap()
    }

    /// Every case of group `cloudfront_canned`, its verdict and the policy
    /// text the reference signed.
    #[test]
    fn vectors_cloudfront_canned() {
        let cases = vectors::cases("cloudfront_canned");
        assert_eq!(cases.len(), 8);
        for c in &cases {
            let key = CloudFrontKey::new(c.s("n_hex"), c.s("e_hex")).unwrap();
            let alg = match c.s("alg") {
                "sha1" => HashAlgorithm::Sha1,
                "sha256" => HashAlgorithm::Sha256,
                other => panic!("{}: alg {other}", c.name),
            };
            let want = match c.verdict() {
                "allow" => Check::Allow(Identity::default()),
                "forbidden" => Check::Forbidden,
                "expired" => Check::Expired,
                other => panic!("{}: verdict {other}", c.name),
            };
            let url = c.s("url");
            assert_eq!(verify(url, &key, c.u("now"), alg), want, "{}", c.name);
            let (base, query) = url.split_once('?').unwrap();
            assert_eq!(
                canned_policy(&resource(base, query), "1767290400"),
                c.s("policy"),
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn wrong_algorithm_and_missing_params_are_forbidden() {
        let key = vector_key();
        let c = &vectors::cases("cloudfront_canned")[0];
        let (url, now) = (c.s("url"), c.u("now"));
        assert_eq!(
            verify(url, &key, now, HashAlgorithm::Sha256),
            Check::Forbidden
        );
        for name in ["Expires=", "Signature=", "Key-Pair-Id="] {
            let broken = url.replace(name, "X-");
            assert_eq!(
                verify(&broken, &key, now, HashAlgorithm::Sha1),
                Check::Forbidden
            );
        }
        let (base, _) = url.split_once('?').unwrap();
        assert_eq!(
            verify(base, &key, now, HashAlgorithm::Sha1),
            Check::Forbidden
        );
        // Last occurrence wins, like the reference's dict.
        let dup_bad_last = format!("{url}&Signature=AAAA");
        assert_eq!(
            verify(&dup_bad_last, &key, now, HashAlgorithm::Sha1),
            Check::Forbidden
        );
        let with_leading_zeros = url.replace("Expires=", "Expires=00");
        assert_eq!(
            verify(&with_leading_zeros, &key, now, HashAlgorithm::Sha1),
            Check::Allow(Identity::default())
        );
        let signed_elsewhere = url.replace("Expires=1767290400", "Expires=1767290401");
        assert_eq!(
            verify(&signed_elsewhere, &key, now, HashAlgorithm::Sha1),
            Check::Forbidden
        );
    }

    #[test]
    fn own_query_is_rebuilt_like_the_reference() {
        let q = "a=1&&flag&Expires=5&b=x=y&Hash-Algorithm=SHA256&Signature=s&Key-Pair-Id=k";
        assert_eq!(resource("https://h/p", q), "https://h/p?a=1&flag=&b=x=y");
        assert_eq!(resource("https://h/p", "Expires=5&&"), "https://h/p");
        assert_eq!(resource("https://h/p", "="), "https://h/p?=");
    }

    #[test]
    fn cloudfront_base64_like_python() {
        assert_eq!(cf_unb64("aGk_").as_deref(), Some(&b"hi"[..]));
        assert_eq!(cf_unb64("aG k_").as_deref(), Some(&b"hi"[..]));
        assert_eq!(cf_unb64("aGk_junk").as_deref(), Some(&b"hi"[..]));
        assert_eq!(cf_unb64("-~-~").as_deref(), Some(&[0xfb, 0xff, 0xbf][..]));
        assert_eq!(cf_unb64("aGk"), None, "missing padding");
        assert_eq!(cf_unb64("a"), None);
        assert_eq!(cf_unb64("aGké_"), None, "non-ASCII");
        assert_eq!(cf_unb64("").as_deref(), Some(&[][..]));
        assert_eq!(fit_to_modulus(vec![0, 0, 1], 2), Some(vec![0, 1]));
        assert_eq!(fit_to_modulus(vec![1, 2, 3], 2), None);
    }

    #[test]
    fn key_validation() {
        let c = &vectors::cases("cloudfront_canned")[0];
        let n = c.s("n_hex");
        assert!(CloudFrontKey::new(&format!("000{n}"), "10001").is_ok());
        assert!(CloudFrontKey::new(&n.to_uppercase(), "010001").is_ok());
        for (n_hex, e_hex) in [
            ("", "010001"),
            ("zz", "010001"),
            (&n[..200], "010001"),
            (n, ""),
            (n, "0"),
            (n, "1"),
            (n, "010000"),
            (n, "01g001"),
        ] {
            assert!(CloudFrontKey::new(n_hex, e_hex).is_err(), "{e_hex:?}");
        }
        let dbg = format!("{:?}", vector_key());
        assert!(dbg.contains("2048"), "{dbg}");
    }

    proptest! {
        #[test]
        fn verify_never_panics(
            url in "\\PC{0,120}",
            params in proptest::collection::vec(
                (prop_oneof![
                    Just("Expires".to_owned()),
                    Just("Signature".to_owned()),
                    Just("Key-Pair-Id".to_owned()),
                    Just("Hash-Algorithm".to_owned()),
                    "[a-z=&]{0,6}",
                ], "\\PC{0,400}"),
                0..6,
            ),
            now in any::<u64>(),
            sha256 in any::<bool>(),
        ) {
            let key = vector_key();
            let alg = if sha256 { HashAlgorithm::Sha256 } else { HashAlgorithm::Sha1 };
            let query = params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&");
            let _ = verify(&url, &key, now, alg);
            let _ = verify(&format!("{url}?{query}"), &key, now, alg);
        }
    }
}
