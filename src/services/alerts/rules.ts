import { and, asc, eq, isNull, sql } from "drizzle-orm";
import { z } from "zod";
import type { DbOrTx } from "../../db/client";
import { alertEpisodes, alertRules, clinics } from "../../db/schema/index";
import { AlertRuleInput, AlertRulePatch, DEFAULT_ALERT_RULES, type AlertCondition, type AlertMetric, type AlertScope } from "../../domain/alerts/rules";
import { NotFoundError, ValidationError, zodIssues } from "../../errors";
import { audit, dbOf, requirePermission, withTransaction, type Ctx } from "../context";

export { AlertRuleInput, AlertRulePatch };

export interface AlertRuleView {
  id: string;
  name: string;
  metric: AlertMetric;
  condition: AlertCondition;
  scope: AlertScope;
  enabled: boolean;
  /** Episodes open now (one per scope key at most). */
  openEpisodes: number;
  createdByStaffId: string | null;
  createdAt: string;
  updatedAt: string;
}

type Row = typeof alertRules.$inferSelect;

const view = (r: Row, open = 0): AlertRuleView => ({
  id: r.id,
  name: r.name,
  metric: r.metric as AlertMetric,
  condition: r.condition as AlertCondition,
  scope: r.scope as AlertScope,
  enabled: r.enabled,
  openEpisodes: open,
  createdByStaffId: r.createdByStaffId,
  createdAt: r.createdAt.toISOString(),
  updatedAt: r.updatedAt.toISOString(),
});

/** A clinic named in a scope must be the tenant's own. */
async function checkScope(db: DbOrTx, tenantId: string, scope: AlertScope): Promise<void> {
  if (!scope.clinicId) return;
  const [c] = await db.select({ id: clinics.id }).from(clinics).where(and(eq(clinics.tenantId, tenantId), eq(clinics.id, scope.clinicId)));
  if (!c) throw new ValidationError([{ field: "scope.clinicId", message: "is not a clinic of this tenant" }]);
}

async function loadRule(db: DbOrTx, tenantId: string, id: string, lock = false): Promise<Row> {
  if (!z.uuid().safeParse(id).success) throw new NotFoundError("alert rule");
  const q = db.select().from(alertRules).where(and(eq(alertRules.tenantId, tenantId), eq(alertRules.id, id)));
  const [row] = lock ? await q.for("update") : await q;
  if (!row) throw new NotFoundError("alert rule");
  return row;
}

/** Close a rule's open episodes (its test changed or it was switched off): a later failure is a new episode. */
export async function closeOpenEpisodes(db: DbOrTx, tenantId: string, ruleId: string, at: Date, reason: string): Promise<number> {
  const rows = await db
    .update(alertEpisodes)
    .set({ closedAt: at, detail: sql`${alertEpisodes.detail} || ${JSON.stringify({ closedReason: reason })}::jsonb` })
    .where(and(eq(alertEpisodes.tenantId, tenantId), eq(alertEpisodes.ruleId, ruleId), isNull(alertEpisodes.closedAt)))
    .returning({ id: alertEpisodes.id });
  return rows.length;
}

export async function listAlertRules({ ctx }: { ctx: Ctx }): Promise<{ items: AlertRuleView[] }> {
  requirePermission(ctx, "analytics:manage");
  const db = dbOf(ctx);
  const rows = await db.select().from(alertRules).where(eq(alertRules.tenantId, ctx.tenantId)).orderBy(asc(alertRules.createdAt), asc(alertRules.id));
  const open = await db
    .select({ ruleId: alertEpisodes.ruleId, n: sql<number>`count(*)::int` })
    .from(alertEpisodes)
    .where(and(eq(alertEpisodes.tenantId, ctx.tenantId), isNull(alertEpisodes.closedAt)))
    .groupBy(alertEpisodes.ruleId);
  const byRule = new Map(open.map((o) => [o.ruleId, Number(o.n)]));
  return { items: rows.map((r) => view(r, byRule.get(r.id) ?? 0)) };
}

