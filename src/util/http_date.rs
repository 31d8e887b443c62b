//! HTTP dates (RFC 9110 §5.6.7) and `Retry-After` (§10.2.3), read exactly.

use super::Millis;

/// The longest wait we honour from a `Retry-After` header: one hour. A server asking for more
/// is more likely misconfigured than serious, and callers can still back off further.
pub const RETRY_AFTER_CAP_MS: u64 = 60 * 60 * 1000;

/// The delay a `Retry-After` header asks for, in milliseconds, capped at
/// [`RETRY_AFTER_CAP_MS`]: delta-seconds, or an HTTP-date (IMF-fixdate, RFC 850, asctime)
/// relative to `now` and clamped at 0 when already past. Unreadable values give `None`.
pub fn parse_retry_after(value: &str, now: Millis) -> Option<u64> {
    let v = value.trim_matches([' ', '\t']);
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        let secs = v.bytes().fold(0u64, |acc, d| {
            acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        });
        return Some(secs.saturating_mul(1000).min(RETRY_AFTER_CAP_MS));
    }
    let at = parse_http_date_ms(v, now)?;
    Some(at.saturating_sub(now).min(RETRY_AFTER_CAP_MS))
}

/// An HTTP-date (RFC 9110 §5.6.7) as epoch milliseconds: IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), or the obsolete RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`)
/// and asctime (`Sun Nov  6 08:49:37 1994`) forms. `now` resolves RFC 850's two-digit year
/// (the year within 50 years of now). Dates before 1970 give 0. The weekday name must be valid
/// but is not checked against the date.
pub fn parse_http_date_ms(value: &str, now: Millis) -> Option<Millis> {
    let b = value.as_bytes();
    let mut c = Cursor { b, i: 0 };
    let (year, month, day, hms);
    match b.iter().position(|&x| x == b',') {
        Some(3) => {
            c.one_of(&SHORT_DAYS)?;
            c.lit(b", ")?;
            day = c.digits(2)?;
            c.lit(b" ")?;
            month = c.month()?;
            c.lit(b" ")?;
            year = c.digits(4)?;
            c.lit(b" ")?;
            hms = c.time()?;
            c.lit(b" GMT")?;
        }
        Some(_) => {
            c.one_of(&LONG_DAYS)?;
            c.lit(b", ")?;
            day = c.digits(2)?;
            c.lit(b"-")?;
            month = c.month()?;
            c.lit(b"-")?;
            let yy = c.digits(2)?;
            c.lit(b" ")?;
            hms = c.time()?;
            c.lit(b" GMT")?;
            // RFC 9110: the year with these last two digits within 50 years of now. The
            // current year is computed exactly: an estimate from the average year length is
            // a year behind on some New Year's days, which moves the 50-year window.
            // (`now / 86_400_000` is below 2^38, so the cast is exact.)
            let now_year = year_from_days((now / 86_400_000) as i64).unsigned_abs();
            let mut y = now_year - now_year % 100 + u64::from(yy);
            if y > now_year + 50 {
                y -= 100;
            } else if y + 50 <= now_year {
                y += 100;
            }
            year = u32::try_from(y).ok()?;
        }
        None => {
            c.one_of(&SHORT_DAYS)?;
            c.lit(b" ")?;
            month = c.month()?;
            c.lit(b" ")?;
            day = if c.lit(b" ").is_some() {
                c.digits(1)?
            } else {
                c.digits(2)?
            };
            c.lit(b" ")?;
            hms = c.time()?;
            c.lit(b" ")?;
            year = c.digits(4)?;
        }
    }
    if c.i != b.len() || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hms);
    Some(u64::try_from(secs).unwrap_or(0).saturating_mul(1000))
}

