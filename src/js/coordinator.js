// Cloudflare fleets (issue 19): one token request per token lifetime for every isolate of a
// Worker, through a Durable Object (the README's "Many instances"; typed in index.d.ts).
//
// - durableObjectStore(env.QBANK_TOKENS), passed as `store`, makes a TokenManager a coordinated
//   one (store.js's COORDINATOR): its memory works as always, and a missing token, or one past
//   its refresh point, is asked of the object named after the entry (one object per credential
//   set; the name is an HMAC, never the client id). Whatever goes wrong with the object, the
//   isolate falls back to its own token request (the fleet core's path for a failed store).
// - TokenCoordinator, the Durable Object class (workerd.js builds it with the platform's
//   DurableObject and the package's TokenManager: tokenCoordinator below). It keeps one
//   TokenManager for its credential set, built from the options the isolates send with each call
//   (in memory only: the secret is never stored, never logged), over its own storage as the
//   manager's store: the token is kept there encrypted, exactly as in any other store, so an
//   isolate decrypts the object's answer as any entry, and a restarted object serves it again
//   without a token request. Its alarm refreshes ahead of every isolate's refresh point.
//
// Type-checked by `tsc -p tsconfig.checkjs.json` (make lint).

import { QBankError } from "./support.js";
import { COORDINATOR } from "./store.js";
import { expiring, hasMethods, unexpired, wholeMs } from "./adapters.js";

/**
 * @typedef {object} Namespace a Durable Object namespace binding (only what is used here)
 * @property {(name: string) => unknown} idFromName
 * @property {(id: unknown) => unknown} get
 *
 * @typedef {object} Storage a DurableObjectStorage (only what is used here)
 * @property {(key: string) => Promise<unknown>} get
 * @property {(key: string, value: unknown) => Promise<void>} put
 * @property {(key: string) => Promise<boolean>} delete
 * @property {(at: number) => Promise<void>} setAlarm
 *
 * @typedef {object} State a DurableObjectState (only what is used here)
 * @property {Storage} storage
 * @property {(p: Promise<unknown>) => void} waitUntil
 *
 * @typedef {object} Status what a TokenManager's status says (only what is used here)
 * @property {string} state
 * @property {number} tokenRequests
 * @property {number} consecutiveFailures
 * @property {number} [expiresAt]
 * @property {number} [refreshAt]
 * @property {number} [retryAt]
 *
 * @typedef {object} Manager a TokenManager (only what is used here)
 * @property {(options?: { forceRefresh?: boolean }) => Promise<unknown>} getToken
 * @property {() => boolean} invalidate
 * @property {Status} status
 * @property {() => Promise<void>} close
 *
 * @typedef {object} Slot the object's one credential set
 * @property {string} name the entry's name (also the storage key)
 * @property {string} same the options, to tell a changed configuration (in memory only)
 * @property {Manager} tm
 * @property {string | null} raw the encrypted value last written or read
 * @property {number} acquired tokens from the endpoint
 * @property {number} stored their writes, landed or failed
 * @property {(() => void)[]} waiters for those writes
 * @property {Promise<void> | undefined} refreshing
 * @property {number | undefined} alarmAt
 * @property {number} gotAt when the manager last got a token (epoch ms)
 * @property {number} answeredAt when an isolate was last answered (epoch ms)
 *
 * @typedef {object} Coord a TokenCoordinator, as the functions below use it
 * @property {State} state
 * @property {number} alarms
 */

/** What the object takes from an isolate's options (Config::coordinator_options). */
const OPTIONS = [
  "tokenUrl",
  "clientId",
  "clientSecret",
  "storeKey",
  "scope",
  "authMethod",
  "extraParams",
  "timeoutMs",
  "refreshAheadSeconds",
  "expiryMarginSeconds",
  "defaultLifetimeSeconds",
  "allowInsecureHttp",
];
const NAME = /^qbank-connect:v1:[0-9a-f]{64}$/;
/**
 * Each object's slot, outside the object, so that nothing that shows an object (console.log, a
 * debugger, JSON.stringify) shows the options it keeps, secret included.
 * @type {WeakMap<object, Slot>}
 */
const slots = new WeakMap();

/**
 * The coordinator store: pass it as `store` to TokenManager or QBankClient in a Worker.
 * @param {Namespace} namespace the Durable Object namespace bound to TokenCoordinator (env.QBANK_TOKENS)
 */
