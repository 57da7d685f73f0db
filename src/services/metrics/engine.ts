import { sql, type SQL } from "drizzle-orm";
import { rowsOf } from "../../db/client";
import type { FactKind } from "../../db/schema/metrics";
import { AppError, ValidationError, type FieldIssue } from "../../errors";
import { analyticsStatement } from "../analytics/statement";
import { dbOf, type Ctx } from "../context";
import { compileChecked } from "../segments/segments";
import { MAX_BUCKETS, MAX_PERIOD_DAYS, type Dimension, type FunnelMetrics, type Granularity, type MetricScope, type Rate } from "./schemas";

/**
 * The metrics engine: every figure of docs/metrics.md as a few set-based statements, one per
 * source table, each grouped by (dimension key, bucket). Internal to the metrics services; the
 * verbs (funnel, trends, scorecards, computeMetric) check permissions and shape the results.
 */

/** The tables figures come from; a request runs only the ones its figures need. */
export type Source = "facts" | "followUps" | "contacts" | "response" | "sla" | "received" | "sends";

export interface Plan {
  tenantId: string;
  tz: string;
  /** Local days, `to` exclusive. */
  fromDay: string;
  toDay: string;
  /** The same bounds as instants (ISO). */
  from: string;
  to: string;
  now: string;
  period: Granularity | null;
  by: Dimension;
  scope: MetricScope;
  /** The scope's segment as a condition over `contacts c`. */
  segmentFilter: SQL | null;
  /** by = segment: every segment of the tenant that compiles. */
  segments: { id: string; name: string; where: SQL }[];
}

/** Raw figures of one (bucket, key) cell, before rates are derived. */
export interface Raw {
  appointments: number;
  visits: number;
  consultations: number;
  converted: number;
  purchases: number;
  refunds: number;
  responses: number;
  promoters: number;
  detractors: number;
  buyers: number;
  repeatBuyers: number;
  followUpsDue: number;
  followUpsDone: number;
  newContacts: number;
  referredContacts: number;
  responded: number;
  medianMinutes: number | null;
  p90Minutes: number | null;
  withinSla: number;
  slaDeadlines: number;
  slaBreaches: number;
  leadsReceived: number;
  sendsSent: number;
  sendFailures: number;
}

export const zeroRaw = (): Raw => ({
  appointments: 0,
  visits: 0,
  consultations: 0,
  converted: 0,
  purchases: 0,
  refunds: 0,
  responses: 0,
  promoters: 0,
  detractors: 0,
  buyers: 0,
  repeatBuyers: 0,
  followUpsDue: 0,
  followUpsDone: 0,
  newContacts: 0,
  referredContacts: 0,
  responded: 0,
  medianMinutes: null,
  p90Minutes: null,
  withinSla: 0,
  slaDeadlines: 0,
  slaBreaches: 0,
  leadsReceived: 0,
  sendsSent: 0,
  sendFailures: 0,
});

export const ALL_FACT_KINDS: readonly FactKind[] = ["appointment", "visit", "consultation", "purchase", "refund", "survey"];

export const rate = (numerator: number, denominator: number): Rate => ({ numerator, denominator, value: denominator > 0 ? numerator / denominator : null });
const money = (n: number) => Math.round(n * 100) / 100;
const minutes = (n: number | null) => (n === null ? null : Math.round(n * 10) / 10);

export function funnelMetrics(r: Raw): FunnelMetrics {
  return {
    appointments: r.appointments,
    visits: r.visits,
    visitRate: rate(r.visits, r.appointments),
    consultations: r.consultations,
    converted: r.converted,
    dealRate: rate(r.converted, r.consultations),
    followUpsDue: r.followUpsDue,
    followUpsDone: r.followUpsDone,
    followUpRate: rate(r.followUpsDone, r.followUpsDue),
    buyers: r.buyers,
    repeatBuyers: r.repeatBuyers,
    repeatRate: rate(r.repeatBuyers, r.buyers),
    newContacts: r.newContacts,
    referredContacts: r.referredContacts,
    referralRate: rate(r.referredContacts, r.newContacts),
    nps: {
      responses: r.responses,
      promoters: r.promoters,
      passives: r.responses - r.promoters - r.detractors,
      detractors: r.detractors,
      value: r.responses > 0 ? ((r.promoters - r.detractors) * 100) / r.responses : null,
    },
    revenue: { purchases: money(r.purchases), refunds: money(r.refunds), net: money(r.purchases - r.refunds) },
    leadResponse: { leads: r.responded, medianMinutes: minutes(r.medianMinutes), p90Minutes: minutes(r.p90Minutes) },
    slaBreachRate: rate(r.slaBreaches, r.slaDeadlines),
  };
}

// ------------------------------------------------------------ period, scope

