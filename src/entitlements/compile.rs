//! Validation and compilation of a [`Snapshot`] into [`Entitlements`].
//!
//! One pass over the snapshot, consuming it: ids and tokens move into the
//! compiled users (no copy), package lists become shared indices, and the
//! snapshot's user list is released as it is consumed, so a bulk load never
//! holds two full copies of a million users. Every problem is collected
//! (none stops the others) with its path; the first [`MAX_LISTED`] are kept
//! for the report, all are counted. Messages never contain a token or a
//! password.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::glob::{Glob, is_glob};
use super::{
    ALL_CHANNELS, Blocklist, Channel, Channels, CompiledBlocklist, CompiledChannel, CompiledDevice,
    CompiledPackage, CompiledUser, Device, Devices, Digest, Entitlements, Extra, FpIndex, IpRule,
    NO_DVR, Package, Snapshot, User, sha256,
};
use crate::ipnet_set::IpNetSet;

/// At most this many problems are listed in a [`ValidationError`].
pub const MAX_LISTED: usize = 100;

/// Prefix of a pre-hashed password: `sha256:` and 64 hex digits.
const SHA256_PREFIX: &str = "sha256:";

/// One problem in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: `users["alice"].ips[2]`, `packages["basic"].channels[0]`, `blocklist.ips[1]`.
    pub path: String,
    /// What, without any secret.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A snapshot that cannot be compiled: its problems, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    problems: Vec<Problem>,
    total: usize,
}

impl ValidationError {
    /// The first `MAX_LISTED` (100) problems.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// How many problems there are in all.
    pub fn total(&self) -> usize {
        self.total
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid snapshot ({} problems)", self.total)?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        if self.total > self.problems.len() {
            write!(f, "\n  ... and {} more", self.total - self.problems.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationError {}

/// The problems found so far.
#[derive(Default)]
struct Problems {
    list: Vec<Problem>,
    total: usize,
}

impl Problems {
    /// Record a problem; the path is built only if it will be listed.
    fn push(&mut self, path: impl FnOnce() -> String, message: impl FnOnce() -> String) {
        self.total += 1;
        if self.list.len() < MAX_LISTED {
            self.list.push(Problem {
                path: path(),
                message: message(),
            });
        }
    }
}

/// A user id or package name: the one id rule ([`super::rules`]); `*` is
/// not a package name (it means every channel, see [`ALL_CHANNELS`]).
fn check_name(name: &str, is_user: bool) -> Result<(), &'static str> {
    if !is_user && name == ALL_CHANNELS {
        return Err("\"*\" is not a package name: in a user's packages it means every channel");
    }
    super::rules::check_id(name)
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128).
fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// The SHA-256 of a password given as plaintext or `sha256:<64 hex>`;
/// `""` means none.
fn password_digest(text: &str) -> Result<Option<Digest>, &'static str> {
    if text.is_empty() {
        return Ok(None);
    }
    super::rules::check_secret(text)?;
    match text.strip_prefix(SHA256_PREFIX) {
        None => Ok(Some(sha256(text.as_bytes()))),
        Some(hex_text) => {
            let mut out = [0u8; 32];
            hex::decode_to_slice(hex_text, &mut out)
                .map_err(|_| "a pre-hashed password is sha256: followed by 64 hex digits")?;
            Ok(Some(out))
        }
    }
}

/// Longest channel title or group, in bytes.
pub const MAX_LABEL_BYTES: usize = 256;

/// Longest channel logo URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

/// Longest catch-up depth: ten years (Flussonic keeps years at most).
const MAX_DVR_DEPTH: u64 = 10 * 366 * 86_400;

/// Longest user comment, in bytes.
pub const MAX_COMMENT_BYTES: usize = 1024;

/// A user's region and the texts shown about them.
struct Profile {
    region: Option<String>,
    /// `name`, `email`, `comment`.
    texts: [String; 3],
}

/// A user's name, email or comment: no control character (it is written
/// to logs and the console), at most `max` bytes.
fn check_text(text: &str, max: usize) -> Result<(), String> {
    if text.len() > max {
        Err(format!("longer than {max} bytes"))
    } else if text.chars().any(char::is_control) {
        Err("contains a control character".to_owned())
    } else {
        Ok(())
    }
}

/// A title, group or logo: it is written into an M3U attribute
/// (`tvg-name="…"`), so no `"`, no control character, at most `max` bytes.
fn check_label(text: &str, max: usize) -> Result<(), String> {
    check_text(text, max)?;
    if text.contains('"') {
        return Err("contains '\"' (it is written inside a quoted M3U attribute)".to_owned());
    }
    Ok(())
}

/// A list of names that follow the id rule (tags, regions), as a set:
/// duplicates are harmless and dropped. Problems are at `<path>.<field>[i]`.
fn check_ids(
    problems: &mut Problems,
    names: &[String],
    path: impl Fn() -> String,
    field: &str,
) -> HashSet<Box<str>> {
    let mut out = HashSet::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        match super::rules::check_id(name) {
            Ok(()) => {
                out.insert(Box::from(name.as_str()));
            }
            Err(m) => problems.push(|| format!("{}.{field}[{i}]", path()), || m.to_owned()),
        }
    }
    out
}

