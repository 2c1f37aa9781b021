//! Segment content for the simulated origin: the bundled sample and the
//! synthetic generator.
//!
//! Owns what bytes a segment `(channel, msn)` has, never when it exists (that
//! is [`super::schedule`]). Invariants:
//! - Content is a pure function of the source, the channel and the msn, so a
//!   client can recompute it and compare bytes.
//! - Handing out a segment never copies: bundled segments are `'static`
//!   slices and synthetic segments are windows into one shared pool, so every
//!   response body is a refcount bump on a [`Bytes`].

use std::time::Duration;

use bytes::Bytes;

/// One file of the bundled sample; entry `i` is `assets/sample/seg{i}.ts`.
struct BundledFile {
    /// The MPEG-TS bytes, compiled into the binary.
    bytes: &'static [u8],
    /// Exact duration, from the EXTINF ffmpeg wrote for this file.
    duration_ms: u64,
}

impl BundledFile {
    const fn new(bytes: &'static [u8], duration_ms: u64) -> Self {
        Self { bytes, duration_ms }
    }
}

/// The bundled loop, produced by `scripts/make-sample-media.sh`. Keep in step
/// with `assets/sample/manifest.txt`; a unit test below compares the two.
const BUNDLED: [BundledFile; 5] = [
    BundledFile::new(include_bytes!("../../assets/sample/seg0.ts"), 2000),
    BundledFile::new(include_bytes!("../../assets/sample/seg1.ts"), 2000),
    BundledFile::new(include_bytes!("../../assets/sample/seg2.ts"), 2000),
    BundledFile::new(include_bytes!("../../assets/sample/seg3.ts"), 2000),
    BundledFile::new(include_bytes!("../../assets/sample/seg4.ts"), 2000),
];

/// Video resolution of the bundled sample, for the master playlist.
pub(super) const BUNDLED_RESOLUTION: &str = "320x180";
/// RFC 6381 codecs of the bundled sample: H.264 constrained baseline level
/// 1.3 and AAC-LC, as the script encodes them.
pub(super) const BUNDLED_CODECS: &str = "avc1.42c00d,mp4a.40.2";

/// Bytes of the bundled segments and their durations, in play order.
pub(super) fn bundled() -> Vec<(Bytes, Duration)> {
    BUNDLED
        .iter()
        .map(|f| {
            (
                Bytes::from_static(f.bytes),
                Duration::from_millis(f.duration_ms),
            )
        })
        .collect()
}

/// Distinct pool offsets per channel: two msns of one channel less than this
/// far apart always get different bytes.
const SYNTHETIC_PERIOD: u64 = 1024;
/// Bytes between neighbouring offsets in the pool. Not a multiple of 188 so
/// that shifted copies never line up on MPEG-TS packet boundaries.
const SYNTHETIC_STRIDE: usize = 61;
/// Fixed seed: the content is part of the contract with load-test clients.
const SYNTHETIC_SEED: u64 = 0x746f_6c6c_6761_7465; // "tollgate"

/// Deterministic synthetic segments of one length, served without copying.
///
/// All segments are windows into one pseudo-random pool of
/// `len + 1024 * 61` bytes: segment `(channel, msn)` starts at
/// `((fnv1a(channel) + msn) mod 1024) * 61`. Hence two segments of the same
/// channel whose msns differ by less than 1024 never share bytes at the same
/// offsets, and the content repeats with period 1024 in msn. Build one per
/// length and reuse it; [`SyntheticSegments::segment`] is a refcount bump.
#[derive(Clone)]
pub struct SyntheticSegments {
    pool: Bytes,
    len: usize,
}

impl std::fmt::Debug for SyntheticSegments {
    /// Summarises: the pool is megabytes of noise nobody wants in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyntheticSegments")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl SyntheticSegments {
    /// Generates the pool for segments of `len` bytes (costs `len` + 61 KiB of
    /// memory and one pass of a fast PRNG).
    pub fn new(len: usize) -> Self {
        let pool_len = len.saturating_add(SYNTHETIC_PERIOD as usize * SYNTHETIC_STRIDE);
        let mut pool = Vec::with_capacity(pool_len);
        let mut state = SYNTHETIC_SEED;
        while pool.len() < pool_len {
            let word = splitmix64(&mut state).to_le_bytes();
            let take = word.len().min(pool_len - pool.len());
            pool.extend_from_slice(&word[..take]);
        }
        Self {
            pool: Bytes::from(pool),
            len,
        }
    }

    /// Length of every segment this generator produces.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether segments are empty (a zero-length generator).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes of segment `msn` of `channel`.
    pub fn segment(&self, channel: &str, msn: u64) -> Bytes {
        // Wrapping add is exact modulo the power-of-two period.
        let slot = fnv1a(channel).wrapping_add(msn) % SYNTHETIC_PERIOD;
        let start = slot as usize * SYNTHETIC_STRIDE;
        self.pool.slice(start..start + self.len)
    }
}

