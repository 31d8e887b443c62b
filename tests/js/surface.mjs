// The public surface: each exported class shows exactly the members index.d.ts documents, and no
// internal one (wasm-bindgen's `__wbg_ptr`, `__wrap`, `free`…, ours `__slot`…; build.mjs keys
// them by symbols). surfaceProbe() is code a runtime runs with the package's namespace as `q`;
// checkSurface() compares what it reports with index.d.ts as published, read with the
// TypeScript compiler (so the expected lists cannot drift from the documentation).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { PKG } from "./harness.mjs";

/**
 * Code that sets `out.surface` (each exported function's own property names and its
 * prototype's), `out.instances` (a constructed TokenManager's, QBankClient's, its tokens', a
 * OneTimeSecret's own names) and `out.errorOwn` (a QBankError's). `options`: added to every
 * constructor's (a web page needs dangerouslyAllowBrowser).
 */
export function surfaceProbe(options = {}) {
  return `
{
  const own = (o) => Object.getOwnPropertyNames(o).sort();
  const extra = ${JSON.stringify(options)};
  out.exports = Object.keys(q).filter((k) => k !== "default").sort();
  out.surface = {};
  for (const [name, value] of Object.entries(q)) {
    if (typeof value === "function") out.surface[name] = { statics: own(value), proto: value.prototype ? own(value.prototype) : null };
  }
  const secret = { clientId: "id", clientSecret: "not-a-real-secret", autoRefresh: false, ...extra };
  const tm = new q.TokenManager({ tokenUrl: "https://bank.example/token", ...secret });
  const bank = new q.QBankClient(secret);
  out.instances = { TokenManager: own(tm), QBankClient: own(bank), "QBankClient.tokens": own(bank.tokens), OneTimeSecret: own(new q.OneTimeSecret("x")) };
  tm.close();
  bank.close();
  try {
    new q.TokenManager({ ...extra });
  } catch (e) {
    out.errorOwn = e instanceof q.QBankError ? own(e) : "not a QBankError: " + e;
  }
}
`;
}

/**
 * What index.d.ts (as published) documents, read with the TypeScript compiler: the value exports,
 * and for each declared class its static members, its instance members (methods, and
 * properties: on the prototype as getters, except an Error subclass's, which are its own).
 */
export function documentedSurface() {
  const file = join(PKG, "index.d.ts");
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
  const flags = (n) => ts.getCombinedModifierFlags(n);
  const doc = { exports: [], classes: {} };
  for (const node of source.statements) {
    if (!(flags(node) & ts.ModifierFlags.Export)) continue;
    if (ts.isFunctionDeclaration(node)) doc.exports.push(node.name.text);
    if (!ts.isClassDeclaration(node)) continue;
    const name = node.name.text;
    doc.exports.push(name);
    const extendsError = (node.heritageClauses ?? []).some((h) => h.types.some((t) => t.expression.getText(source) === "Error"));
    const cls = { statics: [], methods: [], properties: [], extendsError };
    for (const m of node.members) {
      if (ts.isConstructorDeclaration(m)) continue;
      const member = m.name.getText(source);
      if (flags(m) & ts.ModifierFlags.Static) cls.statics.push(member);
      else if (ts.isMethodDeclaration(m)) cls.methods.push(member);
      else cls.properties.push(member);
    }
    doc.classes[name] = cls;
  }
  doc.exports.sort();
  return doc;
}

/**
 * The documented exports that the Workers entry (workerd.js) leaves out: they cannot run there
 * (redisStore needs TCP sockets, denoKvStore Deno.openKv); index.d.ts says so on each.
 */
export const NOT_IN_WORKERS = ["denoKvStore", "redisStore"];

/**
 * The documented exports only the Workers entry has: the Durable Object coordinator (its class
 * extends cloudflare:workers' DurableObject); index.d.ts says so on each.
 */
export const ONLY_IN_WORKERS = ["TokenCoordinator", "durableObjectStore"];

/**
 * Asserts that what surfaceProbe() reported in `runtime` is exactly the documented surface (in
 * workerd: all of it but NOT_IN_WORKERS).
 */
export function checkSurface(out, runtime) {
  const doc = documentedSurface();
  assert.ok(doc.exports.length >= 7 && Object.keys(doc.classes).length >= 5, `index.d.ts read (${doc.exports})`);
  for (const name of NOT_IN_WORKERS) assert.ok(doc.exports.includes(name), `index.d.ts documents ${name}`);
  for (const name of ONLY_IN_WORKERS) assert.ok(doc.exports.includes(name), `index.d.ts documents ${name}`);
  const left = runtime === "workerd" ? NOT_IN_WORKERS : ONLY_IN_WORKERS;
  const expected = doc.exports.filter((n) => !left.includes(n));
  assert.deepEqual(out.exports, expected, `${runtime}: the exports are exactly index.d.ts's but ${left}`);
  const sorted = (a) => [...a].sort();
  for (const [name, cls] of Object.entries(doc.classes)) {
    if (!expected.includes(name)) continue;
    const got = out.surface[name];
    const onPrototype = cls.extendsError ? cls.methods : [...cls.methods, ...cls.properties];
    assert.deepEqual(got.proto, sorted(["constructor", ...onPrototype]), `${runtime}: ${name}.prototype has exactly the documented members`);
    assert.deepEqual(got.statics, sorted(["length", "name", "prototype", ...cls.statics]), `${runtime}: ${name} has exactly the documented static members`);
  }
  for (const name of expected.filter((n) => !doc.classes[n])) {
    assert.ok(!out.surface[name].statics.some((k) => k.startsWith("__")), `${runtime}: ${name} has no internal member`);
  }
  for (const [what, names] of Object.entries(out.instances)) {
    assert.deepEqual(names, [], `${runtime}: a ${what} instance has no own property (all it shows is documented on its class)`);
  }
  assert.ok(Array.isArray(out.errorOwn) && out.errorOwn.includes("code"), `${runtime}: a QBankError was probed (${out.errorOwn})`);
  assert.ok(!out.errorOwn.some((k) => k.startsWith("__")), `${runtime}: a QBankError has no internal member (${out.errorOwn})`);
}
