// Tests for the local QPay sandbox: node --test tests/servers/qpay.test.mjs
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startQPay, SEED_USERS, SEED_TENANTS, ROLES_BY_TENANT_TYPE, BODY_LIMIT, CONSOLE_CLIENT_ID } from '../../src/testing/qpay.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

const form = (o) => new URLSearchParams(o);
// RFC 6749 §2.3.1: form-urlencode id and secret, then base64 "id:secret".
const formEncode = (s) => encodeURIComponent(s).replace(/%20/g, '+');
const basic = (id, secret) => `Basic ${Buffer.from(`${formEncode(id)}:${formEncode(secret)}`).toString('base64')}`;
const jwtPart = (t, i) => JSON.parse(Buffer.from(t.split('.')[i], 'base64url').toString('utf8'));
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const user = (name) => SEED_USERS.find((u) => u.username === name);
const ISSUER = user('issuer-admin');
const PROCESSOR = user('processor-admin');
const EMBOSSER = user('embosser-admin');
const OTHER_ISSUER = user('issuer-other');

function helpers(getQp) {
  const token = (body, headers = {}) => fetch(getQp().tokenUrl, { method: 'POST', body, headers });
  const login = async (u = ISSUER) => {
    const r = await token(form({ grant_type: 'password', client_id: CONSOLE_CLIENT_ID, username: u.username, password: u.password }));
    assert.equal(r.status, 200, await r.clone().text());
    return r.json();
  };
  const api = (p, { method = 'GET', bearer, body, headers = {} } = {}) => {
    const h = { ...headers };
    if (bearer !== undefined) h.authorization = `Bearer ${bearer}`;
    let b = body;
    if (body !== undefined && typeof body !== 'string') {
      b = JSON.stringify(body);
      h['content-type'] ??= 'application/json';
    }
    return fetch(`${getQp().credentialsBaseUrl}${p}`, { method, headers: h, body: b });
  };
  const createClient = async (bearer, body) => {
    const r = await api('/clients', { method: 'POST', bearer, body });
    assert.equal(r.status, 201, await r.clone().text());
    return r.json();
  };
  const ccToken = (id, secret, extra = {}) => token(form({ grant_type: 'client_credentials', client_id: id, client_secret: secret, ...extra }));
  return { token, login, api, createClient, ccToken };
}

const expectOAuthError = async (r, status, error, description) => {
  assert.equal(r.status, status);
  assert.equal(r.headers.get('cache-control'), 'no-store');
  assert.match(r.headers.get('content-type'), /^application\/json/);
  const j = await r.json();
  assert.deepEqual(Object.keys(j), ['error', 'error_description']);
  assert.equal(j.error, error);
  if (description !== undefined) assert.equal(j.error_description, description);
  return j;
};

const expectApiError = async (r, status, error) => {
  assert.equal(r.status, status);
  const j = await r.json();
  assert.equal(j.error, error);
  assert.equal(typeof j.error_description, 'string');
  return j;
};

