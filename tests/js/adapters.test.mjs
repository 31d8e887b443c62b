// The token stores (issue 18: memoryStore, redisStore, denoKvStore; issue 19's workersKvStore runs
// on Workers KV in workers-kv.test.mjs, its bad arguments and types are here) against the TokenStore
// contract (store-contract.mjs) on the real engines: memoryStore in Node; redisStore with
// node-redis v5, node-redis v4 and ioredis on a real redis-server (tests/servers/redis.mjs), and
// in Bun with node-redis v5 and ioredis; denoKvStore in Deno (`deno run --unstable-kv`,
// store-child.mjs) on a KV file. Then the lease across processes (3 Deno processes on one KV
// file; 3 Node processes, one per client library, and a Bun one on one redis), Deno KV's expiry inside the value and its "database is locked" retry, redis's
// keys and TTLs, bad arguments, and index.d.ts's types against the real clients' own.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createClient } from "redis";
import { createClient as createClient4 } from "redis4";
import Redis from "ioredis";
import { BIN, ROOT, run } from "./harness.mjs";
import { PKG_URL } from "./token-support.mjs";
import { startRedis } from "../servers/redis.mjs";
import { CONTRACT, ROUNDS, CALLS } from "./store-contract.mjs";

const { memoryStore, redisStore, denoKvStore, workersKvStore, QBankError } = await import(PKG_URL);

const CHILD = join(ROOT, "tests", "js", "store-child.mjs");
const TIMEOUT = { timeout: 120_000 };
let unique = 0;
const fresh = (what) => `${what}-${process.pid}-${Date.now()}-${unique++}`;

let redis;
let kvDir;
before(async () => {
  redis = await startRedis();
  kvDir = mkdtempSync(join(tmpdir(), "qbank-kv-"));
});
after(async () => {
  await redis?.stop();
  if (kvDir) rmSync(kvDir, { recursive: true, force: true });
});

/** The three redis client libraries, each `connect(url)` → a connected client, `close(client)`. */
const CLIENTS = {
  redis5: { connect: async (url) => createClient({ url }).connect(), close: (c) => c.quit() },
  redis4: {
    connect: async (url) => {
      const c = createClient4({ url });
      await c.connect();
      return c;
    },
    close: (c) => c.quit(),
  },
  ioredis: {
    connect: async (url) => {
      const c = new Redis(url, { lazyConnect: true });
      await c.connect();
      return c;
    },
    close: (c) => c.quit(),
  },
};

/** How each runtime runs store-child.mjs with `args`: [command, arguments]. */
const RUNTIME = {
  node: (args) => [process.execPath, args],
  bun: (args) => [join(BIN, "bun"), args],
  deno: (args) => [join(BIN, "deno"), ["run", "--unstable-kv", "--no-lock", `--allow-read=${ROOT},${kvDir}`, `--allow-write=${kvDir}`, ...args]],
};

/**
 * A process of `runtime` running store-child.mjs: its stdout's JSON lines as they come (`lines`),
 * `until(n)` resolving once n lines have come (rejecting if it exits first), `exited` resolving
 * its exit code.
 */
