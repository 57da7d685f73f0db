import { ValidationError, zodIssues } from "../../errors";
import { requirePermission, type Ctx } from "../context";
import { cellKey, computeRaw, dimensionLabels, funnelMetrics, resolvePlan, zeroRaw, type Source } from "./engine";
import { FunnelInput, type FunnelResult, type FunnelRow } from "./schemas";

export const FUNNEL_SOURCES: ReadonlySet<Source> = new Set(["facts", "followUps", "contacts", "response", "sla"]);

/**
 * The funnel for a period (default: the last 30 local days), optionally grouped by clinic,
 * consultant, channel, segment or calendar and restricted by any of them. Definitions: docs/metrics.md.
 */
export async function metricsFunnel({ ctx, input }: { ctx: Ctx; input?: unknown }): Promise<FunnelResult> {
  requirePermission(ctx, "metrics:read");
  const p = FunnelInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const { from, to, by, ...scope } = p.data;
  const plan = await resolvePlan(ctx, { from, to, period: null, by, scope });
  const raw = await computeRaw(ctx, plan, FUNNEL_SOURCES);
  const keys = by === "none" ? [""] : [...raw.keys()].map((k) => k.split("\u0000")[1]!);
  const labels = await dimensionLabels(ctx, plan, keys);
  const rows: FunnelRow[] = keys.map((k) => ({ key: k || null, label: labels.get(k) ?? null, metrics: funnelMetrics(raw.get(cellKey("", k)) ?? zeroRaw()) }));
  rows.sort(byLabel);
  return { from: plan.fromDay, to: plan.toDay, timezone: plan.tz, by, rows };
}

/** Named rows by name, then unnamed ones (no clinic, no consultant) last. */
export function byLabel(a: { key: string | null; label: string | null }, b: { key: string | null; label: string | null }): number {
  if ((a.key === null) !== (b.key === null)) return a.key === null ? 1 : -1;
  return (a.label ?? a.key ?? "").localeCompare(b.label ?? b.key ?? "", "zh-CN") || (a.key ?? "").localeCompare(b.key ?? "");
}
