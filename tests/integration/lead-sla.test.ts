import { and, desc, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rowsOf } from "../../src/db/client";
import { contacts, leadAssignments, leads, leadSlaBreaches, staff, staffNotifications } from "../../src/db/schema/index";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { systemCtx } from "../../src/services/context";
import { putLeadSettings, reassignLead, signalLead } from "../../src/services/leads/leads";
import { armSlaTimers, breachSla, remindSla, slaJobIds, sweepSla } from "../../src/services/leads/sla";
import { startFakeWecom, type RunningFakeWecom } from "../../src/wecom/fake/index";
import { client, createTestTenant, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";
import { testWecomApp } from "../helpers/wecom";

/**
 * First-contact SLAs against the real PostgreSQL, Redis (BullMQ delayed jobs and the leads worker)
 * and the fake WeCom. The services' clock runs `skewMs` ahead of the real one, so a test can stand
 * at any moment of a deadline; BullMQ's delays run on the real clock.
 */
let t: TestRuntime;
let fake: RunningFakeWecom;
let workers: RunningWorker[] = [];
let skewMs = 0;
const app = testWecomApp();
/** The tenant connected to the fake WeCom. */
let wecomTenant: TestTenant;

const setNow = (at: Date | number) => {
  skewMs = new Date(at).getTime() - Date.now();
};
const ALL_15 = { firstContactMinutes: { A: 15, B: 15, C: 15, D: 15 } };

beforeAll(async () => {
  fake = await startFakeWecom({ corpId: app.corpId, agentId: app.agentId, secret: app.secret, callbackToken: app.callbackToken, encodingAesKey: app.encodingAesKey });
  t = await createTestRuntime({}, { wecomBaseUrl: fake.url, now: () => new Date(Date.now() + skewMs) });
  wecomTenant = await createTestTenant(t.rt.deps);
  expect((await client(t.app, wecomTenant.tokens.admin).call("PUT", "/v1/wecom/settings", app)).status).toBe(200);
  for (const key of ["consultant", "consultant2"] as const) fake.control.createStaff({ userid: `${key}-${wecomTenant.slug}`, name: key });
  workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["leads", "wecom"]);
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await fake?.close();
  await t?.close();
});

/** A tenant with the factory's two consultants, every grade due in 15 minutes unless `sla` says otherwise. */
async function tenantWithSla(sla: Record<string, unknown> = {}, tenant?: TestTenant) {
  tenant ??= await createTestTenant(t.rt.deps);
  const ctx = systemCtx(t.rt.deps, tenant.id, "test");
  await putLeadSettings({ ctx, input: { sla: { ...ALL_15, ...sla } } });
  return { tenant, ctx };
}

async function newLead(tenant: TestTenant, name = "李女士") {
  const [c] = await t.rt.deps.db.insert(contacts).values({ tenantId: tenant.id, name, source: "api" }).returning();
  const { lead } = await signalLead({ ctx: systemCtx(t.rt.deps, tenant.id, "test"), input: { contactId: c!.id } });
  return { ...lead, ownerStaffId: lead.ownerStaffId!, dueAt: new Date(lead.firstContactDueAt!) };
}

const leadsQueue = () => t.rt.deps.producer.queue("leads");
const job = (id: string) => leadsQueue().getJob(id);
/** The return value of a job once it completed. */
const finished = async (id: string) => (await waitFor(async () => ((await (await job(id))?.getState()) === "completed" ? job(id) : null), { what: `job ${id} completed` }))!.returnvalue;
const breaches = (leadId: string) => t.rt.deps.db.select().from(leadSlaBreaches).where(eq(leadSlaBreaches.leadId, leadId));
const leadRow = async (id: string) => (await t.rt.deps.db.select().from(leads).where(eq(leads.id, id)))[0]!;
const userid = (tenant: TestTenant, staffId: string) => (staffId === tenant.staff.consultant.id ? `consultant-${tenant.slug}` : `consultant2-${tenant.slug}`);
/** App messages the fake WeCom delivered to a userid. */
const sentTo = (user: string) => fake.state.appMessages.filter((m) => m.delivered.includes(user)).map((m) => String((m.body.text as { content?: string } | undefined)?.content ?? ""));

/** Simulate Redis losing the leads queue (restarted without persistence). */
async function loseLeadsQueue() {
  const keys = await t.rt.redis.keys(`${t.rt.config.QUEUE_PREFIX}:leads:*`);
  if (keys.length) await t.rt.redis.del(...keys);
}

