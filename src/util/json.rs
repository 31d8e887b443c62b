//! A small, exact JSON parser (RFC 8259).
//!
//! Numbers are kept as their validated source text and are never converted to floats: balances
//! are money, and `12345678901234567.89` must come back with every digit. The integer helpers
//! below read that text exactly.
//!
//! A parsed value borrows from the text: numbers, names and strings without escapes are slices of
//! it, so reading a balance or token answer allocates only the arrays and member lists (in wasm,
//! where every allocation goes through the allocator, dlmalloc when this was measured, that
//! halved the time to parse a balance answer).

use super::encode::{hex_value, push_hex};
use crate::prelude::*;
use alloc::borrow::Cow;
/// Maximum nesting of arrays and objects. Deeper input is refused so hostile bodies cannot
/// exhaust the stack (the parser recurses once per level).
pub const MAX_DEPTH: usize = 64;
/// Most members one object may have. Token, balance and problem answers have a handful; the cap
/// keeps the duplicate-name check (pairwise, see `has_duplicate_key`) cheap on hostile input:
/// at most 130,000 short comparisons per object.
pub const MAX_MEMBERS: usize = 512;

/// A parsed JSON value, borrowing from the text it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Json<'a> {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A number, as its exact source text (validated against the JSON number grammar).
    Number(Cow<'a, str>),
    /// A string, unescaped (borrowed from the text unless it had escapes).
    String(Cow<'a, str>),
    /// An array.
    Array(Vec<Json<'a>>),
    /// An object; members in source order (the parser refuses a name twice).
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// The value of the member named `key`, if this is an object that has one (the parser refuses
    /// objects with a name twice).
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The first of `names` that this object has, with its name: the one lookup for a member
    /// some servers spell `snake_case` and others `camelCase`.
    pub fn first_of<'n>(&self, names: &[&'n str]) -> Option<(&'n str, &Json<'a>)> {
        names.iter().find_map(|&n| self.get(n).map(|v| (n, v)))
    }

    /// The string, if this is a JSON string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The exact number text, if this is a JSON number.
    pub fn as_number(&self) -> Option<&str> {
        match self {
            Json::Number(n) => Some(n),
            _ => None,
        }
    }

    /// The boolean, if this is `true` or `false`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The members, if this is an object.
    pub fn as_object(&self) -> Option<&[(Cow<'a, str>, Json<'a>)]> {
        match self {
            Json::Object(members) => Some(members),
            _ => None,
        }
    }

    /// Whether this is, or contains, a number.
    pub fn has_number(&self) -> bool {
        match self {
            Json::Number(_) => true,
            Json::Array(items) => items.iter().any(Json::has_number),
            Json::Object(members) => members.iter().any(|(_, v)| v.has_number()),
            _ => false,
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    /// What kind of value this is ("an object", "a string", …), for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

/// Why a text is not JSON, and at which byte offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset into the input where the problem was found.
    pub offset: usize,
    /// What was wrong, e.g. "unexpected character".
    pub what: &'static str,
}

impl JsonError {
    /// "what at byte N", for building messages without `format!`. Never quotes the input.
    pub fn describe(&self) -> String {
        let mut s = String::from(self.what);
        s.push_str(" at byte ");
        super::push_u64(&mut s, self.offset as u64);
        s
    }
}

impl core::fmt::Display for JsonError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl core::error::Error for JsonError {}

/// Parses one JSON text. Surrounding whitespace is allowed; anything else after the value is an
/// error, as are lone surrogates, control characters in strings and nesting deeper than
/// [`MAX_DEPTH`].
pub fn parse(text: &str) -> Result<Json<'_>, JsonError> {
    let mut p = Parser {
        src: text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    p.skip_ws();
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos != p.bytes.len() {
        return Err(p.err("unexpected text after the JSON value"));
    }
    Ok(value)
}

struct Parser<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, what: &'static str) -> JsonError {
        JsonError {
            offset: self.pos,
            what,
        }
    }

    // Inlined even at opt-level "z": called per byte, a call each cost ~0.2 µs of the 1.1 µs a
    // balance answer takes to read in wasm (Deno), for 0.1 KiB gzipped.
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline(always)]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat_literal(&mut self, lit: &'static str, value: Json<'a>) -> Result<Json<'a>, JsonError> {
        if self
            .bytes
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(lit.as_bytes()))
        {
            self.pos += lit.len();
            Ok(value)
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json<'a>, JsonError> {
        match self.peek() {
            None => Err(self.err("unexpected end of input")),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Json::String),
            Some(b't') => self.eat_literal("true", Json::Bool(true)),
            Some(b'f') => self.eat_literal("false", Json::Bool(false)),
            Some(b'n') => self.eat_literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json<'a>, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                None => return Err(self.err("unexpected end of input")),
                Some(_) => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json<'a>, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        self.pos += 1; // '{'
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Json::Object(Vec::new()));
        }
        // Most objects here (token, balance, problem answers) have a handful of members: one
        // allocation instead of growing 4 → 8.
        let mut members = Vec::with_capacity(8);
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a string key"));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected ':'"));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value(depth)?;
            if members.len() == MAX_MEMBERS {
                return Err(self.err("an object has more than 512 members"));
            }
            members.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    if has_duplicate_key(&members) {
                        // RFC 8259 §4 leaves duplicates to the parser: JSON.parse keeps the last,
                        // a lookup the first. For money and tokens that ambiguity is refused.
                        return Err(self.err("an object has the same member name twice"));
                    }
                    return Ok(Json::Object(members));
                }
                None => return Err(self.err("unexpected end of input")),
                Some(_) => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    fn number(&mut self) -> Result<Json<'a>, JsonError> {
        let start = self.pos;
        let len = number_prefix_len(self.bytes.get(start..).unwrap_or_default());
        if len == 0 {
            return Err(self.err("invalid number"));
        }
        self.pos += len;
        // The number ends on an ASCII byte, so the slice is on char boundaries.
        match self.src.get(start..self.pos) {
            Some(text) => Ok(Json::Number(Cow::Borrowed(text))),
            None => Err(self.err("invalid number")),
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let Some(d) = self.peek().and_then(hex_value) else {
                return Err(self.err("invalid \\u escape"));
            };
            v = (v << 4) | u32::from(d);
            self.pos += 1;
        }
        Ok(v)
    }

    /// A string: a slice of the text when it has no escape, else the unescaped copy.
    fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.pos += 1; // opening quote
        let mut unescaped: Option<String> = None; // once an escape was seen
        let mut run = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    let tail = self.run_from(run)?;
                    self.pos += 1;
                    return Ok(match unescaped {
                        None => Cow::Borrowed(tail),
                        Some(mut out) => {
                            out.push_str(tail);
                            Cow::Owned(out)
                        }
                    });
                }
                Some(b'\\') => {
                    let out = unescaped.get_or_insert_with(String::new);
                    out.push_str(self.run_from(run)?);
                    self.pos += 1;
                    self.escape(out)?;
                    run = self.pos;
                }
                Some(0x00..=0x1f) => return Err(self.err("control character in string")),
                Some(_) => self.pos += 1,
            }
        }
    }

    // The unescaped run [run, pos). Runs end at '"' or '\\' (ASCII), so they are whole UTF-8
    // sequences of the (already valid) input.
    fn run_from(&self, run: usize) -> Result<&'a str, JsonError> {
        self.src
            .get(run..self.pos)
            .ok_or_else(|| self.err("invalid string"))
    }

    fn escape(&mut self, out: &mut String) -> Result<(), JsonError> {
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                let at = self.pos;
                let hi = self.hex4()?;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    // A high surrogate must be followed by an escaped low surrogate.
                    if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                        return Err(JsonError {
                            offset: at,
                            what: "lone surrogate in \\u escape",
                        });
                    }
                    self.pos += 2;
                    let lo = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err(JsonError {
                            offset: at,
                            what: "lone surrogate in \\u escape",
                        });
                    }
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else if (0xDC00..0xE000).contains(&hi) {
                    return Err(JsonError {
                        offset: at,
                        what: "lone surrogate in \\u escape",
                    });
                } else {
                    hi
                };
                match char::from_u32(code) {
                    Some(ch) => out.push(ch),
                    None => return Err(self.err("invalid \\u escape")),
                }
                return Ok(());
            }
            _ => return Err(self.err("invalid escape")),
        };
        out.push(c);
        self.pos += 1;
        Ok(())
    }
}

