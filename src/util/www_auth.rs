//! A tolerant parser for the `WWW-Authenticate` header (RFC 7235 §4.1) and the Bearer error
//! it carries on a 401 or 403 from the API (RFC 6750 §3).
//!
//! The header comes from a server, so the parser never fails and never panics: what it cannot
//! read, up to the next comma, is skipped, and the rest is still read.

use super::sub;
use super::text::words;
use crate::prelude::*;

/// One challenge: a scheme and either auth-params or a token68.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The auth-scheme as written (`Bearer`); compare it case-insensitively.
    pub scheme: String,
    /// The auth-params in order, names lower-cased (they are case-insensitive), values with
    /// quoting and backslash escapes removed.
    pub params: Vec<(String, String)>,
    /// The token68 form (`Negotiate abc==`), which a challenge has instead of params.
    pub token68: Option<String>,
}

impl Challenge {
    /// The first value of a param, by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The RFC 6750 §3 attributes of a `Bearer` challenge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BearerError {
    /// `error`, such as `invalid_token` or `insufficient_scope`.
    pub error: Option<String>,
    /// `error_description`, text for humans from the server.
    pub error_description: Option<String>,
    /// `scope`, split on spaces: the scopes the resource needs.
    pub scope: Option<Vec<String>>,
    /// `realm`.
    pub realm: Option<String>,
}

/// Parses every challenge of a `WWW-Authenticate` value, in order.
///
/// Several challenges may share one header, separated by commas; a comma followed by
/// `name=` continues the current challenge's params, a comma followed by any other token starts
/// a new challenge. Junk is skipped up to the next comma; an unterminated quoted string, or
/// one holding a control character, drops that param.
///
/// ```
/// use qbank_connect::util::www_auth::parse_www_authenticate;
/// let c = parse_www_authenticate(r#"Basic realm="x", Bearer error="invalid_token""#);
/// assert_eq!(c.len(), 2);
/// assert_eq!(c[1].param("error"), Some("invalid_token"));
/// ```
pub fn parse_www_authenticate(header: &str) -> Vec<Challenge> {
    let b = header.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        i = skip_ows_and_commas(b, i);
        if i >= b.len() {
            return out;
        }
        let scheme_end = skip_token(b, i);
        let after = b.get(scheme_end).copied();
        if scheme_end == i || !matches!(after, None | Some(b' ' | b'\t' | b',')) {
            // Not a challenge (`"x"`, `=`, `realm=x` without a scheme): skip it.
            i = skip_junk(b, i);
            continue;
        }
        let mut challenge = Challenge {
            scheme: sub(header, i, scheme_end).into(),
            params: Vec::new(),
            token68: None,
        };
        i = skip_ows(b, scheme_end);
        if i > scheme_end {
            if let Some(next) = read_token68(b, i) {
                challenge.token68 = Some(sub(header, i, next).into());
                i = next;
            } else {
                i = read_params(header, i, &mut challenge.params);
            }
        }
        out.push(challenge);
    }
}

/// The Bearer challenge's RFC 6750 attributes, if the header has a Bearer challenge (scheme
/// compared case-insensitively; the first one wins).
///
/// ```
/// use qbank_connect::util::www_auth::bearer_error;
/// let e = bearer_error(r#"Bearer realm="qbank", error="insufficient_scope", scope="balances.read""#).unwrap();
/// assert_eq!(e.error.as_deref(), Some("insufficient_scope"));
/// assert_eq!(e.scope, Some(vec!["balances.read".to_string()]));
/// ```
pub fn bearer_error(header: &str) -> Option<BearerError> {
    let challenge = parse_www_authenticate(header)
        .into_iter()
        .find(|c| c.scheme.eq_ignore_ascii_case("Bearer"))?;
    let get = |name: &str| challenge.param(name).map(String::from);
    Some(BearerError {
        error: get("error"),
        error_description: get("error_description"),
        scope: challenge.param("scope").map(words),
        realm: get("realm"),
    })
}

