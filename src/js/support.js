// The hand-written JavaScript half of the edge: what is smaller and clearer in JS than through
// bindings (the Error subclass, fetch with a timeout and a bounded body, abort signals, timers,
// runtime detection). Decisions stay in Rust; this file only does I/O and plumbing.
//
// Type-checked by `tsc -p tsconfig.checkjs.json` (make lint): the types are JSDoc comments, so
// what runs (and what the package minifies) is exactly the code below.

/**
 * What the wasm hands over as a JavaScript value it has already checked is not always typed
 * further than this: these describe the shapes this file reads and builds.
 *
 * @typedef {"status" | "oauthError" | "oauthErrorDescription" | "retryAfterMs" | "mayHaveReachedServer" | "requiredScope" | "problem"} ErrorField
 * @typedef {Partial<Record<ErrorField, unknown>>} ErrorFields a QBankError's optional fields, as the wasm sets them
 *
 * @typedef {object} AccessToken what getToken resolves to (frozen; see makeToken)
 * @property {string} accessToken
 * @property {"Bearer"} tokenType
 * @property {number} expiresAt epoch ms
 * @property {readonly string[]} scope
 *
 * @typedef {Pick<AbortSignal, "aborted" | "addEventListener">} SignalLike an AbortSignal, or an
 *   object that quacks like one (`isSignal`: a boolean `aborted` and an `addEventListener`)
 * @typedef {ReturnType<typeof setTimeout>} TimerHandle an object in Node and Bun, a number elsewhere
 *
 * @typedef {(url: string, init: RequestInit) => Promise<Response>} FetchImpl a caller's `fetch`
 *   option (any function: the wasm checks only that), called as the global fetch would be
 * @typedef {[string, string][] | Record<string, string>} RequestHeaders pairs from the wasm (a
 *   util::http HttpRequest's headers), an object from the getBalance fast path
 *
 * @typedef {object} Reply `send`'s answer: any status, the body read in full
 * @property {true} ok
 * @property {number} status
 * @property {[string, string][]} headers only READ_HEADERS, lower-case
 * @property {string} body
 *
 * @typedef {object} Failure `send`'s transport failure (http.rs `failure` reads it)
 * @property {false} ok
 * @property {"timeout" | "network" | "too_large" | "aborted"} kind
 * @property {boolean} [answered] whether response headers had arrived
 * @property {boolean} [sent] false only when the request certainly never reached the server (absent: it may have)
 * @property {number} [status] with too_large (and node-http's failures after the headers)
 *
 * @typedef {Reply | Failure} Exchange
 * @typedef {(method: string, url: string, headers: RequestHeaders, body: string | null | undefined, timeoutMs: number, maxBytes: number, signal: SignalLike | null | undefined) => Promise<Exchange>} Transport
 *   `send` without its fetch: what `useTransport` installs (node-http.js's nodeTransport)
 *
 * @typedef {{ code?: unknown, message?: unknown, cause?: unknown }} Thrown what a thrown value may carry
 */

const INSPECT = Symbol.for("nodejs.util.inspect.custom");
/** @type {readonly ErrorField[]} */
const FIELDS = ["status", "oauthError", "oauthErrorDescription", "retryAfterMs", "mayHaveReachedServer", "requiredScope", "problem"];

/** Every failure from qbank-connect: a real Error with a stable `code`. Never holds a secret. */
export class QBankError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {ErrorFields | null} [fields]
   */
  constructor(code, message, fields) {
    super(message);
    this.name = "QBankError";
    this.code = code;
    this.mayHaveReachedServer = false;
    if (fields) {
      for (const k of FIELDS) {
        if (fields[k] !== undefined && fields[k] !== null) /** @type {Record<string, unknown>} */ (this)[k] = fields[k];
      }
    }
  }
  toJSON() {
    /** @type {Record<string, unknown>} */
    const out = { name: this.name, code: this.code, message: this.message };
    for (const k of FIELDS) if (/** @type {Record<string, unknown>} */ (this)[k] !== undefined) out[k] = /** @type {Record<string, unknown>} */ (this)[k];
    return out;
  }
}

/**
 * @param {string} code
 * @param {string} message
 * @param {ErrorFields} fields
 */
export function makeError(code, message, fields) {
  return new QBankError(code, message, fields);
}

/**
 * Makes Node's util.inspect show the redacted description of our classes, never their state.
 * @param {...{ prototype: object }} classes
 */
export function decorate(...classes) {
  for (const cls of classes) {
    if (cls && cls.prototype && !Object.prototype.hasOwnProperty.call(cls.prototype, INSPECT)) {
      Object.defineProperty(cls.prototype, INSPECT, {
        /** @this {object} */
        value: function () {
          return typeof this.toString === "function" ? this.toString() : "[qbank-connect]";
        },
      });
    }
  }
}

