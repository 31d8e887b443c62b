//! The JavaScript edge: the only place `wasm_bindgen` appears.
//!
//! It turns JS options into the values of the layers below, runs their decisions with the
//! global `fetch`, `Date.now()` and `setTimeout`, and turns their errors into `QBankError`
//! objects.
//!
//! **May use:** every layer ([`crate::providers`], [`crate::oauth`], [`crate::util`]); nothing
//! below may use it.

use crate::prelude::*;
mod client;
mod errors;
mod http;
mod json;
mod options;
mod qpay;
mod store;
mod support;
mod token_manager;

use wasm_bindgen::prelude::*;

/// The package version (the crate version).
#[wasm_bindgen]
pub fn version() -> String {
    crate::VERSION.into()
}
