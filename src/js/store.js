// The store driver: the JavaScript half of the fleet (src/oauth/fleet.rs). It performs the store
// actions the core decides on, against the caller's `store` object (index.d.ts's TokenStore),
// with the token encrypted at rest (README, "Many instances"). Decisions stay in Rust.
//
// - Keys: HKDF-SHA-256 (WebCrypto) from the storeKey option, or else the client secret, gives an
//   HMAC key for the entry's name and an AES-256-GCM key for its value; both non-extractable.
// - Entry name: "qbank-connect:v1:" + hex(HMAC(nameKey, identity)), identity being the core's
//   CacheIdentity bytes: it reveals neither the client id, the scope nor the URL.
// - Value: base64url(0x01 || iv(12) || AES-GCM(JSON {t, s, i, e, n})), the entry name as AAD.
// - Every call is raced against the store timeout and never rejects: the answers are plain
//   values the wasm reads (a read entry, or one of the codes below). A store that throws,
//   rejects, hangs or answers something of the wrong type counts as unavailable, never as an
//   error for the caller.
// - Owners and stamps (u64 in the core) come as two 32-bit halves and are written as 16
//   lowercase hex digits.
//
// A coordinator (`durableObjectStore`, a TokenCoordinator Durable Object: coordinator.js) is read
// differently: the read sends the object the manager's resolved options and the value this
// manager last read (`have`), and the object answers with the same encrypted value, made by its
// own manager's store driver over its storage (so the isolate decrypts it as any entry). Writes
// are not sent (the object makes its own tokens); the 401 compare-and-delete is its `forget`,
// and a read waits for the forgets before it. Its lease is always ACQUIRED: the object is the
// fleet's single flight, and the core then reads once more before asking the endpoint itself,
// so after a 401 that second read gets the object's new token (one token request for every
// isolate), and when the object has none or only the token in memory, the isolate asks itself.
//
// Type-checked by `tsc -p tsconfig.checkjs.json` (make lint), like support.js.

/**
 * index.d.ts's TokenStore, as this file reads it (any object whose get and set are functions:
 * the wasm checked that much).
 * @typedef {object} TokenStore
 * @property {(key: string) => unknown} get
 * @property {(key: string, value: string, ttlMs: number) => unknown} set
 * @property {((key: string, value: string, ttlMs: number) => unknown) | undefined} [setIfAbsent]
 * @property {((key: string, value: string) => unknown) | undefined} [deleteIfEquals]
 * @property {Namespace} [coordinator] a durableObjectStore's namespace (under COORDINATOR)
 *
 * @typedef {object} Namespace a Durable Object namespace binding, as far as it is used here
 * @property {(name: string) => unknown} idFromName
 * @property {(id: unknown) => Coordinator} get
 *
 * @typedef {object} Coordinator a TokenCoordinator's stub (Workers RPC)
 * @property {(request: { v: 1, name: string, have: string | null, options: object }) => Promise<unknown>} token
 * @property {(name: string, raw: string) => Promise<unknown>} forget
 *
 * @typedef {object} Keys what the key material became (the material itself is not kept)
 * @property {string} name the entry's name
 * @property {CryptoKey} aes
 * @property {Bytes} aad the entry's name, UTF-8
 *
 * @typedef {object} Handle one manager's store: openStore's answer, opaque to the wasm
 * @property {TokenStore} store
 * @property {Namespace | undefined} ns a coordinator's namespace (durableObjectStore), else undefined
 * @property {number} timeoutMs
 * @property {Promise<Keys>} keys
 * @property {{ raw: string, stamp: string } | undefined} last the value last read that decrypted, and its stamp
 * @property {Promise<unknown>} tail the writes, releases and deletes, in order
 *
 * @typedef {object} Entry a decrypted entry (the core checks that it makes sense)
 * @property {string} t the token
 * @property {string[] | null} s the scope the server granted
 * @property {number} i issued at, epoch ms
 * @property {number} e expires at, epoch ms
 * @property {string} n the stamp, 16 lowercase hex digits
 *
 * @typedef {[token: string, scope: string[] | null, issuedAt: number, expiresAt: number, stampHi: number, stampLo: number]} Read
 *   a read entry, as the wasm takes it
 * @typedef {typeof ERROR | typeof TIMEOUT} Failed
 * @typedef {Uint8Array<ArrayBuffer>} Bytes what WebCrypto takes (never a shared buffer)
 */

