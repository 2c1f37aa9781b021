//! Entry URLs for virtual viewers, minted with tollgate's own signing code
//! ([`tollgate::sign::sign`]) from the proxy's config, one user id per
//! viewer, so each viewer is a session of its own.
//!
//! A route whose only method is `ip` (the demo's) needs no credentials: the
//! entry URL is the bare path, and viewers are told apart by their source
//! address (see `--same-source-ip`). Signing schemes that carry a user
//! (`wmsauth` with `id=`, `token` for config users…) put the viewer's id in
//! the link; note that a route listing `ip` first admits loopback viewers
//! anonymously before any signature is looked at.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tollgate::auth::AuthMethod;
use tollgate::config::Config;
use tollgate::sign::{SignOptions, sign};
use url::Url;

/// Mints entry URLs for one route of a proxy.
#[derive(Clone)]
pub struct EntryMinter {
    /// `http://127.0.0.1:PORT/`: the proxy's viewer listener.
    target: Url,
    config: Arc<Config>,
    route: String,
    prefix: String,
    scheme: Option<String>,
    anonymous: bool,
    ttl: Duration,
}

impl std::fmt::Debug for EntryMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryMinter")
            .field("target", &self.target.as_str())
            .field("route", &self.route)
            .field("anonymous", &self.anonymous)
            .finish_non_exhaustive()
    }
}

impl EntryMinter {
    /// For route `route` of `config`, signed with `scheme` (default: the
    /// route's first signing method; `"none"`: no credentials), links valid
    /// for `ttl`.
    pub fn new(
        target: Url,
        config: Arc<Config>,
        route: &str,
        scheme: Option<&str>,
        ttl: Duration,
    ) -> Result<Self, String> {
        let r = config
            .routes
            .iter()
            .find(|r| r.name == route)
            .ok_or_else(|| format!("the config has no route named {route:?}"))?;
        let anonymous = scheme == Some("none")
            || (scheme.is_none() && r.auth.iter().all(|m| *m == AuthMethod::Ip));
        let prefix = r.prefix.clone();
        Ok(Self {
            target,
            route: route.to_owned(),
            prefix,
            scheme: scheme.filter(|s| *s != "none").map(str::to_owned),
            anonymous,
            ttl,
            config,
        })
    }

    /// Whether links carry no credentials (viewers are anonymous).
    pub fn anonymous(&self) -> bool {
        self.anonymous
    }

    /// The proxy's address, when the target names an IP.
    pub fn target_ip(&self) -> Option<IpAddr> {
        match self.target.host()? {
            url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            url::Host::Domain(_) => None,
        }
    }

    /// The route's prefix (`/live/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The entry URL of `channel` for `user` connecting from `ip`, at unix
    /// time `now`: `<prefix><channel>/index.m3u8` plus the credentials.
    pub fn entry(&self, channel: &str, user: &str, ip: IpAddr, now: u64) -> Result<Url, String> {
        let path = format!("{}{channel}/index.m3u8", self.prefix);
        let signed = if self.anonymous {
            path
        } else {
            let opts = SignOptions {
                route: &self.route,
                path: &path,
                ip: Some(ip),
                ttl: self.ttl,
                user: Some(user),
                scheme: self.scheme.as_deref(),
                hwid: None,
            };
            sign(&self.config, &opts, now)?
        };
        self.target
            .join(&signed)
            .map_err(|e| format!("entry URL for {signed:?}: {e}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config() -> Arc<Config> {
        let text = r#"
[[origin]]
name = "o"
url = "http://127.0.0.1:1"
[auth.wmsauth]
key = "k"
[[route]]
name = "open"
prefix = "/live/"
origin = "o"
auth = ["ip"]
[[route]]
name = "paid"
prefix = "/paid/"
origin = "o"
auth = ["wmsauth"]
"#;
        Arc::new(Config::parse(text, std::path::Path::new(".")).unwrap())
    }

    #[test]
    fn ip_routes_are_bare_and_signed_routes_carry_the_user() {
        let target = Url::parse("http://127.0.0.1:8080/").unwrap();
        let ip = "127.0.0.1".parse().unwrap();
        let ttl = Duration::from_secs(3600);
        let open = EntryMinter::new(target.clone(), config(), "open", None, ttl).unwrap();
        assert!(open.anonymous());
        assert_eq!(
            open.entry("ch1", "viewer-1", ip, 1_700_000_000)
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/live/ch1/index.m3u8"
        );
        let paid = EntryMinter::new(target, config(), "paid", None, ttl).unwrap();
        assert!(!paid.anonymous());
        let url = paid.entry("ch2", "viewer-7", ip, 1_700_000_000).unwrap();
        assert_eq!(url.path(), "/paid/ch2/index.m3u8");
        assert!(url.query().unwrap().contains("wmsAuthSign="), "{url}");
        assert!(
            EntryMinter::new(
                Url::parse("http://127.0.0.1:1/").unwrap(),
                config(),
                "nope",
                None,
                ttl
            )
            .is_err()
        );
    }
}
