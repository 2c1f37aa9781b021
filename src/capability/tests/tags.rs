//! Segment tags: every `Serve` variant, binding, canonical bodies, refusals.

use super::*;

fn all_serves() -> Vec<(Serve, &'static str)> {
    let r = |offset, length| Some(ByteRange { offset, length });
    vec![
        (
            Serve::Encrypt {
                inc: 1,
                period: 2,
                msn: 3,
                range: None,
            },
            "e.1.2.3",
        ),
        (
            Serve::Encrypt {
                inc: 0,
                period: 0,
                msn: 0,
                range: r(0, Some(0)),
            },
            "e.0.0.0.0.0",
        ),
        (
            Serve::Encrypt {
                inc: 0xffff_ffff_ffff,
                period: 10,
                msn: u64::MAX,
                range: r(1024, Some(188_000)),
            },
            "e.281474976710655.10.18446744073709551615.1024.188000",
        ),
        (
            Serve::Encrypt {
                inc: 7,
                period: 8,
                msn: 9,
                range: r(500, None),
            },
            "e.7.8.9.500.-",
        ),
        (Serve::Clear { range: None }, "c"),
        (
            Serve::Clear {
                range: r(0, Some(720)),
            },
            "c.0.720",
        ),
        (
            Serve::Clear {
                range: r(u64::MAX, None),
            },
            "c.18446744073709551615.-",
        ),
        (Serve::Key { until: 0 }, "k.0"),
        (
            Serve::Key {
                until: 1_764_000_000,
            },
            "k.1764000000",
        ),
    ]
}

#[test]
fn tag_round_trips_every_variant() {
    let k = keys();
    let path = "/live/ch1/seg.ts";
    for (serve, body) in all_serves() {
        assert_eq!(serve.to_string(), body);
        assert_eq!(body.parse::<Serve>(), Ok(serve));
        let tgs = k.sign_tag("live", "ch1", path, &serve);
        let (b, tag) = tgs.rsplit_once('.').unwrap();
        assert_eq!((b, tag.len()), (body, 16));
        assert_eq!(k.verify_tag(&tgs, "live", "ch1", path), Ok(serve));
    }
}

#[test]
fn tag_is_bound_to_route_channel_path_and_master() {
    let k = keys();
    let (serve, _) = all_serves()[3];
    let tgs = k.sign_tag("live", "ch1", "/live/ch1/a.ts", &serve);
    for (route, channel, path) in [
        ("vod", "ch1", "/live/ch1/a.ts"),
        ("live", "ch2", "/live/ch1/a.ts"),
        ("live", "ch1", "/live/ch1/b.ts"),
        ("live", "ch1", "/live/ch1/a.ts/"),
        ("live", "ch1", ""),
        ("live\0ch1", "", "/live/ch1/a.ts"),
    ] {
        assert_eq!(
            k.verify_tag(&tgs, route, channel, path),
            Err(CapError::BadSignature),
            "{route:?} {channel:?} {path:?}"
        );
    }
    assert_eq!(
        MasterKeys::new(&[7; 32]).verify_tag(&tgs, "live", "ch1", "/live/ch1/a.ts"),
        Err(CapError::BadSignature)
    );
    // Another body under the same tag: a signature failure, not a parse one.
    let (_, tag) = tgs.rsplit_once('.').unwrap();
    assert_eq!(
        k.verify_tag(&format!("c.{tag}"), "live", "ch1", "/live/ch1/a.ts"),
        Err(CapError::BadSignature)
    );
}

#[test]
fn tag_bodies_must_be_canonical() {
    let bad = [
        "",
        ".",
        "e",
        "e.1",
        "e.1.2",
        "e.1.2.3.4",
        "e.1.2.3.4.5.6",
        "e.1.2.3.-.5",
        "e.1.2.-",
        "e.01.2.3",
        "e.1.00.3",
        "e.+1.2.3",
        "e.-1.2.3",
        "e.1.2.3 ",
        "e. 1.2.3",
        "e.1..3",
        "e.0x1.2.3",
        "e.1.2.18446744073709551616",
        "e.1.2.99999999999999999999",
        "E.1.2.3",
        "c.",
        "c.1",
        "c.1.2.3",
        "c.-.1",
        "c.1.--",
        "c.1.-1",
        "k",
        "k.",
        "k.01",
        "k.1.2",
        "k.-",
        "c.01.2",
        "c.1.02",
        "x",
        "cc",
        "c.1.2.",
        "e.1.2.3.",
        "e.١.2.3",
    ];
    for body in bad {
        assert_eq!(body.parse::<Serve>(), Err(CapError::Malformed), "{body:?}");
    }
}

#[test]
fn malformed_tags() {
    let k = keys();
    let path = "/live/ch1/seg.ts";
    let good = k.sign_tag("live", "ch1", path, &Serve::Clear { range: None });
    let (_, tag) = good.rsplit_once('.').unwrap();
    let cases = [
        String::new(),
        "c".to_owned(),
        tag.to_owned(),
        format!(".{tag}"),
        format!("c.{}", &tag[..15]),
        format!("{good}A"),
        format!("{good}="),
        format!("{good}.x"),
        format!("c.{}", tag.replace(|_: char| true, "+")),
        format!("e.01.2.3.{tag}"),
        format!("c.0.00.{tag}"),
        format!("c.{tag}.{tag}"),
        good.replace('c', "C"),
    ];
    for v in cases {
        assert_eq!(
            k.verify_tag(&v, "live", "ch1", path),
            Err(CapError::Malformed),
            "{v:?}"
        );
    }
}

#[test]
fn errors_display_without_detail() {
    assert_eq!(CapError::Malformed.to_string(), "malformed");
    assert_eq!(CapError::BadSignature.to_string(), "bad signature");
    assert_eq!(CapError::Expired.to_string(), "expired");
}
