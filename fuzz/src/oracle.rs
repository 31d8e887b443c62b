//! Independent reference code the targets compare the crate against: a JSON writer, exact
//! decimal values, and an HTTP-date reader written separately from `util::http_date`'s.

use qbank_connect::util::json::Json;

/// Writes a value as JSON text (strings escaped minimally, numbers as their exact text).
pub fn write_json(v: &Json, out: &mut String) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(true) => out.push_str("true"),
        Json::Bool(false) => out.push_str("false"),
        Json::Number(n) => out.push_str(n),
        Json::String(s) => write_json_string(s, out),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Json::Object(members) => {
            out.push('{');
            for (i, (k, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(k, out);
                out.push(':');
                write_json(item, out);
            }
            out.push('}');
        }
    }
}

/// A JSON string literal for `s`.
pub fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[(c as usize) >> 4]));
                out.push(char::from(HEX[(c as usize) & 15]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The value with every number replaced by a string of its exact text (what getBalance's `raw`
/// holds).
pub fn numbers_as_strings<'a>(v: &Json<'a>) -> Json<'a> {
    match v {
        Json::Number(n) => Json::String(n.clone()),
        Json::Array(items) => Json::Array(items.iter().map(numbers_as_strings).collect()),
        Json::Object(members) => Json::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), numbers_as_strings(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// getBalance's result as support.js's `fromPlan` builds it from the parsed body: written here
/// from the plan's documented bits, independently of the core.
pub fn apply_plan<'a>(bits: u32, id: &'a str, raw: &Json<'a>) -> Json<'a> {
    use qbank_connect::providers::qbank::balances::{
        AS_OF_NAMES, PLAN, PLAN_AS_OF_SHIFT, PLAN_AVAILABLE_CAMEL, PLAN_CURRENCY, PLAN_LEDGER_CAMEL,
    };
    assert_ne!(bits & PLAN, 0, "a plan without its PLAN bit");
    let member = |name: &str| {
        raw.get(name)
            .cloned()
            .unwrap_or_else(|| panic!("the plan names {name}, absent"))
    };
    let pick =
        |camel: bool, snake: &str, camel_name: &str| member(if camel { camel_name } else { snake });
    let mut out = vec![
        ("accountId".into(), Json::String(id.into())),
        (
            "availableBalance".into(),
            pick(
                bits & PLAN_AVAILABLE_CAMEL != 0,
                "available_balance",
                "availableBalance",
            ),
        ),
        (
            "ledgerBalance".into(),
            pick(
                bits & PLAN_LEDGER_CAMEL != 0,
                "ledger_balance",
                "ledgerBalance",
            ),
        ),
    ];
    if bits & PLAN_CURRENCY != 0 {
        out.push(("currency".into(), member("currency")));
    }
    match (bits >> PLAN_AS_OF_SHIFT) & 3 {
        0 => {}
        n => out.push(("asOf".into(), member(AS_OF_NAMES[n as usize - 1]))),
    }
    out.push(("raw".into(), raw.clone()));
    Json::Object(out)
}

/// The JSON text of a value.
pub fn to_json(v: &Json) -> String {
    let mut s = String::new();
    write_json(v, &mut s);
    s
}

/// Nesting depth of a value (a scalar is 0, `[]` is 1).
pub fn depth(v: &Json) -> usize {
    match v {
        Json::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Json::Object(members) => 1 + members.iter().map(|(_, v)| depth(v)).max().unwrap_or(0),
        _ => 0,
    }
}

/// Whether our value and serde_json's (with `arbitrary_precision` and `preserve_order`) are the
/// same JSON value, numbers compared by their text.
pub fn same_as_serde(ours: &Json, theirs: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (ours, theirs) {
        (Json::Null, V::Null) => true,
        (Json::Bool(a), V::Bool(b)) => a == b,
        (Json::Number(a), V::Number(b)) => same_number(a, &b.to_string()),
        (Json::String(a), V::String(b)) => a == b,
        (Json::Array(a), V::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_as_serde(x, y))
        }
        (Json::Object(a), V::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((ka, va), (kb, vb))| ka == kb && same_as_serde(va, vb))
        }
        _ => false,
    }
}

fn same_number(a: &str, b: &str) -> bool {
    a == b || decimal_value(a).is_some_and(|x| decimal_value(b) == Some(x))
}

/// The exact value of a decimal text (`-12.5e3`, `0.0010`): sign, significant digits without
/// leading or trailing zeros, and where the point goes (value = 0.DIGITS × 10^point).
/// Zero is `(false, "", 0)` whatever its sign. Written independently of `util::json`.
pub fn decimal_value(text: &str) -> Option<(bool, String, i64)> {
    let (neg, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => {
            let e = &rest[i + 1..];
            let e = e.strip_prefix('+').unwrap_or(e);
            let (eneg, edigits) = match e.strip_prefix('-') {
                Some(d) => (true, d),
                None => (false, e),
            };
            if edigits.is_empty() || !edigits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let mut v: i64 = 0;
            for d in edigits.bytes() {
                v = (v * 10 + i64::from(d - b'0')).min(10_000_000);
            }
            (&rest[..i], if eneg { -v } else { v })
        }
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (mantissa.contains('.') && frac.is_empty()) {
        return None;
    }
    let all = [int, frac].concat();
    let lead = all.bytes().take_while(|&b| b == b'0').count();
    let digits = all[lead..].trim_end_matches('0');
    if digits.is_empty() {
        return Some((false, String::new(), 0));
    }
    let point = int.len() as i64 - lead as i64 + exp;
    Some((neg, digits.to_string(), point))
}

const SHORT_DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn month_len(y: i64, m: usize) -> i64 {
    [
        31,
        if is_leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ][m - 1]
}

/// Days from 1970-01-01 to the first of January of `y` (negative before 1970), counted with
/// the leap-year rule rather than Hinnant's era arithmetic.
fn days_to_year(y: i64) -> i64 {
    let leaps = |n: i64| n.div_euclid(4) - n.div_euclid(100) + n.div_euclid(400);
    365 * (y - 1970) + leaps(y - 1) - leaps(1969)
}

/// Epoch seconds of a calendar date and time.
pub fn epoch_secs(y: i64, m: usize, d: i64, secs_of_day: i64) -> i64 {
    let mut days = days_to_year(y);
    for k in 1..m {
        days += month_len(y, k);
    }
    (days + d - 1) * 86_400 + secs_of_day
}

/// The calendar year that epoch millisecond `ms` falls in, by walking years (exact).
pub fn year_of(ms: u64) -> i64 {
    let days = (ms / 86_400_000) as i64;
    // Start from an estimate within a year or two, then walk to the exact year.
    let mut y = 1970 + days * 400 / 146_097;
    while days_to_year(y) > days {
        y -= 1;
    }
    while days_to_year(y + 1) <= days {
        y += 1;
    }
    y
}

fn num(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0i64, |n, &b| n * 10 + i64::from(b - b'0')))
}

