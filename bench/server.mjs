// A lean loopback OAuth 2.0 token endpoint + balance API for the benchmark (not the test sandbox:
// nothing here is fault injection or validation beyond what the workload needs, so the server
// costs as little CPU as possible and every contender pays the same for it).
//
//   node bench/server.mjs [--port 0]      prints {"url": "..."} on one line, serves until killed
//
//   POST /token                    client_credentials; client_secret_post or Basic; any client id
//                                  with the secret "bench-secret"; counts requests per client id
//   GET  /v1/balances/{id}         needs a known, unexpired Bearer token; else 401 invalid_token
//   GET  /__stats?client=ID        {"tokenRequests","apiRequests","api401"} for that client id
//   GET  /__cpu                    {"ms"}: this process's CPU time (is the server the bottleneck?)
//   POST /__control?...            reset=1 (all counters), forget=1 (forget every token),
//                                  lifetime=S (expires_in of tokens issued from now on),
//                                  tokenDelay=MS (answer token requests after MS)
import http from "node:http";
import { randomBytes } from "node:crypto";

export const CLIENT_SECRET = "bench-secret";
export const ACCOUNT_ID = "acct-bench-0001";
const BALANCE = Buffer.from(
  `{"account_id":"${ACCOUNT_ID}","available_balance":"1234.56","ledger_balance":"1300.00","currency":"USD","as_of":"2026-11-20"}`,
);
const BALANCE_PATH = `/v1/balances/${ACCOUNT_ID}`;
const JSON_HEADERS = { "content-type": "application/json", "cache-control": "no-store" };
const UNAUTHORIZED = Buffer.from('{"title":"Unauthorized","status":401}');
const CHALLENGE = 'Bearer realm="bench", error="invalid_token"';

export function startServer({ port = 0, host = "127.0.0.1" } = {}) {
  const tokens = new Map(); // token -> { client, exp (ms) }
  const stats = new Map(); // client id -> counters
  let lifetime = 3600;
  let tokenDelay = 0;
  const counter = (id) => {
    let c = stats.get(id);
    if (!c) stats.set(id, (c = { tokenRequests: 0, apiRequests: 0, api401: 0 }));
    return c;
  };

  function sendToken(res, client) {
    const token = randomBytes(24).toString("base64url");
    tokens.set(token, { client, exp: Date.now() + lifetime * 1000 });
    const body = `{"access_token":"${token}","token_type":"Bearer","expires_in":${lifetime},"scope":"balances.read"}`;
    res.writeHead(200, { ...JSON_HEADERS, "content-length": Buffer.byteLength(body) });
    res.end(body);
  }

  function token(req, res) {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const form = new URLSearchParams(body);
      let id = form.get("client_id");
      let secret = form.get("client_secret");
      const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? "");
      if (basic) {
        const text = Buffer.from(basic[1], "base64").toString("utf8");
        const i = text.indexOf(":");
        id = decodeURIComponent(text.slice(0, i));
        secret = decodeURIComponent(text.slice(i + 1));
      }
      if (form.get("grant_type") !== "client_credentials" || !id || secret !== CLIENT_SECRET) {
        const e = '{"error":"invalid_client"}';
        res.writeHead(401, { ...JSON_HEADERS, "content-length": e.length });
        res.end(e);
        return;
      }
      counter(id).tokenRequests++;
      if (tokenDelay > 0) setTimeout(() => sendToken(res, id), tokenDelay);
      else sendToken(res, id);
    });
  }

  function balance(req, res) {
    const authz = req.headers.authorization;
    const info = authz !== undefined && authz.startsWith("Bearer ") ? tokens.get(authz.slice(7)) : undefined;
    if (info === undefined || Date.now() >= info.exp) {
      if (info) counter(info.client).api401++;
      res.writeHead(401, { ...JSON_HEADERS, "www-authenticate": CHALLENGE, "content-length": UNAUTHORIZED.length });
      res.end(UNAUTHORIZED);
      return;
    }
    counter(info.client).apiRequests++;
    res.writeHead(200, { ...JSON_HEADERS, "content-length": BALANCE.length });
    res.end(BALANCE);
  }

  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    const url = req.url;
    if (req.method === "GET" && url === BALANCE_PATH) return balance(req, res);
    if (req.method === "POST" && url === "/token") return token(req, res);
    const q = new URL(url, "http://x").searchParams;
    req.resume();
    if (url === "/__cpu") {
      const u = process.cpuUsage();
      res.writeHead(200, JSON_HEADERS);
      return res.end(JSON.stringify({ ms: (u.user + u.system) / 1000 }));
    }
    if (url.startsWith("/__stats")) {
      const out = JSON.stringify(counter(q.get("client") ?? ""));
      res.writeHead(200, JSON_HEADERS);
      return res.end(out);
    }
    if (req.method === "POST" && url.startsWith("/__control")) {
      if (q.has("reset")) stats.clear();
      if (q.has("forget")) tokens.clear();
      if (q.has("lifetime")) lifetime = Number(q.get("lifetime"));
      if (q.has("tokenDelay")) tokenDelay = Number(q.get("tokenDelay"));
      res.writeHead(204);
      return res.end();
    }
    res.writeHead(404, JSON_HEADERS);
    res.end('{"title":"Not Found","status":404}');
  });
  server.maxRequestsPerSocket = 0;
  server.headersTimeout = 0;
  server.requestTimeout = 0;
  return new Promise((resolve) => {
    server.listen(port, host, () => {
      const url = `http://${host}:${server.address().port}`;
      resolve({ url, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) });
    });
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf("--port");
  const { url } = await startServer({ port: i > 0 ? Number(process.argv[i + 1]) : 0 });
  process.stdout.write(JSON.stringify({ url }) + "\n");
  for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(0));
}