/**
 * Resolve the period in the tenant's time zone and check the scope: every id must be one of the
 * tenant's own records (422 naming the field otherwise), the segment must still compile.
 */
export async function resolvePlan(
  ctx: Ctx,
  input: { from?: string | undefined; to?: string | undefined; period: Granularity | null; by: Dimension; scope: MetricScope },
): Promise<Plan> {
  const db = dbOf(ctx);
  const now = ctx.deps.now().toISOString();
  const s = input.scope;
  const [row] = rowsOf<{ tz: string; from_day: string; to_day: string; from_ms: number; to_ms: number; span: number; clinic: boolean; staff: boolean; calendar: boolean; segment: string | null; segment_name: string | null }>(
    await db.execute(sql`
      with t as (select timezone as tz from tenants where id = ${ctx.tenantId}::uuid),
      d as (select tz, coalesce(${input.to ?? null}::date, (${now}::timestamptz at time zone tz)::date + 1) as to_day from t),
      p as (select tz, coalesce(${input.from ?? null}::date, to_day - 30) as from_day, to_day from d)
      select tz, to_char(from_day, 'YYYY-MM-DD') as from_day, to_char(to_day, 'YYYY-MM-DD') as to_day, to_day - from_day as span,
        extract(epoch from (from_day::timestamp at time zone tz))::float8 * 1000 as from_ms,
        extract(epoch from (to_day::timestamp at time zone tz))::float8 * 1000 as to_ms,
        (${s.clinicId ?? null}::uuid is null or exists (select 1 from clinics where tenant_id = ${ctx.tenantId}::uuid and id = ${s.clinicId ?? null}::uuid)) as clinic,
        (${s.staffId ?? null}::uuid is null or exists (select 1 from staff where tenant_id = ${ctx.tenantId}::uuid and id = ${s.staffId ?? null}::uuid)) as staff,
        (${s.calendarId ?? null}::uuid is null or exists (select 1 from calendars where tenant_id = ${ctx.tenantId}::uuid and id = ${s.calendarId ?? null}::uuid)) as calendar,
        (select expression from segments where tenant_id = ${ctx.tenantId}::uuid and id = ${s.segmentId ?? null}::uuid) as segment
      from p`),
  );
  if (!row) throw new AppError("INTERNAL", "tenant not found");
  const issues: FieldIssue[] = [];
  if (Number(row.span) <= 0) issues.push({ field: "to", message: "must be after from" });
  else if (Number(row.span) > MAX_PERIOD_DAYS) issues.push({ field: "from", message: `the period may cover at most ${MAX_PERIOD_DAYS} days` });
  if (!row.clinic) issues.push({ field: "clinicId", message: "no such clinic" });
  if (!row.staff) issues.push({ field: "staffId", message: "no such staff member" });
  if (!row.calendar) issues.push({ field: "calendarId", message: "no such calendar" });
  if (s.segmentId && row.segment === null) issues.push({ field: "segmentId", message: "no such segment" });
  let segmentFilter: SQL | null = null;
  if (s.segmentId && row.segment !== null) {
    try {
      segmentFilter = (await compileChecked(ctx, row.segment)).where;
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      issues.push({ field: "segmentId", message: `the segment no longer compiles: ${err.detail}` });
    }
  }
  if (input.period && !issues.length && bucketStarts(row.from_day, row.to_day, input.period).length > MAX_BUCKETS) {
    issues.push({ field: "period", message: `at most ${MAX_BUCKETS} buckets: choose a shorter period or a larger bucket` });
  }
  if (issues.length) throw new ValidationError(issues);
  const segments: Plan["segments"] = [];
  if (input.by === "segment") {
    const all = rowsOf<{ id: string; name: string; expression: string }>(await db.execute(sql`select id::text as id, name, expression from segments where tenant_id = ${ctx.tenantId}::uuid order by name`));
    for (const g of all) {
      // A segment whose tags were deleted since has no members (as in the segment list).
      const compiled = await compileChecked(ctx, g.expression).catch((err: unknown) => {
        if (err instanceof ValidationError) return null;
        throw err;
      });
      if (compiled) segments.push({ id: g.id, name: g.name, where: compiled.where });
    }
  }
  return {
    tenantId: ctx.tenantId,
    tz: row.tz,
    fromDay: row.from_day,
    toDay: row.to_day,
    from: new Date(Number(row.from_ms)).toISOString(),
    to: new Date(Number(row.to_ms)).toISOString(),
    now,
    period: input.period,
    by: input.by,
    scope: s,
    segmentFilter,
    segments,
  };
}

