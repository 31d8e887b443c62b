//! Validation of the TokenManager options. Every failure is an [`ErrorCode::Config`] error whose
//! message names the option and says what to fix, and never contains the client secret.
//!
//! [`ErrorCode::Config`]: super::ErrorCode::Config

use super::Error;
use crate::prelude::*;
use crate::util::text::{push_preview, suggest};
use crate::util::url::check_endpoint_url;
use crate::util::{concat, push_u64, Invalid};

/// The longest duration option accepted, in seconds: one year.
pub const MAX_SECONDS: u64 = 365 * 24 * 60 * 60;

/// Form parameters the manager sets itself; extra parameters may not override them.
pub const RESERVED_PARAMS: [&str; 6] = [
    "grant_type",
    "client_id",
    "client_secret",
    "scope",
    "username",
    "password",
];

/// Checks the `tokenUrl` option and returns the URL to POST to, written back.
///
/// A query is allowed and kept exactly as written: RFC 6749 §3.2 lets the token endpoint's URI
/// have one and requires keeping it (Azure AD B2C's `…/token?p=B2C_1_signin` is one). None of
/// its names may be one of [`RESERVED_PARAMS`] (compared case-insensitively, as written): the
/// manager sends those itself, a parameter must not be sent twice (§3.1), and credentials never
/// go in a URL. Otherwise as [`check_endpoint_url`]: https (http only to loopback when
/// `allow_insecure_http`), no user-info, no fragment.
pub fn check_token_url(s: &str, allow_insecure_http: bool) -> Result<String, Error> {
    let url = check_endpoint_url("tokenUrl", s, allow_insecure_http, true)?;
    for pair in url.query.as_deref().unwrap_or_default().split('&') {
        let name = pair.split('=').next().unwrap_or_default();
        if let Some(reserved) = RESERVED_PARAMS
            .iter()
            .find(|r| r.eq_ignore_ascii_case(name))
        {
            return Err(Error::config(concat(&[
                "tokenUrl is not a usable URL: its ?query has ",
                reserved,
                ", which the manager sends itself in the POST body (credentials go only there or \
                 in the Basic header, never in a URL); remove it",
            ])));
        }
    }
    Ok(url.href())
}

/// Checks `clientId`: not empty, not blank, no surrounding whitespace, no control characters.
pub fn check_client_id(s: &str) -> Result<(), Error> {
    check_credential("clientId", "client_id", s)
}

/// Checks `clientSecret` like [`check_client_id`]. The message never contains the secret, nor
/// any part or position of it.
pub fn check_client_secret(s: &str) -> Result<(), Error> {
    check_credential("clientSecret", "client_secret", s)
}

fn check_credential(option: &str, issued_as: &str, s: &str) -> Result<(), Error> {
    let fail = |why: &str| Err(Error::config(concat(&[option, " ", why])));
    if s.is_empty() {
        return fail(&concat(&[
            "is empty; set it to the ",
            issued_as,
            " you were given at registration",
        ]));
    }
    if s.chars().all(char::is_whitespace) {
        return fail(&concat(&[
            "contains only whitespace; set it to the ",
            issued_as,
            " you were given at registration",
        ]));
    }
    if s.starts_with('\u{feff}') {
        return fail(
            "starts with an invisible byte-order mark (U+FEFF), usually from a file saved as \
             \"UTF-8 with BOM\"; remove it",
        );
    }
    if s.ends_with(['\n', '\r']) {
        return fail(
            "ends with a line break, usually left by reading it from a file or from `echo` \
             output; trim it (for example with .trim()) before passing it",
        );
    }
    if s.ends_with(char::is_whitespace) {
        return fail(
            "ends with whitespace; remove it (copying from a web page or a file often adds it)",
        );
    }
    if s.starts_with(char::is_whitespace) {
        return fail("starts with whitespace; remove it");
    }
    if s.chars().any(char::is_control) {
        return fail(
            "contains a control character (such as a line break or a tab); check that the \
             whole value was copied correctly",
        );
    }
    Ok(())
}

/// Checks a list of scopes (the `scope` option given as an array) and removes repeats,
/// keeping the first of each in order. Each must be an RFC 6749 §3.3 `scope-token`
/// (`1*( %x21 / %x23-5B / %x5D-7E )`); an empty list is allowed (no `scope` is sent).
pub fn parse_scope_list(items: &[String]) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        check_scope_token(item).map_err(|why| {
            let mut m = String::from("scope[");
            push_u64(&mut m, i as u64);
            m.push_str("] ");
            m.push_str(why.why);
            Error::config(m)
        })?;
        if !out.contains(item) {
            out.push(item.clone());
        }
    }
    Ok(out)
}

