import { describe, expect, it } from "vitest";
import { addDays, ledgerDay, localParts, occurrence, outOfQuiet, outOfQuietLocal, perRecipientCopy, relativeOffset, templateVariables, zonedInstant } from "../../src/domain/delivery/schedule";

const quiet = { start: "21:00", end: "08:30" };

describe("delivery times", () => {
  it("reads a local date and time in a zone, DST included", () => {
    expect(zonedInstant("2026-12-01", "10:00", "Asia/Shanghai").toISOString()).toBe("2026-12-01T02:00:00.000Z");
    expect(zonedInstant("2026-12-01", "10:00", "Asia/Tokyo").toISOString()).toBe("2026-12-01T01:00:00.000Z");
    // New York: EST in winter, EDT in summer; 02:30 on the spring-forward night does not exist.
    expect(zonedInstant("2026-01-15", "09:00", "America/New_York").toISOString()).toBe("2026-01-15T14:00:00.000Z");
    expect(zonedInstant("2026-07-15", "09:00", "America/New_York").toISOString()).toBe("2026-07-15T13:00:00.000Z");
    expect(localParts(zonedInstant("2026-03-08", "02:30", "America/New_York"), "America/New_York").minutes).toBe(3 * 60 + 30);
    expect(addDays("2026-02-28", 1)).toBe("2026-03-01");
    expect(ledgerDay(new Date("2026-11-30T17:00:00Z"), "Asia/Shanghai")).toBe("2026-12-01");
  });

  it("moves times out of quiet hours to their end, across midnight", () => {
    expect(outOfQuietLocal(22 * 60 + 30, quiet)).toEqual({ addDays: 1, minutes: 8 * 60 + 30, moved: true });
    expect(outOfQuietLocal(7 * 60, quiet)).toEqual({ addDays: 0, minutes: 8 * 60 + 30, moved: true });
    expect(outOfQuietLocal(8 * 60 + 30, quiet)).toEqual({ addDays: 0, minutes: 8 * 60 + 30, moved: false });
    expect(outOfQuietLocal(13 * 60, { start: "12:00", end: "14:00" })).toEqual({ addDays: 0, minutes: 14 * 60, moved: true });
    expect(outOfQuietLocal(13 * 60, { start: "00:00", end: "00:00" }).moved).toBe(false);
    const r = outOfQuiet(zonedInstant("2026-12-01", "23:15", "Asia/Shanghai"), quiet, "Asia/Shanghai");
    expect(r).toEqual({ at: zonedInstant("2026-12-02", "08:30", "Asia/Shanghai"), moved: true });
    expect(relativeOffset({ day: 3, time: "22:00" }, quiet)).toEqual({ days: 4, time: "08:30", moved: true });
    expect(relativeOffset({ day: 0, time: "10:00" }, quiet)).toEqual({ days: 0, time: "10:00", moved: false });
  });

  it("finds the next occurrence of weekday and monthday entries, within the calendar's end", () => {
    const tz = "Asia/Shanghai";
    const wed = zonedInstant("2026-12-02", "11:00", tz); // a Wednesday
    expect(occurrence({ kind: "weekday", weekday: 3, time: "10:00" }, wed, tz)).toEqual(zonedInstant("2026-12-09", "10:00", tz));
    expect(occurrence({ kind: "weekday", weekday: 3, time: "12:00" }, wed, tz)).toEqual(zonedInstant("2026-12-02", "12:00", tz));
    expect(occurrence({ kind: "weekday", weekday: 1, time: "09:00" }, wed, tz)).toEqual(zonedInstant("2026-12-07", "09:00", tz));
    expect(occurrence({ kind: "weekday", weekday: 1, time: "09:00" }, wed, tz, zonedInstant("2026-12-05", "00:00", tz))).toBeNull();
    // Day 31 in a 30-day or 28-day month falls on its last day.
    expect(occurrence({ kind: "monthday", day: 31, time: "10:00" }, zonedInstant("2027-02-01", "00:00", tz), tz)).toEqual(zonedInstant("2027-02-28", "10:00", tz));
    expect(occurrence({ kind: "monthday", day: 15, time: "10:00" }, zonedInstant("2026-12-20", "00:00", tz), tz)).toEqual(zonedInstant("2027-01-15", "10:00", tz));
    expect(occurrence({ kind: "at", at: "2026-12-24T19:30" }, wed, tz)).toEqual(zonedInstant("2026-12-24", "19:30", tz));
    expect(() => occurrence({ kind: "relative", day: 1, time: "10:00" }, wed, tz)).toThrow(/each recipient/);
  });

  it("tells copy that must go one message per recipient (the contact's name, links) from shared copy", () => {
    expect(templateVariables("{{name}}您好，{{#if clinic}}{{clinic}}{{/if}}")).toEqual(expect.arrayContaining(["name", "clinic"]));
    expect(perRecipientCopy("{{name}}您好，周六讲座")).toBe(true);
    expect(perRecipientCopy("周六讲座，详情见https://example.cn/a")).toBe(true);
    expect(perRecipientCopy("周六讲座，详情见{{link}}", "周六讲座，详情见https://example.cn/a")).toBe(true);
    expect(perRecipientCopy("周六讲座，欢迎报名{{date}}", "周六讲座，欢迎报名12月1日")).toBe(false);
  });
});
