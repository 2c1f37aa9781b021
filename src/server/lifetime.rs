//! The connection-lifetime policy, one for every listener (http, https,
//! admin), in the manner of nginx's `client_header_timeout` +
//! `keepalive_timeout`:
//!
//! 1. From accept, a connection has `header_read_timeout` to deliver its
//!    first whole request head. The TLS handshake, the h2c / h2 preface and
//!    a silent socket all spend this one budget: the clock starts at accept,
//!    not at the first byte.
//! 2. While a request is in flight (from its head until its response body
//!    has been sent or dropped) no timer runs: a long streaming response or
//!    a slow upload is never cut by these timers.
//! 3. Once nothing is in flight, the connection may stay idle for
//!    `idle_timeout`; then it is shut down gracefully (h1: closed between
//!    requests; h2: GOAWAY). A keep-alive request head that has not arrived
//!    by then is bounded by this timer too (hyper's own h1 head timer is
//!    off, because it starts at the first byte).
//! 4. Whatever the phase, a connection whose writes make no progress (the
//!    socket takes no byte) for `send_timeout` is closed, in the manner of
//!    nginx's `send_timeout`: a client that asked for a response and stopped
//!    reading it holds nothing for longer. A slow reader whose socket keeps
//!    taking bytes is never cut. Output is pending while a socket write
//!    waits ([`Watched`] wraps the TCP stream, under TLS, and reports it)
//!    or while a response body has handed out data and hyper has not come
//!    back for more ([`InFlightBody`]): the second is how an HTTP/2 client
//!    that grants no flow-control window (but reads the socket) stalls.
//!    Pending output with no byte taken by the socket for `send_timeout`
//!    closes the connection.
//!
//! [`phase_deadline`] is the pure rule; [`Lifetime`] holds the counters the
//! service updates through [`InFlight`] guards and turns the rule into a
//! future that resolves when the connection must go. It must not know about
//! listeners, budgets or protocols.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The two timers of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Accept → first whole request head.
    pub header_read: Duration,
    /// Last response done → close, when no new request came.
    pub idle: Duration,
    /// A write pending with no byte taken → close.
    pub send: Duration,
}

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No request head yet.
    AwaitingFirstHead,
    /// At least one request in flight.
    Busy,
    /// Every request so far is done; the last one finished at `since`.
    Idle {
        /// When the last response finished.
        since: Instant,
    },
}

/// Which timer ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No whole request head within `header_read_timeout` of accept.
    HeaderRead,
    /// Nothing in flight for `idle_timeout`.
    Idle,
    /// A write made no progress for `send_timeout`.
    Send,
}

impl Expiry {
    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Expiry::HeaderRead => "header_read_timeout",
            Expiry::Idle => "idle_timeout",
            Expiry::Send => "send_timeout",
        }
    }
}

/// The rule: when a connection accepted at `accepted` and now in `phase`
/// must close, and why; `None` while a request is in flight.
pub fn phase_deadline(
    phase: Phase,
    accepted: Instant,
    timers: Timers,
) -> Option<(Instant, Expiry)> {
    match phase {
        Phase::AwaitingFirstHead => Some((accepted + timers.header_read, Expiry::HeaderRead)),
        Phase::Busy => None,
        Phase::Idle { since } => Some((since + timers.idle, Expiry::Idle)),
    }
}

/// One connection's request counters. Cheap to clone (`Arc`).
#[derive(Debug, Clone)]
pub struct Lifetime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    accepted: Instant,
    /// Requests whose head arrived.
    started: AtomicU64,
    /// Requests whose response is done; written after `idle_since`.
    finished: AtomicU64,
    /// Milliseconds after `accepted` at which a request last finished.
    idle_since_ms: AtomicU64,
    /// 0 while writes go through; else 1 + the milliseconds after
    /// `accepted` at which a write last found the socket full.
    write_stalled_ms: AtomicU64,
    /// Milliseconds after `accepted` at which the socket last took bytes.
    last_write_ms: AtomicU64,
    /// Response bodies that handed out data and were not polled since.
    owed: AtomicU64,
    /// Milliseconds after `accepted` at which `owed` last left 0.
    owed_since_ms: AtomicU64,
    /// Woken on every start, finish and new write stall so the deadline is
    /// recomputed.
    changed: Notify,
}

