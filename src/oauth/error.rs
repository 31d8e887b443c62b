//! Typed errors with stable codes.
//!
//! One small struct rather than a giant enum: the [`ErrorCode`] says what class of failure it is
//! (stable, documented, matched on by callers), the other fields carry what the server said.
//! Messages are written by us and never contain a secret or a token; text that comes from a
//! server is scrubbed of known secrets by the edge before it is surfaced.

use crate::prelude::*;
use crate::util::Invalid;
use alloc::boxed::Box;
use core::fmt;

/// Declares [`ErrorCode`], its `as_str()` and `ErrorCode::ALL` from one list, so a code cannot be
/// missing from either. The list is the one source of the codes: `tests/contracts.rs` checks
/// `index.d.ts`'s `QBankErrorCode`, the README's Errors table and the codes `support.js` throws
/// against `ErrorCode::ALL`.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => $code:literal,)*) => {
        /// The stable error codes. `as_str()` is the contract seen from JavaScript as `error.code`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The stable string form, as exposed to JavaScript.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }
        }
    };
}

error_codes! {
    /// RFC 6749 §5.2 `invalid_request` from the token endpoint.
    InvalidRequest => "invalid_request",
    /// RFC 6749 §5.2 `invalid_client`: wrong id or secret (or wrong environment). Never retried.
    InvalidClient => "invalid_client",
    /// RFC 6749 §5.2 `invalid_grant`.
    InvalidGrant => "invalid_grant",
    /// RFC 6749 §5.2 `unauthorized_client`: the client may not use this grant.
    UnauthorizedClient => "unauthorized_client",
    /// RFC 6749 §5.2 `unsupported_grant_type`.
    UnsupportedGrantType => "unsupported_grant_type",
    /// RFC 6749 §5.2 `invalid_scope`.
    InvalidScope => "invalid_scope",
    /// Any other failure answer from the token endpoint (5xx, unknown error code, a redirect).
    TokenEndpointError => "token_endpoint_error",
    /// HTTP 429 (or a server that asked us to slow down); see `retry_after_ms`.
    RateLimited => "rate_limited",
    /// The request took longer than the configured timeout.
    Timeout => "timeout",
    /// The request could not be sent or the connection failed.
    Network => "network",
    /// The server answered something we cannot use (bad JSON, missing field, wrong token type).
    InvalidResponse => "invalid_response",
    /// The configuration is wrong; the message says what to fix.
    Config => "config",
    /// The manager or client was closed.
    Closed => "closed",
    /// The caller's `AbortSignal` fired.
    Aborted => "aborted",
    /// An argument (such as an account id) was refused before any request was made.
    InvalidArgument => "invalid_argument",
    /// The API refused the token even after one refresh (HTTP 401).
    Unauthorized => "unauthorized",
    /// The API needs a scope the token lacks (HTTP 403 `insufficient_scope`).
    InsufficientScope => "insufficient_scope",
    /// HTTP 403 for another reason.
    Forbidden => "forbidden",
    /// HTTP 404.
    NotFound => "not_found",
    /// HTTP 5xx from the API after the bounded retries.
    ServerError => "server_error",
    /// Any other unexpected API status.
    ApiError => "api_error",
    /// A QPay client secret's `reveal()` called a second time (thrown by the JavaScript half:
    /// the value is not kept after the first).
    SecretConsumed => "secret_consumed",
}

impl ErrorCode {
    /// Maps an RFC 6749 §5.2 `error` value to a code; unknown values are a token endpoint error.
    pub fn from_oauth(error: &str) -> ErrorCode {
        match error {
            "invalid_request" => ErrorCode::InvalidRequest,
            "invalid_client" => ErrorCode::InvalidClient,
            "invalid_grant" => ErrorCode::InvalidGrant,
            "unauthorized_client" => ErrorCode::UnauthorizedClient,
            "unsupported_grant_type" => ErrorCode::UnsupportedGrantType,
            "invalid_scope" => ErrorCode::InvalidScope,
            "slow_down" | "temporarily_unavailable" => ErrorCode::RateLimited,
            _ => ErrorCode::TokenEndpointError,
        }
    }
}

