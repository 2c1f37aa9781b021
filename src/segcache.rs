//! Encrypted-segment cache with single-flight fills (docs/hls.md §7).
//!
//! Owns the ciphertext of `e`-tagged segments: for each [`SegKey`] at most
//! one origin fetch and one encryption run at a time, however many viewers
//! ask. The first caller (a [`Lookup::Miss`]) spawns the fill task
//! (`fill_task`); callers that arrive while it runs ([`Lookup::Joined`]) and
//! after it completed ([`Lookup::Hit`]) all read the same append-only list of
//! `Bytes` pieces, each receiving ciphertext as soon as it is encrypted.
//!
//! Invariants:
//! - A key is in the in-flight map while its fill runs and enters the
//!   completed cache (moka, weighted by ciphertext bytes, with a TTL) before
//!   it leaves the map; a caller that finds neither starts a fill, checking
//!   the cache again under the map's shard lock, so two fills for one key
//!   never overlap (but a fill that can no longer be read from its start,
//!   a streaming one, is replaced by a new one for a new caller).
//! - Only complete encrypted segments of at most `max_entry_bytes` that were
//!   held whole are cached. Failed fills, non-2xx answers and errors before
//!   the head are served to the callers that joined them and then
//!   forgotten, so the next call fetches again.
//! - Budgets (`cache.max_fill_bytes`, `cache.max_segment`): the bytes held
//!   by all open fills never exceed the fill budget; a body over
//!   `max_segment`, or one the budget has no room for, streams through
//!   encryption holding a bounded window (see `fill`) and is not cached.
//! - A fill lives while someone waits on it: when the last caller holding
//!   an open fill goes away (a viewer disconnects), the fill task stops and
//!   the origin fetch with it; a fill never runs past its deadline.
//! - A body whose origin length was declared ends with exactly
//!   `encrypted_len(n)` bytes or with an error; never with a padding block
//!   after a short or long body.
//!
//! - With zero copy on ([`SegmentCache::with_zero_copy`]), the first
//!   plain-HTTP/1.x hit of a cached fill starts writing its ciphertext into
//!   a memory file, once, off the async workers; bodies made once it exists
//!   send by file ([`crate::zerocopy`]). Files stay within their budget
//!   and count in the entry's weight.
//!
//! Must not: hold a lock across an await, copy a segment per reader (readers
//! share `Bytes`), stop a fill another caller still waits on, hold more
//! than its budgets, encrypt a content-encoded body, or show a content key
//! in `Debug`.

mod body;
mod budget;
mod fill;
mod fill_task;
mod range;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use moka::policy::EvictionPolicy;

pub use self::body::SegmentBody;
use self::budget::Budget;
use self::fill::{Fill, Reader};
pub use self::fill::{SegmentError, SegmentHead};
pub use self::range::{RangeAnswer, parse_range};
use crate::body::SendBody;
use crate::capability::ByteRange;
use crate::error::ProxyError;
use crate::zerocopy::{FileBudget, ZeroCopy};

/// Longest entry lifetime (see [`SegmentCache::new`]).
const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// What identifies one ciphertext: the origin resource (URI with query, and
/// the byte range fetched from it) and the key and IV it is encrypted with.
///
/// Cheap to clone (the URI is shared). `Debug` hides the key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SegKey {
    uri: Arc<str>,
    range: Option<ByteRange>,
    key: [u8; 16],
    iv: [u8; 16],
}

impl SegKey {
    /// The key of `uri` (the full origin URI including its query), fetched
    /// whole or as `range`, encrypted with `cipher`.
    pub fn new(uri: impl Into<Arc<str>>, range: Option<ByteRange>, cipher: &Cipher) -> Self {
        Self {
            uri: uri.into(),
            range,
            key: cipher.key,
            iv: cipher.iv,
        }
    }

    /// Whether this key was built for `cipher`.
    fn is_for(&self, cipher: &Cipher) -> bool {
        self.key == cipher.key && self.iv == cipher.iv
    }
}

