// `make demo`: start the local QBank sandbox, run a Worker in a real workerd process that
// uses the built package, fetch a balance through it, print it, and stop everything.
import { startWorkerd, ensureConsumer } from "./harness.mjs";
import { startSandbox, DEFAULT_CLIENTS } from "../servers/sandbox.mjs";

const ACCOUNT = "a1b2c3d4-e5f6-7890-1234-567890abcde";
const client = DEFAULT_CLIENTS[0];

ensureConsumer();
const sandbox = await startSandbox();
let worker;
try {
  worker = await startWorkerd(
    "demo",
    `import { QBankClient, version } from "qbank-connect";
let bank; // one client per isolate: its token is shared by every request
export default {
  async fetch(request, env, ctx) {
    bank ??= new QBankClient({
      environment: { tokenUrl: env.QBANK_TOKEN_URL, apiBaseUrl: env.QBANK_API_BASE_URL },
      clientId: env.QBANK_CLIENT_ID,
      clientSecret: env.QBANK_CLIENT_SECRET,
      allowInsecureHttp: true, // the sandbox is plain http on loopback
    });
    const id = new URL(request.url).pathname.split("/").pop();
    try {
      const balance = await bank.getBalance(decodeURIComponent(id), { waitUntil: (p) => ctx.waitUntil(p) });
      return Response.json({ version: version(), runtime: navigator.userAgent, balance, token: bank.tokens.status });
    } catch (e) {
      return Response.json({ error: e.code, message: e.message }, { status: 502 });
    }
  },
};
`,
    {
      bindings: {
        QBANK_TOKEN_URL: sandbox.tokenUrl,
        QBANK_API_BASE_URL: sandbox.apiBaseUrl,
        QBANK_CLIENT_ID: client.clientId,
        QBANK_CLIENT_SECRET: client.clientSecret,
      },
    },
  );
  const res = await fetch(`${worker.url}/balances/${ACCOUNT}`);
  const body = await res.json();
  if (!res.ok) throw new Error(`the Worker answered ${res.status}: ${body.error}: ${body.message}`);
  const b = body.balance;
  console.log(`qbank-connect ${body.version} in ${body.runtime} (workerd at ${worker.url}), sandbox at ${sandbox.url}`);
  console.log(`account ${b.accountId}`);
  console.log(`  available ${b.availableBalance} ${b.currency ?? ""}`);
  console.log(`  ledger    ${b.ledgerBalance} ${b.currency ?? ""}`);
  console.log(`  as of     ${b.asOf ?? "real time (the bank sent no as-of date)"}`);
  console.log(`token: ${body.token.state}, ${body.token.tokenRequests} token request(s) so far`);
} finally {
  await worker?.stop();
  await sandbox.close();
}
