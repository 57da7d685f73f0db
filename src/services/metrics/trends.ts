import { ValidationError, zodIssues } from "../../errors";
import { requirePermission, type Ctx } from "../context";
import { bucketStarts, cellKey, computeRaw, dimensionLabels, funnelMetrics, resolvePlan, zeroRaw } from "./engine";
import { byLabel, FUNNEL_SOURCES } from "./funnel";
import { TrendsInput, type TrendsResult } from "./schemas";

/**
 * The funnel per day, week or month bucket (local, tenant time zone), optionally per dimension
 * value; every bucket is present, filled with zeros when nothing happened.
 */
export async function metricsTrends({ ctx, input }: { ctx: Ctx; input?: unknown }): Promise<TrendsResult> {
  requirePermission(ctx, "metrics:read");
  const p = TrendsInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const { from, to, by, period, ...scope } = p.data;
  const plan = await resolvePlan(ctx, { from, to, period, by, scope });
  const raw = await computeRaw(ctx, plan, FUNNEL_SOURCES);
  const buckets = bucketStarts(plan.fromDay, plan.toDay, period);
  const keys = by === "none" ? [""] : [...new Set([...raw.keys()].map((k) => k.split("\u0000")[1]!))];
  const labels = await dimensionLabels(ctx, plan, keys);
  const named = keys.map((k) => ({ key: k || null, label: labels.get(k) ?? null })).sort(byLabel);
  const series = buckets.flatMap((bucket) => named.map((n) => ({ bucket, ...n, metrics: funnelMetrics(raw.get(cellKey(bucket, n.key ?? "")) ?? zeroRaw()) })));
  return { from: plan.fromDay, to: plan.toDay, timezone: plan.tz, by, period, buckets, series };
}
