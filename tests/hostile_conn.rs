//! Hostile connections against the real binary (SPEC §6, first point): idle
//! and partial-head sockets, an h2c preface left idle, a TLS connection that
//! never sends a request, idle keep-alive and h2 connections, floods on the
//! viewer and admin listeners, the per-address cap, the header-count limit
//! on HTTP/2, and connection budgets resized by SIGHUP. A long streaming
//! response is shown not to be cut by the same timers.
//!
//! Timing: the only thresholds are the ones the contract names (a viewer is
//! served within `header_read_timeout` + 1 s of a flood) and generous upper
//! bounds ([`PATIENCE`]); the reason a socket closed is read from
//! `tollgate_connections_timed_out_total`, not inferred from a clock.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::process::{PATIENCE, Tollgate, client, is_message, json_lines};
use common::*;
use http::Response;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

const OTHER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const PARTIAL_HEAD: &[u8] = b"GET /live/ch1/a.ts HTTP/1.1\r\nHost: edge\r\nX-Slow: ";
const H2_PREFACE_AND_SETTINGS: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// `config_for` with `server` lines added to `[server]` and `admin` lines to
/// `[admin]`.
fn conf(origin: SocketAddr, server: &str, admin: &str) -> String {
    loopback_config(origin, "ip")
        .server(server)
        .admin_keys(admin)
        .build()
}

/// A tollgate process with [`conf`].
async fn start(origin: SocketAddr, server: &str, admin: &str) -> Tollgate {
    Tollgate::start(&conf(origin, server, admin)).await
}

/// The `[server]` keys of the send-timeout tests: one viewer slot, a 2 s
/// `send_timeout` and the other timers far away.
const ONE_SLOT_SEND_TIMEOUT: &str = "max_connections = 1\nsend_timeout = \"2s\"\nheader_read_timeout = \"60s\"\nidle_timeout = \"60s\"";
const SEND_TIMEOUT: Duration = Duration::from_secs(2);

async fn ok_origin() -> TestOrigin {
    start_origin(|_req| async { Response::new(full("ok")) }).await
}

async fn connect_from(addr: SocketAddr, from: Option<IpAddr>) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(ip) = from {
        socket.bind(SocketAddr::new(ip, 0)).unwrap();
    }
    socket.connect(addr).await.unwrap()
}

/// A connection to `addr` with a 4 KiB receive buffer (so a response it
/// does not read soon stalls the sender).
async fn small_buffer_connect(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

/// `n` connections that send nothing.
async fn silent(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    held
}

/// `n` connections that send part of a request head and stop.
async fn partial(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(PARTIAL_HEAD).await.unwrap();
        held.push(s);
    }
    held
}

/// What one `GET path` with `Connection: close` got.
#[derive(Debug, PartialEq)]
enum Answer {
    /// A response with this status.
    Status(u16),
    /// The connection closed without a byte of response (refused at accept).
    Closed,
    /// Neither within the patience given.
    Nothing,
}

async fn get_once(addr: SocketAddr, from: Option<IpAddr>, path: &str, within: Duration) -> Answer {
    let attempt = async {
        let mut s = connect_from(addr, from).await;
        let head = format!("GET {path} HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n");
        // A refused connection may be reset before or after the write.
        let _ = s.write_all(head.as_bytes()).await;
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got).await;
        let text = String::from_utf8_lossy(&got);
        match text.strip_prefix("HTTP/1.1 ").and_then(|t| t.get(..3)) {
            Some(code) => Answer::Status(code.parse().unwrap()),
            None if got.is_empty() => Answer::Closed,
            None => panic!("not an HTTP/1.1 response: {text:?}"),
        }
    };
    timeout(within, attempt).await.unwrap_or(Answer::Nothing)
}

/// [`get_once`] from 127.0.0.1, within [`PATIENCE`].
async fn once(addr: SocketAddr, path: &str) -> Answer {
    get_once(addr, None, path, PATIENCE).await
}

/// [`get_once`] from [`OTHER_IP`], within [`PATIENCE`].
async fn once_from_other_ip(addr: SocketAddr, path: &str) -> Answer {
    get_once(addr, Some(OTHER_IP), path, PATIENCE).await
}

/// Retry `GET path` until it is answered (not refused); fails at `deadline`.
async fn served_by(addr: SocketAddr, path: &str, deadline: Instant, what: &str) -> u16 {
    let mut last = Answer::Nothing;
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match get_once(addr, None, path, left).await {
            Answer::Status(code) => return code,
            other => last = other,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} not served in time; last attempt: {last:?}");
}

/// Read until EOF or `limit`; true when the peer closed the connection.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

