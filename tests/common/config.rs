//! [`ConfigBuilder`]: the tollgate TOML the integration tests start proxies
//! with, built by chained calls instead of pasted text.
//!
//! It renders each part in a fixed order: `[server]`, `[admin]`, `[state]`,
//! `[ip]`, the [`ConfigBuilder::section`]s as added, `[[origin]]`s, `[[route]]`s,
//! `[auth.*]` and `[[auth.backend]]`, `[[package]]`s, `[[user]]`s, and last
//! the free-form [`ConfigBuilder::extra`] text. TOML does not care about the
//! order of tables, so a builder call may come in any order; text handed in
//! as "keys" (`server`, `admin_keys`, `Route::keys`, ...) lands right under
//! its table's header and may itself open further tables.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

/// A TOML string list: `["a", "b"]`.
fn list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// `text` as lines under a header: nothing if empty, else ending in `\n`.
fn lines(text: &str) -> String {
    let text = text.trim_matches('\n');
    if text.is_empty() {
        String::new()
    } else {
        format!("{text}\n")
    }
}

/// One `[[route]]`: origin `o`, no channel and no auth until set.
#[derive(Debug, Clone)]
pub struct Route {
    name: String,
    prefix: String,
    origin: String,
    channel: Option<u32>,
    auth: Vec<String>,
    keys: String,
}

impl Route {
    /// A route `name` on `prefix` (to origin `o`).
    pub fn new(name: &str, prefix: &str) -> Self {
        Self {
            name: name.to_owned(),
            prefix: prefix.to_owned(),
            origin: "o".to_owned(),
            channel: None,
            auth: Vec::new(),
            keys: String::new(),
        }
    }

    /// The usual route: `live` on `/live/`, channel segment 1, `auth`.
    pub fn live(auth: &[&str]) -> Self {
        Self::new("live", "/live/").channel(1).auth(auth)
    }

    /// The origin this route fetches from.
    pub fn origin(mut self, origin: &str) -> Self {
        origin.clone_into(&mut self.origin);
        self
    }

    /// Which path segment after the prefix names the channel.
    pub fn channel(mut self, channel: u32) -> Self {
        self.channel = Some(channel);
        self
    }

    /// The route's auth methods, in order.
    pub fn auth(mut self, auth: &[&str]) -> Self {
        self.auth = auth.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    /// More keys of this route (`encrypt = true`, ...).
    pub fn keys(mut self, keys: &str) -> Self {
        self.keys.push_str(&lines(keys));
        self
    }

    fn render(&self, out: &mut String) {
        let _ = write!(
            out,
            "[[route]]\nname = \"{}\"\nprefix = \"{}\"\norigin = \"{}\"\n",
            self.name, self.prefix, self.origin
        );
        if let Some(c) = self.channel {
            let _ = writeln!(out, "channel = {c}");
        }
        let auth: Vec<&str> = self.auth.iter().map(String::as_str).collect();
        let _ = writeln!(out, "auth = {}", list(&auth));
        out.push_str(&self.keys);
    }
}

/// One `[[user]]`.
#[derive(Debug, Clone)]
pub struct User {
    id: String,
    tokens: Vec<String>,
    packages: Vec<String>,
    max_sessions: Option<u32>,
    keys: String,
}

impl User {
    /// A user `id` with `tokens` and `packages` (`&[]` renders `packages = []`).
    pub fn new(id: &str, tokens: &[&str], packages: &[&str]) -> Self {
        Self {
            id: id.to_owned(),
            tokens: tokens.iter().map(|t| (*t).to_owned()).collect(),
            packages: packages.iter().map(|p| (*p).to_owned()).collect(),
            max_sessions: None,
            keys: String::new(),
        }
    }

    /// The user's `max_sessions`.
    pub fn max_sessions(mut self, n: u32) -> Self {
        self.max_sessions = Some(n);
        self
    }

    /// More keys of this user (`disabled = true`, `password = ...`, ...).
    pub fn keys(mut self, keys: &str) -> Self {
        self.keys.push_str(&lines(keys));
        self
    }

    fn render(&self, out: &mut String) {
        let tokens: Vec<&str> = self.tokens.iter().map(String::as_str).collect();
        let packages: Vec<&str> = self.packages.iter().map(String::as_str).collect();
        let _ = write!(
            out,
            "[[user]]\nid = \"{}\"\ntokens = {}\npackages = {}\n",
            self.id,
            list(&tokens),
            list(&packages)
        );
        if let Some(n) = self.max_sessions {
            let _ = writeln!(out, "max_sessions = {n}");
        }
        out.push_str(&self.keys);
    }
}

/// Tollgate TOML for a test: `[server]` on `127.0.0.1:0`, an `[admin]`
/// listener on `127.0.0.1:0` (no token until [`ConfigBuilder::admin`]), and
/// one origin `o` at the address given to [`ConfigBuilder::new`]; routes,
/// users and everything else as added.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    server: String,
    admin: Option<String>,
    state: Option<String>,
    ip: Option<String>,
    sections: String,
    origins: String,
    routes: Vec<Route>,
    auth: String,
    packages: String,
    users: Vec<User>,
    extra: String,
}