// ---- tokens ----

const TOKEN_PROTO = {
  /** @this {AccessToken} */
  toJSON() {
    return { accessToken: "[redacted]", tokenType: this.tokenType, expiresAt: this.expiresAt, scope: this.scope };
  },
  /** @this {AccessToken} */
  toString() {
    return "AccessToken { accessToken: [redacted], expiresAt: " + this.expiresAt + " }";
  },
};
Object.defineProperty(TOKEN_PROTO, INSPECT, {
  /** @this {AccessToken} */
  value() {
    return this.toString();
  },
});

/**
 * The token object handed to callers: frozen (it is shared by every caller until the next
 * refresh), with the token readable as `accessToken` but redacted in JSON, String() and inspect.
 * @param {string} accessToken
 * @param {number} expiresAt
 * @param {string[]} scope
 * @returns {Readonly<AccessToken>}
 */
export function makeToken(accessToken, expiresAt, scope) {
  /** @type {AccessToken} */
  const t = Object.create(TOKEN_PROTO);
  t.accessToken = accessToken;
  t.tokenType = "Bearer";
  t.expiresAt = expiresAt;
  t.scope = Object.freeze(scope);
  return Object.freeze(t);
}

/**
 * A secret shown once (QPay returns a new client's secret only at creation): `reveal()` gives the
 * value the first time and throws `secret_consumed` after, and nothing else ever shows it.
 */
export class OneTimeSecret {
  /** @type {string | undefined} */
  #value;
  /** @param {string} value */
  constructor(value) {
    this.#value = value;
  }
  /** The value, once; store it now (e.g. in your secret manager). */
  reveal() {
    if (this.#value === undefined) {
      throw new QBankError("secret_consumed", "this secret was already revealed once and is not kept; if it was lost, delete the client and create a new one");
    }
    const v = this.#value;
    this.#value = undefined;
    return v;
  }
  /** Whether reveal() was called. */
  get revealed() {
    return this.#value === undefined;
  }
  toString() {
    return "[redacted]";
  }
  toJSON() {
    return "[redacted]";
  }
  [INSPECT]() {
    return "OneTimeSecret [redacted]";
  }
}

/** @param {string} value */
export function makeOneTimeSecret(value) {
  return new OneTimeSecret(value);
}

// ---- the wasm classes' internal members ----

// The wasm methods that exist for this file alone (the Rust side's `js_name = __slot`, …).
const SLOT_OF = Symbol("qbank-connect.slotOf");
const BALANCE_URL = Symbol("qbank-connect.balanceUrl");
const BALANCE_READ = Symbol("qbank-connect.balanceRead");
const BALANCE_AFTER = Symbol("qbank-connect.balanceAfter");
const TRANSPORT_OF = Symbol("qbank-connect.transportOf");

/**
 * The keys of the wasm classes' internal members, by the name wasm-bindgen gives each: its own
 * (the instance's pointer, `__wrap`, `__destroy_into_raw`, `free`) and the methods above.
 * pkg-template/build.mjs rewrites the glue to key each by its symbol here instead of its name,
 * so no published class, prototype or instance shows one (index.d.ts documents none), while the
 * glue and this file reach each as directly as by name.
 */
export const INTERNAL = {
  __wbg_ptr: Symbol("qbank-connect.ptr"),
  __wrap: Symbol("qbank-connect.wrap"),
  __destroy_into_raw: Symbol("qbank-connect.destroyIntoRaw"),
  free: Symbol("qbank-connect.free"),
  __slot: SLOT_OF,
  __balanceUrl: BALANCE_URL,
  __balanceRead: BALANCE_READ,
  __balanceAfter: BALANCE_AFTER,
  __transport: TRANSPORT_OF,
};

// ---- the cached-token fast path ----

const SLOT = Symbol("qbank-connect.slot");

/**
 * The JavaScript half of the cached-token fast path. The wasm side publishes into a manager's
 * slot the token it would hand out, the instant it was published and until when its core
 * promises that a plain poll answers exactly that (`serve_until`), and clears the slot on every
 * other change. While `since <= Date.now() < until`, getToken() without options is answered
 * here, without entering the wasm; a clock that went backwards falls through to the core.
 */
/**
 * @typedef {object} Slot
 * @property {number} since epoch ms
 * @property {number} until epoch ms; 0: nothing to serve
 * @property {Readonly<AccessToken> | undefined} token
 * @property {Promise<Readonly<AccessToken>> | undefined} promise set with `token`
 *
 * @typedef {object} ManagerMethods the wasm's TokenManager, as the fast path uses it
 * @property {(options?: unknown) => Promise<Readonly<AccessToken>>} getToken
 * @typedef {ManagerMethods & { [SLOT_OF]: () => Slot, [SLOT]?: Slot }} Manager
 *
 * @returns {Slot}
 */
