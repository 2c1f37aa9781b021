//! Zero-copy segments (`cache.zero_copy`, src/zerocopy.rs) through the real
//! binary: a cached segment goes to plain HTTP/1.x viewers by `sendfile`
//! from a memory file, and what they get is byte for byte what the
//! in-memory path sends (`openssl enc -d` decrypts it to the origin's
//! bytes), whole, as byte ranges, pipelined, over HTTP/1.0, after a viewer
//! cut a body short; HEAD sends no body; HTTP/2 (h2c) and HTTPS never take
//! the file path (their framing and cipher need the bytes in memory) and
//! still send the same ciphertext. `tollgate_zero_copy_bytes_total` tells
//! which path a body took.
//!
//! openssl is required: without it the test fails and says how to get it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::config::{ConfigBuilder, Route};
use common::media::openssl_decrypt;
use common::process::Tollgate;
use common::{full, metric, pattern, start_origin};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Origin segment length: not a multiple of 16, over several 64 KiB pieces.
const SEGMENT: usize = 300_001;
const PLAYLIST: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n\
                        #EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:2.000,\nseg-7.ts\n\
                        #EXTINF:2.000,\nseg-8.ts\n#EXTINF:2.000,\nbig.ts\n";
const ZC: &str = "tollgate_zero_copy_bytes_total";
/// A segment whose ciphertext is exactly two markers: the last frame is a
/// whole marker.
const BIG: usize = 2 * tollgate::zerocopy::MAX_MARKER - 16;

async fn origin() -> common::TestOrigin {
    start_origin(|req: Request<Incoming>| async move {
        match req.uri().path() {
            p if p.ends_with(".m3u8") => Response::new(full(PLAYLIST)),
            p if p.ends_with("seg-7.ts") => Response::new(full(pattern(SEGMENT))),
            p if p.ends_with("big.ts") => Response::new(full(pattern(BIG))),
            // No Content-Length: the viewer's answer is chunked.
            p if p.ends_with("seg-8.ts") => {
                let chunks: Vec<_> = pattern(SEGMENT)
                    .chunks(10_000)
                    .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                    .collect();
                Response::new(StreamBody::new(futures_util::stream::iter(chunks)).boxed())
            }
            _ => {
                let mut r = Response::new(full("nope"));
                *r.status_mut() = StatusCode::NOT_FOUND;
                r
            }
        }
    })
    .await
}

fn config(origin: SocketAddr, cache: &str, server: &str) -> String {
    ConfigBuilder::new(origin)
        .server(server)
        .admin("test-admin-token")
        .ip_allow(&["127.0.0.0/8"])
        .section("keys", "master = \"hex:000102030405060708090a0b0c0d0e0f\"")
        .section("cache", cache)
        .route(Route::live(&["ip"]).keys("encrypt = true"))
        .build()
}

/// The segment URL, key and IV of the rewritten playlist.
struct Playlist {
    segment: String,
    /// The segment the origin sends without a length.
    unsized_segment: String,
    /// The [`BIG`] segment.
    big: String,
    key: Vec<u8>,
    /// The IV of `segment`; `unsized_segment`'s is one more without an
    /// explicit IV.
    iv: u128,
    explicit_iv: bool,
}