export function durableObjectStore(namespace) {
  if (!hasMethods(namespace, "idFromName", "get")) {
    throw new QBankError(
      "config",
      "durableObjectStore(namespace): expected a Durable Object namespace binding (env.QBANK_TOKENS) bound to the TokenCoordinator class",
    );
  }
  // get and set make it a TokenStore; a coordinated manager never calls them (store.js).
  return { get: async () => null, set: async () => {}, [COORDINATOR]: namespace };
}

/**
 * The TokenCoordinator class, on the platform's DurableObject.
 * @param {new (ctx: any, env: any) => object} DurableObject
 * @param {new (options: object) => Manager} TokenManager
 */
export function tokenCoordinator(DurableObject, TokenManager) {
  // A declaration, so that the class keeps its name through the minifier.
  class TokenCoordinator extends DurableObject {
    /**
     * @param {State} ctx
     * @param {unknown} env
     */
    constructor(ctx, env) {
      super(ctx, env);
      /** @type {State} */
      this.state = ctx;
      this.alarms = 0;
    }

    /**
     * An isolate's read: the encrypted entry, or null when there is no token (the isolate then
     * asks the token endpoint itself, and its caller sees the provider's own error).
     * @param {{ v?: unknown, name?: unknown, have?: unknown, options?: unknown }} request
     * @returns {Promise<string | null>}
     */
    async token(request) {
      const { v, name, have, options } = request ?? {};
      if (v !== 1 || typeof name !== "string" || !NAME.test(name) || typeof options !== "object" || !options) return null;
      const s = use(this, TokenManager, name, /** @type {Record<string, unknown>} */ (options));
      if (!s) return null;
      try {
        await s.tm.getToken();
      } catch {
        return null;
      }
      await landed(s);
      // The isolate is past its refresh point with this very token: it gets the next one.
      if (s.raw !== null && s.raw === have) await refresh(s);
      await arm(this, s);
      s.answeredAt = Date.now();
      return s.raw;
    }

    /**
     * The 401 path: forgets the token if the entry still is `raw` (a newer one is left alone).
     * @param {unknown} name
     * @param {unknown} raw
     */
    async forget(name, raw) {
      const s = slots.get(this);
      if (!s || name !== s.name || typeof raw !== "string" || s.raw !== raw) return;
      s.raw = null;
      await this.state.storage.delete(s.name);
      s.tm.invalidate();
    }

    /** For operators, tests and the demo: no token, no secret, no entry name. */
    async status() {
      const s = slots.get(this);
      const st = s?.tm.status;
      return {
        managers: s ? 1 : 0,
        state: st?.state ?? "empty",
        tokenRequests: st?.tokenRequests ?? 0,
        consecutiveFailures: st?.consecutiveFailures ?? 0,
        expiresAt: st?.expiresAt ?? null,
        refreshAt: st?.refreshAt ?? null,
        alarmAt: s?.alarmAt ?? null,
        alarms: this.alarms,
      };
    }

    /**
     * Refreshes ahead of every isolate. Not for nobody: a token no isolate asked for since the
     * last one came is not renewed (the next call gets the still-valid token, or waits for a new
     * one), so an idle Worker does not keep asking the bank. An object evicted since (no
     * options, no secret) waits for the next call.
     */
    async alarm() {
      this.alarms++;
      const s = slots.get(this);
      if (!s) return;
      s.alarmAt = undefined;
      if (s.answeredAt < s.gotAt) return;
      await refresh(s);
      await arm(this, s);
    }
  }
  return TokenCoordinator;
}

/**
 * The slot for `name`, its manager built (or rebuilt, when the options changed: a rotated
 * secret) from `options`. Undefined when they are not usable.
 * @param {Coord} self
 * @param {new (options: object) => Manager} TokenManager
 * @param {string} name
 * @param {Record<string, unknown>} options
 */
