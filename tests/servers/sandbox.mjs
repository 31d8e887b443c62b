// A local QBank Connect sandbox: an OAuth 2.0 client-credentials token
// endpoint plus a tiny slice of the QBank Connect API, with fault injection,
// a movable server clock and counters, for the demo and the test suites.
//
//   node tests/servers/sandbox.mjs [--port 8787] [--token-lifetime 3600]
//                                  [--jwt] [--omit-expires-in] [--host 127.0.0.1]
//
// prints one line of JSON {"url","tokenUrl","apiBaseUrl"} and serves until
// SIGINT/SIGTERM.  See README.md beside this file.

import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';

export const BODY_LIMIT = 64 * 1024;
const REALM = 'qbank';

export const DEFAULT_CLIENTS = Object.freeze([
  Object.freeze({
    clientId: 'demo-client',
    clientSecret: 'demo-secret-not-real',
    scopes: Object.freeze(['balances.read', 'transactions.read', 'payments.ach.write', 'accounts.read']),
  }),
  Object.freeze({
    clientId: 'narrow-client',
    clientSecret: 'narrow-secret-not-real',
    scopes: Object.freeze(['accounts.read']),
  }),
]);

// Raw JSON texts, written by hand so that every digit is exactly what the
// client receives (JSON.stringify would round the big numbers).
export const SEED_ACCOUNTS = Object.freeze({
  'a1b2c3d4-e5f6-7890-1234-567890abcde':
    '{"account_id":"a1b2c3d4-e5f6-7890-1234-567890abcde","available_balance":"1234.56","ledger_balance":"1300.00","currency":"USD","as_of":"2026-11-20"}',
  'acct-number-amounts':
    '{"account_id":"acct-number-amounts","available_balance":12345678901234567.89,"ledger_balance":98765432109876543.21,"pending_balance":123456789012345678.90,"currency":"USD","as_of":"2026-11-20"}',
  'acct-realtime':
    '{"account_id":"acct-realtime","available_balance":"250.00","ledger_balance":"250.00","currency":"USD"}',
  'acct-negative':
    '{"account_id":"acct-negative","available_balance":"-42.10","ledger_balance":"-40.00","currency":"USD","as_of":"2026-11-20"}',
  'acct-nested':
    '{"account_id":"acct-nested","available_balance":{"amount":"10.00","currency":"EUR"},"ledger_balance":{"amount":"12.50","currency":"EUR"},"as_of":"2026-11-20"}',
});

const TRANSACTIONS = [
  '{"id":"txn-0001","amount":"-12.34","currency":"USD","description":"Coffee beans","booked_at":"2026-11-19"}',
  '{"id":"txn-0002","amount":"2500.00","currency":"USD","description":"Invoice 1042 paid","booked_at":"2026-11-18"}',
  '{"id":"txn-0003","amount":"-99.99","currency":"USD","description":"Software subscription","booked_at":"2026-11-18"}',
  '{"id":"txn-0004","amount":"-1200.00","currency":"USD","description":"Rent","booked_at":"2026-11-17"}',
  '{"id":"txn-0005","amount":"0.01","currency":"USD","description":"Interest","booked_at":"2026-11-16"}',
];

const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/; // RFC 6749 §3.3 scope-token
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/; // RFC 6750 §2.1 b68token

function freshCounters() {
  return {
    tokenRequests: 0,
    tokenSuccesses: 0,
    tokenErrors: {},
    apiRequests: 0,
    apiByStatus: {},
    securityViolations: 0,
    faultsApplied: 0,
    lastTokenRequest: null,
  };
}

function normalizeClients(clients) {
  const map = new Map();
  for (const c of clients) {
    const clientId = c.clientId ?? c.client_id ?? c.id;
    const clientSecret = c.clientSecret ?? c.client_secret ?? c.secret;
    let scopes = c.scopes ?? c.scope ?? [];
    if (typeof scopes === 'string') scopes = scopes.split(' ').filter(Boolean);
    if (typeof clientId !== 'string' || typeof clientSecret !== 'string') {
      throw new TypeError('each client needs a string clientId and clientSecret');
    }
    map.set(clientId, { clientId, clientSecret, scopes: [...scopes] });
  }
  return map;
}

function normalizeAccounts(extra) {
  const map = new Map(Object.entries(SEED_ACCOUNTS));
  for (const [id, v] of Object.entries(extra ?? {})) {
    if (v === null) map.delete(id);
    else map.set(id, typeof v === 'string' ? v : JSON.stringify(v));
  }
  return map;
}

