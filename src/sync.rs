//! Pull sync with a control plane (`[control_plane]`, SPEC §4,
//! `docs/control-plane.md`): the shell.
//!
//! Every `interval` the edge POSTs a usage report and applies the answer:
//! - `mode = "tollgate"`: [`protocol`]'s JSON, a versioned full or delta
//!   snapshot plus the deny list, accepted only with the HMAC of
//!   [`signature`] (over the report's nonce and the answer body);
//! - `mode = "nimble_ppv"`: Nimble's pay-per-view JSON ([`crate::sync::ppv`]),
//!   whose `DenyList.ID` becomes the deny list's users, after the answer's
//!   `Solution` proves the control plane knows the push-API token.
//!
//! The control plane's users, packages and blocklist are the same layer the
//! admin API writes (a control plane may push through the API or be
//! pulled; both persist in the state dir). Its deny list is a layer of its
//! own, checked on every request next to the entitlements, so a new deny
//! list costs nothing like a million-user rebuild. The version held and the
//! deny list persist in `sync.json` beside the snapshot, written after it.
//!
//! The control plane is reached over `https://` ([`transport`]: system
//! roots or `[control_plane] ca`), or `http://` to loopback.
//!
//! Failure (control plane down, slow, answering garbage, a wrong Solution
//! or signature, a full disk) changes nothing: the last good state keeps serving, the
//! next try backs off (doubling from `interval` up to `max_backoff`, with
//! jitter), the metrics count it by result and `/healthz` shows it;
//! `/readyz` fails only before a first good sync (nothing persisted either)
//! or past `max_stale`. Usage counters advance only when a report was
//! acknowledged by an accepted answer, so an outage loses no viewing time.
//!
//! Must not: log the token or quote an answer's values; hold a lock across
//! an await; block a runtime worker (compiling and saving a snapshot runs in
//! `spawn_blocking`).

pub mod ppv;
pub mod protocol;
pub mod signature;
pub mod status;
pub mod transport;
pub mod usage;

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};

use crate::config::{ControlPlaneConfig, SyncMode};
use crate::entitlements::Blocklist;
use crate::metrics::ResultLabel;
use crate::runtime::{ChangeError, Live, Shared};
use protocol::{Answer, Change, Plan, Report, SessionUsage};
use status::denied;
pub use status::{FILE_NAME, Health, Persisted, Status};
use transport::SyncClient;
use usage::{Line, Usage};

/// Load what an earlier sync persisted in `dir` (at start): the version
/// held and the deny list, compiled. A corrupt file is an error.
pub fn load(shared: &Shared, dir: &std::path::Path) -> Result<(), String> {
    let Some(p) =
        crate::persist::load_named::<Persisted>(dir, FILE_NAME).map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    let layer = protocol::deny_layer(p.deny.clone())
        .map_err(|e| format!("{}: {e}", dir.join(FILE_NAME).display()))?;
    shared.store.set_deny(layer);
    shared.sync.update(|h| h.loaded = true);
    hold(shared, p);
    Ok(())
}

