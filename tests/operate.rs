//! The real `tollgate` binary run the way an operator runs it, signals aside
//! (those are in `lifecycle.rs`): the JSON access log on stderr and the
//! metrics on the admin listener, the `healthcheck` command, flags and exit
//! codes.
//!
//! Every process listens on 127.0.0.1:0 and the real ports are read back from
//! its `listening` log lines. The origin is a real hyper server in the test.
//! Every wait is bounded: a deadline that fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup errors

mod common;

use std::process::Output;

use common::full;
use common::process::{
    PATIENCE, Tollgate, client, config, echo_origin, get, is_access_line, json_lines,
    tollgate_command,
};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use nix::sys::signal::Signal;
use serde_json::Value;
use tokio::time::timeout;

const LIVE_2XX_PROXIED: &str =
    r#"tollgate_requests_total{route="live",status_class="2xx",code="proxied"}"#;
const LIVE_4XX_IP_DENIED: &str =
    r#"tollgate_requests_total{route="live",status_class="4xx",code="ip_denied"}"#;

/// Run `tollgate <args>` to completion (bounded) and return its output.
async fn tollgate_cmd(args: &[&str]) -> Output {
    let run = tollgate_command()
        .args(args)
        .env_remove("TOLLGATE_CONFIG")
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

    let url = tg.url("/live/ch1/index.m3u8?token=SECRET123&md5=CAP456&lang=en&wmsAuthSign=XYZ");
    let (status, body) = get(&client, &url).await;
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("media.m3u8?tg="), "{text}");
    assert_eq!(common::strip_capabilities(&text), PLAYLIST);
    for s in SECRETS {
        assert!(
            !text.contains(s),
            "the viewer's credentials reached a child URI: {text}"
        );
    }

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
    assert_eq!(line["bytes"], body.len(), "{line}");
    assert_eq!(line["end"], "complete", "{line}");
    assert!(
        line.get("blame").is_none(),
        "a proxied response blames no one: {line}"
    );
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
    assert_eq!(line["blame"], "client", "{line}");
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
