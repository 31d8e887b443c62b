// TokenManager (issue 3) against the local QBank sandbox with fault injection: every failure gives
// its documented QBankError code, and no error, event or printed manager ever contains the client
// secret (in any of its encodings) or an access token the server sent. Also: bad options are
// refused synchronously with code "config".
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { freePort } from "./harness.mjs";
import {
  TokenManager,
  assertQBankError,
  assertToken,
  assertNoneContain,
  errorRenderings,
  eventRenderings,
  managerRenderings,
  rejectionOf,
  sandboxSuite,
  secretForms,
  startOtherOrigin,
  sleep,
  thrownBy,
  tokenForms,
  until,
} from "./token-support.mjs";

const CLIENT = {
  clientId: "fault-client",
  clientSecret: `qb-fault-secret-${randomBytes(12).toString("hex")}`,
  scopes: ["balances.read", "transactions.read"],
};
// Reserved characters in both: client_secret_basic must form-encode them before Base64.
const ODD_CLIENT = {
  clientId: "odd id:ü",
  clientSecret: `p:ss+w%rd é&=${randomBytes(8).toString("hex")}`,
  scopes: ["balances.read"],
};

/** Every access token the server sent (issued, or planted in a fault body) during this file. */
const sentTokens = new Set();
const plantToken = () => {
  const t = `planted-${randomBytes(24).toString("base64url")}`;
  sentTokens.add(t);
  return t;
};

/** The secrets of every client this file knows, and every token sent so far. */
function forbidden(...extraClients) {
  const out = { ...tokenForms(sentTokens) };
  for (const c of [CLIENT, ODD_CLIENT, ...extraClients]) {
    for (const [what, v] of Object.entries(secretForms(c.clientId, c.clientSecret))) out[`${c.clientId}: ${what}`] = v;
  }
  return out;
}

/** Checks that the manager, its events and these errors contain no secret and no token. */
function assertClean({ tm, events, options }, errors = []) {
  const never = forbidden(options);
  assertNoneContain(managerRenderings(tm), never);
  assertNoneContain(eventRenderings(events), never);
  for (const err of errors) assertNoneContain(errorRenderings(err), never);
}

