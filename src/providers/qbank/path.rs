//! Account ids, path segments and the URLs an authorized `fetch(path)` may reach.
//!
//! Every request the API client sends carries the Bearer token, so the URL it goes to is
//! decided here, before anything is sent:
//!
//! - [`check_account_id`] refuses an id that could change the path it is placed in (`/`, `?`,
//!   `#`, `%`, `..`, whitespace, invisible characters, …), and [`percent_encode`]
//!   percent-encodes what is left, so [`account_path_segment`] is always exactly one segment.
//! - [`resolve_api_url`] turns what the caller passed to `fetch` into an absolute URL. A path
//!   is placed under the configured API base URL, **keeping the base path as a prefix**: with
//!   the base `https://api.example.com/qbank/` (or `…/qbank`, the same), `/v1/x` and `v1/x`
//!   both become `https://api.example.com/qbank/v1/x`. This is what API clients' "base URL"
//!   means (axios `baseURL`, ky `prefixUrl`), and unlike RFC 3986 reference resolution it does
//!   not depend on whether the base ends with `/`, nor let a leading `/` drop the prefix. A
//!   full URL is taken as written, and only if it is on the base's origin: the token is never
//!   sent anywhere else.
//!
//! Error messages never repeat a path or URL (it may carry a key in its query), and name at
//! most the first few plain characters of an account id.

use crate::oauth::{Error, ErrorCode};
use crate::prelude::*;
use crate::util::encode::percent_encode;
use crate::util::url::{check_raw_chars, origin, parse, split_path_query_fragment, ParsedUrl};
use crate::util::{concat, find_bytes, push_u64, sub};

/// Longest account id accepted by [`check_account_id`], in bytes of UTF-8.
pub const MAX_ACCOUNT_ID_BYTES: usize = 128;

/// How many characters of a refused account id a message may name.
const PREVIEW_CHARS: usize = 8;

/// What an account id may be, said at the end of every refusal.
const ACCOUNT_ID_RULE: &str = "; an account id is 1 to 128 bytes of printable characters (such \
     as a UUID) without / \\ ? # %, whitespace, control or invisible characters, and is not . \
     and does not contain ..; nothing was sent";

/// Checks that `id` can be placed in a URL path as one segment without changing the path.
///
/// Refused, with [`ErrorCode::InvalidArgument`]: an empty id; one longer than
/// [`MAX_ACCOUNT_ID_BYTES`] bytes; one containing `/`, `\`, `?`, `#` or `%` (so an already
/// encoded `%2F` cannot slip through); a control character (C0, DEL, C1); whitespace (any
/// Unicode white space); an invisible formatting character (zero-width characters,
/// bidirectional overrides and isolates, the byte-order mark), which would make the id look
/// like another; and `.`, or anything containing `..`. Everything else printable is allowed,
/// non-ASCII included: [`percent_encode`] encodes it.
///
/// The message says what is wrong and what is allowed, and names at most the first 8 letters,
/// digits, `-` or `_` of the id, never the rest.
///
/// ```
/// use qbank_connect::providers::qbank::path::check_account_id;
/// assert!(check_account_id("a1b2c3d4-e5f6-7890-1234-567890abcde").is_ok());
/// let e = check_account_id("a1b2c3d4/../../admin").unwrap_err();
/// assert_eq!(e.code.as_str(), "invalid_argument");
/// assert!(!e.message.contains("admin"));
/// ```
pub fn check_account_id(id: &str) -> Result<(), Error> {
    if id.is_empty() {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            concat(&["the account id is empty", ACCOUNT_ID_RULE]),
        ));
    }
    if id.len() > MAX_ACCOUNT_ID_BYTES {
        let mut why = String::from("is ");
        push_u64(&mut why, id.len() as u64);
        why.push_str(" bytes long, more than 128");
        return Err(account_id_error(id, &why));
    }
    for (n, c) in id.chars().enumerate() {
        if let Some(what) = refused_char(c) {
            let mut why = concat(&["contains ", what, " at character "]);
            push_u64(&mut why, n as u64 + 1);
            return Err(account_id_error(id, &why));
        }
    }
    if id == "." {
        return Err(account_id_error(
            id,
            "is '.', which URL parsers remove from a path",
        ));
    }
    if find_bytes(id.as_bytes(), b"..").is_some() {
        return Err(account_id_error(
            id,
            "contains '..', which could climb out of the API path",
        ));
    }
    Ok(())
}

/// Why `c` may not be in an account id, or `None` if it may.
fn refused_char(c: char) -> Option<&'static str> {
    Some(match c {
        '/' => "'/', which would split the API path",
        '\\' => "'\\', which URL parsers read as /",
        '?' => "'?', which would start a query",
        '#' => "'#', which would start a fragment",
        '%' => "'%' (pass the id itself, not percent-encoded: it is encoded for you)",
        c if c.is_whitespace() => "whitespace (a space, tab or line break)",
        c if c.is_control() => "a control character",
        c if is_invisible_format(c) => "an invisible formatting character (zero-width or bidi)",
        _ => return None,
    })
}

