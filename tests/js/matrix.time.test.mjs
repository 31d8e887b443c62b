// Reliability matrix (issue 6, item 1), time: the client's clock jumping forward past expiry and
// backwards, a token whose lifetime is shorter than the expiry margin ("skew"), and a refresh that
// keeps failing while the old token is still valid (callers keep succeeding, the backoff grows,
// Retry-After is respected, then recovery), and invalid_client stopping background refreshes.
//
// The package reads time only through Date.now(), so the cases move a fake Date.now and move the
// sandbox's clock the other way (the server keeps real time). Managers here use a node:http fetch
// (no undici, whose timers also read Date.now) and autoRefresh: false, so every token request is a
// caller's poll and the counts are exact. The rules asserted are those of src/oauth/cache.rs
// ("Clock jumps", "Static stability", "invalid_client is never retried in the background") and
// src/oauth/policy.rs (refresh_at, wait_at, decorrelated backoff within [base, min(cap, 3·previous)]).
//
// Figures: target/reliability/fault-matrix/matrix.time.json.
import { describe, before } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { assertQBankError, rejectionOf, sandboxSuite } from "./token-support.mjs";
import { caseRecorder, eventually, fakeClock, httpFetch, withFixedRandom } from "../reliability/support.mjs";

const rec = caseRecorder("fault-matrix", import.meta.url);
const CLIENT = { clientId: "matrix-time-client", clientSecret: `qb-matrix-time-${randomBytes(12).toString("hex")}`, scopes: ["balances.read"] };
const HOUR = 3_600_000;
const BASE_MS = 1000; // RefreshPolicy::default().backoff_base_ms
const CAP_MS = 60_000; // RefreshPolicy::default().backoff_cap_ms

