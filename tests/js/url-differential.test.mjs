// Issue 17, part 6: a differential test of our URL and API-path checks against the runtime's
// WHATWG `URL`, through the built package's public surface (the real code path, wasm included).
//
// On more than 100,000 generated inputs (backslashes, tabs, user-info, percent-encoded hosts, IPv4
// shorthands, IPv6 forms, zone ids, trailing dots, explicit ports, `//` paths, punycode labels,
// dot segments, `;` `@` `'` in paths and queries, upper-case schemes and hosts, ...):
//
// - endpoints (tokenUrl of a TokenManager, apiBaseUrl of a QBankClient, baseUrl of qpayTokenUrl):
//   whenever ours accepts one, `new URL(input)` accepts it too, and the URL ours then hands to
//   fetch is exactly WHATWG's href (so the same origin, path and query), already in the form
//   `new URL` writes (fetch requests exactly what was checked);
// - API paths (`client.fetch(path)` on several base URLs) and account ids (`getBalance(id)`):
//   every URL handed to fetch is on the configured origin, a path stays under the base path, an
//   account id is exactly one path segment that decodes back to the id, and WHATWG's reading of
//   the same input gives the same URL.
//
// Refusing more than WHATWG is fine; accepting differently never. The PRNG is seeded
// (URLDIFF_SEED=<n> to replay another run; URLDIFF_INPUTS=<n> to change the count;
// URLDIFF_DUMP=<file> to keep every discrepancy) and the figures per input kind are printed.
// A last check goes through every code point of the BMP as a one-letter xn-- label.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync } from "node:fs";
import { PKG_URL, TokenManager, QBankClient } from "./token-support.mjs";

const { qpayTokenUrl } = await import(PKG_URL);

const SEED = Number(process.env.URLDIFF_SEED ?? 20261204) >>> 0;
const TOTAL = Number(process.env.URLDIFF_INPUTS ?? 102_000);
/** A file to append every discrepancy to, one JSON line each (the assertion shows the first 25). */
const DUMP = process.env.URLDIFF_DUMP;
/** Shares of TOTAL: endpoint URLs (each tried on the three endpoint options), API paths, account ids. */
const SHARE = { endpoint: 0.45, path: 0.4, account: 0.15 };

const CLIENT = { clientId: "urldiff-client", clientSecret: "urldiff-secret-Xq7#p2Lk9vR4" };
const TOKEN_URL = "https://auth.example.com/token";
const TOKEN_BODY = JSON.stringify({ access_token: "urldiff-access-token", token_type: "Bearer", expires_in: 3600 });

// ---- the PRNG and small helpers ----

/** mulberry32: a small, fast, seeded PRNG (uniform in [0, 1)). */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = prng(SEED);
const int = (n) => Math.floor(random() * n);
const chance = (p) => random() < p;
const pick = (list) => list[int(list.length)];
const repeat = (n, f) => Array.from({ length: n }, f).join("");
const hex = (n, digits = 0) => n.toString(16).padStart(digits, "0");
const randomCase = (s) => [...s].map((c) => (chance(0.5) ? c.toUpperCase() : c)).join("");
/** Sometimes upper-cases a string, or some of its letters. */
const maybeCase = (s) => (chance(0.15) ? s.toUpperCase() : chance(0.1) ? randomCase(s) : s);

/** RFC 3492 Punycode, to write labels of any code points (valid for IDNA or not). */
function punycode(input) {
  const cps = Array.from(input, (c) => c.codePointAt(0));
  const digit = (d) => String.fromCharCode(d + 22 + 75 * (d < 26));
  const adapt = (delta, points, first) => {
    delta = first ? Math.floor(delta / 700) : delta >> 1;
    delta += Math.floor(delta / points);
    let k = 0;
    while (delta > 455) {
      delta = Math.floor(delta / 35);
      k += 36;
    }
    return k + Math.floor((36 * delta) / (delta + 38));
  };
  let out = cps.filter((c) => c < 0x80).map((c) => String.fromCharCode(c)).join("");
  const basic = out.length;
  let h = basic;
  if (basic > 0) out += "-";
  let n = 128;
  let delta = 0;
  let bias = 72;
  while (h < cps.length) {
    const m = Math.min(...cps.filter((c) => c >= n));
    delta += (m - n) * (h + 1);
    n = m;
    for (const c of cps) {
      if (c < n) delta += 1;
      if (c === n) {
        let q = delta;
        for (let k = 36; ; k += 36) {
          const t = k <= bias ? 1 : k >= bias + 26 ? 26 : k - bias;
          if (q < t) break;
          out += digit(t + ((q - t) % (36 - t)));
          q = Math.floor((q - t) / (36 - t));
        }
        out += digit(q);
        bias = adapt(delta, h + 1, h === basic);
        delta = 0;
        h += 1;
      }
    }
    delta += 1;
    n += 1;
  }
  return out;
}

