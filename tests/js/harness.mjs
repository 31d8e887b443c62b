// Shared helpers for the JavaScript tests: paths, child processes, free ports, a scratch consumer
// project that installs the packed package the way users do, and a workerd runner.
import { spawn, spawnSync, execFileSync } from "node:child_process";
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
 * Bundles a Worker script from the consumer project the way wrangler does (esbuild with the
 * workerd/worker/browser conditions, `.wasm` kept as a separate module), then serves it with a
 * real workerd process on loopback. Returns { url, bundle, modules, stop() }.
 */
export async function startWorkerd(name, source, { bindings = {} } = {}) {
  ensureConsumer();
  const dir = join(CONSUMER, "workers", name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "src.js"), source);
  const esbuild = await import("esbuild");
  const result = await esbuild.build({
    entryPoints: [join(dir, "src.js")],
    outfile: join(dir, "worker.js"),
    bundle: true,
    format: "esm",
    platform: "neutral",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    external: ["*.wasm"],
    logLevel: "silent",
    metafile: true,
  });
  const bundle = readFileSync(join(dir, "worker.js"), "utf8");
  // Copy every .wasm the bundle imports next to it, as its own module.
  const wasmImports = [...bundle.matchAll(/from\s+"([^"]+\.wasm)"/g)].map((m) => m[1]);
  const modules = [`(name = "worker.js", esModule = embed "worker.js")`];
  let rewritten = bundle;
  for (const spec of new Set(wasmImports)) {
    const base = spec.split("/").pop();
    const src = resolve(dirname(join(CONSUMER, "node_modules", "qbank-connect", "x")), base);
    copyFileSync(existsSync(src) ? src : join(PKG, base), join(dir, base));
    rewritten = rewritten.split(`"${spec}"`).join(`"./${base}"`);
    modules.push(`(name = "${base}", wasm = embed "${base}")`);
  }
  writeFileSync(join(dir, "worker.js"), rewritten);
  const port = await freePort();
  const bindingLines = Object.entries(bindings).map(([k, v]) => `(name = ${JSON.stringify(k)}, text = ${JSON.stringify(v)})`);
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
  modules = [ ${modules.join(", ")} ],
  bindings = [ ${bindingLines.join(", ")} ],
  compatibilityDate = "2025-01-01",
  globalOutbound = "internet",
);
`,
  );
  const child = spawn(join(BIN, "workerd"), ["serve", join(dir, "config.capnp"), "--experimental"], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`workerd exited: ${log}`);
    try {
      await fetch(url + "/__ready");
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`workerd did not start: ${log}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    url,
    bundle: rewritten,
    modules,
    log: () => log,
    stop: () =>
      new Promise((res) => {
        if (child.exitCode !== null) return res();
        child.once("exit", res);
        child.kill("SIGTERM");
      }),
  };
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