/// Length of the longest prefix of `b` that is a JSON number; 0 if none.
/// Grammar: `-? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)?`.
fn number_prefix_len(b: &[u8]) -> usize {
    let digits = |from: usize| {
        b.iter()
            .skip(from)
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i += digits(i),
        _ => return 0,
    }
    if b.get(i) == Some(&b'.') {
        let n = digits(i + 1);
        if n == 0 {
            return 0;
        }
        i += 1 + n;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        let mut j = i + 1;
        if let Some(b'+' | b'-') = b.get(j) {
            j += 1;
        }
        let n = digits(j);
        if n == 0 {
            return 0;
        }
        i = j + n;
    }
    i
}

/// Appends `s` escaped for the inside of a JSON string: `"`, `\`, and control characters (the
/// common ones as `\n`, `\r`, `\t`, the rest as `\u00XX`); everything else as it is, which is what
/// most serializers write.
pub fn push_escaped(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    // Runs of bytes that need no escape are copied whole (every byte that needs one is ASCII,
    // so each run ends on a character boundary).
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b != b'"' && b != b'\\' && b >= 0x20 {
            continue;
        }
        out.push_str(super::sub(s, run, i));
        run = i + 1;
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                out.push_str("\\u00");
                push_hex(out, b, true);
            }
        }
    }
    out.push_str(super::tail(s, run));
}

