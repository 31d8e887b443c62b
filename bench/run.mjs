// The benchmark: the same workload against every contender, side by side in one run, on Node,
// Deno and workerd. Writes bench/results.md, bench/results.json and bench/chart.svg.
//
//   node bench/run.mjs [--runtimes node,deno,workerd] [--phases 1,2,3,4,5,6,7,8,9]
//                      [--contenders floor,ours,badgateway,openid] [--rounds 5] [--quick]
//                      [--out bench]
//
// --quick: fewer calls, rounds and samples (a smoke run of every phase; figures are rough).
// --contenders also takes any other file in bench/contenders/ by name: a variant written to
// measure one piece (e.g. the floor plus an AbortSignal) next to the floor, in phase 4.
// Needs the built package (make package): ours is pkg/ packed and installed like a user's.
// See bench/README.md for what each phase does and why.
import { spawn, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import http from "node:http";
import { gzipSync } from "node:zlib";
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, statSync } from "node:fs";
import { join, relative, dirname, resolve } from "node:path";
import { cpus } from "node:os";
import { ROOT, BIN, PKG, run, stopChild } from "../tests/js/harness.mjs";
import { startWorker, WORKER_BUILD } from "./workerd.mjs";
import { packageSizes } from "../tests/js/size.mjs";
import { renderMarkdown } from "./report.mjs";
import { renderChart } from "./chart.mjs";
import { fleetPhase } from "./fleet.mjs";
import { coordinatorPhase } from "./coordinator.mjs";

const BENCH = join(ROOT, "bench");
const ALL_CONTENDERS = ["floor", "ours", "badgateway", "openid"];
const ALL_RUNTIMES = ["node", "deno", "workerd"];

// ---- options ----
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i < 0 ? dflt : argv[i + 1];
};
const QUICK = argv.includes("--quick");
const RUNTIMES = opt("runtimes", ALL_RUNTIMES.join(",")).split(",");
const PHASES = new Set(opt("phases", "1,2,3,4,5,6,7,8,9").split(",").map(Number));
const CONTENDERS = opt("contenders", ALL_CONTENDERS.join(",")).split(",");
// Phase 4 on Node also runs the floor written with node:http (contenders/floorhttp.mjs), as a
// reference row: ours uses node:http in Node. --no-reference leaves it out.
const NODE_REFERENCE = CONTENDERS.includes("floor") && !argv.includes("--no-reference") ? ["floorhttp"] : [];
// --out is relative to the repository root unless absolute.
const OUT = resolve(ROOT, opt("out", "bench"));
const CFG = {
  stampede: 1000, // concurrent calls in phases 1-3
  tokenDelayMs: 500, // the token endpoint answers after this in phases 1-3 (real ones take 50-500 ms),
  // long enough that in workerd all the stampede's HTTP requests arrive while it is pending
  shortLifetime: 2, // seconds: the token phase 2 lets expire
  calls: QUICK ? 2000 : 20000, // phase 4
  concurrency: 64,
  warmup: QUICK ? 500 : 3000,
  rounds: Number(opt("rounds", QUICK ? 1 : 7)),
  tokenCostN: QUICK ? 100_000 : 1_000_000, // phase 5
  startupSamples: QUICK ? 5 : 21, // phase 7
};
for (const [list, all, what] of [[RUNTIMES, ALL_RUNTIMES, "runtime"], [CONTENDERS, ALL_CONTENDERS, "contender"]]) {
  for (const x of list) if (!all.includes(x) && !(what === "contender" && existsSync(join(ROOT, "bench", "contenders", `${x}.mjs`)))) throw new Error(`unknown ${what} ${x} (have ${all.join(", ")})`);
}
if (!CONTENDERS.includes("floor") && PHASES.has(4)) throw new Error("phase 4 needs the floor (ratios are to it)");

const WORKERD_SLICES = 8;
const log = (...a) => console.log(...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length === 0 ? null : s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// ---- HTTP from the driver: keep-alive, enough sockets for a 1,000-request stampede ----
const agent = new http.Agent({ keepAlive: true, maxSockets: 1100, maxFreeSockets: 1100 });
function request(url, method = "GET") {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => {
        if (res.statusCode >= 400) reject(new Error(`${method} ${url}: HTTP ${res.statusCode} ${body}`));
        else resolve(body ? JSON.parse(body) : {});
      });
    });
    req.on("error", reject);
    req.end();
  });
}

