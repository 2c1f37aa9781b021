//! HLS playlist rewriting (docs/hls.md §6): compiles one origin playlist
//! version into a [`Template`] and renders it per session.
//!
//! A byte-preserving line rewriter, not a parse/serialize round trip: every
//! byte of the origin playlist is copied except the URIs it extends with the
//! proxy's parameters (`tg=<capability>`, and `tgs=<segment tag>` where the
//! URI is served as media on an encrypting route), the `EXT-X-KEY` lines it
//! injects, the delta-update attributes it removes from
//! `EXT-X-SERVER-CONTROL` and, when it encrypts, the byte ranges it turns
//! into resources of their own. See docs/hls.md §5–6 for the wire format
//! and the rules, and /work/shared/research/hls-encryption.md §1 and §8 for
//! why (MSN counting, KEY/MAP order, byte ranges, LL-HLS parts).
//!
//! Layout (private modules): `lines` splits and classifies lines, `attrs`
//! scans attribute lists, `scan` reads the playlist-wide facts first, `uri`
//! resolves URIs to proxy paths, `hostile_uris` picks out text a player
//! would read differently (trimmed whitespace, split lines), `compile` walks
//! the playlist, `keys` places key lines, `template` holds the result. Tests: `golden` (the fixtures in
//! `tests/fixtures/hls/`), `cases`, `props`, with `testkit`'s checks.
//!
//! Pure core: no I/O, no clock, no logging; segment tags come from a
//! [`TagSigner`] the caller supplies. Never panics, whatever the bytes: a
//! body that is not a playlist or is too large is a [`RewriteError`];
//! anything odd inside a playlist is copied as it is.
//!
//! Invariants of a compiled template: rendering it adds exactly one
//! capability per own URI and per injected AES-128 key line, and loses or
//! adds no URI; the segment tags and key lines are the same for every
//! session; a foreign or unresolvable URI, and one that a player trimming
//! it as hls.js and the WHATWG URL parser do could send elsewhere, is never
//! given a capability; on an
//! encrypting route every own segment and part is covered by the key its
//! tag names, and a clear (`c`) tag goes only to init sections, keys,
//! session data, steering manifests and the segments of a playlist the
//! origin encrypted, never with an open-ended range.

mod attrs;
mod compile;
mod hostile_uris;
mod keys;
mod lines;
mod scan;
mod stable;
mod template;
mod uri;

#[cfg(test)]
mod cases;
#[cfg(test)]
mod golden;
#[cfg(test)]
mod props;
/// The rewriter's independent structural checks, for the unit tests here
/// and for the fuzz targets (`fuzz/`, feature `fuzzing`). Not an API.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod testkit;

pub use compile::compile;

/// The media sequence numbers a media playlist lists, first and last
/// (first − 1 when it lists none); `None` for a master playlist. Counted
/// the way [`compile`] counts them, for callers that must choose the stream
/// incarnation before compiling.
pub fn media_window(body: &[u8]) -> Option<(u64, u64)> {
    let lines = lines::split(body);
    let s = scan::scan(body, &lines);
    if s.facts.kind == Kind::Master {
        return None;
    }
    let first = s.facts.media_sequence;
    Some((first, first.saturating_add(s.segments).saturating_sub(1)))
}
pub use template::{Kind, Template};

use crate::capability::Serve;

/// Computes segment tags (docs/hls.md §5). The real signer is an HMAC bound
/// to the route and channel; tests use a deterministic fake.
pub trait TagSigner {
    /// The whole `tgs` value for the URI at the normalized proxy path
    /// `path` with the origin query `query` (`""` for none; see
    /// `capability::origin_query_of`) served as `serve`. Must be URL-safe
    /// and contain no `"` or `,` (it is written into quoted attributes as is).
    fn tag(&self, path: &str, query: &str, serve: &Serve) -> String;
}

