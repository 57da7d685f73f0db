import { and, asc, eq, sql } from "drizzle-orm";
import { staff } from "../../db/schema/index";
import { dbOf, requirePermission, type Ctx } from "../context";
import { openLeadsOf } from "./internal";

export interface ConsultantView {
  id: string;
  name: string;
  clinicId: string | null;
  /** Open leads held now, against `capacity`. */
  openLeads: number;
  capacity: number;
}

/**
 * The tenant's active consultants with their load: whom a manager may give a lead to (reassignLead
 * takes only active consultants) and filter a team's work by. For roles that route leads
 * (leads:assign); the staff list itself stays with staff:read.
 */
export async function listConsultants({ ctx }: { ctx: Ctx }): Promise<ConsultantView[]> {
  requirePermission(ctx, "leads:assign");
  const rows = await dbOf(ctx)
    .select({ id: staff.id, name: staff.name, clinicId: staff.clinicId, capacity: staff.capacity, openLeads: openLeadsOf(sql`${staff.tenantId}`, sql`${staff.id}`) })
    .from(staff)
    .where(and(eq(staff.tenantId, ctx.tenantId), eq(staff.role, "consultant"), eq(staff.active, true)))
    .orderBy(asc(staff.name), asc(staff.id));
  return rows.map((r) => ({ ...r, openLeads: Number(r.openLeads) }));
}
