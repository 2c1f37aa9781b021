//! Response body adapters (the linkerd `BodyWithEosFn` pattern).
//!
//! - [`IdleTimeout`] fails the body when the origin sends nothing for too long,
//!   so a stalled origin aborts the viewer's response instead of hanging it.
//! - [`Deadline`] fails the body at a fixed instant (an origin fetch's total
//!   deadline), so an origin trickling bytes cannot hold it for ever.
//! - [`Tracked`] counts bytes and calls its completion function exactly once:
//!   at the end of the stream, on an error, or when the viewer goes away and
//!   the body is dropped. Access logging and metrics hang off that call.
//!
//! - [`Watched`] asks a [`Watch`] every interval whether the stream may go
//!   on (a continuous MPEG-TS response is a session: a kick, a block or an
//!   expiry ends it), tells it the bytes as they go, and when it closes.
//!
//! No adapter buffers: each frame is passed on as it arrives. An error
//! from the inner body is passed on as an error, which makes hyper abort the
//! response (h1: connection closed before the declared length or the final
//! chunk; h2: RST_STREAM), so a truncated body never looks complete.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

/// Error type of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body of `Bytes` that may move to another task and whose error boxes
/// into [`BoxError`]: what a handler answers with and an origin fetch
/// returns. Implemented for every such body.
pub trait SendBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static {}

impl<B> SendBody for B where B: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static {}

/// The body type of every viewer response.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// An empty viewer body.
pub fn empty() -> ProxyBody {
    http_body_util::Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A viewer body of `bytes`, whole.
pub fn full(bytes: Bytes) -> ProxyBody {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// The origin sent no body bytes within the idle timeout.
#[derive(Debug, thiserror::Error)]
#[error("origin body idle for longer than {0:?}")]
pub struct IdleTimeoutError(pub Duration);

pin_project! {
    /// Fails with [`IdleTimeoutError`] when no frame arrives within `timeout`.
    pub struct IdleTimeout<B> {
        #[pin]
        inner: B,
        #[pin]
        sleep: Sleep,
        timeout: Duration,
    }
}

impl<B> IdleTimeout<B> {
    /// Wrap `inner`; the timer starts now and restarts on every frame.
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            sleep: tokio::time::sleep(timeout),
            timeout,
        }
    }
}