async fn all_closed_within(held: &mut [TcpStream], limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    for (i, s) in held.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(closed_within(s, left).await, "{what} #{i} still open");
    }
}

fn timed_out(metrics: &str, listener: &str, timer: &str) -> f64 {
    metric(
        metrics,
        &format!(
            "tollgate_connections_timed_out_total{{listener=\"{listener}\",timer=\"{timer}\"}}"
        ),
    )
}

/// Poll `/metrics` until `listener` counts at least `n` connections closed
/// by `timer`; the metrics then.
async fn timeouts_reach(tg: &Tollgate, listener: &str, timer: &str, n: f64) -> String {
    let what = format!("{n} {listener} {timer} closes");
    metrics_until(tg, &what, |m| timed_out(m, listener, timer) >= n).await
}

/// Poll the admin `/metrics` until `f` accepts it.
async fn metrics_until(tg: &Tollgate, what: &str, f: impl Fn(&str) -> bool) -> String {
    let client = client();
    eventually(what, async || {
        let m = tg.metrics(&client).await;
        if f(&m) { Ok(m) } else { Err(m) }
    })
    .await
}

/// The header-read timeout of the flood tests.
const FLOOD_HRT: Duration = Duration::from_secs(2);

/// Flood `addr` with `n` sockets (every third a partial head, the others
/// silent) and show the budget is full; then a `GET path` (`what`) is
/// served within [`FLOOD_HRT`] and a second of the flood. The flood's
/// sockets, still held.
async fn flood(addr: SocketAddr, n: usize, path: &str, what: &str) -> Vec<TcpStream> {
    let mut held = silent(addr, n - n / 3).await;
    held.extend(partial(addr, n / 3).await);
    // Accepted in order: the probe comes after the whole flood, so when it
    // is refused every flood socket holds a slot.
    let probe = get_once(addr, None, path, PATIENCE).await;
    let flooded = Instant::now();
    assert_eq!(probe, Answer::Closed, "the flood did not fill the budget");
    let code = served_by(
        addr,
        path,
        flooded + FLOOD_HRT + Duration::from_secs(1),
        what,
    )
    .await;
    assert_eq!(code, 200);
    held
}

