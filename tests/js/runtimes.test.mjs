// worker-example/ end to end in the real runtimes, against the local sandbox on loopback:
// the Cloudflare Worker bundled by wrangler and run in workerd, the Deno server, the Node server,
// and the Node server under Bun. Plus the page in headless Chromium, and the package's refusal
// to run with a secret in a web page.
//
// The 20-second expiry runs start first and go on in the background while the other tests run;
// their assertions come last.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync } from "node:fs";
import { join, normalize, sep } from "node:path";
import { BIN, ROOT, PKG, consumerFile, ensureConsumer, run, startWorkerd, tokenTap } from "./harness.mjs";
import { DIST, EXAMPLE, buildWorker, sandboxSettings, startExampleServer, startWorkerdExample, wranglerConfig } from "./examples.mjs";
import { checkSurface, surfaceProbe } from "./surface.mjs";
import { startSandbox, DEFAULT_CLIENTS } from "../../src/testing/sandbox.mjs";

const ACCOUNT = "a1b2c3d4-e5f6-7890-1234-567890abcde";
const CLIENT = DEFAULT_CLIENTS[0];
const RUNTIMES = ["workerd", "deno", "node", "bun"];
const ARTIFACTS = join(ROOT, "tests", "artifacts");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

const cleanups = [];
const later = (fn) => cleanups.push(fn);
let build;
let expiryRuns;

/**
 * The Worker in workerd runs with the no-wasm-from-bytes guard (see examples.mjs) in every test.
 * The tests of one isolate's own token (these, the end of a request, the page's memory run) run
 * it without its QBANK_TOKENS binding, as deployed without the coordinator: each isolate then
 * keeps its own token. The coordinator (the default, wrangler.toml's binding) has its own tests.
 */
function startRuntime(kind, settings, name) {
  return kind === "workerd"
    ? startWorkerdExample({ name, bindings: settings, guard: true, coordinator: false })
    : startExampleServer(kind, settings);
}

async function sandboxFor(options) {
  const sb = await startSandbox(options);
  later(() => sb.close());
  return sb;
}

async function serverFor(kind, sb, name) {
  const srv = await startRuntime(kind, sandboxSettings(sb, CLIENT), name);
  later(() => srv.stop());
  return srv;
}

async function getJson(url, init) {
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000), ...init });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, type: res.headers.get("content-type") ?? "", text, body };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- expiry: a 5-second token, a steady trickle for 20 seconds ----

const LIFETIME_S = 5;
const TRICKLE_MS = 20_000;
const TRICKLE_GAP_MS = 200;

/**
 * The package refreshes a token L/4 before it expires, up to 5 % of that earlier (jitter): at
 * least every L·(1 − 1.05/4) = 3.69 s for L = 5 s. Over 20 s that is the first token plus at
 * most ⌈20 / 3.69⌉ = 6 refreshes. Each token lives only 5 s, so at least ⌈20 / 5⌉ = 4 are needed.
 */
const MAX_TOKENS = 1 + Math.ceil(TRICKLE_MS / (LIFETIME_S * 1000 * (1 - 1.05 / 4)));
const MIN_TOKENS = Math.ceil(TRICKLE_MS / (LIFETIME_S * 1000));

async function runExpiry(kind) {
  const sb = await sandboxFor({ tokenLifetimeSeconds: LIFETIME_S });
  const srv = await serverFor(kind, sb, `expiry-${kind}`);
  const results = [];
  const t0 = Date.now();
  while (Date.now() - t0 < TRICKLE_MS) {
    const at = Date.now() - t0;
    const r = await getJson(`${srv.url}/balances/${ACCOUNT}`).catch((e) => ({ status: 0, text: String(e) }));
    results.push({ ...r, at });
    await sleep(TRICKLE_GAP_MS);
  }
  const counters = sb.control.counters();
  await srv.stop();
  return { kind, results, counters, seconds: (Date.now() - t0) / 1000 };
}

before(() => {
  build = buildWorker();
  expiryRuns = Promise.all(RUNTIMES.map((k) => runExpiry(k).then((v) => ({ ok: true, v }), (e) => ({ ok: false, e, kind: k }))));
});

after(async () => {
  await expiryRuns;
  for (const fn of cleanups.reverse()) await fn();
});

// ---- the wrangler bundle ----

