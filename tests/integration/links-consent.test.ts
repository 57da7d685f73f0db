/**
 * Tracked links and consent (issue 7, acceptance 6 and 8), against real PostgreSQL and Redis with
 * the events worker running: link rewriting, the redirect and its article_read event moving a need
 * tag, robots and repeats not counted, the dwell beacon; opt-out by message (退订), by deleting the
 * consultant (a signed WeCom callback), by staff; the gate refusing marketing to opted-out contacts.
 */
import { and, desc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditLog, consents, contacts, events, sends, trackedLinks } from "../../src/db/schema/index";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { allowedRecipients, optIn, optOut } from "../../src/services/consent/consent";
import { systemCtx } from "../../src/services/context";
import { trackLinks } from "../../src/services/links/track";
import { assertSendable, SendRefused } from "../../src/services/posts/posts";
import { client, createTestTenant, type StaffKey, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";
import { contactEventXml, signedCallback, testWecomApp, type TestWecomApp } from "../helpers/wecom";

let t: TestRuntime;
let tenant: TestTenant;
let wecom: TestWecomApp;
let workers: RunningWorker[] = [];

const PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2f) NetType/WIFI Language/zh_CN";

beforeAll(async () => {
  t = await createTestRuntime({ PUBLIC_URL: "https://siyu.example.cn" });
  tenant = await createTestTenant(t.rt.deps);
  wecom = testWecomApp();
  expect((await client(t.app, tenant.tokens.admin).call("PUT", "/v1/wecom/settings", wecom)).status).toBe(200);
  workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["events", "wecom"]);
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await t?.close();
});

const as = (who: StaffKey) => client(t.app, tenant.tokens[who]);
const ctx = () => systemCtx(t.rt.deps, tenant.id, "test");
const db = () => t.rt.deps.db;
let n = 0;
const uniq = () => `${Date.now()}${++n}`;

async function newContact(owner: StaffKey = "consultant", extra: object = {}): Promise<string> {
  const res = await as(owner).post("/v1/contacts", { name: "测试患者", ...extra });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id;
}

