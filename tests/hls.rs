//! End-to-end acceptance tests of the HLS layer (docs/hls.md, SPEC §3.2–3.4):
//! real media made by ffmpeg (tests/common/media.rs), a real file origin
//! (tests/common/static_origin.rs) or the simulated live origin, the proxy
//! with `encrypt = true`, and independent checkers: ffmpeg decoding through
//! the proxy (framemd5 against the origin read directly) and `openssl enc -d`
//! decrypting every segment byte for byte (a wrong IV is invisible to a
//! decode, research/hls-encryption.md §6.1).
//!
//! The entry request is a normal request on an `auth = ["ip"]` route (open
//! to loopback); every child URI comes from the playlist the proxy served,
//! resolved against that playlist's URL, as a player does. A request with a
//! bad `tg` must be refused even though the `ip` method would allow it: that
//! proves capabilities never fall back to the route's methods.
//!
//! ffmpeg and openssl are required: without them the tests fail and say how
//! to install them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup errors

mod common;

use std::collections::BTreeSet;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::media::{
    Frame, Media, SEGMENTS, TOOL_PATIENCE, framemd5, media, openssl_decrypt, padded_len,
};
use common::process::{PATIENCE, Tollgate, client};
use common::static_origin::{Gzip, StaticOrigin};
use common::{ConfigBuilder, Route, TestProxy, start_proxy, start_proxy_on_manual_clock};
use http::{HeaderMap, StatusCode};
use reqwest::Url;
use tokio_util::sync::CancellationToken;
use tollgate::capability::{Claims, MasterKeys, Scope, parse_master};
use tollgate::simorigin::{SimOrigin, SimOriginOptions};

/// Two different `[keys] master` secrets (32 bytes each).
const MASTER_A: &str = "hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const MASTER_B: &str = "hex:f0e1d2c3b4a5968778695a4b3c2d1e0f00112233445566778899aabbccddeeff";

/// The key material of `master`, as every edge derives it.
fn master_keys(master: &str) -> MasterKeys {
    MasterKeys::new(&parse_master(master).unwrap())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Where the tests' viewers connect from.
const LOOPBACK: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// What a CORS test sends as `Origin:`.
const PLAYER_ORIGIN: &str = "https://player.example";

// ---------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------

/// Knobs of [`config`].
struct Opts<'a> {
    /// Route name; its prefix is `/<route>/` and the channel the first
    /// segment after it.
    route: &'a str,
    master: &'a str,
    rotate_every: &'a str,
    encrypt: bool,
    /// More tables (`[sessions]`, `[cache]`), verbatim.
    more: &'a str,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Self {
            route: "vod",
            master: MASTER_A,
            rotate_every: "10m",
            encrypt: true,
            more: "",
        }
    }
}

/// A proxy config: one origin, one route open to loopback viewers.
fn config(origin: SocketAddr, o: &Opts<'_>) -> String {
    let Opts {
        route,
        master,
        rotate_every,
        encrypt,
        more,
    } = o;
    ConfigBuilder::new(origin)
        .server("shutdown_grace = \"5s\"")
        .admin("test-admin-token")
        .ip_allow(&["127.0.0.0/8"])
        .section(
            "keys",
            &format!("master = \"{master}\"\nrotate_every = \"{rotate_every}\""),
        )
        .extra(more)
        .origin_keys("first_byte_timeout = \"5s\"\nidle_timeout = \"5s\"\nconnect_timeout = \"2s\"")
        .route(
            Route::new(route, &format!("/{route}/"))
                .channel(1)
                .auth(&["ip"])
                .keys(&format!("encrypt = {encrypt}")),
        )
        .build()
}

/// The generated media behind a static origin, and a proxy in front of it.
struct Vod {
    media: &'static Media,
    origin: StaticOrigin,
    proxy: TestProxy,
}

impl Vod {
    async fn start(o: &Opts<'_>) -> Self {
        let media = media().await;
        let origin = StaticOrigin::start(&media.root).await;
        // On a manual clock: expiry tests advance it instead of sleeping.
        let proxy = start_proxy_on_manual_clock(&config(origin.addr(), o)).await;
        Self {
            media,
            origin,
            proxy,
        }
    }

    /// The viewer's entry URL for `path` on the proxy.
    fn entry(&self, path: &str) -> Url {
        Url::parse(&self.proxy.url(path)).unwrap()
    }
}

/// The simulated live origin serving on 127.0.0.1:0; stopped when dropped.
struct Live {
    addr: SocketAddr,
    stop: CancellationToken,
}

impl Live {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let origin = SimOrigin::new(SimOriginOptions::default());
        tokio::spawn(origin.serve(listener, stop.clone()));
        Self { addr, stop }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// One answer, body read in full.
#[derive(Debug)]
struct Got {
    url: String,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Got {
    /// Every value of header `name`, joined with ", ".
    fn header(&self, name: &str) -> String {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("<non-ascii>"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The body, gunzipped when the answer says gzip, as text.
    fn text(&self) -> String {
        let body = if self.header("content-encoding").contains("gzip") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&self.body[..])
                .read_to_end(&mut out)
                .unwrap_or_else(|e| panic!("{}: bad gzip body: {e}", self.url));
            out
        } else {
            self.body.to_vec()
        };
        String::from_utf8(body).unwrap_or_else(|e| panic!("{}: body not UTF-8: {e}", self.url))
    }

    fn expect_ok(self) -> Self {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "GET {} answered {}: {}",
            self.url,
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    /// 403 with exactly `{"error":"forbidden"}`.
    fn expect_error(&self, status: StatusCode, code: &str, why: &str) {
        assert_eq!(
            self.status,
            status,
            "{why}: GET {} answered {} {}",
            self.url,
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        let body: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{why}: error body of {} is not JSON ({e}): {:?}",
                self.url,
                String::from_utf8_lossy(&self.body)
            )
        });
        assert_eq!(
            body,
            serde_json::json!({ "error": code }),
            "{why}: {}",
            self.url
        );
    }

