//! WMSAuth `server_time`: US-format UTC timestamps (`1/5/2024 9:03:07 AM`).
//!
//! The official samples pad differently (PHP `n/j/Y g:i:s A`, Python
//! `%m/%d/%Y %I:%M:%S %p`, Java `M/d/y h:m:s a`), so [`parse`] accepts one or
//! two digits in every field but the year. The verifier hashes the received
//! text verbatim; this module only turns it into unix seconds for the time
//! rules. [`format`] writes the PHP form, which is what `tollgate sign` emits.
//!
//! Pure: no clock reads, no allocation in [`parse`].

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Unix seconds of `text` read as `M/D/YYYY h:m:s AM|PM` in UTC, or `None`
/// when it is not exactly that shape or not a real date. 12 AM is midnight.
pub fn parse(text: &str) -> Option<i64> {
    let (date, rest) = text.split_once(' ')?;
    let (clock, half) = rest.split_once(' ')?;
    let mut d = date.split('/');
    let month = small(d.next()?)?;
    let day = small(d.next()?)?;
    let year_text = d.next()?;
    if d.next().is_some() || year_text.len() != 4 {
        return None;
    }
    let year: i32 = digits(year_text)?.try_into().ok()?;
    let mut c = clock.split(':');
    let (hour, minute, second) = (small(c.next()?)?, small(c.next()?)?, small(c.next()?)?);
    if c.next().is_some() || !(1..=12).contains(&hour) {
        return None;
    }
    let pm = if half.eq_ignore_ascii_case("PM") {
        12
    } else if half.eq_ignore_ascii_case("AM") {
        0
    } else {
        return None;
    };
    let date = Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()?;
    let time = Time::from_hms(hour % 12 + pm, minute, second).ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// `unix` as the PHP sample writes it (`gmdate("n/j/Y g:i:s A")`), or `None`
/// when it is past what `time` can represent.
pub fn format(unix: u64) -> Option<String> {
    let t = OffsetDateTime::from_unix_timestamp(i64::try_from(unix).ok()?).ok()?;
    let (hour, half) = match t.hour() {
        0 => (12, "AM"),
        h @ 1..=11 => (h, "AM"),
        12 => (12, "PM"),
        h => (h - 12, "PM"),
    };
    Some(format!(
        "{}/{}/{} {}:{:02}:{:02} {}",
        u8::from(t.month()),
        t.day(),
        t.year(),
        hour,
        t.minute(),
        t.second(),
        half
    ))
}

/// A one- or two-digit field.
fn small(text: &str) -> Option<u8> {
    if text.is_empty() || text.len() > 2 {
        return None;
    }
    u8::try_from(digits(text)?).ok()
}

/// ASCII digits only (no sign, no spaces), at most 4 of them.
fn digits(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 4 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_704_445_387; // 2024-01-05 09:03:07 UTC

    #[test]
    fn the_three_sample_paddings() {
        for text in [
            "1/5/2024 9:03:07 AM",
            "01/05/2024 09:03:07 AM",
            "1/5/2024 9:3:7 AM",
            "1/5/2024 9:03:07 am",
        ] {
            assert_eq!(parse(text), Some(T), "{text}");
        }
        assert_eq!(format(T as u64).as_deref(), Some("1/5/2024 9:03:07 AM"));
    }

    #[test]
    fn noon_and_midnight() {
        let midnight = 1_704_412_800; // 2024-01-05 00:00:00 UTC
        assert_eq!(parse("1/5/2024 12:00:00 AM"), Some(midnight));
        assert_eq!(parse("1/5/2024 12:00:00 PM"), Some(midnight + 12 * 3600));
        assert_eq!(parse("1/5/2024 11:59:59 PM"), Some(midnight + 86_399));
        for unix in [midnight, midnight + 12 * 3600, midnight + 86_399, T] {
            let text = format(unix as u64).unwrap();
            assert_eq!(parse(&text), Some(unix), "{text}");
        }
    }

    #[test]
    fn malformed_is_none() {
        for bad in [
            "",
            "1/5/2024",
            "1/5/24 9:03:07 AM",
            "13/5/2024 9:03:07 AM",
            "2/30/2024 9:03:07 AM",
            "1/5/2024 0:03:07 AM",
            "1/5/2024 13:03:07 PM",
            "1/5/2024 9:60:07 AM",
            "1/5/2024 9:03:07",
            "1/5/2024 9:03:07 XM",
            "1/5/2024  9:03:07 AM",
            "1/5/2024 9:03:07:1 AM",
            "1/5/2024/1 9:03:07 AM",
            "+1/5/2024 9:03:07 AM",
            "001/5/2024 9:03:07 AM",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
