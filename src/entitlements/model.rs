//! The entitlement data model exactly as it travels in the admin API bodies
//! of SPEC §4 (`PUT /api/v1/users/{id}`, `/packages/{name}`, `/blocklist`,
//! `/snapshot`) and in the persisted state file.
//!
//! These types only carry data: no validation happens at deserialization
//! beyond JSON shape (`deny_unknown_fields`; missing fields take their
//! defaults). [`Entitlements::build`](super::Entitlements::build) validates
//! and compiles. `Debug` never prints a token or a password.

use std::collections::HashMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One user: `{"tokens":[],"password":"","max_sessions":0,"packages":[],
/// "ips":[],"expires_at":"RFC3339","disabled":false}`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct User {
    /// Play tokens (`?token=`); each non-empty and unique across all users.
    pub tokens: Vec<String>,
    /// Password for `?auth=id:password`: the plaintext, or `sha256:` and 64
    /// hex digits (the SHA-256 of the plaintext); `""` = no password login.
    pub password: String,
    /// Concurrent sessions across all channels; 0 = unlimited.
    pub max_sessions: u32,
    /// Names of the packages (keys of [`Snapshot::packages`]) the user may watch.
    pub packages: Vec<String>,
    /// Networks (`10.0.0.0/8`) or addresses (`192.0.2.7`) the user may watch
    /// from; empty = anywhere.
    pub ips: Vec<String>,
    /// RFC 3339 instant from which the user is expired; `None` = never.
    pub expires_at: Option<String>,
    /// A disabled user is refused (`forbidden`) but kept.
    pub disabled: bool,
    /// The user's region (SPEC §7.2): a channel with `regions` is theirs
    /// only if it lists this one; `None` = channels without regions only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Display name (middleware, the console).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Contact address (middleware, the console).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub email: String,
    /// The operator's note (Astra's comment).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub comment: String,
}

impl User {
    /// Replace a plaintext password by its `sha256:` digest, the only form
    /// ever stored (the state dir holds what the API and control plane set).
    /// A password the rules refuse (control characters) is left as it is,
    /// for validation to refuse: hashing would hide it.
    pub fn hash_password(&mut self) {
        if !self.password.is_empty()
            && !self.password.starts_with("sha256:")
            && super::rules::check_secret(&self.password).is_ok()
        {
            use sha2::Digest as _;
            self.password = format!(
                "sha256:{}",
                hex::encode(sha2::Sha256::digest(self.password.as_bytes()))
            );
        }
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("tokens", &self.tokens.len())
            .field("password", &!self.password.is_empty())
            .field("max_sessions", &self.max_sessions)
            .field("packages", &self.packages)
            .field("ips", &self.ips)
            .field("expires_at", &self.expires_at)
            .field("disabled", &self.disabled)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// One package: `{"channels":["ch1","sports/*"],"tags":["news"],"dvr_depth":"1d"}`.
///
/// A channel entry without `*` or `?` is an exact name. With them it is a
/// glob over the whole channel name: `*` matches any run of characters
/// (including none, and including `/`), `?` exactly one character. There is
/// no escaping and no character class: `[` is an ordinary character.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Package {
    /// Channel names and glob patterns.
    pub channels: Vec<String>,
    /// Tags: the package also gives every declared channel carrying one of
    /// them (TVIP tariffs via tags, SPEC §7.1).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Caps the catch-up depth of the channels this package gives
    /// (`"1d"`); absent = the channel's own depth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dvr_depth: Option<String>,
}

/// One channel (SPEC §7.1): what channel lists show of it, its tags and
/// how far back catch-up may go. `{"title":"Channel One","group":"News",
/// "logo":"https://…","tags":["news"],"dvr_depth":"3d"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Channel {
    /// Shown in channel lists (`tvg-name` and the entry's title); empty =
    /// the channel's name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// `group-title` in channel lists.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// `tvg-logo` in channel lists: an absolute http(s) URL.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub logo: String,
    /// Tags packages grant the channel by.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// How far back catch-up may go (`"3d"`); absent or `"0s"` = no catch-up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dvr_depth: Option<String>,
    /// Regions whose users may watch it (SPEC §7.2); empty = every region.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
}

/// One device (SPEC §7.3), keyed by its hardware id:
/// `{"user":"alice","packages":["sports"],"disabled":false}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Device {
    /// The user the device belongs to: the `device` method admits it only
    /// with that user's token.
    pub user: String,
    /// Packages for requests from this device; when it has any they replace
    /// the user's (TVIP: device subscriptions take priority); empty = the
    /// user's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// A disabled device is refused (`blocked`); the user's other devices
    /// play on.
    pub disabled: bool,
}

/// The deny list: `{"users":[],"tokens":[],"ips":["cidr"]}`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Blocklist {
    /// User ids refused with `blocked`, whether or not they are in the snapshot.
    pub users: Vec<String>,
    /// Tokens refused with `blocked` wherever they are presented.
    pub tokens: Vec<String>,
    /// Networks or addresses refused with `ip_denied`, viewers with and
    /// without a user alike.
    pub ips: Vec<String>,
}

impl fmt::Debug for Blocklist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blocklist")
            .field("users", &self.users)
            .field("tokens", &self.tokens.len())
            .field("ips", &self.ips)
            .finish()
    }
}

/// Everything at once: the `PUT /api/v1/snapshot` body and the persisted state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Snapshot {
    /// User id → user.
    pub users: Users,
    /// Package name → package.
    pub packages: HashMap<String, Package>,
    /// Channel name → channel, in the order channel lists show them.
    pub channels: Channels,
    /// Hardware id → device.
    #[serde(skip_serializing_if = "Named::is_empty")]
    pub devices: Devices,
    /// The deny list.
    pub blocklist: Blocklist,
}

