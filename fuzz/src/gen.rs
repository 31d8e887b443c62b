//! Structure-aware generators: inputs built the way servers (and attackers) build them, so the
//! parsers' deep branches are reached without coverage feedback. Each returns bytes in its
//! target's input format (see `targets`).

use crate::oracle;
use crate::rng::Rng;

// ---------------------------------------------------------------------------------------------
// pieces

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for k in 0..=chunk.len() {
            out.push(char::from(B64URL[((n >> (18 - 6 * k)) & 63) as usize]));
        }
    }
    out
}

/// `min..=max` random decimal digits.
fn digits(rng: &mut Rng, min: usize, max: usize, leading_nonzero: bool) -> String {
    let n = min + rng.below(max - min + 1);
    (0..n)
        .map(|i| {
            let lo = if i == 0 && leading_nonzero { 1 } else { 0 };
            char::from(b'0' + rng.range(lo, 9) as u8)
        })
        .collect()
}

/// A JSON number text, valid most of the time: integers of every size, fractions, exponents
/// (tiny, huge, signed), negative zero; sometimes something almost a number.
pub fn number_text(rng: &mut Rng) -> String {
    if rng.one_in(8) {
        return rng
            .pick(&[
                "NaN",
                "Infinity",
                "-Infinity",
                "01",
                "1.",
                ".5",
                "+1",
                "1e",
                "1e+",
                "--1",
                "0x10",
                "1_000",
                "1,5",
                "١",
                "1e400",
                "-1e400",
                "1e-400",
                "0e99999999999",
                "-0",
                "-0.0",
                "18446744073709551615",
                "18446744073709551616",
                "1E3",
                "1.0e+0",
            ])
            .to_string();
    }
    let mut s = String::new();
    if rng.one_in(4) {
        s.push('-');
    }
    let int_len = match rng.below(6) {
        0 => 1,
        1..=3 => 1 + rng.below(10),
        4 => 1 + rng.below(20),
        _ => 1 + rng.below(45),
    };
    if rng.one_in(5) {
        s.push('0');
    } else {
        s.push_str(&digits(rng, int_len, int_len, true));
    }
    if rng.one_in(3) {
        s.push('.');
        let n = 1 + rng.len(30);
        s.push_str(&digits(rng, n, n, false));
    }
    if rng.one_in(4) {
        s.push(rng.pick(&['e', 'E']));
        match rng.below(3) {
            0 => s.push('-'),
            1 => s.push('+'),
            _ => {}
        }
        let exp = match rng.below(5) {
            0 => rng.below(3).to_string(),
            1 => rng.below(25).to_string(),
            2 => rng.below(400).to_string(),
            3 => "9".repeat(1 + rng.below(25)),
            _ => format!("{:0>width$}", rng.below(10), width = 1 + rng.below(5)),
        };
        s.push_str(&exp);
    }
    s
}

/// The content of a JSON string literal (without the quotes): plain text, escapes of every
/// kind, surrogate pairs, lone surrogates, raw non-ASCII, and sometimes a raw control
/// character (invalid).
pub fn json_string_body(rng: &mut Rng, max: usize) -> String {
    let n = rng.len(max);
    let mut s = String::new();
    for _ in 0..n {
        match rng.below(16) {
            0 => s.push_str(rng.pick(&["\\n", "\\t", "\\r", "\\b", "\\f", "\\/", "\\\\", "\\\""])),
            1 => s.push_str(&format!("\\u{:04x}", rng.below(0x10000))),
            2 => s.push_str(rng.pick(&[
                "\\ud83d\\ude00",
                "\\uD800",
                "\\uDC00",
                "\\ud800\\u0041",
                "\\u00e9",
                "\\u0000",
            ])),
            3 => s.push(rng.pick(&['é', '€', '😀', '\u{7f}', '\u{200b}', '\u{feff}', 'ß'])),
            4 if rng.one_in(6) => s.push(char::from(rng.below(0x20) as u8)),
            5 if rng.one_in(6) => s.push_str(rng.pick(&["\\x", "\\u12", "\\", "\""])),
            _ => s.push(char::from(rng.range(0x20, 0x7e) as u8)),
        }
    }
    // A lone backslash or quote at the end would swallow or end the string: only sometimes.
    while (s.ends_with('\\') && !s.ends_with("\\\\")) || s.ends_with('"') {
        if rng.one_in(8) {
            break;
        }
        s.pop();
    }
    s
}

fn quoted(rng: &mut Rng, max: usize) -> String {
    format!("\"{}\"", json_string_body(rng, max))
}

fn ws(rng: &mut Rng) -> &'static str {
    if rng.one_in(4) {
        rng.pick(&[" ", "\n", "\t", "\r\n", "  ", " \n\t "])
    } else {
        ""
    }
}

