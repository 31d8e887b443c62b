//! The contracts shared with JavaScript and TypeScript, checked against their one source, the Rust
//! definitions: the error codes (`ErrorCode::ALL`) against `index.d.ts`'s `QBankErrorCode`, the
//! README's Errors table and the codes `support.js` throws; the balance plan bits
//! (`providers::qbank::balances::PLAN_*`, `AS_OF_NAMES`) against their copies in `support.js`. A code or a bit
//! changed on one side only fails `cargo test` (and so `make test`), naming both sides.
#![cfg(not(target_arch = "wasm32"))]

use qbank_connect::oauth::ErrorCode;
use qbank_connect::providers::qbank::balances::{
    AS_OF_NAMES, PLAN, PLAN_AS_OF_SHIFT, PLAN_AVAILABLE_CAMEL, PLAN_CURRENCY, PLAN_LEDGER_CAMEL,
};
use std::collections::BTreeSet;

const INDEX_D_TS: &str = include_str!("../pkg-template/index.d.ts");
const README: &str = include_str!("../README.md");
const SUPPORT_JS: &str = include_str!("../src/js/support.js");
const NODE_HTTP_JS: &str = include_str!("../src/js/node-http.js");
// Where the Rust sides live (the file that declares ErrorCode, the plan constants' file), for the
// failure messages; BALANCES_RS is read to find every plan constant it declares.
const ERROR_RS_PATH: &str = "src/oauth/error.rs";
const BALANCES_RS_PATH: &str = "src/providers/qbank/balances.rs";
const BALANCES_RS: &str = include_str!("../src/providers/qbank/balances.rs");

/// The codes `as_str()` gives, each once.
fn rust_codes() -> BTreeSet<&'static str> {
    let codes: BTreeSet<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        codes.len(),
        ErrorCode::ALL.len(),
        "a code string is used twice in ErrorCode"
    );
    codes
}

/// `text` from `start` (which must occur once) to the first `end` after it.
fn section<'a>(text: &'a str, file: &str, start: &str, end: &str) -> &'a str {
    let mut found = text.match_indices(start);
    let (at, _) = found
        .next()
        .unwrap_or_else(|| panic!("{file}: no {start:?}"));
    assert!(
        found.next().is_none(),
        "{file}: {start:?} occurs more than once"
    );
    let rest = &text[at + start.len()..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

/// The text between each pair of `quote`s in `text`: `"a" | "b"` gives `a`, `b`.
fn quoted(text: &str, quote: char) -> Vec<&str> {
    text.split(quote).skip(1).step_by(2).collect()
}

/// Each item once, as a set; a repeat fails, naming `what`.
fn once<'a>(items: Vec<&'a str>, what: &str) -> BTreeSet<&'a str> {
    let mut set = BTreeSet::new();
    for item in items {
        assert!(set.insert(item), "{what}: {item:?} is listed twice");
    }
    set
}

/// The same set on both sides; otherwise a failure naming what each side lacks.
#[track_caller]
fn assert_same(rust: &BTreeSet<&str>, other: &BTreeSet<&str>, other_name: &str) {
    let missing: Vec<_> = rust.difference(other).collect();
    let extra: Vec<_> = other.difference(rust).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{other_name} has drifted from Rust's ErrorCode ({ERROR_RS_PATH}, the source):\n  \
         in ErrorCode, not in {other_name}: {missing:?}\n  \
         in {other_name}, not in ErrorCode: {extra:?}"
    );
}

#[test]
fn index_d_ts_qbank_error_code_is_every_error_code() {
    let union = section(
        INDEX_D_TS,
        "index.d.ts",
        "export type QBankErrorCode =",
        ";",
    );
    let dts = once(quoted(union, '"'), "index.d.ts QBankErrorCode");
    assert_same(
        &rust_codes(),
        &dts,
        "pkg-template/index.d.ts's QBankErrorCode",
    );
}

#[test]
fn readme_errors_table_is_every_error_code() {
    let errors = section(README, "README.md", "\n## Errors\n", "\n## ");
    // The first cell of each table row names its codes, each in backticks.
    let mut codes = Vec::new();
    for row in errors.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = row.split('|').nth(1).unwrap_or("");
        codes.extend(quoted(first_cell, '`'));
    }
    let readme = once(codes, "README.md's Errors table");
    assert_same(&rust_codes(), &readme, "README.md's Errors table");
}

