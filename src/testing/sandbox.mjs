// A local QBank Connect sandbox: an OAuth 2.0 client-credentials token
// endpoint plus a tiny slice of the QBank Connect API, with fault injection,
// a movable server clock and counters, for the demo and the test suites, and
// published as qbank-connect/testing (index.mjs) for users' own tests.
//
//   node src/testing/sandbox.mjs [--port 8787] [--token-lifetime 3600]
//                                [--jwt] [--omit-expires-in] [--generic] [--host 127.0.0.1]
//
// prints one line of JSON {"url","tokenUrl","apiBaseUrl"} and serves until
// SIGINT/SIGTERM.  See README.md beside this file.

import crypto from 'node:crypto';
import {
  BODY_LIMIT, bearerChallenge, bump, createKit, isMain, mediaType, normalizeFault, onAnswered, parseBasic,
  remember, repeatedParam, runCli, signJwt,
} from './common.mjs';

export { BODY_LIMIT };
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

// The problem titles of the answers common.mjs gives for the API.
const TITLES = { 400: 'Bad Request', 401: 'Unauthorized', 413: 'Payload Too Large' };
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/; // RFC 6749 §3.3 scope-token
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

// The generic bank's document shows its opaque tokens as 32 letters and digits
// ("FOEtUHwg0das9PhsasVmgMGbZn7nWSgK").
function genericToken() {
  return Array.from(crypto.randomBytes(32), (b) => ALNUM[b % ALNUM.length]).join('');
}

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

