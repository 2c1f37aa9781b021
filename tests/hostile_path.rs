//! Hostile paths and URIs (SPEC §6, issue 11): what reaches an origin is
//! what tollgate routed and authorized; a capability minted for an address
//! works only from it; a playlist URI that a player would send to another
//! host never carries a capability.
//!
//! - A servlet-style origin (written here: it cuts `;parameters` from each
//!   segment, decodes, then resolves `..`) never serves a channel the user
//!   is not entitled to, whatever dot-segment look-alike the request holds.
//! - `;` and `+` reach the origin percent-encoded.
//! - A capability from an entry the `ip` method allowed is refused from
//!   another address; `sessions.bind_ip` prefixes accept the same network
//!   only (clients bind 127.0.0.x source addresses: loopback is a /8).
//! - A corpus of playlist URIs led by ASCII or Unicode whitespace, or on
//!   lines players split, through the real proxy: no URI that a trimming,
//!   WHATWG-resolving player sends elsewhere carries `tg=`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use common::*;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use reqwest::Url;

/// A client whose connections come from `ip` (any 127.0.0.0/8 address).
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .local_address(IpAddr::from(ip))
        .build()
        .unwrap()
}

async fn get_from(ip: [u8; 4], url: &str) -> (u16, String) {
    let r = client_from(ip).get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The value of `tg` on the first line of `playlist` starting with `uri`.
fn capability_of(playlist: &str, uri: &str) -> String {
    let line = playlist
        .lines()
        .find(|l| l.starts_with(uri))
        .unwrap_or_else(|| panic!("no {uri} line in {playlist:?}"));
    let at = line.find("tg=").expect("a capability") + 3;
    let rest = &line[at..];
    rest[..rest.find(['&', '"']).unwrap_or(rest.len())].to_owned()
}

// ---------------------------------------------------------------------------
// 1. `..;` and friends through a servlet-style origin
// ---------------------------------------------------------------------------

/// How Tomcat/Jetty read a request path: each segment cut at its first `;`
/// (path parameters), then percent-decoded, then `.` and `..` resolved.
fn servlet_resolve(raw: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let segments: Vec<&str> = raw.trim_start_matches('/').split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        let cut = &seg[..seg.find(';').unwrap_or(seg.len())];
        let name = percent_encoding::percent_decode_str(cut)
            .decode_utf8_lossy()
            .into_owned();
        match name.as_str() {
            "." => {}
            ".." => {
                out.pop();
            }
            _ if name.is_empty() && i != last => {}
            _ => out.push(name),
        }
    }
    format!("/{}", out.join("/"))
}

struct ServletOrigin {
    origin: TestOrigin,
    /// Every path as the servlet origin resolved it.
    resolved: Arc<Mutex<Vec<String>>>,
}

/// A servlet-style origin with channels `cha` and `chb`, each with a
/// playlist (its own AES-128 key URI and one segment), the key and the
/// segment, all marked with the channel's name.
async fn servlet_origin() -> ServletOrigin {
    let resolved = Arc::new(Mutex::new(Vec::new()));
    let log = resolved.clone();
    let origin = start_origin(move |req: Request<Incoming>| {
        let path = servlet_resolve(req.uri().path());
        log.lock().unwrap().push(path.clone());
        async move {
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            let body = match parts.as_slice() {
                ["live", ch @ ("cha" | "chb"), "index.m3u8"] => format!(
                    "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n\
                     #CHANNEL {ch}\n#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\"\n\
                     #EXTINF:2,\nseg-1.ts\n"
                ),
                ["live", ch @ ("cha" | "chb"), "key.bin"] => format!("KEY OF {ch}"),
                ["live", ch @ ("cha" | "chb"), "seg-1.ts"] => format!("SEGMENT OF {ch}"),
                _ => {
                    let mut r = Response::new(full("not here"));
                    *r.status_mut() = StatusCode::NOT_FOUND;
                    return r;
                }
            };
            Response::new(full(body))
        }
    })
    .await;
    ServletOrigin { origin, resolved }
}

fn token_config(origin: SocketAddr, sessions: &str) -> String {
    ConfigBuilder::new(origin)
        .sessions(sessions)
        .live(&["token"])
        .package("a", &["cha", "ch1"])
        .user("alice", &["alice-token"], &["a"])
        .build()
}

/// Segments that are a dot-segment to a servlet container, Windows/IIS, an
/// origin decoding twice, or a Unicode-normalizing one.
const DOT_LOOKALIKES: &[&str] = &[
    "..;",
    "..;jsessionid=0",
    "%2e%2e;",
    "%2E%2E%3B",
    "..%3B",
    "..%3b",
    ".%2e;x",
    "..%5C",
    "..%255c",
    "%252e%252e",
    "%EF%BC%8E%EF%BC%8E",
    "%E2%80%A5",
    "..%00",
    "..%20",
    "...",
    "..::$DATA",
];

