// The two Workers of the coordinator tests (./workerd.mjs serves them), as source text that is
// bundled from the installed package. Not a test file.

/** The namespaces of objects that fail, defined by service `coord` beside TokenCoordinator. */
export const FAULT_CLASSES = ["ThrowingCoordinator", "UnreachableCoordinator", "HangingCoordinator", "GarbageCoordinator", "EmptyCoordinator"];

/**
 * Service `coord`: the user's re-export of the package's Durable Object class (with
 * COORD_BREAK=no-alarm or no-forget, a subclass whose alarm or forget does nothing), and objects that fail in each way a
 * coordinator can: every call throws; the object cannot even start (its constructor throws);
 * `token` never answers (within a minute); it answers a string that is no entry; it answers
 * "no token" (null).
 */
const BROKEN = { "no-alarm": "async alarm() {}", "no-forget": "async forget() {}" };
export const COORD_SOURCE = (brk) => `import { DurableObject } from "cloudflare:workers";
${
  BROKEN[brk]
    ? `import { TokenCoordinator as Coordinator } from "qbank-connect";
export class TokenCoordinator extends Coordinator {
  ${BROKEN[brk]}
}`
    : `export { TokenCoordinator } from "qbank-connect";`
}

export class ThrowingCoordinator extends DurableObject {
  async token() { throw new Error("the object failed"); }
  async forget() { throw new Error("the object failed"); }
  async status() { throw new Error("the object failed"); }
}
export class UnreachableCoordinator extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    throw new Error("the object cannot start");
  }
}
export class HangingCoordinator extends DurableObject {
  async token() { await new Promise((r) => setTimeout(r, 60_000)); return null; }
}
export class GarbageCoordinator extends DurableObject {
  async token() { return "AQ-not-an-entry-at-all"; }
}
export class EmptyCoordinator extends DurableObject {
  async token() { return null; }
}

export default {
  async fetch() {
    return new Response("coord");
  },
};
`;

/**
 * Services a, b, c: one module-level QBankClient per namespace binding (`?ns=`, default
 * QBANK_TOKENS), built on the first call as the README's Worker builds its client, with
 * `store: durableObjectStore(env[ns])` (no store with COORD_BREAK=no-coordinator). The namespace
 * is handed over through a thin wrapper that only remembers which entry names the client asked
 * for, so that /object can ask that object for its status() (the names never leave the isolate);
 * ns=STUB_THROWS is a namespace whose get() throws (a binding that cannot reach its object).
 *
 * Routes: /call (one getBalance; ?tag= also records it in the isolate's log, for a caller that
 * goes away), /end?tag= (ends that tagged call, see below), /state, /object, /log; anything else
 * answers "ready".
 *
 * Local workerd does not notice a client's disconnect while a request runs (Cloudflare ends the
 * request then, and fires request.signal with enable_request_signal; runtimes.test.mjs ends its
 * requests the same way): a tagged call's signal is request.signal or /end?tag=, whichever fires
 * first, so the test ends it as Cloudflare would, the moment its client goes away.
 */
export const CLIENT_SOURCE = (brk) => `import { QBankClient, durableObjectStore } from "qbank-connect";
const NO_STORE = ${JSON.stringify(brk === "no-coordinator")};
const ACCOUNT = "acct-realtime";
const clients = new Map();
const log = [];
const ends = new Map();

function remembering(ns, names) {
  return {
    idFromName(name) { names.add(name); return ns.idFromName(name); },
    get(id, options) { return ns.get(id, options); },
    getByName(name, options) { names.add(name); return ns.getByName ? ns.getByName(name, options) : ns.get(ns.idFromName(name), options); },
    idFromString(s) { return ns.idFromString(s); },
    newUniqueId(options) { return ns.newUniqueId(options); },
  };
}

function unreachable(ns, names) {
  const overloaded = () => { throw new Error("Durable Object is overloaded"); };
  return { ...remembering(ns, names), get: overloaded, getByName: overloaded };
}

function clientFor(env, ctx, ns) {
  let c = clients.get(ns);
  if (c) return c;
  const names = new Set();
  const events = [];
  const binding = ns === "STUB_THROWS" ? unreachable(env.QBANK_TOKENS, names) : remembering(env[ns], names);
  const client = new QBankClient({
    environment: { tokenUrl: env.TOKEN_URL, apiBaseUrl: env.API_BASE_URL },
    clientId: env.CLIENT_ID,
    clientSecret: env.CLIENT_SECRET,
    allowInsecureHttp: true,
    ...(NO_STORE ? {} : { store: durableObjectStore(binding) }),
    waitUntil: (p) => ctx.waitUntil(p),
    onEvent: (e) => events.push({ type: e.type, source: e.source, step: e.step, failure: e.failure, reason: e.reason, background: e.background, code: e.code, at: e.at, expiresAt: e.expiresAt }),
    ...JSON.parse(env.OPTIONS),
  });
  c = { client, events, names };
  clients.set(ns, c);
  return c;
}

function counts(events) {
  const out = {};
  for (const e of events) {
    const key = [e.type, e.source, e.step, e.failure, e.reason].filter(Boolean).join(":");
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const ns = url.searchParams.get("ns") ?? "QBANK_TOKENS";
    if (url.pathname === "/call") {
      const tag = url.searchParams.get("tag");
      const c = clientFor(env, ctx, ns);
      let signal = request.signal;
      if (tag) {
        const end = new AbortController();
        request.signal.addEventListener("abort", () => end.abort());
        ends.set(tag, end);
        signal = end.signal;
      }
      const started = Date.now();
      const out = { service: env.SERVICE };
      try {
        const balance = await c.client.getBalance(ACCOUNT, { signal });
        out.ok = balance.accountId === ACCOUNT;
      } catch (e) {
        out.ok = false;
        out.code = (e && e.code) || (e && e.name) || "unknown";
        out.status = e && e.status;
      }
      out.ms = Date.now() - started;
      out.aborted = signal.aborted;
      const status = c.client.tokens.status;
      out.tokenSource = status.tokenSource;
      out.isolateTokenRequests = status.tokenRequests;
      if (tag) log.push({ tag, ...out });
      return Response.json(out);
    }
    if (url.pathname === "/state") {
      const c = clients.get(ns);
      if (!c) return Response.json({ none: true });
      return Response.json({ status: c.client.tokens.status, counts: counts(c.events), events: c.events });
    }
    if (url.pathname === "/object") {
      const c = clients.get(ns);
      const names = c ? [...c.names] : [];
      if (names.length !== 1) return Response.json({ names: names.length });
      const stub = env[ns].get(env[ns].idFromName(names[0]));
      // The object's name is the entry name (an HMAC): never the client id.
      const named = /^qbank-connect:v1:[0-9a-f]{64}$/.test(names[0]) && !names[0].includes(env.CLIENT_ID);
      return Response.json({ names: 1, named, status: await stub.status() });
    }
    if (url.pathname === "/log") return Response.json(log);
    if (url.pathname === "/end") {
      const end = ends.get(url.searchParams.get("tag"));
      end?.abort();
      return Response.json({ ended: !!end });
    }
    return new Response("ready");
  },
};
`;
