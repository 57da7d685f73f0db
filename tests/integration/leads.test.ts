import { spawn } from "node:child_process";
import path from "node:path";
import { and, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rowsOf } from "../../src/db/client";
import { contacts, leadAssignments, leadGradeChanges, leads, staff } from "../../src/db/schema/index";
import type { Ctx } from "../../src/services/context";
import { systemCtx } from "../../src/services/context";
import { claimLead, getLead, leadHistory, listLeads, putLeadSettings, reassignLead, signalLead } from "../../src/services/leads/leads";
import { createStaff } from "../../src/services/staff/create";
import { updateContact } from "../../src/services/contacts/update";
import { sweepSla } from "../../src/services/leads/sla";
import { recordAttempt } from "../../src/services/leads/workspace";
import { ROOT } from "../helpers/cli";
import { createTestTenant, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";

let t: TestRuntime;
beforeAll(async () => {
  t = await createTestRuntime();
});
afterAll(async () => t?.close());

const staffCtx = (tenant: TestTenant, key: "admin" | "manager" | "consultant" | "consultant2", role: "admin" | "manager" | "consultant" = key === "consultant2" ? "consultant" : (key as "admin" | "manager" | "consultant")): Ctx => ({
  ...systemCtx(t.rt.deps, tenant.id, "test"),
  actor: { kind: "staff", staffId: tenant.staff[key].id, role, name: key, via: "token" },
});

async function newContact(tenantId: string, o: Partial<typeof contacts.$inferInsert> = {}) {
  const [c] = await t.rt.deps.db.insert(contacts).values({ tenantId, name: "客户", source: "api", ...o }).returning();
  return c!;
}

/** A tenant whose only consultants are the ones made here (the factory's two are deactivated). */
async function tenantWithConsultants(n: number, o: { capacity?: number; skills?: string[][] } = {}) {
  const tenant = await createTestTenant(t.rt.deps);
  await t.rt.deps.db.update(staff).set({ active: false }).where(and(eq(staff.tenantId, tenant.id), eq(staff.role, "consultant")));
  const ctx = systemCtx(t.rt.deps, tenant.id, "test");
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const s = await createStaff({ ctx, input: { name: `顾问${i}`, email: `k${i}@${tenant.slug}.test`, role: "consultant", skills: o.skills?.[i] ?? [], capacity: o.capacity ?? 50 } });
    ids.push(s.id);
  }
  return { tenant, ctx, ids };
}

