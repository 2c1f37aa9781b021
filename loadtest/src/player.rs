//! One virtual viewer playing one channel at real pace, like hls.js or
//! ffmpeg would: entry (multivariant) playlist → a variant → the media
//! playlist reloaded every target duration (half of it when nothing new
//! came, RFC 8216 §6.3.4) → every new segment by media sequence number →
//! the key whenever the `EXT-X-KEY` URI changes.
//!
//! Every request goes through [`Player::fetch`], which spends one unit of
//! the shared request budget, times it to the last body byte and records
//! the outcome. Failures are counted, never fatal: a failed entry is retried
//! after a pause, a failed poll waits for the next one, a segment whose key
//! or body failed is skipped.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::client::HttpClient;
use crate::playlist::{self, Entry, Parsed};
use crate::report::{Kind, Recorder};
use crate::verify::Verifier;

/// Pause before retrying an entry playlist that failed.
const ENTRY_RETRY: Duration = Duration::from_secs(1);
/// Poll interval assumed until a media playlist says otherwise.
const DEFAULT_TARGET: Duration = Duration::from_secs(2);
/// Largest playlist body read.
const PLAYLIST_LIMIT: usize = 4 << 20;

/// What every player of one run shares.
pub struct Shared {
    /// Where outcomes go.
    pub rec: Arc<Recorder>,
    /// The correctness sample, if any.
    pub verifier: Option<Arc<Verifier>>,
    /// Total request budget of the run.
    pub max_requests: u64,
    /// Cancelled when the run must end now (budget spent, Ctrl-C).
    pub stop: CancellationToken,
    /// Segments from the live edge a player starts with (hls.js: 3).
    pub live_edge: usize,
    /// Largest segment body read.
    pub max_segment: usize,
    /// Per-request deadline.
    pub timeout: Duration,
}

/// One viewer's connection and key cache.
pub struct Player {
    shared: Arc<Shared>,
    client: HttpClient,
    /// Which variant to pick from a multivariant playlist (modulo their count).
    variant: usize,
    key: Option<(Url, [u8; 16])>,
}

impl Player {
    /// A player with a fresh connection from `source`.
    pub fn new(shared: Arc<Shared>, source: Option<IpAddr>, variant: usize) -> Self {
        let client = HttpClient::new(source, shared.timeout, 1);
        Self {
            shared,
            client,
            variant,
            key: None,
        }
    }

    /// Plays the stream behind `entry` until `until` (or the run stops).
    pub async fn watch(&mut self, entry: &Url, until: Instant) {
        while self.running(until) {
            let Some(body) = self.fetch(Kind::Master, entry, PLAYLIST_LIMIT).await else {
                self.pause(Instant::now() + ENTRY_RETRY, until).await;
                continue;
            };
            let media_url = match playlist::parse(&body, entry) {
                Ok(Parsed::Master(variants)) => variants
                    .get(self.variant % variants.len().max(1))
                    .cloned()
                    .unwrap_or_else(|| entry.clone()),
                Ok(Parsed::Media(_)) => entry.clone(),
                Err(e) => {
                    self.shared.rec.error(Kind::Master, e.cause());
                    self.pause(Instant::now() + ENTRY_RETRY, until).await;
                    continue;
                }
            };
            self.follow(&media_url, until).await;
            return;
        }
    }

    /// Polls the media playlist at `url` and fetches its new segments.
    async fn follow(&mut self, url: &Url, until: Instant) {
        let mut next: Option<u64> = None;
        let mut target = DEFAULT_TARGET;
        while self.running(until) {
            let polled = Instant::now();
            let mut fresh_count = 0;
            if let Some(body) = self.fetch(Kind::Media, url, PLAYLIST_LIMIT).await {
                match playlist::parse(&body, url) {
                    Ok(Parsed::Media(media)) => {
                        target = media.target_duration;
                        let (fresh, skipped) =
                            fresh(&media.entries, &mut next, self.shared.live_edge);
                        if skipped > 0 {
                            self.shared.rec.segments_skipped(skipped);
                        }
                        fresh_count = fresh.len();
                        for entry in fresh {
                            if !self.running(until) {
                                return;
                            }
                            self.shared.rec.segment_new();
                            self.play_segment(entry).await;
                        }
                        if media.ended && fresh_count == 0 {
                            return; // VOD (or an ended event) played out
                        }
                    }
                    Ok(Parsed::Master(_)) => {
                        self.shared.rec.error(Kind::Media, "playlist: wrong type");
                    }
                    Err(e) => self.shared.rec.error(Kind::Media, e.cause()),
                }
            }
            let wait = if fresh_count == 0 { target / 2 } else { target };
            self.pause(polled + wait, until).await;
        }
    }

