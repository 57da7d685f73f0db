import { and, eq, inArray, isNotNull, sql } from "drizzle-orm";
import type { Tx } from "../../db/client";
import { rowsOf } from "../../db/client";
import { contacts } from "../../db/schema/index";
import { ownsOnly, seesPii } from "../../domain/auth/permissions";
import { loadVisibleContact } from "../contacts/internal";
import { dbOf, requirePermission, type Ctx } from "../context";
import { ingestEvents } from "../events/ingest";

/**
 * Referrals (转介绍): a contact who came through another's personal channel code (or was created
 * with a referrerContactId) is linked to that referrer. The referrer gets a referral_joined event
 * when the link is made, and a referral_converted event when the referred contact first converts
 * (a converted consultation or a purchase), once each per referred contact (idempotency keys
 * `referral-joined-<id>` and `referral-converted-<id>`); the referral tag rules react to both.
 */

export interface ReferralLink {
  referredContactId: string;
  referrerContactId: string;
  /** When the link was made (the contact added, created or imported). */
  at: Date;
}

const system = (ctx: Ctx): Ctx => ({ ...ctx, actor: { kind: "system", name: "referrals" } });

/**
 * Record new referral links as referral_joined events on the referrers. Call inside the transaction
 * that links them (the events are enqueued after it commits); a link recorded before is not again.
 */
export async function recordReferralJoined(ctx: Ctx, links: readonly ReferralLink[]): Promise<number> {
  const list = links.filter((l) => l.referrerContactId !== l.referredContactId);
  let accepted = 0;
  for (let i = 0; i < list.length; i += 1000) {
    const r = await ingestEvents({
      ctx: system(ctx),
      source: "system",
      input: {
        events: list.slice(i, i + 1000).map((l) => ({
          type: "referral_joined",
          contactId: l.referrerContactId,
          occurredAt: l.at.toISOString(),
          idempotencyKey: `referral-joined-${l.referredContactId}`,
          data: { referredContactId: l.referredContactId },
        })),
      },
    });
    accepted += r.accepted;
  }
  return accepted;
}

interface BatchEvent {
  contactId: string;
  type: string;
  occurredAt: Date;
  payload: Record<string, unknown>;
}

const converts = (e: BatchEvent) => e.type === "purchase" || (e.type === "consultation_outcome" && e.payload.outcome === "converted");

/**
 * In the events worker's transaction: referred contacts of the batch that converted (a purchase
 * or a converted consultation) credit their referrer with one referral_converted event, for the
 * first conversion only (the key holds it once, however often they buy).
 */
export async function applyReferralConversions(tx: Tx, ctx: Ctx, batch: readonly BatchEvent[]): Promise<number> {
  const conv = batch.filter(converts);
  if (!conv.length) return 0;
  const referred = await tx
    .select({ id: contacts.id, referrer: contacts.referrerContactId })
    .from(contacts)
    .where(and(eq(contacts.tenantId, ctx.tenantId), inArray(contacts.id, [...new Set(conv.map((e) => e.contactId))]), isNotNull(contacts.referrerContactId)));
  if (!referred.length) return 0;
  const referrerOf = new Map(referred.map((r) => [r.id, r.referrer!]));
  // The earliest conversion of each referred contact in the batch.
  const first = new Map<string, BatchEvent>();
  for (const e of conv) {
    if (!referrerOf.has(e.contactId) || referrerOf.get(e.contactId) === e.contactId) continue;
    const seen = first.get(e.contactId);
    if (!seen || e.occurredAt < seen.occurredAt) first.set(e.contactId, e);
  }
  if (!first.size) return 0;
  const r = await ingestEvents({
    ctx: { ...system(ctx), tx },
    source: "system",
    input: {
      events: [...first.values()].map((e) => ({
        type: "referral_converted",
        contactId: referrerOf.get(e.contactId)!,
        occurredAt: e.occurredAt.toISOString(),
        idempotencyKey: `referral-converted-${e.contactId}`,
        data: { referredContactId: e.contactId, ...(typeof e.payload.amount === "number" ? { amount: e.payload.amount } : {}) },
      })),
    },
  });
  return r.accepted;
}