async function draftPost(body = "本周护肤小课堂，欢迎阅读。"): Promise<{ id: string; contentHash: string }> {
  const res = await as("marketing").post("/v1/posts", { kind: "community_post", body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

async function approvedPost(body: string): Promise<{ id: string; contentHash: string; body: string }> {
  const p = await draftPost(body);
  expect((await as("marketing").post(`/v1/posts/${p.id}/submit`)).status).toBe(200);
  const r = await as("reviewer").post(`/v1/posts/${p.id}/reviews`, { decision: "approve", contentHash: p.contentHash });
  expect(r.body.status, JSON.stringify(r.body)).toBe("approved");
  return { ...p, body };
}

async function newSend(postId: string, contactId: string): Promise<string> {
  const [row] = await db().insert(sends).values({ tenantId: tenant.id, postId, contactId, scheduledAt: new Date() }).returning({ id: sends.id });
  return row!.id;
}

/** A send of a fresh post to the contact, with its copy rewritten: the codes by URL. */
async function tracked(contactId: string, text: string, articles?: Record<string, { articleId: string; topic?: string }>) {
  const post = await draftPost();
  const sendId = await newSend(post.id, contactId);
  const out = await db().transaction((tx) => trackLinks(tx, ctx(), { sendId, postId: post.id, contactId, text, articles }));
  const rows = await db().select().from(trackedLinks).where(eq(trackedLinks.sendId, sendId));
  return { out, sendId, postId: post.id, codes: Object.fromEntries(rows.map((r) => [r.url, r.code])) as Record<string, string> };
}

const link = async (code: string) => (await db().select().from(trackedLinks).where(eq(trackedLinks.code, code)))[0]!;
const linkEvents = (contactId: string) =>
  db()
    .select()
    .from(events)
    .where(and(eq(events.contactId, contactId), eq(events.type, "article_read")))
    .orderBy(events.occurredAt);
const open = (code: string, ua: string | null = PHONE_UA, method = "GET") => t.app.request(`/l/${code}`, { method, headers: ua === null ? {} : { "user-agent": ua }, redirect: "manual" });

async function processed(eventId: string) {
  return waitFor(async () => (await db().select().from(events).where(eq(events.id, eventId)))[0]?.processedAt, { what: `event ${eventId} processed` });
}

describe("trackLinks", () => {
  it("rewrites every URL in Chinese copy to a short per-send link, leaving punctuation alone, and reuses the codes on retry", async () => {
    const contactId = await newContact();
    const text = "【祛痘季】新文章：https://clinic.example.cn/a/acne?id=1，点击查看！另见https://mp.weixin.qq.com/s/AbC-123。再看一次https://clinic.example.cn/a/acne?id=1（完）";
    const { out, sendId, postId, codes } = await tracked(contactId, text, { "https://clinic.example.cn/a/acne?id=1": { articleId: "acne-101", topic: "祛痘" } });
    expect(Object.keys(codes).sort()).toEqual(["https://clinic.example.cn/a/acne?id=1", "https://mp.weixin.qq.com/s/AbC-123"]);
    for (const code of Object.values(codes)) expect(code).toMatch(/^[A-Za-z0-9_-]{10}$/);
    const a = codes["https://clinic.example.cn/a/acne?id=1"]!;
    const b = codes["https://mp.weixin.qq.com/s/AbC-123"]!;
    expect(out).toBe(`【祛痘季】新文章：https://siyu.example.cn/l/${a}，点击查看！另见https://siyu.example.cn/l/${b}。再看一次https://siyu.example.cn/l/${a}（完）`);
    expect(await link(a)).toMatchObject({ tenantId: tenant.id, sendId, postId, contactId, articleId: "acne-101", topic: "祛痘", clicks: 0 });
    expect(await link(b)).toMatchObject({ articleId: null, topic: null });
    // A retried delivery gets the same text: same codes, no new rows.
    const again = await db().transaction((tx) => trackLinks(tx, ctx(), { sendId, postId, contactId, text }));
    expect(again).toBe(out);
    expect(await db().select().from(trackedLinks).where(eq(trackedLinks.sendId, sendId))).toHaveLength(2);
    // Another recipient's send gets codes of its own.
    const other = await tracked(contactId, text);
    expect(other.codes["https://mp.weixin.qq.com/s/AbC-123"]).not.toBe(b);
    // A link card's url (the text is one URL) is tracked whole, raw Chinese included, and redirects percent-encoded.
    const card = await tracked(contactId, "https://clinic.example.cn/文章/祛痘?x=1");
    const cardCode = card.codes["https://clinic.example.cn/文章/祛痘?x=1"]!;
    expect(card.out).toBe(`https://siyu.example.cn/l/${cardCode}`);
    expect((await open(cardCode)).headers.get("location")).toBe("https://clinic.example.cn/%E6%96%87%E7%AB%A0/%E7%A5%9B%E7%97%98?x=1");
    // No URL: the text as it was.
    expect(await db().transaction((tx) => trackLinks(tx, ctx(), { sendId, postId, contactId, text: "今天天气不错。" }))).toBe("今天天气不错。");
  });
});

describe("GET /l/{code}", () => {
  it("redirects, stores an article_read before answering, and the events worker tags the need (祛痘)", async () => {
    const contactId = await newContact();
    const url = "https://clinic.example.cn/a/acne?id=7#top";
    const { codes, sendId } = await tracked(contactId, `新文章${url}，欢迎阅读`, { [url]: { articleId: "acne-7", topic: "祛痘" } });
    const code = codes[url]!;
    const res = await open(code);
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe(`https://clinic.example.cn/a/acne?id=7&siyu_l=${code}#top`);
    expect(res.headers.get("cache-control")).toBe("no-store");
    // Stored before the redirect answered.
    const evs = await linkEvents(contactId);
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ source: "link", idempotencyKey: `link-${code}-1`, payload: expect.objectContaining({ articleId: "acne-7", topic: "祛痘", linkCode: code, sendId }) });
    const row = await link(code);
    expect(row.clicks).toBe(1);
    expect(row.firstClickAt).not.toBeNull();
    expect(row.lastClickAt?.getTime()).toBe(row.firstClickAt?.getTime());
    await processed(evs[0]!.id);
    const tags = await as("admin").get(`/v1/contacts/${contactId}/tags`);
    expect(tags.body.tags).toEqual(expect.arrayContaining([expect.objectContaining({ group: "need", name: "祛痘", reason: expect.objectContaining({ eventId: evs[0]!.id }) })]));
  });

  it("counts a double tap once, and a click after the window again", async () => {
    const contactId = await newContact();
    const { codes } = await tracked(contactId, "看https://x.example.cn/p");
    const code = codes["https://x.example.cn/p"]!;
    expect((await open(code)).status).toBe(302);
    expect((await open(code)).status).toBe(302);
    expect((await link(code)).clicks).toBe(1);
    expect(await linkEvents(contactId)).toHaveLength(1);
    // Plain URLs (no declared article) redirect exactly as written and report the URL as the article.
    expect((await linkEvents(contactId))[0]!.payload).toMatchObject({ articleId: "https://x.example.cn/p" });
    await db().update(trackedLinks).set({ lastClickAt: new Date(Date.now() - 2 * 60_000) }).where(eq(trackedLinks.code, code));
    const res = await open(code);
    expect(res.headers.get("location")).toBe("https://x.example.cn/p");
    expect((await link(code)).clicks).toBe(2);
    expect((await linkEvents(contactId)).map((e) => e.idempotencyKey)).toEqual([`link-${code}-1`, `link-${code}-2`]);
  });

  it("redirects link-preview robots, HEAD requests and callers without a User-Agent without counting them", async () => {
    const contactId = await newContact();
    const { codes } = await tracked(contactId, "看https://x.example.cn/bots");
    const code = codes["https://x.example.cn/bots"]!;
    for (const ua of ["facebookexternalhit/1.1", "Mozilla/5.0 (compatible; Bytespider; spider-feedback@bytedance.com)", "TelegramBot (like TwitterBot)", "curl/8.4.0", null]) {
      const res = await open(code, ua);
      expect(res.status).toBe(302);
      expect(res.headers.get("location")).toBe("https://x.example.cn/bots");
    }
    expect((await open(code, PHONE_UA, "HEAD")).status).toBe(302);
    expect(await link(code)).toMatchObject({ clicks: 0, firstClickAt: null });
    expect(await linkEvents(contactId)).toHaveLength(0);
  });

  it("answers an unknown or malformed code with a friendly Chinese 404 page, without auth", async () => {
    for (const code of ["AAAAAAAAAA", "x", "%E4%BD%A0%E5%A5%BD", "a'b--c"]) {
      const res = await open(code);
      expect(res.status).toBe(404);
      expect(res.headers.get("content-type")).toMatch(/text\/html/);
      expect(await res.text()).toContain("链接已失效");
    }
  });
});

describe("dwell beacon", () => {
  it("records dwell time as an article_read of the same article, once per click; validates seconds", async () => {
    const contactId = await newContact();
    const url = "https://clinic.example.cn/a/whitening";
    const { codes } = await tracked(contactId, `美白知识${url}`, { [url]: { articleId: "white-1", topic: "美白" } });
    const code = codes[url]!;
    // Before any click there is nothing to attach it to.
    const early = await t.app.request(`/l/${code}/dwell`, { method: "POST", body: JSON.stringify({ seconds: 5 }), headers: { "content-type": "application/json" } });
    expect(early.status).toBe(204);
    expect(await linkEvents(contactId)).toHaveLength(0);
    await open(code);
    for (const bad of [{ seconds: -1 }, { seconds: 90_000 }, { seconds: "abc" }, {}]) {
      const res = await t.app.request(`/l/${code}/dwell`, { method: "POST", body: JSON.stringify(bad), headers: { "content-type": "application/json" } });
      expect(res.status, JSON.stringify(bad)).toBe(422);
    }
    // navigator.sendBeacon(url, "95") posts text/plain.
    const res = await t.app.request(`/l/${code}/dwell`, { method: "POST", body: "95", headers: { "content-type": "text/plain;charset=UTF-8" } });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    const again = await t.app.request(`/l/${code}/dwell?seconds=300`);
    expect(again.status).toBe(204);
    const evs = await linkEvents(contactId);
    expect(evs).toHaveLength(2);
    expect(evs[1]).toMatchObject({ idempotencyKey: `link-${code}-1-dwell`, payload: expect.objectContaining({ articleId: "white-1", topic: "美白", dwellSeconds: 95 }) });
    expect(evs[0]!.payload).not.toHaveProperty("dwellSeconds");
    await processed(evs[1]!.id);
    expect((await t.app.request("/l/AAAAAAAAAA/dwell?seconds=3")).status).toBe(404);
  });
});

describe("opt-out by message (退订)", () => {
  it("opts the contact out from a 退订 reply, recording the event; 不退订 does not", async () => {
    const yes = await newContact();
    const no = await newContact();
    const at = new Date(Date.now() - 60_000).toISOString();
    const res = await as("admin").post("/v1/events", {
      events: [
        { type: "message_received", contactId: yes, occurredAt: at, idempotencyKey: `m-${uniq()}`, data: { text: "退订，谢谢！" } },
        { type: "message_received", contactId: no, occurredAt: at, idempotencyKey: `m-${uniq()}`, data: { text: "不退订，想问下祛痘多少钱" } },
      ],
    });
    expect(res.status).toBe(202);
    await processed(res.body.ids[0]);
    await processed(res.body.ids[1]);
    const rows = await db().select().from(consents).where(eq(consents.contactId, yes));
    expect(rows).toEqual([expect.objectContaining({ status: "revoked", source: "message", eventId: res.body.ids[0], actorStaffId: null })]);
    expect(rows[0]!.at.toISOString()).toBe(at);
    const view = await as("consultant").get(`/v1/contacts/${yes}`);
    expect(view.body.marketingOptOutAt).toBe(at);
    expect((await as("consultant").get(`/v1/contacts/${no}`)).body.marketingOptOutAt).toBeNull();
    expect(await db().select().from(consents).where(eq(consents.contactId, no))).toHaveLength(0);
    const [audit] = await db().select().from(auditLog).where(and(eq(auditLog.entityId, yes), eq(auditLog.action, "contact.opt_out")));
    expect(audit).toMatchObject({ actorKind: "system", after: expect.objectContaining({ source: "message", eventId: res.body.ids[0] }) });
  });
});

describe("opt-out by deleting the consultant", () => {
  it("a del_follow_user callback with no consultant left opts the contact out (source wecom_delete)", async () => {
    const ext = `wmOptOut${uniq()}`;
    const s = signedCallback(wecom, contactEventXml(wecom.corpId, "del_follow_user", { userId: `consultant-${tenant.slug}`, externalUserId: ext }));
    const res = await t.app.request(`/wecom/callback/${tenant.slug}?${s.query}`, { method: "POST", body: s.body, headers: { "content-type": "text/xml" } });
    expect(res.status).toBe(200);
    const row = await waitFor(
      async () => {
        const [c] = await db().select().from(contacts).where(and(eq(contacts.tenantId, tenant.id), eq(contacts.externalUserId, ext)));
        return c?.marketingOptOutAt ? c : null;
      },
      { what: "opt-out from the callback" },
    );
    const [ev] = await db().select().from(events).where(eq(events.contactId, row.id));
    expect(ev).toMatchObject({ type: "contact_deleted", payload: expect.objectContaining({ by: "contact", remainingFollows: 0 }) });
    expect(await db().select().from(consents).where(eq(consents.contactId, row.id))).toEqual([expect.objectContaining({ status: "revoked", source: "wecom_delete", eventId: ev!.id })]);
  });

  it("does not opt out while another consultant remains, nor when staff removed the customer", async () => {
    const a = await newContact();
    const b = await newContact();
    const at = new Date(Date.now() - 30_000).toISOString();
    const res = await as("admin").post("/v1/events", {
      events: [
        { type: "contact_deleted", contactId: a, occurredAt: at, idempotencyKey: `d-${uniq()}`, data: { by: "contact", remainingFollows: 1 } },
        { type: "contact_deleted", contactId: b, occurredAt: at, idempotencyKey: `d-${uniq()}`, data: { by: "staff", remainingFollows: 0 } },
      ],
    });
    await processed(res.body.ids[0]);
    await processed(res.body.ids[1]);
    const rows = await db().select().from(contacts).where(and(eq(contacts.tenantId, tenant.id)));
    expect(rows.filter((r) => (r.id === a || r.id === b) && r.marketingOptOutAt)).toEqual([]);
  });
});

describe("staff opt-out and opt-in", () => {
  it("records both with time, source and actor, audits them, and lists the history newest first; other consultants get 404", async () => {
    const contactId = await newContact("consultant");
    const out = await as("consultant").post(`/v1/contacts/${contactId}/opt-out`, { note: "患者电话里要求不再发送活动消息" });
    expect(out.status, JSON.stringify(out.body)).toBe(200);
    expect(out.body).toMatchObject({ contactId, optedOut: true, changed: true, marketingOptOutAt: expect.any(String) });
    // Again: already out, nothing recorded.
    expect((await as("consultant").post(`/v1/contacts/${contactId}/opt-out`)).body).toMatchObject({ optedOut: true, changed: false });
    expect((await as("consultant2").post(`/v1/contacts/${contactId}/opt-out`, {})).status).toBe(404);
    expect((await as("consultant2").post(`/v1/contacts/${contactId}/opt-in`, {})).status).toBe(404);
    expect((await as("consultant2").get(`/v1/contacts/${contactId}/consents`)).status).toBe(404);
    expect((await as("reviewer").post(`/v1/contacts/${contactId}/opt-in`, {})).status).toBe(403);
    const bad = await as("consultant").post(`/v1/contacts/${contactId}/opt-in`, { note: "x".repeat(501) });
    expect(bad.status).toBe(422);
    expect(bad.body.errors[0].field).toBe("note");
    const back = await as("manager").post(`/v1/contacts/${contactId}/opt-in`, { note: "患者要求恢复接收" });
    expect(back.body).toMatchObject({ optedOut: false, changed: true, marketingOptOutAt: null });
    const history = await as("consultant").get(`/v1/contacts/${contactId}/consents`);
    expect(history.status).toBe(200);
    expect(history.body.marketingOptOutAt).toBeNull();
    expect(history.body.items).toEqual([
      expect.objectContaining({ status: "granted", source: "staff", actorStaffId: tenant.staff.manager.id, actorName: `manager ${tenant.slug}`, note: "患者要求恢复接收" }),
      expect.objectContaining({ status: "revoked", source: "staff", actorStaffId: tenant.staff.consultant.id, note: "患者电话里要求不再发送活动消息" }),
    ]);
    const audits = await db().select().from(auditLog).where(eq(auditLog.entityId, contactId)).orderBy(desc(auditLog.at));
    expect(audits.filter((a) => a.action.startsWith("contact.opt_")).map((a) => [a.action, a.actorStaffId])).toEqual([
      ["contact.opt_in", tenant.staff.manager.id],
      ["contact.opt_out", tenant.staff.consultant.id],
    ]);
  });

  it("lets a later decision win over a late-arriving request (events out of order)", async () => {
    const contactId = await newContact();
    await db().transaction((tx) => optOut(tx, ctx(), { contactId, source: "staff" }));
    await db().transaction((tx) => optIn(tx, ctx(), { contactId, source: "staff" }));
    const late = await db().transaction((tx) => optOut(tx, ctx(), { contactId, source: "message", at: new Date(Date.now() - 3600_000) }));
    expect(late).toMatchObject({ changed: false, marketingOptOutAt: null });
  });
});

describe("the gate's recipient check", () => {
  it("refuses a marketing send to an opted-out contact (audited) and allows a service send", async () => {
    const post = await approvedPost("本月会员日护肤活动，欢迎到院。");
    const outId = await newContact();
    const inId = await newContact();
    await as("admin").post(`/v1/contacts/${outId}/opt-out`, { note: "退订" });
    const send = async (contactId: string, service: boolean): Promise<string | null> => {
      try {
        await db().transaction((tx) => assertSendable(tx, { ...ctx(), tx }, post.id, { title: null, body: post.body }, { contactId, service }));
        return null;
      } catch (err) {
        if (err instanceof SendRefused) return err.message;
        throw err;
      }
    };
    expect(await send(outId, false)).toMatch(/opted out of marketing/);
    expect(await send(outId, true)).toBeNull();
    expect(await send(inId, false)).toBeNull();
    // Existing callers (no recipient) are unchanged.
    await db().transaction((tx) => assertSendable(tx, { ...ctx(), tx }, post.id, { title: null, body: post.body }));
    const [refusal] = await db().select().from(auditLog).where(and(eq(auditLog.entityId, post.id), eq(auditLog.action, "post.send.refused")));
    expect(refusal!.after).toMatchObject({ contactId: outId, service: false, reason: expect.stringMatching(/opted out/) });
    const r = await db().transaction((tx) => allowedRecipients(tx, ctx(), [outId, inId], { service: false }));
    expect(r).toEqual({ allowed: [inId], refused: [{ contactId: outId, reason: expect.stringMatching(/opted out/) }] });
    expect(await db().transaction((tx) => allowedRecipients(tx, ctx(), [outId, inId], { service: true }))).toEqual({ allowed: [outId, inId], refused: [] });
  });
});
