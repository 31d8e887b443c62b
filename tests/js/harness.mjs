// Shared helpers for the JavaScript tests: paths, child processes, free ports, a scratch consumer
// project that installs the packed package the way users do, and a workerd runner (its parts are
// shared with tests/js/examples.mjs and bench/workerd.mjs).
import { spawn, spawnSync, execFileSync } from "node:child_process";
import http from "node:http";
import { createServer } from "node:net";
import { existsSync, mkdirSync, readFileSync, writeFileSync, readdirSync, rmSync, copyFileSync } from "node:fs";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const PKG = join(ROOT, "pkg");
export const BIN = join(ROOT, "node_modules", ".bin");
export const CONSUMER = join(ROOT, "target", "consumer");
export const CRATE_VERSION = /^version\s*=\s*"([^"]+)"/m.exec(readFileSync(join(ROOT, "Cargo.toml"), "utf8"))[1];

/** Runs a command to completion; returns { code, stdout, stderr }. Never throws on exit code. */
export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 120_000, ...opts });
  return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "", error: r.error };
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/**
 * Packs pkg/ with `npm pack` and installs the tarball into target/consumer, so tests import
 * "qbank-connect" exactly as a user's project would. Re-done only when the tarball changed.
 */
export function ensureConsumer() {
  mkdirSync(CONSUMER, { recursive: true });
  const packed = execFileSync("npm", ["pack", PKG, "--pack-destination", CONSUMER, "--json"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });
  const [{ filename, integrity }] = JSON.parse(packed);
  const stamp = join(CONSUMER, ".installed");
  if (existsSync(stamp) && readFileSync(stamp, "utf8") === integrity) return CONSUMER;
  writeFileSync(join(CONSUMER, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  rmSync(join(CONSUMER, "node_modules"), { recursive: true, force: true });
  rmSync(join(CONSUMER, "package-lock.json"), { force: true });
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--offline", "--no-save", join(CONSUMER, filename)], {
    cwd: CONSUMER,
    stdio: "ignore",
  });
  writeFileSync(stamp, integrity);
  return CONSUMER;
}

/** Writes a file into the consumer project and returns its path. */
export function consumerFile(name, text) {
  const p = join(CONSUMER, name);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, text);
  return p;
}

/**
 * esbuild options that bundle a Worker the way wrangler does: the workerd/worker/browser
 * conditions, ESM, and each `.wasm` left as an import (wasmAsModules makes it its own module).
 */
export const WORKER_BUILD = {
  bundle: true,
  format: "esm",
  platform: "neutral",
  conditions: ["workerd", "worker", "browser"],
  mainFields: ["module", "main"],
  // cloudflare:workers (TokenCoordinator's DurableObject) is the platform's, as wrangler leaves it.
  external: ["*.wasm", "cloudflare:*"],
  logLevel: "silent",
  metafile: true,
};

/**
 * Makes every `.wasm` that dir/worker.js (a WORKER_BUILD bundle) imports a workerd module of its
 * own: copies it from `wasmPath(name)` beside the bundle and points the import at "./name".
 * Returns { bundle, modules }: the rewritten bundle (also written back) and the workerd module
 * list, worker.js first.
 */
export function wasmAsModules(dir, wasmPath) {
  let bundle = readFileSync(join(dir, "worker.js"), "utf8");
  const modules = [`(name = "worker.js", esModule = embed "worker.js")`];
  for (const spec of new Set([...bundle.matchAll(/from\s+"([^"]+\.wasm)"/g)].map((m) => m[1]))) {
    const base = spec.split("/").pop();
    copyFileSync(wasmPath(base), join(dir, base));
    bundle = bundle.split(`"${spec}"`).join(`"./${base}"`);
    modules.push(`(name = "${base}", wasm = embed "${base}")`);
  }
  writeFileSync(join(dir, "worker.js"), bundle);
  return { bundle, modules };
}

/**
 * Writes dir/config.capnp for several services (capnp service entries, e.g. a Durable Object's
 * service and the Workers that bind it), each of `ports` ({ service: port }) served on
 * 127.0.0.1:port by the service of that name (tests/js/coordinator/, bench/workerd.mjs).
 * @param {string} dir
 * @param {string[]} services
 * @param {Record<string, number>} ports
 */
export function writeServicesConfig(dir, services, ports) {
  const sockets = Object.entries(ports).map(([s, port]) => `(name = ${JSON.stringify(s)}, address = "127.0.0.1:${port}", http = (), service = ${JSON.stringify(s)})`);
  writeFileSync(
    join(dir, "config.capnp"),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    ${services.join(",\n    ")}
  ],
  sockets = [ ${sockets.join(",\n    ")} ],
);
`,
  );
}

/**
 * Writes dir/config.capnp: a "main" Worker of `modules` (the first is its main module) with
 * `bindings` as text bindings (which is what Worker secrets are), served on 127.0.0.1:port, its
 * outbound fetches going to the network through an "internet" service. `extraBindings` are more
 * binding entries and `workerFields` more fields of the Worker, both as capnp text (e.g. a
 * Durable Object namespace and its storage).
 */
export function writeWorkerdConfig(dir, { port, modules, bindings = {}, extraBindings = [], workerFields = [], compatibilityDate = "2025-01-01", compatibilityFlags = [] }) {
  const bindingLines = Object.entries(bindings).map(([k, v]) => `(name = ${JSON.stringify(k)}, text = ${JSON.stringify(v)})`);
  bindingLines.push(...extraBindings);
  writeFileSync(
    join(dir, "config.capnp"),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .mainWorker),
    (name = "internet", network = (allow = ["public", "private", "local"], tlsOptions = (trustBrowserCas = true))),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);
const mainWorker :Workerd.Worker = (
  modules = [ ${modules.join(",\n    ")} ],
  bindings = [ ${bindingLines.join(",\n    ")} ],
  compatibilityDate = ${JSON.stringify(compatibilityDate)},
  compatibilityFlags = ${JSON.stringify(compatibilityFlags)},
  globalOutbound = "internet",${workerFields.map((f) => `\n  ${f},`).join("")}
);
`,
  );
}