describe("first-contact deadlines", () => {
  it("count the owner's working hours (Friday 17:55 + 15 min = Monday 09:10) and arm a reminder and a breach as delayed jobs", async () => {
    const { tenant } = await tenantWithSla();
    const weekdays = Object.fromEntries(["mon", "tue", "wed", "thu", "fri"].map((d) => [d, ["09:00", "18:00"] as [string, string]]));
    await t.rt.deps.db.update(staff).set({ shift: weekdays }).where(and(eq(staff.tenantId, tenant.id), eq(staff.role, "consultant")));
    setNow(new Date("2026-11-27T09:55:00Z")); // Friday 17:55 in Asia/Shanghai
    try {
      const lead = await newLead(tenant);
      expect(Math.abs(lead.dueAt.getTime() - new Date("2026-11-30T01:10:00Z").getTime())).toBeLessThan(2000); // Monday 09:10
      const ids = slaJobIds(lead.id, lead.dueAt);
      expect(ids.breach).not.toContain(":");
      const breach = (await job(ids.breach))!;
      const remind = (await job(ids.remind))!;
      expect(await breach.getState()).toBe("delayed");
      expect(await remind.getState()).toBe("delayed");
      expect(breach.data).toEqual({ tenantId: tenant.id, leadId: lead.id, dueAt: lead.dueAt.toISOString() });
      const hours = (ms: number) => ms / 3_600_000;
      expect(hours(breach.opts.delay!)).toBeCloseTo(63.25, 1);
      expect(breach.opts.delay! - remind.opts.delay!).toBeGreaterThan(5 * 60_000 - 100);
      expect(breach.opts.delay! - remind.opts.delay!).toBeLessThan(5 * 60_000 + 100);
      // Wall clock when working hours do not count.
      await putLeadSettings({ ctx: systemCtx(t.rt.deps, tenant.id, "test"), input: { sla: { ...ALL_15, workingHoursOnly: false } } });
      const wall = await newLead(tenant);
      expect(wall.dueAt.getTime() - new Date(wall.assignedAt!).getTime()).toBe(15 * 60_000);
    } finally {
      setNow(Date.now());
    }
  });

  it("remind the owner through WeCom before the deadline; on breach reassign to another consultant, record it and tell both (real jobs and workers)", async () => {
    const { tenant } = await tenantWithSla({}, wecomTenant);
    setNow(Date.now());
    const lead = await newLead(tenant, "王小姐");
    const owner = lead.ownerStaffId;
    const other = owner === tenant.staff.consultant.id ? tenant.staff.consultant2.id : tenant.staff.consultant.id;
    const ids = slaJobIds(lead.id, lead.dueAt);

    // Three minutes before the deadline the reminder job runs (promoted: its delay would be ten real minutes).
    setNow(lead.dueAt.getTime() - 3 * 60_000);
    await (await job(ids.remind))!.promote();
    const reminder = await waitFor(async () => sentTo(userid(tenant, owner)).find((m) => m.includes("首次联系提醒")), { what: "the reminder at WeCom" });
    expect(reminder).toContain("王小姐");
    expect(reminder).toContain("还有 3 分钟");
    const [note] = await t.rt.deps.db.select().from(staffNotifications).where(and(eq(staffNotifications.leadId, lead.id), eq(staffNotifications.kind, "sla_reminder")));
    expect(note).toMatchObject({ staffId: owner, dedupeKey: `sla-remind-${lead.id}-${lead.dueAt.getTime()}` });
    await waitFor(async () => (await t.rt.deps.db.select().from(staffNotifications).where(eq(staffNotifications.id, note!.id)))[0]!.outcome === "sent", { what: "reminder marked sent" });

    // The deadline passes: the breach job moves the lead to the other consultant.
    setNow(lead.dueAt.getTime() + 1000);
    await (await job(ids.breach))!.promote();
    const [breach] = await waitFor(async () => {
      const b = await breaches(lead.id);
      return b.length ? b : null;
    }, { what: "the breach recorded" });
    expect(breach).toMatchObject({ tenantId: tenant.id, staffId: owner, action: "reassign", toStaffId: other });
    expect(breach!.dueAt.getTime()).toBe(lead.dueAt.getTime());
    const moved = await leadRow(lead.id);
    expect(moved.activeOwnerStaffId).toBe(other);
    const [contact] = await t.rt.deps.db.select({ owner: contacts.ownerStaffId }).from(contacts).where(eq(contacts.id, lead.contactId));
    expect(contact!.owner).toBe(other);
    const [move] = await t.rt.deps.db.select().from(leadAssignments).where(eq(leadAssignments.leadId, lead.id)).orderBy(desc(leadAssignments.at)).limit(1);
    expect(move).toMatchObject({ kind: "reclaim", fromStaffId: owner, toStaffId: other });
    const audits = rowsOf<{ action: string; before: { ownerStaffId: string }; after: { action: string; ownerStaffId: string } }>(
      await t.rt.deps.db.execute(sql`select action, before, after from audit_log where tenant_id = ${tenant.id}::uuid and entity_id = ${lead.id} and action = 'lead.sla_breach'`),
    );
    expect(audits).toHaveLength(1);
    expect(audits[0]).toMatchObject({ before: { ownerStaffId: owner }, after: { action: "reassign", ownerStaffId: other } });
    // Both hear of it in WeCom: the one who missed it, and the new owner.
    await waitFor(async () => sentTo(userid(tenant, owner)).some((m) => m.includes("首次联系超时") && m.includes("王小姐")), { what: "breach message to the owner who missed it" });
    await waitFor(async () => sentTo(userid(tenant, other)).some((m) => m.includes("新线索分配") && m.includes("王小姐")), { what: "assignment message to the new owner" });
    // The new owner has a fresh deadline with its own timers.
    expect(moved.firstContactDueAt!.getTime()).toBeGreaterThan(lead.dueAt.getTime());
    const fresh = slaJobIds(lead.id, moved.firstContactDueAt!);
    await waitFor(async () => (await (await job(fresh.breach))?.getState()) === "delayed", { what: "the new owner's timer armed" });
    expect(await finished(ids.breach)).toMatchObject({ outcome: "breached", action: "reassign" });
  });

  it("returns the lead to the pool when the SLA says so, or when nobody else can take it (recorded as pool)", async () => {
    const { tenant } = await tenantWithSla({ onBreach: "pool" });
    const lead = await newLead(tenant);
    setNow(lead.dueAt.getTime() + 1000);
    expect(await breachSla(t.rt.deps, { tenantId: tenant.id, leadId: lead.id, dueAt: lead.dueAt })).toEqual({ outcome: "breached", action: "pool", missedStaffId: lead.ownerStaffId, toStaffId: null });
    expect(await leadRow(lead.id)).toMatchObject({ activeOwnerStaffId: null, firstContactDueAt: null, status: "open" });
    expect(await breaches(lead.id)).toMatchObject([{ action: "pool", toStaffId: null, staffId: lead.ownerStaffId }]);
    const notes = await t.rt.deps.db.select().from(staffNotifications).where(eq(staffNotifications.leadId, lead.id));
    expect(notes.map((n) => [n.kind, n.staffId])).toEqual([["sla_breach", lead.ownerStaffId]]);

    // Reassign mode, but the only other consultant is away: the pool, recorded as such.
    const { tenant: solo } = await tenantWithSla();
    await t.rt.deps.db.update(staff).set({ active: false }).where(eq(staff.id, solo.staff.consultant2.id));
    setNow(Date.now());
    const alone = await newLead(solo);
    expect(alone.ownerStaffId).toBe(solo.staff.consultant.id);
    setNow(alone.dueAt.getTime() + 1000);
    expect(await breachSla(t.rt.deps, { tenantId: solo.id, leadId: alone.id, dueAt: alone.dueAt })).toMatchObject({ outcome: "breached", action: "pool", toStaffId: null });
    expect((await leadRow(alone.id)).activeOwnerStaffId).toBeNull();
    const [move] = await t.rt.deps.db.select().from(leadAssignments).where(eq(leadAssignments.leadId, alone.id)).orderBy(desc(leadAssignments.at)).limit(1);
    expect(move).toMatchObject({ kind: "pool", toStaffId: null });
    setNow(Date.now());
  });

  it("leaves alone a lead contacted in time, or moved to someone else since (stale jobs do nothing)", async () => {
    const { tenant, ctx } = await tenantWithSla();
    setNow(Date.now());
    const contacted = await newLead(tenant);
    await t.rt.deps.db.update(leads).set({ firstContactedAt: new Date(contacted.dueAt.getTime() - 60_000) }).where(eq(leads.id, contacted.id));
    const moved = await newLead(tenant, "赵先生");
    const other = moved.ownerStaffId === tenant.staff.consultant.id ? tenant.staff.consultant2.id : tenant.staff.consultant.id;
    // Ten minutes later a manager gives it to a colleague: a new deadline, 25 minutes from the first assignment.
    setNow(Date.now() + 10 * 60_000);
    await reassignLead({ ctx: { ...ctx, actor: { kind: "staff", staffId: tenant.staff.manager.id, role: "manager", name: "m", via: "token" } }, id: moved.id, input: { toStaffId: other, reason: "客户要求" } });
    setNow(Math.max(contacted.dueAt.getTime(), moved.dueAt.getTime()) + 30_000);
    for (const l of [contacted, moved]) {
      expect(await remindSla(t.rt.deps, { tenantId: tenant.id, leadId: l.id, dueAt: l.dueAt })).toBe("stale");
      expect(await breachSla(t.rt.deps, { tenantId: tenant.id, leadId: l.id, dueAt: l.dueAt })).toEqual({ outcome: "stale" });
      expect(await breaches(l.id)).toEqual([]);
    }
    // The moved lead's new deadline (the reassignment's) is still ahead; the contacted lead has none running.
    const r = await sweepSla(t.rt.deps, { rearm: "near" });
    expect(r.failed).toBe(0);
    expect(await breaches(contacted.id)).toEqual([]);
    expect(await breaches(moved.id)).toEqual([]);
    expect((await leadRow(moved.id)).activeOwnerStaffId).toBe(other);
    setNow(Date.now());
  });

  it("records a doubled breach once: the same job id is queued once, and racing handlers breach once", async () => {
    const { tenant } = await tenantWithSla();
    setNow(Date.now());
    const lead = await newLead(tenant);
    // Arming the same deadline again adds nothing.
    await armSlaTimers(t.rt.deps, tenant.id, lead.id, lead.dueAt, null);
    await armSlaTimers(t.rt.deps, tenant.id, lead.id, lead.dueAt, null);
    const delayed = await leadsQueue().getJobs(["delayed"]);
    expect(delayed.filter((j) => j.id === slaJobIds(lead.id, lead.dueAt).breach)).toHaveLength(1);
    setNow(lead.dueAt.getTime() + 1000);
    const d = { tenantId: tenant.id, leadId: lead.id, dueAt: lead.dueAt };
    const outcomes = await Promise.all([breachSla(t.rt.deps, d), breachSla(t.rt.deps, d), breachSla(t.rt.deps, d)]);
    expect(outcomes.map((o) => o.outcome).sort()).toEqual(["breached", "stale", "stale"]);
    expect(await breaches(lead.id)).toHaveLength(1);
    // And once more through the real job: still one.
    await (await job(slaJobIds(lead.id, lead.dueAt).breach))!.promote();
    expect(await finished(slaJobIds(lead.id, lead.dueAt).breach)).toEqual({ outcome: "stale" });
    expect(await breaches(lead.id)).toHaveLength(1);
    setNow(Date.now());
  });
});

