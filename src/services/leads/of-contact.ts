import { and, desc, eq, or, sql } from "drizzle-orm";
import { leads } from "../../db/schema/index";
import { ownsOnly } from "../../domain/auth/permissions";
import { dbOf, requirePermission, type Ctx } from "../context";
import { leadViews, type LeadView } from "./leads";

/**
 * A contact's lead as the chat sidebar shows it: the open one (one per contact), else the most
 * recent closed one. Consultants see their open leads and the closed ones they were the
 * consultant of (as getLead); null when there is none the caller may see.
 */
export async function leadOfContact({ ctx, contactId }: { ctx: Ctx; contactId: string }): Promise<LeadView | null> {
  requirePermission(ctx, "leads:read");
  const mine =
    ctx.actor.kind === "staff" && ownsOnly(ctx.actor.role)
      ? or(eq(leads.activeOwnerStaffId, ctx.actor.staffId), and(sql`${leads.status} <> 'open'`, eq(leads.ownerStaffId, ctx.actor.staffId)))
      : undefined;
  const [row] = await dbOf(ctx)
    .select({ id: leads.id })
    .from(leads)
    .where(and(eq(leads.tenantId, ctx.tenantId), eq(leads.contactId, contactId), mine))
    .orderBy(sql`${leads.status} = 'open' desc`, desc(leads.createdAt))
    .limit(1);
  if (!row) return null;
  const [view] = await leadViews(ctx, [row.id]);
  return view ?? null;
}
