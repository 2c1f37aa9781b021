//! One fill: the shared, append-only buffer a single origin fetch writes and
//! any number of readers stream from.
//!
//! Invariants: the head is set once, before the first piece; pieces are
//! contiguous (each starts where the previous ended) and at most
//! [`MAX_PIECE`] bytes; the outcome is set once, and no piece is added after
//! it. Every state change is followed by `notify_waiters`, and readers create
//! their `Notified` before they look at the state, so no wake-up is lost.
//! The mutex guards only pushes and lookups (no I/O, no await inside); once
//! the outcome is set, readers take no lock at all.

use std::error::Error;
use std::mem;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use tokio::sync::Notify;

use crate::error::ProxyError;

/// Largest piece stored, and so the largest frame a reader sends.
pub(super) const MAX_PIECE: usize = 64 * 1024;

/// The response head every reader of one fill shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHead {
    /// 200 for an encrypted segment (the ciphertext is a resource of its own,
    /// even when the origin answered 206 to a ranged fetch); the origin's
    /// status for a passed-through non-2xx answer.
    pub status: StatusCode,
    /// Whether the body is ciphertext (`false`: the origin's own error body,
    /// at most 64 KiB of it, neither encrypted nor cached).
    pub encrypted: bool,
    /// The origin's `Content-Type`.
    pub content_type: Option<HeaderValue>,
    /// The origin's `Last-Modified`.
    pub last_modified: Option<HeaderValue>,
    /// Body length: `encrypted_len(n)` when the origin declared n bytes;
    /// `None` when unknown (and always for a passed-through answer).
    pub length: Option<u64>,
}

