//! Plain HTTP request and response values and the time unit: what the sans-IO layers hand to
//! the edge to send, and what the edge feeds back.

use crate::prelude::*;

/// Milliseconds since the Unix epoch, as JavaScript's `Date.now()` gives them.
pub type Millis = u64;

/// One HTTP request to send, exactly as it must go on the wire (minus transport headers).
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, …
    pub method: &'static str,
    /// Absolute URL.
    pub url: String,
    /// Header names and values, in the order they were added.
    pub headers: Vec<(String, String)>,
    /// The body, if any (form-encoded or JSON text).
    pub body: Option<String>,
}

impl core::fmt::Debug for HttpRequest {
    // Headers (Authorization) and body (client_secret) may carry secrets: never print them.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &"[redacted]")
            .field("body", &"[redacted]")
            .finish()
    }
}

/// One HTTP response as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names in lower case, with their values.
    pub headers: Vec<(String, String)>,
    /// The body text (already bounded in size by the transport).
    pub body: String,
}

impl HttpResponse {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