impl fmt::Debug for SegKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegKey")
            .field("uri", &self.uri)
            .field("range", &self.range)
            .field("key", &"MASKED")
            .field("iv", &hex::encode(self.iv))
            .finish()
    }
}

/// The AES-128 key and IV of one segment (see `cbc::iv_for_msn`).
/// `Debug` hides the key.
#[derive(Clone)]
pub struct Cipher {
    /// Content key.
    pub key: [u8; 16],
    /// Initialisation vector.
    pub iv: [u8; 16],
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cipher")
            .field("key", &"MASKED")
            .field("iv", &hex::encode(self.iv))
            .finish()
    }
}

/// How a [`SegmentCache::get`] was served, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lookup {
    /// From a completed, cached segment.
    Hit,
    /// From a fill another caller started and that is still running.
    Joined,
    /// This call started the fill.
    Miss,
}

impl Lookup {
    /// Label value for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Lookup::Hit => "hit",
            Lookup::Joined => "joined",
            Lookup::Miss => "miss",
        }
    }
}

/// A completed fill in the cache, with its weight (ciphertext bytes).
#[derive(Clone)]
struct Cached {
    fill: Arc<Fill>,
    weight: u32,
}

/// The encrypted-segment cache. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct SegmentCache {
    completed: moka::sync::Cache<SegKey, Cached>,
    inflight: Arc<DashMap<SegKey, Arc<Fill>>>,
    max_entry_bytes: u64,
    max_segment: u64,
    budget: Arc<Budget>,
    /// When set, cached segments also go into a memory file (within this
    /// budget) for zero-copy readers (`cache.zero_copy`).
    zero_copy: Option<Arc<FileBudget>>,
}

impl fmt::Debug for SegmentCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentCache")
            .field("entries", &self.entries())
            .field("weighted_bytes", &self.weighted_bytes())
            .field("inflight", &self.inflight.len())
            .field("max_entry_bytes", &self.max_entry_bytes)
            .field("max_segment", &self.max_segment)
            .field("fill_bytes_free", &self.budget.available())
            .field("zero_copy_files", &self.files())
            .finish()
    }
}