describe("TokenManager × QBank sandbox: token endpoint faults", { timeout: 30_000 }, () => {
  const suite = sandboxSuite({ sandbox: { clients: [CLIENT, ODD_CLIENT] } });
  // manager(): for CLIENT on the sandbox (or another client via options).
  const { manager, tokenRequests } = suite;
  let sb;
  before(() => ({ sb } = suite));

  /** A successful getToken; remembers the token so later scans look for it too. */
  const getToken = async (tm, options) => {
    const t = await tm.getToken(options);
    sentTokens.add(t.accessToken);
    return t;
  };

  /**
   * Injects `fault` (if any), makes a manager, and expects its first getToken() to reject with
   * `code` (or one of `codes`) and these fields; then checks nothing leaked.
   */
  async function expectFailure({ fault, options, code, codes, fields }) {
    if (fault) sb.control.addFault({ target: "token", ...fault });
    const m = manager(options);
    const err = await rejectionOf(m.tm.getToken());
    if (codes) assert.ok(codes.includes(err?.code), `code ${err?.code} is one of ${codes} (message: ${err?.message})`);
    assertQBankError(err, code ?? err.code, fields);
    assertClean(m, [err]);
    return { ...m, err };
  }

  it("a 500 is token_endpoint_error with status 500; the failure is not cached, the next call asks again", async () => {
    const m = await expectFailure({
      fault: { status: 500, body: "Internal Server Error" },
      code: "token_endpoint_error",
      fields: { status: 500 },
    });
    assert.equal(tokenRequests(), 1);
    assertToken(await getToken(m.tm), { scope: ["balances.read"] });
    assert.equal(tokenRequests(), 2);
    assertClean(m, [m.err]);
  });

  it("a 429 with Retry-After is rate_limited with retryAfterMs", async () => {
    await expectFailure({
      fault: { status: 429, headers: { "Retry-After": "7" }, body: "Too Many Requests" },
      code: "rate_limited",
      fields: { status: 429, retryAfterMs: 7000 },
    });
  });

  it("a token request that is never answered times out after timeoutMs", async () => {
    await expectFailure({
      fault: { hang: true },
      options: { timeoutMs: 300 },
      code: "timeout",
      fields: { mayHaveReachedServer: true },
    });
  });

  it("a refused connection is network (and cannot have reached the server)", async () => {
    const port = await freePort(); // nothing listens there
    await expectFailure({
      options: { tokenUrl: `http://127.0.0.1:${port}/token` },
      code: "network",
      fields: { mayHaveReachedServer: false },
    });
  });

  // 200 answers the manager must refuse (§5.1, RFC 6750 b64token), each carrying a token that
  // must then appear nowhere.
  const BAD_200 = [
    ["malformed JSON (truncated)", (t) => `{"access_token":"${t}","token_type":"Bearer","expi`],
    ["not JSON at all (an HTML page)", (t) => `<html><body>Gateway says ${t}</body></html>`],
    ["a JSON array", (t) => JSON.stringify([t, "Bearer"])],
    ["no access_token", () => JSON.stringify({ token_type: "Bearer", expires_in: 60 })],
    ["token_type DPoP (never sent as Bearer)", (t) => JSON.stringify({ access_token: t, token_type: "DPoP", expires_in: 60 })],
    ['token_type "" (an empty type, not a missing one)', (t) => JSON.stringify({ access_token: t, token_type: "", expires_in: 60 })],
    [
      "an access_token that could break a header",
      (t) => JSON.stringify({ access_token: `${t}\r\nX-Injected: 1`, token_type: "Bearer", expires_in: 60 }),
    ],
  ];
  for (const [what, body] of BAD_200) {
    it(`a 200 with ${what} is invalid_response`, async () => {
      await expectFailure({ fault: { status: 200, body: body(plantToken()) }, code: "invalid_response", fields: { status: 200 } });
    });
  }

  it("a 200 carrying an RFC 6749 error member is that error, not a token", async () => {
    await expectFailure({
      fault: { status: 200, body: JSON.stringify({ error: "invalid_client", access_token: plantToken() }) },
      code: "invalid_client",
      fields: { oauthError: "invalid_client" },
    });
  });

  for (const status of [302, 307, 308]) {
    it(`a ${status} from the token endpoint is an error and the secret is not sent to its Location`, async () => {
      // Where the redirect points: it would answer with a token, had the redirect been followed.
      const catcher = await startOtherOrigin(() => JSON.stringify({ access_token: plantToken(), token_type: "Bearer", expires_in: 60 }));
      try {
        const { err } = await expectFailure({
          fault: { redirect: `${catcher.url}/token`, status },
          codes: ["token_endpoint_error", "invalid_response"],
          fields: { status },
        });
        assert.ok(err);
        assert.equal(catcher.seen.length, 0, "the redirect was not followed");
        assert.equal(tokenRequests(), 1, "the secret was sent once, to the token endpoint only");
      } finally {
        await catcher.close();
      }
    });
  }

  for (const authMethod of ["client_secret_post", "client_secret_basic"]) {
    it(`${authMethod}: a wrong secret is invalid_client and is not retried`, async () => {
      const wrongSecret = `${CLIENT.clientSecret}-wrong`;
      await expectFailure({
        options: { authMethod, clientSecret: wrongSecret },
        code: "invalid_client",
        fields: { status: 401, oauthError: "invalid_client" },
      });
      await sleep(300); // room for a (forbidden) automatic retry to show up
      assert.equal(tokenRequests(), 1);
    });
  }

  it("an error_description that echoes the secret (raw and as Basic credentials) is scrubbed", async () => {
    const echoed = Object.values(secretForms(CLIENT.clientId, CLIENT.clientSecret)).join(" | ");
    const { err } = await expectFailure({
      fault: { status: 401, body: JSON.stringify({ error: "invalid_client", error_description: `bad credentials: ${echoed}` }) },
      options: { authMethod: "client_secret_basic" },
      code: "invalid_client",
      fields: { status: 401, oauthError: "invalid_client" },
    });
    assert.equal(typeof err.oauthErrorDescription, "string", "the (scrubbed) description is kept");
  });

  it("client_secret_basic form-encodes an id and secret with reserved characters (RFC 6749 §2.3.1)", async () => {
    const m = manager({ clientId: ODD_CLIENT.clientId, clientSecret: ODD_CLIENT.clientSecret, authMethod: "client_secret_basic" });
    assertToken(await getToken(m.tm), { scope: ["balances.read"] });
    assert.equal(sb.control.counters().lastTokenRequest.authMethod, "basic");
    assertClean(m);
  });

  it("a refresh failing while the token is still valid: token_refresh_failed, the token is still served, nothing leaks", async () => {
    sb.control.setLifetime(2);
    const m = manager();
    const t1 = await getToken(m.tm);
    sb.control.addFault({ target: "token", status: 500, body: "Internal Server Error" });
    const failed = () => m.events.find((e) => e.event.type === "token_refresh_failed");
    await until(failed, "a token_refresh_failed event from the background refresh", 5000);
    assert.equal(failed().event.code, "token_endpoint_error");
    const t2 = await getToken(m.tm); // the old one while valid, or the retried refresh's
    assert.ok(t2.expiresAt >= t1.expiresAt);
    assertClean(m);
  });

  for (const authMethod of ["client_secret_post", "client_secret_basic"]) {
    it(`${authMethod}: String(tm), JSON.stringify(tm), util.inspect(tm) never show the secret or token`, async () => {
      const m = manager({ authMethod });
      assertClean(m);
      await getToken(m.tm);
      assertClean(m);
    });
  }
});

