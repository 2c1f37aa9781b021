//! `[auth.secure_link]`: the raw section as written and its validation into a
//! [`SecureLink`]. Every problem is reported at once, each with the key it
//! concerns, like `nginx -t`.
//!
//! Only [`SecureLink::new`] does I/O (reading a `file:` secret). The raw
//! section's `Debug` masks the secret, the variable values and the template
//! (which may hold a secret inline, as nginx's own example does).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use super::template::{BUILTINS, Template, Var};
use super::{Form, Md5Form, SecureLink};
use crate::secret::RawSecret;
use crate::secret::Secret;

/// Template used when `template` is not given: nginx's documented form with
/// the secret moved into `$secret`.
pub const DEFAULT_TEMPLATE: &str = "$secure_link_expires$uri$remote_addr $secret";

/// `[auth.secure_link]` as written in the config file.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `"md5"` (default: `secure_link` + `secure_link_md5`) or `"secret"`
    /// (`secure_link_secret`).
    pub mode: Option<String>,
    /// The secret: inline, `env:NAME` or `file:PATH`; `$secret` in templates.
    pub secret: Option<RawSecret>,
    /// Query argument carrying the base64url MD5 (default `md5`).
    pub hash_arg: Option<String>,
    /// Query argument carrying the expiry (default `expires`; `""`: none).
    pub expires_arg: Option<String>,
    /// The `secure_link_md5` expression (default `DEFAULT_TEMPLATE`).
    pub template: Option<String>,
    /// Extra template variables (`set $name value;` in nginx).
    pub variables: Option<BTreeMap<String, String>>,
    /// Grace past the expiry for clock skew (`"30s"`, default `"0s"`).
    pub tolerance: Option<String>,
    /// `mode = "secret"`: the fixed path prefix before the hash segment
    /// (default: nginx's rule, the first path segment, whatever it is).
    pub path_prefix: Option<String>,
}

impl fmt::Debug for RawConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked = |o: &Option<String>| o.as_ref().map(|_| "MASKED");
        f.debug_struct("RawConfig")
            .field("mode", &self.mode)
            .field("secret", &self.secret)
            .field("hash_arg", &self.hash_arg)
            .field("expires_arg", &self.expires_arg)
            .field("template", &masked(&self.template))
            .field(
                "variables",
                &self
                    .variables
                    .as_ref()
                    .map(|v| v.keys().collect::<Vec<_>>()),
            )
            .field("tolerance", &self.tolerance)
            .field("path_prefix", &self.path_prefix)
            .finish()
    }
}

/// Collected `(key, message)` errors.
type Errors = Vec<(String, String)>;

fn err(errs: &mut Errors, key: &str, msg: impl Into<String>) {
    errs.push((key.to_owned(), msg.into()));
}

/// An `$arg_NAME` name: what nginx allows in a variable name.
fn check_arg_name(errs: &mut Errors, key: &str, name: &str) {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        err(
            errs,
            key,
            format!("{name:?} must be letters, digits or '_' (nginx $arg_NAME)"),
        );
    }
}

impl SecureLink {
    /// Validate `[auth.secure_link]`; errors are (key under the section, message).
    pub fn new(raw: &RawConfig, base_dir: &Path) -> Result<Self, Vec<(String, String)>> {
        let mut errs = Errors::new();
        let secret = raw.secret.as_deref().and_then(|s| {
            Secret::resolve(s, base_dir)
                .map_err(|e| err(&mut errs, "secret", e))
                .ok()
        });
        let form = match raw.mode.as_deref().unwrap_or("md5") {
            "md5" => md5_form(raw, raw.secret.is_some(), &mut errs).map(Form::Md5),
            "secret" => secret_form(raw, raw.secret.is_some(), &mut errs),
            other => {
                err(
                    &mut errs,
                    "mode",
                    format!("{other:?}: expected \"md5\" or \"secret\""),
                );
                None
            }
        };
        match form {
            Some(form) if errs.is_empty() => Ok(Self { form, secret }),
            _ => Err(errs),
        }
    }
}

