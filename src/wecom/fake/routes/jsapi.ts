import { fail } from "../errors";
import { exchangeOauthCode, issueJsapiTicket } from "../model/jsapi";
import { get, type ApiDef } from "./api";

// shared/wecom-jssdk-kf.md §1.3 (tickets) and §1.7 (web sign-in).

export const jsapiApis: ApiDef[] = [
  get("get_jsapi_ticket", ({ state }) => {
    const t = issueJsapiTicket(state, "corp");
    return { ticket: t.ticket, expires_in: t.expiresIn };
  }),
  get("ticket/get", ({ state, query }) => {
    if (query("type") !== "agent_config") return fail(40058, "type must be agent_config");
    const t = issueJsapiTicket(state, "agent");
    return { ticket: t.ticket, expires_in: t.expiresIn };
  }),
  get("auth/getuserinfo", ({ state, query }) => ({ userid: exchangeOauthCode(state, query("code")) })),
];
