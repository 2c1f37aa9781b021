//! The rewrite itself: one walk over the lines of a playlist that copies
//! each line, extends the URIs the proxy serves, and asks [`Keys`] for key
//! lines (docs/hls.md §6).
//!
//! Owns the per-line rules: which tag carries which URI and how that URI is
//! served (playlist, clear, or media of segment `msn`), MSN counting (media
//! sequence + segment URI lines + `EXT-X-SKIP`ped segments; parts and hints
//! belong to the next segment), and turning byte ranges into resources of
//! their own when it encrypts. Must not do I/O or read the clock; segment
//! tags come from the caller's [`TagSigner`](super::TagSigner).

use crate::capability::{ByteRange, Serve};

use super::attrs::{self, Attr};
use super::hostile_uris;
use super::keys::Keys;
use super::lines::{self, BOM, Class, Line};
use super::scan::{self, RangeEnds};
use super::stable;
use super::template::{Facts, Kind, Out, Template};
use super::uri::{Resolver, Target};
use super::{Context, RewriteError};

/// Target duration assumed when a playlist has none (or a malformed one).
const DEFAULT_TARGET: u64 = 10;

/// Room reserved per segment tag (the real ones are about 40 bytes).
const TAG_ESTIMATE: usize = 56;

/// Room reserved for injected key lines.
const KEY_LINES_ESTIMATE: usize = 256;

/// Compiles one origin playlist body into a [`Template`].
///
/// Fails only when the body is larger than `ctx.max_bytes`, does not
/// start with `#EXTM3U` (after an optional UTF-8 BOM), or, when it injects
/// keys, counts media sequence numbers past `u64::MAX` (two segments would
/// share a key and an IV). Everything else,
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
    let mut walker = Walker::new(body, &lines, ctx, scan::scan(body, &lines));
    for (i, line) in lines.iter().enumerate() {
        walker.line(i, *line);
    }
    if walker.undated {
        // A segment without a time has no stable identity (`hls::stable`).
        return Err(RewriteError::Undated);
    }
    if walker.msn_reused && walker.keys.injecting() {
        // Two segments under one key with one IV (RFC 8216 §5.2): refused,
        // never served.
        return Err(RewriteError::MsnOverflow);
    }
    walker.facts.key_lines = walker.keys.written;
    Ok(walker.out.finish(walker.facts))
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

/// Where a URI's byte range is written, if it can have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeAttrs {
    None,
    /// `EXT-X-PART`'s `BYTERANGE="n[@o]"`.
    Part,
    /// `EXT-X-MAP`'s `BYTERANGE="n[@o]"`.
    Map,
    /// `EXT-X-PRELOAD-HINT`'s `BYTERANGE-START` / `BYTERANGE-LENGTH`.
    Hint,
}

/// A URI attribute about to be written: the attribute, its target and how
/// it is served.
type UriAttr = (Attr, Target, Option<Serve>);

struct Walker<'a> {
    body: &'a [u8],
    lines: &'a [Line],
    ctx: &'a Context<'a>,
    resolver: Resolver<'a>,
    out: Out<'a>,
    facts: Facts,
    keys: Keys<'a>,
    next_msn: u64,
    /// The next segment's MSN would be past `u64::MAX` (`next_msn` stays
    /// at the maximum).
    msn_past_end: bool,
    /// A segment or part got an MSN already used: its IV would repeat.
    msn_reused: bool,
    /// The range of the next segment, from an `EXT-X-BYTERANGE` dropped.
    seg_range: Option<ByteRange>,
    seg_ends: RangeEnds,
    part_ends: RangeEnds,
    /// Memo of [`Walker::next_uri_line`]: (searched from, found).
    next_uri: Option<(usize, Option<usize>)>,
    /// The path of the last own target, reused to build the next one.
    spare: String,
    /// What goes before the capability: `?tg=`, `&tg=`, `tg=` (for a URI
    /// without a query, with one, with one ending in `?` or `&`).
    cap_prefix: [String; 3],
    /// What goes before a segment tag: `&tgs=`.
    tag_prefix: String,
    /// Catch-up mode's media clock ([`Encrypt::stable`](super::Encrypt)),
    /// `None` when segments are keyed by position.
    stable: Option<stable::Clock>,
    /// In catch-up mode, a segment had no known time.
    undated: bool,
}

