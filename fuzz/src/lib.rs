//! Shared pieces of tollgate's fuzz targets: the text format of a fuzzed
//! viewer request, configs built through the real config loader, and the
//! checks every signature scheme must pass.
//!
//! A request input is text (invalid UTF-8 is replaced), one field a line:
//!
//! ```text
//! <variant byte><client ip>
//! <now, unix seconds>
//! <request target: raw path[?query]>
//! <user id for signing, empty = none>
//! <header name>: <value>        (any number of lines)
//! ```
//!
//! The first byte picks one of a target's config variants; a line that does
//! not parse falls back to a default, so every input reaches the parser.
//! `scripts/fuzz-seeds.sh` writes seeds in this format from the test vectors.

use std::net::IpAddr;
use std::path::Path;

use http::{HeaderMap, HeaderName, HeaderValue};
use tollgate::auth::{AuthRequest, Check, Scheme, SignRequest};
use tollgate::config::Config;
use tollgate::router::{RouteSpec, RouteTable};

/// Longest raw path the proxy accepts by default (`server.max_uri_bytes`).
pub const MAX_PATH: usize = 4096;

/// A viewer request decoded from fuzz input.
#[derive(Debug)]
pub struct Request {
    /// Which config variant of the target to use.
    pub variant: u8,
    /// The client address.
    pub ip: IpAddr,
    /// Unix seconds, kept within 32 bits like every real clock until 2106.
    pub now: u64,
    /// The raw path (before normalization).
    pub raw_path: String,
    /// The raw query, if the target had a `?`.
    pub query: Option<String>,
    /// A user to sign for (`tollgate sign --user`), if any.
    pub user: Option<String>,
    /// Request headers (lines that are not valid headers are skipped).
    pub headers: HeaderMap,
}

/// Decode a request input (see the module docs). Never fails.
pub fn request(data: &[u8]) -> Request {
    let (variant, rest) = data.split_first().map_or((0, &[][..]), |(v, r)| (*v, r));
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.split('\n');
    let mut next = || lines.next().unwrap_or("").to_owned();
    let ip = next()
        .trim()
        .parse()
        .unwrap_or(IpAddr::from([192, 0, 2, 1]));
    let now = next().trim().parse::<u64>().unwrap_or(1_700_000_000) % (1 << 32);
    let target = next();
    let (raw_path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target, None),
    };
    let user = Some(next()).filter(|u| !u.is_empty());
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            headers.append(n, v);
        }
    }
    Request {
        variant,
        ip,
        now,
        raw_path,
        query,
        user,
        headers,
    }
}

/// The routes every request target is looked up in: `/live/<channel>/…`,
/// `/tv/<channel>/…` and a catch-all without a channel.
pub fn routes() -> RouteTable {
    let spec = |prefix: &str, channel| RouteSpec {
        prefix: prefix.to_owned(),
        channel,
    };
    RouteTable::new(&[spec("/live/", 1), spec("/tv/", 1), spec("/", 0)])
}

/// A config with one origin and route and the given extra sections, through
/// the real loader. Panics when the target's own config is refused (a bug in
/// the target, not a finding).
pub fn config(sections: &str) -> Config {
    let text = format!(
        "[[origin]]\nname = \"o\"\nurl = \"http://127.0.0.1:1\"\n\
         [[route]]\nname = \"live\"\nprefix = \"/live/\"\norigin = \"o\"\nchannel = 1\n\
         auth = [\"token\"]\n\
         [[user]]\nid = \"alice\"\ntokens = [\"3f9c1e7a5b2d4c68a1e0f9b7c3d5e2a4\"]\n\
         password = \"open sesame\"\npackages = [\"all\"]\n\
         [[package]]\nname = \"all\"\nchannels = [\"*\"]\n\
         {sections}\n"
    );
    match Config::parse(&text, Path::new(".")) {
        Ok(c) => c,
        Err(e) => panic!("fuzz target config refused: {e}\n{text}"),
    }
}

/// What a scheme variant promises about the links it signs.
#[derive(Debug, Clone, Copy)]
pub struct Promises {
    /// A link signed for one client address is refused from another.
    pub binds_ip: bool,
    /// A link signed with an expiry is refused well after it.
    pub expires: bool,
    /// The signed user comes back as the identity.
    pub carries_user: bool,
}