export function makeSlot() {
  return { since: 0, until: 0, token: undefined, promise: undefined };
}

/**
 * @param {Slot} slot
 * @param {Readonly<AccessToken>} token
 * @param {number} since
 * @param {number} until
 */
export function publishSlot(slot, token, since, until) {
  slot.since = since;
  slot.until = until;
  slot.token = token;
  slot.promise = Promise.resolve(token);
}

/** @param {Slot} slot */
export function clearSlot(slot) {
  slot.until = 0;
  slot.token = undefined;
  slot.promise = undefined;
}

/**
 * A TokenManager's slot, looked up in the wasm once.
 * @param {Manager} manager
 */
function slotOf(manager) {
  return manager[SLOT] || (manager[SLOT] = manager[SLOT_OF]());
}

/**
 * The token the slot vouches for now, or undefined (then the core decides).
 * @param {Slot} slot
 */
function servable(slot) {
  const now = Date.now();
  return now < slot.until && now >= slot.since ? slot.token : undefined;
}

/**
 * Makes a getter return the same object every time (QBankClient.tokens: one wrapper, whose fast-path slot is then looked up once).
 * @param {{ prototype: object }} cls
 * @param {string} name a getter of `cls.prototype` (build.mjs names it)
 */
export function memoGetter(cls, name) {
  const desc = /** @type {PropertyDescriptor & { get(): object }} */ (Object.getOwnPropertyDescriptor(cls.prototype, name));
  const key = Symbol(name);
  Object.defineProperty(cls.prototype, name, {
    configurable: true,
    enumerable: desc.enumerable,
    /** @this {Record<symbol, object>} */
    get() {
      return this[key] || (this[key] = desc.get.call(this));
    },
  });
}

/**
 * Installs the fast path on TokenManager.prototype.getToken.
 * @param {{ prototype: Manager }} cls
 */
export function fastPath(cls) {
  const slow = cls.prototype.getToken;
  /**
   * @this {Manager}
   * @param {unknown} [options]
   */
  cls.prototype.getToken = function getToken(options) {
    if (options === undefined) {
      const slot = slotOf(this);
      // A servable slot has its promise: publishSlot sets both.
      if (servable(slot) !== undefined) return /** @type {Promise<Readonly<AccessToken>>} */ (slot.promise);
    }
    return slow.call(this, options);
  };
}

/**
 * Whether getBalance's options are certainly valid without asking the wasm: absent, or a plain
 * object with nothing but an AbortSignal `signal` and a function `waitUntil`. Anything else is
 * checked (and refused with its message) by the wasm's balanceUrl.
 * @param {BalanceOptions | null | undefined} o
 */
function plainBalanceOptions(o) {
  if (o === undefined) return true;
  if (o === null || typeof o !== "object" || Object.getPrototypeOf(o) !== Object.prototype) return false;
  for (const key in o) if (key !== "signal" && key !== "waitUntil") return false;
  return (o.signal === undefined || isSignal(o.signal)) && (o.waitUntil === undefined || typeof o.waitUntil === "function");
}

const TRANSPORT = Symbol("qbank-connect.transport");
const URLS = Symbol("qbank-connect.urls");
/** How many account URLs a client remembers (a service asks for a handful of accounts). */
const MAX_URLS = 64;

// providers::qbank::balances::PLAN_*: which top-level members of the body the result's fields are.
const PLAN_AVAILABLE_CAMEL = 2;
const PLAN_LEDGER_CAMEL = 4;
const PLAN_CURRENCY = 8;
const PLAN_AS_OF_SHIFT = 4;
const AS_OF_NAMES = [undefined, "as_of", "asOf", "balance_date"];

/**
 * @typedef {object} Balance getBalance's result; the amounts (and `currency`, `asOf`) are the
 *   strings the core checked they are
 * @property {string} accountId
 * @property {unknown} availableBalance
 * @property {unknown} ledgerBalance
 * @property {unknown} [currency]
 * @property {unknown} [asOf]
 * @property {unknown} [raw] `JSON.parse(body)`, or the core's exact rendering of it (always set
 *   before the result is handed out)
 *
 * @typedef {object} BalanceOptions getBalance's options: index.d.ts's RequestOptions (the wasm
 *   refuses anything else; this file reads `signal` before that check, which an odd value passes
 *   harmlessly)
 * @property {SignalLike | null} [signal]
 * @property {unknown} [waitUntil]
 */

/**
 * getBalance's result from what the core read in a 2xx body (`providers::qbank::balances::balance_read`):
 * a plan (a number), built here from `JSON.parse(body)`, or the result's exact JSON text, to
 * which `raw` is added as `JSON.parse(body)` when the core left it out (a body without numbers).
 * Both getBalance paths end here: the fast path and the wasm's own.
 * @param {number | string} read
 * @param {string} accountId
 * @param {string} body
 * @returns {Balance}
 */
