//! Stable segment identities for catch-up (docs/hls.md §6b, SPEC §7.4).
//!
//! On a channel with catch-up the same segment is listed by the live
//! playlist and by any number of archive windows, each at a different
//! position (media sequence number). Its IV and key period therefore come
//! from the segment itself, never from its position:
//!
//! ```text
//! id     = first 8 bytes, big-endian, of
//!          SHA-256("tollgate-seg" ‖ 0 ‖ path ‖ 0 ‖ query ‖ 0 ‖ range ‖ 0 ‖ time)
//! IV     = id as a 128-bit big-endian number (written as IV=0x… on its key line)
//! period = ⌊time / rotate_every⌋
//! ```
//!
//! `path` is the segment's normalized proxy path and `query` the query its
//! tag signs; `range` is `offset/length` (or empty); `time` is the
//! segment's `EXT-X-PROGRAM-DATE-TIME` in Unix milliseconds (its own tag, or
//! the last one plus the `EXTINF` durations since, RFC 8216 §4.4.4.6). So
//! every window that lists a segment gives it the same key, IV and
//! ciphertext (one fill in the segment cache), and two different segments
//! (another path, query, range or time) never share a key and an IV, even
//! across an origin restart (new segments, new times): these keys need no
//! stream incarnation (they use incarnation 0, which no live stream gets).
//!
//! A segment whose time is not known (no date before it, or one that does
//! not parse) cannot have a stable identity: the whole playlist is then
//! rewritten with position keys, as a live one is.
//!
//! Pure: no I/O, no clock.

use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::capability::ByteRange;

/// The media time of the segments of one playlist, as its tags say.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    /// `EXT-X-PROGRAM-DATE-TIME` given for the next segment (ms).
    pending: Option<i64>,
    /// The time the next segment starts at when it has no tag of its own.
    next: Option<i64>,
    /// The next segment's `EXTINF` duration (ms).
    duration: i64,
}

impl Clock {
    /// A `#EXT-X-PROGRAM-DATE-TIME:` or `#EXTINF:` line (anything else is
    /// ignored). A date that does not parse is as if absent.
    pub fn line(&mut self, content: &[u8]) {
        if let Some(value) = content.strip_prefix(b"#EXT-X-PROGRAM-DATE-TIME:") {
            self.pending = parse_date_ms(value);
        } else if let Some(value) = content.strip_prefix(b"#EXTINF:") {
            self.duration = parse_duration_ms(value);
        }
    }

    /// The start (Unix ms) of the segment whose URI line comes now, if
    /// known; advances to the next one.
    pub fn segment(&mut self) -> Option<i64> {
        let at = self.pending.take().or(self.next);
        self.next = at.map(|t| t.saturating_add(self.duration));
        self.duration = 0;
        at
    }
}

