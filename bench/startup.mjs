// Phase 7, one sample (run in a fresh process each time): the time to import a contender, which
// for ours includes compiling and instantiating the wasm, then to construct its client. No
// network call is made.   node|deno bench/startup.mjs CONTENDER
const name = (globalThis.Deno ? Deno.args : process.argv.slice(2))[0];
const t0 = performance.now();
const contender = await import(`./contenders/${name}.mjs`);
const t1 = performance.now();
const client = contender.create({
  tokenUrl: "http://127.0.0.1:9/token",
  apiBaseUrl: "http://127.0.0.1:9",
  clientId: "startup",
  clientSecret: "bench-secret",
  scope: "balances.read",
});
const t2 = performance.now();
await client.close();
console.log(JSON.stringify({ importMs: t1 - t0, createMs: t2 - t1 }));