// ---- the package under test: pkg/ packed with npm pack and unpacked into bench/work/pkg (a
// snapshot, so a rebuild of pkg/ or a test run re-installing target/consumer during the run
// changes nothing), visible to bench/contenders as "qbank-connect" through bench/node_modules ----
const PKG_UNDER_TEST = join(BENCH, "work", "pkg", "package");
function preparePackage() {
  if (!existsSync(join(PKG, "qbank_connect_bg.wasm"))) throw new Error("pkg/ is not built: run `make package` first");
  const dir = join(BENCH, "work", "pkg");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const packed = execFileSync("npm", ["pack", PKG, "--pack-destination", dir, "--json"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  const [{ filename, integrity }] = JSON.parse(packed);
  execFileSync("tar", ["-xzf", join(dir, filename), "-C", dir]);
  const link = join(BENCH, "node_modules", "qbank-connect");
  mkdirSync(dirname(link), { recursive: true });
  rmSync(link, { recursive: true, force: true });
  symlinkSync(relative(dirname(link), PKG_UNDER_TEST), link, "dir");
  const wasm = readFileSync(join(PKG_UNDER_TEST, "qbank_connect_bg.wasm"));
  return { tarball: filename, integrity, wasmSha256: createHash("sha256").update(wasm).digest("hex"), pkgBuiltAt: statSync(join(PKG, "qbank_connect_bg.wasm")).mtime.toISOString() };
}

// ---- processes ----
// Every child this run starts, so that an interrupted run leaves none behind.
const children = new Set();
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    for (const c of children) c.kill("SIGKILL");
    process.exit(130);
  });
}
function track(child) {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

function spawnJsonLine(cmd, args, opts = {}) {
  const child = track(spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...opts }));
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  return new Promise((resolve, reject) => {
    let out = "";
    const onData = (d) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl >= 0) {
        child.stdout.off("data", onData);
        try {
          resolve({ child, info: JSON.parse(out.slice(0, nl)), stderr: () => err });
        } catch (e) {
          reject(new Error(`${cmd}: ${out}${err}`));
        }
      }
    };
    child.stdout.on("data", onData);
    child.on("exit", (code) => reject(new Error(`${cmd} ${args.join(" ")} exited ${code}: ${err}`)));
  });
}

const DENO_ARGS = ["run", "--allow-net=127.0.0.1", "--allow-env", "--node-modules-dir=manual", "--no-lock", "--no-prompt"];

/** Starts one contender on one runtime; returns { url, stop }. */
async function startAgent(runtime, contender) {
  if (runtime === "workerd") return startWorker(contender, track);
  const [cmd, args] =
    runtime === "node" ? [process.execPath, [join(BENCH, "agent.mjs"), contender]] : [join(BIN, "deno"), [...DENO_ARGS, join(BENCH, "agent.mjs"), contender]];
  const { child, info } = await spawnJsonLine(cmd, args, { cwd: BENCH });
  return { url: info.url, stop: () => stopChild(child) };
}

// ---- the server ----
let SERVER;
const control = (q) => request(`${SERVER}/__control?${q}`, "POST");
const stats = (client) => request(`${SERVER}/__stats?client=${encodeURIComponent(client)}`);
let clientSeq = 0;
const newClientId = (runtime, contender, what) => `${runtime}-${contender}-${what}-${process.pid}-${++clientSeq}`;

async function newClient(a, clientId) {
  await request(`${a.url}/new?server=${encodeURIComponent(SERVER)}&client=${encodeURIComponent(clientId)}`);
}

/**
 * n concurrent getBalance calls. In Node and Deno they are made inside the agent. In workerd they
 * are n concurrent requests to the Worker (its isolate shares one client between them, as a
 * Worker does in production), sent over connections opened beforehand.
 */
async function stampede(runtime, a, n) {
  if (runtime !== "workerd") return request(`${a.url}/stampede?n=${n}`);
  await Promise.all(Array.from({ length: n }, () => request(`${a.url}/ping`))); // open n connections
  // The driver's own time to deliver n requests on warm connections (and get n empty answers):
  // well under the token endpoint's delay means the n calls really overlap.
  const t0 = performance.now();
  await Promise.all(Array.from({ length: n }, () => request(`${a.url}/ping`)));
  const deliverMs = performance.now() - t0;
  const answers = await Promise.all(Array.from({ length: n }, () => request(`${a.url}/call`).catch((e) => ({ ok: false, error: e.message }))));
  const bad = answers.filter((x) => !x.ok);
  return { failures: bad.length, error: bad[0]?.error, deliverMs };
}

