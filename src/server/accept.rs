//! The one accept path every listener goes through (http, https, admin):
//! accept → budget permit (total and per address, or closed at once) →
//! TLS handshake (https) → hyper auto h1/h2 → the request handler, under the
//! [`lifetime`](super::lifetime) policy, until the connection ends, a timer
//! expires or a drain starts.
//!
//! What differs between listeners is only data ([`Kind`]: which budget,
//! TLS or not, which handler); the timers, the header-count limit and the
//! budgets are applied here once. Settings are read from the generation
//! live at accept, so a reload applies to the next connection.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::budget::Budget;
use super::lifetime::{Expiry, InFlightBody, Lifetime, Timers, Watched};
use crate::body::SendBody;
use crate::config::Config;
use crate::metrics::{ListenerLabel, TimeoutLabels};
use crate::proxy::ConnInfo;
use crate::runtime::Shared;
use crate::zerocopy::{Hold, Holder, SendPath, Spliced, ZeroCopy};

/// `TCP_NOTSENT_LOWAT` of every accepted socket (bytes).
#[cfg(any(target_os = "linux", target_os = "android"))]
const NOTSENT_LOWAT: u32 = 16 << 10;

/// What kind of listener an accept loop serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Plain HTTP/1.1 + h2c for viewers.
    Http,
    /// HTTPS for viewers; index into `[[server.tls]]`.
    Https(usize),
    /// The admin listener.
    Admin,
}

impl Kind {
    /// Listener label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Https(_) => "https",
            Kind::Admin => "admin",
        }
    }

    /// How this listener's response bodies reach the socket.
    pub fn send_path(self, shared: &Shared) -> SendPath {
        match self {
            Kind::Http => SendPath::plain(shared.segments.zero_copy()),
            Kind::Admin => SendPath::Copy,
            Kind::Https(_) => SendPath::Rustls,
        }
    }

    fn scheme(self) -> &'static str {
        match self {
            Kind::Https(_) => "https",
            Kind::Http | Kind::Admin => "http",
        }
    }
}

/// Per-connection settings, from the generation live at accept.
#[derive(Debug, Clone, Copy)]
struct Settings {
    timers: Timers,
    max_headers: usize,
    /// hyper's h1 read buffer cap (the request-head size limit); `None`
    /// keeps hyper's default (admin uploads read in large chunks).
    max_buf_size: Option<usize>,
    max_header_list: u32,
}

impl Settings {
    fn new(config: &Config, kind: Kind) -> Self {
        let s = &config.server;
        Self {
            timers: Timers {
                header_read: s.header_read_timeout,
                idle: s.idle_timeout,
                send: s.send_timeout,
            },
            max_headers: s.max_headers,
            max_buf_size: (kind != Kind::Admin).then_some(s.max_header_bytes),
            max_header_list: u32::try_from(s.max_header_bytes).unwrap_or(u32::MAX),
        }
    }

    /// HTTP/1.1 and HTTP/2 with these limits. hyper's h1 head timer is off:
    /// it starts at the first byte; [`Lifetime`] bounds heads from accept.
    fn builder(&self) -> auto::Builder<TokioExecutor> {
        let mut b = auto::Builder::new(TokioExecutor::new());
        let mut h1 = b.http1();
        h1.timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_headers(self.max_headers);
        if let Some(max) = self.max_buf_size {
            h1.max_buf_size(max);
        }
        b.http2()
            .timer(TokioTimer::new())
            .max_header_list_size(self.max_header_list)
            .max_concurrent_streams(256);
        b
    }
}

/// One listener's accept loop, with everything its connections share.
pub struct Acceptor<H> {
    /// Which listener.
    pub kind: Kind,
    /// The process state (config generation, metrics).
    pub shared: Arc<Shared>,
    /// The budget this listener's connections draw from.
    pub budget: Arc<Budget>,
    /// Cancelled to shut every open connection down gracefully.
    pub drain: CancellationToken,
    /// Answers one request.
    pub handler: H,
}

