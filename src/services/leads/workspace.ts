import { and, asc, desc, eq, gte, lt, sql } from "drizzle-orm";
import { z } from "zod";
import type { Tx } from "../../db/client";
import { contacts, leadAssignments, leadContactAttempts, leadGradeChanges, leads, leadSlaBreaches, leadTasks, staff } from "../../db/schema/index";
import { ownsOnly } from "../../domain/auth/permissions";
import { startOfLocalDay } from "../../domain/leads/route";
import { ConflictError, NotFoundError, ValidationError, zodIssues } from "../../errors";
import { contactTimeline, type TimelineEntry } from "../contacts/timeline";
import { audit, dbOf, requirePermission, withTransaction, type Ctx } from "../context";
import { ingestEvents } from "../events/ingest";
import { openFollowUpsOf } from "../conversions/follow-ups";
import { getLead, leadViews, lockLead, type LeadView } from "./leads";
import { leadConfig, tenantTimeZone } from "./internal";
import { cancelOpenTasks } from "./sop";

export const ATTEMPT_CHANNELS = ["wecom", "phone", "sms", "visit", "other"] as const;
export const ATTEMPT_OUTCOMES = ["reached", "no_answer", "busy", "refused", "wrong_number", "left_message"] as const;

export const AttemptInput = z
  .object({
    channel: z.enum(ATTEMPT_CHANNELS),
    outcome: z.enum(ATTEMPT_OUTCOMES),
    note: z.string().trim().max(1000).optional(),
    /** When the attempt happened (default now); not in the future. */
    at: z.iso.datetime({ offset: true }).optional(),
  })
  .strict();