test("wrangler bundles the Worker with the .wasm as its own module, and nothing compiles wasm from bytes", async () => {
  const files = readdirSync(DIST);
  assert.deepEqual(build.wasm.length, 1, `one .wasm module in dist/: ${files.join(", ")}`);
  const wasmName = build.wasm[0];
  const wasm = readFileSync(join(DIST, wasmName));
  assert.deepEqual([...wasm.subarray(0, 4)], [0x00, 0x61, 0x73, 0x6d], "a real wasm module");
  assert.ok(wasm.equals(readFileSync(join(PKG, "qbank_connect_bg.wasm"))), "the package's own .wasm, unchanged");
  const bundle = readFileSync(join(DIST, "index.js"), "utf8");
  const escaped = wasmName.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  assert.match(bundle, new RegExp(`^import \\w+ from "\\./${escaped}";$`, "m"), "index.js imports the .wasm as a module");
  // The Node/Deno entry embeds the wasm as base64 ("AGFzbQ" is "\0asm"); the Worker entry must not.
  assert.ok(!bundle.includes("AGFzbQ"), "no base64 wasm in the bundle");
  assert.ok(!bundle.includes("wasmBytes"), "the embedded-bytes entry is not bundled");
  assert.ok(!/WebAssembly\.(compile|instantiate|compileStreaming|instantiateStreaming)\s*\(/.test(bundle), "no WebAssembly.compile/instantiate call");
  assert.ok(bundle.length < 200_000, `the JavaScript stays small (${bundle.length} bytes)`);

  // At run time: the bundle, with every way of compiling wasm from bytes made to throw as on
  // Cloudflare, serves a balance (every workerd test below runs with this guard too).
  const sb = await sandboxFor();
  const w = await serverFor("workerd", sb, "guarded");
  const r = await getJson(`${w.url}/balances/${ACCOUNT}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.availableBalance, "1234.56");
  await w.stop();

  // The guard is not vacuous: the same Worker bundled with the Node entry (wasm from bytes) fails under it.
  // The Node entry has neither of the Workers-only names src/index.ts imports (TokenCoordinator,
  // durableObjectStore): "qbank-connect" resolves to a module that adds them to the Node entry's
  // exports, and the Worker runs without its coordinator binding (so neither is used).
  const esbuild = await import("esbuild");
  const bytesDist = join(ROOT, "target", "worker-example", "bytes-dist");
  const nodeEntry = {
    name: "node-entry-plus-workers-names",
    setup(b) {
      b.onResolve({ filter: /^qbank-connect$/ }, (a) => (a.pluginData === "real" ? undefined : { path: "qbank-connect", namespace: "plus" }));
      b.onLoad({ filter: /.*/, namespace: "plus" }, () => ({
        contents: `export * from "qbank-connect";\nexport class TokenCoordinator {}\nexport function durableObjectStore() { throw new Error("not in the Node entry"); }\n`,
        resolveDir: EXAMPLE,
        pluginData: "real",
      }));
    },
  };
  await esbuild.build({
    entryPoints: [join(EXAMPLE, "src", "index.ts")],
    outfile: join(bytesDist, "index.js"),
    bundle: true,
    format: "esm",
    platform: "neutral",
    conditions: ["import"],
    mainFields: ["module", "main"],
    logLevel: "silent",
    plugins: [nodeEntry],
  });
  let failed = "";
  try {
    const bad = await startWorkerdExample({ name: "guard-self-test", dist: bytesDist, guard: true, coordinator: false, bindings: sandboxSettings(sb, CLIENT) });
    const res = await getJson(`${bad.url}/balances/${ACCOUNT}`);
    failed = res.status === 200 ? "" : `${res.status} ${bad.log()}`;
    await bad.stop();
  } catch (e) {
    failed = String(e.message);
  }
  assert.match(failed, /test guard: new WebAssembly\.Module\(bytes\)/, "the guard refuses the bytes entry");
});

test("wrangler's toolchain with the coordinator: the dry-run bundle exports TokenCoordinator and binds QBANK_TOKENS to it; in workerd with the namespace, 200 concurrent cold requests get the coordinator's token on one token request", async (t) => {
  // wrangler itself: it read wrangler.toml's binding (and refuses to bundle a Worker whose entry
  // does not export a bound class), and its bundle exports the class.
  assert.match(build.output, /env\.QBANK_TOKENS \(TokenCoordinator\)\s+Durable Object/, `wrangler's bindings:\n${build.output}`);
  const bundle = readFileSync(join(DIST, "index.js"), "utf8");
  assert.match(bundle, /^export\s*\{[^}]*\bTokenCoordinator\b[^}]*\};?$/m, "index.js exports TokenCoordinator");
  assert.match(bundle, /from\s*"cloudflare:workers"/, "the class comes from the platform's DurableObject (cloudflare:workers, left to the runtime)");
  const cfg = wranglerConfig();
  assert.deepEqual(cfg.durableObjects, [{ name: "QBANK_TOKENS", class_name: "TokenCoordinator" }]);
  assert.deepEqual(cfg.migrations, [{ tag: "qbank-connect-v1", new_sqlite_classes: ["TokenCoordinator"] }]);

  // That bundle, unchanged, in workerd with the namespace (as wrangler.toml configures it) and
  // the no-wasm-from-bytes guard: every answer is right, the sandbox sees one token request (the
  // object's), and the isolate's token came from the coordinator, not from a request of its own.
  const sb = await sandboxFor();
  const w = await startWorkerdExample({ name: "coordinator", guard: true, bindings: sandboxSettings(sb, CLIENT) });
  later(() => w.stop());
  const all = await Promise.all(Array.from({ length: 200 }, () => getJson(`${w.url}/balances/${ACCOUNT}`)));
  const c = sb.control.counters();
  const status = await getJson(`${w.url}/status`);
  t.diagnostic(`workerd + coordinator: 200 concurrent cold requests -> ${c.tokenRequests} token request(s) at the sandbox; /status token ${JSON.stringify(status.body?.token)}`);
  for (const r of all) {
    assert.equal(r.status, 200, r.text + w.log());
    assert.equal(r.body.availableBalance, "1234.56");
  }
  assert.equal(c.tokenRequests, 1, "exactly one token request, the object's");
  assert.equal(c.apiByStatus["200"], 200);
  assert.equal(status.body.token.source, "coordinator", status.text);
  assert.equal(status.body.token.cache, "coordinator");
  assert.equal(status.body.token.tokenRequests, 0, "the isolate sent no token request of its own");
  assert.equal(status.body.token.state, "valid");
  const page = await fetch(`${w.url}/?account=${ACCOUNT}`).then((r) => r.text());
  assert.match(page, /<dd id="token-source">coordinator<\/dd>/);
  await w.stop();
});

