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
use crate::config::{Config, ConfigError, ConfigErrors};
use crate::credentials::CredentialParams;
use crate::ipnet_set::IpNetSet;
use crate::metrics::{Metrics, ResultLabel};
use crate::origin::Origin;
use crate::router::{RouteSpec, RouteTable};

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
                .flat_map(|s| s.params()),
        );
        let backend =
            BackendClient::reuse_or_new(&config.backend, previous.and_then(|p| p.backend.as_ref()));
        Ok(Self {
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

/// State shared by every connection and the admin listener.
#[derive(Debug)]
pub struct Shared {
    live: ArcSwap<Live>,
    /// All metrics.
    pub metrics: Metrics,
    draining: AtomicBool,
}

impl Shared {
    /// Start serving generation `live`.
    pub fn new(live: Live, metrics: Metrics) -> Self {
        Self {
            live: ArcSwap::from_pointee(live),
            metrics,
            draining: AtomicBool::new(false),
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
        (
            "server.max_connections",
            old.server.max_connections != new.server.max_connections,
        ),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}
