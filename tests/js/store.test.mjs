// The `store` option (issue 18) in one process, through the built package, against the local
// QBank sandbox: managers sharing a store make one token request; the value at rest is encrypted
// under an opaque name; tampered entries, another key, scope or extra parameters are misses, never
// failures; a store that throws, hangs or answers nonsense costs only events; a 401 deletes the
// rejected entry (compare-and-delete) and leads to one new token request; forceRefresh goes to
// the endpoint; nothing printed shows the token, the secret, the storeKey or the entry's name.
//
// The store is written here, in the test (a Map with TTLs, setIfAbsent, deleteIfEquals), not
// imported from the package: that it works proves index.d.ts's TokenStore can be implemented.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  TokenManager,
  QBankClient,
  assertNoneContain,
  assertQBankError,
  eventRenderings,
  eventTypes,
  managerRenderings,
  rejectionOf,
  sandboxSuite,
  secretForms,
  sleep,
  thrownBy,
  tokenForms,
  until,
} from "./token-support.mjs";

const CLIENT = {
  clientId: "store-test-client",
  clientSecret: `qb-store-secret-${randomBytes(12).toString("hex")}`,
  scopes: ["balances.read", "transactions.read"],
};
const STORE_KEY = `store-key-${randomBytes(24).toString("hex")}`;
const ACCOUNT = "a1b2c3d4-e5f6-7890-1234-567890abcde";
const ENTRY_KEY = /^qbank-connect:v1:[0-9a-f]{64}$/;

/**
 * A TokenStore: a Map of { value, expiresAt }, honouring TTLs, with setIfAbsent and
 * deleteIfEquals unless told otherwise. `calls` counts each method's calls; `fault` (set any
 * time) makes every call throw ("throw"), reject ("reject"), never settle ("hang") or answer
 * nonsense ("garbage"); `slow` does it for some methods only: { set: 300 } (each set() takes
 * effect and answers 300 ms late), { set: "throw" | "hang" }.
 */
function testStore({ lease = true, compareAndDelete = true, slow = {} } = {}) {
  const map = new Map();
  const calls = { get: 0, set: 0, setIfAbsent: 0, deleteIfEquals: 0 };
  const deleted = [];
  const live = (key) => {
    const e = map.get(key);
    if (e && e.expiresAt <= Date.now()) map.delete(key);
    return map.get(key);
  };
  const store = {
    map,
    calls,
    deleted,
    fault: undefined,
    /** @returns {Promise<unknown>} */
    async run(what, garbage, fn) {
      calls[what] += 1;
      if (store.fault === "throw") throw new Error("the store is down");
      if (store.fault === "reject") return Promise.reject(new Error("the store refused"));
      if (store.fault === "hang") return new Promise(() => {});
      if (store.fault === "garbage") return garbage;
      const late = slow[what];
      if (late === "throw") throw new Error("the store is down");
      if (late === "hang") return new Promise(() => {});
      if (late) await sleep(late);
      return fn();
    },
    get(key) {
      return store.run("get", 42, () => live(key)?.value ?? null);
    },
    set(key, value, ttlMs) {
      assert.equal(typeof value, "string");
      assert.ok(Number.isInteger(ttlMs) && ttlMs >= 1, `ttlMs ${ttlMs}`);
      return store.run("set", { ok: "yes" }, () => void map.set(key, { value, expiresAt: Date.now() + ttlMs }));
    },
  };
  if (lease) {
    store.setIfAbsent = (key, value, ttlMs) =>
      store.run("setIfAbsent", "yes", () => {
        if (live(key)) return false;
        map.set(key, { value, expiresAt: Date.now() + ttlMs });
        return true;
      });
  }
  if (compareAndDelete) {
    store.deleteIfEquals = (key, value) =>
      store.run("deleteIfEquals", "yes", () => {
        if (live(key)?.value !== value) return false;
        map.delete(key);
        deleted.push(key);
        return true;
      });
  }
  return store;
}

/** The entries of a store (not leases). */
const entries = (store) => [...store.map.entries()].filter(([k]) => !k.endsWith(":lease"));

/** Waits until the store holds `n` entries and no lease (a write and a release follow a token). */
const written = (store, n = 1) =>
  until(() => entries(store).length === n && store.map.size === n, `${n} entr${n === 1 ? "y" : "ies"} written, no lease held`);

