//! The token endpoint, sans-IO: build the request (RFC 6749 §4.4, §4.3, §2.3.1) and read the
//! answer (§5.1, §5.2): the `expires_in` rules, the JWT `exp` claim, the RFC 6750 `b64token`
//! syntax. The form and base64 encoders it uses are [`crate::util::encode`]'s.
//!
//! Everything here is a pure function of its arguments; the caller sends the [`HttpRequest`]
//! and feeds back the [`HttpResponse`] with the current time.

use super::{Error, ErrorCode, Secret};
use crate::prelude::*;
use crate::util::encode::{base64_encode, base64url_decode, form_urlencode};
use crate::util::http_date::parse_retry_after;
use crate::util::json::{self, Json};
use crate::util::text::words;
use crate::util::{concat, push_u64, HttpRequest, HttpResponse, Millis};

/// Whether an `error_description` says the client credentials are wrong (Keycloak's wording).
fn says_invalid_client_credentials(description: &str) -> bool {
    let d = description.as_bytes();
    let needle = b"invalid client";
    d.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The largest `expires_in` we believe: ten years, in seconds. Anything above is treated as
/// invalid (as if absent), because no token server means it and trusting it would cache a token
/// effectively forever.
pub const MAX_EXPIRES_IN_SECS: u64 = 10 * 365 * 24 * 60 * 60;

/// How the client authenticates at the token endpoint (RFC 6749 §2.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AuthMethod {
    /// `client_id` and `client_secret` in the form body (what the providers ask for).
    #[default]
    ClientSecretPost,
    /// HTTP Basic with form-encoded id and secret.
    ClientSecretBasic,
}

/// A successfully parsed token response (RFC 6749 §5.1), before any lifetime decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenResponse {
    /// The access token; only RFC 6750 b64token characters.
    pub access_token: Secret,
    /// The granted scope, if the server said; otherwise `None` (granted = requested).
    pub scope: Option<Vec<String>>,
    /// `expires_in`, converted to milliseconds, if present and valid.
    pub expires_in_ms: Option<u64>,
    /// The `exp` claim of the token, in epoch milliseconds, if the token is a JWT carrying one.
    pub jwt_exp_ms: Option<Millis>,
}

/// Which OAuth 2.0 grant to request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    /// RFC 6749 §4.4: the client acts on its own behalf.
    ClientCredentials,
    /// RFC 6749 §4.3: resource owner password (e.g. a Keycloak console bootstrap user).
    Password {
        /// The resource owner's user name.
        username: String,
        /// The resource owner's password.
        password: Secret,
    },
}

/// Everything needed to build one token request.
#[derive(Clone, Copy, Debug)]
pub struct TokenRequest<'a> {
    /// The absolute token endpoint URL.
    pub token_url: &'a str,
    /// The client identifier.
    pub client_id: &'a str,
    /// The client secret; `None` for a public client (such as Keycloak's `qpay-console`).
    pub client_secret: Option<&'a Secret>,
    /// The grant to request.
    pub grant: &'a Grant,
    /// Requested scopes; sent space-joined, omitted when empty.
    pub scope: &'a [String],
    /// Where the client credentials go (ignored for a public client: `client_id` goes in the body).
    pub auth_method: AuthMethod,
    /// Extra form parameters (e.g. `audience`). Names [`is_reserved_param`] refuses are skipped,
    /// so a parameter is never sent twice (RFC 6749 §3.2); configuration should refuse them.
    pub extra_params: &'a [(String, String)],
}

/// Whether a form parameter name is set by [`build_token_request`] itself and so may not be
/// supplied as an extra parameter.
pub fn is_reserved_param(name: &str) -> bool {
    matches!(
        name,
        "grant_type" | "client_id" | "client_secret" | "scope" | "username" | "password"
    )
}

