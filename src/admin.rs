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
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::runtime::Shared;

/// Serve the admin endpoints on `listener` until `stop` is cancelled.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(respond(&shared, &req)) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path.starts_with("/api/") {
        return api(shared, req);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return json(
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"error":"method_not_allowed"}"#.into(),
        );
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
        "/readyz" => text(StatusCode::OK, "ready\n"),
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
            });
            let code = if shared.is_draining() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            json(code, body.to_string())
        }
        _ => json(StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#.into()),
    }
}

/// `/api/v1/*`: bearer token first, whatever the path, so the API's shape is
/// not discoverable without the token.
fn api(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let live = shared.live();
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let authorized = match (&live.config.admin.token, presented) {
        (Some(token), Some(p)) => token.matches(p.as_bytes()),
        _ => false,
    };
    if !authorized {
        let mut r = json(
            StatusCode::UNAUTHORIZED,
            r#"{"error":"unauthorized"}"#.into(),
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    json(StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#.into())
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// GET `url` and return the status code (for `tollgate healthcheck`).
pub async fn probe(url: &str, timeout: std::time::Duration) -> Result<u16, String> {
    use hyper_util::client::legacy::Client;
    let uri: http::Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    let client: Client<_, http_body_util::Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    match tokio::time::timeout(timeout, client.get(uri)).await {
        Err(_) => Err(format!("no answer within {timeout:?}")),
        Ok(Err(e)) => Err(format!("request failed: {e}")),
        Ok(Ok(resp)) => Ok(resp.status().as_u16()),
    }
}
