//! Where the rewriter puts `EXT-X-KEY` lines in a media playlist it
//! encrypts (docs/hls.md §6, research doc §1.4–1.5 and §8).
//!
//! Owns the key in effect in the *output* and the place the next key line
//! would go. Before a line that needs a key (a media segment URI, an
//! `EXT-X-PART`, a PART preload hint) the wanted key is compared with the
//! one in effect and, if different, a key line is inserted before the first
//! segment-scoped line since the last such line or the last
//! `EXT-X-MAP`/origin `EXT-X-KEY`, so that it precedes the segment's
//! `EXTINF`, `EXT-X-PROGRAM-DATE-TIME`, first part… A MAP while a key is in
//! effect gets `METHOD=NONE` before it (init sections stay clear; a key
//! before a MAP would declare the init encrypted), so the next segment gets
//! its key again. Must not decide what is own or how it is served.

use super::template::Out;
use super::{Encrypt, TagSigner};
use crate::capability::Serve;

/// A key as the playlist names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    /// The stream incarnation (with its key generation) in the key URI.
    inc: u64,
    period: u64,
    /// Explicit IV (the MSN), for MSNs of 2^32 and more: hls.js keeps only
    /// 32 bits of an implicit one (research doc §1.2).
    iv: Option<u64>,
}

/// The key lines of one media playlist being rewritten.
pub(crate) struct Keys<'a> {
    /// Set when key lines are injected (encrypting a media playlist the
    /// origin did not encrypt).
    inject: Option<Encrypt<'a>>,
    cap_param: &'a str,
    tag_param: &'a str,
    /// Signs each key URI's tag (docs/hls.md §8).
    signer: &'a dyn TagSigner,
    eol: &'static [u8],
    /// Segments per key period, at least 1.
    per_period: u64,
    /// The key in effect in the output so far (None: clear).
    effective: Option<Key>,
    /// Where a key line for the next segment would go.
    point: Option<usize>,
    /// Key lines written so far (AES-128 and NONE).
    pub written: usize,
    /// The last key URI's tag, by (incarnation, period): catch-up mode
    /// writes a key line per segment, most of them for the same period.
    last_tag: std::cell::RefCell<Option<((u64, u64), String)>>,
}

impl<'a> Keys<'a> {
    pub fn new(
        inject: Option<Encrypt<'a>>,
        (cap_param, tag_param): (&'a str, &'a str),
        signer: &'a dyn TagSigner,
        eol: &'static [u8],
        per_period: u64,
    ) -> Self {
        Keys {
            inject,
            cap_param,
            tag_param,
            signer,
            eol,
            per_period: per_period.max(1),
            effective: None,
            point: None,
            written: 0,
            last_tag: std::cell::RefCell::new(None),
        }
    }

    /// Whether key lines are injected at all.
    pub fn injecting(&self) -> bool {
        self.inject.is_some()
    }

    /// The key period of segment `msn`.
    pub fn period(&self, msn: u64) -> u64 {
        msn / self.per_period
    }

    /// A segment-scoped line is about to be written: the earliest place for
    /// the next key line, unless an earlier one is pending.
    pub fn scoped(&mut self, out: &Out<'_>) {
        if self.point.is_none() {
            self.point = Some(out.mark());
        }
    }

    /// The origin's `EXT-X-KEY` (METHOD=NONE unless the origin encrypts, in
    /// which case nothing is injected) ends the scope of ours, and a key
    /// line must come after it.
    pub fn origin_key(&mut self) {
        self.effective = None;
        self.point = None;
    }

    /// An `EXT-X-MAP` is about to be written: it must not be covered by a
    /// key (the init section is served clear).
    pub fn before_map(&mut self, out: &mut Out<'_>) {
        if self.injecting() && self.effective.is_some() {
            self.write(out, None);
            self.written += 1;
        }
        self.origin_key();
    }

    /// A line that needs the key of segment `msn` (own) or no key (not own)
    /// is about to be written: inserts a key line if the one in effect
    /// differs.
    pub fn need(&mut self, out: &mut Out<'_>, own: bool, msn: u64) {
        let inc = self.inject.map_or(0, |e| e.inc);
        let want = own.then(|| Key {
            inc,
            period: self.period(msn),
            iv: (msn >> 32 != 0).then_some(msn),
        });
        self.need_key(out, want);
    }

    /// [`Self::need`] for a key given whole: incarnation `inc`, `period`,
    /// with the explicit IV `iv` (a stable segment id, see `hls::stable`).
    pub fn need_explicit(&mut self, out: &mut Out<'_>, inc: u64, period: u64, iv: u64) {
        let want = Some(Key {
            inc,
            period,
            iv: Some(iv),
        });
        self.need_key(out, want);
    }

    fn need_key(&mut self, out: &mut Out<'_>, want: Option<Key>) {
        if self.injecting() && self.effective != want {
            let at = self.point.unwrap_or_else(|| out.mark());
            out.insert(at, |o| self.write(o, want));
            self.effective = want;
            self.written += 1;
        }
        self.point = None;
    }

    /// Writes an `EXT-X-KEY` line: AES-128 with `key`, or METHOD=NONE.
    fn write(&self, out: &mut Out<'_>, key: Option<Key>) {
        let (Some(key), Some(encrypt)) = (key, self.inject) else {
            out.push(b"#EXT-X-KEY:METHOD=NONE");
            out.push(self.eol);
            return;
        };
        out.push(b"#EXT-X-KEY:METHOD=AES-128,URI=\"");
        out.push_str(encrypt.key_uri_prefix);
        let (mut a, mut b) = ([0u8; 20], [0u8; 20]);
        let (inc, period) = (decimal(key.inc, &mut a), decimal(key.period, &mut b));
        out.push_str(inc);
        out.push(b"/");
        out.push_str(period);
        out.push(b".key?");
        out.push_str(self.cap_param);
        out.push(b"=");
        out.cap();
        // The key endpoint serves only periods a playlist named: the tag
        // binds the incarnation and period (in the signed path) and a
        // validity (research doc §0 "Key URL auth").
        out.push(b"&");
        out.push_str(self.tag_param);
        out.push(b"=");
        let id = (key.inc, key.period);
        let mut last = self.last_tag.borrow_mut();
        match &*last {
            Some((at, tag)) if *at == id => out.push_str(tag),
            _ => {
                let path = format!("{}{inc}/{period}.key", encrypt.key_path_prefix);
                let until = encrypt.key_until;
                let tag = self.signer.tag(&path, "", &Serve::Key { until });
                out.push_str(&tag);
                *last = Some((id, tag));
            }
        }
        out.push(b"\"");
        if let Some(iv) = key.iv {
            // 32 hex digits: the id is the low 64 bits of the 128-bit IV.
            out.push(b",IV=0x0000000000000000");
            let mut hex = [0u8; 16];
            if hex::encode_to_slice(iv.to_be_bytes(), &mut hex).is_ok() {
                out.push(&hex);
            }
        }
        out.push(self.eol);
    }
}

/// `n` in decimal, written into `buf` (20 digits hold any u64).
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        if let Some(d) = buf.get_mut(at) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    std::str::from_utf8(buf.get(at..).unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimals_match_display() {
        for n in [0, 7, 10, 99, 1_733_097_600, u64::MAX] {
            assert_eq!(super::decimal(n, &mut [0; 20]), n.to_string());
        }
    }
}
