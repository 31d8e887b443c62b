//! QBank Connect: reading balances ([`balances`]), deciding which URLs an authorized request
//! may go to ([`path`]: account ids as one path segment, API paths under the configured base),
//! and whether an API request is sent again after its answer ([`api_retry`]: 401, 429, 503).
//!
//! **May use:** [`crate::oauth`] and [`crate::util`].

pub mod api_retry;
pub mod balances;
pub mod path;
