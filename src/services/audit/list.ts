import { and, desc, eq, lt, type SQL } from "drizzle-orm";
import { z } from "zod";
import { auditLog } from "../../db/schema/index";
import { ValidationError, zodIssues } from "../../errors";
import { dbOf, requirePermission, type Ctx } from "../context";

export const ListAuditInput = z.object({
  entityType: z.string().max(64).optional(),
  entityId: z.string().max(128).optional(),
  action: z.string().max(64).optional(),
  /** Who did it: one staff member. */
  actorStaffId: z.uuid().optional(),
  /** staff or system (jobs, WeCom callbacks, start-up). */
  actorKind: z.enum(["staff", "system"]).optional(),
  /** The `id` of the last row of the previous page. */
  cursor: z.coerce.number().int().positive().optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export interface AuditView {
  id: number;
  at: string;
  actorStaffId: string | null;
  actorKind: string;
  action: string;
  entityType: string;
  entityId: string;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  requestId: string | null;
}

export async function listAudit({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<{ items: AuditView[]; nextCursor: string | null }> {
  requirePermission(ctx, "audit:read");
  const p = ListAuditInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const v = p.data;
  const conds: SQL[] = [eq(auditLog.tenantId, ctx.tenantId)];
  if (v.entityType) conds.push(eq(auditLog.entityType, v.entityType));
  if (v.entityId) conds.push(eq(auditLog.entityId, v.entityId));
  if (v.action) conds.push(eq(auditLog.action, v.action));
  if (v.actorStaffId) conds.push(eq(auditLog.actorStaffId, v.actorStaffId));
  if (v.actorKind) conds.push(eq(auditLog.actorKind, v.actorKind));
  if (v.cursor) conds.push(lt(auditLog.id, v.cursor));
  const rows = await dbOf(ctx).select().from(auditLog).where(and(...conds)).orderBy(desc(auditLog.id)).limit(v.limit + 1);
  const more = rows.length > v.limit;
  const page = more ? rows.slice(0, v.limit) : rows;
  return {
    items: page.map((r) => ({ ...r, at: r.at.toISOString() })),
    nextCursor: more ? String(page.at(-1)!.id) : null,
  };
}
