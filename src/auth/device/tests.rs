use std::collections::HashMap;

use super::*;
use crate::auth::vectors::{self, Case};
use crate::auth::{AuthMethod, Authenticator, Decision, Known, Schemes, Step};
use crate::entitlements::{Device, Snapshot, User};
use crate::error::ProxyError;

/// The users (token → id) and devices of a vector case, as entitlements.
fn entitlements(case: &Case) -> Entitlements {
    let mut snapshot = Snapshot::default();
    let users: HashMap<String, String> =
        serde_json::from_value(case.inputs["users"].clone()).expect("users");
    let mut tokens: Vec<(String, String)> = users.into_iter().collect();
    tokens.sort();
    for (token, id) in tokens {
        let user = User {
            tokens: vec![token],
            packages: vec!["*".into()],
            ..User::default()
        };
        snapshot.users.insert(id, user);
    }
    let devices: serde_json::Map<String, serde_json::Value> =
        serde_json::from_value(case.inputs["devices"].clone()).expect("devices");
    for (hwid, d) in devices {
        let device: Device = serde_json::from_value(d).expect("device");
        snapshot.devices.insert(hwid, device);
    }
    Entitlements::build(snapshot).expect("vector entitlements build")
}

fn authenticator(tolerance: u64, auto_register: u32) -> Authenticator {
    let schemes = Schemes {
        device: DeviceAuth {
            tolerance,
            auto_register,
        },
        ..Schemes::default()
    };
    Authenticator::new(&[], &[], schemes)
}

fn decide(
    a: &Authenticator,
    methods: &[AuthMethod],
    query: &str,
    ents: &Entitlements,
    now: u64,
) -> Decision {
    let headers = http::HeaderMap::new();
    let req = vectors::request(
        "/live/ch1/index.m3u8",
        Some(query),
        &headers,
        "192.0.2.1",
        now,
    );
    let known = Known {
        api: ents,
        effective: ents,
    };
    match a.decide_from(methods, 0, &req, Some(&known)) {
        Step::Done(d) => d,
        Step::Backend(_) => panic!("no backend here"),
    }
}

/// Every case of `tollgate_device` (authref.py's independent
/// implementation) through the whole method: verdict, user and whether the
/// device registers itself.
#[test]
fn known_answer_vectors() {
    let cases = vectors::cases("tollgate_device");
    assert!(cases.len() >= 14, "{} cases", cases.len());
    for case in &cases {
        let ents = entitlements(case);
        let auto = u32::try_from(case.inputs["auto_register"].as_u64().unwrap_or(0)).unwrap();
        let a = authenticator(case.u("tolerance"), auto);
        let d = decide(
            &a,
            &[AuthMethod::Device],
            case.s("query"),
            &ents,
            case.u("now"),
        );
        assert_eq!(d.method, Some(AuthMethod::Device), "{}", case.name);
        match case.verdict() {
            "allow" => {
                let id = d.result.unwrap_or_else(|e| panic!("{}: {e:?}", case.name));
                assert_eq!(
                    id.user.as_deref(),
                    case.expected["user"].as_str(),
                    "{}",
                    case.name
                );
                assert_eq!(
                    id.register_device,
                    case.expected["registered"].as_bool().unwrap(),
                    "{}",
                    case.name
                );
                let hwid = query::param(case.s("query"), "hwid").unwrap();
                let hwid = String::from_utf8(query::percent_decode(hwid).into_owned()).unwrap();
                assert_eq!(id.device.as_deref(), Some(hwid.as_str()), "{}", case.name);
            }
            "forbidden" => assert_eq!(d.result, Err(ProxyError::Forbidden), "{}", case.name),
            "blocked" => assert_eq!(d.result, Err(ProxyError::Blocked), "{}", case.name),
            other => panic!("{}: verdict {other}", case.name),
        }
        assert_eq!(
            case.expected["http_status"].as_u64(),
            Some(if case.verdict() == "allow" { 200 } else { 403 })
        );
    }
}

fn alice() -> Entitlements {
    let mut s = Snapshot::default();
    s.users.insert(
        "alice".into(),
        User {
            tokens: vec!["alice-token".into()],
            packages: vec!["*".into()],
            ..User::default()
        },
    );
    s.devices.insert(
        "box-1".into(),
        Device {
            user: "alice".into(),
            ..Device::default()
        },
    );
    Entitlements::build(s).unwrap()
}

const NOW: u64 = 1_733_200_000;

fn signed(token: &str, hwid: &str, ts: u64) -> String {
    let sig = signature(token, hwid, ts).unwrap();
    format!("token={token}&hwid={hwid}&ts={ts}&sig={sig}")
}

