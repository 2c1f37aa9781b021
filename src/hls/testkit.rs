//! Test support for the rewriter: a deterministic fake signer, the contexts
//! the golden files use, and the structural check every fixture and the
//! proptests run. Written independently of the code under test (its own
//! line splitting and attribute masking), so that it can disagree with it.

use std::cell::RefCell;

use crate::capability::{ByteRange, Serve};

use super::{Context, Encrypt, OriginBase, TagSigner, Template};

/// The capability every test renders with; no fixture contains it.
pub const CAP: &str = "CAP";

pub const ORIGIN: OriginBase<'static> = OriginBase {
    scheme: "http",
    authority: "origin.example:8081",
    base_path: "/base",
};

/// The incarnation and key URI prefix of every encrypting test context.
pub const INC: u64 = 7;
pub const KEY_PREFIX: &str = "/.tollgate/key/live/ch1/7/";
/// [`KEY_PREFIX`] without the incarnation, as [`Encrypt`] takes it.
pub const KEY_BASE: &str = "/.tollgate/key/live/ch1/";
/// The key tags' validity in every encrypting test context.
pub const KEY_UNTIL: u64 = 1_800_000_000;

/// A signer whose tags spell out the wire format of docs/hls.md §5
/// (`e.<inc>.<period>.<msn>[.<off>.<len>]` or `c[.<off>.<len>]`) followed by
/// an FNV-1a hash of the path and that text, and that records every call.
#[derive(Debug, Default)]
pub struct FakeSigner {
    pub calls: RefCell<Vec<(String, Serve)>>,
}

impl TagSigner for FakeSigner {
    fn tag(&self, path: &str, query: &str, serve: &Serve) -> String {
        // A query is recorded (and tagged) as part of the path, `path?query`.
        let path = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        let tag = fake_tag(&path, serve);
        self.calls.borrow_mut().push((path, *serve));
        tag
    }
}

/// The tag [`FakeSigner`] returns.
pub fn fake_tag(path: &str, serve: &Serve) -> String {
    let range = |r: &Option<ByteRange>| match r {
        Some(r) => match r.length {
            Some(l) => format!(".{}.{l}", r.offset),
            None => format!(".{}.-", r.offset),
        },
        None => String::new(),
    };
    let body = match serve {
        Serve::Encrypt {
            inc,
            period,
            msn,
            range: r,
        } => format!("e.{inc}.{period}.{msn}{}", range(r)),
        Serve::Clear { range: r } => format!("c{}", range(r)),
        Serve::Key { until } => format!("k.{until}"),
    };
    let mut h: u32 = 0x811c_9dc5;
    for b in path.bytes().chain([0]).chain(body.bytes()) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    format!("{body}.{h:08x}")
}

/// A test context: plain (`rotate` None) or encrypting with `rotate` seconds.
pub fn context<'a>(
    playlist_path: &'a str,
    rotate: Option<u64>,
    signer: &'a FakeSigner,
) -> Context<'a> {
    Context {
        playlist_path,
        origin: ORIGIN,
        encrypt: rotate.map(|rotate_every_secs| Encrypt {
            inc: INC,
            rotate_every_secs,
            key_uri_prefix: KEY_BASE,
            key_path_prefix: KEY_BASE,
            generations: &[],
            key_until: KEY_UNTIL,
            stable: false,
        }),
        cap_param: "tg",
        tag_param: "tgs",
        signer,
        max_bytes: 1 << 20,
    }
}

/// Lines with their terminators.
fn lines(b: &[u8]) -> Vec<&[u8]> {
    b.split_inclusive(|&c| c == b'\n').collect()
}

fn is_injected_key(line: &[u8]) -> bool {
    let line = trim_eol(line);
    let aes = format!("#EXT-X-KEY:METHOD=AES-128,URI=\"{KEY_PREFIX}");
    line == b"#EXT-X-KEY:METHOD=NONE" || line.starts_with(aes.as_bytes())
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The URI text without the proxy's parameters and without a dangling `?`
/// or `&`, for comparing an input URI with its rewritten form.
pub fn strip_params(uri: &str) -> String {
    let (head, frag) = uri.split_at(uri.find('#').unwrap_or(uri.len()));
    let (path, query) = head.split_at(head.find('?').unwrap_or(head.len()));
    let kept: Vec<&str> = query
        .trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("tg=") && !p.starts_with("tgs="))
        .collect();
    let q = if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    };
    format!("{path}{q}{frag}")
}

/// Whether `out` is `input` as the rewriter may write it: unchanged
/// (foreign), with parameters added, or an absolute origin URI mapped to
/// its proxy path (which then ends the input).
pub fn same_uri(input: &str, out: &str) -> bool {
    let stripped = strip_params(out);
    let norm = |s: &str| strip_params(s).trim_end_matches(['?', '&']).to_owned();
    out == input
        || norm(input) == norm(&stripped)
        || input.contains("://") && input.ends_with(&stripped)
        || input.starts_with("//") && input.ends_with(&stripped)
}

