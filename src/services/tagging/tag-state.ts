import { sql } from "drizzle-orm";
import type { Tx } from "../../db/client";

/** Set-based chunks in flight at once per tenant (each on its own connection, with its own lock key). */
export const PARALLEL = 2;

/** Advisory lock keys of the tag writers of a tenant: set-based chunks take one exclusively, worker batches share all. */
export function tagLockKeys(tenantId: string): string[] {
  return Array.from({ length: PARALLEL }, (_, i) => `siyu-tags-${tenantId}-${i}`);
}

/** Taken by every other writer of tags and tag state (the events worker, WeCom tag pulls, contact edits) before it reads a contact's tags. */
export async function shareTagLocks(tx: Tx, tenantId: string): Promise<void> {
  await tx.execute(sql`select ${sql.join(
    tagLockKeys(tenantId).map((k) => sql`pg_advisory_xact_lock_shared(hashtext(${k}::text))`),
    sql`, `,
  )}`);
}



/** A PostgreSQL array literal of uuids, passed as one text parameter (both drivers). */
export function uuidArray(ids: readonly string[]): string {
  return `{${ids.join(",")}}`;
}

/** SQL for a contact's tag bits (bit n = its tag of ordinal n < 63); `contactId` is a qualified column reference (a bare name could bind to tags.id inside). */
export function tagBitsOf(contactId: ReturnType<typeof sql.raw>) {
  return sql`coalesce((select bit_or(1::bigint << t.ordinal) from contact_tags ct join tags t on t.id = ct.tag_id where ct.contact_id = ${contactId} and t.ordinal < 63), 0)`;
}

/**
 * After a contact's events, tags or fields changed outside the set-based pass: its tag bits are
 * recomputed from contact_tags and it becomes due for the nightly pass (contact_tag_state).
 */
export async function markTagsDue(db: Tx, tenantId: string, contactIds: readonly string[]): Promise<void> {
  if (!contactIds.length) return;
  // Never while a set-based chunk of the tenant writes bits from its own view of the tags.
  await shareTagLocks(db, tenantId);
  await db.execute(sql`
    insert into contact_tag_state (contact_id, tenant_id, recheck_at, tag_bits)
    select u.cid, ${tenantId}::uuid, '-infinity', ${tagBitsOf(sql.raw("u.cid"))} from unnest(${uuidArray([...new Set(contactIds)].sort())}::uuid[]) as u(cid)
    on conflict (contact_id) do update set recheck_at = '-infinity', tag_bits = excluded.tag_bits`);
}
