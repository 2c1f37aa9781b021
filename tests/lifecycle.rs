//! The real `tollgate` binary driven the way an operator drives it: `run` with
//! a config file, signals (SIGTERM drains, SIGINT stops, SIGHUP reloads), the
//! JSON log on stderr, the admin listener, `healthcheck`, flags and exit codes.
//!
//! Every process listens on 127.0.0.1:0 and the real ports are read back from
//! its `listening` log lines. The origin is a real hyper server in the test.
//! Every wait is bounded (a deadline that fails the test), and no sleep stands
//! in for synchronisation: sleeps only space out the attempts of a poll.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup errors

mod common;

use std::fmt::Debug;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{OriginBody, TestOrigin, full};
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

/// Upper bound for anything a test waits for. Generous: the tests of this
/// file run in parallel, each with its own proxy process, on small machines.
const PATIENCE: Duration = Duration::from_secs(10);

/// Half of the stalled response: sent before the origin stalls, and after.
const HALF: usize = 64 * 1024;

/// `common::config_for` gives the origin a 1 s idle timeout; responses these
/// tests stall on purpose must outlive it, or the proxy would abort them.
const PATIENT_ORIGIN: (&str, &str) = ("idle_timeout = \"1s\"", "idle_timeout = \"30s\"");

/// The grace period the drain tests run with.
const GRACE_10S: (&str, &str) = ("shutdown_grace = \"5s\"", "shutdown_grace = \"10s\"");

const LIVE_2XX_PROXIED: &str =
    r#"tollgate_requests_total{route="live",status_class="2xx",code="proxied"}"#;
const LIVE_4XX_IP_DENIED: &str =
    r#"tollgate_requests_total{route="live",status_class="4xx",code="ip_denied"}"#;
const RELOAD_FAILURES: &str = r#"tollgate_config_reloads_total{result="failure"}"#;
const RELOAD_SUCCESSES: &str = r#"tollgate_config_reloads_total{result="success"}"#;

// ---------------------------------------------------------------------------
// Harness: the tollgate process, its log, configs, origins.
// ---------------------------------------------------------------------------

/// A deadline for a poll: [`Deadline::tick`] spaces out attempts and fails
/// the test, with the last thing seen, once the deadline has passed.
struct Deadline {
    end: Instant,
    what: String,
}

impl Deadline {
    fn new(within: Duration, what: impl Into<String>) -> Self {
        Self {
            end: Instant::now() + within,
            what: what.into(),
        }
    }

    async fn tick(&self, last_seen: impl Debug) {
        assert!(
            Instant::now() < self.end,
            "timed out waiting for {}; last seen: {last_seen:?}",
            self.what
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running `tollgate run -c <dir>/tollgate.toml`, killed when dropped
/// whatever happened to the test.
struct Tollgate {
    child: Child,
    pid: Pid,
    /// Log lines not consumed yet, in order.
    lines: mpsc::UnboundedReceiver<String>,
    /// Everything written to stderr so far.
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    http: SocketAddr,
    admin: SocketAddr,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Tollgate {
    fn drop(&mut self) {
        // Harmless when it already exited; kill_on_drop backs this up.
        let _ = self.child.start_kill();
    }
}

/// Forward stderr lines into `tx` and append them to `all`, until EOF.
async fn forward_lines(
    stderr: ChildStderr,
    tx: mpsc::UnboundedSender<String>,
    all: Arc<Mutex<String>>,
) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        {
            let mut all = all.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
        }
        // The test may have stopped listening; the text is kept in `all`.
        let _ = tx.send(line);
    }
}

/// The next JSON log line from `lines` that `pred` accepts (earlier lines are
/// consumed); fails the test after [`PATIENCE`] or when stderr closes.
async fn next_log_line(
    lines: &mut mpsc::UnboundedReceiver<String>,
    all: &Mutex<String>,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match timeout_at(deadline, lines.recv()).await {
            Ok(Some(line)) => {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && pred(&v)
                {
                    return v;
                }
            }
            Ok(None) => panic!(
                "tollgate's stderr closed before {what}; it wrote:\n{}",
                all.lock().unwrap()
            ),
            Err(_) => panic!(
                "no log line {what} within {PATIENCE:?}; tollgate wrote:\n{}",
                all.lock().unwrap()
            ),
        }
    }
}

/// Every stderr line that is JSON.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn is_message(v: &Value, message: &str) -> bool {
    v["message"] == message
}

