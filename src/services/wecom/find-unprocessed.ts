import { and, asc, isNull, lt } from "drizzle-orm";
import type { Db } from "../../db/client";
import { wecomCallbacks } from "../../db/schema/index";

/** Stored callbacks not applied within the grace period, across tenants (ids only, for the sweeper). */
export async function findUnprocessedCallbacks(db: Db, { olderThan, limit }: { olderThan: Date; limit: number }): Promise<{ tenantId: string; id: string }[]> {
  return db
    .select({ tenantId: wecomCallbacks.tenantId, id: wecomCallbacks.id })
    .from(wecomCallbacks)
    .where(and(isNull(wecomCallbacks.processedAt), lt(wecomCallbacks.receivedAt, olderThan)))
    .orderBy(asc(wecomCallbacks.receivedAt))
    .limit(limit);
}