/// Characters that print as nothing but change what an id looks like.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'                  // soft hyphen
            | '\u{061c}'            // Arabic letter mark
            | '\u{180e}'            // Mongolian vowel separator
            | '\u{200b}'..='\u{200f}' // zero-width space, (non-)joiner, LRM, RLM
            | '\u{202a}'..='\u{202e}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{206f}' // bidi isolates, deprecated format characters
            | '\u{feff}'            // byte-order mark
    )
}

/// `the account id (starting "a1b2c3d4…") <why><rule>`, naming only a short, plain prefix.
fn account_id_error(id: &str, why: &str) -> Error {
    let mut msg = String::from("the account id ");
    let plain = id
        .char_indices()
        .take(PREVIEW_CHARS)
        .take_while(|&(_, c)| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        .last()
        .map_or(0, |(i, c)| i + c.len_utf8());
    if plain > 0 {
        msg.push_str("(starting \"");
        msg.push_str(sub(id, 0, plain));
        if plain < id.len() {
            msg.push('…');
        }
        msg.push_str("\") ");
    }
    msg.push_str(why);
    msg.push_str(ACCOUNT_ID_RULE);
    Error::new(ErrorCode::InvalidArgument, msg)
}

/// [`check_account_id`], then [`percent_encode`]: the account id as exactly one path
/// segment, ready to put between two `/`.
///
/// ```
/// use qbank_connect::providers::qbank::path::account_path_segment;
/// assert_eq!(account_path_segment("ACC:42@branch").unwrap(), "ACC%3A42%40branch");
/// assert!(account_path_segment("..").is_err());
/// ```
pub fn account_path_segment(id: &str) -> Result<String, Error> {
    check_account_id(id)?;
    Ok(percent_encode(id))
}

/// The absolute URL that an authorized `fetch(path_or_url)` requests, given the configured API
/// base URL (as returned by [`check_endpoint_url`](crate::util::url::check_endpoint_url)).
///
/// - **A path** (`/v1/x`, or `v1/x`, or `?page=2`) is placed under the base, whose path stays
///   as a prefix: the base path without its trailing `/`s, then `/`, then the path without
///   its leading `/`. With the base `https://api.example.com/qbank/` or
///   `https://api.example.com/qbank`, `/v1/x?page=2` becomes
///   `https://api.example.com/qbank/v1/x?page=2`. A path that already starts with the base
///   path gets it twice: pass paths relative to the base, or full URLs.
/// - **A full URL** (anything with a scheme, like `https://…`) is taken as written (with
///   scheme and host lower-cased and a default port left out), but only if its origin
///   (scheme, host and port) is the base's; the base path is not required, since the origin
///   is what the token is scoped to. This is what lets a `next` link from a paged answer be
///   followed.
///
/// The query is kept as given; nothing is added to the URL that was not given.
///
/// Refused with [`ErrorCode::InvalidArgument`], before anything is sent, and without
/// repeating the input: an empty input; a URL on another origin (the Bearer token is only sent
/// to the configured API origin); a scheme-relative `//host/…`; user-info (`user:pw@`);
/// whitespace, control characters, backslashes and non-ASCII characters (percent-encode them,
/// see [`percent_encode`]); `.` and `..` segments in any spelling (`%2e%2E`), which
/// `fetch` would resolve (possibly above the base path) after this check; a `#fragment`,
/// which is never sent; bad percent-escapes and characters that must be encoded. A base with
/// user-info, a query or a fragment is an [`ErrorCode::Config`] error: a query on the base
/// could not be combined with the request's own.
///
/// ```
/// use qbank_connect::providers::qbank::path::resolve_api_url;
/// use qbank_connect::util::url::check_endpoint_url;
/// let base = check_endpoint_url("apiBaseUrl", "https://api.example.com/qbank/", false, false).unwrap();
/// assert_eq!(resolve_api_url(&base, "/v1/accounts?page=2").unwrap(), "https://api.example.com/qbank/v1/accounts?page=2");
/// assert_eq!(resolve_api_url(&base, "HTTPS://API.example.com:443/qbank/v1/x").unwrap(), "https://api.example.com/qbank/v1/x");
/// assert!(resolve_api_url(&base, "https://evil.example/qbank/v1/x").is_err());
/// assert!(resolve_api_url(&base, "//evil.example/x").is_err());
/// ```
pub fn resolve_api_url(base: &ParsedUrl, path_or_url: &str) -> Result<String, Error> {
    if base.has_userinfo || base.query.is_some() || base.fragment.is_some() {
        return Err(Error::config(
            "apiBaseUrl must be a URL without user-info, ?query or #fragment; remove them",
        ));
    }
    let refuse = |why: &str| Err(refused(why));
    if path_or_url.is_empty() {
        return refuse("the API path is empty; pass a path such as /v1/accounts");
    }
    if let Err(why) = check_raw_chars(path_or_url) {
        return refuse(&concat(&["the API path or URL is not usable: ", why.why]));
    }
    if path_or_url.starts_with("//") {
        return refuse(
            "the API path starts with //, which URL parsers read as another host; the Bearer \
             token is only sent to the configured API origin, so start the path with a single /",
        );
    }
    if has_scheme(path_or_url) {
        return resolve_absolute(base, path_or_url);
    }
    // A path with or without its leading `/`, or just `?query`: always one `/` after the base.
    let relative = if path_or_url.starts_with('/') {
        split_path_query_fragment(path_or_url)
    } else {
        split_path_query_fragment(&concat(&["/", path_or_url]))
    };
    let (path, query, fragment) = match relative {
        Ok(parts) => parts,
        Err(why) => return refuse(&concat(&["the API path is not usable: ", why.why])),
    };
    if fragment.is_some() {
        return refuse(
            "the API path has a #fragment, which is never sent to a server; remove it (an id \
             containing # must be percent-encoded)",
        );
    }
    let mut out = origin(base);
    out.push_str(base.path.trim_end_matches('/'));
    out.push_str(&path);
    if let Some(q) = query {
        out.push('?');
        out.push_str(&q);
    }
    Ok(out)
}

/// An API path or URL refused before anything was sent.
fn refused(why: &str) -> Error {
    Error::new(
        ErrorCode::InvalidArgument,
        concat(&[why, "; nothing was sent"]),
    )
}

/// Checks a full URL given to `fetch` against the base.
fn resolve_absolute(base: &ParsedUrl, s: &str) -> Result<String, Error> {
    let url = parse(s).map_err(|why| {
        refused(&concat(&[
            "the API URL is not usable: ",
            why.why,
            " (for a path on the API, start it with /)",
        ]))
    })?;
    if url.has_userinfo {
        return Err(refused(
            "the API URL contains user-info (name:password@ before the host); remove it, the \
             request is authorized with the Bearer token",
        ));
    }
    let allowed = origin(base);
    if origin(&url) != allowed {
        return Err(refused(&concat(&[
            "the API URL is not on the configured API origin ",
            &allowed,
            "; the Bearer token is only sent to the configured API origin (apiBaseUrl), so pass \
             a path such as /v1/accounts or a URL on that origin",
        ])));
    }
    if url.fragment.is_some() {
        return Err(refused(
            "the API URL has a #fragment, which is never sent to a server; remove it",
        ));
    }
    Ok(url.href())
}

/// Whether `s` starts with `scheme:` (RFC 3986 §3.1), which makes it a URL, not a path: a
/// path's first segment may not contain `:` (§4.2), so `v1:x` cannot be sent as a path.
fn has_scheme(s: &str) -> bool {
    let end = s.find(['/', '?', '#']).unwrap_or(s.len());
    sub(s, 0, end).contains(':')
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::util::url::{check_endpoint_url, parse_url};

    const UUID: &str = "a1b2c3d4-e5f6-7890-1234-567890abcde";

    fn refused_id(id: &str) -> String {
        let e = check_account_id(id).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument, "{id:?}");
        assert!(!e.may_have_reached_server);
        assert!(e.message.ends_with("nothing was sent"), "{}", e.message);
        assert!(e.message.contains("1 to 128 bytes"), "{}", e.message);
        e.message.clone()
    }

    fn base(s: &str) -> ParsedUrl {
        check_endpoint_url("apiBaseUrl", s, true, false).unwrap()
    }

    fn resolved(b: &str, p: &str) -> String {
        match resolve_api_url(&base(b), p) {
            Ok(u) => u,
            Err(e) => panic!("{p:?} on {b:?} was refused: {}", e.message),
        }
    }

    fn refused(b: &str, p: &str) -> String {
        match resolve_api_url(&base(b), p) {
            Ok(u) => panic!("{p:?} on {b:?} was accepted as {u}"),
            Err(e) => {
                assert_eq!(e.code, ErrorCode::InvalidArgument, "{p:?}");
                assert!(!e.may_have_reached_server);
                assert!(e.message.ends_with("nothing was sent"), "{}", e.message);
                e.message.clone()
            }
        }
    }

    #[test]
    fn uuids_and_other_printable_ids_are_accepted() {
        for id in [
            UUID,
            "A1B2C3D4-E5F6-7890-1234-567890ABCDEF",
            "0",
            "acc_42",
            "ACC:42@branch",
            "a.b",
            ".hidden",
            "trailing.",
            "~user",
            "konto-\u{e4}\u{f6}\u{fc}",
            "\u{53e3}\u{5ea7}1",
            "a+b=c;d,e!f*g'h(i)j$k&l",
            "\"quoted\"<tag>{x}|y^`z`[0]",
        ] {
            assert!(check_account_id(id).is_ok(), "{id:?}");
        }
        assert!(check_account_id(&"a".repeat(MAX_ACCOUNT_ID_BYTES)).is_ok());
        // The limit is in bytes: 64 two-byte characters fit, 65 do not.
        assert!(check_account_id(&"\u{e9}".repeat(64)).is_ok());
        assert!(refused_id(&"\u{e9}".repeat(65)).contains("130 bytes long"));
    }

    #[test]
    fn empty_and_too_long_ids_are_refused() {
        assert!(refused_id("").starts_with("the account id is empty"));
        let msg = refused_id(&"a".repeat(MAX_ACCOUNT_ID_BYTES + 1));
        assert!(msg.contains("129 bytes long, more than 128"), "{msg}");
    }

    #[test]
    fn path_changing_characters_are_refused_and_named() {
        for (id, named) in [
            ("a/b", "'/'"),
            ("a\\b", "'\\'"),
            ("a?b=1", "'?'"),
            ("a#b", "'#'"),
            ("a%2Fb", "'%'"),
            ("%2e%2e", "'%'"),
            ("a%", "'%'"),
        ] {
            let msg = refused_id(id);
            assert!(msg.contains(named), "{id:?}: {msg}");
        }
    }

    #[test]
    fn dot_ids_are_refused() {
        assert!(refused_id(".").contains("is '.'"));
        for id in ["..", "a..b", "...", "..a", "a.."] {
            assert!(refused_id(id).contains("contains '..'"), "{id:?}");
        }
    }

    #[test]
    fn whitespace_controls_and_invisible_characters_are_refused() {
        for id in [
            "a b",
            " a",
            "a\t",
            "a\n",
            "a\r\n",
            "a\u{a0}b",
            "a\u{2028}",
            "a\u{3000}",
            "a\u{85}",
        ] {
            assert!(refused_id(id).contains("whitespace"), "{id:?}");
        }
        for id in ["a\u{0}", "a\u{1b}[31m", "a\u{7f}", "a\u{80}", "a\u{9f}"] {
            assert!(refused_id(id).contains("control character"), "{id:?}");
        }
        for id in [
            "a\u{200b}",
            "\u{feff}a",
            "a\u{202e}b",
            "a\u{2066}b",
            "a\u{ad}b",
            "a\u{200d}b",
        ] {
            assert!(refused_id(id).contains("invisible"), "{id:?}");
        }
    }

    #[test]
    fn the_refusal_says_where_the_bad_character_is() {
        assert!(refused_id("abc/def").contains("at character 4"));
        assert!(refused_id("\u{e9}\u{e9}?").contains("at character 3"));
    }

    #[test]
    fn messages_name_at_most_a_short_plain_prefix() {
        let msg = refused_id("a1b2c3d4-e5f6/secret-rest");
        assert!(msg.contains("(starting \"a1b2c3d4…\")"), "{msg}");
        assert!(!msg.contains("e5f6"), "{msg}");
        assert!(!msg.contains("secret"), "{msg}");
        // The prefix stops at the first character that is not a letter, digit, - or _.
        let msg = refused_id("ab\u{202e}cd");
        assert!(msg.contains("(starting \"ab…\")"), "{msg}");
        assert!(!msg.contains("cd"), "{msg}");
        assert!(refused_id("x\n").contains("(starting \"x…\")"));
        let long = "b".repeat(200);
        let msg = refused_id(&long);
        assert!(msg.contains("(starting \"bbbbbbbb…\")"), "{msg}");
        assert!(!msg.contains("bbbbbbbbb"), "{msg}");
        // Nothing plain at the start: no prefix at all.
        let msg = refused_id("/etc/passwd");
        assert!(msg.starts_with("the account id contains '/'"), "{msg}");
        assert!(!msg.contains("etc"), "{msg}");
    }

    #[test]
    fn account_path_segment_checks_then_encodes() {
        assert_eq!(account_path_segment(UUID).unwrap(), UUID);
        assert_eq!(
            account_path_segment("konto \u{e4}").unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        assert_eq!(account_path_segment("k\u{e4}").unwrap(), "k%C3%A4");
        assert_eq!(account_path_segment("ACC:42").unwrap(), "ACC%3A42");
        for bad in ["", ".", "..", "a/b", "%2F"] {
            assert!(account_path_segment(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_path_is_placed_under_the_base_path_whatever_the_slashes() {
        for b in [
            "https://api.example.com/qbank/",
            "https://api.example.com/qbank",
            "https://api.example.com/qbank//",
        ] {
            for p in ["/v1/x", "v1/x"] {
                assert_eq!(
                    resolved(b, p),
                    "https://api.example.com/qbank/v1/x",
                    "{b} {p}"
                );
            }
            assert_eq!(resolved(b, "/"), "https://api.example.com/qbank/");
            assert_eq!(resolved(b, "/v1/x/"), "https://api.example.com/qbank/v1/x/");
        }
        assert_eq!(
            resolved("https://api.example.com/a/b", "/c"),
            "https://api.example.com/a/b/c"
        );
    }

    #[test]
    fn a_path_on_a_root_base_is_the_path() {
        for b in ["https://api.example.com", "https://api.example.com/"] {
            assert_eq!(resolved(b, "/v1/x"), "https://api.example.com/v1/x");
            assert_eq!(resolved(b, "v1/x"), "https://api.example.com/v1/x");
            assert_eq!(resolved(b, "/"), "https://api.example.com/");
        }
    }

    #[test]
    fn the_base_origin_is_written_canonically() {
        assert_eq!(
            resolved("HTTPS://API.Example.com:443/QBank", "/v1"),
            "https://api.example.com/QBank/v1"
        );
        assert_eq!(
            resolved("https://api.example.com:8443/", "/v1"),
            "https://api.example.com:8443/v1"
        );
        assert_eq!(
            resolved("http://localhost:8080/api", "/v1"),
            "http://localhost:8080/api/v1"
        );
        assert_eq!(resolved("http://[::1]:9/", "v1"), "http://[::1]:9/v1");
    }

    #[test]
    fn queries_are_kept_as_given() {
        let b = "https://api.example.com/qbank/";
        assert_eq!(
            resolved(b, "/v1/x?page=2&size=10"),
            "https://api.example.com/qbank/v1/x?page=2&size=10"
        );
        assert_eq!(
            resolved(b, "/v1/x?filter[status]=open&q=a%20b"),
            "https://api.example.com/qbank/v1/x?filter[status]=open&q=a%20b"
        );
        assert_eq!(resolved(b, "/v1/x?"), "https://api.example.com/qbank/v1/x?");
        assert_eq!(
            resolved(b, "?page=2"),
            "https://api.example.com/qbank/?page=2"
        );
        assert_eq!(
            resolved(b, "/v1/x?next=/v1/y?z"),
            "https://api.example.com/qbank/v1/x?next=/v1/y?z"
        );
    }

    #[test]
    fn percent_escapes_and_sub_delims_in_a_path_are_kept() {
        let b = "https://h/api";
        assert_eq!(resolved(b, "/v1/a%2Fb"), "https://h/api/v1/a%2Fb");
        assert_eq!(resolved(b, "/v1/x:batch"), "https://h/api/v1/x:batch");
        assert_eq!(resolved(b, "/v1/a@b/c;d=e"), "https://h/api/v1/a@b/c;d=e");
        assert_eq!(resolved(b, "/v1/...x/.y"), "https://h/api/v1/...x/.y");
        // An id that looks like a host name is only a path segment here.
        assert_eq!(
            resolved(b, "evil.example/x"),
            "https://h/api/evil.example/x"
        );
    }

    #[test]
    fn nothing_is_added_that_was_not_given() {
        let b = "https://api.example.com/qbank";
        assert_eq!(resolved(b, "/v1/x"), "https://api.example.com/qbank/v1/x");
        assert!(!resolved(b, "/v1/x").contains('?'));
        assert!(!resolved(b, "/v1/x").ends_with('/'));
        assert_eq!(
            resolved(b, "https://api.example.com/v1/x"),
            "https://api.example.com/v1/x"
        );
    }

    #[test]
    fn a_full_url_on_the_base_origin_is_taken_as_written() {
        let b = "https://api.example.com/qbank/";
        assert_eq!(
            resolved(b, "https://api.example.com/qbank/v1/x?page=3"),
            "https://api.example.com/qbank/v1/x?page=3"
        );
        assert_eq!(
            resolved(b, "HTTPS://API.EXAMPLE.COM:443/qbank/v1/x"),
            "https://api.example.com/qbank/v1/x"
        );
        // The origin is the boundary, not the base path.
        assert_eq!(
            resolved(b, "https://api.example.com/other"),
            "https://api.example.com/other"
        );
        assert_eq!(
            resolved("https://api.example.com:443", "https://api.example.com/x"),
            "https://api.example.com/x"
        );
        assert_eq!(
            resolved("http://localhost:8080/", "http://LOCALHOST:8080/x"),
            "http://localhost:8080/x"
        );
    }

    #[test]
    fn a_full_url_on_another_origin_is_refused_because_of_the_token() {
        let b = "https://api.example.com/qbank/";
        for u in [
            "https://evil.example/qbank/v1/x",
            "https://api.example.com.evil.example/qbank/v1/x",
            "https://evil.example/api.example.com/",
            "http://api.example.com/qbank/v1/x",
            "https://api.example.com:8443/qbank/v1/x",
            "https://api.example.com:80/qbank/v1/x",
            "wss://api.example.com/qbank/v1/x",
            "ftp://api.example.com/qbank/v1/x",
            "https://sub.api.example.com/qbank/v1/x",
            "https://example.com/qbank/v1/x",
        ] {
            let msg = refused(b, u);
            assert!(
                msg.contains("the Bearer token is only sent to the configured API origin"),
                "{u}: {msg}"
            );
            assert!(msg.contains("https://api.example.com;"), "{u}: {msg}");
        }
        let msg = refused("http://localhost:8080", "http://localhost:8081/x");
        assert!(msg.contains("origin http://localhost:8080;"), "{msg}");
    }

    #[test]
    fn userinfo_is_refused_even_on_the_base_origin_and_never_repeated() {
        let b = "https://api.example.com/";
        for u in [
            "https://user:hunter2@api.example.com/x",
            "https://api.example.com@evil.example/x",
            "https://evil.example@api.example.com/x",
            "https://@api.example.com/x",
        ] {
            let msg = refused(b, u);
            assert!(msg.contains("user-info"), "{u}: {msg}");
            assert!(!msg.contains("hunter2"), "{msg}");
            assert!(!msg.contains("evil"), "{msg}");
        }
    }

    #[test]
    fn scheme_relative_urls_are_refused() {
        for p in [
            "//evil.example/x",
            "///evil.example/x",
            "//api.example.com/x",
            "//",
        ] {
            let msg = refused("https://api.example.com/", p);
            assert!(msg.contains("starts with //"), "{p}: {msg}");
            assert!(msg.contains("Bearer token"), "{p}: {msg}");
        }
    }

    #[test]
    fn backslashes_whitespace_controls_and_non_ascii_are_refused() {
        let b = "https://api.example.com/";
        for (p, named) in [
            ("\\\\evil.example/x", "backslash"),
            ("/\\evil.example/x", "backslash"),
            ("/v1\\..\\x", "backslash"),
            ("https:\\\\evil.example/x", "backslash"),
            ("/v1/a b", "space"),
            (" /v1/x", "space"),
            ("/v1/x\n", "control"),
            ("/v1/x\t", "control"),
            ("/v1/\u{0}", "control"),
            ("/v1/\u{7f}", "control"),
            ("/v1/k\u{e4}", "non-ASCII"),
            ("/v1/\u{85}", "non-ASCII"),
            ("/v1/\u{202e}", "non-ASCII"),
        ] {
            let msg = refused(b, p);
            assert!(msg.contains(named), "{p:?}: {msg}");
        }
    }

    #[test]
    fn dot_segments_are_refused_in_any_spelling() {
        let b = "https://api.example.com/qbank/";
        for p in [
            "/..",
            "/../admin",
            "../admin",
            "..",
            "/v1/../../admin",
            "/v1/a/../b",
            "/./v1",
            ".",
            "./v1",
            "/v1/.",
            "/%2e%2e/admin",
            "/%2E%2E/admin",
            "/.%2e/admin",
            "/%2e./admin",
            "/v1/%2e/x",
            "/..?x=1",
            "https://api.example.com/qbank/../admin",
            "https://api.example.com/%2e%2e/admin",
        ] {
            let msg = refused(b, p);
            assert!(msg.contains(". or .."), "{p}: {msg}");
        }
    }

    #[test]
    fn fragments_are_refused() {
        let b = "https://api.example.com/";
        assert!(refused(b, "/v1/x#frag").contains("#fragment"));
        assert!(refused(b, "/v1/x?y#").contains("#fragment"));
        assert!(refused(b, "#frag").contains("#fragment"));
        assert!(refused(b, "https://api.example.com/x#f").contains("#fragment"));
    }

    #[test]
    fn bad_escapes_and_unencoded_characters_are_refused() {
        let b = "https://api.example.com/";
        assert!(refused(b, "/v1/a%2").contains("two hex digits"));
        assert!(refused(b, "/v1/a%zz").contains("two hex digits"));
        assert!(refused(b, "/v1/a%").contains("two hex digits"));
        for p in [
            "/v1/a\"b", "/v1/<x>", "/v1/a[0]", "/v1/{id}", "/v1/a|b", "/v1/a^b",
        ] {
            assert!(refused(b, p).contains("percent-encoded"), "{p}");
        }
    }

    #[test]
    fn a_quote_in_the_query_is_refused_so_fetch_sends_what_was_checked() {
        let b = "https://api.example.com/qbank/";
        for p in [
            "/v1/x?name=O'Brien",
            "?'",
            "https://api.example.com/x?a='b'",
        ] {
            let msg = refused(b, p);
            assert!(msg.contains("%27"), "{p}: {msg}");
            assert!(!msg.contains("Brien"), "{msg}");
        }
        assert_eq!(
            resolved(b, "/v1/O'Brien?name=O%27Brien"),
            "https://api.example.com/qbank/v1/O'Brien?name=O%27Brien"
        );
    }

    #[test]
    fn an_ipv6_origin_is_the_same_in_any_spelling() {
        let b = "http://[0:0:0:0:0:0:0:1]:8080/api/";
        assert_eq!(resolved(b, "/v1/x"), "http://[::1]:8080/api/v1/x");
        assert_eq!(
            resolved(b, "http://[::0:1]:8080/other"),
            "http://[::1]:8080/other"
        );
        let msg = refused(b, "http://[::2]:8080/x");
        assert!(msg.contains("origin http://[::1]:8080;"), "{msg}");
    }

    #[test]
    fn scheme_like_inputs_are_read_as_urls_and_refused_unless_full() {
        let b = "https://api.example.com/";
        for p in [
            "https:evil.example/x",
            "https:/evil.example/x",
            "javascript:alert(1)",
            "data:text/plain,x",
            "mailto:a@b",
            "api.example.com:443/v1/x",
            "localhost:8080/x",
            "v1:batch",
            ":x",
        ] {
            let msg = refused(b, p);
            assert!(msg.starts_with("the API URL is not usable"), "{p}: {msg}");
            assert!(msg.contains("start it with /"), "{p}: {msg}");
        }
        // A colon after the first / is a path character, not a scheme.
        assert_eq!(resolved(b, "/v1:batch"), "https://api.example.com/v1:batch");
        assert_eq!(
            resolved(b, "v1/x:batch"),
            "https://api.example.com/v1/x:batch"
        );
        assert_eq!(
            resolved(b, "?at=12:00"),
            "https://api.example.com/?at=12:00"
        );
    }

    #[test]
    fn an_empty_input_is_refused() {
        assert!(refused("https://api.example.com/", "").contains("empty"));
    }

    #[test]
    fn refusals_never_repeat_the_input() {
        let b = "https://api.example.com/";
        for p in [
            "https://user:s3cr3tpw@api.example.com/x",
            "https://s3cr3tpw.evil.example/x",
            "/v1/x?key=s3cr3tpw#s3cr3tpw",
            "/v1/s3cr3tpw/../x",
            "/v1/x?key=s3cr3tpw\n",
            "s3cr3tpw:x",
        ] {
            let msg = refused(b, p);
            assert!(!msg.contains("s3cr3tpw"), "{p}: {msg}");
        }
    }

    #[test]
    fn a_base_that_was_not_checked_is_a_config_error() {
        for b in [
            "https://u:p@api.example.com/",
            "https://api.example.com/?k=1",
            "https://api.example.com/#f",
        ] {
            let e = resolve_api_url(&parse_url(b).unwrap(), "/v1/x").unwrap_err();
            assert_eq!(e.code, ErrorCode::Config, "{b}");
            assert!(e.message.contains("apiBaseUrl"), "{}", e.message);
            assert!(!e.message.contains("u:p"), "{}", e.message);
        }
    }

    #[test]
    fn an_account_segment_joins_to_exactly_one_segment() {
        let b = "https://api.example.com/qbank/";
        for id in [UUID, "ACC:42@branch", "k\u{e4}", "a+b", ".x", "x."] {
            let seg = account_path_segment(id).unwrap();
            let url = resolved(b, &concat(&["/v1/balances/", &seg]));
            assert_eq!(
                url,
                concat(&["https://api.example.com/qbank/v1/balances/", &seg]),
                "{id:?}"
            );
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod props {
    use super::*;
    use crate::util::url::{check_endpoint_url, parse_url};
    use proptest::prelude::*;

    /// The inverse of [`percent_encode`], for the tests only.
    fn decode(s: &str) -> Option<String> {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).ok()
    }

    fn is_encoded_form(s: &str) -> bool {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                let upper_hex = |x: Option<&u8>| {
                    x.is_some_and(|&x| x.is_ascii_digit() || (b'A'..=b'F').contains(&x))
                };
                if !upper_hex(b.get(i + 1)) || !upper_hex(b.get(i + 2)) {
                    return false;
                }
                i += 3;
            } else if b[i].is_ascii_alphanumeric() || matches!(b[i], b'-' | b'.' | b'_' | b'~') {
                i += 1;
            } else {
                return false;
            }
        }
        true
    }

    fn base() -> ParsedUrl {
        check_endpoint_url("apiBaseUrl", "https://api.example.com/qbank/", false, false).unwrap()
    }

    proptest! {
        #[test]
        fn an_accepted_account_id_is_exactly_one_segment(id in "\\PC{0,40}|[ -~]{0,40}|.{0,20}") {
            if check_account_id(&id).is_ok() {
                let seg = percent_encode(&id);
                prop_assert!(!seg.is_empty());
                prop_assert!(!seg.contains('/'));
                prop_assert!(!seg.contains('?') && !seg.contains('#') && !seg.contains('\\'));
                prop_assert!(seg != "." && seg != "..");
                prop_assert!(is_encoded_form(&seg));
                let path = concat(&["/v1/balances/", &seg]);
                let url = resolve_api_url(&base(), &path).unwrap();
                prop_assert_eq!(url, concat(&["https://api.example.com/qbank/v1/balances/", &seg]));
                let parsed = parse_url(&concat(&["https://h/v1/", &seg, "/x"])).unwrap();
                prop_assert_eq!(parsed.path.split('/').count(), 4);
            }
        }

        #[test]
        fn check_account_id_agrees_with_the_rules(id in "\\PC{0,40}|[ -~]{0,40}|.{0,20}") {
            let breaks_a_rule = id.is_empty()
                || id.len() > MAX_ACCOUNT_ID_BYTES
                || id == "."
                || id.contains("..")
                || id.chars().any(|c| {
                    matches!(c, '/' | '\\' | '?' | '#' | '%')
                        || c.is_whitespace()
                        || c.is_control()
                        || is_invisible_format(c)
                });
            prop_assert_eq!(check_account_id(&id).is_err(), breaks_a_rule);
        }

        #[test]
        fn a_refused_account_id_is_named_by_at_most_8_characters(
            head in "[A-Za-z0-9_-]{9,30}",
            bad in "[/\\\\?#% \t\n\u{0}\u{7f}\u{85}\u{200b}\u{202e}]",
            tail in "[A-Za-z0-9]{0,20}",
        ) {
            let id = concat(&[&head, &bad, &tail]);
            let msg = check_account_id(&id).unwrap_err().message.clone();
            prop_assert!(msg.contains(&head[..8]));
            prop_assert!(!msg.contains(&head[..9]), "{}", msg);
        }

        #[test]
        fn encoding_is_reversible_so_injective(s in "\\PC{0,30}|.{0,30}") {
            let e = percent_encode(&s);
            prop_assert!(is_encoded_form(&e));
            prop_assert_eq!(decode(&e), Some(s));
        }

        #[test]
        fn different_strings_encode_differently(a in ".{0,12}", b in ".{0,12}") {
            prop_assert_eq!(a == b, percent_encode(&a) == percent_encode(&b));
        }

        #[test]
        fn resolve_never_panics_and_never_leaves_the_origin(
            p in "\\PC{0,40}|[ -~]{0,40}|(https?://|//|/|\\\\)[a-zA-Z0-9.:@\\[\\]%/?#_~!$&'()*+,;=\\\\-]{0,40}"
        ) {
            if let Ok(url) = resolve_api_url(&base(), &p) {
                let parsed = parse_url(&url).unwrap();
                prop_assert_eq!(origin(&parsed), "https://api.example.com");
                prop_assert!(!parsed.has_userinfo);
                prop_assert!(parsed.fragment.is_none());
                // What `fetch` sends is what was checked: writing it back changes nothing.
                prop_assert_eq!(parsed.href(), url.clone());
                if !p.contains(':') || p.starts_with('/') || p.starts_with('?') {
                    prop_assert!(url.starts_with("https://api.example.com/qbank/"), "{}", url);
                }
            }
        }

        #[test]
        fn any_clean_path_keeps_the_prefix_and_its_query(
            segs in proptest::collection::vec("[A-Za-z0-9._~-][A-Za-z0-9._~:@!$&'()*+,;=-]{0,8}", 1..5),
            query in proptest::option::of("[A-Za-z0-9=&%/?:@_.-]{0,20}"),
            leading_slash in any::<bool>(),
        ) {
            let mut p = String::from(if leading_slash { "/" } else { "" });
            p.push_str(&segs.join("/"));
            let dots = segs.iter().any(|s| s == "." || s == "..");
            let bad_escape = query.as_deref().is_some_and(|q| {
                q.match_indices('%').any(|(i, _)| {
                    !q.get(i + 1..i + 3).is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                })
            });
            if let Some(q) = &query {
                p.push('?');
                p.push_str(q);
            }
            let first_has_colon = !leading_slash && segs[0].contains(':');
            let r = resolve_api_url(&base(), &p);
            if dots || bad_escape || first_has_colon {
                prop_assert!(r.is_err());
            } else {
                let mut want = concat(&["https://api.example.com/qbank/", &segs.join("/")]);
                if let Some(q) = &query {
                    want.push('?');
                    want.push_str(q);
                }
                prop_assert_eq!(r.unwrap(), want);
            }
        }
    }
}
