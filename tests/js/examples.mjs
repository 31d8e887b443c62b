// Helpers for worker-example/: link the built package into it, bundle the Worker with wrangler,
// run that bundle in workerd, and run the Deno, Node and Bun servers. Used by runtimes.test.mjs,
// demo.mjs and `make serve`.
//
//   node tests/js/examples.mjs build    links ../pkg and runs `wrangler deploy --dry-run --outdir dist`
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BIN, PKG, ROOT, freePort, serveWorkerd, stopChild, writeWorkerdConfig } from "./harness.mjs";

export const EXAMPLE = join(ROOT, "worker-example");
export const DIST = join(EXAMPLE, "dist");
const RUNS = join(ROOT, "target", "worker-example");

/**
 * Makes worker-example/node_modules/qbank-connect the `file:../pkg` link its package.json asks
 * for, with `npm install` (offline: the only dependency is that folder). Skipped when linked.
 */
export function linkExample({ log = () => {} } = {}) {
  const link = join(EXAMPLE, "node_modules", "qbank-connect");
  if (!existsSync(join(PKG, "package.json"))) throw new Error("pkg/ is not built: run `make package`");
  if (existsSync(link) && lstatSync(link).isSymbolicLink()) {
    log("   already linked (worker-example/node_modules/qbank-connect -> ../pkg)");
    return;
  }
  const r = spawnSync("npm", ["install", "--no-audit", "--no-fund", "--offline", "--no-package-lock"], {
    cwd: EXAMPLE,
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`npm install in worker-example failed:\n${r.stdout}${r.stderr}`);
  log("   linked worker-example/node_modules/qbank-connect -> ../pkg");
}

/**
 * Bundles the Worker the way a deploy would: `wrangler deploy --dry-run --outdir dist` (no
 * network, no account). Returns { dir, main, wasm: [names], output }.
 */
export function buildWorker({ log = () => {} } = {}) {
  linkExample({ log });
  rmSync(DIST, { recursive: true, force: true });
  const r = spawnSync(join(BIN, "wrangler"), ["deploy", "--dry-run", "--outdir", "dist"], {
    cwd: EXAMPLE,
    encoding: "utf8",
    timeout: 120_000,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1", FORCE_COLOR: "0", CI: "1" },
  });
  const output = `${r.stdout}${r.stderr}`;
  if (r.status !== 0) throw new Error(`wrangler deploy --dry-run failed (exit ${r.status}):\n${output}`);
  const files = readdirSync(DIST);
  const wasm = files.filter((f) => f.endsWith(".wasm"));
  const total = /Total Upload: ([^\n]+)/.exec(output)?.[1];
  log(`   worker-example/dist: index.js + ${wasm.join(", ")}${total ? ` (upload ${total.trim()})` : ""}`);
  return { dir: DIST, main: "index.js", wasm, output };
}

/**
 * compatibility_date, compatibility_flags, [vars], the Durable Object bindings
 * (`[[durable_objects.bindings]]`: { name, class_name }) and the migrations (`[[migrations]]`)
 * from worker-example/wrangler.toml (the subset it uses).
 */
export function wranglerConfig(text = readFileSync(join(EXAMPLE, "wrangler.toml"), "utf8")) {
  const out = { compatibilityDate: undefined, compatibilityFlags: [], vars: {}, durableObjects: [], migrations: [] };
  const tables = { "durable_objects.bindings": out.durableObjects, migrations: out.migrations };
  let section = "";
  let entry;
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\s+#.*$/, "").trim();
    if (line === "" || line.startsWith("#")) continue;
    const array = /^\[\[([^\]]+)\]\]$/.exec(line);
    if (array) {
      section = array[1];
      entry = {};
      tables[section]?.push(entry);
      continue;
    }
    const s = /^\[([^\]]+)\]$/.exec(line);
    if (s) {
      section = s[1];
      continue;
    }
    const kv = /^([A-Za-z0-9_]+)\s*=\s*(.+)$/.exec(line);
    if (!kv) continue;
    const value = JSON.parse(kv[2]);
    if (section === "" && kv[1] === "compatibility_date") out.compatibilityDate = value;
    else if (section === "" && kv[1] === "compatibility_flags") out.compatibilityFlags = value;
    else if (section === "vars") out.vars[kv[1]] = value;
    else if (section in tables) entry[kv[1]] = value;
  }
  return out;
}