/// Make `p` the state held, with its figures in the metrics.
fn hold(shared: &Shared, p: Persisted) {
    let m = &shared.metrics;
    m.sync_version.set(version_gauge(p.version));
    m.sync_denied.set(gauge(denied(&p.deny)));
    shared.sync.set(p);
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn version_gauge(v: Option<u64>) -> i64 {
    v.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// Why one sync failed; the label is its metric `result`.
#[derive(Debug)]
struct Failure {
    label: &'static str,
    message: String,
}

impl Failure {
    fn new(label: &'static str, message: impl Into<String>) -> Self {
        Self {
            label,
            message: message.into(),
        }
    }
}

/// Run pull sync until the task is aborted. Reads `[control_plane]` from the
/// current generation before each sync, so a reload applies; without the
/// section it idles.
pub async fn run(shared: Arc<Shared>) {
    // The client and the config generation it was built for: a reload
    // builds a new one, so a changed `url` scheme, `ca` path or CA file
    // applies (a `Weak` keeps the generation's address from being reused).
    let mut client: Option<(Weak<Live>, SyncClient)> = None;
    let mut usage = Usage::default();
    shared.sync.started(shared.clock.now());
    loop {
        let live = shared.live();
        let Some(cp) = live.config.control_plane.clone() else {
            drop(live);
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let generation = Arc::downgrade(&live);
        drop(live);
        if client
            .as_ref()
            .is_none_or(|(g, _)| !Weak::ptr_eq(g, &generation))
        {
            let https = cp.url.scheme_str() == Some("https");
            client = transport::client(https, cp.ca.as_deref())
                .map_err(|e| tracing::warn!(error = %e, "control-plane client not built"))
                .ok()
                .map(|c| (generation, c));
        }
        let result = match &client {
            Some((_, c)) => once(&shared, c, &cp, &mut usage).await,
            None => Err(Failure::new(
                "unreachable",
                "no TLS client (see the log: CA roots could not be loaded)",
            )),
        };
        let now = shared.clock.now();
        let failures = {
            let label = match &result {
                Ok(applied) => {
                    if *applied {
                        "applied"
                    } else {
                        "unchanged"
                    }
                }
                Err(f) => f.label,
            };
            shared
                .metrics
                .syncs
                .get_or_create(&ResultLabel { result: label })
                .inc();
            let mut failures = 0;
            shared.sync.update(|h| {
                h.last_attempt = Some(now);
                h.usage_dropped = usage.dropped();
                match &result {
                    Ok(_) => {
                        h.last_success = Some(now);
                        h.consecutive_failures = 0;
                        h.last_error = None;
                    }
                    Err(f) => {
                        h.consecutive_failures = h.consecutive_failures.saturating_add(1);
                        h.last_error = Some(format!("{}: {}", f.label, f.message));
                    }
                }
                failures = h.consecutive_failures;
            });
            failures
        };
        shared.metrics.sync_failures.set(i64::from(failures));
        match &result {
            Ok(_) => {
                shared
                    .metrics
                    .sync_last_success
                    .set(i64::try_from(now).unwrap_or(i64::MAX));
            }
            Err(f) => tracing::warn!(
                result = f.label,
                error = %f.message,
                failures,
                "control-plane sync failed; the last good state keeps serving"
            ),
        }
        tokio::time::sleep(next_wait(&cp, failures)).await;
    }
}

/// `interval` after a good sync; after `failures` bad ones in a row,
/// `interval · 2^(failures-1)` capped at `max_backoff`, less up to a
/// quarter at random so a fleet does not retry in step.
fn next_wait(cp: &ControlPlaneConfig, failures: u32) -> Duration {
    if failures == 0 {
        return cp.interval;
    }
    let factor = 1u32 << (failures - 1).min(16);
    let wait = cp.interval.saturating_mul(factor).min(cp.max_backoff);
    let jitter = wait.mul_f64(f64::from(random_u32() % 1000) / 4000.0);
    wait.saturating_sub(jitter)
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = aws_lc_rs::rand::fill(&mut b);
    u32::from_le_bytes(b)
}

/// A random (version 4) UUID, as Nimble's puzzles are.
fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut b);
    uuid_text(b, 4)
}

/// This edge's `ID` in `nimble_ppv` reports: stable across restarts, a
/// This edge's name in reports: `[control_plane] edge_id`, else the host
/// name (`/proc/sys/kernel/hostname`), else `"tollgate"`.
fn edge_id(cp: &ControlPlaneConfig) -> String {
    cp.edge_id.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "tollgate".to_owned())
    })
}

/// UUID (version 5 shape) of the SHA-256 of `edge_id`.
fn nimble_id(edge_id: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("tollgate-ppv:{edge_id}"));
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    uuid_text(b, 5)
}

