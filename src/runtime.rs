//! The live state of a running proxy and how it changes.
//!
//! [`Live`] is one immutable generation built from a [`Config`]: compiled
//! route table, auth tables, origin pools, TLS configs. [`Shared`] holds the
//! current generation in an `ArcSwap`, so a request does one atomic load and
//! never takes a lock; a reload builds a whole new generation and swaps it in,
//! or keeps the old one if anything fails (an operator's typo never takes the
//! edge down).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use crate::auth::Authenticator;
use crate::auth::backend::client::BackendClient;
use crate::capability::MasterKeys;
use crate::clock::Clock;
use crate::config::{Config, ConfigError, ConfigErrors};
use crate::credentials::CredentialParams;
use crate::error::ProxyError;
use crate::incarnation::Incarnations;
use crate::ipnet_set::IpNetSet;
use crate::metrics::{Metrics, ResultLabel};
use crate::origin::Origin;
use crate::playlist_cache::PlaylistCache;
use crate::revocation::Revocations;
use crate::router::{RouteSpec, RouteTable};
use crate::segcache::SegmentCache;
use crate::session::Sessions;

pub mod fleet_agent;
mod keys;
mod revoke;

pub use keys::RotationFailed;

pub use crate::store::{ChangeError, EntitlementStore};

/// One generation of compiled configuration.
#[derive(Debug)]
pub struct Live {
    /// The config this generation was built from.
    pub config: Config,
    /// Route table; route id = index into `config.routes`.
    pub routes: RouteTable,
    /// Origin pools; index = `RouteConfig::origin`.
    pub origins: Vec<Arc<Origin>>,
    /// Authentication tables.
    pub auth: Authenticator,
    /// The `backend` method's client and session caches (`None` without
    /// `[[auth.backend]]`); kept across reloads when unchanged.
    pub backend: Option<Arc<BackendClient>>,
    /// `server.trusted_proxies`, compiled.
    pub trusted_proxies: IpNetSet,
    /// Query parameters stripped before forwarding and logging.
    pub credentials: CredentialParams,
    /// TLS config per `[[server.tls]]` entry, same order as the listeners.
    pub tls: Vec<Arc<rustls::ServerConfig>>,
    /// Sub-keys derived from `[keys] master` (or the process's random one).
    pub keys: MasterKeys,
    /// Sub-keys of every `[keys] previous` master, newest first.
    pub previous_keys: Vec<MasterKeys>,
    /// The random master used when `[keys] master` is absent; kept across
    /// reloads so capabilities stay valid.
    fallback_master: Arc<[u8; 32]>,
    /// Compiled origin playlists (micro-cache); rebuilt on reload because a
    /// template depends on the route's settings.
    pub playlists: PlaylistCache,
    /// `[rate_limit]`'s buckets; kept across reloads when unchanged.
    pub rate_limits: Arc<crate::ratelimit::RateLimits>,
    /// `[backend_server] allow`, compiled (empty when it is off).
    pub backend_server_allow: IpNetSet,
}

