//! How the edge reaches its control plane: `https://` verified against the
//! system's CA roots or a configured CA file (`[control_plane] ca`), and
//! plain `http://` only where validation allowed it (a loopback host, or
//! `allow_http = true`).
//!
//! Shell: reads the CA file and the system store when a client is built
//! (at the start of sync and whenever `ca` changes on reload). Must not:
//! fall back to an unverified connection, or to the system roots when a CA
//! file is configured (a CA file means "only this CA").

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The pooled HTTP(S) client of the sync loop.
pub type SyncClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The CA certificates of a PEM file; at least one, each usable as a root.
pub fn load_ca(path: &Path) -> Result<RootCertStore, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad PEM in CA file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "no certificate found in CA file {}",
            path.display()
        ));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("unusable CA certificate in {}: {e}", path.display()))?;
    }
    Ok(roots)
}

/// The system's CA roots (`SSL_CERT_FILE`/`SSL_CERT_DIR`, else the
/// platform store, as OpenSSL finds it).
fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(format!(
            "no system CA certificates found{why}; set [control_plane] ca"
        ));
    }
    Ok(roots)
}

/// A client for a control plane reached over `https` (when `https` is
/// false, no roots are loaded: the URL is `http://`) whose CA is `ca`
/// (`None`: the system roots).
pub fn client(https: bool, ca: Option<&Path>) -> Result<SyncClient, String> {
    let roots = match (https, ca) {
        (false, _) => RootCertStore::empty(),
        (true, Some(path)) => load_ca(path)?,
        (true, None) => system_roots()?,
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // `http://` URLs got past validation only to a loopback host or with
    // `allow_http`; the connector itself speaks both.
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}