impl Lifetime {
    /// Counters for a connection accepted at `accepted`.
    pub fn new(accepted: Instant) -> Self {
        Self {
            inner: Arc::new(Inner {
                accepted,
                started: AtomicU64::new(0),
                finished: AtomicU64::new(0),
                idle_since_ms: AtomicU64::new(0),
                write_stalled_ms: AtomicU64::new(0),
                last_write_ms: AtomicU64::new(0),
                owed: AtomicU64::new(0),
                owed_since_ms: AtomicU64::new(0),
                changed: Notify::new(),
            }),
        }
    }

    /// When the first request head must have arrived (the TLS handshake
    /// must end before this too).
    pub fn head_deadline(&self, timers: Timers) -> Instant {
        self.inner.accepted + timers.header_read
    }

    /// Count a request whose head arrived; it is in flight until the guard
    /// is dropped.
    pub fn start_request(&self) -> InFlight {
        self.inner.started.fetch_add(1, Ordering::AcqRel);
        self.inner.changed.notify_one();
        InFlight {
            inner: self.inner.clone(),
        }
    }

    /// Where the connection stands now.
    pub fn phase(&self) -> Phase {
        // `finished` is read after `started`: a request that starts and
        // ends in between only makes `finished` larger, still idle.
        let started = self.inner.started.load(Ordering::Acquire);
        let finished = self.inner.finished.load(Ordering::Acquire);
        if started == 0 && finished == 0 {
            Phase::AwaitingFirstHead
        } else if finished < started {
            Phase::Busy
        } else {
            let ms = self.inner.idle_since_ms.load(Ordering::Acquire);
            Phase::Idle {
                since: self.inner.accepted + Duration::from_millis(ms),
            }
        }
    }

