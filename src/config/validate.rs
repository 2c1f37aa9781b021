//! Turn a [`RawConfig`] into a [`Config`], collecting every error with its key
//! path instead of stopping at the first.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;

use super::raw::{RawConfig, RawOrigin, RawRoute, RawServer};
use super::{
    AdminConfig, BackendConfig, BackendEndpoint, BindIp, CacheConfig, Config, ConfigError,
    ConfigErrors, ControlPlaneConfig, FailMode, IpConfig, KeysConfig, LogConfig, OriginConfig,
    RouteConfig, Secret, ServerConfig, SessionStore, SessionsConfig, SyncMode, TlsListenerConfig,
};
use std::sync::Arc;

use crate::auth::{AuthMethod, Schemes};
use crate::session::Policy;
use crate::units::{parse_duration, parse_size};

/// hyper refuses a read buffer under 8 KiB (it asserts), so a smaller header
/// limit must be a config error, never a panic at startup.
const MIN_HEADER_BYTES: u64 = 8 * 1024;

/// Upper bounds that keep a typo from becoming a startup panic (tokio's
/// semaphore caps permits) or a per-request allocation of that many header
/// slots (hyper sizes its header buffer from `max_headers`).
const MAX_CONNECTIONS: usize = 10_000_000;
const MAX_HEADERS: usize = 10_000;
const MAX_HEADER_BYTES: u64 = 1 << 20;

/// Most `[keys] previous` masters: a capability or tag that fails under the
/// current one is tried under each.
const MAX_PREVIOUS_MASTERS: usize = 16;

/// Collects errors while values are converted.
struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Convert `value` with `f`, recording a failure under `path`.
    fn check<T, E: ToString>(&mut self, path: &str, r: Result<T, E>) -> Option<T> {
        r.map_err(|e| self.push(path, e.to_string())).ok()
    }

    /// A duration that may be zero (`shutdown_grace = "0s"`: exit at once).
    fn duration(&mut self, path: &str, v: Option<&str>, default: Duration) -> Duration {
        match v {
            None => default,
            Some(text) => self.check(path, parse_duration(text)).unwrap_or(default),
        }
    }

    /// A timeout: zero would fail every request, so it is refused.
    fn timeout(&mut self, path: &str, v: Option<&str>, default: Duration) -> Duration {
        let d = self.duration(path, v, default);
        if d.is_zero() {
            self.push(path, "must be longer than 0s");
        }
        d
    }

    fn addr(&mut self, path: &str, text: &str) -> Option<SocketAddr> {
        self.check(
            path,
            text.parse::<SocketAddr>()
                .map_err(|_| format!("invalid address {text:?}, expected IP:PORT")),
        )
    }

    fn nets(&mut self, path: &str, list: &[String]) -> Vec<IpNet> {
        list.iter()
            .enumerate()
            .filter_map(|(i, s)| self.check(&format!("{path}[{i}]"), parse_net(s)))
            .collect()
    }
}

/// A CIDR, or a bare address meaning a single host.
fn parse_net(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    t.parse::<IpNet>()
        .or_else(|_| t.parse::<std::net::IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| {
            format!("invalid network {text:?}, expected CIDR like 10.0.0.0/8 or an address")
        })
}

