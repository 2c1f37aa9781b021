//! Entitlements: who may watch which channel from where (SPEC §3.1, §4).
//!
//! Owns the data model of users, packages and the blocklist ([`Snapshot`],
//! the admin API bodies), its validation, and [`Entitlements`]: the compiled,
//! immutable form that request handling asks, shared as an `Arc` and replaced
//! whole (`ArcSwap`) when the admin API or the control plane changes anything.
//!
//! Pure core: no I/O, no clock (`now` is an argument, unix seconds), no
//! logging. Persistence is [`crate::persist`]; the admin API, session limits
//! and control-plane sync are the shell's.
//!
//! Invariants:
//! - Every per-request check ([`Entitlements::decide`], [`Entitlements::user`],
//!   [`Entitlements::user_by_token`], [`Entitlements::check_password`]) takes
//!   no lock and does not allocate: a few hash probes and, for globs, a scan
//!   of the user's packages' patterns.
//! - Passwords are kept only as SHA-256 digests and compared in constant
//!   time; a token lookup ends in a constant-time comparison with the stored
//!   token. `Debug` output and validation errors never contain a token or a
//!   password.
//! - Building never panics, whatever the snapshot holds; every problem is
//!   reported with its path (`users["alice"].ips[2]: invalid network "x"`).

mod compile;
mod glob;
mod index;
mod model;
pub mod rules;
mod stream;
mod view;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ProxyError;
use crate::ipnet_set::IpNetSet;

pub use compile::{Problem, ValidationError};
pub use model::{
    Blocklist, Channel, Channels, Device, Devices, Named, Package, Snapshot, User, Users,
};
pub use stream::{LoadError, redact_json_error};
pub use view::{UserPage, UserQuery};

use glob::Glob;
use index::FpIndex;

/// In a user's `packages`, every channel (config and admin API alike). Not a
/// package name: no package may be called `*`.
pub const ALL_CHANNELS: &str = "*";

/// A SHA-256 digest (of a password).
type Digest = [u8; 32];

fn sha256(bytes: &[u8]) -> Digest {
    Sha256::digest(bytes).into()
}

/// Why a viewer is refused; each maps to one SPEC §3.1 code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Denial {
    /// Unknown, disabled or expired user (`forbidden`).
    Forbidden,
    /// Client IP on the blocklist or outside the user's `ips` (`ip_denied`).
    IpDenied,
    /// The user's packages do not cover the channel (`not_entitled`).
    NotEntitled,
    /// User or token on the blocklist (`blocked`).
    Blocked,
}

impl Denial {
    /// The SPEC §3.1 code.
    pub fn code(self) -> &'static str {
        ProxyError::from(self).code()
    }
}

impl From<Denial> for ProxyError {
    fn from(d: Denial) -> Self {
        match d {
            Denial::Forbidden => ProxyError::Forbidden,
            Denial::IpDenied => ProxyError::IpDenied,
            Denial::NotEntitled => ProxyError::NotEntitled,
            Denial::Blocked => ProxyError::Blocked,
        }
    }
}

/// What an allowed viewer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Concurrent sessions allowed to the user; 0 = unlimited (always 0 for
    /// anonymous viewers).
    pub max_sessions: u32,
}

/// One channel of a viewer's channel list ([`Entitlements::channel_list`]).
#[derive(Debug, Clone, Copy)]
pub struct Listed<'a> {
    /// The channel name (the route's channel path segment).
    pub name: &'a str,
    /// The channel as declared.
    pub channel: &'a Channel,
    /// The viewer's catch-up depth on it, seconds ([`NO_DVR`]: none).
    pub dvr_depth: u64,
}

/// A listed user as one request sees them: on a device with packages of
/// its own, those packages instead of the user's.
struct Viewer<'a> {
    user: &'a CompiledUser,
    /// Index into [`Entitlements::combos`]: the packages in force.
    combo: u32,
}

/// Catch-up depth in seconds that means "no catch-up".
pub const NO_DVR: u64 = 0;

