//! QBank Connect `GET /v1/balances/{accountId}`: build the request, read the balance exactly.
//!
//! Amounts are money: they come back as the exact decimal text the bank sent, never through a
//! float. The provider docs name the fields `available_balance` and `ledger_balance`; camelCase
//! names and `{ "amount": …, "currency": … }` objects are accepted too.

use crate::oauth::Error;
use crate::prelude::*;
use crate::providers::qbank::path::{account_path_segment, resolve_api_url};
use crate::util::json::{self, Json};
use crate::util::url::ParsedUrl;
use crate::util::{concat, HttpRequest, Invalid};
use alloc::borrow::Cow;

/// Most integer digits an amount may have (far beyond any real balance; refuses `1e400`).
pub const MAX_INTEGER_DIGITS: usize = 30;
/// Most fraction digits an amount may have.
pub const MAX_FRACTION_DIGITS: usize = 20;

/// One account balance, exactly as the bank sent it; borrows from the id and body it was read
/// from (text is copied only where the body escaped it or an exponent had to be expanded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balance<'a> {
    /// The account id that was asked for.
    pub account_id: &'a str,
    /// The available balance: plain decimal text (see [`is_decimal_amount`]).
    pub available_balance: Cow<'a, str>,
    /// The ledger balance: plain decimal text.
    pub ledger_balance: Cow<'a, str>,
    /// The currency, if the bank said (top level, or inside the amount objects).
    pub currency: Option<Cow<'a, str>>,
    /// When the balance is valid, verbatim (`as_of`, `asOf` or `balance_date`). The docs
    /// disagree between real-time and previous business day, so it is passed through, not read.
    pub as_of: Option<Cow<'a, str>>,
    /// The whole parsed body, for fields this struct does not name.
    pub raw: Json<'a>,
}

/// The object `getBalance` resolves to, as JSON text: `accountId`, `availableBalance`,
/// `ledgerBalance`, `currency` and `asOf` when known, and `raw`, the body itself with every
/// number turned into a string of its exact digits ([`json::quote_numbers`]). The JavaScript side
/// makes it an object with one `JSON.parse`: one string crosses the wasm boundary instead of one
/// per field, and the body is not written again.
///
/// A body without any number (the documented form: amounts are strings) needs no quoting, so
/// `raw` is left out of the text: it is exactly `JSON.parse(body)`, which the caller adds (the
/// engine's own parser reads the body faster than it can be copied through this text).
pub fn balance_result_json(account_id: &str, body: &str) -> Result<String, Error> {
    parse_balance(account_id, body).map(|b| result_json(&b, body, b.raw.has_number()))
}

/// How the JavaScript edge builds `getBalance`'s result from a 2xx body (see [`balance_read`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BalanceRead {
    /// Every field of the result is a top-level string member of the body, read exactly as
    /// `JSON.parse(body)` reads it, and `raw` is `JSON.parse(body)` itself: which members, as
    /// bits (`PLAN_*`). The edge makes the object without any text crossing back.
    Plan(u32),
    /// Anything else (numbers, nested amounts): the result as [`balance_result_json`] writes it.
    Json(String),
}

/// Always set in a plan (so a plan is never 0).
pub const PLAN: u32 = 1;
/// `availableBalance` is the body's `availableBalance` (else its `available_balance`).
pub const PLAN_AVAILABLE_CAMEL: u32 = 2;
/// `ledgerBalance` is the body's `ledgerBalance` (else its `ledger_balance`).
pub const PLAN_LEDGER_CAMEL: u32 = 4;
/// `currency` is the body's `currency` (else there is none).
pub const PLAN_CURRENCY: u32 = 8;
/// Bits 4-5: `asOf` is the body's `as_of` (1), `asOf` (2) or `balance_date` (3); 0: none.
pub const PLAN_AS_OF_SHIFT: u32 = 4;
/// The names of the `asOf` values of [`PLAN_AS_OF_SHIFT`], 1 to 3.
pub const AS_OF_NAMES: [&str; 3] = ["as_of", "asOf", "balance_date"];

