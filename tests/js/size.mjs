// Prints the package's sizes, raw and gzipped: the .wasm, the JS glue, and what a Worker ships.
//   node tests/js/size.mjs pkg [--json]
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

export function packageSizes(dir) {
  const read = (p) => readFileSync(join(dir, p));
  const snippets = [];
  const walk = (d) => {
    for (const e of readdirSync(join(dir, d))) {
      const p = join(d, e);
      if (statSync(join(dir, p)).isDirectory()) walk(p);
      else snippets.push(p);
    }
  };
  walk("snippets");
  const measure = (files) => {
    const buf = Buffer.concat(files.map(read));
    return { raw: buf.length, gzip: gzipSync(buf, { level: 9 }).length };
  };
  // What a Worker ships: not node-http.js (the Node entry's transport).
  const glueFiles = ["qbank_connect.js", ...snippets.filter((p) => !p.endsWith("node-http.js")), "workerd.js"];
  return {
    wasm: measure(["qbank_connect_bg.wasm"]),
    glue: measure(glueFiles),
    total: measure(["qbank_connect_bg.wasm", ...glueFiles]),
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