/// Validate the `mode = "md5"` keys.
fn md5_form(raw: &RawConfig, has_secret: bool, errs: &mut Errors) -> Option<Md5Form> {
    if raw.path_prefix.is_some() {
        err(errs, "path_prefix", "only applies to mode = \"secret\"");
    }
    let hash_arg = raw
        .hash_arg
        .as_deref()
        .unwrap_or("md5")
        .to_ascii_lowercase();
    check_arg_name(errs, "hash_arg", &hash_arg);
    let expires_arg = match raw.expires_arg.as_deref().unwrap_or("expires") {
        "" => None,
        name => Some(name.to_ascii_lowercase()),
    };
    if let Some(e) = &expires_arg {
        check_arg_name(errs, "expires_arg", e);
        if *e == hash_arg {
            err(errs, "expires_arg", "must differ from hash_arg");
        }
    }
    let tolerance = match raw.tolerance.as_deref().map(crate::units::parse_duration) {
        None => 0,
        Some(Ok(d)) => d.as_secs(),
        Some(Err(e)) => {
            err(errs, "tolerance", e);
            0
        }
    };
    let mut variable_names = Vec::new();
    let mut variables = Vec::new();
    for (name, value) in raw.variables.iter().flatten() {
        let lower = name.to_ascii_lowercase();
        let key = format!("variables.{name}");
        if lower.is_empty()
            || !lower
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            err(errs, &key, "a variable name is letters, digits or '_'");
        } else if BUILTINS.contains(&lower.as_str()) || lower.starts_with("arg_") {
            err(errs, &key, format!("${lower} is a built-in variable"));
        } else if variable_names.contains(&lower) {
            err(errs, &key, "defined twice (names are case-insensitive)");
        }
        variable_names.push(lower);
        variables.push(value.as_bytes().into());
    }
    let src = raw.template.as_deref().unwrap_or(DEFAULT_TEMPLATE);
    let template = Template::parse(src, &variable_names)
        .map_err(|e| err(errs, "template", e))
        .ok()?;
    check_template(&template, &hash_arg, has_secret, errs);
    Some(Md5Form {
        hash_arg,
        expires_arg,
        template,
        variable_names,
        variables,
        tolerance,
    })
}

/// Refuse templates no link could match and templates anyone could forge.
fn check_template(t: &Template, hash_arg: &str, has_secret: bool, errs: &mut Errors) {
    use super::template::Part;
    if t.uses(&Var::Secret) && !has_secret {
        err(errs, "secret", "required: the template uses $secret");
    }
    if t.uses(&Var::Args) {
        err(
            errs,
            "template",
            "$args contains the hash itself: no link could ever match",
        );
    }
    if t.uses(&Var::Arg(hash_arg.into())) {
        err(
            errs,
            "template",
            format!("$arg_{hash_arg} is the hash itself: no link could ever match"),
        );
    }
    let keyed = t.parts().iter().any(|p| {
        matches!(
            p,
            Part::Literal(_) | Part::Var(Var::Secret | Var::Configured(_))
        )
    });
    if !keyed {
        err(
            errs,
            "template",
            "hashes only values the client knows, so anyone could forge a link: include $secret",
        );
    }
}

