// The parent's side of the coordinator tests (tests/js/coordinator.test.mjs): one real workerd
// process (the project's node_modules/.bin/workerd) serving
// - service `coord`, which defines the TokenCoordinator Durable Object namespace (storage in
//   memory, or on disk for the restart test) and, for the fault tests, namespaces of objects that
//   fail (./workers.mjs, COORD_SOURCE);
// - services `a`, `b`, `c`, each its own isolate, binding that namespace with
//   `durableObjectNamespace = (className, serviceName = "coord")`, each holding module-level
//   QBankClients with `store: durableObjectStore(env.QBANK_TOKENS)` (CLIENT_SOURCE).
// Both Workers are bundled from the installed package (target/consumer) the way wrangler bundles
// a Worker (harness.mjs's WORKER_BUILD: `cloudflare:*` left to the runtime, each .wasm its own
// module). Not a test file.
//
// COORD_BREAK (for checking that the tests can fail; unset in `make test`):
//   no-coordinator  the Workers have no store (each isolate by itself, as without this issue)
//   no-alarm        the object's alarm() does nothing
//   no-forget       the object's forget() (the 401 path) does nothing
//   in-memory       the objects' storage is in memory even where a test asks for a disk
import { mkdirSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CONSUMER, WORKER_BUILD, ensureConsumer, freePort, serveWorkerd, stopChild, wasmAsModules, writeServicesConfig } from "../harness.mjs";
import { CLIENT_SOURCE, COORD_SOURCE, FAULT_CLASSES } from "./workers.mjs";

export const BREAK = process.env.COORD_BREAK ?? "";
export const SERVICES = ["a", "b", "c"];

/** Every workerd started, so that a failed test leaves none behind (stopAll). */
const live = new Set();

/** Stops every workerd this module started. */
export async function stopAll() {
  await Promise.all([...live].map((child) => stopChild(child)));
}

let built; // the two bundles, built once per test process

