//! QBank Connect: reading balances ([`balances`]) and deciding which URLs an authorized request
//! may go to ([`path`]: account ids as one path segment, API paths under the configured base).
//!
//! **May use:** [`crate::oauth`] and [`crate::util`].

pub mod balances;
pub mod path;