/// Appends `text`, which must be JSON that [`parse`] accepted, with every number turned into a
/// JSON string of exactly its digits (`{"a":1.50}` → `{"a":"1.50"}`); everything else, whitespace
/// and escapes included, is copied as it is. `JSON.parse` of the result is the value with every
/// number a string of its exact digits, without building and writing the value again.
pub fn quote_numbers(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    let mut run = 0; // start of the bytes not yet copied
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Skip the string: to its closing quote, past escaped characters.
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                // Every boundary here is an ASCII byte, so these are whole characters.
                out.push_str(super::sub(text, run, start));
                out.push('"');
                out.push_str(super::sub(text, start, i));
                out.push('"');
                run = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(super::tail(text, run));
}

/// Appends `s` as a JSON string, quotes included.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    push_escaped(out, s);
    out.push('"');
}

/// Whether two members share a name. Pairwise, on at most [`MAX_MEMBERS`] members: a sort or a
/// hash set would add more code to the wasm than this saves time.
fn has_duplicate_key(members: &[(Cow<'_, str>, Json<'_>)]) -> bool {
    members
        .iter()
        .enumerate()
        .any(|(i, (k, _))| members[..i].iter().any(|(j, _)| j == k))
}

/// Whether `text` is exactly one JSON number (no whitespace, no sign other than a leading '-').
pub fn is_json_number(text: &str) -> bool {
    !text.is_empty() && number_prefix_len(text.as_bytes()) == text.len()
}

/// A JSON number split into its parts: the digit string `int` ++ `frac` with the decimal point
/// after `int`, moved `exp` places to the right, negated if `negative`.
pub(crate) struct Decimal<'a> {
    pub(crate) negative: bool,
    pub(crate) int: &'a str,
    pub(crate) frac: &'a str,
    /// Saturated to ±1_000_000, which is far beyond any value we accept.
    pub(crate) exp: i64,
}

