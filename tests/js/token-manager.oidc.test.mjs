// TokenManager (issue 3) from JavaScript against a real authorization server we did not write:
// oidc-provider on loopback, client-credentials grant, one client per auth method, short
// access-token lifetimes, and JWT access tokens for the exp case. The server's own request count
// is the proof of caching and single flight.
import { describe, it, before, after, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { startOidc, OIDC_CLIENTS, ALLOWED_SCOPES } from "../servers/oidc.mjs";
import {
  assertQBankError,
  assertToken,
  assertNoneContain,
  concurrentGetToken,
  errorRenderings,
  eventRenderings,
  eventTypes,
  jwtPayload,
  managerPool,
  rejectionOf,
  secretForms,
  sleep,
  timedGetToken,
  tokenForms,
  until,
} from "./token-support.mjs";

const AUTH_METHODS = [
  // The post client asks for its scopes as an array, the basic one as a space-separated string.
  { name: "client_secret_post", client: OIDC_CLIENTS.post, scope: [...ALLOWED_SCOPES] },
  { name: "client_secret_basic", client: OIDC_CLIENTS.basic, scope: ALLOWED_SCOPES.join(" ") },
];

/** Starts an oidc-provider server for a describe block, with a pool of managers for it. */
function withServer(serverOptions) {
  const ctx = { as: null, pool: managerPool() };
  before(async () => {
    ctx.as = await startOidc(serverOptions);
  });
  beforeEach(() => ctx.as.resetCounters());
  afterEach(() => ctx.pool.closeAll());
  after(async () => {
    ctx.pool.closeAll();
    await ctx.as?.close();
  });
  /** A manager for one of the OIDC_CLIENTS (post by default) on this server. */
  ctx.manager = (options = {}) => {
    const { client = OIDC_CLIENTS.post, ...rest } = options;
    return ctx.pool.make({
      tokenUrl: ctx.as.tokenUrl,
      clientId: client.clientId,
      clientSecret: client.clientSecret,
      authMethod: client.authMethod,
      scope: [...ALLOWED_SCOPES],
      extraParams: ctx.as.extraParams,
      ...rest,
    });
  };
  return ctx;
}

describe("TokenManager × oidc-provider (opaque tokens, 60 s lifetime)", { timeout: 30_000 }, () => {
  const ctx = withServer({ ttlSeconds: 60 });

  for (const { name, client, scope } of AUTH_METHODS) {
    it(`${name}: obtains a Bearer token, then serves it from the cache`, async () => {
      const { tm } = ctx.manager({ client, scope });
      const { t, window } = await timedGetToken(tm);
      assertToken(t, { scope: ALLOWED_SCOPES, lifetimeSeconds: 60, window });
      assert.equal(ctx.as.tokenRequests(), 1);
      assert.equal(ctx.as.stats().lastTokenRequest.authMethod, name === "client_secret_basic" ? "basic" : "post");
      assert.equal(ctx.as.stats().grantSuccesses, 1);

      const again = await tm.getToken();
      assert.deepEqual(again, t, "the second getToken returns the cached token");
      assert.equal(ctx.as.tokenRequests(), 1, "no second token request");
    });
  }

  it("status: empty before the first token, then valid with its expiresAt; tokenRequests counts requests", async () => {
    const { tm } = ctx.manager();
    assert.equal(tm.status.state, "empty");
    assert.equal(tm.status.tokenRequests, 0);
    assert.equal(tm.status.expiresAt, undefined);

    const t1 = await tm.getToken();
    assert.equal(tm.status.state, "valid");
    assert.equal(tm.status.expiresAt, t1.expiresAt);
    assert.equal(tm.status.tokenRequests, 1);

    const t2 = await tm.getToken({ forceRefresh: true });
    assert.notEqual(t2.accessToken, t1.accessToken, "forceRefresh gets a new token");
    assert.ok(t2.expiresAt >= t1.expiresAt);
    assert.equal(tm.status.state, "valid");
    assert.equal(tm.status.expiresAt, t2.expiresAt);
    assert.equal(tm.status.tokenRequests, 2);
    assert.equal(ctx.as.tokenRequests(), 2);
  });

  it("events: token_requested then token_acquired, with expiresAt and tokenRequests, never the token", async () => {
    const { tm, events } = ctx.manager();
    const t = await tm.getToken();
    assert.deepEqual(eventTypes(events), ["token_requested", "token_acquired"]);
    const acquired = events[1].event;
    assert.equal(acquired.expiresAt, t.expiresAt);
    assert.equal(acquired.tokenRequests, 1);
    for (const { event } of events) assert.ok(Number.isFinite(event.at), `${event.type}.at is epoch ms`);
    assertNoneContain(eventRenderings(events), {
      ...tokenForms([t.accessToken]),
      ...secretForms(OIDC_CLIENTS.post.clientId, OIDC_CLIENTS.post.clientSecret),
    });
  });

  it("1,000 concurrent getToken() on a cold manager make exactly one token request", async () => {
    const { tm } = ctx.manager();
    await concurrentGetToken(tm, 1000);
    assert.equal(ctx.as.tokenRequests(), 1);
    assert.equal(tm.status.tokenRequests, 1);
  });

  for (const { name, client } of AUTH_METHODS) {
    it(`${name}: a wrong secret is invalid_client, never retried, and never printed`, async () => {
      const wrong = { ...client, clientSecret: `wrong-${client.clientSecret}-x` };
      const { tm, events } = ctx.manager({ client: wrong });
      const err = await rejectionOf(tm.getToken());
      assertQBankError(err, "invalid_client", { status: 401, oauthError: "invalid_client" });
      await sleep(300); // room for a (forbidden) automatic retry to show up
      assert.equal(ctx.as.tokenRequests(), 1, "invalid_client is not retried automatically");
      assertNoneContain(
        { ...errorRenderings(err), ...eventRenderings(events) },
        { ...secretForms(wrong.clientId, wrong.clientSecret), ...secretForms(client.clientId, client.clientSecret) },
      );
    });
  }

  it("a scope the client may not have is invalid_scope", async () => {
    const { tm } = ctx.manager({ scope: ["balances.read", "payments.ach.write"] });
    const err = await rejectionOf(tm.getToken());
    assertQBankError(err, "invalid_scope", { status: 400, oauthError: "invalid_scope" });
    assert.equal(ctx.as.tokenRequests(), 1);
  });

  it("invalidate(token) drops only that token: an old token's late 401 keeps the newer one", async () => {
    const { tm } = ctx.manager();
    const t1 = await tm.getToken();
    const t2 = await tm.getToken({ forceRefresh: true });
    assert.equal(ctx.as.tokenRequests(), 2);

    assert.equal(tm.invalidate(t1.accessToken), false, "the old token is not the current one");
    assert.equal(tm.invalidate("never-issued-token"), false);
    assert.equal(tm.status.state, "valid");
    assert.deepEqual(await tm.getToken(), t2, "the newer token is kept");
    assert.equal(ctx.as.tokenRequests(), 2, "and no refresh was started");

    assert.equal(tm.invalidate(t2.accessToken), true, "the current token is dropped");
    assert.notEqual(tm.status.state, "valid");
    const t3 = await tm.getToken();
    assert.notEqual(t3.accessToken, t2.accessToken);
    assert.equal(ctx.as.tokenRequests(), 3, "the next getToken asks for a new one");
  });

  it("invalidate() with no token forgets the current one", async () => {
    const { tm, events } = ctx.manager();
    const t1 = await tm.getToken();
    assert.equal(tm.invalidate(), true);
    assert.ok(eventTypes(events).includes("token_invalidated"));
    const t2 = await tm.getToken();
    assert.notEqual(t2.accessToken, t1.accessToken);
    assert.equal(ctx.as.tokenRequests(), 2);
  });

  it("close(): later getToken() rejects with code closed; a closed cold manager never asks", async () => {
    const { tm, events } = ctx.manager();
    await tm.getToken();
    tm.close();
    assertQBankError(await rejectionOf(tm.getToken()), "closed");
    assertQBankError(await rejectionOf(tm.getToken({ forceRefresh: true })), "closed");
    assert.ok(eventTypes(events).includes("closed"), "a closed event");

    const cold = ctx.manager().tm;
    cold.close();
    assertQBankError(await rejectionOf(cold.getToken()), "closed");
    assert.equal(ctx.as.tokenRequests(), 1, "only the first manager's one request");
  });

  it("AbortSignal: one caller aborting gets aborted; the others get the token from the one request", async () => {
    const { tm } = ctx.manager();
    const ac = new AbortController();
    const aborted = tm.getToken({ signal: ac.signal });
    const others = Array.from({ length: 10 }, () => tm.getToken());
    ac.abort();
    assertQBankError(await rejectionOf(aborted), "aborted");
    const got = await Promise.all(others);
    assert.equal(new Set(got.map((t) => t.accessToken)).size, 1);
    assert.equal(ctx.as.tokenRequests(), 1, "the shared request was neither cancelled nor repeated");
  });

  it("AbortSignal: the only caller aborting does not cancel the shared request", async () => {
    const { tm } = ctx.manager();
    const ac = new AbortController();
    const aborted = tm.getToken({ signal: ac.signal });
    ac.abort();
    assertQBankError(await rejectionOf(aborted), "aborted");
    await tm.getToken();
    assert.equal(ctx.as.tokenRequests(), 1, "the next caller joined (or found the result of) the same request");
  });

  it("AbortSignal: an already-aborted signal rejects with aborted", async () => {
    const { tm } = ctx.manager();
    assertQBankError(await rejectionOf(tm.getToken({ signal: AbortSignal.abort() })), "aborted");
  });
});

describe("TokenManager × oidc-provider (1 s lifetime): refresh on expiry", { timeout: 30_000 }, () => {
  const short = withServer({ ttlSeconds: 1 });

  it("after expiry the token is refreshed, and 1,000 callers right after expiry share one request", async () => {
    const { tm } = short.manager({ autoRefresh: false });
    const { t: t1, window } = await timedGetToken(tm);
    assertToken(t1, { lifetimeSeconds: 1, window });
    assert.equal(short.as.tokenRequests(), 1);

    await sleep(Math.max(0, t1.expiresAt - Date.now()) + 50);
    assert.equal(tm.status.state, "expired");
    assert.equal(short.as.tokenRequests(), 1, "with autoRefresh off nothing refreshed on its own");

    const t2 = await concurrentGetToken(tm, 1000);
    assert.notEqual(t2.accessToken, t1.accessToken, "a new token");
    assert.ok(t2.expiresAt > t1.expiresAt);
    assert.equal(short.as.tokenRequests(), 2, "exactly one more token request");
    assert.equal(tm.status.state, "valid");
  });
});

describe("TokenManager × oidc-provider (2 s lifetime): timer-driven refresh ahead", { timeout: 30_000 }, () => {
  const ctx = withServer({ ttlSeconds: 2 });

  it("autoRefresh (the default) refreshes ahead of expiry with no caller waiting", async () => {
    const { tm, events } = ctx.manager();
    const t1 = await tm.getToken();
    const acquired = () => events.filter((e) => e.event.type === "token_acquired");
    await until(() => acquired().length >= 2, "a second token_acquired from the refresh timer", 5000);
    const t2 = await tm.getToken();
    assert.notEqual(t2.accessToken, t1.accessToken, "getToken serves the refreshed token");
    assert.ok(t2.expiresAt > t1.expiresAt);
  });
});

describe("TokenManager × oidc-provider (JWT access tokens, RFC 8707 resource required)", { timeout: 30_000 }, () => {
  const ctx = withServer({ ttlSeconds: 30, jwt: true, requireResource: true });

  it("expiresAt follows the JWT exp (the resource goes in extraParams)", async () => {
    const { tm } = ctx.manager();
    const { t, window } = await timedGetToken(tm);
    assertToken(t, { scope: ALLOWED_SCOPES, lifetimeSeconds: 30, window });
    const { exp, aud } = jwtPayload(t.accessToken);
    assert.equal(aud, ctx.as.resource);
    assert.ok(Math.abs(t.expiresAt - exp * 1000) <= 1500, `expiresAt ${t.expiresAt} ≈ exp ${exp} s`);
  });

  it("without expires_in, the lifetime comes from the JWT exp (not defaultLifetimeSeconds)", async () => {
    let stripped = 0;
    // A fetch that passes everything through but drops expires_in from the token response.
    const fetchWithoutExpiresIn = async (input, init) => {
      const res = await fetch(input, init);
      if (res.status !== 200) return res;
      const body = await res.json();
      if ("expires_in" in body) stripped += 1;
      delete body.expires_in;
      return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
    };
    const { tm } = ctx.manager({ fetch: fetchWithoutExpiresIn, defaultLifetimeSeconds: 3600 });
    const t = await tm.getToken();
    assert.equal(stripped, 1, "the token response went through the injected fetch");
    const { exp } = jwtPayload(t.accessToken);
    assert.ok(Math.abs(t.expiresAt - exp * 1000) <= 1500, `expiresAt ${t.expiresAt} ≈ exp ${exp} s`);
  });

  it("managers with different clients and scopes side by side never share tokens", async () => {
    const specs = [
      { client: OIDC_CLIENTS.post, scope: ["balances.read"] },
      { client: OIDC_CLIENTS.basic, scope: ["transactions.read"] },
      { client: OIDC_CLIENTS.post, scope: ["transactions.read"] },
      { client: OIDC_CLIENTS.basic, scope: [...ALLOWED_SCOPES] },
    ];
    const managers = specs.map((spec) => ({ spec, tm: ctx.manager(spec).tm }));
    // All of them at once, many callers each: every manager makes its own single request.
    const tokens = await Promise.all(managers.map(({ tm }) => concurrentGetToken(tm, 50)));
    assert.equal(ctx.as.tokenRequests(), specs.length);
    assert.equal(new Set(tokens.map((t) => t.accessToken)).size, specs.length, "all tokens differ");
    tokens.forEach((t, i) => {
      const { client, scope } = specs[i];
      const p = jwtPayload(t.accessToken);
      assert.equal(p.client_id, client.clientId, `manager ${i}: its own client's token`);
      assert.deepEqual(p.scope.split(" ").sort(), [...scope].sort(), `manager ${i}: its own scopes`);
      assert.deepEqual([...t.scope].sort(), [...scope].sort(), `manager ${i}: reported scope`);
    });
    // And again from the caches: still each its own.
    const again = await Promise.all(managers.map(({ tm }) => tm.getToken()));
    assert.deepEqual(again.map((t) => t.accessToken), tokens.map((t) => t.accessToken));
    assert.equal(ctx.as.tokenRequests(), specs.length);
  });
});