    fn expect_forbidden(&self, why: &str) {
        self.expect_error(StatusCode::FORBIDDEN, "forbidden", why);
    }
}

async fn get_with(url: &str, headers: &[(&str, &str)]) -> Got {
    let mut req = client().get(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = resp
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: body: {e}"));
    Got {
        url: url.to_owned(),
        status,
        headers,
        body,
    }
}

async fn get(url: &str) -> Got {
    get_with(url, &[]).await
}

// ---------------------------------------------------------------------------
// Playlists, parsed by hand
// ---------------------------------------------------------------------------

/// The attribute list of a tag line (`A=B,C="d,e"`), quotes removed.
fn attributes(list: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = list;
    while !rest.is_empty() {
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').expect("closing quote");
            (&quoted[..end], quoted[end + 1..].trim_start_matches(','))
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v, n),
                None => (after, ""),
            }
        };
        out.push((name.trim().to_owned(), value.to_owned()));
        rest = next;
    }
    out
}

fn attribute(line: &str, name: &str) -> Option<String> {
    let list = line.split_once(':')?.1;
    attributes(list)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

/// A key in effect: its resolved URI and explicit IV, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    url: Url,
    iv: Option<u128>,
}

/// One media segment of a playlist.
#[derive(Debug, Clone)]
struct Segment {
    url: Url,
    msn: u64,
    key: Option<Key>,
    /// `EXT-X-BYTERANGE` as (offset, length).
    range: Option<(u64, u64)>,
}

/// A media playlist.
#[derive(Debug)]
struct MediaPlaylist {
    text: String,
    segments: Vec<Segment>,
    /// Resolved `EXT-X-MAP` URIs and whether a key was in effect there.
    maps: Vec<(Url, bool)>,
}

fn parse_media(base: &Url, text: &str) -> MediaPlaylist {
    assert!(
        text.trim_start_matches('\u{feff}').starts_with("#EXTM3U"),
        "not a playlist ({base}):\n{text}"
    );
    let mut sequence = 0u64;
    let mut key: Option<Key> = None;
    let mut range: Option<(u64, u64)> = None;
    let mut next_offset = 0u64;
    let (mut segments, mut maps) = (Vec::new(), Vec::new());
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            sequence = v.trim().parse().unwrap();
        } else if line.starts_with("#EXT-X-KEY:") {
            let method = attribute(line, "METHOD").expect("KEY without METHOD");
            key = if method == "NONE" {
                None
            } else {
                assert_eq!(method, "AES-128", "unexpected key method: {line}");
                let uri = attribute(line, "URI").expect("AES-128 key without URI");
                let iv = attribute(line, "IV").map(|iv| {
                    let hex = iv.trim_start_matches("0x").trim_start_matches("0X");
                    u128::from_str_radix(hex, 16).unwrap()
                });
                Some(Key {
                    url: base.join(&uri).unwrap(),
                    iv,
                })
            };
        } else if line.starts_with("#EXT-X-MAP:") {
            let uri = attribute(line, "URI").expect("MAP without URI");
            maps.push((base.join(&uri).unwrap(), key.is_some()));
        } else if let Some(v) = line.strip_prefix("#EXT-X-BYTERANGE:") {
            let (len, off) = match v.split_once('@') {
                Some((len, off)) => (len.parse().unwrap(), off.parse().unwrap()),
                None => (v.parse().unwrap(), next_offset),
            };
            next_offset = off + len;
            range = Some((off, len));
        } else if !line.starts_with('#') {
            segments.push(Segment {
                url: base.join(line).unwrap(),
                msn: sequence + segments.len() as u64,
                key: key.clone(),
                range: range.take(),
            });
        }
    }
    MediaPlaylist {
        text: text.to_owned(),
        segments,
        maps,
    }
}

fn is_master(text: &str) -> bool {
    text.contains("#EXT-X-STREAM-INF")
}

/// The variant URIs of a master playlist, resolved.
fn variants(base: &Url, text: &str) -> Vec<Url> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| base.join(l).unwrap())
        .collect()
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

/// `url` with parameter `name` set to `value`, or removed when `None`;
/// other parameters keep their order.
fn with_param(url: &Url, name: &str, value: Option<&str>) -> Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    let mut out = url.clone();
    out.set_query(None);
    {
        let mut q = out.query_pairs_mut();
        for (n, v) in &pairs {
            if n == name {
                if let Some(value) = value {
                    q.append_pair(n, value);
                }
            } else {
                q.append_pair(n, v);
            }
        }
    }
    if out.query() == Some("") {
        out.set_query(None);
    }
    out
}

