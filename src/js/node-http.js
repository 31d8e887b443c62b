// The Node transport: what `send` (support.js) does with fetch, done with node:http(s) and one
// keep-alive agent per protocol. The package's Node entry installs it for clients without a
// `fetch` option (Deno, Bun and Workers keep their native fetch).
//
// Why: Node's fetch (undici) costs about four times the CPU of node:http per request on this
// workload, and much of that is the AbortSignal every request with a timeout must carry (see
// bench/README.md). Here the timeout destroys the request itself, so a request that times out
// still frees its socket at once, and idle keep-alive sockets never keep a process alive (the
// agent unrefs them).
//
// The contract is send's: never throws; resolves to { ok: true, status, headers, body } with only
// READ_HEADERS, or { ok: false, kind, answered, sent, status? }. Redirects are never followed.
// Copied beside support.js in the package by pkg-template/build.mjs.
import { READ_HEADERS, listen, notSent } from "./support.js";

/**
 * Free sockets are closed after this long idle: under the 5 s keep-alive timeout of Node servers
 * (the shortest common one), so a request is rarely written to a socket the server is closing.
 */
const IDLE_SOCKET_MS = 4000;

// node:https (with TLS) and node:zlib take ~5 ms to load: each is loaded on first use, so
// importing the package costs nothing for them and a loopback http client never loads TLS.
const modules = {};
const loading = {};
function load(name) {
  return (loading[name] ??= import(name).then((m) => (modules[name] = m.default ?? m)));
}
/** The module and keep-alive agent for a protocol, once loaded. */
const transports = {};
async function transportFor(protocol) {
  if (transports[protocol]) return transports[protocol];
  const lib = await load(protocol === "https:" ? "node:https" : "node:http");
  return (transports[protocol] ??= { lib, agent: new lib.Agent({ keepAlive: true, timeout: IDLE_SOCKET_MS }) });
}
/** What fetch decodes too (we ask for none, but a server may send it anyway). */
const DECODERS = {
  gzip: (zlib) => zlib.createGunzip(),
  "x-gzip": (zlib) => zlib.createGunzip(),
  deflate: (zlib) => zlib.createInflate(),
  br: (zlib) => zlib.createBrotliDecompress(),
};
/** How a kept-alive socket the server closed in the meantime fails (nothing reached it). */
const STALE_SOCKET = ["ECONNRESET", "EPIPE"];
const UTF8 = new TextDecoder(); // strips a BOM and replaces bad bytes, as Response.text() does

export async function nodeTransport(method, url, headers, body, timeoutMs, maxBytes, signal) {
  const target = targetOf(url);
  if (!target) return { ok: false, kind: "network", answered: false, sent: false };
  const transport = transports[target.protocol] || (await transportFor(target.protocol));
  return new Promise((resolve) => attempt({ method, target, transport, headers, body, timeoutMs, maxBytes, signal }, resolve, true));
}

/** The request options of a URL (remembered: a client asks for a handful of URLs). */
const targets = new Map();
function targetOf(url) {
  let t = targets.get(url);
  if (t === undefined) {
    let u;
    try {
      u = new URL(url);
    } catch {
      return undefined;
    }
    const hostname = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
    t = { protocol: u.protocol, options: { protocol: u.protocol, hostname, port: u.port || undefined, path: u.pathname + u.search } };
    if (targets.size >= 256) targets.clear();
    targets.set(url, t);
  }
  return t;
}

/**
 * An OAuth token request as oauth::token builds it (RFC 6749 §4.4: a form whose first field is grant_type).
 * @param {{ method: string, body?: string | null }} r
 */
const isTokenRequest = (r) => r.method === "POST" && typeof r.body === "string" && r.body.startsWith("grant_type=");

