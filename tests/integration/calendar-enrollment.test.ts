import { randomUUID } from "node:crypto";
import { and, eq, sql } from "drizzle-orm";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { auditLog, calendarEnrollments, calendarEntries, calendars, contacts, events, posts, sends, tagRuleSets, trackedLinks } from "../../src/db/schema/index";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { client, createTestTenant, phone, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";
import { ROOT } from "../helpers/cli";

let t: TestRuntime;
let workers: RunningWorker[] = [];
beforeAll(async () => {
  t = await createTestRuntime();
  workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["events", "maintenance"]);
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await t?.close();
});

/** A published calendar row as publishing leaves it (publish itself is tested in calendars.test.ts). */
async function calendarRow(tenant: TestTenant, o: { key: string; kind: "dated" | "relative"; entries?: string[]; enrollment?: Record<string, unknown> }) {
  const db = t.rt.deps.db;
  const definition = o.enrollment ? { audience: { enrollment: o.enrollment } } : {};
  const [cal] = await db.insert(calendars).values({ tenantId: tenant.id, key: o.key, name: o.key, source: "api", kind: o.kind, definition, contentHash: randomUUID(), version: 1, status: "published", publishedAt: new Date() }).returning();
  const entries = [];
  for (const key of o.entries ?? []) {
    const [p] = await db.insert(posts).values({ tenantId: tenant.id, kind: "mass_message", body: `${key} 内容`, contentHash: randomUUID(), status: "approved" }).returning();
    const [e] = await db.insert(calendarEntries).values({ tenantId: tenant.id, calendarId: cal!.id, key, when: { day: 1, time: "10:00" }, kind: "text", channel: "single", postId: p!.id, calendarVersion: 1 }).returning();
    entries.push(e!);
  }
  return { cal: cal!, entries };
}

async function newContact(tenant: TestTenant, key: "consultant" | "consultant2" = "consultant") {
  const r = await client(t.app, tenant.tokens[key]).post("/v1/contacts", { name: "赵女士", phone: phone(), externalUserId: `wm${randomUUID().replace(/-/g, "")}` });
  expect(r.status).toBe(201);
  return r.body.id as string;
}

describe("enrollment in relative calendars", () => {
  it("enrolls by hand once, refuses dated calendars and other consultants' contacts, and ends early with planned sends cancelled", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const { cal, entries } = await calendarRow(tenant, { key: "aftercare", kind: "relative", entries: ["day1"] });
    const dated = await calendarRow(tenant, { key: "weekly", kind: "dated" });
    const contactId = await newContact(tenant);
    const me = client(t.app, tenant.tokens.consultant);
    const first = await me.post(`/v1/calendars/${cal.id}/enrollments`, { contactId, note: "术后护理" });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ calendarId: cal.id, contactId, source: "api", endedAt: null });
    expect((await me.post(`/v1/calendars/${cal.id}/enrollments`, { contactId })).status).toBe(409);
    const wrong = await me.post(`/v1/calendars/${dated.cal.id}/enrollments`, { contactId });
    expect(wrong.status).toBe(422);
    expect(wrong.body.errors[0]).toMatchObject({ field: "id" });
    const foreign = await client(t.app, tenant.tokens.consultant2).post(`/v1/calendars/${cal.id}/enrollments`, { contactId });
    expect(foreign.status).toBe(404);
    // Delivery plans the enrollment's sends once it commits; a planned one is cancelled when it ends.
    const db = t.rt.deps.db;
    const planned = await waitFor(async () => (await db.select().from(sends).where(and(eq(sends.enrollmentId, first.body.id), eq(sends.entryId, entries[0]!.id))))[0], { what: "the enrollment's send planned" });
    expect(planned.status, planned.reason ?? "").toBe("planned");
    const noReason = await me.post(`/v1/calendars/${cal.id}/enrollments/end`, { contactId });
    expect(noReason.status).toBe(422);
    const end = await me.post(`/v1/calendars/${cal.id}/enrollments/end`, { contactId, reason: "客户要求停止" });
    expect(end.body).toEqual({ ended: 1 });
    const [after] = await db.select().from(sends).where(eq(sends.id, planned!.id));
    expect(after).toMatchObject({ status: "cancelled" });
    expect(after!.reason).toContain("客户要求停止");
    expect((await me.post(`/v1/calendars/${cal.id}/enrollments/end`, { contactId, reason: "again" })).status).toBe(404);
    // Enrolling again after the end is a new enrollment.
    expect((await me.post(`/v1/calendars/${cal.id}/enrollments`, { contactId })).status).toBe(201);
    const list = await client(t.app, tenant.tokens.marketing).get(`/v1/calendars/${cal.id}/enrollments`);
    expect(list.body.items).toHaveLength(2);
    expect((await client(t.app, tenant.tokens.marketing).get(`/v1/calendars/${cal.id}/enrollments?active=true`)).body.items).toHaveLength(1);
    const audits = await db.select().from(auditLog).where(and(eq(auditLog.tenantId, tenant.id), eq(auditLog.entityId, contactId)));
    expect(audits.map((a) => a.action).filter((a) => a.startsWith("calendar."))).toEqual(["calendar.enroll", "calendar.unenroll", "calendar.enroll"]);
  });

  it("enrolls from a rule's `enroll` action when the event arrives (the events worker)", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const { cal } = await calendarRow(tenant, { key: "post-treatment-care-30d", kind: "relative" });
    // Publish a rule set that enrolls converted consultations into the aftercare calendar.
    const admin = client(t.app, tenant.tokens.admin);
    const current = await admin.get("/v1/tag-rules");
    expect(current.status).toBe(200);
    const draft = { rules: [{ id: "enroll-aftercare", name: "成交后进入术后关怀", trigger: { events: ["consultation_outcome"] }, when: { agg: { metric: "count", events: ["consultation_outcome"], where: { outcome: "converted" } }, op: "gte", value: 1 }, then: [{ enroll: { calendar: "post-treatment-care-30d" } }] }] };
    expect((await admin.call("PUT", "/v1/tag-rules/draft", draft)).status).toBe(200);
    expect((await admin.post("/v1/tag-rules/draft/publish", {})).status).toBeLessThan(300);
    await waitFor(async () => (await t.rt.deps.db.select().from(tagRuleSets).where(and(eq(tagRuleSets.tenantId, tenant.id), eq(tagRuleSets.status, "published")))).length > 0, { what: "rules published" });
    const contactId = await newContact(tenant);
    const ev = { events: [{ type: "consultation_outcome", contactId, occurredAt: new Date().toISOString(), idempotencyKey: randomUUID(), data: { outcome: "converted", amount: 3800, items: ["水光针"] } }] };
    expect((await admin.post("/v1/events", ev)).status).toBe(202);
    const e = await waitFor(async () => (await t.rt.deps.db.select().from(calendarEnrollments).where(eq(calendarEnrollments.contactId, contactId)))[0], { what: "the rule's enrollment" });
    expect(e).toMatchObject({ calendarId: cal.id, source: "rule", endedAt: null });
    expect(e.sourceRef).toMatch(/^rule:enroll-aftercare:/);
  });
});

