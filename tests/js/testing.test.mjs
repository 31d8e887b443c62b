// qbank-connect/testing (issue 20): the local sandboxes, published for users' own tests, used the
// way a user would: from the packed tarball installed in the consumer project (harness.mjs's
// ensureConsumer), in Node ESM, Node CommonJS, Deno and Bun. In each, a test written against the
// entry starts the sandbox, injects a 503 on the API and sees getBalance retry and succeed; three
// 503s use up the retries; the local QPay signs a seeded user in. A Worker that imports the entry fails to bundle; the Workers build and
// the main entries carry none of it; its types check in a strict TypeScript consumer. The
// README's examples (node:test and Deno.test) run as written.
//
// The Node children run under the leak scanner (standalone: it scans at exit and fails the
// process on a leak); Deno's and Bun's output comes back here and is checked for the secret.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ensureConsumer, consumerFile, run, BIN, CONSUMER, PKG, ROOT, WORKER_BUILD } from "./harness.mjs";
import { DEFAULT_CLIENTS, startSandbox, startQPaySandbox } from "../../src/testing/index.mjs";

const ACCOUNT = "a1b2c3d4-e5f6-7890-1234-567890abcde";

// The test a user writes, as one async function of the two modules (each runtime's file adds its
// own imports): the probe prints one JSON line, with no token and no secret in it.
const PROBE = `
async function probe(testing, q) {
  const pick = (c) => ({ tokenRequests: c.tokenRequests, apiRequests: c.apiRequests, apiByStatus: c.apiByStatus, faultsApplied: c.faultsApplied });
  const out = { exports: Object.keys(testing).filter((k) => k !== "default").sort() };
  const sb = await testing.startSandbox();
  try {
    const [demo] = testing.DEFAULT_CLIENTS;
    const bank = new q.QBankClient({
      environment: { tokenUrl: sb.tokenUrl, apiBaseUrl: sb.apiBaseUrl },
      clientId: demo.clientId,
      clientSecret: demo.clientSecret,
      allowInsecureHttp: true,
    });
    try {
      // One 503 on the API: getBalance waits (250 ms: no Retry-After) and asks again.
      sb.control.addFault({ target: "api", status: 503, body: "" });
      const b = await bank.getBalance("${ACCOUNT}");
      out.balance = { availableBalance: b.availableBalance, ledgerBalance: b.ledgerBalance };
      out.seeded = JSON.parse(testing.SEED_ACCOUNTS["${ACCOUNT}"]).available_balance;
      out.afterOne = pick(sb.control.counters());
      out.pending = sb.control.faults().length;
      // Three 503s (Retry-After: 0): the retries run out and the caller gets server_error.
      sb.control.reset();
      sb.control.addFault({ target: "api", status: 503, count: 3, headers: { "Retry-After": "0" }, body: "" });
      try {
        await bank.getBalance("${ACCOUNT}");
        out.afterThree = "resolved";
      } catch (e) {
        out.afterThree = { isQBankError: e instanceof q.QBankError, code: e.code, status: e.status, counters: pick(sb.control.counters()) };
      }
    } finally {
      await bank.close();
    }
  } finally {
    await sb.close();
  }
  // The local QPay: a seeded user signs in (password grant) and reads its tenant.
  const qp = await testing.startQPaySandbox();
  try {
    const creds = await q.QPayCredentials.signIn({ baseUrl: qp.baseUrl, realm: qp.realm, allowInsecureHttp: true, username: "issuer-admin", password: "issuer-pass-not-real" });
    const who = await creds.whoami();
    out.qpay = { tenantId: who.tenantId, tokenSuccessesByGrant: qp.control.counters().tokenSuccessesByGrant, apiByRoute: qp.control.counters().apiByRoute };
  } finally {
    await qp.close();
  }
  return out;
}
`;
const ESM_PROBE = `import * as testing from "qbank-connect/testing";
import * as q from "qbank-connect";
${PROBE}
const out = await probe(testing, q);
out.entry = String(await import.meta.resolve("qbank-connect/testing")).split("/").pop();
console.log(JSON.stringify(out));
`;
const CJS_PROBE = `const testing = require("qbank-connect/testing");
const q = require("qbank-connect");
${PROBE}
probe(testing, q).then((out) => {
  out.entry = require("node:path").basename(require.resolve("qbank-connect/testing"));
  console.log(JSON.stringify(out));
});
`;

const EXPORTS = [
  "BODY_LIMIT", "CONSOLE_CLIENT_ID", "DEFAULT_CLIENTS", "DEFAULT_REALM", "ROLES_BY_TENANT_TYPE",
  "SEED_ACCOUNTS", "SEED_TENANTS", "SEED_USERS", "startQPaySandbox", "startSandbox",
];

