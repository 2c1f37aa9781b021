//! Reading compiled entitlements back in the SPEC §4 shapes: one user for
//! `GET /api/v1/users/{id}`, the blocklist for `GET /api/v1/blocklist`, and
//! the whole state as a [`Snapshot`]-shaped JSON document for persistence
//! (`Serialize` streams it without building a `Snapshot`).
//!
//! Passwords are read back as `sha256:<hex>`: the plaintext is never kept.

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};

use super::{
    Blocklist, CompiledPackage, CompiledUser, Device, Entitlements, Package, Snapshot, User, Users,
};

/// A compiled user in the [`User`] shape, borrowed. Fields at their
/// default are left out (they read back as the default): a third less JSON
/// to write when a million users are saved.
#[derive(Serialize)]
struct UserView<'a> {
    tokens: &'a [Box<str>],
    #[serde(skip_serializing_if = "String::is_empty")]
    password: String,
    #[serde(skip_serializing_if = "is_zero")]
    max_sessions: u32,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    packages: Vec<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    ips: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    email: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    comment: &'a str,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Entitlements {
    fn view<'a>(&'a self, u: &'a CompiledUser) -> UserView<'a> {
        let extra = u.extra.as_deref();
        UserView {
            tokens: &u.tokens,
            password: u
                .password()
                .map(|d| format!("sha256:{}", hex::encode(d)))
                .unwrap_or_default(),
            max_sessions: u.max_sessions,
            packages: self
                .combos
                .get(u.combo as usize)
                .map(|c| {
                    c.iter()
                        .filter_map(|&p| self.packages.get(p as usize))
                        .map(|p| p.name.as_str())
                        .collect()
                })
                .unwrap_or_default(),
            ips: extra.map(|e| e.ips_source.as_slice()).unwrap_or_default(),
            expires_at: extra.and_then(|e| e.expires_source.as_deref()),
            disabled: u.disabled,
            region: extra.and_then(|e| e.region.as_deref()),
            name: extra.map_or("", |e| &e.profile[0]),
            email: extra.map_or("", |e| &e.profile[1]),
            comment: extra.map_or("", |e| &e.profile[2]),
        }
    }

    fn owned(view: UserView<'_>) -> User {
        User {
            tokens: view.tokens.iter().map(|t| t.to_string()).collect(),
            password: view.password,
            max_sessions: view.max_sessions,
            packages: view.packages.into_iter().map(str::to_owned).collect(),
            ips: view.ips.to_vec(),
            expires_at: view.expires_at.map(str::to_owned),
            disabled: view.disabled,
            region: view.region.map(str::to_owned),
            name: view.name.to_owned(),
            email: view.email.to_owned(),
            comment: view.comment.to_owned(),
        }
    }

    /// The packages these entitlements define (not external placeholders).
    fn own_packages(&self) -> impl Iterator<Item = &CompiledPackage> {
        self.packages.iter().filter(|p| !p.external && !p.builtin)
    }

    /// The user `id` as the admin API shows it (password as `sha256:<hex>`).
    pub fn user_record(&self, id: &str) -> Option<User> {
        self.user(id).map(|u| Self::owned(self.view(u)))
    }

    /// The device `hwid` as given.
    pub fn device_record(&self, hwid: &str) -> Option<Device> {
        self.device(hwid).map(|d| d.source.clone())
    }

    /// The package `name`.
    pub fn package(&self, name: &str) -> Option<Package> {
        self.own_packages()
            .find(|p| p.name == name)
            .map(|p| p.source.clone())
    }

    /// The blocklist as given.
    pub fn blocklist(&self) -> &Blocklist {
        &self.blocklist.source
    }

    /// Everything as a [`Snapshot`] (users in build order), e.g. to apply
    /// one change and build again. Compiling the result gives the same
    /// entitlements. For persistence, serialize `self` instead: same JSON,
    /// no copy.
    pub fn to_snapshot(&self) -> Snapshot {
        Snapshot {
            users: self
                .users
                .iter()
                .map(|u| (u.id.to_string(), Self::owned(self.view(u))))
                .collect::<Users>(),
            packages: self
                .own_packages()
                .map(|p| (p.name.clone(), p.source.clone()))
                .collect(),
            channels: self
                .channels()
                .map(|(name, c)| (name.to_owned(), c.clone()))
                .collect(),
            devices: self
                .devices
                .iter()
                .map(|d| (d.hwid.to_string(), d.source.clone()))
                .collect(),
            blocklist: self.blocklist.source.clone(),
        }
    }
}

/// The users as a JSON object, streamed.
struct UsersView<'a>(&'a Entitlements);

