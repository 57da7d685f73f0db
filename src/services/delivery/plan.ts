import { sql, type SQL } from "drizzle-orm";
import { rowsOf, type Tx } from "../../db/client";
import { addDays, hhmm, ledgerDay, localParts, minutesOfDay, occurrence, outOfQuiet, relativeOffset, zonedInstant } from "../../domain/delivery/schedule";
import { ValidationError } from "../../errors";
import { compileChecked } from "../segments/segments";
import type { Ctx } from "../context";
import type { DeliverySettings } from "./settings";
import type { PlanSpec } from "./spec";

/**
 * Fan-out of one calendar entry to its recipients, set-based: the candidates go into a temporary
 * table with one INSERT … SELECT over the audience (a segment compiled to SQL, the active
 * enrollments of a relative calendar, or group chats), each with its sender, scheduled time and,
 * for those who will not get it, the reason; then the quota ledger is reserved with one upsert and
 * the sends are written with one INSERT … SELECT. planEntry / previewCalendar (plan-entry.ts,
 * preview.ts) run it inside their transactions; the preview rolls everything back.
 *
 * Rules (docs/calendars.md, "Scheduling and delivery"):
 * - times are local to the calendar's time zone and moved out of its quiet hours to their end;
 * - a time already past is sent at once (the next allowed minute) up to LATE_GRACE_MS late, and
 *   skipped beyond that ("its time passed");
 * - skipped, with the reason, rather than dropped: a contact who removed the consultant, one
 *   without a WeCom external userid, one opted out of marketing (marketing entries only), one the
 *   entry's `skipIf` matches, one without a sender, and one over a cap;
 * - caps (per contact and local day of the tenant, send_quota): WeCom's per-customer mass-message
 *   cap (`mass`, every 1:1 send) and the fatigue cap (`marketing`: at most N marketing sends in any
 *   W consecutive days, across calendars; service entries do not count). Over a cap is skipped,
 *   not moved: an entry's day is part of what it says (a livestream invite, day 3 of aftercare).
 *   Group chats count against WeCom's cap per chat and day, from their sends.
 * - one send per (post, recipient, occurrence): candidates that already have one are left out, so planning
 *   twice is a no-op (and the unique indexes hold if anything raced past that).
 * Every planner of a tenant takes the tenant's planning lock, so the fatigue cap's window (rows of
 * several days) is read and reserved by one planner at a time; the mass cap's upsert is atomic on
 * its own (ON CONFLICT … DO UPDATE … WHERE mass < cap).
 */

/** A time already past is still sent (at once) when it is at most this late; later, it is skipped. */
export const LATE_GRACE_MS = 6 * 3_600_000;
/** Birthday entries are planned this many days ahead (the minute sweep adds the next ones). */
export const BIRTHDAY_HORIZON_DAYS = 14;

export interface PlanStats {
  /** Candidates looked at (new ones only: recipients that already have a send for the post are left out). */
  candidates: number;
  planned: number;
  skipped: number;
  /** Skips by reason, most common first. */
  reasons: { reason: string; n: number }[];
  /** Planned sends moved out of quiet hours, or sent late (their time had passed). */
  movedQuiet: number;
  late: number;
  /** The scheduled times of planned sends: first and last. */
  firstAt: string | null;
  lastAt: string | null;
  /** Recipients that already had a send for this post (planning again adds nothing for them). */
  already: number;
}

export interface PlanRow {
  contactId: string | null;
  chatId: string | null;
  enrollmentId: string | null;
  senderStaffId: string | null;
  scheduledAt: Date;
  status: "planned" | "skipped";
  reason: string | null;
  moved: string | null;
}

const iso = (d: Date) => sql`${d.toISOString()}::timestamptz`;
const q = (s: string) => sql`${s}::text`;

