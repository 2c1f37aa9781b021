//! The config file exactly as written: serde structs with `deny_unknown_fields`.
//!
//! Values that need checking (addresses, durations, sizes, CIDRs, secrets) stay
//! strings here so that `super::validate` can report every bad value at once,
//! each with its key path, instead of stopping at the first.

use serde::Deserialize;

use crate::secret::{RawSecret, RawSecretUrl};

/// Top level of `tollgate.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub ip: RawIp,
    #[serde(default)]
    pub origin: Vec<RawOrigin>,
    #[serde(default)]
    pub route: Vec<RawRoute>,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub user: Vec<crate::auth::token::RawUser>,
    #[serde(default)]
    pub package: Vec<RawPackage>,
    #[serde(default)]
    pub channel: Vec<RawChannel>,
    #[serde(default)]
    pub device: Vec<RawDevice>,
    #[serde(default)]
    pub state: RawState,
    #[serde(default)]
    pub keys: RawKeys,
    #[serde(default)]
    pub sessions: RawSessions,
    #[serde(default)]
    pub cache: RawCache,
    pub control_plane: Option<RawControlPlane>,
    #[serde(default)]
    pub channel_list: RawChannelList,
    #[serde(default)]
    pub rate_limit: RawRateLimit,
    pub backend_server: Option<RawBackendServer>,
}

/// `[backend_server]` (SPEC §8).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackendServer {
    pub enabled: Option<bool>,
    pub path: Option<String>,
    pub allow: Option<Vec<String>>,
    pub auth_duration: Option<String>,
}

/// `[rate_limit]` (SPEC §8).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub enabled: Option<bool>,
    pub entry_per_second: Option<u32>,
    pub entry_burst: Option<u32>,
    pub failed_per_minute: Option<u32>,
    pub failed_burst: Option<u32>,
    pub exempt: Option<Vec<String>>,
    pub max_addresses: Option<usize>,
}

/// `[channel_list]`: `GET /playlist.m3u8?token=` (SPEC §7.5).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChannelList {
    pub enabled: Option<bool>,
    pub route: Option<String>,
    pub file: Option<String>,
    pub base_url: Option<String>,
}

/// `[control_plane]`: pull sync with a control plane (docs/control-plane.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawControlPlane {
    pub url: String,
    pub token: Option<RawSecret>,
    pub mode: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub max_backoff: Option<String>,
    pub max_answer: Option<String>,
    pub max_stale: Option<String>,
    pub edge_id: Option<String>,
    pub ca: Option<String>,
    pub allow_http: Option<bool>,
}

/// `[state]`: where what the admin API and the control plane set is kept.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub dir: Option<String>,
}

/// `[[package]]`: channels sold together.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPackage {
    pub name: String,
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub dvr_depth: Option<String>,
}

/// `[[channel]]`: a channel as channel lists show it, its tags and its
/// catch-up depth (SPEC §7.1).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChannel {
    pub name: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub logo: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub dvr_depth: Option<String>,
    #[serde(default)]
    pub regions: Vec<String>,
}

/// `[[device]]`: a set-top box or app install of a user (SPEC §7.3).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevice {
    pub hwid: String,
    pub user: String,
    #[serde(default)]
    pub packages: Vec<String>,
    #[serde(default)]
    pub disabled: bool,
}

/// `[keys]`: the master secret everything per-session and per-stream derives from.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeys {
    pub master: Option<RawSecret>,
    #[serde(default)]
    pub previous: Vec<RawSecret>,
    pub rotate_every: Option<String>,
}

/// `[sessions]`: viewer sessions and their capabilities.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSessions {
    pub idle_timeout: Option<String>,
    pub capability_ttl: Option<String>,
    pub capability_param: Option<String>,
    pub bind_ip: Option<super::bind_ip::RawBindIp>,
    pub on_limit: Option<String>,
    pub store: Option<RawSecretUrl>,
    pub store_fail: Option<String>,
    pub store_timeout: Option<String>,
    pub store_heartbeat: Option<String>,
}

/// `[cache]`: the encrypted-segment cache and the playlist micro-cache.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub segments: Option<String>,
    pub segment_ttl: Option<String>,
    pub playlist_ttl: Option<String>,
    pub max_playlist: Option<String>,
    pub max_segment: Option<String>,
    pub max_fill_bytes: Option<String>,
    pub zero_copy: Option<bool>,
}

/// `[auth.*]`: one optional section per signature scheme.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub secure_link: Option<crate::auth::secure_link::RawConfig>,
    pub wmsauth: Option<crate::auth::wmsauth::RawConfig>,
    pub wowza: Option<crate::auth::wowza::RawConfig>,
    pub akamai: Option<crate::auth::akamai::RawConfig>,
    pub cesbo: Option<crate::auth::cesbo::RawConfig>,
    /// `[auth.device]`: the `device` method's tolerance and auto-registration.
    pub device: Option<crate::auth::device::RawConfig>,
    /// `[[auth.backend]]`: Flussonic-compatible HTTP backends, asked in parallel.
    #[serde(default)]
    pub backend: Vec<RawBackend>,
    /// Let new viewers in when every backend is unreachable (Flussonic's
    /// `allow default`); default false.
    pub backend_allow_default: Option<bool>,
}

/// `[[auth.backend]]`: one authorization backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub url: String,
    pub timeout: Option<String>,
}

/// `[server]`: viewer-facing listeners and their limits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<Vec<String>>,
    #[serde(default)]
    pub tls: Vec<RawTls>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    pub header_read_timeout: Option<String>,
    pub max_header_bytes: Option<String>,
    pub max_headers: Option<usize>,
    pub max_uri_bytes: Option<String>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub idle_timeout: Option<String>,
    pub send_timeout: Option<String>,
    pub shutdown_grace: Option<String>,
}

/// `[[server.tls]]`: one HTTPS listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub listen: String,
    pub cert: String,
    pub key: String,
}

/// `[admin]`: the operator's listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<String>,
    pub token: Option<RawSecret>,
    pub max_connections: Option<usize>,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub access: Option<bool>,
}

/// `[ip]`: networks allowed without credentials / refused whatever they carry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIp {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

/// `[[origin]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrigin {
    pub name: String,
    pub url: String,
    pub connect_timeout: Option<String>,
    pub first_byte_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub total_timeout: Option<String>,
    pub pool_idle_timeout: Option<String>,
    pub pool_max_idle: Option<usize>,
}

/// `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: String,
    pub prefix: String,
    pub origin: String,
    pub channel: Option<usize>,
    pub auth: Vec<String>,
    pub encrypt: Option<bool>,
    pub catchup: Option<bool>,
    pub kind: Option<String>,
}
