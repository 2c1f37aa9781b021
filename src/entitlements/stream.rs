//! Streaming load: JSON in the [`Snapshot`](super::Snapshot) shape compiled
//! user by user while it is parsed, so a million-user `PUT /api/v1/snapshot`
//! never holds the parsed snapshot and its compiled form at once.
//!
//! Same shape rules as deserializing a `Snapshot` (unknown keys refused,
//! missing keys empty, keys in any order) and the same validation as
//! [`Entitlements::build`](super::Entitlements::build).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Read;

use serde::de::{DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, Visitor};

use super::compile::{Builder, ValidationError};
use super::{Blocklist, Channel, Device, Entitlements, Package, User};

/// Why a snapshot document could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// Not JSON, or not the snapshot shape. The message has quoted input
    /// values redacted (a misplaced token must not be echoed).
    #[error("malformed snapshot: {0}")]
    Json(String),
    /// Well-formed but invalid.
    #[error("{0}")]
    Invalid(#[from] ValidationError),
}

/// serde_json's message with every `"..."` value replaced by `"…"`.
///
/// serde writes a string value escaped (`{:?}`), so inside one a `\`
/// escapes the next character: an escaped `"` does not end the value.
pub fn redact_json_error(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let mut out = String::with_capacity(text.len());
    let mut inside = None;
    let mut escaped = false;
    for c in text.chars() {
        if inside == Some('"') && std::mem::take(&mut escaped) {
            continue;
        }
        match (c, inside) {
            ('\\', Some('"')) => escaped = true,
            ('"', None) => {
                out.push_str("\"…\"");
                inside = Some('"');
            }
            // serde quotes a number it did not expect in backticks
            // (`integer `12345``): a numeric token is a value too. Field
            // names (`unknown field `x``) stay readable.
            ('`', None) if out.ends_with("integer ") || out.ends_with("floating point ") => {
                out.push_str("`…`");
                inside = Some('`');
            }
            (c, Some(q)) if c == q => inside = None,
            (c, None) => out.push(c),
            (_, Some(_)) => {}
        }
    }
    out
}

impl Entitlements {
    /// Parse and compile a snapshot document held in memory.
    pub fn from_json_slice(json: &[u8]) -> Result<Self, LoadError> {
        let mut de = serde_json::Deserializer::from_slice(json);
        Self::from_deserializer(&mut de, HashSet::new())
    }

    /// Parse and compile a snapshot document from a reader (buffer it).
    pub fn from_json_reader<R: Read>(reader: R) -> Result<Self, LoadError> {
        Self::layer_from_json_reader(reader, HashSet::new())
    }

    /// [`Self::from_json_reader`] for a layer whose users may also name the
    /// `external` packages (see [`Entitlements::build_layer`]).
    pub fn layer_from_json_reader<R: Read>(
        reader: R,
        external: HashSet<String>,
    ) -> Result<Self, LoadError> {
        let mut de = serde_json::Deserializer::from_reader(reader);
        Self::from_deserializer(&mut de, external)
    }

    fn from_deserializer<'de, R: serde_json::de::Read<'de>>(
        de: &mut serde_json::Deserializer<R>,
        external: HashSet<String>,
    ) -> Result<Self, LoadError> {
        let mut builder = Builder::new(0, external);
        SnapshotSeed(&mut builder)
            .deserialize(&mut *de)
            .and_then(|()| de.end())
            .map_err(|e| LoadError::Json(redact_json_error(&e)))?;
        Ok(builder.finish()?)
    }
}

/// The top-level object.
struct SnapshotSeed<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for SnapshotSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SnapshotSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a snapshot object with users, packages, channels, devices and blocklist")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = [false; 5];
        while let Some(key) = map.next_key::<String>()? {
            let slot = match key.as_str() {
                "users" => 0,
                "packages" => 1,
                "blocklist" => 2,
                "channels" => 3,
                "devices" => 4,
                _ => {
                    let _: IgnoredAny = map.next_value()?;
                    return Err(A::Error::unknown_field(
                        &key,
                        &["users", "packages", "channels", "devices", "blocklist"],
                    ));
                }
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(A::Error::custom(format_args!("duplicate field `{key}`")));
            }
            match slot {
                0 => map.next_value_seed(UsersSeed(&mut *self.0))?,
                1 => self
                    .0
                    .packages(map.next_value::<HashMap<String, Package>>()?),
                2 => self.0.blocklist(map.next_value::<Blocklist>()?),
                3 => map.next_value_seed(ChannelsSeed(&mut *self.0))?,
                _ => map.next_value_seed(DevicesSeed(&mut *self.0))?,
            }
        }
        Ok(())
    }
}

/// The `users` object, compiled entry by entry.
struct UsersSeed<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for UsersSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for UsersSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object mapping user ids to users")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some((id, user)) = map.next_entry::<String, User>()? {
            self.0.user(id, user);
        }
        Ok(())
    }
}

/// The `channels` object, compiled entry by entry (in document order).
struct ChannelsSeed<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for ChannelsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ChannelsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object mapping channel names to channels")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some((name, channel)) = map.next_entry::<String, Channel>()? {
            self.0.channel(name, channel);
        }
        Ok(())
    }
}

/// The `devices` object, compiled entry by entry.
struct DevicesSeed<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for DevicesSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DevicesSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object mapping hardware ids to devices")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some((hwid, device)) = map.next_entry::<String, Device>()? {
            self.0.device(hwid, device);
        }
        Ok(())
    }
}
