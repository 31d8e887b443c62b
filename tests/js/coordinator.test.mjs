// Issue 19, "Must show": the Durable Object token coordinator (TokenCoordinator,
// durableObjectStore) in real local workerd (node_modules/.bin/workerd).
//
// One workerd process per test (./coordinator/workerd.mjs): service `coord` defines the
// TokenCoordinator namespace (storage in memory, or on disk for the restart test); services `a`,
// `b`, `c`, each its own isolate, bind it by serviceName and each holds module-level QBankClients
// with `store: durableObjectStore(env.QBANK_TOKENS)`, built on the first request as a user's Worker
// builds its client. Each call answers what the isolate saw (ok or the error code, how long
// getBalance took inside the isolate, the token source, the isolate's own token requests); /state
// gives an isolate's events, /object the object's status(). The token endpoint is the sandbox
// (src/testing/sandbox.mjs), behind harness.mjs's tokenTap (which sees each token request as it
// arrives and keeps every token issued, for the storage scan), with a fresh client per test.
//
// - Fan-in: 300 concurrent cold calls spread over a, b, c: 1 token request, 0 failures.
// - Tokens that expire under load: 5 s tokens, a slow token endpoint (1 s), 30 s of steady
//   traffic, then no traffic until every isolate's token has expired: token requests ≈ one per
//   2.5 s (the object's alarm at expiresAt − 2·W, W = min(300 s, lifetime/4)), no call ever takes
//   as long as a token request (also after the quiet spell), no isolate makes one, no 401.
// - Restart: on-disk storage; after a workerd restart no new token request; no token, secret or
//   client id in the clear in any storage file's name or bytes (raw, or any base64/base64url run
//   decoded).
// - Faults: objects that throw, cannot start, are unreachable from the stub, never answer, answer
//   garbage or "no token": every call succeeds through the isolates' own single flight (one
//   token request per isolate). A refresh failing under a valid token: invisible to callers; and
//   under the bank's Retry-After no isolate goes around the object's backoff.
// - Cancellation: the call that wakes a cold object is aborted by its client mid-flight (local
//   workerd does not notice a disconnect while a request runs, so the Worker ends the request as
//   Cloudflare does: see coordinator/workers.mjs); the other calls succeed on that object's one
//   token request.
// - After a 401 (the bank revoked the token): one new token request for every isolate (forget).
// Every test also checks that workerd's output holds no token, secret or client id.
//
// COORD_BREAK=no-coordinator | no-alarm | no-forget | in-memory (see coordinator/workerd.mjs)
// runs the same tests against a broken set-up; the tests each of them must fail then fail.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSandbox } from "../../src/testing/sandbox.mjs";
import { eventually } from "../reliability/support.mjs";
import { listFiles, tokenTap } from "./harness.mjs";
import { plaintextIn } from "./fleet/fleet.mjs";
import { SERVICES, filesText, startCoordinators, stopAll } from "./coordinator/workerd.mjs";

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  await stopAll();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Polls the async `probe` until it answers something truthy (at most `timeoutMs`); returns that. */
async function until(probe, what, timeoutMs = 10_000) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    assert.ok(performance.now() < deadline, `timed out waiting for ${what}`);
    await sleep(20);
  }
}
const percentile = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];

/**
 * A sandbox with a client of its own (so the leak scanner learns its secret), a tap in front of
 * its token endpoint (`direct`: not used, the Workers ask the sandbox itself; the tap passes on no
 * header but the content type), and workerd serving coord, a, b, c for that client.
 */