function secretEquals(a, b) {
  const ha = crypto.createHash('sha256').update(String(a)).digest();
  const hb = crypto.createHash('sha256').update(String(b)).digest();
  return crypto.timingSafeEqual(ha, hb);
}

// application/x-www-form-urlencoded decoding of one component ('+' is space).
function formDecode(s) {
  return decodeURIComponent(s.replace(/\+/g, ' '));
}

function quoteParam(s) {
  return `"${String(s).replace(/["\\]/g, '')}"`;
}

function bearerChallenge(error, description, extra = {}) {
  let v = `Bearer realm="${REALM}"`;
  if (error) v += `, error="${error}"`;
  if (description) v += `, error_description=${quoteParam(description)}`;
  for (const [k, val] of Object.entries(extra)) v += `, ${k}=${quoteParam(val)}`;
  return v;
}

function isFaultReplacement(f) {
  return f.status !== undefined || f.body !== undefined || f.redirect !== undefined;
}

function normalizeFault(input) {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new TypeError('a fault must be a JSON object');
  }
  const target = input.target ?? 'any';
  if (!['token', 'api', 'any'].includes(target)) {
    throw new TypeError('fault.target must be "token", "api" or "any"');
  }
  const count = input.count ?? 1;
  if (!Number.isInteger(count) || count < 1) throw new TypeError('fault.count must be a positive integer');
  if (input.status !== undefined && (!Number.isInteger(input.status) || input.status < 100 || input.status > 599)) {
    throw new TypeError('fault.status must be an integer HTTP status');
  }
  if (input.body !== undefined && typeof input.body !== 'string') {
    throw new TypeError('fault.body must be a string (the raw body text)');
  }
  if (input.headers !== undefined && (input.headers === null || typeof input.headers !== 'object')) {
    throw new TypeError('fault.headers must be an object');
  }
  for (const [k, v] of Object.entries(input.headers ?? {})) {
    http.validateHeaderName(k);
    http.validateHeaderValue(k, String(v));
  }
  const delayMs = input.delayMs ?? 0;
  if (typeof delayMs !== 'number' || !(delayMs >= 0) || delayMs > 600_000) {
    throw new TypeError('fault.delayMs must be a number of milliseconds (0..600000)');
  }
  let trickleMs = 0;
  if (input.trickle === true) trickleMs = input.trickleMs ?? 20;
  else if (typeof input.trickle === 'number' && input.trickle > 0) trickleMs = input.trickle;
  if (input.redirect !== undefined && typeof input.redirect !== 'string') {
    throw new TypeError('fault.redirect must be a URL string');
  }
  return {
    target,
    count,
    remaining: count,
    status: input.status,
    headers: { ...(input.headers ?? {}) },
    body: input.body,
    delayMs,
    hang: input.hang === true,
    reset: input.reset === true,
    trickleMs,
    redirect: input.redirect,
  };
}

const MAX_FAULTS = 1000;
const MAX_TOKENS = 10000;

function countApiStatus(counters, res) {
  res.on('close', () => {
    if (!res.headersSent) return; // hung or aborted before any answer
    const k = String(res.statusCode);
    counters().apiByStatus[k] = (counters().apiByStatus[k] ?? 0) + 1;
  });
}

function publicFault(f) {
  const { remaining, ...rest } = f;
  return { ...rest, remaining };
}

