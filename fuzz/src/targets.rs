//! The fuzz targets: each takes raw bytes, turns them into the parser's input, runs the parser,
//! and checks what must hold for every input. A failed check panics, exactly like a crash.
//!
//! Input formats (the seed corpus files in `fuzz/corpus/<target>/` are written in them):
//!
//! | target | bytes |
//! | --- | --- |
//! | `token_response` | `STATUS [NOW_MS]` line, `name: value` header lines, an empty line, the body |
//! | `balance` | the account id line, then the body |
//! | `www_authenticate` | the header value |
//! | `jwt_exp` | the token |
//! | `json` | the text |
//! | `retry_after` | `NOW_MS` line, then the header value (no newline: the value alone) |
//! | `url_resolve` | the API base URL line, then the path or URL (no newline: the path alone) |
//! | `account_id` | the account id |
//!
//! Bytes that are not UTF-8 are read lossily (the transport hands the core `String`s).
//! Each target returns a signature of the outcome (which error, which shape of success), which
//! the stable driver uses to keep inputs that reach new outcomes.

use std::borrow::Cow;
use std::sync::OnceLock;

use qbank_connect::oauth::token::{
    is_b64token, jwt_exp_ms, parse_token_response, MAX_EXPIRES_IN_SECS,
};
use qbank_connect::oauth::{ErrorCode, Secret, TokenResponse};
use qbank_connect::providers::qbank::balances::{
    balance_read, balance_result_json, balance_url, is_decimal_amount, parse_balance, BalanceRead,
};
use qbank_connect::providers::qbank::path::{
    account_path_segment, check_account_id, resolve_api_url, MAX_ACCOUNT_ID_BYTES,
};
use qbank_connect::util::encode::percent_encode;
use qbank_connect::util::http_date::{parse_http_date_ms, parse_retry_after, RETRY_AFTER_CAP_MS};
use qbank_connect::util::json::{self, Json, MAX_DEPTH, MAX_MEMBERS};
use qbank_connect::util::url::{check_endpoint_url, origin, parse_url, ParsedUrl};
use qbank_connect::util::www_auth::{bearer_error, parse_www_authenticate, Challenge};
use qbank_connect::util::HttpResponse;

use crate::gen::b64_std;
use crate::oracle;
use crate::rng::fnv1a;

/// The clock used when an input does not give one: 2023-11-14T22:13:20Z.
pub const DEFAULT_NOW: u64 = 1_700_000_000_000;

/// The API base used when a `url_resolve` input has no base line, and by `account_id`.
pub const DEFAULT_BASE: &str = "https://api.example.com/qbank/";

fn text(data: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Splits off the first line (without its `\n`); `None` if there is no newline.
fn first_line(s: &str) -> Option<(&str, &str)> {
    s.split_once('\n')
}

/// A decimal number of at most 20 digits that fits a `u64`.
fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A signature of an outcome, with digit runs collapsed (offsets, statuses) and quoted text
/// (previews of the input) left out.
fn signature(parts: &[&str]) -> u64 {
    let mut s = Vec::new();
    for p in parts {
        let mut in_digits = false;
        let mut in_quotes = false;
        for b in p.bytes() {
            if b == b'"' {
                in_quotes = !in_quotes;
                continue;
            }
            if in_quotes {
                continue;
            }
            if b.is_ascii_digit() {
                if !in_digits {
                    s.push(b'#');
                }
                in_digits = true;
            } else {
                s.push(b);
                in_digits = false;
            }
        }
        s.push(0);
    }
    fnv1a(&s)
}

/// A small count as a word (signatures collapse digits).
fn bucket(n: usize) -> &'static str {
    [
        "zero", "one", "two", "three", "four", "five", "six", "seven",
    ][n.min(7)]
}

/// Every string (keys and values) in a JSON value.
fn json_strings<'a>(v: &'a Json, out: &mut Vec<&'a str>) {
    match v {
        Json::String(s) => out.push(s),
        Json::Array(items) => items.iter().for_each(|i| json_strings(i, out)),
        Json::Object(members) => {
            for (k, v) in members {
                out.push(k);
                json_strings(v, out);
            }
        }
        _ => {}
    }
}

