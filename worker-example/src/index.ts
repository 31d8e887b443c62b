// The Cloudflare Worker: GET /balances/:id (JSON), GET / (a small HTML page), GET /status.
//
// Secrets come from Worker bindings: `wrangler secret put QBANK_CLIENT_ID` and
// `QBANK_CLIENT_SECRET` in production, `.dev.vars` locally (copy .dev.vars.example).
//
// The token comes from the coordinator: a Durable Object (the package's TokenCoordinator,
// re-exported below and bound as QBANK_TOKENS in wrangler.toml) that every isolate asks when its
// own in-memory token is missing or due, so the whole deployment makes one token request per
// token lifetime. Without the binding, each isolate keeps its own token in memory.
import { durableObjectStore, type QBankClient } from "qbank-connect";
import { createClient, errorResponse, handle, type QBankSettings } from "./app";

// The Durable Object class: wrangler.toml's binding and migration name it.
export { TokenCoordinator } from "qbank-connect";

export interface Env extends QBankSettings {
  QBANK_CLIENT_ID: string;
  QBANK_CLIENT_SECRET: string;
  /** The coordinator's namespace ([[durable_objects.bindings]] in wrangler.toml). Optional: without it, memory only. */
  QBANK_TOKENS?: DurableObjectNamespace;
}

// One client per isolate, created on the first request (bindings only exist from then on) and
// shared by every request the isolate serves, so they share one token and one token request.
let bank: QBankClient | undefined;

export default {
  async fetch(request, env, ctx): Promise<Response> {
    try {
      // The object failing, or not answering in time, is never an error: the isolate then fetches
      // the token itself (status.tokenSource "endpoint" instead of "coordinator").
      bank ??= createClient(env, env.QBANK_TOKENS ? durableObjectStore(env.QBANK_TOKENS) : undefined);
    } catch (e) {
      return errorResponse(e); // a missing setting (AppError) or a bad option (QBankError "config"): 500
    }
    return handle(request, bank, {
      // A token request started by this request may be shared with others: waitUntil keeps it
      // alive after this request ends (Workers cancel what a finished request started), and a
      // refresh-ahead runs in the background after the response is sent.
      waitUntil: (p) => ctx.waitUntil(p),
      runtime: "Cloudflare Workers (workerd)",
      demoAccount: env.QBANK_DEMO_ACCOUNT,
      cache: env.QBANK_TOKENS ? "coordinator" : "memory",
    });
  },
} satisfies ExportedHandler<Env>;
