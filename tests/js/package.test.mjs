// The built package, imported the way users will: Node ESM, Node require, Deno, Bun and workerd.
// Each runtime runs the same probe: the exports, version(), a real behaviour (a bad config is
// refused with a QBankError whose code is "config"), and the public surface: each exported class
// shows exactly the members index.d.ts documents (no internal `__…` member, on its prototype,
// itself or its instances).
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { homedir } from "node:os";
import { checkSurface, surfaceProbe, NOT_IN_WORKERS } from "./surface.mjs";
import { ensureConsumer, consumerFile, run, BIN, CONSUMER, CRATE_VERSION, startWorkerd, PKG, WORKER_BUILD } from "./harness.mjs";

const PROBE_BODY = `
const out = { version: q.version(), names: Object.keys(q).filter((k) => k !== "default").sort() };
try {
  new q.TokenManager({ tokenUrl: "http://bank.example/token", clientId: "id", clientSecret: "not-a-real-secret" });
  out.config = "accepted";
} catch (e) {
  out.config = { isQBankError: e instanceof q.QBankError, isError: e instanceof Error, code: e.code, name: e.name };
}
${surfaceProbe()}`;
const ESM_PROBE = `import * as q from "qbank-connect";\n${PROBE_BODY}\nout.entry = import.meta.resolve("qbank-connect").split("/").pop();\nconsole.log(JSON.stringify(out));\n`;
const CJS_PROBE = `const q = require("qbank-connect");\n${PROBE_BODY}\nout.entry = require("node:path").basename(require.resolve("qbank-connect"));\nconsole.log(JSON.stringify(out));\n`;
/** The entry each runtime must load: Node gets the node:http transport; the others their fetch. */
const ENTRY = { "node-esm": "node.js", "node-cjs": "node.cjs", deno: "index.js", bun: "index.js" };

function checkProbe(stdout, runtime) {
  const line = stdout.trim().split("\n").pop();
  const out = JSON.parse(line);
  checkSurface(out, runtime);
  if (ENTRY[runtime]) assert.equal(out.entry, ENTRY[runtime], `${runtime}: resolves qbank-connect to ${ENTRY[runtime]}`);
  assert.equal(out.version, CRATE_VERSION, `${runtime}: version()`);
  for (const name of ["QBankClient", "QBankError", "TokenManager", "version"]) {
    assert.ok(out.names.includes(name), `${runtime}: exports ${name} (got ${out.names})`);
  }
  assert.deepEqual(
    out.config,
    { isQBankError: true, isError: true, code: "config", name: "QBankError" },
    `${runtime}: a plain-http token URL is refused with code config`,
  );
}

before(() => ensureConsumer());

test("Node ESM: import from 'qbank-connect'", () => {
  const f = consumerFile("probe.mjs", ESM_PROBE);
  const r = run(process.execPath, [f], { cwd: CONSUMER });
  assert.equal(r.code, 0, r.stderr);
  checkProbe(r.stdout, "node-esm");
});

test("Node CommonJS: require('qbank-connect')", () => {
  const f = consumerFile("probe.cjs", CJS_PROBE);
  const r = run(process.execPath, [f], { cwd: CONSUMER });
  assert.equal(r.code, 0, r.stderr);
  checkProbe(r.stdout, "node-cjs");
});

test("Deno: import with no permissions at all (no --allow-read)", () => {
  const f = consumerFile("probe-deno.mjs", ESM_PROBE);
  const r = run(join(BIN, "deno"), ["run", "--no-prompt", "--node-modules-dir=manual", "--no-lock", f], {
    cwd: CONSUMER,
    env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  });
  assert.equal(r.code, 0, r.stderr);
  checkProbe(r.stdout, "deno");
});

test("Bun: import from 'qbank-connect'", () => {
  const f = consumerFile("probe-bun.mjs", ESM_PROBE);
  const r = run(join(BIN, "bun"), [f], { cwd: CONSUMER, env: { ...process.env, NO_COLOR: "1" } });
  assert.equal(r.code, 0, r.stderr);
  checkProbe(r.stdout, "bun");
});

