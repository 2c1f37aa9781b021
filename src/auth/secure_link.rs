//! The `secure_link` scheme: nginx `ngx_http_secure_link_module`, byte for
//! byte, in its two forms.
//!
//! - `mode = "md5"` (default): `secure_link $arg_<hash_arg>,$arg_<expires_arg>;`
//!   with `secure_link_md5 "<template>";`. The hash argument is
//!   `base64url(MD5(template))`; the template is an nginx variable expression
//!   (see `template`). A valid hash past its expiry is [`Check::Expired`]
//!   (410), anything else wrong is [`Check::Forbidden`] (403), and a request
//!   carrying neither argument is [`Check::Pass`] so that later methods of the
//!   route can decide.
//! - `mode = "secret"`: `secure_link_secret`, the `/<prefix>/<md5 hex>/<link>`
//!   path form with `MD5(link + secret)`. It claims every request (no pass),
//!   like nginx: list it last in a route's `auth`.
//!
//! nginx parity is the invariant: every case of the `nginx_secure_link`,
//! `nginx_secure_link_secret` and `ministra_tmp_link` vectors (confirmed
//! against a real nginx) gives nginx's verdict, including the lenient parts
//! (padding, non-canonical last character, first argument wins, names
//! case-insensitive). The one departure: the secret form hashes the request
//! target re-encoded canonically from the normalized path, because
//! [`AuthRequest`] does not carry the raw target (see [`SecureLink::check`]).
//!
//! Pure core: no I/O after [`SecureLink::new`] (which may read a `file:`
//! secret), no clock (`now` is in the request), no logging. Secrets and
//! template literals (which may hold a secret, nginx-style) never appear in
//! `Debug`. Digests are compared in constant time.

mod config;
mod nginx;
#[cfg(test)]
mod props;
mod template;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use self::template::{Template, Values, Var};
use super::wire::IpText;
use super::{AuthRequest, Check, Identity, Scheme, SignRequest, query};
use crate::path::encode_canonical;
use crate::secret::Secret;

pub use self::config::RawConfig;

/// The compiled `[auth.secure_link]` section.
pub struct SecureLink {
    form: Form,
    secret: Option<Secret>,
}

/// Which nginx directive the section emulates.
enum Form {
    /// `secure_link` + `secure_link_md5`.
    Md5(Md5Form),
    /// `secure_link_secret`, with an optional fixed prefix to skip.
    Secret { prefix: Option<String> },
}

/// The `mode = "md5"` settings.
struct Md5Form {
    hash_arg: String,
    /// `None`: `secure_link $arg_<hash_arg>;`, links never expire.
    expires_arg: Option<String>,
    template: Template,
    variable_names: Vec<String>,
    /// Values of `variables`, in `variable_names` order.
    variables: Vec<Box<[u8]>>,
    /// Seconds a link stays valid past its expiry (clock skew).
    tolerance: u64,
}

impl fmt::Debug for SecureLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SecureLink");
        match &self.form {
            Form::Md5(m) => d
                .field("mode", &"md5")
                .field("hash_arg", &m.hash_arg)
                .field("expires_arg", &m.expires_arg)
                .field("template", &m.template)
                .field("variables", &m.variable_names)
                .field("tolerance", &m.tolerance),
            Form::Secret { prefix } => d.field("mode", &"secret").field("path_prefix", prefix),
        };
        d.field("secret", &self.secret).finish()
    }
}

impl SecureLink {
    /// MD5 of the template rendered for one request.
    fn template_digest(
        &self,
        m: &Md5Form,
        uri: &str,
        ip: &str,
        query: &str,
        exp: &str,
    ) -> [u8; 16] {
        let secret = self.secret.as_ref().map(|s| s.expose().as_bytes());
        let values = Values {
            uri,
            remote_addr: ip,
            query,
            expires: exp,
            secret: secret.unwrap_or_default(),
            configured: &m.variables,
        };
        let mut h = Md5::new();
        m.template.render(&values, &mut |b| h.update(b));
        h.finalize().into()
    }

    /// `MD5(link + secret)`, the `secure_link_secret` digest.
    fn secret_digest(&self, link: &str) -> [u8; 16] {
        let mut h = Md5::new();
        h.update(link.as_bytes());
        if let Some(s) = &self.secret {
            h.update(s.expose().as_bytes());
        }
        h.finalize().into()
    }

    /// `secure_link` + `secure_link_md5`, as nginx evaluates them.
    fn check_md5(&self, m: &Md5Form, req: &AuthRequest<'_>) -> Check {
        let query = req.query.unwrap_or_default();
        let hash = query::arg(query, &m.hash_arg);
        let expires = m.expires_arg.as_deref().map(|name| query::arg(query, name));
        if hash.is_none() && expires.flatten().is_none() {
            return Check::Pass;
        }
        // nginx evaluates `secure_link` to "<hash>[,<expires>]" and splits it
        // at the first comma, so a comma inside the hash argument moves the
        // split point.
        let hash = hash.unwrap_or_default();
        let (hash, exp_text) = match (hash.split_once(','), expires) {
            // The expiry text would contain the second comma: not digits.
            (Some(_), Some(_)) => return Check::Forbidden,
            (Some((h, e)), None) => (h, Some(e)),
            (None, Some(e)) => (hash, Some(e.unwrap_or_default())),
            (None, None) => (hash, None),
        };
        let expires_at = match exp_text.map(nginx::atotm) {
            None => 0,
            Some(Some(t)) if t > 0 => t,
            Some(_) => return Check::Forbidden,
        };
        let Some(presented) = nginx::decode_md5_arg(hash) else {
            return Check::Forbidden;
        };
        let ip = IpText::new(req.client_ip);
        let want = self.template_digest(
            m,
            req.path,
            ip.as_str(),
            query,
            exp_text.unwrap_or_default(),
        );
        if !bool::from(presented.ct_eq(&want)) {
            return Check::Forbidden;
        }
        // Strict `<`: a link whose expiry equals `now` is still valid.
        if expires_at != 0 && expires_at.saturating_add(m.tolerance) < req.now {
            return Check::Expired;
        }
        Check::Allow(Identity::default())
    }

