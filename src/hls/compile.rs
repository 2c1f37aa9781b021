//! The rewrite itself: one walk over the lines of a playlist that copies
//! each line, extends the URIs the proxy serves, and places `EXT-X-KEY`
//! lines (docs/hls.md §6).
//!
//! Owns the per-line rules: which tag carries which URI and how that URI is
//! served, MSN counting (media sequence + segment URI lines + skipped
//! segments; parts and hints belong to the next segment), key periods and
//! where key lines go, and turning byte ranges into resources of their own
//! when it encrypts. Must not do I/O or read the clock; segment tags come
//! from the caller's [`TagSigner`](super::TagSigner).
//!
//! Key placement: `effective` is the key in effect in the *output*. Before a
//! line that needs one (a media segment URI, an `EXT-X-PART`, a PART
//! preload hint) the wanted key is compared with it and, if different, a
//! key line is inserted before the first segment-scoped line since the last
//! such line or the last `EXT-X-MAP`/`EXT-X-KEY` (so it precedes the
//! segment's `EXTINF`, `EXT-X-PROGRAM-DATE-TIME`, first part…). A MAP while
//! a key is in effect gets `METHOD=NONE` before it (init sections stay
//! clear), so the next segment gets its key again.

use crate::capability::{ByteRange, Serve};

use super::attrs::{self, Attr};
use super::lines::{self, BOM, Class, Line};
use super::scan::{self, RangeEnds};
use super::template::{Facts, Kind, Out, Template};
use super::uri::{Resolver, Target};
use super::{Context, Encrypt, RewriteError};

/// Target duration assumed when a playlist has none (or a malformed one).
const DEFAULT_TARGET: u64 = 10;

/// Compiles one origin playlist body into a [`Template`].
///
/// Fails only when the body is larger than `ctx.max_bytes` or does not
/// start with `#EXTM3U` (after an optional UTF-8 BOM). Everything else,
/// including bytes that are not UTF-8, compiles: what the rewriter does not
/// understand it copies.
pub fn compile(body: &[u8], ctx: &Context<'_>) -> Result<Template, RewriteError> {
    if body.len() > ctx.max_bytes {
        return Err(RewriteError::TooLarge);
    }
    if !body
        .strip_prefix(BOM)
        .unwrap_or(body)
        .starts_with(b"#EXTM3U")
    {
        return Err(RewriteError::NotPlaylist);
    }
    let lines = lines::split(body);
    let (facts, defines) = scan::scan(body, &lines);
    let mut walker = Walker::new(body, &lines, ctx, facts, defines);
    for (i, line) in lines.iter().enumerate() {
        walker.line(i, *line);
    }
    Ok(walker.finish())
}

/// How a URI is used, which decides its segment tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// A playlist (variant, rendition, I-frame stream, rendition report):
    /// capability only.
    Playlist,
    /// Served as the origin has it: init sections, the origin's keys,
    /// session data, steering manifests.
    Clear,
    /// A media segment, part or part hint of segment `msn`.
    Media { msn: u64 },
}

/// Where a byte range of a media URI is written, if it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeAttrs {
    None,
    /// `EXT-X-PART`'s `BYTERANGE="n[@o]"`.
    Part,
    /// `EXT-X-PRELOAD-HINT`'s `BYTERANGE-START` / `BYTERANGE-LENGTH`.
    Hint,
}

/// The key a segment is encrypted with, as the playlist names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    period: u64,
    /// Explicit IV (the MSN) for MSNs players may truncate.
    iv: Option<u64>,
}

struct Walker<'a> {
    body: &'a [u8],
    lines: &'a [Line],
    ctx: &'a Context<'a>,
    resolver: Resolver<'a>,
    out: Out,
    facts: Facts,
    eol: &'static [u8],
    /// Segments per key period.
    per_period: u64,
    /// Key lines are injected (encrypting, media, not origin-encrypted).
    inject: Option<Encrypt<'a>>,
    next_msn: u64,
    /// The key in effect in the output so far (None: clear).
    effective: Option<Key>,
    /// Where a key line for the next segment would go.
    point: Option<usize>,
    /// The range of the next segment, from an `EXT-X-BYTERANGE` dropped.
    seg_range: Option<ByteRange>,
    seg_ends: RangeEnds,
    part_ends: RangeEnds,
    /// Memo of [`Walker::next_uri_line`]: (searched from, found).
    next_uri: Option<(usize, Option<usize>)>,
}

