import { describe, expect, it } from "vitest";
import {
  attachmentSummary,
  calendarComplianceIssues,
  CalendarDefinition,
  entryAttachments,
  entryPost,
  entryWhen,
  formatCalendarIssue,
  inQuietHours,
  MissingVariableError,
  parseCalendar,
  renderEntry,
  type CalendarIssue,
} from "../../src/domain/calendars/index";
import { buildChecker, type BannedTerm } from "../../src/domain/compliance/index";

/** A small valid dated calendar; tests change one thing at a time. */
function base(over: Record<string, unknown> = {}, entries?: unknown[]): Record<string, unknown> {
  return {
    name: "祛痘社群周历",
    audience: { segment: "need:祛痘" },
    variables: { name: { fallback: "您" }, consultant: {} },
    entries: entries ?? [
      { key: "tips", when: { weekday: "周一", time: "10:00" }, kind: "text", template: "{{name}}好，今天聊聊换季护肤。——{{consultant}}" },
      { key: "qa", when: { weekday: 3, time: "19:30" }, kind: "interaction", template: "大家有什么护肤问题？" },
    ],
    ...over,
  };
}

const entry = (over: Record<string, unknown>) => ({ key: "e1", when: { weekday: 1, time: "10:00" }, kind: "text", template: "你好", ...over });
const errors = (issues: CalendarIssue[]) => issues.filter((i) => i.level === "error").map((i) => [i.entry, i.path, i.message]);
const warnings = (issues: CalendarIssue[]) => issues.filter((i) => i.level === "warning").map((i) => [i.entry, i.path, i.message]);

describe("parseCalendar: a valid calendar", () => {
  it("normalises: time zone, quiet hours, channel and service defaults, variables merged into each entry", () => {
    const r = parseCalendar(base(), "acne.yaml");
    expect(r.issues).toEqual([]);
    expect(r.kind).toBe("dated");
    const c = r.calendar!;
    expect(c.timeZone).toBe("Asia/Shanghai");
    expect(c.quietHours).toEqual({ start: "21:00", end: "08:30" });
    expect(c.entries.map((e) => [e.key, e.channel, e.service])).toEqual([
      ["tips", "single", false],
      ["qa", "single", false],
    ]);
    expect(Object.keys(c.entries[0]!.variables)).toEqual(["name", "consultant"]);
    // The stored form parses again to itself, and satisfies the exported schema.
    expect(parseCalendar(JSON.parse(JSON.stringify(c))).calendar).toEqual(c);
    expect(CalendarDefinition.safeParse(c).success).toBe(true);
  });

  it("takes group chats by tag or id, and sends group entries to them", () => {
    const r = parseCalendar(base({ audience: { groups: { tags: ["祛痘交流群"] } } }, [entry({ key: "a", template: "今晚{{consultant}}在群里答疑" }), entry({ key: "b", when: { weekday: 2, time: "10:00" } })]));
    expect(r.issues).toEqual([]);
    expect(r.calendar!.entries.every((e) => e.channel === "group")).toBe(true);
    // A group chat has no one name to fill in.
    expect(errors(parseCalendar(base({ audience: { groups: { ids: ["wr1"] } } })).issues)).toEqual([["tips", "entries[0].template", expect.stringMatching(/\{\{name\}\}, but a group chat message has no single recipient/)]]);
  });

  it("is relative when entries give day N, with an enrollment audience", () => {
    const r = parseCalendar({
      name: "术后关怀",
      audience: { enrollment: { on: { event: "visit" }, endOn: { outcome: "lost" } } },
      entries: [entry({ key: "d1", when: { day: 1, time: "10:00" }, service: true }), entry({ key: "d7", when: { day: 7, time: "10:00" }, service: true })],
    });
    expect(r.issues).toEqual([]);
    expect(r.kind).toBe("relative");
    expect(r.calendar!.entries.map((e) => entryWhen(e))).toEqual([
      { kind: "relative", day: 1, time: "10:00" },
      { kind: "relative", day: 7, time: "10:00" },
    ]);
  });
});

