// qbank-connect: public API types. (Hand-written: only the API, none of the wasm-bindgen internals.)

/**
 * A store shared by many instances (processes, isolates) of one service, so that the whole fleet
 * makes one token request per token lifetime, and a new instance answers its first call from the
 * store (the `store` option). It holds opaque strings under string keys; the package writes the
 * token only encrypted (AES-256-GCM, a key derived from `storeKey` or the client secret) under a
 * name that reveals neither the client id nor the scope.
 *
 * Every method returns a Promise. The package calls it only from the acquisition path (never from
 * a cached `getToken()`), wraps every call in the store timeout (`storeTimeoutMs`), and treats a
 * throw, a rejection or a timeout as "store unavailable" (never an error for the caller).
 *
 * Without `setIfAbsent` the store is a shared cache: single flight only inside each instance.
 */
export interface TokenStore {
  /** The value under `key`, or null/undefined when there is none or it has expired. */
  get(key: string): Promise<string | null | undefined>;
  /** Stores `value` under `key`, replacing any, for `ttlMs` (it may be dropped earlier, never
   *  served later than that). */
  set(key: string, value: string, ttlMs: number): Promise<void>;
  /** Optional: the lease. Stores `value` under `key` for `ttlMs` only if `key` holds nothing
   *  (or only an expired value); resolves true if it stored it. Atomic across the fleet. */
  setIfAbsent?(key: string, value: string, ttlMs: number): Promise<boolean>;
  /** Optional: compare-and-delete. Deletes `key` only if it holds exactly `value`; resolves
   *  true if it deleted it. Atomic across the fleet. */
  deleteIfEquals?(key: string, value: string): Promise<boolean>;
}

/** A provider event. Events never carry a secret, a token, the storeKey or a store entry's name. */
export interface TokenEvent {
  type:
    | "token_requested"
    | "token_acquired"
    | "token_refresh_failed"
    | "token_invalidated"
    | "closed"
    /** This instance took the store's lease and will ask the token endpoint. */
    | "lease_taken"
    /** Another instance holds the lease: waiting for its token in the store. */
    | "lease_busy"
    /** This instance's lease ran out before its token arrived (another may have asked too). */
    | "lease_lost"
    /** Waited two lease TTLs for another instance's token: asking the token endpoint itself. */
    | "lease_wait_over"
    /** The store failed or did not answer in storeTimeoutMs: this acquisition goes on without it. */
    | "store_failed"
    /** An entry read from the store was not used (it counts as missing). */
    | "store_entry_refused"
    /** The entry holding a token the API refused (401) is being deleted (compare-and-delete). */
    | "store_entry_deleted";
  /** Epoch milliseconds when it happened. */
  at: number;
  /** For token_acquired: when the new token expires (epoch ms). */
  expiresAt?: number;
  /**
   * For token_acquired: where the token came from: the token endpoint (this manager's own
   * request), the store (another instance fetched it), or the coordinator (a TokenCoordinator
   * Durable Object, through durableObjectStore).
   */
  source?: "store" | "endpoint" | "coordinator";
  /** For failures: the error code. */
  code?: string;
  /** Token requests this manager sent to the token endpoint so far. */
  tokenRequests: number;
  /** For token_requested and token_refresh_failed: whether no caller was waiting (a refresh ahead). */
  background?: boolean;
  /** For token_refresh_failed: how long the server asked us to wait. */
  retryAfterMs?: number;
  /** For store_failed: which store operation (write: a write, a lease release or a delete). */
  step?: "read" | "lease" | "write";
  /** For store_failed: it threw or rejected ("error"), or did not answer in time ("timeout"). */
  failure?: "error" | "timeout";
  /** For store_entry_refused: it could not be decrypted or parsed (another key, tampered, another
   *  format), or it did not make sense. */
  reason?: "unreadable" | "malformed";
}