fn uuid_text(mut b: [u8; 16], version: u8) -> String {
    b[6] = (b[6] & 0x0f) | (version << 4);
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// One sync: report, fetch the answer, apply it. `Ok(true)` when something
/// changed.
async fn once(
    shared: &Arc<Shared>,
    client: &SyncClient,
    cp: &ControlPlaneConfig,
    usage: &mut Usage,
) -> Result<bool, Failure> {
    let now = shared.clock.now();
    let lines = usage.collect(&shared.sessions.list());
    let held = shared.sync.version();
    let (body, puzzle) = match cp.mode {
        SyncMode::Tollgate => (native_report(cp, held, now, &lines), None),
        SyncMode::NimblePpv => {
            let puzzle = uuid_v4();
            let body = nimble_report(cp, &puzzle, &lines);
            (body, Some(puzzle))
        }
    };
    let mut req = Request::post(cp.url.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::USER_AGENT,
            concat!("tollgate/", env!("CARGO_PKG_VERSION")),
        );
    // `tollgate` answers are authenticated by an HMAC over this nonce and
    // the body (`signature`); Nimble's by the Solution to the puzzle.
    let nonce = signature::nonce();
    if cp.mode == SyncMode::Tollgate {
        req = req
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", cp.token.expose()),
            )
            .header(signature::NONCE_HEADER, &nonce);
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| Failure::new("unreachable", format!("request: {e}")))?;
    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| Failure::new("unreachable", format!("request failed: {e}")))?;
        let status = resp.status();
        let mac = resp.headers().get(signature::SIGNATURE_HEADER).cloned();
        let body = Limited::new(resp.into_body(), cp.max_answer)
            .collect()
            .await
            .map_err(|e| Failure::new("unreachable", format!("answer body: {e}")))?
            .to_bytes();
        Ok::<_, Failure>((status, mac, body))
    };
    let (status, mac, body) = tokio::time::timeout(cp.timeout, exchange)
        .await
        .map_err(|_| Failure::new("unreachable", format!("no answer within {:?}", cp.timeout)))??;
    if !status.is_success() {
        return Err(Failure::new("bad_status", format!("answered {status}")));
    }
    // Fail closed: an answer (a 204 included, which acknowledges the
    // report) that is not proven to come from the holder of the token
    // changes nothing and acknowledges nothing.
    if cp.mode == SyncMode::Tollgate {
        signature::verify(
            cp.token.expose().as_bytes(),
            &nonce,
            &body,
            mac.as_ref().map(http::HeaderValue::as_bytes),
        )
        .map_err(|e| Failure::new("bad_signature", e.to_string()))?;
    }
    let answer = if status == StatusCode::NO_CONTENT && cp.mode == SyncMode::Tollgate {
        None
    } else {
        Some(body)
    };
    let token = cp.token.clone();
    let mode = cp.mode;
    let s = shared.clone();
    let (changed, ended, gap) = tokio::task::spawn_blocking(move || {
        let answer = match (mode, answer) {
            (_, None) => return Ok((false, Vec::new(), None)),
            (SyncMode::Tollgate, Some(body)) => {
                protocol::parse_answer(&body, held, |b| s.store.layer_from_json(b))
                    .map_err(|e| Failure::new("bad_answer", e.to_string()))?
            }
            (SyncMode::NimblePpv, Some(body)) => {
                let puzzle = puzzle.unwrap_or_default();
                let ids = crate::sync::ppv::verify_answer(&body, &puzzle, token.expose()).map_err(
                    |e| match e {
                        crate::sync::ppv::PpvError::SolutionMismatch => {
                            Failure::new("bad_solution", e.to_string())
                        }
                        _ => Failure::new("bad_answer", e.to_string()),
                    },
                )?;
                let deny = Blocklist {
                    users: ids,
                    ..Blocklist::default()
                };
                let layer = protocol::deny_layer(deny.clone())
                    .map_err(|e| Failure::new("bad_answer", e.to_string()))?;
                Answer {
                    version: 0,
                    change: Change::Unchanged,
                    deny: Some((deny, layer)),
                }
            }
        };
        apply(&s, answer)
    })
    .await
    .map_err(|e| Failure::new("storage", format!("apply task failed: {e}")))??;
    for user in &ended {
        shared.end_user_sessions(user);
    }
    if !ended.is_empty()
        && let Err(e) = shared.save_revocations_async().await
    {
        tracing::error!(error = %e, "revocations not saved in the state dir");
    }
    // An authentic, well-formed answer acknowledges the report, even one
    // whose delta could not be used.
    usage.delivered(&lines);
    match gap {
        Some(f) => Err(f),
        None => Ok(changed),
    }
}

