// The same routes as the Worker with plain node:http (ESM); also runs under Bun
// (`bun node-server.mjs`). Settings come from environment variables:
//
//   QBANK_CLIENT_ID, QBANK_CLIENT_SECRET       the credentials (never printed, never sent to a browser)
//   QBANK_TOKEN_URL, QBANK_API_BASE_URL        a sandbox (both), or neither for production
//   QBANK_DEMO_ACCOUNT                         the account the page at / shows by default
//   PORT (default 8788, 0 for any free port), HOST (default 127.0.0.1)
//
//   GET /balances/:id   the balance as JSON (exact decimal strings)
//   GET /?account=ID    a small HTML page: a balance and the token's state
//   GET /status         the token's state as JSON
import http from "node:http";
import { QBankClient, QBankError, version } from "qbank-connect";

const env = process.env;
const runtime = typeof Bun !== "undefined" ? `Bun ${Bun.version}` : `Node ${process.version}`;

function createClient() {
  const missing = ["QBANK_CLIENT_ID", "QBANK_CLIENT_SECRET"].filter((k) => !env[k]);
  if (missing.length > 0) throw new Error(`${missing.join(" and ")} must be set (see .dev.vars.example)`);
  if (!!env.QBANK_TOKEN_URL !== !!env.QBANK_API_BASE_URL) {
    throw new Error("set both QBANK_TOKEN_URL and QBANK_API_BASE_URL (a sandbox), or neither (production)");
  }
  const sandbox = env.QBANK_TOKEN_URL ? { tokenUrl: env.QBANK_TOKEN_URL, apiBaseUrl: env.QBANK_API_BASE_URL } : undefined;
  return new QBankClient({
    environment: sandbox ?? "production",
    clientId: env.QBANK_CLIENT_ID,
    clientSecret: env.QBANK_CLIENT_SECRET,
    // Only for a local sandbox: the package allows plain http to a loopback host and nowhere else.
    allowInsecureHttp: sandbox !== undefined && sandbox.tokenUrl.startsWith("http://"),
  });
}

let bank;
try {
  bank = createClient(); // one client for the process: every request shares its token
} catch (e) {
  console.error(`qbank-connect example: ${e.message}`);
  process.exit(1);
}

// How each QBankError code reaches our caller. Upstream trouble is the gateway's (5xx), not the caller's.
const STATUS = { invalid_argument: 400, not_found: 404, rate_limited: 503, timeout: 504, config: 500, closed: 503, aborted: 499 };
const statusFor = (e) => (e instanceof QBankError ? (STATUS[e.code] ?? 502) : 500);
const NO_STORE = { "cache-control": "no-store" };

function sendJson(res, status, value, headers = {}) {
  const body = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", ...NO_STORE, ...headers });
  res.end(res.req.method === "HEAD" ? undefined : body);
}

/** `{ error: code, message }`: QBankError messages never hold a secret or a token. */
function sendError(res, e) {
  if (!(e instanceof QBankError)) return sendJson(res, 500, { error: "internal", message: "internal error" });
  const headers = e.code === "rate_limited" && e.retryAfterMs !== undefined ? { "retry-after": String(Math.ceil(e.retryAfterMs / 1000)) } : {};
  sendJson(res, statusFor(e), { error: e.code, message: e.message }, headers);
}

function tokenState() {
  const s = bank.tokens.status;
  return {
    state: s.state,
    expiresInSeconds: s.expiresAt === undefined ? null : Math.max(0, Math.round((s.expiresAt - Date.now()) / 1000)),
    tokenRequests: s.tokenRequests,
    // Where the token in memory came from ("endpoint": this process's own token request); where
    // tokens are kept: this process's memory (the Worker's coordinator is Workers-only).
    source: s.tokenSource ?? null,
    cache: "memory",
  };
}

