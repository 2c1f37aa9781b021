//! Content-key generations (SPEC §7.6): `POST /api/v1/keys/rotate` starts
//! a new generation of a channel's content keys (or every channel's) at the
//! next key period, without cutting anyone.
//!
//! A rotation requested at unix second `at` takes effect at the next period
//! boundary, `B = (⌊at / R⌋ + 1) · R` (`R` = `[keys] rotate_every`). The
//! generation of a channel at time `t` is the number of its rotations (and
//! all-channel ones) whose boundary is at or before `t`. A generation `g > 0`
//! changes the stream incarnation a key URI and a segment tag carry to
//!
//! ```text
//! inc_g = 2^63 | first 8 bytes, big-endian, of SHA-256("tollgate-gen" ‖ 0 ‖ be64(inc) ‖ be32(g))
//! ```
//!
//! so key URIs and content keys change from the boundary on, while what was
//! signed before keeps its incarnation, and so its keys: earlier periods
//! still decrypt, for as long as their capabilities and tags last (the
//! catch-up window included). Live incarnations are below 2^48 and
//! catch-up's is 0, so no `inc_g` equals one of them.
//!
//! Catch-up playlists (`hls::stable`, time-based periods) switch exactly at
//! the boundary period, whichever window lists a segment; live playlists
//! keyed by position switch whole once the boundary has passed (their
//! periods carry no time).
//!
//! Pure core: the history is data, `now` an argument; the shell persists
//! it (`keys.json` in the state dir) and swaps it whole.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The state file.
pub const FILE_NAME: &str = "keys.json";

/// Most rotations kept; more are refused (each is a line in a state file
/// and an entry every playlist compile may look at).
pub const MAX_ROTATIONS: usize = 100_000;

/// One rotation, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// The channel rotated; `None` = every channel.
    pub channel: Option<String>,
    /// When it was asked for, unix seconds.
    pub at: u64,
}

/// The persisted history: `{"rotations":[{"channel":"ch1","at":…},…]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationFile {
    pub rotations: Vec<Rotation>,
}

/// The history, indexed for lookups.
#[derive(Debug, Clone, Default)]
pub struct Rotations {
    file: RotationFile,
    /// Per channel, the `at` of its own rotations, ascending.
    by_channel: HashMap<String, Vec<u64>>,
    /// The `at` of all-channel rotations, ascending.
    all: Vec<u64>,
}

/// Why a rotation is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RotateError {
    /// [`MAX_ROTATIONS`] reached.
    #[error("at most {MAX_ROTATIONS} rotations are kept")]
    Full,
}

impl Rotations {
    /// Index a history (loaded from the state dir).
    pub fn new(file: RotationFile) -> Self {
        let mut by_channel: HashMap<String, Vec<u64>> = HashMap::new();
        let mut all = Vec::new();
        for r in &file.rotations {
            match &r.channel {
                Some(c) => by_channel.entry(c.clone()).or_default().push(r.at),
                None => all.push(r.at),
            }
        }
        for list in by_channel.values_mut() {
            list.sort_unstable();
        }
        all.sort_unstable();
        Self {
            file,
            by_channel,
            all,
        }
    }

    /// The history as persisted.
    pub fn file(&self) -> &RotationFile {
        &self.file
    }

    /// This history and one more rotation of `channel` (`None`: all) at `at`.
    pub fn with(&self, channel: Option<String>, at: u64) -> Result<Self, RotateError> {
        if self.file.rotations.len() >= MAX_ROTATIONS {
            return Err(RotateError::Full);
        }
        let mut file = self.file.clone();
        file.rotations.push(Rotation { channel, at });
        Ok(Self::new(file))
    }

    /// The boundaries (unix seconds) of the rotations of `channel`,
    /// ascending, at period length `period_secs`.
    fn boundaries(&self, channel: &str, period_secs: u64) -> Vec<u64> {
        let own = self.by_channel.get(channel).map_or(&[][..], Vec::as_slice);
        let mut out: Vec<u64> = own
            .iter()
            .chain(&self.all)
            .map(|&at| boundary(at, period_secs))
            .collect();
        out.sort_unstable();
        out
    }

    /// The generation of `channel`'s keys at unix second `t`.
    pub fn generation(&self, channel: &str, t: u64, period_secs: u64) -> u32 {
        if self.file.rotations.is_empty() {
            return 0;
        }
        let n = self
            .boundaries(channel, period_secs)
            .partition_point(|&b| b <= t);
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// For time-based key periods: `(first period, generation)` of every
    /// generation of `channel` after the first, ascending.
    pub fn schedule(&self, channel: &str, period_secs: u64) -> Vec<(u64, u32)> {
        let period_secs = period_secs.max(1);
        self.boundaries(channel, period_secs)
            .into_iter()
            .enumerate()
            .map(|(i, b)| (b / period_secs, u32::try_from(i + 1).unwrap_or(u32::MAX)))
            .collect()
    }
}

/// The first unix second of the period after the one holding `at`.
fn boundary(at: u64, period_secs: u64) -> u64 {
    let r = period_secs.max(1);
    (at / r).saturating_add(1).saturating_mul(r)
}

/// The incarnation that carries generation `generation` of `inc` (see
/// the module docs); `inc` itself for generation 0.
pub fn incarnation(inc: u64, generation: u32) -> u64 {
    if generation == 0 {
        return inc;
    }
    let mut h = Sha256::new();
    h.update(b"tollgate-gen\0");
    h.update(inc.to_be_bytes());
    h.update(generation.to_be_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(d.get(..8).unwrap_or(&[0; 8]));
    u64::from_be_bytes(first) | 1 << 63
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: u64 = 600;

    #[test]
    fn a_rotation_takes_effect_at_the_next_period_boundary() {
        let r = Rotations::default();
        assert_eq!(r.generation("ch1", 10_000, R), 0);
        let r = r.with(Some("ch1".into()), 1_000).unwrap();
        // 1000 is in period 1 (600..1200): effective from 1200.
        assert_eq!(r.generation("ch1", 1_199, R), 0);
        assert_eq!(r.generation("ch1", 1_200, R), 1);
        assert_eq!(r.generation("ch2", 5_000, R), 0, "another channel");
        // An all-channel rotation counts for every channel.
        let r = r.with(None, 1_300).unwrap();
        assert_eq!(r.generation("ch1", 1_800, R), 2);
        assert_eq!(r.generation("ch2", 1_800, R), 1);
        assert_eq!(r.schedule("ch1", R), [(2, 1), (3, 2)]);
        assert_eq!(r.schedule("ch2", R), [(3, 1)]);
        // The history round-trips through its file.
        let again = Rotations::new(r.file().clone());
        assert_eq!(again.schedule("ch1", R), r.schedule("ch1", R));
    }

    #[test]
    fn generations_give_incarnations_of_their_own() {
        assert_eq!(incarnation(7, 0), 7);
        let a = incarnation(7, 1);
        assert_ne!(a, incarnation(7, 2));
        assert_ne!(a, incarnation(8, 1));
        assert!(
            a >= 1 << 63,
            "never a live (< 2^48) or catch-up (0) incarnation"
        );
        assert_eq!(a, incarnation(7, 1), "every edge derives the same");
    }

    #[test]
    fn the_history_is_bounded() {
        let file = RotationFile {
            rotations: vec![
                Rotation {
                    channel: None,
                    at: 1
                };
                MAX_ROTATIONS
            ],
        };
        assert_eq!(
            Rotations::new(file).with(None, 2).map(|_| ()),
            Err(RotateError::Full)
        );
    }
}
