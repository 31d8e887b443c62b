// QPay (issue 8) from JavaScript, against the local QPay sandbox (src/testing/qpay.mjs): the
// end-to-end flow (password grant → whoami → createClient with a one-time secret → a TokenManager
// on the new client → updateClientRoles → refresh across the token's boundary → deleteClient →
// invalid_client), the 300-second arithmetic of the refresh rules against the document's
// "refresh when expires_in − 30 seconds have elapsed", Keycloak's answers and error bodies, the
// Credentials API's errors, and the rule that no output, log, error, event or printed object ever
// holds the password, a client secret or a token.
//
// Fast: the 300-second schedule runs on a frozen Date.now (the package reads the clock through it);
// the real-time refresh uses 5-second tokens. Assertions never pass a secret or a token as an
// assert value, so even a failing test prints none.
import { describe, it, before, after, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { inspect } from "node:util";
import { Console } from "node:console";
import { Writable } from "node:stream";
import { randomBytes } from "node:crypto";
import { startQPay, SEED_USERS, CONSOLE_CLIENT_ID } from "../../src/testing/qpay.mjs";
import {
  PKG_URL,
  QBankError,
  assertNoneContain,
  assertQBankError,
  assertToken,
  errorRenderings,
  eventRenderings,
  eventTypes,
  managerPool,
  managerRenderings,
  rejectionOf,
  secretForms,
  sleep,
  thrownBy,
  tokenForms,
  until,
} from "./token-support.mjs";

const { QPayCredentials, qpayTokenUrl, OneTimeSecret } = await import(PKG_URL);

const user = (name) => SEED_USERS.find((u) => u.username === name);
const ISSUER = user("issuer-admin"); // issuer-banco-azul, parent proc-acme
const OTHER_ISSUER = user("issuer-other"); // issuer-banco-verde
const ODD = user("odd-chars"); // password "p:ss+w%rd é&="
const NEW_USER = user("new-user"); // required action UPDATE_PASSWORD
const WRONG_PASSWORD = `wrong-pass-${randomBytes(8).toString("hex")}`;
const WRONG_SECRET = `wrong-secret-${randomBytes(8).toString("hex")}`;
// The document's table says "typical roles": widen the issuer type so an update can change roles.
const ROLES_BY_TENANT_TYPE = { issuer: ["issuer", "issuer-reports"] };

// ---- everything this file must never show: passwords, client secrets, tokens ----

/** username → password of every sign-in attempted here (wrong ones too). */
const passwords = new Map([
  [ISSUER.username, ISSUER.password],
  [OTHER_ISSUER.username, OTHER_ISSUER.password],
  [ODD.username, ODD.password],
  [NEW_USER.username, NEW_USER.password],
  ["wrong-password", WRONG_PASSWORD],
]);
/** clientId → client secret of every client created here (from the raw answers), and wrong ones. */
const secrets = new Map([["wrong-secret", WRONG_SECRET]]);
/** Every access and refresh token the server sent (or a fault planted) in this file. */
const tokens = new Set();

function forbidden() {
  const out = { ...tokenForms(tokens) };
  for (const [name, pw] of passwords) {
    for (const [what, v] of Object.entries(secretForms(name, pw))) out[`${name}'s password: ${what}`] = v;
  }
  for (const [id, secret] of secrets) {
    for (const [what, v] of Object.entries(secretForms(id, secret))) out[`client ${id}: ${what}`] = v;
  }
  return out;
}

/** Every request handed to fetch in this file, with what came back. */
const traffic = [];

/**
 * The `fetch` of every QPayCredentials and TokenManager here: the global fetch, recording the
 * request and remembering every token and client secret in the answers, for the leak scans.
 */
async function recordingFetch(url, init = {}) {
  const entry = {
    url: String(url),
    method: (init.method ?? "GET").toUpperCase(),
    headers: Array.isArray(init.headers) ? init.headers.map(([k, v]) => [k, v]) : Object.entries(init.headers ?? {}),
    body: typeof init.body === "string" ? init.body : undefined,
  };
  traffic.push(entry);
  const res = await fetch(url, init);
  entry.status = res.status;
  entry.response = await res.clone().text();
  try {
    const j = JSON.parse(entry.response);
    for (const k of ["access_token", "refresh_token", "id_token"]) if (typeof j?.[k] === "string") tokens.add(j[k]);
    if (typeof j?.client_secret === "string") secrets.set(j.client_id ?? `client ${secrets.size}`, j.client_secret);
  } catch {
    /* not JSON: nothing to remember */
  }
  return res;
}

/** A response body planted through a fault, its token remembered for the scans. */
function plant(fields) {
  const t = `planted-${randomBytes(24).toString("base64url")}`;
  tokens.add(t);
  return JSON.stringify({ access_token: t, ...fields });
}

// What a user's logger would write: console formatting (util.format / util.inspect) into memory.
const logged = [];
const log = new Console({
  stdout: new Writable({ write: (c, _e, cb) => (logged.push(String(c)), cb()) }),
  stderr: new Writable({ write: (c, _e, cb) => (logged.push(String(c)), cb()) }),
});

// Everything this process writes to stdout and stderr (the test reporter's output included).
const written = [];
const originalWrites = [];
for (const stream of [process.stdout, process.stderr]) {
  const write = stream.write;
  originalWrites.push([stream, write]);
  stream.write = function (chunk, ...rest) {
    written.push(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));
    return write.call(this, chunk, ...rest);
  };
}

/** Every QBankError seen here, and every manager made (with its events). */
const seenErrors = [];
const seenManagers = [];

/** Checks an error's renderings, logs it like an application would, and keeps it for the final scan. */
function keep(err) {
  seenErrors.push(err);
  log.error(err);
  log.error("%s %j", err, err);
  assertNoneContain(errorRenderings(err), forbidden());
  return err;
}

/** Awaits `promise`, which must reject with a QBankError `code` and these fields; checks it is clean. */
async function expectError(promise, code, fields = {}) {
  const err = await rejectionOf(promise);
  assertQBankError(err, code, fields);
  return keep(err);
}

/** { ok: true, value } or { ok: false, error } (never throws). */
async function settle(promise) {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    return { ok: false, error };
  }
}

/** Every way a QPayCredentials gets printed or logged. */
function credentialsRenderings(creds) {
  return {
    "String(creds)": String(creds),
    "JSON.stringify(creds)": JSON.stringify(creds),
    "util.inspect(creds)": inspect(creds),
    "util.inspect(creds, showHidden)": inspect(creds, { showHidden: true, depth: Infinity }),
  };
}

