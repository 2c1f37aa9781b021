//! The admin listener: `/metrics` (Prometheus text), `/livez`, `/readyz`,
//! `/healthz` without auth; `/api/v1/*` behind `Authorization: Bearer
//! <admin.token>` (compared in constant time). Kept separate from viewer
//! listeners so it can be bound to loopback or a management network, and it
//! keeps answering during a drain so orchestrators see `/readyz` go 503.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::error::{api_error, json_response};
use crate::runtime::{ChangeError, Shared};
use crate::session::SessionId;
use crate::zerocopy::SendPath;

mod console;
mod upload;

/// Answer one admin request (the listener's accept loop, budget and timers
/// are [`crate::server`]'s, shared with the viewer listeners).
pub async fn respond(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    answer(&shared, req).await
}

async fn answer(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path.starts_with("/api/") {
        return api(shared, req).await;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return if ["/metrics", "/livez", "/readyz", "/healthz"].contains(&path) {
            method_not_allowed("GET, HEAD")
        } else {
            api_error(StatusCode::NOT_FOUND, "not_found")
        };
    }
    if let Some(asset) = console::asset(path) {
        return asset;
    }
    match path {
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(shared.metrics.encode())));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        "/livez" => text(StatusCode::OK, "ok\n"),
        "/readyz" if shared.is_draining() => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        "/readyz" => {
            let live = shared.live();
            let cp = live.config.control_plane.as_ref();
            match cp.and_then(|cp| shared.sync.not_ready(cp, shared.clock.now())) {
                Some(reason) => text(StatusCode::SERVICE_UNAVAILABLE, reason),
                None => text(StatusCode::OK, "ready\n"),
            }
        }
        "/healthz" => {
            let live = shared.live();
            let status = if shared.is_draining() {
                "draining"
            } else {
                "ok"
            };
            let body = serde_json::json!({
                "status": status,
                "version": env!("CARGO_PKG_VERSION"),
                "routes": live.config.routes.iter().map(|r| &r.name).collect::<Vec<_>>(),
                "origins": live.config.origins.iter().map(|o| &o.name).collect::<Vec<_>>(),
                "sessions": shared.sessions.len(),
                // How each viewer listener's bodies reach the socket.
                "send_path": {
                    "http": SendPath::plain(shared.segments.zero_copy()).as_str(),
                    "https": SendPath::Rustls.as_str(),
                },
                "zero_copy_files": shared.segments.files(),
                "control_plane": live.config.control_plane.as_ref().map(|_| shared.sync.health()),
                "store": shared.fleet.as_ref().map(|f| {
                    let s = f.stats();
                    serde_json::json!({
                        "healthy": s.healthy,
                        "fail_open": s.fail_open,
                        "fail_closed": s.fail_closed,
                        "errors": s.errors,
                        "readopted": s.readopted,
                    })
                }),
            });
            let code = if shared.is_draining() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            json_response(code, body.to_string())
        }
        _ => api_error(StatusCode::NOT_FOUND, "not_found"),
    }
}

/// `/api/v1/*`: bearer token first, whatever the path, so the API's shape is
/// not discoverable without the token.
async fn api(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let live = shared.live();
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The auth scheme is case-insensitive (RFC 9110 §11.1).
            let (scheme, credentials) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(credentials)
        })
        .map(str::trim);
    let authorized = match (&live.config.admin.token, presented) {
        (Some(token), Some(p)) => token.matches(p.as_bytes()),
        _ => false,
    };
    if !authorized {
        let mut r = api_error(StatusCode::UNAUTHORIZED, "unauthorized");
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    // Anything not under `/api/v1/` has no parts and ends in the 404 arm.
    let parts: Vec<&str> = path
        .strip_prefix("/api/v1/")
        .map_or_else(Vec::new, |rest| rest.split('/').collect());
    let response = route_api(shared, req, &method, &parts, query.as_deref()).await;
    if response.status().is_success() {
        audit_change(&method, &parts);
    }
    response
}

