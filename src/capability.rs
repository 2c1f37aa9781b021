//! Session capabilities (`tg`), segment tags (`tgs`), session ids and content
//! keys, all derived from `[keys] master` (docs/hls.md §2–§5, the wire format).
//!
//! Owns: parsing the master secret ([`parse_master`]), the four sub-keys
//! ([`MasterKeys`]), minting and verifying capabilities ([`MasterKeys::mint`],
//! [`MasterKeys::verify`]), signing and verifying segment tags
//! ([`MasterKeys::sign_tag`], [`MasterKeys::verify_tag`]), the derived
//! session id ([`MasterKeys::session_id`]) and the per-period content key
//! ([`MasterKeys::content_key`]).
//!
//! Must not: do I/O, read the clock (`now` is an argument), log, or know
//! about requests, sessions or configuration files. It never decides a
//! status code: callers map every [`CapError`] to 403 `forbidden`.
//!
//! Invariants:
//! - No key material reaches `Debug`, `Display` or an error.
//! - MACs are compared in constant time (`subtle`).
//! - One value has one encoding: tokens are unpadded base64url with no stray
//!   trailing bits, tag numbers are canonical decimal; everything else is
//!   [`CapError::Malformed`].
//! - Nothing reachable from a token, tag or master text panics.
//! - Route, channel and path names never contain a NUL byte (config
//!   validation and [`crate::path`] refuse control characters), which keeps
//!   the `‖ 0 ‖` joins of the MAC inputs unambiguous.
//! - Client IPs are canonicalized first (an IPv4-mapped IPv6 address is the
//!   IPv4 address), so a dual-stack listener does not split sessions.

mod keys;
#[cfg(test)]
mod props;
mod tag;
#[cfg(test)]
mod tests;
mod token;

use std::fmt;

pub use self::keys::{MIN_ENCODED_MASTER, MIN_RAW_MASTER, MasterKeys, parse_master};
pub use self::tag::{origin_query_of, signed_query};
pub use self::token::{Binding, Claims, MAX_USER_LEN, Scope, wire_user};

/// Why a capability or a segment tag was refused. Every variant is a 403
/// `forbidden` for the viewer; the distinction is for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum CapError {
    /// Not a value this module could have produced: bad base64, wrong
    /// version, unknown flags, wrong length, trailing bytes, non-canonical
    /// numbers.
    #[error("malformed")]
    Malformed,
    /// Well formed, but the MAC does not match this route, channel, path or
    /// client IP (or the value was tampered with, or another master made it).
    #[error("bad signature")]
    BadSignature,
    /// Authentic, but `now` is past its expiry.
    #[error("expired")]
    Expired,
}

/// A byte range of an origin resource served as a resource of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    /// First byte.
    pub offset: u64,
    /// Length in bytes; `None` = to the end of the resource.
    pub length: Option<u64>,
}

/// How one URI is served, as its segment tag (`tgs`) says.
///
/// `Display` writes the canonical tag body (docs/hls.md §5, the `tgs` value
/// without its final `.<tag>`), e.g. `e.7.3.1042`, `c.0.-` or `k.1764000000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Serve {
    /// Encrypt with the content key of (`inc`, `period`), IV = `msn`.
    Encrypt {
        /// Stream incarnation.
        inc: u64,
        /// Key period.
        period: u64,
        /// Media sequence number (the IV).
        msn: u64,
        /// Serve only this range of the origin resource.
        range: Option<ByteRange>,
    },
    /// Serve as the origin has it.
    Clear {
        /// Serve only this range of the origin resource.
        range: Option<ByteRange>,
    },
    /// A key URI (`/.tollgate/key/<route>/<channel>/<inc>/<period>.key`,
    /// the signed path naming the incarnation and period): a playlist of
    /// the channel named that key period, and its key may be served until
    /// unix second `until`.
    Key {
        /// Unix seconds after which the tag is refused.
        until: u64,
    },
}

impl fmt::Display for ByteRange {
    /// `<off>.<len>`, `<len>` being `-` for "to the end".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.length {
            Some(len) => write!(f, "{}.{len}", self.offset),
            None => write!(f, "{}.-", self.offset),
        }
    }
}

impl fmt::Display for Serve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let range = match self {
            Self::Encrypt {
                inc,
                period,
                msn,
                range,
            } => {
                write!(f, "e.{inc}.{period}.{msn}")?;
                range
            }
            Self::Clear { range } => {
                f.write_str("c")?;
                range
            }
            Self::Key { until } => return write!(f, "k.{until}"),
        };
        match range {
            Some(r) => write!(f, ".{r}"),
            None => Ok(()),
        }
    }
}
