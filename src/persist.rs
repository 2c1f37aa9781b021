//! Crash-safe persistence of the entitlement state in the state dir
//! (`[state] dir`, SPEC §2, §4): one JSON file, `snapshot.json`, in the
//! [`Snapshot`] shape.
//!
//! Owns the file protocol, nothing else: callers decide when to save and
//! what to do with what they load. Blocking `std::fs` (run it in
//! `spawn_blocking`); no logging.
//!
//! Invariants:
//! - `snapshot.json` is only ever replaced whole: the new state is written to
//!   `snapshot.json.tmp` in the same directory, flushed and `fsync`ed, renamed
//!   over `snapshot.json`, and the directory is `fsync`ed so the rename
//!   survives a power cut. A crash (kill -9, full disk, power loss) at any
//!   moment leaves either the previous complete file or the new one.
//! - A leftover `snapshot.json.tmp` is never read (the next save overwrites it).
//! - A `snapshot.json` that does not parse is an error naming the file, never
//!   an empty state: serving nobody after a restart must be a decision, not
//!   an accident. Error messages never quote the file's values (tokens).

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::entitlements::{Entitlements, LoadError, Snapshot};

/// The state file's name in the state dir.
pub const FILE_NAME: &str = "snapshot.json";
/// The temporary file a save writes before renaming it over [`FILE_NAME`].
pub const TMP_NAME: &str = "snapshot.json.tmp";

/// Why the state could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading, writing, syncing or renaming failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The state file exists but is not a valid snapshot.
    #[error("{}: corrupt state file: {message}", path.display())]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// What is wrong (values redacted).
        message: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Atomically replace the state in `dir` with `state`: a [`Snapshot`], or
/// [`Entitlements`] (same JSON, streamed without a copy).
pub fn save<T: Serialize + ?Sized>(dir: &Path, state: &T) -> Result<(), StateError> {
    save_with(dir, |w| {
        serde_json::to_writer(&mut *w, state).map_err(io::Error::other)
    })
}

/// [`save`] with the body written by `write`, which sees a buffered writer
/// to the temporary file. On any failure the temporary file is removed
/// (best effort) and the previous state file is untouched.
pub(crate) fn save_with(
    dir: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), StateError> {
    save_file_with(dir, FILE_NAME, write)
}

/// Atomically replace `dir/name` with `value` as JSON, by the same protocol
/// as the state file (`name.tmp`, fsync, rename, fsync of the dir).
pub fn save_named<T: Serialize + ?Sized>(
    dir: &Path,
    name: &str,
    value: &T,
) -> Result<(), StateError> {
    save_file_with(dir, name, |w| {
        serde_json::to_writer(&mut *w, value).map_err(io::Error::other)
    })
}

/// What [`save_named`] last saved as `dir/name`; `None` if nothing was.
/// A file that does not parse is [`StateError::Corrupt`].
pub fn load_named<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>, StateError> {
    let Some((path, reader)) = open(dir, name)? else {
        return Ok(None);
    };
    match serde_json::from_reader(reader) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_io() => Err(io_err(&path)(e.into())),
        Err(e) => Err(StateError::Corrupt {
            message: crate::entitlements::redact_json_error(&e),
            path,
        }),
    }
}

fn save_file_with(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), StateError> {
    // First save on a fresh install: the dir is the operator's choice of
    // place, created owner-only like the files in it.
    if !dir.is_dir() {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;
    }
    let tmp = dir.join(format!("{name}.tmp"));
    let result = write_tmp(&tmp, write);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    let file = dir.join(name);
    fs::rename(&tmp, &file).map_err(io_err(&file))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn write_tmp(
    tmp: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), StateError> {
    // Owner-only: the state holds play tokens and password digests.
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(tmp)
            .map_err(io_err(tmp))?
    };
    let mut w = BufWriter::with_capacity(1 << 16, file);
    write(&mut w).map_err(io_err(tmp))?;
    let file = w.into_inner().map_err(|e| io_err(tmp)(e.into_error()))?;
    file.sync_all().map_err(io_err(tmp))
}

/// Open `dir/name`; `None` if there is none yet.
fn open(dir: &Path, name: &str) -> Result<Option<(PathBuf, BufReader<File>)>, StateError> {
    let path = dir.join(name);
    match File::open(&path) {
        Ok(f) => Ok(Some((path, BufReader::with_capacity(1 << 16, f)))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// The saved snapshot, `None` when nothing was ever saved in `dir`.
/// Shape only: compile it with [`Entitlements::build`] to validate.
pub fn load(dir: &Path) -> Result<Option<Snapshot>, StateError> {
    load_named(dir, FILE_NAME)
}

/// The saved state compiled while it is read (no `Snapshot` in memory:
/// the restart path for a million users). An invalid state is `Corrupt`.
pub fn load_entitlements(dir: &Path) -> Result<Option<Entitlements>, StateError> {
    load_layer(dir, HashSet::new())
}

/// [`load_entitlements`] for a layer whose users may also name the
/// `external` packages (see [`Entitlements::build_layer`]).
pub fn load_layer(
    dir: &Path,
    external: HashSet<String>,
) -> Result<Option<Entitlements>, StateError> {
    let Some((path, reader)) = open(dir, FILE_NAME)? else {
        return Ok(None);
    };
    match Entitlements::layer_from_json_reader(reader, external) {
        Ok(e) => Ok(Some(e)),
        Err(LoadError::Json(message)) => Err(StateError::Corrupt { path, message }),
        Err(LoadError::Invalid(v)) => Err(StateError::Corrupt {
            path,
            message: v.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests;
