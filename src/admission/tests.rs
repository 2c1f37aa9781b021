//! Admission without a server: the vouched-user rule, the deny list,
//! revocation, the limit policy and the fleet's share of the count.

use super::*;
use crate::entitlements::{Blocklist, Named, Package, Snapshot, User};

const NOW: u64 = 1_700_000_000;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// alice: sports only, 1 session; bob: disabled; the blocklist has mallory
/// and the token `stolen`.
fn ents() -> Entitlements {
    let user = |packages: &[&str], max_sessions, disabled| User {
        tokens: vec![],
        packages: packages.iter().map(|p| (*p).to_owned()).collect(),
        max_sessions,
        disabled,
        ..User::default()
    };
    Entitlements::build(Snapshot {
        users: Named(vec![
            ("alice".into(), user(&["sports"], 1, false)),
            ("bob".into(), user(&["sports"], 0, true)),
        ]),
        packages: [(
            "sports".to_owned(),
            Package {
                channels: vec!["sport-*".into()],
                ..Package::default()
            },
        )]
        .into(),
        blocklist: Blocklist {
            users: vec!["mallory".into()],
            tokens: vec!["stolen".into()],
            ips: vec![],
        },
        ..Snapshot::default()
    })
    .unwrap()
}

fn deny(users: &[&str], ips: &[&str]) -> Entitlements {
    Entitlements::build(Snapshot {
        blocklist: Blocklist {
            users: users.iter().map(|u| (*u).to_owned()).collect(),
            tokens: vec![],
            ips: ips.iter().map(|i| (*i).to_owned()).collect(),
        },
        ..Snapshot::default()
    })
    .unwrap()
}

fn request<'a>(sid: u64, user: Option<&'a str>, channel: &'a str) -> Request<'a> {
    Request {
        sid,
        user,
        device: None,
        expires: NOW + 60,
        route: "live",
        channel,
        client_ip: ip("192.0.2.10"),
        token: None,
        entry: true,
        vouched: false,
        limit: None,
        on_limit: Policy::Reject,
        fleet: false,
        archive_from: None,
        now: NOW,
        tombstone_until: NOW + 120,
    }
}

#[test]
fn catch_up_beyond_the_depth_is_refused_before_the_session_is_touched() {
    let ents = Entitlements::from_json_slice(
        br#"{
      "users": {"ann": {"packages": ["tariff"]}},
      "packages": {"tariff": {"tags": ["news"], "dvr_depth": "1h"}},
      "channels": {"ch1": {"tags": ["news"], "dvr_depth": "1d"}, "ch2": {"tags": ["news"]}}
    }"#,
    )
    .unwrap();
    let none = Entitlements::default();
    let (revocations, sessions) = (Revocations::default(), Sessions::new());
    let at = |channel, from: Option<u64>| Request {
        archive_from: from,
        ..request(7, Some("ann"), channel)
    };
    let admit_ = |r: &Request<'_>| admit(r, &ents, &none, &revocations, &sessions).map(|_| ());
    // The package caps the channel's day at an hour.
    assert_eq!(admit_(&at("ch1", Some(NOW - 3600))), Ok(()));
    let live = sessions.len();
    assert_eq!(admit_(&at("ch1", Some(NOW - 3601))), Err(Refusal::DvrDepth));
    assert_eq!(ProxyError::from(Refusal::DvrDepth).code(), "dvr_depth");
    // The refusal neither ended nor added a session.
    assert_eq!(sessions.len(), live);
    assert!(admit_(&at("ch1", None)).is_ok());
    // No depth on ch2: every archive form is refused; live plays.
    assert_eq!(admit_(&at("ch2", Some(NOW))), Err(Refusal::DvrDepth));
    assert_eq!(admit_(&at("ch2", None)), Ok(()));
    // Not entitled comes first.
    assert_eq!(
        admit_(&Request {
            archive_from: Some(NOW),
            ..request(8, Some("ann"), "ch3")
        }),
        Err(Refusal::Denied(Denial::NotEntitled))
    );
}

