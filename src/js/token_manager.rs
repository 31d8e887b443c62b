//! `TokenManager`: the JavaScript face of the core token cache.
//!
//! Every exported method takes `&self` and keeps no `RefCell` borrow across an `await`, so
//! overlapping calls from JavaScript never meet wasm-bindgen's "recursive use of an object".
//! Token requests are shared by all callers through one JavaScript promise per flight; each
//! caller waits on it with its own abort signal and a watchdog (a Worker cancels a promise
//! started by a request that has ended, so a shared flight may never settle).

use crate::prelude::*;
use alloc::rc::{Rc, Weak};
use core::cell::{Cell, RefCell};

use crate::oauth::cache::{CacheState, CachedToken, FlightId, Poll, TokenCache};
use crate::oauth::config::{
    check_client_id, check_client_secret, check_extra_params, check_seconds, check_token_url,
    parse_scope_list, parse_scope_string,
};
use crate::oauth::policy::RefreshPolicy;
use crate::oauth::token::{build_token_request, parse_token_response, Grant, TokenRequest};
use crate::oauth::{AuthMethod, Error, ErrorCode, Secret};
use crate::util::redact::{scrub, secret_variants};
use crate::util::text::as_strs;
use crate::util::{concat, Millis};
use js_sys::{Function, Object, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use super::errors::{set, to_js};
use super::http::exchange;
use super::json::strings;
use super::options::{Options, StringOrList};
use super::support;

/// The option names of a `TokenManager` (a `QBankClient` accepts these and its own).
pub const TOKEN_OPTIONS: [&str; 16] = [
    "tokenUrl",
    "clientId",
    "clientSecret",
    "scope",
    "authMethod",
    "extraParams",
    "refreshAheadSeconds",
    "expiryMarginSeconds",
    "defaultLifetimeSeconds",
    "timeoutMs",
    "fetch",
    "waitUntil",
    "autoRefresh",
    "allowInsecureHttp",
    "dangerouslyAllowBrowser",
    "onEvent",
];

/// The largest token endpoint answer read: tokens are small, a huge body is a wrong URL.
const MAX_TOKEN_BODY: u64 = 256 * 1024;
/// How long a waiter gives a shared flight beyond its own request timeout before deciding the
/// flight was lost (cancelled with the request that started it, in Workers).
const WATCHDOG_GRACE_MS: u64 = 2_000;

/// A validated configuration.
pub struct Config {
    /// The token endpoint.
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    secret: Secret,
    /// Every form in which the secret could be echoed back, for scrubbing server text.
    scrub_list: Vec<String>,
    /// Requested scopes.
    pub scope: Vec<String>,
    auth_method: AuthMethod,
    extra_params: Vec<(String, String)>,
    policy: RefreshPolicy,
    /// Timeout of one request, in ms.
    pub timeout_ms: u64,
    /// The injected fetch, or undefined.
    pub fetch: JsValue,
    wait_until: Option<Function>,
    auto_refresh: bool,
    /// Whether plain http to loopback is allowed.
    pub allow_insecure_http: bool,
    on_event: Option<Function>,
}

fn seconds(o: &Options, name: &str, default_ms: u64, allow_zero: bool) -> Result<u64, Error> {
    match o.number(name)? {
        Some(v) => check_seconds(name, v, allow_zero),
        None => Ok(default_ms),
    }
}

impl Config {
    /// Reads and checks the TokenManager options. `token_url` and `default_scope` may come from a
    /// preset (QBankClient) when the caller did not give them.
    pub fn from_options(
        o: &Options,
        token_url: Option<String>,
        default_scope: &[&str],
    ) -> Result<Config, Error> {
        let browser_ok = o.boolean("dangerouslyAllowBrowser")?.unwrap_or(false);
        if support::is_browser() && !browser_ok {
            return Err(Error::config(
                "qbank-connect holds a client secret and must run on a server (Node, Deno, Bun, \
                 Workers), not in a web page where any visitor could read the secret; set \
                 dangerouslyAllowBrowser: true only if you understand that risk",
            ));
        }
        let allow_insecure_http = o.boolean("allowInsecureHttp")?.unwrap_or(false);
        let token_url = match (o.string("tokenUrl")?, token_url) {
            (Some(u), _) | (None, Some(u)) => u,
            (None, None) => return Err(Error::config("option `tokenUrl` is required")),
        };
        let token_url = check_token_url(&token_url, allow_insecure_http)?;
        let client_id = o.required_string("clientId")?;
        check_client_id(&client_id)?;
        let secret = o.required_string("clientSecret")?;
        check_client_secret(&secret)?;
        let scrub_list = secret_variants(&client_id, &secret);
        let scope = match o.string_or_list("scope")? {
            Some(StringOrList::String(s)) => parse_scope_string(&s)?,
            Some(StringOrList::List(l)) => parse_scope_list(&l)?,
            None => {
                let mut list = Vec::new();
                for s in default_scope {
                    list.push(String::from(*s));
                }
                list
            }
        };
        let auth_method = match o.string("authMethod")?.as_deref() {
            None | Some("client_secret_post") => AuthMethod::ClientSecretPost,
            Some("client_secret_basic") => AuthMethod::ClientSecretBasic,
            Some(_) => {
                return Err(Error::config(
                    "option `authMethod` must be \"client_secret_post\" (the default) or \
                     \"client_secret_basic\"",
                ))
            }
        };
        let extra_params = o.string_map("extraParams")?;
        check_extra_params(&extra_params)?;
        let defaults = RefreshPolicy::default();
        let policy = RefreshPolicy {
            refresh_ahead_ms: seconds(o, "refreshAheadSeconds", defaults.refresh_ahead_ms, true)?,
            expiry_margin_ms: seconds(o, "expiryMarginSeconds", defaults.expiry_margin_ms, true)?,
            default_lifetime_ms: seconds(
                o,
                "defaultLifetimeSeconds",
                defaults.default_lifetime_ms,
                false,
            )?,
            ..defaults
        };
        let timeout_ms = o.timeout_ms()?;
        let policy = RefreshPolicy {
            // A flight is given up well after its own timeout could have ended it.
            flight_timeout_ms: timeout_ms
                .saturating_mul(2)
                .saturating_add(WATCHDOG_GRACE_MS),
            ..policy
        };
        Ok(Config {
            token_url,
            client_id,
            secret: Secret::new(secret),
            scrub_list,
            scope,
            auth_method,
            extra_params,
            policy,
            timeout_ms,
            fetch: o
                .function("fetch")?
                .map_or(JsValue::UNDEFINED, JsValue::from),
            wait_until: o.function("waitUntil")?,
            auto_refresh: o.boolean("autoRefresh")?.unwrap_or(true),
            allow_insecure_http,
            on_event: o.function("onEvent")?,
        })
    }

    /// Replaces every echoed form of the secret in server text.
    pub fn scrub(&self, text: &str) -> String {
        let list = as_strs(&self.scrub_list);
        scrub(text, &list)
    }

    /// Scrubs the server-provided parts of an error.
    pub fn scrub_error(&self, e: Error) -> Error {
        let list = as_strs(&self.scrub_list);
        scrub_error(e, &list)
    }

    /// The redacted description used by `toString`, `toJSON` and Node's `inspect`.
    pub fn describe(&self, class: &str) -> String {
        concat(&[
            class,
            " { tokenUrl: ",
            &self.token_url,
            ", clientId: ",
            &self.client_id,
            ", clientSecret: [redacted] }",
        ])
    }

    /// The redacted JSON form.
    pub fn to_json(&self) -> Object {
        let o = Object::new();
        set(&o, "tokenUrl", &JsValue::from_str(&self.token_url));
        set(&o, "clientId", &JsValue::from_str(&self.client_id));
        set(&o, "clientSecret", &JsValue::from_str("[redacted]"));
        set(&o, "scope", &strings(&self.scope));
        o
    }
}

/// Scrubs every server-provided text of an error (message, `error`, `error_description`) of the
/// given secrets, in each form they could be echoed in.
pub fn scrub_error(mut e: Error, secrets: &[&str]) -> Error {
    e.message = scrub(&e.message, secrets);
    e.oauth_error = e.oauth_error.take().map(|d| scrub(&d, secrets));
    e.oauth_error_description = e.oauth_error_description.take().map(|d| scrub(&d, secrets));
    e
}

/// The current time in epoch milliseconds.
pub fn now_ms() -> Millis {
    let t = support::now();
    if t > 0.0 {
        t as Millis
    } else {
        0
    }
}

/// A pending refresh-ahead timer: its handle and the callback it will call (dropping the callback
/// frees it; it must outlive the timer).
type ArmedTimer = (JsValue, Closure<dyn FnMut()>);

/// The shared state of one manager.
pub struct Inner {
    /// The configuration.
    pub cfg: Config,
    cache: RefCell<TokenCache>,
    /// The flight in progress and the promise its waiters share.
    flight: RefCell<Option<(FlightId, Promise)>>,
    /// The JS token object last handed out, reused while the token is the same.
    token_js: RefCell<Option<(Millis, Millis, JsValue)>>,
    timer: RefCell<Option<ArmedTimer>>,
    closed: Cell<bool>,
    /// The fast-path slot shared with `support.js` (see `fastPath` there).
    slot: JsValue,
    /// The last flight that failed, and why: a caller who forced a refresh gets the error even
    /// when the others keep the still-valid token.
    failed: RefCell<Option<(FlightId, Error)>>,
    /// What the slot holds now (the token's `acquired_at` and the `until`), to publish only changes.
    published: Cell<(Millis, Millis)>,
}

/// The result of one poll for a caller: an answer now, or a flight to wait for.
enum Step {
    Done(Result<JsValue, JsValue>),
    Wait(FlightId, Promise),
}

fn closed_error() -> Error {
    Error::new(
        ErrorCode::Closed,
        "this TokenManager was closed with close(); create a new one",
    )
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.clear_timer();
    }
}