impl<'a> Walker<'a> {
    fn new(body: &'a [u8], lines: &'a [Line], ctx: &'a Context<'a>, scan: scan::Scan) -> Self {
        let scan::Scan {
            facts,
            defines,
            uris,
            parts,
            ..
        } = scan;
        let target = facts.target_duration.unwrap_or(DEFAULT_TARGET).max(1);
        let rotate = ctx.encrypt.map_or(0, |e| e.rotate_every_secs);
        let inject = ctx
            .encrypt
            .filter(|_| facts.kind == Kind::Media && !facts.origin_encrypted);
        let eol = lines::eol_of(body, lines);
        // Parts belong to a segment whose URI comes after them: they keep
        // position keys (LL-HLS is live only).
        let stable = (inject.is_some_and(|e| e.stable) && !parts).then(stable::Clock::default);
        // Per URI: the parameter names, `?`, `=`, `&`, `=`, and a tag.
        let per_uri = ctx.cap_param.len() + ctx.tag_param.len() + 4 + TAG_ESTIMATE;
        Walker {
            body,
            lines,
            ctx,
            resolver: Resolver::new(ctx.playlist_path, ctx.origin, defines),
            out: Out::new(body, body.len() + uris * per_uri + KEY_LINES_ESTIMATE),
            keys: Keys::new(
                inject,
                (ctx.cap_param, ctx.tag_param),
                ctx.signer,
                eol,
                rotate / target,
            ),
            next_msn: facts.media_sequence,
            msn_past_end: false,
            msn_reused: false,
            facts,
            seg_range: None,
            seg_ends: RangeEnds::default(),
            part_ends: RangeEnds::default(),
            next_uri: None,
            spare: String::new(),
            cap_prefix: ["?", "&", ""].map(|sep| format!("{sep}{}=", ctx.cap_param)),
            tag_prefix: format!("&{}=", ctx.tag_param),
            stable,
            undated: false,
        }
    }

    /// The target of the URI text `raw` found on a line whose content is
    /// `line`. Every URI on a line some player would split is foreign
    /// ([`hostile_uris::splits_line`]).
    fn resolve(&mut self, raw: &[u8], line: &[u8]) -> Target {
        if hostile_uris::splits_line(line) {
            return Target::Foreign;
        }
        let buf = std::mem::take(&mut self.spare);
        self.resolver.resolve(raw, buf)
    }

    /// Keeps the allocation of a target's path for the next one.
    fn recycle(&mut self, target: Target) {
        if let Target::Own { path, .. } = target {
            self.spare = path;
        }
    }

