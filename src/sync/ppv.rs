//! Nimble Streamer pay-per-view (PPV) push API: the pure core of the
//! control-plane protocol (`shared/research/auth-schemes.md` section 7).
//!
//! Nimble periodically POSTs a sync body `{"ID", "Puzzle", "Signature",
//! "PayPerViewInfo"}` to the handler; the handler answers with the complete
//! current deny set and proves it knows the push-API token too (mutual
//! authorization):
//!
//! ```text
//! Signature (sent by Nimble)  = BASE64_STD( MD5_raw( ID + Puzzle + Token ) )
//! Solution  (handler returns) = BASE64_STD( MD5_raw( Puzzle + Token ) )
//! answer                      = {"DenyList": {"ID": [..]}, "Solution": ".."}
//! ```
//!
//! This module owns those formulas and both sides' checks: the handler's
//! ([`handle_sync`], used by test control planes) and the edge's
//! ([`sync_body`], [`pay_per_view_info`], [`verify_answer`]: tollgate with
//! `[control_plane] mode = "nimble_ppv"` reports like Nimble and refuses an
//! answer whose Solution is wrong). The sync loop ([`crate::sync`]) does the
//! HTTP and applies the deny set; this module must not do any of that.
//!
//! Pure core: no I/O, no clock reads, no logging. Invariants: the token never
//! reaches `Debug` or an error; signatures are compared in constant time as
//! exact text (standard base64 with padding, so a URL-safe spelling is
//! refused); nothing reachable from a request body panics.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest, Md5};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

/// Why a sync body was refused. Every variant means the same verdict,
/// *forbidden*: the shell must not answer with a `Solution`. Variants carry
/// no request data and never the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PpvError {
    /// The body is not JSON, or not a JSON object.
    #[error("sync body is not a JSON object")]
    Malformed,
    /// A required field (`ID`, `Puzzle` or `Signature`) is absent.
    #[error("sync body has no {0}")]
    Missing(&'static str),
    /// A required field is present but not a string.
    #[error("sync body field {0} is not a string")]
    NotText(&'static str),
    /// `Signature` does not match `ID`, `Puzzle` and the token.
    #[error("sync signature mismatch")]
    SignatureMismatch,
    /// An answer's `Solution` does not match the puzzle and the token: the
    /// handler does not know the token (or answers another request).
    #[error("answer solution mismatch")]
    SolutionMismatch,
}

/// The `Signature` Nimble sends: standard base64 (with padding) of the raw
/// MD5 of `id + puzzle + token`.
pub fn signature(id: &str, puzzle: &str, token: &str) -> String {
    let mut md5 = Md5::new();
    md5.update(id);
    md5.update(puzzle);
    md5.update(token);
    STANDARD.encode(md5.finalize())
}

/// The `Solution` the handler's answer must carry: standard base64 (with
/// padding) of the raw MD5 of `puzzle + token`.
pub fn solution(puzzle: &str, token: &str) -> String {
    let mut md5 = Md5::new();
    md5.update(puzzle);
    md5.update(token);
    STANDARD.encode(md5.finalize())
}

/// Whether `signature` is exactly [`signature`]`(id, puzzle, token)`.
///
/// The text is compared in constant time (only its length may leak, and the
/// length of a valid signature is public: 24). No decoding is done, so any
/// other spelling of the same digest (URL-safe alphabet, missing padding,
/// whitespace) is refused.
pub fn verify_signature(id: &str, puzzle: &str, signature: &str, token: &str) -> bool {
    let expected = self::signature(id, puzzle, token);
    expected.as_bytes().ct_eq(signature.as_bytes()).into()
}

/// Checks one sync body and builds the answer to send back.
///
/// `body_json` is the request body as received; `token` the push-API token;
/// `deny_ids` the complete current deny set (Nimble treats every answer as the
/// whole list). On success the answer is
/// `{"DenyList": {"ID": deny_ids}, "Solution": solution(Puzzle, token)}`.
/// Any error means *forbidden*: malformed JSON, a missing or non-string
/// `ID`/`Puzzle`/`Signature`, or a signature that does not match (tampered
/// `ID` or `Puzzle`, wrong token). `PayPerViewInfo` is not read here.
pub fn handle_sync(body_json: &str, token: &str, deny_ids: &[String]) -> Result<Value, PpvError> {
    let body: Value = serde_json::from_str(body_json).map_err(|_| PpvError::Malformed)?;
    let fields = body.as_object().ok_or(PpvError::Malformed)?;
    let id = text(fields, "ID")?;
    let puzzle = text(fields, "Puzzle")?;
    let sig = text(fields, "Signature")?;
    if !verify_signature(id, puzzle, sig, token) {
        return Err(PpvError::SignatureMismatch);
    }
    Ok(json!({
        "DenyList": { "ID": deny_ids },
        "Solution": solution(puzzle, token),
    }))
}

/// The sync body an edge in `nimble_ppv` mode sends: `ID` (the edge's
/// stable id), a fresh `Puzzle`, their `Signature` under `token`, and
/// `info` as `PayPerViewInfo` (see [`PlayerReport`] and [`pay_per_view_info`]).
pub fn sync_body(id: &str, puzzle: &str, token: &str, info: Value) -> Value {
    json!({
        "ID": id,
        "Puzzle": puzzle,
        "Signature": signature(id, puzzle, token),
        "PayPerViewInfo": info,
    })
}

/// Checks the handler's answer to a sync body that carried `puzzle`, and
/// returns its deny set (the complete current list; numbers are taken as
/// their decimal text, as PHP handlers often send them).
///
/// Refused, so nothing in it may be applied: not a JSON object; no
/// `Solution`, or one that is not exactly [`solution`]`(puzzle, token)`
/// (compared in constant time, so an impostor without the token, or a
/// replayed answer to another puzzle, is refused); a `DenyList` that is not
/// `{"ID": [string | integer, ...]}`. A missing `DenyList` means nobody is
/// denied.
pub fn verify_answer(body: &[u8], puzzle: &str, token: &str) -> Result<Vec<String>, PpvError> {
    let answer: Value = serde_json::from_slice(body).map_err(|_| PpvError::Malformed)?;
    let fields = answer.as_object().ok_or(PpvError::Malformed)?;
    let presented = text(fields, "Solution")?;
    let expected = solution(puzzle, token);
    if !bool::from(expected.as_bytes().ct_eq(presented.as_bytes())) {
        return Err(PpvError::SolutionMismatch);
    }
    let Some(deny) = fields.get("DenyList") else {
        return Ok(Vec::new());
    };
    let ids = match deny.get("ID") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(ids)) => ids,
        Some(_) => return Err(PpvError::NotText("DenyList.ID")),
    };
    ids.iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
            _ => Err(PpvError::NotText("DenyList.ID")),
        })
        .collect()
}