test("the TypeScript type-checks: the Worker (tsc, with @cloudflare/workers-types) and the Deno server (deno check)", () => {
  const tsc = run(join(BIN, "tsc"), ["-p", EXAMPLE]);
  assert.equal(tsc.code, 0, `tsc: ${tsc.stdout}${tsc.stderr}`);
  const deno = run(join(BIN, "deno"), ["check", "--node-modules-dir=manual", "--no-lock", "deno-server.ts"], {
    cwd: EXAMPLE,
    env: { ...process.env, NO_COLOR: "1" },
  });
  assert.equal(deno.code, 0, `deno check: ${deno.stdout}${deno.stderr}`);
});

test("workerd: a Worker without its secrets answers 500 config, naming the missing bindings", async () => {
  const w = await startWorkerdExample({ name: "no-secrets", guard: true });
  later(() => w.stop());
  const r = await getJson(`${w.url}/balances/${ACCOUNT}`);
  assert.equal(r.status, 500, r.text);
  assert.equal(r.body.error, "config");
  assert.match(r.body.message, /QBANK_CLIENT_ID and QBANK_CLIENT_SECRET must be set/);
  await w.stop();
});

// ---- each runtime: exact balances, bad ids, stampede ----

for (const kind of RUNTIMES) {
  test(`${kind}: 200 concurrent requests to a cold server make one token request; exact balances; a bad id is a 400`, async (t) => {
    const sb = await sandboxFor();
    const srv = await serverFor(kind, sb, `main-${kind}`);

    // Cold: nothing has asked for a token yet.
    assert.equal(sb.control.counters().tokenRequests, 0);
    const all = await Promise.all(Array.from({ length: 200 }, () => getJson(`${srv.url}/balances/${ACCOUNT}`)));
    const c = sb.control.counters();
    t.diagnostic(`${kind}: 200 concurrent cold requests -> ${c.tokenRequests} token request(s) counted by the sandbox`);
    for (const r of all) {
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.availableBalance, "1234.56");
      assert.equal(r.body.ledgerBalance, "1300.00");
    }
    assert.equal(c.tokenRequests, 1, "exactly one token request for the isolate/process");
    assert.equal(c.tokenSuccesses, 1);
    assert.equal(c.apiByStatus["200"], 200);

    // 20 significant digits, sent by the bank as JSON numbers, arrive exact.
    const big = await getJson(`${srv.url}/balances/acct-number-amounts`);
    assert.equal(big.status, 200, big.text);
    assert.match(big.type, /application\/json/);
    assert.equal(big.body.availableBalance, "12345678901234567.89");
    assert.equal(big.body.ledgerBalance, "98765432109876543.21");
    assert.equal(big.body.raw.pending_balance, "123456789012345678.90");
    assert.ok(big.text.includes('"availableBalance":"12345678901234567.89"'), "exact in the JSON text, as a string");

    // Bad account ids: 400 JSON with the error code, and nothing sent to the bank.
    const apiBefore = sb.control.counters().apiRequests;
    for (const bad of ["bad%20id", "a1b2%2F..%2Fadmin", "a..b", "%E0%A4%A"]) {
      const r = await getJson(`${srv.url}/balances/${bad}`);
      assert.equal(r.status, 400, `${bad}: ${r.text}`);
      assert.match(r.type, /application\/json/);
      assert.equal(r.body.error, "invalid_argument", bad);
      assert.equal(typeof r.body.message, "string");
      assert.ok(r.body.message.length > 0);
    }
    assert.equal(sb.control.counters().apiRequests, apiBefore, "a bad id never reaches the bank");

    // An unknown account: the bank's 404 comes through as a 404.
    const missing = await getJson(`${srv.url}/balances/no-such-account`);
    assert.equal(missing.status, 404, missing.text);
    assert.equal(missing.body.error, "not_found");

    // The page shows the balance and the token's state.
    const page = await fetch(`${srv.url}/?account=${ACCOUNT}`).then(async (r) => ({ status: r.status, type: r.headers.get("content-type"), text: await r.text() }));
    assert.equal(page.status, 200);
    assert.match(page.type, /text\/html/);
    assert.match(page.text, /<dd id="available">1234\.56 USD<\/dd>/);
    assert.match(page.text, /<dd id="ledger">1300\.00 USD<\/dd>/);
    assert.match(page.text, /<dd id="token-state">valid<\/dd>/);
    assert.match(page.text, /<dd id="token-requests">1<\/dd>/);
    assert.match(page.text, /<dd id="token-source">endpoint<\/dd>/, "its own token request (no coordinator)");
    assert.ok(!page.text.includes(CLIENT.clientSecret), "no secret in the page");
    const status = await getJson(`${srv.url}/status`);
    assert.equal(status.body.token.source, "endpoint", status.text);
    assert.equal(status.body.token.cache, "memory");

    // What the page puts in it is escaped.
    const evil = await fetch(`${srv.url}/?account=${encodeURIComponent('"><script>alert(1)</script>')}`).then((r) => r.text());
    assert.ok(!evil.includes("<script>"), "the account id is escaped in the page");
    assert.ok(evil.includes("&#34;&#62;&#60;script&#62;"));
    await srv.stop();
  });
}

