// A short soak (tests/soak/soak.mjs) as part of `make test`. One million cached getToken() calls
// (the JS fast path), one million getToken({ signal }) calls (through the wasm) and 5,000
// getBalance calls against the sandbox must leave the wasm linear memory, the live externref
// slots and the JS heap steady, with exactly the requests the sandbox should see. The detector
// must catch an injected 16 B/call leak in wasm memory and in the JS heap, so a pass is not
// vacuous. Token lifecycles (a manager per unit of work, forceRefresh, invalidate, a 401 refresh)
// must not leak either (a cancelled refresh timer once leaked its callback: this test found it).
// The soak runs in a child process with --expose-gc, because its figures are taken after forced
// full GCs. The full run is `make reliability` (node --expose-gc tests/soak/soak.mjs).
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./harness.mjs";

const SOAK = join(ROOT, "tests", "soak", "soak.mjs");

/** Runs the soak with these arguments; resolves to { code, report, stdout, stderr }. */
function soak(args) {
  const dir = mkdtempSync(join(tmpdir(), "qbank-soak-"));
  const out = join(dir, "soak.json");
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--expose-gc", SOAK, "--quiet", "--samples", "10", "--json", out, ...args],
      { cwd: ROOT, timeout: 180_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        let report = null;
        try {
          report = JSON.parse(readFileSync(out, "utf8"));
        } catch {
          // no report: the assertions below say so, with stderr
        }
        rmSync(dir, { recursive: true, force: true });
        resolve({ code: err ? (err.code ?? 1) : 0, report, stdout, stderr });
      },
    );
  });
}

const phase = (r, name) => {
  const p = r.report.phases.find((x) => x.phase === name);
  assert.ok(p, `phase "${name}" in the report (phases: ${r.report.phases.map((x) => x.phase).join(", ")})`);
  return p;
};
const failed = (p) => p.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
const describeRun = (r) => `exit ${r.code}; stderr: ${r.stderr.slice(0, 2000)}`;

describe("soak (short): 1,000,000 cached getToken (twice: JS fast path, and through the wasm) and 5,000 getBalance", () => {
  let r;
  before(async () => {
    r = await soak(["--token-calls", "1000000", "--balance-calls", "5000", "--lifecycle-calls", "0", "--concurrency", "32"]);
  });

  it("finishes with the verdict steady", () => {
    assert.ok(r.report, `a JSON report (${describeRun(r)})`);
    const bad = r.report.phases.flatMap((p) => failed(p).map((f) => `${p.phase}: ${f}`));
    assert.deepEqual(bad, [], "every check passes");
    assert.equal(r.report.verdict, "steady");
    assert.equal(r.code, 0, describeRun(r));
  });

  for (const name of ["getToken() (cached)", "getToken({ signal }) (cached, through the wasm)"]) {
    it(`${name}: one token request for 1,000,000 calls, no growth in wasm memory, externrefs or heap`, () => {
      const p = phase(r, name);
      assert.equal(p.calls, 1_000_000);
      assert.equal(p.sandbox.tokenRequests, 1, "the sandbox saw exactly one token request");
      assert.equal(p.sandbox.apiRequests, 0);
      assert.equal(p.tokenObjectReused, true, "every call got the same frozen token object");
      const m = p.memory;
      assert.ok(m.wasmBytes.ok, `wasm memory steady: ${JSON.stringify(m.wasmBytes)}`);
      assert.equal(m.externrefsLive.growth, 0, "no JS value is left held by Rust");
      assert.ok(m.heapUsed.ok, `JS heap steady: ${JSON.stringify(m.heapUsed)}`);
    });
  }

  it("getBalance: one token request, exactly one 200 per call, no growth", () => {
    const p = phase(r, "getBalance");
    const total = p.accounts + p.warmupCalls + p.calls;
    assert.equal(p.calls, 5_000);
    assert.equal(p.sandbox.tokenRequests, 1, "the sandbox saw exactly one token request");
    assert.equal(p.sandbox.apiRequests, total, "one API request per getBalance, no retries");
    assert.deepEqual(p.sandbox.apiByStatus, { 200: total });
    assert.equal(p.memory.externrefsLive.growth, 0, "no JS value is left held by Rust");
    assert.ok(p.memory.wasmBytes.ok && p.memory.heapUsed.ok, "wasm memory and heap steady");
  });
});

describe("soak detector self-test: an injected 16 B/call leak over 1,000,000 getToken calls is caught", () => {
  let r;
  before(async () => {
    r = await soak(["--token-calls", "1000000", "--balance-calls", "0", "--lifecycle-calls", "0", "--samples", "5", "--inject-leak", "wasm:16,js:16"]);
  });
  for (const [kind, metric] of [
    ["wasm: __wbindgen_malloc(16) never freed", "wasmBytes"],
    ["js: two retained 8-byte array slots", "heapUsed"],
  ]) {
    it(`${kind} -> ${metric} flagged`, () => {
      assert.ok(r.report, `a JSON report (${describeRun(r)})`);
      for (const p of r.report.phases) {
        assert.equal(p.memory[metric].ok, false, `${p.phase}: ${metric} must be flagged: ${JSON.stringify(p.memory[metric])}`);
        assert.ok(p.memory[metric].growth > 8 * p.calls, `${p.phase}: ${metric} grew by at least 8 B/call`);
      }
    });
  }
  it("the verdict is leak and the soak exits 1", () => {
    assert.equal(r.report.verdict, "leak");
    assert.equal(r.code, 1);
  });
});

describe("soak (short): 200 of each token lifecycle", () => {
  let r;
  before(async () => {
    r = await soak(["--token-calls", "0", "--balance-calls", "0", "--lifecycle-calls", "200"]);
  });

  it("the sandbox saw exactly the token and API requests each lifecycle makes", () => {
    assert.ok(r.report, `a JSON report (${describeRun(r)})`);
    const bad = r.report.phases.flatMap((p) => p.checks.filter((c) => !c.ok && !/ steady /.test(c.name)).map((c) => `${p.phase}: ${c.name}: ${c.detail}`));
    assert.deepEqual(bad, []);
  });

  it("control: new TokenManager + getToken + close with autoRefresh: false leaves nothing behind", () => {
    const p = phase(r, "new TokenManager + getToken + close (autoRefresh: false)");
    assert.deepEqual(failed(p), []);
    assert.equal(p.memory.externrefsLive.growth, 0);
  });

  // Regression: the refresh-ahead timer callback was made with Closure::once_into_js, which is
  // freed only when called; a timer cleared before it fired (close, invalidate, forceRefresh, a 401
  // refresh) leaked one externref slot, ~0.6 KiB of JS heap and the manager's RcBox each time.
  it("every lifecycle with autoRefresh (the default) is steady", () => {
    const leaking = r.report.phases
      .filter((p) => p.verdict !== "steady")
      .map((p) => `${p.phase}: ${failed(p).join("; ")}`);
    assert.deepEqual(leaking, []);
  });
});
