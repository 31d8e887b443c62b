// Soak: one million cached getToken() calls on a warm TokenManager (and a million more with
// { signal }, which go through the wasm rather than the JS fast path), 100,000 getBalance calls
// against the local QBank sandbox (src/testing/sandbox.mjs, run as its own process), then
// token lifecycles (a manager per unit of work, forceRefresh, invalidate, a 401 refresh-and-retry;
// 2,000 each, with an autoRefresh: false control). For each phase it measures the wasm linear
// memory, the live externref slots (JS values held by Rust), the JS heap after a full GC and the
// RSS: before, after a warm-up, periodically and at the end, checks the sandbox's request
// counters, and decides "steady" or "leak" by explicit thresholds (THRESHOLDS).
//
//   node --expose-gc tests/soak/soak.mjs [--token-calls 1000000] [--balance-calls 100000]
//        [--lifecycle-calls 2000] [--concurrency 64] [--samples 20] [--json out.json] [--quiet]
//        [--inject-leak wasm:BYTES,js:BYTES] [--in-process-sandbox]
//
// A count of 0 skips that phase.
// Exit code 0 when every check passes ("steady"), 1 otherwise ("leak" or "fail"), 2 on bad usage.
// --inject-leak deliberately leaks per call (wasm: __wbindgen_malloc(BYTES) never freed, through
// the package's own allocator; js: BYTES/8 retained 8-byte array slots), to prove that the
// detector sees a leak of that size (tests/js/soak.test.mjs runs it).
// QBANK_PKG_URL runs the soak against another build of the same API (default pkg/node.src.js).
import { spawn } from "node:child_process";
import { setMaxListeners } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
// The unbundled Node entry (the same files the published node.js bundles), so that the glue
// module below is the instance the classes use.
const PKG_URL = process.env.QBANK_PKG_URL || pathToFileURL(join(ROOT, "pkg", "node.src.js")).href;
const GLUE_URL = new URL("./qbank_connect.js", PKG_URL).href;
const SANDBOX = join(ROOT, "src", "testing", "sandbox.mjs");

const KiB = 1024;
const MiB = 1024 * KiB;
const PAGE = 64 * KiB;

/**
 * The verdict thresholds. A metric "grows" when BOTH its growth from the end of the warm-up to the
 * end of the run (each after a forced full GC) AND its least-squares trend over the periodic
 * samples (slope x calls) exceed the allowance: a real per-call leak moves both by about
 * leak x calls, while one noisy sample can move only one of them. The allowances are absolute
 * (they do not scale with the number of calls), so the longer the run, the smaller the per-call
 * leak that is caught; each says what it is made of and what it detects.
 */
export const THRESHOLDS = Object.freeze({
  wasmBytes: {
    allowance: 4 * PAGE,
    why:
      "wasm linear memory only grows, in 64 KiB pages, and never shrinks; after the warm-up a steady " +
      "workload needs no new page at all. 4 pages (256 KiB) absorb allocator fragmentation from a " +
      "different interleaving of in-flight requests. A 16 B/call leak is 16 MB over 1M calls (64x the " +
      "allowance) and 1.6 MB over 100k (6x); the smallest leak caught is 0.27 B/call over 1M calls, " +
      "2.7 B/call over 100k, 132 B/call over 2,000.",
  },
  externrefsLive: {
    allowance: 16,
    why:
      "live slots of wasm-bindgen's externref table = JS values (closures, promises, token objects, " +
      "errors) that Rust still holds. With nothing in flight the count is deterministic (the config's " +
      "functions, the cached token object, the fast-path slot, the refresh timer); measured growth in a " +
      "steady phase is exactly 0. 16 slots of slack: one value leaked per call fails from 17 calls on, " +
      "one per 6,000 calls fails over 100k calls.",
  },
  heapUsed: {
    allowance: 2 * MiB,
    why:
      "V8 heapUsed after three forced full GCs. Noise over repeated runs: at most ~0.4 MiB (the " +
      "getBalance phase's undici pools and compiled code settling after the warm-up; +-0.1 MiB for " +
      "getToken). 2 MiB of slack (5x that): a 16 B/call leak over 1M calls is 16 MB (8x the slack), and " +
      "a retained Promise or closure per call (>= 40 B) over 100k calls is >= 4 MB.",
  },
  rss: {
    allowance: 64 * MiB,
    why:
      "resident set size is dominated by allocator and V8 page reuse and is not a fine leak signal; " +
      "64 MiB only catches gross native leaks (sockets, buffers) that the heap and wasm figures cannot see.",
  },
});

