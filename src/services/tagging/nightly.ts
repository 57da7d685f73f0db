import { and, asc, eq, gt, isNull } from "drizzle-orm";
import { contacts, tenants } from "../../db/schema/index";
import { systemCtx, withTransaction, type ServiceDeps } from "../context";
import { applyRulesToContact } from "./apply-rules";

export interface NightlyResult {
  contacts: number;
  changes: number;
}

/**
 * The nightly pass for time-based rules (沉睡 after N days, spend leaving the 12-month window,
 * engagement decaying): every contact of the tenant, in pages, each in its own short transaction.
 * This runs the same evaluator as the events worker, one contact at a time; the set-based SQL
 * evaluator replaces it for large tenants.
 */
export async function runNightlyTagging({ deps, tenantId, pageSize = 500 }: { deps: ServiceDeps; tenantId: string; pageSize?: number }): Promise<NightlyResult> {
  const ctx = systemCtx(deps, tenantId, "nightly-tagging");
  const out: NightlyResult = { contacts: 0, changes: 0 };
  let after = "00000000-0000-0000-0000-000000000000";
  for (;;) {
    const page = await deps.db
      .select({ id: contacts.id })
      .from(contacts)
      .where(and(eq(contacts.tenantId, tenantId), isNull(contacts.deletedAt), gt(contacts.id, after)))
      .orderBy(asc(contacts.id))
      .limit(pageSize);
    if (page.length === 0) break;
    for (const c of page) {
      const r = await withTransaction(ctx, async (tx, ctx) => {
        await tx.select({ id: contacts.id }).from(contacts).where(eq(contacts.id, c.id)).for("update");
        return applyRulesToContact(tx, ctx, c.id, { kind: "schedule" });
      });
      out.contacts++;
      out.changes += r.changes.length;
    }
    after = page.at(-1)!.id;
  }
  deps.logger.info({ tenantId, ...out }, "nightly tagging pass done");
  return out;
}

export async function allTenantIds(deps: ServiceDeps): Promise<string[]> {
  return (await deps.db.select({ id: tenants.id }).from(tenants)).map((t) => t.id);
}
