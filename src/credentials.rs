//! The proxy's own query parameters: viewer credentials and capabilities.
//!
//! They are stripped from the query before a request goes to the origin (the
//! origin never sees a viewer's token) and before a path is written to the
//! access log (logs never hold a usable credential). Names are matched
//! ASCII-case-insensitively on the raw (not percent-decoded) name, the way the
//! auth schemes themselves read them (nginx `$arg_NAME`).

/// Parameter names every supported scheme uses to carry credentials.
const NAMES: [&str; 14] = [
    "tg",    // tollgate session capability
    "token", // ?token=T, Cesbo securetoken, Flussonic token
    "auth",  // ?auth=user:password
    "password",
    "md5",         // nginx secure_link documented form
    "secure",      // nginx secure_link common form
    "expires",     // nginx secure_link expiry
    "st",          // nginx secure_link / Akamai start time
    "wmsauthsign", // Nimble WMSAuth
    "hdnts",       // Akamai EdgeAuth
    "__hdnea__",
    "__token__",
    "signature",
    "sig",
];

/// Name prefixes of credential parameters (Wowza SecureToken's default prefix).
const PREFIXES: [&str; 1] = ["wowzatoken"];

/// The credential parameter names of one config generation: the built-in
/// list plus the names the configured schemes read (nginx `secure_link`'s
/// `hash_arg`, Wowza's prefix, Akamai's token name, …).
#[derive(Debug, Clone, Default)]
pub struct CredentialParams {
    /// Extra names, compared ASCII-case-insensitively.
    names: Vec<String>,
    /// Extra name prefixes.
    prefixes: Vec<String>,
}

impl CredentialParams {
    /// The built-in list plus `names`; a name ending in `*` is a prefix.
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        let mut out = Self::default();
        for n in names {
            match n.strip_suffix('*') {
                Some(prefix) => out.prefixes.push(prefix.to_owned()),
                None => out.names.push(n),
            }
        }
        out
    }

    /// True when the raw parameter name is one of the proxy's own.
    pub fn is_credential(&self, name: &str) -> bool {
        let has_prefix = |p: &str| {
            name.len() >= p.len() && name.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
        };
        NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
            || self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
            || PREFIXES.iter().any(|p| has_prefix(p))
            || self.prefixes.iter().any(|p| has_prefix(p))
    }

    /// The query with every credential parameter removed, other pairs kept
    /// byte for byte and in order; `None` when nothing is left.
    pub fn strip(&self, query: &str) -> Option<String> {
        strip_with(query, |name| self.is_credential(name))
    }
}

fn strip_with(query: &str, is_credential: impl Fn(&str) -> bool) -> Option<String> {
    let mut out = String::with_capacity(query.len());
    for pair in crate::auth::query::split_pairs(query) {
        if pair.is_empty() {
            continue;
        }
        let name = crate::auth::query::split_name(pair).map_or(pair, |(n, _)| n);
        if is_credential(name) {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(pair);
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(q: &str) -> Option<String> {
        CredentialParams::default().strip(q)
    }

    #[test]
    fn configured_names_and_prefixes() {
        let c = CredentialParams::new(["HashArg".to_owned(), "mytok*".to_owned()]);
        assert_eq!(
            c.strip("hasharg=1&mytoken=2&mytok=3&keep=4").as_deref(),
            Some("keep=4")
        );
        assert_eq!(strip("hasharg=1").as_deref(), Some("hasharg=1"));
    }

    #[test]
    fn strips_credentials_keeps_rest() {
        let cases = [
            ("token=abc", None),
            ("a=1&token=abc&b=2", Some("a=1&b=2")),
            (
                "TOKEN=x&Tg=y&_HLS_msn=5&_HLS_part=1",
                Some("_HLS_msn=5&_HLS_part=1"),
            ),
            ("secure=h&expires=1&x=%20y", Some("x=%20y")),
            ("wowzatokenhash=h&wowzatokenendtime=9&v=1", Some("v=1")),
            ("wmsAuthSign=zzz", None),
            ("&&a=1&&", Some("a=1")),
            ("tokenized=1", Some("tokenized=1")),
            ("auth", None),
            ("", None),
        ];
        for (q, want) in cases {
            assert_eq!(strip(q).as_deref(), want, "{q}");
        }
    }
}