// ---- arguments ----

function usage(msg) {
  process.stderr.write(
    `soak: ${msg}\nusage: node --expose-gc tests/soak/soak.mjs [--token-calls N] [--balance-calls N] [--lifecycle-calls N] ` +
      `[--concurrency N] [--samples N] [--json out.json] [--quiet] [--inject-leak wasm:BYTES,js:BYTES] ` +
      `[--in-process-sandbox]\n`,
  );
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    tokenCalls: 1_000_000,
    balanceCalls: 100_000,
    lifecycleCalls: 2_000,
    concurrency: 64,
    samples: 20,
    json: null,
    quiet: false,
    injectLeak: null,
    inProcessSandbox: false,
  };
  const int = (a, v, min) => {
    const n = Number(String(v ?? "").replace(/[_,]/g, ""));
    if (!Number.isInteger(n) || n < min) usage(`${a} needs an integer >= ${min} (got ${v})`);
    return n;
  };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    const next = () => {
      i += 1;
      if (argv[i] === undefined) usage(`${a} needs a value`);
      return argv[i];
    };
    if (a === "--token-calls") o.tokenCalls = int(a, next(), 0);
    else if (a === "--balance-calls") o.balanceCalls = int(a, next(), 0);
    else if (a === "--lifecycle-calls") o.lifecycleCalls = int(a, next(), 0);
    else if (a === "--concurrency") o.concurrency = int(a, next(), 1);
    else if (a === "--samples") o.samples = int(a, next(), 3);
    else if (a === "--json") o.json = next();
    else if (a === "--quiet") o.quiet = true;
    else if (a === "--in-process-sandbox") o.inProcessSandbox = true;
    else if (a === "--inject-leak") {
      o.injectLeak = {};
      for (const part of next().split(",")) {
        const m = /^(wasm|js):(\d+)$/.exec(part);
        if (!m || Number(m[2]) < 1) usage("--inject-leak takes wasm:BYTES, js:BYTES or both (wasm:16,js:16)");
        o.injectLeak[m[1]] = Number(m[2]);
      }
    } else if (a === "--help" || a === "-h") usage("help");
    else usage(`unknown argument ${a}`);
  }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
if (typeof globalThis.gc !== "function") usage("run with node --expose-gc (the figures are taken after a forced GC)");
const log = (...a) => {
  if (!opts.quiet) console.log(...a);
};

// ---- the package and its wasm instance ----

const { TokenManager, QBankClient, version } = await import(PKG_URL);
// The wasm-bindgen glue keeps the instance; initSync returns its exports when it is already
// initialized (pkg/index.js did that on import), so this reads them without editing anything.
const glue = await import(GLUE_URL);
const wasm = glue.initSync({ module: new Uint8Array(0) });
if (!(wasm && wasm.memory instanceof WebAssembly.Memory)) {
  usage("cannot reach the package's wasm memory: initSync() did not return the instance exports");
}
const table = wasm.__wbindgen_externrefs instanceof WebAssembly.Table ? wasm.__wbindgen_externrefs : null;

function externrefs() {
  if (!table) return { live: null, size: null };
  let live = 0;
  for (let i = 0; i < table.length; i += 1) {
    const v = table.get(i);
    if (v !== undefined && v !== null) live += 1;
  }
  return { live, size: table.length };
}

/** sha256 of the package's .wasm, so a report says which build it measured. */
function wasmHash() {
  try {
    return createHash("sha256").update(readFileSync(new URL("./qbank_connect_bg.wasm", PKG_URL))).digest("hex");
  } catch {
    return null;
  }
}

// ---- measuring ----

/** Three full GCs with turns of the event loop between them, so FinalizationRegistry callbacks
 * (wasm-bindgen frees Rust objects and closures from them) run and free their wasm memory. */
