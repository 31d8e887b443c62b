// The routes, shared by the Cloudflare Worker (src/index.ts) and the Deno server
// (deno-server.ts): plain Fetch-API Request in, Response out, so it runs unchanged in both.
//
//   GET /balances/:id   the balance as JSON (exact decimal strings)
//   GET /?account=ID    a small HTML page: a balance and the token's state
//   GET /status         the token's state as JSON (and where the token came from)
//
// Nothing secret ever leaves: the client secret and the access token stay inside the
// QBankClient (its errors, JSON and toString are redacted), and every value put into the page
// is HTML-escaped.
import { QBankClient, QBankError, version } from "qbank-connect";
import type { Balance, QBankClientOptions, QBankErrorCode } from "qbank-connect";

/** What the examples read from their environment (Worker bindings, or process/Deno env vars). */
export interface QBankSettings {
  QBANK_CLIENT_ID?: string;
  QBANK_CLIENT_SECRET?: string;
  /** Both set: a sandbox (e.g. the local one, http://127.0.0.1:…/token). Both unset: production. */
  QBANK_TOKEN_URL?: string;
  QBANK_API_BASE_URL?: string;
  /** The account the page at / shows when no ?account= is given. */
  QBANK_DEMO_ACCOUNT?: string;
}

export type WaitUntil = (promise: Promise<unknown>) => void;

/** An error of the example itself (bad settings, a malformed path), answered like a QBankError. */
export class AppError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/**
 * Builds the one client of an isolate or process, with `store` if given (the Worker's
 * coordinator). Throws an AppError "config" when a setting is missing.
 */
export function createClient(s: QBankSettings, store?: QBankClientOptions["store"]): QBankClient {
  const missing = ["QBANK_CLIENT_ID", "QBANK_CLIENT_SECRET"].filter((k) => !s[k as keyof QBankSettings]);
  if (missing.length > 0) {
    throw new AppError("config", `${missing.join(" and ")} must be set (see .dev.vars.example)`, 500);
  }
  if (!!s.QBANK_TOKEN_URL !== !!s.QBANK_API_BASE_URL) {
    throw new AppError("config", "set both QBANK_TOKEN_URL and QBANK_API_BASE_URL (a sandbox), or neither (production)", 500);
  }
  const sandbox = s.QBANK_TOKEN_URL && s.QBANK_API_BASE_URL ? { tokenUrl: s.QBANK_TOKEN_URL, apiBaseUrl: s.QBANK_API_BASE_URL } : undefined;
  return new QBankClient({
    environment: sandbox ?? "production",
    clientId: s.QBANK_CLIENT_ID!,
    clientSecret: s.QBANK_CLIENT_SECRET!,
    // Only for a local sandbox: the package allows plain http to a loopback host and nowhere else.
    allowInsecureHttp: sandbox !== undefined && sandbox.tokenUrl.startsWith("http://"),
    store,
  });
}

/** How each QBankError code reaches our caller. Upstream trouble is the gateway's (5xx), not the caller's. */
const STATUS: Partial<Record<QBankErrorCode, number>> = {
  invalid_argument: 400, // a bad account id: nothing was sent to the bank
  not_found: 404,
  rate_limited: 503, // the bank throttles *us*; Retry-After is passed on
  timeout: 504,
  config: 500,
  closed: 503,
  aborted: 499, // our own caller went away; nobody reads this answer
};

export function statusFor(e: unknown): number {
  if (e instanceof AppError) return e.status;
  return e instanceof QBankError ? (STATUS[e.code] ?? 502) : 500;
}

/** `{ error: code, message }`: QBankError messages never hold a secret or a token. */
export function errorResponse(e: unknown): Response {
  const status = statusFor(e);
  if (e instanceof AppError) return Response.json({ error: e.code, message: e.message }, { status, headers: NO_STORE });
  if (!(e instanceof QBankError)) {
    console.error("unexpected error:", e); // to the operator's log, not to the caller
    return Response.json({ error: "internal", message: "internal error" }, { status, headers: NO_STORE });
  }
  const headers: Record<string, string> = { ...NO_STORE };
  if (e.code === "rate_limited" && e.retryAfterMs !== undefined) headers["retry-after"] = String(Math.ceil(e.retryAfterMs / 1000));
  return Response.json({ error: e.code, message: e.message }, { status, headers });
}

const NO_STORE = { "cache-control": "no-store" };

/**
 * Where tokens are kept: "coordinator" (the Worker's Durable Object, shared by every isolate) or
 * "memory" (this isolate or process only).
 */
export type TokenCache = "coordinator" | "memory";

/**
 * The token's state, safe to show: no token, no secret. `source` is where the token in memory
 * came from ("coordinator", "endpoint": this isolate's own token request, or "store"), null
 * before the first; `tokenRequests` are this isolate's own (a token from the coordinator is
 * fetched by the object, not here).
 */
export function tokenState(bank: QBankClient, cache: TokenCache) {
  const s = bank.tokens.status;
  return {
    state: s.state,
    expiresInSeconds: s.expiresAt === undefined ? null : Math.max(0, Math.round((s.expiresAt - Date.now()) / 1000)),
    tokenRequests: s.tokenRequests,
    source: s.tokenSource ?? null,
    cache,
  };
}