describe('qpay: realm token endpoint', () => {
  let qp;
  before(async () => {
    qp = await startQPay();
  });
  after(() => qp.close());
  beforeEach(() => qp.control.reset({ all: true }));
  const { token, login, ccToken, createClient } = helpers(() => qp);

  it('reports its urls: a Keycloak realm path and the Credentials API base', async () => {
    assert.match(qp.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(qp.tokenUrl, `${qp.url}/auth/realms/qpay/protocol/openid-connect/token`);
    assert.equal(qp.credentialsBaseUrl, `${qp.url}/credentials`);
    assert.equal(qp.realm, 'qpay');
    assert.equal(qp.issuer, `${qp.url}/auth/realms/qpay`);
    const r = await fetch(`${qp.issuer}/.well-known/openid-configuration`);
    const j = await r.json();
    assert.equal(j.token_endpoint, qp.tokenUrl);
    assert.deepEqual(j.token_endpoint_auth_methods_supported, ['client_secret_basic', 'client_secret_post']);
  });

  it('password grant for qpay-console: a 5-minute JWT with Keycloak\'s extra fields', async () => {
    const j = await login();
    assert.deepEqual(Object.keys(j), ['access_token', 'expires_in', 'refresh_expires_in', 'refresh_token', 'token_type', 'not-before-policy', 'session_state', 'scope']);
    assert.equal(j.expires_in, 300);
    assert.equal(j.refresh_expires_in, 1800);
    assert.equal(j.token_type, 'Bearer');
    assert.equal(j['not-before-policy'], 0);
    assert.match(j.session_state, UUID);
    assert.equal(j.scope, 'profile email');
    assert.deepEqual(jwtPart(j.access_token, 0).alg, 'HS256');
    const c = jwtPart(j.access_token, 1);
    assert.equal(c.exp - c.iat, 300);
    assert.equal(c.typ, 'Bearer');
    assert.equal(c.azp, 'qpay-console');
    assert.equal(c.iss, qp.issuer);
    assert.equal(c.preferred_username, 'issuer-admin');
    assert.equal(c.tenant_id, 'issuer-banco-azul');
    assert.equal(c.tenant_type, 'issuer');
    assert.deepEqual(c.realm_access.roles, ['issuer', 'default-roles-qpay']);
    assert.equal(jwtPart(j.refresh_token, 1).typ, 'Refresh');
    const counters = qp.control.counters();
    assert.deepEqual(counters.tokenRequestsByGrant, { password: 1 });
    assert.deepEqual(counters.tokenSuccessesByGrant, { password: 1 });
    assert.deepEqual(counters.lastTokenRequest, { grantType: 'password', authMethod: 'post', clientId: 'qpay-console' });
  });

  it('password grant: usernames are case-insensitive; the public client may use Basic with an empty secret', async () => {
    let r = await token(form({ grant_type: 'password', client_id: 'qpay-console', username: 'Issuer-ADMIN', password: ISSUER.password }));
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    r = await token(form({ grant_type: 'password', username: ISSUER.username, password: ISSUER.password }), { authorization: basic('qpay-console', '') });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    assert.equal(qp.control.counters().lastTokenRequest.authMethod, 'basic');
  });

  it('password grant: a password full of form metacharacters works only when form-encoded', async () => {
    const odd = user('odd-chars');
    let r = await token(form({ grant_type: 'password', client_id: 'qpay-console', username: odd.username, password: odd.password }));
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    // Not encoded: '+' becomes a space, '&' and '=' split the field.
    r = await token(`grant_type=password&client_id=qpay-console&username=odd-chars&password=${odd.password}`, { 'content-type': 'application/x-www-form-urlencoded' });
    await expectOAuthError(r, 401, 'invalid_grant');
  });

  it('password grant errors: Keycloak\'s codes, statuses and descriptions', async () => {
    const pw = (o) => token(form({ grant_type: 'password', client_id: 'qpay-console', ...o }));
    await expectOAuthError(await pw({ username: ISSUER.username, password: 'wrong' }), 401, 'invalid_grant', 'Invalid user credentials');
    await expectOAuthError(await pw({ username: 'nobody', password: 'x' }), 401, 'invalid_grant', 'Invalid user credentials');
    await expectOAuthError(await pw({ username: ISSUER.username }), 401, 'invalid_grant', 'Invalid user credentials');
    await expectOAuthError(await pw({ password: 'x' }), 401, 'invalid_request', 'Missing parameter: username');
    const nu = user('new-user');
    await expectOAuthError(await pw({ username: nu.username, password: nu.password }), 400, 'invalid_grant', 'Account is not fully set up');
    await expectOAuthError(await token(form({ grant_type: 'password', username: ISSUER.username, password: ISSUER.password })), 400, 'invalid_client', 'Missing client_id parameter');
    await expectOAuthError(await pw({ username: ISSUER.username, password: ISSUER.password, scope: 'payments.write' }), 400, 'invalid_scope', 'Invalid scopes: payments.write');
    const ok = await pw({ username: ISSUER.username, password: ISSUER.password, scope: 'openid roles' });
    assert.equal((await ok.json()).scope, 'openid profile email roles');
    assert.deepEqual(qp.control.counters().tokenErrors, { invalid_grant: 4, invalid_request: 1, invalid_client: 1, invalid_scope: 1 });
  });

  it('request-level errors: grant_type, duplicates, content type, method, query secrets, size', async () => {
    await expectOAuthError(await token(form({ client_id: 'qpay-console' })), 400, 'invalid_request', 'Missing form parameter: grant_type');
    await expectOAuthError(await token(form({ grant_type: 'authorization_code', client_id: 'qpay-console' })), 400, 'unsupported_grant_type', 'Unsupported grant_type');
    await expectOAuthError(await token('grant_type=password&client_id=qpay-console&username=a&username=b', { 'content-type': 'application/x-www-form-urlencoded' }), 400, 'invalid_request', 'duplicated parameter');
    await expectOAuthError(await token(JSON.stringify({ grant_type: 'password' }), { 'content-type': 'application/json' }), 400, 'invalid_request');
    let r = await fetch(qp.tokenUrl);
    await expectOAuthError(r, 405, 'invalid_request');
    assert.equal(r.headers.get('allow'), 'POST, OPTIONS');
    r = await fetch(`${qp.tokenUrl}?password=${encodeURIComponent(ISSUER.password)}`, { method: 'POST', body: form({ grant_type: 'password', client_id: 'qpay-console', username: ISSUER.username }) });
    await expectOAuthError(r, 400, 'invalid_request');
    r = await token(`grant_type=password&pad=${'x'.repeat(BODY_LIMIT)}`, { 'content-type': 'application/x-www-form-urlencoded' });
    assert.equal(r.status, 413);
    await r.arrayBuffer();
    const c = qp.control.counters();
    assert.equal(c.securityViolations, 1);
    assert.deepEqual(c.tokenRequestsByGrant, { '(none)': 1, '(other)': 1, password: 1 });
  });

  it('an unusable Authorization header without client_id gets a bare Basic challenge', async () => {
    const r = await token(form({ grant_type: 'client_credentials' }), { authorization: 'Negotiate abc' });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Basic realm="qpay"');
    assert.equal(await r.text(), '');
  });

  it('an unknown realm is Keycloak\'s 404 "Realm does not exist"', async () => {
    const r = await fetch(`${qp.url}/auth/realms/other/protocol/openid-connect/token`, { method: 'POST', body: form({ grant_type: 'password' }) });
    assert.equal(r.status, 404);
    assert.equal((await r.json()).error, 'Realm does not exist');
  });

  it('client_credentials: the public console client may not; a created client may, by post or Basic', async () => {
    await expectOAuthError(await token(form({ grant_type: 'client_credentials', client_id: 'qpay-console' })), 401, 'unauthorized_client', 'Public client not allowed to retrieve service account');
    const u = await login();
    const c = await createClient(u.access_token, { tenant_id: 'issuer-banco-azul', name: 'erp', roles: ['issuer'] });
    let r = await ccToken(c.client_id, c.client_secret);
    assert.equal(r.status, 200);
    let j = await r.json();
    assert.deepEqual(Object.keys(j), ['access_token', 'expires_in', 'refresh_expires_in', 'token_type', 'not-before-policy', 'session_state', 'scope']);
    assert.equal(j.expires_in, 300);
    assert.equal(j.refresh_expires_in, 0);
    assert.equal(j.token_type, 'Bearer');
    const claims = jwtPart(j.access_token, 1);
    assert.equal(claims.azp, c.client_id);
    assert.equal(claims.clientId, c.client_id);
    assert.equal(claims.tenant_id, 'issuer-banco-azul');
    assert.deepEqual(claims.realm_access.roles, ['issuer', 'default-roles-qpay']);
    assert.equal(qp.control.counters().lastTokenRequest.authMethod, 'post');

    r = await token(form({ grant_type: 'client_credentials' }), { authorization: basic(c.client_id, c.client_secret) });
    assert.equal(r.status, 200);
    j = await r.json();
    assert.equal(qp.control.introspect(j.access_token).client_id, c.client_id);
    assert.equal(qp.control.counters().lastTokenRequest.authMethod, 'basic');
  });

  it('client_credentials errors: wrong or missing secret is unauthorized_client, an unknown client invalid_client', async () => {
    const u = await login();
    const c = await createClient(u.access_token, { tenant_id: 'issuer-banco-azul', name: 'erp', roles: ['issuer'] });
    const desc = 'Invalid client or Invalid client credentials';
    await expectOAuthError(await ccToken(c.client_id, 'wrong'), 401, 'unauthorized_client', desc);
    await expectOAuthError(await token(form({ grant_type: 'client_credentials', client_id: c.client_id })), 401, 'unauthorized_client', desc);
    await expectOAuthError(await token(form({ grant_type: 'client_credentials' }), { authorization: basic(c.client_id, 'wrong') }), 401, 'unauthorized_client', desc);
    await expectOAuthError(await ccToken('no-such-client', 'x'), 401, 'invalid_client', desc);
    await expectOAuthError(await token(form({ grant_type: 'client_credentials', client_secret: c.client_secret })), 400, 'invalid_client', 'Missing client_id parameter');
    // A created client has no direct access grants, and cannot use the refresh grant.
    await expectOAuthError(await token(form({ grant_type: 'password', client_id: c.client_id, client_secret: c.client_secret, username: ISSUER.username, password: ISSUER.password })), 400, 'unauthorized_client', 'Client not allowed for direct access grants');
    await expectOAuthError(await token(form({ grant_type: 'refresh_token', client_id: c.client_id, client_secret: c.client_secret, refresh_token: u.refresh_token })), 400, 'invalid_grant');
    // Older Keycloak's answer for an unknown client, on request.
    qp.control.configure({ legacyClientErrors: true });
    await expectOAuthError(await ccToken('no-such-client', 'x'), 400, 'unauthorized_client', 'Invalid client credentials');
  });

  it('refresh_token grant: same session, new tokens; missing, forged, expired and revoked refresh tokens fail', async () => {
    const u = await login();
    const rt = (refresh) => token(form({ grant_type: 'refresh_token', client_id: 'qpay-console', ...(refresh === undefined ? {} : { refresh_token: refresh }) }));
    let r = await rt(u.refresh_token);
    assert.equal(r.status, 200);
    const j = await r.json();
    assert.equal(j.session_state, u.session_state);
    assert.notEqual(j.access_token, u.access_token);
    assert.equal(qp.control.introspect(j.access_token).username, 'issuer-admin');
    await expectOAuthError(await rt(), 400, 'invalid_request', 'Missing parameter: refresh_token');
    await expectOAuthError(await rt(`${u.refresh_token.slice(0, -2)}AA`), 400, 'invalid_grant', 'Invalid refresh token');
    await expectOAuthError(await rt(u.access_token), 400, 'invalid_grant', 'Invalid refresh token');
    qp.control.advanceClock(1801 * 1000);
    await expectOAuthError(await rt(j.refresh_token), 400, 'invalid_grant', 'Token is not active');
    qp.control.setClockOffset(0);
    r = await rt(j.refresh_token);
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    qp.control.revoke();
    await expectOAuthError(await rt(j.refresh_token), 400, 'invalid_grant', 'Invalid refresh token');
  });

  it('lifetime and token_type are configurable; revoke pushes not-before-policy', async () => {
    qp.control.setLifetime(7);
    let j = await login();
    assert.equal(j.expires_in, 7);
    const c = jwtPart(j.access_token, 1);
    assert.equal(c.exp - c.iat, 7);
    qp.control.configure({ tokenType: 'bearer', refreshLifetimeSeconds: 60 });
    qp.control.revoke();
    j = await login();
    assert.equal(j.token_type, 'bearer');
    assert.equal(j.refresh_expires_in, 60);
    assert.ok(j['not-before-policy'] > 1_600_000_000);
  });

  it('CORS preflight is answered', async () => {
    const r = await fetch(qp.tokenUrl, { method: 'OPTIONS' });
    assert.equal(r.status, 204);
    assert.equal(r.headers.get('access-control-allow-origin'), '*');
  });
});

describe('qpay: Credentials API', () => {
  let qp;
  before(async () => {
    qp = await startQPay();
  });
  after(() => qp.close());
  beforeEach(() => qp.control.reset({ all: true }));
  const { token, login, api, createClient, ccToken } = helpers(() => qp);

  it('whoami for each tenant type (snake_case fields, a processor has no parent)', async () => {
    const expect = [
      [ISSUER, { tenant_type: 'issuer', tenant_id: 'issuer-banco-azul', parent_tenant_id: 'proc-acme' }],
      [PROCESSOR, { tenant_type: 'processor', tenant_id: 'proc-acme', parent_tenant_id: null }],
      [EMBOSSER, { tenant_type: 'embosser', tenant_id: 'emb-printco', parent_tenant_id: 'proc-acme' }],
    ];
    for (const [u, want] of expect) {
      const { access_token: t } = await login(u);
      const r = await api('/whoami', { bearer: t });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('cache-control'), 'no-store');
      assert.deepEqual(await r.json(), want);
    }
  });

  it('roles lists what the tenant type may assign', async () => {
    for (const u of [ISSUER, PROCESSOR, EMBOSSER]) {
      const { access_token: t } = await login(u);
      const who = await (await api('/whoami', { bearer: t })).json();
      const r = await api('/roles', { bearer: t });
      assert.equal(r.status, 200);
      assert.deepEqual(await r.json(), { tenant_type: who.tenant_type, roles: [...ROLES_BY_TENANT_TYPE[who.tenant_type]] });
    }
  });

  it('the document\'s flow: create (secret once) → token → get → update roles → delete → invalid_client', async () => {
    const { access_token: t } = await login();
    const c = await createClient(t, { tenant_id: 'issuer-banco-azul', name: 'my-integration-client', roles: ['issuer'] });
    assert.deepEqual(Object.keys(c), ['id', 'client_id', 'client_secret', 'tenant_id']);
    assert.match(c.id, UUID);
    assert.match(c.client_id, /^[0-9a-f]{32}$/);
    assert.match(c.client_secret, /^[A-Za-z0-9]{32}$/);
    assert.equal(c.tenant_id, 'issuer-banco-azul');

    let r = await ccToken(c.client_id, c.client_secret);
    assert.equal(r.status, 200);
    const first = (await r.json()).access_token;

    r = await api(`/clients/${c.id}`, { bearer: t });
    assert.equal(r.status, 200);
    const got = await r.text();
    assert.deepEqual(JSON.parse(got), { id: c.id, client_id: c.client_id, tenant_id: 'issuer-banco-azul', name: 'my-integration-client', roles: ['issuer'] });
    assert.ok(!got.includes(c.client_secret));

    r = await api('/clients', { bearer: t });
    const list = await r.text();
    assert.deepEqual(JSON.parse(list).map((x) => x.id), [c.id]);
    assert.ok(!list.includes(c.client_secret));
    assert.ok(!JSON.stringify(qp.control.clients()).includes(c.client_secret));

    r = await api(`/clients/${c.id}`, { method: 'PUT', bearer: t, body: { roles: ['issuer'] } });
    assert.equal(r.status, 200);
    assert.deepEqual((await r.json()).roles, ['issuer']);

    r = await api(`/clients/${c.id}`, { method: 'DELETE', bearer: t });
    assert.equal(r.status, 204);
    assert.equal(await r.text(), '');
    await expectOAuthError(await ccToken(c.client_id, c.client_secret), 401, 'invalid_client', 'Invalid client or Invalid client credentials');
    assert.deepEqual(qp.control.introspect(first), { active: false }, 'its tokens die with it');
    await expectApiError(await api(`/clients/${c.id}`, { bearer: t }), 404, 'not_found');
    await expectApiError(await api(`/clients/${c.id}`, { method: 'DELETE', bearer: t }), 404, 'not_found');

    const counts = qp.control.counters().apiByRoute;
    assert.deepEqual(counts, {
      'POST /credentials/clients': { 201: 1 },
      'GET /credentials/clients/{id}': { 200: 1, 404: 1 },
      'GET /credentials/clients': { 200: 1 },
      'PUT /credentials/clients/{id}': { 200: 1 },
      'DELETE /credentials/clients/{id}': { 204: 1, 404: 1 },
    });
  });

  it('updated roles show in tokens issued afterwards (rolesByTenantType widens a type\'s roles)', async () => {
    await qp.close();
    qp = await startQPay({ rolesByTenantType: { issuer: ['issuer', 'issuer-reports'] } });
    const { access_token: t } = await login();
    assert.deepEqual((await (await api('/roles', { bearer: t })).json()).roles, ['issuer', 'issuer-reports']);
    const c = await createClient(t, { tenant_id: 'issuer-banco-azul', name: 'x', roles: ['issuer'] });
    let r = await ccToken(c.client_id, c.client_secret);
    const before = (await r.json()).access_token;
    assert.deepEqual(qp.control.introspect(before).roles, ['issuer', 'default-roles-qpay']);
    r = await api(`/clients/${c.id}`, { method: 'PUT', bearer: t, body: { roles: ['issuer-reports'] } });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { id: c.id, client_id: c.client_id, tenant_id: 'issuer-banco-azul', name: 'x', roles: ['issuer-reports'] });
    r = await ccToken(c.client_id, c.client_secret);
    const after = (await r.json()).access_token;
    assert.deepEqual(jwtPart(after, 1).realm_access.roles, ['issuer-reports', 'default-roles-qpay']);
    assert.deepEqual(qp.control.introspect(before).roles, ['issuer', 'default-roles-qpay'], 'a token already issued keeps its roles');
    // The widening is per type: a processor still has only its own role.
    const { access_token: p } = await login(PROCESSOR);
    await expectApiError(await api('/clients', { method: 'POST', bearer: p, body: { tenant_id: 'proc-acme', name: 'x', roles: ['issuer-reports'] } }), 400, 'invalid_request');
    await assert.rejects(startQPay({ rolesByTenantType: { bank: ['x'] } }), /tenant type/);
    await assert.rejects(startQPay({ rolesByTenantType: { issuer: [] } }), /non-empty/);
  });

  it('tenant rules: own tenant only, roles of the own tenant type only', async () => {
    const { access_token: issuer } = await login(ISSUER);
    const { access_token: proc } = await login(PROCESSOR);
    const { access_token: emb } = await login(EMBOSSER);
    // A processor may not create clients for its child issuer, nor an issuer for its parent.
    await expectApiError(await api('/clients', { method: 'POST', bearer: proc, body: { tenant_id: 'issuer-banco-azul', name: 'x', roles: ['issuer'] } }), 403, 'forbidden');
    await expectApiError(await api('/clients', { method: 'POST', bearer: issuer, body: { tenant_id: 'proc-acme', name: 'x', roles: ['processor'] } }), 403, 'forbidden');
    await expectApiError(await api('/clients', { method: 'POST', bearer: issuer, body: { tenant_id: 'nope', name: 'x', roles: ['issuer'] } }), 403, 'forbidden');
    // Roles of another tenant type.
    const j = await expectApiError(await api('/clients', { method: 'POST', bearer: issuer, body: { tenant_id: 'issuer-banco-azul', name: 'x', roles: ['processor'] } }), 400, 'invalid_request');
    assert.match(j.error_description, /processor/);
    await expectApiError(await api('/clients', { method: 'POST', bearer: emb, body: { tenant_id: 'emb-printco', name: 'x', roles: ['issuer'] } }), 400, 'invalid_request');
    // Each type can create with its own role.
    for (const [t, tenant, role] of [[proc, 'proc-acme', 'processor'], [emb, 'emb-printco', 'embosser'], [issuer, 'issuer-banco-azul', 'issuer']]) {
      const c = await createClient(t, { tenant_id: tenant, name: `${role}-client`, roles: [role] });
      assert.equal(c.tenant_id, tenant);
    }
    assert.equal(qp.control.clients().length, 3);
  });

  it('another tenant\'s client is invisible (404 for get, update, delete; absent from the list)', async () => {
    const { access_token: mine } = await login(ISSUER);
    const { access_token: theirs } = await login(OTHER_ISSUER);
    const c = await createClient(mine, { tenant_id: 'issuer-banco-azul', name: 'x', roles: ['issuer'] });
    await expectApiError(await api(`/clients/${c.id}`, { bearer: theirs }), 404, 'not_found');
    await expectApiError(await api(`/clients/${c.id}`, { method: 'PUT', bearer: theirs, body: { roles: ['issuer'] } }), 404, 'not_found');
    await expectApiError(await api(`/clients/${c.id}`, { method: 'DELETE', bearer: theirs }), 404, 'not_found');
    assert.deepEqual(await (await api('/clients', { bearer: theirs })).json(), []);
    assert.equal((await api(`/clients/${c.id}`, { bearer: mine })).status, 200);
    await expectApiError(await api('/clients/%E0%A4%A', { bearer: mine }), 404, 'not_found');
  });

  it('request validation: content type, JSON, unknown or camelCase fields, name, roles', async () => {
    const { access_token: t } = await login();
    const post = (body, headers) => api('/clients', { method: 'POST', bearer: t, body, headers });
    const good = { tenant_id: 'issuer-banco-azul', name: 'n', roles: ['issuer'] };
    await expectApiError(await post(JSON.stringify(good), { 'content-type': 'text/plain' }), 415, 'unsupported_media_type');
    await expectApiError(await post('{not json', { 'content-type': 'application/json' }), 400, 'invalid_request');
    await expectApiError(await post([good]), 400, 'invalid_request');
    const j = await expectApiError(await post({ tenantId: 'issuer-banco-azul', name: 'n', roles: ['issuer'] }), 400, 'invalid_request');
    assert.match(j.error_description, /tenantId/);
    await expectApiError(await post({ ...good, tenant_id: 7 }), 400, 'invalid_request');
    await expectApiError(await post({ ...good, name: '' }), 400, 'invalid_request');
    await expectApiError(await post({ ...good, name: '   ' }), 400, 'invalid_request');
    await expectApiError(await post({ ...good, name: 'a\nb' }), 400, 'invalid_request');
    await expectApiError(await post({ ...good, name: 'x'.repeat(101) }), 400, 'invalid_request');
    await expectApiError(await post({ ...good, roles: [] }), 400, 'invalid_request');
    await expectApiError(await post({ ...good, roles: 'issuer' }), 400, 'invalid_request');
    await expectApiError(await post({ ...good, roles: ['issuer', 'issuer'] }), 400, 'invalid_request');
    await expectApiError(await post({ ...good, roles: [1] }), 400, 'invalid_request');
    const { roles, ...noRoles } = good;
    await expectApiError(await post(noRoles), 400, 'invalid_request');
    const c = await createClient(t, good);
    const put = (body) => api(`/clients/${c.id}`, { method: 'PUT', bearer: t, body });
    await expectApiError(await put({ roles: ['issuer'], name: 'rename' }), 400, 'invalid_request');
    await expectApiError(await put({ roles: [] }), 400, 'invalid_request');
    await expectApiError(await put({ roles: ['embosser'] }), 400, 'invalid_request');
    await expectApiError(await api(`/clients/${c.id}`, { method: 'PUT', bearer: t, body: '{"roles":["issuer"]}', headers: { 'content-type': 'text/plain' } }), 415, 'unsupported_media_type');
    const big = await post(JSON.stringify({ ...good, name: 'x'.repeat(BODY_LIMIT) }), { 'content-type': 'application/json' });
    assert.equal(big.status, 413);
    await big.arrayBuffer();
    assert.equal(qp.control.clients().length, 1);
  });

  it('maxClients bounds how many clients exist', async () => {
    await qp.close();
    qp = await startQPay({ maxClients: 1 });
    const { access_token: t } = await login();
    await createClient(t, { tenant_id: 'issuer-banco-azul', name: 'a', roles: ['issuer'] });
    await expectApiError(await api('/clients', { method: 'POST', bearer: t, body: { tenant_id: 'issuer-banco-azul', name: 'b', roles: ['issuer'] } }), 409, 'conflict');
  });

  it('authorization: a live user token is required', async () => {
    let r = await api('/whoami');
    await expectApiError(r, 401, 'unauthorized');
    assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="qpay"');
    r = await api('/whoami', { bearer: 'not a token' });
    await expectApiError(r, 400, 'invalid_request');
    r = await api('/whoami', { bearer: 'abc.def.ghi' });
    await expectApiError(r, 401, 'invalid_token');
    assert.match(r.headers.get('www-authenticate'), /error="invalid_token"/);

    const u = await login();
    // A token with a changed payload (tenant) fails the signature check.
    const [h, p, s] = u.access_token.split('.');
    const forged = Buffer.from(JSON.stringify({ ...jwtPart(u.access_token, 1), tenant_id: 'proc-acme' })).toString('base64url');
    await expectApiError(await api('/whoami', { bearer: `${h}.${forged}.${s}` }), 401, 'invalid_token');
    assert.equal(p.length > 0, true);

    // Expiry on the server's clock: a second before the token's exp, then at it (set from exp,
    // not advanced from the login, so time spent under load in between cannot end it early).
    const expMs = jwtPart(u.access_token, 1).exp * 1000;
    assert.equal(expMs - Date.now() <= 300_000, true, 'a 300 s token');
    qp.control.setClockOffset(expMs - 1_000 - Date.now());
    assert.equal((await api('/whoami', { bearer: u.access_token })).status, 200);
    qp.control.setClockOffset(expMs - Date.now());
    r = await api('/whoami', { bearer: u.access_token });
    const j = await expectApiError(r, 401, 'invalid_token');
    assert.match(j.error_description, /expired/);
    qp.control.setClockOffset(0);

    // A client-credentials token is not a user token.
    const c = await createClient(u.access_token, { tenant_id: 'issuer-banco-azul', name: 'x', roles: ['issuer'] });
    const cc = await (await ccToken(c.client_id, c.client_secret)).json();
    await expectApiError(await api('/whoami', { bearer: cc.access_token }), 403, 'forbidden');
    // The refresh token is not an access token.
    await expectApiError(await api('/whoami', { bearer: u.refresh_token }), 401, 'invalid_token');

    // Revocation.
    assert.equal(qp.control.liveTokens(), 2);
    qp.control.revoke();
    await expectApiError(await api('/whoami', { bearer: u.access_token }), 401, 'invalid_token');
  });

  it('methods, unknown routes and tokens in the query', async () => {
    const { access_token: t } = await login();
    let r = await api('/whoami', { method: 'POST', bearer: t });
    await expectApiError(r, 405, 'method_not_allowed');
    assert.equal(r.headers.get('allow'), 'GET, HEAD');
    r = await api('/clients', { method: 'DELETE', bearer: t });
    assert.equal(r.headers.get('allow'), 'GET, POST, HEAD');
    await r.arrayBuffer();
    r = await api('/clients/x', { method: 'PATCH', bearer: t });
    assert.equal(r.headers.get('allow'), 'GET, PUT, DELETE, HEAD');
    await r.arrayBuffer();
    await expectApiError(await api('/nothing-here'), 401, 'unauthorized');
    await expectApiError(await api('/nothing-here', { bearer: t }), 404, 'not_found');
    r = await fetch(`${qp.credentialsBaseUrl}/whoami?access_token=${t}`);
    await expectApiError(r, 400, 'invalid_request');
    r = await api('/whoami', { method: 'HEAD', bearer: t });
    assert.equal(r.status, 200);
    const c = qp.control.counters();
    assert.equal(c.securityViolations, 1);
    assert.equal(c.apiByStatus['405'], 3);
  });
});