pub(super) fn validate(raw: RawConfig, base: &Path) -> Result<Config, ConfigErrors> {
    let mut errs = Errors(Vec::new());
    let server = server(&mut errs, &raw.server, base);
    let admin = AdminConfig {
        listen: raw
            .admin
            .listen
            .as_deref()
            .and_then(|a| errs.addr("admin.listen", a)),
        token: raw
            .admin
            .token
            .as_deref()
            .and_then(|t| errs.check("admin.token", Secret::resolve(t, base))),
        max_connections: connection_cap(
            &mut errs,
            "admin.max_connections",
            raw.admin.max_connections,
            256,
            1,
        ),
    };
    let ip = IpConfig {
        allow: errs.nets("ip.allow", &raw.ip.allow),
        deny: errs.nets("ip.deny", &raw.ip.deny),
    };
    let origins: Vec<OriginConfig> = raw
        .origin
        .iter()
        .enumerate()
        .filter_map(|(i, o)| origin(&mut errs, i, o))
        .collect();
    let mut names = HashSet::new();
    for (i, o) in raw.origin.iter().enumerate() {
        if !names.insert(o.name.as_str()) {
            errs.push(
                format!("origin[{i}].name"),
                format!("duplicate origin name {:?}", o.name),
            );
        }
    }
    let routes = routes(&mut errs, &raw.route, &raw.origin);
    let auth = schemes(&mut errs, &raw, base);
    let backend = backend(&mut errs, &raw.auth);
    for (i, route) in routes.iter().enumerate() {
        for (j, method) in route.auth.iter().enumerate() {
            // A section that is present but invalid already has its errors.
            let present = match method {
                AuthMethod::Ip => true,
                AuthMethod::SecureLink => raw.auth.secure_link.is_some(),
                AuthMethod::WmsAuth => raw.auth.wmsauth.is_some(),
                AuthMethod::Wowza => raw.auth.wowza.is_some(),
                AuthMethod::Akamai => raw.auth.akamai.is_some(),
                AuthMethod::Cesbo => raw.auth.cesbo.is_some(),
                // Users may come from the admin API or the control plane;
                // `[auth.device]` has defaults.
                AuthMethod::Token | AuthMethod::Device => true,
                AuthMethod::Backend => !raw.auth.backend.is_empty(),
            };
            if !present && auth.get(*method).is_none() {
                let needs = match method {
                    AuthMethod::Backend => "at least one [[auth.backend]]".to_owned(),
                    m => format!("an [auth.{}] section", m.as_str()),
                };
                errs.push(
                    format!("route[{i}].auth[{j}]"),
                    format!("method {:?} needs {needs}", method.as_str()),
                );
            }
        }
    }
    let entitlements = entitlements(&mut errs, &raw);
    let channel_list = channel_list(&mut errs, &raw.channel_list, &routes);
    let rate_limit = rate_limit(&mut errs, &raw.rate_limit);
    let keys = keys(&mut errs, &raw.keys, base);
    let sessions = sessions(&mut errs, &raw.sessions, base);
    let backend_server = backend_server(&mut errs, raw.backend_server.as_ref(), &sessions);
    let cache = cache(&mut errs, &raw.cache);
    let control_plane = raw
        .control_plane
        .as_ref()
        .and_then(|cp| control_plane(&mut errs, cp, base));
    if keys.master.is_none() {
        for (i, route) in routes.iter().enumerate() {
            if route.encrypt {
                errs.push(
                    format!("route[{i}].encrypt"),
                    "encryption needs [keys] master, so every edge and restart derives the same keys",
                );
            }
        }
    }
    if raw.route.is_empty() {
        errs.push(
            "route",
            "no [[route]] defined: the proxy would answer 404 to everything",
        );
    }
    if server.listen.is_empty() && server.tls.is_empty() {
        errs.push(
            "server.listen",
            "no listener: give server.listen or a [[server.tls]]",
        );
    }
    if errs.0.is_empty() {
        Ok(Config {
            source: None,
            server,
            admin,
            log: LogConfig {
                access: raw.log.access.unwrap_or(true),
            },
            ip,
            origins,
            routes,
            auth,
            backend,
            keys,
            sessions,
            cache,
            entitlements,
            channel_list,
            rate_limit,
            backend_server,
            control_plane,
            state_dir: base.join(raw.state.dir.as_deref().unwrap_or("state")),
        })
    } else {
        Err(ConfigErrors(errs.0))
    }
}

fn server(errs: &mut Errors, raw: &RawServer, base: &Path) -> ServerConfig {
    let default_listen = vec!["127.0.0.1:8080".to_owned()];
    let listen = raw
        .listen
        .as_ref()
        .unwrap_or(&default_listen)
        .iter()
        .enumerate()
        .filter_map(|(i, a)| errs.addr(&format!("server.listen[{i}]"), a))
        .collect();
    let tls = raw
        .tls
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let listen = errs.addr(&format!("server.tls[{i}].listen"), &t.listen);
            let cert = base.join(&t.cert);
            let key = base.join(&t.key);
            for (field, p) in [("cert", &cert), ("key", &key)] {
                if !p.is_file() {
                    errs.push(
                        format!("server.tls[{i}].{field}"),
                        format!("file {} does not exist", p.display()),
                    );
                }
            }
            Some(TlsListenerConfig {
                listen: listen?,
                cert,
                key,
            })
        })
        .collect();
    let size = |errs: &mut Errors, path: &str, v: &Option<String>, default: u64| -> usize {
        let n = match v {
            None => default,
            Some(t) => errs.check(path, parse_size(t)).unwrap_or(default),
        };
        usize::try_from(n).unwrap_or(usize::MAX)
    };
    let max_header_bytes = size(
        errs,
        "server.max_header_bytes",
        &raw.max_header_bytes,
        16 << 10,
    );
    if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&(max_header_bytes as u64)) {
        errs.push("server.max_header_bytes", "must be between 8KiB and 1MiB");
    }
    let max_connections = connection_cap(
        errs,
        "server.max_connections",
        raw.max_connections,
        10_000,
        1,
    );
    let max_connections_per_ip = connection_cap(
        errs,
        "server.max_connections_per_ip",
        raw.max_connections_per_ip,
        0,
        0,
    );
    let max_headers = raw.max_headers.unwrap_or(100);
    if !(1..=MAX_HEADERS).contains(&max_headers) {
        errs.push(
            "server.max_headers",
            format!("must be between 1 and {MAX_HEADERS}"),
        );
    }
    ServerConfig {
        listen,
        tls,
        trusted_proxies: errs.nets("server.trusted_proxies", &raw.trusted_proxies),
        header_read_timeout: errs.timeout(
            "server.header_read_timeout",
            raw.header_read_timeout.as_deref(),
            Duration::from_secs(10),
        ),
        idle_timeout: errs.timeout(
            "server.idle_timeout",
            raw.idle_timeout.as_deref(),
            Duration::from_secs(75),
        ),
        send_timeout: errs.timeout(
            "server.send_timeout",
            raw.send_timeout.as_deref(),
            Duration::from_secs(60),
        ),
        max_header_bytes,
        max_headers,
        max_uri_bytes: size(errs, "server.max_uri_bytes", &raw.max_uri_bytes, 4 << 10),
        max_connections,
        max_connections_per_ip,
        shutdown_grace: errs.duration(
            "server.shutdown_grace",
            raw.shutdown_grace.as_deref(),
            Duration::from_secs(30),
        ),
    }
}

