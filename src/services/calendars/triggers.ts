import { and, eq, sql } from "drizzle-orm";
import type { DbOrTx, Tx } from "../../db/client";
import { rowsOf } from "../../db/client";
import { calendars } from "../../db/schema/index";
import type { CalendarDefinition } from "../../domain/calendars/index";
import type { TagChange } from "../../domain/tagging/evaluate";
import { systemCtx, withTransaction, type Ctx, type ServiceDeps } from "../context";
import { compileChecked } from "../segments/segments";
import { activeEnrollments, endEnrollments, enrollContact } from "./enrollment";

/**
 * What puts a contact into a relative calendar, and what ends it early (the calendar's
 * `audience.enrollment.on` / `endOn`):
 * - an event (`on.event`, optionally one `item`), a consultation outcome (`on.outcome`), a tag the
 *   contact gets (`on.tag` "group:name"): in the events worker's transaction, as they happen;
 * - entering a segment (`on.segment`): the enrollment sweep, every few minutes, enrolls members who
 *   were never enrolled (set-based), and ends segment enrollments whose contact left it
 *   (`endOn.leaveSegment`);
 * - `endOn.outcome` and `endOn.tag` end enrollments in the events worker.
 * An appointment_booked trigger anchors the enrollment at the appointment (`data.at`), so entries
 * count from it (reminders the day before), and a new booking re-anchors it.
 */

interface TriggerCalendar {
  id: string;
  key: string;
  on: NonNullable<NonNullable<CalendarDefinition["audience"]["enrollment"]>["on"]>;
  endOn: NonNullable<NonNullable<CalendarDefinition["audience"]["enrollment"]>["endOn"]> | undefined;
}

async function triggerCalendars(tx: DbOrTx, tenantId: string): Promise<TriggerCalendar[]> {
  const rows = await tx
    .select({ id: calendars.id, key: calendars.key, definition: calendars.definition })
    .from(calendars)
    .where(and(eq(calendars.tenantId, tenantId), eq(calendars.status, "published"), eq(calendars.kind, "relative")));
  return rows.flatMap((r) => {
    const e = (r.definition as unknown as CalendarDefinition).audience?.enrollment;
    return e && (e.on || e.endOn) ? [{ id: r.id, key: r.key, on: e.on ?? {}, endOn: e.endOn }] : [];
  });
}

const itemsOf = (data: Record<string, unknown>): string[] => [
  ...(typeof data.item === "string" ? [data.item] : []),
  ...(Array.isArray(data.items) ? data.items.filter((x): x is string => typeof x === "string") : []),
];

export interface TriggerEvent {
  id: string;
  contactId: string;
  type: string;
  occurredAt: Date;
  payload: Record<string, unknown>;
}

/**
 * Enrollment triggers of one events batch, in its transaction (the contacts are locked by the
 * caller): events, outcomes and tags just added enroll; outcomes and tags in `endOn` end.
 */
