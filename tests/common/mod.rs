//! Test harness: a real hyper origin and the real proxy, both on 127.0.0.1:0.
// Not every test file uses every helper; tests fail loudly by design.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod config;
pub mod control_plane;
pub mod media;
pub mod process;
pub mod redis;
pub mod static_origin;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tollgate::config::Config;
use tollgate::server::{self, Control, Listeners};

#[allow(unused_imports)] // not every test file builds routes or users
pub use config::{ConfigBuilder, Route, User};

pub type OriginBody = BoxBody<Bytes, std::io::Error>;

/// A request as the origin saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path_and_query: String,
    pub headers: http::HeaderMap,
}

/// A real hyper origin on 127.0.0.1:0.
pub struct TestOrigin {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: CancellationToken,
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestOrigin {
    pub fn seen_paths(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.path_and_query.clone())
            .collect()
    }
}

pub fn full(data: impl Into<Bytes>) -> OriginBody {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Start an origin answering every request with `handler`.
pub async fn start_origin<F, Fut>(handler: F) -> TestOrigin
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<OriginBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stop = CancellationToken::new();
    let (seen2, stop2) = (seen.clone(), stop.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                () = stop2.cancelled() => return,
                r = listener.accept() => r.unwrap(),
            };
            let (handler, seen) = (handler.clone(), seen2.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    seen.lock().unwrap().push(Seen {
                        path_and_query: req
                            .uri()
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default(),
                        headers: req.headers().clone(),
                    });
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    TestOrigin { addr, seen, stop }
}

/// A running in-process proxy.
pub struct TestProxy {
    pub http: SocketAddr,
    pub tls: Option<SocketAddr>,
    pub admin: SocketAddr,
    pub control: Control,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl TestProxy {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }
}

/// Where a proxy under test answers, in process ([`TestProxy`]) or as a
/// child process ([`process::Tollgate`]), so [`fetch`] and [`admin_call`]
/// drive either.
pub trait Endpoints {
    /// `http://<viewer listener><path>`.
    fn url(&self, path: &str) -> String;
    /// `http://<admin listener><path>`.
    fn admin_url(&self, path: &str) -> String;
}

impl Endpoints for TestProxy {
    fn url(&self, path: &str) -> String {
        TestProxy::url(self, path)
    }
    fn admin_url(&self, path: &str) -> String {
        TestProxy::admin_url(self, path)
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.control.stop.cancel();
    }
}

/// A config with one origin and one `/live/` route open to loopback, plus `extra` TOML.
pub fn config_for(origin: SocketAddr, extra: &str) -> String {
    config_with_auth(origin, "ip", extra)
}

/// [`config_for`] with the route's auth method `auth` (`ip` allows loopback).
/// `extra` lands in `[server]` (keys, then any further tables).
pub fn config_with_auth(origin: SocketAddr, auth: &str, extra: &str) -> String {
    loopback_config(origin, auth).server(extra).build()
}

/// The builder of [`config_with_auth`] (without its `extra`): short origin
/// timeouts, admin token `test-admin-token`, `[ip]` allowing loopback, and
/// the `/live/` route authenticated by `auth`.
pub fn loopback_config(origin: SocketAddr, auth: &str) -> ConfigBuilder {
    ConfigBuilder::new(origin)
        .server("max_uri_bytes = \"2KiB\"\nshutdown_grace = \"5s\"")
        .admin("test-admin-token")
        .ip_allow(&["127.0.0.0/8"])
        .origin_keys("first_byte_timeout = \"1s\"\nidle_timeout = \"1s\"\nconnect_timeout = \"1s\"")
        .live(&[auth])
}

/// The builder of [`admin_api_config`]: admin token `test-admin-token`, the
/// state dir `state`, one `/live/` route authenticated by user tokens, and
/// the config users alice (`alice-token`) and carol (`carol-token`).
pub fn admin_api_builder(origin: SocketAddr, state: &std::path::Path) -> ConfigBuilder {
    ConfigBuilder::new(origin)
        .admin("test-admin-token")
        .state(state)
        .live(&["token"])
        .user("alice", &["alice-token"], &["*"])
        .user("carol", &["carol-token"], &["*"])
}

/// [`admin_api_builder`] as text.
pub fn admin_api_config(origin: SocketAddr, state: &std::path::Path) -> String {
    admin_api_builder(origin, state).build()
}

/// Start the proxy with config text (relative paths resolve against `base`).
pub async fn start_proxy_in(toml: &str, base: &std::path::Path) -> TestProxy {
    start_proxy_with(toml, base, Control::default()).await
}

/// Start the proxy on a manual clock standing at the system's time now:
/// tests of TTL, idle and expiry paths advance it
/// (`proxy.control.clock.advance(..)`) instead of sleeping.
pub async fn start_proxy_on_manual_clock(toml: &str) -> TestProxy {
    let control = Control {
        clock: tollgate::clock::Clock::manual(tollgate::clock::unix_now()),
        ..Control::default()
    };
    start_proxy_with(toml, std::path::Path::new("."), control).await
}

async fn start_proxy_with(toml: &str, base: &std::path::Path, control: Control) -> TestProxy {
    let config = Config::parse(toml, base).unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
    let listeners = Listeners::bind(&config).await.unwrap();
    let http = listeners.http[0].local_addr().unwrap();
    let tls = listeners.tls.first().map(|l| l.local_addr().unwrap());
    let admin = listeners.admin.as_ref().unwrap().local_addr().unwrap();
    let task = tokio::spawn(server::run(config, listeners, control.clone()));
    TestProxy {
        http,
        tls,
        admin,
        control,
        task,
    }
}

/// Start the proxy on a manual clock standing at `start` (unix seconds).
pub async fn start_proxy_on_clock_at(toml: &str, start: u64) -> TestProxy {
    let control = Control {
        clock: tollgate::clock::Clock::manual(start),
        ..Control::default()
    };
    start_proxy_with(toml, std::path::Path::new("."), control).await
}

pub async fn start_proxy(toml: &str) -> TestProxy {
    start_proxy_in(toml, std::path::Path::new(".")).await
}

/// Stop `proxy` at once and wait until its server task has returned (so
/// its state dir and ports are free for the next one).
pub async fn stop(proxy: TestProxy) {
    proxy.control.stop.cancel();
    eventually("the proxy to stop", async || {
        if proxy.task.is_finished() {
            Ok(())
        } else {
            Err("running".to_owned())
        }
    })
    .await;
}

/// A plain HTTP/1.1 client.
pub fn h1_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .build()
        .unwrap()
}

