// @badgateway/oauth2-client: OAuth2Fetch with the client_credentials grant, as its README shows.
import { OAuth2Client, OAuth2Fetch } from "@badgateway/oauth2-client";
export const name = "badgateway";
export const label = "@badgateway/oauth2-client";

export function create({ tokenUrl, apiBaseUrl, clientId, clientSecret, scope }) {
  const client = new OAuth2Client({ tokenEndpoint: tokenUrl, clientId, clientSecret, authenticationMethod: "client_secret_post" });
  const wrapper = new OAuth2Fetch({
    client,
    getNewToken: () => client.clientCredentials({ scope: [scope] }),
    scheduleRefresh: false, // it schedules only with a refresh_token anyway
  });
  return {
    async getBalance(accountId) {
      const res = await wrapper.fetch(`${apiBaseUrl}/v1/balances/${encodeURIComponent(accountId)}`, { headers: { accept: "application/json" } });
      if (!res.ok) throw new Error(`API answered HTTP ${res.status}`);
      return res.json();
    },
    getToken: () => wrapper.getToken(),
    close() {},
  };
}
