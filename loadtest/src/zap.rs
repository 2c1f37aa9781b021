//! The `zap` scenario: viewers switch channel every `zap_every`, each switch
//! a reconnect (new connection, new entry URL, new session), while the
//! harness lists the proxy's live sessions through the admin API and checks
//! that no user ever holds more than `max_sessions` of them.
//!
//! Set-up (unless told the users exist): one package covering the channels
//! and one user per viewer with that package and `max_sessions`, created
//! through `PUT /api/v1/packages/{name}` and `PUT /api/v1/users/{id}`.
//! The proxy should run `[sessions] on_limit = "evict_oldest"`: a viewer
//! zapping away from a channel then ends its old session, and a viewer
//! never sees an error. Under `reject` the new channel is refused until the
//! old session idles out, which the report shows as `session_limit` errors.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::admin::{AdminClient, SessionInfo};
use crate::player::Player;
use crate::report::{Kind, Report, ZapReport};
use crate::viewers::{Run, RunOptions};

/// Package the harness creates for the zapping users.
pub const PACKAGE: &str = "tollgate-loadtest-zap";
/// Admin calls in flight at once while creating users.
const SETUP_CONCURRENCY: usize = 16;

/// Settings of a `zap` run.
#[derive(Debug, Clone)]
pub struct ZapOptions {
    /// Viewers, channels, duration… (`entry` must carry a user).
    pub run: RunOptions,
    /// Time on one channel before switching to the next.
    pub zap_every: Duration,
    /// The proxy's admin API.
    pub admin: AdminClient,
    /// `max_sessions` of every zapping user.
    pub max_sessions: u64,
    /// Create the package and users first (else they must exist).
    pub create_users: bool,
    /// Time between two session listings during the run.
    pub check_every: Duration,
}

/// Runs the `zap` scenario.
pub async fn run(opts: ZapOptions) -> Result<Report, String> {
    if opts.run.entry.anonymous() {
        return Err("zap needs a route whose links carry a user (e.g. wmsauth), not ip".into());
    }
    let run = Run::new(opts.run.clone())?;
    if opts.create_users {
        create_users(&opts, &run).await?;
    }
    let counts = Arc::new(Mutex::new(ZapReport {
        max_sessions: opts.max_sessions,
        ..ZapReport::default()
    }));
    let prefix = opts.run.user_prefix.clone();
    let checker = {
        let (admin, counts, prefix) = (opts.admin.clone(), counts.clone(), prefix.clone());
        let every = opts.check_every.max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                check(&admin, &prefix, opts.max_sessions, &counts).await;
            }
        })
    };
    let zaps = Arc::new(AtomicU64::new(0));
    let channels = opts.run.channels.clone();
    let deadline = run.deadline;
    let elapsed = run
        .drive(|i| {
            let (source, seen_ip) = run.source_of(i);
            let user = run.user_of(i);
            let (shared, entry, channels) =
                (run.shared.clone(), opts.run.entry.clone(), channels.clone());
            let (zaps, zap_every) = (zaps.clone(), opts.zap_every);
            async move {
                let mut ch = i % channels.len();
                loop {
                    let until = (Instant::now() + zap_every).min(deadline);
                    let channel = channels.get(ch).map_or("", String::as_str);
                    match entry.entry(channel, &user, seen_ip, tollgate::clock::unix_now()) {
                        Ok(url) => {
                            // A new player: a new connection, like a player
                            // reopening after a channel change.
                            let mut player = Player::new(shared.clone(), source, i);
                            player.watch(&url, until).await;
                        }
                        Err(e) => {
                            shared.rec.error(Kind::Master, format!("signing: {e}"));
                            return;
                        }
                    }
                    if shared.stop.is_cancelled() || Instant::now() >= deadline {
                        return;
                    }
                    ch = (ch + 1) % channels.len();
                    zaps.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .await;
    checker.abort();
    // The last word: sessions right after the viewers stopped (they stay
    // live until the proxy's idle timeout, so this is the final count).
    let last = check(&opts.admin, &prefix, opts.max_sessions, &counts).await;
    let mut report = run.shared.rec.report("zap", elapsed);
    let mut zap = counts.lock().unwrap_or_else(|p| p.into_inner()).clone();
    zap.zaps = zaps.load(Ordering::Relaxed);
    if let Some((sessions, users)) = last {
        zap.final_sessions = sessions;
        zap.final_users = users;
    }
    report.zap = Some(zap);
    Ok(report)
}

/// Creates the package and one user per viewer.
async fn create_users(opts: &ZapOptions, run: &Run) -> Result<(), String> {
    opts.admin.put_package(PACKAGE, &opts.run.channels).await?;
    let mut tasks = JoinSet::new();
    for i in 0..opts.run.viewers {
        if tasks.len() >= SETUP_CONCURRENCY
            && let Some(done) = tasks.join_next().await
        {
            done.map_err(|e| format!("creating users: {e}"))??;
        }
        let (admin, user, max) = (opts.admin.clone(), run.user_of(i), opts.max_sessions);
        tasks.spawn(async move { admin.put_user(&user, max, &[PACKAGE]).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| format!("creating users: {e}"))??;
    }
    Ok(())
}

/// Lists the sessions once and folds them into `counts`; returns the
/// zapping users' (sessions, users) in this listing, `None` if it failed.
async fn check(
    admin: &AdminClient,
    prefix: &str,
    max: u64,
    counts: &Mutex<ZapReport>,
) -> Option<(u64, u64)> {
    let listed = admin.sessions().await;
    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
    c.checks += 1;
    let Ok(sessions) = listed else {
        c.check_errors += 1;
        return None;
    };
    let tally = tally(&sessions, prefix);
    c.foreign_sessions = tally.foreign;
    for &n in tally.per_user.values() {
        c.max_seen_per_user = c.max_seen_per_user.max(n);
        if max > 0 && n > max {
            c.over_limit += 1;
        }
    }
    Some((tally.per_user.values().sum(), tally.per_user.len() as u64))
}

/// Sessions per zapping user, and how many sessions are someone else's.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    per_user: HashMap<String, u64>,
    foreign: u64,
}

fn tally(sessions: &[SessionInfo], prefix: &str) -> Tally {
    let mut t = Tally::default();
    for s in sessions {
        match s.user.as_deref().filter(|u| u.starts_with(prefix)) {
            Some(u) => *t.per_user.entry(u.to_owned()).or_insert(0) += 1,
            None => t.foreign += 1,
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(user: Option<&str>, channel: &str) -> SessionInfo {
        SessionInfo {
            id: "0000000000000001".into(),
            user: user.map(str::to_owned),
            channel: channel.into(),
        }
    }

    #[test]
    fn sessions_are_tallied_per_zapping_user() {
        let list = [
            s(Some("zap-1"), "ch1"),
            s(Some("zap-1"), "ch2"),
            s(Some("zap-2"), "ch1"),
            s(Some("alice"), "ch1"),
            s(None, "ch1"),
        ];
        let t = tally(&list, "zap-");
        assert_eq!(t.per_user.get("zap-1"), Some(&2));
        assert_eq!(t.per_user.get("zap-2"), Some(&1));
        assert_eq!(t.foreign, 2);
    }
}