/// `s` with its middle character changed to another base64url character.
fn flip_one_char(s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    assert!(
        chars.len() > 2,
        "capability too short to tamper with: {s:?}"
    );
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

/// The `tg` of a URL from a rewritten playlist; fails when it has none.
fn tg(url: &Url) -> String {
    param(url, "tg").unwrap_or_else(|| panic!("no tg parameter on {url}"))
}

/// Fetch a media playlist through the proxy and parse it.
async fn proxied_media(url: &Url) -> (Got, MediaPlaylist) {
    let got = get(url.as_str()).await.expect_ok();
    let text = got.text();
    assert!(!is_master(&text), "{url} is a master playlist:\n{text}");
    let playlist = parse_media(url, &text);
    (got, playlist)
}

/// The bytes the origin holds for a segment: the file at the same path
/// (the proxy maps paths 1:1), or its byte range.
fn origin_bytes(media: &Media, origin_segment: &Segment) -> Vec<u8> {
    let all = media.read(origin_segment.url.path());
    match origin_segment.range {
        Some((off, len)) => {
            all[usize::try_from(off).unwrap()..usize::try_from(off + len).unwrap()].to_vec()
        }
        None => all,
    }
}

// ---------------------------------------------------------------------------
// Checks shared by several tests
// ---------------------------------------------------------------------------

/// Fetch `key` through the proxy: exactly 16 bytes,
/// `application/octet-stream`, `Cache-Control` with `no-store`.
async fn fetch_key(key: &Url) -> Vec<u8> {
    let got = get(key.as_str()).await.expect_ok();
    assert_eq!(
        got.body.len(),
        16,
        "key {key} is not 16 bytes: {:?}",
        got.body
    );
    assert_eq!(
        got.header("content-type"),
        "application/octet-stream",
        "key {key}"
    );
    assert!(
        got.header("cache-control").contains("no-store"),
        "key {key} is cacheable: Cache-Control {:?}",
        got.header("cache-control")
    );
    got.body.to_vec()
}

/// Fetch `segment` through the proxy and check it against `plain`, the
/// origin's bytes: `Content-Length` = 16·(⌊n/16⌋+1), and `openssl enc -d`
/// with the key in effect and IV = MSN (or the playlist's IV) gives `plain`
/// back exactly. Returns the key bytes.
async fn check_encrypted_segment(segment: &Segment, plain: &[u8]) -> Vec<u8> {
    let key = segment
        .key
        .as_ref()
        .unwrap_or_else(|| panic!("no AES-128 key in effect for {}", segment.url));
    let key_bytes = fetch_key(&key.url).await;
    let got = get(segment.url.as_str()).await.expect_ok();
    let want = padded_len(plain.len());
    assert_eq!(
        got.header("content-length"),
        want.to_string(),
        "Content-Length of {} for an origin body of {} bytes",
        segment.url,
        plain.len()
    );
    assert_eq!(got.body.len(), want, "body length of {}", segment.url);
    assert_ne!(
        &got.body[..plain.len()],
        plain,
        "{} came back in the clear",
        segment.url
    );
    let iv = key.iv.unwrap_or(u128::from(segment.msn));
    let decrypted = openssl_decrypt(&key_bytes, iv, &got.body).await;
    assert!(
        decrypted == plain,
        "{} (msn {}) decrypted with {} and IV {iv:#x} differs from the origin's bytes \
         ({} vs {} bytes, first difference at {:?})",
        segment.url,
        segment.msn,
        key.url,
        decrypted.len(),
        plain.len(),
        decrypted.iter().zip(plain).position(|(a, b)| a != b)
    );
    key_bytes
}

/// The playlist at `entry` (a master: each of its variants) as the proxy
/// serves it really is encrypted: `METHOD=AES-128` in every media playlist
/// (none in a master), and its first segment's bytes differ from the
/// origin's bytes at the same path (fetched from `origin_base`).
async fn assert_really_encrypted(entry: &Url, origin_base: &str) {
    let got = get(entry.as_str()).await.expect_ok();
    let text = got.text();
    let media_urls = if is_master(&text) {
        assert!(
            !text.contains("#EXT-X-KEY"),
            "a master playlist got key lines:\n{text}"
        );
        variants(entry, &text)
    } else {
        vec![entry.clone()]
    };
    assert!(!media_urls.is_empty(), "no variant in\n{text}");
    for url in media_urls {
        let (_, playlist) = proxied_media(&url).await;
        assert!(
            playlist.text.contains("#EXT-X-KEY:METHOD=AES-128"),
            "{url} as served has no METHOD=AES-128:\n{}",
            playlist.text
        );
        let first = playlist.segments.first().expect("a segment");
        let proxied = get(first.url.as_str()).await.expect_ok();
        let direct = get(&format!("{origin_base}{}", first.url.path()))
            .await
            .expect_ok();
        assert_ne!(
            proxied.body, direct.body,
            "{} is served exactly as the origin has it",
            first.url
        );
        assert_eq!(
            proxied.body.len(),
            padded_len(direct.body.len()),
            "{} is not one AES-CBC encryption of the origin's body",
            first.url
        );
    }
}

/// The frames two decodes of the same content must share.
fn frame_keys(frames: &[Frame]) -> Vec<(String, String, String)> {
    frames.iter().map(Frame::key).collect()
}

fn assert_same_frames(what: &str, direct: &[Frame], proxied: &[Frame]) {
    let (d, p) = (frame_keys(direct), frame_keys(proxied));
    if d != p {
        let first = d.iter().zip(&p).position(|(a, b)| a != b);
        panic!(
            "{what}: ffmpeg decoded different frames through the proxy: {} frames direct, {} \
             through the proxy, first difference at frame {first:?}: direct {:?}, proxied {:?}",
            d.len(),
            p.len(),
            first.and_then(|i| d.get(i)),
            first.and_then(|i| p.get(i)),
        );
    }
}

/// Decode `path` through the proxy and from the origin directly with the
/// same ffmpeg arguments; the frames must be the same.
async fn assert_plays_like_origin(v: &Vod, path: &str, args: &[&str]) -> usize {
    let proxied_url = v.entry(path).to_string();
    let direct_url = v.origin.url(path);
    let (proxied, direct) = tokio::join!(
        framemd5(&[], &proxied_url, args),
        framemd5(&[], &direct_url, args)
    );
    assert_same_frames(&format!("{path} {args:?}"), &direct, &proxied);
    proxied.len()
}

// ---------------------------------------------------------------------------
// Fixtures self-test
// ---------------------------------------------------------------------------

/// The media and the static origin the other tests stand on.
#[tokio::test(flavor = "multi_thread")]
async fn fixtures_media_and_static_origin_work() {
    let media = media().await;
    let origin = StaticOrigin::start(&media.root).await;
    let base = Url::parse(&origin.url("/")).unwrap();

    // (a) TS VOD: 4 segments from MSN 0.
    let url = base.join("vod/ts/index.m3u8?x=1").unwrap();
    let got = get(url.as_str()).await.expect_ok();
    assert_eq!(got.header("content-type"), "application/vnd.apple.mpegurl");
    assert_eq!(got.header("content-length"), got.body.len().to_string());
    let ts = parse_media(&url, &got.text());
    assert!(ts.text.contains("#EXT-X-MEDIA-SEQUENCE:0"), "{}", ts.text);
    assert!(ts.text.contains("#EXT-X-ENDLIST"), "{}", ts.text);
    assert_eq!(ts.segments.len(), SEGMENTS);
    let seg = get(ts.segments[1].url.as_str()).await.expect_ok();
    assert_eq!(seg.header("content-type"), "video/mp2t");
    assert_eq!(seg.body.to_vec(), media.read("/vod/ts/seg1.ts"));
    assert_eq!(ts.segments[1].msn, 1);

    // (b) fMP4: init + 4 segments.
    let url = base.join("vod/fmp4/index.m3u8").unwrap();
    let fmp4 = parse_media(&url, &get(url.as_str()).await.expect_ok().text());
    assert_eq!(fmp4.segments.len(), SEGMENTS);
    assert_eq!(fmp4.maps.len(), 1);
    let init = get(fmp4.maps[0].0.as_str()).await.expect_ok();
    assert_eq!(init.header("content-type"), "video/mp4");
    let m4s = get(fmp4.segments[0].url.as_str()).await.expect_ok();
    assert_eq!(m4s.header("content-type"), "video/mp4");

    // (c) master with two variants, each a VOD media playlist.
    let url = base.join("vod/master/index.m3u8").unwrap();
    let text = get(url.as_str()).await.expect_ok().text();
    let vs = variants(&url, &text);
    assert_eq!(vs.len(), 2, "{text}");
    assert!(text.contains("RESOLUTION=320x180") && text.contains("RESOLUTION=160x90"));
    for v in &vs {
        let p = parse_media(v, &get(v.as_str()).await.expect_ok().text());
        assert_eq!(p.segments.len(), SEGMENTS, "{v}");
    }

    // (d) single file with byte ranges covering the file.
    let url = base.join("vod/single/index.m3u8").unwrap();
    let single = parse_media(&url, &get(url.as_str()).await.expect_ok().text());
    assert_eq!(single.segments.len(), SEGMENTS);
    let file = media.read("/vod/single/index.ts");
    let covered: u64 = single.segments.iter().map(|s| s.range.unwrap().1).sum();
    assert_eq!(covered, file.len() as u64);

    // Range: one range is 206 with exactly those bytes; past the end is 416.
    let (off, len) = single.segments[2].range.unwrap();
    let range = format!("bytes={off}-{}", off + len - 1);
    let part = get_with(single.segments[2].url.as_str(), &[("range", &range)]).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.body.to_vec(), origin_bytes(media, &single.segments[2]));
    assert_eq!(
        part.header("content-range"),
        format!("bytes {off}-{}/{}", off + len - 1, file.len())
    );
    let suffix = get_with(single.segments[2].url.as_str(), &[("range", "bytes=-10")]).await;
    assert_eq!(suffix.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(suffix.body.to_vec(), file[file.len() - 10..].to_vec());
    let past = format!("bytes={}-", file.len());
    let past = get_with(single.segments[2].url.as_str(), &[("range", &past)]).await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(get(&origin.url("/vod/../etc/passwd")).await.status, 404);

    // Counters and recorded queries.
    assert_eq!(origin.count("/vod/ts/index.m3u8"), 1);
    assert_eq!(origin.count("/vod/single/index.ts"), 3);
    assert!(
        origin
            .requests()
            .contains(&"/vod/ts/index.m3u8?x=1".to_owned())
    );

    // Gzip: only when accepted (IfAccepted), always (Always).
    origin.set_gzip(Gzip::IfAccepted);
    let plain = get(origin.url("/vod/ts/index.m3u8").as_str()).await;
    assert_eq!(plain.header("content-encoding"), "");
    let gz = get_with(
        &origin.url("/vod/ts/index.m3u8"),
        &[("accept-encoding", "gzip, deflate")],
    )
    .await;
    assert_eq!(gz.header("content-encoding"), "gzip");
    assert_eq!(gz.text(), ts.text);
    let seg = get_with(
        &origin.url("/vod/ts/seg0.ts"),
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(
        seg.header("content-encoding"),
        "",
        "segments are never gzipped"
    );
    origin.set_gzip(Gzip::Always);
    assert_eq!(
        get(&origin.url("/vod/ts/index.m3u8"))
            .await
            .header("content-encoding"),
        "gzip"
    );
    assert_eq!(origin.gzipped(), 2);

    // Delay: concurrent requests overlap (both wait, neither waits twice).
    origin.set_delay(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let (url2, url3) = (origin.url("/vod/ts/seg2.ts"), origin.url("/vod/ts/seg3.ts"));
    let (a, b) = tokio::join!(get(&url2), get(&url3));
    let took = started.elapsed();
    assert_eq!((a.status, b.status), (StatusCode::OK, StatusCode::OK));
    assert!(took >= Duration::from_millis(300), "{took:?}");

    // The checkers: ffmpeg decodes the origin, openssl decrypts what it encrypts.
    let frames = framemd5(&[], &origin.url("/vod/ts/index.m3u8"), &["-map", "0"]).await;
    let video = frames.iter().filter(|f| f.stream == "0").count();
    assert_eq!(video, 200, "8 s at 25 fps");
    let key = [7u8; 16];
    let plain = media.read("/vod/ts/seg0.ts");
    let cipher = openssl_encrypt(&key, 3, &plain).await;
    assert_eq!(cipher.len(), padded_len(plain.len()));
    assert_eq!(openssl_decrypt(&key, 3, &cipher).await, plain);
}

/// `openssl enc -aes-128-cbc` (for the self-test of the decrypt helper).
async fn openssl_encrypt(key: &[u8], iv: u128, plain: &[u8]) -> Vec<u8> {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new("openssl")
        .args([
            "enc",
            "-aes-128-cbc",
            "-K",
            &hex::encode(key),
            "-iv",
            &format!("{iv:032x}"),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = plain.to_vec();
    let writer = tokio::spawn(async move {
        stdin.write_all(&input).await.unwrap();
    });
    let out = tokio::time::timeout(TOOL_PATIENCE, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    assert!(out.status.success());
    out.stdout
}

// ---------------------------------------------------------------------------
// A1: ffmpeg plays through the proxy with encryption on
// ---------------------------------------------------------------------------

/// A1 (i): the live TS stream of the simulated origin. Live windows move,
/// so the check is on video frames: the frames decoded through the proxy
/// are a contiguous run of the origin's 10 s loop (5 segments, each opening
/// with an IDR frame) decoded directly. Plus one live segment decrypted by
/// openssl with IV = its MSN, byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn a1_live_ts_plays_through_the_proxy_encrypted() {
    common::media::require_ffmpeg();
    let live = Live::start().await;
    let proxy = start_proxy(&config(
        live.addr,
        &Opts {
            route: "live",
            ..Opts::default()
        },
    ))
    .await;
    let entry = Url::parse(&proxy.url("/live/ch1/index.m3u8")).unwrap();
    let direct = live.url("/live/ch1/index.m3u8");

    assert_really_encrypted(&entry, &live.url("")).await;

    // A whole loop (5 × 50 frames) read directly; 100 frames through the proxy.
    let video = |frames: &str| -> Vec<String> {
        [
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-frames:v",
            frames,
        ]
        .map(String::from)
        .to_vec()
    };
    let (direct_args, proxied_args) = (video("250"), video("100"));
    let direct_args: Vec<&str> = direct_args.iter().map(String::as_str).collect();
    let proxied_args: Vec<&str> = proxied_args.iter().map(String::as_str).collect();
    let from_start = ["-live_start_index", "0"];
    let (reference, proxied) = tokio::join!(
        framemd5(&from_start, &direct, &direct_args),
        framemd5(&from_start, entry.as_str(), &proxied_args)
    );
    assert_eq!(reference.len(), 250, "one loop of the sample read directly");
    assert_eq!(proxied.len(), 100, "frames decoded through the proxy");
    let cycle = frame_keys(&reference);
    let run = frame_keys(&proxied);
    let twice: Vec<_> = cycle.iter().chain(&cycle).cloned().collect();
    assert!(
        twice.windows(run.len()).any(|w| w == run.as_slice()),
        "the frames ffmpeg decoded through the proxy are not a run of the origin's loop; \
         first proxied frame {:?}",
        run.first()
    );

    // Byte-level: the newest segment of the live window, IV = its MSN.
    let master = get(entry.as_str()).await.expect_ok().text();
    let media_url = variants(&entry, &master).remove(0);
    let (_, playlist) = proxied_media(&media_url).await;
    let last = playlist.segments.last().expect("a live segment").clone();
    let plain = get(&live.url(last.url.path())).await.expect_ok().body;
    check_encrypted_segment(&last, &plain).await;
}

/// A1 (ii): the TS VOD decodes through the proxy to the origin's frames.
#[tokio::test(flavor = "multi_thread")]
async fn a1_ts_vod_plays_through_the_proxy_encrypted() {
    let v = Vod::start(&Opts::default()).await;
    let path = "/vod/ts/index.m3u8";
    assert_really_encrypted(&v.entry(path), &v.origin.url("")).await;
    let frames = assert_plays_like_origin(&v, path, &["-map", "0"]).await;
    assert!(frames >= 200, "{frames} frames");
}

/// A1 (iii): the fMP4 VOD; the init section stays clear (served as the
/// origin has it, behind `METHOD=NONE`), the media segments are encrypted.
#[tokio::test(flavor = "multi_thread")]
async fn a1_fmp4_vod_plays_through_the_proxy_encrypted() {
    let v = Vod::start(&Opts::default()).await;
    let path = "/vod/fmp4/index.m3u8";
    assert_really_encrypted(&v.entry(path), &v.origin.url("")).await;
    let (_, playlist) = proxied_media(&v.entry(path)).await;
    assert_eq!(playlist.maps.len(), 1, "{}", playlist.text);
    let (init, key_in_effect) = &playlist.maps[0];
    assert!(
        !key_in_effect,
        "EXT-X-MAP with an AES-128 key in effect (init sections stay clear):\n{}",
        playlist.text
    );
    let got = get(init.as_str()).await.expect_ok();
    assert_eq!(
        got.body.to_vec(),
        v.media.read("/vod/fmp4/init.mp4"),
        "the init section is not served clear"
    );
    let frames = assert_plays_like_origin(&v, path, &["-map", "0"]).await;
    assert!(frames >= 200, "{frames} frames");
}

/// A1 (iv): the two-variant master: each variant decodes to the origin's
/// frames (`-map 0:p:N` picks the variant's program).
#[tokio::test(flavor = "multi_thread")]
async fn a1_master_two_variants_play_through_the_proxy_encrypted() {
    let v = Vod::start(&Opts::default()).await;
    let path = "/vod/master/index.m3u8";
    assert_really_encrypted(&v.entry(path), &v.origin.url("")).await;
    for program in ["0:p:0", "0:p:1"] {
        let frames = assert_plays_like_origin(&v, path, &["-map", program]).await;
        assert!(frames >= 200, "{program}: {frames} frames");
    }
}

// ---------------------------------------------------------------------------
// A2: byte-exact decryption, key rotation
// ---------------------------------------------------------------------------

/// Check every segment of the media playlist at `path` through the proxy
/// against the origin's bytes (openssl, IV = MSN); returns each segment's
/// (MSN, key URL, key bytes).
async fn check_every_segment(v: &Vod, path: &str) -> Vec<(u64, Url, Vec<u8>)> {
    let direct_url = Url::parse(&v.origin.url(path)).unwrap();
    let direct = parse_media(
        &direct_url,
        &get(direct_url.as_str()).await.expect_ok().text(),
    );
    let (got, proxied) = proxied_media(&v.entry(path)).await;
    assert!(
        got.header("cache-control").contains("no-store"),
        "rewritten playlist cacheable: {:?}",
        got.header("cache-control")
    );
    assert_eq!(
        proxied.segments.len(),
        direct.segments.len(),
        "segment count changed:\n{}",
        proxied.text
    );
    let mut out = Vec::new();
    for (p, d) in proxied.segments.iter().zip(&direct.segments) {
        assert_eq!(p.msn, d.msn, "MSN of {}", p.url);
        let plain = origin_bytes(v.media, d);
        let key = check_encrypted_segment(p, &plain).await;
        out.push((p.msn, p.key.clone().unwrap().url, key));
    }
    out
}

/// A2: with `rotate_every = "4s"` and 2 s segments, two segments per key
/// period: every segment decrypts byte for byte with the key URI in effect
/// for it and IV = MSN, and at least two key URIs (and keys) are used.
#[tokio::test(flavor = "multi_thread")]
async fn a2_every_segment_decrypts_byte_exact_across_key_rotation() {
    let v = Vod::start(&Opts {
        rotate_every: "4s",
        ..Opts::default()
    })
    .await;
    let keys = check_every_segment(&v, "/vod/ts/index.m3u8").await;
    let uris: BTreeSet<String> = keys.iter().map(|(_, u, _)| u.path().to_owned()).collect();
    assert!(uris.len() >= 2, "one key for the whole VOD: {uris:?}");
    let values: BTreeSet<Vec<u8>> = keys.iter().map(|(_, _, k)| k.clone()).collect();
    assert_eq!(
        values.len(),
        uris.len(),
        "distinct key URIs, same key bytes"
    );
    let derived = master_keys(MASTER_A);
    let mut incs = BTreeSet::new();
    for (msn, url, key) in &keys {
        // /.tollgate/key/<route>/<channel>/<inc>/<period>.key
        let parts: Vec<&str> = url.path().split('/').collect();
        assert_eq!(
            &parts[..4],
            &["", ".tollgate", "key", "vod"],
            "key URI {url}"
        );
        assert_eq!(parts[4], "ts", "channel in key URI {url}");
        assert_eq!(
            parts[6],
            format!("{}.key", msn / 2),
            "period of MSN {msn} (2 segments per 4 s period) in {url}"
        );
        assert!(param(url, "tg").is_some(), "key URI without tg: {url}");
        let inc: u64 = parts[5].parse().unwrap();
        incs.insert(inc);
        assert_eq!(
            key[..],
            derived.content_key("vod", "ts", inc, msn / 2)[..],
            "key served for {url} is not HMAC(K_cont, route, channel, inc, period)"
        );
    }
    assert_eq!(
        incs.len(),
        1,
        "one rendition, several incarnations: {incs:?}"
    );
}

/// A2 on a `single_file` playlist: with encryption each byte range becomes
/// a resource of its own (no `EXT-X-BYTERANGE` left), decrypting to exactly
/// that range of the origin file; ffmpeg decodes it like the origin.
#[tokio::test(flavor = "multi_thread")]
async fn a2_byte_ranges_become_encrypted_resources() {
    let v = Vod::start(&Opts::default()).await;
    let path = "/vod/single/index.m3u8";
    let (_, proxied) = proxied_media(&v.entry(path)).await;
    assert!(
        !proxied.text.contains("EXT-X-BYTERANGE"),
        "byte ranges left in an encrypted playlist:\n{}",
        proxied.text
    );
    check_every_segment(&v, path).await;
    assert_plays_like_origin(&v, path, &["-map", "0"]).await;
}

// ---------------------------------------------------------------------------
// A4: bad capabilities, cross-process
// ---------------------------------------------------------------------------

/// A4: a tampered `tg`, a `tg` of another channel, one expired a minute ago
/// and one of another master (both minted with `tollgate::capability`) are
/// 403 `forbidden` on a segment and on a key, although the route's `ip`
/// method would let the request in; a segment without its `tgs` (or with a
/// tampered one) is 403 on an encrypted route.
#[tokio::test(flavor = "multi_thread")]
async fn a4_tampered_and_other_channel_capabilities_are_forbidden() {
    let v = Vod::start(&Opts::default()).await;
    let (_, ts) = proxied_media(&v.entry("/vod/ts/index.m3u8")).await;
    let (_, other) = proxied_media(&v.entry("/vod/fmp4/index.m3u8")).await;
    let seg = ts.segments[0].clone();
    let key = seg.key.clone().expect("a key").url;

    // Controls: the untouched URLs work.
    get(seg.url.as_str()).await.expect_ok();
    fetch_key(&key).await;

    for url in [&seg.url, &key] {
        let tampered = with_param(url, "tg", Some(&flip_one_char(&tg(url))));
        get(tampered.as_str())
            .await
            .expect_forbidden("tampered capability");
        let foreign = with_param(url, "tg", Some(&tg(&other.segments[0].url)));
        get(foreign.as_str())
            .await
            .expect_forbidden("capability of another channel");
    }
    let no_tgs = with_param(&seg.url, "tgs", None);
    get(no_tgs.as_str())
        .await
        .expect_forbidden("segment without tgs on an encrypted route");

    // Minted here with the same master: the session's own claims verify;
    // re-minted with a past expiry they are refused, with a future one not.
    let scope = Scope {
        route: "vod",
        channel: "ts",
        client_ip: LOOPBACK,
    };
    let now = unix_now();
    let claims = master_keys(MASTER_A)
        .verify(&tg(&seg.url), &scope, now)
        .expect("the proxy's capability verifies with its master");
    assert_eq!(
        claims.sid,
        master_keys(MASTER_A).session_id(None, "vod", "ts", LOOPBACK),
        "session id is not the derived one (docs/hls.md §2)"
    );
    let mint = |master: &str, expires: u64| {
        master_keys(master).mint(
            &Claims {
                expires,
                ..claims.clone()
            },
            &scope,
        )
    };
    for url in [&seg.url, &key] {
        let fresh = with_param(url, "tg", Some(&mint(MASTER_A, now + 600)));
        get(fresh.as_str()).await.expect_ok();
        let expired = with_param(url, "tg", Some(&mint(MASTER_A, now - 60)));
        get(expired.as_str())
            .await
            .expect_forbidden("capability expired a minute ago");
        let other_master = with_param(url, "tg", Some(&mint(MASTER_B, now + 600)));
        get(other_master.as_str())
            .await
            .expect_forbidden("capability minted with another master");
    }

    let tampered_tgs = with_param(
        &seg.url,
        "tgs",
        Some(&flip_one_char(&param(&seg.url, "tgs").expect("tgs"))),
    );
    get(tampered_tgs.as_str())
        .await
        .expect_forbidden("tampered tgs");
}

/// A4: an expired capability (`capability_ttl = "3s"`, used 5 s after the
/// playlist was served, on the proxy's clock) is 403 `forbidden` on a
/// segment and a key.
#[tokio::test(flavor = "multi_thread")]
async fn a4_expired_capability_is_forbidden() {
    let v = Vod::start(&Opts {
        more: "[sessions]\ncapability_ttl = \"3s\"\n",
        ..Opts::default()
    })
    .await;
    let (_, ts) = proxied_media(&v.entry("/vod/ts/index.m3u8")).await;
    let seg = ts.segments[0].clone();
    let key = seg.key.clone().expect("a key").url;
    // Fresh: allowed (so the 403 below is the expiry's doing).
    get(seg.url.as_str()).await.expect_ok();
    fetch_key(&key).await;
    // `expires` has whole-second resolution: 5 s is past a 3 s TTL.
    v.proxy.control.clock.advance(Duration::from_secs(5));
    get(seg.url.as_str())
        .await
        .expect_forbidden("expired capability on a segment");
    get(key.as_str())
        .await
        .expect_forbidden("expired capability on a key");
}

/// A4 across processes: two `tollgate` processes with the same master in
/// front of one origin; URLs minted by the first work on the second
/// (segment decrypts with the second's key); a third with another master
/// refuses them.
#[tokio::test(flavor = "multi_thread")]
async fn a4_capabilities_work_across_processes_with_the_same_master() {
    let media = media().await;
    let origin = StaticOrigin::start(&media.root).await;
    let same = config(origin.addr(), &Opts::default());
    let different = config(
        origin.addr(),
        &Opts {
            master: MASTER_B,
            ..Opts::default()
        },
    );
    let (first, second, third) = tokio::join!(
        Tollgate::start(same.as_str()),
        Tollgate::start(same.as_str()),
        Tollgate::start(different.as_str())
    );
    let entry = Url::parse(&first.url("/vod/ts/index.m3u8")).unwrap();
    let (_, playlist) = proxied_media(&entry).await;
    let on = |edge: &Tollgate, url: &Url| -> Url {
        let mut moved = url.clone();
        moved.set_port(Some(edge.http.port())).unwrap();
        moved
    };
    for seg in &playlist.segments[..2] {
        let key = seg.key.clone().expect("a key");
        let moved = Segment {
            url: on(&second, &seg.url),
            key: Some(Key {
                url: on(&second, &key.url),
                iv: key.iv,
            }),
            ..seg.clone()
        };
        let plain = media.read(seg.url.path());
        check_encrypted_segment(&moved, &plain).await;

        get(on(&third, &seg.url).as_str())
            .await
            .expect_forbidden("segment URL minted with another master");
        get(on(&third, &key.url).as_str())
            .await
            .expect_forbidden("key URL minted with another master");
    }
    drop((first, second, third));
}

// ---------------------------------------------------------------------------
// A6: one origin fetch for many viewers
// ---------------------------------------------------------------------------

/// A6: 50 concurrent viewers (one connection each) ask for one uncached
/// encrypted segment while the origin takes 300 ms to answer: the origin
/// sees exactly one request for it and all 50 bodies are identical (and
/// decrypt to the origin's bytes).
#[tokio::test(flavor = "multi_thread")]
async fn a6_concurrent_viewers_cause_one_origin_fetch() {
    const VIEWERS: usize = 50;
    let v = Vod::start(&Opts::default()).await;
    let (_, playlist) = proxied_media(&v.entry("/vod/ts/index.m3u8")).await;
    let seg = playlist.segments[2].clone();
    let origin_path = seg.url.path().to_owned();
    assert_eq!(v.origin.count(&origin_path), 0, "segment fetched already");
    v.origin.set_delay(Duration::from_millis(300));

    let barrier = Arc::new(tokio::sync::Barrier::new(VIEWERS));
    let mut tasks = Vec::new();
    for _ in 0..VIEWERS {
        let (barrier, url) = (barrier.clone(), seg.url.to_string());
        tasks.push(tokio::spawn(async move {
            // Its own client: its own connection.
            let client = reqwest::Client::builder()
                .http1_only()
                .no_proxy()
                .pool_max_idle_per_host(0)
                .timeout(PATIENCE)
                .build()
                .unwrap();
            barrier.wait().await;
            let resp = client.get(&url).send().await.unwrap();
            let status = resp.status();
            (status, resp.bytes().await.unwrap())
        }));
    }
    let mut bodies = Vec::new();
    for task in tasks {
        let (status, body) = tokio::time::timeout(PATIENCE * 2, task)
            .await
            .expect("a viewer hung")
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        bodies.push(body);
    }
    assert_eq!(
        v.origin.count(&origin_path),
        1,
        "origin requests for {origin_path} from {VIEWERS} concurrent viewers"
    );
    let distinct: BTreeSet<&[u8]> = bodies.iter().map(|b| &b[..]).collect();
    assert_eq!(distinct.len(), 1, "viewers got different bodies");
    // The viewers really overlapped the one origin fetch (joined it rather
    // than hit a finished entry), so this exercised the single flight.
    let metrics = get(&v.proxy.admin_url("/metrics")).await.expect_ok().text();
    let joined: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("tollgate_segment_cache_lookups") && l.contains("\"joined\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        joined >= 1.0,
        "no viewer joined the in-flight fetch; segment cache metrics:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("segment_cache"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    v.origin.set_delay(Duration::ZERO);
    let plain = v.media.read(&origin_path);
    let key = fetch_key(&seg.key.clone().unwrap().url).await;
    let decrypted = openssl_decrypt(&key, u128::from(seg.msn), &bodies[0]).await;
    assert!(decrypted == plain, "the shared body does not decrypt");
}

// ---------------------------------------------------------------------------
// Headers, CORS, origin side
// ---------------------------------------------------------------------------

/// Rewritten playlists (master and media) are `Cache-Control: private,
/// no-store`, and every child URI carries a capability.
#[tokio::test(flavor = "multi_thread")]
async fn rewritten_playlists_are_private_no_store() {
    let v = Vod::start(&Opts::default()).await;
    let entry = v.entry("/vod/master/index.m3u8");
    let master = get(entry.as_str()).await.expect_ok();
    let mut checked = vec![master.header("cache-control")];
    let variant_urls = variants(&entry, &master.text());
    assert_eq!(variant_urls.len(), 2);
    for url in &variant_urls {
        tg(url);
        let (got, playlist) = proxied_media(url).await;
        checked.push(got.header("cache-control"));
        for seg in &playlist.segments {
            tg(&seg.url);
            assert!(param(&seg.url, "tgs").is_some(), "no tgs on {}", seg.url);
        }
    }
    for cc in checked {
        let directives: Vec<String> = cc
            .split(',')
            .map(|d| d.trim().to_ascii_lowercase())
            .collect();
        assert!(
            directives.contains(&"private".to_owned())
                && directives.contains(&"no-store".to_owned()),
            "Cache-Control {cc:?} of a rewritten playlist"
        );
    }
}

fn assert_cors(got: &Got) {
    assert_eq!(
        got.header("access-control-allow-origin"),
        PLAYER_ORIGIN,
        "ACAO of {}",
        got.url
    );
    let vary = got.header("vary").to_ascii_lowercase();
    assert!(
        vary.split(',').any(|v| v.trim() == "origin"),
        "Vary {vary:?} of {}",
        got.url
    );
}

/// CORS: `Origin:` is echoed with `Vary: Origin` on playlist, segment and
/// key; an `OPTIONS` preflight is 204 and allows GET.
#[tokio::test(flavor = "multi_thread")]
async fn cors_on_playlists_segments_keys_and_preflight() {
    let v = Vod::start(&Opts::default()).await;
    let origin_header = [("origin", PLAYER_ORIGIN)];
    let entry = v.entry("/vod/ts/index.m3u8");
    let got = get_with(entry.as_str(), &origin_header).await.expect_ok();
    assert_cors(&got);
    let playlist = parse_media(&entry, &got.text());
    let seg = &playlist.segments[0];
    let key = &seg.key.as_ref().expect("a key").url;
    for url in [&seg.url, key] {
        assert_cors(&get_with(url.as_str(), &origin_header).await.expect_ok());
    }
    for url in [&entry, &seg.url, key] {
        let resp = client()
            .request(reqwest::Method::OPTIONS, url.as_str())
            .header("origin", PLAYER_ORIGIN)
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "preflight of {url}");
        let methods = resp
            .headers()
            .get("access-control-allow-methods")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(
            methods.split(',').any(|m| m.trim() == "GET"),
            "preflight of {url}: Access-Control-Allow-Methods {methods:?}"
        );
        assert_eq!(
            resp.headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap().to_owned()),
            Some(PLAYER_ORIGIN.to_owned()),
            "preflight of {url}"
        );
    }
}

/// A gzip-encoded origin playlist is decoded and rewritten like a plain
/// one, whether the proxy asked for gzip (the viewer accepts it) or the
/// origin sends it anyway; segments are fetched from the origin without
/// gzip.
#[tokio::test(flavor = "multi_thread")]
async fn gzip_encoded_origin_playlist_is_rewritten() {
    let v = Vod::start(&Opts::default()).await;
    let accept = [("accept-encoding", "gzip")];
    // Different playlists, so no playlist cache answers the second.
    for (mode, path) in [
        (Gzip::IfAccepted, "/vod/ts/index.m3u8"),
        (Gzip::Always, "/vod/master/v0/index.m3u8"),
    ] {
        v.origin.set_gzip(mode);
        let before = v.origin.gzipped();
        let entry = v.entry(path);
        let got = get_with(entry.as_str(), &accept).await.expect_ok();
        let playlist = parse_media(&entry, &got.text());
        assert_eq!(
            playlist.segments.len(),
            SEGMENTS,
            "{mode:?}: rewritten playlist:\n{}",
            playlist.text
        );
        assert!(
            playlist.text.contains("#EXT-X-KEY:METHOD=AES-128"),
            "{mode:?}:\n{}",
            playlist.text
        );
        if mode == Gzip::Always {
            assert!(v.origin.gzipped() > before, "the origin sent no gzip");
        }
        for seg in &playlist.segments[..2] {
            tg(&seg.url);
            let seg_got = get_with(seg.url.as_str(), &accept).await.expect_ok();
            assert_eq!(
                seg_got.header("content-encoding"),
                "",
                "{mode:?}: encrypted segment {} sent with a content coding",
                seg.url
            );
            check_encrypted_segment(seg, &v.media.read(seg.url.path())).await;
        }
    }
    for (target, headers) in v.origin.requests_with_headers() {
        if target.split('?').next().unwrap().ends_with(".m3u8") {
            continue;
        }
        let ae = headers
            .get("accept-encoding")
            .map(|v| v.to_str().unwrap().to_ascii_lowercase())
            .unwrap_or_default();
        assert!(
            !ae.contains("gzip"),
            "segment {target} was asked for with Accept-Encoding {ae:?}"
        );
    }
}

/// `tg` and `tgs` never reach the origin; a player's `_HLS_msn`/`_HLS_part`
/// on a child playlist do.
#[tokio::test(flavor = "multi_thread")]
async fn capability_parameters_never_reach_the_origin() {
    let v = Vod::start(&Opts::default()).await;
    let entry = v.entry("/vod/master/index.m3u8");
    let master = get(entry.as_str()).await.expect_ok().text();
    let variant = variants(&entry, &master).remove(0);
    // First, so no playlist cache can answer it.
    let blocking = Url::parse(&format!("{variant}&_HLS_msn=3&_HLS_part=0")).unwrap();
    get(blocking.as_str()).await.expect_ok();
    let (_, playlist) = proxied_media(&variant).await;
    let seg = &playlist.segments[0];
    get(seg.url.as_str()).await.expect_ok();
    fetch_key(&seg.key.as_ref().expect("a key").url).await;

    let seen = v.origin.requests();
    for target in &seen {
        let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
        assert!(
            !query
                .split('&')
                .any(|p| p.starts_with("tg=") || p.starts_with("tgs=")),
            "the origin saw a capability parameter: {target}"
        );
    }
    let variant_path = variant.path();
    assert!(
        seen.iter().any(|t| t.starts_with(variant_path)
            && t.contains("_HLS_msn=3")
            && t.contains("_HLS_part=0")),
        "_HLS_msn/_HLS_part did not reach the origin; it saw {seen:#?}"
    );
    assert!(
        seen.iter().any(|t| t.starts_with(seg.url.path())),
        "the segment was not fetched from the origin: {seen:#?}"
    );
}

/// A playlist larger than `[cache] max_playlist` (plain, or gzip-encoded
/// and larger once decoded) is 502 `playlist_too_large`; a small one on
/// the same route is served.
#[tokio::test(flavor = "multi_thread")]
async fn playlist_larger_than_max_playlist_is_502() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("vod/big");
    std::fs::create_dir_all(&dir).unwrap();
    let playlist = |segments: usize| -> String {
        let mut text = String::from(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n",
        );
        for i in 0..segments {
            text.push_str(&format!("#EXTINF:2.000000,\nsegment-number-{i:08}.ts\n"));
        }
        text.push_str("#EXT-X-ENDLIST\n");
        text
    };
    let big = playlist(3000); // ~110 KB, gzip makes it a few KB
    assert!(big.len() > 100 * 1024);
    std::fs::write(dir.join("big.m3u8"), &big).unwrap();
    std::fs::write(dir.join("big-gz.m3u8"), &big).unwrap();
    std::fs::write(dir.join("small.m3u8"), playlist(10)).unwrap();
    let origin = StaticOrigin::start(root.path()).await;
    let proxy = start_proxy(&config(
        origin.addr(),
        &Opts {
            more: "[cache]\nmax_playlist = \"64KiB\"\n",
            ..Opts::default()
        },
    ))
    .await;

    get(&proxy.url("/vod/big/small.m3u8")).await.expect_ok();
    get(&proxy.url("/vod/big/big.m3u8")).await.expect_error(
        StatusCode::BAD_GATEWAY,
        "playlist_too_large",
        "a 110 KB playlist with max_playlist = 64KiB",
    );
    origin.set_gzip(Gzip::Always);
    get_with(
        &proxy.url("/vod/big/big-gz.m3u8"),
        &[("accept-encoding", "gzip")],
    )
    .await
    .expect_error(
        StatusCode::BAD_GATEWAY,
        "playlist_too_large",
        "a gzip playlist of a few KB that decodes to 110 KB",
    );
    assert!(origin.gzipped() >= 1, "the origin never sent gzip");
}
