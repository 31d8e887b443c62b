//! A small, strict parser for absolute URLs, and the checks for configured endpoints.
//!
//! Not the `url` crate: it would bring IDNA tables into the wasm, and we want *fewer* URLs to
//! parse, not more. This parser refuses everything on which URL parsers are known to disagree
//! (backslashes, whitespace, control characters, non-ASCII, numeric host forms other than a
//! dotted quad such as `127.1` or `0x7f.1`, `xn--` labels other than the Punycode of plain
//! lower-case letters, `.`/`..` path segments, bad percent-escapes), and every character that
//! WHATWG `URL` would percent-encode (`"`, `<`, `` ` ``, …, and `'` in a query); it writes
//! scheme and host as WHATWG `URL` does (lower case, an IPv6 address compressed: `[::1]`). So
//! the URL checked here is exactly the URL that `fetch` will request:
//! `tests/js/url-differential.test.mjs` compares the two on 100,000 generated inputs.
//!
//! Error messages never repeat the URL: it may carry a password (`user:pw@`) or a key in the
//! query.

use super::encode::{hex_value, is_unreserved, push_hex};
use super::{concat, find_bytes, push_u64, sub, tail, Invalid};
use crate::prelude::*;

/// An absolute URL split into its parts.
///
/// The user-info (`user:password@`) is never kept, only the fact that there was one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedUrl {
    /// The scheme, lower-cased, without the `:` (`https`).
    pub scheme: String,
    /// The host, lower-cased; an IPv6 address in brackets, written as WHATWG `URL` writes it
    /// (`[0:0::1]` is `[::1]`).
    pub host: String,
    /// The port, if one was written (even when it is the scheme's default).
    pub port: Option<u16>,
    /// The path, always starting with `/` (an empty path is `/`), percent-escapes as written.
    pub path: String,
    /// The query without its `?`, if there was a `?`.
    pub query: Option<String>,
    /// The fragment without its `#`, if there was a `#`.
    pub fragment: Option<String>,
    /// Whether the URL had user-info before the host.
    pub has_userinfo: bool,
}

impl ParsedUrl {
    /// The URL written back: origin, path and query (and fragment, if any), never user-info.
    pub fn href(&self) -> String {
        let mut out = origin(self);
        out.push_str(&self.path);
        if let Some(q) = &self.query {
            out.push('?');
            out.push_str(q);
        }
        if let Some(f) = &self.fragment {
            out.push('#');
            out.push_str(f);
        }
        out
    }
}

/// Parses an absolute URL of the form `scheme://[userinfo@]host[:port][/path][?query][#fragment]`.
///
/// Scheme and host are lower-cased. The refusals (an [`Invalid`], a `config` error once in the
/// OAuth layer) say what is wrong without repeating the URL.
///
/// ```
/// use qbank_connect::util::url::parse_url;
/// let u = parse_url("HTTPS://Auth.QBankConnect.com/token").unwrap();
/// assert_eq!((u.scheme.as_str(), u.host.as_str(), u.path.as_str()), ("https", "auth.qbankconnect.com", "/token"));
/// ```
pub fn parse_url(s: &str) -> Result<ParsedUrl, Invalid> {
    parse(s).map_err(|why| why.about("", "invalid URL: "))
}

/// The parser itself; the error is the reason, to be prefixed by the caller.
pub(crate) fn parse(s: &str) -> Result<ParsedUrl, Invalid> {
    if s.is_empty() {
        return Err(Invalid::new("it is empty"));
    }
    check_raw_chars(s)?;
    let colon = s.find(':').ok_or(Invalid::new(
        "it has no scheme; write it in full, like https://host/path",
    ))?;
    let scheme = sub(s, 0, colon);
    if !is_scheme(scheme) {
        return Err(Invalid::new(
            "it does not start with a scheme; write it in full, like https://host/path",
        ));
    }
    let rest = tail(s, colon + 1).strip_prefix("//").ok_or(Invalid::new(
        "the scheme must be followed by //, like https://host/path",
    ))?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = sub(rest, 0, authority_end);
    // The last '@' by a byte loop (`rfind` links core's word-at-a-time memrchr).
    let (has_userinfo, host_port) = match authority.bytes().rposition(|b| b == b'@') {
        Some(at) => (true, tail(authority, at + 1)),
        None => (false, authority),
    };
    let (host, port) = parse_host_port(host_port)?;
    let (path, query, fragment) = split_path_query_fragment(tail(rest, authority_end))?;
    Ok(ParsedUrl {
        scheme: scheme.to_ascii_lowercase(),
        host,
        port,
        path,
        query,
        fragment,
        has_userinfo,
    })
}

/// `scheme://host[:port]`, with the default port of `http` (80) and `https` (443) left out.
///
/// Two URLs with the same origin string are the same origin in the browser sense.
pub fn origin(url: &ParsedUrl) -> String {
    let mut out = concat(&[&url.scheme, "://", &url.host]);
    let default = match url.scheme.as_str() {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    };
    if let Some(port) = url.port {
        if Some(port) != default {
            out.push(':');
            push_u64(&mut out, u64::from(port));
        }
    }
    out
}

