import { randomUUID } from "node:crypto";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditLog, events, leads, leadTasks } from "../../src/db/schema/index";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { leadOutcomeOptions } from "../../src/services/leads/outcome-options";
import { client, createTestTenant, phone, staffCtx, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";

let t: TestRuntime;
let workers: RunningWorker[] = [];
beforeAll(async () => {
  t = await createTestRuntime();
  workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["events"]);
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await t?.close();
});

/** A contact owned by the tenant's consultant, with an open lead (through the API). */
async function ownedLead(tenant: TestTenant, o: { need?: string } = {}) {
  const consultant = client(t.app, tenant.tokens.consultant);
  const c = await consultant.post("/v1/contacts", { name: "王女士", phone: phone() });
  const l = await consultant.post("/v1/leads", { contactId: c.body.id, source: "api", ...(o.need ? { need: o.need } : {}) });
  expect([c.status, l.status]).toEqual([201, 201]);
  return { contactId: c.body.id as string, leadId: l.body.id as string, lead: l.body };
}

const event = (contactId: string, type: string, data: Record<string, unknown>) => ({ events: [{ type, contactId, occurredAt: new Date().toISOString(), idempotencyKey: randomUUID(), data }] });

describe("consultant workspace: attempts, outcomes, timeline, my day", () => {
  it("records contact attempts; the first one stops the first-contact clock, and only the owner may record", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const { leadId, lead } = await ownedLead(tenant);
    expect(lead.firstContactDueAt).not.toBeNull();
    expect(lead.firstContactedAt).toBeNull();
    const me = client(t.app, tenant.tokens.consultant);
    const bad = await me.post(`/v1/leads/${leadId}/attempts`, { channel: "fax", outcome: "reached" });
    expect(bad.status).toBe(422);
    expect(bad.body.errors.map((e: { field: string }) => e.field)).toContain("channel");
    const future = await me.post(`/v1/leads/${leadId}/attempts`, { channel: "phone", outcome: "reached", at: new Date(Date.now() + 3_600_000).toISOString() });
    expect(future.status).toBe(422);
    expect(future.body.errors[0].field).toBe("at");
    const first = await me.post(`/v1/leads/${leadId}/attempts`, { channel: "phone", outcome: "no_answer", note: "未接" });
    expect(first.status).toBe(201);
    expect(first.body.lead.firstContactedAt).not.toBeNull();
    const second = await me.post(`/v1/leads/${leadId}/attempts`, { channel: "wecom", outcome: "reached" });
    expect(second.status).toBe(201);
    expect(second.body.lead.firstContactedAt).toBe(first.body.lead.firstContactedAt);
    const other = await client(t.app, tenant.tokens.consultant2).post(`/v1/leads/${leadId}/attempts`, { channel: "phone", outcome: "reached" });
    expect(other.status).toBe(404);
    const audits = await t.rt.deps.db.select().from(auditLog).where(and(eq(auditLog.tenantId, tenant.id), eq(auditLog.action, "lead.attempt"), eq(auditLog.entityId, leadId)));
    expect(audits.map((a) => (a.after as { firstContact: boolean }).firstContact).sort()).toEqual([false, true]);
    expect(audits.every((a) => a.actorStaffId === tenant.staff.consultant.id)).toBe(true);
  });

  it("records a lost consultation with a reason from the settings: an event for the rules engine, the lead closed, its tasks cancelled", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const { leadId, contactId } = await ownedLead(tenant);
    await t.rt.deps.db.insert(leadTasks).values({ tenantId: tenant.id, leadId, contactId, staffId: tenant.staff.consultant.id, stepKey: "day1", title: "案例分享", dueAt: new Date(Date.now() + 86_400_000) });
    const me = client(t.app, tenant.tokens.consultant);
    const missing = await me.post(`/v1/leads/${leadId}/outcome`, { outcome: "lost" });
    expect(missing.status).toBe(422);
    expect(missing.body.errors[0].field).toBe("lostReason");
    const unknown = await me.post(`/v1/leads/${leadId}/outcome`, { outcome: "lost", lostReason: "天气不好" });
    expect(unknown.status).toBe(422);
    expect(unknown.body.errors[0]).toMatchObject({ field: "lostReason" });
    expect(unknown.body.errors[0].message).toContain("价格敏感");
    const noAmount = await me.post(`/v1/leads/${leadId}/outcome`, { outcome: "converted" });
    expect(noAmount.status).toBe(422);
    expect(noAmount.body.errors[0].field).toBe("amount");
    const lost = await me.post(`/v1/leads/${leadId}/outcome`, { outcome: "lost", lostReason: "价格敏感", mode: "online" });
    expect(lost.status).toBe(200);
    expect(lost.body.lead).toMatchObject({ status: "lost", ownerStaffId: null, inPool: false });
    // The consultant of record still sees the closed lead; the contact stays theirs.
    expect((await me.get(`/v1/leads/${leadId}`)).status).toBe(200);
    expect((await me.get(`/v1/contacts/${contactId}`)).body.ownerStaffId).toBe(tenant.staff.consultant.id);
    const [ev] = await t.rt.deps.db.select().from(events).where(eq(events.id, lost.body.eventId));
    expect(ev).toMatchObject({ type: "consultation_outcome", contactId, source: "workspace" });
    expect(ev!.payload).toMatchObject({ outcome: "lost", lostReason: "价格敏感", leadId, staffId: tenant.staff.consultant.id });
    await waitFor(async () => (await t.rt.deps.db.select().from(events).where(eq(events.id, lost.body.eventId)))[0]?.processedAt, { what: "the outcome event processed" });
    const [task] = await t.rt.deps.db.select().from(leadTasks).where(eq(leadTasks.leadId, leadId));
    expect(task!.status).toBe("cancelled");
    const again = await me.post(`/v1/leads/${leadId}/outcome`, { outcome: "converted", amount: 100 });
    expect(again.status).toBe(409);
    // A new signal opens a new lead for the contact: the closed one is history.
    const next = await me.post("/v1/leads", { contactId, source: "api" });
    expect(next.status).toBe(201);
    expect(next.body.id).not.toBe(leadId);
  });

  it("starts the outcome form on in person only when the contact's visit was recorded today (local day), else online", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const { leadId, contactId } = await ownedLead(tenant);
    const ctx = staffCtx(t.rt.deps, tenant, "consultant");
    const reasons = (await leadOutcomeOptions({ ctx, id: leadId })).lostReasons;
    expect(reasons).toContain("价格敏感");
    expect((await leadOutcomeOptions({ ctx, id: leadId })).mode).toBe("online");
    // A visit yesterday (Shanghai) is not today's.
    const shanghaiMidnight = new Date(`${new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10)}T00:00:00+08:00`);
    const me = client(t.app, tenant.tokens.consultant);
    expect((await me.post("/v1/visits", { contactId, occurredAt: new Date(shanghaiMidnight.getTime() - 60_000).toISOString() })).status).toBe(201);
    expect((await leadOutcomeOptions({ ctx, id: leadId })).mode).toBe("online");
    expect((await me.post("/v1/visits", { contactId, occurredAt: shanghaiMidnight.toISOString() })).status).toBe(201);
    expect((await leadOutcomeOptions({ ctx, id: leadId })).mode).toBe("in_person");
    // Another consultant's lead stays hidden.
    await expect(leadOutcomeOptions({ ctx: staffCtx(t.rt.deps, tenant, "consultant2"), id: leadId })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("closes the contact's open lead when a converted consultation arrives as an event from elsewhere", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const { leadId, contactId } = await ownedLead(tenant);
    const res = await client(t.app, tenant.tokens.admin).post("/v1/events", event(contactId, "consultation_outcome", { outcome: "converted", amount: 6800, items: ["光子嫩肤"] }));
    expect(res.status).toBe(202);
    const closed = await waitFor(async () => {
      const [l] = await t.rt.deps.db.select().from(leads).where(eq(leads.id, leadId));
      return l?.status === "converted" ? l : null;
    }, { what: "the lead converted by the event" });
    expect(closed).toMatchObject({ activeOwnerStaffId: null, ownerStaffId: tenant.staff.consultant.id, closedReason: "converted" });
  });

  it("opens a lead from the default rules when a message asks about price, and raises it on the next one", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const admin = client(t.app, tenant.tokens.admin);
    const c = await client(t.app, tenant.tokens.consultant).post("/v1/contacts", { name: "李先生", phone: phone() });
    expect((await admin.post("/v1/events", event(c.body.id, "message_received", { text: "你好，看看环境" }))).status).toBe(202);
    await waitFor(async () => (await t.rt.deps.db.select().from(events).where(and(eq(events.contactId, c.body.id)))).every((e) => e.processedAt), { what: "the plain message processed" });
    expect(await t.rt.deps.db.select().from(leads).where(eq(leads.contactId, c.body.id))).toHaveLength(0);
    expect((await admin.post("/v1/events", event(c.body.id, "message_received", { text: "请问种植牙多少钱？" }))).status).toBe(202);
    const lead = await waitFor(async () => (await t.rt.deps.db.select().from(leads).where(eq(leads.contactId, c.body.id)))[0], { what: "a lead from the intent rule" });
    expect(lead).toMatchObject({ status: "open", source: "message", need: "种植牙", activeOwnerStaffId: tenant.staff.consultant.id, signals: 1 });
    expect(lead.sourceRef).toBe("rule:lead-intent-message:message_received");
    expect((await admin.post("/v1/events", event(c.body.id, "appointment_booked", { at: new Date(Date.now() + 86_400_000).toISOString(), item: "种植牙" }))).status).toBe(202);
    const raised = await waitFor(async () => {
      const [l] = await t.rt.deps.db.select().from(leads).where(eq(leads.id, lead.id));
      return l && l.signals >= 2 ? l : null;
    }, { what: "the lead raised by the appointment" });
    // Raised in bulk by the events worker: one more signal, the appointment rule's 25 points, audited.
    expect(raised).toMatchObject({ signals: 2, signalScore: lead.signalScore + 25 });
    expect(raised.lastSignalAt.getTime()).toBeGreaterThanOrEqual(lead.lastSignalAt.getTime());
    expect(await t.rt.deps.db.select().from(leads).where(eq(leads.contactId, c.body.id))).toHaveLength(1);
    const signalled = await t.rt.deps.db.select().from(auditLog).where(and(eq(auditLog.tenantId, tenant.id), eq(auditLog.action, "lead.signal"), eq(auditLog.entityId, lead.id)));
    expect(signalled).toHaveLength(1);
    expect(signalled[0]!.after).toMatchObject({ source: "appointment", score: 25 });
  });

  it("regrades an open lead when the tags its grade reads change (engagement rises to 高)", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const { leadId, contactId, lead } = await ownedLead(tenant);
    const now = Date.now();
    const joins = Array.from({ length: 6 }, (_, i) => ({ type: "group_joined", contactId, occurredAt: new Date(now - (6 - i) * 1000).toISOString(), idempotencyKey: randomUUID(), data: { chatId: `wr-chat-${i}` } }));
    expect((await client(t.app, tenant.tokens.admin).post("/v1/events", { events: joins })).status).toBe(202);
    const raised = await waitFor(async () => {
      const [l] = await t.rt.deps.db.select().from(leads).where(eq(leads.id, leadId));
      return l && l.score > lead.score ? l : null;
    }, { what: "the lead regraded after engagement rose" });
    expect(raised.score - lead.score).toBe(20);
    const tags = await client(t.app, tenant.tokens.consultant).get(`/v1/contacts/${contactId}/tags`);
    expect(JSON.stringify(tags.body)).toContain("高");
  });

  it("opens leads from a CSV import's lead column, in the contacts' transaction, routed like any other", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const [p1, p2, p3] = [phone(), phone(), phone()];
    const csv = `姓名,手机号,归属顾问,意向项目\n周女士,${p1},${tenant.staff.consultant2.email},种植牙\n吴先生,${p2},,否\n郑女士,${p3},,是\n`;
    const res = await client(t.app, tenant.tokens.marketing).post("/v1/contacts/import", csv, { "content-type": "text/csv" });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ created: 3, failed: 0, leads: 2 });
    const all = await t.rt.deps.db.select().from(leads).where(eq(leads.tenantId, tenant.id));
    expect(all).toHaveLength(2);
    const zhou = all.find((l) => l.need === "种植牙")!;
    expect(zhou).toMatchObject({ source: "import", activeOwnerStaffId: tenant.staff.consultant2.id });
    const other = all.find((l) => l.id !== zhou.id)!;
    expect(other.need).toBeNull();
    // Nobody owned 郑女士: the strategy chain picked one of the tenant's consultants.
    expect([tenant.staff.consultant.id, tenant.staff.consultant2.id]).toContain(other.activeOwnerStaffId);
  });

  it("shows a consultant's day: leads awaiting first contact by deadline, counts by grade, tasks due today and overdue", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const a = await ownedLead(tenant, { need: "种植牙" });
    const b = await ownedLead(tenant);
    const c = await ownedLead(tenant);
    const me = client(t.app, tenant.tokens.consultant);
    expect((await me.post(`/v1/leads/${c.leadId}/attempts`, { channel: "phone", outcome: "reached" })).status).toBe(201);
    const now = Date.now();
    await t.rt.deps.db.insert(leadTasks).values([
      { tenantId: tenant.id, leadId: a.leadId, contactId: a.contactId, staffId: tenant.staff.consultant.id, stepKey: "late", title: "邀约面诊", dueAt: new Date(now - 3_600_000 * 30) },
      { tenantId: tenant.id, leadId: b.leadId, contactId: b.contactId, staffId: tenant.staff.consultant.id, stepKey: "next-week", title: "回访", dueAt: new Date(now + 86_400_000 * 7) },
    ]);
    const day = await me.get("/v1/workspace");
    expect(day.status).toBe(200);
    expect(day.body.staff.id).toBe(tenant.staff.consultant.id);
    expect(day.body.counts.open).toBe(3);
    expect(day.body.counts.awaitingFirstContact).toBe(2);
    const grades = day.body.counts.byGrade as Record<string, number>;
    expect(Object.values(grades).reduce((x, y) => x + y, 0)).toBe(3);
    // Awaiting first contact first, closest deadline first; the contacted lead last.
    const order = day.body.leads.map((l: { id: string }) => l.id);
    expect(order[2]).toBe(c.leadId);
    const dues = day.body.leads.slice(0, 2).map((l: { firstContactDueAt: string }) => l.firstContactDueAt);
    expect([...dues].sort()).toEqual(dues);
    expect(day.body.leads[0].slaSecondsLeft).toBeGreaterThan(0);
    expect(day.body.leads[2].slaSecondsLeft).toBeNull();
    // Today's and overdue tasks (the SOP's own day-0 tasks among them), not next week's; overdue first.
    const tasks = day.body.tasks.map((x: { title: string; overdue: boolean; leadId: string }) => [x.title, x.overdue, x.leadId]);
    expect(tasks[0]).toEqual(["邀约面诊", true, a.leadId]);
    expect(tasks.map((x: unknown[]) => x[0])).not.toContain("回访");
    expect(day.body.counts.tasksOverdue).toBe(tasks.filter((x: unknown[]) => x[1]).length);
    // Another consultant's workspace is empty of these; managers look at anyone's.
    expect((await client(t.app, tenant.tokens.consultant2).get("/v1/workspace")).body.counts.open).toBe(0);
    expect((await client(t.app, tenant.tokens.consultant2).get(`/v1/workspace?staffId=${tenant.staff.consultant.id}`)).status).toBe(404);
    const mgr = await client(t.app, tenant.tokens.manager).get(`/v1/workspace?staffId=${tenant.staff.consultant.id}`);
    expect(mgr.body.counts.open).toBe(3);
    const onlyA = await me.get("/v1/workspace?grade=" + (day.body.leads.find((l: { id: string }) => l.id === a.leadId).grade as string));
    expect(onlyA.body.leads.map((l: { id: string }) => l.id)).toContain(a.leadId);
  });

  it("puts a lead's assignments, grades, attempts, tasks and the contact's events on one timeline, newest first", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const { leadId, contactId } = await ownedLead(tenant);
    const me = client(t.app, tenant.tokens.consultant);
    expect((await client(t.app, tenant.tokens.admin).post("/v1/events", event(contactId, "article_read", { articleId: "a1", topic: "祛痘" }))).status).toBe(202);
    expect((await me.post(`/v1/leads/${leadId}/attempts`, { channel: "wecom", outcome: "reached" })).status).toBe(201);
    await waitFor(async () => (await me.get(`/v1/leads/${leadId}/timeline`)).body.items.some((i: { kind: string }) => i.kind === "event"), { what: "the read on the timeline" });
    const tl = await me.get(`/v1/leads/${leadId}/timeline`);
    const kinds = new Set(tl.body.items.map((i: { kind: string }) => i.kind));
    for (const k of ["event", "assignment", "grade", "attempt"]) expect(kinds, k).toContain(k);
    const ats = tl.body.items.map((i: { at: string }) => i.at);
    expect([...ats].sort().reverse()).toEqual(ats);
    expect((await client(t.app, tenant.tokens.consultant2).get(`/v1/leads/${leadId}/timeline`)).status).toBe(404);
  });
});