async function settle() {
  for (let i = 0; i < 3; i += 1) {
    globalThis.gc();
    await new Promise((r) => setImmediate(r));
    await sleep(5);
  }
}

async function snapshot(calls) {
  await settle();
  const mu = process.memoryUsage();
  const refs = externrefs();
  return {
    calls,
    wasmBytes: wasm.memory.buffer.byteLength,
    externrefsLive: refs.live,
    externrefTableSize: refs.size,
    heapUsed: mu.heapUsed,
    heapTotal: mu.heapTotal,
    external: mu.external,
    arrayBuffers: mu.arrayBuffers,
    rss: mu.rss,
  };
}

/** Least-squares slope of y over x. */
function slope(points) {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) * (x - mx);
  }
  return sxx === 0 ? 0 : sxy / sxx;
}

function judge(metric, afterWarmup, after, samples, calls) {
  const { allowance } = THRESHOLDS[metric];
  if (after[metric] === null || afterWarmup[metric] === null) {
    return { metric, ok: true, skipped: "not measurable with this build" };
  }
  const growth = after[metric] - afterWarmup[metric];
  const perCall = slope(samples.map((s) => [s.calls, s[metric]]));
  const trend = perCall * calls;
  const grows = calls > 0 && growth > allowance && trend > allowance;
  return {
    metric,
    ok: !grows,
    before: null, // filled by the caller
    afterWarmup: afterWarmup[metric],
    after: after[metric],
    growth,
    growthPerCall: calls > 0 ? growth / calls : 0,
    slopePerCall: perCall,
    trend,
    allowance,
  };
}

// ---- leak injection (only for proving the detector) ----

const injected = [];
const injectWasm = opts.injectLeak?.wasm ?? 0;
const injectSlots = Math.ceil((opts.injectLeak?.js ?? 0) / 8);
function injectLeak() {
  if (injectWasm > 0) wasm.__wbindgen_malloc(injectWasm, 1); // through the package's allocator, never freed
  for (let i = 0; i < injectSlots; i += 1) injected.push(i); // js: BYTES/8 retained 8-byte array slots
}

// ---- the sandbox ----

async function startSandboxProcess() {
  if (opts.inProcessSandbox) {
    const { startSandbox } = await import(pathToFileURL(SANDBOX).href);
    const sb = await startSandbox();
    return {
      ...sb,
      where: "in-process",
      counters: async () => sb.control.counters(),
      reset: async () => sb.control.reset(),
      revoke: async () => sb.control.revoke(),
    };
  }
  // Its own process: the client's heap and RSS are then not mixed with the server's.
  const child = spawn(process.execPath, [SANDBOX, "--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
  const killChild = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  };
  process.once("exit", killChild);
  const line = await new Promise((res, rej) => {
    let buf = "";
    const timer = setTimeout(() => rej(new Error("the sandbox did not start within 10 s")), 10_000);
    child.stdout.on("data", (d) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        clearTimeout(timer);
        res(buf.slice(0, nl));
      }
    });
    child.once("exit", (code) => rej(new Error(`the sandbox exited (${code}) before starting`)));
  });
  const info = JSON.parse(line);
  const control = async (method, path) => {
    const r = await fetch(`${info.url}/__control/${path}`, { method });
    if (!r.ok) throw new Error(`sandbox control ${method} ${path}: HTTP ${r.status}`);
    return r.json();
  };
  return {
    ...info,
    where: `child process ${child.pid}`,
    counters: () => control("GET", "counters"),
    reset: () => control("POST", "reset"),
    revoke: () => control("POST", "revoke"),
    close: () =>
      new Promise((res) => {
        if (child.exitCode !== null || child.signalCode !== null) return res();
        child.once("exit", () => res());
        child.kill("SIGTERM");
      }),
  };
}

const CLIENT_ID = "demo-client";
const CLIENT_SECRET = "demo-secret-not-real";

// ---- phases ----

/**
 * Runs one measured phase: snapshot "before", setup, warm-up, snapshot "afterWarmup", then the
 * calls in `samples` chunks with a snapshot after each (nothing in flight, after GC), verify,
 * teardown. `run(ctx, n)` makes n calls; its time is the phase's duration (snapshots excluded).
 */
