import { sql } from "drizzle-orm";
import { rowsOf } from "../../db/client";
import { ForbiddenError, ValidationError, zodIssues } from "../../errors";
import { dbOf, requirePermission, type Ctx } from "../context";
import { cellKey, computeRaw, rate, resolvePlan, zeroRaw, type Plan, type Raw, type Source } from "./engine";
import { MyScorecardInput, ScorecardsInput, type Scorecard, type ScorecardsResult } from "./schemas";

const SOURCES: ReadonlySet<Source> = new Set(["facts", "followUps", "response", "sla", "received"]);

interface StaffRow {
  id: string;
  name: string;
  clinic_id: string | null;
  active: boolean;
}

function card(s: StaffRow, r: Raw): Scorecard {
  return {
    staffId: s.id,
    name: s.name,
    clinicId: s.clinic_id,
    active: s.active,
    leadsReceived: r.leadsReceived,
    contactedWithinSla: r.withinSla,
    contactedWithinSlaRate: rate(r.withinSla, r.leadsReceived),
    medianResponseMinutes: r.medianMinutes === null ? null : Math.round(r.medianMinutes * 10) / 10,
    consultations: r.consultations,
    conversions: r.converted,
    dealRate: rate(r.converted, r.consultations),
    revenue: Math.round((r.purchases - r.refunds) * 100) / 100,
    followUpsDue: r.followUpsDue,
    followUpsDone: r.followUpsDone,
    followUpRate: rate(r.followUpsDone, r.followUpsDue),
    slaBreaches: r.slaBreaches,
    slaBreachRate: rate(r.slaBreaches, r.slaDeadlines),
  };
}

const active = (r: Raw) => r.leadsReceived + r.withinSla + r.responded + r.consultations + r.purchases + r.refunds + r.followUpsDue + r.followUpsDone + r.slaDeadlines > 0;

async function cards(ctx: Ctx, plan: Plan, people: StaffRow[]): Promise<Scorecard[]> {
  const raw = await computeRaw(ctx, plan, SOURCES, ["consultation", "purchase", "refund"]);
  return people.map((s) => ({ s, r: raw.get(cellKey("", s.id)) ?? zeroRaw() })).filter((x) => x.s.active || active(x.r)).map((x) => card(x.s, x.r));
}

/**
 * Consultant scorecards for a period (default: the last 30 local days): every consultant of the
 * tenant (of `clinicId`), or one staff member (`staffId`); deactivated consultants only when they
 * have figures in the period. Definitions: docs/metrics.md, "Scorecards".
 */
export async function metricsScorecards({ ctx, input }: { ctx: Ctx; input?: unknown }): Promise<ScorecardsResult> {
  requirePermission(ctx, "metrics:read");
  const p = ScorecardsInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const { from, to, clinicId, staffId } = p.data;
  const plan = await resolvePlan(ctx, { from, to, period: null, by: "consultant", scope: { ...(staffId ? { staffId } : {}), ...(clinicId ? { clinicId } : {}) } });
  // The clinic narrows the people, not their figures: a consultant's card counts all their work.
  const people = rowsOf<StaffRow>(
    await dbOf(ctx).execute(sql`
      select id::text as id, name, clinic_id::text as clinic_id, active from staff
      where tenant_id = ${ctx.tenantId}::uuid and ${staffId ? sql`id = ${staffId}::uuid` : sql`role = 'consultant'`}${clinicId ? sql` and clinic_id = ${clinicId}::uuid` : sql``}
      order by name, id`),
  );
  return { from: plan.fromDay, to: plan.toDay, timezone: plan.tz, items: await cards(ctx, { ...plan, scope: staffId ? { staffId } : {} }, people) };
}

/** The caller's own scorecard (consultants see only theirs). */
export async function myScorecard({ ctx, input }: { ctx: Ctx; input?: unknown }): Promise<Scorecard & { from: string; to: string; timezone: string }> {
  requirePermission(ctx, "scorecard:own");
  if (ctx.actor.kind !== "staff") throw new ForbiddenError("a scorecard belongs to a staff member");
  const me = ctx.actor.staffId;
  const p = MyScorecardInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const plan = await resolvePlan(ctx, { from: p.data.from, to: p.data.to, period: null, by: "consultant", scope: { staffId: me } });
  const [s] = rowsOf<StaffRow>(await dbOf(ctx).execute(sql`select id::text as id, name, clinic_id::text as clinic_id, true as active from staff where tenant_id = ${ctx.tenantId}::uuid and id = ${me}::uuid`));
  if (!s) throw new ForbiddenError("a scorecard belongs to a staff member");
  const [c] = await cards(ctx, plan, [s]);
  return { from: plan.fromDay, to: plan.toDay, timezone: plan.tz, ...c! };
}
