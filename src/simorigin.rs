//! A simulated live HLS origin: the upstream for `tollgate demo` and the load
//! harness.
//!
//! Serves, for each configured channel under a prefix (default `/live/`):
//! - `{prefix}{ch}/index.m3u8`: a master playlist with one variant,
//! - `{prefix}{ch}/media.m3u8`: a live media playlist whose window slides as
//!   a live clock advances (no `#EXT-X-ENDLIST`),
//! - `{prefix}{ch}/seg-{msn}.ts`: segment bytes, for published msns up to
//!   three windows older than the playlist (else 404).
//!
//! Segments come either from the bundled H.264/AAC sample in `assets/sample/`
//! (compiled in, played in a loop with `#EXT-X-DISCONTINUITY` at each wrap) or
//! from a deterministic synthetic generator for load tests.
//!
//! Layout: [`SimOrigin`] (this file) holds the shared state, reads the clock
//! and runs the accept loop; the pure parts sit in submodules: `schedule`
//! (which msns exist when), `playlist` (playlist text), `media` (segment
//! bytes) and `service` (routing and responses).
//!
//! Must not contain proxy logic: it stands in for someone else's origin.
//! Invariants: the origin is read-only after [`SimOrigin::new`] apart from a
//! request counter, so request handling takes no lock; the live clock is
//! `tokio::time::Instant`, so paused-time tests control it.

mod media;
mod playlist;
mod schedule;
mod service;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use media::{SyntheticSegments, synthetic_segment};

use media::Content;

use playlist::Variant;
use schedule::Schedule;

/// How long [`SimOrigin::serve`] lets in-flight responses finish after
/// shutdown before it aborts the remaining connections.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// Pause after a failed `accept` (usually fd exhaustion) so the loop does not
/// spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Options for the simulated origin.
#[derive(Debug, Clone)]
pub struct SimOriginOptions {
    /// URL prefix served, with leading and trailing `/` (added if missing).
    /// Default `/live/`.
    pub prefix: String,
    /// Channel names; each is one path segment under the prefix. All channels
    /// play the same timeline. Default `["ch1", "ch2"]`.
    pub channels: Vec<String>,
    /// Segments in the live media playlist; 0 is treated as 1. Default 5.
    pub window: usize,
    /// Where segment bytes come from. Default [`SegmentSource::Bundled`].
    pub segment_source: SegmentSource,
    /// Live clock multiplier: 2.0 publishes segments twice as fast. Values
    /// that are not finite and positive are treated as 1.0. Default 1.0.
    pub speed: f64,
    /// A DVR archive this deep (Flussonic style): the stream is taken to
    /// have been live that long already, every playlist dates its segments
    /// (`#EXT-X-PROGRAM-DATE-TIME`, wall clock), every published segment
    /// stays, and the archive forms (`index-FROM-DURATION.m3u8`,
    /// `archive-…`, `video-…`, `mono-…`, `…-FROM-now`, `timeshift_abs-FROM`,
    /// `timeshift_rel-OFFSET`) are served. Zero (the default): live only.
    pub dvr: Duration,
}

impl Default for SimOriginOptions {
    fn default() -> Self {
        Self {
            prefix: "/live/".to_owned(),
            channels: vec!["ch1".to_owned(), "ch2".to_owned()],
            window: 5,
            segment_source: SegmentSource::Bundled,
            speed: 1.0,
            dvr: Duration::ZERO,
        }
    }
}

/// Where the simulated origin's segments come from.
#[derive(Debug, Clone)]
pub enum SegmentSource {
    /// The bundled H.264/AAC TS sample (assets/sample), compiled in with
    /// `include_bytes!`: five 2 s segments played in a loop, segment msn being
    /// sample file `msn % 5`.
    Bundled,
    /// Synthetic segments of `bytes` length and `duration` seconds each (for
    /// load tests); content is deterministic per (channel, msn) so a client
    /// can verify bytes with [`synthetic_segment`] or [`SyntheticSegments`].
    /// Durations under 1 ms are raised to 1 ms.
    Synthetic {
        /// Length of every segment.
        bytes: usize,
        /// Playlist duration of every segment.
        duration: Duration,
    },
}

/// State shared by every connection of one origin; immutable but for the
/// counter.
#[derive(Debug)]
struct Shared {
    /// Normalised prefix, starting and ending with `/`.
    prefix: String,
    channels: Vec<String>,
    content: Content,
    schedule: Schedule,
    /// The master playlist, identical for every channel (relative URIs).
    master: Bytes,
    /// Its variant, for archive masters.
    variant: Variant,
    /// With DVR: the wall time (unix ms) of content time 0.
    epoch_ms: Option<i64>,
    /// With DVR: how far the live clock was at start (µs).
    head_start_us: u64,
    /// Zero of the live clock.
    started: Instant,
    speed: f64,
    requests: AtomicU64,
}

