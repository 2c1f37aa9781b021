//! Integration tests of the simulated live origin: a real `SimOrigin` bound on
//! `127.0.0.1:0`, driven by reqwest over HTTP/1.1 and h2c.
//!
//! Time-dependent tests run the origin fast (`speed`) and poll with a bounded
//! number of short waits; they never sleep for a fixed time and hope.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup errors

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tollgate::simorigin::{SegmentSource, SimOrigin, SimOriginOptions, synthetic_segment};

/// Poll budget for clock-driven tests: 400 × 25 ms = 10 s at most.
const POLLS: usize = 400;
const POLL_WAIT: Duration = Duration::from_millis(25);

/// One origin serving on a loopback port, stopped on [`Running::stop`].
struct Running {
    origin: SimOrigin,
    base: String,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn start(opts: SimOriginOptions) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let origin = SimOrigin::new(opts);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(origin.clone().serve(listener, shutdown.clone()));
        Self {
            origin,
            base,
            shutdown,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(self.url(path)).await.unwrap()
    }

    async fn status(&self, path: &str) -> StatusCode {
        self.get(path).await.status()
    }

    async fn media(&self, channel: &str) -> MediaPlaylist {
        let response = self.get(&format!("/live/{channel}/media.m3u8")).await;
        assert_playlist_headers(&response);
        MediaPlaylist::parse(&response.text().await.unwrap())
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        result
            .expect("serve returns after shutdown")
            .unwrap()
            .unwrap();
    }
}

fn bundled(window: usize, speed: f64) -> SimOriginOptions {
    SimOriginOptions {
        window,
        speed,
        ..SimOriginOptions::default()
    }
}

fn synthetic(bytes: usize, window: usize, speed: f64) -> SimOriginOptions {
    let duration = Duration::from_secs(1);
    let segment_source = SegmentSource::Synthetic { bytes, duration };
    SimOriginOptions {
        segment_source,
        ..bundled(window, speed)
    }
}

/// Asserts the status and headers every playlist response carries.
fn assert_playlist_headers(response: &reqwest::Response) {
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "application/vnd.apple.mpegurl");
    assert_eq!(headers["cache-control"], "no-cache");
}

/// Asserts a segment response's status and headers for `expected` bytes.
fn assert_segment_headers(response: &reqwest::Response, expected: &[u8]) {
    assert_eq!(response.status(), StatusCode::OK, "{}", response.url());
    let headers = response.headers();
    assert_eq!(headers["content-type"], "video/mp2t");
    assert_eq!(
        headers["content-length"],
        expected.len().to_string().as_str()
    );
}

/// One `#EXTINF` entry of a media playlist.
#[derive(Debug)]
struct Entry {
    msn: u64,
    duration: f64,
    uri: String,
    discontinuity: bool,
}

/// The parts of a live media playlist these tests check, parsed by hand.
#[derive(Debug, Default)]
struct MediaPlaylist {
    target_duration: u64,
    media_sequence: Option<u64>,
    discontinuity_sequence: u64,
    entries: Vec<Entry>,
    endlist: bool,
}

impl MediaPlaylist {
    fn parse(text: &str) -> Self {
        assert!(text.starts_with("#EXTM3U\n"), "{text}");
        let mut p = MediaPlaylist::default();
        let (mut discontinuity, mut duration) = (false, None);
        for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
            let (tag, value) = line.split_once(':').unwrap_or((line, ""));
            match tag {
                "#EXT-X-TARGETDURATION" => p.target_duration = value.parse().unwrap(),
                "#EXT-X-MEDIA-SEQUENCE" => p.media_sequence = Some(value.parse().unwrap()),
                "#EXT-X-DISCONTINUITY-SEQUENCE" => {
                    p.discontinuity_sequence = value.parse().unwrap();
                }
                "#EXT-X-DISCONTINUITY" => discontinuity = true,
                "#EXT-X-ENDLIST" => p.endlist = true,
                "#EXTINF" => {
                    let (seconds, _title) = value.split_once(',').expect("EXTINF comma");
                    duration = Some(seconds.parse::<f64>().unwrap());
                }
                _ if line.starts_with('#') => {}
                _ => p.entries.push(Entry {
                    // Msns follow the media sequence in order (RFC 8216 6.3.2).
                    msn: p.media_sequence.expect("media sequence") + p.entries.len() as u64,
                    duration: duration.take().expect("EXTINF before URI"),
                    uri: line.to_owned(),
                    discontinuity: std::mem::take(&mut discontinuity),
                }),
            }
        }
        p
    }

    fn first_msn(&self) -> u64 {
        self.media_sequence.expect("media sequence")
    }

    fn last_msn(&self) -> u64 {
        self.entries.last().expect("non-empty playlist").msn
    }
}

