//! Command-line flags of the `viewers` and `zap` subcommands and what they
//! turn into: the proxy's config is read for the route, the signing keys
//! and (unless given) the proxy, admin and origin addresses; the report is
//! printed as a table on stdout and optionally written as JSON.
//!
//! Exit status: 0 when the run passed (no error, every sampled segment
//! verified, no session limit broken), 1 when it did not, 2 when it could
//! not run.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use tokio_util::sync::CancellationToken;
use tollgate::config::Config;
use url::Url;

use crate::admin::AdminClient;
use crate::ensure_loopback;
use crate::entry::EntryMinter;
use crate::report::Report;
use crate::viewers::RunOptions;
use crate::zap::ZapOptions;

/// Flags shared by `viewers` and `zap`.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// The proxy's config file (routes, signing keys, addresses).
    #[arg(long, short = 'c')]
    pub config: PathBuf,
    /// Route whose links the viewers open.
    #[arg(long, default_value = "live")]
    pub route: String,
    /// Signing scheme (default: the route's first signing method; `none`:
    /// no credentials, for `ip` routes).
    #[arg(long)]
    pub scheme: Option<String>,
    /// The proxy's viewer URL (default: the config's first `server.listen`).
    #[arg(long)]
    pub target: Option<Url>,
    /// The origin the proxy fronts, for verification (default: the route's
    /// origin URL).
    #[arg(long)]
    pub origin: Option<Url>,
    /// Channels to spread viewers over: names (`ch1,ch2`) or a count N for
    /// ch1..chN.
    #[arg(long, value_delimiter = ',', default_value = "ch1,ch2")]
    pub channels: Vec<String>,
    /// Virtual viewers.
    #[arg(long, short = 'n', default_value_t = 100)]
    pub viewers: usize,
    /// Viewer starts are spread evenly over this long.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub ramp: Duration,
    /// How long the run goes on after the ramp.
    #[arg(long, short = 'd', default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Request budget of the whole run; the run stops when it is spent.
    #[arg(long, default_value_t = 10_000_000)]
    pub max_requests: u64,
    /// Verify every N-th fetched segment against the origin (0 = none).
    #[arg(long, default_value_t = 100)]
    pub verify_every: u64,
    /// Segments from the live edge a player starts with (hls.js: 3).
    #[arg(long, default_value_t = 3)]
    pub live_edge: usize,
    /// Deadline of each request, head and body.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Largest segment accepted, in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    pub max_segment_bytes: usize,
    /// Connect every viewer from the default source address instead of its
    /// own 127.x.y.z (anonymous viewers then share a session per channel).
    #[arg(long)]
    pub same_source_ip: bool,
    /// Validity of minted links.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub link_ttl: Duration,
    /// User ids are this plus the viewer's index.
    #[arg(long)]
    pub user_prefix: Option<String>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Flags of `zap`.
#[derive(Debug, Args)]
pub struct ZapArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Time on one channel before switching to the next.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub zap_every: Duration,
    /// The proxy's admin URL (default: the config's `admin.listen`).
    #[arg(long)]
    pub admin: Option<Url>,
    /// Admin bearer token (default: the config's `admin.token`).
    #[arg(long, env = "TOLLGATE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// `max_sessions` of the users the harness creates.
    #[arg(long, default_value_t = 1)]
    pub max_sessions: u64,
    /// The users exist already: do not create them.
    #[arg(long)]
    pub no_create_users: bool,
    /// Time between two session listings during the run.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub check_every: Duration,
}

/// `viewers`: run, print, write JSON; returns the exit status.
pub async fn viewers(args: CommonArgs) -> i32 {
    let outcome = async {
        let (opts, _) = run_options(&args, "viewer-")?;
        let report = crate::viewers::run(opts).await.map_err(|e| anyhow!(e))?;
        finish(&report, args.json.as_deref())
    };
    exit(outcome.await)
}

