import { and, desc, eq, gt, inArray } from "drizzle-orm";
import { z } from "zod";
import type { DbOrTx } from "../../db/client";
import { consents, contacts, staff } from "../../db/schema/index";
import { isOptOutRequest } from "../../domain/consent/opt-out";
import { NotFoundError, ValidationError, zodIssues } from "../../errors";
import { actorStaffId, audit, dbOf, requirePermission, withTransaction, type Ctx } from "../context";
import { loadVisibleContact } from "../contacts/internal";

/**
 * Consent and opt-out (个人信息保护法). The contact's current state is contacts.marketing_opt_out_at
 * (null: marketing may be sent); every change is a consents row with its time, source and actor,
 * written in the same transaction and audited. Opting out stops marketing only: service messages
 * the patient asked for (appointment reminders, aftercare) stay allowed and are labelled as such.
 */

/** message (退订), wecom_delete (deleted their last consultant), staff, api, import. */
export const CONSENT_SOURCES = ["message", "wecom_delete", "staff", "api", "import"] as const;
export type ConsentSource = (typeof CONSENT_SOURCES)[number];

export interface ConsentChangeInput {
  contactId: string;
  source: ConsentSource;
  actorStaffId?: string | null | undefined;
  /** The event that carried the request (a 退订 message, a contact_deleted). */
  eventId?: string | null | undefined;
  note?: string | null | undefined;
  /** When the patient asked (the event's time); now by default. */
  at?: Date | undefined;
}

export interface ConsentChange {
  /** False when the contact was already in that state, or a later decision is on record. */
  changed: boolean;
  consentId: string | null;
  marketingOptOutAt: Date | null;
}

export interface ConsentView {
  id: string;
  status: "granted" | "revoked";
  source: string;
  actorStaffId: string | null;
  actorName: string | null;
  eventId: string | null;
  note: string | null;
  at: string;
}

async function change(tx: DbOrTx, ctx: Ctx, input: ConsentChangeInput, status: "granted" | "revoked"): Promise<ConsentChange> {
  const at = input.at ?? ctx.deps.now();
  const [row] = await tx
    .select({ id: contacts.id, optOutAt: contacts.marketingOptOutAt })
    .from(contacts)
    .where(and(eq(contacts.tenantId, ctx.tenantId), eq(contacts.id, input.contactId)))
    .for("update");
  if (!row) throw new NotFoundError("contact");
  const unchanged = { changed: false, consentId: null, marketingOptOutAt: row.optOutAt };
  if (status === "revoked" ? row.optOutAt !== null : row.optOutAt === null) return unchanged;
  if (input.eventId) {
    // An event is applied once; a replay (or the sweeper) finds its row.
    const [seen] = await tx.select({ id: consents.id }).from(consents).where(and(eq(consents.tenantId, ctx.tenantId), eq(consents.eventId, input.eventId))).limit(1);
    if (seen) return unchanged;
  }
  if (input.at) {
    // Events arrive late: a decision recorded after the patient's request wins over it.
    const [later] = await tx
      .select({ id: consents.id })
      .from(consents)
      .where(and(eq(consents.tenantId, ctx.tenantId), eq(consents.contactId, input.contactId), gt(consents.at, at)))
      .limit(1);
    if (later) return unchanged;
  }
  const [consent] = await tx
    .insert(consents)
    .values({ tenantId: ctx.tenantId, contactId: input.contactId, status, source: input.source, actorStaffId: input.actorStaffId ?? null, eventId: input.eventId ?? null, note: input.note ?? null, at })
    .returning({ id: consents.id });
  const optOutAt = status === "revoked" ? at : null;
  await tx
    .update(contacts)
    .set({ marketingOptOutAt: optOutAt, updatedAt: ctx.deps.now() })
    .where(and(eq(contacts.tenantId, ctx.tenantId), eq(contacts.id, input.contactId)));
  // The note may quote the patient: it stays in consents, not in the audit log.
  await audit(tx, ctx, {
    action: status === "revoked" ? "contact.opt_out" : "contact.opt_in",
    entityType: "contact",
    entityId: input.contactId,
    before: { marketingOptOutAt: row.optOutAt?.toISOString() ?? null },
    after: { marketingOptOutAt: optOutAt?.toISOString() ?? null, source: input.source, consentId: consent!.id, eventId: input.eventId ?? null },
  });
  return { changed: true, consentId: consent!.id, marketingOptOutAt: optOutAt };
}

/** Opt the contact out of marketing (idempotent: already out, or the same event again, changes nothing). */
export function optOut(tx: DbOrTx, ctx: Ctx, input: ConsentChangeInput): Promise<ConsentChange> {
  return change(tx, ctx, input, "revoked");
}

/** Record renewed consent (the patient asks to receive again): marketing may be sent from now on. */
export function optIn(tx: DbOrTx, ctx: Ctx, input: ConsentChangeInput): Promise<ConsentChange> {
  return change(tx, ctx, input, "granted");
}

/**
 * Who of these contacts may receive a send now. Service sends (appointment reminders, aftercare the
 * patient asked for) are always allowed; marketing sends are refused for contacts who opted out
 * (and for ids that are not the tenant's contacts).
 */