async function setup(name, { lifetime = 3600, disk, options, direct = false } = {}) {
  const client = { clientId: `coord-${name}-${randomBytes(3).toString("hex")}`, clientSecret: `qb-coord-${name}-${randomBytes(12).toString("hex")}`, scopes: ["balances.read"] };
  const sb = await startSandbox({ clients: [client], tokenLifetimeSeconds: lifetime });
  cleanups.push(() => sb.close());
  const tap = await tokenTap(sb);
  cleanups.push(() => tap.close());
  const w = await startCoordinators({ settings: { tokenUrl: direct ? sb.tokenUrl : tap.tokenUrl, apiBaseUrl: sb.apiBaseUrl, clientId: client.clientId, clientSecret: client.clientSecret, options }, disk });
  cleanups.push(() => w.stop());
  /** Asserts that workerd's output (the Workers' and the objects' console, errors) holds no token, secret or client id. */
  const quiet = () => assert.deepEqual(plaintextIn(w.output(), secrets(client, tap)), [], "workerd's output holds no token, secret or client id");
  return { client, sb, tap, w, quiet, tokenRequests: () => sb.control.counters().tokenRequests };
}

/** The values nothing may show in the clear: the client's secret and id, every token issued. */
const secrets = (client, tap) => ({ clientSecret: client.clientSecret, clientId: client.clientId, ...Object.fromEntries(tap.tokens.map((t, i) => [`token ${i + 1}`, t])) });

/** `n` concurrent calls, spread over a, b, c in turn. */
const spread = (w, n, query) => Promise.all(Array.from({ length: n }, (_, i) => w.call(SERVICES[i % SERVICES.length], query)));

/** Calls a, b, c in turn, one every `everyMs`, for `forMs`; resolves to every answer. */
async function steadyTraffic(w, { forMs, everyMs = 100 }) {
  const calls = [];
  const start = performance.now();
  for (let i = 0; performance.now() - start < forMs; i++) {
    const sent = performance.now();
    calls.push(w.call(SERVICES[i % SERVICES.length]).then((r) => ({ ...r, outsideMs: performance.now() - sent })));
    await sleep(everyMs);
  }
  return Promise.all(calls);
}

/** Each isolate's status and event counts. */
async function isolates(w, ns) {
  return Object.fromEntries(await Promise.all(SERVICES.map(async (s) => [s, await w.state(s, ns)])));
}

/** What failed, for an assertion message: the first few failures, no token and no secret in them. */
const failures = (results) => results.filter((r) => !r.ok);
const describeFailures = (results) => JSON.stringify(failures(results).slice(0, 5));

test("fan-in: 300 concurrent cold calls over 3 Worker isolates sharing one TokenCoordinator namespace make 1 token request, 0 failures", { timeout: 60_000 }, async () => {
  const { sb, tap, w, quiet, tokenRequests } = await setup("fanin");
  // The token request takes 300 ms: every call arrives while it is in flight.
  sb.control.addFault({ target: "token", delayMs: 300, count: 1 });
  const results = await spread(w, 300);
  const byService = Object.fromEntries(SERVICES.map((s) => [s, results.filter((r) => r.service === s && r.ok).length]));
  const seen = await isolates(w);
  const object = await w.object("a");
  console.log(`fan-in: ${results.length} calls (${JSON.stringify(byService)} ok per isolate), ${failures(results).length} failed, token requests ${tokenRequests()} (tap: ${tap.arrivals()}), object: ${JSON.stringify(object.status)}`);
  assert.equal(failures(results).length, 0, describeFailures(results));
  assert.deepEqual(byService, { a: 100, b: 100, c: 100 });
  assert.equal(tokenRequests(), 1, "token requests at the token endpoint");
  assert.equal(tap.arrivals(), 1, "token requests that reached the endpoint");
  for (const s of SERVICES) {
    assert.equal(seen[s].status.tokenRequests, 0, `${s} made no token request of its own`);
    assert.equal(seen[s].status.tokenSource, "coordinator", `${s}'s token came from the object`);
    assert.equal(seen[s].counts["token_acquired:coordinator"], 1, `${s}: one token from the object (${JSON.stringify(seen[s].counts)})`);
  }
  assert.equal(object.status.tokenRequests, 1, "the object made the one token request");
  assert.equal(object.names, 1, "one object for the credential set");
  assert.equal(object.named, true, "named after the entry name (qbank-connect:v1: and an HMAC), not the client id");
  // Its alarm is set at expiresAt − 2·W (W = min(300 s, lifetime / 4) = 300 s; the object's own
  // refresh point carries the manager's jitter, up to 5 % of W, twice), ahead of every isolate's
  // refresh point (expiresAt − W·(1 + up to 5 %)).
  const W = 300_000;
  const ahead = object.status.expiresAt - object.status.alarmAt;
  assert.ok(ahead >= 2 * W && ahead <= 2 * W * 1.05, `the alarm is ${ahead} ms before expiry`);
  quiet();
});

