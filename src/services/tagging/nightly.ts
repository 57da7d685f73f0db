import { tenants } from "../../db/schema/index";
import { systemCtx, type ServiceDeps } from "../context";
import { runSetBased, type SetBasedResult } from "./set-based";

/**
 * The nightly pass for time-based rules (沉睡 after N days, spend leaving the 12-month window,
 * engagement decaying): the scheduled rules, set-based in SQL over all of a tenant's contacts,
 * writing only the tags that change.
 */
export async function runNightlyTagging({ deps, tenantId }: { deps: ServiceDeps; tenantId: string }): Promise<SetBasedResult> {
  const started = Date.now();
  const out = await runSetBased({ ctx: systemCtx(deps, tenantId, "nightly-tagging"), mode: "schedule" });
  deps.logger.info({ tenantId, ...out, ms: Date.now() - started }, "nightly tagging pass done");
  return out;
}

export async function allTenantIds(deps: ServiceDeps): Promise<string[]> {
  return (await deps.db.select({ id: tenants.id }).from(tenants)).map((t) => t.id);
}
