// Reliability matrix (issue 6, item 2): bad configuration. Every row must throw synchronously
// from the constructor a QBankError with code "config" whose message names what is wrong and says
// what to do, and which holds no secret: not the client secret (in any encoding), not the password
// of a URL's user-info, not a secret in a URL's query. Rows cover TokenManager and QBankClient.
//
// Figures: target/reliability/bad-config.json (configurations tried, refused as required).
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { PKG_URL, assertNoneContain, assertQBankError, errorRenderings, secretForms, thrownBy } from "./token-support.mjs";
import { caseRecorder } from "../reliability/support.mjs";

const { TokenManager, QBankClient } = await import(PKG_URL);
const rec = caseRecorder("bad-config", import.meta.url);

const SECRET = `cfg-secret-${randomBytes(12).toString("hex")}`;
const URL_PASSWORD = `Url-Pass-${randomBytes(9).toString("base64url")}`;
const QUERY_SECRET = `Query-Key-${randomBytes(9).toString("base64url")}`;
const ID = "cfg-client";
const TOKEN_URL = "https://auth.example.com/token";
const API = "https://api.example.com";
const TM = { tokenUrl: TOKEN_URL, clientId: ID, clientSecret: SECRET };
const QB = { environment: { tokenUrl: TOKEN_URL, apiBaseUrl: API }, clientId: ID, clientSecret: SECRET };
const without = (o, name) => {
  const c = { ...o };
  delete c[name];
  return c;
};
const env = (patch) => ({ ...QB, environment: { ...QB.environment, ...patch } });

const HTTP_FIX = /use https:\/\/.*loopback host/;
const FORBIDDEN = {
  ...secretForms(ID, SECRET),
  "URL user-info password": URL_PASSWORD,
  "URL query secret": QUERY_SECRET,
  "secret without its line break": SECRET.trim(),
};

