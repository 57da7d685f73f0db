import { and, asc, eq } from "drizzle-orm";
import { z } from "zod";
import { clinics } from "../../db/schema/index";
import { ConflictError, isUniqueViolation, ValidationError, zodIssues } from "../../errors";
import { audit, dbOf, requirePermission, withTransaction, type Ctx } from "../context";

export const CreateClinicInput = z.object({
  name: z.string().trim().min(1).max(100),
  city: z.string().trim().min(1).max(50).optional(),
  address: z.string().trim().min(1).max(300).optional(),
});

export interface ClinicView {
  id: string;
  name: string;
  city: string | null;
  address: string | null;
  createdAt: string;
}

const view = (r: typeof clinics.$inferSelect): ClinicView => ({ id: r.id, name: r.name, city: r.city, address: r.address, createdAt: r.createdAt.toISOString() });

export async function createClinic({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<ClinicView> {
  requirePermission(ctx, "clinics:write");
  const p = CreateClinicInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  return withTransaction(ctx, async (tx, ctx) => {
    try {
      const [row] = await tx.insert(clinics).values({ tenantId: ctx.tenantId, name: p.data.name, city: p.data.city ?? null, address: p.data.address ?? null }).returning();
      await audit(tx, ctx, { action: "clinic.create", entityType: "clinic", entityId: row!.id, after: { name: row!.name, city: row!.city } });
      return view(row!);
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError("a clinic with this name exists", [{ field: "name", message: "already used" }]);
      throw err;
    }
  });
}

export async function listClinics({ ctx }: { ctx: Ctx }): Promise<ClinicView[]> {
  requirePermission(ctx, "clinics:read");
  const rows = await dbOf(ctx).select().from(clinics).where(eq(clinics.tenantId, ctx.tenantId)).orderBy(asc(clinics.name));
  return rows.map(view);
}

export async function findClinic(ctx: Ctx, id: string): Promise<ClinicView | null> {
  const [row] = await dbOf(ctx).select().from(clinics).where(and(eq(clinics.tenantId, ctx.tenantId), eq(clinics.id, id)));
  return row ? view(row) : null;
}
