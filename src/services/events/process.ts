import { and, asc, eq, inArray, isNull, ne, sql } from "drizzle-orm";
import type { Tx } from "../../db/client";
import { contacts, events } from "../../db/schema/index";
import { jobId } from "../../queue/catalog";
import { withTransaction, type Ctx } from "../context";
import { applyRulesToContact, tenantTagIds } from "../tagging/apply-rules";

export type ProcessOutcome = "processed" | "already-processed" | "missing";

/** Events applied per transaction: the job's own plus waiting ones of the same tenant. */
export const EVENT_BATCH = 100;

type EventRow = typeof events.$inferSelect;

/**
 * Apply a stored event, and in the same transaction up to EVENT_BATCH - 1 other waiting events of
 * the tenant (rows another worker holds are skipped): each contact's state and tags move once per
 * batch, under the contact's row lock, and every claimed event is marked processed. Idempotent:
 * a job whose event an earlier batch took finds it processed and does nothing; the sweeper
 * re-enqueues anything a failed batch left behind.
 */
export async function processEvent({ ctx, eventId }: { ctx: Ctx; eventId: string }): Promise<ProcessOutcome> {
  const [peek] = await ctx.deps.db.select({ processedAt: events.processedAt }).from(events).where(and(eq(events.tenantId, ctx.tenantId), eq(events.id, eventId)));
  if (!peek) return "missing";
  if (peek.processedAt) return "already-processed";
  const changed: string[] = [];
  const outcome = await withTransaction(ctx, async (tx, ctx) => {
    const [own] = await tx.select().from(events).where(and(eq(events.tenantId, ctx.tenantId), eq(events.id, eventId))).for("update", { skipLocked: true });
    // Held by another worker's batch, which applies it (or fails, and the sweeper brings it back).
    if (!own || own.processedAt) return "already-processed" as const;
    const others = await tx
      .select()
      .from(events)
      .where(and(eq(events.tenantId, ctx.tenantId), isNull(events.processedAt), ne(events.id, eventId)))
      .orderBy(asc(events.receivedAt))
      .limit(EVENT_BATCH - 1)
      .for("update", { skipLocked: true });
    const batch = [own, ...others];
    const byContact = new Map<string, EventRow[]>();
    for (const e of batch) byContact.set(e.contactId, [...(byContact.get(e.contactId) ?? []), e]);
    const contactIds = [...byContact.keys()].sort();
    // Contacts are locked in id order, so concurrent batches never deadlock.
    await tx.select({ id: contacts.id }).from(contacts).where(and(eq(contacts.tenantId, ctx.tenantId), inArray(contacts.id, contactIds))).orderBy(asc(contacts.id)).for("update");
    const tagIds = await tenantTagIds(tx, ctx.tenantId);
    for (const contactId of contactIds) {
      const evs = byContact.get(contactId)!.sort((a, b) => a.occurredAt.getTime() - b.occurredAt.getTime());
      for (const ev of evs) await applyContactState(tx, ctx, ev);
      const applied = await applyRulesToContact(
        tx,
        ctx,
        contactId,
        evs.map((ev) => ({ kind: "event" as const, event: { id: ev.id, type: ev.type, occurredAt: ev.occurredAt, data: ev.payload } })),
        tagIds,
      );
      if (applied.changes.length) changed.push(contactId);
    }
    await tx
      .update(events)
      .set({ processedAt: ctx.deps.now(), attempts: sql`${events.attempts} + 1`, lastError: null })
      .where(and(eq(events.tenantId, ctx.tenantId), inArray(events.id, batch.map((e) => e.id))));
    return "processed" as const;
  });
  for (const contactId of changed) {
    // WeCom follows a few seconds later, one push per contact however many events moved its tags.
    await ctx.deps.producer
      .enqueue("wecom-push-tags", { tenantId: ctx.tenantId, contactId }, { dedupe: { id: jobId("wpt", contactId), ttlMs: 5000 }, delayMs: 5000 })
      .catch((err: Error) => ctx.logger.warn({ err: err.message }, "tag push to WeCom not queued; the nightly sync reconciles"));
  }
  return outcome;
}

/** What an event does to the contact row itself: last activity, deletion and return, channel. */
async function applyContactState(tx: Tx, ctx: Ctx, ev: EventRow): Promise<void> {
  const at = ev.occurredAt.toISOString();
  const set: Record<string, unknown> = { lastEventAt: sql`greatest(${contacts.lastEventAt}, ${at}::timestamptz)` };
  // Events may arrive out of order: the latest of "added" and "deleted" wins, by occurred_at.
  // A contact still friends with another consultant is not gone (only that relation is).
  const remaining = ev.payload.remainingFollows;
  if (ev.type === "contact_deleted" && !(typeof remaining === "number" && remaining > 0)) {
    // A later "added" (processed or still queued) means the contact is back: this deletion is history.
    set.deletedAt = sql`case when exists (select 1 from ${events} e where e.tenant_id = ${ctx.tenantId} and e.contact_id = ${ev.contactId} and e.type = 'contact_added' and e.occurred_at > ${at}::timestamptz) then ${contacts.deletedAt} else greatest(${contacts.deletedAt}, ${at}::timestamptz) end`;
  }
  if (ev.type === "contact_added") {
    set.deletedAt = sql`case when ${contacts.deletedAt} > ${at}::timestamptz then ${contacts.deletedAt} else null end`;
    const state = ev.payload.state;
    if (typeof state === "string" && state) set.sourceState = sql`coalesce(${contacts.sourceState}, ${state})`;
  }
  await tx.update(contacts).set(set).where(and(eq(contacts.tenantId, ctx.tenantId), eq(contacts.id, ev.contactId)));
}

/** Record a failed attempt so operators can see why an event is stuck. */
export async function recordEventFailure({ ctx, eventId, error }: { ctx: Ctx; eventId: string; error: string }): Promise<void> {
  await ctx.deps.db
    .update(events)
    .set({ attempts: sql`${events.attempts} + 1`, lastError: error.slice(0, 1000) })
    .where(and(eq(events.tenantId, ctx.tenantId), eq(events.id, eventId)));
}
