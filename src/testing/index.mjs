// qbank-connect/testing: the local QBank Connect sandbox and the local QPay, for users' own
// tests in Node, Deno and Bun (they serve HTTP with node:http; not in the Workers entry). The
// same servers the package's own tests use: pkg-template/build.mjs bundles this file into
// pkg/testing.js (ESM) and pkg/testing.cjs (CommonJS); pkg-template/testing.d.ts types it.
// See README.md beside this file.

export { startSandbox, DEFAULT_CLIENTS, SEED_ACCOUNTS, BODY_LIMIT } from './sandbox.mjs';
export {
  startQPay as startQPaySandbox,
  DEFAULT_REALM,
  CONSOLE_CLIENT_ID,
  ROLES_BY_TENANT_TYPE,
  SEED_TENANTS,
  SEED_USERS,
} from './qpay.mjs';