export interface ReferredContact {
  id: string;
  name: string | null;
  /** In clear for roles with PII rights on a contact they may see (consultants: their own); masked otherwise. */
  phone: string | null;
  phoneMasked: boolean;
  ownerStaffId: string | null;
  source: string;
  createdAt: string;
  /** The first purchase or converted consultation; null while not converted. */
  convertedAt: string | null;
  /** Yuan: purchases net of refunds, or converted consultations' amounts when no purchase is recorded. */
  revenue: number;
}

export interface ReferralsView {
  referrerContactId: string;
  counts: { referred: number; converted: number; revenue: number };
  items: ReferredContact[];
}

/** The contacts a contact referred, with whether and how much each converted (consultants: for contacts they own; others 404). */
export async function listReferrals({ ctx, contactId }: { ctx: Ctx; contactId: string }): Promise<ReferralsView> {
  requirePermission(ctx, "contacts:read");
  const db = dbOf(ctx);
  const referrer = await loadVisibleContact(db, ctx, contactId);
  const rows = rowsOf<{ id: string; name: string | null; phone_enc: string | null; phone_mask: string | null; owner_staff_id: string | null; source: string; created_at: string | Date; converted_at: string | Date | null; revenue: string | number | null }>(
    await db.execute(sql`
      select c.id, c.name, c.phone_enc, c.phone_mask, c.owner_staff_id, c.source, c.created_at, x.converted_at,
        case when x.purchases > 0 then x.purchased - x.refunded else x.consulted end as revenue
      from contacts c
      left join lateral (
        select
          min(e.occurred_at) filter (where e.type = 'purchase' or (e.type = 'consultation_outcome' and e.payload->>'outcome' = 'converted')) as converted_at,
          count(*) filter (where e.type = 'purchase') as purchases,
          coalesce(sum((e.payload->>'amount')::numeric) filter (where e.type = 'purchase'), 0) as purchased,
          coalesce(sum((e.payload->>'amount')::numeric) filter (where e.type = 'refund'), 0) as refunded,
          coalesce(sum((e.payload->>'amount')::numeric) filter (where e.type = 'consultation_outcome' and e.payload->>'outcome' = 'converted'), 0) as consulted
        from events e
        where e.tenant_id = c.tenant_id and e.contact_id = c.id and e.type in ('purchase', 'refund', 'consultation_outcome')
      ) x on true
      where c.tenant_id = ${ctx.tenantId}::uuid and c.referrer_contact_id = ${referrer.id}::uuid and c.id <> ${referrer.id}::uuid
      order by c.created_at desc, c.id
      limit 1000`),
  );
  const role = ctx.actor.kind === "staff" ? ctx.actor.role : null;
  const me = ctx.actor.kind === "staff" ? ctx.actor.staffId : null;
  const pii = ctx.deps.pii;
  const items: ReferredContact[] = rows.map((r) => {
    const clear = (role === null || (seesPii(role) && (!ownsOnly(role) || r.owner_staff_id === me))) && pii && r.phone_enc;
    const at = (d: string | Date) => new Date(d).toISOString();
    return {
      id: r.id,
      name: r.name,
      phone: clear ? pii.decrypt(r.phone_enc!) : r.phone_mask,
      phoneMasked: !clear && r.phone_mask !== null,
      ownerStaffId: r.owner_staff_id,
      source: r.source,
      createdAt: at(r.created_at),
      convertedAt: r.converted_at ? at(r.converted_at) : null,
      revenue: Math.round(Number(r.revenue ?? 0) * 100) / 100,
    };
  });
  const converted = items.filter((i) => i.convertedAt !== null);
  return {
    referrerContactId: referrer.id,
    counts: { referred: items.length, converted: converted.length, revenue: Math.round(converted.reduce((n, i) => n + i.revenue, 0) * 100) / 100 },
    items,
  };
}
