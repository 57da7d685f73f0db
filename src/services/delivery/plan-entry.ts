import { and, eq, sql } from "drizzle-orm";
import { rowsOf } from "../../db/client";
import { calendarEnrollments, posts } from "../../db/schema/index";
import { NotFoundError } from "../../errors";
import { afterCommit, audit, requirePermission, systemCtx, withTransaction, type Ctx, type ServiceDeps } from "../context";
import { lockPlanning, planInto, type PlanStats } from "./plan";
import { deliverySettings } from "./settings";
import { loadCalendar, loadEntrySpec, specsOf, type PlanSpec } from "./spec";
import { armPost } from "./timers";

export type PlanOutcome =
  | ({ entryId: string; key: string; postId: string; outcome: "planned" } & PlanStats)
  | { entryId: string | null; key: string; postId: string | null; outcome: "not_published" | "removed" | "no_post" | "not_approved"; detail: string };

/** Why an entry cannot be planned now, or null. */
async function blocker(ctx: Ctx, spec: PlanSpec): Promise<Exclude<PlanOutcome, { outcome: "planned" }> | null> {
  const base = { entryId: spec.entryId, key: spec.entryKey, postId: spec.postId };
  if (spec.calendarStatus !== "published") return { ...base, outcome: "not_published", detail: `the calendar is ${spec.calendarStatus}` };
  if (spec.removed || !spec.entryId) return { ...base, outcome: "removed", detail: "the entry was removed from the calendar" };
  if (!spec.postId) return { ...base, outcome: "no_post", detail: "the entry has no post yet (publish the calendar)" };
  const [p] = await ctx.deps.db.select({ status: posts.status }).from(posts).where(and(eq(posts.tenantId, ctx.tenantId), eq(posts.id, spec.postId)));
  if (!p || (p.status !== "approved" && p.status !== "scheduled" && p.status !== "sent")) return { ...base, outcome: "not_approved", detail: `the entry's post is ${p?.status ?? "missing"}, not approved` };
  return null;
}

/**
 * Plan the sends of published entries whose posts are approved (all of a calendar's, or some),
 * in one transaction under the tenant's planning lock, entries in order of time so earlier ones
 * take the caps first; arm their delivery jobs once it commits. Planning again adds only
 * recipients that have no send for the post yet (new segment members, new enrollments).
 */
async function planSpecs(ctx: Ctx, specs: PlanSpec[], opts: { enrollmentIds?: string[] } = {}): Promise<PlanOutcome[]> {
  const out: PlanOutcome[] = [];
  const ready: PlanSpec[] = [];
  for (const s of specs) {
    const b = await blocker(ctx, s);
    if (b) out.push(b);
    else ready.push(s);
  }
  if (!ready.length) return out;
  const settings = await deliverySettings(ctx.deps.db, ctx.deps, ctx.tenantId);
  const now = ctx.deps.now();
  const planned = await withTransaction(ctx, async (tx, ctx) => {
    await lockPlanning(tx, ctx.tenantId);
    const results: PlanOutcome[] = [];
    for (const s of ready) {
      const stats = await planInto(tx, ctx, s, settings, { write: true, now, enrollmentIds: opts.enrollmentIds });
      results.push({ entryId: s.entryId!, key: s.entryKey, postId: s.postId!, outcome: "planned", ...stats });
      if (stats.candidates) {
        await audit(tx, ctx, {
          action: "delivery.plan",
          entityType: "calendar_entry",
          entityId: s.entryId!,
          after: { postId: s.postId, planned: stats.planned, skipped: stats.skipped, reasons: stats.reasons.slice(0, 10), firstAt: stats.firstAt, lastAt: stats.lastAt },
        });
      }
      const postId = s.postId!;
      if (stats.planned) afterCommit(ctx, () => armPost(ctx.deps, ctx.tenantId, postId));
    }
    return results;
  });
  return [...out, ...planned];
}

/** Plan one entry (its post must be approved). */
export async function planEntry({ ctx, id, enrollmentIds }: { ctx: Ctx; id: string; enrollmentIds?: string[] }): Promise<PlanOutcome> {
  requirePermission(ctx, "calendars:write");
  const spec = await loadEntrySpec(ctx.deps.db, ctx.tenantId, id);
  if (!spec) throw new NotFoundError("calendar entry");
  const [r] = await planSpecs(ctx, [spec], { enrollmentIds });
  return r!;
}