// ---- phases 1-3 ----
async function stampedePhases(runtime, contender) {
  const a = await startAgent(runtime, contender);
  const out = {};
  try {
    await control(`lifetime=3600&tokenDelay=${CFG.tokenDelayMs}`);
    if (PHASES.has(1)) {
      const id = newClientId(runtime, contender, "cold");
      await newClient(a, id);
      const t0 = Date.now();
      const r = await stampede(runtime, a, CFG.stampede);
      const s = await stats(id);
      out.cold = { tokenRequests: s.tokenRequests, failures: r.failures, error: r.error, ms: Date.now() - t0, deliverMs: r.deliverMs };
    }
    if (PHASES.has(2) || PHASES.has(3)) {
      // A client whose token lives CFG.shortLifetime seconds; the stampede comes right after expiry.
      const id = newClientId(runtime, contender, "expiry");
      await control(`lifetime=${CFG.shortLifetime}`);
      await newClient(a, id);
      const first = await request(`${a.url}/call`);
      // The token arrived before this instant, so client and server alike count its lifetime
      // from earlier than now.
      const primed = Date.now();
      await control("lifetime=3600");
      if (!first.ok) throw new Error(`${runtime}/${contender}: first call failed: ${first.error}`);
      if (PHASES.has(2)) {
        await sleep(Math.max(0, primed + CFG.shortLifetime * 1000 + 300 - Date.now()));
        const before = await stats(id);
        const t0 = Date.now();
        const r = await stampede(runtime, a, CFG.stampede);
        const s = await stats(id);
        out.expiry = { tokenRequests: s.tokenRequests - before.tokenRequests, failures: r.failures, error: r.error, ms: Date.now() - t0, deliverMs: r.deliverMs };
      }
      if (PHASES.has(3)) {
        // The same client, holding a valid token (phase 2 refreshed it, or the first call got
        // one): the server forgets every token, then the stampede.
        const warm = await request(`${a.url}/call`);
        if (!warm.ok) throw new Error(`${runtime}/${contender}: warm-up call failed: ${warm.error}`);
        await control("forget=1");
        const before = await stats(id);
        const t0 = Date.now();
        const r = await stampede(runtime, a, CFG.stampede);
        const s = await stats(id);
        out.revoked = {
          tokenRequests: s.tokenRequests - before.tokenRequests,
          failures: r.failures,
          error: r.error,
          unauthorized: s.api401 - before.api401,
          ms: Date.now() - t0,
          deliverMs: r.deliverMs,
        };
      }
    }
  } finally {
    await control("tokenDelay=0&lifetime=3600");
    await a.stop();
  }
  return out;
}

