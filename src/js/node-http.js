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
// Type-checked with support.js (tsc -p tsconfig.checkjs.json): the types are JSDoc comments only.
import { READ_HEADERS, listen, notSent } from "./support.js";

/**
 * @typedef {import("./support.js").Exchange} Exchange
 * @typedef {import("./support.js").Failure} Failure
 * @typedef {import("./support.js").RequestHeaders} RequestHeaders
 * @typedef {import("./support.js").SignalLike} SignalLike
 * @typedef {import("./support.js").Transport} Transport
 *
 * @typedef {{ "node:http": typeof import("node:http"), "node:https": typeof import("node:https"), "node:zlib": typeof import("node:zlib") }} Modules
 *   the modules loaded on first use
 *
 * @typedef {object} Protocol a protocol's module and keep-alive agent
 * @property {Modules["node:http"] | Modules["node:https"]} lib
 * @property {import("node:http").Agent} agent
 *
 * @typedef {object} Target a URL as node:http's request options
 * @property {string} protocol
 * @property {import("node:http").RequestOptions} options
 *
 * @typedef {object} Request one request, as `attempt` sends it (again, after a stale socket)
 * @property {string} method
 * @property {Target} target
 * @property {Protocol} transport
 * @property {RequestHeaders} headers
 * @property {string | null | undefined} body
 * @property {number} timeoutMs
 * @property {number} maxBytes
 * @property {SignalLike | null | undefined} signal
 *
 * @typedef {{ destroy(): void, reusedSocket?: undefined }} Refused what stands for the request
 *   when node:http refused it synchronously
 */

/**
 * Free sockets are closed after this long idle: under the 5 s keep-alive timeout of Node servers
 * (the shortest common one), so a request is rarely written to a socket the server is closing.
 */
const IDLE_SOCKET_MS = 4000;

// node:https (with TLS) and node:zlib take ~5 ms to load: each is loaded on first use, so
// importing the package costs nothing for them and a loopback http client never loads TLS.
/** @type {Partial<Modules>} */
const modules = {};
/** @type {{ [N in keyof Modules]?: Promise<Modules[N]> }} */
const loading = {};
/**
 * @template {keyof Modules} N
 * @param {N} name
 * @returns {Promise<Modules[N]>}
 */
function load(name) {
  return (loading[name] ??= import(name).then((m) => (modules[name] = m.default ?? m)));
}
/**
 * The module and keep-alive agent for a protocol, once loaded.
 * @type {Record<string, Protocol | undefined>}
 */
const transports = {};
/** @param {string} protocol */
async function transportFor(protocol) {
  if (transports[protocol]) return transports[protocol];
  const lib = await load(protocol === "https:" ? "node:https" : "node:http");
  return (transports[protocol] ??= { lib, agent: new lib.Agent({ keepAlive: true, timeout: IDLE_SOCKET_MS }) });
}
/**
 * What fetch decodes too (we ask for none, but a server may send it anyway).
 * @type {Record<string, ((zlib: Modules["node:zlib"]) => import("node:stream").Transform) | undefined>}
 */
const DECODERS = {
  gzip: (zlib) => zlib.createGunzip(),
  "x-gzip": (zlib) => zlib.createGunzip(),
  deflate: (zlib) => zlib.createInflate(),
  br: (zlib) => zlib.createBrotliDecompress(),
};
/** How a kept-alive socket the server closed in the meantime fails (nothing reached it). */
/** @type {unknown[]} */
const STALE_SOCKET = ["ECONNRESET", "EPIPE"];
const UTF8 = new TextDecoder(); // strips a BOM and replaces bad bytes, as Response.text() does

/**
 * A Transport (support.js): send's contract.
 * @param {string} method
 * @param {string} url
 * @param {RequestHeaders} headers
 * @param {string | null | undefined} body
 * @param {number} timeoutMs
 * @param {number} maxBytes
 * @param {SignalLike | null | undefined} signal
 * @returns {Promise<Exchange>}
 */
export async function nodeTransport(method, url, headers, body, timeoutMs, maxBytes, signal) {
  const target = targetOf(url);
  if (!target) return { ok: false, kind: "network", answered: false, sent: false };
  const transport = transports[target.protocol] || (await transportFor(target.protocol));
  return new Promise((resolve) => attempt({ method, target, transport, headers, body, timeoutMs, maxBytes, signal }, resolve, true));
}

/**
 * The request options of a URL (remembered: a client asks for a handful of URLs).
 * @type {Map<string, Target>}
 */
const targets = new Map();
/** @param {string} url */
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

/**
 * @param {Request} r
 * @param {(answer: Exchange) => void} resolve
 * @param {boolean} mayRetry
 */
function attempt(r, resolve, mayRetry) {
  const { target } = r;
  if (r.signal && r.signal.aborted) return resolve({ ok: false, kind: "aborted", answered: false, sent: false });
  const headers = Array.isArray(r.headers) ? Object.fromEntries(r.headers) : { ...r.headers };
  if (r.body !== undefined && r.body !== null) headers["content-length"] = String(Buffer.byteLength(r.body));
  let settled = false;
  let answered = false;
  /** @type {number | undefined} */
  let status;
  /** @type {import("node:http").ClientRequest | Refused} */
  let req;
  /**
   * Ends this attempt once: its timer and signal listener go, then `next` runs.
   * @param {() => void} next
   */
  const settle = (next) => {
    if (settled) return false;
    settled = true;
    clearTimeout(timer);
    unlisten();
    next();
    return true;
  };
  /** @param {Exchange} answer */
  const finish = (answer) => settle(() => resolve(answer));
  /**
   * @param {Failure["kind"]} kind
   * @param {unknown} [error]
   */
  const fail = (kind, error) => {
    /** @type {Failure} */
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
  req.on("error", /** @param {NodeJS.ErrnoException} e */ (e) => {
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
    // (zlib is loaded when there is a decoder: see above)
    read(res, decode && decode(/** @type {Modules["node:zlib"]} */ (modules["node:zlib"])));
  });
  req.end(r.body === null ? undefined : r.body);

  /**
   * @param {import("node:http").IncomingMessage} res
   * @param {import("node:stream").Transform | undefined} decoder
   */
  function read(res, decoder) {
    /** @type {import("node:stream").Readable} */
    const stream = decoder ? res.pipe(decoder) : res;
    /** @type {Buffer[]} */
    const chunks = [];
    let total = 0;
    stream.on("data", /** @param {Buffer} chunk */ (chunk) => {
      total += chunk.length;
      if (total > r.maxBytes) {
        if (finish({ ok: false, kind: "too_large", status })) req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    stream.on("end", () => {
      /** @type {[string, string][]} */
      const hs = [];
      for (const name of READ_HEADERS) {
        const v = res.headers[name];
        if (v !== undefined) hs.push([name, Array.isArray(v) ? v.join(", ") : v]);
      }
      const bytes = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, Math.min(total, r.maxBytes));
      // (a client response always has its status: set by the response handler, before read)
      finish({ ok: true, status: /** @type {number} */ (status), headers: hs, body: UTF8.decode(bytes) });
    });
    stream.on("error", (e) => fail("network", e));
    // The connection broke mid-body (or a body shorter than its Content-Length).
    res.on("close", () => {
      if (!res.complete) fail("network");
    });
    if (decoder) res.resume();
  }
}
