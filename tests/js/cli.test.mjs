// The `qbank-connect` command (src/cli/qbank-connect.mjs, published as pkg/cli.mjs, the package's
// `bin`), run the way a user runs it: the packed tarball installed in the consumer project
// (harness.mjs's ensureConsumer), then `npx qbank-connect …` there.
//
// The leak scanner (tests/leaks/README.md) sees the command twice: its own process runs with the
// scanner (npx's --node-options puts tests/leaks/register.cjs in NODE_OPTIONS for the command
// only, not for npm), so its errors, package instances and output are scanned and reported into
// the run like a test file's; and its stdout and stderr are recorded here too, where the
// in-process sandbox's tokens (planted ones included) and the secrets handed over are known.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { ensureConsumer, CONSUMER, ROOT, freePort } from "./harness.mjs";
import { startSandbox, DEFAULT_CLIENTS } from "../../src/testing/sandbox.mjs";

const scanner = globalThis[Symbol.for("qbank-connect.leak-scanner")];
const SCANNED = scanner !== undefined && process.env.QBANK_LEAK_RUN_DIR !== undefined;
const DEMO = DEFAULT_CLIENTS.find((c) => c.clientId === "demo-client");
const WRONG_SECRET = "wrong-secret-Xq7-not-real";
const ACCOUNT = "acct-number-amounts";

/** The environment of every run: without the caller's own QBANK_* variables or NODE_OPTIONS. */
function baseEnv(extra) {
  const env = { ...process.env, NO_COLOR: "1", npm_config_update_notifier: "false", ...extra };
  for (const k of ["QBANK_CLIENT_ID", "QBANK_CLIENT_SECRET", "NODE_OPTIONS"]) if (!(extra && k in extra)) delete env[k];
  return env;
}

/**
 * Starts `npx qbank-connect …args` in the consumer project, in a process group of its own.
 * Returns { child, done, interrupt, kill }: `done` a promise of { code, signal, stdout, stderr },
 * the output recorded for the leak scanner (unless `deliberate`: a run that prints a token on
 * purpose); `interrupt()` sends SIGINT to the command's own process (npm runs it through
 * `sh -c`: npx's exit code is then the command's); `kill()` ends the whole group.
 */
function start(args, { env, input, deliberate = false, timeoutMs = 60_000 } = {}) {
  const nodeOptions = SCANNED ? [`--node-options=--require ${join(ROOT, "tests", "leaks", "register.cjs")}`] : [];
  // "--": without it npx would take the command's own --help for itself.
  const child = spawn("npx", [...nodeOptions, "--no", "--", "qbank-connect", ...args], { cwd: CONSUMER, env: baseEnv(env), stdio: ["pipe", "pipe", "pipe"], detached: true });
  const signal = (name) => {
    try {
      process.kill(-child.pid, name);
    } catch {
      /* already gone */
    }
  };
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
  child.stdin.end(input ?? "");
  // A command that hangs is ended (and fails its test) rather than holding the run.
  const limit = setTimeout(() => signal("SIGKILL"), timeoutMs);
  const done = new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(limit);
      const where = `npx qbank-connect ${args[0] ?? ""}`;
      if (scanner && !deliberate) {
        scanner.addText("stdout", `${where}: stdout`, stdout);
        scanner.addText("stderr", `${where}: stderr`, stderr);
      }
      resolve({ code, signal, stdout, stderr });
    });
  });
  const interrupt = () => {
    const pid = commandPid(child.pid);
    assert.ok(pid, "the command's process is running under npx");
    process.kill(pid, "SIGINT");
  };
  return { child, done, interrupt, kill: () => signal("SIGKILL") };
}

/** The pid of the node process running qbank-connect among the descendants of `root` (Linux /proc). */
function commandPid(root) {
  const parent = new Map();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      parent.set(Number(name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      /* gone */
    }
  }
  const under = (pid) => pid === root || (parent.has(pid) && pid > 1 && under(parent.get(pid)));
  for (const pid of parent.keys()) {
    if (pid === root || !under(pid)) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      if (/node$/.test(cmd[0]) && cmd[1]?.endsWith("/qbank-connect")) return pid;
    } catch {
      /* gone */
    }
  }
  return undefined;
}

