// The layer check run by `make lint`: each folder under src/ may use only the layers below it.
//
//   src/js/         the JavaScript edge: may use everything (the only place wasm_bindgen appears)
//   src/providers/  QBank and QPay: may use oauth and util
//   src/oauth/      the OAuth 2.0 client: may use util
//   src/util/       domain-free pieces: may use nothing else in the crate
//
// It reads every .rs file under src/ with comments and string literals blanked out (so prose
// and messages never trip it), and fails, naming file and line, on:
// - a path `crate::<layer>` (or a `crate::{…}` group naming one) to a higher layer;
// - a `super::` chain that climbs out of the file's layer folder (write `crate::<layer>::`);
// - `qbank_connect::<layer>` to a higher layer in a doc example (doc tests are code);
// - `wasm_bindgen`, `js_sys` or `web_sys` outside src/js/.
// src/lib.rs, which declares the layers, is the root and is not checked.
//
// Usage: node tests/layers.mjs [src-dir]    (exit 1 and one line per finding when it fails)
//        node tests/layers.mjs --self-test   (checks that the checker finds what it should)
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

const RANK = { util: 0, oauth: 1, providers: 2, js: 3 };

/** `text` with comments and string/char literals replaced by spaces (newlines kept), and the
 * comments' text alone (for doc examples), both line for line. */
