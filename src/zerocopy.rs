//! Zero-copy segment bodies on plain HTTP/1.1: the kernel sends a cached
//! segment's ciphertext from a memory file (`memfd`) with `sendfile`, so
//! its bytes are never copied from user memory into the socket.
//!
//! hyper writes every HTTP/1.1 response (head, framing, keep-alive,
//! pipelining); it does not know about files (hyper issue #3026). So a
//! body that can go by file hands hyper a *marker* instead of its bytes: a
//! `Bytes` of the right length that points into [`MARKER`], a zeroed
//! region allocated once that no real buffer can be in, and queues the
//! file range it stands
//! for ([`Run`]) on the connection's [`ZeroCopy`] queue. The connection's
//! stream ([`Spliced`]) writes real bytes as they are and, for a write
//! that starts at a marker, `sendfile`s the range at the queue's front.
//! hyper queues body frames in the order it polls them and writes them in
//! that order, so the queue's front is always the marker being written.
//! A queued run holds the connection's in-flight guard: hyper is done with
//! a body once its last frame is queued, and the connection must not count
//! as idle while that frame's bytes are still being sent.
//!
//! The rule that keeps it safe: markers exist only on a connection whose
//! bytes go straight to a TCP socket through [`Spliced`] (plain HTTP/1.x;
//! never TLS, never HTTP/2, where a framing or cipher layer would read the
//! marker's zeros). The accept path hands a [`ZeroCopy`] to exactly those
//! requests, and a write whose marker does not match the queue's front (a
//! length or order mismatch) fails the connection instead of sending
//! anything else.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write as _};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Largest marker, and so the most a zero-copy body yields in one frame:
/// a whole segment of usual size, so that one `sendfile` call sends it
/// (64 KiB calls were measured no faster than `writev`, and a 1 MiB
/// segment's 16-byte padding tail as a second call cost a third of its
/// throughput). A little over 4 MiB, so a 4 MiB segment's ciphertext fits.
pub const MAX_MARKER: usize = (4 << 20) + (64 << 10);

/// The region markers point into, allocated zeroed on first use (a
/// `static` array would put its bytes in every binary). Never read or sent
/// (a write that starts in it is a `sendfile` of the run it stands for), so
/// its pages are never touched: it costs address space, not memory.
static MARKER: OnceLock<Box<[u8]>> = OnceLock::new();

fn marker() -> &'static [u8] {
    MARKER.get_or_init(|| vec![0u8; MAX_MARKER].into_boxed_slice())
}

/// How many segment files may be open at once: a quarter of the process's
/// open-file limit (`ulimit -n`), so cached segments never take the
/// descriptors connections need. A segment over the budget is served from
/// memory as before.
#[derive(Debug)]
pub struct FileBudget {
    open: AtomicUsize,
    max: usize,
}

impl FileBudget {
    /// A budget of `max` files.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            max,
        })
    }

    /// A quarter of the soft `RLIMIT_NOFILE`; 65,536 files when it is
    /// unlimited.
    pub fn from_rlimit() -> Arc<Self> {
        let quarter = nofile_limit().map_or(1 << 16, |n| n / 4);
        Self::new(usize::try_from(quarter).unwrap_or(usize::MAX))
    }

    /// Files open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn take(self: &Arc<Self>) -> Option<Taken> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Taken(Arc::clone(self)))
    }
}

/// One file's place in its [`FileBudget`], given back on drop.
#[derive(Debug)]
struct Taken(Arc<FileBudget>);

impl Drop for Taken {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The soft open-file limit; `None` when unlimited.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn nofile_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn nofile_limit() -> Option<u64> {
    Some(0)
}

/// How a listener's response bodies reach the socket (the `send` of its
/// `listening` log line and `/healthz`'s `send_path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendPath {
    /// Cached segments by `sendfile` from their memory file
    /// ([`crate::zerocopy`]); everything else written from memory.
    Sendfile,
    /// Written from memory (`writev`).
    Copy,
    /// Encrypted by rustls in user space, then written (kTLS, where the
    /// kernel would encrypt and `sendfile` could serve HTTPS too, is not
    /// used: it needs the kernel's `tls` module).
    Rustls,
}

impl SendPath {
    /// A plain viewer listener's path, with `cache.zero_copy` on or off.
    pub fn plain(zero_copy: bool) -> Self {
        if zero_copy && cfg!(any(target_os = "linux", target_os = "android")) {
            SendPath::Sendfile
        } else {
            SendPath::Copy
        }
    }

    /// Its name in logs and `/healthz`.
    pub fn as_str(self) -> &'static str {
        match self {
            SendPath::Sendfile => "sendfile",
            SendPath::Copy => "copy",
            SendPath::Rustls => "rustls",
        }
    }
}

/// One cached segment's ciphertext in an anonymous memory file.
pub struct SegFile {
    fd: std::os::fd::OwnedFd,
    len: u64,
    _budget: Taken,
}

impl std::fmt::Debug for SegFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegFile").field("len", &self.len).finish()
    }
}

