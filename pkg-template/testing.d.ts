// qbank-connect/testing: the local QBank Connect sandbox and the local QPay, for your own tests.
// (Hand-written: the options, answers and control calls of src/testing/, see its README.)
//
// Node, Deno and Bun only: the servers listen with node:http on a loopback port. The entry is
// not in the Workers build ("qbank-connect/testing" does not resolve under the workerd, worker,
// edge-light or browser conditions, so a Worker that imports it fails when it is bundled).
//
// Every server listens on 127.0.0.1 (by default) on a free port, speaks plain http (pass
// `allowInsecureHttp: true` to the package's clients: plain http is allowed to loopback only),
// and must be closed with `close()` when the test ends.

/** Which requests a fault applies to: the token endpoint, the API, or any request. */
export type FaultTarget = "token" | "api" | "any";

/**
 * What the next `count` requests to `target` get instead of (or on top of) the server's own
 * answer. With `status` or `body` the fault answers in the request's place; with only `headers`
 * or `delayMs` the server answers as usual, later or with the headers added.
 */
export interface Fault {
  /** Default "any". */
  target?: FaultTarget;
  /** How many requests it applies to (a positive integer). Default 1. */
  count?: number;
  /** The HTTP status to answer with (100 to 599), e.g. 503. Default 200 when `body` is given. */
  status?: number;
  /** Headers added to the answer, e.g. `{ "Retry-After": "2" }`. */
  headers?: Record<string, string | number>;
  /** The raw body text (served as application/json when it parses as JSON, else text/plain). */
  body?: string;
  /** Wait this long before answering (0 to 600000 ms): a slow server, for timeout tests. */
  delayMs?: number;
  /** Never answer (the request waits until the client gives up or the server is closed). */
  hang?: boolean;
  /** Send the headers and half the body, then cut the connection. */
  reset?: boolean;
}

/** A QBank sandbox fault: also a body sent one byte at a time, or a redirect. */
export interface SandboxFault extends Fault {
  /** Send the body one byte at a time: `true` (every 20 ms) or the milliseconds between bytes. */
  trickle?: boolean | number;
  /** With `trickle: true`: the milliseconds between bytes. */
  trickleMs?: number;
  /** Answer with a redirect (`status`, default 302) to this URL. */
  redirect?: string;
}

/** A pending fault, as `faults()` shows it. */
export interface PendingFault {
  target: FaultTarget;
  count: number;
  /** Requests it still applies to. */
  remaining: number;
  status?: number;
  headers: Record<string, string | number>;
  body?: string;
  delayMs: number;
  hang: boolean;
  reset: boolean;
}

export interface PendingSandboxFault extends PendingFault {
  trickleMs: number;
  redirect?: string;
}

/** The server's clock: expiry checks use it. `now` is epoch ms; `offsetMs` how far it is moved. */
export interface ServerClock {
  offsetMs: number;
  now: number;
}

/** The control calls both servers have. */
export interface ControlBase<F, P, C> {
  /** Queue faults (at most 1000 pending); returns the pending faults. */
  addFault(fault: F | F[]): P[];
  faults(): P[];
  clearFaults(): void;
  /** Forget every token issued so far: the API answers 401 invalid_token. Returns how many. */
  revoke(): number;
  /** Lifetime of the tokens issued from now on (a non-negative integer). */
  setLifetime(seconds: number): number;
  /** A copy of the counters. */
  counters(): C;
  /** Counters back to zero and the pending faults dropped; `all` also forgets the server's
   *  tokens (and QPay's clients), puts its clock back and restores the token lifetime it was
   *  started with (QPay: its whole configuration). */
  reset(options?: { all?: boolean }): void;
  /** Set how far the server's clock is moved from the real one. */
  setClockOffset(offsetMs: number): ServerClock;
  /** Move the server's clock forward (or back, negative): tokens expire on it without waiting. */
  advanceClock(ms: number): ServerClock;
  clock(): ServerClock;
}

// ---- the QBank Connect sandbox ----

