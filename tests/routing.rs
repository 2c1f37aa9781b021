//! Requests through the proxy that tollgate answers or shapes itself: error
//! codes and pass-through statuses, the `ip` method, what the origin is sent
//! (headers, query without credentials), hostile paths, metrics and the admin
//! endpoints. A real hyper origin and the real proxy on 127.0.0.1:0.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread")]
async fn origin_statuses_pass_through_and_errors_are_json() {
    let origin = content_origin().await;
    let proxy = start_proxy(&config_for(origin.addr, "")).await;
    let c = h1_client();
    let r = send(c.get(proxy.url("/live/ch1/missing.ts"))).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().await.unwrap(), "nope");
    let r = send(c.get(proxy.url("/live/ch1/broken.ts"))).await;
    assert_eq!(r.status(), 500);
    let r = send(c.get(proxy.url("/elsewhere/x"))).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.text().await.unwrap().trim(), r#"{"error":"no_route"}"#);
    let r = send(c.post(proxy.url("/live/ch1/index.m3u8")).body("x")).await;
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    let r = send(c.head(proxy.url("/live/ch1/big.ts"))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "1048576");
    assert!(r.bytes().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_method_allow_deny_and_all_pass() {
    let origin = content_origin().await;
    // Loopback is allowed by config_for; deny it explicitly → ip_denied wins.
    let denied = loopback_config(origin.addr, "ip")
        .ip("allow = [\"127.0.0.0/8\"]\ndeny = [\"127.0.0.1/32\"]")
        .build();
    let proxy = start_proxy(&denied).await;
    let r = get_h1(proxy.url("/live/ch1/index.m3u8")).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap().trim(), r#"{"error":"ip_denied"}"#);
    // Not allowed and not denied: every method passed → forbidden.
    let not_allowed = loopback_config(origin.addr, "ip")
        .ip_allow(&["10.0.0.0/8"])
        .build();
    let proxy2 = start_proxy(&not_allowed).await;
    let r = get_h1(proxy2.url("/live/ch1/index.m3u8")).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap().trim(), r#"{"error":"forbidden"}"#);
    assert!(
        origin.seen_paths().is_empty(),
        "a denied request reached the origin"
    );
    let m = get_text(&proxy.admin_url("/metrics")).await;
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
    let r =
        h1_client()
            .get(proxy.url(
                "/live/ch1/seg-7.ts?token=SECRET&lang=en&_HLS_msn=3&_HLS_part=1&_HLS_skip=YES",
            ))
            .header("connection", "keep-alive, x-private-hop")
            .header("x-private-hop", "1")
            .header("x-end-to-end", "kept")
            .header("x-forwarded-for", "198.51.100.1")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let seen = origin.seen.lock().unwrap()[0].clone();
    // LL-HLS delivery directives reach the origin unchanged, except
    // `_HLS_skip`: delta updates are off (docs/hls.md §6).
    assert_eq!(
        seen.path_and_query,
        "/live/ch1/seg-7.ts?lang=en&_HLS_msn=3&_HLS_part=1"
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
    // No playlist micro-cache: every accepted request must reach the origin.
    let proxy = start_proxy(&config_for(origin.addr, "[cache]\nplaylist_ttl = \"0s\"")).await;
    let long = format!("/live/ch1/{}.ts", "a".repeat(3000));
    let big_header = format!("X-Big: {}\r\n", "b".repeat(20 * 1024));
    let cases: Vec<(String, &str, &[u16])> = vec![
        ("/live/../../etc/passwd".into(), "", &[400]),
        ("/live/%2e%2e/%2e%2e/etc/passwd".into(), "", &[400]),
        ("/%2E%2E/etc/passwd".into(), "", &[400]),
        ("/live/%2e%2e/x".into(), "", &[404]),
        // %2F is a separator (as in nginx's $uri): this resolves to /etc/passwd, no route.
        ("/live/ch1%2f..%2f..%2fetc%2fpasswd".into(), "", &[404]),
        ("/live/ch1%2f..%2f..%2f..%2fetc%2fpasswd".into(), "", &[400]),
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
        ("/live/ch1%2Findex.m3u8".into(), "", &[200]),
        // Decoded once: the literal name "%25x.ts" reaches the origin escaped.
        ("/live/ch1/%2525x.ts".into(), "", &[200]),
        // An origin decoding twice would read `..`: refused (SPEC §6).
        ("/live/ch1/%252e%252e/x.ts".into(), "", &[400]),
        ("/live/ch1/..;/x.ts".into(), "", &[400]),
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
            "/live/ch1/index.m3u8",
            "/live/ch1/%2525x.ts",
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_and_health_endpoints_answer() {
    let origin = content_origin().await;
    let proxy = start_proxy(&config_for(origin.addr, "")).await;
    let c = h1_client();
    let before = get_text(&proxy.admin_url("/metrics")).await;
    let key = r#"tollgate_requests_total{route="live",status_class="2xx",code="proxied"}"#;
    for _ in 0..3 {
        let r = send(c.get(proxy.url("/live/ch1/big.ts"))).await;
        r.bytes().await.unwrap();
    }
    // The counter moves when the body completes; poll briefly for the last one.
    let after = eventually("the request counter to move by 3", async || {
        let m = get_text(&proxy.admin_url("/metrics")).await;
        if metric(&m, key) == metric(&before, key) + 3.0 {
            Ok(m)
        } else {
            Err(m)
        }
    })
    .await;
    assert!(
        metric(&after, r#"tollgate_bytes_sent_total{route="live"}"#) >= 3.0 * (1u64 << 20) as f64
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
            send(c.get(proxy.admin_url(path))).await.status(),
            status,
            "{path}"
        );
    }
    // The API needs the bearer token.
    assert_eq!(
        send(c.get(proxy.admin_url("/api/v1/users/a")))
            .await
            .status(),
        401
    );
    let r = send(
        c.get(proxy.admin_url("/api/v1/users/a"))
            .bearer_auth("wrong"),
    )
    .await;
    assert_eq!(r.status(), 401);
    let r = send(
        c.get(proxy.admin_url("/api/v1/users/a"))
            .bearer_auth("test-admin-token"),
    )
    .await;
    assert_ne!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn http10_origin_does_not_downgrade_the_viewer() {
    // A bare HTTP/1.0 origin, as some packagers and old CDNs still are.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    let proxy = start_proxy(&config_for(addr, "")).await;
    let mut s = tokio::net::TcpStream::connect(proxy.http).await.unwrap();
    s.write_all(b"GET /live/ch1/a.ts HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("ok"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn trusted_proxy_names_the_client_and_the_hop_is_appended() {
    let origin = content_origin().await;
    let text = loopback_config(origin.addr, "ip")
        .server("trusted_proxies = [\"127.0.0.1/32\"]")
        .ip_allow(&["198.51.100.0/24"])
        .build();
    let proxy = start_proxy(&text).await;
    let c = h1_client();
    let via_lb = send(
        c.get(proxy.url("/live/ch1/seg-7.ts"))
            .header("x-forwarded-for", "198.51.100.9"),
    )
    .await;
    assert_eq!(via_lb.status(), 200, "client named by a trusted proxy");
    let seen = origin.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.headers["x-forwarded-for"], "198.51.100.9, 127.0.0.1");
    // Without the header the peer itself is the client: not allowed.
    let direct = send(c.get(proxy.url("/live/ch1/index.m3u8"))).await;
    assert_eq!(direct.status(), 403);
    // A spoofed left-most entry does not help: the right-most untrusted one counts.
    let spoofed = send(
        c.get(proxy.url("/live/ch1/index.m3u8"))
            .header("x-forwarded-for", "198.51.100.9, 192.0.2.66"),
    )
    .await;
    assert_eq!(spoofed.status(), 403);
}