const post = (contactId: string, type: string, data: Record<string, unknown>, at = new Date()) => ({ events: [{ type, contactId, occurredAt: at.toISOString(), idempotencyKey: randomUUID(), data }] });
const enrollmentsOf = (contactId: string) => t.rt.deps.db.select().from(calendarEnrollments).where(eq(calendarEnrollments.contactId, contactId)).orderBy(calendarEnrollments.createdAt);

describe("enrollment triggers", () => {
  it("enrolls on an event (at its time) and ends on a lost consultation", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const { cal } = await calendarRow(tenant, { key: "aftercare-visit", kind: "relative", enrollment: { on: { event: "visit" }, endOn: { outcome: "lost" } } });
    const contactId = await newContact(tenant);
    const admin = client(t.app, tenant.tokens.admin);
    const visitAt = new Date(Date.now() - 3_600_000);
    expect((await admin.post("/v1/events", post(contactId, "visit", { item: "光子嫩肤" }, visitAt))).status).toBe(202);
    const [e] = await waitFor(async () => {
      const rows = await enrollmentsOf(contactId);
      return rows.length ? rows : null;
    }, { what: "enrollment on the visit" });
    expect(e).toMatchObject({ calendarId: cal.id, source: "event", endedAt: null });
    expect(e!.enrolledAt.getTime()).toBe(visitAt.getTime());
    expect((await admin.post("/v1/events", post(contactId, "consultation_outcome", { outcome: "lost", lostReason: "价格敏感" }))).status).toBe(202);
    const ended = await waitFor(async () => (await enrollmentsOf(contactId)).find((x) => x.endedAt), { what: "enrollment ended by the lost outcome" });
    expect(ended.endReason).toBe("outcome lost");
  });

  it("anchors appointment reminders at the appointment, and a new booking moves them", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    await calendarRow(tenant, { key: "appointment-reminders", kind: "relative", enrollment: { on: { event: "appointment_booked" } } });
    const contactId = await newContact(tenant);
    const admin = client(t.app, tenant.tokens.admin);
    const first = new Date(Date.now() + 2 * 86_400_000);
    expect((await admin.post("/v1/events", post(contactId, "appointment_booked", { at: first.toISOString(), item: "面诊" }))).status).toBe(202);
    await waitFor(async () => (await enrollmentsOf(contactId)).length === 1, { what: "enrolled at the appointment" });
    expect((await enrollmentsOf(contactId))[0]!.enrolledAt.getTime()).toBe(first.getTime());
    const second = new Date(Date.now() + 3 * 86_400_000);
    expect((await admin.post("/v1/events", post(contactId, "appointment_booked", { at: second.toISOString() }))).status).toBe(202);
    const rows = await waitFor(async () => {
      const r = await enrollmentsOf(contactId);
      return r.length === 2 ? r : null;
    }, { what: "re-anchored on the new booking" });
    expect(rows[0]).toMatchObject({ endReason: "rebooked" });
    expect(rows[1]!.endedAt).toBeNull();
    expect(rows[1]!.enrolledAt.getTime()).toBe(second.getTime());
  });

  it("enrolls when the contact gets a tag, and by segment in the sweep (leaving the segment ends it)", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const byTag = await calendarRow(tenant, { key: "acne-nurture", kind: "relative", enrollment: { on: { tag: "need:祛痘" } } });
    const bySeg = await calendarRow(tenant, { key: "acne-seg", kind: "relative", enrollment: { on: { segment: "need:祛痘" }, endOn: { leaveSegment: true } } });
    const contactId = await newContact(tenant);
    expect((await client(t.app, tenant.tokens.admin).post("/v1/events", post(contactId, "message_received", { text: "最近脸上一直长痘痘，想咨询一下祛痘" }))).status).toBe(202);
    const tagged = await waitFor(async () => (await enrollmentsOf(contactId)).find((e) => e.calendarId === byTag.cal.id), { what: "enrolled by the tag" });
    expect(tagged).toMatchObject({ source: "tag", sourceRef: "need:祛痘" });
    const { sweepSegmentEnrollments } = await import("../../src/services/calendars/triggers");
    expect((await sweepSegmentEnrollments(t.rt.deps, tenant.id)).enrolled).toBe(1);
    expect((await sweepSegmentEnrollments(t.rt.deps, tenant.id)).enrolled).toBe(0);
    await t.rt.deps.db.execute(sql`delete from contact_tags where contact_id = ${contactId}::uuid`);
    await t.rt.deps.db.execute(sql`delete from contact_tag_state where contact_id = ${contactId}::uuid`);
    expect((await sweepSegmentEnrollments(t.rt.deps, tenant.id)).ended).toBe(1);
    const seg = (await enrollmentsOf(contactId)).find((e) => e.calendarId === bySeg.cal.id)!;
    expect(seg).toMatchObject({ source: "segment", endReason: "left the segment" });
    // Never enrolled twice by the segment, even after leaving: entering again is not a new start.
    expect((await sweepSegmentEnrollments(t.rt.deps, tenant.id)).enrolled).toBe(0);
  });
});

