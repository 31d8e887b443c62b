// The Node and Deno agent: one contender in its own process, serving the operations of ops.mjs
// on a loopback port. Prints {"url": "..."} when ready.   node|deno bench/agent.mjs CONTENDER
import { makeHandler } from "./ops.mjs";

const name = (globalThis.Deno ? Deno.args : process.argv.slice(2))[0];
const contender = await import(`./contenders/${name}.mjs`);
const handle = makeHandler(contender);

if (globalThis.Deno) {
  Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: ({ port }) => console.log(JSON.stringify({ url: `http://127.0.0.1:${port}` })) }, (req) => handle(req));
} else {
  const { createServer } = await import("node:http");
  const server = createServer({ keepAliveTimeout: 60_000 }, async (req, res) => {
    const out = await handle(new Request(`http://127.0.0.1${req.url}`));
    res.writeHead(out.status, { "content-type": "application/json" });
    res.end(await out.text());
  });
  server.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ url: `http://127.0.0.1:${server.address().port}` })));
}