/// A user's network restriction, compiled.
#[derive(Debug, Clone)]
enum IpRule {
    /// A handful of networks, scanned (no hash tables per user).
    Few(Box<[IpNet]>),
    /// Many networks: longest-prefix set.
    Many(IpNetSet),
}

impl IpRule {
    /// Lists up to this length are scanned.
    const SCAN_MAX: usize = 8;

    fn new(nets: Vec<IpNet>) -> Self {
        if nets.len() <= Self::SCAN_MAX {
            Self::Few(nets.into_boxed_slice())
        } else {
            Self::Many(IpNetSet::new(&nets))
        }
    }

    /// `ip` must already be canonical (IPv4-mapped IPv6 turned into IPv4).
    fn contains(&self, ip: IpAddr) -> bool {
        match self {
            Self::Few(nets) => nets.iter().any(|n| n.contains(&ip)),
            Self::Many(set) => set.contains(ip),
        }
    }
}

/// The rarely used parts of a user, boxed so the common user (tokens and
/// packages only) stays at 56 bytes plus its id and tokens.
#[derive(Clone)]
struct Extra {
    /// SHA-256 of the password, if the user may log in with `?auth=`.
    password: Option<Digest>,
    /// First unix second at which the user is expired; `u64::MAX` = never.
    expires: u64,
    /// `ips` as given, for reading the user back.
    ips_source: Vec<String>,
    /// `ips` compiled; `None` = anywhere.
    ips: Option<IpRule>,
    /// `expires_at` as given.
    expires_source: Option<String>,
    /// The user's region.
    region: Option<Box<str>>,
    /// `name`, `email`, `comment` as given.
    profile: [Box<str>; 3],
}

/// One compiled user, as [`Entitlements::user`] returns it.
#[derive(Clone)]
pub struct CompiledUser {
    id: Box<str>,
    /// Plaintext tokens, kept to read the user back and persist it; only ever
    /// compared in constant time.
    tokens: Box<[Box<str>]>,
    max_sessions: u32,
    /// Index into [`Entitlements::combos`].
    combo: u32,
    disabled: bool,
    extra: Option<Box<Extra>>,
}

impl CompiledUser {
    /// The user id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The user's first play token (what a signed link carries).
    pub fn first_token(&self) -> Option<&str> {
        self.tokens.first().map(|t| &**t)
    }

    /// Concurrent sessions allowed; 0 = unlimited.
    pub fn max_sessions(&self) -> u32 {
        self.max_sessions
    }

    /// True when the user is disabled.
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// The first unix second at which the user is expired, if it expires.
    pub fn expires_at(&self) -> Option<u64> {
        let expires = self.extra.as_deref()?.expires;
        (expires != u64::MAX).then_some(expires)
    }

    fn password(&self) -> Option<&Digest> {
        self.extra.as_deref()?.password.as_ref()
    }

    /// The user's region, if any.
    pub fn region(&self) -> Option<&str> {
        self.extra.as_deref()?.region.as_deref()
    }

    /// True when the user is neither disabled nor expired at `now`.
    pub fn is_active(&self, now: u64) -> bool {
        !self.disabled
            && self
                .extra
                .as_deref()
                .is_none_or(|e| e.expires == u64::MAX || now < e.expires)
    }

    /// True when the user may watch from `ip` (any IP if `ips` was empty).
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        match self.extra.as_deref().and_then(|e| e.ips.as_ref()) {
            None => true,
            Some(rule) => rule.contains(canonical(ip)),
        }
    }

    /// Does the user hold a token whose SHA-256 is `digest`? (Revocation
    /// knows sessions' credentials only by digest.)
    pub fn has_token_digest(&self, digest: &Digest) -> bool {
        self.tokens
            .iter()
            .any(|t| bool::from(sha256(t.as_bytes()).ct_eq(digest)))
    }

    /// Is `digest` the SHA-256 of the user's password?
    pub fn has_password_digest(&self, digest: &Digest) -> bool {
        self.password().is_some_and(|p| bool::from(p.ct_eq(digest)))
    }

    /// Constant-time: does the user hold this token?
    fn owns_token(&self, presented: &[u8]) -> bool {
        let mut found = subtle::Choice::from(0);
        for t in &self.tokens {
            found |= t.as_bytes().ct_eq(presented);
        }
        found.into()
    }
}

