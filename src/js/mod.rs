//! The JavaScript edge: the only place `wasm_bindgen` appears.
//!
//! It turns JS options into core values, runs the core's decisions with the global `fetch`,
//! `Date.now()` and `setTimeout`, and turns core errors into `QBankError` objects.

use crate::prelude::*;
mod client;
mod errors;
mod http;
mod json;
mod options;
mod qpay;
mod support;
mod token_manager;

use wasm_bindgen::prelude::*;

/// The package version (the crate version).
#[wasm_bindgen]
pub fn version() -> String {
    crate::VERSION.into()
}