const cli = (args, opts) => start(args, opts).done;

let sb;
let endpoints;
before(async () => {
  ensureConsumer();
  sb = await startSandbox({});
  endpoints = ["--token-url", sb.tokenUrl, "--api-base-url", sb.apiBaseUrl, "--allow-insecure-http"];
  // The secrets handed to the command are known to this process's scanner as well.
  scanner?.addSecret(DEMO.clientSecret, "clientSecret", { clientId: DEMO.clientId, source: "cli.test.mjs" });
  scanner?.addSecret(WRONG_SECRET, "clientSecret", { clientId: DEMO.clientId, source: "cli.test.mjs" });
});
after(() => sb?.close());

const demoEnv = { QBANK_CLIENT_ID: DEMO.clientId, QBANK_CLIENT_SECRET: DEMO.clientSecret };
const jsonOf = (r) => {
  const lines = r.stdout.trim().split("\n");
  assert.equal(lines.length, 1, `one JSON line on stdout, got:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return JSON.parse(lines[0]);
};

test("--help and help list every command with an example, the secret rules and the exit codes", async () => {
  const r = await cli(["--help"]);
  assert.equal(r.code, 0, r.stderr);
  for (const name of ["sandbox", "qpay-sandbox", "token", "balance", "help"]) {
    assert.match(r.stdout, new RegExp(`^  ${name} `, "m"), `--help lists ${name}`);
    assert.match(r.stdout, new RegExp(`npx qbank-connect ${name}\\b`), `--help has an example of ${name}`);
  }
  assert.match(r.stdout, /QBANK_CLIENT_SECRET/);
  assert.match(r.stdout, /--client-secret-stdin/);
  for (const code of [0, 1, 2, 3, 4, 5, 6]) assert.match(r.stdout, new RegExp(`^  ${code}  `, "m"), `exit code ${code} documented`);
  const h = await cli(["help"]);
  assert.equal(h.code, 0);
  assert.equal(h.stdout, r.stdout, "`help` and `--help` print the same");
  const t = await cli(["help", "token"]);
  assert.equal(t.code, 0);
  for (const flag of ["--token-url", "--environment", "--scope", "--auth-method", "--allow-insecure-http", "--show-token"]) assert.ok(t.stdout.includes(flag), `help token names ${flag}`);
  const none = await cli([]);
  assert.equal(none.code, 2, "no command is a usage error");
  assert.match(none.stderr, /usage: qbank-connect/);
});

test("every QBankError code of index.d.ts has exactly one exit code, as the README's table says", async () => {
  const r = await cli(["help", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const { exitCodes, commands } = jsonOf(r);
  assert.deepEqual(commands.map((c) => c.name), ["sandbox", "qpay-sandbox", "token", "balance", "help"]);
  assert.deepEqual(exitCodes.map((c) => c.exitCode), [0, 1, 2, 3, 4, 5, 6]);
  const dts = readFileSync(join(CONSUMER, "node_modules", "qbank-connect", "index.d.ts"), "utf8");
  const union = /export type QBankErrorCode =([^;]+);/.exec(dts)[1];
  const codes = [...union.matchAll(/"([a-z_]+)"/g)].map((m) => m[1]);
  assert.ok(codes.length >= 20, "the codes were read from index.d.ts");
  const mapped = exitCodes.flatMap((c) => c.errorCodes);
  assert.deepEqual([...mapped].sort(), [...codes].sort(), "each code in exactly one class, and no other");
  // The README's table says the same.
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Command line"));
  for (const c of exitCodes) {
    const row = new RegExp(`^\\| ${c.exitCode} \\|([^\\n]*)$`, "m").exec(section);
    assert.ok(row, `the README's exit-code table has ${c.exitCode}`);
    assert.deepEqual([...row[1].matchAll(/`([a-z_]+)`/g)].map((m) => m[1]).sort(), [...c.errorCodes].sort(), `README row ${c.exitCode}`);
  }
});

