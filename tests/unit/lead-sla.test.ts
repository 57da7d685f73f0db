import { describe, expect, it } from "vitest";
import { onShift } from "../../src/domain/leads/route";
import { slaDueAt, slaRemindAt, type Shift } from "../../src/domain/leads/sla";

const SH = "Asia/Shanghai"; // UTC+8, no DST
const NY = "America/New_York"; // DST: ends 2026-11-01, starts 2026-03-08
const IN = "Asia/Kolkata"; // UTC+5:30, no DST

const weekdays: Shift = { mon: ["09:00", "18:00"], tue: ["09:00", "18:00"], wed: ["09:00", "18:00"], thu: ["09:00", "18:00"], fri: ["09:00", "18:00"] };
const at = (iso: string) => new Date(iso);

describe("slaDueAt", () => {
  it("counts the wall clock without a shift, or when working hours do not count", () => {
    const start = at("2026-11-24T09:55:00Z"); // Tue 17:55 in Shanghai
    expect(slaDueAt(start, 15, null, SH, true)).toEqual(at("2026-11-24T10:10:00Z"));
    expect(slaDueAt(start, 15, weekdays, SH, false)).toEqual(at("2026-11-24T10:10:00Z"));
    // A shift with no working minute at all cannot hold a deadline: the wall clock counts.
    expect(slaDueAt(start, 15, {}, SH, true)).toEqual(at("2026-11-24T10:10:00Z"));
    expect(slaDueAt(start, 15, { mon: ["09:00", "09:00"] }, SH, true)).toEqual(at("2026-11-24T10:10:00Z"));
  });

  it("inside a shift, counts straight on", () => {
    expect(slaDueAt(at("2026-11-24T02:00:00Z"), 15, weekdays, SH, true)).toEqual(at("2026-11-24T02:15:00Z")); // Tue 10:00 -> 10:15
  });

  it("overnight: 17:55 with 15 minutes is due at 09:10 the next working day", () => {
    expect(slaDueAt(at("2026-11-24T09:55:00Z"), 15, weekdays, SH, true)).toEqual(at("2026-11-25T01:10:00Z")); // Tue 17:55 -> Wed 09:10
    // Seconds count too: 17:59:30 with one minute leaves 30 s for the morning.
    expect(slaDueAt(at("2026-11-24T09:59:30Z"), 1, weekdays, SH, true)).toEqual(at("2026-11-25T01:00:30Z"));
  });

  it("weekend gap: Friday 17:55 is due Monday 09:10; Saturday's leads wait for Monday", () => {
    expect(slaDueAt(at("2026-11-27T09:55:00Z"), 15, weekdays, SH, true)).toEqual(at("2026-11-30T01:10:00Z"));
    expect(slaDueAt(at("2026-11-28T02:00:00Z"), 15, weekdays, SH, true)).toEqual(at("2026-11-30T01:15:00Z"));
    // Early morning before the shift: the clock starts at 09:00.
    expect(slaDueAt(at("2026-11-23T23:00:00Z"), 15, weekdays, SH, true)).toEqual(at("2026-11-24T01:15:00Z")); // Tue 07:00 -> 09:15
  });

  it("a deadline that ends exactly with the shift stays that day; arriving at the end starts tomorrow", () => {
    expect(slaDueAt(at("2026-11-24T09:45:00Z"), 15, weekdays, SH, true)).toEqual(at("2026-11-24T10:00:00Z")); // Tue 17:45 -> 18:00
    expect(slaDueAt(at("2026-11-24T10:00:00Z"), 15, weekdays, SH, true)).toEqual(at("2026-11-25T01:15:00Z")); // Tue 18:00 -> Wed 09:15
    // A long deadline spans several working days: 1,440 working minutes = 2 days and 6 hours of shifts.
    expect(slaDueAt(at("2026-11-24T01:00:00Z"), 1440, weekdays, SH, true)).toEqual(at("2026-11-26T07:00:00Z")); // Tue 09:00 -> Thu 15:00
  });

  it("splits days: two shifts a day and an overnight shift, as onShift reads them", () => {
    // Lunch break: 09:00-12:00 on Tuesday only (other days off).
    expect(slaDueAt(at("2026-11-24T03:50:00Z"), 30, { tue: ["09:00", "12:00"], wed: ["14:00", "18:00"] }, SH, true)).toEqual(at("2026-11-25T06:20:00Z")); // Tue 11:50 -> Wed 14:20
    // Monday's "22:00"-"06:00" covers Monday 00:00-06:00 and 22:00-24:00 (onShift's reading).
    const night: Shift = { mon: ["22:00", "06:00"], tue: ["22:00", "06:00"] };
    expect(slaDueAt(at("2026-11-22T21:55:00Z"), 15, night, SH, true)).toEqual(at("2026-11-23T14:10:00Z")); // Mon 05:55 -> Mon 22:10
    // Monday 23:50 + 15: 10 minutes on Monday, then Tuesday 00:00-00:05.
    expect(slaDueAt(at("2026-11-23T15:50:00Z"), 15, night, SH, true)).toEqual(at("2026-11-23T16:05:00Z"));
  });

  it("works in another zone: half-hour offsets, and across a DST change in either direction", () => {
    expect(slaDueAt(at("2026-11-24T12:25:00Z"), 15, weekdays, IN, true)).toEqual(at("2026-11-25T03:40:00Z")); // Tue 17:55 IST -> Wed 09:10 IST
    // New York, Friday 17:55 EDT (UTC-4); DST ends on Sunday: Monday 09:10 EST (UTC-5).
    expect(slaDueAt(at("2026-10-30T21:55:00Z"), 15, weekdays, NY, true)).toEqual(at("2026-11-02T14:10:00Z"));
    // Friday 17:55 EST; DST starts on Sunday: Monday 09:10 EDT.
    expect(slaDueAt(at("2026-03-06T22:55:00Z"), 15, weekdays, NY, true)).toEqual(at("2026-03-09T13:10:00Z"));
    // The same instant in Shanghai is Saturday morning: Monday 09:15 there.
    expect(slaDueAt(at("2026-10-30T21:55:00Z"), 15, weekdays, SH, true)).toEqual(at("2026-11-02T01:15:00Z"));
  });

  it("counts exactly the minutes onShift calls working (random starts, shifts and deadlines)", () => {
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const hhmm = (m: number) => `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
    for (let i = 0; i < 60; i++) {
      const shift: Record<string, [string, string]> = {};
      for (const d of ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]) if (rand(3)) shift[d] = [hhmm(rand(96) * 15), hhmm(rand(96) * 15)];
      const tz = [SH, NY, IN][rand(3)]!;
      const start = new Date(Date.UTC(2026, 9, 20 + rand(20), rand(24), rand(60)));
      const minutes = 1 + rand(240);
      const due = slaDueAt(start, minutes, shift, tz, true);
      if (Object.values(shift).every(([a, b]) => a === b)) {
        expect(due.getTime() - start.getTime()).toBe(minutes * 60_000);
        continue;
      }
      let counted = 0;
      for (let t = start.getTime(); t < due.getTime(); t += 60_000) if (onShift(shift, new Date(t), tz)) counted++;
      expect({ i, counted }).toEqual({ i, counted: minutes });
      expect(onShift(shift, new Date(due.getTime() - 60_000), tz)).toBe(true);
    }
  });
});

describe("slaRemindAt", () => {
  const start = at("2026-11-24T02:00:00Z");
  it("reminds before the deadline, never before the start, and not at all when off", () => {
    expect(slaRemindAt(start, at("2026-11-24T02:15:00Z"), 5)).toEqual(at("2026-11-24T02:10:00Z"));
    expect(slaRemindAt(start, at("2026-11-24T02:03:00Z"), 5)).toEqual(start);
    expect(slaRemindAt(start, at("2026-11-24T02:15:00Z"), 0)).toBeNull();
  });
});