test("tokens that expire under load: 5 s tokens, 30 s of steady traffic over 3 isolates, a 1 s token endpoint: the alarm refreshes ahead, nobody waits, no 401", { timeout: 90_000 }, async () => {
  const LIFETIME_S = 5;
  const DELAY_MS = 1000;
  const RUN_MS = 30_000;
  const W_MS = Math.min(300, LIFETIME_S / 4) * 1000; // the refresh-ahead window
  const PERIOD_MS = LIFETIME_S * 1000 - 2 * W_MS; // the object's alarm: expiresAt − 2·W, expiry counted from the request's sending
  const { sb, tap, w, quiet, tokenRequests } = await setup("expiry", { lifetime: LIFETIME_S });
  sb.control.addFault({ target: "token", delayMs: DELAY_MS, count: 1_000 });
  const started = performance.now();
  // The isolates' first calls wait for the first token: the only calls that may.
  const cold = await Promise.all(SERVICES.map((s) => w.call(s)));
  assert.equal(failures(cold).length, 0, describeFailures(cold));
  const results = await steadyTraffic(w, { forMs: RUN_MS });
  const steadyRequests = tap.arrivals();
  const steadyElapsed = performance.now() - started;
  // Then no traffic until every isolate's token has expired (without the alarm the object's
  // would have too, and the next calls would wait for a token request): the alarm refreshed
  // ahead, with no traffic at that moment.
  const quietFrom = performance.now();
  const lastExpiry = Math.max(...Object.values(await isolates(w)).map((i) => i.status.expiresAt));
  await sleep(lastExpiry + 300 - Date.now());
  const quietMs = performance.now() - quietFrom;
  const afterQuiet = await Promise.all(SERVICES.map((s) => w.call(s)));
  const all = [...results, ...afterQuiet];

  const seen = await isolates(w);
  const object = await w.object("a");
  const counters = sb.control.counters();
  const inside = all.map((r) => r.ms);
  const outside = results.map((r) => r.outsideMs);
  const expected = 1 + Math.floor(steadyElapsed / PERIOD_MS);
  console.log(
    `expiry: ${all.length} calls, ${failures(all).length} failed; token requests during the ${(steadyElapsed / 1000).toFixed(1)} s of traffic: ${steadyRequests} ` +
      `(expected ≈ ${expected}: one at the start, then one every ${PERIOD_MS} ms; tolerance −2/+1); then ${(quietMs / 1000).toFixed(1)} s without traffic, until every isolate's token had expired; ` +
      `call time inside the isolate p50 ${percentile(inside, 50)} ms, p99 ${percentile(inside, 99)} ms, max ${Math.max(...inside)} ms (a token request takes ≥ ${DELAY_MS} ms); ` +
      `from the test p50 ${percentile(outside, 50).toFixed(0)} ms, max ${Math.max(...outside).toFixed(0)} ms; after the quiet spell ${afterQuiet.map((r) => r.ms).join("/")} ms; ` +
      `API 401s at the bank: ${counters.apiByStatus["401"] ?? 0}; object: ${JSON.stringify(object.status)}; isolates: ${JSON.stringify(Object.fromEntries(SERVICES.map((s) => [s, seen[s].counts])))}`,
  );

  assert.equal(failures(all).length, 0, describeFailures(all));
  assert.equal(all.filter((r) => r.status === 401).length, 0, "no 401 reached a caller");
  assert.equal(counters.apiByStatus["401"] ?? 0, 0, "the API never answered 401 (no call went out with an expired token)");
  assert.ok(steadyRequests >= expected - 2 && steadyRequests <= expected + 1, `token requests ${steadyRequests}, expected ${expected} (−2/+1)`);
  // Nobody waited for a token request: no call took as long as one (the first calls aside).
  assert.ok(Math.max(...inside) < DELAY_MS, `the longest call took ${Math.max(...inside)} ms inside its isolate`);
  for (const s of SERVICES) {
    assert.equal(seen[s].status.tokenRequests, 0, `${s} made no token request of its own`);
    assert.equal(seen[s].counts["token_requested"] ?? 0, 0, `${s}: no token_requested event`);
    assert.ok(seen[s].counts["token_acquired:coordinator"] >= 2, `${s} took its tokens from the object (${JSON.stringify(seen[s].counts)})`);
    assert.equal(seen[s].counts["token_acquired:endpoint"] ?? 0, 0, `${s}: no token from the endpoint`);
  }
  // The object made every token request (its count and the endpoint's agree once a request in
  // flight has arrived), and every one after the first was an alarm's.
  const made = await until(async () => {
    const o = (await w.object("a")).status;
    return o.tokenRequests === tap.arrivals() && o;
  }, `the object's token requests to equal the endpoint's (${tap.arrivals()})`, 3000);
  assert.ok(made.alarms >= made.tokenRequests - 1, `alarms ${made.alarms}, token requests ${made.tokenRequests}`);
  quiet();
});

