//! Scrubbing secrets out of text a server sent back.
//!
//! Some servers echo the request (form body, Authorization header) in `error_description` or a
//! problem body. Before such text reaches a caller or a log, every known secret is replaced by
//! `[redacted]` in each form it could have been echoed in.

use super::encode::{base64_encode, form_urlencode, percent_encode};
use super::{concat, sub, tail};
use crate::prelude::*;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this (in characters) are not scrubbed: replacing every `a` or `id`
/// would destroy the message while protecting nothing worth protecting.
pub const MIN_SECRET_CHARS: usize = 4;

/// Replaces every occurrence of each secret in `text` with [`REDACTED`], in each of the forms
/// it may have been echoed in: as is, form-urlencoded, percent-encoded (upper- or lower-case
/// hex) and JSON-string-escaped. Secrets shorter than [`MIN_SECRET_CHARS`] are skipped.
///
/// For a client secret, pass [`secret_variants`] so the Basic credential is scrubbed too.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut patterns: Vec<String> = Vec::new();
    for s in secrets {
        // At least MIN_SECRET_CHARS characters (`nth`, not `count()`: counting links a 0.8 KiB
        // routine into the wasm).
        if s.chars().nth(MIN_SECRET_CHARS - 1).is_some() {
            for v in encoded_forms(s) {
                if !patterns.contains(&v) {
                    patterns.push(v);
                }
            }
        }
    }
    // One pass over the text as it came: at each byte, the longest form that starts there; a
    // run of overlapping occurrences becomes one mark. Replacing form by form instead let a
    // later form match inside an earlier `[redacted]` (a secret `ted]` turned `dC[redacted]`
    // into `dC[redac[redacted]`, spelling out another secret, `dC[redac`: the fuzzer found it).
    // A form is valid UTF-8, so it can only start and end on character boundaries. Comparing
    // at every byte is linear for real secrets (the first byte rarely matches) and needs
    // neither a sort nor core's string searcher (several KiB of wasm each).
    if patterns.is_empty() {
        return String::from(text);
    }
    let bytes = text.as_bytes();
    let longest_at = |at: usize| {
        let rest = bytes.get(at..).unwrap_or_default();
        patterns
            .iter()
            .filter(|p| rest.starts_with(p.as_bytes()))
            .map(|p| at + p.len())
            .max()
    };
    let mut out = String::new();
    let mut copied = 0; // text[..copied] is done
    let mut at = 0;
    while at < bytes.len() {
        let Some(mut end) = longest_at(at) else {
            at += 1;
            continue;
        };
        let start = at;
        at += 1;
        while at < end {
            if let Some(e) = longest_at(at) {
                end = end.max(e);
            }
            at += 1;
        }
        if out.is_empty() {
            out.reserve(text.len());
        }
        out.push_str(sub(text, copied, start));
        out.push_str(REDACTED);
        copied = end;
    }
    if copied == 0 {
        return String::from(text);
    }
    out.push_str(tail(text, copied));
    out
}

/// Every form in which a (client id, client secret) pair could be echoed: the secret's own
/// forms (see [`scrub`]) and the base64 Basic credential, both as RFC 6749 §2.3.1 sends it
/// (form-encoded parts) and as many other clients send it (raw `id:secret`).
///
/// The edge passes these to [`scrub`] for anything surfaced from a server.
pub fn secret_variants(client_id: &str, secret: &str) -> Vec<String> {
    let mut out = encoded_forms(secret);
    let rfc = concat(&[&form_urlencode(client_id), ":", &form_urlencode(secret)]);
    let raw = concat(&[client_id, ":", secret]);
    for pair in [rfc, raw] {
        let b64 = base64_encode(pair.as_bytes());
        if !out.contains(&b64) {
            out.push(b64);
        }
    }
    out
}

