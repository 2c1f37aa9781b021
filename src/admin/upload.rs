//! Streaming `PUT /api/v1/snapshot`: the body goes chunk by chunk from the
//! connection to the compiling loader on the blocking pool
//! ([`crate::store::EntitlementStore::layer_from_json`]), so a million-user
//! bulk load never holds the whole body or a parsed `Snapshot`; then
//! [`crate::store::EntitlementStore::replace_all`] swaps the compiled layer in.
//!
//! Invariants:
//! - At most `limit` bytes are read: a declared `Content-Length` above it is
//!   refused before reading, a longer body as soon as it passes the limit
//!   (413).
//! - Nothing changes unless the whole body arrived, parsed and validated: a
//!   body that breaks off (the client went away) ends the parser with an
//!   error, and only a body the feeder saw end is applied.
//! - Bounded memory in flight: at most [`CHUNKS_IN_FLIGHT`] chunks between
//!   the connection and the parser; a fast client waits for the parser.
//! - One bulk load at a time per process ([`ONE_AT_A_TIME`]): a second
//!   upload waits, its body unread, instead of compiling a second million
//!   users beside the first.

use std::io::{self, BufReader, Read};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::{applied, bad_body, internal, too_large};
use crate::entitlements::LoadError;
use crate::runtime::{ChangeError, Shared};

/// Body chunks queued for the parser at most.
const CHUNKS_IN_FLIGHT: usize = 16;

/// Held for a whole upload. Process-wide, not per listener: the memory it
/// protects is the process's.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the parser receives: a chunk of the body, the end of the body (an
/// empty chunk), or why the body broke off.
type Chunk = io::Result<Bytes>;

/// `PUT /api/v1/snapshot` with a body of at most `limit` bytes.
pub(super) async fn put_snapshot(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    limit: usize,
) -> Response<Full<Bytes>> {
    let body = req.into_body();
    if body.size_hint().lower() > u64::try_from(limit).unwrap_or(u64::MAX) {
        return too_large();
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let started = std::time::Instant::now();
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let s = Arc::clone(shared);
    let parse = tokio::task::spawn_blocking(move || {
        let reader = BufReader::with_capacity(1 << 16, ChannelReader::new(rx));
        s.store.layer_from_json(reader).map_err(|e| match e {
            LoadError::Json(message) => ChangeError::Invalid(vec![message]),
            LoadError::Invalid(v) => ChangeError::from(v),
        })
    });
    let fed = feed(Limited::new(body, limit), tx).await;
    let parsed = parse.await;
    match (fed, parsed) {
        (Fed::TooLarge, _) => too_large(),
        (Fed::Broken, _) => bad_body(),
        (Fed::Complete, Ok(Ok(api))) => {
            let (users, parsed_in) = (api.len(), started.elapsed());
            let s = Arc::clone(shared);
            let result = tokio::task::spawn_blocking(move || s.store.replace_all(api)).await;
            if matches!(result, Ok(Ok(()))) {
                let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                tracing::info!(
                    users,
                    received_and_compiled_ms = ms(parsed_in),
                    validated_and_saved_ms = ms(started.elapsed().saturating_sub(parsed_in)),
                    "snapshot replaced through the admin API"
                );
            }
            applied(result)
        }
        // Parsed without seeing the end of the body: cannot be.
        (Fed::Refused, Ok(Ok(_))) => internal(),
        (_, failed) => applied(failed.map(|r| r.map(drop))),
    }
}

/// How feeding the body to the parser ended.
#[derive(Debug, PartialEq, Eq)]
enum Fed {
    /// The whole body was sent, then the end marker.
    Complete,
    /// The body passed the limit.
    TooLarge,
    /// The body broke off (the client went away, a protocol error).
    Broken,
    /// The parser stopped reading before the end (it found an error).
    Refused,
}

/// Send `body` to the parser chunk by chunk, then the end marker. On a
/// body error the parser gets an I/O error instead, so it never takes a
/// truncated body for a complete one.
async fn feed<B>(mut body: B, tx: mpsc::Sender<Chunk>) -> Fed
where
    B: Body<Data = Bytes, Error = Box<dyn std::error::Error + Send + Sync>> + Unpin,
{
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            () = tx.closed() => return Fed::Refused,
        };
        let data = match frame {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                _ => continue, // trailers, empty frames
            },
            Some(Err(e)) => {
                let fed = if e.downcast_ref::<LengthLimitError>().is_some() {
                    Fed::TooLarge
                } else {
                    Fed::Broken
                };
                // The parser may have stopped already: nothing to tell it.
                let _ = tx
                    .send(Err(io::Error::other(format!("{fed:?} body"))))
                    .await;
                return fed;
            }
        };
        if tx.send(Ok(data)).await.is_err() {
            return Fed::Refused;
        }
    }
    match tx.send(Ok(Bytes::new())).await {
        Ok(()) => Fed::Complete,
        Err(_) => Fed::Refused,
    }
}

