//! The one rule for names and secrets that come from outside: user ids,
//! package names and blocklisted user ids, wherever they come from (the
//! config file, the admin API, a control-plane answer, the state dir), and
//! the bytes a token or password may hold.
//!
//! Ids: 1 to 255 bytes of `A-Z a-z 0-9 - _ . @`, and not `.` or `..`. Such an
//! id rides unescaped in a URL path segment (`/api/v1/users/{id}`), in
//! `?auth=id:password` (no `:`), in a log line and a Redis key, and can never
//! be read as a dot segment.
//!
//! Secrets (tokens, passwords): non-empty, no ASCII control character (NUL,
//! CR, LF, …), so none can split a header, a log line or a line-based file.
//!
//! Pure: no I/O; messages never contain the secret itself.

/// Longest id, in bytes.
pub const MAX_ID_BYTES: usize = 255;

/// What the id rule says, for messages: `"1 to 255 of A-Z a-z 0-9 - _ . @, not . or .."`.
pub const ID_RULE: &str = "must be 1 to 255 of A-Z a-z 0-9 - _ . @, and not \".\" or \"..\"";

/// True when `id` follows the id rule.
pub fn is_valid_id(id: &str) -> bool {
    follows(id, MAX_ID_BYTES, b"")
}

/// 1 to `max` bytes of `A-Z a-z 0-9 - _ . @` and `more`, not `.` or `..`.
fn follows(name: &str, max: usize, more: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name != "."
        && name != ".."
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@') || more.contains(&b)
        })
}

/// [`is_valid_id`] as a result whose error is [`ID_RULE`].
pub fn check_id(id: &str) -> Result<(), &'static str> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(ID_RULE)
    }
}

/// Longest hardware id, in bytes.
pub const MAX_HWID_BYTES: usize = 128;

/// What the hardware-id rule says, for messages.
pub const HWID_RULE: &str = "must be 1 to 128 of A-Z a-z 0-9 - _ . @ :, and not \".\" or \"..\"";

/// A device's hardware id (SPEC §7.3): the id rule with `:` too (MAC
/// addresses, `00:1A:79:…`), at most [`MAX_HWID_BYTES`]. It rides in a
/// capability, a query parameter and a URL path segment.
pub fn check_hwid(hwid: &str) -> Result<(), &'static str> {
    if follows(hwid, MAX_HWID_BYTES, b":") {
        Ok(())
    } else {
        Err(HWID_RULE)
    }
}

/// A token or password: non-empty and free of control characters. The
/// message never contains the secret.
pub fn check_secret(secret: &str) -> Result<(), &'static str> {
    if secret.is_empty() {
        Err("must not be empty")
    } else if secret.chars().any(char::is_control) {
        Err("contains a control character (NUL, CR, LF, ...)")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let long = "a".repeat(MAX_ID_BYTES);
        let too_long = "a".repeat(MAX_ID_BYTES + 1);
        for good in [
            "alice",
            "a",
            "A-Z_0.9",
            "bob@example.com",
            "...",
            ".hidden",
            "a..b",
            long.as_str(),
        ] {
            assert!(is_valid_id(good), "{good:?}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a b",
            "a/b",
            "a:b",
            "a%2e",
            "a\0",
            "a\r\nb",
            "é",
            "a+b",
            too_long.as_str(),
        ] {
            assert!(!is_valid_id(bad), "{bad:?}");
            assert_eq!(check_id(bad), Err(ID_RULE));
        }
    }

    #[test]
    fn hwids() {
        let long = "a".repeat(MAX_HWID_BYTES);
        for good in ["00:1A:79:00:00:01", "box-7", "a:b", long.as_str()] {
            assert_eq!(check_hwid(good), Ok(()), "{good:?}");
        }
        let too_long = "a".repeat(MAX_HWID_BYTES + 1);
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "a%3A",
            "a\n",
            too_long.as_str(),
        ] {
            assert_eq!(check_hwid(bad), Err(HWID_RULE), "{bad:?}");
        }
    }

    #[test]
    fn secrets() {
        assert!(check_secret("3f9c1e7a5b2d4c68").is_ok());
        assert!(check_secret("p&ss word:é").is_ok());
        for bad in ["", "a\0b", "a\rb", "a\nb", "a\u{7f}", "a\tb"] {
            assert!(check_secret(bad).is_err(), "{bad:?}");
        }
    }
}
