import { eq, sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import { rowsOf, type DbOrTx } from "../../db/client";
import { tenants } from "../../db/schema/index";
import { localDayBounds } from "../../domain/leads/sop";
import { ValidationError, zodIssues } from "../../errors";
import { loadAnalyticsSettings } from "../analytics/settings";
import { analyticsStatement } from "../analytics/statement";
import { dbOf, requirePermission, type Ctx } from "../context";
import { isConversion } from "./conversions";

/**
 * Attribution of conversions to content touches (docs/attribution-alerts.md). For each conversion
 * (conversions.ts) the touches of the same contact in [conversion - windowDays, conversion] are:
 * - send_click: a tracked-link click on a calendar send (the article_read the click stored, source
 *   `link`, whose sendId is a send of the tenant): credit to the send's calendar entry and post;
 * - article_read: any other read (links outside calendars, reads reported through the API): credit
 *   to the article id;
 * - livestream: livestream_attended: credit to the live id.
 * Dwell-time reports of a click (via link-dwell) are the same touch, not another. Last touch gives
 * the whole conversion to the latest touch; linear gives each touch 1/n. Revenue is credited in the
 * same shares. A touch can count for several conversions of its contact; a conversion without
 * touches is unattributed. The work is bounded by the conversions asked about: each one reads its
 * contact's events in the window through events_tenant_contact_time_idx.
 */

export const ATTRIBUTION_MODELS = ["last_touch", "linear"] as const;
export type AttributionModel = (typeof ATTRIBUTION_MODELS)[number];
export const ATTRIBUTION_BY = ["entry", "calendar", "content", "consultant"] as const;
export type AttributionBy = (typeof ATTRIBUTION_BY)[number];
export const TOUCH_KINDS = ["send_click", "article_read", "livestream"] as const;
export type TouchKind = (typeof TOUCH_KINDS)[number];

const instantOrDate = z.union([z.iso.date(), z.iso.datetime({ offset: true })]);

export const AttributionInput = z
  .object({
    /** A local date (YYYY-MM-DD, the tenant's time zone) or an ISO date-time; default 30 days before `to`. */
    from: instantOrDate.optional(),
    /** A local date (from its start) or an ISO date-time, excluded either way (as in /v1/metrics); default now. */
    to: instantOrDate.optional(),
    model: z.enum(ATTRIBUTION_MODELS).default("last_touch"),
    by: z.enum(ATTRIBUTION_BY).default("entry"),
    /** Overrides the tenant's attribution window (analytics settings, default 30 days). */
    windowDays: z.coerce.number().int().min(1).max(365).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(200),
  });
export type AttributionInput = z.infer<typeof AttributionInput>;

export interface Credit {
  conversions: number;
  revenue: number;
}

export interface AttributionItem extends Credit {
  /** Entry, calendar, `kind:id` of the content, or staff id (null: conversions without a consultant). */
  key: string | null;
  label: string | null;
  /** Touches in the windows of the conversions credited, and the converting contacts behind them. */
  touches: number;
  contacts: number;
  kind?: TouchKind;
  calendarId?: string | null;
  calendarName?: string | null;
  entryId?: string | null;
  entryKey?: string | null;
  postId?: string | null;
  /** by=consultant: all the consultant's conversions, those with no touch, and the credit by touch kind. */
  totalConversions?: number;
  totalRevenue?: number;
  unattributedConversions?: number;
  byKind?: Record<TouchKind, Credit>;
}

export interface AttributionResult {
  from: string;
  to: string;
  model: AttributionModel;
  by: AttributionBy;
  windowDays: number;
  /** Every conversion in the period, those with at least one touch, those with none. */
  conversions: Credit;
  attributed: Credit;
  unattributed: Credit;
  items: AttributionItem[];
  /** by=entry or calendar: credit that went to touches outside calendars (articles, livestreams, other links). */
  outsideCalendars?: Credit;
}

const UUID_RE = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/**
 * The shared CTEs: conv (conversions chosen by `candidates`, a query over metric_facts aliased f),
 * touch (one row per conversion and touch) and credit (both models' shares per touch).
 */
function creditCtes(tenantId: string, windowDays: number, candidates: SQL): SQL {
  return sql`
    conv as materialized (
      select f.event_id as conv_id, f.contact_id, f.occurred_at, f.staff_id, coalesce(f.amount, 0)::float8 as amount
      from (${candidates}) f
      where ${isConversion("f")}
    ),
    touch as materialized (
      select c.conv_id, c.staff_id, c.amount, c.contact_id, t.*
      from conv c
      cross join lateral (
        select e.id as touch_id, e.occurred_at as at,
          case when e.type = 'livestream_attended' then 'livestream' when s.id is not null then 'send_click' else 'article_read' end as kind,
          s.entry_id, s.calendar_id, s.post_id,
          case when e.type = 'livestream_attended' then left(coalesce(e.payload ->> 'liveId', ''), 200)
            when s.id is not null then coalesce(s.entry_id, s.post_id)::text
            else left(coalesce(e.payload ->> 'articleId', ''), 200) end as ref,
          case when e.type = 'livestream_attended' then left(coalesce(e.payload ->> 'title', e.payload ->> 'liveId'), 200)
            when s.id is null then left(coalesce(e.payload ->> 'topic', e.payload ->> 'articleId'), 200) end as label
        from events e
        left join sends s on e.source = 'link' and s.tenant_id = ${tenantId}::uuid
          and s.id = case when e.payload ->> 'sendId' ~ ${UUID_RE} then (e.payload ->> 'sendId')::uuid end
        where e.tenant_id = ${tenantId}::uuid and e.contact_id = c.contact_id
          and e.occurred_at <= c.occurred_at and e.occurred_at >= c.occurred_at - make_interval(days => ${windowDays}::int)
          and e.type in ('article_read', 'livestream_attended')
          and coalesce(e.payload ->> 'via', '') <> 'link-dwell'
      ) t
    ),
    touched as (select distinct conv_id from touch),
    credit as (
      select touch.*,
        case when row_number() over (partition by conv_id order by at desc, touch_id desc) = 1 then 1.0 else 0.0 end::float8 as lt,
        (1.0 / count(*) over (partition by conv_id))::float8 as ln
      from touch
    )`;
}

interface Raw {
  key: string | null;
  label: string | null;
  kind: TouchKind | null;
  calendar_id: string | null;
  calendar_name: string | null;
  entry_id: string | null;
  entry_key: string | null;
  post_id: string | null;
  lt: number;
  ln: number;
  lt_rev: number;
  ln_rev: number;
  touches: number;
  contacts: number;
  total_n?: number;
  total_rev?: number;
  unattributed_n?: number;
  by_kind?: Record<string, { lt: number; ln: number; lt_rev: number; ln_rev: number }> | null;
}

/** Credit sums for a group of `credit` rows, both models. */
const SUMS = sql`sum(lt)::float8 as lt, sum(ln)::float8 as ln, sum(lt * amount)::float8 as lt_rev, sum(ln * amount)::float8 as ln_rev, count(*)::int as touches, count(distinct contact_id)::int as contacts`;

function groupQuery(by: AttributionBy, tenantId: string): SQL {
  if (by === "entry") {
    return sql`
      select g.entry_id::text as key, ce.key as label, 'send_click' as kind, g.calendar_id, cal.name as calendar_name, g.entry_id, ce.key as entry_key, ce.post_id, g.lt, g.ln, g.lt_rev, g.ln_rev, g.touches, g.contacts
      from (select entry_id, calendar_id, ${SUMS} from credit where kind = 'send_click' and entry_id is not null group by entry_id, calendar_id) g
      left join calendar_entries ce on ce.tenant_id = ${tenantId}::uuid and ce.id = g.entry_id
      left join calendars cal on cal.tenant_id = ${tenantId}::uuid and cal.id = g.calendar_id`;
  }
  if (by === "calendar") {
    return sql`
      select g.calendar_id::text as key, cal.name as label, 'send_click' as kind, g.calendar_id, cal.name as calendar_name, null::uuid as entry_id, null as entry_key, null::uuid as post_id, g.lt, g.ln, g.lt_rev, g.ln_rev, g.touches, g.contacts
      from (select calendar_id, ${SUMS} from credit where kind = 'send_click' and calendar_id is not null group by calendar_id) g
      left join calendars cal on cal.tenant_id = ${tenantId}::uuid and cal.id = g.calendar_id`;
  }
  if (by === "content") {
    return sql`
      select g.kind || ':' || g.ref as key, coalesce(ce.key, g.label) as label, g.kind, g.calendar_id, cal.name as calendar_name, g.entry_id, ce.key as entry_key, g.post_id, g.lt, g.ln, g.lt_rev, g.ln_rev, g.touches, g.contacts
      from (select kind, ref, max(label) as label, (array_agg(calendar_id))[1] as calendar_id, (array_agg(entry_id))[1] as entry_id, (array_agg(post_id))[1] as post_id, ${SUMS} from credit group by kind, ref) g
      left join calendar_entries ce on ce.tenant_id = ${tenantId}::uuid and ce.id = g.entry_id
      left join calendars cal on cal.tenant_id = ${tenantId}::uuid and cal.id = g.calendar_id`;
  }
  // consultant: the conversion's staff_id, with every conversion counted (touched or not).
  return sql`
    select s.staff_id::text as key, st.name as label, null as kind, null::uuid as calendar_id, null as calendar_name, null::uuid as entry_id, null as entry_key, null::uuid as post_id,
      coalesce(a.lt, 0)::float8 as lt, coalesce(a.ln, 0)::float8 as ln, coalesce(a.lt_rev, 0)::float8 as lt_rev, coalesce(a.ln_rev, 0)::float8 as ln_rev,
      coalesce(a.touches, 0)::int as touches, coalesce(a.contacts, 0)::int as contacts,
      s.total_n, s.total_rev, (s.total_n - s.attributed_n)::int as unattributed_n, bk.by_kind
    from (
      select c.staff_id, count(*)::int as total_n, coalesce(sum(c.amount), 0)::float8 as total_rev, count(tc.conv_id)::int as attributed_n
      from conv c left join touched tc on tc.conv_id = c.conv_id group by c.staff_id
    ) s
    left join (select staff_id, ${SUMS} from credit group by staff_id) a on a.staff_id is not distinct from s.staff_id
    left join (
      select staff_id, jsonb_object_agg(kind, jsonb_build_object('lt', lt, 'ln', ln, 'lt_rev', lt_rev, 'ln_rev', ln_rev)) as by_kind
      from (select staff_id, kind, sum(lt)::float8 as lt, sum(ln)::float8 as ln, sum(lt * amount)::float8 as lt_rev, sum(ln * amount)::float8 as ln_rev from credit group by staff_id, kind) x
      group by staff_id
    ) bk on bk.staff_id is not distinct from s.staff_id
    left join staff st on st.tenant_id = ${tenantId}::uuid and st.id = s.staff_id`;
}

const r4 = (x: number) => Math.round(x * 10_000) / 10_000;
const r2 = (x: number) => Math.round(x * 100) / 100;

function credit(model: AttributionModel, r: { lt: number; ln: number; lt_rev: number; ln_rev: number }): Credit {
  return model === "last_touch" ? { conversions: r4(Number(r.lt)), revenue: r2(Number(r.lt_rev)) } : { conversions: r4(Number(r.ln)), revenue: r2(Number(r.ln_rev)) };
}

/** The period's instants: local dates are days in the tenant's time zone, `to` excluded as in /v1/metrics. */
function period(input: AttributionInput, timeZone: string, now: Date): { from: Date; to: Date } {
  const to = input.to === undefined ? now : input.to.length === 10 ? localDayBounds(input.to, timeZone).start : new Date(input.to);
  const from = input.from === undefined ? new Date(to.getTime() - 30 * 86_400_000) : input.from.length === 10 ? localDayBounds(input.from, timeZone).start : new Date(input.from);
  if (from >= to) throw new ValidationError([{ field: "from", message: "must be before to" }]);
  if (to.getTime() - from.getTime() > 367 * 86_400_000) throw new ValidationError([{ field: "from", message: "the period is at most 366 days" }]);
  return { from, to };
}

/** One part's answer: its totals, the credit outside calendars, and every group (no order, no limit). */
interface PartRow {
  totals: { n: number; rev: number; an: number; arev: number };
  outside: { lt: number; ln: number; lt_rev: number; ln_rev: number };
  items: Raw[] | null;
}

/**
 * Bounds splitting the contacts' id space into `n` ranges of about equal size (ids are random
 * UUIDs): [lo, hi) per part, null for open ends.
 */
export function contactRanges(n: number): [string | null, string | null][] {
  const cut = (k: number) => `${Math.floor((k * 2 ** 32) / n).toString(16).padStart(8, "0")}-0000-0000-0000-000000000000`;
  return Array.from({ length: n }, (_, k) => [k === 0 ? null : cut(k), k === n - 1 ? null : cut(k + 1)]);
}

const NUMERIC: readonly (keyof Raw)[] = ["lt", "ln", "lt_rev", "ln_rev", "touches", "contacts", "total_n", "total_rev", "unattributed_n"];

/** Add up the parts' groups by key: every figure is a sum, contacts too (a contact is in one part only). */
function mergeGroups(parts: readonly (Raw[] | null)[]): Raw[] {
  const out = new Map<string, Raw>();
  for (const items of parts) {
    for (const r of items ?? []) {
      const id = r.key ?? "\u0000";
      const m = out.get(id);
      if (!m) {
        out.set(id, { ...r, by_kind: r.by_kind ? structuredClone(r.by_kind) : r.by_kind });
        continue;
      }
      for (const f of NUMERIC) if (r[f] !== undefined) (m as unknown as Record<string, number>)[f] = Number(m[f] ?? 0) + Number(r[f]);
      m.label ??= r.label;
      if (r.by_kind) {
        m.by_kind ??= {};
        for (const [kind, v] of Object.entries(r.by_kind)) {
          const k = (m.by_kind[kind] ??= { lt: 0, ln: 0, lt_rev: 0, ln_rev: 0 });
          k.lt += v.lt;
          k.ln += v.ln;
          k.lt_rev += v.lt_rev;
          k.ln_rev += v.ln_rev;
        }
      }
    }
  }
  return [...out.values()];
}

/**
 * GET /v1/attribution: conversions in the period credited to content by the model, grouped by `by`.
 * Each conversion reads its contact's events in the window (an index probe each: tens of thousands
 * in a month at a million contacts), so the conversions are split by contact into
 * METRICS_PARALLEL_STATEMENTS parts, run side by side (JIT off, sorts in memory) and added up: every
 * figure is a sum, and a contact's conversions all fall in one part.
 */
export async function attribution({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<AttributionResult> {
  requirePermission(ctx, "metrics:read");
  const p = AttributionInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const db = dbOf(ctx);
  const [t] = await db.select({ tz: tenants.timezone }).from(tenants).where(eq(tenants.id, ctx.tenantId));
  const { from, to } = period(p.data, t?.tz ?? "Asia/Shanghai", ctx.deps.now());
  const windowDays = p.data.windowDays ?? (await loadAnalyticsSettings(db, ctx.tenantId)).attribution.windowDays;
  const { model, by } = p.data;
  const part = async ([lo, hi]: [string | null, string | null]): Promise<PartRow> => {
    const candidates = sql`
      select * from metric_facts
      where tenant_id = ${ctx.tenantId}::uuid and kind in ('consultation', 'purchase')
        and occurred_at >= ${from.toISOString()}::timestamptz and occurred_at < ${to.toISOString()}::timestamptz
        ${lo ? sql`and contact_id >= ${lo}::uuid` : sql``} ${hi ? sql`and contact_id < ${hi}::uuid` : sql``}`;
    const q = sql`
      with ${creditCtes(ctx.tenantId, windowDays, candidates)}
      select
        (select jsonb_build_object('n', count(*), 'rev', coalesce(sum(c.amount), 0), 'an', count(tc.conv_id), 'arev', coalesce(sum(c.amount) filter (where tc.conv_id is not null), 0))
          from conv c left join touched tc on tc.conv_id = c.conv_id) as totals,
        (select jsonb_build_object('lt', coalesce(sum(lt), 0), 'ln', coalesce(sum(ln), 0), 'lt_rev', coalesce(sum(lt * amount), 0), 'ln_rev', coalesce(sum(ln * amount), 0))
          from credit where not (kind = 'send_click' and calendar_id is not null)) as outside,
        (select jsonb_agg(to_jsonb(g)) from (${groupQuery(by, ctx.tenantId)}) g) as items`;
    return analyticsStatement(ctx, async (tx) => rowsOf<PartRow>(await tx.execute(q))[0]!);
  };
  const parts: PartRow[] = [];
  // In a caller's transaction the parts share its one connection: one after the other.
  if (ctx.tx) for (const r of contactRanges(1)) parts.push(await part(r));
  else parts.push(...(await Promise.all(contactRanges(ctx.deps.config.METRICS_PARALLEL_STATEMENTS).map(part))));
  const sum = <K extends string>(pick: (r: PartRow) => Record<K, number>, keys: readonly K[]) =>
    Object.fromEntries(keys.map((k) => [k, parts.reduce((a, r) => a + Number(pick(r)[k] ?? 0), 0)])) as Record<K, number>;
  const totals = sum((r) => r.totals, ["n", "rev", "an", "arev"] as const);
  const outside = sum((r) => r.outside, ["lt", "ln", "lt_rev", "ln_rev"] as const);
  // Best first by the model's credit as shown (rounded: linear shares add up to whole conversions
  // only up to float noise), then its revenue, then the key (nulls last).
  const ranked = mergeGroups(parts.map((r) => r.items)).map((r) => ({ r, shown: credit(model, r) }));
  ranked.sort((a, b) => b.shown.conversions - a.shown.conversions || b.shown.revenue - a.shown.revenue || (a.r.key === null ? 1 : b.r.key === null ? -1 : a.r.key < b.r.key ? -1 : a.r.key > b.r.key ? 1 : 0));
  const items = ranked.slice(0, p.data.limit).map(({ r }): AttributionItem => {
    const base: AttributionItem = { key: r.key, label: r.label, ...credit(model, r), touches: r.touches, contacts: r.contacts };
    if (by === "consultant") {
      const byKind = Object.fromEntries(TOUCH_KINDS.map((k) => [k, r.by_kind?.[k] ? credit(model, r.by_kind[k]) : { conversions: 0, revenue: 0 }])) as Record<TouchKind, Credit>;
      return { ...base, totalConversions: r.total_n ?? 0, totalRevenue: r2(Number(r.total_rev ?? 0)), unattributedConversions: r.unattributed_n ?? 0, byKind };
    }
    return { ...base, kind: r.kind ?? undefined, calendarId: r.calendar_id, calendarName: r.calendar_name, entryId: r.entry_id, entryKey: r.entry_key, postId: r.post_id } as AttributionItem;
  });
  return {
    from: from.toISOString(),
    to: to.toISOString(),
    model,
    by,
    windowDays,
    conversions: { conversions: totals.n, revenue: r2(totals.rev) },
    attributed: { conversions: totals.an, revenue: r2(totals.arev) },
    unattributed: { conversions: totals.n - totals.an, revenue: r2(totals.rev - totals.arev) },
    items,
    ...(by === "entry" || by === "calendar" ? { outsideCalendars: credit(model, outside) } : {}),
  };
}

export interface EntryCredit {
  lastTouchConversions: number;
  linearConversions: number;
  lastTouchRevenue: number;
  linearRevenue: number;
}

/**
 * Credit per entry of one calendar, both models, for the calendar report: the conversions of the
 * contacts who clicked a link of the calendar's sends, from their first click on, attributed over
 * all their touches (another calendar's or an article's touch takes its share), keeping the shares
 * of this calendar's entries.
 */
export async function calendarEntryCredit(db: DbOrTx, tenantId: string, calendarId: string): Promise<{ windowDays: number; entries: Map<string, EntryCredit> }> {
  const windowDays = (await loadAnalyticsSettings(db, tenantId)).attribution.windowDays;
  const candidates = sql`
    select f.* from (
      select l.contact_id, min(coalesce(l.first_click_at, s.sent_at, s.scheduled_at)) as since
      from sends s join tracked_links l on l.send_id = s.id and l.tenant_id = ${tenantId}::uuid
      where s.tenant_id = ${tenantId}::uuid and s.calendar_id = ${calendarId}::uuid and l.clicks > 0 and l.contact_id is not null
      group by l.contact_id
    ) k
    join metric_facts f on f.tenant_id = ${tenantId}::uuid and f.contact_id = k.contact_id and f.occurred_at >= k.since and f.kind in ('consultation', 'purchase')`;
  const rows = rowsOf<{ entry_id: string; lt: number; ln: number; lt_rev: number; ln_rev: number }>(
    await db.execute(sql`
      with ${creditCtes(tenantId, windowDays, candidates)}
      select entry_id, ${SUMS} from credit where kind = 'send_click' and calendar_id = ${calendarId}::uuid and entry_id is not null group by entry_id`),
  );
  return {
    windowDays,
    entries: new Map(rows.map((r) => [r.entry_id, { lastTouchConversions: r4(Number(r.lt)), linearConversions: r4(Number(r.ln)), lastTouchRevenue: r2(Number(r.lt_rev)), linearRevenue: r2(Number(r.ln_rev)) }])),
  };
}
