//! `QBankClient`: the QBank Connect API on top of a `TokenManager`.
//!
//! Every request carries the Bearer token, so every URL is decided by the core's `path` rules
//! before anything is sent, and only ever on the configured API origin.

use crate::prelude::*;
use alloc::rc::Rc;

use crate::oauth::{Error, ErrorCode};
use crate::providers::qbank::api_retry::{ApiRetry, Next, RetryRules};
use crate::providers::qbank::balances::{balance_read, balance_url, bearer_get, BalanceRead};
use crate::providers::qbank::path::resolve_api_url;
use crate::util::http_date::parse_retry_after;
use crate::util::json;
use crate::util::redact::scrub;
use crate::util::url::{check_endpoint_url, ParsedUrl};
use crate::util::www_auth::bearer_error;
use crate::util::{push_u64, HttpResponse};
use js_sys::{Array, Function, Object, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::errors::{set, to_js, to_js_with};
use super::http::{exchange, failure, field, read_answer};
use super::json::to_js as json_to_js;
use super::options::Options;
use super::support;
use super::token_manager::{now_ms, Config, Inner, TokenManager, TOKEN_OPTIONS};

/// The production endpoints from the QBank Connect documents.
const PRODUCTION_TOKEN_URL: &str = "https://auth.qbankconnect.com/token";
const PRODUCTION_API_BASE: &str = "https://api.qbankconnect.com";
/// The largest API answer `getBalance` reads.
const MAX_API_BODY: u64 = 1024 * 1024;
/// The QBank API, as messages name it.
const API: &str = "the QBank API";

struct Client {
    tokens: Rc<Inner>,
    api_base: ParsedUrl,
}

/// The error for an API answer that is not a success, with the bank's problem body.
fn api_error(resp: &HttpResponse, scrub_text: &dyn Fn(&str) -> String) -> JsValue {
    let status = resp.status;
    let challenge = resp.header("www-authenticate").and_then(bearer_error);
    let bearer_code = challenge.as_ref().and_then(|c| c.error.as_deref());
    let mut code_text = String::new();
    push_u64(&mut code_text, u64::from(status));
    let (code, what) = match status {
        401 => (
            ErrorCode::Unauthorized,
            "the QBank API refused a freshly issued token (HTTP 401); check that this client may \
             use the API and that the token URL and API belong to the same environment",
        ),
        403 if bearer_code == Some("insufficient_scope") => (
            ErrorCode::InsufficientScope,
            "the token lacks a scope this request needs (HTTP 403 insufficient_scope); add it to \
             the `scope` option and make sure the client is allowed it",
        ),
        403 => (
            ErrorCode::Forbidden,
            "the QBank API refused this request (HTTP 403): the client may not access this \
             resource",
        ),
        404 => (
            ErrorCode::NotFound,
            "the QBank API found no such resource (HTTP 404): check the account id",
        ),
        429 => (
            ErrorCode::RateLimited,
            "the QBank API is rate limiting this client (HTTP 429); wait retryAfterMs before \
             trying again",
        ),
        500..=599 => (
            ErrorCode::ServerError,
            "the QBank API failed (HTTP 5xx); retry later",
        ),
        300..=399 => (
            ErrorCode::ApiError,
            "the QBank API answered with a redirect, which is not followed with a token; \
             check apiBaseUrl",
        ),
        _ => (ErrorCode::ApiError, "the QBank API refused the request"),
    };
    let body = scrub_text(&resp.body);
    let problem = json::parse(&body).ok();
    let mut message = String::from(what);
    if code == ErrorCode::ApiError || code == ErrorCode::ServerError {
        message.push_str(" [HTTP ");
        message.push_str(&code_text);
        message.push(']');
    }
    // RFC 7807 title and detail, or an RFC 6750 description, say what the bank meant.
    let detail = problem
        .as_ref()
        .and_then(|p| {
            p.get("detail")
                .or_else(|| p.get("title"))
                .or_else(|| p.get("message"))
        })
        .and_then(json::Json::as_str)
        .map(String::from)
        .or_else(|| challenge.as_ref().and_then(|c| c.error_description.clone()));
    if let Some(d) = detail {
        message.push_str(": ");
        message.push_str(&scrub_text(&d));
    }
    let retry = resp
        .header("retry-after")
        .and_then(|v| parse_retry_after(v, now_ms()));
    let e = Error::new(code, message)
        .with_status(status)
        .with_retry_after(retry)
        .reached(true);
    let mut extra: Vec<(&str, JsValue)> = Vec::new();
    if let Some(p) = &problem {
        extra.push(("problem", json_to_js(p)));
    }
    if let Some(scope) = challenge.and_then(|c| c.scope) {
        // The scopes space-separated, by a loop: `join` links alloc's generic join.
        let mut joined = String::new();
        for (i, s) in scope.iter().enumerate() {
            if i > 0 {
                joined.push(' ');
            }
            joined.push_str(s);
        }
        let scope = scrub_text(&joined);
        extra.push(("requiredScope", JsValue::from_str(&scope)));
    }
    to_js_with(&e, &extra)
}

fn access_token(token: &JsValue) -> String {
    field(token, "accessToken").as_string().unwrap_or_default()
}

impl Client {
    fn scrubber(&self, token: &str) -> impl Fn(&str) -> String + '_ {
        let token = String::from(token);
        move |text: &str| scrub(&self.tokens.cfg.scrub(text), &[token.as_str()])
    }

    /// A token for the next attempt. `rejected`: the token the API just answered 401 to (the
    /// fleet's `after_unauthorized`: across a fleet sharing a store, one new token request).
    async fn token(
        &self,
        signal: &JsValue,
        wait_until: &Option<Function>,
        rejected: Option<String>,
    ) -> Result<String, JsValue> {
        let t = self
            .tokens
            .token_now(signal, wait_until.clone(), rejected.as_deref())
            .await?;
        Ok(access_token(&t))
    }

    /// After a 401 with `token`: forgets it at once (the `token_invalidated` event, as before),
    /// and names it for the next token.
    fn refused(&self, token: String) -> Option<String> {
        self.tokens.invalidate(Some(&token));
        Some(token)
    }

    /// A GET with the Bearer token, retried as `providers::qbank::api_retry` decides for
    /// [`RetryRules::BALANCE`] (one refresh after a 401, bounded waits after a 429 or 503).
    /// Resolves to a 2xx answer.
    ///
    /// `first` is an answer the package's JavaScript fast path already received with the token
    /// it names: it is read as the first attempt's answer, so nothing is sent twice.
    async fn get(
        &self,
        url: String,
        signal: JsValue,
        wait_until: Option<Function>,
        mut first: Option<(String, JsValue)>,
    ) -> Result<HttpResponse, JsValue> {
        let cfg: &Config = &self.tokens.cfg;
        let mut retry = ApiRetry::new(RetryRules::BALANCE);
        let mut rejected = None;
        loop {
            let (token, resp) = match first.take() {
                Some((token, answer)) => {
                    let resp = read_answer(&answer, API, cfg.timeout_ms, MAX_API_BODY);
                    (token, resp)
                }
                None => {
                    let token = self.token(&signal, &wait_until, rejected.take()).await?;
                    let req = bearer_get(&url, &token);
                    let resp =
                        exchange(&cfg.fetch, &req, API, cfg.timeout_ms, MAX_API_BODY, &signal)
                            .await;
                    (token, resp)
                }
            };
            let resp = resp.map_err(|e| to_js(&e))?;
            match retry.answer(resp.status, resp.header("retry-after"), now_ms()) {
                Next::Done => return Ok(resp),
                Next::Refresh => rejected = self.refused(token),
                Next::Wait(ms) => {
                    JsFuture::from(support::sleep(ms as f64, &signal)).await?;
                }
                Next::GiveUp => return Err(api_error(&resp, &self.scrubber(&token))),
            }
        }
    }

    async fn balance(
        self: Rc<Self>,
        account_id: String,
        (signal, wait_until): (JsValue, Option<Function>),
        first: Option<(String, JsValue)>,
    ) -> Result<JsValue, JsValue> {
        let url = balance_url(&self.api_base, &account_id).map_err(|e| to_js(&e))?;
        let resp = self.get(url, signal, wait_until, first).await?;
        let read = read_to_js(balance_read(&account_id, &resp.body).map_err(|e| to_js(&e))?);
        Ok(support::balance_result(&read, &account_id, &resp.body))
    }

    async fn fetch(self: Rc<Self>, path: String, init: JsValue) -> Result<JsValue, JsValue> {
        let url = resolve_api_url(&self.api_base, &path).map_err(|e| to_js(&e))?;
        let signal = field(&init, "signal");
        if !(signal.is_undefined() || signal.is_null() || support::is_signal(&signal)) {
            let e = Error::new(
                ErrorCode::InvalidArgument,
                "fetch's init.signal must be an AbortSignal; nothing was sent",
            );
            return Err(to_js(&e));
        }
        let wait_until = field(&init, "waitUntil").dyn_into::<Function>().ok();
        let rules = RetryRules::fetch(&support::method_of(&init), support::replayable(&init));
        let mut retry = ApiRetry::new(rules);
        let cfg: &Config = &self.tokens.cfg;
        let mut rejected = None;
        loop {
            let token = self.token(&signal, &wait_until, rejected.take()).await?;
            let answer = JsFuture::from(support::fetch_with_token(
                &cfg.fetch,
                &url,
                &init,
                &token,
                cfg.timeout_ms as f64,
            ))
            .await?;
            if field(&answer, "ok").as_bool() != Some(true) {
                return Err(to_js(&failure(&answer, API, cfg.timeout_ms, 0)));
            }
            let response = field(&answer, "response");
            let status = field(&response, "status").as_f64().unwrap_or(0.0) as u16;
            // Its Retry-After is not read: these rules never wait (a 429 or 503 is the caller's).
            match retry.answer(status, None, now_ms()) {
                Next::Refresh => rejected = self.refused(token),
                // Done or not, the caller gets the Response itself.
                Next::Done | Next::Wait(_) | Next::GiveUp => return Ok(response),
            }
        }
    }
}

