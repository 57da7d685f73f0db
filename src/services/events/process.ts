import { and, asc, eq, inArray, isNull, sql } from "drizzle-orm";
import { contacts, events } from "../../db/schema/index";
import { jobId } from "../../queue/catalog";
import { applyEventOptOuts } from "../consent/consent";
import { withTransaction, type Ctx } from "../context";
import { closeLeadsOnOutcomes } from "../leads/workspace";
import { recordFacts } from "../metrics/facts";
import { applyConversionEffects } from "../conversions/effects";
import { applyEnrollmentTriggers } from "../calendars/triggers";
import { applyRulesToContacts, loadHistories, tenantTagIds, type ContactInputs } from "../tagging/apply-rules";
import { markTagsDue, shareTagLocks } from "../tagging/tag-state";

/** Events per job and per transaction: ingest splits larger requests into jobs of this size. */
export const EVENT_BATCH = 200;

export interface ProcessResult {
  /** Events this call applied. */
  processed: number;
  /** Events already processed, held by another worker's batch, or not found. */
  skipped: number;
}

type EventRow = typeof events.$inferSelect;

/**
 * Apply a batch of stored events in one transaction: the events are claimed (rows another worker
 * holds are skipped: that worker applies them), their contacts locked in id order so concurrent
 * batches never deadlock, every contact's state and tags move once with all of its events of the
 * batch in occurred order, and the events are marked processed. About eight statements per batch
 * whatever its size. Idempotent: events an earlier batch applied are skipped; the sweeper
 * re-enqueues anything a failed batch left behind.
 */
export async function processEvents({ ctx, eventIds }: { ctx: Ctx; eventIds: string[] }): Promise<ProcessResult> {
  if (!eventIds.length) return { processed: 0, skipped: 0 };
  const changed: string[] = [];
  const processed = await withTransaction(ctx, async (tx, ctx) => {
    const batch = await tx
      .select()
      .from(events)
      .where(and(eq(events.tenantId, ctx.tenantId), inArray(events.id, eventIds), isNull(events.processedAt)))
      .orderBy(asc(events.id))
      .for("update", { skipLocked: true });
    if (!batch.length) return 0;
    const byContact = new Map<string, EventRow[]>();
    for (const e of batch) {
      const list = byContact.get(e.contactId);
      if (list) list.push(e);
      else byContact.set(e.contactId, [e]);
    }
    const contactIds = [...byContact.keys()].sort();
    // A set-based pass writing this tenant's tags waits for us, and we for it (never both at once).
    await shareTagLocks(tx, ctx.tenantId);
    // Contacts are locked in id order, so concurrent batches never deadlock.
    const locked = await tx
      .select({ id: contacts.id, source: contacts.source, gender: contacts.gender, sourceState: contacts.sourceState, lastEventAt: contacts.lastEventAt, deletedAt: contacts.deletedAt })
      .from(contacts)
      .where(and(eq(contacts.tenantId, ctx.tenantId), inArray(contacts.id, contactIds)))
      .orderBy(asc(contacts.id))
      .for("update");
    const inputs = new Map<string, ContactInputs>();
    for (const c of locked) inputs.set(c.id, { fields: { source: c.source, gender: c.gender, sourceState: c.sourceState }, history: [] });
    for (const e of await loadHistories(tx, ctx.tenantId, contactIds)) inputs.get(e.contactId)?.history.push(e);

    const updates: { id: string; last_event_at: string | null; deleted_at: string | null; source_state: string | null }[] = [];
    for (const c of locked) {
      const evs = byContact.get(c.id)!.sort((a, b) => a.occurredAt.getTime() - b.occurredAt.getTime());
      const input = inputs.get(c.id)!;
      const next = contactState(c, evs, input.history);
      // Rules see the state the events left (e.g. the channel code of a contact_added).
      input.fields.sourceState = next.sourceState;
      updates.push({ id: c.id, last_event_at: next.lastEventAt?.toISOString() ?? null, deleted_at: next.deletedAt?.toISOString() ?? null, source_state: next.sourceState });
    }
    if (updates.length) {
      await tx.execute(sql`
        update contacts c set last_event_at = x.last_event_at, deleted_at = x.deleted_at, source_state = x.source_state
        from jsonb_to_recordset(${JSON.stringify(updates)}::jsonb) as x(id uuid, last_event_at timestamptz, deleted_at timestamptz, source_state text)
        where c.tenant_id = ${ctx.tenantId}::uuid and c.id = x.id`);
    }
    const applied = await applyRulesToContacts(
      tx,
      ctx,
      locked.map((c) => ({
        contactId: c.id,
        triggers: byContact.get(c.id)!.map((ev) => ({ kind: "event" as const, event: { id: ev.id, type: ev.type, occurredAt: ev.occurredAt, data: ev.payload } })),
      })),
      { tagIds: await tenantTagIds(tx, ctx.tenantId), inputs },
    );
    changed.push(...applied.keys());
    // Consent: a reply asking to stop (退订) or deleting the last consultant opts out of marketing.
    await applyEventOptOuts(tx, ctx, batch);
    // A consultation's outcome closes the contact's open lead (converted or lost).
    const outcomes = batch.filter((e) => e.type === "consultation_outcome");
    if (outcomes.length) await closeLeadsOnOutcomes(tx, ctx, outcomes.map((e) => ({ contactId: e.contactId, occurredAt: e.occurredAt, data: e.payload })));
    // The funnel's facts (appointments, visits, consultations, purchases, refunds, survey answers).
    await recordFacts(tx, ctx, batch);
    await applyConversionEffects(tx, ctx, batch); // visits plan their follow-up (回访) and survey; referred contacts' first conversions credit the referrer
    // Relative calendars that enroll on these events, outcomes or new tags (or end on them).
    await applyEnrollmentTriggers(tx, ctx, batch, applied);
    // New events move time-based boundaries (a purchase opens a window) and feed the daily rules;
    // the tag bits follow the tags just written.
    await markTagsDue(tx, ctx.tenantId, contactIds);
    await tx
      .update(events)
      .set({ processedAt: ctx.deps.now(), attempts: sql`${events.attempts} + 1`, lastError: null })
      .where(and(eq(events.tenantId, ctx.tenantId), inArray(events.id, batch.map((e) => e.id))));
    return batch.length;
  });
  if (changed.length) {
    // WeCom follows a few seconds later, one push per contact however many events moved its tags.
    await ctx.deps.producer
      .enqueueMany(
        "wecom-push-tags",
        changed.map((contactId) => ({ payload: { tenantId: ctx.tenantId, contactId }, dedupe: { id: jobId("wpt", contactId), ttlMs: 5000 }, delayMs: 5000 })),
      )
      .catch((err: Error) => ctx.logger.warn({ err: err.message }, "tag push to WeCom not queued; the nightly sync reconciles"));
  }
  return { processed, skipped: eventIds.length - processed };
}

