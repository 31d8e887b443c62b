//! Bindings to `support.js`, the small hand-written JavaScript half of the edge.

use crate::prelude::*;
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/js/support.js")]
extern "C" {
    /// Builds a `QBankError` (a real `Error` subclass) with a stable `code`.
    #[wasm_bindgen(js_name = makeError)]
    pub fn make_error(code: &str, message: &str, fields: &JsValue) -> JsValue;

    /// The frozen token object handed to callers (redacted in JSON, String() and inspect).
    #[wasm_bindgen(js_name = makeToken)]
    pub fn make_token(access_token: &str, expires_at: f64, scope: js_sys::Array) -> JsValue;

    /// A `OneTimeSecret` holding `value`.
    #[wasm_bindgen(js_name = makeOneTimeSecret)]
    pub fn make_one_time_secret(value: &str) -> JsValue;

    /// A new, empty fast-path slot.
    #[wasm_bindgen(js_name = makeSlot)]
    pub fn make_slot() -> JsValue;

    /// Publishes a token into a fast-path slot.
    #[wasm_bindgen(js_name = publishSlot)]
    pub fn publish_slot(slot: &JsValue, token: &JsValue, since: f64, until: f64);

    /// Empties a fast-path slot.
    #[wasm_bindgen(js_name = clearSlot)]
    pub fn clear_slot(slot: &JsValue);

    /// getBalance's result from what `providers::qbank::balances::balance_read` read: a plan (a number) or
    /// the result's JSON text.
    #[wasm_bindgen(js_name = balanceResult)]
    pub fn balance_result(read: &JsValue, account_id: &str, body: &str) -> JsValue;

    /// True in a web page.
    #[wasm_bindgen(js_name = isBrowser)]
    pub fn is_browser() -> bool;

    /// True in Cloudflare Workers.
    #[wasm_bindgen(js_name = isWorkers)]
    pub fn is_workers() -> bool;

    /// `Date.now()`: the one clock read of the crate.
    pub fn now() -> f64;

    /// `Math.random()`, to seed the jitter.
    pub fn random() -> f64;

    /// `setTimeout`, unref'd where the runtime allows it unless `keep_alive`.
    #[wasm_bindgen(js_name = setUnrefTimeout)]
    pub fn set_unref_timeout(callback: &Function, ms: f64, keep_alive: bool) -> JsValue;

    /// `clearTimeout`.
    #[wasm_bindgen(js_name = clearTimer)]
    pub fn clear_timer(handle: &JsValue);

    /// Waits for a shared promise for one caller: abortable, with a watchdog.
    #[wasm_bindgen(js_name = waitShared)]
    pub fn wait_shared(promise: &Promise, signal: &JsValue, watchdog_ms: f64) -> Promise;

    /// Whether a value is the watchdog's marker.
    #[wasm_bindgen(js_name = isStale)]
    pub fn is_stale(value: &JsValue) -> bool;

    /// Whether a value is an `AbortSignal` (or quacks like one: `aborted` and `addEventListener`).
    #[wasm_bindgen(js_name = isSignal)]
    pub fn is_signal(value: &JsValue) -> bool;

    /// Whether an `AbortSignal` (or undefined) has fired.
    #[wasm_bindgen(js_name = isAborted)]
    pub fn is_aborted(signal: &JsValue) -> bool;

    /// The `aborted` error.
    #[wasm_bindgen(js_name = abortError)]
    pub fn abort_error() -> JsValue;

    /// Calls `waitUntil(promise settled either way)`, swallowing what it throws.
    #[wasm_bindgen(js_name = keepAlive)]
    pub fn keep_alive(wait_until: &Function, promise: &Promise);

    /// Marks a promise as handled.
    pub fn quiet(promise: &Promise);

    /// Calls a user callback, swallowing what it throws.
    #[wasm_bindgen(js_name = callSafely)]
    pub fn call_safely(f: &Function, arg: &JsValue);

    /// Resolves after `ms`; rejects with `aborted` when the signal fires.
    pub fn sleep(ms: f64, signal: &JsValue) -> Promise;

    /// Whether a fetch init's body can be sent again.
    pub fn replayable(init: &JsValue) -> bool;

    /// The upper-cased method of a fetch init.
    #[wasm_bindgen(js_name = methodOf)]
    pub fn method_of(init: &JsValue) -> String;

    /// The authorized fetch; never rejects.
    #[wasm_bindgen(js_name = fetchWithToken)]
    pub fn fetch_with_token(
        fetch: &JsValue,
        url: &str,
        init: &JsValue,
        token: &str,
        timeout_ms: f64,
    ) -> Promise;

    /// Sends one HTTP request; never rejects.
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        fetch: &JsValue,
        method: &str,
        url: &str,
        headers: &JsValue,
        body: &JsValue,
        timeout_ms: f64,
        max_bytes: f64,
        signal: &JsValue,
    ) -> Promise;
}