fn native_report(cp: &ControlPlaneConfig, held: Option<u64>, now: u64, lines: &[Line]) -> Vec<u8> {
    let report = Report {
        edge: &edge_id(cp),
        version: held,
        sent_at: crate::units::rfc3339(now),
        sessions: lines
            .iter()
            .map(|l| {
                let s = &l.session;
                SessionUsage {
                    id: crate::session::SessionId(s.id).to_string(),
                    user: s.user.as_deref(),
                    device: s.device.as_deref(),
                    route: &s.route,
                    channel: &s.channel,
                    ip: s.ip,
                    started: crate::units::rfc3339(s.started),
                    last_seen: crate::units::rfc3339(s.last_seen()),
                    viewed: l.viewed,
                    bytes: l.bytes,
                    viewed_total: l.viewed_total,
                    bytes_total: l.bytes_total,
                    ended: l.ended,
                }
            })
            .collect(),
    };
    serde_json::to_vec(&report).unwrap_or_default()
}

fn nimble_report(cp: &ControlPlaneConfig, puzzle: &str, lines: &[Line]) -> Vec<u8> {
    // Nimble reports viewers by their wmsAuthSign id: sessions without a
    // user have nothing to bill or deny.
    let players: Vec<crate::sync::ppv::PlayerReport<'_>> = lines
        .iter()
        .filter_map(|l| {
            let s = &l.session;
            let id = s.user.as_deref()?;
            Some(crate::sync::ppv::PlayerReport {
                application: &s.route,
                stream: if s.channel.is_empty() {
                    &s.route
                } else {
                    &s.channel
                },
                id,
                ip: s.ip.to_string(),
                session_id: crate::session::SessionId(s.id).to_string(),
                delta_ms: l.viewed.saturating_mul(1000),
                bytes_sent: l.bytes_total,
            })
        })
        .collect();
    let body = crate::sync::ppv::sync_body(
        &nimble_id(&edge_id(cp)),
        puzzle,
        cp.token.expose(),
        crate::sync::ppv::pay_per_view_info(&players),
    );
    serde_json::to_vec(&body).unwrap_or_default()
}

/// What applying an answer did: whether anything changed, the users whose
/// sessions must end now, and a delta refused for its version (the rest of
/// the answer, its deny list, still applied).
type Applied = (bool, Vec<String>, Option<Failure>);

