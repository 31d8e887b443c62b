// The hand-written JavaScript half of the edge: what is smaller and clearer in JS than through
// bindings (the Error subclass, fetch with a timeout and a bounded body, abort signals, timers,
// runtime detection). Decisions stay in Rust; this file only does I/O and plumbing.

const INSPECT = Symbol.for("nodejs.util.inspect.custom");
const FIELDS = ["status", "oauthError", "oauthErrorDescription", "retryAfterMs", "mayHaveReachedServer", "requiredScope", "problem"];

/** Every failure from qbank-connect: a real Error with a stable `code`. Never holds a secret. */
export class QBankError extends Error {
  constructor(code, message, fields) {
    super(message);
    this.name = "QBankError";
    this.code = code;
    this.mayHaveReachedServer = false;
    if (fields) {
      for (const k of FIELDS) {
        if (fields[k] !== undefined && fields[k] !== null) this[k] = fields[k];
      }
    }
  }
  toJSON() {
    const out = { name: this.name, code: this.code, message: this.message };
    for (const k of FIELDS) if (this[k] !== undefined) out[k] = this[k];
    return out;
  }
}

export function makeError(code, message, fields) {
  return new QBankError(code, message, fields);
}

/** Makes Node's util.inspect show the redacted description of our classes, never their state. */
export function decorate(...classes) {
  for (const cls of classes) {
    if (cls && cls.prototype && !Object.prototype.hasOwnProperty.call(cls.prototype, INSPECT)) {
      Object.defineProperty(cls.prototype, INSPECT, {
        value: function () {
          return typeof this.toString === "function" ? this.toString() : "[qbank-connect]";
        },
      });
    }
  }
}

// ---- tokens ----

const TOKEN_PROTO = {
  toJSON() {
    return { accessToken: "[redacted]", tokenType: this.tokenType, expiresAt: this.expiresAt, scope: this.scope };
  },
  toString() {
    return "AccessToken { accessToken: [redacted], expiresAt: " + this.expiresAt + " }";
  },
};
Object.defineProperty(TOKEN_PROTO, INSPECT, {
  value() {
    return this.toString();
  },
});

/**
 * The token object handed to callers: frozen (it is shared by every caller until the next
 * refresh), with the token readable as `accessToken` but redacted in JSON, String() and inspect.
 */