/// The devices of a snapshot.
pub type Devices = Named<Device>;

/// The users of a snapshot.
pub type Users = Named<User>;

/// The channels of a snapshot, in channel-list order.
pub type Channels = Named<Channel>;

/// A JSON object `{"name": T, ...}` held as a list of `(name, T)` pairs in
/// document order (users, channels).
///
/// Why not a `HashMap`: a bulk load holds a million users, and a hash table
/// of them costs twice the memory of a vector (1M entries land in 2^21
/// buckets) for lookups nobody makes: the compiled
/// [`Entitlements`](super::Entitlements) index is what requests use; and
/// channel lists keep the channels' order. A JSON object naming the same
/// id twice is kept as written and refused by validation, instead of
/// silently keeping the last one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named<T>(pub Vec<(String, T)>);

impl<T> Default for Named<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> Named<T> {
    /// Number of entries (duplicates included).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first entry named `id`. Linear: for the admin shell, not requests.
    pub fn get(&self, id: &str) -> Option<&T> {
        self.0.iter().find(|(k, _)| k == id).map(|(_, u)| u)
    }

    /// Insert or replace (in place) the entry `id`; returns the replaced
    /// one. Linear.
    pub fn insert(&mut self, id: String, value: T) -> Option<T> {
        match self.0.iter_mut().find(|(k, _)| *k == id) {
            Some((_, slot)) => Some(std::mem::replace(slot, value)),
            None => {
                self.0.push((id, value));
                None
            }
        }
    }

    /// Remove every entry for `id`; returns the first removed. Linear;
    /// keeps the order of the others.
    pub fn remove(&mut self, id: &str) -> Option<T> {
        let pos = self.0.iter().position(|(k, _)| k == id)?;
        let (_, value) = self.0.remove(pos);
        self.0.retain(|(k, _)| k != id);
        Some(value)
    }

    /// The `(id, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.0.iter().map(|(k, u)| (k.as_str(), u))
    }
}

impl<T> FromIterator<(String, T)> for Named<T> {
    fn from_iter<I: IntoIterator<Item = (String, T)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<T: Serialize> Serialize for Named<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (id, value) in &self.0 {
            map.serialize_entry(id, value)?;
        }
        map.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NamedVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for NamedVisitor<T> {
            type Value = Named<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object mapping names to objects")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Named<T>, A::Error> {
                // Cap the hint: it comes from the input.
                let mut out = Vec::with_capacity(access.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(entry) = access.next_entry::<String, T>()? {
                    out.push(entry);
                }
                Ok(Named(out))
            }
        }
        deserializer.deserialize_map(NamedVisitor(std::marker::PhantomData))
    }
}

/// Fields of the Flussonic IPTV plugin's user bodies that tollgate keeps
/// itself (`id`, timestamps): accepted and ignored.
const FLUSSONIC_IGNORED: [&str; 3] = ["id", "created_at", "updated_at"];

impl User {
    /// A `PUT /api/v1/users/{id}` body: the native shape, or the Flussonic
    /// IPTV plugin's create/update bodies (`max_sessions` as a number or a
    /// string of digits, `key` as one more play token, `packages: null` as
    /// none, `id`, `created_at` and `updated_at` ignored). Anything else
    /// unknown, or a value of the wrong kind, is a problem in the list
    /// (values redacted), never silently misread.
    pub fn from_api_json(json: &[u8]) -> Result<User, Vec<String>> {
        let redact = |e: &serde_json::Error| vec![super::redact_json_error(e)];
        let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| redact(&e))?;
        let serde_json::Value::Object(mut map) = value else {
            return Err(vec!["body: expected a JSON object".to_owned()]);
        };
        let mut problems = Vec::new();
        for field in FLUSSONIC_IGNORED {
            if let Some(v) = map.remove(field)
                && !(v.is_null() || v.is_number() || v.is_string())
            {
                problems.push(format!("{field}: expected a number, a string or null"));
            }
        }
        if let Some(v) = map.get_mut("max_sessions")
            && let serde_json::Value::String(text) = v
        {
            match text.trim().parse::<u32>() {
                Ok(n) => *v = serde_json::Value::from(n),
                Err(_) => problems.push(
                    "max_sessions: a string must hold a whole number from 0 to 4294967295"
                        .to_owned(),
                ),
            }
        }
        if map.get("packages").is_some_and(serde_json::Value::is_null) {
            map.insert("packages".to_owned(), serde_json::Value::Array(Vec::new()));
        }
        let key = match map.remove("key") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(k)) if !k.is_empty() => Some(k),
            Some(_) => {
                problems.push("key: expected a non-empty string (a play token)".to_owned());
                None
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut user: User = match serde_json::from_value(serde_json::Value::Object(map.clone())) {
            Ok(u) => u,
            // Name the field: serde's message for a wrong type does not.
            Err(e) => {
                let named: Vec<String> = map
                    .into_iter()
                    .filter_map(|(field, v)| {
                        let one =
                            serde_json::Value::Object([(field.clone(), v)].into_iter().collect());
                        serde_json::from_value::<User>(one)
                            .err()
                            .map(|e| format!("{field}: {}", super::redact_json_error(&e)))
                    })
                    .collect();
                return Err(if named.is_empty() { redact(&e) } else { named });
            }
        };
        if let Some(k) = key
            && !user.tokens.contains(&k)
        {
            user.tokens.push(k);
        }
        Ok(user)
    }
}