/// A catch-up depth (`"3d"`, `"36h"`, `"0s"`) in whole seconds.
pub(super) fn depth_seconds(text: &str) -> Result<u64, String> {
    let secs = crate::units::parse_duration(text)?.as_secs();
    if secs > MAX_DVR_DEPTH {
        return Err(format!("{text:?} is more than ten years"));
    }
    Ok(secs)
}

/// The first unix second at which a user expiring at `text` is expired:
/// the instant itself, rounded up to a whole second; 0 before 1970.
pub(super) fn expiry_second(text: &str) -> Option<u64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    let secs = t.unix_timestamp() + i64::from(t.nanosecond() > 0);
    Some(u64::try_from(secs).unwrap_or(0))
}

/// The state of one build. Users, packages and the blocklist may arrive in
/// any order (a streamed JSON object has no key order); users' package
/// lists are resolved in [`Builder::finish`].
pub(super) struct Builder {
    problems: Problems,
    packages: Vec<CompiledPackage>,
    blocklist: CompiledBlocklist,
    /// Distinct `packages` lists of users, by first appearance.
    combo_names: Vec<Vec<String>>,
    combo_index: HashMap<Vec<String>, u32>,
    users: Vec<CompiledUser>,
    by_id: FpIndex,
    by_token: FpIndex,
    channels: Vec<CompiledChannel>,
    channel_index: HashMap<Box<str>, u32>,
    devices: Vec<CompiledDevice>,
    device_index: HashMap<Box<str>, u32>,
    /// Package names users may name without the snapshot defining them
    /// (a layer's, see [`Entitlements::build_layer`]).
    external: HashSet<String>,
}

impl Entitlements {
    /// Validate and compile a snapshot, consuming it. Either every problem
    /// (with its path) or the compiled entitlements; never panics.
    pub fn build(snapshot: Snapshot) -> Result<Self, ValidationError> {
        Self::build_layer(snapshot, HashSet::new())
    }

    /// [`Self::build`] for a layer that is overlaid on another before use
    /// (the admin API's on the config's): users may also name the packages
    /// in `external`, which the other layer defines. Such a name compiles to
    /// an empty placeholder that covers no channel, is not read back as a
    /// package, and makes [`Self::has_external_packages`] true: merge the
    /// layer (through [`Self::to_snapshot`]) before asking it anything.
    pub fn build_layer(
        snapshot: Snapshot,
        external: HashSet<String>,
    ) -> Result<Self, ValidationError> {
        let Snapshot {
            users,
            packages,
            channels,
            devices,
            blocklist,
        } = snapshot;
        let mut b = Builder::new(users.len(), external);
        b.packages(packages);
        b.channels(channels);
        b.devices(devices);
        b.blocklist(blocklist);
        // Consume from the back of the reversed list (document order) and
        // give memory back as the list shrinks.
        let mut list = users.0;
        list.reverse();
        while let Some((id, user)) = list.pop() {
            if list.capacity() > 4096 && list.capacity() >= 2 * list.len() {
                list.shrink_to_fit();
            }
            b.user(id, user);
        }
        b.finish()
    }
}