// ---- phase 4 ----
async function serverCpuMs() {
  return (await request(`${SERVER}/__cpu`)).ms;
}
// `start` starts the agent (phase 9 starts its own Workers).
async function throughputOnce(runtime, contender, start = () => startAgent(runtime, contender)) {
  const a = await start();
  try {
    await newClient(a, newClientId(runtime, contender, "tput"));
    const w = await request(`${a.url}/loop?n=${CFG.warmup}&c=${CFG.concurrency}`);
    if (w.failures) throw new Error(`${runtime}/${contender}: warm-up failures: ${w.error}`);
    const cpu0 = await serverCpuMs();
    const t0 = performance.now();
    let r;
    if (runtime !== "workerd") {
      r = await request(`${a.url}/loop?n=${CFG.calls}&c=${CFG.concurrency}`);
    } else {
      // In workerd the loop is split over WORKERD_SLICES concurrent requests to the one isolate
      // (same total concurrency): a Worker request may hold at most 10,000 active timers, and a
      // library that leaves a timer per call behind (openid-client: AbortSignal.timeout(30 s))
      // would otherwise fail past that within a single request, which production never does.
      const k = WORKERD_SLICES;
      const parts = await Promise.all(Array.from({ length: k }, () => request(`${a.url}/loop?n=${CFG.calls / k}&c=${CFG.concurrency / k}&raw=1`)));
      const lat = parts.flatMap((p) => p.latencies).sort((x, y) => x - y);
      r = {
        ms: performance.now() - t0,
        p50: lat[Math.floor(lat.length * 0.5)],
        p99: lat[Math.floor(lat.length * 0.99)],
        failures: parts.reduce((n, p) => n + p.failures, 0),
        error: parts.find((p) => p.error)?.error,
      };
    }
    const wall = performance.now() - t0;
    const serverBusy = ((await serverCpuMs()) - cpu0) / wall;
    return { callsPerSec: (CFG.calls * 1000) / r.ms, p50: r.p50, p99: r.p99, failures: r.failures, error: r.error, ms: r.ms, wallMs: wall, serverBusy };
  } finally {
    await a.stop();
  }
}
async function throughputPhase(runtime) {
  const rounds = [];
  const list = runtime === "node" ? [...CONTENDERS, ...NODE_REFERENCE] : CONTENDERS;
  for (let r = 0; r < CFG.rounds; r++) {
    // Interleaved: each round runs every contender once, in a rotated order.
    const order = list.map((_, i) => list[(i + r) % list.length]);
    const round = {};
    for (const c of order) {
      round[c] = await throughputOnce(runtime, c);
      log(`   ${runtime} round ${r + 1}/${CFG.rounds} ${c.padEnd(11)} ${round[c].callsPerSec.toFixed(0).padStart(6)} calls/s  p50 ${round[c].p50.toFixed(2)} ms  p99 ${round[c].p99.toFixed(2)} ms  server busy ${(round[c].serverBusy * 100).toFixed(0)}%${round[c].failures ? `  FAILURES ${round[c].failures}` : ""}`);
    }
    rounds.push(round);
  }
  const out = {};
  for (const c of list) {
    const ratios = rounds.map((round) => round[c].callsPerSec / round.floor.callsPerSec);
    out[c] = {
      callsPerSec: median(rounds.map((x) => x[c].callsPerSec)),
      ratio: median(ratios),
      ratioMin: Math.min(...ratios),
      ratioMax: Math.max(...ratios),
      p50: median(rounds.map((x) => x[c].p50)),
      p99: median(rounds.map((x) => x[c].p99)),
      failures: rounds.reduce((s, x) => s + x[c].failures, 0),
      serverBusy: median(rounds.map((x) => x[c].serverBusy)),
      rounds: rounds.map((x) => x[c]),
    };
  }
  return out;
}

// ---- phase 5 ----
async function tokenCost(runtime, contender) {
  const a = await startAgent(runtime, contender);
  try {
    await newClient(a, newClientId(runtime, contender, "cost"));
    const first = await request(`${a.url}/call`);
    if (!first.ok) throw new Error(`${runtime}/${contender}: ${first.error}`);
    if (runtime !== "workerd") {
      await request(`${a.url}/tokencost?n=${CFG.tokenCostN / 10}&reps=3`); // JIT warm-up
      const r = await request(`${a.url}/tokencost?n=${CFG.tokenCostN}&reps=7`);
      return { callNs: r.callNs, awaitNs: r.awaitNs, callNsMedian: r.callNsMedian, awaitNsMedian: r.awaitNsMedian, clock: "inside" };
    }
    // workerd's clock stands still while JavaScript runs: time from outside, n calls minus 1 call.
    const timed = async (n) => {
      const t0 = performance.now();
      await request(`${a.url}/tokencost?n=${n}&reps=1`);
      return performance.now() - t0;
    };
    await timed(CFG.tokenCostN / 10);
    const samples = [];
    for (let i = 0; i < 7; i++) samples.push(((await timed(CFG.tokenCostN)) - (await timed(1))) * 1e6 / (2 * CFG.tokenCostN));
    // Each request makes n plain calls and n awaited calls: reported as one per-call average.
    return { callNs: null, awaitNs: null, bothNs: Math.min(...samples), bothNsMedian: median(samples), clock: "outside" };
  } finally {
    await a.stop();
  }
}

