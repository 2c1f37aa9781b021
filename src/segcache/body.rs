//! [`SegmentBody`]: one reader of a fill, as an `http_body::Body`.
//!
//! A reader holds only its position and a [`Reader`] hold on the fill (its
//! slot, which tells a streaming fill what it may let go); each frame is
//! a `Bytes` slice of a stored piece (a reference count, never a copy), at
//! most 64 KiB. While the fill grows the reader parks on the fill's `Notify`
//! (created before it looks, so a push between look and park still wakes
//! it). Dropping a reader frees its slot; the fill goes on unless it was
//! the last hold on an open fill (see `fill_task`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::futures::OwnedNotified;

use super::fill::{MAX_PIECE, Read, Reader, SegmentError};
use crate::body::BoxError;
use crate::zerocopy::{MAX_MARKER, ZeroCopy};

pin_project! {
    /// The body of a [`Segment`](super::Segment): the whole fill or one
    /// inclusive byte range of it, streamed as the fill grows.
    ///
    /// Ends with an error (never a short clean end) when the fill fails or
    /// when the fill ends before the requested range does.
    pub struct SegmentBody {
        reader: Reader,
        // Next byte to send.
        pos: u64,
        // One past the last byte to send; `None` = to the end of the fill.
        end: Option<u64>,
        // Piece index of the previous read.
        hint: usize,
        // Whether the body has ended (cleanly or with an error).
        done: bool,
        // Where markers go instead of bytes, once the fill has its file.
        zero_copy: Option<ZeroCopy>,
        #[pin]
        notified: Option<OwnedNotified>,
    }
}

impl std::fmt::Debug for SegmentBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentBody")
            .field("pos", &self.pos)
            .field("end", &self.end)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl SegmentBody {
    /// A reader (holding `reader`, whose slot is at `start`) over
    /// `start..end` (`end` exclusive, `None` = to the end of the fill).
    pub(super) fn new(reader: Reader, start: u64, end: Option<u64>) -> Self {
        Self {
            reader,
            pos: start,
            end,
            hint: 0,
            done: end.is_some_and(|end| start >= end),
            zero_copy: None,
            notified: None,
        }
    }

    /// The same body sending by file through `zero_copy` (the viewer's
    /// connection's queue, [`crate::zerocopy`]) where the fill has a file:
    /// its frames are then markers, which only that connection may write.
    pub(super) fn zero_copy(mut self, zero_copy: ZeroCopy) -> Self {
        self.zero_copy = Some(zero_copy);
        self
    }
}

impl Body for SegmentBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            if *this.done || this.end.is_some_and(|end| *this.pos >= end) {
                *this.done = true;
                return Poll::Ready(None);
            }
            // A cached fill with its file: the rest of the range as one
            // marker, sent by one `sendfile` (crate::zerocopy).
            let file = this.zero_copy.as_ref().zip(this.reader.fill().file());
            if let Some((zc, file)) = file {
                let end = this.end.unwrap_or(u64::MAX).min(file.len());
                let take = end.saturating_sub(*this.pos).min(MAX_MARKER as u64);
                if let Some(marker) = zc.piece(file, *this.pos, take as usize) {
                    *this.pos += take;
                    this.notified.set(None);
                    return Poll::Ready(Some(Ok(Frame::data(marker))));
                }
            }
            match this.reader.read(*this.pos, *this.hint) {
                Read::Data(mut bytes, index) => {
                    let room = this.end.map_or(u64::MAX, |end| end - *this.pos);
                    let take = usize::try_from(room).unwrap_or(usize::MAX).min(MAX_PIECE);
                    bytes.truncate(take);
                    *this.pos += bytes.len() as u64;
                    *this.hint = index;
                    this.notified.set(None);
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                Read::End(len) => {
                    *this.done = true;
                    this.notified.set(None);
                    return match *this.end {
                        Some(end) if *this.pos < end => {
                            let e = SegmentError::RangeBeyondEnd { end: end - 1, len };
                            Poll::Ready(Some(Err(e.into())))
                        }
                        _ => Poll::Ready(None),
                    };
                }
                Read::Failed(e) => {
                    *this.done = true;
                    this.notified.set(None);
                    return Poll::Ready(Some(Err(e.into())));
                }
                Read::Pending => match this.notified.as_mut().as_pin_mut() {
                    // Registered before the look above: park until the next change.
                    Some(notified) => {
                        if notified.poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                        this.notified.set(None);
                    }
                    // Register, then look again: a push in between is not lost.
                    None => this.notified.set(Some(
                        Arc::clone(this.reader.fill().notify()).notified_owned(),
                    )),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.end.is_some_and(|end| self.pos >= end)
    }

    fn size_hint(&self) -> SizeHint {
        if self.is_end_stream() {
            return SizeHint::with_exact(0);
        }
        match self.end {
            Some(end) => SizeHint::with_exact(end - self.pos),
            None => SizeHint::default(),
        }
    }
}
