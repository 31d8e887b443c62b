// A local QPay sandbox: a Keycloak-style realm token endpoint (password grant
// for the public client `qpay-console`, client-credentials grant for clients
// made through the Credentials API, refresh grant) and the Credentials API of
// the QPay "Credentials & Authentication" document, with tenants of the three
// types (processor, issuer, embosser), fault injection, a movable server clock
// and counters, for the tests, and published as qbank-connect/testing
// (index.mjs, as startQPaySandbox) for users' own tests.
//
//   node src/testing/qpay.mjs [--port N] [--token-lifetime S] [--realm R] [--host H]
//
// prints one line of JSON {"url","tokenUrl","credentialsBaseUrl","realm"} and
// serves until SIGINT/SIGTERM.  It never writes a password, secret or token
// anywhere.  See README.md beside this file.

import crypto from 'node:crypto';
import { Buffer } from 'node:buffer';
import process from 'node:process';
import {
  BODY_LIMIT, bearerChallenge, bump, createKit, isMain, mediaType, normalizeFault, onAnswered, parseBasic,
  remember, repeatedParam, runCli, signJwt,
} from './common.mjs';

export { BODY_LIMIT };
export const DEFAULT_REALM = 'qpay';
export const CONSOLE_CLIENT_ID = 'qpay-console';

// The document's table "Available roles": one typical role per tenant type.
export const ROLES_BY_TENANT_TYPE = Object.freeze({
  processor: Object.freeze(['processor']),
  issuer: Object.freeze(['issuer']),
  embosser: Object.freeze(['embosser']),
});

export const SEED_TENANTS = Object.freeze([
  Object.freeze({ tenantId: 'proc-acme', tenantType: 'processor', parentTenantId: null }),
  Object.freeze({ tenantId: 'issuer-banco-azul', tenantType: 'issuer', parentTenantId: 'proc-acme' }),
  Object.freeze({ tenantId: 'issuer-banco-verde', tenantType: 'issuer', parentTenantId: 'proc-acme' }),
  Object.freeze({ tenantId: 'emb-printco', tenantType: 'embosser', parentTenantId: 'proc-acme' }),
]);

// Fixture passwords (not real ones): they are in this file on purpose, the
// way the QBank sandbox's client secrets are.
export const SEED_USERS = Object.freeze([
  Object.freeze({ username: 'processor-admin', password: 'processor-pass-not-real', tenantId: 'proc-acme' }),
  Object.freeze({ username: 'issuer-admin', password: 'issuer-pass-not-real', tenantId: 'issuer-banco-azul' }),
  Object.freeze({ username: 'issuer-other', password: 'other-pass-not-real', tenantId: 'issuer-banco-verde' }),
  Object.freeze({ username: 'embosser-admin', password: 'embosser-pass-not-real', tenantId: 'emb-printco' }),
  // Form-encoding check: every character here means something in a form body or a Basic header.
  Object.freeze({ username: 'odd-chars', password: 'p:ss+w%rd é&=', tenantId: 'issuer-banco-azul' }),
  // Never signed in to set a password (the document's prerequisite): Keycloak's "Account is not fully set up".
  Object.freeze({ username: 'new-user', password: 'new-pass-not-real', tenantId: 'issuer-banco-azul', requiredActions: Object.freeze(['UPDATE_PASSWORD']) }),
]);

const KNOWN_GRANTS = ['password', 'client_credentials', 'refresh_token'];
const DEFAULT_SCOPES = ['profile', 'email'];
const OPTIONAL_SCOPES = ['openid', 'roles', 'web-origins', 'acr'];
const NAME_MAX = 100;
// The error codes of the answers common.mjs gives for the Credentials API.
const API_ERRORS = { 400: 'invalid_request', 401: 'unauthorized', 413: 'payload_too_large' };
const ROUTE_CLIENT = /^\/credentials\/clients\/([^/]+)$/;

function freshCounters() {
  return {
    tokenRequests: 0,
    tokenRequestsByGrant: {},
    tokenSuccesses: 0,
    tokenSuccessesByGrant: {},
    tokenErrors: {},
    apiRequests: 0,
    apiByRoute: {},
    apiByStatus: {},
    securityViolations: 0,
    faultsApplied: 0,
    lastTokenRequest: null,
  };
}

// Secrets are kept only as salted hashes: nothing in the server can show one again.
function hashSecret(secret, salt = crypto.randomBytes(16)) {
  return { salt, hash: crypto.createHash('sha256').update(salt).update(secret, 'utf8').digest() };
}

