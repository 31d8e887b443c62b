//! The OAuth 2.0 client, sans-IO: pure functions and state machines over plain values.
//!
//! - [`token`]: the token request (RFC 6749 §4.4, §4.3, §2.3.1) and the reading of its answer
//!   (§5.1, §5.2), the JWT `exp` claim, the `expires_in` rules;
//! - [`policy`]: when to refresh and how long to back off; [`cache`]: the token cache's state
//!   machine (single flight, backoff, lifetimes); [`fleet`]: many instances sharing one token
//!   through a store (the cache identity, leases, fallback when the store fails);
//! - [`config`]: checks of credentials, scopes, extra parameters, durations and option names;
//! - [`error`]: errors with stable codes; [`secret`]: a string whose `Debug` is `[redacted]`.
//!
//! Nothing in here reads a clock, touches the network or knows about JavaScript. Time comes in
//! as [`Millis`] arguments, HTTP goes out as [`HttpRequest`] values and comes back as
//! [`HttpResponse`] values. That is what lets the host tests drive expiry edges, clock jumps and
//! a thousand concurrent callers deterministically in milliseconds.
//!
//! **May use:** [`crate::util`] only.
//!
//! [`Millis`]: crate::util::Millis
//! [`HttpRequest`]: crate::util::HttpRequest
//! [`HttpResponse`]: crate::util::HttpResponse

pub mod cache;
pub mod config;
pub mod error;
pub mod fleet;
pub mod policy;
pub mod secret;
pub mod token;

pub use error::{Error, ErrorCode};
pub use secret::Secret;
pub use token::{AuthMethod, TokenResponse};
