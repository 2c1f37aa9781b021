//! A compiled playlist: the rewritten text with the places where each
//! session's capability goes, plus what the compiler learned about the
//! playlist. Rendering is one allocation and a run of copies.
//!
//! Owns the representation ([`Template`]) and its builder ([`Out`]), which
//! can insert a line into the current segment block after the fact (the
//! compiler only knows whether a key line is needed once it has seen what
//! the block contains). Must not parse or resolve anything.

use bytes::Bytes;

/// Whether a playlist lists variants or segments (RFC 8216 §4.3.3, §4.3.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A multivariant ("master") playlist: variants and renditions. Also
    /// what a playlist without any media-playlist tag counts as.
    #[default]
    Master,
    /// A media playlist: segments (and LL-HLS parts).
    Media,
}

/// One origin playlist version compiled for rewriting; render it once per
/// response with that session's capability.
///
/// Everything but the capability is fixed at compile time: URIs resolved,
/// segment tags computed, key lines placed. A template holds no secret but
/// the segment tags, which are the same for every session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The output with the capability left out.
    pub(crate) text: Bytes,
    /// Ascending offsets into `text` where the capability goes.
    pub(crate) caps: Vec<usize>,
    pub(crate) facts: Facts,
}

/// What the compiler learned about a playlist, for callers and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Facts {
    pub kind: Kind,
    pub media_sequence: u64,
    pub target_duration: Option<u64>,
    pub end_list: bool,
    pub origin_encrypted: bool,
    pub msns: Vec<u64>,
    pub key_lines: usize,
}

impl Template {
    /// The playlist with `cap` spliced in as the value of every capability
    /// parameter. `cap` must be URL-safe (the capability module emits
    /// base64url); it is copied as is.
    pub fn render(&self, cap: &str) -> Bytes {
        if self.caps.is_empty() {
            return self.text.clone();
        }
        let cap = cap.as_bytes();
        let mut out = Vec::with_capacity(self.text.len() + self.caps.len() * cap.len());
        let mut at = 0;
        for &pos in &self.caps {
            out.extend_from_slice(self.text.get(at..pos).unwrap_or_default());
            out.extend_from_slice(cap);
            at = pos;
        }
        out.extend_from_slice(self.text.get(at..).unwrap_or_default());
        Bytes::from(out)
    }

    /// Master or media playlist.
    pub fn kind(&self) -> Kind {
        self.facts.kind
    }

    /// `EXT-X-MEDIA-SEQUENCE` (0 when absent or not a number): the MSN of
    /// the first segment listed (after any `EXT-X-SKIP`ped ones).
    pub fn media_sequence(&self) -> u64 {
        self.facts.media_sequence
    }

    /// The MSN of every media segment URI line, in order (own and foreign).
    /// Empty for a master playlist.
    pub fn segment_msns(&self) -> &[u64] {
        &self.facts.msns
    }

    /// `EXT-X-TARGETDURATION` in whole seconds (a fractional value is rounded
    /// up, as players treat it as an upper bound), None when absent or not a
    /// number. Key periods use 10 in that case.
    pub fn target_duration(&self) -> Option<u64> {
        self.facts.target_duration
    }

    /// Whether the playlist has `EXT-X-ENDLIST` (it will not change).
    pub fn end_list(&self) -> bool {
        self.facts.end_list
    }

    /// Whether the origin encrypted this media playlist itself (an
    /// `EXT-X-KEY` with a METHOD other than NONE): nothing was injected and
    /// its segments are signed to be served clear.
    pub fn origin_encrypted(&self) -> bool {
        self.facts.origin_encrypted
    }

    /// How many places take the capability (own URIs plus injected AES-128
    /// key lines).
    pub fn cap_count(&self) -> usize {
        self.caps.len()
    }

    /// How many `EXT-X-KEY` lines the rewriter injected (AES-128 and NONE).
    pub fn injected_key_lines(&self) -> usize {
        self.facts.key_lines
    }
}

/// Builds a template's text and capability offsets. Copies of the source
/// body are given as ranges and merged while they are contiguous, so that
/// the unchanged stretches of a playlist are copied in one piece.
#[derive(Debug)]
pub(crate) struct Out<'a> {
    src: &'a [u8],
    text: Vec<u8>,
    caps: Vec<usize>,
    /// A range of `src` still to be appended to `text`.
    run: (usize, usize),
}