/// Run `scheme` on the request the way the proxy does (normalized path,
/// the route's channel), then check its promises on a link it signs for
/// the same path, address and user:
///
/// - `check` never panics and is deterministic;
/// - a link `sign` makes is accepted as signed (its path normalizes, and
///   `check` allows it at `now`), with the signed user when the scheme
///   carries users;
/// - it is refused from another address when the scheme binds addresses,
///   and a day after its expiry when it has one.
pub fn check_scheme(scheme: &dyn Scheme, req: &Request, promises: Promises) {
    let Ok(path) = tollgate::path::normalize(&req.raw_path, MAX_PATH) else {
        return;
    };
    let table = routes();
    let channel = table.lookup(&path).and_then(|id| table.channel(id, &path));
    let auth = AuthRequest {
        client_ip: req.ip,
        path: &path,
        query: req.query.as_deref(),
        headers: &req.headers,
        channel,
        now: req.now,
    };
    let first = scheme.check(&auth);
    assert_eq!(first, scheme.check(&auth), "check is not deterministic");

    let expires = req.now + 3600;
    let sign = SignRequest {
        path: &path,
        client_ip: Some(req.ip),
        channel,
        start: req.now.saturating_sub(60),
        expires,
        user: req.user.as_deref(),
    };
    let Ok(link) = scheme.sign(&sign) else {
        return;
    };
    let (link_path, link_query) = match link.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (link.as_str(), None),
    };
    let signed_path = match tollgate::path::normalize(link_path, usize::MAX) {
        Ok(p) => p,
        Err(e) => panic!("signed link {link:?} does not normalize: {e}"),
    };
    let signed_channel = table
        .lookup(&signed_path)
        .and_then(|id| table.channel(id, &signed_path));
    let empty = HeaderMap::new();
    let at = |ip, now| AuthRequest {
        client_ip: ip,
        path: &signed_path,
        query: link_query,
        headers: &empty,
        channel: signed_channel,
        now,
    };
    match scheme.check(&at(req.ip, req.now)) {
        Check::Allow(id) => {
            if promises.carries_user {
                assert_eq!(id.user, req.user, "signed user lost in {link:?}");
            }
        }
        other => panic!("own link {link:?} for {path:?} refused: {other:?}"),
    }
    if promises.binds_ip {
        let other = other_ip(req.ip);
        let verdict = scheme.check(&at(other, req.now));
        assert!(
            !matches!(verdict, Check::Allow(_)),
            "link {link:?} for {} accepted from {other}",
            req.ip
        );
    }
    if promises.expires {
        let verdict = scheme.check(&at(req.ip, expires + 86_400));
        assert!(
            !matches!(verdict, Check::Allow(_)),
            "link {link:?} accepted a day after its expiry"
        );
    }
}

/// An address that differs from `ip` (same family).
pub fn other_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) ^ 1).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) ^ 1).into()),
    }
}

/// Reads fixed-size fields off the front of fuzz input; past the end every
/// field is zero or empty, so every input decodes.
#[derive(Debug)]
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    /// The next `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    /// The next byte.
    pub fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    /// The next 8 bytes, big-endian.
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let head = self.bytes(8);
        b[..head.len()].copy_from_slice(head);
        u64::from_be_bytes(b)
    }

    /// A client address: IPv4 or IPv6 by the next byte.
    pub fn ip(&mut self) -> IpAddr {
        if self.u8() & 1 == 0 {
            let mut b = [0u8; 4];
            let head = self.bytes(4);
            b[..head.len()].copy_from_slice(head);
            IpAddr::from(b)
        } else {
            let mut b = [0u8; 16];
            let head = self.bytes(16);
            b[..head.len()].copy_from_slice(head);
            IpAddr::from(b)
        }
    }

    /// A string of up to `max` bytes, its length given by the next byte
    /// (invalid UTF-8 replaced).
    pub fn string(&mut self, max: usize) -> String {
        let n = usize::from(self.u8()).min(max);
        String::from_utf8_lossy(self.bytes(n)).into_owned()
    }

    /// Everything left, as text.
    pub fn rest(&mut self) -> String {
        String::from_utf8_lossy(self.bytes(usize::MAX)).into_owned()
    }
}
