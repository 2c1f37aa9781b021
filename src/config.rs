//! Configuration: parse the TOML file, resolve secrets, validate, and report
//! every problem at once with its key path (like `nginx -t`).
//!
//! [`raw`] mirrors the file (unknown keys are errors); [`Config`] is the
//! validated, typed result the rest of the proxy uses. Loading is pure apart
//! from reading the file, `env:`/`file:` secrets and TLS key files' existence;
//! certificates themselves are parsed by [`crate::tls`] when the runtime is built.

pub mod bind_ip;
pub mod raw;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::auth::AuthMethod;
pub use crate::secret::Secret;
pub use bind_ip::BindIp;

/// One problem found in a config file, with the dotted key path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path such as `route[1].origin` or `server.listen[0]`.
    pub path: String,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

/// Every problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}", e.path, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was loaded from (for reloads and relative paths); `None` for inline configs.
    pub source: Option<PathBuf>,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[admin]`.
    pub admin: AdminConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[ip]`.
    pub ip: IpConfig,
    /// `[[origin]]`, in file order.
    pub origins: Vec<OriginConfig>,
    /// `[[route]]`, in file order; a route's index is its id in the route table.
    pub routes: Vec<RouteConfig>,
    /// `[auth.*]` sections and `[[user]]`, compiled.
    pub auth: crate::auth::Schemes,
    /// `[[auth.backend]]` and `auth.backend_allow_default`.
    pub backend: BackendConfig,
    /// `[keys]`.
    pub keys: KeysConfig,
    /// `[sessions]`.
    pub sessions: SessionsConfig,
    /// `[cache]`.
    pub cache: CacheConfig,
    /// `[state] dir`: where the admin API's users, packages and blocklist
    /// persist (relative paths resolve against the config file's dir).
    pub state_dir: PathBuf,
    /// `[control_plane]`: pull sync; `None` = no control plane.
    pub control_plane: Option<ControlPlaneConfig>,
    /// Entitlements from `[[user]]` and `[[package]]` (packages, limits,
    /// networks, expiry; tokens and passwords stay with the `token` method).
    pub entitlements: crate::entitlements::Snapshot,
    /// `[channel_list]`: the per-user channel list; `None` when disabled
    /// or when no route can carry channels.
    pub channel_list: Option<ChannelListConfig>,
    /// `[rate_limit]`: per-address limits on entry requests and failed
    /// authentications.
    pub rate_limit: RateLimitConfig,
    /// `[backend_server]`: tollgate answering the Flussonic auth-backend
    /// protocol; `None` when off (the default).
    pub backend_server: Option<BackendServerConfig>,
}

/// `[backend_server]` (SPEC §8): `GET /tv/auth?name=&ip=&token=&…` on the
/// viewer listeners, answered from tollgate's own users, packages, devices,
/// regions, blocklist and session limits, for Flussonic's multiauth,
/// Nimble's playback authorization, or another tollgate's `backend` method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendServerConfig {
    /// The path it answers (default `/tv/auth`).
    pub path: String,
    /// Networks that may ask (the streaming servers; default loopback):
    /// the endpoint tells valid tokens from invalid ones, so nobody else
    /// may.
    pub allow: Vec<ipnet::IpNet>,
    /// `X-AuthDuration`: how often the asking server re-checks a session
    /// (each re-check keeps the session alive in tollgate's table, so it is
    /// shorter than `[sessions] idle_timeout`; default half of it, at most
    /// 30 s).
    pub auth_duration: Duration,
}

/// The session-table route name of sessions admitted through
/// `[backend_server]` (not a configured route: names there follow the id
/// rule, which has no `:`).
pub const BACKEND_SERVER_ROUTE: &str = "backend:tv_auth";

/// `[rate_limit]` (SPEC §8): token buckets per client address (an IPv6
/// client by its /64) for entry requests (credentials presented, no
/// capability yet: entry playlists and channel lists) and for failed
/// authentications; over either, 429 `rate_limited` with `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Off: nothing is counted.
    pub enabled: bool,
    /// Entry requests refilled per second and address; 0 = no entry limit.
    pub entry_per_second: u32,
    /// Entry requests an address may make at once.
    pub entry_burst: u32,
    /// Failed authentications refilled per minute and address; 0 = no limit.
    pub failed_per_minute: u32,
    /// Failed authentications an address may make at once.
    pub failed_burst: u32,
    /// Networks never limited (default: loopback, for local tools and
    /// health checks; a load balancer's viewers are limited by their own
    /// addresses through `trusted_proxies`).
    pub exempt: Vec<ipnet::IpNet>,
    /// Addresses tracked at most per bucket kind; beyond it (a flood from
    /// many addresses) new ones share one bucket until the idle ones are
    /// swept.
    pub max_addresses: usize,
}

