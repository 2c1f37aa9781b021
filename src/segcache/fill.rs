//! One fill: the shared, append-only buffer a single origin fetch writes and
//! any number of readers stream from, within the fill budget.
//!
//! Invariants: the head is set once, before the first piece; pieces are
//! contiguous (each starts where the previous ended) and at most
//! [`MAX_PIECE`] bytes; the outcome is set once, and no piece is added after
//! it. Every state change is followed by `notify_waiters`, and readers create
//! their `Notified` before they look at the state, so no wake-up is lost.
//! The mutex guards only pushes, lookups and reader slots (no I/O, no await
//! inside); once the outcome is set, readers take no lock at all.
//!
//! Memory: every byte held is first taken from the shared [`Budget`]
//! ([`Fill::room`]) and given back when the fill lets it go, fails, enters
//! the completed cache or is dropped. A fill whose body is larger than
//! `max_segment` (or does not fit the budget) streams: it holds at most
//! [`STREAM_WINDOW`] bytes ahead of its slowest reader, which is why
//! readers of an open fill hold a slot with their position. With the
//! budget spent, a streaming fill still moves one piece at a time (held
//! outside the budget, at most [`MAX_PIECE`] per fill, like a connection's
//! own buffers), so viewers who stop reading cannot stall the others.

use std::error::Error;
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use tokio::sync::Notify;

use super::budget::Budget;
use crate::error::ProxyError;
use crate::zerocopy::{FileBudget, SegFile};

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
    /// A reader asked for bytes a streaming fill had already let go (not
    /// expected: a reader's slot keeps its bytes).
    #[error("segment bytes already let go")]
    Overrun,
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
    /// Every byte is in; `pieces` are those still held (all of them unless
    /// the fill streamed), `len` the whole body length.
    Complete {
        pieces: Box<[Piece]>,
        len: u64,
    },
    Failed(SegmentError),
}

/// How a fill holds its bytes (decided once the head is known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plan {
    /// The whole body's bytes were taken from the budget up front (a
    /// declared length within `max_segment`): every byte is kept.
    Reserved,
    /// Length unknown: bytes are taken piece by piece; past `max_segment`
    /// or when the budget is out, the fill turns to [`Plan::Stream`].
    Grow,
    /// Too large to hold: at most [`STREAM_WINDOW`] bytes ahead of the
    /// slowest reader are kept; what every reader has passed is let go.
    /// Never cached; a caller arriving once bytes were let go starts a
    /// fill of its own.
    Stream,
}

/// Pieces appended so far, while the fill is open, and who reads them.
#[derive(Debug)]
struct Growing {
    /// Pieces still held, in order (the first starts at `base`).
    pieces: Vec<Piece>,
    /// Bytes pushed so far (the absolute end).
    len: u64,
    /// Offset of the first byte still held (0 unless the fill streamed).
    base: u64,
    /// Next offset each reader wants, by slot; [`FREE`] for an unused slot,
    /// [`UNPINNED`] for a hold that needs no byte kept.
    readers: Vec<u64>,
    /// Slots in use.
    live: usize,
    plan: Plan,
    /// Budget bytes this fill has taken and not given back.
    taken: u64,
}

/// An unused reader slot.
const FREE: u64 = u64::MAX;

/// A slot that keeps the fill going but no byte in it (a `Segment` whose
/// bodies have their own slots).
const UNPINNED: u64 = u64::MAX - 1;

/// Most bytes a streaming fill holds ahead of its slowest reader.
pub(super) const STREAM_WINDOW: u64 = 1 << 20;

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
#[derive(Debug)]
pub(crate) struct Fill {
    head: OnceLock<Result<Arc<SegmentHead>, ProxyError>>,
    growing: Mutex<Growing>,
    outcome: OnceLock<Outcome>,
    notify: Arc<Notify>,
    /// Woken when a reader of a streaming fill moves on (room may be free).
    progress: Notify,
    /// Woken when a reader leaves (the fill may be abandoned).
    left: Notify,
    budget: Arc<Budget>,
    max_segment: u64,
    /// The whole ciphertext in a memory file, for zero-copy readers; set
    /// once, by the write the first zero-copy hit starts (`cache.zero_copy`).
    file: OnceLock<Arc<SegFile>>,
    /// Set by the first [`Fill::start_file`].
    file_started: AtomicBool,
}