impl SegFile {
    /// A memory file holding `pieces`, in order, counted in `budget`.
    /// Fails when the budget is full or the kernel gives no file (no
    /// `memfd`, out of descriptors or memory).
    pub fn create<'a>(
        pieces: impl IntoIterator<Item = &'a [u8]>,
        budget: &Arc<FileBudget>,
    ) -> io::Result<Self> {
        let taken = budget
            .take()
            .ok_or_else(|| io::Error::other("zero-copy file budget (ulimit -n / 4) is full"))?;
        let fd = memfd()?;
        let mut file = std::fs::File::from(fd);
        let mut len = 0u64;
        for piece in pieces {
            file.write_all(piece)?;
            len += piece.len() as u64;
        }
        Ok(Self {
            fd: file.into(),
            len,
            _budget: taken,
        })
    }

    /// Bytes in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn memfd() -> io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{MemfdFlags, memfd_create};
    Ok(memfd_create("tollgate-segment", MemfdFlags::CLOEXEC)?)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn memfd() -> io::Result<std::os::fd::OwnedFd> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Something held while a run waits to be sent (the connection's
/// in-flight guard: hyper is done with a body once it has queued its last
/// frame, but the connection is not idle while that frame's run is unsent).
pub type Hold = Box<dyn Send + Sync>;

/// Makes a [`Hold`] for each queued run.
pub type Holder = Arc<dyn Fn() -> Hold + Send + Sync>;

/// A range of a [`SegFile`] that a marker stands for.
struct Run {
    file: Arc<SegFile>,
    offset: u64,
    len: usize,
    _hold: Option<Hold>,
}

/// One connection's queue of runs, shared by the bodies that add to it and
/// the [`Spliced`] stream that sends them. Cheap to clone.
#[derive(Clone, Default)]
pub struct ZeroCopy {
    runs: Arc<Mutex<VecDeque<Run>>>,
    /// Bytes sent by file (`tollgate_zero_copy_bytes_total`).
    sent: Counter,
    holder: Option<Holder>,
}

impl std::fmt::Debug for ZeroCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZeroCopy")
            .field("queued", &self.lock().len())
            .field("sent", &self.sent.get())
            .finish_non_exhaustive()
    }
}

impl ZeroCopy {
    /// An empty queue counting what it sends in `sent`, holding a
    /// `holder()` for each run until it is sent or dropped.
    pub fn new(sent: Counter, holder: Holder) -> Self {
        Self {
            runs: Arc::default(),
            sent,
            holder: Some(holder),
        }
    }