/// A connection count at `path`: `default` when absent, else within
/// `min..=MAX_CONNECTIONS`.
fn connection_cap(
    errs: &mut Errors,
    path: &str,
    v: Option<usize>,
    default: usize,
    min: usize,
) -> usize {
    let n = v.unwrap_or(default);
    if !(min..=MAX_CONNECTIONS).contains(&n) {
        errs.push(path, format!("must be between {min} and {MAX_CONNECTIONS}"));
    }
    n
}

fn origin(errs: &mut Errors, i: usize, raw: &RawOrigin) -> Option<OriginConfig> {
    let p = |field: &str| format!("origin[{i}].{field}");
    let url = errs.check(&p("url"), parse_origin_url(&raw.url));
    if raw.name.is_empty() {
        errs.push(p("name"), "must not be empty");
    }
    Some(OriginConfig {
        name: raw.name.clone(),
        connect_timeout: errs.timeout(
            &p("connect_timeout"),
            raw.connect_timeout.as_deref(),
            Duration::from_secs(2),
        ),
        first_byte_timeout: errs.timeout(
            &p("first_byte_timeout"),
            raw.first_byte_timeout.as_deref(),
            Duration::from_secs(10),
        ),
        idle_timeout: errs.timeout(
            &p("idle_timeout"),
            raw.idle_timeout.as_deref(),
            Duration::from_secs(10),
        ),
        total_timeout: errs.timeout(
            &p("total_timeout"),
            raw.total_timeout.as_deref(),
            Duration::from_secs(30),
        ),
        pool_idle_timeout: errs.timeout(
            &p("pool_idle_timeout"),
            raw.pool_idle_timeout.as_deref(),
            Duration::from_secs(90),
        ),
        pool_max_idle: raw.pool_max_idle.unwrap_or(256),
        url: url?,
    })
}

/// `[[auth.backend]]` and `auth.backend_allow_default`.
fn backend(errs: &mut Errors, raw: &super::raw::RawAuth) -> BackendConfig {
    let backends = raw
        .backend
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            let p = |field: &str| format!("auth.backend[{i}].{field}");
            let url = errs.check(&p("url"), parse_backend_url(&b.url));
            let timeout = errs.timeout(&p("timeout"), b.timeout.as_deref(), Duration::from_secs(2));
            Some(BackendEndpoint { url: url?, timeout })
        })
        .collect();
    if raw.backend.is_empty() && raw.backend_allow_default.is_some() {
        errs.push(
            "auth.backend_allow_default",
            "set without any [[auth.backend]]",
        );
    }
    BackendConfig {
        backends,
        allow_default: raw.backend_allow_default.unwrap_or(false),
    }
}

