import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import { and, eq, inArray, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rowsOf } from "../../src/db/client";
import { auditLog, calendarEnrollments, calendarEntries, calendars, contacts, posts, sendQuota, sends, staffNotifications, wecomGroupChats } from "../../src/db/schema/index";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { systemCtx, type Ctx } from "../../src/services/context";
import { deliverBatch } from "../../src/services/delivery/deliver";
import { planEntry, planPending } from "../../src/services/delivery/plan-entry";
import { previewCalendar } from "../../src/services/delivery/preview";
import { reconcileInterrupted, RECONCILE_AFTER_MS } from "../../src/services/delivery/reconcile";
import { pollMessage } from "../../src/services/delivery/results";
import { sweepDelivery } from "../../src/services/delivery/sweep";
import { batchJobId, pendingBatches, pollJobId, type BatchKey } from "../../src/services/delivery/timers";
import { createPost, gateCheck, reviewPost, submitPost, updatePost } from "../../src/services/posts/posts";
import { WecomClient } from "../../src/wecom/api/client";
import { WecomNetworkError } from "../../src/wecom/api/errors";
import { startFakeWecom, type RunningFakeWecom } from "../../src/wecom/fake/index";
import { isUniqueViolation } from "../../src/errors";
import { client, createTestTenant, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";
import { testWecomApp } from "../helpers/wecom";

/**
 * Scheduling and delivery against the real PostgreSQL, Redis (BullMQ delayed jobs, the delivery
 * worker) and the fake WeCom over HTTP. The services' clock and the fake's run `skewMs` ahead of
 * the real one (BullMQ's delays run on the real clock: tests promote the jobs they wait for).
 */
let t: TestRuntime;
let fake: RunningFakeWecom;
let tenant: TestTenant;
let workers: RunningWorker[] = [];
/**
 * The real time, or the next 09:00 in Shanghai when that is outside 09:00-20:00 there: the tests
 * send entries due "in a minute", which the calendars' default quiet hours (21:00-08:30) would
 * move to the next morning. Always ahead of the real clock, so rows stamped by the database are in
 * the test's past.
 */
function awake(): number {
  const t = Date.now();
  const local = new Date(t + 8 * 3_600_000);
  const hour = local.getUTCHours();
  if (hour >= 9 && hour < 20) return t;
  const next = Date.UTC(local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate() + (hour >= 20 ? 1 : 0), 9) - 8 * 3_600_000;
  return next;
}
let skewMs = awake() - Date.now();
const app = testWecomApp();
const db = () => t.rt.deps.db;
const now = () => new Date(Date.now() + skewMs);
const setNow = (at: Date | number) => {
  skewMs = new Date(at).getTime() - Date.now();
};
let userA: string;
let userB: string;

beforeAll(async () => {
  fake = await startFakeWecom({ corpId: app.corpId, agentId: app.agentId, secret: app.secret, callbackToken: app.callbackToken, encodingAesKey: app.encodingAesKey, now });
  t = await createTestRuntime({}, { wecomBaseUrl: fake.url, now });
  tenant = await createTestTenant(t.rt.deps);
  expect((await client(t.app, tenant.tokens.admin).call("PUT", "/v1/wecom/settings", app)).status).toBe(200);
  userA = `consultant-${tenant.slug}`;
  userB = `consultant2-${tenant.slug}`;
  fake.control.createStaff({ userid: userA, name: "张顾问" });
  fake.control.createStaff({ userid: userB, name: "刘顾问" });
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await fake?.close();
  await t?.close();
});

const sys = (): Ctx => systemCtx(t.rt.deps, tenant.id, "test");
const staffCtx = (key: "marketing" | "reviewer" | "admin"): Ctx => ({ ...sys(), actor: { kind: "staff", staffId: tenant.staff[key].id, role: key, name: key, via: "token" } });

/** Contacts owned by a consultant, each a WeCom customer of theirs in the fake; `source` makes a segment of them. */
async function newContacts(n: number, o: { owner?: "consultant" | "consultant2"; source?: string; optOut?: boolean; birthday?: string } = {}) {
  const owner = o.owner ?? "consultant";
  const source = o.source ?? `s${randomBytes(4).toString("hex")}`;
  const rows = [];
  for (let i = 0; i < n; i++) {
    const ext = `wm${randomBytes(15).toString("hex")}`;
    fake.control.createContact({ externalUserId: ext, name: `客户${i}`, followedBy: owner === "consultant" ? userA : userB });
    rows.push({ tenantId: tenant.id, name: `客户${i}`, externalUserId: ext, source, ownerStaffId: tenant.staff[owner].id, marketingOptOutAt: o.optOut ? new Date(Date.now() - 86_400_000) : null, attributes: o.birthday ? { birthday: o.birthday } : {} });
  }
  const inserted = await db().insert(contacts).values(rows).returning();
  return { source, contacts: inserted };
}

/** A post approved by the tenant's reviewer (community_post: one level). */
async function approvedPost(body: string) {
  const p = await createPost({ ctx: staffCtx("marketing"), input: { kind: "community_post", body } });
  await submitPost({ ctx: staffCtx("marketing"), id: p.id });
  return reviewPost({ ctx: staffCtx("reviewer"), id: p.id, input: { decision: "approve", contentHash: p.contentHash } });
}

interface EntrySpec {
  key: string;
  when: Record<string, unknown>;
  template: string;
  channel?: "single" | "group";
  service?: boolean;
  conditions?: { skipIf?: string; onlyIf?: string };
  ownerStaffId?: string;
  link?: { url: string; title: string };
  miniprogram?: { appId: string; page: string; title: string; picUrl?: string };
  /** Leave the entry without an approved post (a draft calendar's entry). */
  noPost?: boolean;
}

/** A published calendar (as the calendar service stores one): definition, entries and their approved posts. */
async function calendar(o: { kind?: "dated" | "relative"; timeZone?: string; quietHours?: { start: string; end: string }; audience: Record<string, unknown>; entries: EntrySpec[]; status?: "draft" | "published" }) {
  const key = `cal-${randomBytes(4).toString("hex")}`;
  const definition = {
    name: key,
    timeZone: o.timeZone ?? "Asia/Shanghai",
    quietHours: o.quietHours ?? { start: "21:00", end: "08:30" },
    audience: o.audience,
    variables: {},
    entries: o.entries.map((e) => ({ key: e.key, when: e.when, kind: e.link ? "article" : e.miniprogram ? "miniprogram" : "text", channel: e.channel ?? "single", service: e.service ?? false, template: e.template, variables: {}, ...(e.conditions ? { conditions: e.conditions } : {}), ...(e.link ? { link: e.link } : {}), ...(e.miniprogram ? { miniprogram: e.miniprogram } : {}) })),
  };
  const [cal] = await db()
    .insert(calendars)
    .values({ tenantId: tenant.id, key, name: key, source: "api", kind: o.kind ?? "dated", definition, contentHash: key, version: 1, status: o.status ?? "published", publishedAt: now() })
    .returning();
  const ids: Record<string, { entryId: string; postId: string | null }> = {};
  if ((o.status ?? "published") === "published") {
    for (const e of o.entries) {
      const post = e.noPost ? null : await approvedPost(e.template);
      const [row] = await db()
        .insert(calendarEntries)
        .values({ tenantId: tenant.id, calendarId: cal!.id, key: e.key, when: e.when, kind: "text", channel: e.channel ?? "single", postId: post?.id ?? null, ownerStaffId: e.ownerStaffId ?? null, conditions: e.conditions ?? null, service: e.service ?? false, calendarVersion: 1 })
        .returning();
      ids[e.key] = { entryId: row!.id, postId: post?.id ?? null };
    }
  }
  return { calendarId: cal!.id, ids };
}

const sendsOf = (postId: string) => db().select().from(sends).where(eq(sends.postId, postId));
const ledger = (contactIds: string[]) => db().select().from(sendQuota).where(inArray(sendQuota.contactId, contactIds));
const massFor = (text: string) => [...fake.state.massMessages.values()].filter((m) => m.text?.content.includes(text));
/** "2026-12-01 10:00" in a zone -> the local date-time written in a calendar. */
const local = (d: Date, tz = "Asia/Shanghai") => new Intl.DateTimeFormat("sv-SE", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(d).replace(" ", "T");
/** The next whole minute of the services' clock, a minute or two ahead. */
const nextMinute = () => new Date(Math.ceil((now().getTime() + 60_000) / 60_000) * 60_000);
const keysOf = async (postId: string): Promise<BatchKey[]> => pendingBatches(db(), { tenantId: tenant.id, postId });
const deliveryQueue = () => t.rt.deps.producer.queue("delivery");

describe("planning", () => {
  it("schedules in the calendar's time zone and moves sends out of quiet hours to their end", async () => {
    setNow(new Date("2026-11-30T02:00:00Z"));
    try {
      const { source, contacts: cs } = await newContacts(3);
      // 22:30 in Shanghai is quiet (21:00-08:30): 08:30 the next morning. 09:00 in Tokyo is 08:00 UTC+8... written as Tokyo time.
      const sh = await calendar({ audience: { segment: `source = "${source}"` }, entries: [{ key: "late-tip", when: { date: "2026-12-01", time: "22:30" }, template: "晚间护肤小贴士" }] });
      const tk = await calendar({ timeZone: "Asia/Tokyo", quietHours: { start: "22:00", end: "07:00" }, audience: { segment: `source = "${source}"` }, entries: [{ key: "tokyo", when: { date: "2026-12-03", time: "09:00" }, template: "东京时间九点的消息" }] });
      const r1 = await planEntry({ ctx: sys(), id: sh.ids["late-tip"]!.entryId });
      expect(r1).toMatchObject({ outcome: "planned", planned: 3, skipped: 0, movedQuiet: 3 });
      const rows = await sendsOf(sh.ids["late-tip"]!.postId!);
      expect(rows.map((r) => r.scheduledAt.toISOString())).toEqual(Array(3).fill("2026-12-02T00:30:00.000Z"));
      expect(rows.every((r) => r.status === "planned" && r.senderStaffId === tenant.staff.consultant.id && r.calendarId === sh.calendarId)).toBe(true);
      await planEntry({ ctx: sys(), id: tk.ids["tokyo"]!.entryId });
      const tokyo = await sendsOf(tk.ids["tokyo"]!.postId!);
      // 09:00 in Tokyo (UTC+9) = 00:00 UTC; its ledger day is the tenant's (Shanghai) day, 2026-12-03.
      expect(tokyo.map((r) => r.scheduledAt.toISOString())).toEqual(Array(3).fill("2026-12-03T00:00:00.000Z"));
      expect((await ledger(cs.map((c) => c.id))).map((l) => String(l.day)).sort()).toEqual([...Array(3).fill("2026-12-02"), ...Array(3).fill("2026-12-03")]);

      // Relative: day 1 at 07:00 after an enrollment on 11-30 10:00 local is 12-01 07:00, quiet until 08:30.
      const rel = await calendar({ kind: "relative", audience: { enrollment: {} }, entries: [{ key: "day1", when: { day: 1, time: "07:00" }, template: "术后第一天注意事项", service: true }] });
      await db().insert(calendarEnrollments).values(cs.map((c) => ({ tenantId: tenant.id, calendarId: rel.calendarId, contactId: c.id, enrolledAt: new Date("2026-11-30T02:00:00Z"), source: "api" })));
      const r3 = await planEntry({ ctx: sys(), id: rel.ids["day1"]!.entryId });
      expect(r3).toMatchObject({ planned: 3, movedQuiet: 3 });
      const relRows = await sendsOf(rel.ids["day1"]!.postId!);
      expect(relRows.map((r) => r.scheduledAt.toISOString())).toEqual(Array(3).fill("2026-12-01T00:30:00.000Z"));
      expect(relRows.every((r) => r.service && r.enrollmentId)).toBe(true);
    } finally {
      setNow(awake());
    }
  });

  it("plans birthday entries per contact (daysBefore their next birthday), within the horizon", async () => {
    setNow(new Date("2026-06-10T02:00:00Z"));
    try {
      const { source, contacts: soon } = await newContacts(2, { birthday: "1990-06-13" });
      const { contacts: later } = await newContacts(1, { birthday: "08-20", source });
      const cal = await calendar({ audience: { segment: `source = "${source}"` }, entries: [{ key: "bday", when: { birthday: true, daysBefore: 1, time: "10:00" }, template: "生日快乐！会员生日月专享护理一次。" }] });
      expect(await planEntry({ ctx: sys(), id: cal.ids["bday"]!.entryId })).toMatchObject({ planned: 2, skipped: 0 });
      const rows = await sendsOf(cal.ids["bday"]!.postId!);
      expect(rows.map((r) => r.contactId).sort()).toEqual(soon.map((c) => c.id).sort());
      expect(rows.map((r) => r.scheduledAt.toISOString())).toEqual(Array(2).fill("2026-06-12T02:00:00.000Z"));
      expect(rows.some((r) => r.contactId === later[0]!.id)).toBe(false);
    } finally {
      setNow(awake());
    }
  });

  it("records opted-out, deleted, non-WeCom and condition-matched contacts as skipped with the reason; opted-out ones still get service entries", async () => {
    const { source, contacts: ok } = await newContacts(2);
    const { contacts: opted } = await newContacts(2, { optOut: true, source });
    const [gone] = await db().insert(contacts).values({ tenantId: tenant.id, name: "已删除", externalUserId: `wm${randomBytes(15).toString("hex")}`, source, ownerStaffId: tenant.staff.consultant.id, deletedAt: new Date() }).returning();
    const [noWecom] = await db().insert(contacts).values({ tenantId: tenant.id, name: "导入", source, ownerStaffId: tenant.staff.consultant.id }).returning();
    const [noOwner] = await db().insert(contacts).values({ tenantId: tenant.id, name: "无顾问", externalUserId: `wm${randomBytes(15).toString("hex")}`, source }).returning();
    const [vip] = await db().insert(contacts).values({ tenantId: tenant.id, name: "已到诊", externalUserId: `wm${randomBytes(15).toString("hex")}`, source: source, ownerStaffId: tenant.staff.consultant.id, gender: "male" }).returning();
    const at = local(new Date(now().getTime() + 2 * 86_400_000)).slice(0, 10);
    const cal = await calendar({
      audience: { segment: `source = "${source}"` },
      entries: [
        { key: "promo", when: { date: at, time: "10:00" }, template: "本周会员活动，欢迎到院咨询。", conditions: { skipIf: 'gender = "male"' } },
        { key: "care", when: { date: at, time: "11:00" }, template: "温馨提示：术后请注意防晒。", service: true },
      ],
    });
    const promo = await planEntry({ ctx: sys(), id: cal.ids["promo"]!.entryId });
    expect(promo).toMatchObject({ outcome: "planned", planned: 2, skipped: 6 });
    const rows = await sendsOf(cal.ids["promo"]!.postId!);
    const by = (id: string) => rows.find((r) => r.contactId === id)!;
    for (const c of ok) expect(by(c.id)).toMatchObject({ status: "planned", reason: null });
    for (const c of opted) expect(by(c.id).reason).toMatch(/opted out of marketing \(退订\)/);
    expect(by(gone!.id)).toMatchObject({ status: "skipped", reason: expect.stringContaining("removed the consultant") });
    expect(by(noWecom!.id)).toMatchObject({ status: "skipped", reason: expect.stringContaining("not a WeCom contact") });
    expect(by(noOwner!.id)).toMatchObject({ status: "skipped", reason: expect.stringContaining("no sender") });
    expect(by(vip!.id)).toMatchObject({ status: "skipped", reason: expect.stringContaining("skipIf") });
    // Skipped sends hold no ledger reservation.
    expect((await ledger(opted.map((c) => c.id))).length).toBe(0);

    // The service entry reaches the opted-out contacts (and counts no marketing).
    await planEntry({ ctx: sys(), id: cal.ids["care"]!.entryId });
    const care = await sendsOf(cal.ids["care"]!.postId!);
    for (const c of opted) expect(care.find((r) => r.contactId === c.id)).toMatchObject({ status: "planned", service: true });
    expect((await ledger(opted.map((c) => c.id))).every((l) => l.mass === 1 && l.marketing === 0)).toBe(true);
    // The others already have the promo that day: WeCom takes one mass message a day, service or not.
    for (const c of ok) expect(care.find((r) => r.contactId === c.id)).toMatchObject({ status: "skipped", reason: expect.stringContaining("over WeCom's mass-message cap") });
  });

  it("one send per (post, recipient): planning twice adds nothing, and the unique index refuses a second row", async () => {
    const { source, contacts: cs } = await newContacts(3);
    const at = local(new Date(now().getTime() + 3 * 86_400_000)).slice(0, 10);
    const cal = await calendar({ audience: { segment: `source = "${source}"` }, entries: [{ key: "once", when: { date: at, time: "10:00" }, template: "只发一次" }] });
    const first = await planEntry({ ctx: sys(), id: cal.ids["once"]!.entryId });
    expect(first).toMatchObject({ planned: 3 });
    const again = await planEntry({ ctx: sys(), id: cal.ids["once"]!.entryId });
    expect(again).toMatchObject({ planned: 0, skipped: 0, already: 3 });
    expect(await sendsOf(cal.ids["once"]!.postId!)).toHaveLength(3);
    expect((await ledger(cs.map((c) => c.id))).every((l) => l.mass === 1 && l.marketing === 1)).toBe(true);
    const dup = await db()
      .insert(sends)
      .values({ tenantId: tenant.id, postId: cal.ids["once"]!.postId!, contactId: cs[0]!.id, scheduledAt: now() })
      .then(() => null, (err: Error) => err);
    expect(isUniqueViolation(dup, "sends_post_contact_occ_uq")).toBe(true);
  });

  it("plans a weekly entry once per week: each occurrence is its own send (post, recipient, date)", async () => {
    setNow(awake());
    const { source, contacts: cs } = await newContacts(2);
    const cal = await calendar({ audience: { segment: `source = "${source}"` }, entries: [{ key: "weekly", when: { weekday: 3, time: "10:00" }, template: "每周三护肤小贴士：防晒别忘记。" }] });
    const first = await planEntry({ ctx: sys(), id: cal.ids["weekly"]!.entryId });
    expect(first).toMatchObject({ planned: 2 });
    expect(await planEntry({ ctx: sys(), id: cal.ids["weekly"]!.entryId })).toMatchObject({ planned: 0, already: 2 });
    const [one] = await sendsOf(cal.ids["weekly"]!.postId!);
    // A week later (this week's sent), the next Wednesday is a new occurrence for the same post.
    await db().update(sends).set({ status: "sent", sentAt: one!.scheduledAt }).where(eq(sends.postId, cal.ids["weekly"]!.postId!));
    setNow(one!.scheduledAt.getTime() + 7 * 3_600_000);
    const next = await planEntry({ ctx: sys(), id: cal.ids["weekly"]!.entryId });
    expect(next).toMatchObject({ planned: 2 });
    const rows = await sendsOf(cal.ids["weekly"]!.postId!);
    expect(rows).toHaveLength(4);
    const dates = [...new Set(rows.map((r) => r.occurrence))].sort();
    expect(dates).toHaveLength(2);
    expect(new Date(`${dates[1]}T00:00:00Z`).getTime() - new Date(`${dates[0]}T00:00:00Z`).getTime()).toBe(7 * 86_400_000);
    expect(new Set(rows.map((r) => r.contactId))).toEqual(new Set(cs.map((c) => c.id)));
    setNow(awake());
  });

  it("never exceeds WeCom's per-customer cap or the fatigue cap, even with planners running concurrently", async () => {
    const { source, contacts: cs } = await newContacts(20);
    const base = new Date(now().getTime() + 5 * 86_400_000);
    const day = (n: number) => local(new Date(base.getTime() + n * 86_400_000)).slice(0, 10);
    // Three calendars, all for the same day: WeCom takes one mass message per customer a day.
    const same = await Promise.all([1, 2, 3].map((i) => calendar({ audience: { segment: `source = "${source}"` }, entries: [{ key: `same${i}`, when: { date: day(0), time: `1${i}:00` }, template: `同一天的第${i}条` }] })));
    const outs = await Promise.all(same.map((c, i) => planEntry({ ctx: sys(), id: c.ids[`same${i + 1}`]!.entryId })));
    expect(outs.reduce((n, o) => n + ("planned" in o ? o.planned : 0), 0)).toBe(20);
    const rows = await db().select().from(sends).where(inArray(sends.contactId, cs.map((c) => c.id)));
    for (const c of cs) expect(rows.filter((r) => r.contactId === c.id && r.status === "planned")).toHaveLength(1);
    expect(rows.filter((r) => r.status === "skipped").every((r) => r.reason?.startsWith("over WeCom's mass-message cap: 1 per customer per day"))).toBe(true);
    expect((await ledger(cs.map((c) => c.id))).every((l) => l.mass === 1 && l.marketing === 1)).toBe(true);
    // Five more marketing entries on the next five days, planned concurrently: at most 3 in any 7 days.
    const week = await Promise.all([1, 2, 3, 4, 5].map((i) => calendar({ audience: { segment: `source = "${source}"` }, entries: [{ key: `d${i}`, when: { date: day(i), time: "10:00" }, template: `第${i}天` }] })));
    await Promise.all(week.map((c, i) => planEntry({ ctx: sys(), id: c.ids[`d${i + 1}`]!.entryId })));
    const all = await db().select().from(sends).where(inArray(sends.contactId, cs.map((c) => c.id)));
    for (const c of cs) expect(all.filter((r) => r.contactId === c.id && r.status === "planned")).toHaveLength(3);
    expect(all.filter((r) => r.reason?.startsWith("over the fatigue cap: at most 3 marketing sends per contact in 7 days"))).toHaveLength(20 * 3);
    const marketing = await ledger(cs.map((c) => c.id));
    for (const c of cs) expect(marketing.filter((l) => l.contactId === c.id).reduce((n, l) => n + l.marketing, 0)).toBe(3);
  });

  it("previews who gets what when, with conflicts, and writes nothing (also for a draft calendar)", async () => {
    const { source } = await newContacts(4);
    await newContacts(1, { optOut: true, source });
    const at = local(new Date(now().getTime() + 4 * 86_400_000)).slice(0, 10);
    const cal = await calendar({
      audience: { segment: `source = "${source}"` },
      entries: [
        { key: "a", when: { date: at, time: "10:00" }, template: "第一条" },
        { key: "b", when: { date: at, time: "22:00" }, template: "第二条（同一天）" },
      ],
    });
    const res = await client(t.app, tenant.tokens.marketing).get(`/v1/calendars/${cal.calendarId}/preview?sample=3`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const p = res.body;
    expect(p.entries.map((e: { key: string }) => e.key)).toEqual(["a", "b"]);
    expect(p.entries[0].stats).toMatchObject({ planned: 4, skipped: 1 });
    // b is the same day: over WeCom's cap for all four; and 22:00 is quiet (moved to 08:30 next day, then a new day: planned).
    expect(p.entries[1].stats.movedQuiet + p.entries[1].stats.skipped).toBeGreaterThan(0);
    expect(p.entries[0].sample[0]).toMatchObject({ status: "planned", senderName: expect.any(String), scheduledAt: expect.any(String) });
    expect(p.conflicts.map((c: { kind: string }) => c.kind)).toEqual(expect.arrayContaining(["opted_out", "quiet_hours"]));
    expect(await sendsOf(cal.ids["a"]!.postId!)).toHaveLength(0);
    const draft = await calendar({ status: "draft", audience: { segment: `source = "${source}"` }, entries: [{ key: "d", when: { date: at, time: "15:00" }, template: "草稿" }] });
    const dp = await previewCalendar({ ctx: staffCtx("marketing"), id: draft.calendarId });
    expect(dp.entries[0]).toMatchObject({ key: "d", entryId: null, postId: null, stats: { planned: 4, skipped: 1 } });
    const [n] = rowsOf<{ n: number }>(await db().execute(sql`select count(*)::int as n from send_quota q join contacts c on c.id = q.contact_id where c.source = ${source}`));
    expect(n!.n).toBe(0);
  });
});

describe("from the calendar API to sends", () => {
  it("plans a calendar created and published through /v1/calendars once its posts are approved, and previews it before", async () => {
    setNow(awake());
    const { source, contacts: cs } = await newContacts(3);
    const at = new Date(now().getTime() + 2 * 86_400_000);
    const body = {
      key: `api-${randomBytes(4).toString("hex")}`,
      name: "祛痘社群周历",
      quietHours: { start: "21:00", end: "08:30" },
      audience: { segment: `source = "${source}"` },
      variables: { name: { fallback: "您" } },
      entries: [
        { key: "tips", when: { date: local(at).slice(0, 10), time: "10:00" }, kind: "text", template: "{{name}}好，换季祛痘小贴士：清洁要温和，保湿不能少。" },
        { key: "qa", when: { date: local(new Date(at.getTime() + 86_400_000)).slice(0, 10), time: "20:00" }, kind: "text", template: "明晚八点皮肤科医生线上答疑，欢迎提问。" },
      ],
    };
    const mk = client(t.app, tenant.tokens.marketing);
    const created = await mk.post("/v1/calendars", body);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.id;
    // Before publishing: who gets what when.
    const before = await mk.get(`/v1/calendars/${id}/preview`);
    expect(before.status, JSON.stringify(before.body)).toBe(200);
    expect(before.body.entries.map((e: { key: string; stats: { planned: number } }) => [e.key, e.stats.planned])).toEqual([["tips", 3], ["qa", 3]]);
    expect(before.body.entries[0].sample.map((x: { contactId: string }) => x.contactId).sort()).toEqual(cs.map((c) => c.id).sort());
    const published = await mk.post(`/v1/calendars/${id}/publish`);
    expect(published.status, JSON.stringify(published.body)).toBe(200);
    expect((await client(t.app, tenant.tokens.admin).post(`/v1/calendars/${id}/plan`)).body.entries.map((e: { outcome: string }) => e.outcome)).toEqual(["not_approved", "not_approved"]);
    // Reviewers approve every level of both posts; the sweep plans them.
    for (const e of published.body.entries as { postId: string }[]) {
      for (const who of ["reviewer", "admin"] as const) {
        const p = await client(t.app, tenant.tokens[who]).get(`/v1/posts/${e.postId}`);
        if (p.body.status !== "in_review") break;
        expect((await client(t.app, tenant.tokens[who]).post(`/v1/posts/${e.postId}/reviews`, { decision: "approve", contentHash: p.body.contentHash })).status).toBe(200);
      }
    }
    await planPending(t.rt.deps, { birthdays: false });
    const rows = await db().select().from(sends).where(eq(sends.calendarId, id));
    expect(rows.filter((r) => r.status === "planned")).toHaveLength(6);
    const qa = rows.filter((r) => r.entryId === published.body.entries[1].entryId);
    expect(new Set(qa.map((r) => local(r.scheduledAt)))).toEqual(new Set([`${local(new Date(at.getTime() + 86_400_000)).slice(0, 10)}T20:00`]));
    expect(new Set(rows.map((r) => r.contactId))).toEqual(new Set(cs.map((c) => c.id)));
    // Planning again adds nothing.
    await planPending(t.rt.deps, { birthdays: false });
    expect(await db().select().from(sends).where(eq(sends.calendarId, id))).toHaveLength(6);
  });
});

describe("delivery through WeCom", () => {
  it("sends through the worker to the fake WeCom from the right sender, then records sent / over_quota / not_friend from the results", async () => {
    workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["delivery", "wecom"]);
    setNow(awake());
    const { source, contacts: mine } = await newContacts(3);
    const { contacts: theirs } = await newContacts(2, { owner: "consultant2", source });
    const when = nextMinute();
    const cal = await calendar({ audience: { segment: `source = "${source}"` }, entries: [{ key: "now", when: { date: local(when).slice(0, 10), time: local(when).slice(11, 16) }, template: "本周护肤讲座周六开讲，欢迎报名。" }] });
    const postId = cal.ids["now"]!.postId!;
    await planEntry({ ctx: sys(), id: cal.ids["now"]!.entryId });
    // One delayed job per sender and minute.
    const keys = await keysOf(postId);
    expect(keys.map((k) => k.senderStaffId).sort()).toEqual([tenant.staff.consultant.id, tenant.staff.consultant2.id].sort());
    for (const k of keys) expect(await (await deliveryQueue().getJob(batchJobId(k)))?.getState()).toBe("delayed");
    setNow(when.getTime() + 1000);
    // Before the patients get it: one already had a mass message today (WeCom's cap), one deleted the consultant.
    fake.control.recordMassMessageReceipt(mine[0]!.externalUserId!);
    await fake.control.customerDeletesStaff({ userid: userA, externalUserId: mine[1]!.externalUserId! });
    for (const k of keys) await (await deliveryQueue().getJob(batchJobId(k)))!.promote();
    await waitFor(async () => (await sendsOf(postId)).every((s) => s.status === "sending" && s.wecomMsgid), { what: "sends handed to WeCom" });
    const msgs = massFor("本周护肤讲座");
    expect(msgs).toHaveLength(2);
    const a = msgs.find((m) => m.tasks[0]!.userid === userA)!;
    const b = msgs.find((m) => m.tasks[0]!.userid === userB)!;
    expect(a.results.map((r) => r.externalUserId).sort()).toEqual(mine.map((c) => c.externalUserId).sort());
    expect(b.results.map((r) => r.externalUserId).sort()).toEqual(theirs.map((c) => c.externalUserId).sort());
    expect(a.chatType).toBe("single");
    // Nobody confirmed yet: a poll changes nothing.
    expect(await pollMessage(t.rt.deps, { tenantId: tenant.id, msgid: a.msgid })).toMatchObject({ outcome: "pending", pending: 3, confirmed: false });
    // 张顾问 confirms in the WeCom client; the first poll job (a minute after the send) reads the results.
    fake.control.staffConfirmsMassMessage(a.msgid, userA);
    await (await deliveryQueue().getJob(pollJobId(a.msgid, "first")))!.promote();
    await waitFor(async () => (await sendsOf(postId)).filter((s) => s.senderStaffId === tenant.staff.consultant.id).every((s) => s.status !== "sending"), { what: "results recorded" });
    const rows = await sendsOf(postId);
    const st = (id: string) => rows.find((r) => r.contactId === id)!;
    expect(st(mine[0]!.id)).toMatchObject({ status: "over_quota", reason: expect.stringContaining("status 3") });
    expect(st(mine[1]!.id)).toMatchObject({ status: "not_friend" });
    expect(st(mine[2]!.id)).toMatchObject({ status: "sent", wecomMsgid: a.msgid });
    expect(st(mine[2]!.id).sentAt).toBeTruthy();
    // The ledger: over_quota keeps the day's mass count but gives marketing back; not_friend gives both back.
    const l = await ledger([mine[0]!.id, mine[1]!.id, mine[2]!.id]);
    expect(l.find((x) => x.contactId === mine[0]!.id)).toMatchObject({ mass: 1, marketing: 0 });
    expect(l.find((x) => x.contactId === mine[1]!.id)).toMatchObject({ mass: 0, marketing: 0 });
    expect(l.find((x) => x.contactId === mine[2]!.id)).toMatchObject({ mass: 1, marketing: 1 });
    const audits = await db().select().from(auditLog).where(and(eq(auditLog.tenantId, tenant.id), eq(auditLog.entityId, postId), eq(auditLog.action, "post.send")));
    expect(audits).toHaveLength(2);

    // 刘顾问 has not confirmed an hour later: one WeCom app message reminds them (and WeCom's own reminder), once.
    setNow(when.getTime() + 62 * 60_000);
    const r1 = await pollMessage(t.rt.deps, { tenantId: tenant.id, msgid: b.msgid });
    expect(r1).toMatchObject({ outcome: "pending", reminded: true, pending: 2 });
    const r2 = await pollMessage(t.rt.deps, { tenantId: tenant.id, msgid: b.msgid });
    expect(r2.reminded).toBe(false);
    expect(fake.state.massMessages.get(b.msgid)!.remindCount).toBe(1);
    const [note] = await db().select().from(staffNotifications).where(and(eq(staffNotifications.tenantId, tenant.id), eq(staffNotifications.kind, "mass_message_confirm")));
    expect(note).toMatchObject({ staffId: tenant.staff.consultant2.id });
    await waitFor(async () => fake.state.appMessages.some((m) => m.delivered.includes(userB) && JSON.stringify(m.body).includes("群发待确认")), { what: "the reminder app message at WeCom" });
    // They confirm: sent.
    fake.control.staffConfirmsMassMessage(b.msgid, userB);
    expect(await pollMessage(t.rt.deps, { tenantId: tenant.id, msgid: b.msgid })).toMatchObject({ outcome: "final", sent: 2 });
    setNow(awake());

    // The API lists them, filtered by status, with cursor paging.
    const api = client(t.app, tenant.tokens.marketing);
    const p1 = await api.get(`/v1/sends?calendarId=${cal.calendarId}&limit=3`);
    expect(p1.status).toBe(200);
    expect(p1.body.items).toHaveLength(3);
    const p2 = await api.get(`/v1/sends?calendarId=${cal.calendarId}&limit=3&cursor=${p1.body.nextCursor}`);
    expect(p2.body.items).toHaveLength(2);
    expect(p2.body.nextCursor).toBeNull();
    const sent = await api.get(`/v1/sends?calendarId=${cal.calendarId}&status=sent`);
    expect(sent.body.items.map((s: { contactId: string }) => s.contactId).sort()).toEqual([mine[2]!.id, ...theirs.map((c) => c.id)].sort());
    expect((await api.get(`/v1/sends?contactId=${mine[0]!.id}&status=over_quota`)).body.items).toHaveLength(1);
    // The tests below drive the batches themselves.
    await Promise.all(workers.map((w) => w.close()));
    workers = [];
  });

  it("sends a mini-program card with its cover uploaded to WeCom as media, and without the card when the cover cannot be had", async () => {
    setNow(awake());
    // The cover is served like any web image (a 1x1 PNG); the second entry's cover is missing.
    const png = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==", "base64");
    const images = createServer((req, res) => {
      if (req.url === "/cover.png") res.writeHead(200, { "content-type": "image/png" }).end(png);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => images.listen(0, "127.0.0.1", () => r()));
    const base = `http://127.0.0.1:${(images.address() as AddressInfo).port}`;
    try {
      const { source } = await newContacts(1);
      const when = nextMinute();
      const at = { date: local(when).slice(0, 10), time: local(when).slice(11, 16) };
      const other = await newContacts(1);
      const cal = await calendar({ audience: { segment: `source = "${source}"` }, entries: [{ key: "card", when: at, template: "会员日预约入口已开放。", miniprogram: { appId: "wx0a1b2c3d4e5f6a7b", page: "pages/booking/index.html", title: "会员日预约", picUrl: `${base}/cover.png` } }] });
      const cal2 = await calendar({ audience: { segment: `source = "${other.source}"` }, entries: [{ key: "nocover", when: at, template: "复诊预约入口已开放。", miniprogram: { appId: "wx0a1b2c3d4e5f6a7b", page: "pages/booking/index.html", title: "预约复诊", picUrl: `${base}/missing.png` } }] });
      await planEntry({ ctx: sys(), id: cal.ids["card"]!.entryId });
      await planEntry({ ctx: sys(), id: cal2.ids["nocover"]!.entryId });
      setNow(when.getTime() + 1000);
      for (const b of [...(await keysOf(cal.ids["card"]!.postId!)), ...(await keysOf(cal2.ids["nocover"]!.postId!))]) await deliverBatch(t.rt.deps, b);
      const [card] = massFor("会员日预约入口已开放");
      const mp = card!.attachments[0] as { msgtype: string; miniprogram: { pic_media_id: string; appid: string; page: string; title: string } };
      expect(mp).toMatchObject({ msgtype: "miniprogram", miniprogram: { appid: "wx0a1b2c3d4e5f6a7b", page: "pages/booking/index.html", title: "会员日预约" } });
      expect(fake.state.media.get(mp.miniprogram.pic_media_id)).toMatchObject({ type: "image", contentType: "image/png", bytes: png.length });
      const [plain] = massFor("复诊预约入口已开放");
      expect(plain!.attachments).toEqual([]);
    } finally {
      await new Promise<void>((r) => images.close(() => r()));
    }
  });

  it("sends personal copy (the contact's name, a tracked link) as one message per recipient, and group entries to chats from the chat owner", async () => {
    setNow(awake());
    const { source, contacts: cs } = await newContacts(2);
    const when = nextMinute();
    const date = local(when).slice(0, 10);
    const time = local(when).slice(11, 16);
    const cal = await calendar({ audience: { segment: `source = "${source}"` }, entries: [{ key: "hi", when: { date, time }, template: "{{name}}您好，祛痘小课堂本周开讲：", link: { url: "https://example.cn/acne/1", title: "祛痘小课堂" } }] });
    await planEntry({ ctx: sys(), id: cal.ids["hi"]!.entryId });
    setNow(when.getTime() + 1000);
    for (const k of await keysOf(cal.ids["hi"]!.postId!)) await deliverBatch(t.rt.deps, k);
    const msgs = massFor("祛痘小课堂本周开讲");
    expect(msgs).toHaveLength(2);
    for (const c of cs) {
      const m = msgs.find((x) => x.results[0]!.externalUserId === c.externalUserId)!;
      expect(m.text!.content.startsWith(`${c.name}您好`)).toBe(true);
      const card = m.attachments[0] as { msgtype: string; link: { url: string } };
      expect(card.msgtype).toBe("link");
      expect(card.link.url).toMatch(/\/l\/[A-Za-z0-9_-]{10}$/);
    }
    // A group chat of 刘顾问's: the group entry goes to it from its owner.
    const chat = await fake.control.createGroupChat({ owner: userB, name: "祛痘交流群", members: [] });
    await db().insert(wecomGroupChats).values({ tenantId: tenant.id, chatId: chat.chatId, name: "祛痘交流群", ownerUserId: userB });
    const g = await calendar({ audience: { groups: { ids: [chat.chatId, "wrUNKNOWN"] } }, entries: [{ key: "group", channel: "group", when: { date, time }, template: "群公告：本周六直播答疑。" }] });
    const gp = await planEntry({ ctx: sys(), id: g.ids["group"]!.entryId });
    expect(gp).toMatchObject({ planned: 1, skipped: 1, reasons: [{ reason: "unknown group chat (not synced from WeCom)", n: 1 }] });
    for (const k of await keysOf(g.ids["group"]!.postId!)) expect(k.senderStaffId).toBe(tenant.staff.consultant2.id);
    const postStatus = async () => (await db().select({ status: posts.status }).from(posts).where(eq(posts.id, g.ids["group"]!.postId!)))[0]?.status;
    expect(await postStatus()).toBe("scheduled");
    for (const k of await keysOf(g.ids["group"]!.postId!)) await deliverBatch(t.rt.deps, k);
    const [gm] = massFor("群公告：本周六直播答疑");
    expect(gm).toMatchObject({ chatType: "group" });
    expect(gm!.results.map((r) => r.chatId)).toEqual([chat.chatId]);
    fake.control.staffConfirmsMassMessage(gm!.msgid, userB);
    expect(await pollMessage(t.rt.deps, { tenantId: tenant.id, msgid: gm!.msgid })).toMatchObject({ outcome: "final", sent: 1 });
    // approved -> scheduled -> sent; a sent post stays sendable (approval binds to the content).
    expect(await postStatus()).toBe("sent");
    expect((await gateCheck(db(), sys(), g.ids["group"]!.postId!)).sendable).toBe(true);
    // By label: the chats marketing labelled 祛痘交流群 (a dismissed one is left out), none other.
    const labelled = await fake.control.createGroupChat({ owner: userB, name: "祛痘二群", members: [] });
    await db().insert(wecomGroupChats).values([
      { tenantId: tenant.id, chatId: labelled.chatId, name: "祛痘二群", ownerUserId: userB },
      { tenantId: tenant.id, chatId: "wrDISMISSED", name: "旧群", ownerUserId: userB, tags: ["祛痘交流群"], dismissedAt: new Date() },
    ]);
    const mk = client(t.app, tenant.tokens.marketing);
    for (const id of [chat.chatId, labelled.chatId]) expect((await mk.call("PUT", `/v1/wecom/group-chats/${id}/tags`, { tags: ["祛痘交流群", "祛痘交流群"] })).body.tags).toEqual(["祛痘交流群"]);
    expect((await mk.get("/v1/wecom/group-chats?tag=祛痘交流群")).body.items.map((x: { chatId: string }) => x.chatId).sort()).toEqual([chat.chatId, labelled.chatId].sort());
    const byTag = await calendar({ audience: { groups: { tags: ["祛痘交流群"] } }, entries: [{ key: "tagged", channel: "group", when: { date, time }, template: "群公告：下周三医生答疑。" }] });
    // The first chat already had its group message today (WeCom's cap per chat and day): skipped, and says so.
    expect(await planEntry({ ctx: sys(), id: byTag.ids["tagged"]!.entryId })).toMatchObject({ planned: 1, skipped: 1 });
    const tagged = await sendsOf(byTag.ids["tagged"]!.postId!);
    expect(tagged.map((x) => [x.chatId, x.status]).sort()).toEqual([[chat.chatId, "skipped"], [labelled.chatId, "planned"]].sort());
    expect(tagged.find((x) => x.chatId === chat.chatId)!.reason).toContain("per group chat per day");
    const none = await calendar({ audience: { groups: { tags: ["无此标签"] } }, entries: [{ key: "none", channel: "group", when: { date, time }, template: "群公告：测试。" }] });
    expect(await planEntry({ ctx: sys(), id: none.ids["none"]!.entryId })).toMatchObject({ planned: 0, reasons: [expect.objectContaining({ reason: expect.stringContaining("no group chat carries the label") })] });
  });

  it("calls the gate on every send: copy edited after approval sends nothing and the sends say why", async () => {
    setNow(awake());
    const { source } = await newContacts(2);
    const when = nextMinute();
    const cal = await calendar({ audience: { segment: `source = "${source}"` }, entries: [{ key: "edited", when: { date: local(when).slice(0, 10), time: local(when).slice(11, 16) }, template: "原文：周末义诊活动。" }] });
    const postId = cal.ids["edited"]!.postId!;
    await planEntry({ ctx: sys(), id: cal.ids["edited"]!.entryId });
    setNow(when.getTime() + 1000);
    await updatePost({ ctx: staffCtx("marketing"), id: postId, input: { body: "改过的文案：周末义诊活动，名额有限。" } });
    const before = fake.state.massMessages.size;
    for (const k of await keysOf(postId)) expect(await deliverBatch(t.rt.deps, k)).toMatchObject({ outcome: "refused", messages: 0 });
    expect(fake.state.massMessages.size).toBe(before);
    const rows = await sendsOf(postId);
    expect(rows.every((r) => r.status === "failed" && r.reason === "the compliance gate refused the post: the post is draft, not approved")).toBe(true);
    const refused = await db().select().from(auditLog).where(and(eq(auditLog.entityId, postId), eq(auditLog.action, "post.send.refused")));
    expect(refused.length).toBeGreaterThan(0);
    // The reservations went back with them.
    expect((await ledger(rows.map((r) => r.contactId!))).every((l) => l.mass === 0 && l.marketing === 0)).toBe(true);
  });

  it("skips at send time a contact who opted out after planning (consent is checked again)", async () => {
    setNow(awake());
    const { source, contacts: cs } = await newContacts(2);
    const when = nextMinute();
    const cal = await calendar({ audience: { segment: `source = "${source}"` }, entries: [{ key: "later-optout", when: { date: local(when).slice(0, 10), time: local(when).slice(11, 16) }, template: "双十二活动预告。" }] });
    await planEntry({ ctx: sys(), id: cal.ids["later-optout"]!.entryId });
    setNow(when.getTime() + 1000);
    await db().update(contacts).set({ marketingOptOutAt: new Date() }).where(eq(contacts.id, cs[0]!.id));
    for (const k of await keysOf(cal.ids["later-optout"]!.postId!)) await deliverBatch(t.rt.deps, k);
    const rows = await sendsOf(cal.ids["later-optout"]!.postId!);
    expect(rows.find((r) => r.contactId === cs[0]!.id)).toMatchObject({ status: "skipped", reason: expect.stringContaining("opted out") });
    expect(rows.find((r) => r.contactId === cs[1]!.id)).toMatchObject({ status: "sending" });
    expect(massFor("双十二活动预告")[0]!.results.map((r) => r.externalUserId)).toEqual([cs[1]!.externalUserId]);
  });
});

describe("a worker killed mid-batch never sends twice", () => {
  const crash = new Error("simulated crash");

  async function dueEntry(text: string) {
    const { source, contacts: cs } = await newContacts(3);
    const when = nextMinute();
    const cal = await calendar({ audience: { segment: `source = "${source}"` }, entries: [{ key: "k", when: { date: local(when).slice(0, 10), time: local(when).slice(11, 16) }, template: text }] });
    await planEntry({ ctx: sys(), id: cal.ids["k"]!.entryId });
    const postId = cal.ids["k"]!.postId!;
    const [key] = await keysOf(postId);
    setNow(key!.minute.getTime() + 1000);
    return { postId, key: key!, contacts: cs };
  }

  it("killed after `sending` committed, before WeCom was called: nothing re-sends blindly; the reconcile finds no task and sends it once", async () => {
    const { postId, key } = await dueEntry("崩溃前未调用：冬季护肤指南。");
    await expect(deliverBatch(t.rt.deps, key, { beforeCall: () => Promise.reject(crash) })).rejects.toThrow("simulated crash");
    expect((await sendsOf(postId)).every((s) => s.status === "sending" && !s.wecomMsgid)).toBe(true);
    // The job is retried, twice at once: nothing to claim, nothing sent.
    expect(await Promise.all([deliverBatch(t.rt.deps, key), deliverBatch(t.rt.deps, key)])).toMatchObject([{ outcome: "empty" }, { outcome: "empty" }]);
    expect(massFor("崩溃前未调用")).toHaveLength(0);
    // Too early for the reconcile (the call could still be in flight).
    expect(await reconcileInterrupted(t.rt.deps)).toMatchObject({ adopted: 0, replanned: 0 });
    setNow(Date.now() + skewMs + RECONCILE_AFTER_MS + 1000);
    const r = await reconcileInterrupted(t.rt.deps);
    expect(r.replanned).toBe(3);
    expect((await sendsOf(postId)).every((s) => s.status === "planned")).toBe(true);
    const retried = await deliverBatch(t.rt.deps, key);
    expect(retried).toMatchObject({ messages: 1, recipients: 3 });
    expect(massFor("崩溃前未调用")).toHaveLength(1);
    expect((await sendsOf(postId)).every((s) => s.status === "sending" && s.wecomMsgid && s.attempts === 2)).toBe(true);
    setNow(awake());
  });

  it("killed after WeCom accepted, before the msgid was recorded: the reconcile adopts WeCom's task instead of sending again", async () => {
    const { postId, key, contacts: cs } = await dueEntry("崩溃于应答后：春节门诊安排。");
    let accepted = "";
    await expect(
      deliverBatch(t.rt.deps, key, {
        afterCall: async (_ids, msgid) => {
          accepted = msgid;
          throw crash;
        },
      }),
    ).rejects.toThrow("simulated crash");
    expect(massFor("崩溃于应答后")).toHaveLength(1);
    expect((await sendsOf(postId)).every((s) => s.status === "sending" && !s.wecomMsgid)).toBe(true);
    expect(await deliverBatch(t.rt.deps, key)).toMatchObject({ outcome: "empty" });
    setNow(Date.now() + skewMs + RECONCILE_AFTER_MS + 1000);
    expect(await reconcileInterrupted(t.rt.deps)).toMatchObject({ adopted: 3, replanned: 0 });
    const rows = await sendsOf(postId);
    expect(rows.every((s) => s.wecomMsgid === accepted)).toBe(true);
    expect(massFor("崩溃于应答后")).toHaveLength(1);
    fake.control.staffConfirmsMassMessage(accepted, userA);
    expect(await pollMessage(t.rt.deps, { tenantId: tenant.id, msgid: accepted })).toMatchObject({ outcome: "final", sent: 3 });
    expect((await sendsOf(postId)).map((s) => s.contactId).sort()).toEqual(cs.map((c) => c.id).sort());
    setNow(awake());
  });
});

describe("the WeCom client and add_msg_template", () => {
  it("never repeats add_msg_template after a network failure (WeCom may have created the task), unlike a safe call", async () => {
    const ext = `wm${randomBytes(15).toString("hex")}`;
    fake.control.createContact({ externalUserId: ext, name: "网络", followedBy: userA });
    let posts = 0;
    // The request reaches WeCom, the answer is lost on the way back.
    const lossy: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (String(input).includes("add_msg_template")) {
        posts++;
        throw new TypeError("fetch failed: socket hang up");
      }
      return res;
    };
    const c = new WecomClient({ baseUrl: fake.url, corpId: app.corpId, secret: app.secret, agentId: app.agentId, redis: t.rt.redis, keyPrefix: `dlv-client-${randomBytes(4).toString("hex")}`, backoffMs: 5, fetch: lossy });
    const before = fake.state.massMessages.size;
    await expect(c.addMsgTemplate({ chat_type: "single", external_userid: [ext], sender: userA, text: { content: "网络断开测试" } })).rejects.toBeInstanceOf(WecomNetworkError);
    expect(posts).toBe(1);
    expect(fake.state.massMessages.size).toBe(before + 1);
  });
});

describe("PostgreSQL is the truth", () => {
  it("rebuilds delayed jobs lost with Redis from the planned sends, and runs overdue ones", async () => {
    setNow(awake());
    const { source } = await newContacts(2);
    const later = new Date(now().getTime() + 3 * 3_600_000);
    const cal = await calendar({ quietHours: { start: "00:00", end: "00:00" }, audience: { segment: `source = "${source}"` }, entries: [{ key: "later", when: { date: local(later).slice(0, 10), time: local(later).slice(11, 16) }, template: "三小时后的消息。" }] });
    await planEntry({ ctx: sys(), id: cal.ids["later"]!.entryId });
    const [key] = await keysOf(cal.ids["later"]!.postId!);
    expect(await deliveryQueue().getJob(batchJobId(key!))).toBeTruthy();
    // Redis loses the delivery queue; the scheduler starts again.
    await Promise.all(workers.map((w) => w.close()));
    workers = [];
    const keys = await t.rt.redis.keys(`${t.rt.config.QUEUE_PREFIX}:delivery:*`);
    if (keys.length) await t.rt.redis.del(...keys);
    expect(await deliveryQueue().getJob(batchJobId(key!))).toBeUndefined();
    await sweepDelivery(t.rt.deps, { reason: "startup" });
    const rebuilt = await deliveryQueue().getJob(batchJobId(key!));
    expect(rebuilt?.data).toMatchObject({ tenantId: tenant.id, postId: cal.ids["later"]!.postId, minute: key!.minute.toISOString() });
    expect(await rebuilt!.getState()).toBe("delayed");
    // Its time comes (the clock jumps), with the job lost again: the minute sweep runs it under a fresh id.
    await t.rt.redis.del(...(await t.rt.redis.keys(`${t.rt.config.QUEUE_PREFIX}:delivery:*`)));
    setNow(key!.minute.getTime() + 5 * 60_000);
    workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["delivery"]);
    const swept = await sweepDelivery(t.rt.deps, { reason: "schedule" });
    expect(swept.overdue).toBeGreaterThanOrEqual(1);
    await waitFor(async () => (await sendsOf(cal.ids["later"]!.postId!)).every((s) => s.status === "sending" && s.wecomMsgid), { what: "the overdue batch sent" });
    expect(massFor("三小时后的消息")).toHaveLength(1);
    setNow(awake());
  });

  it("plans approved entries and new enrollments in the sweep, once", async () => {
    setNow(awake());
    const { contacts: cs } = await newContacts(2);
    const rel = await calendar({ kind: "relative", audience: { enrollment: {} }, entries: [{ key: "d2", when: { day: 2, time: "10:00" }, template: "术后第二天回访。", service: true }] });
    await db().insert(calendarEnrollments).values(cs.map((c) => ({ tenantId: tenant.id, calendarId: rel.calendarId, contactId: c.id, enrolledAt: now(), source: "api" })));
    expect(await planPending(t.rt.deps, { birthdays: false })).toBeGreaterThanOrEqual(1);
    expect(await sendsOf(rel.ids["d2"]!.postId!)).toHaveLength(2);
    await planPending(t.rt.deps, { birthdays: false });
    expect(await sendsOf(rel.ids["d2"]!.postId!)).toHaveLength(2);
  });
});