/// Checks that an error message repeats none of the server's strings. `fixed` is the text of
/// the messages the code can produce; a server string that happens to be part of that text
/// (`"available_balance"`) is not a leak.
fn assert_no_server_text(message: &str, server: &[&str], fixed: &str, what: &str) {
    for s in server {
        if s.len() >= 8 && !fixed.contains(s) {
            assert!(
                !message.contains(s),
                "{what}: the error message repeats server text {s:?}: {message:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// token_response

/// Reads `STATUS [NOW]\nheaders\n\nbody`.
pub fn decode_token_input(data: &[u8]) -> (HttpResponse, u64) {
    let s = text(data);
    let (head, body) = s.split_once("\n\n").unwrap_or((&s, ""));
    let mut lines = head.split('\n');
    let status_line = lines.next().unwrap_or("");
    let mut words = status_line.split_whitespace();
    let status = match words.next().and_then(|w| w.parse::<u32>().ok()) {
        Some(n) => (n % 1000) as u16,
        None => (fnv1a(status_line.as_bytes()) % 600) as u16,
    };
    let now = words.next().and_then(parse_u64).unwrap_or(DEFAULT_NOW);
    let headers = lines
        .map(|l| match l.split_once(':') {
            Some((n, v)) => (n.trim().to_ascii_lowercase(), v.trim_start().to_string()),
            None => (l.trim().to_ascii_lowercase(), String::new()),
        })
        .collect();
    (
        HttpResponse {
            status,
            headers,
            body: body.to_string(),
        },
        now,
    )
}

/// The text of every message `parse_token_response` can give (statuses and bodies chosen to
/// reach each branch).
fn token_fixed_text() -> &'static str {
    static FIXED: OnceLock<String> = OnceLock::new();
    FIXED.get_or_init(|| {
        let mut out = String::new();
        let bodies = [
            "",
            "[]",
            "{}",
            "{",
            r#"{"access_token":""}"#,
            r#"{"access_token":"a b"}"#,
            r#"{"access_token":1}"#,
            r#"{"access_token":"abc"}"#,
            r#"{"access_token":"abc","token_type":"mac"}"#,
            r#"{"access_token":"abc","token_type":""}"#,
            r#"{"access_token":"abc","token_type":1}"#,
            r#"{"access_token":"abc","token_type":[]}"#,
            r#"{"error":"invalid_client"}"#,
            r#"{"error":"invalid_grant"}"#,
            r#"{"error":"invalid_scope"}"#,
            r#"{"error":"unauthorized_client"}"#,
            r#"{"error":"unsupported_grant_type"}"#,
            r#"{"error":"invalid_request"}"#,
            r#"{"error":"slow_down"}"#,
            r#"{"error":"x"}"#,
        ];
        for status in [200, 302, 400, 401, 404, 405, 429, 500] {
            for body in bodies {
                let resp = HttpResponse {
                    status,
                    headers: vec![],
                    body: body.into(),
                };
                if let Err(e) = parse_token_response(&resp, DEFAULT_NOW) {
                    out.push_str(&e.message);
                    out.push('\n');
                }
            }
        }
        out
    })
}

/// `oauth::token::parse_token_response` on any status, headers (`Retry-After` among them) and
/// body: never panics, is deterministic, and:
/// - a success is a 2xx whose body is a JSON object without an `error`, with a b64token
///   `access_token` equal to the body's, `token_type` Bearer (or absent or null),
///   `expires_in_ms` exactly a reference reading of `expires_in` (a number or numeric string,
///   ≥ 0, truncated, ≤ 10 years), and `jwt_exp_ms` equal to [`jwt_exp_ms`] of the token; its
///   `Debug` never shows the token;
/// - a failure carries the status, `may_have_reached_server`, exactly the `Retry-After` delay
///   (capped), is a `token_endpoint_error` for every 3xx, and its message repeats no string of
///   the body (the `access_token` above all).
pub fn token_response(data: &[u8]) -> u64 {
    let (resp, now) = decode_token_input(data);
    let result = parse_token_response(&resp, now);
    assert_eq!(
        result,
        parse_token_response(&resp, now),
        "not deterministic"
    );
    let retry = resp
        .header("retry-after")
        .and_then(|v| parse_retry_after(v, now));
    let body = json::parse(&resp.body).ok();
    match &result {
        Ok(t) => {
            assert!(
                (200..300).contains(&resp.status),
                "accepted HTTP {}",
                resp.status
            );
            let body = body.expect("accepted a body that is not JSON");
            assert!(matches!(body, Json::Object(_)), "accepted a non-object");
            assert!(
                body.get("error").is_none_or(Json::is_null),
                "accepted a body with an error member"
            );
            let tok = t.access_token.expose();
            assert!(
                is_b64token(tok),
                "accepted a token that is not a b64token: {tok:?}"
            );
            assert_eq!(body.get("access_token").and_then(Json::as_str), Some(tok));
            // Absent or null reads as Bearer (as Go's x/oauth2 does); anything else must say it.
            match body.get("token_type") {
                None | Some(Json::Null) => {}
                tt => assert!(
                    tt.and_then(Json::as_str)
                        .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
                    "accepted token_type {tt:?}"
                ),
            }
            assert_eq!(
                t.expires_in_ms,
                expected_expires_in_ms(body.get("expires_in")),
                "expires_in {:?}",
                body.get("expires_in")
            );
            assert_eq!(t.jwt_exp_ms, jwt_exp_ms(tok));
            // Debug does not depend on the token at all.
            let other = TokenResponse {
                access_token: Secret::new("x"),
                ..t.clone()
            };
            assert_eq!(
                format!("{t:?}"),
                format!("{other:?}"),
                "Debug shows the token"
            );
            signature(&[
                "ok",
                if t.jwt_exp_ms.is_some() { "jwt" } else { "" },
                if t.expires_in_ms.is_some() { "exp" } else { "" },
                if t.scope.is_some() { "scope" } else { "" },
            ])
        }
        Err(e) => {
            assert_eq!(e.status, Some(resp.status));
            assert!(e.may_have_reached_server);
            assert_eq!(e.retry_after_ms, retry, "Retry-After not carried");
            if let Some(ms) = e.retry_after_ms {
                assert!(ms <= RETRY_AFTER_CAP_MS);
            }
            if (300..400).contains(&resp.status) {
                assert_eq!(
                    e.code,
                    ErrorCode::TokenEndpointError,
                    "a 3xx was not refused"
                );
            }
            assert!(!e.message.is_empty());
            if let Some(body) = &body {
                let mut strings = Vec::new();
                json_strings(body, &mut strings);
                assert_no_server_text(&e.message, &strings, token_fixed_text(), "token");
                if let Some(tok) = body.get("access_token").and_then(Json::as_str) {
                    if tok.len() >= 8 && !token_fixed_text().contains(tok) {
                        assert!(!e.message.contains(tok), "message leaks the access_token");
                    }
                }
            }
            signature(&[e.code.as_str(), &e.message])
        }
    }
}

// ---------------------------------------------------------------------------------------------
// balance

/// Reads `ACCOUNT_ID\nbody` (no newline: the default id and the whole input as the body).
pub fn decode_balance_input(data: &[u8]) -> (String, String) {
    let s = text(data);
    match first_line(&s) {
        Some((id, body)) => (id.to_string(), body.to_string()),
        None => ("acc-1".to_string(), s.into_owned()),
    }
}

fn balance_fixed_text() -> &'static str {
    static FIXED: OnceLock<String> = OnceLock::new();
    FIXED.get_or_init(|| {
        let mut out = String::new();
        for body in [
            "",
            "{",
            "[]",
            "{}",
            r#"{"account_id":"other"}"#,
            r#"{"available_balance":"1"}"#,
            r#"{"available_balance":"","ledger_balance":"1"}"#,
            r#"{"available_balance":"x","ledger_balance":"1"}"#,
            r#"{"available_balance":1e999,"ledger_balance":"1"}"#,
            r#"{"available_balance":null,"ledger_balance":"1"}"#,
            r#"{"available_balance":true,"ledger_balance":"1"}"#,
            r#"{"available_balance":[],"ledger_balance":"1"}"#,
            r#"{"available_balance":{},"ledger_balance":"1"}"#,
            r#"{"available_balance":{"amount":{}},"ledger_balance":"1"}"#,
            r#"{"available_balance":{"amount":"1","currency":1},"ledger_balance":"1"}"#,
            r#"{"availableBalance":"1"}"#,
            r#"{"availableBalance":"1","ledgerBalance":"x"}"#,
            r#"{"available_balance":"1","ledger_balance":"1","currency":1}"#,
            r#"{"available_balance":{"amount":"1","currency":"A"},"ledger_balance":"1","currency":"B"}"#,
        ] {
            // Each refusal names the field as the body spelled it: snake_case and camelCase.
            let camel = body
                .replace("available_balance", "availableBalance")
                .replace("ledger_balance", "ledgerBalance");
            for body in [body, camel.as_str()] {
                if let Err(e) = parse_balance("acc-1", body) {
                    out.push_str(&e.message);
                    out.push('\n');
                }
            }
        }
        out
    })
}

/// The amount `parse_balance` should have read for one field, as (value, nested currency).
fn expected_amount<'r, 'a>(raw: &'r Json<'a>, snake: &str, camel: &str) -> Option<&'r Json<'a>> {
    let v = raw.get(snake).or_else(|| raw.get(camel))?;
    match v {
        Json::Object(_) => v.get("amount"),
        other => Some(other),
    }
}

fn check_amount(field: &str, sent: &Json, got: &str) {
    assert!(
        is_decimal_amount(got),
        "{field}: {got:?} is not a decimal amount"
    );
    match sent {
        Json::String(s) => assert_eq!(s, got, "{field}: a string amount was changed"),
        Json::Number(n) => {
            if !n.contains(['e', 'E']) {
                assert_eq!(n, got, "{field}: a number amount was changed");
            }
            assert_eq!(
                oracle::decimal_value(n),
                oracle::decimal_value(got),
                "{field}: {n} was read as {got}"
            );
            // The sign is kept even for zero (`-0` stays `-0`).
            assert_eq!(
                n.starts_with('-'),
                got.starts_with('-'),
                "{field}: sign of {n}"
            );
        }
        other => panic!("{field}: accepted {other:?} as an amount"),
    }
}

/// `providers::qbank::balances::parse_balance` on any account id and body: never panics, is
/// deterministic; a success has both amounts satisfying [`is_decimal_amount`], equal to the
/// string sent or exactly the value of the number sent (no float on the way), the id asked
/// for, a non-empty currency if any, and the parsed body as `raw`; a failure is an
/// `invalid_response` that reached the server and repeats no string of the body.
pub fn balance(data: &[u8]) -> u64 {
    let (id, body) = decode_balance_input(data);
    let result = parse_balance(&id, &body);
    assert_eq!(result, parse_balance(&id, &body), "not deterministic");
    match &result {
        Ok(b) => {
            let raw = json::parse(&body).expect("accepted a body that is not JSON");
            assert_eq!(b.raw, raw);
            assert_eq!(b.account_id, id);
            let avail = expected_amount(&raw, "available_balance", "availableBalance")
                .expect("no available amount in an accepted body");
            let ledger = expected_amount(&raw, "ledger_balance", "ledgerBalance")
                .expect("no ledger amount in an accepted body");
            check_amount("available", avail, &b.available_balance);
            check_amount("ledger", ledger, &b.ledger_balance);
            if let Some(c) = &b.currency {
                assert!(!c.is_empty());
            }
            if let Some(other) = raw
                .get("account_id")
                .or_else(|| raw.get("accountId"))
                .and_then(Json::as_str)
            {
                assert!(
                    other.eq_ignore_ascii_case(&id),
                    "accepted a different account"
                );
            }
            let read = check_read(&id, &body, &raw);
            signature(&[
                "ok",
                if b.currency.is_some() { "cur" } else { "" },
                if b.as_of.is_some() { "asof" } else { "" },
                if avail.as_str().is_some() { "s" } else { "n" },
                read,
            ])
        }
        Err(e) => {
            assert_eq!(e.code, ErrorCode::InvalidResponse);
            assert!(e.may_have_reached_server);
            assert_eq!(
                balance_read(&id, &body).as_ref().err(),
                Some(e),
                "balance_read differs"
            );
            if let Ok(raw) = json::parse(&body) {
                let mut strings = Vec::new();
                json_strings(&raw, &mut strings);
                assert_no_server_text(&e.message, &strings, balance_fixed_text(), "balance");
            }
            signature(&[e.code.as_str(), &e.message])
        }
    }
}

/// The fast path's two ways to a result agree: a plan applied to the parsed body (what
/// support.js's `fromPlan` does with `JSON.parse(body)`) is the result of the JSON text (with
/// `raw` added as the parsed body when the text leaves it out, which it may only do for a body
/// without numbers), and a text answer is that text.
fn check_read(id: &str, body: &str, raw: &Json) -> &'static str {
    let text = balance_result_json(id, body).expect("parse_balance accepted the body");
    // Read with serde_json: the result nests the body one level deeper, past util::json's depth
    // limit for a body at that limit (JSON.parse has none that low).
    let mut from_text: serde_json::Value =
        serde_json::from_str(&text).expect("the result text is JSON");
    if from_text.get("raw").is_none() {
        assert_eq!(
            &oracle::numbers_as_strings(raw),
            raw,
            "raw left out of a body with numbers"
        );
        let parsed = serde_json::from_str(body).expect("an accepted body is JSON");
        from_text
            .as_object_mut()
            .expect("an object")
            .insert("raw".into(), parsed);
    }
    match balance_read(id, body).expect("balance_read refused what parse_balance accepted") {
        BalanceRead::Plan(bits) => {
            let built = oracle::apply_plan(bits, id, raw);
            assert!(
                oracle::same_as_serde(&built, &from_text),
                "plan {bits}: {built:?} vs {from_text}"
            );
            "plan"
        }
        BalanceRead::Json(t) => {
            assert_eq!(t, text, "balance_read's text");
            "text"
        }
    }
}

// ---------------------------------------------------------------------------------------------
// www_authenticate

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Writes challenges back as a header value (params quoted).
pub fn write_challenges(cs: &[Challenge]) -> String {
    let mut out = String::new();
    for (i, c) in cs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&c.scheme);
        if let Some(t) = &c.token68 {
            out.push(' ');
            out.push_str(t);
        }
        for (k, (name, value)) in c.params.iter().enumerate() {
            out.push_str(if k == 0 { " " } else { ", " });
            out.push_str(name);
            out.push_str("=\"");
            for ch in value.chars() {
                if ch == '"' || ch == '\\' {
                    out.push('\\');
                }
                out.push(ch);
            }
            out.push('"');
        }
    }
    out
}

