import { randomUUID } from "node:crypto";
import { and, eq, like, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { alertEpisodes, alertRules, leadSlaBreaches, metricFacts, posts, sends, staffNotifications } from "../../src/db/schema/index";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { evaluateAlerts } from "../../src/services/alerts/evaluate";
import { client, createTestTenant, phone, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";

/**
 * Anomaly alerts over seeded metric facts, SLA breaches and send failures, evaluated at chosen
 * instants (evaluateAlerts takes `now`). Test tenants are in Asia/Shanghai (UTC+8).
 */
let t: TestRuntime;
beforeAll(async () => {
  t = await createTestRuntime();
});
afterAll(async () => {
  await t?.close();
});

const db = () => t.rt.deps.db;
/** A local Shanghai time as an instant. */
const local = (day: string, hhmm: string) => new Date(`${day}T${hhmm}:00+08:00`);
const addDays = (day: string, n: number) => new Date(Date.parse(`${day}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);

/** `n` consultation facts at `at`, `converted` of them converted. */
async function consultations(tenant: TestTenant, at: Date, n: number, converted: number, clinicId: string | null = null) {
  if (!n) return;
  await db()
    .insert(metricFacts)
    .values(Array.from({ length: n }, (_, i) => ({ eventId: randomUUID(), tenantId: tenant.id, contactId: randomUUID(), kind: "consultation" as const, occurredAt: at, outcome: i < converted ? "converted" : "lost", clinicId, amount: i < converted ? 1000 : null })));
}

const notifications = (tenant: TestTenant, episodeId: string) =>
  db().select().from(staffNotifications).where(and(eq(staffNotifications.tenantId, tenant.id), like(staffNotifications.dedupeKey, `alert-${episodeId}-%`)));
const episodes = (tenant: TestTenant, ruleId?: string) =>
  db()
    .select()
    .from(alertEpisodes)
    .where(and(eq(alertEpisodes.tenantId, tenant.id), ruleId ? eq(alertEpisodes.ruleId, ruleId) : sql`true`))
    .orderBy(alertEpisodes.openedAt);
const alertNotifications = async (tenant: TestTenant) => (await db().select().from(staffNotifications).where(and(eq(staffNotifications.tenantId, tenant.id), eq(staffNotifications.kind, "alert")))).length;

async function rulesOf(tenant: TestTenant) {
  const r = await client(t.app, tenant.tokens.manager).get("/v1/alerts/rules");
  expect(r.status).toBe(200);
  return r.body.items as { id: string; name: string; metric: string; condition: Record<string, unknown>; scope: Record<string, unknown>; enabled: boolean; openEpisodes: number }[];
}

describe("alert rules", () => {
  it("starts a tenant with the issue's examples", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const rules = await rulesOf(tenant);
    expect(rules.map((r) => [r.metric, r.condition.kind, r.enabled])).toEqual([
      ["deal_rate", "drop_vs_weekday_mean", true],
      ["sla_breaches", "spike_vs_mean", true],
      ["send_failures", "spike_vs_mean", true],
    ]);
    expect(rules[0]!.condition).toMatchObject({ pct: 30, weeks: 4 });
  });

  it("validates rules naming the field, checks the clinic is the tenant's, and refuses other roles", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const other = await createTestTenant(t.rt.deps);
    const otherClinic = await client(t.app, other.tokens.admin).post("/v1/clinics", { name: "别家门店" });
    const mgr = client(t.app, tenant.tokens.manager);
    const fieldsOf = async (body: unknown) => {
      const r = await mgr.post("/v1/alerts/rules", body);
      expect(r.status, JSON.stringify(r.body)).toBe(422);
      return r.body.errors.map((e: { field: string }) => e.field).sort();
    };
    expect(await fieldsOf({ name: "x", metric: "deal_rate", condition: { kind: "drop_vs_weekday_mean", pct: 0 } })).toEqual(["condition.pct"]);
    expect(await fieldsOf({ name: "x", metric: "deal_rate", condition: { kind: "drop_vs_weekday_mean", pct: 30, weeks: 99 } })).toEqual(["condition.weeks"]);
    expect(await fieldsOf({ name: "x", metric: "deal_rate", condition: { kind: "spike_vs_mean", factor: 2 } })).toEqual(["condition.kind"]);
    expect(await fieldsOf({ name: "x", metric: "send_failures", condition: { kind: "spike_vs_mean", factor: 2, pct: 50 } })).toEqual(["condition.pct"]);
    expect(await fieldsOf({ name: "x", metric: "deal_rate", condition: { kind: "threshold", op: "lt", value: 30 } })).toEqual(["condition.value"]);
    expect(await fieldsOf({ name: "x", metric: "nps", condition: { kind: "threshold", op: "between", value: 1 } })).toEqual(["condition.op", "metric"]);
    expect(await fieldsOf({ name: "", metric: "deal_rate", condition: { kind: "median" } })).toEqual(["condition.kind", "name"]);
    expect(await fieldsOf({ name: "x", metric: "deal_rate", condition: { kind: "threshold", op: "lt", value: 0.2 }, scope: { clinicId: otherClinic.body.id } })).toEqual(["scope.clinicId"]);
    expect(await fieldsOf({ name: "x", metric: "deal_rate", condition: { kind: "threshold", op: "lt", value: 0.2 }, scope: { region: "华东" } })).toEqual(["scope"]);
    // Create, patch (checked whole: a rate cannot take a spike), delete; all audited.
    const made = await mgr.post("/v1/alerts/rules", { name: "失败激增", metric: "send_failures", condition: { kind: "spike_vs_mean", pct: 200, days: 7 } });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    expect(made.body).toMatchObject({ enabled: true, scope: {}, condition: { kind: "spike_vs_mean", pct: 200, days: 7, minCount: 3 }, createdByStaffId: tenant.staff.manager.id });
    const bad = await mgr.patch(`/v1/alerts/rules/${made.body.id}`, { metric: "deal_rate" });
    expect(bad.status).toBe(422);
    expect(bad.body.errors[0].field).toBe("condition.kind");
    const off = await mgr.patch(`/v1/alerts/rules/${made.body.id}`, { enabled: false, name: "失败激增（停用）" });
    expect(off.body).toMatchObject({ enabled: false, name: "失败激增（停用）", metric: "send_failures" });
    expect((await client(t.app, other.tokens.admin).patch(`/v1/alerts/rules/${made.body.id}`, { enabled: true })).status).toBe(404);
    expect((await client(t.app, other.tokens.admin).delete(`/v1/alerts/rules/${made.body.id}`)).status).toBe(404);
    expect((await client(t.app, tenant.tokens.admin).delete(`/v1/alerts/rules/${made.body.id}`)).status).toBe(200);
    expect((await mgr.patch(`/v1/alerts/rules/${made.body.id}`, { enabled: true })).status).toBe(404);
    // Roles: rules are for managers and admins; episodes for metrics readers.
    for (const role of ["marketing", "consultant", "reviewer"] as const) {
      expect((await client(t.app, tenant.tokens[role]).get("/v1/alerts/rules")).status).toBe(403);
      expect((await client(t.app, tenant.tokens[role]).post("/v1/alerts/rules", { name: "x", metric: "conversions", condition: { kind: "threshold", op: "lt", value: 1 } })).status).toBe(403);
    }
    expect((await client(t.app, tenant.tokens.marketing).get("/v1/alerts")).status).toBe(200);
    expect((await client(t.app, tenant.tokens.consultant).get("/v1/alerts")).status).toBe(403);
  });
});

describe("episodes", () => {
  // Wednesday 2026-03-11; the four Wednesdays before, and the Tuesdays before yesterday.
  const TODAY = "2026-03-11";
  let tenant: TestTenant;
  let dealRule: string;

  beforeAll(async () => {
    tenant = await createTestTenant(t.rt.deps);
    dealRule = (await rulesOf(tenant)).find((r) => r.metric === "deal_rate")!.id;
    // History: 20 consultations, 10 converted, by 10:00 on each of the four previous Wednesdays and on every Tuesday.
    for (let k = 1; k <= 4; k++) await consultations(tenant, local(addDays(TODAY, -7 * k), "10:00"), 20, 10);
    for (let k = 0; k <= 4; k++) await consultations(tenant, local(addDays(TODAY, -1 - 7 * k), "10:00"), 20, 10);
  });

  it("opens one episode when 成交率 falls 30% under the weekday mean, notifies each manager and admin once, and not again while it lasts", async () => {
    // Today so far: 4 of 20 converted (20%) against 50% on the same hours of the last four Wednesdays.
    await consultations(tenant, local(TODAY, "11:00"), 20, 4);
    const first = await evaluateAlerts({ deps: t.rt.deps, tenantId: tenant.id, now: local(TODAY, "15:00") });
    expect(first).toMatchObject({ rules: 3, opened: 1, stillOpen: 0 });
    const [ep] = await episodes(tenant, dealRule);
    expect(ep).toMatchObject({ scopeKey: "all", closedAt: null, value: 0.2, baseline: 0.5 });
    expect(ep!.detail).toMatchObject({ judged: "today", day: TODAY, until: "15:00", num: 4, den: 20, dropPct: 60, history: [0.5, 0.5, 0.5, 0.5] });
    expect(ep!.notifiedAt?.toISOString()).toBe(local(TODAY, "15:00").toISOString());
    const sent = await notifications(tenant, ep!.id);
    expect(sent.map((n) => n.staffId).sort()).toEqual([tenant.staff.admin.id, tenant.staff.manager.id].sort());
    expect(sent[0]).toMatchObject({ kind: "alert", title: "数据异常预警：成交率低于近4周同星期均值30%" });
    expect(sent[0]!.body).toContain("成交率今日截至 15:00 为 20.0%，近4周同星期均值 50.0%，下降 60%");
    // Still failing a quarter later: seen, not notified again.
    const again = await evaluateAlerts({ deps: t.rt.deps, tenantId: tenant.id, now: local(TODAY, "15:15") });
    expect(again).toMatchObject({ opened: 0, stillOpen: 1 });
    const [still] = await episodes(tenant, dealRule);
    expect(still).toMatchObject({ id: ep!.id, closedAt: null });
    expect(still!.lastSeenAt.toISOString()).toBe(local(TODAY, "15:15").toISOString());
    expect(await notifications(tenant, ep!.id)).toHaveLength(2);
    expect(await alertNotifications(tenant)).toBe(2);
  });

  it("closes the episode when the metric recovers, and a later drop is a new episode with one new message each", async () => {
    // 20 more consultations, all converted, at 15:20: 24 of 40 = 60% today so far.
    await consultations(tenant, local(TODAY, "15:20"), 20, 20);
    const rec = await evaluateAlerts({ deps: t.rt.deps, tenantId: tenant.id, now: local(TODAY, "15:30") });
    expect(rec).toMatchObject({ opened: 0, closed: 1 });
    const [closed] = await episodes(tenant, dealRule);
    expect(closed!.closedAt?.toISOString()).toBe(local(TODAY, "15:30").toISOString());
    expect(closed!.detail).toMatchObject({ recovered: { value: 0.6, baseline: 0.5 } });
    // Recovered: nothing more happens.
    expect(await evaluateAlerts({ deps: t.rt.deps, tenantId: tenant.id, now: local(TODAY, "15:45") })).toMatchObject({ opened: 0, closed: 0, stillOpen: 0 });
    // 40 lost consultations at 15:50: 24 of 80 = 30%, 40% under the mean.
    await consultations(tenant, local(TODAY, "15:50"), 40, 0);
    expect(await evaluateAlerts({ deps: t.rt.deps, tenantId: tenant.id, now: local(TODAY, "16:00") })).toMatchObject({ opened: 1 });
    const list = await episodes(tenant, dealRule);
    expect(list).toHaveLength(2);
    expect(list[1]).toMatchObject({ closedAt: null, value: 0.3 });
    expect(await notifications(tenant, list[1]!.id)).toHaveLength(2);
    expect(await alertNotifications(tenant)).toBe(4);
  });

  it("judges yesterday, a complete day, until today has the volume", async () => {
    const t2 = await createTestTenant(t.rt.deps);
    const rule = (await rulesOf(t2)).find((r) => r.metric === "deal_rate")!.id;
    for (let k = 0; k <= 4; k++) await consultations(t2, local(addDays(TODAY, -7 * k), "09:00"), k === 0 ? 3 : 20, k === 0 ? 0 : 10);
    // Yesterday (Tuesday) 2 of 20 against 50% on the last four Tuesdays; today only 3 consultations so far (under 10).
    for (let k = 0; k <= 4; k++) await consultations(t2, local(addDays(TODAY, -1 - 7 * k), "12:00"), 20, k === 0 ? 2 : 10);
    await evaluateAlerts({ deps: t.rt.deps, tenantId: t2.id, now: local(TODAY, "09:30") });
    const [ep] = await episodes(t2, rule);
    expect(ep).toMatchObject({ value: 0.1, baseline: 0.5, closedAt: null });
    expect(ep!.detail).toMatchObject({ judged: "yesterday", day: addDays(TODAY, -1) });
    expect((await notifications(t2, ep!.id))[0]!.body).toContain("成交率昨日（3月10日）为 10.0%");
  });

  it("opens spikes of SLA breaches and send failures against the daily mean, and a threshold", async () => {
    const consultant = client(t.app, tenant.tokens.consultant);
    const contact = await consultant.post("/v1/contacts", { name: "超时客户", phone: phone() });
    const lead = await consultant.post("/v1/leads", { contactId: contact.body.id, source: "api" });
    expect(lead.status).toBe(201);
    const breach = (at: Date) => ({ tenantId: tenant.id, leadId: lead.body.id, staffId: tenant.staff.consultant.id, dueAt: new Date(at.getTime() - 60_000), breachedAt: at, action: "kept" });
    // One breach a day for 14 days (mean 1), then 4 today: under minCount 5, no spike yet.
    await db().insert(leadSlaBreaches).values(Array.from({ length: 14 }, (_, k) => breach(local(addDays(TODAY, -1 - k), "11:00"))));
    await db().insert(leadSlaBreaches).values(Array.from({ length: 4 }, (_, i) => breach(new Date(local(TODAY, "09:00").getTime() + i * 60_000))));
    const slaRule = (await rulesOf(tenant)).find((r) => r.metric === "sla_breaches")!.id;
    await evaluateAlerts({ deps: t.rt.deps, tenantId: tenant.id, now: local(TODAY, "16:15") });
    expect(await episodes(tenant, slaRule)).toHaveLength(0);
    await db().insert(leadSlaBreaches).values([breach(local(TODAY, "16:20"))]);
    await evaluateAlerts({ deps: t.rt.deps, tenantId: tenant.id, now: local(TODAY, "16:30") });
    const [sla] = await episodes(tenant, slaRule);
    expect(sla).toMatchObject({ value: 5, baseline: 1, closedAt: null });
    const msg = await notifications(tenant, sla!.id);
    expect(msg).toHaveLength(2);
    expect(msg[0]!.body).toContain("线索首次联系超时今日截至 16:30 共 5，近14天日均 1，为均值的 5 倍");
    // Send failures: none before, 12 today (minCount 10, factor 3).
    const [post] = await db().insert(posts).values({ tenantId: tenant.id, kind: "mass_message", body: "活动通知", contentHash: randomUUID(), status: "approved" }).returning();
    await db()
      .insert(sends)
      .values(Array.from({ length: 12 }, (_, i) => ({ tenantId: tenant.id, postId: post!.id, contactId: contact.body.id, occurrence: `o${i}`, scheduledAt: local(TODAY, "10:00"), status: "failed" as const, resultAt: local(TODAY, "10:05") })));
    const sendRule = (await rulesOf(tenant)).find((r) => r.metric === "send_failures")!.id;
    await evaluateAlerts({ deps: t.rt.deps, tenantId: tenant.id, now: local(TODAY, "16:45") });
    expect(await episodes(tenant, sendRule)).toMatchObject([{ value: 12, baseline: 0, closedAt: null }]);
    // A threshold: more than 3 breaches today.
    const th = await client(t.app, tenant.tokens.admin).post("/v1/alerts/rules", { name: "今日超时过多", metric: "sla_breaches", condition: { kind: "threshold", op: "gt", value: 3 } });
    expect(th.status).toBe(201);
    await evaluateAlerts({ deps: t.rt.deps, tenantId: tenant.id, now: local(TODAY, "17:00") });
    expect(await episodes(tenant, th.body.id)).toMatchObject([{ value: 5, baseline: 3 }]);
    // The next day starts at zero: the spikes are over (the breach threshold too).
    const next = await evaluateAlerts({ deps: t.rt.deps, tenantId: tenant.id, now: local(addDays(TODAY, 1), "00:15") });
    expect(next.closed).toBeGreaterThanOrEqual(3);
    expect((await episodes(tenant, slaRule))[0]!.closedAt).not.toBeNull();
  });

  it("lists episodes open first for the dashboard, pages them, and lets managers acknowledge", async () => {
    const mk = client(t.app, tenant.tokens.marketing);
    const all = await mk.get("/v1/alerts?limit=200");
    expect(all.status).toBe(200);
    const rows = all.body.items as { id: string; status: string; openedAt: string; ruleName: string; metric: string }[];
    const open = rows.filter((r) => r.status === "open");
    expect(all.body.openCount).toBe(open.length);
    expect(rows.slice(0, open.length).every((r) => r.status === "open")).toBe(true);
    expect(rows.length).toBeGreaterThan(open.length);
    expect(rows.find((r) => r.metric === "deal_rate")).toMatchObject({ ruleName: "成交率低于近4周同星期均值30%" });
    // Paging one at a time visits each once, in the same order.
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { items: { id: string }[]; nextCursor: string | null } } = await mk.get(`/v1/alerts?limit=1${cursor ? `&cursor=${cursor}` : ""}`);
      seen.push(...page.body.items.map((i) => i.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual(rows.map((r) => r.id));
    expect((await mk.get("/v1/alerts?status=closed")).body.items.every((r: { status: string }) => r.status === "closed")).toBe(true);
    expect((await mk.get("/v1/alerts?cursor=nope")).body.errors[0].field).toBe("cursor");
    // Acknowledge: managers and admins, once; another tenant's admin finds nothing.
    const id = rows[0]!.id;
    expect((await mk.post(`/v1/alerts/${id}/ack`)).status).toBe(403);
    const other = await createTestTenant(t.rt.deps);
    expect((await client(t.app, other.tokens.admin).post(`/v1/alerts/${id}/ack`)).status).toBe(404);
    expect((await client(t.app, other.tokens.admin).get("/v1/alerts")).body).toMatchObject({ items: [], openCount: 0 });
    const ack = await client(t.app, tenant.tokens.manager).post(`/v1/alerts/${id}/ack`);
    expect(ack.status).toBe(200);
    expect(ack.body).toMatchObject({ id, acknowledgedByStaffId: tenant.staff.manager.id });
    const twice = await client(t.app, tenant.tokens.admin).post(`/v1/alerts/${id}/ack`);
    expect(twice.body.acknowledgedAt).toBe(ack.body.acknowledgedAt);
    expect(twice.body.acknowledgedByStaffId).toBe(tenant.staff.manager.id);
  });

  it("closes a rule's open episode when it is switched off or its test changes", async () => {
    const [open] = (await episodes(tenant, dealRule)).filter((e) => e.closedAt === null);
    expect(open).toBeDefined();
    const r = await client(t.app, tenant.tokens.manager).patch(`/v1/alerts/rules/${dealRule}`, { condition: { kind: "drop_vs_weekday_mean", pct: 50, weeks: 4 } });
    expect(r.body).toMatchObject({ openEpisodes: 0 });
    expect((await episodes(tenant, dealRule)).find((e) => e.id === open!.id)!.detail).toMatchObject({ closedReason: "rule_changed" });
  });
});

describe("per-clinic scope", () => {
  it("opens an episode for the clinic that dropped only, and a clinic rule watches its own clinic", async () => {
    const TODAY = "2026-05-20";
    const tenant = await createTestTenant(t.rt.deps);
    const admin = client(t.app, tenant.tokens.admin);
    const x = (await admin.post("/v1/clinics", { name: "西湖店" })).body.id as string;
    const y = (await admin.post("/v1/clinics", { name: "滨江店" })).body.id as string;
    // History per clinic: X 10 of 20, Y 50 of 100 on the last four Wednesdays.
    for (let k = 1; k <= 4; k++) {
      await consultations(tenant, local(addDays(TODAY, -7 * k), "10:00"), 20, 10, x);
      await consultations(tenant, local(addDays(TODAY, -7 * k), "10:00"), 100, 50, y);
    }
    // Today X: 2 of 20 (80% down); Y: 50 of 100. Together 52 of 120 = 43%, 13% down: the tenant-wide rule holds.
    await consultations(tenant, local(TODAY, "10:00"), 20, 2, x);
    await consultations(tenant, local(TODAY, "10:00"), 100, 50, y);
    const per = await admin.post("/v1/alerts/rules", { name: "各门店成交率下降", metric: "deal_rate", condition: { kind: "drop_vs_weekday_mean", pct: 30 }, scope: { perClinic: true } });
    const yOnly = await admin.post("/v1/alerts/rules", { name: "滨江店成交率低于60%", metric: "deal_rate", condition: { kind: "threshold", op: "lt", value: 0.6, minDenominator: 50 }, scope: { clinicId: y } });
    expect([per.status, yOnly.status]).toEqual([201, 201]);
    await evaluateAlerts({ deps: t.rt.deps, tenantId: tenant.id, now: local(TODAY, "12:00") });
    expect((await episodes(tenant, per.body.id)).map((e) => [e.scopeKey, e.value])).toEqual([[x, 0.1]]);
    expect((await episodes(tenant, yOnly.body.id)).map((e) => [e.scopeKey, e.value])).toEqual([[y, 0.5]]);
    const dealDefault = (await rulesOf(tenant)).find((r) => r.name === "成交率低于近4周同星期均值30%")!.id;
    expect(await episodes(tenant, dealDefault)).toHaveLength(0);
    const [ep] = await episodes(tenant, per.body.id);
    expect((await notifications(tenant, ep!.id))[0]!.body).toContain("范围：西湖店");
    const list = await client(t.app, tenant.tokens.manager).get("/v1/alerts?status=open");
    expect(list.body.items.map((i: { clinicName: string | null }) => i.clinicName).sort()).toEqual(["滨江店", "西湖店"]);
  });
});

describe("the schedule", () => {
  it("evaluates every tenant with rules through alerts-evaluate-all on the maintenance queue", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const [post] = await db().insert(posts).values({ tenantId: tenant.id, kind: "mass_message", body: "活动通知", contentHash: randomUUID(), status: "approved" }).returning();
    const now = new Date(Date.now() - 1000);
    await db()
      .insert(sends)
      .values(Array.from({ length: 11 }, (_, i) => ({ tenantId: tenant.id, postId: post!.id, occurrence: `o${i}`, chatId: `wr${i}`, scheduledAt: now, status: "failed" as const, resultAt: now })));
    const workers: RunningWorker[] = startWorkers(t.rt.deps, t.rt.redisUrl, ["maintenance"]);
    try {
      await t.rt.deps.producer.enqueue("alerts-evaluate-all", { at: `test${Date.now()}` }, { jobId: `alerts-all-test-${Date.now()}` });
      const rule = (await db().select().from(alertRules).where(and(eq(alertRules.tenantId, tenant.id), eq(alertRules.metric, "send_failures"))))[0]!;
      const [ep] = await waitFor(async () => {
        const rows = await episodes(tenant, rule.id);
        return rows.length ? rows : null;
      }, { what: "the send-failure spike episode" });
      expect(ep).toMatchObject({ value: 11, closedAt: null });
      expect(await notifications(tenant, ep!.id)).toHaveLength(2);
    } finally {
      await Promise.all(workers.map((w) => w.close()));
    }
  });
});
