//! Unit tests, table-driven: known answers computed independently with
//! Python (`vectors`), the master and its derived values (`derivation`),
//! capabilities (`tokens`) and segment tags (`tags`). Property tests
//! (tampering, arbitrary input) are in `props.rs`. This file holds the
//! shared fixtures.

mod derivation;
mod tags;
mod tokens;
mod vectors;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::keys::{LABEL_CAP, LABEL_CONT, LABEL_SID, LABEL_TAG, derive_for_test};
use super::*;

/// `hex:000102…1f`, the master of the vectors.
fn master() -> Vec<u8> {
    (0u8..32).collect()
}

fn keys() -> MasterKeys {
    MasterKeys::new(&master())
}

const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
const V4_OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8));
const V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));

fn scope(ip: IpAddr) -> Scope<'static> {
    Scope {
        route: "live",
        channel: "ch1",
        client_ip: ip,
    }
}

fn claims(user: Option<&str>, bind_ip: bool) -> Claims {
    Claims {
        sid: 0x0123_4567_89ab_cdef,
        expires: 1_700_000_000,
        user: user.map(str::to_owned),
        bind_ip: if bind_ip {
            Binding::Address
        } else {
            Binding::Unbound
        },
        device: None,
    }
}

const NOW: u64 = 1_600_000_000;
