//! Per-user channel lists (SPEC §7.5): the extended M3U a player (VLC,
//! Kodi, TiviMate, ffmpeg) starts from, as the Flussonic IPTV plugin
//! exports and Cesbo Astra hands out with `playlist.m3u8?token=`.
//!
//! ```text
//! #EXTM3U
//! #EXTINF:-1 tvg-id="ch1" tvg-name="Channel One" tvg-logo="…" group-title="News" catchup="flussonic" catchup-days="3",Channel One
//! https://edge.example/live/ch1/index.m3u8?token=…
//! ```
//!
//! Pure core: the shell (`proxy::channel_list`) authenticates the viewer
//! and picks the channels; this renders them. Titles, groups and logos
//! were validated when the channel was set (no `"`, no control character),
//! so they are written as they are.

use std::fmt::Write as _;

use crate::entitlements::Listed as Item;

/// Where each channel's URL points: `{base}{prefix}{channel}/{file}?{credential}`.
#[derive(Debug, Clone, Copy)]
pub struct Links<'a> {
    /// `https://edge.example` (no trailing `/`).
    pub base: &'a str,
    /// The route's prefix (`/live/`; with or without the last `/`).
    pub prefix: &'a str,
    /// `index.m3u8`.
    pub file: &'a str,
    /// The viewer's credential as a query: `token=…` (already encoded).
    pub credential: &'a str,
}

/// The `audio/x-mpegurl` body listing `items` in order.
pub fn render<'a>(items: impl IntoIterator<Item = Item<'a>>, links: &Links<'_>) -> String {
    let mut out = String::from("#EXTM3U\n");
    for item in items {
        let c = item.channel;
        let title = if c.title.is_empty() {
            item.name
        } else {
            &c.title
        };
        let _ = write!(
            out,
            "#EXTINF:-1 tvg-id=\"{}\" tvg-name=\"{title}\"",
            item.name
        );
        if !c.logo.is_empty() {
            let _ = write!(out, " tvg-logo=\"{}\"", c.logo);
        }
        if !c.group.is_empty() {
            let _ = write!(out, " group-title=\"{}\"", c.group);
        }
        if item.dvr_depth > 0 {
            // Whole days, rounded up: players offer catch-up only with one.
            let days = item.dvr_depth.div_ceil(86_400);
            let _ = write!(out, " catchup=\"flussonic\" catchup-days=\"{days}\"");
        }
        let _ = writeln!(out, ",{title}");
        let _ = writeln!(
            out,
            "{}{}/{}/{}?{}",
            links.base,
            links.prefix.trim_end_matches('/'),
            item.name,
            links.file,
            links.credential
        );
    }
    out
}

/// `name=value` with `value` percent-encoded (all but RFC 3986 unreserved
/// characters, [`crate::auth::query::percent_encode`]), for a credential
/// put back into the list's URLs.
pub fn query_pair(name: &str, value: &str) -> String {
    format!("{name}={}", crate::auth::query::percent_encode(value))
}

/// A `Host` header fit to be a URL's authority: a DNS name or an address,
/// with an optional port; anything else (a path, spaces, `@`) is not.
pub fn valid_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, _)) if !n.ends_with(']') && n.contains(':') => (host, None),
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    let name_ok = if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    name_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entitlements::Channel;

    #[test]
    fn lists_render_with_the_spec_attributes() {
        let one = Channel {
            title: "Channel One".into(),
            group: "News".into(),
            logo: "https://cdn.example/logos/ch1.png".into(),
            tags: vec!["news".into()],
            dvr_depth: Some("3d".into()),
            regions: vec![],
        };
        let bare = Channel::default();
        let links = Links {
            base: "https://edge.example",
            prefix: "/live/",
            file: "index.m3u8",
            credential: "token=t%2B1",
        };
        let text = render(
            [
                Item {
                    name: "ch1",
                    channel: &one,
                    dvr_depth: 3 * 86_400,
                },
                Item {
                    name: "ch2",
                    channel: &bare,
                    dvr_depth: 0,
                },
                Item {
                    name: "ch3",
                    channel: &bare,
                    dvr_depth: 3600,
                },
            ],
            &links,
        );
        assert_eq!(
            text,
            "#EXTM3U\n\
             #EXTINF:-1 tvg-id=\"ch1\" tvg-name=\"Channel One\" tvg-logo=\"https://cdn.example/logos/ch1.png\" group-title=\"News\" catchup=\"flussonic\" catchup-days=\"3\",Channel One\n\
             https://edge.example/live/ch1/index.m3u8?token=t%2B1\n\
             #EXTINF:-1 tvg-id=\"ch2\" tvg-name=\"ch2\",ch2\n\
             https://edge.example/live/ch2/index.m3u8?token=t%2B1\n\
             #EXTINF:-1 tvg-id=\"ch3\" tvg-name=\"ch3\" catchup=\"flussonic\" catchup-days=\"1\",ch3\n\
             https://edge.example/live/ch3/index.m3u8?token=t%2B1\n"
        );
        assert_eq!(render([], &links), "#EXTM3U\n");
    }

    #[test]
    fn credentials_are_encoded_and_hosts_checked() {
        assert_eq!(
            query_pair("token", "a b+c/\"\n~"),
            "token=a%20b%2Bc%2F%22%0A~"
        );
        assert_eq!(query_pair("auth", "ann:pw"), "auth=ann%3Apw");
        for ok in [
            "edge.example",
            "edge.example:8443",
            "127.0.0.1:8080",
            "[::1]:80",
            "[::1]",
            "localhost",
        ] {
            assert!(valid_host(ok), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "evil.example/x",
            "u@h",
            "h:",
            "h:99999",
            "h:x",
            "[zz]:1",
            "a\"b",
            "::1",
        ] {
            assert!(!valid_host(bad), "{bad}");
        }
    }
}
