// Issue 18, "Must show": one token for a whole fleet of real processes sharing one store.
//
// Every instance is a child process (Node, Bun or Deno) running tests/js/fleet/agent.mjs with the
// built package (pkg/): a QBankClient with `store: redisStore(client)` on a real redis-server, or
// `denoKvStore(await Deno.openKv(file))` on one Deno KV file. All instances start, connect and
// report ready first; then they are released at the same moment (all cold at once), fire their
// concurrent calls, and report what they saw: successes, failures by error code, events by type
// and source, elapsed times. Token requests are counted by the sandbox (control.counters()).
//
// The fault cases are recorded in the reliability matrix (target/reliability/fault-matrix/fleet.json),
// each with its figures. The last test scans every key and value the runs left in Redis and the raw
// bytes of the Deno KV file for any issued token, secret or client id.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "redis";
import { startSandbox } from "../../src/testing/sandbox.mjs";
import { startRedis } from "../servers/redis.mjs";
import { caseRecorder, eventually } from "../reliability/support.mjs";
import { tokenTap } from "./harness.mjs";
import { killAll, kvFileText, plaintextIn, redisDump, startAgent, startFleet, sumReports } from "./fleet/fleet.mjs";

const rec = caseRecorder("fault-matrix", import.meta.url);
const figures = {};
rec.note = { figures };

const client = (name) => ({
  clientId: `fleet-client-${name}-${randomBytes(3).toString("hex")}`,
  clientSecret: `qb-fleet-${name}-${randomBytes(12).toString("hex")}`,
  scopes: ["balances.read"],
});
const EXITS = 5; // the rounds of the exit-right-after-close() test, a client each
const C = Object.fromEntries(["eight", "mixed", "deno", "stopped", "killed", "holder", "slow", "tamper", "rotate", ...Array.from({ length: EXITS }, (_, i) => `exit${i}`)].map((n) => [n, client(n)]));
// The storeKey of the Bun + Node fleet (the key material instead of the client secret).
const STORE_KEY = `qb-fleet-store-key-${randomBytes(16).toString("hex")}`;
// The rotated secret of C.rotate: the same client id, a new secret, and only the new one accepted.
const ROTATED = { ...C.rotate, clientSecret: `qb-fleet-rotated-${randomBytes(12).toString("hex")}` };

let sb; // the sandbox of every fleet
let sb2; // the same bank after C.rotate's secret was rotated
let tap; // the token URL every instance uses (in front of sb, or sb2)
let redis; // the Redis every fleet shares, never stopped: what the plaintext scan reads
let faulty; // a second Redis, stopped and killed by the fault cases
let scanner; // a node-redis client of our own on `redis`
let kvDir;
const outputs = []; // every instance's stdout and stderr, for the plaintext scan

const tokenRequests = () => sb.control.counters().tokenRequests;
const settings = (c) => ({ tokenUrl: tap.tokenUrl, apiBaseUrl: sb.apiBaseUrl, clientId: c.clientId, clientSecret: c.clientSecret });
const onRedis = (r, extra = {}) => ({ kind: "redis", url: r.url, ...extra });

/**
 * Starts `count` instances (or `runtimes`), releases them at once with `n` calls of `op`, and
 * returns { fleet, reports, sum, tokenRequests (at the sandbox, during the run) }. `keep` leaves
 * the instances running (the caller exits them). With `slowFirstTokenMs` the sandbox holds the
 * first token request that long, and `whenFetching(fleet)` runs as soon as it has arrived, while
 * it and the calls are in flight.
 */
async function fleetRun({ count = 1, runtime = "node", runtimes, config, op = "getToken", n = 100, keep = false, slowFirstTokenMs, whenFetching, onLine }) {
  const fleet = await startFleet({ count, runtime, runtimes, config, kvDir, onLine });
  if (slowFirstTokenMs) sb.control.addFault({ target: "token", delayMs: slowFirstTokenMs, count: 1 });
  let reports;
  const before = tokenRequests();
  const arrived = tap.arrivals();
  try {
    const going = fleet.go(op, n);
    if (whenFetching) {
      // The tap sees a token request as it arrives (the sandbox counts it only after the delay).
      await eventually(() => tap.arrivals() > arrived, "the first token request reached the token endpoint", 20_000);
      await whenFetching(fleet);
    }
    reports = await going;
  } finally {
    sb.control.clearFaults();
  }
  const after = tokenRequests();
  outputs.push(fleet);
  if (!keep) await fleet.exit();
  const sum = sumReports(reports);
  assert.deepEqual(sum.leaks, [], "no instance saw a token, secret, storeKey or entry name in an event, error or rendering");
  return { fleet, reports, sum, tokenRequests: after - before };
}

