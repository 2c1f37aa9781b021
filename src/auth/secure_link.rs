//! Placeholder for the `secure_link` scheme (being written): refuses everything.

use std::path::Path;

use serde::Deserialize;

use super::{AuthRequest, Check, Scheme, SignRequest};

/// `[auth.secure_link]` as written in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {}

/// The compiled scheme.
#[derive(Debug)]
pub struct SecureLink {}

impl SecureLink {
    /// Validate `[auth.secure_link]`; errors are (key under the section, message).
    pub fn new(_raw: &RawConfig, _base_dir: &Path) -> Result<Self, Vec<(String, String)>> {
        Err(vec![(
            String::new(),
            "[auth.secure_link] is not supported by this version of tollgate yet".to_owned(),
        )])
    }
}

impl Scheme for SecureLink {
    fn check(&self, _req: &AuthRequest<'_>) -> Check {
        Check::Forbidden
    }

    fn sign(&self, _req: &SignRequest<'_>) -> Result<String, String> {
        Err("not implemented yet".into())
    }

    fn params(&self) -> Vec<String> {
        Vec::new()
    }
}
