import { and, asc, eq } from "drizzle-orm";
import { staff } from "../../db/schema/index";
import { NotFoundError } from "../../errors";
import { dbOf, requirePermission, type Ctx } from "../context";
import { toStaffView, type StaffView } from "./schemas";

export async function listStaff({ ctx }: { ctx: Ctx }): Promise<StaffView[]> {
  requirePermission(ctx, "staff:read");
  const rows = await dbOf(ctx).select().from(staff).where(eq(staff.tenantId, ctx.tenantId)).orderBy(asc(staff.role), asc(staff.name));
  return rows.map(toStaffView);
}

export async function getStaff({ ctx, id }: { ctx: Ctx; id: string }): Promise<StaffView> {
  requirePermission(ctx, "staff:read");
  const [row] = await dbOf(ctx).select().from(staff).where(and(eq(staff.tenantId, ctx.tenantId), eq(staff.id, id)));
  if (!row) throw new NotFoundError("staff member");
  return toStaffView(row);
}
