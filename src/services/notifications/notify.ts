import { and, asc, eq, isNull, lt, sql } from "drizzle-orm";
import type { DbOrTx } from "../../db/client";
import { staff, staffNotifications } from "../../db/schema/index";
import { jobId } from "../../queue/catalog";
import { WecomError } from "../../wecom/api/errors";
import { afterCommit, type Ctx, type ServiceDeps } from "../context";
import { loadWecomApp } from "../wecom/settings";

export interface NotificationInput {
  staffId: string;
  /** sla_reminder, sla_breach, digest, owner_conflict, lead_assigned, transfer, ... */
  kind: string;
  leadId?: string | null;
  contactId?: string | null;
  title: string;
  body: string;
  /** Queued once per key and tenant: the same reminder is never sent twice. */
  dedupeKey: string;
}

/**
 * Queue WeCom app messages to staff in the caller's transaction (the outbox). Returns the ids of the
 * rows it created (none for keys already queued); pass them to `deliverSoon` after the commit. A
 * notification not delivered then is picked up by the minute sweep.
 */
export async function queueNotifications(db: DbOrTx, tenantId: string, items: NotificationInput[]): Promise<string[]> {
  if (!items.length) return [];
  const rows = await db
    .insert(staffNotifications)
    .values(items.map((n) => ({ tenantId, staffId: n.staffId, kind: n.kind, leadId: n.leadId ?? null, contactId: n.contactId ?? null, title: n.title.slice(0, 128), body: n.body.slice(0, 2000), dedupeKey: n.dedupeKey.slice(0, 200) })))
    .onConflictDoNothing()
    .returning({ id: staffNotifications.id });
  return rows.map((r) => r.id);
}

/** Enqueue delivery of notifications committed just now (a failure here is healed by the sweep). */
export async function deliverSoon(deps: ServiceDeps, tenantId: string, ids: string[]): Promise<void> {
  if (!ids.length) return;
  await deps.producer
    .enqueueMany("staff-notify", ids.map((notificationId) => ({ payload: { tenantId, notificationId }, jobId: jobId("notify", notificationId) })))
    .catch((err: Error) => deps.logger.warn({ err: err.message }, "could not enqueue staff notifications; the sweep will"));
}

export type DeliveryOutcome = "sent" | "no_wecom" | "already" | "missing";

/**
 * Send one notification through the WeCom app (message/send, text card-free plain text so it
 * reads well in the WeCom chat list). Staff without a WeCom userid, or a tenant without WeCom,
 * see it in the console only (outcome no_wecom). WeCom's duplicate check (10 minutes) covers a
 * crash between the send and the write of sent_at.
 */
export async function deliverNotification(deps: ServiceDeps, tenantId: string, notificationId: string): Promise<DeliveryOutcome> {
  const [n] = await deps.db
    .select({ row: staffNotifications, userId: staff.wecomUserId, active: staff.active })
    .from(staffNotifications)
    .innerJoin(staff, eq(staff.id, staffNotifications.staffId))
    .where(and(eq(staffNotifications.tenantId, tenantId), eq(staffNotifications.id, notificationId)));
  if (!n) return "missing";
  if (n.row.sentAt) return "already";
  const done = (outcome: string, error: string | null = null) =>
    deps.db
      .update(staffNotifications)
      .set({ sentAt: deps.now(), outcome, attempts: sql`${staffNotifications.attempts} + 1`, lastError: error })
      .where(eq(staffNotifications.id, notificationId));
  const app = await loadWecomApp(deps, tenantId);
  if (!app || !n.userId || !n.active) {
    await done("no_wecom");
    return "no_wecom";
  }
  try {
    const r = await deps.wecomClient(app).sendAppMessage({ toUsers: [n.userId], message: { msgtype: "text", text: { content: `${n.row.title}\n${n.row.body}` } }, duplicateCheckSeconds: 600 });
    if (r.invalidUsers.length) {
      await done("no_wecom", `WeCom does not know userid ${n.userId}`);
      return "no_wecom";
    }
  } catch (err) {
    await deps.db
      .update(staffNotifications)
      .set({ attempts: sql`${staffNotifications.attempts} + 1`, lastError: (err instanceof WecomError ? `${err.errcode} ${err.message}` : (err as Error).message).slice(0, 500) })
      .where(eq(staffNotifications.id, notificationId));
    throw err;
  }
  await done("sent");
  return "sent";
}

/** Notifications committed but not delivered after `graceSeconds` (Redis lost the job, the enqueue failed). */
export async function findUndelivered(db: DbOrTx, opts: { olderThan: Date; limit: number }): Promise<{ tenantId: string; id: string }[]> {
  return db
    .select({ tenantId: staffNotifications.tenantId, id: staffNotifications.id })
    .from(staffNotifications)
    .where(and(isNull(staffNotifications.sentAt), lt(staffNotifications.createdAt, opts.olderThan), lt(staffNotifications.attempts, 20)))
    .orderBy(asc(staffNotifications.createdAt))
    .limit(opts.limit);
}

/** Queue notifications in the caller's transaction and wake their delivery once it commits. */
export async function notifyStaff(db: DbOrTx, ctx: Ctx, items: NotificationInput[]): Promise<string[]> {
  const ids = await queueNotifications(db, ctx.tenantId, items);
  if (ids.length) afterCommit(ctx, () => deliverSoon(ctx.deps, ctx.tenantId, ids));
  return ids;
}
