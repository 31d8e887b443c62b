//! QPay: the Keycloak token URL helper, the password-grant sign-in and the Credentials API.
//!
//! The password is used for one token request and dropped: it is never stored, and server
//! text that echoes it is scrubbed. The user token (5 minutes) is kept only by the
//! `QPayCredentials` object; when it expires, calls fail with `unauthorized` before sending.

use crate::oauth::token::{build_token_request, parse_token_response, Grant, TokenRequest};
use crate::oauth::{AuthMethod, Error, ErrorCode, Secret};
use crate::prelude::*;
use crate::providers::qpay::{self, CONSOLE_CLIENT_ID, DEFAULT_REALM, SANDBOX_BASE_URL};
use crate::util::json::Json;
use crate::util::redact::{scrub, secret_variants};
use crate::util::text::as_strs;
use crate::util::url::ParsedUrl;
use crate::util::{concat, HttpRequest, Millis};
use alloc::rc::Rc;
use js_sys::{Array, Object, Promise};
use wasm_bindgen::prelude::*;

use super::errors::{set, to_js};
use super::http::exchange;
use super::json::strings;
use super::options::Options;
use super::support;
use super::token_manager::{now_ms, scrub_error};

const MAX_BODY: u64 = 256 * 1024;

struct Place {
    base: ParsedUrl,
    token_url: String,
    fetch: JsValue,
    timeout_ms: u64,
}

fn place(o: &Options) -> Result<Place, Error> {
    if support::is_browser() && !o.boolean("dangerouslyAllowBrowser")?.unwrap_or(false) {
        return Err(Error::config(
            "qbank-connect handles passwords and client secrets and must run on a server, not \
             in a web page; set dangerouslyAllowBrowser: true only if you understand that risk",
        ));
    }
    let insecure = o.boolean("allowInsecureHttp")?.unwrap_or(false);
    let base = qpay::check_base_url(
        &o.string("baseUrl")?
            .unwrap_or_else(|| SANDBOX_BASE_URL.into()),
        insecure,
    )?;
    let realm = o.string("realm")?.unwrap_or_else(|| DEFAULT_REALM.into());
    let timeout_ms = o.timeout_ms()?;
    Ok(Place {
        token_url: qpay::token_url(&base, &realm)?,
        base,
        fetch: o
            .function("fetch")?
            .map_or(JsValue::UNDEFINED, JsValue::from),
        timeout_ms,
    })
}

/// The Keycloak token endpoint of a QPay realm:
/// `{baseUrl}/auth/realms/{realm}/protocol/openid-connect/token`. Options: `baseUrl` (default
/// the QPay sandbox), `realm` (default `qpay`), `allowInsecureHttp` (loopback only).
#[wasm_bindgen(js_name = qpayTokenUrl)]
pub fn qpay_token_url(options: JsValue) -> Result<String, JsValue> {
    let read = || -> Result<String, Error> {
        let o = Options::new(
            &options,
            "qpayTokenUrl",
            &["baseUrl", "realm", "allowInsecureHttp"],
            true,
        )?;
        Ok(place(&o)?.token_url)
    };
    read().map_err(|e| to_js(&e))
}

struct Session {
    place: Place,
    token: Secret,
    expires_at: Millis,
}

impl Session {
    fn scrub(&self, text: &str) -> String {
        scrub(text, &[self.token.expose()])
    }