export function balanceResult(read, accountId, body) {
  if (typeof read === "number") return fromPlan(read, accountId, JSON.parse(body));
  /** @type {Balance} */
  const result = JSON.parse(read);
  if (result.raw === undefined) result.raw = JSON.parse(body);
  return result;
}

/**
 * @param {number} plan
 * @param {string} accountId
 * @param {Record<string, unknown>} raw the body, a JSON object (the core checked it)
 */
function fromPlan(plan, accountId, raw) {
  /** @type {Balance} */
  const result = {
    accountId,
    availableBalance: raw[plan & PLAN_AVAILABLE_CAMEL ? "availableBalance" : "available_balance"],
    ledgerBalance: raw[plan & PLAN_LEDGER_CAMEL ? "ledgerBalance" : "ledger_balance"],
  };
  if (plan & PLAN_CURRENCY) result.currency = raw.currency;
  const asOf = (plan >> PLAN_AS_OF_SHIFT) & 3;
  if (asOf !== 0) result.asOf = raw[/** @type {string} */ (AS_OF_NAMES[asOf])];
  result.raw = raw;
  return result;
}

/**
 * Installs the fast path on QBankClient.prototype.getBalance. While the slot vouches for the
 * cached token, the call is one synchronous wasm call that checks the id and options and gives
 * the URL, the GET (`send`, with the timeout and the bounded body every request has), and for a
 * 2xx answer one synchronous wasm call that reads and checks the balance exactly and answers
 * with a plan (`fromPlan` builds the result from `JSON.parse(body)`) or the result's exact JSON
 * text (a body with numbers, or nested amounts). Any other answer, or a
 * transport failure, goes to the wasm's own getBalance as its first attempt's answer (401:
 * refresh and retry once; 429/503: bounded retries; errors), so nothing is sent twice. Without a
 * servable token the wasm's getBalance does it all.
 *
 * @typedef {[fetchImpl: FetchImpl | undefined, timeoutMs: number, maxBytes: number]} ApiTransport
 * @typedef {object} ClientMethods the wasm's QBankClient, as the fast path uses it
 * @property {Manager} tokens
 * @property {(accountId: string, options?: BalanceOptions | null) => Promise<Balance>} getBalance
 * @typedef {{
 *   [BALANCE_URL]: (accountId: unknown, options: unknown) => string,
 *   [BALANCE_READ]: (accountId: string, body: string) => number | string,
 *   [BALANCE_AFTER]: (accountId: unknown, options: unknown, token?: string, answer?: Exchange) => Promise<Balance>,
 *   [TRANSPORT_OF]: () => ApiTransport,
 * }} ClientInternals the wasm methods for the fast path (client.rs: `balanceUrl` throws what
 *   getBalance would reject with)
 * @typedef {ClientMethods & ClientInternals & { [URLS]?: Map<string, string>, [TRANSPORT]?: ApiTransport }} Client
 *
 * @param {{ prototype: Client }} cls
 */
export function balancePath(cls) {
  /**
   * @this {Client}
   * @param {string} accountId index.d.ts's type: the wasm's balanceUrl refuses anything else, before a request
   * @param {BalanceOptions | null} [options]
   */
  cls.prototype.getBalance = async function getBalance(accountId, options) {
    const token = servable(slotOf(this.tokens));
    const signal = options == null ? undefined : options.signal;
    if (token === undefined || (signal && signal.aborted)) return this[BALANCE_AFTER](accountId, options);
    const url = typeof accountId === "string" && plainBalanceOptions(options) ? urlOf(this, accountId) : this[BALANCE_URL](accountId, options);
    const [fetchImpl, timeoutMs, maxBytes] = this[TRANSPORT] || (this[TRANSPORT] = this[TRANSPORT_OF]());
    // The request providers::qbank::balances::bearer_get describes.
    const headers = { authorization: "Bearer " + token.accessToken, accept: "application/json" };
    const answer = await send(fetchImpl, "GET", url, headers, undefined, timeoutMs, maxBytes, signal, false);
    if (answer.ok && answer.status >= 200 && answer.status < 300) {
      return balanceResult(this[BALANCE_READ](accountId, answer.body), accountId, answer.body);
    }
    return this[BALANCE_AFTER](accountId, options, token.accessToken, answer);
  };
}

/**
 * The URL of an account id, remembered: the wasm's check and encoding of the id are pure.
 * @param {Client} client
 * @param {string} accountId
 */
function urlOf(client, accountId) {
  const urls = client[URLS] || (client[URLS] = new Map());
  let url = urls.get(accountId);
  if (url === undefined) {
    url = client[BALANCE_URL](accountId, undefined);
    if (urls.size >= MAX_URLS) urls.clear();
    urls.set(accountId, url);
  }
  return url;
}