impl Inner {
    /// A new manager's state.
    pub fn new(cfg: Config) -> Rc<Inner> {
        let seed = (support::random() * 9_007_199_254_740_992.0) as u64 ^ now_ms();
        Rc::new(Inner {
            cache: RefCell::new(TokenCache::new(cfg.policy, seed)),
            cfg,
            flight: RefCell::new(None),
            token_js: RefCell::new(None),
            timer: RefCell::new(None),
            closed: Cell::new(false),
            slot: support::make_slot(),
            failed: RefCell::new(None),
            published: Cell::new((0, 0)),
        })
    }

    fn emit(&self, kind: &str, extra: &[(&str, JsValue)]) {
        let Some(f) = &self.cfg.on_event else { return };
        let e = Object::new();
        set(&e, "type", &JsValue::from_str(kind));
        set(&e, "at", &JsValue::from(now_ms() as f64));
        let requests = self.cache.borrow().status(now_ms()).token_requests;
        set(&e, "tokenRequests", &JsValue::from(requests as f64));
        for (k, v) in extra {
            set(&e, k, v);
        }
        support::call_safely(f, &e);
    }

    /// The JS object for a token, reused while it is the same token.
    fn token_js(&self, t: &CachedToken) -> JsValue {
        if let Some((acquired, expires, obj)) = &*self.token_js.borrow() {
            if *acquired == t.acquired_at && *expires == t.expires_at {
                return obj.clone();
            }
        }
        let scope = strings(t.scope.as_ref().unwrap_or(&self.cfg.scope));
        let obj = support::make_token(t.access_token.expose(), t.expires_at as f64, scope);
        *self.token_js.borrow_mut() = Some((t.acquired_at, t.expires_at, obj.clone()));
        obj
    }

