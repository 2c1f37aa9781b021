//! What a scenario measured: the live [`Recorder`] the viewers write into,
//! and the [`Report`] it becomes at the end (printed as a table, written as
//! JSON with the same figures).
//!
//! Owns the request kinds, the error causes and the latency histograms.
//! Must not do I/O other than formatting; the scenarios print and write.
//!
//! Invariants: recording never blocks on I/O and never holds a lock across
//! an `.await` (each histogram sits behind its own short-lived mutex); every
//! count only grows; a poisoned lock is recovered, never a panic.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies above this are clamped (recorded as this value, in µs).
const MAX_LATENCY_US: u64 = 600_000_000;

/// What a viewer request fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The entry (multivariant) playlist.
    Master,
    /// A media playlist (every poll).
    Media,
    /// A media segment.
    Segment,
    /// An AES-128 key.
    Key,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 4] = [Kind::Master, Kind::Media, Kind::Segment, Kind::Key];

    fn index(self) -> usize {
        self as usize
    }

    /// Lower-case name, as in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Master => "master",
            Kind::Media => "media",
            Kind::Segment => "segment",
            Kind::Key => "key",
        }
    }
}

/// Counters and histograms of one kind.
struct KindStats {
    ok: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
    latency: Mutex<Histogram<u64>>,
}

impl KindStats {
    // Constant bounds that hdrhistogram accepts (low >= 1, high >= 2 * low,
    // sigfig <= 5): the constructor cannot fail.
    #[allow(clippy::expect_used)]
    fn new() -> Self {
        // 3 significant figures over 1 µs ..= 10 min: about 150 KiB.
        let latency = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant bounds");
        Self {
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            latency: Mutex::new(latency),
        }
    }
}