test("restart: with on-disk Durable Object storage a restarted workerd makes no new token request; the storage files hold no token, secret or client id in the clear", { timeout: 60_000 }, async () => {
  const disk = mkdtempSync(join(tmpdir(), "qbank-coord-"));
  cleanups.push(() => rmSync(disk, { recursive: true, force: true }));
  const { client, tap, w, quiet, tokenRequests } = await setup("restart", { disk });
  const first = await w.call("a");
  assert.equal(first.ok, true, JSON.stringify(first));
  assert.equal(first.tokenSource, "coordinator");
  assert.equal(tokenRequests(), 1);

  await w.restart();
  const again = await Promise.all(SERVICES.map((s) => w.call(s)));
  const object = await w.object("b");
  await w.stop(); // everything written and closed before the files are read
  const files = filesText(disk, listFiles(disk));
  const forbidden = secrets(client, tap);
  const found = files.map(({ file, text }) => [file, plaintextIn(`${file}\n${text}`, forbidden)]).filter(([, names]) => names.length);
  console.log(`restart: token requests ${tokenRequests()} (1 before the restart); after it: ${again.map((r) => `${r.service} ${r.ok ? "ok" : r.code} from ${r.tokenSource}`).join(", ")}; object after the restart: ${JSON.stringify(object.status)}; storage: ${files.map((f) => `${f.file} (${f.text.length} B)`).join(", ")}; in the clear: ${JSON.stringify(found)}`);

  assert.equal(failures(again).length, 0, describeFailures(again));
  for (const r of again) assert.equal(r.tokenSource, "coordinator", `${r.service} got the stored token through the object`);
  assert.equal(tokenRequests(), 1, "no new token request after the restart");
  assert.equal(object.status.tokenRequests, 0, "the restarted object read its token from storage");
  // The scan looked where the entry is: the entry's name is in the files, the token is not.
  assert.ok(files.length > 0 && files.some((f) => f.text.includes("qbank-connect:v1:")), `the entry is in the storage files (${files.map((f) => f.file)})`);
  assert.equal(tap.tokens.length, 1);
  assert.deepEqual(found, [], "no token, secret or client id in the clear");
  // …and the scan would have found one: the token base64url-encoded inside a file's bytes.
  assert.deepEqual(plaintextIn(files[0].text + Buffer.from(`{"t":"${tap.tokens[0]}"}`).toString("base64url"), forbidden), ["token 1"]);
  quiet();
});

