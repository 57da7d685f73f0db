import { readFileSync } from "node:fs";
import { Hono, type Context } from "hono";
import { controlFail } from "./errors";
import { bridgeCall, parseBridgeCall } from "./model/jssdk-bridge";
import { issueOauthCode, jsapiOf, revokeJsapiTickets, setChatContext, type ChatContextInput, type FakeChatContext, type FakeChatMessage } from "./model/jsapi";
import type { FakeWecomState } from "./state";

// The chat sidebar's WeCom, as a browser meets it (shared/wecom-jssdk-kf.md Part 1): the OAuth
// authorize page (open.weixin.qq.com), the JS-SDK stand-in script (res.wx.qq.com /
// open.work.weixin.qq.com) and the bridge the script calls, all on the fake's own origin.

const STANDIN = readFileSync(new URL("./jssdk-standin.js", import.meta.url), "utf8");

/** What WeCom shows instead of signing someone in: a small HTML page (the real one says as much). */
function errorPage(c: Context, status: number, errcode: number, text: string) {
  const body = `<!doctype html><meta charset="utf-8"><title>企业微信</title><p>${text}</p><p>errcode: ${errcode}</p>`;
  return c.html(body, status as 400);
}

/** A safe JS literal for a JSON value inside a script (no `</script>`, no line separators). */
const jsLiteral = (v: unknown) => JSON.stringify(v).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");

export function jssdkRoutes(state: FakeWecomState): Hono {
  const app = new Hono();

  // OAuth (doc 98177): the member signed in to the client gets a code, silently (snsapi_base).
  app.get("/connect/oauth2/authorize", (c) => {
    const q = (k: string) => c.req.query(k) ?? "";
    const j = jsapiOf(state);
    if (q("appid") !== state.corpId) return errorPage(c, 400, 40013, "参数错误：appid 不是本企业的 CorpID");
    if (q("response_type") !== "code" || !["snsapi_base", "snsapi_privateinfo"].includes(q("scope"))) return errorPage(c, 400, 40058, "参数错误：response_type=code，scope 为 snsapi_base 或 snsapi_privateinfo");
    if (q("agentid") && q("agentid") !== String(state.agentId)) return errorPage(c, 400, 40056, "参数错误：agentid 不是本应用");
    let redirect: URL;
    try {
      redirect = new URL(q("redirect_uri"));
    } catch {
      return errorPage(c, 400, 50001, "redirect_uri 不合法");
    }
    if (!/^https?:$/.test(redirect.protocol) || (j.trustedHosts && !j.trustedHosts.includes(redirect.hostname))) return errorPage(c, 400, 50001, "redirect_uri 需使用应用可信域名");
    const me = j.context.userid ? state.findStaff(j.context.userid) : undefined;
    if (!me || !me.visible || me.resigned) return errorPage(c, 403, 60011, "请在企业微信客户端打开链接（没有已登录、在应用可见范围内的成员）");
    redirect.searchParams.set("code", issueOauthCode(state, me.userid, redirect.toString()));
    redirect.searchParams.set("state", q("state"));
    return c.redirect(redirect.toString(), 302);
  });

  const script = (c: Context, body: string) => c.body(body, 200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-store", "access-control-allow-origin": "*" });
  app.get("/wwopen/js/jwxwork-1.0.0.js", (c) => script(c, STANDIN));
  app.get("/open/js/jweixin-1.2.0.js", (c) => script(c, STANDIN));

  // The bridge: one JS-SDK call per script request, answered as a call of the stand-in's deliver.
  app.get("/wwopen/js/bridge", (c) => {
    const id = c.req.query("id") ?? "";
    if (!/^\d{1,9}$/.test(id)) return c.text("bad id", 400);
    let raw: unknown = null;
    try {
      raw = JSON.parse(c.req.query("call") ?? "");
    } catch {
      // answered below
    }
    const call = parseBridgeCall(raw);
    const result = call ? bridgeCall(state, call) : { err_msg: "bridge:fail invalid call" };
    return script(c, `window.__wecomFakeBridge&&window.__wecomFakeBridge.deliver(${id},${jsLiteral(result)});`);
  });
  return app;
}

/** The test surface of the sidebar's WeCom (also on /__control as setChatContext, chatMessages, …). */
export interface FakeSidebar {
  /** Open a chat in the client (who is signed in, which customer or group). */
  setChatContext(input: ChatContextInput): FakeChatContext;
  readonly context: FakeChatContext;
  /** Everything pages sent into chats with sendChatMessage, oldest first. */
  chatMessages(): readonly FakeChatMessage[];
  clearChatMessages(): void;
  /** Replace every JS-SDK ticket early: signatures made with the old ones stop verifying. */
  revokeJsapiTickets(): number;
  /** Only these hosts may be signed (80001) and redirected to (50001); null: any. */
  setTrustedHosts(hosts: string[] | null): void;
}

export function fakeSidebar(state: FakeWecomState): FakeSidebar {
  const j = jsapiOf(state);
  return {
    setChatContext: (input) => setChatContext(state, input),
    get context() {
      return j.context;
    },
    chatMessages: () => [...j.sent],
    clearChatMessages: () => {
      j.sent.length = 0;
    },
    revokeJsapiTickets: () => revokeJsapiTickets(state),
    setTrustedHosts: (hosts) => {
      j.trustedHosts = hosts === null ? null : [...hosts];
    },
  };
}

// Control arguments arrive as untyped JSON.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Args = Record<string, any>;

/** The sidebar's actions on /__control (merged into the control routes' table). */
export function sidebarControlActions(state: FakeWecomState): Record<string, (a: Args) => unknown> {
  const s = fakeSidebar(state);
  return {
    setChatContext: (a) => s.setChatContext(a as ChatContextInput),
    chatContext: () => s.context,
    chatMessages: () => s.chatMessages(),
    clearChatMessages: () => s.clearChatMessages(),
    revokeJsapiTickets: () => s.revokeJsapiTickets(),
    setTrustedHosts: (a) => {
      if (a.hosts !== null && !(Array.isArray(a.hosts) && a.hosts.every((h: unknown) => typeof h === "string"))) controlFail("hosts: a list of host names, or null");
      s.setTrustedHosts(a.hosts);
      return { hosts: a.hosts };
    },
  };
}
