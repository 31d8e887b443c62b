// One instance of a fleet, in its own process: Node, Bun or Deno. Used by tests/js/fleet.test.mjs
// (through ./fleet.mjs) and by the bench's fleet phase. Not a test file.
//
//   node|bun tests/js/fleet/agent.mjs          (configuration: JSON in QBANK_FLEET_AGENT)
//   deno run --unstable-kv --allow-net=127.0.0.1 --allow-env --allow-read --allow-write tests/js/fleet/agent.mjs
//
// It makes one QBankClient from the built package with the store of its configuration (a redis
// client through redisStore, a Deno KV file through denoKvStore, or none), optionally behind a
// wrapper that answers every store call late, prints {"type":"ready"} and then obeys commands, one
// JSON line each on stdin:
//
//   {"cmd":"run","op":"getToken"|"getBalance","n":250}   n concurrent calls fired at once (this is
//        the "go": the parent sends it to every instance at the same moment); prints a report
//   {"cmd":"exit"}                                        closes everything and exits 0
//   {"cmd":"run",...,"then":"exit"}                       the run, its report, then `await
//        client.close()` and process.exit(0) at once: no store client closed, nothing flushed
//        but by the package (a CLI, a SIGTERM handler, a serverless function)
//
// The configuration: { tokenUrl, apiBaseUrl, clientId, clientSecret, scope?, account?, options?
// (more QBankClient options: storeTimeoutMs, leaseTtlMs, storeKey, ...), store?, storeDelayMs?,
// pkgUrl?, storeSetDelayMs? (every store set() is made that late: slow writes) }, where store is { kind: "redis", url, lib?: "redis" (node-redis v5, the default) |
// "redis4" | "ioredis", connect?: "background" (do not wait for the connection: a server that is
// down), prefix? } or { kind: "denokv", path } or absent (no store).
//
// What it prints on stdout, one JSON line each: {"type":"ready"}, {"type":"event",...} for every
// event the package emits (only its type and non-secret fields, streamed as they happen, so the
// parent can act on a lease_taken), {"type":"report",...} after each run, {"type":"fatal",...}.
// A report never holds a token, the secret or the storeKey: tokens are reported as the first 16
// hex digits of their SHA-256, and the agent itself checks that no event, error, status or
// rendering of the client holds a token it got, the secret, the storeKey or an entry name
// ("qbank-connect:v1:..."): any hit is listed in the report's `leaks` (names of places, no values).

const isDeno = typeof globalThis.Deno !== "undefined";
const runtime = isDeno ? "deno" : typeof globalThis.Bun !== "undefined" ? "bun" : "node";
const env = (name) => (isDeno ? Deno.env.get(name) : process.env[name]);
const exit = (code) => (isDeno ? Deno.exit(code) : process.exit(code));
const pid = isDeno ? Deno.pid : process.pid;
const cfg = JSON.parse(env("QBANK_FLEET_AGENT") ?? "{}");
const { inspect } = await import("node:util");

const out = (obj) => console.log(JSON.stringify(obj));

// The package: the entry each runtime resolves to (pkg/node.js in Node, pkg/index.js in Deno and Bun).
const pkgDir = new URL("../../../pkg/", import.meta.url);
const pkgUrl = cfg.pkgUrl ?? new URL(runtime === "node" ? "node.js" : "index.js", pkgDir).href;
const pkg = await import(pkgUrl);

const ENTRY_NAME = "qbank-connect:v1:";

// ---- the store ----
let closeStore = async () => {};
async function makeStore(spec) {
  if (!spec) return undefined;
  if (spec.kind === "redis") {
    const lib = spec.lib ?? "redis";
    let client;
    if (lib === "ioredis") {
      const { Redis } = await import("ioredis");
      client = new Redis(spec.url, { lazyConnect: true, maxRetriesPerRequest: null });
      client.on("error", () => {});
      const connecting = client.connect().catch(() => {});
      if (spec.connect !== "background") await connecting;
      closeStore = () => gracefully(() => client.quit(), () => client.disconnect());
    } else {
      const { createClient } = await import(lib);
      client = createClient({ url: spec.url });
      client.on("error", () => {}); // a server that is down or killed: the store times out or throws
      const connecting = client.connect().catch(() => {});
      if (spec.connect !== "background") await connecting;
      // node-redis v5 close() / v4 quit(): after the commands already sent are answered.
      closeStore = () => gracefully(() => (typeof client.close === "function" ? client.close() : client.quit()), () => (typeof client.destroy === "function" ? client.destroy() : client.disconnect()));
    }
    return pkg.redisStore(client, spec.prefix === undefined ? undefined : { prefix: spec.prefix });
  }
  if (spec.kind === "denokv") {
    const kv = await Deno.openKv(spec.path);
    closeStore = async () => kv.close();
    return pkg.denoKvStore(kv);
  }
  throw new Error(`unknown store kind ${spec.kind}`);
}