/// Reads `#auth-param` from `i`; returns where the next challenge (or the end) is.
fn read_params(header: &str, mut i: usize, params: &mut Vec<(String, String)>) -> usize {
    let b = header.as_bytes();
    loop {
        i = skip_ows_and_commas(b, i);
        if i >= b.len() {
            return i;
        }
        let name_end = skip_token(b, i);
        if name_end == i {
            i = skip_junk(b, i);
            continue;
        }
        let eq = skip_ows(b, name_end);
        if b.get(eq) != Some(&b'=') {
            // A token not followed by `=` is the scheme of the next challenge.
            return i;
        }
        let name = sub(header, i, name_end).to_ascii_lowercase();
        let v = skip_ows(b, eq + 1);
        let value_end = if b.get(v) == Some(&b'"') {
            match read_quoted(b, v) {
                Some((value, end)) => {
                    params.push((name, value));
                    end
                }
                None => {
                    i = skip_junk(b, v);
                    continue;
                }
            }
        } else {
            let end = skip_token(b, v);
            if end == v {
                i = skip_junk(b, v);
                continue;
            }
            params.push((name, sub(header, v, end).into()));
            end
        };
        i = skip_ows(b, value_end);
        if i < b.len() && b[i] != b',' {
            i = skip_junk(b, i);
        }
    }
}

/// RFC 7230 `tchar`.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

fn skip_token(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_tchar(b[i]) {
        i += 1;
    }
    i
}

fn skip_ows(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t') {
        i += 1;
    }
    i
}

fn skip_ows_and_commas(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b',') {
        i += 1;
    }
    i
}

