import { and, eq, sql } from "drizzle-orm";
import { contacts, events } from "../../db/schema/index";
import { jobId } from "../../queue/catalog";
import { withTransaction, type Ctx } from "../context";
import { applyRulesToContact } from "../tagging/apply-rules";

export type ProcessOutcome = "processed" | "already-processed" | "missing";

/**
 * Apply one stored event: update the contact's state and mark the event processed, in one
 * transaction. Idempotent: a re-delivered job finds processed_at set and does nothing.
 * The tag rules run here too, so tags move in this same transaction.
 */
export async function processEvent({ ctx, eventId }: { ctx: Ctx; eventId: string }): Promise<ProcessOutcome> {
  let tagsChanged: string | null = null;
  const outcome = await withTransaction(ctx, async (tx, ctx) => {
    const [ev] = await tx
      .select()
      .from(events)
      .where(and(eq(events.tenantId, ctx.tenantId), eq(events.id, eventId)))
      .for("update");
    if (!ev) return "missing";
    if (ev.processedAt) return "already-processed";
    // One contact's events are applied one at a time: its tags are read, evaluated and written under this lock.
    await tx.select({ id: contacts.id }).from(contacts).where(and(eq(contacts.tenantId, ctx.tenantId), eq(contacts.id, ev.contactId))).for("update");
    const set: Record<string, unknown> = {
      lastEventAt: sql`greatest(${contacts.lastEventAt}, ${ev.occurredAt.toISOString()}::timestamptz)`,
    };
    const at = ev.occurredAt.toISOString();
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
    const applied = await applyRulesToContact(tx, ctx, ev.contactId, { kind: "event", event: { id: ev.id, type: ev.type, occurredAt: ev.occurredAt, data: ev.payload } });
    if (applied.changes.length) tagsChanged = ev.contactId;
    await tx
      .update(events)
      .set({ processedAt: ctx.deps.now(), attempts: sql`${events.attempts} + 1`, lastError: null })
      .where(eq(events.id, ev.id));
    return "processed" as const;
  });
  if (tagsChanged) {
    // WeCom follows a few seconds later, one push per contact however many events moved its tags.
    await ctx.deps.producer
      .enqueue("wecom-push-tags", { tenantId: ctx.tenantId, contactId: tagsChanged }, { dedupe: { id: jobId("wpt", tagsChanged), ttlMs: 5000 }, delayMs: 5000 })
      .catch((err: Error) => ctx.logger.warn({ err: err.message }, "tag push to WeCom not queued; the nightly sync reconciles"));
  }
  return outcome;
}

/** Record a failed attempt so operators can see why an event is stuck. */
export async function recordEventFailure({ ctx, eventId, error }: { ctx: Ctx; eventId: string; error: string }): Promise<void> {
  await ctx.deps.db
    .update(events)
    .set({ attempts: sql`${events.attempts} + 1`, lastError: error.slice(0, 1000) })
    .where(and(eq(events.tenantId, ctx.tenantId), eq(events.id, eventId)));
}
