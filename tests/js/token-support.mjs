// Shared helpers for the TokenManager and QBankClient tests (token-manager.*, client, qpay,
// matrix.*, exit): the built package, managers that are always closed, the hooks of a describe
// over the local sandbox, error checks, and the "never a secret, never a token" scan over every
// way a value can be printed. Not a test file itself (no .test in its name).
import { before, after, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { inspect } from "node:util";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { startSandbox } from "../../src/testing/sandbox.mjs";
import { PKG } from "./harness.mjs";

/**
 * file: URL of the built package's Node ESM entry (pkg/index.js, from `make package`).
 * QBANK_PKG_URL runs these tests against another build of the same API instead.
 */
export const PKG_URL = process.env.QBANK_PKG_URL || pathToFileURL(join(PKG, "node.js")).href;
export const { TokenManager, QBankClient, QBankError } = await import(PKG_URL);

/**
 * An internal method of the package's classes, for white-box tests: keyed by a symbol, not a
 * name (pkg-template/build.mjs hides them), found by its description ("balanceRead", …).
 */
export function internalKey(cls, description) {
  const key = Object.getOwnPropertySymbols(cls.prototype).find((s) => s.description === `qbank-connect.${description}`);
  if (key === undefined) throw new Error(`${cls.name}.prototype has no internal method ${description}`);
  return key;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `predicate` until it is truthy; fails after `timeoutMs` saying `what` never happened. */
export async function until(predicate, what, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** The payload of a JWT (decoded without verification, as the manager does for scheduling). */
export const jwtPayload = (token) => JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));

/** Awaits `promise`, which must reject, and returns the rejection. */
export async function rejectionOf(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail("expected the promise to reject, but it resolved");
}

/** Calls `fn`, which must throw synchronously, and returns what it threw. */
export function thrownBy(fn) {
  try {
    fn();
  } catch (e) {
    return e;
  }
  assert.fail("expected a synchronous throw, but nothing was thrown");
}

/** A QBankError (a real Error subclass) with this code and these exact field values. */
export function assertQBankError(err, code, fields = {}) {
  assert.ok(err instanceof Error, `an Error instance (got ${inspect(err)})`);
  assert.ok(err instanceof QBankError, "a QBankError instance");
  assert.equal(err.name, "QBankError");
  assert.equal(err.code, code, `code (message: ${err.message})`);
  assert.equal(typeof err.message, "string");
  for (const [k, v] of Object.entries(fields)) assert.equal(err[k], v, `${code}: ${k}`);
  return err;
}

/** Checks the shape of a token from getToken(). `window` = [sentAfter, receivedBy] in epoch ms. */
export function assertToken(t, { scope, lifetimeSeconds, window } = {}) {
  assert.equal(typeof t.accessToken, "string");
  assert.ok(t.accessToken.length > 0, "a non-empty access token");
  assert.equal(t.tokenType, "Bearer");
  assert.ok(Number.isFinite(t.expiresAt), "expiresAt is a number (epoch ms)");
  assert.ok(Array.isArray(t.scope), "scope is an array");
  if (scope) assert.deepEqual([...t.scope].sort(), [...scope].sort(), "granted scope");
  if (lifetimeSeconds !== undefined && window) {
    // Measured from the moment the request was sent: inside [sent + L, received + L].
    const [sent, received] = window;
    const slack = 50;
    assert.ok(
      t.expiresAt >= sent + lifetimeSeconds * 1000 - slack && t.expiresAt <= received + lifetimeSeconds * 1000 + slack,
      `expiresAt ${t.expiresAt} within [${sent}, ${received}] + ${lifetimeSeconds} s`,
    );
  }
}

/** getToken() with the epoch-ms window around it, for assertToken. */
export async function timedGetToken(tm, options) {
  const sent = Date.now();
  const t = await tm.getToken(options);
  return { t, window: [sent, Date.now()] };
}

/** `n` concurrent getToken() calls; checks they all got the same token and returns it. */
export async function concurrentGetToken(tm, n) {
  const all = await Promise.all(Array.from({ length: n }, () => tm.getToken()));
  const distinct = new Set(all.map((t) => t.accessToken));
  assert.equal(distinct.size, 1, `${n} concurrent callers all get the same token`);
  return all[0];
}

/**
 * Makes TokenManagers for loopback test servers (allowInsecureHttp), recording every event (and
 * its JSON at the moment it was emitted), and closes them all in closeAll().
 */
export function managerPool() {
  const made = [];
  return {
    make(options) {
      const events = [];
      const tm = new TokenManager({
        allowInsecureHttp: true,
        onEvent: (e) => events.push({ event: e, json: JSON.stringify(e) }),
        ...options,
      });
      made.push(tm);
      return { tm, events, options };
    },
    closeAll() {
      for (const tm of made.splice(0)) {
        try {
          tm.close();
        } catch {
          /* already closed */
        }
      }
    },
  };
}

/** Event types recorded by a managerPool manager. */
export const eventTypes = (events) => events.map((e) => e.event.type);

// ---- a describe() over the local QBank sandbox ----

/**
 * Registers the hooks of a describe() whose tests run against one local QBank sandbox (call it
 * first thing in the describe) and returns what they share. The sandbox is started with
 * `sandbox` (startSandbox's options) before the tests, reset before each test (then given
 * `configure`, if any) and closed after them all. The managers from manager() and the clients
 * from makeClient() are closed after each test. With `clock` (e.g. fakeClock), a clock made on
 * the sandbox is restored after each test. `rec` (a caseRecorder), if given, is written at the end.
 *
 * Returns { sb, clock, pool, manager(options), makeClient(options), tokenRequests() }. sb and
 * clock are set once the sandbox has started: a file that keeps them in variables of its own
 * copies them in a `before` hook of its own, which runs after this one's. manager() makes a
 * managerPool manager for the first of sandbox.clients, asking for balances.read, with
 * `managerDefaults`; makeClient() a QBankClient on the sandbox for the first client (or
 * `client`), with `clientDefaults`.
 */
export function sandboxSuite({ sandbox, configure, clock, rec, managerDefaults = {}, clientDefaults = {} }) {
  const [first] = sandbox.clients;
  const pool = managerPool();
  const clients = [];
  const suite = {
    sb: undefined,
    clock: undefined,
    pool,
    tokenRequests: () => suite.sb.control.counters().tokenRequests,
    manager: (options = {}) =>
      pool.make({
        tokenUrl: suite.sb.tokenUrl,
        clientId: first.clientId,
        clientSecret: first.clientSecret,
        scope: ["balances.read"],
        ...managerDefaults,
        ...options,
      }),
    makeClient({ client = first, ...options } = {}) {
      const bank = new QBankClient({
        environment: { tokenUrl: suite.sb.tokenUrl, apiBaseUrl: suite.sb.apiBaseUrl },
        clientId: client.clientId,
        clientSecret: client.clientSecret,
        allowInsecureHttp: true,
        ...clientDefaults,
        ...options,
      });
      clients.push(bank);
      return bank;
    },
  };
  const closeAll = () => {
    pool.closeAll();
    for (const bank of clients.splice(0)) bank.close();
    suite.clock?.restore();
  };
  before(async () => {
    suite.sb = await startSandbox(sandbox);
    if (clock) suite.clock = clock(suite.sb);
  });
  beforeEach(() => {
    suite.sb.control.reset({ all: true });
    if (configure) suite.sb.control.configure(configure);
  });
  afterEach(closeAll);
  after(async () => {
    closeAll();
    await suite.sb?.close();
    rec?.write();
  });
  return suite;
}

const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);