async fn playlist(tg: &Tollgate) -> Playlist {
    let text = common::get_text(&tg.url("/live/ch1/index.m3u8")).await;
    let key_line = text
        .lines()
        .find(|l| l.starts_with("#EXT-X-KEY:"))
        .unwrap_or_else(|| panic!("no key line in {text}"));
    let attr = |name: &str| {
        let at = key_line.find(&format!("{name}="))? + name.len() + 1;
        let v = &key_line[at..];
        let v = v.strip_prefix('"').map_or_else(
            || v.split(',').next().unwrap_or(v),
            |q| q.split('"').next().unwrap_or(q),
        );
        Some(v.to_owned())
    };
    let key_uri = attr("URI").expect("a key URI");
    let key_url = reqwest::Url::parse(&tg.url("/live/ch1/index.m3u8"))
        .unwrap()
        .join(&key_uri)
        .unwrap();
    let key = common::get_h1(key_url)
        .await
        .bytes()
        .await
        .unwrap()
        .to_vec();
    assert_eq!(key.len(), 16, "key");
    let explicit = attr("IV");
    let iv = explicit.as_deref().map_or(7, |h| {
        u128::from_str_radix(h.trim_start_matches("0x").trim_start_matches("0X"), 16).unwrap()
    });
    let segment = common::first_segment("ch1", &text);
    let unsized_segment = text
        .lines()
        .find(|l| l.starts_with("seg-8.ts?"))
        .unwrap_or_else(|| panic!("no seg-8 in {text}"));
    let big = text
        .lines()
        .find(|l| l.starts_with("big.ts?"))
        .unwrap_or_else(|| panic!("no big.ts in {text}"));
    Playlist {
        big: tg.url(&format!("/live/ch1/{big}")),
        segment: tg.url(&segment),
        unsized_segment: tg.url(&format!("/live/ch1/{unsized_segment}")),
        key,
        iv,
        explicit_iv: explicit.is_some(),
    }
}

/// Wait (bounded) until the edge holds `n` zero-copy files.
async fn wait_files(tg: &Tollgate, n: u64) {
    common::eventually("zero-copy files written", async || {
        let text = common::get_text(&tg.admin_url("/healthz")).await;
        let health: serde_json::Value = serde_json::from_str(&text).unwrap();
        (health["zero_copy_files"] == n).then_some(()).ok_or(text)
    })
    .await;
}

async fn zero_copied(tg: &Tollgate) -> f64 {
    metric(&tg.metrics(&common::h1_client()).await, ZC)
}

async fn get(url: &str, range: Option<&str>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let mut req = common::h1_client().get(url);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let resp = common::send(req).await;
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

/// Raw HTTP/1.x: send `request` bytes, read until the peer closes.
async fn raw(tg: &Tollgate, request: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(tg.http).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(common::process::PATIENCE, s.read_to_end(&mut got))
        .await
        .expect("the proxy closes the connection")
        .unwrap();
    got
}

/// Split raw responses: (head text, body) for each, by Content-Length.
fn responses(mut bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head")
            + 4;
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .expect("content-length");
        // A body cut short is returned as far as it came.
        let len = len.min(bytes.len() - end);
        out.push((head, bytes[end..end + len].to_vec()));
        bytes = &bytes[end + len..];
    }
    out
}