/// Reads a 2xx balance body ([`parse_balance`]: same checks, same errors) into what the edge
/// needs to build the result: a [`BalanceRead::Plan`] in the documented case, where the engine's
/// `JSON.parse` can supply every value exactly, else the result's JSON text.
pub fn balance_read(account_id: &str, body: &str) -> Result<BalanceRead, Error> {
    let b = parse_balance(account_id, body)?;
    // Walked once: a body with a number is never planned, and its text carries `raw`.
    let numbers = b.raw.has_number();
    let planned = if numbers { None } else { plan(&b) };
    Ok(match planned {
        Some(bits) => BalanceRead::Plan(bits),
        None => BalanceRead::Json(result_json(&b, body, numbers)),
    })
}

/// The plan for `b`, if every field it returns is exactly a top-level string member of the
/// body (checked here by comparing, not assumed). Only for a body without any number (the
/// caller checks: a plan's `raw` is `JSON.parse(body)`, which would turn numbers into floats).
fn plan(b: &Balance<'_>) -> Option<u32> {
    let is =
        |name: &str, value: &str| matches!(b.raw.get(name), Some(Json::String(s)) if s == value);
    // The member parse_balance read: the first of the two names present.
    let which = |snake: &str, camel: &str, value: &str, bit: u32| {
        if b.raw.get(snake).is_some() {
            is(snake, value).then_some(0)
        } else {
            is(camel, value).then_some(bit)
        }
    };
    let mut bits = PLAN;
    bits |= which(
        "available_balance",
        "availableBalance",
        &b.available_balance,
        PLAN_AVAILABLE_CAMEL,
    )?;
    bits |= which(
        "ledger_balance",
        "ledgerBalance",
        &b.ledger_balance,
        PLAN_LEDGER_CAMEL,
    )?;
    if let Some(c) = &b.currency {
        bits |= is("currency", c).then_some(PLAN_CURRENCY)?;
    }
    if let Some(a) = &b.as_of {
        let at = AS_OF_NAMES.iter().position(|n| b.raw.get(n).is_some())?;
        bits |= is(AS_OF_NAMES[at], a).then_some((at as u32 + 1) << PLAN_AS_OF_SHIFT)?;
    }
    Some(bits)
}

/// The result's JSON text; `numbers`: whether the body has any number (then `raw` is written).
fn result_json(b: &Balance<'_>, body: &str, numbers: bool) -> String {
    let account_id = b.account_id;
    let mut out = String::with_capacity(
        96 + 2 * account_id.len() + if numbers { body.len() + 32 } else { 0 },
    );
    let field = |out: &mut String, name: &str, value: &str| {
        out.push_str(if out.is_empty() { "{" } else { "," });
        json::write_string(out, name);
        out.push(':');
        json::write_string(out, value);
    };
    field(&mut out, "accountId", b.account_id);
    field(&mut out, "availableBalance", &b.available_balance);
    field(&mut out, "ledgerBalance", &b.ledger_balance);
    if let Some(c) = &b.currency {
        field(&mut out, "currency", c);
    }
    if let Some(a) = &b.as_of {
        field(&mut out, "asOf", a);
    }
    if numbers {
        out.push_str(",\"raw\":");
        json::quote_numbers(&mut out, body);
    }
    out.push('}');
    out
}

/// Whether `s` is a plain decimal amount: an optional leading `-`, then `0` or digits not
/// starting with `0`, then optionally `.` and digits; at most [`MAX_INTEGER_DIGITS`] and
/// [`MAX_FRACTION_DIGITS`] digits. No `+`, spaces, thousands separators, exponents, `NaN`.
pub fn is_decimal_amount(s: &str) -> bool {
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    digits(int)
        && int.len() <= MAX_INTEGER_DIGITS
        && (int == "0" || !int.starts_with('0'))
        && frac.map_or(true, |f| digits(f) && f.len() <= MAX_FRACTION_DIGITS)
}

/// The URL of `GET /v1/balances/{accountId}` under the API base: the id is checked and
/// percent-encoded as exactly one path segment ([`account_path_segment`]), so it can never
/// change the path; a refused id is an [`ErrorCode::InvalidArgument`](crate::oauth::ErrorCode::InvalidArgument) error and nothing is sent.
pub fn balance_url(api_base: &ParsedUrl, account_id: &str) -> Result<String, Error> {
    let segment = account_path_segment(account_id)?;
    resolve_api_url(api_base, &concat(&["/v1/balances/", &segment]))
}