/// Checks a space-separated scope string (the `scope` option given as a string) like
/// [`parse_scope_list`]. Runs of spaces and leading or trailing spaces are tolerated; tabs and
/// line breaks are not. An empty or all-space string is an empty list.
pub fn parse_scope_string(s: &str) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::new();
    for (i, word) in s.split(' ').filter(|w| !w.is_empty()).enumerate() {
        check_scope_token(word).map_err(|why| {
            let mut m = String::from("scope: scope number ");
            push_u64(&mut m, i as u64 + 1);
            m.push(' ');
            m.push_str(why.why);
            Error::config(m)
        })?;
        if !out.iter().any(|s| s == word) {
            out.push(word.into());
        }
    }
    Ok(out)
}

fn check_scope_token(s: &str) -> Result<(), Invalid> {
    if s.is_empty() {
        return Err(Invalid::new("is empty; remove it"));
    }
    for b in s.bytes() {
        let why = match b {
            b' ' => "contains a space; give each scope as its own list item",
            b'"' => "contains a double quote, which scopes may not contain (RFC 6749 section 3.3)",
            b'\\' => "contains a backslash, which scopes may not contain (RFC 6749 section 3.3)",
            0..=0x1f | 0x7f => {
                "contains a tab, line break or other control character; separate scopes with \
                 single spaces and remove the rest"
            }
            0x80..=0xff => {
                "contains a non-ASCII character, which scopes may not contain (RFC 6749 section 3.3)"
            }
            _ => continue,
        };
        return Err(Invalid::new(why));
    }
    Ok(())
}

/// Checks the extra form parameters for the token request: every name non-empty and free of
/// whitespace and control characters, and none of [`RESERVED_PARAMS`] (compared
/// case-insensitively), which would override what the manager sends. Values are not checked
/// (they are form-encoded) and never appear in messages.
pub fn check_extra_params(params: &[(String, String)]) -> Result<(), Error> {
    for (name, _) in params {
        if name.is_empty() {
            return Err(Error::config(
                "an extra token request parameter has an empty name; give every parameter a name",
            ));
        }
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::config(
                "an extra token request parameter name contains whitespace or a control \
                 character; remove it",
            ));
        }
        if let Some(reserved) = RESERVED_PARAMS
            .iter()
            .find(|r| r.eq_ignore_ascii_case(name))
        {
            let how = match *reserved {
                "grant_type" => "the manager always sends grant_type=client_credentials",
                "client_id" => "set it with the clientId option",
                "client_secret" => "set it with the clientSecret option",
                "scope" => "set it with the scope option",
                _ => "this client uses the client credentials grant only and never sends a user's credentials",
            };
            return Err(Error::config(concat(&[
                "the extra token request parameter ",
                reserved,
                " is reserved and would override the one the manager sends; remove it (",
                how,
                ")",
            ])));
        }
    }
    Ok(())
}

/// Checks a duration option given in seconds (a JavaScript number) and returns it in whole
/// milliseconds, rounded to the nearest one.
///
/// Refused: NaN, infinities, negative numbers, more than [`MAX_SECONDS`], and, unless
/// `allow_zero`, anything that rounds to 0 ms.
pub fn check_seconds(name: &str, value: f64, allow_zero: bool) -> Result<u64, Error> {
    let fail = |why: &str| Err(Error::config(concat(&[name, " ", why])));
    if value.is_nan() {
        return fail("is not a number; give a number of seconds");
    }
    if value.is_infinite() {
        return fail("must be a finite number of seconds");
    }
    if value < 0.0 {
        return fail("must not be negative");
    }
    if value > MAX_SECONDS as f64 {
        return fail(
            "is more than one year (31536000 seconds); note that it is in seconds, not \
             milliseconds",
        );
    }
    // In range 0..=3.2e10, so the conversion is exact enough and cannot saturate.
    let ms = (value * 1000.0 + 0.5) as u64;
    if ms == 0 && !allow_zero {
        return fail("must be more than 0 (at least 0.001 seconds)");
    }
    Ok(ms)
}