/** Local start days of the buckets covering [fromDay, toDay): days, ISO weeks (Monday) or months, as PostgreSQL's date_trunc. */
export function bucketStarts(fromDay: string, toDay: string, g: Granularity): string[] {
  const day = (s: string) => new Date(`${s}T00:00:00Z`);
  const end = day(toDay).getTime();
  const d = day(fromDay);
  if (g === "week") d.setUTCDate(d.getUTCDate() - ((d.getUTCDay() + 6) % 7));
  if (g === "month") d.setUTCDate(1);
  const out: string[] = [];
  while (d.getTime() < end && out.length <= MAX_BUCKETS) {
    out.push(d.toISOString().slice(0, 10));
    if (g === "day") d.setUTCDate(d.getUTCDate() + 1);
    else if (g === "week") d.setUTCDate(d.getUTCDate() + 7);
    else d.setUTCMonth(d.getUTCMonth() + 1);
  }
  return out;
}

// ------------------------------------------------------------ SQL

/** How a source's rows reach the dimensions. */
interface Src {
  contact: SQL;
  clinic: SQL;
  staff: SQL;
  /** The contact's channel: frozen on facts, else read from `contacts c` (joined when needed). */
  channel: SQL;
  channelFromContact: boolean;
  /** The time each row is dated by. */
  time: SQL;
  /** The FROM clause already has `contacts c`. */
  hasContact: boolean;
  source: Source;
}

const CONTACT_CHANNEL = sql`coalesce(c.source_state, c.source)`;

/**
 * Sends go out (sent_at) within hours of their scheduled time (WeCom cancels a mass message not
 * confirmed within DELIVERY_CONFIRM_HOURS): a send sent in the period was scheduled at most this
 * many days before the period, which bounds the read of sends.
 */
const SEND_LAG_DAYS = 7;

const needsCalendar = (plan: Plan) => plan.by === "calendar" || plan.scope.calendarId !== undefined;

/**
 * Grouped by segment, a source whose figures are all counts and sums (every one but lead response's
 * percentiles) has its rows keyed by the contact's segment mask (dims), and computeRaw adds each row
 * into every segment the mask names.
 */
const keyedByMask = (plan: Plan, source: Source) => plan.by === "segment" && source !== "response";

/** Facts joined per row with the contacts (segments) or the calendar recipients: many rows, many buyers. */
const joinedFacts = (plan: Plan) => plan.by === "segment" || plan.by === "calendar" || plan.segmentFilter !== null || plan.scope.calendarId !== undefined;

/**
 * The calendar recipients of the period (contacts sent something, status sent, sent_at in the
 * period) with the calendar, built once per request and hash-joined by every statement: probing
 * sends per row would cost more than reading the period's sends once.
 */
function calendarRecipients(plan: Plan): SQL {
  const T = plan.tenantId;
  const id = plan.scope.calendarId;
  const only = id ? sql` and s.calendar_id = ${id}::uuid and s.entry_id in (select e.id from calendar_entries e where e.tenant_id = ${T}::uuid and e.calendar_id = ${id}::uuid)` : sql` and s.calendar_id is not null`;
  return sql`cal as materialized (select distinct s.calendar_id::text as k, s.contact_id from sends s
    where s.tenant_id = ${T}::uuid and s.status = 'sent' and s.contact_id is not null
      and s.scheduled_at >= ${plan.from}::timestamptz - interval '${sql.raw(String(SEND_LAG_DAYS))} days' and s.scheduled_at < ${plan.to}::timestamptz
      and s.sent_at >= ${plan.from}::timestamptz and s.sent_at < ${plan.to}::timestamptz${only})`;
}

