import { describe, expect, it } from "vitest";
import { occurrencesBetween, reasonText } from "../../src/http/console/content-kit";
import { markedSegments } from "../../src/http/console/content-reviews";
import { translator } from "../../src/http/console/i18n";
import { renderPage } from "../../src/http/console/views";
import { navFor } from "../../src/http/console/nav";
import { entryDue } from "../../src/services/posts/review-desk";

/** The content pages' pure parts: findings marked in place, a calendar's days, due times, reasons. */
describe("console content helpers", () => {
  it("marks findings at their UTF-16 offsets, keeps the rest as text, and skips overlaps and offsets outside the text", () => {
    const text = "本院😀效果最好，治愈率100%";
    const best = text.indexOf("效果最好");
    const cure = text.indexOf("治愈率");
    const segs = markedSegments(text, [
      { n: 2, start: cure, end: cure + 3, severity: "block", title: "b" },
      { n: 1, start: best, end: best + 4, severity: "warn", title: "a" },
      { n: 3, start: best + 1, end: best + 3, severity: "warn", title: "overlap" },
      { n: 4, start: 100, end: 104, severity: "warn", title: "outside" },
    ]);
    expect(segs).toEqual([
      { text: "本院😀" },
      { text: "效果最好", mark: { n: 1, severity: "warn", title: "a" } },
      { text: "，" },
      { text: "治愈率", mark: { n: 2, severity: "block", title: "b" } },
      { text: "100%" },
    ]);
    expect(segs.map((s) => s.text).join("")).toBe(text);
  });

  it("prints the copy as text: markup in copy or comments never becomes markup", () => {
    const t = translator("zh-CN");
    const html = renderPage(
      "review-post",
      {
        back: "/console/reviews",
        panel: {
          id: "p",
          badge: { state: "in_review", label: "审核中" },
          sections: [{ where: "body", label: "文案", segments: markedSegments(`<img src=x onerror=alert(1)>最好`, [{ n: 1, start: 28, end: 30, severity: "warn", title: `"><script>` }]) }],
          findings: [{ n: 1, field: "c0", term: "最好", matched: "最好", where: "文案", category: "绝对化用语", severity: "warn", severityLabel: "提示", basis: "广告法", suggestion: "<b>良好</b>" }],
          history: [{ level: "第 1 级", who: "<i>审核</i>", at: "2026-11-24T00:00:00Z", atText: "x", decision: "reject", decisionLabel: "驳回", comments: [{ term: "最好", where: "", comment: "<script>alert(2)</script>" }] }],
        },
      },
      { locale: "zh-CN", t, title: "x", url: new URL("http://localhost/console/reviews/p"), principal: { name: "r", role: "reviewer" }, tenant: "demo", nav: navFor("reviewer", t, "reviews") },
    );
    expect(html).not.toMatch(/<img src=x|<script>alert|<b>良好|<i>审核/);
    expect(html).toContain('<mark class="finding sev-warn" data-finding="1" title="&quot;&gt;&lt;script&gt;">最好<sup>');
  });

  it("puts an entry on the days of a range: a date once, a weekday weekly, a monthday monthly (the 31st on a short month's last day), within the calendar's dates", () => {
    expect(occurrencesBetween({ kind: "at", at: "2026-12-07T10:00" }, "2026-12-01", "2026-12-31", {})).toEqual(["2026-12-07"]);
    expect(occurrencesBetween({ kind: "at", at: "2027-01-07T10:00" }, "2026-12-01", "2026-12-31", {})).toEqual([]);
    // 2026-12-07 is a Monday.
    expect(occurrencesBetween({ kind: "weekday", weekday: 1, time: "10:00" }, "2026-12-01", "2026-12-31", { endDate: "2026-12-21" })).toEqual(["2026-12-07", "2026-12-14", "2026-12-21"]);
    expect(occurrencesBetween({ kind: "monthday", day: 31, time: "10:00" }, "2026-11-01", "2026-12-31", { startDate: "2026-11-15" })).toEqual(["2026-11-30", "2026-12-31"]);
    expect(occurrencesBetween({ kind: "relative", day: 3, time: "10:00" }, "2026-12-01", "2026-12-31", {})).toEqual([]);
  });

  it("knows when an entry is next due, in the calendar's zone and dates", () => {
    const now = new Date("2026-12-02T03:00:00Z"); // Wednesday 11:00 in Shanghai
    expect(entryDue({ kind: "at", at: "2026-12-01T10:00" }, now, "Asia/Shanghai")?.toISOString()).toBe("2026-12-01T02:00:00.000Z");
    expect(entryDue({ kind: "weekday", weekday: 1, time: "10:00" }, now, "Asia/Shanghai")?.toISOString()).toBe("2026-12-07T02:00:00.000Z");
    expect(entryDue({ kind: "weekday", weekday: 1, time: "10:00" }, now, "Asia/Shanghai", { startDate: "2026-12-10" })?.toISOString()).toBe("2026-12-14T02:00:00.000Z");
    expect(entryDue({ kind: "weekday", weekday: 1, time: "10:00" }, now, "Asia/Shanghai", { endDate: "2026-12-05" })).toBeNull();
    expect(entryDue({ kind: "relative", day: 1, time: "10:00" }, now, "Asia/Shanghai")).toBeNull();
    expect(entryDue({ kind: "birthday", daysBefore: 0, time: "10:00" }, now, "Asia/Shanghai")).toBeNull();
  });

  it("says delivery's reasons in the console's words, keeping the original as the detail", () => {
    const t = translator("zh-CN");
    expect(reasonText(t, "the contact opted out of marketing (退订) on 2026-11-24T07:52:34Z")).toEqual({ label: "已退订", detail: "the contact opted out of marketing (退订) on 2026-11-24T07:52:34Z" });
    expect(reasonText(t, "something new")).toEqual({ label: "something new", detail: "something new" });
  });
});
