//! Segment tags (`tgs`): decoding hostile text, and the one-encoding rule
//! of `Serve` (`parse(display(s)) == s`, and `display(parse(t)) == t` for
//! any body text that parses).
//!
//! Input: fields for a `Serve` and a scope, then text tried as a tag body
//! and as a whole tag.
//!
//! Asserted: a signed tag verifies to its `Serve` for its route, channel
//! and path, and for no other path; changing any character breaks it;
//! verify never panics on any text.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate::capability::{ByteRange, MasterKeys, Serve};
use tollgate_fuzz::Reader;

fn keys() -> &'static MasterKeys {
    static K: OnceLock<MasterKeys> = OnceLock::new();
    K.get_or_init(|| MasterKeys::new(b"fuzzing master key, 32 bytes long"))
}

fuzz_target!(|data: &[u8]| {
    let keys = keys();
    let mut r = Reader(data);
    let flags = r.u8();
    let range = (flags & 2 != 0).then(|| ByteRange {
        offset: r.u64(),
        length: (flags & 4 != 0).then(|| r.u64()),
    });
    let serve = if flags & 1 != 0 {
        Serve::Encrypt {
            inc: r.u64(),
            period: r.u64(),
            msn: r.u64(),
            range,
        }
    } else {
        Serve::Clear { range }
    };
    let route = r.string(16);
    let channel = r.string(16);
    let path = r.string(64);
    let tamper_at = usize::from(r.u8());
    let raw = r.rest();

    let body = serve.to_string();
    assert_eq!(body.parse::<Serve>(), Ok(serve), "{body:?}");
    if let Ok(s) = raw.parse::<Serve>() {
        assert_eq!(s.to_string(), raw, "two encodings of {s:?}");
    }
    let _ = keys.verify_tag(&raw, &route, &channel, &path);

    let tag = keys.sign_tag(&route, &channel, &path, &serve);
    assert_eq!(keys.verify_tag(&tag, &route, &channel, &path), Ok(serve));
    let other = format!("{path}/");
    assert!(keys.verify_tag(&tag, &route, &channel, &other).is_err());
    let mut bytes = tag.clone().into_bytes();
    let at = tamper_at % bytes.len();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8_lossy(&bytes);
    assert!(
        keys.verify_tag(&tampered, &route, &channel, &path).is_err(),
        "tampered {tampered:?} accepted"
    );
});