/// Live counters of one scenario run, shared by every viewer (`Arc`).
pub struct Recorder {
    kinds: [KindStats; 4],
    errors: Mutex<BTreeMap<(Kind, String), u64>>,
    segments_new: AtomicU64,
    segments_skipped: AtomicU64,
    decrypted: AtomicU64,
    verified: AtomicU64,
    mismatched: AtomicU64,
    viewers_started: AtomicU64,
    viewers_active: AtomicU64,
    /// Sum of every viewer's watching time, in ms.
    viewer_ms: AtomicU64,
    /// Requests issued, for `--max-requests`.
    issued: AtomicU64,
    check_failures: AtomicU64,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self {
            kinds: [
                KindStats::new(),
                KindStats::new(),
                KindStats::new(),
                KindStats::new(),
            ],
            errors: Mutex::new(BTreeMap::new()),
            segments_new: AtomicU64::new(0),
            segments_skipped: AtomicU64::new(0),
            decrypted: AtomicU64::new(0),
            verified: AtomicU64::new(0),
            mismatched: AtomicU64::new(0),
            viewers_started: AtomicU64::new(0),
            viewers_active: AtomicU64::new(0),
            viewer_ms: AtomicU64::new(0),
            issued: AtomicU64::new(0),
            check_failures: AtomicU64::new(0),
        }
    }

    /// Claims one request from a budget of `max`; false once it is spent.
    pub fn claim_request(&self, max: u64) -> bool {
        self.issued.fetch_add(1, Ordering::Relaxed) < max
    }

    /// Requests claimed so far (including refused claims past the budget).
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }

    /// A successful request of `kind` with `bytes` of body, `latency` to the
    /// last byte.
    pub fn ok(&self, kind: Kind, bytes: usize, latency: Duration) {
        let k = &self.kinds[kind.index()];
        k.ok.fetch_add(1, Ordering::Relaxed);
        k.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_LATENCY_US);
        let mut h = k.latency.lock().unwrap_or_else(|p| p.into_inner());
        h.saturating_record(us);
    }

    /// A failed request (or a failed check of its answer) of `kind`.
    pub fn error(&self, kind: Kind, cause: impl Into<String>) {
        self.kinds[kind.index()]
            .errors
            .fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        *errors.entry((kind, cause.into())).or_insert(0) += 1;
    }

    /// A check of a successful answer of `kind` failed for `cause` (a key
    /// that is not 16 bytes, a segment that does not verify): listed with
    /// the errors of that kind, counted in `check_failures`, but not in the
    /// kind's failed requests (the request itself succeeded).
    pub fn check_failed(&self, kind: Kind, cause: &str) {
        self.check_failures.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        *errors.entry((kind, cause.to_owned())).or_insert(0) += 1;
    }

    /// A segment the player had not seen was found in a playlist.
    pub fn segment_new(&self) {
        self.segments_new.fetch_add(1, Ordering::Relaxed);
    }

    /// Segments that slid out of the window before the player fetched them.
    pub fn segments_skipped(&self, n: u64) {
        self.segments_skipped.fetch_add(n, Ordering::Relaxed);
    }

    /// A sampled segment was decrypted; `matched`: it equals the origin's bytes.
    pub fn verified(&self, decrypted: bool, matched: bool) {
        if decrypted {
            self.decrypted.fetch_add(1, Ordering::Relaxed);
        }
        if matched {
            self.verified.fetch_add(1, Ordering::Relaxed);
        } else {
            self.mismatched.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A viewer started watching.
    pub fn viewer_started(&self) {
        self.viewers_started.fetch_add(1, Ordering::Relaxed);
        self.viewers_active.fetch_add(1, Ordering::Relaxed);
    }

    /// A viewer stopped after watching for `watched`.
    pub fn viewer_stopped(&self, watched: Duration) {
        self.viewers_active.fetch_sub(1, Ordering::Relaxed);
        let ms = u64::try_from(watched.as_millis()).unwrap_or(u64::MAX);
        self.viewer_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// A one-line progress summary at `elapsed` (for stderr).
    pub fn progress_line(&self, elapsed: Duration, last: &mut (u64, u64)) -> String {
        let reqs: u64 = self
            .kinds
            .iter()
            .map(|k| k.ok.load(Ordering::Relaxed))
            .sum();
        let errs: u64 = self
            .kinds
            .iter()
            .map(|k| k.errors.load(Ordering::Relaxed))
            .sum();
        let bytes: u64 = self
            .kinds
            .iter()
            .map(|k| k.bytes.load(Ordering::Relaxed))
            .sum();
        let (last_reqs, last_bytes) = std::mem::replace(last, (reqs, bytes));
        format!(
            "[{:>5.0}s] viewers {}/{}  ok {} (+{}/s)  errors {}  {:.1} MB/s  verified {} mismatched {}",
            elapsed.as_secs_f64(),
            self.viewers_active.load(Ordering::Relaxed),
            self.viewers_started.load(Ordering::Relaxed),
            reqs,
            reqs.saturating_sub(last_reqs),
            errs,
            bytes.saturating_sub(last_bytes) as f64 / 1e6,
            self.verified.load(Ordering::Relaxed),
            self.mismatched.load(Ordering::Relaxed),
        )
    }

    /// Freezes the counters into a report.
    pub fn report(&self, scenario: &str, elapsed: Duration) -> Report {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let kinds = Kind::ALL
            .iter()
            .map(|&kind| {
                let k = &self.kinds[kind.index()];
                let h = k.latency.lock().unwrap_or_else(|p| p.into_inner());
                let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e3;
                let ok = k.ok.load(Ordering::Relaxed);
                let bytes = k.bytes.load(Ordering::Relaxed);
                KindReport {
                    kind,
                    ok,
                    errors: k.errors.load(Ordering::Relaxed),
                    bytes,
                    per_sec: ok as f64 / secs,
                    p50_ms: ms(0.5),
                    p90_ms: ms(0.9),
                    p99_ms: ms(0.99),
                    p999_ms: ms(0.999),
                    max_ms: h.max() as f64 / 1e3,
                }
            })
            .collect();
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((kind, cause), &count)| ErrorReport {
                kind: *kind,
                cause: cause.clone(),
                count,
            })
            .collect();
        Report {
            scenario: scenario.to_owned(),
            elapsed_s: elapsed.as_secs_f64(),
            viewers_started: self.viewers_started.load(Ordering::Relaxed),
            viewer_seconds: self.viewer_ms.load(Ordering::Relaxed) as f64 / 1e3,
            kinds,
            errors,
            check_failures: self.check_failures.load(Ordering::Relaxed),
            segments: SegmentReport {
                new: self.segments_new.load(Ordering::Relaxed),
                skipped: self.segments_skipped.load(Ordering::Relaxed),
                decrypted: self.decrypted.load(Ordering::Relaxed),
                verified: self.verified.load(Ordering::Relaxed),
                mismatched: self.mismatched.load(Ordering::Relaxed),
            },
            zap: None,
        }
    }
}

/// Figures of one request kind.
#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    /// Which requests.
    pub kind: Kind,
    /// Successful requests.
    pub ok: u64,
    /// Failed requests (any cause).
    pub errors: u64,
    /// Body bytes of successful requests.
    pub bytes: u64,
    /// Successful requests per second of the run.
    pub per_sec: f64,
    /// Latency to the last body byte, percentiles and max, in ms.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// How many requests of one kind failed for one cause.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorReport {
    /// Which requests.
    pub kind: Kind,
    /// `HTTP 403 session_evicted`, `transport: connect`, `verify: mismatch`…
    pub cause: String,
    /// How many.
    pub count: u64,
}