// The answer codes (token_manager.rs reads the same numbers).
const OK = 0; // done; for a read: no entry
const GARBAGE = 1; // a read: an entry that does not decrypt or parse
const ERROR = 2; // the store threw, rejected, or answered something of the wrong type
const TIMEOUT = 3; // no answer within the store timeout
const ACQUIRED = 4; // the lease is ours
const HELD = 5; // another owner holds the lease
const UNSUPPORTED = 6; // the store has no setIfAbsent

const PREFIX = "qbank-connect:v1:";
/** Where durableObjectStore (adapters.js) keeps its namespace: a coordinator, not a plain store. */
export const COORDINATOR = Symbol("qbank-connect coordinator");
const VERSION = 1;
const IV_BYTES = 12;
const STAMP = /^[0-9a-f]{16}$/;
const B64URL = /^[A-Za-z0-9_-]*$/;
const utf8 = new TextEncoder();

/**
 * The driver for `store`: starts deriving the keys at once (the first read waits for them).
 * @param {TokenStore} store
 * @param {string} keyMaterial the storeKey option, or else the client secret (not kept)
 * @param {Uint8Array} identity the core's CacheIdentity encoding
 * @param {number} timeoutMs
 * @returns {Handle}
 */
export function openStore(store, keyMaterial, identity, timeoutMs) {
  const keys = deriveKeys(utf8.encode(keyMaterial), new Uint8Array(identity));
  // Nobody may await it before the first store call: a failure is reported there.
  keys.catch(() => {});
  const ns = isCoordinator(store) ? /** @type {any} */ (store)[COORDINATOR] : undefined;
  return { store, ns, timeoutMs, keys, last: undefined, tail: Promise.resolve() };
}

/**
 * @param {Bytes} ikm zeroed once imported
 * @param {Bytes} identity
 * @returns {Promise<Keys>}
 */
async function deriveKeys(ikm, identity) {
  const subtle = globalThis.crypto.subtle;
  let base;
  try {
    base = await subtle.importKey("raw", ikm, "HKDF", false, ["deriveKey"]);
  } finally {
    ikm.fill(0);
  }
  const salt = utf8.encode("qbank-connect token store v1");
  /** @param {string} info */
  const hkdf = (info) => ({ name: "HKDF", hash: "SHA-256", salt, info: utf8.encode(info) });
  const nameKey = await subtle.deriveKey(hkdf("entry name"), base, { name: "HMAC", hash: "SHA-256", length: 256 }, false, ["sign"]);
  const aes = await subtle.deriveKey(hkdf("entry key"), base, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
  const name = PREFIX + hex(new Uint8Array(await subtle.sign("HMAC", nameKey, identity)));
  return { name, aes, aad: utf8.encode(name) };
}

/**
 * Whether `store` is a coordinator (durableObjectStore).
 * @param {unknown} store
 */
export function isCoordinator(store) {
  return typeof store === "object" && store !== null && COORDINATOR in store;
}

/**
 * The coordinator object for the entry `name`: one object per credential set, named after the
 * entry (never the client id).
 * @param {Namespace} ns
 * @param {string} name
 */
function coordinator(ns, name) {
  return ns.get(ns.idFromName(name));
}

/**
 * `work` raced against the store timeout: its value, ERROR if it threw or rejected, TIMEOUT if
 * it did not settle in time. Never rejects.
 * @template T
 * @param {Handle} h
 * @param {() => Promise<T | Failed>} work
 * @returns {Promise<T | Failed>}
 */
function bounded(h, work) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(TIMEOUT), h.timeoutMs);
    /** @param {T | Failed} v */
    const done = (v) => {
      clearTimeout(timer);
      resolve(v);
    };
    // `work` is async: what it throws comes back as a rejection.
    work().then(done, () => done(ERROR));
  });
}