/** Options of a TokenManager. Unknown option names are refused (typos never pass silently). */
export interface TokenManagerOptions {
  /**
   * The token endpoint: https only (plain http only to loopback with allowInsecureHttp), no
   * user-info or fragment. A query is kept exactly as written (RFC 6749 §3.2), but may not name a
   * parameter the manager sends (client_secret, client_id, grant_type, scope, username, password).
   */
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  /** Scopes to request: an array, or one space-separated string. */
  scope?: string[] | string;
  /** How the client authenticates: in the POST body (default) or an HTTP Basic header. */
  authMethod?: "client_secret_post" | "client_secret_basic";
  /** Extra form parameters such as `audience` or `resource` (RFC 8707). */
  extraParams?: Record<string, string>;
  /** Background refresh starts this long before expiry (capped at a quarter of the lifetime). Default 300. */
  refreshAheadSeconds?: number;
  /** Callers wait for a new token from this long before expiry (capped at a tenth of the lifetime). Default 30. */
  expiryMarginSeconds?: number;
  /** Token lifetime when the server sends neither expires_in nor a JWT exp. Default 3600. */
  defaultLifetimeSeconds?: number;
  /** Timeout of one token request, in ms. Default 10000. */
  timeoutMs?: number;
  /**
   * A fetch to send every request with. Without it: the global fetch in Deno, Bun and Workers,
   * and in Node `node:http`/`node:https` with a keep-alive agent (the package's node entry).
   */
  fetch?: typeof fetch;
  /** `ctx.waitUntil` on Workers, so a background refresh outlives the request that started it. */
  waitUntil?: (promise: Promise<unknown>) => void;
  /** Refresh ahead of expiry with a timer where the runtime lives long (Node, Deno, Bun). Default true. */
  autoRefresh?: boolean;
  /** Allow plain http, only to a loopback host (for local sandboxes and tests). Default false. */
  allowInsecureHttp?: boolean;
  /** Allow running with a secret in a browser. Never do this in production. Default false. */
  dangerouslyAllowBrowser?: boolean;
  /** Lifecycle events; never carry secrets or tokens. */
  onEvent?: (event: TokenEvent) => void;
  /**
   * A store shared by the instances of a fleet (see TokenStore): one token request per token
   * lifetime for the whole fleet. The in-memory token comes first; the store is read only when
   * it is missing or due for refresh.
   */
  store?: TokenStore;
  /**
   * The key material of the store's encryption and entry names (at least 32 characters; kept
   * secret like the client secret). Default: the client secret (a rotated secret is then a miss).
   * Only with `store`.
   */
  storeKey?: string;
  /** The longest one store call may take before it counts as failed, in ms (1 to 60000). Default 1000. */
  storeTimeoutMs?: number;
  /** How long the store's lease lasts unless released, in ms (1000 to 120000): the longest a lease
   *  holder that died delays the others. Default 10000. */
  leaseTtlMs?: number;
}

/** A Bearer access token. */
export interface AccessToken {
  accessToken: string;
  tokenType: "Bearer";
  /** Epoch milliseconds. */
  expiresAt: number;
  /** The granted scope (may differ from the requested one). */
  scope: string[];
}

export interface GetTokenOptions {
  /** Aborting detaches only this caller; a shared token request goes on for the others. */
  signal?: AbortSignal;
  /** Get a new token even if the cached one is still valid. */
  forceRefresh?: boolean;
  /** Per-call `ctx.waitUntil` (Workers), keeping a shared token request alive past this request. */
  waitUntil?: (promise: Promise<unknown>) => void;
}

export interface TokenStatus {
  /** "closed" after close(). */
  state: "empty" | "valid" | "refreshing" | "expired" | "closed";
  /** When the cached token expires (epoch ms). */
  expiresAt?: number;
  /** Token requests this manager sent to the token endpoint so far. */
  tokenRequests: number;
  /** Failed token requests since the last success (a token already inside its expiry margin when it arrived counts as one). */
  consecutiveFailures: number;
  /** While backing off after failures: when the next token request is allowed (epoch ms). */
  retryAt?: number;
  /**
   * When the next background refresh is due (epoch ms): the token's refresh point, or the retry
   * time while backing off. Absent when none is scheduled: no token, a request in flight, the
   * token expires first, or after `invalid_client` (never retried in the background).
   */
  refreshAt?: number;
  /** Where the token in memory came from: the token endpoint, the store (another instance's), or the coordinator. */
  tokenSource?: "store" | "endpoint" | "coordinator";
  /** With a store: tokens taken from it. */
  storeTokens?: number;
  /** With a store: reads of it. */
  storeReads?: number;
  /** With a store: its failures and timeouts (each one a store_failed event). */
  storeFailures?: number;
  /** With a store: leases this manager took. */
  leasesTaken?: number;
}

/** Holds one client's OAuth 2.0 client-credentials token, refreshing it before expiry. */
export declare class TokenManager {
  constructor(options: TokenManagerOptions);
  getToken(options?: GetTokenOptions): Promise<AccessToken>;
  /** Forget this token (e.g. after the API answered 401); a newer token is kept. */
  invalidate(accessToken?: string): boolean;
  readonly status: TokenStatus;
  /**
   * Cancel timers; later calls, and callers still waiting for a token, reject with code "closed".
   * With a `store`, the returned Promise resolves once the store operations this manager already
   * started have settled (the write of a new token, the lease's release; each bounded by
   * `storeTimeoutMs`; a lease it holds is released at once): await it before the process exits
   * (a CLI, a SIGTERM handler, a serverless function), or the next instance may find no token and
   * a lease held for `leaseTtlMs`. It never rejects, and resolves at once without a store.
   */
  close(): Promise<void>;
  toJSON(): object;
  toString(): string;
}

