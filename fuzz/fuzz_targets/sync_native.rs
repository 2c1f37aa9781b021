//! Control-plane answers in `tollgate` mode: parse and validate the answer
//! body, compile a full snapshot with the streaming loader the sync loop
//! uses, plan it against the version held, and apply a delta.
//!
//! Input: one byte picks the version held (none, 0, 7, u64::MAX), the rest
//! is the answer body.
//!
//! Asserted: never a panic; a shape error carries none of the body's
//! string values that look like tokens (outside the field names it
//! quotes); a delta applied twice gives the
//! state it gives once; a compiled deny list only holds what the answer
//! listed.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use tollgate::entitlements::{Entitlements, Snapshot};
use tollgate::sync::protocol::{AnswerError, Change, parse_answer, plan};

const BASE: &str = r#"{
  "users": {"alice": {"tokens": ["alice-token-1"], "packages": ["basic"]},
            "bob": {"password": "pw", "packages": []}},
  "packages": {"basic": {"channels": ["ch1"]}}
}"#;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let held = [None, Some(0), Some(7), Some(u64::MAX)][usize::from(which % 4)];
    let external = HashSet::from(["cfg".to_owned()]);
    let answer = parse_answer(body, held, |b| {
        Entitlements::layer_from_json_reader(b, external.clone())
    });
    let answer = match answer {
        Ok(a) => a,
        Err(AnswerError::Shape(msg)) => {
            // Field names are quoted in backticks (`unknown field `x`,
            // expected one of `a`, ...`) on purpose; values must not appear.
            // An unknown field's name is echoed as is (backticks and all).
            let named = msg.contains("unknown field `");
            let plain: String = msg.split('`').step_by(2).collect();
            // Only values that look like secrets (no space, an upper-case
            // letter and a digit) are told apart from the message's words.
            let distinct = |v: &String| {
                !v.contains(' ')
                    && v.bytes().any(|b| b.is_ascii_uppercase())
                    && v.bytes().any(|b| b.is_ascii_digit())
            };
            for v in string_values(body)
                .into_iter()
                .filter(|v| !named && distinct(v))
            {
                assert!(!plain.contains(&v), "answer value {v:?} echoed in {msg:?}");
            }
            return;
        }
        Err(_) => return,
    };
    let _ = plan(held, answer.version, &answer.change);
    if let Change::Full(e) = &answer.change {
        let snap = e.to_snapshot();
        let again = Entitlements::build_layer(snap.clone(), external.clone());
        assert!(
            again.is_ok_and(|a| a.to_snapshot() == snap),
            "snapshot not a fixpoint"
        );
    }
    if let Change::Delta(d) = answer.change {
        let Ok(mut once) = serde_json::from_str::<Snapshot>(BASE) else {
            panic!("fuzz target base snapshot refused");
        };
        d.clone().apply(&mut once);
        let mut twice = once.clone();
        d.apply(&mut twice);
        assert_eq!(once, twice, "a delta applied twice differs from once");
        let _ = Entitlements::build_layer(once, external);
    }
    if let Some((list, layer)) = &answer.deny {
        for u in &layer.blocklist().users {
            assert!(list.users.contains(u), "deny list grew {u:?}");
        }
    }
});

/// Every string value (not key) of 8 bytes or more in a JSON body, when it
/// parses as JSON at all.
fn string_values(body: &[u8]) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) if s.len() >= 8 => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        walk(&v, &mut out);
    }
    out
}