describe("appointment reminders (the shipped calendar)", () => {
  it("plans service reminders the evening before and two hours before the appointment, for the owner to confirm", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const file = parseYaml(readFileSync(path.join(ROOT, "content-calendars/appointment-reminders.yaml"), "utf8")) as Record<string, unknown>;
    const mk = client(t.app, tenant.tokens.marketing);
    const created = await mk.post("/v1/calendars", { key: "appointment-reminders", ...file });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const published = await mk.post(`/v1/calendars/${created.body.id}/publish`);
    expect(published.status, JSON.stringify(published.body)).toBe(200);
    for (const e of published.body.entries as { postId: string }[]) {
      for (const who of ["reviewer", "admin"] as const) {
        const p = await client(t.app, tenant.tokens[who]).get(`/v1/posts/${e.postId}`);
        if (p.body.status !== "in_review") break;
        expect((await client(t.app, tenant.tokens[who]).post(`/v1/posts/${e.postId}/reviews`, { decision: "approve", contentHash: p.body.contentHash })).status).toBe(200);
      }
    }
    const contactId = await newContact(tenant);
    // An appointment three days ahead at 15:00 Shanghai time.
    const day = new Date(Date.now() + 3 * 86_400_000).toLocaleDateString("sv-SE", { timeZone: "Asia/Shanghai" });
    const appointment = new Date(`${day}T15:00:00+08:00`);
    expect((await client(t.app, tenant.tokens.admin).post("/v1/events", post(contactId, "appointment_booked", { at: appointment.toISOString(), item: "面诊" }))).status).toBe(202);
    const rows = await waitFor(async () => {
      const r = await t.rt.deps.db.select().from(sends).where(eq(sends.contactId, contactId));
      return r.length === 2 ? r : null;
    }, { what: "both reminders planned" });
    const byEntry = new Map(published.body.entries.map((e: { key: string; entryId: string }) => [e.entryId, e.key]));
    const at = Object.fromEntries(rows.map((r) => [byEntry.get(r.entryId!), r]));
    const dayBefore = new Date(new Date(`${day}T19:00:00+08:00`).getTime() - 86_400_000);
    expect(at["day-before"]!.scheduledAt.toISOString()).toBe(dayBefore.toISOString());
    expect(at["two-hours-before"]!.scheduledAt.toISOString()).toBe(new Date(appointment.getTime() - 120 * 60_000).toISOString());
    for (const r of rows) expect(r).toMatchObject({ status: "planned", service: true, senderStaffId: tenant.staff.consultant.id });
  });
});

