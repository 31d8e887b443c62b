// Runs one contender as a Worker in a real workerd process, with tests/js/harness.mjs's workerd
// runner (esbuild with the workerd/worker/browser conditions, the .wasm as its own module), but
// bundles from bench/ and leaves Node built-ins that a library only imports lazily (e.g.
// @badgateway's `await import("crypto")` for PKCE, never reached here) outside the bundle.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, WORKER_BUILD as TEST_WORKER_BUILD, freePort, serveWorkerd, wasmAsModules, writeWorkerdConfig } from "../tests/js/harness.mjs";

export const WORKER_BUILD = { ...TEST_WORKER_BUILD, external: [...TEST_WORKER_BUILD.external, "crypto", "node:*"] };

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
  // The .wasm the bundle imports (only ours has one), from the package bench/ installed.
  const { modules } = wasmAsModules(dir, (base) => join(ROOT, "bench", "node_modules", "qbank-connect", base));
  const port = await freePort();
  writeWorkerdConfig(dir, { port, modules });
  return serveWorkerd(dir, port, { readyPath: "/ping", spawned: track });
}
