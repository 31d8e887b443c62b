// Phase 9, the Durable Object token coordinator in workerd (bench/run.mjs --phases 9): ours with
// `store: durableObjectStore(env.QBANK_TOKENS)` (contenders/ourscoord.mjs) against ours without a
// store, in real workerd processes whose service `coord` holds the TokenCoordinator namespace
// (bench/workerd.mjs, coordinator: true). See bench/README.md.
//
//   a. the first request of a new isolate (the token endpoint answering after 200 ms): one
//      workerd process with three Worker services per sample, each its own isolate that has
//      served nothing yet, one credential set per sample: `cold` (bound to the coordinator, whose
//      object has no token yet: it makes the token request), then `warm` (the same credential
//      set: the object already holds the token), and `none` (no store: its own token request);
//   b. throughput with the coordinator configured against without: phase 4's workerd loop, in
//      interleaved rounds in fresh workerd processes. Both sides run the same bundle in the same
//      config (the coord service present), and differ only in the Worker's binding: bound, its
//      client has the store; unbound, none. After the warm-up the token is cached in the isolate
//      and the object is never asked, so the two must be within noise.
import { loadavg } from "node:os";
import { median, spread } from "./fleet.mjs";

export const COORDINATED = "ourscoord";

/**
 * Runs the phase. `ctx` holds run.mjs's helpers: startWorker(contender, options) (bench/workerd.mjs,
 * its processes tracked), newClient(agent, id), request(url), control(query), stats(id),
 * newClientId(runtime, contender, what), throughputOnce(runtime, contender, start), log, `rounds` (phase 4's) and `quick`.
 */
export async function coordinatorPhase(ctx) {
  const { startWorker, newClient, request, control, stats, newClientId, throughputOnce, log, rounds, quick } = ctx;
  const cfg = {
    tokenDelayMs: 200,
    firstCallSamples: quick ? 3 : 9,
    throughputRounds: Math.max(2, rounds), // phase 4's (--rounds)
  };
  const out = { config: cfg, loadAverage: { start: loadavg() }, firstCall: {}, throughput: {} };
  try {
    // a. the first request of a new isolate
    await control(`lifetime=3600&tokenDelay=${cfg.tokenDelayMs}`);
    const kinds = [["cold", true], ["warm", true], ["none", false]];
    const services = [];
    for (let i = 0; i < cfg.firstCallSamples; i++) for (const [k, bound] of kinds) services.push({ name: `${k}${i}`, coordinator: bound });
    log(`   a. first request of a new isolate (token endpoint ${cfg.tokenDelayMs} ms): ${cfg.firstCallSamples} samples, ${services.length} Worker services in one workerd`);
    const w = await startWorker(COORDINATED, { coordinator: true, services });
    const samples = { cold: [], warm: [], none: [] };
    const tokenRequests = { coordinated: [], none: [] };
    try {
      // One getBalance in a service whose isolate has served nothing yet, after /new made its client.
      const first = async (service, id) => {
        const a = { url: w.urls[service] };
        await newClient(a, id);
        const t0 = performance.now();
        const r = await request(`${a.url}/call`);
        const ms = performance.now() - t0;
        if (!r.ok) throw new Error(`coordinator phase: ${service}'s first call failed: ${r.error}`);
        return ms;
      };
      for (let i = 0; i < cfg.firstCallSamples; i++) {
        const coordinated = async () => {
          const id = newClientId("workerd", COORDINATED, `first${i}`);
          samples.cold.push(await first(`cold${i}`, id)); // the object fetches the token
          samples.warm.push(await first(`warm${i}`, id)); // the object holds it already
          tokenRequests.coordinated.push((await stats(id)).tokenRequests);
        };
        const alone = async () => {
          const id = newClientId("workerd", "ours", `first${i}`);
          samples.none.push(await first(`none${i}`, id));
          tokenRequests.none.push((await stats(id)).tokenRequests);
        };
        // Alternated, so that neither side always runs first.
        for (const step of i % 2 ? [alone, coordinated] : [coordinated, alone]) await step();
      }
    } finally {
      await w.stop();
    }
    out.firstCall = { cold: spread(samples.cold), warm: spread(samples.warm), none: spread(samples.none), tokenRequests };
    const f = (k) => `${median(samples[k]).toFixed(1)} ms (${Math.min(...samples[k]).toFixed(1)}–${Math.max(...samples[k]).toFixed(1)})`;
    log(`   coordinator warm ${f("warm")}, coordinator cold ${f("cold")}, no store ${f("none")}; token requests per credential set: coordinated ${tokenRequests.coordinated.join(",")}, no store ${tokenRequests.none.join(",")}`);

    // b. throughput with the coordinator configured against without
    await control("tokenDelay=0");
    log(`   b. throughput: phase 4's workerd loop, ${cfg.throughputRounds} interleaved rounds, fresh workerd processes`);
    const sides = {
      ours: () => startWorker(COORDINATED, { coordinator: true, services: [{ name: "main", coordinator: false }] }),
      [COORDINATED]: () => startWorker(COORDINATED, { coordinator: true, services: [{ name: "main", coordinator: true }] }),
    };
    const rounds = [];
    for (let r = 0; r < cfg.throughputRounds; r++) {
      const round = {};
      for (const c of r % 2 ? [COORDINATED, "ours"] : ["ours", COORDINATED]) {
        round[c] = await throughputOnce("workerd", COORDINATED, sides[c]);
        if (round[c].failures) throw new Error(`coordinator phase: ${c}: ${round[c].failures} calls failed, e.g. ${round[c].error}`);
      }
      rounds.push(round);
      log(`   round ${r + 1}: without ${round.ours.callsPerSec.toFixed(0)} calls/s, with the coordinator ${round[COORDINATED].callsPerSec.toFixed(0)} calls/s`);
    }
    const pick = (c, k) => rounds.map((x) => x[c][k]);
    out.throughput = {
      without: { callsPerSec: spread(pick("ours", "callsPerSec")), p50: median(pick("ours", "p50")), p99: median(pick("ours", "p99")) },
      withCoordinator: { callsPerSec: spread(pick(COORDINATED, "callsPerSec")), p50: median(pick(COORDINATED, "p50")), p99: median(pick(COORDINATED, "p99")) },
      ratio: spread(rounds.map((x) => x[COORDINATED].callsPerSec / x.ours.callsPerSec)),
      rounds,
    };
  } finally {
    await control("tokenDelay=0&lifetime=3600");
    out.loadAverage.end = loadavg();
  }
  return out;
}

/**
 * Throughput with the coordinator is "within noise" of without when its median lies inside the
 * range the rounds without it spanned, widened by 10 % either way (as phase 8's cached getToken()).
 */
export function withinNoise(t) {
  return t.withCoordinator.callsPerSec.median >= t.without.callsPerSec.min / 1.1 && t.withCoordinator.callsPerSec.median <= t.without.callsPerSec.max * 1.1;
}