/**
 * wrangler.toml's Durable Object bindings as workerd config: a binding per `[[durable_objects.bindings]]`,
 * the namespaces this Worker defines (SQLite-backed when a migration names the class in
 * `new_sqlite_classes`, as on Cloudflare) and in-memory storage (each run starts empty).
 * Returns { extraBindings, workerFields } for writeWorkerdConfig.
 */
export function durableObjectConfig(cfg) {
  if (cfg.durableObjects.length === 0) return { extraBindings: [], workerFields: [] };
  const sqlite = new Set(cfg.migrations.flatMap((m) => m.new_sqlite_classes ?? []));
  const classes = [...new Set(cfg.durableObjects.map((b) => b.class_name))];
  const namespaces = classes.map((c) => `(className = ${JSON.stringify(c)}, uniqueKey = ${JSON.stringify(`qbank-connect-example-${c}`)}, enableSql = ${sqlite.has(c)})`);
  return {
    extraBindings: cfg.durableObjects.map((b) => `(name = ${JSON.stringify(b.name)}, durableObjectNamespace = ${JSON.stringify(b.class_name)})`),
    workerFields: [`durableObjectNamespaces = [ ${namespaces.join(", ")} ]`, "durableObjectStorage = (inMemory = void)"],
  };
}

// Loaded before the bundle when `guard` is set: compiling wasm from bytes throws, as it does on
// Cloudflare ("Wasm code generation disallowed by embedder"). A Worker that still serves a
// balance with it in place got its wasm only as a module.
const GUARD = `const W = WebAssembly;
const Module = W.Module;
const isModule = (x) => x instanceof Module;
const refuse = (what) => {
  globalThis.__wasmFromBytes = (globalThis.__wasmFromBytes ?? 0) + 1;
  throw new W.CompileError("test guard: " + what + " compiles wasm from bytes, which Cloudflare refuses");
};
W.Module = new Proxy(Module, {
  construct(target, args, newTarget) {
    if (!isModule(args[0])) refuse("new WebAssembly.Module(bytes)");
    return Reflect.construct(target, args, newTarget);
  },
});
const instantiate = W.instantiate;
W.instantiate = (source, imports) => (isModule(source) ? instantiate(source, imports) : refuse("WebAssembly.instantiate(bytes)"));
W.compile = () => refuse("WebAssembly.compile");
W.compileStreaming = () => refuse("WebAssembly.compileStreaming");
W.instantiateStreaming = () => refuse("WebAssembly.instantiateStreaming");
`;

// With `endEarly`: a request carrying `x-test-end-request-after-ms: N` gets a signal that fires
// after N ms, so the Worker (which passes request.signal to getBalance) answers at once and the
// request ends, with whatever it started still in flight. That is what Cloudflare does when a
// client disconnects; local workerd does not notice a disconnect while a request is running.
const END_EARLY = `export default {
  fetch(request, env, ctx) {
    const ms = Number(request.headers.get("x-test-end-request-after-ms"));
    if (!ms) return worker.fetch(request, env, ctx);
    const c = new AbortController();
    setTimeout(() => c.abort(), ms);
    return worker.fetch(new Request(request, { signal: c.signal }), env, ctx);
  },
};`;

// With `dropWaitUntil` (a control experiment): the Worker is handed a ctx whose waitUntil does
// nothing, as if it had not passed ctx.waitUntil to the client.
const DROP_WAIT_UNTIL = `const realFetch = worker.fetch.bind(worker);
worker.fetch = (request, env, ctx) =>
  realFetch(request, env, { waitUntil() {}, passThroughOnException: () => ctx.passThroughOnException() });`;

/**
 * Runs worker-example/dist (the wrangler bundle, unchanged) in a real workerd process on
 * loopback, with wrangler.toml's compatibility date, [vars] and Durable Object bindings (the
 * token coordinator, QBANK_TOKENS), plus `bindings` (text bindings, which is what Worker secrets
 * are). With `coordinator: false` the Durable Object binding is left out: the Worker as deployed
 * without it (each isolate keeps its own token). With `guard`, compiling wasm from bytes throws; with
 * `endEarly`, a test header ends a request early (see END_EARLY); `verbose` shows the Worker's
 * console in log(). Returns
 * { url, log(), stop() }.
 */