    /// The token object for a token the cache answered (or just got) at `now`, published in the
    /// fast-path slot for as long as the core vouches that a plain poll would answer the same.
    fn offer(&self, t: &CachedToken, now: Millis) -> JsValue {
        let obj = self.token_js(t);
        let until = self.cache.borrow().serve_until(now);
        match until {
            Some(until) if self.published.get() == (t.acquired_at, until) => {}
            Some(until) => {
                support::publish_slot(&self.slot, &obj, now as f64, until as f64);
                self.published.set((t.acquired_at, until));
            }
            None => self.clear_slot(),
        }
        obj
    }

    /// One poll of the cache for a caller, starting a flight when told to.
    fn step(self: &Rc<Self>, force: bool, wait_until: Option<&Function>) -> Step {
        if self.closed.get() {
            return Step::Done(Err(to_js(&closed_error())));
        }
        let now = now_ms();
        let poll = self.cache.borrow_mut().poll(now, force);
        if !matches!(poll, Poll::Ready(_)) {
            self.clear_slot();
        }
        match poll {
            Poll::Ready(t) => Step::Done(Ok(self.offer(&t, now))),
            Poll::ReadyAndRefresh(t, flight) => {
                let _ = self.start_flight(flight.id, true, wait_until);
                Step::Done(Ok(self.token_js(&t)))
            }
            Poll::Fail(e) => Step::Done(Err(to_js(&e))),
            Poll::Fetch(flight) => {
                let p = self.start_flight(flight.id, false, wait_until);
                Step::Wait(flight.id, p)
            }
            Poll::Wait(id) => {
                let shared = self
                    .flight
                    .borrow()
                    .as_ref()
                    .filter(|(f, _)| *f == id)
                    .map(|(_, p)| p.clone());
                // No promise for the flight (impossible by construction): a rejected one makes the
                // waiter give the flight up and poll again.
                Step::Wait(
                    id,
                    shared.unwrap_or_else(|| Promise::reject(&JsValue::NULL)),
                )
            }
        }
    }

