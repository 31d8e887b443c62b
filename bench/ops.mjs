// The workload, runtime-neutral: the same code runs inside the Node and Deno agents and inside
// the workerd Worker. The driver (bench/run.mjs) sends one HTTP request per operation:
//   GET /new?server=URL&client=ID      a fresh client (the old one is closed)
//   GET /call                          one getBalance (for HTTP-driven load in workerd)
//   GET /stampede?n=1000               n concurrent getBalance calls: { failures, error }
//   GET /loop?n=20000&c=64[&raw=1]     n calls, c at a time: { ms, p50, p99, failures[, latencies] }
//   GET /tokencost?n=N                 N getToken() calls on the warm client: { callNs, awaitNs }
//   GET /ping                          nothing (the driver's own overhead)
export const ACCOUNT_ID = "acct-bench-0001";
export const CLIENT_SECRET = "bench-secret";
export const SCOPE = "balances.read";

const now = typeof performance !== "undefined" ? () => performance.now() : () => Date.now();

function describe(e) {
  return String((e && (e.code ? `${e.code}: ${e.message}` : e.message)) ?? e).slice(0, 200);
}

export function makeHandler(contender) {
  let client;
  let sink = 0;

  const ops = {
    ping: async () => ({}),
    new: async (q) => {
      await client?.close();
      const server = q.get("server");
      client = contender.create({
        tokenUrl: `${server}/token`,
        apiBaseUrl: server,
        clientId: q.get("client"),
        clientSecret: CLIENT_SECRET,
        scope: SCOPE,
      });
      return {};
    },
    call: async (_q, ctx) => {
      try {
        const b = await client.getBalance(ACCOUNT_ID, ctx);
        if (!b || b.account_id !== ACCOUNT_ID && b.accountId !== ACCOUNT_ID) return { ok: false, error: "wrong balance" };
        return { ok: true };
      } catch (e) {
        return { ok: false, error: describe(e) };
      }
    },
    stampede: async (q, ctx) => {
      const n = Number(q.get("n"));
      const calls = [];
      for (let i = 0; i < n; i++) calls.push(client.getBalance(ACCOUNT_ID, ctx));
      const settled = await Promise.allSettled(calls);
      let failures = 0;
      let error;
      for (const s of settled) {
        if (s.status === "rejected") {
          failures++;
          error ??= describe(s.reason);
        }
      }
      return { failures, error };
    },
    loop: async (q, ctx) => {
      const n = Number(q.get("n"));
      const c = Number(q.get("c"));
      const lat = new Float64Array(n);
      let next = 0;
      let failures = 0;
      let error;
      const worker = async () => {
        while (next < n) {
          const i = next++;
          const t0 = now();
          try {
            await client.getBalance(ACCOUNT_ID, ctx);
          } catch (e) {
            failures++;
            error ??= describe(e);
          }
          lat[i] = now() - t0;
        }
      };
      const t0 = now();
      const workers = [];
      for (let i = 0; i < c; i++) workers.push(worker());
      await Promise.all(workers);
      const ms = now() - t0;
      lat.sort();
      const out = { ms, p50: lat[Math.floor(n * 0.5)], p99: lat[Math.floor(n * 0.99)], failures, error };
      if (q.has("raw")) out.latencies = Array.from(lat);
      return out;
    },
    tokencost: async (q) => {
      const n = Number(q.get("n"));
      const reps = Number(q.get("reps") ?? 5);
      await client.getToken(); // warm: a cached token
      const call = [];
      const awaited = [];
      for (let r = 0; r < reps; r++) {
        // The cost of the call itself (what a caller pays before it awaits)...
        let p;
        let t0 = now();
        for (let i = 0; i < n; i++) p = client.getToken();
        await p;
        call.push(((now() - t0) * 1e6) / n);
        // ...and of the call awaited, one at a time.
        t0 = now();
        for (let i = 0; i < n; i++) sink ^= (await client.getToken()) ? 1 : 0;
        awaited.push(((now() - t0) * 1e6) / n);
      }
      // Best of the repetitions (the usual estimate of the intrinsic cost on a shared machine)
      // and their median.
      const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
      return { callNs: Math.min(...call), awaitNs: Math.min(...awaited), callNsMedian: median(call), awaitNsMedian: median(awaited), sink };
    },
  };

  return async function handle(request, ctx) {
    const url = new URL(request.url);
    const op = ops[url.pathname.slice(1)];
    if (!op) return new Response("no such op", { status: 404 });
    try {
      return Response.json(await op(url.searchParams, ctx));
    } catch (e) {
      return Response.json({ fatal: describe(e) }, { status: 500 });
    }
  };
}
