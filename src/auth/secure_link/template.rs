//! The nginx variable template engine behind `secure_link_md5`: parses an
//! expression such as `"$secure_link_expires$uri$remote_addr $secret"` once,
//! at config load, and streams its rendering into a hasher per request.
//!
//! Parsing follows `ngx_http_script_compile` exactly:
//!
//! - `$name` takes the longest run of `[A-Za-z0-9_]` (greedy: `$urisecret`
//!   is the variable `urisecret`, not `$uri` + `secret`);
//! - `${name}` delimits a name explicitly (`${uri}secret`); a `{` without its
//!   `}` is an error;
//! - a `$` followed by no name (`$$`, `$-`, `${}`, a trailing `$`) is an
//!   error: nginx has no escape for a literal `$`;
//! - `$1`…`$9` are regex captures, which tollgate has no regex for: an error;
//! - names are case-insensitive (nginx lowercases them);
//! - a variable nginx would not know fails at load time, like `nginx -t`.
//!
//! Pure core: no I/O, no clock, no logging. Rendering never allocates.

use std::fmt;

/// A variable a template may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `$uri` / `$document_uri`: the normalized, decoded path.
    Uri,
    /// `$remote_addr`: the client address in text form.
    RemoteAddr,
    /// `$args` / `$query_string`: the raw query string.
    Args,
    /// `$secure_link_expires`: the raw expiry text the link carried.
    SecureLinkExpires,
    /// `$secret`: the `secret` key of the section.
    Secret,
    /// `$arg_NAME`: first query argument `NAME` (lowercased here), raw.
    Arg(Box<str>),
    /// A `variables` entry, by index.
    Configured(usize),
}

/// One piece of a parsed template.
#[derive(Clone, PartialEq, Eq)]
pub enum Part {
    /// Bytes hashed as written (may hold a secret: never shown in `Debug`).
    Literal(Box<[u8]>),
    /// A variable's value.
    Var(Var),
}

impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Operators may write a secret inline, as in nginx's own example.
            Part::Literal(b) => write!(f, "<{} literal bytes>", b.len()),
            Part::Var(v) => write!(f, "{v:?}"),
        }
    }
}

/// A parsed `secure_link_md5` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// The values variables take for one rendering.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    /// `$uri`.
    pub uri: &'a str,
    /// `$remote_addr`.
    pub remote_addr: &'a str,
    /// The raw query string (`$args`, and where `$arg_*` are looked up).
    pub query: &'a str,
    /// `$secure_link_expires`.
    pub expires: &'a str,
    /// `$secret`.
    pub secret: &'a [u8],
    /// `variables`, in the order given to [`Template::parse`].
    pub configured: &'a [Box<[u8]>],
}

/// Names that are variables of their own, so a `variables` entry may not
/// take them.
pub const BUILTINS: [&str; 7] = [
    "uri",
    "document_uri",
    "remote_addr",
    "args",
    "query_string",
    "secure_link_expires",
    "secret",
];

impl Template {
    /// Parse `src`, resolving `$name` against the builtins and `configured`
    /// (lowercase names). The error says what is wrong, for the `template` key.
    pub fn parse(src: &str, configured: &[String]) -> Result<Self, String> {
        let bytes = src.as_bytes();
        let mut parts = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b'$' {
                let start = i;
                while i < bytes.len() && bytes[i] != b'$' {
                    i += 1;
                }
                parts.push(Part::Literal(bytes[start..i].into()));
                continue;
            }
            i += 1;
            let bracket = bytes.get(i) == Some(&b'{');
            if bracket {
                i += 1;
            }
            if let Some(d @ b'1'..=b'9') = bytes.get(i).copied().filter(|_| !bracket) {
                return Err(format!(
                    "${} is a regex capture; tollgate templates have no captures",
                    char::from(d)
                ));
            }
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let name = src.get(start..i).unwrap_or_default().to_ascii_lowercase();
            if bracket {
                if bytes.get(i) != Some(&b'}') {
                    return Err(format!(
                        "the closing bracket in \"{name}\" variable is missing"
                    ));
                }
                i += 1;
            }
            if name.is_empty() {
                return Err(format!(
                    "invalid variable name at byte {}: \"$\" must be followed by a name \
                     (nginx has no escape for a literal \"$\"; put it in `variables`)",
                    start.saturating_sub(1 + usize::from(bracket))
                ));
            }
            parts.push(Part::Var(resolve(&name, configured)?));
        }
        Ok(Self { parts })
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Whether the template names `var`.
    pub fn uses(&self, var: &Var) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(v) if v == var))
    }

    /// Feed the rendering of the template to `sink`, piece by piece.
    pub fn render(&self, v: &Values<'_>, sink: &mut impl FnMut(&[u8])) {
        for part in &self.parts {
            match part {
                Part::Literal(b) => sink(b),
                Part::Var(Var::Uri) => sink(v.uri.as_bytes()),
                Part::Var(Var::RemoteAddr) => sink(v.remote_addr.as_bytes()),
                Part::Var(Var::Args) => sink(v.query.as_bytes()),
                Part::Var(Var::SecureLinkExpires) => sink(v.expires.as_bytes()),
                Part::Var(Var::Secret) => sink(v.secret),
                Part::Var(Var::Arg(name)) => sink(
                    crate::auth::query::arg(v.query, name)
                        .unwrap_or_default()
                        .as_bytes(),
                ),
                Part::Var(Var::Configured(i)) => {
                    sink(v.configured.get(*i).map(|b| &b[..]).unwrap_or_default())
                }
            }
        }
    }
}