test("sandbox and qpay-sandbox print their URLs as one JSON line and serve until SIGINT (exit 0)", { timeout: 90_000 }, async () => {
  for (const [name, extra] of [
    ["sandbox", ["--token-lifetime", "120", "--jwt"]],
    ["qpay-sandbox", ["--realm", "cli-test"]],
  ]) {
    const port = await freePort();
    const run = start([name, "--port", String(port), ...extra]);
    try {
      const line = await new Promise((resolve, reject) => {
        let out = "";
        run.child.stdout.on("data", (d) => {
          out += d;
          if (out.includes("\n")) resolve(out);
        });
        run.done.then((r) => reject(new Error(`${name} exited ${r.code} before printing: ${r.stderr}`)), reject);
      });
      const urls = JSON.parse(line);
      assert.equal(urls.url, `http://127.0.0.1:${port}`);
      if (name === "sandbox") {
        assert.deepEqual(urls, { url: urls.url, tokenUrl: `${urls.url}/token`, apiBaseUrl: urls.url });
        const answer = await post(urls.tokenUrl, `grant_type=client_credentials&client_id=${DEMO.clientId}&client_secret=${DEMO.clientSecret}`);
        assert.equal(answer.status, 200);
        assert.equal(answer.body.expires_in, 120, "--token-lifetime reached the server");
        assert.equal(answer.body.access_token.split(".").length, 3, "--jwt reached the server");
      } else {
        assert.deepEqual(urls, { url: urls.url, tokenUrl: `${urls.url}/auth/realms/cli-test/protocol/openid-connect/token`, credentialsBaseUrl: `${urls.url}/credentials`, realm: "cli-test" });
        const conf = await get(`${urls.url}/auth/realms/cli-test/.well-known/openid-configuration`);
        assert.equal(conf.status, 200);
      }
      run.interrupt();
      const r = await run.done;
      assert.equal(r.code, 0, `${name} exits 0 on SIGINT: ${r.stderr}`);
    } finally {
      run.kill(); // a failed check leaves no server behind
    }
  }
});

test("balance prints the exact amounts (also with --json); the secret from QBANK_CLIENT_SECRET", async () => {
  const r = await cli(["balance", ACCOUNT, ...endpoints], { env: demoEnv });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^available: 12345678901234567\.89 USD$/m);
  assert.match(r.stdout, /^ledger: {4}98765432109876543\.21 USD$/m);
  assert.match(r.stdout, /^as of: {5}2026-11-20$/m);
  const j = await cli(["balance", ACCOUNT, ...endpoints, "--json"], { env: demoEnv });
  assert.equal(j.code, 0, j.stderr);
  const b = jsonOf(j);
  assert.equal(b.ok, true);
  assert.equal(b.availableBalance, "12345678901234567.89");
  assert.equal(b.ledgerBalance, "98765432109876543.21");
  assert.equal(b.raw.pending_balance, "123456789012345678.90");
  assert.equal(b.currency, "USD");
  // --environment with the sandbox's URL, the client id from --client-id, the secret from a named variable.
  const e = await cli(["balance", "acct-negative", "--environment", sb.url, "--allow-insecure-http", "--client-id", DEMO.clientId, "--client-secret-env", "MY_BANK_SECRET", "--json"], {
    env: { MY_BANK_SECRET: DEMO.clientSecret },
  });
  assert.equal(e.code, 0, e.stderr);
  assert.equal(jsonOf(e).availableBalance, "-42.10");
});