/// A random JSON value of at most `depth` levels; deep chains near the parser's limit of 64
/// sometimes.
pub fn json_value(rng: &mut Rng, depth: usize) -> String {
    if depth > 0 && rng.one_in(40) {
        // A deep chain of arrays or objects around the nesting limit.
        let n = 60 + rng.below(10);
        let (open, close) = if rng.coin() {
            ("[".to_string(), "]")
        } else {
            ("{\"k\":".to_string(), "}")
        };
        return format!(
            "{}{}{}",
            open.repeat(n),
            json_value(rng, 0),
            close.repeat(n)
        );
    }
    let kinds = if depth == 0 { 5 } else { 7 };
    match rng.below(kinds) {
        0 => "null".into(),
        1 => rng.pick(&["true", "false"]).to_string(),
        2 | 3 => number_text(rng),
        4 => quoted(rng, 24),
        5 => {
            let n = rng.len(8);
            let items: Vec<String> = (0..n).map(|_| json_value(rng, depth - 1)).collect();
            format!(
                "[{}{}{}]",
                ws(rng),
                items.join(&format!(",{}", ws(rng))),
                ws(rng)
            )
        }
        _ => {
            let n = rng.len(8);
            let mut keys: Vec<String> = (0..n)
                .map(|_| {
                    if rng.coin() {
                        rng.pick(&["\"a\"", "\"b\"", "\"exp\"", "\"amount\"", "\"\""])
                            .to_string()
                    } else {
                        quoted(rng, 8)
                    }
                })
                .collect();
            if n > 1 && rng.one_in(6) {
                // A duplicate name, which must be refused.
                let k = keys[0].clone();
                keys.push(k);
            }
            let members: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}{}:{}{}", ws(rng), ws(rng), json_value(rng, depth - 1)))
                .collect();
            format!("{{{}{}}}", members.join(","), ws(rng))
        }
    }
}

/// A JSON object with these members (values already JSON text), in a shuffled order, with a
/// member sometimes repeated and junk members sometimes added.
fn object(rng: &mut Rng, mut members: Vec<(String, String)>) -> String {
    if rng.one_in(3) {
        for _ in 0..rng.below(3) {
            members.push((json_string_body(rng, 10), json_value(rng, 2)));
        }
    }
    for i in (1..members.len()).rev() {
        if rng.one_in(3) {
            let j = rng.below(i + 1);
            members.swap(i, j);
        }
    }
    if !members.is_empty() && rng.one_in(12) {
        let dup = members[rng.below(members.len())].clone();
        members.push(dup);
    }
    let body: Vec<String> = members
        .into_iter()
        .map(|(k, v)| format!("{}\"{k}\"{}:{}{v}", ws(rng), ws(rng), ws(rng)))
        .collect();
    format!("{{{}{}}}", body.join(","), ws(rng))
}

// ---------------------------------------------------------------------------------------------
// JWTs and tokens

/// An `exp` claim value of every shape: integer seconds (now, past, far future, 0, huge),
/// fractional, exponent forms, negative and negative zero, strings, null, objects.
pub fn exp_value(rng: &mut Rng) -> String {
    match rng.below(14) {
        0 => (1_700_000_000 + rng.range(0, 10_000_000)).to_string(),
        1 => rng.range(0, 4_000_000_000).to_string(),
        2 => format!(
            "{}.{}",
            1_700_000_000 + rng.below(100_000),
            digits(rng, 1, 12, false)
        ),
        3 => format!("{}e{}", rng.range(1, 99), rng.below(12)),
        4 => format!("1.7e{}", rng.below(20)),
        5 => "0".into(),
        6 => format!("-{}", rng.range(0, 2_000_000_000)),
        7 => rng
            .pick(&[
                "-0",
                "-0.0",
                "0.0",
                "0e5",
                "1e400",
                "1e-400",
                "18446744073709551",
                "18446744073709552",
                "18446744073709551.615",
                "18446744073709551.616",
                "184467440737095516.15",
            ])
            .to_string(),
        8 => format!("\"{}\"", 1_700_000_000 + rng.below(1000)),
        9 => rng
            .pick(&["null", "true", "{}", "[]", "[1700000000]", "{\"exp\":1}"])
            .to_string(),
        10 => digits(rng, 1, 40, true),
        11 => format!("0.{}", digits(rng, 1, 6, false)),
        _ => number_text(rng),
    }
}

