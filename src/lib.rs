//! qbank-connect: an OAuth 2.0 client-credentials token manager and a QBank Connect API client,
//! compiled to WebAssembly for Cloudflare Workers, Deno, Node and Bun.
//!
//! Layers, each a folder that may use only the ones below it (`make lint` checks this):
//!
//! - `js` (wasm32 only): the thin edge where `wasm_bindgen`, `fetch`, timers and the clock live;
//!   uses everything below.
//! - [`providers`]: QBank (balances, account ids, API paths, API retry decisions) and QPay (realm, Credentials API);
//!   uses [`oauth`] and [`util`].
//! - [`oauth`]: the OAuth 2.0 client, sans-IO: token request and response, refresh policy, the
//!   token cache, secrets, errors with stable codes; uses [`util`].
//! - [`util`]: domain-free pieces (JSON, URL, encoders, HTTP dates, `WWW-Authenticate`,
//!   scrubbing, text helpers); uses nothing else in the crate.
//!
//! Everything below `js` is pure Rust with no dependencies, tested on the host with a manual
//! clock.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(all(target_arch = "wasm32", feature = "wasm-panic-trap"), no_std)]

extern crate alloc;

pub mod oauth;
pub mod providers;
pub mod util;

/// What std's prelude gives, for the `no_std` package build.
mod prelude {
    #![allow(unused_imports)] // which names a module needs depends on the build
    pub use alloc::string::{String, ToString};
    pub use alloc::vec;
    pub use alloc::vec::Vec;
}

/// The package build: rlsf's TLSF allocator, and a panic handler that traps (a panic is a bug; there is no
/// message to print, and std's machinery to format one costs more than the rest of the crate).
#[cfg(all(target_arch = "wasm32", feature = "wasm-panic-trap"))]
mod bare {
    #[global_allocator]
    static ALLOC: rlsf::GlobalTlsf<Options> = rlsf::GlobalTlsf::new();

    /// rlsf's defaults but for its in-place realloc (a realloc allocates, copies and frees: 354 B
    /// gzipped less). Consecutive pools stay coalesced (`COALESCE_POOLS`), which keeps large
    /// allocations from costing a pool each.
    struct Options;
    impl rlsf::GlobalTlsfOptions for Options {
        const ENABLE_REALLOCATION: bool = false;
    }

    #[panic_handler]
    fn panic(_: &::core::panic::PanicInfo<'_>) -> ! {
        ::core::arch::wasm32::unreachable()
    }
}

#[cfg(target_arch = "wasm32")]
mod js;

/// The crate version, as exported to JavaScript by `version()`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
