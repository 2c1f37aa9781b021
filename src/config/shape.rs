//! The shape of a config file (which keys exist, what type each value has),
//! every error at once, each with its key path, like `nginx -t` prints them.
//!
//! serde stops at the first error. To report them all, the file is read as a
//! TOML value, deserialized into [`RawConfig`], and on each error the key at
//! fault is recorded and taken out of the value before the next attempt:
//! an unknown key (`server.listn`), a value of the wrong type
//! (`server.max_connections = "many"`). A missing required key cannot be
//! taken out, so it ends the walk. The structs themselves are the schema:
//! nothing here lists keys, so it cannot drift from [`RawConfig`].
//!
//! Pure: no I/O. Bounded: at most [`MAX_ERRORS`] attempts.

use serde_path_to_error::Segment;

use super::ConfigError;
use super::raw::RawConfig;

/// Most shape errors listed (and deserialization attempts made).
pub const MAX_ERRORS: usize = 100;

/// The raw config if it has no shape error (or only errors that could be
/// taken out: then also every error), or every error found.
pub fn read(text: &str) -> (Option<RawConfig>, Vec<ConfigError>) {
    // The first attempt reads the text itself, so a syntax error keeps its
    // line and column.
    let first = match serde_path_to_error::deserialize(toml::Deserializer::new(text)) {
        Ok(raw) => return (Some(raw), Vec::new()),
        Err(e) => e,
    };
    let mut errors: Vec<ConfigError> = Vec::new();
    let path = first.path().clone();
    let inner = first.into_inner();
    let mut message = inner.message().trim().to_owned();
    // Some syntax errors (a control character in a comment) carry no
    // message; name the place, never the text (it may be a secret).
    if message.is_empty() {
        let at = inner.span().map_or(0, |s| s.start);
        let before = text.get(..at).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        message = format!("invalid TOML at line {line}, column {column}");
    }
    let mut next = Some((path, message));
    let Ok(mut doc) = text.parse::<toml::Table>() else {
        if let Some((path, message)) = next {
            errors.push(describe(&path, &message).0);
        }
        return (None, errors);
    };
    while let Some((path, message)) = next.take() {
        let (error, fault) = describe(&path, &message);
        let repeated = errors.contains(&error);
        if !repeated {
            errors.push(error);
        }
        let removed = fault.is_some_and(|f| remove(&mut doc, &f));
        if repeated || errors.len() >= MAX_ERRORS || !removed {
            return (None, errors);
        }
        match serde_path_to_error::deserialize::<_, RawConfig>(toml::Value::Table(doc.clone())) {
            Ok(raw) => return (Some(raw), errors),
            Err(e) => {
                // Its `Display` adds "\nin `table`": the path says that.
                let text = e.inner().to_string();
                let message = text.lines().next().unwrap_or_default().to_owned();
                next = Some((e.path().clone(), message));
            }
        }
    }
    (None, errors)
}

/// One step of a key path into a TOML value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// The error as reported (`server.listn: unknown field ...`) and the path of
/// the value to take out, if one can be.
fn describe(path: &serde_path_to_error::Path, message: &str) -> (ConfigError, Option<Vec<Step>>) {
    let message = redact(message.trim());
    let mut steps: Vec<Step> = Vec::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => steps.push(Step::Index(*index)),
            Segment::Map { key } => steps.push(Step::Key(key.clone())),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    let fault = if let Some(key) = unknown_field(&message) {
        // Depending on the deserializer the path names the table or the
        // key itself; the key is in the message.
        if steps.last() != Some(&Step::Key(key.to_owned())) {
            steps.push(Step::Key(key.to_owned()));
        }
        Some(steps.clone())
    } else if message.starts_with("missing field") || steps.is_empty() {
        None
    } else {
        Some(steps.clone())
    };
    let shown = if steps.is_empty() {
        "(top level)".to_owned()
    } else {
        display(&steps)
    };
    (
        ConfigError {
            path: shown,
            message,
        },
        fault,
    )
}

/// serde's "invalid type: string \"…\", expected …" (and `invalid value`,
/// with integers, floats, booleans and characters between backticks) with
/// the value replaced by `(value not shown)`: the key path names the
/// place, and the value may be a secret (`tokens = "…"` instead of a list).
fn redact(message: &str) -> String {
    let Some((prefix, rest)) = ["invalid type: ", "invalid value: "]
        .iter()
        .find_map(|p| message.strip_prefix(p).map(|r| (*p, r)))
    else {
        return message.to_owned();
    };
    let tail = if let Some(s) = rest.strip_prefix("string \"") {
        // A Rust-Debug-quoted string: skip escapes up to the closing quote.
        let mut chars = s.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    end = Some(i + 1);
                    break;
                }
                _ => {}
            }
        }
        end.map(|e| ("string", &s[e..]))
    } else {
        ["integer `", "floating point `", "boolean `", "character `"]
            .iter()
            .find_map(|kind| {
                let v = rest.strip_prefix(kind)?;
                // The value's first char may itself be a backtick (a character).
                let first = v.chars().next()?.len_utf8();
                let close = v[first..].find('`')? + first;
                Some((kind.trim_end_matches(" `"), &v[close + 1..]))
            })
    };
    match tail {
        Some((kind, after)) => format!("{prefix}{kind} (value not shown){after}"),
        // No value in it (`sequence`, `map`, `unit value`, …).
        None if !rest.contains(['`', '"']) => message.to_owned(),
        // An unexpected shape: say what was wrong without any of the text.
        None if rest.contains(", expected ") => {
            let expected = rest.rsplit_once(", expected ").map_or("", |(_, e)| e);
            format!("{prefix}(value not shown), expected {expected}")
        }
        None => format!("{prefix}(value not shown)"),
    }
}