// ---- workerd: timeouts without a per-request AbortSignal ----

test("workerd: an API that never answers times out after timeoutMs, cold and with a cached token (raced, as Workers cancel a finished request's subrequests); a caller's signal still aborts", async () => {
  const sb = await sandboxFor();
  const source = `import { QBankClient } from "qbank-connect";
let bank;
export default {
  async fetch(request, env, ctx) {
    bank ??= new QBankClient({
      environment: { tokenUrl: env.QBANK_TOKEN_URL, apiBaseUrl: env.QBANK_API_BASE_URL },
      clientId: env.QBANK_CLIENT_ID, clientSecret: env.QBANK_CLIENT_SECRET, allowInsecureHttp: true, timeoutMs: 300,
    });
    const abortAfter = Number(new URL(request.url).searchParams.get("abortAfter") || 0);
    const options = { waitUntil: ctx.waitUntil.bind(ctx) };
    if (abortAfter) options.signal = AbortSignal.timeout(abortAfter);
    const started = Date.now();
    try {
      const b = await bank.getBalance("${ACCOUNT}", options);
      return Response.json({ ok: b.availableBalance });
    } catch (e) {
      return Response.json({ code: e.code, mayHaveReachedServer: e.mayHaveReachedServer, ms: Date.now() - started });
    }
  },
};
`;
  const w = await startWorkerd("timeout", source, { bindings: sandboxSettings(sb, CLIENT) });
  later(() => w.stop());
  const ask = async (query = "") => (await fetch(`${w.url}/${query}`, { signal: AbortSignal.timeout(20_000) })).json();
  // Cold: the token request succeeds, the API hangs.
  sb.control.addFault({ target: "api", hang: true, count: 1 });
  const cold = await ask();
  assert.equal(cold.code, "timeout", JSON.stringify(cold));
  assert.equal(cold.mayHaveReachedServer, true);
  assert.ok(cold.ms >= 290 && cold.ms < 5000, `cold: timed out after ${cold.ms} ms`);
  // Warm (the fast path): recovers, then times out on the next hang.
  assert.deepEqual(await ask(), { ok: "1234.56" });
  sb.control.addFault({ target: "api", hang: true, count: 1 });
  const warm = await ask();
  assert.equal(warm.code, "timeout", JSON.stringify(warm));
  assert.ok(warm.ms >= 290 && warm.ms < 5000, `warm: timed out after ${warm.ms} ms`);
  // A caller's signal that fires first: aborted.
  sb.control.addFault({ target: "api", hang: true, count: 1 });
  const aborted = await ask("?abortAfter=100");
  assert.equal(aborted.code, "aborted", JSON.stringify(aborted));
  assert.deepEqual(await ask(), { ok: "1234.56" });
  await w.stop();
});

