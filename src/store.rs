//! The entitlement store: who may watch what, as every request, the admin
//! API and the control plane see it (SPEC §4).
//!
//! An [`EntitlementStore`] is a cheap clone over shared state (like
//! mini-redis's `Db`). It owns:
//! - the **API layer**: what the admin API and the control plane set,
//!   compiled, overlaid on the config's `[[user]]`/`[[package]]` (its users
//!   may name the config's packages, see [`Entitlements::build_layer`]) and
//!   persisted in the state dir ([`crate::persist`]);
//! - the **effective** entitlements: the config's overlaid by the API layer;
//!   the very same `Arc` as the layer when the config has none;
//! - the control plane's **deny list**, a blocklist-only layer asked on
//!   every request next to the effective entitlements (replaced whole).
//!
//! Invariants:
//! - The layer is held compiled, never as a [`Snapshot`]: a million-user
//!   bulk load ([`EntitlementStore::replace_all`]) compiles once.
//! - A change is validated with the config's entitlements, written to the
//!   state dir, and only then published (effective entitlements first
//!   computed, then both swapped); on any error nothing changes. Writers
//!   hold the writer lock for the whole change, and so does a config reload
//!   ([`EntitlementStore::rebase`]).
//! - Readers never wait for a writer (one atomic load each).
//! - After every published change the store calls its `on_change` hook
//!   (the runtime's revocation sweep), outside the writer lock.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::entitlements::{Entitlements, LoadError, Snapshot, ValidationError};

/// Why a change was not applied (nothing changed).
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

/// What the store takes from the config in force: its entitlements, their
/// package names and the state dir. Replaced by [`EntitlementStore::rebase`].
#[derive(Debug, Default)]
struct Base {
    entitlements: Snapshot,
    packages: HashSet<String>,
    state_dir: PathBuf,
}

impl Base {
    fn of(config: &Config) -> Self {
        Self {
            packages: package_names(&config.entitlements),
            entitlements: config.entitlements.clone(),
            state_dir: config.state_dir.clone(),
        }
    }

    /// The effective entitlements: `api` over the config's.
    ///
    /// Without `[[user]]`/`[[package]]` in the config (the usual case at
    /// scale) they are the API layer itself, shared, at no cost. Otherwise
    /// the layer is read back as a [`Snapshot`], merged and compiled again:
    /// a second full compile (about 2 s and twice the memory for a million
    /// API users).
    fn effective(&self, api: &Arc<Entitlements>) -> Result<Arc<Entitlements>, ChangeError> {
        if self.entitlements == Snapshot::default() && !api.has_external_packages() {
            return Ok(Arc::clone(api));
        }
        Entitlements::build(merged(&self.entitlements, api.to_snapshot()))
            .map(Arc::new)
            .map_err(ChangeError::from)
    }
}

type Hook = Box<dyn Fn() + Send + Sync>;

struct Inner {
    base: ArcSwap<Base>,
    api: ArcSwap<Entitlements>,
    /// Held by a writer for a whole change of `api` (and the swap of
    /// `effective` that goes with it), so changes apply one at a time.
    writer: Mutex<()>,
    effective: ArcSwap<Entitlements>,
    deny: ArcSwap<Entitlements>,
    on_change: Hook,
}

/// The layered entitlements and the deny list; clones share them.
#[derive(Clone)]
pub struct EntitlementStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EntitlementStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntitlementStore")
            .field("api_users", &self.inner.api.load().len())
            .field("effective_users", &self.inner.effective.load().len())
            .finish_non_exhaustive()
    }
}