/** Joins, conditions, the key and the bucket (a local timestamp, or null without buckets) of a source under the plan. */
function dims(plan: Plan, src: Src): { joins: SQL; conds: SQL; key: SQL; bucket: SQL; bucketEnd: (b: SQL) => SQL } {
  const T = plan.tenantId;
  const s = plan.scope;
  const joins: SQL[] = [];
  const conds: SQL[] = [];
  const segment = plan.by === "segment" || plan.segmentFilter !== null;
  const channel = (plan.by === "channel" || s.channel !== undefined) && src.channelFromContact;
  if (!src.hasContact && (segment || channel)) joins.push(sql`join contacts c on c.id = ${src.contact} and c.tenant_id = ${T}::uuid`);
  if (s.clinicId) conds.push(sql`${src.clinic} = ${s.clinicId}::uuid`);
  if (s.staffId) conds.push(sql`${src.staff} = ${s.staffId}::uuid`);
  if (s.channel) conds.push(sql`${src.channel} = ${s.channel}`);
  // Segment membership is current: contacts in the segment now, as its count shows them (not deleted).
  if (plan.segmentFilter) conds.push(sql`c.deleted_at is null and ${plan.segmentFilter}`);
  if (s.calendarId && plan.by !== "calendar") conds.push(sql`${src.contact} in (select cal.contact_id from cal)`);
  let key: SQL;
  switch (plan.by) {
    case "none":
      key = sql`''`;
      break;
    case "clinic":
      key = sql`coalesce(${src.clinic}::text, '')`;
      break;
    case "consultant":
      key = sql`coalesce(${src.staff}::text, '')`;
      break;
    case "channel":
      key = sql`coalesce(${src.channel}, '')`;
      break;
    case "segment":
      if (keyedByMask(plan, src.source)) {
        // Rows keyed by the contact's segment mask (one character per segment of the plan, '1' when
        // the contact is in it now): each contact's conditions are tested once, contacts in no
        // segment are left out before the join, and the grouping has a row per mask instead of a
        // row per segment and source row; the caller adds each row into the segments its mask names.
        conds.push(sql`c.deleted_at is null and (${sql.join(plan.segments.map((g) => sql`(${g.where})`), sql` or `)})`);
        key = sql`(${sql.join(plan.segments.map((g) => sql`(case when ${g.where} then '1' else '0' end)`), sql` || `)})`;
        break;
      }
      // One row per segment the contact is in now (a contact may be in several): a join with the
      // list of segments, each pair kept when the contact meets that segment's condition (a plain
      // join and filter: a lateral subquery per row cost seconds at a million contacts).
      joins.push(sql`cross join (values ${sql.join(plan.segments.map((g) => sql`(${g.id}::text)`), sql`, `)}) sg(k)`);
      conds.push(sql`c.deleted_at is null and (case sg.k ${sql.join(plan.segments.map((g) => sql`when ${g.id}::text then (${g.where})`), sql` `)} else false end)`);
      key = sql`sg.k`;
      break;
    case "calendar":
      // One row per calendar that reached the contact in the period (a contact reached by two counts in both).
      joins.push(sql`join cal on cal.contact_id = ${src.contact}`);
      key = sql`cal.k`;
      break;
  }
  const tz = sql`${plan.tz}::text`;
  const bucket = plan.period ? sql`date_trunc(${sql.raw(`'${plan.period}'`)}, ${src.time} at time zone ${tz})` : sql`null::timestamp`;
  const bucketEnd = (b: SQL) => (plan.period ? sql`least((${b} + interval ${sql.raw(`'1 ${plan.period}'`)}) at time zone ${tz}, ${plan.to}::timestamptz)` : sql`${plan.to}::timestamptz`);
  return { joins: sql.join(joins, sql` `), conds: sql.join(conds.map((c) => sql` and ${c}`), sql``), key, bucket, bucketEnd };
}

/** Rows grouped by (k, b), with the bucket as its local start day (`bt`, '' without buckets). */
const labelled = (inner: SQL) => sql`select x.*, coalesce(to_char(x.b, 'YYYY-MM-DD'), '') as bt from (${inner}) x`;

/**
 * The facts' figures per (key, bucket). `part`: "all" (one statement), or, for segment groupings
 * and filters (where every statement joins the contacts), the counts and the buyers as two
 * statements, which run side by side: the longest statement of a request sets its time.
 */