impl ConfigBuilder {
    /// The minimum: listeners and the origin `o` at `http://<origin>`.
    pub fn new(origin: SocketAddr) -> Self {
        Self::without_origin().origin("o", &format!("http://{origin}"), "")
    }

    /// The listeners, and no origin yet.
    pub fn without_origin() -> Self {
        Self {
            server: String::new(),
            admin: Some(String::new()),
            state: None,
            ip: None,
            sections: String::new(),
            origins: String::new(),
            routes: Vec::new(),
            auth: String::new(),
            packages: String::new(),
            users: Vec::new(),
            extra: String::new(),
        }
    }

    /// Keys added to `[server]` (they may open further tables).
    pub fn server(mut self, keys: &str) -> Self {
        self.server.push_str(&lines(keys));
        self
    }

    /// The admin bearer token.
    pub fn admin(self, token: &str) -> Self {
        self.admin_keys(&format!("token = \"{token}\""))
    }

    /// Keys added to `[admin]`.
    pub fn admin_keys(mut self, keys: &str) -> Self {
        self.admin
            .get_or_insert_with(String::new)
            .push_str(&lines(keys));
        self
    }

    /// No `[admin]` listener at all (for configs only parsed or checked).
    pub fn no_admin(mut self) -> Self {
        self.admin = None;
        self
    }

    /// `[state] dir`.
    pub fn state(mut self, dir: &Path) -> Self {
        self.state = Some(dir.display().to_string());
        self
    }

    /// A table `[header]` with `keys` (`section("keys", "master = ...")`).
    pub fn section(mut self, header: &str, keys: &str) -> Self {
        let _ = write!(self.sections, "[{header}]\n{}", lines(keys));
        self
    }

    /// `[sessions]` with `keys`.
    pub fn sessions(self, keys: &str) -> Self {
        self.section("sessions", keys)
    }

    /// `[ip]` with `keys`, replacing any `[ip]` set before.
    pub fn ip(mut self, keys: &str) -> Self {
        self.ip = Some(lines(keys));
        self
    }

    /// `[ip] allow = [allow]`, replacing any `[ip]` set before.
    pub fn ip_allow(self, allow: &[&str]) -> Self {
        self.ip(&format!("allow = {}", list(allow)))
    }

    /// One more `[[origin]]` `name` at `url`, with `keys`.
    pub fn origin(mut self, name: &str, url: &str, keys: &str) -> Self {
        let _ = write!(
            self.origins,
            "[[origin]]\nname = \"{name}\"\nurl = \"{url}\"\n{}",
            lines(keys)
        );
        self
    }

    /// Keys added to the last `[[origin]]` (timeouts, pool sizes, ...).
    pub fn origin_keys(mut self, keys: &str) -> Self {
        self.origins.push_str(&lines(keys));
        self
    }

    /// One more `[[route]]` (after those added before).
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// [`Route::live`] with `auth`.
    pub fn live(self, auth: &[&str]) -> Self {
        self.route(Route::live(auth))
    }

    /// `[auth.<scheme>]` with `keys`.
    pub fn auth(mut self, scheme: &str, keys: &str) -> Self {
        let _ = write!(self.auth, "[auth.{scheme}]\n{}", lines(keys));
        self
    }

    /// One more `[[auth.backend]]` at `url`, with `keys`.
    pub fn backend(mut self, url: &str, keys: &str) -> Self {
        let _ = write!(
            self.auth,
            "[[auth.backend]]\nurl = \"{url}\"\n{}",
            lines(keys)
        );
        self
    }

    /// `[[package]] name` with `channels`.
    pub fn package(mut self, name: &str, channels: &[&str]) -> Self {
        let _ = write!(
            self.packages,
            "[[package]]\nname = \"{name}\"\nchannels = {}\n",
            list(channels)
        );
        self
    }

    /// A user `id` with `tokens` and `packages` and nothing else.
    pub fn user(self, id: &str, tokens: &[&str], packages: &[&str]) -> Self {
        self.add_user(User::new(id, tokens, packages))
    }

    /// One more `[[user]]` (after those added before).
    pub fn add_user(mut self, user: User) -> Self {
        self.users.push(user);
        self
    }

    /// Free-form TOML appended last (it must open its own tables).
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra.push_str(&lines(toml));
        self
    }

    /// The TOML text.
    pub fn build(&self) -> String {
        let mut out = format!("[server]\nlisten = [\"127.0.0.1:0\"]\n{}", self.server);
        if let Some(admin) = &self.admin {
            let _ = write!(out, "[admin]\nlisten = \"127.0.0.1:0\"\n{admin}");
        }
        if let Some(dir) = &self.state {
            let _ = writeln!(out, "[state]\ndir = \"{dir}\"");
        }
        if let Some(ip) = &self.ip {
            let _ = write!(out, "[ip]\n{ip}");
        }
        out.push_str(&self.sections);
        out.push_str(&self.origins);
        for route in &self.routes {
            route.render(&mut out);
        }
        out.push_str(&self.auth);
        out.push_str(&self.packages);
        for user in &self.users {
            user.render(&mut out);
        }
        out.push_str(&self.extra);
        out
    }
}
