// Runs one contender as a Worker in a real workerd process, with tests/js/harness.mjs's workerd
// runner (esbuild with the workerd/worker/browser conditions, the .wasm as its own module), but
// bundles from bench/ and leaves Node built-ins that a library only imports lazily (e.g.
// @badgateway's `await import("crypto")` for PKCE, never reached here) outside the bundle.
//
// With `coordinator: true` (phase 9, contenders/ourscoord.mjs) the one bundle also re-exports the
// package's TokenCoordinator, and the config has a service `coord` defining its Durable Object
// namespace (storage in memory) beside the Worker services (`services`, each its own isolate with
// its own port), which bind it as QBANK_TOKENS, as a wrangler.toml binding does.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { ROOT, WORKER_BUILD as TEST_WORKER_BUILD, freePort, serveWorkerd, wasmAsModules, writeServicesConfig, writeWorkerdConfig } from "../tests/js/harness.mjs";

export const WORKER_BUILD = { ...TEST_WORKER_BUILD, external: [...TEST_WORKER_BUILD.external, "crypto", "node:*"] };

/**
 * Starts workerd with `contender`'s Worker; resolves to { url, log(), stop() }. With
 * `coordinator`, also `urls` (service name -> its URL): `services` lists the Worker services,
 * { name, coordinator } each (default: one, "main", bound to the coordinator).
 */
export async function startWorker(contender, track = (c) => c, { coordinator = false, services = [{ name: "main", coordinator: true }] } = {}) {
  const dir = join(ROOT, "bench", "work", `workerd-${contender}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const env = coordinator ? "(contender.bind(env), " : "(";
  writeFileSync(
    join(dir, "src.js"),
    `import * as contender from "../../contenders/${contender}.mjs";\n` +
      `import { makeHandler } from "../../ops.mjs";\n` +
      (coordinator ? `export { TokenCoordinator } from "qbank-connect";\n` : "") +
      `const handle = makeHandler(contender);\n` +
      `export default { fetch: (req, env, ctx) => ${env}handle(req, { waitUntil: (p) => ctx.waitUntil(p) })) };\n`,
  );
  const esbuild = await import("esbuild");
  await esbuild.build({ ...WORKER_BUILD, entryPoints: [join(dir, "src.js")], outfile: join(dir, "worker.js") });
  // The .wasm the bundle imports (only ours has one), from the package bench/ installed.
  const { modules } = wasmAsModules(dir, (base) => join(ROOT, "bench", "node_modules", "qbank-connect", base));
  if (!coordinator) {
    const port = await freePort();
    writeWorkerdConfig(dir, { port, modules });
    return serveWorkerd(dir, port, { readyPath: "/ping", spawned: track });
  }
  // Many ports, each free when drawn: on a shared machine another process may take one before
  // workerd binds it, so a start that fails on a port in use is tried again with new ones.
  for (let attempt = 1; ; attempt++) {
    const names = ["coord", ...services.map((s) => s.name)];
    const drawn = await freePorts(names.length);
    const ports = Object.fromEntries(names.map((n, i) => [n, drawn[i]]));
    writeCoordinatorConfig(dir, { modules, services, ports });
    try {
      // Ready when `coord` answers: no request reaches a Worker service before the caller's own.
      const server = await serveWorkerd(dir, ports.coord, { readyPath: "/ping", spawned: track });
      const urls = Object.fromEntries(services.map((s) => [s.name, `http://127.0.0.1:${ports[s.name]}`]));
      return { ...server, url: urls[services[0].name], urls };
    } catch (e) {
      if (attempt >= 3 || !/Address already in use/.test(String(e?.message))) throw e;
    }
  }
}

/** n distinct free loopback ports (all held open until every one is drawn). */
async function freePorts(n) {
  const servers = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer();
      servers.push(s);
      await new Promise((res, rej) => (s.once("error", rej), s.listen(0, "127.0.0.1", res)));
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((res) => s.close(() => res()))));
  }
}

/** dir/config.capnp: service `coord` (the TokenCoordinator namespace) and the Worker services. */
function writeCoordinatorConfig(dir, { modules, services, ports }) {
  const worker = (bindings, extra = "") => `(
    modules = [ ${modules.join(", ")} ],
    bindings = [ ${bindings.join(", ")} ],
    compatibilityDate = "2025-01-01",
    globalOutbound = "internet",${extra}
  )`;
  const binding = `(name = "QBANK_TOKENS", durableObjectNamespace = (className = "TokenCoordinator", serviceName = "coord"))`;
  const coord = `
    durableObjectNamespaces = [ (className = "TokenCoordinator", uniqueKey = "qbank-bench-coordinator", enableSql = true) ],
    durableObjectStorage = (inMemory = void),`;
  const all = [
    `(name = "coord", worker = ${worker([], coord)})`,
    ...services.map((s) => `(name = ${JSON.stringify(s.name)}, worker = ${worker(s.coordinator ? [binding] : [])})`),
    `(name = "internet", network = (allow = ["public", "private", "local"]))`,
  ];
  writeServicesConfig(dir, all, ports);
}