/// Builds the `POST` to the token endpoint.
///
/// The body is `application/x-www-form-urlencoded` in this order: `grant_type`, (`username`,
/// `password`), (`client_id`, `client_secret`), `scope`, extra parameters. With
/// [`AuthMethod::ClientSecretBasic`] and a secret, the credentials go only in the
/// `Authorization` header (never both places); with no secret, `client_id` goes in the body.
pub fn build_token_request(req: &TokenRequest<'_>) -> HttpRequest {
    let mut body = String::new();
    let mut add = |name: &str, value: &str| {
        if !body.is_empty() {
            body.push('&');
        }
        body.push_str(name);
        body.push('=');
        body.push_str(&form_urlencode(value));
    };
    match req.grant {
        Grant::ClientCredentials => add("grant_type", "client_credentials"),
        Grant::Password { username, password } => {
            add("grant_type", "password");
            add("username", username);
            add("password", password.expose());
        }
    }
    let mut headers = vec![
        (
            String::from("Content-Type"),
            String::from("application/x-www-form-urlencoded"),
        ),
        (String::from("Accept"), String::from("application/json")),
    ];
    match (req.client_secret, req.auth_method) {
        (Some(secret), AuthMethod::ClientSecretBasic) => {
            // RFC 6749 §2.3.1: each part is form-encoded before base64.
            let pair = concat(&[
                &form_urlencode(req.client_id),
                ":",
                &form_urlencode(secret.expose()),
            ]);
            let value = concat(&["Basic ", &base64_encode(pair.as_bytes())]);
            headers.push((String::from("Authorization"), value));
        }
        (Some(secret), AuthMethod::ClientSecretPost) => {
            add("client_id", req.client_id);
            add("client_secret", secret.expose());
        }
        (None, _) => add("client_id", req.client_id),
    }
    let mut scope = String::new();
    for s in req.scope.iter().filter(|s| !s.is_empty()) {
        if !scope.is_empty() {
            scope.push(' ');
        }
        scope.push_str(s);
    }
    if !scope.is_empty() {
        add("scope", &scope);
    }
    for (name, value) in req.extra_params {
        if !is_reserved_param(name) {
            let mut pair = form_urlencode(name);
            pair.push('=');
            pair.push_str(&form_urlencode(value));
            if !body.is_empty() {
                body.push('&');
            }
            body.push_str(&pair);
        }
    }
    HttpRequest {
        method: "POST",
        url: String::from(req.token_url),
        headers,
        body: Some(body),
    }
}

/// Whether `s` is an RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
/// "+" / "/" ) *"="`. Anything else (space, CR, LF, quotes) could break or forge a header.
pub fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// The `exp` claim of a JWT access token, in epoch milliseconds.
///
/// Only for scheduling a refresh: the signature is not checked and nothing else is trusted.
/// Anything that is not three dot-separated base64url segments whose middle one is a JSON object
/// with a non-negative numeric `exp` (integer or fractional seconds) gives `None`.
pub fn jwt_exp_ms(token: &str) -> Option<Millis> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64url_decode(payload)?;
    let text = core::str::from_utf8(&bytes).ok()?;
    let claims = json::parse(text).ok()?;
    json::seconds_text_to_ms(claims.get("exp")?.as_number()?)
}