    /// Starts the token request of `id`; its promise resolves to the token object.
    fn start_flight(
        self: &Rc<Self>,
        id: FlightId,
        background: bool,
        wait_until: Option<&Function>,
    ) -> Promise {
        self.clear_timer();
        self.clear_slot();
        let me = Rc::clone(self);
        let p = future_to_promise(async move { me.run_flight(id, background).await });
        *self.flight.borrow_mut() = Some((id, p.clone()));
        if let Some(w) = wait_until.or(self.cfg.wait_until.as_ref()) {
            support::keep_alive(w, &p);
        }
        if background {
            support::quiet(&p);
        }
        self.emit(
            "token_requested",
            &[("background", JsValue::from_bool(background))],
        );
        p
    }

    async fn run_flight(
        self: Rc<Self>,
        id: FlightId,
        background: bool,
    ) -> Result<JsValue, JsValue> {
        let cfg = &self.cfg;
        let grant = Grant::ClientCredentials;
        let req = build_token_request(&TokenRequest {
            token_url: &cfg.token_url,
            client_id: &cfg.client_id,
            client_secret: Some(&cfg.secret),
            grant: &grant,
            scope: &cfg.scope,
            auth_method: cfg.auth_method,
            extra_params: &cfg.extra_params,
        });
        let answer = exchange(
            &cfg.fetch,
            &req,
            "the token endpoint",
            cfg.timeout_ms,
            MAX_TOKEN_BODY,
            &JsValue::UNDEFINED,
        )
        .await
        .and_then(|resp| parse_token_response(&resp, now_ms()))
        .map_err(|e| cfg.scrub_error(e));
        let mut failure = answer.as_ref().err().map(|e| (e.code, e.retry_after_ms));
        *self.failed.borrow_mut() = answer.as_ref().err().map(|e| (id, e.clone()));
        let failures = |me: &Self| me.cache.borrow().status(now_ms()).consecutive_failures;
        let failures_before = failures(&self);
        let outcome = self.cache.borrow_mut().complete(id, now_ms(), answer);
        self.clear_slot();
        if self.flight.borrow().as_ref().is_some_and(|(f, _)| *f == id) {
            *self.flight.borrow_mut() = None;
        }
        if failure.is_none() {
            let expires = outcome.as_ref().map_or(0, |t| t.expires_at);
            self.emit(
                "token_acquired",
                &[("expiresAt", JsValue::from(expires as f64))],
            );
            // A token already inside its expiry margin on arrival counts as a failure in the
            // cache (it backs off): said the way failures are, with no token in the event.
            if failures(&self) > failures_before {
                failure = self.cache.borrow().backoff_error().map(|e| (e.code, None));
            }
        }
        if let Some((code, retry)) = failure {
            let mut extra = vec![
                ("code", JsValue::from_str(code.as_str())),
                ("background", JsValue::from_bool(background)),
            ];
            if let Some(ms) = retry {
                extra.push(("retryAfterMs", JsValue::from(ms as f64)));
            }
            self.emit("token_refresh_failed", &extra);
        }
        if self.closed.get() {
            return Err(to_js(&closed_error()));
        }
        self.schedule();
        match outcome {
            Ok(t) => Ok(self.offer(&t, now_ms())),
            Err(e) => Err(to_js(&e)),
        }
    }