/// `getBalance`'s account id, which must be a string.
fn read_account_id(v: &JsValue) -> Result<String, Error> {
    v.as_string().ok_or_else(|| {
        Error::new(
            ErrorCode::InvalidArgument,
            "the account id must be a string; nothing was sent",
        )
    })
}

/// `getBalance`'s options: the caller's signal and waitUntil.
fn balance_options(options: &JsValue) -> Result<(JsValue, Option<Function>), Error> {
    let o = Options::new(options, "getBalance", &["signal", "waitUntil"], true)?;
    Ok((o.signal("signal")?, o.function("waitUntil")?))
}

fn environment(o: &Options) -> Result<(Option<String>, String), Error> {
    let env = o.get("environment");
    if env.is_undefined() || env.as_string().as_deref() == Some("production") {
        return Ok((
            Some(PRODUCTION_TOKEN_URL.into()),
            PRODUCTION_API_BASE.into(),
        ));
    }
    if env.is_string() {
        return Err(Error::config(
            "option `environment` must be \"production\" or { tokenUrl, apiBaseUrl } (for a \
             sandbox: sandbox and production credentials differ)",
        ));
    }
    let e = Options::new(&env, "environment", &["tokenUrl", "apiBaseUrl"], false)?;
    Ok((
        Some(e.required_string("tokenUrl")?),
        e.required_string("apiBaseUrl")?,
    ))
}