describe("TokenManager and QBankClient with a store (one process)", { timeout: 60_000 }, () => {
  const suite = sandboxSuite({ sandbox: { clients: [CLIENT] } });
  const manager = (store, options = {}) => suite.manager({ store, ...options });
  const acquired = (events) => events.filter((e) => e.event.type === "token_acquired").map((e) => e.event.source);

  it("two managers sharing a store make one token request; the second answers from the store", async () => {
    const store = testStore();
    const a = manager(store);
    const b = manager(store);
    const first = await a.tm.getToken();
    await written(store);
    const second = await b.tm.getToken();
    assert.equal(second.accessToken, first.accessToken);
    assert.equal(suite.tokenRequests(), 1);
    assert.deepEqual(acquired(a.events), ["endpoint"]);
    assert.deepEqual(acquired(b.events), ["store"]);
    assert.deepEqual(eventTypes(b.events), ["token_acquired"], "no token_requested: nothing was sent");
    assert.ok(eventTypes(a.events).includes("lease_taken"));
    assert.equal(a.tm.status.tokenSource, "endpoint");
    assert.equal(b.tm.status.tokenSource, "store");
    assert.equal(b.tm.status.tokenRequests, 0);
    assert.equal(b.tm.status.storeTokens, 1);
    assert.equal(a.tm.status.leasesTaken, 1);
    // A cached getToken() never reaches the store.
    const reads = store.calls.get;
    for (let i = 0; i < 100; i++) await b.tm.getToken();
    await a.tm.getToken({});
    assert.equal(store.calls.get, reads);
  });

  it("many cold callers on two managers at once: one token request, everyone served", async () => {
    const store = testStore();
    const a = manager(store);
    const b = manager(store);
    const all = await Promise.all([...Array(50)].flatMap(() => [a.tm.getToken(), b.tm.getToken()]));
    assert.equal(new Set(all.map((t) => t.accessToken)).size, 1);
    assert.equal(suite.tokenRequests(), 1);
    assert.equal(a.tm.status.tokenRequests + b.tm.status.tokenRequests, 1);
    assert.ok(eventTypes([...a.events, ...b.events]).includes("lease_busy"), "the second waited for the lease holder");
  });

  it("the entry at rest is encrypted under an opaque name: neither the token, the secret nor the client id", async () => {
    const store = testStore();
    const a = manager(store);
    const token = (await a.tm.getToken()).accessToken;
    await written(store);
    const [[key, { value }]] = entries(store);
    assert.match(key, ENTRY_KEY);
    const forbidden = { token, "client id": CLIENT.clientId, ...secretForms(CLIENT.clientId, CLIENT.clientSecret), scope: "balances.read" };
    assertNoneContain({ "the entry's name": key, "the entry's value": value }, forbidden);
    const bytes = Buffer.from(value, "base64url");
    assert.equal(bytes.toString("base64url"), value, "base64url without padding");
    assert.equal(bytes[0], 1, "the version byte");
    // A fresh IV per write: the same token written twice reads differently.
    const b = manager(store);
    await b.tm.getToken({ forceRefresh: true });
    await until(() => entries(store)[0][1].value !== value, "the new token written");
    const [[, { value: again }]] = entries(store);
    assert.notEqual(again.slice(0, 22), value.slice(0, 22));
  });

  it("a tampered entry is refused (store_entry_refused) and the token comes from the endpoint, no failure", async () => {
    const store = testStore();
    await manager(store).tm.getToken();
    await written(store);
    const [[key, entry]] = entries(store);
    const flipped = entry.value.slice(0, 30) + (entry.value[30] === "A" ? "B" : "A") + entry.value.slice(31);
    store.map.set(key, { ...entry, value: flipped });
    const b = manager(store);
    await b.tm.getToken();
    assert.equal(suite.tokenRequests(), 2);
    const refused = b.events.filter((e) => e.event.type === "store_entry_refused").map((e) => e.event.reason);
    // Refused at the first read and again at the read after taking the lease.
    assert.ok(refused.length >= 1 && refused.every((r) => r === "unreadable"), JSON.stringify(refused));
    assert.deepEqual(acquired(b.events), ["endpoint"]);
  });

  it("another storeKey, another scope or other extraParams never adopt the entry", async () => {
    const store = testStore();
    await manager(store).tm.getToken();
    await written(store);
    const variants = [
      { storeKey: STORE_KEY },
      { scope: ["transactions.read"] },
      { extraParams: { audience: "https://api.example" } },
    ];
    for (const [i, options] of variants.entries()) {
      const m = manager(store, options);
      await m.tm.getToken();
      await written(store, 2 + i);
      assert.deepEqual(acquired(m.events), ["endpoint"], JSON.stringify(options));
      assert.equal(m.tm.status.storeTokens, 0);
    }
    assert.equal(suite.tokenRequests(), 1 + variants.length);
    await written(store, 1 + variants.length);
  });

  it("a rotated secret never adopts the old secret's entry (it asks the endpoint)", async () => {
    const store = testStore();
    await manager(store).tm.getToken();
    await written(store);
    const keysBefore = new Set(store.map.keys());
    const rotated = manager(store, { clientSecret: `${CLIENT.clientSecret}-rotated` });
    // The sandbox knows only the old secret: the endpoint refuses it, which proves it was asked.
    const err = await rejectionOf(rotated.tm.getToken());
    assertQBankError(err, "invalid_client");
    assert.equal(rotated.tm.status.storeTokens, 0);
    assert.equal(suite.tokenRequests(), 2);
    assert.ok(entries(store).every(([k]) => keysBefore.has(k)), "nothing written for a refused secret");
  });

  for (const fault of ["throw", "reject", "hang", "garbage"]) {
    it(`a store whose calls ${fault === "garbage" ? "answer garbage" : fault}: store_failed events, the caller still gets a token in time`, async () => {
      const store = testStore();
      store.fault = fault;
      const storeTimeoutMs = 50;
      const a = manager(store, { storeTimeoutMs });
      const started = Date.now();
      const token = await a.tm.getToken();
      const elapsed = Date.now() - started;
      assert.ok(token.accessToken);
      assert.equal(suite.tokenRequests(), 1);
      // One store timeout, a token request on loopback, slack for a loaded machine.
      assert.ok(elapsed < 5_000, `${elapsed} ms`);
      const failed = a.events.filter((e) => e.event.type === "store_failed").map((e) => [e.event.step, e.event.failure]);
      assert.deepEqual(failed[0], ["read", fault === "hang" ? "timeout" : "error"]);
      await until(() => a.tm.status.storeFailures >= 1, "the failure to be counted");
      assert.deepEqual(acquired(a.events), ["endpoint"]);
      // A store that keeps failing: the next manager fetches too, and nobody fails.
      const b = manager(store, { storeTimeoutMs });
      await b.tm.getToken();
      assert.equal(suite.tokenRequests(), 2);
    });
  }

  it("a store without setIfAbsent is a shared cache", async () => {
    const store = testStore({ lease: false });
    const a = manager(store);
    const b = manager(store);
    const first = await a.tm.getToken();
    await written(store);
    assert.equal((await b.tm.getToken()).accessToken, first.accessToken);
    assert.equal(suite.tokenRequests(), 1);
    assert.deepEqual(acquired(b.events), ["store"]);
    assert.ok(!eventTypes(a.events).includes("lease_taken"));
    assert.equal(a.tm.status.leasesTaken, 0);
  });

  it("a 401 after revoke(): the rejected entry is deleted (deleteIfEquals) and one new token request serves both clients", async () => {
    const store = testStore();
    const events = [];
    const client = () =>
      suite.makeClient({ store, onEvent: (e) => events.push({ event: e, json: JSON.stringify(e) }) });
    const one = client();
    const two = client();
    await one.getBalance(ACCOUNT);
    await written(store);
    await two.getBalance(ACCOUNT);
    assert.equal(suite.tokenRequests(), 1);
    const [[entryKey, { value: old }]] = entries(store);
    suite.sb.control.revoke();
    await one.getBalance(ACCOUNT);
    assert.deepEqual(store.deleted.filter((k) => k === entryKey).length, 1, "the rejected entry was deleted");
    assert.ok(eventTypes(events).includes("store_entry_deleted"));
    await two.getBalance(ACCOUNT);
    assert.equal(suite.tokenRequests(), 2, "one new token request for both");
    assert.equal(two.tokens.status.tokenSource, "store");
    const [[, { value: now }]] = entries(store);
    assert.notEqual(now, old);
  });

  it("forceRefresh with a store goes to the endpoint and shares the new token", async () => {
    const store = testStore();
    const a = manager(store);
    const b = manager(store);
    const first = await a.tm.getToken();
    await written(store);
    await b.tm.getToken();
    const [[, { value: old }]] = entries(store);
    const forced = await b.tm.getToken({ forceRefresh: true });
    assert.notEqual(forced.accessToken, first.accessToken);
    assert.equal(suite.tokenRequests(), 2);
    assert.equal(b.tm.status.tokenSource, "endpoint");
    await until(() => entries(store)[0][1].value !== old, "the forced token written");
    const c = manager(store);
    assert.equal((await c.tm.getToken()).accessToken, forced.accessToken);
  });

  it("events, status, JSON and inspect never show the token, the secret, the storeKey or the entry's name", async () => {
    const store = testStore();
    const a = manager(store, { storeKey: STORE_KEY });
    const b = manager(store, { storeKey: STORE_KEY });
    const tokens = [(await a.tm.getToken()).accessToken];
    await written(store);
    tokens.push((await b.tm.getToken({ forceRefresh: true })).accessToken);
    const forbidden = {
      ...tokenForms(tokens),
      ...secretForms(CLIENT.clientId, CLIENT.clientSecret),
      storeKey: STORE_KEY,
      "entry name": entries(store)[0][0].slice("qbank-connect:v1:".length),
    };
    for (const m of [a, b]) {
      assertNoneContain({ ...eventRenderings(m.events), ...managerRenderings(m.tm) }, forbidden);
      assert.match(String(m.tm), /storeKey: \[redacted\]/);
      assert.equal(JSON.parse(JSON.stringify(m.tm)).storeKey, "[redacted]");
    }
    const types = new Set(eventTypes([...a.events, ...b.events]));
    for (const t of ["token_requested", "token_acquired", "lease_taken"]) assert.ok(types.has(t), t);
  });

  const LEASE = /:lease$/;
  const leases = (store) => [...store.map.keys()].filter((k) => LEASE.test(k));

  it("close() resolves once a slow store write (set() takes 300 ms) and the lease's release have settled: then the entry is there and no lease is held", async () => {
    const store = testStore({ slow: { set: 300 } });
    const a = manager(store);
    await a.tm.getToken();
    assert.equal(entries(store).length, 0, "the write is still on its way");
    assert.equal(leases(store).length, 1, "the lease is held until it is written");
    const closing = a.tm.close();
    assert.ok(closing instanceof Promise);
    assert.equal(a.tm.close(), closing, "a second close() waits for the same");
    await assert.rejects(a.tm.getToken(), (e) => e.code === "closed", "later calls reject at once");
    assert.equal(a.tm.status.state, "closed");
    assert.equal(await closing, undefined);
    assert.equal(entries(store).length, 1, "written");
    assert.deepEqual(leases(store), [], "released");
    assert.equal(store.calls.deleteIfEquals, 1);
    assert.ok(eventTypes(a.events).includes("closed"));
    // What close() waited for is what the next instance needs: the token, at once.
    const b = manager(store);
    await b.tm.getToken();
    assert.deepEqual(acquired(b.events), ["store"]);
    assert.equal(suite.tokenRequests(), 1);
  });

  it("close() while holding the lease, its token request in flight: the lease is released at once, the late token is never written (its callers reject with closed when it ends); the next manager fetches without waiting for the lease TTL", async () => {
    const store = testStore();
    const leaseTtlMs = 5000;
    suite.sb.control.addFault({ target: "token", delayMs: 800, count: 1 });
    const a = manager(store, { leaseTtlMs });
    const waiting = [rejectionOf(a.tm.getToken()), rejectionOf(a.tm.getToken())];
    await until(() => eventTypes(a.events).includes("token_requested"), "a's token request sent");
    assert.equal(leases(store).length, 1, "a holds the lease");
    await a.tm.close();
    assert.deepEqual(leases(store), [], "released by close()");
    assert.equal(store.map.size, 0, "nothing written");
    const b = manager(store, { leaseTtlMs });
    const started = Date.now();
    const token = await b.tm.getToken();
    assert.ok(Date.now() - started < leaseTtlMs / 2, `b waited ${Date.now() - started} ms`);
    assert.deepEqual(acquired(b.events), ["endpoint"]);
    assert.ok(!eventTypes(b.events).includes("lease_busy"), "b found the lease free");
    for (const e of await Promise.all(waiting)) assertQBankError(e, "closed");
    await written(store);
    // a's late answer came (its callers settled) and was dropped.
    await until(() => suite.tokenRequests() === 2, "a's late token answered");
    await sleep(100);
    assert.equal(store.calls.set, 1, "only b's token was written");
    const c = manager(store);
    assert.equal((await c.tm.getToken()).accessToken, token.accessToken);
  });

  it("close() while a lease request is in flight (setIfAbsent takes 300 ms): the lease granted late is released before close() resolves, nothing is fetched", async () => {
    const store = testStore({ slow: { setIfAbsent: 300 } });
    const a = manager(store);
    const waiting = rejectionOf(a.tm.getToken());
    await until(() => store.calls.setIfAbsent === 1, "the lease requested");
    await a.tm.close();
    assertQBankError(await waiting, "closed");
    assert.equal(store.calls.deleteIfEquals, 1, "the late lease released");
    assert.equal(store.map.size, 0);
    await sleep(100);
    assert.equal(suite.tokenRequests(), 0);
    assert.equal(store.calls.get, 1, "no read after close()");
  });

  for (const fault of ["throw", "hang"]) {
    it(`close() never rejects, bounded by storeTimeoutMs, with a store whose writes and deletes ${fault}`, async () => {
      const storeTimeoutMs = 150;
      const store = testStore({ slow: { set: fault, deleteIfEquals: fault } });
      const bank = suite.makeClient({ store, storeTimeoutMs, onEvent: () => {} });
      const tm = manager(store, { storeTimeoutMs });
      await Promise.all([bank.getBalance(ACCOUNT), tm.tm.getToken({ forceRefresh: true })]);
      const started = performance.now();
      assert.equal(await Promise.all([bank.close(), tm.tm.close()]).then(() => "resolved", () => "rejected"), "resolved");
      const ms = performance.now() - started;
      // A write, then a release, each bounded by the store timeout (slack for a loaded machine).
      assert.ok(ms < 2 * storeTimeoutMs + 1500, `${Math.round(ms)} ms`);
      if (fault === "hang") assert.ok(ms >= storeTimeoutMs / 2, `close() waited for the hanging write (${Math.round(ms)} ms)`);
    });
  }

  it("close() without a store resolves at once (TokenManager, QBankClient, client.tokens)", async () => {
    const m = manager(undefined);
    await m.tm.getToken();
    const bank = suite.makeClient();
    await bank.getBalance(ACCOUNT);
    for (const closing of [m.tm.close(), m.tm.close(), bank.tokens.close(), bank.close()]) {
      assert.ok(closing instanceof Promise);
      assert.equal(await closing, undefined);
    }
    assertQBankError(await rejectionOf(bank.getBalance(ACCOUNT)), "closed");
  });

  it("bad store options are config errors that name the option", () => {
    const base = { tokenUrl: "https://bank.example/token", clientId: "id", clientSecret: "s", autoRefresh: false };
    const store = testStore();
    const cases = [
      [{ store: { set: store.set } }, /`store`/],
      [{ store: { get: store.get } }, /`store`/],
      [{ store: "redis://localhost" }, /`store`/],
      [{ store, storeKey: "short" }, /`storeKey`/],
      [{ store, storeKey: 42 }, /`storeKey`/],
      [{ storeKey: STORE_KEY }, /`storeKey`/],
      [{ store, storeTimeoutMs: 0 }, /`storeTimeoutMs`/],
      [{ store, storeTimeoutMs: 60_001 }, /`storeTimeoutMs`/],
      [{ store, storeTimeoutMs: "100" }, /`storeTimeoutMs`/],
      [{ store, leaseTtlMs: 999 }, /`leaseTtlMs`/],
      [{ store, leaseTtlMs: 120_001 }, /`leaseTtlMs`/],
    ];
    for (const [options, names] of cases) {
      for (const make of [(o) => new TokenManager({ ...base, ...o }), (o) => new QBankClient({ clientId: "id", clientSecret: "s", autoRefresh: false, ...o })]) {
        const err = thrownBy(() => make(options));
        assertQBankError(err, "config");
        assert.match(err.message, names, JSON.stringify(Object.keys(options)));
        assert.ok(!err.message.includes(STORE_KEY));
      }
    }
    // The bounds themselves are fine, and a store without the optional methods too.
    const ok = new TokenManager({ ...base, store: { get: store.get, set: store.set }, storeKey: STORE_KEY, storeTimeoutMs: 1, leaseTtlMs: 120_000 });
    ok.close();
  });
});
