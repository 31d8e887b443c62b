// The Node transport (src/js/node-http.js): what the package's Node entry uses instead of fetch
// for clients without a `fetch` option. The fault matrices already run every API and token fault
// through it (and through fetch); this file covers what only a transport of its own can get
// wrong: the keep-alive race (a GET or a token POST written to a socket the server is closing is
// sent again once, on a fresh connection; any other POST is not), bodies a server compresses although nobody asked, a BOM, and that a timeout or
// an abort really closes the connection, and that HTTPS verifies certificates. The server is a raw
// TCP one, so every socket is seen.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import zlib from "node:zlib";
import { PKG_URL, QBankClient, TokenManager, rejectionOf, assertQBankError } from "./token-support.mjs";

const { QPayCredentials } = await import(PKG_URL);
const CONNECTION = Symbol("connection number");

const TOKEN = JSON.stringify({ access_token: "node-http-token-1", token_type: "Bearer", expires_in: 3600 });
const BALANCE = JSON.stringify({ account_id: "acct-1", available_balance: "10.50", ledger_balance: "11.00", currency: "EUR" });
const EXPECTED = { accountId: "acct-1", availableBalance: "10.50", ledgerBalance: "11.00", currency: "EUR" };

/**
 * A raw HTTP/1.1 server. `answer(request)` is called per request with { method, path, body,
 * userAgent, connection, onConnection } and returns a response { status, headers, body, chunked } (body a
 * string or Buffer; chunked: sent with chunked framing, no Content-Length), "drop" (destroy the socket without a byte) or "hang" (never answer). Every answer is
 * keep-alive. Resolves { url, requests, connections, closed, close }.
 */
async function rawServer(answer) {
  const requests = [];
  const connections = [];
  const closed = [];
  const server = net.createServer((socket) => {
    const connection = connections.length;
    connections.push(socket);
    let count = 0;
    let buf = Buffer.alloc(0);
    socket.on("close", () => closed.push(connection));
    socket.on("error", () => {});
    socket.on("data", (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buf.subarray(0, end).toString("latin1").split("\r\n");
        const length = Number(/^content-length:\s*(\d+)/im.exec(head.join("\n"))?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        const body = buf.subarray(end + 4, end + 4 + length).toString("utf8");
        buf = buf.subarray(end + 4 + length);
        const [method, path] = head[0].split(" ");
        const userAgent = /^user-agent:\s*(.*)$/im.exec(head.join("\n"))?.[1];
        const request = { method, path, body, userAgent, connection, onConnection: count++ };
        requests.push(request);
        const a = answer(request);
        if (a === "drop") return socket.destroy();
        if (a === "hang") return;
        const payload = Buffer.isBuffer(a.body) ? a.body : Buffer.from(a.body ?? "");
        const framing = a.chunked ? { "transfer-encoding": "chunked" } : { "content-length": payload.length };
        const headers = { "content-type": "application/json", ...framing, connection: "keep-alive", ...a.headers };
        socket.write(`HTTP/1.1 ${a.status ?? 200} X\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join("\r\n")}\r\n\r\n`);
        if (a.chunked) socket.write(`${payload.length.toString(16)}\r\n`);
        socket.write(payload);
        if (a.chunked) socket.write("\r\n0\r\n\r\n");
      }
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    requests,
    connections,
    closed,
    close: () => new Promise((resolve) => {
      for (const s of connections) s.destroy();
      server.close(() => resolve());
    }),
  };
}

/**
 * Runs `node args` with `env` added, asynchronously (the servers answering it run in this
 * process). Resolves { status, stdout, stderr }; killed after 20 s.
 */
function runNode(args, env = {}) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, args, { env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (c) => (stdout += c));
    p.stderr.on("data", (c) => (stderr += c));
    const kill = setTimeout(() => p.kill(), 20_000);
    p.on("close", (status) => (clearTimeout(kill), resolve({ status, stdout, stderr })));
  });
}

