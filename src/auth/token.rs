//! Placeholder for the `token` method (being written): refuses everything.

use std::path::Path;

use serde::Deserialize;

use super::{AuthRequest, Check, Scheme, SignRequest};

/// One `[[user]]` as written in the config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    /// User id.
    pub id: String,
}

/// Users' tokens and passwords, compiled.
#[derive(Debug)]
pub struct Tokens {}

impl Tokens {
    /// Validate the `[[user]]` list; errors are (key under `user[i]`, message)
    /// with the key path starting at the index, e.g. `[0].tokens[1]`.
    pub fn new(_users: &[RawUser], _base_dir: &Path) -> Result<Self, Vec<(String, String)>> {
        Err(vec![(
            String::new(),
            "[[user]] is not supported by this version of tollgate yet".to_owned(),
        )])
    }
}

impl Scheme for Tokens {
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
