//! Bindings to `store.js`, the store driver: the I/O of the fleet's store actions
//! ([`crate::oauth::fleet::Action`]), with the token encrypted at rest. Every promise resolves,
//! never rejects, to a plain value: an answer code (see `store.js`) or a read entry. Owners and
//! stamps (u64) travel as two 32-bit halves.

use js_sys::Promise;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/js/store.js")]
extern "C" {
    /// The driver of `store`: derives the keys from `key_material` (not kept) and names the
    /// entry after `identity` (the core's `CacheIdentity` bytes).
    #[wasm_bindgen(js_name = openStore)]
    pub fn open_store(
        store: &JsValue,
        key_material: &str,
        identity: &[u8],
        timeout_ms: f64,
    ) -> JsValue;

    /// Whether `store` is a coordinator (`durableObjectStore`): it makes the token requests
    /// itself, and a read sends it the resolved options.
    #[wasm_bindgen(js_name = isCoordinator)]
    pub fn is_coordinator(store: &JsValue) -> bool;

    /// Reads the entry: `[token, scope, issuedAt, expiresAt, stamp's halves]`, or a code.
    /// `options`: a coordinator's (see `Config::coordinator_options`), else `undefined`.
    #[wasm_bindgen(js_name = storeRead)]
    pub fn read(handle: &JsValue, options: &JsValue) -> Promise;

    /// Tries the lease: a code (acquired, held, unsupported, or a failure).
    #[wasm_bindgen(js_name = storeLease)]
    pub fn lease(handle: &JsValue, owner_hi: f64, owner_lo: f64, ttl_ms: f64) -> Promise;

    /// Encrypts and writes an entry: a code.
    #[allow(clippy::too_many_arguments)]
    #[wasm_bindgen(js_name = storeWrite)]
    pub fn write(
        handle: &JsValue,
        token: &str,
        scope: &JsValue,
        issued_at: f64,
        expires_at: f64,
        stamp_hi: f64,
        stamp_lo: f64,
    ) -> Promise;

    /// Releases the lease if this owner holds it: a code.
    #[wasm_bindgen(js_name = storeRelease)]
    pub fn release(handle: &JsValue, owner_hi: f64, owner_lo: f64) -> Promise;

    /// Deletes the entry if it is the one last read with this stamp: a code.
    #[wasm_bindgen(js_name = storeDelete)]
    pub fn delete(handle: &JsValue, stamp_hi: f64, stamp_lo: f64) -> Promise;
}