// ---- the store option (WebCrypto: HKDF, HMAC, AES-GCM) in each runtime ----

/**
 * An async function body run with the package as `q` and `tokenUrl`, `clientId`, `clientSecret`
 * in scope: two managers share a store written here (a Map with TTLs), the first gets a token
 * from the endpoint, the second from the store. Returns what it saw.
 */
const STORE_PROBE = `
  const map = new Map();
  const live = (k) => { const e = map.get(k); return e && e.exp > Date.now() ? e : undefined; };
  const store = {
    async get(k) { return live(k)?.v ?? null; },
    async set(k, v, ttl) { map.set(k, { v, exp: Date.now() + ttl }); },
    async setIfAbsent(k, v, ttl) { if (live(k)) return false; map.set(k, { v, exp: Date.now() + ttl }); return true; },
    async deleteIfEquals(k, v) { if (live(k)?.v !== v) return false; map.delete(k); return true; },
  };
  const sources = [];
  const make = () => new q.TokenManager({ tokenUrl, clientId, clientSecret, allowInsecureHttp: true, autoRefresh: false, store,
    onEvent: (e) => { if (e.type === "token_acquired" || e.type === "store_failed") sources.push(e.source ?? e.type); } });
  const a = make();
  const b = make();
  const first = await a.getToken();
  // The write and the lease's release follow the token: wait for them (one entry, no lease).
  for (let i = 0; i < 400 && !(map.size === 1 && ![...map.keys()][0].endsWith(":lease")); i++) await new Promise((r) => setTimeout(r, 5));
  const second = await b.getToken();
  const [key] = map.keys();
  const value = map.get(key)?.v ?? "";
  const out = {
    sameToken: first.accessToken === second.accessToken,
    sources,
    entryName: /^qbank-connect:v1:[0-9a-f]{64}$/.test(key),
    clear: !value.includes(first.accessToken) && !value.includes(clientSecret) && !value.includes(clientId),
    tokenSource: b.status.tokenSource,
  };
  a.close();
  b.close();
  return out;
`;