test("workerd: a real Worker imports the package; the .wasm is a separate module, never compiled from bytes", async () => {
  // guard.js runs before the package is evaluated (ES module order) and makes every way of
  // compiling wasm from bytes throw, as production Cloudflare does.
  consumerFile(
    "workers/guard.js",
    `export const compiledFromBytes = [];
const WA = WebAssembly;
const OrigModule = WA.Module;
function refuse(what) { compiledFromBytes.push(what); throw new Error("Wasm code generation disallowed by embedder: " + what); }
WA.Module = new Proxy(OrigModule, { construct() { refuse("new WebAssembly.Module"); } });
WA.compile = () => refuse("WebAssembly.compile");
const origInstantiate = WA.instantiate.bind(WA);
WA.instantiate = (src, imports) => (src instanceof OrigModule ? origInstantiate(src, imports) : refuse("WebAssembly.instantiate(bytes)"));
WA.compileStreaming = () => refuse("WebAssembly.compileStreaming");
WA.instantiateStreaming = () => refuse("WebAssembly.instantiateStreaming");
`,
  );
  const source = `import { compiledFromBytes } from "../guard.js";
import * as q from "qbank-connect";
export default {
  async fetch(request) {
    ${PROBE_BODY}
    out.compiledFromBytes = compiledFromBytes;
    return new Response(JSON.stringify(out), { headers: { "content-type": "application/json" } });
  },
};
`;
  const w = await startWorkerd("probe", source);
  try {
    const res = await fetch(w.url + "/");
    const text = await res.text();
    assert.equal(res.status, 200, text + w.log());
    checkProbe(text, "workerd");
    assert.deepEqual(JSON.parse(text).compiledFromBytes, [], "no wasm compiled from bytes");
    // The bundle carries the .wasm as its own module and not the embedded base64 copy.
    assert.ok(
      w.modules.some((m) => m.includes('wasm = embed "qbank_connect_bg.wasm"')),
      "the .wasm is a separate module",
    );
    assert.ok(!w.bundle.includes("wasmBytes"), "the Worker bundle does not embed the wasm bytes");
    assert.ok(/import \w+ from "\.\/qbank_connect_bg\.wasm"/.test(w.bundle), "the bundle imports the .wasm module");
  } finally {
    await w.stop();
  }
});

test("package.json: exports map puts the Workers conditions first and lists side-effect entries", () => {
  const pkg = JSON.parse(readFileSync(join(PKG, "package.json"), "utf8"));
  const keys = Object.keys(pkg.exports["."]);
  assert.deepEqual(keys.slice(0, 3), ["workerd", "worker", "edge-light"]);
  assert.ok(keys.indexOf("import") < keys.indexOf("default"));
  assert.ok(keys.indexOf("deno") < keys.indexOf("node") && keys.indexOf("bun") < keys.indexOf("node"), "Deno and Bun (which also match node) keep their fetch");
  assert.equal(pkg.exports["."].node.import.default, "./node.js");
  assert.equal(pkg.exports["."].node.require.default, "./node.cjs");
  assert.equal(pkg.exports["."].require.default, "./index.cjs");
  assert.deepEqual(pkg.sideEffects.sort(), ["./index.cjs", "./index.js", "./node.cjs", "./node.js", "./workerd.js"]);
  for (const f of ["index.js", "index.cjs", "node.js", "node.cjs", "workerd.js", "index.d.ts", "index.d.cts", "qbank_connect_bg.wasm", "README.md"]) {
    assert.ok(existsSync(join(PKG, f)), `pkg/${f} exists`);
  }
  assert.equal(pkg.version, CRATE_VERSION);
});

