//! Streaming through the proxy: byte identity over every protocol, bodies
//! that flow before the origin finishes, origin failures (down, stalled,
//! reset mid-body) and the in-process drain. A real hyper origin and the real
//! proxy on 127.0.0.1:0, real HTTP/1.1, h2c and HTTPS+h2 clients.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::sync::mpsc;

fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The proxy with an HTTPS listener too, its self-signed `localhost`
/// certificate (files in the returned dir) and its origin.
async fn https_proxy() -> (
    TestProxy,
    rcgen::CertifiedKey,
    tempfile::TempDir,
    TestOrigin,
) {
    install_crypto();
    let origin = content_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let tls =
        "\n[[server.tls]]\nlisten = \"127.0.0.1:0\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\n";
    let proxy = start_proxy_in(&config_for(origin.addr, tls), dir.path()).await;
    (proxy, cert, dir, origin)
}

#[tokio::test(flavor = "multi_thread")]
async fn playlist_and_segment_byte_identical_over_h1_h2c_and_https_h2() {
    let (proxy, cert, _dir, _origin) = https_proxy().await;
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
        let r = send(client.get(format!("{base}/live/ch1/index.m3u8"))).await;
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(r.version(), version, "{name}");
        // Playlists are rewritten (every child URI gains the capability).
        assert_eq!(
            strip_capabilities(&r.text().await.unwrap()),
            PLAYLIST,
            "{name} playlist"
        );
        let r = send(client.get(format!("{base}/live/ch1/big.ts"))).await;
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
    let mut resp = get_h1(proxy.url("/live/ch1/seg.ts")).await;
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
            let mut resp = send(client.get(proxy.url("/live/ch1/seg.ts"))).await;
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
    let resp = get_h1(proxy.url("/live/ch1/seg.ts")).await;
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
    let r = get_h1(proxy.url("/live/ch1/index.m3u8")).await;
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
    let r = get_h1(proxy.url("/live/ch1/index.m3u8")).await;
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
async fn in_process_drain_finishes_in_flight_and_readyz_goes_503() {
    let (origin, tx) = fed_origin(Some(2000)).await;
    let mut proxy = start_proxy(&config_for(origin.addr, "")).await;
    tx.send(Ok(Frame::data(Bytes::from(vec![3u8; 1000]))))
        .await
        .unwrap();
    let mut resp = get_h1(proxy.url("/live/ch1/seg.ts")).await;
    let first = resp.chunk().await.unwrap().unwrap();
    proxy.control.drain.cancel();
    let c = h1_client();
    eventually("readyz to answer 503", async || {
        match send(c.get(proxy.admin_url("/readyz"))).await.status() {
            StatusCode::SERVICE_UNAVAILABLE => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
    // New connections are refused once the listener is closed.
    eventually(
        "the listener to refuse connections while draining",
        async || match tokio::net::TcpStream::connect(proxy.http).await {
            Ok(_) => Err("connected".to_owned()),
            Err(_) => Ok(()),
        },
    )
    .await;
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

/// TLS resumption scales past rustls' default 256-session server cache:
/// after 300 other clients, the first one still resumes (stateless TLS 1.3
/// tickets), so a returning viewer's handshake stays cheap on a busy edge.
#[tokio::test(flavor = "multi_thread")]
async fn tls_sessions_resume_after_many_other_clients() {
    use rustls::client::{ClientSessionMemoryCache, Resumption};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (proxy, cert, _dir, _origin) = https_proxy().await;
    let addr = proxy.tls.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    // One client (its own session store) per viewer.
    let client = || {
        let mut c = rustls::ClientConfig::builder()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        c.resumption = Resumption::store(Arc::new(ClientSessionMemoryCache::new(8)));
        tokio_rustls::TlsConnector::from(Arc::new(c))
    };
    // A request and its answer, so the tickets sent after the handshake are read.
    let visit = async |connector: &tokio_rustls::TlsConnector| {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        let kind = tls.get_ref().1.handshake_kind();
        tls.write_all(
            b"GET /live/ch1/index.m3u8 HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let mut answer = Vec::new();
        let _ = tls.read_to_end(&mut answer).await;
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        kind
    };
    let first = client();
    assert_eq!(visit(&first).await, Some(rustls::HandshakeKind::Full));
    for _ in 0..300 {
        visit(&client()).await;
    }
    assert_eq!(
        visit(&first).await,
        Some(rustls::HandshakeKind::Resumed),
        "the first viewer's session was forgotten"
    );
}
