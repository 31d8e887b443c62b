//! cargo-fuzz (libFuzzer) entry point; the checks live in `qbank_connect_fuzz::targets`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    qbank_connect_fuzz::targets::retry_after(data);
});