/// Reads a token endpoint answer.
///
/// `now` is the current time, used only to turn an HTTP-date `Retry-After` into a delay.
///
/// In order: a 3xx is refused (following it would re-send the secret elsewhere); a JSON body
/// with a non-null `error` member is an RFC 6749 §5.2 error whatever the status (even 200);
/// 429 is [`ErrorCode::RateLimited`]; 401 is [`ErrorCode::InvalidClient`]; any other non-2xx is
/// [`ErrorCode::TokenEndpointError`]. Every failure carries `retry_after_ms` from `Retry-After`.
/// A 2xx must be a JSON object with a b64token `access_token` and a `token_type` that is Bearer
/// (any case), absent or null (read as Bearer, as Go's x/oauth2 does);
/// `expires_in` follows [`expires_in_secs`] (invalid → `None`, 0 → `Some(0)`); `scope`
/// (a space-separated string) is split; unknown members are ignored.
pub fn parse_token_response(resp: &HttpResponse, now: Millis) -> Result<TokenResponse, Error> {
    let status = resp.status;
    let retry_after = resp
        .header("retry-after")
        .and_then(|v| parse_retry_after(v, now));
    let fail = |code: ErrorCode, message: String| {
        Err(Error::new(code, message)
            .with_status(status)
            .with_retry_after(retry_after))
    };

    if (300..400).contains(&status) {
        return fail(
            ErrorCode::TokenEndpointError,
            status_message(
                "the token endpoint answered with a redirect (HTTP ",
                status,
                "); redirects are refused because following one would re-send the client \
                 credentials to another address: configure the final token URL",
            ),
        );
    }

    let parsed = json::parse(&resp.body);
    if let Ok(body) = &parsed {
        if let Some(error) = body.get("error").filter(|e| !e.is_null()) {
            let oauth_error = error.as_str().map(String::from);
            let description = body
                .get("error_description")
                .and_then(Json::as_str)
                .map(String::from);
            let mut code = oauth_error
                .as_deref()
                .map_or(ErrorCode::TokenEndpointError, ErrorCode::from_oauth);
            if code == ErrorCode::UnauthorizedClient
                && description
                    .as_deref()
                    .is_some_and(says_invalid_client_credentials)
            {
                // Keycloak answers a wrong secret or an unknown client with `unauthorized_client`
                // "Invalid client or Invalid client credentials" (older releases: "Invalid client
                // credentials"). It is RFC 6749's invalid_client: the advice and the no-retry
                // rule must follow, or a wrong secret would be retried and mis-explained.
                code = ErrorCode::InvalidClient;
            }
            let mut e = Error::new(code, oauth_error_message(code, status))
                .with_status(status)
                .with_retry_after(retry_after);
            e.oauth_error = oauth_error;
            e.oauth_error_description = description;
            return Err(e);
        }
    }

    if status == 429 {
        return fail(
            ErrorCode::RateLimited,
            String::from(
                "the token endpoint is rate limiting this client (HTTP 429): wait retry_after_ms \
                 if set, otherwise back off, before asking for a token again",
            ),
        );
    }
    if status == 401 {
        return fail(
            ErrorCode::InvalidClient,
            String::from(
                "the token endpoint answered HTTP 401 without an OAuth error: check the client id \
                 and secret, that they belong to this environment (sandbox and production \
                 credentials differ), and the auth method (client_secret_post or \
                 client_secret_basic)",
            ),
        );
    }
    if !(200..300).contains(&status) {
        let next = if status >= 500 {
            "; try again later"
        } else if status == 404 || status == 405 {
            ": check the token URL"
        } else {
            " without an OAuth error: check the token URL and the request parameters"
        };
        return fail(
            ErrorCode::TokenEndpointError,
            status_message("the token endpoint answered HTTP ", status, next),
        );
    }

    let invalid = |what: &str| {
        fail(
            ErrorCode::InvalidResponse,
            concat(&[
                "the token endpoint answered HTTP 2xx but ",
                what,
                "; no token was stored: check the token URL points at the OAuth token endpoint",
            ]),
        )
    };
    let body = match parsed {
        Ok(body) => body,
        Err(_) if resp.body.trim().is_empty() => return invalid("the body is empty"),
        Err(e) => {
            return invalid(&concat(&[
                "the body is not valid JSON (",
                &e.describe(),
                ")",
            ]));
        }
    };
    if !matches!(body, Json::Object(_)) {
        return invalid(&concat(&[
            "the body is ",
            body.kind(),
            ", not a JSON object",
        ]));
    }

    let access_token = match body.get("access_token") {
        None | Some(Json::Null) => return invalid("the access_token member is missing"),
        Some(Json::String(t)) if t.is_empty() => return invalid("the access_token is empty"),
        Some(Json::String(t)) if !is_b64token(t) => {
            return invalid(
                "the access_token has characters outside the RFC 6750 token syntax (such as \
                 spaces, quotes or line breaks), so it cannot be sent in an Authorization header",
            )
        }
        Some(Json::String(t)) => t.as_ref(),
        Some(other) => {
            return invalid(&concat(&[
                "the access_token is ",
                other.kind(),
                ", not a string",
            ]));
        }
    };

    // RFC 6749 §5.1 requires token_type, but real servers leave it out (the generic bank's
    // document shows an answer with nothing but access_token), and Go's x/oauth2 reads a
    // missing type as Bearer: so does this. An explicit type must still be Bearer.
    let unsupported = match body.get("token_type") {
        None | Some(Json::Null) => None,
        Some(Json::String(t)) if t.eq_ignore_ascii_case("bearer") => None,
        Some(Json::String(t)) if t.is_empty() => Some(String::from(
            "the token_type is empty, so the token type is unsupported",
        )),
        Some(Json::String(_)) => Some(String::from(
            "the token type is unsupported (only Bearer is)",
        )),
        Some(other) => Some(concat(&[
            "the token_type is ",
            other.kind(),
            ", not a string, so the token type is unsupported",
        ])),
    };
    if let Some(which) = unsupported {
        return fail(
            ErrorCode::InvalidResponse,
            concat(&[
                "the token endpoint answered HTTP 2xx but ",
                &which,
                "; the token is never sent as Bearer: ask the provider for Bearer tokens for \
                 this client",
            ]),
        );
    }

    let expires_in_ms = body
        .get("expires_in")
        .and_then(expires_in_secs)
        .map(|s| s.saturating_mul(1000));

    let scope = match body.get("scope") {
        Some(Json::String(s)) => Some(words(s)),
        // Some servers send an array; accept it when every element is a string.
        Some(Json::Array(items)) => {
            let mut list = Vec::new();
            for i in items {
                match i.as_str() {
                    Some(s) => list.push(String::from(s)),
                    None => break,
                }
            }
            (list.len() == items.len()).then_some(list)
        }
        _ => None,
    };

    Ok(TokenResponse {
        jwt_exp_ms: jwt_exp_ms(access_token),
        access_token: Secret::new(access_token),
        scope,
        expires_in_ms,
    })
}

fn status_message(before: &str, status: u16, after: &str) -> String {
    let mut s = String::from(before);
    push_u64(&mut s, u64::from(status));
    s.push_str(after);
    s
}