impl EntitlementStore {
    /// The config's entitlements, an empty API layer and no deny list;
    /// `on_change` runs after every published change.
    pub fn new(config: &Config, on_change: impl Fn() + Send + Sync + 'static) -> Self {
        let base = Base::of(config);
        let api = Arc::new(Entitlements::default());
        // The config alone validated when it was loaded.
        let effective = base.effective(&api).unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                base: ArcSwap::from_pointee(base),
                api: ArcSwap::new(api),
                writer: Mutex::new(()),
                effective: ArcSwap::new(effective),
                deny: ArcSwap::from_pointee(Entitlements::default()),
                on_change: Box::new(on_change),
            }),
        }
    }

    /// Load the API layer the state dir holds (at start, before serving),
    /// compiled while it is read. A corrupt state is an error: serving
    /// without the operator's blocklist would be worse than not starting.
    pub fn load(&self) -> Result<(), String> {
        let _writer = self
            .inner
            .writer
            .lock()
            .map_err(|_| "state lock poisoned".to_owned())?;
        let base = self.inner.base.load_full();
        let dir = &base.state_dir;
        let loaded =
            crate::persist::load_layer(dir, base.packages.clone()).map_err(|e| e.to_string())?;
        let Some(api) = loaded else {
            return Ok(());
        };
        let api = Arc::new(api);
        let effective = base.effective(&api).map_err(|e| match e {
            ChangeError::Invalid(p) => format!("state in {}: {}", dir.display(), p.join("; ")),
            other => format!("{other:?}"),
        })?;
        self.inner.api.store(api);
        self.inner.effective.store(effective);
        Ok(())
    }

    /// The effective entitlements (one atomic load; hold it for one request).
    pub fn entitlements(&self) -> Arc<Entitlements> {
        self.inner.effective.load_full()
    }

    /// The API's part of the state (one atomic load; hold it for one
    /// request): the `token` method asks it which users the API defines.
    pub fn api_layer(&self) -> Arc<Entitlements> {
        self.inner.api.load_full()
    }

    /// The API layer and the effective entitlements together, for the
    /// `token` and `device` methods of one request ([`Layers::known`]).
    pub fn layers(&self) -> Layers {
        Layers {
            api: self.api_layer(),
            effective: self.entitlements(),
        }
    }

    /// The API's part of the state, for reads (never waits for a writer).
    pub fn api_state<T>(&self, read: impl FnOnce(&Entitlements) -> T) -> T {
        read(&self.inner.api.load())
    }

    /// The control plane's deny list, as a blocklist-only layer.
    pub fn deny_layer(&self) -> Arc<Entitlements> {
        self.inner.deny.load_full()
    }

    /// The deny list for one request: an `arc_swap` guard (one atomic load,
    /// no lock, no reference count touched).
    pub fn deny_guard(&self) -> arc_swap::Guard<Arc<Entitlements>> {
        self.inner.deny.load()
    }

    /// Replace the control plane's deny list (a blocklist-only layer).
    pub fn set_deny(&self, layer: Entitlements) {
        self.inner.deny.store(Arc::new(layer));
        (self.inner.on_change)();
    }

    /// Compile a snapshot document (the `PUT /api/v1/snapshot` body, a
    /// control-plane answer) into an API layer for [`Self::replace_all`],
    /// user by user while it is read: its users may name the config's
    /// packages. Blocking: call it from `spawn_blocking`.
    pub fn layer_from_json<R: std::io::Read>(&self, reader: R) -> Result<Entitlements, LoadError> {
        Entitlements::layer_from_json_reader(reader, self.inner.base.load().packages.clone())
    }

    /// Apply one change: edit the API layer read back as a [`Snapshot`],
    /// compile it, validate it with the config's, write it to the state dir
    /// (temp file, fsync, rename), then make it visible to the next
    /// request. For small edits: it reads back and compiles the whole layer
    /// (about 1–2 s at a million users). Blocking: call it from
    /// `spawn_blocking`. On any error nothing changes.
    pub fn change(
        &self,
        edit: impl FnOnce(&mut Snapshot) -> Result<(), ChangeError>,
    ) -> Result<(), ChangeError> {
        let writer = self.lock_writer()?;
        let mut next = self.inner.api.load().to_snapshot();
        edit(&mut next)?;
        let external = self.inner.base.load().packages.clone();
        let api = Entitlements::build_layer(next, external).map_err(ChangeError::from)?;
        self.commit(writer, api)
    }

    /// Replace the entire API layer with `api`, already compiled (by
    /// [`Self::layer_from_json`], or [`Entitlements::build_layer`] with the
    /// config's package names): validate it with the config's, write it to
    /// the state dir, then make it visible to the next request. Blocking:
    /// call it from `spawn_blocking`. On any error nothing changes.
    pub fn replace_all(&self, api: Entitlements) -> Result<(), ChangeError> {
        let writer = self.lock_writer()?;
        self.commit(writer, api)
    }

    /// A reload: take `config`'s entitlements and state dir as the new
    /// base, with the API layer on top; `publish` (the swap of the new
    /// generation) runs under the writer lock once the new effective
    /// entitlements are in, so no change lands between the two. On an
    /// error nothing changes and `publish` is not called.
    pub fn rebase(&self, config: &Config, publish: impl FnOnce()) -> Result<(), ChangeError> {
        let writer = self.lock_writer()?;
        let base = Base::of(config);
        let effective = base.effective(&self.inner.api.load_full())?;
        self.inner.effective.store(effective);
        self.inner.base.store(Arc::new(base));
        publish();
        // A `[[user]]` token or password the new config dropped no longer
        // carries the sessions it admitted.
        drop(writer);
        (self.inner.on_change)();
        Ok(())
    }

    fn lock_writer(&self) -> Result<MutexGuard<'_, ()>, ChangeError> {
        self.inner
            .writer
            .lock()
            .map_err(|_| ChangeError::Storage("state lock poisoned".into()))
    }

    /// Validate, persist and publish a new API layer; the caller holds the
    /// writer lock, which a reload also takes, so the base read here is the
    /// one in force when the change is published.
    fn commit(&self, writer: MutexGuard<'_, ()>, api: Entitlements) -> Result<(), ChangeError> {
        let base = self.inner.base.load_full();
        let api = Arc::new(api);
        let effective = base.effective(&api)?;
        crate::persist::save(&base.state_dir, &*api)
            .map_err(|e| ChangeError::Storage(e.to_string()))?;
        self.inner.api.store(api);
        self.inner.effective.store(effective);
        (self.inner.on_change)();
        drop(writer);
        Ok(())
    }
}

/// The two layers one request authenticates against (one atomic load
/// each; hold them for the request).
#[derive(Debug, Clone)]
pub struct Layers {
    /// The API's own layer.
    pub api: Arc<Entitlements>,
    /// The effective entitlements.
    pub effective: Arc<Entitlements>,
}

impl Layers {
    /// What the auth methods consult.
    pub fn known(&self) -> crate::auth::Known<'_> {
        crate::auth::Known {
            api: &self.api,
            effective: &self.effective,
        }
    }
}

/// The config's entitlements overlaid by the API's: users, packages,
/// channels and devices by name (the API wins), blocklists joined. Consumes `api` (its users move,
/// not copied).
pub fn merged(config: &Snapshot, api: Snapshot) -> Snapshot {
    let Snapshot {
        users,
        packages,
        channels,
        devices,
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
    // A channel the API redefines keeps its place in the config's order.
    for (name, channel) in channels.0 {
        out.channels.insert(name, channel);
    }
    for (hwid, device) in devices.0 {
        out.devices.insert(hwid, device);
    }
    out.blocklist.users.extend(blocklist.users);
    out.blocklist.tokens.extend(blocklist.tokens);
    out.blocklist.ips.extend(blocklist.ips);
    out
}

fn package_names(s: &Snapshot) -> HashSet<String> {
    s.packages.keys().cloned().collect()
}

#[cfg(test)]
mod tests;