// ---- generators: each returns one input string of its kind ----

const LETTERS = "abcdefghijklmnopqrstuvwxyz";
const LABEL_CHARS = `${LETTERS}0123456789-_`;
const label = () => repeat(1 + int(chance(0.05) ? 70 : 10), () => pick(LABEL_CHARS));
const dnsName = () => maybeCase(Array.from({ length: 1 + int(4) }, label).join("."));

/** Code point pools for punycode labels: some valid under IDNA (UTS 46), many not. */
const UNICODE_POOLS = [
  [0x61, 0x7a], // ASCII letters (an all-ASCII xn-- label)
  [0xdf, 0xff], // Latin-1 lower case (and ÷)
  [0xc0, 0xde], // Latin-1 upper case (mapped, so invalid in a xn-- label)
  [0x100, 0x17f], // Latin Extended-A, upper and lower
  [0x3b1, 0x3c9], // Greek lower case
  [0x391, 0x3a9], // Greek upper case
  [0x430, 0x45f], // Cyrillic lower case
  [0x300, 0x36f], // combining marks
  [0x5d0, 0x5ea], // Hebrew (right to left)
  [0x621, 0x64a], // Arabic (right to left)
  [0x660, 0x669], // Arabic-Indic digits
  [0x4e00, 0x9fa5], // CJK
  [0x3041, 0x3096], // Hiragana
  [0xac00, 0xd7a3], // Hangul syllables
  [0x1100, 0x11ff], // Hangul jamo
  [0x200b, 0x200f], // zero-width and direction marks
  [0xad, 0xad], // soft hyphen
  [0xfb00, 0xfb06], // ligatures (compatibility-mapped)
  [0xff01, 0xff5e], // full-width forms
  [0x1f600, 0x1f64f], // emoji
  [0x2160, 0x217f], // Roman numerals
  [0x2024, 0x2026], // dot leaders
];
const unicodeLabel = () => {
  const pools = [pick(UNICODE_POOLS), pick(UNICODE_POOLS)];
  return repeat(1 + int(5), () => {
    if (chance(0.25)) return pick(`${LETTERS}0123456789-`);
    const [lo, hi] = pick(pools);
    return String.fromCodePoint(lo + int(hi - lo + 1));
  });
};
const punyLabel = () => {
  const p = random();
  if (p < 0.75) return maybeCase(`xn--${punycode(unicodeLabel())}`);
  if (p < 0.9) return `xn--${repeat(int(8), () => pick(LABEL_CHARS))}`; // arbitrary text after xn--
  return pick(["xn--", "xn---", "xn--a", "xn--zz", "xn--ab-", "XN--BCHER-KVA", "xn--bcher-kva", "xn--tda", "xn--wca", "xn--1ca"]);
};
const punyHost = () => {
  const labels = Array.from({ length: 1 + int(3) }, () => (chance(0.6) ? punyLabel() : label()));
  if (chance(0.1)) labels.push(unicodeLabel()); // raw non-ASCII: always refused by ours
  return labels.join(".");
};

const decimalOctet = () => pick([0, 1, 10, 127, 192, 255, 256, int(256), int(256), int(256)]);
const ipv4Part = () => {
  const n = decimalOctet();
  const p = random();
  if (p < 0.7) return String(n);
  if (p < 0.8) return `0${n.toString(8)}`;
  if (p < 0.9) return `0${pick(["x", "X"])}${hex(n)}`;
  return pick(["", "00", "0x", "4294967295", "4294967296", "09", "1e1", String(int(1 << 24))]);
};
const ipv4Host = () => {
  if (chance(0.35)) return `${pick([127, 10, 192, int(256)])}.${int(256)}.${int(256)}.${int(256)}`;
  const parts = Array.from({ length: pick([1, 2, 3, 4, 4, 5]) }, ipv4Part);
  let host = parts.join(".");
  if (chance(0.1)) host = `${label()}.${host}`;
  if (chance(0.1)) host += ".";
  return host;
};