/// The origin a route forwards to, to recognize absolute URIs that point
/// back at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginBase<'a> {
    /// `http` or `https` (compared case-insensitively).
    pub scheme: &'a str,
    /// `host[:port]` (compared case-insensitively; the scheme's default port
    /// equals no port).
    pub authority: &'a str,
    /// The origin path the route's prefix maps to: "" (or "/") for none,
    /// otherwise a normalized path such as `/base`. An absolute origin URI
    /// is the proxy's own only below it, and it is stripped.
    pub base_path: &'a str,
}

/// Encryption of one rendition on a route with `encrypt = true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encrypt<'a> {
    /// Stream incarnation (docs/hls.md §6).
    pub inc: u64,
    /// `[keys] rotate_every` in seconds.
    pub rotate_every_secs: u64,
    /// Key URI up to the incarnation, e.g. `/.tollgate/key/live/ch1/`
    /// (no query); the key URI of period `p` of incarnation `i` is this +
    /// `i/p.key?tg=<cap>&tgs=<key tag>`.
    pub key_uri_prefix: &'a str,
    /// The same as a normalized proxy path (channel not percent-encoded):
    /// the path a key tag is signed for.
    pub key_path_prefix: &'a str,
    /// Catch-up mode only: `(first period, incarnation)` of each content-key
    /// generation after the first, ascending (`crate::rotation`); a period
    /// before them all has `inc`.
    pub generations: &'a [(u64, u64)],
    /// Until when the key tags of this playlist are valid (unix seconds;
    /// [`crate::capability::Serve::Key`]).
    pub key_until: u64,
    /// Catch-up mode: every segment's IV and key period come from the
    /// segment itself (path, query, byte range, program date-time), not its
    /// position, so each window listing it gets the same key, IV and
    /// ciphertext; each segment gets a key line with an explicit IV. Not
    /// applied to playlists with parts (LL-HLS, live only). See
    /// `hls::stable`.
    pub stable: bool,
}

impl Encrypt<'_> {
    /// The incarnation of the keys of period `period` in catch-up mode.
    pub(crate) fn inc_for(&self, period: u64) -> u64 {
        let n = self
            .generations
            .partition_point(|&(first, _)| first <= period);
        match n.checked_sub(1).and_then(|i| self.generations.get(i)) {
            Some(&(_, inc)) => inc,
            None => self.inc,
        }
    }
}

/// Everything [`compile()`] needs besides the body.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// Normalized proxy path of the playlist (see [`crate::path::normalize`]);
    /// relative URIs resolve against it.
    pub playlist_path: &'a str,
    /// The route's origin.
    pub origin: OriginBase<'a>,
    /// Set on an encrypting route: segment tags and key lines.
    pub encrypt: Option<Encrypt<'a>>,
    /// Name of the capability parameter (`tg`); URL-safe.
    pub cap_param: &'a str,
    /// Name of the segment-tag parameter (`tgs`); URL-safe.
    pub tag_param: &'a str,
    /// Computes segment tags.
    pub signer: &'a dyn TagSigner,
    /// Larger bodies are refused with [`RewriteError::TooLarge`].
    pub max_bytes: usize,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("playlist_path", &self.playlist_path)
            .field("origin", &self.origin)
            .field("encrypt", &self.encrypt)
            .field("cap_param", &self.cap_param)
            .field("tag_param", &self.tag_param)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

/// Why a body could not be compiled (docs/hls.md §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// Larger than [`Context::max_bytes`] (`playlist_too_large`).
    #[error("playlist larger than the limit")]
    TooLarge,
    /// Does not start with `#EXTM3U` after an optional UTF-8 BOM
    /// (`bad_playlist`).
    #[error("not an HLS playlist")]
    NotPlaylist,
    /// Encrypting would give two segments the same media sequence number
    /// (the IV) under one key: MSNs past `u64::MAX` (`bad_playlist`).
    #[error("media sequence numbers past 2^64")]
    MsnOverflow,
    /// Only with [`Encrypt::stable`]: a segment has no known time, so no
    /// stable identity; compile again with `stable = false` and a live
    /// stream incarnation (position keys).
    #[error("a segment without a program date-time")]
    Undated,
}