/** The tenant's planning lock (every planner takes it first, for the whole transaction). */
export async function lockPlanning(tx: Tx, tenantId: string): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`siyu-delivery-plan-${tenantId}`}::text))`);
}

async function segmentCondition(ctx: Ctx, expression: string, field: string): Promise<SQL> {
  try {
    return (await compileChecked(ctx, expression)).where;
  } catch (err) {
    if (err instanceof ValidationError) throw new ValidationError(err.issues.map((i) => ({ field, message: i.message })));
    throw err;
  }
}

/** The candidates' scheduled time as SQL over `c` (contacts) and `en` (enrollments), and what moved it. */
interface Timing {
  /** The scheduled time before the late rule (a constant, or per enrollment / birthday). */
  at: SQL;
  /** Candidates with nothing to send (e.g. no birthday within the horizon) are left out. */
  where: SQL | null;
  movedQuiet: boolean;
  /** Skipped as past for a recurring or relative entry: which occurrence. */
  label: string;
}

function timing(spec: PlanSpec, now: Date): Timing | { none: string } {
  const tz = spec.timeZone;
  const w = spec.when;
  if (w.kind === "before") {
    // Exactly so many minutes before the anchor (an appointment): a service reminder, not moved for quiet hours.
    return { at: sql`(en.enrolled_at - make_interval(mins => ${w.minutes}::int))`, where: null, movedQuiet: false, label: `${w.minutes} minutes before` };
  }
  if (w.kind === "relative") {
    const r = relativeOffset(w, spec.quietHours);
    return {
      at: sql`(((en.enrolled_at at time zone ${q(tz)})::date + ${r.days}::int) + ${r.time}::time) at time zone ${q(tz)}`,
      where: null,
      movedQuiet: r.moved,
      label: `day ${w.day}`,
    };
  }
  if (w.kind === "birthday") {
    const r = relativeOffset({ day: 0, time: w.time }, spec.quietHours);
    // The next birthday (YYYY-MM-DD or MM-DD in attributes.birthday; 29 Feb falls on 28 Feb in other years), daysBefore it.
    const today = localParts(now, tz).date;
    const md = sql`substring(c.attributes->>'birthday' from '(\\d{2}-\\d{2})$')`;
    const inYear = (y: SQL) => sql`make_date(${y}, split_part(${md}, '-', 1)::int, least(split_part(${md}, '-', 2)::int, extract(day from (make_date(${y}, split_part(${md}, '-', 1)::int, 1) + interval '1 month - 1 day'))::int))`;
    const year = sql`extract(year from ${today}::date)::int`;
    const thisYear = sql`(${inYear(year)} - ${w.daysBefore}::int)`;
    const nextYear = sql`(${inYear(sql`${year} + 1`)} - ${w.daysBefore}::int)`;
    const day = sql`(case when ${thisYear} >= ${today}::date then ${thisYear} else ${nextYear} end)`;
    return {
      at: sql`((${day} + ${r.days}::int) + ${r.time}::time) at time zone ${q(tz)}`,
      where: sql`${md} is not null and ${day} <= ${addDays(today, BIRTHDAY_HORIZON_DAYS)}::date`,
      movedQuiet: r.moved,
      label: "the birthday",
    };
  }
  const from = spec.startDate ? new Date(Math.max(now.getTime(), zonedInstant(spec.startDate, "00:00", tz).getTime())) : now;
  const until = spec.endDate ? zonedInstant(addDays(spec.endDate, 1), "00:00", tz) : null;
  // A one-off time is planned as written (the late rule below decides); a weekday or monthday at its next occurrence.
  const base = occurrence(w, w.kind === "at" ? now : from, tz, until);
  if (!base) return { none: `no occurrence left before the calendar's end date ${spec.endDate}` };
  const moved = outOfQuiet(base, spec.quietHours, tz);
  return { at: iso(moved.at), where: null, movedQuiet: moved.moved, label: w.kind === "at" ? w.at.replace("T", " ") : `the ${localParts(moved.at, tz).date} occurrence` };
}

/**
 * Plan one entry into the temporary table dlv_plan (created for the transaction, emptied first),
 * reserve the ledger for the planned ones and, when `write`, insert the sends. Returns the stats;
 * the rows stay in dlv_plan until the transaction ends (the preview samples them).
 */