test("token prints scope, lifetime, expiry and whether it is a JWT, never the token", async () => {
  sb.control.configure({ jwtTokens: true });
  sb.control.setLifetime(300);
  try {
    const r = await cli(["token", "--environment", sb.url, "--allow-insecure-http", "--scope", "balances.read transactions.read"], { env: demoEnv });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^scope: {5}balances\.read transactions\.read$/m);
    assert.match(r.stdout, /^lifetime: {2}(299|300) s$/m);
    assert.match(r.stdout, /^expires: {3}\d{4}-\d\d-\d\dT/m);
    assert.match(r.stdout, /^jwt: {7}yes \(HS256\)$/m);
    assert.match(r.stdout, /not shown: --show-token prints it/);
    assert.doesNotMatch(r.stdout, /eyJ/, "no part of the JWT is printed");
  } finally {
    sb.control.configure({ jwtTokens: false });
    sb.control.setLifetime(3600);
  }
  const j = await cli(["token", "--token-url", sb.tokenUrl, "--allow-insecure-http", "--auth-method", "client_secret_basic", "--json"], { env: demoEnv });
  assert.equal(j.code, 0, j.stderr);
  const t = jsonOf(j);
  assert.equal(t.jwt, false);
  assert.equal(t.lifetimeSeconds >= 3599 && t.lifetimeSeconds <= 3600, true, `lifetime ${t.lifetimeSeconds}`);
  assert.equal("accessToken" in t, false);
});

test("--show-token is the only way the token appears", async () => {
  // A planted token answer, so the test knows the token the command receives.
  const planted = "plantedTOKEN-0123456789-abcdefghij";
  const plant = () =>
    sb.control.addFault({
      target: "token",
      status: 200,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ access_token: planted, token_type: "Bearer", expires_in: 600, scope: "balances.read" }),
    });
  for (const json of [[], ["--json"]]) {
    plant();
    const r = await cli(["token", "--token-url", sb.tokenUrl, "--allow-insecure-http", ...json], { env: demoEnv });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sb.control.faults().length, 0, "the planted answer was used");
    assert.ok(!r.stdout.includes(planted) && !r.stderr.includes(planted), "no token without --show-token");
  }
  plant();
  const shown = await cli(["token", "--token-url", sb.tokenUrl, "--allow-insecure-http", "--show-token", "--json"], { env: demoEnv, deliberate: true });
  assert.equal(shown.code, 0, shown.stderr);
  assert.equal(jsonOf(shown).accessToken, planted);
  plant();
  const human = await cli(["token", "--token-url", sb.tokenUrl, "--allow-insecure-http", "--show-token"], { env: demoEnv, deliberate: true });
  assert.match(human.stdout, new RegExp(`^token: +${planted}$`, "m"));
});

test("a wrong secret exits 4 with the environment hint (also --json), the secret not printed", async () => {
  const env = { QBANK_CLIENT_ID: DEMO.clientId, QBANK_CLIENT_SECRET: WRONG_SECRET };
  const r = await cli(["token", "--token-url", sb.tokenUrl, "--allow-insecure-http"], { env });
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /invalid_client/);
  assert.match(r.stderr, /^hint: .*Sandbox and production credentials differ/m);
  assert.match(r.stderr, /environment/);
  assert.equal(r.stdout, "");
  const j = await cli(["token", "--environment", sb.url, "--allow-insecure-http", "--json"], { env });
  assert.equal(j.code, 4);
  const o = jsonOf(j);
  assert.equal(o.ok, false);
  assert.equal(o.exitCode, 4);
  assert.equal(o.error.code, "invalid_client");
  assert.match(o.error.hint, /environment/);
  for (const out of [r.stdout, r.stderr, j.stdout, j.stderr]) assert.ok(!out.includes(WRONG_SECRET));
});

test("--client-secret is refused with exit 2, saying why and what to do, its value never echoed", async () => {
  const value = "cmdline-Secret-9f3e1d";
  scanner?.addSecret(value, "clientSecret", { clientId: DEMO.clientId, source: "cli.test.mjs" });
  const before = sb.control.counters();
  for (const args of [
    ["token", "--client-id", DEMO.clientId, "--client-secret", value, "--token-url", sb.tokenUrl, "--allow-insecure-http"],
    ["balance", ACCOUNT, `--client-secret=${value}`, ...endpoints],
    ["token", "--json", "--client-secret", value],
  ]) {
    const r = await cli(args, { env: demoEnv });
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, /--client-secret is refused/);
    assert.match(r.stderr, /shell history/);
    assert.match(r.stderr, /`ps`/);
    assert.match(r.stderr, /QBANK_CLIENT_SECRET/);
    assert.match(r.stderr, /--client-secret-stdin/);
    assert.ok(!r.stdout.includes(value) && !r.stderr.includes(value), "the value is not echoed");
    if (args.includes("--json")) assert.deepEqual([jsonOf(r).error.code, jsonOf(r).exitCode], ["usage", 2]);
  }
  assert.deepEqual(sb.control.counters(), before, "nothing was sent");
  // Nor is a value after an unknown option's "=", or an unexpected argument.
  const odd = await cli(["token", `--clientSecret=${value}`], { env: demoEnv });
  assert.equal(odd.code, 2);
  assert.match(odd.stderr, /unknown option --clientSecret /);
  const extra = await cli(["token", value], { env: demoEnv });
  assert.equal(extra.code, 2);
  for (const out of [odd.stderr, extra.stderr]) assert.ok(!out.includes(value));
});

