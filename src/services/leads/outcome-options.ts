import { dbOf, requirePermission, type Ctx } from "../context";
import { leadConfig } from "./internal";
import { getLead } from "./leads";

/**
 * What a consultation outcome of this lead may say: the lost reasons of its clinic's lead
 * settings (for the outcome form). Readable by whoever may work the lead, unlike the settings
 * themselves; consultants only for their own leads (others: 404).
 */
export async function leadOutcomeOptions({ ctx, id }: { ctx: Ctx; id: string }): Promise<{ lostReasons: string[] }> {
  requirePermission(ctx, "leads:work");
  const lead = await getLead({ ctx, id });
  return { lostReasons: (await leadConfig(dbOf(ctx), ctx.tenantId, lead.clinicId)).outcomes.lostReasons };
}
