//! Every example in the four provider documents (`../shared/provider-docs/`: QBank Connect's
//! two "Getting Started" pages, QPay's "Credentials & Authentication", the generic bank's
//! "Banking API" authentication page), copied verbatim, fed to the parser or builder that
//! handles it: each answer is accepted as written, each URL and request is built as shown.
//!
//! What the documents do not show is said where it would be: none of them has an example
//! error body or balance body, and QPay's client-credentials "Response:" is empty (the answer
//! shape is Keycloak's, tested in `src/oauth/token.rs`). The JavaScript half, where only the edge
//! reads an answer (the generic bank end to end, a token URL with a query), is in
//! `tests/js/provider-docs.test.mjs`.
#![cfg(not(target_arch = "wasm32"))]

use qbank_connect::oauth::config::{check_client_id, check_client_secret, check_token_url};
use qbank_connect::oauth::token::{build_token_request, parse_token_response, Grant, TokenRequest};
use qbank_connect::oauth::{AuthMethod, Secret};
use qbank_connect::providers::qbank::balances::{
    balance_read, balance_url, bearer_get, parse_balance,
};
use qbank_connect::providers::qbank::path::check_account_id;
use qbank_connect::providers::qpay;
use qbank_connect::util::json;
use qbank_connect::util::url::parse_url;
use qbank_connect::util::HttpResponse;

const NOW: u64 = 1_796_000_000_000;

fn ok(body: &str) -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.into(),
    }
}

// ---- QBank Connect (documents 000 and 001: the same examples, byte for byte) ----

/// §2.2 of both QBank documents.
const QBANK_TOKEN_ANSWER: &str = r#"{
"access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
"token_type": "Bearer",
"expires_in": 3600,
"scope": "accounts.read payments.ach.write"
}"#;
const QBANK_DOC_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...";
/// §3's curl: the account id (its last group has 11 hex digits: not a UUID, and still an id).
const QBANK_DOC_ACCOUNT: &str = "a1b2c3d4-e5f6-7890-1234-567890abcde";

#[test]
fn qbank_token_answer_is_accepted_as_written() {
    let t = parse_token_response(&ok(QBANK_TOKEN_ANSWER), NOW).unwrap();
    assert_eq!(t.access_token.expose(), QBANK_DOC_TOKEN);
    assert_eq!(t.expires_in_ms, Some(3_600_000));
    assert_eq!(
        t.scope.as_deref(),
        Some(
            &[
                "accounts.read".to_string(),
                "payments.ach.write".to_string()
            ][..]
        )
    );
    // The elided "..." makes it no JWT (five parts), so the lifetime is expires_in's alone.
    assert_eq!(t.jwt_exp_ms, None);
}

#[test]
fn qbank_token_request_is_the_documented_form_post() {
    let secret = Secret::new("the-secret");
    let scope = [
        "accounts.read".to_string(),
        "payments.ach.write".to_string(),
    ];
    let req = build_token_request(&TokenRequest {
        token_url: "https://auth.qbankconnect.com/token",
        client_id: "the-client",
        client_secret: Some(&secret),
        grant: &Grant::ClientCredentials,
        scope: &scope,
        auth_method: AuthMethod::ClientSecretPost,
        extra_params: &[],
    });
    assert_eq!(
        (req.method, req.url.as_str()),
        ("POST", "https://auth.qbankconnect.com/token")
    );
    assert!(req.headers.contains(&(
        "Content-Type".into(),
        "application/x-www-form-urlencoded".into()
    )));
    assert_eq!(
        req.body.as_deref(),
        Some("grant_type=client_credentials&client_id=the-client&client_secret=the-secret&scope=accounts.read+payments.ach.write")
    );
}

#[test]
fn qbank_balance_request_is_the_documented_curl() {
    check_account_id(QBANK_DOC_ACCOUNT).unwrap();
    let base = parse_url("https://api.qbankconnect.com").unwrap();
    let url = balance_url(&base, QBANK_DOC_ACCOUNT).unwrap();
    assert_eq!(
        url,
        "https://api.qbankconnect.com/v1/balances/a1b2c3d4-e5f6-7890-1234-567890abcde"
    );
    // §2.3: "Authorization | Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..."
    let req = bearer_get(&url, QBANK_DOC_TOKEN);
    assert!(req.headers.contains(&(
        "Authorization".into(),
        "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...".into()
    )));
}

/// Neither QBank document shows a balance body: one names the members ("`available_balance`
/// and `ledger_balance`"), the other says "the available balance and ledger balance". A body
/// with those two members and nothing else (no account id, currency or date) is a balance.
#[test]
fn qbank_balance_with_only_the_two_documented_members_is_accepted() {
    for body in [
        r#"{"available_balance": "1234.56", "ledger_balance": "1300.00"}"#,
        r#"{"available_balance": 1234.56, "ledger_balance": 1300.00}"#,
    ] {
        let b = parse_balance(QBANK_DOC_ACCOUNT, body).unwrap();
        assert_eq!(
            (&*b.available_balance, &*b.ledger_balance),
            ("1234.56", "1300.00")
        );
        assert_eq!((b.currency, b.as_of), (None, None));
        assert!(balance_read(QBANK_DOC_ACCOUNT, body).is_ok());
    }
}

// ---- the generic bank (document 003) ----

/// The document's whole answer, as printed (a member without its braces).
const GENERIC_TOKEN_ANSWER: &str = r#""access_token": "FOEtUHwg0das9PhsasVmgMGbZn7nWSgK""#;