describe("leads: one open lead per contact, graded, owned by exactly one consultant", () => {
  it("opens a graded lead, routes it, and a repeat signal raises the same lead instead of opening another", async () => {
    const { tenant, ctx, ids } = await tenantWithConsultants(2);
    const c = await newContact(tenant.id);
    const first = await signalLead({ ctx, input: { contactId: c.id, source: "referral", need: "种植牙", score: 10 } });
    expect(first.created).toBe(true);
    expect(ids).toContain(first.lead.ownerStaffId);
    expect(first.lead).toMatchObject({ status: "open", source: "referral", need: "种植牙", signals: 1, inPool: false });
    const again = await signalLead({ ctx, input: { contactId: c.id, source: "rule", score: 5 } });
    expect(again.created).toBe(false);
    expect(again.lead.id).toBe(first.lead.id);
    expect(again.lead.signals).toBe(2);
    expect(again.lead.score).toBeGreaterThan(first.lead.score);
    const open = await t.rt.deps.db.select().from(leads).where(and(eq(leads.contactId, c.id), eq(leads.status, "open")));
    expect(open).toHaveLength(1);
    // The contact's owner is the lead's owner.
    const [owner] = await t.rt.deps.db.select({ o: contacts.ownerStaffId }).from(contacts).where(eq(contacts.id, c.id));
    expect(owner!.o).toBe(first.lead.ownerStaffId);
    // Grading is recorded with its parts; the assignment with its strategy.
    const history = await leadHistory({ ctx, id: first.lead.id });
    expect(history.grades[0]).toMatchObject({ fromGrade: null, toGrade: first.lead.grade, score: first.lead.score });
    expect(history.grades[0]!.parts).toMatchObject({ need: 25, source: 25, signals: 10 });
    expect(history.assignments[0]).toMatchObject({ kind: "assign", strategy: "round_robin", fromStaffId: null, toStaffId: first.lead.ownerStaffId });
  });

  it("refuses a second open lead and a lead owner who is not the contact's owner, in the database itself", async () => {
    const { tenant, ctx, ids } = await tenantWithConsultants(2);
    const c = await newContact(tenant.id);
    const { lead } = await signalLead({ ctx, input: { contactId: c.id } });
    const db = t.rt.deps.db;
    await expect(db.insert(leads).values({ tenantId: tenant.id, contactId: c.id, source: "api" })).rejects.toThrow();
    const other = ids.find((id) => id !== lead.ownerStaffId)!;
    await expect(db.transaction(async (tx) => tx.update(leads).set({ activeOwnerStaffId: other, ownerStaffId: other }).where(eq(leads.id, lead.id)))).rejects.toThrow();
    // Together, in one transaction, the move is allowed.
    await db.transaction(async (tx) => {
      await tx.update(leads).set({ activeOwnerStaffId: other, ownerStaffId: other }).where(eq(leads.id, lead.id));
      await tx.update(contacts).set({ ownerStaffId: other }).where(eq(contacts.id, c.id));
    });
    // A changed contact owner carries its open lead along (a trigger), so the two never disagree.
    await db.update(contacts).set({ ownerStaffId: lead.ownerStaffId }).where(eq(contacts.id, c.id));
    const [after] = await db.select({ o: leads.activeOwnerStaffId }).from(leads).where(eq(leads.id, lead.id));
    expect(after!.o).toBe(lead.ownerStaffId);
  });

  it("gives a new lead to the contact's consultant of record (the owner keeps the client)", async () => {
    const { tenant, ctx, ids } = await tenantWithConsultants(3);
    const c = await newContact(tenant.id, { ownerStaffId: ids[2] });
    const { lead } = await signalLead({ ctx, input: { contactId: c.id } });
    expect(lead.ownerStaffId).toBe(ids[2]);
    expect((await leadHistory({ ctx, id: lead.id })).assignments[0]).toMatchObject({ kind: "direct", toStaffId: ids[2] });
  });

  it("matches skills, then falls back along the chain, then to the pool when nobody fits", async () => {
    const { tenant, ctx, ids } = await tenantWithConsultants(2, { capacity: 1, skills: [["正畸"], []] });
    await putLeadSettings({ ctx, input: { assignment: { chain: [{ strategy: "skill" }, { strategy: "least_loaded" }] } } });
    const a = await signalLead({ ctx, input: { contactId: (await newContact(tenant.id)).id, need: "正畸" } });
    expect(a.lead.ownerStaffId).toBe(ids[0]);
    expect((await leadHistory({ ctx, id: a.lead.id })).assignments[0]!.strategy).toBe("skill");
    // The skilled consultant is full: the next 正畸 lead goes down the chain.
    const b = await signalLead({ ctx, input: { contactId: (await newContact(tenant.id)).id, need: "正畸" } });
    expect(b.lead.ownerStaffId).toBe(ids[1]);
    expect((await leadHistory({ ctx, id: b.lead.id })).assignments[0]!.strategy).toBe("least_loaded");
    // Everyone is full: the pool.
    const c = await signalLead({ ctx, input: { contactId: (await newContact(tenant.id)).id } });
    expect(c.lead).toMatchObject({ ownerStaffId: null, inPool: true });
    const [owner] = await t.rt.deps.db.select({ o: contacts.ownerStaffId }).from(contacts).where(eq(contacts.id, c.lead.contactId));
    expect(owner!.o).toBeNull();
  });

  it("lets consultants claim from the pool once (races safely) and within a daily cap", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const sys = systemCtx(t.rt.deps, tenant.id, "test");
    // Nobody on shift: every lead waits in the pool.
    await t.rt.deps.db.update(staff).set({ shift: {} }).where(eq(staff.tenantId, tenant.id));
    await putLeadSettings({ ctx: sys, input: { assignment: { poolDailyClaimCap: 2 } } });
    const pooled = [];
    for (let i = 0; i < 3; i++) pooled.push((await signalLead({ ctx: sys, input: { contactId: (await newContact(tenant.id)).id } })).lead);
    expect(pooled.every((l) => l.inPool)).toBe(true);
    const pool = await listLeads({ ctx: staffCtx(tenant, "consultant"), input: { view: "pool" } });
    expect(pool.items.map((l) => l.id).sort()).toEqual(pooled.map((l) => l.id).sort());
    // Two consultants race for one lead: exactly one wins, the other gets 409.
    const race = await Promise.allSettled([claimLead({ ctx: staffCtx(tenant, "consultant"), id: pooled[0]!.id }), claimLead({ ctx: staffCtx(tenant, "consultant2"), id: pooled[0]!.id })]);
    expect(race.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const lost = race.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect(lost.reason).toMatchObject({ status: 409 });
    const winner = (race.find((r) => r.status === "fulfilled") as PromiseFulfilledResult<{ ownerStaffId: string }>).value.ownerStaffId;
    const key = winner === tenant.staff.consultant.id ? "consultant" : "consultant2";
    await claimLead({ ctx: staffCtx(tenant, key), id: pooled[1]!.id });
    await expect(claimLead({ ctx: staffCtx(tenant, key), id: pooled[2]!.id })).rejects.toMatchObject({ status: 409, message: expect.stringContaining("cap") });
    // Managers cannot claim (they assign); consultants cannot reassign.
    await expect(claimLead({ ctx: staffCtx(tenant, "manager"), id: pooled[2]!.id })).rejects.toMatchObject({ status: 403 });
    await expect(reassignLead({ ctx: staffCtx(tenant, key), id: pooled[2]!.id, input: { reason: "x" } })).rejects.toMatchObject({ status: 403 });
  });

  it("shows consultants only their own leads (others 404); managers and admins see all", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const sys = systemCtx(t.rt.deps, tenant.id, "test");
    const mine = await signalLead({ ctx: sys, input: { contactId: (await newContact(tenant.id, { ownerStaffId: tenant.staff.consultant.id })).id } });
    const theirs = await signalLead({ ctx: sys, input: { contactId: (await newContact(tenant.id, { ownerStaffId: tenant.staff.consultant2.id })).id } });
    const me = staffCtx(tenant, "consultant");
    expect((await getLead({ ctx: me, id: mine.lead.id })).id).toBe(mine.lead.id);
    await expect(getLead({ ctx: me, id: theirs.lead.id })).rejects.toMatchObject({ status: 404 });
    expect((await listLeads({ ctx: me, input: {} })).items.map((l) => l.id)).toEqual([mine.lead.id]);
    for (const key of ["manager", "admin"] as const) {
      const all = await listLeads({ ctx: staffCtx(tenant, key), input: {} });
      expect(all.items.map((l) => l.id).sort()).toEqual([mine.lead.id, theirs.lead.id].sort());
    }
    // A consultant cannot open a lead on a colleague's contact.
    await expect(signalLead({ ctx: me, input: { contactId: theirs.lead.contactId } })).rejects.toMatchObject({ status: 404 });
  });

  it("reassigns by hand with a reason, to a consultant, by strategy or to the pool, and records who and why", async () => {
    const { tenant, ids } = await tenantWithConsultants(3);
    const mgr = staffCtx(tenant, "manager");
    const { lead } = await signalLead({ ctx: systemCtx(t.rt.deps, tenant.id, "test"), input: { contactId: (await newContact(tenant.id)).id } });
    await expect(reassignLead({ ctx: mgr, id: lead.id, input: { toStaffId: ids[2] } })).rejects.toMatchObject({ status: 422, issues: [expect.objectContaining({ field: "reason" })] });
    const moved = await reassignLead({ ctx: mgr, id: lead.id, input: { toStaffId: ids[2], reason: "客户要求换顾问" } });
    expect(moved.ownerStaffId).toBe(ids[2]);
    const routed = await reassignLead({ ctx: mgr, id: lead.id, input: { reason: "重新分配" } });
    expect(routed.ownerStaffId).not.toBe(ids[2]);
    const pooled = await reassignLead({ ctx: mgr, id: lead.id, input: { toStaffId: null, reason: "放回公海" } });
    expect(pooled.inPool).toBe(true);
    const history = await leadHistory({ ctx: mgr, id: lead.id });
    expect(history.assignments.map((a) => a.kind)).toEqual(["assign", "reassign", "reassign", "release"]);
    expect(history.assignments[1]).toMatchObject({ reason: "客户要求换顾问", actorStaffId: tenant.staff.manager.id });
    const audits = rowsOf<{ action: string }>(await t.rt.deps.db.execute(sql`select action from audit_log where tenant_id = ${tenant.id}::uuid and action = 'lead.reassign'`));
    expect(audits).toHaveLength(3);
  });
});