/// An h2c (prior knowledge) client.
pub fn h2c_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .build()
        .unwrap()
}

/// Deterministic test bytes.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect()
}

/// Metric value of the first line starting with `prefix` in `/metrics` text.
pub fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A deadline for a poll: [`Deadline::tick`] spaces out attempts and fails
/// the test, with the last thing seen, once the deadline has passed.
pub struct Deadline {
    end: tokio::time::Instant,
    what: String,
}

impl Deadline {
    pub fn new(within: std::time::Duration, what: impl Into<String>) -> Self {
        Self {
            end: tokio::time::Instant::now() + within,
            what: what.into(),
        }
    }

    /// Fail if the deadline has passed, else wait a little before the next attempt.
    pub async fn tick(&self, last_seen: impl std::fmt::Debug) {
        assert!(
            tokio::time::Instant::now() < self.end,
            "timed out waiting for {}; last seen: {last_seen:?}",
            self.what
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Retry `attempt` until it returns `Ok`, failing after 10 s with `what` and
/// the last `Err` it gave.
pub async fn eventually<T>(what: &str, mut attempt: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = Deadline::new(std::time::Duration::from_secs(10), what);
    loop {
        match attempt().await {
            Ok(v) => return v,
            Err(last) => deadline.tick(last).await,
        }
    }
}

/// Send `request`, which must get a response (whatever its status).
pub async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    request.send().await.unwrap()
}

/// GET `url` over HTTP/1.1: the response, whatever its status.
pub async fn get_h1(url: impl reqwest::IntoUrl) -> reqwest::Response {
    h1_client().get(url).send().await.unwrap()
}

/// GET `url` over HTTP/1.1 and return the body as text.
pub async fn get_text(url: &str) -> String {
    h1_client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The playlist [`content_origin`] serves for every `.m3u8`.
pub const PLAYLIST: &str = "#EXTM3U\r\n#EXT-X-VERSION:3\r\n#EXT-X-TARGETDURATION:2\r\n#EXT-X-MEDIA-SEQUENCE:7\r\n#EXTINF:2.000,\r\nseg-7.ts\r\n";

/// An origin serving a playlist, a 1 MiB segment, and statuses on demand.
pub async fn content_origin() -> TestOrigin {
    start_origin(|req: Request<Incoming>| async move {
        let path = req.uri().path().to_owned();
        let mut resp = match path.as_str() {
            p if p.ends_with(".m3u8") => Response::new(full(PLAYLIST)),
            p if p.ends_with("big.ts") => Response::new(full(pattern(1 << 20))),
            "/live/ch1/missing.ts" => {
                let mut r = Response::new(full("nope"));
                *r.status_mut() = StatusCode::NOT_FOUND;
                r
            }
            "/live/ch1/broken.ts" => {
                let mut r = Response::new(full("boom"));
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                r
            }
            _ => Response::new(full("ok")),
        };
        resp.headers_mut()
            .insert("x-origin", "yes".parse().unwrap());
        resp
    })
    .await
}

/// A rewritten playlist with the proxy's own `tg=`/`tgs=` parameters taken
/// out again, to compare it with what the origin served.
pub fn strip_capabilities(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = rest.find("tg") {
        let before = &rest[..at];
        let sep = before.chars().last();
        let after = &rest[at..];
        let is_param = matches!(sep, Some('?') | Some('&'))
            && (after.starts_with("tg=") || after.starts_with("tgs="));
        if !is_param {
            out.push_str(&rest[..at + 2]);
            rest = &rest[at + 2..];
            continue;
        }
        let end = after.find(['&', '"', '\r', '\n']).unwrap_or(after.len());
        let mut keep = before;
        let mut tail = &after[end..];
        if tail.starts_with('&') {
            // "?tg=X&more" -> "?more"; "&tg=X&more" -> "&more"
            tail = &tail[1..];
        } else {
            // "?tg=X" or "&tg=X" at the end of the URI: drop the separator too.
            keep = &before[..before.len() - 1];
        }
        out.push_str(keep);
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// The `/live/<channel>/` path of the first segment (`seg-7.ts?tg=…`) of a
/// rewritten [`PLAYLIST`].
pub fn first_segment(channel: &str, playlist: &str) -> String {
    let line = playlist
        .lines()
        .find(|l| l.starts_with("seg-7.ts?tg="))
        .unwrap_or_else(|| panic!("no segment in {playlist}"));
    format!("/live/{channel}/{line}")
}

/// GET `path` on the proxy: status and body text.
pub async fn fetch(proxy: &impl Endpoints, path: &str) -> (u16, String) {
    let r = h1_client().get(proxy.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The body of an error answer with `code`.
pub fn error_body(code: &str) -> String {
    format!("{{\"error\":\"{code}\"}}\n")
}

/// Call the admin API: `method` on `path`, with the bearer `token` and a
/// JSON `body` when given; status and body text.
pub async fn admin_call(
    proxy: &impl Endpoints,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> (u16, String) {
    let mut r = h1_client().request(method.parse().unwrap(), proxy.admin_url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The live sessions of `user` (`GET /api/v1/sessions?user=`, bearer
/// `token`), as the API lists them.
pub async fn sessions_of(
    proxy: &impl Endpoints,
    token: &str,
    user: &str,
) -> Vec<serde_json::Value> {
    let path = format!("/api/v1/sessions?user={user}");
    let (s, body) = admin_call(proxy, "GET", &path, Some(token), None).await;
    assert_eq!(s, 200, "{path}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["sessions"].as_array().unwrap().clone()
}

/// One segment of a rewritten media playlist: its URL, the key URI in
/// effect for it and its IV (the key line's explicit `IV`, else its media
/// sequence number, RFC 8216 §5.2).
#[derive(Debug, Clone)]
pub struct KeyedSegment {
    pub url: reqwest::Url,
    pub key: reqwest::Url,
    pub iv: u128,
}

impl KeyedSegment {
    /// The last path segment of its URL (`seg-7.ts`).
    pub fn name(&self) -> &str {
        self.url.path().rsplit('/').next().unwrap_or_default()
    }
}

/// Every segment of `playlist` (rewritten by the proxy, at `base`), with
/// its key; fails the test on a segment before any key line.
pub fn keyed_segments(base: &reqwest::Url, playlist: &str) -> Vec<KeyedSegment> {
    let (mut msn, mut key, mut out) = (0u128, None, Vec::new());
    for line in playlist.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            msn = v.trim().parse().unwrap();
        } else if let Some(rest) = line.strip_prefix("#EXT-X-KEY:") {
            let uri = rest
                .split("URI=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let iv = rest
                .rsplit_once("IV=0x")
                .map(|(_, iv)| u128::from_str_radix(iv, 16).unwrap());
            key = Some((base.join(uri).unwrap(), iv));
        } else if !line.starts_with('#') && !line.is_empty() {
            let (k, iv) = key.clone().expect("a key line before the segments");
            out.push(KeyedSegment {
                url: base.join(line).unwrap(),
                key: k,
                iv: iv.unwrap_or(msn),
            });
            msn += 1;
        }
    }
    out
}