function checkProbe(r, runtime, entry) {
  assert.equal(r.code, 0, `${runtime}: ${r.stdout}${r.stderr}`);
  const text = r.stdout + r.stderr;
  for (const secret of [...DEFAULT_CLIENTS.map((c) => c.clientSecret), "issuer-pass-not-real"]) {
    assert.ok(!text.includes(secret), `${runtime}: the output holds no client secret or password`);
  }
  const out = JSON.parse(r.stdout.trim().split("\n").pop());
  assert.deepEqual(out.exports, EXPORTS, `${runtime}: the entry's exports`);
  assert.equal(out.entry, entry, `${runtime}: qbank-connect/testing resolves to ${entry}`);
  assert.deepEqual(out.balance, { availableBalance: "1234.56", ledgerBalance: "1300.00" }, `${runtime}: the balance, exact`);
  assert.equal(out.seeded, out.balance.availableBalance, `${runtime}: SEED_ACCOUNTS is what the sandbox serves`);
  // The 503 then the 200: two API requests for one call, one token request, the fault used up.
  assert.deepEqual(
    out.afterOne,
    { tokenRequests: 1, apiRequests: 2, apiByStatus: { 503: 1, 200: 1 }, faultsApplied: 1 },
    `${runtime}: getBalance retried the 503 and got the 200`,
  );
  assert.equal(out.pending, 0, `${runtime}: no fault left`);
  assert.deepEqual(
    out.afterThree,
    { isQBankError: true, code: "server_error", status: 503, counters: { tokenRequests: 0, apiRequests: 3, apiByStatus: { 503: 3 }, faultsApplied: 3 } },
    `${runtime}: three 503s use up the retries`,
  );
  assert.deepEqual(
    out.qpay,
    { tenantId: "issuer-banco-azul", tokenSuccessesByGrant: { password: 1 }, apiByRoute: { "GET /credentials/whoami": { 200: 1 } } },
    `${runtime}: the local QPay signs a seeded user in and answers whoami`,
  );
}

/** A Node child under the leak scanner, standalone (it scans at exit and exits non-zero on a leak). */
function nodeScanned(file) {
  const { NODE_TEST_CONTEXT, ...env } = process.env;
  const r = run(process.execPath, ["--require", join(ROOT, "tests", "leaks", "register.cjs"), file], { cwd: CONSUMER, env });
  assert.match(r.stderr, /leak scanner: [1-9]\d* strings scanned, 0 leaks/, r.stderr);
  return r;
}

before(() => ensureConsumer());

test("Node ESM: import { startSandbox } from 'qbank-connect/testing'; a 503 on the API, getBalance retries", () => {
  checkProbe(nodeScanned(consumerFile("testing/probe.mjs", ESM_PROBE)), "node-esm", "testing.js");
});

test("Node CommonJS: require('qbank-connect/testing'); a 503 on the API, getBalance retries", () => {
  checkProbe(nodeScanned(consumerFile("testing/probe.cjs", CJS_PROBE)), "node-cjs", "testing.cjs");
});

test("Deno: import from 'qbank-connect/testing' with only --allow-net=127.0.0.1; a 503, getBalance retries", () => {
  const f = consumerFile("testing/probe-deno.mjs", ESM_PROBE);
  const r = run(join(BIN, "deno"), ["run", "--no-prompt", "--allow-net=127.0.0.1", "--node-modules-dir=manual", "--no-lock", f], {
    cwd: CONSUMER,
    env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  });
  checkProbe(r, "deno", "testing.js");
});

test("Bun: import from 'qbank-connect/testing'; a 503 on the API, getBalance retries", () => {
  const f = consumerFile("testing/probe-bun.mjs", ESM_PROBE);
  const r = run(join(BIN, "bun"), [f], { cwd: CONSUMER, env: { ...process.env, NO_COLOR: "1" } });
  checkProbe(r, "bun", "testing.js");
});