/// A blocking [`Read`] over the chunks [`feed`] sends. The channel closing
/// without the end marker (the feeding task was cancelled) is an error, not
/// the end of the body. Call `read` only off the async workers.
struct ChannelReader {
    rx: mpsc::Receiver<Chunk>,
    chunk: Bytes,
    ended: bool,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<Chunk>) -> Self {
        Self {
            rx,
            chunk: Bytes::new(),
            ended: false,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.chunk.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) if chunk.is_empty() => self.ended = true,
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "body ended without its end",
                    ));
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        self.chunk.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;
    use http_body::Frame;
    use http_body_util::StreamBody;

    type Frames = Vec<Result<Frame<Bytes>, io::Error>>;

    /// Feed `frames` (limited to `limit` bytes) to a reader on a blocking
    /// thread that reads to the end; how feeding ended and what was read.
    async fn run(frames: Frames, limit: usize) -> (Fed, io::Result<Vec<u8>>) {
        let body = Limited::new(StreamBody::new(stream::iter(frames)), limit);
        let (tx, rx) = mpsc::channel(2);
        let read = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            ChannelReader::new(rx).read_to_end(&mut out).map(|_| out)
        });
        let fed = feed(body, tx).await;
        (fed, read.await.unwrap())
    }

    fn data(text: &'static str) -> Result<Frame<Bytes>, io::Error> {
        Ok(Frame::data(Bytes::from_static(text.as_bytes())))
    }

    #[tokio::test]
    async fn whole_body_arrives_in_order() {
        let frames = vec![data("{\"users\""), data(""), data(":{}}")];
        let (fed, read) = run(frames, 100).await;
        assert_eq!(fed, Fed::Complete);
        assert_eq!(read.unwrap(), b"{\"users\":{}}");
    }

    #[tokio::test]
    async fn over_the_limit_is_an_error_for_both_sides() {
        let frames = vec![data("0123456789"), data("0123456789"), data("01")];
        let (fed, read) = run(frames, 20).await;
        assert_eq!(fed, Fed::TooLarge);
        assert!(read.is_err());
    }

    #[tokio::test]
    async fn a_broken_body_is_never_a_complete_one() {
        let frames = vec![data("{}"), Err(io::Error::other("connection reset"))];
        let (fed, read) = run(frames, 100).await;
        assert_eq!(fed, Fed::Broken);
        assert!(read.is_err());
    }

    #[tokio::test]
    async fn a_reader_that_stops_stops_the_feeder() {
        let frames: Frames = (0..100).map(|_| data("0123456789")).collect();
        let body = Limited::new(StreamBody::new(stream::iter(frames)), 10_000);
        let (tx, mut rx) = mpsc::channel::<Chunk>(2);
        let first = tokio::spawn(async move { rx.recv().await.map(|c| c.is_ok()) });
        assert_eq!(feed(body, tx).await, Fed::Refused);
        assert_eq!(first.await.unwrap(), Some(true));
    }

    #[test]
    fn a_cancelled_feeder_is_not_the_end_of_the_body() {
        let (tx, rx) = mpsc::channel(2);
        tx.try_send(Ok(Bytes::from_static(b"{}"))).unwrap();
        drop(tx);
        let mut out = Vec::new();
        let err = ChannelReader::new(rx).read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(out, b"{}");
    }
}
