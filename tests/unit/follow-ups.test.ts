import { describe, expect, it } from "vitest";
import { addDays } from "../../src/domain/delivery/schedule";
import { followUpDueAt, followUpWanted, isSurveyToken, npsCategory, parseScore } from "../../src/domain/analytics/follow-ups";
import { analyticsSettingsOf, AnalyticsSettings, DEFAULT_ANALYTICS_SETTINGS } from "../../src/domain/analytics/settings";

describe("follow-up due time", () => {
  it("is 10:00 local, afterVisitDays local days after the visit's local day", () => {
    // 23:30 in Shanghai on 1 March is still 1 March there (15:30 UTC): due 4 March 10:00 (02:00 UTC).
    expect(followUpDueAt(new Date("2026-03-01T15:30:00Z"), 3, "Asia/Shanghai").toISOString()).toBe("2026-03-04T02:00:00.000Z");
    // 00:30 on 2 March in Shanghai (16:30 UTC on 1 March): due 5 March.
    expect(followUpDueAt(new Date("2026-03-01T16:30:00Z"), 3, "Asia/Shanghai").toISOString()).toBe("2026-03-05T02:00:00.000Z");
    expect(followUpDueAt(new Date("2026-03-01T04:00:00Z"), 0, "Asia/Shanghai").toISOString()).toBe("2026-03-01T02:00:00.000Z");
  });
  it("keeps the wall clock across a daylight-saving change", () => {
    // New York springs forward on 8 March 2026: 10:00 EDT is 14:00 UTC.
    expect(followUpDueAt(new Date("2026-03-06T15:00:00Z"), 3, "America/New_York").toISOString()).toBe("2026-03-09T14:00:00.000Z");
    expect(followUpDueAt(new Date("2026-03-01T15:00:00Z"), 3, "America/New_York").toISOString()).toBe("2026-03-04T15:00:00.000Z");
  });
  it("adds calendar days across months and leap days", () => {
    expect(addDays("2028-02-27", 3)).toBe("2028-03-01");
    expect(addDays("2026-12-30", 3)).toBe("2027-01-02");
  });
  it("skips follow-ups that would be born over a week overdue", () => {
    const now = new Date("2026-03-20T00:00:00Z");
    expect(followUpWanted(new Date("2026-03-14T00:00:00Z"), now)).toBe(true);
    expect(followUpWanted(new Date("2026-03-12T00:00:00Z"), now)).toBe(false);
  });
});

describe("NPS", () => {
  it.each([
    [10, "promoter"],
    [9, "promoter"],
    [8, "passive"],
    [7, "passive"],
    [6, "detractor"],
    [0, "detractor"],
  ] as const)("%i is a %s", (score, cat) => expect(npsCategory(score)).toBe(cat));
  it("reads scores from forms and JSON, 0-10 whole numbers only", () => {
    expect([parseScore("7"), parseScore(7), parseScore(" 10 "), parseScore(0)]).toEqual([7, 7, 10, 0]);
    for (const bad of ["11", -1, 7.5, "7.5", "", null, undefined, "十"]) expect(parseScore(bad), String(bad)).toBeNull();
  });
  it("accepts only long url-safe tokens", () => {
    expect(isSurveyToken("a".repeat(22))).toBe(true);
    expect(isSurveyToken("a".repeat(21))).toBe(false);
    expect(isSurveyToken(`${"a".repeat(22)}/`)).toBe(false);
  });
});

describe("analytics settings", () => {
  it("fills defaults: 3 days, survey on, 30-day attribution window", () => {
    expect(DEFAULT_ANALYTICS_SETTINGS).toEqual({ followUps: { afterVisitDays: 3, surveyAfterVisit: true }, attribution: { windowDays: 30 } });
    expect(AnalyticsSettings.parse({ followUps: { afterVisitDays: 1 } })).toEqual({ followUps: { afterVisitDays: 1, surveyAfterVisit: true }, attribution: { windowDays: 30 } });
  });
  it("refuses unknown and out-of-range fields, naming them", () => {
    const r = AnalyticsSettings.safeParse({ followUps: { afterVisitDays: -1, typo: true } });
    expect(r.success).toBe(false);
    if (!r.success) expect(r.error.issues.map((i) => i.path.join("."))).toEqual(expect.arrayContaining(["followUps.afterVisitDays", "followUps"]));
  });
  it("falls back per section when a stored config no longer parses", () => {
    expect(analyticsSettingsOf({ followUps: { afterVisitDays: 500 }, attribution: { windowDays: 7 } })).toEqual({ followUps: { afterVisitDays: 3, surveyAfterVisit: true }, attribution: { windowDays: 7 } });
    expect(analyticsSettingsOf(null)).toEqual(DEFAULT_ANALYTICS_SETTINGS);
  });
});