/// The audit line of a change the API made (`tollgate::audit`): every
/// successful `PUT` and `DELETE`, one mechanism for every resource. A
/// rotation writes its own (it knows the generation).
fn audit_change(method: &Method, parts: &[&str]) {
    let action = match (method, parts) {
        (&Method::PUT, ["snapshot"]) => "replace",
        (&Method::PUT, _) => "put",
        (&Method::DELETE, ["sessions", _]) => "kick",
        (&Method::DELETE, _) => "delete",
        _ => return,
    };
    let object = match parts.first().copied() {
        Some("users") => "user",
        Some("packages") => "package",
        Some("channels") => "channel",
        Some("devices") => "device",
        Some("sessions") => "session",
        Some("blocklist") => "blocklist",
        Some("snapshot") => "snapshot",
        _ => return,
    };
    let id = parts.get(1).copied().unwrap_or_default();
    let hwid = (object == "device").then(|| path_hwid(id)).flatten();
    let id = hwid.as_deref().unwrap_or(id);
    crate::audit::record(crate::audit::Who::Api, action, object, id, "");
}

/// Dispatch one authorized `/api/v1/…` request.
async fn route_api(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    method: &Method,
    parts: &[&str],
    query: Option<&str>,
) -> Response<Full<Bytes>> {
    match (method, parts) {
        (&Method::GET, ["sessions"]) => list_sessions(shared, query),
        (&Method::DELETE, ["sessions", id]) => kick_session(shared, id).await,
        (&Method::GET, ["users"]) => list_users(shared, query),
        (&Method::GET, ["users", id]) => read(shared, |s| {
            s.user_record(id)
                .map(|u| serde_json::to_string(&redacted(&u)))
        }),
        (&Method::PUT, ["users", id]) if valid_name(id) => {
            let id = (*id).to_owned();
            let mut body = match read_body(req, SMALL_BODY).await {
                Ok(bytes) => match crate::entitlements::User::from_api_json(&bytes) {
                    Ok(u) => u,
                    Err(problems) => return invalid(&problems),
                },
                Err(r) => return r,
            };
            // Only a digest is ever stored (the state dir holds what the API set).
            body.hash_password();
            change(shared, move |s| {
                s.users.insert(id, body);
                Ok(())
            })
            .await
        }
        (&Method::DELETE, ["users", id]) => {
            let id = (*id).to_owned();
            let user = id.clone();
            let r = change(shared, move |s| {
                s.users.remove(&id).map(|_| ()).ok_or(ChangeError::NotFound)
            })
            .await;
            if r.status() == StatusCode::NO_CONTENT {
                // Deleting a user ends their sessions (SPEC §4), for good.
                shared.end_user_sessions(&user);
                if let Err(e) = shared.save_revocations_async().await {
                    return revocations_not_saved(&e);
                }
            }
            r
        }
        (&Method::GET, ["packages", name]) => read(shared, |s| {
            s.package(name).map(|p| serde_json::to_string(&p))
        }),
        (&Method::PUT, ["packages", name]) if valid_name(name) => {
            let name = (*name).to_owned();
            let body = match read_json::<crate::entitlements::Package>(req, SMALL_BODY).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            change(shared, move |s| {
                s.packages.insert(name, body);
                Ok(())
            })
            .await
        }
        (&Method::DELETE, ["packages", name]) => {
            let name = (*name).to_owned();
            change(shared, move |s| {
                s.packages
                    .remove(&name)
                    .map(|_| ())
                    .ok_or(ChangeError::NotFound)
            })
            .await
        }
        (&Method::GET, ["channels"]) => list_channels(shared),
        (&Method::GET, ["channels", name]) => {
            read(shared, |s| s.channel(name).map(serde_json::to_string))
        }
        (&Method::PUT, ["channels", name]) if valid_name(name) => {
            let name = (*name).to_owned();
            let body = match read_json::<crate::entitlements::Channel>(req, SMALL_BODY).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            change(shared, move |s| {
                s.channels.insert(name, body);
                Ok(())
            })
            .await
        }
        (&Method::DELETE, ["channels", name]) => {
            let name = (*name).to_owned();
            change(shared, move |s| {
                s.channels
                    .remove(&name)
                    .map(|_| ())
                    .ok_or(ChangeError::NotFound)
            })
            .await
        }
        (&Method::GET, ["devices"]) => list_devices(shared, query),
        (&Method::GET, ["devices", seg]) => match path_hwid(seg) {
            Some(hwid) => read(shared, |s| {
                s.device_record(&hwid).map(|d| serde_json::to_string(&d))
            }),
            None => api_error(StatusCode::NOT_FOUND, "not_found"),
        },
        (&Method::PUT, ["devices", seg]) if path_hwid(seg).is_some() => {
            let hwid = path_hwid(seg).unwrap_or_default();
            let body = match read_json::<crate::entitlements::Device>(req, SMALL_BODY).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            change(shared, move |s| {
                s.devices.insert(hwid, body);
                Ok(())
            })
            .await
        }
        (&Method::DELETE, ["devices", seg]) => {
            let hwid = path_hwid(seg).unwrap_or_default();
            change(shared, move |s| {
                s.devices
                    .remove(&hwid)
                    .map(|_| ())
                    .ok_or(ChangeError::NotFound)
            })
            .await
        }
        (&Method::PUT, ["devices", _]) => json_response(
            StatusCode::BAD_REQUEST,
            serde_json::json!({
                "error": "invalid",
                "problems": [format!(
                    "path: the hardware id after /devices/ {}",
                    crate::entitlements::rules::HWID_RULE
                )],
            })
            .to_string(),
        ),
        (&Method::GET, ["blocklist"]) => {
            read(shared, |s| Some(serde_json::to_string(s.blocklist())))
        }
        (&Method::PUT, ["blocklist"]) => {
            let body = match read_json::<crate::entitlements::Blocklist>(req, SMALL_BODY).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            change(shared, move |s| {
                s.blocklist = body;
                Ok(())
            })
            .await
        }
        (&Method::PUT, ["snapshot"]) => upload::put_snapshot(shared, req, BULK_BODY).await,
        (&Method::POST, ["keys", "rotate"]) => rotate_keys(shared, req).await,
        (&Method::POST, ["sign"]) => sign_link(shared, req).await,
        (&Method::PUT, [kind @ ("users" | "packages" | "channels"), _]) => json_response(
            StatusCode::BAD_REQUEST,
            serde_json::json!({
                "error": "invalid",
                "problems": [format!(
                    "path: the name after /{kind}/ {}",
                    crate::entitlements::rules::ID_RULE
                )],
            })
            .to_string(),
        ),
        (_, other) => match allowed_methods(other) {
            Some(allow) => method_not_allowed(allow),
            None => api_error(StatusCode::NOT_FOUND, "not_found"),
        },
    }
}