const h16 = () => {
  const v = pick([0, 0, 0, 1, 0xffff, int(0x10000), int(0x100)]);
  const s = chance(0.15) ? hex(v, 4) : hex(v);
  return chance(0.2) ? s.toUpperCase() : s;
};
const ipv6Body = () => {
  const p = random();
  if (p < 0.08) return pick(["::1", "::", "0:0:0:0:0:0:0:1", "::0:1", "0::1", "::ffff:127.0.0.1", "::127.0.0.1"]);
  if (p < 0.16) return `::ffff:${ipv4Host()}`;
  const n = pick([8, 8, 7, 6, 5, 3, 2, 9]);
  const groups = Array.from({ length: n }, h16);
  if (chance(0.15)) groups.splice(Math.max(0, n - 2), 2, `${int(256)}.${int(256)}.${int(256)}.${int(256)}`);
  if (chance(0.6)) {
    // Compress a run (or put :: anywhere, which may leave too many groups).
    const at = int(groups.length + 1);
    const run = int(Math.min(3, groups.length - at) + 1);
    groups.splice(at, run, at === 0 || at === groups.length - run ? ":" : "");
    let s = groups.join(":");
    if (s.startsWith(":") && !s.startsWith("::")) s = `:${s}`;
    if (s.endsWith(":") && !s.endsWith("::")) s += ":";
    return s;
  }
  return groups.join(":");
};
const ipv6Host = () => {
  let body = ipv6Body();
  if (chance(0.12)) body += pick(["%25eth0", "%eth0", "%251", "%25"]); // zone ids
  const p = random();
  if (p < 0.04) return body; // unbracketed
  if (p < 0.07) return `[${body}`;
  if (p < 0.09) return pick(["[v1.x]", "[]", "[::1]x", "[[::1]]"]);
  return `[${body}]`;
};

const percentHost = () => {
  const name = dnsName();
  const i = int(name.length + 1);
  const esc = pick(["%2e", "%2E", "%41", "%61", "%00", "%zz", "%", "%25", "%2f", "%3a", "%40", "%C3%BC", "%5b"]);
  return name.slice(0, i) + esc + name.slice(i);
};

const dottedHost = () => {
  const name = chance(0.7) ? dnsName() : ipv4Host();
  return pick([`${name}.`, `.${name}`, `${name}..`, name.replace(".", ".."), `${name}.${pick(["", "."])}`, "."]);
};

const loopbackHost = () =>
  pick(["localhost", "LOCALHOST", "LocalHost", "localhost.", "127.0.0.1", "127.1.2.3", "[::1]", "[0:0:0:0:0:0:0:1]", "api.localhost", "localhost.example"]);

const anyHost = () => {
  const p = random();
  if (p < 0.55) return dnsName();
  if (p < 0.7) return loopbackHost();
  if (p < 0.8) return ipv4Host();
  if (p < 0.9) return ipv6Host();
  return punyHost();
};

const port = () =>
  pick(["443", "80", "8080", "8443", "0", "", "65535", "65536", "0443", "000443", "99999999", "1a", "-1", ":1", String(int(65536)), String(int(65536))]);

/** Pieces of path segments and queries: plain, reserved, must-encode, escapes, dots. */
const PATH_PIECES = [
  "a", "v1", "token", "x", "Tok", "%41", "%2F", "%2f", "%25", "%27", "~", "-", "_", "!", "$", "&", "(", ")", "*", "+", ",", "=",
  ";", "x;y", ":", "@", "a@b", "'", "%2e", "%2E", ".", "..", ".%2e", "%2e.", "...", ".x",
  "[", "]", "|", "^", "`", "{", "}", '"', "<", ">", "%", "%zz", "%4", "é", "?", "#",
];
const segment = () => repeat(1 + int(3), () => (chance(0.7) ? pick(PATH_PIECES.slice(0, 22)) : pick(PATH_PIECES)));
const path = () => {
  const n = int(4);
  const segs = Array.from({ length: n }, () => (chance(0.05) ? "" : segment()));
  return n === 0 ? pick(["", "/"]) : `/${segs.join("/")}${chance(0.15) ? "/" : ""}`;
};
const QUERY_PIECES = ["a", "=", "&", "b=1", "'", "%27", "[", "]", "`", "{", "|", "^", "/", "?", ":", "@", "%", "%41", '"', "<", ";", "+", "!", "*", "(", ")", "é"];
const query = () => `?${repeat(int(5), () => pick(QUERY_PIECES))}`;