/**
 * The sandbox's counters once each API answer is counted (a status is counted when its response
 * closes); with `requireStatuses` false, at once.
 */
export async function settledCounters(sb, requireStatuses = true) {
  if (requireStatuses) {
    await until(() => {
      const c = sb.control.counters();
      return sum(c.apiByStatus) === c.apiRequests;
    }, "the sandbox to count every API answer", 3000);
  }
  return sb.control.counters();
}

/** Asserts the sandbox saw exactly this many token and API requests (and API statuses, if given), and no token or secret in a URL. */
export async function assertSandboxCounts(sb, { tokenRequests, apiRequests, apiByStatus }, requireStatuses = true) {
  const c = await settledCounters(sb, requireStatuses);
  assert.equal(c.tokenRequests, tokenRequests, "token requests the sandbox saw");
  assert.equal(c.apiRequests, apiRequests, "API requests the sandbox saw");
  if (apiByStatus) assert.deepEqual(c.apiByStatus, apiByStatus, "API answers by status");
  assert.equal(c.securityViolations, 0, "no token or secret in a URL");
}

/**
 * A loopback server on another origin, standing in for where a redirect or escape points: answers
 * every request 200 with the JSON text `answer` (or what `answer()` returns), and records the
 * { url, authorization } of each in `seen`.
 */