impl Serialize for UsersView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.users.len()))?;
        for u in &self.0.users {
            map.serialize_entry(&u.id, &self.0.view(u))?;
        }
        map.end()
    }
}

/// The packages as a JSON object.
struct PackagesView<'a>(&'a Entitlements);

impl Serialize for PackagesView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.own_packages().count()))?;
        for p in self.0.own_packages() {
            map.serialize_entry(&p.name, &p.source)?;
        }
        map.end()
    }
}

/// The channels as a JSON object, in order.
struct ChannelsView<'a>(&'a Entitlements);

impl Serialize for ChannelsView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.channels.len()))?;
        for (name, channel) in self.0.channels() {
            map.serialize_entry(name, channel)?;
        }
        map.end()
    }
}

/// The devices as a JSON object, in order.
struct DevicesView<'a>(&'a Entitlements);

impl Serialize for DevicesView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.devices.len()))?;
        for d in &self.0.devices {
            map.serialize_entry(&d.hwid, &d.source)?;
        }
        map.end()
    }
}

/// The [`Snapshot`] JSON shape, so persisting needs no `Snapshot` copy.
impl Serialize for Entitlements {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Snapshot", 5)?;
        s.serialize_field("users", &UsersView(self))?;
        s.serialize_field("packages", &PackagesView(self))?;
        s.serialize_field("channels", &ChannelsView(self))?;
        if !self.devices.is_empty() {
            s.serialize_field("devices", &DevicesView(self))?;
        }
        s.serialize_field("blocklist", &self.blocklist.source)?;
        s.end()
    }
}

/// What `GET /api/v1/users` asks for: filters (all must hold) and a page.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserQuery<'a> {
    /// Users whose `packages` name this package.
    pub package: Option<&'a str>,
    /// Users of this region.
    pub region: Option<&'a str>,
    /// The user holding this play token (exact, compared in constant time).
    pub token: Option<&'a str>,
    /// The user owning this device (exact hardware id).
    pub device: Option<&'a str>,
    /// A case-insensitive substring of the id, name, email or comment.
    pub text: Option<&'a str>,
    /// Matching users to skip, in the stable order (build order).
    pub offset: usize,
    /// Matching users to return at most.
    pub limit: usize,
}

/// One page of users.
#[derive(Debug, Clone)]
pub struct UserPage {
    /// Matching users in all.
    pub total: usize,
    /// `(id, user)` of the page, in order.
    pub users: Vec<(String, User)>,
}

impl Entitlements {
    /// One page of the users matching `q`, in build order (the order of the
    /// snapshot or of their creation), so paging is stable while nothing
    /// changes. One pass, no allocation per user that does not match.
    pub fn users_page(&self, q: &UserQuery<'_>) -> UserPage {
        let by_token = q.token.map(|t| self.user_by_token(t));
        let by_device = q.device.map(|h| self.device(h).map(|d| d.user()));
        // Per package list: does it name the package?
        let combos: Option<Vec<bool>> = q.package.map(|name| {
            self.combos
                .iter()
                .map(|c| {
                    c.iter().any(|&p| {
                        self.packages
                            .get(p as usize)
                            .is_some_and(|pkg| pkg.name == name)
                    })
                })
                .collect()
        });
        let text = q.text.map(str::to_lowercase);
        // ASCII needles (ids, emails) compare without allocating.
        let contains = |hay: &str, needle: &str| {
            if hay.len() < needle.len() {
                false
            } else if needle.is_ascii() {
                hay.as_bytes()
                    .windows(needle.len())
                    .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
            } else {
                hay.to_lowercase().contains(needle)
            }
        };
        let mut total = 0;
        let mut users = Vec::new();
        for u in &self.users {
            if by_token.is_some_and(|id| id != Some(&*u.id))
                || by_device.is_some_and(|id| id != Some(&*u.id))
            {
                continue;
            }
            if let Some(flags) = &combos
                && !flags.get(u.combo as usize).copied().unwrap_or(false)
            {
                continue;
            }
            if q.region.is_some_and(|r| u.region() != Some(r)) {
                continue;
            }
            if let Some(needle) = &text {
                let e = u.extra.as_deref();
                let found = contains(&u.id, needle)
                    || e.is_some_and(|e| e.profile.iter().any(|t| contains(t, needle)));
                if !found {
                    continue;
                }
            }
            if total >= q.offset && users.len() < q.limit {
                users.push((u.id.to_string(), Self::owned(self.view(u))));
            }
            total += 1;
        }
        UserPage { total, users }
    }
}
