import { sql } from "drizzle-orm";
import type { DbOrTx } from "../../db/client";

/** A PostgreSQL array literal of uuids, passed as one text parameter (both drivers). */
export function uuidArray(ids: readonly string[]): string {
  return `{${ids.join(",")}}`;
}

/**
 * Make contacts due for the nightly tag pass: something their time-based rules read (events,
 * tags, fields) changed outside that pass. See contact_tag_rechecks.
 */
export async function markTagsDue(db: DbOrTx, tenantId: string, contactIds: readonly string[]): Promise<void> {
  if (!contactIds.length) return;
  await db.execute(sql`
    insert into contact_tag_rechecks (contact_id, tenant_id, recheck_at)
    select id, ${tenantId}::uuid, '-infinity' from unnest(${uuidArray([...new Set(contactIds)].sort())}::uuid[]) id
    on conflict (contact_id) do update set recheck_at = '-infinity'`);
}