#[test]
fn grant_follows_the_vouched_user_rule() {
    let ents = ents();
    let none = Entitlements::default();
    // (user, vouched, token, channel, expected max_sessions or denial)
    type Row<'a> = (
        Option<&'a str>,
        bool,
        Option<&'a str>,
        &'a str,
        Result<u32, Denial>,
    );
    let table: [Row<'_>; 11] = [
        // A listed user meets their packages, whatever the route vouches.
        (Some("alice"), false, None, "sport-1", Ok(1)),
        (Some("alice"), true, None, "sport-1", Ok(1)),
        (
            Some("alice"),
            false,
            None,
            "news-1",
            Err(Denial::NotEntitled),
        ),
        (
            Some("alice"),
            true,
            None,
            "news-1",
            Err(Denial::NotEntitled),
        ),
        (Some("bob"), true, None, "sport-1", Err(Denial::Forbidden)),
        // An unlisted user the route vouches for meets only the blocklist,
        // unlimited.
        (Some("wms-42"), true, None, "news-1", Ok(0)),
        (Some("mallory"), true, None, "sport-1", Err(Denial::Blocked)),
        (
            Some("wms-42"),
            true,
            Some("stolen"),
            "sport-1",
            Err(Denial::Blocked),
        ),
        // An unlisted user nobody vouches for is refused (a deleted user's
        // capability).
        (
            Some("wms-42"),
            false,
            None,
            "sport-1",
            Err(Denial::Forbidden),
        ),
        // Anonymous viewers answer to the blocklist only.
        (None, false, None, "news-1", Ok(0)),
        (None, false, Some("stolen"), "news-1", Err(Denial::Blocked)),
    ];
    for (user, vouched, token, channel, want) in table {
        let mut req = request(1, user, channel);
        req.vouched = vouched;
        req.token = token;
        let got = grant(&req, &ents, &none).map(|g| g.max_sessions);
        assert_eq!(
            got, want,
            "{user:?} vouched={vouched} token={token:?} {channel}"
        );
    }
}

#[test]
fn the_deny_list_comes_first() {
    let ents = ents();
    let req = request(1, Some("alice"), "sport-1");
    assert_eq!(
        grant(&req, &ents, &deny(&["alice"], &[])).map(|g| g.max_sessions),
        Err(Denial::Blocked)
    );
    assert_eq!(
        grant(&req, &ents, &deny(&[], &["192.0.2.0/24"])).map(|g| g.max_sessions),
        Err(Denial::IpDenied)
    );
    // An unlisted, unvouched user denied by address hears ip_denied, not
    // forbidden: the deny list decides first.
    let stranger = request(1, Some("nobody"), "sport-1");
    assert_eq!(
        grant(&stranger, &ents, &deny(&[], &["192.0.2.10"])).map(|g| g.max_sessions),
        Err(Denial::IpDenied)
    );
}

#[test]
fn policy_table() {
    let limit = |evict_oldest| {
        Some(SessionLimit {
            max: 2,
            evict_oldest,
        })
    };
    let table = [
        (None, Policy::Reject, Policy::Reject),
        (None, Policy::EvictOldest, Policy::EvictOldest),
        (limit(false), Policy::Reject, Policy::Reject),
        (limit(false), Policy::EvictOldest, Policy::EvictOldest),
        (limit(true), Policy::Reject, Policy::EvictOldest),
        (limit(true), Policy::EvictOldest, Policy::EvictOldest),
    ];
    for (limit, on_limit, want) in table {
        assert_eq!(policy(limit, on_limit), want, "{limit:?} {on_limit:?}");
    }
}

fn run(
    req: &Request<'_>,
    revocations: &Revocations,
    sessions: &Sessions,
) -> Result<Admit, Refusal> {
    admit(
        req,
        &ents(),
        &Entitlements::default(),
        revocations,
        sessions,
    )
}