test("faults: an object that throws, cannot start, cannot be reached, never answers, answers garbage or no token: every call succeeds through each isolate's own single flight", { timeout: 60_000 }, async () => {
  // timeoutMs 1500: a coordinator's default store timeout is timeoutMs + 1000 = 2500 ms.
  const { w, quiet, tokenRequests } = await setup("faults", { options: { timeoutMs: 1500 } });
  const CASES = [
    ["ThrowingCoordinator", "store_failed:read:error"],
    ["UnreachableCoordinator", "store_failed:read:error"],
    ["STUB_THROWS", "store_failed:read:error"],
    ["HangingCoordinator", "store_failed:read:timeout"],
    ["GarbageCoordinator", "store_entry_refused"],
    ["EmptyCoordinator", null],
  ];
  const figures = [];
  for (const [ns, event] of CASES) {
    const before = tokenRequests();
    // Without a fallback the calls would hang: give them 15 s.
    const results = await Promise.race([spread(w, 30, { ns }), sleep(15_000).then(() => assert.fail(`${ns}: the calls did not all end within 15 s`))]);
    const made = tokenRequests() - before;
    const seen = await isolates(w, ns);
    const ms = results.map((r) => r.ms);
    figures.push(`${ns}: ${results.length - failures(results).length}/${results.length} ok, ${made} token requests, ${Math.min(...ms)}–${Math.max(...ms)} ms, isolate a: ${JSON.stringify(seen.a.counts)}`);
    assert.equal(failures(results).length, 0, `${ns}: ${describeFailures(results)}`);
    assert.equal(made, SERVICES.length, `${ns}: one token request per isolate (its own single flight), not one per call`);
    for (const s of SERVICES) {
      assert.equal(seen[s].status.tokenSource, "endpoint", `${ns}: ${s} fell back to the token endpoint`);
      assert.equal(seen[s].counts["token_acquired:endpoint"], 1, `${ns}: ${s}: ${JSON.stringify(seen[s].counts)}`);
      if (event) assert.ok(Object.keys(seen[s].counts).some((k) => k.startsWith(event)), `${ns}: ${s} saw ${event} (${JSON.stringify(seen[s].counts)})`);
    }
    if (ns === "HangingCoordinator") assert.ok(Math.min(...ms) >= 2400, `waited for the store timeout (timeoutMs + 1000) before falling back: ${Math.min(...ms)} ms`);
  }
  console.log(`faults:\n  ${figures.join("\n  ")}`);
  quiet();
});

/**
 * `lifetimeS` tokens, every token request but the failing one held `delayMs` by the sandbox. The
 * object's alarm (at lifetime/2) gets a 503, with `Retry-After: retryAfterS` if given; traffic
 * goes on over a, b, c until past the first token's expiry. Returns what the run saw.
 */
