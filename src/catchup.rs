//! Catch-up (DVR) and timeshift requests (SPEC §7.4): which request names
//! an archive window, and how far back it reaches.
//!
//! Flussonic's archive forms are the last path segment of a playlist (or
//! an MPEG-TS export), forwarded to the origin unchanged:
//!
//! | form | window starts at |
//! |---|---|
//! | `index-FROM-DURATION.m3u8`, `archive-…`, `video-…`, `mono-…` | FROM |
//! | `index-FROM-now.m3u8`, `archive-FROM-now.m3u8`, … | FROM |
//! | `timeshift_abs-FROM.m3u8` | FROM |
//! | `timeshift_rel-OFFSET.m3u8` | now − OFFSET |
//!
//! FROM is in Unix seconds UTC, DURATION and OFFSET in seconds; `.ts` is
//! accepted wherever `.m3u8` is (Flussonic's archive export). A number too
//! large for 64 bits saturates: a FROM in the far future (the origin has
//! nothing there), an OFFSET back to 1970 (refused by any depth); no name
//! of these shapes is ever taken for a live request.
//!
//! Pure core: `now` is an argument; no I/O.

/// An archive window a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// `index-FROM-DURATION`, `archive-FROM-DURATION`, … (`duration` is
    /// `None` for `-now`).
    Range { from: u64, duration: Option<u64> },
    /// `timeshift_abs-FROM`.
    TimeshiftAbs { from: u64 },
    /// `timeshift_rel-OFFSET`: OFFSET seconds behind live.
    TimeshiftRel { offset: u64 },
}

impl Window {
    /// The first second the window shows, at `now`.
    pub fn earliest(self, now: u64) -> u64 {
        match self {
            Self::Range { from, .. } | Self::TimeshiftAbs { from } => from,
            Self::TimeshiftRel { offset } => now.saturating_sub(offset),
        }
    }
}

/// The archive forms' prefixes before `-FROM-…`.
const RANGE_PREFIXES: [&str; 4] = ["index", "archive", "video", "mono"];

/// The window the last segment of `path` names, if it is an archive form.
pub fn window(path: &str) -> Option<Window> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name
        .strip_suffix(".m3u8")
        .or_else(|| name.strip_suffix(".ts"))?;
    if let Some(n) = stem.strip_prefix("timeshift_abs-") {
        return Some(Window::TimeshiftAbs { from: seconds(n)? });
    }
    if let Some(n) = stem.strip_prefix("timeshift_rel-") {
        return Some(Window::TimeshiftRel {
            offset: seconds(n)?,
        });
    }
    let (prefix, rest) = stem.split_once('-')?;
    if !RANGE_PREFIXES.contains(&prefix) {
        return None;
    }
    let (from, until) = rest.split_once('-')?;
    let from = seconds(from)?;
    let duration = if until == "now" {
        None
    } else {
        Some(seconds(until)?)
    };
    Some(Window::Range { from, duration })
}

