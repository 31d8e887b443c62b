// The parent's side of the fleet tests (tests/js/fleet.test.mjs): instances as real child
// processes running ./agent.mjs (Node, Bun, Deno), started cold and released at once, and scans
// of what a store holds (every Redis key and value, the raw bytes of a Deno KV file).
// Not a test file.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BIN, ROOT, stopChild } from "../harness.mjs";

export const AGENT = fileURLToPath(new URL("./agent.mjs", import.meta.url));

/** The command line of one agent on `runtime`; `kvDir` is the folder a Deno KV file lives in. */
function command(runtime, { kvDir } = {}) {
  if (runtime === "node") return [process.execPath, [AGENT]];
  if (runtime === "bun") return [join(BIN, "bun"), [AGENT]];
  if (runtime === "deno") {
    const write = kvDir ? [`--allow-write=${kvDir}`] : [];
    return [
      join(BIN, "deno"),
      ["run", "--unstable-kv", "--allow-net=127.0.0.1", "--allow-env=QBANK_FLEET_AGENT", `--allow-read=${ROOT}${kvDir ? `,${kvDir}` : ""}`, ...write, "--node-modules-dir=manual", "--no-lock", "--no-prompt", AGENT],
    ];
  }
  throw new Error(`unknown runtime ${runtime}`);
}

/** Every agent started, so that a failed test leaves none behind (killAll). */
const live = new Set();

/**
 * One instance: a child process running agent.mjs with `config` (see agent.mjs). `onLine` sees
 * every JSON line it prints (events as they happen). Returns the handle once it printed ready.
 */