/// The simulated live origin: a cheap `Clone` handle (an `Arc` inside), so
/// the demo and tests keep one while [`SimOrigin::serve`] runs.
#[derive(Debug, Clone)]
pub struct SimOrigin {
    shared: Arc<Shared>,
}

impl Shared {
    /// A master playlist whose one variant is at `uri`.
    fn master_text(&self, uri: &str) -> String {
        playlist::master_for(&self.variant, uri)
    }
}

impl SimOrigin {
    /// Builds the origin; the live clock starts now, with a full window of
    /// segments (msn `0..window`) already published.
    pub fn new(opts: SimOriginOptions) -> Self {
        let (content, durations, media) = match opts.segment_source {
            SegmentSource::Bundled => {
                let (files, durations): (Vec<Bytes>, Vec<Duration>) =
                    media::bundled().into_iter().unzip();
                let media = Some((media::BUNDLED_RESOLUTION, media::BUNDLED_CODECS));
                (Content::Bundled(files), durations, media)
            }
            SegmentSource::Synthetic { bytes, duration } => {
                let generator = SyntheticSegments::new(bytes);
                (Content::Synthetic(generator), vec![duration], None)
            }
        };
        let looped = matches!(content, Content::Bundled(_));
        let schedule = Schedule::new(&durations, opts.window, looped);
        let bandwidth = peak_bandwidth(&content, &schedule, durations.len() as u64);
        let variant = Variant { bandwidth, media };
        let master = playlist::master(&variant);
        let dvr_us = u64::try_from(opts.dvr.as_micros()).unwrap_or(u64::MAX / 4);
        let epoch_ms = (dvr_us > 0).then(|| {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let behind =
                i64::try_from(dvr_us.saturating_add(schedule.start_us(schedule.window())) / 1000)
                    .unwrap_or(i64::MAX);
            now_ms.saturating_sub(behind)
        });
        let speed = if opts.speed.is_finite() && opts.speed > 0.0 {
            opts.speed
        } else {
            1.0
        };
        Self {
            shared: Arc::new(Shared {
                prefix: normalise_prefix(&opts.prefix),
                channels: opts.channels,
                content,
                schedule,
                master: Bytes::from(master),
                variant,
                epoch_ms,
                head_start_us: dvr_us,
                started: Instant::now(),
                speed,
                requests: AtomicU64::new(0),
            }),
        }
    }

    /// Serve on an already-bound listener until `shutdown` is cancelled
    /// (mini-redis style), speaking HTTP/1.1 with keep-alive and h2c.
    ///
    /// On shutdown it stops accepting, lets in-flight requests finish for up
    /// to 5 s, then drops what is left and returns `Ok(())`. Accept errors
    /// are logged and retried after a short pause rather than returned,
    /// because they are transient (fd exhaustion, aborted handshakes).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let builder = auto::Builder::new(TokioExecutor::new());
        let graceful = GracefulShutdown::new();
        let mut connections = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            // Reap finished connection tasks so the set stays small.
            while connections.try_join_next().is_some() {}
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    tracing::warn!(error = %err, "simorigin accept failed");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            };
            // Playlists are small writes; do not let Nagle delay them.
            if let Err(err) = stream.set_nodelay(true) {
                tracing::debug!(error = %err, %peer, "simorigin set_nodelay failed");
            }
            let origin = self.clone();
            let service = hyper::service::service_fn(move |req: http::Request<_>| {
                std::future::ready(Ok::<_, Infallible>(origin.handle(&req)))
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn.into_owned());
            connections.spawn(async move {
                // Clients hanging up mid-response is normal, not a warning.
                if let Err(err) = conn.await {
                    tracing::debug!(error = %err, %peer, "simorigin connection ended");
                }
            });
        }
        drop(listener);
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(DRAIN_DEADLINE) => {
                tracing::warn!("simorigin drain deadline passed; closing connections");
            }
        }
        connections.shutdown().await;
        Ok(())
    }

    /// Bytes of segment `msn` of `channel` exactly as served (for
    /// byte-identity checks in tests / the loadtest). `Some` for every msn of
    /// a configured channel, whether or not it is published yet; `None` for
    /// an unknown channel.
    pub fn segment_bytes(&self, channel: &str, msn: u64) -> Option<Bytes> {
        let shared = &self.shared;
        shared
            .channels
            .iter()
            .any(|c| c == channel)
            .then(|| shared.content.segment(channel, msn))
    }

    /// The media sequence number of the first segment in the current window.
    pub fn current_first_msn(&self) -> u64 {
        self.shared.schedule.first_msn(self.position_us())
    }

    /// The newest published msn (the last entry of the current playlist).
    pub fn latest_msn(&self) -> u64 {
        self.shared.schedule.latest_msn(self.position_us())
    }

    /// Requests answered so far, whatever their status.
    pub fn requests_served(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Answers one request at the current live position.
    fn handle<B>(&self, req: &http::Request<B>) -> http::Response<http_body_util::Full<Bytes>> {
        self.shared.requests.fetch_add(1, Ordering::Relaxed);
        let pos = self.position_us();
        service::respond(&self.shared, req.method(), req.uri().path(), pos)
    }

    /// Microseconds of live time since start, scaled by the speed. The f64
    /// round trip is exact to well below a microsecond for centuries of
    /// uptime, and `as` saturates instead of wrapping.
    fn position_us(&self) -> u64 {
        let shared = &self.shared;
        let live = (shared.started.elapsed().as_secs_f64() * shared.speed * 1e6) as u64;
        live.saturating_add(shared.head_start_us)
    }
}

