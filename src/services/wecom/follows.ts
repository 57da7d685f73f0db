import { sql } from "drizzle-orm";
import type { Tx } from "../../db/client";
import { contactFollows } from "../../db/schema/index";

/** The relation (contact, consultant) is on from `at`, unless WeCom reported its removal later than that. */
export async function upsertFollow(tx: Tx, tenantId: string, contactId: string, userId: string, at: Date, state?: string | null, addWay?: number): Promise<void> {
  const iso = at.toISOString();
  await tx
    .insert(contactFollows)
    .values({ tenantId, contactId, userId: userId.toLowerCase(), state: state ?? null, addWay: addWay ?? null, addedAt: at })
    .onConflictDoUpdate({
      target: [contactFollows.contactId, contactFollows.userId],
      set: {
        addedAt: sql`greatest(${contactFollows.addedAt}, ${iso}::timestamptz)`,
        state: sql`coalesce(excluded.state, ${contactFollows.state})`,
        removedBy: sql`case when ${contactFollows.removedAt} > ${iso}::timestamptz then ${contactFollows.removedBy} else null end`,
        removedAt: sql`case when ${contactFollows.removedAt} > ${iso}::timestamptz then ${contactFollows.removedAt} else null end`,
      },
    });
}