function child(runtime, engine, target, mode, ...rest) {
  const [command, args] = RUNTIME[runtime]([CHILD, engine, target, mode, ...rest]);
  const proc = spawn(command, args, { cwd: ROOT, env: { ...process.env, NO_COLOR: "1" } });
  const lines = [];
  let stderr = "";
  proc.stderr.on("data", (d) => (stderr += d));
  createInterface({ input: proc.stdout }).on("line", (l) => {
    try {
      lines.push(JSON.parse(l));
    } catch {
      stderr += `(stdout) ${l}\n`;
    }
  });
  const exited = new Promise((resolve) => proc.once("close", (code) => resolve(code)));
  let gone = false;
  exited.then(() => (gone = true));
  return {
    proc,
    lines,
    exited,
    stderr: () => stderr,
    async until(n) {
      while (lines.length < n) {
        if (gone) throw new Error(`${engine} ${mode} exited after ${lines.length} of ${n} lines:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

/** The contract, case by case, against `make(ns)` (a fresh namespace for each case). */
function contractSuite(make) {
  for (const [name, run] of CONTRACT) {
    test(name, () => run((sub) => make(`${fresh("case")}-${sub}`)));
  }
}

describe("memoryStore: the contract", () => {
  const stores = new Map();
  contractSuite((ns) => {
    if (!stores.has(ns)) stores.set(ns, memoryStore());
    return stores.get(ns);
  });
});

for (const [library, { connect, close }] of Object.entries(CLIENTS)) {
  describe(`redisStore with ${library}: the contract, on a real redis-server`, () => {
    let client;
    before(async () => (client = await connect(redis.url)));
    after(() => close(client));
    contractSuite((ns) => redisStore(client, { prefix: `${ns}:` }));

    test("keys are prefix + key, stored with SET PX (the TTL is redis's own)", async () => {
      const prefix = `${fresh("raw")}:`;
      const store = redisStore(client, { prefix });
      await store.set("k", "v", 5000);
      const raw = await connect(redis.url);
      try {
        assert.equal(await raw.get(`${prefix}k`), "v");
        const pttl = Number(await (library === "ioredis" ? raw.pttl(`${prefix}k`) : raw.pTTL(`${prefix}k`)));
        assert.ok(pttl > 0 && pttl <= 5000, `PTTL ${pttl}`);
        assert.equal(await store.setIfAbsent("lease", "owner", 3000), true);
        const leaseTtl = Number(await (library === "ioredis" ? raw.pttl(`${prefix}lease`) : raw.pTTL(`${prefix}lease`)));
        assert.ok(leaseTtl > 0 && leaseTtl <= 3000, `lease PTTL ${leaseTtl}`);
        assert.equal(await raw.get("k"), null, "nothing outside the prefix");
      } finally {
        await close(raw);
      }
    });
  });
}

/** The contract run by store-child.mjs in `runtime` (one process, every case), case by case. */
function contractInChild(runtime, engine, target) {
  let results;
  before(async () => {
    const proc = child(runtime, engine, target(), "contract");
    const code = await proc.exited;
    assert.equal(code, 0, `${runtime} exited ${code}:\n${proc.stderr()}`);
    results = proc.lines;
  }, TIMEOUT);

  test(`${runtime} ran every case of the contract`, () => {
    assert.deepEqual(
      results.map((r) => r.name),
      CONTRACT.map(([name]) => name),
    );
  });
  for (const [name] of CONTRACT) {
    test(name, () => {
      const r = results.find((x) => x.name === name);
      assert.ok(r, `${runtime} reported this case`);
      assert.ok(r.ok, r.error);
    });
  }
}

for (const library of ["redis5", "ioredis"]) {
  describe(`redisStore with ${library} in Bun: the contract, on a real redis-server`, () => {
    contractInChild("bun", library, () => redis.url);
  });
}

describe("denoKvStore: the contract, in Deno on a KV file", () => {
  contractInChild("deno", "deno-kv", () => join(kvDir, "contract.sqlite"));

  test("a value past its expiry reads as absent (and can be leased over) although KV still holds it", TIMEOUT, async () => {
    const deno = child("deno", "deno-kv", join(kvDir, "stale.sqlite"), "stale");
    assert.equal(await deno.exited, 0, deno.stderr());
    const [r] = deno.lines;
    assert.ok(r.rawStillThere, "KV still holds the expired entry (no expireIn)");
    assert.equal(r.readExpired, null, "the adapter reads it as absent");
    assert.equal(r.deleteExpired, false, "deleteIfEquals does not count it as held");
    assert.equal(r.leaseOverExpired, true, "setIfAbsent stores over it");
    assert.equal(r.readAfterLease, "new");
    assert.equal(r.readLive, "live", "an entry whose exp is ahead reads as present");
    assert.equal(r.readForeign, null, "an entry that is not { v, exp } reads as absent");
    assert.equal(r.leaseOverForeign, true, "and setIfAbsent stores over it");
    assert.deepEqual(r.storedShape, { keys: ["exp", "v"], expAhead: true }, "set stores { v, exp } with exp = now + ttl");
  });
});

/** Starts `children`, lets them go at once, and returns what each won per key. */
async function race(children) {
  try {
    await Promise.all(children.map((c) => c.until(1)));
    for (const c of children) c.proc.stdin.end("go\n");
    const codes = await Promise.all(children.map((c) => c.exited));
    assert.deepEqual(codes, children.map(() => 0), children.map((c) => c.stderr()).join("\n"));
    return children.map((c) => c.lines[1].won);
  } finally {
    for (const c of children) if (c.proc.exitCode === null) c.proc.kill("SIGKILL");
  }
}

/** Asserts that on every key exactly one of all the processes' calls won. */
function exactlyOneWinnerPerKey(won) {
  assert.equal(won.length >= 2 && won[0].length, ROUNDS);
  for (let key = 0; key < ROUNDS; key++) {
    const total = won.reduce((sum, perKey) => sum + perKey[key], 0);
    assert.equal(total, 1, `key ${key}: ${won.map((w) => w[key])} won (${CALLS} calls in each process)`);
  }
}

test("denoKvStore: 3 Deno processes on one KV file, 20 concurrent setIfAbsent each per key: exactly one wins each key", TIMEOUT, async () => {
  const file = join(kvDir, "contend.sqlite");
  const ns = fresh("contend");
  const won = await race([0, 1, 2].map((i) => child("deno", "deno-kv", file, "contend", ns, `deno${i}`)));
  exactlyOneWinnerPerKey(won);
});

test("redisStore: 3 Node processes (node-redis v5, v4, ioredis) and a Bun one (node-redis v5) on one redis, 20 concurrent setIfAbsent each per key: exactly one wins each key", TIMEOUT, async () => {
  const ns = fresh("contend");
  const processes = [["node", "redis5"], ["node", "redis4"], ["node", "ioredis"], ["bun", "redis5"]];
  const won = await race(processes.map(([runtime, lib]) => child(runtime, lib, redis.url, "contend", ns, `${runtime}-${lib}`)));
  exactlyOneWinnerPerKey(won);
});

describe("bad arguments: a config QBankError saying what was expected", () => {
  const isConfig = (pattern) => (e) => {
    assert.ok(e instanceof QBankError, `a QBankError (${e})`);
    assert.equal(e.code, "config");
    assert.match(e.message, pattern);
    return true;
  };
  const notRedis = /^redisStore\(client\): expected a connected node-redis \(v4 or v5\) or ioredis client/;
  const notKv = /^denoKvStore\(kv\): expected a Deno\.Kv/;
  const kvShape = { get() {}, set() {}, atomic() {} };

  test("redisStore: no client, a URL, an object without eval, a Deno.Kv", () => {
    for (const bad of [undefined, null, "redis://127.0.0.1:6379", 6379, {}, { get() {}, set() {} }, kvShape, memoryStore()]) {
      assert.throws(() => redisStore(bad), isConfig(notRedis), `redisStore(${JSON.stringify(bad)})`);
    }
  });
  test("redisStore: a prefix that is not a string", async () => {
    const client = await CLIENTS.redis5.connect(redis.url);
    try {
      for (const prefix of [1, ["a"], {}]) {
        assert.throws(() => redisStore(client, { prefix }), isConfig(/^redisStore: options\.prefix must be a string/));
      }
    } finally {
      await client.quit();
    }
  });
  test("denoKvStore: no kv, a path, a redis client, a store", async () => {
    const client = await CLIENTS.ioredis.connect(redis.url);
    try {
      for (const bad of [undefined, null, "./kv.sqlite", {}, { get() {}, set() {} }, client, memoryStore()]) {
        assert.throws(() => denoKvStore(bad), isConfig(notKv));
      }
    } finally {
      await client.quit();
    }
  });
  test("denoKvStore: a prefix that is not a Deno.KvKey array", () => {
    for (const prefix of ["app", 1, { 0: "a" }]) {
      assert.throws(() => denoKvStore(kvShape, { prefix }), isConfig(/^denoKvStore: options\.prefix must be a Deno\.KvKey/));
    }
  });
  test("workersKvStore (issue 19; its engine tests: workers-kv.test.mjs): no namespace, a name, a store, a redis-like object", () => {
    for (const bad of [undefined, null, "KV", {}, { get() {} }, { get() {}, set() {} }, kvShape, memoryStore()]) {
      assert.throws(() => workersKvStore(bad), isConfig(/^workersKvStore\(namespace\): expected a Workers KV namespace binding/), `workersKvStore(${JSON.stringify(bad)})`);
    }
    const kv = { get: async () => null, put: async () => {} };
    for (const prefix of [1, ["a"], {}]) {
      assert.throws(() => workersKvStore(kv, { prefix }), isConfig(/^workersKvStore: options\.prefix must be a string/));
    }
  });
});

describe("denoKvStore: \"database is locked\" (another process writing the KV file) is retried briefly", () => {
  // A Deno.Kv whose get fails `failures` times with `error` before it answers: the retry itself,
  // deterministically (the 3-process test above meets the real error only some of the time).
  const flaky = (failures, error) => {
    const kv = {
      calls: 0,
      async get() {
        if (kv.calls++ < failures) throw error;
        return { value: null, versionstamp: null };
      },
      set() {},
      atomic() {},
    };
    return kv;
  };
  const locked = () => new TypeError("database is locked");

  test("a few lock failures: retried until it answers", async () => {
    const kv = flaky(4, locked());
    assert.equal((await denoKvStore(kv).get("k")) ?? null, null);
    assert.equal(kv.calls, 5);
  });
  test("any other failure: thrown at once", async () => {
    const kv = flaky(1, new TypeError("something else"));
    await assert.rejects(denoKvStore(kv).get("k"), /something else/);
    assert.equal(kv.calls, 1);
  });
  test("a lock that stays: thrown after about a second, not retried for ever", { timeout: 10_000 }, async () => {
    const kv = flaky(Infinity, locked());
    const start = Date.now();
    await assert.rejects(denoKvStore(kv).get("k"), /database is locked/);
    const took = Date.now() - start;
    assert.ok(took >= 1000 && took < 5000, `gave up after ${took} ms`);
    assert.ok(kv.calls > 5 && kv.calls < 200, `${kv.calls} tries`);
  });
});

test("index.d.ts types the adapters for the real clients: tsc (node-redis v5, v4, ioredis; workers-types' KVNamespace) and deno check (Deno.Kv)", TIMEOUT, () => {
  const dir = join(ROOT, "target", "adapters-types");
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, "node.ts"),
    `import { createClient } from "redis";
import { createClient as createClient4 } from "redis4";
import { Redis } from "ioredis";
import { memoryStore, redisStore, type TokenStore } from "../../pkg/index.js";
const stores: TokenStore[] = [memoryStore(), redisStore(createClient()), redisStore(createClient4(), { prefix: "app:" }), redisStore(new Redis())];
const lease: Promise<boolean> = memoryStore().setIfAbsent("k", "v", 1000);
void stores, lease;
`,
  );
  writeFileSync(
    join(dir, "deno.ts"),
    `// @ts-types="../../pkg/index.d.ts"
import { denoKvStore, type TokenStore } from "../../pkg/index.js";
const kv = await Deno.openKv();
const store: TokenStore = denoKvStore(kv, { prefix: ["app", 1] });
const deleted: Promise<boolean> = denoKvStore(kv).deleteIfEquals("k", "v");
void store, deleted;
`,
  );
  const tsc = run(join(BIN, "tsc"), ["--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", "--skipLibCheck", join(dir, "node.ts")]);
  assert.equal(tsc.code, 0, `tsc: ${tsc.stdout}${tsc.stderr}`);
  // workersKvStore against Cloudflare's own KVNamespace type (workers-types alone: it and Node's
  // types both declare the fetch globals).
  writeFileSync(
    join(dir, "worker.ts"),
    `import { workersKvStore, type TokenStore } from "../../pkg/index.js";
declare const env: { KV: KVNamespace };
const store: TokenStore = workersKvStore(env.KV, { prefix: "app:" });
const read: Promise<string | null | undefined> = workersKvStore(env.KV).get("k");
void store, read;
`,
  );
  const worker = run(join(BIN, "tsc"), ["--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", "--skipLibCheck", "--types", "@cloudflare/workers-types", join(dir, "worker.ts")]);
  assert.equal(worker.code, 0, `tsc (workers-types): ${worker.stdout}${worker.stderr}`);
  const deno = run(join(BIN, "deno"), ["check", "--unstable-kv", "--no-lock", join(dir, "deno.ts")], { cwd: ROOT, env: { ...process.env, NO_COLOR: "1" } });
  assert.equal(deno.code, 0, `deno check: ${deno.stdout}${deno.stderr}`);
});
