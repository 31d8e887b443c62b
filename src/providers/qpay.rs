//! QPay: a Keycloak realm (token endpoint path, 300-second tokens) and its Credentials API,
//! sans-IO: URLs, request bodies and answer parsing.
//!
//! The document's field names are snake_case (`tenant_id`, `client_secret`); camelCase is
//! accepted too, since nothing is lost by being lenient about the spelling of a name.

use crate::oauth::{Error, ErrorCode, Secret};
use crate::prelude::*;
use crate::util::concat;
use crate::util::encode::percent_encode;
use crate::util::json::{self, Json};
use crate::util::url::{check_endpoint_url, ParsedUrl};

/// The QPay sandbox from the document.
pub const SANDBOX_BASE_URL: &str = "https://sandbox.qpay.quecto.com.br";
/// The realm from the document.
pub const DEFAULT_REALM: &str = "qpay";
/// The public client of the console's password sign-in.
pub const CONSOLE_CLIENT_ID: &str = "qpay-console";

/// Checks a QPay base URL and returns it parsed (https, or loopback http when allowed).
pub fn check_base_url(base: &str, allow_insecure_http: bool) -> Result<ParsedUrl, Error> {
    Ok(check_endpoint_url(
        "baseUrl",
        base,
        allow_insecure_http,
        false,
    )?)
}

fn trimmed(base: &ParsedUrl) -> String {
    let href = base.href();
    String::from(href.trim_end_matches('/'))
}

/// Whether `s` is `.` or `..`: [`percent_encode`] leaves them as they are, and a URL
/// parser would resolve them away to another path of the origin.
fn is_dot_segment(s: &str) -> bool {
    s == "." || s == ".."
}

/// `{base}/auth/realms/{realm}/protocol/openid-connect/token`, the realm as one encoded segment.
pub fn token_url(base: &ParsedUrl, realm: &str) -> Result<String, Error> {
    if realm.is_empty()
        || is_dot_segment(realm)
        || realm
            .chars()
            .any(|c| c == '/' || c.is_whitespace() || c.is_control())
    {
        return Err(Error::config(
            "the QPay realm must be a non-empty name other than . or .., without '/', \
             whitespace or control characters (the document's realm is \"qpay\")",
        ));
    }
    Ok(concat(&[
        &trimmed(base),
        "/auth/realms/",
        &percent_encode(realm),
        "/protocol/openid-connect/token",
    ]))
}

/// `{base}/credentials{path}`.
pub fn credentials_url(base: &ParsedUrl, path: &str) -> String {
    concat(&[&trimmed(base), "/credentials", path])
}

/// `{base}/credentials/clients/{id}`; the id must be a usable single path segment.
pub fn client_url(base: &ParsedUrl, id: &str) -> Result<String, Error> {
    if id.is_empty() || is_dot_segment(id) || id.len() > 256 {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            "the client record id must be the `id` that createClient returned; nothing was sent",
        ));
    }
    Ok(credentials_url(
        base,
        &concat(&["/clients/", &percent_encode(id)]),
    ))
}

fn push_roles(out: &mut String, roles: &[String]) {
    out.push('[');
    for (i, r) in roles.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_string(out, r);
    }
    out.push(']');
}

fn invalid_argument(what: &str) -> Error {
    Error::new(
        ErrorCode::InvalidArgument,
        concat(&[what, "; nothing was sent"]),
    )
}

/// Checks a list of roles: at least one, each a non-empty name without whitespace.
pub fn check_roles(roles: &[String]) -> Result<(), Error> {
    if roles.is_empty() {
        return Err(invalid_argument(
            "roles must list at least one role (see roles() for what your tenant may assign)",
        ));
    }
    if roles
        .iter()
        .any(|r| r.is_empty() || r.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(invalid_argument(
            "each role must be a non-empty name without whitespace (e.g. \"issuer\")",
        ));
    }
    Ok(())
}