/// `util::www_auth::parse_www_authenticate` and `bearer_error` on any header: never panic;
/// every scheme and param name is a non-empty token (names lower-cased), a challenge has a
/// token68 or params, not both, no value holds a control character but tab; `bearer_error`
/// agrees with the first Bearer challenge; and writing the challenges back and parsing again
/// gives the same challenges.
pub fn www_authenticate(data: &[u8]) -> u64 {
    let header = text(data);
    let cs = parse_www_authenticate(&header);
    for c in &cs {
        assert!(
            !c.scheme.is_empty() && c.scheme.bytes().all(is_tchar),
            "scheme {:?}",
            c.scheme
        );
        assert!(c.token68.is_none() || c.params.is_empty());
        if let Some(t) = &c.token68 {
            let body = t.trim_end_matches('=');
            assert!(!body.is_empty(), "token68 {t:?}");
            assert!(body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)));
        }
        for (name, value) in &c.params {
            assert!(
                !name.is_empty() && name.bytes().all(is_tchar),
                "param name {name:?}"
            );
            assert_eq!(name, &name.to_ascii_lowercase());
            assert!(
                !value.chars().any(|ch| ch.is_ascii_control() && ch != '\t'),
                "control character in {value:?}"
            );
        }
    }
    let bearer = cs.iter().find(|c| c.scheme.eq_ignore_ascii_case("bearer"));
    let be = bearer_error(&header);
    assert_eq!(be.is_some(), bearer.is_some());
    if let (Some(be), Some(c)) = (&be, bearer) {
        assert_eq!(be.error.as_deref(), c.param("error"));
        assert_eq!(
            be.error_description.as_deref(),
            c.param("error_description")
        );
        assert_eq!(be.realm.as_deref(), c.param("realm"));
        let scope: Option<Vec<&str>> = c
            .param("scope")
            .map(|s| s.split(' ').filter(|t| !t.is_empty()).collect());
        assert_eq!(
            be.scope
                .as_ref()
                .map(|v| v.iter().map(String::as_str).collect::<Vec<_>>()),
            scope
        );
    }
    let written = write_challenges(&cs);
    assert_eq!(
        parse_www_authenticate(&written),
        cs,
        "challenges written back as {written:?} read differently"
    );
    let shape: Vec<String> = cs
        .iter()
        .take(1)
        .map(|c| {
            // Known names only, so random tokens do not each count as a new outcome.
            let known = |n: &str| {
                let n = n.to_ascii_lowercase();
                let names = [
                    "bearer",
                    "basic",
                    "negotiate",
                    "dpop",
                    "realm",
                    "error",
                    "error_description",
                    "scope",
                ];
                if names.contains(&n.as_str()) {
                    n
                } else {
                    "?".to_string()
                }
            };
            let mut names: Vec<String> = c.params.iter().map(|(n, _)| known(n)).collect();
            names.sort();
            names.dedup();
            format!(
                "{}{}({})",
                known(&c.scheme),
                if c.token68.is_some() { "+t68" } else { "" },
                names.join(",")
            )
        })
        .collect();
    signature(&[
        &shape.join(" "),
        bucket(cs.len()),
        if be.is_some() { "bearer" } else { "" },
    ])
}

