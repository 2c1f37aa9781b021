//! `burst`: GET one or more URLs as fast as possible over C keep-alive
//! connections, bounded by a request count and a duration.
//!
//! Each connection is one task with its own HTTP/1.1 connection (no pool,
//! no lock between tasks): it sends a request, reads the body frame by frame
//! (counting bytes, never concatenating them), records the latency into its
//! own HDR histogram and goes on with the next URL of the list, round-robin.
//! The histograms and error counts are merged at the end, so the load
//! generator does as little work as possible per request.
//!
//! Reports requests ok, errors by status (`io` for a transport failure),
//! requests/s, bytes/s, latency percentiles (p50, p90, p99, p99.9, max) and
//! the CPU seconds the generator itself used, on stdout and optionally as
//! JSON (`--json`) for scripts.
//!
//! Targets are `http://` (HTTP/1.1, or h2c with prior knowledge under
//! `--http2`) or `https://` (rustls, trusting `--ca`; ALPN `http/1.1`, or
//! `h2` under `--http2`). Over h2 each connection still carries one request
//! at a time, so `-c` means the same load whatever the protocol.
//!
//! Every target must be a loopback address; the harness refuses anything else.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};

/// Latencies are recorded in microseconds, 1 µs to 60 s, 3 significant digits.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Options of `tollgate-loadtest burst`.
#[derive(clap::Args, Debug)]
pub struct BurstArgs {
    /// Target URL (http://127.0.0.1:PORT/...); repeat to spread requests
    /// round-robin over several URLs. All must share one host and port.
    #[arg(long = "url")]
    pub urls: Vec<String>,
    /// File with one target URL per line (blank lines and `#` comments
    /// skipped), added to the `--url`s.
    #[arg(long)]
    pub urls_file: Option<PathBuf>,
    /// Concurrent connections (one request in flight on each).
    #[arg(long, short = 'c', default_value_t = 32)]
    pub connections: usize,
    /// Stop after this many requests in total.
    #[arg(long, short = 'n', default_value_t = 100_000)]
    pub requests: u64,
    /// Stop after this long, whatever the count.
    #[arg(long, short = 'd', default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Speak HTTP/2: ALPN `h2` over https, prior knowledge (h2c) over http.
    #[arg(long)]
    pub http2: bool,
    /// PEM file of the certificate(s) to trust for `https://` targets.
    #[arg(long)]
    pub ca: Option<PathBuf>,
}

/// HTTP/2 receive windows of the load generator, as a browser sets them
/// (Chromium: 6 MiB per stream, 15 MiB per connection), so a segment is not
/// throttled by the 64 KiB protocol default.
const H2_STREAM_WINDOW: u32 = 6 << 20;
const H2_CONNECTION_WINDOW: u32 = 15 << 20;

/// One target: where to connect and what to send.
struct Targets {
    addr: String,
    host_header: hyper::header::HeaderValue,
    paths: Vec<hyper::Uri>,
    http2: bool,
    /// `Some` for https: the client config and the name to verify.
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    /// The TLS version and cipher suite the server chose (first handshake),
    /// reported so a comparison shows both peers did the same work.
    negotiated: std::sync::OnceLock<String>,
}

/// One connection's request handle, whichever protocol it speaks.
enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

impl Sender {
    async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Sender::H1(s) => s.ready().await,
            Sender::H2(s) => s.ready().await,
        }
    }

    async fn send(
        &mut self,
        req: hyper::Request<Empty<Bytes>>,
    ) -> hyper::Result<hyper::Response<hyper::body::Incoming>> {
        match self {
            Sender::H1(s) => s.send_request(req).await,
            Sender::H2(s) => s.send_request(req).await,
        }
    }
}

/// What one connection task saw.
struct Tally {
    latency_us: Histogram<u64>,
    bytes: u64,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?,
            bytes: 0,
            errors: BTreeMap::new(),
        })
    }

    fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) -> anyhow::Result<()> {
        self.latency_us.add(other.latency_us)?;
        self.bytes += other.bytes;
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        Ok(())
    }
}