/// Splits an attribute list on commas outside quotes.
pub fn split_attrs(list: &str) -> Vec<&str> {
    let mut out = Vec::new();
    if list.is_empty() {
        return out;
    }
    let (mut start, mut quoted) = (0, false);
    for (i, c) in list.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&list[start..]);
    out
}

/// Attributes the rewriter may remove from a tag.
fn droppable(tag: &str, name: &str, encrypting: bool) -> bool {
    match tag {
        "#EXT-X-SERVER-CONTROL" => matches!(name, "CAN-SKIP-UNTIL" | "CAN-SKIP-DATERANGES"),
        "#EXT-X-PART" | "#EXT-X-MAP" => encrypting && name == "BYTERANGE",
        "#EXT-X-PRELOAD-HINT" => {
            encrypting && matches!(name, "BYTERANGE-START" | "BYTERANGE-LENGTH")
        }
        _ => false,
    }
}

/// Which attributes of which tags hold URIs the rewriter may extend.
pub fn is_uri_attr(tag: &str, name: &str) -> bool {
    const URI_TAGS: &[&str] = &[
        "#EXT-X-MEDIA",
        "#EXT-X-I-FRAME-STREAM-INF",
        "#EXT-X-MAP",
        "#EXT-X-KEY",
        "#EXT-X-SESSION-KEY",
        "#EXT-X-SESSION-DATA",
        "#EXT-X-PART",
        "#EXT-X-PRELOAD-HINT",
        "#EXT-X-RENDITION-REPORT",
    ];
    name == "URI" && URI_TAGS.contains(&tag)
        || tag == "#EXT-X-CONTENT-STEERING" && name == "SERVER-URI"
}

/// Compares one input line with one output line: equal, or equal but for
/// URI text (checked with [`same_uri`]) and attributes the rules drop.
fn same_line(input: &[u8], out: &[u8], encrypting: bool) -> bool {
    if input == out {
        return true;
    }
    let (Ok(i), Ok(o)) = (std::str::from_utf8(input), std::str::from_utf8(out)) else {
        return false;
    };
    let (i_body, o_body) = (trim_eol(i.as_bytes()), trim_eol(o.as_bytes()));
    if input.get(i_body.len()..) != out.get(o_body.len()..) {
        return false; // line endings differ
    }
    let (i, o) = (
        i.trim_end_matches(['\r', '\n']),
        o.trim_end_matches(['\r', '\n']),
    );
    if !i.starts_with('#') {
        let (ti, to) = (i.trim(), o.trim());
        return !ti.is_empty() && i.find(ti) == o.find(to) && same_uri(ti, to);
    }
    let (Some((tag, i_list)), Some((o_tag, o_list))) = (i.split_once(':'), o.split_once(':'))
    else {
        return false;
    };
    if tag != o_tag {
        return false;
    }
    let o_attrs = split_attrs(o_list);
    let i_attrs: Vec<&str> = split_attrs(i_list)
        .into_iter()
        .filter(|a| {
            let name = a.split('=').next().unwrap_or("");
            !droppable(tag, name, encrypting) || o_attrs.contains(a)
        })
        .collect();
    i_attrs.len() == o_attrs.len()
        && i_attrs.iter().zip(&o_attrs).all(|(a, b)| {
            let (an, av) = a.split_once('=').unwrap_or((a, ""));
            let (bn, bv) = b.split_once('=').unwrap_or((b, ""));
            an == bn
                && (av == bv
                    || is_uri_attr(tag, an.trim())
                        && same_uri(av.trim().trim_matches('"'), bv.trim().trim_matches('"')))
        })
}

/// The structural check: the output lines, after removing injected
/// `EXT-X-KEY` lines and the `EXT-X-BYTERANGE` lines the rules drop, equal
/// the input lines except for URI text and dropped attributes; and the
/// number of injected key lines and of capabilities is what the template
/// says.
pub fn check_structure(input: &[u8], t: &Template, encrypting: bool) {
    let rendered = t.render(CAP);
    let (ins, outs) = (lines(input), lines(&rendered));
    let mut dead = std::collections::HashSet::new();
    let Some(injected) = align(&ins, &outs, encrypting, (0, 0), &mut dead) else {
        let (i, j) = dead.iter().copied().max().unwrap_or((0, 0));
        panic!(
            "output does not align with input; deepest mismatch: input line {i} {:?}, output line {j} {:?}\n{}",
            ins.get(i).map(|l| String::from_utf8_lossy(l)),
            outs.get(j).map(|l| String::from_utf8_lossy(l)),
            String::from_utf8_lossy(&rendered),
        );
    };
    assert_eq!(injected, t.injected_key_lines(), "injected key lines");
    let caps = rendered.windows(CAP.len() + 4).filter(|w| {
        w.ends_with(CAP.as_bytes()) && (w.starts_with(b"?tg=") || w.starts_with(b"&tg="))
    });
    assert_eq!(caps.count(), t.cap_count(), "capabilities in the output");
}

