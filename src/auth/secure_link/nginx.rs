//! Byte-exact ports of the nginx primitives `secure_link` relies on:
//! `ngx_atotm` (the expiry), `ngx_decode_base64url` (the hash) and the
//! `secure_link_secret` URL split. `ngx_http_arg` (`$arg_NAME`) is
//! [`crate::auth::query::arg`], shared with the other schemes.
//!
//! Each one reproduces nginx's acceptance rules, including the lenient ones
//! (ignored padding, unchecked low bits), because a stricter proxy would
//! refuse links a real nginx accepts. Pure functions: no I/O, no allocation.

use crate::auth::wire::{URL_SAFE, base64_digit};

/// `ngx_atotm`: ASCII digits only (no sign, no space), not empty, no larger
/// than the largest `time_t`. `None` is nginx's `NGX_ERROR`.
pub fn atotm(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut value: u64 = 0;
    for b in text.bytes() {
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    (value <= i64::MAX as u64).then_some(value)
}

/// nginx's hash argument rules end to end: at most 24 bytes as received,
/// then `ngx_decode_base64url`, and exactly 16 decoded bytes.
///
/// Decoding stops at the first `=` (whatever follows is ignored); any other
/// byte outside `A-Z a-z 0-9 - _` is an error (`+` and `/` included); a
/// length before the `=` of `4k + 1` is an error; the unused low bits of the
/// last character are not checked.
pub fn decode_md5_arg(hash: &str) -> Option<[u8; 16]> {
    let bytes = hash.as_bytes();
    if bytes.len() > 24 {
        return None;
    }
    let len = bytes.iter().position(|&b| b == b'=').unwrap_or(bytes.len());
    // 21 or 22 characters (before any `=`) are the only lengths that give 16
    // bytes: 21 * 6 / 8 = 15 and 23 * 6 / 8 = 17.
    if len != 22 {
        return None;
    }
    let mut vals = [0u8; 22];
    for (v, &c) in vals.iter_mut().zip(&bytes[..len]) {
        *v = base64_digit(c, URL_SAFE)?;
    }
    let mut out = [0u8; 16];
    let mut o = 0;
    for quad in vals.chunks(4) {
        let [a, b, c, d] = [0, 1, 2, 3].map(|k| quad.get(k).copied().unwrap_or(0));
        let three = [(a << 2) | (b >> 4), (b << 4) | (c >> 2), (c << 6) | d];
        // A full quad gives 3 bytes, the trailing 2 characters give 1.
        let take = if quad.len() == 4 { 3 } else { quad.len() - 1 };
        for &byte in &three[..take] {
            if let Some(slot) = out.get_mut(o) {
                *slot = byte;
            }
            o += 1;
        }
    }
    (o == 16).then_some(out)
}

/// The `secure_link_secret` split of a raw request target: skip `/` and the
/// first path segment (or, when `prefix` is given, require and skip exactly
/// that), take the next segment as the hash, and everything after its `/` as
/// the link. `None` when the layout does not fit, the hash segment is not 32
/// bytes or the link is empty: nginx's "not found".
pub fn split_secret_target<'t>(
    target: &'t str,
    prefix: Option<&str>,
) -> Option<(&'t str, &'t str)> {
    let after_prefix = match prefix {
        Some(p) => target.strip_prefix(p)?,
        None => {
            // nginx starts scanning at the second byte, whatever the first is.
            let rest = target.get(1..)?;
            let slash = rest.find('/')?;
            rest.get(slash + 1..)?
        }
    };
    let (hash, link) = after_prefix.split_once('/')?;
    (hash.len() == 32 && !link.is_empty()).then_some((hash, link))
}

