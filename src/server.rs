//! Listeners and the process lifecycle: binding, one accept loop per
//! listener (all through [`accept`]: plain HTTP/1.1 and h2c, HTTPS with ALPN
//! h2 and http/1.1, and the admin listener), their connection budgets
//! ([`budget`]) and lifetime timers ([`lifetime`]), and the reload / drain /
//! stop control loop.
//!
//! [`run`] takes already-bound listeners (mini-redis style) so tests bind
//! `127.0.0.1:0` and read the real addresses back.

mod accept;
mod budget;
mod lifetime;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use accept::Kind;
use budget::Budget;

use crate::config::Config;
use crate::proxy;
use crate::runtime::{Live, Shared};

/// Sockets bound for a config, before serving starts.
#[derive(Debug)]
pub struct Listeners {
    /// One per `server.listen`.
    pub http: Vec<TcpListener>,
    /// One per `[[server.tls]]`, same order.
    pub tls: Vec<TcpListener>,
    /// `admin.listen`.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Bind every address in `config`.
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        let mut http = Vec::new();
        for addr in &config.server.listen {
            http.push(bind(*addr).await?);
        }
        let mut tls = Vec::new();
        for t in &config.server.tls {
            tls.push(bind(t.listen).await?);
        }
        let admin = match config.admin.listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Self { http, tls, admin })
    }
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// How the outside world steers a running server (signals in `main`, tests
/// directly).
#[derive(Debug, Clone, Default)]
pub struct Control {
    /// Notified to reload the config file (SIGHUP).
    pub reload: Arc<Notify>,
    /// Cancelled to drain gracefully (SIGTERM).
    pub drain: CancellationToken,
    /// Cancelled to stop at once (SIGINT).
    pub stop: CancellationToken,
    /// The clock of every TTL, idle and expiry decision (the system's;
    /// tests pass a manual one and advance it).
    pub clock: crate::clock::Clock,
}