export function makeToken(accessToken, expiresAt, scope) {
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
  #value;
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

export function makeOneTimeSecret(value) {
  return new OneTimeSecret(value);
}

// ---- the cached-token fast path ----

const SLOT = Symbol("qbank-connect.slot");

/**
 * The JavaScript half of the cached-token fast path. The wasm side publishes into a manager's
 * slot the token it would hand out, the instant it was published and until when its core
 * promises that a plain poll answers exactly that (`serve_until`), and clears the slot on every
 * other change. While `since <= Date.now() < until`, getToken() without options is answered
 * here, without entering the wasm; a clock that went backwards falls through to the core.
 */
export function makeSlot() {
  return { since: 0, until: 0, token: undefined, promise: undefined };
}

export function publishSlot(slot, token, since, until) {
  slot.since = since;
  slot.until = until;
  slot.token = token;
  slot.promise = Promise.resolve(token);
}

export function clearSlot(slot) {
  slot.until = 0;
  slot.token = undefined;
  slot.promise = undefined;
}

/** A TokenManager's slot, looked up in the wasm once. */
function slotOf(manager) {
  return manager[SLOT] || (manager[SLOT] = manager.__slot());
}

/** The token the slot vouches for now, or undefined (then the core decides). */
function servable(slot) {
  const now = Date.now();
  return now < slot.until && now >= slot.since ? slot.token : undefined;
}

/** Makes a getter return the same object every time (QBankClient.tokens: one wrapper, whose fast-path slot is then looked up once). */
export function memoGetter(cls, name) {
  const desc = Object.getOwnPropertyDescriptor(cls.prototype, name);
  const key = Symbol(name);
  Object.defineProperty(cls.prototype, name, {
    configurable: true,
    enumerable: desc.enumerable,
    get() {
      return this[key] || (this[key] = desc.get.call(this));
    },
  });
}

/** Installs the fast path on TokenManager.prototype.getToken. */
export function fastPath(cls) {
  const slow = cls.prototype.getToken;
  cls.prototype.getToken = function getToken(options) {
    if (options === undefined) {
      const slot = slotOf(this);
      if (servable(slot) !== undefined) return slot.promise;
    }
    return slow.call(this, options);
  };
}

/**
 * Whether getBalance's options are certainly valid without asking the wasm: absent, or a plain
 * object with nothing but an AbortSignal `signal` and a function `waitUntil`. Anything else is
 * checked (and refused with its message) by the wasm's __balanceUrl.
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
 * getBalance's result from what the core read in a 2xx body (`providers::qbank::balances::balance_read`):
 * a plan (a number), built here from `JSON.parse(body)`, or the result's exact JSON text, to
 * which `raw` is added as `JSON.parse(body)` when the core left it out (a body without numbers).
 * Both getBalance paths end here: the fast path and the wasm's own.
 */
export function balanceResult(read, accountId, body) {
  if (typeof read === "number") return fromPlan(read, accountId, JSON.parse(body));
  const result = JSON.parse(read);
  if (result.raw === undefined) result.raw = JSON.parse(body);
  return result;
}

function fromPlan(plan, accountId, raw) {
  const result = {
    accountId,
    availableBalance: raw[plan & PLAN_AVAILABLE_CAMEL ? "availableBalance" : "available_balance"],
    ledgerBalance: raw[plan & PLAN_LEDGER_CAMEL ? "ledgerBalance" : "ledger_balance"],
  };
  if (plan & PLAN_CURRENCY) result.currency = raw.currency;
  const asOf = (plan >> PLAN_AS_OF_SHIFT) & 3;
  if (asOf !== 0) result.asOf = raw[AS_OF_NAMES[asOf]];
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
 */
export function balancePath(cls) {
  // The URL of an account id, remembered: the wasm's check and encoding of the id are pure.
  cls.prototype.__urlOf = function (accountId) {
    const urls = this[URLS] || (this[URLS] = new Map());
    let url = urls.get(accountId);
    if (url === undefined) {
      url = this.__balanceUrl(accountId, undefined);
      if (urls.size >= MAX_URLS) urls.clear();
      urls.set(accountId, url);
    }
    return url;
  };
  cls.prototype.getBalance = async function getBalance(accountId, options) {
    const token = servable(slotOf(this.tokens));
    const signal = options == null ? undefined : options.signal;
    if (token === undefined || (signal && signal.aborted)) return this.__balanceAfter(accountId, options);
    const url = typeof accountId === "string" && plainBalanceOptions(options) ? this.__urlOf(accountId) : this.__balanceUrl(accountId, options);
    const [fetchImpl, timeoutMs, maxBytes] = this[TRANSPORT] || (this[TRANSPORT] = this.__transport());
    // The request providers::qbank::balances::bearer_get describes.
    const headers = { authorization: "Bearer " + token.accessToken, accept: "application/json" };
    const answer = await send(fetchImpl, "GET", url, headers, undefined, timeoutMs, maxBytes, signal, false);
    if (answer.ok && answer.status >= 200 && answer.status < 300) {
      return balanceResult(this.__balanceRead(accountId, answer.body), accountId, answer.body);
    }
    return this.__balanceAfter(accountId, options, token.accessToken, answer);
  };
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
let inWorkers;

export function now() {
  return Date.now();
}

export function random() {
  return Math.random();
}

// ---- timers ----

/** setTimeout that never keeps a Node, Deno or Bun process alive. Returns a handle. */
export function setUnrefTimeout(callback, ms) {
  const handle = setTimeout(callback, Math.max(0, Math.min(ms, 2147483647)));
  if (handle && typeof handle.unref === "function") handle.unref();
  else if (typeof Deno !== "undefined" && typeof Deno.unrefTimer === "function") Deno.unrefTimer(handle);
  return handle;
}

export function clearTimer(handle) {
  clearTimeout(handle);
}

// ---- promises ----

const STALE = { stale: true };

/** Per caller signal, the calls waiting on it: one listener on the signal serves them all. */
const waitingOn = new WeakMap();

/**
 * Calls `onAbort` once when `signal` fires; returns the function that stops listening. However
 * many calls share one caller's signal, it carries one listener of ours (Node warns from the 11th),
 * and a call that ends takes its entry out again: nothing is left behind on a long-lived signal.
 * (AbortSignal.any([signal]) per call did the first, but in Node 20 every follower leaves ~55 bytes
 * on the source signal for good: the soak caught it.) Callers check `signal.aborted` first.
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
 */
export function waitShared(promise, signal, watchdogMs) {
  if (signal && signal.aborted) return Promise.reject(abortError());
  return new Promise((resolve, reject) => {
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

export function isStale(value) {
  return value === STALE;
}

export function isSignal(value) {
  return typeof value === "object" && value !== null && typeof value.aborted === "boolean" && typeof value.addEventListener === "function";
}

export function isAborted(signal) {
  return !!(signal && signal.aborted);
}

/** Hands a promise to `waitUntil` (Workers' ctx.waitUntil) settled either way, so it never rejects there. */
export function keepAlive(waitUntil, promise) {
  callSafely(waitUntil, promise.then(
    () => undefined,
    () => undefined,
  ));
}

export function abortError() {
  return new QBankError("aborted", "the caller's AbortSignal fired; a shared token request, if any, goes on for the others");
}

/** Marks a promise as handled (a background refresh nobody awaits must not be an unhandled rejection). */
export function quiet(promise) {
  promise.catch(() => {});
  return promise;
}

/** Calls a user callback (onEvent, waitUntil) without letting it break us. */
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
 */
class Deadline {
  constructor(signal, timeoutMs) {
    this.controller = new AbortController();
    this.signal = this.controller.signal;
    this.caller = signal;
    this.timedOut = false;
    this.answered = false;
    this.over = false; // the request ended, or the deadline fired
    this.at = 0;
    this.timer = undefined;
    this.unlisten = undefined;
    // In Workers a timer belongs to the request that set it: one per deadline there.
    if (isWorkers()) this.timer = setTimeout(() => this.expire(), timeoutMs);
    else sweeper.add(this, timeoutMs);
    if (signal) {
      if (signal.aborted) this.controller.abort();
      this.unlisten = listen(signal, () => this.controller.abort());
    }
  }
  expire() {
    this.timedOut = true;
    this.controller.abort();
  }
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
  entries: [],
  live: 0,
  timer: undefined,
  armedAt: Infinity,
  add(entry, ms) {
    entry.at = Date.now() + ms;
    this.entries.push(entry);
    this.live += 1;
    if (entry.at < this.armedAt) this.arm(entry.at);
    if (this.entries.length > 2 * this.live + 1024) this.entries = this.entries.filter((e) => !e.over);
  },
  finish(entry) {
    if (!entry.over) {
      entry.over = true;
      this.live -= 1;
    }
  },
  arm(at) {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.armedAt = at;
    this.timer = setUnrefTimeout(() => this.sweep(), at - Date.now());
  },
  sweep() {
    this.timer = undefined;
    this.armedAt = Infinity;
    const now = Date.now();
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

const NOT_SENT = ["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "ConnectionRefused"];

/** Whether a fetch failure certainly happened before the request reached the server. */
export function notSent(e) {
  const cause = e && e.cause;
  // fetch puts the system error in `cause`; node:http throws it as it is.
  if ((cause && NOT_SENT.includes(cause.code)) || (e && NOT_SENT.includes(e.code))) return true;
  const text = String((e && e.message) || "") + " " + String((cause && cause.message) || "");
  return /connection refused|dns error|failed to lookup|getaddrinfo/i.test(text);
}

/**
 * What `send` uses when a client has no `fetch` option, instead of the global fetch: the Node
 * entry installs node-http.js's transport here. Same contract as `send`.
 */
let defaultTransport;

export function useTransport(transport) {
  defaultTransport = transport;
}

// Called on globalThis when not injected: workerd refuses a detached fetch ("Illegal invocation").
function callFetch(fetchImpl, url, init) {
  return fetchImpl ? fetchImpl(url, init) : globalThis.fetch(url, init);
}

/**
 * Sends one request and reads the answer with a bounded body. Never throws: resolves to
 * { ok: true, status, headers: [[name, value]…], body } or { ok: false, kind, answered, sent } where
 * `sent` is false only when the request certainly never reached the server, and kind is "timeout" | "network" | "too_large" | "aborted".
 * Redirects are never followed: the 3xx comes back as it is. `headersOf2xx` false: the caller
 * reads no header of a 2xx answer (the getBalance fast path), so none are copied out of it.
 */
export function send(fetchImpl, method, url, headers, body, timeoutMs, maxBytes, signal, headersOf2xx = true) {
  if (!fetchImpl && defaultTransport) return defaultTransport(method, url, headers, body, timeoutMs, maxBytes, signal);
  // In Workers the platform cancels a request's subrequests when the request ends, so there a
  // timeout only has to stop waiting: the request is raced against its timer instead of carrying
  // an AbortSignal (which costs about 7 % of a call in workerd). A caller's signal still aborts.
  if (!isWorkers() || signal) return exchangeOnce(fetchImpl, method, url, headers, body, deadline(signal, timeoutMs), maxBytes, headersOf2xx);
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

/** One request and its bounded answer, aborted through `d` (see `deadline`). Never throws. */
async function exchangeOnce(fetchImpl, method, url, headers, body, d, maxBytes, headersOf2xx) {
  let answered = false;
  try {
    const init = { method, headers, redirect: "manual", signal: d.signal };
    if (body !== undefined && body !== null) init.body = body;
    const res = await callFetch(fetchImpl, url, init);
    answered = d.answered = true;
    const text = await readBounded(res, maxBytes);
    if (text === null) return { ok: false, kind: "too_large", status: res.status };
    // Only the headers the core reads cross into the wasm.
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

/** Resolves after `ms`, or rejects with an `aborted` QBankError when the signal fires first. */
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

/** Whether a fetch init's body can be sent a second time (a stream cannot). */
export function replayable(init) {
  const b = init && init.body;
  return b === undefined || b === null || typeof b === "string" || b instanceof URLSearchParams ||
    b instanceof ArrayBuffer || ArrayBuffer.isView(b) || (typeof Blob !== "undefined" && b instanceof Blob) ||
    (typeof FormData !== "undefined" && b instanceof FormData);
}

/** The method of a fetch init, upper-cased ("GET" when absent or not a string). */
export function methodOf(init) {
  const m = init && init.method;
  return typeof m === "string" ? m.toUpperCase() : "GET";
}

/**
 * The authorized fetch: the caller's init with our Authorization header (any of theirs is
 * replaced), no redirect followed, a timeout until the headers arrive. Never throws: resolves to
 * { ok: true, response } or { ok: false, kind, answered, sent }.
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

/** The body as text, or null (body cancelled) past `maxBytes`. Not async itself: the common
 * case hands back `res.text()`'s own promise. */
function readBounded(res, maxBytes) {
  const length = res.headers.get("content-length");
  const declared = length === null ? NaN : Number(length);
  if (Number.isFinite(declared) && declared > maxBytes) return refuseBody(res);
  // A declared length within bounds (and no content-encoding that could expand it): the
  // runtime's own reader, much cheaper than a chunk loop. Otherwise count the bytes as they come.
  if (Number.isFinite(declared) && !res.headers.get("content-encoding")) return res.text();
  return readCounting(res, maxBytes);
}

async function refuseBody(res) {
  try {
    await res.body?.cancel();
  } catch {}
  return null;
}

async function readCounting(res, maxBytes) {
  if (!res.body) return "";
  const reader = res.body.getReader();
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
