// Reliability matrix (issue 6, item 1), token endpoint: a table of what real token servers answer,
// each row asserting the exact outcome: the QBankError code and fields, how many token requests
// the sandbox saw (no automatic retry), what the manager's status and events say, that nothing
// leaked, and that the next call recovers (or, where the core's rules say so, fails fast without a
// request until the backoff time, then recovers). Success rows assert the token, its expiresAt
// (the lifetime rules of src/oauth/token.rs parse_token_response and policy.rs expires_at) and
// whether it was cached.
//
// Already covered elsewhere and not repeated here: a plain 500 with recovery and the token_type
// DPoP answer (token-manager.faults.test.mjs); a wrong secret by post and Basic
// (token-manager.faults and .oidc). Rows here extend the rest with counts and recovery.
//
// Figures: target/reliability/fault-matrix/matrix.token.json (cases tried and passed).
import { describe, before } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { inspect } from "node:util";
import { freePort } from "./harness.mjs";
import {
  PKG_URL,
  assertNoneContain,
  assertQBankError,
  assertToken,
  errorRenderings,
  eventRenderings,
  managerRenderings,
  rejectionOf,
  sandboxSuite,
  secretForms,
  sleep,
  tokenForms,
} from "./token-support.mjs";
import { caseRecorder, eventually, fakeClock, httpFetch, startStub } from "../reliability/support.mjs";

const rec = caseRecorder("fault-matrix", import.meta.url);

const SCOPES = ["balances.read", "transactions.read", "accounts.read", "payments.ach.write"];
const CLIENT = { clientId: "matrix-client", clientSecret: `qb-matrix-secret-${randomBytes(12).toString("hex")}`, scopes: SCOPES };
/** How long to watch for a (forbidden) automatic retry after a failure. */
const NO_RETRY_WATCH_MS = 50;

/** Every token the server sent during this file (issued, or planted in a fault body). */
const sentTokens = new Set();
const plant = (prefix = "mx") => {
  const t = `${prefix}-${randomBytes(24).toString("base64url")}`;
  sentTokens.add(t);
  return t;
};
const forbidden = () => ({ ...tokenForms(sentTokens), ...secretForms(CLIENT.clientId, CLIENT.clientSecret) });

/** A JWT (unsigned for our purposes: the manager never checks signatures) with these claims. */
const jwt = (claims) => {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const t = `${enc({ alg: "HS256", typ: "at+jwt" })}.${typeof claims === "string" ? claims : enc(claims)}.${randomBytes(32).toString("base64url")}`;
  sentTokens.add(t);
  return t;
};
const nowS = () => Math.floor(Date.now() / 1000);
const tokenBody = (fields) => JSON.stringify({ token_type: "Bearer", ...fields });