describe("leads follow their contact", () => {
  it("moves the open lead when the contact's owner is changed elsewhere (an edit), and records it", async () => {
    const { tenant, ctx, ids } = await tenantWithConsultants(2);
    const { lead } = await signalLead({ ctx, input: { contactId: (await newContact(tenant.id)).id } });
    const other = ids.find((id) => id !== lead.ownerStaffId)!;
    await recordAttempt({ ctx, id: lead.id, input: { channel: "phone", outcome: "reached" } });
    await updateContact({ ctx: staffCtx(tenant, "admin"), id: lead.contactId, input: { ownerStaffId: other } });
    const moved = await getLead({ ctx, id: lead.id });
    expect(moved.ownerStaffId).toBe(other);
    // The new owner's first-contact clock restarts: the trigger clears it, the minute SLA sweep sets it.
    expect([moved.firstContactedAt, moved.firstContactDueAt]).toEqual([null, null]);
    expect((await sweepSla(t.rt.deps, { rearm: "near" })).restarted).toBeGreaterThanOrEqual(1);
    const clocked = await getLead({ ctx, id: lead.id });
    expect(new Date(clocked.firstContactDueAt!).getTime()).toBeGreaterThan(new Date(moved.assignedAt!).getTime());
    await updateContact({ ctx: staffCtx(tenant, "admin"), id: lead.contactId, input: { ownerStaffId: null } });
    expect((await getLead({ ctx, id: lead.id })).inPool).toBe(true);
    expect((await leadHistory({ ctx, id: lead.id })).assignments.map((a) => [a.kind, a.toStaffId])).toEqual([
      ["assign", lead.ownerStaffId],
      ["reassign", other],
      ["release", null],
    ]);
  });
});