describe("fault matrix: time", { timeout: 60_000 }, () => {
  const suite = sandboxSuite({
    sandbox: { clients: [CLIENT] },
    clock: fakeClock,
    rec,
    managerDefaults: { autoRefresh: false, fetch: httpFetch },
  });
  const { tokenRequests } = suite;
  const manager = (options) => withFixedRandom(0.5, () => suite.manager(options));
  let sb;
  let clock;
  before(() => ({ sb, clock } = suite));
  const failures = (m) => m.events.filter((e) => e.event.type === "token_refresh_failed").map((e) => e.event);

  rec.it("the clock jumps forward past expiry: the old token is never served, one new request, a fresh lifetime", async () => {
    const m = manager();
    const t1 = await m.tm.getToken();
    assert.equal(tokenRequests(), 1);
    clock.advance(2 * HOUR);
    assert.equal(m.tm.status.state, "expired", "status sees the jump");
    assert.equal(tokenRequests(), 1, "the jump itself sends nothing");
    const sent = Date.now();
    const t2 = await m.tm.getToken();
    assert.notEqual(t2.accessToken, t1.accessToken, "the expired token was not served");
    assert.equal(tokenRequests(), 2);
    assert.ok(Math.abs(t2.expiresAt - (sent + HOUR)) < 1000, "the new token's hour counts from the jumped clock");
    assert.equal((await m.tm.getToken()).accessToken, t2.accessToken, "and is cached");
    assert.equal(tokenRequests(), 2);
  });

  rec.it("the clock jumps backwards: the token keeps exactly the life it had left (no extra hour), then is replaced", async () => {
    const m = manager();
    const t1 = await m.tm.getToken();
    const expires = m.tm.status.expiresAt;
    clock.advance(-HOUR);
    const t = await m.tm.getToken();
    assert.equal(t.accessToken, t1.accessToken, "the same token after the jump back");
    assert.equal(tokenRequests(), 1, "no request for the jump back");
    assert.ok(Math.abs(m.tm.status.expiresAt - (expires - HOUR)) < 50, "expiresAt moved back by the same hour");
    assert.ok(Math.abs(t.expiresAt - (expires - HOUR)) < 50, "the token handed out says so too");
    // Still well before its refresh point: served, nothing sent.
    clock.set(m.tm.status.expiresAt - 20 * 60_000);
    assert.equal((await m.tm.getToken()).accessToken, t1.accessToken);
    assert.equal(tokenRequests(), 1);
    // Past what is left of its life (not an hour later): replaced.
    clock.set(m.tm.status.expiresAt + 1);
    const t2 = await m.tm.getToken();
    assert.notEqual(t2.accessToken, t1.accessToken);
    assert.equal(tokenRequests(), 2);
  });

  rec.it("the clock jumps back an hour and forward again: stored times never move forward, so the token is replaced early, never kept late", async () => {
    const m = manager();
    const t1 = await m.tm.getToken();
    const expires = m.tm.status.expiresAt;
    clock.advance(-HOUR);
    assert.equal((await m.tm.getToken()).accessToken, t1.accessToken);
    clock.advance(HOUR);
    // cache.rs: a jump back moves every stored time back; a jump forward cannot be told from time
    // passing. So the token lost the hour: conservative (one extra request), never a stale token.
    assert.ok(Math.abs(m.tm.status.expiresAt - (expires - HOUR)) < 50, "expiresAt stayed an hour earlier");
    const t2 = await m.tm.getToken();
    assert.notEqual(t2.accessToken, t1.accessToken, "replaced, not served past what the client could vouch for");
    assert.equal(tokenRequests(), 2);
  });

  rec.it("a lifetime (1 s) shorter than the expiry margin (30 s): used, cached for most of its life, then replaced", async () => {
    sb.control.setLifetime(1);
    const m = manager({ expiryMarginSeconds: 30, refreshAheadSeconds: 300 });
    const start = Date.now();
    clock.freeze(start);
    const t1 = await m.tm.getToken();
    assert.ok(Math.abs(t1.expiresAt - (start + 1000)) <= 5, "expiresAt is the 1 s lifetime");
    assert.equal((await m.tm.getToken()).accessToken, t1.accessToken, "not treated as already expired");
    clock.freeze(start + 500);
    assert.equal((await m.tm.getToken()).accessToken, t1.accessToken, "still served half-way");
    assert.equal(tokenRequests(), 1, "no refresh loop");
    clock.freeze(start + 1001);
    const t2 = await m.tm.getToken();
    assert.notEqual(t2.accessToken, t1.accessToken);
    assert.equal(tokenRequests(), 2, "one request once it expired");
  });

  rec.it("a refresh failing while the old token is valid: callers keep the old token, the backoff grows, Retry-After is respected, then recovery", async () => {
    sb.control.setLifetime(86_400);
    const m = manager({ refreshAheadSeconds: 3600 });
    const t1 = await m.tm.getToken();
    const E = t1.expiresAt;
    sb.control.addFault({ target: "token", status: 500, count: 100, body: "" });

    // Into the refresh window (refresh_at ≤ E − 3600 s), well before the wait point (E − 30 s).
    clock.freeze(E - 3000_000);
    let requests = 1;
    const delays = [];
    for (let n = 1; n <= 10; n += 1) {
      const got = await m.tm.getToken();
      assert.equal(got.accessToken, t1.accessToken, `failure ${n}: the caller got the old token at once`);
      requests += 1;
      await eventually(() => failures(m).length === n, `background failure ${n}`);
      assert.equal(tokenRequests(), requests, `failure ${n}: exactly one background request`);
      const ev = failures(m).at(-1);
      assert.equal(ev.code, "token_endpoint_error");
      assert.equal(ev.background, true, "no caller waited for it");
      const s = m.tm.status;
      assert.equal(s.consecutiveFailures, n);
      const delay = s.retryAt - Date.now();
      delays.push(delay);
      const ceiling = n === 1 ? 3 * BASE_MS : Math.min(CAP_MS, 3 * delays[n - 2]);
      assert.ok(delay >= BASE_MS && delay <= ceiling + 1, `failure ${n}: backoff ${delay} ms within [${BASE_MS}, ${ceiling}]`);
      // Until retryAt: the old token, and no request.
      clock.freeze(s.retryAt - 1);
      for (let i = 0; i < 5; i += 1) assert.equal((await m.tm.getToken()).accessToken, t1.accessToken);
      assert.equal(tokenRequests(), requests, `failure ${n}: nothing sent during the backoff`);
      assert.equal(m.tm.status.state, "valid");
      clock.freeze(s.retryAt);
    }
    rec.note = { backoffDelaysMs: delays };
    assert.ok(Math.max(...delays) >= 4 * BASE_MS, `the backoff grew (delays ${delays.join(", ")} ms)`);
    assert.ok(delays.at(-1) > delays[0], `the last delay is longer than the first (${delays.join(", ")} ms)`);

    // A Retry-After far beyond our own backoff is respected.
    sb.control.clearFaults();
    sb.control.addFault({ target: "token", status: 503, headers: { "Retry-After": "600" }, body: "" });
    assert.equal((await m.tm.getToken()).accessToken, t1.accessToken);
    requests += 1;
    await eventually(() => failures(m).length === 11, "the 503 with Retry-After");
    assert.equal(failures(m).at(-1).retryAfterMs, 600_000, "the event carries the server's Retry-After");
    const waitFrom = Date.now(); // frozen
    assert.ok(m.tm.status.retryAt - waitFrom >= 600_000 - 5, "no retry before Retry-After");
    clock.freeze(waitFrom + 599_000);
    assert.equal((await m.tm.getToken()).accessToken, t1.accessToken);
    assert.equal(tokenRequests(), requests, "nothing sent 599 s into a 600 s Retry-After");

    // Recovery.
    clock.freeze(m.tm.status.retryAt);
    assert.equal((await m.tm.getToken()).accessToken, t1.accessToken, "the old token while the refresh runs");
    requests += 1;
    await eventually(() => m.events.some((e) => e.event.type === "token_acquired" && e.event.tokenRequests === requests), "the refresh to succeed");
    const t2 = await m.tm.getToken();
    assert.notEqual(t2.accessToken, t1.accessToken, "the new token after recovery");
    assert.equal(tokenRequests(), requests);
    assert.equal(m.tm.status.consecutiveFailures, 0);
    assert.equal(m.tm.status.retryAt, undefined);
  });

  rec.it("past the wait point with the token endpoint failing: callers wait, get the old token while it lives, then the error", async () => {
    const m = manager();
    const t1 = await m.tm.getToken();
    const E = t1.expiresAt;
    sb.control.addFault({ target: "token", status: 500, count: 100, body: "" });
    clock.set(E - 10_000); // inside the last 30 s (the wait point): callers wait for a request
    assert.equal((await m.tm.getToken()).accessToken, t1.accessToken, "the failed request's waiters get the still-valid token");
    assert.equal(tokenRequests(), 2);
    assert.equal((await m.tm.getToken()).accessToken, t1.accessToken, "again (a second failure)");
    assert.equal(tokenRequests(), 3);
    assert.equal((await m.tm.getToken()).accessToken, t1.accessToken, "failing fast now, but the token is still valid");
    assert.equal(tokenRequests(), 3, "no request while failing fast");
    clock.set(E + 1);
    const err = await rejectionOf(m.tm.getToken());
    assertQBankError(err, "token_endpoint_error");
    assert.ok(err.retryAfterMs > 0, "expired, failing fast: the error says when the next attempt is");
  });

  rec.it("invalid_client on a background refresh: no more background refreshes; the old token is served; a caller's request at the wait point recovers", async () => {
    sb.control.setLifetime(86_400);
    const m = manager({ refreshAheadSeconds: 3600 });
    const t1 = await m.tm.getToken();
    const E = t1.expiresAt;
    sb.control.addFault({ target: "token", status: 401, headers: { "WWW-Authenticate": 'Basic realm="qbank"' }, body: JSON.stringify({ error: "invalid_client" }) });
    clock.set(E - 3000_000);
    assert.equal((await m.tm.getToken()).accessToken, t1.accessToken);
    await eventually(() => failures(m).length === 1, "the background invalid_client");
    assert.equal(failures(m)[0].code, "invalid_client");
    assert.equal(tokenRequests(), 2);
    for (const later of [10 * 60_000, 30 * 60_000, 45 * 60_000]) {
      clock.set(E - 3000_000 + later);
      assert.equal((await m.tm.getToken()).accessToken, t1.accessToken);
    }
    assert.equal(tokenRequests(), 2, "invalid_client is never retried in the background");
    clock.set(E - 10_000); // the wait point: a caller's own poll asks again
    const t2 = await m.tm.getToken();
    assert.notEqual(t2.accessToken, t1.accessToken);
    assert.equal(tokenRequests(), 3);
  });

  rec.it("status.refreshAt: the token's refresh point, the retry time while backing off, none while a request is in flight or after invalid_client", async () => {
    sb.control.setLifetime(86_400);
    const m = manager({ refreshAheadSeconds: 3600 });
    const t1 = await m.tm.getToken();
    const E = t1.expiresAt;
    const s = m.tm.status;
    // withFixedRandom(0.5): the jitter is half of 5 % of the 3600 s window, earlier.
    assert.ok(s.refreshAt <= E - 3600_000 && s.refreshAt >= E - 3600_000 - 180_000, `refreshAt ${E - s.refreshAt} ms before expiry`);
    clock.freeze(s.refreshAt - 1);
    await m.tm.getToken();
    assert.equal(tokenRequests(), 1, "nothing is due before refreshAt");
    sb.control.addFault({ target: "token", status: 500, count: 1, body: "", delayMs: 300 });
    clock.freeze(s.refreshAt);
    assert.equal((await m.tm.getToken()).accessToken, t1.accessToken);
    assert.equal(m.tm.status.state, "refreshing");
    assert.equal(m.tm.status.refreshAt, undefined, "none while the request is in flight");
    await eventually(() => failures(m).length === 1, "the background failure");
    const b = m.tm.status;
    assert.ok(b.retryAt > Date.now());
    assert.equal(b.refreshAt, b.retryAt, "backing off: the retry time");
    sb.control.addFault({ target: "token", status: 401, headers: { "WWW-Authenticate": 'Basic realm="qbank"' }, body: JSON.stringify({ error: "invalid_client" }) });
    clock.freeze(b.retryAt);
    assert.equal((await m.tm.getToken()).accessToken, t1.accessToken);
    await eventually(() => failures(m).length === 2, "the background invalid_client");
    assert.equal(m.tm.status.state, "valid");
    assert.equal(m.tm.status.refreshAt, undefined, "after invalid_client nothing is scheduled");
  });
});