#[tokio::test]
async fn master_playlist_points_to_media_playlist() {
    let run = Running::start(bundled(5, 1.0)).await;
    for channel in ["ch1", "ch2"] {
        let response = run.get(&format!("/live/{channel}/index.m3u8")).await;
        assert_playlist_headers(&response);
        let text = response.text().await.unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#EXTM3U");
        let inf = lines
            .iter()
            .position(|l| l.starts_with("#EXT-X-STREAM-INF:"));
        let inf = inf.expect("a variant");
        assert!(lines[inf].contains("BANDWIDTH="), "{text}");
        let codecs = "RESOLUTION=320x180,CODECS=\"avc1.42c00d,mp4a.40.2\"";
        assert!(lines[inf].contains(codecs), "{text}");
        assert_eq!(lines[inf + 1], "media.m3u8");
        // The relative URI resolves to a live media playlist.
        assert!(!run.media(channel).await.entries.is_empty());
    }
    run.stop().await;

    let run = Running::start(synthetic(1000, 3, 1.0)).await;
    let text = run.get("/live/ch1/index.m3u8").await.text().await.unwrap();
    let variant = "#EXT-X-STREAM-INF:BANDWIDTH=8000\nmedia.m3u8\n";
    assert!(text.contains(variant), "{text}");
    run.stop().await;
}

#[tokio::test]
async fn media_playlist_lists_window_of_consecutive_segments() {
    let run = Running::start(bundled(5, 1.0)).await;
    let playlist = run.media("ch1").await;
    assert_eq!(playlist.entries.len(), 5);
    assert!(!playlist.endlist, "a live playlist has no ENDLIST");
    assert_eq!(playlist.target_duration, 2);
    for entry in &playlist.entries {
        assert_eq!(entry.uri, format!("seg-{}.ts", entry.msn));
        assert!(entry.duration > 0.0 && entry.duration <= 2.0, "{entry:?}");
    }
    run.stop().await;
}

#[tokio::test]
async fn media_playlist_slides_as_live_clock_advances() {
    // 2 s segments at speed 50: a new one every 40 ms.
    let run = Running::start(bundled(5, 50.0)).await;
    let before = run.media("ch1").await;
    for _ in 0..POLLS {
        let now = run.media("ch1").await;
        if now.first_msn() > before.first_msn() {
            assert_eq!(now.entries.len(), 5);
            assert!(now.last_msn() > before.last_msn());
            assert!(run.origin.current_first_msn() >= now.first_msn());
            return run.stop().await;
        }
        tokio::time::sleep(POLL_WAIT).await;
    }
    panic!("media sequence did not advance within the poll budget");
}

#[tokio::test]
async fn loop_wrap_is_marked_with_discontinuity() {
    // Five sample files: msn 5 replays file 0, so it starts a new loop.
    let run = Running::start(bundled(5, 20.0)).await;
    let mut saw_wrap = false;
    for _ in 0..POLLS {
        let p = run.media("ch1").await;
        for entry in &p.entries {
            let wraps = entry.msn > 0 && entry.msn.is_multiple_of(5);
            assert_eq!(entry.discontinuity, wraps, "{entry:?}");
            saw_wrap |= wraps;
        }
        let earlier_wraps = p.first_msn().saturating_sub(1) / 5;
        assert_eq!(p.discontinuity_sequence, earlier_wraps, "{p:?}");
        if saw_wrap && p.discontinuity_sequence >= 1 {
            return run.stop().await;
        }
        tokio::time::sleep(POLL_WAIT).await;
    }
    panic!("no wrap and discontinuity sequence seen (saw_wrap {saw_wrap})");
}

