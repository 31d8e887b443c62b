// The leak scanner over a whole JavaScript test run. Load it into every Node process of the run:
//
//   node --require ./tests/leaks/register.cjs --test --test-concurrency=1 tests/js/ tests/servers/ tests/leaks/
//
// (--require, not --import: Node 20's test runner runs --import modules only in the test
// files' processes, never in the runner itself, which is where the totals are added up.)
//
// Roles, decided here:
//   runner      the `node --test` process: makes a run folder, lets each test process report
//               into it, and at exit prints "leak scanner: N strings scanned, M leaks", writes
//               target/reliability/leaks.json and fails the run on any leak;
//   test file   a process the runner started (NODE_TEST_CONTEXT set): records, and at exit
//               scans and writes its report into the run folder;
//   standalone  any other process started with --require (a fixture, a script): scans at exit,
//               prints the same line on stderr and exits non-zero on a leak.
// See README.md beside this file.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { pathToFileURL } = require("node:url");
const { registry } = require("./registry.cjs");
const harvest = require("./harvest.cjs");

const ROOT = path.resolve(__dirname, "..", "..");
const OUT_DIR = path.join(ROOT, "target", "reliability");
const RUN_ENV = "QBANK_LEAK_RUN_DIR";
const REPORT_ENV = "QBANK_LEAK_REPORT";

const inTestProcess = Boolean(process.env.NODE_TEST_CONTEXT);
const runner = !inTestProcess && (process.execArgv.includes("--test") || process.argv.includes("--test"));
const role = runner ? "runner" : inTestProcess && process.env[RUN_ENV] ? "test file" : "standalone";

const R = registry();

function instrument({ output }) {
  const { register } = require("node:module");
  register(pathToFileURL(path.join(__dirname, "hooks.mjs")), {
    data: { instrumentUrl: pathToFileURL(path.join(__dirname, "instrument.mjs")).href },
  });
  harvest.hookFetch(R);
  harvest.hookServers(R);
  if (!output) return;
  for (const name of ["stdout", "stderr"]) {
    const stream = process[name];
    const write = stream.write;
    stream.write = function (chunk, encoding) {
      try {
        if (typeof chunk === "string") R.addText(name, `process.${name} (console or a direct write)`, chunk);
        else if (ArrayBuffer.isView(chunk)) {
          const b = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
          // The test runner's own protocol (v8-serialized, starting ff 0f) is not output.
          if (!(b[0] === 0xff && b[1] === 0x0f)) R.addText(name, `process.${name} (bytes)`, b.toString(typeof encoding === "string" ? encoding : "utf8"));
        }
      } catch {
        /* never break output */
      }
      return write.apply(this, arguments);
    };
  }
}

function scanHere() {
  harvest.flushPendingAnswers(R);
  return { pid: process.pid, file: process.argv[1] ?? "(none)", ...R.scan() };
}

const describeLeak = (file, l) => `  LEAK in ${path.relative(ROOT, file) || file}: ${l.channel}: ${l.where} contains the ${l.what}`;

function summaryLine(total) {
  return `leak scanner: ${total.stringsScanned} strings scanned, ${total.leaks} leaks`;
}

function add(a, b) {
  for (const [k, v] of Object.entries(b)) a[k] = (a[k] ?? 0) + v;
  return a;
}

function aggregate(reports, incomplete) {
  const total = {
    generatedAt: new Date().toISOString(),
    command: process.argv.slice(1).map((a) => path.relative(ROOT, a) || a),
    stringsScanned: 0,
    distinctStrings: 0,
    charsScanned: 0,
    leaks: 0,
    processes: reports.length,
    incompleteProcesses: incomplete,
    channels: {},
    secretsKnown: {},
    secretsTooShortToTrack: 0,
    errorsFromPackage: 0,
    errorsConstructedElsewhere: 0,
    events: 0,
    instances: 0,
    files: [],
    leakDetails: [],
  };
  for (const r of reports) {
    total.stringsScanned += r.stringsScanned;
    total.distinctStrings += r.distinctStrings;
    total.charsScanned += r.charsScanned;
    total.leaks += r.leaks.length;
    add(total.channels, r.channels);
    add(total.secretsKnown, r.secretsKnown);
    total.secretsTooShortToTrack += r.secretsTooShortToTrack;
    total.errorsFromPackage += r.errorsFromPackage;
    total.errorsConstructedElsewhere += r.errorsConstructedElsewhere;
    total.events += r.events;
    total.instances += r.instances;
    const file = path.relative(ROOT, r.file) || r.file;
    if (r.stringsScanned > 0 || r.leaks.length > 0) total.files.push({ file, stringsScanned: r.stringsScanned, leaks: r.leaks.length });
    for (const l of r.leaks) total.leakDetails.push({ file, ...l });
  }
  total.files.sort((a, b) => a.file.localeCompare(b.file));
  return total;
}

function writeJson(file, obj) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(obj, null, 2)}\n`);
}

if (role === "runner") {
  const runDir = path.join(OUT_DIR, "leak-run", String(process.pid));
  fs.rmSync(runDir, { recursive: true, force: true });
  fs.mkdirSync(runDir, { recursive: true });
  process.env[RUN_ENV] = runDir;
  // With test isolation off (Node 22+), the tests run in this process: instrument it too.
  instrument({ output: false });
  process.on("exit", () => {
    const reports = [];
    const started = new Set();
    const done = new Set();
    for (const f of fs.readdirSync(runDir)) {
      const [pid, kind] = f.split(".");
      if (kind === "started") started.add(pid);
      if (kind === "json") {
        done.add(pid);
        reports.push(JSON.parse(fs.readFileSync(path.join(runDir, f), "utf8")));
      }
    }
    const own = scanHere();
    if (own.stringsScanned > 0) reports.push(own);
    const incomplete = [...started].filter((p) => !done.has(p)).map((p) => {
      try {
        return fs.readFileSync(path.join(runDir, `${p}.started`), "utf8");
      } catch {
        return `pid ${p}`;
      }
    });
    const total = aggregate(reports, incomplete);
    writeJson(process.env[REPORT_ENV] || path.join(OUT_DIR, "leaks.json"), total);
    fs.rmSync(runDir, { recursive: true, force: true });
    let out = `\n${summaryLine(total)}\n`;
    for (const l of total.leakDetails) out += `${describeLeak(path.join(ROOT, l.file), l)}\n`;
    for (const p of incomplete) out += `  NOT SCANNED: ${p} ended without reporting (killed or crashed)\n`;
    fs.writeSync(1, out);
    if (total.leaks > 0 || incomplete.length > 0) process.exitCode = 1;
  });
} else {
  instrument({ output: true });
  if (role === "test file") {
    const runDir = process.env[RUN_ENV];
    try {
      fs.writeFileSync(path.join(runDir, `${process.pid}.started`), path.relative(ROOT, process.argv[1] ?? "") || String(process.argv[1]));
    } catch {
      /* the run folder is gone: a nested run; report standalone below */
    }
    process.on("exit", () => {
      writeJson(path.join(runDir, `${process.pid}.json`), scanHere());
    });
  } else {
    process.on("exit", (code) => {
      const r = scanHere();
      const total = aggregate([r], []);
      if (process.env[REPORT_ENV]) writeJson(process.env[REPORT_ENV], total);
      let out = `${summaryLine(total)}\n`;
      for (const l of total.leakDetails) out += `${describeLeak(r.file, l)}\n`;
      fs.writeSync(2, out);
      if (total.leaks > 0 && code === 0) process.exitCode = 1;
    });
  }
}

module.exports = { registry: R, role };