/// Runs the burst and prints (and optionally writes) the summary.
pub async fn run(args: BurstArgs) -> anyhow::Result<()> {
    let summary = measure(&args).await?;
    print!("{}", text(&summary));
    if let Some(path) = &args.json {
        let body = serde_json::to_string_pretty(&summary)?;
        std::fs::write(path, body + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Runs the burst and returns the summary, in the shape `--json` writes.
pub async fn measure(args: &BurstArgs) -> anyhow::Result<serde_json::Value> {
    let targets = Arc::new(targets(args)?);
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + args.duration;
    let mut workers = Vec::new();
    for worker in 0..args.connections.max(1) {
        let (targets, issued) = (targets.clone(), issued.clone());
        let limit = args.requests;
        workers.push(tokio::spawn(async move {
            connection(&targets, worker, &issued, limit, deadline).await
        }));
    }
    let mut total = Tally::new()?;
    for w in workers {
        total.merge(w.await??)?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut s = summary(&total, elapsed, own_cpu_seconds());
    s["tls"] = targets.negotiated.get().cloned().into();
    Ok(s)
}

/// Parses and checks every URL: http or https, loopback, one scheme and
/// host:port for all.
fn targets(args: &BurstArgs) -> anyhow::Result<Targets> {
    let mut urls = args.urls.clone();
    if let Some(file) = &args.urls_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading --urls-file {}", file.display()))?;
        urls.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    if urls.is_empty() {
        bail!("give at least one --url or a non-empty --urls-file");
    }
    let mut authority: Option<(hyper::http::uri::Authority, bool)> = None;
    let mut paths = Vec::with_capacity(urls.len());
    for url in &urls {
        let parsed = url::Url::parse(url).with_context(|| format!("invalid URL {url}"))?;
        crate::ensure_loopback_host(&parsed).map_err(anyhow::Error::msg)?;
        let https = match parsed.scheme() {
            "http" => false,
            "https" => true,
            other => bail!("{url}: only http:// and https:// targets are supported, not {other}"),
        };
        let uri: hyper::Uri = url.parse().with_context(|| format!("invalid URL {url}"))?;
        let Some(auth) = uri.authority().cloned() else {
            bail!("URL without a host: {url}");
        };
        match &authority {
            Some((a, s)) if (a, *s) != (&auth, https) => {
                bail!("every URL must share one scheme and host:port ({a} vs {auth})")
            }
            _ => authority = Some((auth, https)),
        }
        // h2 sends the scheme and authority as pseudo-headers: keep them.
        paths.push(if args.http2 {
            uri
        } else {
            uri.path_and_query().map_or("/", |p| p.as_str()).parse()?
        });
    }
    let (authority, https) = authority.context("no URL")?;
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tls = if https {
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .with_context(|| format!("{host} is not a TLS server name"))?;
        Some((tls_connector(args)?, name))
    } else {
        None
    };
    Ok(Targets {
        addr: format!("{}:{port}", authority.host()),
        host_header: authority.as_str().parse()?,
        paths,
        http2: args.http2,
        tls,
        negotiated: std::sync::OnceLock::new(),
    })
}

/// A rustls client trusting `--ca`, offering `h2` or `http/1.1` by ALPN.
fn tls_connector(args: &BurstArgs) -> anyhow::Result<tokio_rustls::TlsConnector> {
    let Some(ca) = &args.ca else {
        bail!("an https:// target needs --ca FILE (the PEM certificate to trust)");
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading --ca {}", ca.display()))?
    {
        roots.add(cert.with_context(|| format!("a certificate in {}", ca.display()))?)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![if args.http2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// One connection's loop; reconnects after a transport error or a close.
async fn connection(
    targets: &Targets,
    worker: usize,
    issued: &AtomicU64,
    limit: u64,
    deadline: Instant,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::new()?;
    let mut sender: Option<Sender> = None;
    let mut next = worker % targets.paths.len();
    while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < limit {
        let t = Instant::now();
        // A connection the server closed (say after its keep-alive request
        // limit) is replaced, not counted as an error.
        let mut reusable = sender.take();
        if let Some(s) = reusable.as_mut()
            && s.ready().await.is_err()
        {
            reusable = None;
        }
        let mut s = match reusable {
            Some(s) => s,
            None => match connect(targets).await {
                Ok(s) => s,
                Err(_) => {
                    tally.error("io");
                    // Bounded by the request count; do not spin on a refusal.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let uri = targets.paths[next].clone();
        next = (next + 1) % targets.paths.len();
        let outcome = request(&mut s, uri, &targets.host_header).await;
        match outcome {
            Ok((status, n)) if (200..300).contains(&status) => {
                tally.bytes += n;
                let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(MAX_LATENCY_US);
                tally.latency_us.saturating_record(us.max(1));
                sender = Some(s);
            }
            Ok((status, _)) => {
                tally.error(status.to_string());
                sender = Some(s);
            }
            Err(_) => tally.error("io"),
        }
    }
    Ok(tally)
}

async fn connect(targets: &Targets) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(&targets.addr).await?;
    stream.set_nodelay(true)?;
    match &targets.tls {
        None => handshake(TokioIo::new(stream), targets.http2).await,
        Some((connector, name)) => {
            let tls = connector.connect(name.clone(), stream).await?;
            let session = tls.get_ref().1;
            let h2 = session.alpn_protocol() == Some(b"h2");
            if let (Some(version), Some(suite)) = (
                session.protocol_version(),
                session.negotiated_cipher_suite(),
            ) {
                let _ = targets
                    .negotiated
                    .set(format!("{version:?} {:?}", suite.suite()));
            }
            if targets.http2 && !h2 {
                bail!("the server did not agree to h2 by ALPN");
            }
            handshake(TokioIo::new(tls), h2).await
        }
    }
}

/// The HTTP handshake over an open (plain or TLS) stream.
async fn handshake<I>(io: TokioIo<I>, h2: bool) -> anyhow::Result<Sender>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if h2 {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .handshake(io)
            .await?;
        tokio::spawn(conn);
        Ok(Sender::H2(sender))
    } else {
        let (sender, conn) = http1::handshake(io).await?;
        tokio::spawn(conn);
        Ok(Sender::H1(sender))
    }
}

/// Sends one GET and drains the body; returns the status and body bytes.
async fn request(
    sender: &mut Sender,
    uri: hyper::Uri,
    host: &hyper::header::HeaderValue,
) -> anyhow::Result<(u16, u64)> {
    sender.ready().await?;
    let mut req = hyper::Request::get(uri);
    if let Sender::H1(_) = sender {
        req = req.header(hyper::header::HOST, host);
    }
    let resp = sender.send(req.body(Empty::new())?).await?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            n += data.len() as u64;
        }
    }
    Ok((status, n))
}

/// CPU seconds (user + system) this process has used so far, from
/// `/proc/self/stat` (clock ticks of `USER_HZ` = 100 on Linux); `None`
/// elsewhere. Lets a script see what the load generator itself cost.
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (_, fields) = stat.rsplit_once(") ")?;
    let mut f = fields.split_ascii_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// The merged result, in the shape `--json` writes.
fn summary(t: &Tally, elapsed_s: f64, client_cpu_s: Option<f64>) -> serde_json::Value {
    let ok = t.latency_us.len();
    let errors: u64 = t.errors.values().sum();
    let ms = |q: f64| t.latency_us.value_at_quantile(q) as f64 / 1e3;
    serde_json::json!({
        "requests_ok": ok,
        "errors": errors,
        "errors_by_status": t.errors,
        "elapsed_s": elapsed_s,
        "rps": ok as f64 / elapsed_s,
        "bytes": t.bytes,
        "bytes_per_sec": t.bytes as f64 / elapsed_s,
        "client_cpu_s": client_cpu_s,
        "latency_ms": {
            "p50": ms(0.50),
            "p90": ms(0.90),
            "p99": ms(0.99),
            "p99_9": ms(0.999),
            "max": t.latency_us.max() as f64 / 1e3,
        },
    })
}

/// The human summary printed on stdout.
fn text(s: &serde_json::Value) -> String {
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    let l = &s["latency_ms"];
    let mut out = format!(
        "requests ok   {}\nerrors        {}\n",
        s["requests_ok"], s["errors"]
    );
    if let Some(by) = s["errors_by_status"].as_object() {
        for (kind, n) in by {
            out += &format!("  {kind:<11} {n}\n");
        }
    }
    out += &format!(
        "requests/s    {:.0}\nMB/s          {:.1}\nclient CPU s  {:.2}\n",
        f(&s["rps"]),
        f(&s["bytes_per_sec"]) / 1e6,
        f(&s["client_cpu_s"])
    );
    for (name, key) in [
        ("p50", "p50"),
        ("p90", "p90"),
        ("p99", "p99"),
        ("p99.9", "p99_9"),
        ("max", "max"),
    ] {
        out += &format!("{name:<6} ms     {:.3}\n", f(&l[key]));
    }
    out
}