fn hms(s: &[u8]) -> Option<i64> {
    if s.len() != 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    let (h, m, sec) = (num(&s[0..2])?, num(&s[3..5])?, num(&s[6..8])?);
    (h < 24 && m < 60 && sec <= 60).then_some(h * 3600 + m * 60 + sec)
}

fn month(s: &[u8]) -> Option<usize> {
    MONTHS.iter().position(|m| m.as_bytes() == s).map(|k| k + 1)
}

/// An HTTP-date (RFC 9110 §5.6.7, all three forms) as epoch milliseconds, clamped at 0, by a
/// reader written from the RFC's grammar, separately from `util::http_date::parse_http_date_ms`.
/// RFC 850's two-digit year is the one within 50 years of `now` (more than 50 years ahead
/// means the century before).
pub fn http_date_ms(v: &str, now: u64) -> Option<u64> {
    let b = v.as_bytes();
    let (y, mo, d, t) = if b.len() == 29 && b[3] == b',' {
        // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
        if !SHORT_DAYS.iter().any(|w| w.as_bytes() == &b[..3])
            || &b[4..5] != b" "
            || b[7] != b' '
            || b[11] != b' '
            || b[16] != b' '
            || &b[25..] != b" GMT"
        {
            return None;
        }
        (
            num(&b[12..16])?,
            month(&b[8..11])?,
            num(&b[5..7])?,
            hms(&b[17..25])?,
        )
    } else if let Some(comma) = v.find(", ") {
        // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
        if !LONG_DAYS.contains(&&v[..comma]) {
            return None;
        }
        let r = &b[comma + 2..];
        if r.len() != 22 || r[2] != b'-' || r[6] != b'-' || r[9] != b' ' || &r[18..] != b" GMT" {
            return None;
        }
        let yy = num(&r[7..9])?;
        let now_year = year_of(now);
        let mut y = now_year - now_year % 100 + yy;
        if y > now_year + 50 {
            y -= 100;
        } else if y + 50 <= now_year {
            y += 100;
        }
        (y, month(&r[3..6])?, num(&r[0..2])?, hms(&r[10..18])?)
    } else if b.len() == 24 && !v.contains(',') {
        // asctime: Sun Nov  6 08:49:37 1994 (or "Nov 06")
        if !SHORT_DAYS.iter().any(|w| w.as_bytes() == &b[..3])
            || b[3] != b' '
            || b[7] != b' '
            || b[10] != b' '
            || b[19] != b' '
        {
            return None;
        }
        let day = if b[8] == b' ' {
            num(&b[9..10])?
        } else {
            num(&b[8..10])?
        };
        (num(&b[20..24])?, month(&b[4..7])?, day, hms(&b[11..19])?)
    } else {
        return None;
    };
    if d < 1 || d > month_len(y, mo) {
        return None;
    }
    let secs = epoch_secs(y, mo, d, t);
    Some(u64::try_from(secs).unwrap_or(0).saturating_mul(1000))
}

