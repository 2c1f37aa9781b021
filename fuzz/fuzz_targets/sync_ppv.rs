//! The Nimble PPV control-plane protocol: the edge's check of a handler's
//! answer and the handler's check of a sync body (mutual authorization).
//!
//! Input: fields for an id, a puzzle and a deny list, then hostile text
//! tried as a sync body and as an answer.
//!
//! Asserted: never a panic; a hostile answer is accepted only with the
//! right `Solution`; `sync_body` → `handle_sync` → `verify_answer` gives
//! back exactly the deny list sent; a body whose `ID` or `Puzzle` changed
//! is refused; an answer to another puzzle is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tollgate::sync::ppv::{
    PpvError, handle_sync, signature, solution, sync_body, verify_answer, verify_signature,
};
use tollgate_fuzz::Reader;

const TOKEN: &str = "bc91b48588048871f4b898af9371ccc8";

fuzz_target!(|data: &[u8]| {
    let mut r = Reader(data);
    let id = r.string(48);
    let puzzle = r.string(48);
    let deny: Vec<String> = (0..r.u8() % 8).map(|_| r.string(24)).collect();
    let raw = r.rest();

    // Hostile bodies and answers.
    let _ = handle_sync(&raw, TOKEN, &deny);
    if verify_answer(raw.as_bytes(), &puzzle, TOKEN).is_ok() {
        assert!(
            raw.contains(&solution(&puzzle, TOKEN)),
            "answer accepted without the solution"
        );
    }

    // The honest exchange round-trips.
    let body = sync_body(&id, &puzzle, TOKEN, json!({}));
    let answer = match handle_sync(&body.to_string(), TOKEN, &deny) {
        Ok(a) => a,
        Err(e) => panic!("handler refused an honest body: {e:?}"),
    };
    assert_eq!(
        verify_answer(answer.to_string().as_bytes(), &puzzle, TOKEN),
        Ok(deny)
    );
    let other_puzzle = format!("{puzzle}x");
    assert_eq!(
        verify_answer(answer.to_string().as_bytes(), &other_puzzle, TOKEN),
        Err(PpvError::SolutionMismatch)
    );
    let sig = signature(&id, &puzzle, TOKEN);
    assert!(verify_signature(&id, &puzzle, &sig, TOKEN));
    let moved = format!("{id}x");
    assert!(!verify_signature(&moved, &puzzle, &sig, TOKEN));
    let tampered = json!({"ID": moved, "Puzzle": puzzle, "Signature": sig});
    assert_eq!(
        handle_sync(&tampered.to_string(), TOKEN, &[]),
        Err(PpvError::SignatureMismatch)
    );
});