/**
 * Closes a redis client after the commands it has already sent are answered (a store write the
 * package fired just before, say), or at once when that takes longer than 500 ms (a server that
 * is down or killed).
 */
async function gracefully(close, destroy) {
  const closed = Promise.resolve()
    .then(close)
    .then(
      () => true,
      () => false,
    );
  if (!(await Promise.race([closed, new Promise((resolve) => setTimeout(() => resolve(false), 500))]))) {
    try {
      await destroy();
    } catch {
      /* already closed */
    }
  }
}

/** The same store, answering every call `ms` late (the call itself is made at once). */
function answeringLate(store, ms) {
  const late = {};
  for (const name of ["get", "set", "setIfAbsent", "deleteIfEquals"]) {
    if (typeof store[name] !== "function") continue;
    late[name] = async (...args) => {
      const settled = await Promise.allSettled([store[name](...args)]);
      await new Promise((resolve) => setTimeout(resolve, ms));
      if (settled[0].status === "rejected") throw settled[0].reason;
      return settled[0].value;
    };
  }
  return late;
}

/** The store's set(), made `ms` late (the write reaches the store only then). */
function writingLate(store, ms) {
  return async (...args) => {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return store.set(...args);
  };
}

// ---- what the package produced, for the report and the agent's own leak check ----
let t0 = performance.now();
let events = [];
const renderings = []; // [where, text]
function onEvent(e) {
  const at = performance.now() - t0;
  events.push({ type: e.type, source: e.source, step: e.step, failure: e.failure, reason: e.reason, code: e.code, at });
  renderings.push([`event ${e.type} (JSON)`, JSON.stringify(e)], [`event ${e.type} (inspect)`, inspect(e, { depth: 5 })]);
  out({ type: "event", pid, event: e.type, source: e.source, step: e.step, failure: e.failure, reason: e.reason, code: e.code, at: Math.round(at) });
}

