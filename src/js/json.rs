//! Core JSON values to JavaScript values.

use crate::core::json::Json;
use js_sys::{Array, Object};
use wasm_bindgen::JsValue;

use super::errors::set;

/// Converts a parsed JSON value. With `exact_numbers`, numbers become strings holding exactly
/// the digits the server sent (money must not pass through a float); otherwise JS numbers.
pub fn to_js(value: &Json, exact_numbers: bool) -> JsValue {
    match value {
        Json::Null => JsValue::NULL,
        Json::Bool(b) => JsValue::from_bool(*b),
        Json::Number(n) if exact_numbers => JsValue::from_str(n),
        Json::Number(n) => js_sys::Number::parse_float(n).into(),
        Json::String(s) => JsValue::from_str(s),
        Json::Array(items) => items
            .iter()
            .map(|v| to_js(v, exact_numbers))
            .collect::<Array>()
            .into(),
        Json::Object(members) => {
            let o = Object::new();
            for (k, v) in members {
                set(&o, k, &to_js(v, exact_numbers));
            }
            o.into()
        }
    }
}