/** A client the sandbox's token endpoint knows. */
export interface SandboxClient {
  clientId: string;
  clientSecret: string;
  /** The scopes it may ask for (an array, or one space-separated string). */
  scopes: readonly string[] | string;
}

export interface SandboxOptions {
  /** Default "127.0.0.1". */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  /** Default 3600. */
  tokenLifetimeSeconds?: number;
  /** Issue HS256 JWT access tokens (with `exp`) instead of opaque ones. */
  jwtTokens?: boolean;
  /** Leave `expires_in` out of the token answer. */
  omitExpiresIn?: boolean;
  /** The generic bank: the token answer is `{"access_token":"…"}` and nothing else. */
  generic?: boolean;
  /** CORS headers on every answer (for a test in a browser). Default true. */
  cors?: boolean;
  /** The registered clients. Default DEFAULT_CLIENTS. */
  clients?: readonly SandboxClient[];
  /** Accounts added to SEED_ACCOUNTS (id to the balance's JSON text or value), or removed (null). */
  accounts?: Record<string, string | object | null>;
}

export interface SandboxCounters {
  tokenRequests: number;
  tokenSuccesses: number;
  /** By OAuth error code, e.g. `{ invalid_client: 1 }`. */
  tokenErrors: Record<string, number>;
  apiRequests: number;
  /** By the status sent, e.g. `{ "200": 1, "503": 1 }`. */
  apiByStatus: Record<string, number>;
  /** Credentials or tokens sent in a URL query. */
  securityViolations: number;
  faultsApplied: number;
  lastTokenRequest: { authMethod: "none" | "basic" | "post"; scope: string | null; grantType: string | null } | null;
}

export interface SandboxConfig {
  tokenLifetimeSeconds: number;
  jwtTokens: boolean;
  omitExpiresIn: boolean;
  generic: boolean;
  cors: boolean;
}

export interface SandboxControl extends ControlBase<SandboxFault, PendingSandboxFault, SandboxCounters> {
  /** Change how tokens issued from now on look; returns the configuration. */
  configure(patch: Partial<Pick<SandboxConfig, "jwtTokens" | "omitExpiresIn" | "generic" | "tokenLifetimeSeconds">>): SandboxConfig;
  /** Tokens the server currently knows. */
  issuedTokens(): number;
}

export interface Sandbox {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** `{url}/token`: pass `{ tokenUrl, apiBaseUrl }` as a QBankClient's `environment`. */
  tokenUrl: string;
  apiBaseUrl: string;
  port: number;
  /** Faults, counters, the clock, revocation (also over HTTP under the server's control path). */
  control: SandboxControl;
  /** Stops the server and cuts its connections (hung requests included). */
  close(): Promise<void>;
}

/**
 * A local QBank Connect: `POST /token` (client credentials, in the form body or HTTP Basic),
 * `GET /v1/balances/{id}` (Bearer checked for expiry and scope; amounts as the bank sends them),
 * `GET /v1/transactions`.
 */
export declare function startSandbox(options?: SandboxOptions): Promise<Sandbox>;

/** demo-client (balances.read transactions.read payments.ach.write accounts.read) and
 *  narrow-client (accounts.read), with fixture secrets. */
export declare const DEFAULT_CLIENTS: readonly { readonly clientId: string; readonly clientSecret: string; readonly scopes: readonly string[] }[];

/** The seeded accounts: id to the exact JSON text of its balance. */
export declare const SEED_ACCOUNTS: Readonly<Record<string, string>>;

/** Request bodies larger than this (64 KiB) are refused with 413. */
export declare const BODY_LIMIT: number;

// ---- the local QPay (a Keycloak realm and the Credentials API) ----

export type QPayTenantType = "processor" | "issuer" | "embosser";

export interface QPayTenant {
  tenantId: string;
  tenantType: QPayTenantType;
  parentTenantId: string | null;
}

export interface QPayUser {
  username: string;
  /** A fixture password. */
  password: string;
  tenantId: string;
  /** E.g. ["UPDATE_PASSWORD"]: the password grant then answers "Account is not fully set up". */
  requiredActions?: readonly string[];
}

