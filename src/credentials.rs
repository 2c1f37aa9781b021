//! The proxy's own credentials: viewer credentials and capabilities, the one
//! place that knows where they ride and removes them.
//!
//! They are stripped from the query before a request goes to the origin (the
//! origin never sees a viewer's token) and before a path is written to the
//! access log (logs never hold a usable credential). Names are matched
//! ASCII-case-insensitively on the raw (not percent-decoded) name, the way the
//! auth schemes themselves read them (nginx `$arg_NAME`).
//!
//! The same names are credentials in a cookie (Akamai EdgeAuth's
//! `__token__` cookie) and as a request header (Akamai's header location),
//! and `Authorization` always is: [`CredentialParams::strip_headers`] removes
//! them from every request head forwarded to an origin.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

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

impl CredentialParams {
    /// Remove every credential from request headers bound for an origin:
    /// `Authorization` and `Proxy-Authorization`, any header named like a
    /// credential parameter (Akamai's `locations = ["header"]`), and every
    /// cookie so named (other cookies are kept, joined into one `Cookie`).
    pub fn strip_headers(&self, headers: &mut HeaderMap) {
        headers.remove(header::AUTHORIZATION);
        headers.remove(header::PROXY_AUTHORIZATION);
        let named: Vec<HeaderName> = headers
            .keys()
            .filter(|n| self.is_credential(n.as_str()))
            .cloned()
            .collect();
        for name in named {
            headers.remove(name);
        }
        if !headers.contains_key(header::COOKIE) {
            return;
        }
        let mut kept: Vec<u8> = Vec::new();
        for value in headers.get_all(header::COOKIE) {
            for pair in value.as_bytes().split(|&b| b == b';') {
                let pair = pair.trim_ascii();
                if pair.is_empty() {
                    continue;
                }
                let name = pair.split(|&b| b == b'=').next().unwrap_or_default();
                let name = std::str::from_utf8(name.trim_ascii()).unwrap_or_default();
                if name.is_empty() || self.is_credential(name) {
                    continue;
                }
                if !kept.is_empty() {
                    kept.extend_from_slice(b"; ");
                }
                kept.extend_from_slice(pair);
            }
        }
        headers.remove(header::COOKIE);
        if let Ok(v) = HeaderValue::from_bytes(&kept)
            && !kept.is_empty()
        {
            headers.insert(header::COOKIE, v);
        }
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
    fn headers_lose_every_credential() {
        let c = CredentialParams::new(["edge_tok".to_owned()]);
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YTpi"),
        );
        h.insert("__token__", HeaderValue::from_static("st=1~exp=2~hmac=ab"));
        h.insert("edge_tok", HeaderValue::from_static("x"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; __token__=st=1~exp=2~hmac=ab"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("EDGE_TOK=y;b=2;;"));
        c.strip_headers(&mut h);
        assert_eq!(h.get(header::COOKIE).unwrap(), "a=1; b=2");
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h.get("x-keep").unwrap(), "1");
        for gone in ["authorization", "__token__", "edge_tok"] {
            assert!(h.get(gone).is_none(), "{gone}");
        }
        let mut only = HeaderMap::new();
        only.insert(header::COOKIE, HeaderValue::from_static("__token__=z"));
        c.strip_headers(&mut only);
        assert!(only.is_empty(), "{only:?}");
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