/// `127.0.0.0/8` and `::1`: the default of `[rate_limit] exempt` and of
/// `[backend_server] allow`.
pub fn loopback() -> Vec<ipnet::IpNet> {
    vec![
        ipnet::IpNet::V4(ipnet::Ipv4Net::new_assert(
            std::net::Ipv4Addr::new(127, 0, 0, 0),
            8,
        )),
        ipnet::IpNet::V6(ipnet::Ipv6Net::new_assert(
            std::net::Ipv6Addr::LOCALHOST,
            128,
        )),
    ]
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            entry_per_second: 20,
            entry_burst: 200,
            failed_per_minute: 60,
            failed_burst: 30,
            exempt: loopback(),
            max_addresses: 100_000,
        }
    }
}

/// `[channel_list]` (SPEC §7.5).
#[derive(Debug, Clone)]
pub struct ChannelListConfig {
    /// Index into [`Config::routes`]: the route whose URLs the list gives
    /// (its prefix, the channel as the first segment after it).
    pub route: usize,
    /// The playlist each channel URL names: `index.m3u8`.
    pub file: String,
    /// `https://edge.example` (no path); `None`: the request's own scheme
    /// and `Host`.
    pub base_url: Option<String>,
}

/// `[keys]`.
#[derive(Debug, Clone)]
pub struct KeysConfig {
    /// The master secret capabilities, session ids and content keys derive
    /// from (docs/hls.md §3); `None` = a random one per process.
    pub master: Option<Secret>,
    /// Earlier masters (`[keys] previous`): what they signed (capabilities,
    /// segment and key tags) stays valid until it expires, with the
    /// content keys they derive, so a master is rolled without cutting a
    /// viewer (SPEC §7.6).
    pub previous: Vec<Secret>,
    /// Key period of the AES-128 content keys, aligned to media sequence numbers.
    pub rotate_every: Duration,
}

/// What the fleet store answers while Redis is unreachable or slow
/// (`[sessions] store_fail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Admit (limits are not enforced during the outage).
    Open,
    /// Refuse new sessions (`store_unavailable`).
    Closed,
}

/// `[sessions]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionsConfig {
    /// A session with no request for this long has ended.
    pub idle_timeout: Duration,
    /// Lifetime of a minted capability.
    pub capability_ttl: Duration,
    /// Query parameter carrying the capability.
    pub capability_param: String,
    /// Query parameter carrying segment tags: `capability_param` + `s`
    /// (`tgs` by default).
    pub tag_param: String,
    /// To which client addresses capabilities are bound.
    pub bind_ip: BindIp,
    /// Policy for users over their session limit: the session table's
    /// type, the one from the config to the fleet store.
    pub on_limit: crate::session::Policy,
    /// Where session limits are counted.
    pub store: SessionStore,
}

/// `[sessions] store`: where session limits are counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStore {
    /// This edge's memory only.
    Local,
    /// A Redis shared by a fleet of edges.
    Redis {
        /// `redis://…` or `rediss://…` (may carry a password: kept secret).
        url: Secret,
        /// What to answer while Redis is unreachable (`store_fail`).
        fail: FailMode,
        /// Bound on every Redis call.
        timeout: Duration,
        /// How often the edge's heartbeat carries its playing sessions to
        /// Redis (re-adding those Redis lost, learning those ended).
        heartbeat: Duration,
    },
}

impl SessionsConfig {
    /// When a capability minted at `now` expires (unix seconds); also how
    /// long an ended session's capability stays refused.
    ///
    /// `now + capability_ttl`, rounded up to a multiple of
    /// [`Self::capability_step`]: every reload of a playlist within one step
    /// gets the same capability (minting is deterministic), so its key URI
    /// stays the same and a player's key cache works. Without the rounding
    /// each reload seconds apart named a new key URI, and players fetched
    /// the key again on every reload: as many key requests as playlist
    /// requests.
    pub fn capability_expiry(&self, now: u64) -> u64 {
        let step = self.capability_step();
        now.saturating_add(self.capability_ttl.as_secs())
            .div_ceil(step)
            .saturating_mul(step)
    }

    /// How long one capability is handed out unchanged: an eighth of
    /// `capability_ttl`, between 1 s and 10 min (so a capability is always
    /// valid for at least its TTL and at most 9/8 of it).
    pub fn capability_step(&self) -> u64 {
        (self.capability_ttl.as_secs() / 8).clamp(1, 600)
    }
}

/// What a control plane speaks (`[control_plane] mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// tollgate's own JSON: usage report out, versioned full or delta
    /// snapshot plus deny list back (docs/control-plane.md).
    Tollgate,
    /// Nimble Streamer's pay-per-view push API, exactly: `PayPerViewInfo`
    /// out, `DenyList.ID` back, Signature/Solution mutual authorization.
    NimblePpv,
}

