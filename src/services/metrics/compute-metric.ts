import type { FactKind } from "../../db/schema/metrics";
import { ValidationError, zodIssues } from "../../errors";
import { requirePermission, type Ctx } from "../context";
import { bucketStarts, cellKey, computeRaw, funnelMetrics, resolvePlan, zeroRaw, type Raw, type Source } from "./engine";
import { ComputeMetricInput, type MetricKey, type MetricPoint, type MetricResult } from "./schemas";

type Point = Omit<MetricPoint, "bucket">;

const count = (n: number): Point => ({ numerator: n, denominator: null, value: n });
const ratio = (numerator: number, denominator: number): Point => ({ numerator, denominator, value: denominator > 0 ? numerator / denominator : null });

/** What each metric reads (only those statements run) and how its point is made. */
const DEFS: Record<MetricKey, { sources: Source[]; kinds?: FactKind[]; point: (r: Raw) => Point }> = {
  appointments: { sources: ["facts"], kinds: ["appointment"], point: (r) => count(r.appointments) },
  visits: { sources: ["facts"], kinds: ["visit"], point: (r) => count(r.visits) },
  visit_rate: { sources: ["facts"], kinds: ["appointment", "visit"], point: (r) => ratio(r.visits, r.appointments) },
  consultations: { sources: ["facts"], kinds: ["consultation"], point: (r) => count(r.consultations) },
  converted: { sources: ["facts"], kinds: ["consultation"], point: (r) => count(r.converted) },
  deal_rate: { sources: ["facts"], kinds: ["consultation"], point: (r) => ratio(r.converted, r.consultations) },
  follow_ups_due: { sources: ["followUps"], point: (r) => count(r.followUpsDue) },
  follow_ups_done: { sources: ["followUps"], point: (r) => count(r.followUpsDone) },
  follow_up_rate: { sources: ["followUps"], point: (r) => ratio(r.followUpsDone, r.followUpsDue) },
  buyers: { sources: ["facts"], kinds: ["purchase"], point: (r) => count(r.buyers) },
  repeat_buyers: { sources: ["facts"], kinds: ["purchase"], point: (r) => count(r.repeatBuyers) },
  repeat_rate: { sources: ["facts"], kinds: ["purchase"], point: (r) => ratio(r.repeatBuyers, r.buyers) },
  new_contacts: { sources: ["contacts"], point: (r) => count(r.newContacts) },
  referred_contacts: { sources: ["contacts"], point: (r) => count(r.referredContacts) },
  referral_rate: { sources: ["contacts"], point: (r) => ratio(r.referredContacts, r.newContacts) },
  nps: { sources: ["facts"], kinds: ["survey"], point: (r) => ({ numerator: r.promoters - r.detractors, denominator: r.responses, value: funnelMetrics(r).nps.value }) },
  revenue: { sources: ["facts"], kinds: ["purchase", "refund"], point: (r) => count(funnelMetrics(r).revenue.net) },
  lead_response_median_minutes: { sources: ["response"], point: (r) => ({ numerator: null, denominator: r.responded, value: funnelMetrics(r).leadResponse.medianMinutes }) },
  lead_response_p90_minutes: { sources: ["response"], point: (r) => ({ numerator: null, denominator: r.responded, value: funnelMetrics(r).leadResponse.p90Minutes }) },
  sla_breaches: { sources: ["sla"], point: (r) => count(r.slaBreaches) },
  sla_breach_rate: { sources: ["sla"], point: (r) => ratio(r.slaBreaches, r.slaDeadlines) },
  send_failures: { sources: ["sends"], point: (r) => count(r.sendFailures) },
  send_failure_rate: { sources: ["sends"], point: (r) => ratio(r.sendFailures, r.sendsSent + r.sendFailures) },
};

/**
 * One metric over a period and scope, as one point or a series of day/week/month buckets (every
 * bucket present): what anomaly alerts and any other caller reuse instead of the whole funnel.
 * Runs only the statement the metric needs. Definitions: docs/metrics.md.
 */
export async function computeMetric({ ctx, input }: { ctx: Ctx; input: ComputeMetricInput }): Promise<MetricResult> {
  requirePermission(ctx, "metrics:read");
  const p = ComputeMetricInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const { metric, from, to, period, scope } = p.data;
  const def = DEFS[metric];
  const plan = await resolvePlan(ctx, { from, to, period: period ?? null, by: "none", scope });
  const raw = await computeRaw(ctx, plan, new Set(def.sources), def.kinds);
  const points = period
    ? bucketStarts(plan.fromDay, plan.toDay, period).map((bucket) => ({ bucket, ...def.point(raw.get(cellKey(bucket, "")) ?? zeroRaw()) }))
    : [{ bucket: plan.fromDay, ...def.point(raw.get(cellKey("", "")) ?? zeroRaw()) }];
  return { metric, from: plan.fromDay, to: plan.toDay, timezone: plan.tz, period: period ?? null, points };
}