/// The body of `POST /credentials/clients`.
pub fn create_client_body(tenant_id: &str, name: &str, roles: &[String]) -> Result<String, Error> {
    if tenant_id.trim().is_empty() {
        return Err(invalid_argument(
            "tenantId is required: whoami() returns your tenant id",
        ));
    }
    if name.trim().is_empty() {
        return Err(invalid_argument(
            "name is required: a name for the new client",
        ));
    }
    check_roles(roles)?;
    let mut out = String::from("{\"tenant_id\":");
    json::write_string(&mut out, tenant_id);
    out.push_str(",\"name\":");
    json::write_string(&mut out, name);
    out.push_str(",\"roles\":");
    push_roles(&mut out, roles);
    out.push('}');
    Ok(out)
}

/// The body of `PUT /credentials/clients/{id}`.
pub fn update_roles_body(roles: &[String]) -> Result<String, Error> {
    check_roles(roles)?;
    let mut out = String::from("{\"roles\":");
    push_roles(&mut out, roles);
    out.push('}');
    Ok(out)
}

fn invalid(what: &str) -> Error {
    Error::invalid_response(concat(&["the QPay Credentials API answer ", what]))
}

/// Parses an answer body that must be a JSON object or array.
pub fn parse_body(body: &str) -> Result<Json<'_>, Error> {
    match json::parse(body) {
        Ok(v @ (Json::Object(_) | Json::Array(_))) => Ok(v),
        Ok(_) => Err(invalid("is not a JSON object")),
        Err(e) => Err(invalid(&concat(&[
            "is not valid JSON (",
            &e.describe(),
            ")",
        ]))),
    }
}

/// A string member by its snake_case or camelCase name.
pub fn string_field<'a>(v: &'a Json, snake: &str, camel: &str) -> Option<&'a str> {
    v.first_of(&[snake, camel]).and_then(|(_, v)| v.as_str())
}

fn required<'a>(v: &'a Json, snake: &'static str, camel: &str) -> Result<&'a str, Error> {
    string_field(v, snake, camel)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid(&concat(&["has no ", snake])))
}

/// `GET /credentials/whoami`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WhoAmI {
    /// `processor`, `issuer` or `embosser`.
    pub tenant_type: String,
    /// The caller's tenant.
    pub tenant_id: String,
    /// The parent tenant, if any (a processor has none).
    pub parent_tenant_id: Option<String>,
}

/// Reads a whoami answer.
pub fn whoami_from_json(v: &Json) -> Result<WhoAmI, Error> {
    Ok(WhoAmI {
        tenant_type: required(v, "tenant_type", "tenantType")?.into(),
        tenant_id: required(v, "tenant_id", "tenantId")?.into(),
        parent_tenant_id: string_field(v, "parent_tenant_id", "parentTenantId").map(String::from),
    })
}

/// A newly created client: its secret is shown this once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedClient {
    /// The internal record id (for get, update and delete).
    pub id: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret, returned only at creation.
    pub client_secret: Secret,
    /// The tenant it belongs to.
    pub tenant_id: String,
}

/// Reads a create-client answer.
pub fn created_from_json(v: &Json) -> Result<CreatedClient, Error> {
    Ok(CreatedClient {
        id: required(v, "id", "id")?.into(),
        client_id: required(v, "client_id", "clientId")?.into(),
        client_secret: Secret::new(required(v, "client_secret", "clientSecret")?),
        tenant_id: required(v, "tenant_id", "tenantId")?.into(),
    })
}

/// An answer's list: the answer itself when it is an array, else its member `key`.
fn list_in<'v, 'a>(v: &'v Json<'a>, key: &str, missing: &str) -> Result<&'v [Json<'a>], Error> {
    match v {
        Json::Array(items) => Ok(items.as_slice()),
        other => other
            .get(key)
            .and_then(Json::as_array)
            .ok_or_else(|| invalid(missing)),
    }
}

/// Role names, each a string or an object with a `name`.
fn role_names(list: &[Json]) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for r in list {
        let name = r.as_str().or_else(|| r.get("name").and_then(Json::as_str));
        out.push(String::from(
            name.ok_or_else(|| invalid("has a role that is not a name"))?,
        ));
    }
    Ok(out)
}

