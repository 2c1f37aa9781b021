//! Secrets in the config file: given inline, or as `env:NAME` / `file:PATH`.
//!
//! A [`Secret`] never shows its value through `Debug` or `Display`; code that
//! needs the bytes calls [`Secret::expose`] at the point of use. Comparing
//! against a secret goes through [`Secret::matches`], which is constant time.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use subtle::ConstantTimeEq;

/// A secret value resolved at config load. Cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Resolve a config string: `env:NAME` reads the environment variable,
    /// `file:PATH` reads the file (relative to `base_dir`, one trailing newline
    /// trimmed), anything else is the secret itself. An empty result is an error:
    /// an empty secret would silently accept anything signed with "".
    pub fn resolve(raw: &str, base_dir: &Path) -> Result<Self, String> {
        let value = if let Some(name) = raw.strip_prefix("env:") {
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?
        } else if let Some(path) = raw.strip_prefix("file:") {
            let full = base_dir.join(path);
            let text = std::fs::read_to_string(&full)
                .map_err(|e| format!("cannot read secret file {}: {e}", full.display()))?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            text.strip_suffix('\r').unwrap_or(text).to_owned()
        } else {
            raw.to_owned()
        };
        if value.is_empty() {
            return Err("secret is empty".to_owned());
        }
        Ok(Self(value.into()))
    }

    /// The secret's bytes, for the code that signs or verifies with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a presented value.
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(MASKED)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_env_and_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "from-file\n").unwrap();
        assert_eq!(
            Secret::resolve("inline", dir.path()).unwrap().expose(),
            "inline"
        );
        assert_eq!(
            Secret::resolve("file:tok", dir.path()).unwrap().expose(),
            "from-file"
        );
        // PATH is always set in a test process.
        let path = std::env::var("PATH").unwrap();
        assert_eq!(
            Secret::resolve("env:PATH", dir.path()).unwrap().expose(),
            path
        );
        assert!(Secret::resolve("env:TOLLGATE_SURELY_UNSET_VAR", dir.path()).is_err());
        assert!(Secret::resolve("file:missing", dir.path()).is_err());
        assert!(Secret::resolve("", dir.path()).is_err());
    }

    #[test]
    fn debug_is_masked_and_compare_works() {
        let s = Secret::resolve("hunter2", Path::new(".")).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("MASKED"));
        assert!(s.matches(b"hunter2"));
        assert!(!s.matches(b"hunter3"));
        assert!(!s.matches(b"hunter"));
    }
}
