//! Test media made with the real ffmpeg, once per machine, plus the real
//! decoders the HLS acceptance tests check the proxy with (ffmpeg framemd5,
//! `openssl enc -d`).
//!
//! Owns: the media cache `<target>/test-media/v1/` (`CARGO_TARGET_DIR`
//! aware). It is generated into a fresh temporary sibling directory and
//! renamed into place in one step, so a test binary running in parallel
//! sees either no cache or a complete one, never half-written files; the
//! loser of a race throws its copy away. Change the version in
//! [`CACHE_VERSION`] whenever the ffmpeg commands change.
//!
//! Layout (URL paths when the directory is served by `static_origin`):
//! - `vod/ts/index.m3u8`: TS VOD, 4 × 2 s segments `seg0.ts`..`seg3.ts`,
//!   `EXT-X-MEDIA-SEQUENCE:0`;
//! - `vod/fmp4/index.m3u8`: fMP4 VOD, `init.mp4` + `seg0.m4s`..`seg3.m4s`;
//! - `vod/master/index.m3u8`: a master playlist of two TS VOD variants,
//!   `v0/index.m3u8` (320x180) and `v1/index.m3u8` (160x90);
//! - `vod/single/index.m3u8`: a TS VOD with `single_file`, four
//!   `EXT-X-BYTERANGE`s of `index.ts`.
//!
//! ffmpeg missing is a failure that says how to install it, never a skip.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::time::timeout;

/// Bump when the commands below change: the cache is keyed by it.
pub const CACHE_VERSION: &str = "v1";

pub const FFMPEG_MISSING: &str =
    "ffmpeg not found: install it with `apt-get install -y ffmpeg` (scripts/test.sh does this)";

/// Bound for one ffmpeg or openssl run.
pub const TOOL_PATIENCE: Duration = Duration::from_secs(90);

/// Segments per VOD, each [`SEGMENT_SECONDS`] long.
pub const SEGMENTS: usize = 4;
pub const SEGMENT_SECONDS: u32 = 2;

/// The generated media.
#[derive(Debug)]
pub struct Media {
    /// The cache directory; serve it with `static_origin`.
    pub root: PathBuf,
}

impl Media {
    /// The bytes of the file at URL path `path` (`/vod/ts/seg0.ts`).
    pub fn read(&self, path: &str) -> Vec<u8> {
        let file = self.root.join(path.trim_start_matches('/'));
        std::fs::read(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()))
    }
}

/// Fail with the install hint when ffmpeg is not on PATH.
pub fn require_ffmpeg() {
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

/// The target directory: `CARGO_TARGET_DIR` (at run time, else at build
/// time; relative to the package) or `<package>/target`.
fn target_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let configured = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| option_env!("CARGO_TARGET_DIR").map(PathBuf::from));
    match configured {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => manifest.join(dir),
        None => manifest.join("target"),
    }
}

/// The media, generated on first use (blocking; see [`media`]).
pub fn media_blocking() -> &'static Media {
    static MEDIA: OnceLock<Media> = OnceLock::new();
    MEDIA.get_or_init(|| {
        require_ffmpeg();
        let parent = target_dir().join("test-media");
        let root = parent.join(CACHE_VERSION);
        if !root.join("complete").exists() {
            generate_into(&parent, &root);
        }
        Media { root }
    })
}

/// The media, generated on first use without blocking the runtime.
pub async fn media() -> &'static Media {
    match tokio::task::spawn_blocking(media_blocking).await {
        Ok(media) => media,
        // Fail with the generator's own message (e.g. how to install ffmpeg).
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("media generation did not finish: {e}"),
    }
}

/// Generate into a temporary directory under `parent`, then rename it to
/// `root`; if another process renamed its copy first, keep theirs.
fn generate_into(parent: &Path, root: &Path) {
    std::fs::create_dir_all(parent).unwrap();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{CACHE_VERSION}.tmp-"))
        .tempdir_in(parent)
        .unwrap();
    let vod = tmp.path().join("vod");
    generate_ts(&vod.join("ts"));
    generate_fmp4(&vod.join("fmp4"));
    generate_master(&vod.join("master"));
    generate_single(&vod.join("single"));
    std::fs::write(tmp.path().join("complete"), "ok\n").unwrap();
    // `keep` so the directory is not deleted once it has become the cache.
    let tmp = tmp.keep();
    match std::fs::rename(&tmp, root) {
        Ok(()) => {}
        Err(_) if root.join("complete").exists() => {
            // Another test binary won the race; its copy is complete.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            panic!("cannot move test media into {}: {e}", root.display());
        }
    }
}