// ---- runtime ----

/** True in a web page (not in Workers, Deno, Node or Bun). */
export function isBrowser() {
  return typeof window !== "undefined" && typeof document !== "undefined" && typeof Deno === "undefined";
}

/** True in Cloudflare Workers (workerd): no timers at global scope, promises bound to requests. */
export function isWorkers() {
  if (inWorkers === undefined) inWorkers = typeof navigator !== "undefined" && navigator.userAgent === "Cloudflare-Workers";
  return inWorkers;
}
/** @type {boolean | undefined} */
let inWorkers;

export function now() {
  return Date.now();
}

export function random() {
  return Math.random();
}

// ---- timers ----

/**
 * setTimeout that never keeps a Node, Deno or Bun process alive, unless `keepAlive` (the fleet's
 * store steps while an acquisition runs, deadlines and pauses between reads: callers wait for
 * them). Returns a handle.
 * @param {() => void} callback
 * @param {number} ms
 * @param {boolean} [keepAlive]
 */
export function setUnrefTimeout(callback, ms, keepAlive) {
  const handle = setTimeout(callback, Math.max(0, Math.min(ms, 2147483647)));
  if (keepAlive) return handle;
  if (handle && typeof handle.unref === "function") handle.unref();
  else if (typeof Deno !== "undefined" && typeof Deno.unrefTimer === "function") Deno.unrefTimer(handle);
  return handle;
}

/** @param {TimerHandle} handle */
export function clearTimer(handle) {
  clearTimeout(handle);
}

// ---- promises ----

const STALE = { stale: true };

/**
 * Per caller signal, the calls waiting on it: one listener on the signal serves them all.
 * @type {WeakMap<SignalLike, Set<() => void>>}
 */
const waitingOn = new WeakMap();

/**
 * Calls `onAbort` once when `signal` fires; returns the function that stops listening. However
 * many calls share one caller's signal, it carries one listener of ours (Node warns from the 11th),
 * and a call that ends takes its entry out again: nothing is left behind on a long-lived signal.
 * (AbortSignal.any([signal]) per call did the first, but in Node 20 every follower leaves ~55 bytes
 * on the source signal for good: the soak caught it.) Callers check `signal.aborted` first.
 * @param {SignalLike | null | undefined} signal
 * @param {() => void} onAbort
 * @returns {() => void}
 */
export function listen(signal, onAbort) {
  if (!signal) return () => {};
  let waiting = waitingOn.get(signal);
  if (!waiting) {
    waiting = new Set();
    waitingOn.set(signal, waiting);
    const all = waiting;
    signal.addEventListener(
      "abort",
      () => {
        const now = [...all];
        all.clear();
        for (const f of now) f();
      },
      { once: true },
    );
  }
  const entry = () => onAbort();
  waiting.add(entry);
  return () => waiting.delete(entry);
}

/**
 * Waits for a shared promise on behalf of one caller. The caller's signal detaches only this
 * caller (the shared promise goes on). After `watchdogMs` the wait resolves to the STALE marker:
 * in Workers a request started by another, finished request may never settle.
 * @param {Promise<unknown>} promise
 * @param {SignalLike | null | undefined} signal
 * @param {number} watchdogMs
 * @returns {Promise<unknown>}
 */
export function waitShared(promise, signal, watchdogMs) {
  if (signal && signal.aborted) return Promise.reject(abortError());
  return new Promise((resolve, reject) => {
    /** @type {TimerHandle | undefined} */
    let timer;
    const unlisten = listen(signal, () => {
      cleanup();
      reject(abortError());
    });
    const cleanup = () => {
      if (timer !== undefined) clearTimeout(timer);
      unlisten();
    };
    if (watchdogMs > 0) timer = setTimeout(() => (cleanup(), resolve(STALE)), watchdogMs);
    promise.then(
      (v) => (cleanup(), resolve(v)),
      // A shared flight fails only with a QBankError. Anything else means the flight was lost:
      // workerd rejects a promise created by a request that has since ended. The caller then
      // gives the flight up and polls again.
      (e) => (cleanup(), e instanceof QBankError ? reject(e) : resolve(STALE)),
    );
  });
}

/** @param {unknown} value */
export function isStale(value) {
  return value === STALE;
}

/**
 * @param {unknown} value
 * @returns {value is SignalLike}
 */
export function isSignal(value) {
  return typeof value === "object" && value !== null && typeof /** @type {Record<string, unknown>} */ (value).aborted === "boolean" && typeof /** @type {Record<string, unknown>} */ (value).addEventListener === "function";
}

/** @param {SignalLike | null | undefined} signal */
export function isAborted(signal) {
  return !!(signal && signal.aborted);
}

