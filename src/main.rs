//! The `tollgate` command line: parse flags, load config, bind, call the
//! library. Exit codes: 0 clean, 1 configuration error, 2 runtime failure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tollgate::config::Config;
use tollgate::server::{self, Control, Listeners};

/// jemalloc with its background purge threads on: memory freed when a burst
/// of connections ends goes back to the OS within about ten seconds
/// (`dirty_decay_ms` default). With glibc malloc, 5,000 idle keep-alive
/// connections left ~150 MB resident for good (issue 11).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Streaming edge auth proxy for HLS origins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `-c FILE` / `--config FILE`, shared by the commands that read a config.
#[derive(clap::Args)]
struct ConfigPath {
    /// Config file.
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        env = "TOLLGATE_CONFIG",
        default_value = "config/tollgate.toml"
    )]
    file: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Serve with the given config (SIGHUP reloads, SIGTERM drains, SIGINT stops).
    Run {
        #[command(flatten)]
        config: ConfigPath,
    },
    /// Parse and validate a config like `nginx -t`: print `configuration OK` or every error.
    Check {
        #[command(flatten)]
        config: ConfigPath,
    },
    /// Print a signed path+query that the running proxy accepts (debug 403s, load tests).
    Sign {
        #[command(flatten)]
        config: ConfigPath,
        /// Route name.
        #[arg(long, required_unless_present = "list")]
        route: Option<String>,
        /// Path to sign, e.g. /live/ch1/index.m3u8.
        #[arg(long, required_unless_present = "list")]
        path: Option<String>,
        /// Print the user's channel list link instead (`/playlist.m3u8?token=…`; needs --user).
        #[arg(long, requires = "user", conflicts_with_all = ["route", "path", "scheme"])]
        list: bool,
        /// Bind the link to this client IP (schemes that support it).
        #[arg(long)]
        ip: Option<std::net::IpAddr>,
        /// Validity from now.
        #[arg(long, default_value = "1h", value_parser = tollgate::units::parse_duration)]
        ttl: Duration,
        /// User id to embed (schemes that carry one; `token` signs with this user's token).
        #[arg(long)]
        user: Option<String>,
        /// Scheme to sign with; default: the route's first signing method.
        #[arg(long)]
        scheme: Option<String>,
        /// Hardware id of the device (`--scheme device`: signs the user's token for it).
        #[arg(long)]
        hwid: Option<String>,
    },
    /// Exit 0 when the admin `/readyz` answers 200 (for container HEALTHCHECK).
    Healthcheck {
        /// URL to probe; default: `/readyz` on the config's `admin.listen`.
        #[arg(long)]
        url: Option<String>,
        /// (`admin.listen` is read from the config when `--url` is not given.)
        #[command(flatten)]
        config: ConfigPath,
    },
    /// Start a simulated live origin and the proxy in front of it; print playable URLs.
    Demo {
        /// Viewer listener of the demo proxy.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Admin listener of the demo proxy.
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config.file),
        Command::Run { config } => {
            init_logging();
            let config = match load(&config.file) {
                Ok(c) => c,
                Err(code) => return code,
            };
            runtime_main(async move {
                let listeners = Listeners::bind(&config).await?;
                let control = signal_control()?;
                server::run(config, listeners, control).await
            })
        }
        Command::Healthcheck { url, config } => healthcheck(url, &config.file),
        Command::Sign {
            config,
            route,
            path,
            list,
            ip,
            ttl,
            user,
            scheme,
            hwid,
        } => {
            let config = match load(&config.file) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let now = tollgate::clock::unix_now();
            let signed = match (list, user.as_deref()) {
                (true, Some(id)) => tollgate::sign::sign_list(&config, id, now),
                _ => {
                    let opts = tollgate::sign::SignOptions {
                        route: route.as_deref().unwrap_or_default(),
                        path: path.as_deref().unwrap_or_default(),
                        ip,
                        ttl,
                        user: user.as_deref(),
                        scheme: scheme.as_deref(),
                        hwid: hwid.as_deref(),
                    };
                    tollgate::sign::sign(&config, &opts, now)
                }
            };
            match signed {
                Ok(url) => {
                    println!("{url}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tollgate sign: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Demo { listen, admin } => {
            init_logging();
            runtime_main(async move {
                let control = signal_control()?;
                tollgate::demo::run(listen, admin, control).await
            })
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    let result = Config::load(path).and_then(|c| tollgate::runtime::Live::build(c, None));
    match result {
        Ok(_) => {
            println!("configuration OK: {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            eprintln!("configuration test failed: {}", path.display());
            ExitCode::from(1)
        }
    }
}

/// Load a config, or print every error and give exit code 1.
fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(1)
    })
}

/// Build a tokio runtime, or report why not with exit code 2.
fn runtime(builder: &mut tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, ExitCode> {
    builder.enable_all().build().map_err(|e| {
        eprintln!("cannot start runtime: {e}");
        ExitCode::from(2)
    })
}

fn runtime_main(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let rt = match runtime(&mut tokio::runtime::Builder::new_multi_thread()) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(fut) {
        Ok(()) => {
            // Do not wait for connections a forced stop left behind.
            rt.shutdown_timeout(Duration::from_millis(100));
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fatal");
            eprintln!("tollgate: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// JSON lines on stderr; level from `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// SIGHUP → reload, SIGTERM → drain, SIGINT → stop.
fn signal_control() -> anyhow::Result<Control> {
    use tokio::signal::unix::{SignalKind, signal};
    let control = Control::default();
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let c = control.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(()) = hup.recv() => {
                    tracing::info!("SIGHUP: reloading configuration");
                    c.reload.notify_one();
                }
                Some(()) = term.recv() => {
                    tracing::info!("SIGTERM: draining");
                    c.drain.cancel();
                }
                Some(()) = int.recv() => {
                    tracing::info!("SIGINT: stopping");
                    c.stop.cancel();
                }
            }
        }
    });
    Ok(control)
}

fn healthcheck(url: Option<String>, config: &std::path::Path) -> ExitCode {
    let url = match url {
        Some(u) => u,
        None => match load(config).map(|c| c.admin.listen) {
            Ok(Some(addr)) => format!("http://{addr}/readyz"),
            Ok(None) => {
                eprintln!(
                    "admin.listen is not set in {}; pass --url",
                    config.display()
                );
                return ExitCode::from(1);
            }
            Err(code) => return code,
        },
    };
    let rt = match runtime(&mut tokio::runtime::Builder::new_current_thread()) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(tollgate::admin::probe(&url, Duration::from_secs(3))) {
        Ok(200) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("{url}: status {status}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks (unique names, valid defaults) for every
    /// subcommand; they would otherwise fire only when that subcommand runs.
    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
