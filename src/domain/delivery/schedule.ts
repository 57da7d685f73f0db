import Handlebars from "handlebars";
import type { EntryWhen } from "../calendars/when";
import { findUrls } from "../links/urls";

/**
 * When calendar sends go out: local wall-clock times in a calendar's time zone, moved out of quiet
 * hours, and whether a post's copy differs per recipient. Pure: the clock and the zone are passed in.
 */

const MINUTE = 60_000;
const DAY = 86_400_000;

export type { EntryWhen };

/** A daily window when nothing is sent, local "HH:MM" to "HH:MM" (may wrap midnight: 21:00-08:00). */
export interface QuietHours {
  start: string;
  end: string;
}

export const minutesOfDay = (hhmm: string): number => {
  const m = /^(\d{1,2}):(\d{2})$/.exec(hhmm.trim());
  if (!m) throw new RangeError(`not a time of day (HH:MM): ${hhmm}`);
  const h = Number(m[1]);
  const min = Number(m[2]);
  if (h > 24 || min > 59 || (h === 24 && min > 0)) throw new RangeError(`not a time of day (HH:MM): ${hhmm}`);
  return h * 60 + min;
};

export const hhmm = (minutes: number): string => `${String(Math.floor(minutes / 60)).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`;

// Building a DateTimeFormat costs far more than using one: one per time zone.
const formats = new Map<string, Intl.DateTimeFormat>();
function format(timeZone: string): Intl.DateTimeFormat {
  let f = formats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", { timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", weekday: "short", hourCycle: "h23" });
    formats.set(timeZone, f);
  }
  return f;
}

export interface LocalParts {
  /** YYYY-MM-DD */
  date: string;
  /** Minutes after local midnight. */
  minutes: number;
  /** 1 = Monday … 7 = Sunday (ISO). */
  isoWeekday: number;
  /** Day of the month, 1-31. */
  monthday: number;
}

const WEEKDAYS: Record<string, number> = { mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6, sun: 7 };

/** The local date, time and weekday of an instant in a time zone. */
export function localParts(at: Date, timeZone: string): LocalParts {
  const parts = format(timeZone).formatToParts(at);
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? "";
  const date = `${get("year")}-${get("month")}-${get("day")}`;
  return { date, minutes: Number(get("hour")) * 60 + Number(get("minute")), isoWeekday: WEEKDAYS[get("weekday").toLowerCase().slice(0, 3)] ?? 1, monthday: Number(get("day")) };
}

/** The offset of a zone from UTC at an instant, in ms (UTC+8 -> 8 h). */
function offsetMs(at: Date, timeZone: string): number {
  const parts = format(timeZone).formatToParts(at);
  const n = (t: string) => Number(parts.find((p) => p.type === t)?.value ?? 0);
  const asUtc = Date.UTC(n("year"), n("month") - 1, n("day"), n("hour") % 24, n("minute"), n("second"));
  return asUtc - Math.floor(at.getTime() / 1000) * 1000;
}

/**
 * The instant of a local date and time in a zone. A time skipped by a daylight-saving change is
 * read with the offset before the change (02:30 on a spring-forward night is 03:30); in a repeated
 * hour, the first. None of China's zones has DST.
 */
export function zonedInstant(date: string, time: string, timeZone: string): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!m) throw new RangeError(`not a date (YYYY-MM-DD): ${date}`);
  const minutes = minutesOfDay(time);
  const guess = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) + minutes * MINUTE;
  const first = guess - offsetMs(new Date(guess), timeZone);
  const second = guess - offsetMs(new Date(first), timeZone);
  const wall = (ms: number) => localParts(new Date(ms), timeZone);
  for (const c of [second, first]) {
    const p = wall(c);
    if (p.date === date && p.minutes === minutes) return new Date(c);
  }
  // A wall time skipped by a spring-forward change: the same clock reading after it (02:30 -> 03:30).
  return new Date(Math.max(first, second));
}

/** A local date plus n days, as YYYY-MM-DD. */
export function addDays(date: string, n: number): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + n * DAY).toISOString().slice(0, 10);
}

/** Parse a local date-time "YYYY-MM-DDTHH:MM" (seconds and an offset-free suffix tolerated) into date and time. */
export function splitLocal(at: string): { date: string; time: string } {
  const m = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?$/.exec(at.trim());
  if (!m) throw new RangeError(`not a local date-time (YYYY-MM-DDTHH:MM): ${at}`);
  return { date: m[1]!, time: m[2]! };
}

function inQuiet(minutes: number, q: { start: number; end: number }): boolean {
  if (q.start === q.end) return false;
  return q.start < q.end ? minutes >= q.start && minutes < q.end : minutes >= q.start || minutes < q.end;
}

/**
 * A local time of day moved out of quiet hours: to the window's end, on the next day when the
 * window wraps midnight and the time is before midnight (22:30 with 21:00-08:00 -> next day 08:00).
 */