/// A backend URL: `http://host:port/path`, optionally with a query of its
/// own (the look-up parameters are appended after it).
fn parse_backend_url(text: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = text
        .parse()
        .map_err(|e| format!("invalid URL {text:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err("https backends are not supported yet; use http://".into()),
        _ => {
            return Err(format!(
                "invalid URL {text:?}: expected http://host:port/path"
            ));
        }
    }
    if uri.authority().is_none() {
        return Err(format!("invalid URL {text:?}: no host"));
    }
    Ok(uri)
}

fn parse_origin_url(text: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = text
        .parse()
        .map_err(|e| format!("invalid URL {text:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err("https origins are not supported yet; use http://".into()),
        _ => return Err(format!("invalid URL {text:?}: expected http://host:port")),
    }
    if uri.authority().is_none() {
        return Err(format!("invalid URL {text:?}: no host"));
    }
    if uri.query().is_some() {
        return Err(format!(
            "invalid URL {text:?}: an origin URL cannot carry a query"
        ));
    }
    Ok(uri)
}

/// `[backend_server]`: off unless `enabled = true`; its path must not be
/// one a viewer URL could need, and its re-check interval must keep the
/// session alive.
fn backend_server(
    errs: &mut Errors,
    raw: Option<&super::raw::RawBackendServer>,
    sessions: &super::SessionsConfig,
) -> Option<super::BackendServerConfig> {
    let raw = raw?;
    if !raw.enabled.unwrap_or(false) {
        return None;
    }
    let path = raw.path.clone().unwrap_or_else(|| "/tv/auth".to_owned());
    if crate::path::normalize(&path, 4096).as_deref() != Ok(path.as_str()) || path == "/" {
        errs.push(
            "backend_server.path",
            format!("{path:?} is not a normalized absolute path like /tv/auth"),
        );
    }
    let allow = match &raw.allow {
        Some(list) => errs.nets("backend_server.allow", list),
        None => super::loopback(),
    };
    let auth_duration = errs.timeout(
        "backend_server.auth_duration",
        raw.auth_duration.as_deref(),
        (sessions.idle_timeout / 2).min(Duration::from_secs(30)),
    );
    if auth_duration >= sessions.idle_timeout {
        errs.push(
            "backend_server.auth_duration",
            "must be shorter than [sessions] idle_timeout (each re-check keeps the session alive)",
        );
    }
    Some(super::BackendServerConfig {
        path,
        allow,
        auth_duration,
    })
}

/// Most addresses `[rate_limit] max_addresses` may ask to track (about
/// 100 bytes each, per bucket kind).
const MAX_RATE_ADDRESSES: usize = 10_000_000;

/// `[rate_limit]`: the defaults of [`RateLimitConfig`] for what is absent;
/// a burst of 0 with a rate is refused (nothing could ever pass).
fn rate_limit(errs: &mut Errors, raw: &super::raw::RawRateLimit) -> super::RateLimitConfig {
    let d = super::RateLimitConfig::default();
    let out = super::RateLimitConfig {
        enabled: raw.enabled.unwrap_or(d.enabled),
        entry_per_second: raw.entry_per_second.unwrap_or(d.entry_per_second),
        entry_burst: raw.entry_burst.unwrap_or(d.entry_burst),
        failed_per_minute: raw.failed_per_minute.unwrap_or(d.failed_per_minute),
        failed_burst: raw.failed_burst.unwrap_or(d.failed_burst),
        exempt: match &raw.exempt {
            Some(list) => errs.nets("rate_limit.exempt", list),
            None => d.exempt,
        },
        max_addresses: raw.max_addresses.unwrap_or(d.max_addresses),
    };
    for (rate, burst, key) in [
        (
            out.entry_per_second,
            out.entry_burst,
            "rate_limit.entry_burst",
        ),
        (
            out.failed_per_minute,
            out.failed_burst,
            "rate_limit.failed_burst",
        ),
    ] {
        if rate > 0 && burst == 0 {
            errs.push(
                key,
                "must be at least 1 when its rate is set (0 would refuse everyone)",
            );
        }
    }
    if !(1..=MAX_RATE_ADDRESSES).contains(&out.max_addresses) {
        errs.push(
            "rate_limit.max_addresses",
            format!("must be 1 to {MAX_RATE_ADDRESSES}"),
        );
    }
    out
}

/// `[channel_list]`: on unless `enabled = false`; its route is the one
/// named, or the first whose channel is the first segment after its prefix.
fn channel_list(
    errs: &mut Errors,
    raw: &super::raw::RawChannelList,
    routes: &[RouteConfig],
) -> Option<super::ChannelListConfig> {
    if raw.enabled == Some(false) {
        return None;
    }
    let route = match &raw.route {
        Some(name) => {
            let Some(i) = routes.iter().position(|r| &r.name == name) else {
                errs.push("channel_list.route", format!("no route named {name:?}"));
                return None;
            };
            if routes.get(i).is_some_and(|r| r.channel != 1) {
                errs.push(
                    "channel_list.route",
                    format!(
                        "route {name:?} must name the channel right after its prefix (channel = 1)"
                    ),
                );
                return None;
            }
            i
        }
        None => routes.iter().position(|r| r.channel == 1)?,
    };
    let file = raw.file.clone().unwrap_or_else(|| "index.m3u8".to_owned());
    let file_ok = !file.is_empty()
        && file.len() <= 255
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        && !file.starts_with('/')
        && !file
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if !file_ok {
        errs.push(
            "channel_list.file",
            "a relative path of A-Z a-z 0-9 - _ . / segments, e.g. \"index.m3u8\"",
        );
    }
    let base_url = raw.base_url.as_ref().and_then(|b| {
        let trimmed = b.trim_end_matches('/');
        let ok = match trimmed.parse::<http::Uri>() {
            Ok(u) => {
                matches!(u.scheme_str(), Some("http" | "https"))
                    && u.authority().is_some()
                    && u.query().is_none()
                    && !trimmed.contains(['"', ' ', '#'])
            }
            Err(_) => false,
        };
        if !ok {
            errs.push(
                "channel_list.base_url",
                format!("{b:?} is not an absolute http(s) URL without query, e.g. \"https://edge.example\""),
            );
        }
        ok.then(|| trimmed.to_owned())
    });
    Some(super::ChannelListConfig {
        route,
        file,
        base_url,
    })
}

fn routes(errs: &mut Errors, raw: &[RawRoute], origins: &[RawOrigin]) -> Vec<RouteConfig> {
    let mut prefixes = HashSet::new();
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let p = |field: &str| format!("route[{i}].{field}");
        if !names.insert(r.name.as_str()) {
            errs.push(p("name"), format!("duplicate route name {:?}", r.name));
        }
        if !r.prefix.starts_with('/') {
            errs.push(
                p("prefix"),
                format!("prefix {:?} must start with '/'", r.prefix),
            );
        } else if crate::path::normalize(&r.prefix, usize::MAX).as_deref() != Ok(r.prefix.as_str())
        {
            errs.push(
                p("prefix"),
                format!(
                    "prefix {:?} is not a normalized path (no //, ., .., %)",
                    r.prefix
                ),
            );
        } else if !prefixes.insert(r.prefix.as_str()) {
            errs.push(p("prefix"), format!("duplicate prefix {:?}", r.prefix));
        }
        let origin = origins.iter().position(|o| o.name == r.origin);
        if origin.is_none() {
            errs.push(p("origin"), format!("no [[origin]] named {:?}", r.origin));
        }
        let channel = r.channel.unwrap_or(1);
        if channel == 0 {
            errs.push(
                p("channel"),
                "must be 1 or more (1 = first path segment after the prefix)",
            );
        }
        if r.auth.is_empty() {
            errs.push(p("auth"), "must list at least one method, e.g. [\"ip\"]");
        }
        let auth: Vec<AuthMethod> = r
            .auth
            .iter()
            .enumerate()
            .filter_map(|(j, name)| errs.check(&format!("route[{i}].auth[{j}]"), name.parse()))
            .collect();
        if r.name.is_empty()
            || !r
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            // The name appears in key URIs and metric labels.
            errs.push(
                p("name"),
                format!(
                    "route name {:?} may only hold letters, digits, '.', '_' and '-'",
                    r.name
                ),
            );
        }
        let mpegts = match r.kind.as_deref() {
            None | Some("hls") => false,
            Some("mpegts") => true,
            Some(other) => {
                errs.push(p("kind"), format!("{other:?} is not \"hls\" or \"mpegts\""));
                false
            }
        };
        let encrypt = r.encrypt.unwrap_or(false);
        if mpegts && encrypt {
            errs.push(
                p("encrypt"),
                "an mpegts route streams the origin's TS as is: HLS AES-128 needs kind = \"hls\"",
            );
        }
        if let Some(origin) = origin {
            out.push(RouteConfig {
                mpegts,
                name: r.name.clone(),
                prefix: r.prefix.clone(),
                origin,
                channel,
                auth,
                encrypt,
                catchup: r.catchup.unwrap_or(true) && !mpegts,
            });
        }
    }
    out
}

