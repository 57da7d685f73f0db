import { WEEKDAY_NAMES, type When } from "./schema";

/**
 * When an entry goes out, normalised (what calendar_entries.when stores). Times are local to the
 * calendar's time zone; `at` is a local ISO date-time without offset ("2026-12-07T10:00").
 * - at: once; weekday: every week (1 = Monday … 7 = Sunday); monthday: every month (29-31 fall on
 *   a shorter month's last day); birthday: every year on each contact's birthday (contacts'
 *   `birthday` attribute, YYYY-MM-DD or MM-DD), `daysBefore` it;
 * - relative: day N after the contact's enrollment (0 = the day they were enrolled).
 */
export type EntryWhen =
  | { kind: "at"; at: string }
  | { kind: "weekday"; weekday: 1 | 2 | 3 | 4 | 5 | 6 | 7; time: string }
  | { kind: "monthday"; day: number; time: string }
  | { kind: "birthday"; daysBefore: number; time: string }
  | { kind: "relative"; day: number; time: string }
  /** Relative: `minutes` before the enrollment's anchor (an appointment), at that exact time. */
  | { kind: "before"; minutes: number };

/** Which `when` keys an entry gave (validate.ts insists on exactly one). */
export const WHEN_KEYS = ["date", "weekday", "monthday", "birthday", "day", "minutesBefore"] as const;

export function weekdayNumber(w: number | string): 1 | 2 | 3 | 4 | 5 | 6 | 7 {
  const n = typeof w === "number" ? w : WEEKDAY_NAMES[w.toLowerCase()];
  if (!n || n < 1 || n > 7) throw new Error(`not a weekday: ${String(w)}`);
  return n as 1 | 2 | 3 | 4 | 5 | 6 | 7;
}

/** The normalised `when` of an entry of a parsed calendar. */
export function entryWhen(entry: { when: When }): EntryWhen {
  const w = entry.when;
  if (w.minutesBefore !== undefined) return { kind: "before", minutes: w.minutesBefore };
  // Validation insists on a time for every other kind.
  const time = w.time ?? "00:00";
  if (w.date !== undefined) return { kind: "at", at: `${w.date}T${time}` };
  if (w.weekday !== undefined) return { kind: "weekday", weekday: weekdayNumber(w.weekday), time };
  if (w.monthday !== undefined) return { kind: "monthday", day: w.monthday, time };
  if (w.birthday) return { kind: "birthday", daysBefore: w.daysBefore ?? 0, time };
  if (w.day !== undefined) return { kind: "relative", day: w.day, time };
  throw new Error("an entry's when gives no date, weekday, monthday, birthday, day or minutesBefore");
}

/** Local time of day of an entry ("HH:MM"); null for minutesBefore (it depends on each anchor). */
export function whenTime(w: EntryWhen): string | null {
  return w.kind === "at" ? w.at.slice(11, 16) : w.kind === "before" ? null : w.time;
}

const minutes = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** Whether a local time of day ("HH:MM") falls in the quiet hours [start, end), which may span midnight. */
export function inQuietHours(time: string, quiet: { start: string; end: string }): boolean {
  const t = minutes(time);
  const s = minutes(quiet.start);
  const e = minutes(quiet.end);
  if (s === e) return false;
  return s < e ? t >= s && t < e : t >= s || t < e;
}
