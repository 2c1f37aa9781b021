//! Every `flussonic_backend` vector through [`interpret`] / [`combine`] /
//! [`BackendQuery`], garbage header tables and a no-panic property.

use http::{HeaderName, HeaderValue};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;
use crate::auth::vectors::{self, Case};

fn headers(v: &Value) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in v.as_object().into_iter().flatten() {
        let name = HeaderName::from_bytes(k.as_bytes()).unwrap();
        h.append(name, HeaderValue::from_str(v.as_str().unwrap()).unwrap());
    }
    h
}

fn cached(v: &Value) -> Option<Cached> {
    match v.as_str() {
        None => None,
        Some("allow") => Some(Cached::Allow),
        Some("forbidden") => Some(Cached::Forbidden),
        Some(other) => panic!("cached {other:?}"),
    }
}

/// One backend entry (`status`, `headers`, `cached`) of a case.
fn one(i: &Value) -> BackendAnswer {
    let status = i["status"].as_u64().map(|s| u16::try_from(s).unwrap());
    interpret(status, &headers(&i["headers"]), cached(&i["cached"]))
}

/// An answer in the reference's dict shape (without `reason`).
/// `backend_unavailable` is set by the reference's interpret only, never by
/// its combine.
fn render(a: &BackendAnswer, from_combine: bool) -> Value {
    let mut m = Map::new();
    let verdict = match &a.verdict {
        BackendVerdict::Allow => "allow",
        BackendVerdict::Forbidden => "forbidden",
        BackendVerdict::Redirect { location } => {
            m.insert("location".into(), json!(location));
            "redirect"
        }
    };
    m.insert("verdict".into(), json!(verdict));
    if let Some(p) = &a.params {
        m.insert("auth_duration".into(), json!(p.auth_duration.as_secs()));
        if let Some(u) = &p.user_id {
            m.insert("user_id".into(), json!(u));
        }
        if let Some(n) = p.max_sessions {
            m.insert("max_sessions".into(), json!(n));
        }
        m.insert("unique".into(), json!(p.unique));
    }
    if a.source == AnswerSource::Unavailable && !from_combine {
        m.insert("backend_unavailable".into(), json!(true));
    }
    Value::Object(m)
}

fn run(c: &Case) -> Value {
    match c.inputs["backends"].as_array() {
        Some(list) => {
            let answers: Vec<_> = list.iter().map(one).collect();
            let allow_default = c.inputs["allow_default"].as_bool().unwrap_or(false);
            render(&combine(&answers, allow_default), true)
        }
        None => render(&one(&c.inputs), false),
    }
}

#[test]
fn every_flussonic_backend_vector() {
    let cases = vectors::cases("flussonic_backend");
    assert_eq!(cases.len(), 11);
    let mut queries = 0;
    for c in &cases {
        assert_eq!(run(c), c.expected, "{}", c.name);
        if let Some(q) = c.inputs["backend_query"].as_str() {
            let built = BackendQuery::new(
                "news",
                "198.51.100.4".parse().unwrap(),
                "hls",
                RequestType::NewSession,
                "6217fd62-16da-4206-9da9-0173d7552a14",
            )
            .token("60334b207baa")
            .user_agent("curl/7.68.0")
            .referer("hey.com");
            assert_eq!(built.to_query_string(), q, "{}", c.name);
            queries += 1;
        }
    }
    assert_eq!(queries, 1);
}

#[test]
fn query_encoding_and_optional_params() {
    let q = BackendQuery::new(
        "a b/ч",
        "2001:db8::1".parse().unwrap(),
        "dash",
        RequestType::UpdateSession,
        "s",
    )
    .request_number(3)
    .clients(5, 9)
    .host("edge:8080")
    .qs("token=x&y=1")
    .progress(61, 1024)
    .param("k&=", "v");
    assert_eq!(
        q.to_query_string(),
        "name=a%20b%2F%D1%87&ip=2001%3Adb8%3A%3A1&proto=dash&request_type=update_session\
         &request_number=3&session_id=s&stream_clients=5&total_clients=9\
         &host=edge%3A8080&qs=token%3Dx%26y%3D1&duration=61&bytes=1024&k%26%3D=v"
    );
    let dbg = format!("{:?}", q.clone().token("sekrit"));
    assert!(!dbg.contains("sekrit") && !dbg.contains("token=x"), "{dbg}");
}

fn hm(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v).unwrap(),
        );
    }
    h
}

fn params_of(pairs: &[(&str, &[u8])]) -> SessionParams {
    interpret(Some(200), &hm(pairs), None).params.unwrap()
}

#[test]
fn garbage_header_values_read_as_defaults() {
    let d = DEFAULT_AUTH_DURATION;
    let cases: [(&[u8], Duration, Option<u32>); 9] = [
        (b"", d, None),
        (b" 60", d, None),
        (b"-1", d, None),
        (b"+5", d, None),
        (b"1e3", d, None),
        (b"0x10", d, None),
        (b"\xff\xfe", d, None),
        (b"0", Duration::ZERO, Some(0)),
        (
            b"99999999999999999999999",
            Duration::from_secs(u64::MAX),
            Some(u32::MAX),
        ),
    ];
    for (v, dur, max) in cases {
        let p = params_of(&[("x-authduration", v), ("X-Max-Sessions", v)]);
        assert_eq!((p.auth_duration, p.max_sessions), (dur, max), "{v:?}");
    }
    for (v, unique) in [
        (&b"TRUE"[..], true),
        (b"True", true),
        (b"yes", false),
        (b"1", false),
        (b" true", false),
    ] {
        assert_eq!(params_of(&[("x-unique", v)]).unique, unique, "{v:?}");
    }
    assert_eq!(params_of(&[("x-userid", b"")]).user_id, None);
    assert_eq!(params_of(&[("x-userid", b"\xff")]).user_id, None);
    assert_eq!(
        params_of(&[("x-userid", "ключ".as_bytes())])
            .user_id
            .as_deref(),
        Some("ключ")
    );
    // A repeated header counts its last value, like the reference's dict.
    let p = params_of(&[("x-authduration", b"5"), ("X-AuthDuration", b"7")]);
    assert_eq!(p.auth_duration, Duration::from_secs(7));
}