describe('qpay: secrets never leak', () => {
  it('counters, faults, clients and control answers hold no password, secret or token', async () => {
    const qp = await startQPay();
    try {
      const { login, createClient, ccToken } = helpers(() => qp);
      const u = await login();
      const c = await createClient(u.access_token, { tenant_id: 'issuer-banco-azul', name: 'x', roles: ['issuer'] });
      const cc = await (await ccToken(c.client_id, c.client_secret)).json();
      await ccToken(c.client_id, 'wrong-secret-value');
      // A caller that mixes the fields up: the secret sent as client_id is not recorded either.
      await ccToken(c.client_secret, c.client_secret);
      assert.equal(qp.control.counters().lastTokenRequest.clientId, null);
      const seen = [
        JSON.stringify(qp.control.counters()),
        JSON.stringify(qp.control.clients()),
        JSON.stringify(qp.control.tenants()),
        JSON.stringify(qp.control.faults()),
        JSON.stringify(qp.control.introspect(cc.access_token)),
        await (await fetch(`${qp.url}/__control/counters`)).text(),
        await (await fetch(`${qp.url}/__control/clients`)).text(),
      ].join('\n');
      for (const s of [ISSUER.password, c.client_secret, 'wrong-secret-value', u.access_token, u.refresh_token, cc.access_token]) {
        assert.ok(!seen.includes(s));
      }
    } finally {
      await qp.close();
    }
  });
});

