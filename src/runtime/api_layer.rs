//! The admin API's (and the control plane's) part of the entitlements: a
//! compiled layer overlaid on the config's `[[user]]`/`[[package]]`, how it
//! changes, and how it is persisted (SPEC §4).
//!
//! Invariants:
//! - The layer is held compiled ([`Entitlements`]), never as a [`Snapshot`]:
//!   a million-user bulk load ([`Shared::replace_all`]) compiles once and,
//!   when the config has no entitlements of its own, the effective
//!   entitlements are that very `Arc`.
//! - A change is validated with the config's entitlements, written to the
//!   state dir, and only then published (effective entitlements first
//!   computed, then both swapped); on any error nothing changes. Writers
//!   take `api_writer` for the whole change, and so does a config reload.
//! - Readers ([`Shared::api_state`]) never wait for a writer.

use std::collections::HashSet;
use std::sync::Arc;

use super::Shared;
use crate::config::Config;
use crate::entitlements::{Entitlements, LoadError, Snapshot, ValidationError};

/// Why an admin change was not applied (nothing changed).
#[derive(Debug)]
pub enum ChangeError {
    /// The result would not validate: every problem, with its path.
    Invalid(Vec<String>),
    /// Not found (a GET or DELETE of something absent).
    NotFound,
    /// The state dir could not be written; the old state stays.
    Storage(String),
}

impl From<ValidationError> for ChangeError {
    /// Every listed problem, as `path: message`.
    fn from(e: ValidationError) -> Self {
        Self::Invalid(
            e.problems()
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect(),
        )
    }
}

/// The config's entitlements overlaid by the API's: users and packages by
/// name (the API wins), blocklists joined. Consumes `api` (its users move,
/// not copied).
pub fn merged(config: &Snapshot, api: Snapshot) -> Snapshot {
    let Snapshot {
        users,
        packages,
        blocklist,
    } = api;
    let mut out = config.clone();
    {
        // Linear, not one `insert` per user: a bulk load has a million.
        let overridden: HashSet<&str> = users.iter().map(|(id, _)| id).collect();
        out.users
            .0
            .retain(|(id, _)| !overridden.contains(id.as_str()));
    }
    out.users.0.extend(users.0);
    out.packages.extend(packages);
    out.blocklist.users.extend(blocklist.users);
    out.blocklist.tokens.extend(blocklist.tokens);
    out.blocklist.ips.extend(blocklist.ips);
    out
}

/// The packages the config defines: the API layer's users may name them.
fn config_packages(config: &Config) -> HashSet<String> {
    package_names(&config.entitlements)
}

fn package_names(s: &Snapshot) -> HashSet<String> {
    s.packages.keys().cloned().collect()
}

/// The effective entitlements: `api` over the config's.
///
/// Without `[[user]]`/`[[package]]` in the config (the usual case at scale)
/// they are the API layer itself, shared, at no cost. Otherwise the layer
/// is read back as a [`Snapshot`], merged and compiled again: a second
/// full compile (about 2 s and twice the memory for a million API users).
pub(super) fn build_effective(
    config: &Config,
    api: &Arc<Entitlements>,
) -> Result<Arc<Entitlements>, ChangeError> {
    if config.entitlements == Snapshot::default() && !api.has_external_packages() {
        return Ok(Arc::clone(api));
    }
    Entitlements::build(merged(&config.entitlements, api.to_snapshot()))
        .map(Arc::new)
        .map_err(ChangeError::from)
}

impl Shared {
    /// Load what the state dir holds (at start, before serving), compiled
    /// while it is read. A corrupt state is an error: serving without the
    /// operator's blocklist would be worse than not starting.
    pub fn load_state(&self) -> Result<(), String> {
        let live = self.live();
        let dir = &live.config.state_dir;
        let loaded = crate::state::load_layer(dir, config_packages(&live.config))
            .map_err(|e| e.to_string())?;
        let Some(api) = loaded else {
            return crate::sync::load(self, dir);
        };
        let _writer = self
            .api_writer
            .lock()
            .map_err(|_| "state lock poisoned".to_owned())?;
        let api = Arc::new(api);
        let effective = build_effective(&live.config, &api).map_err(|e| match e {
            ChangeError::Invalid(p) => format!("state in {}: {}", dir.display(), p.join("; ")),
            other => format!("{other:?}"),
        })?;
        self.api_state.store(api);
        self.entitlements.store(effective);
        drop(_writer);
        crate::sync::load(self, dir)
    }

    /// The API's part of the state (one atomic load; hold it for one
    /// request): the `token` method asks it which users the API defines.
    pub fn api_layer(&self) -> Arc<Entitlements> {
        self.api_state.load_full()
    }

    /// The API's part of the state, for reads (never waits for a writer).
    pub fn api_state<T>(&self, read: impl FnOnce(&Entitlements) -> T) -> T {
        read(&self.api_state.load())
    }

