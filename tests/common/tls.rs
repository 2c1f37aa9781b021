//! A self-signed `localhost` certificate for https listeners in tests.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A certificate and key written as `c.pem` and `k.pem` into a fresh dir
/// (removed on drop).
pub struct TestCert {
    pub cert: rcgen::CertifiedKey,
    dir: tempfile::TempDir,
}

impl Default for TestCert {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCert {
    pub fn new() -> Self {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let me = Self { cert, dir };
        std::fs::write(me.cert_path(), me.cert.cert.pem()).unwrap();
        std::fs::write(me.key_path(), me.cert.key_pair.serialize_pem()).unwrap();
        me
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("c.pem")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("k.pem")
    }

    /// `[[server.tls]]` on 127.0.0.1:0 serving this certificate.
    pub fn listener_toml(&self) -> String {
        format!(
            "[[server.tls]]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n",
            self.cert_path().display(),
            self.key_path().display()
        )
    }

    /// A client trusting only this certificate, with `localhost` at `addr`.
    pub fn client(&self, addr: SocketAddr) -> reqwest::Client {
        let root = reqwest::Certificate::from_pem(self.cert.cert.pem().as_bytes()).unwrap();
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(root)
            .resolve("localhost", addr)
            .no_proxy()
            .build()
            .unwrap()
    }
}