/** A URL from its parts; `over` replaces any of them. */
function url(over = {}) {
  const p = {
    scheme: chance(0.75) ? "https" : chance(0.8) ? "http" : pick(["wss", "ftp", "file", "HTTPS", "Http", "https+x", "1https"]),
    sep: "://",
    userinfo: "",
    host: anyHost(),
    port: chance(0.15) ? `:${port()}` : "",
    path: path(),
    query: chance(0.12) ? query() : "",
    fragment: chance(0.05) ? pick(["#", "#x", "#a'b"]) : "",
    ...over,
  };
  return `${maybeCase(p.scheme)}${p.sep}${p.userinfo}${p.host}${p.port}${p.path}${p.query}${p.fragment}`;
}

/** One character put somewhere in a string. */
function insert(s, chars) {
  const i = int(s.length + 1);
  return s.slice(0, i) + pick(chars) + s.slice(i);
}

/** The endpoint input kinds and their generators. */
const ENDPOINT_KINDS = {
  plain: () => url({ host: chance(0.5) ? dnsName() : loopbackHost(), query: "", fragment: "" }),
  "upper-case": () => url({ scheme: randomCase(pick(["https", "http"])), host: randomCase(chance(0.5) ? dnsName() : loopbackHost()) }),
  backslash: () => (chance(0.5) ? insert(url(), ["\\"]) : url({ sep: pick([":\\\\", ":/\\", "://\\"]) })),
  "tab/newline/space": () => insert(url(), ["\t", "\n", "\r", " ", "\u000b", "\f", "\u00a0", "\u0000", "\u007f"]),
  "user-info": () => url({ userinfo: pick(["user@", "user:pw@", "@", ":@", "a@b@", "%40@", "u:p%40@", "api.example.com@", "u:pw@evil.example@"]) }),
  "percent-host": () => url({ host: percentHost() }),
  "ipv4 shorthand": () => url({ host: ipv4Host() }),
  ipv6: () => url({ host: ipv6Host() }),
  "trailing/empty dots": () => url({ host: dottedHost() }),
  "explicit port": () => url({ port: `:${port()}` }),
  "// path": () => url({ path: pick(["//", "//x", "/a//b", "//evil.example/x", "///", "/a/"]) + (chance(0.5) ? path() : "") }),
  "scheme separator": () => url({ sep: pick([":", ":/", ":///", "://", ":////", "://:", ": //"]) }),
  punycode: () => url({ host: punyHost() }),
  "dot segments": () => url({ path: `/${pick(["a/", ""])}${pick([".", "..", "%2e", "%2E", ".%2e", "%2e.", "%2e%2e", "%2E%2e", "...", ".a"])}${pick(["", "/", "/b", "?x"])}` }),
  "path/query characters": () => url({ path: `/${segment()}/${segment()}`, query: chance(0.6) ? query() : "" }),
  "query ' and friends": () => url({ query: `?${pick(["a='b'", "q=O'Brien", "'", "x=%27", "a=1&b='", "[x]=1", "a=`", "a={}", "a=|"])}` }),
};

/** The API path input kinds (for `client.fetch(path)`). */
const absoluteLike = (base) => {
  const b = new URL(base);
  const host = pick([b.hostname, b.hostname.toUpperCase(), `${b.hostname}.`, `${b.hostname}.evil.example`, "evil.example", `evil.example@${b.hostname}`, `${b.hostname}@evil.example`, anyHost()]);
  const portPart = pick(["", "", b.port ? `:${b.port}` : "", ":443", ":80", `:${port()}`]);
  const scheme = pick([b.protocol.slice(0, -1), b.protocol.slice(0, -1).toUpperCase(), "https", "http", "wss"]);
  return `${scheme}${pick(["://", "://", ":", ":/", ":///", ":\\\\"])}${host}${portPart}${pick([b.pathname, path(), "", b.pathname + segment()])}${chance(0.2) ? query() : ""}`;
};
const PATH_KINDS = {
  "relative path": () => path().replace(/^\/+/, "") || segment(),
  "absolute path": () => path() || "/",
  "query only": () => query(),
  "// path": () => `${pick(["//", "///", "/\\", "\\\\", "\\/"])}${pick(["evil.example", "api.example.com", ""])}${path()}`,
  "dot segments": () => pick(["", "/", "v1/"]) + pick([".", "..", "%2e", "%2E%2e", ".%2e", "%2e."]) + pick(["", "/", "/admin", "?x=1", "#f"]),
  "full URL": (base) => absoluteLike(base),
  "tab/backslash/space": () => insert(path() || "/x", ["\t", "\n", " ", "\\", "\u0000", "é"]),
  "scheme-like": () => `${pick(["v1", "a", "javascript", "mailto", "api.example.com", "localhost", ""])}:${pick(["x", "//x", "8080/x", "alert(1)"])}`,
  "path/query characters": () => `/${segment()}/${segment()}${chance(0.5) ? query() : ""}${chance(0.1) ? "#x" : ""}`,
};

/** The account id input kinds (for `getBalance(id)`). */
const ACCOUNT_PIECES = ["a", "1", "-", "_", "~", ".", "..", "/", "\\", "?", "#", "%", "%2F", "%2e", " ", "\t", ":", "@", "'", "+", "!", "é", "ü", "😀", "\u200b", "\u202e", "\ufeff", "\u0000", "\u00ad", "[", "]", "|", "&", "=", ";", "*", "(", "$", "\ud800"];
const ACCOUNT_KINDS = {
  uuid: () => `${hex(int(2 ** 32), 8)}-${hex(int(65536), 4)}-${hex(int(65536), 4)}-${hex(int(65536), 4)}-${hex(int(2 ** 32), 8)}${hex(int(65536), 4)}`,
  "reserved characters": () => repeat(1 + int(6), () => pick(ACCOUNT_PIECES)),
  "dots only": () => repeat(1 + int(3), () => "."),
  "long ids": () => repeat(120 + int(20), () => pick(LABEL_CHARS)),
  "printable ASCII": () => repeat(1 + int(12), () => String.fromCharCode(0x20 + int(95))),
};

// ---- the recording fetch: answers a token, a balance or 200, and remembers every URL ----

const requested = [];
function recordingFetch(url, init) {
  requested.push(String(url));
  const method = (init && init.method) || "GET";
  if (method === "POST") return Promise.resolve(json(TOKEN_BODY));
  // A balance for getBalance (any API path gets the same answer): the id is the last segment.
  const last = String(url).split("/").pop() ?? "";
  let id;
  try {
    id = decodeURIComponent(last);
  } catch {
    id = last; // an escape that is not UTF-8, in a path given to client.fetch
  }
  return Promise.resolve(json(JSON.stringify({ account_id: id, available_balance: "1.00", ledger_balance: "2.00" })));
}
function json(body) {
  return new Response(body, { status: 200, headers: { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) } });
}

/** `new URL(s)`, or null when WHATWG refuses it. */
function whatwg(s, base) {
  try {
    return new URL(s, base);
  } catch {
    return null;
  }
}

/** Figures per input kind: tried, accepted by both, refused by ours only, refused by both, wrong. */
class Figures {
  constructor(title) {
    this.title = title;
    this.rows = new Map();
    this.wrong = [];
  }
  count(kind, field) {
    const row = this.rows.get(kind) ?? { tried: 0, both: 0, oursOnly: 0, refusedByBoth: 0, wrong: 0 };
    row[field] += 1;
    if (field !== "tried") row.tried += 1;
    this.rows.set(kind, row);
  }
  /** An input ours accepted but WHATWG reads differently (or where a rule is broken). */
  fail(kind, surface, input, why) {
    this.count(kind, "wrong");
    if (this.wrong.length < (DUMP ? Infinity : 25)) this.wrong.push({ kind, surface, input, why });
  }
  total(field) {
    let n = 0;
    for (const row of this.rows.values()) n += row[field];
    return n;
  }
  print() {
    const w = Math.max(...[...this.rows.keys()].map((k) => k.length), 5);
    const line = (k, r) =>
      `  ${k.padEnd(w)} ${String(r.tried).padStart(7)} ${String(r.both).padStart(7)} ${String(r.oursOnly).padStart(7)} ${String(r.refusedByBoth).padStart(7)} ${String(r.wrong).padStart(6)}`;
    const out = [`${this.title}`, `  ${"kind".padEnd(w)} ${"tried".padStart(7)} ${"both ok".padStart(7)} ${"ours no".padStart(7)} ${"both no".padStart(7)} ${"wrong".padStart(6)}`];
    for (const [k, r] of [...this.rows].sort()) out.push(line(k, r));
    out.push(line("total", { tried: this.total("tried"), both: this.total("both"), oursOnly: this.total("oursOnly"), refusedByBoth: this.total("refusedByBoth"), wrong: this.total("wrong") }));
    console.log(out.join("\n"));
    if (DUMP) appendFileSync(DUMP, this.wrong.map((w) => `${JSON.stringify(w)}\n`).join(""));
  }
}

/** Whether an error is ours and of the expected code (anything else is a test failure). */
function assertOurs(err, codes) {
  assert.equal(err?.name, "QBankError", `not a QBankError: ${err}`);
  assert.ok(codes.includes(err.code), `unexpected code ${err.code}: ${err.message}`);
}

/** Whether `s` is exactly what `new URL` writes for it: the URL fetch requests is the one checked. */
function canonical(s) {
  const u = whatwg(s);
  return u !== null && u.href === s;
}

// ---- the endpoint options ----

/** tokenUrl: the token POST goes exactly to WHATWG's reading of the input. */
async function tryTokenUrl(fig, kind, input, insecure) {
  const w = whatwg(input);
  let tm;
  try {
    tm = new TokenManager({ ...CLIENT, tokenUrl: input, fetch: recordingFetch, autoRefresh: false, allowInsecureHttp: insecure });
  } catch (e) {
    assertOurs(e, ["config"]);
    return fig.count(kind, w ? "oursOnly" : "refusedByBoth");
  }
  try {
    requested.length = 0;
    await tm.getToken();
    const sent = requested[0];
    if (!w) return fig.fail(kind, "tokenUrl", input, `WHATWG refuses it; ours sends ${sent}`);
    if (sent !== w.href) return fig.fail(kind, "tokenUrl", input, `ours sends ${sent}, WHATWG reads ${w.href}`);
    if (!canonical(sent)) return fig.fail(kind, "tokenUrl", input, `fetch would request ${whatwg(sent)?.href}, not ${sent}`);
    fig.count(kind, "both");
  } finally {
    tm.close();
  }
}

/** apiBaseUrl: an API path goes under WHATWG's origin and path of the input. */
async function tryApiBase(fig, kind, input, insecure) {
  const w = whatwg(input);
  let bank;
  try {
    bank = new QBankClient({ ...CLIENT, environment: { tokenUrl: TOKEN_URL, apiBaseUrl: input }, fetch: recordingFetch, autoRefresh: false, allowInsecureHttp: insecure });
  } catch (e) {
    assertOurs(e, ["config"]);
    return fig.count(kind, w ? "oursOnly" : "refusedByBoth");
  }
  try {
    requested.length = 0;
    await bank.fetch("/v1/x");
    const sent = requested.at(-1);
    if (!w) return fig.fail(kind, "apiBaseUrl", input, `WHATWG refuses it; ours sends ${sent}`);
    const want = `${w.origin}${w.pathname.replace(/\/+$/, "")}/v1/x`;
    if (w.search || w.hash || w.username || w.password) return fig.fail(kind, "apiBaseUrl", input, `WHATWG sees more than origin and path: ${w.href}`);
    if (sent !== want) return fig.fail(kind, "apiBaseUrl", input, `ours sends ${sent}, WHATWG's origin and path give ${want}`);
    if (!canonical(sent)) return fig.fail(kind, "apiBaseUrl", input, `fetch would request ${whatwg(sent)?.href}, not ${sent}`);
    fig.count(kind, "both");
  } finally {
    bank.close();
  }
}

/** QPay's baseUrl: the token URL built on it is under WHATWG's origin and path of the input. */
function tryQPayBase(fig, kind, input, insecure) {
  const w = whatwg(input);
  let made;
  try {
    made = qpayTokenUrl({ baseUrl: input, allowInsecureHttp: insecure });
  } catch (e) {
    assertOurs(e, ["config"]);
    return fig.count(kind, w ? "oursOnly" : "refusedByBoth");
  }
  if (!w) return fig.fail(kind, "qpay baseUrl", input, `WHATWG refuses it; ours makes ${made}`);
  const want = `${w.origin}${w.pathname.replace(/\/+$/, "")}/auth/realms/qpay/protocol/openid-connect/token`;
  if (made !== want) return fig.fail(kind, "qpay baseUrl", input, `ours makes ${made}, WHATWG's origin and path give ${want}`);
  if (!canonical(made)) return fig.fail(kind, "qpay baseUrl", input, `fetch would request ${whatwg(made)?.href}, not ${made}`);
  fig.count(kind, "both");
}

// ---- API paths and account ids ----

const BASES = [
  { url: "https://api.example.com", insecure: false },
  { url: "https://api.example.com/qbank/", insecure: false },
  { url: "HTTPS://API.Example.COM:443/QBank/v2", insecure: false },
  { url: "http://127.0.0.1:8080/base/", insecure: true },
  { url: "https://[2001:db8::1]:8443/p;v=1/", insecure: false },
  { url: "http://[::1]:9000/api", insecure: true },
];

/** Where `client.fetch(input)` must go, as WHATWG reads it; `absolute` for a URL with a scheme. */
function expectedApiUrl(base, input) {
  const b = new URL(base);
  const prefix = b.pathname.replace(/\/+$/, "");
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(input)) return { absolute: true, w: whatwg(input), b, prefix };
  return { absolute: false, w: whatwg(`${b.origin}${prefix}/${input.replace(/^\//, "")}`), b, prefix };
}

