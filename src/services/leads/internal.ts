import { and, eq, isNull, sql, type SQL } from "drizzle-orm";
import type { DbOrTx, Tx } from "../../db/client";
import { rowsOf } from "../../db/client";
import { contacts, leadAssignments, leadGradeChanges, leads, leadSettings, leadTasks, leadTurns, tenants } from "../../db/schema/index";
import { DEFAULT_LEAD_CONFIG, LeadConfig, type Strategy } from "../../domain/leads/config";
import { gradeLead } from "../../domain/leads/grade";
import { chooseConsultant, type Candidate } from "../../domain/leads/route";
import { slaDueAt, slaRemindAt, type Shift } from "../../domain/leads/sla";
import { actorStaffId, afterCommit, type Ctx } from "../context";
import { armSlaTimers } from "./sla-timers";

/**
 * Every change of lead ownership in a tenant holds this lock for the rest of its transaction:
 * routing reads loads and turns and writes them back, so two assignments must not interleave
 * (round-robin stays fair, capacity is never exceeded). Callers lock the contact row first.
 */
export async function lockLeads(tx: Tx, tenantId: string): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`siyu-leads-${tenantId}`}::text))`);
}

/** The lead settings for a clinic (its own row, else the tenant's, else the defaults). */
export async function leadConfig(db: DbOrTx, tenantId: string, clinicId: string | null): Promise<LeadConfig> {
  const rows = await db
    .select({ clinicId: leadSettings.clinicId, config: leadSettings.config })
    .from(leadSettings)
    .where(and(eq(leadSettings.tenantId, tenantId), clinicId ? sql`(${leadSettings.clinicId} = ${clinicId}::uuid or ${leadSettings.clinicId} is null)` : isNull(leadSettings.clinicId)));
  const row = rows.find((r) => r.clinicId === clinicId) ?? rows.find((r) => r.clinicId === null);
  if (!row) return DEFAULT_LEAD_CONFIG;
  const p = LeadConfig.safeParse(row.config);
  return p.success ? p.data : DEFAULT_LEAD_CONFIG;
}

export async function tenantTimeZone(db: DbOrTx, tenantId: string): Promise<string> {
  const [t] = await db.select({ tz: tenants.timezone }).from(tenants).where(eq(tenants.id, tenantId));
  return t?.tz ?? "Asia/Shanghai";
}

/** What one lead operation reads once: the settings for the lead's clinic and the tenant's time zone. */
export interface LeadEnv {
  config: LeadConfig;
  timeZone: string;
}

export async function leadEnv(db: DbOrTx, tenantId: string, clinicId: string | null): Promise<LeadEnv> {
  return { config: await leadConfig(db, tenantId, clinicId), timeZone: await tenantTimeZone(db, tenantId) };
}

/** The contact's tags by group (need, engagement, spending feed the grade). */
export async function contactTagsByGroup(db: DbOrTx, tenantId: string, contactId: string): Promise<Record<string, string[]>> {
  const rows = rowsOf<{ grp: string; name: string }>(
    await db.execute(sql`select g.key as grp, t.name from contact_tags ct join tags t on t.id = ct.tag_id join tag_groups g on g.id = t.group_id
      where ct.tenant_id = ${tenantId}::uuid and ct.contact_id = ${contactId}::uuid order by ct.added_at`),
  );
  const out: Record<string, string[]> = {};
  for (const r of rows) (out[r.grp] ??= []).push(r.name);
  return out;
}

type LeadRow = typeof leads.$inferSelect;

/** The needs a lead is about: its own, then the contact's need tags. */
function leadNeeds(lead: Pick<LeadRow, "need">, tags: Record<string, string[]>): string[] {
  return [...new Set([...(lead.need ? [lead.need] : []), ...(tags.need ?? [])])];
}

/** Recompute a lead's score and grade from the contact's tags; a new grade (or the first) is recorded with its parts. */
export async function regrade(tx: Tx, ctx: Ctx, lead: LeadRow, config: LeadConfig, tags: Record<string, string[]>, opts: { initial?: boolean } = {}): Promise<{ score: number; grade: LeadRow["grade"] }> {
  const g = gradeLead({ source: lead.source, needs: leadNeeds(lead, tags), engagement: tags.engagement?.[0] ?? null, spending: tags.spending?.[0] ?? null, signalScore: lead.signalScore, lastSignalAt: lead.lastSignalAt }, config.grading, ctx.deps.now());
  if (opts.initial || g.score !== lead.score || g.grade !== lead.grade) {
    await tx.update(leads).set({ score: g.score, grade: g.grade, updatedAt: ctx.deps.now() }).where(eq(leads.id, lead.id));
  }
  if (opts.initial || g.grade !== lead.grade) {
    await tx.insert(leadGradeChanges).values({ tenantId: ctx.tenantId, leadId: lead.id, fromGrade: opts.initial ? null : lead.grade, toGrade: g.grade, score: g.score, parts: g.parts });
  }
  return { score: g.score, grade: g.grade };
}

/** A consultant's open leads (their load against capacity), for a staff id column or value. */
export function openLeadsOf(tenantId: SQL, staffId: SQL): SQL<number> {
  return sql<number>`(select count(*)::int from leads l where l.tenant_id = ${tenantId} and l.active_owner_staff_id = ${staffId})`;
}

/** Consultants who can take leads in a clinic (or anywhere, without one), with their load and turns. */
export async function candidates(tx: Tx, tenantId: string, clinicId: string | null, scope: string): Promise<Candidate[]> {
  const rows = rowsOf<{ id: string; skills: string[]; capacity: number; shift: Record<string, [string, string]> | null; open: number; turns: number | null; last_at: string | Date | null }>(
    await tx.execute(sql`
      select s.id, s.skills, s.capacity, s.shift,
        ${openLeadsOf(sql`s.tenant_id`, sql`s.id`)} as open,
        t.turns, t.last_at
      from staff s left join lead_turns t on t.tenant_id = s.tenant_id and t.scope = ${scope} and t.staff_id = s.id
      where s.tenant_id = ${tenantId}::uuid and s.role = 'consultant' and s.active
        ${clinicId ? sql`and (s.clinic_id = ${clinicId}::uuid or s.clinic_id is null)` : sql``}
      order by s.id`),
  );
  return rows.map((r) => ({ id: r.id, skills: r.skills ?? [], capacity: r.capacity, openLeads: r.open, turns: r.turns ?? 0, lastAt: r.last_at ? new Date(r.last_at) : null, shift: r.shift }));
}

/**
 * Give an open lead to a consultant (or to the pool when staffId is null): the lead's owner and
 * the contact's owner change together (the deferred foreign key checks it at commit), the move is
 * recorded in lead_assignments, and the consultant takes a turn in the lead's scope (its clinic,
 * or the tenant). The caller holds the lead lock.
 *
 * A new owner gets a fresh first-contact deadline (by grade, counted in their working hours when
 * the SLA says so; see domain/leads/sla.ts), and its timers are armed once the transaction
 * commits. `timeZone` (the tenant's) and `shift` (the new owner's) are read when not given.
 */
export async function moveLead(
  tx: Tx,
  ctx: Ctx,
  lead: Pick<LeadRow, "id" | "contactId" | "clinicId" | "activeOwnerStaffId" | "grade">,
  to: string | null,
  how: { kind: string; strategy?: Strategy | null; reason?: string | null; config: LeadConfig; timeZone?: string; shift?: Shift },
): Promise<void> {
  const now = ctx.deps.now();
  let timer: { dueAt: Date; remindAt: Date | null } | null = null;
  if (to) {
    const sla = how.config.sla;
    let { timeZone, shift } = how;
    if (timeZone === undefined || (sla.workingHoursOnly && shift === undefined)) {
      const [row] = rowsOf<{ shift: Shift; tz: string }>(await tx.execute(sql`select s.shift, t.timezone as tz from staff s join tenants t on t.id = s.tenant_id where s.tenant_id = ${ctx.tenantId}::uuid and s.id = ${to}::uuid`));
      timeZone ??= row?.tz ?? "Asia/Shanghai";
      shift ??= row?.shift ?? null;
    }
    const dueAt = slaDueAt(now, sla.firstContactMinutes[lead.grade], shift ?? null, timeZone, sla.workingHoursOnly);
    timer = { dueAt, remindAt: slaRemindAt(now, dueAt, sla.remindBeforeMinutes) };
  }
  await tx
    .update(leads)
    .set({
      activeOwnerStaffId: to,
      ...(to && timer ? { ownerStaffId: to, assignedAt: now, firstContactDueAt: timer.dueAt, firstContactedAt: null } : { assignedAt: null, firstContactDueAt: null }),
      updatedAt: now,
    })
    .where(eq(leads.id, lead.id));
  await tx.update(contacts).set({ ownerStaffId: to, updatedAt: now }).where(and(eq(contacts.tenantId, ctx.tenantId), eq(contacts.id, lead.contactId)));
  await tx.update(leadTasks).set({ staffId: to }).where(and(eq(leadTasks.leadId, lead.id), eq(leadTasks.status, "open")));
  await tx.insert(leadAssignments).values({ tenantId: ctx.tenantId, leadId: lead.id, contactId: lead.contactId, fromStaffId: lead.activeOwnerStaffId, toStaffId: to, kind: how.kind, strategy: how.strategy ?? null, reason: how.reason ?? null, actorStaffId: actorStaffId(ctx) });
  if (to) {
    await tx
      .insert(leadTurns)
      .values({ tenantId: ctx.tenantId, scope: turnScope(lead), staffId: to, turns: 1, lastAt: now })
      .onConflictDoUpdate({ target: [leadTurns.tenantId, leadTurns.scope, leadTurns.staffId], set: { turns: sql`${leadTurns.turns} + 1`, lastAt: now } });
  }
  if (timer) {
    const { dueAt, remindAt } = timer;
    afterCommit(ctx, () => armSlaTimers(ctx.deps, ctx.tenantId, lead.id, dueAt, remindAt));
  }
}

const turnScope = (lead: Pick<LeadRow, "clinicId">) => lead.clinicId ?? "tenant";

/** Route an open lead by the strategy chain; the pool when nobody fits. Caller holds the lock. */
export async function routeLead(
  tx: Tx,
  ctx: Ctx,
  lead: LeadRow,
  env: LeadEnv,
  tags: Record<string, string[]>,
  opts: { kind?: string; reason?: string; exclude?: ReadonlySet<string> } = {},
): Promise<void> {
  const people = await candidates(tx, ctx.tenantId, lead.clinicId, turnScope(lead));
  const pick = chooseConsultant(people, { needs: leadNeeds(lead, tags) }, env.config.assignment, ctx.deps.now(), env.timeZone, opts.exclude);
  await moveLead(tx, ctx, lead, pick?.staffId ?? null, {
    kind: pick ? (opts.kind ?? "assign") : "pool",
    strategy: pick?.strategy ?? null,
    reason: opts.reason ?? (pick ? null : "nobody fits: on shift, with room and the skills"),
    config: env.config,
    timeZone: env.timeZone,
    shift: people.find((c) => c.id === pick?.staffId)?.shift ?? null,
  });
}
