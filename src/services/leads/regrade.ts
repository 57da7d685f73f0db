import { and, eq, inArray, sql } from "drizzle-orm";
import type { Tx } from "../../db/client";
import { leads } from "../../db/schema/index";
import { systemCtx, withTransaction, type Ctx, type ServiceDeps } from "../context";
import { contactTagsByGroup, leadConfig, regrade } from "./internal";

/** Tag groups the grade reads. */
export const GRADE_GROUPS: ReadonlySet<string> = new Set(["need", "engagement", "spending"]);

/**
 * Regrade the open leads of contacts whose need, engagement or spending tags just changed, in the
 * transaction that changed them (the events worker's: the contacts are locked there). A grade
 * change is recorded with its parts, like any other.
 */
export async function regradeLeadsOf(tx: Tx, ctx: Ctx, contactIds: readonly string[]): Promise<number> {
  if (!contactIds.length) return 0;
  const open = await tx.select().from(leads).where(and(eq(leads.tenantId, ctx.tenantId), inArray(leads.contactId, [...contactIds]), eq(leads.status, "open")));
  for (const lead of open) {
    await regrade(tx, ctx, lead, await leadConfig(tx, ctx.tenantId, lead.clinicId), await contactTagsByGroup(tx, ctx.tenantId, lead.contactId));
  }
  return open.length;
}

/**
 * Recency fades: once a day (after the nightly tag pass) regrade the open leads whose last signal
 * is in the fading window (older than the freshest recencyDays, younger than 4x plus a day), so an
 * A that nobody followed up in a week is not an A any more. Settings are per clinic; the window
 * uses the longest recencyDays any settings allow (365), filtered per lead by its own.
 */
export async function regradeFadingLeads(deps: ServiceDeps, tenantId: string): Promise<number> {
  const ctx = systemCtx(deps, tenantId, "lead-regrade");
  const now = deps.now();
  const candidates = await deps.db
    .select({ id: leads.id, contactId: leads.contactId })
    .from(leads)
    .where(and(eq(leads.tenantId, tenantId), eq(leads.status, "open"), sql`${leads.lastSignalAt} < ${now.toISOString()}::timestamptz - interval '1 day'`, sql`${leads.lastSignalAt} > ${now.toISOString()}::timestamptz - interval '1461 days'`));
  let changed = 0;
  const configs = new Map<string, Awaited<ReturnType<typeof leadConfig>>>();
  for (const c of candidates) {
    await withTransaction(ctx, async (tx, ctx) => {
      const [lead] = await tx.select().from(leads).where(and(eq(leads.id, c.id), eq(leads.status, "open"))).for("update");
      if (!lead) return;
      let config = configs.get(lead.clinicId ?? "");
      if (!config) configs.set(lead.clinicId ?? "", (config = await leadConfig(tx, tenantId, lead.clinicId)));
      const age = (now.getTime() - lead.lastSignalAt.getTime()) / 86_400_000;
      if (age < config.grading.recencyDays || age > 4 * config.grading.recencyDays + 1) return;
      const g = await regrade(tx, ctx, lead, config, await contactTagsByGroup(tx, tenantId, lead.contactId));
      if (g.grade !== lead.grade) changed++;
    });
  }
  return changed;
}