fn oauth_error_message(code: ErrorCode, status: u16) -> String {
    let text = match code {
        ErrorCode::InvalidClient => {
            "the token endpoint rejected the client credentials (invalid_client): check the client \
             id and secret, and that they belong to this environment (sandbox and production \
             credentials differ)"
        }
        ErrorCode::InvalidGrant => {
            "the token endpoint refused the grant (invalid_grant): for the password grant check \
             the username and password; otherwise check this client may use the grant"
        }
        ErrorCode::InvalidScope => {
            "the token endpoint refused the requested scope (invalid_scope): request only scopes \
             approved for this client at registration"
        }
        ErrorCode::UnauthorizedClient => {
            "this client is not allowed to use the requested grant (unauthorized_client): ask the \
             provider to enable it for this client"
        }
        ErrorCode::UnsupportedGrantType => {
            "the token endpoint does not support the requested grant type \
             (unsupported_grant_type): check the token URL and the grant"
        }
        ErrorCode::InvalidRequest => {
            "the token endpoint rejected the request as malformed (invalid_request): check the \
             token URL, the auth method (client_secret_post or client_secret_basic) and any extra \
             parameters"
        }
        ErrorCode::RateLimited => {
            "the token endpoint asked this client to slow down or is temporarily unavailable: wait \
             retry_after_ms if set, otherwise back off, before asking again"
        }
        // The server's own code is in `oauth_error`; it is not repeated here because it is
        // server text.
        _ => {
            "the token endpoint answered with an OAuth error this client does not know (see \
             oauth_error and oauth_error_description); retry later, and contact the provider if \
             it persists"
        }
    };
    let mut s = String::from(text);
    s.push_str(" [HTTP ");
    push_u64(&mut s, u64::from(status));
    s.push(']');
    s
}

