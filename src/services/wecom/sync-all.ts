import { wecomSettings } from "../../db/schema/index";
import { systemCtx, type ServiceDeps } from "../context";
import { startWecomSync } from "./sync";

/** The nightly job: start (or resume) a sync for every tenant with WeCom set up. */
export async function startAllWecomSyncs(deps: ServiceDeps): Promise<number> {
  const rows = await deps.db.select({ tenantId: wecomSettings.tenantId }).from(wecomSettings);
  for (const r of rows) await startWecomSync({ ctx: systemCtx(deps, r.tenantId, "scheduler") });
  return rows.length;
}
