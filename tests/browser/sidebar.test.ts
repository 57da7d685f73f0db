import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { wecomGroupChats } from "../../src/db/schema/index";
import { systemCtx } from "../../src/services/context";
import { putWecomSettings } from "../../src/services/wecom/settings";
import { WecomClient } from "../../src/wecom/api/client";
import { startFakeWecom, type RunningFakeWecom } from "../../src/wecom/fake/index";
import { jsapiOf } from "../../src/wecom/fake/model/jsapi";
import { client, type StaffKey } from "../helpers/factories";
import { testWecomApp } from "../helpers/wecom";
import { type ConsoleHarness, noHorizontalScroll, PHONE, startConsole } from "./helpers";

/**
 * The WeCom chat sidebar in Debian's Chromium at phone width, inside a fake WeCom: the fake signs
 * the consultant in (OAuth), serves the JS-SDK stand-in that checks the page's signatures against
 * the tickets it issued, says which chat is open, and records what the page sends into it.
 */
let h: ConsoleHarness;
let fake: RunningFakeWecom;
const wecom = testWecomApp();
const api = (who: StaffKey) => client(h.rt.app, h.tenant.tokens[who]);
const userid = (who: StaffKey) => `${who}-${h.tenant.slug}`;

/** The chats of the walk: WeCom external ids of Siyu contacts, and customers Siyu does not know. */
const ext = { tagged: "wmSidebarTagged000000000000000001", converted: "wmSidebarConvert00000000000000002", lost: "wmSidebarLost000000000000000000003", colleague: "wmSidebarColleague0000000000000004", unknown: "wmSidebarUnknown0000000000000000005" };
const CHAT = "wrSidebarGroup00000000000000000001";
let taggedLeadId = "";
let scripts: { care: { id: string; text: string }; visit: { id: string } };

async function approvedScript(title: string, body: string) {
  const created = await api("marketing").post("/v1/posts", { kind: "one_to_one", title, body });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  expect((await api("marketing").post(`/v1/posts/${created.body.id}/submit`)).status).toBe(200);
  const reviewed = await api("reviewer").post(`/v1/posts/${created.body.id}/reviews`, { decision: "approve", contentHash: created.body.contentHash });
  expect(reviewed.body.status).toBe("approved");
  return created.body.id as string;
}

beforeAll(async () => {
  h = await startConsole();
  fake = await startFakeWecom({ corpId: wecom.corpId, agentId: wecom.agentId, secret: wecom.secret, callbackToken: wecom.callbackToken, encodingAesKey: wecom.encodingAesKey });
  // The app talks to this fake WeCom, as sandbox mode points it at its in-process fake.
  const deps = h.rt.rt.deps;
  const clients = new Map<string, WecomClient>();
  deps.wecomClient = (app) => {
    const key = `${app.corpId}/${app.agentId}`;
    let c = clients.get(key);
    if (!c) clients.set(key, (c = new WecomClient({ baseUrl: fake.url, corpId: app.corpId, secret: app.secret, agentId: app.agentId, redis: h.rt.rt.redis, keyPrefix: h.rt.env.QUEUE_PREFIX })));
    return c;
  };
  await putWecomSettings({ ctx: systemCtx(deps, h.tenant.id, "test"), input: wecom });
  for (const who of ["consultant", "consultant2", "manager"] as const) fake.control.createStaff({ userid: userid(who), name: who });

  // WeCom ids on the seeded contacts: the tagged one (need:祛痘 by rule) gets a lead of its own.
  const link = async (id: string, externalUserId: string) => expect((await api("admin").patch(`/v1/contacts/${id}`, { externalUserId })).status).toBe(200);
  await link(h.seed.tagged.id, ext.tagged);
  await link(h.seed.lead.contactId, ext.converted);
  const second = await api("consultant").get(`/v1/leads/${h.seed.secondLead.id}`);
  await link(second.body.contactId, ext.lost);
  await link(h.seed.otherOwned.id, ext.colleague);
  const lead = await api("consultant").post("/v1/leads", { contactId: h.seed.tagged.id, source: "api", need: "祛痘" });
  expect(lead.status).toBe(201);
  taggedLeadId = lead.body.id;
  // In WeCom the consultant follows all of them (the colleague's customer added both), and one more Siyu does not know.
  for (const [name, id] of Object.entries(ext)) fake.control.createContact({ externalUserId: id, name, followedBy: name === "colleague" ? [userid("consultant"), userid("consultant2")] : userid("consultant") });

  // A customer group the consultant owns, with Siyu labels.
  await deps.db.insert(wecomGroupChats).values({ tenantId: h.tenant.id, chatId: CHAT, name: "祛痘交流群", ownerUserId: userid("consultant"), memberCount: 36, customerCount: 33 });
  expect((await api("marketing").call("PUT", `/v1/wecom/group-chats/${CHAT}/tags`, { tags: ["祛痘", "老客"] })).status).toBe(200);

  scripts = {
    care: { id: await approvedScript("术后护理提醒", "{{name}}您好，术后 24 小时内请勿沾水，按时涂药，有任何不适随时联系我。"), text: `${h.seed.tagged.name}您好，术后 24 小时内请勿沾水，按时涂药，有任何不适随时联系我。` },
    visit: { id: await approvedScript("到院须知", "您好，到院请带好身份证，提前 10 分钟到前台登记。") },
  };
}, 180_000);
afterAll(async () => {
  await h?.close();
  await fake?.close();
});

