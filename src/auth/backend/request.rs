//! The GET query string sent to a Flussonic-compatible authorization
//! backend (auth-schemes.md §5.1, `authref.py` `flussonic_backend_query`).
//!
//! Pure: builds a string, nothing else. Parameter order is the reference's
//! (`name`, `ip`, `proto`, `request_type`, `request_number`, `session_id`,
//! `stream_clients`, `total_clients`, `token`, then the optional ones in the
//! order they were added); order is not significant to a backend, but a
//! fixed order makes the string comparable with the vectors.
//!
//! Names and values go through [`query::percent_encode`]: byte for byte what
//! the reference's `urlencode` writes, except that a space becomes `%20`
//! rather than `+` (both decode to a space in every form decoder).
//!
//! The token is a credential: [`BackendQuery`]'s `Debug` masks it and shows
//! only the names of optional parameters (`qs` may carry credentials too).

use std::fmt;
use std::net::IpAddr;

use crate::auth::query;

/// Why the backend is asked (`request_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestType {
    /// First look-up for a session key not in the cache.
    NewSession,
    /// Re-check once `X-AuthDuration` has run out.
    UpdateSession,
}

impl RequestType {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestType::NewSession => "new_session",
            RequestType::UpdateSession => "update_session",
        }
    }
}

/// Builder for one backend request's query string. The required inputs go
/// to [`BackendQuery::new`]; the rest default like the reference (counters
/// 0, no token, no optional parameters).
#[derive(Clone)]
pub struct BackendQuery {
    name: String,
    ip: IpAddr,
    proto: String,
    request_type: RequestType,
    session_id: String,
    token: Option<String>,
    request_number: u64,
    stream_clients: u64,
    total_clients: u64,
    /// Optional parameters (`user_agent`, `referer`, …) in insertion order.
    extra: Vec<(String, String)>,
}

impl BackendQuery {
    /// A query for stream `name` played by `ip` over `proto` (`hls`, …).
    pub fn new(
        name: &str,
        ip: IpAddr,
        proto: &str,
        request_type: RequestType,
        session_id: &str,
    ) -> Self {
        Self {
            name: name.to_owned(),
            ip,
            proto: proto.to_owned(),
            request_type,
            session_id: session_id.to_owned(),
            token: None,
            request_number: 0,
            stream_clients: 0,
            total_clients: 0,
            extra: Vec::new(),
        }
    }

    /// The viewer's token (`token=`); omitted when never set.
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// `request_number`: 0 for the first look-up of a session, then 1, 2, ….
    pub fn request_number(mut self, n: u64) -> Self {
        self.request_number = n;
        self
    }

    /// `stream_clients` and `total_clients`: current viewer counts.
    pub fn clients(mut self, stream: u64, total: u64) -> Self {
        self.stream_clients = stream;
        self.total_clients = total;
        self
    }

    /// `user_agent` from the client request.
    pub fn user_agent(self, v: &str) -> Self {
        self.param("user_agent", v)
    }

    /// `referer` from the client request.
    pub fn referer(self, v: &str) -> Self {
        self.param("referer", v)
    }

    /// `host` from the client request.
    pub fn host(self, v: &str) -> Self {
        self.param("host", v)
    }

    /// `qs`: the client's original query string (encoded again as a value).
    pub fn qs(self, v: &str) -> Self {
        self.param("qs", v)
    }

    /// `duration` (seconds) and `bytes` of the session so far, on updates.
    pub fn progress(self, duration_secs: u64, bytes: u64) -> Self {
        self.param("duration", &duration_secs.to_string())
            .param("bytes", &bytes.to_string())
    }

    /// Any other parameter, appended after those already added.
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.extra.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The full query string (no leading `?`), every name and value
    /// percent-encoded.
    pub fn to_query_string(&self) -> String {
        let fixed = [
            ("name", self.name.clone()),
            ("ip", self.ip.to_string()),
            ("proto", self.proto.clone()),
            ("request_type", self.request_type.as_str().to_owned()),
            ("request_number", self.request_number.to_string()),
            ("session_id", self.session_id.clone()),
            ("stream_clients", self.stream_clients.to_string()),
            ("total_clients", self.total_clients.to_string()),
        ];
        let token = self.token.as_deref().map(|t| ("token", t));
        let fixed = fixed.iter().map(|(k, v)| (*k, v.as_str()));
        let extra = self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        fixed
            .chain(token)
            .chain(extra)
            .map(|(k, v)| format!("{}={}", query::percent_encode(k), query::percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

impl fmt::Debug for BackendQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendQuery")
            .field("name", &self.name)
            .field("ip", &self.ip)
            .field("proto", &self.proto)
            .field("request_type", &self.request_type)
            .field("session_id", &self.session_id)
            .field("token", &self.token.as_ref().map(|_| "MASKED"))
            .field("request_number", &self.request_number)
            .field("stream_clients", &self.stream_clients)
            .field("total_clients", &self.total_clients)
            // Values may hold credentials too (`qs` carries the client's query).
            .field(
                "extra",
                &self.extra.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}
