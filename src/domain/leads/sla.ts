import { localTime, minutesOf, type Candidate } from "./route";

/**
 * First-contact deadlines (SLA). Working time is exactly when `onShift` (route.ts) says the
 * consultant is working: per local weekday, "09:00"-"18:00" covers [09:00, 18:00); an overnight
 * "22:00"-"06:00" covers that weekday's [00:00, 06:00) and [22:00, 24:00). Routing and the SLA
 * therefore agree on who is at work.
 */
export type Shift = Candidate["shift"];

const MINUTE = 60_000;
const DAY_MINUTES = 1440;
const WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const;

/** A weekday's working intervals in local minutes, [from, to) within [0, 1440). */
function dayIntervals(hours: [string, string] | undefined): [number, number][] {
  if (!hours) return [];
  const from = minutesOf(hours[0]);
  const to = minutesOf(hours[1]);
  if (from === to) return [];
  if (from < to) return [[from, Math.min(to, DAY_MINUTES)]];
  return [
    ...(to > 0 ? ([[0, to]] as [number, number][]) : []),
    ...(from < DAY_MINUTES ? ([[from, DAY_MINUTES]] as [number, number][]) : []),
  ];
}

/**
 * The instant `deltaMinutes` local minutes after `t` (truncated to its minute), landing on local
 * minute-of-day `target`. A plain jump is off by the difference when a DST change lies between;
 * one correction puts it on the local minute asked for (unless that minute does not exist that
 * day, in a spring-forward gap: then the plain jump stands).
 */
function jumpLocal(t: number, sub: number, deltaMinutes: number, target: number, timeZone: string): number {
  const guess = t - sub + deltaMinutes * MINUTE;
  const actual = localTime(new Date(guess), timeZone).minutes;
  let diff = (((target - actual) % DAY_MINUTES) + DAY_MINUTES) % DAY_MINUTES;
  if (diff > DAY_MINUTES / 2) diff -= DAY_MINUTES;
  if (diff === 0) return guess;
  const fixed = guess + diff * MINUTE;
  return fixed > t && localTime(new Date(fixed), timeZone).minutes === target ? fixed : guess;
}

/**
 * The first-contact deadline of a lead assigned at `start` with `minutes` to make contact. With
 * `workingHoursOnly` and a shift, only minutes inside the owner's working hours count (a lead
 * arriving at 17:55 with 15 minutes on a 09:00-18:00 shift is due at 09:10 on the next working
 * day); without a shift (always at work), with `workingHoursOnly` off, or with a shift that has no
 * working minute at all, the wall clock counts.
 */
export function slaDueAt(start: Date, minutes: number, shift: Shift, timeZone: string, workingHoursOnly: boolean): Date {
  const wall = new Date(start.getTime() + minutes * MINUTE);
  if (!workingHoursOnly || !shift) return wall;
  const week = WEEKDAYS.map((d) => dayIntervals(shift[d]));
  if (week.every((d) => d.length === 0)) return wall;
  let t = start.getTime();
  let left = minutes * MINUTE;
  // Each step moves to the next boundary of a working interval; the cap only guards against an
  // absurd configuration (a minute of work a week against a deadline of months).
  for (let step = 0; step < 10_000; step++) {
    const { weekday, minutes: m } = localTime(new Date(t), timeZone);
    const sub = ((t % MINUTE) + MINUTE) % MINUTE;
    const day = WEEKDAYS.indexOf(weekday as (typeof WEEKDAYS)[number]);
    if (day < 0) return wall;
    const today = week[day]!;
    const current = today.find(([from, to]) => m >= from && m < to);
    if (current) {
      const end = jumpLocal(t, sub, current[1] - m, current[1] % DAY_MINUTES, timeZone);
      const available = end - t;
      if (left <= available) return new Date(t + left);
      left -= available;
      t = end;
      continue;
    }
    // Off shift: jump to the next interval's start, today or on a following day.
    let delta: number | null = null;
    let target = 0;
    const later = today.find(([from]) => from > m);
    if (later) {
      delta = later[0] - m;
      target = later[0];
    } else {
      for (let d = 1; d <= 7 && delta === null; d++) {
        const first = week[(day + d) % 7]![0];
        if (first) {
          delta = d * DAY_MINUTES + first[0] - m;
          target = first[0];
        }
      }
    }
    if (delta === null) return wall;
    t = jumpLocal(t, sub, delta, target, timeZone);
  }
  return wall;
}

/**
 * When to remind the owner: `remindBeforeMinutes` before the deadline, but not before the start
 * (a deadline shorter than the reminder window reminds at once). Null when reminders are off (0).
 */
export function slaRemindAt(start: Date, dueAt: Date, remindBeforeMinutes: number): Date | null {
  if (remindBeforeMinutes <= 0) return null;
  return new Date(Math.max(start.getTime(), dueAt.getTime() - remindBeforeMinutes * MINUTE));
}