impl Live {
    /// Compile `config`, reusing unchanged origin pools from `previous`.
    /// Loading certificates is part of this, so `tollgate check` catches bad ones.
    pub fn build(config: Config, previous: Option<&Live>) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        let mut tls = Vec::new();
        for (i, t) in config.server.tls.iter().enumerate() {
            // Listeners stay bound across reloads; only certificates change.
            match crate::tls::server_config(&t.cert, &t.key) {
                Ok(c) => tls.push(c),
                Err(message) => errors.push(ConfigError {
                    path: format!("server.tls[{i}]"),
                    message,
                }),
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let old: &[Arc<Origin>] = previous.map_or(&[], |p| &p.origins);
        let origins = config
            .origins
            .iter()
            .map(|o| Origin::reuse_or_new(o, old))
            .collect();
        let specs: Vec<RouteSpec> = config
            .routes
            .iter()
            .map(|r| RouteSpec {
                prefix: r.prefix.clone(),
                channel: r.channel,
            })
            .collect();
        let credentials = CredentialParams::new(
            crate::auth::ALL_METHODS
                .iter()
                .filter_map(|m| config.auth.get(*m))
                .flat_map(|s| s.params())
                // The device method's, when a route lists it (`ts` and
                // `sig` are common names an origin may use itself).
                .chain(
                    config
                        .routes
                        .iter()
                        .any(|r| r.auth.contains(&crate::auth::AuthMethod::Device))
                        .then_some(crate::auth::device::PARAMS.map(str::to_owned))
                        .into_iter()
                        .flatten(),
                )
                .chain([
                    config.sessions.capability_param.clone(),
                    config.sessions.tag_param.clone(),
                    // Delta updates are off (docs/hls.md §6): never ask the origin for one.
                    "_HLS_skip".to_owned(),
                ]),
        );
        let backend =
            BackendClient::reuse_or_new(&config.backend, previous.and_then(|p| p.backend.as_ref()));
        let fallback_master = match previous {
            Some(p) => p.fallback_master.clone(),
            None => Arc::new(random_master()?),
        };
        let keys = match &config.keys.master {
            Some(secret) => {
                let bytes =
                    crate::capability::parse_master(secret.expose()).map_err(|message| {
                        ConfigErrors(vec![ConfigError {
                            path: "keys.master".into(),
                            message,
                        }])
                    })?;
                MasterKeys::new(&bytes)
            }
            None => MasterKeys::new(&fallback_master[..]),
        };
        let previous_keys = config
            .keys
            .previous
            .iter()
            .filter_map(|s| crate::capability::parse_master(s.expose()).ok())
            .map(|bytes| MasterKeys::new(&bytes))
            .collect();
        let rate_limits = crate::ratelimit::RateLimits::reuse_or_new(
            &config.rate_limit,
            previous.map(|p| &p.rate_limits),
        );
        let backend_server_allow = IpNetSet::new(
            config
                .backend_server
                .as_ref()
                .map_or(&[][..], |b| b.allow.as_slice()),
        );
        Ok(Self {
            rate_limits,
            backend_server_allow,
            keys,
            previous_keys,
            fallback_master,
            playlists: PlaylistCache::new(config.cache.playlist_ttl),
            backend,
            credentials,
            routes: RouteTable::new(&specs),
            origins,
            auth: Authenticator::new(&config.ip.allow, &config.ip.deny, config.auth.clone()),
            trusted_proxies: IpNetSet::new(&config.server.trusted_proxies),
            tls,
            config,
        })
    }

    /// `check` with the current master's keys, then with each earlier
    /// one's (`[keys] previous`): the first success and the keys that gave
    /// it (what a capability or tag was signed with also derives its
    /// content keys), or the current master's error. Without earlier
    /// masters, one call.
    pub fn verify_with<T, E>(
        &self,
        check: impl Fn(&MasterKeys) -> Result<T, E>,
    ) -> Result<(T, &MasterKeys), E> {
        match check(&self.keys) {
            Ok(v) => Ok((v, &self.keys)),
            Err(e) => self
                .previous_keys
                .iter()
                .find_map(|k| check(k).ok().map(|v| (v, k)))
                .ok_or(e),
        }
    }

    /// The TLS config for the `index`-th HTTPS listener.
    pub fn tls_for(&self, index: usize) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.get(index).cloned()
    }
}

/// 32 random bytes for a process-local master secret.
fn random_master() -> Result<[u8; 32], ConfigErrors> {
    use aws_lc_rs::rand::SecureRandom;
    let mut out = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| {
            ConfigErrors(vec![ConfigError {
                path: "keys.master".into(),
                message: "no system randomness for a process-local master; set [keys] master"
                    .into(),
            }])
        })?;
    Ok(out)
}

/// The fleet store the config names (validation already checked the URL).
fn fleet_store(config: &Config) -> Option<crate::fleet::FleetStore> {
    let crate::config::SessionStore::Redis {
        url, fail, timeout, ..
    } = &config.sessions.store
    else {
        return None;
    };
    let mut opts = crate::fleet::FleetOptions::new(config.sessions.idle_timeout);
    opts.fail = *fail;
    opts.op_timeout = *timeout;
    // An ended marker must outlive every capability minted before the end:
    // those expire at most a TTL plus one step later (capability_expiry).
    let sessions = &config.sessions;
    opts.ended_ttl = (sessions.capability_ttl
        + std::time::Duration::from_secs(sessions.capability_step()))
    .max(sessions.idle_timeout);
    match crate::fleet::FleetStore::new(url.expose(), opts) {
        Ok(store) => Some(store),
        Err(e) => {
            tracing::error!(error = %e, "session store unusable; limits are per edge");
            None
        }
    }
}

