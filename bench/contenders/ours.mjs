// Ours: the built package (pkg/, installed from its npm pack tarball), QBankClient.
import { QBankClient } from "qbank-connect";
export const name = "ours";
export const label = "qbank-connect (ours)";

// `more`: further options (the fleet phase's `store`, see oursstore.mjs).
export function create({ tokenUrl, apiBaseUrl, clientId, clientSecret, scope }, more = {}) {
  const client = new QBankClient({
    environment: { tokenUrl, apiBaseUrl },
    clientId,
    clientSecret,
    scope,
    allowInsecureHttp: true, // loopback
    // No refresh-ahead timer, so that phase 2 really finds an expired token, like every other
    // contender (with the default timer ours would have refreshed before expiry).
    autoRefresh: false,
    ...more,
  });
  const tokens = client.tokens; // held once: each `client.tokens` read makes a new wrapper
  return {
    // On workerd the driver passes the request's ctx: waitUntil, as the package README shows.
    getBalance: (id, ctx) => client.getBalance(id, ctx ? { waitUntil: ctx.waitUntil } : undefined),
    getToken: () => tokens.getToken(),
    close: () => client.close(),
  };
}
