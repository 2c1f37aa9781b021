//! The real `tollgate` binary driven by signals, the way an operator drives
//! it: SIGTERM drains, SIGINT stops, SIGHUP reloads. Access log, metrics,
//! `healthcheck`, flags and exit codes are in `operate.rs`.
//!
//! Every process listens on 127.0.0.1:0 and the real ports are read back from
//! its `listening` log lines. The origin is a real hyper server in the test.
//! Every wait is bounded (a deadline that fails the test), and no sleep stands
//! in for synchronisation: sleeps only space out the attempts of a poll.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup errors

mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::Deadline;
use common::process::{
    PATIENCE, Tollgate, client, config, echo_origin, get, is_access_line, is_message, json_lines,
};
use common::{OriginBody, TestOrigin};
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use nix::sys::signal::Signal;
use serde_json::Value;
use tokio::sync::{Notify, mpsc};
use tokio::time::timeout;

/// Half of the stalled response: sent before the origin stalls, and after.
const HALF: usize = 64 * 1024;

/// `common::config_for` gives the origin a 1 s idle timeout; responses these
/// tests stall on purpose must outlive it, or the proxy would abort them.
const PATIENT_ORIGIN: (&str, &str) = ("idle_timeout = \"1s\"", "idle_timeout = \"30s\"");

/// The grace period the drain tests run with.
const GRACE_10S: (&str, &str) = ("shutdown_grace = \"5s\"", "shutdown_grace = \"10s\"");

const RELOAD_FAILURES: &str = r#"tollgate_config_reloads_total{result="failure"}"#;
const RELOAD_SUCCESSES: &str = r#"tollgate_config_reloads_total{result="success"}"#;

// ---------------------------------------------------------------------------
// Harness: a stalling origin and kept-alive connections.
// ---------------------------------------------------------------------------

/// An origin whose every response declares `payload.len()` bytes, sends the
/// first [`HALF`], then waits for `release` before sending the rest.
async fn stalling_origin(payload: Bytes, release: Arc<Notify>) -> TestOrigin {
    common::start_origin(move |_req: Request<Incoming>| {
        let (payload, release) = (payload.clone(), release.clone());
        async move { stalled_response(payload, release) }
    })
    .await
}

fn stalled_response(payload: Bytes, release: Arc<Notify>) -> Response<OriginBody> {
    let len = payload.len();
    let (tx, mut rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
    tokio::spawn(async move {
        if tx
            .send(Ok(Frame::data(payload.slice(..HALF))))
            .await
            .is_ok()
        {
            release.notified().await;
            let _ = tx.send(Ok(Frame::data(payload.slice(HALF..)))).await;
        }
    });
    let body = StreamBody::new(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let mut resp = Response::new(body.boxed());
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, len.into());
    resp
}

/// Read body chunks until at least `n` bytes arrived.
async fn read_at_least(resp: &mut reqwest::Response, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        let chunk = timeout(PATIENCE, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} bytes within {PATIENCE:?}", got.len()))
            .unwrap()
            .unwrap_or_else(|| panic!("body ended after {} of {n} bytes", got.len()));
        got.extend_from_slice(&chunk);
    }
    got
}

/// Read the rest of the body: `Ok(bytes)` when it ended cleanly, `Err` when
/// the connection broke before the declared length.
async fn read_rest(resp: &mut reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut got = Vec::new();
    let read = async {
        while let Some(chunk) = resp.chunk().await? {
            got.extend_from_slice(&chunk);
        }
        Ok(())
    };
    timeout(PATIENCE, read)
        .await
        .expect("body neither ended nor failed")?;
    Ok(got)
}