async function soakPhase(sb, { name, description, calls, warmupCalls, setup, run, verify, teardown, extra }) {
  await sb.reset();
  const before = await snapshot(0);
  const ctx = await setup();
  try {
    await run(ctx, warmupCalls);
    const afterWarmup = await snapshot(0);
    const samples = [afterWarmup];
    let durationMs = 0;
    let doneCalls = 0;
    for (const n of splitCalls(calls, opts.samples)) {
      const t0 = performance.now();
      await run(ctx, n);
      durationMs += performance.now() - t0;
      doneCalls += n;
      samples.push(await snapshot(doneCalls));
      progress(name, doneCalls, calls, samples.at(-1));
    }
    const counters = await sb.counters();
    const checks = await verify(ctx, counters, warmupCalls + calls);
    return finishPhase(name, {
      description,
      calls,
      warmupCalls,
      durationMs,
      before,
      afterWarmup,
      after: samples.at(-1),
      samples,
      checks,
      sandbox: counters,
      extra: extra?.(ctx) ?? {},
    });
  } finally {
    await teardown?.(ctx);
  }
}

const warmupOf = (calls, min, share) => Math.min(calls, Math.max(min, Math.round(calls * share)));

function newManager(sb, more = {}) {
  return new TokenManager({
    tokenUrl: sb.tokenUrl,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    scope: "balances.read",
    allowInsecureHttp: true,
    ...more,
  });
}

function newClient(sb) {
  return new QBankClient({
    environment: { tokenUrl: sb.tokenUrl, apiBaseUrl: sb.apiBaseUrl },
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    allowInsecureHttp: true,
  });
}

/**
 * 1. One million cached getToken() calls on a warm TokenManager: without options (answered by
 * the package's JavaScript fast path while the core says the token is servable) and with
 * { signal } (every call goes through the wasm: options, abort check, cache poll).
 */
function tokenPhase(sb, calls, withOptions) {
  const signal = new AbortController().signal;
  const callOptions = withOptions ? { signal } : undefined;
  return soakPhase(sb, {
    name: withOptions ? "getToken({ signal }) (cached, through the wasm)" : "getToken() (cached)",
    description: withOptions
      ? `cached getToken({ signal }) on one warm TokenManager (each call enters the wasm), ${opts.concurrency} calls issued together then awaited`
      : `cached getToken() on one warm TokenManager (the package's JS fast path), ${opts.concurrency} calls issued together then awaited`,
    calls,
    warmupCalls: warmupOf(calls, 10_000, 0.05),
    async setup() {
      const tm = newManager(sb);
      const first = await tm.getToken(); // the one token request
      return { tm, first, wrong: 0, sameObject: 0, total: 0 };
    },
    async run(ctx, n) {
      const batch = opts.concurrency;
      const ps = new Array(batch);
      for (let done = 0; done < n; ) {
        const k = Math.min(batch, n - done);
        for (let j = 0; j < k; j += 1) {
          ps[j] = ctx.tm.getToken(callOptions);
          injectLeak();
        }
        for (let j = 0; j < k; j += 1) {
          const t = await ps[j];
          if (t.accessToken !== ctx.first.accessToken) ctx.wrong += 1;
          if (t === ctx.first) ctx.sameObject += 1;
          ps[j] = undefined;
        }
        done += k;
        ctx.total += k;
      }
    },
    verify(ctx, c, total) {
      const status = ctx.tm.status;
      return [
        check("one token request for the whole cached phase (sandbox)", c.tokenRequests === 1, `sandbox saw ${c.tokenRequests} token request(s), expected 1`),
        check("the manager made one token request", status.tokenRequests === 1, `status.tokenRequests = ${status.tokenRequests}`),
        check("no API request in the token phase", c.apiRequests === 0, `sandbox saw ${c.apiRequests} API request(s)`),
        check("every call returned the cached token", ctx.wrong === 0 && ctx.total === total, `${ctx.wrong} of ${ctx.total} calls returned another token`),
      ];
    },
    teardown: (ctx) => ctx.tm.close(),
    extra: (ctx) => ({ tokenObjectReused: ctx.sameObject === ctx.total }),
  });
}