function factsQuery(plan: Plan, kinds: readonly FactKind[], part: "all" | "counts" | "buyers" = "all"): SQL {
  const T = plan.tenantId;
  const d = dims(plan, { contact: sql`f.contact_id`, clinic: sql`f.clinic_id`, staff: sql`f.staff_id`, channel: sql`f.channel`, channelFromContact: false, time: sql`f.occurred_at`, hasContact: false, source: "facts" });
  const tz = sql`${plan.tz}::text`;
  const kindList = sql.join(kinds.map((k) => sql`${k}`), sql`, `);
  // With per-row joins (segment, calendar) the period's facts are read and joined once, into `base`;
  // without, the figures and the buyers are two index range scans (the purchases' is short).
  const joined = joinedFacts(plan);
  const shared = joined && part === "all";
  const read = (kindCond: SQL) => sql`
    select ${d.key} as k, ${d.bucket} as b, f.kind, f.outcome, f.amount, f.score, f.contact_id, f.occurred_at
    from metric_facts f ${d.joins}
    where ${kindCond} and f.tenant_id = ${T}::uuid and f.occurred_at >= ${plan.from}::timestamptz and f.occurred_at < ${plan.to}::timestamptz${d.conds}`;
  const all = shared ? sql`base` : sql`(${read(sql`f.kind in (${kindList})`)}) base`;
  const purchases = shared ? sql`(select * from base where kind = 'purchase') base` : sql`(${read(sql`f.kind = 'purchase'`)}) base`;
  const agg = sql`
    select k, b,
      (count(*) filter (where kind = 'appointment'))::int as appointments,
      (count(*) filter (where kind = 'visit'))::int as visits,
      (count(*) filter (where kind = 'consultation'))::int as consultations,
      (count(*) filter (where kind = 'consultation' and outcome = 'converted'))::int as converted,
      coalesce(sum(amount) filter (where kind = 'purchase'), 0)::float8 as purchases,
      coalesce(sum(amount) filter (where kind = 'refund'), 0)::float8 as refunds,
      (count(*) filter (where kind = 'survey' and score is not null))::int as responses,
      (count(*) filter (where kind = 'survey' and score >= 9))::int as promoters,
      (count(*) filter (where kind = 'survey' and score <= 6))::int as detractors
    from ${all} group by k, b`;
  if (part === "counts" || !kinds.includes("purchase")) {
    const withBase = shared ? sql`with base as materialized (${read(sql`f.kind in (${kindList})`)}) ` : sql``;
    return labelled(part === "counts" ? agg : sql`${withBase}select agg.*, 0 as buyers, 0 as repeat_buyers from (${agg}) agg`);
  }
  const day = (col: SQL) => sql`(${col} at time zone ${tz})::date`;
  let buyers: SQL;
  let rb: SQL;
  if (joined) {
    // Per-row joins (segments, calendars) make buyers many: every buyer of the period, per segment
    // or calendar. The repeat test is set-based, and runs with hash joins only (see computeRaw). A
    // buyer of a bucket repeats when they have two distinct local purchase days before the bucket's
    // end (one of them is a day they bought in the bucket): when their second purchase day starts
    // before it. That day's first purchase (t2) comes from one hash join of the buyers with the
    // tenant's purchases before `to`: the first purchase after the local day of their first one.
    // Only the buyers' first purchases are converted to local days, not every purchase.
    buyers = sql`buyers as materialized (select k, b, contact_id from ${purchases} group by k, b, contact_id),
      nb as (select k, b, count(*)::int as n from buyers group by k, b)`;
    rb = sql`pd as (select p.contact_id, p.occurred_at from metric_facts p
        where p.tenant_id = ${T}::uuid and p.kind = 'purchase' and p.occurred_at < ${plan.to}::timestamptz and p.contact_id in (select contact_id from buyers)),
      pf as (select contact_id, ((min(occurred_at) at time zone ${tz})::date + 1)::timestamp at time zone ${tz} as next_day from pd group by contact_id),
      ps as (select pd.contact_id, min(pd.occurred_at) as t2 from pd join pf on pf.contact_id = pd.contact_id where pd.occurred_at >= pf.next_day group by pd.contact_id),
      rb as (select y.k, y.b, count(*)::int as n from buyers y join ps on ps.contact_id = y.contact_id where ps.t2 < ${d.bucketEnd(sql`y.b`)} group by y.k, y.b)`;
  } else {
    // A buyer of the bucket (first local day d in it) repeats when they bought on another local day
    // too, before the bucket's end (in any clinic, with any consultant): a semi-join of the buyers
    // with their purchases (metric_facts_contact_idx per buyer, or one pass over the purchases, as
    // the planner finds cheaper).
    buyers = sql`buyers as materialized (select k, b, contact_id, min(${day(sql`occurred_at`)}) as d from ${purchases} group by k, b, contact_id),
      nb as (select k, b, count(*)::int as n from buyers group by k, b)`;
    rb = sql`rb as (select y.k, y.b, count(*)::int as n from buyers y
      where exists (select 1 from metric_facts p where p.tenant_id = ${T}::uuid and p.contact_id = y.contact_id and p.kind = 'purchase'
        and p.occurred_at < ${d.bucketEnd(sql`y.b`)} and ${day(sql`p.occurred_at`)} <> y.d)
      group by y.k, y.b)`;
  }
  if (part === "buyers") return labelled(sql`with ${buyers}, ${rb} select nb.k, nb.b, nb.n as buyers, coalesce(rb.n, 0) as repeat_buyers from nb left join rb on rb.k = nb.k and rb.b is not distinct from nb.b`);
  const withBase = shared ? sql`base as materialized (${read(sql`f.kind in (${kindList})`)}), ` : sql``;
  return labelled(sql`with ${withBase}agg as (${agg}), ${buyers}, ${rb}
    select agg.*, coalesce(nb.n, 0) as buyers, coalesce(rb.n, 0) as repeat_buyers
    from agg left join nb on nb.k = agg.k and nb.b is not distinct from agg.b left join rb on rb.k = agg.k and rb.b is not distinct from agg.b`);
}

function followUpsQuery(plan: Plan): SQL {
  const d = dims(plan, { contact: sql`fu.contact_id`, clinic: sql`fu.clinic_id`, staff: sql`fu.staff_id`, channel: CONTACT_CHANNEL, channelFromContact: true, time: sql`fu.due_at`, hasContact: false, source: "followUps" });
  // Due: due in the period and by now (or already done); cancelled ones (the visit was undone) are not due.
  return labelled(sql`select ${d.key} as k, ${d.bucket} as b, count(*)::int as due, (count(*) filter (where fu.status = 'done'))::int as done
    from follow_ups fu ${d.joins}
    where fu.tenant_id = ${plan.tenantId}::uuid and fu.due_at >= ${plan.from}::timestamptz and fu.due_at < ${plan.to}::timestamptz
      and fu.status <> 'cancelled' and (fu.due_at <= ${plan.now}::timestamptz or fu.status = 'done')${d.conds}
    group by 1, 2`);
}