/// One HTTP/1.1 connection to `addr`, kept open across requests.
async fn h1_connection(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// GET `path` on `conn`; status and body.
async fn get_on(conn: &mut SendRequest<Empty<Bytes>>, path: &str) -> (StatusCode, Bytes) {
    let exchange = async {
        conn.ready()
            .await
            .expect("the kept-alive connection was closed");
        let req = Request::get(path)
            .header(header::HOST, "tollgate.test")
            .body(Empty::new())
            .unwrap();
        let resp = conn.send_request(req).await.unwrap();
        let status = resp.status();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    };
    timeout(PATIENCE, exchange)
        .await
        .expect("no answer on the kept-alive connection")
}

/// A tollgate (grace 10 s, patient with its origin) halfway through a
/// response whose origin stalls until `release` is notified.
struct MidResponse {
    tg: Tollgate,
    client: reqwest::Client,
    resp: reqwest::Response,
    /// The first [`HALF`] of `payload`, already checked.
    received: Vec<u8>,
    payload: Bytes,
    release: Arc<Notify>,
    origin: TestOrigin,
}

async fn mid_response() -> MidResponse {
    let payload = Bytes::from(common::pattern(2 * HALF));
    let release = Arc::new(Notify::new());
    let origin = stalling_origin(payload.clone(), release.clone()).await;
    let tg = Tollgate::start(&config(origin.addr, &[PATIENT_ORIGIN, GRACE_10S])).await;
    let client = client();

    let mut resp = client
        .get(tg.url("/live/ch1/slow.ts"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let received = read_at_least(&mut resp, HALF).await;
    assert!(received == payload[..HALF], "first half: wrong bytes");
    MidResponse {
        tg,
        client,
        resp,
        received,
        payload,
        release,
        origin,
    }
}

// ---------------------------------------------------------------------------
// Signals.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_then_refuses_new_connections_and_exits_0() {
    // In declaration order, so they drop like the locals they replace.
    let MidResponse {
        origin: _origin,
        payload,
        release,
        mut tg,
        client,
        mut resp,
        mut received,
    } = mid_response().await;

    tg.signal(Signal::SIGTERM);
    tg.log_line("\"draining\"", |v| is_message(v, "draining"))
        .await;

    // Orchestrators see the drain: the admin listener keeps answering, 503.
    let d = Deadline::new(PATIENCE, "/readyz to answer 503 while draining");
    loop {
        match client.get(tg.admin_url("/readyz")).send().await {
            Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => break,
            other => {
                assert!(
                    tg.is_running(),
                    "exited with a response in flight:\n{}",
                    tg.stderr_so_far()
                );
                d.tick(other.map(|r| r.status())).await;
            }
        }
    }
    // New viewers are turned away at the TCP level.
    let d = Deadline::new(PATIENCE, "new connections to the viewer port to be refused");
    loop {
        match tokio::net::TcpStream::connect(tg.http).await {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => break,
            other => d.tick(other.map(|_| "connected")).await,
        }
    }
    // The in-flight response holds the process up: it is not done yet.
    assert!(
        tg.is_running(),
        "exited with a response in flight:\n{}",
        tg.stderr_so_far()
    );

    release.notify_one();
    let rest = read_rest(&mut resp)
        .await
        .expect("the in-flight response was cut");
    received.extend_from_slice(&rest);
    assert_eq!(received.len(), payload.len());
    assert!(received == payload[..], "drained response: wrong bytes");

    let status = tg.exit_within(PATIENCE).await;
    let log = tg.stderr_after_exit().await;
    assert_eq!(status.code(), Some(0), "{log}");
    let lines = json_lines(&log);
    // It exited because the last response finished, not because grace ran out.
    assert!(
        lines
            .iter()
            .any(|v| is_message(v, "all connections finished")),
        "{log}"
    );
    assert!(
        !lines
            .iter()
            .any(|v| is_message(v, "grace period over; closing remaining connections")),
        "{log}"
    );
    let access = lines
        .iter()
        .find(|v| is_access_line(v, "/live/ch1/slow.ts"))
        .unwrap_or_else(|| panic!("no access-log line for the drained response:\n{log}"));
    assert_eq!(access["status"], 200, "{access}");
    assert_eq!(access["bytes"], 2 * HALF, "{access}");
    assert_eq!(access["end"], "complete", "{access}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_stops_at_once() {
    let MidResponse {
        origin: _origin,
        release,
        mut tg,
        client: _client,
        mut resp,
        ..
    } = mid_response().await;

    tg.signal(Signal::SIGINT);
    // The origin is never released, and the grace period is 10 s: exiting
    // within 5 s means SIGINT did not wait for the stalled response.
    let status = tg.exit_within(Duration::from_secs(5)).await;
    let log = tg.stderr_after_exit().await;
    assert!(status.success(), "{status:?}\n{log}");
    assert!(
        json_lines(&log)
            .iter()
            .any(|v| is_message(v, "stopping now")),
        "{log}"
    );

    // The viewer sees a cut response, never a complete-looking one.
    let rest = read_rest(&mut resp).await;
    assert!(
        rest.is_err(),
        "stalled response ended cleanly after SIGINT: {:?} more bytes",
        rest.map(|r| r.len())
    );
    release.notify_one();
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_adds_a_route_without_restart() {
    let origin = echo_origin().await;
    let toml = config(origin.addr, &[]);
    let mut tg = Tollgate::start(&toml).await;
    let client = client();
    let mut conn = h1_connection(tg.http).await;

    let (status, body) = get_on(&mut conn, "/live/ch1/x").await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, &b"origin saw /live/ch1/x"[..])
    );
    let (status, body) = get_on(&mut conn, "/vod/x").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error, serde_json::json!({"error": "no_route"}));

    tg.rewrite_config(&format!(
        "{toml}\n[[route]]\nname = \"vod\"\nprefix = \"/vod/\"\norigin = \"o\"\nauth = [\"ip\"]\n"
    ));
    tg.signal(Signal::SIGHUP);

    // The connection opened before the reload sees the new route.
    let d = Deadline::new(PATIENCE, "/vod/x to reach the origin after SIGHUP");
    loop {
        let (status, body) = get_on(&mut conn, "/vod/x").await;
        if status == StatusCode::OK {
            assert_eq!(&body[..], b"origin saw /vod/x");
            break;
        }
        d.tick((status, body)).await;
    }
    tg.log_line("\"configuration reloaded\"", |v| {
        is_message(v, "configuration reloaded")
    })
    .await;
    // Same process, same sockets: nothing restarted or re-bound.
    assert!(tg.is_running());
    let (status, _) = get(&client, &tg.url("/vod/y")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get_on(&mut conn, "/live/ch1/x").await;
    assert_eq!(status, StatusCode::OK);
    let listening = json_lines(&tg.stderr_so_far())
        .iter()
        .filter(|v| is_message(v, "listening"))
        .count();
    assert_eq!(
        listening,
        2,
        "listeners were bound again:\n{}",
        tg.stderr_so_far()
    );
    let metrics = tg.metrics(&client).await;
    assert_eq!(common::metric(&metrics, RELOAD_SUCCESSES), 1.0, "{metrics}");
    assert_eq!(common::metric(&metrics, RELOAD_FAILURES), 0.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_with_broken_config_keeps_serving_and_counts_failure() {
    let origin = echo_origin().await;
    let mut tg = Tollgate::start(&config(origin.addr, &[])).await;
    let client = client();
    assert_eq!(get(&client, &tg.url("/live/ch1/x")).await.0, StatusCode::OK);

    tg.rewrite_config("[[route]]\nname = 1\n");
    tg.signal(Signal::SIGHUP);

    let failed = format!("{RELOAD_FAILURES} 1");
    let d = Deadline::new(PATIENCE, format!("/metrics to show {failed}"));
    let metrics = loop {
        let metrics = tg.metrics(&client).await;
        if metrics.lines().any(|l| l == failed) {
            break metrics;
        }
        d.tick(
            metrics
                .lines()
                .find(|l| l.starts_with(RELOAD_FAILURES))
                .map(str::to_owned),
        )
        .await;
    };
    assert_eq!(common::metric(&metrics, RELOAD_SUCCESSES), 0.0, "{metrics}");
    let err = tg
        .log_line("\"reload failed\"", |v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("reload failed"))
        })
        .await;
    assert_eq!(err["level"], "ERROR", "{err}");
    assert!(
        err["errors"].as_str().is_some_and(|e| e.contains("route")),
        "error does not say where: {err}"
    );

    // The previous generation keeps serving.
    assert!(tg.is_running());
    let (status, body) = get(&client, &tg.url("/live/ch1/x")).await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, &b"origin saw /live/ch1/x"[..])
    );
    let (status, body) = get(&client, &tg.admin_url("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    let health: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["routes"], serde_json::json!(["live"]), "{health}");
}
