// The provider documents (../shared/provider-docs/) through the built package, where only the edge
// reads an answer or sends a request (the pure parsers' examples are in tests/provider_docs.rs):
//
// - The generic bank ("Banking API"): its token endpoint answers nothing but
//   {"access_token": "…"} (no token_type, no expires_in), its tokens die after an hour, and then
//   "Subsequent request will produce an HTTP 401 response until your client application
//   re-authenticates". The sandbox's generic mode answers exactly so; the whole path runs: token,
//   balance, the bank's clock past the hour, a 401, one new token, the balance.
// - A token URL with a query (RFC 6749 §3.2; Azure AD B2C's …/token?p=B2C_1_signin): kept exactly
//   in the POST's URL, while the secret goes only in the body or the Basic header.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  TokenManager,
  assertNoneContain,
  assertSandboxCounts,
  errorRenderings,
  managerRenderings,
  sandboxSuite,
  secretForms,
  tokenForms,
} from "./token-support.mjs";
import { fakeClock, startStub } from "../reliability/support.mjs";

const CLIENT = {
  clientId: "generic-bank-client",
  clientSecret: `gb-secret-${randomBytes(12).toString("hex")}`,
  scopes: ["balances.read", "transactions.read"],
};
const ACCOUNT = "a1b2c3d4-e5f6-7890-1234-567890abcde";
const HOUR_MS = 3600 * 1000;
const EXPECTED_BALANCE = { availableBalance: "1234.56", ledgerBalance: "1300.00", currency: "USD", asOf: "2026-11-20" };

/** Every token the sandbox or a stub sent in this file, for the leak checks. */
const seenTokens = new Set();

/** A fetch that records each request and the token of each token answer. */
function recordingFetch(log) {
  return async (url, init = {}) => {
    log.push({ url: String(url), method: (init.method ?? "GET").toUpperCase() });
    const res = await fetch(url, init);
    if (String(url).includes("/token") && res.ok) {
      const j = await res.clone().json().catch(() => ({}));
      if (typeof j.access_token === "string") seenTokens.add(j.access_token);
    }
    return res;
  };
}

function assertClean(renderings) {
  assertNoneContain(renderings, { ...secretForms(CLIENT.clientId, CLIENT.clientSecret), ...tokenForms(seenTokens) });
}