#[tokio::test]
async fn segments_are_served_byte_identical_to_segment_bytes() {
    let run = Running::start(bundled(5, 1.0)).await;
    for channel in ["ch1", "ch2"] {
        let playlist = run.media(channel).await;
        assert!(!playlist.entries.is_empty());
        for entry in &playlist.entries {
            let response = run.get(&format!("/live/{channel}/{}", entry.uri)).await;
            let expected = run.origin.segment_bytes(channel, entry.msn).unwrap();
            assert_segment_headers(&response, &expected);
            assert_eq!(response.bytes().await.unwrap(), expected, "{entry:?}");
        }
    }
    run.stop().await;
}

#[tokio::test]
async fn synthetic_segments_have_requested_length_and_are_deterministic() {
    let len = 10_000;
    let a = Running::start(synthetic(len, 4, 1.0)).await;
    let b = Running::start(synthetic(len, 4, 1.0)).await;
    let mut seen = Vec::new();
    for channel in ["ch1", "ch2"] {
        for msn in 0..4 {
            let path = format!("/live/{channel}/seg-{msn}.ts");
            let from_a = a.get(&path).await.bytes().await.unwrap();
            let from_b = b.get(&path).await.bytes().await.unwrap();
            assert_eq!(from_a.len(), len);
            assert_eq!(from_a, from_b, "{path}: two origins agree");
            assert_eq!(from_a, synthetic_segment(channel, msn, len), "{path}");
            assert_eq!(from_a, a.origin.segment_bytes(channel, msn).unwrap());
            seen.push(from_a);
        }
    }
    // Every (channel, msn) pair got distinct content.
    for (i, x) in seen.iter().enumerate() {
        assert!(seen[i + 1..].iter().all(|y| y != x), "segment {i} repeated");
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn future_malformed_and_unknown_resources_are_404_and_all_are_counted() {
    let run = Running::start(synthetic(100, 3, 1.0)).await;
    let latest = run.origin.latest_msn();
    let live = format!("/live/ch1/seg-{latest}.ts");
    assert_eq!(run.status(&live).await, StatusCode::OK);
    let future = [latest + 2, latest + 1000, u64::MAX];
    let mut paths: Vec<String> = future
        .iter()
        .map(|m| format!("/live/ch1/seg-{m}.ts"))
        .collect();
    let files = ["seg-abc.ts", "seg-01.ts", "seg-.ts", "seg-1", "seg-1.ts/x"];
    paths.extend(files.map(|f| format!("/live/ch1/{f}")));
    let files = ["index.m3u8", "media.m3u8", "seg-0.ts"];
    paths.extend(files.map(|f| format!("/live/nope/{f}")));
    paths.extend(["/other/ch1/index.m3u8", "/"].map(String::from));
    for path in &paths {
        assert_eq!(run.status(path).await, StatusCode::NOT_FOUND, "{path}");
    }
    // Every answered request counts, whatever its status.
    assert_eq!(run.origin.requests_served(), 1 + paths.len() as u64);
    run.stop().await;
}

#[tokio::test]
async fn old_segments_stay_available_for_a_while_then_expire() {
    // Window 2, 40 ms per segment: msn 0 leaves the playlist after 40 ms and
    // stays fetchable for three more windows (six segments, 240 ms).
    let run = Running::start(bundled(2, 50.0)).await;
    let mut retained_after_slide = false;
    for _ in 0..POLLS {
        let first = run.origin.current_first_msn();
        let status = run.status("/live/ch1/seg-0.ts").await;
        if status == StatusCode::NOT_FOUND {
            assert!(retained_after_slide, "expired before being seen retained");
            assert!(run.origin.current_first_msn() > 6);
            return run.stop().await;
        }
        assert_eq!(status, StatusCode::OK);
        // `first` was read before the request and only grows, so msn 0 had
        // already left the playlist when it was served.
        retained_after_slide |= first > 0;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("msn 0 never expired within the poll budget");
}

#[tokio::test]
async fn head_has_headers_without_body_and_other_methods_are_405() {
    let run = Running::start(bundled(5, 1.0)).await;
    let client = reqwest::Client::new();
    let url = run.url("/live/ch1/seg-1.ts");
    let head = client.head(&url).send().await.unwrap();
    assert_segment_headers(&head, &run.origin.segment_bytes("ch1", 1).unwrap());
    assert!(head.bytes().await.unwrap().is_empty());
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
        let response = client.request(method.clone(), &url).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
        assert_eq!(response.headers()["allow"], "GET, HEAD");
    }
    run.stop().await;
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let run = Running::start(bundled(5, 1.0)).await;
    let client = reqwest::Client::builder().http2_prior_knowledge().build();
    let request = client.unwrap().get(run.url("/live/ch2/seg-0.ts"));
    let response = request.send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let expected = run.origin.segment_bytes("ch2", 0).unwrap();
    assert_segment_headers(&response, &expected);
    assert_eq!(response.bytes().await.unwrap(), expected);
    run.stop().await;
}

#[tokio::test]
async fn serve_stops_accepting_after_shutdown() {
    let run = Running::start(bundled(5, 1.0)).await;
    let url = run.url("/live/ch1/index.m3u8");
    assert_eq!(run.status("/live/ch1/index.m3u8").await, StatusCode::OK);
    run.stop().await;
    // A fresh client, so no pooled connection hides a closed listener.
    assert!(reqwest::get(url).await.is_err());
}

/// The committed sample must be real H.264 + AAC that a player can start on
/// any segment; this is what `tollgate demo` serves.
#[test]
fn bundled_sample_is_h264_and_aac_starting_on_keyframes() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/sample");
    let manifest = std::fs::read_to_string(dir.join("manifest.txt")).unwrap();
    let files: Vec<&str> = (manifest.lines())
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(!files.is_empty(), "manifest lists no segments");
    let origin = SimOrigin::new(SimOriginOptions::default());
    let mut total = 0;
    for (i, name) in files.iter().enumerate() {
        let path = dir.join(name);
        let on_disk = std::fs::read(&path).unwrap();
        total += on_disk.len();
        // The compiled-in copy is the file ffprobe checks.
        let served = origin.segment_bytes("ch1", i as u64).unwrap();
        assert_eq!(served, on_disk, "{name}");
        let streams = ffprobe("-show_entries stream=codec_name,codec_type", &path);
        assert!(
            streams.iter().any(|s| s == "h264,video"),
            "{name}: {streams:?}"
        );
        assert!(
            streams.iter().any(|s| s == "aac,audio"),
            "{name}: {streams:?}"
        );
        let frames = "-select_streams v -read_intervals %+#1 -show_entries frame=key_frame";
        let first_frame = ffprobe(frames, &path);
        // The first field is key_frame; side data may add empty fields.
        let key_frame = first_frame.first().and_then(|l| l.split(',').next());
        assert_eq!(key_frame, Some("1"), "{name}: {first_frame:?}");
    }
    assert!(
        total < 300 * 1024,
        "sample is {total} bytes; keep it < 300 KiB"
    );
}

/// Runs `ffprobe -v error -of csv=p=0 <args> <file>` and returns its output
/// lines; fails the test (never skips) when ffprobe is missing.
fn ffprobe(args: &str, file: &Path) -> Vec<String> {
    let mut command = std::process::Command::new("ffprobe");
    command
        .args(["-v", "error", "-of", "csv=p=0"])
        .args(args.split_whitespace());
    let output = match command.arg(file).output() {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            panic!("ffprobe not found: install ffmpeg: apt-get install -y ffmpeg")
        }
        Err(err) => panic!("running ffprobe: {err}"),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "ffprobe {}: {stderr}",
        file.display()
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}
