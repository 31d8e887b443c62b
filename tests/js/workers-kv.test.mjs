// workersKvStore (issue 19: Workers KV as a shared cache) on a real KV namespace in local workerd:
// miniflare (what `wrangler dev` runs) serves workerd with its KV implementation behind the
// `kvNamespace` binding (workerd itself forwards a KV binding's calls to a service, which is the
// part miniflare supplies), and refuses an expirationTtl under 60 s as Cloudflare does. The Worker is
// bundled from the installed package the way wrangler bundles it (harness.mjs's WORKER_BUILD).
// - The TokenStore contract's get/set/expiry cases (store-contract.mjs; the lease cases do not
//   apply: KV has no compare-and-set), the prefix, the expirationTtl KV is given, garbage.
// - Two Workers (two workerd services, each its own isolate) bound to one namespace share one
//   token through TokenManager({ store: workersKvStore(env.KV) }): 1 token request.
// Bad arguments: adapters.test.mjs.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Miniflare } from "miniflare";
import workerd from "workerd";
import { CONSUMER, ROOT, WORKER_BUILD, ensureConsumer, wasmAsModules } from "./harness.mjs";
import { CONTRACT } from "./store-contract.mjs";
import { startSandbox, DEFAULT_CLIENTS } from "../../src/testing/sandbox.mjs";

const CLIENT = DEFAULT_CLIENTS[0];
/** The contract's cases that a store without setIfAbsent and deleteIfEquals can run. */
// miniflare runs the project's workerd (node_modules/.bin/workerd, as every other workerd test),
// not the older one it depends on.
process.env.MINIFLARE_WORKERD_PATH = workerd.default;
const APPLICABLE = CONTRACT.map(([name]) => name).filter((name) => /^(get|set):/.test(name));

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const WORKER = `import { TokenManager, workersKvStore } from "qbank-connect";
import { runContract } from ${JSON.stringify(join(ROOT, "tests", "js", "store-contract.mjs"))};
const absent = (v) => v === null || v === undefined;
let manager;
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    try {
      if (url.pathname === "/contract") {
        const names = JSON.parse(url.searchParams.get("names"));
        return Response.json(await runContract((ns) => workersKvStore(env.KV, { prefix: ns + ":" }), (n) => names.includes(n)));
      }
      if (url.pathname === "/extra") {
        const ns = url.searchParams.get("ns");
        const a = workersKvStore(env.KV, { prefix: ns + "-a:" });
        const b = workersKvStore(env.KV, { prefix: ns + "-b:" });
        await a.set("k", "in-a", 400);
        await a.set("long", "x", 150_000);
        const bBefore = await b.get("k");
        await b.set("k", "in-b", 60_000);
        const { keys } = await env.KV.list({ prefix: ns + "-" });
        const raw = JSON.parse(await env.KV.get(ns + "-a:k"));
        const expIn = raw.exp - Date.now();
        while (Date.now() <= raw.exp) await new Promise((r) => setTimeout(r, Math.max(1, raw.exp + 1 - Date.now())));
        await env.KV.put(ns + "-a:garbage", "not json", { expirationTtl: 60 });
        await env.KV.put(ns + "-a:shape", JSON.stringify({ v: 1, exp: Date.now() + 60_000 }), { expirationTtl: 60 });
        return Response.json({
          bBefore: absent(bBefore), a: await a.get("k"), b: await b.get("k"),
          keys: keys.map((k) => [k.name, k.expiration - Math.round(Date.now() / 1000)]),
          raw: { v: raw.v, expIn }, kvStillHolds: (await env.KV.get(ns + "-a:k")) !== null,
          garbage: absent(await a.get("garbage")), shape: absent(await a.get("shape")),
          methods: Object.keys(a).sort(),
        });
      }
      if (url.pathname === "/token") {
        const sources = [];
        manager ??= new TokenManager({ tokenUrl: env.TOKEN_URL, clientId: env.CLIENT_ID, clientSecret: env.CLIENT_SECRET,
          allowInsecureHttp: true, autoRefresh: false, store: workersKvStore(env.KV),
          onEvent: (e) => { if (e.type === "token_acquired" || e.type === "store_failed") sources.push(e.source ?? e.type + ":" + e.step); } });
        const t = await manager.getToken();
        await manager.close(); // the write to KV has settled
        const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(t.accessToken)));
        const { keys } = await env.KV.list({ prefix: "qbank-connect:v1:" });
        const stored = keys.length === 1 ? await env.KV.get(keys[0].name) : "";
        return Response.json({ sources, tokenSource: manager.status.tokenSource, digest: [...digest.slice(0, 8)].join("."),
          entries: keys.length, clear: !stored.includes(t.accessToken) && !stored.includes(env.CLIENT_SECRET) && !stored.includes(env.CLIENT_ID) });
      }
      return new Response("ready");
    } catch (e) {
      return Response.json({ failed: String((e && e.stack) || e) }, { status: 500 });
    }
  },
};
`;

