//! Origin playlists: fetched once per `cache.playlist_ttl` however many
//! sessions ask (coalesced), decoded (gzip/deflate), bounded by
//! `cache.max_playlist`, compiled into a [`crate::hls::Template`] and
//! rendered per session with that session's capability (docs/hls.md §6).
//!
//! The micro-cache is keyed by the origin URI (path and forwarded query,
//! so LL-HLS `_HLS_msn`/`_HLS_part` requests for the same part coalesce
//! too). It holds compiled templates, never rendered playlists: a rendered
//! playlist carries a session's capability and is sent `private, no-store`.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};

use crate::capability::{MasterKeys, Serve};
use crate::error::ProxyError;
use crate::hls::{self, Template};
use crate::incarnation::Incarnations;
use crate::origin::{Origin, OriginTimings};

/// What the origin answered for one playlist URI.
#[derive(Debug)]
pub enum Fetched {
    /// A playlist, compiled.
    Playlist {
        /// The compiled rewrite.
        template: Template,
        /// The origin's `Content-Type`, if it sent one.
        content_type: Option<HeaderValue>,
    },
    /// Any status but 200: passed through as is (decoded).
    Other {
        /// Origin status.
        status: StatusCode,
        /// Origin `Content-Type`.
        content_type: Option<HeaderValue>,
        /// Origin body (bounded by `max_playlist`).
        body: Bytes,
    },
}

/// Everything compiling one playlist needs besides its bytes.
pub struct Compile<'a> {
    /// Route name.
    pub route: &'a str,
    /// Channel name.
    pub channel: &'a str,
    /// Normalized proxy path of the playlist.
    pub path: &'a str,
    /// The route's origin.
    pub origin: &'a Origin,
    /// Whether the route encrypts.
    pub encrypt: bool,
    /// `keys.rotate_every` in seconds.
    pub rotate_every_secs: u64,
    /// Capability query parameter.
    pub cap_param: &'a str,
    /// Segment-tag query parameter.
    pub tag_param: &'a str,
    /// Key material.
    pub keys: &'a MasterKeys,
    /// Incarnation tracker.
    pub incarnations: &'a Incarnations,
    /// `cache.max_playlist`.
    pub max_bytes: usize,
    /// Unix seconds.
    pub now: u64,
    /// Until when key URIs written now may fetch their key (the expiry of
    /// a capability minted now).
    pub key_until: u64,
    /// The channel has catch-up: segments keyed by what they are, not
    /// where they are listed ([`hls::Encrypt::stable`]).
    pub stable: bool,
    /// Content-key generations (`POST /api/v1/keys/rotate`).
    pub rotations: Arc<crate::rotation::Rotations>,
}

/// The coalescing micro-cache of compiled origin playlists.
#[derive(Debug)]
pub struct PlaylistCache {
    cache: Option<moka::future::Cache<String, Arc<Fetched>>>,
}

impl PlaylistCache {
    /// Keep each origin answer for `ttl` (zero: fetch every time).
    pub fn new(ttl: Duration) -> Self {
        let cache = (!ttl.is_zero()).then(|| {
            moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build()
        });
        Self { cache }
    }

    /// The compiled answer for `uri`, fetching it at most once per TTL
    /// (fetch times recorded in `timings`).
    pub async fn get(
        &self,
        origin: &Arc<Origin>,
        uri: Uri,
        c: &Compile<'_>,
        timings: &OriginTimings,
    ) -> Result<Arc<Fetched>, ProxyError> {
        let Some(cache) = &self.cache else {
            return fetch(origin, uri, c, timings).await.map(Arc::new);
        };
        let key = cache_key(&uri);
        cache
            .try_get_with(key, async {
                fetch(origin, uri, c, timings).await.map(Arc::new)
            })
            .await
            .map_err(|e: Arc<ProxyError>| *e)
    }
}

/// The cache key of `uri`: its text, as `Uri`'s `Display` writes it, built
/// with plain copies (the formatter machinery cost more than the lookup).
fn cache_key(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or_default();
    let authority = uri.authority().map_or("", |a| a.as_str());
    let pq = uri.path_and_query().map_or("", |pq| pq.as_str());
    let mut key = String::with_capacity(scheme.len() + 3 + authority.len() + pq.len());
    if !scheme.is_empty() {
        key.push_str(scheme);
        key.push_str("://");
    }
    key.push_str(authority);
    key.push_str(pq);
    key
}