/// Why a segment body failed. Readers get it boxed as their body error,
/// which makes hyper abort the response instead of ending it cleanly.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SegmentError {
    /// The origin body ended before its declared `Content-Length`.
    #[error("origin body ended after {received} of {declared} declared bytes")]
    Truncated {
        /// The origin's `Content-Length`.
        declared: u64,
        /// Bytes it delivered.
        received: u64,
    },
    /// The origin body carried more than its declared `Content-Length`.
    #[error("origin body longer than its declared {declared} bytes")]
    Overlong {
        /// The origin's `Content-Length`.
        declared: u64,
    },
    /// Reading the origin body failed (reset, idle timeout, …).
    #[error("origin body failed: {0}")]
    Origin(#[source] Arc<dyn Error + Send + Sync>),
    /// The fill task ended without finishing (it panicked or the runtime shut down).
    #[error("segment fill aborted")]
    Aborted,
    /// The cipher backend failed (not expected; see
    /// [`crate::cbc::CipherFailed`]): the ciphertext is an unpadded prefix.
    #[error(transparent)]
    Cipher(#[from] crate::cbc::CipherFailed),
    /// The body ended before the end of the requested range.
    #[error("segment is {len} bytes, range ends at byte {end}")]
    RangeBeyondEnd {
        /// Last byte requested (inclusive).
        end: u64,
        /// Length of the segment.
        len: u64,
    },
}

/// A run of body bytes starting at absolute offset `start`.
#[derive(Debug, Clone)]
pub(super) struct Piece {
    pub(super) start: u64,
    pub(super) bytes: Bytes,
}

/// How a fill ended.
#[derive(Debug)]
enum Outcome {
    Complete(Box<[Piece]>),
    Failed(SegmentError),
}

/// Pieces appended so far, while the fill is open.
#[derive(Debug, Default)]
struct Growing {
    pieces: Vec<Piece>,
    len: u64,
}

/// What a reader finds at its position.
#[derive(Debug)]
pub(super) enum Read {
    /// Bytes starting exactly at the position (never empty), and the index of
    /// the piece they came from (a hint for the next read).
    Data(Bytes, usize),
    /// The body ended at `len` bytes, at or before the position.
    End(u64),
    /// The fill failed.
    Failed(SegmentError),
    /// Nothing there yet.
    Pending,
}

/// Shared state of one fill (see the module docs for its invariants).
#[derive(Debug, Default)]
pub(crate) struct Fill {
    head: OnceLock<Result<Arc<SegmentHead>, ProxyError>>,
    growing: Mutex<Growing>,
    outcome: OnceLock<Outcome>,
    notify: Arc<Notify>,
}

impl Fill {
    /// The `Notify` woken on every state change; create a `Notified` from it
    /// before looking at the state.
    pub(super) fn notify(&self) -> &Arc<Notify> {
        &self.notify
    }

    /// Wait for the head (or the error that came instead of it).
    pub(super) async fn head(&self) -> Result<Arc<SegmentHead>, ProxyError> {
        loop {
            let notified = self.notify.notified();
            if let Some(head) = self.head.get() {
                return head.clone();
            }
            notified.await;
        }
    }

    /// Publish the head (first call wins).
    pub(super) fn set_head(&self, head: Result<SegmentHead, ProxyError>) {
        let _ = self.head.set(head.map(Arc::new));
        self.notify.notify_waiters();
    }

    /// Append `bytes` (at most [`MAX_PIECE`], not empty) and wake readers.
    pub(super) fn push(&self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        {
            let mut g = self.lock();
            if self.outcome.get().is_some() {
                return;
            }
            let start = g.len;
            g.len += bytes.len() as u64;
            g.pieces.push(Piece { start, bytes });
        }
        self.notify.notify_waiters();
    }

    /// Bytes pushed so far.
    pub(super) fn len(&self) -> u64 {
        self.lock().len
    }

    /// End the fill successfully (unless it already ended).
    pub(super) fn complete(&self) {
        {
            let mut g = self.lock();
            if self.outcome.get().is_none() {
                let pieces = mem::take(&mut g.pieces).into_boxed_slice();
                let _ = self.outcome.set(Outcome::Complete(pieces));
            }
        }
        self.notify.notify_waiters();
    }

    /// End the fill with `error`, unless it already ended. A head not yet
    /// published becomes [`ProxyError::Internal`].
    pub(super) fn fail(&self, error: SegmentError) {
        let _ = self.head.set(Err(ProxyError::Internal));
        {
            let mut g = self.lock();
            if self.outcome.set(Outcome::Failed(error)).is_ok() {
                g.pieces = Vec::new();
            }
        }
        self.notify.notify_waiters();
    }

    /// Whether the fill has ended (either way).
    pub(super) fn is_done(&self) -> bool {
        self.outcome.get().is_some()
    }

    /// Whether the fill has failed.
    pub(super) fn is_failed(&self) -> bool {
        matches!(self.outcome.get(), Some(Outcome::Failed(_)))
    }

    /// What is at absolute offset `pos`; `hint` is the piece index the
    /// previous read returned (a guess, not a requirement).
    pub(super) fn read(&self, pos: u64, hint: usize) -> Read {
        if let Some(outcome) = self.outcome.get() {
            return read_final(outcome, pos, hint);
        }
        let g = self.lock();
        // The outcome is set under the lock, so this second look is exact.
        if let Some(outcome) = self.outcome.get() {
            return read_final(outcome, pos, hint);
        }
        match find(&g.pieces, pos, hint) {
            Some((bytes, index)) => Read::Data(bytes, index),
            None => Read::Pending,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Growing> {
        // A panic elsewhere cannot leave `Growing` half-updated in a way that
        // matters to readers (a push is one `Vec::push` after the length), so
        // a poisoned lock is still usable.
        self.growing.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn read_final(outcome: &Outcome, pos: u64, hint: usize) -> Read {
    match outcome {
        Outcome::Failed(e) => Read::Failed(e.clone()),
        Outcome::Complete(pieces) => match find(pieces, pos, hint) {
            Some((bytes, index)) => Read::Data(bytes, index),
            None => Read::End(pieces.last().map_or(0, |p| p.start + p.bytes.len() as u64)),
        },
    }
}

/// The bytes of `pieces` from `pos` to the end of the piece holding it.
fn find(pieces: &[Piece], pos: u64, hint: usize) -> Option<(Bytes, usize)> {
    let holds = |p: &Piece| p.start <= pos && pos < p.start + p.bytes.len() as u64;
    let index = [hint, hint.wrapping_add(1)]
        .into_iter()
        .find(|&i| pieces.get(i).is_some_and(holds))
        .or_else(|| {
            let i = pieces.partition_point(|p| p.start + p.bytes.len() as u64 <= pos);
            pieces.get(i).is_some_and(holds).then_some(i)
        })?;
    let piece = pieces.get(index)?;
    let offset = usize::try_from(pos - piece.start).ok()?;
    Some((piece.bytes.slice(offset..), index))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(sizes: &[usize]) -> Vec<Piece> {
        let mut start = 0;
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let p = Piece {
                    start,
                    bytes: Bytes::from(vec![i as u8; n]),
                };
                start += n as u64;
                p
            })
            .collect()
    }

    #[test]
    fn find_any_position_with_any_hint() {
        let ps = pieces(&[3, 1, 5, 2]);
        let total: u64 = 11;
        for pos in 0..total {
            for hint in [0, 1, 2, 3, 7, usize::MAX] {
                let (bytes, index) = find(&ps, pos, hint).unwrap();
                let piece = &ps[index];
                assert!(piece.start <= pos, "pos={pos} hint={hint}");
                assert_eq!(
                    piece.start + piece.bytes.len() as u64,
                    pos + bytes.len() as u64
                );
                assert!(bytes.iter().all(|&b| b == index as u8));
            }
        }
        assert!(find(&ps, total, 0).is_none());
        assert!(find(&[], 0, 0).is_none());
    }

    #[test]
    fn push_complete_fail_state_machine() {
        let fill = Fill::default();
        assert!(matches!(fill.read(0, 0), Read::Pending));
        fill.push(Bytes::from_static(b"abc"));
        fill.push(Bytes::new());
        fill.push(Bytes::from_static(b"de"));
        assert!(matches!(fill.read(1, 0), Read::Data(ref b, 0) if &b[..] == b"bc"));
        assert!(matches!(fill.read(5, 1), Read::Pending));
        assert_eq!(fill.len(), 5);
        fill.complete();
        assert!(matches!(fill.read(3, 0), Read::Data(ref b, 1) if &b[..] == b"de"));
        assert!(matches!(fill.read(5, 1), Read::End(5)));
        // A completed fill cannot fail or grow any more.
        fill.fail(SegmentError::Aborted);
        fill.push(Bytes::from_static(b"x"));
        assert!(matches!(fill.read(5, 1), Read::End(5)));
        assert!(fill.is_done() && !fill.is_failed());

        let fill = Fill::default();
        fill.push(Bytes::from_static(b"abc"));
        fill.fail(SegmentError::Aborted);
        assert!(matches!(
            fill.read(0, 0),
            Read::Failed(SegmentError::Aborted)
        ));
        assert!(fill.is_failed());
    }
}