export async function applyEnrollmentTriggers(tx: Tx, ctx: Ctx, batch: TriggerEvent[], tagChanges: Map<string, TagChange[]>): Promise<{ enrolled: number; ended: number }> {
  const out = { enrolled: 0, ended: 0 };
  if (!batch.length && !tagChanges.size) return out;
  const cals = await triggerCalendars(tx, ctx.tenantId);
  if (!cals.length) return out;
  const ordered = [...batch].sort((a, b) => a.occurredAt.getTime() - b.occurredAt.getTime());
  for (const cal of cals) {
    const { on, endOn } = cal;
    // Ends first: an outcome that ends the series and one that starts it are different calendars.
    for (const e of ordered) {
      const ends = (endOn?.outcome && e.type === "consultation_outcome" && e.payload.outcome === endOn.outcome) || false;
      if (!ends) continue;
      const active = await activeEnrollments(tx, ctx, e.contactId, [cal.id]);
      out.ended += await endEnrollments(tx, ctx, { enrollmentIds: active.map((a) => a.id), reason: `outcome ${endOn!.outcome}` });
    }
    if (endOn?.tag) {
      for (const [contactId, changes] of tagChanges) {
        if (!changes.some((c) => c.action === "add" && `${c.group}:${c.tag}` === endOn.tag)) continue;
        const active = await activeEnrollments(tx, ctx, contactId, [cal.id]);
        out.ended += await endEnrollments(tx, ctx, { enrollmentIds: active.map((a) => a.id), reason: `tag ${endOn.tag}` });
      }
    }
    for (const e of ordered) {
      const itemOk = !on.item || itemsOf(e.payload).includes(on.item);
      const byEvent = on.event !== undefined && e.type === on.event && itemOk;
      const byOutcome = on.outcome !== undefined && e.type === "consultation_outcome" && e.payload.outcome === on.outcome && itemOk;
      if (!byEvent && !byOutcome) continue;
      let at = e.occurredAt;
      if (e.type === "appointment_booked" && typeof e.payload.at === "string" && !Number.isNaN(Date.parse(e.payload.at))) {
        at = new Date(e.payload.at);
        if (at.getTime() <= ctx.deps.now().getTime()) continue; // a booking in the past needs no reminders
        // A new booking moves the series to the new appointment.
        const active = await activeEnrollments(tx, ctx, e.contactId, [cal.id]);
        out.ended += await endEnrollments(tx, ctx, { enrollmentIds: active.map((a) => a.id), reason: "rebooked" });
      }
      const r = await enrollContact(tx, ctx, { calendar: { id: cal.id }, contactId: e.contactId, source: byOutcome ? "outcome" : "event", sourceRef: `${e.type}:${e.id}`, at });
      if (r.enrolled) out.enrolled++;
    }
    if (on.tag) {
      for (const [contactId, changes] of tagChanges) {
        if (!changes.some((c) => c.action === "add" && `${c.group}:${c.tag}` === on.tag)) continue;
        const r = await enrollContact(tx, ctx, { calendar: { id: cal.id }, contactId, source: "tag", sourceRef: on.tag });
        if (r.enrolled) out.enrolled++;
      }
    }
  }
  return out;
}

/**
 * Segment enrollment for one tenant: members of an `on.segment` who were never enrolled in the
 * calendar are enrolled now (one INSERT … SELECT per calendar); with `endOn.leaveSegment`, active
 * segment enrollments of contacts no longer in it end (their planned sends cancelled).
 */
export async function sweepSegmentEnrollments(deps: ServiceDeps, tenantId: string): Promise<{ enrolled: number; ended: number }> {
  const ctx = systemCtx(deps, tenantId, "calendar-enrollment");
  const out = { enrolled: 0, ended: 0 };
  const cals = (await triggerCalendars(deps.db, tenantId)).filter((c) => c.on.segment);
  for (const cal of cals) {
    await withTransaction(ctx, async (tx, ctx) => {
      let where;
      try {
        where = (await compileChecked({ ...ctx, tx }, cal.on.segment!)).where;
      } catch (err) {
        ctx.logger.warn({ calendar: cal.key, err: (err as Error).message }, "calendar segment does not compile; no enrollment");
        return;
      }
      const now = ctx.deps.now().toISOString();
      const added = rowsOf<{ id: string }>(
        await tx.execute(sql`
          insert into calendar_enrollments (tenant_id, calendar_id, contact_id, enrolled_at, source, source_ref)
          select c.tenant_id, ${cal.id}::uuid, c.id, ${now}::timestamptz, 'segment', ${cal.on.segment!.slice(0, 200)}
          from contacts c
          where c.tenant_id = ${tenantId}::uuid and c.deleted_at is null and (${where})
            and not exists (select 1 from calendar_enrollments e where e.calendar_id = ${cal.id}::uuid and e.contact_id = c.id)
          on conflict do nothing
          returning id`),
      );
      out.enrolled += added.length;
      if (cal.endOn?.leaveSegment) {
        const gone = rowsOf<{ id: string }>(
          await tx.execute(sql`
            select e.id from calendar_enrollments e join contacts c on c.id = e.contact_id
            where e.tenant_id = ${tenantId}::uuid and e.calendar_id = ${cal.id}::uuid and e.ended_at is null and e.source = 'segment'
              and (c.deleted_at is not null or not (${where}))`),
        );
        out.ended += await endEnrollments(tx, ctx, { enrollmentIds: gone.map((g) => g.id), reason: "left the segment" });
      }
    });
  }
  return out;
}

/** Tenants with a published relative calendar that enrolls by segment. */
export async function tenantsWithSegmentEnrollment(deps: ServiceDeps): Promise<string[]> {
  const rows = await deps.db
    .selectDistinct({ tenantId: calendars.tenantId })
    .from(calendars)
    .where(and(eq(calendars.status, "published"), eq(calendars.kind, "relative"), sql`${calendars.definition} #> '{audience,enrollment,on,segment}' is not null`));
  return rows.map((r) => r.tenantId);
}