impl fmt::Debug for CompiledUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledUser")
            .field("id", &self.id)
            .field("tokens", &self.tokens.len())
            .field("password", &self.password().is_some())
            .field("expires", &self.expires_at())
            .field("max_sessions", &self.max_sessions)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// One compiled package.
#[derive(Debug, Clone, Default)]
struct CompiledPackage {
    name: String,
    /// Exact channel names.
    exact: HashSet<Box<str>>,
    /// Glob patterns.
    globs: Box<[Glob]>,
    /// Tags: declared channels carrying one are covered.
    tags: HashSet<Box<str>>,
    /// Cap on the catch-up depth it gives, seconds; `None` = no cap.
    dvr_cap: Option<u64>,
    /// The package as given, for reading it back.
    source: Package,
    /// A placeholder for a package another layer defines (see
    /// [`Entitlements::build_layer`]): covers nothing, never read back.
    external: bool,
    /// The built-in [`ALL_CHANNELS`] package: covers every channel, never
    /// read back as a package (only as a name in users' `packages`).
    builtin: bool,
}

impl CompiledPackage {
    /// By name, by glob, or by one of the declared channel's tags.
    fn covers(&self, channel: &str, declared: Option<&CompiledChannel>) -> bool {
        self.exact.contains(channel)
            || self.globs.iter().any(|g| g.matches(channel))
            || (!self.tags.is_empty()
                && declared.is_some_and(|c| c.tags.iter().any(|t| self.tags.contains(t))))
    }
}

/// One compiled channel.
#[derive(Debug, Clone)]
struct CompiledChannel {
    name: Box<str>,
    tags: Box<[Box<str>]>,
    /// Regions whose users may watch it; empty = every region.
    regions: Box<[Box<str>]>,
    /// Catch-up depth, seconds ([`NO_DVR`] = none).
    dvr_depth: u64,
    /// The channel as given, for reading it back and for channel lists.
    source: Channel,
}

/// One compiled device (SPEC §7.3).
#[derive(Debug, Clone)]
pub struct CompiledDevice {
    hwid: Box<str>,
    /// Index into [`Entitlements::combos`] when the device has packages of
    /// its own (they replace its user's).
    combo: Option<u32>,
    /// The device as given (its user, packages and state).
    source: Device,
}

impl CompiledDevice {
    /// The hardware id.
    pub fn hwid(&self) -> &str {
        &self.hwid
    }

    /// The user it belongs to.
    pub fn user(&self) -> &str {
        &self.source.user
    }

    /// True when the device is disabled (refused with `blocked`).
    pub fn is_disabled(&self) -> bool {
        self.source.disabled
    }

    /// The device as given.
    pub fn record(&self) -> &Device {
        &self.source
    }
}

/// The blocklist, compiled.
#[derive(Debug, Clone, Default)]
struct CompiledBlocklist {
    users: HashSet<String>,
    /// Plaintext (the list is readable through the admin API anyway).
    tokens: HashSet<String>,
    ips: IpNetSet,
    source: Blocklist,
}

/// The compiled, immutable entitlement state. Build with
/// [`Entitlements::build`]; share as `Arc<Entitlements>`.
#[derive(Clone, Default)]
pub struct Entitlements {
    users: Vec<CompiledUser>,
    by_id: FpIndex,
    by_token: FpIndex,
    packages: Vec<CompiledPackage>,
    /// Distinct `packages` lists of users, as package indices; users with
    /// the same list share one entry.
    combos: Vec<Box<[u32]>>,
    /// Declared channels, in channel-list order.
    channels: Vec<CompiledChannel>,
    /// Channel name → index into `channels`.
    channel_index: HashMap<Box<str>, u32>,
    /// Devices, in document order.
    devices: Vec<CompiledDevice>,
    /// Hardware id → index into `devices`.
    device_index: HashMap<Box<str>, u32>,
    /// User id → how many devices name them.
    devices_per_user: HashMap<Box<str>, u32>,
    blocklist: CompiledBlocklist,
}

