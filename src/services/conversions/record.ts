import { createHash } from "node:crypto";
import { and, eq, sql } from "drizzle-orm";
import type { DbOrTx, Tx } from "../../db/client";
import { rowsOf } from "../../db/client";
import { clinics, events, leads, staff } from "../../db/schema/index";
import { ownsOnly } from "../../domain/auth/permissions";
import { ConflictError, ForbiddenError, ValidationError, zodIssues, type FieldIssue } from "../../errors";
import { loadVisibleContact } from "../contacts/internal";
import { audit, requirePermission, withTransaction, type Ctx } from "../context";
import { ingestEvents } from "../events/ingest";
import { leadConfig } from "../leads/internal";
import { CONVERSION_INPUTS, EVENT_OF_CONVERSION, type ConsultationInput, type ConversionResult, type ConversionType, type RefundInput } from "./schemas";

/** A record may be dated this far ahead of our clock (a client's clock running fast), no further. */
const FUTURE_TOLERANCE_MS = 5 * 60_000;

type Parsed = { contactId: string; occurredAt?: string | undefined; idempotencyKey?: string | undefined; staffId?: string | undefined; clinicId?: string | undefined; note?: string | undefined } & Record<string, unknown>;

/**
 * Record an appointment, visit, consultation outcome, purchase or refund for a contact the caller
 * may see (consultants: their own; anyone else's is 404). It is stored as an event (the rules
 * engine moves visit status, spending tier, lost-reason tags; a consultation closes the open lead;
 * a visit plans its follow-up) with the consultant credited (`staffId`) and the clinic. The same
 * idempotency key (given, or derived from the body) stores it once.
 */
export async function recordConversion({ ctx, type, input }: { ctx: Ctx; type: ConversionType; input: unknown }): Promise<ConversionResult> {
  requirePermission(ctx, "conversions:write");
  const p = CONVERSION_INPUTS[type].safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const v = p.data as Parsed;
  const now = ctx.deps.now();
  const occurredAt = v.occurredAt ? new Date(v.occurredAt) : now;
  if (occurredAt.getTime() > now.getTime() + FUTURE_TOLERANCE_MS) throw new ValidationError([{ field: "occurredAt", message: "is in the future" }]);
  if (occurredAt.getUTCFullYear() < 2000) throw new ValidationError([{ field: "occurredAt", message: "is before the year 2000" }]);
  const consultant = ctx.actor.kind === "staff" && ownsOnly(ctx.actor.role);
  if (consultant && v.staffId && ctx.actor.kind === "staff" && v.staffId !== ctx.actor.staffId) {
    throw new ForbiddenError("consultants record for themselves: leave staffId out");
  }
  const eventType = EVENT_OF_CONVERSION[type];

  return withTransaction(ctx, async (tx, ctx) => {
    const contact = await loadVisibleContact(tx, ctx, v.contactId);
    const staffId = consultant && ctx.actor.kind === "staff" ? ctx.actor.staffId : (v.staffId ?? null);
    await checkRefs(tx, ctx, { staffId: consultant ? null : staffId, clinicId: v.clinicId ?? null });
    const clinicId = v.clinicId ?? null;
    const data: Record<string, unknown> = { ...eventData(type, v), ...(staffId ? { staffId } : {}), ...(clinicId ? { clinicId } : {}), ...(v.note ? { note: v.note } : {}) };
    const key = v.idempotencyKey ?? derivedKey(type, contact.id, v.occurredAt ?? minuteOf(now), data);

    // A key stored before: the same record sent again (answered with the first, whatever changed
    // since: a refund retried after it used up its purchase), or a clash with another record.
    const [prior] = await tx.select({ id: events.id, contactId: events.contactId, type: events.type, occurredAt: events.occurredAt, payload: events.payload }).from(events).where(and(eq(events.tenantId, ctx.tenantId), eq(events.idempotencyKey, key)));
    if (prior) return sameRecord(prior, contact.id, eventType, key);

    if (type === "consultation") {
      const c = v as unknown as ConsultationInput;
      if (c.outcome === "lost") {
        const reasons = (await leadConfig(tx, ctx.tenantId, clinicId ?? contact.clinicId)).outcomes.lostReasons;
        if (!reasons.includes(c.lostReason!)) throw new ValidationError([{ field: "lostReason", message: `must be one of ${reasons.join("、")}` }]);
      }
      // The open lead this outcome closes (the events worker closes it), for the record.
      const [open] = await tx.select({ id: leads.id }).from(leads).where(and(eq(leads.tenantId, ctx.tenantId), eq(leads.contactId, contact.id), eq(leads.status, "open")));
      if (open) data.leadId = open.id;
    }
    if (type === "refund") await checkRefund(tx, ctx, contact.id, v as unknown as RefundInput);

    // Stored by the system on the caller's behalf (consultants may not post raw events); the audit row names the caller.
    const ingested = await ingestEvents({
      ctx: { ...ctx, actor: { kind: "system", name: "conversions" } },
      source: consultant ? "workspace" : "api",
      input: { events: [{ type: eventType, contactId: contact.id, occurredAt: occurredAt.toISOString(), idempotencyKey: key, data }] },
    });
    const eventId = ingested.ids[0]!;
    if (ingested.accepted === 0) {
      // Stored by a concurrent call with the same key between our look and our insert.
      const [again] = await tx.select({ id: events.id, contactId: events.contactId, type: events.type, occurredAt: events.occurredAt, payload: events.payload }).from(events).where(and(eq(events.tenantId, ctx.tenantId), eq(events.id, eventId)));
      return sameRecord(again, contact.id, eventType, key);
    }
    await audit(tx, ctx, { action: `conversion.${type}`, entityType: "event", entityId: eventId, after: { type: eventType, contactId: contact.id, occurredAt: occurredAt.toISOString(), ...data } });
    return { eventId, type: eventType, contactId: contact.id, occurredAt: occurredAt.toISOString(), idempotencyKey: key, duplicate: false, data };
  });
}