const ACCOUNTS = ["acct-realtime", "a1b2c3d4-e5f6-7890-1234-567890abcde", "acct-number-amounts", "acct-negative", "acct-nested"];
/** Exact digits the sandbox sends (SEED_ACCOUNTS): available and ledger balance. */
const KNOWN = {
  "acct-realtime": ["250.00", "250.00"],
  "a1b2c3d4-e5f6-7890-1234-567890abcde": ["1234.56", "1300.00"],
  "acct-number-amounts": ["12345678901234567.89", "98765432109876543.21"],
  "acct-negative": ["-42.10", "-40.00"],
  "acct-nested": ["10.00", "12.50"],
};
const balanceKey = (b) => `${b.accountId}|${b.availableBalance}|${b.ledgerBalance}|${b.currency}|${b.asOf}`;

/** 2. getBalance against the sandbox, `concurrency` in flight, over five seeded accounts. */
function balancePhase(sb, calls) {
  return soakPhase(sb, {
    name: "getBalance",
    description: `QBankClient.getBalance against the sandbox, ${opts.concurrency} in flight, rotating over ${ACCOUNTS.length} seeded accounts; every other call with one long-lived AbortSignal`,
    calls,
    warmupCalls: warmupOf(calls, 1_000, 0.05),
    async setup() {
      const client = newClient(sb);
      const signal = new AbortController().signal;
      // Up to `concurrency` calls wait on it at once, each with one listener that it removes after.
      setMaxListeners(opts.concurrency + 10, signal);
      const ctx = { client, signal, expected: new Map(), wrong: 0, errors: {}, firstErrors: [], issued: 0, first: ACCOUNTS.length };
      for (const id of ACCOUNTS) {
        const b = await client.getBalance(id);
        ctx.expected.set(id, balanceKey(b));
        if (b.availableBalance !== KNOWN[id][0] || b.ledgerBalance !== KNOWN[id][1]) ctx.wrong += 1;
      }
      return ctx;
    },
    async run(ctx, n) {
      let next = 0;
      const base = ctx.issued;
      const worker = async () => {
        while (next < n) {
          const k = base + next;
          const id = ACCOUNTS[k % ACCOUNTS.length];
          next += 1;
          injectLeak();
          try {
            // Every other call passes one long-lived AbortSignal: a listener left on it would pile up.
            const b = await ctx.client.getBalance(id, k % 2 === 1 ? { signal: ctx.signal } : undefined);
            if (balanceKey(b) !== ctx.expected.get(id)) ctx.wrong += 1;
          } catch (e) {
            const code = e?.code ?? "thrown";
            ctx.errors[code] = (ctx.errors[code] ?? 0) + 1;
            if (ctx.firstErrors.length < 5) ctx.firstErrors.push(`${code}: ${e?.message}`);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(opts.concurrency, n) }, worker));
      ctx.issued += n;
    },
    verify(ctx, c, calls) {
      const total = ctx.first + calls;
      const errorCount = Object.values(ctx.errors).reduce((s, k) => s + k, 0);
      return [
        check("one token request for the whole balance phase (sandbox)", c.tokenRequests === 1, `sandbox saw ${c.tokenRequests} token request(s), expected 1`),
        check("the sandbox saw exactly one API request per getBalance", c.apiRequests === total, `sandbox saw ${c.apiRequests} API requests, expected ${total} (${ctx.first} first + ${calls} warm-up and measured)`),
        check("every API answer was a 200", (c.apiByStatus?.["200"] ?? 0) === total, `apiByStatus ${JSON.stringify(c.apiByStatus)}`),
        check("no getBalance failed", errorCount === 0, errorCount === 0 ? "0 errors" : `${errorCount} errors ${JSON.stringify(ctx.errors)}; first: ${ctx.firstErrors.join(" | ")}`),
        check("every balance had exactly the digits the sandbox sent", ctx.wrong === 0, `${ctx.wrong} wrong balances`),
      ];
    },
    teardown: (ctx) => ctx.client.close(),
    extra: () => ({ concurrency: opts.concurrency, accounts: ACCOUNTS.length }),
  });
}

/**
 * 3. Token lifecycles, sequentially: each one makes a token request and re-arms (or cancels) the
 * refresh-ahead timer. The same work with autoRefresh: false is the control.
 */