async function sha16(text) {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(d).slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

function leaksIn(tokens) {
  const forbidden = [["the client secret", cfg.clientSecret], ["the storeKey", cfg.options?.storeKey], ["an entry name", ENTRY_NAME]];
  for (const t of tokens) forbidden.push(["a token", t]);
  const found = [];
  for (const [where, text] of renderings) {
    for (const [what, value] of forbidden) {
      if (value && String(text).includes(value)) found.push(`${where} contains ${what}`);
    }
  }
  return [...new Set(found)];
}

// ---- main ----
let client;
try {
  let store = await makeStore(cfg.store);
  if (store && cfg.storeDelayMs) store = answeringLate(store, cfg.storeDelayMs);
  if (store && cfg.storeSetDelayMs) store = { ...store, set: writingLate(store, cfg.storeSetDelayMs) };
  client = new pkg.QBankClient({
    environment: { tokenUrl: cfg.tokenUrl, apiBaseUrl: cfg.apiBaseUrl },
    clientId: cfg.clientId,
    clientSecret: cfg.clientSecret,
    scope: cfg.scope ?? ["balances.read"],
    allowInsecureHttp: true,
    autoRefresh: false,
    onEvent,
    ...(store ? { store } : {}),
    ...(cfg.options ?? {}),
  });
} catch (e) {
  out({ type: "fatal", pid, runtime, code: e?.code, message: String(e?.message ?? e).slice(0, 300) });
  exit(2);
}
const tokens = client.tokens;
const account = cfg.account ?? "a1b2c3d4-e5f6-7890-1234-567890abcde";
const seen = new Set(); // every token this instance got (never printed)

async function runCalls(op, n) {
  events = [];
  renderings.length = 0;
  t0 = performance.now();
  const ends = new Float64Array(n);
  const call = op === "getBalance" ? () => client.getBalance(account) : () => tokens.getToken();
  const calls = [];
  for (let i = 0; i < n; i++) {
    calls.push(
      call().then(
        (v) => {
          ends[i] = performance.now() - t0;
          return v;
        },
        (e) => {
          ends[i] = performance.now() - t0;
          throw e;
        },
      ),
    );
  }
  const settled = await Promise.allSettled(calls);
  const elapsedMs = performance.now() - t0;
  const failures = {};
  let firstError;
  let ok = 0;
  for (const s of settled) {
    if (s.status === "fulfilled") {
      ok += 1;
      if (op === "getToken") seen.add(s.value.accessToken);
      else if (s.value.availableBalance === undefined) failures.wrong_balance = (failures.wrong_balance ?? 0) + 1;
      continue;
    }
    const e = s.reason;
    const code = e?.code ?? e?.name ?? "unknown";
    failures[code] = (failures[code] ?? 0) + 1;
    renderings.push([`error ${code} (message)`, String(e?.message)], [`error ${code} (JSON)`, JSON.stringify(e)], [`error ${code} (inspect)`, inspect(e)]);
    firstError ??= { code, message: String(e?.message ?? e).slice(0, 300) };
  }
  const failed = n - ok;
  // The token in memory now (cached: no request) when every call succeeded.
  if (failed === 0 && op === "getBalance") seen.add((await tokens.getToken()).accessToken);
  const status = { ...tokens.status };
  renderings.push(["status (JSON)", JSON.stringify(status)], ["client (String)", String(client)], ["client (JSON)", JSON.stringify(client)], ["client (inspect)", inspect(client)], ["tokens (inspect)", inspect(tokens)]);
  const counts = {};
  for (const e of events) {
    counts[e.type] = (counts[e.type] ?? 0) + 1;
    if (e.source) counts[`${e.type}:${e.source}`] = (counts[`${e.type}:${e.source}`] ?? 0) + 1;
    if (e.step) counts[`${e.type}:${e.step}:${e.failure}`] = (counts[`${e.type}:${e.step}:${e.failure}`] ?? 0) + 1;
    if (e.reason) counts[`${e.type}:${e.reason}`] = (counts[`${e.type}:${e.reason}`] ?? 0) + 1;
  }
  const firstAt = (type) => events.find((e) => e.type === type)?.at;
  const sorted = Array.from(ends).sort((a, b) => a - b);
  return {
    type: "report",
    pid,
    runtime,
    op,
    n,
    ok,
    failed,
    failures,
    firstError,
    elapsedMs,
    p50Ms: sorted[Math.floor(n / 2)],
    maxMs: sorted[n - 1],
    events: counts,
    tokenRequestedAt: firstAt("token_requested"),
    tokenAcquiredAt: firstAt("token_acquired"),
    status,
    tokens: await Promise.all([...seen].map(sha16)),
    leaks: leaksIn(seen),
  };
}

out({ type: "ready", pid, runtime });

const stdin = isDeno ? Deno.stdin.readable : process.stdin;
const decoder = new TextDecoder();
let buffered = "";
for await (const chunk of stdin) {
  buffered += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
  let nl;
  while ((nl = buffered.indexOf("\n")) >= 0) {
    const line = buffered.slice(0, nl).trim();
    buffered = buffered.slice(nl + 1);
    if (!line) continue;
    const cmd = JSON.parse(line);
    if (cmd.cmd === "run") {
      try {
        out(await runCalls(cmd.op, cmd.n));
      } catch (e) {
        out({ type: "fatal", pid, runtime, message: String(e?.message ?? e).slice(0, 300) });
      }
      if (cmd.then === "exit") {
        await client.close();
        exit(0);
      }
    } else if (cmd.cmd === "exit") {
      await client.close();
      await closeStore();
      exit(0);
    }
  }
}
// stdin closed: the parent is gone.
await client.close();
await closeStore();
exit(0);
