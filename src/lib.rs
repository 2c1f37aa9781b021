//! tollgate: a streaming edge auth proxy for HLS origins.
//!
//! `docs/architecture.md` draws the rooms and who may import whom; in
//! short, **cores** decide and never do I/O, read the clock or import
//! tokio/hyper; **shells** do the I/O around them.
//!
//! # Layout: the data path of one viewer request, in order
//!
//! 1. **accept**: [`server`] owns the listeners (plain HTTP/1.1 + h2c, HTTPS via
//!    [`tls`]), the connection cap, header limits and graceful drain.
//! 2. **route**: [`path`] normalizes the request path (percent-decoding, merged
//!    slashes, dot-segments) and refuses tricks; [`router`] picks the route by
//!    longest prefix and names the channel.
//! 3. **authenticate**: an entry request runs the route's methods in order
//!    ([`auth`]; [`ipnet_set`] backs the `ip` method, `auth::backend::client`
//!    asks the HTTP backends of the `backend` method); every later request
//!    carries the session capability that [`capability`] mints and checks
//!    without I/O (it also derives session ids, segment tags and content keys
//!    from `[keys] master`; [`secret`] keeps the secrets out of logs).
//! 4. **admit**: [`admission`] is the pure decision: [`entitlements`] (may
//!    the user watch this channel from this address: packages, expiry,
//!    blocklist; with how many sessions), how far back a catch-up request
//!    may reach ([`catchup`]), revocation ([`revocation`]) and the
//!    session table's limit ([`session`]); [`admit`] is its shell, which
//!    frees a refused viewer's slot and asks [`fleet`] to count the session
//!    across every edge through Redis; [`incarnation`] guards against key/IV
//!    reuse when an origin restarts.
//! 5. **fetch**: [`origin`] holds one pooled client per origin with connect,
//!    first-byte and idle-body timeouts; [`playlist_cache`] micro-caches and
//!    decodes origin playlists; [`segcache`] fetches and encrypts each segment
//!    once however many viewers ask; [`headers`] strips hop-by-hop headers and
//!    adds `X-Forwarded-For`; [`credentials`] strips the proxy's own query
//!    parameters.
//! 6. **rewrite or encrypt**: [`hls`] compiles a playlist into a template
//!    that renders per session (every URI gains the capability, key lines are
//!    injected); [`cbc`] is the streaming AES-128-CBC core; [`keyserver`]
//!    answers key URIs.
//! 7. **respond**: [`body`] streams bodies, aborting on origin failure;
//!    [`cors`] adds the headers browser players need; [`error`] is the one
//!    place that maps failures to status, code, blame and the error answer
//!    (viewer and admin API alike).
//! 8. **log**: [`access_log`] writes one JSON line; [`metrics`] names and counts.
//!
//! [`proxy`] is the one module that knows the order of these phases.
//! [`config`] parses and validates the TOML file (pure but for reading the
//! files it names); [`runtime`] holds the swappable live state, a
//! composition of narrow handles; [`store`] is the entitlement store the
//! admin API ([`admin`]) and the control plane ([`sync`], both protocols
//! under it) change; [`persist`] writes state files crash-safely in the
//! state dir. [`simorigin`] is the simulated live origin used by
//! `tollgate demo` and the load harness. [`sign`] makes the links
//! `tollgate sign` prints.

pub mod access_log;
pub mod admin;
pub mod admission;
pub mod admit;
pub mod audit;
pub mod auth;
pub mod body;
pub mod capability;
pub mod catchup;
pub mod cbc;
pub mod channel_list;
pub mod clock;
pub mod config;
pub mod cors;
pub mod credentials;
pub mod demo;
pub mod entitlements;
pub mod error;
pub mod fleet;
pub mod headers;
pub mod hls;
pub mod incarnation;
pub mod ipnet_set;
pub mod keyserver;
pub mod metrics;
pub mod origin;
pub mod path;
pub mod persist;
pub mod playlist_cache;
pub mod proxy;
pub mod ratelimit;
pub mod revocation;
pub mod rotation;
pub mod router;
pub mod runtime;
pub mod secret;
pub mod segcache;
pub mod server;
pub mod session;
pub mod sign;
pub mod simorigin;
pub mod store;
pub mod sync;
pub mod tls;
pub mod units;
pub mod zerocopy;
