// `make demo`: load the built package in a real workerd process and call it over HTTP.
import { startWorkerd, ensureConsumer } from "./harness.mjs";

ensureConsumer();
const worker = await startWorkerd(
  "demo",
  `import { version } from "qbank-connect";
export default {
  async fetch() {
    return Response.json({ runtime: navigator.userAgent, version: version() });
  },
};
`,
);
try {
  const res = await fetch(worker.url + "/");
  const body = await res.json();
  console.log(`qbank-connect ${body.version} loaded in ${body.runtime} (workerd at ${worker.url})`);
} finally {
  await worker.stop();
}