const escapeHtml = (v) => String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page({ account, balance, error, token }) {
  const h = escapeHtml;
  let body;
  if (balance) {
    const cur = balance.currency ? ` ${h(balance.currency)}` : "";
    body = `<dl id="balance">
  <dt>Account</dt><dd id="account">${h(balance.accountId)}</dd>
  <dt>Available</dt><dd id="available">${h(balance.availableBalance)}${cur}</dd>
  <dt>Ledger</dt><dd id="ledger">${h(balance.ledgerBalance)}${cur}</dd>
  <dt>As of</dt><dd id="as-of">${balance.asOf ? h(balance.asOf) : "real time (the bank sent no as-of date)"}</dd>
</dl>`;
  } else if (error !== undefined) {
    const known = error instanceof QBankError;
    body = `<p id="error" class="error"><strong>${h(known ? error.code : "internal")}</strong>: ${h(known ? error.message : "internal error")}</p>`;
  } else {
    body = `<p>Enter an account id.</p>`;
  }
  const expires = token.expiresInSeconds === null ? "no token yet" : `${token.expiresInSeconds} s`;
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
<form method="get" action="/"><label>Account id <input name="account" value="${h(account)}" size="40"></label> <button>Show</button></form>
<section>
${body}
</section>
<section id="token">
<dl>
  <dt>Token</dt><dd id="token-state">${h(token.state)}</dd>
  <dt>Expires in</dt><dd id="token-expires">${h(expires)}</dd>
  <dt>Token from</dt><dd id="token-source">${h(token.source ?? "no token yet")}</dd>
  <dt>Token requests from here</dt><dd id="token-requests">${h(token.tokenRequests)}</dd>
  <dt>Token cache</dt><dd id="token-cache">memory: this isolate or process only</dd>
</dl>
</section>
<p><small>Served by ${h(runtime)} with qbank-connect ${h(version())}. The client secret and the access token never leave the server.</small></p>
</body>
</html>
`;
}

async function route(req, res) {
  const url = new URL(req.url, "http://localhost");
  if (req.method !== "GET" && req.method !== "HEAD") {
    return sendJson(res, 405, { error: "method_not_allowed", message: "only GET" }, { allow: "GET, HEAD" });
  }
  // The caller hanging up detaches only this caller; a shared token request goes on for the others.
  const gone = new AbortController();
  res.on("close", () => res.writableFinished || gone.abort());
  const m = /^\/balances\/([^/]*)$/.exec(url.pathname);
  if (m) {
    let id;
    try {
      id = decodeURIComponent(m[1]);
    } catch {
      return sendJson(res, 400, { error: "invalid_argument", message: "the account id is not valid percent-encoding; nothing was sent" });
    }
    try {
      return sendJson(res, 200, await bank.getBalance(id, { signal: gone.signal }));
    } catch (e) {
      return sendError(res, e);
    }
  }
  if (url.pathname === "/status") return sendJson(res, 200, { runtime, version: version(), token: tokenState() });
  if (url.pathname === "/") {
    const account = url.searchParams.get("account") ?? env.QBANK_DEMO_ACCOUNT ?? "";
    let balance;
    let error;
    if (account !== "") {
      try {
        balance = await bank.getBalance(account, { signal: gone.signal });
      } catch (e) {
        error = e;
      }
    }
    res.writeHead(error === undefined ? 200 : statusFor(error), {
      "content-type": "text/html; charset=utf-8",
      ...NO_STORE,
      "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
    });
    return res.end(req.method === "HEAD" ? undefined : page({ account, balance, error, token: tokenState() }));
  }
  sendJson(res, 404, { error: "not_found", message: "no such route: try GET /balances/:id or GET /" });
}

const server = http.createServer((req, res) => {
  route(req, res).catch(() => {
    if (!res.headersSent) sendJson(res, 500, { error: "internal", message: "internal error" });
    else res.destroy();
  });
});
server.listen(Number(env.PORT ?? 8788), env.HOST ?? "127.0.0.1", () => {
  const { address, port } = server.address();
  console.log(`listening on http://${address}:${port}`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    bank.close(); // cancels the refresh timer
    server.close(() => process.exit(0));
    server.closeAllConnections?.();
  });
}