test("a Worker that imports qbank-connect/testing fails to bundle (wrangler's conditions); none of it is in the main entries", async () => {
  const { build } = await import("esbuild");
  const entry = consumerFile(
    "workers/imports-testing.js",
    `import { startSandbox } from "qbank-connect/testing";\nexport default { fetch() { return new Response(typeof startSandbox); } };\n`,
  );
  const failed = await build({ ...WORKER_BUILD, entryPoints: [entry], write: false }).then(
    () => null,
    (e) => e,
  );
  assert.ok(failed, "bundling a Worker that imports qbank-connect/testing fails");
  const text = failed.errors.map((m) => [m.text, ...m.notes.map((n) => n.text)].join(" ")).join("\n");
  assert.match(text, /Could not resolve "qbank-connect\/testing"/, text);
  assert.match(text, /explicitly disabled/, text);
  // The same import for Node bundles.
  await build({ bundle: true, format: "esm", platform: "node", entryPoints: [entry], write: false, logLevel: "silent" });
  // The servers are in the testing entry only: no main entry carries them (make size is unchanged).
  for (const f of ["workerd.js", "index.js", "index.cjs", "node.js", "node.cjs"]) {
    const t = readFileSync(join(PKG, f), "utf8");
    assert.ok(!t.includes("startSandbox") && !t.includes("demo-secret-not-real") && !t.includes("createKit"), `${f} carries no sandbox`);
  }
});

test("package.json: ./testing is null under the Workers and browser conditions (first), node/deno/bun/import/require/default otherwise; published, typed", () => {
  const pkg = JSON.parse(readFileSync(join(PKG, "package.json"), "utf8"));
  const t = pkg.exports["./testing"];
  assert.deepEqual(Object.keys(t).slice(0, 4), ["workerd", "worker", "edge-light", "browser"]);
  for (const k of ["workerd", "worker", "edge-light", "browser"]) assert.equal(t[k], null, `${k}: null`);
  const esm = { types: "./testing.d.ts", default: "./testing.js" };
  const cjs = { types: "./testing.d.cts", default: "./testing.cjs" };
  assert.deepEqual(t.node, { import: esm, require: cjs });
  assert.deepEqual(t.bun, { import: esm, require: cjs });
  assert.deepEqual(t.deno, esm);
  assert.deepEqual([t.import, t.require, t.default], [esm, cjs, esm]);
  for (const f of ["testing.js", "testing.cjs", "testing.d.ts", "testing.d.cts"]) assert.ok(pkg.files.includes(f), `files lists ${f}`);
  // One source: the bundles are src/testing/ (esbuild names each module it bundles).
  for (const f of ["testing.js", "testing.cjs"]) {
    const text = readFileSync(join(PKG, f), "utf8");
    for (const m of ["common.mjs", "sandbox.mjs", "qpay.mjs"]) assert.ok(text.includes(`// src/testing/${m}`), `${f} is bundled from src/testing/${m}`);
  }
});

