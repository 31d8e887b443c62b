//! Percent-encoding (RFC 3986 and WHATWG form), base64 (RFC 4648) and hex: one table each.

use crate::prelude::*;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Appends the two hex digits of `b`: upper-case (`%XX` escapes), or lower-case (JSON's
/// `\u00xx`, as most serializers write it; setting bit 5 lower-cases `A`-`F` and leaves the
/// digits as they are).
pub fn push_hex(out: &mut String, b: u8, lower: bool) {
    let case = if lower { 0x20 } else { 0 };
    out.push(char::from(HEX[usize::from(b >> 4)] | case));
    out.push(char::from(HEX[usize::from(b & 15)] | case));
}

/// The value of one hex digit, either case.
pub fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 `unreserved`: ALPHA / DIGIT / `-._~`.
pub fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn push_pct(out: &mut String, b: u8) {
    out.push('%');
    push_hex(out, b, false);
}

/// WHATWG `application/x-www-form-urlencoded` encoding of one name or value: UTF-8 bytes,
/// space → `+`, ALPHA / DIGIT / `*-._` kept, everything else `%XX` (upper-case hex).
pub fn form_urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => push_pct(&mut out, b),
        }
    }
    out
}

/// RFC 3986 percent-encoding: every byte of the UTF-8 form outside `unreserved` (`A-Z a-z 0-9
/// - . _ ~`) becomes `%XX` with upper-case hex digits (space is `%20`).
///
/// Fit for one path segment: the result never contains `/`, `?`, `#` or a bare `%`, and
/// different inputs always give different results. It does not make `""`, `.` or `..` safe
/// (they stay an empty or dot segment, and `%2E` is a dot to URL parsers too): check the value
/// first, as `providers::qbank::path::account_path_segment` does.
///
/// ```
/// use qbank_connect::util::encode::percent_encode;
/// assert_eq!(percent_encode("a b/c%d~é"), "a%20b%2Fc%25d~%C3%A9");
/// ```
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if is_unreserved(b) {
            out.push(char::from(b));
        } else {
            push_pct(&mut out, b);
        }
    }
    out
}

/// Decodes one form-urlencoded name or value (`+` → space, `%XX` → byte). Strict: a malformed
/// `%` escape or bytes that are not UTF-8 give `None`.
pub fn form_urldecode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex_value(*b.get(i + 1)?)?;
                let lo = hex_value(*b.get(i + 2)?)?;
                out.push((hi << 4) | lo);
                i += 2;
            }
            _ => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648 §4) with `=` padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let sextet = |shift: u32| char::from(B64[((n >> shift) & 63) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

/// Base64url (RFC 4648 §5) decoding, padding optional. Any other character, or a length that
/// cannot be base64, gives `None`.
pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = ((acc << 6) | u32::from(v)) & 0xFFFF;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn form_urlencode_follows_whatwg() {
        assert_eq!(form_urlencode("aZ09*-._"), "aZ09*-._");
        assert_eq!(form_urlencode(" ~!'()"), "+%7E%21%27%28%29");
        assert_eq!(form_urlencode("é€"), "%C3%A9%E2%82%AC");
        assert_eq!(form_urldecode("a+b%2Bc%C3%A9").as_deref(), Some("a b+cé"));
        assert_eq!(form_urldecode("%zz"), None);
        assert_eq!(form_urldecode("%4"), None);
        assert_eq!(form_urldecode("%FF"), None);
    }

    #[test]
    fn percent_encode_keeps_only_unreserved() {
        assert_eq!(percent_encode("a b+~*é"), "a%20b%2B~%2A%C3%A9");
    }

    #[test]
    fn encoding_keeps_unreserved_and_encodes_everything_else_in_upper_case() {
        assert_eq!(
            percent_encode("AZaz09-._~"),
            "AZaz09-._~",
            "unreserved characters pass"
        );
        assert_eq!(percent_encode(""), "");
        assert_eq!(percent_encode("/"), "%2F");
        assert_eq!(percent_encode("%2F"), "%252F");
        assert_eq!(percent_encode("a b+c"), "a%20b%2Bc");
        assert_eq!(percent_encode("?#[]@:"), "%3F%23%5B%5D%40%3A");
        assert_eq!(
            percent_encode("!$&'()*,;="),
            "%21%24%26%27%28%29%2A%2C%3B%3D"
        );
        assert_eq!(percent_encode("\\\"<>^`{|}"), "%5C%22%3C%3E%5E%60%7B%7C%7D");
        assert_eq!(percent_encode("\u{0}\u{1f}\u{7f}"), "%00%1F%7F");
        assert_eq!(percent_encode("\u{e9}"), "%C3%A9");
        assert_eq!(percent_encode("\u{20ac}"), "%E2%82%AC");
        assert_eq!(percent_encode("\u{1f600}"), "%F0%9F%98%80");
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, enc) in vectors {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
            assert_eq!(base64url_decode(enc).unwrap(), plain.as_bytes());
            assert_eq!(
                base64url_decode(enc.trim_end_matches('=')).unwrap(),
                plain.as_bytes()
            );
        }
    }

    #[test]
    fn base64url_decode_uses_the_url_alphabet_only() {
        assert_eq!(base64url_decode("-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(base64url_decode("+/8"), None);
        assert_eq!(base64url_decode("abcde"), None);
        assert_eq!(base64url_decode("ab cd"), None);
    }
}