// [what, options, what the message must say]
const TOKEN_MANAGER_ROWS = [
  // credentials
  ["no clientId", without(TM, "clientId"), /option `clientId` is required/],
  ["an empty clientId", { ...TM, clientId: "" }, /clientId is empty; set it to the client_id/],
  ["a whitespace clientId", { ...TM, clientId: "  \t " }, /clientId contains only whitespace/],
  ["a clientId with a trailing newline", { ...TM, clientId: `${ID}\n` }, /clientId ends with a line break.*trim/],
  ["a clientId with a leading space", { ...TM, clientId: ` ${ID}` }, /clientId starts with whitespace; remove it/],
  ["a clientId that is not a string", { ...TM, clientId: 42 }, /option `clientId` must be a string/],
  ["no clientSecret", without(TM, "clientSecret"), /option `clientSecret` is required/],
  ["an empty clientSecret", { ...TM, clientSecret: "" }, /clientSecret is empty; set it to the client_secret/],
  ["a whitespace clientSecret", { ...TM, clientSecret: " \t " }, /clientSecret contains only whitespace/],
  ["a clientSecret with a trailing newline", { ...TM, clientSecret: `${SECRET}\n` }, /clientSecret ends with a line break.*trim/],
  ["a clientSecret with a trailing CRLF", { ...TM, clientSecret: `${SECRET}\r\n` }, /clientSecret ends with a line break/],
  ["a clientSecret with a trailing space", { ...TM, clientSecret: `${SECRET} ` }, /clientSecret ends with whitespace; remove it/],
  ["a clientSecret with a trailing no-break space", { ...TM, clientSecret: `${SECRET}\u00a0` }, /clientSecret ends with whitespace/],
  ["a clientSecret with a leading space", { ...TM, clientSecret: ` ${SECRET}` }, /clientSecret starts with whitespace; remove it/],
  ["a clientSecret with a byte-order mark", { ...TM, clientSecret: `\ufeff${SECRET}` }, /clientSecret starts with an invisible byte-order mark.*remove it/],
  ["a clientSecret with a line break inside", { ...TM, clientSecret: `${SECRET.slice(0, 8)}\n${SECRET.slice(8)}` }, /clientSecret contains a control character/],
  ["a clientSecret that is not a string", { ...TM, clientSecret: 12345678 }, /option `clientSecret` must be a string/],
  ["a clientSecret object with a toString", { ...TM, clientSecret: { toString: () => SECRET } }, /option `clientSecret` must be a string/],
  // the token URL
  ["no tokenUrl", without(TM, "tokenUrl"), /option `tokenUrl` is required/],
  ["an http tokenUrl", { ...TM, tokenUrl: "http://auth.example.com/token" }, HTTP_FIX],
  ["an http tokenUrl to a public host with allowInsecureHttp", { ...TM, tokenUrl: "http://auth.example.com/token", allowInsecureHttp: true }, HTTP_FIX],
  ["http to localhost.evil.example (not loopback) with allowInsecureHttp", { ...TM, tokenUrl: "http://localhost.evil.example/token", allowInsecureHttp: true }, HTTP_FIX],
  ["http to a.localhost (not certainly loopback) with allowInsecureHttp", { ...TM, tokenUrl: "http://a.localhost/token", allowInsecureHttp: true }, HTTP_FIX],
  ["http to 127.0.0.1.nip.io with allowInsecureHttp", { ...TM, tokenUrl: "http://127.0.0.1.nip.io/token", allowInsecureHttp: true }, HTTP_FIX],
  ["http to [::ffff:127.0.0.1] with allowInsecureHttp", { ...TM, tokenUrl: "http://[::ffff:127.0.0.1]/token", allowInsecureHttp: true }, HTTP_FIX],
  ["http to localhost. (trailing dot)", { ...TM, tokenUrl: "http://localhost./token", allowInsecureHttp: true }, /empty label/],
  ["http to 127.1 (short IPv4)", { ...TM, tokenUrl: "http://127.1/token", allowInsecureHttp: true }, /four decimal numbers/],
  ["http to 2130706433 (numeric IPv4)", { ...TM, tokenUrl: "http://2130706433/token", allowInsecureHttp: true }, /four decimal numbers/],
  ["http to 0x7f.0.0.1 (hex IPv4)", { ...TM, tokenUrl: "http://0x7f.0.0.1/token", allowInsecureHttp: true }, /four decimal numbers/],
  ["http to loopback without allowInsecureHttp", { ...TM, tokenUrl: "http://127.0.0.1:9/token" }, /set allowInsecureHttp: true/],
  ["an ftp tokenUrl", { ...TM, tokenUrl: "ftp://auth.example.com/token" }, /must start with https:\/\//],
  ["a tokenUrl with user-info", { ...TM, tokenUrl: `https://admin:${URL_PASSWORD}@auth.example.com/token` }, /user-info.*remove it/],
  ["a tokenUrl with a query carrying a secret", { ...TM, tokenUrl: `https://auth.example.com/token?client_secret=${QUERY_SECRET}` }, /\?query.*remove it/],
  ["a tokenUrl whose query names a parameter the manager sends (grant_type)", { ...TM, tokenUrl: "https://auth.example.com/token?p=B2C_1_signin&Grant_Type=password" }, /\?query has grant_type, which the manager sends itself/],
  ["a tokenUrl with a fragment", { ...TM, tokenUrl: "https://auth.example.com/token#frag" }, /#fragment.*remove it/],
  ["a relative tokenUrl", { ...TM, tokenUrl: "/token" }, /no scheme; write it in full/],
  ["a tokenUrl without a scheme", { ...TM, tokenUrl: "auth.example.com/token" }, /no scheme/],
  ["a scheme-relative tokenUrl", { ...TM, tokenUrl: "//auth.example.com/token" }, /no scheme/],
  ["a tokenUrl with a trailing newline", { ...TM, tokenUrl: `${TOKEN_URL}\n` }, /control character.*trailing newline/],
  ["a tokenUrl with a leading space", { ...TM, tokenUrl: ` ${TOKEN_URL}` }, /contains a space/],
  ["a tokenUrl with a backslash", { ...TM, tokenUrl: "https://auth.example.com\\token" }, /backslash/],
  ["a tokenUrl with a non-ASCII host", { ...TM, tokenUrl: "https://аuth.example.com/token" }, /non-ASCII.*xn--/],
  ["a tokenUrl with an out-of-range port", { ...TM, tokenUrl: "https://auth.example.com:99999/token" }, /port/],
  ["a tokenUrl with no host", { ...TM, tokenUrl: "https:///token" }, /host/],
  ["a tokenUrl that is a URL object, not a string", { ...TM, tokenUrl: new URL(TOKEN_URL) }, /option `tokenUrl` must be a string/],
  // scopes (RFC 6749 §3.3)
  ["a scope with a space inside a list item", { ...TM, scope: ["balances read"] }, /scope\[0\] contains a space; give each scope as its own list item/],
  ["a scope with a double quote", { ...TM, scope: ['balances"read'] }, /double quote.*RFC 6749/],
  ["a scope with a backslash", { ...TM, scope: ["balances\\read"] }, /backslash.*RFC 6749/],
  ["a scope with a non-ASCII letter", { ...TM, scope: ["bälances.read"] }, /non-ASCII.*RFC 6749/],
  ["a scope with DEL", { ...TM, scope: ["balances.read\u007f"] }, /control character/],
  ["an empty scope item", { ...TM, scope: ["balances.read", ""] }, /scope\[1\] is empty; remove it/],
  ["a scope string with a tab", { ...TM, scope: "balances.read\ttransactions.read" }, /tab, line break or other control character/],
  ["a scope string with a line break", { ...TM, scope: "balances.read\ntransactions.read" }, /tab, line break or other control character/],
  ["a scope list with a number", { ...TM, scope: ["balances.read", 42] }, /option `scope` must be an array of strings/],
  ["a scope that is an object", { ...TM, scope: { balances: true } }, /option `scope` must be an array of strings or a space-separated string/],
  // durations
  ["a negative expiryMarginSeconds (skew)", { ...TM, expiryMarginSeconds: -1 }, /expiryMarginSeconds must not be negative/],
  ["a negative refreshAheadSeconds", { ...TM, refreshAheadSeconds: -5 }, /refreshAheadSeconds must not be negative/],
  ["a NaN refreshAheadSeconds", { ...TM, refreshAheadSeconds: Number.NaN }, /refreshAheadSeconds is not a number; give a number of seconds/],
  ["an infinite expiryMarginSeconds", { ...TM, expiryMarginSeconds: Infinity }, /expiryMarginSeconds must be a finite number/],
  ["expiryMarginSeconds given in milliseconds", { ...TM, expiryMarginSeconds: 30_000_000_000 }, /more than one year.*seconds, not\s+milliseconds/],
  ["expiryMarginSeconds as a string", { ...TM, expiryMarginSeconds: "30" }, /option `expiryMarginSeconds` must be a number/],
  ["defaultLifetimeSeconds 0", { ...TM, defaultLifetimeSeconds: 0 }, /defaultLifetimeSeconds must be more than 0/],
  ["a negative defaultLifetimeSeconds", { ...TM, defaultLifetimeSeconds: -1 }, /defaultLifetimeSeconds must not be negative/],
  ["a negative timeoutMs", { ...TM, timeoutMs: -1 }, /timeoutMs` must be a number of milliseconds from 1 to 600000/],
  ["timeoutMs 0", { ...TM, timeoutMs: 0 }, /timeoutMs` must be a number of milliseconds from 1/],
  ["timeoutMs NaN", { ...TM, timeoutMs: Number.NaN }, /timeoutMs` must be a number of milliseconds/],
  ["timeoutMs above ten minutes", { ...TM, timeoutMs: 600_001 }, /from 1 to 600000/],
  ["timeoutMs as a string", { ...TM, timeoutMs: "1000" }, /option `timeoutMs` must be a number/],
  // unknown option names (typos never pass silently)
  ["clientSecert (a typo carrying the secret)", { tokenUrl: TOKEN_URL, clientId: ID, clientSecert: SECRET }, /unknown option `clientSecert` \(did you mean `clientSecret`\?\)/],
  ["clientID", { ...TM, clientID: ID }, /unknown option `clientID` \(did you mean `clientId`\?\)/],
  ["client_id", { ...TM, client_id: ID }, /did you mean `clientId`/],
  ["client_secret (snake case, carrying the secret)", { tokenUrl: TOKEN_URL, clientId: ID, client_secret: SECRET }, /did you mean `clientSecret`/],
  ["tokenURL", { ...TM, tokenURL: TOKEN_URL }, /did you mean `tokenUrl`/],
  ["scopes", { ...TM, scopes: ["balances.read"] }, /did you mean `scope`/],
  ["timeout", { ...TM, timeout: 5000 }, /did you mean `timeoutMs`/],
  ["onevent", { ...TM, onevent: () => {} }, /did you mean `onEvent`/],
  ["allowInsecureHTTP", { ...TM, allowInsecureHTTP: true }, /did you mean `allowInsecureHttp`/],
  ["expiresMarginSeconds", { ...TM, expiresMarginSeconds: 30 }, /did you mean `expiryMarginSeconds`/],
  ["an unrelated option name", { ...TM, retries: 3 }, /unknown option `retries`; check the spelling/],
  // other types and values
  ['authMethod "basic"', { ...TM, authMethod: "basic" }, /`authMethod` must be "client_secret_post".*"client_secret_basic"/],
  ['authMethod "client_secret_jwt"', { ...TM, authMethod: "client_secret_jwt" }, /`authMethod` must be/],
  ["onEvent that is not a function", { ...TM, onEvent: "console.log" }, /option `onEvent` must be a function/],
  ["fetch that is not a function", { ...TM, fetch: "fetch" }, /option `fetch` must be a function/],
  ['autoRefresh "yes"', { ...TM, autoRefresh: "yes" }, /option `autoRefresh` must be true or false/],
  ['allowInsecureHttp "true"', { ...TM, allowInsecureHttp: "true" }, /option `allowInsecureHttp` must be true or false/],
  ["extraParams as an array", { ...TM, extraParams: ["audience"] }, /option `extraParams` must be an object of string values/],
  ["extraParams with a number value", { ...TM, extraParams: { audience: 1 } }, /must be an object of string values/],
  ["extraParams overriding grant_type", { ...TM, extraParams: { grant_type: "password" } }, /grant_type is reserved.*remove it/],
  ["extraParams overriding Client_Secret (any case)", { ...TM, extraParams: { Client_Secret: SECRET } }, /client_secret is reserved.*clientSecret option/],
  ["extraParams with a password", { ...TM, extraParams: { password: SECRET } }, /password is reserved/],
  ["extraParams with an empty name", { ...TM, extraParams: { "": "x" } }, /empty name; give every parameter a name/],
  ["extraParams with a space in a name", { ...TM, extraParams: { "a b": "x" } }, /whitespace or a control character; remove it/],
  // not an options object
  ["no options", undefined, /TokenManager needs an options object/],
  ["null options", null, /TokenManager needs an options object/],
  ["an array", [TM], /TokenManager options must be a plain object/],
  ["a URL string instead of options", TOKEN_URL, /TokenManager options must be a plain object/],
];

const QBANK_CLIENT_ROWS = [
  ['environment "sandbox" (a string)', { ...QB, environment: "sandbox" }, /`environment` must be "production" or \{ tokenUrl, apiBaseUrl \}.*credentials differ/],
  ['environment "Production" (wrong case)', { ...QB, environment: "Production" }, /`environment` must be "production"/],
  ["environment without apiBaseUrl", env({ apiBaseUrl: undefined }), /option `apiBaseUrl` is required/],
  ["environment with an unknown member", env({ region: "eu" }), /unknown option `region`/],
  ["environment null", { ...QB, environment: null }, /environment needs an options object/],
  ["apiBaseUrl at the top level instead of in environment", { ...QB, apiBaseUrl: API }, /unknown option `apiBaseUrl`/],
  ["enviroment (a typo)", { ...without(QB, "environment"), enviroment: "production" }, /did you mean `environment`/],
  ["an http apiBaseUrl", env({ apiBaseUrl: "http://api.example.com" }), HTTP_FIX],
  ["http apiBaseUrl to localhost.evil.example with allowInsecureHttp", { ...env({ apiBaseUrl: "http://localhost.evil.example" }), allowInsecureHttp: true }, HTTP_FIX],
  ["an apiBaseUrl with user-info", env({ apiBaseUrl: `https://u:${URL_PASSWORD}@api.example.com` }), /apiBaseUrl.*user-info/],
  ["an apiBaseUrl with a query carrying a key", env({ apiBaseUrl: `https://api.example.com/?api_key=${QUERY_SECRET}` }), /apiBaseUrl.*\?query/],
  ["an apiBaseUrl with a fragment", env({ apiBaseUrl: "https://api.example.com#x" }), /apiBaseUrl.*#fragment/],
  ["an environment tokenUrl whose query carries a secret", env({ tokenUrl: `https://auth.example.com/token?p=x&client_secret=${QUERY_SECRET}` }), /tokenUrl.*\?query has client_secret.*never in a URL/],
  ["an environment tokenUrl with user-info", env({ tokenUrl: `https://admin:${URL_PASSWORD}@auth.example.com/token` }), /tokenUrl.*user-info/],
  ["a clientSecret with a trailing newline", { ...QB, clientSecret: `${SECRET}\n` }, /clientSecret ends with a line break/],
  ["a whitespace clientId", { ...QB, clientId: " " }, /clientId contains only whitespace/],
  ["clientSecert (a typo carrying the secret)", { ...without(QB, "clientSecret"), clientSecert: SECRET }, /did you mean `clientSecret`/],
  ["a negative expiryMarginSeconds", { ...QB, expiryMarginSeconds: -30 }, /expiryMarginSeconds must not be negative/],
  ["a negative timeoutMs", { ...QB, timeoutMs: -1 }, /timeoutMs/],
  ["a scope with a double quote", { ...QB, scope: 'balances.read "x"' }, /double quote/],
  ["no options", undefined, /QBankClient needs an options object/],
];

function check(Ctor, name, [what, options, says]) {
  rec.it(`${name}: ${what}`, () => {
    const err = thrownBy(() => new Ctor(options));
    assertQBankError(err, "config");
    assert.match(err.message, says, "the message says what is wrong and what to do");
    assert.ok(err.message.length < 400, "a sentence, not a dump");
    assertNoneContain(errorRenderings(err), FORBIDDEN);
  });
}

describe("bad configuration: TokenManager", () => {
  for (const row of TOKEN_MANAGER_ROWS) check(TokenManager, "TokenManager", row);
});

describe("bad configuration: QBankClient", () => {
  for (const row of QBANK_CLIENT_ROWS) check(QBankClient, "QBankClient", row);
  after(() => rec.write({ tokenManagerRows: TOKEN_MANAGER_ROWS.length, qbankClientRows: QBANK_CLIENT_ROWS.length }));
});

describe("the same options without the mistakes are accepted", () => {
  it("the base TokenManager and QBankClient options, and loopback http with allowInsecureHttp", () => {
    for (const [Ctor, o] of [
      [TokenManager, TM],
      [TokenManager, { ...TM, tokenUrl: "http://127.0.0.1:9/token", allowInsecureHttp: true }],
      [TokenManager, { ...TM, tokenUrl: "http://localhost:9/token", allowInsecureHttp: true }],
      [TokenManager, { ...TM, tokenUrl: "http://[::1]:9/token", allowInsecureHttp: true }],
      [TokenManager, { ...TM, scope: "balances.read  transactions.read ", expiryMarginSeconds: 0, refreshAheadSeconds: 0, timeoutMs: 1 }],
      [QBankClient, QB],
      [QBankClient, { ...QB, environment: "production" }],
      [QBankClient, env({ apiBaseUrl: "https://api.example.com/v1/" })],
      [TokenManager, { ...TM, tokenUrl: "https://auth.example.com/token?p=B2C_1_signin" }],
      [TokenManager, { ...TM, tokenUrl: "https://auth.example.com/token?" }],
      [QBankClient, env({ tokenUrl: "https://auth.example.com/token?p=B2C_1_signin" })],
    ]) {
      const x = new Ctor({ ...o, autoRefresh: false });
      x.close();
    }
  });
});
