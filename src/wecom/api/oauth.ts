import type { WecomClient } from "./client";

/**
 * Web sign-in of a WeCom member (shared/wecom-jssdk-kf.md §1.7) and the JS-SDK scripts the chat
 * sidebar loads (§1.2). Live: WeCom's own hosts. Sandbox: the fake WeCom serves both on its own
 * origin (the client's base URL), at the same paths.
 */
export const WECOM_AUTHORIZE_URL = "https://open.weixin.qq.com/connect/oauth2/authorize";

/** jweixin (wx.config, wx.invoke) and jwxwork (wx.agentConfig), in that order (doc 90547). */
export const WECOM_JSSDK_URLS: readonly string[] = ["https://res.wx.qq.com/open/js/jweixin-1.2.0.js", "https://open.work.weixin.qq.com/wwopen/js/jwxwork-1.0.0.js"];

/** Where the fake WeCom serves its JS-SDK stand-in and its OAuth page (below its base URL). */
export const FAKE_JSSDK_PATH = "/wwopen/js/jwxwork-1.0.0.js";
export const FAKE_AUTHORIZE_PATH = "/connect/oauth2/authorize";

/**
 * The authorize URL: WeCom signs the member in (inside the WeCom client, silently with
 * snsapi_base) and comes back to `redirectUri?code=…&state=…`.
 */
export function authorizeUrl(base: string, input: { corpId: string; agentId: number; redirectUri: string; state: string }): string {
  const q = new URLSearchParams({ appid: input.corpId, redirect_uri: input.redirectUri, response_type: "code", scope: "snsapi_base", state: input.state, agentid: String(input.agentId) });
  return `${base}?${q.toString()}#wechat_redirect`;
}

/** Who signed in: a member's `userid`, or for a non-member `openid` (and `external_userid` when they are a customer). */
export interface WecomUserInfo {
  userid?: string;
  openid?: string;
  external_userid?: string;
}

/** The code from the authorize redirect (single use, 5 minutes) → who it is; a bad or used code is WecomError 40029. */
export function getUserInfo(client: WecomClient, code: string): Promise<WecomUserInfo> {
  return client.call<WecomUserInfo>("auth/getuserinfo", "GET", "/cgi-bin/auth/getuserinfo", { query: { code } });
}