function checkSecret(secret, stored) {
  const { hash } = hashSecret(secret, stored.salt);
  return crypto.timingSafeEqual(hash, stored.hash);
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
function randomAlnum(n) {
  // Rejection sampling keeps the characters uniform (248 = 4 * 62).
  let out = '';
  while (out.length < n) {
    for (const b of crypto.randomBytes(n * 2)) {
      if (b < 248 && out.length < n) out += ALNUM[b % 62];
    }
  }
  return out;
}

function normalizeTenants(list) {
  const map = new Map();
  for (const t of list) {
    const tenantId = t.tenantId ?? t.tenant_id;
    const tenantType = t.tenantType ?? t.tenant_type;
    const parentTenantId = t.parentTenantId ?? t.parent_tenant_id ?? null;
    if (typeof tenantId !== 'string' || tenantId === '') throw new TypeError('each tenant needs a string tenantId');
    if (!Object.hasOwn(ROLES_BY_TENANT_TYPE, tenantType)) {
      throw new TypeError(`tenant ${tenantId}: tenantType must be processor, issuer or embosser`);
    }
    if (parentTenantId !== null && typeof parentTenantId !== 'string') throw new TypeError(`tenant ${tenantId}: parentTenantId must be a string or null`);
    map.set(tenantId, { tenantId, tenantType, parentTenantId });
  }
  for (const t of map.values()) {
    if (t.parentTenantId !== null && !map.has(t.parentTenantId)) {
      throw new TypeError(`tenant ${t.tenantId}: parent ${t.parentTenantId} is not a tenant`);
    }
  }
  return map;
}

function normalizeUsers(list, tenants) {
  const map = new Map();
  for (const u of list) {
    if (typeof u.username !== 'string' || u.username === '' || typeof u.password !== 'string') {
      throw new TypeError('each user needs a string username and password');
    }
    if (!tenants.has(u.tenantId)) throw new TypeError(`user ${u.username}: tenant ${u.tenantId} is not a tenant`);
    // Keycloak keeps usernames in lower case and finds them case-insensitively.
    const username = u.username.toLowerCase();
    map.set(username, {
      id: crypto.randomUUID(),
      username,
      password: hashSecret(u.password),
      tenantId: u.tenantId,
      requiredActions: [...(u.requiredActions ?? [])],
    });
  }
  return map;
}

// What a token request counts under in tokenRequestsByGrant.
function grantBucket(grant) {
  if (grant === null) return '(none)';
  return KNOWN_GRANTS.includes(grant) ? grant : '(other)';
}

// The route a Credentials API request counts under (ids collapsed to {id}).
function apiRoute(method, path) {
  const m = method === 'HEAD' ? 'GET' : method;
  if (path === '/credentials/whoami' || path === '/credentials/roles' || path === '/credentials/clients') return `${m} ${path}`;
  if (ROUTE_CLIENT.test(path)) return `${m} /credentials/clients/{id}`;
  return 'other';
}

export async function startQPay(options = {}) {
  const host = options.host ?? '127.0.0.1';
  const realm = options.realm ?? DEFAULT_REALM;
  if (typeof realm !== 'string' || !/^[A-Za-z0-9._-]+$/.test(realm)) throw new TypeError('realm must be a plain name');
  const tenants = normalizeTenants(options.tenants ?? SEED_TENANTS);
  // The document calls its table "typical roles": a test may widen what a tenant type can assign.
  const rolesByType = { ...ROLES_BY_TENANT_TYPE };
  for (const [type, list] of Object.entries(options.rolesByTenantType ?? {})) {
    if (!Object.hasOwn(ROLES_BY_TENANT_TYPE, type)) throw new TypeError(`rolesByTenantType: ${type} is not a tenant type`);
    if (!Array.isArray(list) || list.length === 0 || list.some((r) => typeof r !== 'string' || !/^[A-Za-z0-9._:-]+$/.test(r))) {
      throw new TypeError(`rolesByTenantType.${type} must be a non-empty array of role names`);
    }
    rolesByType[type] = Object.freeze([...new Set(list)]);
  }
  const users = normalizeUsers(options.users ?? SEED_USERS, tenants);
  const defaults = {
    tokenLifetimeSeconds: options.tokenLifetimeSeconds ?? 300,
    refreshLifetimeSeconds: options.refreshLifetimeSeconds ?? 1800,
    tokenType: options.tokenType ?? 'Bearer',
    legacyClientErrors: options.legacyClientErrors === true,
    maxClients: options.maxClients ?? 1000,
    cors: options.cors !== false,
  };
  for (const k of ['tokenLifetimeSeconds', 'refreshLifetimeSeconds', 'maxClients']) {
    if (!Number.isInteger(defaults[k]) || defaults[k] < 0) throw new TypeError(`${k} must be a non-negative integer`);
  }
  if (typeof defaults.tokenType !== 'string' || defaults.tokenType === '') throw new TypeError('tokenType must be a string');
  const config = { ...defaults };

  const jwtKey = crypto.randomBytes(32);
  const kid = crypto.randomBytes(8).toString('hex');

  let notBefore = 0; // Keycloak's realm "not-before" (seconds), pushed by revoke()
  const clients = new Map(); // id (internal record id) -> client record
  const clientsByClientId = new Map(); // client_id -> client record
  const accessTokens = new Map(); // jti -> { kind, ... , exp (s) }
  const refreshTokens = new Map(); // jti -> { username, clientId, sessionState, exp (s) }
  let url;
  let issuer;

  const kit = createKit({
    config,
    realm,
    apiError: (req, res, status, description, headers) => apiError(req, res, status, API_ERRORS[status], description, headers),
    freshCounters,
    normalizeFault: (input) => normalizeFault(input, { plainHeaders: true }),
    faultView: (f) => ({ ...f, headers: { ...f.headers } }),
    onResetAll() {
      accessTokens.clear();
      refreshTokens.clear();
      clients.clear();
      clientsByClientId.clear();
      notBefore = 0;
      Object.assign(config, defaults);
    },
    drainOversized: true,
    bodiless: true,
    // Never echo the exception: it could quote a request field.
    internalError: () => 'qpay sandbox: internal error',
  });
  const { counters, now, deliver, sendJson, oauthError } = kit;
  const nowSec = () => Math.floor(now() / 1000);

  // ---- JWTs (HS256 with a key made at start-up) ----

  function sign(payload) {
    return signJwt(jwtKey, { alg: 'HS256', typ: 'JWT', kid }, payload);
  }

  function verifyJwt(token) {
    const parts = token.split('.');
    if (parts.length !== 3) return null;
    const want = crypto.createHmac('sha256', jwtKey).update(`${parts[0]}.${parts[1]}`).digest();
    const got = Buffer.from(parts[2], 'base64url');
    if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) return null;
    try {
      const head = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
      if (head.alg !== 'HS256') return null;
      return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    } catch {
      return null;
    }
  }

  // The Credentials API's errors: the same two fields as Keycloak's OAuth errors (the document shows none of its own).
  function apiError(req, res, status, error, description, headers = {}) {
    sendJson(req, res, status, { error, error_description: description }, headers);
  }

  const challenge = (error, description) => bearerChallenge(realm, error, description);

  // Counts an API request under its route, and its answer's status once it is sent.
  function countApi(req, res, route) {
    counters.apiRequests += 1;
    onAnswered(res, (status) => {
      bump(counters.apiByStatus, status);
      counters.apiByRoute[route] ??= {};
      bump(counters.apiByRoute[route], status);
    });
  }

  // ---- token issuance ----

  function scopeString(extra) {
    return [...new Set([...(extra.includes('openid') ? ['openid'] : []), ...DEFAULT_SCOPES, ...extra.filter((s) => s !== 'openid')])].join(' ');
  }

  function issueUserTokens(user, sessionState, scope) {
    const tenant = tenants.get(user.tenantId);
    const iat = nowSec();
    const exp = iat + config.tokenLifetimeSeconds;
    const jti = crypto.randomUUID();
    const roles = [tenant.tenantType, `default-roles-${realm}`];
    const accessToken = sign({
      exp, iat, jti, iss: issuer, aud: 'account', sub: user.id, typ: 'Bearer', azp: CONSOLE_CLIENT_ID,
      session_state: sessionState, sid: sessionState, acr: '1',
      realm_access: { roles }, scope,
      preferred_username: user.username, tenant_id: tenant.tenantId, tenant_type: tenant.tenantType,
    });
    remember(accessTokens, jti, { kind: 'user', username: user.username, tenantId: tenant.tenantId, clientId: CONSOLE_CLIENT_ID, roles, scope, iat, exp });
    const rjti = crypto.randomUUID();
    const rexp = iat + config.refreshLifetimeSeconds;
    const refreshToken = sign({
      exp: rexp, iat, jti: rjti, iss: issuer, aud: issuer, sub: user.id, typ: 'Refresh', azp: CONSOLE_CLIENT_ID,
      session_state: sessionState, sid: sessionState, scope,
    });
    remember(refreshTokens, rjti, { username: user.username, clientId: CONSOLE_CLIENT_ID, sessionState, scope, exp: rexp });
    return { accessToken, refreshToken };
  }

  function issueClientToken(client, scope) {
    const tenant = tenants.get(client.tenantId);
    const iat = nowSec();
    const exp = iat + config.tokenLifetimeSeconds;
    const jti = crypto.randomUUID();
    const roles = [...client.roles, `default-roles-${realm}`];
    const accessToken = sign({
      exp, iat, jti, iss: issuer, aud: 'account', sub: client.serviceAccountId, typ: 'Bearer', azp: client.clientId, acr: '1',
      realm_access: { roles }, scope,
      clientId: client.clientId, preferred_username: `service-account-${client.clientId}`,
      tenant_id: tenant.tenantId, tenant_type: tenant.tenantType,
    });
    remember(accessTokens, jti, { kind: 'client', clientId: client.clientId, recordId: client.id, tenantId: tenant.tenantId, roles, scope, iat, exp });
    return accessToken;
  }

  // Keycloak's AccessTokenResponse, in its field order.
  function tokenAnswer(req, res, grantType, { accessToken, refreshToken, sessionState, scope }) {
    counters.tokenSuccesses += 1;
    bump(counters.tokenSuccessesByGrant, grantType);
    const out = {
      access_token: accessToken,
      expires_in: config.tokenLifetimeSeconds,
      refresh_expires_in: refreshToken ? config.refreshLifetimeSeconds : 0,
    };
    if (refreshToken) out.refresh_token = refreshToken;
    out.token_type = config.tokenType;
    out['not-before-policy'] = notBefore;
    out.session_state = sessionState;
    out.scope = scope;
    sendJson(req, res, 200, out, { Pragma: 'no-cache' });
  }

  // ---- the realm's token endpoint ----

  // Keycloak's ClientIdAndSecretAuthenticator: Basic header and/or form fields
  // (the form wins), then the client lookup and the secret check.
  function authenticateClient(req, res, params, record) {
    let id = null;
    let secret = null;
    const authz = req.headers.authorization;
    if (authz !== undefined) {
      const basic = parseBasic(authz);
      if (typeof basic === 'object') {
        ({ id, secret } = basic);
        record.authMethod = 'basic';
      } else if (!params.has('client_id')) {
        // Keycloak answers an unusable Authorization header with a bare Basic challenge.
        bump(counters.tokenErrors, 'basic_challenge');
        deliver(req, res, 401, { 'WWW-Authenticate': `Basic realm="${realm}"`, 'Cache-Control': 'no-store' }, '');
        return null;
      }
    }
    if (params.has('client_id') || params.has('client_secret')) {
      record.authMethod = record.authMethod === 'basic' ? 'basic+post' : 'post';
      if (params.has('client_id')) id = params.get('client_id');
      if (params.has('client_secret')) secret = params.get('client_secret');
    }
    if (id === null) {
      oauthError(req, res, 400, 'invalid_client', 'Missing client_id parameter');
      return null;
    }
    if (id === CONSOLE_CLIENT_ID) {
      record.clientId = id;
      return { public: true, clientId: id };
    }
    const client = clientsByClientId.get(id);
    // Only a known id is recorded: counters never repeat arbitrary request text.
    if (client) record.clientId = id;
    if (!client) {
      if (config.legacyClientErrors) oauthError(req, res, 400, 'unauthorized_client', 'Invalid client credentials');
      else oauthError(req, res, 401, 'invalid_client', 'Invalid client or Invalid client credentials');
      return null;
    }
    if (secret === null || !checkSecret(secret, client.secret)) {
      oauthError(req, res, 401, 'unauthorized_client', 'Invalid client or Invalid client credentials');
      return null;
    }
    return client;
  }

  function requestedScope(req, res, params) {
    const raw = params.get('scope');
    const wanted = raw === null ? [] : raw.split(' ').filter(Boolean);
    const bad = wanted.filter((s) => !DEFAULT_SCOPES.includes(s) && !OPTIONAL_SCOPES.includes(s));
    if (bad.length > 0) {
      oauthError(req, res, 400, 'invalid_scope', `Invalid scopes: ${raw}`);
      return null;
    }
    return scopeString(wanted);
  }

  async function handleToken(req, res, query) {
    counters.tokenRequests += 1;
    const record = { grantType: null, authMethod: 'none', clientId: null };
    counters.lastTokenRequest = record;

    const params = await kit.readTokenForm(req, res, query, {
      secretParams: ['client_secret', 'password', 'refresh_token', 'client_assertion'],
      allow: 'POST, OPTIONS',
    });
    if (!params) return;
    const grantType = params.get('grant_type');
    record.grantType = grantType;
    bump(counters.tokenRequestsByGrant, grantBucket(grantType));
    if (grantType === null) {
      oauthError(req, res, 400, 'invalid_request', 'Missing form parameter: grant_type');
      return;
    }
    if (!KNOWN_GRANTS.includes(grantType)) {
      oauthError(req, res, 400, 'unsupported_grant_type', 'Unsupported grant_type');
      return;
    }
    if (repeatedParam(params) !== null) {
      oauthError(req, res, 400, 'invalid_request', 'duplicated parameter');
      return;
    }

    const client = authenticateClient(req, res, params, record);
    if (!client) return;

    if (grantType === 'client_credentials') {
      if (client.public) {
        oauthError(req, res, 401, 'unauthorized_client', 'Public client not allowed to retrieve service account');
        return;
      }
      const scope = requestedScope(req, res, params);
      if (scope === null) return;
      const accessToken = issueClientToken(client, scope);
      tokenAnswer(req, res, grantType, { accessToken, sessionState: crypto.randomUUID(), scope });
      return;
    }

    // password and refresh_token: only the console client has direct access grants.
    if (!client.public) {
      if (grantType === 'password') oauthError(req, res, 400, 'unauthorized_client', 'Client not allowed for direct access grants');
      else oauthError(req, res, 400, 'invalid_grant', 'Invalid refresh token. Token client and authorized client don\'t match');
      return;
    }

    if (grantType === 'password') {
      const scope = requestedScope(req, res, params);
      if (scope === null) return;
      const username = params.get('username');
      if (username === null) {
        oauthError(req, res, 401, 'invalid_request', 'Missing parameter: username');
        return;
      }
      const user = users.get(username.toLowerCase());
      const password = params.get('password');
      // An unknown user still costs a hash, like a known one with a wrong password.
      const ok = checkSecret(password ?? '', user?.password ?? hashSecret('\0unknown'));
      if (!user || password === null || !ok) {
        oauthError(req, res, 401, 'invalid_grant', 'Invalid user credentials');
        return;
      }
      if (user.requiredActions.length > 0) {
        oauthError(req, res, 400, 'invalid_grant', 'Account is not fully set up');
        return;
      }
      const sessionState = crypto.randomUUID();
      const { accessToken, refreshToken } = issueUserTokens(user, sessionState, scope);
      tokenAnswer(req, res, grantType, { accessToken, refreshToken, sessionState, scope });
      return;
    }

    // refresh_token
    const raw = params.get('refresh_token');
    if (raw === null) {
      oauthError(req, res, 400, 'invalid_request', 'Missing parameter: refresh_token');
      return;
    }
    const claims = verifyJwt(raw);
    const rec = claims && claims.typ === 'Refresh' ? refreshTokens.get(claims.jti) : undefined;
    if (!rec) {
      oauthError(req, res, 400, 'invalid_grant', 'Invalid refresh token');
      return;
    }
    if (now() >= rec.exp * 1000) {
      oauthError(req, res, 400, 'invalid_grant', 'Token is not active');
      return;
    }
    const user = users.get(rec.username);
    if (!user) {
      oauthError(req, res, 400, 'invalid_grant', 'Invalid refresh token');
      return;
    }
    const { accessToken, refreshToken } = issueUserTokens(user, rec.sessionState, rec.scope);
    tokenAnswer(req, res, grantType, { accessToken, refreshToken, sessionState: rec.sessionState, scope: rec.scope });
  }

  function handleDiscovery(req, res) {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      apiError(req, res, 405, 'method_not_allowed', 'use GET', { Allow: 'GET, HEAD' });
      return;
    }
    sendJson(req, res, 200, {
      issuer,
      token_endpoint: `${issuer}/protocol/openid-connect/token`,
      grant_types_supported: [...KNOWN_GRANTS],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      scopes_supported: [...DEFAULT_SCOPES, ...OPTIONAL_SCOPES],
      id_token_signing_alg_values_supported: ['HS256'],
    });
  }

  // ---- the Credentials API ----

  // The bearer must be a live, unexpired user token from the password grant.
  function authenticateUser(req, res) {
    const token = kit.bearerToken(req, res, 'a Bearer user token is required');
    if (token === null) return null;
    const claims = verifyJwt(token);
    const rec = claims && claims.typ === 'Bearer' ? accessTokens.get(claims.jti) : undefined;
    if (!rec) {
      apiError(req, res, 401, 'invalid_token', 'the token is unknown, malformed or revoked', {
        'WWW-Authenticate': challenge('invalid_token', 'the token is unknown, malformed or revoked'),
      });
      return null;
    }
    if (now() >= rec.exp * 1000) {
      apiError(req, res, 401, 'invalid_token', 'the token expired', {
        'WWW-Authenticate': challenge('invalid_token', 'the token expired'),
      });
      return null;
    }
    if (rec.kind !== 'user') {
      apiError(req, res, 403, 'forbidden', 'the Credentials API takes a personal user token (password grant), not a client credential token');
      return null;
    }
    const user = users.get(rec.username);
    if (!user) {
      apiError(req, res, 401, 'invalid_token', 'the user no longer exists', { 'WWW-Authenticate': challenge('invalid_token', 'the user no longer exists') });
      return null;
    }
    return { user, tenant: tenants.get(user.tenantId) };
  }

  function publicClient(c) {
    return { id: c.id, client_id: c.clientId, tenant_id: c.tenantId, name: c.name, roles: [...c.roles] };
  }

  function parseJsonBody(req, res, text) {
    if (mediaType(req) !== 'application/json') {
      apiError(req, res, 415, 'unsupported_media_type', 'send Content-Type: application/json');
      return undefined;
    }
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      apiError(req, res, 400, 'invalid_request', 'the body is not valid JSON');
      return undefined;
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      apiError(req, res, 400, 'invalid_request', 'the body must be a JSON object');
      return undefined;
    }
    return body;
  }

  function unknownKeys(body, allowed) {
    return Object.keys(body).filter((k) => !allowed.includes(k));
  }

  // null when the roles are fine for this tenant type, else the reason.
  function rolesProblem(roles, tenantType) {
    if (!Array.isArray(roles) || roles.length === 0) return 'roles must be a non-empty array of role names';
    const allowed = rolesByType[tenantType];
    const seen = new Set();
    for (const r of roles) {
      if (typeof r !== 'string') return 'roles must be strings';
      if (seen.has(r)) return `role ${JSON.stringify(r)} is repeated`;
      seen.add(r);
      if (!allowed.includes(r)) return `role ${JSON.stringify(r)} is not available to a ${tenantType} tenant (available: ${allowed.join(', ')})`;
    }
    return null;
  }

  function findOwnClient(req, res, rawId, tenant) {
    let id;
    try {
      id = decodeURIComponent(rawId);
    } catch {
      id = null;
    }
    const c = id === null ? undefined : clients.get(id);
    if (!c || c.tenantId !== tenant.tenantId) {
      // Another tenant's client is as invisible as a missing one.
      apiError(req, res, 404, 'not_found', 'client not found');
      return null;
    }
    return c;
  }

  function deleteClientRecord(c) {
    clients.delete(c.id);
    clientsByClientId.delete(c.clientId);
    for (const [jti, rec] of accessTokens) {
      if (rec.kind === 'client' && rec.recordId === c.id) accessTokens.delete(jti);
    }
  }

  async function handleApi(req, res, path, query) {
    const text = await kit.readApiBody(req, res, query);
    if (text === null) return;
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const allow = (methods) => {
      if (methods.includes(method)) return true;
      const list = methods.includes('GET') ? [...methods, 'HEAD'] : methods;
      apiError(req, res, 405, 'method_not_allowed', `use ${methods.join(' or ')}`, { Allow: list.join(', ') });
      return false;
    };

    if (path === '/credentials/whoami') {
      if (!allow(['GET'])) return;
      const who = authenticateUser(req, res);
      if (!who) return;
      sendJson(req, res, 200, {
        tenant_type: who.tenant.tenantType,
        tenant_id: who.tenant.tenantId,
        parent_tenant_id: who.tenant.parentTenantId,
      });
      return;
    }

    if (path === '/credentials/roles') {
      if (!allow(['GET'])) return;
      const who = authenticateUser(req, res);
      if (!who) return;
      sendJson(req, res, 200, { tenant_type: who.tenant.tenantType, roles: [...rolesByType[who.tenant.tenantType]] });
      return;
    }

    if (path === '/credentials/clients') {
      if (!allow(['GET', 'POST'])) return;
      const who = authenticateUser(req, res);
      if (!who) return;
      if (method === 'GET') {
        sendJson(req, res, 200, [...clients.values()].filter((c) => c.tenantId === who.tenant.tenantId).map(publicClient));
        return;
      }
      const body = parseJsonBody(req, res, text);
      if (body === undefined) return;
      const extra = unknownKeys(body, ['tenant_id', 'name', 'roles']);
      if (extra.length > 0) {
        apiError(req, res, 400, 'invalid_request', `unknown field(s): ${extra.join(', ')} (expected tenant_id, name, roles)`);
        return;
      }
      if (typeof body.tenant_id !== 'string' || body.tenant_id === '') {
        apiError(req, res, 400, 'invalid_request', 'tenant_id must be a non-empty string');
        return;
      }
      if (typeof body.name !== 'string' || body.name.trim() === '' || body.name.length > NAME_MAX || /[\u0000-\u001f\u007f]/.test(body.name)) {
        apiError(req, res, 400, 'invalid_request', `name must be a non-empty string of at most ${NAME_MAX} characters without control characters`);
        return;
      }
      if (body.tenant_id !== who.tenant.tenantId) {
        apiError(req, res, 403, 'forbidden', `you may only create clients for your own tenant (${who.tenant.tenantId})`);
        return;
      }
      const problem = rolesProblem(body.roles, who.tenant.tenantType);
      if (problem) {
        apiError(req, res, 400, 'invalid_request', problem);
        return;
      }
      if (clients.size >= config.maxClients) {
        apiError(req, res, 409, 'conflict', `at most ${config.maxClients} clients`);
        return;
      }
      let clientId;
      do clientId = crypto.randomBytes(16).toString('hex');
      while (clientId === CONSOLE_CLIENT_ID || clientsByClientId.has(clientId));
      const clientSecret = randomAlnum(32);
      const c = {
        id: crypto.randomUUID(),
        clientId,
        secret: hashSecret(clientSecret),
        tenantId: who.tenant.tenantId,
        name: body.name,
        roles: [...body.roles],
        serviceAccountId: crypto.randomUUID(),
      };
      clients.set(c.id, c);
      clientsByClientId.set(clientId, c);
      // The only place the secret ever appears.
      sendJson(req, res, 201, { id: c.id, client_id: clientId, client_secret: clientSecret, tenant_id: c.tenantId }, {
        Location: `/credentials/clients/${c.id}`,
      });
      return;
    }

    const one = ROUTE_CLIENT.exec(path);
    if (one) {
      if (!allow(['GET', 'PUT', 'DELETE'])) return;
      const who = authenticateUser(req, res);
      if (!who) return;
      const c = findOwnClient(req, res, one[1], who.tenant);
      if (!c) return;
      if (method === 'GET') {
        sendJson(req, res, 200, publicClient(c));
        return;
      }
      if (method === 'DELETE') {
        deleteClientRecord(c);
        deliver(req, res, 204, { 'Cache-Control': 'no-store' }, '');
        return;
      }
      const body = parseJsonBody(req, res, text);
      if (body === undefined) return;
      const extra = unknownKeys(body, ['roles']);
      if (extra.length > 0) {
        apiError(req, res, 400, 'invalid_request', `unknown field(s): ${extra.join(', ')} (expected roles)`);
        return;
      }
      const problem = rolesProblem(body.roles, who.tenant.tenantType);
      if (problem) {
        apiError(req, res, 400, 'invalid_request', problem);
        return;
      }
      c.roles = [...body.roles]; // tokens issued from now on carry them
      sendJson(req, res, 200, publicClient(c));
      return;
    }

    if (!authenticateUser(req, res)) return;
    apiError(req, res, 404, 'not_found', `no route for ${req.method} ${path}`);
  }

  // ---- control ----

  const control = kit.extendControl({
    // Every access and refresh token issued so far stops working; Keycloak's
    // "not-before" push (answers carry it as not-before-policy).
    revoke() {
      const n = accessTokens.size + refreshTokens.size;
      accessTokens.clear();
      refreshTokens.clear();
      notBefore = nowSec();
      return n;
    },
    configure(patch = {}) {
      if (patch === null || typeof patch !== 'object') throw new TypeError('config must be an object');
      if (patch.tokenLifetimeSeconds !== undefined) control.setLifetime(patch.tokenLifetimeSeconds);
      if (patch.refreshLifetimeSeconds !== undefined) {
        if (!Number.isInteger(patch.refreshLifetimeSeconds) || patch.refreshLifetimeSeconds < 0) throw new TypeError('refreshLifetimeSeconds must be a non-negative integer');
        config.refreshLifetimeSeconds = patch.refreshLifetimeSeconds;
      }
      if (patch.tokenType !== undefined) {
        if (typeof patch.tokenType !== 'string' || patch.tokenType === '') throw new TypeError('tokenType must be a string');
        config.tokenType = patch.tokenType;
      }
      if (patch.legacyClientErrors !== undefined) config.legacyClientErrors = patch.legacyClientErrors === true;
      return { ...config };
    },
    // Clients made through the Credentials API, without secrets (there is no way to see one again).
    clients() {
      return [...clients.values()].map(publicClient);
    },
    tenants() {
      return [...tenants.values()].map((t) => ({ ...t }));
    },
    // What the server knows about an access token: Keycloak-introspection-like.
    introspect(token) {
      if (typeof token !== 'string') return { active: false };
      const claims = verifyJwt(token);
      const rec = claims && claims.typ === 'Bearer' ? accessTokens.get(claims.jti) : undefined;
      if (!rec || now() >= rec.exp * 1000) return { active: false };
      return {
        active: true,
        kind: rec.kind,
        client_id: rec.clientId,
        username: rec.username ?? `service-account-${rec.clientId}`,
        tenant_id: rec.tenantId,
        roles: [...rec.roles],
        scope: rec.scope,
        iat: rec.iat,
        exp: rec.exp,
      };
    },
    liveTokens() {
      return accessTokens.size;
    },
  }, {
    'GET /__control/clients': () => ({ clients: control.clients() }),
    'POST /__control/introspect': (body) => control.introspect(body?.token),
  });

  // ---- dispatch ----

  const realmPrefix = `/auth/realms/${realm}`;
  const tokenPath = `${realmPrefix}/protocol/openid-connect/token`;
  const REALM_PATH = /^\/auth\/realms\/([^/]+)(\/.*)?$/;

  function kindOf(req, res, path) {
    if (path === tokenPath) return 'token';
    if (path === '/credentials' || path.startsWith('/credentials/')) {
      countApi(req, res, apiRoute(req.method, path));
      return 'api';
    }
    if (path === `${realmPrefix}/.well-known/openid-configuration`) {
      handleDiscovery(req, res);
      return null;
    }
    req.resume();
    const m = REALM_PATH.exec(path);
    if (m && m[1] !== realm) {
      // Keycloak's answer for a realm name it does not have.
      sendJson(req, res, 404, { error: 'Realm does not exist', error_description: 'Realm does not exist' });
    } else {
      apiError(req, res, 404, 'not_found', `no route for ${path}`);
    }
    return null;
  }

  let port;
  ({ url, port } = await kit.listen({
    host,
    port: options.port,
    badTarget: (req, res) => apiError(req, res, 400, 'invalid_request', 'malformed request target'),
    corsMethods: 'GET, POST, PUT, DELETE, HEAD, OPTIONS',
    kindOf,
    onHang(req, res, kind) {
      if (kind === 'token') counters.tokenRequests += 1;
    },
    // A token request a fault answers is still counted, by its grant.
    async onReplace(req, res, kind) {
      const { text } = await kit.readBody(req);
      if (kind !== 'token') return;
      counters.tokenRequests += 1;
      let grant = null;
      try {
        grant = new URLSearchParams(text ?? '').get('grant_type');
      } catch {
        /* counted as (none) */
      }
      bump(counters.tokenRequestsByGrant, grantBucket(grant));
    },
    token: handleToken,
    api: handleApi,
  }));
  issuer = `${url}${realmPrefix}`;

  return {
    url,
    // What QPayCredentials.signIn and qpayTokenUrl take as `baseUrl` (with `realm`).
    baseUrl: url,
    realm,
    issuer,
    tokenUrl: `${url}${tokenPath}`,
    credentialsBaseUrl: `${url}/credentials`,
    port,
    control,
    close: kit.close,
  };
}

// Not awaited: the published CommonJS bundle of this file cannot hold a top-level await.
if (isMain(import.meta.url)) {
  runCli({
    name: 'qpay',
    usage: 'node src/testing/qpay.mjs [--port N] [--token-lifetime S] [--realm R] [--host H]',
    values: { '--realm': 'realm' },
    // A start that fails (a bad realm name, a port in use) is one line on stderr, not a stack trace.
    async start(opts) {
      try {
        return await startQPay(opts);
      } catch (e) {
        process.stderr.write(`qpay: ${e.message}\n`);
        process.exit(1);
      }
    },
    announce: (qp) => ({ url: qp.url, tokenUrl: qp.tokenUrl, credentialsBaseUrl: qp.credentialsBaseUrl, realm: qp.realm }),
  });
}
