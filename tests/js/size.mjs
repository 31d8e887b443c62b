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
    wasmParts: wasmParts(readFileSync(join(dir, "qbank_connect_bg.wasm"))),
  };
}

/**
 * A .wasm split into its code section (the functions), its data section (the strings: error
 * messages, names, tables) and the rest (types, imports, exports, ...), each raw and gzipped alone.
 */
export function wasmParts(bytes) {
  const parts = { code: [], data: [], rest: [] };
  let i = 8;
  const leb = () => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const b = bytes[i++];
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
    }
  };
  while (i < bytes.length) {
    const id = bytes[i++];
    const size = leb();
    parts[id === 10 ? "code" : id === 11 ? "data" : "rest"].push(bytes.subarray(i, i + size));
    i += size;
  }
  const out = {};
  for (const [k, list] of Object.entries(parts)) {
    const buf = Buffer.concat(list);
    out[k] = { raw: buf.length, gzip: gzipSync(buf, { level: 9 }).length };
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2] ?? "pkg";
  const s = packageSizes(dir);
  if (process.argv.includes("--json")) console.log(JSON.stringify(s));
  else {
    const kb = (n) => (n / 1024).toFixed(1).padStart(6) + " KiB";
    console.log("   size              raw        gzip");
    const p = s.wasmParts;
    const rows = { ".wasm": s.wasm, "  code": p.code, "  data": p.data, "  the rest": p.rest, "JS glue": s.glue, "wasm + glue": s.total };
    for (const [k, v] of Object.entries(rows)) console.log(`   ${k.padEnd(12)} ${kb(v.raw)} ${kb(v.gzip)}`);
    console.log("   (code, data and the rest gzipped alone; data is the strings: messages, names, tables)");
  }
}
