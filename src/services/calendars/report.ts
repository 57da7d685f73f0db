import { and, eq, sql } from "drizzle-orm";
import { z } from "zod";
import { rowsOf } from "../../db/client";
import { calendars } from "../../db/schema/index";
import { NotFoundError, ValidationError, zodIssues } from "../../errors";
import { calendarEntryCredit } from "../attribution/attribute";
import { dbOf, requirePermission, type Ctx } from "../context";

export const CalendarReportInput = z.object({
  /** A conversion counts for a send when it happens within this many days after the send. */
  attributionDays: z.coerce.number().int().min(1).max(90).default(7),
});

export interface EntryReport {
  entryId: string;
  key: string;
  postId: string | null;
  removed: boolean;
  /** Every send planned for the entry (any status). */
  planned: number;
  byStatus: Record<string, number>;
  /** Why recipients were skipped, most common first. */
  skipped: { reason: string; n: number }[];
  sent: number;
  /** failed + over_quota + not_friend. */
  failed: number;
  /** Recipients who clicked a tracked link of the entry, and all clicks. */
  clickedRecipients: number;
  clicks: number;
  /** Recipients with a converted consultation or a purchase within the window after their send (last touch: the latest send before it). */
  conversions: number;
  revenue: number;
  /**
   * Content attribution (docs/attribution-alerts.md), over the tenant's attribution window: conversions
   * of contacts who clicked the entry's links, credited over all their touches (clicks, reads,
   * livestreams) by last touch and linearly (fractions), and the revenue credited by last touch
   * (attributedRevenue) and linearly.
   */
  lastTouchConversions: number;
  linearConversions: number;
  attributedRevenue: number;
  linearRevenue: number;
}

/**
 * Per entry of a calendar: recipients planned, sent, failed (and why), clicked, and conversions
 * attributed to the send by last touch within `attributionDays` (a converted consultation_outcome
 * or a purchase by a recipient after the send, with no later send of the calendar before it).
 * One SQL statement over the calendar's sends, indexed by (tenant, entry, status).
 */
export async function calendarReport({ ctx, id, input }: { ctx: Ctx; id: string; input?: unknown }): Promise<{ calendarId: string; attributionDays: number; touchWindowDays: number; entries: EntryReport[] }> {
  requirePermission(ctx, "calendars:read");
  const p = CalendarReportInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  if (!z.uuid().safeParse(id).success) throw new NotFoundError("calendar");
  const db = dbOf(ctx);
  const [cal] = await db.select({ id: calendars.id }).from(calendars).where(and(eq(calendars.tenantId, ctx.tenantId), eq(calendars.id, id)));
  if (!cal) throw new NotFoundError("calendar");
  const days = p.data.attributionDays;
  const rows = rowsOf<{
    entry_id: string;
    key: string;
    post_id: string | null;
    removed: boolean;
    by_status: Record<string, number> | null;
    skipped: { reason: string; n: number }[] | null;
    clicked: number;
    clicks: number;
    conversions: number;
    revenue: number | string;
  }>(
    await db.execute(sql`
      with s as (
        select * from sends where tenant_id = ${ctx.tenantId}::uuid and calendar_id = ${cal.id}::uuid
      ),
      conv as (
        -- Each conversion of a recipient goes to their latest send of this calendar before it, within the window.
        select distinct on (e.id) e.id as event_id, x.entry_id, x.contact_id,
          coalesce((e.payload ->> 'amount')::numeric, 0) as amount
        from s x
        join events e on e.tenant_id = x.tenant_id and e.contact_id = x.contact_id
          and e.occurred_at > x.sent_at and e.occurred_at <= x.sent_at + make_interval(days => ${days})
          and (e.type = 'purchase' or (e.type = 'consultation_outcome' and e.payload ->> 'outcome' = 'converted'))
        where x.status = 'sent' and x.sent_at is not null
        order by e.id, x.sent_at desc
      )
      select ce.id as entry_id, ce.key, ce.post_id, ce.removed_at is not null as removed,
        (select jsonb_object_agg(status, n) from (select status, count(*)::int as n from s where s.entry_id = ce.id group by status) b) as by_status,
        (select jsonb_agg(jsonb_build_object('reason', reason, 'n', n) order by n desc) from (select coalesce(reason, '?') as reason, count(*)::int as n from s where s.entry_id = ce.id and s.status in ('skipped', 'cancelled') group by 1 order by 2 desc limit 10) r) as skipped,
        (select count(distinct l.contact_id)::int from tracked_links l join s on s.id = l.send_id where s.entry_id = ce.id and l.clicks > 0) as clicked,
        (select coalesce(sum(l.clicks), 0)::int from tracked_links l join s on s.id = l.send_id where s.entry_id = ce.id) as clicks,
        (select count(distinct c.contact_id)::int from conv c where c.entry_id = ce.id) as conversions,
        (select coalesce(sum(c.amount), 0) from conv c where c.entry_id = ce.id) as revenue
      from calendar_entries ce
      where ce.tenant_id = ${ctx.tenantId}::uuid and ce.calendar_id = ${cal.id}::uuid
      order by ce.key`),
  );
  const credit = await calendarEntryCredit(db, ctx.tenantId, cal.id);
  return {
    calendarId: cal.id,
    attributionDays: days,
    touchWindowDays: credit.windowDays,
    entries: rows.map((r) => {
      const c = credit.entries.get(r.entry_id);
      const by = r.by_status ?? {};
      const n = (k: string) => by[k] ?? 0;
      return {
        entryId: r.entry_id,
        key: r.key,
        postId: r.post_id,
        removed: r.removed,
        planned: Object.values(by).reduce((a, b) => a + b, 0),
        byStatus: by,
        skipped: r.skipped ?? [],
        sent: n("sent"),
        failed: n("failed") + n("over_quota") + n("not_friend"),
        clickedRecipients: r.clicked,
        clicks: r.clicks,
        conversions: r.conversions,
        revenue: Number(r.revenue),
        lastTouchConversions: c?.lastTouchConversions ?? 0,
        linearConversions: c?.linearConversions ?? 0,
        attributedRevenue: c?.lastTouchRevenue ?? 0,
        linearRevenue: c?.linearRevenue ?? 0,
      };
    }),
  };
}
