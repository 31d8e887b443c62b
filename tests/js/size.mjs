// Prints the package's sizes, raw and gzipped: the .wasm, the JS glue, and what a Worker ships.
//   node tests/js/size.mjs pkg [--json]
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

export function packageSizes(dir) {
  const measure = (files) => {
    const buf = Buffer.concat(files.map((p) => readFileSync(join(dir, p))));
    return { raw: buf.length, gzip: gzipSync(buf, { level: 9 }).length };
  };
  // What a Worker ships: workerd.js (wasm-bindgen's glue and support.js, bundled and minified into
  // one file; node-http.js is the Node entries' transport and not in it) and the .wasm it imports.
  return {
    wasm: measure(["qbank_connect_bg.wasm"]),
    glue: measure(["workerd.js"]),
    total: measure(["qbank_connect_bg.wasm", "workerd.js"]),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2] ?? "pkg";
  const s = packageSizes(dir);
  if (process.argv.includes("--json")) console.log(JSON.stringify(s));
  else {
    const kb = (n) => (n / 1024).toFixed(1).padStart(6) + " KiB";
    console.log("   size              raw        gzip");
    for (const [k, v] of Object.entries({ ".wasm": s.wasm, "JS glue": s.glue, "wasm + glue": s.total })) {
      console.log(`   ${k.padEnd(12)} ${kb(v.raw)} ${kb(v.gzip)}`);
    }
  }
}