    /// Fetches the key (if it changed) and the segment, and verifies it
    /// when sampled.
    async fn play_segment(&mut self, entry: &Entry) {
        let key = match &entry.key {
            None => None,
            Some(k) => {
                let cached = self.key.as_ref().filter(|(uri, _)| *uri == k.uri);
                let bytes = match cached {
                    Some((_, bytes)) => *bytes,
                    None => {
                        let Some(body) = self.fetch(Kind::Key, &k.uri, 64).await else {
                            return;
                        };
                        let Ok(bytes) = <[u8; 16]>::try_from(body.as_ref()) else {
                            let cause = format!("key: {} bytes, not 16", body.len());
                            self.shared.rec.check_failed(Kind::Key, &cause);
                            return;
                        };
                        self.key = Some((k.uri.clone(), bytes));
                        bytes
                    }
                };
                Some((bytes, k.iv))
            }
        };
        let Some(body) = self
            .fetch(Kind::Segment, &entry.uri, self.shared.max_segment)
            .await
        else {
            return;
        };
        if let Some(v) = self.shared.verifier.as_ref().filter(|v| v.sample()) {
            let key = key.as_ref().map(|(k, iv)| (k, iv));
            v.check(&entry.uri, key, &body, &self.shared.rec).await;
        }
    }

    /// One GET of `kind`: spends budget, times, records. `None` on failure
    /// (already recorded) or when the budget is spent (the run stops).
    async fn fetch(&self, kind: Kind, url: &Url, limit: usize) -> Option<Bytes> {
        if !self.shared.rec.claim_request(self.shared.max_requests) {
            self.shared.stop.cancel();
            return None;
        }
        let started = std::time::Instant::now();
        match self.client.get(url, limit).await {
            Ok(body) => {
                self.shared.rec.ok(kind, body.len(), started.elapsed());
                Some(body)
            }
            Err(e) => {
                self.shared.rec.error(kind, e.cause());
                None
            }
        }
    }

    fn running(&self, until: Instant) -> bool {
        !self.shared.stop.is_cancelled() && Instant::now() < until
    }

    /// Sleeps until `at`, or less if the run ends first.
    async fn pause(&self, at: Instant, until: Instant) {
        tokio::select! {
            () = tokio::time::sleep_until(at.min(until)) => {}
            () = self.shared.stop.cancelled() => {}
        }
    }
}

/// The segments of `entries` a player has not fetched yet, given `next`, the
/// first msn it has not seen (`None` on the first poll: start `live_edge`
/// segments from the end); advances `next`. Also returns how many segments
/// left the window unfetched.
pub fn fresh<'a>(
    entries: &'a [Entry],
    next: &mut Option<u64>,
    live_edge: usize,
) -> (&'a [Entry], u64) {
    let start = match *next {
        None => entries.len().saturating_sub(live_edge.max(1)),
        Some(n) => entries
            .iter()
            .position(|e| e.msn >= n)
            .unwrap_or(entries.len()),
    };
    let skipped = match (*next, entries.get(start)) {
        (Some(n), Some(first)) => first.msn.saturating_sub(n),
        _ => 0,
    };
    let fresh = entries.get(start..).unwrap_or_default();
    if let Some(last) = fresh.last() {
        *next = Some(last.msn.saturating_add(1));
    }
    (fresh, skipped)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entries(msns: std::ops::Range<u64>) -> Vec<Entry> {
        msns.map(|msn| Entry {
            msn,
            uri: Url::parse(&format!("http://127.0.0.1/seg-{msn}.ts")).unwrap(),
            key: None,
        })
        .collect()
    }

    fn msns(e: &[Entry]) -> Vec<u64> {
        e.iter().map(|e| e.msn).collect()
    }

    #[test]
    fn starts_at_the_live_edge_then_takes_only_new_segments() {
        let mut next = None;
        let w = entries(10..15);
        let (f, s) = fresh(&w, &mut next, 3);
        assert_eq!((msns(f), s), (vec![12, 13, 14], 0));
        // Same window again: nothing new.
        let (f, _) = fresh(&w, &mut next, 3);
        assert!(f.is_empty());
        assert_eq!(next, Some(15));
        let w = entries(11..16);
        let (f, _) = fresh(&w, &mut next, 3);
        assert_eq!(msns(f), vec![15]);
        // Fell behind: the window moved past 16..18.
        let w = entries(19..24);
        let (f, s) = fresh(&w, &mut next, 3);
        assert_eq!((msns(f), s), (vec![19, 20, 21, 22, 23], 3));
        // An empty playlist changes nothing.
        let (f, s) = fresh(&[], &mut next, 3);
        assert_eq!((f.len(), s, next), (0, 0, Some(24)));
    }
}
