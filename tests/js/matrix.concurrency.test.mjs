// Reliability matrix (issue 6, item 1), concurrency: 1,000 callers when the token request fails
// (all get the error from exactly one request; the next call retries), callers aborting while
// others wait, close() while requests are in flight, and many managers with different scopes in
// one isolate. Each row asserts the outcome of every caller and the sandbox's request counts.
//
// Figures: target/reliability/fault-matrix/matrix.concurrency.json.
import { describe, before } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setMaxListeners } from "node:events";
import { assertQBankError, assertToken, eventTypes, jwtPayload, rejectionOf, sandboxSuite, sleep } from "./token-support.mjs";
import { caseRecorder, eventually, fakeClock, httpFetch } from "../reliability/support.mjs";

const rec = caseRecorder("fault-matrix", import.meta.url);

const SCOPES = ["balances.read", "transactions.read", "accounts.read", "payments.ach.write"];
const CLIENTS = Array.from({ length: 3 }, (_, i) => ({
  clientId: `matrix-conc-${i}`,
  clientSecret: `qb-matrix-conc-${i}-${randomBytes(12).toString("hex")}`,
  scopes: SCOPES,
}));
const DOC = "a1b2c3d4-e5f6-7890-1234-567890abcde";
const N = 1000;

describe("fault matrix: concurrency", { timeout: 120_000 }, () => {
  const suite = sandboxSuite({
    sandbox: { clients: CLIENTS },
    configure: { jwtTokens: false },
    clock: fakeClock,
    rec,
    managerDefaults: { autoRefresh: false },
  });
  const { manager, makeClient, tokenRequests } = suite;
  let sb;
  let clock;
  before(() => ({ sb, clock } = suite));

  /** N callers at once; every one must reject with `code` (and these fields). */
  async function allReject(tm, code, fields = {}, n = N) {
    const settled = await Promise.allSettled(Array.from({ length: n }, () => tm.getToken()));
    for (const r of settled) {
      assert.equal(r.status, "rejected", "every caller got the error");
      assertQBankError(r.reason, code, fields);
    }
    return settled.map((r) => r.reason);
  }

  for (const [what, fault, code, fields, options] of [
    ["a 500", { status: 500, body: "" }, "token_endpoint_error", { status: 500 }, {}],
    ["invalid_client", { status: 401, body: JSON.stringify({ error: "invalid_client" }) }, "invalid_client", { status: 401 }, {}],
    ["a timeout", { hang: true }, "timeout", {}, { timeoutMs: 300 }],
    ["a connection reset mid-body", { reset: true }, "network", { mayHaveReachedServer: true }, {}],
    ["malformed JSON", { status: 200, body: '{"access_token":' }, "invalid_response", { status: 200 }, {}],
  ]) {
    rec.it(`${N} callers when the token request fails with ${what}: all get ${code} from exactly one request; the next call retries and recovers`, async () => {
      sb.control.addFault({ target: "token", ...fault });
      const m = manager(options);
      await allReject(m.tm, code, fields);
      await sleep(100);
      assert.equal(tokenRequests(), 1, "exactly one token request for all callers");
      assert.equal(m.tm.status.tokenRequests, 1);
      assert.deepEqual(eventTypes(m.events), ["token_requested", "token_refresh_failed"], "one request, one failure");
      const t = await m.tm.getToken();
      assertToken(t);
      assert.equal(tokenRequests(), 2, "the next call retried once");
      const again = await Promise.all(Array.from({ length: N }, () => m.tm.getToken()));
      assert.ok(again.every((x) => x.accessToken === t.accessToken));
      assert.equal(tokenRequests(), 2, "then cached for everyone");
    });
  }

  rec.it(`${N} callers when the token endpoint asks to wait (503, Retry-After: 2): all fail, then callers fail fast without a request until then`, async () => {
    sb.control.addFault({ target: "token", status: 503, headers: { "Retry-After": "2" }, body: "" });
    const m = manager({ fetch: httpFetch });
    const errs = await allReject(m.tm, "token_endpoint_error", { status: 503 });
    assert.ok(errs.every((e) => e.retryAfterMs >= 2000), "every caller is told how long to wait");
    await allReject(m.tm, "token_endpoint_error");
    assert.equal(tokenRequests(), 1, "the second wave failed fast: no request");
    clock.set(m.tm.status.retryAt + 1);
    const got = await Promise.all(Array.from({ length: N }, () => m.tm.getToken()));
    assert.equal(new Set(got.map((t) => t.accessToken)).size, 1);
    assert.equal(tokenRequests(), 2, "one request after the wait, shared by all");
  });

  rec.it(`${N} callers, two failed waves: the third wave fails fast (no request); after the backoff one request serves all`, async () => {
    sb.control.addFault({ target: "token", status: 500, count: 2, body: "" });
    const m = manager({ fetch: httpFetch });
    await allReject(m.tm, "token_endpoint_error");
    await allReject(m.tm, "token_endpoint_error");
    assert.equal(tokenRequests(), 2);
    const third = await allReject(m.tm, "token_endpoint_error");
    assert.ok(third.every((e) => e.retryAfterMs > 0));
    assert.equal(tokenRequests(), 2, "no request in the third wave");
    clock.set(m.tm.status.retryAt + 1);
    await Promise.all(Array.from({ length: N }, () => m.tm.getToken()));
    assert.equal(tokenRequests(), 3);
  });

  rec.it("half of 200 waiting callers abort: they reject with aborted at once, the rest get the token from the one request, which is cached", async () => {
    sb.control.addFault({ target: "token", delayMs: 500 });
    const m = manager();
    const controllers = Array.from({ length: 100 }, () => new AbortController());
    const aborting = controllers.map((ac) => m.tm.getToken({ signal: ac.signal }));
    const staying = Array.from({ length: 100 }, () => m.tm.getToken());
    await sleep(50);
    const t0 = performance.now();
    for (const ac of controllers) ac.abort();
    for (const p of aborting) assertQBankError(await rejectionOf(p), "aborted");
    assert.ok(performance.now() - t0 < 300, "the aborted callers did not wait for the request");
    const got = await Promise.all(staying);
    assert.equal(new Set(got.map((t) => t.accessToken)).size, 1);
    assert.equal(tokenRequests(), 1, "one request, neither cancelled nor repeated");
    await m.tm.getToken();
    assert.equal(tokenRequests(), 1, "cached");
  });

  rec.it("every waiting caller aborts: the shared request still completes and its token is cached", async () => {
    sb.control.addFault({ target: "token", delayMs: 300 });
    const m = manager();
    const controllers = Array.from({ length: 50 }, () => new AbortController());
    const all = controllers.map((ac) => m.tm.getToken({ signal: ac.signal }));
    await sleep(30);
    for (const ac of controllers) ac.abort();
    for (const p of all) assertQBankError(await rejectionOf(p), "aborted");
    await eventually(() => eventTypes(m.events).includes("token_acquired"), "the shared request to complete");
    await m.tm.getToken();
    assert.equal(tokenRequests(), 1, "the token from the abandoned request was kept");
  });

  rec.it("callers aborting while the token request fails: the aborted get aborted, the others the failure; one request", async () => {
    sb.control.addFault({ target: "token", delayMs: 300, status: 500, body: "" });
    const m = manager();
    const ac = new AbortController();
    setMaxListeners(100, ac.signal); // 50 callers share this one signal
    const aborting = Array.from({ length: 50 }, () => m.tm.getToken({ signal: ac.signal }));
    const staying = Array.from({ length: 50 }, () => m.tm.getToken());
    await sleep(30);
    ac.abort();
    for (const p of aborting) assertQBankError(await rejectionOf(p), "aborted");
    for (const p of staying) assertQBankError(await rejectionOf(p), "token_endpoint_error", { status: 500 });
    assert.equal(tokenRequests(), 1);
  });

  rec.it("close() while a token request is in flight: every waiting caller rejects with closed, later calls too, nothing more is sent", async () => {
    sb.control.addFault({ target: "token", delayMs: 300 });
    const m = manager();
    const waiting = Array.from({ length: 50 }, () => m.tm.getToken());
    await sleep(50);
    m.tm.close();
    const t0 = performance.now();
    for (const p of waiting) assertQBankError(await rejectionOf(p), "closed");
    assert.ok(performance.now() - t0 < 2000, "the waiters settled");
    assertQBankError(await rejectionOf(m.tm.getToken()), "closed");
    assertQBankError(await rejectionOf(m.tm.getToken({ forceRefresh: true })), "closed");
    assert.equal(m.tm.status.state, "closed");
    await sleep(100);
    assert.equal(tokenRequests(), 1, "only the request in flight at close()");
    assert.ok(eventTypes(m.events).includes("closed"));
  });

  rec.it("close() while the token request hangs: the waiters settle (closed) by the request timeout, not never", async () => {
    sb.control.addFault({ target: "token", hang: true });
    const m = manager({ timeoutMs: 400 });
    const waiting = Array.from({ length: 20 }, () => m.tm.getToken());
    await sleep(50);
    m.tm.close();
    const t0 = performance.now();
    for (const p of waiting) assertQBankError(await rejectionOf(p), "closed");
    assert.ok(performance.now() - t0 < 1500, `settled ${Math.round(performance.now() - t0)} ms after close()`);
    assert.equal(tokenRequests(), 1);
  });

  rec.it("close() during a background refresh: no refresh timer is re-armed, nothing more is sent", async () => {
    sb.control.setLifetime(2);
    const m = manager({ autoRefresh: true });
    await m.tm.getToken();
    sb.control.addFault({ target: "token", delayMs: 300 });
    await eventually(() => m.events.filter((e) => e.event.type === "token_requested").length === 2, "the timer's background refresh", 5000);
    m.tm.close();
    await sleep(2500); // past the new token's own refresh point, had a timer been armed
    assert.equal(tokenRequests(), 2, "the refresh in flight, and nothing after close()");
    assert.equal(m.tm.status.state, "closed");
  });

  rec.it("QBankClient.close() while getBalance waits for the token: it rejects with closed and sends no API request", async () => {
    sb.control.addFault({ target: "token", delayMs: 300 });
    const bank = makeClient();
    const pending = Array.from({ length: 10 }, () => bank.getBalance(DOC));
    await sleep(50);
    bank.close();
    for (const p of pending) assertQBankError(await rejectionOf(p), "closed");
    assertQBankError(await rejectionOf(bank.getBalance(DOC)), "closed");
    await sleep(100);
    assert.equal(sb.control.counters().apiRequests, 0, "no API request after close()");
  });

  rec.it("QBankClient.close() while an API request is in flight: that call settles (its answer already on the way); later calls reject with closed", async () => {
    const bank = makeClient();
    await bank.getBalance(DOC);
    sb.control.addFault({ target: "api", delayMs: 300 });
    const inFlight = bank.getBalance(DOC);
    await sleep(50);
    bank.close();
    const outcome = await inFlight.then(
      (b) => ({ balance: b }),
      (e) => ({ error: e }),
    );
    if (outcome.error) assertQBankError(outcome.error, "closed");
    else assert.equal(outcome.balance.availableBalance, "1234.56");
    assertQBankError(await rejectionOf(bank.getBalance(DOC)), "closed");
    assert.equal(sb.control.counters().apiRequests, 2, "no API request after close()");
  });

  rec.it("many managers with different scopes and clients in one isolate: one request each, each token with its own scope, failures stay with their manager", async () => {
    sb.control.configure({ jwtTokens: true });
    const subsets = [];
    for (let mask = 1; mask < 1 << SCOPES.length; mask += 1) subsets.push(SCOPES.filter((_, i) => mask & (1 << i)));
    const managers = [];
    for (const client of CLIENTS) {
      for (const [i, scope] of subsets.entries()) {
        const authMethod = i % 2 ? "client_secret_basic" : "client_secret_post";
        managers.push({
          scope,
          client,
          m: manager({ clientId: client.clientId, clientSecret: client.clientSecret, scope, authMethod }),
        });
      }
    }
    const results = await Promise.all(managers.map(({ m }) => Promise.all(Array.from({ length: 20 }, () => m.tm.getToken()))));
    assert.equal(tokenRequests(), managers.length, `one request per manager (${managers.length})`);
    const tokens = new Set();
    results.forEach((ts, i) => {
      const { scope, client } = managers[i];
      assert.equal(new Set(ts.map((t) => t.accessToken)).size, 1, `manager ${i}: its callers share one token`);
      const p = jwtPayload(ts[0].accessToken);
      assert.deepEqual(p.scope.split(" ").sort(), [...scope].sort(), `manager ${i}: the token has exactly its scopes`);
      assert.equal(p.client_id, client.clientId, `manager ${i}: its own client`);
      assert.deepEqual([...ts[0].scope].sort(), [...scope].sort());
      tokens.add(ts[0].accessToken);
    });
    assert.equal(tokens.size, managers.length, "no two managers share a token");

    // One manager's failed refresh touches no other manager.
    const victim = managers[7].m;
    sb.control.addFault({ target: "token", status: 500, body: "" });
    assertQBankError(await rejectionOf(victim.tm.getToken({ forceRefresh: true })), "token_endpoint_error");
    const after = await Promise.all(managers.map(({ m }) => m.tm.getToken()));
    assert.equal(tokenRequests(), managers.length + 1, "only the victim's failed request; everyone else still cached");
    after.forEach((t, i) => {
      if (i !== 7) assert.equal(t.accessToken, results[i][0].accessToken, `manager ${i} kept its token`);
    });
    assert.equal(after[7].accessToken, results[7][0].accessToken, "the victim still had its valid token (force refresh failed, token kept)");
  });
});
