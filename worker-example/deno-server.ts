// The same routes as the Worker, served by Deno.serve. Settings come from environment variables
// (QBANK_CLIENT_ID, QBANK_CLIENT_SECRET, and QBANK_TOKEN_URL + QBANK_API_BASE_URL for a sandbox).
//
//   deno run --allow-net --allow-env --node-modules-dir=manual deno-server.ts
//
// PORT (default 8788, 0 for any free port) and HOST (default 127.0.0.1) say where to listen.
import { AppError, createClient, handle, type QBankSettings } from "./src/app.ts";

const env = Deno.env.toObject() as QBankSettings & { PORT?: string; HOST?: string };

let bank;
try {
  bank = createClient(env); // one client for the process: every request shares its token
} catch (e) {
  console.error(`qbank-connect example: ${e instanceof AppError ? e.message : e}`);
  Deno.exit(1);
}

const server = Deno.serve(
  {
    hostname: env.HOST ?? "127.0.0.1",
    port: Number(env.PORT ?? 8788),
    onListen: ({ hostname, port }) => console.log(`listening on http://${hostname}:${port}`),
  },
  (request) => handle(request, bank, { runtime: `Deno ${Deno.version.deno}`, demoAccount: env.QBANK_DEMO_ACCOUNT }),
);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, async () => {
    bank.close(); // cancels the refresh timer
    await server.shutdown();
    Deno.exit(0);
  });
}