async function refreshFails(name, { lifetimeS, delayMs = 0, retryAfterS }) {
  // Retry-After must reach the Workers: straight to the sandbox then, counted by it.
  const { sb, tap, w, quiet, tokenRequests } = await setup(name, { lifetime: lifetimeS, direct: !!retryAfterS });
  const sent = () => (retryAfterS ? tokenRequests() : tap.arrivals());
  const cold = await Promise.all(SERVICES.map((s) => w.call(s)));
  assert.equal(failures(cold).length, 0, describeFailures(cold));
  const headers = { "content-type": "application/json", ...(retryAfterS ? { "retry-after": String(retryAfterS) } : {}) };
  sb.control.addFault({ target: "token", status: 503, headers, body: '{"error":"temporarily_unavailable"}', count: 1 });
  if (delayMs) sb.control.addFault({ target: "token", delayMs, count: 1_000 });
  const results = await steadyTraffic(w, { forMs: lifetimeS * 1000 + 1500 });
  const seen = await isolates(w);
  // The object's count and the endpoint's agree once a request in flight has arrived (or never,
  // when the isolates asked the endpoint themselves).
  const object = await until(async () => {
    const o = await w.object("a");
    return o.status.tokenRequests === sent() && o;
  }, "the object's token requests to equal the endpoint's", 3000).catch(() => w.object("a"));
  const r = {
    results,
    object: object.status,
    failed503: !sb.control.faults().some((f) => f.status === 503),
    tokenRequests: sent(),
    api401: sb.control.counters().apiByStatus["401"] ?? 0,
    maxMs: Math.max(...results.map((x) => x.ms)),
    isolateRequests: SERVICES.map((s) => seen[s].status.tokenRequests),
    // When isolate a's tokens expire, in order.
    expiries: seen.a.events.filter((e) => e.type === "token_acquired").map((e) => e.expiresAt),
  };
  console.log(
    `refresh fault (${lifetimeS} s tokens${delayMs ? `, token requests take ${delayMs} ms` : ""}${retryAfterS ? `, Retry-After: ${retryAfterS}` : ""}): ` +
      `${results.length} calls, ${failures(results).length} failed, longest ${r.maxMs} ms; token requests ${r.tokenRequests} (the object's ${r.object.tokenRequests}, ` +
      `one of them answered 503: ${r.failed503}; the isolates' own ${r.isolateRequests.join("/")}); isolate a's tokens expire ${r.expiries.slice(1).map((e, i) => `+${e - r.expiries[i]} ms`).join(", ")} apart; ` +
      `API 401s ${r.api401}; object: ${JSON.stringify(r.object)}; ` +
      `isolates: ${JSON.stringify(Object.fromEntries(SERVICES.map((s) => [s, seen[s].counts])))}`,
  );
  quiet();
  return r;
}

test("faults: a refresh failing under a still-valid token is invisible to callers", { timeout: 60_000 }, async () => {
  // 10 s tokens: the object's alarm at 5 s, the isolates' refresh point ≈ 7.5 s, callers wait
  // from 9 s. Token requests take 1 s, so a caller that waited for one would show it.
  const r = await refreshFails("refresh-fault", { lifetimeS: 10, delayMs: 1000 });
  assert.ok(r.failed503, "a refresh met the failing token endpoint");
  assert.ok(r.object.tokenRequests >= 3, "the object's first token, the failed refresh, and the next token");
  assert.equal(failures(r.results).length, 0, describeFailures(r.results));
  assert.equal(r.api401, 0, "no call went out with an expired token");
  assert.ok(r.maxMs < 1000, `no caller waited for a token request (the longest call took ${r.maxMs} ms)`);
});

// While the object backs off (here for the bank's Retry-After), an isolate at its refresh point
// that finds nothing newer at the object keeps its token and asks again later: it must not go
// around the object's backoff to the token endpoint itself.
test("faults: the isolates keep to the object's backoff: a refresh failing with Retry-After makes no isolate ask the token endpoint itself", { timeout: 60_000 }, async () => {
  // 12 s tokens: the object's alarm at ≈ 6 s (≥ 5.7 s: W = 3 s, its refresh point's jitter up to
  // 5 % of W, twice) gets a 503 with Retry-After: 4, so its retry comes at ≥ 9.7 s; the isolates
  // reach their refresh point (≈ 9 s) while the object still backs off; callers would wait from
  // 10.8 s.
  const r = await refreshFails("retry-after", { lifetimeS: 12, retryAfterS: 4 });
  assert.ok(r.failed503, "a refresh met the failing token endpoint");
  assert.equal(failures(r.results).length, 0, describeFailures(r.results));
  assert.deepEqual(r.isolateRequests, [0, 0, 0], "token requests the isolates made themselves");
  assert.equal(r.tokenRequests, r.object.tokenRequests, "every token request that reached the endpoint was the object's");
  // The object kept to Retry-After: its next token was sent ≥ 9.7 s after the first (so the
  // isolates did reach their refresh point inside its backoff); its own backoff alone (1–3 s)
  // would have sent it by ≈ 9.0 s. The line is drawn between the two.
  assert.equal(r.expiries.length, 2, "isolate a: its first token and the object's next");
  assert.ok(r.expiries[1] - r.expiries[0] >= 9_350, `the next token came ${r.expiries[1] - r.expiries[0]} ms after the first`);
});

