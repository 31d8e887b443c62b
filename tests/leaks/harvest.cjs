// Learning the secrets: from what travels on the wire (every request handed to the global fetch,
// every answer an in-process HTTP server writes) and from the options handed to the package.
// Only reads; never changes a request, a response or an options object.
"use strict";

const http = require("node:http");

/** Option and JSON member names whose string values are credentials. */
const SECRET_KEY = /secret|secert|passw|assertion|credential|api[-_]?key|store[-_]?key|^key$|(^|_|[a-z])token$/i;
/** Members of a server answer that carry a token (tokens are the secrets issued at run time). */
const TOKEN_MEMBERS = new Set(["access_token", "refresh_token", "id_token", "accessToken", "refreshToken"]);
const SECRET_MEMBERS = new Set(["client_secret", "clientSecret", "password", "secret"]);
/** The most of one server answer kept for harvesting (a 5 MB fault body fits). */
const MAX_BODY = 8 * 1024 * 1024;

function formDecode(s) {
  try {
    return decodeURIComponent(s.replace(/\+/g, " "));
  } catch {
    return undefined;
  }
}

/** Secrets inside a URL: the user-info password and secret-looking query values. */
function fromUrl(R, text, source) {
  if (typeof text !== "string" || !/^[a-z][a-z0-9+.-]*:\/\//i.test(text.trim())) return;
  let u;
  try {
    u = new URL(text.trim());
  } catch {
    return;
  }
  if (u.password) {
    R.addSecret(formDecode(u.password) ?? u.password, "password", { source: `${source} user-info` });
    R.addSecret(u.password, "password", { source: `${source} user-info` });
  }
  for (const [k, v] of u.searchParams) if (SECRET_KEY.test(k)) R.addSecret(v, "other", { source: `${source} query ${k}` });
}

/** Walks an options object (to a small depth) for credentials, pairing a secret with its id. */
function fromOptions(R, options, source, depth = 0) {
  if (options === null || typeof options !== "object" || depth > 3) return;
  let entries;
  try {
    entries = Object.entries(options);
  } catch {
    return;
  }
  const id = typeof options.clientId === "string" ? options.clientId : typeof options.username === "string" ? options.username : undefined;
  for (const [k, v] of entries) {
    if (typeof v === "string") {
      if (SECRET_KEY.test(k)) {
        const kind = /pass/i.test(k) ? "password" : /token/i.test(k) ? "token" : /secret|secert/i.test(k) ? "clientSecret" : "other";
        R.addSecret(v, kind, { clientId: id, source: `${source}.${k}` });
      }
      fromUrl(R, v, `${source}.${k}`);
    } else if (v && typeof v === "object" && !Array.isArray(v)) {
      fromOptions(R, v, `${source}.${k}`, depth + 1);
    }
  }
}

/** Credentials in a request: a Basic or Bearer Authorization header, a form body. */
function fromRequest(R, headers, body, source) {
  const authz = headers && (typeof headers.get === "function" ? headers.get("authorization") : undefined);
  if (typeof authz === "string") {
    const basic = /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authz);
    const bearer = /^bearer\s+(.+)$/i.exec(authz);
    if (basic) {
      const pair = Buffer.from(basic[1], "base64").toString("utf8");
      const colon = pair.indexOf(":");
      if (colon >= 0) {
        const rawId = pair.slice(0, colon);
        const rawSecret = pair.slice(colon + 1);
        const id = formDecode(rawId) ?? rawId;
        for (const s of new Set([rawSecret, formDecode(rawSecret) ?? rawSecret])) {
          R.addSecret(s, "clientSecret", { clientId: id, source: `${source} Basic` });
          R.addSecret(s, "clientSecret", { clientId: rawId, source: `${source} Basic` });
        }
      }
    } else if (bearer) {
      R.addSecret(bearer[1].trim(), "token", { source: `${source} Bearer` });
    }
  }
  let text;
  if (typeof body === "string") text = body;
  else if (body instanceof URLSearchParams) text = body.toString();
  if (text === undefined || !text.includes("=")) return;
  const params = new URLSearchParams(text);
  const id = params.get("client_id") ?? params.get("username") ?? undefined;
  for (const [k, v] of params) {
    if (SECRET_KEY.test(k)) {
      const kind = /pass/i.test(k) ? "password" : /token/i.test(k) ? "token" : "clientSecret";
      R.addSecret(v, kind, { clientId: id ?? undefined, source: `${source} form ${k}` });
    }
  }
}