/// One viewer in a usage report (`PayPerViewInfo...Player`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayerReport<'a> {
    /// Application (tollgate: the route's name).
    pub application: &'a str,
    /// Stream (tollgate: the channel, else the route's name).
    pub stream: &'a str,
    /// The viewer's id (the `id` of its `wmsAuthSign`; tollgate: the user).
    pub id: &'a str,
    /// Client IP.
    pub ip: String,
    /// Session id.
    pub session_id: String,
    /// View time since the previous sync, in milliseconds.
    pub delta_ms: u64,
    /// Bytes sent to this viewer so far.
    pub bytes_sent: u64,
}

/// `PayPerViewInfo` for `players`: `{}` when nobody is watching, else one
/// `_defaultVHost_` with the players grouped by application, then stream
/// (instance `_definst_`), both in name order.
pub fn pay_per_view_info(players: &[PlayerReport<'_>]) -> Value {
    if players.is_empty() {
        return json!({});
    }
    let mut apps: BTreeMap<&str, BTreeMap<&str, Vec<Value>>> = BTreeMap::new();
    for p in players {
        apps.entry(p.application)
            .or_default()
            .entry(p.stream)
            .or_default()
            .push(json!({
                "id": p.id,
                "ip": p.ip,
                "sessionid": p.session_id,
                "delta": p.delta_ms,
                "bytes_sent": p.bytes_sent,
                "user_agents": [],
            }));
    }
    let apps: Vec<Value> = apps
        .into_iter()
        .map(|(app, streams)| {
            let streams: Vec<Value> = streams
                .into_iter()
                .map(|(name, players)| json!({"name": name, "Player": players}))
                .collect();
            json!({"name": app, "Instance": [{"name": "_definst_", "Stream": streams}]})
        })
        .collect();
    json!({"VHost": [{"name": "_defaultVHost_", "Application": apps}]})
}

/// The string field `key` of a sync body.
fn text<'a>(fields: &'a Map<String, Value>, key: &'static str) -> Result<&'a str, PpvError> {
    fields
        .get(key)
        .ok_or(PpvError::Missing(key))?
        .as_str()
        .ok_or(PpvError::NotText(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::vectors::{Case, cases};
    use proptest::prelude::*;

    /// `deny_ids` of a vector case as strings (`1` and `"1"` both give "1",
    /// as the reference's `str(i)` does).
    fn deny_ids(c: &Case) -> Vec<String> {
        c.inputs["deny_ids"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every case of `nimble_ppv_sync`, run the way `authref.run_case` runs it.
    #[test]
    fn vectors() {
        let all = cases("nimble_ppv_sync");
        assert_eq!(all.len(), 6);
        let (mut bodies, mut checked_solutions) = (0, 0);
        for c in &all {
            let want_allow = match c.verdict() {
                "allow" => true,
                "forbidden" => false,
                v => panic!("{}: unexpected verdict {v}", c.name),
            };
            let token = c.s("token");
            if c.inputs.get("sync_body").is_some() {
                bodies += 1;
                let got = handle_sync(c.s("sync_body"), token, &deny_ids(c));
                assert_eq!(got.is_ok(), want_allow, "{}: {got:?}", c.name);
                if let Ok(answer) = &got {
                    if let Some(s) = c.expected.get("solution") {
                        assert_eq!(&answer["Solution"], s, "{}", c.name);
                        checked_solutions += 1;
                    }
                    if let Some(r) = c.expected.get("response") {
                        assert_eq!(answer, r, "{}", c.name);
                    }
                }
            } else {
                let (id, puzzle, sig) = (c.s("ID"), c.s("Puzzle"), c.s("Signature"));
                let ok = verify_signature(id, puzzle, sig, token);
                assert_eq!(ok, want_allow, "{}", c.name);
                assert_eq!(ok, signature(id, puzzle, token) == sig, "{}", c.name);
                if let Some(s) = c.expected["solution"].as_str() {
                    assert_eq!(solution(puzzle, token), s, "{}", c.name);
                    checked_solutions += 1;
                }
            }
        }
        assert_eq!(bodies, 3);
        assert_eq!(checked_solutions, 4);
    }

    /// The independent kev-ac vector's ID, Puzzle and token, spelled out
    /// (auth-schemes.md section 7).
    const KEV_ID: &str = "5f0d5962-33b1-5137-ae6a-32776bcabc69";
    const KEV_PUZZLE: &str = "8c537e85-9684-a3b5-cbd9-bbebe952b103";
    const KEV_TOKEN: &str = "bc91b48588048871f4b898af9371ccc8";

    /// The independent kev-ac vector (auth-schemes.md section 7).
    #[test]
    fn known_answer() {
        let (id, puzzle, token) = (KEV_ID, KEV_PUZZLE, KEV_TOKEN);
        assert_eq!(signature(id, puzzle, token), "7r/RZeJ18rMuRYc8luBdFQ==");
        assert_eq!(solution(puzzle, token), "IDI5uYL0dPeoWVv5u2sN5Q==");
        assert!(!verify_signature(
            id,
            puzzle,
            "7r/RZeJ18rMuRYc8luBdFQ",
            token
        ));
        assert!(!verify_signature(
            id,
            puzzle,
            " 7r/RZeJ18rMuRYc8luBdFQ==",
            token
        ));
        assert!(!verify_signature(id, puzzle, "", token));
    }

    /// Each way a body can be refused gives its own error, none naming the token.
    #[test]
    fn refusals() {
        let token = "tok-SECRET";
        let sig = signature("a", "b", token);
        let ok = format!(r#"{{"ID":"a","Puzzle":"b","Signature":"{sig}"}}"#);
        assert!(handle_sync(&ok, token, &[]).is_ok());
        let table: [(&str, PpvError); 7] = [
            ("not json", PpvError::Malformed),
            ("[1,2]", PpvError::Malformed),
            ("\"ID\"", PpvError::Malformed),
            (r#"{"Puzzle":"b","Signature":"x"}"#, PpvError::Missing("ID")),
            (r#"{"ID":"a","Signature":"x"}"#, PpvError::Missing("Puzzle")),
            (r#"{"ID":"a","Puzzle":"b"}"#, PpvError::Missing("Signature")),
            (
                r#"{"ID":1,"Puzzle":"b","Signature":"x"}"#,
                PpvError::NotText("ID"),
            ),
        ];
        for (body, want) in table {
            assert_eq!(handle_sync(body, token, &[]), Err(want), "{body}");
        }
        let wrong = handle_sync(&ok, "other", &[]);
        assert_eq!(wrong, Err(PpvError::SignatureMismatch));
        for e in [PpvError::Malformed, PpvError::SignatureMismatch] {
            assert!(!format!("{e} {e:?}").contains("SECRET"));
        }
    }

    /// The edge side: a body from [`sync_body`] passes the handler's check
    /// (and carries the kev-ac Signature), and the handler's answer passes
    /// [`verify_answer`]; the vector's canned answer does too.
    #[test]
    fn edge_side_round_trip() {
        let (id, puzzle, token) = (KEV_ID, KEV_PUZZLE, KEV_TOKEN);
        let body = sync_body(id, puzzle, token, json!({}));
        assert_eq!(body["Signature"], "7r/RZeJ18rMuRYc8luBdFQ==");
        let deny = vec!["1".to_owned(), "2".to_owned()];
        let answer = handle_sync(&body.to_string(), token, &deny).expect("accepted");
        let bytes = answer.to_string();
        assert_eq!(verify_answer(bytes.as_bytes(), puzzle, token), Ok(deny));
        assert_eq!(
            verify_answer(bytes.as_bytes(), "another-puzzle", token),
            Err(PpvError::SolutionMismatch),
            "an answer to another request"
        );
        assert_eq!(
            verify_answer(bytes.as_bytes(), puzzle, "wrong"),
            Err(PpvError::SolutionMismatch)
        );
        let c = cases("nimble_ppv_sync")
            .into_iter()
            .find(|c| c.name == "full_sync_valid")
            .expect("vector");
        let sent: Value = serde_json::from_str(c.s("sync_body")).expect("json");
        let p = sent["Puzzle"].as_str().expect("puzzle");
        let canned = c.expected["response"].to_string();
        assert_eq!(
            verify_answer(canned.as_bytes(), p, c.s("token")),
            Ok(vec!["1".to_owned(), "2".to_owned()])
        );
    }

    #[test]
    fn answer_shapes() {
        let sol = solution("p", "t");
        let ok = |deny: &str| format!(r#"{{"DenyList":{deny},"Solution":"{sol}"}}"#);
        assert_eq!(
            verify_answer(ok(r#"{"ID":[1,"x"]}"#).as_bytes(), "p", "t"),
            Ok(vec!["1".into(), "x".into()])
        );
        assert_eq!(
            verify_answer(ok(r#"{"ID":[]}"#).as_bytes(), "p", "t"),
            Ok(vec![])
        );
        assert_eq!(verify_answer(ok("{}").as_bytes(), "p", "t"), Ok(vec![]));
        let missing = format!(r#"{{"Solution":"{sol}"}}"#);
        assert_eq!(verify_answer(missing.as_bytes(), "p", "t"), Ok(vec![]));
        for bad in [
            r#"{"ID":"1"}"#,
            r#"{"ID":[1.5]}"#,
            r#"{"ID":[null]}"#,
            r#"{"ID":[{}]}"#,
        ] {
            assert_eq!(
                verify_answer(ok(bad).as_bytes(), "p", "t"),
                Err(PpvError::NotText("DenyList.ID")),
                "{bad}"
            );
        }
        assert_eq!(verify_answer(b"nope", "p", "t"), Err(PpvError::Malformed));
        assert_eq!(
            verify_answer(br#"{"DenyList":{"ID":[]}}"#, "p", "t"),
            Err(PpvError::Missing("Solution"))
        );
        // The Solution is checked before anything else is believed.
        let forged = r#"{"DenyList":{"ID":["1"]},"Solution":"IDI5uYL0dPeoWVv5u2sN5Q=="}"#;
        assert_eq!(
            verify_answer(forged.as_bytes(), "p", "t"),
            Err(PpvError::SolutionMismatch)
        );
    }

    #[test]
    fn pay_per_view_info_groups_players() {
        assert_eq!(pay_per_view_info(&[]), json!({}));
        let p = |app, stream, id: &'static str| PlayerReport {
            application: app,
            stream,
            id,
            ip: "192.0.2.1".into(),
            session_id: format!("s-{id}"),
            delta_ms: 30_000,
            bytes_sent: 7,
        };
        let info = pay_per_view_info(&[
            p("live", "ch2", "1"),
            p("live", "ch1", "2"),
            p("live", "ch2", "3"),
            p("vod", "a.mp4", "4"),
        ]);
        let apps = &info["VHost"][0]["Application"];
        assert_eq!(info["VHost"][0]["name"], "_defaultVHost_");
        assert_eq!(apps[0]["name"], "live");
        let streams = &apps[0]["Instance"][0]["Stream"];
        assert_eq!(apps[0]["Instance"][0]["name"], "_definst_");
        assert_eq!(streams[0]["name"], "ch1");
        assert_eq!(streams[1]["Player"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            streams[1]["Player"][1],
            json!({"id":"3","ip":"192.0.2.1","sessionid":"s-3","delta":30000,"bytes_sent":7,"user_agents":[]})
        );
        assert_eq!(apps[1]["Instance"][0]["Stream"][0]["Player"][0]["id"], "4");
    }

    /// An empty deny set is still a complete answer: `{"ID": []}`.
    #[test]
    fn empty_deny_list() {
        let sig = signature("i", "p", "t");
        let body =
            format!(r#"{{"ID":"i","Puzzle":"p","Signature":"{sig}","PayPerViewInfo":{{}}}}"#);
        let answer = handle_sync(&body, "t", &[]).expect("valid body");
        assert_eq!(
            answer,
            json!({"DenyList": {"ID": []}, "Solution": solution("p", "t")})
        );
    }

    /// Arbitrary JSON values (nested a few levels), for the property below.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::vec(
                    (
                        prop_oneof![
                            Just("ID".to_owned()),
                            Just("Puzzle".to_owned()),
                            Just("Signature".to_owned()),
                            Just("PayPerViewInfo".to_owned()),
                            ".{0,8}",
                        ],
                        inner,
                    ),
                    0..6
                )
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// No JSON body, nor any string at all, panics `handle_sync`; an
        /// answer always carries the solution for the body's `Puzzle`.
        #[test]
        fn arbitrary_bodies_never_panic(
            value in any_json(),
            raw in ".{0,64}",
            deny in prop::collection::vec(".{0,6}", 0..4),
        ) {
            if let Ok(answer) = handle_sync(&value.to_string(), "t", &deny) {
                let puzzle = value["Puzzle"].as_str().unwrap_or_default();
                prop_assert_eq!(&answer["Solution"], &json!(solution(puzzle, "t")));
            }
            let _ = handle_sync(&raw, "t", &deny);
        }

        /// A validly signed body with arbitrary extra content is accepted and
        /// the answer echoes the deny set; any other token refuses it.
        #[test]
        fn signed_bodies_round_trip(
            id in ".{0,20}",
            puzzle in ".{0,20}",
            token in ".{1,20}",
            info in any_json(),
            deny in prop::collection::vec(".{0,6}", 0..4),
        ) {
            let body = json!({
                "ID": id,
                "Puzzle": puzzle,
                "Signature": signature(&id, &puzzle, &token),
                "PayPerViewInfo": info,
            })
            .to_string();
            let answer = handle_sync(&body, &token, &deny);
            prop_assert_eq!(
                answer,
                Ok(json!({"DenyList": {"ID": deny}, "Solution": solution(&puzzle, &token)}))
            );
            let other = format!("{token}x");
            prop_assert_eq!(handle_sync(&body, &other, &[]), Err(PpvError::SignatureMismatch));
        }
    }
}