export async function startWorkerdExample({ name = "worker", bindings = {}, coordinator = true, guard = false, endEarly = false, dropWaitUntil = false, verbose = !!process.env.WORKERD_VERBOSE, port, dist = DIST } = {}) {
  const cfg = wranglerConfig();
  const dir = join(RUNS, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  // index.js first: workerd's first module is the main one.
  const files = readdirSync(dist)
    .filter((f) => f.endsWith(".js") || f.endsWith(".wasm"))
    .sort((a, b) => (b === "index.js") - (a === "index.js"));
  if (!files.includes("index.js")) throw new Error(`${dist} has no index.js: run buildWorker() first`);
  for (const f of files) copyFileSync(join(dist, f), join(dir, f));
  const modules = [];
  if (guard || endEarly || dropWaitUntil) {
    // A test entry in front of the unchanged bundle: the guard is evaluated before it.
    const lines = [];
    if (guard) {
      writeFileSync(join(dir, "guard.js"), GUARD);
      lines.push(`import "./guard.js";`);
    }
    // The bundle's named exports (the Durable Object class) must be the main module's too.
    lines.push(`import worker from "./index.js";`, `export * from "./index.js";`);
    if (dropWaitUntil) lines.push(DROP_WAIT_UNTIL);
    lines.push(endEarly ? END_EARLY : "export default worker;");
    writeFileSync(join(dir, "test-main.js"), lines.join("\n") + "\n");
    modules.push(`(name = "test-main.js", esModule = embed "test-main.js")`);
    if (guard) modules.push(`(name = "guard.js", esModule = embed "guard.js")`);
  }
  for (const f of files) {
    modules.push(f.endsWith(".wasm") ? `(name = "${f}", wasm = embed "${f}")` : `(name = "${f}", esModule = embed "${f}")`);
  }
  port ??= await freePort();
  writeWorkerdConfig(dir, {
    port,
    modules,
    bindings: { ...cfg.vars, ...bindings },
    ...(coordinator ? durableObjectConfig(cfg) : {}),
    compatibilityDate: cfg.compatibilityDate,
    compatibilityFlags: cfg.compatibilityFlags,
  });
  // Ready once it answers /__ready, a path the example answers 404 to (no token is fetched).
  return serveWorkerd(dir, port, { verbose, timeoutMs: 30_000 });
}

/** The commands that run worker-example's servers, as its package.json scripts do. */
export const SERVER_COMMANDS = {
  node: () => [process.execPath, ["node-server.mjs"]],
  bun: () => [join(BIN, "bun"), ["node-server.mjs"]],
  deno: () => [join(BIN, "deno"), ["run", "--allow-net", "--allow-env", "--node-modules-dir=manual", "--no-lock", "deno-server.ts"]],
};

/**
 * Starts worker-example's Node, Bun or Deno server with `env` (QBANK_* settings) on a free port.
 * Waits for its "listening on URL" line. Returns { url, log(), stop() }.
 */
export async function startExampleServer(kind, env) {
  const [cmd, args] = SERVER_COMMANDS[kind]();
  const child = spawn(cmd, args, {
    cwd: EXAMPLE,
    stdio: ["ignore", "pipe", "pipe"],
    env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: "1", ...env, PORT: "0", HOST: "127.0.0.1" },
  });
  let log = "";
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => (child.kill("SIGKILL"), reject(new Error(`${kind} server did not start: ${log}`))), 30_000);
    const onData = (d) => {
      log += d;
      const m = /listening on (http:\/\/[^\s]+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", (d) => (log += d));
    child.once("exit", (code) => (clearTimeout(timer), reject(new Error(`${kind} server exited (${code}): ${log}`))));
  });
  child.stdout.on("data", (d) => (log += d));
  return { url, log: () => log, stop: () => stopChild(child) };
}

/** The QBANK_* settings for a local sandbox started with startSandbox(). */
export function sandboxSettings(sandbox, client) {
  return {
    QBANK_CLIENT_ID: client.clientId,
    QBANK_CLIENT_SECRET: client.clientSecret,
    QBANK_TOKEN_URL: sandbox.tokenUrl,
    QBANK_API_BASE_URL: sandbox.apiBaseUrl,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === "build") {
  buildWorker({ log: (s) => console.log(s) });
}