#[test]
fn status_table() {
    let loc = hm(&[("location", b"http://x/")]);
    let empty_loc = hm(&[("location", b"")]);
    let none = HeaderMap::new();
    let redirect = BackendVerdict::Redirect {
        location: "http://x/".into(),
    };
    let cases = [
        (
            Some(200),
            &none,
            None,
            BackendVerdict::Allow,
            AnswerSource::Backend,
        ),
        (
            Some(301),
            &loc,
            None,
            redirect.clone(),
            AnswerSource::Backend,
        ),
        (Some(302), &loc, None, redirect, AnswerSource::Backend),
        (
            Some(303),
            &loc,
            None,
            BackendVerdict::Forbidden,
            AnswerSource::Backend,
        ),
        (
            Some(302),
            &empty_loc,
            None,
            BackendVerdict::Forbidden,
            AnswerSource::Backend,
        ),
        (
            Some(204),
            &none,
            None,
            BackendVerdict::Forbidden,
            AnswerSource::Backend,
        ),
        (
            Some(403),
            &none,
            Some(Cached::Allow),
            BackendVerdict::Forbidden,
            AnswerSource::Backend,
        ),
        (
            Some(499),
            &none,
            Some(Cached::Allow),
            BackendVerdict::Forbidden,
            AnswerSource::Backend,
        ),
        (
            Some(599),
            &none,
            Some(Cached::Allow),
            BackendVerdict::Allow,
            AnswerSource::StaleCache,
        ),
        (
            Some(503),
            &none,
            Some(Cached::Forbidden),
            BackendVerdict::Forbidden,
            AnswerSource::Unavailable,
        ),
        (
            None,
            &none,
            Some(Cached::Allow),
            BackendVerdict::Allow,
            AnswerSource::StaleCache,
        ),
        (
            Some(600),
            &none,
            Some(Cached::Allow),
            BackendVerdict::Forbidden,
            AnswerSource::Backend,
        ),
    ];
    for (status, h, cached, verdict, source) in cases {
        let a = interpret(status, h, cached);
        assert_eq!(
            (&a.verdict, a.source),
            (&verdict, source),
            "{status:?} {cached:?}"
        );
    }
}

#[test]
fn combine_edges() {
    assert_eq!(combine(&[], true).verdict, BackendVerdict::Forbidden);
    let allow = interpret(Some(200), &hm(&[("x-userid", b"7")]), None);
    let redirect = interpret(Some(302), &hm(&[("location", b"/r")]), None);
    let deny = interpret(Some(403), &HeaderMap::new(), None);
    assert_eq!(combine(&[redirect.clone(), allow.clone()], false), allow);
    assert_eq!(combine(&[deny.clone(), redirect.clone()], false), redirect);
    let down = interpret(None, &HeaderMap::new(), None);
    assert_eq!(
        combine(&[deny, down], true).verdict,
        BackendVerdict::Forbidden
    );
}

#[test]
fn session_key_matches_reference_and_is_injective() {
    let ip: IpAddr = "198.51.100.4".parse().unwrap();
    assert_eq!(
        session_key("60334b207baa", ip, "news"),
        "60334b207baa|198.51.100.4|news"
    );
    let other: IpAddr = "1.1.1.1".parse().unwrap();
    let a = session_key("A|1.1.1.1|B", "2.2.2.2".parse().unwrap(), "C");
    let b = session_key("A", other, "B|2.2.2.2|C");
    assert_ne!(a, b);
}

fn arb_name() -> impl Strategy<Value = HeaderName> {
    prop_oneof![
        prop::sample::select(vec![
            "x-authduration",
            "X-UserId",
            "x-max-sessions",
            "X-Unique",
            "location"
        ])
        .prop_map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap()),
        "[a-z-]{1,12}".prop_map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap()),
    ]
}

fn arb_cached() -> impl Strategy<Value = Option<Cached>> {
    prop_oneof![
        Just(None),
        Just(Some(Cached::Allow)),
        Just(Some(Cached::Forbidden))
    ]
}

proptest! {
    #[test]
    fn interpret_never_panics(
        status in prop::option::of(any::<u16>()),
        pairs in prop::collection::vec((arb_name(), prop::collection::vec(any::<u8>(), 0..40)), 0..8),
        cached in arb_cached(),
    ) {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            if let Ok(v) = HeaderValue::from_bytes(&v) {
                h.append(k, v);
            }
        }
        let a = interpret(status, &h, cached);
        let answered = status.is_some_and(|s| !(500..=599).contains(&s));
        prop_assert_eq!(a.source == AnswerSource::Backend, answered);
        prop_assert_eq!(
            a.params.is_some(),
            answered && !matches!(a.verdict, BackendVerdict::Redirect { .. })
        );
        if a.verdict == BackendVerdict::Allow {
            prop_assert!(status == Some(200) || a.source == AnswerSource::StaleCache);
        }
        let c = combine(&[a.clone(), a.clone()], true);
        prop_assert_eq!(c.verdict == BackendVerdict::Allow, a.verdict == BackendVerdict::Allow
            || a.source == AnswerSource::Unavailable);
    }
}
