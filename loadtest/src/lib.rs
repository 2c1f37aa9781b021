//! The load harness's scenarios as a library, so `tollgate-loadtest` and
//! the harness's own tests (loadtest/tests/) drive the same code.
//!
//! Layout, in the order a run uses it:
//! - [`cli`]: flags of `viewers` and `zap`, the table and the JSON file;
//! - [`entry`]: entry URLs minted with tollgate's own signing code;
//! - [`viewers`]: the `viewers` scenario and the run machinery (ramp,
//!   request budget, source addresses, progress, hard stop);
//! - [`zap`]: the `zap` scenario (channel switching, session counts
//!   through [`admin`]);
//! - [`player`]: one virtual player at real pace; [`playlist`] parses what
//!   it reads (m3u8-rs); [`client`] is its HTTP client;
//! - [`verify`]: the correctness sample (decrypt, compare with the origin);
//! - [`report`]: counters, HDR latency histograms, the table and the JSON.
//!
//! Every target is a loopback address: [`ensure_loopback`] refuses anything
//! else. Every run is bounded in time and in requests.

pub mod admin;
pub mod burst;
pub mod cli;
pub mod client;
pub mod entry;
pub mod player;
pub mod playlist;
pub mod report;
pub mod verify;
pub mod viewers;
pub mod zap;

use url::Url;

/// `Ok` when `url` is `http://` to a loopback address (or `localhost`).
pub fn ensure_loopback(url: &Url) -> Result<(), String> {
    if url.scheme() != "http" {
        return Err(format!("{url}: only http:// targets are supported"));
    }
    ensure_loopback_host(url)
}

/// `Ok` when `url`'s host is a loopback address (or `localhost`), whatever
/// its scheme.
pub fn ensure_loopback_host(url: &Url) -> Result<(), String> {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "the load harness only targets loopback addresses, not {}",
            url.host_str().unwrap_or("(none)")
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_pass() {
        for ok in [
            "http://127.0.0.1:8080/",
            "http://127.9.9.9/",
            "http://[::1]:1/",
            "http://localhost/",
        ] {
            assert!(ensure_loopback(&Url::parse(ok).unwrap()).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1/",
            "http://example.com/",
            "https://127.0.0.1/",
            "http://[::2]/",
        ] {
            assert!(ensure_loopback(&Url::parse(bad).unwrap()).is_err(), "{bad}");
        }
        // The host check alone (burst, which also speaks https) takes any
        // scheme to loopback and nothing else.
        for (url, loopback) in [
            ("https://127.0.0.1:8443/", true),
            ("https://localhost/", true),
            ("http://[::1]/", true),
            ("https://10.0.0.1/", false),
            ("https://example.com/", false),
            ("https://[::2]/", false),
        ] {
            let got = ensure_loopback_host(&Url::parse(url).unwrap());
            assert_eq!(got.is_ok(), loopback, "{url}: {got:?}");
        }
    }
}