/// Decimal digits as seconds, saturating at `u64::MAX`; anything but
/// digits is not an archive form.
fn seconds(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

/// Why an archive request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep;

/// May a viewer whose depth is `depth` seconds (0 = no catch-up) watch the
/// window starting at `earliest` (unix seconds), at `now`? A start in the
/// future never reaches back (the origin decides what it has there).
pub fn check(earliest: u64, depth: u64, now: u64) -> Result<(), TooDeep> {
    if depth == 0 || earliest < now.saturating_sub(depth) {
        return Err(TooDeep);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_733_200_000;

    #[test]
    fn every_archive_form_is_recognized() {
        use Window::*;
        let cases: &[(&str, Option<Window>)] = &[
            (
                "/live/ch1/index-1733100000-3600.m3u8",
                Some(Range {
                    from: 1_733_100_000,
                    duration: Some(3600),
                }),
            ),
            (
                "archive-1733100000-60.m3u8",
                Some(Range {
                    from: 1_733_100_000,
                    duration: Some(60),
                }),
            ),
            (
                "/a/video-1-2.m3u8",
                Some(Range {
                    from: 1,
                    duration: Some(2),
                }),
            ),
            (
                "/a/mono-1733100000-3600.m3u8",
                Some(Range {
                    from: 1_733_100_000,
                    duration: Some(3600),
                }),
            ),
            (
                "/a/index-1733100000-now.m3u8",
                Some(Range {
                    from: 1_733_100_000,
                    duration: None,
                }),
            ),
            (
                "/a/archive-1733100000-now.m3u8",
                Some(Range {
                    from: 1_733_100_000,
                    duration: None,
                }),
            ),
            (
                "/a/archive-1733100000-3600.ts",
                Some(Range {
                    from: 1_733_100_000,
                    duration: Some(3600),
                }),
            ),
            (
                "/a/timeshift_abs-1733100000.m3u8",
                Some(TimeshiftAbs {
                    from: 1_733_100_000,
                }),
            ),
            (
                "/a/timeshift_rel-7200.m3u8",
                Some(TimeshiftRel { offset: 7200 }),
            ),
            // A child playlist of a catch-up master.
            (
                "/live/ch1/tracks-v1a1/index-1733100000-3600.m3u8",
                Some(Range {
                    from: 1_733_100_000,
                    duration: Some(3600),
                }),
            ),
            // Not archive forms: live playlists, segments, look-alikes.
            ("/live/ch1/index.m3u8", None),
            ("/live/ch1/mono.m3u8", None),
            ("/live/ch1/index-1733100000-3600.mp4", None),
            ("/live/ch1/index-17331x0000-3600.m3u8", None),
            ("/live/ch1/index--3600.m3u8", None),
            ("/live/ch1/index-1733100000-.m3u8", None),
            ("/live/ch1/index-1733100000.m3u8", None),
            ("/live/ch1/tracks-1733100000-3600.m3u8", None),
            ("/live/ch1/timeshift_rel-.m3u8", None),
            ("/live/ch1/timeshift_rel--5.m3u8", None),
            ("/live/ch1/seg-1733100000-3600.ts", None),
            ("/live/index-1733100000-3600.m3u8/x.ts", None),
        ];
        for (path, want) in cases {
            assert_eq!(window(path), *want, "{path}");
        }
    }

    #[test]
    fn numbers_that_overflow_never_reach_past_the_check() {
        // 30 digits: FROM saturates to u64::MAX (the future: allowed, the
        // origin has nothing there); an OFFSET saturates to "since 1970".
        let w = window("/a/index-999999999999999999999999999999-10.m3u8").unwrap();
        assert_eq!(w.earliest(NOW), u64::MAX);
        let rel = window("/a/timeshift_rel-999999999999999999999999999999.m3u8").unwrap();
        assert_eq!(rel.earliest(NOW), 0);
        assert_eq!(check(rel.earliest(NOW), 86_400, NOW), Err(TooDeep));
    }

    #[test]
    fn depth_check_uses_from_and_the_clock() {
        let day = 86_400;
        // Exactly at the edge of the depth: allowed; one second before: not.
        assert_eq!(check(NOW - day, day, NOW), Ok(()));
        assert_eq!(check(NOW - day - 1, day, NOW), Err(TooDeep));
        assert_eq!(check(NOW - 60, day, NOW), Ok(()));
        // The future (a clock skew between edge and origin): allowed.
        assert_eq!(check(NOW + 60, day, NOW), Ok(()));
        // No depth: every archive form is refused, even one a second old.
        assert_eq!(check(NOW, 0, NOW), Err(TooDeep));
        // A depth longer than the epoch: all of it.
        assert_eq!(check(0, u64::MAX, NOW), Ok(()));
        // timeshift_rel is measured from now.
        let rel = window("timeshift_rel-3600.m3u8").unwrap();
        assert_eq!(check(rel.earliest(NOW), 3600, NOW), Ok(()));
        assert_eq!(check(rel.earliest(NOW), 3599, NOW), Err(TooDeep));
    }
}