/// A JWT-like token: header and signature segments, a payload of JSON claims with an `exp` of
/// every shape (or none), and now and then a broken form (two or four parts, padding,
/// standard base64 characters, invalid UTF-8, a payload that is not an object).
pub fn jwt(rng: &mut Rng) -> String {
    let header = b64url(br#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#);
    let mut claims = vec![
        (
            "iss".to_string(),
            "\"https://auth.example.com\"".to_string(),
        ),
        ("sub".to_string(), quoted(rng, 12)),
    ];
    if !rng.one_in(6) {
        claims.push(("exp".to_string(), exp_value(rng)));
    }
    if rng.one_in(3) {
        claims.push(("iat".to_string(), number_text(rng)));
    }
    let payload_json = match rng.below(12) {
        0 => json_value(rng, 3),
        1 => "[1,2]".to_string(),
        _ => object(rng, claims),
    };
    let mut payload = if rng.one_in(20) {
        let mut b = payload_json.into_bytes();
        b.push(0xff);
        b64url(&b)
    } else {
        b64url(payload_json.as_bytes())
    };
    match rng.below(12) {
        0 => payload.push_str(&"=".repeat(1 + rng.below(3))),
        1 if !payload.is_empty() => {
            let i = rng.below(payload.len());
            payload.replace_range(i..i + 1, rng.pick(&["+", "/", "=", ".", " ", "%"]));
        }
        2 => {
            payload.pop();
        }
        _ => {}
    }
    let sig = b64url(
        &(0..rng.len(48))
            .map(|_| rng.next_u64() as u8)
            .collect::<Vec<_>>(),
    );
    match rng.below(14) {
        0 => format!("{header}.{payload}"),
        1 => format!("{header}.{payload}.{sig}.{sig}"),
        2 => format!(".{payload}."),
        3 => payload,
        _ => format!("{header}.{payload}.{sig}"),
    }
}

/// An access token: a JWT, an opaque b64token, or one with characters that could break a
/// header (space, CR, LF, quotes, non-ASCII), empty, very long.
pub fn access_token(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=3 => jwt(rng),
        4..=6 => {
            let n = 8 + rng.below(60);
            let chars = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";
            let mut t: String = (0..n).map(|_| char::from(rng.pick(chars))).collect();
            if rng.one_in(4) {
                t.push_str(&"=".repeat(1 + rng.below(2)));
            }
            t
        }
        7 => {
            let mut t = format!("tok{}", rng.next_u64());
            let i = rng.below(t.len());
            t.insert_str(
                i,
                rng.pick(&[
                    " ", "\\r", "\\n", "\\r\\n", "\\\"", "é", "\\u0000", ",", ";", "=",
                ]),
            );
            t
        }
        8 => rng
            .pick(&["", "=", "==", "a", "Bearer x", "x.y.z"])
            .to_string(),
        _ => format!("{}{}", "A".repeat(rng.below(5000)), rng.next_u64()),
    }
}

// ---------------------------------------------------------------------------------------------
// headers

/// A `Retry-After` value: delta-seconds of every size, HTTP-dates in all three forms (valid,
/// impossible calendar dates, wrong case), and near misses.
pub fn retry_after_value(rng: &mut Rng, now_ms: u64) -> String {
    let now_s = now_ms / 1000;
    let secs = match rng.below(4) {
        0 => now_s.saturating_add(rng.range(0, 7200)),
        1 => now_s.saturating_sub(rng.range(0, 7200)),
        2 => rng.range(0, 253_402_300_799),
        _ => now_s
            .saturating_add(rng.range(0, 50 * 366 * 86_400))
            .min(253_402_300_799),
    };
    let mut v = match rng.below(12) {
        0..=2 => oracle::imf_fixdate(secs),
        3 => oracle::rfc850_date(secs),
        4 => oracle::asctime_date(secs),
        5 => rng.range(0, 100_000).to_string(),
        6 => digits(rng, 1, 30, false),
        7 => rng
            .pick(&[
                "-1",
                "1.5",
                "0x10",
                " 120 ",
                "\t60",
                "120s",
                "",
                " ",
                "Sun, 06 Nov 1994 08:49:37 UTC",
                "Sun, 29 Feb 2023 00:00:00 GMT",
                "Sat, 29 Feb 2020 00:00:00 GMT",
                "Mon, 31 Apr 2024 00:00:00 GMT",
                "Sun, 06 Nov 1994 24:00:00 GMT",
                "Sun, 06 Nov 1994 23:59:60 GMT",
                "Sun, 06 Nov 0000 08:49:37 GMT",
                "Sun, 06 Nov 9999 23:59:59 GMT",
                "Sunday, 06-Nov-94 08:49:37 GMT",
                "Sun Nov  6 08:49:37 1994",
                "Sun Nov 06 08:49:37 1994",
                "sun, 06 nov 1994 08:49:37 gmt",
                "Sun, 6 Nov 1994 08:49:37 GMT",
                "Sun,06 Nov 1994 08:49:37 GMT",
                "Sunday, 06-Nov-1994 08:49:37 GMT",
                "Sun, 06 Nov 1994 08:49:37 GMT ",
            ])
            .to_string(),
        _ => oracle::imf_fixdate(secs),
    };
    if rng.one_in(6) && !v.is_empty() {
        // Nudge one character: another digit, a space, a comma.
        let i = rng.below(v.len());
        if v.is_char_boundary(i) && v.is_char_boundary(i + 1) {
            let c = rng.pick(&["0", "9", " ", ",", "-", ":", "3"]);
            v.replace_range(i..i + 1, c);
        }
    }
    v
}

