import { describe, expect, it } from "vitest";
import { AlertCondition, judge, localNow, windowsFor, type Point } from "../../src/domain/alerts/rules";

const now = { date: "2026-03-11", time: "15:00:00" };
const pts = (o: Record<string, readonly [number, number]>) => new Map<string, Point>(Object.entries(o).map(([k, [num, den]]) => [k, { num, den }]));
const drop = AlertCondition.parse({ kind: "drop_vs_weekday_mean", pct: 30 });

describe("alert verdicts", () => {
  it("needs the windows of today so far and yesterday, and the same weekdays before each", () => {
    const keys = windowsFor("deal_rate", drop, now).map((w) => `${w.key}@${w.day}${w.until ? `<${w.until}` : ""}`);
    expect(keys).toContain("today@2026-03-11<15:00:00");
    expect(keys).toContain("yesterday-w4@2026-02-10");
    expect(windowsFor("sla_breaches", AlertCondition.parse({ kind: "spike_vs_mean", days: 3 }), now).map((w) => w.day)).toEqual(["2026-03-11", "2026-03-10", "2026-03-09", "2026-03-08"]);
    expect(windowsFor("sla_breaches", AlertCondition.parse({ kind: "threshold", op: "lt", value: 1 }), now).map((w) => w.key)).toEqual(["yesterday"]);
  });

  it.each([
    ["today under the mean by more than pct", { today: [4, 20], "today-w1": [10, 20], "today-w2": [10, 20] }, true, "today"],
    ["today 30% under exactly: not more than", { today: [7, 20], "today-w1": [10, 20], "today-w2": [10, 20] }, false, "today"],
    ["today without the volume: yesterday", { today: [0, 3], yesterday: [2, 20], "yesterday-w1": [10, 20], "yesterday-w2": [10, 20] }, true, "yesterday"],
    ["history days without volume left out, too few left", { today: [4, 20], "today-w1": [10, 20], "today-w2": [1, 2] }, null, undefined],
  ] as const)("%s", (_name, p, failing, judged) => {
    const v = judge("deal_rate", drop, pts(p), now);
    expect(v.failing).toBe(failing);
    expect(v.detail.judged).toBe(judged);
  });

  it("spikes only from minCount, against the mean of the days before", () => {
    const c = AlertCondition.parse({ kind: "spike_vs_mean", factor: 2, days: 2, minCount: 3 });
    expect(judge("send_failures", c, pts({ today: [2, 0] }), now).failing).toBe(false);
    expect(judge("send_failures", c, pts({ today: [3, 0] }), now)).toMatchObject({ failing: true, baseline: 0 });
    expect(judge("send_failures", c, pts({ today: [4, 0], d1: [2, 0], d2: [2, 0] }), now).failing).toBe(false);
    expect(judge("send_failures", c, pts({ today: [5, 0], d1: [2, 0], d2: [2, 0] }), now)).toMatchObject({ failing: true, value: 5, baseline: 2 });
  });

  it("reads the local day and time in the tenant's zone", () => {
    expect(localNow(new Date("2026-03-10T16:30:05Z"), "Asia/Shanghai")).toEqual({ date: "2026-03-11", time: "00:30:05" });
    expect(localNow(new Date("2026-03-10T16:30:05Z"), "America/New_York")).toEqual({ date: "2026-03-10", time: "12:30:05" });
  });
});