function contactsQuery(plan: Plan): SQL {
  const d = dims(plan, { contact: sql`c.id`, clinic: sql`coalesce(c.clinic_id, os.clinic_id)`, staff: sql`c.owner_staff_id`, channel: CONTACT_CHANNEL, channelFromContact: true, time: sql`c.created_at`, hasContact: true, source: "contacts" });
  return labelled(sql`select ${d.key} as k, ${d.bucket} as b, count(*)::int as new_contacts, (count(*) filter (where c.referrer_contact_id is not null))::int as referred
    from contacts c left join staff os on os.id = c.owner_staff_id ${d.joins}
    where c.tenant_id = ${plan.tenantId}::uuid and c.created_at >= ${plan.from}::timestamptz and c.created_at < ${plan.to}::timestamptz${d.conds}
    group by 1, 2`);
}

/** The consultant's clinic is read only when the clinic matters (a lead without a clinic is its consultant's). */
const clinicJoin = (plan: Plan, staffCol: SQL) => (plan.by === "clinic" || plan.scope.clinicId ? sql`left join staff os on os.id = ${staffCol}` : sql``);

function responseQuery(plan: Plan): SQL {
  const d = dims(plan, { contact: sql`l.contact_id`, clinic: sql`coalesce(l.clinic_id, os.clinic_id)`, staff: sql`l.owner_staff_id`, channel: CONTACT_CHANNEL, channelFromContact: true, time: sql`l.assigned_at`, hasContact: false, source: "response" });
  const m = sql`greatest(0, extract(epoch from (l.first_contacted_at - l.assigned_at)) / 60.0)::float8`;
  return labelled(sql`select ${d.key} as k, ${d.bucket} as b, count(*)::int as responded,
      percentile_cont(0.5) within group (order by ${m}) as median_minutes,
      percentile_cont(0.9) within group (order by ${m}) as p90_minutes,
      (count(*) filter (where l.first_contacted_at <= l.first_contact_due_at))::int as within_sla
    from leads l ${clinicJoin(plan, sql`l.owner_staff_id`)} ${d.joins}
    where l.tenant_id = ${plan.tenantId}::uuid and l.assigned_at >= ${plan.from}::timestamptz and l.assigned_at < ${plan.to}::timestamptz
      and l.first_contacted_at is not null and l.owner_staff_id is not null${d.conds}
    group by 1, 2`);
}

function slaQuery(plan: Plan): SQL {
  const T = plan.tenantId;
  const d = dims(plan, { contact: sql`dl.contact_id`, clinic: sql`coalesce(dl.clinic_id, os.clinic_id)`, staff: sql`dl.staff_id`, channel: CONTACT_CHANNEL, channelFromContact: true, time: sql`dl.due_at`, hasContact: false, source: "sla" });
  // Deadlines of the period: every recorded breach, plus each lead's current deadline not recorded as
  // breached, once decided (first contact made, or the deadline passed).
  const deadlines = sql`
    select l.contact_id, l.clinic_id, b.due_at, b.staff_id, true as breached
    from lead_sla_breaches b join leads l on l.id = b.lead_id
    where b.tenant_id = ${T}::uuid and b.due_at >= ${plan.from}::timestamptz and b.due_at < ${plan.to}::timestamptz
    union all
    select l.contact_id, l.clinic_id, l.first_contact_due_at, l.owner_staff_id, (l.first_contacted_at is null or l.first_contacted_at > l.first_contact_due_at)
    from leads l
    where l.tenant_id = ${T}::uuid and l.first_contact_due_at >= ${plan.from}::timestamptz and l.first_contact_due_at < ${plan.to}::timestamptz
      and l.owner_staff_id is not null and (l.first_contacted_at is not null or l.first_contact_due_at <= ${plan.now}::timestamptz)
      and not exists (select 1 from lead_sla_breaches x where x.lead_id = l.id and x.due_at = l.first_contact_due_at)`;
  return labelled(sql`select ${d.key} as k, ${d.bucket} as b, count(*)::int as deadlines, (count(*) filter (where dl.breached))::int as breaches
    from (${deadlines}) dl ${clinicJoin(plan, sql`dl.staff_id`)} ${d.joins}
    where true${d.conds}
    group by 1, 2`);
}