export function outOfQuietLocal(minutes: number, quiet: QuietHours | null | undefined): { addDays: number; minutes: number; moved: boolean } {
  if (!quiet) return { addDays: 0, minutes, moved: false };
  const q = { start: minutesOfDay(quiet.start), end: minutesOfDay(quiet.end) };
  if (!inQuiet(minutes, q)) return { addDays: 0, minutes, moved: false };
  const wraps = q.start > q.end;
  return { addDays: wraps && minutes >= q.start ? 1 : 0, minutes: q.end, moved: true };
}

/** An instant moved out of quiet hours in a zone (to the end of the window), and whether it moved. */
export function outOfQuiet(at: Date, quiet: QuietHours | null | undefined, timeZone: string): { at: Date; moved: boolean } {
  const p = localParts(at, timeZone);
  const r = outOfQuietLocal(p.minutes, quiet);
  if (!r.moved) return { at, moved: false };
  return { at: zonedInstant(addDays(p.date, r.addDays), hhmm(r.minutes), timeZone), moved: true };
}

/**
 * The instant of a dated entry (at, weekday, monthday), not yet moved out of quiet hours: `at` as
 * written; a weekday or day of the month at its next occurrence at or after `from` (today's when
 * its time is still ahead). Null when there is none up to `until` (a calendar's endDate). Relative
 * and birthday entries depend on each recipient: see relativeOffset and the planner's SQL.
 */
export function occurrence(when: EntryWhen, from: Date, timeZone: string, until?: Date | null): Date | null {
  const within = (at: Date) => !until || at.getTime() <= until.getTime();
  switch (when.kind) {
    case "at": {
      const { date, time } = splitLocal(when.at);
      return zonedInstant(date, time, timeZone);
    }
    case "weekday": {
      const today = localParts(from, timeZone);
      for (let i = 0; i < 8; i++) {
        const wd = ((today.isoWeekday - 1 + i) % 7) + 1;
        if (wd !== when.weekday) continue;
        const at = zonedInstant(addDays(today.date, i), when.time, timeZone);
        if (at.getTime() >= from.getTime()) return within(at) ? at : null;
      }
      return null;
    }
    case "monthday": {
      const today = localParts(from, timeZone);
      let [y, mo] = today.date.split("-").map(Number) as [number, number];
      for (let i = 0; i < 3; i++) {
        const last = new Date(Date.UTC(y, mo, 0)).getUTCDate();
        // A day past the month's end (31 in a 30-day month) falls on its last day.
        const day = Math.min(when.day, last);
        const at = zonedInstant(`${y}-${String(mo).padStart(2, "0")}-${String(day).padStart(2, "0")}`, when.time, timeZone);
        if (at.getTime() >= from.getTime()) return within(at) ? at : null;
        mo++;
        if (mo > 12) {
          mo = 1;
          y++;
        }
      }
      return null;
    }
    case "birthday":
    case "relative":
    case "before":
      throw new RangeError(`a ${when.kind} entry's time depends on each recipient`);
  }
}

/**
 * A relative entry (day N after enrollment at a local time) as days after the enrollment's local
 * day and a local time, already moved out of quiet hours (the same move for every enrollment).
 */
export function relativeOffset(when: { day: number; time: string }, quiet: QuietHours | null | undefined): { days: number; time: string; moved: boolean } {
  const r = outOfQuietLocal(minutesOfDay(when.time), quiet);
  return { days: when.day + r.addDays, time: hhmm(r.minutes), moved: r.moved };
}

/** The local day (YYYY-MM-DD) a send counts against in the ledger. */
export function ledgerDay(at: Date, timeZone: string): string {
  return localParts(at, timeZone).date;
}

/** Template variables that differ per recipient (filled from the contact and its sender). */
export const CONTACT_VARIABLES = ["name", "nickname", "consultant", "clinic"] as const;

/** Names used by a handlebars template ({{name}}, {{#if clinic}} …), first path segment only. */
export function templateVariables(body: string): string[] {
  const out = new Set<string>();
  const visit = (node: unknown): void => {
    if (!node || typeof node !== "object") return;
    const n = node as Record<string, unknown>;
    if (n.type === "PathExpression" && Array.isArray(n.parts) && typeof n.parts[0] === "string") out.add(n.parts[0]);
    for (const v of Object.values(n)) {
      if (Array.isArray(v)) v.forEach(visit);
      else if (v && typeof v === "object") visit(v);
    }
  };
  try {
    visit(Handlebars.parse(body));
  } catch {
    // An invalid template never passes review; treat it as plain text here.
  }
  return [...out];
}

/**
 * Whether a post's copy must be sent as one WeCom message per recipient: a WeCom mass message
 * carries one text for every recipient, so copy naming the contact ({{name}}, {{consultant}} …)
 * or carrying links once rendered (tracked per recipient) goes out one add_msg_template per recipient; any other
 * copy goes out as one message per sender and minute to up to 10,000 customers (or 2,000 chats).
 */
export function perRecipientCopy(body: string, rendered: string = body): boolean {
  const vars = templateVariables(body);
  return vars.some((v) => (CONTACT_VARIABLES as readonly string[]).includes(v)) || findUrls(rendered).length > 0;
}
