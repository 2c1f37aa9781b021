//! `tollgate-loadtest`: a bounded, loopback-only load harness for tollgate.
//!
//! Scenarios:
//! - `origin`: the simulated live origin of `tollgate demo`, with synthetic
//!   segments of a chosen size, for driving a proxy under test;
//! - `burst` (`burst.rs`): GET one or more URLs as fast as possible over C
//!   keep-alive connections, bounded by a request count and a duration,
//!   printing requests/s, bytes/s, errors by status and HDR latency
//!   percentiles (optionally as JSON).
//! - `viewers` and `zap`: virtual players at real pace
//!   ([`tollgate_loadtest::viewers`], [`tollgate_loadtest::zap`]).
//!
//! Every target must be a loopback address; the harness refuses anything else.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, Subcommand};
use tollgate::simorigin::{SegmentSource, SimOrigin, SimOriginOptions};
use tollgate_loadtest::burst;

#[derive(Parser)]
#[command(
    name = "tollgate-loadtest",
    version,
    about = "Bounded loopback load harness for tollgate"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the simulated live origin with synthetic segments until Ctrl-C.
    Origin {
        /// Address to listen on (loopback only).
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// Bytes per synthetic segment.
        #[arg(long, default_value_t = 1 << 20)]
        segment_bytes: usize,
        /// Segment duration.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        segment_duration: Duration,
        /// Channels served: names (`ch1,ch2`) or a count N for ch1..chN.
        #[arg(long, value_delimiter = ',', default_value = "ch1,ch2")]
        channels: Vec<String>,
        /// Segments in the live media playlist.
        #[arg(long, default_value_t = 5)]
        window: usize,
    },
    /// N virtual viewers playing at real pace, with segments verified.
    Viewers(tollgate_loadtest::cli::CommonArgs),
    /// Viewers switching channels, with session counts checked.
    Zap(tollgate_loadtest::cli::ZapArgs),
    /// GET one or more URLs as fast as possible over `connections` keep-alive
    /// connections; latency histograms, errors by status, optional JSON.
    Burst(burst::BurstArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Origin {
            listen,
            segment_bytes,
            segment_duration,
            channels,
            window,
        } => {
            if !listen.ip().is_loopback() {
                bail!("the load harness only listens on loopback addresses");
            }
            let origin = SimOrigin::new(SimOriginOptions {
                segment_source: SegmentSource::Synthetic {
                    bytes: segment_bytes,
                    duration: segment_duration,
                },
                channels: tollgate_loadtest::cli::channel_list(&channels),
                window,
                ..SimOriginOptions::default()
            });
            let listener = tokio::net::TcpListener::bind(listen).await?;
            println!(
                "simulated origin on http://{}/live/ch1/index.m3u8",
                listener.local_addr()?
            );
            let stop = tokio_util::sync::CancellationToken::new();
            let s2 = stop.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                s2.cancel();
            });
            origin.serve(listener, stop).await?;
            Ok(())
        }
        Command::Burst(args) => burst::run(args).await,
        Command::Viewers(args) => std::process::exit(tollgate_loadtest::cli::viewers(args).await),
        Command::Zap(args) => std::process::exit(tollgate_loadtest::cli::zap(args).await),
    }
}