/// A `WWW-Authenticate` value built from challenges, tokens, quoted strings with escapes,
/// commas inside and outside quotes, token68s, unterminated quotes, control characters and
/// junk between the parts.
pub fn www_authenticate_value(rng: &mut Rng) -> String {
    let n = 1 + rng.len(4);
    let mut out = String::new();
    for i in 0..n {
        if i > 0 {
            out.push_str(rng.pick(&[", ", ",", " ,, ", ",\t", " , ", ",,"]));
        }
        out.push_str(rng.pick(&[
            "Bearer",
            "bearer",
            "BEARER",
            "Basic",
            "Negotiate",
            "DPoP",
            "Digest",
            "x",
            "",
            "\"Bearer\"",
            "Bearer=",
            "Bé",
        ]));
        match rng.below(5) {
            0 => {}
            1 => {
                out.push(' ');
                let n = 1 + rng.len(30);
                let chars = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";
                out.extend((0..n).map(|_| char::from(rng.pick(chars))));
                out.push_str(&"=".repeat(rng.below(3)));
            }
            _ => {
                out.push_str(rng.pick(&[" ", "  ", "\t"]));
                let params = 1 + rng.len(5);
                for k in 0..params {
                    if k > 0 {
                        out.push_str(rng.pick(&[", ", ",", " , ", ",,", " "]));
                    }
                    out.push_str(rng.pick(&[
                        "realm",
                        "error",
                        "error_description",
                        "scope",
                        "error_uri",
                        "Error",
                        "REALM",
                        "x",
                        "",
                        "a b",
                        "=",
                    ]));
                    out.push_str(rng.pick(&["=", " = ", "= ", ""]));
                    match rng.below(6) {
                        0 => out.push_str(rng.pick(&[
                            "invalid_token",
                            "insufficient_scope",
                            "qbank",
                            "a.b",
                            "",
                        ])),
                        1 | 2 => {
                            out.push('"');
                            for _ in 0..rng.len(20) {
                                match rng.below(10) {
                                    0 => out.push_str("\\\""),
                                    1 => out.push_str("\\\\"),
                                    2 => out.push(','),
                                    3 => out.push_str(rng.pick(&[
                                        "\\", "\t", "\r", "\n", "\u{1}", "\u{7f}", "é", "=",
                                    ])),
                                    _ => out.push(char::from(rng.range(0x20, 0x7e) as u8)),
                                }
                            }
                            if !rng.one_in(10) {
                                out.push('"');
                            }
                        }
                        3 => out.push_str("\"balances.read accounts.read\""),
                        4 => out.push_str(&json_string_body(rng, 10)),
                        _ => out.push_str("\"The access token expired\""),
                    }
                }
            }
        }
    }
    if rng.one_in(10) {
        let i = rng.below(out.len() + 1);
        if out.is_char_boundary(i) {
            out.insert_str(i, rng.pick(&["\"", "\\", ",", "=", " ", "\u{0}"]));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// per-target generators

/// `token_response`: a status, headers (`Retry-After` in every form, other names in any case)
/// and a body: token objects with every member in every shape, OAuth errors, other JSON, HTML,
/// truncated JSON, nothing.
pub fn token_response(rng: &mut Rng) -> Vec<u8> {
    let status: u16 = match rng.below(16) {
        0..=6 => 200,
        7 => rng.pick(&[201, 203, 204, 299]),
        8 => rng.pick(&[400, 401, 403]),
        9 => rng.pick(&[429, 503]),
        10 => rng.pick(&[500, 502, 504]),
        11 => rng.pick(&[301, 302, 303, 307, 308, 300, 399]),
        12 => rng.pick(&[404, 405, 418, 199, 100]),
        _ => rng.below(1000) as u16,
    };
    let now = match rng.below(8) {
        0 => 0,
        1 => u64::MAX,
        2 => rng.next_u64(),
        _ => crate::targets::DEFAULT_NOW + rng.range(0, 1_000_000_000),
    };
    let mut out = format!("{status} {now}\n");
    for _ in 0..rng.below(4) {
        match rng.below(5) {
            0..=2 => {
                let name = rng.pick(&["retry-after", "Retry-After", "RETRY-AFTER", "retry-after "]);
                out.push_str(&format!("{name}: {}\n", retry_after_value(rng, now)));
            }
            3 => out.push_str("content-type: application/json\n"),
            _ => out.push_str(&format!(
                "www-authenticate: {}\n",
                www_authenticate_value(rng)
            )),
        }
    }
    out.push('\n');
    let body = match rng.below(12) {
        0..=5 => {
            let mut members = Vec::new();
            if !rng.one_in(10) {
                let token = match rng.below(10) {
                    0 => rng
                        .pick(&["null", "1", "true", "[]", "{}", "\"\""])
                        .to_string(),
                    _ => format!("\"{}\"", access_token(rng)),
                };
                members.push(("access_token".to_string(), token));
            }
            if !rng.one_in(8) {
                let tt = rng.pick(&[
                    "\"Bearer\"",
                    "\"bearer\"",
                    "\"BEARER\"",
                    "\"mac\"",
                    "\"DPoP\"",
                    "\"N_A\"",
                    "null",
                    "1",
                    "\"Bearer \"",
                    "\"bearer\\u0000\"",
                    "\"\"",
                ]);
                members.push(("token_type".to_string(), tt.to_string()));
            }
            if !rng.one_in(4) {
                let e = match rng.below(8) {
                    0 => format!("\"{}\"", number_text(rng)),
                    1 => rng
                        .pick(&[
                            "\"3600\"",
                            "\" 3600\"",
                            "\"NaN\"",
                            "null",
                            "true",
                            "1e9",
                            "-1",
                            "-0",
                            "0",
                            "0.5",
                            "3600.9",
                            "315360001",
                            "315360000",
                        ])
                        .to_string(),
                    _ => number_text(rng),
                };
                members.push(("expires_in".to_string(), e));
            }
            if rng.coin() {
                let s = match rng.below(4) {
                    0 => "[\"a\",\"b\"]".to_string(),
                    1 => "[\"a\",1]".to_string(),
                    2 => "null".to_string(),
                    _ => quoted(rng, 20),
                };
                members.push(("scope".to_string(), s));
            }
            if rng.one_in(4) {
                members.push((
                    "refresh_token".to_string(),
                    format!("\"{}\"", access_token(rng)),
                ));
            }
            if rng.one_in(8) {
                members.push((
                    "error".to_string(),
                    rng.pick(&["null", "\"invalid_client\"", "1"]).to_string(),
                ));
            }
            object(rng, members)
        }
        6 | 7 => {
            let mut members = vec![(
                "error".to_string(),
                rng.pick(&[
                    "\"invalid_request\"",
                    "\"invalid_client\"",
                    "\"invalid_grant\"",
                    "\"unauthorized_client\"",
                    "\"unsupported_grant_type\"",
                    "\"invalid_scope\"",
                    "\"slow_down\"",
                    "\"temporarily_unavailable\"",
                    "\"server_error\"",
                    "\"\"",
                    "null",
                    "1",
                    "{}",
                ])
                .to_string(),
            )];
            if rng.coin() {
                members.push(("error_description".to_string(), quoted(rng, 40)));
            }
            if rng.one_in(3) {
                // A server that echoes the request (and a token) back in its error.
                members.push((
                    "access_token".to_string(),
                    format!("\"{}\"", access_token(rng)),
                ));
            }
            object(rng, members)
        }
        8 => json_value(rng, 4),
        9 => rng
            .pick(&[
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
                "",
                "   ",
                "null",
                "{\"access_token\":\"abc\",\"token_type\":\"Bearer\"",
                "{\"access_token\":\"abc\",\"token_type\":\"Bearer\"}{}",
                "\u{feff}{\"access_token\":\"abc\",\"token_type\":\"Bearer\"}",
            ])
            .to_string(),
        _ => {
            // A valid answer cut short.
            let mut full = format!(
                "{{\"access_token\":\"{}\",\"token_type\":\"Bearer\",\"expires_in\":3600}}",
                access_token(rng)
            );
            let cut = rng.below(full.len() + 1);
            if full.is_char_boundary(cut) {
                full.truncate(cut);
            }
            full
        }
    };
    out.push_str(&body);
    out.into_bytes()
}

/// An amount value in every form a bank (or a broken one) could send.
fn amount_value(rng: &mut Rng) -> String {
    match rng.below(12) {
        0..=2 => format!(
            "\"{}{}.{}\"",
            if rng.one_in(5) { "-" } else { "" },
            rng.range(0, 10_000_000),
            digits(rng, 2, 2, false)
        ),
        3 | 4 => number_text(rng),
        5 => rng
            .pick(&[
                "\"1,234.56\"",
                "\"NaN\"",
                "\"Infinity\"",
                "\"\"",
                "null",
                "true",
                "\"+1\"",
                "\" 1\"",
                "\"01.5\"",
                "\"1e5\"",
                "\"1.\"",
                "\".5\"",
                "\"-0\"",
                "\"-\"",
                "\"٣\"",
                "1e400",
                "-0",
                "1.50e1",
                "15e-1",
                "0.000000000000000000001",
                "1e29",
                "1e30",
                "123456789012345678901234567890",
                "1234567890123456789012345678901",
                "\"0.12345678901234567890\"",
                "\"0.123456789012345678901\"",
            ])
            .to_string(),
        6 => format!(
            "{{\"amount\":{},\"currency\":{}}}",
            amount_value(rng),
            rng.pick(&["\"USD\"", "\"usd\"", "\"EUR\"", "\"\"", "null", "1"])
        ),
        7 => format!(
            "{{\"currency\":\"USD\"{}}}",
            if rng.coin() { ",\"value\":\"1\"" } else { "" }
        ),
        8 => format!("\"{}\"", digits(rng, 1, 35, true)),
        9 => format!(
            "\"{}.{}\"",
            digits(rng, 1, 32, true),
            digits(rng, 1, 24, false)
        ),
        _ => {
            let s = number_text(rng);
            if rng.coin() {
                format!("\"{s}\"")
            } else {
                s
            }
        }
    }
}

/// `balance`: an account id line and a balance body: both amount names in both spellings,
/// amounts in every form, currencies that agree or not, ids that match or not, and broken
/// bodies.
pub fn balance(rng: &mut Rng) -> Vec<u8> {
    let id = match rng.below(6) {
        0 => account_id_text(rng),
        _ => "a1b2c3d4-e5f6-7890-1234-567890abcdef".to_string(),
    };
    let mut members = Vec::new();
    let avail = rng.pick(&[
        "available_balance",
        "availableBalance",
        "available_balance",
        "available",
    ]);
    let ledger = rng.pick(&[
        "ledger_balance",
        "ledgerBalance",
        "ledger_balance",
        "ledger",
    ]);
    if !rng.one_in(10) {
        members.push((avail.to_string(), amount_value(rng)));
    }
    if !rng.one_in(10) {
        members.push((ledger.to_string(), amount_value(rng)));
    }
    if rng.one_in(8) {
        members.push(("availableBalance".to_string(), amount_value(rng)));
    }
    if rng.coin() {
        members.push((
            "currency".to_string(),
            rng.pick(&["\"USD\"", "\"usd\"", "\"EUR\"", "\"\"", "null", "1"])
                .to_string(),
        ));
    }
    if rng.coin() {
        let key = rng.pick(&["account_id", "accountId"]);
        let v = match rng.below(4) {
            0 => format!(
                "\"{}\"",
                id.to_ascii_uppercase()
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
            ),
            1 => "\"other\"".to_string(),
            2 => "null".to_string(),
            _ => format!("\"{}\"", id.replace('\\', "\\\\").replace('"', "\\\"")),
        };
        members.push((key.to_string(), v));
    }
    if rng.coin() {
        let key = rng.pick(&["as_of", "asOf", "balance_date"]);
        members.push((
            key.to_string(),
            rng.pick(&["\"2024-01-01T00:00:00Z\"", "1704067200", "null", "{}"])
                .to_string(),
        ));
    }
    let body = match rng.below(12) {
        0 => json_value(rng, 3),
        1 => {
            let mut b = object(rng, members);
            let cut = rng.below(b.len() + 1);
            if b.is_char_boundary(cut) {
                b.truncate(cut);
            }
            b
        }
        _ => object(rng, members),
    };
    format!("{id}\n{body}").into_bytes()
}

/// `www_authenticate`.
pub fn www_authenticate(rng: &mut Rng) -> Vec<u8> {
    www_authenticate_value(rng).into_bytes()
}

/// `jwt_exp`.
pub fn jwt_exp(rng: &mut Rng) -> Vec<u8> {
    jwt(rng).into_bytes()
}

/// `json`: any value, sometimes with whitespace around or text after it.
pub fn json(rng: &mut Rng) -> Vec<u8> {
    let depth = 1 + rng.below(5);
    let mut s = format!("{}{}{}", ws(rng), json_value(rng, depth), ws(rng));
    if rng.one_in(10) {
        s.push_str(rng.pick(&["x", ",", "}", "]", "{}", "\u{0}", "//"]));
    }
    s.into_bytes()
}

/// `retry_after`: a clock line and a value.
pub fn retry_after(rng: &mut Rng) -> Vec<u8> {
    let now = match rng.below(10) {
        0 => 0,
        1 => u64::MAX,
        2 => rng.next_u64(),
        3 => rng.range(0, 253_402_300_799_000),
        // Around a new year, where a two-digit year's century is decided.
        4 => {
            let y = 1970 + rng.below(300) as i64;
            let jan1 = oracle::epoch_secs(y, 1, 1, 0).max(0) as u64 * 1000;
            jan1.saturating_add(rng.range(0, 2 * 86_400_000))
                .saturating_sub(86_400_000)
        }
        _ => crate::targets::DEFAULT_NOW + rng.range(0, 100_000_000_000),
    };
    format!("{now}\n{}", retry_after_value(rng, now)).into_bytes()
}

const PATH_PIECES: &[&str] = &[
    "/", "v1", "accounts", "balances", "..", ".", "%2e", "%2E%2e", "%2F", "%", "%zz", "?", "#",
    "a=b", "&", "//", "\\", " ", "é", "@", ":", "[", "]", "~", "+", ";", "=", "'", "!", "*", "%20",
    "x:y", "\t", "\n",
];

/// A path, a full URL on the base's origin (or near it), or a tricky one.
fn path_or_url(rng: &mut Rng) -> String {
    match rng.below(8) {
        0..=2 => {
            let mut p = String::new();
            if rng.coin() {
                p.push('/');
            }
            for _ in 0..rng.len(8) {
                p.push_str(rng.pick(PATH_PIECES));
                if rng.coin() {
                    p.push('/');
                }
            }
            p
        }
        3 => {
            let host = rng.pick(&[
                "api.example.com",
                "API.EXAMPLE.COM",
                "api.example.com:443",
                "api.example.com:8443",
                "evil.example",
                "api.example.com.evil.example",
                "user:pw@api.example.com",
                "api.example.com@evil.example",
                "[::1]",
                "127.0.0.1",
                "api.example.com.",
                "",
            ]);
            let scheme = rng.pick(&["https", "HTTPS", "http", "javascript", "file", "hTtPs"]);
            let path: String = (0..rng.len(5)).map(|_| rng.pick(PATH_PIECES)).collect();
            format!("{scheme}://{host}{path}")
        }
        4 => rng
            .pick(&[
                "//evil.example/x",
                "/\\evil.example",
                "https:evil.example",
                "https:/evil.example",
                "v1:x",
                "?page=2",
                "#f",
                "/a/../../b",
                "/%2e%2e/admin",
                "/a/%2E/b",
                "/v1/accounts?next=https://evil.example",
                "https://api.example.com/qbank/v1/x#frag",
                "https://api.example.com:0/",
                "https://api.example.com:65536/",
            ])
            .to_string(),
        _ => {
            let n = rng.len(40);
            (0..n)
                .map(|_| char::from(rng.range(0x20, 0x7e) as u8))
                .collect()
        }
    }
}

/// `url_resolve`: a base line and a path or URL.
pub fn url_resolve(rng: &mut Rng) -> Vec<u8> {
    let base = match rng.below(8) {
        0..=3 => crate::targets::DEFAULT_BASE.to_string(),
        4 => rng
            .pick(&[
                "https://api.example.com",
                "https://api.example.com/",
                "https://api.example.com:8443/a/b/",
                "http://localhost:8080/api",
                "http://127.0.0.1/",
                "https://[::1]:8443/",
                "https://u:p@api.example.com/",
                "https://api.example.com/?q=1",
                "https://api.example.com/#f",
                "http://localhost.evil.example/",
                "https://127.1/",
                "https://0x7f.0.0.1/",
                "https://[::ffff:127.0.0.1]/",
                "https://api.example.com/a%2Fb/",
            ])
            .to_string(),
        _ => format!("https://{}", path_or_url(rng).trim_start_matches('/')),
    };
    format!("{base}\n{}", path_or_url(rng)).into_bytes()
}

fn account_id_text(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => "a1b2c3d4-e5f6-7890-1234-567890abcdef".to_string(),
        1 => format!("ACC{}", rng.next_u64()),
        2 => rng
            .pick(&[
                "",
                ".",
                "..",
                "...",
                "a..b",
                "a/b",
                "%2F",
                "a?b",
                "a#b",
                "a b",
                "a\tb",
                "a\u{200b}b",
                "a\u{202e}b",
                "\u{feff}a",
                "é",
                "ü-1",
                "a:b@c",
                "~",
                "-",
                "_",
                "a\u{85}b",
                "a\u{a0}b",
                "a\u{2028}b",
                "a\u{61c}b",
                "AC\u{0}C",
                "a\\b",
            ])
            .to_string(),
        3 => "a".repeat(120 + rng.below(16)),
        _ => {
            let n = 1 + rng.len(20);
            (0..n)
                .map(|_| match rng.below(10) {
                    0 => rng.pick(&[
                        '/', '.', '%', '?', '#', ' ', 'é', '\u{200d}', '😀', ':', '@', '\\',
                    ]),
                    _ => char::from(rng.pick(b"ABCDEFabcdef0123456789-_~")),
                })
                .collect()
        }
    }
}

/// `account_id`.
pub fn account_id(rng: &mut Rng) -> Vec<u8> {
    account_id_text(rng).into_bytes()
}

/// `qpay_answer`: a status and a Credentials API answer (whoami, a created client, roles as
/// an array or under `roles`, problem bodies), with strings that test the JSON writers.
pub fn qpay_answer(rng: &mut Rng) -> Vec<u8> {
    let status = match rng.below(6) {
        0..=2 => 200,
        3 => rng.pick(&[201, 204]),
        4 => rng.pick(&[400, 401, 403, 404, 409, 422, 429]),
        _ => rng.below(1000) as u16,
    };
    let s = |rng: &mut Rng| -> String {
        if rng.one_in(5) {
            rng.pick(&["\"\"", "null", "1", "\" \"", "{}"]).to_string()
        } else {
            quoted(rng, 16)
        }
    };
    let body = match rng.below(8) {
        0 => {
            let members = vec![
                (rng.pick(&["tenant_type", "tenantType"]).to_string(), s(rng)),
                (rng.pick(&["tenant_id", "tenantId"]).to_string(), s(rng)),
                (
                    rng.pick(&["parent_tenant_id", "parentTenantId"])
                        .to_string(),
                    s(rng),
                ),
            ];
            object(rng, members)
        }
        1 | 2 => {
            let members = vec![
                ("id".to_string(), s(rng)),
                (rng.pick(&["client_id", "clientId"]).to_string(), s(rng)),
                (
                    rng.pick(&["client_secret", "clientSecret"]).to_string(),
                    s(rng),
                ),
                (rng.pick(&["tenant_id", "tenantId"]).to_string(), s(rng)),
            ];
            object(rng, members)
        }
        3 | 4 => {
            let n = rng.len(6);
            let items: Vec<String> = (0..n)
                .map(|_| match rng.below(4) {
                    0 => format!("{{\"name\":{}}}", s(rng)),
                    1 => json_value(rng, 1),
                    _ => s(rng),
                })
                .collect();
            let list = format!("[{}]", items.join(","));
            if rng.coin() {
                list
            } else {
                object(rng, vec![("roles".to_string(), list)])
            }
        }
        5 => {
            let k = rng.pick(&["error_description", "detail", "message", "error", "title"]);
            let v = s(rng);
            object(rng, vec![(k.to_string(), v)])
        }
        6 => json_value(rng, 3),
        _ => rng
            .pick(&["", "<html>oops</html>", "null", "\"x\""])
            .to_string(),
    };
    format!("{status}\n{body}").into_bytes()
}

/// `scrub`: a client id, a secret and further secrets, and text that echoes them in every
/// encoding (as is, form- and percent-encoded in either hex case, JSON-escaped, in a Basic
/// credential), overlapping, repeated, or cut short.
pub fn scrub(rng: &mut Rng) -> Vec<u8> {
    let secret_char = |rng: &mut Rng| -> char {
        match rng.below(10) {
            0 => rng.pick(&[
                ' ', '+', '%', '"', '\\', ':', '/', '=', '&', 'é', '~', '*', '\t', '[', ']',
            ]),
            _ => char::from(rng.pick(b"abcdefghijklmnopqrstuvwxyzABCDEF0123456789-_.")),
        }
    };
    let secret_of = |rng: &mut Rng, max: usize| -> String {
        let n = 1 + rng.below(max);
        (0..n).map(|_| secret_char(rng)).collect()
    };
    let id = secret_of(rng, 12);
    let secret = secret_of(rng, 24);
    let extras: Vec<String> = (0..rng.below(3)).map(|_| secret_of(rng, 12)).collect();
    let mut secrets: Vec<&str> = vec![&secret];
    secrets.extend(extras.iter().map(String::as_str));
    let mut text = String::new();
    for _ in 0..1 + rng.len(6) {
        match rng.below(6) {
            0 => text.push_str(rng.pick(&[
                "error: ",
                " invalid ",
                "client_secret=",
                "Authorization: Basic ",
                "\"",
                " ",
            ])),
            1 => {
                let form = crate::targets::secret_forms(rng.pick(&secrets));
                text.push_str(&form[rng.below(form.len())]);
            }
            2 => {
                let s = rng.pick(&secrets);
                let cut = rng.below(s.len() + 1);
                if s.is_char_boundary(cut) {
                    text.push_str(&s[..cut]);
                }
                text.push_str(s);
            }
            3 => {
                let pair = format!("{id}:{secret}");
                text.push_str(&b64_std(pair.as_bytes()));
            }
            4 => text.push_str("[redacted]"),
            _ => {
                let s = rng.pick(&secrets);
                text.push_str(s);
                text.push_str(s);
            }
        }
    }
    let mut out = format!("{id}\n{secret}\n");
    for e in &extras {
        out.push_str(e);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&text);
    out.into_bytes()
}

/// Standard base64 with padding (as HTTP Basic credentials are written).
pub fn b64_std(bytes: &[u8]) -> String {
    b64url(bytes).replace('-', "+").replace('_', "/") + ["", "==", "="][bytes.len() % 3]
}
