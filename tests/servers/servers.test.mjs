// Tests for the local test servers themselves: node --test tests/servers/
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startSandbox, SEED_ACCOUNTS, BODY_LIMIT } from '../../src/testing/sandbox.mjs';
import { startOidc } from './oidc.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

const form = (o) => new URLSearchParams(o);
// RFC 6749 §2.3.1: form-urlencode id and secret, then base64 "id:secret".
const formEncode = (s) => encodeURIComponent(s).replace(/%20/g, '+');
const basic = (id, secret) => `Basic ${Buffer.from(`${formEncode(id)}:${formEncode(secret)}`).toString('base64')}`;
const jwtPayload = (t) => JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString('utf8'));

const DEMO = { client_id: 'demo-client', client_secret: 'demo-secret-not-real' };
const NARROW = { client_id: 'narrow-client', client_secret: 'narrow-secret-not-real' };
const DOC_ACCOUNT = 'a1b2c3d4-e5f6-7890-1234-567890abcde';

describe('sandbox: token endpoint', () => {
  let sb;
  before(async () => {
    sb = await startSandbox({
      clients: [
        { clientId: 'demo-client', clientSecret: 'demo-secret-not-real', scopes: 'balances.read transactions.read payments.ach.write accounts.read' },
        { clientId: 'narrow-client', clientSecret: 'narrow-secret-not-real', scopes: ['accounts.read'] },
        { clientId: 'odd id:ü', clientSecret: 'p:ss+w%rd é&=', scopes: ['accounts.read'] },
      ],
    });
  });
  after(() => sb.close());
  beforeEach(() => sb.control.reset());

  const token = (body, headers = {}) => fetch(sb.tokenUrl, { method: 'POST', body, headers });

  it('listens on loopback and reports its urls', () => {
    assert.match(sb.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(sb.tokenUrl, `${sb.url}/token`);
    assert.equal(sb.apiBaseUrl, sb.url);
    assert.ok(sb.port > 0);
  });

  it('issues a token with credentials in the body (client_secret_post)', async () => {
    const r = await token(form({ grant_type: 'client_credentials', ...DEMO, scope: 'balances.read accounts.read' }));
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    assert.match(r.headers.get('content-type'), /^application\/json/);
    const j = await r.json();
    assert.deepEqual(Object.keys(j), ['access_token', 'token_type', 'expires_in', 'scope']);
    assert.match(j.access_token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(j.token_type, 'Bearer');
    assert.equal(j.expires_in, 3600);
    assert.equal(j.scope, 'balances.read accounts.read');
    const c = sb.control.counters();
    assert.equal(c.tokenRequests, 1);
    assert.equal(c.tokenSuccesses, 1);
    assert.deepEqual(c.lastTokenRequest, { authMethod: 'post', scope: 'balances.read accounts.read', grantType: 'client_credentials' });
  });

  it('issues a token with HTTP Basic, decoding form-urlencoded id and secret', async () => {
    let r = await token(form({ grant_type: 'client_credentials' }), { authorization: basic('demo-client', 'demo-secret-not-real') });
    assert.equal(r.status, 200);
    const j = await r.json();
    assert.equal(j.scope, 'balances.read transactions.read payments.ach.write accounts.read', 'no scope → all allowed scopes');
    assert.equal(sb.control.counters().lastTokenRequest.authMethod, 'basic');

    r = await token(form({ grant_type: 'client_credentials' }), { authorization: basic('odd id:ü', 'p:ss+w%rd é&=') });
    assert.equal(r.status, 200, await r.clone().text());
    // The same secret NOT form-encoded (raw) must fail: '+' would decode to a space.
    const raw = `Basic ${Buffer.from('odd%20id%3A%C3%BC:p:ss+w%25rd%20%C3%A9%26%3D').toString('base64')}`;
    r = await token(form({ grant_type: 'client_credentials' }), { authorization: raw });
    assert.equal(r.status, 401);
  });

  it('a client_id in the body that matches the Basic id is fine', async () => {
    const r = await token(form({ grant_type: 'client_credentials', client_id: 'demo-client' }), {
      authorization: basic('demo-client', 'demo-secret-not-real'),
    });
    assert.equal(r.status, 200);
  });

  const expectError = async (r, status, error) => {
    assert.equal(r.status, status);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    const j = await r.json();
    assert.equal(j.error, error);
    assert.equal(typeof j.error_description, 'string');
    return j;
  };

  it('unsupported_grant_type for another grant, invalid_request for none', async () => {
    await expectError(await token(form({ grant_type: 'password', ...DEMO })), 400, 'unsupported_grant_type');
    await expectError(await token(form({ ...DEMO })), 400, 'invalid_request');
    assert.deepEqual(sb.control.counters().tokenErrors, { unsupported_grant_type: 1, invalid_request: 1 });
  });

  it('invalid_request for a non-form content type', async () => {
    const r = await token(JSON.stringify({ grant_type: 'client_credentials', ...DEMO }), { 'content-type': 'application/json' });
    await expectError(r, 400, 'invalid_request');
  });

  it('invalid_request for a repeated parameter', async () => {
    await expectError(await token('grant_type=client_credentials&client_id=demo-client&client_secret=demo-secret-not-real&scope=a&scope=b'), 400, 'invalid_request');
  });

  it('invalid_request for credentials both in Basic and in the body', async () => {
    const r = await token(form({ grant_type: 'client_credentials', ...DEMO }), { authorization: basic('demo-client', 'demo-secret-not-real') });
    await expectError(r, 400, 'invalid_request');
  });

  it('invalid_client (401) for a wrong or missing secret; Basic gets a Basic challenge', async () => {
    let r = await token(form({ grant_type: 'client_credentials', client_id: 'demo-client', client_secret: 'wrong' }));
    await expectError(r, 401, 'invalid_client');
    assert.equal(r.headers.get('www-authenticate'), null);
    r = await token(form({ grant_type: 'client_credentials', client_id: 'demo-client' }));
    await expectError(r, 401, 'invalid_client');
    r = await token(form({ grant_type: 'client_credentials' }));
    await expectError(r, 401, 'invalid_client');
    r = await token(form({ grant_type: 'client_credentials', client_id: 'nobody', client_secret: 'demo-secret-not-real' }));
    await expectError(r, 401, 'invalid_client');
    r = await token(form({ grant_type: 'client_credentials' }), { authorization: basic('demo-client', 'wrong') });
    await expectError(r, 401, 'invalid_client');
    assert.equal(r.headers.get('www-authenticate'), 'Basic realm="qbank"');
  });

  it('invalid_scope for a scope outside the client registration', async () => {
    const j = await expectError(await token(form({ grant_type: 'client_credentials', ...NARROW, scope: 'accounts.read balances.read' })), 400, 'invalid_scope');
    assert.match(j.error_description, /balances\.read/);
    await expectError(await token(form({ grant_type: 'client_credentials', ...DEMO, scope: 'no.such.scope' })), 400, 'invalid_scope');
    const r = await token(form({ grant_type: 'client_credentials', ...NARROW, scope: 'accounts.read' }));
    assert.equal((await r.json()).scope, 'accounts.read');
  });

  it('secrets in the URL query are refused and counted as a security violation', async () => {
    const r = await fetch(`${sb.tokenUrl}?client_secret=demo-secret-not-real`, { method: 'POST', body: form({ grant_type: 'client_credentials', client_id: 'demo-client' }) });
    await expectError(r, 400, 'invalid_request');
    const c = sb.control.counters();
    assert.equal(c.securityViolations, 1);
    assert.equal(c.tokenSuccesses, 0);
    assert.ok(!JSON.stringify(c).includes('demo-secret-not-real'), 'counters never hold a secret');
  });

  it('rejects GET on the token endpoint', async () => {
    const r = await fetch(sb.tokenUrl);
    assert.equal(r.status, 405);
    assert.equal(r.headers.get('allow'), 'POST');
  });

  it(`bodies over ${BODY_LIMIT} bytes get 413`, async () => {
    const big = `grant_type=client_credentials&pad=${'x'.repeat(BODY_LIMIT)}`;
    const r = await token(big);
    assert.equal(r.status, 413);
    await r.arrayBuffer();
  });
});

describe('sandbox: API', () => {
  let sb;
  let demoToken;
  let narrowToken;
  const getToken = async (creds, scope) => {
    const r = await fetch(sb.tokenUrl, { method: 'POST', body: form({ grant_type: 'client_credentials', ...creds, ...(scope ? { scope } : {}) }) });
    assert.equal(r.status, 200);
    return (await r.json()).access_token;
  };
  before(async () => {
    sb = await startSandbox();
  });
  after(() => sb.close());
  beforeEach(async () => {
    sb.control.reset({ all: true });
    demoToken = await getToken(DEMO);
    narrowToken = await getToken(NARROW);
  });
  const api = (p, tok, init = {}) => fetch(`${sb.apiBaseUrl}${p}`, {
    ...init,
    headers: { ...(tok ? { authorization: `Bearer ${tok}` } : {}), ...(init.headers ?? {}) },
  });

  it('returns the documented balance, byte for byte', async () => {
    const r = await api(`/v1/balances/${DOC_ACCOUNT}`, demoToken);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.equal(
      await r.text(),
      '{"account_id":"a1b2c3d4-e5f6-7890-1234-567890abcde","available_balance":"1234.56","ledger_balance":"1300.00","currency":"USD","as_of":"2026-11-20"}',
    );
  });

  it('serves amounts as exact JSON numbers in the raw text', async () => {
    const text = await (await api('/v1/balances/acct-number-amounts', demoToken)).text();
    assert.ok(text.includes('"available_balance":12345678901234567.89'), text);
    assert.ok(text.includes('"ledger_balance":98765432109876543.21'), text);
    assert.ok(text.includes('"pending_balance":123456789012345678.90'), text);
    assert.notEqual(String(JSON.parse(text).available_balance), '12345678901234567.89', 'a plain JSON.parse loses digits');
  });

  it('serves the other seeded accounts', async () => {
    for (const id of ['acct-realtime', 'acct-negative', 'acct-nested']) {
      const r = await api(`/v1/balances/${id}`, demoToken);
      assert.equal(r.status, 200);
      assert.equal(await r.text(), SEED_ACCOUNTS[id]);
    }
    assert.equal(JSON.parse(SEED_ACCOUNTS['acct-realtime']).as_of, undefined);
    assert.equal(JSON.parse(SEED_ACCOUNTS['acct-negative']).available_balance, '-42.10');
    assert.deepEqual(JSON.parse(SEED_ACCOUNTS['acct-nested']).available_balance, { amount: '10.00', currency: 'EUR' });
  });

  it('401 with a bare Bearer challenge when no credentials are sent', async () => {
    const r = await api(`/v1/balances/${DOC_ACCOUNT}`);
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="qbank"');
    await r.arrayBuffer();
  });

  it('401 invalid_token for an unknown token', async () => {
    const r = await api(`/v1/balances/${DOC_ACCOUNT}`, 'not-a-token-we-issued');
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate'), /^Bearer realm="qbank", error="invalid_token", error_description="[^"]+"$/);
    await r.arrayBuffer();
  });

  it('403 insufficient_scope without balances.read', async () => {
    const r = await api(`/v1/balances/${DOC_ACCOUNT}`, narrowToken);
    assert.equal(r.status, 403);
    assert.match(r.headers.get('www-authenticate'), /^Bearer realm="qbank", error="insufficient_scope", error_description="[^"]+", scope="balances\.read"$/);
    await r.arrayBuffer();
  });

  it('404 problem+json for an unknown account', async () => {
    const r = await api('/v1/balances/no-such-account', demoToken);
    assert.equal(r.status, 404);
    assert.equal(r.headers.get('content-type'), 'application/problem+json');
    const j = await r.json();
    assert.equal(j.status, 404);
    assert.equal(typeof j.title, 'string');
    assert.equal(j.type, 'about:blank');
  });

  it('transactions honour limit and need transactions.read', async () => {
    let r = await api('/v1/transactions?limit=2', demoToken);
    assert.equal(r.status, 200);
    const j = await r.json();
    assert.equal(j.transactions.length, 2);
    assert.equal(j.has_more, true);
    r = await api('/v1/transactions?limit=0', demoToken);
    assert.equal(r.status, 400);
    await r.arrayBuffer();
    r = await api('/v1/transactions?limit=2', narrowToken);
    assert.equal(r.status, 403);
    await r.arrayBuffer();
  });

  it('echo returns the exact JSON text', async () => {
    const body = '{"amount":98765432109876543.21,"note":"ü"}';
    const r = await api('/v1/echo', demoToken, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 200);
    assert.equal(await r.text(), body);
  });

  it('an access token in the URL query is refused and counted', async () => {
    const r = await api(`/v1/balances/${DOC_ACCOUNT}?access_token=${demoToken}`);
    assert.equal(r.status, 400);
    await r.arrayBuffer();
    assert.equal(sb.control.counters().securityViolations, 1);
  });

  it('revoke makes issued tokens invalid_token', async () => {
    const r0 = await fetch(`${sb.url}/__control/revoke`, { method: 'POST' });
    assert.ok((await r0.json()).revoked >= 2);
    const r = await api(`/v1/balances/${DOC_ACCOUNT}`, demoToken);
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate'), /error="invalid_token"/);
    await r.arrayBuffer();
  });

  it('the clock offset expires a token without waiting', async () => {
    let r = await api(`/v1/balances/${DOC_ACCOUNT}`, demoToken);
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    r = await fetch(`${sb.url}/__control/clock`, { method: 'POST', body: JSON.stringify({ offsetMs: 3599_000 }) });
    assert.equal((await r.json()).offsetMs, 3599_000);
    r = await api(`/v1/balances/${DOC_ACCOUNT}`, demoToken);
    assert.equal(r.status, 200, 'one second before expiry it is still valid');
    await r.arrayBuffer();
    sb.control.advanceClock(1000);
    r = await api(`/v1/balances/${DOC_ACCOUNT}`, demoToken);
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate'), /error="invalid_token", error_description="The access token expired"/);
    await r.arrayBuffer();
  });

  it('lifetime control changes expires_in and expiry', async () => {
    const r0 = await fetch(`${sb.url}/__control/lifetime`, { method: 'POST', body: JSON.stringify({ seconds: 2 }) });
    assert.deepEqual(await r0.json(), { seconds: 2 });
    const r = await fetch(sb.tokenUrl, { method: 'POST', body: form({ grant_type: 'client_credentials', ...DEMO }) });
    const j = await r.json();
    assert.equal(j.expires_in, 2);
    sb.control.advanceClock(2000);
    const r2 = await api(`/v1/balances/${DOC_ACCOUNT}`, j.access_token);
    assert.equal(r2.status, 401);
    await r2.arrayBuffer();
  });

  it('counters tally requests by status', async () => {
    sb.control.reset();
    await (await api(`/v1/balances/${DOC_ACCOUNT}`, demoToken)).arrayBuffer();
    await (await api('/v1/balances/nope', demoToken)).arrayBuffer();
    await (await api('/v1/balances/nope')).arrayBuffer();
    const c = await (await fetch(`${sb.url}/__control/counters`)).json();
    assert.equal(c.apiRequests, 3);
    assert.deepEqual(c.apiByStatus, { 200: 1, 404: 1, 401: 1 });
    assert.equal(c.tokenRequests, 0);
    assert.equal(c.securityViolations, 0);
  });
});

describe('sandbox: token formats', () => {
  it('jwtTokens gives well-formed JWTs with exp, iat, scope, client_id', async () => {
    const sb = await startSandbox({ jwtTokens: true, tokenLifetimeSeconds: 60 });
    try {
      const r = await fetch(sb.tokenUrl, { method: 'POST', body: form({ grant_type: 'client_credentials', ...DEMO, scope: 'balances.read' }) });
      const { access_token: t } = await r.json();
      assert.equal(t.split('.').length, 3);
      const p = jwtPayload(t);
      assert.equal(p.exp - p.iat, 60);
      assert.equal(p.scope, 'balances.read');
      assert.equal(p.client_id, 'demo-client');
      const b = await fetch(`${sb.url}/v1/balances/${DOC_ACCOUNT}`, { headers: { authorization: `Bearer ${t}` } });
      assert.equal(b.status, 200);
      await b.arrayBuffer();
    } finally {
      await sb.close();
    }
  });

  it('omitExpiresIn leaves expires_in out (generic-bank style)', async () => {
    const sb = await startSandbox({ omitExpiresIn: true });
    try {
      const r = await fetch(sb.tokenUrl, { method: 'POST', body: form({ grant_type: 'client_credentials', ...DEMO }) });
      const j = await r.json();
      assert.equal('expires_in' in j, false);
      assert.equal(j.token_type, 'Bearer');
    } finally {
      await sb.close();
    }
  });

  it('generic answers exactly as the generic bank\'s document: only access_token; the token dies after the hour with a 401', async () => {
    const sb = await startSandbox({ generic: true });
    try {
      // The document's request: the credentials in the form body, Accept: application/json.
      const r = await fetch(sb.tokenUrl, {
        method: 'POST',
        headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
        body: 'client_id=demo-client&client_secret=demo-secret-not-real&grant_type=client_credentials',
      });
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type'), /^application\/json/);
      const text = await r.text();
      const j = JSON.parse(text);
      assert.deepEqual(Object.keys(j), ['access_token'], text.replace(j.access_token, '…'));
      assert.match(j.access_token, /^[A-Za-z0-9]{32}$/, 'like the document\'s FOEtUHwg0das9PhsasVmgMGbZn7nWSgK');
      const balance = () => fetch(`${sb.url}/v1/balances/${DOC_ACCOUNT}`, { headers: { authorization: `Bearer ${j.access_token}` } });
      sb.control.advanceClock(3590_000); // (real milliseconds pass too)
      const ok = await balance();
      assert.equal(ok.status, 200);
      await ok.arrayBuffer();
      sb.control.advanceClock(10_000); // one hour after issue: "Subsequent request will produce an HTTP 401"
      const late = await balance();
      assert.equal(late.status, 401);
      assert.match(late.headers.get('www-authenticate'), /error="invalid_token"/);
      await late.arrayBuffer();
      // configure() switches the mode off and on.
      assert.equal(sb.control.configure({ generic: false }).generic, false);
      const qbank = await (await fetch(sb.tokenUrl, { method: 'POST', body: form({ grant_type: 'client_credentials', ...DEMO }) })).json();
      assert.equal(qbank.token_type, 'Bearer');
      assert.equal(sb.control.configure({ generic: true }).generic, true);
    } finally {
      await sb.close();
    }
  });
});

describe('sandbox: fault injection', () => {
  let sb;
  before(async () => {
    sb = await startSandbox();
  });
  after(() => sb.close());
  beforeEach(() => sb.control.reset({ all: true }));
  const tokenReq = (init = {}) => fetch(sb.tokenUrl, { method: 'POST', body: form({ grant_type: 'client_credentials', ...DEMO }), ...init });
  const addFault = async (f) => {
    const r = await fetch(`${sb.url}/__control/faults`, { method: 'POST', body: JSON.stringify(f) });
    assert.equal(r.status, 200);
    return r.json();
  };

  it('status, headers and raw body for the next N matching requests', async () => {
    await addFault({ target: 'token', count: 2, status: 503, headers: { 'Retry-After': '1' }, body: '{"error":"temporarily_unavailable"}' });
    for (let i = 0; i < 2; i += 1) {
      const r = await tokenReq();
      assert.equal(r.status, 503);
      assert.equal(r.headers.get('retry-after'), '1');
      assert.equal(await r.text(), '{"error":"temporarily_unavailable"}');
    }
    const r = await tokenReq();
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    const c = sb.control.counters();
    assert.equal(c.tokenRequests, 3);
    assert.equal(c.faultsApplied, 2);
  });

  it('targets: an api fault leaves the token endpoint alone, "any" hits both', async () => {
    await addFault({ target: 'api', status: 500, body: 'boom' });
    const t = await tokenReq();
    assert.equal(t.status, 200);
    const { access_token: tok } = await t.json();
    let r = await fetch(`${sb.url}/v1/balances/${DOC_ACCOUNT}`, { headers: { authorization: `Bearer ${tok}` } });
    assert.equal(r.status, 500);
    assert.equal(await r.text(), 'boom');
    assert.equal(sb.control.counters().apiByStatus['500'], 1);
    sb.control.addFault({ target: 'any', count: 2, status: 502 });
    assert.equal((await tokenReq()).status, 502);
    r = await fetch(`${sb.url}/v1/balances/${DOC_ACCOUNT}`, { headers: { authorization: `Bearer ${tok}` } });
    assert.equal(r.status, 502);
    await r.arrayBuffer();
  });

  it('headers alone decorate the normal answer', async () => {
    await addFault({ target: 'token', headers: { 'X-Injected': 'yes' } });
    const r = await tokenReq();
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-injected'), 'yes');
    assert.equal((await r.json()).token_type, 'Bearer');
  });

  it('delayMs delays the answer', async () => {
    await addFault({ target: 'token', delayMs: 150 });
    const t0 = performance.now();
    const r = await tokenReq();
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    assert.ok(performance.now() - t0 >= 140);
  });

  it('hang never answers (the client must time out)', async () => {
    await addFault({ target: 'token', hang: true });
    await assert.rejects(tokenReq({ signal: AbortSignal.timeout(150) }), { name: 'TimeoutError' });
    const r = await tokenReq();
    assert.equal(r.status, 200, 'only one request hangs');
    await r.arrayBuffer();
  });

  it('reset destroys the socket mid-body', async () => {
    await addFault({ target: 'token', reset: true });
    const r = await tokenReq();
    assert.equal(r.status, 200);
    await assert.rejects(r.text());
    assert.equal(sb.control.counters().tokenSuccesses, 1, 'the token was issued but never fully delivered');
  });

  it('reset on the api still counts the status that was sent', async () => {
    const { access_token: tok } = await (await tokenReq()).json();
    sb.control.addFault({ target: 'api', reset: true });
    const r = await fetch(`${sb.url}/v1/balances/${DOC_ACCOUNT}`, { headers: { authorization: `Bearer ${tok}` } });
    assert.equal(r.status, 200);
    await assert.rejects(r.text());
    await new Promise((res) => setTimeout(res, 20));
    assert.deepEqual(sb.control.counters().apiByStatus, { 200: 1 });
  });

  it('trickle sends the body one byte at a time', async () => {
    await addFault({ target: 'token', trickle: 25, status: 200, body: '{"a":1}' });
    const t0 = performance.now();
    const chunks = await new Promise((resolve, reject) => {
      const req = http.request(sb.tokenUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, (res) => {
        const got = [];
        res.on('data', (c) => got.push(c.toString()));
        res.on('end', () => resolve(got));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end('grant_type=client_credentials');
    });
    assert.equal(chunks.join(''), '{"a":1}');
    assert.ok(chunks.length >= 4, `arrived in ${chunks.length} chunks`);
    assert.ok(performance.now() - t0 >= 7 * 25 * 0.8);
  });

  it('redirect answers with a Location elsewhere', async () => {
    await addFault({ target: 'token', redirect: 'https://elsewhere.invalid/token' });
    const r = await tokenReq({ redirect: 'manual' });
    assert.equal(r.status, 302);
    assert.equal(r.headers.get('location'), 'https://elsewhere.invalid/token');
    await r.arrayBuffer();
    await addFault({ target: 'token', redirect: 'https://elsewhere.invalid/token', status: 307 });
    const r2 = await tokenReq({ redirect: 'manual' });
    assert.equal(r2.status, 307);
    await r2.arrayBuffer();
  });

  it('faults can be listed, cleared and are rejected when malformed', async () => {
    await addFault({ target: 'api', count: 3, status: 503 });
    let r = await fetch(`${sb.url}/__control/faults`);
    assert.equal((await r.json()).faults[0].remaining, 3);
    r = await fetch(`${sb.url}/__control/faults`, { method: 'POST', body: JSON.stringify({ target: 'nowhere' }) });
    assert.equal(r.status, 400);
    await r.arrayBuffer();
    r = await fetch(`${sb.url}/__control/faults`, { method: 'POST', body: JSON.stringify({ status: 500, headers: { 'bad header': 'x' } }) });
    assert.equal(r.status, 400);
    await r.arrayBuffer();
    r = await fetch(`${sb.url}/__control/reset`, { method: 'POST' });
    await r.arrayBuffer();
    assert.deepEqual(sb.control.faults(), []);
  });
});

describe('sandbox: lifecycle', () => {
  it('close() ends keep-alive and hung connections promptly', async () => {
    const sb = await startSandbox();
    const r = await fetch(sb.tokenUrl, { method: 'POST', body: form({ grant_type: 'client_credentials', ...DEMO }) });
    await r.arrayBuffer(); // leaves an idle keep-alive socket in fetch's pool
    sb.control.addFault({ target: 'api', hang: true });
    const hung = fetch(`${sb.url}/v1/balances/x`).catch((e) => e);
    await new Promise((res) => setTimeout(res, 30));
    const t0 = performance.now();
    await sb.close();
    assert.ok(performance.now() - t0 < 500);
    assert.ok((await hung) instanceof Error);
  });

  it('runs standalone, prints its urls as JSON and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, [path.join(here, '..', '..', 'src', 'testing', 'sandbox.mjs'), '--port', '0', '--token-lifetime', '120'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const line = await new Promise((resolve, reject) => {
        let buf = '';
        child.stdout.on('data', (d) => {
          buf += d;
          if (buf.includes('\n')) resolve(buf.split('\n')[0]);
        });
        child.once('exit', () => reject(new Error('exited early')));
      });
      const info = JSON.parse(line);
      assert.deepEqual(Object.keys(info), ['url', 'tokenUrl', 'apiBaseUrl']);
      const r = await fetch(info.tokenUrl, { method: 'POST', body: form({ grant_type: 'client_credentials', ...DEMO }) });
      assert.equal((await r.json()).expires_in, 120);
      const code = new Promise((resolve) => child.once('exit', (c) => resolve(c)));
      child.kill('SIGTERM');
      assert.equal(await code, 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});

describe('oidc-provider server', () => {
  let as;
  before(async () => {
    as = await startOidc({ ttlSeconds: 5 });
  });
  after(() => as.close());

  const post = (body, headers = {}) => fetch(as.tokenUrl, { method: 'POST', body: form(body), headers });

  it('cc-post obtains an opaque token with client_secret_post', async () => {
    const r = await post({
      grant_type: 'client_credentials',
      client_id: as.clients.post.clientId,
      client_secret: as.clients.post.clientSecret,
      scope: 'balances.read transactions.read',
    });
    assert.equal(r.status, 200);
    const j = await r.json();
    assert.equal(j.token_type, 'Bearer');
    assert.equal(j.expires_in, 5);
    assert.equal(j.scope, 'balances.read transactions.read');
    assert.equal(j.access_token.split('.').length, 1, 'opaque by default');
    assert.match(as.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('cc-basic obtains a token with client_secret_basic', async () => {
    const before = as.tokenRequests();
    const r = await post({ grant_type: 'client_credentials', scope: 'balances.read' }, {
      authorization: basic(as.clients.basic.clientId, as.clients.basic.clientSecret),
    });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).scope, 'balances.read');
    assert.equal(as.tokenRequests(), before + 1);
    assert.equal(as.stats().lastTokenRequest.authMethod, 'basic');
  });

  it('an unknown scope is invalid_scope', async () => {
    const r = await post({
      grant_type: 'client_credentials',
      client_id: as.clients.post.clientId,
      client_secret: as.clients.post.clientSecret,
      scope: 'balances.read payments.ach.write',
    });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error, 'invalid_scope');
  });

  it('a wrong secret is invalid_client', async () => {
    const r = await post({ grant_type: 'client_credentials', client_id: as.clients.post.clientId, client_secret: 'wrong-secret-0000' });
    assert.equal(r.status, 401);
    assert.equal((await r.json()).error, 'invalid_client');
  });

  it('counts every POST to the token endpoint', async () => {
    as.resetCounters();
    await (await post({ grant_type: 'client_credentials', client_id: 'cc-post', client_secret: as.clients.post.clientSecret })).arrayBuffer();
    await (await post({ grant_type: 'client_credentials', client_id: 'cc-post', client_secret: 'nope' })).arrayBuffer();
    await (await post({ grant_type: 'nonsense' })).arrayBuffer();
    assert.equal(as.tokenRequests(), 3);
    const s = as.stats();
    assert.equal(s.grantSuccesses, 1);
    assert.equal(s.grantErrors.invalid_client, 1);
  });

  it('jwt mode returns RFC 9068 JWT access tokens with exp', async () => {
    const jas = await startOidc({ jwt: true, ttlSeconds: 7 });
    try {
      assert.deepEqual(jas.extraParams, {});
      const r = await fetch(jas.tokenUrl, {
        method: 'POST',
        body: form({ grant_type: 'client_credentials', scope: 'balances.read transactions.read', ...jas.extraParams }),
        headers: { authorization: basic('cc-basic', jas.clients.basic.clientSecret) },
      });
      assert.equal(r.status, 200);
      const j = await r.json();
      const parts = j.access_token.split('.');
      assert.equal(parts.length, 3);
      const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
      assert.equal(header.typ, 'at+jwt');
      const p = jwtPayload(j.access_token);
      assert.equal(p.exp - p.iat, 7);
      assert.equal(p.client_id, 'cc-basic');
      assert.equal(p.scope, 'balances.read transactions.read');
      assert.equal(p.aud, jas.resource);
      assert.equal(p.iss, jas.issuer);
      assert.equal(jas.tokenRequests(), 1);
    } finally {
      await jas.close();
    }
  });

  it('requireResource: the client must send the resource from extraParams', async () => {
    const ras = await startOidc({ jwt: true, requireResource: true });
    try {
      const creds = { client_id: 'cc-post', client_secret: ras.clients.post.clientSecret };
      let r = await fetch(ras.tokenUrl, { method: 'POST', body: form({ grant_type: 'client_credentials', ...creds }) });
      assert.equal(r.status, 400);
      assert.equal((await r.json()).error, 'invalid_target');
      r = await fetch(ras.tokenUrl, { method: 'POST', body: form({ grant_type: 'client_credentials', ...creds, ...ras.extraParams }) });
      assert.equal(r.status, 200);
      assert.equal((await r.json()).access_token.split('.').length, 3);
    } finally {
      await ras.close();
    }
  });
});