describe("new TokenManager(bad options) throws QBankError config synchronously, never echoing the secret", () => {
  const SECRET = `cfg-secret-${randomBytes(12).toString("hex")}`;
  const BASE = { tokenUrl: "https://auth.example.com/token", clientId: "cfg-client", clientSecret: SECRET };
  const without = (name) => {
    const o = { ...BASE };
    delete o[name];
    return o;
  };
  const BAD = [
    ["plain http to a non-loopback host, even with allowInsecureHttp", { ...BASE, tokenUrl: "http://auth.example.com/token", allowInsecureHttp: true }],
    ["plain http to loopback without allowInsecureHttp", { ...BASE, tokenUrl: "http://127.0.0.1:9/token" }],
    ["no clientId", without("clientId")],
    ["no clientSecret", without("clientSecret")],
    ["no tokenUrl", without("tokenUrl")],
    ["a secret ending with a line break", { ...BASE, clientSecret: `${SECRET}\n` }],
    ["a typo'd option name carrying the secret (clientSecert)", { ...BASE, clientSecert: SECRET }],
    ["a typo'd option name (timeoutMS)", { ...BASE, timeoutMS: 1000 }],
    ["a negative timeoutMs", { ...BASE, timeoutMs: -1 }],
    ["an unknown authMethod", { ...BASE, authMethod: "client_secret_jwt" }],
    ["a scope with a double quote", { ...BASE, scope: ['balances"read'] }],
    ["extraParams overriding client_secret", { ...BASE, extraParams: { client_secret: SECRET } }],
  ];
  for (const [what, options] of BAD) {
    it(what, () => {
      const err = assertQBankError(thrownBy(() => new TokenManager(options)), "config");
      assertNoneContain(errorRenderings(err), secretForms(BASE.clientId, SECRET));
    });
  }

  it("the same options without the mistake are accepted (and make no request)", () => {
    for (const options of [BASE, { ...BASE, tokenUrl: "http://127.0.0.1:9/token", allowInsecureHttp: true, timeoutMs: 300 }]) {
      const tm = new TokenManager({ ...options, autoRefresh: false });
      try {
        assert.equal(tm.status.state, "empty");
        assert.equal(tm.status.tokenRequests, 0);
      } finally {
        tm.close();
      }
    }
  });
});
