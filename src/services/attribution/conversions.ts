import { sql, type SQL } from "drizzle-orm";

/**
 * What a conversion (成交) is, for attribution and the alert series (docs/attribution-alerts.md):
 * a consultation fact with outcome `converted`, or a purchase fact — except a purchase within
 * CONVERSION_DEDUPE after a converted consultation of the same contact, which is that deal
 * recorded twice (the consultant's outcome and the till's purchase), not a second conversion.
 * The conversion's revenue is its own amount (0 when the outcome was recorded without one).
 * Refunds do not undo conversions.
 */
export const CONVERSION_DEDUPE_HOURS = 24;

/** SQL: the metric_facts row aliased `f` is a conversion. Uses the (tenant, contact, time) index for the purchase check. */
export function isConversion(f = "f"): SQL {
  const a = sql.raw(f);
  return sql`(${a}.kind = 'consultation' and ${a}.outcome = 'converted'
    or ${a}.kind = 'purchase' and not exists (
      select 1 from metric_facts d
      where d.tenant_id = ${a}.tenant_id and d.contact_id = ${a}.contact_id and d.kind = 'consultation' and d.outcome = 'converted'
        and d.occurred_at <= ${a}.occurred_at and d.occurred_at >= ${a}.occurred_at - ${sql.raw(`interval '${CONVERSION_DEDUPE_HOURS} hours'`)}))`;
}
