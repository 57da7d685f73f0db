import { and, eq, isNull, sql } from "drizzle-orm";
import { rowsOf } from "../../db/client";
import { contacts, leads, leadSlaBreaches } from "../../db/schema/index";
import { slaDueAt, slaRemindAt, type Shift } from "../../domain/leads/sla";
import type { LeadConfig } from "../../domain/leads/config";
import { audit, systemCtx, withTransaction, type ServiceDeps } from "../context";
import { notifyStaff } from "../notifications/notify";
import { contactTagsByGroup, leadConfig, leadEnv, lockLeads, moveLead, routeLead } from "./internal";
import { armSlaTimersMany, type SlaTimer } from "./sla-timers";

export { armSlaTimers, armSlaTimersMany, slaJobIds, type SlaTimer } from "./sla-timers";

/**
 * First-contact SLAs. The timer is the lead row: open, with an active owner, not yet contacted,
 * first_contact_due_at set (leads_sla_due_idx holds exactly these). moveLead sets the deadline and
 * arms two BullMQ delayed jobs after commit (sla-timers.ts); their handlers below act only while
 * the row still holds exactly the deadline they were armed for, so a job for a lead that was
 * contacted, moved, closed or given a new deadline does nothing. The lead-sla sweep rebuilds the
 * jobs from PostgreSQL when the scheduler starts, and breaches passed deadlines every minute, so
 * neither a restart nor a Redis data loss loses a deadline.
 */

type LeadRow = typeof leads.$inferSelect;

/** A deadline as a job carries it. */
export interface SlaDeadline {
  tenantId: string;
  leadId: string;
  dueAt: Date;
}

/** Whether the lead's first-contact timer is still running for exactly this deadline. */
function live(lead: Pick<LeadRow, "status" | "activeOwnerStaffId" | "firstContactedAt" | "firstContactDueAt">, dueAt: Date): boolean {
  return lead.status === "open" && lead.activeOwnerStaffId !== null && lead.firstContactedAt === null && lead.firstContactDueAt?.getTime() === dueAt.getTime();
}

const dueKey = (d: SlaDeadline) => `${d.leadId}-${d.dueAt.getTime()}`;