/// Reads an OAuth `expires_in` value: a JSON number, or a string holding a JSON number (some
/// servers quote it). Returns whole seconds, fractions truncated toward zero.
///
/// Returns `None`, meaning "the server gave no usable lifetime, fall back to the JWT `exp` or
/// the configured default", for anything a careful client should not trust: a missing or
/// non-numeric value, text that is not exactly a JSON number (`" 3600"`, `"NaN"`, `"0x10"`),
/// a negative value (`-0` included), or more than [`MAX_EXPIRES_IN_SECS`].
/// `0` (and `0.5`) give `Some(0)`: the server says the token has no usable lifetime, so it must
/// not be cached for later calls.
pub fn expires_in_secs(value: &Json) -> Option<u64> {
    let text = match value {
        Json::Number(t) | Json::String(t) => t,
        _ => return None,
    };
    json::number_trunc_u64(text).filter(|&s| s <= MAX_EXPIRES_IN_SECS)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    fn cc_request<'a>(
        secret: Option<&'a Secret>,
        scope: &'a [String],
        method: AuthMethod,
        extra: &'a [(String, String)],
    ) -> TokenRequest<'a> {
        TokenRequest {
            token_url: "https://auth.qbankconnect.com/token",
            client_id: "my client:1",
            client_secret: secret,
            grant: &Grant::ClientCredentials,
            scope,
            auth_method: method,
            extra_params: extra,
        }
    }

    fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
        req.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    const TRICKY: &str = "s3:cr+t %é";

    #[test]
    fn client_secret_post_puts_both_credentials_in_the_body() {
        let secret = Secret::new(TRICKY);
        let scope = [
            "accounts.read".to_string(),
            "payments.ach.write".to_string(),
        ];
        let req = build_token_request(&cc_request(
            Some(&secret),
            &scope,
            AuthMethod::ClientSecretPost,
            &[],
        ));
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "https://auth.qbankconnect.com/token");
        assert_eq!(
            req.body.as_deref(),
            Some(
                "grant_type=client_credentials&client_id=my+client%3A1\
                 &client_secret=s3%3Acr%2Bt+%25%C3%A9&scope=accounts.read+payments.ach.write"
            )
        );
        assert_eq!(header(&req, "Authorization"), None);
    }

    #[test]
    fn request_headers_are_form_content_type_and_json_accept() {
        let req = build_token_request(&cc_request(None, &[], AuthMethod::ClientSecretPost, &[]));
        assert_eq!(
            req.headers,
            vec![
                (
                    "Content-Type".to_string(),
                    "application/x-www-form-urlencoded".to_string()
                ),
                ("Accept".to_string(), "application/json".to_string()),
            ]
        );
    }

    #[test]
    fn client_secret_basic_form_encodes_before_base64_and_keeps_secret_out_of_body() {
        let secret = Secret::new(TRICKY);
        let req = build_token_request(&cc_request(
            Some(&secret),
            &[],
            AuthMethod::ClientSecretBasic,
            &[],
        ));
        // base64("my+client%3A1:s3%3Acr%2Bt+%25%C3%A9")
        assert_eq!(
            header(&req, "Authorization"),
            Some("Basic bXkrY2xpZW50JTNBMTpzMyUzQWNyJTJCdCslMjUlQzMlQTk=")
        );
        assert_eq!(req.body.as_deref(), Some("grant_type=client_credentials"));
    }

    #[test]
    fn public_client_sends_client_id_in_body_even_with_basic() {
        let req = build_token_request(&cc_request(None, &[], AuthMethod::ClientSecretBasic, &[]));
        assert_eq!(
            req.body.as_deref(),
            Some("grant_type=client_credentials&client_id=my+client%3A1")
        );
        assert_eq!(header(&req, "Authorization"), None);
    }

    #[test]
    fn password_grant_for_a_public_client() {
        let grant = Grant::Password {
            username: "ana@example.com".into(),
            password: Secret::new("p&ss word=1"),
        };
        let req = build_token_request(&TokenRequest {
            token_url:
                "https://sandbox.qpay.quecto.com.br/auth/realms/qpay/protocol/openid-connect/token",
            client_id: "qpay-console",
            client_secret: None,
            grant: &grant,
            scope: &[],
            auth_method: AuthMethod::ClientSecretPost,
            extra_params: &[],
        });
        assert_eq!(
            req.body.as_deref(),
            Some("grant_type=password&username=ana%40example.com&password=p%26ss+word%3D1&client_id=qpay-console")
        );
    }

    #[test]
    fn empty_scope_is_omitted_and_empty_entries_skipped() {
        let scope = [String::new(), "a".to_string(), String::new()];
        let req = build_token_request(&cc_request(None, &scope, AuthMethod::ClientSecretPost, &[]));
        assert!(req.body.as_deref().unwrap().ends_with("&scope=a"));
        let empty = [String::new()];
        let req = build_token_request(&cc_request(None, &empty, AuthMethod::ClientSecretPost, &[]));
        assert!(!req.body.as_deref().unwrap().contains("scope"));
    }

    #[test]
    fn extra_params_are_appended_and_reserved_names_skipped() {
        let extra = [
            ("audience".to_string(), "https://api x".to_string()),
            ("client_secret".to_string(), "injected".to_string()),
            ("grant_type".to_string(), "password".to_string()),
        ];
        let req = build_token_request(&cc_request(None, &[], AuthMethod::ClientSecretPost, &extra));
        assert_eq!(
            req.body.as_deref(),
            Some("grant_type=client_credentials&client_id=my+client%3A1&audience=https%3A%2F%2Fapi+x")
        );
    }

    #[test]
    fn debug_of_the_request_never_shows_the_secret() {
        let secret = Secret::new("very-secret-value");
        let req = build_token_request(&cc_request(
            Some(&secret),
            &[],
            AuthMethod::ClientSecretBasic,
            &[],
        ));
        let grant = Grant::Password {
            username: "u".into(),
            password: Secret::new("very-secret-value"),
        };
        assert!(!format!("{req:?}{grant:?}").contains("very-secret-value"));
    }

    #[test]
    fn b64token_syntax() {
        assert!(is_b64token("abcXYZ019-._~+/=="));
        assert!(!is_b64token(""));
        assert!(!is_b64token("=="));
        assert!(!is_b64token("a=b"));
        for bad in ["a b", "a\r\nb", "a\"b", "a'b", "a,b", "é"] {
            assert!(!is_b64token(bad), "{bad:?}");
        }
    }

    fn jwt(payload: &str) -> String {
        let enc = |s: &str| {
            base64_encode(s.as_bytes())
                .trim_end_matches('=')
                .replace('+', "-")
                .replace('/', "_")
        };
        concat(&[&enc(r#"{"alg":"RS256"}"#), ".", &enc(payload), ".c2ln"])
    }

    #[test]
    fn jwt_exp_is_read_in_milliseconds() {
        assert_eq!(
            jwt_exp_ms(&jwt(r#"{"exp":1700000000}"#)),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            jwt_exp_ms(&jwt(r#"{"sub":"x","exp":1700000000.25}"#)),
            Some(1_700_000_000_250)
        );
    }

    #[test]
    fn malformed_jwts_have_no_exp() {
        let good = jwt(r#"{"exp":1700000000}"#);
        for t in [
            "opaque-token".to_string(),
            good.replace(".c2ln", ""),
            concat(&[&good, ".x"]),
            jwt(r#"{"exp":"1700000000"}"#),
            jwt(r#"{"exp":-1}"#),
            jwt(r#"{"iat":1}"#),
            jwt("[1]"),
            jwt("not json"),
            "a.!!!.c".to_string(),
        ] {
            assert_eq!(jwt_exp_ms(&t), None, "{t}");
        }
    }

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![],
            body: body.to_string(),
        }
    }

    const NOW: Millis = 784_111_777_000; // Sun, 06 Nov 1994 08:49:37 GMT

    #[test]
    fn a_provider_success_response_is_parsed() {
        let r = resp(
            200,
            r#"{"access_token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9","token_type":"Bearer","expires_in":3600,"scope":"accounts.read payments.ach.write"}"#,
        );
        let t = parse_token_response(&r, NOW).unwrap();
        assert_eq!(
            t.access_token.expose(),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
        );
        assert_eq!(t.expires_in_ms, Some(3_600_000));
        assert_eq!(
            t.scope,
            Some(vec![
                "accounts.read".to_string(),
                "payments.ach.write".to_string()
            ])
        );
        assert_eq!(t.jwt_exp_ms, None);
    }

    #[test]
    fn keycloak_extras_are_ignored_and_jwt_exp_is_filled() {
        let token = jwt(r#"{"exp":1700000300,"iat":1700000000}"#);
        let body = concat(&[
            r#"{"access_token":""#,
            &token,
            r#"","expires_in":300,"refresh_expires_in":0,"token_type":"Bearer","not-before-policy":0,"session_state":"abc","scope":"profile email"}"#,
        ]);
        let t = parse_token_response(&resp(200, &body), NOW).unwrap();
        assert_eq!(t.jwt_exp_ms, Some(1_700_000_300_000));
        assert_eq!(t.expires_in_ms, Some(300_000));
        assert_eq!(t.scope, Some(vec!["profile".into(), "email".into()]));
    }

    #[test]
    fn token_type_is_case_insensitive_bearer() {
        for tt in ["bearer", "BEARER", "Bearer"] {
            let body = concat(&[r#"{"access_token":"abc","token_type":""#, tt, r#""}"#]);
            assert!(parse_token_response(&resp(200, &body), NOW).is_ok(), "{tt}");
        }
    }

    #[test]
    fn other_token_types_are_refused_and_never_sent_as_bearer() {
        for body in [
            r#"{"access_token":"abc","token_type":"mac"}"#,
            r#"{"access_token":"abc","token_type":"DPoP"}"#,
            r#"{"access_token":"abc","token_type":"bearer "}"#,
            r#"{"access_token":"abc","token_type":""}"#,
            r#"{"access_token":"abc","token_type":1}"#,
            r#"{"access_token":"abc","token_type":["Bearer"]}"#,
            r#"{"access_token":"abc","token_type":{}}"#,
        ] {
            let e = parse_token_response(&resp(200, body), NOW).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidResponse, "{body}");
            assert!(
                e.message.contains("token type is unsupported"),
                "{}",
                e.message
            );
            assert!(e.message.contains("never sent as Bearer"), "{}", e.message);
        }
    }

    #[test]
    fn a_missing_or_null_token_type_is_bearer() {
        // The generic bank's document: its answer is this one member and nothing else.
        for body in [
            r#"{"access_token": "FOEtUHwg0das9PhsasVmgMGbZn7nWSgK"}"#,
            r#"{"access_token":"FOEtUHwg0das9PhsasVmgMGbZn7nWSgK","token_type":null}"#,
        ] {
            let t = parse_token_response(&resp(200, body), NOW).unwrap();
            assert_eq!(t.access_token.expose(), "FOEtUHwg0das9PhsasVmgMGbZn7nWSgK");
            assert_eq!((t.expires_in_ms, t.jwt_exp_ms, t.scope), (None, None, None));
        }
    }

    #[test]
    fn a_non_string_token_type_is_named_by_its_kind() {
        for (body, kind) in [
            (r#"{"access_token":"abc","token_type":1}"#, "a number,"),
            (r#"{"access_token":"abc","token_type":true}"#, "a boolean,"),
            (r#"{"access_token":"abc","token_type":[]}"#, "an array,"),
            (r#"{"access_token":"abc","token_type":""}"#, "empty,"),
        ] {
            let e = parse_token_response(&resp(200, body), NOW).unwrap_err();
            assert!(
                e.message.contains(&concat(&["the token_type is ", kind])),
                "{body}: {}",
                e.message
            );
        }
    }

    #[test]
    fn access_token_must_be_a_nonempty_b64token() {
        for (body, says) in [
            (r#"{"token_type":"bearer"}"#, "missing"),
            (r#"{"access_token":null,"token_type":"bearer"}"#, "missing"),
            (r#"{"access_token":"","token_type":"bearer"}"#, "empty"),
            (
                r#"{"access_token":42,"token_type":"bearer"}"#,
                "a number, not a string",
            ),
            (
                r#"{"access_token":"ab\r\nX-Evil: 1","token_type":"bearer"}"#,
                "RFC 6750",
            ),
            (
                r#"{"access_token":"a b","token_type":"bearer"}"#,
                "RFC 6750",
            ),
            (
                r#"{"access_token":"a\"b","token_type":"bearer"}"#,
                "RFC 6750",
            ),
        ] {
            let e = parse_token_response(&resp(200, body), NOW).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidResponse, "{body}");
            assert!(e.message.contains(says), "{body}: {}", e.message);
            assert!(!e.message.contains("X-Evil"));
        }
    }

    #[test]
    fn non_object_or_malformed_2xx_bodies_are_invalid_responses_naming_the_problem() {
        for (body, says) in [
            ("", "the body is empty"),
            ("  ", "the body is empty"),
            ("[]", "the body is an array, not a JSON object"),
            ("\"tok\"", "the body is a string"),
            (
                "<html>oops</html>",
                "not valid JSON (unexpected character at byte 0)",
            ),
            (r#"{"access_token":"abc""#, "not valid JSON"),
        ] {
            let e = parse_token_response(&resp(200, body), NOW).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidResponse);
            assert!(e.message.contains(says), "{body}: {}", e.message);
            assert!(!e.message.contains("oops"));
            assert_eq!(e.status, Some(200));
        }
    }

    #[test]
    fn expires_in_edge_cases() {
        let with = |v: &str| {
            let body = concat(&[
                r#"{"access_token":"abc","token_type":"bearer","expires_in":"#,
                v,
                "}",
            ]);
            parse_token_response(&resp(200, &body), NOW)
                .unwrap()
                .expires_in_ms
        };
        assert_eq!(with("3600"), Some(3_600_000));
        assert_eq!(with("\"3600\""), Some(3_600_000));
        assert_eq!(with("3600.9"), Some(3_600_000));
        assert_eq!(with("1e3"), Some(1_000_000));
        assert_eq!(with("0"), Some(0));
        assert_eq!(with("-5"), None);
        assert_eq!(with("\"NaN\""), None);
        assert_eq!(with("\"soon\""), None);
        assert_eq!(with("null"), None);
        assert_eq!(with("1e12"), None);
        assert_eq!(with("315360001"), None);
    }

    #[test]
    fn scope_forms() {
        let with = |v: &str| {
            let body = concat(&[
                r#"{"access_token":"abc","token_type":"bearer","scope":"#,
                v,
                "}",
            ]);
            parse_token_response(&resp(200, &body), NOW).unwrap().scope
        };
        assert_eq!(with(r#""a  b""#), Some(vec!["a".into(), "b".into()]));
        assert_eq!(with(r#""""#), Some(vec![]));
        assert_eq!(with(r#"["a","b"]"#), Some(vec!["a".into(), "b".into()]));
        assert_eq!(with(r#"["a",1]"#), None);
        assert_eq!(with("null"), None);
        let none = r#"{"access_token":"abc","token_type":"bearer"}"#;
        assert_eq!(
            parse_token_response(&resp(200, none), NOW).unwrap().scope,
            None
        );
    }

    #[test]
    fn oauth_error_body_is_mapped_whatever_the_status() {
        for status in [400, 401, 200] {
            let r = resp(
                status,
                r#"{"error":"invalid_client","error_description":"Invalid client credentials"}"#,
            );
            let e = parse_token_response(&r, NOW).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidClient);
            assert_eq!(e.status, Some(status));
            assert_eq!(e.oauth_error.as_deref(), Some("invalid_client"));
            assert_eq!(
                e.oauth_error_description.as_deref(),
                Some("Invalid client credentials")
            );
            assert!(e.message.contains("check the client id and secret"));
            assert!(e.may_have_reached_server);
        }
    }

    #[test]
    fn oauth_error_codes_and_odd_members() {
        let e = parse_token_response(&resp(400, r#"{"error":"invalid_scope"}"#), NOW).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidScope);
        let e = parse_token_response(&resp(400, r#"{"error":"slow_down"}"#), NOW).unwrap_err();
        assert_eq!(e.code, ErrorCode::RateLimited);
        let e = parse_token_response(
            &resp(400, r#"{"error":"weird","error_description":7}"#),
            NOW,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::TokenEndpointError);
        assert_eq!(e.oauth_error.as_deref(), Some("weird"));
        assert_eq!(e.oauth_error_description, None);
        assert!(!e.message.contains("weird"));
        let e = parse_token_response(&resp(400, r#"{"error":{"code":1}}"#), NOW).unwrap_err();
        assert_eq!(e.code, ErrorCode::TokenEndpointError);
        assert_eq!(e.oauth_error, None);
    }

    #[test]
    fn a_null_error_member_on_success_is_not_an_error() {
        let r = resp(
            200,
            r#"{"error":null,"access_token":"abc","token_type":"Bearer"}"#,
        );
        assert!(parse_token_response(&r, NOW).is_ok());
    }

    #[test]
    fn redirects_are_refused() {
        for status in [301, 302, 307, 308] {
            let mut r = resp(status, r#"{"error":"invalid_client"}"#);
            r.headers
                .push(("location".into(), "https://evil.example/token".into()));
            let e = parse_token_response(&r, NOW).unwrap_err();
            assert_eq!(e.code, ErrorCode::TokenEndpointError);
            assert!(e.message.contains("redirects are refused"));
            assert!(!e.message.contains("evil"));
            assert_eq!(e.status, Some(status));
        }
    }

    #[test]
    fn status_429_is_rate_limited_with_retry_after() {
        let mut r = resp(429, "Too Many Requests");
        r.headers.push(("retry-after".into(), "30".into()));
        let e = parse_token_response(&r, NOW).unwrap_err();
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert_eq!(e.retry_after_ms, Some(30_000));
    }

    #[test]
    fn status_401_without_oauth_error_is_invalid_client() {
        for body in ["", "Unauthorized", "{}"] {
            let e = parse_token_response(&resp(401, body), NOW).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidClient, "{body}");
            assert!(e.message.contains("check the client id and secret"));
        }
    }

    #[test]
    fn other_statuses_are_token_endpoint_errors_without_echoing_the_body() {
        let html = "<html><body>Bad Gateway secret-ish</body></html>";
        let mut r = resp(502, html);
        r.headers
            .push(("Retry-After".into(), "Sun, 06 Nov 1994 08:50:37 GMT".into()));
        let e = parse_token_response(&r, NOW).unwrap_err();
        assert_eq!(e.code, ErrorCode::TokenEndpointError);
        assert_eq!(
            e.message,
            "the token endpoint answered HTTP 502; try again later"
        );
        assert_eq!(e.status, Some(502));
        assert_eq!(e.retry_after_ms, Some(60_000));
        let e = parse_token_response(&resp(404, html), NOW).unwrap_err();
        assert_eq!(
            e.message,
            "the token endpoint answered HTTP 404: check the token URL"
        );
        let e = parse_token_response(&resp(400, html), NOW).unwrap_err();
        assert!(e
            .message
            .starts_with("the token endpoint answered HTTP 400 without an OAuth error"));
    }

    #[test]
    fn keycloak_unauthorized_client_for_bad_credentials_is_invalid_client() {
        for (status, description) in [
            (401, "Invalid client or Invalid client credentials"),
            (400, "Invalid client credentials"),
        ] {
            let body = concat(&[
                r#"{"error":"unauthorized_client","error_description":""#,
                description,
                r#""}"#,
            ]);
            let e = parse_token_response(&resp(status, &body), 0).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidClient, "{description}");
            assert_eq!(e.oauth_error.as_deref(), Some("unauthorized_client"));
        }
        for description in [
            "Public client not allowed to retrieve service account",
            "Client not allowed for direct access grants",
        ] {
            let body = concat(&[
                r#"{"error":"unauthorized_client","error_description":""#,
                description,
                r#""}"#,
            ]);
            let e = parse_token_response(&resp(401, &body), 0).unwrap_err();
            assert_eq!(e.code, ErrorCode::UnauthorizedClient, "{description}");
        }
    }

    fn s(v: &str) -> Json<'_> {
        Json::String(v.into())
    }
    fn n(v: &str) -> Json<'_> {
        Json::Number(v.into())
    }

    #[test]
    fn expires_in_accepts_numbers_and_numeric_strings() {
        assert_eq!(expires_in_secs(&n("3600")), Some(3600));
        assert_eq!(expires_in_secs(&s("3600")), Some(3600));
        assert_eq!(expires_in_secs(&n("3600.9")), Some(3600));
        assert_eq!(expires_in_secs(&n("1e3")), Some(1000));
        assert_eq!(expires_in_secs(&n("0")), Some(0));
        assert_eq!(expires_in_secs(&n("0.5")), Some(0));
        assert_eq!(expires_in_secs(&n("315360000")), Some(MAX_EXPIRES_IN_SECS));
    }

    #[test]
    fn expires_in_rejects_untrustworthy_values() {
        for v in [
            n("-1"),
            n("-0"),
            n("315360001"),
            n("1e400"),
            s("NaN"),
            s("Infinity"),
            s("abc"),
            s(" 3600"),
            s(""),
            s("0x10"),
            Json::Null,
            Json::Bool(true),
            Json::Array(vec![n("1")]),
        ] {
            assert_eq!(expires_in_secs(&v), None, "{v:?}");
        }
    }
}