/**
 * Runs workerd on dir/config.capnp (written by writeWorkerdConfig for `port`) and waits until it
 * answers `readyPath`. `spawned` sees the child process first (to track it). Returns
 * { url, log(), stop() }.
 */
export async function serveWorkerd(dir, port, { readyPath = "/__ready", verbose = false, timeoutMs = 20_000, spawned = (child) => child } = {}) {
  const args = ["serve", join(dir, "config.capnp"), "--experimental", ...(verbose ? ["--verbose"] : [])];
  const child = spawned(spawn(join(BIN, "workerd"), args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] }));
  return untilServing(child, `http://127.0.0.1:${port}`, { what: "workerd", readyPath, timeoutMs });
}

/**
 * Collects the output of a server `child` and resolves once `url` + `readyPath` answers (any
 * status); fails if the child exits first or after `timeoutMs`. Returns { url, log(), stop() }.
 */
export async function untilServing(child, url, { what, readyPath = "/__ready", timeoutMs = 20_000 }) {
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited (${child.exitCode}): ${log}`);
    try {
      await fetch(url + readyPath);
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`${what} did not start: ${log}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { url, log: () => log, stop: () => stopChild(child) };
}

/** Stops a child process with SIGTERM (SIGKILL if it is still running 5 s later); resolves once it has exited. */
export function stopChild(child) {
  return new Promise((res) => {
    if (child.exitCode !== null || child.signalCode !== null) return res();
    const kill = setTimeout(() => child.kill("SIGKILL"), 5000);
    child.once("exit", () => (clearTimeout(kill), res()));
    child.kill("SIGTERM");
  });
}

/**
 * Bundles a Worker script from the consumer project the way wrangler does (WORKER_BUILD), then
 * serves it with a real workerd process on loopback. Returns { url, bundle, modules, log(), stop() }.
 */
export async function startWorkerd(name, source, { bindings = {} } = {}) {
  ensureConsumer();
  const dir = join(CONSUMER, "workers", name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "src.js"), source);
  const esbuild = await import("esbuild");
  await esbuild.build({ ...WORKER_BUILD, entryPoints: [join(dir, "src.js")], outfile: join(dir, "worker.js") });
  // Each .wasm from the installed package (pkg/ if it is not there).
  const { bundle, modules } = wasmAsModules(dir, (base) => {
    const installed = join(CONSUMER, "node_modules", "qbank-connect", base);
    return existsSync(installed) ? installed : join(PKG, base);
  });
  const port = await freePort();
  writeWorkerdConfig(dir, { port, modules, bindings });
  return { ...(await serveWorkerd(dir, port)), bundle, modules };
}

/** Lists files below a folder (relative paths). */
export function listFiles(dir, prefix = "") {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(join(dir, e.name), p));
    else out.push(p);
  }
  return out;
}

/**
 * A loopback proxy in front of a sandbox's token endpoint: counts the token requests that arrive
 * (even one whose sender goes away) and remembers every access token it passes on (`tokens`, in
 * order). `upstream(sb)` switches the sandbox behind it while `tokenUrl` stays the same (a bank
 * that rotated a client's secret). `close()` stops it.
 */
export async function tokenTap(sb) {
  let target = sb;
  const tokens = [];
  let arrivals = 0;
  const server = http.createServer((req, res) => {
    arrivals += 1;
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      let up, text;
      try {
        const { host, connection, ...headers } = req.headers;
        up = await fetch(target.tokenUrl, { method: req.method, headers, body: Buffer.concat(chunks) });
        text = await up.text();
      } catch {
        return res.destroy();
      }
      try {
        const t = JSON.parse(text).access_token;
        if (t) tokens.push(t);
      } catch {}
      res.writeHead(up.status, { "content-type": up.headers.get("content-type") ?? "application/json" });
      res.end(text);
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    tokenUrl: `http://127.0.0.1:${server.address().port}/token`,
    tokens,
    arrivals: () => arrivals,
    upstream(next) {
      target = next;
    },
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