/** Bundles WORKER from the installed package and serves it as the Workers `names`, all bound to one KV namespace. */
async function startWorkers(names, bindings) {
  ensureConsumer();
  const dir = join(CONSUMER, "workers", "workers-kv");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "src.js"), WORKER);
  const esbuild = await import("esbuild");
  await esbuild.build({ ...WORKER_BUILD, external: [...WORKER_BUILD.external, "node:*"], entryPoints: [join(dir, "src.js")], outfile: join(dir, "worker.js") });
  const { modules } = wasmAsModules(dir, (base) => join(CONSUMER, "node_modules", "qbank-connect", base));
  const wasm = modules.slice(1).map((m) => /name = "([^"]+)"/.exec(m)[1]);
  const mf = new Miniflare({
    workers: names.map((name) => ({
      name,
      modulesRoot: dir,
      modules: [{ type: "ESModule", path: join(dir, "worker.js") }, ...wasm.map((w) => ({ type: "CompiledWasm", path: join(dir, w) }))],
      compatibilityDate: "2025-01-01",
      compatibilityFlags: ["nodejs_compat"],
      kvNamespaces: { KV: "qbank-tokens" },
      kvPersist: false,
      bindings,
    })),
  });
  cleanups.push(() => mf.dispose());
  await mf.ready;
  const call = async (name, path) => {
    const res = await (await mf.getWorker(name)).fetch(`http://worker${path}`, { signal: AbortSignal.timeout(30_000) });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    return JSON.parse(text);
  };
  return { call };
}

test("workersKvStore on a real KV namespace in workerd: the contract's get/set/expiry cases, the prefix, the expirationTtl, garbage", { timeout: 120_000 }, async () => {
  assert.equal(APPLICABLE.length, 4, `the applicable cases (${APPLICABLE})`);
  const w = await startWorkers(["a"], {});
  const results = await w.call("a", `/contract?names=${encodeURIComponent(JSON.stringify(APPLICABLE))}`);
  assert.deepEqual(results.map((r) => r.name), APPLICABLE);
  for (const r of results) assert.ok(r.ok, `${r.name}: ${r.error}`);

  const x = await w.call("a", `/extra?ns=x${Date.now()}`);
  assert.equal(x.bBefore, true, "another prefix does not see the key");
  assert.equal(x.a, null, "in-a was set for 400 ms: absent once past its expiry");
  assert.equal(x.kvStillHolds, true, "while KV still holds it (its expirationTtl is 60 s)");
  assert.equal(x.b, "in-b");
  assert.deepEqual(x.methods, ["get", "set"], "no lease, no compare-and-delete");
  // expirationTtl: max(60, ceil(ttl s)): 400 ms → 60 s; 150 000 ms → 150 s; 60 000 ms → 60 s.
  const ttl = Object.fromEntries(x.keys.map(([k, s]) => [k.replace(/^x\d+-/, ""), s]));
  assert.deepEqual(Object.keys(ttl).sort(), ["a:k", "a:long", "b:k"]);
  assert.ok(Math.abs(ttl["a:k"] - 60) <= 2, `a:k expires in ${ttl["a:k"]} s`);
  assert.ok(Math.abs(ttl["a:long"] - 150) <= 2, `a:long expires in ${ttl["a:long"]} s`);
  assert.ok(Math.abs(ttl["b:k"] - 60) <= 2, `b:k expires in ${ttl["b:k"]} s`);
  assert.equal(x.raw.v, "in-a", "the value is kept with its own expiry");
  assert.ok(x.raw.expIn <= 400, `exp is the real expiry (${x.raw.expIn} ms from now)`);
  assert.equal(x.garbage, true, "a value that is not JSON reads as absent");
  assert.equal(x.shape, true, "a JSON value not of the { v, exp } shape reads as absent");
});

test("two Worker isolates bound to one KV namespace share one token through workersKvStore: 1 token request", { timeout: 120_000 }, async () => {
  const sb = await startSandbox();
  cleanups.push(() => sb.close());
  const w = await startWorkers(["one", "two"], { TOKEN_URL: sb.tokenUrl, CLIENT_ID: CLIENT.clientId, CLIENT_SECRET: CLIENT.clientSecret });
  const first = await w.call("one", "/token");
  const second = await w.call("two", "/token");
  assert.deepEqual(first.sources, ["endpoint"], JSON.stringify(first));
  assert.deepEqual(second.sources, ["store"], JSON.stringify(second));
  assert.equal(second.tokenSource, "store");
  assert.equal(first.digest, second.digest, "the same token");
  assert.equal(second.entries, 1, "one entry in KV");
  assert.equal(second.clear, true, "neither the token, the secret nor the client id in the clear in KV");
  assert.equal(sb.control.counters().tokenRequests, 1, "token requests");
});
