// A REFERENCE, NOT A CONTENDER — the hand-written floor (floor.mjs) with node:http and a
// keep-alive agent instead of fetch, run in phase 4 on Node only. Ours sends through node:http in
// Node (the package's node entry), so its Node ratio to the fetch floor measures the transport as
// much as the library; this row shows what the same ~50 lines cost on the same transport. Same
// logic as floor.mjs: one cached token, one shared in-flight token request, one retry on 401; no
// validation, no timeouts, JSON.parse (amounts become floats).
import http from "node:http";
export const name = "floorhttp";
export const label = "hand-written floor on node:http (reference)";

export function create({ tokenUrl, apiBaseUrl, clientId, clientSecret, scope }) {
  const agent = new http.Agent({ keepAlive: true });
  const form = new URLSearchParams({ grant_type: "client_credentials", client_id: clientId, client_secret: clientSecret, scope }).toString();
  let token;
  let expiresAt = 0;
  let inflight;

  function send(method, url, headers, body) {
    return new Promise((resolve, reject) => {
      const req = http.request(url, { method, headers, agent }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode, text }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(body);
    });
  }

  async function requestToken() {
    const res = await send("POST", tokenUrl, { "content-type": "application/x-www-form-urlencoded", accept: "application/json", "content-length": Buffer.byteLength(form) }, form);
    if (res.status !== 200) throw new Error(`token endpoint answered HTTP ${res.status}`);
    const body = JSON.parse(res.text);
    if (typeof body.access_token !== "string") throw new Error("no access_token in the token response");
    const lifetime = (body.expires_in ?? 3600) * 1000;
    token = body.access_token;
    expiresAt = Date.now() + lifetime - Math.min(30_000, lifetime / 10);
    return token;
  }

  async function getToken() {
    if (token !== undefined && Date.now() < expiresAt) return token;
    return (inflight ??= requestToken().finally(() => (inflight = undefined)));
  }

  async function getBalance(accountId) {
    const url = `${apiBaseUrl}/v1/balances/${encodeURIComponent(accountId)}`;
    for (let retried = false; ; retried = true) {
      const used = await getToken();
      const res = await send("GET", url, { authorization: `Bearer ${used}`, accept: "application/json" });
      if (res.status === 401 && !retried) {
        if (token === used) token = undefined;
        continue;
      }
      if (res.status < 200 || res.status > 299) throw new Error(`API answered HTTP ${res.status}`);
      return JSON.parse(res.text);
    }
  }

  return { getBalance, getToken, close: () => agent.destroy() };
}