impl<'a> Walker<'a> {
    fn new(
        body: &'a [u8],
        lines: &'a [Line],
        ctx: &'a Context<'a>,
        facts: Facts,
        defines: super::uri::Defines,
    ) -> Self {
        let target = facts.target_duration.unwrap_or(DEFAULT_TARGET).max(1);
        let rotate = ctx.encrypt.map_or(0, |e| e.rotate_every_secs);
        let inject = ctx
            .encrypt
            .filter(|_| facts.kind == Kind::Media && !facts.origin_encrypted);
        Walker {
            body,
            lines,
            ctx,
            resolver: Resolver::new(ctx.playlist_path, ctx.origin, defines),
            // Room for the parameters of a few dozen URIs before regrowing.
            out: Out::with_capacity(body.len() + body.len() / 2 + 256),
            eol: lines::eol_of(body, lines),
            per_period: (rotate / target).max(1),
            next_msn: facts.media_sequence,
            facts,
            inject,
            effective: None,
            point: None,
            seg_range: None,
            seg_ends: RangeEnds::default(),
            part_ends: RangeEnds::default(),
            next_uri: None,
        }
    }

    fn finish(self) -> Template {
        self.out.finish(self.facts)
    }

    fn content(&self, l: Line) -> &'a [u8] {
        self.body.get(l.start..l.end).unwrap_or_default()
    }

    fn terminator(&self, l: Line) -> &'a [u8] {
        self.body.get(l.end..l.next).unwrap_or_default()
    }

    fn verbatim(&mut self, l: Line) {
        self.out
            .push(self.body.get(l.start..l.next).unwrap_or_default());
    }

    fn line(&mut self, i: usize, l: Line) {
        if i == 0 {
            // `#EXTM3U`, with the BOM if there was one.
            return self.verbatim(l);
        }
        match lines::classify(self.content(l)) {
            Class::Blank | Class::Comment => self.verbatim(l),
            Class::Uri { at } => self.uri_line(l, at),
            Class::Tag { name, value } => {
                let from = value.unwrap_or(l.end - l.start);
                self.tag(i, l, name, from);
            }
        }
    }

    fn tag(&mut self, i: usize, l: Line, name: &[u8], from: usize) {
        let content = self.content(l);
        match name {
            b"EXT-X-MEDIA" | b"EXT-X-I-FRAME-STREAM-INF" | b"EXT-X-RENDITION-REPORT" => {
                self.uri_tag(l, from, b"URI", Use::Playlist, RangeAttrs::None);
            }
            b"EXT-X-SESSION-DATA" | b"EXT-X-SESSION-KEY" => {
                self.uri_tag(l, from, b"URI", Use::Clear, RangeAttrs::None);
            }
            b"EXT-X-CONTENT-STEERING" => {
                self.uri_tag(l, from, b"SERVER-URI", Use::Clear, RangeAttrs::None);
            }
            b"EXT-X-KEY" => {
                // The origin's key (METHOD=NONE unless the origin encrypts,
                // in which case nothing is injected): it ends our key's scope.
                self.end_scope();
                self.uri_tag(l, from, b"URI", Use::Clear, RangeAttrs::None);
            }
            b"EXT-X-MAP" => {
                if self.inject.is_some() && self.effective.is_some() {
                    write_key(&mut self.out, None, self.inject, self.ctx, self.eol);
                    self.facts.key_lines += 1;
                }
                self.end_scope();
                self.uri_tag(l, from, b"URI", Use::Clear, RangeAttrs::None);
            }
            b"EXT-X-PART" => {
                self.scoped();
                let media = Use::Media { msn: self.next_msn };
                self.uri_tag(l, from, b"URI", media, RangeAttrs::Part);
            }
            b"EXT-X-PRELOAD-HINT" => {
                let kind = attrs::find(content, from, b"TYPE").map(|a| a.value(content));
                match kind {
                    Some(b"PART") => {
                        self.scoped();
                        let media = Use::Media { msn: self.next_msn };
                        self.uri_tag(l, from, b"URI", media, RangeAttrs::Hint);
                    }
                    Some(b"MAP") => self.uri_tag(l, from, b"URI", Use::Clear, RangeAttrs::None),
                    // Unknown hint types get no segment tag: the proxy will
                    // not serve them as media.
                    _ => self.uri_tag(l, from, b"URI", Use::Playlist, RangeAttrs::None),
                }
            }
            b"EXT-X-BYTERANGE" => {
                self.scoped();
                self.byterange(i, l, from);
            }
            b"EXTINF"
            | b"EXT-X-DISCONTINUITY"
            | b"EXT-X-PROGRAM-DATE-TIME"
            | b"EXT-X-GAP"
            | b"EXT-X-BITRATE" => {
                self.scoped();
                self.verbatim(l);
            }
            b"EXT-X-SERVER-CONTROL" => {
                // Delta updates off (docs/hls.md §6).
                const DROP: &[&[u8]] = &[b"CAN-SKIP-UNTIL", b"CAN-SKIP-DATERANGES"];
                self.write_attrs(l, from, None, DROP);
            }
            b"EXT-X-SKIP" => {
                let skipped = attrs::find(content, from, b"SKIPPED-SEGMENTS")
                    .and_then(|a| scan::parse_u64(a.value(content)))
                    .unwrap_or(0);
                self.next_msn = self.next_msn.saturating_add(skipped);
                self.verbatim(l);
            }
            _ => self.verbatim(l),
        }
    }

    /// A segment-scoped line: the earliest place for the next key line.
    fn scoped(&mut self) {
        if self.point.is_none() {
            self.point = Some(self.out.mark());
        }
    }

    /// An `EXT-X-KEY` or `EXT-X-MAP` of the origin: no key is in effect
    /// after it, and a key line must come after it.
    fn end_scope(&mut self) {
        self.effective = None;
        self.point = None;
    }

    fn key_for(&self, msn: u64) -> Key {
        Key {
            period: msn / self.per_period,
            iv: (msn >> 32 != 0).then_some(msn),
        }
    }

    /// Makes `want` the key in effect before the line about to be written.
    fn ensure_key(&mut self, want: Option<Key>) {
        if self.inject.is_none() || self.effective == want {
            return;
        }
        let at = self.point.unwrap_or_else(|| self.out.mark());
        let (inject, ctx, eol) = (self.inject, self.ctx, self.eol);
        self.out
            .insert(at, |o| write_key(o, want, inject, ctx, eol));
        self.effective = want;
        self.facts.key_lines += 1;
    }

    fn uri_line(&mut self, l: Line, at: (usize, usize)) {
        let content = self.content(l);
        let raw = content.get(at.0..at.1).unwrap_or_default();
        let target = self.resolver.resolve(raw);
        let mut range = None;
        let used = if self.facts.kind == Kind::Media {
            self.scoped();
            let msn = self.next_msn;
            self.next_msn = msn.saturating_add(1);
            self.facts.msns.push(msn);
            range = self.seg_range.take();
            let own = matches!(target, Target::Own { .. });
            self.ensure_key(own.then(|| self.key_for(msn)));
            Use::Media { msn }
        } else {
            Use::Playlist
        };
        let serve = self.serve(used, range);
        self.out.push(content.get(..at.0).unwrap_or_default());
        self.write_target(&target, raw, serve);
        self.out.push(content.get(at.1..).unwrap_or_default());
        self.out.push(self.terminator(l));
        self.point = None;
    }

    /// `EXT-X-BYTERANGE`: when encrypting an own segment, dropped, and its
    /// range goes into the segment's tag.
    fn byterange(&mut self, i: usize, l: Line, from: usize) {
        let content = self.content(l);
        let parsed = scan::parse_range(content.get(from..).unwrap_or_default());
        let uri = self.next_uri_line(i).map(|j| self.uri_of(j));
        if let (Some(_), Some((length, offset)), Some(uri)) = (self.inject, parsed, uri) {
            let range = self.seg_ends.next(uri, length, offset);
            if matches!(self.resolver.resolve(uri), Target::Own { .. }) {
                self.seg_range = Some(range);
                return;
            }
        }
        self.verbatim(l);
    }

    /// The URI text of line `j` (a URI line).
    fn uri_of(&self, j: usize) -> &'a [u8] {
        let Some(&l) = self.lines.get(j) else {
            return &[];
        };
        let content = self.content(l);
        match lines::classify(content) {
            Class::Uri { at } => content.get(at.0..at.1).unwrap_or_default(),
            _ => &[],
        }
    }

    /// The index of the first URI line after line `i`. Memoized so that a
    /// run of lines without URIs is scanned once, not once per line.
    fn next_uri_line(&mut self, i: usize) -> Option<usize> {
        match self.next_uri {
            Some((_, Some(j))) if j > i => return Some(j),
            Some((from, None)) if from <= i => return None,
            _ => {}
        }
        let found = (i + 1..self.lines.len()).find(|&j| {
            let content = self.lines.get(j).map_or(&[][..], |&l| self.content(l));
            matches!(lines::classify(content), Class::Uri { .. })
        });
        self.next_uri = Some((i, found));
        found
    }

    /// How a URI used as `used` is served, if it gets a segment tag.
    fn serve(&self, used: Use, range: Option<ByteRange>) -> Option<Serve> {
        let encrypt = self.ctx.encrypt?;
        match used {
            Use::Playlist => None,
            Use::Clear => Some(Serve::Clear { range: None }),
            Use::Media { .. } if self.facts.origin_encrypted => Some(Serve::Clear { range }),
            Use::Media { msn } => Some(Serve::Encrypt {
                inc: encrypt.inc,
                period: msn / self.per_period,
                msn,
                range,
            }),
        }
    }

    /// A tag whose `uri_name` attribute holds a URI used as `used`.
    fn uri_tag(&mut self, l: Line, from: usize, uri_name: &[u8], used: Use, ranges: RangeAttrs) {
        let content = self.content(l);
        let Some(attr) = attrs::find(content, from, uri_name) else {
            return self.write_attrs(l, from, None, &[]);
        };
        let raw = attr.value(content);
        let target = self.resolver.resolve(raw);
        let own = matches!(target, Target::Own { .. });
        let Use::Media { msn } = used else {
            let serve = self.serve(used, None);
            return self.write_attrs(l, from, Some((attr, &target, raw, serve)), &[]);
        };
        let (range, drop) = match (self.inject, ranges) {
            (Some(_), RangeAttrs::Part) => self.part_range(content, from, raw),
            (Some(_), RangeAttrs::Hint) => hint_range(content, from),
            _ => (None, &[][..]),
        };
        let (range, drop) = if own { (range, drop) } else { (None, &[][..]) };
        self.ensure_key(own.then(|| self.key_for(msn)));
        let serve = self.serve(used, range);
        self.write_attrs(l, from, Some((attr, &target, raw, serve)), drop);
        self.point = None;
    }

    /// `EXT-X-PART`'s `BYTERANGE` (its implicit offset follows the previous
    /// part of the same resource) and the attribute to drop with it.
    fn part_range(
        &mut self,
        content: &[u8],
        from: usize,
        uri: &[u8],
    ) -> (Option<ByteRange>, &'static [&'static [u8]]) {
        let Some(attr) = attrs::find(content, from, b"BYTERANGE") else {
            return (None, &[]);
        };
        match scan::parse_range(attr.value(content)) {
            Some((length, offset)) => {
                let range = self.part_ends.next(uri, length, offset);
                (Some(range), &[b"BYTERANGE"])
            }
            None => (None, &[]),
        }
    }

    /// Writes a tag line: its name, its attributes but `drop`, with the
    /// attribute `uri` (if any) holding the rewritten URI.
    fn write_attrs(
        &mut self,
        l: Line,
        from: usize,
        uri: Option<(Attr, &Target<'_>, &[u8], Option<Serve>)>,
        drop: &[&[u8]],
    ) {
        let content = self.content(l);
        self.out.push(content.get(..from).unwrap_or_default());
        let mut first = true;
        let mut end = from;
        for a in attrs::scan(content, from) {
            end = a.span.1;
            if drop.contains(&a.name(content)) {
                continue;
            }
            if !first {
                self.out.push(b",");
            }
            first = false;
            match uri {
                Some((u, target, raw, serve)) if u.span == a.span => {
                    self.out
                        .push(content.get(a.span.0..a.value.0).unwrap_or_default());
                    self.write_target(target, raw, serve);
                    self.out
                        .push(content.get(a.value.1..a.span.1).unwrap_or_default());
                }
                _ => self
                    .out
                    .push(content.get(a.span.0..a.span.1).unwrap_or_default()),
            }
        }
        // What follows the last attribute: "" or a trailing `,`.
        self.out
            .push(content.get(end.max(from)..).unwrap_or_default());
        self.out.push(self.terminator(l));
    }

    /// Writes a URI: as it was if foreign, else with the capability and
    /// (when `serve` says so) the segment tag, before any fragment.
    fn write_target(&mut self, target: &Target<'_>, raw: &[u8], serve: Option<Serve>) {
        let Target::Own {
            path,
            head,
            fragment,
            query,
        } = target
        else {
            return self.out.push(raw);
        };
        self.out.push_str(head);
        self.out.push_str(match query {
            None => "?",
            Some(false) => "&",
            Some(true) => "",
        });
        self.out.push_str(self.ctx.cap_param);
        self.out.push(b"=");
        self.out.cap();
        if let Some(serve) = serve {
            let tag = self.ctx.signer.tag(path, &serve);
            self.out.push(b"&");
            self.out.push_str(self.ctx.tag_param);
            self.out.push(b"=");
            self.out.push_str(&tag);
        }
        self.out.push_str(fragment);
    }
}

