import { randomUUID } from "node:crypto";
import { and, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { analyticsSettings, calendarEntries, calendars, events, metricFacts, posts, sends, trackedLinks } from "../../src/db/schema/index";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { attribution, contactRanges } from "../../src/services/attribution/attribute";
import { systemCtx } from "../../src/services/context";
import { client, createTestTenant, phone, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";

/**
 * Attribution over a hand-made history: link clicks on calendar sends (through GET /l/{code}, with
 * the services' clock set to the click time), article reads and livestreams through POST
 * /v1/events, conversions applied by the events worker into metric_facts. Every expected credit
 * below is worked out by hand in the comments.
 */
let t: TestRuntime;
let workers: RunningWorker[] = [];
let clock: number | null = null;
const PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2f) NetType/WIFI Language/zh_CN";
const DAY = 86_400_000;
// Day 0 of the story: 80 days ago, at a whole second.
const T0 = Math.floor((Date.now() - 80 * DAY) / 1000) * 1000;
const at = (days: number, ms = 0) => T0 + days * DAY + ms;

beforeAll(async () => {
  t = await createTestRuntime({}, { now: () => new Date(clock ?? Date.now()) });
  workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["events"]);
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await t?.close();
});

const db = () => t.rt.deps.db;

async function calendarWith(tenant: TestTenant, key: string, entryKeys: string[]) {
  const [cal] = await db().insert(calendars).values({ tenantId: tenant.id, key, name: `${key} 日历`, source: "api", kind: "dated", definition: {}, contentHash: randomUUID(), version: 1, status: "published", publishedAt: new Date() }).returning();
  const entries: Record<string, { id: string; postId: string }> = {};
  for (const k of entryKeys) {
    const [p] = await db().insert(posts).values({ tenantId: tenant.id, kind: "mass_message", body: `${k} 内容`, contentHash: randomUUID(), status: "approved" }).returning();
    const [e] = await db().insert(calendarEntries).values({ tenantId: tenant.id, calendarId: cal!.id, key: k, when: { weekday: 1, time: "10:00" }, kind: "article", channel: "single", postId: p!.id, calendarVersion: 1 }).returning();
    entries[k] = { id: e!.id, postId: p!.id };
  }
  return { id: cal!.id, entries };
}

/** A sent send of the entry to the contact, with a tracked link; returns the link's code. */
async function sentLink(tenant: TestTenant, cal: { id: string }, entry: { id: string; postId: string }, contactId: string, sentAt: number): Promise<string> {
  const [s] = await db()
    .insert(sends)
    .values({ tenantId: tenant.id, postId: entry.postId, calendarId: cal.id, entryId: entry.id, contactId, scheduledAt: new Date(sentAt), sentAt: new Date(sentAt), status: "sent", occurrence: String(sentAt) })
    .returning();
  const code = `a${randomUUID().replace(/-/g, "").slice(0, 11)}`;
  await db().insert(trackedLinks).values({ code, tenantId: tenant.id, sendId: s!.id, postId: entry.postId, contactId, url: `https://clinic.example.cn/a/${code}`, articleId: `art-${code}` });
  return code;
}

/** A patient opens the link at `when` (the services' clock is set to it). */
async function click(code: string, when: number): Promise<void> {
  clock = when;
  try {
    const res = await t.app.request(`/l/${code}`, { headers: { "user-agent": PHONE_UA }, redirect: "manual" });
    expect(res.status).toBe(302);
  } finally {
    clock = null;
  }
}

async function dwell(code: string, when: number): Promise<void> {
  clock = when;
  try {
    const res = await t.app.request(`/l/${code}/dwell`, { method: "POST", body: "95", headers: { "content-type": "text/plain" } });
    expect(res.status).toBe(204);
  } finally {
    clock = null;
  }
}