export async function startOtherOrigin(answer) {
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url, authorization: req.headers.authorization });
    req.resume();
    res.writeHead(200, { "content-type": "application/json" });
    res.end(typeof answer === "function" ? answer() : answer);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    seen,
    close: () => new Promise((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

// ---- never a secret, never a token ----

const formEncode = (s) => encodeURIComponent(s).replace(/%20/g, "+");

/** The secret in every form it travels in: raw, URL/form-encoded, and inside Basic credentials. */
export function secretForms(clientId, clientSecret) {
  return {
    "client secret": clientSecret,
    "URL-encoded client secret": encodeURIComponent(clientSecret),
    "form-encoded client secret": formEncode(clientSecret),
    "Basic credentials": Buffer.from(`${formEncode(clientId)}:${formEncode(clientSecret)}`).toString("base64"),
    "raw Basic credentials": Buffer.from(`${clientId}:${clientSecret}`).toString("base64"),
  };
}

/** Every way an error gets printed or logged. */
export function errorRenderings(err) {
  return {
    "err.message": err.message,
    "err.stack": err.stack,
    "String(err)": String(err),
    "JSON.stringify(err)": JSON.stringify(err),
    "util.inspect(err)": inspect(err),
    "util.inspect(err, showHidden)": inspect(err, { showHidden: true, depth: Infinity }),
    "err.oauthErrorDescription": err.oauthErrorDescription,
    "util.inspect(err.cause)": inspect(err.cause, { depth: Infinity }),
  };
}

/** Every way a manager gets printed or logged. */
export function managerRenderings(tm) {
  return {
    "String(tm)": String(tm),
    "`${tm}`": `${tm}`,
    "JSON.stringify(tm)": JSON.stringify(tm),
    "util.inspect(tm)": inspect(tm),
    "util.inspect(tm, showHidden)": inspect(tm, { showHidden: true, depth: Infinity }),
    "JSON.stringify(tm.status)": JSON.stringify(tm.status),
  };
}

/** Event JSON as it was when emitted, and as it is now. */
export function eventRenderings(events) {
  const out = {};
  events.forEach(({ event, json }, i) => {
    out[`event ${i} (${event.type}) when emitted`] = json;
    out[`event ${i} (${event.type}) now`] = JSON.stringify(event);
    out[`util.inspect(event ${i})`] = inspect(event, { depth: Infinity });
  });
  return out;
}

/** Fails naming where a forbidden value (by its name, not its value) was found. */
export function assertNoneContain(renderings, forbidden) {
  for (const [where, text] of Object.entries(renderings)) {
    if (text === undefined || text === null) continue;
    for (const [what, value] of Object.entries(forbidden)) {
      if (value && String(text).includes(value)) assert.fail(`${where} contains the ${what}`);
    }
  }
}

/** Named access tokens, for assertNoneContain. */
export function tokenForms(tokens) {
  const out = {};
  [...tokens].forEach((t, i) => {
    out[`access token #${i + 1}`] = t;
  });
  return out;
}

// ---- the run's leak scanner (tests/leaks/register.cjs) ----

/**
 * The leak scanner of this run, or a stand-in when the run has none. A test that prints a secret
 * or a token on purpose (to show what redaction hides) wraps the print in
 * `leakScanner.deliberately(() => console.log(...))`, so the scanner does not count it.
 */
export const leakScanner = globalThis[Symbol.for("qbank-connect.leak-scanner")] ?? {
  deliberately: (fn) => fn(),
  addSecret: () => false,
};