/// Compile every `[auth.*]` section present and the `[[user]]` list.
fn schemes(errs: &mut Errors, raw: &RawConfig, base: &Path) -> Schemes {
    use crate::auth::{akamai, cesbo, secure_link, token, wmsauth, wowza};
    /// Build one scheme, prefixing its errors with `section`.
    fn build<R, S>(
        errs: &mut Errors,
        section: &str,
        raw: Option<&R>,
        new: impl FnOnce(&R) -> Result<S, Vec<(String, String)>>,
    ) -> Option<Arc<S>> {
        match new(raw?) {
            Ok(s) => Some(Arc::new(s)),
            Err(list) => {
                for (key, message) in list {
                    let sep = if key.starts_with('[') || key.is_empty() {
                        ""
                    } else {
                        "."
                    };
                    errs.push(format!("{section}{sep}{key}"), message);
                }
                None
            }
        }
    }
    let a = &raw.auth;
    let users = (!raw.user.is_empty()).then_some(&raw.user);
    Schemes {
        secure_link: build(errs, "auth.secure_link", a.secure_link.as_ref(), |r| {
            secure_link::SecureLink::new(r, base)
        }),
        wmsauth: build(errs, "auth.wmsauth", a.wmsauth.as_ref(), |r| {
            wmsauth::WmsAuth::new(r, base)
        }),
        wowza: build(errs, "auth.wowza", a.wowza.as_ref(), |r| {
            wowza::Wowza::new(r, base)
        }),
        akamai: build(errs, "auth.akamai", a.akamai.as_ref(), |r| {
            akamai::Akamai::new(r, base)
        }),
        cesbo: build(errs, "auth.cesbo", a.cesbo.as_ref(), |r| {
            cesbo::Cesbo::new(r, base)
        }),
        token: build(errs, "user", users, |r| token::Tokens::new(r, base)),
        device: match crate::auth::device::DeviceAuth::new(a.device.as_ref()) {
            Ok(d) => d,
            Err(list) => {
                for (key, message) in list {
                    errs.push(format!("auth.device.{key}"), message);
                }
                crate::auth::device::DeviceAuth::default()
            }
        },
    }
}

/// Longest capability lifetime: the wire format holds expiry as u32 seconds.
const MAX_CAPABILITY_TTL: Duration = Duration::from_secs(366 * 24 * 3600);
/// The shortest `sessions.store_heartbeat` (each beat is one script call
/// per user with sessions on the edge).
const MIN_STORE_HEARTBEAT: Duration = Duration::from_millis(100);