fn encoded_forms(secret: &str) -> Vec<String> {
    let pct = percent_encode(secret);
    let form = form_urlencode(secret);
    let mut out = vec![String::from(secret)];
    for v in [
        lower_hex(&form),
        form,
        lower_hex(&pct),
        pct,
        json_escape(secret),
    ] {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// `%AB` → `%ab`, for servers that re-encode with lower-case hex.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut after_pct = 0;
    for c in encoded.chars() {
        if c == '%' {
            after_pct = 2;
            out.push(c);
        } else if after_pct > 0 {
            after_pct -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The secret as it appears inside a JSON string (minimal escaping, as most serializers do).
fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    crate::util::json::push_escaped(&mut out, s);
    out
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    const SECRET: &str = "s3:cr+t %é\"";

    #[test]
    fn scrubs_the_raw_secret_everywhere() {
        let out = scrub("a abcd1234 b abcd1234", &["abcd1234"]);
        assert_eq!(out, "a [redacted] b [redacted]");
    }

    #[test]
    fn scrubs_form_percent_and_json_forms() {
        for form in [
            "s3%3Acr%2Bt+%25%C3%A9%22",   // form-urlencoded
            "s3%3acr%2bt+%25%c3%a9%22",   // form-urlencoded, lower-case hex
            "s3%3Acr%2Bt%20%25%C3%A9%22", // percent-encoded
            "s3%3acr%2bt%20%25%c3%a9%22", // percent-encoded, lower-case hex
            "s3:cr+t %\u{e9}\\\"",        // inside a JSON string
        ] {
            let text = ["body was client_secret=", form, "&x=1"].concat();
            assert_eq!(
                scrub(&text, &[SECRET]),
                "body was client_secret=[redacted]&x=1",
                "{form}"
            );
        }
    }

    #[test]
    fn short_secrets_are_not_scrubbed() {
        assert_eq!(scrub("abc and abc", &["abc"]), "abc and abc");
        assert_eq!(scrub("abcd", &["abcd"]), "[redacted]");
        // Four characters, more than four bytes.
        assert_eq!(scrub("x éééé y", &["éééé"]), "x [redacted] y");
    }

    #[test]
    fn secret_variants_cover_both_basic_credentials() {
        let v = secret_variants("my client", SECRET);
        let rfc = base64_encode(b"my+client:s3%3Acr%2Bt+%25%C3%A9%22");
        let raw = base64_encode("my client:s3:cr+t %é\"".as_bytes());
        assert!(v.contains(&rfc));
        assert!(v.contains(&raw));
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        let text = [
            "Authorization: Basic ",
            &rfc,
            " / Basic ",
            &raw,
            " / ",
            SECRET,
        ]
        .concat();
        assert_eq!(
            scrub(&text, &refs),
            "Authorization: Basic [redacted] / Basic [redacted] / [redacted]"
        );
    }

    #[test]
    fn text_without_secrets_is_unchanged() {
        let text = "invalid_client: Client authentication failed";
        assert_eq!(scrub(text, &["abcd1234", "zzzz"]), text);
        assert_eq!(scrub(text, &[]), text);
    }

    #[test]
    fn a_secret_is_never_matched_inside_a_mark_already_written() {
        // The fuzzer's case: `c7fly53` replaced first used to leave `dC[redacted]`, whose
        // `ted]` (another secret) was then replaced, spelling out the secret `dC[redac`.
        let out = scrub("dCc7fly53", &["dC[redac", "ted]", "c7fly53"]);
        assert_eq!(out, "dC[redacted]");
        // Overlapping secrets become one mark; separate ones stay separate.
        assert_eq!(scrub("xxabcdefyy", &["abcd", "cdef"]), "xx[redacted]yy");
        assert_eq!(scrub("abcd-abcd", &["abcd"]), "[redacted]-[redacted]");
        assert_eq!(scrub("abcdabcd", &["abcd"]), "[redacted][redacted]");
    }

    #[test]
    fn longer_forms_are_replaced_before_shorter_ones_inside_them() {
        // `cdef` is a secret too: replacing it first would leave `ab\"` of the longer one.
        let secret = "ab\"cdef";
        let out = scrub(r#"{"echo":"ab\"cdef"}"#, &["cdef", secret]);
        assert_eq!(out, r#"{"echo":"[redacted]"}"#);
    }
}
