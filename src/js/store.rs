//! Bindings to `store.js`, the store driver: the I/O of the fleet's store actions
//! ([`crate::oauth::fleet::Action`]), with the token encrypted at rest. Every promise resolves,
//! never rejects, to a plain value ("error" or "timeout" for a failure).

use js_sys::{Function, Promise};
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

    /// Reads the entry: an entry object, null, "garbage", "error" or "timeout".
    #[wasm_bindgen(js_name = storeRead)]
    pub fn read(handle: &JsValue) -> Promise;

    /// Tries the lease: "acquired", "held", "unsupported", "error" or "timeout".
    #[wasm_bindgen(js_name = storeLease)]
    pub fn lease(handle: &JsValue, owner: &str, ttl_ms: f64) -> Promise;

    /// Encrypts and writes an entry: true, "error" or "timeout".
    #[wasm_bindgen(js_name = storeWrite)]
    pub fn write(
        handle: &JsValue,
        token: &str,
        scope: &JsValue,
        issued_at: f64,
        expires_at: f64,
        stamp: &str,
    ) -> Promise;

    /// Releases the lease if `owner` holds it: true, "error" or "timeout".
    #[wasm_bindgen(js_name = storeRelease)]
    pub fn release(handle: &JsValue, owner: &str) -> Promise;

    /// Deletes the entry if it is the one last read with `stamp`: true, "error" or "timeout".
    #[wasm_bindgen(js_name = storeDelete)]
    pub fn delete(handle: &JsValue, stamp: &str) -> Promise;

    /// `setTimeout`, not unref'd: the fleet's wakeups while callers wait.
    #[wasm_bindgen(js_name = setTimer)]
    pub fn set_timer(callback: &Function, ms: f64) -> JsValue;
}
