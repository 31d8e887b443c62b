//! The providers: the protocol rules of one bank each, on top of the OAuth client.
//!
//! - [`qbank`]: QBank Connect: balances, account ids, the API paths a Bearer token may reach, and
//!   when an API request is sent again.
//! - [`qpay`]: QPay: the Keycloak realm's token URL and the Credentials API.
//!
//! **May use:** [`crate::oauth`] and [`crate::util`]; never the JavaScript edge.

pub mod qbank;
pub mod qpay;