function split(text) {
  let code = '';
  let comments = '';
  let i = 0;
  const n = text.length;
  const blank = (s) => s.replace(/[^\n]/g, ' ');
  while (i < n) {
    const c = text[i];
    const next = text[i + 1];
    if (c === '/' && next === '/') {
      const end = text.indexOf('\n', i) === -1 ? n : text.indexOf('\n', i);
      comments += text.slice(i, end);
      code += blank(text.slice(i, end));
      i = end;
    } else if (c === '/' && next === '*') {
      let depth = 1;
      let j = i + 2;
      while (j < n && depth > 0) {
        if (text[j] === '/' && text[j + 1] === '*') (depth++, (j += 2));
        else if (text[j] === '*' && text[j + 1] === '/') (depth--, (j += 2));
        else j++;
      }
      comments += text.slice(i, j);
      code += blank(text.slice(i, j));
      i = j;
    } else if (c === 'r' && /^r#*"/.test(text.slice(i, i + 80)) && !/[A-Za-z0-9_]/.test(text[i - 1] ?? '')) {
      const hashes = text.slice(i + 1).match(/^#*/)[0];
      const close = '"' + hashes;
      const start = i + 2 + hashes.length;
      const end = text.indexOf(close, start);
      const j = end === -1 ? n : end + close.length;
      code += blank(text.slice(i, j));
      comments += blank(text.slice(i, j));
      i = j;
    } else if (c === '"') {
      let j = i + 1;
      while (j < n && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      j = Math.min(j + 1, n);
      code += blank(text.slice(i, j));
      comments += blank(text.slice(i, j));
      i = j;
    } else if (c === "'") {
      // A char literal ('x', '\n', '\u{1F600}', '"'), or else a lifetime ('a), kept as code.
      const m = text.slice(i).match(/^'(?:\\u\{[0-9A-Fa-f]+\}|\\.|[^\\'\n])'/u);
      const j = m ? i + m[0].length : i + 1;
      code += m ? blank(m[0]) : c;
      comments += blank(text.slice(i, j));
      i = j;
    } else {
      code += c;
      comments += c === '\n' ? '\n' : ' ';
      i++;
    }
  }
  return { code, comments };
}

/** A function from an index in `code` to how many inline `mod name { … }` blocks enclose it. */
function inlineModDepth(code) {
  const opens = []; // [index, isMod] of each unclosed `{`
  const marks = []; // [index, depth after it]
  for (const m of code.matchAll(/\bmod\s+[A-Za-z_][A-Za-z0-9_]*\s*\{|[{}]/g)) {
    if (m[0] === '}') opens.pop();
    else opens.push(m[0] !== '{');
    marks.push([m.index, opens.filter(Boolean).length]);
  }
  return (index) => {
    let d = 0;
    for (const [at, after] of marks) {
      if (at >= index) break;
      d = after;
    }
    return d;
  };
}

const lineOf = (text, index) => text.slice(0, index).split('\n').length;

/** The top-level names of a `{…}` use group starting at `open` in `code`. */
function groupNames(code, open) {
  let depth = 0;
  let part = '';
  const names = [];
  for (let j = open; j < code.length; j++) {
    const ch = code[j];
    if (ch === '{') {
      depth++;
      if (depth === 1) continue;
    } else if (ch === '}') {
      depth--;
      if (depth === 0) {
        names.push(part);
        break;
      }
    }
    if (depth === 1 && ch === ',') {
      names.push(part);
      part = '';
    } else if (depth >= 1) part += ch;
  }
  return names.map((p) => (p.trim().match(/^[A-Za-z_][A-Za-z0-9_]*/) ?? [''])[0]).filter(Boolean);
}

/**
 * The findings for a set of files: `files` is a list of `{ path, text }`, path relative to
 * src/ with `/` separators (`util/url.rs`). Returns `path:line: message` strings.
 */
export function check(files) {
  const findings = [];
  for (const { path, text } of files) {
    if (!path.endsWith('.rs') || path === 'lib.rs') continue;
    const parts = path.split('/');
    const layer = parts[0];
    const rank = RANK[layer];
    const { code, comments } = split(text);
    const at = (index, msg) => findings.push(`src/${path}:${lineOf(text, index)}: ${msg}`);
    if (rank === undefined) {
      at(0, `not in a layer folder (${Object.keys(RANK).join(', ')}): move it into one`);
      continue;
    }
    if (layer !== 'js') {
      for (const m of code.matchAll(/\b(wasm_bindgen|js_sys|web_sys)\b/g)) {
        at(m.index, `${m[1]} outside src/js/: the JavaScript edge is the only place it may appear`);
      }
    }
    const refuse = (index, target, how) => {
      if (RANK[target] !== undefined && RANK[target] > rank) {
        at(index, `${layer} may not use ${target} (${how}): ${layer} uses only the layers below it`);
      }
    };
    for (const m of code.matchAll(/\bcrate\s*::\s*(?:([A-Za-z_][A-Za-z0-9_]*)|\{)/g)) {
      if (m[1]) refuse(m.index, m[1], `crate::${m[1]}`);
      else for (const name of groupNames(code, m.index + m[0].length - 1)) refuse(m.index, name, `crate::{${name}…}`);
    }
    for (const m of comments.matchAll(/\bqbank_connect\s*::\s*([A-Za-z_][A-Za-z0-9_]*)/g)) {
      refuse(m.index, m[1], `qbank_connect::${m[1]} in a doc example`);
    }
    // The module path below src/ at each `super::`: util/url.rs is [util, url], util/mod.rs is
    // [util], and each inline `mod name { … }` around it adds one.
    const file = parts[parts.length - 1];
    const depth = parts.length - (file === 'mod.rs' ? 1 : 0);
    const inlineMods = inlineModDepth(code);
    for (const m of code.matchAll(/\b(?:super\s*::\s*)+/g)) {
      const climbs = (m[0].match(/super/g) ?? []).length;
      if (climbs >= depth + inlineMods(m.index)) {
        at(m.index, `${m[0].replace(/\s/g, '')} climbs out of src/${layer}/: name another layer as crate::<layer>::`);
      }
    }
  }
  return findings;
}

function readTree(dir) {
  const out = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.rs')) out.push({ path: relative(dir, p).split(sep).join('/'), text: readFileSync(p, 'utf8') });
    }
  };
  walk(dir);
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

function selfTest() {
  const bad = [
    ['util/a.rs', 'use crate::oauth::Error;\n', 'util may not use oauth'],
    ['util/a.rs', 'fn f() { crate::providers::qpay::x(); }\n', 'util may not use providers'],
    ['util/a.rs', 'use crate::{\n    prelude::*,\n    js::x,\n};\n', 'crate::{js'],
    ['util/a.rs', 'use super::super::oauth::Error;\n', 'climbs out of src/util/'],
    ['util/m/mod.rs', 'use super::super::x;\n', 'climbs out of src/util/'],
    ['util/mod.rs', 'mod tests {\n    use super::*;\n}\nuse super::x;\n', 'climbs out of src/util/'],
    ['util/a.rs', 'mod inner {\n    use super::super::super::oauth;\n}\n', 'climbs out of src/util/'],
    ['oauth/a.rs', 'use crate::providers::qbank::path;\n', 'oauth may not use providers'],
    ['oauth/a.rs', '/// ```\n/// use qbank_connect::providers::qpay;\n/// ```\nfn f() {}\n', 'in a doc example'],
    ['providers/q/a.rs', 'use crate::js::errors;\n', 'providers may not use js'],
    ['providers/a.rs', 'use wasm_bindgen::prelude::*;\n', 'wasm_bindgen outside src/js/'],
    ['a.rs', 'fn f() {}\n', 'not in a layer folder'],
  ];
  const good = [
    ['util/a.rs', '// crate::oauth in a comment\nconst S: &str = "crate::oauth::x and // not a comment";\nconst C: char = \'"\';\nuse super::b;\nfn f<\'a>(x: &\'a str) {}\n'],
    ['util/a.rs', 'const R: &str = r#"crate::js "quoted" "#;\nuse crate::prelude::*;\n'],
    ['oauth/a.rs', 'use crate::util::{concat, Invalid};\nuse super::error::Error;\n'],
    ['oauth/cache/tests.rs', 'use super::super::error::Error;\n'],
    ['util/mod.rs', 'pub mod url;\n#[cfg(test)]\nmod tests {\n    use super::*;\n    fn f() { let s = "{"; }\n}\n'],
    ['util/a.rs', 'mod inner {\n    mod deeper {\n        use super::super::super::b;\n    }\n}\n'],
    ['providers/qbank/a.rs', 'use crate::{oauth::Error, util::concat};\n/// use qbank_connect::util::x;\nfn f() {}\n'],
    ['js/a.rs', 'use crate::providers::qpay;\nuse wasm_bindgen::prelude::*;\n'],
    ['lib.rs', 'pub mod util;\nmod js;\n'],
  ];
  let failed = 0;
  for (const [path, text, expect] of bad) {
    const f = check([{ path, text }]);
    if (!f.some((x) => x.includes(expect))) (failed++, console.error(`self-test: ${path} ${JSON.stringify(text)} not flagged (${expect}); got ${JSON.stringify(f)}`));
  }
  for (const [path, text] of good) {
    const f = check([{ path, text }]);
    if (f.length) (failed++, console.error(`self-test: ${path} ${JSON.stringify(text)} wrongly flagged: ${f.join('; ')}`));
  }
  if (failed) process.exit(1);
  console.log(`layers self-test: ${bad.length} violations found, ${good.length} clean files passed`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv[2] === '--self-test') selfTest();
  else {
    const dir = process.argv[2] ?? 'src';
    const files = readTree(dir);
    const findings = check(files);
    if (findings.length) {
      for (const f of findings) console.error(f);
      console.error(`layer check: ${findings.length} finding(s); each folder may use only the layers below it (tests/layers.mjs)`);
      process.exit(1);
    }
    console.log(`layer check: ${files.length} files, each layer uses only the layers below it`);
  }
}