/** Bundles the coord and client Workers into target/consumer/workers/coordinator/{coord,client}. */
async function build() {
  if (built) return built;
  ensureConsumer();
  const root = join(CONSUMER, "workers", "coordinator");
  rmSync(root, { recursive: true, force: true });
  const esbuild = await import("esbuild");
  const bundles = {};
  for (const [name, source] of [["coord", COORD_SOURCE(BREAK)], ["client", CLIENT_SOURCE(BREAK)]]) {
    const dir = join(root, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "src.js"), source);
    await esbuild.build({ ...WORKER_BUILD, entryPoints: [join(dir, "src.js")], outfile: join(dir, "worker.js") });
    const { modules } = wasmAsModules(dir, (base) => join(CONSUMER, "node_modules", "qbank-connect", base));
    // Embedded paths are relative to the config file, one folder up.
    bundles[name] = modules.map((m) => m.replace(/embed "/g, `embed "${name}/`));
  }
  built = { root, ...bundles };
  return built;
}

const text = (name, value) => `(name = ${JSON.stringify(name)}, text = ${JSON.stringify(String(value))})`;

/**
 * Writes the workerd config. `settings`: { tokenUrl, apiBaseUrl, clientId, clientSecret,
 * options (extra QBankClient options, JSON) }; `disk`: a folder for on-disk Durable Object
 * storage (in memory without it); `ports`: { a, b, c, coord }.
 */
function writeConfig(root, { settings, disk, ports }) {
  const clientBindings = (name) => [
    text("SERVICE", name),
    text("TOKEN_URL", settings.tokenUrl),
    text("API_BASE_URL", settings.apiBaseUrl),
    text("CLIENT_ID", settings.clientId),
    text("CLIENT_SECRET", settings.clientSecret),
    text("OPTIONS", JSON.stringify(settings.options ?? {})),
    `(name = "QBANK_TOKENS", durableObjectNamespace = (className = "TokenCoordinator", serviceName = "coord"))`,
    ...FAULT_CLASSES.map((c) => `(name = ${JSON.stringify(c)}, durableObjectNamespace = (className = ${JSON.stringify(c)}, serviceName = "coord"))`),
  ];
  const worker = (modules, bindings, extra = "") => `(
    modules = [ ${modules.join(",\n      ")} ],
    bindings = [ ${bindings.join(",\n      ")} ],
    compatibilityDate = "2025-01-01",
    compatibilityFlags = ["enable_request_signal"],
    globalOutbound = "internet",${extra}
  )`;
  const namespaces = ["TokenCoordinator", ...FAULT_CLASSES].map((c) => `(className = ${JSON.stringify(c)}, uniqueKey = "qbank-coord-test-${c}", enableSql = true)`);
  const onDisk = disk && BREAK !== "in-memory";
  const storage = onDisk ? `(localDisk = "do-disk")` : `(inMemory = void)`;
  const coordExtra = `
    durableObjectNamespaces = [ ${namespaces.join(", ")} ],
    durableObjectStorage = ${storage},`;
  const services = [
    `(name = "coord", worker = ${worker(built.coord, [`(name = "QBANK_TOKENS", durableObjectNamespace = "TokenCoordinator")`], coordExtra)})`,
    ...SERVICES.map((s) => `(name = ${JSON.stringify(s)}, worker = ${worker(built.client, clientBindings(s))})`),
    `(name = "internet", network = (allow = ["public", "private", "local"]))`,
    ...(onDisk ? [`(name = "do-disk", disk = (path = ${JSON.stringify(disk)}, writable = true))`] : []),
  ];
  writeServicesConfig(root, services, ports);
}

/**
 * Starts workerd with services coord, a, b, c (see the header). Returns
 * { call(service, query, init), state(service, ns), object(service, ns), log(service),
 *   restart(), stop(), output() }.
 */
export async function startCoordinators({ settings, disk }) {
  const { root } = await build();
  const ports = {};
  for (const s of [...SERVICES, "coord"]) ports[s] = await freePort();
  if (disk) mkdirSync(disk, { recursive: true });
  writeConfig(root, { settings, disk, ports });
  let output = "";
  let server;
  const start = async () => {
    // --verbose: the Workers' and the objects' console and uncaught errors are in the output (quiet() reads it).
    server = await serveWorkerd(root, ports.a, {
      verbose: true,
      spawned: (child) => {
        live.add(child);
        child.once("exit", () => live.delete(child));
        return child;
      },
    });
  };
  await start();
  const url = (service, path) => `http://127.0.0.1:${ports[service]}${path}`;
  const json = async (service, path, init) => {
    const res = await fetch(url(service, path), init);
    const body = await res.text();
    if (res.status !== 200) throw new Error(`${service} ${path}: ${res.status} ${body}`);
    return JSON.parse(body);
  };
  return {
    ports,
    /** One API call (getBalance) in `service`: { ok, code, ms, tokenSource, isolateTokenRequests }. */
    call: (service, { ns = "QBANK_TOKENS", tag = "" } = {}, init = {}) => json(service, `/call?ns=${ns}&tag=${encodeURIComponent(tag)}`, init),
    /** The isolate's view: its client's status and its events counted by type (and source, step). */
    state: (service, ns = "QBANK_TOKENS") => json(service, `/state?ns=${ns}`),
    /** The object's status() (asked through `service`, with the entry name its client used). */
    object: (service, ns = "QBANK_TOKENS") => json(service, `/object?ns=${ns}`),
    /** What the isolate recorded of the calls tagged so far (also those whose caller went away). */
    log: (service) => json(service, `/log`),
    /** Ends the tagged call in `service` as Cloudflare ends a request whose client went away. */
    end: (service, tag) => json(service, `/end?tag=${encodeURIComponent(tag)}`),
    async restart() {
      output += server.log();
      await server.stop();
      await start();
    },
    async stop() {
      output += server.log();
      await server.stop();
    },
    output: () => output + server.log(),
  };
}

/** The raw bytes of every file below `dir`, as latin1 text, with their names. */
export function filesText(dir, files) {
  return files.map((f) => ({ file: f, text: readFileSync(join(dir, f)).toString("latin1") }));
}
