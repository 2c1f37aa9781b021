//! The proxy core through real sockets: a real hyper origin and the real
//! proxy on 127.0.0.1:0, real HTTP/1.1, h2c and HTTPS+h2 clients.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const PLAYLIST: &str = "#EXTM3U\r\n#EXT-X-VERSION:3\r\n#EXT-X-TARGETDURATION:2\r\n#EXT-X-MEDIA-SEQUENCE:7\r\n#EXTINF:2.000,\r\nseg-7.ts\r\n";

/// An origin serving a playlist, a 1 MiB segment, and statuses on demand.
async fn content_origin() -> TestOrigin {
    start_origin(|req: Request<Incoming>| async move {
        let path = req.uri().path().to_owned();
        let mut resp = match path.as_str() {
            p if p.ends_with(".m3u8") => Response::new(full(PLAYLIST)),
            p if p.ends_with("big.ts") => Response::new(full(pattern(1 << 20))),
            "/live/ch1/missing.ts" => {
                let mut r = Response::new(full("nope"));
                *r.status_mut() = StatusCode::NOT_FOUND;
                r
            }
            "/live/ch1/broken.ts" => {
                let mut r = Response::new(full("boom"));
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                r
            }
            _ => Response::new(full("ok")),
        };
        resp.headers_mut()
            .insert("x-origin", "yes".parse().unwrap());
        resp
    })
    .await
}

fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