    /// `secure_link_secret`: `/<prefix>/<32 hex>/<link>`, `MD5(link + secret)`.
    ///
    /// nginx hashes the raw request target (query included, nothing
    /// decoded). [`AuthRequest`] carries only the normalized path, so the
    /// target is rebuilt as its canonical encoding ([`encode_canonical`])
    /// plus the raw query. Links made by [`Scheme::sign`] (and any client
    /// sending canonical escapes) verify exactly as in nginx; a client that
    /// escapes differently (`%7e` for `~`, lowercase hex, `//`) fails here
    /// where nginx would compare its raw bytes.
    fn check_secret(&self, prefix: Option<&str>, req: &AuthRequest<'_>) -> Check {
        let mut target = encode_canonical(req.path);
        if let Some(q) = req.query {
            target.push('?');
            target.push_str(q);
        }
        let Some((hex, link)) = nginx::split_secret_target(&target, prefix) else {
            return Check::Forbidden;
        };
        if nginx::hex_matches(hex, &self.secret_digest(link)) {
            Check::Allow(Identity::default())
        } else {
            Check::Forbidden
        }
    }

    /// A `mode = "md5"` link: `<path>?<hash_arg>=<b64url>[&<expires_arg>=<t>]`.
    fn sign_md5(&self, m: &Md5Form, req: &SignRequest<'_>) -> Result<String, String> {
        let path = encoded_normalized(req.path)?;
        let exp_text = match &m.expires_arg {
            Some(_) if req.expires == 0 || req.expires > i64::MAX as u64 => {
                return Err(format!("expiry {} is not a valid unix time", req.expires));
            }
            Some(_) => req.expires.to_string(),
            None => String::new(),
        };
        for part in m.template.parts() {
            if let template::Part::Var(Var::Arg(name)) = part
                && m.expires_arg.as_deref() != Some(&**name)
            {
                return Err(format!(
                    "the template uses $arg_{name}, which a signed link cannot supply"
                ));
            }
        }
        let ip = match (req.client_ip, m.template.uses(&Var::RemoteAddr)) {
            (Some(ip), _) => IpText::new(ip),
            (None, true) => {
                return Err("the template uses $remote_addr: give the client IP".to_owned());
            }
            (None, false) => IpText::new(IpAddr::from([0, 0, 0, 0])),
        };
        let query = match &m.expires_arg {
            Some(name) => format!("{name}={exp_text}"),
            None => String::new(),
        };
        let digest = self.template_digest(m, req.path, ip.as_str(), &query, &exp_text);
        let hash = {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
        };
        Ok(match &m.expires_arg {
            Some(_) => format!("{path}?{}={hash}&{query}", m.hash_arg),
            None => format!("{path}?{}={hash}", m.hash_arg),
        })
    }

    /// A `mode = "secret"` link: the hash inserted after the prefix.
    fn sign_secret(&self, prefix: Option<&str>, req: &SignRequest<'_>) -> Result<String, String> {
        let path = encoded_normalized(req.path)?;
        let split = match prefix {
            Some(p) => path.starts_with(p).then_some(p.len()),
            None => path.get(1..).and_then(|r| r.find('/')).map(|i| i + 2),
        };
        let Some(at) = split.filter(|&at| at < path.len()) else {
            return Err(format!(
                "{} has no link after its first segment{}",
                req.path,
                prefix.map(|p| format!(" / prefix {p}")).unwrap_or_default()
            ));
        };
        let (head, link) = path.split_at(at);
        let hex: String = self
            .secret_digest(link)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(format!("{head}{hex}/{link}"))
    }
}

/// The wire form of a normalized path, refusing paths that are not normalized
/// (the link would hash a path the proxy never sees).
fn encoded_normalized(path: &str) -> Result<String, String> {
    let encoded = encode_canonical(path);
    match crate::path::normalize(&encoded, usize::MAX) {
        Ok(p) if p == path => Ok(encoded),
        Ok(p) => Err(format!("{path:?} is not a normalized path (it is {p:?})")),
        Err(e) => Err(format!("{path:?}: {e}")),
    }
}

impl Scheme for SecureLink {
    fn check(&self, req: &AuthRequest<'_>) -> Check {
        match &self.form {
            Form::Md5(m) => self.check_md5(m, req),
            Form::Secret { prefix } => self.check_secret(prefix.as_deref(), req),
        }
    }

    fn sign(&self, req: &SignRequest<'_>) -> Result<String, String> {
        match &self.form {
            Form::Md5(m) => self.sign_md5(m, req),
            Form::Secret { prefix } => self.sign_secret(prefix.as_deref(), req),
        }
    }

    fn params(&self) -> Vec<String> {
        match &self.form {
            Form::Md5(m) => std::iter::once(m.hash_arg.clone())
                .chain(m.expires_arg.clone())
                .collect(),
            // The secret form reads the path; its query is part of the hash.
            Form::Secret { .. } => Vec::new(),
        }
    }
}
