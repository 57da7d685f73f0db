import { and, eq, isNull } from "drizzle-orm";
import type { DbOrTx } from "../../db/client";
import { calendarEntries, calendars } from "../../db/schema/index";
import { DEFAULT_QUIET_HOURS, DEFAULT_TIME_ZONE, type CalendarDefinition, type CalendarEntry } from "../../domain/calendars/schema";
import { entryWhen, weekdayNumber, type EntryWhen } from "../../domain/calendars/when";
import type { QuietHours } from "../../domain/delivery/schedule";

/**
 * What the planner needs of one calendar entry, read from the calendar's definition (the
 * validated calendar, calendars.definition) and, once published, its calendar_entries row (post,
 * owner staff resolved to an id). A draft calendar's entries have no row and no post yet: the
 * preview plans them all the same.
 */
export interface PlanSpec {
  calendarId: string;
  calendarKind: "dated" | "relative";
  calendarStatus: "draft" | "published" | "archived";
  entryId: string | null;
  entryKey: string;
  postId: string | null;
  channel: "single" | "group";
  service: boolean;
  when: EntryWhen;
  timeZone: string;
  quietHours: QuietHours;
  /** Recurring dated entries run within these local dates (inclusive) when given. */
  startDate: string | null;
  endDate: string | null;
  audience: { segment?: string | undefined; groups?: { tags?: string[] | undefined; ids?: string[] | undefined } | undefined; enrollment?: boolean };
  skipIf: string | null;
  onlyIf: string | null;
  /** 1:1 sender: this staff member when set, else each contact's owner consultant. */
  ownerStaffId: string | null;
  /** The entry as the calendar file wrote it (template variables, link), when the definition has it. */
  def: CalendarEntry | null;
  removed: boolean;
}

type CalendarRow = typeof calendars.$inferSelect;
type EntryRow = typeof calendarEntries.$inferSelect;

/** The stored definition, or null when it is not (yet) one this code can read. */
export function definitionOf(cal: Pick<CalendarRow, "definition">): CalendarDefinition | null {
  const d = cal.definition as Partial<CalendarDefinition> | null;
  if (!d || typeof d !== "object" || !Array.isArray(d.entries)) return null;
  return d as CalendarDefinition;
}

/** calendar_entries.when as stored: the normalised EntryWhen, or the file's {date|weekday|monthday|birthday|day, time}. */
export function whenOfRow(w: Record<string, unknown>, kind: CalendarRow["kind"]): EntryWhen {
  if (typeof w.kind === "string") return w as unknown as EntryWhen;
  const time = String(w.time ?? "09:00");
  if (typeof w.minutesBefore === "number") return { kind: "before", minutes: w.minutesBefore };
  if (typeof w.at === "string") return { kind: "at", at: w.at };
  if (typeof w.date === "string") return { kind: "at", at: `${w.date}T${time}` };
  if (w.weekday !== undefined) return { kind: "weekday", weekday: weekdayNumber(w.weekday as number | string), time };
  if (typeof w.monthday === "number") return { kind: "monthday", day: w.monthday, time };
  if (w.birthday) return { kind: "birthday", daysBefore: Number(w.daysBefore ?? 0), time };
  if (typeof w.day === "number") return kind === "relative" ? { kind: "relative", day: w.day, time } : { kind: "monthday", day: w.day, time };
  throw new Error(`an entry's when is not understood: ${JSON.stringify(w)}`);
}

function audienceOf(def: CalendarDefinition | null): PlanSpec["audience"] {
  const a = def?.audience;
  if (!a) return {};
  return { segment: a.segment, groups: a.groups, enrollment: a.enrollment !== undefined };
}

/** One spec per entry of a calendar: its rows when published (entries removed since are flagged), else its definition's entries. */
export function specsOf(cal: CalendarRow, rows: EntryRow[]): PlanSpec[] {
  const def = definitionOf(cal);
  const timeZone = def?.timeZone ?? DEFAULT_TIME_ZONE;
  const quietHours = def?.quietHours ?? DEFAULT_QUIET_HOURS;
  const base = {
    calendarId: cal.id,
    calendarKind: cal.kind,
    calendarStatus: cal.status,
    timeZone,
    quietHours,
    startDate: def?.startDate ?? null,
    endDate: def?.endDate ?? null,
    audience: audienceOf(def),
  };
  const byKey = new Map((def?.entries ?? []).map((e) => [e.key, e]));
  const specs: PlanSpec[] = rows.map((r) => {
    const e = byKey.get(r.key) ?? null;
    const conditions = (r.conditions ?? e?.conditions ?? null) as { skipIf?: string; onlyIf?: string } | null;
    return {
      ...base,
      entryId: r.id,
      entryKey: r.key,
      postId: r.postId,
      channel: r.channel,
      service: r.service,
      when: e ? entryWhen(e) : whenOfRow(r.when, cal.kind),
      skipIf: conditions?.skipIf ?? null,
      onlyIf: conditions?.onlyIf ?? null,
      ownerStaffId: r.ownerStaffId,
      def: e,
      removed: r.removedAt !== null,
    };
  });
  // A draft (or entries added since the last publish): plan from the definition, without post or row.
  for (const e of def?.entries ?? []) {
    if (rows.some((r) => r.key === e.key)) continue;
    specs.push({
      ...base,
      entryId: null,
      entryKey: e.key,
      postId: null,
      channel: e.channel,
      service: e.service,
      when: entryWhen(e),
      skipIf: e.conditions?.skipIf ?? null,
      onlyIf: e.conditions?.onlyIf ?? null,
      ownerStaffId: null,
      def: e,
      removed: false,
    });
  }
  return specs;
}

/** A calendar of the tenant and its entries (live ones first, in key order). */
export async function loadCalendar(db: DbOrTx, tenantId: string, calendarId: string): Promise<{ cal: CalendarRow; rows: EntryRow[] } | null> {
  const [cal] = await db.select().from(calendars).where(and(eq(calendars.tenantId, tenantId), eq(calendars.id, calendarId)));
  if (!cal) return null;
  const rows = await db.select().from(calendarEntries).where(and(eq(calendarEntries.tenantId, tenantId), eq(calendarEntries.calendarId, calendarId))).orderBy(calendarEntries.key);
  return { cal, rows };
}

/** One entry's spec (with its calendar), or null. */
export async function loadEntrySpec(db: DbOrTx, tenantId: string, entryId: string): Promise<PlanSpec | null> {
  const [row] = await db.select().from(calendarEntries).where(and(eq(calendarEntries.tenantId, tenantId), eq(calendarEntries.id, entryId)));
  if (!row) return null;
  const [cal] = await db.select().from(calendars).where(and(eq(calendars.tenantId, tenantId), eq(calendars.id, row.calendarId)));
  if (!cal) return null;
  return specsOf(cal, [row])[0] ?? null;
}

/** Live entries of published calendars, for the sweep. */
export async function liveEntryIds(db: DbOrTx, tenantId: string): Promise<string[]> {
  const rows = await db
    .select({ id: calendarEntries.id })
    .from(calendarEntries)
    .innerJoin(calendars, eq(calendars.id, calendarEntries.calendarId))
    .where(and(eq(calendarEntries.tenantId, tenantId), eq(calendars.status, "published"), isNull(calendarEntries.removedAt)));
  return rows.map((r) => r.id);
}