impl<'a> Out<'a> {
    /// An empty output copying from `src`, with room for `n` bytes.
    pub fn new(src: &'a [u8], n: usize) -> Self {
        Out {
            src,
            text: Vec::with_capacity(n),
            caps: Vec::new(),
            run: (0, 0),
        }
    }

    /// Where the next byte will go; a mark for [`Out::insert`].
    pub fn mark(&self) -> usize {
        self.text.len() + (self.run.1 - self.run.0)
    }

    /// Appends `src[start..end]`.
    pub fn copy(&mut self, start: usize, end: usize) {
        if self.run.1 != start {
            self.flush();
            self.run = (start, start);
        }
        self.run.1 = end.max(start);
    }

    fn flush(&mut self) {
        let (start, end) = self.run;
        self.text
            .extend_from_slice(self.src.get(start..end).unwrap_or_default());
        self.run = (end, end);
    }

    /// Appends bytes that are not a copy of the source.
    pub fn push(&mut self, bytes: &[u8]) {
        self.flush();
        self.text.extend_from_slice(bytes);
    }

    pub fn push_str(&mut self, s: &str) {
        self.push(s.as_bytes());
    }

    /// The capability goes here.
    pub fn cap(&mut self) {
        self.flush();
        self.caps.push(self.text.len());
    }

    /// Inserts what `write` writes at `mark` (an earlier [`Out::mark`]),
    /// before everything written since. Costs a copy of that tail, which is
    /// at most one segment block.
    pub fn insert(&mut self, mark: usize, write: impl FnOnce(&mut Out<'a>)) {
        self.flush();
        let tail = self.text.split_off(mark.min(self.text.len()));
        let first = self.caps.partition_point(|&c| c < mark);
        let tail_caps = self.caps.split_off(first);
        write(self);
        self.flush();
        let shift = self.text.len().saturating_sub(mark);
        self.caps.extend(tail_caps.iter().map(|c| c + shift));
        self.text.extend_from_slice(&tail);
    }

    pub fn finish(mut self, facts: Facts) -> Template {
        self.flush();
        // Templates live in a cache: do not keep a generous estimate.
        if self.text.capacity() - self.text.len() > self.text.len() / 4 {
            self.text.shrink_to_fit();
        }
        Template {
            text: Bytes::from(self.text),
            caps: self.caps,
            facts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_merge_while_contiguous() {
        let src = b"0123456789";
        let mut out = Out::new(src, 0);
        out.copy(0, 3);
        out.copy(3, 5);
        assert_eq!(out.mark(), 5);
        assert!(out.text.is_empty(), "still one pending run");
        out.copy(7, 8);
        out.push(b"-");
        out.copy(8, 10);
        out.copy(2, 1);
        let t = out.finish(Facts::default());
        assert_eq!(&t.render("")[..], b"012347-89");
    }

    #[test]
    fn render_splices_every_cap() {
        let mut out = Out::new(b"", 0);
        out.push(b"a?tg=");
        out.cap();
        out.push(b"\nb?x&tg=");
        out.cap();
        let t = out.finish(Facts::default());
        assert_eq!(&t.render("C")[..], b"a?tg=C\nb?x&tg=C");
        assert_eq!(&t.render("")[..], b"a?tg=\nb?x&tg=");
        assert_eq!(t.cap_count(), 2);
    }

    #[test]
    fn insert_shifts_later_caps() {
        let src = b"head\nx?tg=\nend";
        let mut out = Out::new(src, 0);
        out.copy(0, 5);
        let mark = out.mark();
        out.copy(5, 10);
        out.cap();
        out.copy(10, 11);
        out.insert(mark, |o| {
            o.push(b"KEY?tg=");
            o.cap();
            o.push(b"\n");
        });
        out.copy(11, 14);
        let t = out.finish(Facts::default());
        assert_eq!(&t.render("Z")[..], b"head\nKEY?tg=Z\nx?tg=Z\nend");
        assert_eq!(t.caps, vec![12, 18]);
    }
}