    /// One Credentials API call; resolves to its answer read as `answer` says (an empty body is
    /// read as `null`).
    async fn call(
        &self,
        method: &'static str,
        url: String,
        body: Option<String>,
        answer: Answer,
    ) -> Result<JsValue, Error> {
        if now_ms() >= self.expires_at {
            return Err(Error::new(
                ErrorCode::Unauthorized,
                "the QPay user token has expired (it lives 5 minutes): sign in again with \
                 QPayCredentials.signIn; nothing was sent",
            ));
        }
        let mut headers = vec![
            (
                String::from("Authorization"),
                concat(&["Bearer ", self.token.expose()]),
            ),
            (String::from("Accept"), String::from("application/json")),
        ];
        if body.is_some() {
            headers.push((
                String::from("Content-Type"),
                String::from("application/json"),
            ));
        }
        let req = HttpRequest {
            method,
            url,
            headers,
            body,
        };
        let p = &self.place;
        let resp = exchange(
            &p.fetch,
            &req,
            "the QPay Credentials API",
            p.timeout_ms,
            MAX_BODY,
            &JsValue::UNDEFINED,
        )
        .await?;
        if !(200..300).contains(&resp.status) {
            let detail = qpay::error_detail(&resp.body).map(|d| self.scrub(&d));
            return Err(qpay::api_error(resp.status, detail.as_deref()));
        }
        if resp.body.trim().is_empty() {
            return answer.to_js(&Json::Null);
        }
        answer.to_js(&qpay::parse_body(&resp.body)?)
    }
}

fn str_list(value: &JsValue, what: &str) -> Result<Vec<String>, Error> {
    if !Array::is_array(value) {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            concat(&[what, " must be an array of role names; nothing was sent"]),
        ));
    }
    let mut out = Vec::new();
    for v in Array::from(value).iter() {
        out.push(v.as_string().ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidArgument,
                concat(&[what, " must hold strings; nothing was sent"]),
            )
        })?);
    }
    Ok(out)
}

