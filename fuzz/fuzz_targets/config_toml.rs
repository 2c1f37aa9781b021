//! Config loading: TOML parse, secret resolution and validation of any
//! text, the way `tollgate check` and every reload run it.
//!
//! Inputs naming `file:` secrets are skipped (the loader would read files
//! off this machine, which is the operator's intent, not an input's).
//!
//! Asserted: never a panic; the same text gives the same errors; every
//! error names a key path and a message; a loaded config's `Debug` shows
//! none of the secrets it was given (any string of 8 or more bytes under a
//! key named like a secret: `secret`, `key`, `keys`, `token`, `tokens`,
//! `password`, `salt`, `master`; TLS key paths aside).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tollgate::config::Config;

const SECRET_KEYS: [&str; 8] = [
    "secret", "key", "keys", "token", "tokens", "password", "salt", "master",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("file:") {
        return;
    }
    let first = Config::parse(text, Path::new("/nonexistent-fuzz-base"));
    let second = Config::parse(text, Path::new("/nonexistent-fuzz-base"));
    match (&first, &second) {
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "errors differ between two loads");
            assert!(!a.0.is_empty(), "an error without a problem");
            for e in &a.0 {
                assert!(!e.path.is_empty() && !e.message.is_empty(), "{e:?}");
            }
        }
        (Ok(_), Ok(_)) => {}
        _ => panic!("one load failed and the other did not"),
    }
    let Ok(config) = first else {
        return;
    };
    let shown = format!("{config:?}");
    let Ok(doc) = text.parse::<toml::Table>() else {
        return;
    };
    let mut secrets = Vec::new();
    collect(&toml::Value::Table(doc), false, &mut secrets);
    for s in secrets {
        if s.len() >= 8 && !s.starts_with("env:") {
            assert!(!shown.contains(&s), "secret {s:?} in Debug of the config");
        }
    }
});

/// Every string under a secret-named key (arrays included).
fn collect(v: &toml::Value, secret: bool, out: &mut Vec<String>) {
    match v {
        toml::Value::String(s) if secret => out.push(s.clone()),
        toml::Value::Array(a) => a.iter().for_each(|x| collect(x, secret, out)),
        toml::Value::Table(t) => {
            // `[[server.tls]] key` is a file path, not a secret.
            for (k, x) in t.iter().filter(|(k, _)| *k != "tls") {
                collect(
                    x,
                    SECRET_KEYS.contains(&k.to_ascii_lowercase().as_str()),
                    out,
                );
            }
        }
        _ => {}
    }
}