/** Plan every entry of a published calendar whose post is approved; the others say why not. */
export async function planCalendar({ ctx, id }: { ctx: Ctx; id: string }): Promise<PlanOutcome[]> {
  requirePermission(ctx, "calendars:write");
  const loaded = await loadCalendar(ctx.deps.db, ctx.tenantId, id);
  if (!loaded) throw new NotFoundError("calendar");
  const specs = specsOf(loaded.cal, loaded.rows).filter((s) => s.entryId);
  return planSpecs(ctx, specs);
}

/** Plan a new enrollment's sends at once (the minute sweep would within a minute). Call after the enrollment committed. */
export async function planEnrollment(deps: ServiceDeps, tenantId: string, enrollmentId: string): Promise<PlanOutcome[]> {
  const [en] = await deps.db.select({ calendarId: calendarEnrollments.calendarId }).from(calendarEnrollments).where(and(eq(calendarEnrollments.tenantId, tenantId), eq(calendarEnrollments.id, enrollmentId)));
  if (!en) return [];
  const ctx = systemCtx(deps, tenantId, "delivery-plan");
  const loaded = await loadCalendar(deps.db, tenantId, en.calendarId);
  if (!loaded || loaded.cal.kind !== "relative") return [];
  return planSpecs(ctx, specsOf(loaded.cal, loaded.rows).filter((s) => s.entryId && !s.removed), { enrollmentIds: [enrollmentId] });
}

/** Entries approved recently (or with new enrollments) are looked at by the sweep for this long. */
const RECENT_MS = 2 * 86_400_000;

/**
 * The sweep's planning pass, across tenants: live entries of published calendars whose post is
 * approved and that still have recipients to plan: dated entries approved within two days that
 * have no sends yet, relative entries with enrollments of the last two days that have no send for
 * the entry's post, and (hourly, `birthdays`) birthday entries. Returns entries planned.
 */
export async function planPending(deps: ServiceDeps, opts: { birthdays: boolean; limit?: number }): Promise<number> {
  const recent = sql`${new Date(deps.now().getTime() - RECENT_MS).toISOString()}::timestamptz`;
  const rows = rowsOf<{ tenant_id: string; id: string }>(
    await deps.db.execute(sql`
      select e.tenant_id, e.id
      from calendar_entries e
      join calendars c on c.id = e.calendar_id and c.status = 'published'
      join posts p on p.id = e.post_id and p.status in ('approved', 'scheduled', 'sent')
      where e.removed_at is null and (
        (c.kind = 'dated' and e."when"->>'kind' is distinct from 'birthday' and p.updated_at > ${recent}
          and not exists (select 1 from sends s where s.post_id = e.post_id and s.entry_id = e.id))
        or (c.kind = 'relative' and (
          (p.updated_at > ${recent} and exists (select 1 from calendar_enrollments en where en.calendar_id = c.id and en.ended_at is null
            and not exists (select 1 from sends s where s.post_id = e.post_id and s.contact_id = en.contact_id)))
          or exists (select 1 from calendar_enrollments en where en.calendar_id = c.id and en.ended_at is null and en.created_at > ${recent}
            and not exists (select 1 from sends s where s.post_id = e.post_id and s.contact_id = en.contact_id))))
        or (${opts.birthdays}::boolean and c.kind = 'dated' and (e."when"->>'kind' = 'birthday' or e."when" ? 'birthday'))
      )
      order by e.tenant_id, e.id
      limit ${opts.limit ?? 100}`),
  );
  let n = 0;
  for (const r of rows) {
    const ctx = systemCtx(deps, r.tenant_id, "delivery-plan");
    try {
      const out = await planEntry({ ctx, id: r.id });
      if (out.outcome === "planned") n++;
    } catch (err) {
      deps.logger.warn({ tenantId: r.tenant_id, entryId: r.id, err: (err as Error).message }, "could not plan a calendar entry; the next sweep retries");
    }
  }
  return n;
}