describe("attribution", () => {
  let tenant: TestTenant;
  let acne: Awaited<ReturnType<typeof calendarWith>>;
  let brand: Awaited<ReturnType<typeof calendarWith>>;
  const who: Record<string, string> = {};

  beforeAll(async () => {
    tenant = await createTestTenant(t.rt.deps);
    acne = await calendarWith(tenant, "acne", ["d1-tips", "d3-case"]);
    brand = await calendarWith(tenant, "brand", ["weekly-live"]);
    const E1 = acne.entries["d1-tips"]!;
    const E2 = acne.entries["d3-case"]!;
    const E3 = brand.entries["weekly-live"]!;
    for (const [name, owner] of [["A", "consultant"], ["B", "consultant"], ["C", "consultant2"], ["D", "consultant2"], ["E", "consultant2"]] as const) {
      const r = await client(t.app, tenant.tokens[owner]).post("/v1/contacts", { name: `客户${name}`, phone: phone() });
      expect(r.status).toBe(201);
      who[name] = r.body.id;
    }
    // Sends and their clicks (send_click touches).
    const a1 = await sentLink(tenant, acne, E1, who.A!, at(-1));
    const a2 = await sentLink(tenant, acne, E2, who.A!, at(3));
    const b1 = await sentLink(tenant, acne, E1, who.B!, at(0));
    const b3 = await sentLink(tenant, brand, E3, who.B!, at(5));
    const c3 = await sentLink(tenant, brand, E3, who.C!, at(-1));
    const d1 = await sentLink(tenant, acne, E1, who.D!, at(9));
    const e1 = await sentLink(tenant, acne, E1, who.E!, at(9));
    await click(a1, at(0));
    await dwell(a1, at(0, 60_000)); // the same click's dwell report: not a second touch
    await click(a2, at(4));
    await click(b1, at(1));
    await click(b3, at(6));
    await click(c3, at(0));
    await click(d1, at(10));
    await click(e1, at(10, -1000));
    // Reads, livestreams and conversions through the API.
    const ev = (contactId: string, type: string, when: number, data: Record<string, unknown>) => ({ type, contactId, occurredAt: new Date(when).toISOString(), idempotencyKey: randomUUID(), data });
    const batch = [
      ev(who.A!, "article_read", at(2), { articleId: "art-acne-guide", topic: "祛痘" }),
      ev(who.A!, "consultation_outcome", at(1), { outcome: "lost", lostReason: "价格敏感" }),
      ev(who.A!, "consultation_outcome", at(5), { outcome: "converted", amount: 6000, staffId: tenant.staff.consultant.id }), // X1
      ev(who.A!, "purchase", at(5, 2 * 3_600_000), { amount: 6000, items: ["祛痘疗程"] }), // the same deal at the till: not a conversion
      ev(who.B!, "livestream_attended", at(3), { liveId: "live-0315", minutes: 40, title: "春季祛痘直播" }),
      ev(who.B!, "purchase", at(7), { amount: 3000, items: ["果酸焕肤"] }), // X2
      ev(who.B!, "purchase", at(60), { amount: 999, items: ["面膜"] }), // after the period
      ev(who.C!, "consultation_outcome", at(40), { outcome: "converted", amount: 9000 }), // X3: its click was 40 days before
      ev(who.D!, "consultation_outcome", at(40), { outcome: "converted", amount: 1000 }), // X4: click exactly 30 days before
      ev(who.E!, "consultation_outcome", at(40), { outcome: "converted", amount: 500 }), // X5: click 30 days and 1 s before
    ];
    const res = await client(t.app, tenant.tokens.admin).post("/v1/events", { events: batch });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    await waitFor(async () => {
      const [r] = await db().select({ n: sql<number>`count(*)::int` }).from(metricFacts).where(eq(metricFacts.tenantId, tenant.id));
      return Number(r!.n) === 8;
    }, { what: "the conversions applied" });
    // The clicks stored article_read events that name their send; the dwell report says link-dwell.
    const reads = await db().select().from(events).where(and(eq(events.tenantId, tenant.id), eq(events.contactId, who.A!), eq(events.type, "article_read")));
    expect(reads.filter((e) => e.source === "link").map((e) => e.payload.via).sort()).toEqual(["link", "link", "link-dwell"]);
  });

  const period = () => `from=${new Date(at(0)).toISOString()}&to=${new Date(at(45)).toISOString()}`;
  const get = (q: string, as: keyof TestTenant["tokens"] = "marketing") => client(t.app, tenant.tokens[as]).get(`/v1/attribution?${period()}&${q}`);
  const byKey = (items: { key: string | null }[]): Record<string, any> => Object.fromEntries(items.map((i) => [i.key ?? "null", i]));

  it("counts conversions once (a purchase right after a converted consultation is the same deal) and splits attributed from unattributed", async () => {
    const r = await get("model=last_touch&by=entry");
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    // X1 6000, X2 3000, X3 9000, X4 1000, X5 500; X3 and X5 have no touch within 30 days.
    expect(r.body).toMatchObject({
      windowDays: 30,
      conversions: { conversions: 5, revenue: 19_500 },
      attributed: { conversions: 3, revenue: 10_000 },
      unattributed: { conversions: 2, revenue: 9_500 },
    });
  });

  it("credits the latest touch by last touch, per calendar entry", async () => {
    const E = (k: string) => (k === "weekly-live" ? brand : acne).entries[k]!.id;
    const r = await get("model=last_touch&by=entry");
    const items = byKey(r.body.items);
    // X1 (A): E1 d0, article d2, E2 d4 -> E2. X2 (B): E1 d1, live d3, E3 d6 -> E3. X4 (D): E1 d10 -> E1.
    expect(items[E("d3-case")]).toMatchObject({ conversions: 1, revenue: 6000, entryKey: "d3-case", calendarId: acne.id, calendarName: "acne 日历", touches: 1, contacts: 1 });
    expect(items[E("weekly-live")]).toMatchObject({ conversions: 1, revenue: 3000, calendarId: brand.id });
    expect(items[E("d1-tips")]).toMatchObject({ conversions: 1, revenue: 1000, touches: 3, contacts: 3 });
    expect(r.body.outsideCalendars).toEqual({ conversions: 0, revenue: 0 });
    expect(r.body.items.map((i: { key: string }) => i.key)).toEqual([E("d3-case"), E("weekly-live"), E("d1-tips")]);
  });

  it("shares each conversion equally among its touches by linear, with revenue in the same shares", async () => {
    const E = (k: string) => (k === "weekly-live" ? brand : acne).entries[k]!.id;
    const r = await get("model=linear&by=entry");
    const items = byKey(r.body.items);
    // E1: X1/3 + X2/3 + X4 = 1.6667, 2000 + 1000 + 1000; E2: X1/3, 2000; E3: X2/3, 1000.
    expect(items[E("d1-tips")]).toMatchObject({ conversions: 1.6667, revenue: 4000 });
    expect(items[E("d3-case")]).toMatchObject({ conversions: 0.3333, revenue: 2000 });
    expect(items[E("weekly-live")]).toMatchObject({ conversions: 0.3333, revenue: 1000 });
    // The article (X1/3, 2000) and the livestream (X2/3, 1000) are outside calendars.
    expect(r.body.outsideCalendars).toEqual({ conversions: 0.6667, revenue: 3000 });
    const cal = byKey((await get("model=linear&by=calendar")).body.items);
    expect(cal[acne.id]).toMatchObject({ conversions: 2, revenue: 6000, label: "acne 日历" });
    expect(cal[brand.id]).toMatchObject({ conversions: 0.3333, revenue: 1000 });
  });

  it("lists every piece of content touched, by kind", async () => {
    const r = await get("model=linear&by=content");
    const items = byKey(r.body.items);
    expect(items["article_read:art-acne-guide"]).toMatchObject({ kind: "article_read", label: "祛痘", conversions: 0.3333, revenue: 2000, touches: 1 });
    expect(items["livestream:live-0315"]).toMatchObject({ kind: "livestream", label: "春季祛痘直播", conversions: 0.3333, revenue: 1000 });
    expect(items[`send_click:${acne.entries["d1-tips"]!.id}`]).toMatchObject({ kind: "send_click", label: "d1-tips", entryKey: "d1-tips", conversions: 1.6667 });
    expect(r.body.items).toHaveLength(5);
  });

  it("credits per consultant: all their conversions, the attributed ones, and the credit by touch kind", async () => {
    const lt = byKey((await get("model=last_touch&by=consultant")).body.items);
    const me = tenant.staff.consultant.id;
    const other = tenant.staff.consultant2.id;
    expect(lt[me]).toMatchObject({ totalConversions: 2, totalRevenue: 9000, conversions: 2, revenue: 9000, unattributedConversions: 0 });
    expect(lt[me].byKind).toEqual({ send_click: { conversions: 2, revenue: 9000 }, article_read: { conversions: 0, revenue: 0 }, livestream: { conversions: 0, revenue: 0 } });
    expect(lt[other]).toMatchObject({ totalConversions: 3, totalRevenue: 10_500, conversions: 1, revenue: 1000, unattributedConversions: 2 });
    const ln = byKey((await get("model=linear&by=consultant")).body.items);
    // X1: E1, article, E2 a third each (2000 each); X2: E1, live, E3 a third each (1000 each).
    expect(ln[me].byKind).toEqual({ send_click: { conversions: 1.3333, revenue: 6000 }, article_read: { conversions: 0.3333, revenue: 2000 }, livestream: { conversions: 0.3333, revenue: 1000 } });
    expect(ln[me]).toMatchObject({ conversions: 2, revenue: 9000 });
  });

  it("gives the same answer however many parts the conversions are split into (by contact, run side by side)", async () => {
    // The id ranges cover every id once, in order.
    const ranges = contactRanges(7);
    expect(ranges[0]![0]).toBeNull();
    expect(ranges[6]![1]).toBeNull();
    for (let k = 1; k < 7; k++) expect(ranges[k]![0]).toBe(ranges[k - 1]![1]);
    // A split that puts the five contacts in more than one part (E1's credit comes from A, B and D).
    const partsOf = (n: number) => new Set(Object.values(who).map((id) => contactRanges(n).findIndex(([lo, hi]) => (lo === null || id >= lo) && (hi === null || id < hi))));
    expect([...partsOf(7)].every((k) => k >= 0)).toBe(true);
    const spread = Array.from({ length: 15 }, (_, i) => i + 2).find((n) => partsOf(n).size > 1);
    expect(spread).toBeDefined();
    const ctxIn = (parts: number) => systemCtx({ ...t.rt.deps, config: { ...t.rt.deps.config, METRICS_PARALLEL_STATEMENTS: parts } }, tenant.id, "test");
    for (const by of ["entry", "calendar", "content", "consultant"] as const) {
      for (const model of ["last_touch", "linear"] as const) {
        const input = { from: new Date(at(0)).toISOString(), to: new Date(at(45)).toISOString(), by, model };
        const one = await attribution({ ctx: ctxIn(1), input });
        expect(one.items.length).toBeGreaterThan(0);
        for (const parts of new Set([2, 7, spread!])) expect(await attribution({ ctx: ctxIn(parts), input }), `${by} ${model} in ${parts} parts`).toEqual(one);
      }
    }
  });

  it("takes the window from the query, else the tenant's analytics settings; its edge is inclusive", async () => {
    // 45 days: X3's click (40 days before) and X5's (30 days and 1 s) count now, both last-touch to their entries.
    const wide = await get("model=last_touch&by=entry&windowDays=45");
    expect(wide.body).toMatchObject({ windowDays: 45, attributed: { conversions: 5, revenue: 19_500 }, unattributed: { conversions: 0, revenue: 0 } });
    expect(byKey(wide.body.items)[brand.entries["weekly-live"]!.id]).toMatchObject({ conversions: 2, revenue: 12_000 });
    await db().insert(analyticsSettings).values({ tenantId: tenant.id, config: { attribution: { windowDays: 5 } } });
    try {
      // 5 days: X1 keeps article d2 and E2 d4 (E1 d0 is 5 days before: the edge, kept); X2 keeps live d3 and E3 d6; X4 loses its click.
      const narrow = await get("model=linear&by=entry");
      expect(narrow.body).toMatchObject({ windowDays: 5, attributed: { conversions: 2, revenue: 9000 } });
      expect(byKey(narrow.body.items)[acne.entries["d1-tips"]!.id]).toMatchObject({ conversions: 0.3333, revenue: 2000 });
    } finally {
      await db().delete(analyticsSettings).where(eq(analyticsSettings.tenantId, tenant.id));
    }
  });

  it("feeds the calendar report per entry, keeping its existing fields", async () => {
    const r = await client(t.app, tenant.tokens.marketing).get(`/v1/calendars/${acne.id}/report`);
    expect(r.status).toBe(200);
    expect(r.body.touchWindowDays).toBe(30);
    const entries = Object.fromEntries(r.body.entries.map((e: { key: string }) => [e.key, e]));
    expect(entries["d1-tips"]).toMatchObject({ planned: 4, sent: 4, clickedRecipients: 4, lastTouchConversions: 1, linearConversions: 1.6667, attributedRevenue: 1000, linearRevenue: 4000 });
    expect(entries["d3-case"]).toMatchObject({ planned: 1, lastTouchConversions: 1, linearConversions: 0.3333, attributedRevenue: 6000, linearRevenue: 2000 });
    for (const e of r.body.entries) expect(e).toHaveProperty("conversions");
  });

  it("refuses roles without metrics:read and names bad fields", async () => {
    expect((await get("by=entry", "consultant")).status).toBe(403);
    expect((await get("by=entry", "reviewer")).status).toBe(403);
    const bad = await get("by=clinic&model=first_touch");
    expect(bad.status).toBe(422);
    expect(bad.body.errors.map((e: { field: string }) => e.field).sort()).toEqual(["by", "model"]);
    const backwards = await client(t.app, tenant.tokens.manager).get(`/v1/attribution?from=2026-03-10&to=2026-03-01`);
    expect(backwards.status).toBe(422);
    expect(backwards.body.errors[0].field).toBe("from");
    // Local dates are days of the tenant's time zone, `to` excluded as in /v1/metrics; another tenant sees none of this one's conversions.
    const empty = await client(t.app, tenant.tokens.manager).get(`/v1/attribution?from=2026-01-01&to=2026-01-01`);
    expect(empty.status).toBe(422);
    const days = await client(t.app, tenant.tokens.manager).get(`/v1/attribution?from=2026-01-01&to=2026-01-02`);
    expect(days.body).toMatchObject({ from: "2025-12-31T16:00:00.000Z", to: "2026-01-01T16:00:00.000Z" });
    const other = await createTestTenant(t.rt.deps);
    const foreign = await client(t.app, other.tokens.admin).get(`/v1/attribution?${period()}&by=entry`);
    expect(foreign.body).toMatchObject({ conversions: { conversions: 0, revenue: 0 }, items: [] });
  });
});