/// `[control_plane]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneConfig {
    /// Where the usage report is POSTed: `https://host[:port]/path`, or
    /// `http://` to a loopback host (or anywhere with `allow_http`).
    pub url: http::Uri,
    /// `ca`: PEM file of the CA certificates an `https` control plane is
    /// verified against (only these); `None` = the system's roots.
    pub ca: Option<PathBuf>,
    /// `tollgate`: sent as `Authorization: Bearer`; `nimble_ppv`: the push-API
    /// token of the Signature/Solution check.
    pub token: Secret,
    /// The protocol.
    pub mode: SyncMode,
    /// Time between two syncs.
    pub interval: Duration,
    /// Whole-exchange deadline (connect, report, answer).
    pub timeout: Duration,
    /// Longest wait between retries while the control plane fails.
    pub max_backoff: Duration,
    /// Largest answer body read (a full snapshot of a million users is
    /// ~150 MB).
    pub max_answer: usize,
    /// `/readyz` fails once the last good sync is older than this;
    /// `None` = the last good state serves however old it is.
    pub max_stale: Option<Duration>,
    /// This edge's name in reports; `None`: the host name, which the sync
    /// shell reads (`sync::edge_id`), so validation reads no machine state.
    pub edge_id: Option<String>,
}

/// `[cache]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Bytes of encrypted segments kept.
    pub segments: u64,
    /// How long an encrypted segment stays cached.
    pub segment_ttl: Duration,
    /// How long an origin playlist is reused (coalesced micro-cache).
    pub playlist_ttl: Duration,
    /// Largest origin playlist accepted, after decoding.
    pub max_playlist: usize,
    /// Largest segment (ciphertext bytes) a fill holds whole; a larger one
    /// streams through encryption in a bounded window and is not cached.
    pub max_segment: u64,
    /// Bytes all fills in flight may hold together; a fill that would go
    /// over streams instead (and waits for room when even that is full).
    pub max_fill_bytes: u64,
    /// Keep a cached segment in a memory file too (written when a plain
    /// HTTP/1.x viewer first hits it) and send it to such viewers with
    /// `sendfile` (no user-space copy); with it on, every entry weighs twice
    /// its ciphertext against `segments`. Read at start, like the cache sizes.
    pub zero_copy: bool,
}

/// The `backend` auth method's settings (`[[auth.backend]]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendConfig {
    /// Backends asked in parallel, in file order; empty = method unusable.
    pub backends: Vec<BackendEndpoint>,
    /// `auth.backend_allow_default`: allow new viewers when every backend
    /// is unreachable (Flussonic's `allow default`).
    pub allow_default: bool,
}

/// `[[auth.backend]]`: one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendEndpoint {
    /// `http://host:port/path[?query]`; the look-up query is appended.
    pub url: http::Uri,
    /// Whole-answer deadline (connect + response head + body); past it the
    /// backend counts as unavailable.
    pub timeout: Duration,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Plain HTTP listeners (HTTP/1.1 and h2c on each).
    pub listen: Vec<SocketAddr>,
    /// HTTPS listeners.
    pub tls: Vec<TlsListenerConfig>,
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// A connection must deliver its first whole request head (TLS
    /// handshake and h2 preface included) within this time of accept.
    pub header_read_timeout: Duration,
    /// A keep-alive or HTTP/2 connection with no request in flight is
    /// closed (h2: GOAWAY) after this long.
    pub idle_timeout: Duration,
    /// A connection whose writes make no progress for this long is closed,
    /// whether a request is in flight or not (nginx `send_timeout`).
    pub send_timeout: Duration,
    /// Largest request head (request line + headers) accepted; larger gets 431.
    pub max_header_bytes: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
    /// Longest request target (path + query) accepted; longer gets 414.
    pub max_uri_bytes: usize,
    /// Most viewer connections open at once across all listeners.
    pub max_connections: usize,
    /// Most viewer connections open at once from one client address; 0 = no cap.
    pub max_connections_per_ip: usize,
    /// How long SIGTERM waits for in-flight responses before exiting.
    pub shutdown_grace: Duration,
}

/// `[[server.tls]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListenerConfig {
    /// Address to bind.
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `[admin]`.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Admin listener (`/metrics`, health, `/api/v1/*`); `None` disables it.
    pub listen: Option<SocketAddr>,
    /// Bearer token for `/api/v1/*`; without one the API answers 401 to everyone.
    pub token: Option<Secret>,
    /// Most admin connections open at once (the viewer timers apply too).
    pub max_connections: usize,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Write one JSON access-log line per request.
    pub access: bool,
}

/// `[ip]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpConfig {
    /// Networks that pass the `ip` method without credentials.
    pub allow: Vec<IpNet>,
    /// Networks refused on every route whatever they carry.
    pub deny: Vec<IpNet>,
}