/// The QBank Connect API client: balances, and an authorized `fetch` for other endpoints.
#[wasm_bindgen]
pub struct QBankClient {
    client: Rc<Client>,
}

#[wasm_bindgen]
impl QBankClient {
    /// `new QBankClient(options)`: every TokenManager option, plus `environment`.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> Result<QBankClient, JsValue> {
        let build = || -> Result<QBankClient, Error> {
            let mut known: Vec<&str> = TOKEN_OPTIONS.to_vec();
            known.push("environment");
            let o = Options::new(&options, "QBankClient", &known, false)?;
            let (token_url, api_base) = environment(&o)?;
            let cfg = Config::from_options(&o, token_url, &["balances.read"])?;
            let api_base =
                check_endpoint_url("apiBaseUrl", &api_base, cfg.allow_insecure_http, false)?;
            Ok(QBankClient {
                client: Rc::new(Client {
                    tokens: Inner::new(cfg),
                    api_base,
                }),
            })
        };
        build().map_err(|e| to_js(&e))
    }

    /// Resolves to `{ accountId, availableBalance, ledgerBalance, currency?, asOf?, raw }`, the
    /// amounts as exact decimal strings.
    #[wasm_bindgen(js_name = getBalance)]
    pub fn get_balance(&self, account_id: JsValue, options: JsValue) -> Promise {
        self.balance_after(account_id, options, None, JsValue::UNDEFINED)
    }

    /// Internal, for the package's JavaScript `getBalance` (the fast path with a cached token):
    /// checks the id and options exactly as `getBalance` does, throwing the same errors, and
    /// returns the URL to GET.
    #[wasm_bindgen(js_name = __balanceUrl)]
    pub fn balance_url(&self, account_id: JsValue, options: JsValue) -> Result<String, JsValue> {
        let check = || {
            let id = read_account_id(&account_id)?;
            balance_options(&options)?;
            balance_url(&self.client.api_base, &id)
        };
        check().map_err(|e| to_js(&e))
    }

    /// Internal, for the fast path: reads a 2xx balance answer's body (`providers::qbank::balances::
    /// balance_read`): a number, the plan by which the package's JavaScript builds the result
    /// from `JSON.parse(body)` (no text crosses back), or the result as JSON text (to which it
    /// adds `raw` as `JSON.parse(body)` when the text has none).
    #[wasm_bindgen(js_name = __balanceRead)]
    pub fn balance_read(&self, account_id: &str, body: &str) -> Result<JsValue, JsValue> {
        Ok(read_to_js(
            balance_read(account_id, body).map_err(|e| to_js(&e))?,
        ))
    }

    /// Internal, for the fast path: `getBalance`, with the first answer (what `support.js`'s
    /// `send` resolved to, sent with `token`) already received: a 401, 429 or 503, or a transport
    /// failure, handled exactly as `getBalance` handles its own.
    #[wasm_bindgen(js_name = __balanceAfter)]
    pub fn balance_after(
        &self,
        account_id: JsValue,
        options: JsValue,
        token: Option<String>,
        answer: JsValue,
    ) -> Promise {
        let read = || Ok::<_, Error>((read_account_id(&account_id)?, balance_options(&options)?));
        match read() {
            Ok((id, call)) => {
                let first = token.map(|t| (t, answer));
                super::promise(Rc::clone(&self.client).balance(id, call, first))
            }
            Err(e) => Promise::reject(&to_js(&e)),
        }
    }

    /// Internal, for the fast path: `[fetch, timeoutMs, maxBytes]`, what every API request uses
    /// (`fetch` is undefined when the global one is used).
    #[wasm_bindgen(js_name = __transport)]
    pub fn transport(&self) -> Array {
        let cfg = &self.client.tokens.cfg;
        Array::of3(
            &cfg.fetch,
            &JsValue::from_f64(cfg.timeout_ms as f64),
            &JsValue::from_f64(MAX_API_BODY as f64),
        )
    }

    /// `fetch(path, init)` on the API origin with the Bearer token; resolves to the `Response`.
    pub fn fetch(&self, path: JsValue, init: JsValue) -> Promise {
        let Some(path) = path.as_string() else {
            let e = Error::new(
                ErrorCode::InvalidArgument,
                "fetch takes a path (or a URL on the API origin) as a string",
            );
            return Promise::reject(&to_js(&e));
        };
        if !init.is_undefined() && !init.is_null() && !init.is_object() {
            let e = Error::new(
                ErrorCode::InvalidArgument,
                "fetch's second argument must be a RequestInit object",
            );
            return Promise::reject(&to_js(&e));
        }
        super::promise(Rc::clone(&self.client).fetch(path, init))
    }

    /// Its TokenManager (shares the token and its state).
    #[wasm_bindgen(getter)]
    pub fn tokens(&self) -> TokenManager {
        TokenManager::from_inner(Rc::clone(&self.client.tokens))
    }

    /// Closes its TokenManager (the same Promise: see `TokenManager.close`).
    pub fn close(&self) -> Promise {
        self.client.tokens.close()
    }

    /// A redacted description.
    #[wasm_bindgen(js_name = toString)]
    pub fn to_js_string(&self) -> String {
        self.client.tokens.cfg.describe("QBankClient")
    }

    /// A redacted JSON form.
    #[wasm_bindgen(js_name = toJSON)]
    pub fn to_json(&self) -> Object {
        let o = self.client.tokens.cfg.to_json();
        set(
            &o,
            "apiBaseUrl",
            &JsValue::from_str(&self.client.api_base.href()),
        );
        o
    }
}

/// What `support.js`'s `balanceResult` takes: a plan as a number, or the result's JSON text.
fn read_to_js(read: BalanceRead) -> JsValue {
    match read {
        BalanceRead::Plan(bits) => JsValue::from_f64(f64::from(bits)),
        BalanceRead::Json(text) => JsValue::from_str(&text),
    }
}