/// Reads a roles answer: a list of names, as an array or under `roles`, items as strings or
/// objects with a `name`.
pub fn roles_from_json(v: &Json) -> Result<Vec<String>, Error> {
    role_names(list_in(v, "roles", "has no roles list")?)
}

/// One client of `GET /credentials/clients`. There is no secret field: one in the answer is
/// never read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSummary {
    /// The internal record id (for get, update and delete).
    pub id: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The tenant it belongs to, if the answer says.
    pub tenant_id: Option<String>,
    /// Its name, if the answer says.
    pub name: Option<String>,
    /// Its roles, if the answer says.
    pub roles: Option<Vec<String>>,
}

/// Reads a list-clients answer: the records as an array or under `clients`. The document shows
/// no paging, so none is followed. Each record needs its `id` and `client_id`.
pub fn clients_from_json(v: &Json) -> Result<Vec<ClientSummary>, Error> {
    let mut out = Vec::new();
    for c in list_in(v, "clients", "has no clients list")? {
        if c.as_object().is_none() {
            return Err(invalid("has a client that is not a JSON object"));
        }
        let roles = match c.get("roles") {
            None | Some(Json::Null) => None,
            Some(Json::Array(list)) => Some(role_names(list)?),
            Some(_) => return Err(invalid("has a client whose roles are not a list")),
        };
        out.push(ClientSummary {
            id: required(c, "id", "id")?.into(),
            client_id: required(c, "client_id", "clientId")?.into(),
            tenant_id: string_field(c, "tenant_id", "tenantId").map(String::from),
            name: string_field(c, "name", "name").map(String::from),
            roles,
        });
    }
    Ok(out)
}

/// The code and advice for a Credentials API answer that is not a success.
pub fn api_error(status: u16, detail: Option<&str>) -> Error {
    let (code, what) = match status {
        400 | 422 => (
            ErrorCode::InvalidArgument,
            "QPay refused the request as invalid",
        ),
        401 => (
            ErrorCode::Unauthorized,
            "QPay refused the user token (it lives 5 minutes): sign in again with \
             QPayCredentials.signIn",
        ),
        403 => (
            ErrorCode::Forbidden,
            "QPay does not allow this for your tenant (check the tenant id and roles())",
        ),
        404 => (ErrorCode::NotFound, "QPay has no such client record"),
        429 => (ErrorCode::RateLimited, "QPay is rate limiting; retry later"),
        500..=599 => (
            ErrorCode::ServerError,
            "the QPay Credentials API failed; retry later",
        ),
        _ => (
            ErrorCode::ApiError,
            "the QPay Credentials API refused the request",
        ),
    };
    let mut message = String::from(what);
    let mut code_text = String::new();
    crate::util::push_u64(&mut code_text, u64::from(status));
    message.push_str(" [HTTP ");
    message.push_str(&code_text);
    message.push(']');
    if let Some(d) = detail.filter(|d| !d.is_empty()) {
        message.push_str(": ");
        message.push_str(d);
    }
    Error::new(code, message).with_status(status).reached(true)
}