/// The methods `/api/v1/{parts}` answers (the `Allow` of its 405), or `None`
/// when there is no such resource (404).
fn allowed_methods(parts: &[&str]) -> Option<&'static str> {
    Some(match parts {
        ["sessions"] | ["users"] => "GET",
        ["sessions", _] => "DELETE",
        ["users" | "packages" | "channels" | "devices", _] => "GET, PUT, DELETE",
        ["channels"] | ["devices"] => "GET",
        ["blocklist"] => "GET, PUT",
        ["snapshot"] => "PUT",
        ["keys", "rotate"] | ["sign"] => "POST",
        _ => return None,
    })
}

/// 405 with the `Allow` header RFC 9110 §15.5.6 requires.
fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut r = api_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// Largest body of a single user, package or blocklist.
const SMALL_BODY: usize = 1 << 20;
/// Largest `PUT /api/v1/snapshot` (a million users is about 110 MiB).
const BULK_BODY: usize = 1 << 30;

/// User ids and package names in paths: the one id rule
/// ([`crate::entitlements::rules`]), the same the config and the control
/// plane follow.
fn valid_name(name: &str) -> bool {
    crate::entitlements::rules::is_valid_id(name)
}

/// The hardware id a `/api/v1/devices/{hwid}` path segment names,
/// percent-decoded (`00%3A1A%3A…` is `00:1A:…`, as `encodeURIComponent`
/// writes it), when it follows the hardware-id rule.
fn path_hwid(segment: &str) -> Option<String> {
    let bytes = crate::auth::query::percent_decode(segment);
    let hwid = std::str::from_utf8(&bytes).ok()?;
    crate::entitlements::rules::check_hwid(hwid).ok()?;
    Some(hwid.to_owned())
}

/// A user as the API shows it: tokens and password never leave the edge.
fn redacted(u: &crate::entitlements::User) -> serde_json::Value {
    serde_json::json!({
        "tokens": u.tokens.iter().map(|_| "***").collect::<Vec<_>>(),
        "password": if u.password.is_empty() { "" } else { "***" },
        "max_sessions": u.max_sessions,
        "packages": u.packages,
        "ips": u.ips,
        "expires_at": u.expires_at,
        "disabled": u.disabled,
        "region": u.region,
        "name": u.name,
        "email": u.email,
        "comment": u.comment,
    })
}

