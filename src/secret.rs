//! Secrets in the config file: given inline, or as `env:NAME` / `file:PATH`.
//!
//! A [`Secret`] never shows its value through `Debug` or `Display`; code that
//! needs the bytes calls [`Secret::expose`] at the point of use. Comparing
//! against a secret goes through [`Secret::matches`], which is constant time.
//!
//! Before it is resolved, a secret as written in the file is a [`RawSecret`]
//! (or, for a URL that may carry a password, a [`RawSecretUrl`]): every
//! secret field of the raw config structs has one of these two types, so a
//! derived `Debug` of any raw struct shows `MASKED`, and a value of the wrong
//! type is refused without being quoted in the error.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use subtle::ConstantTimeEq;

/// A secret as written in the config file (inline, `env:NAME` or
/// `file:PATH`), not resolved yet. `Debug` prints `MASKED`; it derefs to the
/// text for [`Secret::resolve`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RawSecret(String);

impl RawSecret {
    /// Wrap text (tests and programmatic configs).
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }
}

impl From<&str> for RawSecret {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl From<String> for RawSecret {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl Deref for RawSecret {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MASKED")
    }
}

/// Accepts a string only; any other value is refused with an error that
/// names its type but never its value (serde's own message would quote it).
struct SecretVisitor;

impl SecretVisitor {
    fn refuse<E: de::Error>(what: &str) -> E {
        E::custom(format_args!(
            "invalid type: {what}, expected a string (a secret: inline, \"env:NAME\" or \"file:PATH\"; the value is not shown)"
        ))
    }
}

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = RawSecret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string (a secret)")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSecret, E> {
        Ok(RawSecret(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<RawSecret, E> {
        Ok(RawSecret(v))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawSecret, E> {
        Err(Self::refuse("boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawSecret, E> {
        Err(Self::refuse("integer"))
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<RawSecret, E> {
        Err(Self::refuse("integer"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawSecret, E> {
        Err(Self::refuse("integer"))
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<RawSecret, E> {
        Err(Self::refuse("integer"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawSecret, E> {
        Err(Self::refuse("floating point"))
    }
    fn visit_char<E: de::Error>(self, _: char) -> Result<RawSecret, E> {
        Err(Self::refuse("character"))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<RawSecret, E> {
        Err(Self::refuse("bytes"))
    }
}

impl<'de> Deserialize<'de> for RawSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_string(SecretVisitor)
    }
}

/// A URL that may carry a password (`redis://user:pass@host:port`), or
/// `env:`/`file:` naming one. `Debug` shows the URL with only the password
/// masked ([`redact_url`]); `env:`/`file:` references show as written.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RawSecretUrl(RawSecret);

impl Deref for RawSecretUrl {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RawSecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&redact_url(&self.0), f)
    }
}

impl<'de> Deserialize<'de> for RawSecretUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawSecret::deserialize(d).map(Self)
    }
}

/// `text` with the password of a `scheme://user:password@host…` URL
/// replaced by `MASKED`; text without a password comes back unchanged.
pub fn redact_url(text: &str) -> Cow<'_, str> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return Cow::Borrowed(text);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    // The last '@' of the authority ends the user info (a password may hold '@').
    let Some(at) = rest[..authority_end].rfind('@') else {
        return Cow::Borrowed(text);
    };
    let (userinfo, host) = rest.split_at(at);
    match userinfo.split_once(':') {
        Some((user, _password)) => Cow::Owned(format!("{scheme}://{user}:MASKED{host}")),
        // `redis://password@host` is a password alone in some clients.
        None if !userinfo.is_empty() => Cow::Owned(format!("{scheme}://MASKED{host}")),
        None => Cow::Borrowed(text),
    }
}

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
    fn raw_secret_debug_is_masked_and_wrong_types_are_not_quoted() {
        #[derive(Debug, serde::Deserialize)]
        struct Doc {
            s: RawSecret,
            u: Option<RawSecretUrl>,
        }
        let d: Doc = toml::from_str("s = \"hunter2\"\nu = \"redis://me:pw123@h:6379/0\"").unwrap();
        assert_eq!(&*d.s, "hunter2");
        assert!(d.u.is_some());
        let shown = format!("{d:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("pw123"),
            "{shown}"
        );
        assert!(shown.contains("redis://me:MASKED@h:6379/0"), "{shown}");
        for bad in ["s = 987654321", "s = 98765.4321", "s = true"] {
            let e = toml::from_str::<Doc>(bad).unwrap_err();
            let m = e.message();
            assert!(m.contains("expected a string"), "{m}");
            assert!(!m.contains("98765") && !m.contains("true"), "{m}");
        }
    }

    #[test]
    fn redact_url_masks_only_the_password() {
        for (url, want) in [
            (
                "redis://:pw@127.0.0.1:6379",
                "redis://:MASKED@127.0.0.1:6379",
            ),
            ("rediss://u:p@ss@h:1/2?x=y", "rediss://u:MASKED@h:1/2?x=y"),
            ("redis://pw@h", "redis://MASKED@h"),
            ("redis://h:6379/0", "redis://h:6379/0"),
            ("redis://h/a@b", "redis://h/a@b"),
            ("local", "local"),
            ("env:REDIS_URL", "env:REDIS_URL"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
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