/// Segment bookkeeping and the correctness sample.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SegmentReport {
    /// Segments the players found new in a playlist (and went on to fetch).
    pub new: u64,
    /// Segments that left the window before a player got to them.
    pub skipped: u64,
    /// Sampled segments decrypted.
    pub decrypted: u64,
    /// Sampled segments whose plaintext equals the origin's bytes.
    pub verified: u64,
    /// Sampled segments that did not (wrong key, IV, bytes or padding).
    pub mismatched: u64,
}

/// Session counts seen through the admin API during `zap`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ZapReport {
    /// Each user's `max_sessions`.
    pub max_sessions: u64,
    /// Channel switches done.
    pub zaps: u64,
    /// Admin API session listings taken.
    pub checks: u64,
    /// Admin API calls that failed.
    pub check_errors: u64,
    /// The most live sessions any one user had in any listing.
    pub max_seen_per_user: u64,
    /// (user, listing) pairs over the limit.
    pub over_limit: u64,
    /// Live sessions of the zapping users in the last listing.
    pub final_sessions: u64,
    /// Users with at least one live session in the last listing.
    pub final_users: u64,
    /// Sessions in listings that carried no user or a user not ours.
    pub foreign_sessions: u64,
}

/// Everything a scenario measured (also the `--json` document).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `viewers` or `zap`.
    pub scenario: String,
    /// Wall time of the run.
    pub elapsed_s: f64,
    /// Viewers started.
    pub viewers_started: u64,
    /// Sum over viewers of the time each watched.
    pub viewer_seconds: f64,
    /// Per request kind, in [`Kind::ALL`] order.
    pub kinds: Vec<KindReport>,
    /// Failures by kind and cause: failed requests and failed checks.
    pub errors: Vec<ErrorReport>,
    /// Successful answers that failed a check (key length, verification).
    pub check_failures: u64,
    /// Segments and the correctness sample.
    pub segments: SegmentReport,
    /// `zap` only.
    pub zap: Option<ZapReport>,
}

impl Report {
    /// Figures of `kind`.
    pub fn kind(&self, kind: Kind) -> Option<&KindReport> {
        self.kinds.iter().find(|k| k.kind == kind)
    }

    /// Failed requests of every kind, plus verification mismatches.
    pub fn total_errors(&self) -> u64 {
        self.kinds.iter().map(|k| k.errors).sum::<u64>()
    }

