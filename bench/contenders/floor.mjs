// THE FLOOR — hand-written JavaScript, not a library: what a careful user writes in ~40 lines.
// fetch + one cached token + one shared in-flight token promise; on a 401 it drops the token it
// used (only if it is still the cached one) and retries once. No validation, no timeouts, no
// exact money (res.json() turns amounts into floats): the cost every contender is compared to.
export const name = "floor";
export const label = "hand-written JS floor";

export function create({ tokenUrl, apiBaseUrl, clientId, clientSecret, scope }) {
  const form = new URLSearchParams({ grant_type: "client_credentials", client_id: clientId, client_secret: clientSecret, scope }).toString();
  let token; // the cached access token
  let expiresAt = 0; // epoch ms, with a margin of min(30 s, a tenth of the lifetime)
  let inflight; // the one shared token request

  async function requestToken() {
    const res = await fetch(tokenUrl, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" }, body: form });
    if (!res.ok) throw new Error(`token endpoint answered HTTP ${res.status}`);
    const body = await res.json();
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
      const res = await fetch(url, { headers: { authorization: `Bearer ${used}`, accept: "application/json" } });
      if (res.status === 401 && !retried) {
        await res.body?.cancel();
        if (token === used) token = undefined; // a newer token stays
        continue;
      }
      if (!res.ok) throw new Error(`API answered HTTP ${res.status}`);
      return res.json();
    }
  }

  return { getBalance, getToken, close() {} };
}
