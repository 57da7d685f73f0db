import { and, eq, inArray } from "drizzle-orm";
import { auditLog, staff, tagRuleSets } from "../../db/schema/index";
import { dbOf, requirePermission, type Ctx } from "../context";

export interface RuleSetVersionPeople {
  /** Who saved the version (the draft's author, or who rolled back); null for the shipped set. */
  createdBy: string | null;
  /** Who published it (from the audit log); null for the shipped set or a version never published. */
  publishedBy: string | null;
}

/**
 * Who wrote and who published each version of the tenant's tag rules, by version number (the
 * console's history). Names only; versions without a person (the shipped set) are left out.
 */
export async function tagRuleVersionPeople({ ctx }: { ctx: Ctx }): Promise<Record<number, RuleSetVersionPeople>> {
  requirePermission(ctx, "rules:read");
  const db = dbOf(ctx);
  const names = new Map((await db.select({ id: staff.id, name: staff.name }).from(staff).where(eq(staff.tenantId, ctx.tenantId))).map((s) => [s.id, s.name]));
  const out: Record<number, RuleSetVersionPeople> = {};
  const entry = (v: number) => (out[v] ??= { createdBy: null, publishedBy: null });
  const created = await db.select({ version: tagRuleSets.version, by: tagRuleSets.createdByStaffId }).from(tagRuleSets).where(eq(tagRuleSets.tenantId, ctx.tenantId));
  for (const r of created) if (r.by) entry(r.version).createdBy = names.get(r.by) ?? null;
  // A version is published once (a rollback publishes a new copy), so the latest entry is the one.
  const published = await db
    .select({ version: auditLog.entityId, by: auditLog.actorStaffId, at: auditLog.at })
    .from(auditLog)
    .where(and(eq(auditLog.tenantId, ctx.tenantId), eq(auditLog.entityType, "tag_rule_set"), inArray(auditLog.action, ["tag_rules.publish", "tag_rules.rollback"])))
    .orderBy(auditLog.at);
  for (const r of published) {
    const v = Number(r.version);
    if (Number.isInteger(v) && r.by) entry(v).publishedBy = names.get(r.by) ?? null;
  }
  return out;
}