/**
 * Reads the entry: the decrypted entry, OK when there is none, GARBAGE when it cannot be
 * decrypted or parsed, or a failure. Remembers the raw value of an entry that decrypted, for
 * `storeDelete`. A coordinator is asked for it with `options` (the manager's, resolved).
 * @param {Handle} h
 * @param {object | undefined} options
 * @returns {Promise<Read | typeof OK | typeof GARBAGE | Failed>}
 */
export function storeRead(h, options) {
  return bounded(h, async () => {
    const keys = await h.keys;
    const name = keys.name;
    let raw;
    if (h.ns) {
      await h.tail;
      // The wasm gives options exactly when the store is a coordinator (the same isCoordinator).
      const request = { v: /** @type {1} */ (1), name, have: h.last ? h.last.raw : null, options: /** @type {object} */ (options) };
      raw = await coordinator(h.ns, name).token(request);
    } else raw = await h.store.get(name);
    if (raw === null || raw === undefined) return OK;
    if (typeof raw !== "string") return ERROR;
    const e = await decrypt(keys, raw);
    if (e === undefined) return GARBAGE;
    h.last = { raw, stamp: e.n };
    return /** @type {Read} */ ([e.t, e.s, e.i, e.e, parseInt(e.n.slice(0, 8), 16), parseInt(e.n.slice(8), 16)]);
  });
}

/**
 * Tries the lease: ACQUIRED, HELD, UNSUPPORTED (no setIfAbsent) or a failure.
 * @param {Handle} h
 * @param {number} ownerHi
 * @param {number} ownerLo
 * @param {number} ttlMs
 * @returns {Promise<number>}
 */
export function storeLease(h, ownerHi, ownerLo, ttlMs) {
  const store = h.store;
  if (h.ns) return Promise.resolve(ACQUIRED);
  if (typeof store.setIfAbsent !== "function") return Promise.resolve(UNSUPPORTED);
  const setIfAbsent = store.setIfAbsent;
  return bounded(h, async () => {
    const keys = await h.keys;
    const taken = await setIfAbsent.call(store, keys.name + ":lease", hex16(ownerHi, ownerLo), ttlMs);
    return taken === true ? ACQUIRED : taken === false ? HELD : ERROR;
  });
}

/**
 * Encrypts and writes an entry, for as long as the token lives (at least 1 ms): OK, or a
 * failure. In order after the writes, releases and deletes before it.
 * @param {Handle} h
 * @param {string} token
 * @param {string[] | null} scope
 * @param {number} issuedAt
 * @param {number} expiresAt
 * @param {number} stampHi
 * @param {number} stampLo
 */
export function storeWrite(h, token, scope, issuedAt, expiresAt, stampHi, stampLo) {
  return inOrder(h, async (keys) => {
    // A coordinator makes its own tokens: this manager's (a fallback's) stay in its memory.
    if (h.ns) return;
    /** @type {Entry} */
    const entry = { t: token, s: scope, i: issuedAt, e: expiresAt, n: hex16(stampHi, stampLo) };
    const value = await encrypt(keys, JSON.stringify(entry));
    await h.store.set(keys.name, value, Math.max(1, Math.floor(expiresAt - Date.now())));
  });
}

/**
 * Releases the lease if this owner holds it (compare-and-delete; without deleteIfEquals it runs
 * out by itself): OK, or a failure.
 * @param {Handle} h
 * @param {number} ownerHi
 * @param {number} ownerLo
 */