impl Builder {
    /// A builder expecting about `users` users, whose users may name the
    /// `external` packages without defining them.
    pub(super) fn new(users: usize, external: HashSet<String>) -> Self {
        Self {
            external,
            problems: Problems::default(),
            packages: Vec::new(),
            blocklist: CompiledBlocklist::default(),
            combo_names: Vec::new(),
            combo_index: HashMap::new(),
            users: Vec::with_capacity(users),
            by_id: FpIndex::with_capacity(users),
            by_token: FpIndex::with_capacity(users),
            channels: Vec::new(),
            channel_index: HashMap::new(),
            devices: Vec::new(),
            device_index: HashMap::new(),
        }
    }

    /// Resolve users' package lists and finish.
    pub(super) fn finish(mut self) -> Result<Entitlements, ValidationError> {
        self.external_placeholders();
        self.all_channels();
        let index: HashMap<&str, u32> = self
            .packages
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((p.name.as_str(), u32::try_from(i).ok()?)))
            .collect();
        let mut combos = Vec::with_capacity(self.combo_names.len());
        // Per combo: positions and names of unknown packages.
        let mut unknown: Vec<Vec<(usize, &str)>> = Vec::with_capacity(self.combo_names.len());
        for names in &self.combo_names {
            let mut indices = Vec::with_capacity(names.len());
            let mut bad = Vec::new();
            for (pos, name) in names.iter().enumerate() {
                match index.get(name.as_str()) {
                    Some(&i) => indices.push(i),
                    None => bad.push((pos, name.as_str())),
                }
            }
            combos.push(indices.into_boxed_slice());
            unknown.push(bad);
        }
        if unknown.iter().any(|bad| !bad.is_empty()) {
            let owners = self.users.iter().map(|u| ("users", &*u.id, u.combo));
            let devices = self
                .devices
                .iter()
                .filter_map(|d| Some(("devices", &*d.hwid, d.combo?)));
            for (kind, id, combo) in owners.chain(devices) {
                for (pos, name) in unknown.get(combo as usize).into_iter().flatten() {
                    self.problems.push(
                        || format!("{kind}[{id:?}].packages[{pos}]"),
                        || format!("unknown package {name:?}"),
                    );
                }
            }
        }
        if self.problems.total > 0 {
            return Err(ValidationError {
                problems: self.problems.list,
                total: self.problems.total,
            });
        }
        let mut devices_per_user: HashMap<Box<str>, u32> = HashMap::new();
        for d in &self.devices {
            *devices_per_user.entry(d.user().into()).or_default() += 1;
        }
        Ok(Entitlements {
            devices: self.devices,
            device_index: self.device_index,
            devices_per_user,
            users: self.users,
            by_id: self.by_id,
            by_token: self.by_token,
            packages: self.packages,
            combos,
            channels: self.channels,
            channel_index: self.channel_index,
            blocklist: self.blocklist,
        })
    }

    /// The built-in package [`ALL_CHANNELS`] (a `*` glob), when a user names it.
    fn all_channels(&mut self) {
        let named = self.combo_names.iter().flatten().any(|n| n == ALL_CHANNELS);
        if named && !self.packages.iter().any(|p| p.name == ALL_CHANNELS) {
            self.packages.push(CompiledPackage {
                name: ALL_CHANNELS.to_owned(),
                globs: vec![Glob::new(ALL_CHANNELS)].into_boxed_slice(),
                builtin: true,
                ..CompiledPackage::default()
            });
        }
    }

    /// An empty placeholder package for every external name a user names
    /// and the snapshot does not define, in name order.
    fn external_placeholders(&mut self) {
        if self.external.is_empty() {
            return;
        }
        let mut missing: Vec<String> = {
            let defined: HashSet<&str> = self.packages.iter().map(|p| p.name.as_str()).collect();
            self.combo_names
                .iter()
                .flatten()
                .filter(|n| !defined.contains(n.as_str()) && self.external.contains(*n))
                .cloned()
                .collect()
        };
        missing.sort_unstable();
        missing.dedup();
        self.packages
            .extend(missing.into_iter().map(|name| CompiledPackage {
                name,
                external: true,
                ..CompiledPackage::default()
            }));
    }

    /// Packages, in name order (so indices and problems are deterministic).
    /// Called once; a second call replaces nothing and adds its packages.
    pub(super) fn packages(&mut self, packages: HashMap<String, Package>) {
        let mut list: Vec<(String, Package)> = packages.into_iter().collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        let out = &mut self.packages;
        let problems = &mut self.problems;
        for (name, pkg) in list {
            if let Err(m) = check_name(&name, false) {
                problems.push(|| format!("packages[{name:?}]"), || m.to_owned());
            }
            let mut exact = HashSet::new();
            let mut globs = Vec::new();
            for (c, ch) in pkg.channels.iter().enumerate() {
                let problem = if ch.is_empty() {
                    Some("empty channel name")
                } else if ch.chars().any(char::is_control) {
                    Some("channel contains a control character")
                } else {
                    None
                };
                if let Some(m) = problem {
                    problems.push(
                        || format!("packages[{name:?}].channels[{c}]"),
                        || m.to_owned(),
                    );
                } else if is_glob(ch) {
                    globs.push(Glob::new(ch));
                } else {
                    exact.insert(Box::from(ch.as_str()));
                }
            }
            let tags = check_ids(
                problems,
                &pkg.tags,
                || format!("packages[{name:?}]"),
                "tags",
            );
            let dvr_cap = pkg.dvr_depth.as_deref().and_then(|text| {
                depth_seconds(text)
                    .map_err(|m| problems.push(|| format!("packages[{name:?}].dvr_depth"), || m))
                    .ok()
            });
            out.push(CompiledPackage {
                name,
                external: false,
                builtin: false,
                exact,
                globs: globs.into_boxed_slice(),
                tags: tags.into_iter().collect(),
                dvr_cap,
                source: pkg,
            });
        }
    }

    /// Channels, in document order (a second call adds its channels).
    pub(super) fn channels(&mut self, channels: Channels) {
        for (name, channel) in channels.0 {
            self.channel(name, channel);
        }
    }

    /// Compile one channel.
    pub(super) fn channel(&mut self, name: String, channel: Channel) {
        let problems = &mut self.problems;
        let path = |suffix: &str| format!("channels[{name:?}]{suffix}");
        if let Err(m) = super::rules::check_id(&name) {
            problems.push(|| path(""), || m.to_owned());
        }
        for (field, text, max) in [
            ("title", &channel.title, MAX_LABEL_BYTES),
            ("group", &channel.group, MAX_LABEL_BYTES),
            ("logo", &channel.logo, MAX_URL_BYTES),
        ] {
            if let Err(m) = check_label(text, max) {
                problems.push(|| path(&format!(".{field}")), || m);
            }
        }
        let web = |url: &str| url.starts_with("https://") || url.starts_with("http://");
        if !(channel.logo.is_empty() || web(&channel.logo)) {
            problems.push(
                || path(".logo"),
                || "must be an absolute http:// or https:// URL".to_owned(),
            );
        }
        let tags = check_ids(problems, &channel.tags, || path(""), "tags");
        let regions = check_ids(problems, &channel.regions, || path(""), "regions");
        let dvr_depth = match channel.dvr_depth.as_deref().map(depth_seconds) {
            None => NO_DVR,
            Some(Ok(secs)) => secs,
            Some(Err(m)) => {
                problems.push(|| path(".dvr_depth"), || m);
                NO_DVR
            }
        };
        let Ok(index) = u32::try_from(self.channels.len()) else {
            problems.push(|| "channels".to_owned(), || "too many channels".to_owned());
            return;
        };
        if self
            .channel_index
            .insert(Box::from(name.as_str()), index)
            .is_some()
        {
            problems.push(|| path(""), || "duplicate channel".to_owned());
            return;
        }
        self.channels.push(CompiledChannel {
            name: name.into_boxed_str(),
            tags: tags.into_iter().collect(),
            regions: regions.into_iter().collect(),
            dvr_depth,
            source: channel,
        });
    }

    /// The blocklist (a second call replaces the first).
    pub(super) fn blocklist(&mut self, source: Blocklist) {
        let mut nets = Vec::with_capacity(source.ips.len());
        for (i, text) in source.ips.iter().enumerate() {
            match parse_net(text) {
                Some(n) => nets.push(n),
                None => self.problems.push(
                    || format!("blocklist.ips[{i}]"),
                    || format!("invalid network {text:?}"),
                ),
            }
        }
        for (i, id) in source.users.iter().enumerate() {
            if let Err(m) = super::rules::check_id(id) {
                self.problems
                    .push(|| format!("blocklist.users[{i}]"), || m.to_owned());
            }
        }
        for (i, t) in source.tokens.iter().enumerate() {
            if let Err(m) = super::rules::check_secret(t) {
                self.problems
                    .push(|| format!("blocklist.tokens[{i}]"), || format!("token {m}"));
            }
        }
        self.blocklist = CompiledBlocklist {
            users: source.users.iter().cloned().collect(),
            tokens: source.tokens.iter().cloned().collect(),
            ips: IpNetSet::new(&nets),
            source,
        };
    }

    /// The combo id for a user's `packages` list (resolved in `finish`).
    fn combo(&mut self, names: Vec<String>) -> u32 {
        if let Some(&c) = self.combo_index.get(names.as_slice()) {
            return c;
        }
        // Fewer distinct lists than users, and users fit in u32.
        let c = u32::try_from(self.combo_names.len()).unwrap_or(u32::MAX);
        self.combo_names.push(names.clone());
        self.combo_index.insert(names, c);
        c
    }

    /// Compile the devices, in document order.
    fn devices(&mut self, devices: Devices) {
        for (hwid, device) in devices.0 {
            self.device(hwid, device);
        }
    }

    /// Compile one device: its hardware id follows the hardware-id rule,
    /// its user the id rule; its packages are resolved in `finish`.
    pub(super) fn device(&mut self, hwid: String, device: Device) {
        let path = |suffix: &str| format!("devices[{hwid:?}]{suffix}");
        if let Err(m) = super::rules::check_hwid(&hwid) {
            self.problems.push(|| path(""), || m.to_owned());
        }
        if let Err(m) = super::rules::check_id(&device.user) {
            self.problems.push(|| path(".user"), || m.to_owned());
        }
        let Ok(index) = u32::try_from(self.devices.len()) else {
            self.problems
                .push(|| "devices".to_owned(), || "too many devices".to_owned());
            return;
        };
        if self.device_index.contains_key(hwid.as_str()) {
            self.problems.push(
                || path(""),
                || "duplicate hardware id (listed twice)".to_owned(),
            );
            return;
        }
        let combo = (!device.packages.is_empty()).then(|| self.combo(device.packages.clone()));
        self.device_index
            .insert(hwid.clone().into_boxed_str(), index);
        self.devices.push(CompiledDevice {
            hwid: hwid.into_boxed_str(),
            combo,
            source: device,
        });
    }

    /// Compile one user.
    pub(super) fn user(&mut self, id: String, user: User) {
        let User {
            tokens,
            password,
            max_sessions,
            packages,
            ips,
            expires_at,
            disabled,
            region,
            name,
            email,
            comment,
        } = user;
        let Ok(index) = u32::try_from(self.users.len()) else {
            self.problems
                .push(|| "users".to_owned(), || "too many users".to_owned());
            return;
        };
        let path = |suffix: &str| format!("users[{id:?}]{suffix}");
        if let Err(m) = check_name(&id, true) {
            self.problems.push(|| path(""), || m.to_owned());
        }
        let users = &self.users;
        if self
            .by_id
            .insert(id.as_bytes(), index, |i| {
                users.get(i as usize).is_some_and(|u| *u.id == *id)
            })
            .is_err()
        {
            self.problems.push(
                || path(""),
                || "duplicate user id (listed twice)".to_owned(),
            );
        }
        let password = password_digest(&password).unwrap_or_else(|m| {
            self.problems.push(|| path(".password"), || m.to_owned());
            None
        });
        let combo = self.combo(packages);
        let profile = Profile {
            region,
            texts: [name, email, comment],
        };
        let extra = self.extra(&id, password, ips, expires_at, profile);
        self.users.push(CompiledUser {
            id: id.into_boxed_str(),
            tokens: tokens.into_iter().map(String::into_boxed_str).collect(),
            max_sessions,
            combo,
            disabled,
            extra,
        });
        self.tokens(index);
    }

    /// Index the tokens of the user just pushed at `index`.
    fn tokens(&mut self, index: u32) {
        let Some(user) = self.users.get(index as usize) else {
            return;
        };
        let path = |t: usize| format!("users[{:?}].tokens[{t}]", user.id);
        for (t, token) in user.tokens.iter().enumerate() {
            if let Err(m) = super::rules::check_secret(token) {
                self.problems.push(|| path(t), || format!("token {m}"));
                continue;
            }
            let users = &self.users;
            let owner = self.by_token.insert(token.as_bytes(), index, |i| {
                users
                    .get(i as usize)
                    .is_some_and(|u| u.owns_token(token.as_bytes()))
            });
            if let Err(other) = owner {
                let message = || match users.get(other as usize) {
                    Some(o) if other != index => format!(
                        "duplicate token: users[{:?}] has the same one; a token must identify one user",
                        o.id
                    ),
                    _ => "duplicate token: listed twice for this user".to_owned(),
                };
                self.problems.push(|| path(t), message);
            }
        }
    }

    /// Compile `ips` and `expires_at`, reporting problems; `None` when they
    /// and the password are absent (the common user).
    fn extra(
        &mut self,
        id: &str,
        password: Option<Digest>,
        ips: Vec<String>,
        expires_at: Option<String>,
        profile: Profile,
    ) -> Option<Box<Extra>> {
        let Profile { region, texts } = profile;
        if password.is_none()
            && ips.is_empty()
            && expires_at.is_none()
            && region.is_none()
            && texts.iter().all(String::is_empty)
        {
            return None;
        }
        if let Some(r) = &region
            && let Err(m) = super::rules::check_id(r)
        {
            self.problems
                .push(|| format!("users[{id:?}].region"), || m.to_owned());
        }
        for ((field, text), max) in ["name", "email", "comment"].iter().zip(&texts).zip([
            MAX_LABEL_BYTES,
            MAX_LABEL_BYTES,
            MAX_COMMENT_BYTES,
        ]) {
            if let Err(m) = check_text(text, max) {
                self.problems
                    .push(|| format!("users[{id:?}].{field}"), || m);
            }
        }
        let mut nets = Vec::with_capacity(ips.len());
        for (i, text) in ips.iter().enumerate() {
            match parse_net(text) {
                Some(n) => nets.push(n),
                None => self.problems.push(
                    || format!("users[{id:?}].ips[{i}]"),
                    || format!("invalid network {text:?}"),
                ),
            }
        }
        let mut expires = u64::MAX;
        if let Some(text) = &expires_at {
            match expiry_second(text) {
                Some(e) => expires = e,
                None => self.problems.push(
                    || format!("users[{id:?}].expires_at"),
                    || format!("invalid RFC 3339 time {text:?}"),
                ),
            }
        }
        Some(Box::new(Extra {
            password,
            expires,
            ips: (!ips.is_empty()).then(|| IpRule::new(nets)),
            ips_source: ips,
            expires_source: expires_at,
            region: region.map(String::into_boxed_str),
            profile: texts.map(String::into_boxed_str),
        }))
    }
}