fn snake_to_camel(key: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A client record as JS, keys camelCased; a secret, should the server send one, is dropped.
fn record_to_js(v: &Json) -> JsValue {
    let o = Object::new();
    if let Some(members) = v.as_object() {
        for (k, val) in members {
            if k == "client_secret" || k == "clientSecret" || k == "secret" {
                continue;
            }
            set(&o, &snake_to_camel(k), &super::json::to_js(val));
        }
    }
    o.into()
}

/// A bad argument object is the caller's mistake in a call, not in configuration.
fn as_argument(mut e: Error) -> Error {
    if e.code == ErrorCode::Config {
        e.code = ErrorCode::InvalidArgument;
    }
    e
}

/// What a Credentials API answer becomes in JavaScript.
enum Answer {
    WhoAmI,
    Roles,
    Created,
    Record,
    Clients,
    Nothing,
}

impl Answer {
    fn to_js(&self, v: &Json) -> Result<JsValue, Error> {
        Ok(match self {
            Answer::WhoAmI => {
                let w = qpay::whoami_from_json(v)?;
                let o = Object::new();
                set(&o, "tenantType", &JsValue::from_str(&w.tenant_type));
                set(&o, "tenantId", &JsValue::from_str(&w.tenant_id));
                if let Some(p) = &w.parent_tenant_id {
                    set(&o, "parentTenantId", &JsValue::from_str(p));
                }
                o.into()
            }
            Answer::Roles => strings(&qpay::roles_from_json(v)?).into(),
            Answer::Created => {
                let c = qpay::created_from_json(v)?;
                let o = Object::new();
                set(&o, "id", &JsValue::from_str(&c.id));
                set(&o, "clientId", &JsValue::from_str(&c.client_id));
                set(
                    &o,
                    "clientSecret",
                    &support::make_one_time_secret(c.client_secret.expose()),
                );
                set(&o, "tenantId", &JsValue::from_str(&c.tenant_id));
                o.into()
            }
            Answer::Record => record_to_js(v),
            Answer::Clients => qpay::clients_from_json(v)?
                .iter()
                .map(|c| {
                    let o = Object::new();
                    set(&o, "id", &JsValue::from_str(&c.id));
                    set(&o, "clientId", &JsValue::from_str(&c.client_id));
                    if let Some(t) = &c.tenant_id {
                        set(&o, "tenantId", &JsValue::from_str(t));
                    }
                    if let Some(n) = &c.name {
                        set(&o, "name", &JsValue::from_str(n));
                    }
                    if let Some(roles) = &c.roles {
                        set(&o, "roles", &strings(roles));
                    }
                    JsValue::from(o)
                })
                .collect::<Array>()
                .into(),
            Answer::Nothing => JsValue::UNDEFINED,
        })
    }
}

/// The QPay Credentials API, authorized by a user's 5-minute token from the password grant.
#[wasm_bindgen]
pub struct QPayCredentials {
    session: Rc<Session>,
}

#[wasm_bindgen]
impl QPayCredentials {
    /// Signs in with the password grant (public client `qpay-console`) and resolves to a
    /// `QPayCredentials`. Options: `username`, `password`, `baseUrl`, `realm`, `clientId`,
    /// `timeoutMs`, `fetch`, `allowInsecureHttp`, `dangerouslyAllowBrowser`. The password is
    /// used for this one request and not kept.
    #[wasm_bindgen(js_name = signIn)]
    pub fn sign_in(options: JsValue) -> Promise {
        let start = || -> Result<(Place, HttpRequest, Vec<String>), Error> {
            let o = Options::new(
                &options,
                "QPayCredentials.signIn",
                &[
                    "username",
                    "password",
                    "baseUrl",
                    "realm",
                    "clientId",
                    "timeoutMs",
                    "fetch",
                    "allowInsecureHttp",
                    "dangerouslyAllowBrowser",
                ],
                false,
            )?;
            let place = place(&o)?;
            let username = o.required_string("username")?;
            let password = Secret::new(o.required_string("password")?);
            if username.is_empty() || password.expose().is_empty() {
                return Err(Error::config("username and password must not be empty"));
            }
            let client_id = o
                .string("clientId")?
                .unwrap_or_else(|| CONSOLE_CLIENT_ID.into());
            let scrub_list = secret_variants(&username, password.expose());
            let grant = Grant::Password { username, password };
            let req = build_token_request(&TokenRequest {
                token_url: &place.token_url,
                client_id: &client_id,
                client_secret: None,
                grant: &grant,
                scope: &[],
                auth_method: AuthMethod::ClientSecretPost,
                extra_params: &[],
            });
            Ok((place, req, scrub_list))
        };
        let (place, req, scrub_list) = match start() {
            Ok(v) => v,
            Err(e) => return Promise::reject(&to_js(&e)),
        };
        super::promise(async move {
            let sent_at = now_ms();
            let scrubbed = |e: Error| {
                let list = as_strs(&scrub_list);
                to_js(&scrub_error(e, &list))
            };
            let resp = exchange(
                &place.fetch,
                &req,
                "the QPay token endpoint",
                place.timeout_ms,
                MAX_BODY,
                &JsValue::UNDEFINED,
            )
            .await
            .map_err(scrubbed)?;
            let answer = parse_token_response(&resp, now_ms()).map_err(scrubbed)?;
            let lifetime = answer.expires_in_ms.unwrap_or(300_000);
            let session = Session {
                place,
                token: answer.access_token,
                // Keep a 10 % margin, so a call never leaves with a token about to expire.
                expires_at: sent_at.saturating_add(lifetime - lifetime / 10),
            };
            Ok(QPayCredentials {
                session: Rc::new(session),
            }
            .into())
        })
    }

    fn run(
        &self,
        method: &'static str,
        url: Result<String, Error>,
        body: Option<String>,
        answer: Answer,
    ) -> Promise {
        let url = match url {
            Ok(u) => u,
            Err(e) => return Promise::reject(&to_js(&e)),
        };
        let s = Rc::clone(&self.session);
        super::promise(async move {
            s.call(method, url, body, answer)
                .await
                .map_err(|e| to_js(&e))
        })
    }

    fn client_url(&self, id: &JsValue) -> Result<String, Error> {
        let id = id.as_string().ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidArgument,
                "the client record id must be a string; nothing was sent",
            )
        })?;
        qpay::client_url(&self.session.place.base, &id)
    }

    /// `{ tenantType, tenantId, parentTenantId? }`.
    pub fn whoami(&self) -> Promise {
        let url = qpay::credentials_url(&self.session.place.base, "/whoami");
        self.run("GET", Ok(url), None, Answer::WhoAmI)
    }

    /// The role names this tenant may assign.
    pub fn roles(&self) -> Promise {
        let url = qpay::credentials_url(&self.session.place.base, "/roles");
        self.run("GET", Ok(url), None, Answer::Roles)
    }

    /// Creates a client: `{ tenantId, name, roles }` → `{ id, clientId, clientSecret, tenantId }`
    /// where `clientSecret` is a `OneTimeSecret` (QPay returns it only once).
    #[wasm_bindgen(js_name = createClient)]
    pub fn create_client(&self, spec: JsValue) -> Promise {
        let read = || -> Result<String, Error> {
            let o = Options::new(&spec, "createClient", &["tenantId", "name", "roles"], false)
                .map_err(as_argument)?;
            let roles = str_list(&o.get("roles"), "roles")?;
            let tenant = o
                .string("tenantId")
                .map_err(as_argument)?
                .unwrap_or_default();
            let name = o.string("name").map_err(as_argument)?.unwrap_or_default();
            qpay::create_client_body(&tenant, &name, &roles)
        };
        match read() {
            Ok(body) => {
                let url = qpay::credentials_url(&self.session.place.base, "/clients");
                self.run("POST", Ok(url), Some(body), Answer::Created)
            }
            Err(e) => Promise::reject(&to_js(&e)),
        }
    }

    /// `GET /credentials/clients`: this tenant's clients, `[{ id, clientId, tenantId?, name?,
    /// roles? }]`, never a secret (one in the answer is dropped).
    #[wasm_bindgen(js_name = listClients)]
    pub fn list_clients(&self) -> Promise {
        let url = qpay::credentials_url(&self.session.place.base, "/clients");
        self.run("GET", Ok(url), None, Answer::Clients)
    }

    /// The client record (never its secret).
    #[wasm_bindgen(js_name = getClient)]
    pub fn get_client(&self, id: JsValue) -> Promise {
        self.run("GET", self.client_url(&id), None, Answer::Record)
    }

    /// Replaces the client's roles.
    #[wasm_bindgen(js_name = updateClientRoles)]
    pub fn update_client_roles(&self, id: JsValue, roles: JsValue) -> Promise {
        match str_list(&roles, "roles").and_then(|r| qpay::update_roles_body(&r)) {
            Ok(body) => self.run("PUT", self.client_url(&id), Some(body), Answer::Record),
            Err(e) => Promise::reject(&to_js(&e)),
        }
    }

    /// Deletes the client; its credentials stop working.
    #[wasm_bindgen(js_name = deleteClient)]
    pub fn delete_client(&self, id: JsValue) -> Promise {
        self.run("DELETE", self.client_url(&id), None, Answer::Nothing)
    }

    /// When the user token expires, less a 10 % margin (epoch ms).
    #[wasm_bindgen(getter, js_name = expiresAt)]
    pub fn expires_at(&self) -> f64 {
        self.session.expires_at as f64
    }

    /// A redacted description.
    #[wasm_bindgen(js_name = toString)]
    pub fn to_js_string(&self) -> String {
        concat(&[
            "QPayCredentials { baseUrl: ",
            &self.session.place.base.href(),
            ", token: [redacted] }",
        ])
    }

    /// A redacted JSON form.
    #[wasm_bindgen(js_name = toJSON)]
    pub fn to_json(&self) -> Object {
        let o = Object::new();
        set(
            &o,
            "baseUrl",
            &JsValue::from_str(&self.session.place.base.href()),
        );
        set(&o, "token", &JsValue::from_str("[redacted]"));
        o
    }
}