describe("the generic bank: its documented answer, end to end", () => {
  const suite = sandboxSuite({ sandbox: { clients: [CLIENT], generic: true }, configure: { generic: true } });
  let sb;
  before(() => ({ sb } = suite));

  /** A QBankClient on the generic sandbox, recording what it sends. */
  function bank(options = {}) {
    const log = [];
    return { log, bank: suite.makeClient({ fetch: recordingFetch(log), ...options }) };
  }

  it("the token answer is exactly the document's: only access_token", async () => {
    const res = await fetch(sb.tokenUrl, {
      method: "POST",
      headers: { accept: "application/json", "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ client_id: CLIENT.clientId, client_secret: CLIENT.clientSecret, grant_type: "client_credentials" }),
    });
    const body = await res.json();
    seenTokens.add(body.access_token);
    assert.deepEqual(Object.keys(body), ["access_token"]);
  });

  it("token → balance → the bank's clock passes the hour → 401 → one new token → the balance", async () => {
    const { bank: b, log } = bank();
    const sent = Date.now();
    const first = await b.getBalance(ACCOUNT);
    assert.deepEqual({ ...first, raw: undefined }, { accountId: ACCOUNT, ...EXPECTED_BALANCE, raw: undefined });
    await assertSandboxCounts(sb, { tokenRequests: 1, apiRequests: 1, apiByStatus: { 200: 1 } });

    // No token_type: Bearer. No expires_in and no JWT: the default lifetime, one hour from sending,
    // which is the document's "expires after one hour".
    const t1 = await b.tokens.getToken();
    assert.equal(t1.tokenType, "Bearer");
    assert.ok(t1.expiresAt >= sent + HOUR_MS && t1.expiresAt <= Date.now() + HOUR_MS, `expiresAt ${t1.expiresAt - sent} ms after sending`);
    assert.deepEqual(t1.scope, ["balances.read"], "no scope in the answer: the scope asked for");
    assert.equal(b.tokens.status.state, "valid");

    // Only the bank's clock moves: the client still holds a token it thinks valid.
    sb.control.advanceClock(HOUR_MS + 1000);
    log.length = 0;
    const second = await b.getBalance(ACCOUNT);
    assert.deepEqual({ ...second, raw: undefined }, { ...first, raw: undefined });
    await assertSandboxCounts(sb, { tokenRequests: 2, apiRequests: 3, apiByStatus: { 200: 2, 401: 1 } });
    assert.deepEqual(
      log.map((r) => `${r.method} ${new URL(r.url).pathname}`),
      [`GET /v1/balances/${ACCOUNT}`, "POST /token", `GET /v1/balances/${ACCOUNT}`],
      "the 401, one re-authentication, the retried request",
    );
    const t2 = await b.tokens.getToken();
    assert.notEqual(t2.accessToken, t1.accessToken, "the refused token was replaced");
    seenTokens.add(t1.accessToken).add(t2.accessToken);
    assert.equal(b.tokens.status.tokenRequests, 2);

    // And the authorized fetch takes the same path on the next expiry.
    sb.control.advanceClock(HOUR_MS + 1000);
    const res = await b.fetch(`/v1/balances/${ACCOUNT}`);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    await assertSandboxCounts(sb, { tokenRequests: 3, apiRequests: 5, apiByStatus: { 200: 3, 401: 2 } });
    assertClean(managerRenderings(b.tokens));
  });

  it("when the client's clock reaches the hour first, it re-authenticates before sending: no 401", async () => {
    const clock = fakeClock(sb);
    try {
      const { bank: b, log } = bank({ autoRefresh: false });
      await b.getBalance(ACCOUNT);
      // 59.5 minutes: inside the last min(30 s, L/10) of the assumed hour, callers wait for a new token.
      clock.advance(HOUR_MS - 30_000);
      log.length = 0;
      await b.getBalance(ACCOUNT);
      assert.deepEqual(
        log.map((r) => `${r.method} ${new URL(r.url).pathname}`),
        ["POST /token", `GET /v1/balances/${ACCOUNT}`],
      );
      await assertSandboxCounts(sb, { tokenRequests: 2, apiRequests: 2, apiByStatus: { 200: 2 } });
    } finally {
      clock.restore();
    }
  });

  it("an explicit token type other than Bearer is still refused (invalid_response, never sent as Bearer)", async () => {
    const token = `mac-${randomBytes(16).toString("hex")}`;
    seenTokens.add(token);
    sb.control.addFault({ target: "token", status: 200, body: JSON.stringify({ access_token: token, token_type: "mac" }) });
    const { bank: b, log } = bank();
    const err = await b.getBalance(ACCOUNT).then(
      () => assert.fail("resolved"),
      (e) => e,
    );
    assert.equal(err.code, "invalid_response");
    assert.match(err.message, /token type is unsupported/);
    assert.deepEqual(log.map((r) => new URL(r.url).pathname), ["/token"], "no API request with it");
    assertClean(errorRenderings(err));
  });
});

describe("a tokenUrl with a query (RFC 6749 §3.2)", () => {
  let stub;
  before(async () => {
    stub = await startStub((req, res) => {
      const token = `q-${randomBytes(16).toString("hex")}`;
      seenTokens.add(token);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ access_token: token, token_type: "Bearer", expires_in: 600 }));
    });
  });
  after(() => stub.close());

  for (const authMethod of ["client_secret_post", "client_secret_basic"]) {
    it(`${authMethod}: the POST goes to the URL with its query exactly; the secret only in the ${authMethod === "client_secret_post" ? "body" : "Basic header"}`, async () => {
      stub.requests.length = 0;
      const path = "/tenant.onmicrosoft.com/oauth2/v2.0/token?p=B2C_1_signin&x=%2F+a&x=2";
      const tm = new TokenManager({
        tokenUrl: `${stub.url}${path}`,
        clientId: CLIENT.clientId,
        clientSecret: CLIENT.clientSecret,
        authMethod,
        allowInsecureHttp: true,
        autoRefresh: false,
      });
      try {
        await tm.getToken();
        assert.equal(stub.requests.length, 1);
        const [r] = stub.requests;
        assert.equal(r.method, "POST");
        assert.equal(r.url, path, "the query kept exactly, nothing added to it");
        const form = new URLSearchParams(r.body);
        assert.equal(form.get("grant_type"), "client_credentials");
        if (authMethod === "client_secret_post") {
          assert.equal(form.get("client_secret"), CLIENT.clientSecret);
          assert.equal(r.headers.authorization, undefined);
        } else {
          assert.equal(form.get("client_secret"), null);
          assert.match(r.headers.authorization, /^Basic /);
        }
        assertNoneContain([r.url], secretForms(CLIENT.clientId, CLIENT.clientSecret));
        assertClean(managerRenderings(tm));
      } finally {
        tm.close();
      }
    });
  }
});
