import { and, eq, sql } from "drizzle-orm";
import { z } from "zod";
import { rowsOf } from "../../db/client";
import { calendars } from "../../db/schema/index";
import { NotFoundError, ValidationError, zodIssues } from "../../errors";
import { analyticsStatement } from "../analytics/statement";
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
 * or a purchase by a recipient after the send, with no later send of the calendar before it), with the
 * touch attribution of calendarEntryCredit. Two statements side by side: this one reads the
 * calendar's sends once (sends_tenant_entry_idx) and groups them by entry, with the period's
 * conversion events (events_tenant_type_time_idx) hash-joined to the sends before them; a statement per
 * entry would read every send of the calendar once per entry, and a probe of the recipient's
 * events per send cost seconds at 300,000 sends.
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
  const T = ctx.tenantId;
  type Row = {
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
  };
  const q = sql`
      with s as materialized (
        select id, entry_id, post_id, contact_id, status, reason, sent_at from sends
        where tenant_id = ${T}::uuid and calendar_id = ${cal.id}::uuid and entry_id in (select id from calendar_entries where tenant_id = ${T}::uuid and calendar_id = ${cal.id}::uuid)
      ),
      sent as materialized (select entry_id, contact_id, sent_at from s where status = 'sent' and sent_at is not null),
      span as materialized (select min(sent_at) as first_at, max(sent_at) as last_at from sent),
      ev as (
        -- The conversion events (stored, processed or not) between the first send and the window after the last.
        select e.id, e.contact_id, e.occurred_at, coalesce((e.payload ->> 'amount')::numeric, 0) as amount
        from events e
        where e.tenant_id = ${T}::uuid and e.type in ('purchase', 'consultation_outcome') and (e.type = 'purchase' or e.payload ->> 'outcome' = 'converted')
          and e.occurred_at > (select first_at from span) and e.occurred_at <= (select last_at from span) + make_interval(days => ${days})
      ),
      conv as (
        -- Each conversion of a recipient goes to their latest send of this calendar before it, within the window.
        select distinct on (e.id) e.id, x.entry_id, x.contact_id, e.amount
        from ev e join sent x on x.contact_id = e.contact_id and e.occurred_at > x.sent_at and e.occurred_at <= x.sent_at + make_interval(days => ${days})
        order by e.id, x.sent_at desc
      ),
      st as (select entry_id, jsonb_object_agg(status, n) as by_status from (select entry_id, status, count(*)::int as n from s group by 1, 2) b group by entry_id),
      sk as (
        select entry_id, jsonb_agg(jsonb_build_object('reason', reason, 'n', n) order by n desc, reason) as skipped
        from (select entry_id, reason, n, row_number() over (partition by entry_id order by n desc, reason) as rk
          from (select entry_id, coalesce(reason, '?') as reason, count(*)::int as n from s where status in ('skipped', 'cancelled') group by 1, 2) r0) r
        where rk <= 10 group by entry_id
      ),
      cl as (
        -- The tenant's links (tracked_links_tenant_post_idx), hash-joined to the calendar's sends.
        select s.entry_id, (count(distinct l.contact_id) filter (where l.clicks > 0))::int as clicked, coalesce(sum(l.clicks), 0)::int as clicks
        from tracked_links l join s on s.id = l.send_id
        where l.tenant_id = ${T}::uuid
        group by s.entry_id
      ),
      cv as (select entry_id, count(distinct contact_id)::int as conversions, coalesce(sum(amount), 0) as revenue from conv group by entry_id)
      select ce.id as entry_id, ce.key, ce.post_id, ce.removed_at is not null as removed, st.by_status, sk.skipped,
        coalesce(cl.clicked, 0) as clicked, coalesce(cl.clicks, 0) as clicks, coalesce(cv.conversions, 0) as conversions, coalesce(cv.revenue, 0) as revenue
      from calendar_entries ce
      left join st on st.entry_id = ce.id left join sk on sk.entry_id = ce.id left join cl on cl.entry_id = ce.id left join cv on cv.entry_id = ce.id
      where ce.tenant_id = ${T}::uuid and ce.calendar_id = ${cal.id}::uuid
      order by ce.key`;
  const [rows, credit] = await Promise.all([
    analyticsStatement(ctx, async (tx) => rowsOf<Row>(await tx.execute(q))),
    analyticsStatement(ctx, (tx) => calendarEntryCredit(tx, ctx.tenantId, cal.id)),
  ]);
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
