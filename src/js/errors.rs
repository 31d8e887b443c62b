//! Core errors to `QBankError` objects.

use crate::oauth::Error;
use js_sys::{Object, Reflect};
use wasm_bindgen::JsValue;

use super::support::make_error;

/// Sets `obj[key] = value`; a failure (impossible on a plain object) is ignored.
pub fn set(obj: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

/// A `QBankError` for a core error.
pub fn to_js(e: &Error) -> JsValue {
    to_js_with(e, &[])
}

/// A `QBankError` for a core error, with more fields (`requiredScope`, `problem`).
pub fn to_js_with(e: &Error, extra: &[(&str, JsValue)]) -> JsValue {
    let fields = Object::new();
    for (k, v) in extra {
        set(&fields, k, v);
    }
    if let Some(s) = e.status {
        set(&fields, "status", &JsValue::from(s));
    }
    if let Some(v) = &e.oauth_error {
        set(&fields, "oauthError", &JsValue::from_str(v));
    }
    if let Some(v) = &e.oauth_error_description {
        set(&fields, "oauthErrorDescription", &JsValue::from_str(v));
    }
    if let Some(ms) = e.retry_after_ms {
        set(&fields, "retryAfterMs", &JsValue::from(ms as f64));
    }
    set(
        &fields,
        "mayHaveReachedServer",
        &JsValue::from_bool(e.may_have_reached_server),
    );
    make_error(e.code.as_str(), &e.message, &fields)
}