/// `POST /api/v1/keys/rotate`: `{"channel":"ch1"}` (or `{}`: every
/// channel) starts a new content-key generation at the next key period
/// (SPEC §7.6); answers when it takes effect.
/// `POST /api/v1/sign`: a link the proxy accepts now ([`console::sign`]).
async fn sign_link(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        channel: String,
        user: String,
        route: Option<String>,
    }
    let body = match read_json::<Body>(req, SMALL_BODY).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut problems = Vec::new();
    if !valid_name(&body.channel) {
        problems.push(format!("channel: {}", crate::entitlements::rules::ID_RULE));
    }
    if !valid_name(&body.user) {
        problems.push(format!("user: {}", crate::entitlements::rules::ID_RULE));
    }
    if !problems.is_empty() {
        return invalid(&problems);
    }
    match console::sign(shared, &body.channel, &body.user, body.route.as_deref()) {
        Ok(v) => {
            // Not a change, but it hands out a credential: on the trail.
            crate::audit::record(
                crate::audit::Who::Api,
                "sign",
                "link",
                &body.user,
                &format!("channel={}", body.channel),
            );
            json_response(StatusCode::OK, v.to_string())
        }
        Err(problem) => invalid(&[problem]),
    }
}

async fn rotate_keys(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        channel: Option<String>,
    }
    let body = match read_json::<Body>(req, SMALL_BODY).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(c) = &body.channel
        && !valid_name(c)
    {
        return invalid(&[format!("channel: {}", crate::entitlements::rules::ID_RULE)]);
    }
    let s = Arc::clone(shared);
    let channel = body.channel.clone();
    let done = tokio::task::spawn_blocking(move || s.rotate_keys(channel)).await;
    match done {
        Ok(Ok((effective, generation))) => {
            crate::audit::record(
                crate::audit::Who::Api,
                "rotate",
                "keys",
                body.channel.as_deref().unwrap_or("*"),
                &format!(
                    "generation {generation} from {}",
                    crate::units::rfc3339(effective)
                ),
            );
            json_response(
                StatusCode::OK,
                serde_json::json!({
                    "channel": body.channel,
                    "generation": generation,
                    "effective_at": crate::units::rfc3339(effective),
                })
                .to_string(),
            )
        }
        Ok(Err(crate::runtime::RotationFailed::Refused(e))) => invalid(&[e.to_string()]),
        Ok(Err(crate::runtime::RotationFailed::Storage(e))) => {
            tracing::error!(error = %e, "content-key rotation not applied: state dir not writable");
            api_error(StatusCode::INTERNAL_SERVER_ERROR, "state_write_failed")
        }
        Err(_) => internal(),
    }
}

/// Most users one `GET /api/v1/users` page holds.
const MAX_PAGE: usize = 1000;

/// `GET /api/v1/users?offset=&limit=&package=&region=&token=&device=&q=`: a page
/// of the API's users (as `GET /api/v1/users/{id}` shows each, with its
/// id), in a stable order, and how many match.
fn list_users(shared: &Shared, query: Option<&str>) -> Response<Full<Bytes>> {
    use crate::auth::query::{param, percent_decode};
    let get = |name: &str| {
        query
            .and_then(|q| param(q, name))
            .map(|v| String::from_utf8_lossy(&percent_decode(v)).into_owned())
    };
    let mut problems = Vec::new();
    let mut number = |name: &str, default: usize, max: usize| match get(name) {
        None => default,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n <= max => n,
            _ => {
                problems.push(format!("{name}: a whole number from 0 to {max}"));
                default
            }
        },
    };
    let offset = number("offset", 0, usize::MAX);
    let limit = number("limit", 100, MAX_PAGE);
    if !problems.is_empty() {
        return invalid(&problems);
    }
    let (package, region, token, text) = (get("package"), get("region"), get("token"), get("q"));
    let device = get("device");
    let q = crate::entitlements::UserQuery {
        package: package.as_deref(),
        region: region.as_deref(),
        token: token.as_deref(),
        device: device.as_deref(),
        text: text.as_deref().filter(|t| !t.is_empty()),
        offset,
        limit,
    };
    let page = shared.store.api_state(|s| s.users_page(&q));
    let users: Vec<serde_json::Value> = page
        .users
        .iter()
        .map(|(id, u)| keyed(redacted(u), "id", id))
        .collect();
    json_response(
        StatusCode::OK,
        serde_json::json!({
            "total": page.total,
            "offset": offset,
            "limit": limit,
            "users": users,
        })
        .to_string(),
    )
}