    /// Whether the run met its goal: no failed request, no mismatch, no
    /// session limit broken.
    pub fn passed(&self) -> bool {
        self.total_errors() == 0
            && self.check_failures == 0
            && self.segments.mismatched == 0
            && self
                .zap
                .as_ref()
                .is_none_or(|z| z.over_limit == 0 && z.check_errors == 0)
    }

    /// The human summary printed on stdout.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "scenario {}: {:.1} s, {} viewers, {:.0} viewer-seconds",
            self.scenario, self.elapsed_s, self.viewers_started, self.viewer_seconds
        );
        let _ = writeln!(
            out,
            "{:<8} {:>9} {:>7} {:>9} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "kind",
            "ok",
            "errors",
            "req/s",
            "MB",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms"
        );
        for k in &self.kinds {
            let _ = writeln!(
                out,
                "{:<8} {:>9} {:>7} {:>9.1} {:>11.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                k.kind.name(),
                k.ok,
                k.errors,
                k.per_sec,
                k.bytes as f64 / 1e6,
                k.p50_ms,
                k.p90_ms,
                k.p99_ms,
                k.p999_ms,
                k.max_ms
            );
        }
        let s = &self.segments;
        let _ = writeln!(
            out,
            "segments: {} new, {} skipped; sample: {} decrypted, {} verified, {} mismatched",
            s.new, s.skipped, s.decrypted, s.verified, s.mismatched
        );
        if let Some(z) = &self.zap {
            let _ = writeln!(
                out,
                "zap: {} switches; {} session listings ({} failed); max {} live sessions per user (limit {}), {} over the limit; at the end {} sessions of {} users; {} foreign",
                z.zaps,
                z.checks,
                z.check_errors,
                z.max_seen_per_user,
                z.max_sessions,
                z.over_limit,
                z.final_sessions,
                z.final_users,
                z.foreign_sessions
            );
        }
        if self.errors.is_empty() {
            let _ = writeln!(out, "errors: none");
        } else {
            let _ = writeln!(out, "errors:");
            for e in &self.errors {
                let _ = writeln!(out, "  {:<8} {:>8}  {}", e.kind.name(), e.count, e.cause);
            }
        }
        let _ = writeln!(
            out,
            "result: {}",
            if self.passed() { "PASS" } else { "FAIL" }
        );
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentiles_reach_the_report() {
        let r = Recorder::new();
        for ms in 1..=100 {
            r.ok(Kind::Segment, 10, Duration::from_millis(ms));
        }
        r.error(Kind::Key, "HTTP 403 forbidden");
        r.error(Kind::Key, "HTTP 403 forbidden");
        r.verified(true, false);
        r.check_failed(Kind::Segment, "verify: mismatch");
        let rep = r.report("viewers", Duration::from_secs(10));
        let seg = rep.kind(Kind::Segment).unwrap();
        assert_eq!((seg.ok, seg.bytes, seg.errors), (100, 1000, 0));
        assert!((seg.p50_ms - 50.0).abs() < 0.1, "{}", seg.p50_ms);
        assert!((seg.p99_ms - 99.0).abs() < 0.1, "{}", seg.p99_ms);
        assert!((seg.max_ms - 100.0).abs() < 0.1, "{}", seg.max_ms);
        assert_eq!(rep.kind(Kind::Key).unwrap().errors, 2);
        assert_eq!(rep.errors.len(), 2);
        assert_eq!(rep.errors[1].count, 2);
        assert_eq!(rep.check_failures, 1);
        assert_eq!(rep.segments.mismatched, 1);
        assert!(!rep.passed());
        let table = rep.table();
        assert!(
            table.contains("HTTP 403 forbidden") && table.contains("FAIL"),
            "{table}"
        );
        let json = serde_json::to_value(&rep).unwrap();
        assert_eq!(json["kinds"][2]["kind"], "segment");
        assert_eq!(json["kinds"][2]["ok"], 100);
    }

    #[test]
    fn request_budget_is_exact() {
        let r = Recorder::new();
        assert!((0..3).all(|_| r.claim_request(3)));
        assert!(!r.claim_request(3));
    }
}
