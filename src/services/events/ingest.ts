import { and, eq, inArray } from "drizzle-orm";
import type { Tx } from "../../db/client";
import { z } from "zod";
import { contacts, events } from "../../db/schema/index";
import { checkOccurredAt, EventInput, MAX_EVENTS_PER_BATCH } from "../../domain/events/types";
import { normalizePhone } from "../../domain/pii/phone";
import { ValidationError, zodIssues, type FieldIssue } from "../../errors";
import { jobId } from "../../queue/catalog";
import { afterCommit, audit, requirePermission, requirePii, withTransaction, type AuditEntry, type Ctx } from "../context";
import { EVENT_BATCH } from "./process";

export const IngestEventsInput = z.object({
  events: z.array(z.unknown()).min(1, "send at least one event").max(MAX_EVENTS_PER_BATCH, `at most ${MAX_EVENTS_PER_BATCH} events per request`),
});

export interface IngestResult {
  accepted: number;
  duplicates: number;
  /** Event id per input event, in order; a duplicate gets the id stored first. */
  ids: string[];
  /** True when every new event was handed to the queue; false means the sweeper will enqueue them. */
  enqueued: boolean;
}

/**
 * Store a batch of events, then enqueue them. Validation is all-or-nothing: one bad event refuses
 * the batch, naming each bad field, and nothing is stored. Stored events are acknowledged even when
 * the queue is unavailable: the sweeper enqueues them later, so nothing accepted is lost.
 */
export async function ingestEvents({ ctx, input, source = "api" }: { ctx: Ctx; input: unknown; source?: string }): Promise<IngestResult> {
  requirePermission(ctx, "events:write");
  const outer = IngestEventsInput.safeParse(input);
  if (!outer.success) throw new ValidationError(zodIssues(outer.error.issues));
  const now = ctx.deps.now();
  const issues: FieldIssue[] = [];
  const parsed: EventInput[] = [];
  outer.data.events.forEach((raw, i) => {
    const r = EventInput.safeParse(raw);
    if (!r.success) {
      issues.push(...zodIssues(r.error.issues, `events[${i}]`));
      return;
    }
    const bad = checkOccurredAt(new Date(r.data.occurredAt), now);
    if (bad) issues.push({ field: `events[${i}].occurredAt`, message: bad });
    parsed.push(r.data);
  });
  if (issues.length) throw new ValidationError(issues);

  // Phones are normalised and hashed before the transaction: CPU work out of the lock window.
  const phoneHash = new Map<number, { hash: string; enc: string; mask: string }>();
  parsed.forEach((e, i) => {
    if (e.phone === undefined) return;
    const n = normalizePhone(e.phone);
    if (!n.ok) issues.push({ field: `events[${i}].phone`, message: n.reason });
    else {
      const pii = requirePii(ctx);
      phoneHash.set(i, { hash: pii.hash(n.e164), enc: pii.encrypt(n.e164), mask: n.masked });
    }
  });
  if (issues.length) throw new ValidationError(issues);

  const result = await withTransaction(ctx, async (tx, ctx) => {
    const contactIdOf = await resolveContacts(tx, ctx, parsed, phoneHash, source);
    const rows = parsed.map((e, i) => ({
      tenantId: ctx.tenantId,
      contactId: contactIdOf[i]!,
      type: e.type,
      occurredAt: new Date(e.occurredAt),
      source,
      idempotencyKey: e.idempotencyKey,
      payload: e.data as Record<string, unknown>,
    }));
    const inserted = await tx
      .insert(events)
      .values(rows)
      .onConflictDoNothing({ target: [events.tenantId, events.idempotencyKey] })
      .returning({ id: events.id, key: events.idempotencyKey });
    const idByKey = new Map(inserted.map((r) => [r.key, r.id]));
    const newIds = new Set(inserted.map((r) => r.id));
    const missing = [...new Set(parsed.map((e) => e.idempotencyKey).filter((k) => !idByKey.has(k)))];
    if (missing.length) {
      const existing = await tx
        .select({ id: events.id, key: events.idempotencyKey })
        .from(events)
        .where(and(eq(events.tenantId, ctx.tenantId), inArray(events.idempotencyKey, missing)));
      for (const r of existing) idByKey.set(r.key, r.id);
    }
    // A key repeated inside one batch is stored once: later copies are duplicates.
    const claimed = new Set<string>();
    const ids = parsed.map((e) => idByKey.get(e.idempotencyKey)!);
    let accepted = 0;
    for (const id of ids) {
      if (newIds.has(id) && !claimed.has(id)) {
        accepted++;
        claimed.add(id);
      }
    }
    return { ids, accepted, newIds: [...newIds] };
  });

  let enqueued = true;
  if (ctx.tx) {
    // Inside the caller's transaction: the worker must not look before the events are committed.
    afterCommit(ctx, () => ctx.deps.producer.enqueueMany("process-events", eventJobs(ctx.tenantId, result.newIds)));
    return { accepted: result.accepted, duplicates: parsed.length - result.accepted, ids: result.ids, enqueued };
  }
  try {
    // One job per EVENT_BATCH events: the worker applies each job's events in one transaction.
    await ctx.deps.producer.enqueueMany("process-events", eventJobs(ctx.tenantId, result.newIds));
  } catch (err) {
    enqueued = false;
    ctx.logger.warn({ err: (err as Error).message, count: result.newIds.length }, "events stored but not enqueued; the sweeper will enqueue them");
  }
  return { accepted: result.accepted, duplicates: parsed.length - result.accepted, ids: result.ids, enqueued };
}

