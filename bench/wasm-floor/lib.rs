//! The smallest program with the shape of ours: a JS class holding a string, whose async method
//! builds a URL, awaits a JavaScript promise (the transport) and returns what it resolved to.
//! No parsing, no validation, no messages: what the toolchain costs by itself.
#![no_std]
extern crate alloc;

use alloc::string::String;
use wasm_bindgen::prelude::*;

#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

#[wasm_bindgen]
extern "C" {
    /// The transport, given by the JavaScript side: resolves to the answer's body.
    #[wasm_bindgen(js_name = send)]
    fn send(url: &str, token: &str) -> js_sys::Promise;
}

#[wasm_bindgen]
pub struct Client {
    token: String,
}

#[wasm_bindgen]
impl Client {
    #[wasm_bindgen(constructor)]
    pub fn new(token: String) -> Client {
        Client { token }
    }

    #[wasm_bindgen(js_name = getBalance)]
    pub fn get_balance(&self, account_id: String) -> js_sys::Promise {
        let mut url = String::from("/v1/balances/");
        url.push_str(&account_id);
        let answer = send(&url, &self.token);
        wasm_bindgen_futures::future_to_promise(async move {
            wasm_bindgen_futures::JsFuture::from(answer).await
        })
    }
}
