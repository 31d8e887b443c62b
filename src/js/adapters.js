// The token stores the package ships (issues 18 and 19; the TokenStore contract is in
// index.d.ts): memoryStore (one process), redisStore (node-redis v4/v5 or ioredis), denoKvStore
// (Deno KV), workersKvStore (Workers KV, a shared cache only). Each holds opaque strings (the
// driver, store.js, encrypts them) under
// string keys for a TTL, with the lease (setIfAbsent) and compare-and-delete (deleteIfEquals)
// atomic where the engine is shared (Workers KV has no compare-and-set: it has neither).
//
// No wasm and no Node-only import: the adapters bundle into every entry, workerd's included.
// Type-checked by `tsc -p tsconfig.checkjs.json` (make lint).

import { QBankError } from "./support.js";

/**
 * @typedef {object} TokenStore index.d.ts's TokenStore
 * @property {(key: string) => Promise<string | null | undefined>} get
 * @property {(key: string, value: string, ttlMs: number) => Promise<void>} set
 * @property {(key: string, value: string, ttlMs: number) => Promise<boolean>} setIfAbsent
 * @property {(key: string, value: string) => Promise<boolean>} deleteIfEquals
 *
 * @typedef {(...args: any[]) => Promise<unknown>} AnyCommand a client's command method
 * @typedef {{ get: AnyCommand, set: AnyCommand, eval: AnyCommand }} RedisClientLike what
 *   redisStore calls: node-redis `set(k, v, { PX, NX })`, `eval(script, { keys, arguments })`;
 *   ioredis `set(k, v, "PX", ttl, "NX")`, `eval(script, numKeys, ...keysAndArgs)`
 *
 * @typedef {readonly (string | number | bigint | boolean | Uint8Array)[]} KvKey a Deno.KvKey
 * @typedef {{ value: unknown, versionstamp: string | null }} KvEntry
 * @typedef {object} KvAtomic a Deno.AtomicOperation (only what denoKvStore uses)
 * @property {(...checks: { key: KvKey, versionstamp: string | null }[]) => KvAtomic} check
 * @property {(key: KvKey, value: unknown, options?: { expireIn?: number }) => KvAtomic} set
 * @property {(key: KvKey) => KvAtomic} delete
 * @property {() => Promise<{ ok: boolean }>} commit
 * @typedef {object} KvLike a Deno.Kv, from `await Deno.openKv()` (only what denoKvStore uses)
 * @property {(key: KvKey) => Promise<KvEntry>} get
 * @property {(key: KvKey, value: unknown, options?: { expireIn?: number }) => Promise<unknown>} set
 * @property {() => KvAtomic} atomic
 * @typedef {object} WorkersKvLike a Workers KV namespace binding (`env.KV`; only what workersKvStore uses)
 * @property {(key: string) => Promise<string | null>} get
 * @property {(key: string, value: string, options: { expirationTtl: number }) => Promise<unknown>} put
 */

/** The compare-and-delete (TokenStore.deleteIfEquals in index.d.ts), run by redis as one step. */
const DELETE_IF_EQUALS = 'if redis.call("GET",KEYS[1])==ARGV[1] then return redis.call("DEL",KEYS[1]) else return 0 end';

/** @param {string} message */
const configError = (message) => new QBankError("config", message);

/**
 * A whole number of milliseconds, at least 1: the engines take integers, and rounding down never
 * keeps a value longer than asked. Anything but a positive finite number is refused.
 * @param {number} ttlMs
 */
export function wholeMs(ttlMs) {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new QBankError("invalid_argument", "a store's ttlMs must be a positive finite number of milliseconds");
  }
  return Math.max(1, Math.floor(ttlMs));
}

/** `value` as kept by the stores whose own expiry is coarse: `{ v, exp }`, exp in epoch ms. @param {string} value @param {number} ms */
export const expiring = (value, ms) => ({ v: value, exp: Date.now() + ms });

/** The `v` of an `expiring` entry not yet past its `exp`; else (expired, or not such an entry) undefined. @param {unknown} entry */
export const unexpired = (entry) => {
  const e = /** @type {{ v?: unknown, exp?: unknown } | null} */ (entry);
  return e && typeof e.v === "string" && typeof e.exp === "number" && e.exp > Date.now() ? e.v : undefined;
};