// The sandbox's own fault fields: a trickled body and a redirect.
function faultExtras(input) {
  let trickleMs = 0;
  if (input.trickle === true) trickleMs = input.trickleMs ?? 20;
  else if (typeof input.trickle === 'number' && input.trickle > 0) trickleMs = input.trickle;
  if (input.redirect !== undefined && typeof input.redirect !== 'string') {
    throw new TypeError('fault.redirect must be a URL string');
  }
  return { trickleMs, redirect: input.redirect };
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
    generic: options.generic === true,
    cors: options.cors !== false,
  };
  const jwtKey = crypto.randomBytes(32);
  const tokens = new Map(); // access token -> { clientId, scopes, iat, exp } (ms on the server clock)
  let url;
  let port;

  const kit = createKit({
    config,
    realm: REALM,
    apiError: (req, res, status, detail, headers) => problem(req, res, status, TITLES[status], detail, headers),
    freshCounters,
    normalizeFault: (input) => normalizeFault(input, { more: faultExtras }),
    faultView: publicFault,
    onResetAll() {
      tokens.clear();
      config.tokenLifetimeSeconds = options.tokenLifetimeSeconds ?? 3600;
    },
    internalError: (e) => `sandbox error: ${e.message}`,
  });
  const { counters, now, deliver, sendJson, oauthError } = kit;

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

  // Counts an API request, and its answer's status once it is sent.
  function countApi(res) {
    counters.apiRequests += 1;
    onAnswered(res, (status) => bump(counters.apiByStatus, status));
  }

  // ---- /token ----

  function issueToken(client, scopes) {
    const iat = now();
    const exp = iat + config.tokenLifetimeSeconds * 1000;
    let token;
    if (config.generic) {
      token = genericToken();
    } else if (config.jwtTokens) {
      token = signJwt(jwtKey, { alg: 'HS256', typ: 'at+jwt', kid: 'qbank-sandbox' }, {
        iss: url,
        sub: client.clientId,
        aud: url,
        client_id: client.clientId,
        scope: scopes.join(' '),
        iat: Math.floor(iat / 1000),
        exp: Math.floor(exp / 1000),
        jti: crypto.randomBytes(12).toString('base64url'),
      });
    } else {
      token = crypto.randomBytes(32).toString('base64url');
    }
    remember(tokens, token, { clientId: client.clientId, scopes, iat, exp });
    return { token, expiresIn: config.tokenLifetimeSeconds };
  }

  async function handleToken(req, res, query) {
    counters.tokenRequests += 1;
    const record = { authMethod: 'none', scope: null, grantType: null };
    counters.lastTokenRequest = record;

    const params = await kit.readTokenForm(req, res, query, { secretParams: ['client_secret', 'client_assertion', 'password'], allow: 'POST' });
    if (!params) return;
    const repeated = repeatedParam(params);
    if (repeated !== null) {
      oauthError(req, res, 400, 'invalid_request', `parameter ${repeated} is repeated`);
      return;
    }

    const grantType = params.get('grant_type');
    record.grantType = grantType;
    record.scope = params.get('scope');

    // Client authentication: HTTP Basic (RFC 6749 §2.3.1) or the body.
    const authz = req.headers.authorization;
    let basic = null;
    if (authz !== undefined) {
      record.authMethod = 'basic';
      basic = parseBasic(authz);
      if (typeof basic === 'string') {
        const why = basic === 'unsupported' ? 'unsupported or malformed Authorization header' : 'malformed Basic credentials';
        oauthError(req, res, 401, 'invalid_client', why, { 'WWW-Authenticate': `Basic realm="${REALM}"` });
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
    if (config.generic) {
      // Exactly the generic bank's documented answer: the token and nothing else (no
      // token_type, no expires_in, no scope). Its tokens still die after the lifetime (the
      // document's hour by default), and the API then answers 401.
      sendJson(req, res, 200, `{"access_token":${JSON.stringify(token)}}`, { Pragma: 'no-cache' });
      return;
    }
    const parts = [`"access_token":${JSON.stringify(token)}`, '"token_type":"Bearer"'];
    if (!config.omitExpiresIn) parts.push(`"expires_in":${expiresIn}`);
    parts.push(`"scope":${JSON.stringify(scopes.join(' '))}`);
    sendJson(req, res, 200, `{${parts.join(',')}}`, { Pragma: 'no-cache' });
  }

  // ---- /v1/* ----

  const challenge = (error, description, extra) => bearerChallenge(REALM, error, description, extra);

  function authenticate(req, res, requiredScope) {
    const token = kit.bearerToken(req, res, 'a Bearer access token is required');
    if (token === null) return null;
    const info = tokens.get(token);
    if (!info) {
      problem(req, res, 401, 'Unauthorized', 'the access token is unknown or was revoked', {
        'WWW-Authenticate': challenge('invalid_token', 'The access token is unknown or was revoked'),
      });
      return null;
    }
    if (now() >= info.exp) {
      problem(req, res, 401, 'Unauthorized', 'the access token expired', {
        'WWW-Authenticate': challenge('invalid_token', 'The access token expired'),
      });
      return null;
    }
    if (requiredScope && !info.scopes.includes(requiredScope)) {
      problem(req, res, 403, 'Forbidden', `scope ${requiredScope} is required`, {
        'WWW-Authenticate': challenge('insufficient_scope', `The request requires scope ${requiredScope}`, { scope: requiredScope }),
      });
      return null;
    }
    return info;
  }

  async function handleApi(req, res, path, query) {
    countApi(res);
    const text = await kit.readApiBody(req, res, query);
    if (text === null) return;

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
      if (mediaType(req) !== 'application/json') {
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

  const control = kit.extendControl({
    revoke() {
      const n = tokens.size;
      tokens.clear();
      return n;
    },
    // No check of its own: a null advances by nothing.
    advanceClock(ms) {
      return control.setClockOffset(control.clock().offsetMs + ms);
    },
    configure(patch = {}) {
      if (patch.jwtTokens !== undefined) config.jwtTokens = patch.jwtTokens === true;
      if (patch.omitExpiresIn !== undefined) config.omitExpiresIn = patch.omitExpiresIn === true;
      if (patch.generic !== undefined) config.generic = patch.generic === true;
      if (patch.tokenLifetimeSeconds !== undefined) control.setLifetime(patch.tokenLifetimeSeconds);
      return { ...config };
    },
    issuedTokens() {
      return tokens.size;
    },
  });

  // ---- dispatch ----

  function kindOf(req, res, path) {
    if (path === '/token') return 'token';
    if (path === '/v1' || path.startsWith('/v1/')) return 'api';
    problem(req, res, 404, 'Not Found', `no route for ${path}`);
    return null;
  }

  // A request a fault answers (or hangs) is counted here, as its handler would.
  function countFaulted(req, res, kind) {
    if (kind === 'token') counters.tokenRequests += 1;
    else countApi(res);
  }

  ({ url, port } = await kit.listen({
    host,
    port: options.port,
    badTarget: (req, res) => problem(req, res, 400, 'Bad Request', 'malformed request target'),
    corsMethods: 'GET, POST, HEAD, OPTIONS',
    kindOf,
    onHang: countFaulted,
    async onReplace(req, res, kind) {
      countFaulted(req, res, kind);
      await kit.readBody(req);
    },
    token: handleToken,
    api: handleApi,
  }));
  return {
    url,
    tokenUrl: `${url}/token`,
    apiBaseUrl: url,
    port,
    close: kit.close,
    control,
  };
}

// Not awaited: the published CommonJS bundle of this file cannot hold a top-level await.
if (isMain(import.meta.url)) {
  runCli({
    name: 'sandbox',
    usage: 'node src/testing/sandbox.mjs [--port N] [--token-lifetime S] [--jwt] [--omit-expires-in] [--generic] [--host H]',
    switches: { '--jwt': 'jwtTokens', '--omit-expires-in': 'omitExpiresIn', '--generic': 'generic' },
    start: startSandbox,
    announce: (sb) => ({ url: sb.url, tokenUrl: sb.tokenUrl, apiBaseUrl: sb.apiBaseUrl }),
  });
}