fn keys(errs: &mut Errors, raw: &super::raw::RawKeys, base: &Path) -> KeysConfig {
    let master = raw.master.as_deref().and_then(|m| {
        let secret = errs.check("keys.master", Secret::resolve(m, base))?;
        // Checked here so `tollgate check` names a short or malformed key.
        errs.check(
            "keys.master",
            crate::capability::parse_master(secret.expose()).map(|_| ()),
        )?;
        Some(secret)
    });
    let rotate_every = errs.timeout(
        "keys.rotate_every",
        raw.rotate_every.as_deref(),
        Duration::from_secs(600),
    );
    let previous: Vec<Secret> = raw
        .previous
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let path = format!("keys.previous[{i}]");
            let secret = errs.check(&path, Secret::resolve(m, base))?;
            errs.check(
                &path,
                crate::capability::parse_master(secret.expose()).map(|_| ()),
            )?;
            Some(secret)
        })
        .collect();
    if raw.previous.len() > MAX_PREVIOUS_MASTERS {
        errs.push(
            "keys.previous",
            format!(
                "at most {MAX_PREVIOUS_MASTERS} earlier masters (each is tried on every bad capability)"
            ),
        );
    }
    if !raw.previous.is_empty() && raw.master.is_none() {
        errs.push(
            "keys.previous",
            "earlier masters need the current one: set [keys] master",
        );
    }
    KeysConfig {
        master,
        previous,
        rotate_every,
    }
}

fn sessions(errs: &mut Errors, raw: &super::raw::RawSessions, base: &Path) -> SessionsConfig {
    let idle_timeout = errs.timeout(
        "sessions.idle_timeout",
        raw.idle_timeout.as_deref(),
        Duration::from_secs(30),
    );
    let capability_ttl = errs.timeout(
        "sessions.capability_ttl",
        raw.capability_ttl.as_deref(),
        Duration::from_secs(12 * 3600),
    );
    if capability_ttl > MAX_CAPABILITY_TTL {
        errs.push("sessions.capability_ttl", "must be at most 366 days");
    }
    let capability_param = raw.capability_param.clone().unwrap_or_else(|| "tg".into());
    if !crate::auth::query::is_param_name(&capability_param)
        || capability_param.starts_with("_HLS_")
    {
        errs.push(
            "sessions.capability_param",
            format!(
                "{capability_param:?} is not a usable query parameter name \
                 (letters, digits, '_', '-', '.'; not _HLS_*)"
            ),
        );
    }
    let on_limit = match raw.on_limit.as_deref() {
        None | Some("reject") => Policy::Reject,
        Some("evict_oldest") => Policy::EvictOldest,
        Some(other) => {
            errs.push(
                "sessions.on_limit",
                format!("unknown policy {other:?}, expected \"reject\" or \"evict_oldest\""),
            );
            Policy::Reject
        }
    };
    let fail = match raw.store_fail.as_deref() {
        None | Some("open") => FailMode::Open,
        Some("closed") => FailMode::Closed,
        Some(other) => {
            errs.push(
                "sessions.store_fail",
                format!("unknown mode {other:?}, expected \"open\" or \"closed\""),
            );
            FailMode::Open
        }
    };
    let timeout = errs.timeout(
        "sessions.store_timeout",
        raw.store_timeout.as_deref(),
        Duration::from_millis(250),
    );
    // Shorter than idle_timeout, or Redis would expire playing sessions
    // between two beats; at most 5 s by default, so a Redis that restarted
    // empty holds exact limits again within 5 s.
    let heartbeat = match raw.store_heartbeat.as_deref() {
        None => (idle_timeout / 3).clamp(MIN_STORE_HEARTBEAT, Duration::from_secs(5)),
        Some(text) => {
            let d = errs.timeout("sessions.store_heartbeat", Some(text), idle_timeout / 3);
            if d < MIN_STORE_HEARTBEAT || d >= idle_timeout {
                errs.push(
                    "sessions.store_heartbeat",
                    "must be at least 100ms and shorter than sessions.idle_timeout",
                );
            }
            d
        }
    };
    let store = match raw.store.as_deref() {
        None | Some("local") => SessionStore::Local,
        Some(text) => match Secret::resolve(text, base) {
            Err(e) => {
                errs.push("sessions.store", e);
                SessionStore::Local
            }
            Ok(url) => {
                let u = url.expose();
                if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
                    errs.push(
                        "sessions.store",
                        "expected \"local\" or a \"redis://host:port\" (\"rediss://\" for TLS) URL",
                    );
                } else if let Err(e) = redis::IntoConnectionInfo::into_connection_info(u) {
                    // Syntax only (no client): what `FleetStore::new` would refuse.
                    errs.push(
                        "sessions.store",
                        format!("fleet store config: invalid store url: {:?}", e.kind()),
                    );
                }
                SessionStore::Redis {
                    url,
                    fail,
                    timeout,
                    heartbeat,
                }
            }
        },
    };
    SessionsConfig {
        idle_timeout,
        capability_ttl,
        tag_param: format!("{capability_param}s"),
        capability_param,
        bind_ip: raw.bind_ip.as_ref().map_or(BindIp::default(), |b| {
            errs.check("sessions.bind_ip", BindIp::from_raw(b))
                .unwrap_or_default()
        }),
        on_limit,
        store,
    }
}