impl<B> Body for IdleTimeout<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                this.sleep.as_mut().reset(Instant::now() + *this.timeout);
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                ready!(this.sleep.poll(cx));
                Poll::Ready(Some(Err(IdleTimeoutError(*this.timeout).into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The origin body was still going at the fetch's total deadline.
#[derive(Debug, thiserror::Error)]
#[error("origin fetch not finished within its total deadline of {0:?}")]
pub struct DeadlineError(pub Duration);

pin_project! {
    /// Fails with [`DeadlineError`] when the body has not ended by `at`.
    pub struct Deadline<B> {
        #[pin]
        inner: B,
        #[pin]
        sleep: Sleep,
        total: Duration,
    }
}

impl<B> Deadline<B> {
    /// Wrap `inner`; it must end by `at` (`total` is only for the message).
    pub fn new(inner: B, at: Instant, total: Duration) -> Self {
        Self {
            inner,
            sleep: tokio::time::sleep_until(at),
            total,
        }
    }
}

impl<B> Body for Deadline<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if this.sleep.poll(cx).is_ready() {
            return Poll::Ready(Some(Err(DeadlineError(*this.total).into())));
        }
        this.inner
            .poll_frame(cx)
            .map(|frame| frame.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How a tracked body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// Every byte was sent.
    Complete,
    /// The inner body failed (origin reset, idle timeout); the response was aborted.
    Failed,
    /// The viewer went away before the end.
    Cancelled,
}

pin_project! {
    /// Counts data bytes and calls `done(bytes, end)` once when the body ends
    /// or is dropped.
    pub struct Tracked<B: Body, F: FnOnce(u64, BodyEnd)> {
        #[pin]
        inner: B,
        bytes: u64,
        done: Option<F>,
    }

    impl<B: Body, F: FnOnce(u64, BodyEnd)> PinnedDrop for Tracked<B, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(done) = this.done.take() {
                // A body hyper never polled because it was empty (HEAD, 304,
                // zero-length) still completed.
                let end = if this.inner.is_end_stream() { BodyEnd::Complete } else { BodyEnd::Cancelled };
                done(*this.bytes, end);
            }
        }
    }
}

impl<B: Body, F: FnOnce(u64, BodyEnd)> Tracked<B, F> {
    /// Wrap `inner`; `done` is called exactly once.
    pub fn new(inner: B, done: F) -> Self {
        Self {
            inner,
            bytes: 0,
            done: Some(done),
        }
    }
}

impl<B, F> Body for Tracked<B, F>
where
    B: Body<Data = Bytes>,
    F: FnOnce(u64, BodyEnd),
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = ready!(this.inner.poll_frame(cx));
        let end = match &polled {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    *this.bytes += data.len() as u64;
                }
                None
            }
            Some(Err(_)) => Some(BodyEnd::Failed),
            None => Some(BodyEnd::Complete),
        };
        if let (Some(end), Some(done)) = (end, this.done.take_if(|_| end.is_some())) {
            done(*this.bytes, end);
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What a [`Watched`] body asks and tells.
pub trait Watch {
    /// May the stream go on? Asked every interval; `false` ends it.
    fn still(&self) -> bool;
    /// `n` more body bytes went to the viewer.
    fn sent(&self, n: u64);
    /// The body is gone (ended, failed, or the viewer went away).
    fn closed(&self);
}

/// A [`Watch`] said no: the response is aborted.
#[derive(Debug, thiserror::Error)]
#[error("the session ended")]
pub struct SessionEnded;

pin_project! {
    /// Passes `inner` through, asking `watch` every `every` whether it may
    /// go on (also while the inner body is silent).
    pub struct Watched<B, W: Watch> {
        #[pin]
        inner: B,
        watch: W,
        tick: tokio::time::Interval,
        stopped: bool,
    }

    impl<B, W: Watch> PinnedDrop for Watched<B, W> {
        fn drop(this: Pin<&mut Self>) {
            this.project().watch.closed();
        }
    }
}

impl<B, W: Watch> Watched<B, W> {
    /// Wrap `inner`; the first question is asked one `every` from now.
    pub fn new(inner: B, watch: W, every: Duration) -> Self {
        let mut tick = tokio::time::interval_at(Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            inner,
            watch,
            tick,
            stopped: false,
        }
    }
}

impl<B, W> Body for Watched<B, W>
where
    B: Body<Data = Bytes, Error: Into<BoxError>>,
    W: Watch,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.stopped {
            return Poll::Ready(None);
        }
        while this.tick.poll_tick(cx).is_ready() {
            if !this.watch.still() {
                *this.stopped = true;
                return Poll::Ready(Some(Err(Box::new(SessionEnded))));
            }
        }
        let polled = ready!(this.inner.poll_frame(cx));
        if let Some(Ok(frame)) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.watch.sent(data.len() as u64);
        }
        Poll::Ready(polled.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.stopped || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};
    use std::sync::{Arc, Mutex};

    type Log = Arc<Mutex<Vec<(u64, BodyEnd)>>>;

    fn recorder() -> (Log, impl FnOnce(u64, BodyEnd)) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l2 = log.clone();
        (log, move |b, e| l2.lock().unwrap().push((b, e)))
    }

    #[tokio::test]
    async fn tracked_counts_and_completes_once() {
        let (log, done) = recorder();
        let body = Tracked::new(Full::new(Bytes::from_static(b"hello")), done);
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"hello");
        assert_eq!(*log.lock().unwrap(), vec![(5, BodyEnd::Complete)]);
    }

    #[tokio::test]
    async fn tracked_reports_failure_and_cancel() {
        let (log, done) = recorder();
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
            Ok(Frame::data(Bytes::from_static(b"abc"))),
            Err("reset".into()),
        ];
        let body = Tracked::new(StreamBody::new(futures_util::stream::iter(frames)), done);
        assert!(body.collect().await.is_err());
        assert_eq!(*log.lock().unwrap(), vec![(3, BodyEnd::Failed)]);

        let (log, done) = recorder();
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let body = Tracked::new(StreamBody::new(tokio_stream_from(rx)), done);
        drop(body);
        assert_eq!(*log.lock().unwrap(), vec![(0, BodyEnd::Cancelled)]);
    }

    fn tokio_stream_from<T>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_fails_a_stalled_body() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        tx.send(Ok(Frame::data(Bytes::from_static(b"first"))))
            .await
            .unwrap();
        let mut body = Box::pin(IdleTimeout::new(
            StreamBody::new(tokio_stream_from(rx)),
            Duration::from_secs(5),
        ));
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"first"));
        // Nothing more arrives: with the clock paused, tokio advances to the deadline.
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<IdleTimeoutError>(), "{err}");
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_fails_a_trickling_body() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let total = Duration::from_secs(30);
        let mut body = Box::pin(Deadline::new(
            IdleTimeout::new(
                StreamBody::new(tokio_stream_from(rx)),
                Duration::from_secs(5),
            ),
            Instant::now() + total,
            total,
        ));
        // A byte every 2 s never trips the idle timeout, only the deadline.
        let feeder = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                if tx
                    .send(Ok(Frame::data(Bytes::from_static(b"x"))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let start = Instant::now();
        let mut frames = 0;
        let err = loop {
            match body.frame().await.unwrap() {
                Ok(_) => frames += 1,
                Err(e) => break e,
            }
        };
        assert!(err.is::<DeadlineError>(), "{err}");
        assert_eq!(start.elapsed(), total);
        assert!(frames >= 10, "{frames} frames before the deadline");
        drop(body);
        feeder.await.unwrap();
    }

    /// Says yes `allowed` times, then no; counts bytes and closes.
    #[derive(Clone, Default)]
    struct Gate(Arc<Mutex<(u32, u64, bool)>>);

    impl Watch for Gate {
        fn still(&self) -> bool {
            let mut g = self.0.lock().unwrap();
            g.0 = g.0.saturating_sub(1);
            g.0 > 0
        }
        fn sent(&self, n: u64) {
            self.0.lock().unwrap().1 += n;
        }
        fn closed(&self) {
            self.0.lock().unwrap().2 = true;
        }
    }

    /// A silent stream is stopped by the watch too (it is asked on its
    /// own timer, not only when data arrives); bytes are told as they go
    /// and the close once.
    #[tokio::test(start_paused = true)]
    async fn a_watch_ends_even_a_silent_stream() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let gate = Gate(Arc::new(Mutex::new((3, 0, false))));
        let mut body = Box::pin(Watched::new(
            StreamBody::new(tokio_stream_from(rx)),
            gate.clone(),
            Duration::from_secs(1),
        ));
        tx.send(Ok(Frame::data(Bytes::from_static(b"hello"))))
            .await
            .unwrap();
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "hello"
        );
        let start = Instant::now();
        // Nothing more is sent: the third question (at 3 s) says no.
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<SessionEnded>(), "{err}");
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert!(body.frame().await.is_none(), "ended for good");
        assert_eq!(gate.0.lock().unwrap().1, 5);
        assert!(!gate.0.lock().unwrap().2);
        drop(body);
        assert!(gate.0.lock().unwrap().2, "closed on drop");
        drop(tx);
    }
}