/// The deterministic synthetic content of segment `msn` of `channel` with
/// `len` bytes, exactly as a [`super::SimOrigin`] with
/// [`super::SegmentSource::Synthetic`] of that length serves it.
///
/// Builds a fresh pool per call; a client verifying many segments should keep
/// one [`SyntheticSegments`] instead.
pub fn synthetic_segment(channel: &str, msn: u64, len: usize) -> Bytes {
    SyntheticSegments::new(len).segment(channel, msn)
}

/// Segment bytes by msn, for any channel of the origin.
pub(super) enum Content {
    /// The sample files in play order; msn plays `files[msn % len]`.
    Bundled(Vec<Bytes>),
    /// Windows into one synthetic pool.
    Synthetic(SyntheticSegments),
}

impl std::fmt::Debug for Content {
    /// Summarises: the derived form would print every segment byte.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Content::Bundled(files) => f
                .debug_struct("Bundled")
                .field("files", &files.len())
                .finish(),
            Content::Synthetic(generator) => generator.fmt(f),
        }
    }
}

impl Content {
    /// Segment `msn` of `channel` (bundled content ignores the channel).
    pub(super) fn segment(&self, channel: &str, msn: u64) -> Bytes {
        match self {
            // Non-empty by construction (the compiled-in table); the guard
            // keeps an empty table from ever dividing by zero.
            Content::Bundled(files) if !files.is_empty() => {
                files[(msn % files.len() as u64) as usize].clone()
            }
            Content::Bundled(_) => Bytes::new(),
            Content::Synthetic(generator) => generator.segment(channel, msn),
        }
    }
}

/// SplitMix64: tiny, fast, and good enough that shifted windows of the pool
/// do not resemble each other.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a over the channel name: stable across builds and platforms, unlike
/// `std`'s randomly keyed hasher.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup errors
mod tests {
    use super::*;

    #[test]
    fn bundled_table_matches_manifest() {
        let manifest = include_str!("../../assets/sample/manifest.txt");
        let listed: Vec<(&str, u64)> = manifest
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let (name, secs) = l.split_once(' ').expect("name and duration");
                let ms = (secs.trim().parse::<f64>().expect("duration") * 1000.0).round();
                (name, ms as u64)
            })
            .collect();
        let table: Vec<(String, u64)> = (BUNDLED.iter().enumerate())
            .map(|(i, f)| (format!("seg{i}.ts"), f.duration_ms))
            .collect();
        let listed: Vec<(String, u64)> =
            listed.into_iter().map(|(n, d)| (n.to_owned(), d)).collect();
        assert!(!listed.is_empty());
        assert_eq!(listed, table);
    }

    #[test]
    fn bundled_segments_are_transport_streams() {
        for f in &BUNDLED {
            assert!(f.bytes.len() >= 188, "too short");
            assert_eq!(f.bytes.len() % 188, 0, "not whole TS packets");
            assert_eq!(f.bytes[0], 0x47, "lacks TS sync byte");
        }
    }

    #[test]
    fn synthetic_is_deterministic_and_sized() {
        for len in [0, 1, 7, 188, 100_000] {
            let a = synthetic_segment("ch1", 42, len);
            let b = SyntheticSegments::new(len).segment("ch1", 42);
            assert_eq!(a.len(), len);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn synthetic_differs_by_msn_and_channel() {
        let pool = SyntheticSegments::new(4096);
        let base = pool.segment("ch1", 7);
        for msn in 8..(7 + SYNTHETIC_PERIOD) {
            assert_ne!(pool.segment("ch1", msn), base, "msn {msn}");
        }
        assert_ne!(pool.segment("ch2", 7), base);
        // The documented period: content repeats after 1024 msns.
        assert_eq!(pool.segment("ch1", 7 + SYNTHETIC_PERIOD), base);
    }

    #[test]
    fn known_answers() {
        // Pins the contract with load-test clients built from other versions;
        // vectors computed independently (a Python transcription).
        let mut state = 0;
        assert_eq!(splitmix64(&mut state), 0xe220_a839_7b1d_cdaf);
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        let table: [(&str, u64, [u8; 8]); 2] = [
            ("ch1", 0, [0x35, 0x55, 0xd4, 0xf5, 0x7e, 0xd5, 0x45, 0x6c]),
            (
                "ch2",
                1000,
                [0x73, 0x95, 0xfc, 0x5a, 0xa7, 0xca, 0x9d, 0xec],
            ),
        ];
        for (channel, msn, want) in table {
            assert_eq!(
                &synthetic_segment(channel, msn, 8)[..],
                want,
                "{channel} {msn}"
            );
        }
    }
}