    /// A caller's wait for a shared flight. If the flight never settles (lost with the Worker
    /// request that started it), the caller gives it up and polls again, once.
    async fn wait(
        self: Rc<Self>,
        mut id: FlightId,
        mut p: Promise,
        signal: JsValue,
        wait_until: Option<Function>,
        force: bool,
    ) -> Result<JsValue, JsValue> {
        let watchdog = (self.cfg.timeout_ms + WATCHDOG_GRACE_MS) as f64;
        for _ in 0..2 {
            match JsFuture::from(support::wait_shared(&p, &signal, watchdog)).await {
                Ok(v) if !support::is_stale(&v) => {
                    // forceRefresh asked for a new token: the old one is no answer to it.
                    let failed = self
                        .failed
                        .borrow()
                        .as_ref()
                        .filter(|(f, _)| *f == id)
                        .map(|(_, e)| e.clone());
                    return match failed {
                        Some(e) if force => Err(to_js(&e)),
                        _ => Ok(v),
                    };
                }
                Err(e) => return Err(e),
                _ => {}
            }
            self.abandon(id);
            match self.step(false, wait_until.as_ref()) {
                Step::Done(r) => return r,
                Step::Wait(next, q) => (id, p) = (next, q),
            }
        }
        Err(to_js(&Error::new(
            ErrorCode::Timeout,
            "the shared token request never completed; in Cloudflare Workers pass waitUntil \
             (ctx.waitUntil) so a token request outlives the request that started it",
        )))
    }

    /// Gives up a flight whose completion will never come.
    fn abandon(&self, id: FlightId) {
        let mut flight = self.flight.borrow_mut();
        if flight.as_ref().is_some_and(|(f, _)| *f == id) {
            *flight = None;
            drop(flight);
            self.clear_slot();
            let e = Error::new(ErrorCode::Timeout, "the token request was lost");
            let _ = self.cache.borrow_mut().complete(id, now_ms(), Err(e));
        }
    }

    /// A token for a Rust caller (the API client): no Promise when the token is at hand.
    pub async fn token_now(
        self: &Rc<Self>,
        signal: &JsValue,
        wait_until: Option<Function>,
    ) -> Result<JsValue, JsValue> {
        if support::is_aborted(signal) {
            return Err(support::abort_error());
        }
        match self.step(false, wait_until.as_ref()) {
            Step::Done(r) => r,
            Step::Wait(id, p) => {
                Rc::clone(self)
                    .wait(id, p, signal.clone(), wait_until, false)
                    .await
            }
        }
    }

    /// A caller's `getToken`.
    pub fn get_token(
        self: &Rc<Self>,
        force: bool,
        signal: JsValue,
        wait_until: Option<Function>,
    ) -> Promise {
        if support::is_aborted(&signal) {
            return Promise::reject(&support::abort_error());
        }
        match self.step(force, wait_until.as_ref()) {
            Step::Done(Ok(v)) => Promise::resolve(&v),
            Step::Done(Err(e)) => Promise::reject(&e),
            Step::Wait(id, p) => {
                future_to_promise(Rc::clone(self).wait(id, p, signal, wait_until, force))
            }
        }
    }

    fn clear_slot(&self) {
        support::clear_slot(&self.slot);
        self.published.set((0, 0));
    }

    fn clear_timer(&self) {
        let taken = self.timer.borrow_mut().take();
        if let Some((t, _callback)) = taken {
            support::clear_timer(&t);
        }
    }

    /// Arms the refresh-ahead timer where timers may run (not in Workers, not when closed or
    /// disabled). The timer holds only a weak reference, so a dropped manager is not kept alive.
    fn schedule(self: &Rc<Self>) {
        self.clear_timer();
        if !self.cfg.auto_refresh || self.closed.get() || support::is_workers() {
            return;
        }
        let now = now_ms();
        let Some(at) = self.cache.borrow().next_wakeup(now) else {
            return;
        };
        let weak: Weak<Inner> = Rc::downgrade(self);
        let callback = Closure::<dyn FnMut()>::once(move || {
            if let Some(me) = weak.upgrade() {
                let fired = me.timer.borrow_mut().take();
                me.on_timer();
                drop(fired);
            }
        });
        let handle = support::set_unref_timeout(
            callback.as_ref().unchecked_ref(),
            (at.saturating_sub(now) + 1) as f64,
        );
        *self.timer.borrow_mut() = Some((handle, callback));
    }

    fn on_timer(self: &Rc<Self>) {
        if self.closed.get() || self.cache.borrow().status(now_ms()).state != CacheState::Valid {
            return;
        }
        let poll = self.cache.borrow_mut().poll(now_ms(), false);
        match poll {
            Poll::ReadyAndRefresh(_, f) | Poll::Fetch(f) => {
                let _ = self.start_flight(f.id, true, None);
            }
            Poll::Ready(_) => self.schedule(),
            Poll::Wait(_) | Poll::Fail(_) => {}
        }
    }