impl fmt::Debug for Entitlements {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entitlements")
            .field("users", &self.users.len())
            .field("tokens", &self.by_token.len())
            .field("packages", &self.packages.len())
            .field("package_lists", &self.combos.len())
            .field("channels", &self.channels.len())
            .field("devices", &self.devices.len())
            .field("blocked_users", &self.blocklist.users.len())
            .field("blocked_tokens", &self.blocklist.tokens.len())
            .finish()
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Entitlements {
    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when there is no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// True when users name packages defined outside these entitlements
    /// (built with [`Self::build_layer`]): they must be merged with the
    /// layer defining them before they answer requests.
    pub fn has_external_packages(&self) -> bool {
        self.packages.iter().any(|p| p.external)
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        let i = self.by_id.get(id.as_bytes(), |i| {
            self.users.get(i as usize).is_some_and(|u| &*u.id == id)
        })?;
        Some(i as usize)
    }

    /// The user with this id.
    pub fn user(&self, id: &str) -> Option<&CompiledUser> {
        self.users.get(self.index_of(id)?)
    }

    /// The id of the user holding `token`; the final match is a
    /// constant-time comparison with the stored token.
    pub fn user_by_token(&self, token: &str) -> Option<&str> {
        let presented = token.as_bytes();
        let i = self.by_token.get(presented, |i| {
            self.users
                .get(i as usize)
                .is_some_and(|u| u.owns_token(presented))
        })?;
        self.users.get(i as usize).map(|u| &*u.id)
    }

    /// Constant-time check of `?auth=user:password`: the presented password
    /// is hashed before the user is looked up, so an unknown user, a user
    /// without a password and a wrong password cost the same. Says nothing
    /// about disabled, expired or blocked users: that is [`Self::decide`].
    pub fn check_password(&self, user: &str, presented: &[u8]) -> bool {
        let presented = sha256(presented);
        match self.user(user).and_then(CompiledUser::password) {
            Some(stored) => stored.ct_eq(&presented).into(),
            None => false,
        }
    }

    /// True when `id` is on the blocklist (known user or not, e.g. an id
    /// vouched for by an auth backend or a pay-per-view `id=`).
    pub fn is_user_blocked(&self, id: &str) -> bool {
        self.blocklist.users.contains(id)
    }

    /// Steps 1 and 2 of [`Self::decide`] alone: `ip` on the blocklist →
    /// [`Denial::IpDenied`]; `user` or `token` on it → [`Denial::Blocked`].
    /// Also the whole check of a blocklist-only layer (a control plane's
    /// deny list).
    pub fn check_blocklist(
        &self,
        user: Option<&str>,
        token: Option<&str>,
        ip: IpAddr,
    ) -> Result<(), Denial> {
        let bl = &self.blocklist;
        if !bl.ips.is_empty() && bl.ips.contains(canonical(ip)) {
            return Err(Denial::IpDenied);
        }
        if user.is_some_and(|u| bl.users.contains(u))
            || token.is_some_and(|t| bl.tokens.contains(t))
        {
            return Err(Denial::Blocked);
        }
        Ok(())
    }

    /// May this viewer watch `channel` from `ip` at `now` (unix seconds)?
    /// [`Self::decide_on`] without a device.
    pub fn decide(
        &self,
        user: Option<&str>,
        token: Option<&str>,
        channel: &str,
        ip: IpAddr,
        now: u64,
    ) -> Result<Grant, Denial> {
        self.decide_on(user, None, token, channel, ip, now)
    }

    /// May this viewer, on `device` if the credentials named one, watch
    /// `channel` from `ip` at `now` (unix seconds)?
    ///
    /// Checked in this order, the first failure deciding:
    /// 1. `ip` on the blocklist → [`Denial::IpDenied`];
    /// 2. `user` or `token` on the blocklist → [`Denial::Blocked`];
    /// 3. no user (anonymous) → allowed, unlimited;
    /// 4. unknown, disabled or expired (`now >= expires_at`) user →
    ///    [`Denial::Forbidden`];
    /// 5. `ip` outside the user's `ips` → [`Denial::IpDenied`];
    /// 6. a device these entitlements do not list, or another user's →
    ///    [`Denial::Forbidden`]; a disabled one → [`Denial::Blocked`];
    /// 7. no package covers `channel` → [`Denial::NotEntitled`]: the
    ///    device's packages when it has any, else the user's.
    ///
    /// So anonymous viewers answer only to the blocklist: its IPs and, if
    /// they presented one, its tokens.
    pub fn decide_on(
        &self,
        user: Option<&str>,
        device: Option<&str>,
        token: Option<&str>,
        channel: &str,
        ip: IpAddr,
        now: u64,
    ) -> Result<Grant, Denial> {
        let Some(v) = self.viewer(user, device, token, ip, now)? else {
            return Ok(Grant { max_sessions: 0 });
        };
        if !self.entitled_on(&v, channel, self.declared(channel)) {
            return Err(Denial::NotEntitled);
        }
        Ok(Grant {
            max_sessions: v.user.max_sessions,
        })
    }

    /// Steps 1 to 6 of [`Self::decide_on`]: the viewer, if named, when
    /// nothing refuses them whatever the channel.
    fn viewer(
        &self,
        user: Option<&str>,
        device: Option<&str>,
        token: Option<&str>,
        ip: IpAddr,
        now: u64,
    ) -> Result<Option<Viewer<'_>>, Denial> {
        self.check_blocklist(user, token, ip)?;
        let Some(id) = user else {
            return Ok(None);
        };
        let u = self.user(id).ok_or(Denial::Forbidden)?;
        if !u.is_active(now) {
            return Err(Denial::Forbidden);
        }
        if !u.allows_ip(canonical(ip)) {
            return Err(Denial::IpDenied);
        }
        let combo = match device {
            Some(hwid) => self.combo_on(u, hwid)?,
            None => u.combo,
        };
        Ok(Some(Viewer { user: u, combo }))
    }