// ---------------------------------------------------------------------------------------------
// jwt_exp

/// Base64url decoding written from RFC 4648 §5 (padding optional, trailing bits ignored).
fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut vals = Vec::with_capacity(s.len());
    for c in s.chars() {
        let v = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".find(c)?;
        vals.push(v as u32);
    }
    if vals.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::new();
    for chunk in vals.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, v)| n | (v << (18 - 6 * i)));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len() - 1]);
    }
    Some(out)
}

/// `floor(value × 10^scale)` of a non-negative JSON number text, if it fits a `u64`.
fn scaled_floor(text: &str, scale: i64) -> Option<u64> {
    if text.starts_with('-') {
        return None;
    }
    let (_, digits, point) = oracle::decimal_value(text)?;
    let keep = point + scale;
    if digits.is_empty() || keep <= 0 {
        return Some(0);
    }
    if keep > 20 {
        return None;
    }
    let keep = keep as usize;
    let mut int = digits[..keep.min(digits.len())].to_string();
    while int.len() < keep {
        int.push('0');
    }
    u64::try_from(int.parse::<u128>().ok()?).ok()
}

/// `floor(value × 1000)` of a non-negative JSON number text, if it fits a `u64`.
fn seconds_to_ms(text: &str) -> Option<u64> {
    scaled_floor(text, 3)
}

/// RFC 8259's number grammar, `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn is_json_number_text(t: &str) -> bool {
    let b = t.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i += digits(i),
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        let n = digits(i + 1);
        if n == 0 {
            return false;
        }
        i += 1 + n;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let n = digits(i);
        if n == 0 {
            return false;
        }
        i += n;
    }
    i == b.len()
}