    /// Since when output has been pending with no byte taken by the
    /// socket, if it is.
    pub fn write_stalled_since(&self) -> Option<Instant> {
        let at = |ms| self.inner.accepted + Duration::from_millis(ms);
        match self.inner.write_stalled_ms.load(Ordering::Acquire) {
            0 if self.inner.owed.load(Ordering::Acquire) > 0 => {
                let owed = self.inner.owed_since_ms.load(Ordering::Acquire);
                let wrote = self.inner.last_write_ms.load(Ordering::Acquire);
                Some(at(owed.max(wrote)))
            }
            0 => None,
            ms => Some(at(ms - 1)),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.inner.accepted.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// A write found the socket full (no byte taken).
    fn write_stalled(&self) {
        if self.inner.write_stalled_ms.load(Ordering::Relaxed) != 0 {
            return; // already stalled: the clock keeps its start
        }
        let ms = self.now_ms();
        self.inner
            .write_stalled_ms
            .store(ms.saturating_add(1), Ordering::Release);
        self.inner.changed.notify_one();
    }

    /// The socket took bytes. No wake-up: a pending send deadline re-reads
    /// the state when it fires.
    fn write_progressed(&self) {
        self.inner
            .last_write_ms
            .store(self.now_ms(), Ordering::Release);
        if self.inner.write_stalled_ms.load(Ordering::Relaxed) != 0 {
            self.inner.write_stalled_ms.store(0, Ordering::Release);
        }
    }

    /// Resolves when the policy says the connection must close.
    pub async fn expired(&self, timers: Timers) -> Expiry {
        loop {
            // Created before the state is read: a change after the read
            // leaves a permit, so it is never missed.
            let changed = self.inner.changed.notified();
            let phase = phase_deadline(self.phase(), self.inner.accepted, timers);
            let stalled = self.write_stalled_since();
            let send = stalled.map(|since| (since + timers.send, Expiry::Send));
            let next = match (phase, send) {
                (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
                (a, b) => a.or(b),
            };
            match next {
                None => changed.await,
                Some((deadline, expiry)) => tokio::select! {
                    () = changed => {}
                    () = tokio::time::sleep_until(deadline) => {
                        // A stall that ended (or restarted) since is no
                        // reason to close: recompute.
                        if expiry != Expiry::Send || self.write_stalled_since() == stalled {
                            return expiry;
                        }
                    }
                },
            }
        }
    }
}

/// One request in flight on a [`Lifetime`]; dropping it marks it done.
#[derive(Debug)]
pub struct InFlight {
    inner: Arc<Inner>,
}

impl InFlight {
    /// This request's body handed out data: output is pending until hyper
    /// polls it again.
    fn owe(&self) {
        let life = Lifetime {
            inner: self.inner.clone(),
        };
        if self.inner.owed.fetch_add(1, Ordering::AcqRel) == 0 {
            self.inner
                .owed_since_ms
                .store(life.now_ms(), Ordering::Release);
            self.inner.changed.notify_one();
        }
    }

    fn paid(&self) {
        self.inner.owed.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = Instant::now()
            .duration_since(self.inner.accepted)
            .as_millis();
        let ms = u64::try_from(ms).unwrap_or(u64::MAX);
        self.inner.idle_since_ms.fetch_max(ms, Ordering::AcqRel);
        self.inner.finished.fetch_add(1, Ordering::AcqRel);
        self.inner.changed.notify_one();
    }
}

pin_project_lite::pin_project! {
    /// A connection's byte stream (the TCP socket, under TLS if any) that
    /// tells its [`Lifetime`] when writes stall and when they progress.
    pub struct Watched<T> {
        #[pin]
        inner: T,
        lifetime: Lifetime,
    }
}

impl<T> Watched<T> {
    /// `inner`, reporting to `lifetime`.
    pub fn new(inner: T, lifetime: Lifetime) -> Self {
        Self { inner, lifetime }
    }

    fn note<R>(
        lifetime: &Lifetime,
        r: Poll<std::io::Result<R>>,
        took: impl Fn(&R) -> bool,
    ) -> Poll<std::io::Result<R>> {
        match &r {
            Poll::Pending => lifetime.write_stalled(),
            Poll::Ready(Ok(v)) if took(v) => lifetime.write_progressed(),
            Poll::Ready(_) => {}
        }
        r
    }
}

impl<T: AsyncRead> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        Self::note(this.lifetime, this.inner.poll_write(cx, buf), |n| *n > 0)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        Self::note(
            this.lifetime,
            this.inner.poll_write_vectored(cx, bufs),
            |n| *n > 0,
        )
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.project();
        Self::note(this.lifetime, this.inner.poll_flush(cx), |()| false)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.project();
        Self::note(this.lifetime, this.inner.poll_shutdown(cx), |()| false)
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request [`InFlight`] until hyper has
    /// sent it whole or dropped it.
    pub struct InFlightBody<B> {
        #[pin]
        inner: B,
        guard: InFlight,
        owes: bool,
    }

    impl<B> PinnedDrop for InFlightBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.owes {
                this.guard.paid();
            }
        }
    }
}

impl<B> InFlightBody<B> {
    /// `inner`, holding `guard` for as long as it lives.
    pub fn new(inner: B, guard: InFlight) -> Self {
        Self {
            inner,
            guard,
            owes: false,
        }
    }
}

