// A real OAuth 2.0 authorization server (oidc-provider 9) on loopback, for
// TokenManager tests against an implementation we did not write.
//
//   const as = await startOidc({ ttlSeconds: 5, jwt: false });
//   // as.issuer, as.tokenUrl, as.clients, as.extraParams, as.tokenRequests()
//   await as.close();
//
// Runs standalone too: node tests/servers/oidc.mjs [--port N] [--ttl S] [--jwt]
// [--require-resource] prints one line of JSON and serves until SIGINT/SIGTERM.
// See README.md beside this file.

import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ALLOWED_SCOPES = Object.freeze(['balances.read', 'transactions.read']);
export const DEFAULT_RESOURCE = 'https://api.qbank.test/';

export const OIDC_CLIENTS = Object.freeze({
  post: Object.freeze({
    clientId: 'cc-post',
    clientSecret: 'post-secret-not-real-0123456789',
    authMethod: 'client_secret_post',
  }),
  basic: Object.freeze({
    clientId: 'cc-basic',
    clientSecret: 'basic-secret-not-real-9876543210',
    authMethod: 'client_secret_basic',
  }),
});

// oidc-provider resolved from the checkout's node_modules (tests/servers/../../node_modules).
const here = path.dirname(fileURLToPath(import.meta.url));
const requireFromRoot = createRequire(path.join(here, '..', '..', 'package.json'));

let providerModule;
async function loadProvider() {
  if (providerModule) return providerModule;
  let entry;
  try {
    entry = requireFromRoot.resolve('oidc-provider');
  } catch {
    entry = path.join(here, '..', '..', 'node_modules', 'oidc-provider', 'lib', 'index.js');
  }
  // oidc-provider 9 warns once, at import, that Node 20 is not a runtime it
  // supports (it asks for 22+).  It works on 20 for what these tests use;
  // hide only that one line.
  const original = console.warn;
  console.warn = (...args) => {
    if (typeof args[0] === 'string' && args[0].includes('oidc-provider WARNING: Unsupported runtime')) return;
    original.apply(console, args);
  };
  try {
    providerModule = await import(pathToFileURL(entry).href);
  } finally {
    console.warn = original;
  }
  return providerModule;
}

// A small in-memory adapter of our own, one store per server, so oidc-provider
// does not warn about its development adapter and servers never share state.
function memoryAdapterFactory() {
  const store = new Map(); // key -> { payload, expiresAt }
  const get = (key) => {
    const e = store.get(key);
    if (!e) return undefined;
    if (e.expiresAt !== undefined && e.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return e.payload;
  };
  const set = (key, payload, expiresIn) => {
    if (store.size > 5000) {
      for (const [k, e] of store) if (e.expiresAt !== undefined && e.expiresAt <= Date.now()) store.delete(k);
    }
    store.set(key, { payload, expiresAt: typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : undefined });
  };
  return class Adapter {
    constructor(model) {
      this.model = model;
    }

    key(id) {
      return `${this.model}:${id}`;
    }

    async upsert(id, payload, expiresIn) {
      set(this.key(id), payload, expiresIn);
      if (payload.uid) set(`uid:${payload.uid}`, id, expiresIn);
      if (payload.userCode) set(`userCode:${payload.userCode}`, id, expiresIn);
      if (payload.grantId) {
        const k = `grant:${payload.grantId}`;
        const list = get(k) ?? [];
        list.push(this.key(id));
        set(k, list, expiresIn);
      }
    }

    async find(id) {
      return get(this.key(id));
    }

    async findByUid(uid) {
      const id = get(`uid:${uid}`);
      return id === undefined ? undefined : this.find(id);
    }

    async findByUserCode(userCode) {
      const id = get(`userCode:${userCode}`);
      return id === undefined ? undefined : this.find(id);
    }

    async consume(id) {
      const p = get(this.key(id));
      if (p) p.consumed = Math.floor(Date.now() / 1000);
    }

    async destroy(id) {
      store.delete(this.key(id));
    }

    async revokeByGrantId(grantId) {
      for (const k of get(`grant:${grantId}`) ?? []) store.delete(k);
      store.delete(`grant:${grantId}`);
    }
  };
}

function signingJwks() {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, kid: `oidc-test-${crypto.randomBytes(4).toString('hex')}`, use: 'sig', alg: 'ES256' }] };
}

/**
 * @param {object} [options]
 * @param {number} [options.port=0]
 * @param {number} [options.ttlSeconds=5]  access token lifetime (ttl.ClientCredentials)
 * @param {boolean} [options.jwt=false]    JWT (RFC 9068, ES256) access tokens instead of opaque ones
 * @param {boolean} [options.requireResource=false]  no default resource: the client must send
 *        resource=<DEFAULT_RESOURCE> (see `extraParams`), else invalid_target
 * @param {string} [options.resource=DEFAULT_RESOURCE]
 * @param {Array<object>} [options.clients]  extra oidc-provider client metadata objects
 */