// ---- phase 6 ----
async function sizes() {
  const esbuild = await import("esbuild");
  const out = { package: packageSizes(PKG_UNDER_TEST), bundles: {} };
  for (const c of CONTENDERS) {
    const r = await esbuild.build({
      entryPoints: [join(BENCH, "contenders", `${c}.mjs`)],
      ...WORKER_BUILD,
      minify: true,
      write: false,
    });
    const js = Buffer.from(r.outputFiles[0].contents);
    let wasm = Buffer.alloc(0);
    for (const imp of r.metafile.outputs[Object.keys(r.metafile.outputs)[0]].imports) {
      if (imp.path.endsWith(".wasm")) wasm = readFileSync(join(PKG_UNDER_TEST, imp.path.split("/").pop()));
    }
    const inputs = Object.entries(r.metafile.inputs).map(([p, v]) => [p, v.bytes]);
    const pkgBytes = {};
    for (const [p, bytes] of inputs) {
      const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(p);
      const k = m ? m[1] : "(bench code)";
      pkgBytes[k] = (pkgBytes[k] ?? 0) + bytes;
    }
    out.bundles[c] = { ...bundleSizes(js, wasm), inputsUnminified: pkgBytes };
  }
  out.toolchainFloor = await toolchainFloor(esbuild);
  return out;
}

function bundleSizes(js, wasm) {
  const gz = (b) => (b.length ? gzipSync(b, { level: 9 }).length : 0);
  const [jsGz, wasmGz] = [gz(js), gz(wasm)];
  return {
    js: { raw: js.length, gzip: jsGz },
    wasm: { raw: wasm.length, gzip: wasmGz },
    total: { raw: js.length + wasm.length, gzip: jsGz + wasmGz },
  };
}

/**
 * The reference row: bench/wasm-floor (`make wasm-floor`), one async method and nothing of ours,
 * built like the package; its glue minified like the contenders'. Null when it was not built.
 */
async function toolchainFloor(esbuild) {
  const dir = join(ROOT, "target", "wasm-floor", "pkg");
  if (!existsSync(join(dir, "wasm_floor_bg.wasm"))) {
    log("   (no target/wasm-floor: run `make wasm-floor` for the toolchain's reference row)");
    return null;
  }
  const r = await esbuild.build({ entryPoints: [join(dir, "wasm_floor.js")], bundle: true, format: "esm", minify: true, write: false });
  return bundleSizes(Buffer.from(r.outputFiles[0].contents), readFileSync(join(dir, "wasm_floor_bg.wasm")));
}

// ---- phase 7 ----
async function startup(runtime, contender) {
  const samples = [];
  for (let i = 0; i < CFG.startupSamples; i++) {
    const args = runtime === "node" ? [join(BENCH, "startup.mjs"), contender] : [...DENO_ARGS, join(BENCH, "startup.mjs"), contender];
    const r = run(runtime === "node" ? process.execPath : join(BIN, "deno"), args, { cwd: BENCH });
    if (r.code !== 0) throw new Error(`startup ${runtime}/${contender}: ${r.stderr}`);
    samples.push(JSON.parse(r.stdout.trim().split("\n").pop()));
  }
  samples.shift(); // the first sample warms the file cache
  return {
    importMs: median(samples.map((s) => s.importMs)),
    createMs: median(samples.map((s) => s.createMs)),
    samples: samples.length,
  };
}

