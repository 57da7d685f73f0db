import { issueToken } from "../model/tokens";
import { get, type ApiDef } from "./api";

// Doc §1.6, §3.1.

const CALLBACK_IPS = ["101.226.103.0/25", "101.226.62.0/26", "58.251.80.0/26", "183.3.234.0/26", "140.207.54.0/25", "182.254.11.0/24"];
const API_DOMAIN_IPS = ["182.254.11.176", "182.254.78.66", "140.207.54.2", "101.226.141.58"];

export const tokenApis: ApiDef[] = [
  get(
    "gettoken",
    ({ state, query }) => {
      const t = issueToken(state, query("corpid"), query("corpsecret"));
      return { access_token: t.accessToken, expires_in: t.expiresIn };
    },
    false,
  ),
  get("getcallbackip", () => ({ ip_list: CALLBACK_IPS })),
  get("get_api_domain_ip", () => ({ ip_list: API_DOMAIN_IPS })),
];
