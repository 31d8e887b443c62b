// After wasm-opt: zeroes the panic data that no code can read any more.
//
//   node pkg-template/panic-data.mjs <file.wasm>     (rewritten in place)
//
// panic-stubs.mjs made every panic path one `unreachable` and dropped core's formatting, so
// wasm-opt removed the code that named their data; the bytes stay, as wasm-opt cannot know that
// nothing reads them. Zeroed, they compress to almost nothing. Two kinds:
// - Each panic site's `core::panic::Location` (16 bytes: the source file as a pointer and a
//   length, the line, the column): a 16-byte record whose pointer and length are those of a
//   `.rs` path in the data, with a plausible line and column. Zeroed when no address in it
//   appears anywhere else: not as a constant in the code (i32.const, either half of an
//   i64.const, a load's or store's offset), not as a word of the data. Rust reaches a static
//   only through its own address, so an object no address points into is never read.
// - core's texts that only a panic message or the integer formatting uses (PANIC_TEXTS below:
//   the two-digit table of `u32`'s Display, the messages of core's own panics), found by their
//   bytes. Zeroed when no such address points into them or into the 64 bytes before them (where
//   a string holding one would start: a message template's length byte).
// The data keep their size and place (no address moves). The paths stay
// (tests/js/package.test.mjs reads them to check that they name no directory of the build
// machine).
import { readFileSync, writeFileSync } from "node:fs";
import binaryen from "binaryen";
import { leb } from "./short-names.mjs";

let digits = "";
for (let n = 0; n < 100; n++) digits += String(n).padStart(2, "0");
const PANIC_TEXTS = [
  digits,
  "attempt to divide by zero",
  "`async fn` resumed after completion",
  "RefCell already mutably borrowed",
  "RefCell already borrowed",
  "LazyCell instance has previously been poisoned",
  "internal error: entered unreachable code",
  "slice index starts at ",
  " but ends at ",
  " index out of bounds: the len is ",
  " but the index is ",
  "range start index ",
  "range end index ",
  " out of range for slice of length ",
];
const BEFORE = 64;

const PATH = /(?:\/rustc\/[0-9a-f]{40}\/library|src|crates\/[\w.-]+)\/[\w/.-]+?\.rs/g;

const file = process.argv[2];
if (!file) {
  console.error("usage: node pkg-template/panic-data.mjs <file.wasm>");
  process.exit(2);
}
const wasm = Buffer.from(readFileSync(file));

/** The data section's segments: { addr, start (in the file), len }; each active, at an i32.const. */
function segments() {
  const out = [];
  for (let pos = 8; pos < wasm.length; ) {
    const id = wasm[pos];
    const [size, start] = leb(wasm, pos + 1);
    if (id === 11) {
      let [count, p] = leb(wasm, start);
      for (; count > 0; count--) {
        if (wasm[p] !== 0 || wasm[p + 1] !== 0x41) throw new Error("panic-data: a data segment that is not active at an i32.const");
        let addr = 0;
        let shift = 0;
        let byte;
        p += 2;
        do {
          byte = wasm[p++];
          addr |= (byte & 0x7f) << shift;
          shift += 7;
        } while (byte & 0x80);
        if (wasm[p++] !== 0x0b) throw new Error("panic-data: a data segment's offset is not a constant");
        const [len, at] = leb(wasm, p);
        out.push({ addr: addr >>> 0, start: at, len });
        p = at + len;
      }
    }
    pos = start + size;
  }
  return out;
}

const segs = segments();
const byteAt = (addr) => {
  const s = segs.find((s) => addr >= s.addr && addr < s.addr + s.len);
  return s ? wasm[s.start + addr - s.addr] : 0;
};
const word = (addr) => (byteAt(addr) | (byteAt(addr + 1) << 8) | (byteAt(addr + 2) << 16) | (byteAt(addr + 3) << 24)) >>> 0;

// Every address the code names.
const F = binaryen.Features;
const module = binaryen.readBinary(wasm);
module.setFeatures(F.BulkMemory | F.NontrappingFPToInt | F.SignExt | F.MutableGlobals | F.ReferenceTypes | F.Multivalue);
const text = module
  .emitText()
  .split("\n")
  .filter((line) => !/^\s*\(data /.test(line))
  .join("\n");
module.dispose();
const named = [];
for (const [, n] of text.matchAll(/i32\.const (-?\d+)/g)) named.push(Number(n) >>> 0);
for (const [, n] of text.matchAll(/i64\.const (-?\d+)/g)) {
  const v = BigInt.asUintN(64, BigInt(n));
  named.push(Number(v & 0xffffffffn), Number(v >> 32n));
}
for (const [, n] of text.matchAll(/offset=(\d+)/g)) named.push(Number(n));

const paths = [];
for (const s of segs) {
  const str = wasm.subarray(s.start, s.start + s.len).toString("latin1");
  for (const m of str.matchAll(PATH)) paths.push({ addr: s.addr + m.index, len: m[0].length });
}
const locations = [];
for (const s of segs) {
  for (let a = (s.addr + 3) & ~3; a + 16 <= s.addr + s.len; a += 4) {
    const path = paths.find((p) => p.addr === word(a) && p.len === word(a + 4));
    const line = word(a + 8);
    const column = word(a + 12);
    if (path && line > 0 && line < 1e6 && column > 0 && column < 1e4) locations.push({ addr: a, len: 16, path });
  }
}
const inside = (o, addr) => addr >= o.addr && addr < o.addr + o.len;
// The data's words, but those of the locations themselves (their path pointers).
for (const s of segs) {
  for (let a = (s.addr + 3) & ~3; a + 4 <= s.addr + s.len; a += 4) {
    if (!locations.some((l) => inside(l, a))) named.push(word(a));
  }
}
const unread = (o) => !named.some((addr) => inside(o, addr));
const zeroed = locations.filter(unread);
const texts = [];
for (const s of segs) {
  const str = wasm.subarray(s.start, s.start + s.len).toString("latin1");
  for (const t of PANIC_TEXTS) {
    for (let i = str.indexOf(t); i >= 0; i = str.indexOf(t, i + 1)) texts.push({ addr: s.addr + i, len: t.length });
  }
}
const zeroedTexts = texts.filter((t) => unread({ addr: t.addr - BEFORE, len: BEFORE + t.len }));
for (const o of [...zeroed, ...zeroedTexts]) {
  const s = segs.find((s) => inside(s, o.addr));
  wasm.fill(0, s.start + o.addr - s.addr, s.start + o.addr - s.addr + o.len);
}
writeFileSync(file, wasm);
const bytes = (list) => list.reduce((n, o) => n + o.len, 0);
console.log(
  `panic-data: ${zeroed.length} of ${locations.length} locations (${bytes(zeroed)} B) and ` +
    `${zeroedTexts.length} of ${texts.length} panic-only texts (${bytes(zeroedTexts)} B) zeroed`,
);