describe("calendar reports", () => {
  it("counts planned, sent, failed, skipped with reasons, clicks, and conversions by last touch within the window", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const db = t.rt.deps.db;
    const { cal, entries } = await calendarRow(tenant, { key: "acne-7d", kind: "dated", entries: ["d1-tips", "d2-live"] });
    const [e1, e2] = entries;
    const people = await db.insert(contacts).values(Array.from({ length: 6 }, (_, i) => ({ tenantId: tenant.id, name: `客户${i}`, source: "api" }))).returning({ id: contacts.id });
    const ids = people.map((p) => p.id);
    const day = 86_400_000;
    const t0 = Date.now() - 10 * day;
    const send = (entry: typeof e1, contactId: string, status: (typeof sends.$inferInsert)["status"], sentAt: number | null, reason: string | null = null) => ({
      tenantId: tenant.id, postId: entry!.postId!, calendarId: cal.id, entryId: entry!.id, contactId, scheduledAt: new Date(t0), status, reason, sentAt: sentAt === null ? null : new Date(sentAt),
    });
    const rows = await db
      .insert(sends)
      .values([
        send(e1, ids[0]!, "sent", t0),
        send(e1, ids[1]!, "sent", t0),
        send(e1, ids[2]!, "over_quota", null),
        send(e1, ids[3]!, "skipped", null, "opted out"),
        send(e1, ids[4]!, "skipped", null, "opted out"),
        send(e1, ids[5]!, "skipped", null, "fatigue cap"),
        send(e2, ids[0]!, "sent", t0 + 2 * day),
        send(e2, ids[1]!, "not_friend", null),
      ])
      .returning();
    // Clicks: contact 0 clicked e1's link twice; contact 1 never.
    await db.insert(trackedLinks).values([
      { code: `c${randomUUID().slice(0, 9)}`, tenantId: tenant.id, sendId: rows[0]!.id, postId: e1!.postId, contactId: ids[0]!, url: "https://example.com/a", clicks: 2 },
      { code: `c${randomUUID().slice(0, 9)}`, tenantId: tenant.id, sendId: rows[1]!.id, postId: e1!.postId, contactId: ids[1]!, url: "https://example.com/a", clicks: 0 },
    ]);
    // Conversions: contact 0 buys 3 days after e1 and 1 day after e2 -> last touch is e2;
    // contact 1 converts 5 days after e1 (in the 7-day window) -> e1; a purchase 9 days after e1 by contact 1 is outside it.
    const ev = (contactId: string, type: string, at: number, payload: Record<string, unknown>) => ({ tenantId: tenant.id, contactId, type, occurredAt: new Date(at), source: "api", idempotencyKey: randomUUID(), payload });
    await db.insert(events).values([
      ev(ids[0]!, "purchase", t0 + 3 * day, { amount: 2000, items: ["祛痘疗程"] }),
      ev(ids[1]!, "consultation_outcome", t0 + 5 * day, { outcome: "converted", amount: 5000 }),
      ev(ids[1]!, "purchase", t0 + 9 * day, { amount: 999, items: ["x"] }),
      ev(ids[2]!, "purchase", t0 + 1 * day, { amount: 100, items: ["y"] }),
    ]);
    const res = await client(t.app, tenant.tokens.marketing).get(`/v1/calendars/${cal.id}/report`);
    expect(res.status).toBe(200);
    const byKey = Object.fromEntries(res.body.entries.map((e: { key: string }) => [e.key, e]));
    // Worked out by hand from the rows above.
    expect(byKey["d1-tips"]).toMatchObject({ planned: 6, sent: 2, failed: 1, clickedRecipients: 1, clicks: 2, conversions: 1, revenue: 5000 });
    expect(byKey["d1-tips"].skipped).toEqual([{ reason: "opted out", n: 2 }, { reason: "fatigue cap", n: 1 }]);
    expect(byKey["d2-live"]).toMatchObject({ planned: 2, sent: 1, failed: 1, clickedRecipients: 0, clicks: 0, conversions: 1, revenue: 2000 });
    const wide = await client(t.app, tenant.tokens.marketing).get(`/v1/calendars/${cal.id}/report?attributionDays=30`);
    const d1 = wide.body.entries.find((e: { key: string }) => e.key === "d1-tips");
    expect(d1).toMatchObject({ conversions: 1, revenue: 5000 + 999 });
    expect((await client(t.app, tenant.tokens.consultant).get(`/v1/calendars/${cal.id}/report`)).status).toBe(403);
  });
});