#[tokio::test(flavor = "multi_thread")]
async fn playlist_and_segment_byte_identical_over_h1_h2c_and_https_h2() {
    install_crypto();
    let origin = content_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let tls =
        "\n[[server.tls]]\nlisten = \"127.0.0.1:0\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\n";
    let proxy = start_proxy_in(&config_for(origin.addr, tls), dir.path()).await;
    let tls_addr = proxy.tls.unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", tls_addr)
        .no_proxy()
        .build()
        .unwrap();
    let big = pattern(1 << 20);
    let cases = [
        (
            "h1",
            h1_client(),
            format!("http://{}", proxy.http),
            http::Version::HTTP_11,
        ),
        (
            "h2c",
            h2c_client(),
            format!("http://{}", proxy.http),
            http::Version::HTTP_2,
        ),
        (
            "https-h2",
            https,
            format!("https://localhost:{}", tls_addr.port()),
            http::Version::HTTP_2,
        ),
    ];
    for (name, client, base, version) in cases {
        let r = client
            .get(format!("{base}/live/ch1/index.m3u8"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(r.version(), version, "{name}");
        assert_eq!(r.headers()["x-origin"], "yes", "{name}");
        assert_eq!(
            r.bytes().await.unwrap(),
            PLAYLIST.as_bytes(),
            "{name} playlist"
        );
        let r = client
            .get(format!("{base}/live/ch1/big.ts"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(r.content_length(), Some(1 << 20), "{name}");
        let body = r.bytes().await.unwrap();
        assert!(body[..] == big[..], "{name}: 1 MiB segment differs");
    }
}

/// An origin whose `/live/ch1/seg.ts` body is fed by the test through a channel.
async fn fed_origin(
    content_length: Option<usize>,
) -> (
    TestOrigin,
    mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>,
) {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    let rx = Arc::new(Mutex::new(Some(rx)));
    let origin = start_origin(move |_req| {
        let rx = rx.lock().unwrap().take();
        async move {
            let Some(mut rx) = rx else {
                return Response::new(full("second request"));
            };
            let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
            let mut resp = Response::new(StreamBody::new(stream).boxed());
            if let Some(n) = content_length {
                resp.headers_mut().insert("content-length", n.into());
            }
            resp
        }
    })
    .await;
    (origin, tx)
}

#[tokio::test(flavor = "multi_thread")]
async fn first_half_reaches_viewer_before_origin_sends_the_rest() {
    let half = 256 * 1024;
    let (origin, tx) = fed_origin(Some(2 * half)).await;
    let proxy = start_proxy(&config_for(origin.addr, "")).await;
    let data = pattern(2 * half);
    tx.send(Ok(Frame::data(Bytes::copy_from_slice(&data[..half]))))
        .await
        .unwrap();
    let mut resp = h1_client()
        .get(proxy.url("/live/ch1/seg.ts"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut got = Vec::new();
    // The origin has sent only the first half and is paused: all of it must arrive.
    tokio::time::timeout(Duration::from_secs(10), async {
        while got.len() < half {
            let chunk = resp.chunk().await.unwrap().expect("body ended early");
            got.extend_from_slice(&chunk);
        }
    })
    .await
    .expect("first half did not reach the viewer while the origin was paused");
    assert_eq!(got.len(), half, "more bytes than the origin sent");
    tx.send(Ok(Frame::data(Bytes::copy_from_slice(&data[half..]))))
        .await
        .unwrap();
    drop(tx);
    while let Some(chunk) = resp.chunk().await.unwrap() {
        got.extend_from_slice(&chunk);
    }
    assert!(got == data);
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_reset_mid_body_aborts_the_viewer_response() {
    for (name, client) in [("h1", h1_client()), ("h2c", h2c_client())] {
        for declared in [Some(1 << 20), None] {
            let (origin, tx) = fed_origin(declared).await;
            let proxy = start_proxy(&config_for(origin.addr, "")).await;
            tx.send(Ok(Frame::data(Bytes::from(vec![7u8; 100 * 1024]))))
                .await
                .unwrap();
            let mut resp = client
                .get(proxy.url("/live/ch1/seg.ts"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{name}");
            let first = resp.chunk().await.unwrap().expect("first bytes");
            assert!(!first.is_empty());
            // Only now does the origin die, mid-body.
            tx.send(Err(std::io::Error::other("origin crashed")))
                .await
                .unwrap();
            let mut result = Ok(());
            let mut total = first.len();
            loop {
                match resp.chunk().await {
                    Ok(Some(c)) => total += c.len(),
                    Ok(None) => break,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            assert!(
                result.is_err(),
                "{name} {declared:?}: truncated body ended cleanly after {total} bytes"
            );
            assert!(total <= 100 * 1024);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_stalling_mid_body_aborts_after_idle_timeout() {
    let (origin, tx) = fed_origin(Some(1 << 20)).await;
    let proxy = start_proxy(&config_for(origin.addr, "")).await;
    tx.send(Ok(Frame::data(Bytes::from(vec![1u8; 1000]))))
        .await
        .unwrap();
    let resp = h1_client()
        .get(proxy.url("/live/ch1/seg.ts"))
        .send()
        .await
        .unwrap();
    // idle_timeout = 1s in config_for; the sender stays alive, so the origin stalls.
    let result = tokio::time::timeout(Duration::from_secs(30), resp.bytes())
        .await
        .unwrap();
    assert!(result.is_err(), "stalled body must abort, not end cleanly");
    drop(tx);
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_down_is_502_and_stalled_origin_is_504() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = start_proxy(&config_for(closed_port, "")).await;
    let r = h1_client()
        .get(proxy.url("/live/ch1/index.m3u8"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(
        r.text().await.unwrap().trim(),
        r#"{"error":"origin_unavailable"}"#
    );

    let stalled = start_origin(|_req| async {
        std::future::pending::<()>().await;
        Response::new(full(""))
    })
    .await;
    let proxy = start_proxy(&config_for(stalled.addr, "")).await;
    let t = Instant::now();
    let r = h1_client()
        .get(proxy.url("/live/ch1/index.m3u8"))
        .send()
        .await
        .unwrap();
    let waited = t.elapsed();
    assert_eq!(r.status(), 504);
    assert_eq!(
        r.text().await.unwrap().trim(),
        r#"{"error":"origin_timeout"}"#
    );
    // first_byte_timeout = 1s: not before it, and not unboundedly after.
    assert!(
        waited >= Duration::from_millis(950),
        "gave up early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(20),
        "timeout not enforced: {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_statuses_pass_through_and_errors_are_json() {
    let origin = content_origin().await;
    let proxy = start_proxy(&config_for(origin.addr, "")).await;
    let c = h1_client();
    let r = c
        .get(proxy.url("/live/ch1/missing.ts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().await.unwrap(), "nope");
    let r = c
        .get(proxy.url("/live/ch1/broken.ts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let r = c.get(proxy.url("/elsewhere/x")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.text().await.unwrap().trim(), r#"{"error":"no_route"}"#);
    let r = c
        .post(proxy.url("/live/ch1/index.m3u8"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    let r = c.head(proxy.url("/live/ch1/big.ts")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "1048576");
    assert!(r.bytes().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_method_allow_deny_and_all_pass() {
    let origin = content_origin().await;
    // Loopback is allowed by config_for; deny it explicitly → ip_denied wins.
    let denied = config_for(origin.addr, "").replace(
        "[ip]\nallow = [\"127.0.0.0/8\"]",
        "[ip]\nallow = [\"127.0.0.0/8\"]\ndeny = [\"127.0.0.1/32\"]",
    );
    let proxy = start_proxy(&denied).await;
    let r = h1_client()
        .get(proxy.url("/live/ch1/index.m3u8"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap().trim(), r#"{"error":"ip_denied"}"#);
    // Not allowed and not denied: every method passed → forbidden.
    let not_allowed = config_for(origin.addr, "")
        .replace("allow = [\"127.0.0.0/8\"]", "allow = [\"10.0.0.0/8\"]");
    let proxy2 = start_proxy(&not_allowed).await;
    let r = h1_client()
        .get(proxy2.url("/live/ch1/index.m3u8"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap().trim(), r#"{"error":"forbidden"}"#);
    assert!(
        origin.seen_paths().is_empty(),
        "a denied request reached the origin"
    );
    let m = h1_client()
        .get(proxy.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(
            &m,
            r#"tollgate_auth_decisions_total{method="deny_list",outcome="ip_denied"}"#
        ),
        1.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_and_query_sent_to_origin() {
    let origin = content_origin().await;
    let proxy = start_proxy(&config_for(origin.addr, "")).await;
    let r = h1_client()
        .get(proxy.url("/live/ch1/index.m3u8?token=SECRET&lang=en&tg=cap&_HLS_msn=3"))
        .header("connection", "keep-alive, x-private-hop")
        .header("x-private-hop", "1")
        .header("x-end-to-end", "kept")
        .header("x-forwarded-for", "198.51.100.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = origin.seen.lock().unwrap()[0].clone();
    assert_eq!(
        seen.path_and_query,
        "/live/ch1/index.m3u8?lang=en&_HLS_msn=3"
    );
    assert!(
        seen.headers.get("x-private-hop").is_none(),
        "hop-by-hop header forwarded"
    );
    assert_eq!(seen.headers["x-end-to-end"], "kept");
    assert_eq!(seen.headers["x-forwarded-for"], "198.51.100.1, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["host"], origin.addr.to_string());
}

/// Send a raw request line (no client-side normalization) and read the status.
async fn raw_status(addr: std::net::SocketAddr, target: &str, extra_headers: &str) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req =
        format!("GET {target} HTTP/1.1\r\nHost: edge\r\n{extra_headers}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let head = String::from_utf8_lossy(&buf);
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status for {target:?}: {head:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_paths_never_reach_origin_except_normalized_in_route() {
    let origin = content_origin().await;
    let proxy = start_proxy(&config_for(origin.addr, "")).await;
    let long = format!("/live/ch1/{}.ts", "a".repeat(3000));
    let big_header = format!("X-Big: {}\r\n", "b".repeat(20 * 1024));
    let cases: Vec<(String, &str, &[u16])> = vec![
        ("/live/../../etc/passwd".into(), "", &[400]),
        ("/live/%2e%2e/%2e%2e/etc/passwd".into(), "", &[400]),
        ("/%2E%2E/etc/passwd".into(), "", &[400]),
        ("/live/%2e%2e/x".into(), "", &[404]),
        ("/live/ch1%2f..%2f..%2fetc%2fpasswd".into(), "", &[400]),
        ("/live/ch1/a%5c..%5c..%5cx".into(), "", &[400]),
        ("/live/ch1/%00.ts".into(), "", &[400]),
        ("/live/ch1/%0d%0aX-Injected:%201".into(), "", &[400]),
        ("/live/ch1/%zz.ts".into(), "", &[400]),
        ("/live/ch1/%c0%ae%c0%ae/x".into(), "", &[400]),
        (long, "", &[414, 431]),
        ("/live/ch1/index.m3u8".into(), &big_header, &[431]),
        ("/live//ch1//index.m3u8".into(), "", &[200]),
        ("/live/./ch1/./index.m3u8".into(), "", &[200]),
        ("/live/ch2/../ch1/index.m3u8".into(), "", &[200]),
        ("/live/%63h1/index.m3u8".into(), "", &[200]),
        ("/live/ch1/%252e%252e/x.ts".into(), "", &[200]),
    ];
    assert!(!cases.is_empty());
    for (target, headers, allowed) in &cases {
        let status = raw_status(proxy.http, target, headers).await;
        assert!(
            allowed.contains(&status),
            "{target:.80}: got {status}, expected one of {allowed:?}"
        );
    }
    let seen = origin.seen_paths();
    assert_eq!(
        seen,
        [
            "/live/ch1/index.m3u8",
            "/live/ch1/index.m3u8",
            "/live/ch1/index.m3u8",
            "/live/ch1/index.m3u8",
            "/live/ch1/%252e%252e/x.ts",
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_and_health_endpoints_answer() {
    let origin = content_origin().await;
    let proxy = start_proxy(&config_for(origin.addr, "")).await;
    let c = h1_client();
    let before = c
        .get(proxy.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = r#"tollgate_requests_total{route="live",status_class="2xx",code="proxied"}"#;
    for _ in 0..3 {
        let r = c
            .get(proxy.url("/live/ch1/index.m3u8"))
            .send()
            .await
            .unwrap();
        r.bytes().await.unwrap();
    }
    // The counter moves when the body completes; poll briefly for the last one.
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let m = c
            .get(proxy.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metric(&m, key) == metric(&before, key) + 3.0 || Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(metric(&after, key), metric(&before, key) + 3.0, "{after}");
    assert!(
        metric(&after, r#"tollgate_bytes_sent_total{route="live"}"#) >= 3.0 * PLAYLIST.len() as f64
    );
    assert!(
        after.contains("tollgate_origin_duration_seconds_count{origin=\"o\"} 3"),
        "{after}"
    );
    for (path, status) in [
        ("/livez", 200),
        ("/readyz", 200),
        ("/healthz", 200),
        ("/nope", 404),
    ] {
        assert_eq!(
            c.get(proxy.admin_url(path)).send().await.unwrap().status(),
            status,
            "{path}"
        );
    }
    // The API needs the bearer token.
    assert_eq!(
        c.get(proxy.admin_url("/api/v1/users/a"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let r = c
        .get(proxy.admin_url("/api/v1/users/a"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(proxy.admin_url("/api/v1/users/a"))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn in_process_drain_finishes_in_flight_and_readyz_goes_503() {
    let (origin, tx) = fed_origin(Some(2000)).await;
    let mut proxy = start_proxy(&config_for(origin.addr, "")).await;
    tx.send(Ok(Frame::data(Bytes::from(vec![3u8; 1000]))))
        .await
        .unwrap();
    let mut resp = h1_client()
        .get(proxy.url("/live/ch1/seg.ts"))
        .send()
        .await
        .unwrap();
    let first = resp.chunk().await.unwrap().unwrap();
    proxy.control.drain.cancel();
    let c = h1_client();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = c.get(proxy.admin_url("/readyz")).send().await.unwrap();
        if r.status() == 503 {
            break;
        }
        assert!(Instant::now() < deadline, "readyz never went 503");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // New connections are refused once the listener is closed.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(proxy.http).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "listener still accepting while draining"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.send(Ok(Frame::data(Bytes::from(vec![3u8; 1000]))))
        .await
        .unwrap();
    drop(tx);
    let mut total = first.len();
    while let Some(c) = resp.chunk().await.unwrap() {
        total += c.len();
    }
    assert_eq!(total, 2000);
    let result = tokio::time::timeout(Duration::from_secs(10), &mut proxy.task).await;
    assert!(
        matches!(result, Ok(Ok(Ok(())))),
        "run did not return cleanly: {result:?}"
    );
}