/** Open the sidebar as WeCom would, beside a chat: the fake signs the member in, the page identifies the chat. */
async function openSidebar(who: StaffKey, chat: { externalUserId?: string; chatId?: string }, path = "") {
  fake.sidebar.setChatContext({ userid: userid(who), ...chat });
  const page = await h.newPage({ viewport: PHONE });
  await page.goto(`/sidebar/${h.tenant.slug}${path}`);
  return page;
}
const ready = (page: Page) => expect.poll(() => page.locator("main").getAttribute("data-state"), { timeout: 10_000 }).toBe("ready");

describe("chat sidebar", () => {
  it("signs the consultant in through WeCom OAuth and shows the chat's customer: tags with reasons, lead grade, SLA, today's tasks", async () => {
    const codes = jsapiOf(fake.state).codes.size;
    const page = await openSidebar("consultant", { externalUserId: ext.tagged });
    await page.waitForURL(new RegExp(`/sidebar/${h.tenant.slug}/contact/${ext.tagged}$`));
    await ready(page);
    // One OAuth code was issued and used: the sign-in went through WeCom.
    expect(jsapiOf(fake.state).codes.size).toBe(codes + 1);
    expect([...jsapiOf(fake.state).codes.values()].every((c) => c.usedAtMs !== undefined)).toBe(true);
    expect(await page.getByTestId("sb-status").textContent()).toBe("已连接企业微信");
    expect(await page.getByTestId("sb-user").textContent()).toBe(`consultant ${h.tenant.slug}`);
    expect(await page.getByTestId("sb-name").textContent()).toBe(h.seed.tagged.name);
    const tag = page.locator('[data-tag="need:祛痘"]');
    expect(await tag.textContent()).toContain("祛痘");
    expect(await tag.getByTestId("sb-tag-reason").textContent()).toMatch(/^规则 need-acne（第 \d+ 版）$/);
    const lead = (await api("consultant").get(`/v1/leads/${taggedLeadId}`)).body;
    expect(await page.getByTestId("sb-grade").textContent()).toBe(lead.grade);
    expect(await page.getByTestId("sb-lead-status").textContent()).toBe("跟进中");
    expect(await page.getByTestId("sb-sla").textContent()).toMatch(/还剩|已超时|已联系/);
    // The consultant sees the phone in clear (PII rights), as on the contact page.
    const contact = (await api("consultant").get(`/v1/contacts/${h.seed.tagged.id}`)).body;
    expect(await page.getByTestId("sb-phone").textContent()).toBe(contact.phone);
    expect(await noHorizontalScroll(page)).toBe(true);
    await page.evaluate("window.scrollTo(0, 0)");
    await h.screenshot(page, "sidebar-contact");

    // The sidebar's CSP: scripts from this site and exactly the JS-SDK's origin, nothing inline.
    const res = await page.request.get(`/sidebar/${h.tenant.slug}/contact/${ext.tagged}`);
    const csp = res.headers()["content-security-policy"]!;
    expect(csp).toContain(`script-src 'self' ${fake.url};`);
    expect(csp).not.toContain("unsafe-inline");
    expect(await page.locator(`script[src="${fake.url}/wwopen/js/jwxwork-1.0.0.js"]`).count()).toBe(1);
    const html = await res.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/\sstyle=|\son[a-z]+=/i);
  });

  it("inserts an approved script into the chat through the gate; a script changed after approval is refused and nothing is sent", async () => {
    fake.sidebar.clearChatMessages();
    const page = await openSidebar("consultant", { externalUserId: ext.tagged });
    await ready(page);
    await page.locator(`button[data-script="${scripts.care.id}"]`).click();
    await expect.poll(() => page.getByTestId("sb-status").textContent()).toBe("已插入聊天：术后护理提醒");
    expect(fake.sidebar.chatMessages()).toEqual([expect.objectContaining({ userid: userid("consultant"), externalUserId: ext.tagged, msgtype: "text", message: { msgtype: "text", enterChat: true, text: { content: scripts.care.text } } })]);
    const audit = await api("admin").get(`/v1/audit?entityId=${scripts.care.id}`);
    expect(audit.body.items.map((x: { action: string }) => x.action)).toContain("post.script.release");
    expect(await page.locator(`li[data-script-row="${scripts.care.id}"] [data-testid=sb-script-note]`).textContent()).toBe("已插入聊天：术后护理提醒");
    expect(await page.locator(`button[data-script="${scripts.care.id}"]`).textContent()).toContain(scripts.care.text);

    // Marketing edits 到院须知 after approval, while the library is open.
    const edited = await api("marketing").patch(`/v1/posts/${scripts.visit.id}`, { body: "您好，到院请带好身份证，今天预约立减 500 元。" });
    expect(edited.status).toBe(200);
    await page.locator(`button[data-script="${scripts.visit.id}"]`).click();
    await expect.poll(() => page.getByTestId("sb-status").textContent()).toContain("审核通过后被修改过");
    expect(await page.locator(`li[data-script-row="${scripts.visit.id}"] [data-testid=sb-script-note]`).textContent()).toContain("已拦截、没有发送");
    await page.evaluate("window.scrollTo(0, 0)");
    await h.screenshot(page, "sidebar-scripts");
    expect(await page.locator(`button[data-script="${scripts.visit.id}"]`).getAttribute("class")).toContain("refused");
    expect(fake.sidebar.chatMessages()).toHaveLength(1);
    // Reloaded, the library no longer offers it.
    await page.reload();
    await ready(page);
    expect(await page.locator(`button[data-script="${scripts.visit.id}"]`).count()).toBe(0);
    expect(fake.sidebar.chatMessages()).toHaveLength(1);
  });

  it("records a consultation outcome in two taps: 成交 with the amount, or 流失 with a reason", async () => {
    const settings = await api("manager").get("/v1/lead-settings");
    const reason = settings.body.outcomes.lostReasons[0] as string;
    expect(reason).toBeTruthy();
    // The patient came to the clinic today: the form starts on 到院面诊 (in person).
    expect((await api("consultant").post("/v1/visits", { contactId: h.seed.lead.contactId, occurredAt: new Date().toISOString() })).status).toBe(201);

    const page = await openSidebar("consultant", { externalUserId: ext.converted });
    await ready(page);
    await page.getByText("成交", { exact: true }).click();
    expect(await page.locator("#o-mode-converted-in_person").isChecked()).toBe(true);
    await page.getByLabel("成交金额（元）").fill("12800");
    await page.evaluate("window.scrollTo(0, 0)");
    await h.screenshot(page, "sidebar-outcome");
    await Promise.all([page.waitForURL(/done=outcome/), page.getByRole("button", { name: "确认成交" }).click()]);
    expect(await page.getByTestId("sb-flash").textContent()).toBe("已记录咨询结果：已成交");
    const converted = await api("consultant").get(`/v1/leads/${h.seed.lead.id}`);
    expect(converted.body.status).toBe("converted");
    const outcome = (await api("consultant").get(`/v1/leads/${h.seed.lead.id}/timeline`)).body.items.find((i: { kind: string; type?: string }) => i.kind === "event" && i.type === "consultation_outcome");
    expect(outcome?.data).toMatchObject({ outcome: "converted", amount: 12800, mode: "in_person" });
    expect(await page.getByTestId("sb-outcome").count()).toBe(0);

    const lost = await openSidebar("consultant", { externalUserId: ext.lost });
    await ready(lost);
    await lost.getByText("流失", { exact: true }).click();
    // No visit recorded today: the form starts on 线上 (a consultation in this chat); the consultant
    // says it happened at the clinic.
    expect(await lost.locator("#o-mode-lost-online").isChecked()).toBe(true);
    await lost.locator("#o-mode-lost-in_person").check();
    await Promise.all([lost.waitForURL(/done=outcome/), lost.getByRole("button", { name: reason }).click()]);
    expect(await lost.getByTestId("sb-flash").textContent()).toBe("已记录咨询结果：已流失");
    expect((await api("consultant").get(`/v1/leads/${h.seed.secondLead.id}`)).body.status).toBe("lost");
    const lostOutcome = (await api("consultant").get(`/v1/leads/${h.seed.secondLead.id}/timeline`)).body.items.find((i: { kind: string; type?: string }) => i.kind === "event" && i.type === "consultation_outcome");
    expect(lostOutcome?.data).toMatchObject({ outcome: "lost", lostReason: reason, mode: "in_person" });
    expect(await noHorizontalScroll(lost)).toBe(true);
  });

  it("shows a refused amount next to its field", async () => {
    // A lead still open: the tagged one.
    const page = await openSidebar("consultant", { externalUserId: ext.tagged });
    await ready(page);
    await page.getByText("成交", { exact: true }).click();
    await page.getByLabel("成交金额（元）").fill("一万");
    await page.getByRole("button", { name: "确认成交" }).click();
    await expect.poll(() => page.locator("#o-amount").getAttribute("aria-invalid")).toBe("true");
    expect(await page.locator("#o-amount-err").textContent()).toBe("请填写 0 到 1 亿之间的金额");
    expect((await api("consultant").get(`/v1/leads/${taggedLeadId}`)).body.status).toBe("open");
  });

  it("shows an error state when WeCom refuses the agentConfig signature, and recovers from a ticket WeCom replaced", async () => {
    fake.sidebar.clearChatMessages();
    const page = await openSidebar("consultant", { externalUserId: ext.tagged }, `/contact/${ext.tagged}`);
    await ready(page);
    // A signature WeCom did not sign: agentConfig fails like the real one, the page says so.
    const bad = await h.newPage({ viewport: PHONE });
    await bad.route(`**/sidebar/${h.tenant.slug}/jsapi?*`, async (route) => {
      const res = await route.fetch();
      const body = (await res.json()) as { agentConfig: { signature: string } };
      body.agentConfig.signature = "0".repeat(40);
      await route.fulfill({ response: res, json: body });
    });
    await bad.goto(`/sidebar/${h.tenant.slug}/contact/${ext.tagged}`);
    await expect.poll(() => bad.locator("main").getAttribute("data-state")).toBe("error");
    expect(await bad.getByTestId("sb-error").isVisible()).toBe(true);
    expect(await bad.getByTestId("sb-error").textContent()).toContain("agentConfig:invalid signature");
    expect(await bad.locator("button[data-script]:not([disabled])").count()).toBe(0);
    expect(fake.sidebar.chatMessages()).toEqual([]);

    // WeCom replaces its tickets: the cached ones sign pages it now refuses (40093). The page reports
    // it, the server drops the stale tickets and signs again, and the page connects.
    fake.sidebar.revokeJsapiTickets();
    await page.reload();
    await ready(page);
    await page.locator(`button[data-script="${scripts.care.id}"]`).click();
    await expect.poll(() => fake.sidebar.chatMessages().length).toBe(1);
  });

  it("never shows another consultant's customer; an unknown customer gets a helpful page", async () => {
    const page = await openSidebar("consultant", { externalUserId: ext.colleague });
    await page.waitForURL(new RegExp(`/contact/${ext.colleague}$`));
    await ready(page);
    expect(await page.getByTestId("sb-unknown").isVisible()).toBe(true);
    const text = (await page.locator("main").textContent())!;
    expect(text).not.toContain(h.seed.otherOwned.name);
    expect(await page.getByTestId("sb-contact").count()).toBe(0);
    expect((await page.request.get(`/sidebar/${h.tenant.slug}/contact/${ext.colleague}`)).status()).toBe(404);
    // Their own consultant does see them (so the check above is not vacuous).
    const own = await openSidebar("consultant2", { externalUserId: ext.colleague });
    await ready(own);
    expect(await own.getByTestId("sb-name").textContent()).toBe(h.seed.otherOwned.name);

    const unknown = await openSidebar("consultant", { externalUserId: ext.unknown });
    await unknown.waitForURL(new RegExp(`/contact/${ext.unknown}$`));
    await ready(unknown);
    expect(await unknown.getByRole("heading", { level: 1 }).textContent()).toBe("找不到这位客户");
    expect(await unknown.locator("main").textContent()).toContain(ext.unknown);
    // Scripts still work with a customer Siyu does not know yet.
    expect(await unknown.locator("button[data-script]:not([disabled])").count()).toBeGreaterThan(0);
    expect(await noHorizontalScroll(unknown)).toBe(true);
    await h.screenshot(unknown, "sidebar-unknown");
    // English on the same page.
    await unknown.getByRole("link", { name: "English" }).click();
    await expect.poll(() => unknown.getByRole("heading", { level: 1 }).textContent()).toBe("Customer not found");
    expect(await unknown.locator("html").getAttribute("lang")).toBe("en");
    await ready(unknown);
  });

  it("shows a group chat with its labels, and inserts a script into the group", async () => {
    fake.sidebar.clearChatMessages();
    const page = await openSidebar("consultant", { chatId: CHAT });
    await page.waitForURL(new RegExp(`/group/${CHAT}$`));
    await ready(page);
    expect(await page.getByTestId("sb-name").textContent()).toBe("祛痘交流群");
    expect(await page.getByTestId("sb-group-tags").textContent()).toContain("老客");
    await page.locator(`button[data-script="${scripts.care.id}"]`).click();
    await expect.poll(() => fake.sidebar.chatMessages().length).toBe(1);
    // In a group {{name}} is nobody's.
    expect(fake.sidebar.chatMessages()[0]).toMatchObject({ chatId: CHAT, message: { text: { content: "您好，术后 24 小时内请勿沾水，按时涂药，有任何不适随时联系我。" } } });
  });

  it("opens directly for a consultant signed in to the console; roles without the sidebar get its 403 page, and the nav never offers it", async () => {
    const codes = jsapiOf(fake.state).codes.size;
    fake.sidebar.setChatContext({ userid: userid("consultant"), externalUserId: ext.tagged });
    const page = await h.newPage({ viewport: PHONE });
    await h.signIn(page, "consultant");
    await page.goto(`/sidebar/${h.tenant.slug}/contact/${ext.tagged}`);
    await ready(page);
    expect(jsapiOf(fake.state).codes.size).toBe(codes);

    for (const who of ["reviewer", "marketing"] as const) {
      const p = await h.newPage({ viewport: PHONE });
      await h.signIn(p, who);
      expect(await p.locator('nav#sidenav a[href^="/sidebar"]').count()).toBe(0);
      const res = await p.goto(`/sidebar/${h.tenant.slug}/contact/${ext.tagged}`);
      expect(res?.status()).toBe(403);
      expect(await p.getByTestId("sb-error-page").textContent()).toContain(who === "reviewer" ? "合规审核" : "运营");
      expect(await p.locator("main").textContent()).not.toContain(h.seed.tagged.name);
      const release = await p.request.post(`/sidebar/${h.tenant.slug}/scripts/${scripts.care.id}/release`, { data: { contentHash: "0".repeat(64) }, headers: { origin: h.baseUrl } });
      expect(release.status()).toBe(403);
    }
    // Signed out: the JSON endpoints answer 401, pages go to WeCom sign-in.
    const anon = await h.newPage({ viewport: PHONE });
    expect((await anon.request.get(`/sidebar/${h.tenant.slug}/jsapi?url=x`)).status()).toBe(401);
    const entry = await anon.request.get(`/sidebar/${h.tenant.slug}`, { maxRedirects: 0 });
    expect(entry.status()).toBe(302);
    expect(entry.headers().location).toMatch(new RegExp(`^${fake.url}/connect/oauth2/authorize\\?appid=${wecom.corpId}&redirect_uri=`));
  });
});