/// Whether `host` certainly names this machine: `localhost`, a dotted quad in 127.0.0.0/8, or
/// `[::1]` (in any spelling of that address).
///
/// Deliberately *not* loopback: `*.localhost` (RFC 6761 asks resolvers to answer loopback, but
/// Node, Deno and Bun ask the operating system's resolver, which may send the name to DNS),
/// `localhost.` and `localhost.evil.example`, the short and numeric forms `127.1`, `2130706433`,
/// `0x7f.0.0.1`, `0177.0.0.1`, and IPv4-mapped `[::ffff:127.0.0.1]`.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return parse_ipv6(inner) == Some([0, 0, 0, 0, 0, 0, 0, 1]);
    }
    matches!(parse_ipv4(host), Some([127, _, _, _]))
}

/// Checks a configured endpoint (the token URL, the API base) and returns it parsed.
///
/// `what` is the option name that begins every refusal (`"tokenUrl"`). Refused, each with a message
/// saying what to fix: anything [`parse_url`] refuses, a scheme other than `https`, `http`
/// (accepted only for a loopback host and only when `allow_insecure_http`), user-info, a
/// fragment, and a query unless `allow_query`.
pub fn check_endpoint_url(
    what: &'static str,
    s: &str,
    allow_insecure_http: bool,
    allow_query: bool,
) -> Result<ParsedUrl, Invalid> {
    const LEAD: &str = " is not a usable URL: ";
    let fail = |why: &'static str| Invalid::new(why).about(what, LEAD);
    let url = parse(s).map_err(|why| why.about(what, LEAD))?;
    match url.scheme.as_str() {
        "https" => {}
        "http" if !is_loopback_host(&url.host) => {
            return Err(fail(
                "it uses http://, which would send credentials and tokens in clear text; use \
                 https:// (http:// is allowed only for a test server on a loopback host \
                 (localhost, 127.x.x.x or [::1]) with allowInsecureHttp: true)",
            ))
        }
        "http" if !allow_insecure_http => {
            return Err(fail(
                "it uses http://; use https://, or, for a local test server, set \
                 allowInsecureHttp: true (it is honoured only for the loopback hosts \
                 localhost, 127.x.x.x and [::1])",
            ))
        }
        "http" => {}
        _ => return Err(fail("it must start with https://")),
    }
    if url.has_userinfo {
        return Err(fail(
            "it contains user-info (name:password@ before the host); remove it and pass \
             credentials as clientId and clientSecret",
        ));
    }
    if url.fragment.is_some() {
        return Err(fail(
            "it contains a #fragment, which is never sent to a server; remove it",
        ));
    }
    if url.query.is_some() && !allow_query {
        return Err(fail(
            "it contains a ?query, which is not allowed here; remove it",
        ));
    }
    Ok(url)
}

