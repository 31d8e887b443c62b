// `make demo`: start the local QBank sandbox, run worker-example's Worker (the bundle wrangler
// built in worker-example/dist) in a real workerd process, fetch a balance through it, print it,
// and stop everything. It says where the token came from: "coordinator" (the Durable Object
// bound as QBANK_TOKENS in wrangler.toml, which made the token request), or with
// `--no-coordinator` (the Worker without that binding) "endpoint" (the isolate's own token
// request, kept in its memory).
//
// `make serve` (`node tests/js/demo.mjs --serve`): the same, then keeps the sandbox and the
// Worker running and says where to open the page, until Ctrl-C. Ports: SANDBOX_PORT (default
// 8787) and WORKER_PORT (default 8788).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DIST, buildWorker, sandboxSettings, startWorkerdExample } from "./examples.mjs";
import { startSandbox, DEFAULT_CLIENTS } from "../../src/testing/sandbox.mjs";

const ACCOUNT = "a1b2c3d4-e5f6-7890-1234-567890abcde";
const SOURCES = { coordinator: "the coordinator", endpoint: "the endpoint (this isolate's own token request)", store: "the store" };
const client = DEFAULT_CLIENTS[0];
const serve = process.argv.includes("--serve");
const coordinator = !process.argv.includes("--no-coordinator");

if (!existsSync(join(DIST, "index.js"))) buildWorker({ log: (s) => console.log(s) });

const port = (name, fallback) => (serve ? Number(process.env[name] ?? fallback) : 0);
let sandbox;
let worker;
async function stop() {
  await worker?.stop();
  await sandbox?.close();
}
try {
  sandbox = await startSandbox({ port: port("SANDBOX_PORT", 8787) });
  worker = await startWorkerdExample({
    name: serve ? "serve" : "demo",
    bindings: sandboxSettings(sandbox, client),
    coordinator,
    port: serve ? port("WORKER_PORT", 8788) : undefined,
  });
  const res = await fetch(`${worker.url}/balances/${ACCOUNT}`);
  const b = await res.json();
  if (!res.ok) throw new Error(`the Worker answered ${res.status}: ${b.error}: ${b.message}`);
  const status = await (await fetch(`${worker.url}/status`)).json();
  console.log(`qbank-connect ${status.version} in ${status.runtime} at ${worker.url} (wrangler bundle), sandbox at ${sandbox.url}`);
  console.log(`account ${b.accountId}`);
  console.log(`  available ${b.availableBalance} ${b.currency ?? ""}`);
  console.log(`  ledger    ${b.ledgerBalance} ${b.currency ?? ""}`);
  console.log(`  as of     ${b.asOf ?? "real time (the bank sent no as-of date)"}`);
  const t = status.token;
  console.log(`token: ${t.state}, from ${SOURCES[t.source] ?? t.source}, expires in ${t.expiresInSeconds} s`);
  console.log(`  cache     ${t.cache}${t.cache === "coordinator" ? " (Durable Object QBANK_TOKENS: one token for every isolate)" : " (this isolate only: no QBANK_TOKENS binding)"}`);
  console.log(`  token requests: ${sandbox.control.counters().tokenRequests} at the sandbox, ${t.tokenRequests} from this isolate`);
} catch (e) {
  await stop();
  throw e;
}

if (serve) {
  console.log(`
Open ${worker.url}/ for the page, or ${worker.url}/balances/${ACCOUNT} for JSON.
Other seeded accounts: acct-number-amounts, acct-realtime, acct-negative, acct-nested.
The sandbox's control API is at ${sandbox.url}/__control/ (see src/testing/README.md).
Ctrl-C stops the Worker and the sandbox.`);
  const quit = () => stop().then(() => process.exit(0));
  process.once("SIGINT", quit);
  process.once("SIGTERM", quit);
} else {
  await stop();
}
