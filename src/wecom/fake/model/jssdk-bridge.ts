import { isRecord } from "../body";
import type { FakeWecomState } from "../state";
import { jsapiOf, verifyJsapiSignature, versionBelow, type ChatEntry, type FakeChatMessage } from "./jsapi";

// What the WeCom client does with the page's JS-SDK calls (doc 1.2, 1.5, 1.6, 1.8): the stand-in
// script (jssdk.ts) forwards every call here with the page's URL and the verify fields of
// wx.config / wx.agentConfig, as the real SDK passes them to the client on every call. Results are
// the legacy callback shapes: `errMsg` for config and agentConfig, `err_msg` for wx.invoke.

/** wx.config's verify fields (corp identity, signed with the corp ticket). */
export interface ConfigVerify {
  appId: string;
  timestamp: string;
  nonceStr: string;
  signature: string;
  jsApiList: string[];
}

/** wx.agentConfig's verify fields (app identity, signed with the app ticket). */
export interface AgentVerify {
  corpid: string;
  agentid: string;
  timestamp: string;
  nonceStr: string;
  signature: string;
  jsApiList: string[];
}

export interface BridgeCall {
  api: string;
  /** The page (location.href without `#…`). */
  url: string;
  params: Record<string, unknown>;
  config: ConfigVerify | null;
  agent: AgentVerify | null;
}

export type BridgeResult = Record<string, unknown>;

/** Below this client version wx.agentConfig needs a successful wx.config first (doc 1.2). */
const AGENT_ALONE_SINCE = "3.0.24";

/** APIs that need the app identity (agentConfig): "必须使用应用身份进行注册". */
export const AGENT_APIS = ["getContext", "getCurExternalContact", "getCurExternalChat", "sendChatMessage"] as const;

const SINGLE_ENTRIES: readonly ChatEntry[] = ["contact_profile", "single_chat_tools", "single_kf_tools"];
const SEND_ENTRIES: readonly ChatEntry[] = ["single_chat_tools", "group_chat_tools", "chat_attachment", "single_kf_tools"];
const NO_CONTEXT = "fail without context of external contact";

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : typeof v === "number" ? String(v) : undefined);
const list = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);

/** The untyped call the stand-in sent, read defensively (a page may pass anything). */
export function parseBridgeCall(raw: unknown): BridgeCall | null {
  if (!isRecord(raw) || typeof raw.api !== "string" || typeof raw.url !== "string") return null;
  const c = isRecord(raw.config) ? raw.config : null;
  const a = isRecord(raw.agent) ? raw.agent : null;
  return {
    api: raw.api,
    url: raw.url,
    params: isRecord(raw.params) ? raw.params : {},
    config: c ? { appId: str(c.appId) ?? "", timestamp: str(c.timestamp) ?? "", nonceStr: str(c.nonceStr) ?? "", signature: str(c.signature) ?? "", jsApiList: list(c.jsApiList) } : null,
    agent: a ? { corpid: str(a.corpid) ?? "", agentid: str(a.agentid) ?? "", timestamp: str(a.timestamp) ?? "", nonceStr: str(a.nonceStr) ?? "", signature: str(a.signature) ?? "", jsApiList: list(a.jsApiList) } : null,
  };
}

/** wx.config: {errMsg:"config:ok"} or the failure WeCom reports (0 when it verifies). */
function checkConfig(state: FakeWecomState, url: string, c: ConfigVerify | null): { errcode: number; errMsg: string } {
  if (!c) return { errcode: -1, errMsg: "config:fail not configured" };
  if (c.appId !== state.corpId) return { errcode: 40013, errMsg: "config:invalid corpId" };
  const e = verifyJsapiSignature(state, "corp", { url, nonceStr: c.nonceStr, timestamp: c.timestamp, signature: c.signature });
  return { errcode: e, errMsg: configMessage("config", e) };
}

function checkAgent(state: FakeWecomState, call: BridgeCall): { errcode: number; errMsg: string } {
  const a = call.agent;
  if (!a) return { errcode: -1, errMsg: "agentConfig:fail not configured" };
  const ctx = jsapiOf(state).context;
  if (versionBelow(ctx.version, AGENT_ALONE_SINCE) && checkConfig(state, call.url, call.config).errcode !== 0) {
    return { errcode: -1, errMsg: "agentConfig:fail wx.config must succeed first on this client version" };
  }
  if (a.corpid !== state.corpId) return { errcode: 40013, errMsg: "agentConfig:invalid corpId" };
  if (a.agentid !== String(state.agentId)) return { errcode: 40056, errMsg: "agentConfig:invalid agentid" };
  const e = verifyJsapiSignature(state, "agent", { url: call.url, nonceStr: a.nonceStr, timestamp: a.timestamp, signature: a.signature });
  return { errcode: e, errMsg: configMessage("agentConfig", e) };
}