fn cache(errs: &mut Errors, raw: &super::raw::RawCache) -> CacheConfig {
    let size = |errs: &mut Errors, path: &str, v: Option<&str>, default: u64| match v {
        None => default,
        Some(text) => errs.check(path, parse_size(text)).unwrap_or(default),
    };
    let segments = size(errs, "cache.segments", raw.segments.as_deref(), 256 << 20);
    let max_playlist = size(
        errs,
        "cache.max_playlist",
        raw.max_playlist.as_deref(),
        4 << 20,
    );
    if !(1024..=(256 << 20)).contains(&max_playlist) {
        errs.push("cache.max_playlist", "must be between 1KiB and 256MiB");
    }
    let max_segment = size(
        errs,
        "cache.max_segment",
        raw.max_segment.as_deref(),
        64 << 20,
    );
    if !((64 << 10)..=(1 << 30)).contains(&max_segment) {
        errs.push("cache.max_segment", "must be between 64KiB and 1GiB");
    }
    let max_fill_bytes = size(
        errs,
        "cache.max_fill_bytes",
        raw.max_fill_bytes.as_deref(),
        256 << 20,
    );
    if max_fill_bytes < (1 << 20) {
        errs.push("cache.max_fill_bytes", "must be at least 1MiB");
    }
    CacheConfig {
        segments,
        segment_ttl: errs.timeout(
            "cache.segment_ttl",
            raw.segment_ttl.as_deref(),
            Duration::from_secs(120),
        ),
        playlist_ttl: errs.duration(
            "cache.playlist_ttl",
            raw.playlist_ttl.as_deref(),
            Duration::from_millis(500),
        ),
        max_playlist: usize::try_from(max_playlist).unwrap_or(usize::MAX),
        max_segment,
        max_fill_bytes,
        zero_copy: raw.zero_copy.unwrap_or(true),
    }
}

fn control_plane(
    errs: &mut Errors,
    raw: &super::raw::RawControlPlane,
    base: &Path,
) -> Option<ControlPlaneConfig> {
    let url = errs.check(
        "control_plane.url",
        parse_control_plane_url(&raw.url, raw.allow_http.unwrap_or(false)),
    );
    let ca = raw.ca.as_deref().map(|p| base.join(p));
    if let Some(path) = &ca {
        errs.check("control_plane.ca", crate::sync::transport::load_ca(path));
    }
    let mode = match raw.mode.as_deref() {
        None | Some("tollgate") => SyncMode::Tollgate,
        Some("nimble_ppv") => SyncMode::NimblePpv,
        Some(other) => {
            errs.push(
                "control_plane.mode",
                format!("unknown mode {other:?}, expected \"tollgate\" or \"nimble_ppv\""),
            );
            SyncMode::Tollgate
        }
    };
    let token = match raw.token.as_deref() {
        Some(t) => errs.check("control_plane.token", Secret::resolve(t, base)),
        None => {
            errs.push(
                "control_plane.token",
                "required: the control plane's answers change who may watch, so both sides \
                 must prove they share it",
            );
            None
        }
    };
    let interval = errs.timeout(
        "control_plane.interval",
        raw.interval.as_deref(),
        Duration::from_secs(10),
    );
    let timeout = errs.timeout(
        "control_plane.timeout",
        raw.timeout.as_deref(),
        Duration::from_secs(10),
    );
    let max_backoff = errs.timeout(
        "control_plane.max_backoff",
        raw.max_backoff.as_deref(),
        Duration::from_secs(300),
    );
    let max_stale = raw
        .max_stale
        .as_deref()
        .map(|v| errs.timeout("control_plane.max_stale", Some(v), Duration::ZERO));
    let max_answer = match raw.max_answer.as_deref() {
        None => 1 << 30,
        Some(text) => errs
            .check("control_plane.max_answer", parse_size(text))
            .unwrap_or(1 << 30),
    };
    if max_answer < 1024 {
        errs.push("control_plane.max_answer", "must be at least 1KiB");
    }
    let edge_id = raw.edge_id.clone();
    if edge_id
        .as_deref()
        .is_some_and(|e| e.is_empty() || e.len() > 256 || e.chars().any(char::is_control))
    {
        errs.push(
            "control_plane.edge_id",
            "must be 1 to 256 characters, none of them control characters",
        );
    }
    Some(ControlPlaneConfig {
        url: url?,
        ca,
        token: token?,
        mode,
        interval,
        timeout,
        max_backoff: max_backoff.max(interval),
        max_answer: usize::try_from(max_answer).unwrap_or(usize::MAX),
        max_stale,
        edge_id,
    })
}