export async function startSandbox(options = {}) {
  const host = options.host ?? '127.0.0.1';
  const clients = normalizeClients(options.clients ?? DEFAULT_CLIENTS);
  const accounts = normalizeAccounts(options.accounts);
  const config = {
    tokenLifetimeSeconds: options.tokenLifetimeSeconds ?? 3600,
    jwtTokens: options.jwtTokens === true,
    omitExpiresIn: options.omitExpiresIn === true,
    cors: options.cors !== false,
  };
  const jwtKey = crypto.randomBytes(32);

  let counters = freshCounters();
  let faults = [];
  let clockOffsetMs = 0;
  const tokens = new Map(); // access token -> { clientId, scopes, iat, exp } (ms on the server clock)
  const sockets = new Set();
  const timers = new Set();
  const hung = new Set();
  let closed = false;
  let url;

  const now = () => Date.now() + clockOffsetMs;

  function later(ms, fn) {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
    return t;
  }

  // ---- delivery (every answer goes through here, so faults can shape it) ----

  function deliver(req, res, status, headers, bodyText) {
    if (res.headersSent || res.destroyed) return;
    const fault = req.fault;
    const body = Buffer.from(bodyText ?? '', 'utf8');
    const all = { ...headers };
    if (config.cors) {
      all['Access-Control-Allow-Origin'] = '*';
      all['Access-Control-Expose-Headers'] = 'WWW-Authenticate, Retry-After, Location';
    }
    if (fault) Object.assign(all, fault.headers);
    all['Content-Length'] = String(body.length);
    if (req.closeAfter) all.Connection = 'close';
    res.writeHead(status, all);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    if (fault?.reset) {
      const half = body.subarray(0, Math.floor(body.length / 2));
      res.write(half);
      // Let the headers and the first half reach the client, then cut the
      // connection: the client sees a body shorter than Content-Length.
      later(15, () => res.socket?.destroy());
      return;
    }
    if (fault?.trickleMs > 0 && body.length > 0) {
      res.flushHeaders();
      let i = 0;
      const step = () => {
        if (res.destroyed || closed) return;
        res.write(body.subarray(i, i + 1));
        i += 1;
        if (i >= body.length) res.end();
        else later(fault.trickleMs, step);
      };
      later(fault.trickleMs, step);
      return;
    }
    res.end(body);
  }

  function sendJson(req, res, status, text, headers = {}) {
    deliver(req, res, status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers }, text);
  }

  function oauthError(req, res, status, error, description, headers = {}) {
    counters.tokenErrors[error] = (counters.tokenErrors[error] ?? 0) + 1;
    sendJson(req, res, status, JSON.stringify({ error, error_description: description }), {
      Pragma: 'no-cache',
      ...headers,
    });
  }

  function problem(req, res, status, title, detail, headers = {}) {
    const text = JSON.stringify({
      type: 'about:blank',
      title,
      status,
      detail,
      instance: req.url.split('?')[0],
    });
    deliver(req, res, status, { 'Content-Type': 'application/problem+json', 'Cache-Control': 'no-store', ...headers }, text);
  }

  // ---- request bodies ----

  function readBody(req) {
    return new Promise((resolve) => {
      const declared = Number(req.headers['content-length']);
      if (Number.isFinite(declared) && declared > BODY_LIMIT) {
        req.closeAfter = true;
        resolve({ tooLarge: true });
        return;
      }
      const chunks = [];
      let size = 0;
      let tooLarge = false;
      req.on('data', (c) => {
        size += c.length;
        if (size > BODY_LIMIT) {
          tooLarge = true;
          req.closeAfter = true;
          if (size > 16 * BODY_LIMIT) req.socket.destroy();
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => resolve(tooLarge ? { tooLarge } : { text: Buffer.concat(chunks).toString('utf8') }));
      req.on('error', () => resolve({ aborted: true }));
      req.on('close', () => resolve({ aborted: true }));
    });
  }

  // ---- faults ----

  function takeFault(kind) {
    for (const f of faults) {
      if (f.remaining > 0 && (f.target === 'any' || f.target === kind)) {
        f.remaining -= 1;
        faults = faults.filter((x) => x.remaining > 0);
        counters.faultsApplied += 1;
        return f;
      }
    }
    return null;
  }

  function faultReplacement(req, res, f) {
    if (f.redirect !== undefined) {
      deliver(req, res, f.status ?? 302, { Location: f.redirect, 'Content-Type': 'text/plain' }, f.body ?? `Redirecting to ${f.redirect}`);
      return;
    }
    const body = f.body ?? '';
    let contentType = 'text/plain; charset=utf-8';
    try {
      if (body !== '') {
        JSON.parse(body);
        contentType = 'application/json';
      }
    } catch {
      /* not JSON */
    }
    deliver(req, res, f.status ?? 200, { 'Content-Type': contentType, 'Cache-Control': 'no-store' }, body);
  }

  // ---- /token ----

  function issueToken(client, scopes) {
    const iat = now();
    const exp = iat + config.tokenLifetimeSeconds * 1000;
    let token;
    if (config.jwtTokens) {
      const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const header = enc({ alg: 'HS256', typ: 'at+jwt', kid: 'qbank-sandbox' });
      const payload = enc({
        iss: url,
        sub: client.clientId,
        aud: url,
        client_id: client.clientId,
        scope: scopes.join(' '),
        iat: Math.floor(iat / 1000),
        exp: Math.floor(exp / 1000),
        jti: crypto.randomBytes(12).toString('base64url'),
      });
      const sig = crypto.createHmac('sha256', jwtKey).update(`${header}.${payload}`).digest('base64url');
      token = `${header}.${payload}.${sig}`;
    } else {
      token = crypto.randomBytes(32).toString('base64url');
    }
    tokens.set(token, { clientId: client.clientId, scopes, iat, exp });
    if (tokens.size > MAX_TOKENS) tokens.delete(tokens.keys().next().value); // oldest first
    return { token, expiresIn: config.tokenLifetimeSeconds };
  }

  async function handleToken(req, res, query) {
    counters.tokenRequests += 1;
    const record = { authMethod: 'none', scope: null, grantType: null };
    counters.lastTokenRequest = record;

    const { tooLarge, text, aborted } = await readBody(req);
    if (aborted) return;
    if (tooLarge) {
      oauthError(req, res, 413, 'invalid_request', `request body larger than ${BODY_LIMIT} bytes`);
      return;
    }
    if (query.has('client_secret') || query.has('client_assertion') || query.has('password')) {
      counters.securityViolations += 1;
      oauthError(req, res, 400, 'invalid_request', 'credentials must not be sent in the URL query');
      return;
    }
    if (req.method !== 'POST') {
      oauthError(req, res, 405, 'invalid_request', 'the token endpoint only accepts POST', { Allow: 'POST' });
      return;
    }
    const ctype = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (ctype !== 'application/x-www-form-urlencoded') {
      oauthError(req, res, 400, 'invalid_request', 'Content-Type must be application/x-www-form-urlencoded');
      return;
    }

    let params;
    try {
      params = new URLSearchParams(text);
    } catch {
      oauthError(req, res, 400, 'invalid_request', 'malformed form body');
      return;
    }
    const seen = new Set();
    for (const [k] of params) {
      if (seen.has(k)) {
        oauthError(req, res, 400, 'invalid_request', `parameter ${k} is repeated`);
        return;
      }
      seen.add(k);
    }

    const grantType = params.get('grant_type');
    record.grantType = grantType;
    record.scope = params.get('scope');

    // Client authentication: HTTP Basic (RFC 6749 §2.3.1) or the body.
    const authz = req.headers.authorization;
    let basic = null;
    if (authz !== undefined) {
      const m = /^basic +([A-Za-z0-9+/=]*) *$/i.exec(authz);
      record.authMethod = 'basic';
      const challenge = { 'WWW-Authenticate': `Basic realm="${REALM}"` };
      if (!m) {
        oauthError(req, res, 401, 'invalid_client', 'unsupported or malformed Authorization header', challenge);
        return;
      }
      const decoded = Buffer.from(m[1], 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) {
        oauthError(req, res, 401, 'invalid_client', 'malformed Basic credentials', challenge);
        return;
      }
      try {
        basic = { id: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) };
      } catch {
        oauthError(req, res, 401, 'invalid_client', 'malformed Basic credentials', challenge);
        return;
      }
    } else if (params.has('client_id') || params.has('client_secret')) {
      record.authMethod = 'post';
    }

    if (grantType === null || grantType === '') {
      oauthError(req, res, 400, 'invalid_request', 'missing grant_type');
      return;
    }
    if (grantType !== 'client_credentials') {
      oauthError(req, res, 400, 'unsupported_grant_type', 'only grant_type=client_credentials is supported');
      return;
    }

    let id;
    let secret;
    if (basic) {
      if (params.has('client_secret')) {
        oauthError(req, res, 400, 'invalid_request', 'client authenticated with more than one method (Basic and client_secret in the body)');
        return;
      }
      if (params.has('client_id') && params.get('client_id') !== basic.id) {
        oauthError(req, res, 400, 'invalid_request', 'client_id in the body does not match the Basic credentials');
        return;
      }
      ({ id, secret } = basic);
    } else {
      id = params.get('client_id');
      secret = params.get('client_secret');
    }

    const client = id === null ? undefined : clients.get(id);
    if (!client || secret === null || !secretEquals(secret, client.clientSecret)) {
      oauthError(
        req, res, 401, 'invalid_client',
        id === null || secret === null ? 'client authentication missing' : 'client authentication failed',
        basic ? { 'WWW-Authenticate': `Basic realm="${REALM}"` } : {},
      );
      return;
    }

    let scopes = client.scopes;
    const requested = params.get('scope');
    if (requested !== null) {
      const wanted = requested.split(' ').filter(Boolean);
      for (const s of wanted) {
        if (!SCOPE_TOKEN.test(s)) {
          oauthError(req, res, 400, 'invalid_scope', 'scope contains invalid characters');
          return;
        }
        if (!client.scopes.includes(s)) {
          oauthError(req, res, 400, 'invalid_scope', `scope ${s} is not allowed for this client`);
          return;
        }
      }
      if (wanted.length > 0) scopes = [...new Set(wanted)];
    }

    const { token, expiresIn } = issueToken(client, scopes);
    counters.tokenSuccesses += 1;
    const parts = [`"access_token":${JSON.stringify(token)}`, '"token_type":"Bearer"'];
    if (!config.omitExpiresIn) parts.push(`"expires_in":${expiresIn}`);
    parts.push(`"scope":${JSON.stringify(scopes.join(' '))}`);
    sendJson(req, res, 200, `{${parts.join(',')}}`, { Pragma: 'no-cache' });
  }

  // ---- /v1/* ----

  function authenticate(req, res, requiredScope) {
    const authz = req.headers.authorization;
    const m = authz === undefined ? null : /^bearer(?: +(.*))?$/i.exec(authz);
    if (!m) {
      problem(req, res, 401, 'Unauthorized', 'a Bearer access token is required', {
        'WWW-Authenticate': bearerChallenge(),
      });
      return null;
    }
    const token = (m[1] ?? '').trim();
    if (!B64TOKEN.test(token)) {
      problem(req, res, 400, 'Bad Request', 'malformed Bearer credentials', {
        'WWW-Authenticate': bearerChallenge('invalid_request', 'malformed Bearer credentials'),
      });
      return null;
    }
    const info = tokens.get(token);
    if (!info) {
      problem(req, res, 401, 'Unauthorized', 'the access token is unknown or was revoked', {
        'WWW-Authenticate': bearerChallenge('invalid_token', 'The access token is unknown or was revoked'),
      });
      return null;
    }
    if (now() >= info.exp) {
      problem(req, res, 401, 'Unauthorized', 'the access token expired', {
        'WWW-Authenticate': bearerChallenge('invalid_token', 'The access token expired'),
      });
      return null;
    }
    if (requiredScope && !info.scopes.includes(requiredScope)) {
      problem(req, res, 403, 'Forbidden', `scope ${requiredScope} is required`, {
        'WWW-Authenticate': bearerChallenge('insufficient_scope', `The request requires scope ${requiredScope}`, { scope: requiredScope }),
      });
      return null;
    }
    return info;
  }

  async function handleApi(req, res, path, query) {
    counters.apiRequests += 1;
    countApiStatus(() => counters, res);

    const { tooLarge, text, aborted } = await readBody(req);
    if (aborted) return;
    if (tooLarge) {
      problem(req, res, 413, 'Payload Too Large', `request body larger than ${BODY_LIMIT} bytes`);
      return;
    }
    if (query.has('access_token')) {
      counters.securityViolations += 1;
      problem(req, res, 400, 'Bad Request', 'access tokens must not be sent in the URL query', {
        'WWW-Authenticate': bearerChallenge('invalid_request', 'access tokens must not be sent in the URL query'),
      });
      return;
    }

    const balance = /^\/v1\/balances\/([^/]+)$/.exec(path);
    if (balance) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        problem(req, res, 405, 'Method Not Allowed', 'use GET', { Allow: 'GET, HEAD' });
        return;
      }
      if (!authenticate(req, res, 'balances.read')) return;
      let id;
      try {
        id = decodeURIComponent(balance[1]);
      } catch {
        id = null;
      }
      const body = id === null ? undefined : accounts.get(id);
      if (body === undefined) {
        problem(req, res, 404, 'Account not found', `no account with id ${id ?? balance[1]}`);
        return;
      }
      sendJson(req, res, 200, body);
      return;
    }

    if (path === '/v1/transactions') {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        problem(req, res, 405, 'Method Not Allowed', 'use GET', { Allow: 'GET, HEAD' });
        return;
      }
      if (!authenticate(req, res, 'transactions.read')) return;
      const raw = query.get('limit');
      const limit = raw === null ? 10 : Number(raw);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100 || (raw !== null && !/^\d+$/.test(raw))) {
        problem(req, res, 400, 'Bad Request', 'limit must be an integer between 1 and 100');
        return;
      }
      const items = TRANSACTIONS.slice(0, limit);
      sendJson(req, res, 200, `{"transactions":[${items.join(',')}],"limit":${limit},"has_more":${limit < TRANSACTIONS.length}}`);
      return;
    }

    if (path === '/v1/echo') {
      if (req.method !== 'POST') {
        problem(req, res, 405, 'Method Not Allowed', 'use POST', { Allow: 'POST' });
        return;
      }
      if (!authenticate(req, res, null)) return;
      const ctype = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      if (ctype !== 'application/json') {
        problem(req, res, 415, 'Unsupported Media Type', 'send application/json');
        return;
      }
      try {
        JSON.parse(text);
      } catch {
        problem(req, res, 400, 'Bad Request', 'the body is not valid JSON');
        return;
      }
      sendJson(req, res, 200, text); // the exact text, so big numbers survive
      return;
    }

    if (!authenticate(req, res, null)) return;
    problem(req, res, 404, 'Not Found', `no route for ${req.method} ${path}`);
  }

  // ---- /__control/* ----

  const control = {
    addFault(f) {
      const list = (Array.isArray(f) ? f : [f]).map(normalizeFault);
      if (faults.length + list.length > MAX_FAULTS) throw new RangeError(`at most ${MAX_FAULTS} pending faults`);
      faults.push(...list);
      return control.faults();
    },
    faults() {
      return faults.map(publicFault);
    },
    clearFaults() {
      faults = [];
    },
    revoke() {
      const n = tokens.size;
      tokens.clear();
      return n;
    },
    setLifetime(seconds) {
      if (!Number.isInteger(seconds) || seconds < 0) throw new TypeError('seconds must be a non-negative integer');
      config.tokenLifetimeSeconds = seconds;
      return seconds;
    },
    counters() {
      return structuredClone(counters);
    },
    reset({ all = false } = {}) {
      counters = freshCounters();
      faults = [];
      if (all) {
        tokens.clear();
        clockOffsetMs = 0;
        config.tokenLifetimeSeconds = options.tokenLifetimeSeconds ?? 3600;
      }
    },
    setClockOffset(offsetMs) {
      if (typeof offsetMs !== 'number' || !Number.isFinite(offsetMs)) throw new TypeError('offsetMs must be a number');
      clockOffsetMs = offsetMs;
      return control.clock();
    },
    advanceClock(ms) {
      return control.setClockOffset(clockOffsetMs + ms);
    },
    clock() {
      return { offsetMs: clockOffsetMs, now: now() };
    },
    configure(patch = {}) {
      if (patch.jwtTokens !== undefined) config.jwtTokens = patch.jwtTokens === true;
      if (patch.omitExpiresIn !== undefined) config.omitExpiresIn = patch.omitExpiresIn === true;
      if (patch.tokenLifetimeSeconds !== undefined) control.setLifetime(patch.tokenLifetimeSeconds);
      return { ...config };
    },
    issuedTokens() {
      return tokens.size;
    },
  };

  async function handleControl(req, res, path) {
    const { tooLarge, text, aborted } = await readBody(req);
    if (aborted) return;
    const reply = (status, obj) => sendJson(req, res, status, JSON.stringify(obj));
    if (tooLarge) {
      reply(413, { error: 'body too large' });
      return;
    }
    let body = {};
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        reply(400, { error: 'body must be JSON' });
        return;
      }
    }
    const route = `${req.method} ${path}`;
    try {
      switch (route) {
        case 'POST /__control/faults':
          reply(200, { faults: control.addFault(body) });
          return;
        case 'GET /__control/faults':
          reply(200, { faults: control.faults() });
          return;
        case 'DELETE /__control/faults':
          control.clearFaults();
          reply(200, { faults: [] });
          return;
        case 'POST /__control/revoke':
          reply(200, { revoked: control.revoke() });
          return;
        case 'POST /__control/lifetime':
          reply(200, { seconds: control.setLifetime(body.seconds) });
          return;
        case 'GET /__control/counters':
          reply(200, control.counters());
          return;
        case 'POST /__control/reset':
          control.reset({ all: body?.all === true });
          reply(200, { ok: true });
          return;
        case 'GET /__control/clock':
          reply(200, control.clock());
          return;
        case 'POST /__control/clock':
          if (body.advanceMs !== undefined) reply(200, control.advanceClock(body.advanceMs));
          else reply(200, control.setClockOffset(body.offsetMs));
          return;
        case 'POST /__control/config':
          reply(200, control.configure(body));
          return;
        default:
          reply(404, { error: `no control route ${route}` });
      }
    } catch (e) {
      reply(400, { error: e.message });
    }
  }

  // ---- dispatch ----

  async function handle(req, res) {
    let parsed;
    try {
      parsed = new URL(req.url, 'http://sandbox.invalid');
    } catch {
      problem(req, res, 400, 'Bad Request', 'malformed request target');
      return;
    }
    const path = parsed.pathname;
    const query = parsed.searchParams;

    if (config.cors && req.method === 'OPTIONS' && !path.startsWith('/__control/')) {
      deliver(req, res, 204, {
        'Access-Control-Allow-Methods': 'GET, POST, HEAD, OPTIONS',
        'Access-Control-Allow-Headers': 'Authorization, Content-Type, Accept',
        'Access-Control-Max-Age': '600',
      }, '');
      return;
    }

    if (path.startsWith('/__control/')) {
      await handleControl(req, res, path);
      return;
    }

    let kind = null;
    if (path === '/token') kind = 'token';
    else if (path === '/v1' || path.startsWith('/v1/')) kind = 'api';

    if (kind === null) {
      problem(req, res, 404, 'Not Found', `no route for ${path}`);
      return;
    }

    const fault = takeFault(kind);
    if (fault) {
      req.fault = fault;
      if (fault.hang) {
        if (kind === 'token') counters.tokenRequests += 1;
        else counters.apiRequests += 1;
        hung.add(res);
        res.on('close', () => hung.delete(res));
        req.resume();
        return; // never answer
      }
      if (fault.delayMs > 0) {
        await new Promise((resolve) => later(fault.delayMs, resolve));
        if (closed || res.destroyed) return;
      }
      if (isFaultReplacement(fault)) {
        if (kind === 'token') counters.tokenRequests += 1;
        else {
          counters.apiRequests += 1;
          countApiStatus(() => counters, res);
        }
        await readBody(req);
        faultReplacement(req, res, fault);
        return;
      }
    }

    if (kind === 'token') await handleToken(req, res, query);
    else await handleApi(req, res, path, query);
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(`sandbox error: ${e.message}`);
      }
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 0; // trickle/hang faults must be able to outlive it
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address();
  url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  async function close() {
    if (closed) return;
    closed = true;
    for (const t of timers) clearTimeout(t);
    timers.clear();
    const done = new Promise((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    for (const s of sockets) s.destroy();
    hung.clear();
    await done;
  }

  return {
    url,
    tokenUrl: `${url}/token`,
    apiBaseUrl: url,
    port,
    close,
    control,
  };
}

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    const val = () => {
      const v = argv[i + 1];
      i += 1;
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--port') out.port = Number(val());
    else if (a === '--token-lifetime') out.tokenLifetimeSeconds = Number(val());
    else if (a === '--host') out.host = val();
    else if (a === '--jwt') out.jwtTokens = true;
    else if (a === '--omit-expires-in') out.omitExpiresIn = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (out.port !== undefined && !(Number.isInteger(out.port) && out.port >= 0 && out.port < 65536)) {
    throw new Error('--port must be 0..65535');
  }
  if (out.tokenLifetimeSeconds !== undefined && !(Number.isInteger(out.tokenLifetimeSeconds) && out.tokenLifetimeSeconds >= 0)) {
    throw new Error('--token-lifetime must be a non-negative integer');
  }
  return out;
}

function isMain() {
  if (!process.argv[1]) return false;
  try {
    return import.meta.url === pathToFileURL(fs.realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
}

if (isMain()) {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`sandbox: ${e.message}\nusage: node tests/servers/sandbox.mjs [--port N] [--token-lifetime S] [--jwt] [--omit-expires-in] [--host H]\n`);
    process.exit(2);
  }
  const sb = await startSandbox(opts);
  process.stdout.write(`${JSON.stringify({ url: sb.url, tokenUrl: sb.tokenUrl, apiBaseUrl: sb.apiBaseUrl })}\n`);
  const stop = () => {
    sb.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