/// `2024-12-02T00:00:00.000Z` (RFC 3339, any offset) in Unix milliseconds.
fn parse_date_ms(value: &[u8]) -> Option<i64> {
    let text = value.trim_ascii();
    if let Some(ms) = fast_date_ms(text) {
        return Some(ms);
    }
    let t = OffsetDateTime::parse(std::str::from_utf8(text).ok()?, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The shape packagers write, `YYYY-MM-DDTHH:MM:SS[.f…](Z|±HH:MM)`, without
/// the general parser (a catch-up window has thousands); `None` for
/// anything else, which the general parser then decides.
fn fast_date_ms(t: &[u8]) -> Option<i64> {
    let num = |at: usize, len: usize| -> Option<i64> {
        let digits = t.get(at..at + len)?;
        digits.iter().try_fold(0i64, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let sep = |at: usize, c: u8| t.get(at) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let mut at = 19;
    let mut ms = 0;
    if sep(at, b'.') {
        at += 1;
        let start = at;
        while t.get(at).is_some_and(u8::is_ascii_digit) {
            if at - start < 3 {
                ms = ms * 10 + i64::from(t.get(at).copied().unwrap_or(b'0') - b'0');
            }
            at += 1;
        }
        if at == start {
            return None;
        }
        for _ in (at - start)..3 {
            ms *= 10;
        }
    }
    let offset_min = match t.get(at..)? {
        b"Z" | b"z" => 0,
        [s @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
            };
            let (h, m) = (two(*h1, *h2)?, two(*m1, *m2)?);
            if h > 23 || m > 59 {
                return None;
            }
            if *s == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        _ => return None,
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let max_day = *month_days.get(usize::try_from(month - 1).ok()?)?;
    if day < 1 || day > max_day || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days from 1970-01-01 (H. Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    Some(secs * 1000 + ms)
}

/// `6.006,title` in milliseconds (0 when it does not parse; negative
/// durations are 0).
fn parse_duration_ms(value: &[u8]) -> i64 {
    let number = value.split(|&b| b == b',').next().unwrap_or_default();
    let number = number.trim_ascii();
    let (whole, fraction) = match number.iter().position(|&b| b == b'.') {
        Some(dot) => (
            number.get(..dot).unwrap_or_default(),
            number.get(dot + 1..).unwrap_or_default(),
        ),
        None => (number, &[][..]),
    };
    if whole.is_empty() || !whole.iter().chain(fraction).all(u8::is_ascii_digit) {
        return 0;
    }
    let secs = whole
        .iter()
        .try_fold(0i64, |n, &d| {
            n.checked_mul(10)?.checked_add(i64::from(d - b'0'))
        })
        .unwrap_or(i64::MAX / 1000);
    let mut ms = 0i64;
    for (i, &d) in fraction.iter().take(3).enumerate() {
        ms += i64::from(d - b'0') * [100, 10, 1].get(i).copied().unwrap_or(0);
    }
    secs.saturating_mul(1000).saturating_add(ms)
}

/// The stable id of a segment (see the module docs).
pub(crate) fn segment_id(
    path: &str,
    query: Option<&str>,
    range: Option<ByteRange>,
    time_ms: i64,
) -> u64 {
    let mut h = Sha256::new();
    h.update(b"tollgate-seg\0");
    h.update(path.as_bytes());
    h.update([0]);
    h.update(query.unwrap_or_default().as_bytes());
    h.update([0]);
    if let Some(r) = range {
        h.update(r.offset.to_be_bytes());
        h.update(r.length.map_or(u64::MAX, |l| l).to_be_bytes());
    }
    h.update([0]);
    h.update(time_ms.to_be_bytes());
    let digest = h.finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
    u64::from_be_bytes(id)
}

/// The key period of a segment starting at `time_ms` (see the module
/// docs); times before 1970 are period 0.
pub(crate) fn period(time_ms: i64, rotate_every_secs: u64) -> u64 {
    u64::try_from(time_ms / 1000).unwrap_or(0) / rotate_every_secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_durations_parse_as_players_read_them() {
        assert_eq!(
            parse_date_ms(b"2024-12-02T00:00:00.000Z"),
            Some(1_733_097_600_000)
        );
        assert_eq!(
            parse_date_ms(b"2024-12-02T01:00:00.250+01:00"),
            Some(1_733_097_600_250)
        );
        assert_eq!(parse_date_ms(b"yesterday"), None);
        assert_eq!(parse_duration_ms(b"6.006,"), 6006);
        assert_eq!(parse_duration_ms(b"6,title"), 6000);
        assert_eq!(parse_duration_ms(b" 2.5 ,"), 2500);
        assert_eq!(parse_duration_ms(b"1.23456,"), 1234);
        assert_eq!(parse_duration_ms(b"-1,"), 0);
        assert_eq!(parse_duration_ms(b"x,"), 0);
        assert_eq!(
            parse_duration_ms(b"99999999999999999999999,"),
            i64::MAX / 1000 * 1000
        );
    }

    #[test]
    fn the_fast_date_path_agrees_with_the_general_parser() {
        let general = |s: &str| {
            OffsetDateTime::parse(s, &Rfc3339)
                .ok()
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        };
        let mut checked = 0;
        for year in [1970, 1999, 2000, 2024, 2026, 2100, 2400] {
            for month in 1..=12 {
                for day in [1, 28, 29, 30, 31] {
                    for (time, zone) in [
                        ("00:00:00", "Z"),
                        ("23:59:59.999", "Z"),
                        ("12:34:56.7", "+05:30"),
                        ("01:02:03.123456", "-08:00"),
                        ("10:00:00", "+00:00"),
                    ] {
                        let s = format!("{year:04}-{month:02}-{day:02}T{time}{zone}");
                        assert_eq!(fast_date_ms(s.as_bytes()), general(&s), "{s}");
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 7 * 12 * 5 * 5);
        for odd in [
            "2024-12-02 00:00:00Z",
            "2024-12-02T00:00:00",
            "2024-12-02T00:00:00.Z",
            "2024-13-02T00:00:00Z",
            "2024-12-02T24:00:00Z",
            "2024-12-02T00:00:00+0100",
        ] {
            assert_eq!(fast_date_ms(odd.as_bytes()), None, "{odd}");
        }
    }

    #[test]
    fn the_clock_follows_tags_and_extrapolates_by_durations() {
        let mut c = Clock::default();
        c.line(b"#EXTINF:6,");
        assert_eq!(c.segment(), None, "no date yet");
        c.line(b"#EXT-X-PROGRAM-DATE-TIME:2024-12-02T00:00:00.000Z");
        c.line(b"#EXTINF:6,");
        assert_eq!(c.segment(), Some(1_733_097_600_000));
        c.line(b"#EXTINF:4.5,");
        assert_eq!(c.segment(), Some(1_733_097_606_000));
        // A tag of its own wins over the extrapolation.
        c.line(b"#EXT-X-PROGRAM-DATE-TIME:2024-12-02T00:01:00.000Z");
        c.line(b"#EXTINF:6,");
        assert_eq!(c.segment(), Some(1_733_097_660_000));
        assert_eq!(c.segment(), Some(1_733_097_666_000));
    }

    #[test]
    fn ids_differ_by_every_input_and_periods_follow_time() {
        let base = segment_id("/live/ch1/seg-5.ts", None, None, 1_000);
        assert_eq!(base, segment_id("/live/ch1/seg-5.ts", None, None, 1_000));
        let others = [
            segment_id("/live/ch1/seg-6.ts", None, None, 1_000),
            segment_id("/live/ch1/seg-5.ts", Some("v=2"), None, 1_000),
            segment_id(
                "/live/ch1/seg-5.ts",
                None,
                Some(ByteRange {
                    offset: 0,
                    length: Some(10),
                }),
                1_000,
            ),
            segment_id("/live/ch1/seg-5.ts", None, None, 1_001),
        ];
        for o in others {
            assert_ne!(o, base);
        }
        assert_eq!(period(1_733_097_600_000, 600), 1_733_097_600 / 600);
        assert_eq!(period(-5_000, 600), 0);
    }
}
