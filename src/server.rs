//! Listeners and the process lifecycle: accept loops for plain HTTP
//! (HTTP/1.1 + h2c on one port) and HTTPS (ALPN h2 + http/1.1), the
//! connection cap, header limits, and the reload / drain / stop control loop.
//!
//! [`run`] takes already-bound listeners (mini-redis style) so tests bind
//! `127.0.0.1:0` and read the real addresses back.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ServerConfig};
use crate::metrics::ListenerLabel;
use crate::proxy::{self, ConnInfo};
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
}

/// Serve until drained or stopped. Returns after a drain once in-flight
/// responses finished or the grace period ran out.
pub async fn run(config: Config, listeners: Listeners, control: Control) -> anyhow::Result<()> {
    let live = Live::build(config, None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let max_conns = live.config.server.max_connections;
    let shared = Arc::new(Shared::new(live, crate::metrics::Metrics::new()));
    // Revocations first: loading the state may sweep them.
    shared
        .load_revocations()
        .map_err(|e| anyhow::anyhow!("cannot load the state dir: {e}"))?;
    shared
        .load_state()
        .map_err(|e| anyhow::anyhow!("cannot load the state dir: {e}"))?;
    // Accept loops share the graceful handle and hand a watcher to each
    // connection; once they have all returned, the handle is ours again.
    let graceful = Arc::new(GracefulShutdown::new());
    let accepting = CancellationToken::new();
    let conns = Arc::new(Semaphore::new(max_conns));
    let mut acceptors = JoinSet::new();
    let http = listeners.http.into_iter().map(|l| (l, None));
    let https = listeners
        .tls
        .into_iter()
        .enumerate()
        .map(|(i, l)| (l, Some(i)));
    for (listener, tls) in http.chain(https) {
        log_listening(if tls.is_some() { "https" } else { "http" }, &listener);
        let acceptor = Acceptor {
            shared: shared.clone(),
            graceful: graceful.clone(),
            conns: conns.clone(),
            tls,
        };
        acceptors.spawn(acceptor.run(listener, accepting.clone()));
    }
    let sweeper = tokio::spawn(sweep_sessions(shared.clone()));
    let fleet = tokio::spawn(crate::runtime::fleet_agent::run(shared.clone()));
    let syncer = tokio::spawn(crate::sync::run(shared.clone()));
    let revocations = tokio::spawn(persist_revocations(shared.clone()));
    let admin_stop = CancellationToken::new();
    if let Some(listener) = listeners.admin {
        log_listening("admin", &listener);
        tokio::spawn(crate::admin::serve(
            listener,
            shared.clone(),
            admin_stop.clone(),
        ));
    }

    let drain = loop {
        tokio::select! {
            () = control.reload.notified() => {
                // File reads and certificate parsing block: keep them off the workers.
                let s = shared.clone();
                match tokio::task::spawn_blocking(move || s.reload()).await {
                    Ok(Ok(())) => tracing::info!("configuration reloaded"),
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
        let Ok(graceful) = Arc::try_unwrap(graceful) else {
            anyhow::bail!(
                "internal: graceful-shutdown handle still shared after accept loops ended"
            );
        };
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections finished"),
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
        shared.revocations.prune(crate::runtime::unix_now());
        if let Err(e) = shared.save_revocations_async().await {
            tracing::warn!(error = %e, "revocations not saved in the state dir; retrying");
        }
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
        shared
            .sessions
            .sweep(crate::runtime::unix_now(), idle.as_secs());
        shared
            .metrics
            .sessions
            .set(i64::try_from(shared.sessions.len()).unwrap_or(i64::MAX));
    }
}

fn log_listening(kind: &'static str, listener: &TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(listener = kind, %addr, "listening");
    }
}

/// One listener's accept loop.
struct Acceptor {
    shared: Arc<Shared>,
    graceful: Arc<GracefulShutdown>,
    conns: Arc<Semaphore>,
    /// Index into the TLS configs for an HTTPS listener.
    tls: Option<usize>,
}

impl Acceptor {
    async fn run(self, listener: TcpListener, accepting: CancellationToken) {
        loop {
            let (stream, peer) = tokio::select! {
                () = accepting.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(pair) => pair,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = self.conns.clone().try_acquire_owned() else {
                self.shared.metrics.connections_rejected.inc();
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let shared = self.shared.clone();
            let watcher = self.graceful.watcher();
            let tls = self.tls;
            tokio::spawn(async move {
                let kind = if tls.is_some() { "https" } else { "http" };
                let gauge = shared
                    .metrics
                    .open_connections
                    .get_or_create(&ListenerLabel { listener: kind })
                    .clone();
                gauge.inc();
                match tls {
                    Some(index) => serve_tls(stream, peer, index, shared, watcher).await,
                    None => serve_io(TokioIo::new(stream), peer, "http", shared, watcher).await,
                }
                gauge.dec();
                drop(permit);
            });
        }
    }
}

async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    index: usize,
    shared: Arc<Shared>,
    watcher: Watcher,
) {
    let live = shared.live();
    let Some(config) = live.tls_for(index) else {
        // A reload removed this [[server.tls]] entry; the socket stays bound
        // until restart but serves nothing.
        tracing::warn!(index, "no TLS config for this listener after reload");
        return;
    };
    let timeout = live.config.server.header_read_timeout;
    drop(live);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => serve_io(TokioIo::new(tls), peer, "https", shared, watcher).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// HTTP/1.1 and HTTP/2 builder with this generation's limits.
fn builder(server: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout)
        .max_buf_size(server.max_header_bytes)
        .max_headers(server.max_headers);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(server.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    b
}

async fn serve_io<I>(
    io: TokioIo<I>,
    peer: SocketAddr,
    scheme: &'static str,
    shared: Arc<Shared>,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = builder(&shared.live().config.server);
    let conn_info = ConnInfo { peer, scheme };
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(proxy::handle(shared, conn_info, req).await) }
    });
    let conn = builder.serve_connection(io, service).into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
