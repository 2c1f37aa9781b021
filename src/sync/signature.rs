//! Authenticity of `tollgate`-mode answers (docs/control-plane.md,
//! "Transport and trust").
//!
//! Every report carries a fresh random nonce in [`NONCE_HEADER`]; the
//! control plane answers with [`SIGNATURE_HEADER`]: the lowercase hex
//! HMAC-SHA256, keyed with the shared `[control_plane] token`, of the nonce
//! (as sent, ASCII) followed by the answer body's exact bytes. An answer
//! whose MAC is missing or wrong is refused whole, so someone on the path
//! can neither rewrite an answer nor replay an old one (its nonce differs).
//!
//! Pure core: no I/O, no clock; the comparison is constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Request header carrying the nonce of one report.
pub const NONCE_HEADER: &str = "x-tollgate-nonce";
/// Answer header carrying the MAC.
pub const SIGNATURE_HEADER: &str = "x-tollgate-signature";

/// Why an answer's MAC was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header.
    #[error("answer carries no {SIGNATURE_HEADER} header")]
    Missing,
    /// Present, but not the MAC of this nonce and body under the token.
    #[error("answer's {SIGNATURE_HEADER} does not match its body and nonce")]
    Mismatch,
}

fn mac(token: &[u8], nonce: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: new_from_slice cannot fail.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(token)
        .unwrap_or_else(|_| Hmac::new(&hmac::digest::Key::<Hmac<Sha256>>::default()));
    m.update(nonce.as_bytes());
    m.update(body);
    m
}

/// The signature header value for `body` answering the report sent with `nonce`.
pub fn sign(token: &[u8], nonce: &str, body: &[u8]) -> String {
    hex::encode(mac(token, nonce, body).finalize().into_bytes())
}

/// Check an answer's signature header (`presented`, as received).
pub fn verify(
    token: &[u8],
    nonce: &str,
    body: &[u8],
    presented: Option<&[u8]>,
) -> Result<(), SignatureError> {
    let presented = presented.ok_or(SignatureError::Missing)?;
    let tag = std::str::from_utf8(presented)
        .ok()
        .and_then(|t| hex::decode(t.trim()).ok())
        .ok_or(SignatureError::Mismatch)?;
    mac(token, nonce, body)
        .verify_slice(&tag)
        .map_err(|_| SignatureError::Mismatch)
}

/// A fresh nonce: 128 random bits, 32 lowercase hex digits.
pub fn nonce() -> String {
    let mut b = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answer: `printf '%s%s' 00112233445566778899aabbccddeeff '{"version":1}'
    /// | openssl dgst -sha256 -hmac cp-token`.
    #[test]
    fn known_answer_and_refusals() {
        let nonce = "00112233445566778899aabbccddeeff";
        let body = br#"{"version":1}"#;
        let sig = sign(b"cp-token", nonce, body);
        assert_eq!(sig.len(), 64);
        assert_eq!(sig, KNOWN);
        assert_eq!(
            verify(b"cp-token", nonce, body, Some(sig.as_bytes())),
            Ok(())
        );
        assert_eq!(
            verify(
                b"cp-token",
                nonce,
                body,
                Some(sig.to_uppercase().as_bytes())
            ),
            Ok(())
        );
        assert_eq!(
            verify(b"cp-token", nonce, body, None),
            Err(SignatureError::Missing)
        );
        for (token, n, b, s) in [
            (&b"other"[..], nonce, &body[..], sig.as_str()),
            (b"cp-token", "ffeeddccbbaa99887766554433221100", body, &sig),
            (b"cp-token", nonce, br#"{"version":2}"#, &sig),
            (b"cp-token", nonce, body, &sig[..62]),
            (b"cp-token", nonce, body, "not hex"),
            (b"cp-token", nonce, body, ""),
        ] {
            assert_eq!(
                verify(token, n, b, Some(s.as_bytes())),
                Err(SignatureError::Mismatch),
                "{n} {s}"
            );
        }
        let (a, b) = (super::nonce(), super::nonce());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    const KNOWN: &str = "27be7ba3f5fe14e22b776c3729e04d3ba5ec1f5dc9faa04bbb936afa0e91284a";
}
