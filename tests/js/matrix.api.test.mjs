// Reliability matrix (issue 6, item 1), QBank API side: QBankClient against the sandbox. Each row
// asserts the exact outcome (code and fields, token and API requests the sandbox saw, whether a
// retry happened) and then that the next call recovers with exactly one more API request and no
// token request. client.test.mjs already proves most failures' codes; the rows here add what it
// does not: 401 without (or with another) WWW-Authenticate, a late 401 for an old token, a 401
// whose refresh fails, a failing token endpoint under getBalance, challenges and problem bodies
// that echo the token, and recovery after every API failure.
//
// Figures: target/reliability/fault-matrix/matrix.api.json.
import { describe, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { assertNoneContain, assertQBankError, assertSandboxCounts, errorRenderings, rejectionOf, sandboxSuite, secretForms, settledCounters, sleep, startOtherOrigin, tokenForms } from "./token-support.mjs";
import { caseRecorder, startStub } from "../reliability/support.mjs";

const rec = caseRecorder("fault-matrix", import.meta.url);

const CLIENT = {
  clientId: "matrix-api-client",
  clientSecret: `qb-matrix-api-secret-${randomBytes(12).toString("hex")}`,
  scopes: ["balances.read", "transactions.read"],
};
const DOC = "a1b2c3d4-e5f6-7890-1234-567890abcde";
const DOC_BALANCE = { accountId: DOC, availableBalance: "1234.56", ledgerBalance: "1300.00", currency: "USD", asOf: "2026-11-20" };
const bearer = (params) => `Bearer realm="qbank"${params ? `, ${params}` : ""}`;

const issued = new Set();
const forbidden = () => ({ ...tokenForms(issued), ...secretForms(CLIENT.clientId, CLIENT.clientSecret) });

// Node's entry sends through node:http(s) unless a client has a `fetch` option; every row runs
// on both transports.
const TRANSPORTS = [
  ["node:http", {}],
  ["fetch", { fetch: (url, init) => fetch(url, init) }],
];

for (const [transport, transportOptions] of TRANSPORTS) describe(`fault matrix: QBank API (${transport})`, { timeout: 120_000 }, () => {
  const suite = sandboxSuite({ sandbox: { clients: [CLIENT] }, rec, clientDefaults: { autoRefresh: false, ...transportOptions } });
  const { makeClient } = suite;
  let sb;
  let other;
  before(async () => {
    sb = suite.sb;
    other = await startOtherOrigin(`{"account_id":"${DOC}","available_balance":"666.00","ledger_balance":"666.00"}`);
  });
  beforeEach(() => {
    other.seen.length = 0;
  });
  after(async () => {
    await other?.close();
  });

  const currentToken = async (bank) => {
    const t = (await bank.tokens.getToken()).accessToken;
    issued.add(t);
    return t;
  };
  /** A client holding a token (one balance read), with the sandbox's counters and faults cleared. */
  async function warmClient(options) {
    const bank = makeClient(options);
    assert.deepEqual(pick(await bank.getBalance(DOC)), DOC_BALANCE);
    await currentToken(bank);
    await settled();
    sb.control.reset();
    return bank;
  }
  const pick = (b) => {
    const { raw, ...rest } = b;
    return rest;
  };
  const settled = (requireStatuses) => settledCounters(sb, requireStatuses);
  const assertCounts = (expected, requireStatuses) => assertSandboxCounts(sb, expected, requireStatuses);
  const assertClean = (err) =>
    assertNoneContain({ ...errorRenderings(err), "JSON.stringify(err.problem)": JSON.stringify(err.problem), "err.requiredScope": err.requiredScope }, forbidden());
  const apiFault = (f) => sb.control.addFault({ target: "api", ...f });

  /** The next call recovers: the balance, with exactly one more API request and no token request. */
  async function assertRecovers(bank, { tokenRequests, apiRequests }, requireStatuses = true) {
    await settled(requireStatuses);
    assert.deepEqual(pick(await bank.getBalance(DOC)), DOC_BALANCE, "the next call gets the balance");
    const c = sb.control.counters();
    assert.equal(c.tokenRequests, tokenRequests, "no token request for the next call");
    assert.equal(c.apiRequests, apiRequests + 1, "exactly one API request for the next call");
  }

  // ---- 401 and the refresh-and-retry-once rule ----

  for (const [what, headers] of [
    ["without WWW-Authenticate", {}],
    ["with a bare Bearer challenge (no error)", { "WWW-Authenticate": bearer() }],
    ["with a Basic challenge", { "WWW-Authenticate": 'Basic realm="qbank"' }],
  ]) {
    rec.it(`a 401 ${what}: one refresh and one retry, then the balance; the next call uses the new token`, async () => {
      const bank = await warmClient();
      const before = await currentToken(bank);
      apiFault({ status: 401, headers, body: "" });
      assert.deepEqual(pick(await bank.getBalance(DOC)), DOC_BALANCE);
      await assertCounts({ tokenRequests: 1, apiRequests: 2, apiByStatus: { 401: 1, 200: 1 } });
      assert.notEqual(await currentToken(bank), before, "the refused token was replaced");
      await assertRecovers(bank, { tokenRequests: 1, apiRequests: 2 });
    });
  }

  rec.it("a late 401 for an old token (a newer one already cached) does not refresh again: one retry with the newer token", async () => {
    const bank = await warmClient();
    const old = await currentToken(bank);
    apiFault({ status: 401, delayMs: 400, headers: { "WWW-Authenticate": bearer('error="invalid_token"') }, body: "" });
    const pending = bank.getBalance(DOC);
    await sleep(100);
    const newer = (await bank.tokens.getToken({ forceRefresh: true })).accessToken;
    issued.add(newer);
    assert.notEqual(newer, old);
    assert.deepEqual(pick(await pending), DOC_BALANCE);
    await assertCounts({ tokenRequests: 1, apiRequests: 2, apiByStatus: { 401: 1, 200: 1 } });
    assert.equal(await currentToken(bank), newer, "the newer token was kept");
    await assertRecovers(bank, { tokenRequests: 1, apiRequests: 2 });
  });

  for (const [what, tokenFault, code] of [
    ["a 500", { status: 500, body: "" }, "token_endpoint_error"],
    ["invalid_client", { status: 401, body: JSON.stringify({ error: "invalid_client" }) }, "invalid_client"],
    ["a timeout", { hang: true }, "timeout"],
  ]) {
    rec.it(`a 401 whose refresh fails with ${what}: ${code}, no second API request; the next call gets a token and the balance`, async () => {
      const bank = await warmClient({ timeoutMs: 400 });
      apiFault({ status: 401, headers: { "WWW-Authenticate": bearer('error="invalid_token"') }, body: "" });
      sb.control.addFault({ target: "token", ...tokenFault });
      const err = await rejectionOf(bank.getBalance(DOC));
      assertQBankError(err, code);
      await assertCounts({ tokenRequests: 1, apiRequests: 1, apiByStatus: { 401: 1 } });
      assertClean(err);
      assert.deepEqual(pick(await bank.getBalance(DOC)), DOC_BALANCE);
      await assertCounts({ tokenRequests: 2, apiRequests: 2, apiByStatus: { 401: 1, 200: 1 } });
    });
  }

  rec.it("a 401 twice whose error_description echoes the token sent: unauthorized after one refresh, the token scrubbed", async () => {
    const stub = await startStub((req, res) => {
      const token = String(req.headers.authorization ?? "").replace(/^Bearer /i, "");
      issued.add(token);
      res.writeHead(401, { "WWW-Authenticate": bearer(`error="invalid_token", error_description="token ${token} was revoked"`) });
      res.end();
    });
    try {
      const bank = makeClient({ environment: { tokenUrl: sb.tokenUrl, apiBaseUrl: stub.url } });
      const err = await rejectionOf(bank.getBalance(DOC));
      assertQBankError(err, "unauthorized", { status: 401 });
      assert.match(err.message, /was revoked/, "the bank's description is kept");
      assert.equal(stub.requests.length, 2, "one retry");
      assert.equal(sb.control.counters().tokenRequests, 2, "the first token and one refresh");
      assertClean(err);
    } finally {
      await stub.close();
    }
  });

  rec.it("a 403 challenge whose scope parameter echoes the token in use: insufficient_scope, requiredScope without the token", async () => {
    const bank = await warmClient();
    const token = await currentToken(bank);
    apiFault({ status: 403, headers: { "WWW-Authenticate": bearer(`error="insufficient_scope", scope="balances.read ${token}"`) }, body: "" });
    const err = await rejectionOf(bank.getBalance(DOC));
    assertQBankError(err, "insufficient_scope", { status: 403 });
    assertClean(err);
    await assertRecovers(bank, { tokenRequests: 0, apiRequests: 1 });
  });

  rec.it("a problem body echoing the Authorization header: the token scrubbed from the message and the problem", async () => {
    const bank = await warmClient();
    const token = await currentToken(bank);
    apiFault({
      status: 422,
      headers: { "Content-Type": "application/problem+json" },
      body: JSON.stringify({ title: "Unprocessable", status: 422, detail: `request had Authorization: Bearer ${token}`, echo: { authorization: `Bearer ${token}` } }),
    });
    const err = await rejectionOf(bank.getBalance(DOC));
    assertQBankError(err, "api_error", { status: 422 });
    assertClean(err);
    await assertRecovers(bank, { tokenRequests: 0, apiRequests: 1 });
  });

  // ---- the token endpoint failing under getBalance ----

  for (const [what, tokenFault, code, options] of [
    ["503", { status: 503, body: "" }, "token_endpoint_error", {}],
    ["invalid_client", { status: 401, body: JSON.stringify({ error: "invalid_client" }) }, "invalid_client", {}],
    ["a timeout", { hang: true }, "timeout", { timeoutMs: 300 }],
    ["a 5 MB body", { status: 200, body: `{"access_token":"${"y".repeat(5 * 1024 * 1024)}","token_type":"Bearer"}` }, "invalid_response", {}],
  ]) {
    rec.it(`the token endpoint failing with ${what} before the first API call: ${code}, no API request; the next call recovers`, async () => {
      sb.control.addFault({ target: "token", ...tokenFault });
      const bank = makeClient(options);
      const err = await rejectionOf(bank.getBalance(DOC));
      assertQBankError(err, code);
      await assertCounts({ tokenRequests: 1, apiRequests: 0 });
      assertClean(err);
      assert.deepEqual(pick(await bank.getBalance(DOC)), DOC_BALANCE);
      await assertCounts({ tokenRequests: 2, apiRequests: 1, apiByStatus: { 200: 1 } });
    });
  }

  rec.it("100 concurrent getBalance while the token endpoint fails: all get the error from one token request, no API request; then all recover", async () => {
    sb.control.addFault({ target: "token", status: 500, body: "" });
    const bank = makeClient();
    const results = await Promise.allSettled(Array.from({ length: 100 }, () => bank.getBalance(DOC)));
    for (const r of results) {
      assert.equal(r.status, "rejected");
      assertQBankError(r.reason, "token_endpoint_error", { status: 500 });
    }
    await assertCounts({ tokenRequests: 1, apiRequests: 0 });
    const ok = await Promise.all(Array.from({ length: 100 }, () => bank.getBalance(DOC)));
    for (const b of ok) assert.deepEqual(pick(b), DOC_BALANCE);
    await assertCounts({ tokenRequests: 2, apiRequests: 100, apiByStatus: { 200: 100 } });
  });

  // ---- every other API failure: its outcome, then recovery ----

  const problem = (status, detail) =>
    JSON.stringify({ type: "https://api.qbankconnect.com/problems/x", title: `case ${status}`, status, detail, instance: `/v1/balances/${DOC}` });
  const amount = (v) => `{"account_id":"${DOC}","available_balance":${v},"ledger_balance":"1.00","currency":"USD"}`;
  const API_ROWS = [
    ["403 insufficient_scope", { status: 403, headers: { "WWW-Authenticate": bearer('error="insufficient_scope", scope="balances.read"') }, body: "" }, "insufficient_scope", { status: 403, requiredScope: "balances.read" }, 1],
    ["403 without a challenge", { status: 403, body: "" }, "forbidden", { status: 403 }, 1],
    ["404 with a problem body", { status: 404, headers: { "Content-Type": "application/problem+json" }, body: problem(404, "no such account") }, "not_found", { status: 404 }, 1],
    ["409 with an RFC 7807 body", { status: 409, headers: { "Content-Type": "application/problem+json" }, body: problem(409, "frozen") }, "api_error", { status: 409 }, 1],
    ["422 with an RFC 7807 body", { status: 422, headers: { "Content-Type": "application/problem+json" }, body: problem(422, "bad id") }, "api_error", { status: 422 }, 1],
    ["500", { status: 500, body: "Internal Server Error" }, "server_error", { status: 500 }, 1],
    ["502 with an HTML body", { status: 502, body: "<html><body>Bad Gateway</body></html>" }, "server_error", { status: 502 }, 1],
    ["503 three times (Retry-After: 0)", { status: 503, count: 3, headers: { "Retry-After": "0" }, body: "" }, "server_error", { status: 503, retryAfterMs: 0 }, 3],
    ["429 three times (Retry-After: 0)", { status: 429, count: 3, headers: { "Retry-After": "0" }, body: "" }, "rate_limited", { status: 429, retryAfterMs: 0 }, 3],
    ["429 with Retry-After: 120 (not waited for)", { status: 429, headers: { "Retry-After": "120" }, body: "" }, "rate_limited", { status: 429, retryAfterMs: 120_000 }, 1],
    ["503 with Retry-After an hour ahead as an HTTP date", { status: 503, headers: { "Retry-After": new Date(Date.now() + 3_600_000).toUTCString() }, body: "" }, "server_error", { status: 503 }, 1],
    ["a body cut mid-way (connection reset)", { reset: true }, ["network", "invalid_response"], { mayHaveReachedServer: true }, 1],
    ["a body that never comes (timeout)", { hang: true }, "timeout", { mayHaveReachedServer: true }, 1, { timeoutMs: 300 }],
    ["malformed JSON", { status: 200, body: `{"account_id":"${DOC}",` }, "invalid_response", { mayHaveReachedServer: true }, 1],
    ["a truncated but well-formed prefix (no ledger_balance)", { status: 200, body: `{"account_id":"${DOC}","available_balance":"1.00"}` }, "invalid_response", { mayHaveReachedServer: true }, 1],
    ["amount null", { status: 200, body: amount("null") }, "invalid_response", {}, 1],
    ['amount ""', { status: 200, body: amount('""') }, "invalid_response", {}, 1],
    ['amount "1,234.56"', { status: 200, body: amount('"1,234.56"') }, "invalid_response", {}, 1],
    ['amount "NaN"', { status: 200, body: amount('"NaN"') }, "invalid_response", {}, 1],
    ["amount 1e400", { status: 200, body: amount("1e400") }, "invalid_response", {}, 1],
  ];
  for (const [what, fault, code, fields, tries, options] of API_ROWS) {
    rec.it(`API ${what}: ${[code].flat().join(" or ")} after ${tries} request(s), no token request; the next call recovers`, async () => {
      const bank = await warmClient(options);
      apiFault(fault);
      const err = await rejectionOf(bank.getBalance(DOC));
      const codes = [code].flat();
      assert.ok(codes.includes(err?.code), `code ${err?.code} (message: ${err?.message})`);
      assertQBankError(err, err.code, fields);
      const counted = !fault.hang && !fault.reset;
      await assertCounts({ tokenRequests: 0, apiRequests: tries }, counted);
      assertClean(err);
      if (fault.status >= 500 && /html/i.test(fault.body ?? "")) assert.ok(!/<html/i.test(err.message), "no HTML in the message");
      await assertRecovers(bank, { tokenRequests: 0, apiRequests: tries }, counted);
    });
  }

  for (const status of [302, 307, 308]) {
    rec.it(`API ${status} to another origin: api_error, that origin never sees a request; the next call recovers`, async () => {
      const bank = await warmClient();
      apiFault({ status, redirect: `${other.url}/v1/balances/${DOC}` });
      const err = await rejectionOf(bank.getBalance(DOC));
      assertQBankError(err, "api_error", { status, mayHaveReachedServer: true });
      assert.deepEqual(other.seen, [], "the other origin saw nothing (no token followed the redirect)");
      await assertCounts({ tokenRequests: 0, apiRequests: 1 });
      await assertRecovers(bank, { tokenRequests: 0, apiRequests: 1 });
    });
  }
});
