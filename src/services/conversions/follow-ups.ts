import { and, asc, eq, gt, gte, inArray, lt, or, sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import type { DbOrTx, Tx } from "../../db/client";
import { clinics, contacts, events, FOLLOW_UP_STATUSES, followUps, surveys } from "../../db/schema/index";
import { followUpDueAt, followUpWanted } from "../../domain/analytics/follow-ups";
import { ownsOnly } from "../../domain/auth/permissions";
import { localDayBounds } from "../../domain/leads/sop";
import { ConflictError, NotFoundError, ValidationError, zodIssues } from "../../errors";
import { loadAnalyticsSettings } from "../analytics/settings";
import { actorStaffId, audit, dbOf, requirePermission, withTransaction, type Ctx } from "../context";
import { tenantTimeZone } from "../leads/internal";
import { cursorText, decodeCursor, encodeCursor, type Page } from "../pagination";
import { newSurveyToken, surveyView, type SurveyView } from "./surveys";

/**
 * Post-visit follow-ups (回访): every visit gets one, for the contact's consultant, due
 * `followUps.afterVisitDays` local days later at 10:00 (analytics settings), with a satisfaction
 * survey link when `followUps.surveyAfterVisit`. An open follow-up belongs to the contact's
 * consultant of record (it follows the contact when the owner changes); `staffId` keeps whom it
 * was planned for.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface VisitEvent {
  id: string;
  contactId: string;
  type: string;
  occurredAt: Date;
  payload: Record<string, unknown>;
}

/**
 * Plan the follow-ups (and surveys) of the visits in a batch being applied, in its transaction.
 * Idempotent: one follow-up and one survey per visit (unique indexes), so a batch applied twice
 * plans nothing more. Visits so old that their follow-up would be over a week overdue get none.
 */
export async function planFollowUps(tx: Tx, ctx: Ctx, batch: readonly VisitEvent[]): Promise<number> {
  const visits = batch.filter((e) => e.type === "visit");
  if (!visits.length) return 0;
  const settings = (await loadAnalyticsSettings(tx, ctx.tenantId)).followUps;
  const tz = await tenantTimeZone(tx, ctx.tenantId);
  const now = ctx.deps.now();
  const due = visits.map((e) => ({ e, dueAt: followUpDueAt(e.occurredAt, settings.afterVisitDays, tz) })).filter((x) => followUpWanted(x.dueAt, now));
  if (!due.length) return 0;
  const people = await tx
    .select({ id: contacts.id, ownerStaffId: contacts.ownerStaffId, clinicId: contacts.clinicId })
    .from(contacts)
    .where(and(eq(contacts.tenantId, ctx.tenantId), inArray(contacts.id, [...new Set(due.map((x) => x.e.contactId))])));
  const contactOf = new Map(people.map((c) => [c.id, c]));
  // The visit's clinic when the event names one of the tenant's, else the contact's.
  const named = [...new Set(due.flatMap((x) => (typeof x.e.payload.clinicId === "string" && UUID.test(x.e.payload.clinicId) ? [x.e.payload.clinicId] : [])))];
  const known = new Set(named.length ? (await tx.select({ id: clinics.id }).from(clinics).where(and(eq(clinics.tenantId, ctx.tenantId), inArray(clinics.id, named)))).map((r) => r.id) : []);
  const plans = due.flatMap(({ e, dueAt }) => {
    const c = contactOf.get(e.contactId);
    if (!c) return [];
    const clinicId = typeof e.payload.clinicId === "string" && known.has(e.payload.clinicId) ? e.payload.clinicId : c.clinicId;
    return [{ visitEventId: e.id, contactId: c.id, staffId: c.ownerStaffId, clinicId, dueAt }];
  });
  if (!plans.length) return 0;
  const surveyOf = new Map<string, string>();
  if (settings.surveyAfterVisit) {
    await tx
      .insert(surveys)
      .values(plans.map((p) => ({ tenantId: ctx.tenantId, contactId: p.contactId, staffId: p.staffId, clinicId: p.clinicId, visitEventId: p.visitEventId, token: newSurveyToken() })))
      .onConflictDoNothing();
    const rows = await tx
      .select({ id: surveys.id, visitEventId: surveys.visitEventId })
      .from(surveys)
      .where(and(eq(surveys.tenantId, ctx.tenantId), inArray(surveys.visitEventId, plans.map((p) => p.visitEventId))));
    for (const r of rows) if (r.visitEventId) surveyOf.set(r.visitEventId, r.id);
  }
  const made = await tx
    .insert(followUps)
    .values(plans.map((p) => ({ tenantId: ctx.tenantId, contactId: p.contactId, staffId: p.staffId, clinicId: p.clinicId, visitEventId: p.visitEventId, kind: "post_visit", dueAt: p.dueAt, surveyId: surveyOf.get(p.visitEventId) ?? null })))
    .onConflictDoNothing()
    .returning({ id: followUps.id });
  return made.length;
}

export interface FollowUpView {
  id: string;
  contactId: string;
  contactName: string | null;
  /** The contact's consultant now: whose follow-up it is while open. */
  ownerStaffId: string | null;
  /** The consultant it was planned for. */
  staffId: string | null;
  clinicId: string | null;
  visitEventId: string;
  visitAt: string | null;
  dueAt: string;
  overdue: boolean;
  status: (typeof FOLLOW_UP_STATUSES)[number];
  completedAt: string | null;
  completedByStaffId: string | null;
  note: string | null;
  /** The satisfaction survey to send the patient (its link), and the answer once given. */
  survey: SurveyView | null;
  createdAt: string;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** Consultants see the follow-ups of the contacts they own; everyone else the tenant's. */
function visibility(ctx: Ctx): SQL | undefined {
  if (ctx.actor.kind === "staff" && ownsOnly(ctx.actor.role)) return eq(contacts.ownerStaffId, ctx.actor.staffId);
  return undefined;
}

async function loadViews(db: DbOrTx, ctx: Ctx, where: SQL, limit: number): Promise<(FollowUpView & { cursorAt: string })[]> {
  const now = ctx.deps.now();
  const rows = await db
    .select({ f: followUps, contactName: contacts.name, ownerStaffId: contacts.ownerStaffId, visitAt: events.occurredAt, survey: surveys, cursorAt: cursorText(followUps.dueAt) })
    .from(followUps)
    .innerJoin(contacts, and(eq(contacts.tenantId, followUps.tenantId), eq(contacts.id, followUps.contactId)))
    .leftJoin(events, and(eq(events.tenantId, followUps.tenantId), eq(events.id, followUps.visitEventId)))
    .leftJoin(surveys, and(eq(surveys.tenantId, followUps.tenantId), eq(surveys.id, followUps.surveyId)))
    .where(and(eq(followUps.tenantId, ctx.tenantId), where))
    .orderBy(asc(followUps.dueAt), asc(followUps.id))
    .limit(limit);
  return rows.map((r) => ({
    id: r.f.id,
    contactId: r.f.contactId,
    contactName: r.contactName,
    ownerStaffId: r.ownerStaffId,
    staffId: r.f.staffId,
    clinicId: r.f.clinicId,
    visitEventId: r.f.visitEventId,
    visitAt: iso(r.visitAt),
    dueAt: r.f.dueAt.toISOString(),
    overdue: r.f.status === "open" && r.f.dueAt < now,
    status: r.f.status,
    completedAt: iso(r.f.completedAt),
    completedByStaffId: r.f.completedByStaffId,
    note: r.f.note,
    survey: r.survey ? surveyView(ctx.deps.config.publicUrl, r.survey) : null,
    createdAt: r.f.createdAt.toISOString(),
    cursorAt: r.cursorAt,
  }));
}

const strip = ({ cursorAt: _c, ...v }: FollowUpView & { cursorAt: string }): FollowUpView => v;

const flag = z.union([z.boolean(), z.enum(["true", "false"]).transform((v) => v === "true")]);

export const ListFollowUpsInput = z.object({
  /** Only the caller's (the contacts they own). Default: true for consultants, false for everyone else. */
  mine: flag.optional(),
  /** Managers and admins: one consultant's (the contacts they own now). */
  staffId: z.uuid().optional(),
  contactId: z.uuid().optional(),
  status: z.enum(FOLLOW_UP_STATUSES).optional(),
  /**
   * today: due within today (tenant time zone), any status unless `status` says; overdue: open and
   * past due; upcoming: open and not yet due; by_today: open and due by the end of today (today's
   * and overdue ones: what is there to do now).
   */
  due: z.enum(["today", "overdue", "upcoming", "by_today"]).optional(),
  cursor: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});
export type ListFollowUpsInput = z.infer<typeof ListFollowUpsInput>;

/** Follow-ups, soonest due first, cursor-paginated. Consultants: only those of contacts they own. */
export async function listFollowUps({ ctx, input }: { ctx: Ctx; input?: unknown }): Promise<Page<FollowUpView>> {
  requirePermission(ctx, "followups:work");
  const p = ListFollowUpsInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const q = p.data;
  const me = actorStaffId(ctx);
  const consultant = ctx.actor.kind === "staff" && ownsOnly(ctx.actor.role);
  const now = ctx.deps.now();
  const conds: (SQL | undefined)[] = [visibility(ctx)];
  if (q.mine ?? consultant) conds.push(me ? eq(contacts.ownerStaffId, me) : sql`false`);
  if (q.staffId) conds.push(eq(contacts.ownerStaffId, q.staffId));
  if (q.contactId) conds.push(eq(followUps.contactId, q.contactId));
  if (q.status) conds.push(eq(followUps.status, q.status));
  if (q.due === "today") {
    const { start, end } = localDayBounds(now, await tenantTimeZone(dbOf(ctx), ctx.tenantId));
    conds.push(gte(followUps.dueAt, start), lt(followUps.dueAt, end));
  } else if (q.due === "by_today") {
    const { end } = localDayBounds(now, await tenantTimeZone(dbOf(ctx), ctx.tenantId));
    conds.push(eq(followUps.status, "open"), lt(followUps.dueAt, end));
  } else if (q.due === "overdue") conds.push(eq(followUps.status, "open"), lt(followUps.dueAt, now));
  else if (q.due === "upcoming") conds.push(eq(followUps.status, "open"), gte(followUps.dueAt, now));
  const cur = decodeCursor(q.cursor);
  if (cur) conds.push(or(gt(cursorText(followUps.dueAt), cur.at), and(eq(cursorText(followUps.dueAt), cur.at), gt(followUps.id, cur.id))));
  const rows = await loadViews(dbOf(ctx), ctx, and(sql`true`, ...conds)!, q.limit + 1);
  const page = rows.slice(0, q.limit);
  const last = page[page.length - 1];
  return { items: page.map(strip), nextCursor: rows.length > q.limit && last ? encodeCursor(last.cursorAt, last.id) : null };
}

/** One follow-up the caller may see (consultants: of contacts they own; anything else 404). */
export async function getFollowUp({ ctx, id }: { ctx: Ctx; id: string }): Promise<FollowUpView> {
  requirePermission(ctx, "followups:work");
  if (!UUID.test(id)) throw new NotFoundError("follow-up");
  const [v] = await loadViews(dbOf(ctx), ctx, and(eq(followUps.id, id), visibility(ctx))!, 1);
  if (!v) throw new NotFoundError("follow-up");
  return strip(v);
}

type FollowUpRow = typeof followUps.$inferSelect;

async function lockFollowUp(tx: Tx, ctx: Ctx, id: string): Promise<FollowUpRow> {
  if (!UUID.test(id)) throw new NotFoundError("follow-up");
  const [row] = await tx
    .select({ f: followUps })
    .from(followUps)
    .innerJoin(contacts, and(eq(contacts.tenantId, followUps.tenantId), eq(contacts.id, followUps.contactId)))
    .where(and(eq(followUps.tenantId, ctx.tenantId), eq(followUps.id, id), visibility(ctx)))
    .for("update", { of: followUps });
  if (!row) throw new NotFoundError("follow-up");
  return row.f;
}

const notOpen = (f: FollowUpRow) => new ConflictError(`the follow-up is ${f.status}`, [{ field: "id", message: `status is ${f.status}, not open` }]);

export const CompleteFollowUpInput = z
  .object({
    /** What the patient said (恢复情况、满意度、复诊意向). */
    note: z.string().trim().max(2000).optional(),
    /** The survey link was sent to the patient during this follow-up (marks the survey sent). */
    surveySent: z.boolean().optional(),
  })
  .strict();
export type CompleteFollowUpInput = z.infer<typeof CompleteFollowUpInput>;

/** Mark an open follow-up done, with what the patient said. */
export async function completeFollowUp({ ctx, id, input }: { ctx: Ctx; id: string; input?: unknown }): Promise<FollowUpView> {
  requirePermission(ctx, "followups:work");
  const p = CompleteFollowUpInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  await withTransaction(ctx, async (tx, ctx) => {
    const f = await lockFollowUp(tx, ctx, id);
    if (f.status !== "open") throw notOpen(f);
    const now = ctx.deps.now();
    await tx.update(followUps).set({ status: "done", completedAt: now, completedByStaffId: actorStaffId(ctx), note: p.data.note || null }).where(eq(followUps.id, f.id));
    if (p.data.surveySent && f.surveyId) {
      await tx.update(surveys).set({ sentAt: now }).where(and(eq(surveys.tenantId, ctx.tenantId), eq(surveys.id, f.surveyId), sql`${surveys.sentAt} is null`));
    }
    await audit(tx, ctx, { action: "followup.done", entityType: "follow_up", entityId: f.id, after: { contactId: f.contactId, dueAt: f.dueAt.toISOString(), late: now > f.dueAt, surveySent: p.data.surveySent ?? false } });
  });
  return getFollowUp({ ctx, id });
}

export const SkipFollowUpInput = z
  .object({
    reason: z.string({ error: "a reason is required" }).trim().min(1, "a reason is required").max(500),
  })
  .strict();
export type SkipFollowUpInput = z.infer<typeof SkipFollowUpInput>;

/** Skip an open follow-up, saying why (联系不上, 客户不希望被打扰, ...). */
export async function skipFollowUp({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }): Promise<FollowUpView> {
  requirePermission(ctx, "followups:work");
  const p = SkipFollowUpInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  await withTransaction(ctx, async (tx, ctx) => {
    const f = await lockFollowUp(tx, ctx, id);
    if (f.status !== "open") throw notOpen(f);
    const now = ctx.deps.now();
    await tx.update(followUps).set({ status: "skipped", completedAt: now, completedByStaffId: actorStaffId(ctx), note: p.data.reason }).where(eq(followUps.id, f.id));
    await audit(tx, ctx, { action: "followup.skip", entityType: "follow_up", entityId: f.id, after: { contactId: f.contactId, reason: p.data.reason } });
  });
  return getFollowUp({ ctx, id });
}

/** A consultant's open follow-ups due by `before` (today's and overdue), soonest first: for the workspace. */
export async function openFollowUpsOf(db: DbOrTx, ctx: Ctx, staffId: string, before: Date, limit = 200): Promise<FollowUpView[]> {
  const rows = await loadViews(db, ctx, and(eq(contacts.ownerStaffId, staffId), eq(followUps.status, "open"), lt(followUps.dueAt, before))!, limit);
  return rows.map(strip);
}
