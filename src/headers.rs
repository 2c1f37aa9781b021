//! Header handling between viewer and origin (RFC 9110 §7.6.1): hop-by-hop
//! fields are removed in both directions, including any field a `Connection`
//! header names; `X-Forwarded-For` is appended; the client address is taken
//! from forwarding headers only when the peer is a trusted proxy.
//!
//! Pure functions over `http::HeaderMap`.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::ipnet_set::IpNetSet;

/// Fields that describe one connection and never cross a proxy.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Remove hop-by-hop fields, and every field listed in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Collect first: the names listed in Connection are removed after it.
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// Append `client` to `X-Forwarded-For` (creating it), as nginx's
/// `$proxy_add_x_forwarded_for` does.
pub fn append_forwarded_for(headers: &mut HeaderMap, client: IpAddr) {
    let name = HeaderName::from_static("x-forwarded-for");
    let existing: Vec<&str> = headers
        .get_all(&name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let value = if existing.is_empty() {
        client.to_string()
    } else {
        format!("{}, {client}", existing.join(", "))
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(name, v);
    }
}

/// The viewer's address: the TCP peer, unless the peer is a trusted proxy, in
/// which case the right-most `X-Forwarded-For` entry that is not itself a
/// trusted proxy (or else `X-Real-IP`). Unparsable entries stop the walk: an
/// attacker's garbage is never believed past a trusted hop.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &IpNetSet) -> IpAddr {
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    let xff: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut current = peer;
    for entry in xff.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) if trusted.contains(ip) => current = ip,
            Ok(ip) => return ip,
            Err(_) => return current,
        }
    }
    let real_ip = || {
        headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    };
    match real_ip() {
        Some(ip) if xff.is_empty() => ip,
        _ => current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_removed_including_connection_listed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("content-type", "video/mp2t"),
            ("content-length", "10"),
        ]);
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["content-type", "content-length"]);
    }

    #[test]
    fn xff_appended() {
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, "192.0.2.1".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "192.0.2.1");
        let mut h = map(&[("x-forwarded-for", "198.51.100.1")]);
        append_forwarded_for(&mut h, "192.0.2.1".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "198.51.100.1, 192.0.2.1");
    }

    #[test]
    fn client_ip_trusts_only_trusted_peers() {
        let trusted = IpNetSet::new(&["10.0.0.0/8".parse().unwrap()]);
        let h = map(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2")]);
        let untrusted_peer: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!(client_ip(untrusted_peer, &h, &trusted), untrusted_peer);
        let lb: IpAddr = "10.0.0.1".parse().unwrap();
        // Right-most non-trusted entry, not the spoofable left-most.
        assert_eq!(
            client_ip(lb, &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        let h = map(&[("x-real-ip", "198.51.100.8")]);
        assert_eq!(
            client_ip(lb, &h, &trusted),
            "198.51.100.8".parse::<IpAddr>().unwrap()
        );
        let h = map(&[("x-forwarded-for", "garbage, 10.0.0.3")]);
        assert_eq!(
            client_ip(lb, &h, &trusted),
            "10.0.0.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(lb, &HeaderMap::new(), &IpNetSet::default()), lb);
    }
}