fn is_access_line(v: &Value, path: &str) -> bool {
    v["target"] == "tollgate::access" && v["path"] == path
}

impl Tollgate {
    /// Write `toml` to a fresh `tollgate.toml`, run the binary on it and wait
    /// for its HTTP and admin listeners.
    async fn start(toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tollgate.toml");
        std::fs::write(&config, toml).unwrap();
        let mut child = Command::new(BIN)
            .arg("run")
            .arg("-c")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tollgate");
        let pid =
            Pid::from_raw(i32::try_from(child.id().expect("pid of a running child")).unwrap());
        let (tx, mut lines) = mpsc::unbounded_channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let reader = tokio::spawn(forward_lines(
            child.stderr.take().unwrap(),
            tx,
            stderr.clone(),
        ));
        let (mut http, mut admin) = (None, None);
        while http.is_none() || admin.is_none() {
            let v = next_log_line(&mut lines, &stderr, "\"listening\" (http and admin)", |v| {
                is_message(v, "listening")
            })
            .await;
            let addr: SocketAddr = v["addr"]
                .as_str()
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("listening line without a socket address: {v}"));
            match v["listener"].as_str() {
                Some("http") => http = Some(addr),
                Some("admin") => admin = Some(addr),
                _ => {}
            }
        }
        Self {
            child,
            pid,
            lines,
            stderr,
            reader: Some(reader),
            http: http.unwrap(),
            admin: admin.unwrap(),
            config,
            dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    fn signal(&self, signal: Signal) {
        kill(self.pid, signal).unwrap_or_else(|e| panic!("kill -{signal} {}: {e}", self.pid));
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn stderr_so_far(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The next log line `pred` accepts.
    async fn log_line(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        next_log_line(&mut self.lines, &self.stderr, what, pred).await
    }

    /// Wait for the process to exit, at most `within`.
    async fn exit_within(&mut self, within: Duration) -> ExitStatus {
        match timeout(within, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!(
                "tollgate still running {within:?} later; it wrote:\n{}",
                self.stderr_so_far()
            ),
        }
    }

    /// Everything the exited process wrote to stderr.
    async fn stderr_after_exit(&mut self) -> String {
        if let Some(reader) = self.reader.take() {
            timeout(PATIENCE, reader)
                .await
                .expect("stderr still open after exit")
                .unwrap();
        }
        self.stderr_so_far()
    }

    fn rewrite_config(&self, toml: &str) {
        std::fs::write(&self.config, toml).unwrap();
    }

    async fn metrics(&self, client: &reqwest::Client) -> String {
        let resp = client.get(self.admin_url("/metrics")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.unwrap()
    }
}

/// `common::config_for(origin, "")` with each `(from, to)` replaced once;
/// fails if `from` is missing so a change to the template cannot silently
/// turn an edit into a no-op.
fn config(origin: SocketAddr, edits: &[(&str, &str)]) -> String {
    let mut text = common::config_for(origin, "");
    for (from, to) in edits {
        assert!(text.contains(from), "config_for has no {from:?}:\n{text}");
        text = text.replacen(from, to, 1);
    }
    text
}

/// An origin answering every request with 200 `origin saw <path?query>`.
async fn echo_origin() -> TestOrigin {
    common::start_origin(|req: Request<Incoming>| async move {
        let target = req
            .uri()
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default();
        Response::new(full(format!("origin saw {target}")))
    })
    .await
}

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

async fn get(client: &reqwest::Client, url: &str) -> (StatusCode, Bytes) {
    let resp = client.get(url).send().await.unwrap();
    (resp.status(), resp.bytes().await.unwrap())
}

/// An HTTP/1.1 client whose every request, body included, is bounded.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

/// Run `tollgate <args>` to completion (bounded) and return its output.
async fn tollgate_cmd(args: &[&str]) -> Output {
    let run = Command::new(BIN)
        .args(args)
        .env_remove("TOLLGATE_CONFIG")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    timeout(PATIENCE, run)
        .await
        .unwrap_or_else(|_| panic!("tollgate {args:?} still running after {PATIENCE:?}"))
        .expect("spawn tollgate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------
// Signals.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_then_refuses_new_connections_and_exits_0() {
    let payload = Bytes::from(common::pattern(2 * HALF));
    let release = Arc::new(Notify::new());
    let origin = stalling_origin(payload.clone(), release.clone()).await;
    let mut tg = Tollgate::start(&config(origin.addr, &[PATIENT_ORIGIN, GRACE_10S])).await;
    let client = client();

    let mut resp = client
        .get(tg.url("/live/ch1/slow.ts"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut received = read_at_least(&mut resp, HALF).await;
    assert!(received == payload[..HALF], "first half: wrong bytes");

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
    let payload = Bytes::from(common::pattern(2 * HALF));
    let release = Arc::new(Notify::new());
    let origin = stalling_origin(payload.clone(), release.clone()).await;
    let mut tg = Tollgate::start(&config(origin.addr, &[PATIENT_ORIGIN, GRACE_10S])).await;
    let client = client();

    let mut resp = client
        .get(tg.url("/live/ch1/slow.ts"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let received = read_at_least(&mut resp, HALF).await;
    assert!(received == payload[..HALF], "first half: wrong bytes");

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

// ---------------------------------------------------------------------------
// Access log and metrics.
// ---------------------------------------------------------------------------

const PLAYLIST: &str =
    "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nmedia.m3u8\n";
const SECRETS: [&str; 3] = ["SECRET123", "CAP456", "XYZ"];

#[tokio::test(flavor = "multi_thread")]
async fn access_log_has_no_credentials_and_metrics_move() {
    let origin =
        common::start_origin(|_req: Request<Incoming>| async { Response::new(full(PLAYLIST)) })
            .await;
    let mut tg = Tollgate::start(&config(origin.addr, &[])).await;
    let client = client();

    let url = tg.url("/live/ch1/index.m3u8?token=SECRET123&tg=CAP456&lang=en&wmsAuthSign=XYZ");
    let (status, body) = get(&client, &url).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, PLAYLIST.as_bytes()));

    // The origin never sees the viewer's credentials, in the query or elsewhere.
    let seen = origin.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path_and_query, "/live/ch1/index.m3u8?lang=en");
    for (name, value) in &seen[0].headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        assert!(
            !SECRETS.iter().any(|s| value.contains(s)),
            "origin got {name}: {value}"
        );
    }

    let line = tg
        .log_line("access line for index.m3u8", |v| {
            v["target"] == "tollgate::access"
                && v["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("/live/ch1/index.m3u8"))
        })
        .await;
    assert_eq!(line["path"], "/live/ch1/index.m3u8?lang=en", "{line}");
    assert_eq!(line["method"], "GET", "{line}");
    assert_eq!(line["client_ip"], "127.0.0.1", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["code"], "proxied", "{line}");
    assert_eq!(line["origin_status"], 200, "{line}");
    assert_eq!(line["route"], "live", "{line}");
    assert_eq!(line["channel"], "ch1", "{line}");
    assert_eq!(line["bytes"], PLAYLIST.len(), "{line}");
    assert_eq!(line["end"], "complete", "{line}");
    assert!(
        line["duration_ms"].is_number() && line["origin_ms"].is_number(),
        "{line}"
    );

    // The access line is written after the request's counters move, so once
    // it is seen the metrics are final: no polling needed.
    let before = common::metric(&tg.metrics(&client).await, LIVE_2XX_PROXIED);
    assert!(before >= 1.0, "the first request was not counted");
    let paths = [
        "/live/ch1/a.ts",
        "/live/ch2/b.ts",
        "/live/ch1/index.m3u8?lang=de",
    ];
    for path in paths {
        assert_eq!(get(&client, &tg.url(path)).await.0, StatusCode::OK);
        tg.log_line(&format!("access line for {path}"), |v| {
            is_access_line(v, path)
        })
        .await;
    }
    let after = common::metric(&tg.metrics(&client).await, LIVE_2XX_PROXIED);
    assert_eq!(after - before, paths.len() as f64);

    tg.signal(Signal::SIGTERM);
    assert_eq!(tg.exit_within(PATIENCE).await.code(), Some(0));
    let log = tg.stderr_after_exit().await;
    assert!(
        json_lines(&log)
            .iter()
            .any(|v| v["target"] == "tollgate::access"),
        "no access lines:\n{log}"
    );
    for secret in SECRETS {
        assert!(!log.contains(secret), "stderr holds {secret}:\n{log}");
    }

    // A request refused by the deny list is counted with its code, and never
    // reaches the origin.
    let denied = config(
        origin.addr,
        &[(
            "allow = [\"127.0.0.0/8\"]",
            "allow = [\"127.0.0.0/8\"]\ndeny = [\"127.0.0.0/8\"]",
        )],
    );
    let mut tg = Tollgate::start(&denied).await;
    let (status, body) = get(&client, &tg.url("/live/ch1/index.m3u8")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        serde_json::json!({"error": "ip_denied"})
    );
    let line = tg
        .log_line("access line for the denied request", |v| {
            is_access_line(v, "/live/ch1/index.m3u8")
        })
        .await;
    assert_eq!(
        (&line["status"], &line["code"]),
        (&Value::from(403), &Value::from("ip_denied")),
        "{line}"
    );
    let metrics = tg.metrics(&client).await;
    assert_eq!(
        common::metric(&metrics, LIVE_4XX_IP_DENIED),
        1.0,
        "{metrics}"
    );
    assert_eq!(common::metric(&metrics, LIVE_2XX_PROXIED), 0.0, "{metrics}");
    assert_eq!(
        origin.seen.lock().unwrap().len(),
        1 + paths.len(),
        "a denied request reached the origin"
    );
}

// ---------------------------------------------------------------------------
// Commands, flags and exit codes.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn healthcheck_command() {
    let origin = echo_origin().await;
    let tg = Tollgate::start(&config(origin.addr, &[])).await;

    let readyz = tg.admin_url("/readyz");
    let out = tollgate_cmd(&["healthcheck", "--url", &readyz]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // Answering but not 200 is unhealthy.
    let out = tollgate_cmd(&["healthcheck", "--url", &tg.admin_url("/no-such-page")]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    // Nothing listening is unhealthy, and says which URL failed.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let closed_url = format!("http://{closed}/readyz");
    let out = tollgate_cmd(&["healthcheck", "--url", &closed_url]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&closed_url),
        "{}",
        text(&out.stderr)
    );

    // Without --url, the probe goes to the config's admin.listen.
    let admin = format!("[admin]\nlisten = \"{}\"", tg.admin);
    let with_admin = config(
        origin.addr,
        &[("[admin]\nlisten = \"127.0.0.1:0\"", &admin)],
    );
    let path = tg.dir.path().join("healthcheck.toml");
    std::fs::write(&path, with_admin).unwrap();
    let out = tollgate_cmd(&["healthcheck", "-c", path.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn run_with_bad_config_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let out = tollgate_cmd(&["run", "-c", missing.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot read config file"),
        "{}",
        text(&out.stderr)
    );

    // A config that parses but does not validate: every error with its key path.
    let bad = dir.path().join("bad.toml");
    let toml = config(
        "127.0.0.1:9".parse().unwrap(),
        &[("origin = \"o\"", "origin = \"nope\"")],
    );
    std::fs::write(&bad, toml).unwrap();
    let out = tollgate_cmd(&["run", "-c", bad.to_str().unwrap()]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("route[0].origin"), "{stderr}");
    assert!(
        !stderr.contains("\"listening\""),
        "started serving a bad config:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn version_and_help() {
    let out = tollgate_cmd(&["--version"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("tollgate {}", env!("CARGO_PKG_VERSION"))
    );

    let out = tollgate_cmd(&["--help"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let help = text(&out.stdout);
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .filter_map(|l| l.strip_prefix("  ")?.split_whitespace().next())
        .collect();
    for command in ["run", "check", "healthcheck", "demo"] {
        assert!(
            commands.contains(&command),
            "--help does not list {command}:\n{help}"
        );
    }
}