/// What `expires_in` should give, in milliseconds: a JSON number, or a string holding exactly
/// a JSON number, non-negative, truncated to whole seconds, at most ten years.
fn expected_expires_in_ms(v: Option<&Json>) -> Option<u64> {
    let text = match v? {
        Json::Number(n) => &**n,
        Json::String(s) if is_json_number_text(s) => &**s,
        _ => return None,
    };
    let secs = scaled_floor(text, 0)?;
    (secs <= MAX_EXPIRES_IN_SECS).then(|| secs * 1000)
}

/// `oauth::token::jwt_exp_ms` on any token: never panics, and equals a reference reading of
/// the token: exactly three dot-separated parts whose middle one is base64url of a JSON object
/// (as `util::json` reads it) with a non-negative number `exp`, whose value × 1000, truncated,
/// fits a `u64`.
pub fn jwt_exp(data: &[u8]) -> u64 {
    let token = text(data);
    let got = jwt_exp_ms(&token);
    let parts: Vec<&str> = token.split('.').collect();
    let mut stage = "parts";
    let expected = (|| {
        if parts.len() != 3 {
            return None;
        }
        stage = "base64";
        let bytes = b64url_decode(parts[1])?;
        stage = "utf8";
        let payload = String::from_utf8(bytes).ok()?;
        stage = match json::parse(&payload) {
            Ok(Json::Object(_)) => "object",
            Ok(_) => "not an object",
            Err(e) => e.what,
        };
        let claims = json::parse(&payload).ok()?;
        // serde_json agrees on the claim (when it reads the payload at all).
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&payload) {
            if let (Some(ours), Some(theirs)) = (claims.get("exp"), v.get("exp")) {
                assert!(oracle::same_as_serde(ours, theirs), "exp read differently");
            }
        }
        stage = match claims.get("exp") {
            None => "no exp",
            Some(Json::Number(n)) if n.starts_with('-') => "negative exp",
            Some(Json::Number(n)) if n.contains(['e', 'E']) => "exponent exp",
            Some(Json::Number(n)) if n.contains('.') => "fraction exp",
            Some(Json::Number(_)) => "integer exp",
            Some(other) => other.kind(),
        };
        seconds_to_ms(claims.get("exp")?.as_number()?)
    })();
    assert_eq!(got, expected, "jwt_exp_ms({token:?})");
    signature(&[
        bucket(parts.len()),
        stage,
        match got {
            None => "none",
            Some(0) => "zero",
            Some(_) => "some",
        },
    ])
}

// ---------------------------------------------------------------------------------------------
// json

fn has_duplicates_or_too_many(v: &Json) -> bool {
    match v {
        Json::Array(items) => items.iter().any(has_duplicates_or_too_many),
        Json::Object(m) => {
            m.len() > MAX_MEMBERS
                || m.iter()
                    .enumerate()
                    .any(|(i, (k, _))| m[..i].iter().any(|(j, _)| j == k))
                || m.iter().any(|(_, v)| has_duplicates_or_too_many(v))
        }
        _ => false,
    }
}

/// `util::json::parse` on any text: never panics; accepts exactly what serde_json accepts,
/// except what it refuses on purpose (nesting deeper than 64, duplicate member names, more
/// than 512 members), with the same values (numbers compared by exact value); a value written
/// back and parsed again is the same value, and the text with its numbers quoted
/// (`util::json::quote_numbers`) reads as the value with string numbers;
/// an error's offset is within the text.
pub fn json(data: &[u8]) -> u64 {
    let t = text(data);
    let ours = json::parse(&t);
    let theirs = serde_json::from_str::<serde_json::Value>(&t);
    match &ours {
        Ok(v) => {
            assert!(
                oracle::depth(v) <= MAX_DEPTH,
                "accepted depth {}",
                oracle::depth(v)
            );
            assert!(
                !has_duplicates_or_too_many(v),
                "accepted duplicate or too many members"
            );
            let written = oracle::to_json(v);
            assert_eq!(
                json::parse(&written).as_ref(),
                Ok(v),
                "round trip of {written:?}"
            );
            // getBalance's `raw`: the text itself with its numbers quoted reads as the value with
            // every number a string of its digits.
            let mut quoted = String::new();
            json::quote_numbers(&mut quoted, &t);
            assert_eq!(
                json::parse(&quoted),
                Ok(oracle::numbers_as_strings(v)),
                "quote_numbers of {t:?}"
            );
            match &theirs {
                Ok(tv) => assert!(
                    oracle::same_as_serde(v, tv),
                    "serde_json reads {t:?} differently"
                ),
                Err(e) => panic!("accepted {t:?}, which serde_json refuses: {e}"),
            }
            signature(&["ok", v.kind(), bucket(oracle::depth(v))])
        }
        Err(e) => {
            assert!(e.offset <= t.len(), "offset {} past the end", e.offset);
            let on_purpose = e.what.contains("same member name")
                || e.what.contains("more than 512")
                || e.what.contains("too deep");
            if !on_purpose {
                if let Ok(tv) = &theirs {
                    panic!(
                        "refused {t:?} ({}), which serde_json reads as {tv}",
                        e.describe()
                    );
                }
            }
            signature(&["err", e.what])
        }
    }
}

// ---------------------------------------------------------------------------------------------
// retry_after

/// Reads `NOW\nvalue` (no newline, or a first line that is not a number: the default clock).
pub fn decode_retry_after_input(data: &[u8]) -> (u64, String) {
    let s = text(data);
    if let Some((first, rest)) = first_line(&s) {
        if let Some(now) = parse_u64(first) {
            return (now, rest.to_string());
        }
    }
    (DEFAULT_NOW, s.into_owned())
}