/// Refuses option names that are not in `known` (so a typo like `clientSecert` cannot pass
/// silently), suggesting the closest known name when one is near: case, `_` and `-` are
/// ignored and up to two edits (insert, delete, replace, swap neighbours) are allowed, one for
/// names of four letters or fewer.
///
/// ```
/// use qbank_connect::oauth::config::check_option_names;
/// let e = check_option_names(&["clientSecert"], &["clientId", "clientSecret"]).unwrap_err();
/// assert!(e.message.contains("did you mean `clientSecret`?"));
/// ```
pub fn check_option_names(given: &[&str], known: &[&str]) -> Result<(), Error> {
    const LISTED: usize = 5;
    let mut msg = String::new();
    let mut unknown = 0usize;
    for name in given.iter().filter(|g| !known.contains(g)) {
        unknown += 1;
        if unknown > LISTED {
            continue;
        }
        msg.push_str(if unknown == 1 {
            "unknown option `"
        } else {
            ", `"
        });
        push_preview(&mut msg, name, 40);
        msg.push('`');
        if let Some(s) = suggest(name, known) {
            msg.push_str(" (did you mean `");
            msg.push_str(s);
            msg.push_str("`?)");
        }
    }
    if unknown == 0 {
        return Ok(());
    }
    if unknown > LISTED {
        msg.push_str(" and ");
        push_u64(&mut msg, (unknown - LISTED) as u64);
        msg.push_str(" more");
    }
    msg.push_str("; check the spelling (option names are case-sensitive)");
    Err(Error::config(msg))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::oauth::ErrorCode;

    fn msg<T: core::fmt::Debug>(r: Result<T, Error>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.code, ErrorCode::Config);
        e.message.clone()
    }

    #[test]
    fn token_url_keeps_its_query_exactly() {
        for (given, sent) in [
            (
                "https://tenant.b2clogin.com/tenant.onmicrosoft.com/oauth2/v2.0/token?p=B2C_1_signin",
                "https://tenant.b2clogin.com/tenant.onmicrosoft.com/oauth2/v2.0/token?p=B2C_1_signin",
            ),
            (
                "HTTPS://Auth.Example.com/token?a=1&b=%2F+x&a=2&flag",
                "https://auth.example.com/token?a=1&b=%2F+x&a=2&flag",
            ),
            ("https://h/token?", "https://h/token?"),
            ("https://h/token", "https://h/token"),
            ("http://127.0.0.1:8/t?p=x", "http://127.0.0.1:8/t?p=x"),
        ] {
            assert_eq!(check_token_url(given, true).unwrap(), sent);
        }
    }

    #[test]
    fn token_url_query_may_not_carry_what_the_manager_sends() {
        for q in [
            "client_secret=hunter2",
            "p=1&client_id=me",
            "Client_Secret=hunter2",
            "grant_type=password",
            "scope",
            "password=hunter2&x=1",
        ] {
            let m = msg(check_token_url(&concat(&["https://h/token?", q]), false));
            assert!(
                m.starts_with("tokenUrl is not a usable URL: its ?query has "),
                "{m}"
            );
            assert!(m.contains("never in a URL"), "{m}");
            assert!(!m.contains("hunter2") && !m.contains("https://h"), "{m}");
        }
        // Names that merely contain a reserved one are the provider's own.
        assert!(check_token_url("https://h/token?my_scope=1&client_idx=2", false).is_ok());
    }

    #[test]
    fn token_url_still_refuses_fragments_userinfo_and_plain_http() {
        for (s, says) in [
            ("https://h/token?p=1#x", "#fragment"),
            ("https://me:pw@h/token?p=1", "user-info"),
            ("http://auth.example.com/token?p=1", "use https://"),
        ] {
            let m = msg(check_token_url(s, true));
            assert!(m.starts_with("tokenUrl is not a usable URL: "), "{m}");
            assert!(m.contains(says), "{s}: {m}");
        }
    }

    #[test]
    fn good_credentials_pass() {
        assert!(check_client_id("erp-platform-42").is_ok());
        assert!(check_client_secret("s3cr3t with inner spaces").is_ok());
        assert!(check_client_secret("p\u{e4}ss:w@rd/=").is_ok());
    }

    #[test]
    fn empty_and_blank_credentials_are_refused_by_option_name() {
        assert!(msg(check_client_id("")).starts_with("clientId is empty"));
        assert!(msg(check_client_secret("")).starts_with("clientSecret is empty"));
        assert!(msg(check_client_id(" \t\n")).contains("only whitespace"));
        assert!(msg(check_client_secret("\u{a0}")).contains("only whitespace"));
    }

    #[test]
    fn trailing_newline_is_explained_as_the_secrets_file_bug() {
        for s in ["hunter2-secret\n", "hunter2-secret\r\n"] {
            let m = msg(check_client_secret(s));
            assert!(m.contains("ends with a line break"), "{m}");
            assert!(m.contains("from a file"), "{m}");
            assert!(m.contains(".trim()"), "{m}");
        }
        assert!(msg(check_client_id("my-client\n")).starts_with("clientId ends with a line break"));
    }

    #[test]
    fn surrounding_whitespace_bom_and_controls_are_refused() {
        assert!(msg(check_client_id("id ")).contains("ends with whitespace"));
        assert!(msg(check_client_id(" id")).contains("starts with whitespace"));
        assert!(msg(check_client_id("\u{feff}id")).contains("byte-order mark"));
        assert!(msg(check_client_secret("a\u{0}b")).contains("control character"));
        assert!(msg(check_client_secret("a\nb")).contains("control character"));
    }

    #[test]
    fn secret_messages_never_contain_the_secret() {
        let secret = "Zq8-hunter2-VERY-SECRET";
        for s in [
            concat(&[secret, "\n"]),
            concat(&[" ", secret]),
            concat(&[secret, " "]),
            concat(&[secret, "\u{7}", secret]),
            concat(&["\u{feff}", secret]),
        ] {
            let m = msg(check_client_secret(&s));
            assert!(!m.contains("hunter2"), "{m}");
            assert!(!m.contains("Zq8"), "{m}");
        }
    }

    #[test]
    fn scope_list_is_checked_and_deduplicated_in_order() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_scope_list(&v(&["b.read", "a.write", "b.read", "!#[]~"])).unwrap(),
            v(&["b.read", "a.write", "!#[]~"])
        );
        assert_eq!(parse_scope_list(&[]).unwrap(), Vec::<String>::new());
        assert!(msg(parse_scope_list(&v(&["ok", "a b"]))).starts_with("scope[1] contains a space"));
        assert!(msg(parse_scope_list(&v(&[""]))).starts_with("scope[0] is empty"));
        assert!(msg(parse_scope_list(&v(&["a\"b"]))).contains("double quote"));
        assert!(msg(parse_scope_list(&v(&["a\\b"]))).contains("backslash"));
        assert!(msg(parse_scope_list(&v(&["a\tb"]))).contains("control character"));
        assert!(msg(parse_scope_list(&v(&["caf\u{e9}"]))).contains("non-ASCII"));
    }

    #[test]
    fn scope_string_splits_on_spaces_and_deduplicates() {
        assert_eq!(
            parse_scope_string("  accounts.read payments.ach.write  accounts.read ").unwrap(),
            ["accounts.read", "payments.ach.write"]
        );
        assert!(parse_scope_string("").unwrap().is_empty());
        assert!(parse_scope_string("   ").unwrap().is_empty());
        let m = msg(parse_scope_string("a.read\tb.read"));
        assert!(m.starts_with("scope: scope number 1 contains a tab"), "{m}");
        let m = msg(parse_scope_string("a.read b\"c"));
        assert!(
            m.starts_with("scope: scope number 2 contains a double quote"),
            "{m}"
        );
    }

    #[test]
    fn extra_params_may_not_override_reserved_names() {
        let p = |n: &str| vec![(n.to_string(), "hunter2".to_string())];
        assert!(check_extra_params(&p("audience")).is_ok());
        assert!(check_extra_params(&[]).is_ok());
        for name in RESERVED_PARAMS {
            let m = msg(check_extra_params(&p(name)));
            assert!(
                m.contains(&concat(&["parameter ", name, " is reserved"])),
                "{m}"
            );
            assert!(!m.contains("hunter2"));
        }
        assert!(msg(check_extra_params(&p("Client_Secret"))).contains("client_secret is reserved"));
        assert!(msg(check_extra_params(&p("scope"))).contains("scope option"));
    }

    #[test]
    fn extra_param_names_must_be_present_and_clean() {
        let p = |n: &str| {
            vec![
                ("audience".to_string(), String::new()),
                (n.to_string(), String::new()),
            ]
        };
        assert!(msg(check_extra_params(&p(""))).contains("empty name"));
        assert!(msg(check_extra_params(&p(" scope"))).contains("whitespace"));
        assert!(msg(check_extra_params(&p("a\u{1}"))).contains("control"));
    }

    #[test]
    fn seconds_become_rounded_milliseconds() {
        assert_eq!(check_seconds("timeout", 30.0, false).unwrap(), 30_000);
        assert_eq!(check_seconds("timeout", 0.0015, false).unwrap(), 2);
        assert_eq!(check_seconds("timeout", 1.2344, false).unwrap(), 1_234);
        assert_eq!(check_seconds("skew", 0.0, true).unwrap(), 0);
        assert_eq!(check_seconds("skew", -0.0, true).unwrap(), 0);
        assert_eq!(
            check_seconds("skew", 31_536_000.0, false).unwrap(),
            31_536_000_000
        );
    }

    #[test]
    fn bad_seconds_are_refused_by_name() {
        assert_eq!(
            msg(check_seconds("timeout", f64::NAN, true)),
            "timeout is not a number; give a number of seconds"
        );
        assert!(msg(check_seconds("timeout", f64::INFINITY, true)).contains("finite"));
        assert!(msg(check_seconds("timeout", f64::NEG_INFINITY, true)).contains("finite"));
        assert!(msg(check_seconds("timeout", -1.0, true)).contains("negative"));
        assert!(msg(check_seconds("timeout", 31_536_000.5, true)).contains("not milliseconds"));
        assert!(msg(check_seconds("timeout", 0.0, false)).contains("more than 0"));
        assert!(msg(check_seconds("timeout", 0.0004, false)).contains("at least 0.001"));
    }

    const KNOWN: &[&str] = &[
        "clientId",
        "clientSecret",
        "tokenUrl",
        "scope",
        "allowInsecureHttp",
    ];

    #[test]
    fn known_option_names_pass() {
        assert!(check_option_names(&["clientId", "scope"], KNOWN).is_ok());
        assert!(check_option_names(&[], KNOWN).is_ok());
    }

    #[test]
    fn typo_in_option_name_is_refused_with_a_suggestion() {
        let m = msg(check_option_names(&["clientId", "clientSecert"], KNOWN));
        assert!(
            m.starts_with("unknown option `clientSecert` (did you mean `clientSecret`?)"),
            "{m}"
        );
        for (typo, meant) in [
            ("client_secret", "clientSecret"),
            ("clientid", "clientId"),
            ("tokenURL", "tokenUrl"),
            ("scopes", "scope"),
            ("allow_insecure_https", "allowInsecureHttp"),
        ] {
            let m = msg(check_option_names(&[typo], KNOWN));
            assert!(
                m.contains(&concat(&["did you mean `", meant, "`?"])),
                "{typo}: {m}"
            );
        }
    }

    #[test]
    fn distant_names_get_no_suggestion() {
        let m = msg(check_option_names(&["timeoutMs", "x", "scp0s"], KNOWN));
        assert!(!m.contains("did you mean"), "{m}");
        assert!(m.contains("`timeoutMs`, `x`, `scp0s`"), "{m}");
    }

    #[test]
    fn many_unknown_names_are_counted_and_long_ones_cut() {
        let long = "y".repeat(10_000);
        let names = ["a1", "a2", "a3", "a4", long.as_str(), "a6", "a7"];
        let m = msg(check_option_names(&names, KNOWN));
        assert!(m.contains(" and 2 more"), "{m}");
        assert!(m.len() < 400, "{}", m.len());
        assert!(m.contains("yyy..."));
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn checks_never_panic_on_any_string(s in "\\PC*", t in "\\PC*") {
            let _ = check_client_id(&s);
            let _ = check_client_secret(&s);
            let _ = parse_scope_string(&s);
            let _ = parse_scope_list(&[s.clone(), t.clone()]);
            let _ = check_extra_params(&[(s.clone(), t.clone())]);
            let _ = check_option_names(&[&s, &t], &["clientSecret", &t]);
        }

        #[test]
        fn secret_message_never_contains_the_secret(core in "[A-Za-z0-9]{12,40}", junk in "[ \t\r\n\u{0}\u{feff}]{0,2}") {
            for s in [concat(&[&core, &junk]), concat(&[&junk, &core]), concat(&[&core, &junk, &core])] {
                if let Err(e) = check_client_secret(&s) {
                    prop_assert!(!e.message.contains(core.as_str()));
                }
            }
        }

        #[test]
        fn seconds_never_panic_and_stay_within_a_year(v in proptest::num::f64::ANY, zero in any::<bool>()) {
            if let Ok(ms) = check_seconds("t", v, zero) {
                prop_assert!(ms <= MAX_SECONDS * 1000);
                prop_assert!(zero || ms > 0);
            }
        }

        #[test]
        fn valid_scope_strings_round_trip(words in proptest::collection::vec("[!#-\\[\\]-~]{1,8}", 0..6)) {
            let parsed = parse_scope_string(&words.join(" ")).unwrap();
            let listed = parse_scope_list(&words).unwrap();
            prop_assert_eq!(&parsed, &listed);
            for w in &words {
                prop_assert!(parsed.contains(w));
            }
        }
    }
}