function lifecyclePhases(sb, calls) {
  const warmupCalls = warmupOf(calls, 100, 0.1);
  const tokensFor = (expected) => (ctx, c, n) => [
    check("one token request per lifecycle (sandbox)", c.tokenRequests === expected(n), `sandbox saw ${c.tokenRequests} token requests, expected ${expected(n)}`),
  ];
  const managerLifecycle = (autoRefresh) => ({
    name: `new TokenManager + getToken + close (autoRefresh: ${autoRefresh})`,
    description: "a manager per unit of work (e.g. per tenant or per request), closed and dropped (freed by the package's FinalizationRegistry)",
    calls,
    warmupCalls,
    setup: () => ({}),
    async run(ctx, n) {
      for (let i = 0; i < n; i += 1) {
        const tm = newManager(sb, { autoRefresh });
        await tm.getToken();
        tm.close();
        injectLeak();
      }
    },
    verify: tokensFor((n) => n),
  });
  const oneManager = (name, description, op) => ({
    name,
    description,
    calls,
    warmupCalls,
    async setup() {
      const tm = newManager(sb);
      await tm.getToken();
      return { tm };
    },
    async run(ctx, n) {
      for (let i = 0; i < n; i += 1) {
        await op(ctx.tm);
        injectLeak();
      }
    },
    verify: tokensFor((n) => 1 + n),
    teardown: (ctx) => ctx.tm.close(),
  });
  return [
    managerLifecycle(false),
    managerLifecycle(true),
    oneManager("getToken({ forceRefresh: true })", "a forced refresh on one long-lived manager (autoRefresh default)", (tm) => tm.getToken({ forceRefresh: true })),
    oneManager("invalidate() + getToken()", "invalidate the cached token and fetch a new one (what a 401 does), autoRefresh default", (tm) => {
      tm.invalidate();
      return tm.getToken();
    }),
    {
      name: "getBalance after a revoke (401, refresh, retry)",
      description: "the sandbox revokes every token, then getBalance: 401 invalid_token, one token request, one retry (autoRefresh default)",
      calls,
      warmupCalls,
      async setup() {
        const client = newClient(sb);
        await client.getBalance("acct-realtime");
        return { client, wrong: 0 };
      },
      async run(ctx, n) {
        for (let i = 0; i < n; i += 1) {
          await sb.revoke();
          const b = await ctx.client.getBalance("acct-realtime");
          if (b.availableBalance !== "250.00") ctx.wrong += 1;
          injectLeak();
        }
      },
      verify: (ctx, c, n) => [
        check("one token request per revoke (sandbox)", c.tokenRequests === 1 + n, `sandbox saw ${c.tokenRequests} token requests, expected ${1 + n}`),
        check("a 401 and a retried 200 per revoke (sandbox)", c.apiByStatus?.["401"] === n && c.apiByStatus?.["200"] === 1 + n, `apiByStatus ${JSON.stringify(c.apiByStatus)}, expected 401: ${n}, 200: ${1 + n}`),
        check("every balance was right", ctx.wrong === 0, `${ctx.wrong} wrong`),
      ],
      teardown: (ctx) => ctx.client.close(),
    },
  ].map((spec) => () => soakPhase(sb, spec));
}

// ---- helpers ----

function splitCalls(calls, parts) {
  if (calls === 0) return [];
  const n = Math.min(parts, calls);
  const out = [];
  for (let i = 0; i < n; i += 1) out.push(Math.floor((calls * (i + 1)) / n) - Math.floor((calls * i) / n));
  return out;
}

function check(name, ok, detail) {
  return { name, ok: !!ok, detail };
}

let lastProgress = 0;
function progress(what, done, total, s) {
  if (opts.quiet || !process.stdout.isTTY) return;
  const now = Date.now();
  if (now - lastProgress < 1000 && done !== total) return;
  lastProgress = now;
  process.stdout.write(`   ${what} ${done.toLocaleString("en-US")}/${total.toLocaleString("en-US")}  wasm ${fmtBytes(s.wasmBytes)}  heap ${fmtBytes(s.heapUsed)}  rss ${fmtBytes(s.rss)}\n`);
}

