import { and, asc, eq, gte, lt } from "drizzle-orm";
import { z } from "zod";
import { segments, segmentSnapshots } from "../../db/schema/index";
import { addDays } from "../../domain/delivery/schedule";
import { localDate } from "../../domain/leads/sop";
import { ValidationError, zodIssues } from "../../errors";
import { dbOf, requirePermission, type Ctx } from "../context";
import { tenantTimeZone } from "../leads/internal";
import { MAX_PERIOD_DAYS } from "./schemas";

export const SegmentSizesInput = z
  .object({
    /** First local day, inclusive (default: 30 days before `to`). */
    from: z.iso.date().optional(),
    /** The local day after the period (default: tomorrow, so the period ends with today). */
    to: z.iso.date().optional(),
  })
  .refine((v) => !v.from || !v.to || v.from < v.to, { path: ["from"], message: "must be before to" });

export interface SegmentSizeSeries {
  from: string;
  to: string;
  /** Every segment of the tenant, by name, with its nightly snapshots in the period, oldest first (days without one are absent). */
  segments: { id: string; name: string; sizes: { day: string; size: number }[] }[];
}

/**
 * The tenant's segments' sizes over time (the nightly segment_snapshots) for the dashboard: one
 * query, no live counting. Sizes are aggregates, so metrics:read is enough (as the funnel grouped by
 * segment); the segments themselves stay with segments:read.
 */
export async function segmentSizeSeries({ ctx, input }: { ctx: Ctx; input?: unknown }): Promise<SegmentSizeSeries> {
  requirePermission(ctx, "metrics:read");
  const p = SegmentSizesInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const db = dbOf(ctx);
  const to = p.data.to ?? addDays(localDate(ctx.deps.now(), await tenantTimeZone(db, ctx.tenantId)), 1);
  const from = p.data.from ?? addDays(to, -30);
  if (from >= to) throw new ValidationError([{ field: "from", message: "must be before to" }]);
  if (addDays(from, MAX_PERIOD_DAYS) < to) throw new ValidationError([{ field: "from", message: `the period is longer than ${MAX_PERIOD_DAYS} days` }]);
  const [list, snaps] = await Promise.all([
    db.select({ id: segments.id, name: segments.name }).from(segments).where(eq(segments.tenantId, ctx.tenantId)).orderBy(asc(segments.name), asc(segments.id)),
    db
      .select({ segmentId: segmentSnapshots.segmentId, day: segmentSnapshots.day, size: segmentSnapshots.size })
      .from(segmentSnapshots)
      .where(and(eq(segmentSnapshots.tenantId, ctx.tenantId), gte(segmentSnapshots.day, from), lt(segmentSnapshots.day, to)))
      .orderBy(asc(segmentSnapshots.day)),
  ]);
  const by = new Map(list.map((s) => [s.id, { ...s, sizes: [] as { day: string; size: number }[] }]));
  for (const s of snaps) by.get(s.segmentId)?.sizes.push({ day: String(s.day), size: s.size });
  return { from, to, segments: [...by.values()] };
}