/// Fetch, decode and compile one origin playlist (within the origin's
/// total deadline, like every fetch).
pub async fn fetch(
    origin: &Origin,
    uri: Uri,
    c: &Compile<'_>,
    timings: &OriginTimings,
) -> Result<Fetched, ProxyError> {
    let req = Request::get(uri)
        .header(header::ACCEPT_ENCODING, "gzip, deflate")
        .body(Empty::<Bytes>::new())
        .map_err(|_| ProxyError::Internal)?;
    let resp = origin.send(req, timings).await?;
    let (parts, body) = resp.into_parts();
    from_response(parts, body, c).await
}

/// Read, decode and compile an origin answer whose head is `parts` (its
/// body, from [`Origin::send`], carries the fetch's timers).
pub async fn from_response<B>(
    parts: http::response::Parts,
    body: B,
    c: &Compile<'_>,
) -> Result<Fetched, ProxyError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<crate::body::BoxError>,
{
    let raw = read_bounded(body, c.max_bytes).await?;
    let encoding = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let decoded = decode(encoding.as_deref(), raw, c.max_bytes)?;
    let content_type = parts.headers.get(header::CONTENT_TYPE).cloned();
    if parts.status != StatusCode::OK {
        return Ok(Fetched::Other {
            status: parts.status,
            content_type,
            body: decoded,
        });
    }
    let template = compile(&decoded, c)?;
    Ok(Fetched::Playlist {
        template,
        content_type,
    })
}

/// Compile `body` for the route and channel in `c`.
pub fn compile(body: &[u8], c: &Compile<'_>) -> Result<Template, ProxyError> {
    match compile_as(body, c, c.stable) {
        // Catch-up keys need a date on every segment: position keys, with a
        // live incarnation, for a playlist without.
        Err(hls::RewriteError::Undated) => compile_as(body, c, false),
        other => other,
    }
    .map_err(|e| match e {
        hls::RewriteError::TooLarge => ProxyError::PlaylistTooLarge,
        _ => ProxyError::BadPlaylist,
    })
}

fn compile_as(body: &[u8], c: &Compile<'_>, stable: bool) -> Result<Template, hls::RewriteError> {
    let (key_prefix, key_path, generations);
    let encrypt = if c.encrypt {
        let secs = c.rotate_every_secs;
        // A master playlist gets no key lines: no incarnation to choose
        // (it still needs `Encrypt` for the clear tags of its session data).
        // Catch-up keys need no incarnation (hls::stable): 0, which no
        // live stream gets; their generations switch per period. A live
        // playlist's whole incarnation carries its generation now
        // (crate::rotation).
        let (inc, schedule) = match hls::media_window(body) {
            None => (0, Vec::new()),
            Some(_) if stable => {
                let schedule = c.rotations.schedule(c.channel, secs);
                let incs = schedule
                    .into_iter()
                    .map(|(first, g)| (first, crate::rotation::incarnation(0, g)))
                    .collect();
                (0, incs)
            }
            Some((first, last)) => {
                let rendition = format!("{}\u{0}{}\u{0}{}", c.route, c.channel, c.path);
                let inc = c.incarnations.observe(&rendition, first, last, c.now);
                let g = c.rotations.generation(c.channel, c.now, secs);
                (crate::rotation::incarnation(inc, g), Vec::new())
            }
        };
        generations = schedule;
        key_prefix = format!(
            "{}{}/{}/",
            crate::keyserver::uri::PREFIX,
            c.route,
            crate::path::encode_canonical(c.channel)
        );
        key_path = format!(
            "{}{}/{}/",
            crate::keyserver::uri::PREFIX,
            c.route,
            c.channel
        );
        Some(hls::Encrypt {
            inc,
            rotate_every_secs: secs,
            key_uri_prefix: &key_prefix,
            key_path_prefix: &key_path,
            generations: &generations,
            key_until: c.key_until,
            stable,
        })
    } else {
        None
    };
    let signer = Signer {
        keys: c.keys,
        route: c.route,
        channel: c.channel,
    };
    let authority = c.origin.config().url.authority().map_or("", |a| a.as_str());
    let scheme = c.origin.config().url.scheme_str().unwrap_or("http");
    let ctx = hls::Context {
        playlist_path: c.path,
        origin: hls::OriginBase {
            scheme,
            authority,
            base_path: c.origin.base_path(),
        },
        encrypt,
        cap_param: c.cap_param,
        tag_param: c.tag_param,
        signer: &signer,
        max_bytes: c.max_bytes,
    };
    hls::compile(body, &ctx)
}