/// Refuses the characters on which URL parsers disagree, or which are never valid.
pub(crate) fn check_raw_chars(s: &str) -> Result<(), Invalid> {
    for b in s.bytes() {
        match b {
            b' ' => return Err(Invalid::new("it contains a space; remove it or percent-encode it as %20")),
            0..=0x1f | 0x7f => {
                return Err(Invalid::new(
                    "it contains a control character such as a line break or a tab; remove it \
                     (a trailing newline from a file or an environment variable is the usual cause)"
                ))
            }
            0x80..=0xff => {
                return Err(Invalid::new(
                    "it contains a non-ASCII character; percent-encode it, and write an \
                     international host name in its xn-- form"
                ))
            }
            b'\\' => {
                return Err(Invalid::new("it contains a backslash, which URL parsers read differently; use /"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// RFC 3986 `sub-delims`.
pub(crate) fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

fn parse_host_port(host_port: &str) -> Result<(String, Option<u16>), Invalid> {
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let close = bracketed
            .find(']')
            .ok_or(Invalid::new("an IPv6 address is missing its closing ]"))?;
        let groups = parse_ipv6(sub(bracketed, 0, close)).ok_or(Invalid::new(
            "the IPv6 address between [ ] is not valid (zone ids are not supported)",
        ))?;
        let after = tail(bracketed, close + 1);
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => {
                return Err(Invalid::new(
                    "unexpected text after ]; write [address]:port",
                ))
            }
        };
        (ipv6_host(&groups), port)
    } else {
        let (host, port) = match host_port.find(':') {
            Some(i) => (sub(host_port, 0, i), Some(tail(host_port, i + 1))),
            None => (host_port, None),
        };
        check_reg_name(host)?;
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        Some(p) => Some(parse_port(p)?),
        None => None,
    };
    Ok((host, port))
}

/// An IPv6 address in brackets, written as WHATWG `URL` (and so `fetch`) writes it: lower-case
/// hex without leading zeros, the first longest run of two or more zero groups as `::`, and no
/// dotted-quad tail (`[::FFFF:1.2.3.4]` is `[::ffff:102:304]`).
fn ipv6_host(groups: &[u16; 8]) -> String {
    // (start, length) of the first longest run of zero groups; none shorter than 2 counts.
    let mut run = (groups.len(), 1);
    let mut i = 0;
    while i < groups.len() {
        let start = i;
        while groups.get(i) == Some(&0) {
            i += 1;
        }
        if i - start > run.1 {
            run = (start, i - start);
        }
        i += 1;
    }
    let mut out = String::from("[");
    let mut digits = String::new();
    let mut i = 0;
    while let Some(&group) = groups.get(i) {
        if i == run.0 {
            out.push_str(if i == 0 { "::" } else { ":" });
            i += run.1;
            continue;
        }
        digits.clear();
        for b in group.to_be_bytes() {
            push_hex(&mut digits, b, true);
        }
        let significant = digits.trim_start_matches('0');
        out.push_str(if significant.is_empty() {
            "0"
        } else {
            significant
        });
        i += 1;
        if i < groups.len() {
            out.push(':');
        }
    }
    out.push(']');
    out
}

fn parse_port(p: &str) -> Result<u16, Invalid> {
    if p.is_empty() {
        return Err(Invalid::new(
            "the port after : is empty; remove the : or give a port number",
        ));
    }
    const BAD: &str =
        "the port must be a number from 1 to 65535 (an IPv6 address goes in brackets: https://[::1]:8443/)";
    if p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Invalid::new(BAD));
    }
    let n = p.bytes().fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
    match u16::try_from(n) {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(Invalid::new(BAD)),
    }
}

fn check_reg_name(host: &str) -> Result<(), Invalid> {
    if host.is_empty() {
        return Err(Invalid::new("the host is empty"));
    }
    if host.len() > 253 {
        return Err(Invalid::new("the host name is longer than 253 characters"));
    }
    let mut last = "";
    for label in host.split('.') {
        if label.is_empty() {
            return Err(Invalid::new(
                "the host name has an empty label (a leading or trailing dot, or two dots in a row)"
            ));
        }
        if label.len() > 63 {
            return Err(Invalid::new(
                "a label of the host name is longer than 63 characters",
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Invalid::new(
                "the host contains a character that is not allowed (only letters, digits, -, _ \
                 and dots; an IPv6 address goes in brackets)",
            ));
        }
        if sub(label, 0, 4).eq_ignore_ascii_case("xn--") && !is_plain_punycode(tail(label, 4)) {
            return Err(Invalid::new(
                "the host has an xn-- label that URL parsers may read differently: it is not \
                 the Punycode of lower-case letters (Latin, Greek, Cyrillic, kana, CJK or \
                 Hangul); write the name's xn-- form exactly, or use an ASCII host name",
            ));
        }
        last = label;
    }
    // WHATWG parsers read a host ending in a number as an IPv4 address in one of several forms
    // (`127.1`, `0x7f.1`, `2130706433`); only the plain dotted quad means the same everywhere.
    let last = last.as_bytes();
    let numeric = last.iter().all(u8::is_ascii_digit)
        || (last.len() >= 2
            && last[0] == b'0'
            && (last[1] | 0x20) == b'x'
            && last[2..].iter().all(u8::is_ascii_hexdigit));
    if numeric && parse_ipv4(host).is_none() {
        return Err(Invalid::new(
            "an IPv4 address must be four decimal numbers from 0 to 255 without leading zeros, \
             like 127.0.0.1",
        ));
    }
    Ok(())
}

/// Whether `encoded` (a host label after its `xn--`) is RFC 3492 Punycode of a name with at
/// least one non-ASCII character, all of them lower-case letters of a few scripts that WHATWG
/// `URL` accepts in a host as they are (IDNA, UTS 46; each one checked against Node's `URL` by
/// `tests/js/url-differential.test.mjs`): no upper-case or compatibility
/// characters (mapped to others, so refused in an `xn--` label), no combining marks, joiners
/// or right-to-left letters (rules on their neighbours), no `ß` or `ς` (read differently by
/// older IDNA). The letters' order does not matter then, so only the code points are decoded.
fn is_plain_punycode(encoded: &str) -> bool {
    let bytes = encoded.as_bytes();
    let (basic, deltas) = match bytes.iter().rposition(|&b| b == b'-') {
        Some(dash) => (sub(encoded, 0, dash), tail(encoded, dash + 1)),
        None => ("", encoded),
    };
    let basic_ok = basic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if deltas.is_empty() || !basic_ok {
        // All ASCII (parsers disagree on such a label), or a _ among the letters.
        return false;
    }
    // A label is at most 63 bytes, so at most 63 code points: past LIMIT, `i / len` alone would
    // take `n` out of Unicode. Below it, nothing here can overflow a u32.
    const LIMIT: u32 = 0x11_0000 * 64;
    let (mut n, mut i, mut bias) = (0x80u32, 0u32, 72u32);
    let mut len = basic.len() as u32;
    let mut digits = deltas.bytes();
    while digits.len() > 0 {
        let old_i = i;
        let (mut weight, mut k) = (1u32, 36u32);
        loop {
            let digit = match digits.next().map(|b| b.to_ascii_lowercase()) {
                Some(b @ b'a'..=b'z') => u32::from(b - b'a'),
                Some(b @ b'0'..=b'9') => u32::from(b - b'0') + 26,
                _ => return false,
            };
            i += digit * weight;
            let threshold = k.saturating_sub(bias).clamp(1, 26);
            if i > LIMIT {
                return false;
            }
            if digit < threshold {
                break;
            }
            weight *= 36 - threshold;
            if weight > LIMIT {
                return false;
            }
            k += 36;
        }
        len += 1;
        bias = punycode_bias(i - old_i, len, old_i == 0);
        n += i / len;
        if !is_plain_idn_letter(n) {
            return false;
        }
        i = i % len + 1;
    }
    true
}

/// RFC 3492's bias adaptation.
fn punycode_bias(delta: u32, points: u32, first: bool) -> u32 {
    let mut delta = if first { delta / 700 } else { delta / 2 };
    delta += delta / points;
    let mut k = 0;
    while delta > 455 {
        delta /= 35;
        k += 36;
    }
    k + 36 * delta / (delta + 38)
}

/// The letters [`is_plain_punycode`] accepts: each one valid as it is under UTS 46 (not mapped,
/// not a deviation), in NFC, and left to right.
fn is_plain_idn_letter(c: u32) -> bool {
    match c {
        0xe0..=0xf6 | 0xf8..=0xff => true,         // à … ö, ø … ÿ
        0x100..=0x137 => c % 2 == 1 && c != 0x133, // ā … ķ, ı; not ĳ
        0x138 => true,                             // ĸ
        0x139..=0x148 => c % 2 == 0 && c != 0x140, // ĺ … ň; not ŀ
        0x14a..=0x177 => c % 2 == 1,               // ŋ … ŷ
        0x179..=0x17e => c % 2 == 0,               // ź ż ž
        0x3ac..=0x3ce => c != 0x3c2,               // Greek lower case; not final ς
        0x430..=0x45f => true,                     // Cyrillic lower case
        0x3041..=0x3096 | 0x30a1..=0x30fa => true, // Hiragana, Katakana
        0x4e00..=0x9fa5 => true,                   // CJK unified ideographs of Unicode 1.1
        0xac00..=0xd7a3 => true,                   // Hangul syllables
        _ => false,
    }
}

/// A dotted quad: exactly four decimal parts, 0 to 255, no leading zeros.
fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for slot in out.iter_mut() {
        let part = parts.next()?.as_bytes();
        if part.is_empty()
            || part.len() > 3
            || (part.len() > 1 && part[0] == b'0')
            || !part.iter().all(u8::is_ascii_digit)
        {
            return None;
        }
        let n = part.iter().fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
        *slot = u8::try_from(n).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(out)
}

/// An IPv6 address (RFC 4291 text form, with an optional dotted-quad tail), without brackets.
fn parse_ipv6(s: &str) -> Option<[u16; 8]> {
    let mut out = [0u16; 8];
    match find_bytes(s.as_bytes(), b"::") {
        None => {
            if parse_groups(s, &mut out)? != 8 {
                return None;
            }
        }
        Some(i) => {
            let (head, rest) = (sub(s, 0, i), tail(s, i + 2));
            if head.contains('.') {
                return None;
            }
            let mut head_groups = [0u16; 8];
            let mut tail_groups = [0u16; 8];
            let nh = parse_groups(head, &mut head_groups)?;
            let nt = parse_groups(rest, &mut tail_groups)?;
            if nh + nt > 7 {
                return None;
            }
            out[..nh].copy_from_slice(&head_groups[..nh]);
            out[8 - nt..].copy_from_slice(&tail_groups[..nt]);
        }
    }
    Some(out)
}

/// Parses `h16 *( ":" h16 )` with an optional IPv4 tail into `out`; returns the group count.
fn parse_groups(side: &str, out: &mut [u16; 8]) -> Option<usize> {
    if side.is_empty() {
        return Some(0);
    }
    let mut n = 0;
    let mut parts = side.split(':').peekable();
    while let Some(part) = parts.next() {
        if part.contains('.') {
            // Only the last part may be a dotted quad, and it fills two groups.
            let v4 = parse_ipv4(part)?;
            if parts.peek().is_some() || n + 2 > 8 {
                return None;
            }
            out[n] = u16::from_be_bytes([v4[0], v4[1]]);
            out[n + 1] = u16::from_be_bytes([v4[2], v4[3]]);
            n += 2;
        } else {
            if part.is_empty() || part.len() > 4 || n >= 8 {
                return None;
            }
            let mut group = 0u16;
            for b in part.bytes() {
                group = (group << 4) | u16::from(hex_value(b)?);
            }
            out[n] = group;
            n += 1;
        }
    }
    Some(n)
}

/// Splits `[/path][?query][#fragment]` (already free of whitespace, controls and backslashes)
/// and checks each part's characters and the path's segments.
pub(crate) fn split_path_query_fragment(
    rest: &str,
) -> Result<(String, Option<String>, Option<String>), Invalid> {
    let (before_fragment, fragment) = match rest.find('#') {
        Some(i) => (sub(rest, 0, i), Some(tail(rest, i + 1))),
        None => (rest, None),
    };
    let (path, query) = match before_fragment.find('?') {
        Some(i) => (
            sub(before_fragment, 0, i),
            Some(tail(before_fragment, i + 1)),
        ),
        None => (before_fragment, None),
    };
    check_part(path, false)?;
    if path.split('/').any(is_dot_segment) {
        return Err(Invalid::new(
            "its path has a . or .. segment, which would be resolved away before sending; \
             write the path without it",
        ));
    }
    if let Some(q) = query {
        check_part(q, true)?;
        if q.contains('\'') {
            // WHATWG `URL` (so `fetch`) sends ' in the query of an http(s) URL as %27.
            return Err(Invalid::new(
                "its query contains ', which fetch would send as %27; write it as %27",
            ));
        }
    }
    if let Some(f) = fragment {
        check_part(f, true)?;
    }
    let path = if path.is_empty() { "/" } else { path };
    Ok((
        path.into(),
        query.map(String::from),
        fragment.map(String::from),
    ))
}

/// RFC 3986 characters of a path (`pchar` and `/`) or of a query or fragment (also `?`, and
/// the `[` `]` that many APIs use in query names), with well-formed percent-escapes.
fn check_part(part: &str, query_like: bool) -> Result<(), Invalid> {
    let bytes = part.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let well_formed = matches!(
                (bytes.get(i + 1), bytes.get(i + 2)),
                (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit()
            );
            if !well_formed {
                return Err(Invalid::new(
                    "it has a % that is not followed by two hex digits; write % as %25",
                ));
            }
            i += 3;
            continue;
        }
        let allowed = is_unreserved(b)
            || is_sub_delim(b)
            || matches!(b, b':' | b'@' | b'/')
            || (query_like && matches!(b, b'?' | b'[' | b']'));
        if !allowed {
            return Err(Invalid::new(
                "it contains a character that must be percent-encoded (one of \" < > ^ ` { | } \
                 # or, in the path, [ ])",
            ));
        }
        i += 1;
    }
    Ok(())
}

/// `.` or `..`, also with the dots percent-encoded (WHATWG parsers resolve `%2e%2e` too).
fn is_dot_segment(segment: &str) -> bool {
    [".", "..", "%2e", ".%2e", "%2e.", "%2e%2e"]
        .iter()
        .any(|d| segment.eq_ignore_ascii_case(d))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    // That these refusals become `config` errors is tested where the conversion lives
    // (`oauth::error`).
    fn reason(s: &str) -> String {
        match parse_url(s) {
            Ok(u) => panic!("{s:?} was accepted as {u:?}"),
            Err(e) => e.message(),
        }
    }

    #[test]
    fn parses_every_part_of_a_full_url() {
        let u = parse_url("https://user:pw@api.example:8443/v1/x?y=1&z[]=2#frag").unwrap();
        assert_eq!(u.scheme, "https");
        assert_eq!(u.host, "api.example");
        assert_eq!(u.port, Some(8443));
        assert_eq!(u.path, "/v1/x");
        assert_eq!(u.query.as_deref(), Some("y=1&z[]=2"));
        assert_eq!(u.fragment.as_deref(), Some("frag"));
        assert!(u.has_userinfo);
    }

    #[test]
    fn scheme_and_host_are_lower_cased_but_the_path_is_not() {
        let u = parse_url("HTTPS://Auth.QBankConnect.com/Token").unwrap();
        assert_eq!(u.scheme, "https");
        assert_eq!(u.host, "auth.qbankconnect.com");
        assert_eq!(u.path, "/Token");
    }

    #[test]
    fn empty_path_becomes_slash_and_empty_query_is_kept() {
        let u = parse_url("https://h").unwrap();
        assert_eq!((u.path.as_str(), u.query.as_deref()), ("/", None));
        let u = parse_url("https://h?").unwrap();
        assert_eq!((u.path.as_str(), u.query.as_deref()), ("/", Some("")));
    }

    #[test]
    fn userinfo_is_detected_and_the_host_is_after_the_last_at() {
        let u = parse_url("https://a@b@good.example/").unwrap();
        assert!(u.has_userinfo);
        assert_eq!(u.host, "good.example");
        let u = parse_url("https://@h/").unwrap();
        assert!(u.has_userinfo);
        assert!(!parse_url("https://h/a@b").unwrap().has_userinfo);
    }

    #[test]
    fn ipv6_hosts_keep_brackets_and_are_lower_cased() {
        let u = parse_url("http://[::1]:8080/t").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("[::1]", Some(8080)));
        let u = parse_url("https://[2001:DB8::A]/").unwrap();
        assert_eq!(u.host, "[2001:db8::a]");
        let u = parse_url("https://[::ffff:192.0.2.1]/").unwrap();
        assert_eq!(u.host, "[::ffff:c000:201]");
    }

    #[test]
    fn ipv6_hosts_are_written_as_whatwg_url_writes_them() {
        // Each pair: what was configured, what `new URL(…).host` is (so what fetch requests).
        for (written, whatwg) in [
            ("[0:0:0:0:0:0:0:1]", "[::1]"),
            ("[::0:1]", "[::1]"),
            ("[::0000]", "[::]"),
            ("[0::]", "[::]"),
            ("[1:0:5092:FFFF:0::0:0]", "[1:0:5092:ffff::]"),
            ("[0:b2:0::1:0:55eb]", "[0:b2::1:0:55eb]"),
            ("[1:0:0:2:0:0:0:3]", "[1:0:0:2::3]"),
            ("[0:0:1:0:0:1:0:0]", "[::1:0:0:1:0:0]"),
            ("[1:0:2:0:3:0:4:0]", "[1:0:2:0:3:0:4:0]"),
            ("[1:2:3:4:5:6:7:8]", "[1:2:3:4:5:6:7:8]"),
            ("[0001:0db8::00a0]", "[1:db8::a0]"),
            ("[::ffff:10.237.190.128]", "[::ffff:aed:be80]"),
            (
                "[5272::0000:0074:0:210.30.104.212]",
                "[5272::74:0:d21e:68d4]",
            ),
        ] {
            let u = parse_url(&concat(&["https://", written, ":8443/x"])).unwrap();
            assert_eq!(u.host, whatwg, "{written}");
            assert_eq!(u.href(), concat(&["https://", whatwg, ":8443/x"]));
        }
        // Still loopback (and only that) in any spelling.
        let u = check_endpoint_url("tokenUrl", "http://[0:0:0:0:0:0:0:1]:9/t", true, false);
        assert_eq!(u.unwrap().href(), "http://[::1]:9/t");
        assert!(
            check_endpoint_url("tokenUrl", "http://[::ffff:127.0.0.1]/t", true, false).is_err()
        );
    }

    #[test]
    fn xn_labels_must_be_punycode_of_plain_lower_case_letters() {
        for (written, host) in [
            ("xn--bcher-kva.example", "xn--bcher-kva.example"), // bücher
            ("XN--BCHER-KVA.Example", "xn--bcher-kva.example"),
            ("api.xn--tda", "api.xn--tda"),         // ü
            ("xn--4xa.example", "xn--4xa.example"), // σ
            ("xn--80akhbyknj4f.example", "xn--80akhbyknj4f.example"), // испытание
            ("xn--fsqu00a.example", "xn--fsqu00a.example"), // 例子
            ("xn--zckzah.example", "xn--zckzah.example"), // テスト
            ("xn--3e0b707e.example", "xn--3e0b707e.example"), // 한국
            ("xn--wgv71a119e.example", "xn--wgv71a119e.example"), // 日本語
            ("xn--2da5j.example", "xn--2da5j.example"), // łą
        ] {
            let u = parse_url(&concat(&["https://", written, "/"])).unwrap();
            assert_eq!(u.host, host, "{written}");
        }
        for written in [
            "xn--",             // nothing encoded
            "xn---",            // an empty name
            "xn--a",            // not Punycode (ends inside a number)
            "xn--zz",           // not Punycode
            "xn--ab-",          // all ASCII: "ab"
            "xn--a_b-kva",      // _ among the ASCII letters
            "xn--wca",          // Ü: upper case, mapped
            "xn--zca",          // ß: read differently by older IDNA
            "xn--3xa",          // ς: the same
            "xn--1ug",          // a zero-width joiner
            "xn--a-xbb",        // a combining accent
            "xn--a-zhc",        // Hebrew, right to left
            "xn--sba",          // µ: mapped to μ
            "xn--im6c",         // ﬀ: a compatibility ligature
            "xn--e28h",         // an emoji
            "xn--kba",          // a soft hyphen
            "xn--99999999999a", // a number past every code point
        ] {
            assert!(
                reason(&concat(&["https://", written, ".example/"])).contains("xn--"),
                "{written}"
            );
        }
    }

    #[test]
    fn bad_ipv6_literals_are_refused() {
        for s in [
            "https://[::1/",
            "https://[]/",
            "https://[1:2:3:4:5:6:7:8:9]/",
            "https://[1::2::3]/",
            "https://[:::]/",
            "https://[12345::]/",
            "https://[fe80::1%25eth0]/",
            "https://[::1]x/",
            "https://[1:2:3:4:5:6:7::8]/",
            "https://[1.2.3.4::]/",
            "https://::1/",
        ] {
            reason(s);
        }
    }

    #[test]
    fn ports_are_checked() {
        assert_eq!(parse_url("https://h:65535/").unwrap().port, Some(65535));
        assert_eq!(parse_url("https://h:0443/").unwrap().port, Some(443));
        for s in [
            "https://h:/",
            "https://h:0/",
            "https://h:65536/",
            "https://h:123456/",
            "https://h:-1/",
            "https://h:8a/",
            "https://h:1:2/",
        ] {
            assert!(reason(s).contains("port"), "{s}");
        }
    }

    #[test]
    fn empty_host_is_refused() {
        for s in [
            "https:///token",
            "https://:443/",
            "https://user@/",
            "https://",
        ] {
            assert!(reason(s).contains("host is empty"), "{s}");
        }
    }

    #[test]
    fn host_labels_are_checked() {
        for s in [
            "https://a..b/",
            "https://.a/",
            "https://a./",
            "https://a%2eb/",
            "https://a!b/",
        ] {
            reason(s);
        }
        assert_eq!(
            parse_url("https://my_service-1.internal/").unwrap().host,
            "my_service-1.internal"
        );
    }

    #[test]
    fn numeric_hosts_must_be_plain_dotted_quads() {
        assert_eq!(parse_url("http://10.0.0.255/").unwrap().host, "10.0.0.255");
        for s in [
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f.0.0.1/",
            "http://0177.0.0.1/",
            "http://1.2.3.256/",
            "http://1.2.3.4.5/",
            "http://a.0x/",
        ] {
            assert!(reason(s).contains("IPv4"), "{s}");
        }
        // A name that only *starts* with a dotted quad is a DNS name, not an address.
        assert_eq!(
            parse_url("http://127.0.0.1.nip.io/").unwrap().host,
            "127.0.0.1.nip.io"
        );
    }

    #[test]
    fn scheme_must_be_followed_by_double_slash() {
        for s in [
            "https:evil.example",
            "https:/evil.example",
            "evil.example/x",
            "/x",
            "1http://h/",
        ] {
            reason(s);
        }
    }

    #[test]
    fn whitespace_controls_backslashes_and_non_ascii_are_refused() {
        assert!(reason("https://h/token\n").contains("control character"));
        assert!(reason("https://h/a b").contains("space"));
        assert!(reason(" https://h/").contains("space"));
        assert!(reason("https://h\t/").contains("control"));
        assert!(reason("https://evil.example\\@good.example/").contains("backslash"));
        assert!(reason("https://h/caf\u{e9}").contains("non-ASCII"));
        assert!(reason("https://b\u{fc}cher.example/").contains("xn--"));
    }

    #[test]
    fn bad_percent_escapes_and_unsafe_characters_are_refused() {
        assert!(reason("https://h/a%2").contains("two hex digits"));
        assert!(reason("https://h/a%zz").contains("two hex digits"));
        assert!(reason("https://h/a\"b").contains("percent-encoded"));
        assert!(reason("https://h/a[b]").contains("percent-encoded"));
        assert!(reason("https://h/a#b#c").contains("percent-encoded"));
        assert_eq!(parse_url("https://h/a%2Fb").unwrap().path, "/a%2Fb");
    }

    #[test]
    fn a_quote_in_the_query_is_refused_because_fetch_would_send_it_as_27() {
        for s in [
            "https://h/a?name=O'Brien",
            "https://h/?'",
            "https://h?a=%27&b='",
        ] {
            let why = reason(s);
            assert!(why.contains("%27"), "{s}: {why}");
            assert!(!why.contains("Brien"), "{why}");
        }
        let u = parse_url("https://h/O'Brien?name=O%27Brien#it's").unwrap();
        assert_eq!(u.path, "/O'Brien");
        assert_eq!(u.query.as_deref(), Some("name=O%27Brien"));
        assert_eq!(u.fragment.as_deref(), Some("it's"));
    }

    #[test]
    fn dot_segments_are_refused_in_any_spelling() {
        for s in [
            "https://h/a/../b",
            "https://h/./b",
            "https://h/a/..",
            "https://h/a/%2e%2E/b",
            "https://h/a/.%2e",
            "https://h/a/%2E",
        ] {
            assert!(reason(s).contains(". or .."), "{s}");
        }
        assert_eq!(parse_url("https://h/a/...b/.x").unwrap().path, "/a/...b/.x");
    }

    #[test]
    fn error_messages_never_repeat_the_url() {
        let msg = reason("https://user:hunter2@h/\n");
        assert!(!msg.contains("hunter2"));
        let err =
            check_endpoint_url("tokenUrl", "https://user:hunter2@h/", false, false).unwrap_err();
        assert!(!err.message().contains("hunter2"));
    }

    #[test]
    fn origin_drops_default_ports_only() {
        let o = |s: &str| origin(&parse_url(s).unwrap());
        assert_eq!(o("https://H:443/x"), "https://h");
        assert_eq!(o("http://h:80/x"), "http://h");
        assert_eq!(o("https://h:80/x"), "https://h:80");
        assert_eq!(o("http://[::1]:8080/x"), "http://[::1]:8080");
        assert_eq!(o("wss://h:443/"), "wss://h:443");
    }

    #[test]
    fn href_writes_back_without_userinfo() {
        let u = parse_url("HTTPS://u:p@H:443/a?b#c").unwrap();
        assert_eq!(u.href(), "https://h/a?b#c");
    }

    #[test]
    fn loopback_hosts_are_exactly_localhost_127_slash_8_and_ipv6_one() {
        for h in [
            "localhost",
            "LocalHost",
            "127.0.0.1",
            "127.255.255.254",
            "127.1.2.3",
            "[::1]",
            "[0:0:0:0:0:0:0:1]",
            "[::0:1]",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "localhost.evil.example",
            "localhost.",
            "api.localhost",
            "127.0.0.1.nip.io",
            "127.1",
            "2130706433",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "127.0.0.01",
            "128.0.0.1",
            "[::2]",
            "[::]",
            "[::ffff:127.0.0.1]",
            "[::1",
            "",
            "evil.example",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn endpoint_accepts_https_in_any_case() {
        let u = check_endpoint_url(
            "tokenUrl",
            "HTTPS://Auth.QBankConnect.com/token",
            false,
            false,
        )
        .unwrap();
        assert_eq!(u.href(), "https://auth.qbankconnect.com/token");
    }

    #[test]
    fn endpoint_refuses_http_to_a_non_loopback_host_even_when_opted_in() {
        for s in [
            "http://auth.qbankconnect.com/token",
            "http://localhost.evil.example/token",
            "http://127.0.0.1.nip.io/token",
        ] {
            let e = check_endpoint_url("tokenUrl", s, true, false).unwrap_err();
            assert!(e.message().starts_with("tokenUrl "), "{}", e.message());
            assert!(e.message().contains("use https://"), "{}", e.message());
            assert!(
                e.message()
                    .contains("only for a test server on a loopback host"),
                "{}",
                e.message()
            );
        }
    }

    #[test]
    fn endpoint_allows_http_on_loopback_only_when_opted_in_and_says_how() {
        let e = check_endpoint_url("tokenUrl", "http://localhost:8080/token", false, false)
            .unwrap_err();
        assert!(
            e.message().contains("allowInsecureHttp: true"),
            "{}",
            e.message()
        );
        assert!(
            e.message().contains("only for the loopback hosts"),
            "{}",
            e.message()
        );
        for s in [
            "http://localhost:8080/token",
            "http://127.0.0.1/token",
            "http://[::1]:9/token",
        ] {
            assert!(
                check_endpoint_url("tokenUrl", s, true, false).is_ok(),
                "{s}"
            );
        }
    }

    #[test]
    fn endpoint_refuses_other_schemes() {
        for s in ["ftp://h/", "wss://h/", "file://h/"] {
            let e = check_endpoint_url("tokenUrl", s, true, true).unwrap_err();
            assert!(e.message().contains("must start with https://"), "{s}");
        }
    }

    #[test]
    fn endpoint_refuses_userinfo() {
        let e = check_endpoint_url("tokenUrl", "https://user:pw@host/", false, true).unwrap_err();
        assert!(e.message().contains("user-info"), "{}", e.message());
        assert!(!e.message().contains("pw@"));
    }

    #[test]
    fn endpoint_refuses_fragments_always_and_queries_unless_allowed() {
        let e = check_endpoint_url("tokenUrl", "https://h/token#x", false, true).unwrap_err();
        assert!(e.message().contains("#fragment"));
        let e = check_endpoint_url("tokenUrl", "https://h/token?x=1", false, false).unwrap_err();
        assert!(e.message().contains("?query"));
        let u = check_endpoint_url("apiBaseUrl", "https://h/api?x=1", false, true).unwrap();
        assert_eq!(u.query.as_deref(), Some("x=1"));
    }

    #[test]
    fn endpoint_passes_parse_errors_through_with_the_option_name() {
        let e = check_endpoint_url("tokenUrl", "https://h/token\n", false, false).unwrap_err();
        assert!(e.message().starts_with("tokenUrl is not a usable URL: "));
        assert!(e.message().contains("trailing newline"));
        let e = check_endpoint_url("tokenUrl", "https://:99999/", false, false).unwrap_err();
        assert!(e.message().contains("host is empty"));
    }

    #[test]
    fn ipv6_parser_reads_groups_and_dotted_tails() {
        assert_eq!(parse_ipv6("::"), Some([0; 8]));
        assert_eq!(parse_ipv6("1::"), Some([1, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(
            parse_ipv6("1:2:3:4:5:6:7:8"),
            Some([1, 2, 3, 4, 5, 6, 7, 8])
        );
        assert_eq!(
            parse_ipv6("::ffff:1.2.3.4"),
            Some([0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304])
        );
        assert_eq!(
            parse_ipv6("1:2:3:4:5:6:1.2.3.4"),
            Some([1, 2, 3, 4, 5, 6, 0x0102, 0x0304])
        );
        assert_eq!(parse_ipv6("1:2:3:4:5:6:7:1.2.3.4"), None);
        assert_eq!(parse_ipv6("::1.2.3.4:5"), None);
        assert_eq!(parse_ipv6(""), None);
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parse_never_panics_on_any_string(s in "\\PC*") {
            let _ = parse_url(&s);
            let _ = check_endpoint_url("tokenUrl", &s, true, true);
            let _ = is_loopback_host(&s);
        }

        #[test]
        fn parse_never_panics_on_url_shaped_strings(
            s in "(https?|HTTP|x)(:|://)[a-zA-Z0-9.:@\\[\\]%/?#_~!$&'()*+,;=-]{0,40}"
        ) {
            if let Ok(u) = parse_url(&s) {
                // Whatever is accepted writes back to something that parses to the same parts.
                let again = parse_url(&u.href()).unwrap();
                prop_assert_eq!(origin(&again), origin(&u));
                prop_assert_eq!(again.path, u.path);
                prop_assert_eq!(again.query, u.query);
            }
        }
    }
}