function receivedQuery(plan: Plan): SQL {
  const clinic = plan.by === "clinic" || plan.scope.clinicId !== undefined;
  const d = dims(plan, { contact: sql`a.contact_id`, clinic: sql`coalesce(l.clinic_id, os.clinic_id)`, staff: sql`a.to_staff_id`, channel: CONTACT_CHANNEL, channelFromContact: true, time: sql`a.at`, hasContact: false, source: "received" });
  return labelled(sql`select ${d.key} as k, ${d.bucket} as b, count(*)::int as received
    from lead_assignments a ${clinic ? sql`join leads l on l.id = a.lead_id` : sql``} ${clinicJoin(plan, sql`a.to_staff_id`)} ${d.joins}
    where a.tenant_id = ${plan.tenantId}::uuid and a.to_staff_id is not null and a.at >= ${plan.from}::timestamptz and a.at < ${plan.to}::timestamptz${d.conds}
    group by 1, 2`);
}

function sendsQuery(plan: Plan): SQL {
  const d = dims(plan, { contact: sql`s.contact_id`, clinic: sql`os.clinic_id`, staff: sql`s.sender_staff_id`, channel: CONTACT_CHANNEL, channelFromContact: true, time: sql`s.scheduled_at`, hasContact: false, source: "sends" });
  return labelled(sql`select ${d.key} as k, ${d.bucket} as b, (count(*) filter (where s.status = 'sent'))::int as sent, (count(*) filter (where s.status <> 'sent'))::int as failed
    from sends s left join staff os on os.id = s.sender_staff_id ${d.joins}
    where s.tenant_id = ${plan.tenantId}::uuid and s.scheduled_at >= ${plan.from}::timestamptz and s.scheduled_at < ${plan.to}::timestamptz
      and s.status in ('sent', 'failed', 'over_quota', 'not_friend')${d.conds}
    group by 1, 2`);
}

type Row = Record<string, unknown> & { k: string; bt: string };

/** A statement of the plan, with the dashboards' settings (analyticsStatement). */
const run = (ctx: Ctx, q: SQL, opts: { hashJoins?: boolean } = {}): Promise<Row[]> => analyticsStatement(ctx, async (tx) => rowsOf<Row>(await tx.execute(q)), opts);

export const cellKey = (bucket: string, key: string) => `${bucket}\u0000${key}`;

/**
 * Run the sources' statements and merge their figures by (bucket, key): one statement per source,
 * METRICS_PARALLEL_STATEMENTS at a time, or one statement sharing the calendar recipients when the
 * plan needs them. Figures add up: a cell can get rows from several masks (keyedByMask).
 */
