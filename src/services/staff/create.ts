import { and, eq } from "drizzle-orm";
import { clinics, staff } from "../../db/schema/index";
import { hashPassword } from "../../domain/auth/password";
import { ConflictError, isUniqueViolation, ValidationError, zodIssues } from "../../errors";
import { audit, requirePermission, withTransaction, type Ctx } from "../context";
import { CreateStaffInput, staffAudit, toStaffView, type StaffView } from "./schemas";

export { CreateStaffInput };

export async function createStaff({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<StaffView> {
  requirePermission(ctx, "staff:write");
  const p = CreateStaffInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const v = p.data;
  const passwordHash = v.password ? await hashPassword(v.password) : null;
  return withTransaction(ctx, async (tx, ctx) => {
    if (v.clinicId) {
      const [c] = await tx.select({ id: clinics.id }).from(clinics).where(and(eq(clinics.tenantId, ctx.tenantId), eq(clinics.id, v.clinicId)));
      if (!c) throw new ValidationError([{ field: "clinicId", message: "no such clinic" }]);
    }
    try {
      const [row] = await tx
        .insert(staff)
        .values({
          tenantId: ctx.tenantId,
          name: v.name,
          email: v.email.toLowerCase(),
          role: v.role,
          passwordHash,
          wecomUserId: v.wecomUserId ?? null,
          clinicId: v.clinicId ?? null,
          skills: v.skills ?? [],
          capacity: v.capacity ?? 50,
          shift: v.shift ?? null,
        })
        .returning();
      await audit(tx, ctx, { action: "staff.create", entityType: "staff", entityId: row!.id, after: staffAudit(row!) });
      return toStaffView(row!);
    } catch (err) {
      if (isUniqueViolation(err, "staff_tenant_email_uq")) throw new ConflictError("a staff member with this email exists", [{ field: "email", message: "already used" }]);
      if (isUniqueViolation(err, "staff_tenant_wecom_uq")) throw new ConflictError("a staff member with this WeCom userid exists", [{ field: "wecomUserId", message: "already used" }]);
      throw err;
    }
  });
}