#[test]
fn every_code_the_javascript_half_throws_is_an_error_code() {
    let rust = rust_codes();
    let mut thrown = 0;
    for (file, text) in [("support.js", SUPPORT_JS), ("node-http.js", NODE_HTTP_JS)] {
        for call in ["new QBankError(", "makeError("] {
            for (at, _) in text.match_indices(call) {
                let args = &text[at + call.len()..];
                // A literal first argument; a variable (makeError's own body) is not a code.
                let Some(literal) = args.strip_prefix('"') else {
                    continue;
                };
                let code = &literal[..literal.find('"').unwrap_or(0)];
                assert!(
                    rust.contains(code),
                    "src/js/{file} throws {code:?}, which is not in Rust's ErrorCode ({ERROR_RS_PATH})"
                );
                thrown += 1;
            }
        }
    }
    // The scan itself works: support.js throws "aborted" and "secret_consumed" by name.
    assert!(
        thrown >= 2,
        "found {thrown} codes thrown by name in src/js/*.js"
    );
}

/// `const NAME = VALUE;` declarations of `support.js` whose name starts with `prefix`.
fn js_consts<'a>(prefix: &str) -> Vec<(&'a str, &'a str)> {
    SUPPORT_JS
        .lines()
        .filter_map(|l| l.strip_prefix("const "))
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.strip_suffix(';')?.split_once(" = "))
        .collect()
}

#[test]
fn support_js_plan_bits_are_rusts() {
    // Every plan constant of balances.rs: named here, and found in its source, so a new bit
    // cannot be missed by this list.
    let rust = [
        ("PLAN", PLAN),
        ("PLAN_AVAILABLE_CAMEL", PLAN_AVAILABLE_CAMEL),
        ("PLAN_LEDGER_CAMEL", PLAN_LEDGER_CAMEL),
        ("PLAN_CURRENCY", PLAN_CURRENCY),
        ("PLAN_AS_OF_SHIFT", PLAN_AS_OF_SHIFT),
    ];
    let declared: Vec<_> = BALANCES_RS
        .lines()
        .filter_map(|l| l.strip_prefix("pub const PLAN"))
        .map(|l| format!("PLAN{}", &l[..l.find(':').unwrap_or(0)]))
        .collect();
    assert_eq!(
        declared,
        rust.map(|(name, _)| name),
        "the plan constants of {BALANCES_RS_PATH} are not the ones this test checks"
    );
    // PLAN (set in every plan, so a plan is never 0) is the one bit support.js does not read:
    // it tells a plan from JSON text by typeof.
    let js = js_consts("PLAN");
    let expected: Vec<_> = rust.iter().filter(|(name, _)| *name != "PLAN").collect();
    assert_eq!(
        js.len(),
        expected.len(),
        "support.js's PLAN_* constants {js:?} are not Rust's {expected:?} ({BALANCES_RS_PATH})"
    );
    for (name, value) in expected {
        let found = js.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        assert_eq!(
            found,
            Some(value.to_string().as_str()),
            "support.js's {name} is not Rust's {name} = {value} ({BALANCES_RS_PATH})"
        );
    }
    // asOf is a 2-bit field (support.js reads it as `(plan >> PLAN_AS_OF_SHIFT) & 3`), above the
    // other bits.
    assert!(AS_OF_NAMES.len() <= 3);
    let others = PLAN | PLAN_AVAILABLE_CAMEL | PLAN_LEDGER_CAMEL | PLAN_CURRENCY;
    assert_eq!((3 << PLAN_AS_OF_SHIFT) & others, 0);
    assert!(SUPPORT_JS.contains("(plan >> PLAN_AS_OF_SHIFT) & 3"));
}

#[test]
fn support_js_as_of_names_are_rusts() {
    let js = js_consts("AS_OF_NAMES");
    let [(_, list)] = js[..] else {
        panic!(
            "support.js declares AS_OF_NAMES {} times, not once",
            js.len()
        );
    };
    // Indexed by the plan's asOf field: 0 is "none", 1 to 3 are Rust's AS_OF_NAMES in order.
    let names = list
        .strip_prefix("[undefined, ")
        .and_then(|l| l.strip_suffix(']'))
        .unwrap_or_else(|| panic!("support.js's AS_OF_NAMES {list} does not start with undefined"));
    let js_names: Vec<_> = names.split(", ").map(|n| n.trim_matches('"')).collect();
    assert_eq!(
        js_names, AS_OF_NAMES,
        "support.js's AS_OF_NAMES are not Rust's ({BALANCES_RS_PATH})"
    );
}
