//! Fuzzing for qbank-connect's sans-IO core: the parsers that read untrusted server answers.
//!
//! - [`targets`]: one function per target, `fn(&[u8]) -> u64`, that runs a parser on the input
//!   and checks what must hold for every input; shared by the stable driver (`qbank-fuzz`) and
//!   the cargo-fuzz (libFuzzer) entry points in `fuzz_targets/`.
//! - [`gen`]: structure-aware generators; [`mutate`]: byte mutations; [`oracle`]: independent
//!   reference code the targets compare against.

pub mod gen;
pub mod mutate;
pub mod oracle;
pub mod rng;
pub mod targets;

use rng::Rng;

/// One fuzz target as the stable driver sees it.
pub struct Target {
    /// The name (also the corpus and artifacts folder name, and the cargo-fuzz target).
    pub name: &'static str,
    /// The function under test; panics on a crash or a broken invariant.
    pub run: fn(&[u8]) -> u64,
    /// The structure-aware generator.
    pub generate: fn(&mut Rng) -> Vec<u8>,
    /// Tokens worth inserting whole when mutating.
    pub dict: &'static [&'static [u8]],
}

const JSON_DICT: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"null",
    b"true",
    b"false",
    b"\\u",
    b"\\ud800",
    b"\\udc00",
    b"\\\"",
    b"\\\\",
    b"-0",
    b"1e400",
    b"1e-400",
    b"0.5",
    b"\"\":",
    b"\"a\":1,",
    b"18446744073709551616",
    b"\xc3\xa9",
    b"\xf0\x9f\x98\x80",
    b"\xed\xa0\x80",
    b"\x00",
    b"\t",
];

const TOKEN_DICT: &[&[u8]] = &[
    b"\"access_token\":",
    b"\"token_type\":\"Bearer\"",
    b"\"expires_in\":",
    b"\"scope\":",
    b"\"error\":",
    b"\"error_description\":",
    b"\"refresh_token\":",
    b"retry-after: ",
    b"\n\n",
    b"200 ",
    b"429 ",
    b"302 ",
    b"401 ",
    b"Sun, 06 Nov 1994 08:49:37 GMT",
    b"eyJ",
    b"\"3600\"",
    b"3600",
    b"-1",
    b"1e9",
    b"NaN",
    b"\"mac\"",
    b"\"DPoP\"",
    b"{",
    b"}",
    b"\"",
    b",",
    b":",
    b"null",
    b"\\r\\n",
    b" ",
];

const BALANCE_DICT: &[&[u8]] = &[
    b"\"available_balance\":",
    b"\"ledger_balance\":",
    b"\"availableBalance\":",
    b"\"ledgerBalance\":",
    b"\"amount\":",
    b"\"currency\":\"USD\"",
    b"\"account_id\":",
    b"\"accountId\":",
    b"\"as_of\":",
    b"\"1,234.56\"",
    b"\"NaN\"",
    b"1e400",
    b"-0",
    b"e-25",
    b"e+29",
    b"\"-1.50\"",
    b"{",
    b"}",
    b"\"",
    b",",
    b":",
    b"null",
    b"000000000000",
];

const WWW_AUTH_DICT: &[&[u8]] = &[
    b"Bearer ",
    b"Basic ",
    b"realm=",
    b"error=",
    b"error_description=",
    b"scope=",
    b"\"",
    b"\\\"",
    b"\\",
    b", ",
    b",",
    b"=",
    b"==",
    b"invalid_token",
    b"insufficient_scope",
    b"\t",
    b"\r\n",
    b" ",
];

const JWT_DICT: &[&[u8]] = &[
    b".",
    b"eyJ",
    b"eyJleHAiOjE3MDAwMDAwMDB9",
    b"=",
    b"==",
    b"+",
    b"/",
    b"-",
    b"_",
    b"e30",
    b"eyJhbGciOiJub25lIn0",
    b"ZXhw",
];

const DATE_DICT: &[&[u8]] = &[
    b"Sun, ",
    b"Sunday, ",
    b"GMT",
    b" GMT",
    b"Feb",
    b"29",
    b"31",
    b"23:59:60",
    b"00:00:00",
    b"1970",
    b"9999",
    b"0000",
    b"-Nov-",
    b"  ",
    b"\n",
    b"18446744073709551615",
];

const URL_DICT: &[&[u8]] = &[
    b"https://",
    b"http://",
    b"api.example.com",
    b"//",
    b"/..",
    b"/.",
    b"%2e",
    b"%2E%2e",
    b"%2F",
    b"?",
    b"#",
    b"@",
    b":",
    b":443",
    b":0",
    b"[::1]",
    b"127.0.0.1",
    b"\\",
    b"\n",
    b"localhost",
];

const ACCOUNT_DICT: &[&[u8]] = &[
    b"..",
    b".",
    b"/",
    b"%",
    b"?",
    b"#",
    b"\\",
    b" ",
    b"\xe2\x80\x8b",
    b"\xe2\x80\xae",
    b"\xef\xbb\xbf",
    b"\xc2\x85",
    b"\xc2\xa0",
    b"\x00",
    b"\x7f",
    b"\xc3\xa9",
];

const QPAY_DICT: &[&[u8]] = &[
    b"\"tenant_id\":",
    b"\"tenantType\":",
    b"\"client_secret\":",
    b"\"clientId\":",
    b"\"id\":",
    b"\"roles\":",
    b"\"name\":",
    b"\"detail\":",
    b"\"error_description\":",
    b"\"message\":",
    b"[",
    b"]",
    b"{",
    b"}",
    b"\"",
    b",",
    b":",
    b"\\u0000",
    b"\\n",
    b" ",
];

const SCRUB_DICT: &[&[u8]] = &[
    b"s3cr3t-V4lue",
    b"s3cr3t%2DV4lue",
    b"%2d",
    b"%2D",
    b"+",
    b"%20",
    b"\\\"",
    b"\\n",
    b"Y2xpZW50LTE6czNjcjN0LVY0bHVl",
    b"[redacted]",
    b"\n\n",
    b"\n",
];

/// Every target, in the order the driver runs them.
pub fn all_targets() -> Vec<Target> {
    vec![
        Target {
            name: "token_response",
            run: targets::token_response,
            generate: gen::token_response,
            dict: TOKEN_DICT,
        },
        Target {
            name: "balance",
            run: targets::balance,
            generate: gen::balance,
            dict: BALANCE_DICT,
        },
        Target {
            name: "www_authenticate",
            run: targets::www_authenticate,
            generate: gen::www_authenticate,
            dict: WWW_AUTH_DICT,
        },
        Target {
            name: "jwt_exp",
            run: targets::jwt_exp,
            generate: gen::jwt_exp,
            dict: JWT_DICT,
        },
        Target {
            name: "json",
            run: targets::json,
            generate: gen::json,
            dict: JSON_DICT,
        },
        Target {
            name: "retry_after",
            run: targets::retry_after,
            generate: gen::retry_after,
            dict: DATE_DICT,
        },
        Target {
            name: "url_resolve",
            run: targets::url_resolve,
            generate: gen::url_resolve,
            dict: URL_DICT,
        },
        Target {
            name: "account_id",
            run: targets::account_id,
            generate: gen::account_id,
            dict: ACCOUNT_DICT,
        },
        Target {
            name: "qpay_answer",
            run: targets::qpay_answer,
            generate: gen::qpay_answer,
            dict: QPAY_DICT,
        },
        Target {
            name: "scrub",
            run: targets::scrub,
            generate: gen::scrub,
            dict: SCRUB_DICT,
        },
    ]
}
