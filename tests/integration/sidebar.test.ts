import { getJsApiSignature } from "@wecom/crypto";
import { Redis } from "ioredis";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Role } from "../../src/domain/auth/permissions";
import { ForbiddenError, NotFoundError, ValidationError } from "../../src/errors";
import { signInWithWecomCode, WecomSignInRefused } from "../../src/services/auth/wecom-sign-in";
import { authenticateSession } from "../../src/services/auth/authenticate";
import { systemCtx, type Ctx } from "../../src/services/context";
import { listScripts, releaseScript, ScriptRefused } from "../../src/services/posts/scripts";
import { putWecomSettings } from "../../src/services/wecom/settings";
import { jsapiConfig, refusedSignature, sidebarApp } from "../../src/services/wecom/sidebar";
import { WecomClient } from "../../src/wecom/api/client";
import { signJsApi } from "../../src/wecom/api/jsapi";
import { getUserInfo } from "../../src/wecom/api/oauth";
import { WecomError } from "../../src/wecom/api/errors";
import { jsapiSignature, startFakeWecom, type RunningFakeWecom } from "../../src/wecom/fake/index";
import { jsapiOf, verifyJsapiSignature } from "../../src/wecom/fake/model/jsapi";
import { client, createTestTenant, phone, type StaffKey, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { testWecomApp } from "../helpers/wecom";

/**
 * The chat sidebar's server side: JS-SDK tickets (cache, single flight, expiry, refresh on an
 * invalid ticket) and signatures, the fake's OAuth and JS-SDK bridge, WeCom sign-in, and the
 * script library's release gate.
 */
const wecom = testWecomApp();
let fake: RunningFakeWecom;
let t: TestRuntime;
let tenant: TestTenant;
let redis: Redis;
let sql: postgres.Sql;
let clockMs = Date.now();

beforeAll(async () => {
  fake = await startFakeWecom({ corpId: wecom.corpId, agentId: wecom.agentId, secret: wecom.secret, callbackToken: wecom.callbackToken, encodingAesKey: wecom.encodingAesKey, now: () => new Date(clockMs) });
  t = await createTestRuntime({}, { wecomBaseUrl: fake.url });
  redis = new Redis(process.env.REDIS_URL!);
  sql = postgres(t.databaseUrl, { max: 1, onnotice: () => {} });
  tenant = await createTestTenant(t.rt.deps);
  await putWecomSettings({ ctx: systemCtx(t.rt.deps, tenant.id, "test"), input: wecom });
  for (const key of ["consultant", "consultant2"] as const) fake.control.createStaff({ userid: `${key}-${tenant.slug}`, name: key });
});
afterAll(async () => {
  await sql?.end();
  await redis?.quit();
  await t?.close();
  await fake?.close();
});

const ROLE: Record<StaffKey, Role> = { admin: "admin", manager: "manager", marketing: "marketing", consultant: "consultant", consultant2: "consultant", reviewer: "reviewer" };
const staffCtx = (who: StaffKey): Ctx => ({ deps: t.rt.deps, tenantId: tenant.id, actor: { kind: "staff", staffId: tenant.staff[who].id, role: ROLE[who], name: `${who} ${tenant.slug}`, via: "session" }, logger: t.rt.deps.logger });
const api = (who: StaffKey) => client(t.app, tenant.tokens[who]);

let n = 0;
/** A client of its own Redis namespace (no ticket or token carries over), as another process would have. */
function newClient(prefix: string): WecomClient {
  return new WecomClient({ baseUrl: fake.url, corpId: wecom.corpId, secret: wecom.secret, agentId: wecom.agentId, redis, keyPrefix: prefix, backoffMs: 5 });
}
const freshPrefix = () => `sidebar-test-${process.pid}-${++n}`;
const calls = (path: string) => fake.state.apiCalls.filter((c) => c.path === path && c.errcode === 0).length;
const PAGE = "https://sidebar.clinic.example/sidebar/demo/contact/wm1?from=single_chat_tools";

describe("JS-SDK signatures", () => {
  it("match the documented vectors, through @wecom/crypto, with the fragment dropped", () => {
    expect(signJsApi({ url: "http://mp.weixin.qq.com?params=value", ticket: "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg", nonceStr: "Wm3WZYTPz0wzccnW", timestamp: 1414587457 }).signature).toBe(
      "0f9de62fce790f9a083d5c99e95740ceb90c27ed",
    );
    const url = "https://sidebar.clinic.example/sidebar/customer?from=single_chat_tools";
    const corp = signJsApi({ url, ticket: "kgt8ON7yVITDhtdwci0qeZ8Fy7b4NZ-SIT_FakeClinicTicket01", nonceStr: "ClinicNonce0001", timestamp: 1700000000 });
    expect(corp).toEqual({ timestamp: 1700000000, nonceStr: "ClinicNonce0001", signature: "2b100a4911790daed37669f7876c7d0439a1976f" });
    const agent = signJsApi({ url: `${url}#profile`, ticket: "AgentTicketFakeClinic_0001", nonceStr: "ClinicNonce0001", timestamp: 1700000000 });
    expect(agent.signature).toBe("da2d4dc38e9e7aba0f3af0e83bf86a70118f4667");
    // The same as @wecom/crypto itself and as the fake's own implementation.
    expect(agent.signature).toBe(getJsApiSignature({ url, ticket: "AgentTicketFakeClinic_0001", nonceStr: "ClinicNonce0001", timestamp: 1700000000 }).signature);
    expect(jsapiSignature("AgentTicketFakeClinic_0001", "ClinicNonce0001", 1700000000, url)).toBe(agent.signature);
    // An encoded URL is another URL.
    expect(signJsApi({ url: encodeURI(url).replace("?", "%3F"), ticket: "AgentTicketFakeClinic_0001", nonceStr: "ClinicNonce0001", timestamp: 1700000000 }).signature).not.toBe(agent.signature);
    // Nonces are crypto-random letters and digits, fresh each time.
    const a = signJsApi({ url, ticket: "x" });
    const b = signJsApi({ url, ticket: "x" });
    expect(a.nonceStr).toMatch(/^[A-Za-z0-9]{16}$/);
    expect(a.nonceStr).not.toBe(b.nonceStr);
  });
});

describe("JS-SDK ticket cache", () => {
  it("fetches each ticket once for many concurrent signatures from two processes, and caches it in Redis with a margin", async () => {
    const prefix = freshPrefix();
    const [a, b] = [newClient(prefix), newClient(prefix)];
    const before = { corp: calls("get_jsapi_ticket"), agent: calls("ticket/get") };
    const sigs = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).jsapi.sign(i % 4 < 2 ? "corp" : "agent", PAGE)));
    expect(calls("get_jsapi_ticket") - before.corp).toBe(1);
    expect(calls("ticket/get") - before.agent).toBe(1);
    // Every signature verifies at WeCom against the ticket of its kind.
    sigs.forEach((s, i) => expect(verifyJsapiSignature(fake.state, i % 4 < 2 ? "corp" : "agent", { url: PAGE, ...s })).toBe(0));
    const ttl = await redis.ttl(a.jsapi.key("agent"));
    expect(ttl).toBeGreaterThan(7200 - 300 - 10);
    expect(ttl).toBeLessThanOrEqual(7200 - 300);
    expect(a.jsapi.key("corp")).toBe(`${prefix}:wecom:jsapi:corp:${wecom.corpId}`);
    expect(a.jsapi.key("agent")).toBe(`${prefix}:wecom:jsapi:agent:${wecom.corpId}:${wecom.agentId}`);
  });

  it("fetches again once the cached ticket expires, and trusts WeCom's expires_in", async () => {
    const prefix = freshPrefix();
    const c = newClient(prefix);
    const first = await c.jsapi.ticket("corp");
    const before = calls("get_jsapi_ticket");
    expect(await c.jsapi.ticket("corp")).toBe(first);
    expect(calls("get_jsapi_ticket")).toBe(before);
    await redis.pexpire(c.jsapi.key("corp"), 1);
    await new Promise((r) => setTimeout(r, 20));
    // WeCom hands out the same ticket while it is valid.
    expect(await c.jsapi.ticket("corp")).toBe(first);
    expect(calls("get_jsapi_ticket")).toBe(before + 1);
    // A short-lived ticket is cached for at least a minute, never past WeCom's expiry minus the margin.
    const j = jsapiOf(fake.state);
    j.ticketTtlSeconds = 400;
    fake.sidebar.revokeJsapiTickets();
    await redis.del(c.jsapi.key("agent"));
    await c.jsapi.ticket("agent");
    expect(await redis.ttl(c.jsapi.key("agent"))).toBeLessThanOrEqual(100);
    j.ticketTtlSeconds = 7200;
  });

  it("drops a ticket WeCom no longer accepts (40093 on a signature made with it), and signs with a fresh one", async () => {
    const prefix = freshPrefix();
    const c = newClient(prefix);
    const old = await c.jsapi.sign("agent", PAGE);
    expect(verifyJsapiSignature(fake.state, "agent", { url: PAGE, ...old })).toBe(0);
    fake.sidebar.revokeJsapiTickets();
    expect(verifyJsapiSignature(fake.state, "agent", { url: PAGE, ...old })).toBe(40093);
    // Another code, or a signature not made with the cached ticket: nothing is dropped.
    expect(await c.jsapi.refused("agent", 40013, { url: PAGE, ...old })).toBe(false);
    expect(await c.jsapi.refused("agent", 40093, { url: PAGE, ...old, signature: "0".repeat(40) })).toBe(false);
    const stale = await redis.get(c.jsapi.key("agent"));
    expect(stale).not.toBeNull();
    expect(await c.jsapi.refused("agent", 40093, { url: PAGE, ...old })).toBe(true);
    expect(await redis.get(c.jsapi.key("agent"))).toBeNull();
    const fresh = await c.jsapi.sign("agent", PAGE);
    expect(await redis.get(c.jsapi.key("agent"))).not.toBe(stale);
    expect(verifyJsapiSignature(fake.state, "agent", { url: PAGE, ...fresh })).toBe(0);
  });

  it("refreshes the access token behind a ticket fetch (40014) and answers 45009 past WeCom's hourly limit", async () => {
    const c = newClient(freshPrefix());
    await c.jsapi.ticket("corp");
    fake.control.revokeTokens();
    fake.sidebar.revokeJsapiTickets();
    await redis.del(c.jsapi.key("corp"));
    expect(await c.jsapi.ticket("corp")).toMatch(/^[\w-]{86}$/);
    const j = jsapiOf(fake.state);
    j.limits.agent = 0;
    try {
      const d = newClient(freshPrefix());
      const err = await d.jsapi.ticket("agent").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WecomError);
      expect((err as WecomError).errcode).toBe(45009);
    } finally {
      j.limits.agent = 100;
    }
  });
});