export async function planInto(tx: Tx, ctx: Ctx, spec: PlanSpec, settings: DeliverySettings, opts: { write: boolean; now: Date; enrollmentIds?: string[] | undefined }): Promise<PlanStats> {
  await tx.execute(sql`create temp table if not exists dlv_plan (
    contact_id uuid, chat_id text, enrollment_id uuid, sender_staff_id uuid, occurrence text not null default '',
    scheduled_at timestamptz not null, day date not null,
    status text not null default 'planned', reason text, moved text
  ) on commit drop`);
  await tx.execute(sql`truncate dlv_plan`);
  const stats: PlanStats = { candidates: 0, planned: 0, skipped: 0, reasons: [], movedQuiet: 0, late: 0, firstAt: null, lastAt: null, already: 0 };
  const t = timing(spec, opts.now);
  if ("none" in t) {
    stats.reasons.push({ reason: t.none, n: 0 });
    return stats;
  }
  const tz = spec.timeZone;
  const ltz = settings.timeZone;
  const now = opts.now;
  const nowAllowed = outOfQuiet(now, spec.quietHours, tz).at;
  const late = new Date(now.getTime() - LATE_GRACE_MS);
  // Past but within the grace: at once (the next minute outside quiet hours); beyond it: skipped.
  const at = sql`(case when ${t.at} >= ${iso(now)} then ${t.at} when ${t.at} >= ${iso(late)} then ${iso(nowAllowed)} else ${t.at} end)`;
  const passed = sql`${t.at} < ${iso(late)}`;
  const moved = sql`(case when ${t.at} < ${iso(now)} and not ${passed} then 'late' when ${t.movedQuiet}::boolean then 'quiet hours' end)`;
  const passedReason = sql`'its time (' || to_char(${t.at} at time zone ${q(tz)}, 'YYYY-MM-DD HH24:MI') || ', ' || ${t.label} || ') passed before it could be planned'`;
  // Which occurrence a send is (part of its unique key): a recurring entry's local date, a
  // relative entry's enrollment, nothing for a one-off date.
  const relative = spec.calendarKind === "relative" || spec.when.kind === "relative" || spec.when.kind === "before";
  const occurrenceOf = spec.when.kind === "at" ? sql`''` : relative ? sql`en.id::text` : sql`to_char(${t.at} at time zone ${q(tz)}, 'YYYY-MM-DD')`;

  if (spec.channel === "single") {
    let from: SQL;
    let where: SQL;
    if (relative) {
      from = sql`contacts c join calendar_enrollments en on en.contact_id = c.id and en.tenant_id = c.tenant_id and en.calendar_id = ${spec.calendarId}::uuid and en.ended_at is null`;
      if (opts.enrollmentIds && !opts.enrollmentIds.length) return stats;
      where = opts.enrollmentIds ? sql`en.id in (${sql.join(opts.enrollmentIds.map((id) => sql`${id}::uuid`), sql`, `)})` : sql`true`;
    } else if (spec.audience.segment) {
      from = sql`contacts c left join lateral (select null::uuid as id) en on true`;
      where = await segmentCondition(ctx, spec.audience.segment, "audience.segment");
    } else {
      stats.reasons.push({ reason: "the calendar's audience names no contacts (a segment, or enrollment for a relative calendar)", n: 0 });
      return stats;
    }
    const onlyIf = spec.onlyIf ? await segmentCondition(ctx, spec.onlyIf, "conditions.onlyIf") : sql`true`;
    const skipIf = spec.skipIf ? await segmentCondition(ctx, spec.skipIf, "conditions.skipIf") : sql`false`;
    const sender = spec.ownerStaffId ? sql`${spec.ownerStaffId}::uuid` : sql`c.owner_staff_id`;
    const noSender = spec.ownerStaffId ? "no sender: the entry's owner staff member has no WeCom userid or has left" : "no sender: the contact has no owner consultant with a WeCom userid";
    const already = spec.postId ? sql`exists (select 1 from sends x where x.post_id = ${spec.postId}::uuid and x.contact_id = c.id and x.occurrence = ${occurrenceOf})` : sql`false`;
    const rows = rowsOf<{ n: number; already: number }>(
      await tx.execute(sql`
      with cand as (
        select c.id as contact_id, en.id as enrollment_id, s.id as sender_staff_id, ${occurrenceOf} as occurrence, ${at} as scheduled_at, ${moved} as moved,
          case
            when ${passed} then ${passedReason}
            when c.deleted_at is not null then 'the contact removed the consultant in WeCom (or was removed)'
            when c.external_user_id is null then 'not a WeCom contact (no external userid)'
            when ${!spec.service}::boolean and c.marketing_opt_out_at is not null then 'the contact opted out of marketing (退订) on ' || to_char(c.marketing_opt_out_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
            when ${skipIf} then ${`skipped by the entry's condition (skipIf: ${spec.skipIf ?? ""})`}::text
            when s.id is null then ${noSender}::text
          end as reason,
          ${already} as already
        from ${from}
        left join staff s on s.tenant_id = c.tenant_id and s.id = ${sender} and s.active and s.wecom_user_id is not null
        where c.tenant_id = ${ctx.tenantId}::uuid and ${where} and ${onlyIf} ${t.where ? sql`and ${t.where}` : sql``}
      ),
      ins as (
        insert into dlv_plan (contact_id, enrollment_id, sender_staff_id, occurrence, scheduled_at, day, status, reason, moved)
        select contact_id, enrollment_id, sender_staff_id, occurrence, scheduled_at, (scheduled_at at time zone ${q(ltz)})::date,
          case when reason is null then 'planned' else 'skipped' end, reason, case when reason is null then moved end
        from cand where not already
        returning 1
      )
      select (select count(*)::int from ins) as n, (select count(*)::int from cand where already) as already`),
    );
    stats.already = rows[0]?.already ?? 0;

    // The fatigue cap: a marketing send on day d must leave every window of W days around d at most N.
    if (!spec.service) {
      const W = settings.fatigueDays;
      await tx.execute(sql`
        update dlv_plan p set status = 'skipped', reason = ${`over the fatigue cap: at most ${settings.fatigueCap} marketing sends per contact in ${W} days, across calendars`}::text
        from (
          select distinct p2.contact_id
          from dlv_plan p2
          join send_quota sq on sq.tenant_id = ${ctx.tenantId}::uuid and sq.contact_id = p2.contact_id and sq.day between p2.day - ${W - 1}::int and p2.day + ${W - 1}::int and sq.marketing > 0
          cross join generate_series(0, ${W - 1}::int) k
          where p2.status = 'planned' and sq.day between p2.day - ${W - 1}::int + k and p2.day + k
          group by p2.contact_id, p2.day, k
          having sum(sq.marketing) >= ${settings.fatigueCap}::int
        ) over
        where p.contact_id = over.contact_id and p.status = 'planned'`);
    }
    // WeCom's cap, reserved atomically with the fatigue count: a row per contact and local day.
    const marketing = spec.service ? 0 : 1;
    await tx.execute(sql`
      with reserved as (
        insert into send_quota (tenant_id, contact_id, day, mass, marketing)
        select ${ctx.tenantId}::uuid, p.contact_id, p.day, 1, ${marketing}::int from dlv_plan p where p.status = 'planned' order by p.contact_id, p.day
        on conflict (tenant_id, contact_id, day) do update set mass = send_quota.mass + 1, marketing = send_quota.marketing + excluded.marketing
        where send_quota.mass < ${settings.massCapPerDay}::int
        returning contact_id, day
      )
      update dlv_plan p set status = 'skipped', reason = ${`over WeCom's mass-message cap: ${settings.massCapPerDay} per customer per day`}::text
      where p.status = 'planned' and not exists (select 1 from reserved r where r.contact_id = p.contact_id and r.day = p.day)`);
  } else {
    // The chats listed by id, and those carrying any of the audience's labels (PUT /v1/wecom/group-chats/{id}/tags).
    const labels = spec.audience.groups?.tags ?? [];
    const tagged = labels.length
      ? rowsOf<{ chat_id: string }>(
          await tx.execute(sql`select chat_id from wecom_group_chats where tenant_id = ${ctx.tenantId}::uuid and dismissed_at is null and tags && array[${sql.join(labels.map((l) => sql`${l}::text`), sql`, `)}]::text[] order by chat_id`),
        ).map((r) => r.chat_id)
      : [];
    const ids = [...new Set([...(spec.audience.groups?.ids ?? []), ...tagged])];
    if (!ids.length) {
      stats.reasons.push({ reason: labels.length ? `no group chat carries the label ${labels.join(" / ")} (label chats with PUT /v1/wecom/group-chats/{id}/tags)` : "the calendar's audience names no group chats", n: 0 });
      return stats;
    }
    const already = spec.postId ? sql`exists (select 1 from sends x where x.post_id = ${spec.postId}::uuid and x.chat_id = w.chat_id and x.occurrence = ${occurrenceOf})` : sql`false`;
    const ins = rowsOf<{ already: number }>(
      await tx.execute(sql`
      with wanted as (select distinct unnest(array[${sql.join(ids.map((id) => sql`${id}::text`), sql`, `)}]) as chat_id),
      cand as (
        select w.chat_id, s.id as sender_staff_id, ${occurrenceOf} as occurrence, ${at} as scheduled_at, ${moved} as moved,
          case
            when ${passed} then ${passedReason}
            when g.chat_id is null then 'unknown group chat (not synced from WeCom)'
            when g.dismissed_at is not null then 'the group chat was dismissed'
            when s.id is null then 'no sender: the chat owner is not a staff member with a WeCom userid'
          end as reason,
          ${already} as already
        from wanted w
        left join wecom_group_chats g on g.tenant_id = ${ctx.tenantId}::uuid and g.chat_id = w.chat_id
        left join staff s on s.tenant_id = ${ctx.tenantId}::uuid and lower(s.wecom_user_id) = lower(g.owner_user_id) and s.active
      ),
      ins as (
        insert into dlv_plan (chat_id, sender_staff_id, occurrence, scheduled_at, day, status, reason, moved)
        select chat_id, sender_staff_id, occurrence, scheduled_at, (scheduled_at at time zone ${q(ltz)})::date, case when reason is null then 'planned' else 'skipped' end, reason, case when reason is null then moved end
        from cand where not already
        returning 1
      )
      select (select count(*)::int from cand where already) as already, (select count(*) from ins) as n`),
    );
    stats.already = ins[0]?.already ?? 0;
    // WeCom's cap per group chat and day, counted from the chat's sends that day (group sends are few).
    await tx.execute(sql`
      update dlv_plan p set status = 'skipped', reason = ${`over WeCom's mass-message cap: ${settings.massCapPerDay} per group chat per day`}::text
      where p.status = 'planned' and (
        select count(*) from sends s where s.tenant_id = ${ctx.tenantId}::uuid and s.chat_id = p.chat_id
          and s.status in ('planned', 'queued', 'sending', 'sent', 'over_quota') and (s.scheduled_at at time zone ${q(ltz)})::date = p.day
      ) >= ${settings.massCapPerDay}::int`);
  }

  if (opts.write && spec.postId) {
    // Skipped rows carry result_at: they hold no reservation (see quota.ts). No ON CONFLICT: under
    // the planning lock the candidates exclude recipients with a send of the post, and the unique
    // indexes would refuse anything that raced past (the plan then fails and the sweep retries).
    // In contact order, so the (post, contact) and (tenant, contact) indexes fill in order.
    await tx.execute(sql`
      insert into sends (tenant_id, post_id, calendar_id, entry_id, enrollment_id, contact_id, chat_id, occurrence, sender_staff_id, scheduled_at, status, reason, service, result_at)
      select ${ctx.tenantId}::uuid, ${spec.postId}::uuid, ${spec.calendarId}::uuid, ${spec.entryId}::uuid, p.enrollment_id, p.contact_id, p.chat_id, p.occurrence, p.sender_staff_id, p.scheduled_at, p.status, p.reason, ${spec.service},
        case when p.status = 'skipped' then ${iso(now)} end
      from dlv_plan p
      order by p.contact_id, p.chat_id`);
    // An approved post with sends waiting is scheduled.
    await tx.execute(sql`update posts set status = 'scheduled', updated_at = ${iso(now)}
      where id = ${spec.postId}::uuid and status = 'approved' and exists (select 1 from dlv_plan p where p.status = 'planned')`);
  }

  const agg = rowsOf<{ status: string; reason: string | null; moved: string | null; n: number; first: string | Date | null; last: string | Date | null }>(
    await tx.execute(sql`select status, reason, moved, count(*)::int as n, min(scheduled_at) as first, max(scheduled_at) as last from dlv_plan group by status, reason, moved order by count(*) desc`),
  );
  for (const a of agg) {
    stats.candidates += a.n;
    if (a.status === "planned") {
      stats.planned += a.n;
      if (a.moved === "quiet hours") stats.movedQuiet += a.n;
      if (a.moved === "late") stats.late += a.n;
      const first = a.first ? new Date(a.first).toISOString() : null;
      const last = a.last ? new Date(a.last).toISOString() : null;
      if (first && (!stats.firstAt || first < stats.firstAt)) stats.firstAt = first;
      if (last && (!stats.lastAt || last > stats.lastAt)) stats.lastAt = last;
    } else {
      stats.skipped += a.n;
      const r = stats.reasons.find((x) => x.reason === a.reason);
      if (r) r.n += a.n;
      else stats.reasons.push({ reason: a.reason ?? "skipped", n: a.n });
    }
  }
  stats.reasons.sort((a, b) => b.n - a.n);
  return stats;
}

/** A sample of dlv_plan (planned first, then skipped), with names, for the preview. */
export async function samplePlan(tx: Tx, ctx: Ctx, limit: number): Promise<{ contactId: string | null; contactName: string | null; chatId: string | null; senderStaffId: string | null; senderName: string | null; scheduledAt: string; status: string; reason: string | null; moved: string | null }[]> {
  const rows = rowsOf<{ contact_id: string | null; contact_name: string | null; chat_id: string | null; sender_staff_id: string | null; sender_name: string | null; scheduled_at: string | Date; status: string; reason: string | null; moved: string | null }>(
    await tx.execute(sql`
      (select p.contact_id, c.name as contact_name, p.chat_id, p.sender_staff_id, s.name as sender_name, p.scheduled_at, p.status, p.reason, p.moved
       from dlv_plan p left join contacts c on c.id = p.contact_id and c.tenant_id = ${ctx.tenantId}::uuid left join staff s on s.id = p.sender_staff_id
       where p.status = 'planned' order by p.scheduled_at, p.contact_id, p.chat_id limit ${limit})
      union all
      (select p.contact_id, c.name, p.chat_id, p.sender_staff_id, s.name, p.scheduled_at, p.status, p.reason, p.moved
       from dlv_plan p left join contacts c on c.id = p.contact_id and c.tenant_id = ${ctx.tenantId}::uuid left join staff s on s.id = p.sender_staff_id
       where p.status = 'skipped' order by p.reason, p.contact_id, p.chat_id limit ${limit})`),
  );
  return rows.map((r) => ({ contactId: r.contact_id, contactName: r.contact_name, chatId: r.chat_id, senderStaffId: r.sender_staff_id, senderName: r.sender_name, scheduledAt: new Date(r.scheduled_at).toISOString(), status: r.status, reason: r.reason, moved: r.moved }));
}

// Re-exported for callers that show times.
export { hhmm, ledgerDay, minutesOfDay };