test("TypeScript: a consumer type-checks with tsc --strict (ESM and CommonJS)", () => {
  consumerFile(
    "ts/consumer.ts",
    `import { TokenManager, QBankClient, QBankError, version, type AccessToken, type Balance } from "qbank-connect";
const v: string = version();
const tm = new TokenManager({ tokenUrl: "https://auth.qbankconnect.com/token", clientId: "id", clientSecret: "s", scope: ["balances.read"] });
async function main(): Promise<void> {
  const t: AccessToken = await tm.getToken({ forceRefresh: false });
  const exp: number = t.expiresAt;
  const bank = new QBankClient({ environment: "production", clientId: "id", clientSecret: "s" });
  try {
    const b: Balance = await bank.getBalance("a1b2c3d4");
    const s: string = b.availableBalance + b.ledgerBalance;
    void s;
  } catch (e) {
    if (e instanceof QBankError) { const c: string = e.code; void c; }
  }
  void exp; void v;
}
void main;
// @ts-expect-error: unknown option names are type errors too
new TokenManager({ tokenUrl: "x", clientId: "a", clientSecret: "b", clientSecert: "typo" });
`,
  );
  consumerFile(
    "ts/consumer.cts",
    `import qb = require("qbank-connect");
const tm: qb.TokenManager = new qb.TokenManager({ tokenUrl: "https://a.example/t", clientId: "a", clientSecret: "b" });
const s: string = tm.status.state;
void s;
`,
  );
  consumerFile(
    "ts/tsconfig.json",
    JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022", lib: ["es2022", "dom"], skipLibCheck: false, types: [] },
      files: ["consumer.ts", "consumer.cts"],
    }),
  );
  const r = run(join(BIN, "tsc"), ["-p", join(CONSUMER, "ts", "tsconfig.json")], { cwd: CONSUMER });
  assert.equal(r.code, 0, r.stdout + r.stderr);
});

