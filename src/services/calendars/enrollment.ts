import { and, eq, inArray, isNull, sql } from "drizzle-orm";
import { z } from "zod";
import type { Tx } from "../../db/client";
import { calendarEnrollments, calendars, contacts, sends } from "../../db/schema/index";
import { ownsOnly } from "../../domain/auth/permissions";
import { ConflictError, NotFoundError, ValidationError, zodIssues } from "../../errors";
import { loadVisibleContact } from "../contacts/internal";
import { afterCommit, audit, dbOf, requirePermission, withTransaction, type Ctx } from "../context";
import { planEnrollment } from "../delivery/plan-entry";

/**
 * Enrollment: a contact in a relative calendar (day N after enrolled_at). Sends for it are planned
 * by delivery from the active enrollments; ending an enrollment cancels its sends still planned.
 * One active enrollment per calendar and contact (partial unique index): enrolling again while
 * enrolled is a no-op that says so.
 */

export type EnrollOutcome = { enrolled: true; enrollmentId: string } | { enrolled: false; reason: "already" | "no_calendar" | "not_relative" | "archived" | "no_contact" };

/** Enroll in the caller's transaction (the events worker's, a rule action's, the API's). */
export async function enrollContact(
  tx: Tx,
  ctx: Ctx,
  input: { calendar: { id: string } | { key: string }; contactId: string; source: string; sourceRef?: string | null; at?: Date },
): Promise<EnrollOutcome> {
  const where = "id" in input.calendar ? eq(calendars.id, input.calendar.id) : eq(calendars.key, input.calendar.key);
  const [cal] = await tx.select({ id: calendars.id, kind: calendars.kind, status: calendars.status, key: calendars.key }).from(calendars).where(and(eq(calendars.tenantId, ctx.tenantId), where));
  if (!cal) return { enrolled: false, reason: "no_calendar" };
  if (cal.kind !== "relative") return { enrolled: false, reason: "not_relative" };
  if (cal.status === "archived") return { enrolled: false, reason: "archived" };
  const [c] = await tx.select({ id: contacts.id }).from(contacts).where(and(eq(contacts.tenantId, ctx.tenantId), eq(contacts.id, input.contactId), isNull(contacts.deletedAt)));
  if (!c) return { enrolled: false, reason: "no_contact" };
  const [row] = await tx
    .insert(calendarEnrollments)
    .values({ tenantId: ctx.tenantId, calendarId: cal.id, contactId: c.id, enrolledAt: input.at ?? ctx.deps.now(), source: input.source, sourceRef: input.sourceRef ?? null })
    .onConflictDoNothing()
    .returning({ id: calendarEnrollments.id });
  if (!row) return { enrolled: false, reason: "already" };
  // Its sends are planned once the enrollment commits (the delivery sweep plans any it missed).
  if (cal.status === "published") afterCommit(ctx, () => planEnrollment(ctx.deps, ctx.tenantId, row.id));
  await audit(tx, ctx, { action: "calendar.enroll", entityType: "contact", entityId: c.id, after: { calendarId: cal.id, calendar: cal.key, enrollmentId: row.id, source: input.source, sourceRef: input.sourceRef ?? null } });
  return { enrolled: true, enrollmentId: row.id };
}

/** End enrollments early (left the segment, converted, opted out, by hand): planned sends are cancelled. */
export async function endEnrollments(tx: Tx, ctx: Ctx, input: { enrollmentIds: string[]; reason: string }): Promise<number> {
  if (!input.enrollmentIds.length) return 0;
  const ended = await tx
    .update(calendarEnrollments)
    .set({ endedAt: ctx.deps.now(), endReason: input.reason.slice(0, 200) })
    .where(and(eq(calendarEnrollments.tenantId, ctx.tenantId), inArray(calendarEnrollments.id, input.enrollmentIds), isNull(calendarEnrollments.endedAt)))
    .returning({ id: calendarEnrollments.id, contactId: calendarEnrollments.contactId, calendarId: calendarEnrollments.calendarId });
  if (!ended.length) return 0;
  await tx
    .update(sends)
    .set({ status: "cancelled", reason: `enrollment ended: ${input.reason}`.slice(0, 300) })
    .where(and(eq(sends.tenantId, ctx.tenantId), inArray(sends.enrollmentId, ended.map((e) => e.id)), eq(sends.status, "planned")));
  // Quota reserved for the cancelled sends is given back by delivery's ledger (released on cancel).
  await audit(
    tx,
    ctx,
    ended.map((e) => ({ action: "calendar.unenroll", entityType: "contact", entityId: e.contactId, after: { calendarId: e.calendarId, enrollmentId: e.id, reason: input.reason } })),
  );
  return ended.length;
}

/** Active enrollments of a contact in calendars matching `where` (by calendar ids), for ending them. */
export async function activeEnrollments(tx: Tx, ctx: Ctx, contactId: string, calendarIds?: string[]): Promise<{ id: string; calendarId: string }[]> {
  return tx
    .select({ id: calendarEnrollments.id, calendarId: calendarEnrollments.calendarId })
    .from(calendarEnrollments)
    .where(and(eq(calendarEnrollments.tenantId, ctx.tenantId), eq(calendarEnrollments.contactId, contactId), isNull(calendarEnrollments.endedAt), calendarIds ? inArray(calendarEnrollments.calendarId, calendarIds) : undefined));
}

