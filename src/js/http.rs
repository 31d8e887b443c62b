//! Sending a core [`HttpRequest`] with `fetch` and turning the answer into a core
//! [`HttpResponse`], or a transport failure into a core [`Error`].

use crate::oauth::{Error, ErrorCode};
use crate::prelude::*;
use crate::util::{concat, push_u64, HttpRequest, HttpResponse};
use js_sys::{Array, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::support::send;

/// `obj[key]`, or undefined.
pub fn field(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Sends `req` and reads at most `max_bytes` of the answer. `what` names the server in messages
/// ("the token endpoint", "the QBank API"); `signal` is the caller's `AbortSignal` or undefined.
///
/// Any status is an `Ok` answer; only transport failures are errors: `timeout`, `network`,
/// `aborted`, and `invalid_response` for a body over the limit.
pub async fn exchange(
    fetch: &JsValue,
    req: &HttpRequest,
    what: &str,
    timeout_ms: u64,
    max_bytes: u64,
    signal: &JsValue,
) -> Result<HttpResponse, Error> {
    let headers = Array::new();
    for (name, value) in &req.headers {
        headers.push(&Array::of2(
            &JsValue::from_str(name),
            &JsValue::from_str(value),
        ));
    }
    let body = req
        .body
        .as_deref()
        .map_or(JsValue::UNDEFINED, JsValue::from_str);
    let answer = JsFuture::from(send(
        fetch,
        req.method,
        &req.url,
        &headers,
        &body,
        timeout_ms as f64,
        max_bytes as f64,
        signal,
    ))
    .await
    .unwrap_or(JsValue::UNDEFINED);
    read_answer(&answer, what, timeout_ms, max_bytes)
}

/// A core [`HttpResponse`] from what `support.js`'s `send` resolved to, or the transport error.
pub fn read_answer(
    answer: &JsValue,
    what: &str,
    timeout_ms: u64,
    max_bytes: u64,
) -> Result<HttpResponse, Error> {
    if field(answer, "ok").as_bool() == Some(true) {
        let mut out = HttpResponse {
            status: field(answer, "status").as_f64().map_or(0, |s| s as u16),
            headers: Vec::new(),
            body: field(answer, "body").as_string().unwrap_or_default(),
        };
        if let Ok(list) = field(answer, "headers").dyn_into::<Array>() {
            for pair in list.iter() {
                let pair: Array = pair.unchecked_into();
                if let (Some(n), Some(v)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
                    out.headers.push((n, v));
                }
            }
        }
        return Ok(out);
    }
    Err(failure(answer, what, timeout_ms, max_bytes))
}

/// The error for a transport failure reported by `support.js` (`{ ok: false, kind, answered }`).
pub fn failure(answer: &JsValue, what: &str, timeout_ms: u64, max_bytes: u64) -> Error {
    let status = field(answer, "status").as_f64().map(|s| s as u16);
    let kind = field(answer, "kind").as_string().unwrap_or_default();
    let answered = field(answer, "answered").as_bool() == Some(true);
    let mut ms = String::new();
    push_u64(&mut ms, timeout_ms);
    let mut max = String::new();
    push_u64(&mut max, max_bytes);
    let (code, message) = match kind.as_str() {
        "timeout" => (
            ErrorCode::Timeout,
            concat(&[
                what,
                " did not answer within ",
                &ms,
                " ms (timeoutMs); it may be slow or unreachable: retry later or raise timeoutMs",
            ]),
        ),
        "aborted" => (
            ErrorCode::Aborted,
            concat(&["the caller's AbortSignal fired while waiting for ", what]),
        ),
        "too_large" => (
            ErrorCode::InvalidResponse,
            concat(&[
                what,
                " sent a body larger than ",
                &max,
                " bytes; it was not read further (is the URL right?)",
            ]),
        ),
        _ => (
            ErrorCode::Network,
            concat(&[
                "could not reach ",
                what,
                if answered {
                    " (the connection broke while reading the answer)"
                } else {
                    " (connection refused, DNS or TLS failure): check the URL and the network"
                },
            ]),
        ),
    };
    let sent = field(answer, "sent").as_bool() != Some(false);
    let mut e = Error::new(code, message).reached(sent);
    if let Some(s) = status.filter(|_| kind == "too_large") {
        e = e.with_status(s);
    }
    e
}