test("the secret from standard input (--client-secret-stdin)", async () => {
  const r = await cli(["token", "--token-url", sb.tokenUrl, "--allow-insecure-http", "--client-id", DEMO.clientId, "--client-secret-stdin", "--json"], {
    env: { QBANK_CLIENT_SECRET: WRONG_SECRET }, // stdin comes first
    input: `${DEMO.clientSecret}\n`,
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(jsonOf(r).ok, true);
  const empty = await cli(["token", "--token-url", sb.tokenUrl, "--allow-insecure-http", "--client-id", DEMO.clientId, "--client-secret-stdin"], { input: "" });
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /no client secret: standard input is empty/);
});

test("exit codes: 2 usage, 3 configuration, 5 network, 6 an API error", async () => {
  const noId = await cli(["token", "--token-url", sb.tokenUrl, "--allow-insecure-http"], { env: { QBANK_CLIENT_SECRET: DEMO.clientSecret } });
  assert.equal(noId.code, 2);
  assert.match(noId.stderr, /no client id/);
  const noSecret = await cli(["token", "--token-url", sb.tokenUrl, "--allow-insecure-http"], { env: { QBANK_CLIENT_ID: DEMO.clientId } });
  assert.equal(noSecret.code, 2);
  assert.match(noSecret.stderr, /no client secret: the environment variable QBANK_CLIENT_SECRET is empty or not set/);
  const half = await cli(["balance", ACCOUNT, "--token-url", sb.tokenUrl], { env: demoEnv });
  assert.equal(half.code, 2);
  const badId = await cli(["balance", "not an id/..", ...endpoints, "--json"], { env: demoEnv });
  assert.equal(badId.code, 2, badId.stderr);
  assert.equal(jsonOf(badId).error.code, "invalid_argument");

  const insecure = await cli(["token", "--token-url", sb.tokenUrl, "--json"], { env: demoEnv });
  assert.equal(insecure.code, 3, insecure.stderr);
  assert.equal(jsonOf(insecure).error.code, "config");
  assert.match(insecure.stderr, /^hint: .*--allow-insecure-http/m);

  const closed = await freePort();
  const net = await cli(["token", "--token-url", `http://127.0.0.1:${closed}/token`, "--allow-insecure-http", "--json"], { env: demoEnv });
  assert.equal(net.code, 5, net.stderr);
  assert.equal(jsonOf(net).error.code, "network");

  const missing = await cli(["balance", "acct-does-not-exist", ...endpoints, "--json"], { env: demoEnv });
  assert.equal(missing.code, 6, missing.stderr);
  const m = jsonOf(missing);
  assert.deepEqual([m.error.code, m.error.status, m.exitCode], ["not_found", 404, 6]);

  sb.control.addFault({ target: "token", status: 503, count: 10 });
  try {
    const down = await cli(["token", "--token-url", sb.tokenUrl, "--allow-insecure-http", "--json"], { env: demoEnv });
    assert.equal(down.code, 6, down.stderr);
    assert.equal(jsonOf(down).error.code, "token_endpoint_error");
  } finally {
    sb.control.clearFaults();
  }
});

function request(method, url, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: body ? { "content-type": "application/x-www-form-urlencoded" } : {} }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode, body: text ? JSON.parse(text) : undefined }));
    });
    req.once("error", reject);
    req.end(body);
  });
}
const post = (url, body) => request("POST", url, body);
const get = (url) => request("GET", url);
