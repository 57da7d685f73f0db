/**
 * Funnel metrics and consultant scorecards over a seeded scenario whose every figure is computed by
 * hand below (docs/metrics.md has the definitions). Events go through ingestEvents + processEvents,
 * so metric_facts are written by the events worker's own code; leads, SLA breaches, follow-ups and
 * calendar sends are seeded as rows with exact times (their services are tested elsewhere, and they
 * stamp the current time).
 *
 * The period P is 20 local days (Asia/Shanghai) starting 40 days ago: day n below is local day
 * B0 + n, "day 0 00:30" is 00:30 in Shanghai (16:30 UTC the day before).
 *
 * People: clinics A (朝阳店) and B (海淀店); consultants C1 (clinic A), C2 and C3 (clinic B).
 * Contacts (owner, clinic, channel = source state or source, gender, created):
 *   k0  C1 A  import     male    day -100            (old customer; refers k2)
 *   k1  C1 A  qr_poster  female  day 1
 *   k2  C1 A  qr_poster  male    day 2, referred by k0
 *   k3  C2 B  qr_live    female  day 3
 *   k4  C2 B  import     male    day 4, referred by k1
 *   k5  C3 B  qr_live    female  day 0 00:30        (just inside P)
 *   k6  C3 -  import     male    day -1 23:30       (just outside P; clinic: C3's, B)
 * Segments: S1 `gender = female` = {k1, k3, k5}; S2 `source = import` = {k0, k4, k6}.
 * Calendar 术后关怀 sent (status sent, in P) to k1 and k4; k3's send was before P; k5's failed.
 */
import { randomUUID } from "node:crypto";
import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { calendarEntries, calendars, followUps, leadAssignments, leads, leadSlaBreaches, posts, segments, sends, wecomChannels } from "../../src/db/schema/index";
import { systemCtx, type Ctx } from "../../src/services/context";
import { createContact } from "../../src/services/contacts/create";
import { ingestEvents } from "../../src/services/events/ingest";
import { processEvents } from "../../src/services/events/process";
import { computeMetric } from "../../src/services/metrics/compute-metric";
import { createStaff } from "../../src/services/staff/create";
import { createToken } from "../../src/services/tokens/tokens";
import { client, createTestTenant, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";

let t: TestRuntime;
let tenant: TestTenant;
let other: TestTenant;
let ctx: Ctx;
let c3Token: string;
const id: Record<string, string> = {};

// ------------------------------------------------------------ time

const DAY = 86_400_000;
/** B0: the local (Shanghai) date 40 days ago. */
const B0 = new Date(new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10) + "T00:00:00Z").getTime() - 40 * DAY;
const day = (n: number) => new Date(B0 + n * DAY).toISOString().slice(0, 10);
/** Local day n at HH:MM in Shanghai, as an instant. */
const at = (n: number, hhmm = "10:00") => new Date(`${day(n)}T${hhmm}:00+08:00`);
const FROM = day(0);
const TO = day(20);
const P = `from=${FROM}&to=${TO}`;

const rate = (numerator: number, denominator: number) => ({ numerator, denominator, value: denominator > 0 ? numerator / denominator : null });
const nps = (responses: number, promoters: number, detractors: number) => ({ responses, promoters, passives: responses - promoters - detractors, detractors, value: responses ? ((promoters - detractors) * 100) / responses : null });

// ------------------------------------------------------------ seed

