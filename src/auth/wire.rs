//! Small wire-format pieces more than one scheme needs: an IP address's text
//! formatted on the stack, and the value of a base64 digit in either of the
//! two alphabets (RFC 4648 standard and URL-safe).
//!
//! Pure and allocation-free: the schemes call these once per request.

use std::fmt;
use std::net::IpAddr;

/// An IP address's text on the stack (the longest, an IPv4-mapped IPv6
/// address, is 45 bytes): no allocation per request.
pub(crate) struct IpText {
    buf: [u8; 64],
    len: usize,
}

impl IpText {
    /// The text form of `ip` (as `Display` writes it).
    pub(crate) fn new(ip: IpAddr) -> Self {
        use std::fmt::Write;
        let mut t = Self {
            buf: [0; 64],
            len: 0,
        };
        match ip {
            // Dotted quad by hand: the formatter costs ~900 instructions
            // per request, this a tenth of that.
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        t.push(b'.');
                    }
                    if octet >= 100 {
                        t.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        t.push(b'0' + octet / 10 % 10);
                    }
                    t.push(b'0' + octet % 10);
                }
            }
            // Cannot fail: the buffer fits every address.
            IpAddr::V6(_) => {
                let _ = write!(t, "{ip}");
            }
        }
        t
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(self.buf.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }
}

impl fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The standard base64 alphabet's digits 62 and 63.
pub(crate) const STANDARD: [u8; 2] = [b'+', b'/'];
/// The URL-safe base64 alphabet's digits 62 and 63.
pub(crate) const URL_SAFE: [u8; 2] = [b'-', b'_'];

/// The value of base64 digit `c` in the alphabet whose digits 62 and 63 are
/// `last_two` ([`STANDARD`] or [`URL_SAFE`]); `None` outside it.
pub(crate) fn base64_digit(c: u8, last_two: [u8; 2]) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        _ if c == last_two[0] => Some(62),
        _ if c == last_two[1] => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_is_display() {
        let quads = (0..=255u8).flat_map(|o| [format!("{o}.0.{o}.9"), format!("1.{o}.10.{o}")]);
        let others = [
            "0.0.0.0",
            "255.255.255.255",
            "::ffff:255.255.255.255",
            "2001:db8::1",
            "::",
        ];
        for ip in quads.chain(others.map(str::to_owned)) {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(IpText::new(ip).as_str(), ip.to_string());
        }
    }

    #[test]
    fn base64_digits_of_both_alphabets() {
        assert_eq!(base64_digit(b'A', STANDARD), Some(0));
        assert_eq!(base64_digit(b'z', URL_SAFE), Some(51));
        assert_eq!(base64_digit(b'9', STANDARD), Some(61));
        assert_eq!(base64_digit(b'+', STANDARD), Some(62));
        assert_eq!(base64_digit(b'/', STANDARD), Some(63));
        assert_eq!(base64_digit(b'-', URL_SAFE), Some(62));
        assert_eq!(base64_digit(b'_', URL_SAFE), Some(63));
        assert_eq!(base64_digit(b'-', STANDARD), None);
        assert_eq!(base64_digit(b'/', URL_SAFE), None);
        assert_eq!(base64_digit(b'=', STANDARD), None);
    }
}
