//! `tollgate-loadtest`: a bounded, loopback-only load harness for tollgate.
//!
//! This is the skeleton the load-testing issue grows into `viewers`, `burst`
//! and `zap` scenarios. Today it has:
//! - `origin`: the simulated live origin of `tollgate demo`, with synthetic
//!   segments of a chosen size, for driving a proxy under test;
//! - `burst`: GET one URL as fast as possible over C keep-alive connections,
//!   bounded by a request count and a duration, printing requests/s and
//!   latency percentiles;
//! - `viewers` and `zap`: virtual players at real pace
//!   ([`tollgate_loadtest::viewers`], [`tollgate_loadtest::zap`]).
//!
//! Every target must be a loopback address; the harness refuses anything else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tollgate::simorigin::{SegmentSource, SimOrigin, SimOriginOptions};

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
    /// GET one URL as fast as possible over `connections` keep-alive connections.
    Burst {
        /// Target URL (http://127.0.0.1:PORT/...).
        #[arg(long)]
        url: String,
        /// Concurrent connections.
        #[arg(long, short = 'c', default_value_t = 32)]
        connections: usize,
        /// Stop after this many requests in total.
        #[arg(long, short = 'n', default_value_t = 100_000)]
        requests: u64,
        /// Stop after this long, whatever the count.
        #[arg(long, short = 'd', default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
    },
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
        Command::Burst {
            url,
            connections,
            requests,
            duration,
        } => burst(&url, connections, requests, duration).await,
        Command::Viewers(args) => std::process::exit(tollgate_loadtest::cli::viewers(args).await),
        Command::Zap(args) => std::process::exit(tollgate_loadtest::cli::zap(args).await),
    }
}

async fn burst(
    url: &str,
    connections: usize,
    requests: u64,
    duration: Duration,
) -> anyhow::Result<()> {
    let uri: hyper::Uri = url.parse().context("invalid --url")?;
    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("the load harness only targets loopback addresses, not {host}");
    }
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(connections)
        .build_http();
    let issued = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = Vec::new();
    for _ in 0..connections.max(1) {
        let (client, uri) = (client.clone(), uri.clone());
        let (issued, errors, bytes) = (issued.clone(), errors.clone(), bytes.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < requests {
                let t = Instant::now();
                match client.get(uri.clone()).await {
                    Ok(resp) if resp.status().is_success() => {
                        match resp.into_body().collect().await {
                            Ok(b) => {
                                bytes.fetch_add(b.to_bytes().len() as u64, Ordering::Relaxed);
                                latencies.push(t.elapsed());
                            }
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!("requests ok   {}", all.len());
    println!("errors        {}", errors.load(Ordering::Relaxed));
    println!("requests/s    {:.0}", all.len() as f64 / elapsed);
    println!(
        "MB/s          {:.1}",
        bytes.load(Ordering::Relaxed) as f64 / elapsed / 1e6
    );
    println!("p50 ms        {:.3}", pct(0.50));
    println!("p99 ms        {:.3}", pct(0.99));
    Ok(())
}
