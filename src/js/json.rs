//! Core JSON values to JavaScript values.

use crate::prelude::*;
use crate::util::json::Json;
use js_sys::{Array, Object};
use wasm_bindgen::JsValue;

use super::errors::set;

/// A list of strings as a JS array of strings.
pub fn strings(list: &[String]) -> Array {
    let out = Array::new();
    for s in list {
        out.push(&JsValue::from_str(s));
    }
    out
}

/// Converts a parsed JSON value (a problem body, a QPay answer); numbers become JS numbers. Money
/// never comes this way: getBalance's result is JSON text built by the core, numbers quoted.
pub fn to_js(value: &Json) -> JsValue {
    match value {
        Json::Null => JsValue::NULL,
        Json::Bool(b) => JsValue::from_bool(*b),
        Json::Number(n) => js_sys::Number::parse_float(n).into(),
        Json::String(s) => JsValue::from_str(s),
        Json::Array(items) => items.iter().map(to_js).collect::<Array>().into(),
        Json::Object(members) => {
            let o = Object::new();
            for (k, v) in members {
                set(&o, k, &to_js(v));
            }
            o.into()
        }
    }
}
