import { and, asc, eq, inArray, sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import { calendarEntries, calendars, contacts, SEND_STATUSES, sends, staff } from "../../db/schema/index";
import { NotFoundError, ValidationError, zodIssues } from "../../errors";
import { audit, dbOf, requirePermission, withTransaction, type Ctx } from "../context";
import { cursorText, decodeCursor, encodeCursor, type Page } from "../pagination";
import { endSends } from "./quota";
import { deliverySettings } from "./settings";

export const ListSendsInput = z.object({
  calendarId: z.uuid().optional(),
  entryId: z.uuid().optional(),
  contactId: z.uuid().optional(),
  /** One status, or several comma-separated (planned,queued). */
  status: z
    .string()
    .regex(new RegExp(`^(${SEND_STATUSES.join("|")})(,(${SEND_STATUSES.join("|")}))*$`), `one or more of ${SEND_STATUSES.join(", ")}, comma-separated`)
    .optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z.string().optional(),
});

export const SendView = z.object({
  id: z.string(),
  postId: z.string(),
  calendarId: z.string().nullable(),
  entryId: z.string().nullable(),
  entryKey: z.string().nullable(),
  enrollmentId: z.string().nullable(),
  contactId: z.string().nullable(),
  contactName: z.string().nullable(),
  chatId: z.string().nullable(),
  senderStaffId: z.string().nullable(),
  senderName: z.string().nullable(),
  scheduledAt: z.string(),
  status: z.enum(SEND_STATUSES),
  /** Why it was skipped, cancelled or failed, in words a marketer reads. */
  reason: z.string().nullable(),
  /** A service message the patient asked for (outside the marketing quota and opt-out). */
  service: z.boolean(),
  wecomMsgid: z.string().nullable(),
  attempts: z.number(),
  lastError: z.string().nullable(),
  sentAt: z.string().nullable(),
  resultAt: z.string().nullable(),
});
export type SendView = z.infer<typeof SendView>;

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** Sends of a calendar, an entry or a contact (at least one), soonest first, with cursor paging. */
export async function listSends({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<Page<SendView>> {
  requirePermission(ctx, "calendars:read");
  const p = ListSendsInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const q = p.data;
  if (!q.calendarId && !q.entryId && !q.contactId) throw new ValidationError([{ field: "calendarId", message: "give calendarId, entryId or contactId" }]);
  const after = decodeCursor(q.cursor);
  const conds: SQL[] = [eq(sends.tenantId, ctx.tenantId)];
  if (q.calendarId) conds.push(eq(sends.calendarId, q.calendarId));
  if (q.entryId) conds.push(eq(sends.entryId, q.entryId));
  if (q.contactId) conds.push(eq(sends.contactId, q.contactId));
  if (q.status) conds.push(inArray(sends.status, q.status.split(",") as (typeof SEND_STATUSES)[number][]));
  if (after) conds.push(sql`(${sends.scheduledAt}, ${sends.id}) > (${after.at}::timestamptz, ${after.id}::uuid)`);
  const rows = await dbOf(ctx)
    .select({ s: sends, contactName: contacts.name, senderName: staff.name, entryKey: calendarEntries.key, at: cursorText(sends.scheduledAt) })
    .from(sends)
    .leftJoin(contacts, eq(contacts.id, sends.contactId))
    .leftJoin(staff, eq(staff.id, sends.senderStaffId))
    .leftJoin(calendarEntries, eq(calendarEntries.id, sends.entryId))
    .where(and(...conds))
    .orderBy(asc(sends.scheduledAt), asc(sends.id))
    .limit(q.limit + 1);
  const more = rows.length > q.limit;
  const page = rows.slice(0, q.limit);
  const last = page[page.length - 1];
  return {
    items: page.map(({ s, contactName, senderName, entryKey }) => ({
      id: s.id,
      postId: s.postId,
      calendarId: s.calendarId,
      entryId: s.entryId,
      entryKey,
      enrollmentId: s.enrollmentId,
      contactId: s.contactId,
      contactName,
      chatId: s.chatId,
      senderStaffId: s.senderStaffId,
      senderName,
      scheduledAt: s.scheduledAt.toISOString(),
      status: s.status,
      reason: s.reason,
      service: s.service,
      wecomMsgid: s.wecomMsgid,
      attempts: s.attempts,
      lastError: s.lastError,
      sentAt: iso(s.sentAt),
      resultAt: iso(s.resultAt),
    })),
    nextCursor: more && last ? encodeCursor(last.at, last.s.id) : null,
  };
}

export const CancelSendsInput = z.object({
  /** Only this entry of the calendar. */
  entryId: z.uuid().optional(),
  reason: z.string().trim().min(1, "say why").max(200),
});

/**
 * Cancel a calendar's sends not yet handed to WeCom (planned, or claimed by a run that has not
 * called WeCom: its guarded update then finds nothing); their ledger reservations are given back.
 * Messages already created in WeCom are left to their senders (they may have sent them).
 */
export async function cancelSends({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }): Promise<{ cancelled: number }> {
  requirePermission(ctx, "calendars:write");
  const p = CancelSendsInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  if (!z.uuid().safeParse(id).success) throw new NotFoundError("calendar");
  const [cal] = await dbOf(ctx).select({ id: calendars.id }).from(calendars).where(and(eq(calendars.tenantId, ctx.tenantId), eq(calendars.id, id)));
  if (!cal) throw new NotFoundError("calendar");
  const settings = await deliverySettings(dbOf(ctx), ctx.deps, ctx.tenantId);
  return withTransaction(ctx, async (tx, ctx) => {
    if (p.data.entryId) {
      const [e] = await tx.select({ id: calendarEntries.id }).from(calendarEntries).where(and(eq(calendarEntries.tenantId, ctx.tenantId), eq(calendarEntries.calendarId, id), eq(calendarEntries.id, p.data.entryId)));
      if (!e) throw new ValidationError([{ field: "entryId", message: "is not an entry of this calendar" }]);
    }
    const moved = await endSends(tx, {
      tenantId: ctx.tenantId,
      ledgerTz: settings.timeZone,
      now: ctx.deps.now(),
      from: ["planned", "queued"],
      to: "cancelled",
      where: sql`s.calendar_id = ${id}::uuid ${p.data.entryId ? sql`and s.entry_id = ${p.data.entryId}::uuid` : sql``}`,
      reason: `cancelled: ${p.data.reason}`,
    });
    await audit(tx, ctx, { action: "delivery.cancel", entityType: "calendar", entityId: id, after: { entryId: p.data.entryId ?? null, cancelled: moved.length, reason: p.data.reason } });
    return { cancelled: moved.length };
  });
}
