//! Placeholder for the `wmsauth` scheme (being written): refuses everything.

use std::path::Path;

use serde::Deserialize;

use super::{AuthRequest, Check, Scheme, SignRequest};

/// `[auth.wmsauth]` as written in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {}

/// The compiled scheme.
#[derive(Debug)]
pub struct WmsAuth {}

impl WmsAuth {
    /// Validate `[auth.wmsauth]`; errors are (key under the section, message).
    pub fn new(_raw: &RawConfig, _base_dir: &Path) -> Result<Self, Vec<(String, String)>> {
        Err(vec![(
            String::new(),
            "[auth.wmsauth] is not supported by this version of tollgate yet".to_owned(),
        )])
    }
}

impl Scheme for WmsAuth {
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