#[test]
fn limits_reject_or_evict_and_the_method_limit_wins() {
    let (revocations, sessions) = (Revocations::default(), Sessions::new());
    let first = run(
        &request(1, Some("alice"), "sport-1"),
        &revocations,
        &sessions,
    )
    .unwrap();
    assert_eq!(first.admitted, Admitted::Created { evicted: vec![] });
    assert_eq!((first.max, first.policy), (1, Policy::Reject));
    // The same session again is the live one.
    let again = run(
        &request(1, Some("alice"), "sport-1"),
        &revocations,
        &sessions,
    )
    .unwrap();
    assert_eq!(again.admitted, Admitted::Existing);
    assert!(Arc::ptr_eq(&first.session, &again.session));
    // A second one is over alice's max_sessions = 1.
    let second = run(
        &request(2, Some("alice"), "sport-2"),
        &revocations,
        &sessions,
    );
    assert_eq!(second.unwrap_err(), Refusal::Session(Refused::Limit));
    assert_eq!(
        ProxyError::from(Refusal::Session(Refused::Limit)),
        ProxyError::SessionLimit
    );
    // on_limit = evict_oldest ends the first.
    let mut evict = request(2, Some("alice"), "sport-2");
    evict.on_limit = Policy::EvictOldest;
    let second = run(&evict, &revocations, &sessions).unwrap();
    assert_eq!(second.admitted, Admitted::Created { evicted: vec![1] });
    // The evicted capability comes back (not an entry): session_evicted.
    let mut old = request(1, Some("alice"), "sport-1");
    old.entry = false;
    let refused = run(&old, &revocations, &sessions).unwrap_err();
    assert_eq!(refused, Refusal::Session(Refused::Ended));
    assert_eq!(ProxyError::from(refused), ProxyError::SessionEvicted);
    // A method's X-Max-Sessions replaces the user's own limit.
    let mut more = request(3, Some("alice"), "sport-3");
    more.limit = Some(SessionLimit {
        max: 5,
        evict_oldest: false,
    });
    assert_eq!(run(&more, &revocations, &sessions).unwrap().max, 5);
}

#[test]
fn revoked_sessions_stay_out_until_their_cutoff() {
    let (revocations, sessions) = (Revocations::default(), Sessions::new());
    revocations.revoke(7, NOW + 60, Reason::Blocked, NOW);
    let req = request(7, Some("alice"), "sport-1");
    let refused = run(&req, &revocations, &sessions).unwrap_err();
    assert_eq!(refused, Refusal::Revoked(Reason::Blocked));
    assert_eq!(ProxyError::from(refused), ProxyError::Blocked);
    assert_eq!(sessions.len(), 0, "a revoked request creates no session");
    // A capability minted past the cutoff (fresh credentials) is let in.
    let mut fresh = req;
    fresh.expires = NOW + 61;
    assert!(run(&fresh, &revocations, &sessions).is_ok());
    // Denied before revocation is even asked.
    let mut denied = request(8, Some("alice"), "news-1");
    denied.expires = NOW;
    revocations.revoke(8, NOW + 60, Reason::Ended, NOW);
    assert_eq!(
        run(&denied, &revocations, &sessions).unwrap_err(),
        Refusal::Denied(Denial::NotEntitled)
    );
}

#[test]
fn with_a_fleet_store_the_edge_does_not_count() {
    let (revocations, sessions) = (Revocations::default(), Sessions::new());
    let mut a = request(1, Some("alice"), "sport-1");
    a.fleet = true;
    let mut b = request(2, Some("alice"), "sport-2");
    b.fleet = true;
    run(&a, &revocations, &sessions).unwrap();
    // Over max_sessions = 1, but the fleet store decides: the edge admits
    // and hands the limit on.
    let second = run(&b, &revocations, &sessions).unwrap();
    assert_eq!((second.max, second.policy), (1, Policy::Reject));
    assert_eq!(sessions.len(), 2);
    // Anonymous viewers are never limited, fleet or not.
    let anon = run(&request(3, None, "news-1"), &revocations, &sessions).unwrap();
    assert_eq!(anon.max, 0);
}
