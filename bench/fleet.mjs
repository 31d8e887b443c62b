// Phase 8, many instances (bench/run.mjs --phases 8): Node processes of each contender sharing one
// credential set, ours with a shared store (contenders/oursstore.mjs: redisStore on a
// redis-server this phase starts and stops, tests/servers/redis.mjs). See bench/README.md.
//
//   a. token requests for N = 1, 4, 8 instances, each making `calls` concurrent cold getBalance
//      calls at the same moment (the token endpoint answers after 200 ms): ours with the store
//      against ours without it and the peers, which share nothing (N instances, N requests);
//   b. the first call of a new instance with a warm store (another instance fetched the token)
//      against a cold one, each in a fresh process, the token endpoint answering after 200 ms;
//   c. a cached getToken() with a store configured against without (phase 5's measure,
//      interleaved rounds in fresh processes): the store is not on that path.
import { startRedis } from "../tests/servers/redis.mjs";

export const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length === 0 ? null : s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
export const spread = (a) => ({ median: median(a), min: Math.min(...a), max: Math.max(...a), samples: a });

export const FLEET_STORE = "oursstore";

/**
 * Runs the phase. `ctx` holds run.mjs's helpers: startAgent(runtime, contender), newClient(agent,
 * id), request(url), control(query), stats(id), newClientId(runtime, contender, what),
 * tokenCost(runtime, contender), log, and `contenders` (the run's list) and `quick`.
 */
export async function fleetPhase(ctx) {
  const { startAgent, newClient, request, control, stats, newClientId, tokenCost, log, contenders, quick } = ctx;
  const cfg = {
    instances: [1, 4, 8],
    calls: quick ? 100 : 250,
    tokenDelayMs: 200,
    firstCallSamples: quick ? 3 : 9,
    costRounds: quick ? 2 : 5,
  };
  const redis = await startRedis();
  process.env.QBANK_BENCH_REDIS_URL = redis.url; // for the agents of oursstore (inherited)
  const out = { config: cfg, tokenRequests: {}, firstCall: {}, tokenCost: {} };
  try {
    await control(`lifetime=3600&tokenDelay=${cfg.tokenDelayMs}`);

    // a. token requests for N instances
    const max = Math.max(...cfg.instances);
    const list = [FLEET_STORE, ...contenders];
    log(`   a. token requests: N = ${cfg.instances.join(", ")} Node processes x ${cfg.calls} concurrent cold getBalance calls`);
    for (const c of list) {
      const agents = await Promise.all(Array.from({ length: max }, () => startAgent("node", c)));
      const rows = {};
      try {
        for (const n of cfg.instances) {
          const id = newClientId("node", c, `fleet${n}`);
          const used = agents.slice(0, n);
          await Promise.all(used.map((a) => newClient(a, id)));
          const t0 = performance.now();
          const runs = await Promise.all(used.map((a) => request(`${a.url}/stampede?n=${cfg.calls}`)));
          const ms = performance.now() - t0;
          const s = await stats(id);
          rows[n] = { tokenRequests: s.tokenRequests, failures: runs.reduce((k, r) => k + r.failures, 0), error: runs.find((r) => r.error)?.error, ms };
        }
      } finally {
        await Promise.all(agents.map((a) => a.stop()));
      }
      out.tokenRequests[c] = rows;
      log(`   ${c.padEnd(11)} ${cfg.instances.map((n) => `N=${n}: ${rows[n].tokenRequests} tok${rows[n].failures ? ` (${rows[n].failures} FAILED)` : ""}`).join("   ")}`);
    }

    // b. the first call of a new instance: warm store against cold (and ours without a store)
    log(`   b. first call of a new instance (token endpoint ${cfg.tokenDelayMs} ms), ${cfg.firstCallSamples} samples, each in a fresh process`);
    // Each call in a fresh process: returns its time and the running agent, which the caller
    // stops. The cold instance keeps running until the warm one has called (a new instance
    // joining a running fleet): its store write is fire-and-forget, and a process stopped right
    // after its first call may not have written yet (the next one would then wait for its lease
    // to run out, up to leaseTtlMs).
    const firstCall = async (contender, id) => {
      const a = await startAgent("node", contender);
      try {
        await newClient(a, id);
        const t0 = performance.now();
        const r = await request(`${a.url}/call`);
        const ms = performance.now() - t0;
        if (!r.ok) throw new Error(`fleet phase: ${contender}'s first call failed: ${r.error}`);
        return { ms, agent: a };
      } catch (e) {
        await a.stop();
        throw e;
      }
    };
    const cold = [];
    const warm = [];
    const none = [];
    for (let i = 0; i < cfg.firstCallSamples; i++) {
      const id = newClientId("node", FLEET_STORE, `first${i}`);
      const c = await firstCall(FLEET_STORE, id); // the store holds nothing for this client yet
      try {
        const w = await firstCall(FLEET_STORE, id); // the one before wrote its token there
        await w.agent.stop();
        warm.push(w.ms);
      } finally {
        await c.agent.stop();
      }
      cold.push(c.ms);
      const n = await firstCall("ours", newClientId("node", "ours", `first${i}`));
      await n.agent.stop();
      none.push(n.ms);
    }
    out.firstCall = { coldStore: spread(cold), warmStore: spread(warm), noStore: spread(none) };
    log(`   cold store ${median(cold).toFixed(1)} ms, warm store ${median(warm).toFixed(1)} ms, no store ${median(none).toFixed(1)} ms (medians)`);

    // c. a cached getToken() with a store against without
    await control("tokenDelay=0");
    log(`   c. cached getToken(), ${cfg.costRounds} interleaved rounds, fresh processes`);
    const rounds = [];
    for (let r = 0; r < cfg.costRounds; r++) {
      const order = r % 2 ? [FLEET_STORE, "ours"] : ["ours", FLEET_STORE];
      const round = {};
      for (const c of order) round[c] = await tokenCost("node", c);
      rounds.push(round);
      log(`   round ${r + 1}: without ${round.ours.callNs.toFixed(0)} ns (awaited ${round.ours.awaitNs.toFixed(0)}), with a store ${round[FLEET_STORE].callNs.toFixed(0)} ns (awaited ${round[FLEET_STORE].awaitNs.toFixed(0)})`);
    }
    const pick = (c, k) => rounds.map((x) => x[c][k]);
    out.tokenCost = {
      without: { callNs: spread(pick("ours", "callNs")), awaitNs: spread(pick("ours", "awaitNs")) },
      withStore: { callNs: spread(pick(FLEET_STORE, "callNs")), awaitNs: spread(pick(FLEET_STORE, "awaitNs")) },
      ratio: {
        callNs: median(rounds.map((x) => x[FLEET_STORE].callNs / x.ours.callNs)),
        awaitNs: median(rounds.map((x) => x[FLEET_STORE].awaitNs / x.ours.awaitNs)),
      },
      rounds,
    };
  } finally {
    await control("tokenDelay=0&lifetime=3600");
    delete process.env.QBANK_BENCH_REDIS_URL;
    await redis.stop();
  }
  return out;
}