/** The stable error codes. */
export type QBankErrorCode =
  | "invalid_request"
  | "invalid_client"
  | "invalid_grant"
  | "unauthorized_client"
  | "unsupported_grant_type"
  | "invalid_scope"
  | "token_endpoint_error"
  | "rate_limited"
  | "timeout"
  | "network"
  | "invalid_response"
  | "config"
  | "closed"
  | "aborted"
  | "invalid_argument"
  | "unauthorized"
  | "insufficient_scope"
  | "forbidden"
  | "not_found"
  | "server_error"
  | "api_error"
  | "secret_consumed";

/** Every failure from qbank-connect. Never contains a secret or a token. */
export declare class QBankError extends Error {
  readonly name: "QBankError";
  readonly code: QBankErrorCode;
  /** The HTTP status, where there was an answer. */
  readonly status?: number;
  /** RFC 6749 §5.2 `error`. */
  readonly oauthError?: string;
  /** RFC 6749 §5.2 `error_description`. */
  readonly oauthErrorDescription?: string;
  /** How long the server asked us to wait. */
  readonly retryAfterMs?: number;
  /** Whether the request may have reached the server (and may have had an effect). */
  readonly mayHaveReachedServer: boolean;
  /** For insufficient_scope: the scope the bank asked for. */
  readonly requiredScope?: string;
  /** The API's error body (RFC 7807 problem details when it is one). */
  readonly problem?: unknown;
  toJSON(): object;
}

/** Where the QBank Connect API lives. */
export type QBankEnvironment = "production" | { tokenUrl: string; apiBaseUrl: string };

export interface QBankClientOptions extends Omit<TokenManagerOptions, "tokenUrl" | "scope"> {
  environment?: QBankEnvironment;
  /** Default ["balances.read"]. */
  scope?: string[] | string;
}

/** A balance with exact amounts (decimal strings with exactly the digits the bank sent). */
export interface Balance {
  accountId: string;
  availableBalance: string;
  ledgerBalance: string;
  currency?: string;
  /** As the bank sent it: one document says balances are as of the previous business day, another real-time. */
  asOf?: string;
  /** Every field the bank sent; every JSON number is given as a string of exactly the digits sent. */
  raw: Record<string, unknown>;
}

export interface RequestOptions {
  signal?: AbortSignal;
  waitUntil?: (promise: Promise<unknown>) => void;
}

/** The QBank Connect API, authorized by a TokenManager. */
export declare class QBankClient {
  constructor(options: QBankClientOptions);
  getBalance(accountId: string, options?: RequestOptions): Promise<Balance>;
  /** An authorized fetch to the configured API origin only. */
  fetch(path: string, init?: RequestInit & { waitUntil?: (p: Promise<unknown>) => void }): Promise<Response>;
  readonly tokens: TokenManager;
  /** Closes its TokenManager: the same as `tokens.close()` (await it before the process exits). */
  close(): Promise<void>;
  toJSON(): object;
  toString(): string;
}

/** Options of qpayTokenUrl and the place part of QPayCredentials.signIn. */
export interface QPayPlace {
  /** Default "https://sandbox.qpay.quecto.com.br". */
  baseUrl?: string;
  /** The Keycloak realm: one path segment (no "/", not "." or ".."). Default "qpay". */
  realm?: string;
  /** Allow plain http, only to a loopback host. */
  allowInsecureHttp?: boolean;
}

/** `{baseUrl}/auth/realms/{realm}/protocol/openid-connect/token`: pass it as a TokenManager's tokenUrl. */
export declare function qpayTokenUrl(options?: QPayPlace): string;

export interface QPaySignInOptions extends QPayPlace {
  username: string;
  /** Used for this one token request, never stored, redacted everywhere. */
  password: string;
  /** The public console client. Default "qpay-console". */
  clientId?: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
  dangerouslyAllowBrowser?: boolean;
}

/** A secret shown once: QPay returns a new client's secret only at creation. */
export declare class OneTimeSecret {
  private constructor();
  /** The value, the first time; later calls throw QBankError "secret_consumed". */
  reveal(): string;
  readonly revealed: boolean;
  toJSON(): string;
  toString(): string;
}