/// `util::http_date::parse_retry_after` and `parse_http_date_ms` on any value and clock: never
/// panic; delta-seconds give exactly `min(seconds × 1000, 1 hour)`; an HTTP-date gives exactly
/// what an independent reader of RFC 9110's three date forms gives (`parse_http_date_ms`
/// included), as a delay from now clamped at 0 and capped at an hour; anything else is `None`.
pub fn retry_after(data: &[u8]) -> u64 {
    let (now, value) = decode_retry_after_input(data);
    let got = parse_retry_after(&value, now);
    let v = value.trim_matches([' ', '\t']);
    let expected = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        let cap = u128::from(RETRY_AFTER_CAP_MS);
        let secs = v
            .bytes()
            .try_fold(0u128, |n, d| {
                n.checked_mul(10)?.checked_add(u128::from(d - b'0'))
            })
            .unwrap_or(u128::MAX);
        Some(secs.saturating_mul(1000).min(cap) as u64)
    } else {
        oracle::http_date_ms(v, now).map(|at| at.saturating_sub(now).min(RETRY_AFTER_CAP_MS))
    };
    assert_eq!(got, expected, "parse_retry_after({value:?}, {now})");
    let date = parse_http_date_ms(&value, now);
    assert_eq!(
        date,
        oracle::http_date_ms(&value, now),
        "parse_http_date_ms({value:?}, {now})"
    );
    signature(&[
        match got {
            None => "none",
            Some(0) => "zero",
            Some(RETRY_AFTER_CAP_MS) => "cap",
            Some(_) => "some",
        },
        if date.is_some() { "date" } else { "" },
        match v.find(',') {
            _ if v.bytes().all(|b| b.is_ascii_digit()) => "delta",
            Some(3) => "imf",
            Some(_) => "rfc850",
            None => "asctime",
        },
    ])
}

// ---------------------------------------------------------------------------------------------
// url_resolve

fn check_parsed_url(s: &str, u: &ParsedUrl) {
    assert_eq!(u.scheme, u.scheme.to_ascii_lowercase());
    assert_eq!(u.host, u.host.to_ascii_lowercase());
    assert!(!u.host.is_empty());
    assert!(u.path.starts_with('/'), "path {:?}", u.path);
    assert_ne!(u.port, Some(0));
    let href = u.href();
    assert!(href.starts_with(&origin(u)));
    let again =
        parse_url(&href).unwrap_or_else(|e| panic!("href {href:?} of {s:?}: {}", e.message()));
    let mut expected = u.clone();
    expected.has_userinfo = false;
    // `href` leaves out the scheme's default port, as `origin` does.
    let default = match u.scheme.as_str() {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    };
    if u.port.is_some() && u.port == default {
        expected.port = None;
    }
    assert_eq!(again, expected, "href {href:?} of {s:?} reads differently");
}

fn is_dot_segment_any_spelling(seg: &str) -> bool {
    let lower = seg.to_ascii_lowercase().replace("%2e", ".");
    lower == "." || lower == ".."
}

fn looks_like_url(s: &str) -> bool {
    let end = s.find(['/', '?', '#']).unwrap_or(s.len());
    s[..end].contains(':')
}

fn url_fixed_text() -> &'static str {
    static FIXED: OnceLock<String> = OnceLock::new();
    FIXED.get_or_init(|| {
        let base = parse_url(DEFAULT_BASE).unwrap();
        let mut out = String::new();
        for p in [
            "",
            " ",
            "\n",
            "é",
            "\\",
            "//x",
            "https://x/",
            "https://u@api.example.com/",
            "https://api.example.com/#f",
            "/a#f",
            "/%",
            "/<",
            "/..",
            "x:",
            "https://",
            "http://[",
            "https://a:0/",
            "https://a:/",
            "https://[::1]x/",
            "https://1.2.3/",
            "https://a..b/",
        ] {
            if let Err(e) = resolve_api_url(&base, p) {
                out.push_str(&e.message);
                out.push('\n');
            }
        }
        out
    })
}

/// `util::url::parse_url`, `check_endpoint_url` and `providers::qbank::path::resolve_api_url` on any base
/// and path: never panic; a parsed URL is lower-cased where it should be and its `href`
/// parses back to itself; a configured endpoint is https (or http on loopback when allowed)
/// without user-info or fragment; and a resolved URL parses, is on the base's origin, has no
/// user-info, fragment or dot segment, keeps the base path for a relative path, is its own
/// `href`, and resolves to itself again. Refusals repeat no part of the input.
pub fn url_resolve(data: &[u8]) -> u64 {
    let s = text(data);
    let (base_text, path) = first_line(&s).unwrap_or((DEFAULT_BASE, &s));
    for t in [base_text, path] {
        if let Ok(u) = parse_url(t) {
            check_parsed_url(t, &u);
        }
    }
    for (insecure, query) in [(false, false), (true, false), (false, true), (true, true)] {
        if let Ok(u) = check_endpoint_url("apiBaseUrl", base_text, insecure, query) {
            assert!(u.scheme == "https" || (u.scheme == "http" && insecure));
            assert!(!u.has_userinfo && u.fragment.is_none());
            assert!(query || u.query.is_none());
        }
    }
    let Ok(base) = parse_url(base_text) else {
        return signature(&["bad base"]);
    };
    match resolve_api_url(&base, path) {
        Ok(out) => {
            assert!(!base.has_userinfo && base.query.is_none() && base.fragment.is_none());
            let u = parse_url(&out).unwrap_or_else(|e| panic!("{out:?}: {}", e.message()));
            assert_eq!(origin(&u), origin(&base), "left the base origin: {out:?}");
            assert!(!u.has_userinfo && u.fragment.is_none(), "{out:?}");
            assert!(
                !u.path.split('/').any(is_dot_segment_any_spelling),
                "dot segment: {out:?}"
            );
            assert_eq!(u.href(), out, "not in canonical form");
            if !looks_like_url(path) {
                let prefix = format!("{}/", base.path.trim_end_matches('/'));
                assert!(
                    u.path.starts_with(&prefix),
                    "{out:?} dropped the base path {prefix:?}"
                );
            }
            assert_eq!(
                resolve_api_url(&base, &out).as_ref(),
                Ok(&out),
                "not idempotent"
            );
            signature(&["ok", if looks_like_url(path) { "abs" } else { "rel" }])
        }
        Err(e) => {
            assert!(matches!(
                e.code,
                ErrorCode::InvalidArgument | ErrorCode::Config
            ));
            assert!(!e.may_have_reached_server);
            if !origin(&base).contains(path) {
                assert_no_server_text(&e.message, &[path], url_fixed_text(), "url");
            }
            let why = e.message.split(" origin ").next().unwrap_or("");
            signature(&[e.code.as_str(), why])
        }
    }
}

