//! qbank-connect: an OAuth 2.0 client-credentials token manager and a QBank Connect API client,
//! compiled to WebAssembly for Cloudflare Workers, Deno, Node and Bun.
//!
//! The crate has two layers:
//! - [`core`]: sans-IO, pure Rust, no dependencies; tested on the host with a manual clock.
//! - `js` (wasm32 only): the thin edge where `wasm_bindgen`, `fetch`, timers and the clock live.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod core;

#[cfg(target_arch = "wasm32")]
mod js;

/// The crate version, as exported to JavaScript by `version()`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