/// Apply an accepted answer (blocking: compiles and saves).
fn apply(shared: &Shared, answer: Answer) -> Result<Applied, Failure> {
    let storage = |e: ChangeError| match e {
        ChangeError::Invalid(p) => Failure::new("bad_answer", p.join("; ")),
        ChangeError::NotFound => Failure::new("bad_answer", "not found"),
        ChangeError::Storage(m) => Failure::new("storage", m),
    };
    let before = shared.sync.persisted();
    let mut next = before.clone();
    let users_before = shared.store.entitlements();
    let mut ended = Vec::new();
    let mut gap = None;
    match protocol::plan(before.version, answer.version, &answer.change) {
        Plan::Skip => {}
        Plan::Gap => {
            // Ask for a full snapshot next time; the deny list still applies.
            next.version = None;
            gap = Some(Failure::new(
                "version_gap",
                format!(
                    "delta is not from version {:?}; asking for a full snapshot",
                    before.version
                ),
            ));
        }
        Plan::Apply => {
            let cp = crate::audit::Who::ControlPlane;
            let version = answer.version;
            match answer.change {
                Change::Full(ents) => {
                    let users = ents.len();
                    shared.store.replace_all(*ents).map_err(storage)?;
                    let detail = format!("version {version}: {users} users");
                    crate::audit::record(cp, "replace", "snapshot", "", &detail);
                }
                Change::Delta(delta) => {
                    let detail = format!(
                        "version {version} from {}: {} users, {} packages, {} channels{}",
                        delta.since,
                        delta.users.len(),
                        delta.packages.len(),
                        delta.channels.len(),
                        if delta.blocklist.is_some() {
                            ", the blocklist"
                        } else {
                            ""
                        },
                    );
                    shared
                        .store
                        .change(|s| {
                            delta.apply(s);
                            Ok(())
                        })
                        .map_err(storage)?;
                    crate::audit::record(cp, "apply", "delta", "", &detail);
                }
                Change::Unchanged => {}
            }
            next.version = Some(answer.version);
            // Users the control plane dropped: end their sessions now (a
            // capability alone would otherwise carry them on).
            let users_after = shared.store.entitlements();
            for s in shared.sessions.list() {
                if let Some(u) = s.user.as_deref()
                    && users_before.user(u).is_some()
                    && users_after.user(u).is_none()
                    && !ended.iter().any(|e| e == u)
                {
                    ended.push(u.to_owned());
                }
            }
        }
    }
    let mut deny_layer = None;
    if let Some((list, layer)) = answer.deny
        && list != next.deny
    {
        let was: std::collections::HashSet<&str> =
            next.deny.users.iter().map(String::as_str).collect();
        ended.extend(
            list.users
                .iter()
                .filter(|u| !was.contains(u.as_str()))
                .cloned(),
        );
        let detail = format!(
            "{} users, {} tokens, {} networks",
            list.users.len(),
            list.tokens.len(),
            list.ips.len()
        );
        next.deny = list;
        deny_layer = Some((layer, detail));
    }
    let changed = next != before;
    if changed {
        let dir = shared.live().config.state_dir.clone();
        crate::persist::save_named(&dir, FILE_NAME, &next)
            .map_err(|e| Failure::new("storage", e.to_string()))?;
        hold(shared, next);
        // Last, so whoever sees the new deny list also sees the figures.
        if let Some((layer, detail)) = deny_layer {
            shared.store.set_deny(layer);
            crate::audit::record(
                crate::audit::Who::ControlPlane,
                "put",
                "deny_list",
                "",
                &detail,
            );
        }
    }
    Ok((changed, ended, gap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_have_the_version_shape() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
        assert_ne!(uuid_v4(), u);
        let n = nimble_id("edge-1");
        assert_eq!(n, nimble_id("edge-1"));
        assert_ne!(n, nimble_id("edge-2"));
        assert_eq!(&n[14..15], "5");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let mut cp = crate::config::Config::parse(
            r#"
            [[origin]]
            name = "o"
            url = "http://127.0.0.1:1"
            [[route]]
            name = "r"
            prefix = "/"
            origin = "o"
            auth = ["ip"]
            [control_plane]
            url = "http://127.0.0.1:2/sync"
            token = "t"
            interval = "2s"
            max_backoff = "30s"
            "#,
            std::path::Path::new("."),
        )
        .expect("config")
        .control_plane
        .expect("control plane");
        assert_eq!(next_wait(&cp, 0), Duration::from_secs(2));
        for (failures, full) in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (40, 30)] {
            let w = next_wait(&cp, failures);
            let full = Duration::from_secs(full);
            assert!(w <= full && w >= full.mul_f64(0.75), "{failures}: {w:?}");
        }
        cp.max_stale = None;
        let status = Status::default();
        status.started(40);
        assert_eq!(
            status.not_ready(&cp, 100),
            Some("no control-plane state yet\n")
        );
        status.update(|h| h.loaded = true);
        assert_eq!(status.not_ready(&cp, 100), None);
        cp.max_stale = Some(Duration::from_secs(30));
        // Loaded at start, never synced since: stale 30 s after the start.
        assert_eq!(status.not_ready(&cp, 70), None);
        assert_eq!(
            status.not_ready(&cp, 71),
            Some("control-plane state is stale\n")
        );
        status.update(|h| h.last_success = Some(90));
        assert_eq!(status.not_ready(&cp, 120), None);
        assert_eq!(
            status.not_ready(&cp, 121),
            Some("control-plane state is stale\n")
        );
    }
}