#[tokio::test(flavor = "multi_thread")]
async fn servlet_origin_never_serves_a_channel_through_dot_lookalikes() {
    let servlet = servlet_origin().await;
    let proxy = start_proxy(&token_config(servlet.origin.addr, "")).await;
    // The entitled channel plays, the other one is refused.
    let (status, cha) = fetch(&proxy, "/live/cha/index.m3u8?token=alice-token").await;
    assert_eq!(status, 200, "{cha}");
    assert!(cha.contains("#CHANNEL cha"), "{cha}");
    let cap = capability_of(&cha, "seg-1.ts");
    let seg = fetch(&proxy, &format!("/live/cha/seg-1.ts?tg={cap}")).await;
    assert_eq!(seg, (200, "SEGMENT OF cha".to_owned()));
    assert_eq!(
        fetch(&proxy, "/live/chb/index.m3u8?token=alice-token").await,
        (403, error_body("not_entitled"))
    );

    assert!(!DOT_LOOKALIKES.is_empty());
    for dots in DOT_LOOKALIKES {
        for resource in ["index.m3u8", "key.bin", "seg-1.ts"] {
            for query in ["token=alice-token".to_owned(), format!("tg={cap}")] {
                for path in [
                    format!("/live/cha/{dots}/chb/{resource}"),
                    format!("/live/cha/x/{dots}/{dots}/chb/{resource}"),
                ] {
                    let (status, body) = fetch(&proxy, &format!("{path}?{query}")).await;
                    assert!(!body.contains("chb"), "{path}: {status} {body}");
                    assert_eq!(
                        (status, body),
                        (400, error_body("bad_path")),
                        "{path}?{query}"
                    );
                }
            }
        }
    }
    let resolved = servlet.resolved.lock().unwrap().clone();
    assert!(
        resolved.iter().all(|p| !p.contains("/chb/")),
        "the servlet origin served chb: {resolved:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn semicolon_and_plus_reach_the_origin_percent_encoded() {
    let servlet = servlet_origin().await;
    let proxy = start_proxy(&token_config(servlet.origin.addr, "")).await;
    let (status, cha) = fetch(&proxy, "/live/cha/index.m3u8?token=alice-token").await;
    assert_eq!(status, 200, "{cha}");
    let cap = capability_of(&cha, "seg-1.ts");
    for (asked, origin_sees) in [
        ("/live/cha/seg-1.ts;v=1", "/live/cha/seg-1.ts%3Bv=1"),
        ("/live/cha/seg-1.ts%3Bv=1", "/live/cha/seg-1.ts%3Bv=1"),
        ("/live/cha/a+b.ts", "/live/cha/a%2Bb.ts"),
        ("/live/cha/a;b/seg-1.ts", "/live/cha/a%3Bb/seg-1.ts"),
    ] {
        let (status, _) = fetch(&proxy, &format!("{asked}?tg={cap}")).await;
        assert_eq!(status, 404, "{asked}: the servlet origin has no such name");
        let seen = servlet.origin.seen_paths();
        let last = seen.last().unwrap();
        assert_eq!(last.split('?').next(), Some(origin_sees), "{asked}");
    }
}

// ---------------------------------------------------------------------------
// 2. Capabilities bound to the address that was the credential
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn ip_allowed_capability_is_refused_from_another_address() {
    let origin = content_origin().await;
    let toml = loopback_config(origin.addr, "ip")
        .ip_allow(&["127.0.0.1/32"])
        .build();
    let proxy = start_proxy(&toml).await;
    let here = [127, 0, 0, 1];
    let (status, playlist) = get_from(here, &proxy.url("/live/ch1/index.m3u8")).await;
    assert_eq!(status, 200, "{playlist}");
    let cap = capability_of(&playlist, "seg-7.ts");
    let seg = proxy.url(&format!("/live/ch1/seg-7.ts?tg={cap}"));
    let reload = proxy.url(&format!("/live/ch1/index.m3u8?tg={cap}"));
    assert_eq!(get_from(here, &seg).await, (200, "ok".to_owned()));
    assert_eq!(get_from(here, &reload).await.0, 200);
    // A page that read the playlist on the allowed network sends `tg` home.
    for elsewhere in [[127, 0, 0, 2], [127, 0, 1, 1], [127, 9, 9, 9]] {
        for url in [&seg, &reload] {
            assert_eq!(
                get_from(elsewhere, url).await,
                (403, error_body("forbidden")),
                "{url} from {elsewhere:?}"
            );
        }
        assert_eq!(
            get_from(elsewhere, &proxy.url("/live/ch1/index.m3u8")).await,
            (403, error_body("forbidden")),
            "the address itself is not allowed"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bind_ip_prefixes_accept_the_same_network_only() {
    let origin = content_origin().await;
    let same_net = [127, 0, 0, 2];
    let other_net = [127, 0, 1, 1];
    // (bind_ip, accepted from 127.0.0.2, accepted from 127.0.1.1)
    let cases = [
        ("\"/24\"", true, false),
        ("\"/24,/56\"", true, false),
        ("\"/16\"", true, true),
        ("\"/32\"", false, false),
        ("true", false, false),
        ("false", true, true),
    ];
    for (bind, same_ok, other_ok) in cases {
        let toml = token_config(origin.addr, &format!("bind_ip = {bind}"));
        let proxy = start_proxy(&toml).await;
        let entry = proxy.url("/live/ch1/index.m3u8?token=alice-token");
        let (status, playlist) = get_from([127, 0, 0, 1], &entry).await;
        assert_eq!(status, 200, "bind_ip = {bind}: {playlist}");
        let cap = capability_of(&playlist, "seg-7.ts");
        let seg = proxy.url(&format!("/live/ch1/seg-7.ts?tg={cap}"));
        assert_eq!(get_from([127, 0, 0, 1], &seg).await.0, 200, "{bind}");
        for (from, ok) in [(same_net, same_ok), (other_net, other_ok)] {
            let want = if ok { 200 } else { 403 };
            assert_eq!(
                get_from(from, &seg).await.0,
                want,
                "bind_ip = {bind} from {from:?}"
            );
        }
        stop(proxy).await;
    }
}

// ---------------------------------------------------------------------------
// 3. Playlist URIs that a trimming player sends to another host
// ---------------------------------------------------------------------------

/// What may lead a URI: ASCII and Unicode whitespace that JavaScript's
/// `trim` or the WHATWG URL parser removes, and controls players split at.
const LEADS: &[&str] = &[
    " ",
    "  ",
    "\t",
    " \t ",
    "\u{a0}",
    "\u{feff}",
    "\u{3000}",
    "\u{2000}",
    "\u{2001}",
    "\u{2002}",
    "\u{2003}",
    "\u{2004}",
    "\u{2005}",
    "\u{2006}",
    "\u{2007}",
    "\u{2008}",
    "\u{2009}",
    "\u{200a}",
    "\u{1680}",
    "\u{205f}",
    "\u{202f}",
    "\u{2028}",
    "\u{2029}",
    "\u{85}",
    "\u{180e}",
    "\u{200b}",
    "\u{b}",
    "\u{c}",
    "\u{1}",
    "\u{1f}",
    "\u{0}",
    "\r",
    "\u{7f}",
    " \u{a0}\u{feff}",
    "",
];

/// Where the URI points once trimmed: other hosts, spelled the ways the
/// WHATWG parser reads as a host (`\` is `/` for http(s)).
const TARGETS: &[&str] = &[
    "//evil.example/N",
    "https://evil.example/N",
    "http://evil.example/N",
    "\\\\evil.example/N",
    "/\\evil.example/N",
    "\\/evil.example/N",
    "https:evil.example/N",
    "http:/\\evil.example/N",
    "HTTPS://evil.example/N",
];

/// Whole URIs (not led) that are split by players at a lone CR or a
/// Unicode line separator, the second part pointing elsewhere.
const SPLIT_URIS: &[&str] = &[
    "seg.ts?x\r//evil.example/N",
    "seg.ts?x\u{2028}//evil.example/N",
    "seg.ts#\r//evil.example/N",
    "seg.ts?\u{0}//evil.example/N",
];

/// The corpus of URI texts; `N` numbers each one.
fn corpus() -> Vec<String> {
    let mut out = Vec::new();
    for lead in LEADS {
        for target in TARGETS {
            out.push(format!("{lead}{target}"));
        }
    }
    out.extend(SPLIT_URIS.iter().map(|s| (*s).to_owned()));
    out.into_iter()
        .enumerate()
        .map(|(i, s)| s.replace('N', &format!("x{i}.ts")))
        .collect()
}

/// A media playlist with every corpus URI as a segment, an init section,
/// a part, a preload hint and a rendition report, after one ordinary
/// segment; and a tag line split by a lone CR.
fn media_playlist(corpus: &[String]) -> String {
    let mut p = String::from(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n\
         #EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2,\nseg-0.ts\n\
         #EXT-X-MAP:X-NOTE=\"a\r//evil.example/map\",URI=\"init2.mp4\"\n",
    );
    for uri in corpus {
        p.push_str(&format!(
            "#EXT-X-MAP:URI=\"{uri}\"\n#EXTINF:2,\n{uri}\n\
             #EXT-X-PART:DURATION=1,URI=\"{uri}\"\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{uri}\"\n\
             #EXT-X-RENDITION-REPORT:URI=\"{uri}\",LAST-MSN=1\n"
        ));
    }
    p
}

/// A master playlist with every corpus URI as a variant, a rendition, an
/// I-frame playlist, session data and a session key.
fn master_playlist(corpus: &[String]) -> String {
    let mut p = String::from("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv0.m3u8\n");
    for (i, uri) in corpus.iter().enumerate() {
        p.push_str(&format!(
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"n{i}\",URI=\"{uri}\"\n\
             #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=\"{uri}\"\n\
             #EXT-X-SESSION-DATA:DATA-ID=\"d{i}\",URI=\"{uri}\"\n\
             #EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"{uri}\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=1\n{uri}\n"
        ));
    }
    p
}

/// The URIs a player finds in `body`: lines are split wherever hls.js,
/// ExoPlayer, ffmpeg or a Unicode-aware parser ends one; a tag line gives
/// its quoted attribute values, any other line is a URI.
fn player_uris(body: &str) -> Vec<String> {
    let breaks = [
        '\n', '\r', '\0', '\u{b}', '\u{c}', '\u{85}', '\u{2028}', '\u{2029}',
    ];
    let mut out = Vec::new();
    for piece in body.split(breaks) {
        if piece.starts_with('#') {
            let mut quoted = piece.split('"').skip(1).step_by(2);
            out.extend(quoted.by_ref().map(str::to_owned));
        } else {
            out.push(piece.to_owned());
        }
    }
    out
}

/// JavaScript's `String.prototype.trim`, then WHATWG resolution (which
/// itself strips C0 controls and spaces, drops tabs and newlines, and
/// reads `\` as `/`): where a browser player sends the request.
fn player_resolves(base: &Url, uri: &str) -> Option<Url> {
    let trimmed = uri.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if trimmed.is_empty() {
        return None;
    }
    base.join(trimmed).ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn whitespace_uri_corpus_never_carries_a_capability_elsewhere() {
    let corpus = corpus();
    assert!(corpus.len() > 100, "{}", corpus.len());
    let (media, master) = (media_playlist(&corpus), master_playlist(&corpus));
    let origin = start_origin(move |req: Request<Incoming>| {
        let body = if req.uri().path().ends_with("master.m3u8") {
            master.clone()
        } else {
            media.clone()
        };
        async move { Response::new(full(body)) }
    })
    .await;
    let toml = loopback_config(origin.addr, "ip")
        .section("keys", "master = \"hex:000102030405060708090a0b0c0d0e0f\"")
        .route(
            Route::new("enc", "/enc/")
                .channel(1)
                .auth(&["ip"])
                .keys("encrypt = true"),
        )
        .build();
    let proxy = start_proxy(&toml).await;
    let (mut elsewhere, mut own_signed, mut leaks) = (0, 0, Vec::new());
    for path in [
        "/live/ch1/media.m3u8",
        "/live/ch1/master.m3u8",
        "/enc/ch1/media.m3u8",
        "/enc/ch1/master.m3u8",
    ] {
        let url = proxy.url(path);
        let (status, body) = get_from([127, 0, 0, 1], &url).await;
        assert_eq!(status, 200, "{path}: {body}");
        let base = Url::parse(&url).unwrap();
        let uris = player_uris(&body);
        assert!(!uris.is_empty());
        for uri in uris {
            let Some(target) = player_resolves(&base, &uri) else {
                continue;
            };
            let ours = target.scheme() == "http"
                && target.host_str() == Some("127.0.0.1")
                && target.port_or_known_default() == Some(proxy.http.port());
            if ours {
                own_signed += usize::from(uri.contains("tg="));
                continue;
            }
            elsewhere += 1;
            if uri.contains("tg=") {
                leaks.push(format!(
                    "{path}: {uri:?} -> {}",
                    target.host_str().unwrap_or("")
                ));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} URIs send a capability elsewhere, e.g. {:#?}",
        leaks.len(),
        &leaks[..leaks.len().min(12)]
    );
    // The check looked at foreign URIs, and the proxy did sign its own.
    assert!(elsewhere >= corpus.len(), "{elsewhere}");
    assert!(own_signed >= 4, "{own_signed}");
}