    /// A marker for `len` bytes of `file` from `offset` (`len` at most
    /// [`MAX_MARKER`], within the file), queued for the stream to send.
    /// `None` when the range does not fit: the caller sends real bytes.
    pub fn piece(&self, file: &Arc<SegFile>, offset: u64, len: usize) -> Option<Bytes> {
        let marker = marker().get(..len)?;
        if len == 0 || offset.checked_add(len as u64)? > file.len {
            return None;
        }
        let hold = self.holder.as_ref().map(|h| h());
        self.lock().push_back(Run {
            file: Arc::clone(file),
            offset,
            len,
            _hold: hold,
        });
        Some(Bytes::from_static(marker))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Run>> {
        // A push or pop cannot leave the queue half-changed.
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where `buf` lies in [`MARKER`]: its offset, when it is a marker.
fn marker_offset(buf: &[u8]) -> Option<usize> {
    // No marker was ever made while the region does not exist.
    let start = MARKER.get()?.as_ptr() as usize;
    let at = buf.as_ptr() as usize;
    (at >= start && at + buf.len() <= start + MAX_MARKER && !buf.is_empty()).then(|| at - start)
}

fn mismatch() -> io::Error {
    io::Error::other("zero-copy marker does not match the queued file range")
}

/// A plain TCP stream that sends markers' runs with `sendfile` and
/// everything else as written. Without a queue (zero copy off) it is the
/// TCP stream, and a marker fails the write.
#[derive(Debug)]
pub struct Spliced {
    tcp: TcpStream,
    zc: Option<ZeroCopy>,
}

impl Spliced {
    /// `tcp`, sending the runs queued on `zc`.
    pub fn new(tcp: TcpStream, zc: Option<ZeroCopy>) -> Self {
        Self { tcp, zc }
    }

    /// Send the run `marker` stands for, from where `marker` starts in it.
    fn poll_send_run(&self, cx: &mut Context<'_>, marker: &[u8]) -> Poll<io::Result<usize>> {
        let (Some(into), Some(zc)) = (marker_offset(marker), &self.zc) else {
            return Poll::Ready(Err(mismatch()));
        };
        // hyper advances a marker from its front: `into` bytes of the run
        // are sent, `marker.len()` remain.
        let (file, offset, remaining) = {
            let runs = zc.lock();
            let Some(run) = runs.front() else {
                return Poll::Ready(Err(mismatch()));
            };
            if into + marker.len() != run.len {
                return Poll::Ready(Err(mismatch()));
            }
            (
                Arc::clone(&run.file),
                run.offset + into as u64,
                marker.len(),
            )
        };
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            match self.tcp.try_io(Interest::WRITABLE, || {
                sendfile(&self.tcp, &file, offset, remaining)
            }) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    zc.sent.inc_by(n as u64);
                    if n == remaining {
                        zc.lock().pop_front();
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn sendfile(tcp: &TcpStream, file: &SegFile, offset: u64, len: usize) -> io::Result<usize> {
    let mut at = offset;
    Ok(rustix::fs::sendfile(tcp, &file.fd, Some(&mut at), len)?)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn sendfile(_: &TcpStream, _: &SegFile, _: u64, _: usize) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

impl AsyncRead for Spliced {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Spliced {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if marker_offset(buf).is_some() {
            return this.poll_send_run(cx, buf);
        }
        Pin::new(&mut this.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let bufs = match bufs.iter().position(|b| !b.is_empty()) {
            Some(first) => &bufs[first..],
            None => return Poll::Ready(Ok(0)),
        };
        if marker_offset(&bufs[0]).is_some() {
            return this.poll_send_run(cx, &bufs[0]);
        }
        // Real bytes up to the first marker, in one writev.
        let real = bufs
            .iter()
            .position(|b| marker_offset(b).is_some())
            .unwrap_or(bufs.len());
        Pin::new(&mut this.tcp).poll_write_vectored(cx, &bufs[..real])
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_told_from_real_bytes() {
        let file = Arc::new(SegFile::create([&b"0123456789"[..]], &FileBudget::new(9)).unwrap());
        let zc = ZeroCopy::default();
        let m = zc.piece(&file, 2, 5).unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(marker_offset(&m), Some(0));
        assert_eq!(marker_offset(&m[3..]), Some(3));
        assert_eq!(marker_offset(b"real bytes"), None);
        assert_eq!(marker_offset(&Bytes::from(vec![0u8; 5])), None);
        // Out of the file or over the marker: no marker, nothing queued.
        assert!(zc.piece(&file, 8, 5).is_none());
        assert!(zc.piece(&file, 0, 0).is_none());
        let big = vec![1u8; MAX_MARKER + 1];
        let big = Arc::new(SegFile::create([&big[..]], &FileBudget::new(9)).unwrap());
        assert!(zc.piece(&big, 0, MAX_MARKER + 1).is_none());
        assert_eq!(zc.lock().len(), 1);
    }

    #[test]
    fn files_stay_within_their_budget() {
        let budget = FileBudget::new(2);
        let a = SegFile::create([&b"a"[..]], &budget).unwrap();
        let b = SegFile::create([&b"b"[..]], &budget).unwrap();
        assert_eq!(budget.open(), 2);
        assert!(SegFile::create([&b"c"[..]], &budget).is_err());
        drop(a);
        assert_eq!(budget.open(), 1);
        let _c = SegFile::create([&b"c"[..]], &budget).unwrap();
        drop(b);
        assert_eq!(budget.open(), 1);
        assert!(FileBudget::from_rlimit().max > 0);
    }

    #[tokio::test]
    async fn sends_runs_between_real_bytes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        const PIECE: usize = 64 << 10;
        let file = Arc::new(SegFile::create(data.chunks(PIECE), &FileBudget::new(9)).unwrap());
        assert_eq!(file.len(), data.len() as u64);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got
        });
        // Each queued run holds a guard until it is sent.
        struct Guard(Arc<AtomicUsize>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let held = Arc::new(AtomicUsize::new(0));
        let h = Arc::clone(&held);
        let holder: Holder = Arc::new(move || -> Hold {
            h.fetch_add(1, Ordering::AcqRel);
            Box::new(Guard(Arc::clone(&h)))
        });
        let zc = ZeroCopy::new(Counter::default(), holder);
        let mut out = Spliced::new(TcpStream::connect(addr).await.unwrap(), Some(zc.clone()));
        let mut want = b"head\r\n".to_vec();
        out.write_all(b"head\r\n").await.unwrap();
        for (i, chunk) in data.chunks(PIECE).enumerate() {
            let m = zc.piece(&file, (i * PIECE) as u64, chunk.len()).unwrap();
            assert_eq!(held.load(Ordering::Acquire), 1, "a queued run holds");
            // write_all advances through the marker as hyper does.
            out.write_all(&m).await.unwrap();
            assert_eq!(held.load(Ordering::Acquire), 0, "a sent run lets go");
            out.write_all(b"|").await.unwrap();
            want.extend_from_slice(chunk);
            want.push(b'|');
        }
        out.shutdown().await.unwrap();
        drop(out);
        assert_eq!(reader.await.unwrap(), want);
        assert!(zc.lock().is_empty());
        assert_eq!(zc.sent.get(), data.len() as u64);
    }

    #[tokio::test]
    async fn a_marker_without_its_run_fails_the_write() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _peer = tokio::spawn(async move { listener.accept().await });
        let file = Arc::new(SegFile::create([&[7u8; 100][..]], &FileBudget::new(9)).unwrap());
        let zc = ZeroCopy::default();
        let mut out = Spliced::new(TcpStream::connect(addr).await.unwrap(), Some(zc.clone()));
        let m = zc.piece(&file, 0, 100).unwrap();
        // A marker of another length than the queued run's.
        assert!(out.write_all(&m[..50]).await.is_err());
    }
}