impl Drop for Fill {
    fn drop(&mut self) {
        let g = self
            .growing
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        self.budget.give(mem::take(&mut g.taken));
    }
}

impl Fill {
    /// An empty fill taking its bytes from `budget`, holding at most
    /// `max_segment` of them whole.
    pub(super) fn new(budget: Arc<Budget>, max_segment: u64) -> Self {
        Self {
            head: OnceLock::new(),
            growing: Mutex::new(Growing {
                pieces: Vec::new(),
                len: 0,
                base: 0,
                readers: Vec::new(),
                live: 0,
                plan: Plan::Grow,
                taken: 0,
            }),
            outcome: OnceLock::new(),
            notify: Arc::new(Notify::new()),
            progress: Notify::new(),
            left: Notify::new(),
            budget,
            max_segment,
            file: OnceLock::new(),
            file_started: AtomicBool::new(false),
        }
    }

    /// The memory file of a cached fill, once written.
    pub(super) fn file(&self) -> Option<&Arc<SegFile>> {
        self.file.get()
    }

    /// Start writing the memory file of a complete fill held whole, once,
    /// off the async workers (`spawn_blocking`; inline outside a runtime).
    /// Bodies made before it is done send their pieces. Nothing happens
    /// for a fill that is open, failed, streamed or empty, or when the file
    /// budget is full.
    pub(super) fn start_file(self: &Arc<Self>, budget: &Arc<FileBudget>) {
        if self.file.get().is_some() || self.file_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let (fill, budget) = (Arc::clone(self), Arc::clone(budget));
        let write = move || {
            if let Err(e) = fill.write_file(&budget) {
                tracing::debug!(error = %e, "segment kept without a zero-copy file");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(write)),
            Err(_) => write(),
        }
    }

    fn write_file(&self, budget: &Arc<FileBudget>) -> std::io::Result<()> {
        let Some(Outcome::Complete { pieces, len }) = self.outcome.get() else {
            return Err(std::io::Error::other("fill not complete"));
        };
        if *len == 0 || pieces.first().map_or(*len, |p| p.start) != 0 {
            return Err(std::io::Error::other("fill empty or not held whole"));
        }
        let file = SegFile::create(pieces.iter().map(|p| &p.bytes[..]), budget)?;
        let _ = self.file.set(Arc::new(file));
        Ok(())
    }

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

    /// Decide how the body is held, knowing its ciphertext length when the
    /// origin declared one.
    pub(super) fn plan(&self, length: Option<u64>) {
        let plan = match length {
            Some(n) if n <= self.max_segment && self.budget.try_take(n) => {
                self.lock().taken += n;
                Plan::Reserved
            }
            Some(_) => Plan::Stream,
            None => Plan::Grow,
        };
        self.lock().plan = plan;
    }

    /// Whether the fill holds (or held) only a window of its body.
    pub(super) fn is_streaming(&self) -> bool {
        self.lock().plan == Plan::Stream
    }

    /// Wait until `n` more bytes may be held (see [`Plan`]), then account
    /// for them. Call before each [`Fill::push`] of `n` bytes.
    pub(super) async fn room(&self, n: u64) {
        let plan = {
            let mut g = self.lock();
            if g.plan == Plan::Grow && (g.len + n > self.max_segment || !self.budget.try_take(n)) {
                g.plan = Plan::Stream;
            } else if g.plan == Plan::Grow {
                g.taken += n;
            }
            g.plan
        };
        if plan != Plan::Stream {
            return;
        }
        // Room in the window, from the budget; or, with the budget out,
        // one piece once the readers have taken everything else. Never a
        // wait on the budget itself: its bytes may be held by fills whose
        // viewers do not read, and this fill's viewer must not wait on them.
        loop {
            let progress = self.progress.notified();
            let held = self.let_go();
            if held + n <= STREAM_WINDOW && self.budget.try_take(n) {
                self.lock().taken += n;
                return;
            }
            if held == 0 {
                return;
            }
            progress.await;
        }
    }