export interface QPaySandboxOptions {
  /** Default "127.0.0.1". */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  /** Default "qpay". */
  realm?: string;
  /** Access tokens' lifetime. Default 300. */
  tokenLifetimeSeconds?: number;
  /** Refresh tokens' lifetime. Default 1800. */
  refreshLifetimeSeconds?: number;
  /** The token answers' token_type. Default "Bearer". */
  tokenType?: string;
  /** Older Keycloak's 400 unauthorized_client for an unknown client. */
  legacyClientErrors?: boolean;
  /** Most clients the Credentials API keeps (409 above). Default 1000. */
  maxClients?: number;
  /** Default true. */
  cors?: boolean;
  /** Widen the roles a tenant type may give its clients. */
  rolesByTenantType?: Partial<Record<QPayTenantType, readonly string[]>>;
  /** Default SEED_TENANTS. */
  tenants?: readonly QPayTenant[];
  /** Default SEED_USERS. */
  users?: readonly QPayUser[];
}

export interface QPayCounters {
  tokenRequests: number;
  tokenRequestsByGrant: Record<string, number>;
  tokenSuccesses: number;
  tokenSuccessesByGrant: Record<string, number>;
  tokenErrors: Record<string, number>;
  apiRequests: number;
  /** E.g. `{ "PUT /credentials/clients/{id}": { "200": 1 } }`. */
  apiByRoute: Record<string, Record<string, number>>;
  apiByStatus: Record<string, number>;
  securityViolations: number;
  faultsApplied: number;
  lastTokenRequest: { grantType: string | null; authMethod: string; clientId: string | null } | null;
}

export interface QPayConfig {
  tokenLifetimeSeconds: number;
  refreshLifetimeSeconds: number;
  tokenType: string;
  legacyClientErrors: boolean;
  maxClients: number;
  cors: boolean;
}

/** A client made through the Credentials API (never with its secret). */
export interface QPayClientRecord {
  id: string;
  client_id: string;
  tenant_id: string;
  name: string;
  roles: string[];
}

export type QPayIntrospection =
  | { active: false }
  | {
      active: true;
      kind: "user" | "client";
      client_id: string;
      username: string;
      tenant_id: string;
      roles: string[];
      scope: string;
      iat: number;
      exp: number;
    };

export interface QPayControl extends ControlBase<Fault, PendingFault & { headers: Record<string, string> }, QPayCounters> {
  configure(patch: Partial<Pick<QPayConfig, "tokenLifetimeSeconds" | "refreshLifetimeSeconds" | "tokenType" | "legacyClientErrors">>): QPayConfig;
  clients(): QPayClientRecord[];
  tenants(): QPayTenant[];
  /** What the server knows of an access token. */
  introspect(token: string): QPayIntrospection;
  /** Access tokens the server currently knows. */
  liveTokens(): number;
}

export interface QPaySandbox {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** The same as `url`: pass it as QPayCredentials.signIn's and qpayTokenUrl's `baseUrl`. */
  baseUrl: string;
  realm: string;
  /** `{url}/auth/realms/{realm}`. */
  issuer: string;
  /** `{url}/auth/realms/{realm}/protocol/openid-connect/token`. */
  tokenUrl: string;
  /** `{url}/credentials`. */
  credentialsBaseUrl: string;
  port: number;
  control: QPayControl;
  close(): Promise<void>;
}

/**
 * A local QPay: the realm's token endpoint (password grant for the public client qpay-console,
 * client credentials for clients made through the Credentials API, refresh) and the Credentials
 * API (`whoami`, `roles`, `clients`), with seeded tenants and users (fixture passwords).
 */
export declare function startQPaySandbox(options?: QPaySandboxOptions): Promise<QPaySandbox>;

export declare const DEFAULT_REALM: string;
/** The public console client of the password grant: "qpay-console". */
export declare const CONSOLE_CLIENT_ID: string;
export declare const ROLES_BY_TENANT_TYPE: Readonly<Record<QPayTenantType, readonly string[]>>;
export declare const SEED_TENANTS: readonly Readonly<QPayTenant>[];
export declare const SEED_USERS: readonly Readonly<QPayUser>[];