#[tokio::test]
async fn cached_segments_go_by_file_and_are_the_same_bytes() {
    let origin = origin().await;
    let tg = Tollgate::start(&config(origin.addr, "", "")).await;
    let p = playlist(&tg).await;

    // The first answer (a miss) reads the fill from memory as it grows; the
    // first hit writes the file.
    let (status, _, first) = get(&p.segment, None).await;
    assert_eq!(status, StatusCode::OK);
    let by_file = zero_copied(&tg).await;
    assert_eq!(by_file, 0.0, "a miss is sent from memory");
    let plain = openssl_decrypt(&p.key, p.iv, &first).await;
    assert_eq!(
        plain,
        pattern(SEGMENT),
        "openssl decrypts to the origin's bytes"
    );

    // The first hit starts writing the file and is sent from memory; once
    // the file is there, hits go by file.
    let (status, _, first_hit) = get(&p.segment, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(first_hit == first, "a hit from memory sends other bytes");
    wait_files(&tg, 1).await;
    let by_file = zero_copied(&tg).await;
    let (status, headers, second) = get(&p.segment, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-length"], first.len().to_string().as_str());
    assert!(
        second == first,
        "the file path sends other bytes than memory"
    );
    let hit = zero_copied(&tg).await - by_file;
    assert_eq!(hit, first.len() as f64, "a hit goes by file");

    // Byte ranges: across pieces, a suffix, an open end.
    let n = first.len();
    for (range, from, to) in [
        ("bytes=100-70000", 100, 70000),
        ("bytes=-1000", n - 1000, n - 1),
        ("bytes=299000-", 299_000, n - 1),
        ("bytes=0-0", 0, 0),
    ] {
        let before = zero_copied(&tg).await;
        let (status, headers, body) = get(&p.segment, Some(range)).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            headers["content-range"],
            format!("bytes {from}-{to}/{n}").as_str(),
            "{range}"
        );
        assert!(body == first[from..=to], "{range}: other bytes");
        assert_eq!(
            zero_copied(&tg).await - before,
            body.len() as f64,
            "{range}"
        );
    }

    // HEAD: the length, no body, nothing sent by file.
    let before = zero_copied(&tg).await;
    let resp = common::send(common::h1_client().head(&p.segment)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-length"], n.to_string().as_str());
    assert!(resp.bytes().await.unwrap().is_empty());
    assert_eq!(zero_copied(&tg).await, before, "HEAD sends no body");

    // Pipelined on one connection (a range, then the whole), then HTTP/1.0.
    let target = p.segment.trim_start_matches(&format!("http://{}", tg.http));
    let got = raw(
        &tg,
        &format!(
            "GET {target} HTTP/1.1\r\nHost: edge\r\nRange: bytes=65530-65545\r\n\r\n\
             GET {target} HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    let answers = responses(&got);
    assert_eq!(answers.len(), 2, "two pipelined answers");
    assert!(answers[0].0.starts_with("HTTP/1.1 206"), "{}", answers[0].0);
    assert!(answers[0].1 == first[65530..=65545]);
    assert!(answers[1].0.starts_with("HTTP/1.1 200"), "{}", answers[1].0);
    assert!(answers[1].1 == first);
    let got = raw(&tg, &format!("GET {target} HTTP/1.0\r\nHost: edge\r\n\r\n")).await;
    let answers = responses(&got);
    assert!(answers.len() == 1 && answers[0].1 == first, "HTTP/1.0");

    // A viewer that leaves mid-body: the next ones get whole, right bodies.
    for _ in 0..3 {
        let mut s = TcpStream::connect(tg.http).await.unwrap();
        let head = format!("GET {target} HTTP/1.1\r\nHost: edge\r\n\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        let mut some = vec![0u8; 1000];
        s.read_exact(&mut some).await.unwrap();
        drop(s);
    }
    let (status, _, again) = get(&p.segment, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(again == first, "after viewers left mid-body");

    // A segment of no declared length: chunked, and by file once cached.
    let (status, _, first_unsized) = get(&p.unsized_segment, None).await;
    assert_eq!(status, StatusCode::OK);
    let _ = get(&p.unsized_segment, None).await;
    wait_files(&tg, 2).await;
    let before = zero_copied(&tg).await;
    let (status, headers, chunked) = get(&p.unsized_segment, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("content-length").is_none(), "{headers:?}");
    assert!(chunked == first_unsized, "chunked: other bytes by file");
    assert_eq!(
        zero_copied(&tg).await - before,
        chunked.len() as f64,
        "chunked by file"
    );
    let iv = if p.explicit_iv { p.iv } else { 8 };
    assert_eq!(
        openssl_decrypt(&p.key, iv, &chunked).await,
        pattern(SEGMENT)
    );

    // h2c never takes the file path and sends the same bytes.
    let before = zero_copied(&tg).await;
    let resp = common::send(common::h2c_client().get(&p.segment)).await;
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert!(resp.bytes().await.unwrap() == first, "h2c bytes");
    assert_eq!(zero_copied(&tg).await, before, "h2c went by file");
}

#[tokio::test]
async fn https_and_zero_copy_off_send_from_memory() {
    let certs = common::tls::TestCert::new();
    let tls = certs.listener_toml();
    let origin = origin().await;
    for cache in ["", "zero_copy = false"] {
        let tg = Tollgate::start(&config(origin.addr, cache, &tls)).await;
        let https: SocketAddr = common::process::json_lines(&tg.stderr_so_far())
            .iter()
            .find(|v| common::process::is_message(v, "listening") && v["listener"] == "https")
            .and_then(|v| v["addr"].as_str()?.parse().ok())
            .expect("an https listening line");
        let health: serde_json::Value =
            serde_json::from_str(&common::get_text(&tg.admin_url("/healthz")).await).unwrap();
        let http_path = if cache.is_empty() { "sendfile" } else { "copy" };
        assert_eq!(health["send_path"]["http"], http_path, "{health}");
        assert_eq!(health["send_path"]["https"], "rustls", "{health}");
        let logged: Vec<_> = common::process::json_lines(&tg.stderr_so_far())
            .into_iter()
            .filter(|v| common::process::is_message(v, "listening"))
            .map(|v| (v["listener"].to_string(), v["send"].to_string()))
            .collect();
        assert!(
            logged.contains(&("\"http\"".into(), format!("\"{http_path}\""))),
            "{logged:?}"
        );
        assert!(
            logged.contains(&("\"https\"".into(), "\"rustls\"".into())),
            "{logged:?}"
        );
        let p = playlist(&tg).await;
        let (_, _, first) = get(&p.segment, None).await;
        let client = certs.client(https);
        let url = p.segment.replace(
            &format!("http://{}", tg.http),
            &format!("https://localhost:{}", https.port()),
        );
        let before = zero_copied(&tg).await;
        for _ in 0..2 {
            let resp = common::send(client.get(&url)).await;
            assert_eq!(resp.status(), StatusCode::OK, "{cache}");
            assert!(
                resp.bytes().await.unwrap() == first,
                "https bytes ({cache})"
            );
        }
        assert_eq!(
            zero_copied(&tg).await,
            before,
            "https went by file ({cache})"
        );
        let (_, _, plain) = get(&p.segment, None).await;
        assert!(plain == first, "{cache}");
        if cache.is_empty() {
            wait_files(&tg, 1).await;
        }
        let before = zero_copied(&tg).await;
        let (_, _, plain) = get(&p.segment, None).await;
        assert!(plain == first, "{cache}");
        let want = if cache.is_empty() {
            first.len() as f64
        } else {
            0.0
        };
        let hit = zero_copied(&tg).await - before;
        assert_eq!(hit, want, "plain http hit ({cache:?})");
        if !cache.is_empty() {
            assert_eq!(before, 0.0, "zero_copy = false sent by file");
        }
        assert_eq!(
            openssl_decrypt(&p.key, p.iv, &plain).await,
            pattern(SEGMENT)
        );
    }
}

/// A slow reader of a body sent by file is not cut by the idle timer: the
/// last marker is hyper's last frame, so hyper is done with the body while
/// megabytes of its run are still to be sent; the queued run keeps the
/// connection busy until it is.
#[tokio::test]
async fn a_slow_reader_of_a_file_body_is_not_cut() {
    let origin = origin().await;
    let timers = "idle_timeout = \"1s\"\nheader_read_timeout = \"1s\"";
    let tg = Tollgate::start(&config(origin.addr, "", timers)).await;
    let p = playlist(&tg).await;
    let big = p.big.clone();
    let (status, _, whole) = get(&big, None).await;
    assert_eq!(status, StatusCode::OK, "{big}");
    let _ = get(&big, None).await;
    wait_files(&tg, 1).await;
    let before = zero_copied(&tg).await;
    // A small receive window and about 1 MiB/s: 8 MiB take 8 s, far past
    // idle_timeout + header_read_timeout after hyper queued the last frame.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 << 10).unwrap();
    let mut s = socket.connect(tg.http).await.unwrap();
    let target = big.trim_start_matches(&format!("http://{}", tg.http));
    let head = format!("GET {target} HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = tokio::time::timeout(common::process::PATIENCE, s.read(&mut buf))
            .await
            .expect("the proxy keeps sending")
            .unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    }
    let answers = responses(&got);
    assert_eq!(answers.len(), 1, "got {} bytes", got.len());
    assert!(
        answers[0].1 == whole,
        "cut after {} of {} body bytes",
        answers[0].1.len(),
        whole.len()
    );
    assert_eq!(
        zero_copied(&tg).await - before,
        whole.len() as f64,
        "by file"
    );
}