export function storeRelease(h, ownerHi, ownerLo) {
  return inOrder(h, (keys) => deleteIfEquals(h.store, keys.name + ":lease", hex16(ownerHi, ownerLo)));
}

/**
 * Deletes the entry if it still is the one last read with this stamp (compare-and-delete on its
 * exact value; without deleteIfEquals nothing is deleted): OK, or a failure.
 * @param {Handle} h
 * @param {number} stampHi
 * @param {number} stampLo
 */
export function storeDelete(h, stampHi, stampLo) {
  return inOrder(h, async (keys) => {
    const last = h.last;
    if (!last || last.stamp !== hex16(stampHi, stampLo)) return;
    if (h.ns) await coordinator(h.ns, keys.name).forget(keys.name, last.raw);
    else await deleteIfEquals(h.store, keys.name, last.raw);
  });
}

/**
 * @param {TokenStore} store
 * @param {string} key
 * @param {string} value
 */
async function deleteIfEquals(store, key, value) {
  if (typeof store.deleteIfEquals === "function") await store.deleteIfEquals(key, value);
}

/**
 * `work` with the keys, bounded, after the writes before it have settled: OK, or a failure.
 * @param {Handle} h
 * @param {(keys: Keys) => Promise<void>} work
 * @returns {Promise<typeof OK | Failed>}
 */
function inOrder(h, work) {
  const run = h.tail.then(() => bounded(h, async () => (await work(await h.keys), OK)));
  h.tail = run;
  return run;
}

/**
 * @param {Keys} keys
 * @param {string} plaintext
 */
async function encrypt(keys, plaintext) {
  const iv = globalThis.crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const sealed = new Uint8Array(await globalThis.crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: keys.aad }, keys.aes, utf8.encode(plaintext)));
  const out = new Uint8Array(1 + IV_BYTES + sealed.length);
  out[0] = VERSION;
  out.set(iv, 1);
  out.set(sealed, 1 + IV_BYTES);
  return b64url(out);
}

/**
 * The entry in `raw`, or undefined when it is not one of ours under this key and name.
 * @param {Keys} keys
 * @param {string} raw
 * @returns {Promise<Entry | undefined>}
 */
async function decrypt(keys, raw) {
  const bytes = unb64url(raw);
  if (!bytes || bytes.length < 1 + IV_BYTES + 16 || bytes[0] !== VERSION) return undefined;
  let plain;
  try {
    const iv = bytes.subarray(1, 1 + IV_BYTES);
    plain = await globalThis.crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: keys.aad }, keys.aes, bytes.subarray(1 + IV_BYTES));
  } catch {
    return undefined;
  }
  /** @type {unknown} */
  let v;
  try {
    v = JSON.parse(new TextDecoder().decode(plain));
  } catch {
    return undefined;
  }
  return isEntry(v) ? v : undefined;
}

/**
 * @param {unknown} v
 * @returns {v is Entry}
 */
function isEntry(v) {
  if (typeof v !== "object" || v === null) return false;
  const o = /** @type {Record<string, unknown>} */ (v);
  const time = (/** @type {unknown} */ x) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
  const scope = o.s === null || (Array.isArray(o.s) && o.s.every((x) => typeof x === "string"));
  return typeof o.t === "string" && scope && time(o.i) && time(o.e) && typeof o.n === "string" && STAMP.test(o.n);
}

/**
 * 16 lowercase hex digits.
 * @param {number} hi
 * @param {number} lo
 */
function hex16(hi, lo) {
  return hi.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0");
}

/** @param {Uint8Array} bytes */
function hex(bytes) {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** @param {Uint8Array} bytes */
function b64url(bytes) {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * @param {string} text
 * @returns {Bytes | undefined}
 */
function unb64url(text) {
  if (!B64URL.test(text) || text.length % 4 === 1) return undefined;
  let bin;
  try {
    bin = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  } catch {
    return undefined;
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