/// `[control_plane] url`: `https://`, or `http://` only to a loopback host
/// (`127.0.0.0/8`, `::1`, `localhost`) unless `allow_http`: the token, the
/// report and the entitlements would cross the network in clear.
fn parse_control_plane_url(text: &str, allow_http: bool) -> Result<http::Uri, String> {
    let shown = crate::secret::redact_url(text);
    let uri: http::Uri = text
        .parse()
        .map_err(|e| format!("invalid URL {shown:?}: {e}"))?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(format!(
            "invalid URL {shown:?}: user info in the URL is not sent; the control plane \
             authenticates the edge by control_plane.token"
        ));
    }
    let host = uri
        .host()
        .ok_or_else(|| format!("invalid URL {shown:?}: no host"))?;
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if allow_http || is_loopback_host(host) => Ok(uri),
        Some("http") => Err(format!(
            "http:// to {host}, which is not a loopback address, sends the token and the \
             entitlements in clear: use https://, or set control_plane.allow_http = true"
        )),
        _ => Err(format!(
            "invalid URL {shown:?}: expected https://host[:port]/path"
        )),
    }
}

/// `localhost`, or an IP literal of the loopback range.
fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A snapshot problem's path in config terms: `channels["ch1"].logo` is
/// `channel "ch1": logo`, users and packages alike.
fn config_path(path: &str) -> String {
    for (from, to) in [
        ("users[", "user "),
        ("packages[", "package "),
        ("channels[", "channel "),
        ("devices[", "device "),
    ] {
        if let Some(rest) = path.strip_prefix(from)
            && let Some((name, field)) = rest.split_once(']')
        {
            let field = field.trim_start_matches('.');
            return if field.is_empty() {
                format!("{to}{name}")
            } else {
                format!("{to}{name}: {field}")
            };
        }
    }
    path.to_owned()
}

/// The entitlement snapshot `[[user]]` and `[[package]]` describe, checked
/// by compiling it once (so `tollgate check` reports its problems).
fn entitlements(errs: &mut Errors, raw: &RawConfig) -> crate::entitlements::Snapshot {
    use crate::entitlements::{ALL_CHANNELS, Channel, Device, Package, Snapshot, User, rules};
    let mut snapshot = Snapshot::default();
    for (i, p) in raw.package.iter().enumerate() {
        let bad = if p.name == ALL_CHANNELS {
            Some("\"*\" is not a package name: in a user's packages it means every channel")
        } else {
            rules::check_id(&p.name).err()
        };
        if let Some(m) = bad {
            errs.push(format!("package[{i}].name"), m);
            continue;
        }
        let package = Package {
            channels: p.channels.clone(),
            tags: p.tags.clone(),
            dvr_depth: p.dvr_depth.clone(),
        };
        if snapshot.packages.insert(p.name.clone(), package).is_some() {
            errs.push(
                format!("package[{i}].name"),
                format!("duplicate package name {:?}", p.name),
            );
        }
    }
    let mut channel_names = HashSet::new();
    for (i, c) in raw.channel.iter().enumerate() {
        if !channel_names.insert(c.name.as_str()) {
            errs.push(
                format!("channel[{i}].name"),
                format!("duplicate channel name {:?}", c.name),
            );
            continue;
        }
        let channel = Channel {
            title: c.title.clone(),
            group: c.group.clone(),
            logo: c.logo.clone(),
            tags: c.tags.clone(),
            dvr_depth: c.dvr_depth.clone(),
            regions: c.regions.clone(),
        };
        snapshot.channels.0.push((c.name.clone(), channel));
    }
    for d in &raw.device {
        let device = Device {
            user: d.user.clone(),
            packages: d.packages.clone(),
            disabled: d.disabled,
        };
        // A duplicate hardware id is the compile's problem to report.
        snapshot.devices.0.push((d.hwid.clone(), device));
    }
    for (i, u) in raw.user.iter().enumerate() {
        if rules::check_id(&u.id).is_err() {
            continue; // reported as user[i].id by the token method
        }
        // One rule for config and API users: a user's channels are what its
        // packages say, and `["*"]` (never an absent key) means all of them.
        let Some(packages) = u.packages.clone() else {
            errs.push(
                format!("user[{i}].packages"),
                "missing: list the user's packages, or packages = [\"*\"] for every channel",
            );
            continue;
        };
        let user = User {
            max_sessions: u.max_sessions.unwrap_or(0),
            packages,
            ips: u.ips.clone(),
            expires_at: u.expires_at.clone(),
            disabled: u.disabled.unwrap_or(false),
            region: u.region.clone(),
            name: u.name.clone().unwrap_or_default(),
            email: u.email.clone().unwrap_or_default(),
            comment: u.comment.clone().unwrap_or_default(),
            ..User::default()
        };
        // Duplicate ids are the token method's error to report.
        snapshot.users.insert(u.id.clone(), user);
    }
    if let Err(e) = crate::entitlements::Entitlements::build(snapshot.clone()) {
        for p in e.problems() {
            errs.push(config_path(&p.path), p.message.clone());
        }
    }
    snapshot
}
