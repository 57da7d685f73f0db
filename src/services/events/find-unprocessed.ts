import { and, asc, isNull, lt } from "drizzle-orm";
import type { Db } from "../../db/client";
import { events } from "../../db/schema/index";

/**
 * Events stored but not processed within the grace period, across tenants. Used only by the
 * sweeper (a system job): it returns ids to re-enqueue, never tenant data.
 */
export async function findUnprocessedEvents(
  db: Db,
  { olderThan, limit }: { olderThan: Date; limit: number },
): Promise<{ tenantId: string; id: string }[]> {
  return db
    .select({ tenantId: events.tenantId, id: events.id })
    .from(events)
    .where(and(isNull(events.processedAt), lt(events.receivedAt, olderThan)))
    .orderBy(asc(events.receivedAt))
    .limit(limit);
}
