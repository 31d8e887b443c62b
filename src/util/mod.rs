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
use alloc::borrow::Cow;

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
/// Domain-free, so it has no error code: the OAuth layer turns one that reaches it into a
/// configuration error (`From<Invalid> for oauth::Error`), and the providers map theirs to the
/// code that fits (an API path refused is an invalid argument).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// What is wrong, and what to do about it.
    pub message: Cow<'static, str>,
}

impl Invalid {
    /// A refusal with a fixed message (no allocation).
    pub const fn new(message: &'static str) -> Self {
        Invalid {
            message: Cow::Borrowed(message),
        }
    }

    /// A refusal with a message composed at run time.
    pub fn owned(message: String) -> Self {
        Invalid {
            message: Cow::Owned(message),
        }
    }
}

impl core::fmt::Display for Invalid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.message)
    }
}

impl core::error::Error for Invalid {}
