// TokenCoordinator and durableObjectStore (issue 19) on the host, in simulated time: the Durable
// Object's logic (src/js/coordinator.js) built on a stand-in DurableObject base and state (a Map
// for storage, the alarm recorded, not fired: each test fires it), the isolates being
// TokenManagers and QBankClients of the built package, the token endpoint the sandbox. The same
// code runs in real workerd (the Durable Object, Workers RPC, alarms, on-disk storage) in
// coordinator.test.mjs; here each rule is pinned with an exact clock:
// - one token request for many managers; each says its token came from the coordinator;
// - the object's alarm lies ahead of every isolate's refresh point (expiresAt − 2·W), and a
//   refresh there means an isolate at its own refresh point adopts the new token with no
//   request of its own; an alarm after no isolate asked renews nothing;
// - a refresh failing at the object (Retry-After) is invisible, and no isolate goes around it:
//   each keeps its token and asks the object again later (the fleet core's postpone);
// - a 401 across the isolates costs one new token request (the object's forget);
// - the object failing in every way (throwing, rejecting, garbage, no token) leads to the
//   isolate's own request, and no caller fails;
// - its storage holds neither the token, the secret nor the client id in the clear.
import { describe, before, after, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { randomBytes } from "node:crypto";
import { inspect } from "node:util";
import { startSandbox } from "../../src/testing/sandbox.mjs";
import { eventually, fakeClock } from "../reliability/support.mjs";
import { ROOT } from "./harness.mjs";

const PKG = join(ROOT, "pkg");
// The unbundled Node entry and the coordinator beside the store driver it imports: one store.js,
// so durableObjectStore's marker is the one TokenManager's driver checks.
const { TokenManager, QBankClient, QBankError } = await import(pathToFileURL(join(PKG, "node.src.js")).href);
const [snippets] = readdirSync(join(PKG, "snippets"));
const { tokenCoordinator, durableObjectStore } = await import(pathToFileURL(join(PKG, "snippets", snippets, "src", "js", "coordinator.js")).href);

const CLIENT = { clientId: "coord-unit-client", clientSecret: `qb-coord-unit-${randomBytes(12).toString("hex")}`, scopes: ["balances.read"] };
const ACCOUNT = "a1b2c3d4-e5f6-7890-1234-567890abcde";

class StandInDurableObject {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
  }
}
const Coordinator = tokenCoordinator(StandInDurableObject, TokenManager);

/** A namespace of stand-in objects: storage a Map (values cloned as Durable Object storage does), the alarm recorded. */
function namespace() {
  const objects = new Map();
  const ns = {
    objects,
    idFromName: (name) => `id:${name}`,
    get(id) {
      if (!objects.has(id)) {
        const data = new Map();
        const state = {
          data,
          alarm: null,
          storage: {
            get: async (k) => structuredClone(data.get(k)),
            put: async (k, v) => void data.set(k, structuredClone(v)),
            delete: async (k) => data.delete(k),
            setAlarm: async (at) => void (state.alarm = at),
          },
          waitUntil() {},
        };
        objects.set(id, { object: new Coordinator(state, {}), state });
      }
      return objects.get(id).object;
    },
    /** The one object (every test here has one credential set). */
    only() {
      assert.equal(objects.size, 1, "one object per credential set");
      return [...objects.values()][0];
    },
  };
  return ns;
}