/// `object` (a JSON object) with `key: name` added: an item of a list
/// shown with the name it is stored under.
fn keyed(mut object: serde_json::Value, key: &str, name: &str) -> serde_json::Value {
    if let Some(obj) = object.as_object_mut() {
        obj.insert(key.into(), name.into());
    }
    object
}

/// `GET /api/v1/devices?user=`: the API's devices (of one user), in order,
/// each with its hardware id.
fn list_devices(shared: &Shared, query: Option<&str>) -> Response<Full<Bytes>> {
    let user = query
        .and_then(|q| crate::auth::query::param_exact(q, "user"))
        .map(|v| String::from_utf8_lossy(&crate::auth::query::percent_decode(v)).into_owned());
    let devices: Vec<serde_json::Value> = shared.store.api_state(|s| {
        s.devices()
            .filter(|d| user.as_deref().is_none_or(|u| d.user() == u))
            .map(|d| {
                keyed(
                    serde_json::to_value(d.record()).unwrap_or_default(),
                    "hwid",
                    d.hwid(),
                )
            })
            .collect()
    });
    json_response(
        StatusCode::OK,
        serde_json::json!({ "devices": devices }).to_string(),
    )
}

/// `GET /api/v1/channels`: every channel in force (the config's and the
/// API's), in channel-list order, each with its name.
fn list_channels(shared: &Shared) -> Response<Full<Bytes>> {
    let ents = shared.store.entitlements();
    let channels: Vec<serde_json::Value> = ents
        .channels()
        .map(|(name, c)| keyed(serde_json::to_value(c).unwrap_or_default(), "name", name))
        .collect();
    json_response(
        StatusCode::OK,
        serde_json::json!({ "channels": channels }).to_string(),
    )
}

/// Read the API state: 200 with the JSON `f` makes, 404 when it has nothing.
fn read<T: std::fmt::Display>(
    shared: &Shared,
    f: impl FnOnce(&crate::entitlements::Entitlements) -> Option<Result<T, serde_json::Error>>,
) -> Response<Full<Bytes>> {
    match shared.store.api_state(f) {
        Some(Ok(text)) => json_response(StatusCode::OK, text.to_string()),
        Some(Err(_)) => internal(),
        None => api_error(StatusCode::NOT_FOUND, "not_found"),
    }
}

/// 500 `{"error":"internal"}`.
fn internal() -> Response<Full<Bytes>> {
    api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal")
}

/// Apply a change off the async workers; 204 when it is visible to the
/// next request and safe in the state dir.
async fn change(
    shared: &Arc<Shared>,
    edit: impl FnOnce(&mut crate::entitlements::Snapshot) -> Result<(), ChangeError> + Send + 'static,
) -> Response<Full<Bytes>> {
    let s = Arc::clone(shared);
    applied(tokio::task::spawn_blocking(move || s.store.change(edit)).await)
}

/// The answer to a change run on the blocking pool: 204, or why not.
fn applied(
    result: Result<Result<(), ChangeError>, tokio::task::JoinError>,
) -> Response<Full<Bytes>> {
    match result {
        Ok(Ok(())) => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Ok(Err(ChangeError::NotFound)) => api_error(StatusCode::NOT_FOUND, "not_found"),
        Ok(Err(ChangeError::Invalid(problems))) => invalid(&problems),
        Ok(Err(ChangeError::Storage(e))) => {
            tracing::error!(error = %e, "admin change not applied: state dir not writable");
            api_error(StatusCode::INTERNAL_SERVER_ERROR, "state_write_failed")
        }
        Err(_) => internal(),
    }
}

/// 400 `{"error":"invalid","problems":[…]}`.
fn invalid<S: serde::Serialize>(problems: &[S]) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::BAD_REQUEST,
        serde_json::json!({ "error": "invalid", "problems": problems }).to_string(),
    )
}