    /// The packages in force for `user` on device `hwid` (its own when it
    /// has any, else the user's); [`Denial::Forbidden`] for a device these
    /// entitlements do not list or another user's, [`Denial::Blocked`] for
    /// a disabled one.
    fn combo_on(&self, user: &CompiledUser, hwid: &str) -> Result<u32, Denial> {
        let d = self.device(hwid).ok_or(Denial::Forbidden)?;
        if d.user() != &*user.id {
            return Err(Denial::Forbidden);
        }
        if d.is_disabled() {
            return Err(Denial::Blocked);
        }
        Ok(d.combo.unwrap_or(user.combo))
    }

    /// The device `hwid`.
    pub fn device(&self, hwid: &str) -> Option<&CompiledDevice> {
        if self.devices.is_empty() {
            return None;
        }
        let i = *self.device_index.get(hwid)?;
        self.devices.get(i as usize)
    }

    /// How many devices belong to `user` (disabled ones included).
    pub fn device_count(&self, user: &str) -> u32 {
        self.devices_per_user.get(user).copied().unwrap_or(0)
    }

    /// The devices in document order.
    pub fn devices(&self) -> impl Iterator<Item = &CompiledDevice> {
        self.devices.iter()
    }

    /// The channel list of `user` (SPEC §7.5): every declared channel
    /// [`Self::decide`] would let them watch from `ip` at `now`, in
    /// channel-list order, each with their catch-up depth on it; or the
    /// denial that refuses them everything (blocked, unknown, disabled,
    /// expired, outside their addresses).
    pub fn channel_list(
        &self,
        user: &str,
        token: Option<&str>,
        ip: IpAddr,
        now: u64,
    ) -> Result<Vec<Listed<'_>>, Denial> {
        let v = self
            .viewer(Some(user), None, token, ip, now)?
            .ok_or(Denial::Forbidden)?;
        Ok(self
            .channels
            .iter()
            .filter(|c| self.entitled_on(&v, &c.name, Some(c)))
            .map(|c| Listed {
                name: &c.name,
                channel: &c.source,
                dvr_depth: self.depth_on(&v, c),
            })
            .collect())
    }

    /// True when one of the viewer's packages covers `channel` and, if the
    /// channel is regional, the user is of one of its regions (SPEC §7.2).
    fn entitled_on(
        &self,
        viewer: &Viewer<'_>,
        channel: &str,
        declared: Option<&CompiledChannel>,
    ) -> bool {
        let in_region = declared.is_none_or(|c| {
            c.regions.is_empty()
                || viewer
                    .user
                    .region()
                    .is_some_and(|r| c.regions.iter().any(|x| **x == *r))
        });
        in_region && self.granting(viewer, channel, declared).next().is_some()
    }

    /// The viewer's packages that cover `channel`.
    fn granting<'a>(
        &'a self,
        viewer: &Viewer<'_>,
        channel: &'a str,
        declared: Option<&'a CompiledChannel>,
    ) -> impl Iterator<Item = &'a CompiledPackage> + 'a {
        let combo: &[u32] = self.combos.get(viewer.combo as usize).map_or(&[], |c| c);
        combo
            .iter()
            .filter_map(|&p| self.packages.get(p as usize))
            .filter(move |pkg| pkg.covers(channel, declared))
    }

    fn declared(&self, channel: &str) -> Option<&CompiledChannel> {
        if self.channels.is_empty() {
            return None;
        }
        let i = *self.channel_index.get(channel)?;
        self.channels.get(i as usize)
    }

    /// How far back (seconds) this viewer may watch `channel` in catch-up
    /// (SPEC §7.4): the channel's `dvr_depth`, capped by the largest
    /// `dvr_depth` of the user's packages that give the channel (a giving
    /// package without one does not cap). A channel not declared has no
    /// catch-up ([`NO_DVR`]). An anonymous viewer, or a user these
    /// entitlements do not list (vouched for by the route's auth method),
    /// gets the channel's depth. Asked only for archive requests, after
    /// [`Self::decide`] allowed the viewer.
    ///
    /// On a `device` with packages of its own, those packages cap it.
    pub fn dvr_depth(&self, user: Option<&str>, device: Option<&str>, channel: &str) -> u64 {
        let Some(declared) = self.declared(channel) else {
            return NO_DVR;
        };
        match user.and_then(|id| self.user(id)) {
            Some(u) => {
                // Asked after admission allowed the device.
                let combo = device
                    .and_then(|h| self.combo_on(u, h).ok())
                    .unwrap_or(u.combo);
                self.depth_on(&Viewer { user: u, combo }, declared)
            }
            None => declared.dvr_depth,
        }
    }

    /// [`Self::dvr_depth`] of a listed viewer on a declared channel.
    fn depth_on(&self, viewer: &Viewer<'_>, declared: &CompiledChannel) -> u64 {
        let mut cap: Option<u64> = Some(0);
        for pkg in self.granting(viewer, &declared.name, Some(declared)) {
            cap = match (cap, pkg.dvr_cap) {
                (None, _) | (_, None) => None,
                (Some(a), Some(b)) => Some(a.max(b)),
            };
        }
        cap.map_or(declared.dvr_depth, |c| c.min(declared.dvr_depth))
    }

    /// True when `channel` is declared with a catch-up depth: its playlists,
    /// live and archive, key segments by what they are
    /// ([`crate::hls::Encrypt::stable`]).
    pub fn has_catchup(&self, channel: &str) -> bool {
        self.declared(channel)
            .is_some_and(|c| c.dvr_depth != NO_DVR)
    }

    /// The declared channels in channel-list order.
    pub fn channels(&self) -> impl Iterator<Item = (&str, &Channel)> {
        self.channels.iter().map(|c| (&*c.name, &c.source))
    }

    /// The declared channel `name`, as given.
    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.declared(name).map(|c| &c.source)
    }
}