/// The human part of an error body: `error_description`, `detail`, `message` or `error`.
pub fn error_detail(body: &str) -> Option<String> {
    let v = json::parse(body).ok()?;
    ["error_description", "detail", "message", "error", "title"]
        .iter()
        .find_map(|k| v.get(k).and_then(Json::as_str))
        .map(String::from)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::util::url::parse_url;

    fn parse_whoami(body: &str) -> Result<WhoAmI, Error> {
        whoami_from_json(&parse_body(body)?)
    }

    fn parse_created(body: &str) -> Result<CreatedClient, Error> {
        created_from_json(&parse_body(body)?)
    }

    fn parse_roles(body: &str) -> Result<Vec<String>, Error> {
        roles_from_json(&parse_body(body)?)
    }

    fn base() -> ParsedUrl {
        parse_url("https://sandbox.qpay.quecto.com.br/").unwrap()
    }

    #[test]
    fn keycloak_token_url_from_base_and_realm() {
        assert_eq!(
            token_url(&base(), "qpay").unwrap(),
            "https://sandbox.qpay.quecto.com.br/auth/realms/qpay/protocol/openid-connect/token"
        );
        assert_eq!(
            token_url(&parse_url("https://id.example/kc").unwrap(), "my realm")
                .unwrap_err()
                .code,
            ErrorCode::Config
        );
        assert!(token_url(&base(), "").is_err());
        assert!(token_url(&base(), "a/b").is_err());
    }

    #[test]
    fn realm_dot_segments_are_refused_like_record_ids() {
        // "{base}/auth/realms/../protocol/…" would resolve to "{base}/auth/protocol/…".
        for bad in [".", ".."] {
            let e = token_url(&base(), bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::Config, "{bad}");
            assert!(e.message.contains("other than . or .."), "{}", e.message);
        }
        // Dots inside a name, and percent signs (encoded as %25, never a %2E), are names: the
        // URL has no dot segment in any spelling (parse_url refuses those).
        for ok in ["...", ".qpay", "qpay.", "a..b", "%2e", "%2E%2E"] {
            let url = token_url(&base(), ok).unwrap();
            assert!(parse_url(&url).is_ok(), "{url}");
        }
    }

    #[test]
    fn credentials_urls_encode_the_record_id() {
        assert_eq!(
            credentials_url(&base(), "/whoami"),
            "https://sandbox.qpay.quecto.com.br/credentials/whoami"
        );
        assert_eq!(
            client_url(&base(), "a/b?c").unwrap(),
            "https://sandbox.qpay.quecto.com.br/credentials/clients/a%2Fb%3Fc"
        );
        for bad in ["", ".", ".."] {
            assert_eq!(
                client_url(&base(), bad).unwrap_err().code,
                ErrorCode::InvalidArgument
            );
        }
    }

    #[test]
    fn request_bodies_are_valid_json_with_escapes() {
        let body = create_client_body("t-1", "my \"client\"\n\u{1}", &["issuer".into()]).unwrap();
        assert_eq!(
            body,
            r#"{"tenant_id":"t-1","name":"my \"client\"\n\u0001","roles":["issuer"]}"#
        );
        let parsed = json::parse(&body).unwrap();
        assert_eq!(
            parsed.get("name").and_then(Json::as_str),
            Some("my \"client\"\n\u{1}")
        );
        assert_eq!(
            update_roles_body(&["issuer".into(), "x".into()]).unwrap(),
            r#"{"roles":["issuer","x"]}"#
        );
        assert!(update_roles_body(&[]).is_err());
        assert!(update_roles_body(&["a b".into()]).is_err());
        assert!(create_client_body(" ", "n", &["issuer".into()]).is_err());
        assert!(create_client_body("t", "", &["issuer".into()]).is_err());
    }

    #[test]
    fn answers_are_read_in_either_spelling() {
        let w =
            parse_whoami(r#"{"tenant_type":"issuer","tenant_id":"t-1","parent_tenant_id":"p-1"}"#)
                .unwrap();
        assert_eq!(
            (
                w.tenant_type.as_str(),
                w.tenant_id.as_str(),
                w.parent_tenant_id.as_deref()
            ),
            ("issuer", "t-1", Some("p-1"))
        );
        let w =
            parse_whoami(r#"{"tenantType":"processor","tenantId":"p-1","parentTenantId":null}"#)
                .unwrap();
        assert_eq!(w.parent_tenant_id, None);
        assert!(parse_whoami(r#"{"tenant_type":"issuer"}"#).is_err());
        let c = parse_created(
            r#"{"id":"r1","client_id":"c1","client_secret":"s3cr3t-value","tenant_id":"t-1"}"#,
        )
        .unwrap();
        assert_eq!(c.client_secret.expose(), "s3cr3t-value");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(parse_created(r#"{"id":"r1","client_id":"c1","tenant_id":"t"}"#).is_err());
        assert_eq!(
            parse_roles(r#"["issuer"]"#).unwrap(),
            vec!["issuer".to_string()]
        );
        assert_eq!(
            parse_roles(r#"{"roles":[{"name":"issuer"},"x"]}"#).unwrap(),
            vec!["issuer".to_string(), "x".to_string()]
        );
        assert_eq!(
            parse_body("[1").unwrap_err().code,
            ErrorCode::InvalidResponse
        );
        assert_eq!(
            parse_body("3").unwrap_err().code,
            ErrorCode::InvalidResponse
        );
    }

    fn parse_clients(body: &str) -> Result<Vec<ClientSummary>, Error> {
        clients_from_json(&parse_body(body)?)
    }

    #[test]
    fn client_lists_are_read_in_either_spelling_and_shape() {
        let list = parse_clients(
            r#"[{"id":"r1","client_id":"c1","tenant_id":"t-1","name":"n","roles":["issuer"]},
                {"id":"r2","clientId":"c2","tenantId":"t-1","roles":[{"name":"issuer"}]},
                {"id":"r3","client_id":"c3","roles":null}]"#,
        )
        .unwrap();
        let summary = |id: &str, client_id: &str, tenant_id: Option<&str>, name: Option<&str>| {
            ClientSummary {
                id: id.into(),
                client_id: client_id.into(),
                tenant_id: tenant_id.map(String::from),
                name: name.map(String::from),
                roles: Some(vec!["issuer".into()]),
            }
        };
        assert_eq!(
            list,
            [
                summary("r1", "c1", Some("t-1"), Some("n")),
                summary("r2", "c2", Some("t-1"), None),
                ClientSummary {
                    roles: None,
                    ..summary("r3", "c3", None, None)
                },
            ]
        );
        // Under `clients`, and empty.
        let wrapped = parse_clients(r#"{"clients":[{"id":"r1","client_id":"c1"}]}"#).unwrap();
        assert_eq!(wrapped[0].client_id, "c1");
        assert_eq!(parse_clients("[]").unwrap(), []);
        assert_eq!(parse_clients(r#"{"clients":[]}"#).unwrap(), []);
    }

    #[test]
    fn a_secret_in_a_client_list_is_never_read() {
        let list = parse_clients(
            r#"[{"id":"r1","client_id":"c1","client_secret":"s3cr3t-value",
                 "clientSecret":"s3cr3t-value","secret":"s3cr3t-value"}]"#,
        )
        .unwrap();
        assert_eq!(
            (list[0].id.as_str(), list[0].client_id.as_str()),
            ("r1", "c1")
        );
        assert!(!format!("{list:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_client_list_that_is_not_one_is_invalid_response() {
        for body in [
            r#"{"items":[]}"#,
            r#"{"clients":{}}"#,
            r#"["c1"]"#,
            r#"[{"client_id":"c1"}]"#,
            r#"[{"id":"r1"}]"#,
            r#"[{"id":"","client_id":"c1"}]"#,
            r#"[{"id":"r1","client_id":"c1","roles":"issuer"}]"#,
            r#"[{"id":"r1","client_id":"c1","roles":[7]}]"#,
        ] {
            let e = parse_clients(body).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidResponse, "{body}");
            assert!(e.may_have_reached_server);
        }
        assert_eq!(
            clients_from_json(&Json::Null).unwrap_err().code,
            ErrorCode::InvalidResponse
        );
    }

    #[test]
    fn errors_map_to_codes_with_advice() {
        assert_eq!(api_error(401, None).code, ErrorCode::Unauthorized);
        assert!(api_error(401, None).message.contains("sign in again"));
        assert_eq!(api_error(403, Some("no")).code, ErrorCode::Forbidden);
        assert_eq!(api_error(404, None).code, ErrorCode::NotFound);
        assert_eq!(api_error(400, None).code, ErrorCode::InvalidArgument);
        assert_eq!(api_error(503, None).code, ErrorCode::ServerError);
        assert_eq!(api_error(409, None).code, ErrorCode::ApiError);
        assert_eq!(
            error_detail(r#"{"error":"x","error_description":"why"}"#).as_deref(),
            Some("why")
        );
        assert_eq!(error_detail("<html>"), None);
    }
}