/// Signs segment tags for one route and channel.
struct Signer<'a> {
    keys: &'a MasterKeys,
    route: &'a str,
    channel: &'a str,
}

impl hls::TagSigner for Signer<'_> {
    fn tag(&self, path: &str, query: &str, serve: &Serve) -> String {
        self.keys
            .sign_tag_with_query(self.route, self.channel, path, query, serve)
    }
}

/// Read a whole body, refusing more than `max` bytes.
async fn read_bounded<B>(body: B, max: usize) -> Result<Bytes, ProxyError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<crate::body::BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| body_error(&e.into()))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > max {
                return Err(ProxyError::PlaylistTooLarge);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

/// A playlist body that failed: past its total deadline is a timeout
/// (504), anything else the origin being unavailable (502).
fn body_error(e: &crate::body::BoxError) -> ProxyError {
    if e.is::<crate::body::DeadlineError>() {
        ProxyError::OriginTimeout
    } else {
        ProxyError::OriginUnavailable
    }
}

/// Undo `Content-Encoding`, refusing output larger than `max` (a zip bomb
/// is a too-large playlist, not an out-of-memory).
fn decode(encoding: Option<&str>, raw: Bytes, max: usize) -> Result<Bytes, ProxyError> {
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    let read = match encoding {
        None | Some("identity") | Some("") => return Ok(raw),
        Some("gzip") | Some("x-gzip") => flate2::read::MultiGzDecoder::new(&raw[..])
            .take(limit)
            .read_to_end(&mut out),
        Some("deflate") => {
            // HTTP "deflate" is zlib-wrapped; some servers send raw deflate.
            let zlib = flate2::read::ZlibDecoder::new(&raw[..])
                .take(limit)
                .read_to_end(&mut out);
            if zlib.is_err() {
                out.clear();
                flate2::read::DeflateDecoder::new(&raw[..])
                    .take(limit)
                    .read_to_end(&mut out)
            } else {
                zlib
            }
        }
        Some(_) => return Err(ProxyError::BadPlaylist),
    };
    read.map_err(|_| ProxyError::BadPlaylist)?;
    if out.len() > max {
        return Err(ProxyError::PlaylistTooLarge);
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn cache_key_is_the_uri_text() {
        let uris = [
            "http://127.0.0.1:8081/live/ch1/media.m3u8",
            "http://o.example/base/live/ch1/media.m3u8?_HLS_msn=5&x=%20",
            "http://o.example",
            "/relative/only.m3u8?q=1",
        ];
        for text in uris {
            let uri: Uri = text.parse().unwrap();
            assert_eq!(cache_key(&uri), uri.to_string(), "{text}");
        }
    }

    #[test]
    fn decodes_gzip_and_deflate_within_the_limit() {
        let text = b"#EXTM3U\n#EXTINF:2,\na.ts\n".repeat(10);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).unwrap();
        let gz = Bytes::from(gz.finish().unwrap());
        assert_eq!(
            decode(Some("gzip"), gz.clone(), 1 << 20).unwrap(),
            &text[..]
        );
        assert_eq!(
            decode(Some("gzip"), gz, text.len() - 1),
            Err(ProxyError::PlaylistTooLarge)
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&text).unwrap();
        let z = Bytes::from(z.finish().unwrap());
        assert_eq!(decode(Some("deflate"), z, 1 << 20).unwrap(), &text[..]);
        assert_eq!(
            decode(Some("br"), Bytes::from_static(b"x"), 10),
            Err(ProxyError::BadPlaylist)
        );
        assert_eq!(
            decode(Some("gzip"), Bytes::from_static(b"not gzip"), 10),
            Err(ProxyError::BadPlaylist)
        );
    }

    #[test]
    fn a_zip_bomb_is_too_large_not_out_of_memory() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b'#'; 50 << 20]).unwrap();
        let gz = Bytes::from(gz.finish().unwrap());
        assert!(gz.len() < 1 << 20);
        assert_eq!(
            decode(Some("gzip"), gz, 4 << 20),
            Err(ProxyError::PlaylistTooLarge)
        );
    }
}