/// A token68 at `i` if it is followed only by whitespace and then a comma or the end.
fn read_token68(b: &[u8], i: usize) -> Option<usize> {
    let mut end = i;
    while end < b.len()
        && (b[end].is_ascii_alphanumeric()
            || matches!(b[end], b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
    {
        end += 1;
    }
    if end == i {
        return None;
    }
    while end < b.len() && b[end] == b'=' {
        end += 1;
    }
    let after = skip_ows(b, end);
    (after >= b.len() || b[after] == b',').then_some(end)
}

/// A quoted-string starting at the `"` at `i`: its unescaped value and the index after it.
/// `None` if it is not terminated or holds a control character other than a tab.
fn read_quoted(b: &[u8], i: usize) -> Option<(String, usize)> {
    let mut value = Vec::new();
    let mut k = i + 1;
    while k < b.len() {
        let c = match b[k] {
            // Valid UTF-8: the header is a `&str`, and an escape only drops an ASCII backslash
            // (no lossy conversion, which links core's UTF-8 chunking for nothing).
            b'"' => return Some((String::from_utf8(value).ok()?, k + 1)),
            b'\\' => {
                k += 1;
                *b.get(k)?
            }
            c => c,
        };
        if (c < 0x20 && c != b'\t') || c == 0x7f {
            return None;
        }
        value.push(c);
        k += 1;
    }
    None
}

/// Skips unreadable text up to the next comma outside a quoted string (or the end).
fn skip_junk(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        match b[i] {
            b',' => return i,
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    b.len()
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    fn params(c: &Challenge) -> Vec<(&str, &str)> {
        c.params
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn bearer_insufficient_scope_gives_error_realm_and_split_scope() {
        let e = bearer_error(
            r#"Bearer realm="qbank", error="insufficient_scope", scope="balances.read payments.write""#,
        )
        .unwrap();
        assert_eq!(e.realm.as_deref(), Some("qbank"));
        assert_eq!(e.error.as_deref(), Some("insufficient_scope"));
        assert_eq!(e.error_description, None);
        assert_eq!(
            e.scope,
            Some(vec![
                "balances.read".to_string(),
                "payments.write".to_string()
            ])
        );
    }

    #[test]
    fn bearer_is_found_after_another_challenge() {
        let all = parse_www_authenticate(r#"Basic realm="x", Bearer error="invalid_token""#);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].scheme, "Basic");
        assert_eq!(params(&all[0]), [("realm", "x")]);
        assert_eq!(all[1].scheme, "Bearer");
        assert_eq!(params(&all[1]), [("error", "invalid_token")]);
        let e = bearer_error(r#"Basic realm="x", Bearer error="invalid_token""#).unwrap();
        assert_eq!(e.error.as_deref(), Some("invalid_token"));
        assert_eq!(e.realm, None);
    }

    #[test]
    fn scheme_and_param_names_are_case_insensitive() {
        let e =
            bearer_error(r#"bEARER ERROR="invalid_token", Error_Description="expired""#).unwrap();
        assert_eq!(e.error.as_deref(), Some("invalid_token"));
        assert_eq!(e.error_description.as_deref(), Some("expired"));
        assert_eq!(parse_www_authenticate("bEARER")[0].scheme, "bEARER");
    }

    #[test]
    fn no_bearer_challenge_gives_none() {
        assert_eq!(bearer_error(r#"Basic realm="x""#), None);
        assert_eq!(bearer_error(""), None);
        assert_eq!(bearer_error("Bearerish error=x"), None);
    }

    #[test]
    fn bare_bearer_gives_empty_attributes() {
        assert_eq!(bearer_error("Bearer"), Some(BearerError::default()));
        assert_eq!(bearer_error("Bearer , "), Some(BearerError::default()));
    }

    #[test]
    fn empty_and_blank_headers_give_no_challenges() {
        assert!(parse_www_authenticate("").is_empty());
        assert!(parse_www_authenticate(" , ,\t").is_empty());
    }

    #[test]
    fn quoted_strings_lose_quotes_and_backslash_escapes() {
        let c = parse_www_authenticate(r#"Bearer error_description="say \"hi\", a\\b \x""#);
        assert_eq!(params(&c[0]), [("error_description", r#"say "hi", a\b x"#)]);
    }

    #[test]
    fn token_values_and_whitespace_around_equals_are_read() {
        let c = parse_www_authenticate("Bearer error = invalid_token ,realm=api");
        assert_eq!(
            params(&c[0]),
            [("error", "invalid_token"), ("realm", "api")]
        );
    }

    #[test]
    fn token68_challenges_are_kept_apart_from_params() {
        let c = parse_www_authenticate(r#"Negotiate YII+/a==, Bearer realm="r""#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].token68.as_deref(), Some("YII+/a=="));
        assert!(c[0].params.is_empty());
        assert_eq!(c[1].param("realm"), Some("r"));
        assert_eq!(c[1].token68, None);
    }

    #[test]
    fn several_challenges_without_params_are_all_listed() {
        let c = parse_www_authenticate("Negotiate, NTLM, Bearer");
        let schemes: Vec<_> = c.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["Negotiate", "NTLM", "Bearer"]);
    }

    #[test]
    fn unterminated_quote_drops_only_that_param() {
        let e = bearer_error(r#"Bearer realm="qbank", error="invalid_token"#).unwrap();
        assert_eq!(e.realm.as_deref(), Some("qbank"));
        assert_eq!(e.error, None);
    }

    #[test]
    fn control_characters_in_a_quoted_value_drop_that_param() {
        let e =
            bearer_error("Bearer error_description=\"a\r\nX-Injected: 1\", error=invalid_token")
                .unwrap();
        assert_eq!(e.error_description, None);
        assert_eq!(e.error.as_deref(), Some("invalid_token"));
    }

    #[test]
    fn junk_is_skipped_to_the_next_comma() {
        let c = parse_www_authenticate(
            r#"=junk, "quoted, junk", Bearer realm="a" trailing junk, error="invalid_token", =, scope="x""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "Bearer");
        assert_eq!(
            params(&c[0]),
            [("realm", "a"), ("error", "invalid_token"), ("scope", "x")]
        );
    }

    #[test]
    fn non_ascii_in_quoted_values_survives_escapes() {
        let c = parse_www_authenticate("Bearer error_description=\"d\\\u{e9}j\u{e0}\"");
        assert_eq!(c[0].param("error_description"), Some("d\u{e9}j\u{e0}"));
    }

    #[test]
    fn first_of_duplicate_params_wins() {
        let e = bearer_error("Bearer error=a, error=b").unwrap();
        assert_eq!(e.error.as_deref(), Some("a"));
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parser_never_panics_on_any_string(s in "\\PC*") {
            let _ = parse_www_authenticate(&s);
            let _ = bearer_error(&s);
        }

        #[test]
        fn parser_never_panics_on_header_shaped_strings(
            s in "([A-Za-z]{1,8}|[ ,=\"\\\\\t]|[a-z_]{1,6}=(\"[^\"]{0,6}\"?|[a-z]{0,4})){0,12}"
        ) {
            for c in parse_www_authenticate(&s) {
                // Every scheme read is a non-empty token, and every param name too.
                prop_assert!(!c.scheme.is_empty() && c.scheme.bytes().all(is_tchar));
                prop_assert!(c.params.iter().all(|(n, _)| !n.is_empty() && n.bytes().all(is_tchar)));
            }
        }
    }
}