beforeAll(async () => {
  t = await createTestRuntime();
  tenant = await createTestTenant(t.rt.deps);
  other = await createTestTenant(t.rt.deps);
  ctx = systemCtx(t.rt.deps, tenant.id, "test");
  const db = t.rt.deps.db;
  const admin = client(t.app, tenant.tokens.admin);

  const clinicA = await admin.post("/v1/clinics", { name: "朝阳店" });
  const clinicB = await admin.post("/v1/clinics", { name: "海淀店" });
  id.A = clinicA.body.id;
  id.B = clinicB.body.id;
  id.C1 = tenant.staff.consultant.id;
  id.C2 = tenant.staff.consultant2.id;
  expect((await admin.patch(`/v1/staff/${id.C1}`, { clinicId: id.A })).status).toBe(200);
  expect((await admin.patch(`/v1/staff/${id.C2}`, { clinicId: id.B })).status).toBe(200);
  const c3 = await createStaff({ ctx, input: { name: `consultant3 ${tenant.slug}`, email: `consultant3@${tenant.slug}.test`, role: "consultant", clinicId: id.B } });
  id.C3 = c3.id;
  c3Token = (await createToken({ ctx, input: { staffId: c3.id, name: "test" } })).token;
  // A channel code with a name (qr_live has none: its label is the code).
  await db.insert(wecomChannels).values({ tenantId: tenant.id, kind: "channel", name: "海报活码", state: "qr_poster", configId: "cfg-poster", staffUserIds: ["consultant"] });

  const contact = async (key: string, o: { owner: string; clinic?: string; source: string; state?: string; gender: "male" | "female"; referrer?: string; created: Date }) => {
    const c = await createContact({
      ctx,
      input: { name: key, source: o.source, ...(o.state ? { sourceState: o.state } : {}), gender: o.gender, ownerStaffId: id[o.owner], ...(o.clinic ? { clinicId: id[o.clinic] } : {}), ...(o.referrer ? { referrerContactId: id[o.referrer] } : {}) },
    });
    id[key] = c.id;
    await db.execute(sql`update contacts set created_at = ${o.created.toISOString()}::timestamptz where id = ${c.id}::uuid`);
  };
  await contact("k0", { owner: "C1", clinic: "A", source: "import", gender: "male", created: at(-100) });
  await contact("k1", { owner: "C1", clinic: "A", source: "wecom", state: "qr_poster", gender: "female", created: at(1) });
  await contact("k2", { owner: "C1", clinic: "A", source: "wecom", state: "qr_poster", gender: "male", referrer: "k0", created: at(2) });
  await contact("k3", { owner: "C2", clinic: "B", source: "wecom", state: "qr_live", gender: "female", created: at(3) });
  await contact("k4", { owner: "C2", clinic: "B", source: "import", gender: "male", referrer: "k1", created: at(4) });
  await contact("k5", { owner: "C3", clinic: "B", source: "wecom", state: "qr_live", gender: "female", created: at(0, "00:30") });
  await contact("k6", { owner: "C3", source: "import", gender: "male", created: at(-1, "23:30") });

  // Events, applied by the events worker's code (metric_facts credit the owner unless the event names a consultant).
  const ev: { type: string; contactId: string; occurredAt: string; idempotencyKey: string; data: Record<string, unknown> }[] = [];
  const e = (type: string, k: string, when: Date, data: Record<string, unknown> = {}) => ev.push({ type, contactId: id[k]!, occurredAt: when.toISOString(), idempotencyKey: randomUUID(), data });
  const appt = (k: string, when: Date) => e("appointment_booked", k, when, { at: new Date(when.getTime() + 3 * DAY).toISOString() });
  appt("k1", at(1));
  appt("k2", at(2));
  appt("k3", at(3));
  appt("k4", at(4));
  appt("k5", at(0, "00:30")); // in P: 16:30 UTC the day before
  appt("k6", at(-1, "23:30")); // out: the local day before P
  appt("k3", at(20, "00:10")); // out: the local day after P (still inside P in UTC)
  appt("k1", at(25));
  e("visit", "k1", at(2), { clinicId: id.A });
  e("visit", "k3", at(4));
  e("visit", "k5", at(1));
  e("visit", "k4", at(6), { clinicId: id.A }); // k4 (clinic B) visited clinic A: the fact is A's
  e("consultation_outcome", "k1", at(3), { outcome: "converted", amount: 6800, items: ["热玛吉"], staffId: id.C1 });
  e("consultation_outcome", "k3", at(5), { outcome: "lost", lostReason: "价格敏感" });
  e("consultation_outcome", "k4", at(7), { outcome: "converted", amount: 3000, items: ["水光针"], staffId: id.C3 }); // credited to C3, not the owner C2
  e("consultation_outcome", "k5", at(2), { outcome: "converted", amount: 12000, items: ["种植牙"] });
  e("consultation_outcome", "k2", at(4), { outcome: "lost", lostReason: "价格敏感" });
  e("purchase", "k1", at(-50), { amount: 2000, items: ["光子嫩肤"] }); // before P: makes k1 a repeat buyer
  e("purchase", "k1", at(3), { amount: 6800, items: ["热玛吉"] });
  e("purchase", "k4", at(7), { amount: 3000, items: ["水光针"], staffId: id.C3 });
  e("purchase", "k5", at(2, "11:00"), { amount: 12000, items: ["种植牙"] });
  e("purchase", "k5", at(2, "15:00"), { amount: 500, items: ["洁牙"] }); // same local day: not a second visit to buy
  e("purchase", "k3", at(9), { amount: 1500, items: ["祛痘"] });
  e("purchase", "k3", at(25), { amount: 900, items: ["祛痘"] }); // after P: does not make k3 a repeat buyer of P
  e("purchase", "k2", at(5), { amount: 2000, items: ["美白"] });
  e("purchase", "k2", at(12), { amount: 1000, items: ["美白"] });
  e("refund", "k5", at(6), { amount: 500, items: ["洁牙"] });
  e("survey_answered", "k1", at(4), { score: 10 });
  e("survey_answered", "k3", at(5), { score: 9 });
  e("survey_answered", "k4", at(8), { score: 7 });
  e("survey_answered", "k5", at(3), { score: 3 });
  e("survey_answered", "k2", at(-3), { score: 0 });
  e("article_read", "k1", at(2), { articleId: "a1", topic: "祛痘" }); // not a fact
  const stored = await ingestEvents({ ctx, input: { events: ev } });
  expect(stored.accepted).toBe(ev.length);
  await processEvents({ ctx, eventIds: stored.ids });
  const [facts] = (await db.execute(sql`select count(*)::int as n from metric_facts where tenant_id = ${tenant.id}::uuid`)) as unknown as { n: number }[];
  expect(facts!.n).toBe(ev.length - 1);

  // Leads, exactly as the lead services leave them (the rules opened leads for some contacts just now:
  // assigned, due and recorded today, outside P). Closed, so they do not collide with those open ones.
  const lead = async (k: string, o: { owner: string; clinic?: string; assigned: Date; due: Date; contacted: Date | null; status?: "converted" | "lost" }) => {
    const [row] = await db
      .insert(leads)
      .values({ tenantId: tenant.id, contactId: id[k]!, clinicId: o.clinic ? id[o.clinic]! : null, status: o.status ?? "lost", source: "api", ownerStaffId: id[o.owner]!, assignedAt: o.assigned, firstContactDueAt: o.due, firstContactedAt: o.contacted, closedAt: at(19), closedReason: "test", createdAt: o.assigned })
      .returning({ id: leads.id });
    return row!.id;
  };
  const assign = (leadId: string, k: string, to: string | null, when: Date, kind = "assign") =>
    db.insert(leadAssignments).values({ tenantId: tenant.id, leadId, contactId: id[k]!, toStaffId: to ? id[to]! : null, kind, at: when });
  const breach = (leadId: string, staff: string, due: Date, action: string, to?: string) =>
    db.insert(leadSlaBreaches).values({ tenantId: tenant.id, leadId, staffId: id[staff]!, dueAt: due, breachedAt: new Date(due.getTime() + 5_000), action, toStaffId: to ? id[to]! : null });
  // L1 k1: C1, assigned day 1 10:00, due 10:30, contacted 10:10 (10 min, met).
  const L1 = await lead("k1", { owner: "C1", clinic: "A", assigned: at(1, "10:00"), due: at(1, "10:30"), contacted: at(1, "10:10"), status: "converted" });
  await assign(L1, "k1", "C1", at(1, "10:00"));
  // L2 k2: C1, assigned day 2 09:00, due 09:30, breached (recorded), contacted 10:00 (60 min).
  const L2 = await lead("k2", { owner: "C1", clinic: "A", assigned: at(2, "09:00"), due: at(2, "09:30"), contacted: at(2, "10:00") });
  await assign(L2, "k2", "C1", at(2, "09:00"));
  await breach(L2, "C1", at(2, "09:30"), "kept");
  // L3 k3: C2, assigned day 3 14:00, due 14:15, contacted 14:05 (5 min, met).
  const L3 = await lead("k3", { owner: "C2", clinic: "B", assigned: at(3, "14:00"), due: at(3, "14:15"), contacted: at(3, "14:05") });
  await assign(L3, "k3", "C2", at(3, "14:00"));
  // L4 k4: C2 day 4 09:00 due 09:30, breached -> reclaimed by C3 at 09:31 due 10:01, contacted 09:51 (20 min, met).
  const L4 = await lead("k4", { owner: "C3", clinic: "B", assigned: at(4, "09:31"), due: at(4, "10:01"), contacted: at(4, "09:51"), status: "converted" });
  await assign(L4, "k4", "C2", at(4, "09:00"));
  await breach(L4, "C2", at(4, "09:30"), "reassign", "C3");
  await assign(L4, "k4", "C3", at(4, "09:31"), "reclaim");
  // L5 k5: C3, assigned day 0 00:20, due 00:50, breached (kept), never contacted.
  const L5 = await lead("k5", { owner: "C3", clinic: "B", assigned: at(0, "00:20"), due: at(0, "00:50"), contacted: null });
  await assign(L5, "k5", "C3", at(0, "00:20"));
  await breach(L5, "C3", at(0, "00:50"), "kept");
  // L6 k0: C1, all before P.
  const L6 = await lead("k0", { owner: "C1", clinic: "A", assigned: at(-2), due: at(-2, "10:30"), contacted: at(-2, "10:05") });
  await assign(L6, "k0", "C1", at(-2));
  // L7 k6 (lead without clinic): C3, assigned day 8 11:00, due 11:30, never contacted, no breach recorded
  // (the timer was lost): still a breach. Released to the pool on day 9 (not a lead received).
  const L7 = await lead("k6", { owner: "C3", assigned: at(8, "11:00"), due: at(8, "11:30"), contacted: null });
  await assign(L7, "k6", "C3", at(8, "11:00"));
  await assign(L7, "k6", null, at(9), "release");

  // Follow-ups (回访) as their planner leaves them; the visits above are too old to get planned ones.
  await db.delete(followUps).where(sql`${followUps.tenantId} = ${tenant.id}::uuid`);
  const fu = (k: string, staff: string, clinic: string, due: Date, status: "open" | "done" | "skipped" | "cancelled") =>
    db.insert(followUps).values({ tenantId: tenant.id, contactId: id[k]!, staffId: id[staff]!, clinicId: id[clinic]!, visitEventId: randomUUID(), dueAt: due, status, completedAt: status === "done" ? due : null });
  await fu("k1", "C1", "A", at(5), "done"); // F1
  await fu("k3", "C2", "B", at(6), "skipped"); // F2
  await fu("k5", "C3", "B", at(4), "done"); // F3
  await fu("k4", "C2", "A", at(9), "open"); // F4, overdue
  await fu("k2", "C1", "A", at(7), "cancelled"); // F5, not due
  await fu("k1", "C1", "A", at(22), "done"); // F6, after P

  // A calendar and its sends.
  const [cal] = await db.insert(calendars).values({ tenantId: tenant.id, key: "aftercare", name: "术后关怀", source: "api", kind: "relative", definition: {}, contentHash: randomUUID(), version: 1, status: "published", publishedAt: at(-30) }).returning();
  const [post] = await db.insert(posts).values({ tenantId: tenant.id, kind: "mass_message", body: "术后注意事项", contentHash: randomUUID(), status: "approved" }).returning();
  const [entry] = await db.insert(calendarEntries).values({ tenantId: tenant.id, calendarId: cal!.id, key: "day1", when: { day: 1, time: "10:00" }, kind: "text", channel: "single", postId: post!.id, calendarVersion: 1 }).returning();
  id.cal = cal!.id;
  const send = (k: string, when: Date, status: "sent" | "failed") =>
    db.insert(sends).values({ tenantId: tenant.id, postId: post!.id, calendarId: cal!.id, entryId: entry!.id, contactId: id[k]!, occurrence: k, scheduledAt: when, status, sentAt: when, senderStaffId: id.C1 });
  await send("k1", at(2), "sent");
  await send("k4", at(5), "sent");
  await send("k3", at(-5), "sent"); // before P
  await send("k5", at(3), "failed");

  const marketing = client(t.app, tenant.tokens.marketing);
  const s1 = await marketing.post("/v1/segments", { name: "女性客户", expression: "gender = female" });
  const s2 = await marketing.post("/v1/segments", { name: "导入客户", expression: "source = import" });
  expect([s1.status, s2.status]).toEqual([201, 201]);
  id.S1 = s1.body.id;
  id.S2 = s2.body.id;
}, 60_000);

