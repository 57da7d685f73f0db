import { sql } from "drizzle-orm";
import type { Tx } from "../../db/client";

/** Set-based chunks in flight at once per tenant, each on its own connection. */
export const PARALLEL = 2;

/**
 * The contact id space is split into PARTS equal parts (by the id's first 32 bits; random ids
 * spread evenly), each with its own lock key: a set-based chunk lies in one part and holds its key.
 * Twice the lanes, so a lane finishing a chunk always finds a part no other lane holds.
 */
export const PARTS = PARALLEL * 2;

/** A tag's bit in contact_tag_state.tag_bits (bit n for the tenant's tag of ordinal n), 0n from the 64th tag on, which has none. */
export function tagBit(ordinal: number | null | undefined): bigint {
  return ordinal !== null && ordinal !== undefined && ordinal >= 0 && ordinal < 63 ? 1n << BigInt(ordinal) : 0n;
}
/** The part of the contact id space (0 .. PARTS - 1) a contact id lies in. */
export function partOf(contactId: string): number {
  return Math.floor((parseInt(contactId.slice(0, 8), 16) * PARTS) / 2 ** 32);
}

/** Advisory lock keys of the tag writers of a tenant, one per part: set-based chunks take their part's exclusively, worker batches share all. */
export function tagLockKeys(tenantId: string): string[] {
  return Array.from({ length: PARTS }, (_, i) => `siyu-tags-${tenantId}-${i}`);
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
