// wasm-bindgen names each import and closure export with a 16-hex-digit hash
// (`__wbg_then_e3f7f2d365708be8`, `..._invoke__h36b612059ede6d03`), written once in the .wasm and
// once in the glue. Hashes do not compress: ~50 of them cost ~1 KiB gzipped of what a Worker
// ships. shortNames renames each to its name without the hash (`__wbg_then`, a `_2` after it
// where two would meet), in the .wasm's import and export sections and in the glue alike, so
// the two still match name for name; nothing else changes.

const HASH = /_h?[0-9a-f]{16}$/;

/** Reads an unsigned LEB128 at `pos`: [value, next position]. */
export function leb(bytes, pos) {
  let value = 0;
  for (let shift = 0; ; shift += 7) {
    const b = bytes[pos++];
    value += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [value, pos];
  }
}

function lebBytes(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

/**
 * Returns the .wasm and glue with the hashed names of the .wasm's imports and exports
 * shortened. Throws on a section it cannot read, rather than guess.
 */
export function shortNames(wasm, glue) {
  const renames = new Map();
  const taken = new Set();
  const rename = (name) => {
    if (!HASH.test(name)) return name;
    if (!renames.has(name)) {
      const base = name.replace(HASH, "");
      let short = base;
      const used = (s) => taken.has(s) || new RegExp(`\\b${s}\\b`).test(glue);
      for (let n = 2; used(short); n++) short = `${base}_${n}`;
      taken.add(short);
      renames.set(name, short);
    }
    return renames.get(name);
  };
  // A snippet's imports name its module by its path under wasm-bindgen's hashed folder
  // ("./snippets/qbank-connect-<hash>/src/js/support.js"), once per import in the .wasm and once
  // per import as a key of the glue's imports object: each becomes the file's name alone.
  const modules = new Map();
  const shortModule = (module) => {
    const short = /^\.\/snippets\/[^/]+\/(?:.*\/)?([^/]+)$/.exec(module)?.[1];
    if (!short) return module;
    if (!modules.has(module)) {
      if ([...modules.values()].includes(short)) throw new Error(`short-names: two snippets named ${short}`);
      modules.set(module, short);
    }
    return modules.get(module);
  };
  const name = (bytes, pos) => {
    const [len, start] = leb(bytes, pos);
    return [bytes.subarray(start, start + len).toString("utf8"), start + len];
  };
  const str = (s) => Buffer.concat([lebBytes(Buffer.byteLength(s)), Buffer.from(s, "utf8")]);

  const parts = [wasm.subarray(0, 8)];
  let pos = 8;
  while (pos < wasm.length) {
    const id = wasm[pos];
    const [size, start] = leb(wasm, pos + 1);
    const end = start + size;
    if (id !== 2 && id !== 7) {
      parts.push(wasm.subarray(pos, end));
      pos = end;
      continue;
    }
    const body = [];
    let [count, p] = leb(wasm, start);
    body.push(lebBytes(count));
    for (; count > 0; count--) {
      if (id === 2) {
        let module, field;
        [module, p] = name(wasm, p);
        [field, p] = name(wasm, p);
        const descStart = p;
        const kind = wasm[p++];
        if (kind === 0) [, p] = leb(wasm, p); // function: type index
        else if (kind === 1 || kind === 2) {
          if (kind === 1) p++; // table: element type
          const flags = wasm[p++];
          [, p] = leb(wasm, p);
          if (flags & 1) [, p] = leb(wasm, p);
        } else if (kind === 3) p += 2; // global: value type, mutability
        else throw new Error(`short-names: import kind ${kind} not understood`);
        body.push(str(shortModule(module)), str(rename(field)), wasm.subarray(descStart, p));
      } else {
        let field;
        [field, p] = name(wasm, p);
        const descStart = p++;
        [, p] = leb(wasm, p);
        body.push(str(rename(field)), wasm.subarray(descStart, p));
      }
    }
    if (p !== end) throw new Error(`short-names: section ${id} not read to its end`);
    const content = Buffer.concat(body);
    parts.push(Buffer.from([id]), lebBytes(content.length), content);
    pos = end;
  }
  let out = glue;
  for (const [long, short] of modules) {
    const key = new RegExp(`"${long.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}"(?=: import\\d+,)`, "g");
    if (!key.test(out)) throw new Error(`short-names: ${long} is not a key of the glue's imports`);
    out = out.replace(key, JSON.stringify(short));
  }
  for (const [long, short] of renames) {
    const word = new RegExp(`\\b${long}\\b`, "g");
    if (!word.test(out)) throw new Error(`short-names: ${long} is not in the glue`);
    out = out.replace(word, short);
  }
  return { wasm: Buffer.concat(parts), glue: out };
}