impl<B: Body> Body for InFlightBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if std::mem::take(this.owes) {
            this.guard.paid();
        }
        let r = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &r
            && frame.is_data()
        {
            *this.owes = true;
            this.guard.owe();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMERS: Timers = Timers {
        header_read: Duration::from_secs(2),
        idle: Duration::from_secs(75),
        send: Duration::from_secs(60),
    };

    /// A task that waits for `life` to expire under [`TIMERS`].
    fn spawn_expiry(life: &Lifetime) -> tokio::task::JoinHandle<Expiry> {
        let life = life.clone();
        tokio::spawn(async move { life.expired(TIMERS).await })
    }

    #[test]
    fn the_rule() {
        let t0 = Instant::now();
        assert_eq!(
            phase_deadline(Phase::AwaitingFirstHead, t0, TIMERS),
            Some((t0 + TIMERS.header_read, Expiry::HeaderRead))
        );
        assert_eq!(phase_deadline(Phase::Busy, t0, TIMERS), None);
        let since = t0 + Duration::from_secs(100);
        assert_eq!(
            phase_deadline(Phase::Idle { since }, t0, TIMERS),
            Some((since + TIMERS.idle, Expiry::Idle))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn silent_connection_expires_header_read_after_accept() {
        let life = Lifetime::new(Instant::now());
        let t0 = Instant::now();
        assert_eq!(life.expired(TIMERS).await, Expiry::HeaderRead);
        assert_eq!(t0.elapsed(), TIMERS.header_read);
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_request_is_never_cut_then_idle_timer_runs() {
        let life = Lifetime::new(Instant::now());
        let guard = life.start_request();
        let waiter = spawn_expiry(&life);
        // Far past both timers, still in flight.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!waiter.is_finished());
        assert_eq!(life.phase(), Phase::Busy);
        let done = Instant::now();
        drop(guard);
        assert_eq!(waiter.await.unwrap(), Expiry::Idle);
        assert_eq!(done.elapsed(), TIMERS.idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_request_restarts_the_idle_timer() {
        let life = Lifetime::new(Instant::now());
        drop(life.start_request());
        tokio::time::sleep(Duration::from_secs(70)).await;
        drop(life.start_request());
        let second = Instant::now();
        assert_eq!(life.expired(TIMERS).await, Expiry::Idle);
        assert_eq!(second.elapsed(), TIMERS.idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_write_expires_send_even_in_flight_and_progress_resets_it() {
        let life = Lifetime::new(Instant::now());
        let _guard = life.start_request();
        let waiter = spawn_expiry(&life);
        // Stalls that end before send_timeout never close it.
        for _ in 0..10 {
            life.write_stalled();
            tokio::time::sleep(TIMERS.send - Duration::from_secs(1)).await;
            life.write_progressed();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(!waiter.is_finished());
        life.write_stalled();
        let stalled = Instant::now();
        assert_eq!(waiter.await.unwrap(), Expiry::Send);
        assert_eq!(stalled.elapsed(), TIMERS.send);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_not_polled_again_expires_send_unless_the_socket_takes_bytes() {
        let life = Lifetime::new(Instant::now());
        let body = http_body_util::Full::new(bytes::Bytes::from_static(b"x"));
        let mut body = std::pin::pin!(InFlightBody::new(body, life.start_request()));
        let waiter = spawn_expiry(&life);
        // hyper takes the frame and does not come back for more.
        let frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await;
        assert!(frame.unwrap().unwrap().is_data());
        // While the socket takes bytes, that is progress.
        for _ in 0..10 {
            tokio::time::sleep(TIMERS.send - Duration::from_secs(1)).await;
            life.write_progressed();
        }
        assert!(!waiter.is_finished());
        let last = Instant::now();
        assert_eq!(waiter.await.unwrap(), Expiry::Send);
        assert_eq!(last.elapsed(), TIMERS.send);
    }

    #[tokio::test(start_paused = true)]
    async fn overlapping_requests_keep_it_busy_until_the_last() {
        let life = Lifetime::new(Instant::now());
        let a = life.start_request();
        let b = life.start_request();
        drop(a);
        assert_eq!(life.phase(), Phase::Busy);
        drop(b);
        assert!(matches!(life.phase(), Phase::Idle { .. }));
    }
}