function use(self, TokenManager, name, options) {
  const old = slots.get(self);
  if (old && old.name !== name) return undefined;
  const picked = Object.fromEntries(OPTIONS.filter((k) => options[k] !== undefined).map((k) => [k, options[k]]));
  const same = JSON.stringify(picked);
  if (old && old.same === same) return old;
  /** @type {Slot} */
  const s = { name, same, tm: /** @type {any} */ (undefined), raw: old ? old.raw : null, acquired: 0, stored: 0, waiters: [], refreshing: undefined, alarmAt: undefined, gotAt: 0, answeredAt: 0 };
  const storage = self.state.storage;
  // The manager's store: this object's storage, under the entry's name only.
  const store = {
    /** @param {string} key */
    get: async (key) => {
      if (key !== name) return null;
      const entry = await storage.get(key);
      const value = unexpired(entry) ?? null;
      if (value === null && entry !== undefined) await storage.delete(key);
      s.raw = value;
      return value;
    },
    /** @param {string} key @param {string} value @param {number} ttlMs */
    set: async (key, value, ttlMs) => {
      if (key !== name) return;
      try {
        await storage.put(key, expiring(value, wholeMs(ttlMs)));
        s.raw = value;
      } finally {
        wrote(s);
      }
    },
    /** @param {string} key @param {string} value */
    deleteIfEquals: async (key, value) => {
      const equal = key === name && unexpired(await storage.get(key)) === value;
      if (equal) await storage.delete(key);
      return equal;
    },
  };
  try {
    s.tm = new TokenManager({
      ...picked,
      store,
      autoRefresh: false,
      waitUntil: (/** @type {Promise<unknown>} */ p) => self.state.waitUntil(p),
      onEvent: (/** @type {{ type: string, source?: string, step?: string }} */ e) => {
        if (e.type === "token_acquired") {
          s.gotAt = Date.now();
          if (e.source === "endpoint") s.acquired++;
        } else if (e.type === "store_failed" && e.step === "write") wrote(s);
      },
    });
  } catch {
    return undefined;
  }
  if (old) void old.tm.close();
  slots.set(self, s);
  return s;
}

/**
 * Starts a refresh if one is due (past the object's own refresh point, no backoff running,
 * not halted by invalid_client); resolves when the refresh in flight, if any, has ended and
 * its token is stored. A failed refresh keeps the still-valid token (the manager's static
 * stability), so no caller sees it.
 * @param {Slot} s
 */
function refresh(s) {
  if (!s.refreshing) {
    const st = s.tm.status;
    const at = due(st);
    // A request in flight (the manager's own, started by a call past its refresh point) is
    // joined: a forced getToken waits for it rather than starting another.
    if (st.state !== "refreshing" && (at === undefined || Date.now() < at)) return Promise.resolve();
    s.refreshing = s.tm
      .getToken({ forceRefresh: true })
      .then(() => landed(s), () => {})
      .finally(() => {
        s.refreshing = undefined;
      });
  }
  return s.refreshing;
}

/**
 * Sets the alarm at the next refresh (none while halted, or while a request is in flight:
 * its end re-arms it).
 * @param {Coord} self
 * @param {Slot} s
 */
async function arm(self, s) {
  const at = due(s.tm.status);
  if (at === undefined) return;
  const when = Math.max(Date.now(), at);
  if (s.alarmAt === when) return;
  s.alarmAt = when;
  await self.state.storage.setAlarm(when);
}

/**
 * When the object refreshes: ahead of every isolate, at expiresAt − 2·W where the isolates
 * refresh at expiresAt − W (W = min(refreshAheadSeconds, lifetime / 4), the manager's refreshAt
 * being the same point for the object's own token); at the retry time while backing off.
 * Undefined when nothing is to be done: no token, a request in flight, or after invalid_client.
 * @param {Status} st
 * @returns {number | undefined}
 */
function due(st) {
  const { refreshAt, expiresAt } = st;
  if (refreshAt === undefined || expiresAt === undefined) return undefined;
  if (st.consecutiveFailures > 0) return st.retryAt ?? refreshAt;
  return 2 * refreshAt - expiresAt;
}

/**
 * Resolves once every token this slot got from the endpoint is in storage (or failed to be
 * written): the object answers what is stored. Bounded: a write that never settles cannot hold
 * a call.
 * @param {Slot} s
 * @returns {Promise<void>}
 */
function landed(s) {
  if (s.stored >= s.acquired) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 2000);
    s.waiters.push(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** @param {Slot} s */
function wrote(s) {
  s.stored++;
  if (s.stored < s.acquired) return;
  for (const w of s.waiters.splice(0)) w();
}
