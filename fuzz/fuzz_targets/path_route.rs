//! Request-URI hygiene: path normalization, route lookup and the query
//! stripping that keeps credentials away from the origin and the logs.
//!
//! Input: line 1 is the request target (`path[?query]`); each further line
//! is a route prefix (at most 8; none = `/live/`, `/tv/`, `/`).
//!
//! Asserted for a normalized path `p` of raw `r` (module docs of
//! `tollgate::path`): `p` starts with `/`, has no `//`, no `.`/`..`
//! segment, no control byte or `\`, is no longer than `r`, keeps a
//! trailing `/`; normalization is idempotent (on paths without `%`, which
//! are raw input again); the origin's re-encoding
//! of `p` is plain ASCII and normalizes back to `p`. The route table
//! agrees with a naive longest-prefix scan, and a channel is a whole
//! non-empty segment of the path. Stripping leaves no credential
//! parameter, keeps every other pair in order, and is idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::credentials::CredentialParams;
use tollgate::path::{encode_for_origin, normalize};
use tollgate::router::{RouteSpec, RouteTable};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let target = lines.next().unwrap_or("");
    let (raw, query) = target.split_once('?').unwrap_or((target, ""));
    let mut specs: Vec<RouteSpec> = lines
        .take(8)
        .enumerate()
        .map(|(i, prefix)| RouteSpec {
            prefix: prefix.to_owned(),
            channel: i % 3,
        })
        .collect();
    if specs.is_empty() {
        specs = ["/live/", "/tv/", "/"]
            .iter()
            .map(|p| RouteSpec {
                prefix: (*p).to_owned(),
                channel: 1,
            })
            .collect();
    }

    if let Ok(p) = normalize(raw, tollgate_fuzz::MAX_PATH) {
        check_normalized(raw, &p);
        check_routes(&specs, &p);
    }
    check_strip(query);
});

fn check_normalized(raw: &str, p: &str) {
    assert!(p.starts_with('/'), "{p:?}");
    assert!(!p.contains("//"), "{p:?}");
    assert!(
        !p.split('/').any(|s| s == "." || s == ".."),
        "dot segment left in {p:?}"
    );
    assert!(
        !p.bytes().any(|b| b < 0x20 || b == 0x7f || b == b'\\'),
        "{p:?}"
    );
    assert!(p.len() <= raw.len(), "{raw:?} grew into {p:?}");
    if raw.ends_with('/') {
        assert!(p.ends_with('/'), "{raw:?} lost its trailing slash: {p:?}");
    }
    // A normalized path is decoded: it is raw input again only without `%`.
    if !p.contains('%') {
        assert_eq!(normalize(p, usize::MAX).as_deref(), Ok(p), "not idempotent");
    }
    let wire = encode_for_origin(p);
    assert!(
        wire.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'?' | b'#' | b'\\' | b'"')),
        "origin path {wire:?} holds a byte a server could read differently"
    );
    assert_eq!(
        normalize(&wire, usize::MAX).as_deref(),
        Ok(p),
        "origin path {wire:?} does not normalize back"
    );
}

/// Naive longest-prefix match, the router module's documented semantics.
fn naive(specs: &[RouteSpec], path: &str) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, s) in specs.iter().enumerate() {
        let pre = s.prefix.as_str();
        let hit = path.starts_with(pre)
            && (pre.ends_with('/')
                || path.len() == pre.len()
                || path[pre.len()..].starts_with('/'));
        let longer = best.is_none_or(|b| specs[b].prefix.len() < pre.len());
        if hit && longer {
            best = Some(i);
        }
    }
    best
}

fn check_routes(specs: &[RouteSpec], path: &str) {
    let table = RouteTable::new(specs);
    let got = table.lookup(path);
    let want = naive(specs, path);
    // Equal prefixes resolve to the first: compare prefixes, then ids.
    assert_eq!(
        got.map(|i| &specs[i].prefix),
        want.map(|i| &specs[i].prefix),
        "route of {path:?}"
    );
    assert_eq!(got, want, "first of equal prefixes for {path:?}");
    for id in 0..specs.len() {
        if let Some(ch) = table.channel(id, path) {
            assert!(!ch.is_empty() && !ch.contains('/'), "channel {ch:?}");
            assert!(
                path.contains(&format!("/{ch}/")),
                "channel {ch:?} is not a segment of {path:?}"
            );
        }
    }
}

fn check_strip(query: &str) {
    let params = CredentialParams::new(["hash".to_owned(), "tok*".to_owned()]);
    let stripped = params.strip(query);
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
            !pair.is_empty() && !params.is_credential(name)
        })
        .collect();
    assert_eq!(
        stripped.as_deref(),
        (!kept.is_empty()).then(|| kept.join("&")).as_deref()
    );
    if let Some(s) = &stripped {
        assert_eq!(
            params.strip(s).as_deref(),
            Some(s.as_str()),
            "strip not idempotent"
        );
    }
}