export async function createAlertRule({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<AlertRuleView> {
  requirePermission(ctx, "analytics:manage");
  const p = AlertRuleInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  return withTransaction(ctx, async (tx, ctx) => {
    await checkScope(tx, ctx.tenantId, p.data.scope);
    const [row] = await tx
      .insert(alertRules)
      .values({ tenantId: ctx.tenantId, name: p.data.name, metric: p.data.metric, condition: p.data.condition, scope: p.data.scope, enabled: p.data.enabled, createdByStaffId: ctx.actor.kind === "staff" ? ctx.actor.staffId : null })
      .returning();
    await audit(tx, ctx, { action: "alert_rule.create", entityType: "alert_rule", entityId: row!.id, after: { name: row!.name, metric: row!.metric, condition: row!.condition, scope: row!.scope, enabled: row!.enabled } });
    return view(row!);
  });
}

/**
 * Change a rule; the result is validated whole (a new metric must fit the condition). A changed
 * metric, condition or scope, or switching it off, closes its open episodes.
 */
export async function updateAlertRule({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }): Promise<AlertRuleView> {
  requirePermission(ctx, "analytics:manage");
  const p = AlertRulePatch.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  return withTransaction(ctx, async (tx, ctx) => {
    const before = await loadRule(tx, ctx.tenantId, id, true);
    const whole = AlertRuleInput.safeParse({
      name: p.data.name ?? before.name,
      metric: p.data.metric ?? before.metric,
      condition: p.data.condition ?? before.condition,
      scope: p.data.scope ?? before.scope,
      enabled: p.data.enabled ?? before.enabled,
    });
    if (!whole.success) throw new ValidationError(zodIssues(whole.error.issues));
    const next = whole.data;
    await checkScope(tx, ctx.tenantId, next.scope);
    const now = ctx.deps.now();
    const [row] = await tx
      .update(alertRules)
      .set({ name: next.name, metric: next.metric, condition: next.condition, scope: next.scope, enabled: next.enabled, updatedAt: now })
      .where(and(eq(alertRules.tenantId, ctx.tenantId), eq(alertRules.id, before.id)))
      .returning();
    const changed = JSON.stringify([before.metric, before.condition, before.scope]) !== JSON.stringify([next.metric, next.condition, next.scope]);
    if (changed || !next.enabled) await closeOpenEpisodes(tx, ctx.tenantId, before.id, now, changed ? "rule_changed" : "rule_disabled");
    await audit(tx, ctx, {
      action: "alert_rule.update",
      entityType: "alert_rule",
      entityId: before.id,
      before: { name: before.name, metric: before.metric, condition: before.condition, scope: before.scope, enabled: before.enabled },
      after: { name: next.name, metric: next.metric, condition: next.condition, scope: next.scope, enabled: next.enabled },
    });
    const [open] = await tx.select({ n: sql<number>`count(*)::int` }).from(alertEpisodes).where(and(eq(alertEpisodes.ruleId, before.id), isNull(alertEpisodes.closedAt)));
    return view(row!, Number(open?.n ?? 0));
  });
}

/** Delete a rule and its episodes (their history goes with it; switch a rule off to keep it). */
export async function deleteAlertRule({ ctx, id }: { ctx: Ctx; id: string }): Promise<AlertRuleView> {
  requirePermission(ctx, "analytics:manage");
  return withTransaction(ctx, async (tx, ctx) => {
    const row = await loadRule(tx, ctx.tenantId, id, true);
    await tx.delete(alertEpisodes).where(and(eq(alertEpisodes.tenantId, ctx.tenantId), eq(alertEpisodes.ruleId, row.id)));
    await tx.delete(alertRules).where(and(eq(alertRules.tenantId, ctx.tenantId), eq(alertRules.id, row.id)));
    await audit(tx, ctx, { action: "alert_rule.delete", entityType: "alert_rule", entityId: row.id, before: { name: row.name, metric: row.metric, condition: row.condition, scope: row.scope, enabled: row.enabled } });
    return view(row);
  });
}

/** The default rules of a new tenant (createTenant, in its transaction). */
export async function seedDefaultAlertRules(tx: DbOrTx, tenantId: string): Promise<void> {
  // A millisecond apart, so they list in this order.
  await tx.insert(alertRules).values(DEFAULT_ALERT_RULES.map((r, i) => ({ tenantId, name: r.name, metric: r.metric, condition: r.condition, scope: r.scope, enabled: r.enabled, createdAt: sql`now() + ${`${i} milliseconds`}::interval`, updatedAt: sql`now()` })));
}