/// Sources and codec flags shared by every rendition: 8 s of ffmpeg's
/// testsrc2 pattern and a sine tone; fixed 2 s GOPs (an IDR at every
/// segment start), one x264 thread and bitexact flags so reruns are stable
/// (the flags of scripts/make-sample-media.sh).
fn sources() -> Vec<String> {
    let seconds = SEGMENTS as u32 * SEGMENT_SECONDS;
    [
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-y",
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size=320x180:rate=25:duration={seconds}"),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:sample_rate=48000:duration={seconds}"),
        "-map_metadata",
        "-1",
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

fn codecs() -> Vec<&'static str> {
    vec![
        "-c:v",
        "libx264",
        "-threads:v",
        "1",
        "-profile:v",
        "baseline",
        "-level:v",
        "1.3",
        "-pix_fmt",
        "yuv420p",
        "-preset",
        "veryfast",
        "-g",
        "50",
        "-keyint_min",
        "50",
        "-sc_threshold",
        "0",
        "-c:a",
        "aac",
        "-b:a",
        "48k",
        "-ac",
        "1",
        "-fflags",
        "+bitexact",
        "-flags:v",
        "+bitexact",
        "-flags:a",
        "+bitexact",
    ]
}

/// HLS muxer flags of every VOD: 2 s segments, all listed, numbered from 0.
fn vod_hls(flags: &str) -> Vec<String> {
    [
        "-f",
        "hls",
        "-hls_time",
        &SEGMENT_SECONDS.to_string(),
        "-hls_list_size",
        "0",
        "-hls_playlist_type",
        "vod",
        "-hls_flags",
        flags,
        "-start_number",
        "0",
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

fn run_ffmpeg(what: &str, dir: &Path, args: &[String]) {
    std::fs::create_dir_all(dir).unwrap();
    let out = std::process::Command::new("ffmpeg")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{FFMPEG_MISSING} ({e})"));
    assert!(
        out.status.success(),
        "ffmpeg ({what}) failed: {:?}\nargs: {args:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn single_rendition(extra: &[&str], dir: &Path, playlist: &str, flags: &str) -> Vec<String> {
    let mut args = sources();
    args.extend(["-map", "0:v", "-map", "1:a"].map(String::from));
    args.extend(codecs().into_iter().map(String::from));
    args.extend(["-b:v", "120k", "-maxrate", "150k", "-bufsize", "240k"].map(String::from));
    args.extend(vod_hls(flags));
    args.extend(extra.iter().map(ToString::to_string));
    args.push(dir.join(playlist).display().to_string());
    args
}

fn generate_ts(dir: &Path) {
    let seg = dir.join("seg%d.ts").display().to_string();
    let args = single_rendition(
        &["-hls_segment_type", "mpegts", "-hls_segment_filename", &seg],
        dir,
        "index.m3u8",
        "independent_segments",
    );
    run_ffmpeg("TS VOD", dir, &args);
}

fn generate_fmp4(dir: &Path) {
    let seg = dir.join("seg%d.m4s").display().to_string();
    let args = single_rendition(
        &[
            "-hls_segment_type",
            "fmp4",
            "-hls_fmp4_init_filename",
            "init.mp4",
            "-hls_segment_filename",
            &seg,
        ],
        dir,
        "index.m3u8",
        "independent_segments",
    );
    run_ffmpeg("fMP4 VOD", dir, &args);
}

fn generate_single(dir: &Path) {
    let args = single_rendition(
        &["-hls_segment_type", "mpegts"],
        dir,
        "index.m3u8",
        "independent_segments+single_file",
    );
    run_ffmpeg("single-file TS VOD", dir, &args);
}

fn generate_master(dir: &Path) {
    let mut args = sources();
    args.extend(
        [
            "-filter_complex",
            "[0:v]split=2[a][b];[a]scale=320:180[v0];[b]scale=160:90[v1]",
            "-map",
            "[v0]",
            "-map",
            "1:a",
            "-map",
            "[v1]",
            "-map",
            "1:a",
        ]
        .map(String::from),
    );
    args.extend(codecs().into_iter().map(String::from));
    args.extend(["-b:v:0", "120k", "-b:v:1", "60k"].map(String::from));
    args.extend(vod_hls("independent_segments"));
    args.extend(
        [
            "-hls_segment_type",
            "mpegts",
            "-var_stream_map",
            "v:0,a:0 v:1,a:1",
            "-master_pl_name",
            "index.m3u8",
            "-hls_segment_filename",
        ]
        .map(String::from),
    );
    args.push(dir.join("v%v/seg%d.ts").display().to_string());
    args.push(dir.join("v%v/index.m3u8").display().to_string());
    run_ffmpeg("two-variant master", dir, &args);
}

/// One decoded frame as `-f framemd5` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub stream: String,
    pub pts: String,
    pub size: String,
    pub hash: String,
}

impl Frame {
    /// The columns compared across runs whose timestamps may differ:
    /// stream, size, hash (research/hls-encryption.md §7).
    pub fn key(&self) -> (String, String, String) {
        (self.stream.clone(), self.size.clone(), self.hash.clone())
    }
}

/// Parse framemd5 output: `stream, dts, pts, duration, size, hash`.
pub fn parse_framemd5(text: &str) -> Vec<Frame> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split(',').map(str::trim).collect();
            assert_eq!(cols.len(), 6, "unexpected framemd5 line {l:?}");
            Frame {
                stream: cols[0].to_owned(),
                pts: cols[2].to_owned(),
                size: cols[4].to_owned(),
                hash: cols[5].to_owned(),
            }
        })
        .collect()
}

