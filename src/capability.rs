//! Session capabilities, segment tags and content keys derived from `[keys] master`
//! (docs/hls.md §3–5). Placeholder; being written.

/// A byte range of an origin resource served as a resource of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    /// First byte.
    pub offset: u64,
    /// Length in bytes; `None` = to the end of the resource.
    pub length: Option<u64>,
}

/// How one URI is served, as its segment tag (`tgs`) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Serve {
    /// Encrypt with the content key of (`inc`, `period`), IV = `msn`.
    Encrypt {
        /// Stream incarnation.
        inc: u64,
        /// Key period.
        period: u64,
        /// Media sequence number (the IV).
        msn: u64,
        /// Serve only this range of the origin resource.
        range: Option<ByteRange>,
    },
    /// Serve as the origin has it.
    Clear {
        /// Serve only this range of the origin resource.
        range: Option<ByteRange>,
    },
}

/// Temporary until the capability core lands: accepts what docs/hls.md §3 allows.
pub fn parse_master(text: &str) -> Result<Vec<u8>, String> {
    Ok(text.as_bytes().to_vec())
}
// STUB
/// stub
#[derive(Debug, Clone)]
pub struct MasterKeys;
/// stub
#[derive(Debug, Clone)]
pub struct Claims {
    pub sid: u64,
    pub expires: u64,
    pub user: Option<String>,
    pub bind_ip: bool,
}
/// stub
pub struct Scope<'a> {
    pub route: &'a str,
    pub channel: &'a str,
    pub client_ip: std::net::IpAddr,
}
/// stub
#[derive(Debug)]
pub enum CapError {
    Malformed,
}
impl MasterKeys {
    pub fn new(_m: &[u8]) -> Self {
        Self
    }
    pub fn content_key(&self, _r: &str, _c: &str, _i: u64, _p: u64) -> [u8; 16] {
        [0; 16]
    }
    pub fn session_id(&self, _u: Option<&str>, _r: &str, _c: &str, _ip: std::net::IpAddr) -> u64 {
        0
    }
    pub fn mint(&self, _c: &Claims, _s: &Scope) -> String {
        String::new()
    }
    pub fn verify(&self, _t: &str, _s: &Scope, _now: u64) -> Result<Claims, CapError> {
        Err(CapError::Malformed)
    }
    pub fn sign_tag(&self, _r: &str, _c: &str, _p: &str, _s: &Serve) -> String {
        String::new()
    }
    pub fn verify_tag(&self, _v: &str, _r: &str, _c: &str, _p: &str) -> Result<Serve, CapError> {
        Err(CapError::Malformed)
    }
}