/// The variable `name` (lowercase) stands for.
fn resolve(name: &str, configured: &[String]) -> Result<Var, String> {
    if let Some(i) = configured.iter().position(|c| c == name) {
        return Ok(Var::Configured(i));
    }
    Ok(match name {
        "uri" | "document_uri" => Var::Uri,
        "remote_addr" => Var::RemoteAddr,
        "args" | "query_string" => Var::Args,
        "secure_link_expires" => Var::SecureLinkExpires,
        "secret" => Var::Secret,
        _ => match name.strip_prefix("arg_") {
            Some(arg) if !arg.is_empty() => Var::Arg(arg.into()),
            _ => {
                return Err(format!(
                    "unknown variable \"${name}\" (known: $uri, $document_uri, $remote_addr, \
                     $args, $query_string, $secure_link_expires, $secret, $arg_NAME and the \
                     names in `variables`)"
                ));
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Part {
        Part::Literal(s.as_bytes().into())
    }

    fn var(v: Var) -> Part {
        Part::Var(v)
    }

    #[test]
    fn parse_table() {
        let configured = ["urisecret".to_owned(), "salt".to_owned()];
        let cases: Vec<(&str, Vec<Part>)> = vec![
            ("", vec![]),
            ("plain text", vec![lit("plain text")]),
            (
                "$secure_link_expires$uri$remote_addr secret",
                vec![
                    var(Var::SecureLinkExpires),
                    var(Var::Uri),
                    var(Var::RemoteAddr),
                    lit(" secret"),
                ],
            ),
            // Greedy: `$urisecret` is one name.
            ("$urisecret", vec![var(Var::Configured(0))]),
            ("${uri}secret", vec![var(Var::Uri), lit("secret")]),
            ("${URI}", vec![var(Var::Uri)]),
            ("$Remote_Addr-x", vec![var(Var::RemoteAddr), lit("-x")]),
            (
                "$arg_expires${uri}s3cr3t$remote_addr",
                vec![
                    var(Var::Arg("expires".into())),
                    var(Var::Uri),
                    lit("s3cr3t"),
                    var(Var::RemoteAddr),
                ],
            ),
            ("$arg_MD5", vec![var(Var::Arg("md5".into()))]),
            (
                "${salt}$secret",
                vec![var(Var::Configured(1)), var(Var::Secret)],
            ),
            (
                "$args.$query_string",
                vec![var(Var::Args), lit("."), var(Var::Args)],
            ),
            ("a{b}c", vec![lit("a{b}c")]),
            ("$uri}", vec![var(Var::Uri), lit("}")]),
        ];
        for (src, want) in cases {
            let got = Template::parse(src, &configured).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_eq!(got.parts, want, "{src}");
        }
    }

    #[test]
    fn parse_errors() {
        let cases = [
            ("$", "invalid variable name"),
            ("abc$", "invalid variable name"),
            ("$$", "invalid variable name"),
            ("$$uri", "invalid variable name"),
            ("$-uri", "invalid variable name"),
            ("${}", "invalid variable name"),
            ("${", "closing bracket"),
            ("${uri", "closing bracket"),
            ("${ur-i}", "closing bracket"),
            ("$urisecret", "unknown variable \"$urisecret\""),
            ("$host", "unknown variable"),
            ("$arg_", "unknown variable"),
            ("$1", "regex capture"),
            ("$0", "unknown variable"),
        ];
        for (src, want) in cases {
            let err = Template::parse(src, &[]).expect_err(src);
            assert!(err.contains(want), "{src}: {err}");
        }
    }

    #[test]
    fn render_streams_every_part() {
        let configured = ["salt".to_owned()];
        let t = Template::parse(
            "$secure_link_expires|$uri|$remote_addr|$arg_e|$arg_x|$args|$secret|$salt",
            &configured,
        )
        .unwrap();
        let values: [Box<[u8]>; 1] = [b"pepper".as_slice().into()];
        let v = Values {
            uri: "/a b",
            remote_addr: "::1",
            query: "E=5&e=6",
            expires: "5",
            secret: b"k",
            configured: &values,
        };
        let mut out = Vec::new();
        t.render(&v, &mut |b| out.extend_from_slice(b));
        assert_eq!(out, b"5|/a b|::1|5||E=5&e=6|k|pepper");
    }

    #[test]
    fn debug_hides_literals() {
        let t = Template::parse("$uri hunter2", &[]).unwrap();
        let shown = format!("{t:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("Uri"), "{shown}");
    }
}