impl<H, Fut, B> Acceptor<H>
where
    H: Fn(ConnInfo, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: SendBody,
{
    /// Accept until `accepting` is cancelled; the listener closes then.
    pub async fn run(self, listener: TcpListener, accepting: CancellationToken) {
        let kind = self.kind.label();
        let gauge = self
            .shared
            .metrics
            .open_connections
            .get_or_create(&ListenerLabel { listener: kind })
            .clone();
        loop {
            let (stream, peer) = tokio::select! {
                () = accepting.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(pair) => pair,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(listener = kind, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            let accepted = Instant::now();
            let permit = match self.budget.try_acquire(peer.ip()) {
                Ok(permit) => permit,
                Err(why) => {
                    self.shared.metrics.connections_rejected.inc();
                    tracing::debug!(listener = kind, %peer, reason = ?why, "connection refused at accept");
                    drop(stream);
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            // Keep little unsent data in the kernel, so a full socket means
            // the client is not reading now, and a slow reader's progress
            // wakes the writer (and so resets send_timeout) soon.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            let _ = socket2::SockRef::from(&stream).set_tcp_notsent_lowat(NOTSENT_LOWAT);
            let conn = Conn {
                kind: self.kind,
                peer,
                lifetime: Lifetime::new(accepted),
                shared: self.shared.clone(),
                drain: self.drain.clone(),
                handler: self.handler.clone(),
            };
            let gauge = gauge.clone();
            // Two task types: a plain connection's task is not sized for the
            // TLS handshake and stream it never has (6.6 KB → 2.9 KB per
            // connection, measured with size_of_val on a debug build).
            match self.kind {
                Kind::Https(index) => {
                    tokio::spawn(async move {
                        gauge.inc();
                        conn.serve_tls(stream, index).await;
                        gauge.dec();
                        drop(permit);
                    });
                }
                Kind::Http | Kind::Admin => {
                    tokio::spawn(async move {
                        gauge.inc();
                        conn.serve_plain(stream).await;
                        gauge.dec();
                        drop(permit);
                    });
                }
            }
        }
    }
}

/// One accepted connection.
struct Conn<H> {
    kind: Kind,
    peer: SocketAddr,
    lifetime: Lifetime,
    shared: Arc<Shared>,
    drain: CancellationToken,
    handler: H,
}

impl<H, Fut, B> Conn<H>
where
    H: Fn(ConnInfo, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: SendBody,
{
    fn settings(&self) -> Settings {
        Settings::new(&self.shared.live().config, self.kind)
    }

    async fn serve_plain(self, stream: TcpStream) {
        let settings = self.settings();
        // Spliced writes as TcpStream does until a body hands hyper a
        // marker, which only a request given `zero_copy` below can.
        let sent = &self.shared.metrics.zero_copy_bytes;
        let zero_copy = (self.kind.send_path(&self.shared) == SendPath::Sendfile).then(|| {
            // A queued run keeps the connection busy (not idle) until sent.
            let lifetime = self.lifetime.clone();
            let holder: Holder = Arc::new(move || -> Hold { Box::new(lifetime.start_request()) });
            ZeroCopy::new(sent.clone(), holder)
        });
        let spliced = Spliced::new(stream, zero_copy.clone());
        let stream = Watched::new(spliced, self.lifetime.clone());
        self.serve_io(TokioIo::new(stream), settings, zero_copy)
            .await;
    }

    async fn serve_tls(self, stream: TcpStream, index: usize) {
        let live = self.shared.live();
        let settings = Settings::new(&live.config, self.kind);
        let Some(tls) = live.tls_for(index) else {
            // A reload removed this [[server.tls]] entry; the socket stays
            // bound until restart but serves nothing.
            tracing::warn!(index, "no TLS config for this listener after reload");
            return;
        };
        drop(live);
        let deadline = self.lifetime.head_deadline(settings.timers);
        let stream = Watched::new(stream, self.lifetime.clone());
        let handshake = tokio_rustls::TlsAcceptor::from(tls).accept(stream);
        match tokio::time::timeout_at(deadline, handshake).await {
            Ok(Ok(tls)) => self.serve_io(TokioIo::new(tls), settings, None).await,
            Ok(Err(e)) => tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed"),
            Err(_) => self.timed_out(Expiry::HeaderRead),
        }
    }

    /// Serve `io`; requests over HTTP/1.x get `zero_copy` (a plain
    /// connection's [`Spliced`] queue) as an extension.
    async fn serve_io<I>(self, io: TokioIo<I>, settings: Settings, zero_copy: Option<ZeroCopy>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let conn_info = ConnInfo {
            peer: self.peer,
            scheme: self.kind.scheme(),
        };
        let (lifetime, handler) = (self.lifetime.clone(), self.handler.clone());
        let max_headers = settings.max_headers;
        let service = service_fn(move |mut req: Request<Incoming>| {
            let guard = lifetime.start_request();
            let handler = handler.clone();
            // Never on HTTP/2: its framing would read a marker's zeros.
            if let Some(zc) = zero_copy
                .as_ref()
                .filter(|_| req.version() <= Version::HTTP_11)
            {
                req.extensions_mut().insert(zc.clone());
            }
            async move {
                // hyper enforces this on HTTP/1 (431 before we see the
                // request); HTTP/2 has no such limit, so it is applied here
                // for both, the same way.
                let resp = if req.headers().len() > max_headers {
                    too_many_headers()
                } else {
                    handler(conn_info, req).await.map(Either::Left)
                };
                Ok::<_, Infallible>(resp.map(|body| InFlightBody::new(body, guard)))
            }
        });
        let builder = settings.builder();
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        let expiry = tokio::select! {
            r = conn.as_mut() => return self.ended(r),
            e = self.lifetime.expired(settings.timers) => Some(e),
            () = self.drain.cancelled() => None,
        };
        match expiry {
            // No request ever started: nothing to finish or to tell.
            Some(Expiry::HeaderRead) => return self.timed_out(Expiry::HeaderRead),
            // The client takes no byte: dropping the connection is the only
            // way to get it back (a graceful close would wait on the same
            // full socket).
            Some(Expiry::Send) => return self.timed_out(Expiry::Send),
            Some(Expiry::Idle) => self.timed_out(Expiry::Idle),
            None => {}
        }
        // h1 closes between requests, h2 sends GOAWAY and finishes open streams.
        conn.as_mut().graceful_shutdown();
        if expiry.is_some() {
            // Nothing is in flight: the close needs only a flush, which a
            // peer that does not read must not stretch forever.
            match tokio::time::timeout(settings.timers.header_read, conn).await {
                Ok(r) => self.ended(r),
                Err(_) => {
                    tracing::debug!(peer = %self.peer, "peer did not take the close; dropped")
                }
            }
        } else {
            // A drain: in-flight responses finish; `run` bounds the wait.
            let r = conn.await;
            self.ended(r);
        }
    }

    fn timed_out(&self, expiry: Expiry) {
        tracing::debug!(listener = self.kind.label(), peer = %self.peer, timer = expiry.as_str(), "connection closed by timer");
        self.shared
            .metrics
            .connections_timed_out
            .get_or_create(&TimeoutLabels {
                listener: self.kind.label(),
                timer: expiry.as_str(),
            })
            .inc();
    }

    fn ended(&self, r: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
        if let Err(e) = r {
            tracing::debug!(peer = %self.peer, error = %e, "connection ended with an error");
        }
    }
}

/// The answer to a request over `server.max_headers` (as hyper gives on h1).
fn too_many_headers<B>() -> Response<Either<B, Empty<Bytes>>> {
    let mut resp = Response::new(Either::Right(Empty::new()));
    *resp.status_mut() = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
    resp
}
