//! Harness for tests that drive the real `tollgate` binary as a child process.
//!
//! Owns: spawning the binary (stdin closed, killed on drop), capturing what it
//! writes line by line, waiting for a line with a deadline, signalling it, and
//! [`Tollgate`], a `tollgate run -c <file>` whose ports are read back from its
//! `listening` log lines. It must not sleep as synchronisation: the only sleep
//! is [`Deadline::tick`], which spaces out the attempts of a poll.
//!
//! Invariant: every wait is bounded, and a failed wait panics with everything
//! the process wrote so far, so a failure says what the process was doing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};

use super::{TestOrigin, full};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

/// Upper bound for anything a test waits for. Generous: test files run their
/// tests in parallel, each with its own process, on small machines.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The lines of one output stream not consumed yet, in order, plus the text
/// of everything the process wrote (all its streams) for failure messages.
pub struct Lines {
    /// Which stream, for failure messages: "tollgate stderr".
    source: String,
    rx: mpsc::UnboundedReceiver<String>,
    all: Arc<Mutex<String>>,
}

/// Forward the lines of `pipe` into the returned [`Lines`] and append each to
/// `all`, until EOF; the task ends then.
pub fn forward_lines(
    source: impl Into<String>,
    pipe: impl AsyncRead + Unpin + Send + 'static,
    all: Arc<Mutex<String>>,
) -> (Lines, JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let text = all.clone();
    let task = tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            {
                let mut text = text.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
            // The test may have stopped listening; the text is kept in `all`.
            let _ = tx.send(line);
        }
    });
    let source = source.into();
    (Lines { source, rx, all }, task)
}

impl Lines {
    /// The value `f` gives for the first next line it accepts (earlier lines
    /// are consumed); fails the test, with all the output, after `patience`
    /// or when the stream closes first.
    pub async fn next_matching<T>(
        &mut self,
        what: &str,
        patience: Duration,
        f: impl Fn(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + patience;
        loop {
            match timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(line)) => {
                    if let Some(v) = f(&line) {
                        return v;
                    }
                }
                Ok(None) => panic!(
                    "{} closed before {what}; the process wrote:\n{}",
                    self.source,
                    self.all.lock().unwrap()
                ),
                Err(_) => panic!(
                    "no {what} on {} within {patience:?}; the process wrote:\n{}",
                    self.source,
                    self.all.lock().unwrap()
                ),
            }
        }
    }

    /// The next JSON line `pred` accepts, within [`PATIENCE`].
    pub async fn next_json(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.next_json_within(what, PATIENCE, pred).await
    }

    /// The next JSON line `pred` accepts, within `patience`.
    pub async fn next_json_within(
        &mut self,
        what: &str,
        patience: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let what = format!("log line {what}");
        self.next_matching(&what, patience, |line| {
            serde_json::from_str(line).ok().filter(|v| pred(v))
        })
        .await
    }
}

/// `tollgate` with an info-level log and nothing on stdin.
pub fn tollgate_command() -> Command {
    let mut command = Command::new(BIN);
    command.env("RUST_LOG", "info").stdin(Stdio::null());
    command
}

/// A spawned child whose piped stdout and stderr are captured; killed when
/// dropped, whatever happened to the test.
pub struct Process {
    name: String,
    child: Child,
    pid: Pid,
    /// Lines of stdout, when `command` piped it.
    pub stdout: Option<Lines>,
    /// Lines of stderr, when `command` piped it.
    pub stderr: Option<Lines>,
    /// Everything written to the captured streams so far.
    output: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Drop for Process {
    fn drop(&mut self) {
        // Harmless when it already exited; kill_on_drop backs this up.
        let _ = self.child.start_kill();
    }
}

impl Process {
    /// Spawn `command` (called `name` in failure messages) with kill-on-drop.
    pub fn spawn(name: &str, command: &mut Command) -> Self {
        let mut child = command
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let pid =
            Pid::from_raw(i32::try_from(child.id().expect("pid of a running child")).unwrap());
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let stdout = child.stdout.take().map(|pipe| {
            let (lines, task) = forward_lines(format!("{name} stdout"), pipe, output.clone());
            readers.push(task);
            lines
        });
        let stderr = child.stderr.take().map(|pipe| {
            let (lines, task) = forward_lines(format!("{name} stderr"), pipe, output.clone());
            readers.push(task);
            lines
        });
        Self {
            name: name.to_owned(),
            child,
            pid,
            stdout,
            stderr,
            output,
            readers,
        }
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid, signal).unwrap_or_else(|e| panic!("kill -{signal} {}: {e}", self.pid));
    }

    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Everything written to the captured streams so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Wait for the process to exit, at most `within`.
    pub async fn exit_within(&mut self, within: Duration) -> ExitStatus {
        match timeout(within, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!(
                "{} still running {within:?} later; it wrote:\n{}",
                self.name,
                self.output()
            ),
        }
    }