/** Runs a command without blocking this process (which serves the sandbox it talks to). */
function runAsync(cmd, args, opts) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { ...opts, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test("the store option in Deno, Bun and workerd (WebCrypto): two managers sharing a store make one token request", async () => {
  ensureConsumer();
  const want = { sameToken: true, sources: ["endpoint", "store"], entryName: true, clear: true, tokenSource: "store" };
  const args = (sb) => `const tokenUrl = ${JSON.stringify(sb.tokenUrl)}, clientId = ${JSON.stringify(CLIENT.clientId)}, clientSecret = ${JSON.stringify(CLIENT.clientSecret)};`;
  const script = (sb) => `import * as q from "qbank-connect";\n${args(sb)}\nconst out = await (async () => {${STORE_PROBE}})();\nconsole.log(JSON.stringify(out));\n`;
  for (const kind of ["deno", "bun"]) {
    const sb = await sandboxFor();
    const f = consumerFile(`store-probe-${kind}.mjs`, script(sb));
    const r =
      kind === "deno"
        ? await runAsync(join(BIN, "deno"), ["run", "--no-prompt", "--allow-net", "--node-modules-dir=manual", "--no-lock", f], {
            cwd: join(f, ".."),
            env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
          })
        : await runAsync(join(BIN, "bun"), [f], { cwd: join(f, ".."), env: { ...process.env, NO_COLOR: "1" } });
    assert.equal(r.code, 0, `${kind}: ${r.stderr}`);
    assert.deepEqual(JSON.parse(r.stdout.trim().split("\n").pop()), want, kind);
    assert.equal(sb.control.counters().tokenRequests, 1, `${kind}: token requests`);
  }
  const sb = await sandboxFor();
  const source = `import * as q from "qbank-connect";
export default {
  async fetch(request) {
    // The readiness probe (serveWorkerd) is not a run.
    if (new URL(request.url).pathname !== "/") return new Response("ready");
    ${args(sb)}
    try {
      return Response.json(await (async () => {${STORE_PROBE}})());
    } catch (e) {
      return Response.json({ failed: String(e && e.stack || e) });
    }
  },
};
`;
  const w = await startWorkerd("store-probe", source);
  later(() => w.stop());
  const res = await fetch(`${w.url}/`, { signal: AbortSignal.timeout(20_000) });
  const text = await res.text();
  assert.equal(res.status, 200, text + w.log());
  assert.deepEqual(JSON.parse(text), want, "workerd");
  assert.equal(sb.control.counters().tokenRequests, 1, "workerd: token requests");
  await w.stop();
});

// ---- workerd: one request's end does not hang or fail the others ----

/**
 * 50 concurrent cold requests; the first starts the one token request (held 1.5 s by the
 * sandbox), then its client aborts it and the request ends in the Worker while that token
 * request is still in flight. Local workerd does not notice a client disconnect while a request
 * runs (Cloudflare cancels the request then), so the request is ended the way Cloudflare would
 * end it: its request.signal fires (see END_EARLY in examples.mjs) and the Worker answers at once.
 */
async function firstOfFiftyEnds(name, { dropWaitUntil = false } = {}) {
  const sb = await sandboxFor();
  const tap = await tokenTap(sb);
  later(() => tap.close());
  const w = await startWorkerdExample({
    name,
    guard: true,
    coordinator: false,
    endEarly: true,
    dropWaitUntil,
    verbose: true,
    bindings: { ...sandboxSettings(sb, CLIENT), QBANK_TOKEN_URL: tap.tokenUrl },
  });
  later(() => w.stop());
  sb.control.addFault({ target: "token", delayMs: 1500, count: 1 });
  const first = new AbortController();
  const firstDone = fetch(`${w.url}/balances/${ACCOUNT}`, {
    signal: first.signal,
    headers: { "x-test-end-request-after-ms": "300" },
  }).then(
    (r) => `answered ${r.status}`,
    (e) => e.name,
  );
  // Wait until the first request's token request has reached the sandbox.
  for (let i = 0; sb.control.counters().faultsApplied < 1; i++) {
    assert.ok(i < 400, "the first request started a token request");
    await sleep(25);
  }
  const others = Array.from({ length: 49 }, () =>
    getJson(`${w.url}/balances/${ACCOUNT}`).catch((e) => ({ status: 0, text: `${e.name}: ${e.message}` })),
  );
  await sleep(100);
  first.abort();
  const firstOutcome = await firstDone;
  const results = await Promise.all(others);
  await w.stop();
  const statuses = {};
  for (const r of results) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
  return { firstOutcome, results, statuses, tokenRequests: tap.arrivals(), counters: sb.control.counters(), log: w.log() };
}

test("workerd: the first of 50 concurrent cold requests is aborted mid-flight; the other 49 succeed on its token request and none hangs", async (t) => {
  const r = await firstOfFiftyEnds("abort");
  t.diagnostic(`workerd: first request ${r.firstOutcome}; the other 49: ${JSON.stringify(r.statuses)}; ${r.tokenRequests} token request(s) sent, ${r.counters.tokenSuccesses} answered by the sandbox`);
  assert.equal(r.firstOutcome, "AbortError", "the first request was aborted by its client");
  for (const x of r.results) {
    assert.equal(x.status, 200, x.text); // a hung request would have failed at its 30 s timeout
    assert.equal(x.body.availableBalance, "1234.56");
  }
  // ctx.waitUntil kept the ended request's token request alive, and the others shared it.
  assert.equal(r.tokenRequests, 1, "one token request for all 50");
  assert.equal(r.counters.tokenSuccesses, 1);
});

test("workerd control: without ctx.waitUntil the ended request's token request is lost, and the others recover with one new request (so the test above is not vacuous)", async (t) => {
  const r = await firstOfFiftyEnds("abort-no-waituntil", { dropWaitUntil: true });
  t.diagnostic(`without waitUntil: the other 49: ${JSON.stringify(r.statuses)}; ${r.tokenRequests} token request(s) sent`);
  // The lost flight is noticed (workerd rejects the promise of an ended request): the waiters
  // give it up and share one replacement. Nobody fails, nobody hangs.
  for (const x of r.results) assert.equal(x.status, 200, x.text);
  assert.equal(r.tokenRequests, 2, "the lost token request and exactly one replacement");
});

// ---- headless Chromium ----

let browser;
async function chromium() {
  if (browser) return browser;
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium (make setup-browser)`);
  const { chromium: pw } = await import("playwright-core");
  browser = await pw.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  later(() => browser.close());
  return browser;
}

/**
 * The page with the coordinator (the default: the token is the object's, so this isolate made no
 * token request; its screenshot is page.png) and without it (the isolate's own token).
 */
const PAGE_RUNS = [
  { coordinator: true, shot: "worker-page.png", source: "coordinator", requests: "0", cache: /^coordinator: / },
  { coordinator: false, shot: "worker-page-memory.png", source: "endpoint", requests: "1", cache: /^memory: / },
];

for (const run of PAGE_RUNS) test(`Chromium: the Worker's page ${run.coordinator ? "(coordinator)" : "(no coordinator: memory)"} shows the balance and the token's source; its HTML and traffic carry neither the secret nor the token`, async (t) => {
  const sb = await sandboxFor();
  const tap = await tokenTap(sb);
  later(() => tap.close());
  const w = await startWorkerdExample({
    name: `page-${run.source}`,
    guard: true,
    coordinator: run.coordinator,
    bindings: { ...sandboxSettings(sb, CLIENT), QBANK_TOKEN_URL: tap.tokenUrl },
  });
  later(() => w.stop());
  const b = await chromium();
  const page = await b.newPage({ viewport: { width: 900, height: 640 } });
  const traffic = [];
  const pending = [];
  page.on("request", (req) => traffic.push(`${req.method()} ${req.url()}\n${JSON.stringify(req.headers())}\n${req.postData() ?? ""}`));
  page.on("response", (res) =>
    pending.push(
      res.text().then(
        (body) => traffic.push(`${res.status()} ${res.url()}\n${JSON.stringify(res.headers())}\n${body}`),
        () => traffic.push(`${res.status()} ${res.url()}\n${JSON.stringify(res.headers())}`),
      ),
    ),
  );

  const res = await page.goto(`${w.url}/`);
  assert.equal(res.status(), 200);
  assert.equal((await page.textContent("#available")).trim(), "1234.56 USD");
  assert.equal((await page.textContent("#ledger")).trim(), "1300.00 USD");
  assert.equal((await page.textContent("#token-state")).trim(), "valid");
  assert.equal((await page.textContent("#token-requests")).trim(), run.requests);
  assert.equal((await page.textContent("#token-source")).trim(), run.source);
  assert.match((await page.textContent("#token-cache")).trim(), run.cache);
  assert.match(await page.textContent("#token-expires"), /^\d+ s$/);
  mkdirSync(ARTIFACTS, { recursive: true });
  const shot = join(ARTIFACTS, run.shot);
  await page.screenshot({ path: shot, fullPage: true });
  t.diagnostic(`screenshot: ${shot}`);
  const html = await page.content();

  // The other routes, and the form, from the browser too.
  await page.fill("input[name=account]", "acct-number-amounts");
  await Promise.all([page.waitForURL(/account=acct-number-amounts/), page.click("button")]);
  assert.equal((await page.textContent("#available")).trim(), "12345678901234567.89 USD");
  await page.goto(`${w.url}/balances/${ACCOUNT}`);
  await page.goto(`${w.url}/status`);
  await page.goto(`${w.url}/balances/bad%20id`);
  await Promise.all(pending);
  await page.close();

  assert.equal(tap.tokens.length, 1, "one token was issued, and we know it");
  const [token] = tap.tokens;
  const secrets = {
    "client secret": CLIENT.clientSecret,
    "client secret (form-encoded)": encodeURIComponent(CLIENT.clientSecret),
    "Basic credentials": Buffer.from(`${CLIENT.clientId}:${CLIENT.clientSecret}`).toString("base64"),
    "access token": token,
  };
  const everything = [html, ...traffic].join("\n");
  assert.ok(traffic.length >= 10, `traffic recorded (${traffic.length} entries)`);
  for (const [what, value] of Object.entries(secrets)) {
    assert.ok(!everything.includes(value), `the ${what} appears neither in the page nor in its traffic`);
  }
  for (const line of traffic) {
    const url = line.split("\n")[0].split(" ")[1];
    assert.ok(url.startsWith(`${w.url}/`), `the page talks only to the Worker: ${url}`);
  }
});

test("Chromium: constructing a client with a secret in a web page throws unless dangerouslyAllowBrowser: true; each class shows only its documented members", async () => {
  // Serves pkg/ (the package as published) and a page that imports it.
  const PAGE = `<!doctype html><meta charset="utf-8"><title>browser</title><script type="module">
import { QBankClient, TokenManager, QBankError } from "/pkg/index.js";
import * as q from "/pkg/index.js";
const out = {};
${surfaceProbe({ dangerouslyAllowBrowser: true })}
const attempt = (make) => {
  try { const c = make(); c.close(); return { ok: true }; }
  catch (e) { return { ok: false, isQBankError: e instanceof QBankError, name: e.name, code: e.code, message: e.message }; }
};
out.client = attempt(() => new QBankClient({ clientId: "browser-id", clientSecret: "browser-secret" }));
out.manager = attempt(() => new TokenManager({ tokenUrl: "https://auth.example.com/token", clientId: "browser-id", clientSecret: "browser-secret" }));
out.allowed = attempt(() => new QBankClient({ clientId: "browser-id", clientSecret: "browser-secret", dangerouslyAllowBrowser: true }));
window.__result = out;
</script>`;
  const server = http.createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/") {
      res.writeHead(200, { "content-type": "text/html" });
      return res.end(PAGE);
    }
    const file = normalize(join(ROOT, path));
    if (!file.startsWith(PKG + sep) || !existsSync(file)) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { "content-type": file.endsWith(".wasm") ? "application/wasm" : "text/javascript" });
    res.end(readFileSync(file));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  later(() => new Promise((r) => server.close(r)));
  const b = await chromium();
  const page = await b.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  const out = await page.waitForFunction(() => window.__result, null, { timeout: 15_000 }).then((h) => h.jsonValue());
  await page.close();
  assert.deepEqual(errors, []);
  for (const which of ["client", "manager"]) {
    const r = out[which];
    assert.equal(r.ok, false, `${which}: refused in a web page`);
    assert.equal(r.isQBankError, true);
    assert.equal(r.code, "config");
    assert.match(r.message, /must run on a server/);
    assert.match(r.message, /dangerouslyAllowBrowser: true/);
    assert.ok(!r.message.includes("browser-secret"), "the refusal does not repeat the secret");
  }
  assert.deepEqual(out.allowed, { ok: true }, "with dangerouslyAllowBrowser: true it constructs");
  checkSurface(out, "chromium");
});

// ---- expiry (started in before(), running in the background until now) ----

test(`expiry: a ${LIFETIME_S}-second token and a request every ${TRICKLE_GAP_MS} ms for ${TRICKLE_MS / 1000} s, in each runtime: no 401 reaches the caller, ${MIN_TOKENS} to ${MAX_TOKENS} token requests`, async (t) => {
  const runs = await expiryRuns;
  for (const run of runs) if (!run.ok) throw new Error(`${run.kind}: ${run.e.stack ?? run.e}`);
  for (const { v } of runs) {
    const { kind, results, counters } = v;
    const statuses = {};
    for (const r of results) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    t.diagnostic(
      `${kind}: ${results.length} requests over ${v.seconds.toFixed(1)} s -> statuses ${JSON.stringify(statuses)}; ` +
        `sandbox: ${counters.tokenRequests} token requests, API ${JSON.stringify(counters.apiByStatus)}`,
    );
  }
  for (const { v } of runs) {
    const { kind, results, counters } = v;
    // A trickle over the whole run, whatever the machine's load: on average at least two
    // requests per token lifetime, and requests still going in the last lifetime. (A fixed count
    // such as 50 failed on a loaded machine, where each round trip takes longer: 34 fitted.)
    const last = results.at(-1)?.at ?? 0;
    const perLifetime = results.length / (TRICKLE_MS / (LIFETIME_S * 1000));
    assert.ok(perLifetime >= 2, `${kind}: a steady trickle (${results.length} requests, ${perLifetime.toFixed(1)} per lifetime)`);
    assert.ok(last >= TRICKLE_MS - LIFETIME_S * 1000, `${kind}: requests went on into the last lifetime (last at ${last} ms)`);
    for (const r of results) {
      assert.equal(r.status, 200, `${kind}: every request succeeded (${r.text})`);
      assert.equal(r.body.availableBalance, "1234.56");
    }
    assert.ok(counters.tokenRequests >= MIN_TOKENS, `${kind}: ${counters.tokenRequests} token requests ≥ ${MIN_TOKENS} (tokens were renewed)`);
    assert.ok(counters.tokenRequests <= MAX_TOKENS, `${kind}: ${counters.tokenRequests} token requests ≤ ${MAX_TOKENS}`);
  }
});
