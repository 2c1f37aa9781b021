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

/// True when the raw parameter name is one of the proxy's own.
pub fn is_credential(name: &str) -> bool {
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
        || PREFIXES.iter().any(|p| {
            name.len() >= p.len() && name.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
        })
}

/// The query with every credential parameter removed, other pairs kept byte
/// for byte and in order; `None` when nothing is left.
pub fn strip(query: &str) -> Option<String> {
    let mut out = String::with_capacity(query.len());
    for pair in query.split('&') {
        if pair.is_empty() {
            continue;
        }
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
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