/** Whether `x` is an object with a method under each name. @param {unknown} x @param {...string} names */
export const hasMethods = (x, ...names) => typeof x === "object" && x !== null && names.every((n) => typeof (/** @type {Record<string, unknown>} */ (x))[n] === "function");

/**
 * One process's store: a Map with the TTLs honoured (an expired entry reads as absent and is
 * dropped on the next write). For tests and single-process use; it shares nothing across
 * processes or isolates.
 * @returns {TokenStore}
 */
export function memoryStore() {
  /** @type {Map<string, { v: string, exp: number }>} */
  const entries = new Map();
  /** @param {string} key */
  const live = (key) => {
    const e = entries.get(key);
    return e && e.exp > Date.now() ? e.v : undefined;
  };
  /** @param {string} key @param {string} value @param {number} ttlMs */
  const put = (key, value, ttlMs) => {
    const now = Date.now();
    for (const [k, e] of entries) if (e.exp <= now) entries.delete(k);
    entries.set(key, { v: value, exp: now + wholeMs(ttlMs) });
  };
  return {
    get: async (key) => live(key) ?? null,
    set: async (key, value, ttlMs) => put(key, value, ttlMs),
    setIfAbsent: async (key, value, ttlMs) => live(key) === undefined && (put(key, value, ttlMs), true),
    deleteIfEquals: async (key, value) => live(key) === value && entries.delete(key),
  };
}

/**
 * A store in Redis through a connected node-redis (v4 or v5) or ioredis client, told apart by
 * shape (ioredis has `defineCommand`). get → GET; set → SET PX; setIfAbsent → SET NX PX;
 * deleteIfEquals → a Lua compare-and-delete. Every key is `prefix + key`.
 * @param {RedisClientLike} client
 * @param {{ prefix?: string }} [options]
 * @returns {TokenStore}
 */
export function redisStore(client, options) {
  if (!hasMethods(client, "get", "set", "eval")) {
    throw configError("redisStore(client): expected a connected node-redis (v4 or v5) or ioredis client (an object with get, set and eval methods)");
  }
  const prefix = options?.prefix ?? "";
  if (typeof prefix !== "string") throw configError("redisStore: options.prefix must be a string");
  const ioredis = hasMethods(client, "defineCommand");
  /** @param {unknown} reply */
  const text = (reply) => (reply === null || reply === undefined ? null : String(reply));
  /** @param {string} key @param {string} value @param {number} ttlMs @param {boolean} nx */
  const write = (key, value, ttlMs, nx) => {
    const ms = wholeMs(ttlMs);
    return ioredis
      ? client.set(prefix + key, value, "PX", ms, ...(nx ? ["NX"] : []))
      : client.set(prefix + key, value, nx ? { PX: ms, NX: true } : { PX: ms });
  };
  return {
    get: async (key) => text(await client.get(prefix + key)),
    set: async (key, value, ttlMs) => void (await write(key, value, ttlMs, false)),
    setIfAbsent: async (key, value, ttlMs) => text(await write(key, value, ttlMs, true)) === "OK",
    deleteIfEquals: async (key, value) =>
      Number(
        await (ioredis
          ? client.eval(DELETE_IF_EQUALS, 1, prefix + key, value)
          : client.eval(DELETE_IF_EQUALS, { keys: [prefix + key], arguments: [value] })),
      ) === 1,
  };
}

/** How long denoKvStore retries an operation that SQLite refused with "database is locked". */
const LOCKED_RETRY_MS = 1000;

/**
 * `op()`, again after a short, growing, jittered pause while it fails with "database is locked"
 * (another process holds the KV file's write lock), for up to LOCKED_RETRY_MS; any other failure,
 * or the last one, is thrown.
 * @template T
 * @param {() => Promise<T>} op
 * @returns {Promise<T>}
 */
async function unlocked(op) {
  const start = Date.now();
  for (let pause = 2; ; pause = Math.min(pause * 2, 50)) {
    try {
      return await op();
    } catch (e) {
      const locked = /database is locked/i.test(String(/** @type {{ message?: unknown }} */ (e)?.message));
      if (!locked || Date.now() - start > LOCKED_RETRY_MS) throw e;
      await new Promise((resolve) => setTimeout(resolve, pause / 2 + Math.random() * pause));
    }
  }
}

