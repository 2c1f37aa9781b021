//! `tollgate demo` end to end, as a newcomer runs it: the real binary starts
//! the simulated origin and the proxy, prints a playable URL, and the real
//! ffmpeg decodes the live stream through the proxy.
//!
//! ffmpeg is required: without it the test fails and says how to install it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup errors

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use common::Deadline;
use common::media::{FFMPEG_MISSING, require_ffmpeg};
use common::process::{PATIENCE, Process, client, tollgate_command};
use nix::sys::signal::Signal;
use serde_json::Value;
use tokio::process::Command;
use tokio::time::timeout;

/// Bound for ffmpeg fetching and decoding the stream.
const FFMPEG_PATIENCE: Duration = Duration::from_secs(60);

/// Frames ffmpeg must decode.
const FRAMES: u64 = 60;

const LIVE_REQUESTS: &str = r#"tollgate_requests_total{route="live","#;

/// The running demo; killed when dropped, whatever happened to the test.
struct Demo {
    process: Process,
}

impl Demo {
    fn start() -> Self {
        let mut command = tollgate_command();
        command.args(["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        Self {
            process: Process::spawn("tollgate demo", &mut command),
        }
    }

    /// Everything written to stdout and stderr so far, for failure messages.
    fn output(&self) -> String {
        self.process.output()
    }

    /// The playable proxy URL from the banner (`  ffplay http://…/index.m3u8`).
    async fn play_url(&mut self) -> String {
        let stdout = self.process.stdout.as_mut().unwrap();
        stdout
            .next_matching("ffplay URL in the banner", PATIENCE, |line| {
                let url = line.trim().strip_prefix("ffplay ")?;
                (url.starts_with("http://") && url.ends_with("/index.m3u8")).then(|| url.to_owned())
            })
            .await
    }

    /// The next banner line `<prefix> http://…` whose URL contains `contains`.
    async fn banner_url(&mut self, prefix: &str, contains: &str) -> String {
        let stdout = self.process.stdout.as_mut().unwrap();
        stdout
            .next_matching(
                &format!("{prefix} {contains} URL in the banner"),
                PATIENCE,
                |line| {
                    let url = line.trim().strip_prefix(prefix)?.trim();
                    (url.starts_with("http://") && url.contains(contains)).then(|| url.to_owned())
                },
            )
            .await
    }

    /// The address of listener `kind` from its `listening` log line.
    async fn listener(&mut self, kind: &str) -> SocketAddr {
        let stderr = self.process.stderr.as_mut().unwrap();
        stderr
            .next_matching(&format!("{kind} listening line"), PATIENCE, |line| {
                let v: Value = serde_json::from_str(line).ok()?;
                (v["message"] == "listening" && v["listener"] == kind)
                    .then(|| v["addr"].as_str()?.parse().ok())
                    .flatten()
            })
            .await
    }
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
    // The console and the player come first, with the admin token.
    let console = demo.banner_url("console               :", "/").await;
    let player = demo
        .banner_url("player                :", "/console/player.html")
        .await;
    let token = {
        let stdout = demo.process.stdout.as_mut().unwrap();
        stdout
            .next_matching("admin token in the banner", PATIENCE, |line| {
                line.trim()
                    .strip_prefix("admin token           :")
                    .map(|t| t.trim().to_owned())
            })
            .await
    };
    let url = demo.play_url().await;
    let http = demo.listener("http").await;
    let admin = demo.listener("admin").await;
    assert!(
        url.starts_with(&format!("http://{http}/live/")),
        "banner URL {url} is not the proxy at {http}"
    );
    assert_eq!(console, format!("http://{admin}/"));
    assert!(player.starts_with(&format!("http://{admin}/console/player.html?channel=")));
    let web = client();
    let page = web.get(&console).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("tollgate console"));
    // The printed token opens the API; the player's sign call plays.
    let answer = web
        .post(format!("http://{admin}/api/v1/sign"))
        .bearer_auth(&token)
        .body(r#"{"channel":"ch1","user":"viewer"}"#)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let signed: Value = serde_json::from_str(&answer).unwrap();
    let link = signed["url"].as_str().unwrap();
    assert!(
        link.starts_with(&format!("http://{http}/live/ch1/index.m3u8?token=")),
        "{signed}"
    );
    assert_eq!(web.get(link).send().await.unwrap().status(), 200);

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
    let d = Deadline::new(PATIENCE, "3 proxied live requests in /metrics");
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
        d.tick(format_args!(
            "{proxied} proxied live requests counted:\n{metrics}"
        ))
        .await;
    }

    // The banner's catch-up URL and channel list answer (the IPTV layer,
    // docs/iptv.md): the archive window through the proxy, and a list of
    // both channels with catch-up attributes.
    let catchup = demo.banner_url("ffplay", "/index-").await;
    let window = client.get(&catchup).send().await.unwrap();
    assert_eq!(window.status(), 200, "{catchup}");
    assert!(window.text().await.unwrap().starts_with("#EXTM3U"));
    let list_url = demo.banner_url("vlc", "/playlist.m3u8?token=").await;
    let list = client.get(&list_url).send().await.unwrap();
    assert_eq!(list.status(), 200, "{list_url}");
    let list = list.text().await.unwrap();
    assert_eq!(list.matches("catchup=\"flussonic\"").count(), 2, "{list}");

    demo.process.signal(Signal::SIGTERM);
    let status = demo.process.exit_within(PATIENCE).await;
    assert_eq!(status.code(), Some(0), "demo wrote:\n{}", demo.output());
}
