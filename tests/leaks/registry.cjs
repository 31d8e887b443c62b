// The leak scanner's state in one process: the secrets known so far (client secrets, passwords,
// every token a server issued) and every string the package produced or the process printed.
// Nothing is matched until the process exits (scan()), so a secret learnt late still counts
// against a string recorded early. See README.md beside this file.
//
// Shared through globalThis[Symbol.for("qbank-connect.leak-scanner")] so that the ESM side
// (instrument.mjs, tests) reaches the same object as the --require'd CommonJS side.
"use strict";

const { inspect } = require("node:util");

const KEY = Symbol.for("qbank-connect.leak-scanner");

/** Secrets shorter than this after trimming are not tracked (they match ordinary words). */
const MIN_CHARS = 8;
/** Below this length a secret needs three character classes (lower, upper, digit, other). */
const PLAIN_MIN_CHARS = 12;
/** The prefix length of the matching index (every tracked form is at least this long). */
const PREFIX = 8;
/** Instances kept to be rendered again at exit (beyond this, only their first rendering). */
const MAX_KEPT_INSTANCES = 5000;

const formEncode = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`).replace(/%20/g, "+");
const pctEncode = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
const lowerHex = (s) => s.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
const b64 = (s) => Buffer.from(s, "utf8").toString("base64");

function classes(s) {
  let n = 0;
  if (/[a-z]/.test(s)) n += 1;
  if (/[A-Z]/.test(s)) n += 1;
  if (/[0-9]/.test(s)) n += 1;
  if (/[^a-zA-Z0-9]/.test(s)) n += 1;
  return n;
}

/** Whether a value is specific enough to be tracked without matching ordinary text. */
function trackable(value) {
  if (typeof value !== "string") return false;
  const t = value.trim();
  if (t.length < MIN_CHARS || t === "[redacted]") return false;
  if (new Set(t).size < 5) return false;
  return t.length >= PLAIN_MIN_CHARS || classes(t) >= 3;
}

/** Every form a secret travels or gets echoed in. */
function secretForms(secret, clientId) {
  const forms = new Map();
  const add = (what, v) => {
    if (typeof v === "string" && v.length >= PREFIX && !forms.has(v)) forms.set(v, what);
  };
  for (const s of new Set([secret, secret.trim()])) {
    add("raw", s);
    add("URL-encoded", pctEncode(s));
    add("URL-encoded, lower-case hex", lowerHex(pctEncode(s)));
    add("form-encoded", formEncode(s));
    add("form-encoded, lower-case hex", lowerHex(formEncode(s)));
    add("JSON-escaped", JSON.stringify(s).slice(1, -1));
    add("base64", b64(s));
    for (const id of clientId === undefined ? [] : new Set([clientId, clientId.trim()])) {
      add("inside Basic credentials (RFC 6749 form-encoded)", b64(`${formEncode(id)}:${formEncode(s)}`));
      add("inside Basic credentials (raw id:secret)", b64(`${id}:${s}`));
    }
  }
  return forms;
}

/** Every form an access token could be shown in: itself, its b64token runs, a JWT's signature. */
function tokenForms(token) {
  const forms = new Map();
  const add = (what, v) => {
    if (trackable(v) && !forms.has(v)) forms.set(v, what);
  };
  add("raw", token);
  add("URL-encoded", pctEncode(token));
  add("JSON-escaped", JSON.stringify(token).slice(1, -1));
  // A token with characters that break a header: the runs a header would carry.
  for (const run of token.split(/[^A-Za-z0-9\-._~+/=]+/)) if (run.length >= 16) add("part", run);
  const parts = token.split(".");
  if (parts.length === 3 && parts[2].length >= 16) add("JWT signature", parts[2]);
  return forms;
}

function createRegistry() {
  const state = {
    /** secret value -> { kind, label, clientId } */
    secrets: new Map(),
    /** text -> { channel, where } (the first place it was seen) */
    texts: new Map(),
    recorded: 0,
    channels: {},
    errorsFromPackage: 0,
    errorsElsewhere: 0,
    events: 0,
    instances: [],
    instancesSeen: 0,
    suppressed: 0,
    skippedShort: 0,
    counters: { clientSecret: 0, password: 0, token: 0, other: 0 },
  };

  function addSecret(value, kind, { clientId, source } = {}) {
    if (!trackable(value)) {
      if (typeof value === "string" && value.length > 0) state.skippedShort += 1;
      return false;
    }
    const prev = state.secrets.get(value);
    if (prev) {
      if (clientId !== undefined && !prev.clientIds.has(clientId)) prev.clientIds.add(clientId);
      return false;
    }
    const bucket = kind in state.counters ? kind : "other";
    state.counters[bucket] += 1;
    state.secrets.set(value, {
      kind,
      label: `${kind} #${state.counters[bucket]}${source ? ` (from ${source})` : ""}`,
      clientIds: new Set(clientId === undefined ? [] : [clientId]),
    });
    return true;
  }

  function addText(channel, where, text) {
    if (text === undefined || text === null) return;
    const s = typeof text === "string" ? text : String(text);
    if (s.length === 0) return;
    if (state.suppressed > 0 && (channel === "stdout" || channel === "stderr")) return;
    state.recorded += 1;
    state.channels[channel] = (state.channels[channel] ?? 0) + 1;
    if (!state.texts.has(s)) state.texts.set(s, { channel, where });
  }

  const safe = (f) => {
    try {
      return f();
    } catch (e) {
      return `[rendering threw ${e && e.name}]`;
    }
  };

  function renderError(err, where) {
    addText("error", `${where}: message`, safe(() => err.message));
    addText("error", `${where}: stack`, safe(() => err.stack));
    addText("error", `${where}: String(err)`, safe(() => String(err)));
    addText("error", `${where}: JSON.stringify(err)`, safe(() => JSON.stringify(err)));
    addText("error", `${where}: util.inspect(err)`, safe(() => inspect(err)));
    addText("error", `${where}: util.inspect(err, showHidden)`, safe(() => inspect(err, { showHidden: true, depth: Infinity })));
    for (const k of ["oauthError", "oauthErrorDescription", "requiredScope"]) {
      if (typeof err[k] === "string") addText("error", `${where}: err.${k}`, err[k]);
    }
    if (err.problem !== undefined) addText("error", `${where}: JSON.stringify(err.problem)`, safe(() => JSON.stringify(err.problem)));
    if (err.cause !== undefined) addText("error", `${where}: util.inspect(err.cause)`, safe(() => inspect(err.cause, { depth: Infinity })));
  }

  /** A QBankError, recorded once its constructor has set every field. */
  function addError(err, fromPackage) {
    if (!fromPackage) {
      state.errorsElsewhere += 1;
      return;
    }
    state.errorsFromPackage += 1;
    queueMicrotask(() => renderError(err, `QBankError ${safe(() => err.code)}`));
  }

  function addEvent(event) {
    state.events += 1;
    const type = safe(() => event && event.type);
    addText("event", `event ${type}: JSON.stringify`, safe(() => JSON.stringify(event)));
    addText("event", `event ${type}: util.inspect`, safe(() => inspect(event, { showHidden: true, depth: Infinity })));
  }

  function renderInstance(obj, name) {
    addText("instance", `${name}: String()`, safe(() => String(obj)));
    addText("instance", `${name}: JSON.stringify`, safe(() => JSON.stringify(obj)));
    addText("instance", `${name}: util.inspect`, safe(() => inspect(obj, { showHidden: true, depth: Infinity })));
    if (name === "TokenManager") addText("instance", `${name}: JSON.stringify(status)`, safe(() => JSON.stringify(obj.status)));
  }

  function addInstance(obj, name) {
    state.instancesSeen += 1;
    renderInstance(obj, name);
    if (state.instances.length < MAX_KEPT_INSTANCES) state.instances.push([obj, name]);
  }

  /** Runs `fn` with stdout/stderr output not scanned: for a test that prints a secret on purpose. */
  function deliberately(fn) {
    state.suppressed += 1;
    try {
      return fn();
    } finally {
      state.suppressed -= 1;
    }
  }

  /** Matches every recorded string against every form of every known secret. */
  function scan() {
    for (const [obj, name] of state.instances) renderInstance(obj, `${name} (at exit)`);
    const forms = new Map(); // form -> label
    for (const [value, info] of state.secrets) {
      const list =
        info.kind === "token"
          ? tokenForms(value)
          : secretForms(value, undefined);
      for (const id of info.kind === "token" ? [] : info.clientIds) {
        for (const [f, what] of secretForms(value, id)) if (!list.has(f)) list.set(f, what);
      }
      for (const [f, what] of list) if (!forms.has(f)) forms.set(f, `${info.label}, ${what}`);
    }
    const index = new Map();
    for (const f of forms.keys()) {
      const k = f.slice(0, PREFIX);
      const l = index.get(k);
      if (l) l.push(f);
      else index.set(k, [f]);
    }
    const leaks = [];
    let bytes = 0;
    for (const [text, { channel, where }] of state.texts) {
      bytes += text.length;
      if (text.length < PREFIX || index.size === 0) continue;
      const found = new Set();
      for (let i = 0; i + PREFIX <= text.length; i += 1) {
        const cands = index.get(text.substr(i, PREFIX));
        if (!cands) continue;
        for (const f of cands) if (text.startsWith(f, i)) found.add(forms.get(f));
      }
      for (const what of found) leaks.push({ channel, where, what });
    }
    return {
      stringsScanned: state.recorded,
      distinctStrings: state.texts.size,
      charsScanned: bytes,
      channels: { ...state.channels },
      secretsKnown: { ...state.counters },
      formsMatched: forms.size,
      secretsTooShortToTrack: state.skippedShort,
      errorsFromPackage: state.errorsFromPackage,
      errorsConstructedElsewhere: state.errorsElsewhere,
      events: state.events,
      instances: state.instancesSeen,
      leaks,
    };
  }

  return { addSecret, addText, addError, addEvent, addInstance, deliberately, scan, state, trackable };
}

function registry() {
  if (!globalThis[KEY]) {
    Object.defineProperty(globalThis, KEY, { value: createRegistry(), enumerable: false });
  }
  return globalThis[KEY];
}

module.exports = { registry, KEY, secretForms, tokenForms, trackable, formEncode };