describe("leads under load", () => {
  it("1,000 leads from three processes at once: one owner each, round-robin shares within one, capacity never exceeded", async () => {
    const { tenant, ids } = await tenantWithConsultants(7, { capacity: 150 });
    const db = t.rt.deps.db;
    const made = await db
      .insert(contacts)
      .values(Array.from({ length: 1000 }, (_, i) => ({ tenantId: tenant.id, name: `并发${i}`, source: "api" })))
      .returning({ id: contacts.id });
    const all = made.map((c) => c.id);
    const parts = [all.slice(0, 334), all.slice(334, 667), all.slice(667)];
    const results = await Promise.all(parts.map((p) => runSignals(tenant.id, p)));
    expect(results.flatMap((r) => r.failures)).toEqual([]);
    const rows = await db.select({ contactId: leads.contactId, owner: leads.activeOwnerStaffId, status: leads.status }).from(leads).where(eq(leads.tenantId, tenant.id));
    expect(rows).toHaveLength(1000);
    expect(new Set(rows.map((r) => r.contactId)).size).toBe(1000);
    expect(rows.every((r) => r.owner !== null && ids.includes(r.owner))).toBe(true);
    const shares = ids.map((id) => rows.filter((r) => r.owner === id).length);
    // 1,000 over 7 at capacity 150: 142 or 143 each.
    expect(Math.max(...shares) - Math.min(...shares)).toBeLessThanOrEqual(1);
    expect(Math.max(...shares)).toBeLessThanOrEqual(150);
    // Every contact's owner is its lead's owner; one assignment row per lead.
    const mismatched = rowsOf<{ n: number }>(await db.execute(sql`select count(*)::int as n from leads l join contacts c on c.id = l.contact_id where l.tenant_id = ${tenant.id}::uuid and c.owner_staff_id is distinct from l.active_owner_staff_id`));
    expect(mismatched[0]!.n).toBe(0);
    const moves = await db.select({ n: sql<number>`count(*)::int` }).from(leadAssignments).where(eq(leadAssignments.tenantId, tenant.id));
    expect(moves[0]!.n).toBe(1000);
    const grades = await db.select({ n: sql<number>`count(*)::int` }).from(leadGradeChanges).where(eq(leadGradeChanges.tenantId, tenant.id));
    expect(grades[0]!.n).toBe(1000);
  }, 120_000);

  it("fills consultants to capacity and sends the rest to the pool under concurrency", async () => {
    const { tenant, ids } = await tenantWithConsultants(3, { capacity: 20 });
    const made = await t.rt.deps.db
      .insert(contacts)
      .values(Array.from({ length: 80 }, (_, i) => ({ tenantId: tenant.id, name: `满员${i}`, source: "api" })))
      .returning({ id: contacts.id });
    const results = await Promise.all([runSignals(tenant.id, made.slice(0, 40).map((c) => c.id)), runSignals(tenant.id, made.slice(40).map((c) => c.id))]);
    expect(results.flatMap((r) => r.failures)).toEqual([]);
    const rows = await t.rt.deps.db.select({ owner: leads.activeOwnerStaffId }).from(leads).where(eq(leads.tenantId, tenant.id));
    expect(ids.map((id) => rows.filter((r) => r.owner === id).length)).toEqual([20, 20, 20]);
    expect(rows.filter((r) => r.owner === null)).toHaveLength(20);
  }, 120_000);
});

function runSignals(tenantId: string, contactIds: string[]): Promise<{ done: number; failures: string[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, "tests/helpers/lead-signals.mjs")], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", SIYU_ENV_JSON: JSON.stringify(t.env), TENANT_ID: tenantId, CONTACT_IDS: contactIds.join(",") },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(JSON.parse(out.trim().split("\n").pop()!) as { done: number; failures: string[] }) : reject(new Error(`lead-signals exited ${code}: ${err}`))));
  });
}
