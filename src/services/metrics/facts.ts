import { sql } from "drizzle-orm";
import type { Tx } from "../../db/client";
import type { FactKind } from "../../db/schema/metrics";
import type { Ctx } from "../context";

/** Event types the funnel counts, and the fact kind each becomes. */
export const FACT_OF_EVENT: Readonly<Record<string, FactKind>> = {
  appointment_booked: "appointment",
  visit: "visit",
  consultation_outcome: "consultation",
  purchase: "purchase",
  refund: "refund",
  survey_answered: "survey",
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface FactEvent {
  id: string;
  contactId: string;
  type: string;
  occurredAt: Date;
  payload: Record<string, unknown>;
}

function items(p: Record<string, unknown>): string[] | null {
  if (Array.isArray(p.items)) return p.items.filter((x): x is string => typeof x === "string");
  if (typeof p.item === "string" && p.item) return [p.item];
  return null;
}

/**
 * Write the metric facts of a batch of events being applied, in its transaction (one statement).
 * The consultant credited is the event's staffId when it names a staff member of the tenant, else the
 * contact's owner now; the clinic the event's clinicId (a clinic of the tenant), else the contact's,
 * else that consultant's; the channel the contact's channel code state, else its source. Idempotent:
 * an event already recorded keeps its row.
 */
export async function recordFacts(tx: Tx, ctx: Ctx, batch: readonly FactEvent[]): Promise<number> {
  const rows = batch
    .filter((e) => FACT_OF_EVENT[e.type])
    .map((e) => {
      const p = e.payload;
      const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : null);
      return {
        event_id: e.id,
        contact_id: e.contactId,
        kind: FACT_OF_EVENT[e.type]!,
        occurred_at: e.occurredAt.toISOString(),
        staff_id: typeof p.staffId === "string" && UUID.test(p.staffId) ? p.staffId : null,
        clinic_id: typeof p.clinicId === "string" && UUID.test(p.clinicId) ? p.clinicId : null,
        outcome: typeof p.outcome === "string" ? p.outcome : null,
        mode: typeof p.mode === "string" ? p.mode : null,
        reason: typeof p.lostReason === "string" ? p.lostReason : null,
        amount: num(p.amount),
        score: num(p.score),
        items: items(p),
      };
    });
  if (!rows.length) return 0;
  await tx.execute(sql`
    insert into metric_facts (event_id, tenant_id, contact_id, kind, occurred_at, staff_id, clinic_id, channel, outcome, mode, reason, amount, score, items)
    select x.event_id, ${ctx.tenantId}::uuid, x.contact_id, x.kind, x.occurred_at, coalesce(es.id, c.owner_staff_id),
      coalesce(ec.id, c.clinic_id, os.clinic_id), coalesce(c.source_state, c.source), x.outcome, x.mode, x.reason, x.amount, x.score::smallint,
      (select array_agg(v) from jsonb_array_elements_text(x.items) v)
    from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as x(event_id uuid, contact_id uuid, kind text, occurred_at timestamptz, staff_id uuid, clinic_id uuid, outcome text, mode text, reason text, amount numeric, score int, items jsonb)
    join contacts c on c.tenant_id = ${ctx.tenantId}::uuid and c.id = x.contact_id
    left join staff es on es.tenant_id = ${ctx.tenantId}::uuid and es.id = x.staff_id
    left join clinics ec on ec.tenant_id = ${ctx.tenantId}::uuid and ec.id = x.clinic_id
    left join staff os on os.tenant_id = ${ctx.tenantId}::uuid and os.id = coalesce(es.id, c.owner_staff_id)
    on conflict (event_id) do nothing`);
  return rows.length;
}