describe("a restart loses no deadline", () => {
  it("rebuilds lost delayed jobs from PostgreSQL when a new scheduler starts, and they fire", async () => {
    const { tenant } = await tenantWithSla({}, wecomTenant);
    setNow(Date.now());
    const lead = await newLead(tenant, "孙女士");
    const ids = slaJobIds(lead.id, lead.dueAt);
    expect(await job(ids.breach)).toBeTruthy();
    // Everything stops; Redis loses the leads queue.
    await Promise.all(workers.map((w) => w.close()));
    await loseLeadsQueue();
    expect(await job(ids.breach)).toBeUndefined();
    // Three seconds before the deadline, the processes start again.
    setNow(lead.dueAt.getTime() - 3000);
    workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["leads", "wecom", "scheduler"]);
    const rebuilt = await waitFor(() => job(ids.breach), { what: "breach job rebuilt" });
    expect(rebuilt.data).toEqual({ tenantId: tenant.id, leadId: lead.id, dueAt: lead.dueAt.toISOString() });
    // The reminder's time has passed: it goes at once ("1 minute" left), then the breach fires on time.
    await waitFor(async () => sentTo(userid(tenant, lead.ownerStaffId)).some((m) => m.includes("孙女士") && m.includes("还有 1 分钟")), { what: "the rebuilt reminder at WeCom" });
    const [breach] = await waitFor(async () => {
      const b = await breaches(lead.id);
      return b.length ? b : null;
    }, { what: "the rebuilt breach fired" });
    expect(breach).toMatchObject({ staffId: lead.ownerStaffId, action: "reassign" });
    expect(await finished(ids.breach)).toMatchObject({ outcome: "breached" });
    setNow(Date.now());
  });

  it("breaches a passed deadline whose jobs Redis lost, in the minute sweep, once", async () => {
    const { tenant } = await tenantWithSla({ onBreach: "pool" });
    setNow(Date.now());
    const lead = await newLead(tenant);
    await loseLeadsQueue();
    setNow(lead.dueAt.getTime() + 30_000);
    const first = await sweepSla(t.rt.deps, { rearm: "near" });
    expect(first.breached).toBeGreaterThanOrEqual(1);
    expect(await breaches(lead.id)).toMatchObject([{ action: "pool" }]);
    expect((await leadRow(lead.id)).activeOwnerStaffId).toBeNull();
    await sweepSla(t.rt.deps, { rearm: "near" });
    expect(await breaches(lead.id)).toHaveLength(1);
    setNow(Date.now());
  });
});