async function tryApiPath(fig, kind, bank, base, input) {
  requested.length = 0;
  let res;
  try {
    res = await bank.fetch(input);
  } catch (e) {
    assertOurs(e, ["invalid_argument"]);
    assert.equal(requested.length, 0, "nothing is sent for a refused path");
    const { w } = expectedApiUrl(base.url, input);
    return fig.count(kind, w ? "oursOnly" : "refusedByBoth");
  }
  await res.text();
  const sent = requested.at(-1);
  const { absolute, w, b, prefix } = expectedApiUrl(base.url, input);
  const s = whatwg(sent);
  if (!s || s.origin !== b.origin) return fig.fail(kind, base.url, input, `fetched ${sent}, which leaves the origin ${b.origin}`);
  if (!absolute && !s.pathname.startsWith(`${prefix}/`)) return fig.fail(kind, base.url, input, `fetched ${sent}, which leaves the base path ${prefix}/`);
  if (!canonical(sent)) return fig.fail(kind, base.url, input, `fetch would request ${s.href}, not ${sent}`);
  if (!w) return fig.fail(kind, base.url, input, `WHATWG refuses it; ours fetched ${sent}`);
  if (w.origin !== b.origin) return fig.fail(kind, base.url, input, `WHATWG reads it on ${w.origin}; ours fetched ${sent}`);
  if (w.href !== sent) return fig.fail(kind, base.url, input, `WHATWG reads ${w.href}; ours fetched ${sent}`);
  fig.count(kind, "both");
}

