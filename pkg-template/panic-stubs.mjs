// The package build's panic handler traps (`unreachable`, src/lib.rs), so a panic's message is
// never formatted. Yet every panic path still builds it before it traps: core's panic entry
// points (`panic_bounds_check`, `panic_already_borrowed`, `slice_index_fail`, ...) store their
// arguments for `panic_fmt`, and the function pointers those arguments carry (`<u32 as Display>::fmt`
// and the like) sit in the function table, which keeps them and what they call (`Formatter::pad`,
// the integer formatting) in the .wasm: several KiB that never run.
//
//   node pkg-template/panic-stubs.mjs <file.wasm>     (rewritten in place, before wasm-opt)
//
// The file must still have its function names (wasm-bindgen --keep-debug; wasm-opt then drops
// them). Two sets of functions get the body `unreachable`:
// - core's and alloc's panic entry points (PANICS below). Each is `-> !` and can do nothing but
//   reach the panic handler, which traps; now it traps at once, the same trap (a RuntimeError
//   "unreachable" in JavaScript). Checked here: each returns nothing and its body cannot complete
//   (binaryen gives it the type `unreachable`) and holds no `return`.
// - core's `Display` and `Debug` implementations (FORMATTING below), which only a `Formatter`
//   calls. Checked here: nothing calls or references one but the function table, and the .wasm
//   has no `core::fmt::write` (the only caller of a `fmt` function through the table), so with
//   the panic messages gone nothing can call them. Code that formats at run time (`format!`,
//   `to_string()` on a number) fails the build here, with the function's name, rather than being
//   stubbed.
// wasm-opt then inlines the stubs: each panic path becomes one `unreachable`, and the formatting
// code, called from nowhere, is removed.
import { readFileSync, writeFileSync } from "node:fs";
import binaryen from "binaryen";

// Names as rustc writes them in the name section: `core[<hash>]::panicking::panic_fmt`.
const PANICS = new RegExp(
  "^(?:" +
    [
      String.raw`core\[[0-9a-f]+\]::panicking::\w+(?:::\w+)*`,
      String.raw`core\[[0-9a-f]+\]::cell::(?:lazy::)?panic_\w+`,
      String.raw`core\[[0-9a-f]+\]::(?:option|result)::(?:unwrap|expect)_failed`,
      String.raw`core\[[0-9a-f]+\]::(?:slice|str)::(?:\w+::)*\w+_fail(?:_rt|_ct)?`,
      String.raw`alloc\[[0-9a-f]+\]::raw_vec::(?:capacity_overflow|handle_error)`,
      String.raw`alloc\[[0-9a-f]+\]::alloc::handle_alloc_error`,
      String.raw`<alloc\[[0-9a-f]+\]::vec::Vec<_, _>>::\w+::assert_failed`,
    ].join("|") +
    ")$",
);
const FORMATTING = /^<.+ as core\[[0-9a-f]+\]::fmt::(?:Display|Debug)>::fmt$/;
const FMT_WRITE = /^core\[[0-9a-f]+\]::fmt::write$/;

// The features the Makefile's WASM_OPT_FLAGS enable, so that the file is written as it was read.
const F = binaryen.Features;
const FEATURES = F.BulkMemory | F.NontrappingFPToInt | F.SignExt | F.MutableGlobals | F.ReferenceTypes | F.Multivalue;

const file = process.argv[2];
if (!file) {
  console.error("usage: node pkg-template/panic-stubs.mjs <file.wasm>");
  process.exit(2);
}
const module = binaryen.readBinary(readFileSync(file));
module.setFeatures(FEATURES);
const fail = (why) => {
  console.error(`panic-stubs: ${why}`);
  process.exit(1);
};

const panics = [];
const formatting = [];
for (let i = 0; i < module.getNumFunctions(); i++) {
  const info = binaryen.getFunctionInfo(module.getFunctionByIndex(i));
  if (info.module) continue;
  if (FMT_WRITE.test(info.name)) fail(`${info.name} is in the .wasm: something formats at run time`);
  if (PANICS.test(info.name)) panics.push(info);
  else if (FORMATTING.test(info.name)) formatting.push(info);
}
if (!panics.some((f) => /::panicking::panic_fmt$/.test(f.name))) {
  fail("no core::panicking::panic_fmt by that name: the .wasm has no names (wasm-bindgen --keep-debug) or rustc names them differently");
}
for (const f of panics) {
  const body = binaryen.getExpressionInfo(f.body);
  if (f.results !== binaryen.none || body.type !== binaryen.unreachable || /\(return\b/.test(binaryen.emitText(f.body))) {
    fail(`${f.name} can return: not a panic entry point`);
  }
}
if (formatting.length) {
  // Every reference to a function by name, but its definition and the function table's.
  const text = module
    .emitText()
    .split("\n")
    .filter((line) => !/^\s*\((?:elem|func) /.test(line))
    .join("\n");
  for (const f of formatting) {
    const quoted = /^[\w.$]+$/.test(f.name) ? `$${f.name}` : `$"${f.name}"`;
    if (text.includes(quoted)) fail(`${f.name} is called or referenced by code: it would run`);
  }
}

for (const f of [...panics, ...formatting]) {
  module.removeFunction(f.name);
  module.addFunction(f.name, f.params, f.results, [], module.unreachable());
}
// With the names still in it: wasm-opt orders the functions by name (WASM_OPT_FLAGS), then drops them.
binaryen.setDebugInfo(true);
writeFileSync(file, module.emitBinary());
console.log(`panic-stubs: ${panics.length} panic entry points and ${formatting.length} fmt functions trap at once`);