/** Map each event to a contact id; unknown externalUserId / phone create the contact, unknown contactId is an error. */
async function resolveContacts(
  tx: Tx,
  ctx: Ctx,
  parsed: EventInput[],
  phones: Map<number, { hash: string; enc: string; mask: string }>,
  source: string,
): Promise<string[]> {
  const out: string[] = new Array(parsed.length);
  const ids = [...new Set(parsed.flatMap((e) => (e.contactId ? [e.contactId] : [])))];
  if (ids.length) {
    const found = await tx
      .select({ id: contacts.id })
      .from(contacts)
      .where(and(eq(contacts.tenantId, ctx.tenantId), inArray(contacts.id, ids)));
    const ok = new Set(found.map((r) => r.id));
    const issues: FieldIssue[] = [];
    parsed.forEach((e, i) => {
      if (e.contactId && !ok.has(e.contactId)) issues.push({ field: `events[${i}].contactId`, message: "no such contact" });
    });
    if (issues.length) throw new ValidationError(issues);
    parsed.forEach((e, i) => {
      if (e.contactId) out[i] = e.contactId;
    });
  }
  const audits: AuditEntry[] = [];
  const contactSource = (i: number) => (parsed[i]!.type === "contact_added" ? "wecom" : source);

  const extIdx = parsed.flatMap((e, i) => (e.externalUserId ? [i] : []));
  if (extIdx.length) {
    const want = [...new Set(extIdx.map((i) => parsed[i]!.externalUserId!))];
    const created = await tx
      .insert(contacts)
      .values(want.map((externalUserId) => ({ tenantId: ctx.tenantId, externalUserId, source: contactSource(extIdx.find((i) => parsed[i]!.externalUserId === externalUserId)!) })))
      .onConflictDoNothing({ target: [contacts.tenantId, contacts.externalUserId] })
      .returning({ id: contacts.id });
    for (const r of created) audits.push({ action: "contact.create", entityType: "contact", entityId: r.id, after: { via: "event" } });
    const rows = await tx
      .select({ id: contacts.id, ext: contacts.externalUserId })
      .from(contacts)
      .where(and(eq(contacts.tenantId, ctx.tenantId), inArray(contacts.externalUserId, want)));
    const byExt = new Map(rows.map((r) => [r.ext, r.id]));
    for (const i of extIdx) out[i] = byExt.get(parsed[i]!.externalUserId!)!;
  }
  const phoneIdx = [...phones.keys()];
  if (phoneIdx.length) {
    const want = new Map<string, { hash: string; enc: string; mask: string; i: number }>();
    for (const i of phoneIdx) {
      const p = phones.get(i)!;
      if (!want.has(p.hash)) want.set(p.hash, { ...p, i });
    }
    const created = await tx
      .insert(contacts)
      .values([...want.values()].map((p) => ({ tenantId: ctx.tenantId, phoneEnc: p.enc, phoneHash: p.hash, phoneMask: p.mask, source: contactSource(p.i) })))
      .onConflictDoNothing({ target: [contacts.tenantId, contacts.phoneHash] })
      .returning({ id: contacts.id });
    for (const r of created) audits.push({ action: "contact.create", entityType: "contact", entityId: r.id, after: { via: "event" } });
    const rows = await tx
      .select({ id: contacts.id, hash: contacts.phoneHash })
      .from(contacts)
      .where(and(eq(contacts.tenantId, ctx.tenantId), inArray(contacts.phoneHash, [...want.keys()])));
    const byHash = new Map(rows.map((r) => [r.hash, r.id]));
    for (const i of phoneIdx) out[i] = byHash.get(phones.get(i)!.hash)!;
  }
  await audit(tx, ctx, audits);
  return out;
}

/** Queue jobs for stored events: EVENT_BATCH per job, each named after its first event (deterministic, so a re-enqueue of the same batch is a no-op). */
export function eventJobs(tenantId: string, eventIds: string[]): { payload: { tenantId: string; eventIds: string[] }; jobId: string }[] {
  const out: { payload: { tenantId: string; eventIds: string[] }; jobId: string }[] = [];
  for (let i = 0; i < eventIds.length; i += EVENT_BATCH) {
    const ids = eventIds.slice(i, i + EVENT_BATCH);
    out.push({ payload: { tenantId, eventIds: ids }, jobId: jobId("evb", ids[0]!) });
  }
  return out;
}
