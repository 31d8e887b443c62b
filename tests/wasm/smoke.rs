//! wasm-bindgen-test in Node: the sans-IO layers behave inside wasm32 as on the host.
//!
//! The host tests (`cargo test`) run the same code on a 64-bit target; here `usize` is 32 bits
//! and the code is the one the package ships, so numbers near the limits, exact amounts and the
//! token cache's arithmetic are checked again where they run.
#![cfg(target_arch = "wasm32")]

use qbank_connect::oauth::cache::{Poll, TokenCache};
use qbank_connect::oauth::policy::RefreshPolicy;
use qbank_connect::oauth::token::parse_token_response;
use qbank_connect::oauth::{ErrorCode, Secret, TokenResponse};
use qbank_connect::providers::qbank::balances::balance_result_json;
use qbank_connect::util::url::parse_url;
use qbank_connect::util::HttpResponse;
use wasm_bindgen_test::*;

const NOW: u64 = 1_700_000_000_000;

fn answer(status: u16, body: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.into(),
    }
}

#[wasm_bindgen_test]
fn version_is_the_crate_version() {
    assert_eq!(qbank_connect::VERSION, env!("CARGO_PKG_VERSION"));
}

#[wasm_bindgen_test]
fn a_token_answer_is_read_with_its_lifetime_in_milliseconds() {
    let body = r#"{"access_token":"tok-1","token_type":"Bearer","expires_in":3600,"scope":"balances.read"}"#;
    let t = parse_token_response(&answer(200, body), NOW).expect("a valid answer");
    assert_eq!(t.access_token.expose(), "tok-1");
    assert_eq!(t.expires_in_ms, Some(3_600_000));
    assert_eq!(t.scope, Some(vec!["balances.read".to_string()]));
    // Ten years of seconds does not fit 32 bits as milliseconds: still exact (u64), not wrapped.
    let body = r#"{"access_token":"tok-2","token_type":"bearer","expires_in":315360000}"#;
    let t = parse_token_response(&answer(200, body), NOW).expect("a valid answer");
    assert_eq!(t.expires_in_ms, Some(315_360_000_000));
}

#[wasm_bindgen_test]
fn an_oauth_error_answer_keeps_its_stable_code() {
    let body = r#"{"error":"invalid_client","error_description":"bad credentials"}"#;
    let e = parse_token_response(&answer(401, body), NOW).expect_err("an error answer");
    assert_eq!(e.code, ErrorCode::InvalidClient);
    assert_eq!(e.code.as_str(), "invalid_client");
}

#[wasm_bindgen_test]
fn the_token_cache_runs_one_flight_and_serves_until_the_refresh_point() {
    let mut cache = TokenCache::new(RefreshPolicy::default(), 42);
    let Poll::Fetch(flight) = cache.poll(NOW, false) else {
        panic!("a cold cache starts a flight");
    };
    assert_eq!(cache.poll(NOW, false), Poll::Wait(flight.id));
    let token = cache
        .complete(
            flight.id,
            NOW + 120,
            Ok(TokenResponse {
                access_token: Secret::new("tok-1"),
                scope: None,
                expires_in_ms: Some(300_000),
                jwt_exp_ms: None,
            }),
        )
        .expect("the answer becomes the token");
    assert_eq!(token.expires_at, NOW + 300_000);
    assert_eq!(cache.poll(NOW + 1_000, false), Poll::Ready(token));
}

#[wasm_bindgen_test]
fn amounts_keep_every_digit() {
    let body = r#"{"account_id":"acc-1","available_balance":12345678901234567890.12,"ledger_balance":"-0.10","currency":"BRL"}"#;
    let json = balance_result_json("acc-1", body).expect("a valid balance");
    assert!(
        json.contains(r#""availableBalance":"12345678901234567890.12""#),
        "{json}"
    );
    assert!(json.contains(r#""ledgerBalance":"-0.10""#), "{json}");
}

#[wasm_bindgen_test]
fn urls_are_parsed_as_on_the_host() {
    let u = parse_url("HTTPS://Auth.Example.COM:8443/oauth2/token").expect("a valid URL");
    assert_eq!(u.scheme, "https");
    assert_eq!(u.host, "auth.example.com");
    assert_eq!(u.port, Some(8443));
    assert_eq!(u.path, "/oauth2/token");
    assert!(parse_url("https://[::1").is_err());
}
