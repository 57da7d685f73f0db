import { and, eq, isNull } from "drizzle-orm";
import { apiTokens, clinics, sessions, staff } from "../../db/schema/index";
import { hashPassword } from "../../domain/auth/password";
import { ConflictError, isUniqueViolation, NotFoundError, ValidationError, zodIssues } from "../../errors";
import { audit, requirePermission, withTransaction, type Ctx } from "../context";
import { staffAudit, toStaffView, UpdateStaffInput, type StaffView } from "./schemas";

export async function updateStaff({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }): Promise<StaffView> {
  requirePermission(ctx, "staff:write");
  const p = UpdateStaffInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const v = p.data;
  if (ctx.actor.kind === "staff" && ctx.actor.staffId === id && (v.active === false || (v.role && v.role !== "admin"))) {
    throw new ValidationError([{ field: v.active === false ? "active" : "role", message: "you cannot deactivate or demote yourself" }]);
  }
  const passwordHash = v.password ? await hashPassword(v.password) : undefined;
  return withTransaction(ctx, async (tx, ctx) => {
    const [before] = await tx.select().from(staff).where(and(eq(staff.tenantId, ctx.tenantId), eq(staff.id, id))).for("update");
    if (!before) throw new NotFoundError("staff member");
    if (v.clinicId) {
      const [c] = await tx.select({ id: clinics.id }).from(clinics).where(and(eq(clinics.tenantId, ctx.tenantId), eq(clinics.id, v.clinicId)));
      if (!c) throw new ValidationError([{ field: "clinicId", message: "no such clinic" }]);
    }
    const set: Partial<typeof staff.$inferInsert> = { updatedAt: ctx.deps.now() };
    if (v.name !== undefined) set.name = v.name;
    if (v.email !== undefined) set.email = v.email.toLowerCase();
    if (v.role !== undefined) set.role = v.role;
    if (v.wecomUserId !== undefined) set.wecomUserId = v.wecomUserId;
    if (v.clinicId !== undefined) set.clinicId = v.clinicId;
    if (v.skills !== undefined) set.skills = v.skills;
    if (v.capacity !== undefined) set.capacity = v.capacity;
    if (v.shift !== undefined) set.shift = v.shift;
    if (v.active !== undefined) set.active = v.active;
    if (passwordHash) set.passwordHash = passwordHash;
    try {
      const [row] = await tx.update(staff).set(set).where(and(eq(staff.tenantId, ctx.tenantId), eq(staff.id, id))).returning();
      // Deactivation, a role change or a new password ends every console session of that person.
      if (v.active === false || (v.role && v.role !== before.role) || passwordHash) {
        await tx.delete(sessions).where(and(eq(sessions.tenantId, ctx.tenantId), eq(sessions.staffId, id)));
      }
      // A person who leaves takes no working API token along: reactivation needs new tokens.
      if (v.active === false && before.active) {
        const revoked = await tx
          .update(apiTokens)
          .set({ revokedAt: ctx.deps.now() })
          .where(and(eq(apiTokens.tenantId, ctx.tenantId), eq(apiTokens.staffId, id), isNull(apiTokens.revokedAt)))
          .returning({ id: apiTokens.id });
        await audit(tx, ctx, revoked.map((t) => ({ action: "token.revoke", entityType: "api_token", entityId: t.id, after: { reason: "staff deactivated" } })));
      }
      await audit(tx, ctx, { action: "staff.update", entityType: "staff", entityId: id, before: staffAudit(before), after: staffAudit(row!) });
      return toStaffView(row!);
    } catch (err) {
      if (isUniqueViolation(err, "staff_tenant_email_uq")) throw new ConflictError("a staff member with this email exists", [{ field: "email", message: "already used" }]);
      if (isUniqueViolation(err, "staff_tenant_wecom_uq")) throw new ConflictError("a staff member with this WeCom userid exists", [{ field: "wecomUserId", message: "already used" }]);
      throw err;
    }
  });
}