describe('qpay: fault injection', () => {
  let qp;
  before(async () => {
    qp = await startQPay();
  });
  after(() => qp.close());
  beforeEach(() => qp.control.reset({ all: true }));
  const { login, api } = helpers(() => qp);
  const pw = () => fetch(qp.tokenUrl, { method: 'POST', body: form({ grant_type: 'password', client_id: 'qpay-console', username: ISSUER.username, password: ISSUER.password }) });
  const addFault = async (f) => {
    const r = await fetch(`${qp.url}/__control/faults`, { method: 'POST', body: JSON.stringify(f) });
    assert.equal(r.status, 200);
    return r.json();
  };

  it('status, headers and raw body for the next N token requests, counted by grant', async () => {
    await addFault({ target: 'token', count: 2, status: 503, headers: { 'Retry-After': '1' }, body: '{"error":"temporarily_unavailable"}' });
    for (let i = 0; i < 2; i += 1) {
      const r = await pw();
      assert.equal(r.status, 503);
      assert.equal(r.headers.get('retry-after'), '1');
      assert.equal(await r.text(), '{"error":"temporarily_unavailable"}');
    }
    assert.equal((await pw()).status, 200);
    const c = qp.control.counters();
    assert.equal(c.tokenRequests, 3);
    assert.deepEqual(c.tokenRequestsByGrant, { password: 3 });
    assert.equal(c.tokenSuccesses, 1);
    assert.equal(c.faultsApplied, 2);
  });

  it('api faults leave the token endpoint alone and count under their route; "any" hits both', async () => {
    const { access_token: t } = await login();
    qp.control.addFault({ target: 'api', status: 500, body: 'boom' });
    let r = await api('/whoami', { bearer: t });
    assert.equal(r.status, 500);
    assert.equal(await r.text(), 'boom');
    assert.equal((await api('/whoami', { bearer: t })).status, 200);
    assert.deepEqual(qp.control.counters().apiByRoute, { 'GET /credentials/whoami': { 200: 1, 500: 1 } });
    qp.control.addFault({ target: 'any', count: 2, status: 502 });
    assert.equal((await pw()).status, 502);
    r = await api('/roles', { bearer: t });
    assert.equal(r.status, 502);
    assert.equal(await r.text(), '');
  });

  it('headers alone decorate the normal answer; delayMs delays it', async () => {
    qp.control.addFault({ target: 'token', headers: { 'X-Test': 'yes' }, delayMs: 60 });
    const t0 = performance.now();
    const r = await pw();
    assert.ok(performance.now() - t0 >= 55);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-test'), 'yes');
    assert.equal(typeof (await r.json()).access_token, 'string');
  });

  it('hang never answers; reset cuts the body', async () => {
    qp.control.addFault({ target: 'token', hang: true });
    const hung = pw();
    const timeout = new Promise((res) => setTimeout(() => res('timeout'), 150));
    assert.equal(await Promise.race([hung.then(() => 'answered', () => 'failed'), timeout]), 'timeout');
    qp.control.addFault({ target: 'token', reset: true });
    await assert.rejects(async () => {
      const r = await pw();
      await r.text();
    });
    assert.equal(qp.control.counters().tokenRequests, 2);
  });

  it('faults can be listed and cleared over HTTP; malformed ones are refused', async () => {
    await addFault({ target: 'api', count: 3, status: 429 });
    let r = await fetch(`${qp.url}/__control/faults`);
    const { faults } = await r.json();
    assert.equal(faults.length, 1);
    assert.equal(faults[0].remaining, 3);
    r = await fetch(`${qp.url}/__control/faults`, { method: 'DELETE' });
    assert.deepEqual(await r.json(), { faults: [] });
    for (const bad of [{ target: 'nope' }, { count: 0 }, { status: 42 }, { body: {} }, { headers: [] }, { delayMs: -1 }]) {
      r = await fetch(`${qp.url}/__control/faults`, { method: 'POST', body: JSON.stringify(bad) });
      assert.equal(r.status, 400, JSON.stringify(bad));
      await r.arrayBuffer();
    }
    assert.throws(() => qp.control.addFault({ headers: { 'bad header': 'x' } }));
  });

  it('HTTP control: clock, lifetime, config, revoke, introspect, reset', async () => {
    const post = async (p, body) => (await fetch(`${qp.url}/__control/${p}`, { method: 'POST', body: JSON.stringify(body) })).json();
    assert.equal((await post('lifetime', { seconds: 42 })).seconds, 42);
    const u = await login();
    assert.equal(u.expires_in, 42);
    assert.equal((await post('introspect', { token: u.access_token })).active, true);
    assert.equal((await post('clock', { advanceMs: 42_000 })).offsetMs, 42_000);
    assert.equal((await post('introspect', { token: u.access_token })).active, false);
    assert.equal((await (await fetch(`${qp.url}/__control/clock`)).json()).offsetMs, 42_000);
    assert.equal((await post('clock', { offsetMs: 0 })).offsetMs, 0);
    assert.equal((await post('config', { tokenType: 'bearer' })).tokenType, 'bearer');
    assert.ok((await post('revoke', {})).revoked >= 2);
    assert.equal((await post('introspect', { token: u.access_token })).active, false);
    assert.equal((await post('lifetime', { seconds: -1 })).error, 'seconds must be a non-negative integer');
    await post('reset', { all: true });
    assert.equal((await login()).expires_in, 300);
    assert.equal((await (await fetch(`${qp.url}/__control/nope`)).json()).error, 'no control route GET /__control/nope');
  });
});

