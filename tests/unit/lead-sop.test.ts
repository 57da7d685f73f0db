import { describe, expect, it } from "vitest";
import {
  composeDigest,
  DEFAULT_SOP_TEMPLATE,
  digestDay,
  localDate,
  localDayBounds,
  pickTemplate,
  planSteps,
  validateSopTemplate,
  utf8Bytes,
  type SopLead,
  type SopTemplateLike,
} from "../../src/domain/leads/sop";

const TZ = "Asia/Shanghai";
const step = (o: Record<string, unknown> = {}) => ({ key: "s", day: 0, title: "问候", ...o });
const iso = (d: Date) => d.toISOString();

describe("validateSopTemplate", () => {
  it("accepts a template, filling defaults (any lead, priority 0, active)", () => {
    const r = validateSopTemplate({ name: "标准 SOP", steps: [step()] });
    expect(r.ok).toBe(true);
    expect(r.ok && r.template).toMatchObject({ match: {}, priority: 0, active: true });
    expect(validateSopTemplate(DEFAULT_SOP_TEMPLATE).ok).toBe(true);
  });

  it.each([
    ["a bad local time", { steps: [step({ key: "a" }), step({ key: "b" }), step({ key: "c", at: "25:00" })] }, "steps.2.at"],
    ["a time without minutes", { steps: [step({ at: "9" })] }, "steps.0.at"],
    ["a day beyond a year", { steps: [step({ day: 366 })] }, "steps.0.day"],
    ["a negative day", { steps: [step({ day: -1 })] }, "steps.0.day"],
    ["a repeated key", { steps: [step({ key: "day0" }), step({ key: "day0", day: 1 })] }, "steps.1.key"],
    ["a key with spaces", { steps: [step({ key: "day 0" })] }, "steps.0.key"],
    ["a post id that is no uuid", { steps: [step({ postId: "post-1" })] }, "steps.0.postId"],
    ["no steps", { steps: [] }, "steps"],
    ["31 steps", { steps: Array.from({ length: 31 }, (_, i) => step({ key: `s${i}` })) }, "steps"],
    ["an unknown grade", { match: { grades: ["E"] }, steps: [step()] }, "match.grades.0"],
    ["an empty title", { steps: [step({ title: " " })] }, "steps.0.title"],
  ])("names the path of %s", (_what, patch, path) => {
    const r = validateSopTemplate({ name: "x", ...patch });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.issues.map((i) => i.path)).toContain(path);
  });
});

describe("planSteps (tenant time zone)", () => {
  it("plans the default SOP for a lead that came in on Tuesday 11:00 in Shanghai", () => {
    const created = new Date("2026-11-24T03:00:00.000Z");
    const plan = planSteps(DEFAULT_SOP_TEMPLATE, created, TZ);
    expect(plan.map((p) => [p.key, iso(p.dueAt)])).toEqual([
      ["day0-greeting", "2026-11-24T05:00:00.000Z"], // creation + 2 h grace
      ["day1-case", "2026-11-25T02:00:00.000Z"], // Wed 10:00 local
      ["day3-invite", "2026-11-27T06:00:00.000Z"], // Fri 14:00 local
      ["day7-followup", "2026-12-01T02:00:00.000Z"], // next Tue 10:00 local
    ]);
    expect(plan[0]).toMatchObject({ title: "问候/自我介绍", postId: null, at: null, day: 0 });
  });

  it("counts days from the local date, not the UTC date", () => {
    // 01:30 on Wednesday in Shanghai is still Tuesday in UTC.
    const created = new Date("2026-11-24T17:30:00.000Z");
    const [d0, d1] = planSteps({ steps: [step({ key: "a", at: "09:00" }), step({ key: "b", day: 1, at: "10:00" })] }, created, TZ);
    expect(iso(d0!.dueAt)).toBe("2026-11-25T01:00:00.000Z"); // Wed 09:00 local
    expect(iso(d1!.dueAt)).toBe("2026-11-26T02:00:00.000Z"); // Thu 10:00 local
  });

  it("without a time of day keeps the creation's time; day 0 uses the grace (the step's, else the option's)", () => {
    const created = new Date("2026-11-24T03:17:45.000Z");
    const plan = planSteps({ steps: [step({ key: "a" }), step({ key: "b", graceMinutes: 30 }), step({ key: "c", day: 2 })] }, created, TZ, { graceMinutes: 60 });
    expect(plan.map((p) => iso(p.dueAt))).toEqual(["2026-11-24T04:17:45.000Z", "2026-11-24T03:47:45.000Z", "2026-11-26T03:17:45.000Z"]);
  });

  it("never plans a step before the lead existed: a day-0 time already past falls back to the grace", () => {
    const created = new Date("2026-11-24T07:00:00.000Z"); // 15:00 local
    const [late, later] = planSteps({ steps: [step({ key: "a", at: "09:00" }), step({ key: "b", at: "16:00" })] }, created, TZ);
    expect(iso(late!.dueAt)).toBe("2026-11-24T09:00:00.000Z");
    expect(iso(later!.dueAt)).toBe("2026-11-24T08:00:00.000Z");
  });

  it("keeps local wall-clock times across a daylight-saving change (zones that have one)", () => {
    // New York, Saturday 2026-03-07 09:00 EST; clocks go forward on Sunday 03-08.
    const created = new Date("2026-03-07T14:00:00.000Z");
    const [at10, sameTime] = planSteps({ steps: [step({ key: "a", day: 1, at: "10:00" }), step({ key: "b", day: 1 })] }, created, "America/New_York");
    expect(iso(at10!.dueAt)).toBe("2026-03-08T14:00:00.000Z"); // 10:00 EDT
    expect(iso(sameTime!.dueAt)).toBe("2026-03-08T13:00:00.000Z"); // 09:00 EDT, 23 h later
  });
});

