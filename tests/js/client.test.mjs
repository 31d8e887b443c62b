// QBankClient (issue 4) against the local QBank sandbox on loopback: exact balances (amounts sent
// as JSON numbers of 17 to 20 significant digits stay exactly those digits), refused account ids
// (nothing sent), the 401 refresh-and-retry-once path proven by the sandbox counters, 403/404/
// 429/503/4xx answers, redirects that never carry the token elsewhere, invalid balance bodies,
// the origin-locked authorized fetch, and no error ever holding the client secret or a token.
import { describe, it, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { inspect } from "node:util";
import { randomBytes } from "node:crypto";
import { SEED_ACCOUNTS } from "../../src/testing/sandbox.mjs";
import {
  QBankClient,
  assertNoneContain,
  assertQBankError,
  assertSandboxCounts,
  errorRenderings,
  internalKey,
  rejectionOf,
  sandboxSuite,
  secretForms,
  settledCounters,
  startOtherOrigin,
  thrownBy,
  tokenForms,
} from "./token-support.mjs";

const CLIENT = {
  clientId: "client-test",
  clientSecret: `qb-client-secret-${randomBytes(12).toString("hex")}`,
  scopes: ["balances.read", "transactions.read"],
};
/** A client the sandbox never allows balances.read. */
const NARROW = {
  clientId: "narrow-test",
  clientSecret: `qb-narrow-secret-${randomBytes(12).toString("hex")}`,
  scopes: ["accounts.read"],
};
const WRONG_SECRET = `${CLIENT.clientSecret}-from-production`;

const DOC_ACCOUNT = "a1b2c3d4-e5f6-7890-1234-567890abcde";
/** An id whose ":", "@" and non-ASCII letters must be percent-encoded (and "~" must not) in its one path segment. */
const ENCODED_ACCOUNT = "ACC:42@bränch~ü";
/** Exactly 128 bytes, the longest id accepted. */
const LONGEST_ACCOUNT = `${"a".repeat(120)}-1234567`;

// Raw JSON texts (JSON.stringify would round the big numbers), added to the sandbox's seeds.
const EXTRA_ACCOUNTS = {
  "acct-sig17":
    '{"account_id":"acct-sig17","available_balance":123456789012345.67,"ledger_balance":-98765432109876.543,"currency":"USD"}',
  "acct-sig20":
    '{"account_id":"acct-sig20","available_balance":123456789012345678.91,"ledger_balance":0.12345678901234567891,"currency":"USD","as_of":"2026-11-20"}',
  "acct-nested-numbers":
    '{"account_id":"acct-nested-numbers","available_balance":{"amount":12345678901234567.89,"currency":"USD"},"ledger_balance":{"amount":-0.01,"currency":"usd"},"as_of":"2026-11-20","flags":[1.10,2e-3,true,null],"limits":{"daily":99999999999999999999}}',
  "acct-exponent": '{"account_id":"acct-exponent","available_balance":1.5e3,"ledger_balance":15E-1,"currency":"USD"}',
  "acct-camel": '{"accountId":"acct-camel","availableBalance":"7.00","ledgerBalance":"8.00","asOf":"2026-11-20"}',
  [ENCODED_ACCOUNT]: `{"account_id":"${ENCODED_ACCOUNT}","available_balance":"1.00","ledger_balance":"2.00","currency":"CHF"}`,
  [LONGEST_ACCOUNT]: `{"account_id":"${LONGEST_ACCOUNT}","available_balance":"3.00","ledger_balance":"4.00"}`,
};

const balance = (accountId, fields, raw) => ({ accountId, ...fields, raw });

/** What getBalance must resolve to for every seeded and extra account: exact strings everywhere. */
const EXPECTED = {
  [DOC_ACCOUNT]: balance(
    DOC_ACCOUNT,
    { availableBalance: "1234.56", ledgerBalance: "1300.00", currency: "USD", asOf: "2026-11-20" },
    { account_id: DOC_ACCOUNT, available_balance: "1234.56", ledger_balance: "1300.00", currency: "USD", as_of: "2026-11-20" },
  ),
  "acct-number-amounts": balance(
    "acct-number-amounts",
    { availableBalance: "12345678901234567.89", ledgerBalance: "98765432109876543.21", currency: "USD", asOf: "2026-11-20" },
    {
      account_id: "acct-number-amounts",
      available_balance: "12345678901234567.89",
      ledger_balance: "98765432109876543.21",
      pending_balance: "123456789012345678.90",
      currency: "USD",
      as_of: "2026-11-20",
    },
  ),
  // The real-time document: no asOf at all (not undefined, not "").
  "acct-realtime": balance(
    "acct-realtime",
    { availableBalance: "250.00", ledgerBalance: "250.00", currency: "USD" },
    { account_id: "acct-realtime", available_balance: "250.00", ledger_balance: "250.00", currency: "USD" },
  ),
  "acct-negative": balance(
    "acct-negative",
    { availableBalance: "-42.10", ledgerBalance: "-40.00", currency: "USD", asOf: "2026-11-20" },
    { account_id: "acct-negative", available_balance: "-42.10", ledger_balance: "-40.00", currency: "USD", as_of: "2026-11-20" },
  ),
  "acct-nested": balance(
    "acct-nested",
    { availableBalance: "10.00", ledgerBalance: "12.50", currency: "EUR", asOf: "2026-11-20" },
    {
      account_id: "acct-nested",
      available_balance: { amount: "10.00", currency: "EUR" },
      ledger_balance: { amount: "12.50", currency: "EUR" },
      as_of: "2026-11-20",
    },
  ),
  "acct-sig17": balance(
    "acct-sig17",
    { availableBalance: "123456789012345.67", ledgerBalance: "-98765432109876.543", currency: "USD" },
    { account_id: "acct-sig17", available_balance: "123456789012345.67", ledger_balance: "-98765432109876.543", currency: "USD" },
  ),
  "acct-sig20": balance(
    "acct-sig20",
    { availableBalance: "123456789012345678.91", ledgerBalance: "0.12345678901234567891", currency: "USD", asOf: "2026-11-20" },
    {
      account_id: "acct-sig20",
      available_balance: "123456789012345678.91",
      ledger_balance: "0.12345678901234567891",
      currency: "USD",
      as_of: "2026-11-20",
    },
  ),
  "acct-nested-numbers": balance(
    "acct-nested-numbers",
    { availableBalance: "12345678901234567.89", ledgerBalance: "-0.01", currency: "USD", asOf: "2026-11-20" },
    {
      account_id: "acct-nested-numbers",
      available_balance: { amount: "12345678901234567.89", currency: "USD" },
      ledger_balance: { amount: "-0.01", currency: "usd" },
      as_of: "2026-11-20",
      flags: ["1.10", "2e-3", true, null],
      limits: { daily: "99999999999999999999" },
    },
  ),
  // An exponent is expanded exactly for the amount; raw keeps the number text as sent.
  "acct-exponent": balance(
    "acct-exponent",
    { availableBalance: "1500", ledgerBalance: "1.5", currency: "USD" },
    { account_id: "acct-exponent", available_balance: "1.5e3", ledger_balance: "15E-1", currency: "USD" },
  ),
  "acct-camel": balance(
    "acct-camel",
    { availableBalance: "7.00", ledgerBalance: "8.00", asOf: "2026-11-20" },
    { accountId: "acct-camel", availableBalance: "7.00", ledgerBalance: "8.00", asOf: "2026-11-20" },
  ),
  [ENCODED_ACCOUNT]: balance(
    ENCODED_ACCOUNT,
    { availableBalance: "1.00", ledgerBalance: "2.00", currency: "CHF" },
    { account_id: ENCODED_ACCOUNT, available_balance: "1.00", ledger_balance: "2.00", currency: "CHF" },
  ),
  [LONGEST_ACCOUNT]: balance(
    LONGEST_ACCOUNT,
    { availableBalance: "3.00", ledgerBalance: "4.00" },
    { account_id: LONGEST_ACCOUNT, available_balance: "3.00", ledger_balance: "4.00" },
  ),
};

// ---- what the client sent, and every token the token endpoint issued ----

/** Every token the token endpoint issued to any client in this file (for the leak scans). */
const issuedTokens = new Set();
/** Every request the clients handed to fetch since the last clearSent(): { url, method }. */
let sent = [];
/** Every URL handed to fetch in this file (never cleared), scanned for tokens at the end. */
const allUrls = [];
const clearSent = () => {
  sent = [];
};
/** Every QBankError this file saw, scanned once more at the end against every token issued. */
const seenErrors = [];

/**
 * The `fetch` option of every client here: the global fetch, recording each request and the
 * token in each token answer, so the tests can say "nothing was sent" and scan for every token.
 */
async function recordingFetch(url, init = {}) {
  sent.push({ url: String(url), method: (init.method ?? "GET").toUpperCase() });
  allUrls.push(String(url));
  const res = await fetch(url, init);
  if (new URL(String(url)).pathname === "/token" && res.ok) {
    try {
      const body = await res.clone().json();
      if (typeof body.access_token === "string") issuedTokens.add(body.access_token);
    } catch {
      /* a malformed token answer carries no token to remember */
    }
  }
  return res;
}

/** The secrets of every client, in every encoding, and every token issued so far. */
function forbidden() {
  const out = { ...tokenForms(issuedTokens) };
  for (const [id, secret] of [
    [CLIENT.clientId, CLIENT.clientSecret],
    [NARROW.clientId, NARROW.clientSecret],
    [CLIENT.clientId, WRONG_SECRET],
  ]) {
    for (const [what, v] of Object.entries(secretForms(id, secret))) out[`${id}: ${what}`] = v;
  }
  return out;
}

/** Checks an error's renderings (message, stack, String, JSON, inspect) hold no secret and no token. */
function assertClean(err) {
  assertNoneContain(
    { ...errorRenderings(err), "JSON.stringify(err.problem)": JSON.stringify(err.problem) },
    forbidden(),
  );
}

/** Awaits `promise`, which must reject with a QBankError `code` with these fields; checks it is clean. */
async function expectError(promise, code, fields = {}) {
  const err = await rejectionOf(promise);
  assertQBankError(err, code, fields);
  seenErrors.push(err);
  assertClean(err);
  return err;
}

describe("QBankClient × QBank sandbox", { timeout: 60_000 }, () => {
  const suite = sandboxSuite({
    sandbox: { clients: [CLIENT, NARROW], accounts: EXTRA_ACCOUNTS },
    clientDefaults: { fetch: recordingFetch },
  });
  // makeClient(): a client of the sandbox for CLIENT (or `client`), closed after the test.
  const { makeClient } = suite;
  let sb;
  let other;
  before(async () => {
    sb = suite.sb;
    other = await startOtherOrigin('{"account_id":"acct-realtime","available_balance":"666.00","ledger_balance":"666.00"}');
  });
  beforeEach(() => {
    other.seen.length = 0;
    clearSent();
  });
  after(async () => {
    await other?.close();
  });

  /**
   * A client that already holds a token (one getBalance done), with the sandbox counters, the
   * faults and the record of sent requests cleared, so a test counts only what it causes.
   */
  async function warmClient(options) {
    const bank = makeClient(options);
    assert.deepEqual(await bank.getBalance(DOC_ACCOUNT), EXPECTED[DOC_ACCOUNT]);
    sb.control.reset();
    clearSent();
    return bank;
  }

  const currentToken = async (bank) => (await bank.tokens.getToken()).accessToken;

  /** Asserts the sandbox saw exactly this many token and API requests (and API statuses, if given). */
  const assertCounts = (expected) => assertSandboxCounts(sb, expected);

  /** Nothing at all was handed to fetch, and the sandbox saw no token or API request. */
  async function assertNothingSent() {
    assert.deepEqual(sent, [], "nothing handed to fetch");
    await assertCounts({ tokenRequests: 0, apiRequests: 0 });
  }

  const addApiFault = (fault) => sb.control.addFault({ target: "api", ...fault });
  const bearer = (params) => `Bearer realm="qbank", ${params}`;

  // ---- balances ----

  describe("getBalance: exact money", () => {
    it("the seeded accounts are the ones this file knows", () => {
      for (const id of Object.keys(SEED_ACCOUNTS)) assert.ok(id in EXPECTED, `an expected balance for seed ${id}`);
    });

    for (const [id, expected] of Object.entries(EXPECTED)) {
      it(`${id.length > 40 ? `${id.slice(0, 12)}… (${id.length} bytes)` : id}: exact strings, asOf ${"asOf" in expected ? "passed through" : "absent"}, raw keeps every field (cold, and on the cached-token fast path)`, async () => {
        const bank = makeClient();
        assert.deepEqual(await bank.getBalance(id), expected, "cold: the wasm's own getBalance");
        const b = await bank.getBalance(id);
        assert.deepEqual(b, expected);
        for (const amount of [b.availableBalance, b.ledgerBalance]) assert.equal(typeof amount, "string");
      });
    }

    it("amounts of 17 to 20 significant digits are the digits sent, which a float64 would have changed", async () => {
      const bank = makeClient();
      for (const [id, field, digits] of [
        ["acct-number-amounts", "availableBalance", "12345678901234567.89"],
        ["acct-sig17", "ledgerBalance", "-98765432109876.543"],
        ["acct-sig20", "availableBalance", "123456789012345678.91"],
        ["acct-sig20", "ledgerBalance", "0.12345678901234567891"],
      ]) {
        const b = await bank.getBalance(id);
        assert.equal(b[field], digits, `${id} ${field}`);
        assert.notEqual(String(Number(digits)), digits, `${digits} does not survive a float64 (so the case means something)`);
      }
      const raw = (await bank.getBalance("acct-number-amounts")).raw;
      assert.equal(raw.pending_balance, "123456789012345678.90", "a field the client does not name, trailing zero kept");
    });

    it("one token serves many balances; the default global fetch works the same", async () => {
      const bank = makeClient({ fetch: undefined });
      for (const id of [DOC_ACCOUNT, "acct-realtime", "acct-nested"]) assert.deepEqual(await bank.getBalance(id), EXPECTED[id]);
      issuedTokens.add(await currentToken(bank));
      await assertCounts({ tokenRequests: 1, apiRequests: 3, apiByStatus: { 200: 3 } });
    });

    it("a response with the amount twice is refused or read consistently (the balance and raw agree)", async () => {
      const bank = await warmClient();
      addApiFault({
        status: 200,
        body: '{"account_id":"acct-realtime","available_balance":"1.00","available_balance":"999.00","ledger_balance":"1.00"}',
      });
      let b;
      try {
        b = await bank.getBalance("acct-realtime");
      } catch (err) {
        assertQBankError(err, "invalid_response");
        return;
      }
      assert.equal(
        b.raw.available_balance,
        b.availableBalance,
        `availableBalance ${b.availableBalance} but raw.available_balance ${b.raw.available_balance}`,
      );
    });
  });

  describe("getBalance: refused account ids (invalid_argument, nothing sent)", () => {
    const REFUSED = [
      ["empty", ""],
      ["a slash", "acct/other"],
      ["a path escape", "a1b2c3d4/../../admin"],
      ["..", ".."],
      [".", "."],
      ["embedded ..", "acct..x"],
      ["a question mark", "acct?x=1"],
      ["a hash", "acct#frag"],
      ["an encoded slash %2F", "acct%2Fadmin"],
      ["an encoded dot-dot %2e%2e", "%2e%2e"],
      ["a backslash", "acct\\admin"],
      ["a NUL", "acct\u0000x"],
      ["a line break", "acct\r\nX-Injected: 1"],
      ["a tab", "acct\tx"],
      ["DEL", "acct\u007f"],
      ["a C1 control character", "acct\u0085"],
      ["a space", "acct x"],
      ["a zero-width space", "acct\u200bx"],
      ["a bidi override", "acct\u202ex"],
      ["129 bytes", "a".repeat(129)],
      ["130 bytes in 65 characters", "é".repeat(65)],
    ];
    for (const [what, id] of REFUSED) {
      it(`${what}: refused before any token or API request (cold, and with a cached token, twice)`, async () => {
        for (const bank of [makeClient(), await warmClient()]) {
          for (let i = 0; i < 2; i++) {
            const err = await expectError(bank.getBalance(id), "invalid_argument", { mayHaveReachedServer: false });
            if (id.length > 8) assert.ok(!err.message.includes(id), "the message does not repeat the whole id");
            assert.ok(!err.message.includes("admin"), "the message names at most a short plain prefix");
          }
          await assertNothingSent();
        }
      });
    }

    const NON_STRINGS = [
      ["undefined", undefined],
      ["null", null],
      ["a number", 42],
      ["a bigint", 42n],
      ["an object with a toString giving a valid id", { toString: () => "acct-realtime" }],
      ["an array holding a valid id", ["acct-realtime"]],
    ];
    for (const [what, id] of NON_STRINGS) {
      it(`${what}: a rejected promise (not a throw), nothing sent (cold, and with a cached token)`, async () => {
        for (const bank of [makeClient(), await warmClient()]) {
          let promise;
          assert.doesNotThrow(() => {
            promise = bank.getBalance(id);
          });
          await expectError(promise, "invalid_argument", { mayHaveReachedServer: false });
          await assertNothingSent();
        }
      });
    }

    it("the boundary is accepted: 128 bytes of 2-byte characters reaches the bank (404)", async () => {
      const bank = makeClient();
      await expectError(bank.getBalance("é".repeat(64)), "not_found", { status: 404, mayHaveReachedServer: true });
      await assertCounts({ tokenRequests: 1, apiRequests: 1, apiByStatus: { 404: 1 } });
    });
  });

  // ---- the cached-token fast path (the package's JavaScript getBalance) ----

  describe("getBalance: the cached-token fast path", () => {
    const BALANCE_AFTER = internalKey(QBankClient, "balanceAfter");
    const BALANCE_READ = internalKey(QBankClient, "balanceRead");

    /** Counts the calls that reach the wasm's own getBalance (the path without a servable token). */
    function countSlowCalls() {
      const proto = QBankClient.prototype;
      const original = proto[BALANCE_AFTER];
      const counter = { calls: 0, restore: () => (proto[BALANCE_AFTER] = original) };
      proto[BALANCE_AFTER] = function (...args) {
        counter.calls += 1;
        return original.apply(this, args);
      };
      return counter;
    }

    it("with a cached token, 2xx answers never enter the wasm's async getBalance; the first call does", async () => {
      const counter = countSlowCalls();
      try {
        const bank = makeClient();
        await bank.getBalance(DOC_ACCOUNT);
        assert.equal(counter.calls, 1, "the first call (no token yet) is the wasm's");
        for (const id of Object.keys(EXPECTED)) assert.deepEqual(await bank.getBalance(id), EXPECTED[id]);
        assert.equal(counter.calls, 1, "every later call was answered on the fast path");
        await assertCounts({ tokenRequests: 1, apiRequests: 1 + Object.keys(EXPECTED).length });
      } finally {
        counter.restore();
      }
    });

    it("a body of strings is built from JSON.parse by the core's plan, one with numbers from the core's text; both match the wasm's own result", async () => {
      const bank = makeClient();
      const kinds = {};
      for (const id of Object.keys(SEED_ACCOUNTS)) {
        const read = bank[BALANCE_READ](id, SEED_ACCOUNTS[id]);
        kinds[typeof read] = (kinds[typeof read] ?? 0) + 1;
        let numbers = false;
        JSON.parse(SEED_ACCOUNTS[id], (_, v) => ((numbers ||= typeof v === "number"), v));
        if (numbers) assert.equal(typeof read, "string", `${id}: a number needs the core's exact text`);
        assert.deepEqual(await bank.getBalance(id), EXPECTED[id], `${id}, warm`);
      }
      assert.equal(typeof bank[BALANCE_READ](DOC_ACCOUNT, SEED_ACCOUNTS[DOC_ACCOUNT]), "number", "the documented body is planned");
      assert.ok(kinds.number >= 2 && kinds.string >= 2, `both kinds of body are seeded (${JSON.stringify(kinds)})`);
    });

    it("a 401 on the fast path is handed to the wasm as its first answer: one new token, one retry, nothing sent twice", async () => {
      const bank = await warmClient();
      const counter = countSlowCalls();
      try {
        sb.control.revoke();
        assert.deepEqual(await bank.getBalance("acct-sig20"), EXPECTED["acct-sig20"]);
        assert.equal(counter.calls, 1, "the 401 went to the wasm once");
        await assertCounts({ tokenRequests: 1, apiRequests: 2, apiByStatus: { 401: 1, 200: 1 } });
      } finally {
        counter.restore();
      }
    });

    it("options are checked on the fast path exactly as on the wasm's (unknown option, bad signal, bad waitUntil)", async () => {
      const bank = await warmClient();
      for (const options of [{ signl: undefined }, { signal: "soon" }, { signal: {} }, { waitUntil: 5 }, 7, "x"]) {
        await expectError(bank.getBalance(DOC_ACCOUNT, options), "config");
      }
      await assertNothingSent();
      const b = await bank.getBalance(DOC_ACCOUNT, { signal: new AbortController().signal, waitUntil: () => {} });
      assert.deepEqual(b, EXPECTED[DOC_ACCOUNT], "valid options take the fast path too");
    });

    it("an aborted signal with a cached token: aborted, nothing sent", async () => {
      const bank = await warmClient();
      const ac = new AbortController();
      ac.abort();
      await expectError(bank.getBalance(DOC_ACCOUNT, { signal: ac.signal }), "aborted");
      await assertNothingSent();
    });

    it("more accounts than the client remembers URLs for: every answer is still the right account's", async () => {
      const bank = await warmClient();
      const ids = Object.keys(EXPECTED);
      for (let i = 0; i < 70; i++) {
        await expectError(bank.getBalance(`acct-unknown-${i}`), "not_found", { status: 404 });
      }
      for (const id of ids) assert.deepEqual(await bank.getBalance(id), EXPECTED[id]);
      await assertCounts({ tokenRequests: 0, apiRequests: 70 + ids.length });
    });

    it("after close(), the fast path is gone: closed, nothing sent", async () => {
      const bank = await warmClient();
      bank.close();
      await expectError(bank.getBalance(DOC_ACCOUNT), "closed");
      await assertNothingSent();
    });
  });

  // ---- 401: refresh and retry once ----

  describe("getBalance: 401 refresh-and-retry-once", () => {
    /** getBalance after `breakToken` must succeed with exactly one new token and one retry. */
    async function expectRecovery(breakToken) {
      const bank = await warmClient();
      const before = await currentToken(bank);
      await breakToken();
      assert.deepEqual(await bank.getBalance("acct-number-amounts"), EXPECTED["acct-number-amounts"]);
      await assertCounts({ tokenRequests: 1, apiRequests: 2, apiByStatus: { 401: 1, 200: 1 } });
      assert.notEqual(await currentToken(bank), before, "the refused token was replaced");
    }

    it("a revoked token: one new token, one retried request, then the balance", async () => {
      await expectRecovery(() => sb.control.revoke());
    });

    it('an injected 401 with WWW-Authenticate: Bearer error="invalid_token": the same', async () => {
      await expectRecovery(() =>
        addApiFault({ status: 401, headers: { "WWW-Authenticate": bearer('error="invalid_token"') }, body: "" }),
      );
    });

    it("a token the bank's clock says expired (the client's clock disagrees): the same", async () => {
      await expectRecovery(() => sb.control.advanceClock(2 * 3600 * 1000));
    });

    it("a second 401 is unauthorized (one refresh, never a second)", async () => {
      const bank = await warmClient();
      addApiFault({
        status: 401,
        count: 5,
        headers: { "WWW-Authenticate": bearer('error="invalid_token", error_description="token revoked"') },
        body: "",
      });
      await expectError(bank.getBalance(DOC_ACCOUNT), "unauthorized", { status: 401, mayHaveReachedServer: true });
      await assertCounts({ tokenRequests: 1, apiRequests: 2, apiByStatus: { 401: 2 } });
    });

    it("100 concurrent getBalance calls after a revoke share exactly one new token", async () => {
      const bank = await warmClient();
      sb.control.revoke();
      const all = await Promise.all(Array.from({ length: 100 }, () => bank.getBalance("acct-sig20")));
      for (const b of all) assert.deepEqual(b, EXPECTED["acct-sig20"]);
      const c = await settledCounters(sb);
      assert.equal(c.tokenRequests, 1, "exactly one new token request");
      assert.equal(c.apiByStatus[200], 100, "every caller got its balance");
      assert.ok((c.apiByStatus[401] ?? 0) <= 100, "at most one refused request per caller");
      assert.equal(c.apiRequests, 100 + (c.apiByStatus[401] ?? 0), "each caller retried at most once");
    });
  });

  // ---- other API answers ----

  describe("getBalance: API errors", () => {
    it("a client without balances.read: insufficient_scope naming balances.read, not retried", async () => {
      const bank = makeClient({ client: NARROW, scope: ["accounts.read"] });
      const err = await expectError(bank.getBalance(DOC_ACCOUNT), "insufficient_scope", {
        status: 403,
        requiredScope: "balances.read",
        mayHaveReachedServer: true,
      });
      assert.match(err.message, /scope/);
      await assertCounts({ tokenRequests: 1, apiRequests: 1, apiByStatus: { 403: 1 } });
    });

    it("a client asking for a scope it is not allowed: invalid_scope from the token endpoint, no API request", async () => {
      const bank = makeClient({ client: NARROW });
      await expectError(bank.getBalance(DOC_ACCOUNT), "invalid_scope", { oauthError: "invalid_scope" });
      await assertCounts({ tokenRequests: 1, apiRequests: 0 });
    });

    // The challenge's scopes, as requiredScope: space-separated, one space between.
    for (const [scope, requiredScope, note] of [
      ["balances.read", "balances.read", ""],
      ["balances.read  accounts.read", "balances.read accounts.read", ' (two scopes: requiredScope "balances.read accounts.read")'],
    ]) {
      it(`an injected 403 with error="insufficient_scope" scope="${scope}": insufficient_scope${note}`, async () => {
        const bank = await warmClient();
        addApiFault({
          status: 403,
          headers: { "WWW-Authenticate": bearer(`error="insufficient_scope", scope="${scope}"`) },
          body: "",
        });
        await expectError(bank.getBalance(DOC_ACCOUNT), "insufficient_scope", { status: 403, requiredScope });
        await assertCounts({ tokenRequests: 0, apiRequests: 1 });
      });
    }

    it("a 403 without a Bearer challenge: forbidden", async () => {
      const bank = await warmClient();
      addApiFault({ status: 403, body: "" });
      await expectError(bank.getBalance(DOC_ACCOUNT), "forbidden", { status: 403, mayHaveReachedServer: true });
      await assertCounts({ tokenRequests: 0, apiRequests: 1 });
    });

    it("an unknown account: not_found with the bank's problem, not retried", async () => {
      const bank = await warmClient();
      const err = await expectError(bank.getBalance("acct-missing"), "not_found", { status: 404, mayHaveReachedServer: true });
      assert.equal(err.problem.title, "Account not found");
      await assertCounts({ tokenRequests: 0, apiRequests: 1, apiByStatus: { 404: 1 } });
    });

    /** `fault` once, then the real answer: the balance after exactly one retry. */
    async function expectRetriedOnce(status, headers) {
      const bank = await warmClient();
      addApiFault({ status, headers, body: "" });
      const started = Date.now();
      assert.deepEqual(await bank.getBalance("acct-nested"), EXPECTED["acct-nested"]);
      await assertCounts({ tokenRequests: 0, apiRequests: 2, apiByStatus: { [status]: 1, 200: 1 } });
      return Date.now() - started;
    }

    it("a 429 with Retry-After: 0 is retried and then succeeds", async () => {
      await expectRetriedOnce(429, { "Retry-After": "0" });
    });

    it("a 429 with Retry-After: 1 waits about a second, then succeeds", async () => {
      const elapsed = await expectRetriedOnce(429, { "Retry-After": "1" });
      assert.ok(elapsed >= 900, `waited ${elapsed} ms for Retry-After: 1`);
    });

    it("a 429 without Retry-After is retried after a short backoff, then succeeds", async () => {
      await expectRetriedOnce(429, {});
    });

    it("a 429 with Retry-After as an HTTP-date (in the past, and a second ahead) is retried and then succeeds", async () => {
      await expectRetriedOnce(429, { "Retry-After": new Date(Date.now() - 60_000).toUTCString() });
      await expectRetriedOnce(429, { "Retry-After": new Date(Date.now() + 1000).toUTCString() });
    });

    it("a 503 with Retry-After: 0 is retried and then succeeds", async () => {
      await expectRetriedOnce(503, { "Retry-After": "0" });
    });

    // The implementation's bound: the first request and MAX_RETRIES (2) retries.
    const MAX_TRIES = 3;
    for (const [status, code] of [
      [429, "rate_limited"],
      [503, "server_error"],
    ]) {
      it(`always ${status}: ${code} after ${MAX_TRIES} tries in all`, async () => {
        const bank = await warmClient();
        addApiFault({ status, count: 20, headers: { "Retry-After": "0" }, body: "" });
        await expectError(bank.getBalance(DOC_ACCOUNT), code, { status, retryAfterMs: 0, mayHaveReachedServer: true });
        await assertCounts({ tokenRequests: 0, apiRequests: MAX_TRIES, apiByStatus: { [status]: MAX_TRIES } });
      });
    }

    it("a 429 asking for a long wait is not waited for: rate_limited at once, with retryAfterMs", async () => {
      const bank = await warmClient();
      addApiFault({ status: 429, count: 5, headers: { "Retry-After": "120" }, body: "" });
      await expectError(bank.getBalance(DOC_ACCOUNT), "rate_limited", { status: 429, retryAfterMs: 120_000 });
      await assertCounts({ tokenRequests: 0, apiRequests: 1 });
    });

    it("a 500 is server_error and is not retried", async () => {
      const bank = await warmClient();
      addApiFault({ status: 500, count: 5, body: "Internal Server Error" });
      await expectError(bank.getBalance(DOC_ACCOUNT), "server_error", { status: 500, mayHaveReachedServer: true });
      await assertCounts({ tokenRequests: 0, apiRequests: 1 });
    });

    for (const status of [409, 422]) {
      it(`a ${status} with an RFC 7807 problem: api_error with the problem and the status`, async () => {
        const bank = await warmClient();
        const problem = {
          type: "https://api.qbankconnect.com/problems/account-state",
          title: "Account state conflict",
          status,
          detail: `account is frozen (case ${status})`,
          instance: `/v1/balances/${DOC_ACCOUNT}`,
        };
        addApiFault({ status, headers: { "Content-Type": "application/problem+json" }, body: JSON.stringify(problem) });
        const err = await expectError(bank.getBalance(DOC_ACCOUNT), "api_error", { status, mayHaveReachedServer: true });
        assert.deepEqual(err.problem, problem);
        assert.match(err.message, new RegExp(`account is frozen \\(case ${status}\\)`), "the bank's detail is in the message");
        await assertCounts({ tokenRequests: 0, apiRequests: 1 });
      });
    }

    it("a problem body echoing the token in use and the secret: both scrubbed from message and problem", async () => {
      const bank = await warmClient();
      const token = await currentToken(bank);
      const echo = `token ${token} / secret ${CLIENT.clientSecret} / ${encodeURIComponent(CLIENT.clientSecret)}`;
      addApiFault({
        status: 409,
        headers: { "Content-Type": "application/problem+json" },
        body: JSON.stringify({ title: "Conflict", status: 409, detail: echo, debug: { echo } }),
      });
      const err = await expectError(bank.getBalance(DOC_ACCOUNT), "api_error", { status: 409 });
      assert.equal(err.problem.title, "Conflict", "the rest of the problem is kept");
    });

    for (const status of [302, 307, 308]) {
      it(`a ${status} to another origin: an error, and that origin never sees a request or the token`, async () => {
        const bank = await warmClient();
        addApiFault({ status, redirect: `${other.url}/v1/balances/acct-realtime` });
        await expectError(bank.getBalance("acct-realtime"), "api_error", { status, mayHaveReachedServer: true });
        assert.deepEqual(other.seen, [], "the other origin saw nothing");
        assert.deepEqual(
          sent.map((s) => new URL(s.url).origin),
          [sb.url],
          "one request, to the API origin only",
        );
      });
    }

    it("an API that never answers: timeout after timeoutMs", async () => {
      const bank = await warmClient({ timeoutMs: 300 });
      addApiFault({ hang: true });
      await expectError(bank.getBalance(DOC_ACCOUNT), "timeout", { mayHaveReachedServer: true });
    });

    it("deadlines share one timer (fetch transport): a short timeout started after a long one still fires first, and a finished request's deadline never fires", async () => {
      const slow = await warmClient({ timeoutMs: 3000 });
      const quick = await warmClient({ timeoutMs: 200 });
      const fine = await warmClient({ timeoutMs: 250 });
      addApiFault({ hang: true, count: 2 });
      const started = Date.now();
      const long = rejectionOf(slow.getBalance(DOC_ACCOUNT)); // armed for 3 s
      const short = await rejectionOf(quick.getBalance(DOC_ACCOUNT)); // must re-arm for 200 ms
      assertQBankError(short, "timeout", { mayHaveReachedServer: true });
      assert.ok(Date.now() - started < 2500, `the 200 ms deadline fired after ${Date.now() - started} ms, not with the 3 s one`);
      // A request that finished before its deadline is not touched by the sweep after it.
      assert.deepEqual(await fine.getBalance(DOC_ACCOUNT), EXPECTED[DOC_ACCOUNT]);
      await new Promise((r) => setTimeout(r, 400));
      assertQBankError(await long, "timeout");
    });

    it("an already aborted signal: aborted", async () => {
      const bank = await warmClient();
      await expectError(bank.getBalance(DOC_ACCOUNT, { signal: AbortSignal.abort() }), "aborted");
    });
  });

  describe("getBalance: invalid balance bodies (invalid_response naming the field, not retried)", () => {
    const ID = "acct-realtime";
    const doc = (fields) => `{"account_id":"${ID}",${fields}}`;
    const withAvailable = (v) => doc(`"available_balance":${v},"ledger_balance":"1.00","currency":"USD"`);
    const withLedger = (v) => doc(`"available_balance":"1.00","ledger_balance":${v},"currency":"USD"`);
    const INVALID = [
      ["truncated JSON", `{"account_id":"${ID}","available_balance":"250.00","ledger_bal`, /not valid JSON/],
      ["malformed JSON (single quotes)", `{'account_id':'${ID}'}`, /not valid JSON/],
      ["a bare NaN token", withAvailable("NaN"), /not valid JSON/],
      ["an HTML page", "<html><body>maintenance</body></html>", /not valid JSON/],
      ["an empty body", "", /empty/],
      ["a JSON array", "[]", /an array, not a JSON object/],
      ["available_balance null", withAvailable("null"), /available_balance is null/],
      ['available_balance ""', withAvailable('""'), /available_balance is an empty string/],
      ['available_balance "1,234.56"', withAvailable('"1,234.56"'), /available_balance is not a plain decimal/],
      ['available_balance "NaN"', withAvailable('"NaN"'), /available_balance is not a plain decimal/],
      ['available_balance "1e3" (an exponent in a string)', withAvailable('"1e3"'), /available_balance is not a plain decimal/],
      ['available_balance "Infinity"', withAvailable('"Infinity"'), /available_balance is not a plain decimal/],
      ["available_balance 1e400", withAvailable("1e400"), /available_balance is a number outside/],
      ["available_balance -1e400", withAvailable("-1e400"), /available_balance is a number outside/],
      ["available_balance true", withAvailable("true"), /available_balance is a boolean/],
      ["available_balance with 21 fraction digits", withAvailable('"0.123456789012345678901"'), /available_balance is not a plain decimal/],
      ["available_balance with a null nested amount", withAvailable('{"amount":null,"currency":"USD"}'), /available_balance amount is null/],
      ["available_balance an object without amount", withAvailable('{"value":"1.00"}'), /available_balance is an object without an amount/],
      ['ledger_balance "+1.00"', withLedger('"+1.00"'), /ledger_balance is not a plain decimal/],
      ['ledger_balance " 1.00"', withLedger('" 1.00"'), /ledger_balance is not a plain decimal/],
      ['ledger_balance "01.00"', withLedger('"01.00"'), /ledger_balance is not a plain decimal/],
      ['ledger_balance "1."', withLedger('"1."'), /ledger_balance is not a plain decimal/],
      ['ledger_balance ".5"', withLedger('".5"'), /ledger_balance is not a plain decimal/],
      ["no ledger_balance", doc('"available_balance":"1.00"'), /no ledger_balance/],
      ["another account's balance", withAvailable('"1.00"').replace(ID, "acct-other"), /different account/],
      [
        "currencies that disagree",
        doc('"available_balance":{"amount":"1.00","currency":"USD"},"ledger_balance":"1.00","currency":"EUR"'),
        /different currencies/,
      ],
    ];
    for (const [what, body, mentions] of INVALID) {
      it(what, async () => {
        const bank = await warmClient();
        addApiFault({ status: 200, body });
        const err = await expectError(bank.getBalance(ID), "invalid_response", { mayHaveReachedServer: true });
        assert.match(err.message, mentions);
        await assertCounts({ tokenRequests: 0, apiRequests: 1 });
      });
    }

    it("a body cut off on the wire (shorter than Content-Length): an error, never a balance", async () => {
      const bank = await warmClient();
      addApiFault({ reset: true });
      const err = await rejectionOf(bank.getBalance("acct-number-amounts"));
      assertQBankError(err, err.code, { mayHaveReachedServer: true });
      assert.ok(["network", "invalid_response"].includes(err.code), `code ${err.code}`);
      seenErrors.push(err);
      assertClean(err);
    });

    it("a body over 1 MiB: invalid_response, not read further", async () => {
      const bank = await warmClient();
      addApiFault({ status: 200, body: `{"account_id":"${ID}","pad":"${"x".repeat(1100 * 1024)}"}` });
      await expectError(bank.getBalance(ID), "invalid_response", { status: 200, mayHaveReachedServer: true });
    });
  });

  // ---- fetch(path) ----

  describe("fetch(path): the authorized fetch, on the API origin only", () => {
    /** The default scope is balances.read alone; /v1/transactions needs transactions.read too. */
    const BOTH_SCOPES = { scope: ["balances.read", "transactions.read"] };

    it("adds the Bearer token (the sandbox accepts it) and resolves to the Response", async () => {
      const bank = makeClient(BOTH_SCOPES);
      const res = await bank.fetch("/v1/transactions?limit=2", { method: "GET" });
      assert.ok(res instanceof Response);
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.equal(body.transactions.length, 2);
      assert.equal(body.limit, 2);
      await assertCounts({ tokenRequests: 1, apiRequests: 1, apiByStatus: { 200: 1 } });
      assert.deepEqual(sent.map((s) => new URL(s.url).search), ["", "?limit=2"], "the query as given, no token in any URL");
    });

    it("an init of null is no init (a GET with the token), as the argument check allows", async () => {
      const bank = makeClient(BOTH_SCOPES);
      const res = await bank.fetch("/v1/transactions?limit=1", null);
      assert.ok(res instanceof Response);
      assert.equal(res.status, 200);
      assert.equal((await res.json()).transactions.length, 1);
      await assertCounts({ tokenRequests: 1, apiRequests: 1, apiByStatus: { 200: 1 } });
    });

    it("replaces a caller's own Authorization header", async () => {
      const bank = makeClient(BOTH_SCOPES);
      const res = await bank.fetch("/v1/transactions", { headers: { Authorization: "Bearer not-ours" } });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    });

    it("a full URL on the same origin works (exact text, as the bank sent it)", async () => {
      const bank = makeClient(BOTH_SCOPES);
      const res = await bank.fetch(`${sb.url}/v1/balances/acct-number-amounts`);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), SEED_ACCOUNTS["acct-number-amounts"]);
    });

    it("a POST is sent with its body (the echo keeps every digit)", async () => {
      const bank = makeClient(BOTH_SCOPES);
      const text = '{"amount":12345678901234567.89}';
      const res = await bank.fetch("/v1/echo", { method: "POST", headers: { "Content-Type": "application/json" }, body: text });
      assert.equal(res.status, 200);
      assert.equal(await res.text(), text);
    });

    const escapes = () => [
      ["another origin", `${other.url}/v1/transactions`],
      ["another host name on the API port", `http://127.0.0.1.nip.io:${sb.port}/v1/transactions`],
      ["another host name for the same server", `http://localhost:${sb.port}/v1/transactions`],
      ["https on the API host", `https://127.0.0.1:${sb.port}/v1/transactions`],
      ["a scheme-relative URL", `//127.0.0.1:${other.url.split(":").pop()}/v1/x`],
      ["user-info before another host", `http://127.0.0.1:${sb.port}@evil.example/v1/x`],
      ["user-info on the API origin", `http://user:pw@127.0.0.1:${sb.port}/v1/transactions`],
      ["a dot-dot path", "/v1/../__control/revoke"],
      ["an encoded dot-dot path", "/v1/%2e%2e/__control/counters"],
      ["a backslash path", "\\\\evil.example\\v1"],
      ["a javascript: URL", "javascript:alert(1)"],
      ["a data: URL", "data:text/plain,hello"],
      ["an empty path", ""],
    ];
    it("an origin escape is refused before anything is sent: invalid_argument", async () => {
      for (const [what, target] of escapes()) {
        const bank = makeClient(BOTH_SCOPES);
        const err = await expectError(bank.fetch(target), "invalid_argument", { mayHaveReachedServer: false });
        assert.ok(!err.message.includes("evil.example"), `${what}: the message does not repeat the URL`);
        await assertNothingSent();
        assert.deepEqual(other.seen, [], `${what}: the other origin saw nothing`);
      }
    });

    it("a non-string path: invalid_argument, nothing sent", async () => {
      const bank = makeClient(BOTH_SCOPES);
      for (const path of [42, null, undefined]) {
        await expectError(bank.fetch(path), "invalid_argument", { mayHaveReachedServer: false });
      }
      await assertNothingSent();
    });

    it("a 401 on a GET: one new token and one retry", async () => {
      const bank = await warmClient(BOTH_SCOPES);
      sb.control.revoke();
      const res = await bank.fetch("/v1/transactions?limit=1");
      assert.equal(res.status, 200);
      assert.equal((await res.json()).transactions.length, 1);
      await assertCounts({ tokenRequests: 1, apiRequests: 2, apiByStatus: { 401: 1, 200: 1 } });
    });

    it("a second 401 on a GET is handed back as the Response, after one refresh only", async () => {
      const bank = await warmClient(BOTH_SCOPES);
      addApiFault({ status: 401, count: 5, headers: { "WWW-Authenticate": bearer('error="invalid_token"') }, body: "" });
      const res = await bank.fetch("/v1/transactions");
      assert.equal(res.status, 401);
      await res.arrayBuffer();
      await assertCounts({ tokenRequests: 1, apiRequests: 2, apiByStatus: { 401: 2 } });
    });

    it("a POST is not retried on 401 (no new token, one request)", async () => {
      const bank = await warmClient(BOTH_SCOPES);
      sb.control.revoke();
      const res = await bank.fetch("/v1/echo", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
      assert.equal(res.status, 401);
      await res.arrayBuffer();
      await assertCounts({ tokenRequests: 0, apiRequests: 1, apiByStatus: { 401: 1 } });
    });

    it("an API that never answers: timeout after timeoutMs", async () => {
      const bank = await warmClient({ ...BOTH_SCOPES, timeoutMs: 300 });
      addApiFault({ hang: true });
      await expectError(bank.fetch("/v1/transactions"), "timeout", { mayHaveReachedServer: true });
    });

    it("a redirect to another origin is handed back, not followed: that origin never sees the token", async () => {
      const bank = await warmClient(BOTH_SCOPES);
      addApiFault({ status: 302, redirect: `${other.url}/v1/transactions` });
      const res = await bank.fetch("/v1/transactions");
      assert.equal(res.status, 302);
      await res.arrayBuffer();
      assert.deepEqual(other.seen, [], "the other origin saw nothing");
      assert.deepEqual(sent.map((s) => new URL(s.url).origin), [sb.url]);
    });
  });

  // ---- credentials and printing ----

  describe("credentials and printing", () => {
    it("wrong credentials: invalid_client suggesting the environment (sandbox vs production), no API request", async () => {
      const bank = makeClient({ clientSecret: WRONG_SECRET });
      const err = await expectError(bank.getBalance(DOC_ACCOUNT), "invalid_client", {
        status: 401,
        oauthError: "invalid_client",
        mayHaveReachedServer: true,
      });
      assert.match(err.message, /environment/);
      assert.match(err.message, /sandbox and production/);
      await assertCounts({ tokenRequests: 1, apiRequests: 0 });
    });

    it("an unknown client id: invalid_client too", async () => {
      const bank = makeClient({ clientId: "no-such-client" });
      const err = await expectError(bank.fetch("/v1/transactions"), "invalid_client");
      assert.match(err.message, /sandbox and production/);
      await assertCounts({ tokenRequests: 1, apiRequests: 0 });
    });

    it('environment "sandbox" (a string) is a config error that says the credentials differ', () => {
      const err = thrownBy(
        () => new QBankClient({ environment: "sandbox", clientId: CLIENT.clientId, clientSecret: CLIENT.clientSecret }),
      );
      assertQBankError(err, "config");
      assert.match(err.message, /sandbox and production credentials differ/);
      assertClean(err);
    });

    it("the client and its TokenManager print no secret and no token", async () => {
      const bank = makeClient();
      await bank.getBalance(DOC_ACCOUNT);
      assertNoneContain(
        {
          "String(bank)": String(bank),
          "JSON.stringify(bank)": JSON.stringify(bank),
          "util.inspect(bank)": inspect(bank, { showHidden: true, depth: Infinity }),
          "String(bank.tokens)": String(bank.tokens),
          "JSON.stringify(bank.tokens)": JSON.stringify(bank.tokens),
          "util.inspect(bank.tokens)": inspect(bank.tokens, { showHidden: true, depth: Infinity }),
        },
        forbidden(),
      );
    });
  });

  describe("every error above, against every token issued in this file", () => {
    it("holds no client secret and no token in any rendering", () => {
      assert.ok(seenErrors.length > 50, `errors were collected (${seenErrors.length})`);
      assert.ok(issuedTokens.size > 10, `tokens were recorded (${issuedTokens.size})`);
      for (const err of seenErrors) assertClean(err);
      assertNoneContain(Object.fromEntries(allUrls.map((u, i) => [`URL #${i + 1} handed to fetch`, u])), tokenForms(issuedTokens));
    });
  });
});
