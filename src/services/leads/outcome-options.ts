import { and, eq, gte, lt, sql } from "drizzle-orm";
import { events } from "../../db/schema/index";
import { localDayBounds } from "../../domain/leads/sop";
import type { CONSULTATION_MODES } from "../conversions/schemas";
import { dbOf, requirePermission, type Ctx } from "../context";
import { leadConfig, tenantTimeZone } from "./internal";
import { getLead } from "./leads";

export type OutcomeMode = (typeof CONSULTATION_MODES)[number];

/**
 * What a consultation outcome of this lead may say: the lost reasons of its clinic's lead
 * settings, and the mode the form starts on: in person when the contact's visit (到诊) was recorded
 * today (the tenant's local day), else online (a consultation in the WeCom chat or by phone).
 * Readable by whoever may work the lead, unlike the settings themselves; consultants only for their
 * own leads (others: 404).
 */
export async function leadOutcomeOptions({ ctx, id }: { ctx: Ctx; id: string }): Promise<{ lostReasons: string[]; mode: OutcomeMode }> {
  requirePermission(ctx, "leads:work");
  const lead = await getLead({ ctx, id });
  const db = dbOf(ctx);
  const [config, tz] = await Promise.all([leadConfig(db, ctx.tenantId, lead.clinicId), tenantTimeZone(db, ctx.tenantId)]);
  const { start, end } = localDayBounds(ctx.deps.now(), tz);
  // Events are stored before they are acknowledged: a visit recorded a moment ago counts already.
  const [visit] = await db
    .select({ one: sql<number>`1` })
    .from(events)
    .where(and(eq(events.tenantId, ctx.tenantId), eq(events.contactId, lead.contactId), gte(events.occurredAt, start), lt(events.occurredAt, end), eq(events.type, "visit")))
    .limit(1);
  return { lostReasons: config.outcomes.lostReasons, mode: visit ? "in_person" : "online" };
}