/// Formats epoch seconds (from 1970 on) as an IMF-fixdate, for the generators.
pub fn imf_fixdate(secs: u64) -> String {
    let (y, m, d, wd, t) = civil(secs);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        SHORT_DAYS[wd],
        d,
        MONTHS[m - 1],
        y,
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Formats epoch seconds as an RFC 850 date.
pub fn rfc850_date(secs: u64) -> String {
    let (y, m, d, wd, t) = civil(secs);
    format!(
        "{}, {:02}-{}-{:02} {:02}:{:02}:{:02} GMT",
        LONG_DAYS[wd],
        d,
        MONTHS[m - 1],
        y % 100,
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Formats epoch seconds as an asctime date.
pub fn asctime_date(secs: u64) -> String {
    let (y, m, d, wd, t) = civil(secs);
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {:04}",
        SHORT_DAYS[wd],
        MONTHS[m - 1],
        d,
        t / 3600,
        t / 60 % 60,
        t % 60,
        y
    )
}

/// (year, month, day, weekday index from Monday, seconds of the day) of epoch seconds.
fn civil(secs: u64) -> (i64, usize, i64, usize, u64) {
    let days = (secs / 86_400) as i64;
    let y = year_of(secs.saturating_mul(1000));
    let mut rem = days - days_to_year(y);
    let mut m = 1;
    while rem >= month_len(y, m) {
        rem -= month_len(y, m);
        m += 1;
    }
    // 1970-01-01 was a Thursday (index 3 from Monday).
    let wd = ((days + 3) % 7) as usize;
    (y, m, rem + 1, wd, secs % 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_through_the_reference_reader() {
        for secs in [
            0u64,
            784_111_777,
            951_782_400,
            1_700_000_000,
            253_402_300_799,
        ] {
            let now = 1_700_000_000_000;
            assert_eq!(http_date_ms(&imf_fixdate(secs), now), Some(secs * 1000));
            assert_eq!(http_date_ms(&asctime_date(secs), now), Some(secs * 1000));
        }
        assert_eq!(imf_fixdate(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(asctime_date(784_111_777), "Sun Nov  6 08:49:37 1994");
        assert_eq!(rfc850_date(784_111_777), "Sunday, 06-Nov-94 08:49:37 GMT");
        assert_eq!(
            http_date_ms("Sunday, 06-Nov-94 08:49:37 GMT", 1_700_000_000_000),
            Some(784_111_777_000)
        );
    }

    #[test]
    fn decimal_values_compare_exactly() {
        assert_eq!(decimal_value("1.5e3"), decimal_value("1500"));
        assert_eq!(decimal_value("15e-1"), decimal_value("1.50"));
        assert_eq!(decimal_value("-0.0"), decimal_value("0"));
        assert_ne!(decimal_value("1.5"), decimal_value("15"));
    }
}