/// `hwid` makes a request the device method's wherever the route lists it:
/// the user's plain token beside it does not play, on any order of methods;
/// on a route without `device`, `token` does not admit it either.
#[test]
fn hwid_is_decided_by_the_device_method_only() {
    let ents = alice();
    let a = authenticator(300, 0);
    let unsigned = "token=alice-token&hwid=box-1";
    for methods in [
        &[AuthMethod::Token, AuthMethod::Device][..],
        &[AuthMethod::Device, AuthMethod::Token][..],
    ] {
        let d = decide(&a, methods, unsigned, &ents, NOW);
        assert_eq!(
            (d.result, d.method),
            (Err(ProxyError::Forbidden), Some(AuthMethod::Device))
        );
        let d = decide(
            &a,
            methods,
            &signed("alice-token", "box-1", NOW),
            &ents,
            NOW,
        );
        assert_eq!(d.result.unwrap().device.as_deref(), Some("box-1"));
        // Without hwid the token method plays as ever; device passes.
        let d = decide(&a, methods, "token=alice-token", &ents, NOW);
        assert_eq!(
            (d.result.unwrap().user.as_deref(), d.method),
            (Some("alice"), Some(AuthMethod::Token))
        );
    }
    let d = decide(&a, &[AuthMethod::Token], unsigned, &ents, NOW);
    assert_eq!((d.result, d.method), (Err(ProxyError::Forbidden), None));
    let d = decide(&a, &[AuthMethod::Device], "token=alice-token", &ents, NOW);
    assert_eq!(d.result, Err(ProxyError::Forbidden));
}

/// Spellings that are not the signed text or not the wire format.
#[test]
fn malformed_parameters_are_forbidden() {
    let ents = alice();
    let a = authenticator(300, 0);
    let sig = signature("alice-token", "box-1", NOW).unwrap();
    let cases = [
        format!("token=alice-token&hwid=box-1&ts=+{NOW}&sig={sig}"),
        format!("token=alice-token&hwid=box-1&ts=0{NOW}&sig={sig}"),
        format!("token=alice-token&hwid=box-1&ts={NOW}x&sig={sig}"),
        format!("token=alice-token&hwid=box-1&ts=&sig={sig}"),
        format!("token=alice-token&hwid=box-1&ts={NOW}&sig={sig}="),
        format!(
            "token=alice-token&hwid=box-1&ts={NOW}&sig={}",
            sig.replace('-', "+").replace('_', "/")
        ),
        format!("token=alice-token&hwid=box-1&ts={NOW}&sig={}", &sig[..42]),
        format!("token=alice-token&hwid=box-1&ts={NOW}&sig={sig}A"),
        format!("token=alice-token&hwid=box%2F1&ts={NOW}&sig={sig}"),
        format!("token=alice-token&hwid=&ts={NOW}&sig={sig}"),
        format!("token=alice-token&hwid=box-1&ts={NOW}"),
        format!("hwid=box-1&ts={NOW}&sig={sig}"),
        format!("token=alice-token&hwid=box-1&ts=99999999999999999999999&sig={sig}"),
    ];
    for q in &cases {
        let d = decide(&a, &[AuthMethod::Device], q, &ents, NOW);
        assert_eq!(d.result, Err(ProxyError::Forbidden), "{q}");
    }
    // The well-formed one plays, percent-encoded hwid included.
    let ok = decide(
        &a,
        &[AuthMethod::Device],
        &signed("alice-token", "box-1", NOW),
        &ents,
        NOW,
    );
    assert!(ok.result.is_ok());
}

/// A device of a user the entitlements no longer list, or whose token is
/// not theirs, is refused; auto-registration counts disabled devices.
#[test]
fn registration_needs_room_and_a_known_token() {
    let ents = alice();
    let a = authenticator(300, 2);
    let d = decide(
        &a,
        &[AuthMethod::Device],
        &signed("alice-token", "box-2", NOW),
        &ents,
        NOW,
    );
    let id = d.result.unwrap();
    assert!(id.register_device && id.device.as_deref() == Some("box-2"));
    let d = decide(
        &a,
        &[AuthMethod::Device],
        &signed("nobody", "box-2", NOW),
        &ents,
        NOW,
    );
    assert_eq!(d.result, Err(ProxyError::Forbidden));
    let full = authenticator(300, 1);
    let d = decide(
        &full,
        &[AuthMethod::Device],
        &signed("alice-token", "box-2", NOW),
        &ents,
        NOW,
    );
    assert_eq!(d.result, Err(ProxyError::Forbidden));
}

#[test]
fn config_bounds() {
    let raw = |t: Option<&str>, n: Option<u32>| RawConfig {
        tolerance: t.map(str::to_owned),
        auto_register: n,
    };
    assert_eq!(DeviceAuth::new(None), Ok(DeviceAuth::default()));
    assert_eq!(
        DeviceAuth::new(Some(&raw(Some("30s"), Some(3)))),
        Ok(DeviceAuth {
            tolerance: 30,
            auto_register: 3
        })
    );
    let keys = |r: Result<DeviceAuth, Vec<(String, String)>>| -> Vec<String> {
        r.unwrap_err().into_iter().map(|(k, _)| k).collect()
    };
    assert_eq!(
        keys(DeviceAuth::new(Some(&raw(Some("2d"), None)))),
        ["tolerance"]
    );
    assert_eq!(
        keys(DeviceAuth::new(Some(&raw(Some("soon"), None)))),
        ["tolerance"]
    );
    assert_eq!(
        keys(DeviceAuth::new(Some(&raw(None, Some(1001))))),
        ["auto_register"]
    );
}