export interface HandleOptions {
  /** ctx.waitUntil in a Worker: keeps a shared token request alive past the request that started it. */
  waitUntil?: WaitUntil;
  /** Shown on the page ("workerd", "deno", …). */
  runtime: string;
  demoAccount?: string;
  /** Where tokens are kept (shown on the page and in /status). Default "memory". */
  cache?: TokenCache;
}

export async function handle(request: Request, bank: QBankClient, opts: HandleOptions): Promise<Response> {
  const url = new URL(request.url);
  if (request.method !== "GET" && request.method !== "HEAD") {
    return Response.json({ error: "method_not_allowed", message: "only GET" }, { status: 405, headers: { allow: "GET, HEAD" } });
  }
  const call = { signal: request.signal, waitUntil: opts.waitUntil };
  const cache = opts.cache ?? "memory";
  const m = /^\/balances\/([^/]*)$/.exec(url.pathname);
  if (m) {
    let id: string;
    try {
      id = decodeURIComponent(m[1]);
    } catch {
      return errorResponse(new AppError("invalid_argument", "the account id is not valid percent-encoding; nothing was sent", 400));
    }
    try {
      return Response.json(await bank.getBalance(id, call), { headers: NO_STORE });
    } catch (e) {
      return errorResponse(e);
    }
  }
  if (url.pathname === "/status") {
    return Response.json({ runtime: opts.runtime, version: version(), token: tokenState(bank, cache) }, { headers: NO_STORE });
  }
  if (url.pathname === "/") {
    const account = url.searchParams.get("account") ?? opts.demoAccount ?? "";
    let balance: Balance | undefined;
    let error: unknown;
    if (account !== "") {
      try {
        balance = await bank.getBalance(account, call);
      } catch (e) {
        error = e;
      }
    }
    const status = error === undefined ? 200 : statusFor(error);
    return new Response(page({ account, balance, error, token: tokenState(bank, cache), runtime: opts.runtime }), {
      status,
      headers: {
        "content-type": "text/html; charset=utf-8",
        ...NO_STORE,
        // The page runs no script and loads nothing.
        "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
      },
    });
  }
  return Response.json({ error: "not_found", message: "no such route: try GET /balances/:id or GET /" }, { status: 404 });
}

/** Escapes text for HTML element content and double-quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

interface PageData {
  account: string;
  balance?: Balance;
  error?: unknown;
  token: ReturnType<typeof tokenState>;
  runtime: string;
}

const CACHES: Record<TokenCache, string> = {
  coordinator: "coordinator: shared by every isolate",
  memory: "memory: this isolate or process only",
};

export function page(d: PageData): string {
  const h = escapeHtml;
  let body: string;
  if (d.balance) {
    const b = d.balance;
    const cur = b.currency ? ` ${h(b.currency)}` : "";
    body = `<dl id="balance">
  <dt>Account</dt><dd id="account">${h(b.accountId)}</dd>
  <dt>Available</dt><dd id="available">${h(b.availableBalance)}${cur}</dd>
  <dt>Ledger</dt><dd id="ledger">${h(b.ledgerBalance)}${cur}</dd>
  <dt>As of</dt><dd id="as-of">${b.asOf ? h(b.asOf) : "real time (the bank sent no as-of date)"}</dd>
</dl>`;
  } else if (d.error !== undefined) {
    const known = d.error instanceof QBankError || d.error instanceof AppError;
    const code = known ? (d.error as QBankError | AppError).code : "internal";
    const message = known ? (d.error as Error).message : "internal error";
    body = `<p id="error" class="error"><strong>${h(code)}</strong>: ${h(message)}</p>`;
  } else {
    body = `<p>Enter an account id.</p>`;
  }
  const t = d.token;
  const expires = t.expiresInSeconds === null ? "no token yet" : `${t.expiresInSeconds} s`;
  const source = t.source === null ? "no token yet" : t.source;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>qbank-connect example</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; color: #1b1f24; }
  h1 { font-size: 1.4rem; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; align-items: baseline; }
  dt { color: #57606a; }
  dd { margin: 0; font-variant-numeric: tabular-nums; }
  #available, #ledger { font-size: 1.3rem; font-weight: 600; }
  section { border: 1px solid #d0d7de; border-radius: 6px; padding: .75rem 1rem; margin: 1rem 0; }
  .error { color: #a40e26; }
  small { color: #57606a; }
</style>
</head>
<body>
<h1>qbank-connect: a balance</h1>
<form method="get" action="/"><label>Account id <input name="account" value="${h(d.account)}" size="40"></label> <button>Show</button></form>
<section>
${body}
</section>
<section id="token">
<dl>
  <dt>Token</dt><dd id="token-state">${h(t.state)}</dd>
  <dt>Expires in</dt><dd id="token-expires">${h(expires)}</dd>
  <dt>Token from</dt><dd id="token-source">${h(source)}</dd>
  <dt>Token requests from here</dt><dd id="token-requests">${h(t.tokenRequests)}</dd>
  <dt>Token cache</dt><dd id="token-cache">${h(CACHES[t.cache])}</dd>
</dl>
</section>
<p><small>Served by ${h(d.runtime)} with qbank-connect ${h(version())}. The client secret and the access token never leave the server.</small></p>
</body>
</html>
`;
}