// The members testing.d.ts declares for an interface (with those of the interfaces it extends).
function declared(dts, name) {
  const m = new RegExp(`export interface ${name}(?:<[^>]*>)?(?: extends (\\w+)[^\\n]*?)? \\{\\n([\\s\\S]*?)\\n\\}`).exec(dts);
  assert.ok(m, `testing.d.ts declares ${name}`);
  const own = [...m[2].matchAll(/^ {2}(\w+)\??[(:]/gm)].map((x) => x[1]);
  return [...(m[1] ? declared(dts, m[1]) : []), ...own].sort();
}

test("testing.d.ts declares exactly what the servers give: the returned object, control, counters, configuration", async () => {
  const dts = readFileSync(join(ROOT, "pkg-template", "testing.d.ts"), "utf8");
  const keys = (o) => Object.keys(o).sort();
  const sb = await startSandbox();
  try {
    assert.deepEqual(keys(sb), declared(dts, "Sandbox"), "Sandbox");
    assert.deepEqual(keys(sb.control), declared(dts, "SandboxControl"), "SandboxControl");
    assert.deepEqual(keys(sb.control.counters()), declared(dts, "SandboxCounters"), "SandboxCounters");
    assert.deepEqual(keys(sb.control.configure({})), declared(dts, "SandboxConfig"), "SandboxConfig");
    assert.deepEqual(keys(sb.control.clock()), declared(dts, "ServerClock"), "ServerClock");
    const [pending] = sb.control.addFault({ target: "api", status: 503 });
    assert.deepEqual(keys(pending), declared(dts, "PendingSandboxFault"), "PendingSandboxFault");
  } finally {
    await sb.close();
  }
  const qp = await startQPaySandbox();
  try {
    assert.deepEqual(keys(qp), declared(dts, "QPaySandbox"), "QPaySandbox");
    assert.deepEqual(keys(qp.control), declared(dts, "QPayControl"), "QPayControl");
    assert.deepEqual(keys(qp.control.counters()), declared(dts, "QPayCounters"), "QPayCounters");
    assert.deepEqual(keys(qp.control.configure({})), declared(dts, "QPayConfig"), "QPayConfig");
    assert.deepEqual(keys(qp.control.tenants()[0]), declared(dts, "QPayTenant"), "QPayTenant");
    const [pending] = qp.control.addFault({ target: "api", status: 503 });
    assert.deepEqual(keys(pending), declared(dts, "PendingFault"), "PendingFault");
  } finally {
    await qp.close();
  }
});

test("TypeScript: a consumer of qbank-connect/testing type-checks with tsc --strict (ESM and CommonJS)", () => {
  consumerFile(
    "ts-testing/consumer.ts",
    `import { startSandbox, startQPaySandbox, DEFAULT_CLIENTS, type Sandbox, type SandboxCounters } from "qbank-connect/testing";
import { QBankClient, QPayCredentials } from "qbank-connect";
async function main(): Promise<void> {
  const sb: Sandbox = await startSandbox({ tokenLifetimeSeconds: 5, jwtTokens: true });
  const bank = new QBankClient({ environment: { tokenUrl: sb.tokenUrl, apiBaseUrl: sb.apiBaseUrl }, clientId: DEFAULT_CLIENTS[0].clientId, clientSecret: DEFAULT_CLIENTS[0].clientSecret, allowInsecureHttp: true });
  sb.control.addFault({ target: "api", status: 503, headers: { "Retry-After": "1" }, count: 2 });
  sb.control.addFault([{ target: "token", delayMs: 2000 }, { target: "api", trickle: true }]);
  const now: number = sb.control.advanceClock(6000).now;
  const c: SandboxCounters = sb.control.counters();
  const n: number = c.apiByStatus["503"] + c.tokenRequests;
  const qp = await startQPaySandbox({ tokenLifetimeSeconds: 5 });
  const creds = await QPayCredentials.signIn({ baseUrl: qp.baseUrl, realm: qp.realm, allowInsecureHttp: true, username: "issuer-admin", password: "issuer-pass-not-real" });
  const live: number = qp.control.liveTokens();
  void creds; void bank; void now; void n; void live;
  await qp.close();
  await sb.close();
}
void main;
// @ts-expect-error: a fault's target is token, api or any
void startSandbox().then((s) => s.control.addFault({ target: "tokens" }));
`,
  );
  consumerFile(
    "ts-testing/consumer.cts",
    `import testing = require("qbank-connect/testing");
const p: Promise<testing.QPaySandbox> = testing.startQPaySandbox({ realm: "qpay" });
void p;
`,
  );
  consumerFile(
    "ts-testing/tsconfig.json",
    JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022", lib: ["es2022", "dom"], skipLibCheck: false, types: [] },
      files: ["consumer.ts", "consumer.cts"],
    }),
  );
  const r = run(join(BIN, "tsc"), ["-p", join(CONSUMER, "ts-testing", "tsconfig.json")], { cwd: CONSUMER });
  assert.equal(r.code, 0, r.stdout + r.stderr);
});

// The README's two examples ("Testing your integration"), as written, from the packed package:
// the node:test suite under `node --test`, the Deno.test under `deno test --allow-net=127.0.0.1`
// (its npm: specifiers read as the installed package's names).
function readmeExample(after) {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const at = readme.indexOf(after);
  assert.ok(at >= 0, `README has "${after}"`);
  const m = /```(?:js|ts)\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(m, `a code block after "${after}"`);
  return m[1];
}

test("README: the node:test example passes under node --test (leak-scanned)", () => {
  const f = consumerFile("testing/readme.test.mjs", readmeExample("In a `node:test` suite:"));
  const { NODE_TEST_CONTEXT, ...rest } = process.env;
  // A nested run of its own (its report beside the example, not over this run's). The scanner
  // sees the test process's output and the tokens its sandbox issues; the package installed in
  // the consumer is not instrumented (tests/leaks/hooks.mjs wraps the entries of pkg/ only).
  const env = { ...rest, QBANK_LEAK_REPORT: join(CONSUMER, "testing", "readme-leaks.json") };
  const r = run(process.execPath, ["--require", join(ROOT, "tests", "leaks", "register.cjs"), "--test", "--test-reporter=tap", f], { cwd: CONSUMER, env });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /leak scanner: \d+ strings scanned, 0 leaks/, r.stdout);
  assert.match(r.stdout, /# pass 2\n/, r.stdout);
  assert.match(r.stdout, /# fail 0\n/, r.stdout);
});

test("README: the Deno.test example passes under deno test --allow-net=127.0.0.1", () => {
  const source = readmeExample("In a `Deno.test`").replaceAll('"npm:qbank-connect', '"qbank-connect');
  const f = consumerFile("testing/readme_test.ts", source);
  const r = run(join(BIN, "deno"), ["test", "--no-prompt", "--allow-net=127.0.0.1", "--node-modules-dir=manual", "--no-lock", "--no-check", f], {
    cwd: CONSUMER,
    env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /ok \| 1 passed \| 0 failed/, r.stdout);
});