/**
 * Hands a promise to `waitUntil` (Workers' ctx.waitUntil) settled either way, so it never rejects there.
 * @param {(promise: Promise<unknown>) => void} waitUntil
 * @param {Promise<unknown>} promise
 */
export function keepAlive(waitUntil, promise) {
  callSafely(waitUntil, promise.then(
    () => undefined,
    () => undefined,
  ));
}

export function abortError() {
  return new QBankError("aborted", "the caller's AbortSignal fired; a shared token request, if any, goes on for the others");
}

/**
 * Marks a promise as handled (a background refresh nobody awaits must not be an unhandled rejection).
 * @template T
 * @param {Promise<T>} promise
 */
export function quiet(promise) {
  promise.catch(() => {});
  return promise;
}

/**
 * Calls a user callback (onEvent, waitUntil) without letting it break us.
 * @template T
 * @param {(arg: T) => void} fn
 * @param {T} arg
 */
export function callSafely(fn, arg) {
  try {
    fn(arg);
  } catch {
    // A throwing user callback must not fail a token request.
  }
}

// ---- HTTP ----

/**
 * One request's abort wiring: aborts on the caller's signal or after `timeoutMs`, and remembers
 * which of the two it was. One object per request (its own sweeper entry, methods on the
 * prototype), instead of six closures per request.
 *
 * @typedef {object} Wiring what exchangeOnce needs of a request's abort wiring (a Deadline, or
 *   send's stand-in in Workers)
 * @property {AbortSignal | undefined} signal
 * @property {boolean} [answered]
 * @property {() => Failure["kind"]} kind
 * @property {() => void} done
 */
class Deadline {
  /**
   * @param {SignalLike | null | undefined} signal
   * @param {number} timeoutMs
   */
  constructor(signal, timeoutMs) {
    // controller, signal, caller and unlisten are dropped by done() (see there).
    /** @type {AbortController | undefined} */
    this.controller = new AbortController();
    /** @type {AbortSignal | undefined} */
    this.signal = this.controller.signal;
    /** @type {SignalLike | null | undefined} */
    this.caller = signal;
    this.timedOut = false;
    this.answered = false;
    this.over = false; // the request ended, or the deadline fired
    this.at = 0;
    /** @type {TimerHandle | undefined} */
    this.timer = undefined;
    /** @type {(() => void) | undefined} */
    this.unlisten = undefined;
    // In Workers a timer belongs to the request that set it: one per deadline there.
    if (isWorkers()) this.timer = setTimeout(() => this.expire(), timeoutMs);
    else sweeper.add(this, timeoutMs);
    if (signal) {
      if (signal.aborted) this.controller.abort();
      // The listener (like the timer) is gone before done() drops the controller.
      this.unlisten = listen(signal, () => /** @type {AbortController} */ (this.controller).abort());
    }
  }
  /** Only before done(): the sweeper skips ended entries and done() clears a Workers timer. */
  expire() {
    this.timedOut = true;
    /** @type {AbortController} */ (this.controller).abort();
  }
  /** @returns {Failure["kind"]} */
  kind() {
    return this.timedOut ? "timeout" : this.caller && this.caller.aborted ? "aborted" : "network";
  }
  done() {
    if (this.timer !== undefined) clearTimeout(this.timer);
    else sweeper.finish(this);
    if (this.unlisten) this.unlisten();
    // The sweeper keeps ended entries until it next prunes (up to ~1,000 of them): let them
    // hold nothing but their numbers.
    this.controller = this.signal = this.caller = this.unlisten = undefined;
  }
}

/**
 * @param {SignalLike | null | undefined} signal
 * @param {number} timeoutMs
 */
function deadline(signal, timeoutMs) {
  return new Deadline(signal, timeoutMs);
}

/**
 * Every other deadline shares one timer, armed for the earliest one: a setTimeout and a
 * clearTimeout per request cost more than the rest of a call's own work in Deno. Entries (the
 * Deadlines: `at`, `over`, `expire()`) are marked over when their request ends and dropped when
 * the timer fires or when ended ones pile up.
 */
const sweeper = {
  /** @type {Deadline[]} */
  entries: [],
  live: 0,
  /** @type {TimerHandle | undefined} */
  timer: undefined,
  armedAt: Infinity,
  /**
   * @param {Deadline} entry
   * @param {number} ms
   */
  add(entry, ms) {
    entry.at = Date.now() + ms;
    this.entries.push(entry);
    this.live += 1;
    if (entry.at < this.armedAt) this.arm(entry.at);
    if (this.entries.length > 2 * this.live + 1024) this.entries = this.entries.filter((e) => !e.over);
  },
  /** @param {Deadline} entry */
  finish(entry) {
    if (!entry.over) {
      entry.over = true;
      this.live -= 1;
    }
  },
  /** @param {number} at */
  arm(at) {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.armedAt = at;
    this.timer = setUnrefTimeout(() => this.sweep(), at - Date.now());
  },
  sweep() {
    this.timer = undefined;
    this.armedAt = Infinity;
    const now = Date.now();
    /** @type {Deadline[]} */
    const keep = [];
    let next = Infinity;
    for (const e of this.entries) {
      if (e.over) continue;
      if (e.at <= now) {
        this.finish(e);
        try {
          e.expire();
        } catch {
          // An abort listener that throws must not keep the other deadlines from firing.
        }
      } else {
        keep.push(e);
        if (e.at < next) next = e.at;
      }
    }
    this.entries = keep;
    if (next !== Infinity) this.arm(next);
  },
};

