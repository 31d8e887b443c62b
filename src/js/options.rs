//! Reading a JavaScript options object: known names only, each of the right type.

use crate::oauth::config::check_option_names;
use crate::oauth::Error;
use crate::prelude::*;
use crate::util::text::as_strs;
use crate::util::{concat, push_u64};
use js_sys::{Array, Function, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use super::support;

/// A caller's options object, checked against the option names we know.
pub struct Options {
    obj: JsValue,
}

fn wrong_type(name: &str, expected: &str) -> Error {
    Error::config(concat(&["option `", name, "` must be ", expected]))
}

impl Options {
    /// Checks that `value` is an object (or undefined, when `optional`) whose keys are all known.
    pub fn new(
        value: &JsValue,
        what: &str,
        known: &[&str],
        optional: bool,
    ) -> Result<Options, Error> {
        if value.is_undefined() || value.is_null() {
            if optional {
                return Ok(Options {
                    obj: JsValue::UNDEFINED,
                });
            }
            return Err(Error::config(concat(&[what, " needs an options object"])));
        }
        if !value.is_object() || Array::is_array(value) {
            return Err(Error::config(concat(&[
                what,
                " options must be a plain object",
            ])));
        }
        let mut keys = Vec::new();
        for k in Object::keys(value.unchecked_ref::<Object>()).iter() {
            if let Some(k) = k.as_string() {
                keys.push(k);
            }
        }
        check_option_names(&as_strs(&keys), known)?;
        Ok(Options { obj: value.clone() })
    }

    /// The raw value (undefined when absent).
    pub fn get(&self, name: &str) -> JsValue {
        if self.obj.is_undefined() {
            return JsValue::UNDEFINED;
        }
        Reflect::get(&self.obj, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
    }

    /// A string option.
    pub fn string(&self, name: &str) -> Result<Option<String>, Error> {
        let v = self.get(name);
        if v.is_undefined() {
            return Ok(None);
        }
        v.as_string()
            .map(Some)
            .ok_or_else(|| wrong_type(name, "a string"))
    }

    /// A required string option.
    pub fn required_string(&self, name: &str) -> Result<String, Error> {
        self.string(name)?
            .ok_or_else(|| Error::config(concat(&["option `", name, "` is required"])))
    }

    /// A number option.
    pub fn number(&self, name: &str) -> Result<Option<f64>, Error> {
        let v = self.get(name);
        if v.is_undefined() {
            return Ok(None);
        }
        v.as_f64()
            .map(Some)
            .ok_or_else(|| wrong_type(name, "a number"))
    }

    /// A boolean option.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, Error> {
        let v = self.get(name);
        if v.is_undefined() {
            return Ok(None);
        }
        v.as_bool()
            .map(Some)
            .ok_or_else(|| wrong_type(name, "true or false"))
    }

    /// `timeoutMs`: one request's timeout, 1 ms to 10 minutes, 10 s when absent.
    pub fn timeout_ms(&self) -> Result<u64, Error> {
        self.millis("timeoutMs", 1, 600_000, 10_000)
    }

    /// A number of milliseconds from `low` to `high`, `default` when absent.
    pub fn millis(&self, name: &str, low: u64, high: u64, default: u64) -> Result<u64, Error> {
        match self.number(name)? {
            None => Ok(default),
            Some(v) if (low as f64..=high as f64).contains(&v) => Ok(v as u64),
            Some(_) => {
                let mut message =
                    concat(&["option `", name, "` must be a number of milliseconds from "]);
                push_u64(&mut message, low);
                message.push_str(" to ");
                push_u64(&mut message, high);
                Err(Error::config(message))
            }
        }
    }

    /// An `AbortSignal` option (undefined when absent or null).
    pub fn signal(&self, name: &str) -> Result<JsValue, Error> {
        let v = self.get(name);
        if v.is_undefined() || v.is_null() {
            return Ok(JsValue::UNDEFINED);
        }
        if support::is_signal(&v) {
            Ok(v)
        } else {
            Err(wrong_type(name, "an AbortSignal"))
        }
    }

    /// A function option.
    pub fn function(&self, name: &str) -> Result<Option<Function>, Error> {
        let v = self.get(name);
        if v.is_undefined() || v.is_null() {
            return Ok(None);
        }
        v.dyn_into::<Function>()
            .map(Some)
            .map_err(|_| wrong_type(name, "a function"))
    }

    /// An array of strings, or one space-separated string (split later), as a list of items.
    pub fn string_or_list(&self, name: &str) -> Result<Option<StringOrList>, Error> {
        let v = self.get(name);
        if v.is_undefined() {
            return Ok(None);
        }
        if let Some(s) = v.as_string() {
            return Ok(Some(StringOrList::String(s)));
        }
        if Array::is_array(&v) {
            let arr: Array = v.unchecked_into();
            let mut out = Vec::new();
            for item in arr.iter() {
                out.push(
                    item.as_string()
                        .ok_or_else(|| wrong_type(name, "an array of strings"))?,
                );
            }
            return Ok(Some(StringOrList::List(out)));
        }
        Err(wrong_type(
            name,
            "an array of strings or a space-separated string",
        ))
    }

    /// A `{ name: "value" }` object of string values.
    pub fn string_map(&self, name: &str) -> Result<Vec<(String, String)>, Error> {
        let v = self.get(name);
        if v.is_undefined() || v.is_null() {
            return Ok(Vec::new());
        }
        if !v.is_object() || Array::is_array(&v) {
            return Err(wrong_type(name, "an object of string values"));
        }
        let entries = Object::entries(v.unchecked_ref::<Object>());
        let mut out = Vec::new();
        for pair in entries.iter() {
            let pair: Array = pair.unchecked_into();
            let key = pair.get(0).as_string().unwrap_or_default();
            let value = pair
                .get(1)
                .as_string()
                .ok_or_else(|| wrong_type(name, "an object of string values"))?;
            out.push((key, value));
        }
        Ok(out)
    }
}

/// A scope given as a list or as one string.
pub enum StringOrList {
    /// Space-separated.
    String(String),
    /// One scope an item.
    List(Vec<String>),
}