describe("pickTemplate", () => {
  const lead: SopLead = { clinicId: "c1", source: "referral", needs: ["正畸", "美白"], grade: "B" };
  const tpl = (id: string, o: Partial<SopTemplateLike> = {}): SopTemplateLike => ({ id, clinicId: null, active: true, priority: 0, match: {}, ...o });

  it("prefers the lead's clinic's own template, then the tenant's; never another clinic's", () => {
    const ts = [tpl("tenant", { priority: 100 }), tpl("other-clinic", { clinicId: "c2", priority: 500 }), tpl("own", { clinicId: "c1", priority: -5 })];
    expect(pickTemplate(ts, lead)?.id).toBe("own");
    expect(pickTemplate(ts, { ...lead, clinicId: null })?.id).toBe("tenant");
    expect(pickTemplate(ts, { ...lead, clinicId: "c3" })?.id).toBe("tenant");
  });

  it("takes the highest priority, then the most specific, then the lowest id", () => {
    const general = tpl("b-general");
    const byNeed = tpl("c-need", { match: { needs: ["正畸"] } });
    const byNeedAndGrade = tpl("d-need-grade", { match: { needs: ["正畸", "种植牙"], grades: ["B"] } });
    const narrow = tpl("e-narrow", { match: { needs: ["正畸"], grades: ["B"] } });
    expect(pickTemplate([general, byNeed], lead)?.id).toBe("c-need");
    expect(pickTemplate([general, byNeed, byNeedAndGrade], lead)?.id).toBe("d-need-grade");
    expect(pickTemplate([byNeedAndGrade, narrow], lead)?.id).toBe("e-narrow");
    expect(pickTemplate([byNeedAndGrade, tpl("a-general", { priority: 1 })], lead)?.id).toBe("a-general");
    expect(pickTemplate([tpl("z"), tpl("y")], lead)?.id).toBe("y");
  });

  it("matches on source, any of the lead's needs and grade; empty lists match anything; inactive never", () => {
    expect(pickTemplate([tpl("x", { match: { sources: ["livestream"] } })], lead)).toBeNull();
    expect(pickTemplate([tpl("x", { match: { sources: ["referral"], needs: ["美白"], grades: ["A", "B"] } })], lead)?.id).toBe("x");
    expect(pickTemplate([tpl("x", { match: { grades: ["A"] } })], lead)).toBeNull();
    expect(pickTemplate([tpl("x", { match: { sources: [], needs: [], grades: [] } })], lead)?.id).toBe("x");
    expect(pickTemplate([tpl("x", { active: false })], lead)).toBeNull();
    expect(pickTemplate([], lead)).toBeNull();
  });
});

