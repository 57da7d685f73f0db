import { sql, type SQL } from "drizzle-orm";
import { rowsOf, type DbOrTx } from "../../db/client";
import type { SEND_STATUSES } from "../../db/schema/index";

export type SendStatus = (typeof SEND_STATUSES)[number];

/**
 * The send ledger (send_quota, per contact and local day of the tenant): the planner reserves
 * `mass` (every 1:1 send: WeCom's per-customer cap) and `marketing` (non-service sends: the fatigue
 * cap) when it plans a send (plan.ts). A send that does not reach the contact gives its
 * reservation back when it leaves the pipeline:
 * - sent: keeps both; over_quota (WeCom's status 3: the customer already had a mass message that
 *   day) keeps `mass` (the day is used up in WeCom) and gives back `marketing`;
 * - skipped, cancelled, failed, not_friend: give back both.
 * Every status change that ends a send stamps result_at in the same statement as the release, so
 * "a final send with result_at null" means "ended by someone else (e.g. an enrollment ended),
 * reservation still held": the delivery sweep releases those (healLedger).
 */
export type Release = "both" | "marketing" | "none";

/** Sends that end without reaching the contact, and what each gives back. */
export const RELEASE_OF: Partial<Record<SendStatus, Release>> = { skipped: "both", cancelled: "both", failed: "both", not_friend: "both", over_quota: "marketing", sent: "none" };

/**
 * Move the tenant's sends matching `where` (over `s`) from one of `from` to `to` (null: keep the
 * status), setting `set` too, stamping result_at and releasing their reservations, in one
 * statement. Returns the moved sends.
 */
export async function endSends(
  db: DbOrTx,
  o: { tenantId: string; ledgerTz: string; now: Date; where: SQL; from: readonly SendStatus[]; to: SendStatus | null; reason?: string | null | SQL; set?: SQL; release?: Release; limit?: number },
): Promise<{ id: string; contactId: string | null; chatId: string | null }[]> {
  const release = o.release ?? (o.to ? (RELEASE_OF[o.to] ?? "none") : "both");
  const status = o.to ? sql`${o.to}::text` : sql`s.status`;
  const from = sql.join(o.from.map((f) => sql`${f}::text`), sql`, `);
  const reason = o.reason === undefined ? sql`s.reason` : o.reason === null || typeof o.reason === "string" ? sql`${o.reason === null ? null : o.reason.slice(0, 500)}::text` : sql`left(${o.reason}, 500)`;
  const target = o.limit ? sql`s.id in (select id from sends s where s.tenant_id = ${o.tenantId}::uuid and s.status in (${from}) and ${o.where} limit ${o.limit} for update skip locked)` : sql`true`;
  const mass = release === "both" ? sql`count(*)` : sql`0`;
  const mk = release === "none" ? sql`0` : sql`count(*) filter (where not service)`;
  const rows = rowsOf<{ id: string; contact_id: string | null; chat_id: string | null }>(
    await db.execute(sql`
      with moved as (
        update sends s set status = ${status}, reason = ${reason}, result_at = ${o.now.toISOString()}::timestamptz ${o.set ? sql`, ${o.set}` : sql``}
        where s.tenant_id = ${o.tenantId}::uuid and s.status in (${from}) and ${o.where} and ${target}
        returning s.id, s.contact_id, s.chat_id, s.scheduled_at, s.service
      ),
      released as (
        update send_quota q set mass = greatest(q.mass - x.mass, 0), marketing = greatest(q.marketing - x.mk, 0)
        from (
          select contact_id, (scheduled_at at time zone ${o.ledgerTz}::text)::date as day, (${mass})::int as mass, (${mk})::int as mk
          from moved where contact_id is not null group by 1, 2
        ) x
        where ${release !== "none"}::boolean and q.tenant_id = ${o.tenantId}::uuid and q.contact_id = x.contact_id and q.day = x.day
        returning 1
      )
      select id, contact_id, chat_id, (select count(*) from released) as released from moved`),
  );
  return rows.map((r) => ({ id: r.id, contactId: r.contact_id, chatId: r.chat_id }));
}

/** Ids as a SQL list. */
export function idList(ids: readonly string[]): SQL {
  return sql.join(ids.map((id) => sql`${id}::uuid`), sql`, `);
}