/** Every way a created client (with its OneTimeSecret) or a record gets printed or logged. */
function valueRenderings(name, value) {
  return {
    [`String(${name})`]: String(value),
    [`JSON.stringify(${name})`]: JSON.stringify(value),
    [`util.inspect(${name})`]: inspect(value),
    [`util.inspect(${name}, showHidden)`]: inspect(value, { showHidden: true, depth: Infinity }),
  };
}

/** Whether two tokens are the same, without ever handing either to assert (it would print them). */
const same = (a, b) => a.accessToken === b.accessToken;

/**
 * Date.now frozen at `at` (the package reads the clock through Date.now, as does the in-process
 * server). Timers are untouched. restore() puts the real clock back.
 */
function freezeClock(at = Date.now()) {
  const real = Date.now;
  let now = at;
  Date.now = () => now;
  return {
    get now() {
      return now;
    },
    set(t) {
      now = t;
    },
    advance(ms) {
      now += ms;
    },
    restore() {
      Date.now = real;
    },
  };
}

/** Polls `predicate` every 10 ms of real time (works with a frozen Date.now), at most `maxMs`. */
async function waitFor(predicate, what, maxMs = 5000) {
  for (let waited = 0; !predicate(); waited += 10) {
    if (waited >= maxMs) assert.fail(`timed out after ${maxMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

describe("QPay × local QPay sandbox", { timeout: 60_000 }, () => {
  let qp;
  let place; // { baseUrl, allowInsecureHttp, fetch }
  let tokenUrl;
  const pool = managerPool();

  before(async () => {
    qp = await startQPay({ rolesByTenantType: ROLES_BY_TENANT_TYPE });
    place = { baseUrl: qp.url, allowInsecureHttp: true, fetch: recordingFetch };
    tokenUrl = qpayTokenUrl({ baseUrl: qp.url, allowInsecureHttp: true });
  });
  beforeEach(() => qp.control.reset({ all: true }));
  afterEach(() => pool.closeAll());
  after(async () => {
    pool.closeAll();
    if (qp) {
      log.log("server counters %j, clients %j", qp.control.counters(), qp.control.clients());
      await qp.close();
    }
  });

  const counters = () => qp.control.counters();
  const grants = (grant) => counters().tokenRequestsByGrant[grant] ?? 0;
  const signIn = (u, extra = {}) => QPayCredentials.signIn({ ...place, username: u.username, password: u.password, ...extra });

  /** A TokenManager for a QPay client, on the realm's token URL, recorded for the final scan. */
  function manager(clientId, clientSecret, options = {}) {
    const m = pool.make({ tokenUrl, clientId, clientSecret, fetch: recordingFetch, ...options });
    seenManagers.push(m);
    return m;
  }

  /** Signs `u` in and creates a client; returns { creds, created, secret } with the secret revealed. */
  async function newClient(u = ISSUER, roles = ["issuer"]) {
    const creds = await signIn(u);
    const me = await creds.whoami();
    const created = await creds.createClient({ tenantId: me.tenantId, name: `test-${randomBytes(3).toString("hex")}`, roles });
    const secret = created.clientSecret.reveal();
    secrets.set(created.clientId, secret);
    return { creds, created, secret };
  }

  // ---------------------------------------------------------------------------------------------
  describe("the issue's end-to-end flow", () => {
    it("password grant → whoami → createClient (one-time secret) → TokenManager on qpayTokenUrl → updateClientRoles → background refresh before expiry → deleteClient → invalid_client", async () => {
      // 1. Password grant (public client qpay-console); the user token lives 300 s here.
      const start = traffic.length;
      const signSent = Date.now();
      const creds = await signIn(ISSUER);
      const signReceived = Date.now();
      assert.ok(creds instanceof QPayCredentials);
      const pw = traffic.slice(start).filter((t) => t.url === qp.tokenUrl);
      assert.equal(pw.length, 1, "one token request for the sign-in");
      const form = new URLSearchParams(pw[0].body);
      assert.equal(form.get("grant_type"), "password");
      assert.equal(form.get("client_id"), CONSOLE_CLIENT_ID);
      assert.equal(form.get("username"), ISSUER.username);
      assert.ok(form.get("password") === ISSUER.password, "the password is sent in the form body");
      assert.equal(form.has("client_secret"), false, "qpay-console is a public client");
      // 5 minutes, used until 90 % of it (measured from the moment the request was sent).
      assert.ok(
        creds.expiresAt >= signSent + 270_000 && creds.expiresAt <= signReceived + 270_000,
        `expiresAt is 270 s after the sign-in (got ${creds.expiresAt - signSent} ms after sending)`,
      );
      assertNoneContain(credentialsRenderings(creds), forbidden());
      log.log(creds);

      // 2. whoami
      const me = await creds.whoami();
      assert.deepEqual({ ...me }, { tenantType: "issuer", tenantId: "issuer-banco-azul", parentTenantId: "proc-acme" });
      assert.deepEqual(await creds.roles(), ["issuer", "issuer-reports"]);

      // 3. createClient: the secret is a OneTimeSecret that shows nothing until revealed, once.
      const created = await creds.createClient({ tenantId: me.tenantId, name: "e2e-integration", roles: ["issuer"] });
      assert.deepEqual(Object.keys(created).sort(), ["clientId", "clientSecret", "id", "tenantId"]);
      assert.equal(typeof created.id, "string");
      assert.equal(typeof created.clientId, "string");
      assert.equal(created.tenantId, "issuer-banco-azul");
      const oneTime = created.clientSecret;
      assert.ok(oneTime instanceof OneTimeSecret, "clientSecret is a OneTimeSecret");
      assert.equal(oneTime.revealed, false);
      assert.equal(String(oneTime), "[redacted]");
      assert.equal(`${oneTime}`, "[redacted]");
      assert.equal(JSON.stringify(oneTime), '"[redacted]"');
      assert.equal(inspect(oneTime), "OneTimeSecret [redacted]");
      assert.deepEqual(Object.keys(oneTime), [], "no enumerable field holds the value");
      assert.equal(JSON.parse(JSON.stringify(created)).clientSecret, "[redacted]");
      assert.ok(secrets.has(created.clientId), "the raw answer carried the secret (recorded for the scans)");
      const before = { ...valueRenderings("created", created), ...valueRenderings("clientSecret", oneTime) };
      assertNoneContain(before, forbidden());
      log.log(created);
      log.log("created %j", created);

      const secret = oneTime.reveal();
      assert.ok(typeof secret === "string" && secret.length >= 16, "reveal() gives the secret");
      assert.ok(secret === secrets.get(created.clientId), "reveal() gives exactly the secret QPay sent");
      assert.equal(oneTime.revealed, true);
      const consumed = keep(thrownBy(() => oneTime.reveal()));
      assertQBankError(consumed, "secret_consumed");
      assert.match(consumed.message, /delete the client and create a new one/);
      assert.equal(String(oneTime), "[redacted]", "still redacted after reveal");
      assertNoneContain({ ...valueRenderings("created after reveal", created), ...valueRenderings("clientSecret after reveal", oneTime) }, forbidden());

      // 4. A TokenManager on the realm's token URL with the new client obtains a token. From here
      // on the server issues 5-second tokens, so the refresh can be seen in real time.
      assert.equal(tokenUrl, qp.tokenUrl, "qpayTokenUrl builds {base}/auth/realms/qpay/protocol/openid-connect/token");
      qp.control.setLifetime(5);
      const L = 5_000;
      const { tm, events } = manager(created.clientId, secret);
      // A second manager for the same client, without the timer: it must wait for a new token
      // once inside the margin.
      const lazy = manager(created.clientId, secret, { autoRefresh: false });
      const sent = Date.now();
      const [t1, lazy1] = await Promise.all([tm.getToken(), lazy.tm.getToken()]);
      const received = Date.now();
      assertToken(t1, { lifetimeSeconds: 5, window: [sent, received] });
      assert.equal(grants("client_credentials"), 2);
      assert.equal(counters().tokenSuccessesByGrant.client_credentials, 2);
      const cc = traffic.slice(start).filter((t) => t.url === qp.tokenUrl && new URLSearchParams(t.body).get("grant_type") === "client_credentials");
      assert.equal(cc.length, 2);
      assert.equal(new URLSearchParams(cc[0].body).get("client_id"), created.clientId);
      const intro1 = qp.control.introspect(t1.accessToken);
      assert.equal(intro1.active, true);
      assert.equal(intro1.kind, "client");
      assert.equal(intro1.client_id, created.clientId);
      assert.deepEqual(intro1.roles.filter((r) => !r.startsWith("default-roles")), ["issuer"]);

      // 5. updateClientRoles, seen by getClient and carried by tokens issued afterwards.
      const updated = await creds.updateClientRoles(created.id, ["issuer", "issuer-reports"]);
      assert.deepEqual(updated.roles, ["issuer", "issuer-reports"]);
      const record = await creds.getClient(created.id);
      assert.deepEqual(
        { ...record },
        { id: created.id, clientId: created.clientId, tenantId: "issuer-banco-azul", name: "e2e-integration", roles: ["issuer", "issuer-reports"] },
      );
      assertNoneContain({ ...valueRenderings("record", record), ...valueRenderings("updated", updated) }, forbidden());
      assert.deepEqual(qp.control.introspect(t1.accessToken).roles.filter((r) => !r.startsWith("default-roles")), ["issuer"], "a token keeps the roles it was issued with");

      // 6. Across the boundary: five callers ask every 15 ms; the timer refreshes in the background
      // between L − L/4 (3.75 s, jittered up to 5 % of that window earlier) and the wait point
      // L − L/10 (4.5 s), so no caller ever waits or gets a token the server would refuse.
      const handed = [];
      let stop = false;
      const pollers = Array.from({ length: 5 }, async () => {
        while (!stop) {
          const callStart = Date.now();
          const t = await tm.getToken();
          const at = Date.now();
          handed.push({ t, callStart, at, live: qp.control.introspect(t.accessToken).active });
          await sleep(15);
        }
      });
      try {
        await until(() => eventTypes(events).filter((e) => e === "token_acquired").length >= 2, "the background refresh", 8_000);
        await sleep(200);
      } finally {
        stop = true;
        await Promise.all(pollers);
      }
      assert.deepEqual(eventTypes(events), ["token_requested", "token_acquired", "token_requested", "token_acquired"]);
      const [first, , refresh, acquired] = events.map((e) => e.event);
      assert.equal(first.background, false, "the first token: a caller waited for it");
      assert.equal(refresh.background, true, "the refresh: nobody waited for it");
      const refreshAt = t1.expiresAt - L / 4; // 3.75 s after sending
      const jitter = Math.floor(((L / 4) * 50) / 1000); // at most 5 % of the refresh window earlier
      const waitAt = t1.expiresAt - L / 10; // 4.5 s: the margin is a tenth of a 5 s lifetime
      assert.ok(refresh.at >= refreshAt - jitter - 5, `the refresh started ${t1.expiresAt - refresh.at} ms before expiry: not before ${L / 4 + jitter} ms`);
      assert.ok(acquired.at < waitAt, `the new token arrived ${t1.expiresAt - acquired.at} ms before expiry, before the ${L / 10} ms margin`);
      assert.equal(tm.status.tokenRequests, 2, "one request for the first token, exactly one for the refresh");
      assert.equal(grants("client_credentials"), 3, "the server saw exactly one more token request");
      assert.ok(handed.length >= 50, `the callers asked often (${handed.length} calls)`);
      const expired = handed.filter((h) => !(h.at < h.t.expiresAt));
      assert.equal(expired.length, 0, `${expired.length} of ${handed.length} calls got a token past its expiresAt`);
      const refused = handed.filter((h) => !h.live);
      assert.equal(refused.length, 0, `${refused.length} of ${handed.length} calls got a token the server no longer accepts`);
      const slow = handed.filter((h) => h.at - h.callStart > 250);
      assert.equal(slow.length, 0, `${slow.length} calls waited more than 250 ms: a caller waited for the refresh`);
      const distinct = [...new Set(handed.map((h) => h.t.accessToken))];
      assert.equal(distinct.length, 2, "the callers saw the first token, then the refreshed one");
      const t2 = await tm.getToken();
      assert.ok(!same(t2, t1), "the cached token is the refreshed one");
      assert.ok(t2.expiresAt > t1.expiresAt);
      const intro2 = qp.control.introspect(t2.accessToken);
      assert.equal(intro2.active, true);
      assert.deepEqual(intro2.roles.filter((r) => !r.startsWith("default-roles")), ["issuer", "issuer-reports"], "a token issued after the update carries the new roles");

      // The manager without the timer, asked inside its margin (after L − L/10, before L): its
      // callers wait for one new token; they never get the one about to expire.
      const delay = lazy1.expiresAt - 300 - Date.now();
      if (delay > 0) await sleep(delay);
      const askedAt = Date.now();
      assert.ok(askedAt >= lazy1.expiresAt - L / 10, "asked inside the margin");
      const lazyAll = await Promise.all(Array.from({ length: 5 }, () => lazy.tm.getToken()));
      assert.ok(lazyAll.every((t) => same(t, lazyAll[0])), "5 concurrent callers share one new token");
      assert.ok(!same(lazyAll[0], lazy1), "inside the margin the old token is not handed out");
      assert.ok(lazyAll[0].expiresAt >= askedAt + L);
      assert.equal(lazy.tm.status.tokenRequests, 2, "exactly one token request for the five waiting callers");
      assert.deepEqual(eventTypes(lazy.events), ["token_requested", "token_acquired", "token_requested", "token_acquired"]);
      assert.equal(lazy.events[2].event.background, false, "they waited for it");
      assert.equal(grants("client_credentials"), 4);

      // 7. deleteClient: the record is gone and the next token request is invalid_client.
      assert.equal(await creds.deleteClient(created.id), undefined);
      await expectError(creds.getClient(created.id), "not_found", { status: 404 });
      assert.equal(qp.control.clients().length, 0);
      assert.equal(qp.control.introspect(t2.accessToken).active, false, "the server killed the deleted client's tokens");
      const forced = await settle(tm.getToken({ forceRefresh: true }));
      assert.equal(grants("client_credentials"), 5, "forceRefresh sent a token request");
      assert.equal(counters().tokenErrors.invalid_client, 1, "the server answered it with invalid_client");
      const failed = events.map((e) => e.event).filter((e) => e.type === "token_refresh_failed");
      assert.deepEqual(failed.map((e) => [e.code, e.background]), [["invalid_client", false]]);
      // The same request from a manager whose cached token was dropped (after an API 401):
      lazy.tm.invalidate();
      await expectError(lazy.tm.getToken(), "invalid_client", { status: 401, oauthError: "invalid_client", mayHaveReachedServer: true });

      // Nothing printed, logged or emitted holds the password, the secret or a token.
      const never = forbidden();
      assertNoneContain(managerRenderings(tm), never);
      assertNoneContain(managerRenderings(lazy.tm), never);
      assertNoneContain(eventRenderings(events), never);
      assertNoneContain(eventRenderings(lazy.events), never);
      assertNoneContain(credentialsRenderings(creds), never);
      assertNoneContain(valueRenderings("token", t2), never);
      log.log(t2, tm, lazy.tm, creds, events);
      assertNoneContain({ logged: logged.join("") }, never);
      // The password went only to the token endpoint, the secret only there too, and neither in a URL.
      for (const t of traffic) {
        assert.ok(!t.url.includes(ISSUER.password) && !t.url.includes(secret), `no secret in the URL of ${t.method} ${t.url}`);
        if (t.url !== qp.tokenUrl) {
          assertNoneContain(
            { [`${t.method} ${t.url} body`]: t.body, [`${t.method} ${t.url} headers`]: JSON.stringify(t.headers) },
            Object.fromEntries(Object.entries(never).filter(([k]) => !k.startsWith("access token"))),
          );
        }
      }

      // What every caller of getToken({ forceRefresh: true }) gets:
      if (forced.ok) {
        assert.fail(
          `getToken({ forceRefresh: true }) after deleteClient resolved instead of rejecting with invalid_client: ` +
            `it handed back ${same(forced.value, t2) ? "the previously cached token, which the server has already revoked" : "a token"} ` +
            `(status: ${JSON.stringify(tm.status)})`,
        );
      }
      keep(forced.error);
      assertQBankError(forced.error, "invalid_client", { status: 401, oauthError: "invalid_client" });
      assert.match(forced.error.message, /check the client id and secret/);
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe("a 300-second token against the document's “refresh when expires_in − 30 seconds have elapsed”", () => {
    it("qpayTokenUrl: the realm path from a base URL and realm; loopback http only when allowed", () => {
      assert.equal(qpayTokenUrl(), "https://sandbox.qpay.quecto.com.br/auth/realms/qpay/protocol/openid-connect/token");
      assert.equal(qpayTokenUrl({ baseUrl: "https://id.example.com/", realm: "acme" }), "https://id.example.com/auth/realms/acme/protocol/openid-connect/token");
      assert.equal(qpayTokenUrl({ baseUrl: qp.url, allowInsecureHttp: true }), qp.tokenUrl);
      assertQBankError(thrownBy(() => qpayTokenUrl({ baseUrl: qp.url })), "config");
      assertQBankError(thrownBy(() => qpayTokenUrl({ baseUrl: "http://example.com", allowInsecureHttp: true })), "config");
      assertQBankError(thrownBy(() => qpayTokenUrl({ realm: "a/b" })), "config");
      // A dot segment would resolve to another path of the origin ({base}/auth/protocol/…), as
      // for client record ids.
      for (const realm of [".", ".."]) {
        const err = thrownBy(() => qpayTokenUrl({ realm }));
        assertQBankError(err, "config");
        assert.match(err.message, /realm must be a non-empty name other than \. or \.\./);
      }
      assert.equal(qpayTokenUrl({ realm: "..." }), "https://sandbox.qpay.quecto.com.br/auth/realms/.../protocol/openid-connect/token");
      assertQBankError(thrownBy(() => qpayTokenUrl({ relm: "qpay" })), "config");
    });

    it("frozen clock: the cached token until 221.25 s, a background refresh from 225 s, callers wait from exactly 270 s = expires_in − 30", async () => {
      const { secret, created } = await newClient();
      const clock = freezeClock();
      try {
        const T0 = clock.now;
        // Three managers, each with a token sent at T0 (the server's default 300 s).
        const [a, b, c] = [0, 1, 2].map(() => manager(created.clientId, secret));
        const [ta, tb, tc] = await Promise.all([a.tm.getToken(), b.tm.getToken(), c.tm.getToken()]);
        const answer = JSON.parse(traffic.at(-1).response);
        assert.equal(answer.expires_in, 300, "QPay's tokens live 300 s");
        for (const [m, t] of [[a, ta], [b, tb], [c, tc]]) {
          assert.equal(t.expiresAt - T0, 300_000, "expiresAt = sent + expires_in");
          assert.equal(m.tm.status.expiresAt, t.expiresAt);
          assert.equal(m.tm.status.state, "valid");
          assert.equal(m.tm.status.tokenRequests, 1);
        }
        // The schedule, for L = 300 s: refresh ahead min(300 s, L/4) = 75 s → 225 s (jitter moves
        // it at most 5 % of 75 s = 3.75 s earlier); margin min(30 s, L/10) = 30 s → wait from 270 s,
        // which is the document's expires_in − 30. The refresh starts 45 s before that.
        const L = 300_000;
        const refreshFrom = L - Math.min(300_000, L / 4);
        const waitFrom = L - Math.min(30_000, L / 10);
        assert.deepEqual([refreshFrom, waitFrom], [225_000, 270_000]);
        assert.equal(waitFrom, (answer.expires_in - 30) * 1000, "the wait point is the document's expires_in − 30");

        // Before 221.25 s: the cached token, nothing sent.
        for (const at of [1, 60_000, 200_000, 221_249]) {
          clock.set(T0 + at);
          assert.ok(same(await a.tm.getToken(), ta), `at ${at} ms: the cached token`);
        }
        assert.equal(a.tm.status.tokenRequests, 1);
        assert.deepEqual(eventTypes(a.events), ["token_requested", "token_acquired"]);

        // At 225 s: the cached token at once, and exactly one background request for 10 callers.
        clock.set(T0 + 225_000);
        const at225 = await Promise.all(Array.from({ length: 10 }, () => a.tm.getToken()));
        assert.ok(at225.every((t) => same(t, ta)), "callers still get the cached token at once");
        assert.equal(a.tm.status.tokenRequests, 2, "one refresh for ten callers");
        assert.equal(a.events[2].event.type, "token_requested");
        assert.equal(a.events[2].event.background, true);
        await waitFor(() => eventTypes(a.events).length === 4, "the background refresh to complete");
        assert.equal(a.events[3].event.type, "token_acquired");
        const ta2 = await a.tm.getToken();
        assert.ok(!same(ta2, ta), "the refreshed token is cached");
        assert.equal(ta2.expiresAt, T0 + 225_000 + 300_000);
        assert.equal(a.tm.status.expiresAt, ta2.expiresAt);
        assert.equal(a.tm.status.tokenRequests, 2);

        // At 269.999 s the old token is still handed out (and refreshed behind the caller)...
        clock.set(T0 + 269_999);
        assert.ok(same(await b.tm.getToken(), tb), "at 269.999 s: the cached token");
        assert.equal(b.events.at(-1).event.background, true);
        // ...and from 270 s no caller gets it: they wait for one new token.
        clock.set(T0 + 270_000);
        const at270 = await Promise.all(Array.from({ length: 10 }, () => c.tm.getToken()));
        assert.ok(at270.every((t) => same(t, at270[0])), "ten callers share one new token");
        assert.ok(!same(at270[0], tc), "at 270 s the old token is no longer handed out");
        assert.equal(at270[0].expiresAt, T0 + 270_000 + 300_000);
        assert.equal(c.tm.status.tokenRequests, 2, "exactly one token request");
        assert.deepEqual(
          c.events.map((e) => [e.event.type, e.event.background]),
          [["token_requested", false], ["token_acquired", undefined], ["token_requested", false], ["token_acquired", undefined]],
          "the callers waited for it",
        );
        assertNoneContain({ ...eventRenderings(a.events), ...eventRenderings(b.events), ...eventRenderings(c.events) }, forbidden());
      } finally {
        clock.restore();
      }
    });

    it("frozen clock: the lifetime counts from the moment the request was sent, so a slow answer only widens the margin", async () => {
      const { secret, created } = await newClient();
      const clock = freezeClock();
      try {
        // The answer takes 2 s to arrive.
        const slowFetch = async (url, init) => {
          clock.advance(2_000);
          return recordingFetch(url, init);
        };
        const { tm } = manager(created.clientId, secret, { fetch: slowFetch });
        const sentAt = clock.now;
        const t = await tm.getToken();
        assert.equal(clock.now - sentAt, 2_000);
        assert.equal(t.expiresAt, sentAt + 300_000, "sent + 300 s, not received + 300 s");
        clock.set(sentAt + 269_999);
        assert.ok(same(await tm.getToken(), t), "still handed out at 269.999 s after sending");
        clock.set(sentAt + 270_000);
        const fresh = await tm.getToken();
        assert.ok(!same(fresh, t), "callers wait from 270 s after sending (268 s after the answer arrived)");
      } finally {
        clock.restore();
      }
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe("Keycloak", () => {
    it("its answers (refresh_expires_in, not-before-policy, session_state, refresh_token, lower-case bearer) are accepted by signIn and TokenManager", async () => {
      const start = traffic.length;
      const { creds, created, secret } = await newClient();
      const answers = traffic.slice(start).filter((t) => t.url === qp.tokenUrl).map((t) => JSON.parse(t.response));
      assert.equal(answers.length, 1);
      assert.deepEqual(Object.keys(answers[0]), ["access_token", "expires_in", "refresh_expires_in", "refresh_token", "token_type", "not-before-policy", "session_state", "scope"]);
      const { tm } = manager(created.clientId, secret);
      const sent = Date.now();
      const first = await tm.getToken();
      assertToken(first, { lifetimeSeconds: 300, window: [sent, Date.now()] });
      const cc = JSON.parse(traffic.at(-1).response);
      assert.deepEqual(Object.keys(cc), ["access_token", "expires_in", "refresh_expires_in", "token_type", "not-before-policy", "session_state", "scope"]);
      assert.equal(cc.refresh_expires_in, 0);

      // After a realm "not-before" push the answers carry a non-zero not-before-policy, and the
      // realm may be configured to say "bearer".
      qp.control.revoke();
      qp.control.configure({ tokenType: "bearer" });
      const again = await signIn(ISSUER);
      assert.ok(JSON.parse(traffic.at(-1).response)["not-before-policy"] > 0);
      assert.equal(JSON.parse(traffic.at(-1).response).token_type, "bearer");
      assert.equal((await again.whoami()).tenantId, "issuer-banco-azul");
      const t = await tm.getToken({ forceRefresh: true });
      assert.equal(t.tokenType, "Bearer");
      assert.equal(qp.control.introspect(t.accessToken).active, true);

      // A full answer with everything Keycloak may add (id_token, upgraded scope, numbers as numbers).
      const kc = (extra) =>
        plant({
          expires_in: 300,
          refresh_expires_in: 1800,
          refresh_token: "planted-refresh-token",
          token_type: "Bearer",
          id_token: "planted-id-token",
          "not-before-policy": 1732000000,
          session_state: "0f0e0d0c-0b0a-0908-0706-050403020100",
          scope: "openid profile email",
          ...extra,
        });
      tokens.add("planted-refresh-token");
      tokens.add("planted-id-token");
      qp.control.addFault({ target: "token", status: 200, body: kc({}) });
      const planted = await signIn(ISSUER);
      assert.ok(planted.expiresAt > Date.now() + 260_000);
      qp.control.addFault({ target: "token", status: 200, body: kc({ refresh_expires_in: 0 }) });
      const p = await tm.getToken({ forceRefresh: true });
      assert.deepEqual([...p.scope], ["openid", "profile", "email"]);
      assertNoneContain({ ...credentialsRenderings(creds), ...credentialsRenderings(planted), ...valueRenderings("token", p) }, forbidden());
    });

    it("client_secret_basic works against the realm too", async () => {
      const { created, secret } = await newClient();
      const { tm } = manager(created.clientId, secret, { authMethod: "client_secret_basic" });
      const t = await tm.getToken();
      assert.equal(counters().lastTokenRequest.authMethod, "basic");
      assert.equal(qp.control.introspect(t.accessToken).client_id, created.clientId);
    });

    it("the odd-chars user (: + % é & = and a space in the password) signs in: the form body is encoded", async () => {
      const creds = await signIn(ODD);
      const body = traffic.at(-1).body;
      assert.ok(new URLSearchParams(body).get("password") === ODD.password, "the password decodes back exactly");
      assert.ok(!body.includes(ODD.password), "the raw password is not in the body unencoded");
      assert.deepEqual({ ...(await creds.whoami()) }, { tenantType: "issuer", tenantId: "issuer-banco-azul", parentTenantId: "proc-acme" });
      assert.equal((await creds.roles()).length, 2);
      assertNoneContain(credentialsRenderings(creds), forbidden());
    });

    it("error bodies map to our codes: invalid_grant (wrong password, unknown user, required actions), unauthorized_client, invalid_client", async () => {
      const desc = (err) => err.oauthErrorDescription;
      let err = await expectError(QPayCredentials.signIn({ ...place, username: ISSUER.username, password: WRONG_PASSWORD }), "invalid_grant", {
        status: 401,
        oauthError: "invalid_grant",
        mayHaveReachedServer: true,
      });
      assert.equal(desc(err), "Invalid user credentials");
      assert.match(err.message, /check the username and password/);
      err = await expectError(QPayCredentials.signIn({ ...place, username: "nobody-here", password: WRONG_PASSWORD }), "invalid_grant", { status: 401 });
      // A user who never signed in to set a password (the document's prerequisite).
      err = await expectError(signIn(NEW_USER), "invalid_grant", { status: 400, oauthError: "invalid_grant" });
      assert.equal(desc(err), "Account is not fully set up");
      // Keycloak finds user names case-insensitively; a near miss of the odd password is refused.
      await signIn({ username: ODD.username.toUpperCase(), password: ODD.password });
      err = await expectError(QPayCredentials.signIn({ ...place, username: ODD.username, password: `${ODD.password} ` }), "invalid_grant", { status: 401 });

      // The password grant for a client without direct access grants (Keycloak's body, planted: the
      // sandbox checks a confidential client's secret first, and signIn never sends one).
      qp.control.addFault({
        target: "token",
        status: 400,
        body: JSON.stringify({ error: "unauthorized_client", error_description: "Client not allowed for direct access grants" }),
      });
      err = await expectError(signIn(ISSUER), "unauthorized_client", { status: 400, oauthError: "unauthorized_client" });
      assert.equal(desc(err), "Client not allowed for direct access grants");
      assert.match(err.message, /not allowed to use the requested grant/);
      // client_credentials with the public console client.
      err = await expectError(manager(CONSOLE_CLIENT_ID, WRONG_SECRET).tm.getToken(), "unauthorized_client", { status: 401, oauthError: "unauthorized_client" });
      assert.equal(desc(err), "Public client not allowed to retrieve service account");
      // An unknown (or deleted) client.
      err = await expectError(manager("no-such-client", WRONG_SECRET).tm.getToken(), "invalid_client", { status: 401, oauthError: "invalid_client" });
      assert.equal(desc(err), "Invalid client or Invalid client credentials");
    });

    it("a wrong client secret (Keycloak: 401 unauthorized_client \"Invalid client or Invalid client credentials\") is invalid_client: check the id and secret", async () => {
      const { created } = await newClient();
      const err = keep(await rejectionOf(manager(created.clientId, WRONG_SECRET).tm.getToken()));
      assert.ok(err instanceof QBankError);
      assert.equal(err.oauthError, "unauthorized_client", "Keycloak's own code is kept in oauthError");
      assert.equal(err.oauthErrorDescription, "Invalid client or Invalid client credentials");
      assert.equal(err.status, 401);
      // Older Keycloak: 400 unauthorized_client "Invalid client credentials" for an unknown client.
      qp.control.configure({ legacyClientErrors: true });
      const legacy = keep(await rejectionOf(manager("no-such-client", WRONG_SECRET).tm.getToken()));
      assert.equal(legacy.oauthError, "unauthorized_client");
      assert.equal(legacy.oauthErrorDescription, "Invalid client credentials");
      assert.equal(legacy.status, 400);
      const wrong = [
        ["a wrong secret (401)", err],
        ["older Keycloak's unknown client (400)", legacy],
      ].filter(([, e]) => e.code !== "invalid_client" || !/check the client id and secret/.test(e.message));
      assert.deepEqual(
        wrong.map(([what, e]) => `${what}: ${e.code}: ${e.message}`),
        [],
        "refused client credentials are invalid_client (check the client id and secret; never retried in the background)",
      );
    });

    it("a server that echoes the password or the secret in its error text: scrubbed from every error", async () => {
      const echo = (value) =>
        JSON.stringify({
          error: "invalid_grant",
          error_description: `bad ${value} / ${encodeURIComponent(value)} / ${new URLSearchParams({ p: value }).toString().slice(2)}`,
        });
      qp.control.addFault({ target: "token", status: 401, body: echo(ODD.password) });
      await expectError(signIn(ODD), "invalid_grant", { status: 401 });
      const { created, secret } = await newClient();
      qp.control.addFault({ target: "token", status: 401, body: echo(secret) });
      await expectError(manager(created.clientId, secret).tm.getToken(), "invalid_grant", { status: 401 });
    });

    it("an expired user token: unauthorized with “sign in again”, from the server (its clock moved 5 minutes) and locally (90 % of the lifetime), then a new sign-in works", async () => {
      // The server's clock passes the token's 300 s; ours does not: the server answers 401.
      const creds = await signIn(ISSUER);
      qp.control.advanceClock(300_000);
      let err = await expectError(creds.whoami(), "unauthorized", { status: 401, mayHaveReachedServer: true });
      assert.match(err.message, /sign in again/);
      assert.match(err.message, /5 minutes/);
      assert.equal(counters().apiByStatus["401"], 1);
      qp.control.setClockOffset(0);

      // Our clock passes 90 % of the lifetime (270 s): nothing is sent any more.
      const clock = freezeClock();
      try {
        const T0 = clock.now;
        const late = await signIn(ISSUER);
        assert.equal(late.expiresAt, T0 + 270_000);
        clock.set(T0 + 269_999);
        assert.equal((await late.whoami()).tenantId, "issuer-banco-azul");
        const apiBefore = counters().apiRequests;
        clock.set(T0 + 270_000);
        for (const call of [
          () => late.whoami(),
          () => late.roles(),
          () => late.createClient({ tenantId: "issuer-banco-azul", name: "late", roles: ["issuer"] }),
          () => late.getClient("any"),
          () => late.listClients(),
          () => late.updateClientRoles("any", ["issuer"]),
          () => late.deleteClient("any"),
        ]) {
          err = await expectError(call(), "unauthorized", { mayHaveReachedServer: false });
          assert.match(err.message, /sign in again/);
          assert.match(err.message, /nothing was sent/);
        }
        assert.equal(counters().apiRequests, apiBefore, "nothing was sent");
        // Signing in again is the way out.
        const fresh = await signIn(ISSUER);
        assert.equal((await fresh.whoami()).tenantId, "issuer-banco-azul");
      } finally {
        clock.restore();
      }

      // The same in real time, with 1-second user tokens (used until 0.9 s).
      qp.control.setLifetime(1);
      const sent = Date.now();
      const short = await signIn(ISSUER);
      assert.ok(short.expiresAt >= sent + 900 && short.expiresAt <= Date.now() + 900);
      await sleep(Math.max(0, short.expiresAt - Date.now()) + 20);
      const apiBefore = counters().apiRequests;
      err = await expectError(short.whoami(), "unauthorized", { mayHaveReachedServer: false });
      assert.match(err.message, /sign in again/);
      assert.equal(counters().apiRequests, apiBefore);
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe("listClients (GET /credentials/clients)", () => {
    it("this tenant's clients as typed plain objects { id, clientId, tenantId, name, roles }, never a secret; another tenant's are not listed", async () => {
      const creds = await signIn(ISSUER);
      assert.deepEqual(await creds.listClients(), [], "none yet");
      const { created: a } = await newClient();
      const { created: b } = await newClient(ISSUER, ["issuer", "issuer-reports"]);
      await newClient(OTHER_ISSUER);
      const list = await creds.listClients();
      const record = async (c) => ({ ...(await creds.getClient(c.id)) });
      assert.deepEqual(list, [await record(a), await record(b)]);
      assert.deepEqual(list[1].roles, ["issuer", "issuer-reports"]);
      for (const c of list) {
        assert.equal(Object.getPrototypeOf(c), Object.prototype, "a plain object");
        assert.deepEqual(Object.keys(c), ["id", "clientId", "tenantId", "name", "roles"]);
        assert.equal(c.tenantId, "issuer-banco-azul");
      }
      assertNoneContain(valueRenderings("list", list), forbidden());
      assert.deepEqual(counters().apiByRoute["GET /credentials/clients"], { 200: 2 });
      const get = traffic.filter((t) => t.method === "GET" && t.url === `${qp.url}/credentials/clients`);
      assert.equal(get.length, 2, "GET {baseUrl}/credentials/clients");
      assert.ok(get.every((t) => t.body === undefined));
    });

    it("a secret in QPay's answer (client_secret, clientSecret, secret; array or under clients) is dropped", async () => {
      const creds = await signIn(ISSUER);
      const leaked = `leaked-secret-${randomBytes(12).toString("hex")}`;
      secrets.set("listed-client", leaked);
      const record = { id: "r-1", client_id: "listed-client", client_secret: leaked, clientSecret: leaked, secret: leaked, tenant_id: "issuer-banco-azul", name: "n", roles: ["issuer"] };
      qp.control.addFault({ target: "api", status: 200, body: JSON.stringify([record]) });
      qp.control.addFault({ target: "api", status: 200, body: JSON.stringify({ clients: [{ id: "r-2", clientId: "listed-client", clientSecret: leaked, tenantId: "issuer-banco-azul" }] }) });
      const list = await creds.listClients();
      assert.deepEqual(list, [{ id: "r-1", clientId: "listed-client", tenantId: "issuer-banco-azul", name: "n", roles: ["issuer"] }]);
      const camel = await creds.listClients();
      assert.deepEqual(camel, [{ id: "r-2", clientId: "listed-client", tenantId: "issuer-banco-azul" }]);
      assertNoneContain({ ...valueRenderings("list", list), ...valueRenderings("camel", camel) }, forbidden());
    });

    it("errors map like the other Credentials API calls: 401 unauthorized, 403 forbidden, 429 rate_limited, 5xx server_error, an answer that is no list invalid_response", async () => {
      const creds = await signIn(ISSUER);
      for (const [fault, code, fields] of [
        [{ status: 403, body: JSON.stringify({ error: "forbidden", error_description: "not for you" }) }, "forbidden", { status: 403 }],
        [{ status: 429, body: "" }, "rate_limited", { status: 429 }],
        [{ status: 503, body: "" }, "server_error", { status: 503, mayHaveReachedServer: true }],
        [{ status: 200, body: JSON.stringify({ items: [] }) }, "invalid_response", { mayHaveReachedServer: true }],
        [{ status: 200, body: JSON.stringify([{ id: "r-1" }]) }, "invalid_response", {}],
        [{ status: 200, body: "" }, "invalid_response", {}],
      ]) {
        qp.control.addFault({ target: "api", ...fault });
        await expectError(creds.listClients(), code, fields);
      }
      qp.control.advanceClock(300_000);
      const err = await expectError(creds.listClients(), "unauthorized", { status: 401, mayHaveReachedServer: true });
      assert.match(err.message, /sign in again/);
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe("Credentials API errors", () => {
    it("getClient of an unknown id, or of another tenant's client: not_found (404)", async () => {
      const creds = await signIn(ISSUER);
      await expectError(creds.getClient("00000000-0000-0000-0000-000000000000"), "not_found", { status: 404, mayHaveReachedServer: true });
      const { created: theirs } = await newClient(OTHER_ISSUER);
      await expectError(creds.getClient(theirs.id), "not_found", { status: 404 });
      await expectError(creds.updateClientRoles(theirs.id, ["issuer"]), "not_found", { status: 404 });
      await expectError(creds.deleteClient(theirs.id), "not_found", { status: 404 });
      assert.equal(qp.control.clients().length, 1, "the other tenant's client is untouched");
      // An id with characters that mean something in a path is one encoded segment, never a route.
      await expectError(creds.getClient("../whoami"), "not_found", { status: 404 });
      await expectError(creds.getClient("a/b?c#d"), "not_found", { status: 404 });
    });

    it("roles the tenant may not assign: invalid_argument (400) with QPay's reason; another tenant's id: forbidden (403)", async () => {
      const creds = await signIn(ISSUER);
      let err = await expectError(creds.createClient({ tenantId: "issuer-banco-azul", name: "n", roles: ["processor"] }), "invalid_argument", {
        status: 400,
        mayHaveReachedServer: true,
      });
      assert.match(err.message, /not available to a issuer tenant/);
      err = await expectError(creds.createClient({ tenantId: "issuer-banco-azul", name: "n", roles: ["issuer", "issuer"] }), "invalid_argument", { status: 400 });
      const { created } = await newClient();
      err = await expectError(creds.updateClientRoles(created.id, ["embosser"]), "invalid_argument", { status: 400 });
      assert.deepEqual((await creds.getClient(created.id)).roles, ["issuer"], "the roles did not change");
      await expectError(creds.createClient({ tenantId: "proc-acme", name: "n", roles: ["issuer"] }), "forbidden", { status: 403 });
      assert.equal(counters().apiByRoute["POST /credentials/clients"]["400"], 2);
      assert.equal(counters().apiByRoute["PUT /credentials/clients/{id}"]["400"], 1);
    });

    it("bad arguments are invalid_argument before anything is sent (server counters unchanged)", async () => {
      const creds = await signIn(ISSUER);
      const { created } = await newClient();
      const id = created.id;
      const good = { tenantId: "issuer-banco-azul", name: "n", roles: ["issuer"] };
      const cases = {
        "createClient(): no spec": () => creds.createClient(),
        "createClient(null)": () => creds.createClient(null),
        "createClient([])": () => creds.createClient([]),
        "roles not an array": () => creds.createClient({ ...good, roles: "issuer" }),
        "roles holding a number": () => creds.createClient({ ...good, roles: [42] }),
        "roles empty": () => creds.createClient({ ...good, roles: [] }),
        "roles with whitespace": () => creds.createClient({ ...good, roles: ["iss uer"] }),
        "tenantId empty": () => creds.createClient({ ...good, tenantId: "" }),
        "tenantId blank": () => creds.createClient({ ...good, tenantId: "  " }),
        "tenantId missing": () => creds.createClient({ name: "n", roles: ["issuer"] }),
        "tenantId not a string": () => creds.createClient({ ...good, tenantId: 7 }),
        "name empty": () => creds.createClient({ ...good, name: "" }),
        "the document's snake_case tenant_id": () => creds.createClient({ tenant_id: "issuer-banco-azul", name: "n", roles: ["issuer"] }),
        "an unknown field": () => creds.createClient({ ...good, role: "issuer" }),
        "getClient(42)": () => creds.getClient(42),
        "getClient()": () => creds.getClient(),
        "getClient(null)": () => creds.getClient(null),
        "getClient({ id })": () => creds.getClient({ id }),
        'getClient("")': () => creds.getClient(""),
        'getClient("..")': () => creds.getClient(".."),
        "updateClientRoles(42, roles)": () => creds.updateClientRoles(42, ["issuer"]),
        "updateClientRoles(id, 'issuer')": () => creds.updateClientRoles(id, "issuer"),
        "updateClientRoles(id, [])": () => creds.updateClientRoles(id, []),
        "updateClientRoles(id)": () => creds.updateClientRoles(id),
        "deleteClient(undefined)": () => creds.deleteClient(undefined),
        "deleteClient(1n)": () => creds.deleteClient(1n),
      };
      const before = counters();
      const sentBefore = traffic.length;
      for (const [what, call] of Object.entries(cases)) {
        let p;
        try {
          p = call();
        } catch (e) {
          assert.fail(`${what}: threw synchronously (${e?.code}: ${e?.message}) instead of returning a rejected promise`);
        }
        assert.ok(p instanceof Promise, `${what}: returns a promise`);
        const err = await rejectionOf(p);
        assert.ok(err instanceof QBankError, `${what}: a QBankError (got ${inspect(err)})`);
        assert.equal(err.code, "invalid_argument", `${what}: code (message: ${err.message})`);
        assert.equal(err.mayHaveReachedServer, false, `${what}: mayHaveReachedServer`);
        assert.equal(err.status, undefined, `${what}: no HTTP status`);
        keep(err);
      }
      assert.equal(traffic.length, sentBefore, "no request was handed to fetch");
      const after = counters();
      assert.equal(after.apiRequests, before.apiRequests, "the server saw no API request");
      assert.equal(after.tokenRequests, before.tokenRequests, "the server saw no token request");
      assert.deepEqual((await creds.getClient(id)).roles, ["issuer"], "the client is unchanged");
    });

    it("signIn's bad options are refused before sending: config", async () => {
      const sentBefore = traffic.length;
      for (const [what, options] of Object.entries({
        "no options": undefined,
        "no password": { ...place, username: ISSUER.username },
        "empty password": { ...place, username: ISSUER.username, password: "" },
        "empty username": { ...place, username: "", password: ISSUER.password },
        "a misspelt option": { ...place, username: ISSUER.username, password: ISSUER.password, pasword: "x" },
        "plain http without allowInsecureHttp": { baseUrl: qp.url, username: ISSUER.username, password: ISSUER.password },
        'realm ".." (the password would go to {base}/auth/protocol/…)': { ...place, realm: "..", username: ISSUER.username, password: ISSUER.password },
        'realm "."': { ...place, realm: ".", username: ISSUER.username, password: ISSUER.password },
      })) {
        const err = await rejectionOf(QPayCredentials.signIn(options));
        assert.equal(err?.code, "config", `${what}: code (message: ${err?.message})`);
        keep(err);
      }
      assert.equal(traffic.length, sentBefore, "nothing was sent");
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe("never a password, a client secret or a token", () => {
    it("the server's counters and control answers hold none", () => {
      assertNoneContain(
        { counters: JSON.stringify(qp.control.counters()), clients: JSON.stringify(qp.control.clients()), faults: JSON.stringify(qp.control.faults()) },
        forbidden(),
      );
    });

    it("no error, event, printed manager, log line or output of this whole file holds one", () => {
      assert.ok(tokens.size > 10, `the scan knows the tokens the server sent (${tokens.size})`);
      assert.ok(secrets.size >= 5, `the scan knows the client secrets (${secrets.size})`);
      assert.ok(seenErrors.length > 20, `errors seen (${seenErrors.length})`);
      const never = forbidden();
      seenErrors.forEach((err, i) => {
        assertNoneContain(
          Object.fromEntries(Object.entries(errorRenderings(err)).map(([k, v]) => [`error ${i} (${err.code}) ${k}`, v])),
          never,
        );
      });
      seenManagers.forEach(({ tm, events }, i) => {
        for (const { event } of events) log.log("event %j", event);
        assertNoneContain(
          Object.fromEntries(Object.entries({ ...managerRenderings(tm), ...eventRenderings(events) }).map(([k, v]) => [`manager ${i}: ${k}`, v])),
          never,
        );
      });
      assertNoneContain({ "the application's log": logged.join("") }, never);
      assertNoneContain({ "this process's stdout and stderr": written.join("") }, never);
    });
  });
});

after(() => {
  for (const [stream, write] of originalWrites) stream.write = write;
});
