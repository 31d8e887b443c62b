// One caller's AbortSignal shared by many concurrent calls: no listener piles up on it (Node
// warns from the 11th abort listener), and aborting it still reaches every call.
import { test } from "node:test";
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { startSandbox, DEFAULT_CLIENTS } from "../../src/testing/sandbox.mjs";
import { PKG } from "./harness.mjs";

const { QBankClient } = await import(`${PKG}/node.js`);
const CLIENT = DEFAULT_CLIENTS[0];

/** A sandbox and a client of it (with `options`), closed after `fn(bank, sb)`. */
async function withBank(fn, options = {}) {
  const sb = await startSandbox();
  const bank = new QBankClient({
    environment: { tokenUrl: sb.tokenUrl, apiBaseUrl: sb.apiBaseUrl },
    clientId: CLIENT.clientId,
    clientSecret: CLIENT.clientSecret,
    allowInsecureHttp: true,
    ...options,
  });
  try {
    await fn(bank, sb);
  } finally {
    bank.close();
    await sb.close();
  }
}

test("50 concurrent calls sharing one AbortSignal: no MaxListenersExceededWarning, and an abort reaches them all", () =>
  withBank(async (bank, sb) => {
    const warnings = [];
    const onWarning = (w) => warnings.push(w.name);
    process.on("warning", onWarning);
    try {
      const shared = new AbortController();
      const balances = await Promise.all(
        Array.from({ length: 50 }, () => bank.getBalance("acct-realtime", { signal: shared.signal })),
      );
      assert.ok(balances.every((b) => b.availableBalance === "250.00"));
      await Promise.all(Array.from({ length: 50 }, () => bank.tokens.getToken({ signal: shared.signal, forceRefresh: true })));
      // Every call waits on a hung API; one abort must end all 20.
      sb.control.addFault({ target: "api", hang: true, count: 20 });
      const doomed = new AbortController();
      const waiting = Array.from({ length: 20 }, () =>
        bank.getBalance("acct-realtime", { signal: doomed.signal }).then(
          () => "resolved",
          (e) => e.code,
        ),
      );
      await new Promise((r) => setTimeout(r, 100));
      doomed.abort();
      assert.deepEqual(await Promise.all(waiting), Array(20).fill("aborted"));
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(warnings.filter((w) => w === "MaxListenersExceededWarning"), []);
    } finally {
      process.off("warning", onWarning);
    }
  }));

const sent = [];
test("a signal that is not an AbortSignal is a QBankError before anything is sent (getToken, getBalance cold and warm, fetch)", () =>
  withBank(
    async (bank) => {
      const codeOf = (promise) => promise.then(() => "resolved", (e) => `${e.name} ${e.code}`);
      for (const signal of ["soon", 1, {}, { aborted: false }, () => {}]) {
        assert.equal(await codeOf(bank.tokens.getToken({ signal })), "QBankError config", `getToken ${typeof signal}`);
        assert.equal(await codeOf(bank.getBalance("acct-realtime", { signal })), "QBankError config", `getBalance ${typeof signal}`);
        assert.equal(await codeOf(bank.fetch("/v1/accounts", { signal })), "QBankError invalid_argument", `fetch ${typeof signal}`);
      }
      assert.deepEqual(sent, [], "nothing was sent");
      await bank.getBalance("acct-realtime", { signal: null });
      const warm = sent.length;
      assert.equal(await codeOf(bank.getBalance("acct-realtime", { signal: "soon" })), "QBankError config", "with a cached token too");
      assert.equal(sent.length, warm, "nothing more was sent");
    },
    { fetch: (url, init) => (sent.push(String(url)), fetch(url, init)) },
  ));

test("a long-lived signal shared by many calls keeps one listener of ours and gets nothing per call (no AbortSignal.any follower: in Node 20 each leaves ~55 bytes on the source for good)", () =>
  withBank(async (bank) => {
    const shared = new AbortController();
    const originalAny = AbortSignal.any;
    let followers = 0;
    AbortSignal.any = function (...args) {
      if (args[0]?.includes?.(shared.signal)) followers += 1;
      return originalAny.apply(this, args);
    };
    try {
      for (let round = 0; round < 3; round++) {
        await Promise.all(Array.from({ length: 40 }, () => bank.getBalance("acct-realtime", { signal: shared.signal })));
        await bank.tokens.getToken({ signal: shared.signal, forceRefresh: round === 1 });
      }
    } finally {
      AbortSignal.any = originalAny;
    }
    assert.equal(followers, 0, "no follower signal was made from the caller's signal");
    assert.equal(getEventListeners(shared.signal, "abort").length, 1, "one listener of ours on the caller's signal, whatever the number of calls");
  }));