/** "11/25 09:10" in the tenant's time zone. */
function localDateTime(at: Date, timeZone: string): string {
  return new Intl.DateTimeFormat("zh-CN", { timeZone, month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(at);
}

export type RemindOutcome = "reminded" | "already" | "stale";

/**
 * The reminder before a deadline: a WeCom app message to the owner (through the notification
 * outbox, once per lead and deadline) saying whom to contact and how many minutes are left.
 */
export async function remindSla(deps: ServiceDeps, d: SlaDeadline): Promise<RemindOutcome> {
  const ctx = systemCtx(deps, d.tenantId, "lead-sla");
  return withTransaction(ctx, async (tx, ctx) => {
    const [row] = await tx
      .select({ lead: leads, name: contacts.name })
      .from(leads)
      .innerJoin(contacts, eq(contacts.id, leads.contactId))
      .where(and(eq(leads.tenantId, d.tenantId), eq(leads.id, d.leadId)));
    const now = deps.now();
    if (!row || !live(row.lead, d.dueAt) || now >= d.dueAt) return "stale";
    const left = Math.max(1, Math.ceil((d.dueAt.getTime() - now.getTime()) / 60_000));
    const who = row.name ?? "客户";
    const ids = await notifyStaff(tx, ctx, [
      {
        staffId: row.lead.activeOwnerStaffId!,
        kind: "sla_reminder",
        leadId: d.leadId,
        contactId: row.lead.contactId,
        title: "首次联系提醒",
        body: `${who}（${row.lead.grade} 级线索）还有 ${left} 分钟到首次联系时限，请尽快联系。`,
        dedupeKey: `sla-remind-${dueKey(d)}`,
      },
    ]);
    return ids.length ? "reminded" : "already";
  });
}

export type BreachOutcome = { outcome: "breached"; action: "reassign" | "pool"; missedStaffId: string; toStaffId: string | null } | { outcome: "stale" | "early" };

/**
 * A missed first-contact deadline, in one transaction: lock the contact, then the tenant's leads
 * (the order every lead change uses), re-check that the deadline still holds, record the breach
 * (once per lead and deadline: a doubled job finds it recorded), then route the lead again without
 * the owner who missed it (the pool when nobody else fits) or return it to the pool, as the SLA
 * says; notify the owner who missed it and the new owner, and audit it.
 */
export async function breachSla(deps: ServiceDeps, d: SlaDeadline): Promise<BreachOutcome> {
  // A job running a moment early (clocks of two machines) leaves it to the minute sweep.
  if (deps.now().getTime() + 1000 < d.dueAt.getTime()) return { outcome: "early" };
  const ctx = systemCtx(deps, d.tenantId, "lead-sla");
  return withTransaction(ctx, async (tx, ctx): Promise<BreachOutcome> => {
    const [peek] = await tx.select({ contactId: leads.contactId }).from(leads).where(and(eq(leads.tenantId, d.tenantId), eq(leads.id, d.leadId)));
    if (!peek) return { outcome: "stale" };
    const [contact] = await tx.select({ name: contacts.name }).from(contacts).where(and(eq(contacts.tenantId, d.tenantId), eq(contacts.id, peek.contactId))).for("update");
    await lockLeads(tx, d.tenantId);
    const [lead] = await tx.select().from(leads).where(and(eq(leads.tenantId, d.tenantId), eq(leads.id, d.leadId)));
    if (!lead || !live(lead, d.dueAt)) return { outcome: "stale" };
    const [recorded] = await tx.select({ id: leadSlaBreaches.id }).from(leadSlaBreaches).where(and(eq(leadSlaBreaches.leadId, lead.id), eq(leadSlaBreaches.dueAt, d.dueAt)));
    if (recorded) return { outcome: "stale" };

    const missed = lead.activeOwnerStaffId!;
    const env = await leadEnv(tx, d.tenantId, lead.clinicId);
    const reason = `first contact deadline missed (due ${d.dueAt.toISOString()})`;
    if (env.config.sla.onBreach === "reassign") {
      const tags = await contactTagsByGroup(tx, d.tenantId, lead.contactId);
      await routeLead(tx, ctx, lead, env, tags, { kind: "reclaim", reason, exclude: new Set([missed]) });
    } else {
      await moveLead(tx, ctx, lead, null, { kind: "reclaim", reason, config: env.config, timeZone: env.timeZone });
    }
    const [after] = await tx.select({ owner: leads.activeOwnerStaffId, dueAt: leads.firstContactDueAt }).from(leads).where(eq(leads.id, lead.id));
    const to = after?.owner ?? null;
    const action = to ? "reassign" : "pool";
    await tx.insert(leadSlaBreaches).values({ tenantId: d.tenantId, leadId: lead.id, staffId: missed, dueAt: d.dueAt, breachedAt: deps.now(), action, toStaffId: to });

    const who = contact?.name ?? "客户";
    await notifyStaff(tx, ctx, [
      {
        staffId: missed,
        kind: "sla_breach",
        leadId: lead.id,
        contactId: lead.contactId,
        title: "首次联系超时",
        body: `${who}（${lead.grade} 级线索）未在时限内首次联系，已${to ? "转给其他顾问" : "退回公海"}。`,
        dedupeKey: `sla-breach-${dueKey(d)}`,
      },
      ...(to
        ? [
            {
              staffId: to,
              kind: "lead_assigned",
              leadId: lead.id,
              contactId: lead.contactId,
              title: "新线索分配",
              body: `${who}（${lead.grade} 级线索）已转给你（原顾问超时未联系）${after?.dueAt ? `，请在 ${localDateTime(after.dueAt, env.timeZone)} 前首次联系` : ""}。`,
              dedupeKey: `lead-assigned-${dueKey(d)}`,
            },
          ]
        : []),
    ]);
    await audit(tx, ctx, {
      action: "lead.sla_breach",
      entityType: "lead",
      entityId: lead.id,
      before: { ownerStaffId: missed, firstContactDueAt: d.dueAt.toISOString() },
      after: { action, ownerStaffId: to, onBreach: env.config.sla.onBreach },
    });
    return { outcome: "breached", action, missedStaffId: missed, toStaffId: to };
  });
}

/** Live deadlines, across tenants, due before `before` (all when omitted), oldest first, from a keyset position. */
async function liveDeadlines(deps: ServiceDeps, o: { after?: { dueAt: Date; id: string } | undefined; before?: Date | undefined; unbreached?: boolean; limit: number }) {
  return rowsOf<{ tenant_id: string; id: string; clinic_id: string | null; assigned_at: string | Date | null; due_at: string | Date }>(
    await deps.db.execute(sql`
      select l.tenant_id, l.id, l.clinic_id, l.assigned_at, l.first_contact_due_at as due_at
      from leads l
      where l.status = 'open' and l.active_owner_staff_id is not null and l.first_contacted_at is null and l.first_contact_due_at is not null
        ${o.before ? sql`and l.first_contact_due_at <= ${o.before.toISOString()}::timestamptz` : sql``}
        ${o.after ? sql`and (l.first_contact_due_at, l.id) > (${o.after.dueAt.toISOString()}::timestamptz, ${o.after.id}::uuid)` : sql``}
        ${o.unbreached ? sql`and not exists (select 1 from lead_sla_breaches b where b.lead_id = l.id and b.due_at = l.first_contact_due_at)` : sql``}
      order by l.first_contact_due_at, l.id
      limit ${o.limit}`),
  ).map((r) => ({ tenantId: r.tenant_id, leadId: r.id, clinicId: r.clinic_id, assignedAt: r.assigned_at ? new Date(r.assigned_at) : null, dueAt: new Date(r.due_at) }));
}

/**
 * Arm the timers of live deadlines from PostgreSQL, in batches across all tenants: every one
 * (`within` omitted, at scheduler start) or those due within `within` ms. Jobs that are still in
 * Redis keep their ids and are not added twice. Returns the number of deadlines armed.
 */
export async function rearmSlaTimers(deps: ServiceDeps, opts: { within?: number; batch?: number } = {}): Promise<number> {
  const batch = opts.batch ?? 1000;
  const before = opts.within === undefined ? undefined : new Date(deps.now().getTime() + opts.within);
  const configs = new Map<string, Promise<LeadConfig>>();
  const configOf = (tenantId: string, clinicId: string | null) => {
    const key = `${tenantId}/${clinicId ?? ""}`;
    let c = configs.get(key);
    if (!c) configs.set(key, (c = leadConfig(deps.db, tenantId, clinicId)));
    return c;
  };
  let after: { dueAt: Date; id: string } | undefined;
  let armed = 0;
  for (;;) {
    const rows = await liveDeadlines(deps, { after, before, limit: batch });
    if (!rows.length) break;
    const timers: SlaTimer[] = [];
    for (const r of rows) {
      const config = await configOf(r.tenantId, r.clinicId);
      timers.push({ tenantId: r.tenantId, leadId: r.leadId, dueAt: r.dueAt, remindAt: slaRemindAt(r.assignedAt ?? r.dueAt, r.dueAt, config.sla.remindBeforeMinutes) });
    }
    await armSlaTimersMany(deps, timers);
    armed += rows.length;
    const last = rows[rows.length - 1]!;
    after = { dueAt: last.dueAt, id: last.leadId };
    if (rows.length < batch) break;
  }
  return armed;
}

export interface SlaSweepResult {
  /** Deadlines set for leads whose owner changed outside the lead services (the trigger cleared them). */
  restarted: number;
  breached: number;
  rearmed: number;
  failed: number;
}

/** Deadlines passed longer ago than this are breached by the sweep (the job normally does it at once). */
const SWEEP_GRACE_MS = 10_000;
/** The minute sweep re-arms deadlines due within this window (reminders lost with Redis come back). */
const REARM_WINDOW_MS = 60 * 60_000;

/**
 * The lead-sla sweep: breach every passed deadline whose breach is not recorded (its job was lost
 * with Redis, or failed), then re-arm timers: all of them at scheduler start (`rearm: "all"`), else
 * those due within the hour. Runs across all tenants.
 */
export async function sweepSla(deps: ServiceDeps, opts: { rearm: "all" | "near"; limit?: number }): Promise<SlaSweepResult> {
  const result: SlaSweepResult = { restarted: await restartClocks(deps, opts.limit ?? 500), breached: 0, rearmed: 0, failed: 0 };
  const overdue = await liveDeadlines(deps, { before: new Date(deps.now().getTime() - SWEEP_GRACE_MS), unbreached: true, limit: opts.limit ?? 500 });
  for (const d of overdue) {
    try {
      const r = await breachSla(deps, d);
      if (r.outcome === "breached") result.breached++;
    } catch (err) {
      result.failed++;
      deps.logger.warn({ tenantId: d.tenantId, leadId: d.leadId, err: (err as Error).message }, "could not breach an overdue lead; the next sweep retries");
    }
  }
  result.rearmed = await rearmSlaTimers(deps, opts.rearm === "all" ? {} : { within: REARM_WINDOW_MS });
  if (result.restarted || result.breached || result.failed || opts.rearm === "all") deps.logger.info(result, "lead SLA sweep");
  return result;
}

/**
 * Leads whose owner changed outside the lead services (a contact edit, an import, WeCom): the
 * contact-owner trigger restarts their first-contact clock by clearing the deadline, since it
 * depends on the new owner's shift and the settings. Here each gets its deadline, counted from
 * the change (assigned_at), and its timers.
 */
async function restartClocks(deps: ServiceDeps, limit: number): Promise<number> {
  const rows = rowsOf<{ tenant_id: string; id: string; clinic_id: string | null; grade: LeadRow["grade"]; owner: string; assigned_at: string | Date | null; shift: Shift }>(
    await deps.db.execute(sql`
      select l.tenant_id, l.id, l.clinic_id, l.grade, l.active_owner_staff_id as owner, l.assigned_at, s.shift
      from leads l join staff s on s.id = l.active_owner_staff_id
      where l.status = 'open' and l.active_owner_staff_id is not null and l.first_contacted_at is null and l.first_contact_due_at is null
      order by l.assigned_at nulls first limit ${limit}`),
  );
  const timers: SlaTimer[] = [];
  for (const r of rows) {
    const env = await leadEnv(deps.db, r.tenant_id, r.clinic_id);
    const start = r.assigned_at ? new Date(r.assigned_at) : deps.now();
    const dueAt = slaDueAt(start, env.config.sla.firstContactMinutes[r.grade], r.shift, env.timeZone, env.config.sla.workingHoursOnly);
    const set = await deps.db
      .update(leads)
      .set({ firstContactDueAt: dueAt })
      .where(and(eq(leads.id, r.id), eq(leads.activeOwnerStaffId, r.owner), eq(leads.status, "open"), isNull(leads.firstContactDueAt), isNull(leads.firstContactedAt)))
      .returning({ id: leads.id });
    if (set.length) timers.push({ tenantId: r.tenant_id, leadId: r.id, dueAt, remindAt: slaRemindAt(start, dueAt, env.config.sla.remindBeforeMinutes) });
  }
  await armSlaTimersMany(deps, timers);
  return timers.length;
}