describe("TokenCoordinator on the host, simulated time", { timeout: 60_000 }, () => {
  let sb;
  let clock;
  const made = [];
  before(async () => {
    sb = await startSandbox({ clients: [CLIENT] });
    clock = fakeClock(sb);
  });
  after(async () => {
    for (const m of made) await m.close();
    clock.restore();
    await sb.close();
  });
  const requests = () => sb.control.counters().tokenRequests;
  const manager = (ns, extra = {}) => {
    const events = [];
    const tm = new TokenManager({
      tokenUrl: sb.tokenUrl,
      clientId: CLIENT.clientId,
      clientSecret: CLIENT.clientSecret,
      scope: ["balances.read"],
      allowInsecureHttp: true,
      autoRefresh: false,
      store: durableObjectStore(ns),
      onEvent: (e) => events.push(e),
      ...extra,
    });
    made.push(tm);
    return Object.assign(tm, { events });
  };
  const fresh = () => {
    sb.control.reset();
    clock.restore();
    clock = fakeClock(sb);
  };

  test("many managers, one token request: every token comes from the coordinator", async () => {
    fresh();
    const ns = namespace();
    const managers = Array.from({ length: 5 }, () => manager(ns));
    const tokens = await Promise.all(managers.flatMap((m) => Array.from({ length: 20 }, () => m.getToken())));
    assert.equal(requests(), 1);
    assert.equal(new Set(tokens.map((t) => t.accessToken)).size, 1);
    for (const m of managers) {
      assert.equal(m.status.tokenRequests, 0, "no isolate asked the endpoint");
      assert.equal(m.status.tokenSource, "coordinator");
      assert.equal(m.status.leasesTaken, undefined, "no lease with a coordinator");
      assert.deepEqual(m.events.filter((e) => e.type === "token_acquired").map((e) => e.source), ["coordinator"]);
      assert.ok(!m.events.some((e) => e.type === "lease_taken"));
    }
    const st = await ns.only().object.status();
    assert.equal(st.tokenRequests, 1);
    assert.equal(st.state, "valid");
    // Nothing secret in what the object keeps or says.
    const { data } = ns.only().state;
    const kept = JSON.stringify([...data.entries()]) + JSON.stringify(st);
    for (const s of [tokens[0].accessToken, CLIENT.clientSecret, CLIENT.clientId]) assert.ok(!kept.includes(s), "storage and status carry no secret in the clear");
    // Nor does the object itself, shown or serialised (its options live outside it).
    const { object } = ns.only();
    for (const shown of [JSON.stringify(object), inspect(object, { depth: 10, showHidden: true })]) {
      for (const s of [tokens[0].accessToken, CLIENT.clientSecret]) assert.ok(!shown.includes(s), "the object shows no secret");
    }
    assert.equal(data.size, 1);
    assert.match([...data.keys()][0], /^qbank-connect:v1:[0-9a-f]{64}$/);
    assert.equal(ns.objects.keys().next().value, `id:${[...data.keys()][0]}`, "the object is named after the entry");
  });

  test("the alarm lies ahead of every isolate's refresh point; an isolate there adopts the object's new token; an idle object renews nothing", async () => {
    fresh();
    const ns = namespace();
    const a = manager(ns);
    const b = manager(ns);
    const t1 = await a.getToken();
    await b.getToken();
    const { object, state } = ns.only();
    const E = t1.expiresAt;
    // An hour's token: the isolates refresh 300 s (to 315 s with jitter) before expiry, the
    // object twice as early.
    assert.ok(state.alarm >= E - 630_000 && state.alarm <= E - 600_000, `alarm ${(E - state.alarm) / 1000} s before expiry`);
    for (const m of [a, b]) assert.ok(m.status.refreshAt > state.alarm, "every isolate refreshes after the object");
    clock.freeze(state.alarm);
    await object.alarm();
    assert.equal(requests(), 2, "the alarm refreshed");
    assert.ok(state.alarm > E, "and set the next alarm, for the new token");
    // The isolates still hold the first token until their own refresh point.
    assert.equal((await a.getToken()).accessToken, t1.accessToken);
    clock.freeze(a.status.refreshAt);
    assert.equal((await a.getToken()).accessToken, t1.accessToken, "the caller is served at once");
    await eventually(() => a.status.expiresAt > E, "a adopts the object's token");
    clock.freeze(Math.max(Date.now(), b.status.refreshAt));
    await b.getToken();
    await eventually(() => b.status.expiresAt > E, "b adopts it");
    assert.equal(requests(), 2, "no isolate asked the endpoint");
    assert.equal(a.status.tokenRequests + b.status.tokenRequests, 0);
    // The isolates asked for the second token: its alarm renews it. Nobody asks for the third:
    // its alarm renews nothing.
    clock.freeze(state.alarm);
    await object.alarm();
    assert.equal(requests(), 3, "renewed: isolates asked for the token it replaces");
    clock.freeze(state.alarm);
    await object.alarm();
    assert.equal(requests(), 3, "an idle object does not renew");
    assert.equal((await object.status()).alarms, 3);
  });

  test("a refresh failing at the object keeps the still-valid token; the object and every isolate wait out Retry-After", async () => {
    fresh();
    const ns = namespace();
    const a = manager(ns);
    const t1 = await a.getToken();
    const { object, state } = ns.only();
    // Retry-After beyond the isolates' own refresh points (about 300 s before expiry).
    sb.control.addFault({ target: "token", status: 503, headers: { "Retry-After": "400" }, count: 1, body: "" });
    // An isolate asked since the token came (it did, above).
    clock.freeze(state.alarm);
    await object.alarm();
    assert.equal(requests(), 2);
    const st = await object.status();
    assert.equal(st.state, "valid", "the old token stays");
    assert.equal(st.consecutiveFailures, 1);
    assert.ok(state.alarm >= Date.now() + 400_000, "the next alarm respects Retry-After");
    assert.equal((await a.getToken()).accessToken, t1.accessToken);
    // The isolates wait with the object: at their refresh points they keep the token and ask the
    // object again later, never the endpoint, until the object has a new token.
    const b = manager(ns);
    assert.equal((await b.getToken()).accessToken, t1.accessToken, "a new isolate gets the object's token");
    for (const m of [a, b]) {
      clock.freeze(Math.max(Date.now(), m.status.refreshAt));
      assert.equal((await m.getToken()).accessToken, t1.accessToken);
      await eventually(() => m.status.state === "valid" && m.status.refreshAt > Date.now(), "postponed");
    }
    assert.equal(requests(), 2, "no isolate went around the object's Retry-After");
    assert.equal(a.status.tokenRequests + b.status.tokenRequests, 0);
    clock.freeze(state.alarm);
    await object.alarm();
    assert.equal(requests(), 3, "the object's retry, after Retry-After");
    for (const m of [a, b]) {
      clock.freeze(Math.max(Date.now(), m.status.refreshAt));
      await m.getToken();
      await eventually(() => m.status.expiresAt > t1.expiresAt, "the new token adopted");
    }
    assert.equal(requests(), 3);
  });

  test("a 401 across the isolates: one new token request, from the object", async () => {
    fresh();
    const ns = namespace();
    const clients = Array.from({ length: 3 }, () => {
      const c = new QBankClient({
        environment: { tokenUrl: sb.tokenUrl, apiBaseUrl: sb.apiBaseUrl },
        clientId: CLIENT.clientId,
        clientSecret: CLIENT.clientSecret,
        allowInsecureHttp: true,
        store: durableObjectStore(ns),
      });
      made.push(c);
      return c;
    });
    for (const c of clients) assert.equal((await c.getBalance(ACCOUNT)).availableBalance, "1234.56");
    assert.equal(requests(), 1);
    sb.control.revoke();
    const got = await Promise.all(clients.flatMap((c) => [c.getBalance(ACCOUNT), c.getBalance(ACCOUNT)]));
    assert.ok(got.every((b) => b.availableBalance === "1234.56"), "no caller failed");
    assert.equal(requests(), 2, "one new token for all of them");
    assert.equal((await ns.only().object.status()).tokenRequests, 2);
  });

  test("the object failing in every way: each isolate asks itself, no caller fails", async () => {
    const broken = {
      "get() throws": { idFromName: (n) => n, get: () => { throw new Error("binding gone"); } },
      "token() rejects": { idFromName: (n) => n, get: () => ({ token: async () => { throw new Error("Durable Object is overloaded"); } }) },
      "token() answers garbage": { idFromName: (n) => n, get: () => ({ token: async () => "not-an-entry" }) },
      "token() answers null (no token)": { idFromName: (n) => n, get: () => ({ token: async () => null }) },
      "token() answers a number": { idFromName: (n) => n, get: () => ({ token: async () => 42 }) },
    };
    for (const [what, ns] of Object.entries(broken)) {
      fresh();
      const m = manager(ns);
      const tokens = await Promise.all(Array.from({ length: 10 }, () => m.getToken()));
      assert.equal(new Set(tokens.map((t) => t.accessToken)).size, 1, what);
      assert.equal(requests(), 1, `${what}: one request of the isolate's own`);
      assert.equal(m.status.tokenSource, "endpoint", what);
    }
  });

  test("bad input: a config error for a non-binding; the object answers null to a malformed call and keeps nothing", async () => {
    for (const bad of [undefined, null, {}, { get() {} }, "QBANK_TOKENS"]) {
      assert.throws(() => durableObjectStore(bad), (e) => e instanceof QBankError && e.code === "config" && /Durable Object namespace binding/.test(e.message));
    }
    const ns = namespace();
    const object = ns.get("x");
    const options = { tokenUrl: sb.tokenUrl, clientId: CLIENT.clientId, clientSecret: CLIENT.clientSecret, allowInsecureHttp: true };
    const name = "qbank-connect:v1:" + "0".repeat(64);
    for (const req of [undefined, null, {}, { v: 2, name, options }, { v: 1, name: "qbank-connect:v1:zz", options }, { v: 1, name, options: null }, { v: 1, name, options: { tokenUrl: "http://example.com/token" } }]) {
      assert.equal(await object.token(req), null);
    }
    assert.equal(ns.objects.get("x").state.data.size, 0);
    // A name that is not the one the options make: the manager never writes under it.
    fresh();
    assert.equal(await object.token({ v: 1, name, have: null, options }), null);
    assert.equal(ns.objects.get("x").state.data.size, 0, "nothing stored under a name the options do not make");
  });
});
