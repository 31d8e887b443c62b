// The TokenStore contract (index.d.ts) as test cases that run against any
// store, in Node (tests/js/adapters.test.mjs) and in Deno (through store-child.mjs): each case is
// `[name, async (make) => …]` where `make(ns)` gives a store of the engine under test in the
// namespace `ns` (a prefix: two names never see each other's entries), fresh for each case.
// Time: short TTLs and waiting for a condition or a deadline, never a sleep longer than a TTL.
import assert from "node:assert/strict";

const LONG = 60_000;
const SHORT = 400;
/** contend(): keys per run and setIfAbsent calls on each key per process. */
export const ROUNDS = 20;
export const CALLS = 20;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/** Resolves once Date.now() is past `t` (for the TTL cases: waits about one short TTL). */
const past = async (t) => {
  while (Date.now() <= t) await sleep(Math.max(1, t + 1 - Date.now()));
};
const absent = (v) => v === null || v === undefined;
/** `value` stored under `key` for `ttlMs`; resolves the time `set` had resolved by. */
const setAt = async (store, key, value, ttlMs) => (await store.set(key, value, ttlMs), Date.now());

export const CONTRACT = [
  ["get: a key never set reads as absent", async (make) => {
    const s = make("a");
    assert.ok(absent(await s.get("never-set")));
  }],

  ["set: get reads what set stored; a second set replaces it; other keys stay absent", async (make) => {
    const s = make("a");
    await s.set("k", "first", LONG);
    assert.equal(await s.get("k"), "first");
    await s.set("k", "second", LONG);
    assert.equal(await s.get("k"), "second");
    assert.ok(absent(await s.get("k2")));
  }],

  ["set: a value round-trips exactly (unicode, quotes, newlines, 8 KiB)", async (make) => {
    const s = make("a");
    const odd = 'é€😀 "quoted" \\ \n\t{"v":1}';
    await s.set("odd", odd, LONG);
    assert.equal(await s.get("odd"), odd);
    const big = "x".repeat(8192);
    await s.set("big", big, LONG);
    assert.equal(await s.get("big"), big);
  }],

  ["set: a value is served within its TTL and never after it", async (make) => {
    const s = make("a");
    const t = await setAt(s, "k", "v", SHORT);
    assert.equal(await s.get("k"), "v", "read right after set, well within the TTL");
    await past(t + SHORT);
    assert.ok(absent(await s.get("k")), "read after the TTL: absent");
  }],

  ["setIfAbsent: of 50 concurrent calls on one key exactly one stores, and its value is the one read", async (make) => {
    const s = make("a");
    const won = await Promise.all(Array.from({ length: 50 }, (_, i) => s.setIfAbsent("lease", `owner-${i}`, LONG)));
    assert.ok(won.every((w) => typeof w === "boolean"), "resolves booleans");
    const winners = won.flatMap((w, i) => (w ? [i] : []));
    assert.equal(winners.length, 1, `exactly one winner (${winners})`);
    assert.equal(await s.get("lease"), `owner-${winners[0]}`);
    assert.equal(await s.setIfAbsent("lease", "late", LONG), false, "a later call loses while the lease lives");
    assert.equal(await s.get("lease"), `owner-${winners[0]}`, "and changes nothing");
  }],

  ["setIfAbsent: refused over a live value, stores over an expired one", async (make) => {
    const s = make("a");
    const t = await setAt(s, "k", "old", SHORT);
    assert.equal(await s.setIfAbsent("k", "new", LONG), false);
    assert.equal(await s.get("k"), "old");
    await past(t + SHORT);
    assert.equal(await s.setIfAbsent("k", "new", LONG), true);
    assert.equal(await s.get("k"), "new");
  }],

  ["setIfAbsent: the lease runs out after its TTL and can be taken again", async (make) => {
    const s = make("a");
    assert.equal(await s.setIfAbsent("lease", "one", SHORT), true);
    const t = Date.now();
    assert.equal(await s.setIfAbsent("lease", "two", SHORT), false);
    await past(t + SHORT);
    assert.ok(absent(await s.get("lease")));
    assert.equal(await s.setIfAbsent("lease", "two", LONG), true);
    assert.equal(await s.get("lease"), "two");
  }],

  ["deleteIfEquals: deletes only the exact value it is given", async (make) => {
    const s = make("a");
    assert.equal(await s.deleteIfEquals("k", "v1"), false, "nothing there: nothing deleted");
    await s.set("k", "v1", LONG);
    await s.set("k", "v2", LONG);
    assert.equal(await s.deleteIfEquals("k", "v1"), false, "an older value: not deleted");
    assert.equal(await s.deleteIfEquals("k", "v"), false, "a prefix of the value: not deleted");
    assert.equal(await s.deleteIfEquals("k", "v2 "), false, "a longer value: not deleted");
    assert.equal(await s.get("k"), "v2");
    assert.equal(await s.deleteIfEquals("k", "v2"), true);
    assert.ok(absent(await s.get("k")));
    assert.equal(await s.deleteIfEquals("k", "v2"), false, "already deleted");
    assert.equal(await s.setIfAbsent("k", "v3", LONG), true, "the key is free again");
  }],

  ["deleteIfEquals: of 20 concurrent calls exactly one deletes", async (make) => {
    const s = make("a");
    await s.set("k", "v", LONG);
    const done = await Promise.all(Array.from({ length: 20 }, () => s.deleteIfEquals("k", "v")));
    assert.equal(done.filter((d) => d === true).length, 1, `exactly one deleted (${done})`);
    assert.ok(done.every((d) => typeof d === "boolean"));
  }],

  ["namespaces: two prefixes keep two stores apart", async (make) => {
    const a = make("a");
    const b = make("b");
    await a.set("k", "in-a", LONG);
    assert.ok(absent(await b.get("k")));
    assert.equal(await b.setIfAbsent("k", "in-b", LONG), true);
    assert.equal(await b.deleteIfEquals("k", "in-a"), false);
    assert.equal(await a.deleteIfEquals("k", "in-b"), false);
    assert.equal(await a.get("k"), "in-a");
    assert.equal(await b.get("k"), "in-b");
  }],

  ["ttl: zero, negative, NaN and infinite TTLs are refused (invalid_argument) and store nothing", async (make) => {
    const s = make("a");
    for (const ttl of [0, -5, Number.NaN, Infinity, "100"]) {
      for (const call of [() => s.set("k", "v", ttl), () => s.setIfAbsent("k", "v", ttl)]) {
        await assert.rejects(call(), (e) => e.name === "QBankError" && e.code === "invalid_argument", `ttl ${ttl}`);
      }
    }
    assert.ok(absent(await s.get("k")));
  }],
];

/** Runs each case against `make` (a fresh namespace per case); one `{ name, ok, error? }` each. */
export async function runContract(make, only = () => true) {
  const results = [];
  let n = 0;
  for (const [name, run] of CONTRACT.filter(([name]) => only(name))) {
    const ns = `case${n++}-${Date.now()}`;
    try {
      await run((sub) => make(`${ns}-${sub}`));
      results.push({ name, ok: true });
    } catch (e) {
      results.push({ name, ok: false, error: String(e?.stack ?? e) });
    }
  }
  return results;
}

/**
 * The cross-process half: `rounds` keys (`round-<i>`) with `calls` setIfAbsent on each (a long TTL,
 * each value naming `tag`), all at once so that the processes overlap; resolves how many this
 * process won on each key.
 */
export async function contend(store, { rounds, calls, tag }) {
  const round = async (r) => {
    const results = await Promise.all(Array.from({ length: calls }, (_, i) => store.setIfAbsent(`round-${r}`, `${tag}-${i}`, LONG)));
    return results.filter((x) => x === true).length;
  };
  return Promise.all(Array.from({ length: rounds }, (_, r) => round(r)));
}
