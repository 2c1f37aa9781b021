//! `device`: hostile queries through the whole method (the route's
//! decision with `hwid`), and the promises of a link it signs.
//!
//! Input: a time offset, an HWID, the offset of `ts` from now, a tamper
//! position and byte, then the rest as a query tried as is.
//!
//! Asserted: never a panic; a hostile query is allowed only when it is a
//! correct signature for a registered device of the token's user (checked
//! against the signature computed here); a link signed for a registered
//! device plays exactly when `|ts − now| ≤ tolerance` and the HWID follows
//! the rule; any one changed character of its signature is refused; the
//! same signature for another HWID is refused.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate::auth::device::signature;
use tollgate::auth::query::{param, percent_decode, percent_encode};
use tollgate::auth::{AuthMethod, AuthRequest, Authenticator, Known, Step};
use tollgate::entitlements::Entitlements;
use tollgate_fuzz::{Reader, config};

const TOLERANCE: u64 = 300;

fn setup() -> &'static (Authenticator, Entitlements) {
    static S: OnceLock<(Authenticator, Entitlements)> = OnceLock::new();
    S.get_or_init(|| {
        let c = config(
            "[auth.device]\ntolerance = \"5m\"\n\n[[user]]\nid = \"ann\"\ntokens = [\"ann-token\"]\npackages = [\"*\"]\n\n[[user]]\nid = \"ben\"\ntokens = [\"ben-token\"]\npackages = [\"*\"]\n\n[[device]]\nhwid = \"box-1\"\nuser = \"ann\"\n\n[[device]]\nhwid = \"box-2\"\nuser = \"ben\"\n\n[[device]]\nhwid = \"box-3\"\nuser = \"ann\"\ndisabled = true\n",
        );
        let ents = Entitlements::build(c.entitlements.clone()).expect("fuzz entitlements");
        (Authenticator::new(&[], &[], c.auth.clone()), ents)
    })
}

fn decide(query: &str, now: u64) -> Result<Option<String>, ()> {
    let (auth, ents) = setup();
    let headers = http::HeaderMap::new();
    let req = AuthRequest {
        client_ip: "192.0.2.1".parse().expect("ip"),
        path: "/live/ch1/index.m3u8",
        query: Some(query),
        headers: &headers,
        channel: Some("ch1"),
        now,
    };
    // The API layer is empty: the users are the config's.
    let api = Entitlements::default();
    let known = Known {
        api: &api,
        effective: ents,
    };
    match auth.decide_from(&[AuthMethod::Device, AuthMethod::Token], 0, &req, Some(&known)) {
        Step::Done(d) => d.result.map(|id| id.device).map_err(|_| ()),
        Step::Backend(_) => panic!("no backend"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader(data);
    let now = 1_700_000_000 + (r.u64() % 1_000_000_000);
    let hwid = match r.u8() % 4 {
        0 => "box-1".to_owned(),
        1 => "box-2".to_owned(),
        2 => "box-3".to_owned(),
        _ => r.string(140),
    };
    let skew = i64::from(r.u8() as i8) * 5;
    let tamper_at = usize::from(r.u8());
    let tamper_with = r.u8();
    let raw = r.rest();

    // Hostile text: allowed only with a correct signature for a box of
    // the token's user.
    if let Ok(device) = decide(&raw, now) {
        match device {
            Some(h) => {
                let token = param(&raw, "token").map(percent_decode).expect("a token");
                let token = String::from_utf8(token.into_owned()).expect("utf-8 token");
                let ts = param(&raw, "ts").expect("a ts");
                let sig = signature(&token, &h, ts.parse().expect("digits")).expect("sig");
                assert_eq!(param(&raw, "sig"), Some(sig.as_str()), "{raw:?}");
                assert!(h == "box-1" || h == "box-2", "{h:?} is nobody's enabled box");
            }
            // Without hwid the token method decided.
            None => assert!(param(&raw, "hwid").is_none(), "{raw:?}"),
        }
    }

    // A link ann's box signs.
    let ts = now.saturating_add_signed(skew);
    let Some(sig) = signature("ann-token", &hwid, ts) else {
        panic!("HMAC takes any key");
    };
    let link = |h: &str, s: &str| {
        format!("token=ann-token&hwid={}&ts={ts}&sig={s}", percent_encode(h))
    };
    let plays = decide(&link(&hwid, &sig), now).is_ok();
    let fresh = now.abs_diff(ts) <= TOLERANCE;
    assert_eq!(plays, fresh && hwid == "box-1", "{hwid:?} skew {skew}");
    // One changed character of the signature.
    let mut bad = sig.clone().into_bytes();
    if let Some(b) = bad.get_mut(tamper_at % sig.len()) {
        let c = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            [usize::from(tamper_with) % 64];
        if *b != c {
            *b = c;
            let bad = String::from_utf8(bad).expect("ascii");
            assert!(decide(&link(&hwid, &bad), now).is_err(), "tampered {bad}");
        }
    }
    // The same signature on another box.
    assert!(decide(&link("box-2", &sig), now).is_err() || hwid == "box-2");
});