export const EnrollInput = z.object({ contactId: z.uuid(), note: z.string().trim().max(200).optional() }).strict();
export const UnenrollInput = z.object({ contactId: z.uuid(), reason: z.string().trim().min(1, "a reason is required").max(200) }).strict();

export interface EnrollmentView {
  id: string;
  calendarId: string;
  contactId: string;
  contactName: string | null;
  enrolledAt: string;
  source: string;
  sourceRef: string | null;
  endedAt: string | null;
  endReason: string | null;
}

async function visibleContact(tx: Tx, ctx: Ctx, contactId: string) {
  // Like every contact lookup: someone else's contact (or another tenant's) is simply not found.
  const c = await loadVisibleContact(tx, ctx, contactId);
  if (c.deletedAt) throw new NotFoundError("contact");
}

async function calendarOf(ctx: Ctx, id: string) {
  if (!z.uuid().safeParse(id).success) throw new NotFoundError("calendar");
  const [cal] = await dbOf(ctx).select({ id: calendars.id, key: calendars.key }).from(calendars).where(and(eq(calendars.tenantId, ctx.tenantId), eq(calendars.id, id)));
  if (!cal) throw new NotFoundError("calendar");
  return cal;
}

/** Enroll a contact by hand (e.g. a patient who asked for aftercare): 201, or 409 when already enrolled. */
export async function enrollByHand({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }): Promise<EnrollmentView> {
  requirePermission(ctx, "calendars:enroll");
  const p = EnrollInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const cal = await calendarOf(ctx, id);
  const r = await withTransaction(ctx, async (tx, ctx) => {
    await visibleContact(tx, ctx, p.data.contactId);
    return enrollContact(tx, ctx, { calendar: { id: cal.id }, contactId: p.data.contactId, source: "api", sourceRef: p.data.note ?? null });
  });
  if (!r.enrolled) {
    if (r.reason === "already") throw new ConflictError("the contact is already enrolled", [{ field: "contactId", message: "already enrolled in this calendar" }]);
    throw new ValidationError([{ field: "id", message: r.reason === "not_relative" ? "only relative calendars (day N after enrollment) take enrollments" : r.reason === "archived" ? "the calendar is archived" : "cannot enroll" }]);
  }
  const [v] = await listEnrollmentRows(ctx, cal.id, { id: r.enrollmentId });
  return v!;
}

/** End a contact's enrollment by hand, with a reason. */
export async function unenrollByHand({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }): Promise<{ ended: number }> {
  requirePermission(ctx, "calendars:enroll");
  const p = UnenrollInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const cal = await calendarOf(ctx, id);
  const ended = await withTransaction(ctx, async (tx, ctx) => {
    await visibleContact(tx, ctx, p.data.contactId);
    const active = await activeEnrollments(tx, ctx, p.data.contactId, [cal.id]);
    return endEnrollments(tx, ctx, { enrollmentIds: active.map((a) => a.id), reason: p.data.reason });
  });
  if (!ended) throw new NotFoundError("enrollment");
  return { ended };
}

export const ListEnrollmentsInput = z.object({ active: z.enum(["true", "false"]).optional(), limit: z.coerce.number().int().min(1).max(500).default(100) });

/** A calendar's enrollments, newest first (consultants: their own contacts only). */
export async function listEnrollments({ ctx, id, input }: { ctx: Ctx; id: string; input?: unknown }): Promise<{ items: EnrollmentView[] }> {
  requirePermission(ctx, "calendars:read");
  const p = ListEnrollmentsInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const cal = await calendarOf(ctx, id);
  return { items: await listEnrollmentRows(ctx, cal.id, { active: p.data.active === undefined ? undefined : p.data.active === "true", limit: p.data.limit }) };
}

async function listEnrollmentRows(ctx: Ctx, calendarId: string, o: { id?: string; active?: boolean | undefined; limit?: number }): Promise<EnrollmentView[]> {
  const rows = await dbOf(ctx)
    .select({ e: calendarEnrollments, name: contacts.name })
    .from(calendarEnrollments)
    .innerJoin(contacts, eq(contacts.id, calendarEnrollments.contactId))
    .where(
      and(
        eq(calendarEnrollments.tenantId, ctx.tenantId),
        eq(calendarEnrollments.calendarId, calendarId),
        o.id ? eq(calendarEnrollments.id, o.id) : undefined,
        o.active === undefined ? undefined : o.active ? isNull(calendarEnrollments.endedAt) : sql`${calendarEnrollments.endedAt} is not null`,
        ctx.actor.kind === "staff" && ownsOnly(ctx.actor.role) ? eq(contacts.ownerStaffId, ctx.actor.staffId) : undefined,
      ),
    )
    .orderBy(sql`${calendarEnrollments.enrolledAt} desc`)
    .limit(o.limit ?? 100);
  return rows.map(({ e, name }) => ({
    id: e.id,
    calendarId: e.calendarId,
    contactId: e.contactId,
    contactName: name,
    enrolledAt: e.enrolledAt.toISOString(),
    source: e.source,
    sourceRef: e.sourceRef,
    endedAt: e.endedAt ? e.endedAt.toISOString() : null,
    endReason: e.endReason,
  }));
}