/// Whether the 32 hex digits `hex` (either case) spell `digest`, compared in
/// constant time. Non-hex digits never match.
pub fn hex_matches(hex: &str, digest: &[u8; 16]) -> bool {
    use subtle::ConstantTimeEq;
    let mut decoded = [0u8; 16];
    let mut ok = hex.len() == 32;
    for (i, pair) in hex.as_bytes().chunks(2).enumerate().take(16) {
        let hi = (pair[0] as char).to_digit(16);
        let lo = pair.get(1).and_then(|&c| (c as char).to_digit(16));
        match (hi, lo, decoded.get_mut(i)) {
            (Some(h), Some(l), Some(slot)) => *slot = (h * 16 + l) as u8,
            _ => ok = false,
        }
    }
    ok && bool::from(decoded.ct_eq(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atotm_table() {
        assert_eq!(atotm("2147483647"), Some(2_147_483_647));
        assert_eq!(atotm("0"), Some(0));
        assert_eq!(atotm("0001"), Some(1));
        assert_eq!(atotm("9223372036854775807"), Some(i64::MAX as u64));
        for bad in [
            "",
            "+1",
            "-1",
            " 1",
            "1 ",
            "1a",
            "9223372036854775808",
            "99999999999999999999",
        ] {
            assert_eq!(atotm(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn base64url_rules() {
        // md5("") = d41d8cd98f00b204e9800998ecf8427e
        let want: [u8; 16] = [
            0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04, 0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8,
            0x42, 0x7e,
        ];
        let canon = "1B2M2Y8AsgTpgAmY7PhCfg";
        assert_eq!(decode_md5_arg(canon), Some(want));
        assert_eq!(decode_md5_arg("1B2M2Y8AsgTpgAmY7PhCfg=="), Some(want));
        assert_eq!(decode_md5_arg("1B2M2Y8AsgTpgAmY7PhCfg="), Some(want));
        // After the first `=` nothing is validated.
        assert_eq!(decode_md5_arg("1B2M2Y8AsgTpgAmY7PhCfg=!"), Some(want));
        // Unused low bits of the last character are ignored (`g` = 32, `h` = 33).
        assert_eq!(decode_md5_arg("1B2M2Y8AsgTpgAmY7PhCfh"), Some(want));
        assert_eq!(decode_md5_arg("1B2M2Y8AsgTpgAmY7PhCfv"), Some(want));
        assert_ne!(decode_md5_arg("1B2M2Y8AsgTpgAmY7PhCfw"), Some(want));
        for bad in [
            "",
            "1B2M2Y8AsgTpgAmY7PhCf",     // 21 → 15 bytes
            "1B2M2Y8AsgTpgAmY7PhCfgA",   // 23 → 17 bytes
            "1B2M2Y8AsgTpgAmY7PhCfgAA",  // 24 → 18 bytes
            "1B2M2Y8AsgTpgAmY7PhCfg===", // 25 bytes as received
            "1B2M2Y8AsgTpgAmY7PhC+g",    // standard alphabet
            "1B2M2Y8AsgTpgAmY7PhC/g",
            "1B2M2Y8AsgTpgAmY7PhC%5F",
            "=1B2M2Y8AsgTpgAmY7PhCfg",
        ] {
            assert_eq!(decode_md5_arg(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn secret_split_table() {
        let h = "5e814704a28d9bc1914ff19fa0c4a00a";
        let t = format!("/p/{h}/link");
        assert_eq!(split_secret_target(&t, None), Some((h, "link")));
        assert_eq!(split_secret_target(&t, Some("/p/")), Some((h, "link")));
        assert_eq!(split_secret_target(&t, Some("/q/")), None);
        let t = format!("/a/b/{h}/x/y?z=1");
        assert_eq!(split_secret_target(&t, Some("/a/b/")), Some((h, "x/y?z=1")));
        assert_eq!(split_secret_target(&format!("/p/{h}/"), None), None);
        assert_eq!(split_secret_target(&format!("/p/{h}"), None), None);
        assert_eq!(split_secret_target("/p/abc/link", None), None);
        assert_eq!(split_secret_target("/", None), None);
        assert_eq!(split_secret_target("", None), None);
    }

    #[test]
    fn hex_compare() {
        let d = [0xab; 16];
        assert!(hex_matches(&"ab".repeat(16), &d));
        assert!(hex_matches(&"AB".repeat(16), &d));
        assert!(hex_matches(&"aB".repeat(16), &d));
        assert!(!hex_matches(&"ac".repeat(16), &d));
        assert!(!hex_matches(&format!("{}zz", "ab".repeat(15)), &d));
        assert!(!hex_matches(&"ab".repeat(15), &d));
        assert!(!hex_matches("", &d));
        assert!(!hex_matches(&format!("{}é", "ab".repeat(15)), &d));
    }
}
