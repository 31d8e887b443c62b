// What the two local sandboxes share: sandbox.mjs (QBank Connect) and qpay.mjs
// (QPay).  Request bodies with a size limit, fault injection and the delivery
// every answer goes through, counters, the movable server clock, the control
// API's common calls and routes, the HTTP server with its sockets and timers,
// and the command line.  Each server keeps its own routes, error bodies and
// counter fields; where the two differ in a detail, an option here says which.
// Node, Deno and Bun run them (qbank-connect/testing): Node's globals (Buffer,
// process) are imported, since Deno does not have them as globals.
// See README.md beside this file.

import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { Buffer } from 'node:buffer';
import process from 'node:process';
import { pathToFileURL } from 'node:url';

export const BODY_LIMIT = 64 * 1024;
const MAX_FAULTS = 1000;
const MAX_TOKENS = 10000;
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/; // RFC 6750 §2.1 b68token

export function bump(obj, key, n = 1) {
  obj[key] = (obj[key] ?? 0) + n;
}

// application/x-www-form-urlencoded decoding of one component ('+' is space).
function formDecode(s) {
  return decodeURIComponent(s.replace(/\+/g, ' '));
}

// The request's media type, lower case, without parameters ('' when there is none).
export function mediaType(req) {
  return (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
}

// The first parameter a form repeats, or null.
export function repeatedParam(params) {
  const seen = new Set();
  for (const [k] of params) {
    if (seen.has(k)) return k;
    seen.add(k);
  }
  return null;
}

// Calls fn(status) once the answer has gone out (never for a request that
// hung or was cut before any answer).
export function onAnswered(res, fn) {
  res.on('close', () => {
    if (res.headersSent) fn(String(res.statusCode));
  });
}

// Keeps a token record, forgetting the oldest past MAX_TOKENS.
export function remember(map, key, rec) {
  map.set(key, rec);
  if (map.size > MAX_TOKENS) map.delete(map.keys().next().value); // oldest first
}

// An HS256 JWT signed with `key`.
export function signJwt(key, header, payload) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = enc(header);
  const body = enc(payload);
  const sig = crypto.createHmac('sha256', key).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

function quoteParam(s) {
  return `"${String(s).replace(/["\\]/g, '')}"`;
}

// RFC 6750 §3 WWW-Authenticate value.
export function bearerChallenge(realm, error, description, extra = {}) {
  let v = `Bearer realm="${realm}"`;
  if (error) v += `, error="${error}"`;
  if (description) v += `, error_description=${quoteParam(description)}`;
  for (const [k, val] of Object.entries(extra)) v += `, ${k}=${quoteParam(val)}`;
  return v;
}

// HTTP Basic client credentials (RFC 6749 §2.3.1: id and secret form-encoded):
// {id, secret}; 'unsupported' for another scheme or a value that is not base64;
// 'malformed' without a colon or with a bad %-escape.
export function parseBasic(authz) {
  const m = /^basic +([A-Za-z0-9+/=]*) *$/i.exec(authz);
  if (!m) return 'unsupported';
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return 'malformed';
  try {
    return { id: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) };
  } catch {
    return 'malformed';
  }
}

