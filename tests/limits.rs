//! Listener limits and certificate reload: the connection cap, the
//! header-read timeout, and a SIGHUP-style reload that swaps the HTTPS
//! certificate for new connections without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn ok_origin() -> TestOrigin {
    start_origin(|_req| async { Response::new(full("ok")) }).await
}

/// Read until EOF or `limit`; true when the peer closed the connection.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_cap_are_closed_and_counted() {
    let origin = ok_origin().await;
    let proxy = start_proxy(&config_for(origin.addr, "max_connections = 2")).await;
    // Two connections that each finished a request and stay open (keep-alive).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(proxy.http).await.unwrap();
        s.write_all(b"GET /live/ch1/a.ts HTTP/1.1\r\nHost: e\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    let mut third = TcpStream::connect(proxy.http).await.unwrap();
    let _ = third
        .write_all(b"GET /live/ch1/a.ts HTTP/1.1\r\nHost: e\r\n\r\n")
        .await;
    assert!(
        closed_within(&mut third, Duration::from_secs(10)).await,
        "third connection was served"
    );
    let m = get_text(&proxy.admin_url("/metrics")).await;
    assert!(
        metric(&m, "tollgate_connections_rejected_total") >= 1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "tollgate_open_connections{listener=\"http\"}"),
        2.0,
        "{m}"
    );
    // Closing one frees a slot.
    drop(held.pop());
    eventually("a freed connection slot", async || {
        match h1_client().get(proxy.url("/live/ch1/a.ts")).send().await {
            Ok(r) if r.status() == 200 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_request_head_is_cut_off() {
    let origin = ok_origin().await;
    let proxy = start_proxy(&config_for(origin.addr, "header_read_timeout = \"1s\"")).await;
    let mut s = TcpStream::connect(proxy.http).await.unwrap();
    s.write_all(b"GET /live/ch1/a.ts HTTP/1.1\r\nHost: e\r\nX-Slow: ")
        .await
        .unwrap();
    let t = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(20)).await,
        "slowloris connection kept open"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "closed before the timeout: {:?}",
        t.elapsed()
    );
    assert!(origin.seen_paths().is_empty());
}

fn write_cert(dir: &std::path::Path) -> String {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), c.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), c.key_pair.serialize_pem()).unwrap();
    c.cert.pem()
}

fn https_client(root_pem: &str, addr: std::net::SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root_pem.as_bytes()).unwrap())
        .resolve("localhost", addr)
        .pool_max_idle_per_host(0)
        .no_proxy()
        .build()
        .unwrap()
}

/// GET `url` on a new connection to `addr` that trusts only `root_pem`.
async fn https_get(
    root_pem: &str,
    addr: std::net::SocketAddr,
    url: &str,
) -> reqwest::Result<reqwest::Response> {
    https_client(root_pem, addr).get(url).send().await
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_swaps_the_certificate_for_new_connections() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let origin = ok_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let old_pem = write_cert(dir.path());
    let tls =
        "\n[[server.tls]]\nlisten = \"127.0.0.1:0\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\n";
    let text = config_for(origin.addr, tls);
    let cfg = dir.path().join("tollgate.toml");
    std::fs::write(&cfg, &text).unwrap();
    let config = tollgate::config::Config::load(&cfg).unwrap();
    let listeners = tollgate::server::Listeners::bind(&config).await.unwrap();
    let addr = listeners.tls[0].local_addr().unwrap();
    let admin = listeners.admin.as_ref().unwrap().local_addr().unwrap();
    let control = tollgate::server::Control::default();
    let _task = tokio::spawn(tollgate::server::run(config, listeners, control.clone()));
    let url = format!("https://localhost:{}/live/ch1/a.ts", addr.port());
    assert_eq!(https_get(&old_pem, addr, &url).await.unwrap().status(), 200);

    let new_pem = write_cert(dir.path());
    control.reload.notify_one();
    let r = eventually("the new certificate to be served", async || {
        https_get(&new_pem, addr, &url)
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(r.status(), 200);
    // The old certificate is gone for new connections.
    assert!(https_get(&old_pem, addr, &url).await.is_err());
    let m = get_text(&format!("http://{admin}/metrics")).await;
    assert_eq!(
        metric(&m, "tollgate_config_reloads_total{result=\"success\"}"),
        1.0,
        "{m}"
    );

    // A broken key on reload: counted, and the current certificate keeps serving.
    std::fs::write(dir.path().join("key.pem"), "garbage").unwrap();
    control.reload.notify_one();
    eventually("the failed reload to be counted", async || {
        let m = get_text(&format!("http://{admin}/metrics")).await;
        let failed = metric(&m, "tollgate_config_reloads_total{result=\"failure\"}");
        if failed == 1.0 { Ok(()) } else { Err(m) }
    })
    .await;
    assert_eq!(https_get(&new_pem, addr, &url).await.unwrap().status(), 200);
    control.stop.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_returns_at_once_and_closes_listeners() {
    let origin = ok_origin().await;
    let mut proxy = start_proxy(&config_for(origin.addr, "")).await;
    assert_eq!(get_h1(proxy.url("/live/ch1/a.ts")).await.status(), 200);
    proxy.control.stop.cancel();
    let result = tokio::time::timeout(Duration::from_secs(10), &mut proxy.task).await;
    assert!(
        matches!(result, Ok(Ok(Ok(())))),
        "run did not return: {result:?}"
    );
    eventually("both listeners to close after stop", async || {
        let http_open = TcpStream::connect(proxy.http).await.is_ok();
        let admin_open = TcpStream::connect(proxy.admin).await.is_ok();
        if http_open || admin_open {
            Err(format!("http open {http_open}, admin open {admin_open}"))
        } else {
            Ok(())
        }
    })
    .await;
}