impl SegmentCache {
    /// A cache holding at most `max_bytes` of ciphertext, each entry for at
    /// most `ttl` (capped at a year); segments larger than `max_entry_bytes`
    /// are served but not kept. Eviction is LRU: on a live stream the newest
    /// segments are the ones about to be asked for, so frequency must not
    /// keep old ones. Fills are not limited (see [`SegmentCache::with_fill_limits`]).
    pub fn new(max_bytes: u64, ttl: Duration, max_entry_bytes: u64) -> Self {
        let completed = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_: &SegKey, c: &Cached| c.weight)
            // moka panics on a TTL over 1000 years; no segment needs one.
            .time_to_live(ttl.min(MAX_TTL))
            .eviction_policy(EvictionPolicy::lru())
            .build();
        Self {
            completed,
            inflight: Arc::new(DashMap::new()),
            max_entry_bytes,
            max_segment: u64::MAX,
            budget: Arc::new(Budget::new(u64::MAX)),
            zero_copy: None,
        }
    }

    /// The same cache keeping a cached segment's ciphertext in a memory
    /// file as well (written when a plain HTTP/1.x viewer first hits it),
    /// which such viewers are sent from with `sendfile`
    /// ([`crate::zerocopy`]). The file's bytes count against `max_bytes`
    /// too: every entry weighs twice its ciphertext.
    pub fn with_zero_copy(mut self, on: bool) -> Self {
        self.zero_copy = on.then(FileBudget::from_rlimit);
        self
    }

    /// Whether cached segments get a memory file ([`SegmentCache::with_zero_copy`]).
    pub fn zero_copy(&self) -> bool {
        self.zero_copy.is_some()
    }

    /// Memory files held for zero-copy readers now.
    pub fn files(&self) -> usize {
        self.zero_copy.as_ref().map_or(0, |b| b.open())
    }

    /// The same cache with fills holding whole at most `max_segment` bytes
    /// each and `max_fill_bytes` together (`cache.max_segment`,
    /// `cache.max_fill_bytes`); larger bodies stream.
    pub fn with_fill_limits(mut self, max_segment: u64, max_fill_bytes: u64) -> Self {
        self.max_segment = max_segment;
        self.budget = Arc::new(Budget::new(max_fill_bytes));
        self
    }

    /// Bytes of the fill budget free now.
    pub fn fill_bytes_free(&self) -> u64 {
        self.budget.available()
    }

    /// The segment for `key`, encrypted with `cipher` (which `key` must have
    /// been built with; otherwise [`ProxyError::Internal`]).
    ///
    /// Returns once the response head is known, not when the body is: read
    /// the body with [`Segment::body`]. `fetch` is called (in a spawned task)
    /// only on a [`Lookup::Miss`]; it should request `Accept-Encoding:
    /// identity`, wrap its body in an idle timeout (a fill waits for its
    /// origin as long as the body does) and, for a ranged fetch, check that
    /// the origin answered the range. An error from `fetch`, or an origin
    /// answer with a `Content-Encoding`, is returned to every caller joined
    /// to that fill, and the next call tries again.
    pub async fn get<F, Fut, B>(
        &self,
        key: SegKey,
        cipher: Cipher,
        fetch: F,
    ) -> Result<(Lookup, Segment), ProxyError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<http::Response<B>, ProxyError>> + Send + 'static,
        B: SendBody,
    {
        self.get_within(key, cipher, MAX_TTL, fetch).await
    }

    /// [`SegmentCache::get`] for a fill that must end within `deadline`
    /// (the origin's `total_timeout`): past it the fill fails, whatever it
    /// was waiting for (the origin, or room in its budget).
    pub async fn get_within<F, Fut, B>(
        &self,
        key: SegKey,
        cipher: Cipher,
        deadline: Duration,
        fetch: F,
    ) -> Result<(Lookup, Segment), ProxyError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<http::Response<B>, ProxyError>> + Send + 'static,
        B: SendBody,
    {
        if !key.is_for(&cipher) {
            return Err(ProxyError::Internal);
        }
        // Dropping this future (the viewer left) drops `reader`, which may
        // end the fill.
        let (lookup, reader) = self.lookup(key, cipher, deadline, fetch);
        let head = reader.fill().head().await?;
        // Only a hit's fill is cached: a file is worth writing only for a
        // segment viewers come back for (never for a miss or a join).
        let files = self.zero_copy.clone().filter(|_| lookup == Lookup::Hit);
        Ok((
            lookup,
            Segment {
                reader,
                head,
                files,
            },
        ))
    }

    /// Ciphertext bytes held by completed entries (moka's count: it settles
    /// after pending maintenance has run).
    pub fn weighted_bytes(&self) -> u64 {
        self.completed.weighted_size()
    }

    /// Number of completed entries (moka's count, as above).
    pub fn entries(&self) -> u64 {
        self.completed.entry_count()
    }

    /// Find the fill for `key`, or start one, and hold it. Takes no lock
    /// across an await.
    fn lookup<F, Fut, B>(
        &self,
        key: SegKey,
        cipher: Cipher,
        deadline: Duration,
        fetch: F,
    ) -> (Lookup, Reader)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<http::Response<B>, ProxyError>> + Send + 'static,
        B: SendBody,
    {
        if let Some(fill) = self.cached(&key) {
            return (Lookup::Hit, Reader::new(fill, None));
        }
        let entry = self.inflight.entry(key);
        // Joining under the shard lock: the fill task decides that nobody
        // holds its fill under the same lock, so a fill is never stopped
        // under a caller that just joined it.
        if let Entry::Occupied(running) = &entry
            && let Some(slot) = running.get().join()
        {
            return (Lookup::Joined, Reader::new(Arc::clone(running.get()), slot));
        }
        // A fill moves to the cache before it leaves this map; with the
        // shard locked, a second look at the cache is conclusive.
        if let Some(fill) = self.cached(entry.key()) {
            return (Lookup::Hit, Reader::new(fill, None));
        }
        let fill = Arc::new(Fill::new(Arc::clone(&self.budget), self.max_segment));
        // Held before the task starts, so it never sees nobody waiting.
        let reader = Reader::new(Arc::clone(&fill), fill.add(0));
        // Replaces a failed or streaming fill: its task removes only its own.
        let slot = entry.insert(Arc::clone(&fill));
        let job = fill_task::Job {
            key: slot.key().clone(),
            cipher,
            fill,
            completed: self.completed.clone(),
            inflight: Arc::clone(&self.inflight),
            max_entry_bytes: self.max_entry_bytes,
            deadline,
            zero_copy: self.zero_copy.is_some(),
        };
        drop(slot);
        tokio::spawn(fill_task::run(job, fetch));
        (Lookup::Miss, reader)
    }

    /// The cached fill for `key`. A cached fill cannot have failed (it is
    /// cached only once every byte is in); should one have, it is treated
    /// as absent and the next fill replaces it.
    fn cached(&self, key: &SegKey) -> Option<Arc<Fill>> {
        self.completed
            .get(key)
            .map(|c| c.fill)
            .filter(|fill| !fill.is_failed())
    }
}