/// Serve until drained or stopped. Returns after a drain once in-flight
/// responses finished or the grace period ran out.
pub async fn run(config: Config, listeners: Listeners, control: Control) -> anyhow::Result<()> {
    let live = Live::build(config, None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let budgets = Budgets::new(&live.config);
    let shared = Shared::new(live, crate::metrics::Metrics::new(), control.clock.clone());
    // Revocations first: loading the state may sweep them.
    shared
        .load_revocations()
        .and_then(|()| shared.load_rotations())
        .map_err(|e| anyhow::anyhow!("cannot load the state dir: {e}"))?;
    shared
        .store
        .load()
        .and_then(|()| crate::sync::load(&shared, &shared.live().config.state_dir))
        .map_err(|e| anyhow::anyhow!("cannot load the state dir: {e}"))?;
    // Viewer accept loops stop on `accepting`; their connections shut down
    // gracefully on `draining` and are all gone once the viewer budget is
    // empty again.
    let accepting = CancellationToken::new();
    let draining = CancellationToken::new();
    let mut acceptors = JoinSet::new();
    let http = listeners.http.into_iter().map(|l| (l, Kind::Http));
    let https = listeners
        .tls
        .into_iter()
        .enumerate()
        .map(|(i, l)| (l, Kind::Https(i)));
    for (listener, kind) in http.chain(https) {
        log_listening(kind, &shared, &listener);
        if let Ok(addr) = listener.local_addr() {
            shared.note_viewer_addr(matches!(kind, Kind::Https(_)), addr);
        }
        let s = shared.clone();
        let acceptor = accept::Acceptor {
            kind,
            shared: shared.clone(),
            budget: budgets.viewer.clone(),
            drain: draining.clone(),
            handler: move |conn, req| proxy::handle(s.clone(), conn, req),
        };
        acceptors.spawn(acceptor.run(listener, accepting.clone()));
    }
    let sweeper = tokio::spawn(sweep_sessions(shared.clone()));
    let fleet = tokio::spawn(crate::runtime::fleet_agent::run(shared.clone()));
    let syncer = tokio::spawn(crate::sync::run(shared.clone()));
    let revocations = tokio::spawn(persist_revocations(shared.clone()));
    // The admin listener keeps answering during a drain (`/readyz` says 503).
    let admin_stop = CancellationToken::new();
    if let Some(listener) = listeners.admin {
        log_listening(Kind::Admin, &shared, &listener);
        let s = shared.clone();
        let acceptor = accept::Acceptor {
            kind: Kind::Admin,
            shared: shared.clone(),
            budget: budgets.admin.clone(),
            drain: admin_stop.clone(),
            handler: move |_conn, req| crate::admin::respond(s.clone(), req),
        };
        tokio::spawn(acceptor.run(listener, admin_stop.clone()));
    }

    let drain = loop {
        tokio::select! {
            () = control.reload.notified() => {
                // File reads and certificate parsing block: keep them off the workers.
                let s = shared.clone();
                match tokio::task::spawn_blocking(move || s.reload()).await {
                    Ok(Ok(())) => {
                        budgets.resize(&shared.live().config);
                        tracing::info!("configuration reloaded");
                    }
                    Ok(Err(e)) => tracing::error!(errors = %e, "reload failed; the previous configuration keeps serving"),
                    Err(e) => tracing::error!(error = %e, "reload task failed; the previous configuration keeps serving"),
                }
            }
            () = control.drain.cancelled() => break true,
            () = control.stop.cancelled() => break false,
        }
    };

    shared.start_draining();
    // Accept loops drop their listeners on return: new connections are refused.
    accepting.cancel();
    if drain {
        // The grace period of the newest config applies (it may have been reloaded).
        let grace = shared.live().config.server.shutdown_grace;
        tracing::info!(grace_secs = grace.as_secs_f64(), "draining");
        while acceptors.join_next().await.is_some() {}
        draining.cancel();
        tokio::select! {
            () = budgets.viewer.all_closed() => tracing::info!("all connections finished"),
            () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
            () = control.stop.cancelled() => tracing::info!("stopping now"),
        }
    } else {
        tracing::info!("stopping now");
    }
    admin_stop.cancel();
    sweeper.abort();
    fleet.abort();
    syncer.abort();
    revocations.abort();
    if let Err(e) = shared.save_revocations_async().await {
        tracing::error!(error = %e, "revocations not saved at shutdown");
    }
    Ok(())
}

/// Every second: forget lapsed revocations and save what changed (new
/// admissions are saved only here and at shutdown).
async fn persist_revocations(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        shared.revocations.prune(shared.clock.now());
        if let Err(e) = shared.save_revocations_async().await {
            tracing::warn!(error = %e, "revocations not saved in the state dir; retrying");
        }
    }
}

/// The connection budgets: one shared by every viewer listener, one for the
/// admin listener. Sized from the config at start and again on each reload.
struct Budgets {
    viewer: Arc<Budget>,
    admin: Arc<Budget>,
}

impl Budgets {
    fn new(config: &Config) -> Self {
        Self {
            viewer: Budget::new(
                config.server.max_connections,
                config.server.max_connections_per_ip,
            ),
            admin: Budget::new(config.admin.max_connections, 0),
        }
    }

    fn resize(&self, config: &Config) {
        self.viewer.resize(
            config.server.max_connections,
            config.server.max_connections_per_ip,
        );
        self.admin.resize(config.admin.max_connections, 0);
    }
}

/// Forget idle sessions, a few times per idle timeout.
async fn sweep_sessions(shared: Arc<Shared>) {
    loop {
        let idle = shared.live().config.sessions.idle_timeout;
        let every = (idle / 4).clamp(
            std::time::Duration::from_millis(250),
            std::time::Duration::from_secs(5),
        );
        tokio::time::sleep(every).await;
        shared.sessions.sweep(shared.clock.now(), idle.as_secs());
        shared.live().rate_limits.sweep();
        shared
            .metrics
            .sessions
            .set(i64::try_from(shared.sessions.len()).unwrap_or(i64::MAX));
    }
}

fn log_listening(kind: Kind, shared: &Shared, listener: &TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        let send = kind.send_path(shared).as_str();
        tracing::info!(listener = kind.label(), %addr, send, "listening");
    }
}
