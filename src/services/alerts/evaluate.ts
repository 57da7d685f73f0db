import { and, eq, inArray, isNull, notInArray, sql } from "drizzle-orm";
import { rowsOf, type Tx } from "../../db/client";
import { alertEpisodes, alertRules, clinics, staff, tenants } from "../../db/schema/index";
import { AlertCondition, AlertScope, ALERT_METRIC_KEYS, alertMessage, judge, localNow, windowsFor, type Point, type Verdict } from "../../domain/alerts/rules";
import { systemCtx, withTransaction, type Ctx, type ServiceDeps } from "../context";
import { notifyStaff } from "../notifications/notify";
import { metricSeries, type SeriesRow } from "./series";

export interface EvaluationResult {
  rules: number;
  /** Episodes opened (each notified once), kept open, closed (recovered, or their scope is gone). */
  opened: number;
  stillOpen: number;
  closed: number;
}

interface ScopeSlice {
  key: string;
  name: string;
  clinicId: string | null;
}

/** Sum the rows of a scope into one point per window key. */
function pointsOf(rows: readonly SeriesRow[], slice: ScopeSlice): Map<string, Point> {
  const out = new Map<string, Point>();
  for (const r of rows) {
    if (slice.clinicId !== null && r.clinicId !== slice.clinicId) continue;
    const p = out.get(r.key) ?? { num: 0, den: 0 };
    out.set(r.key, { num: p.num + r.num, den: p.den + r.den });
  }
  return out;
}

/**
 * Evaluate every enabled alert rule of a tenant at `now` (default: the clock), in one transaction
 * under a per-tenant advisory lock (two evaluations at once wait for each other). Per rule and
 * scope: failing with no open episode -> open one (INSERT … ON CONFLICT DO NOTHING on the partial
 * unique index, so only one evaluation can) and notify every active manager and admin once, with a
 * dedupe key per episode and person; failing with one open -> last_seen_at and the latest value,
 * no message; passing -> close it; not enough volume to judge -> leave it as it is. Open episodes
 * of disabled rules and of scopes no longer evaluated (a clinic gone from perClinic) are closed.
 */
