//! The `viewers` scenario: N virtual viewers ramped up over `ramp`, each
//! playing one channel at real pace for the rest of the run, with a sample
//! of their segments verified against the origin.
//!
//! Also the run machinery `zap` shares ([`Run`]): the request budget, the
//! ramp schedule, source addresses, the progress line and the hard stop.
//! The run is bounded: it ends at `ramp + duration`, or when the request
//! budget is spent, or when `stop` is cancelled; requests still in flight
//! then get at most their timeout, after which their tasks are aborted.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::client::HttpClient;
use crate::entry::EntryMinter;
use crate::player::{Player, Shared};
use crate::report::{Recorder, Report};
use crate::verify::Verifier;

/// Most viewers one run may start (source addresses are drawn from
/// 127.1.0.1 upwards and must stay inside 127.0.0.0/8).
pub const MAX_VIEWERS: usize = 1 << 22;

/// Settings common to every scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Entry URLs of the route under test.
    pub entry: EntryMinter,
    /// Channels viewers are spread over (viewer i starts on `i % len`).
    pub channels: Vec<String>,
    /// Virtual viewers.
    pub viewers: usize,
    /// Viewer starts are spread evenly over this long.
    pub ramp: Duration,
    /// How long the run goes on after the ramp.
    pub duration: Duration,
    /// Request budget of the whole run.
    pub max_requests: u64,
    /// Verify every N-th segment fetched (0 = none).
    pub verify_every: u64,
    /// The origin the proxy fronts, for verification.
    pub origin: Option<Url>,
    /// Segments from the live edge a player starts with.
    pub live_edge: usize,
    /// Per-request deadline.
    pub timeout: Duration,
    /// Largest segment body accepted.
    pub max_segment: usize,
    /// All viewers connect from the default source address instead of each
    /// from its own 127.x.y.z (anonymous viewers then share one session
    /// per channel).
    pub same_source_ip: bool,
    /// User ids are this + the viewer's index.
    pub user_prefix: String,
    /// Print a progress line on stderr every second.
    pub progress: bool,
    /// Cancel to end the run early (Ctrl-C).
    pub stop: CancellationToken,
}

/// One scenario run in progress.
pub struct Run {
    /// Shared by every player.
    pub shared: Arc<Shared>,
    /// When the run started.
    pub started: Instant,
    /// When viewers stop.
    pub deadline: Instant,
    opts: RunOptions,
}

impl Run {
    /// Checks the options and prepares the shared state.
    pub fn new(opts: RunOptions) -> Result<Self, String> {
        if opts.channels.is_empty() {
            return Err("no channels to watch".into());
        }
        if opts.viewers == 0 || opts.viewers > MAX_VIEWERS {
            return Err(format!("--viewers must be 1..={MAX_VIEWERS}"));
        }
        let verifier = match (&opts.origin, opts.verify_every) {
            (Some(origin), every) if every > 0 => {
                crate::ensure_loopback(origin)?;
                let client = HttpClient::new(None, opts.timeout, 64);
                Some(Arc::new(Verifier::new(
                    origin,
                    every,
                    client,
                    opts.max_segment,
                )))
            }
            (None, every) if every > 0 => {
                return Err("verification needs the origin's URL (--origin)".into());
            }
            _ => None,
        };
        let started = Instant::now();
        let shared = Arc::new(Shared {
            rec: Arc::new(Recorder::new()),
            verifier,
            max_requests: opts.max_requests,
            stop: opts.stop.child_token(),
            live_edge: opts.live_edge,
            max_segment: opts.max_segment,
            timeout: opts.timeout,
        });
        Ok(Self {
            shared,
            started,
            deadline: started + opts.ramp + opts.duration,
            opts,
        })
    }

    /// The options the run was made with.
    pub fn options(&self) -> &RunOptions {
        &self.opts
    }

    /// When viewer `i` starts.
    pub fn start_of(&self, i: usize) -> Instant {
        let n = self.opts.viewers.max(1) as u32;
        self.started + self.opts.ramp.mul_f64(f64::from(i as u32) / f64::from(n))
    }

    /// The source address of viewer `i` (`None`: the system's choice) and
    /// the address the proxy will see, for IP-bound links.
    pub fn source_of(&self, i: usize) -> (Option<IpAddr>, IpAddr) {
        let target_ip = self
            .opts
            .entry
            .target_ip()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        if self.opts.same_source_ip || !matches!(target_ip, IpAddr::V4(_)) {
            return (None, target_ip);
        }
        let base = u32::from(Ipv4Addr::new(127, 1, 0, 1));
        let ip = IpAddr::V4(Ipv4Addr::from(base.saturating_add(i as u32)));
        (Some(ip), ip)
    }

    /// The user id of viewer `i`.
    pub fn user_of(&self, i: usize) -> String {
        format!("{}{i}", self.opts.user_prefix)
    }

    /// Runs `viewer(i)` for every viewer at its ramp time, with the progress
    /// line, until all are done or the hard stop; returns the wall time.
    pub async fn drive<F, Fut>(&self, viewer: F) -> Duration
    where
        F: Fn(usize) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut tasks = JoinSet::new();
        for i in 0..self.opts.viewers {
            let at = self.start_of(i);
            let stop = self.shared.stop.clone();
            let deadline = self.deadline;
            let rec = self.shared.rec.clone();
            let fut = viewer(i);
            tasks.spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = stop.cancelled() => return,
                }
                if Instant::now() >= deadline {
                    return;
                }
                let began = Instant::now();
                rec.viewer_started();
                fut.await;
                rec.viewer_stopped(
                    began
                        .elapsed()
                        .min(deadline.saturating_duration_since(began)),
                );
            });
        }
        let progress = self.opts.progress.then(|| {
            let rec = self.shared.rec.clone();
            let started = self.started;
            tokio::spawn(async move {
                let mut last = (0, 0);
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    eprintln!("{}", rec.progress_line(started.elapsed(), &mut last));
                }
            })
        });
        // In-flight requests at the deadline get their timeout, then go.
        let hard_stop = self.deadline + self.opts.timeout + Duration::from_secs(1);
        let stop = self.shared.stop.clone();
        let all_done = async { while tasks.join_next().await.is_some() {} };
        tokio::select! {
            () = all_done => {}
            () = tokio::time::sleep_until(hard_stop) => {}
            () = async {
                stop.cancelled().await;
                tokio::time::sleep(self.opts.timeout + Duration::from_secs(1)).await;
            } => {}
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        if let Some(p) = progress {
            p.abort();
        }
        self.started.elapsed()
    }
}

/// Runs the `viewers` scenario.
pub async fn run(opts: RunOptions) -> Result<Report, String> {
    let run = Run::new(opts)?;
    let channels = run.options().channels.clone();
    let entry = run.options().entry.clone();
    let deadline = run.deadline;
    let elapsed = run
        .drive(|i| {
            let (source, seen_ip) = run.source_of(i);
            let user = run.user_of(i);
            let channel = channels[i % channels.len()].clone();
            let shared = run.shared.clone();
            let entry = entry.clone();
            async move {
                let url = match entry.entry(&channel, &user, seen_ip, tollgate::clock::unix_now()) {
                    Ok(u) => u,
                    Err(e) => {
                        shared
                            .rec
                            .error(crate::report::Kind::Master, format!("signing: {e}"));
                        return;
                    }
                };
                let mut player = Player::new(shared, source, i);
                player.watch(&url, deadline).await;
            }
        })
        .await;
    Ok(run.shared.rec.report("viewers", elapsed))
}