export interface QPayWhoAmI {
  tenantType: "processor" | "issuer" | "embosser" | (string & {});
  tenantId: string;
  parentTenantId?: string;
}

export interface QPayCreatedClient {
  id: string;
  clientId: string;
  clientSecret: OneTimeSecret;
  tenantId: string;
}

/** A client record as QPay returns it (keys camelCased); never its secret. */
export interface QPayClientRecord {
  id?: string;
  clientId?: string;
  tenantId?: string;
  name?: string;
  roles?: string[];
  [field: string]: unknown;
}

/** One client of listClients(): typed, never its secret (one in QPay's answer is dropped). */
export interface QPayClientSummary {
  /** The record id (for getClient, updateClientRoles, deleteClient). */
  id: string;
  clientId: string;
  tenantId?: string;
  name?: string;
  roles?: string[];
}

/** The QPay Credentials API, authorized by a user's 5-minute token. */
export declare class QPayCredentials {
  private constructor();
  /** Password grant with the public client qpay-console; the password is not kept. */
  static signIn(options: QPaySignInOptions): Promise<QPayCredentials>;
  whoami(): Promise<QPayWhoAmI>;
  roles(): Promise<string[]>;
  createClient(spec: { tenantId: string; name: string; roles: string[] }): Promise<QPayCreatedClient>;
  /** GET /credentials/clients: your tenant's clients. */
  listClients(): Promise<QPayClientSummary[]>;
  getClient(id: string): Promise<QPayClientRecord>;
  updateClientRoles(id: string, roles: string[]): Promise<QPayClientRecord>;
  deleteClient(id: string): Promise<void>;
  /** When the user token stops being used (epoch ms, 10 % before its expiry). */
  readonly expiresAt: number;
  toJSON(): object;
  toString(): string;
}

/** The package version. */
export declare function version(): string;

/** A TokenStore of the shipped adapters: each has the lease and the compare-and-delete. */
export type AtomicTokenStore = Required<TokenStore>;

/**
 * A store in this process only (a Map; TTLs honoured): for tests and single-process use. It
 * shares nothing across processes or isolates.
 */
export declare function memoryStore(): AtomicTokenStore;

/** What redisStore calls on a node-redis (v4, v5) or ioredis client. */
export interface RedisClientLike {
  get: (...args: any[]) => Promise<unknown>;
  set: (...args: any[]) => Promise<unknown>;
  eval: (...args: any[]) => Promise<unknown>;
}

/**
 * A store in Redis through a connected node-redis (v4 or v5) or ioredis client (told apart by
 * shape): GET; SET PX; the lease SET NX PX; compare-and-delete as one Lua script. Every key is
 * `prefix + key`. Throws a `config` QBankError when `client` is not such a client.
 *
 * Not in the Cloudflare Workers entry (workerd.js): node-redis and ioredis need TCP sockets,
 * which Workers do not give them, so importing `redisStore` in a Worker fails when the Worker
 * is bundled. Node, Deno and Bun have it.
 */
export declare function redisStore(client: RedisClientLike, options?: { prefix?: string }): AtomicTokenStore;

/** A Deno.KvKey. */
export type DenoKvKey = readonly (string | number | bigint | boolean | Uint8Array)[];

/** What denoKvStore uses of a Deno.Kv (`await Deno.openKv()`). */
export interface DenoKvLike {
  get(key: DenoKvKey): Promise<{ value: unknown; versionstamp: string | null }>;
  set(key: DenoKvKey, value: unknown, options?: { expireIn?: number }): Promise<unknown>;
  atomic(): DenoKvAtomicLike;
}

/** What denoKvStore uses of a Deno.AtomicOperation. */
export interface DenoKvAtomicLike {
  check(...checks: { key: DenoKvKey; versionstamp: string | null }[]): DenoKvAtomicLike;
  set(key: DenoKvKey, value: unknown, options?: { expireIn?: number }): DenoKvAtomicLike;
  delete(key: DenoKvKey): DenoKvAtomicLike;
  commit(): Promise<{ ok: boolean }>;
}

/**
 * A store in Deno KV: key `[...prefix, key]`, value `{ v, exp }` with `expireIn` (a value past
 * `exp` reads as absent: `expireIn` is only the earliest time KV deletes it). The lease and the
 * compare-and-delete are atomic commits checked on the versionstamp read; "database is locked"
 * is retried briefly. Throws a `config` QBankError when `kv` is not a Deno.Kv.
 *
 * Not in the Cloudflare Workers entry (workerd.js): Workers have no `Deno.openKv`, so importing
 * `denoKvStore` in a Worker fails when the Worker is bundled.
 */