/// After a client held `tg`'s only viewer slot from `asked` on, `who`'s
/// connection is closed by [`SEND_TIMEOUT`] (counted on `listener`) and a
/// viewer is served again within a margin.
async fn served_after_send_timeout(tg: &Tollgate, asked: Instant, who: &str, listener: &str) {
    let code = served_by(
        tg.http,
        "/live/ch1/a.ts",
        asked + SEND_TIMEOUT + Duration::from_secs(10),
        &format!("a viewer after {who}'s send_timeout"),
    )
    .await;
    assert_eq!(code, 200);
    timeouts_reach(tg, listener, "send_timeout", 1.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_and_partial_sockets_up_to_the_cap_do_not_lock_out_a_viewer() {
    let origin = ok_origin().await;
    let mut tg = start(
        origin.addr,
        "max_connections = 50\nheader_read_timeout = \"2s\"",
        "",
    )
    .await;
    let mut held = flood(
        tg.http,
        50,
        "/live/ch1/a.ts",
        "a viewer during a flood of 50 idle sockets",
    )
    .await;
    all_closed_within(&mut held, PATIENCE, "flood socket").await;
    let m = timeouts_reach(&tg, "http", "header_read_timeout", 50.0).await;
    assert!(
        metric(&m, "tollgate_connections_rejected_total") >= 1.0,
        "{m}"
    );
    assert!(tg.is_running());
}

#[tokio::test(flavor = "multi_thread")]
async fn h2c_preface_then_idle_is_closed() {
    let origin = ok_origin().await;
    let tg = start(origin.addr, "header_read_timeout = \"1s\"", "").await;
    let mut s = TcpStream::connect(tg.http).await.unwrap();
    s.write_all(H2_PREFACE_AND_SETTINGS).await.unwrap();
    assert!(
        closed_within(&mut s, PATIENCE).await,
        "an h2c connection idle after its preface stayed open"
    );
    timeouts_reach(&tg, "http", "header_read_timeout", 1.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_connection_that_sends_no_request_is_closed() {
    let origin = ok_origin().await;
    let edge = tls_edge(origin.addr, "header_read_timeout = \"1s\"").await;
    // The handshake completes, then nothing: the head timer started at accept.
    let mut conn = edge
        .handshake(TcpStream::connect(edge.https).await.unwrap())
        .await;
    let mut buf = [0u8; 1024];
    let closed = timeout(PATIENCE, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "a TLS connection without a request stayed open"
    );
    // A socket that never starts the handshake goes the same way.
    let mut silent = TcpStream::connect(edge.https).await.unwrap();
    assert!(closed_within(&mut silent, PATIENCE).await);
    timeouts_reach(&edge.tg, "https", "header_read_timeout", 2.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_keep_alive_and_h2_connections_are_closed_after_idle_timeout() {
    let origin = ok_origin().await;
    let tg = start(
        origin.addr,
        "idle_timeout = \"1s\"\nheader_read_timeout = \"30s\"",
        "",
    )
    .await;
    // HTTP/1.1 keep-alive: one request, then silence.
    let mut s = TcpStream::connect(tg.http).await.unwrap();
    s.write_all(b"GET /live/ch1/a.ts HTTP/1.1\r\nHost: edge\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    assert!(
        closed_within(&mut s, PATIENCE).await,
        "an idle keep-alive connection stayed open"
    );
    // h2c: the client keeps its connection pooled; the edge ends it.
    let h2 = h2c_client();
    let r = send(h2.get(tg.url("/live/ch1/a.ts"))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), http::Version::HTTP_2);
    drop(r);
    metrics_until(&tg, "both connections closed by idle_timeout", |m| {
        timed_out(m, "http", "idle_timeout") >= 2.0
            && metric(m, "tollgate_open_connections{listener=\"http\"}") == 0.0
    })
    .await;
    // Nothing was cut by the header timer: both had sent a request.
    let m = tg.metrics(&client()).await;
    assert_eq!(timed_out(&m, "http", "header_read_timeout"), 0.0, "{m}");
    drop(h2);
}

const CHUNKS: usize = 12;
const CHUNK: usize = 1000;

/// An origin that streams every response as [`CHUNKS`] chunks 300 ms apart:
/// well past both lifetime timers in all, each gap below the origin's 1 s
/// read-idle timeout.
async fn pacing_origin() -> TestOrigin {
    start_origin(|_req| async {
        let (tx, mut rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
        tokio::spawn(async move {
            for i in 0..CHUNKS {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let chunk = Bytes::from(vec![b'a' + (i as u8); CHUNK]);
                if tx.send(Ok(Frame::data(chunk))).await.is_err() {
                    return;
                }
            }
        });
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Response::new(StreamBody::new(stream).boxed())
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_streaming_response_is_not_cut_by_the_timers() {
    let origin = pacing_origin().await;
    let tg = start(
        origin.addr,
        "idle_timeout = \"1s\"\nheader_read_timeout = \"1s\"",
        "",
    )
    .await;
    let read = async |c: reqwest::Client| {
        let started = Instant::now();
        let mut resp = send(c.get(tg.url("/live/ch1/long.ts"))).await;
        assert_eq!(resp.status(), 200);
        let version = resp.version();
        let mut got = 0;
        while let Some(chunk) = timeout(PATIENCE, resp.chunk()).await.unwrap().unwrap() {
            got += chunk.len();
        }
        (version, got, started.elapsed())
    };
    let (h1, h2) = tokio::join!(read(client()), read(h2c_client()));
    for (want, (version, got, took)) in [(http::Version::HTTP_11, h1), (http::Version::HTTP_2, h2)]
    {
        assert_eq!(version, want);
        assert_eq!(got, CHUNKS * CHUNK, "{version:?}: the stream was cut");
        assert!(
            took > Duration::from_secs(2),
            "{version:?}: not paced: {took:?}"
        );
    }
    let m = tg.metrics(&client()).await;
    assert_eq!(timed_out(&m, "http", "header_read_timeout"), 0.0, "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_on_the_admin_listener_is_capped_and_timed_out() {
    let origin = ok_origin().await;
    let tg = start(
        origin.addr,
        "header_read_timeout = \"2s\"",
        "max_connections = 20",
    )
    .await;
    let mut held = flood(
        tg.admin,
        20,
        "/livez",
        "/livez during a flood of the admin listener",
    )
    .await;
    all_closed_within(&mut held, PATIENCE, "admin flood socket").await;
    timeouts_reach(&tg, "admin", "header_read_timeout", 20.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_is_capped_by_max_connections_per_ip() {
    let origin = ok_origin().await;
    let tg = start(
        origin.addr,
        "max_connections_per_ip = 3\nheader_read_timeout = \"60s\"",
        "",
    )
    .await;
    let mut held = silent(tg.http, 3).await;
    let path = "/live/ch1/a.ts";
    assert_eq!(once(tg.http, path).await, Answer::Closed);
    assert_eq!(
        once_from_other_ip(tg.http, path).await,
        Answer::Status(200),
        "another address was refused"
    );
    // A freed slot serves the first address again.
    drop(held.pop());
    let code = served_by(tg.http, path, Instant::now() + PATIENCE, "a freed slot").await;
    assert_eq!(code, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn header_count_limit_answers_431_on_http2_as_on_http1() {
    let origin = ok_origin().await;
    let tg = start(origin.addr, "max_headers = 20", "").await;
    let with_headers = |n: usize| {
        let mut h = http::HeaderMap::new();
        for i in 0..n {
            h.insert(
                http::HeaderName::try_from(format!("x-h{i}")).unwrap(),
                http::HeaderValue::from_static("v"),
            );
        }
        h
    };
    for (name, c) in [("h1", client()), ("h2", h2c_client())] {
        let r = send(c.get(tg.url("/live/ch1/a.ts")).headers(with_headers(30))).await;
        assert_eq!(r.status(), 431, "{name}: 30 header fields");
        let r = send(c.get(tg.url("/live/ch1/a.ts")).headers(with_headers(5))).await;
        assert_eq!(r.status(), 200, "{name}: 5 header fields");
    }
    // The origin never saw the oversized requests.
    assert_eq!(origin.seen_paths().len(), 2, "{:?}", origin.seen_paths());
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_resizes_the_connection_budgets() {
    let origin = ok_origin().await;
    let before = conf(
        origin.addr,
        "max_connections = 3\nheader_read_timeout = \"60s\"",
        "max_connections = 2",
    );
    let mut tg = Tollgate::start(&before).await;
    let path = "/live/ch1/a.ts";
    let _viewers = silent(tg.http, 3).await;
    let mut admins = silent(tg.admin, 2).await;
    assert_eq!(once(tg.http, path).await, Answer::Closed);
    assert_eq!(once(tg.admin, "/livez").await, Answer::Closed);

    tg.rewrite_config(&conf(
        origin.addr,
        "max_connections = 10\nmax_connections_per_ip = 4\nheader_read_timeout = \"60s\"",
        "max_connections = 3",
    ));
    tg.signal(Signal::SIGHUP);
    tg.log_line("\"configuration reloaded\"", |v| {
        is_message(v, "configuration reloaded")
    })
    .await;
    // Larger admin cap: a third admin connection is served.
    assert_eq!(once(tg.admin, "/livez").await, Answer::Status(200));
    admins.clear();
    // Larger total: served while the three are still held.
    assert_eq!(once(tg.http, path).await, Answer::Status(200));
    // The new per-address cap counts the connections already open.
    metrics_until(&tg, "the probe's connection released", |m| {
        metric(m, "tollgate_open_connections{listener=\"http\"}") == 3.0
    })
    .await;
    let _fourth = silent(tg.http, 1).await;
    assert_eq!(once(tg.http, path).await, Answer::Closed);
    assert_eq!(once_from_other_ip(tg.http, path).await, Answer::Status(200));
    // No warning that the change waits for a restart.
    assert!(
        !tg.stderr_so_far()
            .contains("only take effect after a restart"),
        "{}",
        tg.stderr_so_far()
    );
}

/// Size of the response the send-timeout tests ask for: far more than the
/// socket buffers on both sides hold.
const BIG: usize = 8 << 20;
const BIG_PATH: &str = "/live/ch1/big.ts";

/// An origin answering [`BIG_PATH`] with [`BIG`] bytes and anything else
/// with `ok`.
async fn big_origin() -> TestOrigin {
    let big = Bytes::from(vec![b'x'; BIG]);
    start_origin(move |req| {
        let big = big.clone();
        async move {
            if req.uri().path() == BIG_PATH {
                Response::new(full(big))
            } else {
                Response::new(full("ok"))
            }
        }
    })
    .await
}

/// A client asks for a big response and never reads it: with
/// `send_timeout = 2s` its connection is closed and its slot (the only one)
/// serves a new viewer within send_timeout + a generous margin.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_is_closed_after_send_timeout() {
    let origin = big_origin().await;
    let tg = start(origin.addr, ONE_SLOT_SEND_TIMEOUT, "").await;
    let mut held = small_buffer_connect(tg.http).await;
    let head = format!("GET {BIG_PATH} HTTP/1.1\r\nHost: edge\r\n\r\n");
    held.write_all(head.as_bytes()).await.unwrap();
    let asked = Instant::now();
    // It holds the only slot.
    assert_eq!(once(tg.http, "/live/ch1/a.ts").await, Answer::Closed);
    served_after_send_timeout(&tg, asked, "the non-reading client", "http").await;
    assert!(
        closed_within(&mut held, PATIENCE).await,
        "the non-reading client's connection is still open"
    );
}

/// A slow reader that keeps taking bytes (64 KiB every 500 ms: on loopback
/// the receiver reopens its window only once about one 64 KiB MSS is free)
/// for 5 × send_timeout is not cut, and then gets the whole response.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_but_reading_client_is_not_cut_by_send_timeout() {
    let origin = big_origin().await;
    let tg = start(
        origin.addr,
        "send_timeout = \"2s\"\nheader_read_timeout = \"60s\"\nidle_timeout = \"60s\"",
        "",
    )
    .await;
    let mut s = TcpStream::connect(tg.http).await.unwrap();
    let head = format!("GET {BIG_PATH} HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let slow_until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < slow_until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let n = timeout(PATIENCE, s.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "cut after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.len() < BIG, "not slow: {} bytes already", got.len());
    timeout(PATIENCE, s.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        &got[..got.len().min(64)]
    );
    assert!(got.len() > BIG, "cut: {} bytes", got.len());
    let m = tg.metrics(&client()).await;
    assert_eq!(timed_out(&m, "http", "send_timeout"), 0.0, "{m}");
}

/// HTTP/2: a client that keeps reading its socket (so no write ever waits)
/// but grants no flow-control window for a big response stalls it all the
/// same; with `send_timeout = 2s` the connection is closed and its slot
/// (the only one) serves a new viewer.
#[tokio::test(flavor = "multi_thread")]
async fn an_h2_client_that_grants_no_window_is_closed_after_send_timeout() {
    let origin = big_origin().await;
    let tg = start(origin.addr, ONE_SLOT_SEND_TIMEOUT, "").await;
    let tcp = TcpStream::connect(tg.http).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(65_535)
            .initial_connection_window_size(65_535)
            .adaptive_window(false)
            .handshake::<_, http_body_util::Empty<Bytes>>(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get(format!("http://edge{BIG_PATH}"))
        .body(http_body_util::Empty::new())
        .unwrap();
    // The body is never polled, so its window is never released.
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let asked = Instant::now();
    served_after_send_timeout(&tg, asked, "the h2 client", "http").await;
    // The client's connection ended too.
    let _ = timeout(PATIENCE, conn)
        .await
        .expect("the h2 connection is still open");
    drop(resp);
}

/// HTTPS: the same non-reading client over TLS is closed after
/// `send_timeout` (the stall is seen on the TCP socket under TLS), and the
/// viewer budget it held (the only slot) serves a new viewer.
#[tokio::test(flavor = "multi_thread")]
async fn a_tls_client_that_stops_reading_is_closed_after_send_timeout() {
    let origin = big_origin().await;
    let edge = tls_edge(origin.addr, ONE_SLOT_SEND_TIMEOUT).await;
    let mut conn = edge.handshake(small_buffer_connect(edge.https).await).await;
    let head = format!("GET {BIG_PATH} HTTP/1.1\r\nHost: edge\r\n\r\n");
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.flush().await.unwrap();
    let asked = Instant::now();
    served_after_send_timeout(&edge.tg, asked, "the TLS client", "https").await;
}

/// A tollgate with one HTTPS listener (a fresh self-signed `localhost`
/// certificate) besides its plain one, and a client connector trusting it.
struct TlsEdge {
    tg: Tollgate,
    https: SocketAddr,
    connector: tokio_rustls::TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
    _certs: common::tls::TestCert,
}

impl TlsEdge {
    /// The client side of a TLS handshake with the edge over `tcp`.
    async fn handshake(&self, tcp: TcpStream) -> tokio_rustls::client::TlsStream<TcpStream> {
        self.connector
            .connect(self.name.clone(), tcp)
            .await
            .unwrap()
    }
}

/// [`TlsEdge`] in front of `origin`, `server_keys` added to `[server]`.
async fn tls_edge(origin: SocketAddr, server_keys: &str) -> TlsEdge {
    let certs = common::tls::TestCert::new();
    let server = format!("{server_keys}\n{}", certs.listener_toml());
    let tg = start(origin, &server, "").await;
    let https: SocketAddr = json_lines(&tg.stderr_so_far())
        .iter()
        .find(|v| is_message(v, "listening") && v["listener"] == "https")
        .and_then(|v| v["addr"].as_str()?.parse().ok())
        .expect("an https listening line");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs.cert.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsEdge {
        tg,
        https,
        connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
        name: rustls::pki_types::ServerName::try_from("localhost").unwrap(),
        _certs: certs,
    }
}