afterAll(async () => t?.close());

const get = (path: string, token = tenant.tokens.marketing) => client(t.app, token).get(path);
const rowOf = (body: { rows: { key: string | null }[] }, key: string | null | undefined) => {
  if (key === undefined) throw new Error("unknown key");
  return body.rows.find((r) => r.key === key) as any;
};

// ------------------------------------------------------------ hand-computed figures

/** Everything in P (by=none). */
const TOTAL = {
  // Appointments in P: k1, k2, k3, k4, k5 (00:30 local on day 0) = 5; k6's (day -1 23:30), k3's (day 20 00:10) and k1's day 25 are out.
  appointments: 5,
  // Visits: k1, k3, k5, k4 = 4; 上门率 4 / 5.
  visits: 4,
  visitRate: rate(4, 5),
  // Consultations: k1 converted, k3 lost, k4 converted, k5 converted, k2 lost = 5; 成交率 3 / 5.
  consultations: 5,
  converted: 3,
  dealRate: rate(3, 5),
  // Follow-ups due in P: F1 done, F2 skipped, F3 done, F4 open (overdue); F5 cancelled, F6 after P. 回访率 2 / 4.
  followUpsDue: 4,
  followUpsDone: 2,
  followUpRate: rate(2, 4),
  // Buyers in P: k1, k2, k3, k4, k5 = 5. Repeat: k1 (day -50 and day 3), k2 (days 5 and 12) = 2;
  // k5 bought twice on the same day, k3's second purchase is after P. 二开率 2 / 5.
  buyers: 5,
  repeatBuyers: 2,
  repeatRate: rate(2, 5),
  // New contacts: k1, k2, k3, k4, k5 = 5 (k0 and k6 before P); referred: k2 (by k0), k4 (by k1). 转介绍率 2 / 5.
  newContacts: 5,
  referredContacts: 2,
  referralRate: rate(2, 5),
  // Survey answers in P: 10 (k1), 9 (k3), 7 (k4), 3 (k5); k2's 0 was before P. NPS = (2 - 1) / 4 * 100 = 25.
  nps: nps(4, 2, 1),
  // Purchases 6800 + 3000 + 12000 + 500 + 1500 + 2000 + 1000 = 26800; refunds 500; net 26300.
  revenue: { purchases: 26800, refunds: 500, net: 26300 },
  // Leads assigned in P and contacted: L1 10, L2 60, L3 5, L4 20 (from C3's assignment at 09:31) minutes.
  // Sorted 5, 10, 20, 60: median (10 + 20) / 2 = 15; p90 at position 0.9 * 3 = 2.7: 20 + 0.7 * (60 - 20) = 48.
  leadResponse: { leads: 4, medianMinutes: 15, p90Minutes: 48 },
  // Deadlines in P: breached L2 (C1, recorded), L4 first (C2, recorded), L5 (C3, recorded), L7 (C3, passed
  // uncontacted, not recorded) = 4; met L1, L3, L4 second (C3) = 3. 4 / 7.
  slaBreachRate: rate(4, 7),
};