function finishPhase(name, p) {
  const memory = {};
  for (const metric of Object.keys(THRESHOLDS)) {
    const j = judge(metric, p.afterWarmup, p.after, p.samples, p.calls);
    j.before = p.before[metric];
    memory[metric] = j;
    p.checks.push(
      check(
        `${metric} steady (growth and trend within ${fmtMetric(metric, j.allowance)})`,
        j.ok,
        j.skipped ?? `growth ${fmtMetric(metric, j.growth)} (${fmtPerCall(metric, j.growthPerCall)}), trend ${fmtMetric(metric, j.trend)} (${fmtPerCall(metric, j.slopePerCall)})`,
      ),
    );
  }
  const ok = p.checks.every((c) => c.ok);
  const memoryOk = Object.values(memory).every((m) => m.ok);
  return {
    phase: name,
    description: p.description,
    calls: p.calls,
    warmupCalls: p.warmupCalls,
    durationMs: Math.round(p.durationMs),
    callsPerSecond: p.durationMs > 0 ? Math.round((p.calls * 1000) / p.durationMs) : null,
    memory,
    sandbox: p.sandbox,
    checks: p.checks,
    ...p.extra,
    samples: p.samples,
    verdict: ok ? "steady" : memoryOk ? "fail" : "leak",
  };
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "n/a";
  const a = Math.abs(n);
  const s = a >= MiB ? `${(a / MiB).toFixed(2)} MiB` : a >= KiB ? `${(a / KiB).toFixed(1)} KiB` : `${Math.round(a)} B`;
  return n < 0 ? `-${s}` : s;
}
function fmtMetric(metric, n) {
  if (metric === "externrefsLive") return `${Math.round(n)} slots`;
  return fmtBytes(n);
}
function fmtPerCall(metric, n) {
  const unit = metric === "externrefsLive" ? "slots" : "B";
  return `${Number(n.toPrecision(3))} ${unit}/call`;
}

// ---- main ----

const startedAt = new Date().toISOString();
log(`qbank-connect ${version()} soak: ${opts.tokenCalls.toLocaleString("en-US")} cached getToken, ${opts.balanceCalls.toLocaleString("en-US")} getBalance (concurrency ${opts.concurrency}), ${opts.lifecycleCalls.toLocaleString("en-US")} of each token lifecycle; node ${process.version}`);
if (opts.injectLeak) log(`   INJECTED LEAK per call (detector self-test): ${JSON.stringify(opts.injectLeak)} bytes`);
const sb = await startSandboxProcess();
log(`   sandbox ${sb.url} (${sb.where}); package ${PKG_URL}`);
const initial = await snapshot(0);
const phases = [];
let crashed = null;
try {
  if (opts.tokenCalls > 0) phases.push(await tokenPhase(sb, opts.tokenCalls, false));
  if (opts.tokenCalls > 0) phases.push(await tokenPhase(sb, opts.tokenCalls, true));
  if (opts.balanceCalls > 0) phases.push(await balancePhase(sb, opts.balanceCalls));
  if (opts.lifecycleCalls > 0) for (const phase of lifecyclePhases(sb, opts.lifecycleCalls)) phases.push(await phase());
} catch (e) {
  crashed = e;
} finally {
  await sb.close();
}
const final = await snapshot(0);

const verdict = crashed ? "fail" : phases.some((p) => p.verdict === "leak") ? "leak" : phases.some((p) => p.verdict === "fail") ? "fail" : "steady";
const report = {
  tool: "tests/soak/soak.mjs",
  package: `qbank-connect ${version()}`,
  packageUrl: PKG_URL,
  wasmSha256: wasmHash(),
  node: process.version,
  platform: `${process.platform} ${process.arch}`,
  startedAt,
  finishedAt: new Date().toISOString(),
  options: { tokenCalls: opts.tokenCalls, balanceCalls: opts.balanceCalls, lifecycleCalls: opts.lifecycleCalls, concurrency: opts.concurrency, samples: opts.samples, sandbox: opts.inProcessSandbox ? "in-process" : "child process", injectLeak: opts.injectLeak },
  method:
    "Each figure is taken after three forced full GCs (node --expose-gc) with the event loop turned in " +
    "between (FinalizationRegistry callbacks free wasm-bindgen objects). 'before' = before the phase " +
    "creates its TokenManager/QBankClient; 'afterWarmup' = after the warm-up calls (JIT, connection pool " +
    "and allocator high-water marks); 'after' = at the end. Growth = after - afterWarmup; trend = " +
    "least-squares slope over the periodic samples x calls. wasmBytes = the instance's memory.buffer." +
    "byteLength (read through initSync(), which returns the already-initialized instance exports); " +
    "externrefsLive = occupied slots of its __wbindgen_externrefs table.",
  thresholds: THRESHOLDS,
  initial,
  final,
  phases,
  error: crashed ? String(crashed?.stack ?? crashed) : undefined,
  verdict,
};

