//! The `backend` auth method through the running proxy, against a real
//! in-test HTTP backend (a hyper server whose answer each test scripts and
//! whose requests are counted): allow, deny, backend down or slow, answers
//! cached for `X-AuthDuration`, grants surviving an outage, several
//! backends, and concurrent look-ups coalesced into one backend request.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::sync::watch;
use tokio::time::Instant;
use tollgate::config::Config;

/// What the scripted backend answers; tests change it while running.
#[derive(Clone)]
struct Plan {
    status: u16,
    headers: Vec<(&'static str, String)>,
    /// Wait this long before answering (a slow or hung backend).
    delay: Option<Duration>,
    /// Hold every answer until this turns true.
    gate: Option<watch::Receiver<bool>>,
}

impl Plan {
    fn answer(status: u16, headers: &[(&'static str, &str)]) -> Self {
        Self {
            status,
            headers: headers.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
            delay: None,
            gate: None,
        }
    }
}

type Script = Arc<Mutex<Plan>>;

/// A backend answering per its (changeable) plan; `seen` counts requests.
async fn backend(plan: Plan) -> (TestOrigin, Script) {
    let script = Arc::new(Mutex::new(plan));
    let s = script.clone();
    let origin = start_origin(move |_req: Request<Incoming>| {
        let plan = s.lock().unwrap().clone();
        async move {
            if let Some(mut gate) = plan.gate {
                let _ = gate.wait_for(|open| *open).await;
            }
            if let Some(d) = plan.delay {
                tokio::time::sleep(d).await;
            }
            let mut resp = Response::new(full("backend"));
            *resp.status_mut() = StatusCode::from_u16(plan.status).unwrap();
            for (k, v) in plan.headers {
                resp.headers_mut().insert(k, v.parse().unwrap());
            }
            resp
        }
    })
    .await;
    (origin, script)
}

/// A config whose `/live/` route uses only `backend`, with these backends.
fn config(origin: SocketAddr, backends: &[String], timeout: &str) -> String {
    let timeout = format!("timeout = \"{timeout}\"");
    let config = ConfigBuilder::new(origin).route(Route::new("live", "/live/").auth(&["backend"]));
    backends
        .iter()
        .fold(config, |c, url| c.backend(url, &timeout))
        .build()
}

fn url_of(b: &TestOrigin) -> String {
    format!("http://{}/auth", b.addr)
}

/// A port nothing listens on (bound, then released).
fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/auth", l.local_addr().unwrap())
}

fn count(b: &TestOrigin) -> usize {
    b.seen.lock().unwrap().len()
}

async fn status(proxy: &TestProxy, path: &str) -> u16 {
    get_h1(proxy.url(path)).await.status().as_u16()
}

const PLAYLIST_T1: &str = "/live/ch1/index.m3u8?token=t1";

#[tokio::test]
async fn backend_200_allows_and_gets_the_flussonic_query() {
    let origin = content_origin().await;
    let (b, _) = backend(Plan::answer(200, &[("x-userid", "alice")])).await;
    let proxy = start_proxy(&config(origin.addr, &[url_of(&b)], "2s")).await;

    let resp = get_h1(proxy.url(PLAYLIST_T1)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(strip_capabilities(&resp.text().await.unwrap()), PLAYLIST);
    // A segment of the same channel is the same session: no second look-up.
    assert_eq!(status(&proxy, "/live/ch1/seg-7.ts?token=t1").await, 200);
    assert_eq!(count(&b), 1);

    let q = b.seen_paths()[0].clone();
    for part in [
        "/auth?name=ch1&",
        "ip=127.0.0.1",
        "proto=hls",
        "request_type=new_session",
        "request_number=0",
        "token=t1",
    ] {
        assert!(q.contains(part), "{part} missing in {q}");
    }
    // The session id is not the token.
    assert!(!q.contains("session_id=t1"), "{q}");
    // The origin never sees the viewer's token.
    assert!(origin.seen_paths().iter().all(|p| !p.contains("token")));

    let metrics = get_text(&proxy.admin_url("/metrics")).await;
    assert_eq!(
        metric(
            &metrics,
            "tollgate_auth_decisions_total{method=\"backend\",outcome=\"allow\"}"
        ),
        2.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn backend_403_denies() {
    let origin = content_origin().await;
    let (b, _) = backend(Plan::answer(403, &[])).await;
    let proxy = start_proxy(&config(origin.addr, &[url_of(&b)], "2s")).await;
    let resp = get_h1(proxy.url(PLAYLIST_T1)).await;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("forbidden"));
    assert_eq!(count(&b), 1);
    assert!(origin.seen_paths().is_empty());
}

#[tokio::test]
async fn backend_down_refuses_a_new_viewer() {
    let origin = content_origin().await;
    let proxy = start_proxy(&config(origin.addr, &[closed_port_url()], "2s")).await;
    assert_eq!(status(&proxy, PLAYLIST_T1).await, 403);
    assert!(origin.seen_paths().is_empty());
}

#[tokio::test]
async fn slow_backend_refuses_within_the_timeout() {
    let origin = content_origin().await;
    let mut plan = Plan::answer(200, &[]);
    plan.delay = Some(Duration::from_secs(10));
    let (b, _) = backend(plan).await;
    let proxy = start_proxy(&config(origin.addr, &[url_of(&b)], "300ms")).await;
    let started = Instant::now();
    assert_eq!(status(&proxy, PLAYLIST_T1).await, 403);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(count(&b), 1);
}

#[tokio::test]
async fn auth_duration_caches_a_denial_then_rechecks() {
    let origin = content_origin().await;
    let (b, script) = backend(Plan::answer(403, &[("x-authduration", "2")])).await;
    let proxy = start_proxy(&config(origin.addr, &[url_of(&b)], "2s")).await;
    assert_eq!(status(&proxy, PLAYLIST_T1).await, 403);
    *script.lock().unwrap() = Plan::answer(200, &[("x-authduration", "2")]);
    // Within X-AuthDuration the cached denial answers, without a look-up.
    assert_eq!(status(&proxy, PLAYLIST_T1).await, 403);
    assert_eq!(count(&b), 1);
    // Once it runs out the backend is asked again (an update) and allows.
    // This test is about time: poll, bounded.
    let deadline = Deadline::new(Duration::from_secs(10), "the re-check to allow");
    loop {
        let s = status(&proxy, PLAYLIST_T1).await;
        if s == 200 {
            break;
        }
        deadline.tick((s, b.seen_paths())).await;
    }
    assert_eq!(count(&b), 2);
    let q = b.seen_paths()[1].clone();
    assert!(q.contains("request_type=update_session"), "{q}");
    assert!(q.contains("request_number=1"), "{q}");
}

#[tokio::test]
async fn grant_survives_the_backend_going_down_but_new_viewers_are_refused() {
    let origin = content_origin().await;
    let (b, script) = backend(Plan::answer(200, &[("x-authduration", "1")])).await;
    let proxy = start_proxy(&config(origin.addr, &[url_of(&b)], "300ms")).await;
    assert_eq!(status(&proxy, PLAYLIST_T1).await, 200);
    // The backend hangs from now on: every look-up times out.
    script.lock().unwrap().delay = Some(Duration::from_secs(30));
    // Keep playing until the grant has run out and been re-checked against
    // the hung backend: the viewer must keep getting 200 throughout.
    let deadline = Deadline::new(Duration::from_secs(10), "a re-check during the outage");
    while count(&b) < 2 {
        let s = status(&proxy, PLAYLIST_T1).await;
        assert_eq!(s, 200, "existing grant refused during the outage");
        deadline.tick(count(&b)).await;
    }
    assert_eq!(status(&proxy, PLAYLIST_T1).await, 200);
    // A new viewer (another token) is refused while the backend is down.
    assert_eq!(status(&proxy, "/live/ch1/index.m3u8?token=t2").await, 403);
}

#[tokio::test]
async fn any_backend_allowing_allows() {
    let origin = content_origin().await;
    let (deny, _) = backend(Plan::answer(403, &[])).await;
    let (allow, _) = backend(Plan::answer(200, &[])).await;
    let urls = [url_of(&deny), closed_port_url(), url_of(&allow)];
    let proxy = start_proxy(&config(origin.addr, &urls, "2s")).await;
    assert_eq!(status(&proxy, PLAYLIST_T1).await, 200);
    assert_eq!((count(&deny), count(&allow)), (1, 1));
    // Two that refuse (one down) refuse.
    let urls = [url_of(&deny), closed_port_url()];
    let proxy = start_proxy(&config(origin.addr, &urls, "2s")).await;
    assert_eq!(status(&proxy, PLAYLIST_T1).await, 403);
}

#[tokio::test]
async fn concurrent_identical_lookups_make_one_backend_request() {
    let origin = content_origin().await;
    let (open, gate) = watch::channel(false);
    let mut plan = Plan::answer(200, &[("x-authduration", "60")]);
    plan.gate = Some(gate);
    let (b, _) = backend(plan).await;
    let proxy = Arc::new(start_proxy(&config(origin.addr, &[url_of(&b)], "5s")).await);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let proxy = proxy.clone();
            tokio::spawn(async move { status(&proxy, PLAYLIST_T1).await })
        })
        .collect();
    // The first look-up reached the backend and is held there.
    let deadline = Deadline::new(Duration::from_secs(10), "the first look-up");
    while count(&b) == 0 {
        deadline.tick(0).await;
    }
    // Every viewer is connected to the proxy (one connection each) before
    // the backend answers, so the others are queued behind that look-up.
    // Whatever the timing, the count below must be 1: a request arriving
    // after the answer finds the cached grant (60 s), one arriving before
    // waits on the same look-up.
    let deadline = Deadline::new(Duration::from_secs(10), "8 viewer connections");
    loop {
        let m = get_text(&proxy.admin_url("/metrics")).await;
        let connected = metric(&m, "tollgate_open_connections{listener=\"http\"}");
        if connected >= 8.0 {
            break;
        }
        deadline.tick(connected).await;
    }
    open.send(true).unwrap();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(count(&b), 1);
}

#[test]
fn config_errors_name_the_backend_keys() {
    let text = ConfigBuilder::new("127.0.0.1:1".parse().unwrap())
        .no_admin()
        .route(Route::new("live", "/live/").auth(&["backend"]))
        .backend("https://auth.example/check", "")
        .backend("http://auth.example/check", "timeout = \"0s\"")
        .build();
    let errs = Config::parse(&text, std::path::Path::new(".")).unwrap_err();
    let paths: Vec<_> = errs.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["auth.backend[0].url", "auth.backend[1].timeout"],
        "{errs}"
    );
    // Listing `backend` without any [[auth.backend]] is an error on the route.
    let without = text.split("[[auth.backend]]").next().unwrap();
    let errs = Config::parse(without, std::path::Path::new(".")).unwrap_err();
    assert_eq!(errs.0[0].path, "route[0].auth[0]", "{errs}");
    assert!(errs.0[0].message.contains("[[auth.backend]]"), "{errs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_max_sessions_refuses_and_unique_evicts() {
    let origin = content_origin().await;
    let (b, script) = backend(Plan::answer(
        200,
        &[("x-userid", "alice"), ("x-max-sessions", "1")],
    ))
    .await;
    let proxy = start_proxy(&config(origin.addr, &[url_of(&b)], "2s")).await;
    // One session: the reload is the same session, another channel is a second.
    assert_eq!(status(&proxy, "/live/ch1/index.m3u8?token=t1").await, 200);
    assert_eq!(status(&proxy, "/live/ch1/index.m3u8?token=t1").await, 200);
    let r = get_h1(proxy.url("/live/ch2/index.m3u8?token=t1")).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap(), "{\"error\":\"session_limit\"}\n");

    // X-Unique: the newcomer wins and the older session ends.
    *script.lock().unwrap() = Plan::answer(200, &[("x-userid", "bob"), ("x-unique", "true")]);
    let first = get_text(&proxy.url("/live/ch3/index.m3u8?token=t2")).await;
    let seg = proxy.url(&first_segment("ch3", &first));
    assert_eq!(h1_client().get(&seg).send().await.unwrap().status(), 200);
    assert_eq!(status(&proxy, "/live/ch4/index.m3u8?token=t2").await, 200);
    let r = h1_client().get(&seg).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap(), "{\"error\":\"session_evicted\"}\n");
}