/// Splits a JSON number text; `None` if it is not one.
pub(crate) fn decimal(text: &str) -> Option<Decimal<'_>> {
    if !is_json_number(text) {
        return None;
    }
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (mantissa, exp_text) = match rest.find(['e', 'E']) {
        Some(i) => (rest.get(..i)?, rest.get(i + 1..)),
        None => (rest, None),
    };
    let (int, frac) = match mantissa.find('.') {
        Some(i) => (mantissa.get(..i)?, mantissa.get(i + 1..)?),
        None => (mantissa, ""),
    };
    let exp = match exp_text {
        None => 0,
        Some(e) => {
            let (neg, digits) = match e.as_bytes().first() {
                Some(b'-') => (true, e.get(1..)?),
                Some(b'+') => (false, e.get(1..)?),
                _ => (false, e),
            };
            let mut v: i64 = 0;
            for d in digits.bytes() {
                v = (v * 10 + i64::from(d - b'0')).min(1_000_000);
            }
            if neg {
                -v
            } else {
                v
            }
        }
    };
    Some(Decimal {
        negative,
        int,
        frac,
        exp,
    })
}

/// The value of a non-negative JSON number text, scaled by `10^scale` and truncated toward
/// zero, if it fits in a `u64`. Negative numbers (even `-0`) and non-numbers give `None`.
fn trunc_scaled_u64(text: &str, scale: i64) -> Option<u64> {
    let d = decimal(text)?;
    if d.negative {
        return None;
    }
    // The digits int++frac with the point after `point` digits.
    let point = (d.int.len() as i64)
        .saturating_add(d.exp)
        .saturating_add(scale);
    let mut v: u64 = 0;
    let mut taken: i64 = 0;
    for b in d.int.bytes().chain(d.frac.bytes()) {
        if taken >= point {
            break;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        taken += 1;
    }
    // Point beyond the digits: append zeros (bail out early for absurd exponents).
    while taken < point {
        if v != 0 {
            v = v.checked_mul(10)?;
        }
        taken += 1;
        if taken > 40 && v == 0 {
            // All-zero mantissa: value is 0 whatever the exponent.
            break;
        }
    }
    Some(v)
}

/// The value of a JSON number text that is exactly a non-negative integer fitting a `u64`.
///
/// `"3600"`, `"3600.0"`, `"1e3"` and `"1.5e3"` are integers; `"3600.5"`, `"-1"`, `"1e20"` are not.
pub fn number_as_u64(text: &str) -> Option<u64> {
    let d = decimal(text)?;
    if d.negative {
        return None;
    }
    // Exact only if every digit after the point is zero.
    let point = (d.int.len() as i64).saturating_add(d.exp);
    let all = d.int.bytes().chain(d.frac.bytes());
    let exact = all
        .enumerate()
        .all(|(i, b)| (i as i64) < point || b == b'0');
    if !exact {
        return None;
    }
    trunc_scaled_u64(text, 0)
}

/// The value of a non-negative JSON number text truncated toward zero (`"3600.9"` → 3600,
/// `"1e3"` → 1000, `"1e-3"` → 0), if it fits in a `u64`. Negative numbers give `None`.
pub fn number_trunc_u64(text: &str) -> Option<u64> {
    trunc_scaled_u64(text, 0)
}

/// A non-negative JSON number of seconds as whole milliseconds, truncated toward zero
/// (`"1700000000.5"` → 1700000000500). Used for the JWT `exp` claim.
pub fn seconds_text_to_ms(text: &str) -> Option<u64> {
    trunc_scaled_u64(text, 3)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    fn s(v: &str) -> Json<'_> {
        Json::String(v.into())
    }
    fn n(v: &str) -> Json<'_> {
        Json::Number(v.into())
    }

    #[test]
    fn parses_every_value_kind() {
        let v = parse(r#"{"a":[1,-2.5e+3,true,false,null,"x"],"b":{}}"#).unwrap();
        assert_eq!(
            v,
            Json::Object(vec![
                (
                    "a".into(),
                    Json::Array(vec![
                        n("1"),
                        n("-2.5e+3"),
                        Json::Bool(true),
                        Json::Bool(false),
                        Json::Null,
                        s("x")
                    ])
                ),
                ("b".into(), Json::Object(vec![])),
            ])
        );
    }

    #[test]
    fn numbers_keep_their_exact_source_text() {
        for t in [
            "12345678901234567.89",
            "0.10",
            "1E400",
            "-0",
            "123456789012345678901234567890",
        ] {
            assert_eq!(parse(t).unwrap(), n(t));
        }
    }

    #[test]
    fn invalid_numbers_are_refused() {
        for t in [
            "01", "1.", ".5", "+1", "1e", "1e+", "-", "--1", "0x10", "NaN", "Infinity", "1.5.2",
        ] {
            assert!(parse(t).is_err(), "{t} should be refused");
        }
    }

    #[test]
    fn whitespace_around_the_value_is_allowed() {
        assert_eq!(parse(" \t\r\n true \n").unwrap(), Json::Bool(true));
    }

    #[test]
    fn trailing_garbage_is_refused_with_its_offset() {
        let e = parse(r#"{"a":1} x"#).unwrap_err();
        assert_eq!(e.offset, 8);
        assert_eq!(e.what, "unexpected text after the JSON value");
        assert!(parse("[1]]").is_err());
        assert!(parse("1 2").is_err());
    }

    #[test]
    fn empty_and_whitespace_only_input_is_refused() {
        assert_eq!(parse("").unwrap_err().what, "unexpected end of input");
        assert_eq!(parse("   ").unwrap_err().offset, 3);
    }

    #[test]
    fn string_escapes_are_unescaped() {
        let v = parse(r#""a\"b\\c\/d\b\f\n\r\t\u00e9\u20AC""#).unwrap();
        assert_eq!(v, s("a\"b\\c/d\u{8}\u{c}\n\r\t\u{e9}\u{20ac}"));
    }

    #[test]
    fn text_without_escapes_is_borrowed_and_escaped_text_is_copied() {
        let text = r#"{"plain":"1.50","n":-2e3,"esc\u0061ped":"a\nb","tail":"x\"y"}"#;
        let v = parse(text).unwrap();
        let members = v.as_object().unwrap();
        let borrowed = |c: &Cow<'_, str>| matches!(c, Cow::Borrowed(_));
        let strings: Vec<(bool, bool)> = members
            .iter()
            .map(|(k, v)| match v {
                Json::String(s) | Json::Number(s) => (borrowed(k), borrowed(s)),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            strings,
            [(true, true), (true, true), (false, false), (true, false)]
        );
        assert_eq!(&*members[2].0, "escaped");
        assert_eq!(v.get("tail").and_then(Json::as_str), Some("x\"y"));
        assert_eq!(v.get("n").and_then(Json::as_number), Some("-2e3"));
    }

    #[test]
    fn surrogate_pairs_decode_to_one_char() {
        assert_eq!(parse(r#""\ud83d\ude00""#).unwrap(), s("\u{1F600}"));
    }

    #[test]
    fn lone_surrogates_are_refused() {
        for t in [
            r#""\ud83d""#,
            r#""\ud83dx""#,
            r#""\ude00""#,
            r#""\ud83d\u0041""#,
        ] {
            assert_eq!(
                parse(t).unwrap_err().what,
                "lone surrogate in \\u escape",
                "{t}"
            );
        }
    }

    #[test]
    fn raw_utf8_passes_through_strings() {
        assert_eq!(parse("\"héllo €\"").unwrap(), s("héllo €"));
    }

    #[test]
    fn control_characters_in_strings_are_refused() {
        assert_eq!(
            parse("\"a\nb\"").unwrap_err().what,
            "control character in string"
        );
    }

    #[test]
    fn bad_escapes_and_unterminated_strings_are_refused() {
        assert_eq!(parse(r#""\x""#).unwrap_err().what, "invalid escape");
        assert_eq!(parse(r#""\u12g4""#).unwrap_err().what, "invalid \\u escape");
        assert_eq!(parse(r#""abc"#).unwrap_err().what, "unterminated string");
    }

    #[test]
    fn depth_limit_is_64() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(&ok).is_ok());
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(&deep).unwrap_err().what, "nesting too deep");
        let objs = r#"{"a":"#.repeat(MAX_DEPTH + 1) + "1" + &"}".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(&objs).unwrap_err().what, "nesting too deep");
    }

    #[test]
    fn structural_errors_are_refused() {
        for t in [
            "[1,]",
            "{\"a\":1,}",
            "{a:1}",
            "{\"a\" 1}",
            "[1 2]",
            "tru",
            "nul",
            "{",
            "[",
        ] {
            assert!(parse(t).is_err(), "{t}");
        }
    }

    #[test]
    fn get_finds_a_member_by_name() {
        let v = parse(r#"{"j":"first","k":"second"}"#).unwrap();
        assert_eq!(v.get("k").and_then(Json::as_str), Some("second"));
        assert_eq!(v.get("missing"), None);
        assert_eq!(n("1").get("k"), None);
    }

    #[test]
    fn accessors_match_only_their_kind() {
        assert_eq!(s("x").as_str(), Some("x"));
        assert_eq!(n("1").as_str(), None);
        assert_eq!(n("1").as_number(), Some("1"));
        assert_eq!(Json::Bool(true).as_bool(), Some(true));
        assert!(Json::Null.is_null());
        assert_eq!(Json::Array(vec![]).as_array().map(<[Json]>::len), Some(0));
        assert!(Json::Object(vec![]).as_object().is_some());
        assert_eq!(Json::Object(vec![]).kind(), "an object");
    }

    #[test]
    fn error_describe_names_what_and_where() {
        assert_eq!(
            parse("[x]").unwrap_err().describe(),
            "unexpected character at byte 1"
        );
    }

    #[test]
    fn number_as_u64_accepts_only_exact_integers() {
        assert_eq!(number_as_u64("3600"), Some(3600));
        assert_eq!(number_as_u64("3600.0"), Some(3600));
        assert_eq!(number_as_u64("1e3"), Some(1000));
        assert_eq!(number_as_u64("1.5e3"), Some(1500));
        assert_eq!(number_as_u64("36000e-1"), Some(3600));
        assert_eq!(number_as_u64("18446744073709551615"), Some(u64::MAX));
        assert_eq!(number_as_u64("18446744073709551616"), None);
        assert_eq!(number_as_u64("3600.5"), None);
        assert_eq!(number_as_u64("1e-3"), None);
        assert_eq!(number_as_u64("-1"), None);
        assert_eq!(number_as_u64("1e20"), None);
        assert_eq!(number_as_u64("0e999999999999999999"), Some(0));
        assert_eq!(number_as_u64(" 1"), None);
    }

    #[test]
    fn number_trunc_u64_truncates_toward_zero() {
        assert_eq!(number_trunc_u64("3600.9"), Some(3600));
        assert_eq!(number_trunc_u64("0.999"), Some(0));
        assert_eq!(number_trunc_u64("1e-3"), Some(0));
        assert_eq!(number_trunc_u64("1e-999999999999"), Some(0));
        assert_eq!(number_trunc_u64("1e400"), None);
        assert_eq!(number_trunc_u64("-0.5"), None);
    }

    #[test]
    fn seconds_text_to_ms_keeps_milliseconds() {
        assert_eq!(seconds_text_to_ms("1700000000"), Some(1_700_000_000_000));
        assert_eq!(seconds_text_to_ms("1700000000.5"), Some(1_700_000_000_500));
        assert_eq!(
            seconds_text_to_ms("1700000000.1239"),
            Some(1_700_000_000_123)
        );
        assert_eq!(seconds_text_to_ms("1.7e9"), Some(1_700_000_000_000));
        assert_eq!(seconds_text_to_ms("1e17"), None);
    }

    #[test]
    fn duplicate_member_names_are_refused_small_and_large() {
        assert!(parse(r#"{"a":"1.00","a":"999.00"}"#).is_err());
        assert!(parse(r#"{"x":{"b":1,"b":2}}"#).is_err());
        let mut big = String::from("{");
        for i in 0..MAX_MEMBERS - 1 {
            big.push_str(&format!("\"k{i}\":{i},"));
        }
        assert!(parse(&(big.clone() + "\"k7\":0}")).is_err());
        assert!(parse(&(big.clone() + "\"z\":0}")).is_ok());
        assert!(
            parse(&(big + "\"z\":0,\"y\":1}")).is_err(),
            "over MAX_MEMBERS"
        );
        assert!(parse(r#"[{"a":1},{"a":2}]"#).is_ok());
    }
    /// Writes `value` as JSON text (numbers as strings of their digits with `exact_numbers`): the
    /// texts the property tests feed to `parse` and `quote_numbers`.
    fn write(out: &mut String, value: &Json, exact_numbers: bool) {
        match value {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) if exact_numbers => {
                out.push('"');
                out.push_str(n);
                out.push('"');
            }
            Json::Number(n) => out.push_str(n),
            Json::String(s) => write_string(out, s),
            Json::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(out, v, exact_numbers);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(out, k);
                    out.push(':');
                    write(out, v, exact_numbers);
                }
                out.push('}');
            }
        }
    }

    /// A JSON value tree of bounded depth, with strings from the whole of Unicode (controls,
    /// quotes, backslashes, U+2028) and numbers from the grammar's corners.
    fn any_json() -> impl proptest::strategy::Strategy<Value = Json<'static>> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            "-?(0|[1-9][0-9]{0,25})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?"
                .prop_map(|n| Json::Number(n.into())),
            any::<String>().prop_map(|s| Json::String(s.into())),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
                proptest::collection::btree_map(any::<String>(), inner, 0..6).prop_map(|m| {
                    Json::Object(m.into_iter().map(|(k, v)| (k.into(), v)).collect())
                }),
            ]
        })
    }

    fn numbers_to_strings<'a>(v: &Json<'a>) -> Json<'a> {
        match v {
            Json::Number(n) => Json::String(n.clone()),
            Json::Array(items) => Json::Array(items.iter().map(numbers_to_strings).collect()),
            Json::Object(m) => Json::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), numbers_to_strings(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    proptest::proptest! {
        #[test]
        fn written_json_parses_back_to_the_same_value(v in any_json()) {
            let mut text = String::new();
            write(&mut text, &v, false);
            proptest::prop_assert_eq!(parse(&text).unwrap(), v);
        }

        #[test]
        fn exact_numbers_are_written_as_their_digits(v in any_json()) {
            let mut text = String::new();
            write(&mut text, &v, true);
            proptest::prop_assert_eq!(parse(&text).unwrap(), numbers_to_strings(&v));
        }
    }

    proptest::proptest! {
        #[test]
        fn quoted_numbers_parse_as_the_exact_value(v in any_json(), pretty in proptest::bool::ANY) {
            let mut text = String::new();
            if pretty {
                write_spaced(&mut text, &v);
            } else {
                write(&mut text, &v, false);
            }
            let mut quoted = String::new();
            quote_numbers(&mut quoted, &text);
            proptest::prop_assert_eq!(parse(&quoted).unwrap(), numbers_to_strings(&v));
        }
    }

    /// `write`, with whitespace around every token (copied as it is by `quote_numbers`).
    fn write_spaced(out: &mut String, v: &Json) {
        out.push_str(" \n");
        match v {
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    out.push_str(if i > 0 { " ,\t" } else { " " });
                    write_spaced(out, item);
                }
                out.push_str(" ]");
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (k, item)) in members.iter().enumerate() {
                    out.push_str(if i > 0 { " ,\r\n" } else { " " });
                    write_string(out, k);
                    out.push_str(" : ");
                    write_spaced(out, item);
                }
                out.push_str(" }");
            }
            scalar => write(out, scalar, false),
        }
        out.push(' ');
    }

    #[test]
    fn quote_numbers_leaves_strings_and_escapes_alone() {
        let mut out = String::new();
        quote_numbers(
            &mut out,
            r#" {"a\"1":[-1.5e+3, "2", true, null, {"\\":0}]} "#,
        );
        assert_eq!(
            out,
            r#" {"a\"1":["-1.5e+3", "2", true, null, {"\\":"0"}]} "#
        );
    }

    #[test]
    fn write_escapes_what_json_requires() {
        let mut out = String::new();
        let v = parse(r#"{"a\"b":["\u0000\u001f\n","\u2028",-1.5e3],"c":null}"#).unwrap();
        write(&mut out, &v, false);
        assert_eq!(
            out,
            "{\"a\\\"b\":[\"\\u0000\\u001f\\n\",\"\u{2028}\",-1.5e3],\"c\":null}"
        );
    }
}
