//! Cesbo Astra / Alta IP rules: `allow|deny|pass <ip|cidr|any>` lines,
//! evaluated top-down, first match wins, no match passes to the next method.
//!
//! Pure core, not wired into the proxy yet (tollgate's `[ip]` allow/deny
//! lists play this role); kept so Astra rule sets can be checked verbatim.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::auth::Check;

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Let the client in.
    Allow,
    /// Refuse the client.
    Deny,
    /// Skip to the next authorization method.
    Pass,
}

/// One parsed rule line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRule {
    /// What happens on a match.
    pub action: Action,
    /// The network matched; `None` is `any`.
    pub net: Option<IpNet>,
}

impl IpRule {
    /// Parse `allow 127.0.0.1`, `pass 192.168.0.0/24`, `deny any`. Host bits
    /// in a CIDR are ignored (`fd32::1/64` is `fd32::/64`), like Python's
    /// `ip_network(strict=False)`.
    pub fn parse(line: &str) -> Result<Self, String> {
        let mut words = line.split_whitespace();
        let (Some(action), Some(target), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!("{line:?} is not \"allow|deny|pass <ip|cidr|any>\""));
        };
        let action = match action {
            "allow" => Action::Allow,
            "deny" => Action::Deny,
            "pass" => Action::Pass,
            other => return Err(format!("{other:?} is not allow, deny or pass")),
        };
        let net = if target == "any" {
            None
        } else {
            let net = target
                .parse::<IpNet>()
                .or_else(|_| target.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{target:?} is not an address, a CIDR or any"))?;
            Some(net.trunc())
        };
        Ok(Self { action, net })
    }

    /// Whether this rule matches `ip` (families never match each other).
    pub fn matches(&self, ip: IpAddr) -> bool {
        self.net.is_none_or(|n| n.contains(&ip))
    }
}

/// The first rule matching `ip` decides: allow → `Allow` (anonymous),
/// deny → `Forbidden`, pass or no match → `Pass`.
pub fn ip_rules(rules: &[IpRule], ip: IpAddr) -> Check {
    match rules.iter().find(|r| r.matches(ip)).map(|r| r.action) {
        Some(Action::Allow) => Check::Allow(crate::auth::Identity::default()),
        Some(Action::Deny) => Check::Forbidden,
        Some(Action::Pass) | None => Check::Pass,
    }
}
