// The Cloudflare Worker: GET /balances/:id (JSON), GET / (a small HTML page), GET /status.
//
// Secrets come from Worker bindings: `wrangler secret put QBANK_CLIENT_ID` and
// `QBANK_CLIENT_SECRET` in production, `.dev.vars` locally (copy .dev.vars.example).
import type { QBankClient } from "qbank-connect";
import { createClient, errorResponse, handle, type QBankSettings } from "./app";

export interface Env extends QBankSettings {
  QBANK_CLIENT_ID: string;
  QBANK_CLIENT_SECRET: string;
}

// One client per isolate, created on the first request (bindings only exist from then on) and
// shared by every request the isolate serves, so they share one token and one token request.
let bank: QBankClient | undefined;

export default {
  async fetch(request, env, ctx): Promise<Response> {
    try {
      bank ??= createClient(env);
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
    });
  },
} satisfies ExportedHandler<Env>;