describe("the sidebar's WeCom services", () => {
  it("signs only pages of this tenant's sidebar, without the fragment, and drops a refused ticket", async () => {
    const page = `https://siyu.example/sidebar/${tenant.slug}/contact/wm1?x=1`;
    const input = { url: `${page}#top`, origins: ["https://siyu.example"], pathPrefix: `/sidebar/${tenant.slug}` };
    const cfg = await jsapiConfig({ ctx: staffCtx("consultant"), input });
    expect(cfg).toMatchObject({ corpId: wecom.corpId, agentId: wecom.agentId, url: page, jsApiList: ["getContext", "getCurExternalContact", "getCurExternalChat", "sendChatMessage"] });
    expect(verifyJsapiSignature(fake.state, "corp", { url: page, ...cfg.config })).toBe(0);
    expect(verifyJsapiSignature(fake.state, "agent", { url: page, ...cfg.agentConfig })).toBe(0);
    for (const url of ["https://evil.example/sidebar/x", `https://siyu.example/console/contacts`, `https://siyu.example/sidebar/${tenant.slug}x/y`]) {
      await expect(jsapiConfig({ ctx: staffCtx("consultant"), input: { ...input, url } })).rejects.toBeInstanceOf(ValidationError);
    }
    await expect(jsapiConfig({ ctx: staffCtx("marketing"), input })).rejects.toBeInstanceOf(ForbiddenError);
    fake.sidebar.revokeJsapiTickets();
    expect(await refusedSignature({ ctx: staffCtx("consultant"), input: { kind: "agent", errcode: 40093, url: page, ...cfg.agentConfig } })).toEqual({ refreshed: true });
    const again = await jsapiConfig({ ctx: staffCtx("consultant"), input });
    expect(verifyJsapiSignature(fake.state, "agent", { url: page, ...again.agentConfig })).toBe(0);
  });

  it("signs a member in through the fake's OAuth: a single-use code, 40029 after, and only staff with that WeCom userid", async () => {
    const found = await sidebarApp(t.rt.deps, tenant.slug);
    const app = found!.app!;
    const authorize = async (redirect: string) => {
      const q = new URLSearchParams({ appid: wecom.corpId, redirect_uri: redirect, response_type: "code", scope: "snsapi_base", state: "st-1", agentid: String(wecom.agentId) });
      return fake.app.request(`/connect/oauth2/authorize?${q}`);
    };
    fake.sidebar.setChatContext({});
    expect((await authorize("https://siyu.example/sidebar/x/oauth")).status).toBe(403);
    fake.sidebar.setChatContext({ userid: `consultant-${tenant.slug}` });
    const res = await authorize(`https://siyu.example/sidebar/${tenant.slug}/oauth?next=%2Fsidebar%2F${tenant.slug}`);
    expect(res.status).toBe(302);
    const back = new URL(res.headers.get("location")!);
    expect(back.searchParams.get("state")).toBe("st-1");
    expect(back.searchParams.get("next")).toBe(`/sidebar/${tenant.slug}`);
    const code = back.searchParams.get("code")!;
    const s = await signInWithWecomCode(t.rt.deps, app, { code });
    expect(s.principal).toMatchObject({ staffId: tenant.staff.consultant.id, role: "consultant", tenantSlug: tenant.slug });
    expect((await authenticateSession(t.rt.deps.db, s.cookie, new Date()))?.staffId).toBe(tenant.staff.consultant.id);
    // Single use.
    await expect(signInWithWecomCode(t.rt.deps, app, { code })).rejects.toMatchObject({ reason: "bad_code" });
    expect(await getUserInfo(app.client, "nope").catch((e: WecomError) => e.errcode)).toBe(40029);
    expect(await getUserInfo(app.client, "").catch((e: WecomError) => e.errcode)).toBe(41008);
    // Five minutes at most.
    const late = new URL((await authorize("https://siyu.example/cb")).headers.get("location")!).searchParams.get("code")!;
    clockMs += 301_000;
    try {
      expect(await getUserInfo(app.client, late).catch((e: WecomError) => e.errcode)).toBe(40029);
    } finally {
      clockMs = Date.now();
    }
    // A member of the corp without a Siyu staff account.
    fake.control.createStaff({ userid: `stranger-${tenant.slug}` });
    fake.sidebar.setChatContext({ userid: `stranger-${tenant.slug}` });
    const strangerCode = new URL((await authorize("https://siyu.example/cb")).headers.get("location")!).searchParams.get("code")!;
    const refused = await signInWithWecomCode(t.rt.deps, app, { code: strangerCode }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(WecomSignInRefused);
    expect(refused).toMatchObject({ reason: "no_staff", wecomUserId: `stranger-${tenant.slug}` });
    // A wrong corp or agent is refused by WeCom's page.
    expect((await fake.app.request(`/connect/oauth2/authorize?appid=wwother&redirect_uri=https%3A%2F%2Fx.example&response_type=code&scope=snsapi_base&state=s`)).status).toBe(400);
  });
});

describe("the sidebar's sign-in route", () => {
  /** GET /sidebar/{slug}: the app sends the browser to WeCom with a state bound to a cookie. */
  async function start(path = `/sidebar/${tenant.slug}/contact/wm1`) {
    const res = await t.app.request(path);
    expect(res.status).toBe(302);
    const cookie = /siyu_sb_oauth=([^;]+)/.exec(res.headers.get("set-cookie") ?? "")![1]!;
    const to = new URL(res.headers.get("location")!);
    expect(`${to.origin}${to.pathname}`).toBe(`${fake.url}/connect/oauth2/authorize`);
    expect(to.hash).toBe("#wechat_redirect");
    expect(Object.fromEntries(to.searchParams)).toMatchObject({ appid: wecom.corpId, agentid: String(wecom.agentId), response_type: "code", scope: "snsapi_base", state: cookie });
    fake.sidebar.setChatContext({ userid: `consultant-${tenant.slug}` });
    const back = await fake.app.request(`${to.pathname}${to.search}`);
    expect(back.status).toBe(302);
    return { cookie, back: new URL(back.headers.get("location")!) };
  }

  it("comes back with a session for the WeCom member, to the page that started it and nowhere else", async () => {
    const { cookie, back } = await start();
    expect(back.pathname).toBe(`/sidebar/${tenant.slug}/oauth`);
    expect(back.searchParams.get("next")).toBe(`/sidebar/${tenant.slug}/contact/wm1`);
    const done = await t.app.request(`${back.pathname}${back.search}`, { headers: { cookie: `siyu_sb_oauth=${cookie}` } });
    expect(done.status).toBe(303);
    expect(done.headers.get("location")).toBe(`/sidebar/${tenant.slug}/contact/wm1`);
    const session = /siyu_session=([^;]+)/.exec(done.headers.get("set-cookie") ?? "")![1]!;
    expect(done.headers.get("set-cookie")).toMatch(/HttpOnly/i);
    expect((await authenticateSession(t.rt.deps.db, session, new Date()))?.staffId).toBe(tenant.staff.consultant.id);

    // Another path than this tenant's sidebar: back to the sidebar's entry instead.
    for (const next of ["//evil.example/x", `/sidebar/${tenant.slug}x/contact/wm1`, "/console/staff", "https://evil.example"]) {
      const again = await start();
      again.back.searchParams.set("next", next);
      const res = await t.app.request(`${again.back.pathname}${again.back.search}`, { headers: { cookie: `siyu_sb_oauth=${again.cookie}` } });
      expect(res.headers.get("location"), next).toBe(`/sidebar/${tenant.slug}`);
    }
  });

  it("refuses a return without this browser's state, or with a used code", async () => {
    const { cookie, back } = await start();
    const noCookie = await t.app.request(`${back.pathname}${back.search}`);
    expect(noCookie.status).toBe(401);
    expect(await noCookie.text()).toContain("登录已过期");
    const other = await t.app.request(`${back.pathname}${back.search}`, { headers: { cookie: `siyu_sb_oauth=${cookie}x` } });
    expect(other.status).toBe(401);
    expect(other.headers.get("set-cookie") ?? "").not.toMatch(/siyu_session=[^;]/);
    // The code was not spent by the refused returns; once used, it is gone.
    expect((await t.app.request(`${back.pathname}${back.search}`, { headers: { cookie: `siyu_sb_oauth=${cookie}` } })).status).toBe(303);
    const reused = await t.app.request(`${back.pathname}${back.search}`, { headers: { cookie: `siyu_sb_oauth=${cookie}` } });
    expect(reused.status).toBe(401);
    expect(await reused.text()).toContain("登录链接已失效");
  });
});

describe("the fake's JS-SDK bridge", () => {
  const url = `http://127.0.0.1:9/sidebar/demo/contact/wm1`;
  const bridge = async (call: Record<string, unknown>) => {
    const res = await fake.app.request(`/wwopen/js/bridge?id=7&call=${encodeURIComponent(JSON.stringify({ url, params: {}, config: null, agent: null, ...call }))}`);
    expect(res.headers.get("content-type")).toMatch(/javascript/);
    const text = await res.text();
    const m = /^window\.__wecomFakeBridge&&window\.__wecomFakeBridge\.deliver\(7,(.*)\);$/.exec(text);
    expect(m, text).not.toBeNull();
    return JSON.parse(m![1]!) as Record<string, unknown>;
  };
  const agentOf = async (kind: "corp" | "agent" = "agent", jsApiList = ["getContext", "getCurExternalContact", "getCurExternalChat", "sendChatMessage"]) => {
    const c = newClient(freshPrefix());
    const s = await c.jsapi.sign(kind, url);
    return { corpid: wecom.corpId, agentid: String(wecom.agentId), timestamp: String(s.timestamp), nonceStr: s.nonceStr, signature: s.signature, jsApiList };
  };

  it("verifies wx.config and wx.agentConfig against the tickets it issued, failing like WeCom", async () => {
    const agent = await agentOf();
    expect(await bridge({ api: "agentConfig", agent })).toEqual({ errMsg: "agentConfig:ok" });
    expect(await bridge({ api: "agentConfig", agent: { ...agent, signature: "f".repeat(40) } })).toEqual({ errMsg: "agentConfig:invalid signature", errCode: 40093 });
    expect(await bridge({ api: "agentConfig", agent, url: `${url}?other=1` })).toMatchObject({ errCode: 40093 });
    expect(await bridge({ api: "agentConfig", agent: await agentOf("corp") })).toMatchObject({ errCode: 42012 });
    expect(await bridge({ api: "agentConfig", agent: { ...agent, corpid: "wwother" } })).toEqual({ errMsg: "agentConfig:invalid corpId", errCode: 40013 });
    const corp = await agentOf("corp");
    const config = { appId: wecom.corpId, timestamp: corp.timestamp, nonceStr: corp.nonceStr, signature: corp.signature, jsApiList: [] };
    expect(await bridge({ api: "config", config })).toEqual({ errMsg: "config:ok" });
    // Below 3.0.24 the app identity needs wx.config first.
    fake.sidebar.setChatContext({ userid: `consultant-${tenant.slug}`, version: "3.0.20" });
    expect(await bridge({ api: "agentConfig", agent })).toMatchObject({ errMsg: expect.stringMatching(/^agentConfig:fail/) });
    expect(await bridge({ api: "agentConfig", agent, config })).toEqual({ errMsg: "agentConfig:ok" });
    // Untrusted hosts: 80001.
    fake.sidebar.setChatContext({ userid: `consultant-${tenant.slug}` });
    fake.sidebar.setTrustedHosts(["sidebar.clinic.example"]);
    try {
      expect(await bridge({ api: "agentConfig", agent })).toMatchObject({ errCode: 80001 });
    } finally {
      fake.sidebar.setTrustedHosts(null);
    }
  });

  it("answers the sidebar APIs from the open chat, and records what sendChatMessage sends", async () => {
    const agent = await agentOf();
    const me = `consultant-${tenant.slug}`;
    const customer = fake.control.createContact({ name: "李女士", followedBy: me });
    const stranger = fake.control.createContact({ name: "别人的客户" });
    fake.sidebar.clearChatMessages();
    fake.sidebar.setChatContext({ userid: me, externalUserId: customer.externalUserId });
    expect(await bridge({ api: "getContext", agent })).toEqual({ err_msg: "getContext:ok", entry: "single_chat_tools" });
    expect(await bridge({ api: "getCurExternalContact", agent })).toEqual({ err_msg: "getCurExternalContact:ok", userId: customer.externalUserId });
    expect(await bridge({ api: "getCurExternalChat", agent })).toEqual({ err_msg: "getCurExternalChat:fail without context of external contact" });
    // Without a (valid) agentConfig, or an API outside jsApiList: refused.
    expect(await bridge({ api: "getCurExternalContact" })).toEqual({ err_msg: "getCurExternalContact:fail no permission" });
    expect(await bridge({ api: "sendChatMessage", agent: await agentOf("agent", ["getContext"]), params: { msgtype: "text", text: { content: "x" } } })).toEqual({ err_msg: "sendChatMessage:fail_nopermission" });
    expect(await bridge({ api: "sendChatMessage", agent, params: { msgtype: "text", text: { content: " " } } })).toEqual({ err_msg: "sendChatMessage:fail invalid text content" });
    expect(await bridge({ api: "sendChatMessage", agent, params: { msgtype: "text", text: { content: "您好，术后注意防晒" } } })).toEqual({ err_msg: "sendChatMessage:ok" });
    expect(fake.sidebar.chatMessages()).toEqual([expect.objectContaining({ userid: me, externalUserId: customer.externalUserId, msgtype: "text", message: { msgtype: "text", text: { content: "您好，术后注意防晒" } }, url })]);
    // A customer the member does not follow: no 客户联系 permission.
    fake.sidebar.setChatContext({ userid: me, externalUserId: stranger.externalUserId });
    expect(await bridge({ api: "getCurExternalContact", agent })).toEqual({ err_msg: "getCurExternalContact:fail no permission" });
    // A group chat.
    fake.sidebar.setChatContext({ userid: me, chatId: "wrGroupChat0001" });
    expect(await bridge({ api: "getCurExternalChat", agent })).toEqual({ err_msg: "getCurExternalChat:ok", chatId: "wrGroupChat0001" });
    expect(await bridge({ api: "getCurExternalContact", agent })).toEqual({ err_msg: "getCurExternalContact:fail without context of external contact" });
    // Over HTTP as well.
    const ctl = await fake.app.request("/__control/chatMessages", { method: "POST", body: "{}" });
    expect(((await ctl.json()) as { result: unknown[] }).result).toHaveLength(1);
  });
});

describe("the script library's release gate", () => {
  async function contact(owner: StaffKey, extra: Record<string, unknown> = {}): Promise<string> {
    const res = await api("admin").post("/v1/contacts", { name: "张女士", phone: phone(), ownerStaffId: tenant.staff[owner].id, ...extra });
    expect(res.status).toBe(201);
    return res.body.id as string;
  }
  async function approvedScript(body: string, title = "术后护理"): Promise<{ id: string; contentHash: string }> {
    const created = await api("marketing").post("/v1/posts", { kind: "one_to_one", title, body });
    expect(created.status).toBe(201);
    expect((await api("marketing").post(`/v1/posts/${created.body.id}/submit`)).status).toBe(200);
    const reviewed = await api("reviewer").post(`/v1/posts/${created.body.id}/reviews`, { decision: "approve", contentHash: created.body.contentHash });
    expect(reviewed.status, JSON.stringify(reviewed.body)).toBe(200);
    expect(reviewed.body.status).toBe("approved");
    return { id: created.body.id, contentHash: created.body.contentHash };
  }
  const auditRows = (action: string, id: string) => sql<{ after: Record<string, unknown>; actor_staff_id: string }[]>`select after, actor_staff_id from audit_log where action = ${action} and entity_id = ${id} order by at, id`;

  it("lists approved scripts and releases one, rendered for the customer, audited", async () => {
    const s = await approvedScript("{{name}}您好，术后 24 小时内请勿沾水，有任何不适随时联系我。");
    const draft = await api("marketing").post("/v1/posts", { kind: "one_to_one", title: "还没审", body: "草稿话术" });
    const listed = await listScripts({ ctx: staffCtx("consultant") });
    expect(listed.items.map((x) => x.id)).toContain(s.id);
    expect(listed.items.map((x) => x.id)).not.toContain(draft.body.id);
    expect(listed.items.find((x) => x.id === s.id)).toMatchObject({ title: "术后护理", contentHash: s.contentHash, preview: expect.stringMatching(/^您好，术后/) });
    expect((await listScripts({ ctx: staffCtx("consultant"), input: { name: "张女士" } })).items.find((x) => x.id === s.id)?.preview).toMatch(/^张女士您好，术后 24 小时内/);
    // Cursor pages, newest first.
    const newer = await approvedScript("复诊提醒", "您好，记得下周复诊。");
    const first = await listScripts({ ctx: staffCtx("consultant"), input: { limit: 1 } });
    expect(first.nextCursor).not.toBeNull();
    const next = await listScripts({ ctx: staffCtx("consultant"), input: { limit: 1, cursor: first.nextCursor } });
    expect(first.items[0]?.id).toBe(newer.id);
    expect(next.items[0]?.id).toBe(s.id);
    await expect(listScripts({ ctx: staffCtx("consultant"), input: { cursor: "garbage" } })).rejects.toBeInstanceOf(ValidationError);
    const contactId = await contact("consultant");
    const out = await releaseScript({ ctx: staffCtx("consultant"), id: s.id, input: { contentHash: s.contentHash, contactId } });
    expect(out).toEqual({ postId: s.id, contentHash: s.contentHash, text: "张女士您好，术后 24 小时内请勿沾水，有任何不适随时联系我。" });
    const rows = await auditRows("post.script.release", s.id);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor_staff_id: tenant.staff.consultant.id, after: { contentHash: s.contentHash, contactId, channel: "sidebar" } });
    // A group chat release needs no contact; managers may release too.
    await sql`insert into wecom_group_chats (tenant_id, chat_id, name, owner_user_id) values (${tenant.id}, ${"wrGateGroup01"}, ${"祛痘交流群"}, ${`consultant-${tenant.slug}`})`;
    expect((await releaseScript({ ctx: staffCtx("consultant"), id: s.id, input: { contentHash: s.contentHash, chatId: "wrGateGroup01" } })).text).toBe("您好，术后 24 小时内请勿沾水，有任何不适随时联系我。");
    expect((await releaseScript({ ctx: staffCtx("manager"), id: s.id, input: { contentHash: s.contentHash } })).postId).toBe(s.id);
    // The draft: not approved, nothing released.
    const refusedDraft = await releaseScript({ ctx: staffCtx("consultant"), id: draft.body.id, input: { contentHash: draft.body.contentHash } }).catch((e: unknown) => e);
    expect(refusedDraft).toBeInstanceOf(ScriptRefused);
    expect(refusedDraft).toMatchObject({ reason: "not_approved", status: 409 });
  });

  it("refuses a script changed after approval (edited, or its row altered), audited, and nothing is released", async () => {
    const s = await approvedScript("您好，这是我们的到院须知。");
    const edited = await api("marketing").patch(`/v1/posts/${s.id}`, { body: "您好，这是我们的到院须知，今天下单立减 500 元。" });
    expect(edited.status).toBe(200);
    const refused = await releaseScript({ ctx: staffCtx("consultant"), id: s.id, input: { contentHash: s.contentHash } }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ScriptRefused);
    expect(refused).toMatchObject({ reason: "changed", code: "CONFLICT" });
    expect((await listScripts({ ctx: staffCtx("consultant") })).items.map((x) => x.id)).not.toContain(s.id);
    expect((await auditRows("post.send.refused", s.id)).map((r) => r.after.reason)).toEqual([expect.stringContaining("changed after approval")]);
    expect(await auditRows("post.script.release", s.id)).toEqual([]);
    // With the new hash it is still no approved copy.
    const now = await releaseScript({ ctx: staffCtx("consultant"), id: s.id, input: { contentHash: edited.body.contentHash } }).catch((e: unknown) => e);
    expect(now).toMatchObject({ reason: "not_approved" });

    // Approved copy whose stored text was altered without review: the gate finds it differs.
    const t2 = await approvedScript("您好，请按时复诊。");
    await sql`update posts set body = ${"您好，请按时复诊，保证根治。"} where id = ${t2.id}`;
    const altered = await releaseScript({ ctx: staffCtx("consultant"), id: t2.id, input: { contentHash: t2.contentHash } }).catch((e: unknown) => e);
    expect(altered).toMatchObject({ reason: "changed" });
    await expect.poll(async () => (await auditRows("post.send.refused", t2.id)).length).toBe(1);
    expect(await auditRows("post.script.release", t2.id)).toEqual([]);
  });

  it("releases only into chats the caller may work: own contacts and groups, the sidebar's roles, not opted-out contacts", async () => {
    const s = await approvedScript("您好，欢迎来院咨询。");
    const mine = await contact("consultant");
    await expect(releaseScript({ ctx: staffCtx("consultant2"), id: s.id, input: { contentHash: s.contentHash, contactId: mine } })).rejects.toBeInstanceOf(NotFoundError);
    await expect(releaseScript({ ctx: staffCtx("consultant2"), id: s.id, input: { contentHash: s.contentHash, chatId: "wrGateGroup01" } })).rejects.toBeInstanceOf(NotFoundError);
    await expect(releaseScript({ ctx: staffCtx("reviewer"), id: s.id, input: { contentHash: s.contentHash } })).rejects.toBeInstanceOf(ForbiddenError);
    await expect(listScripts({ ctx: staffCtx("marketing") })).rejects.toBeInstanceOf(ForbiddenError);
    const other = await api("marketing").post("/v1/posts", { kind: "mass_message", title: "群发", body: "群发内容" });
    await expect(releaseScript({ ctx: staffCtx("consultant"), id: other.body.id, input: { contentHash: other.body.contentHash } })).rejects.toBeInstanceOf(NotFoundError);
    await expect(releaseScript({ ctx: staffCtx("consultant"), id: s.id, input: { contentHash: "nope" } })).rejects.toBeInstanceOf(ValidationError);
    expect((await api("consultant").post(`/v1/contacts/${mine}/opt-out`, { note: "患者要求不再接收活动消息" })).status).toBe(200);
    const optedOut = await releaseScript({ ctx: staffCtx("consultant"), id: s.id, input: { contentHash: s.contentHash, contactId: mine } }).catch((e: unknown) => e);
    expect(optedOut).toMatchObject({ reason: "gate" });
  });
});
