// Turns the wasm-bindgen output (after wasm-opt) into the finished npm package folder pkg/.
//
//   node pkg-template/build.mjs <raw-dir> <out-dir>
//
// Entries:
//   workerd.js  Cloudflare Workers (workerd / worker / edge-light conditions): imports the .wasm as
//               a module, because production Cloudflare refuses to compile wasm from bytes.
//   index.js    Node ESM, Deno, Bun and bundlers: the wasm bytes are embedded (base64) and compiled
//               synchronously, so no init() call, no file read (Deno needs no --allow-read) and the
//               package keeps working after the caller's app is bundled.
//   index.cjs   require() outside Node (Bun): index.js bundled to CommonJS by esbuild.
//   node.js     Node ESM (the node condition): index.js, with requests of clients without a
//               `fetch` option sent through node:http(s) (src/js/node-http.js) instead of fetch.
//   node.cjs    Node require(): node.js bundled to CommonJS.
//   testing.js, testing.cjs  qbank-connect/testing: the local sandboxes (src/testing/), Node, Deno
//               and Bun only (see below).
//   cli.mjs     the `qbank-connect` command (src/cli/qbank-connect.mjs, copied as it is).
// Each entry is one bundled, minified file with a source map (see `entries` below).
import { readFileSync, writeFileSync, mkdirSync, rmSync, cpSync, readdirSync, statSync, chmodSync } from "node:fs";
import { join, dirname, relative, basename } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { buildSync } from "esbuild";
import { shortNames } from "./short-names.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const [rawDir, outDir] = process.argv.slice(2).map((p) => join(process.cwd(), p));
if (!rawDir || !outDir) {
  console.error("usage: node pkg-template/build.mjs <raw-dir> <out-dir>");
  process.exit(2);
}

const PUBLIC = ["TokenManager", "QBankClient", "QPayCredentials", "qpayTokenUrl", "version"];
// Classes whose Node inspect output must be their redacted toString().
const CLASSES = ["TokenManager", "QBankClient", "QPayCredentials"];

function findFile(dir, name) {
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) {
      const found = findFile(p, name);
      if (found) return found;
    } else if (entry === name) return p;
  }
  return null;
}

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
// The glue and the .wasm, their hashed import and export names shortened (short-names.mjs).
{
  const short = shortNames(
    readFileSync(join(rawDir, "qbank_connect_bg.wasm")),
    readFileSync(join(rawDir, "qbank_connect.js"), "utf8"),
  );
  writeFileSync(join(outDir, "qbank_connect.js"), short.glue);
  writeFileSync(join(outDir, "qbank_connect_bg.wasm"), short.wasm);
}
cpSync(join(rawDir, "snippets"), join(outDir, "snippets"), { recursive: true });

const supportAbs = findFile(join(outDir, "snippets"), "support.js");
if (!supportAbs) throw new Error("support.js snippet not found in the wasm-bindgen output");
const support = "./" + relative(outDir, supportAbs).split("\\").join("/");
// The Node transport lives beside support.js, which it imports.
cpSync(join(root, "src", "js", "node-http.js"), join(dirname(supportAbs), "node-http.js"));
const nodeHttp = support.replace(/support\.js$/, "node-http.js");
// So do the token stores (issue 18), in every entry: they import support.js's QBankError.
cpSync(join(root, "src", "js", "adapters.js"), join(dirname(supportAbs), "adapters.js"));
const adapters = support.replace(/support\.js$/, "adapters.js");
// And the Durable Object coordinator (issue 19), in workerd.js only (it needs cloudflare:workers).
cpSync(join(root, "src", "js", "coordinator.js"), join(dirname(supportAbs), "coordinator.js"));
const coordinator = support.replace(/support\.js$/, "coordinator.js");
const STORES = ["memoryStore", "redisStore", "denoKvStore", "workersKvStore"];
// Cloudflare Workers can run neither redisStore (node-redis and ioredis need TCP sockets) nor
// denoKvStore (no Deno.openKv there): workerd.js leaves them out (about 1 KiB gzipped), so
// importing either in a Worker fails when the Worker is bundled, a clear early error. index.d.ts
// types them for every entry and says so. workersKvStore (a KV namespace binding) is for Workers.
const WORKERD_STORES = ["memoryStore", "workersKvStore"];