// ---------------------------------------------------------------------------------------------
// account_id

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

fn account_fixed_text() -> &'static str {
    static FIXED: OnceLock<String> = OnceLock::new();
    FIXED.get_or_init(|| {
        let long = "a".repeat(MAX_ACCOUNT_ID_BYTES + 1);
        let mut out = String::new();
        for id in [
            "",
            ".",
            "a/b",
            "a\\b",
            "a?b",
            "a#b",
            "a%b",
            "a b",
            "a\u{1}b",
            "a\u{200b}b",
            "a..b",
            &long,
        ] {
            if let Err(e) = check_account_id(id) {
                out.push_str(&e.message);
                out.push('\n');
            }
        }
        out
    })
}

/// `providers::qbank::path::check_account_id`, `account_path_segment` and `balance_url` on any id: never
/// panic; an accepted id is at most 128 bytes without whitespace or control characters, and
/// becomes exactly one path segment of unreserved characters and `%XX` that decodes back to
/// the id, is not a dot segment, and lands right under `/v1/balances/`; a refusal is an
/// `invalid_argument` that was never sent and does not repeat the id (beyond an 8-character
/// preview).
pub fn account_id(data: &[u8]) -> u64 {
    let id = text(data);
    let encoded = percent_encode(&id);
    assert_eq!(percent_decode(&encoded).as_deref(), Some(id.as_bytes()));
    match check_account_id(&id) {
        Ok(()) => {
            assert!(!id.is_empty() && id.len() <= MAX_ACCOUNT_ID_BYTES);
            assert!(!id.chars().any(|c| c.is_whitespace() || c.is_control()));
            let seg = account_path_segment(&id).expect("checked id refused");
            assert_eq!(seg, encoded);
            assert!(seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
            assert!(!is_dot_segment_any_spelling(&seg), "dot segment {seg:?}");
            let base = parse_url(DEFAULT_BASE).unwrap();
            let url = balance_url(&base, &id).expect("balance_url refused a checked id");
            assert_eq!(
                url,
                format!("https://api.example.com/qbank/v1/balances/{seg}")
            );
            let u = parse_url(&url).expect("balance URL does not parse");
            assert_eq!(u.path.split('/').count(), 5, "{url:?}");
            assert!(u.query.is_none() && u.fragment.is_none());
            signature(&["ok", if id.is_ascii() { "ascii" } else { "utf8" }])
        }
        Err(e) => {
            assert_eq!(e.code, ErrorCode::InvalidArgument);
            assert!(!e.may_have_reached_server);
            assert!(account_path_segment(&id).is_err());
            let tail: String = id.chars().skip(8).collect();
            assert_no_server_text(
                &e.message,
                &[&id, &tail],
                account_fixed_text(),
                "account id",
            );
            signature(&[e.code.as_str(), &e.message])
        }
    }
}

// ---------------------------------------------------------------------------------------------
// qpay_answer

/// Reads `STATUS\nbody` (no newline, or a first line that is not a number: 200 and the whole
/// input as the body).
pub fn decode_status_body(data: &[u8]) -> (u16, String) {
    let s = text(data);
    if let Some((first, rest)) = first_line(&s) {
        if let Ok(n) = first.trim().parse::<u32>() {
            return ((n % 1000) as u16, rest.to_string());
        }
    }
    (200, s.into_owned())
}

/// `providers::qpay`'s readers of QPay Credentials API answers (`parse_body`, `whoami_from_json`,
/// `created_from_json`, `roles_from_json`, `error_detail`, `api_error`) and its JSON writers
/// (`create_client_body`, `update_roles_body`) fed with the answer's strings: never panic; an
/// accepted body is an object or array; fields come back exactly as sent; a created client's
/// `Debug` never depends on its secret; every body written parses back (with `util::json`) to
/// exactly the strings put in.
pub fn qpay_answer(data: &[u8]) -> u64 {
    use qbank_connect::providers::qpay::{
        api_error, create_client_body, created_from_json, error_detail, parse_body,
        roles_from_json, update_roles_body, whoami_from_json,
    };
    let (status, body) = decode_status_body(data);
    let detail = error_detail(&body);
    let e = api_error(status, detail.as_deref());
    assert_eq!(e.status, Some(status));
    assert!(e.may_have_reached_server);
    if let Some(d) = detail.as_deref().filter(|d| !d.is_empty()) {
        assert!(
            e.message.ends_with(d),
            "detail not at the end of {:?}",
            e.message
        );
    }
    let parsed = match parse_body(&body) {
        Ok(v) => v,
        Err(e) => {
            assert_eq!(e.code, ErrorCode::InvalidResponse);
            return signature(&["bad body", &e.message]);
        }
    };
    assert!(matches!(parsed, Json::Object(_) | Json::Array(_)));
    let mut sig = vec!["ok"];
    if let Ok(w) = whoami_from_json(&parsed) {
        assert!(!w.tenant_type.is_empty() && !w.tenant_id.is_empty());
        sig.push("whoami");
    }
    if let Ok(c) = created_from_json(&parsed) {
        assert!(!c.client_secret.expose().is_empty());
        let other = qbank_connect::providers::qpay::CreatedClient {
            client_secret: Secret::new("x"),
            ..c.clone()
        };
        assert_eq!(
            format!("{c:?}"),
            format!("{other:?}"),
            "Debug shows the secret"
        );
        sig.push("created");
    }
    let roles = roles_from_json(&parsed);
    if roles.is_ok() {
        sig.push("roles");
    }
    // The writers, with the answer's own strings as input.
    let mut strings = Vec::new();
    json_strings(&parsed, &mut strings);
    let strings: Vec<String> = strings.into_iter().map(String::from).collect();
    let (tenant, name) = (
        strings.first().cloned().unwrap_or_default(),
        strings.get(1).cloned().unwrap_or_default(),
    );
    let roles_in: Vec<String> = roles.unwrap_or_else(|_| strings.iter().skip(2).cloned().collect());
    if let Ok(out) = create_client_body(&tenant, &name, &roles_in) {
        let v = json::parse(&out).unwrap_or_else(|e| panic!("{out:?}: {}", e.describe()));
        assert_eq!(
            v.get("tenant_id").and_then(Json::as_str),
            Some(tenant.as_str())
        );
        assert_eq!(v.get("name").and_then(Json::as_str), Some(name.as_str()));
        let back: Option<Vec<&str>> = v
            .get("roles")
            .and_then(Json::as_array)
            .map(|a| a.iter().filter_map(Json::as_str).collect());
        assert_eq!(back, Some(roles_in.iter().map(String::as_str).collect()));
        sig.push("create body");
    }
    if let Ok(out) = update_roles_body(&roles_in) {
        let v = json::parse(&out).unwrap_or_else(|e| panic!("{out:?}: {}", e.describe()));
        assert_eq!(
            v.get("roles").and_then(Json::as_array).map(<[Json]>::len),
            Some(roles_in.len())
        );
    }
    signature(&sig)
}

// ---------------------------------------------------------------------------------------------
// scrub

/// Reads `CLIENT_ID\nSECRET\nOTHER…\n\ntext`: the lines before the first empty line, then the
/// text (no empty line: the whole input is the text, with a fixed id and secret).
pub fn decode_scrub_input(data: &[u8]) -> (Vec<String>, String) {
    let s = text(data);
    match s.split_once("\n\n") {
        Some((head, body)) => (
            head.split('\n').map(String::from).collect(),
            body.to_string(),
        ),
        None => (
            vec!["client-1".to_string(), "s3cr3t-V4lue".to_string()],
            s.into_owned(),
        ),
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn pct(s: &str, keep: impl Fn(u8) -> bool, space_plus: bool, lower: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if keep(b) {
            out.push(char::from(b));
        } else if space_plus && b == b' ' {
            out.push('+');
        } else {
            out.push('%');
            for nibble in [b >> 4, b & 15] {
                let c = char::from(HEX_UPPER[usize::from(nibble)]);
                out.push(if lower { c.to_ascii_lowercase() } else { c });
            }
        }
    }
    out
}

/// Every form `scrub` promises to find a secret in: as is, form-urlencoded and percent-encoded
/// (upper- and lower-case hex), and JSON-string-escaped; written here from the specs.
pub fn secret_forms(s: &str) -> Vec<String> {
    let form = |b: u8| b.is_ascii_alphanumeric() || b"*-._".contains(&b);
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    let mut json = String::new();
    oracle::write_json_string(s, &mut json);
    let json = json[1..json.len() - 1]
        .replace("\\u000a", "\\n")
        .replace("\\u000d", "\\r")
        .replace("\\u0009", "\\t");
    vec![
        s.to_string(),
        pct(s, form, true, false),
        pct(s, form, true, true),
        pct(s, unreserved, false, false),
        pct(s, unreserved, false, true),
        json,
    ]
}

/// `util::redact::scrub` with `secret_variants(id, secret)` and further secrets, on any text:
/// never panics; no secret of 4 or more characters survives in any form `scrub` promises (as
/// is, form- or percent-encoded with either case of hex, JSON-escaped, and for the client
/// secret the Basic credential in both encodings) — checked between the `[redacted]` marks, so
/// a secret that only appears by joining a mark to its neighbours is not counted; and text
/// holding none of them comes back unchanged.
pub fn scrub(data: &[u8]) -> u64 {
    use qbank_connect::util::redact::{scrub, secret_variants, MIN_SECRET_CHARS, REDACTED};
    let (lines, body) = decode_scrub_input(data);
    let id = lines.first().cloned().unwrap_or_default();
    let secret = lines.get(1).cloned().unwrap_or_default();
    let mut list = secret_variants(&id, &secret);
    list.extend(lines.iter().skip(2).cloned());
    let refs: Vec<&str> = list.iter().map(String::as_str).collect();
    let out = scrub(&body, &refs);

    let mut forbidden: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        if s.chars().count() >= MIN_SECRET_CHARS {
            forbidden.extend(secret_forms(s));
        }
    };
    add(&secret);
    for extra in lines.iter().skip(2) {
        add(extra);
    }
    if secret.chars().count() >= MIN_SECRET_CHARS {
        let form = |b: u8| b.is_ascii_alphanumeric() || b"*-._".contains(&b);
        let rfc = format!(
            "{}:{}",
            pct(&id, form, true, false),
            pct(&secret, form, true, false)
        );
        forbidden.push(b64_std(rfc.as_bytes()));
        forbidden.push(b64_std(format!("{id}:{secret}").as_bytes()));
    }
    for piece in out.split(REDACTED) {
        for f in &forbidden {
            assert!(!piece.contains(f.as_str()), "{f:?} survives in {out:?}");
        }
    }
    let found = forbidden.iter().any(|f| body.contains(f.as_str()));
    // What scrub looks for is wider than what it promises (each variant in each encoding, so
    // double encodings too): text holding none of that must come back as it was.
    let looked_for: Vec<String> = refs
        .iter()
        .filter(|r| r.chars().count() >= MIN_SECRET_CHARS)
        .flat_map(|r| secret_forms(r))
        .collect();
    if !found && !looked_for.iter().any(|f| body.contains(f.as_str())) {
        assert_eq!(out, body, "text without secrets was changed");
    }
    signature(&[
        if found { "found" } else { "clean" },
        bucket(out.matches(REDACTED).count()),
    ])
}