/// 413 `{"error":"body_too_large"}`.
fn too_large() -> Response<Full<Bytes>> {
    api_error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
}

/// 400 `{"error":"bad_body"}`: the body could not be read to its end.
fn bad_body() -> Response<Full<Bytes>> {
    api_error(StatusCode::BAD_REQUEST, "bad_body")
}

/// The JSON body of `req`, at most `limit` bytes; the error response otherwise.
async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
    limit: usize,
) -> Result<T, Response<Full<Bytes>>> {
    let bytes = read_body(req, limit).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| invalid(&[crate::entitlements::redact_json_error(&e)]))
}

/// A request body of at most `limit` bytes (413 beyond, 400 when broken).
async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Response<Full<Bytes>>> {
    use http_body_util::BodyExt;
    let body = http_body_util::Limited::new(req.into_body(), limit);
    let bytes = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(too_large());
        }
        Err(_) => return Err(bad_body()),
    };
    Ok(bytes)
}

/// `GET /api/v1/sessions?user=&channel=&device=`: live sessions of this edge.
fn list_sessions(shared: &Shared, query: Option<&str>) -> Response<Full<Bytes>> {
    let param = |name: &str| {
        query
            .and_then(|q| crate::auth::query::param_exact(q, name))
            .map(|v| crate::auth::query::percent_decode(v).into_owned())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    };
    let (user, channel, device) = (param("user"), param("channel"), param("device"));
    let mut sessions: Vec<serde_json::Value> = shared
        .sessions
        .list()
        .iter()
        .filter(|s| user.as_deref().is_none_or(|u| s.user.as_deref() == Some(u)))
        .filter(|s| channel.as_deref().is_none_or(|c| &*s.channel == c))
        .filter(|s| {
            device
                .as_deref()
                .is_none_or(|d| s.device.as_deref() == Some(d))
        })
        .map(|s| {
            serde_json::json!({
                "id": SessionId(s.id).to_string(),
                "user": s.user.as_deref(),
                "device": s.device.as_deref(),
                "route": &*s.route,
                "channel": &*s.channel,
                "ip": s.ip.to_string(),
                "started": crate::units::rfc3339(s.started),
                "last_seen": crate::units::rfc3339(s.last_seen()),
                "bytes": s.bytes(),
            })
        })
        .collect();
    sessions.sort_by(|a, b| a["started"].as_str().cmp(&b["started"].as_str()));
    json_response(
        StatusCode::OK,
        serde_json::json!({ "sessions": sessions }).to_string(),
    )
}

/// 500 `{"error":"state_write_failed"}`: a revocation took effect on this
/// edge but could not be saved, so it would not survive a restart.
fn revocations_not_saved(e: &str) -> Response<Full<Bytes>> {
    tracing::error!(error = %e, "revocation not saved: state dir not writable");
    api_error(StatusCode::INTERNAL_SERVER_ERROR, "state_write_failed")
}

/// `DELETE /api/v1/sessions/{id}`: end a session now; its player's next
/// request gets 403 `session_evicted`, also after a restart (the
/// revocation is in the state dir before this answers).
async fn kick_session(shared: &Arc<Shared>, id: &str) -> Response<Full<Bytes>> {
    let Ok(SessionId(id)) = id.parse::<SessionId>() else {
        return api_error(StatusCode::NOT_FOUND, "not_found");
    };
    let user = shared
        .sessions
        .get(id)
        .and_then(|s| s.user.as_deref().map(str::to_owned));
    if shared.end_session(id, user.as_deref()) {
        if let Err(e) = shared.save_revocations_async().await {
            return revocations_not_saved(&e);
        }
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NO_CONTENT;
        r
    } else {
        api_error(StatusCode::NOT_FOUND, "not_found")
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// GET `url` and return the status code (for `tollgate healthcheck`).
pub async fn probe(url: &str, timeout: std::time::Duration) -> Result<u16, String> {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let uri: http::Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    let client: Client<_, http_body_util::Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    match tokio::time::timeout(timeout, client.get(uri)).await {
        Err(_) => Err(format!("no answer within {timeout:?}")),
        Ok(Err(e)) => Err(format!("request failed: {e}")),
        Ok(Ok(resp)) => Ok(resp.status().as_u16()),
    }
}