interface ContactStateRow {
  sourceState: string | null;
  lastEventAt: Date | null;
  deletedAt: Date | null;
}

const later = (a: Date | null, b: Date | null): Date | null => (!a ? b : !b ? a : a > b ? a : b);

/**
 * What events do to the contact row itself: last activity, deletion and return, channel. Events may
 * arrive out of order: the latest of "added" and "deleted" wins, by occurred_at, and a contact
 * still friends with another consultant is not gone (only that relation is).
 */
export function contactState(row: ContactStateRow, evs: EventRow[], history: { type: string; occurredAt: Date }[]): ContactStateRow {
  let { sourceState, lastEventAt, deletedAt } = row;
  for (const ev of evs) {
    const at = ev.occurredAt;
    lastEventAt = later(lastEventAt, at);
    const remaining = ev.payload.remainingFollows;
    if (ev.type === "contact_deleted" && !(typeof remaining === "number" && remaining > 0)) {
      // A later "added" (processed or still queued) means the contact is back: this deletion is history.
      if (!history.some((h) => h.type === "contact_added" && h.occurredAt > at)) deletedAt = later(deletedAt, at);
    }
    if (ev.type === "contact_added") {
      if (!(deletedAt && deletedAt > at)) deletedAt = null;
      const state = ev.payload.state;
      if (typeof state === "string" && state) sourceState ??= state;
    }
  }
  return { sourceState, lastEventAt, deletedAt };
}

/** Record a failed attempt so operators can see why an event is stuck. */
export async function recordEventFailure({ ctx, eventIds, error }: { ctx: Ctx; eventIds: string[]; error: string }): Promise<void> {
  await ctx.deps.db
    .update(events)
    .set({ attempts: sql`${events.attempts} + 1`, lastError: error.slice(0, 1000) })
    .where(and(eq(events.tenantId, ctx.tenantId), inArray(events.id, eventIds), isNull(events.processedAt)));
}
