//! Durable revocation (SPEC §6): which sessions may no longer use the
//! capabilities minted for them, and which credential admitted each
//! session, so a token block or a replaced user finds the sessions already
//! playing on it.
//!
//! A capability is stateless (docs/hls.md §4): it stays authentic until it
//! expires. Revoking session `sid` therefore records a *cutoff*: every
//! capability of `sid` expiring at or before it is refused. Nothing minted
//! before the revocation can expire later than the cutoff, so the entry can
//! be forgotten once the clock passes it; a viewer who signs in again gets
//! a capability minted past the cutoff ([`Revocations::mint_expiry`]).
//!
//! Admissions remember, per session id, the digest of the `?token=` or
//! `?auth=` credential an entry request presented (SHA-256, never the
//! credential itself), the user, and the latest expiry minted for the
//! session; [`Revocations::revoke_where`] revokes every admission a new
//! state no longer honours.
//!
//! Must not: do I/O, read the clock (`now` is an argument), log. The shell
//! ([`crate::runtime::Shared`]) persists [`RevocationFile`] in the state dir
//! and loads it at start. Both maps are bounded by `max_entries` each: when
//! full, the entries closest to their own end are dropped first (a dropped
//! revocation would have lapsed soonest; see [`Revocations::revoke`]).
//!
//! Per-request cost: one sharded-map look-up ([`Revocations::check`]); an
//! empty map is one atomic load.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The file in the state dir holding a [`RevocationFile`].
pub const FILE_NAME: &str = "revoked.json";

/// Default bound of each map (revocations, admissions).
pub const DEFAULT_MAX_ENTRIES: usize = 1_000_000;

/// Most credentials remembered for one session id (the same viewer signing
/// in with another token); the oldest is replaced beyond it.
const MAX_CREDENTIALS: usize = 4;

/// Why a session was revoked; decides what its next request is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Kicked through the API, or ended with its user (`session_evicted`).
    Ended,
    /// The token that admitted it was blocked (`blocked`).
    Blocked,
    /// The credential that admitted it is no longer its user's: the user
    /// was replaced or deleted (`forbidden`).
    Revoked,
}

/// The credential an entry request presented, as a SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Credential {
    /// SHA-256 of a `?token=` value (percent-decoded).
    Token([u8; 32]),
    /// SHA-256 of the password of an `?auth=user:password`.
    Password([u8; 32]),
}

impl Credential {
    /// The credential of a presented `?token=` value.
    pub fn token(raw: &[u8]) -> Self {
        Self::Token(Sha256::digest(raw).into())
    }

    /// The credential of a presented password.
    pub fn password(raw: &[u8]) -> Self {
        Self::Password(Sha256::digest(raw).into())
    }

    fn to_text(self) -> String {
        match self {
            Self::Token(d) => format!("token:{}", hex::encode(d)),
            Self::Password(d) => format!("password:{}", hex::encode(d)),
        }
    }

    fn from_text(text: &str) -> Option<Self> {
        let (kind, digest) = text.split_once(':')?;
        let mut d = [0u8; 32];
        hex::decode_to_slice(digest, &mut d).ok()?;
        match kind {
            "token" => Some(Self::Token(d)),
            "password" => Some(Self::Password(d)),
            _ => None,
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Token(_) => "Token(MASKED)",
            Self::Password(_) => "Password(MASKED)",
        })
    }
}

/// One revoked session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Revoked {
    cutoff: u64,
    reason: Reason,
}

/// What admitted one session id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Admitted {
    user: Option<Box<str>>,
    /// Credentials presented by entry requests, newest last.
    credentials: Vec<Held>,
    /// The latest capability expiry minted for the session.
    until: u64,
}

/// One credential of an admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    credential: Credential,
    /// The `token` method vouched for the user with it (so a replaced or
    /// deleted user's rules apply); otherwise only a token block does.
    of_user: bool,
}

