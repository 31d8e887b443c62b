//! The sans-IO core: pure functions and state machines over plain values.
//!
//! Nothing in here reads a clock, touches the network or knows about JavaScript. Time comes in
//! as [`Millis`] arguments, HTTP goes out as [`HttpRequest`] values and comes back as
//! [`HttpResponse`] values. That is what lets the host tests drive expiry edges, clock jumps and
//! a thousand concurrent callers deterministically in milliseconds.

use crate::prelude::*;
pub mod balances;
pub mod cache;
pub mod config;
pub mod error;
pub mod json;
pub mod oauth;
pub mod path;
pub mod policy;
pub mod qpay;
pub mod redact;
pub mod secret;
pub mod url;
pub mod www_auth;

pub use error::{Error, ErrorCode};
pub use secret::Secret;

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

/// How the client authenticates at the token endpoint (RFC 6749 §2.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AuthMethod {
    /// `client_id` and `client_secret` in the form body (what the providers ask for).
    #[default]
    ClientSecretPost,
    /// HTTP Basic with form-encoded id and secret.
    ClientSecretBasic,
}

/// A successfully parsed token response (RFC 6749 §5.1), before any lifetime decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenResponse {
    /// The access token; only RFC 6750 b64token characters.
    pub access_token: Secret,
    /// The granted scope, if the server said; otherwise `None` (granted = requested).
    pub scope: Option<Vec<String>>,
    /// `expires_in`, converted to milliseconds, if present and valid.
    pub expires_in_ms: Option<u64>,
    /// The `exp` claim of the token, in epoch milliseconds, if the token is a JWT carrying one.
    pub jwt_exp_ms: Option<Millis>,
}

/// Appends the decimal form of `n` to `out`.
///
/// Used instead of `format!` so the wasm build does not pull in the formatting machinery.
pub fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in digits[..len].iter().rev() {
        out.push(d as char);
    }
}

/// Concatenates string pieces into one `String` (a `format!` without the formatting machinery).
pub fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
}

/// `s[from..to]` without a panic path. A `&str` index that the compiler cannot prove to be on
/// a char boundary links core's slice panic, and through its message the formatting machinery
/// (`char` Debug escapes, Unicode tables, integer padding: about 8 KiB of wasm). The indices the
/// core slices at are found ASCII bytes, so always boundaries; were one not, the result would be
/// the empty string (which the URL parser refuses) rather than a trap that aborts a Worker isolate.
pub fn sub(s: &str, from: usize, to: usize) -> &str {
    s.get(from..to).unwrap_or_default()
}

/// `s[from..]` without a panic path (see [`sub`]).
pub fn tail(s: &str, from: usize) -> &str {
    s.get(from..).unwrap_or_default()
}

/// Where `needle` first occurs in `hay`, as a byte index (`str::find` with a `&str` pattern
/// links core's two-way searcher and its slice panic; the needles here are a few bytes long).
pub fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn push_u64_writes_every_digit() {
        for n in [0u64, 7, 10, 300, 1_000_000_007, u64::MAX] {
            let mut s = String::from("n=");
            push_u64(&mut s, n);
            assert_eq!(s, ["n=", &n.to_string()].concat());
        }
    }

    #[test]
    fn slicing_helpers_never_panic() {
        assert_eq!(sub("abcdef", 1, 3), "bc");
        assert_eq!(tail("abcdef", 4), "ef");
        assert_eq!(tail("abc", 3), "");
        // Off a char boundary or past the end: empty, not a panic.
        assert_eq!(sub("\u{e9}x", 1, 2), "");
        assert_eq!(sub("abc", 2, 9), "");
        assert_eq!(tail("\u{e9}", 1), "");
        assert_eq!(tail("abc", 4), "");
        assert_eq!(find_bytes(b"a::b::", b"::"), Some(1));
        assert_eq!(find_bytes(b"a:b", b"::"), None);
        assert_eq!(find_bytes(b"", b"::"), None);
        assert_eq!(find_bytes(b"ab", b""), Some(0));
        for (hay, needle) in [
            ("x..y", ".."),
            ("..", ".."),
            ("a.b", ".."),
            ("caf\u{e9}\u{e9}", "\u{e9}"),
        ] {
            assert_eq!(
                find_bytes(hay.as_bytes(), needle.as_bytes()),
                hay.find(needle)
            );
        }
    }
}