function configMessage(api: "config" | "agentConfig", errcode: number): string {
  if (errcode === 0) return `${api}:ok`;
  if (errcode === 80001) return `${api}:fail invalid url domain`;
  if (errcode === 42012) return `${api}:fail jsapi ticket of the wrong kind (42012)`;
  return `${api}:invalid signature`;
}

/** Run one JS-SDK call as the client would, against the fake's tickets and the scripted chat. */
export function bridgeCall(state: FakeWecomState, call: BridgeCall): BridgeResult {
  if (call.api === "config") {
    const r = checkConfig(state, call.url, call.config);
    return r.errcode === 0 ? { errMsg: r.errMsg } : { errMsg: r.errMsg, errCode: r.errcode };
  }
  if (call.api === "agentConfig") {
    const r = checkAgent(state, call);
    return r.errcode === 0 ? { errMsg: r.errMsg } : { errMsg: r.errMsg, errCode: r.errcode };
  }
  const api = call.api;
  const failed = (reason: string): BridgeResult => ({ err_msg: `${api}:${reason}` });
  if (!(AGENT_APIS as readonly string[]).includes(api)) return failed("fail function not exist");
  // The app identity: a successful agentConfig on this page, re-checked on every call.
  if (checkAgent(state, call).errcode !== 0) return failed("fail no permission");
  if (!call.agent!.jsApiList.includes(api)) return failed("fail_nopermission");
  const ctx = jsapiOf(state).context;
  const me = ctx.userid ? state.findStaff(ctx.userid) : undefined;
  if (!me || !me.visible || me.resigned) return failed("fail no permission");

  if (api === "getContext") return { err_msg: "getContext:ok", entry: ctx.entry, ...(ctx.shareTicket ? { shareTicket: ctx.shareTicket } : {}) };
  if (api === "getCurExternalContact") {
    if (!SINGLE_ENTRIES.includes(ctx.entry) || !ctx.externalUserId) return failed(NO_CONTEXT);
    // 客户联系 permission: the member must follow the customer (kf visitors are anyone's).
    if (ctx.entry !== "single_kf_tools" && !state.follow(ctx.externalUserId, me.userid)) return failed("fail no permission");
    return { err_msg: "getCurExternalContact:ok", userId: ctx.externalUserId };
  }
  if (api === "getCurExternalChat") {
    if (ctx.entry !== "group_chat_tools" || !ctx.chatId) return failed(NO_CONTEXT);
    return { err_msg: "getCurExternalChat:ok", chatId: ctx.chatId };
  }
  // sendChatMessage
  if (!SEND_ENTRIES.includes(ctx.entry)) return failed(NO_CONTEXT);
  const refusal = invalidMessage(state, call.params);
  if (refusal) return failed(`fail ${refusal}`);
  const sent: FakeChatMessage = { userid: me.userid, entry: ctx.entry, msgtype: String(call.params.msgtype), message: call.params, url: call.url, at: state.nowSec() };
  if (ctx.externalUserId && ctx.entry !== "group_chat_tools") sent.externalUserId = ctx.externalUserId;
  if (ctx.chatId && ctx.entry === "group_chat_tools") sent.chatId = ctx.chatId;
  jsapiOf(state).sent.push(sent);
  return { err_msg: "sendChatMessage:ok" };
}

/** Why the client would refuse this message (doc 1.5), or null. */
function invalidMessage(state: FakeWecomState, m: Record<string, unknown>): string | null {
  const body = (k: string) => (isRecord(m[k]) ? m[k] : null);
  switch (m.msgtype) {
    case "text": {
      const content = body("text")?.content;
      return typeof content === "string" && content.trim() !== "" ? null : "invalid text content";
    }
    case "image":
    case "video":
    case "file": {
      const id = body(m.msgtype)?.mediaid;
      return typeof id === "string" && state.mediaValid(id) ? null : "invalid mediaid";
    }
    case "news": {
      const link = body("news")?.link;
      return typeof link === "string" && /^https?:\/\//.test(link) ? null : "invalid link";
    }
    case "miniprogram": {
      const mp = body("miniprogram");
      if (!mp || typeof mp.appid !== "string" || typeof mp.page !== "string" || !/\.html(\?|$)/.test(mp.page)) return "invalid miniprogram";
      return typeof mp.imgUrl === "string" && /^https?:\/\//.test(mp.imgUrl) ? null : "invalid imgUrl";
    }
    default:
      return "invalid msgtype";
  }
}
