//! Viewer authentication: the route's `auth` list runs in order, each method
//! deciding allow / deny / pass; when every method passes the request is denied.
//!
//! Pure core: no I/O, no clock reads (time arrives in [`AuthRequest`] when a
//! method needs it), no logging. The deny list of `[ip]` is checked before any
//! method, on every route, whatever the request carries.
//!
//! Methods available: `ip`. The signature schemes of SPEC §3.1 plug in here as
//! further [`AuthMethod`] variants.

use std::net::IpAddr;
use std::str::FromStr;

use crate::config::IpConfig;
use crate::error::ProxyError;
use crate::ipnet_set::IpNetSet;

/// An authentication method a route may list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// `[ip] allow` networks pass without credentials.
    Ip,
}

/// Method names SPEC §3.1 defines that this build does not implement yet:
/// named so the config error tells the operator exactly that, not "unknown".
const PLANNED: [&str; 7] = [
    "secure_link",
    "wmsauth",
    "wowza",
    "akamai",
    "cesbo",
    "token",
    "backend",
];

impl AuthMethod {
    /// Name as written in the config and used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Ip => "ip",
        }
    }
}

impl FromStr for AuthMethod {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ip" => Ok(AuthMethod::Ip),
            other if PLANNED.contains(&other) => Err(format!(
                "auth method {other:?} is not supported by this version of tollgate (available: \"ip\")"
            )),
            other => Err(format!(
                "unknown auth method {other:?} (known: \"ip\", {})",
                PLANNED.map(|p| format!("{p:?}")).join(", ")
            )),
        }
    }
}

/// What a method says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let the request through; later methods are not consulted.
    Allow,
    /// Refuse with this error; later methods are not consulted.
    Deny(ProxyError),
    /// This method has nothing to say (no credentials of its kind).
    Pass,
}

/// The facts about a request that methods look at.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest {
    /// The client address after `trusted_proxies` handling.
    pub client_ip: IpAddr,
}

/// The outcome of running a route's methods, with which method decided
/// (`None` when the global deny list or the all-passed rule decided).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Allowed, or the error to answer with.
    pub result: Result<(), ProxyError>,
    /// The method that decided, for metrics.
    pub method: Option<AuthMethod>,
}

/// Compiled authentication tables for one config generation.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    allow: IpNetSet,
    deny: IpNetSet,
}

impl Authenticator {
    /// Compile the `[ip]` tables.
    pub fn new(ip: &IpConfig) -> Self {
        Self {
            allow: IpNetSet::new(&ip.allow),
            deny: IpNetSet::new(&ip.deny),
        }
    }

    /// Run `methods` in order for `req`.
    pub fn decide(&self, methods: &[AuthMethod], req: &AuthRequest) -> Decision {
        if self.deny.contains(req.client_ip) {
            return Decision {
                result: Err(ProxyError::IpDenied),
                method: None,
            };
        }
        for &method in methods {
            let verdict = match method {
                AuthMethod::Ip => self.ip(req),
            };
            match verdict {
                Verdict::Allow => {
                    return Decision {
                        result: Ok(()),
                        method: Some(method),
                    };
                }
                Verdict::Deny(e) => {
                    return Decision {
                        result: Err(e),
                        method: Some(method),
                    };
                }
                Verdict::Pass => {}
            }
        }
        Decision {
            result: Err(ProxyError::Forbidden),
            method: None,
        }
    }

    fn ip(&self, req: &AuthRequest) -> Verdict {
        if self.allow.contains(req.client_ip) {
            Verdict::Allow
        } else {
            Verdict::Pass
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(allow: &[&str], deny: &[&str]) -> Authenticator {
        Authenticator::new(&IpConfig {
            allow: allow.iter().map(|s| s.parse().unwrap()).collect(),
            deny: deny.iter().map(|s| s.parse().unwrap()).collect(),
        })
    }

    fn req(ip: &str) -> AuthRequest {
        AuthRequest {
            client_ip: ip.parse().unwrap(),
        }
    }

    #[test]
    fn ip_method_table() {
        let a = auth(
            &["10.0.0.0/8", "::1/128"],
            &["10.9.0.0/16", "203.0.113.0/24"],
        );
        let ip = [AuthMethod::Ip];
        let cases = [
            ("10.1.2.3", Ok(())),
            ("::1", Ok(())),
            // Deny beats allow even when the deny network is inside an allowed one.
            ("10.9.1.1", Err(ProxyError::IpDenied)),
            ("203.0.113.5", Err(ProxyError::IpDenied)),
            // Not allowed, not denied: every method passed → forbidden.
            ("192.0.2.1", Err(ProxyError::Forbidden)),
        ];
        for (ip_s, want) in cases {
            assert_eq!(a.decide(&ip, &req(ip_s)).result, want, "{ip_s}");
        }
        assert_eq!(a.decide(&ip, &req("10.1.2.3")).method, Some(AuthMethod::Ip));
    }

    #[test]
    fn deny_list_applies_with_no_methods_and_empty_list_denies() {
        let a = auth(&[], &["203.0.113.0/24"]);
        assert_eq!(
            a.decide(&[], &req("203.0.113.9")).result,
            Err(ProxyError::IpDenied)
        );
        assert_eq!(
            a.decide(&[], &req("192.0.2.1")).result,
            Err(ProxyError::Forbidden)
        );
    }

    #[test]
    fn names_parse() {
        assert_eq!("ip".parse::<AuthMethod>(), Ok(AuthMethod::Ip));
        let planned = "secure_link".parse::<AuthMethod>().unwrap_err();
        assert!(planned.contains("not supported"), "{planned}");
        let unknown = "magic".parse::<AuthMethod>().unwrap_err();
        assert!(unknown.contains("unknown auth method"), "{unknown}");
    }
}