    /// Everything the exited process wrote, once its streams are closed.
    pub async fn output_after_exit(&mut self) -> String {
        for reader in self.readers.drain(..) {
            timeout(PATIENCE, reader)
                .await
                .expect("output still open after exit")
                .unwrap();
        }
        self.output()
    }
}

/// A running `tollgate run -c <dir>/tollgate.toml`, its log on stderr.
pub struct Tollgate {
    process: Process,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    config: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Tollgate {
    /// Write `toml` to a fresh `tollgate.toml`, run the binary on it and wait
    /// for its HTTP and admin listeners.
    pub async fn start(toml: &str) -> Self {
        Self::start_within(toml, PATIENCE).await
    }

    /// [`Tollgate::start`] for a process that may take up to `patience` to
    /// listen (it loads a large state dir first).
    pub async fn start_within(toml: &str, patience: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tollgate.toml");
        std::fs::write(&config, toml).unwrap();
        let mut command = tollgate_command();
        command.arg("run").arg("-c").arg(&config);
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut process = Process::spawn("tollgate", &mut command);
        let log = process.stderr.as_mut().unwrap();
        let (mut http, mut admin) = (None, None);
        while http.is_none() || admin.is_none() {
            let v = log
                .next_json_within("\"listening\" (http and admin)", patience, |v| {
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
            process,
            http: http.unwrap(),
            admin: admin.unwrap(),
            config,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub fn signal(&self, signal: Signal) {
        self.process.signal(signal);
    }

    /// The process id of the running binary (for `/proc/<pid>/status`).
    pub fn pid(&self) -> i32 {
        self.process.pid()
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    pub fn stderr_so_far(&self) -> String {
        self.process.output()
    }

    /// The next log line `pred` accepts.
    pub async fn log_line(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let log = self.process.stderr.as_mut().unwrap();
        log.next_json(what, pred).await
    }

    pub async fn exit_within(&mut self, within: Duration) -> ExitStatus {
        self.process.exit_within(within).await
    }

    /// Everything the exited process wrote to stderr.
    pub async fn stderr_after_exit(&mut self) -> String {
        self.process.output_after_exit().await
    }

    pub fn rewrite_config(&self, toml: &str) {
        std::fs::write(&self.config, toml).unwrap();
    }

    pub async fn metrics(&self, client: &reqwest::Client) -> String {
        let resp = client.get(self.admin_url("/metrics")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.unwrap()
    }
}

impl super::Endpoints for Tollgate {
    fn url(&self, path: &str) -> String {
        Tollgate::url(self, path)
    }
    fn admin_url(&self, path: &str) -> String {
        Tollgate::admin_url(self, path)
    }
}

/// `super::config_for(origin, "")` with each `(from, to)` replaced once;
/// fails if `from` is missing so a change to the template cannot silently
/// turn an edit into a no-op.
pub fn config(origin: SocketAddr, edits: &[(&str, &str)]) -> String {
    let mut text = super::config_for(origin, "");
    for (from, to) in edits {
        assert!(text.contains(from), "config_for has no {from:?}:\n{text}");
        text = text.replacen(from, to, 1);
    }
    text
}

/// An origin answering every request with 200 `origin saw <path?query>`.
pub async fn echo_origin() -> TestOrigin {
    super::start_origin(|req: Request<Incoming>| async move {
        let target = req
            .uri()
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default();
        Response::new(full(format!("origin saw {target}")))
    })
    .await
}

/// Every line of `text` that is JSON.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub fn is_message(v: &Value, message: &str) -> bool {
    v["message"] == message
}

pub fn is_access_line(v: &Value, path: &str) -> bool {
    v["target"] == "tollgate::access" && v["path"] == path
}

/// An HTTP/1.1 client whose every request, body included, is bounded.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

pub async fn get(client: &reqwest::Client, url: &str) -> (StatusCode, Bytes) {
    let resp = client.get(url).send().await.unwrap();
    (resp.status(), resp.bytes().await.unwrap())
}
