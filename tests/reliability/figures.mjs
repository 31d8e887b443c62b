// Adds up the figures the reliability tests wrote into target/reliability/ and writes
// target/reliability/figures.json (and prints a Markdown table for the README's Reliability
// section):
//
//   fault-matrix/*.json   tests/js/matrix.{token,api,time,concurrency}.test.mjs: cases tried, passed
//   bad-config/*.json     tests/js/matrix.config.test.mjs: bad configurations tried, refused
//   leaks.json            tests/leaks/register.cjs over the whole JavaScript run: strings, leaks
//
//   node tests/reliability/figures.mjs [--check]
//
// --check exits 1 when a figure is missing, a case failed, a configuration was accepted, or the
// scanner found a leak. Other files in target/reliability/ (fuzzing, soak) are listed as they are.
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RELIABILITY_DIR } from "./support.mjs";

const read = (f) => JSON.parse(readFileSync(f, "utf8"));
const jsonIn = (dir) =>
  existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith(".json"))
        .sort()
        .map((f) => read(join(dir, f)))
    : [];

function cases(kind) {
  const files = jsonIn(join(RELIABILITY_DIR, kind));
  if (files.length === 0) return null;
  return {
    tried: files.reduce((n, f) => n + f.tried, 0),
    passed: files.reduce((n, f) => n + f.passed, 0),
    byFile: Object.fromEntries(files.map((f) => [f.file, { tried: f.tried, passed: f.passed, generatedAt: f.generatedAt }])),
    failed: files.flatMap((f) => f.failed.map((t) => `${f.file}: ${t}`)),
  };
}

// From `make fuzz` and `make soak`, when they ran.
const fuzzFile = join(RELIABILITY_DIR, "..", "fuzz-summary.json");
const fuzz = existsSync(fuzzFile) ? read(fuzzFile) : null;
const soakFile = join(RELIABILITY_DIR, "..", "soak", "soak.json");
const soak = existsSync(soakFile) ? read(soakFile) : null;
const mib = (b) => `${(b / 1048576).toFixed(2)} MiB`;

const leaksFile = join(RELIABILITY_DIR, "leaks.json");
const leaks = existsSync(leaksFile) ? read(leaksFile) : null;
const figures = {
  generatedAt: new Date().toISOString(),
  faultCases: cases("fault-matrix"),
  badConfigurations: cases("bad-config"),
  leakScanner: leaks && {
    stringsScanned: leaks.stringsScanned,
    leaks: leaks.leaks,
    processes: leaks.processes,
    notScanned: leaks.incompleteProcesses.length,
    secretsKnown: leaks.secretsKnown,
    channels: leaks.channels,
    generatedAt: leaks.generatedAt,
  },
  fuzzing: fuzz && {
    secondsPerTarget: fuzz.seconds_per_target,
    targets: fuzz.targets.map((t) => ({ name: t.name, executions: t.executions, crashes: t.crashes })),
  },
  soak: soak && {
    verdict: soak.verdict,
    phases: soak.phases.map((p) => ({ phase: p.phase, calls: p.calls, verdict: p.verdict })),
    wasmBytes: [soak.initial.wasmBytes, soak.final.wasmBytes],
    heapUsed: [soak.initial.heapUsed, soak.final.heapUsed],
    finishedAt: soak.finishedAt,
  },
  other: existsSync(RELIABILITY_DIR)
    ? readdirSync(RELIABILITY_DIR).filter((f) => f.endsWith(".json") && !["leaks.json", "figures.json"].includes(f))
    : [],
};
writeFileSync(join(RELIABILITY_DIR, "figures.json"), `${JSON.stringify(figures, null, 2)}\n`);

const f = figures;
const row = (what, value) => `| ${what} | ${value} |`;
const lines = ["| Reliability figure (latest run) | Value |", "|---|---|"];
lines.push(row("Fault cases tried / passed", f.faultCases ? `${f.faultCases.tried} / ${f.faultCases.passed}` : "not run"));
lines.push(row("Bad configurations tried / refused with `config`", f.badConfigurations ? `${f.badConfigurations.tried} / ${f.badConfigurations.passed}` : "not run"));
lines.push(row("Strings scanned for secrets and tokens / leaks", f.leakScanner ? `${f.leakScanner.stringsScanned} / ${f.leakScanner.leaks}` : "not run"));
if (f.fuzzing) {
  const total = f.fuzzing.targets.reduce((n, t) => n + t.executions, 0);
  const crashes = f.fuzzing.targets.reduce((n, t) => n + t.crashes, 0);
  const each = f.fuzzing.targets.map((t) => `${t.name} ${t.executions.toLocaleString("en-US")}`).join(", ");
  lines.push(row(`Fuzzing executions (${f.fuzzing.secondsPerTarget} s per target) / crashes`, `${total.toLocaleString("en-US")} / ${crashes} (${each})`));
} else lines.push(row("Fuzzing", "not run (make fuzz)"));
if (f.soak) {
  const calls = f.soak.phases.map((p) => `${p.calls.toLocaleString("en-US")} ${p.phase}`).slice(0, 3).join("; ");
  lines.push(row("Soak", `${calls}; every phase ${f.soak.verdict}`));
  lines.push(row("wasm memory before / after the soak", `${mib(f.soak.wasmBytes[0])} / ${mib(f.soak.wasmBytes[1])}`));
  lines.push(row("JS heap before / after the soak (after GC)", `${mib(f.soak.heapUsed[0])} / ${mib(f.soak.heapUsed[1])}`));
} else lines.push(row("Soak", "not run (make soak)"));
console.log(lines.join("\n"));
for (const t of f.faultCases?.failed ?? []) console.log(`  fault case failed: ${t}`);
for (const t of f.badConfigurations?.failed ?? []) console.log(`  bad configuration not refused as required: ${t}`);

if (process.argv.includes("--check")) {
  const problems = [];
  if (!f.faultCases) problems.push("no fault-matrix figures (run the JavaScript tests)");
  if (!f.badConfigurations) problems.push("no bad-config figures (run the JavaScript tests)");
  if (!f.leakScanner) problems.push("no leak scanner figures (run the JavaScript tests under tests/leaks/register.cjs)");
  if (f.faultCases && f.faultCases.failed.length) problems.push(`${f.faultCases.failed.length} fault case(s) failed`);
  if (f.badConfigurations && f.badConfigurations.failed.length) problems.push(`${f.badConfigurations.failed.length} bad configuration(s) not refused`);
  if (f.leakScanner && (f.leakScanner.leaks > 0 || f.leakScanner.notScanned > 0)) problems.push(`${f.leakScanner.leaks} leak(s), ${f.leakScanner.notScanned} process(es) not scanned`);
  if (!f.fuzzing) problems.push("no fuzzing figures (run make fuzz)");
  else if (f.fuzzing.targets.some((t) => t.crashes > 0)) problems.push("fuzzing found a crash");
  if (!f.soak) problems.push("no soak figures (run make soak)");
  else if (f.soak.verdict !== "steady") problems.push(`soak verdict: ${f.soak.verdict}`);
  for (const p of problems) console.error(`reliability: ${p}`);
  if (problems.length) process.exit(1);
}
