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
use crate::auth_backend::BackendClient;
use crate::capability::MasterKeys;
use crate::config::{Config, ConfigError, ConfigErrors};
use crate::credentials::CredentialParams;
use crate::entitlements::{Entitlements, Snapshot};
use crate::incarnation::Incarnations;
use crate::ipnet_set::IpNetSet;
use crate::metrics::{Metrics, ResultLabel};
use crate::origin::Origin;
use crate::playlist::PlaylistCache;
use crate::router::{RouteSpec, RouteTable};
use crate::segcache::SegmentCache;
use crate::session::Sessions;

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
    /// The random master used when `[keys] master` is absent; kept across
    /// reloads so capabilities stay valid.
    fallback_master: Arc<[u8; 32]>,
    /// Compiled origin playlists (micro-cache); rebuilt on reload because a
    /// template depends on the route's settings.
    pub playlists: PlaylistCache,
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
        Ok(Self {
            keys,
            fallback_master,
            playlists: PlaylistCache::new(config.cache.playlist_ttl),
            backend,
            credentials,
            routes: RouteTable::new(&specs),
            origins,
            auth: Authenticator::new(&config.ip, config.auth.clone()),
            trusted_proxies: IpNetSet::new(&config.server.trusted_proxies),
            tls,
            config,
        })
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

/// Unix seconds now (the shell's one clock read for session bookkeeping).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The fleet store the config names (validation already checked the URL).
fn fleet_store(config: &Config) -> Option<crate::fleet::FleetStore> {
    let crate::config::SessionStore::Redis {
        url,
        fail_open,
        timeout,
    } = &config.sessions.store
    else {
        return None;
    };
    let mut opts = crate::fleet::FleetOptions::new(config.sessions.idle_timeout);
    opts.fail = if *fail_open {
        crate::fleet::FailMode::Open
    } else {
        crate::fleet::FailMode::Closed
    };
    opts.op_timeout = *timeout;
    opts.ended_ttl = config
        .sessions
        .capability_ttl
        .max(config.sessions.idle_timeout);
    match crate::fleet::FleetStore::new(url.expose(), opts) {
        Ok(store) => Some(store),
        Err(e) => {
            tracing::error!(error = %e, "session store unusable; limits are per edge");
            None
        }
    }
}

/// State shared by every connection and the admin listener.
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
    /// What the admin API (and later the control plane) set; persisted in
    /// the state dir. Writers hold the lock for a whole change.
    api_state: std::sync::Mutex<Snapshot>,
    /// The effective entitlements: the config's `[[user]]`/`[[package]]`
    /// overlaid by `api_state`. One atomic load per request.
    entitlements: ArcSwap<Entitlements>,
    /// The control plane's deny list, a blocklist-only layer asked on
    /// every request next to `entitlements` (replaced whole by a sync).
    deny: ArcSwap<Entitlements>,
    /// Pull sync's state and health (`[control_plane]`).
    pub sync: crate::sync::Status,
}

/// Why an admin change was not applied (nothing changed).
#[derive(Debug)]
pub enum ChangeError {
    /// The result would not validate: every problem, with its path.
    Invalid(Vec<String>),
    /// Not found (a GET or DELETE of something absent).
    NotFound,
    /// The state dir could not be written; the old state stays.
    Storage(String),
}

/// The config's entitlements overlaid by the API's: users and packages by
/// name (the API wins), blocklists joined.
pub fn merged(config: &Snapshot, api: &Snapshot) -> Snapshot {
    let mut out = config.clone();
    // Linear, not one `insert` per user: a bulk load has a million.
    let overridden: std::collections::HashSet<&str> = api.users.iter().map(|(id, _)| id).collect();
    out.users
        .0
        .retain(|(id, _)| !overridden.contains(id.as_str()));
    out.users.0.extend(api.users.0.iter().cloned());
    for (name, package) in &api.packages {
        out.packages.insert(name.clone(), package.clone());
    }
    out.blocklist
        .users
        .extend(api.blocklist.users.iter().cloned());
    out.blocklist
        .tokens
        .extend(api.blocklist.tokens.iter().cloned());
    out.blocklist.ips.extend(api.blocklist.ips.iter().cloned());
    out
}

fn build_effective(config: &Config, api: &Snapshot) -> Result<Entitlements, ChangeError> {
    Entitlements::build(merged(&config.entitlements, api)).map_err(|e| {
        ChangeError::Invalid(
            e.problems()
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect(),
        )
    })
}

impl Shared {
    /// Start serving generation `live`.
    pub fn new(live: Live, metrics: Metrics) -> Self {
        let c = &live.config.cache;
        let segments = SegmentCache::new(c.segments, c.segment_ttl, (c.segments / 8).max(1 << 20));
        if live.config.keys.master.is_none() {
            tracing::warn!(
                "no [keys] master: using a random one; capabilities this edge mints are \
                 not accepted by other edges or after a restart"
            );
        }
        let fleet = fleet_store(&live.config);
        // The config alone validated when it was loaded.
        let effective = build_effective(&live.config, &Snapshot::default()).unwrap_or_default();
        Self {
            fleet,
            api_state: std::sync::Mutex::new(Snapshot::default()),
            entitlements: ArcSwap::from_pointee(effective),
            deny: ArcSwap::from_pointee(Entitlements::default()),
            sync: crate::sync::Status::default(),
            live: ArcSwap::from_pointee(live),
            metrics,
            draining: AtomicBool::new(false),
            sessions: Sessions::new(),
            incarnations: Incarnations::default(),
            segments,
        }
    }

