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

use alloc::boxed::Box;
use core::future::Future;
use core::pin::Pin;
use js_sys::Promise;
use wasm_bindgen::prelude::*;

/// What an async method resolves to or rejects with.
type Settled = Result<JsValue, JsValue>;

/// `future_to_promise` for every async method: the future is boxed, so wasm-bindgen-futures'
/// machinery (the Promise executor, the task, their drops) exists once, not once per future
/// type (about 1 KiB of wasm for the five).
pub fn promise(future: impl Future<Output = Settled> + 'static) -> Promise {
    boxed_promise(Box::pin(future))
}

#[inline(never)]
fn boxed_promise(future: Pin<Box<dyn Future<Output = Settled>>>) -> Promise {
    wasm_bindgen_futures::future_to_promise(future)
}

/// The package version (the crate version).
#[wasm_bindgen]
pub fn version() -> String {
    crate::VERSION.into()
}