async function tryAccount(fig, kind, bank, base, id) {
  requested.length = 0;
  try {
    await bank.getBalance(id);
  } catch (e) {
    assertOurs(e, ["invalid_argument"]);
    assert.equal(requested.length, 0, "nothing is sent for a refused account id");
    return fig.count(kind, "oursOnly");
  }
  const sent = requested.at(-1);
  const b = new URL(base.url);
  const prefix = `${b.pathname.replace(/\/+$/, "")}/v1/balances/`;
  const s = whatwg(sent);
  if (!s || s.origin !== b.origin) return fig.fail(kind, base.url, id, `fetched ${sent}, which leaves the origin ${b.origin}`);
  if (!canonical(sent)) return fig.fail(kind, base.url, id, `fetch would request ${s.href}, not ${sent}`);
  if (!s.pathname.startsWith(prefix)) return fig.fail(kind, base.url, id, `fetched ${sent}, outside ${prefix}`);
  const seg = s.pathname.slice(prefix.length);
  if (seg === "" || seg.includes("/") || s.search || s.hash) return fig.fail(kind, base.url, id, `fetched ${sent}: not exactly one segment`);
  if (id.isWellFormed() && decodeURIComponent(seg) !== id) return fig.fail(kind, base.url, id, `the segment ${seg} is not the id`);
  fig.count(kind, "both");
}

