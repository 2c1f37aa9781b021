//! Human units in the config file: durations (`"30s"`, `"10m"`, `"1h 30m"`) and
//! byte sizes (`"512MiB"`, `"16KiB"`, `"64kB"`, `"4096"`).
//!
//! Pure parsing; errors are plain strings that the config layer prefixes with
//! the key path.

use std::time::Duration;

/// Parse a duration such as `"250ms"`, `"30s"`, `"10m"`, `"1h 30m"`.
///
/// A bare number without a unit is refused: `"30"` is ambiguous (nginx reads
/// seconds, Flussonic milliseconds), so the operator must say which.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "duration {trimmed:?} has no unit; write e.g. \"{trimmed}s\" or \"{trimmed}ms\""
        ));
    }
    humantime::parse_duration(trimmed).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

/// Parse a byte size such as `"512MiB"`, `"16KiB"`, `"64kB"`, `"1GB"` or a bare
/// number of bytes. Binary (`KiB`, `MiB`, `GiB`) and decimal (`kB`, `MB`, `GB`)
/// units are both accepted, case-insensitively for the letters after the first.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "invalid size {text:?}: expected a number, e.g. \"512MiB\""
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size {text:?}: number too large"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "invalid size {text:?}: unknown unit {other:?} (use B, KiB, MiB, GiB, kB, MB, GB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("invalid size {text:?}: too large"))
}

/// Unix seconds as RFC 3339 (`2026-11-21T23:37:03Z`), as the admin API and
/// the control-plane report show instants; `""` past year 9999.
pub fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_renders_in_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn durations() {
        let ok = [
            ("30s", Duration::from_secs(30)),
            ("10m", Duration::from_secs(600)),
            ("250ms", Duration::from_millis(250)),
            ("1h 30m", Duration::from_secs(5400)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in ["", "30", "abc", "-1s", "10 parsecs"] {
            assert!(parse_duration(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn sizes() {
        let ok = [
            ("512MiB", 512 << 20),
            ("16KiB", 16 << 10),
            ("64kB", 64_000),
            ("1GB", 1_000_000_000),
            ("4096", 4096),
            ("8 KiB", 8192),
        ];
        for (text, want) in ok {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
        for bad in [
            "",
            "MiB",
            "12 parsecs",
            "99999999999999999999",
            "18446744073709551615GiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad} should fail");
        }
    }
}