/** @type {unknown[]} */
const NOT_SENT = ["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "ConnectionRefused"];

/**
 * Whether a fetch failure certainly happened before the request reached the server.
 * @param {unknown} e what was thrown (or undefined): read as a Thrown
 */
export function notSent(e) {
  const cause = /** @type {Thrown | null | undefined} */ (e && /** @type {Thrown} */ (e).cause);
  // fetch puts the system error in `cause`; node:http throws it as it is.
  if ((cause && NOT_SENT.includes(cause.code)) || (e && NOT_SENT.includes(/** @type {Thrown} */ (e).code))) return true;
  const text = String((e && /** @type {Thrown} */ (e).message) || "") + " " + String((cause && cause.message) || "");
  return /connection refused|dns error|failed to lookup|getaddrinfo/i.test(text);
}

/**
 * What `send` uses when a client has no `fetch` option, instead of the global fetch: the Node
 * entry installs node-http.js's transport here. Same contract as `send`.
 * @type {Transport | undefined}
 */
let defaultTransport;

/** @param {Transport} transport */
export function useTransport(transport) {
  defaultTransport = transport;
}

/**
 * Called on globalThis when not injected: workerd refuses a detached fetch ("Illegal invocation").
 * @param {FetchImpl | undefined} fetchImpl
 * @param {string} url
 * @param {RequestInit} init
 */
function callFetch(fetchImpl, url, init) {
  return fetchImpl ? fetchImpl(url, init) : globalThis.fetch(url, init);
}

/**
 * Sends one request and reads the answer with a bounded body. Never throws: resolves to
 * { ok: true, status, headers: [[name, value]…], body } or { ok: false, kind, answered, sent } where
 * `sent` is false only when the request certainly never reached the server, and kind is "timeout" | "network" | "too_large" | "aborted".
 * Redirects are never followed: the 3xx comes back as it is. `headersOf2xx` false: the caller
 * reads no header of a 2xx answer (the getBalance fast path), so none are copied out of it.
 * @param {FetchImpl | undefined} fetchImpl
 * @param {string} method
 * @param {string} url
 * @param {RequestHeaders} headers
 * @param {string | null | undefined} body
 * @param {number} timeoutMs
 * @param {number} maxBytes
 * @param {SignalLike | null | undefined} signal
 * @param {boolean} [headersOf2xx]
 * @returns {Promise<Exchange>}
 */
export function send(fetchImpl, method, url, headers, body, timeoutMs, maxBytes, signal, headersOf2xx = true) {
  if (!fetchImpl && defaultTransport) return defaultTransport(method, url, headers, body, timeoutMs, maxBytes, signal);
  // In Workers the platform cancels a request's subrequests when the request ends, so there a
  // timeout only has to stop waiting: the request is raced against its timer instead of carrying
  // an AbortSignal (which costs about 7 % of a call in workerd). A caller's signal still aborts.
  if (!isWorkers() || signal) return exchangeOnce(fetchImpl, method, url, headers, body, deadline(signal, timeoutMs), maxBytes, headersOf2xx);
  /** @type {Wiring} */
  const d = { signal: undefined, kind: () => "network", done() {} };
  const attempt = exchangeOnce(fetchImpl, method, url, headers, body, d, maxBytes, headersOf2xx);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ ok: false, kind: "timeout", answered: d.answered === true, sent: true }), timeoutMs);
    attempt.then((answer) => {
      clearTimeout(timer);
      resolve(answer);
    });
  });
}

/**
 * One request and its bounded answer, aborted through `d` (see `deadline`). Never throws.
 * @param {FetchImpl | undefined} fetchImpl
 * @param {string} method
 * @param {string} url
 * @param {RequestHeaders} headers
 * @param {string | null | undefined} body
 * @param {Wiring} d
 * @param {number} maxBytes
 * @param {boolean} headersOf2xx
 * @returns {Promise<Exchange>}
 */
