//! The shell of content-key generations ([`crate::rotation`]): `keys.json`
//! in the state dir, loaded at start and saved before a rotation is
//! published (the same crash-safe protocol as the other state files), so
//! a restart never falls back to an earlier generation.

use std::sync::Arc;

use super::Shared;
use crate::rotation::{FILE_NAME, RotateError, RotationFile, Rotations};

/// Why a rotation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RotationFailed {
    /// Refused by the history's bound.
    #[error(transparent)]
    Refused(#[from] RotateError),
    /// The state dir could not be written; nothing changed.
    #[error("{0}")]
    Storage(String),
}

impl Shared {
    /// Load the generations the state dir holds (at start). A file that
    /// does not parse is an error: serving earlier keys would be worse than
    /// not starting.
    pub fn load_rotations(&self) -> Result<(), String> {
        let dir = self.live().config.state_dir.clone();
        if let Some(file) = crate::persist::load_named::<RotationFile>(&dir, FILE_NAME)
            .map_err(|e| e.to_string())?
        {
            self.rotations.store(Arc::new(Rotations::new(file)));
        }
        Ok(())
    }

    /// Start a new generation of `channel`'s content keys (`None`: every
    /// channel's) at the next key period: saved, then published. Returns
    /// the unix second it takes effect and the channel's generation then.
    /// Blocking.
    pub fn rotate_keys(&self, channel: Option<String>) -> Result<(u64, u32), RotationFailed> {
        let _writer = self
            .rotation_writer
            .lock()
            .map_err(|_| RotationFailed::Storage("rotation lock poisoned".into()))?;
        let now = self.clock.now();
        let period = self.live().config.keys.rotate_every.as_secs().max(1);
        let next = self.rotations.load().with(channel.clone(), now)?;
        let dir = self.live().config.state_dir.clone();
        crate::persist::save_named(&dir, FILE_NAME, next.file())
            .map_err(|e| RotationFailed::Storage(e.to_string()))?;
        let effective = (now / period + 1) * period;
        // For one channel its generation; for all, the generation of a
        // channel rotated only with every other.
        let generation = next.generation(channel.as_deref().unwrap_or(""), effective, period);
        self.rotations.store(Arc::new(next));
        Ok((effective, generation))
    }
}