/** Every call of the run succeeded. */
function assertNoFailure(sum, what = "") {
  assert.equal(sum.failed, 0, `${what}no failed call (${JSON.stringify(sum.failures)}: ${sum.firstError?.message})`);
}

/** Prints one line of figures and keeps them for the matrix file. */
function figure(t, key, values) {
  figures[key] = values;
  t.diagnostic(`${key}: ${JSON.stringify(values)}`);
}

/** The token entries in `redis` (no leases). */
const entries = async () => (await redisDump(scanner)).filter((e) => !e.key.endsWith(":lease"));

/**
 * The entries once there are at least `count` (a store write is fire-and-forget: it may land a
 * moment after the callers got their token), or after 5 s whatever there is.
 */
async function entriesOnceThere(count) {
  const deadline = performance.now() + 5000;
  for (;;) {
    const now = await entries();
    if (now.length >= count || performance.now() > deadline) return now;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const eventFigures = (sum, ...names) => Object.fromEntries(names.map((k) => [k, sum.events[k] ?? 0]));

/** The figures of a fleetRun: token requests, calls, failures, distinct tokens, slowest instance, and these event counts. */
const runFigures = (r, ...events) => ({
  tokenRequests: r.tokenRequests,
  calls: r.sum.calls,
  failed: r.sum.failed,
  distinctTokens: r.sum.tokens.size,
  slowestInstanceMs: Math.round(r.sum.maxElapsedMs),
  ...eventFigures(r.sum, ...events),
});

/** What every cold fleet on a working store must show: 0 failures, 1 token request, one token, every other instance served from the store. */
function assertOneToken(r, calls) {
  assertNoFailure(r.sum);
  assert.equal(r.sum.calls, calls);
  assert.equal(r.tokenRequests, 1, "one token request for the whole fleet");
  assert.equal(r.sum.tokens.size, 1, "every instance holds the same token");
  assert.equal(r.sum.events["token_acquired:endpoint"], 1, "one instance got it from the endpoint");
  assert.equal(r.sum.events["token_acquired:store"], r.sum.instances - 1, "the others from the store");
  for (const rep of r.reports) assert.equal(rep.status.tokenSource, rep.events["token_acquired:endpoint"] ? "endpoint" : "store");
}

before(async () => {
  sb = await startSandbox({ clients: Object.values(C) });
  sb2 = await startSandbox({ clients: [ROTATED] });
  tap = await tokenTap(sb);
  [redis, faulty] = await Promise.all([startRedis(), startRedis()]);
  scanner = createClient({ url: redis.url });
  scanner.on("error", () => {});
  await scanner.connect();
  kvDir = mkdtempSync(join(tmpdir(), "qbank-fleet-kv-"));
});

after(async () => {
  rec.write();
  await killAll();
  await scanner?.quit().catch(() => {});
  await Promise.all([redis?.stop(), faulty?.stop(), tap?.close(), sb?.close(), sb2?.close()]);
  if (kvDir) rmSync(kvDir, { recursive: true, force: true });
});

describe("a fleet of Node processes on one real redis-server", { timeout: 120_000 }, () => {
  let fleet;
  after(() => fleet?.exit());

  it("8 Node processes × 250 concurrent cold getToken() calls (their redis clients node-redis v5, v4 and ioredis in turn): exactly 1 token request at the sandbox, 0 failures", async (t) => {
    const LIBS = ["redis", "redis4", "ioredis"];
    const r = await fleetRun({ count: 8, n: 250, keep: true, config: (i) => ({ ...settings(C.eight), store: onRedis(redis, { lib: LIBS[i % LIBS.length] }) }) });
    fleet = r.fleet;
    figure(t, "8 Node × 250 cold getToken()", runFigures(r, "token_acquired:endpoint", "token_acquired:store", "lease_taken", "lease_busy", "store_failed"));
    assertOneToken(r, 2000);
  });

  it("then the server revokes every token, and every process calls getBalance again: each gets a 401 first, and the fleet makes exactly 1 new token request, 0 failures", async (t) => {
    assert.ok(fleet, "the fleet of the test before is running");
    sb.control.revoke();
    const c0 = sb.control.counters();
    const reports = await fleet.go("getBalance", 250);
    const c1 = sb.control.counters();
    const sum = sumReports(reports);
    assert.deepEqual(sum.leaks, []);
    const unauthorized = (c1.apiByStatus["401"] ?? 0) - (c0.apiByStatus["401"] ?? 0);
    figure(t, "8 Node × 250 getBalance after revoke()", {
      tokenRequests: c1.tokenRequests - c0.tokenRequests,
      calls: sum.calls,
      failed: sum.failed,
      answers401: unauthorized,
      distinctTokens: sum.tokens.size,
      slowestInstanceMs: Math.round(sum.maxElapsedMs),
      ...eventFigures(sum, "token_invalidated", "token_acquired:endpoint", "token_acquired:store", "store_entry_deleted", "lease_taken", "lease_busy"),
    });
    assertNoFailure(sum);
    assert.ok(unauthorized >= 8, `every process met a 401 first (${unauthorized} answers 401)`);
    for (const rep of reports) assert.ok(rep.events.token_acquired >= 1, `instance ${rep.pid} replaced its revoked token`);
    assert.equal(c1.tokenRequests - c0.tokenRequests, 1, "one new token request for the whole fleet");
    assert.equal(sum.tokens.size, 2, "every instance holds the same new token (and had the same old one)");
    await fleet.exit();
    fleet = undefined;
  });
});

it("a Bun process and a Node process on one Redis (with an explicit storeKey) share one token: 1 token request", { timeout: 60_000 }, async (t) => {
  const r = await fleetRun({ runtimes: ["bun", "node"], n: 100, config: { ...settings(C.mixed), store: onRedis(redis), options: { storeKey: STORE_KEY } } });
  figure(t, "Bun + Node × 100 cold getToken()", {
    ...runFigures(r, "token_acquired:endpoint", "token_acquired:store"),
    bySource: Object.fromEntries(r.reports.map((x) => [x.runtime, x.status.tokenSource])),
  });
  assert.deepEqual(r.reports.map((x) => x.runtime), ["bun", "node"]);
  assertOneToken(r, 200);
});

it("3 Deno processes × 200 cold calls sharing one Deno KV file (--unstable-kv): exactly 1 token request", { timeout: 60_000 }, async (t) => {
  const r = await fleetRun({ runtime: "deno", count: 3, n: 200, config: { ...settings(C.deno), store: { kind: "denokv", path: join(kvDir, "fleet.sqlite3") } } });
  figure(t, "3 Deno × 200 cold getToken() on one KV file", runFigures(r, "token_acquired:endpoint", "token_acquired:store", "lease_taken", "lease_busy", "store_failed"));
  assertOneToken(r, 600);
});

it(`an instance that fetches cold, awaits close() and calls process.exit at once (its store's writes slow: set() made 300 ms late), ${EXITS} times in a row with the next instance starting right after: each next instance answers its first call from the store, 0 token requests, well under the lease TTL`, { timeout: 120_000 }, async (t) => {
  const leaseTtlMs = 10_000; // the default, said here for the bound below
  const rows = [];
  for (let i = 0; i < EXITS; i++) {
    const config = { ...settings(C[`exit${i}`]), store: onRedis(redis), storeSetDelayMs: 300, options: { leaseTtlMs } };
    const first = await startAgent("node", config);
    const exited = new Promise((resolve) => (first.exited ? resolve() : first.child.once("exit", resolve)));
    const c0 = tokenRequests();
    const from = first.lines.length;
    // The run, its report, then `await client.close()` and process.exit(0): nothing else flushes.
    first.send({ cmd: "run", op: "getToken", n: 10, then: "exit" });
    const cold = await first.next("report", from);
    await exited;
    const next = await startAgent("node", config);
    outputs.push({ output: () => [first, next].map((a) => a.stdout + a.stderr).join("\n") });
    const c1 = tokenRequests();
    const warm = await next.run("getToken", 10);
    const c2 = tokenRequests();
    await next.exit();
    rows.push({ exitCode: first.child.exitCode, coldTokenRequests: c1 - c0, coldSource: cold.status.tokenSource, nextTokenRequests: c2 - c1, nextSource: warm.status.tokenSource, nextFirstCallMs: Math.round(warm.maxMs) });
    assert.deepEqual([...cold.leaks, ...warm.leaks], []);
    assert.equal(cold.failed + warm.failed, 0, JSON.stringify([cold.firstError, warm.firstError]));
    assert.equal(first.child.exitCode, 0, "the first instance exited by itself, at once");
    assert.equal(c1 - c0, 1, `round ${i}: the cold instance fetched`);
    assert.equal(cold.status.tokenSource, "endpoint");
    assert.equal(warm.status.tokenSource, "store", `round ${i}: the next instance found the token in the store (${JSON.stringify(warm.events)})`);
    assert.equal(warm.events["token_acquired:store"], 1);
    assert.equal(c2 - c1, 0, `round ${i}: the next instance made no token request`);
    assert.equal(warm.status.tokenRequests, 0);
    assert.deepEqual(warm.tokens, cold.tokens, "the same token");
    // Its first call reads the store once (no lease, no wait): generous for a loaded machine.
    assert.ok(warm.maxMs < leaseTtlMs / 5, `round ${i}: the next instance's first call took ${Math.round(warm.maxMs)} ms (lease TTL ${leaseTtlMs} ms)`);
  }
  figure(t, "exit right after await close()", rows);
});

describe("fleet faults (reliability matrix)", { timeout: 120_000 }, () => {
  rec.it("Redis stopped before the start: 4 Node × 100 calls, 0 failed, each instance falls back to its own token request (store_failed)", async (t) => {
    await faulty.stop();
    try {
      const storeTimeoutMs = 300;
      const r = await fleetRun({ count: 4, n: 100, config: { ...settings(C.stopped), store: onRedis(faulty, { connect: "background" }), options: { storeTimeoutMs } } });
      figure(t, "Redis stopped before the start", {
        tokenRequests: r.tokenRequests,
        calls: r.sum.calls,
        failed: r.sum.failed,
        slowestInstanceMs: Math.round(r.sum.maxElapsedMs),
        storeTimeoutMs,
        ...eventFigures(r.sum, "store_failed", "store_failed:read:timeout", "store_failed:read:error", "token_acquired:endpoint"),
      });
      assertNoFailure(r.sum);
      assert.ok(r.sum.events.store_failed >= 4, "every instance said the store failed");
      assert.ok(r.tokenRequests >= 1 && r.tokenRequests <= 4, "each instance fetched on its own, once");
      for (const rep of r.reports) {
        assert.equal(rep.events.token_requested, 1, "single flight inside each instance");
        // Generous (a loaded 2-core machine): the store's part ends at its timeout.
        assert.ok(rep.maxMs <= storeTimeoutMs + 2000, `an instance's slowest caller waited ${Math.round(rep.maxMs)} ms: the store's timeout, then its own token request`);
      }
    } finally {
      await faulty.restart();
    }
  });

  rec.it("Redis killed mid-run (SIGKILL while the one token request is in flight, endpoint slowed to 800 ms): 4 Node × 100 calls, 0 failed", async (t) => {
    const storeTimeoutMs = 300;
    let killed = false;
    try {
      const r = await fleetRun({
        count: 4,
        n: 100,
        config: { ...settings(C.killed), store: onRedis(faulty), options: { storeTimeoutMs } },
        slowFirstTokenMs: 800,
        whenFetching: async () => {
          await faulty.kill();
          killed = true;
        },
      });
      figure(t, "Redis killed mid-run", {
        tokenRequests: r.tokenRequests,
        calls: r.sum.calls,
        failed: r.sum.failed,
        slowestInstanceMs: Math.round(r.sum.maxElapsedMs),
        ...eventFigures(r.sum, "store_failed", "lease_taken", "lease_busy", "token_acquired:endpoint", "token_acquired:store"),
      });
      assert.ok(killed, "Redis was killed while the calls were in flight");
      assertNoFailure(r.sum);
      assert.ok(r.sum.events.store_failed >= 1, "the store's failure was noticed and said");
      assert.ok(r.tokenRequests <= 4, "at most one token request per instance");
    } finally {
      await faulty.restart();
    }
  });

  rec.it("the lease holder SIGKILLed mid-flight (leaseTtlMs 1500, its token request held 1.5 s): at most 2 token requests, 0 failures among the others, delayed by about the lease TTL", async (t) => {
    const leaseTtlMs = 1500;
    let holder;
    const r = await fleetRun({
      count: 4,
      n: 100,
      config: { ...settings(C.holder), store: onRedis(redis), options: { leaseTtlMs } },
      onLine: (line, agent) => {
        if (line.type === "event" && line.event === "lease_taken") holder ??= agent;
      },
      slowFirstTokenMs: 1500,
      // Only the lease holder fetches: its request is the one in flight.
      whenFetching: async () => {
        await eventually(() => holder, "an instance's lease_taken event", 20_000);
        await holder.kill("SIGKILL");
      },
    });
    const survivors = r.reports.filter(Boolean);
    const slowest = Math.max(...survivors.map((x) => x.maxMs));
    figure(t, "lease holder killed mid-flight", {
      tokenRequests: r.tokenRequests,
      survivors: survivors.length,
      calls: r.sum.calls,
      failed: r.sum.failed,
      leaseTtlMs,
      slowestSurvivorMs: Math.round(slowest),
      ...eventFigures(r.sum, "lease_busy", "lease_taken", "lease_wait_over", "token_acquired:endpoint", "token_acquired:store"),
    });
    assert.equal(holder.child.signalCode, "SIGKILL");
    assert.equal(r.reports.filter((x) => x === null).length, 1, "the holder never reported");
    assert.equal(survivors.length, 3);
    assertNoFailure(r.sum, "among the others: ");
    assert.ok(r.tokenRequests <= 2, `at most 2 token requests (${r.tokenRequests})`);
    assert.equal(r.sum.tokens.size, 1, "the others share the one new token");
    // The others waited for the dead holder's lease to run out, then one fetched: about the
    // lease TTL plus a token round trip (generous bound for a loaded 2-core machine).
    assert.ok(slowest <= leaseTtlMs + 2000, `the others were delayed ${Math.round(slowest)} ms, about the lease TTL (${leaseTtlMs} ms)`);
  });

  rec.it("a store answering every call after 2 s (storeTimeoutMs 300): 4 Node × 100 calls, 0 failed, each caller's wait bounded by storeTimeoutMs + its token round trip", async (t) => {
    const storeTimeoutMs = 300;
    const storeDelayMs = 2000;
    const r = await fleetRun({ count: 4, n: 100, config: { ...settings(C.slow), store: onRedis(redis), storeDelayMs, options: { storeTimeoutMs } } });
    const rows = r.reports.map((x) => ({ maxMs: Math.round(x.maxMs), tokenRoundTripMs: Math.round(x.tokenAcquiredAt - x.tokenRequestedAt) }));
    figure(t, "store answering after 2 s", {
      tokenRequests: r.tokenRequests,
      calls: r.sum.calls,
      failed: r.sum.failed,
      storeTimeoutMs,
      storeDelayMs,
      perInstance: rows,
      ...eventFigures(r.sum, "store_failed:read:timeout", "store_failed"),
    });
    assertNoFailure(r.sum);
    for (const [i, x] of r.reports.entries()) {
      assert.ok(x.events["store_failed:read:timeout"] >= 1, "the slow read was given up at the store timeout");
      const roundTrip = x.tokenAcquiredAt - x.tokenRequestedAt;
      assert.ok(Number.isFinite(roundTrip), "the instance fetched its own token");
      // Generous: 1 s for timers and process scheduling on a loaded machine; the store's 2 s never counts.
      const bound = storeTimeoutMs + roundTrip + 1000;
      assert.ok(x.maxMs <= bound, `instance ${i}: its slowest caller waited ${Math.round(x.maxMs)} ms, bound ${Math.round(bound)} ms`);
      assert.ok(x.maxMs < storeDelayMs, "nobody waited for the slow store");
    }
  });

  rec.it("tampered entries (a flipped byte, another entry's value, bytes that are not base64url): each a miss with store_entry_refused, never a failure, and still 1 token request per fleet", async (t) => {
    const before = new Set((await entries()).map((e) => e.key));
    const seed = await fleetRun({ count: 2, n: 50, config: { ...settings(C.tamper), store: onRedis(redis) } });
    assert.equal(seed.sum.failed, 0);
    const mine = (await entriesOnceThere(before.size + 1)).map((e) => e.key).filter((k) => !before.has(k));
    assert.equal(mine.length, 1, "the fleet wrote one entry");
    const [key] = mine;
    const other = [...before][0];
    assert.ok(other, "another fleet's entry to swap in");
    const original = await scanner.get(key);
    const flipped = (() => {
      const b = Buffer.from(original, "base64url");
      b[Math.floor(b.length / 2)] ^= 0x01;
      return b.toString("base64url");
    })();
    const rows = {};
    for (const [what, value] of [
      ["a flipped byte", flipped],
      ["another entry's value (the entry name is the AAD)", await scanner.get(other)],
      ["not base64url", "!!not an entry!!"],
    ]) {
      await scanner.set(key, value, { KEEPTTL: true });
      const r = await fleetRun({ count: 3, n: 100, config: { ...settings(C.tamper), store: onRedis(redis) } });
      rows[what] = { tokenRequests: r.tokenRequests, failed: r.sum.failed, ...eventFigures(r.sum, "store_entry_refused", "store_entry_refused:unreadable", "token_acquired:endpoint", "token_acquired:store") };
      assertNoFailure(r.sum, `${what}: `);
      assert.ok(r.sum.events.store_entry_refused >= 1, `${what}: the entry was refused`);
      assert.equal(r.tokenRequests, 1, `${what}: a miss, then one token request for the fleet`);
      assert.notEqual(await scanner.get(key), value, `${what}: replaced by a good entry`);
    }
    figure(t, "tampered entries", rows);
  });

  rec.it("a rotated secret (same client id and token URL, the old secret refused by the bank): the new fleet misses (a new entry name), 1 token request, 0 failures", async (t) => {
    const n = (await entries()).length;
    tap.upstream(sb);
    const old = await fleetRun({ count: 2, n: 50, config: { ...settings(C.rotate), store: onRedis(redis) } });
    assert.equal(old.sum.failed, 0);
    const n0 = (await entriesOnceThere(n + 1)).length;
    tap.upstream(sb2); // the bank rotated the secret: the token URL the fleet knows is unchanged
    const c0 = sb2.control.counters().tokenRequests;
    try {
      const r = await fleetRun({ count: 3, n: 100, config: { ...settings(ROTATED), store: onRedis(redis) } });
      const requests = sb2.control.counters().tokenRequests - c0;
      figure(t, "rotated secret", {
        tokenRequests: requests,
        calls: r.sum.calls,
        failed: r.sum.failed,
        entriesBefore: n0,
        entriesAfter: (await entriesOnceThere(n0 + 1)).length,
        ...eventFigures(r.sum, "token_acquired:endpoint", "token_acquired:store", "store_entry_refused"),
      });
      assertNoFailure(r.sum);
      assert.equal(requests, 1, "one token request for the new fleet");
      assert.equal(r.sum.events["token_acquired:store"], 2, "the others took the new fleet's token from the store");
      assert.equal((await entries()).length, n0 + 1, "a new entry beside the old one (which runs out by its TTL)");
    } finally {
      tap.upstream(sb);
    }
  });
});

it("no plaintext: every key and value in Redis and the raw Deno KV file hold no issued token, no secret, no storeKey and no client id; nor does any instance's output", async (t) => {
  const forbidden = {};
  for (const [i, tok] of [...new Set(tap.tokens)].entries()) forbidden[`issued token #${i}`] = tok;
  for (const c of [...Object.values(C), ROTATED]) {
    forbidden[`secret of ${c.clientId}`] = c.clientSecret;
    forbidden[`client id ${c.clientId}`] = c.clientId;
  }
  forbidden.storeKey = STORE_KEY;
  const dump = await redisDump(scanner);
  const hits = [];
  for (const e of dump) {
    for (const what of plaintextIn(e.key, forbidden)) hits.push(`redis key ${e.key.slice(0, 24)}…: ${what}`);
    for (const what of plaintextIn(e.value ?? "", forbidden)) hits.push(`redis value of ${e.key.slice(0, 24)}…: ${what}`);
  }
  const kv = kvFileText(join(kvDir, "fleet.sqlite3"));
  for (const what of plaintextIn(kv, forbidden)) hits.push(`Deno KV file: ${what}`);
  const out = outputs.map((f) => f.output()).join("\n");
  for (const what of plaintextIn(out, forbidden)) hits.push(`an instance's output: ${what}`);
  figure(t, "plaintext scan", {
    redisKeys: dump.length,
    redisBytes: dump.reduce((n, e) => n + e.key.length + (e.value?.length ?? 0), 0),
    denoKvBytes: kv.length,
    tokensLookedFor: new Set(tap.tokens).size,
    instancesOutputBytes: out.length,
    found: hits.length,
  });
  assert.ok(new Set(tap.tokens).size >= 8, "the runs issued tokens to look for");
  assert.ok(dump.filter((e) => e.type === "string").length >= 6, "the runs left entries to scan");
  assert.ok(kv.includes("qbank-connect:v1:"), "the Deno KV file holds an entry to scan");
  for (const e of dump) assert.match(e.key, /^qbank-connect:v1:[0-9a-f]{64}(:lease)?$/, "entry names are keyed hashes");
  assert.deepEqual(hits, []);
});