describe("entryWhen", () => {
  it.each([
    [{ date: "2026-12-07", time: "10:00" }, { kind: "at", at: "2026-12-07T10:00" }],
    [{ weekday: "周四", time: "20:00" }, { kind: "weekday", weekday: 4, time: "20:00" }],
    [{ weekday: "sun", time: "09:00" }, { kind: "weekday", weekday: 7, time: "09:00" }],
    [{ monthday: 18, time: "10:00" }, { kind: "monthday", day: 18, time: "10:00" }],
    [{ birthday: true, time: "09:30" }, { kind: "birthday", daysBefore: 0, time: "09:30" }],
    [{ birthday: true, daysBefore: 3, time: "09:30" }, { kind: "birthday", daysBefore: 3, time: "09:30" }],
    [{ day: 0, time: "15:00" }, { kind: "relative", day: 0, time: "15:00" }],
  ])("%j -> %j", (when, expected) => {
    expect(entryWhen({ when: when as never })).toEqual(expected);
  });

  it("quiet hours span midnight", () => {
    const q = { start: "21:00", end: "08:30" };
    expect(["21:00", "23:59", "00:00", "08:29"].map((t) => inQuietHours(t, q))).toEqual([true, true, true, true]);
    expect(["08:30", "12:00", "20:59"].map((t) => inQuietHours(t, q))).toEqual([false, false, false]);
    expect(inQuietHours("13:00", { start: "12:00", end: "14:00" })).toBe(true);
  });
});