/// A `GET` of `url` with the Bearer token, asking for JSON.
pub fn bearer_get(url: &str, access_token: &str) -> HttpRequest {
    HttpRequest {
        method: "GET",
        url: String::from(url),
        headers: vec![
            (
                String::from("Authorization"),
                concat(&["Bearer ", access_token]),
            ),
            (String::from("Accept"), String::from("application/json")),
        ],
        body: None,
    }
}

/// Reads a 200 answer of `GET /v1/balances/{accountId}`.
///
/// Amounts may be JSON strings or numbers, or objects `{ "amount": …, "currency": … }`; they
/// come back with exactly the digits sent. A number with an exponent is expanded exactly
/// (`1.5e3` → `"1500"`, `15e-1` → `"1.5"`); a string must already be plain decimal text.
/// Refused with [`ErrorCode::InvalidResponse`](crate::oauth::ErrorCode::InvalidResponse) naming the field: a missing, null or empty
/// amount, `"1,234.56"`, `"NaN"`, `"Infinity"`, `1e400`, booleans, objects without an amount,
/// currencies that disagree, and an `account_id`/`accountId` in the body that differs
/// (ignoring ASCII case) from the one asked for.
pub fn parse_balance<'a>(account_id: &'a str, body: &'a str) -> Result<Balance<'a>, Error> {
    let raw = match json::parse(body) {
        Ok(v) => v,
        Err(_) if body.trim().is_empty() => return Err(invalid("the balance response is empty")),
        Err(e) => {
            return Err(invalid(&concat(&[
                "the balance response is not valid JSON (",
                &e.describe(),
                ")",
            ])))
        }
    };
    if !matches!(raw, Json::Object(_)) {
        return Err(invalid(&concat(&[
            "the balance response is ",
            raw.kind(),
            ", not a JSON object",
        ])));
    }

    if let Some((_, id)) = raw.first_of(&["account_id", "accountId"]) {
        if id
            .as_str()
            .is_some_and(|id| !id.eq_ignore_ascii_case(account_id))
        {
            return Err(invalid(
                "the balance response is for a different account than the one asked for",
            ));
        }
    }

    let (available, avail_currency) = amount_field(&raw, "available_balance", "availableBalance")?;
    let (ledger, ledger_currency) = amount_field(&raw, "ledger_balance", "ledgerBalance")?;

    let top_currency = match raw.get("currency") {
        None | Some(Json::Null) => None,
        Some(Json::String(c)) if !c.is_empty() => Some(c.clone()),
        Some(_) => {
            return Err(invalid(
                "the balance response currency is not a non-empty string",
            ))
        }
    };
    let mut currency: Option<Cow<'a, str>> = None;
    for c in [top_currency, avail_currency, ledger_currency]
        .into_iter()
        .flatten()
    {
        match &currency {
            Some(seen) if !seen.eq_ignore_ascii_case(&c) => {
                return Err(invalid(
                    "the balance response gives different currencies for the same account",
                ))
            }
            Some(_) => {}
            None => currency = Some(c),
        }
    }

    let as_of = match raw.first_of(&AS_OF_NAMES) {
        Some((_, Json::String(s))) => Some(s.clone()),
        Some((_, Json::Number(n))) => Some(n.clone()),
        _ => None,
    };

    Ok(Balance {
        account_id,
        available_balance: available,
        ledger_balance: ledger,
        currency,
        as_of,
        raw,
    })
}

fn invalid(what: &str) -> Error {
    Error::invalid_response(concat(&[
        what,
        "; the balance was not used: retry later, and report it to QBank if it persists",
    ]))
}

/// An amount and the currency nested with it, if any.
fn amount_field<'a>(
    raw: &Json<'a>,
    snake: &'static str,
    camel: &'static str,
) -> Result<(Cow<'a, str>, Option<Cow<'a, str>>), Error> {
    let Some((name, value)) = raw.first_of(&[snake, camel]) else {
        return Err(invalid(&concat(&[
            "the balance response has no ",
            snake,
            " (nor ",
            camel,
            ")",
        ])));
    };
    let bad = |problem: &str| invalid(&concat(&["the balance response ", name, " ", problem]));
    match value {
        Json::Object(_) => {
            let currency = match value.get("currency") {
                None | Some(Json::Null) => None,
                Some(Json::String(c)) if !c.is_empty() => Some(c.clone()),
                Some(_) => return Err(bad("has a currency that is not a non-empty string")),
            };
            match value.get("amount") {
                None => Err(bad("is an object without an amount")),
                Some(inner) => amount(inner)
                    .map(|a| (a, currency))
                    .map_err(|p| bad(&concat(&["amount ", p.why]))),
            }
        }
        other => amount(other).map(|a| (a, None)).map_err(|p| bad(p.why)),
    }
}