export async function evaluateAlerts({ deps, tenantId, now }: { deps: ServiceDeps; tenantId: string; now?: Date }): Promise<EvaluationResult> {
  const at = now ?? deps.now();
  const ctx = systemCtx(deps, tenantId, "alerts");
  return withTransaction(ctx, async (tx, ctx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`siyu-alerts-${tenantId}`}::text))`);
    const [t] = await tx.select({ tz: tenants.timezone }).from(tenants).where(eq(tenants.id, tenantId));
    if (!t) return { rules: 0, opened: 0, stillOpen: 0, closed: 0 };
    const local = localNow(at, t.tz);
    const result: EvaluationResult = { rules: 0, opened: 0, stillOpen: 0, closed: 0 };
    // Disabled rules keep no open episode (PATCH closes them too; this covers rows changed by hand).
    const disabled = await tx
      .update(alertEpisodes)
      .set({ closedAt: at })
      .where(and(eq(alertEpisodes.tenantId, tenantId), isNull(alertEpisodes.closedAt), inArray(alertEpisodes.ruleId, tx.select({ id: alertRules.id }).from(alertRules).where(and(eq(alertRules.tenantId, tenantId), eq(alertRules.enabled, false))))))
      .returning({ id: alertEpisodes.id });
    result.closed += disabled.length;
    const rules = await tx.select().from(alertRules).where(and(eq(alertRules.tenantId, tenantId), eq(alertRules.enabled, true)));
    if (!rules.length) return result;
    const clinicRows = await tx.select({ id: clinics.id, name: clinics.name }).from(clinics).where(eq(clinics.tenantId, tenantId));
    const clinicName = new Map(clinicRows.map((c) => [c.id, c.name]));
    let managers: string[] | null = null;
    for (const rule of rules) {
      const metric = ALERT_METRIC_KEYS.find((m) => m === rule.metric);
      const cond = AlertCondition.safeParse(rule.condition);
      const scope = AlertScope.safeParse(rule.scope ?? {});
      if (!metric || !cond.success || !scope.success) {
        ctx.logger.warn({ tenantId, ruleId: rule.id }, "alert rule no longer valid: skipped");
        continue;
      }
      result.rules++;
      const slices: ScopeSlice[] = scope.data.perClinic
        ? clinicRows.map((c) => ({ key: c.id, name: c.name, clinicId: c.id }))
        : scope.data.clinicId
          ? [{ key: scope.data.clinicId, name: clinicName.get(scope.data.clinicId) ?? "已删除的门店", clinicId: scope.data.clinicId }]
          : [{ key: "all", name: "全部门店", clinicId: null }];
      const rows = await metricSeries(tx, { tenantId, timeZone: t.tz, metric, windows: windowsFor(metric, cond.data, local) });
      for (const slice of slices) {
        const verdict = judge(metric, cond.data, pointsOf(rows, slice), local);
        if (verdict.failing === true) {
          const opened = await openEpisode(tx, ctx, { ruleId: rule.id, scopeKey: slice.key, at, verdict, clinicId: slice.clinicId });
          if (opened) {
            managers ??= (await tx.select({ id: staff.id }).from(staff).where(and(eq(staff.tenantId, tenantId), eq(staff.active, true), inArray(staff.role, ["manager", "admin"])))).map((s) => s.id);
            const msg = alertMessage({ ruleName: rule.name, metric, condition: cond.data, scopeName: slice.name, verdict });
            await notifyStaff(tx, ctx, managers.map((staffId) => ({ staffId, kind: "alert", title: msg.title, body: msg.body, dedupeKey: `alert-${opened}-${staffId}` })));
            await tx.update(alertEpisodes).set({ notifiedAt: at }).where(eq(alertEpisodes.id, opened));
            result.opened++;
          } else {
            await tx
              .update(alertEpisodes)
              .set({ lastSeenAt: at, value: verdict.value, baseline: verdict.baseline, detail: sql`${alertEpisodes.detail} || ${JSON.stringify(verdict.detail)}::jsonb` })
              .where(and(eq(alertEpisodes.tenantId, tenantId), eq(alertEpisodes.ruleId, rule.id), eq(alertEpisodes.scopeKey, slice.key), isNull(alertEpisodes.closedAt)));
            result.stillOpen++;
          }
        } else if (verdict.failing === false) {
          const closed = await tx
            .update(alertEpisodes)
            .set({ closedAt: at, detail: sql`${alertEpisodes.detail} || ${JSON.stringify({ recovered: { value: verdict.value, baseline: verdict.baseline, ...verdict.detail } })}::jsonb` })
            .where(and(eq(alertEpisodes.tenantId, tenantId), eq(alertEpisodes.ruleId, rule.id), eq(alertEpisodes.scopeKey, slice.key), isNull(alertEpisodes.closedAt)))
            .returning({ id: alertEpisodes.id });
          result.closed += closed.length;
        }
      }
      // A scope no longer evaluated (the rule's scope changed by hand, a clinic gone) has nothing to keep open.
      const gone = await tx
        .update(alertEpisodes)
        .set({ closedAt: at })
        .where(and(eq(alertEpisodes.tenantId, tenantId), eq(alertEpisodes.ruleId, rule.id), isNull(alertEpisodes.closedAt), notInArray(alertEpisodes.scopeKey, slices.length ? slices.map((s) => s.key) : ["-"])))
        .returning({ id: alertEpisodes.id });
      result.closed += gone.length;
    }
    ctx.logger.info({ tenantId, ...result }, "alerts evaluated");
    return result;
  });
}

/** Open an episode unless one is open for (rule, scope): the partial unique index decides. Its id, or null. */
async function openEpisode(tx: Tx, ctx: Ctx, o: { ruleId: string; scopeKey: string; at: Date; verdict: Verdict; clinicId: string | null }): Promise<string | null> {
  const detail = { ...o.verdict.detail, clinicId: o.clinicId, atOpen: { value: o.verdict.value, baseline: o.verdict.baseline } };
  const rows = rowsOf<{ id: string }>(
    await tx.execute(sql`
      insert into alert_episodes (tenant_id, rule_id, scope_key, opened_at, last_seen_at, value, baseline, detail)
      values (${ctx.tenantId}::uuid, ${o.ruleId}::uuid, ${o.scopeKey}, ${o.at.toISOString()}::timestamptz, ${o.at.toISOString()}::timestamptz, ${o.verdict.value}::float8, ${o.verdict.baseline}::float8, ${JSON.stringify(detail)}::jsonb)
      on conflict (rule_id, scope_key) where closed_at is null do nothing
      returning id`),
  );
  return rows[0]?.id ?? null;
}

/** Tenants with an enabled rule: the 15-minute tick evaluates only these. */
export async function tenantsWithAlertRules(deps: ServiceDeps): Promise<string[]> {
  const rows = await deps.db.selectDistinct({ tenantId: alertRules.tenantId }).from(alertRules).where(eq(alertRules.enabled, true));
  return rows.map((r) => r.tenantId);
}