export const OutcomeInput = z
  .object({
    outcome: z.enum(["converted", "lost"]),
    /** Converted: the amount in yuan and the items bought. */
    amount: z.number().finite().min(0).max(100_000_000).optional(),
    items: z.array(z.string().trim().min(1).max(200)).max(100).optional(),
    /** Lost: one of the lead settings' `outcomes.lostReasons`. */
    lostReason: z.string().trim().min(1).max(200).optional(),
    /** Online (WeCom, phone) or in person at the clinic. */
    mode: z.enum(["online", "in_person"]).default("in_person"),
    note: z.string().trim().max(1000).optional(),
    occurredAt: z.iso.datetime({ offset: true }).optional(),
  })
  .strict()
  .superRefine((v, c) => {
    if (v.outcome === "converted" && v.amount === undefined) c.addIssue({ code: "custom", path: ["amount"], message: "is required when the outcome is converted" });
    if (v.outcome === "lost" && !v.lostReason) c.addIssue({ code: "custom", path: ["lostReason"], message: "is required when the outcome is lost" });
    if (v.outcome === "lost" && (v.amount !== undefined || v.items?.length)) c.addIssue({ code: "custom", path: ["amount"], message: "only a converted consultation has an amount and items" });
  });

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** A lead the caller may work: consultants only their own (anyone else's is 404), locked for the change. */
async function workableLead(tx: Tx, ctx: Ctx, id: string) {
  const lead = await lockLead(tx, ctx, id);
  if (ctx.actor.kind === "staff" && ownsOnly(ctx.actor.role)) {
    const me = ctx.actor.staffId;
    // Their open leads, and their closed ones (as getLead shows them: a change then is a 409).
    if (lead.activeOwnerStaffId !== me && !(lead.status !== "open" && lead.ownerStaffId === me)) throw new NotFoundError("lead");
  }
  return lead;
}

function notFuture(ctx: Ctx, at: string | undefined, field: string): Date {
  const now = ctx.deps.now();
  if (!at) return now;
  const d = new Date(at);
  if (d.getTime() > now.getTime() + 60_000) throw new ValidationError([{ field, message: "is in the future" }]);
  return d;
}

/**
 * A consultant's contact attempt (a call, a WeCom message, a visit). The first attempt on an open
 * lead meets its first-contact SLA (the timer stops), whatever the outcome: the consultant did
 * reach out in time.
 */
export async function recordAttempt({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }) {
  requirePermission(ctx, "leads:work");
  const p = AttemptInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const at = notFuture(ctx, p.data.at, "at");
  const attempt = await withTransaction(ctx, async (tx, ctx) => {
    const lead = await workableLead(tx, ctx, id);
    if (lead.status !== "open") throw new ConflictError("the lead is closed", [{ field: "id", message: `status is ${lead.status}` }]);
    const staffId = ctx.actor.kind === "staff" ? ctx.actor.staffId : lead.activeOwnerStaffId;
    const [row] = await tx
      .insert(leadContactAttempts)
      .values({ tenantId: ctx.tenantId, leadId: lead.id, contactId: lead.contactId, staffId, channel: p.data.channel, outcome: p.data.outcome, note: p.data.note ?? null, at })
      .returning();
    const first = !lead.firstContactedAt && lead.activeOwnerStaffId !== null;
    if (first) await tx.update(leads).set({ firstContactedAt: at, updatedAt: ctx.deps.now() }).where(eq(leads.id, lead.id));
    await audit(tx, ctx, { action: "lead.attempt", entityType: "lead", entityId: lead.id, after: { channel: p.data.channel, outcome: p.data.outcome, at: at.toISOString(), firstContact: first, withinSla: first && lead.firstContactDueAt ? at <= lead.firstContactDueAt : null } });
    return row!;
  });
  return { id: attempt.id, leadId: attempt.leadId, staffId: attempt.staffId, channel: attempt.channel, outcome: attempt.outcome, note: attempt.note, at: attempt.at.toISOString(), lead: await getLead({ ctx, id }) };
}

/**
 * Record a consultation's outcome: converted (amount and items) or lost (a reason from the lead
 * settings). It becomes a consultation_outcome event for the rules engine (stored with the lead's
 * close, in one transaction) and closes the lead; its open SOP tasks are cancelled. The contact
 * stays with its consultant (the consultant of record).
 */
export async function recordOutcome({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }): Promise<{ lead: LeadView; eventId: string }> {
  requirePermission(ctx, "leads:work");
  const p = OutcomeInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const o = p.data;
  const at = notFuture(ctx, o.occurredAt, "occurredAt");
  const eventId = await withTransaction(ctx, async (tx, ctx) => {
    const lead = await workableLead(tx, ctx, id);
    if (lead.status !== "open") throw new ConflictError("the lead is already closed", [{ field: "id", message: `status is ${lead.status}` }]);
    if (o.outcome === "lost") {
      const reasons = (await leadConfig(tx, ctx.tenantId, lead.clinicId)).outcomes.lostReasons;
      if (!reasons.includes(o.lostReason!)) throw new ValidationError([{ field: "lostReason", message: `must be one of ${reasons.join("、")}` }]);
    }
    const actor = ctx.actor.kind === "staff" ? ctx.actor.staffId : null;
    const data = {
      outcome: o.outcome,
      ...(o.amount !== undefined ? { amount: o.amount } : {}),
      ...(o.items?.length ? { items: o.items } : {}),
      ...(o.lostReason ? { lostReason: o.lostReason } : {}),
      mode: o.mode,
      leadId: lead.id,
      ...(actor ? { staffId: actor } : {}),
      ...(o.note ? { note: o.note } : {}),
    };
    // The event is stored by the system on the consultant's behalf (consultants may not post raw events).
    const ingested = await ingestEvents({
      ctx: { ...ctx, actor: { kind: "system", name: "workspace" } },
      source: "workspace",
      input: { events: [{ type: "consultation_outcome", contactId: lead.contactId, occurredAt: at.toISOString(), idempotencyKey: `lead-outcome-${lead.id}`, data }] },
    });
    await closeLead(tx, ctx, lead, o.outcome, o.outcome === "lost" ? o.lostReason! : "converted", at);
    await audit(tx, ctx, { action: "lead.outcome", entityType: "lead", entityId: lead.id, after: { ...data, eventId: ingested.ids[0] } });
    return ingested.ids[0]!;
  });
  return { lead: await getLead({ ctx, id }), eventId };
}

/** Close an open lead (converted or lost): no active owner any more, open tasks cancelled. */
export async function closeLead(tx: Tx, ctx: Ctx, lead: Pick<typeof leads.$inferSelect, "id" | "firstContactedAt">, status: "converted" | "lost", reason: string, at: Date): Promise<void> {
  await tx
    .update(leads)
    .set({ status, closedAt: at, closedReason: reason.slice(0, 200), activeOwnerStaffId: null, firstContactedAt: lead.firstContactedAt ?? at, updatedAt: ctx.deps.now() })
    .where(and(eq(leads.id, lead.id), eq(leads.status, "open")));
  await cancelOpenTasks(tx, ctx, lead.id, status === "converted" ? "线索已成交" : `线索已流失：${reason}`);
}

/**
 * Consultation outcomes that arrive as events (the API, an import, the HIS) close the contact's
 * open lead too, in the events worker's transaction (the contacts are locked there). The
 * workspace closes its lead itself, so its own event finds nothing open.
 */
export async function closeLeadsOnOutcomes(tx: Tx, ctx: Ctx, outcomes: { contactId: string; occurredAt: Date; data: Record<string, unknown> }[]): Promise<number> {
  let closed = 0;
  for (const e of outcomes) {
    const outcome = e.data.outcome === "converted" ? "converted" : e.data.outcome === "lost" ? "lost" : null;
    if (!outcome) continue;
    const [lead] = await tx
      .select({ id: leads.id, firstContactedAt: leads.firstContactedAt, createdAt: leads.createdAt })
      .from(leads)
      .where(and(eq(leads.tenantId, ctx.tenantId), eq(leads.contactId, e.contactId), eq(leads.status, "open")));
    // An outcome from before the lead opened belongs to an earlier episode.
    if (!lead || e.occurredAt < lead.createdAt) continue;
    const reason = outcome === "lost" && typeof e.data.lostReason === "string" ? e.data.lostReason : outcome;
    await closeLead(tx, ctx, lead, outcome, reason, e.occurredAt);
    await audit(tx, ctx, { action: "lead.outcome", entityType: "lead", entityId: lead.id, after: { outcome, reason, via: "event" } });
    closed++;
  }
  return closed;
}

export type LeadTimelineEntry =
  | TimelineEntry
  | { kind: "assignment"; at: string; assignment: string; fromStaffId: string | null; toStaffId: string | null; strategy: string | null; reason: string | null; actorStaffId: string | null }
  | { kind: "grade"; at: string; fromGrade: string | null; toGrade: string; score: number }
  | { kind: "attempt"; at: string; id: string; staffId: string | null; channel: string; outcome: string; note: string | null }
  | { kind: "task"; at: string; id: string; title: string; status: string; dueAt: string; staffId: string | null; skipReason: string | null; sentAt: string | null }
  | { kind: "sla_breach"; at: string; staffId: string; dueAt: string; action: string; toStaffId: string | null };

export const LeadTimelineInput = z.object({ limit: z.coerce.number().int().min(1).max(500).default(200) });

/**
 * Everything about one lead, newest first: the contact's events (messages, reads, visits,
 * consultations) and tag changes, and the lead's assignments, grades, contact attempts, SOP tasks
 * and SLA breaches. Consultants see only their own leads (others: 404).
 */
export async function leadTimeline({ ctx, id, input }: { ctx: Ctx; id: string; input?: unknown }): Promise<{ lead: LeadView; items: LeadTimelineEntry[] }> {
  const p = LeadTimelineInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const lead = await getLead({ ctx, id });
  const db = dbOf(ctx);
  const mine = and(eq(leadAssignments.tenantId, ctx.tenantId), eq(leadAssignments.leadId, lead.id));
  const [contact, moves, grades, attempts, tasks, breaches] = await Promise.all([
    // A consultant who owns the lead owns its contact; the contact's timeline checks that again.
    contactTimeline({ ctx, contactId: lead.contactId, input: { limit: p.data.limit } }),
    db.select().from(leadAssignments).where(mine).orderBy(desc(leadAssignments.at)).limit(p.data.limit),
    db.select().from(leadGradeChanges).where(and(eq(leadGradeChanges.tenantId, ctx.tenantId), eq(leadGradeChanges.leadId, lead.id))).orderBy(desc(leadGradeChanges.at)).limit(p.data.limit),
    db.select().from(leadContactAttempts).where(and(eq(leadContactAttempts.tenantId, ctx.tenantId), eq(leadContactAttempts.leadId, lead.id))).orderBy(desc(leadContactAttempts.at)).limit(p.data.limit),
    db.select().from(leadTasks).where(and(eq(leadTasks.tenantId, ctx.tenantId), eq(leadTasks.leadId, lead.id))).orderBy(desc(leadTasks.dueAt)).limit(p.data.limit),
    db.select().from(leadSlaBreaches).where(and(eq(leadSlaBreaches.tenantId, ctx.tenantId), eq(leadSlaBreaches.leadId, lead.id))).orderBy(desc(leadSlaBreaches.breachedAt)).limit(p.data.limit),
  ]);
  const items: LeadTimelineEntry[] = [
    ...contact.items,
    ...moves.map((m) => ({ kind: "assignment" as const, at: m.at.toISOString(), assignment: m.kind, fromStaffId: m.fromStaffId, toStaffId: m.toStaffId, strategy: m.strategy, reason: m.reason, actorStaffId: m.actorStaffId })),
    ...grades.map((g) => ({ kind: "grade" as const, at: g.at.toISOString(), fromGrade: g.fromGrade, toGrade: g.toGrade, score: g.score })),
    ...attempts.map((a) => ({ kind: "attempt" as const, at: a.at.toISOString(), id: a.id, staffId: a.staffId, channel: a.channel, outcome: a.outcome, note: a.note })),
    // A task sits on the timeline when it was done or skipped, else at its due time.
    ...tasks.map((t) => ({ kind: "task" as const, at: (t.completedAt ?? t.dueAt).toISOString(), id: t.id, title: t.title, status: t.status, dueAt: t.dueAt.toISOString(), staffId: t.staffId, skipReason: t.skipReason, sentAt: iso(t.sentAt) })),
    ...breaches.map((b) => ({ kind: "sla_breach" as const, at: b.breachedAt.toISOString(), staffId: b.staffId, dueAt: b.dueAt.toISOString(), action: b.action, toStaffId: b.toStaffId })),
  ];
  items.sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
  return { lead, items: items.slice(0, p.data.limit) };
}

export const WorkspaceInput = z.object({
  /** Managers and admins: whose workspace (default: their own book, which is usually empty). */
  staffId: z.uuid().optional(),
  grade: z.enum(["A", "B", "C", "D"]).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

export interface WorkspaceLead extends LeadView {
  /** Seconds until the first-contact deadline (negative: overdue); null once contacted or without one. */
  slaSecondsLeft: number | null;
  /** The next open SOP task's due time. */
  nextTaskDueAt: string | null;
}

/**
 * A consultant's day (我的工作台): open leads awaiting first contact first (closest deadline
 * first), then by grade and next task; counts by grade; today's and overdue tasks; today's
 * breaches; open post-visit follow-ups (回访) due today or overdue. Times of day are the tenant's.
 */
export async function workspace({ ctx, input }: { ctx: Ctx; input?: unknown }) {
  requirePermission(ctx, "leads:read");
  const p = WorkspaceInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const me = ctx.actor.kind === "staff" ? ctx.actor.staffId : null;
  const staffId = ctx.actor.kind === "staff" && ownsOnly(ctx.actor.role) ? me : (p.data.staffId ?? me);
  if (p.data.staffId && ctx.actor.kind === "staff" && ownsOnly(ctx.actor.role) && p.data.staffId !== me) throw new NotFoundError("staff");
  if (!staffId) throw new ValidationError([{ field: "staffId", message: "is required for a system caller" }]);
  const db = dbOf(ctx);
  const [who] = await db.select({ id: staff.id, name: staff.name, role: staff.role, capacity: staff.capacity }).from(staff).where(and(eq(staff.tenantId, ctx.tenantId), eq(staff.id, staffId)));
  if (!who) throw new NotFoundError("staff");
  const now = ctx.deps.now();
  const tz = await tenantTimeZone(db, ctx.tenantId);
  const dayStart = startOfLocalDay(now, tz);
  const dayEnd = new Date(dayStart.getTime() + 24 * 3600_000);
  const owned = and(eq(leads.tenantId, ctx.tenantId), eq(leads.activeOwnerStaffId, staffId), eq(leads.status, "open"));
  // The lead's next open task: ordered by, and shown.
  const nextTask = sql<Date | null>`(select min(t.due_at) from lead_tasks t where t.lead_id = ${leads.id} and t.status = 'open')`;
  const [byGrade, ordered, tasks, breaches, followUps] = await Promise.all([
    db.select({ grade: leads.grade, n: sql<number>`count(*)::int`, waiting: sql<number>`count(*) filter (where ${leads.firstContactedAt} is null)::int` }).from(leads).where(owned).groupBy(leads.grade),
    db
      .select({ id: leads.id, next: sql<string | null>`${nextTask}::text` })
      .from(leads)
      .where(and(owned, p.data.grade ? eq(leads.grade, p.data.grade) : undefined))
      .orderBy(sql`${leads.firstContactedAt} is null desc`, asc(leads.firstContactDueAt), asc(leads.grade), sql`${nextTask} asc nulls last`, desc(leads.lastSignalAt))
      .limit(p.data.limit),
    db
      .select({ id: leadTasks.id, leadId: leadTasks.leadId, contactId: leadTasks.contactId, contactName: contacts.name, title: leadTasks.title, dueAt: leadTasks.dueAt, postId: leadTasks.postId })
      .from(leadTasks)
      .innerJoin(contacts, eq(contacts.id, leadTasks.contactId))
      .where(and(eq(leadTasks.tenantId, ctx.tenantId), eq(leadTasks.staffId, staffId), eq(leadTasks.status, "open"), lt(leadTasks.dueAt, dayEnd)))
      .orderBy(asc(leadTasks.dueAt))
      .limit(200),
    db.select({ n: sql<number>`count(*)::int` }).from(leadSlaBreaches).where(and(eq(leadSlaBreaches.tenantId, ctx.tenantId), eq(leadSlaBreaches.staffId, staffId), gte(leadSlaBreaches.breachedAt, dayStart))),
    // Post-visit follow-ups (回访) of the consultant's contacts due today or overdue, with their survey links.
    openFollowUpsOf(db, ctx, staffId, dayEnd),
  ]);
  const ids = ordered.map((r) => r.id);
  const byId = new Map((await leadViews(ctx, ids)).map((v) => [v.id, v]));
  const next = new Map(ordered.map((r) => [r.id, r.next ? new Date(r.next).toISOString() : null]));
  const leadsOut: WorkspaceLead[] = ids.map((id) => {
    const v = byId.get(id)!;
    const left = v.firstContactDueAt && !v.firstContactedAt ? Math.round((new Date(v.firstContactDueAt).getTime() - now.getTime()) / 1000) : null;
    return { ...v, slaSecondsLeft: left, nextTaskDueAt: next.get(id) ?? null };
  });
  const grades = { A: 0, B: 0, C: 0, D: 0 } as Record<"A" | "B" | "C" | "D", number>;
  let open = 0;
  let awaitingFirstContact = 0;
  for (const g of byGrade) {
    grades[g.grade] = g.n;
    open += g.n;
    awaitingFirstContact += g.waiting;
  }
  const taskViews = tasks.map((t) => ({ id: t.id, leadId: t.leadId, contactId: t.contactId, contactName: t.contactName, title: t.title, dueAt: t.dueAt.toISOString(), overdue: t.dueAt < now, hasMessage: t.postId !== null }));
  return {
    staff: { id: who.id, name: who.name, capacity: who.capacity },
    day: { start: dayStart.toISOString(), timeZone: tz },
    counts: { open, byGrade: grades, awaitingFirstContact, slaOverdue: leadsOut.filter((l) => l.slaSecondsLeft !== null && l.slaSecondsLeft < 0).length, tasksToday: taskViews.filter((t) => new Date(t.dueAt) >= dayStart).length, tasksOverdue: taskViews.filter((t) => t.overdue).length, breachesToday: breaches[0]?.n ?? 0, followUpsToday: followUps.filter((f) => new Date(f.dueAt) >= dayStart).length, followUpsOverdue: followUps.filter((f) => f.overdue).length },
    leads: leadsOut,
    tasks: taskViews,
    followUps,
  };
}