/// `[[origin]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginConfig {
    /// Name routes refer to.
    pub name: String,
    /// Base URL, `http://host:port[/base/path]`.
    pub url: http::Uri,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Time from sending the request to receiving the response head.
    pub first_byte_timeout: Duration,
    /// Longest pause between two body chunks before the response is aborted.
    pub idle_timeout: Duration,
    /// Whole-fetch deadline: request sent to the last body byte (head and
    /// body); past it the fetch fails (504 before the head, aborted after).
    pub total_timeout: Duration,
    /// Idle keep-alive connections are closed after this long.
    pub pool_idle_timeout: Duration,
    /// Most idle keep-alive connections kept to this origin.
    pub pool_max_idle: usize,
}

/// `[[route]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Name used in logs and metrics.
    pub name: String,
    /// Path prefix matched against the normalized request path.
    pub prefix: String,
    /// Index into [`Config::origins`].
    pub origin: usize,
    /// Which path segment after the prefix names the channel (1 = first).
    pub channel: usize,
    /// Authentication methods tried in order.
    pub auth: Vec<AuthMethod>,
    /// Inject `EXT-X-KEY` and encrypt segments (AES-128).
    pub encrypt: bool,
    /// Flussonic's archive forms in the last path segment are catch-up
    /// requests, checked against the viewer's depth (SPEC §7.4); `false`
    /// for an origin without an archive whose playlists merely look like
    /// them.
    pub catchup: bool,
    /// `kind = "mpegts"`: continuous MPEG-TS over one long response
    /// (Flussonic's and Astra's `/CHANNEL/mpegts`): every request is an
    /// entry, the session lives as long as the response, and a kick, a
    /// block or an expiry ends it (SPEC §8). Default `"hls"`.
    pub mpegts: bool,
}

impl Config {
    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                path: path.display().to_string(),
                message: format!("cannot read config file: {e}"),
            }])
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = Self::parse(&text, base)?;
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// Parse and validate config text; relative paths resolve against
    /// `base_dir`. Every error is reported at once, each with its key path:
    /// shape errors (unknown keys, wrong types) and then, on what is left
    /// once those keys are taken out, validation errors.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Self, ConfigErrors> {
        let (raw, mut errors) = shape::read(text);
        let Some(raw) = raw else {
            return Err(ConfigErrors(errors));
        };
        match validate::validate(raw, base_dir) {
            Ok(config) if errors.is_empty() => Ok(config),
            Ok(_) => Err(ConfigErrors(errors)),
            Err(more) => {
                errors.extend(more.0);
                Err(ConfigErrors(errors))
            }
        }
    }
}

mod shape;
mod validate;

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(ttl: u64) -> SessionsConfig {
        let mut c = Config::parse(
            "[[origin]]\nname = \"o\"\nurl = \"http://127.0.0.1:1\"\n\
             [[route]]\nname = \"r\"\nprefix = \"/\"\norigin = \"o\"\nauth = [\"ip\"]\n",
            Path::new("."),
        )
        .expect("config")
        .sessions;
        c.capability_ttl = Duration::from_secs(ttl);
        c
    }

    /// A syntax error without a message of its own (found by
    /// fuzz/config_toml: a control character in a comment) is reported with
    /// its place, not as an empty message.
    #[test]
    fn syntax_error_always_has_a_message() {
        let errors = Config::parse("# ok\n# bad \u{1} byte\n", Path::new(".")).unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].message, "invalid TOML at line 2, column 7");
    }

    /// Expiry is at least the TTL away, less than a step more, and the same
    /// for every `now` within one step (so reloads reuse one capability).
    #[test]
    fn capability_expiry_is_stepped() {
        let c = sessions(12 * 3600);
        assert_eq!(c.capability_step(), 600);
        for now in [0, 1, 599, 600, 1_763_000_123] {
            let e = c.capability_expiry(now);
            assert!(
                e >= now + 12 * 3600 && e < now + 12 * 3600 + 600,
                "{now}: {e}"
            );
            assert_eq!(e % 600, 0);
        }
        // 1_000_200 + 12 h is a multiple of 600: the step is (…200, …800].
        assert_eq!(
            c.capability_expiry(1_000_201),
            c.capability_expiry(1_000_800)
        );
        assert_ne!(
            c.capability_expiry(1_000_800),
            c.capability_expiry(1_000_801)
        );
        // Short TTLs (tests, tight setups) are exact to the second.
        let short = sessions(3);
        assert_eq!(short.capability_step(), 1);
        assert_eq!(short.capability_expiry(100), 103);
        assert_eq!(sessions(80).capability_step(), 10);
        assert_eq!(sessions(3600).capability_expiry(u64::MAX), u64::MAX);
    }
}
