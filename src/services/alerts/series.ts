import { sql, type SQL } from "drizzle-orm";
import { rowsOf, type DbOrTx } from "../../db/client";
import type { AlertMetric, Window } from "../../domain/alerts/rules";
import { isConversion } from "../attribution/conversions";

/**
 * The alert metrics over local-day windows (docs/attribution-alerts.md; the definitions match
 * docs/metrics.md), per clinic, in one statement per metric. A window is a local day of the tenant's
 * time zone, optionally cut at a local time ("today so far", and the same hours of earlier days).
 * - deal_rate: converted consultation facts / consultation facts (by the consultation's time);
 * - visit_rate: visit facts / appointment facts (each by its own time);
 * - sla_breaches: lead_sla_breaches by the deadline missed (due_at; clinic: the lead's);
 * - send_failures: sends that ended failed, over_quota or not_friend, by when they ended
 *   (result_at, so a spike shows the day it happens; docs/metrics.md dates its rate by
 *   scheduled_at); clinic: the contact's, else the sender's;
 * - conversions: conversions as attribution counts them (attribution/conversions.ts);
 * - revenue: purchases − refunds, each by its own time (docs/metrics.md).
 * Facts carry the clinic frozen when their event was applied.
 */
export interface SeriesRow {
  key: string;
  clinicId: string | null;
  num: number;
  den: number;
}

function metricQuery(metric: AlertMetric, tenantId: string): SQL {
  const t = sql`${tenantId}::uuid`;
  switch (metric) {
    case "deal_rate":
      return sql`select w.key, f.clinic_id, count(*) filter (where f.outcome = 'converted') as num, count(*) as den
        from w join metric_facts f on f.tenant_id = ${t} and f.kind = 'consultation' and f.occurred_at >= w.s and f.occurred_at < w.e
        group by 1, 2`;
    case "visit_rate":
      return sql`select w.key, f.clinic_id, count(*) filter (where f.kind = 'visit') as num, count(*) filter (where f.kind = 'appointment') as den
        from w join metric_facts f on f.tenant_id = ${t} and f.kind in ('visit', 'appointment') and f.occurred_at >= w.s and f.occurred_at < w.e
        group by 1, 2`;
    case "sla_breaches":
      // Dated by the deadline missed, as docs/metrics.md dates them (the breach is recorded at it, or by the sweep soon after).
      return sql`select w.key, l.clinic_id, count(*) as num, 0 as den
        from w join lead_sla_breaches b on b.tenant_id = ${t} and b.due_at >= w.s and b.due_at < w.e
        left join leads l on l.tenant_id = ${t} and l.id = b.lead_id
        group by 1, 2`;
    case "send_failures":
      return sql`select w.key, coalesce(c.clinic_id, st.clinic_id) as clinic_id, count(*) as num, 0 as den
        from w join sends s on s.tenant_id = ${t} and s.status in ('failed', 'over_quota', 'not_friend')
          and coalesce(s.result_at, s.scheduled_at) >= w.s and coalesce(s.result_at, s.scheduled_at) < w.e
        left join contacts c on c.tenant_id = ${t} and c.id = s.contact_id
        left join staff st on st.tenant_id = ${t} and st.id = s.sender_staff_id
        group by 1, 2`;
    case "conversions":
      return sql`select w.key, f.clinic_id, count(*) as num, 0 as den
        from w join metric_facts f on f.tenant_id = ${t} and f.kind in ('consultation', 'purchase') and f.occurred_at >= w.s and f.occurred_at < w.e
        where ${isConversion("f")}
        group by 1, 2`;
    case "revenue":
      return sql`select w.key, f.clinic_id, coalesce(sum(case when f.kind = 'refund' then -f.amount else f.amount end), 0) as num, 0 as den
        from w join metric_facts f on f.tenant_id = ${t} and f.kind in ('purchase', 'refund') and f.occurred_at >= w.s and f.occurred_at < w.e
        group by 1, 2`;
  }
}

/** The metric's numerator and denominator per window and clinic (windows or clinics with nothing are absent). */
export async function metricSeries(db: DbOrTx, o: { tenantId: string; timeZone: string; metric: AlertMetric; windows: readonly Window[] }): Promise<SeriesRow[]> {
  if (!o.windows.length) return [];
  const json = JSON.stringify(o.windows.map((w) => ({ key: w.key, day: w.day, until: w.until ?? null })));
  const rows = rowsOf<{ key: string; clinic_id: string | null; num: number | string; den: number | string }>(
    await db.execute(sql`
      with w as (
        select x.key, (x.day::date)::timestamp at time zone ${o.timeZone}::text as s,
          case when x.until is null then (x.day::date + 1)::timestamp at time zone ${o.timeZone}::text
            else (x.day::date + x.until::time) at time zone ${o.timeZone}::text end as e
        from jsonb_to_recordset(${json}::jsonb) as x(key text, day text, until text)
      )
      ${metricQuery(o.metric, o.tenantId)}`),
  );
  return rows.map((r) => ({ key: r.key, clinicId: r.clinic_id, num: Number(r.num), den: Number(r.den) }));
}