export async function startAgent(runtime, config, { onLine = () => {}, kvDir, readyMs = 30_000 } = {}) {
  const [cmd, args] = command(runtime, { kvDir });
  // QBANK_FLEET_PKG_URL: another build of the same API instead of pkg/ (as QBANK_PKG_URL does for
  // the in-process tests), e.g. to check that a test fails on a package without the store.
  const pkgUrl = process.env.QBANK_FLEET_PKG_URL;
  const childEnv = { ...process.env, QBANK_FLEET_AGENT: JSON.stringify(pkgUrl ? { pkgUrl, ...config } : config) };
  // Not a test process of the runner: the leak scanner's roles must not see it (a killed agent
  // would count as a test process that never reported).
  for (const k of ["NODE_TEST_CONTEXT", "QBANK_LEAK_RUN_DIR", "QBANK_LEAK_REPORT", "NODE_OPTIONS"]) delete childEnv[k];
  const child = spawn(cmd, args, { cwd: ROOT, env: childEnv, stdio: ["pipe", "pipe", "pipe"] });
  live.add(child);
  child.once("exit", () => live.delete(child));
  const agent = {
    runtime,
    child,
    pid: child.pid,
    lines: [], // every parsed line
    stdout: "",
    stderr: "",
    events: [], // streamed events
    waiters: [],
    exited: false,
  };
  let partial = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d) => (agent.stderr += d));
  child.stdout.on("data", (d) => {
    agent.stdout += d;
    partial += d;
    let nl;
    while ((nl = partial.indexOf("\n")) >= 0) {
      const text = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      let line;
      try {
        line = JSON.parse(text);
      } catch {
        continue; // not ours (a runtime's own warning)
      }
      agent.lines.push(line);
      if (line.type === "event") agent.events.push(line);
      onLine(line, agent);
      for (const w of agent.waiters.splice(0)) w();
    }
  });
  child.stdin.on("error", () => {}); // a killed agent: writes to it fail, that is expected
  child.once("exit", () => {
    agent.exited = true;
    for (const w of agent.waiters.splice(0)) w();
  });
  /** The next line of `type` after the first `from` lines; rejects if the process exits first. */
  agent.next = (type, from, timeoutMs = 60_000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${runtime} agent ${agent.pid}: no ${type} within ${timeoutMs} ms; stderr: ${agent.stderr.slice(-2000)}`)), timeoutMs);
      const check = () => {
        const found = agent.lines.slice(from).find((l) => l.type === type || l.type === "fatal");
        if (found) {
          clearTimeout(timer);
          if (found.type === "fatal") reject(new Error(`${runtime} agent ${agent.pid}: ${found.code ?? ""} ${found.message}; stderr: ${agent.stderr.slice(-2000)}`));
          else resolve(found);
        } else if (agent.exited) {
          clearTimeout(timer);
          reject(new Error(`${runtime} agent ${agent.pid} exited (${child.exitCode ?? child.signalCode}) before its ${type}; stderr: ${agent.stderr.slice(-2000)}`));
        } else agent.waiters.push(check);
      };
      check();
    });
  agent.send = (cmd) => {
    if (!agent.exited) child.stdin.write(`${JSON.stringify(cmd)}\n`);
  };
  /** Fires `n` concurrent calls of `op`; resolves with the report. */
  agent.run = (op, n) => {
    const from = agent.lines.length;
    agent.send({ cmd: "run", op, n });
    return agent.next("report", from);
  };
  agent.exit = async () => {
    agent.send({ cmd: "exit" });
    await Promise.race([new Promise((r) => (agent.exited ? r() : child.once("exit", r))), new Promise((r) => setTimeout(r, 5000).unref())]);
    await stopChild(child);
  };
  agent.kill = (signal = "SIGKILL") =>
    new Promise((resolve) => {
      if (agent.exited) return resolve();
      child.once("exit", () => resolve());
      child.kill(signal);
    });
  await agent.next("ready", 0, readyMs);
  return agent;
}

/** Kills every agent still running (an after hook). */
export async function killAll() {
  await Promise.all([...live].map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : (c.once("exit", r), c.kill("SIGKILL"))))));
}

/**
 * A fleet: `count` instances of `runtime` (or `runtimes`, one each), all started and ready before
 * anyone calls, so they start cold together. `config` is the agents' configuration, or a function
 * of the instance's index giving it. `go(op, n)` sends the run command to every instance
 * at the same moment and resolves with their reports, in order (a killed instance gives null).
 */
export async function startFleet({ runtime = "node", runtimes, count = 1, config, kvDir, onLine }) {
  const list = runtimes ?? Array.from({ length: count }, () => runtime);
  const agents = await Promise.all(list.map((rt, i) => startAgent(rt, typeof config === "function" ? config(i) : config, { kvDir, onLine })));
  return {
    agents,
    async go(op, n) {
      const runs = agents.map((a) => (a.exited ? Promise.resolve(null) : a.run(op, n).catch((e) => (a.exited ? null : Promise.reject(e)))));
      return Promise.all(runs);
    },
    exit: () => Promise.all(agents.map((a) => a.exit())),
    output: () => agents.map((a) => a.stdout + a.stderr).join("\n"),
  };
}

/** Sums the reports of a fleet (nulls skipped: killed instances). */
export function sumReports(reports) {
  const live = reports.filter(Boolean);
  const events = {};
  const failures = {};
  for (const r of live) {
    for (const [k, v] of Object.entries(r.events)) events[k] = (events[k] ?? 0) + v;
    for (const [k, v] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + v;
  }
  return {
    instances: live.length,
    calls: live.reduce((n, r) => n + r.n, 0),
    ok: live.reduce((n, r) => n + r.ok, 0),
    failed: live.reduce((n, r) => n + r.failed, 0),
    failures,
    firstError: live.find((r) => r.firstError)?.firstError,
    events,
    maxElapsedMs: Math.max(...live.map((r) => r.elapsedMs)),
    tokens: new Set(live.flatMap((r) => r.tokens)),
    leaks: live.flatMap((r) => r.leaks.map((l) => `${r.runtime} ${r.pid}: ${l}`)),
  };
}

// ---- what a store holds ----

/** Runs of base64url (or base64) text long enough to be a store value, decoded. */
function decodedRuns(text) {
  const out = [];
  for (const m of text.matchAll(/[A-Za-z0-9_+/-]{24,}/g)) out.push(Buffer.from(m[0].replace(/\+/g, "-").replace(/\//g, "_"), "base64url").toString("latin1"));
  return out;
}

/**
 * Which of the `forbidden` values ({name: value}) occur in `text` (a key, a value, a file's
 * bytes as latin1), raw or inside any base64url run of it decoded. Returns the names found.
 */
export function plaintextIn(text, forbidden) {
  const haystacks = [text, ...decodedRuns(text)];
  const found = [];
  for (const [name, value] of Object.entries(forbidden)) {
    if (!value) continue;
    const forms = [value, Buffer.from(value, "utf8").toString("base64url"), Buffer.from(value, "utf8").toString("base64")];
    if (haystacks.some((h) => forms.some((f) => h.includes(f)))) found.push(name);
  }
  return found;
}

/** Every key of a Redis server and its value (strings only; other types are listed as such). */
export async function redisDump(client) {
  const out = [];
  for await (const batch of client.scanIterator({ COUNT: 100 })) {
    for (const key of Array.isArray(batch) ? batch : [batch]) {
      const type = await client.type(key);
      out.push({ key, type, value: type === "string" ? await client.get(key) : null, ttlMs: await client.pTTL(key) });
    }
  }
  return out;
}

/** The raw bytes of a Deno KV (SQLite) file and its -wal and -shm files, as latin1 text. */
export function kvFileText(path) {
  return ["", "-wal", "-shm"]
    .map((suffix) => path + suffix)
    .filter((p) => existsSync(p))
    .map((p) => readFileSync(p).toString("latin1"))
    .join("\n");
}
