// A process of the store tests (tests/js/adapters.test.mjs), in Deno, Node or Bun:
//
//   deno run --unstable-kv ... store-child.mjs deno-kv <kv-file> <mode> [namespace tag]
//   node|bun store-child.mjs redis5|redis4|ioredis <redis-url> <mode> [namespace tag]
//
// mode "contract": runs store-contract.mjs's cases against the engine, one JSON line per case.
// mode "stale":    (Deno KV) what the store makes of entries past their expiry (see stale()).
// mode "contend":  prints "ready", waits for a line on stdin, runs contend() (ROUNDS × CALLS
//                  concurrent setIfAbsent) and prints one JSON line { won: [per round] }.
// The package is imported from pkg/ (index.js: what Deno and Node ESM load without conditions).
import { CONTRACT, runContract, contend, ROUNDS, CALLS } from "./store-contract.mjs";

const args = typeof Deno !== "undefined" ? Deno.args : process.argv.slice(2);
const [engine, target, mode, namespace = "contend", tag = "child"] = args;
const { denoKvStore, redisStore } = await import("../../pkg/index.js");

async function open() {
  if (engine === "deno-kv") {
    // Opening a KV file that another process is creating can fail with "database is locked".
    let kv;
    for (let tries = 0; !kv; tries++) {
      kv = await Deno.openKv(target).catch((e) => {
        if (tries > 100 || !/database is locked/.test(e?.message)) throw e;
        return new Promise((resolve) => setTimeout(resolve, 10 + 20 * Math.random()));
      });
    }
    return { kv, make: (ns) => denoKvStore(kv, { prefix: ["test", ns] }), close: () => kv.close() };
  }
  let client;
  if (engine === "ioredis") {
    const { default: Redis } = await import("ioredis");
    client = new Redis(target, { lazyConnect: true });
    await client.connect();
  } else {
    const { createClient } = await import(engine === "redis4" ? "redis4" : "redis");
    client = createClient({ url: target });
    await client.connect();
  }
  return { make: (ns) => redisStore(client, { prefix: `test:${ns}:` }), close: () => client.quit() };
}

async function line() {
  if (typeof Deno !== "undefined") {
    const reader = Deno.stdin.readable.getReader();
    await reader.read();
    await reader.cancel();
  } else {
    for await (const _ of process.stdin) break;
  }
}

/**
 * Deno KV's expiry inside the value: entries written straight into KV under the store's prefix
 * (one past its `exp` with no expireIn, so KV keeps it; one ahead; one not `{ v, exp }`), and
 * what the store makes of them; then the shape `set` writes.
 */
async function stale(kv, store, prefix) {
  await kv.set([...prefix, "expired"], { v: "old", exp: Date.now() - 1 });
  await kv.set([...prefix, "live"], { v: "live", exp: Date.now() + 60_000 });
  await kv.set([...prefix, "foreign"], "not an entry of the store");
  const result = {
    readExpired: (await store.get("expired")) ?? null,
    deleteExpired: await store.deleteIfEquals("expired", "old"),
    rawStillThere: (await kv.get([...prefix, "expired"])).value !== null,
    leaseOverExpired: await store.setIfAbsent("expired", "new", 60_000),
    readAfterLease: await store.get("expired"),
    readLive: await store.get("live"),
    readForeign: (await store.get("foreign")) ?? null,
    leaseOverForeign: await store.setIfAbsent("foreign", "mine", 60_000),
  };
  const before = Date.now();
  await store.set("shape", "s", 5000);
  const raw = (await kv.get([...prefix, "shape"])).value;
  result.storedShape = { keys: Object.keys(raw).sort(), expAhead: raw.exp >= before + 5000 && raw.exp <= Date.now() + 5000 };
  return result;
}

const out = (o) => console.log(JSON.stringify(o));
const engineStore = await open();
try {
  if (mode === "contract") {
    for (const result of await runContract(engineStore.make)) out(result);
    if (CONTRACT.length === 0) throw new Error("no cases");
  } else if (mode === "contend") {
    const store = engineStore.make(namespace);
    out({ ready: true });
    await line();
    out({ won: await contend(store, { rounds: ROUNDS, calls: CALLS, tag }) });
  } else if (mode === "stale" && engine === "deno-kv") {
    out(await stale(engineStore.kv, engineStore.make(namespace), ["test", namespace]));
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
} finally {
  await engineStore.close();
}