test("the published type declarations name no internal member (no `__` anywhere)", () => {
  const pkg = JSON.parse(readFileSync(join(PKG, "package.json"), "utf8"));
  const declarations = pkg.files.filter((f) => /\.d\.[cm]?ts$/.test(f));
  assert.deepEqual(declarations.sort(), ["index.d.cts", "index.d.ts", "testing.d.cts", "testing.d.ts"], "the published declarations");
  // (null: a condition under which the subpath does not resolve, e.g. ./testing in Workers.)
  const typesOf = (conditions) => Object.values(conditions).flatMap((v) => (v === null || typeof v === "string" ? [] : v.types ? [v.types] : typesOf(v)));
  for (const t of [pkg.types, ...typesOf(pkg.exports["."]), ...typesOf(pkg.exports["./testing"])]) assert.ok(declarations.includes(t.replace(/^\.\//, "")), `${t} is published`);
  for (const f of declarations) {
    const text = readFileSync(join(PKG, f), "utf8");
    assert.ok(text.length > 1000 && !text.includes("__"), `${f} names no internal (\`__\`) member`);
  }
});

test("publint reports no problems on pkg/", () => {
  const r = run(join(BIN, "publint"), ["run", PKG, "--strict"], { cwd: PKG });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout + r.stderr, /(warning|error|suggestion)/i, r.stdout);
});

test("@arethetypeswrong/cli reports no problems on pkg/", () => {
  const r = run(join(BIN, "attw"), ["--pack", PKG, "--format", "table-flipped"], { cwd: PKG });
  assert.equal(r.code, 0, r.stdout + r.stderr);
});

test("the .wasm links none of core's formatting panic paths, string searcher or sort (each costs KiBs)", () => {
  // Their panic messages are what they leave behind in the data: a &str index the compiler cannot
  // prove to be on a char boundary (slice_error_fail, which brings char Debug escapes and the
  // Unicode printable tables), and slice::sort's check of the comparison function. The core
  // slices with core::sub/tail and searches bytewise instead (README, Benchmarks: Size).
  const wasm = readFileSync(join(PKG, "qbank_connect_bg.wasm")).toString("latin1");
  for (const message of ["is not a char boundary", "user-provided comparison function", "byte index"]) {
    assert.ok(!wasm.includes(message), `the .wasm holds core's "${message}" panic message again`);
  }
});

test("the .wasm names no path of the machine that built it (its panic locations are remapped)", () => {
  // The panic locations core keeps name source files; without the Makefile's --remap-path-prefix
  // those of dependencies read /home/<user>/.cargo/registry/src/… (or /root/…).
  const wasm = readFileSync(join(PKG, "qbank_connect_bg.wasm")).toString("latin1");
  const cargoHome = process.env.CARGO_HOME || join(homedir(), ".cargo");
  // (A home of "/" would match every "//" in the messages' URLs: only real directories count.)
  for (const path of [cargoHome, homedir(), process.cwd()].filter((p) => p.length > 1)) {
    assert.ok(!wasm.includes(path + "/"), `the .wasm holds the build machine's path ${path}/`);
  }
  const paths = wasm.match(/[\w./-]+\.rs/g) || [];
  assert.ok(paths.some((p) => p.startsWith("crates/index.crates.io-")), `dependencies' paths are remapped under crates/ (got ${paths})`);
  for (const p of paths) assert.ok(/^(crates\/|src\/|\/rustc\/[0-9a-f]+\/library\/)/.test(p), `an unexpected source path in the .wasm: ${p}`);
});

test("the .wasm's import and export names carry no wasm-bindgen hash, and workerd.js provides every import", async () => {
  // pkg-template/short-names.mjs drops the 16-hex-digit hashes (__wbg_then_e3f7f2d365708be8 is
  // __wbg_then): ~1.4 KiB gzipped of what a Worker ships. The glue must name each import as
  // the .wasm does, or instantiation fails.
  const module = await WebAssembly.compile(readFileSync(join(PKG, "qbank_connect_bg.wasm")));
  const imports = WebAssembly.Module.imports(module);
  const names = [...imports, ...WebAssembly.Module.exports(module)].map((d) => d.name);
  assert.ok(names.length > 50, `the .wasm's imports and exports (${names.length})`);
  for (const name of names) assert.ok(!/_h?[0-9a-f]{16}$/.test(name), `a hashed name in the .wasm: ${name}`);
  const workerd = readFileSync(join(PKG, "workerd.js"), "utf8");
  for (const { name } of imports) assert.ok(new RegExp(`\\b${name}\\b`).test(workerd), `workerd.js does not provide ${name}`);
});

test("each published entry is one minified file; workerd.js imports only its .wasm module", () => {
  const pkg = JSON.parse(readFileSync(join(PKG, "package.json"), "utf8"));
  assert.ok(!pkg.files.some((f) => f.startsWith("snippets") || f === "qbank_connect.js"), "the bundles' sources are not published");
  const imports = (text) => [...text.matchAll(/(?:\bimport\s*(?:[\w${}\s,*]+\s*from\s*)?|\brequire\()\s*["']([^"']+)["']/g)].map((m) => m[1]);
  const workerd = readFileSync(join(PKG, "workerd.js"), "utf8");
  assert.deepEqual(imports(workerd), ["./qbank_connect_bg.wasm", "cloudflare:workers"], "workerd.js is self-contained but for the .wasm and the platform's DurableObject it imports");
  for (const f of ["index.js", "index.cjs", "node.js", "node.cjs"]) {
    const text = readFileSync(join(PKG, f), "utf8");
    assert.ok(imports(text).every((s) => s.startsWith("node:")), `${f} imports only node: builtins (got ${imports(text)})`);
  }
  for (const f of ["workerd.js", "index.js", "node.js"]) {
    const text = readFileSync(join(PKG, f), "utf8");
    // Minified: no comments and no indentation left (wasm-bindgen's and support.js's are long).
    assert.ok(!/^\s+\S/m.test(text) && !text.includes("// "), `${f} is minified`);
    // Names kept: stack traces and class names read as in the sources.
    assert.ok(/\bQBankError=class\b/.test(text) && text.includes("function fastPath("), `${f} keeps its names`);
    // index.js and node.js keep their local names too; workerd.js's are shortened (build.mjs's
    // shortLocals: what a Worker ships is held under 80 KiB gzipped).
    if (f !== "workerd.js") assert.ok(text.includes("function fastPath(cls)"), `${f} keeps its local names`);
  }
  // workerd.js declares every function index.js does, under the same name, but the Node-only
  // ones (the embedded wasm's decoder; redisStore and denoKvStore, which Workers cannot run),
  // and only the Workers-only ones besides (the Durable Object coordinator: coordinator.js).
  const declared = (f) => [...readFileSync(join(PKG, f), "utf8").matchAll(/\bfunction\*? ?([\w$]+)\(/g)].map((m) => m[1]);
  const notInWorkers = ["wasmBytes", "redisStore", "denoKvStore", "unlocked"];
  const expected = [...new Set(declared("index.js"))].filter((n) => !notInWorkers.includes(n)).sort();
  assert.ok(expected.length > 50, `index.js's functions (${expected.length})`);
  const onlyInWorkers = ["durableObjectStore", "tokenCoordinator", "due", "landed", "wrote", "use", "refresh", "arm"];
  assert.deepEqual([...new Set(declared("workerd.js"))].filter((n) => !onlyInWorkers.includes(n)).sort(), expected, "workerd.js keeps every function's name");
  for (const n of onlyInWorkers) assert.ok(declared("workerd.js").includes(n), `workerd.js declares ${n}`);
});

test("workerd.js carries neither redisStore nor denoKvStore (they cannot run in Workers); the other entries carry both", async () => {
  // Each adapter's own text: its name (kept by the minifier), its config error, its engine calls.
  const marks = {
    redisStore: ["function redisStore(", "redisStore(client): expected a connected node-redis", 'redis.call("GET",KEYS[1])'],
    denoKvStore: ["function denoKvStore(", "denoKvStore(kv): expected a Deno.Kv", "database is locked"],
  };
  assert.deepEqual(Object.keys(marks).sort(), [...NOT_IN_WORKERS].sort());
  const workerd = readFileSync(join(PKG, "workerd.js"), "utf8");
  assert.ok(workerd.includes("function memoryStore("), "workerd.js has memoryStore");
  for (const [name, texts] of Object.entries(marks)) {
    for (const t of texts) assert.ok(!workerd.includes(t), `workerd.js carries ${name} (${t})`);
    for (const f of ["index.js", "index.cjs", "node.js", "node.cjs"]) {
      const text = readFileSync(join(PKG, f), "utf8");
      for (const t of texts) assert.ok(text.includes(t), `${f} carries ${name} (${t})`);
    }
  }
  // A Worker that imports one fails when it is bundled (wrangler's conditions), naming it.
  const { build } = await import("esbuild");
  ensureConsumer();
  for (const name of NOT_IN_WORKERS) {
    const entry = consumerFile(`workers/imports-${name}.js`, `import { ${name} } from "qbank-connect";\nexport default { fetch() { return new Response(typeof ${name}); } };\n`);
    const failed = await build({ ...WORKER_BUILD, entryPoints: [entry], write: false }).then(
      () => null,
      (e) => e,
    );
    assert.ok(failed, `bundling a Worker that imports ${name} fails`);
    assert.match(failed.errors.map((m) => m.text).join("\n"), new RegExp(`No matching export in .*workerd\\.js.* for import "${name}"`));
  }
});

test("source maps: a stack trace through the minified entry reads back to support.js (node --enable-source-maps)", () => {
  for (const f of ["index.js", "index.cjs", "node.js", "node.cjs", "workerd.js"]) {
    const map = JSON.parse(readFileSync(join(PKG, `${f}.map`), "utf8"));
    const support = map.sources.findIndex((s) => s.endsWith("/support.js"));
    assert.ok(support >= 0 && map.sourcesContent[support].includes("export class QBankError"), `${f}.map carries support.js`);
    // The embedded wasm is not copied into the map a second time.
    assert.ok(readFileSync(join(PKG, `${f}.map`)).length < 200_000, `${f}.map holds no base64 wasm`);
  }
  const probe = `
for (const load of [() => import("qbank-connect"), async () => (await import("node:module")).createRequire(import.meta.url)("qbank-connect")]) {
  const q = await load();
  try {
    new q.TokenManager({ tokenUrl: "http://bank.example/token", clientId: "id", clientSecret: "not-a-real-secret" });
  } catch (e) {
    console.log(e.stack.split("\\n").find((l) => l.includes("qbank-connect")));
  }
}
`;
  const r = run(process.execPath, ["--enable-source-maps", consumerFile("sourcemap.mjs", probe)], { cwd: CONSUMER });
  assert.equal(r.code, 0, r.stderr);
  const frames = r.stdout.trim().split("\n");
  assert.equal(frames.length, 2, r.stdout);
  for (const frame of frames) assert.match(frame, /support\.js:\d+:\d+/, "the frame maps back to support.js");
});