/// What a state change is asked about each admission
/// ([`Revocations::revoke_where`]).
#[derive(Debug, Clone, Copy)]
pub struct Admission<'a> {
    /// The user the session belongs to.
    pub user: Option<&'a str>,
    /// The credential an entry presented.
    pub credential: Credential,
    /// The `token` method admitted `user` with `credential`.
    pub of_user: bool,
}

/// Revoked sessions and admissions of this edge.
#[derive(Debug)]
pub struct Revocations {
    revoked: DashMap<u64, Revoked>,
    admitted: DashMap<u64, Admitted>,
    /// `revoked.len()`, readable without touching a shard.
    revoked_len: AtomicUsize,
    max_entries: usize,
    /// Set by every change since [`Self::take_dirty`] last cleared it.
    dirty: AtomicBool,
}

impl Default for Revocations {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ENTRIES)
    }
}

impl Revocations {
    /// Empty, each map bounded by `max_entries` (at least 1).
    pub fn new(max_entries: usize) -> Self {
        Self {
            revoked: DashMap::new(),
            admitted: DashMap::new(),
            revoked_len: AtomicUsize::new(0),
            max_entries: max_entries.max(1),
            dirty: AtomicBool::new(false),
        }
    }

    /// Refuse every capability of session `sid` that expires at or before
    /// `cutoff` (the expiry a capability minted now would have), and any
    /// minted past an earlier cutoff of the same session (a viewer who
    /// signed in again after a kick and is revoked once more).
    pub fn revoke(&self, sid: u64, cutoff: u64, reason: Reason, now: u64) {
        let cutoff = match self.revoked.get(&sid) {
            Some(old) => cutoff.max(old.cutoff.saturating_add(1)),
            None => cutoff,
        };
        let cutoff = match self.admitted.get(&sid) {
            Some(a) => cutoff.max(a.until),
            None => cutoff,
        };
        if !self.revoked.contains_key(&sid) {
            make_room(&self.revoked, self.max_entries, now, |r| r.cutoff);
        }
        self.revoked.insert(sid, Revoked { cutoff, reason });
        self.revoked_len
            .store(self.revoked.len(), Ordering::Relaxed);
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// `Err(reason)` when a capability of `sid` expiring at `expires` was
    /// revoked.
    pub fn check(&self, sid: u64, expires: u64) -> Result<(), Reason> {
        if self.revoked_len.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        match self.revoked.get(&sid) {
            Some(r) if expires <= r.cutoff => Err(r.reason),
            _ => Ok(()),
        }
    }

    /// The expiry to mint for session `sid` when `expires` is asked for:
    /// past the session's cutoff, so fresh credentials work again after a
    /// revocation while every older capability stays refused.
    pub fn mint_expiry(&self, sid: u64, expires: u64) -> u64 {
        if self.revoked_len.load(Ordering::Relaxed) == 0 {
            return expires;
        }
        match self.revoked.get(&sid) {
            Some(r) if expires <= r.cutoff => r.cutoff.saturating_add(1),
            _ => expires,
        }
    }

    /// An entry request admitted session `sid` of `user` with `credential`;
    /// `until` is the expiry of the capability minted for it.
    pub fn admit(
        &self,
        sid: u64,
        user: Option<&str>,
        credential: Credential,
        of_user: bool,
        until: u64,
        now: u64,
    ) {
        let held = Held {
            credential,
            of_user,
        };
        if let Some(mut a) = self.admitted.get_mut(&sid) {
            let known = a.credentials.contains(&held) && a.user.as_deref() == user;
            if known && a.until >= until {
                return;
            }
            if a.user.as_deref() != user {
                // Same id, other user: impossible unless ids collide; start over.
                a.user = user.map(Into::into);
                a.credentials.clear();
            }
            if !a.credentials.contains(&held) {
                if a.credentials.len() >= MAX_CREDENTIALS {
                    a.credentials.remove(0);
                }
                a.credentials.push(held);
            }
            a.until = a.until.max(until);
            self.dirty.store(true, Ordering::Relaxed);
            return;
        }
        make_room(&self.admitted, self.max_entries, now, |a| a.until);
        self.admitted.insert(
            sid,
            Admitted {
                user: user.map(Into::into),
                credentials: vec![held],
                until,
            },
        );
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// A capability of session `sid` expiring at `until` was minted (a
    /// playlist reload): its admission lasts as long.
    pub fn extend(&self, sid: u64, until: u64) {
        if let Some(mut a) = self.admitted.get_mut(&sid)
            && a.until < until
        {
            a.until = until;
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// Revoke, with `cutoff`, every admitted session for which `verdict`
    /// names a reason for one of its credentials; returns how many.
    pub fn revoke_where(
        &self,
        cutoff: u64,
        now: u64,
        verdict: impl Fn(&Admission<'_>) -> Option<Reason>,
    ) -> usize {
        let mut hits = Vec::new();
        for a in &self.admitted {
            let reason = a.credentials.iter().find_map(|h| {
                verdict(&Admission {
                    user: a.user.as_deref(),
                    credential: h.credential,
                    of_user: h.of_user,
                })
            });
            if let Some(reason) = reason {
                hits.push((*a.key(), reason));
            }
        }
        for &(sid, reason) in &hits {
            self.revoke(sid, cutoff, reason, now);
            // Its credential is gone for good: forget it, so the next sweep
            // does not revoke a viewer who signed in again with a good one.
            self.admitted.remove(&sid);
        }
        hits.len()
    }

    /// Forget revocations and admissions that can no longer matter at
    /// `now`: every capability they cover has expired.
    pub fn prune(&self, now: u64) {
        let before = self.revoked.len();
        self.revoked.retain(|_, r| r.cutoff >= now);
        let after = self.revoked.len();
        self.revoked_len.store(after, Ordering::Relaxed);
        let admitted = self.admitted.len();
        self.admitted.retain(|_, a| a.until >= now);
        if after != before || self.admitted.len() != admitted {
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// True (and cleared) when anything changed since the last call.
    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::Relaxed)
    }

    /// Mark as changed (a save failed and must be tried again).
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Number of revoked sessions.
    pub fn revoked_count(&self) -> usize {
        self.revoked_len.load(Ordering::Relaxed)
    }

    /// Number of admissions remembered.
    pub fn admitted_count(&self) -> usize {
        self.admitted.len()
    }

    /// Everything, in the shape of the state file.
    pub fn to_file(&self) -> RevocationFile {
        let mut revoked: Vec<RevokedEntry> = self
            .revoked
            .iter()
            .map(|r| RevokedEntry {
                sid: sid_text(*r.key()),
                cutoff: r.cutoff,
                reason: r.reason,
            })
            .collect();
        revoked.sort_by(|a, b| a.sid.cmp(&b.sid));
        let mut admitted: Vec<AdmittedEntry> = self
            .admitted
            .iter()
            .map(|a| AdmittedEntry {
                sid: sid_text(*a.key()),
                user: a.user.as_deref().map(str::to_owned),
                credentials: a
                    .credentials
                    .iter()
                    .map(|h| HeldEntry {
                        credential: h.credential.to_text(),
                        of_user: h.of_user,
                    })
                    .collect(),
                until: a.until,
            })
            .collect();
        admitted.sort_by(|a, b| a.sid.cmp(&b.sid));
        RevocationFile { revoked, admitted }
    }

    /// Replace everything with what `file` holds, minus what has lapsed at
    /// `now`. An entry that does not parse is an error naming its index
    /// (never its values).
    pub fn load(&self, file: RevocationFile, now: u64) -> Result<(), String> {
        self.revoked.clear();
        self.admitted.clear();
        for (i, r) in file.revoked.into_iter().enumerate() {
            let sid = parse_sid(&r.sid).ok_or_else(|| format!("revoked[{i}].sid is malformed"))?;
            if r.cutoff >= now {
                self.revoked.insert(
                    sid,
                    Revoked {
                        cutoff: r.cutoff,
                        reason: r.reason,
                    },
                );
            }
        }
        for (i, a) in file.admitted.into_iter().enumerate() {
            let sid = parse_sid(&a.sid).ok_or_else(|| format!("admitted[{i}].sid is malformed"))?;
            let mut credentials = Vec::with_capacity(a.credentials.len().min(MAX_CREDENTIALS));
            for h in a.credentials.iter().rev().take(MAX_CREDENTIALS).rev() {
                let credential = Credential::from_text(&h.credential)
                    .ok_or_else(|| format!("admitted[{i}].credentials is malformed"))?;
                credentials.push(Held {
                    credential,
                    of_user: h.of_user,
                });
            }
            if a.until >= now && !credentials.is_empty() {
                self.admitted.insert(
                    sid,
                    Admitted {
                        user: a.user.map(Into::into),
                        credentials,
                        until: a.until,
                    },
                );
            }
        }
        // A file from a larger bound: keep the entries that last longest.
        trim(&self.revoked, self.max_entries, |r| r.cutoff);
        trim(&self.admitted, self.max_entries, |a| a.until);
        self.revoked_len
            .store(self.revoked.len(), Ordering::Relaxed);
        Ok(())
    }
}

/// Before inserting one more entry into `map`: drop what lapsed at `now`,
/// then, if still full, the entries that end first (a tenth of the bound at
/// once, so a full map does not scan on every insert).
fn make_room<V>(map: &DashMap<u64, V>, max: usize, now: u64, end: impl Fn(&V) -> u64) {
    if map.len() < max {
        return;
    }
    map.retain(|_, v| end(v) >= now);
    if map.len() >= max {
        trim(map, max.saturating_sub(max / 10 + 1), end);
    }
}

/// Keep the `keep` entries of `map` that end last.
fn trim<V>(map: &DashMap<u64, V>, keep: usize, end: impl Fn(&V) -> u64) {
    let len = map.len();
    if len <= keep {
        return;
    }
    let mut ends: Vec<(u64, u64)> = map.iter().map(|e| (end(e.value()), *e.key())).collect();
    ends.sort_unstable();
    for &(_, sid) in ends.iter().take(len - keep) {
        map.remove(&sid);
    }
}

fn sid_text(sid: u64) -> String {
    format!("{sid:016x}")
}

fn parse_sid(text: &str) -> Option<u64> {
    (text.len() == 16)
        .then(|| u64::from_str_radix(text, 16).ok())
        .flatten()
}

/// The state file [`FILE_NAME`]: revoked sessions and admissions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RevocationFile {
    /// Revoked sessions.
    pub revoked: Vec<RevokedEntry>,
    /// Admissions.
    pub admitted: Vec<AdmittedEntry>,
}

/// One revoked session in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokedEntry {
    /// Session id, 16 lower-case hex digits (as the admin API shows it).
    pub sid: String,
    /// Capabilities of the session expiring at or before this unix second
    /// are refused.
    pub cutoff: u64,
    /// Why.
    pub reason: Reason,
}

/// One admission in the file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmittedEntry {
    /// Session id.
    pub sid: String,
    /// The session's user.
    pub user: Option<String>,
    /// `token:<sha256 hex>` or `password:<sha256 hex>`, oldest first.
    pub credentials: Vec<HeldEntry>,
    /// The latest capability expiry minted for the session.
    pub until: u64,
}

impl fmt::Debug for AdmittedEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmittedEntry")
            .field("sid", &self.sid)
            .field("user", &self.user)
            .field("credentials", &self.credentials.len())
            .field("until", &self.until)
            .finish()
    }
}

