// Helpers for the reliability matrices (tests/js/matrix.*.test.mjs): a case recorder that writes
// "cases tried / passed" to target/reliability/, a fake clock for the package (it reads time only
// through Date.now()), a fetch that does not use undici (so a jumping Date.now cannot disturb the
// HTTP client's own timers), and a tiny loopback server for answers the sandbox cannot shape.
// Not a test file.
import { it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { mkdirSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ROOT } from "../js/harness.mjs";

export const RELIABILITY_DIR = join(ROOT, "target", "reliability");

/**
 * Records every case of one matrix file: `rec.it(title, fn)` is node:test's `it` that also counts
 * the case as tried and, when it completes without throwing, as passed. `rec.write()` (call it in
 * an `after` hook; sandboxSuite does) writes target/reliability/<kind>/<file>.json, with the
 * fields of `extra`, or else of `rec.note` (an object a case may set).
 */
export function caseRecorder(kind, fileUrl) {
  const file = basename(fileURLToPath(fileUrl));
  const cases = [];
  const rec = {
    it(title, options, fn) {
      if (typeof options === "function") [options, fn] = [{}, options];
      return it(title, options, async (t) => {
        const c = { title, passed: false };
        cases.push(c);
        const started = performance.now();
        try {
          await fn(t);
          c.passed = true;
        } finally {
          c.ms = Math.round(performance.now() - started);
        }
      });
    },
    /** Counts a case that is not a node:test `it` of its own (a row checked inside a loop). */
    row(title, passed) {
      cases.push({ title, passed });
    },
    get cases() {
      return cases;
    },
    write(extra = rec.note ?? {}) {
      const dir = join(RELIABILITY_DIR, kind);
      mkdirSync(dir, { recursive: true });
      const out = {
        file: `tests/js/${file}`,
        tried: cases.length,
        passed: cases.filter((c) => c.passed).length,
        failed: cases.filter((c) => !c.passed).map((c) => c.title),
        generatedAt: new Date().toISOString(),
        ...extra,
        cases,
      };
      writeFileSync(join(dir, `${file.replace(/\.test\.mjs$/, "")}.json`), `${JSON.stringify(out, null, 2)}\n`);
      console.log(`${kind}: ${out.file}: ${out.tried} cases tried, ${out.passed} passed`);
      return out;
    },
  };
  return rec;
}

/**
 * A fake clock: replaces Date.now (the package's only clock) with the real time plus an offset,
 * and moves the sandbox's clock the other way, so the server keeps real time while the client's
 * clock jumps. `restore()` puts everything back.
 */
export function fakeClock(sandbox) {
  const realNow = Date.now;
  const real = () => realNow.call(Date);
  let offset = 0;
  const apply = () => {
    Date.now = () => real() + offset;
    sandbox?.control.setClockOffset(-offset);
  };
  return {
    real,
    now: () => real() + offset,
    /** Jumps to the absolute client time `ms` (epoch ms). */
    set(ms) {
      offset = ms - real();
      apply();
    },
    /** Jumps by `ms` (negative: backwards). */
    advance(ms) {
      offset += ms;
      apply();
    },
    /** Freezes the client's clock at `ms` until the next set/advance/restore. */
    freeze(ms) {
      Date.now = () => ms;
      offset = ms - real();
      sandbox?.control.setClockOffset(-offset);
    },
    restore() {
      Date.now = realNow;
      offset = 0;
      sandbox?.control.setClockOffset(0);
    },
  };
}

/**
 * Runs `fn` with Math.random and Date.now fixed, so a manager made inside gets a known jitter seed
 * (the package seeds its jitter from both, once, at construction).
 */
export function withFixedRandom(value, fn) {
  const random = Math.random;
  const now = Date.now;
  Math.random = () => value;
  Date.now = () => 1_700_000_000_000;
  try {
    return fn();
  } finally {
    Math.random = random;
    Date.now = now;
  }
}

/**
 * A fetch over node:http with a new connection per request (no keep-alive, no undici): what the
 * clock-jump cases use, so that only the package sees the jumping clock.
 */
export function httpFetch(url, init = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(String(url));
    const headers = {};
    new Headers(init.headers).forEach((v, k) => {
      headers[k] = v;
    });
    const body = init.body === undefined || init.body === null ? undefined : Buffer.from(String(init.body));
    if (body) headers["content-length"] = String(body.length);
    headers.connection = "close";
    const abortError = () => new DOMException("This operation was aborted", "AbortError");
    const req = http.request(
      { hostname: u.hostname, port: u.port, path: `${u.pathname}${u.search}`, method: init.method ?? "GET", headers, agent: false },
      (res) => {
        const h = new Headers();
        for (let i = 0; i < res.rawHeaders.length; i += 2) h.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
        const stream = new ReadableStream({
          start(controller) {
            res.on("data", (c) => controller.enqueue(new Uint8Array(c)));
            res.on("end", () => controller.close());
            res.on("error", (e) => controller.error(e));
            res.on("aborted", () => controller.error(new TypeError("terminated")));
          },
          cancel() {
            res.destroy();
          },
        });
        const nullBody = [101, 204, 205, 304].includes(res.statusCode);
        resolve(new Response(nullBody ? null : stream, { status: res.statusCode, headers: h }));
      },
    );
    req.on("error", (e) => reject(new TypeError("fetch failed", { cause: e })));
    const signal = init.signal;
    if (signal) {
      if (signal.aborted) {
        req.destroy();
        reject(abortError());
        return;
      }
      signal.addEventListener(
        "abort",
        () => {
          req.destroy();
          reject(abortError());
        },
        { once: true },
      );
    }
    if (body) req.write(body);
    req.end();
  });
}

/**
 * A loopback server answering every request with `handler(req, res, body)`; counts requests and
 * keeps their headers and bodies.
 */
export async function startStub(handler, { port = 0 } = {}) {
  const requests = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      handler(req, res, body);
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    requests,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Polls `predicate` in real time (immune to a fake Date.now) until truthy, or fails. */
export async function eventually(predicate, what, timeoutMs = 5000) {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Whether `text` contains any of the named forbidden values; returns the names found. */
export function containsAny(text, forbidden) {
  if (text === undefined || text === null) return [];
  return Object.entries(forbidden)
    .filter(([, v]) => v && String(text).includes(v))
    .map(([k]) => k);
}