type PriorEvent = { id: string; contactId: string; type: string; occurredAt: Date; payload: Record<string, unknown> };

/** The first record under a key, when it is the same kind of record for the same contact; else the key clashes (409). */
function sameRecord(prior: PriorEvent | undefined, contactId: string, eventType: ConversionResult["type"], key: string): ConversionResult {
  if (!prior || prior.contactId !== contactId || prior.type !== eventType) {
    throw new ConflictError("this idempotency key was used for another record", [{ field: "idempotencyKey", message: "already used for another record" }]);
  }
  return { eventId: prior.id, type: eventType, contactId, occurredAt: prior.occurredAt.toISOString(), idempotencyKey: key, duplicate: true, data: prior.payload };
}

/** The event's data for a record: the contract's fields (shared/DESIGN.md section 10) plus what metrics read. */
function eventData(type: ConversionType, v: Parsed): Record<string, unknown> {
  const pick = (...keys: string[]) => Object.fromEntries(keys.filter((k) => v[k] !== undefined).map((k) => [k, v[k]]));
  switch (type) {
    case "appointment":
      return pick("at", "item");
    case "visit":
      return pick("item");
    case "consultation":
      return { ...pick("outcome", "amount", "lostReason", "mode"), ...((v.items as string[] | undefined)?.length ? { items: v.items } : {}) };
    case "purchase":
      return pick("amount", "items");
    case "refund":
      return { ...pick("amount", "purchaseEventId", "reason"), ...((v.items as string[] | undefined)?.length ? { items: v.items } : {}) };
  }
}

/** The staff member credited and the clinic must be the tenant's. */
async function checkRefs(tx: Tx, ctx: Ctx, refs: { staffId: string | null; clinicId: string | null }): Promise<void> {
  const issues: FieldIssue[] = [];
  if (refs.staffId) {
    const [s] = await tx.select({ id: staff.id }).from(staff).where(and(eq(staff.tenantId, ctx.tenantId), eq(staff.id, refs.staffId)));
    if (!s) issues.push({ field: "staffId", message: "no such staff member" });
  }
  if (refs.clinicId) {
    const [c] = await tx.select({ id: clinics.id }).from(clinics).where(and(eq(clinics.tenantId, ctx.tenantId), eq(clinics.id, refs.clinicId)));
    if (!c) issues.push({ field: "clinicId", message: "no such clinic" });
  }
  if (issues.length) throw new ValidationError(issues);
}

/** A refund of a named purchase: a purchase event of the same contact, and no more than what is left of it. */
export async function checkRefund(tx: DbOrTx, ctx: Ctx, contactId: string, r: Pick<RefundInput, "purchaseEventId" | "amount">, fields = { purchaseEventId: "purchaseEventId", amount: "amount" }): Promise<void> {
  if (!r.purchaseEventId) return;
  const [purchase] = await tx
    .select({ id: events.id, payload: events.payload })
    .from(events)
    .where(and(eq(events.tenantId, ctx.tenantId), eq(events.id, r.purchaseEventId), eq(events.contactId, contactId), eq(events.type, "purchase")));
  if (!purchase) throw new ValidationError([{ field: fields.purchaseEventId, message: "is not a purchase of this contact" }]);
  const [done] = rowsOf<{ refunded: number | string | null }>(
    await tx.execute(sql`select coalesce(sum((payload->>'amount')::numeric), 0) as refunded from events
      where tenant_id = ${ctx.tenantId}::uuid and contact_id = ${contactId}::uuid and type = 'refund' and payload->>'purchaseEventId' = ${r.purchaseEventId}`),
  );
  const paid = typeof purchase.payload.amount === "number" ? purchase.payload.amount : 0;
  const left = Math.round((paid - Number(done?.refunded ?? 0)) * 100) / 100;
  if (r.amount > left + 1e-9) throw new ValidationError([{ field: fields.amount, message: `is more than what is left of the purchase (${left} yuan)` }]);
}

const minuteOf = (d: Date) => new Date(Math.floor(d.getTime() / 60_000) * 60_000).toISOString();

/** A stable key from what the record says: the same body (within the same minute when undated) is stored once. */
export function derivedKey(type: string, contactId: string, at: string, data: Record<string, unknown>): string {
  const canonical = JSON.stringify([type, contactId, new Date(at).toISOString(), Object.keys(data).sort().map((k) => [k, data[k]])]);
  return `${type}-${createHash("sha256").update(canonical).digest("hex").slice(0, 40)}`;
}
