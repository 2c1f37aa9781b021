//! The IPTV layer through the real binary (SPEC §7.1, §7.4, §7.5): channels
//! granted by a package's tags, catch-up (DVR) inside and beyond the
//! viewer's depth for every Flussonic archive form, played end to end in
//! ffmpeg, and one segment listed by two archive windows and the live
//! playlist fetched and encrypted once and decrypted by openssl in all three.
//!
//! The origin is the simulated one with a two-hour archive
//! (`SimOriginOptions::dvr`): the same bundled H.264/AAC loop, dated with
//! the wall clock, so the archive forms answer for any recent FROM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::media::{framemd5, openssl_decrypt};
use common::process::{Tollgate, is_message};
use common::*;
use nix::sys::signal::Signal;
use reqwest::Url;
use tokio_util::sync::CancellationToken;
use tollgate::simorigin::{SimOrigin, SimOriginOptions};

/// The simulated origin with an archive, on 127.0.0.1:0.
struct Dvr {
    addr: SocketAddr,
    stop: CancellationToken,
}

impl Dvr {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let origin = SimOrigin::new(SimOriginOptions {
            channels: vec!["ch1".into(), "ch2".into(), "ch3".into()],
            dvr: Duration::from_secs(2 * 3600),
            ..SimOriginOptions::default()
        });
        tokio::spawn(origin.serve(listener, stop.clone()));
        Self { addr, stop }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Dvr {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// ch1 (news, 1 h of catch-up), ch2 (sport, no catch-up), ch3 (news,
/// 1 h); ann's tariff gives news without a cap, bob's caps it at 10 min,
/// cat's gives only ch2 by name.
fn config(origin: SocketAddr, state: &std::path::Path) -> String {
    config_keys(origin, state, &format!("master = \"{MASTER_A}\""))
}

const MASTER_A: &str = "hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const MASTER_B: &str = "hex:b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf";
const MASTER_C: &str = "hex:c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf";

/// [`config`] with `keys` in `[keys]` (besides `rotate_every`).
fn config_keys(origin: SocketAddr, state: &std::path::Path, keys: &str) -> String {
    ConfigBuilder::new(origin)
        .admin("test-admin-token")
        .state(state)
        .section("keys", &format!("{keys}\nrotate_every = \"10m\""))
        // Every playlist compiled afresh: the rotation test moves a manual
        // clock, which the micro-cache's (monotonic) TTL does not follow.
        .section("cache", "playlist_ttl = \"0s\"")
        .origin_keys("first_byte_timeout = \"5s\"\nidle_timeout = \"5s\"")
        .route(Route::live(&["token"]).keys("encrypt = true"))
        // The same origin where archive-looking names are just playlists.
        .route(
            Route::new("plain", "/plain/")
                .channel(1)
                .auth(&["token"])
                .keys("catchup = false"),
        )
        .extra(
            r#"
[[channel]]
name = "ch1"
title = "Channel One"
group = "News"
tags = ["news"]
dvr_depth = "1h"

[[channel]]
name = "ch2"
title = "Sport Two"
tags = ["sport"]

[[channel]]
name = "ch3"
tags = ["news"]
dvr_depth = "1h"

[[package]]
name = "news"
tags = ["news"]

[[package]]
name = "news-short"
tags = ["news"]
dvr_depth = "10m"

[[package]]
name = "two"
channels = ["ch2"]

[[user]]
id = "ann"
tokens = ["ann-token"]
password = "ann-password"
packages = ["news"]

[[user]]
id = "bob"
tokens = ["bob-token"]
packages = ["news-short"]

[[user]]
id = "cat"
tokens = ["cat-token"]
packages = ["two"]
"#,
        )
        .build()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread")]
async fn channels_by_tag_and_the_depth_of_every_archive_form() {
    let origin = Dvr::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start_proxy(&config(origin.addr, state.path())).await;

    // A channel given by the package's tag plays; one without the tag is
    // not_entitled; a package by name still works.
    let (s, body) = fetch(&proxy, "/live/ch1/index.m3u8?token=ann-token").await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = fetch(&proxy, "/live/ch3/index.m3u8?token=ann-token").await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = fetch(&proxy, "/live/ch2/index.m3u8?token=ann-token").await;
    assert_eq!((s, body), (403, error_body("not_entitled")));
    let (s, _) = fetch(&proxy, "/live/ch2/index.m3u8?token=cat-token").await;
    assert_eq!(s, 200);
    let (s, body) = fetch(&proxy, "/live/ch1/index.m3u8?token=cat-token").await;
    assert_eq!((s, body), (403, error_body("not_entitled")));

    let now = unix_now();
    // (form, whether it reaches back 50 minutes or 2 hours).
    let forms = |back: u64| {
        let from = now - back;
        [
            format!("index-{from}-60.m3u8"),
            format!("archive-{from}-60.m3u8"),
            format!("video-{from}-60.m3u8"),
            format!("mono-{from}-60.m3u8"),
            format!("index-{from}-now.m3u8"),
            format!("archive-{from}-now.m3u8"),
            format!("timeshift_abs-{from}.m3u8"),
            format!("timeshift_rel-{back}.m3u8"),
        ]
    };
    for form in forms(50 * 60) {
        // Inside ann's hour: plays (the origin's archive answers).
        let (s, body) = fetch(&proxy, &format!("/live/ch1/{form}?token=ann-token")).await;
        assert_eq!(s, 200, "{form}: {body}");
        assert!(body.starts_with("#EXTM3U"), "{form}: {body}");
        // bob's package caps the channel's hour at 10 minutes.
        let (s, body) = fetch(&proxy, &format!("/live/ch1/{form}?token=bob-token")).await;
        assert_eq!((s, body), (403, error_body("dvr_depth")), "bob {form}");
        // ch2 has no catch-up at all.
        let (s, body) = fetch(&proxy, &format!("/live/ch2/{form}?token=cat-token")).await;
        assert_eq!((s, body), (403, error_body("dvr_depth")), "ch2 {form}");
    }
    for form in forms(2 * 3600) {
        let (s, body) = fetch(&proxy, &format!("/live/ch1/{form}?token=ann-token")).await;
        assert_eq!((s, body), (403, error_body("dvr_depth")), "{form}");
    }
    for form in forms(5 * 60) {
        let (s, _) = fetch(&proxy, &format!("/live/ch1/{form}?token=bob-token")).await;
        assert_eq!(s, 200, "bob inside 10 min: {form}");
    }
    // A route with catchup = false passes archive-looking names through
    // (here the origin's own 404), where the catch-up route refuses them.
    let look_alike = "ch2/video-1280-720.m3u8?token=cat-token";
    let (s, body) = fetch(&proxy, &format!("/live/{look_alike}")).await;
    assert_eq!((s, body), (403, error_body("dvr_depth")));
    let (s, _) = fetch(&proxy, &format!("/plain/{look_alike}")).await;
    assert_eq!(s, 404, "passed to the origin");
    // A refused archive request does not cut the viewer's live session.
    let (s, _) = fetch(&proxy, "/live/ch1/media.m3u8?token=bob-token").await;
    assert_eq!(s, 200);

    // The child playlist of an archive master carries the archive form
    // too: checked with the capability, it plays through.
    let from = now - 20 * 60;
    let (s, master) = fetch(
        &proxy,
        &format!("/live/ch1/index-{from}-60.m3u8?token=ann-token"),
    )
    .await;
    assert_eq!(s, 200);
    let child = master
        .lines()
        .find(|l| l.starts_with(&format!("mono-{from}-60.m3u8?")))
        .unwrap_or_else(|| panic!("no archive variant in {master}"));
    let (s, media) = fetch(&proxy, &format!("/live/ch1/{child}")).await;
    assert_eq!(s, 200, "{media}");
    assert!(media.contains("#EXT-X-ENDLIST"), "{media}");
}

/// Catch-up inside the depth decodes, through the proxy, to the same frames
/// as the origin's own archive window.
#[tokio::test(flavor = "multi_thread")]
async fn catch_up_plays_in_ffmpeg_like_the_origin() {
    common::media::require_ffmpeg();
    let origin = Dvr::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start_proxy(&config(origin.addr, state.path())).await;
    let from = unix_now() - 30 * 60;
    let window = format!("index-{from}-20.m3u8");
    let proxied = proxy.url(&format!("/live/ch1/{window}?token=ann-token"));
    let direct = origin.url(&format!("/live/ch1/{window}"));
    let args = ["-map", "0"];
    let (d, p) = tokio::join!(
        framemd5(&[], &direct, &args),
        framemd5(&[], &proxied, &args)
    );
    let key = |f: &[common::media::Frame]| f.iter().map(|f| f.key()).collect::<Vec<_>>();
    assert!(d.len() >= 200, "{} frames in 20 s", d.len());
    assert_eq!(
        key(&d),
        key(&p),
        "frames through the proxy differ from the origin's"
    );
    // And the proxied stream was encrypted (a key line per segment).
    let (_, media) = fetch(
        &proxy,
        &format!("/live/ch1/mono-{from}-20.m3u8?token=ann-token"),
    )
    .await;
    let keys = media.matches("#EXT-X-KEY:METHOD=AES-128").count();
    let segments = media.matches("#EXTINF:").count();
    assert!(segments >= 10 && keys == segments, "{media}");
}

/// Segment `name` of `playlist` (a rewritten media playlist at `base`):
/// its URL, and the key URI and IV in effect for it.
fn segment_and_key(base: &Url, playlist: &str, name: &str) -> (Url, Url, u128) {
    keyed_segments(base, playlist)
        .into_iter()
        .find(|s| s.name() == name)
        .map(|s| (s.url, s.key, s.iv))
        .unwrap_or_else(|| panic!("{name} is not in\n{playlist}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_segment_in_two_windows_and_the_live_playlist_is_encrypted_once() {
    let origin = Dvr::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start_proxy(&config(origin.addr, state.path())).await;
    let now = unix_now();
    let base = Url::parse(&proxy.url("/live/ch1/")).unwrap();
    let (s, live) = fetch(&proxy, "/live/ch1/media.m3u8?token=ann-token").await;
    assert_eq!(s, 200, "{live}");
    // The oldest segment of the live window (about 10 s old).
    let name = live
        .lines()
        .find(|l| l.starts_with("seg-"))
        .and_then(|l| l.split('?').next())
        .unwrap()
        .to_owned();
    // Two closed windows (numbered from 0, unlike live) that both list it.
    let a = format!("archive-{}-120.m3u8", now - 60);
    let b = format!("mono-{}-300.m3u8", now - 90);
    let mut seen = Vec::new();
    let metrics = || async { get_text(&proxy.admin_url("/metrics")).await };
    let cache = |text: &str, result: &str| {
        metric(
            text,
            &format!("tollgate_segment_cache_lookups_total{{result=\"{result}\"}}"),
        )
    };
    let before = metrics().await;
    for path in ["media.m3u8".to_owned(), a, b] {
        let (s, text) = fetch(&proxy, &format!("/live/ch1/{path}?token=ann-token")).await;
        assert_eq!(s, 200, "{path}: {text}");
        let (segment, key_uri, iv) = segment_and_key(&base, &text, &name);
        let ciphertext = get_h1(segment.as_str()).await;
        assert_eq!(ciphertext.status(), 200, "{path}");
        let ciphertext = ciphertext.bytes().await.unwrap();
        let key = get_h1(key_uri.as_str()).await.bytes().await.unwrap();
        assert_eq!(key.len(), 16);
        seen.push((path, key.to_vec(), iv, ciphertext));
    }
    let after = metrics().await;
    // Fetched from the origin and encrypted once; the other two are hits.
    assert_eq!(cache(&after, "miss") - cache(&before, "miss"), 1.0);
    assert_eq!(cache(&after, "hit") - cache(&before, "hit"), 2.0);
    let plain = get_h1(origin.url(&format!("/live/ch1/{name}")).as_str())
        .await
        .bytes()
        .await
        .unwrap();
    for (path, key, iv, ciphertext) in &seen {
        assert_eq!(
            (key, iv, ciphertext),
            (&seen[0].1, &seen[0].2, &seen[0].3),
            "{path}"
        );
        assert_eq!(
            openssl_decrypt(key, *iv, ciphertext).await,
            plain.to_vec(),
            "{path}: openssl decrypts to the origin's bytes"
        );
    }
    // The IV is not the position: the archive windows list it elsewhere.
    assert!(
        seen[0].2 > 1 << 32,
        "IV {:#x} looks like a position",
        seen[0].2
    );
}

/// The channel list (SPEC §7.5), read with an independent IPTV M3U parser
/// (crispy-m3u), and every URL in it played by ffmpeg.
#[tokio::test(flavor = "multi_thread")]
async fn channel_lists_give_what_the_viewer_may_watch_and_every_url_plays() {
    common::media::require_ffmpeg();
    let origin = Dvr::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start_proxy(&config(origin.addr, state.path())).await;
    let list = |query: &'static str| {
        let url = proxy.url(&format!("/playlist.m3u8?{query}"));
        async move {
            let r = get_h1(url.as_str()).await;
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            (status, headers, r.text().await.unwrap())
        }
    };
    let (s, h, text) = list("token=ann-token").await;
    assert_eq!(s, 200, "{text}");
    assert_eq!(h["content-type"], "audio/x-mpegurl");
    assert_eq!(h["cache-control"], "private, no-store");
    let parsed = crispy_m3u::parse(&text).unwrap_or_else(|e| panic!("{e:?}: {text}"));
    let ids: Vec<_> = parsed
        .entries
        .iter()
        .map(|e| e.tvg_id.clone().unwrap())
        .collect();
    // The news channels in [[channel]] order; ch2 (sport) is not hers.
    assert_eq!(ids, ["ch1", "ch3"], "{text}");
    let ch1 = &parsed.entries[0];
    assert_eq!(ch1.name.as_deref(), Some("Channel One"));
    assert_eq!(ch1.tvg_name.as_deref(), Some("Channel One"));
    assert_eq!(ch1.group_title.as_deref(), Some("News"));
    assert_eq!(ch1.catchup.as_deref(), Some("flussonic"));
    assert_eq!(ch1.catchup_days.as_deref(), Some("1"));
    assert_eq!(ch1.duration, Some(-1.0));
    let ch3 = &parsed.entries[1];
    assert_eq!(
        (ch3.name.as_deref(), ch3.group_title.as_deref()),
        (Some("ch3"), None)
    );
    // Every URL plays as a player would open it.
    for e in &parsed.entries {
        let url = e.url.clone().unwrap();
        assert!(url.starts_with(&proxy.url("/live/")), "{url}");
        assert!(url.ends_with("/index.m3u8?token=ann-token"), "{url}");
        let frames = framemd5(&["-live_start_index", "0"], &url, &["-map", "0", "-t", "3"]).await;
        assert!(frames.len() > 20, "{url}: {} frames", frames.len());
    }

    // The same list as .m3u, and with ?auth=user:password (carried on).
    let m3u = get_h1(proxy.url("/playlist.m3u?token=ann-token").as_str()).await;
    assert_eq!(m3u.text().await.unwrap(), text);
    let (s, _, by_password) = list("auth=ann:ann-password").await;
    assert_eq!(s, 200);
    let parsed = crispy_m3u::parse(&by_password).unwrap();
    let url = parsed.entries[0].url.clone().unwrap();
    assert!(
        url.ends_with("/live/ch1/index.m3u8?auth=ann%3Aann-password"),
        "{url}"
    );
    let (s, body) = fetch(&proxy, url.trim_start_matches(&proxy.url(""))).await;
    assert_eq!(s, 200, "{body}");

    // `tollgate sign --list --user ann` (the binary, from the same file)
    // prints a link to the same list.
    let file = state.path().join("tollgate.toml");
    std::fs::write(&file, config(origin.addr, state.path())).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["sign", "--list", "--user", "ann", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(link, "/playlist.m3u8?token=ann-token");
    assert_eq!(fetch(&proxy, &link).await, (200, text.clone()));

    // cat's list: ch2 only, no catch-up attributes (ch2 has none).
    let (_, _, cat) = list("token=cat-token").await;
    let parsed = crispy_m3u::parse(&cat).unwrap();
    assert_eq!(parsed.entries.len(), 1, "{cat}");
    assert_eq!(parsed.entries[0].tvg_id.as_deref(), Some("ch2"));
    assert_eq!(parsed.entries[0].catchup, None);
    assert!(!cat.contains("catchup"), "{cat}");

    // Refusals: wrong or missing credentials, a wrong password, blocked.
    for (query, code) in [
        ("token=nobody", "forbidden"),
        ("x=1", "forbidden"),
        ("auth=ann:wrong", "forbidden"),
    ] {
        let (s, _, body) = list(query).await;
        assert_eq!((s, body), (403, error_body(code)), "{query}");
    }
    let r = admin_call(
        &proxy,
        "PUT",
        "/api/v1/blocklist",
        Some("test-admin-token"),
        Some(&serde_json::json!({"users": ["ann"]})),
    )
    .await;
    assert_eq!(r.0, 204, "{}", r.1);
    let (s, _, body) = list("token=ann-token").await;
    assert_eq!((s, body), (403, error_body("blocked")));
}

/// Every segment of a rewritten media playlist with its key URI and IV.
fn segments_and_keys(base: &Url, playlist: &str) -> Vec<(Url, Url, u128)> {
    keyed_segments(base, playlist)
        .into_iter()
        .map(|s| (s.url, s.key, s.iv))
        .collect()
}

/// Fetch `segment` and its key and decrypt it with openssl: the origin's
/// bytes for segment `name`.
async fn decrypts(origin: &Dvr, (segment, key, iv): &(Url, Url, u128), what: &str) {
    let ct = get_h1(segment.as_str()).await;
    assert_eq!(ct.status(), 200, "{what}: {segment}");
    let ct = ct.bytes().await.unwrap();
    let k = get_h1(key.as_str()).await;
    assert_eq!(k.status(), 200, "{what}: {key}");
    let k = k.bytes().await.unwrap();
    let plain = get_h1(origin.url(segment.path()).as_str())
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        openssl_decrypt(&k, *iv, &ct).await,
        plain.to_vec(),
        "{what}: {segment}"
    );
}

/// SPEC §7.6: a master rolled by SIGHUP with the old one in `previous`
/// cuts no one: the capabilities, segment URLs and key URIs a player holds
/// keep working (and decrypting), its next playlist is signed with the new
/// master; without `previous` the old ones stop (403).
#[tokio::test(flavor = "multi_thread")]
async fn a_master_roll_with_previous_cuts_no_viewer() {
    let origin = Dvr::start().await;
    let state = tempfile::tempdir().unwrap();
    let keys = |k: &str| config_keys(origin.addr, state.path(), k);
    let mut tg = Tollgate::start(&keys(&format!("master = \"{MASTER_A}\""))).await;
    let base = Url::parse(&tg.url("/live/ch1/")).unwrap();
    let (s, before) = fetch(&tg, "/live/ch1/media.m3u8?token=ann-token").await;
    assert_eq!(s, 200, "{before}");
    let held = segments_and_keys(&base, &before);
    assert!(!held.is_empty());
    decrypts(&origin, &held[0], "before the roll").await;
    // The capability the player refreshes its playlist with.
    let refresh = before
        .lines()
        .find_map(|l| {
            l.split_once("tg=")
                .map(|(_, t)| t.split('&').next().unwrap().to_owned())
        })
        .unwrap();
    let refresh = format!("/live/ch1/media.m3u8?tg={refresh}");

    let reload = async |tg: &mut Tollgate, toml: String| {
        tg.rewrite_config(&toml);
        tg.signal(Signal::SIGHUP);
        tg.log_line("\"configuration reloaded\"", |v| {
            is_message(v, "configuration reloaded")
        })
        .await;
    };
    reload(
        &mut tg,
        keys(&format!(
            "master = \"{MASTER_B}\"\nprevious = [\"{MASTER_A}\"]"
        )),
    )
    .await;
    // What the player holds still plays and decrypts.
    for held in &held {
        decrypts(&origin, held, "URLs held across the roll").await;
    }
    let (s, after) = fetch(&tg, &refresh).await;
    assert_eq!(
        s, 200,
        "the held capability refreshes the playlist: {after}"
    );
    let fresh = segments_and_keys(&base, &after);
    decrypts(&origin, &fresh[0], "the playlist after the roll").await;
    // Signed with the new master: tags differ for the same segment.
    assert_ne!(fresh[0].0.query(), held[0].0.query());
    // Reopening the entry URL keeps the one session.
    let (s, _) = fetch(&tg, "/live/ch1/media.m3u8?token=ann-token").await;
    assert_eq!(s, 200);
    let sessions = admin_call(
        &tg,
        "GET",
        "/api/v1/sessions?user=ann",
        Some("test-admin-token"),
        None,
    )
    .await;
    let listed: serde_json::Value = serde_json::from_str(&sessions.1).unwrap();
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 1, "{listed}");

    // Rolled again without the first master: what it signed is refused.
    reload(
        &mut tg,
        keys(&format!(
            "master = \"{MASTER_C}\"\nprevious = [\"{MASTER_B}\"]"
        )),
    )
    .await;
    let (s, body) = fetch(&tg, held[0].0.as_str().trim_start_matches(&tg.url(""))).await;
    assert_eq!(
        (s, body),
        (403, error_body("forbidden")),
        "a master-A segment URL"
    );
    let (s, _) = fetch(&tg, &refresh).await;
    assert_eq!(s, 403, "a master-A capability");
    // The master-B playlist still works.
    decrypts(&origin, &fresh[0], "master-B URLs with B in previous").await;
}

/// The incarnation in a key URI (`/.tollgate/key/<route>/<channel>/<inc>/<period>.key`).
fn key_inc(key: &Url) -> u64 {
    let parts: Vec<&str> = key.path().split('/').collect();
    parts[parts.len() - 2].parse().unwrap()
}

async fn key_bytes(key: &Url) -> Vec<u8> {
    get_h1(key.as_str()).await.bytes().await.unwrap().to_vec()
}

/// SPEC §7.6: `POST /api/v1/keys/rotate` gives new key URIs and keys from
/// the next key period on; what was signed before still decrypts. For a
/// live channel keyed by position and for a catch-up channel keyed by time.
#[tokio::test(flavor = "multi_thread")]
async fn rotating_keys_changes_them_from_the_next_period_and_earlier_ones_still_decrypt() {
    let origin = Dvr::start().await;
    let state = tempfile::tempdir().unwrap();
    // The proxy's clock an hour behind the origin's, so the archive holds
    // segments after the rotation's boundary.
    let start = unix_now() - 3600;
    let proxy = start_proxy_on_clock_at(&config(origin.addr, state.path()), start).await;
    let rotate = async |channel: &str| {
        let (s, body) = admin_call(
            &proxy,
            "POST",
            "/api/v1/keys/rotate",
            Some("test-admin-token"),
            Some(&serde_json::json!({ "channel": channel })),
        )
        .await;
        assert_eq!(s, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };

    // A live channel (position keys): one incarnation per playlist.
    let base2 = Url::parse(&proxy.url("/live/ch2/")).unwrap();
    let live = async || {
        let (s, text) = fetch(&proxy, "/live/ch2/media.m3u8?token=cat-token").await;
        assert_eq!(s, 200, "{text}");
        segments_and_keys(&base2, &text)
    };
    let held = live().await;
    let inc0 = key_inc(&held[0].1);
    let answer = rotate("ch2").await;
    assert_eq!(answer["generation"], 1);
    assert_eq!(answer["channel"], "ch2");
    // Until the next period boundary nothing changes.
    assert_eq!(key_inc(&live().await[0].1), inc0);
    let (_, ch1) = fetch(&proxy, "/live/ch1/media.m3u8?token=ann-token").await;
    let ch1_inc =
        key_inc(&segments_and_keys(&Url::parse(&proxy.url("/live/ch1/")).unwrap(), &ch1)[0].1);
    let period = 600;
    let boundary = (start / period + 1) * period;
    assert_eq!(
        answer["effective_at"],
        tollgate::units::rfc3339(boundary),
        "the next 10-minute boundary"
    );
    proxy
        .control
        .clock
        .advance(Duration::from_secs(boundary - start));
    let after = live().await;
    let inc1 = key_inc(&after[0].1);
    assert_ne!(inc1, inc0, "new key URIs from the boundary on");
    assert!(inc1 >= 1 << 63, "{inc1}");
    assert!(after.iter().all(|s| key_inc(&s.1) == inc1));
    assert_ne!(
        key_bytes(&after[0].1).await,
        key_bytes(&held[0].1).await,
        "new keys"
    );
    decrypts(&origin, &after[0], "after the rotation").await;
    for h in &held {
        decrypts(&origin, h, "URLs from before the rotation").await;
    }
    // Another channel is not rotated.
    let (_, ch1_after) = fetch(&proxy, "/live/ch1/media.m3u8?token=ann-token").await;
    let base1 = Url::parse(&proxy.url("/live/ch1/")).unwrap();
    assert_eq!(
        key_inc(&segments_and_keys(&base1, &ch1_after)[0].1),
        ch1_inc
    );

    // Catch-up (time-based periods): a window across the next boundary
    // keeps its keys before it and changes them from it on.
    let now = boundary;
    // 40 s around the next boundary (the origin's archive has it: its clock
    // is an hour ahead).
    let from = (now / period + 1) * period - 20;
    let window = format!("/live/ch1/mono-{from}-40.m3u8?token=ann-token");
    let (_, before_text) = fetch(&proxy, &window).await;
    let before = segments_and_keys(&base1, &before_text);
    let answer = rotate("ch1").await;
    let boundary1 = (now / period + 1) * period;
    assert_eq!(answer["effective_at"], tollgate::units::rfc3339(boundary1));
    let (_, after_text) = fetch(&proxy, &window).await;
    let after = segments_and_keys(&base1, &after_text);
    assert_eq!(before.len(), after.len());
    let mut switched = 0;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a.0.path(), b.0.path());
        let period_of = |k: &Url| {
            k.path()
                .rsplit('/')
                .next()
                .unwrap()
                .trim_end_matches(".key")
                .parse::<u64>()
                .unwrap()
        };
        if period_of(&a.1) * period >= boundary1 {
            assert_ne!(key_inc(&a.1), key_inc(&b.1), "{}", a.0);
            assert_ne!(key_bytes(&a.1).await, key_bytes(&b.1).await);
            switched += 1;
        } else {
            assert_eq!(key_inc(&a.1), 0, "{}", a.0);
            assert_eq!(key_bytes(&a.1).await, key_bytes(&b.1).await);
        }
        decrypts(&origin, a, "catch-up after the rotation").await;
    }
    assert!(
        switched > 0 && switched < after.len(),
        "{switched} of {}",
        after.len()
    );
    for b in &before {
        decrypts(&origin, b, "catch-up URLs from before the rotation").await;
    }

    // The generations survive a restart (keys.json in the state dir): the
    // live channel keeps its rotated keys.
    stop(proxy).await;
    let again = start_proxy_on_clock_at(&config(origin.addr, state.path()), boundary + 1).await;
    let (_, text) = fetch(&again, "/live/ch2/media.m3u8?token=cat-token").await;
    let restarted = segments_and_keys(&base2, &text);
    assert!(key_inc(&restarted[0].1) >= 1 << 63, "{text}");
    assert!(state.path().join("keys.json").exists());
}

/// Channels at scale through the admin API (issue: "at least 10,000 in a
/// snapshot"): a bulk snapshot of 10,000 channels and a tariff by tag,
/// listed in order, in the viewer's channel list, and kept across a restart.
#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_channels_in_a_snapshot_survive_a_restart() {
    let origin = Dvr::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start_proxy(&config(origin.addr, state.path())).await;
    let channels: serde_json::Map<String, serde_json::Value> = (0..10_000)
        .map(|i| {
            let tag = if i % 2 == 0 { "even" } else { "odd" };
            (
                format!("c{i:05}"),
                serde_json::json!({"title": format!("Channel {i}"), "tags": [tag], "dvr_depth": "1h"}),
            )
        })
        .collect();
    let snapshot = serde_json::json!({
        "users": {"zed": {"tokens": ["zed-token"], "packages": ["evens"]}},
        "packages": {"evens": {"tags": ["even"]}},
        "channels": channels,
    });
    let (s, body) = admin_call(
        &proxy,
        "PUT",
        "/api/v1/snapshot",
        Some("test-admin-token"),
        Some(&snapshot),
    )
    .await;
    assert_eq!(s, 204, "{body}");
    let check = async |proxy: &TestProxy| {
        let (s, body) = admin_call(
            proxy,
            "GET",
            "/api/v1/channels",
            Some("test-admin-token"),
            None,
        )
        .await;
        assert_eq!(s, 200);
        let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
        let names: Vec<&str> = listed["channels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        // The config's three first, then the snapshot's in its order.
        assert_eq!(names.len(), 10_003);
        assert_eq!(&names[..4], ["ch1", "ch2", "ch3", "c00000"]);
        assert_eq!(names[10_002], "c09999");
        let (s, list) = fetch(proxy, "/playlist.m3u8?token=zed-token").await;
        assert_eq!(s, 200);
        let parsed = crispy_m3u::parse(&list).unwrap();
        assert_eq!(parsed.entries.len(), 5_000);
        assert_eq!(parsed.entries[1].tvg_id.as_deref(), Some("c00002"));
        assert_eq!(parsed.entries[1].name.as_deref(), Some("Channel 2"));
    };
    check(&proxy).await;
    stop(proxy).await;
    let again = start_proxy(&config(origin.addr, state.path())).await;
    check(&again).await;
}

/// SPEC §7.2 through the proxy: a London user plays the London channel and
/// is not_entitled on the Paris one (and the reverse), and each channel
/// list holds only their region's channels.
#[tokio::test(flavor = "multi_thread")]
async fn regional_channels_play_only_in_their_region() {
    let origin = Dvr::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start_proxy(&config(origin.addr, state.path())).await;
    let put = async |path: &str, body: serde_json::Value| {
        let (s, b) = admin_call(&proxy, "PUT", path, Some("test-admin-token"), Some(&body)).await;
        assert_eq!(s, 204, "{path}: {b}");
    };
    // ch1 is London's news, ch3 Paris's (the API replaces the config's).
    let news = |region: &str| serde_json::json!({"tags": ["news"], "regions": [region]});
    put("/api/v1/channels/ch1", news("london")).await;
    put("/api/v1/channels/ch3", news("paris")).await;
    for (id, region) in [("lon", "london"), ("par", "paris")] {
        let user = serde_json::json!({"tokens": [format!("{id}-token")], "packages": ["news"], "region": region});
        put(&format!("/api/v1/users/{id}"), user).await;
    }
    for (token, mine, theirs) in [("lon-token", "ch1", "ch3"), ("par-token", "ch3", "ch1")] {
        let (s, body) = fetch(&proxy, &format!("/live/{mine}/index.m3u8?token={token}")).await;
        assert_eq!(s, 200, "{token} on {mine}: {body}");
        let (s, body) = fetch(&proxy, &format!("/live/{theirs}/index.m3u8?token={token}")).await;
        assert_eq!(
            (s, body),
            (403, error_body("not_entitled")),
            "{token} on {theirs}"
        );
        let (_, list) = fetch(&proxy, &format!("/playlist.m3u8?token={token}")).await;
        let ids: Vec<String> = crispy_m3u::parse(&list)
            .unwrap()
            .entries
            .into_iter()
            .filter_map(|e| e.tvg_id)
            .collect();
        assert_eq!(ids, [mine], "{token}: {list}");
    }
    // A user without a region sees no regional channel.
    let (s, body) = fetch(&proxy, "/live/ch1/index.m3u8?token=ann-token").await;
    assert_eq!((s, body), (403, error_body("not_entitled")));
    let (s, body) = admin_call(
        &proxy,
        "GET",
        "/api/v1/users/lon",
        Some("test-admin-token"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(body.contains("\"region\":\"london\""), "{body}");
}
