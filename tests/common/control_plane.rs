//! A control plane for the sync tests: a real hyper server (plain HTTP or
//! HTTPS with a self-signed certificate) that answers every report as told
//! and, like a real `tollgate`-mode control plane, signs each answer with
//! the HMAC of the report's nonce and the answer body (docs/control-plane.md).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tollgate::sync::signature;

use super::{OriginBody, TestProxy, eventually, full, get_text, metric};

/// The token the test control planes share with the edge.
pub const CP_TOKEN: &str = "cp-secret-token";

/// The proxy's admin `/metrics` text.
pub async fn metrics(proxy: &TestProxy) -> String {
    get_text(&proxy.admin_url("/metrics")).await
}

/// `tollgate_control_plane_syncs_total` with `result` in `/metrics` text.
pub fn syncs(text: &str, result: &str) -> f64 {
    metric(
        text,
        &format!("tollgate_control_plane_syncs_total{{result=\"{result}\"}}"),
    )
}

/// Wait until `/metrics` counts more syncs with `result` than `before`.
pub async fn wait_sync(proxy: &TestProxy, result: &str, before: f64) {
    eventually(&format!("a sync with result {result}"), async || {
        let n = syncs(&metrics(proxy).await, result);
        if n > before {
            Ok(())
        } else {
            Err(format!("{result} = {n}"))
        }
    })
    .await;
}

/// What the test control plane answers.
#[derive(Clone)]
pub enum Behaviour {
    /// 200 with this JSON.
    Answer(Value),
    /// 200 with a body computed from the report (Nimble's puzzle).
    Compute(Arc<dyn Fn(&Value) -> String + Send + Sync>),
    /// This status, empty body.
    Status(u16),
    /// 200 with bytes that are not JSON.
    Garbage,
}

#[derive(Default)]
struct Seen {
    reports: Vec<(Option<String>, Value)>,
}

/// A control plane answering every POST as told.
pub struct ControlPlane {
    addr: SocketAddr,
    stop: Option<CancellationToken>,
    behaviour: Arc<Mutex<Behaviour>>,
    seen: Arc<Mutex<Seen>>,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A self-signed certificate for `localhost` and `127.0.0.1`, written to
/// `dir` as `cp-cert.pem` / `cp-key.pem`; returns the certificate's path
/// (the CA file an edge trusts it by).
pub fn write_cp_cert(dir: &std::path::Path) -> std::path::PathBuf {
    let c =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = dir.join("cp-cert.pem");
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(dir.join("cp-key.pem"), c.key_pair.serialize_pem()).unwrap();
    cert
}

impl ControlPlane {
    /// Plain HTTP on 127.0.0.1.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// HTTPS on 127.0.0.1 with the certificate [`write_cp_cert`] wrote to `dir`.
    pub async fn start_tls(dir: &std::path::Path) -> Self {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let tls = tollgate::tls::server_config(&dir.join("cp-cert.pem"), &dir.join("cp-key.pem"))
            .unwrap();
        Self::start_with(Some(tokio_rustls::TlsAcceptor::from(tls))).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let behaviour = Arc::new(Mutex::new(Behaviour::Status(503)));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let (b, s, stop2) = (behaviour.clone(), seen.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    () = stop2.cancelled() => return,
                    r = listener.accept() => r.unwrap(),
                };
                let (b, s, tls, stop3) = (b.clone(), s.clone(), tls.clone(), stop2.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (b, s) = (b.clone(), s.clone());
                        async move { Ok::<_, std::convert::Infallible>(answer(req, &b, &s).await) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    tokio::select! {
                        () = stop3.cancelled() => {}
                        () = async {
                            match tls {
                                None => {
                                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                                }
                                Some(acceptor) => {
                                    // A client that refuses the certificate ends here.
                                    if let Ok(tls) = acceptor.accept(stream).await {
                                        let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
                                    }
                                }
                            }
                        } => {}
                    }
                });
            }
        });
        Self {
            addr,
            stop: Some(stop),
            behaviour,
            seen,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn answer(&self, b: Behaviour) {
        *self.behaviour.lock().unwrap() = b;
    }

    /// Every report: its `Authorization` header and its JSON.
    pub fn reports(&self) -> Vec<(Option<String>, Value)> {
        self.seen.lock().unwrap().reports.clone()
    }

    pub fn report_count(&self) -> usize {
        self.seen.lock().unwrap().reports.len()
    }

    /// Wait until the edge has sent `n` more reports than now.
    pub async fn wait_reports(&self, n: usize) {
        let target = self.report_count() + n;
        super::eventually("control-plane reports", async || {
            let c = self.report_count();
            if c >= target {
                Ok(())
            } else {
                Err(format!("{c} of {target}"))
            }
        })
        .await;
    }

    /// Down for real: the listener and every open connection close.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.cancel();
        }
    }
}

async fn answer(
    req: Request<Incoming>,
    b: &Mutex<Behaviour>,
    s: &Mutex<Seen>,
) -> Response<OriginBody> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (auth, nonce) = (header("authorization"), header(signature::NONCE_HEADER));
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let report: Value = serde_json::from_slice(&body).expect("report is JSON");
    s.lock().unwrap().reports.push((auth, report.clone()));
    let behaviour = b.lock().unwrap().clone();
    let (status, body) = match behaviour {
        Behaviour::Answer(v) => (200, Bytes::from(v.to_string())),
        Behaviour::Compute(f) => (200, Bytes::from(f(&report))),
        Behaviour::Status(code) => (code, Bytes::new()),
        Behaviour::Garbage => (200, Bytes::from_static(b"<html>oops</html>")),
    };
    let mut resp = Response::new(full(body.clone()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
    // A `tollgate`-mode control plane signs what it answers to the nonce
    // the report carried (Nimble reports carry none).
    if let Some(nonce) = nonce {
        let mac = signature::sign(CP_TOKEN.as_bytes(), &nonce, &body);
        resp.headers_mut()
            .insert(signature::SIGNATURE_HEADER, mac.parse().unwrap());
    }
    // No keep-alive: once stopped, the control plane is down for real.
    resp.headers_mut()
        .insert("connection", "close".parse().unwrap());
    resp
}