/// State shared by every connection and the admin listener: a composition
/// of narrow handles, each owning one concern.
#[derive(Debug)]
pub struct Shared {
    live: ArcSwap<Live>,
    /// All metrics.
    pub metrics: Metrics,
    draining: AtomicBool,
    /// Live viewer sessions (kept across reloads).
    pub sessions: Sessions,
    /// Stream incarnations (kept across reloads).
    pub incarnations: Incarnations,
    /// Encrypted segments (sized at start; a reload keeps it).
    pub segments: SegmentCache,
    /// The fleet's shared session store (`sessions.store = "redis://…"`;
    /// fixed at start).
    pub fleet: Option<crate::fleet::FleetStore>,
    /// Who may watch what: the config's entitlements, the admin API's and
    /// the control plane's layer over them (persisted in the state dir),
    /// and the control plane's deny list. Every published change runs the
    /// revocation sweep ([`Self::after_state_change`]).
    pub store: EntitlementStore,
    /// Pull sync's state and health (`[control_plane]`).
    pub sync: crate::sync::status::Status,
    /// Unix seconds for every TTL, idle and expiry decision.
    pub clock: Clock,
    /// Revoked sessions and what admitted each session; persisted in the
    /// state dir ([`crate::revocation::FILE_NAME`]).
    pub revocations: Revocations,
    /// Held while the revocation file is written, so saves apply in order.
    revocation_writer: std::sync::Mutex<()>,
    /// Content-key generations (`POST /api/v1/keys/rotate`); persisted in
    /// the state dir ([`crate::rotation::FILE_NAME`]).
    pub rotations: ArcSwap<crate::rotation::Rotations>,
    /// Held while a rotation is applied and saved.
    rotation_writer: std::sync::Mutex<()>,
    /// The first plain-HTTP viewer listener's bound address (else the
    /// first HTTPS one's), for links the console signs.
    viewer_addr: std::sync::OnceLock<(bool, std::net::SocketAddr)>,
}

impl Shared {
    /// A viewer listener is bound at `addr` (`https`: a TLS one); the first
    /// noted wins (the server notes the plain ones before the TLS ones).
    pub fn note_viewer_addr(&self, https: bool, addr: std::net::SocketAddr) {
        let _ = self.viewer_addr.set((https, addr));
    }

    /// `http://addr` (or `https://`) of a viewer listener, when one is bound.
    pub fn viewer_base(&self) -> Option<String> {
        let (https, addr) = self.viewer_addr.get()?;
        Some(format!(
            "{}://{addr}",
            if *https { "https" } else { "http" }
        ))
    }

    /// `[rate_limit]` for an entry request from `ip`, before its
    /// credentials are looked at (counted in `tollgate_rate_limited_total`).
    /// `named`: the address came from a caller (a `/tv/auth` ask), not
    /// from the connection: `[rate_limit] exempt` does not cover it.
    pub fn rate_limit_entry(
        &self,
        live: &Live,
        ip: std::net::IpAddr,
        named: bool,
    ) -> Result<(), ProxyError> {
        live.rate_limits.entry(ip, !named).map_err(|(kind, e)| {
            self.metrics
                .rate_limited
                .get_or_create(&crate::metrics::KindLabel {
                    kind: kind.as_str(),
                })
                .inc();
            e
        })
    }

    /// After an entry request's authentication: a failure takes one of the
    /// address's failed-authentication cells.
    pub fn rate_limit_outcome<T>(
        &self,
        live: &Live,
        ip: std::net::IpAddr,
        named: bool,
        r: &Result<T, ProxyError>,
    ) {
        if matches!(r, Err(ProxyError::Forbidden | ProxyError::Expired)) {
            live.rate_limits.failed(ip, !named);
        }
    }

    /// Start serving generation `live`.
    pub fn new(live: Live, metrics: Metrics, clock: Clock) -> Arc<Self> {
        let c = &live.config.cache;
        let segments = SegmentCache::new(c.segments, c.segment_ttl, (c.segments / 8).max(1 << 20))
            .with_fill_limits(c.max_segment, c.max_fill_bytes)
            // Files serve only plain listeners: an https-only edge keeps its
            // cache at one weight per segment.
            .with_zero_copy(c.zero_copy && !live.config.server.listen.is_empty());
        if live.config.keys.master.is_none() {
            tracing::warn!(
                "no [keys] master: using a random one; capabilities this edge mints are \
                 not accepted by other edges or after a restart"
            );
        }
        let fleet = fleet_store(&live.config);
        Arc::new_cyclic(|me: &std::sync::Weak<Self>| {
            let me = me.clone();
            let store = EntitlementStore::new(&live.config, move || {
                if let Some(shared) = me.upgrade() {
                    shared.after_state_change();
                }
            });
            Self {
                fleet,
                store,
                sync: crate::sync::status::Status::default(),
                clock,
                revocations: Revocations::default(),
                revocation_writer: std::sync::Mutex::new(()),
                rotations: ArcSwap::from_pointee(crate::rotation::Rotations::default()),
                rotation_writer: std::sync::Mutex::new(()),
                viewer_addr: std::sync::OnceLock::new(),
                live: ArcSwap::from_pointee(live),
                metrics,
                draining: AtomicBool::new(false),
                sessions: Sessions::new(),
                incarnations: Incarnations::default(),
                segments,
            }
        })
    }