/// A failure, with everything the caller needs to decide what to do next.
///
/// One pointer wide: the fields live in a box ([`ErrorData`], reached through `Deref`), so a
/// `Result<T, Error>` stays small and every `?` moves a pointer, not ~80 bytes with their drop
/// glue (in the wasm that was KiBs of copies across the config, OAuth and API error paths).
#[derive(Clone, PartialEq, Eq)]
pub struct Error(Box<ErrorData>);

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl core::ops::Deref for Error {
    type Target = ErrorData;
    fn deref(&self) -> &ErrorData {
        &self.0
    }
}

impl core::ops::DerefMut for Error {
    fn deref_mut(&mut self) -> &mut ErrorData {
        &mut self.0
    }
}

/// The fields of an [`Error`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorData {
    /// The stable class of failure.
    pub code: ErrorCode,
    /// A sentence for humans, saying what to do next. Never contains a secret.
    pub message: String,
    /// The HTTP status, where there was an answer.
    pub status: Option<u16>,
    /// RFC 6749 §5.2 `error`, verbatim.
    pub oauth_error: Option<String>,
    /// RFC 6749 §5.2 `error_description` (scrubbed of secrets by the edge).
    pub oauth_error_description: Option<String>,
    /// How long the server asked us to wait, from `Retry-After`.
    pub retry_after_ms: Option<u64>,
    /// Whether the request may have reached the server (and so may have had an effect).
    pub may_have_reached_server: bool,
}

impl Error {
    /// A new error with just a code and a message; the request is assumed not sent.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error(Box::new(ErrorData {
            code,
            message: message.into(),
            status: None,
            oauth_error: None,
            oauth_error_description: None,
            retry_after_ms: None,
            may_have_reached_server: false,
        }))
    }

    /// Shorthand for a configuration error.
    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Config, message)
    }

    /// The server answered something we cannot use: [`ErrorCode::InvalidResponse`], and the
    /// request reached the server.
    pub fn invalid_response(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::InvalidResponse, message).reached(true)
    }

    /// Sets the HTTP status (an answer came, so the request reached the server).
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self.may_have_reached_server = true;
        self
    }

    /// Marks whether the request may have reached the server.
    pub fn reached(mut self, may_have: bool) -> Self {
        self.may_have_reached_server = may_have;
        self
    }

    /// Sets `retry_after_ms`.
    pub fn with_retry_after(mut self, ms: Option<u64>) -> Self {
        self.retry_after_ms = ms;
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl core::error::Error for Error {}

/// A refusal from the domain-free layer that reaches the OAuth layer unhandled is a
/// configuration error: what `util` checks on this path are configured values (the token URL,
/// the API base URL). The message is kept word for word.
impl From<Invalid> for Error {
    fn from(why: Invalid) -> Self {
        Error::config(why.message())
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn oauth_codes_map_to_stable_strings() {
        for code in [
            "invalid_request",
            "invalid_client",
            "invalid_grant",
            "unauthorized_client",
            "unsupported_grant_type",
            "invalid_scope",
        ] {
            assert_eq!(ErrorCode::from_oauth(code).as_str(), code);
        }
        assert_eq!(
            ErrorCode::from_oauth("server_error"),
            ErrorCode::TokenEndpointError
        );
        assert_eq!(ErrorCode::from_oauth("slow_down"), ErrorCode::RateLimited);
    }

    #[test]
    fn url_refusals_are_config_errors_word_for_word() {
        use crate::util::url::{check_endpoint_url, parse_url};
        let refusals = [
            parse_url("").unwrap_err(),
            parse_url("https://h/a b").unwrap_err(),
            parse_url("https://[::1/").unwrap_err(),
            check_endpoint_url("tokenUrl", "http://auth.example/token", true, false).unwrap_err(),
            check_endpoint_url("tokenUrl", "https://h/token\n", false, false).unwrap_err(),
            check_endpoint_url("apiBaseUrl", "https://u:pw@h/", false, true).unwrap_err(),
        ];
        for why in refusals {
            let message = why.message();
            let e = Error::from(why);
            assert_eq!(e.code, ErrorCode::Config);
            assert_eq!(e.message, message);
            assert!(!e.may_have_reached_server);
        }
        assert_eq!(
            Error::from(parse_url("").unwrap_err()).message,
            "invalid URL: it is empty"
        );
    }

    #[test]
    fn status_implies_the_request_reached_the_server() {
        let e = Error::new(ErrorCode::ServerError, "x").with_status(500);
        assert!(e.may_have_reached_server);
        assert_eq!(e.status, Some(500));
    }
}
