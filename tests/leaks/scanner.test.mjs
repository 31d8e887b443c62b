// The leak scanner's self-test: a scanner that never finds anything proves nothing. Each case runs
// tests/leaks/fixtures/leaky.mjs in a fresh Node process under the scanner and checks that a
// planted leak is found in the right channel and form, that the run then fails, that what tests
// print on purpose (deliberately()) or build themselves is not counted, and that the scanner's own
// report never repeats a secret.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { ROOT } from "../js/harness.mjs";

const REGISTER = join(ROOT, "tests", "leaks", "register.cjs");
const FIXTURE = join(ROOT, "tests", "leaks", "fixtures", "leaky.mjs");
const SUMMARY = /leak scanner: (\d+) strings scanned, (\d+) leaks/;

/** Runs the fixture under the scanner; `asRunner` runs it as `node --test` would. */
function run(leak, { asRunner = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "qbank-leaks-"));
  const report = join(dir, "leaks.json");
  const secret = `fx-secret-${randomBytes(12).toString("hex")}+/=é`;
  const env = { ...process.env, LEAK: leak, FIXTURE_SECRET: secret, QBANK_LEAK_REPORT: report };
  delete env.NODE_TEST_CONTEXT;
  delete env.QBANK_LEAK_RUN_DIR;
  const args = asRunner ? ["--require", REGISTER, "--test", "--test-reporter=dot", FIXTURE] : ["--require", REGISTER, FIXTURE];
  const r = spawnSync(process.execPath, args, { cwd: ROOT, env, encoding: "utf8", timeout: 60_000 });
  const out = { code: r.status, stdout: r.stdout, stderr: r.stderr, secret, report: existsSync(report) ? JSON.parse(readFileSync(report, "utf8")) : null };
  rmSync(dir, { recursive: true, force: true });
  const m = SUMMARY.exec(asRunner ? out.stdout : out.stderr);
  out.summary = m ? { strings: Number(m[1]), leaks: Number(m[2]) } : null;
  return out;
}

function assertFound(r, { channel, what }) {
  assert.ok(r.summary, `the summary line was printed (stdout: ${r.stdout}\nstderr: ${r.stderr})`);
  assert.ok(r.summary.leaks >= 1, `a leak was found (${r.stderr})`);
  assert.equal(r.code, 1, "a leak fails the process");
  assert.ok(r.report, "the JSON report was written");
  assert.equal(r.report.leaks, r.summary.leaks);
  assert.ok(
    r.report.leakDetails.some((l) => l.channel === channel && what.test(l.what)),
    `a ${channel} leak of ${what}: ${JSON.stringify(r.report.leakDetails)}`,
  );
  for (const text of [r.stdout, r.stderr.split("\n").filter((l) => /leak scanner|LEAK/.test(l)).join("\n"), JSON.stringify(r.report)]) {
    assert.ok(!text.includes(r.secret) && !text.includes(encodeURIComponent(r.secret)), "the scanner's report never repeats the secret");
  }
}

describe("leak scanner self-test", { timeout: 120_000 }, () => {
  it("a clean program: 0 leaks, exit 0, and strings were scanned (a token, its JSON, the manager, events)", () => {
    const r = run("none");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.summary && r.summary.leaks, 0);
    assert.ok(r.summary.strings > 0, "something was scanned");
    assert.ok(r.report.secretsKnown.token >= 1, "the sandbox's token was learnt from the wire");
    assert.ok(r.report.secretsKnown.clientSecret >= 1, "the client secret was learnt from the options");
    assert.ok(r.report.channels.instance > 0 && r.report.channels.event > 0 && r.report.channels.stdout > 0);
  });

  it("a token printed with console.log is found (console output, token learnt from the server's answer)", () => {
    assertFound(run("console-token"), { channel: "stdout", what: /token #\d+ .*raw/ });
  });

  it("the secret URL-encoded on stderr is found", () => {
    assertFound(run("stderr-url-encoded-secret"), { channel: "stderr", what: /clientSecret #\d+ .*URL-encoded/ });
  });

  it("the secret inside Basic credentials is found", () => {
    assertFound(run("basic-credentials"), { channel: "stderr", what: /clientSecret #\d+ .*inside Basic credentials/ });
  });

  it("an error the package builds is scanned in its message, stack, JSON and inspect renderings", () => {
    const r = run("package-error");
    assertFound(r, { channel: "error", what: /other #\d+/ });
    const where = r.report.leakDetails.map((l) => l.where).join("\n");
    for (const rendering of ["message", "stack", "JSON.stringify(err)", "util.inspect(err)"]) assert.ok(where.includes(rendering), `${rendering} was scanned:\n${where}`);
  });

  it("the package's events are scanned", () => {
    assertFound(run("package-event"), { channel: "event", what: /other #\d+/ });
  });

  it("a secret printed inside deliberately() is not a leak", () => {
    const r = run("deliberate");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.summary.leaks, 0);
  });

  it("a QBankError the program builds itself is not the package's output: counted, not scanned", () => {
    const r = run("test-built-error");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.summary.leaks, 0);
    assert.equal(r.report.errorsConstructedElsewhere, 2);
  });

  it("under node --test: the runner adds up the test processes' reports, prints the line and fails the run", () => {
    const r = run("console-token", { asRunner: true });
    assertFound(r, { channel: "stdout", what: /token #\d+/ });
    assert.equal(r.report.processes, 1, "one test process reported");
    assert.deepEqual(r.report.incompleteProcesses, []);
    assert.equal(r.report.files[0].file, "tests/leaks/fixtures/leaky.mjs");
  });
});
