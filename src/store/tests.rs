//! The store's merge of the config's entitlements and the API layer.

use super::*;
use crate::entitlements::{Blocklist, Named, Package, User};

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
        ..Package::default()
    }
}

#[test]
fn api_users_and_packages_win_and_blocklists_join() {
    let config = Snapshot {
        users: Named(vec![
            ("alice".into(), user("a", &["cfg"])),
            ("carol".into(), user("c", &["cfg"])),
        ]),
        packages: [("cfg".to_owned(), package(&["cfg-*"]))].into(),
        blocklist: Blocklist {
            users: vec!["mallory".into()],
            tokens: vec!["stolen".into()],
            ips: vec!["192.0.2.0/24".into()],
        },
        ..Snapshot::default()
    };
    let api = Snapshot {
        users: Named(vec![("carol".into(), user("c2", &["api", "cfg"]))]),
        packages: [("api".to_owned(), package(&["api-*"]))].into(),
        blocklist: Blocklist {
            users: vec!["alice".into()],
            tokens: vec![],
            ips: vec!["198.51.100.7".into()],
        },
        ..Snapshot::default()
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
            users: Named(vec![("dave".into(), user("d", &["cfg"]))]),
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