/// `zap`: run, print, write JSON; returns the exit status.
pub async fn zap(args: ZapArgs) -> i32 {
    let outcome = async {
        let (run, config) = run_options(&args.common, "zap-")?;
        let admin_url = match &args.admin {
            Some(u) => u.clone(),
            None => {
                let addr = config
                    .admin
                    .listen
                    .context("the config has no admin.listen; pass --admin")?;
                url_of(addr)?
            }
        };
        ensure_loopback(&admin_url).map_err(|e| anyhow!(e))?;
        let token = match &args.admin_token {
            Some(t) => t.clone(),
            None => config
                .admin
                .token
                .as_ref()
                .map(|t| t.expose().to_owned())
                .context("the config has no admin.token; pass --admin-token")?,
        };
        let admin = AdminClient::new(admin_url, token, run.timeout);
        let opts = ZapOptions {
            run,
            zap_every: args.zap_every,
            admin,
            max_sessions: args.max_sessions,
            create_users: !args.no_create_users,
            check_every: args.check_every,
        };
        let report = crate::zap::run(opts).await.map_err(|e| anyhow!(e))?;
        finish(&report, args.common.json.as_deref())
    };
    exit(outcome.await)
}

/// The process exit status for an outcome.
fn exit(outcome: anyhow::Result<bool>) -> i32 {
    match outcome {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("tollgate-loadtest: {e:#}");
            2
        }
    }
}

/// Prints the table, writes the JSON; whether the run passed.
fn finish(report: &Report, json: Option<&std::path::Path>) -> anyhow::Result<bool> {
    print!("{}", report.table());
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(report)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(report.passed())
}

/// Reads the config and turns the flags into run options.
fn run_options(
    args: &CommonArgs,
    default_prefix: &str,
) -> anyhow::Result<(RunOptions, Arc<Config>)> {
    let config =
        Config::load(&args.config).map_err(|e| anyhow!("{}: {e}", args.config.display()))?;
    let config = Arc::new(config);
    let target = match &args.target {
        Some(u) => u.clone(),
        None => url_of(
            *config
                .server
                .listen
                .first()
                .context("the config has no server.listen; pass --target")?,
        )?,
    };
    ensure_loopback(&target).map_err(|e| anyhow!(e))?;
    let route = config
        .routes
        .iter()
        .find(|r| r.name == args.route)
        .with_context(|| format!("the config has no route named {:?}", args.route))?;
    let origin = match &args.origin {
        Some(u) => Some(u.clone()),
        None if args.verify_every == 0 => None,
        None => {
            let o = config
                .origins
                .get(route.origin)
                .context("the route's origin is missing")?;
            Some(Url::parse(&o.url.to_string()).context("the route's origin URL")?)
        }
    };
    let entry = EntryMinter::new(
        target,
        config.clone(),
        &args.route,
        args.scheme.as_deref(),
        args.link_ttl,
    )
    .map_err(|e| anyhow!(e))?;
    let stop = CancellationToken::new();
    let on_ctrl_c = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    let opts = RunOptions {
        entry,
        channels: channel_list(&args.channels),
        viewers: args.viewers,
        ramp: args.ramp,
        duration: args.duration,
        max_requests: args.max_requests,
        verify_every: args.verify_every,
        origin,
        live_edge: args.live_edge,
        timeout: args.timeout,
        max_segment: args.max_segment_bytes,
        same_source_ip: args.same_source_ip,
        user_prefix: args
            .user_prefix
            .clone()
            .unwrap_or_else(|| default_prefix.to_owned()),
        progress: !args.quiet,
        stop,
    };
    Ok((opts, config))
}

/// `http://ADDR/`, with an unspecified listen address (`0.0.0.0`) replaced
/// by loopback.
fn url_of(addr: SocketAddr) -> anyhow::Result<Url> {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let text = format!("http://{}/", SocketAddr::new(ip, addr.port()));
    let url = Url::parse(&text)?;
    if url.port().is_none() && addr.port() != 80 {
        bail!("{text}: no port");
    }
    Ok(url)
}

/// `["10"]` → `ch1..ch10`; names are kept as given.
pub fn channel_list(given: &[String]) -> Vec<String> {
    match given {
        [one] if one.parse::<usize>().is_ok() => {
            let n = one.parse::<usize>().unwrap_or(0);
            (1..=n).map(|i| format!("ch{i}")).collect()
        }
        _ => given.iter().filter(|c| !c.is_empty()).cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_counts_expand() {
        assert_eq!(channel_list(&["3".into()]), ["ch1", "ch2", "ch3"]);
        assert_eq!(channel_list(&["a".into(), "b".into()]), ["a", "b"]);
    }
}