if (opts.json) writeFileSync(opts.json, `${JSON.stringify(report, null, 2)}\n`);

// ---- human summary ----
if (!opts.quiet) {
  const row = (label, m) => {
    const v = (k) => fmtMetric(m.metric, m[k]);
    return `      ${label.padEnd(16)} before ${v("before").padStart(10)}   after warm-up ${v("afterWarmup").padStart(10)}   after ${v("after").padStart(10)}   growth ${v("growth").padStart(9)}  slope ${fmtPerCall(m.metric, m.slopePerCall).padStart(16)}  ${m.ok ? "ok" : "GROWS"}`;
  };
  for (const p of phases) {
    console.log(`\n== ${p.phase}: ${p.calls.toLocaleString("en-US")} calls (+${p.warmupCalls.toLocaleString("en-US")} warm-up) in ${(p.durationMs / 1000).toFixed(2)} s = ${p.callsPerSecond?.toLocaleString("en-US")} calls/s`);
    console.log(`   ${p.description}`);
    console.log(`   sandbox: ${p.sandbox.tokenRequests} token request(s), ${p.sandbox.apiRequests} API request(s) ${JSON.stringify(p.sandbox.apiByStatus)}`);
    console.log(row("wasm memory", p.memory.wasmBytes));
    if (p.memory.externrefsLive.skipped === undefined) console.log(row("externrefs live", p.memory.externrefsLive));
    console.log(row("JS heap (gc)", p.memory.heapUsed));
    console.log(row("RSS", p.memory.rss));
    for (const c of p.checks) console.log(`   ${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}`);
    console.log(`   phase verdict: ${p.verdict}`);
  }
  if (crashed) console.log(`\nthe soak crashed: ${crashed?.stack ?? crashed}`);
  console.log(`\nthresholds (a metric fails only when both its growth and its trend exceed the allowance):`);
  for (const [k, t] of Object.entries(THRESHOLDS)) console.log(`   ${k}: ${fmtMetric(k, t.allowance)}: ${t.why}`);
  console.log(`\nsummary (growth after the warm-up, per measured call):`);
  console.log(`   ${"phase".padEnd(56)} ${"calls".padStart(9)} ${"calls/s".padStart(10)} ${"wasm".padStart(10)} ${"externrefs".padStart(11)} ${"JS heap".padStart(10)}  verdict`);
  for (const p of phases) {
    const per = (m) => (m.skipped ? "n/a" : `${Number(m.growthPerCall.toPrecision(3))}`);
    console.log(`   ${p.phase.padEnd(56)} ${p.calls.toLocaleString("en-US").padStart(9)} ${(p.callsPerSecond ?? 0).toLocaleString("en-US").padStart(10)} ${`${per(p.memory.wasmBytes)} B`.padStart(10)} ${per(p.memory.externrefsLive).padStart(11)} ${`${per(p.memory.heapUsed)} B`.padStart(10)}  ${p.verdict}`);
  }
  console.log(`\nprocess: wasm ${fmtBytes(initial.wasmBytes)} -> ${fmtBytes(final.wasmBytes)}, heap ${fmtBytes(initial.heapUsed)} -> ${fmtBytes(final.heapUsed)}, rss ${fmtBytes(initial.rss)} -> ${fmtBytes(final.rss)}`);
  console.log(`VERDICT: ${verdict}${opts.json ? ` (JSON: ${opts.json})` : ""}`);
}
process.exitCode = verdict === "steady" ? 0 : 1;
