// Runs one contender as a Worker in a real workerd process (as tests/js/harness.mjs does for the
// tests: esbuild with the workerd/worker/browser conditions, the .wasm as its own module), but
// bundles from bench/ and leaves Node built-ins that a library only imports lazily (e.g.
// @badgateway's `await import("crypto")` for PKCE, never reached here) outside the bundle.
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, BIN, freePort } from "../tests/js/harness.mjs";

export const WORKER_BUILD = {
  bundle: true,
  format: "esm",
  platform: "neutral",
  conditions: ["workerd", "worker", "browser"],
  mainFields: ["module", "main"],
  external: ["*.wasm", "crypto", "node:*"],
  logLevel: "silent",
  metafile: true,
};

export async function startWorker(contender, track = (c) => c) {
  const dir = join(ROOT, "bench", "work", `workerd-${contender}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, "src.js"),
    `import * as contender from "../../contenders/${contender}.mjs";\n` +
      `import { makeHandler } from "../../ops.mjs";\n` +
      `const handle = makeHandler(contender);\n` +
      `export default { fetch: (req, env, ctx) => handle(req, { waitUntil: (p) => ctx.waitUntil(p) }) };\n`,
  );
  const esbuild = await import("esbuild");
  await esbuild.build({ ...WORKER_BUILD, entryPoints: [join(dir, "src.js")], outfile: join(dir, "worker.js") });
  let bundle = readFileSync(join(dir, "worker.js"), "utf8");
  const modules = [`(name = "worker.js", esModule = embed "worker.js")`];
  // The .wasm the bundle imports (only ours has one), copied beside it as its own module.
  for (const spec of new Set([...bundle.matchAll(/from\s+"([^"]+\.wasm)"/g)].map((m) => m[1]))) {
    const base = spec.split("/").pop();
    copyFileSync(join(ROOT, "bench", "node_modules", "qbank-connect", base), join(dir, base));
    bundle = bundle.split(`"${spec}"`).join(`"./${base}"`);
    modules.push(`(name = "${base}", wasm = embed "${base}")`);
  }
  writeFileSync(join(dir, "worker.js"), bundle);
  const port = await freePort();
  writeFileSync(
    join(dir, "config.capnp"),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .mainWorker),
    (name = "internet", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);
const mainWorker :Workerd.Worker = (
  modules = [ ${modules.join(", ")} ],
  compatibilityDate = "2025-01-01",
  globalOutbound = "internet",
);
`,
  );
  const child = track(spawn(join(BIN, "workerd"), ["serve", join(dir, "config.capnp"), "--experimental"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] }));
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`workerd exited: ${log}`);
    try {
      await fetch(`${url}/ping`);
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
    log: () => log,
    stop: () =>
      new Promise((res) => {
        if (child.exitCode !== null) return res();
        child.once("exit", res);
        child.kill("SIGTERM");
      }),
  };
}