const tokenOrBalance = (extra) => (r) => (r.path === "/token" ? { body: TOKEN } : extra(r));
const until = async (what, check, ms = 3000) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe("Node transport (node:http with keep-alive, the Node entry's default)", () => {
  const servers = [];
  const clients = [];
  after(async () => {
    for (const c of clients) c.close();
    for (const s of servers) await s.close();
  });
  async function setup(answer, options = {}) {
    const s = await rawServer(answer);
    servers.push(s);
    const bank = new QBankClient({
      environment: { tokenUrl: `${s.url}/token`, apiBaseUrl: s.url },
      clientId: "node-http-client",
      clientSecret: "node-http-secret-value",
      allowInsecureHttp: true,
      autoRefresh: false,
      ...options,
    });
    clients.push(bank);
    return { s, bank };
  }

  it("reuses one keep-alive connection for the token and many balances", async () => {
    const { s, bank } = await setup(tokenOrBalance(() => ({ body: BALANCE })));
    for (let i = 0; i < 5; i++) assert.deepEqual({ ...(await bank.getBalance("acct-1")), raw: undefined }, { ...EXPECTED, raw: undefined });
    assert.equal(s.requests.length, 6);
    assert.equal(s.connections.length, 1, "one connection for all six requests");
  });

  it("sends with node:http, not fetch (which would add a User-Agent), from the ESM entry and from the CommonJS one (node.cjs)", async () => {
    const { s, bank } = await setup(tokenOrBalance(() => ({ body: BALANCE })));
    await bank.getBalance("acct-1");
    const child = `const { QBankClient } = require(${JSON.stringify(new URL("node.cjs", PKG_URL).pathname)});
new QBankClient({ environment: { tokenUrl: "${s.url}/token", apiBaseUrl: "${s.url}" }, clientId: "c", clientSecret: "node-http-secret-value", allowInsecureHttp: true })
  .getBalance("acct-1").then((b) => console.log(b.availableBalance), (e) => { console.error(e.code); process.exit(1); });`;
    const r = await runNode(["-e", child]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), "10.50");
    assert.equal(s.requests.length, 4, "the token and a balance from each entry");
    assert.deepEqual(s.requests.map((q) => q.userAgent), [undefined, undefined, undefined, undefined], "no User-Agent: node:http, not fetch");
  });

  it("the keep-alive race: a GET written to a socket the server drops is sent again, once, on a new socket", async () => {
    const { s, bank } = await setup(tokenOrBalance((r) => (r.connection === 0 && r.onConnection === 2 ? "drop" : { body: BALANCE })));
    await bank.getBalance("acct-1"); // token + GET on connection 0
    const b = await bank.getBalance("acct-1"); // GET on connection 0 (dropped), again on connection 1
    assert.equal(b.availableBalance, "10.50");
    assert.deepEqual(s.requests.map((r) => `${r.method}@${r.connection}`), ["POST@0", "GET@0", "GET@0", "GET@1"]);
  });

  it("a GET dropped again on its fresh socket is not sent a third time: network, may have reached the server", async () => {
    let gets = 0;
    const { s, bank } = await setup(tokenOrBalance(() => (++gets > 1 ? "drop" : { body: BALANCE })));
    await bank.getBalance("acct-1");
    const err = await rejectionOf(bank.getBalance("acct-1"));
    assertQBankError(err, "network", { mayHaveReachedServer: true });
    assert.deepEqual(s.requests.map((r) => `${r.method}@${r.connection}`), ["POST@0", "GET@0", "GET@0", "GET@1"], "one retry, on a fresh socket, and no more");
  });

  it("the keep-alive race on a token POST: a server that closes its idle keep-alive socket as the POST is written gets it once, on a fresh connection", async () => {
    const posts = [];
    const server = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        posts.push(`${req.method} ${req.url} on connection ${req.socket[CONNECTION]}`);
        res.setHeader("content-type", "application/json");
        res.end(TOKEN);
      });
    });
    let connections = 0;
    server.on("connection", (socket) => (socket[CONNECTION] = connections++));
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const tm = new TokenManager({ tokenUrl: `http://127.0.0.1:${server.address().port}/token`, clientId: "c", clientSecret: "node-http-secret-value", allowInsecureHttp: true, autoRefresh: false });
      clients.push(tm);
      await tm.getToken();
      await new Promise((resolve) => setImmediate(resolve)); // the socket is parked idle on both sides
      // The server closes its idle keep-alive connections (what its keepAliveTimeout does), and in
      // the same turn of the event loop, before the client can see that close, the next token
      // POST is written to the pooled socket.
      server.closeIdleConnections();
      const t = await tm.getToken({ forceRefresh: true });
      assert.equal(t.accessToken, "node-http-token-1", "the token arrived");
      assert.deepEqual(posts, ["POST /token on connection 0", "POST /token on connection 1"], "exactly one POST of the second getToken reached the server, on a fresh connection");
      assert.equal(tm.status.tokenRequests, 2);
      assert.equal(tm.status.consecutiveFailures, 0);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("a token POST dropped on a reused socket is sent once more on a fresh connection, and not a third time: network, may have reached the server", async () => {
    const s = await rawServer((r) => (r.onConnection === 1 || r.connection === 1 ? "drop" : { body: TOKEN }));
    servers.push(s);
    const tm = new TokenManager({ tokenUrl: `${s.url}/token`, clientId: "c", clientSecret: "node-http-secret-value", allowInsecureHttp: true, autoRefresh: false });
    clients.push(tm);
    await tm.getToken();
    const err = await rejectionOf(tm.getToken({ forceRefresh: true }));
    assertQBankError(err, "network", { mayHaveReachedServer: true });
    assert.deepEqual(s.requests.map((r) => `${r.method}@${r.connection}`), ["POST@0", "POST@0", "POST@1"]);
  });

  it("any other POST on a dropped keep-alive socket is not sent again (QPay's createClient): network, may have reached the server", async () => {
    const s = await rawServer((r) => (r.path.endsWith("/token") ? { body: TOKEN } : "drop"));
    servers.push(s);
    const creds = await QPayCredentials.signIn({ baseUrl: s.url, allowInsecureHttp: true, username: "u", password: "node-http-password" });
    const err = await rejectionOf(creds.createClient({ tenantId: "t-1", name: "n", roles: ["issuer"] }));
    assertQBankError(err, "network", { mayHaveReachedServer: true });
    assert.deepEqual(s.requests.map((r) => `${r.method} ${r.path}@${r.connection}`), [
      "POST /auth/realms/qpay/protocol/openid-connect/token@0",
      "POST /credentials/clients@0",
    ]);
  });

  for (const [encoding, compress] of [
    ["gzip", zlib.gzipSync],
    ["deflate", zlib.deflateSync],
    ["br", zlib.brotliCompressSync],
  ]) {
    it(`a ${encoding} body the server compressed unasked is decoded (as fetch would)`, async () => {
      const { bank } = await setup(tokenOrBalance(() => ({ body: compress(Buffer.from(BALANCE)), headers: { "content-encoding": encoding } })));
      assert.equal((await bank.getBalance("acct-1")).ledgerBalance, "11.00");
    });
  }

  it("a UTF-8 BOM before the JSON is dropped (as Response.text() does)", async () => {
    const { bank } = await setup(tokenOrBalance(() => ({ body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(BALANCE)]) })));
    assert.equal((await bank.getBalance("acct-1")).availableBalance, "10.50");
  });

  it("a timeout closes the connection at once (no socket left waiting for the server)", async () => {
    const { s, bank } = await setup(tokenOrBalance(() => "hang"), { timeoutMs: 200 });
    const err = await rejectionOf(bank.getBalance("acct-1"));
    assertQBankError(err, "timeout", { mayHaveReachedServer: true });
    await until("the server to see the connection closed", () => s.closed.includes(0));
  });

  it("the caller's AbortSignal closes the connection of the request it aborts", async () => {
    const { s, bank } = await setup(tokenOrBalance(() => "hang"));
    await bank.tokens.getToken();
    const ac = new AbortController();
    const pending = rejectionOf(bank.getBalance("acct-1", { signal: ac.signal }));
    await until("the GET to arrive", () => s.requests.some((r) => r.method === "GET"));
    ac.abort();
    assertQBankError(await pending, "aborted");
    await until("the server to see the connection closed", () => s.closed.includes(0));
  });

  it("a chunked body over 1 MiB is not read further: invalid_response, connection closed", async () => {
    const big = Buffer.alloc(1024 * 1024 + 10, 0x20);
    const { s, bank } = await setup(tokenOrBalance(() => ({ body: big, chunked: true })));
    const err = await rejectionOf(bank.getBalance("acct-1"));
    assertQBankError(err, "invalid_response", { status: 200 });
    await until("the server to see the connection closed", () => s.closed.includes(0));
  });
});

