//! Test support for the rewriter: a deterministic fake signer, the contexts
//! the golden files use, and the structural check every fixture and the
//! proptests run. Written independently of the code under test (its own
//! line splitting and attribute masking), so that it can disagree with it.

use std::cell::RefCell;

use crate::capability::{ByteRange, Serve};

use super::{Context, Encrypt, OriginBase, TagSigner, Template};

/// The capability every test renders with; no fixture contains it.
pub(crate) const CAP: &str = "CAP";

pub(crate) const ORIGIN: OriginBase<'static> = OriginBase {
    scheme: "http",
    authority: "origin.example:8081",
    base_path: "/base",
};

/// The incarnation and key URI prefix of every encrypting test context.
pub(crate) const INC: u64 = 7;
pub(crate) const KEY_PREFIX: &str = "/.tollgate/key/live/ch1/7/";

/// A signer whose tags spell out the wire format of docs/hls.md §5
/// (`e.<inc>.<period>.<msn>[.<off>.<len>]` or `c[.<off>.<len>]`) followed by
/// an FNV-1a hash of the path and that text, and that records every call.
#[derive(Debug, Default)]
pub(crate) struct FakeSigner {
    pub calls: RefCell<Vec<(String, Serve)>>,
}

impl TagSigner for FakeSigner {
    fn tag(&self, path: &str, serve: &Serve) -> String {
        self.calls.borrow_mut().push((path.to_owned(), *serve));
        fake_tag(path, serve)
    }
}

/// The tag [`FakeSigner`] returns.
pub(crate) fn fake_tag(path: &str, serve: &Serve) -> String {
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
    };
    let mut h: u32 = 0x811c_9dc5;
    for b in path.bytes().chain([0]).chain(body.bytes()) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    format!("{body}.{h:08x}")
}

/// A test context: plain (`rotate` None) or encrypting with `rotate` seconds.
pub(crate) fn context<'a>(
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
            key_uri_prefix: KEY_PREFIX,
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
pub(crate) fn strip_params(uri: &str) -> String {
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
pub(crate) fn same_uri(input: &str, out: &str) -> bool {
    let stripped = strip_params(out);
    let norm = |s: &str| strip_params(s).trim_end_matches(['?', '&']).to_owned();
    out == input
        || norm(input) == norm(&stripped)
        || input.contains("://") && input.ends_with(&stripped)
        || input.starts_with("//") && input.ends_with(&stripped)
}

/// Splits an attribute list on commas outside quotes.
fn split_attrs(list: &str) -> Vec<&str> {
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
        "#EXT-X-PART" => encrypting && name == "BYTERANGE",
        "#EXT-X-PRELOAD-HINT" => {
            encrypting && matches!(name, "BYTERANGE-START" | "BYTERANGE-LENGTH")
        }
        _ => false,
    }
}

/// Which attributes of which tags hold URIs the rewriter may extend.
fn is_uri_attr(tag: &str, name: &str) -> bool {
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
pub(crate) fn check_structure(input: &[u8], t: &Template, encrypting: bool) {
    let rendered = t.render(CAP);
    let (ins, outs) = (lines(input), lines(&rendered));
    let (mut i, mut injected) = (0, 0);
    for (j, out) in outs.iter().enumerate() {
        loop {
            let here = ins.get(i).copied();
            if here.is_some_and(|l| same_line(l, out, encrypting)) {
                i += 1;
                break;
            }
            if is_injected_key(out) {
                injected += 1;
                break;
            }
            let byterange = here.is_some_and(|l| l.starts_with(b"#EXT-X-BYTERANGE:"));
            assert!(
                encrypting && byterange,
                "output line {j} {:?} does not match input line {i} {:?}",
                String::from_utf8_lossy(out),
                here.map(String::from_utf8_lossy),
            );
            i += 1;
        }
    }
    assert_eq!(i, ins.len(), "input lines left over");
    assert_eq!(injected, t.injected_key_lines(), "injected key lines");
    let caps = rendered.windows(CAP.len() + 4).filter(|w| {
        w.ends_with(CAP.as_bytes()) && (w.starts_with(b"?tg=") || w.starts_with(b"&tg="))
    });
    assert_eq!(caps.count(), t.cap_count(), "capabilities in the output");
}
