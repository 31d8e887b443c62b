//! wasm-bindgen-test in Node: the exports behave from inside wasm.
#![cfg(target_arch = "wasm32")]

use wasm_bindgen_test::*;

#[wasm_bindgen_test]
fn version_is_the_crate_version() {
    assert_eq!(qbank_connect::VERSION, env!("CARGO_PKG_VERSION"));
}