export async function allowedRecipients(
  tx: DbOrTx,
  ctx: Ctx,
  contactIds: readonly string[],
  opts: { service: boolean },
): Promise<{ allowed: string[]; refused: { contactId: string; reason: string }[] }> {
  const ids = [...new Set(contactIds)];
  if (opts.service || ids.length === 0) return { allowed: ids, refused: [] };
  const state = new Map<string, Date | null>();
  for (let i = 0; i < ids.length; i += 10_000) {
    const rows = await tx
      .select({ id: contacts.id, optOutAt: contacts.marketingOptOutAt })
      .from(contacts)
      .where(and(eq(contacts.tenantId, ctx.tenantId), inArray(contacts.id, ids.slice(i, i + 10_000))));
    for (const r of rows) state.set(r.id, r.optOutAt);
  }
  const allowed: string[] = [];
  const refused: { contactId: string; reason: string }[] = [];
  for (const id of ids) {
    const s = state.get(id);
    if (s === undefined) refused.push({ contactId: id, reason: "no such contact" });
    else if (s) refused.push({ contactId: id, reason: optedOutReason(s) });
    else allowed.push(id);
  }
  return { allowed, refused };
}

export function optedOutReason(at: Date): string {
  return `the contact opted out of marketing (退订) on ${at.toISOString()}`;
}

/**
 * Opt-outs carried by events, applied inside the events worker's transaction: a message asking to
 * stop (退订, see isOptOutRequest; in a 1:1 chat or a group chat: they asked either way) and a customer deleting their last consultant (contact_deleted by
 * the contact with no follow left). Each event opts out once (the consents row keeps its id).
 */
export async function applyEventOptOuts(
  tx: DbOrTx,
  ctx: Ctx,
  evs: readonly { id: string; type: string; contactId: string; occurredAt: Date; payload: Record<string, unknown> }[],
): Promise<number> {
  let n = 0;
  for (const e of [...evs].sort((a, b) => a.occurredAt.getTime() - b.occurredAt.getTime())) {
    let source: ConsentSource | null = null;
    if (e.type === "message_received" && typeof e.payload.text === "string" && isOptOutRequest(e.payload.text)) source = "message";
    if (e.type === "contact_deleted" && e.payload.by === "contact") {
      const remaining = e.payload.remainingFollows;
      if (!(typeof remaining === "number" && remaining > 0)) source = "wecom_delete";
    }
    if (!source) continue;
    const r = await optOut(tx, ctx, { contactId: e.contactId, source, eventId: e.id, at: e.occurredAt });
    if (r.changed) n++;
  }
  return n;
}

// ---------------------------------------------------------------- staff verbs

export const ConsentNoteInput = z.object({
  /** Why, in the staff member's words (e.g. 患者电话里要求不再发送活动消息). */
  note: z.string().trim().min(1).max(500).optional(),
});
export type ConsentNoteInput = z.infer<typeof ConsentNoteInput>;

export interface ConsentStateView {
  contactId: string;
  optedOut: boolean;
  marketingOptOutAt: string | null;
  /** False when the contact was already in the requested state (nothing recorded). */
  changed: boolean;
}

async function staffChange({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }, status: "granted" | "revoked"): Promise<ConsentStateView> {
  requirePermission(ctx, "contacts:write");
  const p = ConsentNoteInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  return withTransaction(ctx, async (tx, ctx) => {
    // Consultants change only their own contacts: others are not found.
    await loadVisibleContact(tx, ctx, id, true);
    const fn = status === "revoked" ? optOut : optIn;
    const r = await fn(tx, ctx, { contactId: id, source: ctx.actor.kind === "staff" ? "staff" : "api", actorStaffId: actorStaffId(ctx), note: p.data.note ?? null });
    return { contactId: id, optedOut: r.marketingOptOutAt !== null, marketingOptOutAt: r.marketingOptOutAt?.toISOString() ?? null, changed: r.changed };
  });
}

/** Staff mark a contact as opted out of marketing (the patient asked by phone, in person …). */
export function optOutContact(args: { ctx: Ctx; id: string; input: unknown }): Promise<ConsentStateView> {
  return staffChange(args, "revoked");
}

/** Staff record that the patient consents to marketing again. */
export function optInContact(args: { ctx: Ctx; id: string; input: unknown }): Promise<ConsentStateView> {
  return staffChange(args, "granted");
}

/** The contact's consent history, newest first. */
export async function listConsents({ ctx, id }: { ctx: Ctx; id: string }): Promise<{ contactId: string; marketingOptOutAt: string | null; items: ConsentView[] }> {
  requirePermission(ctx, "contacts:read");
  const db = dbOf(ctx);
  const contact = await loadVisibleContact(db, ctx, id);
  const rows = await db
    .select({ c: consents, actorName: staff.name })
    .from(consents)
    .leftJoin(staff, eq(staff.id, consents.actorStaffId))
    .where(and(eq(consents.tenantId, ctx.tenantId), eq(consents.contactId, id)))
    .orderBy(desc(consents.at), desc(consents.id))
    .limit(500);
  return {
    contactId: id,
    marketingOptOutAt: contact.marketingOptOutAt?.toISOString() ?? null,
    items: rows.map(({ c, actorName }) => ({
      id: c.id,
      status: c.status,
      source: c.source,
      actorStaffId: c.actorStaffId,
      actorName: actorName ?? null,
      eventId: c.eventId,
      note: c.note,
      at: c.at.toISOString(),
    })),
  };
}