// ---- the test ----

describe(`URL checks × WHATWG URL (seed ${SEED}, ${TOTAL} inputs)`, { timeout: 300_000 }, () => {
  const report = [];
  const started = Date.now();

  it("every endpoint URL ours accepts is exactly what WHATWG reads (tokenUrl, apiBaseUrl, QPay baseUrl)", async () => {
    const fig = new Figures(`endpoint URLs (in turn as tokenUrl, apiBaseUrl and QPay baseUrl; seed ${SEED})`);
    const kinds = Object.entries(ENDPOINT_KINDS);
    const surfaces = [tryTokenUrl, tryApiBase, tryQPayBase];
    const n = Math.round(TOTAL * SHARE.endpoint);
    for (let i = 0; i < n; i += 1) {
      // Each round of the kinds on the next surface: every kind meets every surface.
      const [kind, make] = kinds[i % kinds.length];
      const surface = surfaces[Math.floor(i / kinds.length) % surfaces.length];
      await surface(fig, kind, make(), chance(0.7));
    }
    report.push([n, fig]);
    fig.print();
    assert.deepEqual(fig.wrong, [], "ours accepted an endpoint URL that WHATWG reads differently");
    assert.ok(fig.total("both") > n * 0.1, `too few accepted endpoint inputs to compare: ${fig.total("both")}`);
  });

  /** Runs `n` inputs of the given kinds through `attempt` on clients of every base URL, picked at random. */
  async function onEveryBase(fig, kinds, n, attempt) {
    const banks = BASES.map((base) => ({
      base,
      bank: new QBankClient({ ...CLIENT, environment: { tokenUrl: TOKEN_URL, apiBaseUrl: base.url }, fetch: recordingFetch, autoRefresh: false, allowInsecureHttp: base.insecure }),
    }));
    const entries = Object.entries(kinds);
    try {
      for (let i = 0; i < n; i += 1) {
        const [kind, make] = entries[i % entries.length];
        const { base, bank } = pick(banks);
        await attempt(fig, kind, bank, base, make(base.url));
      }
    } finally {
      for (const { bank } of banks) bank.close();
    }
    report.push([n, fig]);
    fig.print();
  }

  it("every API path ours accepts stays on the origin and under the base path, as WHATWG reads it", async () => {
    const fig = new Figures(`API paths (client.fetch(path) on ${BASES.length} base URLs; seed ${SEED})`);
    const n = Math.round(TOTAL * SHARE.path);
    await onEveryBase(fig, PATH_KINDS, n, tryApiPath);
    assert.deepEqual(fig.wrong, [], "ours fetched a URL off the origin or base path, or one WHATWG reads differently");
    assert.ok(fig.total("both") > n * 0.2, `too few accepted API paths to compare: ${fig.total("both")}`);
  });

  it("every account id ours accepts is exactly one path segment under the base path", async () => {
    const fig = new Figures(`account ids (getBalance(id) on ${BASES.length} base URLs; seed ${SEED})`);
    const n = Math.round(TOTAL * SHARE.account);
    await onEveryBase(fig, ACCOUNT_KINDS, n, tryAccount);
    assert.deepEqual(fig.wrong, [], "ours fetched an account URL that is not one segment under the base path");
    assert.ok(fig.total("both") > n * 0.2, `too few accepted account ids to compare: ${fig.total("both")}`);
  });

  it("every one-letter xn-- label ours accepts is one WHATWG reads as written (all of U+0080 to U+FFFF)", () => {
    // Ours decides an xn-- label by the set of its code points, so each one is tried alone.
    const fig = new Figures("xn-- labels of one code point (QPay baseUrl https://xn--….example/, every code point of the BMP)");
    let n = 0;
    for (let cp = 0x80; cp <= 0xffff; cp += 1) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      n += 1;
      tryQPayBase(fig, `U+${hex(cp >> 12 << 12, 4).toUpperCase()}…`, `https://xn--${punycode(String.fromCodePoint(cp))}.example/`, false);
    }
    report.push([0, fig]);
    fig.print();
    assert.deepEqual(fig.wrong, [], "ours accepted an xn-- label that WHATWG refuses or writes differently");
    assert.ok(fig.total("both") > 20_000, `too few accepted labels: ${fig.total("both")}`);
    console.log(`  (${n} code points tried)`);
  });

  after(() => {
    console.log("(both ok: accepted by both, the same URL; ours no: refused by ours only; both no: refused by both; wrong: ours accepted, WHATWG reads it differently)");
    const inputs = report.reduce((n, [k]) => n + k, 0);
    const tries = report.reduce((n, [, f]) => n + f.total("tried"), 0);
    const sum = (field) => report.reduce((n, [, f]) => n + f.total(field), 0);
    console.log(
      `url differential: seed ${SEED}, ${inputs} generated inputs, ${tries} tries (with the xn-- sweep): ` +
        `${sum("both")} accepted by both, ${sum("oursOnly")} refused by ours only, ${sum("refusedByBoth")} refused by both, ` +
        `${sum("wrong")} accepted differently; ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  });
});
