//! `TokenManager`: the JavaScript face of the core's [`Fleet`] (the token cache, and with a
//! `store` option the shared store's steps: one path for both).
//!
//! Every exported method takes `&self` and keeps no `RefCell` borrow across an `await`, so
//! overlapping calls from JavaScript never meet wasm-bindgen's "recursive use of an object".
//! After every call into the fleet the edge performs the actions it asks for (`Inner::drain`):
//! the token request, the store's reads, lease, writes and deletes (`store.js`), settling the
//! callers, events; and keeps one timer at the fleet's next wakeup.
//! Token requests are shared by all callers through one JavaScript promise per flight; each
//! caller waits on it with its own abort signal and a watchdog (a Worker cancels a promise
//! started by a request that has ended, so a shared flight may never settle).

use crate::prelude::*;
use alloc::rc::{Rc, Weak};
use core::cell::{Cell, RefCell};

use crate::oauth::cache::{CacheState, CachedToken, FlightId, TokenCache};
use crate::oauth::config::{
    check_client_id, check_client_secret, check_extra_params, check_seconds, check_token_url,
    parse_scope_list, parse_scope_string,
};
use crate::oauth::fleet::identity::CacheIdentity;
use crate::oauth::fleet::{
    Action, Answer, Event, Fleet, FleetPolicy, LeaseAnswer, Refusal, Served, Source, StoreFailure,
    StoreRead, StoreStep, StoredToken,
};
use crate::oauth::policy::RefreshPolicy;
use crate::oauth::token::{build_token_request, parse_token_response, Grant, TokenRequest};
use crate::oauth::{AuthMethod, Error, ErrorCode, Secret};
use crate::util::redact::{scrub, secret_variants};
use crate::util::text::as_strs;
use crate::util::{concat, HttpResponse, Millis};
use js_sys::{Array, Function, Object, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::errors::{set, to_js};
use super::http::{exchange, field};
use super::json::strings;
use super::options::{Options, StringOrList};
use super::{store, support};

/// The option names of a `TokenManager` (a `QBankClient` accepts these and its own).
pub const TOKEN_OPTIONS: [&str; 20] = [
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
    "store",
    "storeKey",
    "storeTimeoutMs",
    "leaseTtlMs",
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
    /// The `store` option (checked: an object with `get` and `set`).
    store: Option<JsValue>,
    /// The `storeKey` option: the store's key material instead of the secret.
    store_key: Option<Secret>,
    fleet: FleetPolicy,
    /// How long a waiter gives a shared flight before deciding it was lost.
    watchdog_ms: u64,
}

/// The shortest `storeKey`: a key for AES-256 needs about that much entropy in its text.
const MIN_STORE_KEY_CHARS: usize = 32;

/// Reads `store`, `storeKey`, `storeTimeoutMs` and `leaseTtlMs`. A coordinator store's default
/// timeout covers a token request the coordinator makes (`timeout_ms`) plus a second.
fn store_options(
    o: &Options,
    timeout_ms: u64,
) -> Result<(Option<JsValue>, Option<String>, FleetPolicy), Error> {
    let v = o.get("store");
    let store = if v.is_undefined() || v.is_null() {
        None
    } else {
        let has = |name: &str| field(&v, name).is_function();
        if !v.is_object() || !has("get") || !has("set") {
            return Err(Error::config(
                "option `store` must be an object with the functions get and set (a TokenStore: \
                 see index.d.ts)",
            ));
        }
        Some(v)
    };
    let store_key = o.string("storeKey")?;
    if let Some(key) = &store_key {
        if store.is_none() {
            return Err(Error::config(
                "option `storeKey` is the key of the token store: give it with `store`",
            ));
        }
        // Characters, not bytes: UTF-8 continuation bytes do not count.
        let chars = key.bytes().filter(|b| b & 0xc0 != 0x80).count();
        if chars < MIN_STORE_KEY_CHARS {
            return Err(Error::config(
                "option `storeKey` must be at least 32 characters (a random string, kept secret)",
            ));
        }
    }
    let defaults = FleetPolicy::default();
    let coordinated = store.as_ref().is_some_and(store::is_coordinator);
    let default_timeout = if coordinated {
        timeout_ms.saturating_add(1_000)
    } else {
        defaults.store_timeout_ms
    };
    let store_timeout_ms = o.millis("storeTimeoutMs", 1, 60_000, default_timeout)?;
    let lease_ttl_ms = o.millis("leaseTtlMs", 1_000, 120_000, defaults.lease_ttl_ms)?;
    let policy = FleetPolicy {
        store_timeout_ms,
        lease_ttl_ms,
        coordinated,
        ..defaults
    };
    Ok((store, store_key, policy))
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
        let (store, store_key, fleet) = store_options(o, timeout_ms)?;
        // With a store an acquisition may take up to two lease TTLs and a few store timeouts
        // before its token request.
        let store_ms = if store.is_some() {
            (fleet.lease_ttl_ms.saturating_mul(2))
                .saturating_add(fleet.store_timeout_ms.saturating_mul(4))
        } else {
            0
        };
        let policy = RefreshPolicy {
            // A flight is given up well after its own timeout could have ended it.
            flight_timeout_ms: timeout_ms
                .saturating_mul(2)
                .saturating_add(WATCHDOG_GRACE_MS)
                .saturating_add(store_ms),
            ..policy
        };
        let mut scrub_list = scrub_list;
        if let Some(key) = &store_key {
            for form in secret_variants(&client_id, key) {
                if !scrub_list.contains(&form) {
                    scrub_list.push(form);
                }
            }
        }
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
            store,
            store_key: store_key.map(Secret::new),
            fleet,
            watchdog_ms: timeout_ms
                .saturating_add(WATCHDOG_GRACE_MS)
                .saturating_add(store_ms),
        })
    }

    /// The token request this configuration makes with `grant`.
    pub fn request<'a>(&'a self, grant: &'a Grant) -> TokenRequest<'a> {
        TokenRequest {
            token_url: &self.token_url,
            client_id: &self.client_id,
            client_secret: Some(&self.secret),
            grant,
            scope: &self.scope,
            auth_method: self.auth_method,
            extra_params: &self.extra_params,
        }
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
            ", clientSecret: [redacted]",
            if self.store_key.is_some() {
                ", storeKey: [redacted] }"
            } else {
                " }"
            },
        ])
    }

    /// What a coordinator (`durableObjectStore`) needs to make this configuration's token
    /// requests itself: the resolved options, secret included (the coordinator keeps them in
    /// memory only). Built for each read, so the secret is not held in JavaScript in between;
    /// `undefined` for any other store.
    fn coordinator_options(&self) -> JsValue {
        if !self.fleet.coordinated {
            return JsValue::UNDEFINED;
        }
        let o = Object::new();
        let text = |k: &str, v: &str| set(&o, k, &JsValue::from_str(v));
        let number = |k: &str, v: f64| set(&o, k, &JsValue::from(v));
        text("tokenUrl", &self.token_url);
        text("clientId", &self.client_id);
        text("clientSecret", self.secret.expose());
        if let Some(key) = &self.store_key {
            text("storeKey", key.expose());
        }
        set(&o, "scope", &strings(&self.scope));
        text(
            "authMethod",
            match self.auth_method {
                AuthMethod::ClientSecretPost => "client_secret_post",
                AuthMethod::ClientSecretBasic => "client_secret_basic",
            },
        );
        let params = Object::new();
        for (k, v) in &self.extra_params {
            set(&params, k, &JsValue::from_str(v));
        }
        set(&o, "extraParams", &params);
        number("timeoutMs", self.timeout_ms as f64);
        let p = &self.policy;
        number("refreshAheadSeconds", p.refresh_ahead_ms as f64 / 1000.0);
        number("expiryMarginSeconds", p.expiry_margin_ms as f64 / 1000.0);
        number(
            "defaultLifetimeSeconds",
            p.default_lifetime_ms as f64 / 1000.0,
        );
        set(
            &o,
            "allowInsecureHttp",
            &JsValue::from_bool(self.allow_insecure_http),
        );
        o.into()
    }

    /// The redacted JSON form.
    pub fn to_json(&self) -> Object {
        let o = Object::new();
        set(&o, "tokenUrl", &JsValue::from_str(&self.token_url));
        set(&o, "clientId", &JsValue::from_str(&self.client_id));
        set(&o, "clientSecret", &JsValue::from_str("[redacted]"));
        if self.store_key.is_some() {
            set(&o, "storeKey", &JsValue::from_str("[redacted]"));
        }
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

/// A pending timer: its handle and the callback it will call (dropping the callback frees it; it
/// must outlive the timer).
type ArmedTimer = (JsValue, Closure<dyn FnMut()>);

/// How to settle a promise made by [`deferred`]: its resolve and reject functions.
type Settle = Option<(Function, Function)>;

/// A new pending promise and how to settle it (`Promise::new` calls its executor at once, so
/// the functions are there).
fn deferred() -> (Promise, Settle) {
    let mut settle = None;
    let promise = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
    (promise, settle)
}

/// The callers' side of one flight: the promise they wait on and how to settle it.
struct Pending {
    id: FlightId,
    promise: Promise,
    settle: Settle,
    background: bool,
}

/// At most this many flights are remembered unsettled (a flight lost with a Worker request is
/// never settled; its waiters give it up on their own).
const MAX_PENDING: usize = 8;

/// The shared state of one manager.
pub struct Inner {
    /// The configuration.
    pub cfg: Config,
    /// The fleet core: the token cache, and the store's steps when there is a store.
    fleet: RefCell<Fleet>,
    /// `store.js`'s driver of the `store` option, if one was given.
    store: Option<JsValue>,
    /// The flights whose callers wait.
    flights: RefCell<Vec<Pending>>,
    /// The JS token object last handed out, reused while the token is the same.
    token_js: RefCell<Option<(Millis, Millis, JsValue)>>,
    timer: RefCell<Option<ArmedTimer>>,
    /// When the armed timer fires (0: none armed).
    armed_at: Cell<Millis>,
    closed: Cell<bool>,
    /// The fast-path slot shared with `support.js` (see `fastPath` there).
    slot: JsValue,
    /// The last flight that failed, and why: a caller who forced a refresh gets the error even
    /// when the others keep the still-valid token.
    failed: RefCell<Option<(FlightId, Error)>>,
    /// What the slot holds now (the token's `acquired_at` and the `until`), to publish only changes.
    published: Cell<(Millis, Millis)>,
    /// Store operations started and not yet answered (each bounded by the store timeout).
    busy: Cell<u32>,
    /// `close()`'s promise while it waits for `busy` to reach 0, and how to settle it.
    idle: RefCell<Option<(Promise, Settle)>>,
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

/// A random u64 from `Math.random()` (two draws of 32 bits).
fn random_u64() -> u64 {
    let draw = || (support::random() * 4_294_967_296.0) as u64;
    (draw() << 32) ^ draw()
}

/// A u64 as the two 32-bit halves `store.js` takes (it writes them as 16 hex digits).
fn halves(v: u64) -> (f64, f64) {
    ((v >> 32) as f64, (v & 0xffff_ffff) as f64)
}

/// `store.js`'s answer codes (see there).
const STORE_OK: f64 = 0.0;
const STORE_GARBAGE: f64 = 1.0;
const STORE_TIMEOUT: f64 = 3.0;
const LEASE_ACQUIRED: f64 = 4.0;
const LEASE_HELD: f64 = 5.0;
const LEASE_UNSUPPORTED: f64 = 6.0;

/// A failed store call's answer code: a timeout, or else an error.
fn failure_of(code: f64) -> StoreFailure {
    if code == STORE_TIMEOUT {
        StoreFailure::Timeout
    } else {
        StoreFailure::Error
    }
}

/// A store read's answer: the entry as `[token, scope | null, issuedAt, expiresAt, stamp's
/// halves]` (`store.js` checked its types), or a code.
fn read_answer(v: &JsValue) -> StoreRead {
    let Some(entry) = v.dyn_ref::<Array>() else {
        return match v.as_f64() {
            Some(STORE_OK) => StoreRead::NotFound,
            Some(STORE_GARBAGE) => StoreRead::Garbage,
            code => StoreRead::Failed(failure_of(code.unwrap_or_default())),
        };
    };
    let number = |i: u32| entry.get(i).as_f64().unwrap_or_default() as u64;
    let scope = entry.get(1).dyn_into::<Array>().ok().map(|list| {
        let mut out = Vec::new();
        for s in list.iter() {
            out.push(s.as_string().unwrap_or_default());
        }
        out
    });
    StoreRead::Found(StoredToken {
        access_token: Secret::new(entry.get(0).as_string().unwrap_or_default()),
        scope,
        issued_at: number(2),
        expires_at: number(3),
        stamp: (number(4) << 32) | number(5),
    })
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.clear_timer();
    }
}

impl Inner {
    /// A new manager's state.
    pub fn new(cfg: Config) -> Rc<Inner> {
        let seed = random_u64();
        let cache = TokenCache::new(cfg.policy, seed);
        let (fleet, store) = match &cfg.store {
            Some(user_store) => {
                let owner = random_u64();
                let grant = Grant::ClientCredentials;
                let identity = CacheIdentity::of(&cfg.request(&grant)).encode();
                let key = cfg.store_key.as_ref().unwrap_or(&cfg.secret);
                let handle = store::open_store(
                    user_store,
                    key.expose(),
                    &identity,
                    cfg.fleet.store_timeout_ms as f64,
                );
                let fleet = Fleet::new(cache, cfg.fleet, owner, random_u64());
                (fleet, Some(handle))
            }
            None => (Fleet::local(cache, seed.rotate_left(32)), None),
        };
        Rc::new(Inner {
            fleet: RefCell::new(fleet),
            store,
            cfg,
            flights: RefCell::new(Vec::new()),
            token_js: RefCell::new(None),
            timer: RefCell::new(None),
            armed_at: Cell::new(0),
            closed: Cell::new(false),
            slot: support::make_slot(),
            failed: RefCell::new(None),
            published: Cell::new((0, 0)),
            busy: Cell::new(0),
            idle: RefCell::new(None),
        })
    }

    fn emit(&self, kind: &str, extra: &[(&str, JsValue)]) {
        let Some(f) = &self.cfg.on_event else { return };
        let e = Object::new();
        set(&e, "type", &JsValue::from_str(kind));
        set(&e, "at", &JsValue::from(now_ms() as f64));
        let requests = self.fleet.borrow().status(now_ms()).endpoint_requests;
        set(&e, "tokenRequests", &JsValue::from(requests as f64));
        for (k, v) in extra {
            set(&e, k, v);
        }
        support::call_safely(f, &e);
    }

    /// What a token from the store is said to come from: `"coordinator"` for a
    /// `durableObjectStore`, else `"store"`.
    fn store_source(&self) -> &'static str {
        if self.cfg.fleet.coordinated {
            "coordinator"
        } else {
            "store"
        }
    }

    /// The onEvent form of a core event (none carries a token, a secret or an entry name).
    fn emit_event(&self, event: Event) {
        let text = |s: &str| JsValue::from_str(s);
        let mut extra = Vec::new();
        let kind = match event {
            Event::TokenObtained {
                source: Source::Store,
                expires_at,
            } => {
                extra.push(("expiresAt", JsValue::from(expires_at as f64)));
                extra.push(("source", text(self.store_source())));
                "token_acquired"
            }
            // The edge says it itself when the request's answer arrives (fetch_token).
            Event::TokenObtained { .. } => return,
            // A coordinator's "lease" is the object itself (store.js): nothing to say.
            Event::LeaseTaken if self.cfg.fleet.coordinated => return,
            Event::LeaseTaken => "lease_taken",
            Event::LeaseBusy => "lease_busy",
            Event::LeaseLost => "lease_lost",
            Event::LeaseWaitOver => "lease_wait_over",
            Event::StoreFailed { step, failure } => {
                let step = match step {
                    StoreStep::Read => "read",
                    StoreStep::Lease => "lease",
                    StoreStep::Write => "write",
                };
                let failure = match failure {
                    StoreFailure::Error => "error",
                    StoreFailure::Timeout => "timeout",
                };
                extra.push(("step", text(step)));
                extra.push(("failure", text(failure)));
                "store_failed"
            }
            Event::StoreEntryRefused { reason } => {
                let reason = match reason {
                    Refusal::Unreadable => "unreadable",
                    Refusal::Malformed => "malformed",
                };
                extra.push(("reason", text(reason)));
                "store_entry_refused"
            }
            Event::RejectedEntryDeleted => "store_entry_deleted",
        };
        self.emit(kind, &extra);
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
        let until = self.fleet.borrow().cache().serve_until(now);
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

    /// One poll of the fleet for a caller, starting an acquisition when it says so.
    fn step(self: &Rc<Self>, force: bool, wait_until: Option<&Function>) -> Step {
        if self.closed.get() {
            return Step::Done(Err(to_js(&closed_error())));
        }
        let now = now_ms();
        let answer = self.fleet.borrow_mut().get_token(now, force);
        self.answer(answer, now, wait_until)
    }

    /// A caller's answer from the fleet, and the actions it asked for performed.
    fn answer(self: &Rc<Self>, answer: Answer, now: Millis, wait_until: Option<&Function>) -> Step {
        let started = self.track(wait_until, !matches!(answer, Answer::Wait(_)));
        let step = match answer {
            Answer::Ready(served) if !started => Step::Done(Ok(self.offer(&served.token, now))),
            Answer::Ready(served) => {
                self.clear_slot();
                Step::Done(Ok(self.token_js(&served.token)))
            }
            Answer::Fail(e) => {
                self.clear_slot();
                Step::Done(Err(to_js(&e)))
            }
            Answer::Wait(id) => {
                self.clear_slot();
                let shared = self
                    .flights
                    .borrow()
                    .iter()
                    .find(|p| p.id == id)
                    .map(|p| p.promise.clone());
                // No promise for the flight (impossible by construction): a rejected one makes the
                // waiter give the flight up and poll again.
                Step::Wait(
                    id,
                    shared.unwrap_or_else(|| Promise::reject(&JsValue::NULL)),
                )
            }
        };
        self.drain();
        step
    }

    /// Gives the acquisition the fleet started (if it did) the promise its callers share.
    /// Returns whether it is new.
    fn track(&self, wait_until: Option<&Function>, background: bool) -> bool {
        let Some(id) = self.fleet.borrow().acquiring() else {
            return false;
        };
        if self.flights.borrow().iter().any(|p| p.id == id) {
            return false;
        }
        let (promise, settle) = deferred();
        if let Some(w) = wait_until.or(self.cfg.wait_until.as_ref()) {
            support::keep_alive(w, &promise);
        }
        // Waiters attach their own handlers; a flight nobody waits for must not be an
        // unhandled rejection.
        support::quiet(&promise);
        let mut flights = self.flights.borrow_mut();
        if flights.len() >= MAX_PENDING {
            flights.remove(0);
        }
        flights.push(Pending {
            id,
            promise,
            settle,
            background,
        });
        true
    }

    /// Performs every action the fleet asked for, in order, then re-arms the timer.
    fn drain(self: &Rc<Self>) {
        loop {
            let action = self.fleet.borrow_mut().poll_action();
            let Some(action) = action else { break };
            match action {
                Action::Resolve { flight, result } => self.settle(flight, result),
                Action::Event(event) => self.emit_event(event),
                io => {
                    let mut background = false;
                    if let Action::FetchToken { flight } = io {
                        background = self
                            .flights
                            .borrow()
                            .iter()
                            .find(|p| p.id == flight)
                            .is_some_and(|p| p.background);
                        self.emit(
                            "token_requested",
                            &[("background", JsValue::from_bool(background))],
                        );
                    } else {
                        // Counted now, before anything can wait for it (see `close`).
                        self.busy.set(self.busy.get() + 1);
                    }
                    let me = Rc::clone(self);
                    // Through the one future_to_promise (js::promise; the Promise is dropped:
                    // it always resolves), rather than a spawn_local of its own type.
                    let _ = super::promise(async move {
                        me.perform(io, background).await;
                        Ok(JsValue::UNDEFINED)
                    });
                }
            }
        }
        self.schedule();
    }

    /// Settles the callers of `flight`.
    fn settle(&self, flight: FlightId, result: Result<Served, Error>) {
        let pending = {
            let mut flights = self.flights.borrow_mut();
            let at = flights.iter().position(|p| p.id == flight);
            at.map(|i| flights.remove(i))
        };
        let Some((resolve, reject)) = pending.and_then(|p| p.settle) else {
            return;
        };
        let outcome = match result {
            _ if self.closed.get() => Err(to_js(&closed_error())),
            Ok(served) => Ok(self.offer(&served.token, now_ms())),
            Err(e) => Err(to_js(&e)),
        };
        let _ = match outcome {
            Ok(token) => resolve.call1(&JsValue::UNDEFINED, &token),
            Err(e) => reject.call1(&JsValue::UNDEFINED, &e),
        };
    }

    /// Performs a token request or a store action (one future type for both).
    async fn perform(self: Rc<Self>, action: Action, background: bool) {
        match action {
            Action::FetchToken { flight } => self.fetch_token(flight, background).await,
            store_action => {
                // Its answer was fed to the fleet first: what that started is counted already.
                self.store_op(store_action).await;
                let left = self.busy.get().saturating_sub(1);
                self.busy.set(left);
                let idle = self.idle.borrow_mut().take_if(|_| left == 0);
                if let Some((_, Some((resolve, _)))) = idle {
                    let _ = resolve.call0(&JsValue::UNDEFINED);
                }
            }
        }
    }

    /// Sends the token request of `flight` and feeds its answer to the fleet.
    async fn fetch_token(self: &Rc<Self>, id: FlightId, background: bool) {
        let cfg = &self.cfg;
        let grant = Grant::ClientCredentials;
        let req = build_token_request(&cfg.request(&grant));
        let answer = exchange(
            &cfg.fetch,
            &req,
            "the token endpoint",
            cfg.timeout_ms,
            MAX_TOKEN_BODY,
            &JsValue::UNDEFINED,
        )
        .await;
        self.token_arrived(id, background, answer);
    }

    /// Feeds a token request's answer to the fleet, says so in events, and performs what the
    /// fleet asks next (kept out of the future that awaits the request).
    #[inline(never)]
    fn token_arrived(
        self: &Rc<Self>,
        id: FlightId,
        background: bool,
        answer: Result<HttpResponse, Error>,
    ) {
        let cfg = &self.cfg;
        let answer = answer
            .and_then(|resp| parse_token_response(&resp, now_ms()))
            .map_err(|e| cfg.scrub_error(e));
        let mut failure = answer.as_ref().err().map(|e| (e.code, e.retry_after_ms));
        *self.failed.borrow_mut() = answer.as_ref().err().map(|e| (id, e.clone()));
        let failures = |me: &Self| {
            me.fleet
                .borrow()
                .cache()
                .status(now_ms())
                .consecutive_failures
        };
        let failures_before = failures(self);
        let outcome = self.fleet.borrow_mut().token_answer(id, now_ms(), answer);
        self.clear_slot();
        if failure.is_none() {
            let expires = outcome.as_ref().map_or(0, |t| t.token.expires_at);
            self.emit(
                "token_acquired",
                &[
                    ("expiresAt", JsValue::from(expires as f64)),
                    ("source", JsValue::from_str("endpoint")),
                ],
            );
            // A token already inside its expiry margin on arrival counts as a failure in the
            // cache (it backs off): said the way failures are, with no token in the event.
            if failures(self) > failures_before {
                let backoff = self.fleet.borrow().cache().backoff_error().map(|e| e.code);
                failure = backoff.map(|code| (code, None));
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
        self.drain();
    }

    /// Performs one store action through `store.js` (whose promises never reject).
    async fn store_op(self: &Rc<Self>, action: Action) {
        let Some(h) = &self.store else { return };
        let p = match &action {
            Action::ReadStore { .. } => store::read(h, &self.cfg.coordinator_options()),
            Action::TryLease { owner, ttl_ms, .. } => {
                let (hi, lo) = halves(*owner);
                store::lease(h, hi, lo, *ttl_ms as f64)
            }
            Action::WriteStore { entry } => {
                let (hi, lo) = halves(entry.stamp);
                let scope = entry
                    .scope
                    .as_ref()
                    .map_or(JsValue::NULL, |s| strings(s).into());
                let token = entry.access_token.expose();
                store::write(
                    h,
                    token,
                    &scope,
                    entry.issued_at as f64,
                    entry.expires_at as f64,
                    hi,
                    lo,
                )
            }
            Action::ReleaseLease { owner } => {
                let (hi, lo) = halves(*owner);
                store::release(h, hi, lo)
            }
            Action::DeleteIfStamp { stamp } => {
                let (hi, lo) = halves(*stamp);
                store::delete(h, hi, lo)
            }
            _ => return,
        };
        let answer = JsFuture::from(p).await.unwrap_or(JsValue::UNDEFINED);
        self.store_answer(action, &answer);
    }

    /// Feeds a store action's answer to the fleet.
    #[inline(never)]
    fn store_answer(self: &Rc<Self>, action: Action, v: &JsValue) {
        let now = now_ms();
        let code = v.as_f64().unwrap_or(-1.0);
        match action {
            Action::ReadStore { ticket } => {
                let read = read_answer(v);
                self.fleet.borrow_mut().store_read(ticket, now, read);
            }
            Action::TryLease { ticket, .. } => {
                let answer = match code {
                    LEASE_ACQUIRED => LeaseAnswer::Acquired,
                    LEASE_HELD => LeaseAnswer::HeldByOther,
                    LEASE_UNSUPPORTED => LeaseAnswer::Unsupported,
                    _ => LeaseAnswer::Failed(failure_of(code)),
                };
                self.fleet.borrow_mut().lease_answer(ticket, now, answer);
            }
            _ if code == STORE_OK => return,
            _ => self.fleet.borrow_mut().store_failed(failure_of(code)),
        }
        self.drain();
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
        let watchdog = self.cfg.watchdog_ms as f64;
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
    fn abandon(self: &Rc<Self>, id: FlightId) {
        let current = self.fleet.borrow().acquiring() == Some(id);
        if current {
            self.clear_slot();
            let e = Error::new(ErrorCode::Timeout, "the token request was lost");
            self.fleet.borrow_mut().abandon(id, now_ms(), e);
            self.drain();
        }
    }

    /// A token for a Rust caller (the API client): no Promise when the token is at hand.
    /// `rejected`: the token the API just refused with a 401 (never answered again from the
    /// store; an entry holding it is deleted).
    pub async fn token_now(
        self: &Rc<Self>,
        signal: &JsValue,
        wait_until: Option<Function>,
        rejected: Option<&str>,
    ) -> Result<JsValue, JsValue> {
        match self.first_step(signal, wait_until.as_ref(), rejected) {
            Step::Done(r) => r,
            Step::Wait(id, p) => {
                Rc::clone(self)
                    .wait(id, p, signal.clone(), wait_until, false)
                    .await
            }
        }
    }

    /// `token_now`'s poll (kept out of the futures that await it).
    #[inline(never)]
    fn first_step(
        self: &Rc<Self>,
        signal: &JsValue,
        wait_until: Option<&Function>,
        rejected: Option<&str>,
    ) -> Step {
        if support::is_aborted(signal) {
            return Step::Done(Err(support::abort_error()));
        }
        match rejected {
            None => self.step(false, wait_until),
            Some(_) if self.closed.get() => Step::Done(Err(to_js(&closed_error()))),
            Some(token) => {
                let now = now_ms();
                let answer = self.fleet.borrow_mut().after_unauthorized(now, token);
                self.answer(answer, now, wait_until)
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
                super::promise(Rc::clone(self).wait(id, p, signal, wait_until, force))
            }
        }
    }

    fn clear_slot(&self) {
        support::clear_slot(&self.slot);
        self.published.set((0, 0));
    }

    fn clear_timer(&self) {
        self.armed_at.set(0);
        let taken = self.timer.borrow_mut().take();
        if let Some((t, _callback)) = taken {
            support::clear_timer(&t);
        }
    }

    /// Keeps one timer at the fleet's next wakeup. While an acquisition runs, its store steps'
    /// deadlines and pauses: a plain timer, in every runtime (callers wait for it). Otherwise
    /// the refresh-ahead timer, where timers may run (not in Workers, not when closed or
    /// disabled), unref'd. The timer holds only a weak reference, so a dropped manager is not
    /// kept alive.
    fn schedule(self: &Rc<Self>) {
        let now = now_ms();
        let (acquiring, next) = {
            let fleet = self.fleet.borrow();
            (fleet.acquiring().is_some(), fleet.next_wakeup(now))
        };
        let refresh_ok = self.cfg.auto_refresh && !self.closed.get() && !support::is_workers();
        let at = next.filter(|_| acquiring || refresh_ok);
        if at.unwrap_or(0) == self.armed_at.get() {
            return;
        }
        self.clear_timer();
        let Some(at) = at else { return };
        let weak: Weak<Inner> = Rc::downgrade(self);
        let callback = Closure::<dyn FnMut()>::once(move || {
            if let Some(me) = weak.upgrade() {
                me.armed_at.set(0);
                let fired = me.timer.borrow_mut().take();
                me.on_timer();
                drop(fired);
            }
        });
        let ms = (at.saturating_sub(now) + 1) as f64;
        let f = callback.as_ref().unchecked_ref();
        // While an acquisition runs, a timer that keeps the process alive: callers wait for it.
        let handle = support::set_unref_timeout(f, ms, acquiring);
        *self.timer.borrow_mut() = Some((handle, callback));
        self.armed_at.set(at.max(1));
    }

    fn on_timer(self: &Rc<Self>) {
        let acquiring = self.fleet.borrow().acquiring().is_some();
        if self.closed.get() && !acquiring {
            return;
        }
        self.fleet.borrow_mut().wake(now_ms());
        if self.track(None, true) {
            self.clear_slot();
        }
        self.drain();
    }

    /// `invalidate(token?)`.
    pub fn invalidate(self: &Rc<Self>, token: Option<&str>) -> bool {
        let dropped = self.fleet.borrow_mut().invalidate(token);
        if dropped {
            self.clear_slot();
            self.schedule();
            self.token_js.borrow_mut().take();
            self.emit("token_invalidated", &[]);
        }
        dropped
    }

    /// The `status` getter's object.
    pub fn status(&self) -> Object {
        let fs = self.fleet.borrow().status(now_ms());
        let s = fs.cache;
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
        let count = |n: u64| JsValue::from(n as f64);
        set(&o, "tokenRequests", &count(fs.endpoint_requests));
        set(
            &o,
            "consecutiveFailures",
            &JsValue::from(s.consecutive_failures),
        );
        if let Some(at) = s.retry_at {
            set(&o, "retryAt", &JsValue::from(at as f64));
        }
        if let Some(at) = self.fleet.borrow().cache().next_wakeup(now_ms()) {
            set(&o, "refreshAt", &JsValue::from(at as f64));
        }
        let source = match fs.token_source {
            Some(Source::Store) => Some(self.store_source()),
            Some(Source::Endpoint) => Some("endpoint"),
            _ => None,
        };
        if let Some(source) = source.filter(|_| s.expires_at.is_some()) {
            set(&o, "tokenSource", &JsValue::from_str(source));
        }
        if self.store.is_some() {
            set(&o, "storeTokens", &count(fs.store_tokens));
            set(&o, "storeReads", &count(fs.store_reads));
            set(&o, "storeFailures", &count(fs.store_failures));
            if !self.cfg.fleet.coordinated {
                set(&o, "leasesTaken", &count(fs.leases_taken));
            }
        }
        o
    }

    /// `close()`: cancels the refresh timer; later calls reject with `closed`, and so do the
    /// callers waiting for an acquisition (when its token request in flight ends; at once if it
    /// is still in its store steps). A lease it holds is released at once (`Fleet::close`).
    /// Resolves once every store operation this manager started has been answered (each is
    /// bounded by the store timeout); at once without any.
    pub fn close(self: &Rc<Self>) -> Promise {
        if !self.closed.replace(true) {
            self.clear_slot();
            self.clear_timer();
            self.token_js.borrow_mut().take();
            self.emit("closed", &[]);
            self.fleet.borrow_mut().close(now_ms(), closed_error());
            self.drain();
        }
        if self.busy.get() == 0 {
            return Promise::resolve(&JsValue::UNDEFINED);
        }
        let mut idle = self.idle.borrow_mut();
        let (p, _) = idle.get_or_insert_with(deferred);
        p.clone()
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
        self.inner.invalidate(access_token.as_deref())
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

    /// Cancels timers; later calls reject with code `closed`. Resolves once the store
    /// operations already started have settled (await it before the process exits).
    pub fn close(&self) -> Promise {
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