describe('qpay: options and lifecycle', () => {
  it('realm name, lifetime, custom tenants and users', async () => {
    const qp = await startQPay({
      realm: 'qpay-test',
      tokenLifetimeSeconds: 60,
      tenants: [{ tenantId: 'p', tenantType: 'processor' }, { tenantId: 'i', tenantType: 'issuer', parentTenantId: 'p' }],
      users: [{ username: 'Alice', password: 'pw', tenantId: 'i' }],
    });
    try {
      assert.equal(qp.tokenUrl, `${qp.url}/auth/realms/qpay-test/protocol/openid-connect/token`);
      const { login, api } = helpers(() => qp);
      const u = await login({ username: 'alice', password: 'pw' });
      assert.equal(u.expires_in, 60);
      assert.deepEqual(jwtPart(u.access_token, 1).realm_access.roles, ['issuer', 'default-roles-qpay-test']);
      assert.deepEqual(await (await api('/whoami', { bearer: u.access_token })).json(), { tenant_type: 'issuer', tenant_id: 'i', parent_tenant_id: 'p' });
      const r = await fetch(`${qp.url}/auth/realms/qpay/protocol/openid-connect/token`, { method: 'POST', body: form({ grant_type: 'password' }) });
      assert.equal(r.status, 404);
      await r.arrayBuffer();
    } finally {
      await qp.close();
    }
    await assert.rejects(startQPay({ tenants: [{ tenantId: 'x', tenantType: 'bank' }] }), /tenantType/);
    await assert.rejects(startQPay({ users: [{ username: 'u', password: 'p', tenantId: 'nope' }] }), /tenant/);
    await assert.rejects(startQPay({ realm: 'a/b' }), /realm/);
    await assert.rejects(startQPay({ tokenLifetimeSeconds: -5 }), /tokenLifetimeSeconds/);
  });

  it('the seeds match the document\'s tenant types', () => {
    assert.deepEqual(new Set(SEED_TENANTS.map((t) => t.tenantType)), new Set(['processor', 'issuer', 'embosser']));
    assert.deepEqual(ROLES_BY_TENANT_TYPE, { processor: ['processor'], issuer: ['issuer'], embosser: ['embosser'] });
  });

  it('close() ends keep-alive and hung connections promptly', async () => {
    const qp = await startQPay();
    const { login } = helpers(() => qp);
    await login();
    qp.control.addFault({ target: 'api', hang: true });
    const hung = fetch(`${qp.credentialsBaseUrl}/whoami`).catch((e) => e);
    await new Promise((res) => setTimeout(res, 30));
    const t0 = performance.now();
    await qp.close();
    assert.ok(performance.now() - t0 < 500);
    assert.ok((await hung) instanceof Error);
  });

  it('runs standalone, prints one JSON line, writes nothing else, stops on SIGINT', async () => {
    const child = spawn(process.execPath, [path.join(here, '..', '..', 'src', 'testing', 'qpay.mjs'), '--port', '0', '--token-lifetime', '120'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (d) => {
      err += d;
    });
    try {
      const line = await new Promise((resolve, reject) => {
        child.stdout.on('data', (d) => {
          out += d;
          if (out.includes('\n')) resolve(out.split('\n')[0]);
        });
        child.once('exit', () => reject(new Error('exited early')));
      });
      const info = JSON.parse(line);
      assert.deepEqual(Object.keys(info), ['url', 'tokenUrl', 'credentialsBaseUrl', 'realm']);
      const { login, createClient, ccToken } = helpers(() => info);
      const u = await login();
      assert.equal(u.expires_in, 120);
      const c = await createClient(u.access_token, { tenant_id: 'issuer-banco-azul', name: 'x', roles: ['issuer'] });
      assert.equal((await ccToken(c.client_id, c.client_secret)).status, 200);
      await ccToken(c.client_id, 'bad');
      const code = new Promise((resolve) => child.once('exit', (cd) => resolve(cd)));
      child.kill('SIGINT');
      assert.equal(await code, 0);
      assert.equal(out, `${line}\n`, 'one line on stdout and nothing more');
      assert.equal(err, '');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('refuses bad CLI arguments', async () => {
    const child = spawn(process.execPath, [path.join(here, '..', '..', 'src', 'testing', 'qpay.mjs'), '--token-lifetime', 'soon'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => {
      err += d;
    });
    const code = await new Promise((resolve) => child.once('exit', resolve));
    assert.equal(code, 2);
    assert.match(err, /--token-lifetime/);
  });
});