export declare function denoKvStore(kv: DenoKvLike, options?: { prefix?: DenoKvKey }): AtomicTokenStore;

/** What workersKvStore uses of a Workers KV namespace binding (`env.KV`, a KVNamespace). */
export interface WorkersKvNamespaceLike {
  get(key: string): Promise<string | null>;
  put(key: string, value: string, options: { expirationTtl: number }): Promise<unknown>;
}

/**
 * A store in Workers KV (a namespace binding, `env.KV`) as a **shared cache only**: KV has no
 * compare-and-set, so this store has neither the lease (`setIfAbsent`) nor compare-and-delete
 * (`deleteIfEquals`). Single flight then holds inside each isolate, not across them: isolates
 * that miss at the same moment may each make a token request; later ones read the token from KV.
 * Every key is `prefix + key`. Throws a `config` QBankError when `namespace` is not a binding.
 *
 * Limits of Workers KV:
 * - a write takes up to about 60 s to be seen in other locations (until then they miss, and
 *   fetch a token of their own);
 * - one write per second per key;
 * - the least `expirationTtl` is 60 s: the value's real expiry is kept in it (`{ v, exp }`, put
 *   with `expirationTtl: max(60, ceil(ttl in s))`) and a value past it reads as absent.
 */
export declare function workersKvStore(namespace: WorkersKvNamespaceLike, options?: { prefix?: string }): Pick<TokenStore, "get" | "set">;

/** What durableObjectStore uses of a Durable Object namespace binding (`env.QBANK_TOKENS`). */
export interface DurableObjectNamespaceLike {
  idFromName(name: string): unknown;
  get(id: any): unknown;
}

/**
 * Cloudflare Workers only (workerd.js). The store that makes every isolate of a Worker share one
 * token through a {@link TokenCoordinator} Durable Object: pass it as `store` to TokenManager or
 * QBankClient. Each isolate keeps its token in memory as always (a cached getToken() never leaves
 * the isolate); a missing token, or one past its refresh point, is asked of the object, which
 * makes the token requests (one at a time, refreshed ahead by its alarm) and keeps the token
 * encrypted in its storage. There is one object per credential set, named after the store entry
 * (an HMAC keyed from the secret or storeKey: never the client id). If the object throws, cannot
 * be reached, has no token, or does not answer within storeTimeoutMs (default with a coordinator:
 * timeoutMs + 1 s), the isolate makes its own token request: nobody fails because of it.
 * The manager's resolved options, secret included, are sent to the object with each such call
 * (kept in its memory only, never stored or logged); a `fetch` option is not (the object uses
 * the platform's fetch). Throws a `config` QBankError when `namespace` is not a binding.
 * Needs a compatibility_date of 2024-04-03 or later (Workers RPC).
 */
export declare function durableObjectStore(namespace: DurableObjectNamespaceLike): Pick<TokenStore, "get" | "set">;

/**
 * Cloudflare Workers only (workerd.js). The Durable Object class behind
 * {@link durableObjectStore}: re-export it from your Worker
 * (`export { TokenCoordinator } from "qbank-connect"`) and bind it in wrangler.toml:
 *
 * ```toml
 * [[durable_objects.bindings]]
 * name = "QBANK_TOKENS"
 * class_name = "TokenCoordinator"
 *
 * [[migrations]]
 * tag = "qbank-connect-v1"
 * new_sqlite_classes = ["TokenCoordinator"]
 * ```
 */
export declare class TokenCoordinator {
  constructor(ctx: unknown, env: unknown);
  /** Isolates' calls (Workers RPC; the package makes them): the encrypted entry, or null. */
  token(request: { v: 1; name: string; have: string | null; options: object }): Promise<string | null>;
  /** The 401 path: forgets the token if the entry still is `raw`. */
  forget(name: string, raw: string): Promise<void>;
  /** For operators and tests: no token, no secret, no entry name. */
  status(): Promise<TokenCoordinatorStatus>;
  /** The refresh ahead of every isolate's refresh point. */
  alarm(): Promise<void>;
}

export interface TokenCoordinatorStatus {
  /** 1 once a call brought the options (an object evicted since has none until the next call). */
  managers: number;
  state: TokenStatus["state"];
  /** Token requests this object made since it was (re)started. */
  tokenRequests: number;
  consecutiveFailures: number;
  expiresAt: number | null;
  refreshAt: number | null;
  /** When the alarm is set (epoch ms), if it is. */
  alarmAt: number | null;
  /** Alarms run since it was (re)started. */
  alarms: number;
}