export async function computeRaw(ctx: Ctx, plan: Plan, sources: ReadonlySet<Source>, kinds: readonly FactKind[] = ALL_FACT_KINDS): Promise<Map<string, Raw>> {
  const out = new Map<string, Raw>();
  if (plan.by === "segment" && !plan.segments.length) return out;
  const n = (x: unknown) => (x === null || x === undefined ? 0 : Number(x));
  const num = (x: unknown) => (x === null || x === undefined ? null : Number(x));
  const counts = (v: Raw, r: Row) => {
    v.appointments += n(r.appointments);
    v.visits += n(r.visits);
    v.consultations += n(r.consultations);
    v.converted += n(r.converted);
    v.purchases += n(r.purchases);
    v.refunds += n(r.refunds);
    v.responses += n(r.responses);
    v.promoters += n(r.promoters);
    v.detractors += n(r.detractors);
  };
  const buyerCounts = (v: Raw, r: Row) => {
    v.buyers += n(r.buyers);
    v.repeatBuyers += n(r.repeat_buyers);
  };
  // Segment groupings and filters join every statement with the contacts: the facts' counts and
  // buyers go as two statements side by side (calendar plans run as one statement anyway).
  const splitFacts = (plan.by === "segment" || plan.segmentFilter !== null) && !needsCalendar(plan) && kinds.includes("purchase");
  const all: { source: Source; q: () => SQL; apply: (v: Raw, r: Row) => void }[] = [
    ...(splitFacts
      ? [
          { source: "facts" as const, q: () => factsQuery(plan, kinds, "counts"), apply: counts },
          { source: "facts" as const, q: () => factsQuery(plan, kinds, "buyers"), apply: buyerCounts },
        ]
      : [{ source: "facts" as const, q: () => factsQuery(plan, kinds), apply: (v: Raw, r: Row) => (counts(v, r), buyerCounts(v, r)) }]),
    { source: "followUps", q: () => followUpsQuery(plan), apply: (v, r) => ((v.followUpsDue += n(r.due)), (v.followUpsDone += n(r.done))) },
    { source: "contacts", q: () => contactsQuery(plan), apply: (v, r) => ((v.newContacts += n(r.new_contacts)), (v.referredContacts += n(r.referred))) },
    {
      source: "response",
      q: () => responseQuery(plan),
      apply: (v, r) => {
        v.responded = n(r.responded);
        v.medianMinutes = num(r.median_minutes);
        v.p90Minutes = num(r.p90_minutes);
        v.withinSla = n(r.within_sla);
      },
    },
    { source: "sla", q: () => slaQuery(plan), apply: (v, r) => ((v.slaDeadlines += n(r.deadlines)), (v.slaBreaches += n(r.breaches))) },
    { source: "received", q: () => receivedQuery(plan), apply: (v, r) => (v.leadsReceived += n(r.received)) },
    { source: "sends", q: () => sendsQuery(plan), apply: (v, r) => ((v.sendsSent += n(r.sent)), (v.sendFailures += n(r.failed))) },
  ];
  const parts = all.filter((p) => sources.has(p.source));
  const cell = (bucket: string, key: string) => {
    const id = cellKey(bucket, key);
    let v = out.get(id);
    if (!v) out.set(id, (v = zeroRaw()));
    return v;
  };
  const merge = (p: (typeof all)[number], rows: Row[]) => {
    for (const r of rows) {
      if (!keyedByMask(plan, p.source)) {
        p.apply(cell(String(r.bt), String(r.k)), r);
        continue;
      }
      const mask = String(r.k);
      for (let i = 0; i < plan.segments.length; i++) if (mask[i] === "1") p.apply(cell(String(r.bt), plan.segments[i]!.id), r);
    }
  };
  if (!needsCalendar(plan)) {
    // METRICS_PARALLEL_STATEMENTS lanes take the statements in order, the facts (the longest) first:
    // on a server with as many cores, more statements at once only share the cores and slow each
    // other down (measured on two cores: 0.66 s for trends by week and segment with two lanes, 0.80 s
    // with all six statements at once). The joined facts' repeat test must hash-join (factsQuery).
    const queue = [...parts];
    const lane = async () => {
      for (let p = queue.shift(); p; p = queue.shift()) merge(p, await run(ctx, p.q(), { hashJoins: p.source === "facts" && joinedFacts(plan) }));
    };
    await Promise.all(Array.from({ length: Math.min(ctx.deps.config.METRICS_PARALLEL_STATEMENTS, parts.length) }, lane));
    return out;
  }
  // The calendar recipients are a materialized CTE, which the planner has no statistics for: it
  // guesses 200 rows and probes indexes once per recipient, 100,000 times for a large calendar
  // (seconds). Hash joins cost a few tens of milliseconds more for a small calendar and are always
  // bounded by the period's rows: the statement runs without nested loops or merge joins.
  const ctes = parts.map((p, i) => sql`${sql.raw(`q${i}`)} as (${p.q()})`);
  const union = sql.join(
    parts.map((_, i) => sql`select ${i}::int as i, to_jsonb(${sql.raw(`q${i}`)}.*) as r from ${sql.raw(`q${i}`)}`),
    sql` union all `,
  );
  const rows = await run(ctx, sql`with ${calendarRecipients(plan)}, ${sql.join(ctes, sql`, `)} ${union}`, { hashJoins: true });
  for (const row of rows as unknown as { i: number; r: Row | string }[]) {
    const r = typeof row.r === "string" ? (JSON.parse(row.r) as Row) : row.r;
    merge(parts[Number(row.i)]!, [r]);
  }
  return out;
}

/** Display names of the dimension's keys (clinic, staff, segment, calendar names; a channel code's name, else the source itself). */
export async function dimensionLabels(ctx: Ctx, plan: Plan, keys: readonly string[]): Promise<Map<string, string>> {
  const ids = [...new Set(keys.filter((k) => k !== ""))];
  const out = new Map<string, string>();
  if (!ids.length || plan.by === "none") return out;
  const T = ctx.tenantId;
  const list = sql.join(ids.map((k) => sql`${k}`), sql`, `);
  let q: SQL | null = null;
  if (plan.by === "clinic") q = sql`select id::text as k, name from clinics where tenant_id = ${T}::uuid and id::text in (${list})`;
  if (plan.by === "consultant") q = sql`select id::text as k, name from staff where tenant_id = ${T}::uuid and id::text in (${list})`;
  if (plan.by === "calendar") q = sql`select id::text as k, name from calendars where tenant_id = ${T}::uuid and id::text in (${list})`;
  if (plan.by === "channel") q = sql`select state as k, name from wecom_channels where tenant_id = ${T}::uuid and state in (${list})`;
  if (plan.by === "segment") for (const g of plan.segments) out.set(g.id, g.name);
  if (q) for (const r of rowsOf<{ k: string; name: string }>(await dbOf(ctx).execute(q))) out.set(r.k, r.name);
  if (plan.by === "channel") for (const k of ids) if (!out.has(k)) out.set(k, k);
  return out;
}