/// Validate the `mode = "secret"` keys.
fn secret_form(raw: &RawConfig, has_secret: bool, errs: &mut Errors) -> Option<Form> {
    let md5_only = [
        ("hash_arg", raw.hash_arg.is_some()),
        ("expires_arg", raw.expires_arg.is_some()),
        ("template", raw.template.is_some()),
        ("variables", raw.variables.is_some()),
        ("tolerance", raw.tolerance.is_some()),
    ];
    for (key, set) in md5_only {
        if set {
            err(errs, key, "only applies to mode = \"md5\"");
        }
    }
    if !has_secret {
        err(errs, "secret", "required for mode = \"secret\"");
    }
    let prefix = raw.path_prefix.clone();
    if let Some(p) = &prefix {
        let canonical = crate::path::normalize(p, usize::MAX).is_ok_and(|n| n == *p)
            && crate::path::encode_canonical(p) == *p;
        if !canonical || !p.starts_with('/') || !p.ends_with('/') || p.len() < 2 {
            err(
                errs,
                "path_prefix",
                format!("{p:?} must be a normalized path like \"/p/\" (starts and ends with '/')"),
            );
        }
    }
    Some(Form::Secret { prefix })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::auth::secure_link::tests::{build, raw_md5};

    #[test]
    fn config_errors_name_their_keys() {
        let errs = |raw: &RawConfig| -> Vec<String> {
            let e = SecureLink::new(raw, Path::new(".")).unwrap_err();
            e.into_iter().map(|(k, m)| format!("{k}: {m}")).collect()
        };
        let has = |list: &[String], want: &str| {
            assert!(
                list.iter().any(|e| e.starts_with(want)),
                "{want} not in {list:?}"
            );
        };
        // Everything at once.
        let mut vars = BTreeMap::new();
        vars.insert("uri".to_owned(), "x".to_owned());
        vars.insert("bad-name".to_owned(), "x".to_owned());
        let all = errs(&RawConfig {
            hash_arg: Some("md-5".into()),
            expires_arg: Some("MD-5".into()),
            template: Some("$uri$nope".into()),
            tolerance: Some("30".into()),
            path_prefix: Some("/p/".into()),
            variables: Some(vars),
            ..RawConfig::default()
        });
        for key in [
            "hash_arg:",
            "expires_arg:",
            "template: unknown variable \"$nope\"",
            "tolerance:",
            "path_prefix:",
            "variables.uri:",
            "variables.bad-name:",
        ] {
            has(&all, key);
        }
        has(
            &errs(&RawConfig::default()),
            "secret: required: the template uses $secret",
        );
        has(
            &errs(&raw_md5("$uri$remote_addr", "md5", "e")),
            "template: hashes only",
        );
        has(
            &errs(&raw_md5("$args$secret", "md5", "e").with_secret("k")),
            "template: $args",
        );
        has(
            &errs(&raw_md5("$arg_MD5 k", "md5", "e")),
            "template: $arg_md5",
        );
        has(
            &errs(&raw_md5("$uri k", "md5", "md5")),
            "expires_arg: must differ",
        );
        has(
            &errs(&raw_md5("${uri", "md5", "e")),
            "template: the closing bracket",
        );
        has(
            &errs(&RawConfig {
                mode: Some("sha1".into()),
                ..RawConfig::default()
            }),
            "mode:",
        );
        has(
            &errs(&RawConfig {
                secret: Some("env:TOLLGATE_UNSET_VAR_X".into()),
                ..RawConfig::default()
            }),
            "secret: environment",
        );
        let secret_mode = errs(&RawConfig {
            mode: Some("secret".into()),
            template: Some("$uri".into()),
            tolerance: Some("1s".into()),
            path_prefix: Some("/p".into()),
            ..RawConfig::default()
        });
        for key in [
            "template: only applies",
            "tolerance: only applies",
            "secret: required",
            "path_prefix:",
        ] {
            has(&secret_mode, key);
        }
    }

    #[test]
    fn secrets_never_in_debug() {
        let mut vars = BTreeMap::new();
        vars.insert("salt".to_owned(), "pepper-value-42".to_owned());
        let raw = RawConfig {
            secret: Some("hunter2-secret".into()),
            template: Some("$uri inline-key-99 $salt $secret".into()),
            variables: Some(vars),
            ..RawConfig::default()
        };
        let s = build(&raw);
        let secret_mode = build(&RawConfig {
            mode: Some("secret".into()),
            secret: Some("hunter2-secret".into()),
            ..RawConfig::default()
        });
        for shown in [
            format!("{s:?}"),
            format!("{raw:?}"),
            format!("{secret_mode:?}"),
        ] {
            for needle in ["hunter2", "inline-key-99", "pepper-value-42"] {
                assert!(!shown.contains(needle), "{needle} in {shown}");
            }
            assert!(shown.contains("MASKED"), "{shown}");
        }
    }
}