/// `BANDWIDTH` for the master playlist: the highest bit rate of any single
/// segment, as RFC 8216 section 4.3.4.2 defines it, rounded up.
fn peak_bandwidth(content: &Content, schedule: &Schedule, cycle_len: u64) -> u64 {
    (0..cycle_len.max(1))
        .map(|msn| {
            let bits = content.segment("", msn).len() as u128 * 8 * 1_000_000;
            let us = u128::from(schedule.duration_us(msn).max(1));
            u64::try_from(bits.div_ceil(us)).unwrap_or(u64::MAX)
        })
        .max()
        .unwrap_or(0)
}

/// Ensures the prefix starts and ends with `/`, so routing is a plain
/// `strip_prefix` and `"live"` means the same as `"/live/"`.
fn normalise_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        format!("/{trimmed}/")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup errors
mod tests {
    use super::*;

    #[test]
    fn prefix_is_normalised() {
        for (given, want) in [
            ("/live/", "/live/"),
            ("live", "/live/"),
            ("/a/b", "/a/b/"),
            ("", "/"),
            ("/", "/"),
        ] {
            assert_eq!(normalise_prefix(given), want, "{given:?}");
        }
    }

    #[test]
    fn bundled_bandwidth_is_peak_segment_rate() {
        let origin = SimOrigin::new(SimOriginOptions::default());
        let peak = (0..5)
            .map(|m| origin.segment_bytes("ch1", m).unwrap().len() as u64 * 8 / 2)
            .max()
            .unwrap();
        let master = String::from_utf8(origin.shared.master.to_vec()).unwrap();
        let bandwidth: u64 = master
            .split("BANDWIDTH=")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (peak..=peak + 1).contains(&bandwidth),
            "{bandwidth} vs {peak}"
        );
        assert!(master.contains("RESOLUTION=320x180,CODECS=\"avc1.42c00d,mp4a.40.2\""));
    }

    #[test]
    fn debug_output_is_a_summary() {
        let bundled = format!("{:?}", SimOrigin::new(SimOriginOptions::default()));
        assert!(bundled.contains("Bundled { files: 5 }"), "{bundled}");
        assert!(bundled.len() < 2_000, "{} bytes of Debug", bundled.len());
        let synthetic = SegmentSource::Synthetic {
            bytes: 1 << 20,
            duration: Duration::from_secs(1),
        };
        let origin = SimOrigin::new(SimOriginOptions {
            segment_source: synthetic,
            ..SimOriginOptions::default()
        });
        let text = format!("{origin:?}");
        assert!(
            text.contains("SyntheticSegments { len: 1048576, .. }"),
            "{text}"
        );
        assert!(text.len() < 2_000, "{} bytes of Debug", text.len());
    }

    #[test]
    fn segment_bytes_only_for_known_channels() {
        let origin = SimOrigin::new(SimOriginOptions::default());
        assert!(origin.segment_bytes("ch1", 0).is_some());
        assert!(origin.segment_bytes("nope", 0).is_none());
        assert_eq!(
            origin.segment_bytes("ch2", 7),
            origin.segment_bytes("ch1", 2)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn live_clock_follows_speed() {
        let origin = SimOrigin::new(SimOriginOptions {
            speed: 4.0,
            ..SimOriginOptions::default()
        });
        assert_eq!((origin.current_first_msn(), origin.latest_msn()), (0, 4));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!((origin.current_first_msn(), origin.latest_msn()), (1, 5));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(origin.current_first_msn(), 11);
    }
}