/// One credential of an admission in the file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldEntry {
    /// `token:<sha256 hex>` or `password:<sha256 hex>`.
    pub credential: String,
    /// The `token` method vouched for the user with it.
    pub of_user: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revocation_refuses_older_capabilities_until_its_cutoff() {
        let r = Revocations::default();
        assert_eq!(r.check(7, 1000), Ok(()));
        r.revoke(7, 1000, Reason::Ended, 10);
        assert_eq!(r.check(7, 999), Err(Reason::Ended));
        assert_eq!(r.check(7, 1000), Err(Reason::Ended));
        assert_eq!(r.check(8, 1000), Ok(()), "another session");
        // Signing in again mints past the cutoff.
        assert_eq!(r.mint_expiry(7, 1000), 1001);
        assert_eq!(r.mint_expiry(7, 2000), 2000);
        assert_eq!(r.check(7, 1001), Ok(()));
        // Revoked again at a time whose expiry is no later: covers 1001 too.
        r.revoke(7, 1000, Reason::Blocked, 20);
        assert_eq!(r.check(7, 1001), Err(Reason::Blocked));
        // Lapses once the clock passes the cutoff.
        r.prune(1001);
        assert_eq!(r.revoked_count(), 1);
        r.prune(1002);
        assert_eq!(r.revoked_count(), 0);
        assert_eq!(r.check(7, 1001), Ok(()));
    }

    #[test]
    fn revoke_where_finds_sessions_by_credential_and_covers_extended_ones() {
        let r = Revocations::default();
        let a = Credential::token(b"alice-token");
        let b = Credential::token(b"bob-token");
        r.admit(1, Some("alice"), a, true, 100, 0);
        r.admit(2, Some("bob"), b, true, 100, 0);
        r.admit(3, None, a, false, 100, 0);
        r.extend(1, 500);
        let n = r.revoke_where(100, 50, |adm| {
            (adm.credential == a).then_some(Reason::Blocked)
        });
        assert_eq!(n, 2);
        // Session 1's capability was re-minted until 500: covered.
        assert_eq!(r.check(1, 500), Err(Reason::Blocked));
        assert_eq!(r.check(3, 100), Err(Reason::Blocked));
        assert_eq!(r.check(2, 100), Ok(()));
        assert_eq!(r.admitted_count(), 1);
    }

    #[test]
    fn file_round_trip_drops_what_lapsed_and_hides_digests_from_debug() {
        let r = Revocations::default();
        r.revoke(0xabc, 1000, Reason::Revoked, 0);
        r.revoke(0xdef, 10, Reason::Ended, 0);
        let c = Credential::password(b"secret-password");
        r.admit(0x123, Some("carol"), c, true, 2000, 0);
        let file = r.to_file();
        let json = serde_json::to_string(&file).unwrap();
        assert!(!json.contains("secret-password"));
        assert!(
            !format!("{c:?}{file:?}").contains(&hex::encode(Sha256::digest(b"secret-password")))
        );
        let back: RevocationFile = serde_json::from_str(&json).unwrap();
        let r2 = Revocations::default();
        r2.load(back, 100).unwrap();
        assert_eq!(r2.check(0xabc, 1000), Err(Reason::Revoked));
        assert_eq!(r2.check(0xdef, 10), Ok(()), "lapsed at 100");
        assert_eq!(r2.admitted_count(), 1);
        let n = r2.revoke_where(3000, 100, |a| {
            (a.user == Some("carol") && a.credential == c && a.of_user).then_some(Reason::Revoked)
        });
        assert_eq!(n, 1);
        assert_eq!(r2.check(0x123, 2000), Err(Reason::Revoked));
        let bad = RevocationFile {
            revoked: vec![RevokedEntry {
                sid: "xyz".into(),
                cutoff: 1,
                reason: Reason::Ended,
            }],
            admitted: vec![],
        };
        assert!(r2.load(bad, 0).unwrap_err().contains("revoked[0]"));
    }

    #[test]
    fn maps_stay_within_their_bound() {
        let r = Revocations::new(10);
        for sid in 0..100u64 {
            r.revoke(sid, 1000 + sid, Reason::Ended, 0);
            r.admit(
                sid,
                None,
                Credential::token(&sid.to_be_bytes()),
                false,
                1000 + sid,
                0,
            );
        }
        assert!(r.revoked_count() <= 10, "{}", r.revoked_count());
        assert!(r.admitted_count() <= 10);
        // The newest (latest-ending) ones are kept.
        assert_eq!(r.check(99, 1099), Err(Reason::Ended));
        assert_eq!(r.check(0, 1000), Ok(()));
    }
}