function attempt(r, resolve, mayRetry) {
  const { target } = r;
  if (r.signal && r.signal.aborted) return resolve({ ok: false, kind: "aborted", answered: false, sent: false });
  const headers = Array.isArray(r.headers) ? Object.fromEntries(r.headers) : { ...r.headers };
  if (r.body !== undefined && r.body !== null) headers["content-length"] = String(Buffer.byteLength(r.body));
  let settled = false;
  let answered = false;
  let status;
  let req;
  // Ends this attempt once: its timer and signal listener go, then `next` runs.
  const settle = (next) => {
    if (settled) return false;
    settled = true;
    clearTimeout(timer);
    unlisten();
    next();
    return true;
  };
  const finish = (answer) => settle(() => resolve(answer));
  const fail = (kind, error) => {
    const answer = { ok: false, kind, answered, sent: answered || !notSent(error) };
    if (status !== undefined) answer.status = status;
    if (finish(answer)) req.destroy();
  };
  const timer = setTimeout(() => fail("timeout"), r.timeoutMs);
  const unlisten = listen(r.signal, () => fail("aborted"));
  try {
    // The resend (mayRetry false) gets a connection of its own (agent: false), not a pooled one.
    req = r.transport.lib.request({ ...target.options, method: r.method, headers, agent: mayRetry && r.transport.agent });
  } catch (e) {
    // Refused synchronously (e.g. a header value Node will not send): nothing left.
    req = { destroy() {} };
    return fail("network", e);
  }
  req.on("error", (e) => {
    // The keep-alive race: the server closed an idle socket as we reused it. A GET is sent
    // again, once, on a new connection outside the pool (what Node's documentation recommends;
    // another pooled socket, idle as long, may be closed too). So is a token request (a POST
    // whose form body starts with grant_type=, as oauth::token builds it), exactly when: it went
    // out on a reused keep-alive socket, failed with ECONNRESET or EPIPE, no byte of an answer
    // had come, and it is not already the resend. Then the server most likely closed the socket
    // before reading it; and had it read it, a token request only mints a token nobody will see,
    // so a second one changes nothing. Any other POST, PUT or DELETE is never sent twice.
    if (!answered && mayRetry && (r.method === "GET" || isTokenRequest(r)) && req.reusedSocket && STALE_SOCKET.includes(e && e.code)) {
      settle(() => attempt(r, resolve, false));
      return;
    }
    fail("network", e);
  });
  req.on("response", (res) => {
    answered = true;
    status = res.statusCode;
    const declared = Number(res.headers["content-length"]);
    if (Number.isFinite(declared) && declared > r.maxBytes) {
      if (finish({ ok: false, kind: "too_large", status })) req.destroy();
      return;
    }
    const encoding = String(res.headers["content-encoding"] || "").trim().toLowerCase();
    const decode = DECODERS[encoding];
    if (decode && !modules["node:zlib"]) {
      // Rare (nobody asked for it): load zlib, then read the body as if it had just arrived.
      res.pause();
      load("node:zlib").then((zlib) => read(res, decode(zlib)), (e) => fail("network", e));
      return;
    }
    read(res, decode && decode(modules["node:zlib"]));
  });
  req.end(r.body === null ? undefined : r.body);

  function read(res, decoder) {
    const stream = decoder ? res.pipe(decoder) : res;
    const chunks = [];
    let total = 0;
    stream.on("data", (chunk) => {
      total += chunk.length;
      if (total > r.maxBytes) {
        if (finish({ ok: false, kind: "too_large", status })) req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    stream.on("end", () => {
      const hs = [];
      for (const name of READ_HEADERS) {
        const v = res.headers[name];
        if (v !== undefined) hs.push([name, Array.isArray(v) ? v.join(", ") : v]);
      }
      const bytes = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, Math.min(total, r.maxBytes));
      finish({ ok: true, status, headers: hs, body: UTF8.decode(bytes) });
    });
    stream.on("error", (e) => fail("network", e));
    // The connection broke mid-body (or a body shorter than its Content-Length).
    res.on("close", () => {
      if (!res.complete) fail("network");
    });
    if (decoder) res.resume();
  }
}
