import { eq } from "drizzle-orm";
import type { DbOrTx } from "../../db/client";
import { analyticsSettings } from "../../db/schema/index";
import { AnalyticsSettings, analyticsSettingsOf } from "../../domain/analytics/settings";
import { ValidationError, zodIssues } from "../../errors";
import { audit, dbOf, requirePermission, withTransaction, type Ctx } from "../context";

export { AnalyticsSettings };

/** The tenant's analytics settings with defaults filled in (no row: the defaults). */
export async function loadAnalyticsSettings(db: DbOrTx, tenantId: string): Promise<AnalyticsSettings> {
  const [row] = await db.select({ config: analyticsSettings.config }).from(analyticsSettings).where(eq(analyticsSettings.tenantId, tenantId));
  return analyticsSettingsOf(row?.config);
}

export async function getAnalyticsSettings({ ctx }: { ctx: Ctx }): Promise<AnalyticsSettings> {
  requirePermission(ctx, "analytics:manage");
  return loadAnalyticsSettings(dbOf(ctx), ctx.tenantId);
}

/** Replace the settings (sections and fields left out take their defaults); audited with before and after. */
export async function putAnalyticsSettings({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<AnalyticsSettings> {
  requirePermission(ctx, "analytics:manage");
  const p = AnalyticsSettings.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  return withTransaction(ctx, async (tx, ctx) => {
    const before = await loadAnalyticsSettings(tx, ctx.tenantId);
    const now = ctx.deps.now();
    await tx
      .insert(analyticsSettings)
      .values({ tenantId: ctx.tenantId, config: p.data, updatedAt: now })
      .onConflictDoUpdate({ target: analyticsSettings.tenantId, set: { config: p.data, updatedAt: now } });
    await audit(tx, ctx, { action: "analytics.settings.update", entityType: "analytics_settings", entityId: ctx.tenantId, before, after: p.data });
    return p.data;
  });
}