// ---- HTTPS: certificates are verified (a self-signed one is refused), and a trusted one works ----

/** A throw-away self-signed certificate for 127.0.0.1 (openssl, valid two days). */
function selfSigned() {
  const dir = mkdtempSync(join(tmpdir(), "qbank-tls-"));
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "2",
    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
  ], { stdio: "ignore" });
  return { dir, certFile: join(dir, "cert.pem"), key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) };
}

describe("Node transport over HTTPS", () => {
  it("verifies certificates: a self-signed one is refused before any HTTP request; trusted (NODE_EXTRA_CA_CERTS), it works with keep-alive", async () => {
    const tls = selfSigned();
    const seen = [];
    const server = https.createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.setHeader("content-type", "application/json");
      res.end(req.url === "/token" ? TOKEN : BALANCE);
    });
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    const base = `https://127.0.0.1:${server.address().port}`;
    try {
      const options = { environment: { tokenUrl: `${base}/token`, apiBaseUrl: base }, clientId: "tls-client", clientSecret: "node-http-secret-value", autoRefresh: false };
      const bank = new QBankClient(options);
      const err = await rejectionOf(bank.getBalance("acct-1"));
      assertQBankError(err, "network");
      bank.close();
      assert.deepEqual(seen, [], "no HTTP request reached the server over the untrusted connection");

      // A child that trusts the certificate: the token and two balances over one TLS connection.
      const child = `const { QBankClient } = await import(${JSON.stringify(PKG_URL)});
const bank = new QBankClient(${JSON.stringify(options)});
const a = await bank.getBalance("acct-1"); const b = await bank.getBalance("acct-1");
console.log(JSON.stringify([a.availableBalance, b.ledgerBalance]));`;
      const r = await runNode(["--input-type=module", "-e", child], { NODE_EXTRA_CA_CERTS: tls.certFile });
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout.trim()), ["10.50", "11.00"]);
      assert.deepEqual(seen, ["POST /token", "GET /v1/balances/acct-1", "GET /v1/balances/acct-1"]);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      rmSync(tls.dir, { recursive: true, force: true });
    }
  });
});