async function exchangeOnce(fetchImpl, method, url, headers, body, d, maxBytes, headersOf2xx) {
  let answered = false;
  try {
    /** @type {RequestInit} */
    const init = { method, headers, redirect: "manual", signal: d.signal };
    if (body !== undefined && body !== null) init.body = body;
    const res = await callFetch(fetchImpl, url, init);
    answered = d.answered = true;
    const text = await readBounded(res, maxBytes);
    if (text === null) return { ok: false, kind: "too_large", status: res.status };
    // Only the headers the core reads cross into the wasm.
    /** @type {[string, string][]} */
    const hs = [];
    if (headersOf2xx || res.status < 200 || res.status > 299) {
      for (const name of READ_HEADERS) {
        const v = res.headers.get(name);
        if (v !== null) hs.push([name, v]);
      }
    }
    return { ok: true, status: res.status, headers: hs, body: text };
  } catch (e) {
    return { ok: false, kind: d.kind(), answered, sent: answered || !notSent(e) };
  } finally {
    d.done();
  }
}

/**
 * Resolves after `ms`, or rejects with an `aborted` QBankError when the signal fires first.
 * @param {number} ms
 * @param {SignalLike | null | undefined} signal
 * @returns {Promise<void>}
 */
export function sleep(ms, signal) {
  if (signal && signal.aborted) return Promise.reject(abortError());
  return new Promise((resolve, reject) => {
    const unlisten = listen(signal, () => {
      clearTimeout(timer);
      reject(abortError());
    });
    const timer = setTimeout(() => {
      unlisten();
      resolve();
    }, ms);
  });
}

/**
 * Whether a fetch init's body can be sent a second time (a stream cannot).
 * @param {RequestInit | null | undefined} init
 */
export function replayable(init) {
  const b = init && init.body;
  return b === undefined || b === null || typeof b === "string" || b instanceof URLSearchParams ||
    b instanceof ArrayBuffer || ArrayBuffer.isView(b) || (typeof Blob !== "undefined" && b instanceof Blob) ||
    (typeof FormData !== "undefined" && b instanceof FormData);
}

/**
 * The method of a fetch init, upper-cased ("GET" when absent or not a string).
 * @param {RequestInit | null | undefined} init
 */
export function methodOf(init) {
  const m = init && init.method;
  return typeof m === "string" ? m.toUpperCase() : "GET";
}

/**
 * The authorized fetch: the caller's init with our Authorization header (any of theirs is
 * replaced), no redirect followed, a timeout until the headers arrive. Never throws: resolves to
 * { ok: true, response } or { ok: false, kind, answered, sent }.
 * @param {FetchImpl | undefined} fetchImpl
 * @param {string} url
 * @param {RequestInit | null | undefined} init the caller's (the wasm checked it is an object, if given)
 * @param {string} token
 * @param {number} timeoutMs
 * @returns {Promise<{ ok: true, response: Response } | Failure>}
 */
export async function fetchWithToken(fetchImpl, url, init, token, timeoutMs) {
  // `init` may be null (the wasm allows it, as "no init"): new Headers(null) throws.
  const headers = new Headers(init ? init.headers : undefined);
  headers.set("authorization", "Bearer " + token);
  const d = deadline(init && init.signal, timeoutMs);
  try {
    const all = Object.assign({}, init, { headers, redirect: "manual", signal: d.signal });
    return { ok: true, response: await callFetch(fetchImpl, url, all) };
  } catch (e) {
    return { ok: false, kind: d.kind(), answered: false, sent: !notSent(e) };
  } finally {
    d.done();
  }
}

/** The only answer headers the core reads. */
export const READ_HEADERS = ["retry-after", "www-authenticate", "content-type"];

/**
 * The body as text, or null (body cancelled) past `maxBytes`. Not async itself: the common
 * case hands back `res.text()`'s own promise.
 * @param {Response} res
 * @param {number} maxBytes
 * @returns {Promise<string | null>}
 */
function readBounded(res, maxBytes) {
  const length = res.headers.get("content-length");
  const declared = length === null ? NaN : Number(length);
  if (Number.isFinite(declared) && declared > maxBytes) return refuseBody(res);
  // A declared length within bounds (and no content-encoding that could expand it): the
  // runtime's own reader, much cheaper than a chunk loop. Otherwise count the bytes as they come.
  if (Number.isFinite(declared) && !res.headers.get("content-encoding")) return res.text();
  return readCounting(res, maxBytes);
}

/** @param {Response} res */
async function refuseBody(res) {
  try {
    await res.body?.cancel();
  } catch {}
  return null;
}

/**
 * @param {Response} res
 * @param {number} maxBytes
 */
async function readCounting(res, maxBytes) {
  if (!res.body) return "";
  const reader = res.body.getReader();
  /** @type {Uint8Array[]} */
  const chunks = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      try {
        await reader.cancel();
      } catch {}
      return null;
    }
    chunks.push(value);
  }
  const all = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.byteLength;
  }
  return new TextDecoder().decode(all);
}