    /// End session `id` now, on this edge and in the fleet store (which
    /// tells every other edge at once); its capability
    /// stays refused until it would have expired. True if it was live here.
    /// Call from within the runtime (the fleet call is spawned).
    pub fn end_session(&self, id: u64, user: Option<&str>) -> bool {
        if let Some(store) = self.fleet.clone() {
            let user = user.map(str::to_owned);
            tokio::spawn(async move {
                if let Err(e) = store.end(id, user.as_deref()).await {
                    tracing::warn!(error = %e, "session end not recorded in the fleet store");
                }
            });
        }
        let now = self.clock.now();
        let until = self.live().config.sessions.capability_expiry(now);
        let was_live = self.sessions.end(id, until);
        if was_live {
            // Durable: the capability stays refused after a restart too
            // (the caller saves with [`Self::save_revocations`]).
            self.revocations
                .revoke(id, until, crate::revocation::Reason::Ended, now);
        }
        was_live
    }

    /// Drop session `id` of `user` without a tombstone, here and in the
    /// fleet (awaited: the slot is free when this returns, or the store
    /// failed and its own expiry frees it): its viewer was just refused (not
    /// entitled, blocked, …), so it holds no `max_sessions` slot; allowed
    /// again, it is a new session.
    pub async fn release_session(&self, id: u64, user: Option<&str>) {
        if !self.sessions.forget(id) {
            return;
        }
        self.metrics
            .sessions
            .set(i64::try_from(self.sessions.len()).unwrap_or(i64::MAX));
        if let (Some(store), Some(user)) = (self.fleet.as_ref(), user)
            && let Err(e) = store.release(id, user).await
        {
            tracing::warn!(error = %e, "session release not recorded in the fleet store");
        }
    }

    /// End every live session of `user` on this edge (and in the fleet).
    pub fn end_user_sessions(&self, user: &str) {
        for id in self.sessions.user_sessions(user) {
            self.end_session(id, Some(user));
        }
    }

    /// The current generation (one atomic load; hold it for one request).
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// True once a drain started: `/readyz` answers 503.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Mark the proxy as draining.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Re-read the config file this generation came from and swap in the new
    /// generation; on any error keep the current one, count the failure and
    /// return the errors.
    pub fn reload(&self) -> Result<(), ConfigErrors> {
        let current = self.live();
        let result = match current.config.source.as_deref() {
            Some(path) => self.reload_from(path, &current),
            None => Err(ConfigErrors(vec![ConfigError {
                path: "(config)".into(),
                message: "this config was not loaded from a file; nothing to reload".into(),
            }])),
        };
        let label = if result.is_ok() { "success" } else { "failure" };
        self.metrics
            .config_reloads
            .get_or_create(&ResultLabel { result: label })
            .inc();
        result
    }

    fn reload_from(&self, path: &Path, current: &Live) -> Result<(), ConfigErrors> {
        let config = Config::load(path)?;
        let live = Live::build(config, Some(current))?;
        let ignored = restart_only_changes(&current.config, &live.config);
        // The new config's users and packages with the API's on top; no
        // API change in between; the new generation goes live with them.
        let live = Arc::new(live);
        self.store
            .rebase(&live.config, || self.live.store(Arc::clone(&live)))
            .map_err(|e| {
                ConfigErrors(vec![match e {
                    ChangeError::Storage(message) => ConfigError {
                        path: "(state)".into(),
                        message,
                    },
                    e => ConfigError {
                        path: "user/package".into(),
                        message: format!("with the admin API's state: {e:?}"),
                    },
                }])
            })?;
        if !ignored.is_empty() {
            tracing::warn!(
                keys = ignored.join(", "),
                "these settings changed but only take effect after a restart"
            );
        }
        Ok(())
    }
}

/// Keys whose sockets or sizes are fixed when the server starts: a reload
/// applies everything else and names these so the operator is not surprised.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let tls_addrs = |c: &Config| c.server.tls.iter().map(|t| t.listen).collect::<Vec<_>>();
    [
        ("server.listen", old.server.listen != new.server.listen),
        ("server.tls[].listen", tls_addrs(old) != tls_addrs(new)),
        ("admin.listen", old.admin.listen != new.admin.listen),
        ("cache.segments", old.cache.segments != new.cache.segments),
        (
            "cache.zero_copy",
            old.cache.zero_copy != new.cache.zero_copy,
        ),
        ("sessions.store", old.sessions.store != new.sessions.store),
        (
            "cache.segment_ttl",
            old.cache.segment_ttl != new.cache.segment_ttl,
        ),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}