describe("parseCalendar: errors name the file, the entry and the field", () => {
  it("reports shape errors of every entry at once, with the entry key and a field path", () => {
    const r = parseCalendar(
      base({}, [
        entry({ key: "a", when: { weekday: 8, time: "10:00" } }),
        entry({ key: "b", tempalte: "typo" }),
        entry({ key: "c", when: { date: "2026-02-30", time: "25:00" } }),
        entry({ key: "d", kind: "poster" }),
        { key: "e", when: { weekday: 1, time: "10:00" }, kind: "text" },
      ]),
      "content-calendars/x.yaml",
    );
    expect(r.calendar).toBeNull();
    expect(r.issues.every((i) => i.file === "content-calendars/x.yaml" && i.level === "error")).toBe(true);
    expect(r.issues.map((i) => [i.entry, i.path])).toEqual([
      ["a", "entries[0].when.weekday"],
      ["b", "entries[1].tempalte"],
      ["c", "entries[2].when.date"],
      ["c", "entries[2].when.time"],
      ["d", "entries[3].kind"],
      ["e", "entries[4].template"],
    ]);
    expect(r.issues[1]!.message).toMatch(/not a field/);
    expect(r.issues[5]!.message).toBe("is required");
    expect(formatCalendarIssue(r.issues[0]!)).toMatch(/^content-calendars\/x\.yaml: a: entries\[0\]\.when\.weekday: error: a weekday/);
  });

  it("names the calendar's own fields, with no entry", () => {
    const r = parseCalendar({ name: "", audience: {}, entries: [] });
    expect(r.issues.map((i) => [i.entry, i.path])).toEqual([
      [null, "name"],
      [null, "entries"],
    ]);
    expect(parseCalendar("just text").issues[0]).toMatchObject({ entry: null, path: "(calendar)" });
    expect(errors(parseCalendar(base({ timeZone: "Mars/Base", audience: {} })).issues)).toEqual([
      [null, "timeZone", expect.stringMatching(/IANA/)],
      [null, "audience", expect.stringMatching(/names no one/)],
    ]);
    expect(errors(parseCalendar(base({ audience: { groups: { ids: ["wr1"] } } }, [entry({ channel: "single" })])).issues)).toEqual([["e1", "entries[0].channel", expect.stringMatching(/names no contacts/)]]);
  });

  it("refuses a template using an undeclared variable, and one that does not compile, naming the entry", () => {
    const r = parseCalendar(
      base({}, [
        entry({ key: "undeclared", template: "{{name}}您好，{{price}}特惠" }),
        entry({ key: "broken", template: "{{#if name}}没有结束" }),
        entry({ key: "helper", template: "{{#each name}}x{{/each}} {{> footer}} {{name.first}}" }),
        entry({ key: "nolink", template: "点击 {{link}}", variables: { link: {} } }),
      ]),
    );
    expect(errors(r.issues)).toEqual([
      ["undeclared", "entries[0].template", "uses {{price}}, which is not declared: add it to the calendar's or the entry's variables"],
      ["broken", "entries[1].template", expect.stringMatching(/^does not compile: /)],
      ["helper", "entries[2].template", expect.stringMatching(/\{\{#each\}\} is not supported/)],
      ["helper", "entries[2].template", expect.stringMatching(/partials/)],
      ["helper", "entries[2].template", expect.stringMatching(/\{\{name\.first\}\}: variables are plain names/)],
      ["nolink", "entries[3].template", "uses {{link}}, but the entry has no link (link.url)"],
    ]);
  });

  it("refuses a declared variable that nobody fills", () => {
    const r = parseCalendar(base({ variables: { name: {}, item: { description: "项目" } } }, [entry({ template: "{{item}}", variables: { doctor: {} } })]));
    expect(errors(r.issues)).toEqual([
      [null, "variables.item", expect.stringMatching(/filled by nobody/)],
      ["e1", "entries[0].variables.doctor", expect.stringMatching(/filled by nobody/)],
    ]);
    expect(parseCalendar(base({ variables: { item: { value: "光子嫩肤" } } }, [entry({ template: "{{item}}" })])).issues).toEqual([]);
  });

  it("keeps a calendar dated or relative throughout, with the matching audience", () => {
    const mixed = parseCalendar(base({}, [entry({ key: "a" }), entry({ key: "b", when: { day: 3, time: "10:00" } })]));
    expect(errors(mixed.issues)).toEqual([["b", "entries[1].when", expect.stringMatching(/belongs in a relative calendar/)]]);
    const noEnrollment = parseCalendar(base({}, [entry({ when: { day: 1, time: "10:00" } })]));
    expect(errors(noEnrollment.issues)).toEqual([[null, "audience", expect.stringMatching(/needs audience.enrollment/)]]);
    const two = parseCalendar(base({}, [entry({ when: { day: 1, weekday: 2, time: "10:00" } })]));
    expect(errors(two.issues)).toEqual([["e1", "entries[0].when", expect.stringMatching(/gives weekday and day/)]]);
  });

  it("checks channel, service, conditions and owner against the audience", () => {
    const both = { segment: "need:祛痘", groups: { ids: ["wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA"] } };
    const r = parseCalendar(
      base({ audience: both }, [
        entry({ key: "which" }),
        entry({ key: "grp", channel: "group", service: true, conditions: { skipIf: "visit:复诊" }, owner: "zhangmin" }),
        entry({ key: "cond", channel: "single", conditions: { skipIf: "visit:复诊 AND", onlyIf: "spend_12m >= 5000" } }),
      ]),
    );
    expect(errors(r.issues)).toEqual([
      ["which", "entries[0].channel", expect.stringMatching(/say single \(1:1\) or group/)],
      ["grp", "entries[1].service", expect.stringMatching(/group chat message is marketing/)],
      ["grp", "entries[1].conditions", expect.stringMatching(/group entry goes to whole chats/)],
      ["grp", "entries[1].owner", expect.stringMatching(/each chat's owner/)],
      ["cond", "entries[2].conditions.skipIf", expect.stringMatching(/not a valid segment expression/)],
    ]);
    expect(errors(parseCalendar(base({ audience: { segment: "need:" } })).issues)).toEqual([[null, "audience.segment", expect.stringMatching(/tag name is missing/)]]);
  });

  it("keeps marketing out of the quiet hours; a service message there is a warning", () => {
    const r = parseCalendar(base({ quietHours: { start: "22:00", end: "08:00" } }, [entry({ key: "late", when: { weekday: 1, time: "22:30" } }), entry({ key: "early", when: { weekday: 2, time: "07:30" }, service: true })]));
    expect(errors(r.issues)).toEqual([["late", "entries[0].when.time", "22:30 falls in the quiet hours 22:00-08:00: nothing is sent then"]]);
    expect(warnings(r.issues)).toEqual([["early", "entries[1].when.time", expect.stringMatching(/service message/)]]);
  });

  it("requires the attachment each kind needs, and refuses one that does not belong", () => {
    const r = parseCalendar(
      base({}, [
        entry({ key: "art", kind: "article" }),
        entry({ key: "img", kind: "image", link: { url: "https://example.cn/a", title: "x" } }),
        entry({ key: "mp", kind: "miniprogram", miniprogram: { appId: "wx1234567890abcdef", page: "pages/index", title: "预约" } }),
        entry({ key: "poll", kind: "poll" }),
      ]),
    );
    // Shape errors (the page path) come first, then the rules between fields.
    expect(errors(r.issues)).toEqual([
      ["mp", "entries[2].miniprogram.page", expect.stringMatching(/\.html/)],
      ["art", "entries[0].link", "an article entry needs link"],
      ["img", "entries[1].image", "an image entry needs image"],
      ["img", "entries[1].link", "does not go with kind image"],
      ["poll", "entries[3].poll", "a poll entry needs poll or link"],
    ]);
  });

  it("refuses duplicate keys and templateFile in an API body; warns about two mass messages on one day and past dates", () => {
    const dup = parseCalendar(base({}, [entry({ key: "a" }), entry({ key: "a", when: { weekday: 2, time: "10:00" } })]));
    expect(errors(dup.issues)).toEqual([["a", "entries[1].key", expect.stringMatching(/used twice/)]]);
    const file = parseCalendar(base({}, [{ key: "f", when: { weekday: 1, time: "10:00" }, kind: "text", templateFile: "f.hbs" }]));
    expect(errors(file.issues)).toEqual([["f", "entries[0].templateFile", expect.stringMatching(/inline/)]]);
    const busy = parseCalendar(base({}, [entry({ key: "a", when: { date: "2026-01-05", time: "10:00" } }), entry({ key: "b", when: { date: "2026-01-05", time: "16:00" } })]), null, { now: new Date("2026-03-01T00:00:00Z") });
    expect(busy.calendar).not.toBeNull();
    expect(warnings(busy.issues)).toEqual([
      ["a", "entries[0].when.date", expect.stringMatching(/has passed/)],
      ["b", "entries[1].when.date", expect.stringMatching(/has passed/)],
      ["b", "entries[1].when", expect.stringMatching(/same day as entry a/)],
    ]);
  });
});

describe("renderEntry", () => {
  const cal = parseCalendar(
    base({ variables: { name: { fallback: "您" }, consultant: {}, clinic: { value: "星悦门诊部" }, link: {} } }, [
      entry({ key: "art", kind: "article", link: { url: "https://example.cn/a/7", title: "换季护肤小贴士", desc: "三个步骤" }, template: "{{name}}好，{{clinic}}{{consultant}}给您分享：{{link}}{{#if nickname}}（{{nickname}}）{{/if}}", variables: { nickname: { fallback: "" } } }),
    ]),
  ).calendar!;
  const e = cal.entries[0]!;

  it("fills per-recipient values, fixed values win, empty values take the fallback", () => {
    expect(renderEntry(e, { name: "王女士", consultant: "李顾问", clinic: "别的门诊", link: "https://s.siyu.cn/l/abc", nickname: "小王" })).toBe("王女士好，星悦门诊部李顾问给您分享：https://s.siyu.cn/l/abc（小王）");
    expect(renderEntry(e, { name: "  ", consultant: "李顾问" })).toBe("您好，星悦门诊部李顾问给您分享：https://example.cn/a/7");
    expect(() => renderEntry(e, { name: "王女士" })).toThrow(MissingVariableError);
  });

  it("sends WeCom text as plain text: no HTML escaping, control and bidi characters stripped", () => {
    expect(renderEntry(e, { name: "<b>A&B</b>\u0007\u202e", consultant: "李*顾问" })).toBe("<b>A&B</b>好，星悦门诊部李*顾问给您分享：https://example.cn/a/7");
  });

  it("escapes values for markdown channels, not the template", () => {
    expect(renderEntry(e, { name: "[点我](http://x.cn) *A*", consultant: "<font>李\n# 顾问" }, { format: "markdown" })).toBe(
      "\\[点我\\]\\(http://x.cn\\) \\*A\\*好，星悦门诊部&lt;font&gt;李 \\# 顾问给您分享：https://example.cn/a/7",
    );
  });

  it("gives the post an entry becomes, its attachments and the summary reviewers see", () => {
    expect(entryPost(e)).toEqual({
      kind: "mass_message",
      title: "链接：换季护肤小贴士 — 三个步骤 https://example.cn/a/7",
      body: e.template,
      sampleData: { name: "王女士", consultant: "李顾问", clinic: "星悦门诊部", link: "https://example.cn/a/7", nickname: "小王" },
    });
    expect(entryAttachments(e, { link: "https://s.siyu.cn/l/abc" })).toEqual([{ msgtype: "link", link: { title: "换季护肤小贴士", url: "https://s.siyu.cn/l/abc", desc: "三个步骤" } }]);
    expect(attachmentSummary({ kind: "poll", poll: { options: ["满意", "一般", "不满意"] } })).toBe("选项：满意 / 一般 / 不满意");
  });
});

describe("calendarComplianceIssues", () => {
  const term = (t: string, severity: "block" | "warn", category: string): BannedTerm => ({ term: t, category, severity, basis: "《广告法》第九条", suggestion: "改写" });
  const checker = buildChecker([term("根治", "block", "efficacy"), term("最好", "warn", "absolute")], []);

  it("checks the template as written and rendered, the attachment and fallbacks; block is an error, warn a warning", () => {
    const cal = parseCalendar(
      base({ variables: { name: { fallback: "最好的您" }, item: { value: "根治痘痘疗程" } } }, [
        entry({ key: "ok", template: "{{name}}好，欢迎咨询。" }),
        entry({ key: "bad", when: { weekday: 2, time: "10:00" }, template: "三天根治痘痘" }),
        entry({ key: "hidden", when: { weekday: 3, time: "10:00" }, template: "本周{{item}}" }),
        entry({ key: "linked", when: { weekday: 4, time: "10:00" }, kind: "article", link: { url: "https://example.cn/a", title: "最好的护肤" }, template: "分享一篇文章" }),
      ]),
    ).calendar!;
    const issues = calendarComplianceIssues(cal, checker, ["block"], "x.yaml");
    expect(issues.map((i) => [i.entry, i.path, i.level])).toEqual([
      [null, "variables.name.fallback", "warning"],
      ["bad", "entries[1].template", "error"],
      ["hidden", "entries[2].template", "error"],
      ["linked", "entries[3].link", "warning"],
    ]);
    expect(issues[2]!.message).toMatch(/rendered with the samples/);
    expect(issues[1]!.message).toMatch(/"根治" at 2-4: efficacy/);
  });
});

describe("relative calendars anchored at an appointment", () => {
  const rel = (entries: unknown[]) => ({ name: "预约提醒", audience: { enrollment: { on: { event: "appointment_booked" } } }, entries });
  it("takes day -1 at a time and minutesBefore without one, both relative", () => {
    const r = parseCalendar(rel([entry({ key: "eve", when: { day: -1, time: "19:00" }, service: true }), entry({ key: "soon", when: { minutesBefore: 120 }, service: true })]), "r.yaml");
    expect(errors(r.issues)).toEqual([]);
    expect(r.kind).toBe("relative");
    expect(r.calendar!.entries.map((e) => entryWhen(e))).toEqual([{ kind: "relative", day: -1, time: "19:00" }, { kind: "before", minutes: 120 }]);
  });
  it("names the field: minutesBefore with a time, any other kind without one, minutesBefore on a marketing entry (a warning)", () => {
    const r = parseCalendar(rel([entry({ key: "a", when: { minutesBefore: 60, time: "10:00" }, service: true }), entry({ key: "b", when: { day: 1 } }), entry({ key: "c", when: { minutesBefore: 30 } })]), "r.yaml");
    expect(errors(r.issues).map(([e, p]) => [e, p])).toEqual([["a", "entries[0].when.time"], ["b", "entries[1].when.time"]]);
    expect(warnings(r.issues).map(([e, p]) => [e, p])).toContainEqual(["c", "entries[2].when.minutesBefore"]);
  });
});