describe("funnel metrics", () => {
  it("computes every metric of the period by hand-checked definitions, in the tenant's time zone", async () => {
    const res = await get(`/v1/metrics/funnel?${P}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ from: FROM, to: TO, timezone: "Asia/Shanghai", by: "none" });
    expect(res.body.rows).toHaveLength(1);
    expect(res.body.rows[0]).toEqual({ key: null, label: null, metrics: TOTAL });
  });

  it("groups by clinic: the clinic frozen on each fact (k4's visit at clinic A is A's)", async () => {
    const res = await get(`/v1/metrics/funnel?${P}&by=clinic`);
    expect(res.status).toBe(200);
    expect(res.body.rows.map((r: { key: string; label: string }) => [r.key, r.label])).toEqual([
      [id.A, "朝阳店"],
      [id.B, "海淀店"],
    ]);
    const a = rowOf(res.body, id.A).metrics;
    const b = rowOf(res.body, id.B).metrics;
    // A: appointments k1, k2; visits k1, k4 (at A) -> 2 / 2. B: appointments k3, k4, k5; visits k3, k5 -> 2 / 3.
    expect([a.visitRate, b.visitRate]).toEqual([rate(2, 2), rate(2, 3)]);
    // Consultations A: k1 converted, k2 lost -> 1 / 2; B: k3 lost, k4 converted, k5 converted -> 2 / 3.
    expect([a.dealRate, b.dealRate]).toEqual([rate(1, 2), rate(2, 3)]);
    // Follow-ups A: F1 done, F4 open -> 1 / 2; B: F2 skipped, F3 done -> 1 / 2.
    expect([a.followUpRate, b.followUpRate]).toEqual([rate(1, 2), rate(1, 2)]);
    // Buyers A: k1, k2 both repeat -> 2 / 2; B: k3, k4, k5 none -> 0 / 3.
    expect([a.repeatRate, b.repeatRate]).toEqual([rate(2, 2), rate(0, 3)]);
    // New contacts A: k1, k2 (k2 referred) -> 1 / 2; B: k3, k4, k5 (k4 referred) -> 1 / 3.
    expect([a.referralRate, b.referralRate]).toEqual([rate(1, 2), rate(1, 3)]);
    // NPS A: k1 10 -> 100; B: 9, 7, 3 -> (1 - 1) / 3 = 0.
    expect([a.nps, b.nps]).toEqual([nps(1, 1, 0), nps(3, 1, 1)]);
    // Revenue A: 6800 + 2000 + 1000 = 9800; B: 1500 + 3000 + 12000 + 500 - 500 = 16500.
    expect([a.revenue, b.revenue]).toEqual([
      { purchases: 9800, refunds: 0, net: 9800 },
      { purchases: 17000, refunds: 500, net: 16500 },
    ]);
    // Response A: L1 10, L2 60 -> median 35, p90 10 + 0.9 * 50 = 55; B: L3 5, L4 20 -> 12.5, 5 + 0.9 * 15 = 18.5.
    expect([a.leadResponse, b.leadResponse]).toEqual([
      { leads: 2, medianMinutes: 35, p90Minutes: 55 },
      { leads: 2, medianMinutes: 12.5, p90Minutes: 18.5 },
    ]);
    // SLA A: L1 met, L2 breached -> 1 / 2; B: L3 met, L4 breached then met, L5 breached, L7 (no clinic: its consultant's, B) breached -> 3 / 5.
    expect([a.slaBreachRate, b.slaBreachRate]).toEqual([rate(1, 2), rate(3, 5)]);
    expect([a.appointments + b.appointments, a.visits + b.visits, a.consultations + b.consultations]).toEqual([5, 4, 5]);
  });

  it("groups by consultant: the consultant credited on each fact (k4's consultation and purchase are C3's)", async () => {
    const res = await get(`/v1/metrics/funnel?${P}&by=consultant`);
    expect(res.status).toBe(200);
    const [c1, c2, c3] = ["C1", "C2", "C3"].map((k) => rowOf(res.body, id[k]!).metrics);
    expect(rowOf(res.body, id.C3).label).toBe(`consultant3 ${tenant.slug}`);
    // Appointments/visits C1: k1, k2 / k1 -> 1 / 2; C2: k3, k4 / k3, k4 -> 2 / 2; C3: k5 / k5 -> 1 / 1.
    expect([c1.visitRate, c2.visitRate, c3.visitRate]).toEqual([rate(1, 2), rate(2, 2), rate(1, 1)]);
    // Consultations C1: k1 converted, k2 lost; C2: k3 lost; C3: k4 (credited), k5 converted.
    expect([c1.dealRate, c2.dealRate, c3.dealRate]).toEqual([rate(1, 2), rate(0, 1), rate(2, 2)]);
    // Revenue C1: 6800 + 3000 = 9800; C2: 1500; C3: 3000 + 12500 - 500 = 15000.
    expect([c1.revenue.net, c2.revenue.net, c3.revenue.net]).toEqual([9800, 1500, 15000]);
    expect([c1.repeatRate, c2.repeatRate, c3.repeatRate]).toEqual([rate(2, 2), rate(0, 1), rate(0, 2)]);
    // NPS C1: 10 -> 100; C2: 9 (k3), 7 (k4: owner C2, no staffId on the answer) -> 50; C3: 3 -> -100.
    expect([c1.nps.value, c2.nps.value, c3.nps.value]).toEqual([100, 50, -100]);
    // New contacts by owner: C1 k1, k2 (1 referred); C2 k3, k4 (1); C3 k5.
    expect([c1.referralRate, c2.referralRate, c3.referralRate]).toEqual([rate(1, 2), rate(1, 2), rate(0, 1)]);
    expect([c1.followUpRate, c2.followUpRate, c3.followUpRate]).toEqual([rate(1, 1), rate(0, 2), rate(1, 1)]);
    expect([c1.leadResponse.medianMinutes, c2.leadResponse.medianMinutes, c3.leadResponse.medianMinutes]).toEqual([35, 5, 20]);
    // SLA: the breach is the missing consultant's: C1 L2 breached, L1 met; C2 L4 breached, L3 met; C3 L5, L7 breached, L4 met.
    expect([c1.slaBreachRate, c2.slaBreachRate, c3.slaBreachRate]).toEqual([rate(1, 2), rate(1, 2), rate(2, 3)]);
  });

  it("groups by channel: the channel code (named when it has a name) or the source", async () => {
    const res = await get(`/v1/metrics/funnel?${P}&by=channel`);
    expect(res.status).toBe(200);
    expect(res.body.rows.map((r: { key: string; label: string }) => [r.key, r.label]).sort()).toEqual([
      ["import", "import"],
      ["qr_live", "qr_live"],
      ["qr_poster", "海报活码"],
    ]);
    const [poster, live, imp] = ["qr_poster", "qr_live", "import"].map((k) => rowOf(res.body, k).metrics);
    // Appointments/visits: poster k1, k2 / k1; live k3, k5 / k3, k5; import k4 / k4.
    expect([poster.visitRate, live.visitRate, imp.visitRate]).toEqual([rate(1, 2), rate(2, 2), rate(1, 1)]);
    expect([poster.dealRate, live.dealRate, imp.dealRate]).toEqual([rate(1, 2), rate(1, 2), rate(1, 1)]);
    // Revenue: poster 9800; live 1500 + 12500 - 500 = 13500; import 3000.
    expect([poster.revenue.net, live.revenue.net, imp.revenue.net]).toEqual([9800, 13500, 3000]);
    expect([poster.referralRate, live.referralRate, imp.referralRate]).toEqual([rate(1, 2), rate(0, 2), rate(1, 1)]);
    // Follow-ups through the contact's channel: poster F1 done; live F2 skipped, F3 done; import F4 open.
    expect([poster.followUpRate, live.followUpRate, imp.followUpRate]).toEqual([rate(1, 1), rate(1, 2), rate(0, 1)]);
    // SLA: poster L1 met, L2 breached; live L3 met, L5 breached; import L4 breached + met, L7 (k6) breached.
    expect([poster.slaBreachRate, live.slaBreachRate, imp.slaBreachRate]).toEqual([rate(1, 2), rate(1, 2), rate(2, 3)]);
    // NPS: poster 10 -> 100; live 9, 3 -> 0; import 7 -> 0.
    expect([poster.nps, live.nps, imp.nps]).toEqual([nps(1, 1, 0), nps(2, 1, 1), nps(1, 0, 0)]);
  });

  /** Members of S1 (gender = female): k1, k3, k5. */
  const S1 = {
    appointments: 3,
    visits: 3,
    visitRate: rate(3, 3),
    consultations: 3,
    converted: 2,
    dealRate: rate(2, 3),
    followUpsDue: 3,
    followUpsDone: 2,
    followUpRate: rate(2, 3),
    buyers: 3,
    repeatBuyers: 1,
    repeatRate: rate(1, 3),
    newContacts: 3,
    referredContacts: 0,
    referralRate: rate(0, 3),
    // 10, 9, 3: (2 - 1) / 3 * 100
    nps: nps(3, 2, 1),
    // 6800 + 1500 + 12000 + 500 - 500
    revenue: { purchases: 20800, refunds: 500, net: 20300 },
    // L1 10, L3 5 -> median 7.5, p90 5 + 0.9 * 5 = 9.5
    leadResponse: { leads: 2, medianMinutes: 7.5, p90Minutes: 9.5 },
    // L1 met, L3 met, L5 breached
    slaBreachRate: rate(1, 3),
  };

  it("groups by segment (contacts in it now) and filters by one", async () => {
    const res = await get(`/v1/metrics/funnel?${P}&by=segment`);
    expect(res.status).toBe(200);
    expect(res.body.rows.map((r: { key: string; label: string }) => r.label)).toEqual(["女性客户", "导入客户"].sort((a, b) => a.localeCompare(b, "zh-CN")));
    expect(rowOf(res.body, id.S1).metrics).toEqual(S1);
    // S2 (source = import): k0, k4, k6. k4: appointment, visit, converted consultation, purchase 3000, survey 7,
    // new and referred, F4 open, L4 (20 min; C2's deadline breached, C3's met); k6: L7 breached.
    expect(rowOf(res.body, id.S2).metrics).toEqual({
      appointments: 1,
      visits: 1,
      visitRate: rate(1, 1),
      consultations: 1,
      converted: 1,
      dealRate: rate(1, 1),
      followUpsDue: 1,
      followUpsDone: 0,
      followUpRate: rate(0, 1),
      buyers: 1,
      repeatBuyers: 0,
      repeatRate: rate(0, 1),
      newContacts: 1,
      referredContacts: 1,
      referralRate: rate(1, 1),
      nps: nps(1, 0, 0),
      revenue: { purchases: 3000, refunds: 0, net: 3000 },
      leadResponse: { leads: 1, medianMinutes: 20, p90Minutes: 20 },
      slaBreachRate: rate(2, 3),
    });
    const one = await get(`/v1/metrics/funnel?${P}&segmentId=${id.S1}`);
    expect(one.status).toBe(200);
    expect(one.body.rows[0].metrics).toEqual(S1);
  });

  it("groups by calendar: the contacts it sent something to in the period (k1, k4), and filters by it", async () => {
    const res = await get(`/v1/metrics/funnel?${P}&by=calendar`);
    expect(res.status).toBe(200);
    expect(res.body.rows).toHaveLength(1);
    const expected = {
      appointments: 2,
      visits: 2,
      visitRate: rate(2, 2),
      consultations: 2,
      converted: 2,
      dealRate: rate(2, 2),
      // F1 done, F4 open
      followUpsDue: 2,
      followUpsDone: 1,
      followUpRate: rate(1, 2),
      // k1 repeat, k4 not
      buyers: 2,
      repeatBuyers: 1,
      repeatRate: rate(1, 2),
      newContacts: 2,
      referredContacts: 1,
      referralRate: rate(1, 2),
      // 10, 7
      nps: nps(2, 1, 0),
      revenue: { purchases: 9800, refunds: 0, net: 9800 },
      // L1 10, L4 20
      leadResponse: { leads: 2, medianMinutes: 15, p90Minutes: 19 },
      // L1 met, L4 breached (C2) then met (C3)
      slaBreachRate: rate(1, 3),
    };
    expect(res.body.rows[0]).toEqual({ key: id.cal, label: "术后关怀", metrics: expected });
    const one = await get(`/v1/metrics/funnel?${P}&calendarId=${id.cal}`);
    expect(one.body.rows[0].metrics).toEqual(expected);
  });

  it("filters by clinic, consultant and channel to the same numbers as their group rows", async () => {
    for (const [by, param, key] of [
      ["clinic", "clinicId", id.B],
      ["consultant", "staffId", id.C3],
      ["channel", "channel", "qr_live"],
    ] as const) {
      const grouped = await get(`/v1/metrics/funnel?${P}&by=${by}`);
      const filtered = await get(`/v1/metrics/funnel?${P}&${param}=${key}`);
      expect(filtered.status).toBe(200);
      expect(filtered.body.rows[0].metrics, `${param}=${key}`).toEqual(rowOf(grouped.body, key!).metrics);
    }
    // Filters combine: clinic B and channel qr_live -> k3, k5.
    const both = await get(`/v1/metrics/funnel?${P}&clinicId=${id.B}&channel=qr_live`);
    expect(both.body.rows[0].metrics).toMatchObject({ appointments: 2, visits: 2, consultations: 2, converted: 1, revenue: { net: 13500 } });
  });

  it("defaults to the last 30 local days, today included", async () => {
    const res = await get("/v1/metrics/funnel");
    expect(res.status).toBe(200);
    const today = new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10);
    const tomorrow = new Date(new Date(`${today}T00:00:00Z`).getTime() + DAY).toISOString().slice(0, 10);
    expect([res.body.from, res.body.to]).toEqual([new Date(new Date(`${tomorrow}T00:00:00Z`).getTime() - 30 * DAY).toISOString().slice(0, 10), tomorrow]);
  });
});

describe("trends", () => {
  it("gives the same metrics per local day, every day listed, repeat buyers judged at each bucket's end", async () => {
    const res = await get(`/v1/metrics/trends?${P}&period=day`);
    expect(res.status).toBe(200);
    expect(res.body.buckets).toHaveLength(20);
    expect(res.body.buckets[0]).toBe(FROM);
    expect(res.body.series).toHaveLength(20);
    const on = (n: number) => res.body.series.find((s: { bucket: string }) => s.bucket === day(n)).metrics;
    // Day 0: k5's appointment at 00:30 local (the day before in UTC); L5's deadline breached.
    expect(on(0)).toMatchObject({ appointments: 1, newContacts: 1, slaBreachRate: rate(1, 1) });
    // Day 2: k2's appointment, k1's visit, k5's converted consultation and two purchases the same day (not repeat).
    expect(on(2)).toMatchObject({ appointments: 1, visits: 1, consultations: 1, converted: 1, buyers: 1, repeatBuyers: 0, revenue: { purchases: 12500, refunds: 0, net: 12500 } });
    // Day 3: k1 buys 6800 and had bought on day -50: a repeat buyer.
    expect(on(3)).toMatchObject({ buyers: 1, repeatBuyers: 1 });
    // Day 5: k2's first purchase (the second is on day 12): not yet a repeat buyer. Day 12: k2 repeats.
    expect(on(5)).toMatchObject({ buyers: 1, repeatBuyers: 0 });
    expect(on(12)).toMatchObject({ buyers: 1, repeatBuyers: 1, revenue: { net: 1000 } });
    // Day 6: the refund.
    expect(on(6).revenue).toEqual({ purchases: 0, refunds: 500, net: -500 });
    // Days add up to the period's counts.
    const sum = (f: (m: any) => number) => res.body.series.reduce((s: number, x: { metrics: unknown }) => s + f(x.metrics), 0);
    expect([sum((m) => m.appointments), sum((m) => m.visits), sum((m) => m.consultations), sum((m) => m.revenue.net), sum((m) => m.newContacts), sum((m) => m.followUpsDue)]).toEqual([5, 4, 5, 26300, 5, 4]);
    expect(sum((m) => m.slaBreachRate.numerator)).toBe(4);
    expect(sum((m) => m.slaBreachRate.denominator)).toBe(7);
  });

  it("judges repeat buyers at each bucket's end per segment too (the set-based test of joined groupings)", async () => {
    // A segment of its own (男性客户: k0, k2, k4, k6), dropped at the end so the other tests keep two.
    const male = await client(t.app, tenant.tokens.marketing).post("/v1/segments", { name: "男性客户", expression: "gender = male" });
    expect(male.status).toBe(201);
    try {
      const res = await get(`/v1/metrics/trends?${P}&period=day&by=segment`);
      expect(res.status).toBe(200);
      const on = (key: string, n: number) => res.body.series.find((s: { bucket: string; key: string }) => s.bucket === day(n) && s.key === key).metrics;
      // 女性客户: k5 buys twice on day 2 (one day: not repeat); k1 on day 3 had bought on day -50 (repeat); k3 on day 9 buys again only on day 25 (not yet).
      expect([on(id.S1!, 2), on(id.S1!, 3), on(id.S1!, 9)].map((m) => [m.buyers, m.repeatBuyers])).toEqual([[1, 0], [1, 1], [1, 0]]);
      // 男性客户: k2 buys on day 5 (first) and day 12 (repeat); k4 on day 7 (first).
      expect([on(male.body.id, 5), on(male.body.id, 7), on(male.body.id, 12)].map((m) => [m.buyers, m.repeatBuyers])).toEqual([[1, 0], [1, 0], [1, 1]]);
      // Filtered to the segment, over the whole period: k2 repeats by the period's end, k4 does not.
      const one = await get(`/v1/metrics/funnel?${P}&segmentId=${male.body.id}`);
      expect(one.body.rows[0].metrics).toMatchObject({ buyers: 2, repeatBuyers: 1 });
      // k0, k4 and k6 are in 导入客户 and 男性客户 both (rows keyed by segment masks, added into each
      // segment a mask names): each segment's row equals the funnel filtered to that segment alone.
      expect(on(id.S2!, 7)).toMatchObject({ buyers: 1, repeatBuyers: 0 });
      const grouped = await get(`/v1/metrics/funnel?${P}&by=segment`);
      expect(grouped.body.rows).toHaveLength(3);
      for (const segmentId of [id.S1!, id.S2!, male.body.id as string]) {
        const alone = await get(`/v1/metrics/funnel?${P}&segmentId=${segmentId}`);
        expect(rowOf(grouped.body, segmentId).metrics).toEqual(alone.body.rows[0].metrics);
      }
      // By calendar (k1, k4): k1 repeats, k4 does not, whatever the grouping.
      const cal = await get(`/v1/metrics/trends?${P}&period=day&by=calendar`);
      const calOn = (n: number) => cal.body.series.find((s: { bucket: string; key: string }) => s.bucket === day(n) && s.key === id.cal).metrics;
      expect([calOn(3), calOn(7)].map((m) => [m.buyers, m.repeatBuyers])).toEqual([[1, 1], [1, 0]]);
    } finally {
      await t.rt.deps.db.delete(segments).where(eq(segments.id, male.body.id));
    }
  });

  it("buckets by ISO week and by month, optionally per dimension", async () => {
    const weeks = await get(`/v1/metrics/trends?${P}&period=week&by=clinic`);
    expect(weeks.status).toBe(200);
    const monday = new Date(B0 - ((new Date(B0).getUTCDay() + 6) % 7) * DAY).toISOString().slice(0, 10);
    expect(weeks.body.buckets[0]).toBe(monday);
    expect(weeks.body.series).toHaveLength(weeks.body.buckets.length * 2);
    const appts = (key: string) => weeks.body.series.filter((s: { key: string }) => s.key === key).reduce((n: number, s: { metrics: { appointments: number } }) => n + s.metrics.appointments, 0);
    expect([appts(id.A!), appts(id.B!)]).toEqual([2, 3]);
    const months = await get(`/v1/metrics/trends?${P}&period=month`);
    expect(months.status).toBe(200);
    expect(months.body.buckets[0]).toBe(`${FROM.slice(0, 7)}-01`);
    expect(months.body.series.reduce((n: number, s: { metrics: { revenue: { net: number } } }) => n + s.metrics.revenue.net, 0)).toBe(26300);
  });
});

describe("scorecards", () => {
  // C1: received L1, L2 (2); within SLA L1 (1); response 10, 60 -> 35; consultations k1 converted, k2 lost;
  //     revenue 9800; F1 done (1 / 1); breached L2 of L1, L2 (1 / 2).
  // C2: received L3, L4 (2); within SLA L3; response 5; consultation k3 lost; revenue 1500; F2, F4 (0 / 2);
  //     breached L4's first deadline of L3, L4 (1 / 2).
  // C3: received L4 (reclaim), L5, L7 (3; L7's release to the pool is no lead received); within SLA L4;
  //     response 20; consultations k4, k5 converted; revenue 3000 + 12500 - 500 = 15000; F3 (1 / 1);
  //     breached L5, L7 of L4, L5, L7 (2 / 3).
  const cards = () => ({
    C1: { leadsReceived: 2, contactedWithinSla: 1, contactedWithinSlaRate: rate(1, 2), medianResponseMinutes: 35, consultations: 2, conversions: 1, dealRate: rate(1, 2), revenue: 9800, followUpsDue: 1, followUpsDone: 1, followUpRate: rate(1, 1), slaBreaches: 1, slaBreachRate: rate(1, 2) },
    C2: { leadsReceived: 2, contactedWithinSla: 1, contactedWithinSlaRate: rate(1, 2), medianResponseMinutes: 5, consultations: 1, conversions: 0, dealRate: rate(0, 1), revenue: 1500, followUpsDue: 2, followUpsDone: 0, followUpRate: rate(0, 2), slaBreaches: 1, slaBreachRate: rate(1, 2) },
    C3: { leadsReceived: 3, contactedWithinSla: 1, contactedWithinSlaRate: rate(1, 3), medianResponseMinutes: 20, consultations: 2, conversions: 2, dealRate: rate(2, 2), revenue: 15000, followUpsDue: 1, followUpsDone: 1, followUpRate: rate(1, 1), slaBreaches: 2, slaBreachRate: rate(2, 3) },
  });

  it("lists every consultant's card for managers, marketing and admins", async () => {
    for (const token of [tenant.tokens.manager, tenant.tokens.marketing, tenant.tokens.admin]) {
      const res = await get(`/v1/metrics/scorecards?${P}`, token);
      expect(res.status).toBe(200);
      expect(res.body.items.map((i: { staffId: string }) => i.staffId)).toEqual([id.C1, id.C2, id.C3]);
      for (const [k, card] of Object.entries(cards())) {
        expect(res.body.items.find((i: { staffId: string }) => i.staffId === id[k]), k).toEqual({ staffId: id[k], name: expect.any(String), clinicId: id[k === "C1" ? "A" : "B"], active: true, ...card });
      }
    }
    const clinicB = await get(`/v1/metrics/scorecards?${P}&clinicId=${id.B}`, tenant.tokens.manager);
    expect(clinicB.body.items.map((i: { staffId: string }) => i.staffId)).toEqual([id.C2, id.C3]);
    const one = await get(`/v1/metrics/scorecards?${P}&staffId=${id.C3}`, tenant.tokens.manager);
    expect(one.body.items).toHaveLength(1);
    expect(one.body.items[0]).toMatchObject(cards().C3);
  });

  it("shows a consultant their own card only", async () => {
    const mine = await get(`/v1/metrics/scorecards/me?${P}`, tenant.tokens.consultant);
    expect(mine.status).toBe(200);
    expect(mine.body).toEqual({ from: FROM, to: TO, timezone: "Asia/Shanghai", staffId: id.C1, name: `consultant ${tenant.slug}`, clinicId: id.A, active: true, ...cards().C1 });
    expect((await get(`/v1/metrics/scorecards/me?${P}`, c3Token)).body).toMatchObject({ staffId: id.C3, ...cards().C3 });
    expect((await get(`/v1/metrics/scorecards/me?${P}`, tenant.tokens.consultant2)).body).toMatchObject({ staffId: id.C2, ...cards().C2 });
    // The list of everyone's cards and the funnel are not theirs to read.
    for (const path of [`/v1/metrics/scorecards?${P}`, `/v1/metrics/scorecards?${P}&staffId=${id.C2}`, `/v1/metrics/funnel?${P}`, `/v1/metrics/trends?${P}`]) {
      const res = await get(path, tenant.tokens.consultant);
      expect(res.status, path).toBe(403);
      expect(res.body.code).toBe("FORBIDDEN");
    }
  });
});

describe("who may read metrics, and bad input", () => {
  it("lets marketing, managers and admins read the funnel; refuses reviewers and consultants", async () => {
    for (const key of ["admin", "manager", "marketing"] as const) expect((await get(`/v1/metrics/funnel?${P}`, tenant.tokens[key])).status, key).toBe(200);
    for (const key of ["reviewer", "consultant"] as const) {
      for (const path of ["/v1/metrics/funnel", "/v1/metrics/trends", "/v1/metrics/scorecards"]) expect((await get(path, tenant.tokens[key])).status, `${key} ${path}`).toBe(403);
    }
    expect((await get("/v1/metrics/scorecards/me", tenant.tokens.reviewer)).status).toBe(403);
    expect((await get("/v1/metrics/scorecards/me", tenant.tokens.marketing)).status).toBe(403);
    expect((await client(t.app).get("/v1/metrics/funnel")).status).toBe(401);
  });

  it("names the failing field in a problem+json 422", async () => {
    const cases: [string, string][] = [
      ["/v1/metrics/funnel?by=room", "by"],
      ["/v1/metrics/funnel?from=2026-13-01", "from"],
      [`/v1/metrics/funnel?from=${TO}&to=${FROM}`, "to"],
      ["/v1/metrics/funnel?from=2020-01-01&to=2026-01-01", "from"],
      ["/v1/metrics/funnel?clinicId=nope", "clinicId"],
      [`/v1/metrics/funnel?segmentId=${randomUUID()}`, "segmentId"],
      [`/v1/metrics/funnel?calendarId=${randomUUID()}`, "calendarId"],
      [`/v1/metrics/funnel?staffId=${randomUUID()}`, "staffId"],
      ["/v1/metrics/trends?period=hour", "period"],
      ["/v1/metrics/trends?from=2025-01-01&to=2026-12-01&period=day", "period"],
      ["/v1/metrics/scorecards?to=yesterday", "to"],
    ];
    for (const [path, field] of cases) {
      const res = await get(path);
      expect(res.status, path).toBe(422);
      expect(res.headers.get("content-type"), path).toMatch(/^application\/problem\+json/);
      expect(res.body.errors.map((e: { field: string }) => e.field), path).toContain(field);
    }
  });

  it("keeps tenants apart: another tenant's ids are unknown here, and its figures are its own", async () => {
    const b = (path: string) => client(t.app, other.tokens.admin).get(path);
    for (const [q, field] of [
      [`clinicId=${id.A}`, "clinicId"],
      [`staffId=${id.C1}`, "staffId"],
      [`segmentId=${id.S1}`, "segmentId"],
      [`calendarId=${id.cal}`, "calendarId"],
    ] as const) {
      const res = await b(`/v1/metrics/funnel?${P}&${q}`);
      expect(res.status, q).toBe(422);
      expect(res.body.errors[0].field).toBe(field);
    }
    const mine = await b(`/v1/metrics/funnel?${P}`);
    expect(mine.body.rows[0].metrics).toMatchObject({ appointments: 0, visits: 0, visitRate: rate(0, 0), newContacts: 0, revenue: { net: 0 } });
    expect((await b(`/v1/metrics/scorecards?${P}`)).body.items.map((i: { staffId: string }) => i.staffId)).not.toContain(id.C1);
  });
});

describe("computeMetric (one metric for alerts and other callers)", () => {
  it("computes one metric for a period and scope, as one point or daily buckets", async () => {
    const deal = await computeMetric({ ctx, input: { metric: "deal_rate", from: FROM, to: TO } });
    expect(deal.points).toEqual([{ bucket: FROM, numerator: 3, denominator: 5, value: 3 / 5 }]);
    const sla = await computeMetric({ ctx, input: { metric: "sla_breach_rate", from: FROM, to: TO, scope: { staffId: id.C3 } } });
    expect(sla.points[0]).toMatchObject({ numerator: 2, denominator: 3 });
    // Clinic B's 上门率 per day: appointments k5 day 0, k3 day 3, k4 day 4; visits k5 day 1, k3 day 4.
    const visits = await computeMetric({ ctx, input: { metric: "visit_rate", from: FROM, to: TO, period: "day", scope: { clinicId: id.B } } });
    expect(visits.points).toHaveLength(20);
    expect(visits.points.slice(0, 5)).toEqual([
      { bucket: day(0), numerator: 0, denominator: 1, value: 0 },
      { bucket: day(1), numerator: 1, denominator: 0, value: null },
      { bucket: day(2), numerator: 0, denominator: 0, value: null },
      { bucket: day(3), numerator: 0, denominator: 1, value: 0 },
      { bucket: day(4), numerator: 1, denominator: 1, value: 1 },
    ]);
    // Calendar sends scheduled in P: k1, k4 sent, k5 failed -> 1 / 3.
    const failures = await computeMetric({ ctx, input: { metric: "send_failure_rate", from: FROM, to: TO } });
    expect(failures.points[0]).toMatchObject({ numerator: 1, denominator: 3 });
    const npsPoint = await computeMetric({ ctx, input: { metric: "nps", from: FROM, to: TO } });
    expect(npsPoint.points[0]).toEqual({ bucket: FROM, numerator: 1, denominator: 4, value: 25 });
    const revenue = await computeMetric({ ctx, input: { metric: "revenue", from: FROM, to: TO, scope: { channel: "qr_live" } } });
    expect(revenue.points[0]!.value).toBe(13500);
  });
});
