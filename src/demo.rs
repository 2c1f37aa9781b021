//! `tollgate demo`: the zero-setup main job. Starts the simulated live origin
//! ([`crate::simorigin`]) on a free loopback port, the proxy in front of it
//! with a built-in config, and prints URLs that ffplay and VLC can open.
//!
//! Everything listens on 127.0.0.1 only. The demo config opens the route to
//! loopback viewers through the `ip` method and encrypts the stream
//! (AES-128, keys derived from a master secret made fresh for each run), so
//! what a player gets is exactly what a production edge serves: rewritten
//! playlists carrying a session capability, encrypted segments, and a key
//! endpoint.

use std::io::Write as _;
use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::server::{self, Control, Listeners};
use crate::simorigin::{SimOrigin, SimOriginOptions};

/// The demo proxy's config for an origin at `origin`.
pub fn demo_config(
    listen: SocketAddr,
    admin: SocketAddr,
    origin: SocketAddr,
    master_hex: &str,
    admin_token: &str,
) -> String {
    format!(
        r#"# tollgate demo configuration (generated)
[server]
listen = ["{listen}"]
shutdown_grace = "5s"

[admin]
listen = "{admin}"
token = "{admin_token}"

[ip]
allow = ["127.0.0.0/8", "::1/128"]

[keys]
master = "hex:{master_hex}"
rotate_every = "1m"

[[origin]]
name = "sim"
url = "http://{origin}"

[[route]]
name = "live"
prefix = "/live/"
origin = "sim"
channel = 1
auth = ["token", "ip"]
encrypt = true

# The IPTV layer (docs/iptv.md): two channels with an hour of catch-up,
# and a user whose channel list is /playlist.m3u8?token={DEMO_TOKEN}.
[[channel]]
name = "ch1"
title = "Demo One"
group = "Demo"
tags = ["demo"]
dvr_depth = "1h"

[[channel]]
name = "ch2"
title = "Demo Two"
group = "Demo"
tags = ["demo"]
dvr_depth = "1h"

[[package]]
name = "demo"
tags = ["demo"]

[[user]]
id = "viewer"
tokens = ["{DEMO_TOKEN}"]
packages = ["demo"]
"#
    )
}

/// The demo user's token (its channel list is `/playlist.m3u8?token=…`).
pub const DEMO_TOKEN: &str = "demo-token";

/// Run the demo until `control` says stop or drain.
pub async fn run(listen: SocketAddr, admin: SocketAddr, control: Control) -> anyhow::Result<()> {
    // Two hours of archive, so catch-up plays at once.
    let options = SimOriginOptions {
        dvr: std::time::Duration::from_secs(2 * 3600),
        ..SimOriginOptions::default()
    };
    let channels = options.channels.clone();
    let origin = SimOrigin::new(options);
    let origin_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the simulated origin")?;
    let origin_addr = origin_listener.local_addr()?;
    let origin_stop = CancellationToken::new();
    let origin_task = tokio::spawn(origin.serve(origin_listener, origin_stop.clone()));

    // The console's token: random, printed once (the admin listener is on
    // loopback unless --admin says otherwise).
    let admin_token = random_hex()?
        .get(..24)
        .map(str::to_owned)
        .unwrap_or_default();
    let config = Config::parse(
        &demo_config(listen, admin, origin_addr, &random_hex()?, &admin_token),
        std::path::Path::new("."),
    )
    .map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let listeners = Listeners::bind(&config).await.context(
        "the demo needs its ports free; pass --listen 127.0.0.1:PORT / --admin 127.0.0.1:PORT",
    )?;
    let proxy_addr = listeners
        .http
        .first()
        .map(TcpListener::local_addr)
        .transpose()?;
    let admin_addr = listeners
        .admin
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    if let (Some(proxy), Some(admin)) = (proxy_addr, admin_addr) {
        print_banner(proxy, admin, &admin_token, origin_addr, &channels);
    }
    let result = server::run(config, listeners, control).await;
    origin_stop.cancel();
    let _ = origin_task.await;
    result
}

/// 32 random bytes as hex: the demo's master secret.
fn random_hex() -> anyhow::Result<String> {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no system randomness for the demo's master key"))?;
    Ok(hex::encode(bytes))
}

fn print_banner(
    proxy: SocketAddr,
    admin: SocketAddr,
    admin_token: &str,
    origin: SocketAddr,
    channels: &[String],
) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "tollgate demo");
    let _ = writeln!(out, "  console               : http://{admin}/");
    let first = channels.first().map_or("ch1", String::as_str);
    let _ = writeln!(
        out,
        "  player                : http://{admin}/console/player.html?channel={first}&user=viewer"
    );
    let _ = writeln!(out, "  admin token           : {admin_token}");
    let _ = writeln!(
        out,
        "  simulated live origin : http://{origin}/live/<channel>/index.m3u8"
    );
    let _ = writeln!(out, "  proxy                 : http://{proxy}");
    let _ = writeln!(out, "  metrics               : http://{admin}/metrics");
    let _ = writeln!(out, "Play (any of):");
    for ch in channels {
        let _ = writeln!(out, "  ffplay http://{proxy}/live/{ch}/index.m3u8");
    }
    if let Some(ch) = channels.first() {
        let _ = writeln!(out, "  vlc http://{proxy}/live/{ch}/index.m3u8");
        let from = crate::clock::unix_now().saturating_sub(600);
        let _ = writeln!(
            out,
            "Catch-up (5 minutes from 10 minutes ago; Flussonic URL forms):"
        );
        let _ = writeln!(
            out,
            "  ffplay http://{proxy}/live/{ch}/index-{from}-300.m3u8"
        );
    }
    let _ = writeln!(out, "Channel list (VLC, Kodi, TiviMate):");
    let _ = writeln!(out, "  vlc http://{proxy}/playlist.m3u8?token={DEMO_TOKEN}");
    let _ = writeln!(
        out,
        "Segments are AES-128 encrypted on the fly; keys come from http://{proxy}/.tollgate/key/..."
    );
    let _ = writeln!(out, "Ctrl-C stops; SIGTERM drains.");
    let _ = out.flush();
}