/// Decode `input` with ffmpeg (`args` go between the input and the output:
/// `-map`, `-frames:v`…) and return its framemd5 lines; fails the test with
/// ffmpeg's stderr when it fails or takes longer than [`TOOL_PATIENCE`].
pub async fn framemd5(input_args: &[&str], input: &str, args: &[&str]) -> Vec<Frame> {
    let mut command = Command::new("ffmpeg");
    command
        .args(["-nostdin", "-hide_banner", "-v", "error"])
        .args(input_args)
        .args(["-i", input])
        .args(args)
        .args(["-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = match timeout(TOOL_PATIENCE, command.output()).await {
        Ok(out) => out.unwrap_or_else(|e| panic!("{FFMPEG_MISSING} ({e})")),
        Err(_) => panic!("ffmpeg did not decode {input} within {TOOL_PATIENCE:?} (killed)"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ffmpeg failed to decode {input} ({:?}):\n{stderr}",
        out.status
    );
    let frames = parse_framemd5(&String::from_utf8_lossy(&out.stdout));
    assert!(
        !frames.is_empty(),
        "ffmpeg decoded no frame of {input}:\n{stderr}"
    );
    frames
}

/// `openssl enc -d -aes-128-cbc -K <key> -iv <msn as 32 hex digits>` over
/// `ciphertext`, run as a process (an independent implementation); fails the
/// test when openssl refuses (bad padding is such a refusal).
pub async fn openssl_decrypt(key: &[u8], iv: u128, ciphertext: &[u8]) -> Vec<u8> {
    assert_eq!(
        key.len(),
        16,
        "AES-128 key must be 16 bytes, got {}",
        key.len()
    );
    let mut child = Command::new("openssl")
        .args([
            "enc",
            "-d",
            "-aes-128-cbc",
            "-K",
            &hex::encode(key),
            "-iv",
            &format!("{iv:032x}"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run openssl (apt-get install -y openssl): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = ciphertext.to_vec();
    let writer = tokio::spawn(async move {
        // openssl may stop reading early on an error; that shows in its status.
        let _ = stdin.write_all(&input).await;
        drop(stdin);
    });
    let out = match timeout(TOOL_PATIENCE, child.wait_with_output()).await {
        Ok(out) => out.unwrap(),
        Err(_) => panic!("openssl did not finish within {TOOL_PATIENCE:?}"),
    };
    writer.await.unwrap();
    assert!(
        out.status.success(),
        "openssl enc -d -aes-128-cbc (iv {iv:#x}) failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// AES-128-CBC + PKCS#7 length of a plaintext of `n` bytes.
pub fn padded_len(n: usize) -> usize {
    16 * (n / 16 + 1)
}
