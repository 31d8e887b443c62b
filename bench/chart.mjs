// Draws bench/chart.svg from results.json: left, throughput as a ratio to the hand-written floor
// per contender and runtime; right, the gzipped size each contender ships. Plain SVG, no fonts
// or scripts fetched from anywhere.   node bench/chart.mjs [bench/results.json] (re-draws only)
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

const NAMES = {
  floor: ["hand-written", "JS floor"],
  ours: ["qbank-connect", "(ours)"],
  badgateway: ["@badgateway/", "oauth2-client"],
  openid: ["openid-client", "+ cache"],
};
const RT_COLORS = { node: "#3c873a", deno: "#1f6feb", workerd: "#f38020" };
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export function renderChart(r) {
  const cs = r.meta.contenders;
  const rts = r.meta.runtimes.filter((rt) => cs.some((c) => r.runtimes[rt]?.[c]?.throughput));
  const W = 960;
  const H = 400;
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);

  // Panel geometry.
  const top = 75;
  const bottom = H - 90;
  const ph = bottom - top;

  // ---- left: throughput ratio ----
  {
    const x0 = 50;
    const pw = 440;
    out.push(`<text x="${x0}" y="24" font-size="15" font-weight="bold">Throughput, ratio to the hand-written floor (higher is better)</text>`);
    out.push(`<text x="${x0}" y="40" fill="#555">${r.meta.config.calls} getBalance calls at concurrency ${r.meta.config.concurrency}, median of ${r.meta.config.rounds} interleaved round(s);</text>`);
    out.push(`<text x="${x0}" y="54" fill="#555">ratio of calls/s to the floor's in the same round; ✗ = some calls failed</text>`);
    let max = 1.2;
    for (const rt of rts) for (const c of cs) max = Math.max(max, (r.runtimes[rt][c]?.throughput?.ratio ?? 0) * 1.1);
    const y = (v) => bottom - (v / max) * ph;
    for (let t = 0; t <= max + 1e-9; t += 0.25) {
      out.push(`<line x1="${x0}" x2="${x0 + pw}" y1="${y(t)}" y2="${y(t)}" stroke="#e5e5e5"/>`);
      out.push(`<text x="${x0 - 6}" y="${y(t) + 4}" text-anchor="end" fill="#555">${t.toFixed(2)}</text>`);
    }
    const gw = pw / Math.max(1, cs.length);
    const bw = Math.min(34, (gw - 16) / Math.max(1, rts.length));
    cs.forEach((c, i) => {
      const gx = x0 + i * gw + (gw - bw * rts.length) / 2;
      rts.forEach((rt, j) => {
        const t = r.runtimes[rt][c]?.throughput;
        if (!t) return;
        const bx = gx + j * bw;
        out.push(`<rect x="${bx + 1}" y="${y(t.ratio)}" width="${bw - 2}" height="${bottom - y(t.ratio)}" fill="${RT_COLORS[rt]}"><title>${esc(`${rt} ${c}: ${t.ratio.toFixed(2)} (${Math.round(t.callsPerSec)} calls/s)`)}</title></rect>`);
        out.push(`<text x="${bx + bw / 2}" y="${y(t.ratio) - 4}" text-anchor="middle" font-size="10">${t.ratio.toFixed(2)}${t.failures ? "✗" : ""}</text>`);
      });
      label(out, x0 + i * gw + gw / 2, bottom + 16, NAMES[c] ?? [c], c === "ours");
    });
    out.push(`<line x1="${x0}" x2="${x0 + pw}" y1="${y(0.95)}" y2="${y(0.95)}" stroke="#c00" stroke-dasharray="5,4"/>`);
    out.push(`<text x="${x0 + pw + 4}" y="${y(0.95) + 4}" fill="#c00" font-size="11">bar</text>`);
    out.push(`<line x1="${x0}" x2="${x0 + pw}" y1="${bottom}" y2="${bottom}" stroke="#333"/>`);
    // legend
    rts.forEach((rt, j) => {
      const lx = x0 + j * 90;
      out.push(`<rect x="${lx}" y="${H - 30}" width="12" height="12" fill="${RT_COLORS[rt]}"/><text x="${lx + 16}" y="${H - 20}">${rt}</text>`);
    });
  }

  // ---- right: size ----
  if (r.sizes) {
    const x0 = 575;
    const pw = 370;
    out.push(`<text x="${x0}" y="24" font-size="15" font-weight="bold">Size shipped, KiB gzipped (lower is better)</text>`);
    out.push(`<text x="${x0}" y="40" fill="#555">esbuild --bundle --minify, gzip -9; ours: JS + .wasm</text>`);
    const b = r.sizes.bundles;
    let max = 16 * 1.2;
    for (const c of cs) max = Math.max(max, (b[c]?.total.gzip ?? 0) / 1024 * 1.1);
    const y = (v) => bottom - (v / max) * ph;
    const step = max > 100 ? 25 : max > 40 ? 10 : 4;
    for (let t = 0; t <= max; t += step) {
      out.push(`<line x1="${x0}" x2="${x0 + pw}" y1="${y(t)}" y2="${y(t)}" stroke="#e5e5e5"/>`);
      out.push(`<text x="${x0 - 6}" y="${y(t) + 4}" text-anchor="end" fill="#555">${t}</text>`);
    }
    const gw = pw / Math.max(1, cs.length);
    const bw = Math.min(44, gw - 20);
    cs.forEach((c, i) => {
      if (!b[c]) return;
      const bx = x0 + i * gw + (gw - bw) / 2;
      const js = b[c].js.gzip / 1024;
      const wasm = b[c].wasm.gzip / 1024;
      out.push(`<rect x="${bx}" y="${y(js)}" width="${bw}" height="${bottom - y(js)}" fill="#6e7781"><title>${esc(`${c}: JS ${js.toFixed(1)} KiB gzipped`)}</title></rect>`);
      if (wasm) out.push(`<rect x="${bx}" y="${y(js + wasm)}" width="${bw}" height="${y(js) - y(js + wasm)}" fill="#8250df"><title>${esc(`${c}: .wasm ${wasm.toFixed(1)} KiB gzipped`)}</title></rect>`);
      out.push(`<text x="${bx + bw / 2}" y="${y(js + wasm) - 4}" text-anchor="middle" font-size="10">${(js + wasm).toFixed(1)}</text>`);
      label(out, x0 + i * gw + gw / 2, bottom + 16, NAMES[c] ?? [c], c === "ours");
    });
    out.push(`<line x1="${x0}" x2="${x0 + pw}" y1="${y(16)}" y2="${y(16)}" stroke="#c00" stroke-dasharray="5,4"/>`);
    out.push(`<text x="${x0 + pw}" y="${y(16) - 4}" text-anchor="end" fill="#c00" font-size="11">bar 16 KB</text>`);
    out.push(`<line x1="${x0}" x2="${x0 + pw}" y1="${bottom}" y2="${bottom}" stroke="#333"/>`);
    out.push(`<rect x="${x0}" y="${H - 30}" width="12" height="12" fill="#6e7781"/><text x="${x0 + 16}" y="${H - 20}">JS</text>`);
    out.push(`<rect x="${x0 + 50}" y="${H - 30}" width="12" height="12" fill="#8250df"/><text x="${x0 + 66}" y="${H - 20}">.wasm</text>`);
  }
  out.push(`<text x="${W - 8}" y="${H - 6}" text-anchor="end" fill="#888" font-size="10">${esc(r.meta.date.slice(0, 10))}${r.meta.quick ? " (quick run)" : ""}</text>`);
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/** A contender's name under its bars, on two lines. */
function label(out, x, y, lines, bold) {
  lines.forEach((l, k) => out.push(`<text x="${x}" y="${y + k * 14}" text-anchor="middle" font-size="11"${bold ? ' font-weight="bold"' : ""}>${esc(l)}</text>`));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2] ?? new URL("./results.json", import.meta.url).pathname;
  const r = JSON.parse(readFileSync(file, "utf8"));
  writeFileSync(join(dirname(file), "chart.svg"), renderChart(r));
}