// The wasm classes' internal members: wasm-bindgen names them with strings (its own: the
// instance's pointer __wbg_ptr, __wrap, __destroy_into_raw, free; ours: js_name = __slot,
// __balanceUrl, … for support.js), which every class, prototype and instance would then show.
// The glue is rewritten to key each by its symbol in support.js's INTERNAL instead (an access by
// a symbol costs what one by name does), so none is visible (tests/js/package.test.mjs checks
// each class against index.d.ts). A member INTERNAL does not know, or one it names that the glue
// no longer has, fails the build.
const { INTERNAL } = await import(pathToFileURL(supportAbs).href);
function hideInternals(glue) {
  const found = (text) =>
    new Set([
      ...[...text.matchAll(/^ {4}(?:static )?(__\w+|free)\(/gm)].map((m) => m[1]), // methods
      ...[...text.matchAll(/\b(?:this|obj)\.(__\w+) = /g)].map((m) => m[1]), // fields
    ]);
  const names = found(glue);
  const known = Object.keys(INTERNAL);
  const unknown = [...names].filter((n) => !known.includes(n));
  const gone = known.filter((n) => !names.has(n));
  if (unknown.length || gone.length) {
    throw new Error(`the glue's internal members and support.js's INTERNAL differ: not in INTERNAL ${unknown}; not in the glue ${gone}`);
  }
  const alt = known.join("|");
  const out = glue
    .replace(new RegExp(`^( {4}(?:static )?)(${alt})\\(`, "gm"), (_, head, n) => `${head}[$${n}](`)
    .replace(new RegExp(`\\.(${alt})\\b`, "g"), (_, n) => `[$${n}]`);
  const lastImport = [...out.matchAll(/^import .*$/gm)].pop();
  const at = lastImport.index + lastImport[0].length + 1;
  const keys = `import { INTERNAL as $internal } from '${support}';\nconst { ${known.map((n) => `${n}: $${n}`).join(", ")} } = $internal;\n`;
  const hidden = out.slice(0, at) + keys + out.slice(at);
  if (found(hidden).size || new RegExp(`\\.(${alt})\\b`).test(hidden)) throw new Error("an internal member of the glue is still named");
  return hidden;
}

const glue = hideInternals(readFileSync(join(outDir, "qbank_connect.js"), "utf8"));
writeFileSync(join(outDir, "qbank_connect.js"), glue);
for (const name of PUBLIC) {
  if (!new RegExp(`export (class|function) ${name}\\b`).test(glue)) {
    throw new Error(`the wasm-bindgen glue does not export ${name}`);
  }
}

const wasm = readFileSync(join(outDir, "qbank_connect_bg.wasm"));
writeFileSync(
  join(outDir, "wasm-bytes.js"),
  `// The compiled qbank-connect wasm, embedded so that no file read or fetch is needed.\n` +
    `const b64 = "${wasm.toString("base64")}";\n` +
    `export function wasmBytes() {\n` +
    `  if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(b64);\n` +
    `  // Node and Bun: Buffer decodes natively (~30x faster than the loop below).\n` +
    `  const B = globalThis.Buffer;\n` +
    `  if (B && typeof B.from === "function") {\n` +
    `    const buf = B.from(b64, "base64");\n` +
    `    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);\n` +
    `  }\n` +
    `  const bin = atob(b64);\n` +
    `  const out = new Uint8Array(bin.length);\n` +
    `  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);\n` +
    `  return out;\n` +
    `}\n`,
);

const exportsBlock = (stores) =>
  `export { ${PUBLIC.join(", ")} } from "./qbank_connect.js";\n` +
  `export { QBankError, OneTimeSecret } from "${support}";\n` +
  `export { ${stores.join(", ")} } from "${adapters}";\n`;
const decorate =
  `import { ${CLASSES.join(", ")} } from "./qbank_connect.js";\n` +
  `import { balancePath, decorate, fastPath, memoGetter } from "${support}";\n` +
  `decorate(${CLASSES.join(", ")});\n` +
  `fastPath(TokenManager);\n` +
  `memoGetter(QBankClient, "tokens");\n` +
  `balancePath(QBankClient);\n`;

// index.js and node.js are each bundled into one file (as are their CommonJS twins): one module
// to load instead of six saves about 2 ms of start-up in Node. Their sources are written first.
writeFileSync(
  join(outDir, "index.src.js"),
  `// qbank-connect for Node (ESM), Deno, Bun and bundlers.\n` +
    `import { initSync } from "./qbank_connect.js";\n` +
    `import { wasmBytes } from "./wasm-bytes.js";\n` +
    decorate +
    `initSync({ module: wasmBytes() });\n` +
    exportsBlock(STORES),
);

writeFileSync(
  join(outDir, "workerd.src.js"),
  `// qbank-connect for Cloudflare Workers: the .wasm is imported as a module (compiled by the\n` +
    `// platform at upload), never compiled from bytes at run time.\n` +
    `import wasmModule from "./qbank_connect_bg.wasm";\n` +
    `import { initSync } from "./qbank_connect.js";\n` +
    decorate +
    `initSync({ module: wasmModule });\n` +
    exportsBlock(WORKERD_STORES) +
    `import { DurableObject } from "cloudflare:workers";\n` +
    `import { tokenCoordinator } from "${coordinator}";\n` +
    `export { durableObjectStore } from "${coordinator}";\n` +
    // Exported under another local name, so the class keeps its own name (TokenCoordinator).
    `const Coordinator = tokenCoordinator(DurableObject, TokenManager);\n` +
    `export { Coordinator as TokenCoordinator };\n`,
);

writeFileSync(
  join(outDir, "node.src.js"),
  `// qbank-connect for Node (ESM): index.js, with node:http(s) instead of fetch for clients\n` +
    `// without a \`fetch\` option (about four times less CPU per request than Node's fetch).\n` +
    `import { useTransport } from "${support}";\n` +
    `import { nodeTransport } from "${nodeHttp}";\n` +
    `useTransport(nodeTransport);\n` +
    `export * from "./index.src.js";\n`,
);

// Every entry is bundled and minified (whitespace and syntax; names are kept, so stack traces,
// `err.name` and class names read as in the sources; workerd.js's local names are shortened
// after, by shortLocals below): the glue a Worker ships is 15.5 KiB gzipped as wasm-bindgen and
// support.js write it, 8.6 KiB so (before issue 18).
const entries = [
  ["index", "esm", "js"],
  ["index", "cjs", "cjs"],
  ["node", "esm", "js"],
  ["node", "cjs", "cjs"],
  // The .wasm stays an import: Workers compile it at upload, never from bytes at run time.
  ["workerd", "esm", "js"],
];
for (const [name, format, ext] of entries) {
  buildSync({
    entryPoints: [join(outDir, `${name}.src.js`)],
    outfile: join(outDir, `${name}.${ext}`),
    bundle: true,
    format,
    platform: "neutral",
    external: ["node:*", "cloudflare:*", "./qbank_connect_bg.wasm"],
    target: "es2022",
    minifyWhitespace: true,
    minifySyntax: true,
    logLevel: "warning",
    // wasm-bindgen 0.2.130 imports the snippet module once per function, under one key: harmless.
    logOverride: { "duplicate-object-key": "silent" },
    legalComments: "none",
    // A source map beside each entry, with the sources in it, so stack traces can be read back
    // (node --enable-source-maps; Workers' upload_source_maps) although the code is minified.
    sourcemap: "linked",
    sourcesContent: true,
  });
  // The embedded wasm's base64 is no source a reader needs: its map entry says what it was. The
  // snippets are named by their path in the repository (src/js/support.js), not by
  // wasm-bindgen's hashed folder, which is not published.
  const mapPath = join(outDir, `${name}.${ext}.map`);
  const map = JSON.parse(readFileSync(mapPath, "utf8"));
  map.sourcesContent = map.sources.map((src, i) =>
    src.endsWith("wasm-bytes.js") ? "// the .wasm, embedded as base64 (qbank_connect_bg.wasm)\n" : map.sourcesContent[i],
  );
  map.sources = map.sources.map((src) => src.replace(/^snippets\/[^/]+\//, ""));
  writeFileSync(mapPath, JSON.stringify(map));
  if (name === "workerd") await shortLocals(join(outDir, `${name}.${ext}`), map);
}

// What a Worker ships is held under 80 KiB gzipped (tests/js/size.mjs): workerd.js's local names
// (parameters, variables inside functions) are shortened by terser, about 0.9 KiB gzipped. Every
// top-level name (functions, classes, constants) and every function's and class's own name stay
// as in the sources, so stack traces, `err.name` and class names read the same; the source map
// is carried through, so a stack trace still reads back to the sources.
async function shortLocals(file, map) {
  const { minify } = await import("terser");
  const code = readFileSync(file, "utf8");
  const out = await minify(code, {
    module: false, // top-level names are then taken as possibly global, so none is renamed
    toplevel: false,
    compress: false,
    mangle: { toplevel: false },
    keep_fnames: true,
    keep_classnames: true,
    format: { comments: false },
    sourceMap: { content: map, url: `${basename(file)}.map`, includeSources: true },
  });
  writeFileSync(file, out.code);
  writeFileSync(`${file}.map`, typeof out.map === "string" ? out.map : JSON.stringify(out.map));
}
// qbank-connect/testing (testing.js, testing.cjs): the local QBank sandbox and QPay of
// src/testing/, the very servers the package's own tests use, for users' tests in Node, Deno and
// Bun. They serve with node:http, so the entry is in neither workerd.js nor the Workers
// conditions (package.json's exports map them to null). Bundled but not minified: a user reading
// a stack trace from their test reads the servers' own code. build.mjs gives the bundles no
// module URL, so the servers' command lines (isMain) never start from them.
for (const [format, ext] of [["esm", "js"], ["cjs", "cjs"]]) {
  buildSync({
    entryPoints: [join(root, "src", "testing", "index.mjs")],
    outfile: join(outDir, `testing.${ext}`),
    bundle: true,
    format,
    platform: "node",
    target: "es2022",
    define: { "import.meta.url": "undefined" },
    logLevel: "warning",
    legalComments: "none",
  });
}
const testingDts = readFileSync(join(here, "testing.d.ts"), "utf8");
writeFileSync(join(outDir, "testing.d.ts"), testingDts);
writeFileSync(join(outDir, "testing.d.cts"), testingDts);

// The sources of the bundles (*.src.js, qbank_connect.js, snippets/, wasm-bytes.js) stay in pkg/
// but are not published: the soak (tests/soak) loads node.src.js beside qbank_connect.js, to
// reach the wasm instance that the glue module holds.

const version = /^version\s*=\s*"([^"]+)"/m.exec(readFileSync(join(root, "Cargo.toml"), "utf8"))[1];
const pkg = JSON.parse(readFileSync(join(here, "package.json"), "utf8"));
pkg.version = version;
writeFileSync(join(outDir, "package.json"), JSON.stringify(pkg, null, 2) + "\n");

const dts = readFileSync(join(here, "index.d.ts"), "utf8");
writeFileSync(join(outDir, "index.d.ts"), dts);
writeFileSync(join(outDir, "index.d.cts"), dts);
cpSync(join(here, "README.md"), join(outDir, "README.md"));
// The command line (the package's `bin`, `npx qbank-connect`): src/cli/qbank-connect.mjs as it is,
// beside the node.js and testing.js it imports; executable, for a `bin` linked from pkg/ itself.
cpSync(join(root, "src", "cli", "qbank-connect.mjs"), join(outDir, "cli.mjs"));
chmodSync(join(outDir, "cli.mjs"), 0o755);

console.log(`built ${relative(process.cwd(), outDir)}/ (qbank-connect ${version})`);