/** Tokens and secrets in a server's answer: JSON members, or the same names in broken JSON or a form. */
function fromAnswer(R, text, source) {
  if (!text || !/token|secret|password/i.test(text)) return;
  const walk = (v, depth) => {
    if (depth > 8 || v === null || typeof v !== "object") return;
    if (Array.isArray(v)) {
      for (const x of v) walk(x, depth + 1);
      return;
    }
    const id = typeof v.client_id === "string" ? v.client_id : typeof v.clientId === "string" ? v.clientId : undefined;
    for (const [k, x] of Object.entries(v)) {
      if (typeof x === "string") {
        if (TOKEN_MEMBERS.has(k)) R.addSecret(x, "token", { source });
        else if (SECRET_MEMBERS.has(k)) R.addSecret(x, k === "password" ? "password" : "clientSecret", { clientId: id, source });
      } else walk(x, depth + 1);
    }
  };
  try {
    walk(JSON.parse(text), 0);
  } catch {
    /* not JSON: the patterns below */
  }
  // Broken JSON (a truncated answer, a 200 with trailing garbage): the string members by name.
  const member = /"(access_token|refresh_token|id_token|client_secret|password)"\s*:\s*("(?:[^"\\]|\\.)*")/g;
  for (const m of text.matchAll(member)) {
    let v;
    try {
      v = JSON.parse(m[2]);
    } catch {
      v = m[2].slice(1, -1);
    }
    R.addSecret(v, m[1] === "client_secret" ? "clientSecret" : m[1] === "password" ? "password" : "token", { source });
  }
  // A form-encoded answer (some providers answer application/x-www-form-urlencoded).
  for (const m of text.matchAll(/(?:^|&)(access_token|refresh_token)=([^&\s]+)/g)) {
    R.addSecret(formDecode(m[2]) ?? m[2], "token", { source });
  }
}

/** Wraps the global fetch: reads the credentials of every request, then sends it unchanged. */
function hookFetch(R) {
  const original = globalThis.fetch;
  if (typeof original !== "function" || original.__qbankLeakScanner) return;
  const fetch = function fetch(input, init) {
    try {
      if (typeof input === "string" || input instanceof URL) fromUrl(R, String(input), "fetch URL");
      else if (input && typeof input.url === "string") {
        fromUrl(R, input.url, "fetch URL");
        fromRequest(R, input.headers, undefined, "fetch request");
      }
      if (init && typeof init === "object") {
        let headers;
        try {
          headers = new Headers(init.headers);
        } catch {
          headers = undefined;
        }
        fromRequest(R, headers, init.body, "fetch request");
      }
    } catch {
      /* never break a request */
    }
    return original.apply(this, arguments);
  };
  Object.defineProperty(fetch, "__qbankLeakScanner", { value: true });
  globalThis.fetch = fetch;
}

/**
 * Patches http.ServerResponse so every answer an in-process server (the sandbox, oidc-provider,
 * the QPay server, a test's own server) writes is read for tokens and secrets, however it is
 * written (one end(), many trickled write()s, a reset mid-body).
 */
const pendingAnswers = new Set();

/** Harvests the answers whose connection has not closed yet (called just before the scan). */
function flushPendingAnswers(R) {
  for (const st of pendingAnswers) {
    try {
      fromAnswer(R, Buffer.concat(st.chunks).toString("utf8"), "a server answer (still open at exit)");
    } catch {
      /* nothing more to learn from it */
    }
  }
  pendingAnswers.clear();
}

function hookServers(R) {
  const proto = http.ServerResponse.prototype;
  if (proto.__qbankLeakScanner) return;
  const BODY = Symbol("qbank-leak-scanner.body");
  const collect = (res, chunk, encoding) => {
    try {
      if (chunk === undefined || chunk === null || typeof chunk === "function") return;
      let st = res[BODY];
      if (!st) {
        st = { chunks: [], size: 0 };
        res[BODY] = st;
        pendingAnswers.add(st);
        res.once("close", () => {
          pendingAnswers.delete(st);
          try {
            const text = Buffer.concat(st.chunks).toString("utf8");
            st.chunks = [];
            fromAnswer(R, text, "a server answer");
          } catch {
            /* never break a server */
          }
        });
      }
      if (st.size > MAX_BODY) return;
      const buf = typeof chunk === "string" ? Buffer.from(chunk, typeof encoding === "string" ? encoding : "utf8") : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      st.size += buf.length;
      st.chunks.push(Buffer.from(buf));
    } catch {
      /* never break an answer */
    }
  };
  const write = proto.write;
  const end = proto.end;
  proto.write = function (chunk, encoding) {
    collect(this, chunk, encoding);
    return write.apply(this, arguments);
  };
  proto.end = function (chunk, encoding) {
    collect(this, chunk, encoding);
    return end.apply(this, arguments);
  };
  Object.defineProperty(proto, "__qbankLeakScanner", { value: true });
}

module.exports = { fromOptions, fromRequest, fromAnswer, fromUrl, hookFetch, hookServers, flushPendingAnswers };
