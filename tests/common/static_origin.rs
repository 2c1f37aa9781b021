//! A real hyper origin on 127.0.0.1:0 serving the files of one directory,
//! the way a VOD origin (nginx, a CDN bucket) would, instrumented for tests.
//!
//! Serves `GET`/`HEAD /<relative path>` from the root: the Content-Type of
//! the extension (`.m3u8` → `application/vnd.apple.mpegurl`, `.ts` →
//! `video/mp2t`, `.mp4`/`.m4s` → `video/mp4`, `.key` →
//! `application/octet-stream`), `Content-Length`, and one `Range: bytes=`
//! range answered 206 (several ranges are answered 200 with the whole file,
//! as RFC 9110 allows; an unsatisfiable one 416). Paths with `..` are 404.
//!
//! Instruments: per-path request counters, every request's path and query
//! (built on [`super::start_origin`], which records them), an optional delay
//! before each answer (so concurrent requests overlap), and optional gzip of
//! playlists ([`Gzip`]), with a count of gzipped answers.
//!
//! Invariant: the files are read per request, so a test may write into the
//! root while the origin runs.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use super::{OriginBody, TestOrigin, full, start_origin};

/// When the origin gzips `.m3u8` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Gzip {
    /// Never (the default).
    Off = 0,
    /// When the request's `Accept-Encoding` lists gzip.
    IfAccepted = 1,
    /// Always, whatever the request accepts (a misconfigured origin).
    Always = 2,
}

#[derive(Debug)]
struct State {
    root: PathBuf,
    counts: Mutex<HashMap<String, u64>>,
    delay_ms: AtomicU64,
    gzip: AtomicU8,
    gzipped: AtomicU64,
}

/// The running origin; stops when dropped.
pub struct StaticOrigin {
    pub origin: TestOrigin,
    state: Arc<State>,
}

impl StaticOrigin {
    /// Serve `root` on 127.0.0.1:0.
    pub async fn start(root: impl Into<PathBuf>) -> Self {
        let state = Arc::new(State {
            root: root.into(),
            counts: Mutex::new(HashMap::new()),
            delay_ms: AtomicU64::new(0),
            gzip: AtomicU8::new(Gzip::Off as u8),
            gzipped: AtomicU64::new(0),
        });
        let handler_state = state.clone();
        let origin = start_origin(move |req: Request<Incoming>| {
            let state = handler_state.clone();
            async move { state.answer(&req).await }
        })
        .await;
        Self { origin, state }
    }

    pub fn addr(&self) -> SocketAddr {
        self.origin.addr
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.origin.addr)
    }

    /// Requests seen for `path` (no query), whatever their answer.
    pub fn count(&self, path: &str) -> u64 {
        self.state
            .counts
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Every request's path and query, in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.origin.seen_paths()
    }

    /// Every request's path and query with its headers, in arrival order.
    pub fn requests_with_headers(&self) -> Vec<(String, http::HeaderMap)> {
        self.origin
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| (s.path_and_query.clone(), s.headers.clone()))
            .collect()
    }

    /// The headers of every request for `path` (no query), in order.
    pub fn request_headers(&self, path: &str) -> Vec<http::HeaderMap> {
        self.origin
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path_and_query.split('?').next() == Some(path))
            .map(|s| s.headers.clone())
            .collect()
    }

    /// Wait this long before answering each request from now on.
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap();
        self.state.delay_ms.store(ms, Ordering::SeqCst);
    }

    pub fn set_gzip(&self, gzip: Gzip) {
        self.state.gzip.store(gzip as u8, Ordering::SeqCst);
    }

    /// Playlist answers sent gzip-encoded so far.
    pub fn gzipped(&self) -> u64 {
        self.state.gzipped.load(Ordering::SeqCst)
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("ts") => "video/mp2t",
        Some("mp4" | "m4s") => "video/mp4",
        Some("key") => "application/octet-stream",
        _ => "application/octet-stream",
    }
}

fn status(code: StatusCode, body: &'static str) -> Response<OriginBody> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len() as u64));
    resp
}

/// One `bytes=` range of a file of `len` bytes: `Some(Ok(start..end))`,
/// `Some(Err(()))` when unsatisfiable, `None` when absent or not one range.
fn parse_range(value: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        if suffix == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(suffix), len)
    } else {
        let start: u64 = first.parse().ok()?;
        let end = if last.is_empty() {
            len
        } else {
            let last: u64 = last.parse().ok()?;
            if last < start {
                return None;
            }
            (last + 1).min(len)
        };
        (start, end)
    };
    if range.0 >= len {
        return Some(Err(()));
    }
    Some(Ok(range))
}

fn accepts_gzip(req: &Request<Incoming>) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

impl State {
    async fn answer(&self, req: &Request<Incoming>) -> Response<OriginBody> {
        let path = req.uri().path().to_owned();
        *self.counts.lock().unwrap().entry(path.clone()).or_default() += 1;
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return status(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        let rel = Path::new(path.trim_start_matches('/'));
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return status(StatusCode::NOT_FOUND, "not found\n");
        }
        let file = self.root.join(rel);
        let data = match tokio::fs::read(&file).await {
            Ok(data) => data,
            Err(_) => return status(StatusCode::NOT_FOUND, "not found\n"),
        };
        let len = data.len() as u64;
        let mut code = StatusCode::OK;
        let mut content_range = None;
        let mut body = data;
        let range = req
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_range(v, len));
        match range {
            Some(Ok((start, end))) => {
                code = StatusCode::PARTIAL_CONTENT;
                content_range = Some(format!("bytes {start}-{}/{len}", end - 1));
                body =
                    body[usize::try_from(start).unwrap()..usize::try_from(end).unwrap()].to_vec();
            }
            Some(Err(())) => {
                let mut resp = status(StatusCode::RANGE_NOT_SATISFIABLE, "");
                resp.headers_mut().insert(
                    header::CONTENT_RANGE,
                    format!("bytes */{len}").parse().unwrap(),
                );
                return resp;
            }
            None => {}
        }
        let is_playlist = file.extension().and_then(|e| e.to_str()) == Some("m3u8");
        let gzip = match self.gzip.load(Ordering::SeqCst) {
            1 => accepts_gzip(req),
            2 => true,
            _ => false,
        };
        let gzip = gzip && is_playlist && code == StatusCode::OK;
        if gzip {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(&body).unwrap();
            body = encoder.finish().unwrap();
            self.gzipped.fetch_add(1, Ordering::SeqCst);
        }
        let body_len = body.len() as u64;
        let mut resp = if req.method() == Method::HEAD {
            Response::new(full(Vec::new()))
        } else {
            Response::new(full(body))
        };
        *resp.status_mut() = code;
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(&file)),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Some(range) = content_range {
            headers.insert(header::CONTENT_RANGE, range.parse().unwrap());
        }
        if gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if is_playlist {
            headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        }
        resp
    }
}
