//! The shell of durable revocation ([`crate::revocation`]): `revoked.json`
//! in the state dir (loaded at start, saved by the same atomic protocol as
//! the other state files), and the sweep that revokes the sessions a new
//! state no longer honours.
//!
//! When it is saved:
//! - a kick, a deleted user, a user ended by the control plane: before the
//!   API call answers (the caller awaits [`Shared::save_revocations_async`]);
//! - an entitlement or deny-list change: within the change, after it is
//!   published ([`Shared::after_state_change`]);
//! - new admissions (entry requests): by the periodic flush of the server
//!   (`server::persist_revocations`, every second) and at shutdown. A
//!   process killed within that second forgets the newest admissions; their
//!   sessions still meet every per-request check, only a later token block
//!   cannot find them by their token.

use std::collections::HashSet;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use super::Shared;
use crate::revocation::{Admission, Credential, FILE_NAME, Reason, RevocationFile};

impl Shared {
    /// Load the revocations the state dir holds (at start, before any
    /// state change can sweep). A file that does not parse is an error.
    pub fn load_revocations(&self) -> Result<(), String> {
        let dir = self.live().config.state_dir.clone();
        let Some(file) = crate::persist::load_named::<RevocationFile>(&dir, FILE_NAME)
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        self.revocations
            .load(file, self.clock.now())
            .map_err(|e| format!("{}: {e}", dir.join(FILE_NAME).display()))
    }

    /// Write the revocations to the state dir if anything changed since the
    /// last save (temp file, fsync, rename). Blocking.
    pub fn save_revocations(&self) -> Result<(), String> {
        let _writer = self
            .revocation_writer
            .lock()
            .map_err(|_| "revocation lock poisoned".to_owned())?;
        if !self.revocations.take_dirty() {
            return Ok(());
        }
        let file = self.revocations.to_file();
        let dir = self.live().config.state_dir.clone();
        crate::persist::save_named(&dir, FILE_NAME, &file).map_err(|e| {
            // Try again at the next save.
            self.revocations.mark_dirty();
            e.to_string()
        })
    }

    /// [`Self::save_revocations`] on the blocking pool.
    pub async fn save_revocations_async(self: &Arc<Self>) -> Result<(), String> {
        let s = Arc::clone(self);
        tokio::task::spawn_blocking(move || s.save_revocations())
            .await
            .map_err(|e| format!("revocation save task failed: {e}"))?
    }

    /// The entitlements or the deny list changed: revoke the sessions
    /// admitted by a token now blocked, or by a credential their user no
    /// longer has (replaced or deleted), and save. Blocking.
    pub(crate) fn after_state_change(&self) {
        let revoked = self.revoke_stale_admissions();
        if revoked > 0 {
            tracing::info!(sessions = revoked, "sessions revoked by a state change");
        }
        if let Err(e) = self.save_revocations() {
            tracing::error!(error = %e, "revocations not saved in the state dir");
        }
    }

    /// Revoke every remembered admission the current state no longer
    /// honours; returns how many sessions.
    fn revoke_stale_admissions(&self) -> usize {
        if self.revocations.admitted_count() == 0 {
            return 0;
        }
        let live = self.live();
        let api = self.store.api_layer();
        let effective = self.store.entitlements();
        let deny = self.store.deny_layer();
        let blocked: HashSet<[u8; 32]> = effective
            .blocklist()
            .tokens
            .iter()
            .chain(&deny.blocklist().tokens)
            .map(|t| Sha256::digest(t.as_bytes()).into())
            .collect();
        let config = live.auth.schemes().token.clone();
        let honoured = |a: &Admission<'_>| -> bool {
            let Some(user) = a.user else {
                return false;
            };
            match (api.user(user), &config) {
                (Some(u), _) => match &a.credential {
                    Credential::Token(d) => u.has_token_digest(d),
                    Credential::Password(d) => u.has_password_digest(d),
                },
                (None, Some(tokens)) => match &a.credential {
                    Credential::Token(d) => tokens.user_of_token_digest(d) == Some(user),
                    Credential::Password(d) => tokens.is_password_digest(user, d),
                },
                (None, None) => false,
            }
        };
        let now = self.clock.now();
        let cutoff = live.config.sessions.capability_expiry(now);
        self.revocations.revoke_where(cutoff, now, |a| {
            if let Credential::Token(d) = &a.credential
                && blocked.contains(d)
            {
                return Some(Reason::Blocked);
            }
            (a.of_user && !honoured(a)).then_some(Reason::Revoked)
        })
    }
}