    /// Drop the pieces every reader has passed (a streaming fill only),
    /// giving their bytes back; returns the bytes still held.
    fn let_go(&self) -> u64 {
        let mut g = self.lock();
        let slowest = g
            .readers
            .iter()
            .copied()
            .filter(|&p| p < UNPINNED)
            .min()
            .unwrap_or(g.len);
        let keep = g
            .pieces
            .iter()
            .position(|p| p.start + p.bytes.len() as u64 > slowest)
            .unwrap_or(g.pieces.len());
        if keep > 0 {
            let freed: u64 = g.pieces.drain(..keep).map(|p| p.bytes.len() as u64).sum();
            g.base = g.pieces.first().map_or(g.len, |p| p.start);
            let freed = freed.min(g.taken);
            g.taken -= freed;
            self.budget.give(freed);
        }
        g.len - g.base
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

    /// Stop counting the fill's bytes against the budget (it entered the
    /// completed cache, which weighs them itself).
    pub(super) fn release_budget(&self) {
        let mut g = self.lock();
        self.budget.give(mem::take(&mut g.taken));
    }

    /// End the fill successfully (unless it already ended).
    pub(super) fn complete(&self) {
        {
            let mut g = self.lock();
            if self.outcome.get().is_none() {
                let pieces = mem::take(&mut g.pieces).into_boxed_slice();
                let len = g.len;
                let _ = self.outcome.set(Outcome::Complete { pieces, len });
            }
        }
        self.notify.notify_waiters();
    }

    /// End the fill with `error`, unless it already ended. A head not yet
    /// published becomes [`ProxyError::Internal`]. Its bytes are let go.
    pub(super) fn fail(&self, error: SegmentError) {
        let _ = self.head.set(Err(ProxyError::Internal));
        {
            let mut g = self.lock();
            if self.outcome.set(Outcome::Failed(error)).is_ok() {
                g.pieces = Vec::new();
                self.budget.give(mem::take(&mut g.taken));
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

    /// A reader slot at offset 0, if a new caller can still read this fill
    /// from its start: it has not failed and has let no byte go. `Some(None)`
    /// for an ended fill, whose readers need no slot.
    pub(super) fn join(&self) -> Option<Option<usize>> {
        match self.outcome.get() {
            Some(Outcome::Failed(_)) => None,
            Some(Outcome::Complete { .. }) => Some(None),
            None => {
                let mut g = self.lock();
                if self.outcome.get().is_some() || g.base > 0 {
                    // Ended meanwhile (a complete fill left the map before
                    // it ended) or streaming past the start: start anew.
                    return None;
                }
                Some(Some(Self::add_reader(&mut g, 0)))
            }
        }
    }

    /// A reader slot at `pos` for a caller already holding one (so the
    /// bytes from `pos` on are still there); `None` for an ended fill.
    pub(super) fn add(&self, pos: u64) -> Option<usize> {
        if self.is_done() {
            return None;
        }
        let mut g = self.lock();
        let pos = pos.max(g.base);
        Some(Self::add_reader(&mut g, pos))
    }

    fn add_reader(g: &mut Growing, pos: u64) -> usize {
        g.live += 1;
        match g.readers.iter().position(|&p| p == FREE) {
            Some(slot) => {
                g.readers[slot] = pos;
                slot
            }
            None => {
                g.readers.push(pos);
                g.readers.len() - 1
            }
        }
    }

    /// Free reader slot `slot`.
    pub(super) fn remove(&self, slot: usize) {
        {
            let mut g = self.lock();
            if let Some(p) = g.readers.get_mut(slot)
                && *p != FREE
            {
                *p = FREE;
                g.live -= 1;
            }
        }
        self.left.notify_waiters();
        self.progress.notify_waiters();
    }

    /// Let slot `slot` keep the fill going without keeping any byte.
    pub(super) fn unpin(&self, slot: usize) {
        {
            let mut g = self.lock();
            if let Some(p) = g.readers.get_mut(slot)
                && *p != FREE
            {
                *p = UNPINNED;
            }
        }
        self.progress.notify_waiters();
    }

    /// Readers holding a slot.
    pub(super) fn readers(&self) -> usize {
        self.lock().live
    }

    /// The `Notify` woken whenever a reader leaves.
    pub(super) fn left(&self) -> &Notify {
        &self.left
    }

    /// What is at absolute offset `pos` for the reader in `slot` (which now
    /// wants `pos`); `hint` is the piece index the previous read returned
    /// (a guess, not a requirement).
    pub(super) fn read(&self, slot: Option<usize>, pos: u64, hint: usize) -> Read {
        if let Some(outcome) = self.outcome.get() {
            return read_final(outcome, pos, hint);
        }
        let mut g = self.lock();
        // The outcome is set under the lock, so this second look is exact.
        if let Some(outcome) = self.outcome.get() {
            return read_final(outcome, pos, hint);
        }
        let moved = match slot.and_then(|s| g.readers.get_mut(s)) {
            Some(p) if *p < UNPINNED && *p != pos => {
                *p = pos;
                true
            }
            _ => false,
        };
        let streaming = g.plan == Plan::Stream;
        let found = if pos < g.base {
            Read::Failed(SegmentError::Overrun)
        } else {
            match find(&g.pieces, pos, hint) {
                Some((bytes, index)) => Read::Data(bytes, index),
                None => Read::Pending,
            }
        };
        drop(g);
        if moved && streaming {
            self.progress.notify_waiters();
        }
        found
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
        Outcome::Complete { pieces, len } => match find(pieces, pos, hint) {
            Some((bytes, index)) => Read::Data(bytes, index),
            None if pos < pieces.first().map_or(*len, |p| p.start) => {
                Read::Failed(SegmentError::Overrun)
            }
            None => Read::End(*len),
        },
    }
}

/// One caller's hold on a fill (a [`Segment`](super::Segment) or a body
/// over it). While any is held the fill goes on; when the last one of an
/// open fill is dropped, the fill task stops it (the origin fetch ends).
#[derive(Debug)]
pub(super) struct Reader {
    fill: Arc<Fill>,
    /// Its slot in the fill; `None` for an ended fill (nothing to track).
    slot: Option<usize>,
}

impl Reader {
    /// A hold on `fill` through `slot` (from [`Fill::join`] or [`Fill::add`]).
    pub(super) fn new(fill: Arc<Fill>, slot: Option<usize>) -> Self {
        Self { fill, slot }
    }

    /// Another hold on the same fill, reading from `pos`.
    pub(super) fn at(&self, pos: u64) -> Self {
        let slot = self.fill.add(pos);
        Self::new(Arc::clone(&self.fill), slot)
    }

    /// Keep the fill going, but no byte of it (a reader that will not read).
    pub(super) fn unpin(&self) {
        if let Some(slot) = self.slot {
            self.fill.unpin(slot);
        }
    }

    /// The fill.
    pub(super) fn fill(&self) -> &Arc<Fill> {
        &self.fill
    }

    /// [`Fill::read`] for this reader.
    pub(super) fn read(&self, pos: u64, hint: usize) -> Read {
        self.fill.read(self.slot, pos, hint)
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.fill.remove(slot);
        }
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

    fn test_fill() -> Fill {
        Fill::new(Arc::new(Budget::new(1 << 20)), 1 << 20)
    }

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
        let fill = test_fill();
        assert!(matches!(fill.read(None, 0, 0), Read::Pending));
        fill.push(Bytes::from_static(b"abc"));
        fill.push(Bytes::new());
        fill.push(Bytes::from_static(b"de"));
        assert!(matches!(fill.read(None, 1, 0), Read::Data(ref b, 0) if &b[..] == b"bc"));
        assert!(matches!(fill.read(None, 5, 1), Read::Pending));
        assert_eq!(fill.len(), 5);
        fill.complete();
        assert!(matches!(fill.read(None, 3, 0), Read::Data(ref b, 1) if &b[..] == b"de"));
        assert!(matches!(fill.read(None, 5, 1), Read::End(5)));
        // A completed fill cannot fail or grow any more.
        fill.fail(SegmentError::Aborted);
        fill.push(Bytes::from_static(b"x"));
        assert!(matches!(fill.read(None, 5, 1), Read::End(5)));
        assert!(fill.is_done() && !fill.is_failed());

        let fill = test_fill();
        fill.push(Bytes::from_static(b"abc"));
        fill.fail(SegmentError::Aborted);
        assert!(matches!(
            fill.read(None, 0, 0),
            Read::Failed(SegmentError::Aborted)
        ));
        assert!(fill.is_failed());
    }
}