test("cancellation: the call that wakes a cold object is aborted mid-flight (its client goes away); the other calls succeed on the object's one token request", { timeout: 60_000 }, async () => {
  const { sb, tap, w, quiet, tokenRequests } = await setup("cancel");
  sb.control.addFault({ target: "token", delayMs: 1500, count: 1 });
  const client = new AbortController();
  const first = w.call("a", { tag: "first" }, { signal: client.signal }).then(
    () => "answered",
    (e) => e.name,
  );
  await eventually(() => tap.arrivals() === 1, "the first call's token request at the token endpoint", 15_000);
  // Its client goes away while the object's token request is in flight, and the request ends
  // (as Cloudflare ends it: see workers.mjs).
  client.abort();
  assert.equal(await first, "AbortError");
  assert.deepEqual(await w.end("a", "first"), { ended: true });
  const aborted = await until(async () => (await w.log("a")).find((l) => l.tag === "first"), "the aborted call ended inside its Worker");
  const inFlight = tokenRequests() === 0; // the sandbox counts a token request once it answers
  const others = await spread(w, 30);
  const seen = await isolates(w);
  const object = await w.object("a");
  console.log(`cancellation: the first call ${JSON.stringify(aborted)}; the others ${others.length - failures(others).length}/${others.length} ok, from ${[...new Set(others.map((r) => r.tokenSource))]}; token requests ${tokenRequests()} (tap: ${tap.arrivals()}); object: ${JSON.stringify(object.status)}`);
  assert.equal(aborted.ok, false);
  assert.equal(aborted.code, "aborted", JSON.stringify(aborted));
  assert.ok(aborted.ms < 1500, `it ended before the token request did (${aborted.ms} ms)`);
  assert.ok(inFlight, "the other calls started while that token request was in flight");
  assert.equal(failures(others).length, 0, describeFailures(others));
  assert.equal(tap.arrivals(), 1, "one token request reached the endpoint");
  assert.equal(tokenRequests(), 1, "one token request answered");
  for (const s of SERVICES) {
    assert.equal(seen[s].status.tokenRequests, 0, `${s} made no token request of its own`);
    assert.equal(seen[s].status.tokenSource, "coordinator", `${s}: ${JSON.stringify(seen[s].counts)}`);
  }
  assert.equal(object.status.tokenRequests, 1);
  quiet();
});

test("after a 401 (the bank revoked the token) every isolate's call succeeds on the object's one new token", { timeout: 60_000 }, async () => {
  const { sb, w, quiet, tokenRequests } = await setup("revoked");
  const warm = await Promise.all(SERVICES.map((s) => w.call(s)));
  assert.equal(failures(warm).length, 0, describeFailures(warm));
  sb.control.revoke();
  const results = await spread(w, 30);
  const counters = sb.control.counters();
  const seen = await isolates(w);
  const object = await w.object("a");
  console.log(`401: ${results.length - failures(results).length}/${results.length} ok after the revocation; API 401s ${counters.apiByStatus["401"] ?? 0}; token requests ${tokenRequests()}; object: ${JSON.stringify(object.status)}; isolates: ${JSON.stringify(Object.fromEntries(SERVICES.map((s) => [s, seen[s].counts])))}`);
  assert.equal(failures(results).length, 0, describeFailures(results));
  assert.ok((counters.apiByStatus["401"] ?? 0) >= SERVICES.length, "each isolate met the 401");
  assert.equal(tokenRequests(), 2, "the first token and one new one for every isolate");
  for (const s of SERVICES) {
    assert.equal(seen[s].status.tokenRequests, 0, `${s} made no token request of its own`);
    assert.equal(seen[s].counts["token_acquired:coordinator"], 2, `${s}: ${JSON.stringify(seen[s].counts)}`);
  }
  quiet();
});