    /// `invalidate(token?)`.
    pub fn invalidate(&self, token: Option<String>) -> bool {
        let dropped = self.cache.borrow_mut().invalidate(token.as_deref());
        if dropped {
            self.clear_slot();
            self.clear_timer();
            self.token_js.borrow_mut().take();
            self.emit("token_invalidated", &[]);
        }
        dropped
    }

    /// The `status` getter's object.
    pub fn status(&self) -> Object {
        let s = self.cache.borrow().status(now_ms());
        let o = Object::new();
        let state = match s.state {
            CacheState::Empty => "empty",
            CacheState::Valid => "valid",
            CacheState::Refreshing => "refreshing",
            CacheState::Expired => "expired",
        };
        set(
            &o,
            "state",
            &JsValue::from_str(if self.closed.get() { "closed" } else { state }),
        );
        if let Some(at) = s.expires_at {
            set(&o, "expiresAt", &JsValue::from(at as f64));
        }
        set(&o, "tokenRequests", &JsValue::from(s.token_requests as f64));
        set(
            &o,
            "consecutiveFailures",
            &JsValue::from(s.consecutive_failures),
        );
        if let Some(at) = s.retry_at {
            set(&o, "retryAt", &JsValue::from(at as f64));
        }
        o
    }

    /// `close()`: cancels the timer; later calls reject with `closed`.
    pub fn close(&self) {
        if !self.closed.replace(true) {
            self.clear_slot();
            self.clear_timer();
            self.token_js.borrow_mut().take();
            self.emit("closed", &[]);
        }
    }
}

/// Reads `{ signal, forceRefresh, waitUntil }`.
pub fn call_options(options: &JsValue) -> Result<(bool, JsValue, Option<Function>), Error> {
    let o = Options::new(
        options,
        "getToken",
        &["signal", "forceRefresh", "waitUntil"],
        true,
    )?;
    Ok((
        o.boolean("forceRefresh")?.unwrap_or(false),
        o.signal("signal")?,
        o.function("waitUntil")?,
    ))
}

/// Holds one client's OAuth 2.0 client-credentials token and refreshes it before it expires.
#[wasm_bindgen]
pub struct TokenManager {
    inner: Rc<Inner>,
}

impl TokenManager {
    /// Wraps shared state (for `QBankClient.tokens`).
    pub fn from_inner(inner: Rc<Inner>) -> TokenManager {
        TokenManager { inner }
    }
}

#[wasm_bindgen]
impl TokenManager {
    /// `new TokenManager(options)`; throws a `QBankError` with code `config` on bad options.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> Result<TokenManager, JsValue> {
        let o =
            Options::new(&options, "TokenManager", &TOKEN_OPTIONS, false).map_err(|e| to_js(&e))?;
        let cfg = Config::from_options(&o, None, &[]).map_err(|e| to_js(&e))?;
        Ok(TokenManager {
            inner: Inner::new(cfg),
        })
    }

    /// Resolves to `{ accessToken, tokenType, expiresAt, scope }`.
    #[wasm_bindgen(js_name = getToken)]
    pub fn get_token(&self, options: JsValue) -> Promise {
        match call_options(&options) {
            Ok((force, signal, wait_until)) => self.inner.get_token(force, signal, wait_until),
            Err(e) => Promise::reject(&to_js(&e)),
        }
    }

    /// Forgets `accessToken` if it is the cached token (or whatever is cached when omitted).
    pub fn invalidate(&self, access_token: Option<String>) -> bool {
        self.inner.invalidate(access_token)
    }

    /// The fast-path slot (internal: used by the package's JavaScript wrapper of `getToken`).
    #[wasm_bindgen(js_name = __slot)]
    pub fn slot(&self) -> JsValue {
        self.inner.slot.clone()
    }

    /// `{ state, expiresAt?, tokenRequests, consecutiveFailures, retryAt? }`.
    #[wasm_bindgen(getter)]
    pub fn status(&self) -> Object {
        self.inner.status()
    }

    /// Cancels timers; later calls reject with code `closed`.
    pub fn close(&self) {
        self.inner.close()
    }

    /// A redacted description.
    #[wasm_bindgen(js_name = toString)]
    pub fn to_js_string(&self) -> String {
        self.inner.cfg.describe("TokenManager")
    }

    /// A redacted JSON form.
    #[wasm_bindgen(js_name = toJSON)]
    pub fn to_json(&self) -> Object {
        self.inner.cfg.to_json()
    }
}
