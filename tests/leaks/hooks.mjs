// Module hooks (node:module register()) for the leak scanner: an import of the built package's
// Node entries (pkg/node.js or pkg/index.js, or the same files installed elsewhere) is answered with a small module
// that re-exports it through instrument.mjs. The package's own files are loaded unchanged.
import { readFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ORIGINAL = "qbank-leak-scanner=original";
let instrumentUrl;
const entries = new Map();

export function initialize(data) {
  instrumentUrl = data.instrumentUrl;
}

/**
 * Whether `url` is one of the package's ESM entries for Node: index.js or node.js beside
 * qbank_connect.js (pkg/), or in the installed package (a folder whose package.json is named
 * qbank-connect: the published files, without qbank_connect.js), each a bundle that exports the
 * classes.
 */
function isPackageEntry(url) {
  if (!url.startsWith("file:") || url.includes("?") || !/\/(index|node)\.js$/.test(url)) return false;
  if (!entries.has(url)) {
    let yes = false;
    try {
      const file = fileURLToPath(url);
      const dir = dirname(file);
      const installed = () => existsSync(join(dir, "package.json")) && JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).name === "qbank-connect";
      yes = (existsSync(join(dir, "qbank_connect.js")) || installed()) && /\bexport\s*\{[^}]*\bQBankClient\b/.test(readFileSync(file, "utf8"));
    } catch {
      yes = false;
    }
    entries.set(url, yes);
  }
  return entries.get(url);
}

export async function resolve(specifier, context, nextResolve) {
  const r = await nextResolve(specifier, context);
  if (!isPackageEntry(r.url)) return r;
  // The wrapper is a data: URL, so no load hook is needed (a load hook would be consulted, across
  // the hooks thread, for every module of the run).
  const original = JSON.stringify(`${r.url}?${ORIGINAL}`);
  const source = [
    `export * from ${original};`,
    `import * as original from ${original};`,
    `import { instrumentPackage } from ${JSON.stringify(instrumentUrl)};`,
    `const w = instrumentPackage(original, ${JSON.stringify(r.url)});`,
    // Declared exports take precedence over the star export.
    "export const TokenManager = w.TokenManager;",
    "export const QBankClient = w.QBankClient;",
    "export const QPayCredentials = w.QPayCredentials;",
    "",
  ].join("\n");
  return { url: `data:text/javascript,${encodeURIComponent(source)}`, format: "module", shortCircuit: true };
}
