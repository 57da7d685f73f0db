import { sql } from "drizzle-orm";
import { rowsOf, type DbOrTx } from "../../db/client";
import { jobId } from "../../queue/catalog";
import type { ServiceDeps } from "../context";

/**
 * The alarm clocks of delivery. Due times live in sends.scheduled_at (PostgreSQL is the truth);
 * a BullMQ delayed job per (post, sender, scheduled minute) wakes the batch (deliver.ts). Ids are
 * deterministic, so arming twice adds nothing; a lost job is re-armed by the delivery sweep from
 * the sends still planned (at scheduler start every batch within ARM_HORIZON_MS, each minute
 * those due within the hour, and overdue ones under a fresh id every few minutes).
 */

export interface BatchKey {
  tenantId: string;
  postId: string;
  senderStaffId: string;
  /** The scheduled minute (UTC, seconds zero). */
  minute: Date;
}

/** Batches are armed this far ahead (relative calendars plan weeks ahead; the minute sweep arms the rest as they come near). */
export const ARM_HORIZON_MS = 24 * 3_600_000;

export function batchJobId(k: BatchKey, retry?: string): string {
  return jobId("dlv", k.postId, k.senderStaffId, String(k.minute.getTime()), ...(retry ? [retry] : []));
}

export function pollJobId(msgid: string, bucket: string): string {
  return jobId("dlvpoll", msgid, bucket);
}

/** Arm delayed batch jobs (bulk). `retry` makes new ids for batches whose job already ran or was lost. */
export async function armBatches(deps: ServiceDeps, keys: readonly BatchKey[], retry?: string): Promise<void> {
  if (!keys.length) return;
  const now = deps.now().getTime();
  for (let i = 0; i < keys.length; i += 1000) {
    await deps.producer.enqueueMany(
      "delivery-batch",
      keys.slice(i, i + 1000).map((k) => ({
        payload: { tenantId: k.tenantId, postId: k.postId, senderStaffId: k.senderStaffId, minute: k.minute.toISOString() },
        jobId: batchJobId(k, retry),
        delayMs: Math.max(0, k.minute.getTime() - now),
      })),
    );
  }
}

/** Batches with sends still to go (planned, or claimed by a job that died), by scheduled minute. */
export async function pendingBatches(db: DbOrTx, o: { tenantId?: string; postId?: string; before?: Date; notBefore?: Date; limit?: number }): Promise<BatchKey[]> {
  const rows = rowsOf<{ tenant_id: string; post_id: string; sender_staff_id: string; minute: string | Date }>(
    await db.execute(sql`
      select tenant_id, post_id, sender_staff_id, date_trunc('minute', scheduled_at) as minute
      from sends
      where status in ('planned', 'queued') and sender_staff_id is not null
        ${o.tenantId ? sql`and tenant_id = ${o.tenantId}::uuid` : sql``}
        ${o.postId ? sql`and post_id = ${o.postId}::uuid` : sql``}
        ${o.before ? sql`and scheduled_at < ${o.before.toISOString()}::timestamptz` : sql``}
        ${o.notBefore ? sql`and scheduled_at >= ${o.notBefore.toISOString()}::timestamptz` : sql``}
      group by 1, 2, 3, 4
      order by 4
      limit ${o.limit ?? 10_000}`),
  );
  return rows.map((r) => ({ tenantId: r.tenant_id, postId: r.post_id, senderStaffId: r.sender_staff_id, minute: new Date(r.minute) }));
}

/** Arm the batches of a post just planned (after its transaction committed). */
export async function armPost(deps: ServiceDeps, tenantId: string, postId: string): Promise<number> {
  const keys = await pendingBatches(deps.db, { tenantId, postId, before: new Date(deps.now().getTime() + ARM_HORIZON_MS) });
  await armBatches(deps, keys);
  return keys.length;
}