/// `server.tls[0].cert`.
fn display(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                // A key TOML would not write bare (empty, dotted, spaced,
                // control characters) is quoted, escapes and all, so the
                // path is never empty and never carries raw control bytes
                // to a terminal (found by fuzz/config_toml: `''=''`).
                let bare = !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if bare {
                    out.push_str(k);
                } else {
                    out.push_str(&format!("{k:?}"));
                }
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Take the value at `steps` out of `doc`; false when there is none.
fn remove(doc: &mut toml::Table, steps: &[Step]) -> bool {
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    let mut here: &mut toml::Value = match parents.first() {
        None => {
            return match last {
                Step::Key(k) => doc.remove(k).is_some(),
                Step::Index(_) => false,
            };
        }
        Some(Step::Key(k)) => match doc.get_mut(k) {
            Some(v) => v,
            None => return false,
        },
        Some(Step::Index(_)) => return false,
    };
    for step in parents.iter().skip(1) {
        let child = match (step, here) {
            (Step::Key(k), toml::Value::Table(t)) => t.get_mut(k),
            (Step::Index(i), toml::Value::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        match child {
            Some(c) => here = c,
            None => return false,
        }
    }
    match (last, here) {
        (Step::Key(k), toml::Value::Table(t)) => t.remove(k).is_some(),
        (Step::Index(i), toml::Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
    }
}

/// The key named in serde's "unknown field `x`, expected ..." message.
pub fn unknown_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(text: &str) -> Vec<String> {
        let (raw, errors) = read(text);
        assert!(raw.is_none() || !errors.is_empty() || errors.is_empty());
        errors.into_iter().map(|e| e.path).collect()
    }

    #[test]
    fn every_shape_error_with_its_path() {
        let text = r#"
bogus = 1
[server]
listn = ["127.0.0.1:1"]
max_connections = "many"
[[origin]]
name = "o"
url = "http://127.0.0.1:1"
colour = "red"
[[route]]
name = "r"
prefix = "/"
origin = "o"
auth = ["ip"]
encrypt = "yes"
[[user]]
id = "a"
tokens = ["t"]
packages = ["*"]
max_session = 1
"#;
        let (raw, errors) = read(text);
        let got: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            got,
            // The first as the file has it, then in key order.
            [
                "bogus",
                "origin[0].colour",
                "route[0].encrypt",
                "server.listn",
                "server.max_connections",
                "user[0].max_session",
            ],
            "{errors:?}"
        );
        assert!(errors[0].message.contains("unknown field `bogus`"));
        assert!(errors[2].message.contains("invalid type"), "{errors:?}");
        assert!(
            errors.iter().all(|e| !e.message.contains('\n')),
            "{errors:?}"
        );
        // With the faults taken out the rest reads: validation runs on it.
        assert!(raw.is_some());
    }

    #[test]
    fn type_errors_do_not_quote_values() {
        for (msg, want) in [
            (
                r#"invalid type: string "tok-\"secret, expected x", expected a sequence"#,
                "invalid type: string (value not shown), expected a sequence",
            ),
            (
                "invalid type: integer `123456`, expected a string",
                "invalid type: integer (value not shown), expected a string",
            ),
            (
                "invalid value: character ```, expected a digit",
                "invalid value: character (value not shown), expected a digit",
            ),
            (
                "invalid type: sequence, expected a string",
                "invalid type: sequence, expected a string",
            ),
            ("missing field `url`", "missing field `url`"),
        ] {
            assert_eq!(redact(msg), want, "{msg}");
        }
    }

    #[test]
    fn keys_that_are_not_bare_are_quoted_in_the_path() {
        let (_, errors) = read("''=''\n[server]\n\"a.b\" = 1\n");
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["\"\"", "server.\"a.b\""], "{errors:?}");
    }

    #[test]
    fn values_are_not_shown() {
        let (_, errors) = read("[[user]]\nid = \"a\"\ntokens = \"s3cret-token\"\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "user[0].tokens");
        assert_eq!(
            errors[0].message,
            "invalid type: string (value not shown), expected a sequence"
        );
    }

    #[test]
    fn a_missing_key_ends_the_walk_and_syntax_errors_stay_one() {
        assert_eq!(
            paths("typo = 1\n[[origin]]\nurl = \"http://x\"\n"),
            ["typo", "origin[0]"]
        );
        let (raw, errors) = read("[server\n");
        assert!(raw.is_none());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(paths("").is_empty());
    }
}