const SHORT_DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
const LONG_DAYS: [&[u8]; 7] = [
    b"Monday",
    b"Tuesday",
    b"Wednesday",
    b"Thursday",
    b"Friday",
    b"Saturday",
    b"Sunday",
];
const MONTHS: [&[u8]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn lit(&mut self, s: &[u8]) -> Option<()> {
        let end = self.i.checked_add(s.len())?;
        if self.b.get(self.i..end)? == s {
            self.i = end;
            Some(())
        } else {
            None
        }
    }

    fn one_of(&mut self, options: &[&[u8]]) -> Option<usize> {
        let k = options.iter().position(|o| self.lit(o).is_some())?;
        Some(k)
    }

    fn month(&mut self) -> Option<u32> {
        self.one_of(&MONTHS).map(|k| k as u32 + 1)
    }

    fn digits(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let d = *self.b.get(self.i)?;
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(d - b'0');
            self.i += 1;
        }
        Some(v)
    }

    /// `HH:MM:SS` as seconds of the day (a leap second 60 is allowed).
    fn time(&mut self) -> Option<u32> {
        let h = self.digits(2)?;
        self.lit(b":")?;
        let m = self.digits(2)?;
        self.lit(b":")?;
        let s = self.digits(2)?;
        (h < 24 && m < 60 && s <= 60).then_some(h * 3600 + m * 60 + s)
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian year of a day count since 1970-01-01 (H. Hinnant's
/// civil_from_days, year only).
fn year_from_days(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // March-based months: mp 10 and 11 are January and February of the next year.
    era * 400 + yoe + i64::from(mp >= 10)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    const NOW: Millis = 784_111_777_000; // Sun, 06 Nov 1994 08:49:37 GMT

    #[test]
    fn retry_after_delta_seconds_are_capped() {
        assert_eq!(parse_retry_after("0", NOW), Some(0));
        assert_eq!(parse_retry_after(" 120 ", NOW), Some(120_000));
        assert_eq!(parse_retry_after("3601", NOW), Some(RETRY_AFTER_CAP_MS));
        assert_eq!(
            parse_retry_after("99999999999999999999999", NOW),
            Some(RETRY_AFTER_CAP_MS)
        );
        assert_eq!(parse_retry_after("-1", NOW), None);
        assert_eq!(parse_retry_after("1.5", NOW), None);
        assert_eq!(parse_retry_after("", NOW), None);
    }

    #[test]
    fn retry_after_http_dates_in_all_three_forms() {
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", NOW),
            Some(10_000)
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:47 GMT", NOW),
            Some(10_000)
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:49:47 1994", NOW),
            Some(10_000)
        );
        // Past dates clamp to 0; far future dates are capped.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", NOW),
            Some(0)
        );
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", NOW),
            Some(RETRY_AFTER_CAP_MS)
        );
    }

    #[test]
    fn http_dates_convert_to_epoch_milliseconds() {
        assert_eq!(
            parse_http_date_ms("Sun, 06 Nov 1994 08:49:37 GMT", 0),
            Some(NOW)
        );
        assert_eq!(
            parse_http_date_ms("Thu, 01 Jan 1970 00:00:00 GMT", 0),
            Some(0)
        );
        assert_eq!(
            parse_http_date_ms("Thu, 29 Feb 2024 12:00:00 GMT", 0),
            Some(1_709_208_000_000)
        );
        assert_eq!(
            parse_http_date_ms("Wed, 01 Jan 1969 00:00:00 GMT", 0),
            Some(0)
        );
        assert_eq!(
            parse_http_date_ms("Thu Feb  1 00:00:00 2024", 0),
            Some(1_706_745_600_000)
        );
    }

    #[test]
    fn rfc850_two_digit_years_resolve_within_50_years_of_now() {
        let y2024 = 1_706_745_600_000; // 2024-02-01
                                       // "30" is 2030 (6 years ahead), "80" is 1980 (2080 would be 56 years ahead).
        assert_eq!(
            parse_http_date_ms("Friday, 01-Feb-30 00:00:00 GMT", y2024),
            parse_http_date_ms("Fri, 01 Feb 2030 00:00:00 GMT", 0)
        );
        assert_eq!(
            parse_http_date_ms("Friday, 01-Feb-80 00:00:00 GMT", y2024),
            parse_http_date_ms("Fri, 01 Feb 1980 00:00:00 GMT", 0)
        );
    }

    #[test]
    fn rfc850_two_digit_years_use_the_exact_current_year_on_new_years_day() {
        // Found by fuzzing (fuzz/, target retry_after): the current year was estimated as
        // 1970 + days × 400 / 146097, which is a year behind on 1 January of 2024, 2028, …,
        // so on 2028-01-01 "78" was read as 1978 (a date long past: retry at once) instead of
        // 2078 (50 years ahead, within the window: wait).
        let new_years_day_2028 = 1_830_340_800_000; // 2028-01-01T12:00:00Z
        assert_eq!(
            parse_http_date_ms("Saturday, 01-Jan-78 00:00:00 GMT", new_years_day_2028),
            Some(3_408_220_800_000) // 2078-01-01
        );
        assert_eq!(
            parse_retry_after("Saturday, 01-Jan-78 00:00:00 GMT", new_years_day_2028),
            Some(RETRY_AFTER_CAP_MS)
        );
        // The fuzzer's own input: 2156-01-01 and "06" is 2206, not 2106.
        assert_eq!(
            parse_http_date_ms("Wednesday, 05-Sep-06 11:41:00 GMT", 5_869_639_387_577),
            parse_http_date_ms("Wed, 05 Sep 2206 11:41:00 GMT", 0)
        );
        for (days, year) in [
            (0, 1970),
            (364, 1970),
            (365, 1971),
            (10_956, 1999),
            (10_957, 2000),
            (19_722, 2023),
            (19_723, 2024),
            (21_183, 2027),
            (21_184, 2028),
        ] {
            assert_eq!(year_from_days(days), year, "day {days}");
        }
    }

    #[test]
    fn malformed_http_dates_are_refused() {
        for d in [
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 2023 08:49:37 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sun Nov 6 08:49:37 1994",
            "tomorrow",
        ] {
            assert_eq!(parse_http_date_ms(d, NOW), None, "{d}");
        }
    }
}