export async function startOidc(options = {}) {
  const { default: Provider, errors } = await loadProvider();
  const ttlSeconds = options.ttlSeconds ?? 5;
  const jwt = options.jwt === true;
  const requireResource = options.requireResource === true;
  const resource = options.resource ?? DEFAULT_RESOURCE;
  const host = '127.0.0.1';

  let handler = (_req, res) => {
    res.writeHead(503);
    res.end();
  };
  const stats = {
    tokenRequests: 0,
    grantSuccesses: 0,
    grantErrors: {},
    lastTokenRequest: null,
  };
  const server = http.createServer((req, res) => {
    if (req.method === 'POST' && req.url.split('?')[0] === '/token') {
      stats.tokenRequests += 1;
      stats.lastTokenRequest = { authMethod: req.headers.authorization ? 'basic' : 'post' };
    }
    handler(req, res);
  });
  const sockets = new Set();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address();
  const issuer = `http://${host}:${port}`;

  const clientMeta = (c) => ({
    client_id: c.clientId,
    client_secret: c.clientSecret,
    token_endpoint_auth_method: c.authMethod,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: ALLOWED_SCOPES.join(' '),
  });

  // Every requested scope must be one the client is registered for.
  // oidc-provider itself rejects a registered-but-not-allowed scope, but it
  // silently drops scopes it has never heard of; this makes both invalid_scope.
  const checkScopes = (ctx, client) => {
    const requested = (ctx.oidc.params.scope ?? '').split(' ').filter(Boolean);
    const allowed = new Set((client.scope ?? '').split(' '));
    for (const s of requested) {
      if (!allowed.has(s)) throw new errors.InvalidScope('requested scope is not allowed', s);
    }
  };

  const provider = new Provider(issuer, {
    adapter: memoryAdapterFactory(),
    jwks: signingJwks(),
    // The generated key is P-256 (fast to make); the default RS256 would need RSA.
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    clients: [
      clientMeta(OIDC_CLIENTS.post),
      clientMeta(OIDC_CLIENTS.basic),
      ...(options.clients ?? []),
    ],
    scopes: [...ALLOWED_SCOPES],
    claims: { openid: ['sub'] },
    ttl: { ClientCredentials: ttlSeconds },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Without a resource indicator oidc-provider issues opaque tokens only;
        // a resource server with accessTokenFormat "jwt" gives RFC 9068 JWTs.
        async defaultResource(ctx) {
          if (requireResource) {
            throw new errors.InvalidTarget(`the resource parameter is required (send resource=${resource})`);
          }
          return resource;
        },
        async getResourceServerInfo(ctx, indicator, client) {
          if (indicator !== resource) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
          checkScopes(ctx, client);
          return {
            scope: ALLOWED_SCOPES.join(' '),
            audience: resource,
            accessTokenTTL: ttlSeconds,
            accessTokenFormat: jwt ? 'jwt' : 'opaque',
            ...(jwt ? { jwt: { sign: { alg: 'ES256' } } } : {}),
          };
        },
      },
    },
  });

  provider.on('grant.success', () => {
    stats.grantSuccesses += 1;
  });
  provider.on('grant.error', (_ctx, err) => {
    const code = err?.error ?? 'server_error';
    stats.grantErrors[code] = (stats.grantErrors[code] ?? 0) + 1;
  });
  provider.on('server_error', (_ctx, err) => {
    if (options.logServerErrors !== false) console.error('oidc test server error:', err);
  });

  handler = provider.callback();

  let closed = false;
  async function close() {
    if (closed) return;
    closed = true;
    const done = new Promise((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    for (const s of sockets) s.destroy();
    await done;
  }

  return {
    issuer,
    port,
    tokenUrl: `${issuer}/token`,
    introspectionUrl: `${issuer}/token/introspection`,
    jwksUrl: `${issuer}/jwks`,
    discoveryUrl: `${issuer}/.well-known/openid-configuration`,
    resource,
    // What a client must add to its token request body: nothing by default
    // (the resource is defaulted); { resource } when requireResource is set.
    extraParams: requireResource ? { resource } : {},
    scopes: [...ALLOWED_SCOPES],
    clients: OIDC_CLIENTS,
    provider,
    tokenRequests: () => stats.tokenRequests,
    stats: () => structuredClone(stats),
    resetCounters() {
      stats.tokenRequests = 0;
      stats.grantSuccesses = 0;
      stats.grantErrors = {};
      stats.lastTokenRequest = null;
    },
    close,
  };
}

function isMain() {
  if (!process.argv[1]) return false;
  try {
    return import.meta.url === pathToFileURL(fs.realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
}

if (isMain()) {
  const args = process.argv.slice(2);
  const opts = {};
  for (let i = 0; i < args.length; i += 1) {
    if (args[i] === '--port') opts.port = Number(args[++i]);
    else if (args[i] === '--ttl') opts.ttlSeconds = Number(args[++i]);
    else if (args[i] === '--jwt') opts.jwt = true;
    else if (args[i] === '--require-resource') opts.requireResource = true;
    else {
      process.stderr.write(`oidc: unknown argument ${args[i]}\nusage: node tests/servers/oidc.mjs [--port N] [--ttl S] [--jwt] [--require-resource]\n`);
      process.exit(2);
    }
  }
  const as = await startOidc(opts);
  process.stdout.write(`${JSON.stringify({ issuer: as.issuer, tokenUrl: as.tokenUrl, extraParams: as.extraParams, clients: as.clients })}\n`);
  const stop = () => {
    as.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
