//! Text of the simulated origin's HLS playlists (RFC 8216).
//!
//! Pure rendering: the master playlist is built once per origin, the media
//! playlist per request from a [`Schedule`] and a first msn. URIs are
//! relative (`media.m3u8`, `seg-{msn}.ts`) so the same text is right for every
//! channel and behind any proxy prefix. Live playlists never carry
//! `#EXT-X-ENDLIST`.

use std::fmt::Write as _;

use super::schedule::Schedule;

/// What the master playlist says about the single variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Variant {
    /// Peak bits per second over any one segment (`BANDWIDTH`).
    pub(super) bandwidth: u64,
    /// `RESOLUTION` and `CODECS`, known only for real media.
    pub(super) media: Option<(&'static str, &'static str)>,
}

/// The multivariant playlist: one variant pointing at `media.m3u8`.
pub(super) fn master(variant: &Variant) -> String {
    master_for(variant, "media.m3u8")
}

/// The multivariant playlist with its one variant at `uri`.
pub(super) fn master_for(variant: &Variant, uri: &str) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:3\n");
    // Writing into a String cannot fail; the Result is only the fmt API's.
    let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", variant.bandwidth);
    if let Some((resolution, codecs)) = variant.media {
        let _ = write!(out, ",RESOLUTION={resolution},CODECS=\"{codecs}\"");
    }
    out.push('\n');
    out.push_str(uri);
    out.push('\n');
    out
}

/// The live media playlist listing `schedule.window()` segments from `first`.
pub(super) fn media(schedule: &Schedule, first: u64) -> String {
    let msns = first..first.saturating_add(schedule.window());
    render(schedule, msns, first, None, false)
}

/// A media playlist of DVR segments `msns`, each with its
/// `#EXT-X-PROGRAM-DATE-TIME` (`epoch_ms` is the wall time of content time
/// 0), numbered from `sequence`; `end` adds `#EXT-X-ENDLIST` (a closed
/// archive window, Flussonic's VOD-like catch-up).
pub(super) fn dated(
    schedule: &Schedule,
    msns: std::ops::Range<u64>,
    sequence: u64,
    epoch_ms: i64,
    end: bool,
) -> String {
    render(schedule, msns, sequence, Some(epoch_ms), end)
}

/// Segments `msns` numbered from `sequence`, dated when `epoch_ms` is
/// given, closed (`VOD`, `ENDLIST`) when `end`.
fn render(
    schedule: &Schedule,
    msns: std::ops::Range<u64>,
    sequence: u64,
    epoch_ms: Option<i64>,
    end: bool,
) -> String {
    let count = msns.end.saturating_sub(msns.start);
    // About 32 bytes per entry (80 dated) plus the header; avoids regrowth.
    let per = if epoch_ms.is_some() { 80 } else { 32 };
    let mut out = String::with_capacity(200 + per * count as usize);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:3\n");
    let _ = writeln!(
        out,
        "#EXT-X-TARGETDURATION:{}",
        schedule.target_duration_secs()
    );
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{sequence}");
    // The wraps before the first segment, for a window numbered like live.
    let discontinuities = if sequence == msns.start {
        schedule.discontinuity_sequence(msns.start)
    } else {
        0
    };
    if discontinuities > 0 {
        let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuities}");
    }
    if end {
        out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    }
    for msn in msns {
        if schedule.starts_wrap(msn) {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if let Some(epoch) = epoch_ms {
            let start_ms = i64::try_from(schedule.start_us(msn) / 1_000).unwrap_or(i64::MAX);
            let _ = writeln!(
                out,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                date(epoch.saturating_add(start_ms))
            );
        }
        // Milliseconds, rounded: three decimals are what players expect and
        // keep the text stable for tests.
        let ms = (schedule.duration_us(msn) + 500) / 1_000;
        let _ = writeln!(out, "#EXTINF:{}.{:03},", ms / 1_000, ms % 1_000);
        let _ = writeln!(out, "seg-{msn}.ts");
    }
    if end {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// Unix milliseconds as `2024-12-02T00:00:00.000Z`.
pub(super) fn date(unix_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn master_for_real_media_names_codecs() {
        let text = master(&Variant {
            bandwidth: 250_000,
            media: Some(("320x180", "avc1.42c00d,mp4a.40.2")),
        });
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:3\n\
             #EXT-X-STREAM-INF:BANDWIDTH=250000,RESOLUTION=320x180,CODECS=\"avc1.42c00d,mp4a.40.2\"\n\
             media.m3u8\n"
        );
    }

    #[test]
    fn master_for_synthetic_has_bandwidth_only() {
        let text = master(&Variant {
            bandwidth: 8,
            media: None,
        });
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:BANDWIDTH=8\nmedia.m3u8\n"
        );
    }

    #[test]
    fn media_marks_wrap_and_counts_earlier_discontinuities() {
        let cycle = [1.5, 2.0, 2.0005].map(Duration::from_secs_f64);
        let schedule = Schedule::new(&cycle, 4, true);
        assert_eq!(
            media(&schedule, 2),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:2\n\
             #EXTINF:2.001,\nseg-2.ts\n\
             #EXT-X-DISCONTINUITY\n#EXTINF:1.500,\nseg-3.ts\n\
             #EXTINF:2.000,\nseg-4.ts\n\
             #EXTINF:2.001,\nseg-5.ts\n"
        );
        let later = media(&schedule, 7);
        assert!(
            later.contains("#EXT-X-DISCONTINUITY-SEQUENCE:2\n"),
            "{later}"
        );
        assert!(later.contains("#EXT-X-DISCONTINUITY\n#EXTINF:1.500,\nseg-9.ts\n"));
        assert!(!later.contains("ENDLIST"));
    }

    #[test]
    fn dated_playlists_carry_a_date_per_segment() {
        let schedule = Schedule::new(&[Duration::from_secs(2)], 3, false);
        let text = dated(&schedule, 10..12, 0, 1_733_097_600_000, true);
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-PLAYLIST-TYPE:VOD\n\
             #EXT-X-PROGRAM-DATE-TIME:2024-12-02T00:00:20.000Z\n#EXTINF:2.000,\nseg-10.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:2024-12-02T00:00:22.000Z\n#EXTINF:2.000,\nseg-11.ts\n\
             #EXT-X-ENDLIST\n"
        );
        assert_eq!(date(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn media_without_wraps_has_no_discontinuity_tags() {
        let schedule = Schedule::new(&[Duration::from_secs(2)], 3, false);
        let text = media(&schedule, 10);
        assert!(!text.contains("DISCONTINUITY"), "{text}");
        assert_eq!(text.matches("#EXTINF:2.000,\n").count(), 3);
        assert!(
            text.ends_with("seg-10.ts\n#EXTINF:2.000,\nseg-11.ts\n#EXTINF:2.000,\nseg-12.ts\n")
        );
    }
}