function versions() {
  const v = (cmd, args) => (run(cmd, args).stdout || "").split("\n")[0].trim();
  const pkgVersion = (name) => JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")).version;
  return {
    node: process.version,
    deno: v(join(BIN, "deno"), ["--version"]),
    workerd: v(join(BIN, "workerd"), ["--version"]),
    cpu: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`,
    ours: JSON.parse(readFileSync(join(PKG_UNDER_TEST, "package.json"), "utf8")).version,
    "@badgateway/oauth2-client": pkgVersion("@badgateway/oauth2-client"),
    "openid-client": pkgVersion("openid-client"),
    oauth4webapi: pkgVersion("oauth4webapi"),
    jose: pkgVersion("jose"),
  };
}

// ---- main ----
async function main() {
  const started = Date.now();
  log(`==> bench ${QUICK ? "(quick) " : ""}runtimes ${RUNTIMES.join(",")} phases ${[...PHASES].join(",")} contenders ${CONTENDERS.join(",")}`);
  const pkgInfo = preparePackage();
  const srv = await spawnJsonLine(process.execPath, [join(BENCH, "server.mjs")]);
  SERVER = srv.info.url;
  const results = { meta: { date: new Date().toISOString(), quick: QUICK, config: CFG, versions: versions(), package: { ...pkgInfo, gitHead: run("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"]).stdout.trim(), gitDirty: run("git", ["-C", ROOT, "status", "--porcelain", "--", "src", "pkg-template", "Cargo.toml", "Cargo.lock"]).stdout.trim() !== "" }, runtimes: RUNTIMES, contenders: CONTENDERS, reference: NODE_REFERENCE, phases: [...PHASES] }, runtimes: {} };
  try {
    for (const rt of RUNTIMES) {
      const R = (results.runtimes[rt] = {});
      for (const c of CONTENDERS) R[c] = {};
      if (PHASES.has(1) || PHASES.has(2) || PHASES.has(3)) {
        log(`\n==> ${rt}: phases 1-3 (stampedes of ${CFG.stampede}; token endpoint answers after ${CFG.tokenDelayMs} ms)`);
        for (const c of CONTENDERS) {
          Object.assign(R[c], await stampedePhases(rt, c));
          const f = (p) => (R[c][p] ? `${R[c][p].tokenRequests} tok / ${R[c][p].failures} fail` : "-");
          log(`   ${c.padEnd(11)} cold ${f("cold").padEnd(20)} expiry ${f("expiry").padEnd(20)} revoked ${f("revoked")}`);
        }
      }
      if (PHASES.has(4)) {
        log(`\n==> ${rt}: phase 4 (${CFG.calls} calls at concurrency ${CFG.concurrency}, ${CFG.rounds} interleaved rounds)`);
        const t = await throughputPhase(rt);
        for (const c of Object.keys(t)) (R[c] ??= {}).throughput = t[c];
      }
      if (PHASES.has(5)) {
        log(`\n==> ${rt}: phase 5 (getToken() on a warm client)`);
        for (const c of CONTENDERS) {
          R[c].tokenCost = await tokenCost(rt, c);
          const t = R[c].tokenCost;
          log(`   ${c.padEnd(11)} ${t.clock === "inside" ? `call ${t.callNs.toFixed(0)} ns, awaited ${t.awaitNs.toFixed(0)} ns` : `call + awaited call, averaged: ${t.bothNs.toFixed(0)} ns`}`);
        }
      }
      if (PHASES.has(7) && rt !== "workerd") {
        log(`\n==> ${rt}: phase 7 (start-up: import + instantiate, ${CFG.startupSamples} fresh processes each)`);
        for (const c of CONTENDERS) {
          R[c].startup = await startup(rt, c);
          log(`   ${c.padEnd(11)} import ${R[c].startup.importMs.toFixed(2)} ms, construct ${R[c].startup.createMs.toFixed(2)} ms`);
        }
      }
    }
    if (PHASES.has(8)) {
      // Node only: the instances are Node processes sharing a redis-server (bench/fleet.mjs).
      log("\n==> node: phase 8 (many instances: a shared redisStore against instances that share nothing)");
      results.fleet = await fleetPhase({ startAgent, newClient, request, control, stats, newClientId, tokenCost, log, contenders: CONTENDERS, quick: QUICK });
    }
    if (PHASES.has(9) && RUNTIMES.includes("workerd")) {
      // workerd only: Worker services binding one TokenCoordinator namespace (bench/coordinator.mjs).
      log("\n==> workerd: phase 9 (the Durable Object token coordinator against no store)");
      const startCoordinated = (contender, options) => startWorker(contender, track, options);
      results.coordinator = await coordinatorPhase({ startWorker: startCoordinated, newClient, request, control, stats, newClientId, throughputOnce, log, rounds: CFG.rounds, quick: QUICK });
    }
    if (PHASES.has(6)) {
      log("\n==> phase 6 (size)");
      results.sizes = await sizes();
      for (const c of CONTENDERS) log(`   ${c.padEnd(11)} ${(results.sizes.bundles[c].total.gzip / 1024).toFixed(1)} KiB gzipped`);
    }
  } finally {
    await stopChild(srv.child);
    agent.destroy();
  }
  results.meta.seconds = Math.round((Date.now() - started) / 1000);
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, "results.json"), JSON.stringify(results, null, 2) + "\n");
  writeFileSync(join(OUT, "results.md"), renderMarkdown(results));
  writeFileSync(join(OUT, "chart.svg"), renderChart(results));
  log(`\n==> wrote ${relative(ROOT, join(OUT, "results.md"))}, results.json, chart.svg (${results.meta.seconds} s)`);
}

await main();