/// Aligns input lines `ins[i..]` with output lines `outs[j..]`: each output
/// line matches the next input line or is an injected key line; an input
/// `EXT-X-BYTERANGE` line may have been dropped (when encrypting). Returns
/// the number of injected lines of the first alignment found (an origin
/// `METHOD=NONE` line looks like an injected one, hence the search).
fn align(
    ins: &[&[u8]],
    outs: &[&[u8]],
    encrypting: bool,
    (i, j): (usize, usize),
    dead: &mut std::collections::HashSet<(usize, usize)>,
) -> Option<usize> {
    let (here, out) = (ins.get(i), outs.get(j));
    if here.is_none() && out.is_none() {
        return Some(0);
    }
    if dead.contains(&(i, j)) {
        return None;
    }
    if let (Some(l), Some(o)) = (here, out)
        && same_line(l, o, encrypting)
        && let Some(n) = align(ins, outs, encrypting, (i + 1, j + 1), dead)
    {
        return Some(n);
    }
    if out.is_some_and(|o| is_injected_key(o))
        && let Some(n) = align(ins, outs, encrypting, (i, j + 1), dead)
    {
        return Some(n + 1);
    }
    if encrypting
        && here.is_some_and(|l| l.starts_with(b"#EXT-X-BYTERANGE:"))
        && let Some(n) = align(ins, outs, encrypting, (i + 1, j), dead)
    {
        return Some(n);
    }
    dead.insert((i, j));
    None
}

/// Every URI of a playlist in order, as a player would find them: URI lines
/// and the URI attributes of the tags that have them.
pub fn uris(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    let mut out = Vec::new();
    for line in text.split('\n').skip(1) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some((tag, list)) = line.split_once(':').filter(|_| line.starts_with('#')) {
            for attr in split_attrs(list) {
                let (name, value) = attr.split_once('=').unwrap_or((attr, ""));
                if is_uri_attr(tag, name.trim()) {
                    out.push(value.trim().trim_matches('"').to_owned());
                }
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            out.push(line.trim().to_owned());
        }
    }
    out
}

/// Parses `e.<inc>.<period>.<msn>…` out of a line's `tgs=` parameter.
fn encrypt_tag(line: &str) -> Option<(u64, u64)> {
    let (_, rest) = line.split_once("tgs=e.")?;
    let mut parts = rest.split('.');
    let _inc = parts.next()?;
    let period = parts.next()?.parse().ok()?;
    let msn = parts.next()?.parse().ok()?;
    Some((period, msn))
}

/// The key an injected AES-128 line names: period and explicit IV.
fn injected_key(line: &str) -> Option<(u64, Option<u64>)> {
    let (_, rest) = line.split_once(KEY_PREFIX)?;
    let period = rest.split_once(".key")?.0.parse().ok()?;
    let iv = match line.split_once(",IV=0x") {
        Some((_, hex)) => {
            assert_eq!(hex.len(), 32, "IV of {line:?}");
            Some(u64::try_from(u128::from_str_radix(hex, 16).ok()?).ok()?)
        }
        None => None,
    };
    Some((period, iv))
}

/// What players see when they decrypt an encrypting template's output:
/// every own media URI (segment, part, part hint) has exactly the key its
/// tag was signed for in effect (period, and an explicit IV equal to the
/// MSN when the MSN needs 33 bits or more); every foreign segment, part
/// and every `EXT-X-MAP` is in the clear; and the tags' MSNs are the
/// template's. No-op for other templates.
pub fn check_keys(t: &Template, encrypting: bool) {
    if !encrypting || t.kind() != super::Kind::Media || t.origin_encrypted() {
        return;
    }
    let rendered = t.render(CAP);
    let text = String::from_utf8_lossy(&rendered);
    let mut effective: Option<(u64, Option<u64>)> = None;
    let mut segment = 0;
    for line in text.split('\n').skip(1) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with("#EXT-X-KEY:") {
            // Ours, or the origin's METHOD=NONE (or METHOD-less) line.
            effective = injected_key(line);
            let aes = line.contains("METHOD=AES-128");
            assert!(!aes || effective.is_some(), "unexpected key line {line:?}");
            continue;
        }
        if line.starts_with("#EXT-X-MAP:") {
            assert_eq!(effective, None, "a key is in effect at {line:?}");
        }
        let is_segment = !line.starts_with('#') && !line.trim().is_empty();
        let is_part = line.starts_with("#EXT-X-PART:")
            || line.starts_with("#EXT-X-PRELOAD-HINT:") && line.contains("TYPE=PART");
        if !(is_segment || is_part) {
            continue;
        }
        match encrypt_tag(line) {
            Some((period, msn)) => {
                let iv = (msn >= 1 << 32).then_some(msn);
                assert_eq!(effective, Some((period, iv)), "key in effect at {line:?}");
                if is_segment {
                    assert_eq!(t.segment_msns().get(segment), Some(&msn), "{line:?}");
                }
            }
            None => assert_eq!(effective, None, "a key is in effect at foreign {line:?}"),
        }
        segment += usize::from(is_segment);
    }
    assert_eq!(segment, t.segment_msns().len(), "segment URI lines");
}