// A fault as the control API takes it, checked.  `plainHeaders` (QPay) also
// refuses an array for `headers` and keeps their values as strings; `more`
// checks and adds a server's own fields, after the common ones.
export function normalizeFault(input, { plainHeaders = false, more } = {}) {
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
  if (input.headers !== undefined && (input.headers === null || typeof input.headers !== 'object' || (plainHeaders && Array.isArray(input.headers)))) {
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
  return {
    target,
    count,
    remaining: count,
    status: input.status,
    headers: plainHeaders
      ? Object.fromEntries(Object.entries(input.headers ?? {}).map(([k, v]) => [k, String(v)]))
      : { ...(input.headers ?? {}) },
    body: input.body,
    delayMs,
    hang: input.hang === true,
    reset: input.reset === true,
    ...more?.(input),
  };
}

function isFaultReplacement(f) {
  return f.status !== undefined || f.body !== undefined || f.redirect !== undefined;
}

// One server's shared machinery.  Options:
//   config          the server's config: `cors` and `tokenLifetimeSeconds` are read here
//   realm           the realm of its Bearer challenges
//   apiError        (req, res, status, description, headers) answers in its API's error format
//   freshCounters   () => the counters at start and after a reset (with tokenErrors and faultsApplied)
//   normalizeFault  input => a checked fault
//   faultView       fault => what faults() shows of it
//   onResetAll      () => forgets the server's own state, for reset({all: true})
//   drainOversized  read and drop a body whose Content-Length is over the limit (QPay)
//   bodiless        no Content-Length and no body on a 204 or 304 (QPay)
//   internalError   e => the text of a 500 for an exception in a handler
export function createKit(options) {
  const { config } = options;
  const counters = options.freshCounters();
  let faults = [];
  let clockOffsetMs = 0;
  const sockets = new Set();
  const timers = new Set();
  const hung = new Set();
  let closed = false;
  let server;

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
    const noBody = options.bodiless === true && (status === 204 || status === 304);
    const all = { ...headers };
    if (config.cors) {
      all['Access-Control-Allow-Origin'] = '*';
      all['Access-Control-Expose-Headers'] = 'WWW-Authenticate, Retry-After, Location';
    }
    if (fault) Object.assign(all, fault.headers);
    if (!noBody) all['Content-Length'] = String(body.length);
    if (req.closeAfter) all.Connection = 'close';
    res.writeHead(status, all);
    if (req.method === 'HEAD' || noBody) {
      res.end();
      return;
    }
    if (fault?.reset) {
      res.write(body.subarray(0, Math.floor(body.length / 2)));
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

  // `value` is the exact JSON text, or a value to stringify.
  function sendJson(req, res, status, value, headers = {}) {
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    deliver(req, res, status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers }, text);
  }

  // An RFC 6749 §5.2 error from the token endpoint, counted by code.
  function oauthError(req, res, status, error, description, headers = {}) {
    bump(counters.tokenErrors, error);
    sendJson(req, res, status, { error, error_description: description }, { Pragma: 'no-cache', ...headers });
  }

  // ---- request bodies ----

  // {text}, {tooLarge} past BODY_LIMIT (the connection then closes after the
  // answer), or {aborted}.
  function readBody(req) {
    return new Promise((resolve) => {
      const declared = Number(req.headers['content-length']);
      if (Number.isFinite(declared) && declared > BODY_LIMIT) {
        req.closeAfter = true;
        if (options.drainOversized) req.resume();
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

  // The token endpoint's checks before the grant: the body's size, no
  // credentials (`secretParams`) in the URL query, POST only (`allow` is the
  // 405's Allow), a form body.  The parameters, or null once answered.
  async function readTokenForm(req, res, query, { secretParams, allow }) {
    const { tooLarge, text, aborted } = await readBody(req);
    if (aborted) return null;
    if (tooLarge) {
      oauthError(req, res, 413, 'invalid_request', `request body larger than ${BODY_LIMIT} bytes`);
      return null;
    }
    if (secretParams.some((k) => query.has(k))) {
      counters.securityViolations += 1;
      oauthError(req, res, 400, 'invalid_request', 'credentials must not be sent in the URL query');
      return null;
    }
    if (req.method !== 'POST') {
      oauthError(req, res, 405, 'invalid_request', 'the token endpoint only accepts POST', { Allow: allow });
      return null;
    }
    if (mediaType(req) !== 'application/x-www-form-urlencoded') {
      oauthError(req, res, 400, 'invalid_request', 'Content-Type must be application/x-www-form-urlencoded');
      return null;
    }
    try {
      return new URLSearchParams(text);
    } catch {
      oauthError(req, res, 400, 'invalid_request', 'malformed form body');
      return null;
    }
  }

  // The API's checks before its routes: the body's size and no access token in
  // the URL query.  The body text, or null once answered.
  async function readApiBody(req, res, query) {
    const { tooLarge, text, aborted } = await readBody(req);
    if (aborted) return null;
    if (tooLarge) {
      options.apiError(req, res, 413, `request body larger than ${BODY_LIMIT} bytes`);
      return null;
    }
    if (query.has('access_token')) {
      counters.securityViolations += 1;
      options.apiError(req, res, 400, 'access tokens must not be sent in the URL query', {
        'WWW-Authenticate': bearerChallenge(options.realm, 'invalid_request', 'access tokens must not be sent in the URL query'),
      });
      return null;
    }
    return text;
  }

  // The request's Bearer token, or null once answered: a 401 with a bare
  // challenge without one (`wanted` says what is wanted), a 400 for
  // credentials that are not an RFC 6750 b64token.
  function bearerToken(req, res, wanted) {
    const authz = req.headers.authorization;
    const m = authz === undefined ? null : /^bearer(?: +(.*))?$/i.exec(authz);
    if (!m) {
      options.apiError(req, res, 401, wanted, { 'WWW-Authenticate': bearerChallenge(options.realm) });
      return null;
    }
    const token = (m[1] ?? '').trim();
    if (!B64TOKEN.test(token)) {
      options.apiError(req, res, 400, 'malformed Bearer credentials', {
        'WWW-Authenticate': bearerChallenge(options.realm, 'invalid_request', 'malformed Bearer credentials'),
      });
      return null;
    }
    return token;
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
    if (body !== '') {
      try {
        JSON.parse(body);
        contentType = 'application/json';
      } catch {
        /* not JSON */
      }
    }
    deliver(req, res, f.status ?? 200, { 'Content-Type': contentType, 'Cache-Control': 'no-store' }, body);
  }

  // Plays the next fault for `kind` ('token' or 'api'), if one is pending: it
  // hangs (after onHang(req, res, kind)), waits, and answers in the request's
  // place (after onReplace(req, res, kind), which reads the body).  True when
  // the request needs nothing more.
  async function applyFault(req, res, kind, { onHang, onReplace }) {
    const fault = takeFault(kind);
    if (!fault) return false;
    req.fault = fault;
    if (fault.hang) {
      onHang(req, res, kind);
      hung.add(res);
      res.on('close', () => hung.delete(res));
      req.resume();
      return true; // never answer
    }
    if (fault.delayMs > 0) {
      await new Promise((resolve) => later(fault.delayMs, resolve));
      if (closed || res.destroyed) return true;
    }
    if (!isFaultReplacement(fault)) return false;
    await onReplace(req, res, kind);
    faultReplacement(req, res, fault);
    return true;
  }

  // ---- control ----

  const control = {
    addFault(f) {
      const list = (Array.isArray(f) ? f : [f]).map(options.normalizeFault);
      if (faults.length + list.length > MAX_FAULTS) throw new RangeError(`at most ${MAX_FAULTS} pending faults`);
      faults.push(...list);
      return control.faults();
    },
    faults() {
      return faults.map(options.faultView);
    },
    clearFaults() {
      faults = [];
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
      for (const k of Object.keys(counters)) delete counters[k];
      Object.assign(counters, options.freshCounters());
      faults = [];
      if (all) {
        clockOffsetMs = 0;
        options.onResetAll();
      }
    },
    setClockOffset(offsetMs) {
      if (typeof offsetMs !== 'number' || !Number.isFinite(offsetMs)) throw new TypeError('offsetMs must be a number');
      clockOffsetMs = offsetMs;
      return control.clock();
    },
    advanceClock(ms) {
      if (typeof ms !== 'number' || !Number.isFinite(ms)) throw new TypeError('ms must be a number');
      return control.setClockOffset(clockOffsetMs + ms);
    },
    clock() {
      return { offsetMs: clockOffsetMs, now: now() };
    },
  };

  // Every server's control routes; a server adds its own, and must give
  // control.revoke() and control.configure().
  const controlRoutes = new Map([
    ['POST /__control/faults', (body) => ({ faults: control.addFault(body) })],
    ['GET /__control/faults', () => ({ faults: control.faults() })],
    ['DELETE /__control/faults', () => {
      control.clearFaults();
      return { faults: [] };
    }],
    ['POST /__control/revoke', () => ({ revoked: control.revoke() })],
    ['POST /__control/lifetime', (body) => ({ seconds: control.setLifetime(body?.seconds) })],
    ['GET /__control/counters', () => control.counters()],
    ['POST /__control/reset', (body) => {
      control.reset({ all: body?.all === true });
      return { ok: true };
    }],
    ['GET /__control/clock', () => control.clock()],
    ['POST /__control/clock', (body) => (body?.advanceMs !== undefined ? control.advanceClock(body.advanceMs) : control.setClockOffset(body?.offsetMs))],
    ['POST /__control/config', (body) => control.configure(body)],
  ]);

  // The control object with the server's own calls (and overrides) added, and
  // `routes` ('METHOD /__control/x' -> body => answer) added to the common ones.
  function extendControl(calls, routes = {}) {
    Object.assign(control, calls);
    for (const [route, fn] of Object.entries(routes)) controlRoutes.set(route, fn);
    return control;
  }

  async function handleControl(req, res, path) {
    const { tooLarge, text, aborted } = await readBody(req);
    if (aborted) return;
    const reply = (status, obj) => sendJson(req, res, status, obj);
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
    const fn = controlRoutes.get(route);
    if (!fn) {
      reply(404, { error: `no control route ${route}` });
      return;
    }
    try {
      reply(200, fn(body));
    } catch (e) {
      reply(400, { error: e.message });
    }
  }

  // ---- the server ----

  // Every request: the target parsed (`badTarget(req, res)` answers one that
  // does not parse), a CORS preflight outside the control API answered (with
  // `corsMethods` allowed), the control API; then `kindOf(req, res, path)`
  // says 'token' or 'api' (or answers and says null), a pending fault is
  // played (see applyFault), and `token(req, res, query)` or
  // `api(req, res, path, query)` answers.
  async function dispatch(req, res, routing) {
    const { badTarget, corsMethods } = routing;
    let parsed;
    try {
      parsed = new URL(req.url, 'http://sandbox.invalid');
    } catch {
      badTarget(req, res);
      return;
    }
    const path = parsed.pathname;
    const isControl = path.startsWith('/__control/');
    if (config.cors && req.method === 'OPTIONS' && !isControl) {
      deliver(req, res, 204, {
        'Access-Control-Allow-Methods': corsMethods,
        'Access-Control-Allow-Headers': 'Authorization, Content-Type, Accept',
        'Access-Control-Max-Age': '600',
      }, '');
      return;
    }
    if (isControl) {
      await handleControl(req, res, path);
      return;
    }
    const kind = routing.kindOf(req, res, path);
    if (kind === null) return;
    if (await applyFault(req, res, kind, routing)) return;
    if (kind === 'token') await routing.token(req, res, parsed.searchParams);
    else await routing.api(req, res, path, parsed.searchParams);
  }

  // Serves on host:port (0: any free port), as dispatch() says; {url, port}.
  async function listen({ host, port, ...routing }) {
    server = http.createServer((req, res) => {
      dispatch(req, res, routing).catch((e) => {
        if (!res.headersSent) {
          res.writeHead(500, { 'Content-Type': 'text/plain' });
          res.end(options.internalError(e));
        }
      });
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 0; // trickle/hang/delay faults must be able to outlive it
    server.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const bound = server.address().port;
    return { url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}`, port: bound };
  }

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
    counters,
    control,
    now,
    later,
    deliver,
    sendJson,
    oauthError,
    readBody,
    readTokenForm,
    readApiBody,
    bearerToken,
    extendControl,
    listen,
    close,
  };
}

// ---- the command line ----

// --port, --token-lifetime and --host, plus a server's own `values`
// ('--flag' -> option name) and `switches` ('--flag' -> option set to true).
export function parseServerArgs(argv, { values = {}, switches = {} } = {}) {
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
    else if (Object.hasOwn(values, a)) out[values[a]] = val();
    else if (Object.hasOwn(switches, a)) out[switches[a]] = true;
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

// Whether the module at `moduleUrl` is the script node was started with (never
// in the published bundles, which build.mjs gives no module URL).
export function isMain(moduleUrl) {
  if (typeof moduleUrl !== 'string' || !process.argv[1]) return false;
  try {
    return moduleUrl === pathToFileURL(fs.realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
}

// Parses the arguments (a mistake: `name: message`, the usage, exit 2), starts
// the server, prints announce(server) as one line of JSON and serves until
// SIGINT/SIGTERM.
export async function runCli({ name, usage, values, switches, start, announce }) {
  let opts;
  try {
    opts = parseServerArgs(process.argv.slice(2), { values, switches });
  } catch (e) {
    process.stderr.write(`${name}: ${e.message}\nusage: ${usage}\n`);
    process.exit(2);
  }
  const server = await start(opts);
  process.stdout.write(`${JSON.stringify(announce(server))}\n`);
  const stop = () => {
    server.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
