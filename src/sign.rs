//! `tollgate sign`: a signed path+query for a route, from the same config the
//! proxy runs with, so an operator debugging a 403 (or a load test) gets a
//! link the running proxy accepts.
//!
//! Pure: `now` is an argument; the config is already loaded.

use std::net::IpAddr;
use std::time::Duration;

use crate::auth::{AuthMethod, SignRequest};
use crate::config::Config;
use crate::router::{RouteSpec, RouteTable};

/// What to sign.
#[derive(Debug, Clone)]
pub struct SignOptions<'a> {
    /// Route name.
    pub route: &'a str,
    /// Request path (`/live/ch1/index.m3u8`); normalized before signing.
    pub path: &'a str,
    /// Client IP to bind the link to.
    pub ip: Option<IpAddr>,
    /// Validity from `now`.
    pub ttl: Duration,
    /// User id, for schemes that carry one.
    pub user: Option<&'a str>,
    /// Scheme to use; default the route's first signing method.
    pub scheme: Option<&'a str>,
    /// Hardware id of the device, for the `device` scheme.
    pub hwid: Option<&'a str>,
}

/// A path+query that the proxy running `config` accepts at `now` (unix secs).
pub fn sign(config: &Config, opts: &SignOptions<'_>, now: u64) -> Result<String, String> {
    let route = config
        .routes
        .iter()
        .find(|r| r.name == opts.route)
        .ok_or_else(|| {
            let names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
            format!(
                "no route named {:?} (routes: {})",
                opts.route,
                names.join(", ")
            )
        })?;
    let path = crate::path::normalize(opts.path, usize::MAX)
        .map_err(|e| format!("path {:?}: {e}", opts.path))?;
    let table = RouteTable::new(&[RouteSpec {
        prefix: route.prefix.clone(),
        channel: route.channel,
    }]);
    if table.lookup(&path).is_none() {
        return Err(format!(
            "path {path:?} is not under route {:?}'s prefix {:?}",
            route.name, route.prefix
        ));
    }
    let method = match opts.scheme {
        Some(name) => {
            let m: AuthMethod = name.parse()?;
            if !route.auth.contains(&m) {
                return Err(format!("route {:?} does not use {name:?}", route.name));
            }
            m
        }
        None => *route
            .auth
            .iter()
            .find(|m| **m != AuthMethod::Ip)
            .ok_or_else(|| format!("route {:?} uses only \"ip\": nothing to sign", route.name))?,
    };
    if method == AuthMethod::Device {
        return sign_device(config, &path, opts, now);
    }
    let scheme = config
        .auth
        .get(method)
        .ok_or_else(|| format!("{:?} cannot sign links", method.as_str()))?;
    scheme.sign(&SignRequest {
        path: &path,
        client_ip: opts.ip,
        channel: table.channel(0, &path),
        start: now,
        expires: now.saturating_add(opts.ttl.as_secs()),
        user: opts.user,
    })
}

/// `tollgate sign --scheme device --user ID --hwid H` (SPEC §7.3):
/// `path?token=T&hwid=H&ts=now&sig=S` with the user's first token; valid
/// for `[auth.device] tolerance` around `now`.
fn sign_device(
    config: &Config,
    path: &str,
    opts: &SignOptions<'_>,
    now: u64,
) -> Result<String, String> {
    let id = opts
        .user
        .ok_or("the device method signs for a user: give --user")?;
    let hwid = opts
        .hwid
        .ok_or("the device method signs for a device: give --hwid")?;
    crate::entitlements::rules::check_hwid(hwid).map_err(|m| format!("--hwid {m}"))?;
    let tokens = config
        .auth
        .token
        .as_deref()
        .ok_or("the device method signs with a [[user]]'s token: the config has no [[user]]")?;
    let token = tokens.sign_token(id)?;
    let sig = crate::auth::device::signature(token, hwid, now)
        .ok_or("the device signature could not be computed")?;
    let q = crate::auth::query::percent_encode;
    Ok(format!(
        "{}?token={}&hwid={}&ts={now}&sig={sig}",
        crate::path::encode_canonical(path),
        q(token),
        q(hwid),
    ))
}

/// `tollgate sign --list --user ID`: the path+query of `id`'s channel list
/// (SPEC §7.5), `/playlist.m3u8?token=<the user's first token>`.
pub fn sign_list(config: &Config, id: &str, now: u64) -> Result<String, String> {
    if config.channel_list.is_none() {
        return Err("[channel_list] is disabled".to_owned());
    }
    let scheme = config
        .auth
        .get(AuthMethod::Token)
        .ok_or("channel lists sign with a [[user]]'s token: the config has no [[user]]")?;
    scheme.sign(&SignRequest {
        path: "/playlist.m3u8",
        client_ip: None,
        channel: None,
        start: now,
        expires: now,
        user: Some(id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let text = r#"
[[origin]]
name = "o"
url = "http://127.0.0.1:1"
[[route]]
name = "open"
prefix = "/open/"
origin = "o"
auth = ["ip"]
"#;
        Config::parse(text, std::path::Path::new(".")).unwrap()
    }

    fn opts<'a>(route: &'a str, path: &'a str) -> SignOptions<'a> {
        SignOptions {
            route,
            path,
            ip: None,
            ttl: Duration::from_secs(3600),
            user: None,
            scheme: None,
            hwid: None,
        }
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let c = config();
        let e = sign(&c, &opts("nope", "/open/x"), 0).unwrap_err();
        assert!(
            e.contains("no route named \"nope\"") && e.contains("open"),
            "{e}"
        );
        let e = sign(&c, &opts("open", "/elsewhere/x"), 0).unwrap_err();
        assert!(e.contains("not under route"), "{e}");
        let e = sign(&c, &opts("open", "/open/../../x"), 0).unwrap_err();
        assert!(e.contains("escapes the root"), "{e}");
        let e = sign(&c, &opts("open", "/open/x"), 0).unwrap_err();
        assert!(e.contains("nothing to sign"), "{e}");
        let mut o = opts("open", "/open/x");
        o.scheme = Some("wowza");
        let e = sign(&c, &o, 0).unwrap_err();
        assert!(e.contains("does not use"), "{e}");
    }

    #[test]
    fn channel_list_links_carry_the_users_token() {
        let text = r#"
[[origin]]
name = "o"
url = "http://127.0.0.1:1"
[[route]]
name = "live"
prefix = "/live/"
origin = "o"
channel = 1
auth = ["token"]
[[user]]
id = "ann"
tokens = ["ann t1", "ann-t2"]
packages = ["*"]
"#;
        let c = Config::parse(text, std::path::Path::new(".")).unwrap();
        assert_eq!(
            sign_list(&c, "ann", 0).unwrap(),
            "/playlist.m3u8?token=ann%20t1"
        );
        assert!(sign_list(&c, "bob", 0).is_err());
        let off = Config::parse(
            &format!("{text}[channel_list]\nenabled = false\n"),
            std::path::Path::new("."),
        )
        .unwrap();
        assert!(sign_list(&off, "ann", 0).unwrap_err().contains("disabled"));
    }
}
