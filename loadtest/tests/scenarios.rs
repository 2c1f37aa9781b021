//! The harness's own correctness test (issue 6, acceptance 4): each scenario
//! runs briefly against the real proxy (in process, `tollgate::server::run`)
//! in front of the real simulated origin, and the report's counts are
//! checked for consistency; then the verification is shown to catch a proxy
//! whose key endpoint lies and an origin whose bytes differ.
//!
//! Everything listens on 127.0.0.1:0. No timing thresholds: the counts are
//! checked, not latencies.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tollgate::config::Config;
use tollgate::server::{self, Control, Listeners};
use tollgate::simorigin::{SegmentSource, SimOrigin, SimOriginOptions};
use tollgate_loadtest::admin::AdminClient;
use tollgate_loadtest::entry::EntryMinter;
use tollgate_loadtest::report::{Kind, Report};
use tollgate_loadtest::viewers::RunOptions;
use tollgate_loadtest::zap::ZapOptions;
use url::Url;

const ADMIN_TOKEN: &str = "loadtest-admin-token";
const SEGMENT: Duration = Duration::from_secs(1);
const SEGMENT_BYTES: usize = 20_000;

/// A simulated origin serving `prefix` on 127.0.0.1:0, stopped on drop.
struct Origin {
    addr: SocketAddr,
    stop: CancellationToken,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn origin(prefix: &str, segment_bytes: usize) -> Origin {
    let sim = SimOrigin::new(SimOriginOptions {
        prefix: prefix.to_owned(),
        channels: vec!["ch1".into(), "ch2".into(), "ch3".into()],
        window: 5,
        segment_source: SegmentSource::Synthetic {
            bytes: segment_bytes,
            duration: SEGMENT,
        },
        ..SimOriginOptions::default()
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(sim.serve(listener, stop.clone()));
    Origin { addr, stop }
}

/// The real proxy, in process, stopped on drop.
struct Proxy {
    http: SocketAddr,
    /// The https listener (h2 and http/1.1 by ALPN), its certificate for
    /// 127.0.0.1 in `ca`.
    https: SocketAddr,
    ca: std::path::PathBuf,
    admin: SocketAddr,
    config: Arc<Config>,
    control: Control,
    _state: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.control.stop.cancel();
    }
}

/// Two encrypting routes: `open` (`ip`, the demo's) on `/live/` and `paid`
/// (`wmsauth`, a user per viewer) on `/paid/`, each to its own origin.
async fn proxy(live: SocketAddr, paid: SocketAddr) -> Proxy {
    let state = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (ca, key) = (state.path().join("cert.pem"), state.path().join("key.pem"));
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    std::fs::write(&key, cert.key_pair.serialize_pem()).unwrap();
    let text = format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
shutdown_grace = "1s"
[[server.tls]]
listen = "127.0.0.1:0"
cert = "{ca}"
key = "{key}"
[admin]
listen = "127.0.0.1:0"
token = "{ADMIN_TOKEN}"
[state]
dir = "{state}"
[ip]
allow = ["127.0.0.0/8"]
[keys]
master = "hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
rotate_every = "3s"
[sessions]
on_limit = "evict_oldest"
[auth.wmsauth]
key = "loadtest-wmsauth-key"
[[origin]]
name = "live"
url = "http://{live}"
[[origin]]
name = "paid"
url = "http://{paid}"
[[route]]
name = "open"
prefix = "/live/"
origin = "live"
auth = ["ip"]
encrypt = true
[[route]]
name = "paid"
prefix = "/paid/"
origin = "paid"
auth = ["wmsauth"]
encrypt = true
"#,
        state = state.path().display(),
        ca = ca.display(),
        key = key.display(),
    );
    let config = Config::parse(&text, state.path()).unwrap();
    let listeners = Listeners::bind(&config).await.unwrap();
    let http = listeners.http[0].local_addr().unwrap();
    let https = listeners.tls[0].local_addr().unwrap();
    let admin = listeners.admin.as_ref().unwrap().local_addr().unwrap();
    let control = Control::default();
    tokio::spawn(server::run(config.clone(), listeners, control.clone()));
    Proxy {
        http,
        https,
        ca,
        admin,
        config: Arc::new(config),
        control,
        _state: state,
    }
}

fn url(addr: SocketAddr) -> Url {
    Url::parse(&format!("http://{addr}/")).unwrap()
}

fn options(target: SocketAddr, proxy: &Proxy, route: &str, origin: SocketAddr) -> RunOptions {
    let entry = EntryMinter::new(
        url(target),
        proxy.config.clone(),
        route,
        None,
        Duration::from_secs(3600),
    )
    .unwrap();
    RunOptions {
        entry,
        channels: vec!["ch1".into(), "ch2".into(), "ch3".into()],
        viewers: 20,
        ramp: Duration::from_secs(1),
        duration: Duration::from_secs(5),
        max_requests: 100_000,
        verify_every: 1,
        origin: Some(url(origin)),
        live_edge: 3,
        timeout: Duration::from_secs(5),
        max_segment: 1 << 20,
        same_source_ip: false,
        user_prefix: "viewer-".into(),
        progress: false,
        stop: CancellationToken::new(),
    }
}

/// Counts that any healthy run must show.
fn assert_consistent(r: &Report, viewers: u64, live_edge: u64) {
    let table = r.table();
    eprintln!("{table}");
    assert_eq!(r.viewers_started, viewers, "{table}");
    for kind in Kind::ALL {
        let k = r.kind(kind).unwrap();
        assert!(k.ok > 0, "no successful {kind:?} request\n{table}");
        assert!(k.p50_ms <= k.p99_ms && k.p99_ms <= k.max_ms, "{table}");
    }
    assert_eq!(r.total_errors(), 0, "{table}");
    assert!(r.errors.is_empty(), "{table}");
    assert_eq!(r.check_failures, 0, "{table}");
    // Every fetched segment was sampled, decrypted and matched the origin.
    let segments = r.kind(Kind::Segment).unwrap().ok;
    assert_eq!(r.segments.new, segments, "{table}");
    assert_eq!(r.segments.verified, segments, "{table}");
    assert_eq!(r.segments.decrypted, segments, "{table}");
    assert_eq!(r.segments.mismatched, 0, "{table}");
    // Real pace: about one new segment per segment duration watched, plus
    // the live-edge start; each viewer may be a poll (two segments) off.
    let expected = r.viewer_seconds / SEGMENT.as_secs_f64() + (viewers * live_edge) as f64;
    let slack = (viewers * 2) as f64 + expected * 0.1;
    assert!(
        (segments as f64 - expected).abs() <= slack,
        "{segments} segments, expected {expected:.0} ± {slack:.0}\n{table}"
    );
    // Players poll about once per target duration, not in a loop.
    let media = r.kind(Kind::Media).unwrap().ok as f64;
    assert!(
        media <= 2.5 * r.viewer_seconds / SEGMENT.as_secs_f64() + viewers as f64,
        "{media} polls in {:.0} viewer-seconds\n{table}",
        r.viewer_seconds
    );
    assert!(r.passed(), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_and_zap_against_the_real_proxy() {
    let live = origin("/live/", SEGMENT_BYTES).await;
    let paid = origin("/paid/", SEGMENT_BYTES).await;
    let proxy = proxy(live.addr, paid.addr).await;
    let admin = AdminClient::new(url(proxy.admin), ADMIN_TOKEN.into(), Duration::from_secs(5));

    // viewers, on the demo-style `ip` route: anonymous, each viewer from
    // its own loopback address, hence its own session.
    let report = tollgate_loadtest::viewers::run(options(proxy.http, &proxy, "open", live.addr))
        .await
        .unwrap();
    assert_consistent(&report, 20, 3);
    let sessions = admin.sessions().await.unwrap();
    let open: Vec<_> = sessions.iter().filter(|s| s.user.is_none()).collect();
    assert_eq!(open.len(), 20, "one session per viewer: {sessions:?}");

    // zap, on the `wmsauth` route: users with max_sessions = 1 under
    // evict_oldest, switching channel every 1.5 s.
    let mut run = options(proxy.http, &proxy, "paid", paid.addr);
    run.viewers = 10;
    run.user_prefix = "zap-".into();
    run.duration = Duration::from_secs(5);
    let report = tollgate_loadtest::zap::run(ZapOptions {
        run,
        zap_every: Duration::from_millis(1500),
        admin: admin.clone(),
        max_sessions: 1,
        create_users: true,
        check_every: Duration::from_millis(500),
    })
    .await
    .unwrap();
    let table = report.table();
    eprintln!("{table}");
    let zap = report.zap.clone().unwrap();
    assert!(zap.zaps >= 10, "{table}");
    assert!(zap.checks >= 3, "{table}");
    assert_eq!(zap.check_errors, 0, "{table}");
    assert_eq!(zap.over_limit, 0, "{table}");
    assert_eq!(zap.max_seen_per_user, 1, "{table}");
    assert_eq!((zap.final_users, zap.final_sessions), (10, 10), "{table}");
    assert_eq!(report.total_errors(), 0, "{table}");
    assert_eq!(report.segments.mismatched, 0, "{table}");
    assert!(report.segments.verified > 0, "{table}");
    // Each switch is a new entry request.
    assert!(
        report.kind(Kind::Master).unwrap().ok >= 10 + zap.zaps,
        "{table}"
    );
    assert!(report.passed(), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_catches_a_wrong_key_and_wrong_bytes() {
    // An origin whose bytes differ from what the proxy fronts: same paths,
    // segments one byte longer (hence other content at every offset too).
    // Started first, so its live clock is ahead and every segment the proxy
    // serves already exists on it.
    let other = origin("/live/", SEGMENT_BYTES + 1).await;
    let live = origin("/live/", SEGMENT_BYTES).await;
    let paid = origin("/paid/", SEGMENT_BYTES).await;
    let proxy = proxy(live.addr, paid.addr).await;

    // A proxy whose key endpoint serves a wrong key: a forwarder in front
    // of tollgate that flips one bit of every key.
    let liar = key_flipper(proxy.http).await;
    let mut run = options(liar, &proxy, "open", live.addr);
    run.viewers = 4;
    run.duration = Duration::from_secs(2);
    let report = tollgate_loadtest::viewers::run(run).await.unwrap();
    let table = report.table();
    eprintln!("{table}");
    assert!(report.kind(Kind::Key).unwrap().ok > 0, "{table}");
    assert!(report.segments.mismatched > 0, "{table}");
    assert_eq!(report.segments.verified, 0, "{table}");
    assert!(report.check_failures > 0 && !report.passed(), "{table}");
    assert!(
        table.contains("verify:") && table.contains("FAIL"),
        "{table}"
    );

    let mut run = options(proxy.http, &proxy, "open", other.addr);
    run.viewers = 4;
    run.duration = Duration::from_secs(2);
    let report = tollgate_loadtest::viewers::run(run).await.unwrap();
    let table = report.table();
    eprintln!("{table}");
    assert!(report.segments.decrypted > 0, "{table}");
    assert!(report.segments.mismatched > 0, "{table}");
    assert_eq!(report.segments.verified, 0, "{table}");
    assert_eq!(
        report.segments.mismatched, report.segments.decrypted,
        "{table}"
    );
    assert!(table.contains("differs from the origin"), "{table}");
    assert!(!report.passed(), "{table}");
}

/// A forwarder to `proxy` that flips the first bit of every key it relays.
async fn key_flipper(proxy: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let client = client.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let client = client.clone();
                    async move {
                        let pq = req
                            .uri()
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default();
                        let uri: hyper::Uri = format!("http://{proxy}{pq}").parse().unwrap();
                        let resp = client.get(uri).await.unwrap();
                        let status = resp.status();
                        let mut body = resp
                            .into_body()
                            .collect()
                            .await
                            .unwrap()
                            .to_bytes()
                            .to_vec();
                        if pq.starts_with("/.tollgate/key/")
                            && let Some(b) = body.first_mut()
                        {
                            *b ^= 0x80;
                        }
                        let mut out = hyper::Response::new(Full::new(Bytes::from(body)));
                        *out.status_mut() = status;
                        Ok::<_, Infallible>(out)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// `burst` over plain HTTP/1.1 to `urls`: `connections` connections,
/// `requests` requests, a generous time bound.
fn burst_args(
    urls: Vec<String>,
    connections: usize,
    requests: u64,
) -> tollgate_loadtest::burst::BurstArgs {
    tollgate_loadtest::burst::BurstArgs {
        urls,
        urls_file: None,
        connections,
        requests,
        duration: Duration::from_secs(20),
        json: None,
        http2: false,
        ca: None,
    }
}

/// `burst` against the real proxy: every request of the budget is counted
/// once, as ok or as an error by status, and the bytes are the bodies'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_counts_against_the_real_proxy() {
    let live = origin("/live/", SEGMENT_BYTES).await;
    let paid = origin("/paid/", SEGMENT_BYTES).await;
    let proxy = proxy(live.addr, paid.addr).await;
    let master = format!("http://{}/live/ch1/index.m3u8", proxy.http);
    let missing = format!("http://{}/nowhere/x.m3u8", proxy.http);
    let args = |urls| burst_args(urls, 4, 300);

    let s = tollgate_loadtest::burst::measure(&args(vec![master.clone()]))
        .await
        .unwrap();
    assert_eq!(s["requests_ok"], 300, "{s:#}");
    assert_eq!(s["errors"], 0, "{s:#}");
    // Every answer is the rewritten master playlist of one session, whose
    // length does not change (a capability has a fixed length).
    let body = plain_get(&master).await;
    assert_eq!(s["bytes"], 300 * body.len() as u64, "{s:#}");

    // Round-robin over an answering and a missing URL: every request is
    // counted once, the misses by their status.
    let s = tollgate_loadtest::burst::measure(&args(vec![master, missing]))
        .await
        .unwrap();
    let (ok, errors) = (
        s["requests_ok"].as_u64().unwrap(),
        s["errors"].as_u64().unwrap(),
    );
    assert_eq!(ok + errors, 300, "{s:#}");
    assert!(ok > 0 && errors > 0, "{s:#}");
    assert_eq!(s["errors_by_status"]["404"], errors, "{s:#}");
    assert_eq!(s["bytes"], ok * body.len() as u64, "{s:#}");

    // A target off loopback is refused before any request.
    let far = tollgate_loadtest::burst::measure(&args(vec!["http://192.0.2.1/x".into()])).await;
    assert!(far.unwrap_err().to_string().contains("loopback"));
}

/// `burst` over https (HTTP/1.1 and h2 by ALPN) and h2c: the same counts
/// and bytes as over plain HTTP/1.1; an https target without `--ca`, or one
/// whose certificate the CA does not vouch for, is refused with a clear
/// error or counted as transport errors, never as answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_speaks_https_h2_and_h2c_against_the_real_proxy() {
    let live = origin("/live/", SEGMENT_BYTES).await;
    let paid = origin("/paid/", SEGMENT_BYTES).await;
    let proxy = proxy(live.addr, paid.addr).await;
    let body = plain_get(&format!("http://{}/live/ch1/index.m3u8", proxy.http)).await;
    let args = |url: String, http2, ca| tollgate_loadtest::burst::BurstArgs {
        http2,
        ca,
        ..burst_args(vec![url], 3, 60)
    };
    let https = format!("https://{}/live/ch1/index.m3u8", proxy.https);
    let h2c = format!("http://{}/live/ch1/index.m3u8", proxy.http);
    for (url, http2) in [(&https, false), (&https, true), (&h2c, true)] {
        let s =
            tollgate_loadtest::burst::measure(&args(url.clone(), http2, Some(proxy.ca.clone())))
                .await
                .unwrap();
        assert_eq!(s["requests_ok"], 60, "{url} h2={http2}: {s:#}");
        assert_eq!(s["errors"], 0, "{url} h2={http2}: {s:#}");
        assert_eq!(
            s["bytes"],
            60 * body.len() as u64,
            "{url} h2={http2}: {s:#}"
        );
        let tls = s["tls"].as_str();
        if url.starts_with("https") {
            assert!(
                tls.is_some_and(|t| t.starts_with("TLSv1_3 TLS13_")),
                "{s:#}"
            );
        } else {
            assert_eq!(tls, None, "{s:#}");
        }
    }

    let no_ca = tollgate_loadtest::burst::measure(&args(https.clone(), false, None)).await;
    assert!(no_ca.unwrap_err().to_string().contains("--ca"));
    // A CA that did not sign the proxy's certificate: every request fails
    // the handshake (counted as io), none is answered.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("other.pem");
    std::fs::write(&wrong, other.cert.pem()).unwrap();
    let mut a = args(https, true, Some(wrong));
    a.requests = 5;
    let s = tollgate_loadtest::burst::measure(&a).await.unwrap();
    assert_eq!(s["requests_ok"], 0, "{s:#}");
    assert_eq!(s["errors_by_status"]["io"], 5, "{s:#}");
}

/// GET `url` with a plain hyper client: the body.
async fn plain_get(url: &str) -> Bytes {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = client.get(url.parse().unwrap()).await.unwrap();
    resp.into_body().collect().await.unwrap().to_bytes()
}