    /// Compile a snapshot document (the `PUT /api/v1/snapshot` body, a
    /// control-plane answer) into an API layer for [`Self::replace_all`],
    /// user by user while it is read: its users may name the config's
    /// packages. Blocking: call it from `spawn_blocking`.
    pub fn api_layer_from_json<R: std::io::Read>(
        &self,
        reader: R,
    ) -> Result<Entitlements, LoadError> {
        Entitlements::layer_from_json_reader(reader, config_packages(&self.live().config))
    }

    /// Apply one admin change: edit the API state read back as a
    /// [`Snapshot`], compile it, validate it with the config's, write it to
    /// the state dir (temp file, fsync, rename), then make it visible to the
    /// next request. For small edits: it reads back and compiles the whole
    /// layer (about 1–2 s at a million users). Blocking: call it from
    /// `spawn_blocking`. On any error nothing changes.
    pub fn change(
        &self,
        edit: impl FnOnce(&mut Snapshot) -> Result<(), ChangeError>,
    ) -> Result<(), ChangeError> {
        let writer = self.lock_writer()?;
        let mut next = self.api_state.load().to_snapshot();
        edit(&mut next)?;
        let external = config_packages(&self.live().config);
        let api = Entitlements::build_layer(next, external).map_err(ChangeError::from)?;
        self.commit(&writer, api)
    }

    /// Replace the entire API layer with `api`, already compiled (by
    /// [`Self::api_layer_from_json`], or [`Entitlements::build_layer`] with
    /// the config's package names): validate it with the config's, write it
    /// to the state dir, then make it visible to the next request. Blocking:
    /// call it from `spawn_blocking`. On any error nothing changes.
    pub fn replace_all(&self, api: Entitlements) -> Result<(), ChangeError> {
        let writer = self.lock_writer()?;
        self.commit(&writer, api)
    }

    fn lock_writer(&self) -> Result<std::sync::MutexGuard<'_, ()>, ChangeError> {
        self.api_writer
            .lock()
            .map_err(|_| ChangeError::Storage("state lock poisoned".into()))
    }

    /// Validate, persist and publish a new API layer; the caller holds the
    /// writer lock (`_writer`), which a reload also takes, so the config
    /// read here is the one in force when the change is published.
    fn commit(
        &self,
        _writer: &std::sync::MutexGuard<'_, ()>,
        api: Entitlements,
    ) -> Result<(), ChangeError> {
        let live = self.live();
        let api = Arc::new(api);
        let effective = build_effective(&live.config, &api)?;
        crate::state::save(&live.config.state_dir, &*api)
            .map_err(|e| ChangeError::Storage(e.to_string()))?;
        self.api_state.store(api);
        self.entitlements.store(effective);
        self.after_state_change();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entitlements::{Blocklist, Package, User, Users};

    fn user(token: &str, packages: &[&str]) -> User {
        User {
            tokens: vec![token.to_owned()],
            packages: packages.iter().map(|p| (*p).to_owned()).collect(),
            ..User::default()
        }
    }

    fn package(channels: &[&str]) -> Package {
        Package {
            channels: channels.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    #[test]
    fn api_users_and_packages_win_and_blocklists_join() {
        let config = Snapshot {
            users: Users(vec![
                ("alice".into(), user("a", &["cfg"])),
                ("carol".into(), user("c", &["cfg"])),
            ]),
            packages: [("cfg".to_owned(), package(&["cfg-*"]))].into(),
            blocklist: Blocklist {
                users: vec!["mallory".into()],
                tokens: vec!["stolen".into()],
                ips: vec!["192.0.2.0/24".into()],
            },
        };
        let api = Snapshot {
            users: Users(vec![("carol".into(), user("c2", &["api", "cfg"]))]),
            packages: [("api".to_owned(), package(&["api-*"]))].into(),
            blocklist: Blocklist {
                users: vec!["alice".into()],
                tokens: vec![],
                ips: vec!["198.51.100.7".into()],
            },
        };
        let m = merged(&config, api);
        let ids: Vec<&str> = m.users.iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["alice", "carol"]);
        assert_eq!(m.users.get("carol"), Some(&user("c2", &["api", "cfg"])));
        assert_eq!(m.packages.len(), 2);
        assert_eq!(m.blocklist.users, ["mallory", "alice"]);
        assert_eq!(m.blocklist.tokens, ["stolen"]);
        assert_eq!(m.blocklist.ips, ["192.0.2.0/24", "198.51.100.7"]);

        // An API layer naming the config's package compiles as a layer,
        // and only merged does it cover the config's channels.
        let layer = Entitlements::build_layer(
            Snapshot {
                users: Users(vec![("dave".into(), user("d", &["cfg"]))]),
                ..Snapshot::default()
            },
            package_names(&config),
        )
        .unwrap();
        assert!(layer.has_external_packages());
        assert_eq!(layer.package("cfg"), None);
        let effective = Entitlements::build(merged(&config, layer.to_snapshot())).unwrap();
        let ip = std::net::IpAddr::from([10, 0, 0, 1]);
        assert!(effective.decide(Some("dave"), None, "cfg-1", ip, 0).is_ok());
    }
}