/// `EXT-X-PRELOAD-HINT`'s `BYTERANGE-START` (default 0) and
/// `BYTERANGE-LENGTH` (default: to the end), and the attributes to drop.
fn hint_range(content: &[u8], from: usize) -> (Option<ByteRange>, &'static [&'static [u8]]) {
    let start = attrs::find(content, from, b"BYTERANGE-START");
    let length = attrs::find(content, from, b"BYTERANGE-LENGTH");
    if start.is_none() && length.is_none() {
        return (None, &[]);
    }
    let num = |a: Option<Attr>| a.map(|a| scan::parse_u64(a.value(content)));
    match (num(start), num(length)) {
        (Some(None), _) | (_, Some(None)) => (None, &[]),
        (offset, length) => {
            let range = ByteRange {
                offset: offset.flatten().unwrap_or(0),
                length: length.flatten(),
            };
            (Some(range), &[b"BYTERANGE-START", b"BYTERANGE-LENGTH"])
        }
    }
}

/// Writes an `EXT-X-KEY` line: AES-128 with `key`, or METHOD=NONE.
fn write_key(
    out: &mut Out,
    key: Option<Key>,
    encrypt: Option<Encrypt<'_>>,
    ctx: &Context<'_>,
    eol: &[u8],
) {
    let (Some(key), Some(encrypt)) = (key, encrypt) else {
        out.push(b"#EXT-X-KEY:METHOD=NONE");
        out.push(eol);
        return;
    };
    let prefix = encrypt.key_uri_prefix;
    out.push(b"#EXT-X-KEY:METHOD=AES-128,URI=\"");
    out.push_str(prefix);
    out.push_str(&key.period.to_string());
    out.push_str(".key?");
    out.push_str(ctx.cap_param);
    out.push(b"=");
    out.cap();
    out.push(b"\"");
    if let Some(iv) = key.iv {
        out.push_str(&format!(",IV=0x{iv:032x}"));
    }
    out.push(eol);
}