/// One caller's handle on a segment: its head, and bodies over it. While
/// it (or a body over it) lives, the fill goes on.
#[derive(Debug)]
pub struct Segment {
    reader: Reader,
    head: Arc<SegmentHead>,
    /// A cache hit's file budget (`cache.zero_copy`): the first
    /// zero-copy body writes the fill's file.
    files: Option<Arc<FileBudget>>,
}

impl Clone for Segment {
    /// Another handle, keeping the fill going but (like a handle that has
    /// made a body) no byte of it.
    fn clone(&self) -> Self {
        let reader = self.reader.at(0);
        reader.unpin();
        Self {
            reader,
            head: Arc::clone(&self.head),
            files: self.files.clone(),
        }
    }
}

impl Segment {
    /// Status, content type, last modified and (when known) body length.
    pub fn head(&self) -> &SegmentHead {
        &self.head
    }

    /// The body, whole or the inclusive byte range `(start, end)` (of the
    /// ciphertext for an encrypted segment, e.g. from [`parse_range`]).
    ///
    /// Streams as the fill grows. A range must lie within the body: if the
    /// body ends before `end`, it fails with [`SegmentError::RangeBeyondEnd`];
    /// `start > end` gives an empty body. The size hint is exact for a range
    /// and for a whole body of known length.
    ///
    /// Until its first body, a handle keeps every byte of a streaming fill
    /// from its start; from then on the bodies keep what they need.
    pub fn body(&self, range: Option<(u64, u64)>) -> SegmentBody {
        let body = match range {
            Some((start, end)) => {
                SegmentBody::new(self.reader.at(start), start, Some(end.saturating_add(1)))
            }
            None => SegmentBody::new(self.reader.at(0), 0, self.head.length),
        };
        self.reader.unpin();
        body
    }

    /// [`Segment::body`] sent by file through `zero_copy` (a plain
    /// HTTP/1.x connection's queue, [`crate::zerocopy`]) when this is a
    /// cache hit whose fill has its memory file; the first such hit starts
    /// writing the file (in the background, once) and sends its pieces, as
    /// does every body past the file budget or without memfd.
    pub fn body_to(&self, range: Option<(u64, u64)>, zero_copy: Option<ZeroCopy>) -> SegmentBody {
        let body = self.body(range);
        match (zero_copy, &self.files) {
            (Some(zc), Some(files)) => {
                self.reader.fill().start_file(files);
                body.zero_copy(zc)
            }
            _ => body,
        }
    }
}