describe("the daily digest", () => {
  it("is due from 08:30 local for 45 minutes (three scheduler ticks), on the local date", () => {
    expect(digestDay(new Date("2026-11-24T00:29:00.000Z"), TZ)).toBeNull();
    expect(digestDay(new Date("2026-11-24T00:30:00.000Z"), TZ)).toBe("2026-11-24");
    expect(digestDay(new Date("2026-11-24T01:14:59.000Z"), TZ)).toBe("2026-11-24");
    expect(digestDay(new Date("2026-11-24T01:15:00.000Z"), TZ)).toBeNull();
    expect(digestDay(new Date("2026-11-24T03:30:00.000Z"), "Asia/Shanghai", "11:30", 60)).toBe("2026-11-24");
    // Each tenant its own zone: 08:30 in New York is 13:30 UTC.
    expect(digestDay(new Date("2026-11-24T13:30:00.000Z"), "America/New_York")).toBe("2026-11-24");
    expect(localDate(new Date("2026-11-24T17:00:00.000Z"), TZ)).toBe("2026-11-25");
  });

  it("says nothing when there is nothing to do, and lists overdue, today's and waiting leads otherwise", () => {
    expect(composeDigest({ day: "2026-11-24", timeZone: TZ, today: [], overdue: [], awaiting: [] })).toBeNull();
    const d = composeDigest(
      {
        day: "2026-11-24",
        timeZone: TZ,
        today: [{ contactName: "张女士", title: "案例分享", dueAt: new Date("2026-11-24T02:00:00.000Z") }],
        overdue: Array.from({ length: 3 }, (_, i) => ({ contactName: i ? `客户${i}` : null, title: "邀约面诊", dueAt: new Date("2026-11-23T06:00:00.000Z") })),
        awaiting: [{ contactName: "李先生", grade: "A", dueAt: new Date("2026-11-24T01:15:00.000Z") }],
      },
      { perSection: 2 },
    )!;
    expect(d.title).toBe("跟进日报 11月24日");
    expect(d.body.split("\n")).toEqual([
      "今日待办 1 项，逾期 3 项，待首次联系 1 位。",
      "",
      "【逾期任务】",
      "· 11/23 14:00 邀约面诊：未命名客户",
      "· 11/23 14:00 邀约面诊：客户1",
      "……还有 1 项",
      "",
      "【今日任务】",
      "· 10:00 案例分享：张女士",
      "",
      "【待首次联系】",
      "· 李先生（A 级），11/24 09:15 前联系",
    ]);
  });

  it("fits one WeCom app message (2,048 bytes with the title), counting totals beyond the items listed", () => {
    const many = Array.from({ length: 40 }, (_, i) => ({ contactName: `非常长的客户名字第${i}位女士`, title: "邀约到院面诊评估并登记预约", dueAt: new Date("2026-11-23T06:00:00.000Z") }));
    const d = composeDigest({ day: "2026-11-24", timeZone: TZ, today: many, overdue: many, awaiting: [], totals: { today: 120, overdue: 40 } }, { perSection: 40 })!;
    expect(utf8Bytes(`${d.title}\n${d.body}`)).toBeLessThanOrEqual(2048);
    expect(d.body.startsWith("今日待办 120 项，逾期 40 项，待首次联系 0 位。")).toBe(true);
    expect(d.body.endsWith("……更多请在工作台查看")).toBe(true);
  });
});

describe("localDayBounds", () => {
  it("gives the local day as instants, from an instant or a date, also across a daylight-saving change", () => {
    expect(localDayBounds("2026-11-24", TZ)).toEqual({ start: new Date("2026-11-23T16:00:00.000Z"), end: new Date("2026-11-24T16:00:00.000Z") });
    expect(localDayBounds(new Date("2026-11-24T17:00:00.000Z"), TZ).start).toEqual(new Date("2026-11-24T16:00:00.000Z"));
    expect(localDayBounds("2026-11-24", "Pacific/Kiritimati").start).toEqual(new Date("2026-11-23T10:00:00.000Z"));
    expect(localDayBounds("2026-11-24", "Pacific/Pago_Pago").start).toEqual(new Date("2026-11-24T11:00:00.000Z"));
    // New York's 23-hour Sunday.
    expect(localDayBounds(new Date("2026-03-08T15:00:00.000Z"), "America/New_York")).toEqual({ start: new Date("2026-03-08T05:00:00.000Z"), end: new Date("2026-03-09T04:00:00.000Z") });
  });
});