/// A JSON string or number as exact plain decimal text, or what is wrong with it.
fn amount<'a>(value: &Json<'a>) -> Result<Cow<'a, str>, Invalid> {
    let why = match value {
        Json::String(s) if s.is_empty() => "is an empty string",
        Json::String(s) if is_decimal_amount(s) => return Ok(s.clone()),
        Json::String(_) => {
            "is not a plain decimal amount (digits, an optional leading '-' and '.', no \
             thousands separators, exponent or NaN)"
        }
        Json::Number(n) => match plain_decimal(n) {
            Some(plain) => return Ok(plain),
            None => {
                "is a number outside the supported range (at most 30 integer and 20 fraction \
                 digits)"
            }
        },
        Json::Null => "is null",
        Json::Bool(_) => "is a boolean, not an amount",
        Json::Array(_) => "is an array, not an amount",
        Json::Object(_) => "is an object, not an amount",
    };
    Err(Invalid::new(why))
}

/// `n` zeros (`None` for a negative `n`); a loop, as `str::repeat` links alloc's generic
/// slice repeat.
fn zeros(n: i64) -> Option<String> {
    let mut out = String::new();
    for _ in 0..usize::try_from(n).ok()? {
        out.push('0');
    }
    Some(out)
}

/// A JSON number as plain decimal text with exactly its digits: no exponent is returned as is;
/// an exponent is expanded by moving the point (`1.5e3` → `1500`, `1.50e1` → `15.0`).
/// `None` if the result would exceed the digit limits.
fn plain_decimal<'a>(number: &Cow<'a, str>) -> Option<Cow<'a, str>> {
    let text: &str = number;
    let d = json::decimal(text)?;
    if !text.contains(['e', 'E']) {
        return is_decimal_amount(text).then(|| number.clone());
    }
    let digits = concat(&[d.int, d.frac]);
    let len = digits.len() as i64;
    let point = (d.int.len() as i64).saturating_add(d.exp);
    // Bound the work before building anything: the exponent may be huge.
    if point > len + MAX_INTEGER_DIGITS as i64 || point < -(MAX_FRACTION_DIGITS as i64) {
        return None;
    }
    let mut out = String::new();
    if d.negative {
        out.push('-');
    }
    let (int, frac) = if point <= 0 {
        (String::from("0"), concat(&[&zeros(-point)?, &digits]))
    } else if point >= len {
        (concat(&[&digits, &zeros(point - len)?]), String::new())
    } else {
        let at = usize::try_from(point).ok()?;
        (
            String::from(digits.get(..at)?),
            String::from(digits.get(at..)?),
        )
    };
    let int = int.trim_start_matches('0');
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(&frac);
    }
    is_decimal_amount(&out).then_some(Cow::Owned(out))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::oauth::ErrorCode;

    const ID: &str = "a1b2c3d4-e5f6-7890-1234-567890abcde";

    fn ok(body: &str) -> Balance<'_> {
        parse_balance(ID, body).unwrap()
    }

    fn refused(body: &str) -> Error {
        let e = parse_balance(ID, body).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidResponse, "{body}");
        e
    }

    #[test]
    fn documented_snake_case_strings() {
        let b = ok(
            r#"{"account_id":"a1b2c3d4-e5f6-7890-1234-567890abcde","available_balance":"1500.25","ledger_balance":"1600.00","currency":"USD","as_of":"2024-05-01"}"#,
        );
        assert_eq!(b.account_id, ID);
        assert_eq!(b.available_balance, "1500.25");
        assert_eq!(b.ledger_balance, "1600.00");
        assert_eq!(b.currency.as_deref(), Some("USD"));
        assert_eq!(b.as_of.as_deref(), Some("2024-05-01"));
        assert_eq!(b.raw.get("currency").and_then(Json::as_str), Some("USD"));
    }

    #[test]
    fn camel_case_and_other_date_names() {
        let b = ok(
            r#"{"availableBalance":"1.00","ledgerBalance":"2.00","asOf":"2024-05-01T10:00:00Z"}"#,
        );
        assert_eq!(
            (&*b.available_balance, &*b.ledger_balance),
            ("1.00", "2.00")
        );
        assert_eq!(b.as_of.as_deref(), Some("2024-05-01T10:00:00Z"));
        assert_eq!(b.currency, None);
        let b = ok(r#"{"availableBalance":"1","ledgerBalance":"2","balance_date":"2024-04-30"}"#);
        assert_eq!(b.as_of.as_deref(), Some("2024-04-30"));
    }

    #[test]
    fn nested_amount_objects_carry_the_currency() {
        let b = ok(
            r#"{"available_balance":{"amount":"12.34","currency":"USD"},"ledger_balance":{"amount":56.78,"currency":"usd"}}"#,
        );
        assert_eq!(b.available_balance, "12.34");
        assert_eq!(b.ledger_balance, "56.78");
        assert_eq!(b.currency.as_deref(), Some("USD"));
    }

    #[test]
    fn json_numbers_keep_every_digit() {
        let b = ok(
            r#"{"available_balance":12345678901234567.89,"ledger_balance":-98765432109876543.210}"#,
        );
        assert_eq!(b.available_balance, "12345678901234567.89");
        assert_eq!(b.ledger_balance, "-98765432109876543.210");
    }

    #[test]
    fn twenty_significant_digit_numbers_survive() {
        let b = ok(
            r#"{"available_balance":123456789012345678.91,"ledger_balance":98765432109876543210}"#,
        );
        assert_eq!(b.available_balance, "123456789012345678.91");
        assert_eq!(b.ledger_balance, "98765432109876543210");
        let b = ok(
            r#"{"available_balance":0.12345678901234567891,"ledger_balance":"99999999999999999999.99"}"#,
        );
        assert_eq!(b.available_balance, "0.12345678901234567891");
        assert_eq!(b.ledger_balance, "99999999999999999999.99");
    }

    #[test]
    fn exponent_numbers_are_expanded_exactly() {
        let with = |n: &str| {
            ok(&concat(&[
                r#"{"available_balance":"#,
                n,
                r#","ledger_balance":"0"}"#,
            ]))
            .available_balance
            .into_owned()
        };
        assert_eq!(with("1.5e3"), "1500");
        assert_eq!(with("1.50e1"), "15.0");
        assert_eq!(with("15E-1"), "1.5");
        assert_eq!(with("1e-2"), "0.01");
        assert_eq!(with("-2.5e+2"), "-250");
        assert_eq!(with("0.015e2"), "1.5");
        assert_eq!(with("12345678901234567891e-2"), "123456789012345678.91");
    }

    #[test]
    fn overdrafts_keep_the_minus_sign() {
        let b = ok(r#"{"available_balance":"-12.50","ledger_balance":-0.01}"#);
        assert_eq!(b.available_balance, "-12.50");
        assert_eq!(b.ledger_balance, "-0.01");
    }

    #[test]
    fn bad_amounts_are_refused_naming_the_field() {
        for (value, says) in [
            ("null", "is null"),
            (r#""""#, "is an empty string"),
            (r#""1,234.56""#, "not a plain decimal"),
            (r#""NaN""#, "not a plain decimal"),
            (r#""Infinity""#, "not a plain decimal"),
            (r#""1.5e3""#, "not a plain decimal"),
            (r#"" 12.34""#, "not a plain decimal"),
            (r#""+12.34""#, "not a plain decimal"),
            ("1e400", "outside the supported range"),
            ("1e-400", "outside the supported range"),
            ("true", "is a boolean"),
            ("[1]", "is an array"),
            (r#"{"currency":"USD"}"#, "is an object without an amount"),
            (r#"{"amount":null}"#, "amount is null"),
            (r#"{"amount":{"value":"1"}}"#, "amount is an object"),
        ] {
            let body = concat(&[r#"{"ledger_balance":"1","available_balance":"#, value, "}"]);
            let e = refused(&body);
            assert!(
                e.message.contains("available_balance"),
                "{value}: {}",
                e.message
            );
            assert!(e.message.contains(says), "{value}: {}", e.message);
        }
    }

    #[test]
    fn missing_amounts_are_refused_naming_both_spellings() {
        let e = refused(r#"{"available_balance":"1"}"#);
        assert!(
            e.message
                .contains("has no ledger_balance (nor ledgerBalance)"),
            "{}",
            e.message
        );
    }

    #[test]
    fn non_object_and_malformed_bodies_are_refused() {
        assert!(refused("").message.contains("is empty"));
        assert!(refused("[]")
            .message
            .contains("is an array, not a JSON object"));
        assert!(refused("<html>").message.contains("not valid JSON"));
    }

    #[test]
    fn a_body_for_another_account_is_refused() {
        let e =
            refused(r#"{"accountId":"someone-else","available_balance":"1","ledger_balance":"1"}"#);
        assert!(e.message.contains("different account"));
        let upper = ID.to_ascii_uppercase();
        let body = concat(&[
            r#"{"accountId":""#,
            &upper,
            r#"","available_balance":"1","ledger_balance":"1"}"#,
        ]);
        assert!(parse_balance(ID, &body).is_ok());
    }

    #[test]
    fn conflicting_currencies_are_refused() {
        let e = refused(
            r#"{"currency":"USD","available_balance":{"amount":"1","currency":"EUR"},"ledger_balance":"1"}"#,
        );
        assert!(e.message.contains("different currencies"));
        refused(r#"{"currency":7,"available_balance":"1","ledger_balance":"1"}"#);
    }

    #[test]
    fn is_decimal_amount_grammar() {
        for good in [
            "0",
            "-0",
            "12.34",
            "-12.34",
            "0.5",
            "100",
            "123456789012345678901234567890",
        ] {
            assert!(is_decimal_amount(good), "{good}");
        }
        for bad in [
            "",
            "-",
            ".5",
            "5.",
            "1.2.3",
            "+1",
            "01",
            "1,234.56",
            "1 000",
            "NaN",
            "Infinity",
            "1e3",
            "0x10",
            "--1",
            "1234567890123456789012345678901",
            "0.123456789012345678901",
        ] {
            assert!(!is_decimal_amount(bad), "{bad}");
        }
    }

    #[test]
    fn balance_request_is_a_bearer_get_of_one_encoded_segment() {
        let base = crate::util::url::parse_url("https://api.qbankconnect.com/").unwrap();
        let req = bearer_get(&balance_url(&base, ID).unwrap(), "tok");
        assert_eq!(req.method, "GET");
        assert_eq!(
            req.url,
            "https://api.qbankconnect.com/v1/balances/a1b2c3d4-e5f6-7890-1234-567890abcde"
        );
        assert_eq!(
            req.headers,
            vec![
                ("Authorization".to_string(), "Bearer tok".to_string()),
                ("Accept".to_string(), "application/json".to_string()),
            ]
        );
        assert_eq!(req.body, None);
        assert_eq!(
            balance_url(&base, "ACC:42@b").unwrap(),
            "https://api.qbankconnect.com/v1/balances/ACC%3A42%40b"
        );
    }

    #[test]
    fn account_ids_that_could_change_the_path_are_refused() {
        let base = crate::util::url::parse_url("https://x").unwrap();
        let long = "a".repeat(129);
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a?b",
            "a#b",
            "a b",
            "a%2Fb",
            "a\u{0}b",
            "a\nb",
            long.as_str(),
        ] {
            let e = balance_url(&base, bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{bad}");
            assert!(!e.may_have_reached_server);
        }
    }
    #[test]
    fn the_result_object_is_json_with_exact_amounts_and_raw_numbers_as_strings() {
        let text = balance_result_json(
            ID,
            r#"{"account_id":"A1B2C3D4-e5f6-7890-1234-567890abcde",
            "available_balance":12345678901234567.89, "ledger_balance":"-0.10",
            "currency":"EUR","as_of":"2026-11-20\"T\u2028","n":[1e2,{"x":null}]}"#,
        )
        .unwrap();
        let v = json::parse(&text).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().iter().map(|(k, _)| &**k).collect();
        assert_eq!(
            keys,
            [
                "accountId",
                "availableBalance",
                "ledgerBalance",
                "currency",
                "asOf",
                "raw"
            ]
        );
        assert_eq!(v.get("accountId").unwrap().as_str(), Some(ID));
        let text = |name: &str| v.get(name).unwrap().as_str().unwrap();
        assert_eq!(text("availableBalance"), "12345678901234567.89");
        assert_eq!(text("ledgerBalance"), "-0.10");
        assert_eq!(text("currency"), "EUR");
        assert_eq!(text("asOf"), "2026-11-20\"T\u{2028}");
        let raw = v.get("raw").unwrap();
        let amount = raw.get("available_balance").unwrap().as_str();
        assert_eq!(amount, Some("12345678901234567.89"));
        assert_eq!(
            raw.get("n").unwrap(),
            &Json::Array(vec![
                Json::String("1e2".into()),
                Json::Object(vec![("x".into(), Json::Null)])
            ])
        );
    }

    #[test]
    fn the_result_object_leaves_out_what_the_bank_did_not_say() {
        let text =
            balance_result_json(ID, r#"{"available_balance":"1","ledger_balance":2}"#).unwrap();
        let v = json::parse(&text).unwrap();
        assert!(v.get("currency").is_none() && v.get("asOf").is_none());
        assert_eq!(v.get("raw").unwrap().as_object().unwrap().len(), 2);
    }

    /// What the JavaScript edge does with a plan (support.js `fromPlan`), over the parsed body.
    fn apply_plan<'a>(bits: u32, id: &'a str, raw: &Json<'a>) -> Json<'a> {
        let member = |name: &str| raw.get(name).cloned().unwrap();
        let pick = |bit: u32, snake: &str, camel: &str| {
            member(if bits & bit != 0 { camel } else { snake })
        };
        let mut out = vec![
            ("accountId".into(), Json::String(id.into())),
            (
                "availableBalance".into(),
                pick(
                    PLAN_AVAILABLE_CAMEL,
                    "available_balance",
                    "availableBalance",
                ),
            ),
            (
                "ledgerBalance".into(),
                pick(PLAN_LEDGER_CAMEL, "ledger_balance", "ledgerBalance"),
            ),
        ];
        if bits & PLAN_CURRENCY != 0 {
            out.push(("currency".into(), member("currency")));
        }
        let as_of = (bits >> PLAN_AS_OF_SHIFT) & 3;
        if as_of != 0 {
            out.push(("asOf".into(), member(AS_OF_NAMES[as_of as usize - 1])));
        }
        out.push(("raw".into(), raw.clone()));
        Json::Object(out)
    }

    /// The result as the edge builds it from `balance_result_json` (adding `raw` when left out).
    fn from_json_text<'a>(text: &'a str, raw: &Json<'a>) -> Json<'a> {
        let mut v = json::parse(text).unwrap();
        if let Json::Object(members) = &mut v {
            if !members.iter().any(|(k, _)| k == "raw") {
                members.push(("raw".into(), raw.clone()));
            }
        }
        v
    }

    #[test]
    fn a_plan_builds_the_same_result_as_the_json_text_and_only_when_it_can() {
        let cases: &[(&str, bool)] = &[
            (
                r#"{"account_id":"a1b2c3d4-e5f6-7890-1234-567890abcde","available_balance":"1500.25","ledger_balance":"1600.00","currency":"USD","as_of":"2024-05-01"}"#,
                true,
            ),
            (
                r#"{"availableBalance":"1.00","ledgerBalance":"2.00","asOf":"2024-05-01T10:00:00Z"}"#,
                true,
            ),
            (
                r#"{"available_balance":"1","ledgerBalance":"2","balance_date":"2024-04-30","x":[true,null,{"y":"z"}]}"#,
                true,
            ),
            (
                r#"{"available_balance":"-0.10","ledger_balance":"2","currency":"E\u0055R","as_of":"a\"b\u2028"}"#,
                true,
            ),
            (
                r#"{"available_balance":"1","ledger_balance":"2","as_of":null,"asOf":"ignored"}"#,
                true,
            ),
            (
                r#"{"available_balance":"1","ledger_balance":"2","currency":null}"#,
                true,
            ),
            // Numbers anywhere, nested amounts or a nested currency: the JSON text.
            (r#"{"available_balance":1.5,"ledger_balance":"2"}"#, false),
            (
                r#"{"available_balance":"1","ledger_balance":"2","n":[0]}"#,
                false,
            ),
            (
                r#"{"available_balance":{"amount":"1","currency":"USD"},"ledger_balance":"2"}"#,
                false,
            ),
            (
                r#"{"available_balance":"1","ledger_balance":{"amount":"2"},"currency":"USD"}"#,
                false,
            ),
            (
                r#"{"available_balance":"1","ledger_balance":"2","as_of":20240501}"#,
                false,
            ),
        ];
        for &(body, planned) in cases {
            let raw = json::parse(body).unwrap();
            let text = balance_result_json(ID, body).unwrap();
            let expected = from_json_text(&text, &raw);
            match balance_read(ID, body).unwrap() {
                BalanceRead::Plan(bits) => {
                    assert!(planned, "{body}: planned");
                    assert_eq!(apply_plan(bits, ID, &raw), expected, "{body}");
                }
                BalanceRead::Json(t) => {
                    assert!(!planned, "{body}: not planned");
                    assert_eq!(t, text, "{body}");
                }
            }
        }
        // Refused bodies are refused the same way.
        let bad = r#"{"available_balance":"1,000","ledger_balance":"2"}"#;
        assert_eq!(
            balance_read(ID, bad).unwrap_err(),
            balance_result_json(ID, bad).unwrap_err()
        );
    }

    proptest::proptest! {
        #[test]
        fn plans_agree_with_the_json_text_on_generated_bodies(
            members in proptest::collection::btree_map(
                proptest::sample::select(vec!["available_balance", "availableBalance", "ledger_balance",
                    "ledgerBalance", "currency", "as_of", "asOf", "balance_date", "account_id", "other"]),
                proptest::prop_oneof![
                    proptest::sample::select(vec![r#""1.50""#, r#""-0""#, r#""x""#, r#""US\u0044""#, r#""usd""#,
                        "null", "true", "12", "1e2", r#"{"amount":"3"}"#, r#"{"amount":"3","currency":"usd"}"#,
                        r#""a1b2c3d4-E5F6-7890-1234-567890abcde""#]),
                ],
                0..8,
            )
        ) {
            let body = concat(&[
                "{",
                &members.iter().map(|(k, v)| concat(&["\"", k, "\":", v])).collect::<Vec<_>>().join(","),
                "}",
            ]);
            let raw = json::parse(&body).unwrap();
            match (balance_read(ID, &body), balance_result_json(ID, &body)) {
                (Ok(BalanceRead::Plan(bits)), Ok(text)) => {
                    proptest::prop_assert_eq!(apply_plan(bits, ID, &raw), from_json_text(&text, &raw));
                }
                (Ok(BalanceRead::Json(t)), Ok(text)) => proptest::prop_assert_eq!(t, text),
                (Err(a), Err(b)) => proptest::prop_assert_eq!(a, b),
                (a, b) => proptest::prop_assert!(false, "{:?} vs {:?}", a, b),
            }
        }
    }

    #[test]
    fn without_any_number_in_the_body_raw_is_left_to_the_caller() {
        // Every amount a string (the documented form): `raw` is JSON.parse(body), added by the
        // caller; one number anywhere, even deep inside, and the text carries `raw` itself.
        let plain = r#"{"available_balance":"1.00","ledger_balance":"2.00","n":[{"x":"3"}]}"#;
        let v_text = balance_result_json(ID, plain).unwrap();
        let v = json::parse(&v_text).unwrap();
        assert!(v.get("raw").is_none());
        assert_eq!(
            v.get("availableBalance").and_then(Json::as_str),
            Some("1.00")
        );
        let deep = r#"{"available_balance":"1.00","ledger_balance":"2.00","n":[{"x":3}]}"#;
        let v_text = balance_result_json(ID, deep).unwrap();
        let v = json::parse(&v_text).unwrap();
        let x = v
            .get("raw")
            .and_then(|r| r.get("n"))
            .and_then(Json::as_array);
        assert_eq!(x.unwrap()[0].get("x").and_then(Json::as_str), Some("3"));
    }
}