/**
 * A store in Deno KV (`await Deno.openKv()`): key `[...prefix, key]`, value `{ v, exp }` with
 * `expireIn` (only the earliest time KV deletes it: a value past `exp` reads as absent).
 * setIfAbsent and deleteIfEquals are atomic commits checked on the versionstamp read.
 * @param {KvLike} kv
 * @param {{ prefix?: KvKey }} [options]
 * @returns {TokenStore}
 */
export function denoKvStore(kv, options) {
  if (!hasMethods(kv, "get", "set", "atomic")) {
    throw configError("denoKvStore(kv): expected a Deno.Kv (what `await Deno.openKv()` returns)");
  }
  const prefix = options?.prefix ?? [];
  if (!Array.isArray(prefix)) throw configError("denoKvStore: options.prefix must be a Deno.KvKey (an array)");
  /** @param {string} key @returns {KvKey} */
  const at = (key) => [...prefix, key];
  /** The entry under `key` and its value while it has not expired (else undefined). @param {string} key */
  const read = async (key) => {
    const entry = await unlocked(() => kv.get(at(key)));
    return { versionstamp: entry.versionstamp, v: unexpired(entry.value) };
  };
  /** @param {string} value @param {number} ttlMs */
  const stored = (value, ttlMs) => {
    const expireIn = wholeMs(ttlMs);
    return /** @type {const} */ ([expiring(value, expireIn), { expireIn }]);
  };
  return {
    get: async (key) => (await read(key)).v ?? null,
    set: async (key, value, ttlMs) => {
      const [v, o] = stored(value, ttlMs);
      await unlocked(() => kv.set(at(key), v, o));
    },
    setIfAbsent: async (key, value, ttlMs) => {
      const [v, o] = stored(value, ttlMs);
      const cur = await read(key);
      if (cur.v !== undefined) return false;
      const done = await unlocked(() => kv.atomic().check({ key: at(key), versionstamp: cur.versionstamp }).set(at(key), v, o).commit());
      return done.ok;
    },
    deleteIfEquals: async (key, value) => {
      const cur = await read(key);
      if (cur.v === undefined || cur.v !== value) return false;
      const done = await unlocked(() => kv.atomic().check({ key: at(key), versionstamp: cur.versionstamp }).delete(at(key)).commit());
      return done.ok;
    },
  };
}

/** Workers KV's least expirationTtl, in seconds. */
const KV_MIN_TTL_S = 60;

/**
 * A store in Workers KV (a namespace binding, `env.KV`) as a shared cache only: KV has no
 * compare-and-set, so no setIfAbsent (the lease) and no deleteIfEquals (the fleet core then keeps
 * single flight inside each isolate). Every key is `prefix + key`; the value is the JSON of
 * `{ v, exp }` put with `expirationTtl: max(60, ceil(ttl in s))` (KV's least TTL is 60 s), and a
 * value past `exp` reads as absent. Unreadable JSON reads as absent too.
 * @param {WorkersKvLike} namespace
 * @param {{ prefix?: string }} [options]
 * @returns {Pick<TokenStore, "get" | "set">}
 */
export function workersKvStore(namespace, options) {
  if (!hasMethods(namespace, "get", "put")) {
    throw configError("workersKvStore(namespace): expected a Workers KV namespace binding (env.KV)");
  }
  const prefix = options?.prefix ?? "";
  if (typeof prefix !== "string") throw configError("workersKvStore: options.prefix must be a string");
  return {
    get: async (key) => {
      const text = await namespace.get(prefix + key);
      try {
        return unexpired(JSON.parse(/** @type {string} */ (text))) ?? null;
      } catch {
        return null;
      }
    },
    set: async (key, value, ttlMs) => {
      const ms = wholeMs(ttlMs);
      await namespace.put(prefix + key, JSON.stringify(expiring(value, ms)), { expirationTtl: Math.max(KV_MIN_TTL_S, Math.ceil(ms / 1000)) });
    },
  };
}
