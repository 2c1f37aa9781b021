//! `tollgate demo` end to end, as a newcomer runs it: the real binary starts
//! the simulated origin and the proxy, prints a playable URL, and the real
//! ffmpeg decodes the live stream through the proxy.
//!
//! ffmpeg is required: without it the test fails and says how to install it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup errors

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout, timeout_at};

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

const FFMPEG_MISSING: &str =
    "ffmpeg not found: install it with `apt-get install -y ffmpeg` (scripts/test.sh does this)";

/// Bound for the demo's own steps (banner, listeners, metrics, exit).
const PATIENCE: Duration = Duration::from_secs(10);

/// Bound for ffmpeg fetching and decoding the stream.
const FFMPEG_PATIENCE: Duration = Duration::from_secs(60);

/// Frames ffmpeg must decode.
const FRAMES: u64 = 60;

const LIVE_REQUESTS: &str = r#"tollgate_requests_total{route="live","#;

/// Fail with the install hint when ffmpeg is not on PATH.
fn require_ffmpeg() {
    match std::process::Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) => assert!(status.success(), "`ffmpeg -version` failed: {status:?}"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{FFMPEG_MISSING}"),
        Err(e) => panic!("cannot run ffmpeg: {e}"),
    }
}

/// Forward the lines of `pipe` into `tx`, and keep them all in `all`.
fn forward_lines(
    pipe: impl AsyncRead + Unpin + Send + 'static,
    tx: mpsc::UnboundedSender<String>,
    all: Arc<Mutex<String>>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            {
                let mut all = all.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
            let _ = tx.send(line);
        }
    });
}

/// The running demo; killed when dropped, whatever happened to the test.
struct Demo {
    child: Child,
    stdout: mpsc::UnboundedReceiver<String>,
    stderr: mpsc::UnboundedReceiver<String>,
    /// Everything written to stdout and stderr so far, for failure messages.
    output: Arc<Mutex<String>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Demo {
    fn start() -> Self {
        let mut child = Command::new(BIN)
            .args(["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tollgate demo");
        let output = Arc::new(Mutex::new(String::new()));
        let (out_tx, stdout) = mpsc::unbounded_channel();
        let (err_tx, stderr) = mpsc::unbounded_channel();
        forward_lines(child.stdout.take().unwrap(), out_tx, output.clone());
        forward_lines(child.stderr.take().unwrap(), err_tx, output.clone());
        Self {
            child,
            stdout,
            stderr,
            output,
        }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// The first line of `which` stream for which `f` gives a value.
    async fn find_line<T>(
        which: &mut mpsc::UnboundedReceiver<String>,
        output: &Mutex<String>,
        what: &str,
        f: impl Fn(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match timeout_at(deadline, which.recv()).await {
                Ok(Some(line)) => {
                    if let Some(v) = f(&line) {
                        return v;
                    }
                }
                Ok(None) => panic!(
                    "demo output ended before {what}:\n{}",
                    output.lock().unwrap()
                ),
                Err(_) => panic!(
                    "no {what} within {PATIENCE:?}; demo wrote:\n{}",
                    output.lock().unwrap()
                ),
            }
        }
    }

    /// The playable proxy URL from the banner (`  ffplay http://…/index.m3u8`).
    async fn play_url(&mut self) -> String {
        Self::find_line(
            &mut self.stdout,
            &self.output,
            "ffplay URL in the banner",
            |line| {
                let url = line.trim().strip_prefix("ffplay ")?;
                (url.starts_with("http://") && url.ends_with("/index.m3u8")).then(|| url.to_owned())
            },
        )
        .await
    }

    /// The address of listener `kind` from its `listening` log line.
    async fn listener(&mut self, kind: &str) -> SocketAddr {
        Self::find_line(
            &mut self.stderr,
            &self.output,
            &format!("{kind} listening line"),
            |line| {
                let v: Value = serde_json::from_str(line).ok()?;
                (v["message"] == "listening" && v["listener"] == kind)
                    .then(|| v["addr"].as_str()?.parse().ok())
                    .flatten()
            },
        )
        .await
    }
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

/// Proxied requests on the `live` route, summed over status classes.
fn live_proxied(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(LIVE_REQUESTS) && l.contains(r#"code="proxied""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_plays_in_ffmpeg() {
    require_ffmpeg();
    let mut demo = Demo::start();
    let url = demo.play_url().await;
    let http = demo.listener("http").await;
    let admin = demo.listener("admin").await;
    assert!(
        url.starts_with(&format!("http://{http}/live/")),
        "banner URL {url} is not the proxy at {http}"
    );

    // Decode video frames through the proxy; `-progress` reports `frame=N`.
    let ffmpeg = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-progress", "pipe:1", "-i", &url])
        .args([
            "-map",
            "0:v:0",
            "-frames:v",
            &FRAMES.to_string(),
            "-f",
            "null",
            "-",
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match timeout(FFMPEG_PATIENCE, ffmpeg).await {
        Ok(out) => out.expect(FFMPEG_MISSING),
        Err(_) => panic!(
            "ffmpeg did not finish within {FFMPEG_PATIENCE:?} (killed); demo wrote:\n{}",
            demo.output()
        ),
    };
    let progress = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ffmpeg failed ({:?}):\n{errors}\ndemo wrote:\n{}",
        out.status,
        demo.output()
    );
    let frames: u64 = progress
        .lines()
        .filter_map(|l| l.strip_prefix("frame=")?.trim().parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no frame= in ffmpeg's progress:\n{progress}\n{errors}"));
    assert!(
        frames >= FRAMES,
        "ffmpeg decoded {frames} frames, wanted {FRAMES}:\n{errors}"
    );

    // The stream went through the proxy: master playlist, media playlist and
    // at least one segment, each counted when its body ended.
    let client = client();
    let metrics_url = format!("http://{admin}/metrics");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let metrics = client
            .get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let proxied = live_proxied(&metrics);
        if proxied >= 3.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{proxied} proxied live requests counted:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let pid = Pid::from_raw(i32::try_from(demo.child.id().expect("demo still running")).unwrap());
    kill(pid, Signal::SIGTERM).unwrap();
    let status = match timeout(PATIENCE, demo.child.wait()).await {
        Ok(status) => status.unwrap(),
        Err(_) => panic!(
            "demo still running {PATIENCE:?} after SIGTERM:\n{}",
            demo.output()
        ),
    };
    assert_eq!(status.code(), Some(0), "demo wrote:\n{}", demo.output());
}
