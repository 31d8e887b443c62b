//! Domain-free utilities: the pieces any HTTP client could use, each written once.
//!
//! Exact JSON ([`json`]), a strict URL parser ([`url`]), the percent, form, base64 and hex
//! encoders ([`encode`]), HTTP dates and `Retry-After` ([`http_date`]), `WWW-Authenticate`
//! ([`www_auth`]), scrubbing secrets out of text ([`redact`]), small text helpers ([`text`]),
//! a seeded random number generator ([`rng`]) and the plain HTTP request and response values
//! ([`http`]).
//!
//! **May use:** nothing else in the crate (only `alloc` and `core`). Nothing here knows about
//! OAuth, a bank or JavaScript; it reads no clock and touches no network. Its fallible
//! functions say why with an [`Invalid`] (or [`json::JsonError`]); the layers above give that
//! a stable error code.

use crate::prelude::*;

pub mod encode;
pub mod http;
pub mod http_date;
pub mod json;
pub mod redact;
pub mod rng;
pub mod text;
pub mod url;
pub mod www_auth;

pub use http::{HttpRequest, HttpResponse, Millis};
pub use text::{concat, find_bytes, push_u64, sub, tail};

/// Why a check in this layer refused its input: a sentence written by us that says what is
/// wrong and never repeats the input (a URL may carry a password, a body may carry a token).
///
/// The sentence is kept in three static parts, `what` + `lead` + `why` (`tokenUrl` + ` is not a
/// usable URL: ` + `it contains a space; …`), so a refusal is `Copy` and costs no allocation
/// until [`message`](Invalid::message) writes it out. Domain-free, so it has no error code: the
/// OAuth layer turns one that reaches it into a configuration error (`From<Invalid> for
/// oauth::Error`), and the providers put `why` into their own sentences and codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// What was refused, as the caller named it (`tokenUrl`), or empty.
    pub what: &'static str,
    /// The words between `what` and `why` (` is not a usable URL: `), or empty.
    pub lead: &'static str,
    /// What is wrong, and what to do about it.
    pub why: &'static str,
}

impl Invalid {
    /// A refusal that is just its reason.
    pub const fn new(why: &'static str) -> Self {
        Invalid {
            what: "",
            lead: "",
            why,
        }
    }

    /// The same reason, put after `what` and `lead`.
    pub const fn about(self, what: &'static str, lead: &'static str) -> Self {
        Invalid {
            what,
            lead,
            why: self.why,
        }
    }

    /// The whole sentence.
    pub fn message(&self) -> String {
        concat(&[self.what, self.lead, self.why])
    }
}

impl core::fmt::Display for Invalid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.what)?;
        f.write_str(self.lead)?;
        f.write_str(self.why)
    }
}

impl core::error::Error for Invalid {}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_is_its_three_parts_in_one_sentence() {
        let why = Invalid::new("it must start with https://");
        assert_eq!(why.message(), "it must start with https://");
        let about = why.about("tokenUrl", " is not a usable URL: ");
        assert_eq!(
            about.message(),
            "tokenUrl is not a usable URL: it must start with https://"
        );
        assert_eq!(about.to_string(), about.message());
        assert_eq!(
            url::check_endpoint_url("tokenUrl", "ftp://h/", false, false).unwrap_err(),
            about
        );
    }
}