#[test]
fn generic_bank_token_answer_is_accepted_as_written() {
    // The document prints the member alone; the server's body is that member in an object.
    let body = ["{", GENERIC_TOKEN_ANSWER, "}"].concat();
    let t = parse_token_response(&ok(&body), NOW).unwrap();
    assert_eq!(t.access_token.expose(), "FOEtUHwg0das9PhsasVmgMGbZn7nWSgK");
    // No token_type: Bearer. No expires_in, not a JWT: the manager's default lifetime (3600 s,
    // the document's "expires after one hour") applies; a 401 after that is answered by the
    // refresh-and-retry path (tests/js/provider-docs.test.mjs).
    assert_eq!((t.expires_in_ms, t.jwt_exp_ms, t.scope), (None, None, None));
    // "placed in an HTTP Bearer authentication header"
    let req = bearer_get("https://bank.example/v1/x", t.access_token.expose());
    assert!(req.headers.contains(&(
        "Authorization".into(),
        "Bearer FOEtUHwg0das9PhsasVmgMGbZn7nWSgK".into()
    )));
}

#[test]
fn generic_bank_token_request_has_the_secret_in_the_post_body_only() {
    // Its curl: client_id=abc, client_secret=xyz, grant_type=client_credentials, Accept JSON,
    // and "only provide the client secret via the POST body" (client_secret_post, the default).
    check_client_id("abc").unwrap();
    check_client_secret("xyz").unwrap();
    let secret = Secret::new("xyz");
    let url = check_token_url("https://bank.example/token", false).unwrap();
    let req = build_token_request(&TokenRequest {
        token_url: &url,
        client_id: "abc",
        client_secret: Some(&secret),
        grant: &Grant::ClientCredentials,
        scope: &[],
        auth_method: AuthMethod::ClientSecretPost,
        extra_params: &[],
    });
    assert_eq!(
        req.body.as_deref(),
        Some("grant_type=client_credentials&client_id=abc&client_secret=xyz")
    );
    assert!(req
        .headers
        .contains(&("Accept".into(), "application/json".into())));
    assert!(!req.url.contains("xyz"));
    assert!(req.headers.iter().all(|(_, v)| !v.contains("xyz")));
}

// ---- QPay (document 002) ----

/// "2. Find your tenant ID", Response.
const QPAY_WHOAMI_ANSWER: &str = r#"{
"tenant_type": "issuer",
"tenant_id": "your-tenant-id",
"parent_tenant_id": "parent-processor-tenant-id"
}"#;

/// "3. Create a client", Response.
const QPAY_CREATED_ANSWER: &str = r#"{
"id": "internal-record-id",
"client_id": "abc123...",
"client_secret": "supersecret...",
"tenant_id": "your-tenant-id"
}"#;

#[test]
fn qpay_whoami_answer_is_accepted_as_written() {
    let w = qpay::whoami_from_json(&qpay::parse_body(QPAY_WHOAMI_ANSWER).unwrap()).unwrap();
    assert_eq!(
        (
            w.tenant_type.as_str(),
            w.tenant_id.as_str(),
            w.parent_tenant_id.as_deref()
        ),
        (
            "issuer",
            "your-tenant-id",
            Some("parent-processor-tenant-id")
        )
    );
}

#[test]
fn qpay_created_client_answer_is_accepted_and_usable_as_written() {
    let c = qpay::created_from_json(&qpay::parse_body(QPAY_CREATED_ANSWER).unwrap()).unwrap();
    assert_eq!(
        (c.id.as_str(), c.client_id.as_str(), c.tenant_id.as_str()),
        ("internal-record-id", "abc123...", "your-tenant-id")
    );
    assert_eq!(c.client_secret.expose(), "supersecret...");
    // The id and secret as given are usable as a TokenManager's clientId and clientSecret, and
    // the record id as the {id} of the document's management calls.
    check_client_id(&c.client_id).unwrap();
    check_client_secret(c.client_secret.expose()).unwrap();
    let base = qpay::check_base_url(qpay::SANDBOX_BASE_URL, false).unwrap();
    assert_eq!(
        qpay::client_url(&base, &c.id).unwrap(),
        "https://sandbox.qpay.quecto.com.br/credentials/clients/internal-record-id"
    );
}

#[test]
fn qpay_urls_and_request_bodies_are_the_documented_ones() {
    let base = qpay::check_base_url(qpay::SANDBOX_BASE_URL, false).unwrap();
    // Both curls of the token endpoint (password and client-credentials grants).
    assert_eq!(
        qpay::token_url(&base, qpay::DEFAULT_REALM).unwrap(),
        "https://sandbox.qpay.quecto.com.br/auth/realms/qpay/protocol/openid-connect/token"
    );
    for (path, url) in [
        (
            "/whoami",
            "https://sandbox.qpay.quecto.com.br/credentials/whoami",
        ),
        (
            "/clients",
            "https://sandbox.qpay.quecto.com.br/credentials/clients",
        ),
        (
            "/roles",
            "https://sandbox.qpay.quecto.com.br/credentials/roles",
        ),
    ] {
        assert_eq!(qpay::credentials_url(&base, path), url);
    }
    // The request bodies of "Create a client" and "Update client roles", compared as JSON.
    let same = |ours: &str, doc: &str| {
        assert_eq!(
            json::parse(ours).unwrap(),
            json::parse(doc).unwrap(),
            "{ours}"
        );
    };
    same(
        &qpay::create_client_body(
            "your-tenant-id",
            "my-integration-client",
            &["issuer".into()],
        )
        .unwrap(),
        r#"{
"tenant_id": "your-tenant-id",
"name": "my-integration-client",
"roles": ["issuer"]
}"#,
    );
    same(
        &qpay::update_roles_body(&["issuer".into()]).unwrap(),
        r#"{"roles": ["issuer"]}"#,
    );
    // The sign-in's public client.
    assert_eq!(qpay::CONSOLE_CLIENT_ID, "qpay-console");
}
