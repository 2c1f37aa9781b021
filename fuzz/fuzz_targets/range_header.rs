//! `Range:` request headers over encrypted segments.
//!
//! Input: 8 bytes of body length, then the header bytes.
//!
//! Asserted: never a panic; a partial answer lies inside the body
//! (`start <= end < total`); unknown totals are always answered whole;
//! and the three forms the module accepts, written from the fuzzed
//! numbers, give exactly the documented answer.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use tollgate::segcache::{RangeAnswer, parse_range};
use tollgate_fuzz::Reader;

fuzz_target!(|data: &[u8]| {
    let mut r = Reader(data);
    let total = r.u64() >> (r.u8() % 64);
    let a = r.u64() >> (r.u8() % 64);
    let b = r.u64() >> (r.u8() % 64);
    let raw = r.bytes(usize::MAX);
    if let Ok(h) = HeaderValue::from_bytes(raw) {
        check(&h, total);
        assert_eq!(parse_range(&h, None), RangeAnswer::Full);
    }

    let ask = |text: String| {
        parse_range(
            &HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("")),
            Some(total),
        )
    };
    let want = if a >= total {
        RangeAnswer::Unsatisfiable
    } else {
        RangeAnswer::Partial(a, b.min(total - 1))
    };
    if a <= b {
        assert_eq!(ask(format!("bytes={a}-{b}")), want);
    }
    let open = if a >= total {
        RangeAnswer::Unsatisfiable
    } else {
        RangeAnswer::Partial(a, total - 1)
    };
    assert_eq!(ask(format!("bytes={a}-")), open);
    let suffix = if b == 0 || total == 0 {
        RangeAnswer::Unsatisfiable
    } else {
        RangeAnswer::Partial(total - b.min(total), total - 1)
    };
    assert_eq!(ask(format!("bytes=-{b}")), suffix);
});

fn check(h: &HeaderValue, total: u64) {
    if let RangeAnswer::Partial(s, e) = parse_range(h, Some(total)) {
        assert!(s <= e && e < total, "{h:?} over {total}: {s}..={e}");
    }
}
