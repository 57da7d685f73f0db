import { desc, eq } from "drizzle-orm";
import { segmentSnapshots } from "../../db/schema/index";
import { dbOf, requirePermission, type Ctx } from "../context";

/**
 * The latest daily snapshot of each of the tenant's segments (the nightly size), by segment id, so
 * a list can show how far the live count moved since. Segments never snapshotted are absent.
 */
export async function latestSegmentSnapshots({ ctx }: { ctx: Ctx }): Promise<Record<string, { day: string; size: number }>> {
  requirePermission(ctx, "segments:read");
  const rows = await dbOf(ctx)
    .selectDistinctOn([segmentSnapshots.segmentId], { segmentId: segmentSnapshots.segmentId, day: segmentSnapshots.day, size: segmentSnapshots.size })
    .from(segmentSnapshots)
    .where(eq(segmentSnapshots.tenantId, ctx.tenantId))
    .orderBy(segmentSnapshots.segmentId, desc(segmentSnapshots.day));
  return Object.fromEntries(rows.map((r) => [r.segmentId, { day: String(r.day), size: r.size }]));
}