describe("fault matrix: token endpoint", { timeout: 120_000 }, () => {
  const suite = sandboxSuite({
    sandbox: { clients: [CLIENT] },
    configure: { jwtTokens: false, omitExpiresIn: false },
    clock: fakeClock,
    rec,
    managerDefaults: { autoRefresh: false },
  });
  const { manager, tokenRequests } = suite;
  let sb;
  let clock;
  before(() => ({ sb, clock } = suite));
  const getToken = async (tm, o) => {
    const t = await tm.getToken(o);
    sentTokens.add(t.accessToken);
    return t;
  };
  const assertClean = (m, errors = []) => {
    const never = forbidden();
    assertNoneContain(managerRenderings(m.tm), never);
    assertNoneContain(eventRenderings(m.events), never);
    for (const e of errors) assertNoneContain(errorRenderings(e), never);
  };
  const failures = (m) => m.events.filter((e) => e.event.type === "token_refresh_failed").map((e) => e.event);

  /**
   * One failing answer. Asserts the error, that exactly `requests` token requests were made and no
   * automatic retry followed, the manager's status and event, no leak; then that the next call
   * recovers: at once, or (failFast) only after the backoff time, with no request before it.
   */
  async function failureRow({ fault, faults, options = {}, code, fields = {}, message, requests = 1, failFast = false, recover = true }) {
    for (const f of faults ?? (fault ? [fault] : [])) sb.control.addFault({ target: "token", ...f });
    const m = manager(failFast ? { fetch: httpFetch, ...options } : options);
    const err = await rejectionOf(m.tm.getToken());
    assertQBankError(err, code, fields);
    if (message) assert.match(err.message, message);
    await sleep(NO_RETRY_WATCH_MS);
    assert.equal(tokenRequests(), requests, "token requests the server saw (never retried automatically)");
    assert.equal(m.tm.status.tokenRequests, requests, "token requests the manager counts");
    assert.ok(m.tm.status.consecutiveFailures >= 1, "the failure is counted");
    const ev = failures(m);
    assert.equal(ev.length, requests, "one token_refresh_failed event per failed request");
    assert.equal(ev.at(-1).code, code, "the event names the code");
    assert.equal(ev.at(-1).background, false, "a caller was waiting");
    assertClean(m, [err]);
    if (!recover) return { m, err };
    if (failFast) {
      assert.ok(Number.isFinite(err.retryAfterMs) && err.retryAfterMs > 0, `retryAfterMs on the error (${err.retryAfterMs})`);
      const again = await rejectionOf(m.tm.getToken());
      assertQBankError(again, code);
      assert.ok(again.retryAfterMs > 0 && again.retryAfterMs <= err.retryAfterMs, `fail-fast retryAfterMs ${again.retryAfterMs} ≤ ${err.retryAfterMs}`);
      assert.equal(tokenRequests(), requests, "failing fast: no request during the backoff");
      assert.ok(m.tm.status.retryAt > Date.now(), "status.retryAt is in the future");
      clock.set(m.tm.status.retryAt + 1);
    }
    const t = await getToken(m.tm);
    assertToken(t);
    assert.equal(tokenRequests(), requests + 1, "the next call asked once more, and recovered");
    assert.equal(m.tm.status.state, "valid");
    assert.equal(m.tm.status.consecutiveFailures, 0);
    assert.equal(m.tm.status.retryAt, undefined);
    assertClean(m, [err]);
    return { m, err };
  }

  /**
   * One 200 answer carrying a token. Asserts the token handed out, its expiresAt (lifetime in
   * seconds from when the request was sent, or an exact epoch ms), its scope, and whether it was
   * cached (a second call makes no request) or used once (a second call asks again).
   */
  async function successRow({ body, options = {}, accessToken, lifetimeSeconds, expiresAt, scope = ["balances.read"], cached = true, tokenType = "Bearer" }) {
    sb.control.addFault({ target: "token", status: 200, body });
    const m = manager(options);
    const sent = Date.now();
    const t = await getToken(m.tm);
    const received = Date.now();
    if (accessToken) assert.equal(t.accessToken, accessToken, "the token from the answer");
    assert.equal(t.tokenType, tokenType);
    assert.deepEqual([...t.scope], scope, "the scope");
    if (lifetimeSeconds !== undefined) {
      assertToken(t, { lifetimeSeconds, window: [sent, received] });
    }
    if (expiresAt !== undefined) assert.equal(t.expiresAt, expiresAt, "expiresAt");
    assertNoneContain(
      { "JSON.stringify(token)": JSON.stringify(t), "String(token)": String(t), "util.inspect(token)": inspect(t, { showHidden: true }) },
      tokenForms([t.accessToken]),
    );
    assert.equal(m.tm.status.tokenRequests, 1);
    const t2 = await getToken(m.tm);
    if (cached) {
      assert.equal(t2.accessToken, t.accessToken, "served from the cache");
      assert.equal(tokenRequests(), 1, "no second token request");
      assert.equal(m.tm.status.state, "valid");
    } else {
      assert.notEqual(t2.accessToken, t.accessToken, "not cached: the next call got a new token");
      assert.equal(tokenRequests(), 2, "the next call asked again");
    }
    assertClean(m);
    return { m, t };
  }

  // ---- RFC 6749 §5.2 errors ----

  const oauth = (error, description = `the ${error} case`) => JSON.stringify({ error, error_description: description });
  const OAUTH_ERRORS = [
    ["400 invalid_request", { status: 400, body: oauth("invalid_request") }, "invalid_request", 400],
    ["400 invalid_scope", { status: 400, body: oauth("invalid_scope") }, "invalid_scope", 400],
    ["400 unauthorized_client", { status: 400, body: oauth("unauthorized_client") }, "unauthorized_client", 400],
    ["400 invalid_grant", { status: 400, body: oauth("invalid_grant") }, "invalid_grant", 400],
    ["400 unsupported_grant_type", { status: 400, body: oauth("unsupported_grant_type") }, "unsupported_grant_type", 400],
    ["400 with an error code this client does not know", { status: 400, body: oauth("consent_required") }, "token_endpoint_error", 400],
    [
      "401 invalid_client with WWW-Authenticate: Basic",
      { status: 401, headers: { "WWW-Authenticate": 'Basic realm="qbank"' }, body: oauth("invalid_client") },
      "invalid_client",
      401,
    ],
    ["401 invalid_client without WWW-Authenticate", { status: 401, body: oauth("invalid_client") }, "invalid_client", 401],
  ];
  for (const [what, fault, code, status] of OAUTH_ERRORS) {
    rec.it(`${what}: ${code}, oauthError and description kept, not retried; the next call recovers`, async () => {
      const oauthError = JSON.parse(fault.body).error;
      const { err } = await failureRow({
        fault,
        code,
        fields: { status, oauthError, oauthErrorDescription: `the ${oauthError} case`, mayHaveReachedServer: true },
      });
      assert.ok(!err.message.includes(`the ${oauthError} case`), "the server's description is a field, not the message");
    });
  }

  for (const [what, headers] of [
    ["with WWW-Authenticate: Basic", { "WWW-Authenticate": 'Basic realm="qbank"' }],
    ["without WWW-Authenticate", {}],
  ]) {
    rec.it(`a bare 401 (no body) ${what}: invalid_client without oauthError, not retried; the next call recovers`, async () => {
      await failureRow({
        fault: { status: 401, headers, body: "" },
        code: "invalid_client",
        fields: { status: 401, oauthError: undefined, mayHaveReachedServer: true },
        message: /client id and secret/,
      });
    });
  }

  rec.it("invalid_client twice: a caller's call asks again each time (never a background retry), then fails fast", async () => {
    const fault = { status: 401, headers: { "WWW-Authenticate": 'Basic realm="qbank"' }, body: oauth("invalid_client") };
    sb.control.addFault({ target: "token", count: 2, ...fault });
    const m = manager({ fetch: httpFetch });
    assertQBankError(await rejectionOf(m.tm.getToken()), "invalid_client");
    assertQBankError(await rejectionOf(m.tm.getToken()), "invalid_client");
    assert.equal(tokenRequests(), 2, "one request per caller call");
    const third = await rejectionOf(m.tm.getToken());
    assertQBankError(third, "invalid_client");
    assert.ok(third.retryAfterMs > 0, "after two failures in a row, callers fail fast until the backoff time");
    await sleep(NO_RETRY_WATCH_MS);
    assert.equal(tokenRequests(), 2, "no request while failing fast, and none in the background");
    clock.set(m.tm.status.retryAt + 1);
    assertToken(await getToken(m.tm));
    assert.equal(tokenRequests(), 3);
  });

  // ---- rate limiting and server errors ----

  rec.it("429 with Retry-After in seconds: rate_limited with retryAfterMs; callers fail fast until then, no request; then recovers", async () => {
    const { err } = await failureRow({
      fault: { status: 429, headers: { "Retry-After": "3" }, body: "Too Many Requests" },
      code: "rate_limited",
      fields: { status: 429, retryAfterMs: 3000, mayHaveReachedServer: true },
      failFast: true,
    });
    assert.match(err.message, /rate limiting/);
  });

  rec.it("429 with Retry-After as an HTTP date: rate_limited with the delay to that date; fail fast until then; then recovers", async () => {
    const at = new Date(Math.ceil((Date.now() + 5000) / 1000) * 1000);
    const { err } = await failureRow({
      fault: { status: 429, headers: { "Retry-After": at.toUTCString() }, body: "" },
      code: "rate_limited",
      fields: { status: 429, mayHaveReachedServer: true },
      failFast: true,
    });
    assert.ok(err.retryAfterMs >= 3000 && err.retryAfterMs <= 6000, `retryAfterMs ${err.retryAfterMs} is the time to ${at.toUTCString()}`);
  });

  rec.it("429 with an unreadable Retry-After: rate_limited without retryAfterMs; the next call asks again at once", async () => {
    await failureRow({
      fault: { status: 429, headers: { "Retry-After": "soon" }, body: "" },
      code: "rate_limited",
      fields: { status: 429, retryAfterMs: undefined },
    });
  });

  rec.it("502 with an HTML body: token_endpoint_error 502, the HTML never in the message; the next call recovers", async () => {
    const html = "<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>";
    const { err } = await failureRow({ fault: { status: 502, body: html }, code: "token_endpoint_error", fields: { status: 502, mayHaveReachedServer: true } });
    assert.ok(!/nginx|<html|<center/i.test(err.message), "no HTML in the message");
    assert.match(err.message, /502/);
  });

  rec.it("503 without Retry-After: token_endpoint_error 503; the next call asks again at once and recovers", async () => {
    await failureRow({ fault: { status: 503, body: "Service Unavailable" }, code: "token_endpoint_error", fields: { status: 503, retryAfterMs: undefined } });
  });

  rec.it("503 with Retry-After: 3: token_endpoint_error with retryAfterMs 3000; fail fast until then; then recovers", async () => {
    await failureRow({
      fault: { status: 503, headers: { "Retry-After": "3" }, body: "" },
      code: "token_endpoint_error",
      fields: { status: 503, retryAfterMs: 3000 },
      failFast: true,
    });
  });

  rec.it('503 {"error":"temporarily_unavailable"}: rate_limited (RFC 6749 §5.2 code wins over the status)', async () => {
    await failureRow({
      fault: { status: 503, body: oauth("temporarily_unavailable") },
      code: "rate_limited",
      fields: { status: 503, oauthError: "temporarily_unavailable" },
    });
  });

  rec.it("500 twice in a row: the third call fails fast with no request until the backoff time, then recovers", async () => {
    sb.control.addFault({ target: "token", status: 500, count: 2, body: "" });
    const m = manager({ fetch: httpFetch });
    const first = await rejectionOf(m.tm.getToken());
    assertQBankError(first, "token_endpoint_error", { status: 500, retryAfterMs: undefined });
    const second = await rejectionOf(m.tm.getToken());
    assertQBankError(second, "token_endpoint_error", { status: 500 });
    assert.ok(second.retryAfterMs >= 1000, `the second failure in a row starts the fail-fast backoff (retryAfterMs ${second.retryAfterMs})`);
    const third = await rejectionOf(m.tm.getToken());
    assertQBankError(third, "token_endpoint_error");
    assert.ok(third.retryAfterMs > 0 && third.retryAfterMs <= second.retryAfterMs);
    assert.equal(tokenRequests(), 2, "the third call failed fast, without a request");
    assert.equal(m.tm.status.consecutiveFailures, 2);
    clock.set(m.tm.status.retryAt + 1);
    assertToken(await getToken(m.tm));
    assert.equal(tokenRequests(), 3);
    assert.equal(m.tm.status.consecutiveFailures, 0);
  });

  // ---- transport ----

  rec.it("connection reset mid-body: network, mayHaveReachedServer; the next call recovers", async () => {
    await failureRow({ fault: { reset: true }, code: "network", fields: { mayHaveReachedServer: true }, message: /broke while reading/ });
  });

  rec.it("connection refused: network, not reached; once a server listens there, the next call recovers", async () => {
    const port = await freePort(); // nothing listens there yet
    const m = manager({ tokenUrl: `http://127.0.0.1:${port}/token` });
    const err = await rejectionOf(m.tm.getToken());
    assertQBankError(err, "network", { mayHaveReachedServer: false });
    assert.match(err.message, /connection refused/);
    const stub = await startStub(
      (req, res) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(tokenBody({ access_token: plant(), expires_in: 600 }));
      },
      { port },
    );
    try {
      assertToken(await getToken(m.tm));
      assert.equal(stub.requests.length, 1, "one request once the server was up");
      assert.equal(m.tm.status.tokenRequests, 2);
      assertClean(m, [err]);
    } finally {
      await stub.close();
    }
  });

  rec.it("an answer that never comes: timeout after timeoutMs; the next call asks again and recovers", async () => {
    const started = performance.now();
    await failureRow({ fault: { hang: true }, options: { timeoutMs: 300 }, code: "timeout", fields: { mayHaveReachedServer: true } });
    assert.ok(performance.now() - started < 3000, "gave up after timeoutMs");
  });

  rec.it("a body trickling one byte per 20 ms past timeoutMs: timeout (the deadline covers the body); the next call recovers", async () => {
    await failureRow({ fault: { trickle: 20 }, options: { timeoutMs: 400 }, code: "timeout", fields: { mayHaveReachedServer: true } });
  });

  rec.it("a body trickling one byte per 2 ms within timeoutMs: the token, cached", async () => {
    sb.control.addFault({ target: "token", trickle: 2 });
    const m = manager({ timeoutMs: 5000 });
    const t = await getToken(m.tm);
    assertToken(t, { scope: ["balances.read"] });
    await getToken(m.tm);
    assert.equal(tokenRequests(), 1);
  });

  rec.it("a 5 MB body with Content-Length: invalid_response at once (bounded read, 256 KiB); the next call recovers", async () => {
    const body = tokenBody({ access_token: plant(), expires_in: 60, padding: "x".repeat(5 * 1024 * 1024) });
    const started = performance.now();
    const { err } = await failureRow({ fault: { status: 200, body }, code: "invalid_response", fields: { status: 200, mayHaveReachedServer: true } });
    assert.match(err.message, /larger than 262144 bytes/);
    assert.ok(performance.now() - started < 3000, "not read to the end");
  });

  rec.it("a 5 MB chunked body (no Content-Length): invalid_response after at most 256 KiB read, quickly", async () => {
    let written = 0;
    const stub = await startStub((req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      const chunk = Buffer.alloc(64 * 1024, 0x78);
      res.write('{"access_token":"');
      const pump = () => {
        while (written < 5 * 1024 * 1024) {
          written += chunk.length;
          if (!res.write(chunk)) return res.once("drain", pump);
        }
        res.end('","token_type":"Bearer"}');
        return undefined;
      };
      res.on("error", () => {});
      pump();
    });
    try {
      const m = manager({ tokenUrl: `${stub.url}/token` });
      const started = performance.now();
      const err = await rejectionOf(m.tm.getToken());
      assertQBankError(err, "invalid_response", { status: 200, mayHaveReachedServer: true });
      assert.match(err.message, /larger than 262144 bytes/);
      assert.ok(performance.now() - started < 3000, "stopped reading");
      assert.equal(stub.requests.length, 1);
      assertClean(m, [err]);
    } finally {
      await stub.close();
    }
  });

  // ---- 200 answers that are not a token ----

  const BAD_200 = [
    ["malformed JSON (truncated)", () => `{"access_token":"${plant()}","token_type":"Bearer","expi`, /not valid JSON/],
    ["bare NaN for expires_in (not JSON)", () => `{"access_token":"${plant()}","token_type":"Bearer","expires_in":NaN}`, /not valid JSON/],
    ["a JSON array", () => JSON.stringify([{ access_token: plant(), token_type: "Bearer" }]), /an array, not a JSON object/],
    ["a JSON string", () => JSON.stringify(plant()), /not a JSON object/],
    ["JSON null", () => "null", /not a JSON object/],
    ["an empty body", () => "", /empty/],
    ["the same member twice (access_token)", () => `{"access_token":"${plant()}","access_token":"${plant()}","token_type":"Bearer"}`, /not valid JSON/],
    ["access_token missing", () => tokenBody({ expires_in: 60 }), /access_token member is missing/],
    ["access_token null", () => tokenBody({ access_token: null }), /access_token member is missing/],
    ['access_token ""', () => tokenBody({ access_token: "" }), /access_token is empty/],
    ["access_token a number", () => tokenBody({ access_token: 1234567890123 }), /access_token is a number, not a string/],
    ["access_token an object", () => tokenBody({ access_token: { value: plant() } }), /access_token is an object, not a string/],
    ["access_token with a CR", () => tokenBody({ access_token: `${plant()}\rX` }), /characters outside the RFC 6750/],
    ["access_token with a LF", () => tokenBody({ access_token: `${plant()}\nX-Injected: 1` }), /characters outside the RFC 6750/],
    ["access_token with a space", () => tokenBody({ access_token: `${plant()} ${plant()}` }), /characters outside the RFC 6750/],
    ["access_token with a tab", () => tokenBody({ access_token: `${plant()}\t` }), /characters outside the RFC 6750/],
    ["access_token with a double quote", () => tokenBody({ access_token: `${plant()}"` }), /characters outside the RFC 6750/],
    ["access_token with a comma", () => tokenBody({ access_token: `${plant()},x` }), /characters outside the RFC 6750/],
    ["access_token with a non-ASCII letter", () => tokenBody({ access_token: `${plant()}é` }), /characters outside the RFC 6750/],
    ["token_type mac", () => tokenBody({ access_token: plant(), token_type: "mac" }), /token type is unsupported/],
    ['token_type ""', () => tokenBody({ access_token: plant(), token_type: "" }), /token_type is empty, so the token type is unsupported/],
    ["token_type a number", () => tokenBody({ access_token: plant(), token_type: 1 }), /token_type is a number, not a string/],
    ["a 204 with no body", null, /empty/],
  ];
  for (const [what, body, mentions] of BAD_200) {
    rec.it(`a 2xx with ${what}: invalid_response naming it, no token stored; the next call recovers`, async () => {
      const fault = body ? { status: 200, body: body() } : { status: 204 };
      const { err } = await failureRow({ fault, code: "invalid_response", fields: { status: fault.status, mayHaveReachedServer: true } });
      assert.match(err.message, mentions);
    });
  }

  rec.it('a 200 with {"error":"temporarily_unavailable"} and a token: rate_limited, the token not used', async () => {
    await failureRow({
      fault: { status: 200, body: JSON.stringify({ error: "temporarily_unavailable", access_token: plant(), token_type: "Bearer" }) },
      code: "rate_limited",
      fields: { status: 200, oauthError: "temporarily_unavailable" },
    });
  });

  // ---- 2xx answers that are a token: lifetime, type and scope rules ----

  rec.it('token_type "BEARER" (any case) is Bearer: the token, cached', async () => {
    const token = plant();
    await successRow({ body: tokenBody({ access_token: token, token_type: "BEARER", expires_in: 600 }), accessToken: token, lifetimeSeconds: 600 });
  });

  // RFC 6749 §5.1 requires token_type, but the generic bank's document answers without it (and
  // without expires_in); like Go's x/oauth2, a missing or null type is Bearer.
  rec.it("token_type missing, and no expires_in (the generic bank's whole answer): Bearer, the default lifetime, cached", async () => {
    const token = plant();
    await successRow({ body: JSON.stringify({ access_token: token }), accessToken: token, lifetimeSeconds: 3600 });
  });

  rec.it("token_type null: Bearer, cached", async () => {
    const token = plant();
    await successRow({ body: JSON.stringify({ access_token: token, token_type: null, expires_in: 600 }), accessToken: token, lifetimeSeconds: 600 });
  });

  rec.it("a 201 with a token is a token (any 2xx)", async () => {
    const token = plant();
    sb.control.addFault({ target: "token", status: 201, body: tokenBody({ access_token: token, expires_in: 600 }) });
    const m = manager();
    assert.equal((await getToken(m.tm)).accessToken, token);
  });

  rec.it('a 200 with "error": null and a token: the token (a null error member is no error)', async () => {
    const token = plant();
    await successRow({ body: tokenBody({ error: null, access_token: token, expires_in: 600 }), accessToken: token, lifetimeSeconds: 600 });
  });

  const LIFETIMES = [
    ["expires_in missing", {}, 3600, true],
    ["expires_in missing, defaultLifetimeSeconds 120", {}, 120, true, { defaultLifetimeSeconds: 120 }],
    ["expires_in 0 (use once, never cached)", { expires_in: 0 }, 0, false],
    ["expires_in -60 (untrustworthy: the default lifetime)", { expires_in: -60 }, 3600, true],
    ['expires_in "3600" (a string)', { expires_in: "3600" }, 3600, true],
    ["expires_in 1e9 (over ten years: the default lifetime)", { expires_in: 1e9 }, 3600, true],
    ['expires_in "NaN" (a string)', { expires_in: "NaN" }, 3600, true],
    ["expires_in 599.9 (fractional: whole seconds)", { expires_in: 599.9 }, 599, true],
    ["expires_in 0.5 (rounds down to 0: use once)", { expires_in: 0.5 }, 0, false],
    ["expires_in true", { expires_in: true }, 3600, true],
    ["expires_in null", { expires_in: null }, 3600, true],
  ];
  for (const [what, fields, lifetimeSeconds, cached, options] of LIFETIMES) {
    rec.it(`${what}: expiresAt = sent + ${lifetimeSeconds} s, ${cached ? "cached" : "not cached"}`, async () => {
      const token = plant();
      await successRow({ body: tokenBody({ access_token: token, ...fields }), options, accessToken: token, lifetimeSeconds, cached });
    });
  }

  rec.it("expires_in 0: concurrent callers still share the one request (single flight), the next call asks again", async () => {
    sb.control.addFault({ target: "token", status: 200, count: 2, body: tokenBody({ access_token: plant(), expires_in: 0 }) });
    const m = manager();
    const all = await Promise.all(Array.from({ length: 100 }, () => getToken(m.tm)));
    assert.equal(new Set(all.map((t) => t.accessToken)).size, 1, "one token for all 100");
    assert.equal(tokenRequests(), 1, "one request for 100 concurrent callers");
    await getToken(m.tm);
    assert.equal(tokenRequests(), 2);
  });

  rec.it("expires_in 0 on every answer: one request per backoff step, not one per call; token_refresh_failed invalid_response (no token in it); a good token resets the backoff", async () => {
    const dud = plant();
    sb.control.addFault({ target: "token", status: 200, count: 3, body: tokenBody({ access_token: dud, expires_in: 0 }) });
    const m = manager({ fetch: httpFetch });
    // The first two calls each get a token born expired (one such answer is retried at once,
    // like one failure); from then on the manager backs off instead of asking on every call.
    assert.equal((await getToken(m.tm)).accessToken, dud);
    assert.equal((await getToken(m.tm)).accessToken, dud);
    const rejected = [];
    for (let i = 0; i < 20; i += 1) rejected.push(await rejectionOf(m.tm.getToken()));
    await sleep(NO_RETRY_WATCH_MS);
    assert.equal(tokenRequests(), 2, "20 calls in the backoff: no token request");
    for (const err of rejected) {
      assertQBankError(err, "invalid_response");
      assert.ok(err.retryAfterMs > 0, `fails fast with retryAfterMs (${err.retryAfterMs})`);
    }
    assert.equal(m.tm.status.consecutiveFailures, 2);
    assert.ok(m.tm.status.retryAt > Date.now(), "status.retryAt is in the future");
    assert.deepEqual(
      m.events.map((e) => [e.event.type, e.event.code, e.event.background]),
      [
        ["token_requested", undefined, false],
        ["token_acquired", undefined, undefined],
        ["token_refresh_failed", "invalid_response", false],
        ["token_requested", undefined, false],
        ["token_acquired", undefined, undefined],
        ["token_refresh_failed", "invalid_response", false],
      ],
    );
    // At the retry time: one request (the third dud), then the backoff again.
    clock.set(m.tm.status.retryAt + 1);
    assert.equal((await getToken(m.tm)).accessToken, dud);
    assertQBankError(await rejectionOf(m.tm.getToken()), "invalid_response");
    assert.equal(tokenRequests(), 3);
    assert.equal(m.tm.status.consecutiveFailures, 3);
    // The server answers a normal token again: the backoff is over, the token is cached.
    clock.set(m.tm.status.retryAt + 1);
    const good = await getToken(m.tm);
    assertToken(good);
    assert.equal(tokenRequests(), 4);
    assert.equal(m.tm.status.consecutiveFailures, 0);
    assert.equal(m.tm.status.retryAt, undefined);
    assert.equal((await getToken(m.tm)).accessToken, good.accessToken);
    assert.equal(tokenRequests(), 4);
    assertClean(m, rejected);
  });

  rec.it("a JWT with exp and no expires_in: expiresAt is exp", async () => {
    const exp = nowS() + 900;
    const token = jwt({ sub: "c", exp });
    await successRow({ body: tokenBody({ access_token: token }), accessToken: token, expiresAt: exp * 1000 });
  });

  rec.it("a JWT with a fractional exp: expiresAt is exp in ms", async () => {
    const exp = nowS() + 900.25;
    const token = jwt({ exp });
    await successRow({ body: tokenBody({ access_token: token }), accessToken: token, expiresAt: Math.round(exp * 1000) });
  });

  rec.it("a JWT with exp and expires_in: expires_in wins", async () => {
    const token = jwt({ exp: nowS() + 60 });
    await successRow({ body: tokenBody({ access_token: token, expires_in: 1800 }), accessToken: token, lifetimeSeconds: 1800 });
  });

  rec.it("a JWT without exp and no expires_in: the default lifetime", async () => {
    const token = jwt({ sub: "c", iat: nowS() });
    await successRow({ body: tokenBody({ access_token: token }), accessToken: token, lifetimeSeconds: 3600 });
  });

  rec.it('a JWT whose exp is a string ("9999999999"): not a number, the default lifetime', async () => {
    const token = jwt({ exp: "9999999999" });
    await successRow({ body: tokenBody({ access_token: token }), accessToken: token, lifetimeSeconds: 3600 });
  });

  rec.it("a JWT with exp in the past and no expires_in: handed out once (expiresAt = exp), never cached", async () => {
    const exp = nowS() - 120;
    const token = jwt({ exp });
    const { t } = await successRow({ body: tokenBody({ access_token: token }), accessToken: token, expiresAt: exp * 1000, cached: false });
    assert.ok(t.expiresAt < Date.now(), "the caller can see it is already expired");
  });

  rec.it("a malformed JWT (three segments, payload not JSON): an opaque token with the default lifetime", async () => {
    const token = jwt("bm90LWpzb24");
    await successRow({ body: tokenBody({ access_token: token }), accessToken: token, lifetimeSeconds: 3600 });
  });

  rec.it("a malformed JWT (payload not base64url): an opaque token with the default lifetime", async () => {
    const token = `eyJhbGciOiJIUzI1NiJ9.a+b/c.${randomBytes(16).toString("base64url")}`;
    sentTokens.add(token);
    await successRow({ body: tokenBody({ access_token: token }), accessToken: token, lifetimeSeconds: 3600 });
  });

  rec.it("a granted scope narrower than the one asked: token.scope is what was granted", async () => {
    const token = plant();
    await successRow({
      body: tokenBody({ access_token: token, expires_in: 600, scope: "balances.read" }),
      options: { scope: ["balances.read", "transactions.read"] },
      accessToken: token,
      scope: ["balances.read"],
    });
  });

  rec.it("a granted scope given as a JSON array: token.scope is that array", async () => {
    const token = plant();
    await successRow({
      body: tokenBody({ access_token: token, expires_in: 600, scope: ["balances.read", "accounts.read"] }),
      accessToken: token,
      scope: ["balances.read", "accounts.read"],
    });
  });

  rec.it("no scope in the answer: token.scope is the scope asked for", async () => {
    const token = plant();
    await successRow({
      body: tokenBody({ access_token: token, expires_in: 600 }),
      options: { scope: "balances.read transactions.read" },
      accessToken: token,
      scope: ["balances.read", "transactions.read"],
    });
  });

  // ---- redirects: the secret is never re-sent ----

  for (const status of [301, 302, 303, 307, 308]) {
    for (const authMethod of ["client_secret_post", "client_secret_basic"]) {
      rec.it(`a ${status} from the token endpoint (${authMethod}): token_endpoint_error, not followed, the secret sent once; recovers`, async () => {
        const catcher = await startStub((req, res) => {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(tokenBody({ access_token: plant(), expires_in: 60 }));
        });
        try {
          const { err } = await failureRow({
            fault: { status, redirect: `${catcher.url}/token` },
            options: { authMethod },
            code: "token_endpoint_error",
            fields: { status, mayHaveReachedServer: true },
            message: /redirect/,
          });
          assert.equal(catcher.requests.length, 0, "nothing reached the redirect target");
          assert.ok(!err.message.includes(catcher.url), "the message does not repeat the Location");
        } finally {
          await catcher.close();
        }
      });
    }
  }

  // ---- servers that echo the request back: nothing surfaced may hold the secret ----

  rec.it("an error_description echoing the whole form body (client_secret_post): scrubbed from every field", async () => {
    const stub = await startStub((req, res, body) => {
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "invalid_request", error_description: `could not parse: ${body}` }));
    });
    try {
      const m = manager({ tokenUrl: `${stub.url}/token` });
      const err = await rejectionOf(m.tm.getToken());
      assertQBankError(err, "invalid_request", { status: 400, oauthError: "invalid_request" });
      assert.ok(stub.requests[0].body.includes("client_secret="), "the stub really echoed the form body");
      assert.match(err.oauthErrorDescription, /could not parse/);
      assertClean(m, [err]);
    } finally {
      await stub.close();
    }
  });

  rec.it("an error_description echoing the Basic Authorization header: scrubbed", async () => {
    const stub = await startStub((req, res) => {
      res.writeHead(401, { "content-type": "application/json", "www-authenticate": 'Basic realm="x"' });
      res.end(JSON.stringify({ error: "invalid_client", error_description: `rejected ${req.headers.authorization}` }));
    });
    try {
      const m = manager({ tokenUrl: `${stub.url}/token`, authMethod: "client_secret_basic" });
      const err = await rejectionOf(m.tm.getToken());
      assertQBankError(err, "invalid_client", { status: 401 });
      assertClean(m, [err]);
    } finally {
      await stub.close();
    }
  });

  rec.it("the error member itself echoing the client_secret: oauthError must not carry the secret", async () => {
    const stub = await startStub((req, res, body) => {
      const secret = new URLSearchParams(body).get("client_secret");
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: `bad client_secret ${secret}`, error_description: "see error" }));
    });
    try {
      const m = manager({ tokenUrl: `${stub.url}/token` });
      const err = await rejectionOf(m.tm.getToken());
      assertQBankError(err, "token_endpoint_error", { status: 400 });
      assertClean(m, [err]);
    } finally {
      await stub.close();
    }
  });

  rec.it("QPayCredentials.signIn, the error member echoing the password: oauthError must not carry it", async () => {
    const { QPayCredentials } = await import(PKG_URL);
    const password = `Qp-pass-${randomBytes(12).toString("hex")}`;
    const stub = await startStub((req, res, body) => {
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: `invalid password ${new URLSearchParams(body).get("password")}`, error_description: `echo ${body}` }));
    });
    try {
      const err = await rejectionOf(QPayCredentials.signIn({ baseUrl: stub.url, username: "matrix-user", password, allowInsecureHttp: true }));
      assertQBankError(err, err.code, { status: 401 });
      assert.ok(stub.requests[0].body.includes("password="), "the password was sent, and echoed");
      assertNoneContain(errorRenderings(err), { ...secretForms("matrix-user", password), ...secretForms("qpay-console", password) });
    } finally {
      await stub.close();
    }
  });

  rec.it("a plain-text 400 echoing the form body: the message carries none of it", async () => {
    const stub = await startStub((req, res, body) => {
      res.writeHead(400, { "content-type": "text/plain" });
      res.end(`bad request: ${body}`);
    });
    try {
      const m = manager({ tokenUrl: `${stub.url}/token` });
      const err = await rejectionOf(m.tm.getToken());
      assertQBankError(err, "token_endpoint_error", { status: 400 });
      assert.ok(!err.message.includes("bad request:"), "the body is not in the message");
      assertClean(m, [err]);
    } finally {
      await stub.close();
    }
  });

  // ---- a refresh failing while the old token is valid: covered in matrix.time.test.mjs ----

  rec.it("a failure after a token was cached and invalidated: the error, then recovery with a new token", async () => {
    const m = manager();
    const t1 = await getToken(m.tm);
    m.tm.invalidate(t1.accessToken);
    sb.control.addFault({ target: "token", status: 500, body: "" });
    assertQBankError(await rejectionOf(m.tm.getToken()), "token_endpoint_error", { status: 500 });
    const t2 = await getToken(m.tm);
    assert.notEqual(t2.accessToken, t1.accessToken);
    assert.equal(tokenRequests(), 3);
    await eventually(() => failures(m).length === 1, "one failure event");
  });
});