    fn content(&self, l: Line) -> &'a [u8] {
        self.body.get(l.start..l.end).unwrap_or_default()
    }

    fn verbatim(&mut self, l: Line) {
        self.out.copy(l.start, l.next);
    }

    fn line(&mut self, i: usize, l: Line) {
        let content = self.content(l);
        // `#EXTM3U` (with the BOM if there was one), and the most frequent
        // lines, settled without a full look.
        if i == 0 {
            return self.verbatim(l);
        }
        if content.starts_with(b"#EXTINF:") || content.starts_with(b"#EXT-X-PROGRAM-DATE-TIME:") {
            if let Some(clock) = &mut self.stable {
                clock.line(content);
            }
            self.keys.scoped(&self.out);
            return self.verbatim(l);
        }
        match lines::classify(content) {
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
        let media = Use::Media { msn: self.next_msn };
        match name {
            b"EXTINF"
            | b"EXT-X-PROGRAM-DATE-TIME"
            | b"EXT-X-DISCONTINUITY"
            | b"EXT-X-GAP"
            | b"EXT-X-BITRATE" => {
                self.keys.scoped(&self.out);
                self.verbatim(l);
            }
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
                self.keys.origin_key();
                self.uri_tag(l, from, b"URI", Use::Clear, RangeAttrs::None);
            }
            b"EXT-X-MAP" => {
                self.keys.before_map(&mut self.out);
                self.uri_tag(l, from, b"URI", Use::Clear, RangeAttrs::Map);
            }
            b"EXT-X-PART" => {
                self.msn_reused |= self.msn_past_end;
                self.keys.scoped(&self.out);
                self.uri_tag(l, from, b"URI", media, RangeAttrs::Part);
            }
            b"EXT-X-PRELOAD-HINT" => match attrs::find(content, from, b"TYPE") {
                Some(a) if a.value(content) == b"PART" => {
                    self.msn_reused |= self.msn_past_end;
                    self.keys.scoped(&self.out);
                    self.uri_tag(l, from, b"URI", media, RangeAttrs::Hint);
                }
                Some(a) if a.value(content) == b"MAP" => {
                    self.uri_tag(l, from, b"URI", Use::Clear, RangeAttrs::Hint);
                }
                // An unknown hint type gets no segment tag: the proxy will
                // not serve it as media.
                _ => self.uri_tag(l, from, b"URI", Use::Playlist, RangeAttrs::None),
            },
            b"EXT-X-BYTERANGE" => {
                self.keys.scoped(&self.out);
                self.byterange(i, l, from);
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
                match self.next_msn.checked_add(skipped) {
                    Some(next) => self.next_msn = next,
                    None => self.msn_past_end = true,
                }
                self.verbatim(l);
            }
            _ => self.verbatim(l),
        }
    }

    fn uri_line(&mut self, l: Line, at: (usize, usize)) {
        let content = self.content(l);
        let raw = content.get(at.0..at.1).unwrap_or_default();
        let target = self.resolve(raw, content);
        let (raw_start, raw_end) = (l.start + at.0, l.start + at.1);
        let serve = if self.facts.kind == Kind::Media {
            self.keys.scoped(&self.out);
            let msn = self.next_msn;
            self.msn_reused |= self.msn_past_end;
            match msn.checked_add(1) {
                Some(next) => self.next_msn = next,
                // Saturates: a later segment would reuse this MSN.
                None => self.msn_past_end = true,
            }
            self.facts.msns.push(msn);
            let range = self.seg_range.take();
            let own = matches!(target, Target::Own { .. });
            let time = self.stable.as_mut().map(stable::Clock::segment);
            self.undated |= time == Some(None);
            match (time.flatten(), &target, self.ctx.encrypt) {
                (
                    Some(time),
                    Target::Own {
                        path, signed_query, ..
                    },
                    Some(e),
                ) => {
                    let id = stable::segment_id(path, signed_query.as_deref(), range, time);
                    let period = stable::period(time, e.rotate_every_secs);
                    let inc = e.inc_for(period);
                    self.keys.need_explicit(&mut self.out, inc, period, id);
                    Some(Serve::Encrypt {
                        inc,
                        period,
                        msn: id,
                        range,
                    })
                }
                _ => {
                    self.keys.need(&mut self.out, own, msn);
                    self.serve(Use::Media { msn }, range)
                }
            }
        } else {
            self.serve(Use::Playlist, None)
        };
        self.out.copy(l.start, raw_start);
        self.write_target(&target, raw_start, raw_end, serve);
        self.out.copy(raw_end, l.next);
        self.recycle(target);
    }

    /// `EXT-X-BYTERANGE`: when encrypting an own segment, dropped, and its
    /// range goes into the segment's tag.
    fn byterange(&mut self, i: usize, l: Line, from: usize) {
        if !self.keys.injecting() {
            // Without encryption the proxy forwards `Range:` as it is.
            return self.verbatim(l);
        }
        let content = self.content(l);
        let parsed = scan::parse_range(content.get(from..).unwrap_or_default());
        let uri = self
            .next_uri_line(i)
            .map(|j| (self.uri_of(j), self.line_of(j)));
        if let (Some((length, offset)), Some((uri, uri_line))) = (parsed, uri) {
            let range = self.seg_ends.next(uri, length, offset);
            let target = self.resolve(uri, uri_line);
            let own = matches!(target, Target::Own { .. });
            self.recycle(target);
            if own {
                self.seg_range = Some(range);
                return;
            }
        }
        self.verbatim(l);
    }

    /// The content of line `j`.
    fn line_of(&self, j: usize) -> &'a [u8] {
        self.lines.get(j).map_or(&[][..], |&l| self.content(l))
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
            Use::Clear => Some(Serve::Clear { range }),
            Use::Media { .. } if self.facts.origin_encrypted => Some(Serve::Clear { range }),
            Use::Media { msn } => Some(Serve::Encrypt {
                inc: encrypt.inc,
                period: self.keys.period(msn),
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
        let target = self.resolve(raw, content);
        let own = matches!(target, Target::Own { .. });
        let (range, drop) = if own && self.keys.injecting() {
            self.own_range(content, from, raw, ranges)
        } else {
            (None, &[][..])
        };
        if used == Use::Clear && range.is_some_and(|r| r.length.is_none()) {
            // A clear range "to the end" of a ranged resource (a MAP hint
            // with only BYTERANGE-START) would serve the segments after it
            // in the clear: no tag; the player loads the init section once
            // the playlist lists it with its length.
            let serve = self.serve(Use::Playlist, None);
            return self.write_attrs(l, from, Some((attr, target, serve)), &[]);
        }
        if let Use::Media { msn } = used {
            self.keys.need(&mut self.out, own, msn);
        }
        let serve = self.serve(used, range);
        self.write_attrs(l, from, Some((attr, target, serve)), drop);
    }

    /// The byte range of an own URI on an encrypting route, which becomes a
    /// resource of its own, and the attributes that said it (dropped). A
    /// clear init section is limited to its range too: a `c` tag for the
    /// whole file of a single-file fMP4 stream would serve every segment
    /// in the clear.
    fn own_range(
        &mut self,
        content: &[u8],
        from: usize,
        uri: &[u8],
        ranges: RangeAttrs,
    ) -> (Option<ByteRange>, &'static [&'static [u8]]) {
        const BYTERANGE: &[&[u8]] = &[b"BYTERANGE"];
        match ranges {
            RangeAttrs::None => (None, &[]),
            RangeAttrs::Part => match scan::part_range(content, from) {
                Some((length, offset)) => {
                    (Some(self.part_ends.next(uri, length, offset)), BYTERANGE)
                }
                None => (None, &[]),
            },
            // An init section's range starts at 0 unless it says otherwise.
            RangeAttrs::Map => match scan::part_range(content, from) {
                Some((length, offset)) => {
                    let range = ByteRange {
                        offset: offset.unwrap_or(0),
                        length: Some(length),
                    };
                    (Some(range), BYTERANGE)
                }
                None => (None, &[]),
            },
            RangeAttrs::Hint => match scan::hint_range(content, from) {
                Some(range) => (Some(range), &[b"BYTERANGE-START", b"BYTERANGE-LENGTH"]),
                None => (None, &[]),
            },
        }
    }

    /// Writes a tag line: its name, its attributes but `drop`, with the
    /// attribute of `uri` (if any) holding the rewritten URI. Unchanged
    /// bytes are copied from the body, separators included.
    fn write_attrs(&mut self, l: Line, from: usize, uri: Option<UriAttr>, drop: &[&[u8]]) {
        self.write_attr_list(l, from, uri.as_ref(), drop);
        if let Some((_, target, _)) = uri {
            self.recycle(target);
        }
    }

    fn write_attr_list(&mut self, l: Line, from: usize, uri: Option<&UriAttr>, drop: &[&[u8]]) {
        let content = self.content(l);
        let at = |offset: usize| l.start + offset;
        self.out.copy(l.start, at(from));
        // The `,` after the last attribute written, to put before the next.
        let mut comma = None;
        let mut end = from;
        for a in attrs::scan(content, from) {
            end = a.span.1;
            if drop.contains(&a.name(content)) {
                continue;
            }
            if let Some(c) = comma {
                self.out.copy(c, c + 1);
            }
            comma = Some(at(a.span.1));
            match uri {
                Some((u, target, serve)) if u.span == a.span => {
                    self.out.copy(at(a.span.0), at(a.value.0));
                    self.write_target(target, at(a.value.0), at(a.value.1), *serve);
                    self.out.copy(at(a.value.1), at(a.span.1));
                }
                _ => self.out.copy(at(a.span.0), at(a.span.1)),
            }
        }
        // What follows the last attribute ("" or a trailing `,`), the
        // line's end.
        self.out.copy(at(end.max(from)), l.next);
    }

    /// Writes the URI at `body[start..end]`: as it is if foreign, else with
    /// the capability and (when `serve` says so) the segment tag, before
    /// any fragment.
    fn write_target(&mut self, target: &Target, start: usize, end: usize, serve: Option<Serve>) {
        let Target::Own {
            path,
            rewritten,
            fragment_at,
            query,
            signed_query,
        } = target
        else {
            return self.out.copy(start, end);
        };
        let fragment = start + fragment_at;
        match rewritten {
            Some(text) => self.out.push_str(text),
            None => self.out.copy(start, fragment),
        }
        let prefix = match query {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        };
        let prefix = self.cap_prefix.get(prefix).map_or("", String::as_str);
        self.out.push_str(prefix);
        self.out.cap();
        if let Some(serve) = serve {
            let tag = self
                .ctx
                .signer
                .tag(path, signed_query.as_deref().unwrap_or(""), &serve);
            self.out.push_str(&self.tag_prefix);
            self.out.push_str(&tag);
        }
        self.out.copy(fragment, end);
    }
}