    /// End session `id` now, on this edge and in the fleet store (where
    /// other edges learn of it at their next heartbeat); its capability
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
        let until = self.live().config.sessions.capability_expiry(unix_now());
        self.sessions.end(id, until)
    }

    /// End every live session of `user` on this edge (and in the fleet).
    pub fn end_user_sessions(&self, user: &str) {
        for id in self.sessions.user_sessions(user) {
            self.end_session(id, Some(user));
        }
    }

    /// The effective entitlements (one atomic load; hold it for one request).
    pub fn entitlements(&self) -> Arc<Entitlements> {
        self.entitlements.load_full()
    }

    /// The control plane's deny list: `Err` when `user`, `token` or `ip` is
    /// on it (one atomic load, no lock).
    pub fn check_deny(
        &self,
        user: Option<&str>,
        token: Option<&str>,
        ip: std::net::IpAddr,
    ) -> Result<(), crate::entitlements::Denial> {
        self.deny.load().check_blocklist(user, token, ip)
    }

    /// Replace the control plane's deny list (a blocklist-only layer).
    pub fn set_deny(&self, layer: Entitlements) {
        self.deny.store(Arc::new(layer));
    }

    /// Load what the state dir holds (at start, before serving). A corrupt
    /// state is an error: serving without the operator's blocklist would be
    /// worse than not starting.
    pub fn load_state(&self) -> Result<(), String> {
        let live = self.live();
        let dir = &live.config.state_dir;
        let Some(api) = crate::state::load(dir).map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let effective = build_effective(&live.config, &api).map_err(|e| match e {
            ChangeError::Invalid(p) => format!("state in {}: {}", dir.display(), p.join("; ")),
            other => format!("{other:?}"),
        })?;
        let mut guard = self
            .api_state
            .lock()
            .map_err(|_| "state lock poisoned".to_owned())?;
        *guard = api;
        self.entitlements.store(Arc::new(effective));
        drop(guard);
        crate::sync::load(self, dir)
    }

    /// The API's part of the state, for reads.
    pub fn api_state<T>(&self, read: impl FnOnce(&Snapshot) -> T) -> Option<T> {
        self.api_state.lock().ok().map(|g| read(&g))
    }

    /// Apply one admin change: edit a copy of the API state, validate the
    /// result, write it to the state dir (temp file, fsync, rename), then
    /// make it visible to the next request. Blocking: call it from
    /// `spawn_blocking`. On any error nothing changes.
    pub fn change(
        &self,
        edit: impl FnOnce(&mut Snapshot) -> Result<(), ChangeError>,
    ) -> Result<(), ChangeError> {
        let live = self.live();
        let mut guard = self
            .api_state
            .lock()
            .map_err(|_| ChangeError::Storage("state lock poisoned".into()))?;
        let mut next = guard.clone();
        edit(&mut next)?;
        let effective = build_effective(&live.config, &next)?;
        crate::state::save(&live.config.state_dir, &next)
            .map_err(|e| ChangeError::Storage(e.to_string()))?;
        *guard = next;
        self.entitlements.store(Arc::new(effective));
        Ok(())
    }

    /// Replace the whole API layer with `api`, already compiled (a bulk
    /// load, a control plane's full snapshot): validated with the config's
    /// entitlements, saved, then visible. Blocking; on error nothing changes.
    pub fn replace_all(&self, api: Entitlements) -> Result<(), ChangeError> {
        self.change(|s| {
            *s = api.to_snapshot();
            Ok(())
        })
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
        // The new config's users and packages with the API's on top.
        let effective = {
            let api = self.api_state.lock().map_err(|_| {
                ConfigErrors(vec![ConfigError {
                    path: "(state)".into(),
                    message: "state lock poisoned".into(),
                }])
            })?;
            build_effective(&live.config, &api).map_err(|e| {
                ConfigErrors(vec![ConfigError {
                    path: "user/package".into(),
                    message: format!("with the admin API's state: {e:?}"),
                }])
            })?
        };
        self.entitlements.store(Arc::new(effective));
        let ignored = restart_only_changes(&current.config, &live.config);
        if !ignored.is_empty() {
            tracing::warn!(
                keys = ignored.join(", "),
                "these settings changed but only take effect after a restart"
            );
        }
        self.live.store(Arc::new(live));
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
        ("sessions.store", old.sessions.store != new.sessions.store),
        (
            "cache.segment_ttl",
            old.cache.segment_ttl != new.cache.segment_ttl,
        ),
        (
            "server.max_connections",
            old.server.max_connections != new.server.max_connections,
        ),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}
