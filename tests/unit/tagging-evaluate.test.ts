import { beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_TAG_GROUPS } from "../../src/domain/tagging/default-groups";
import { evaluate, type ContactFacts, type EventFact } from "../../src/domain/tagging/evaluate";
import type { RuleSet } from "../../src/domain/tagging/rules";
import { loadRuleSet } from "../../src/loaders/tagging-rules";

let rules: RuleSet;
const EXCLUSIVE = new Set(DEFAULT_TAG_GROUPS.filter((g) => g.exclusive).map((g) => g.key));
const NOW = new Date("2026-11-23T12:00:00+08:00");
const DAY = 86_400_000;
let n = 0;

beforeAll(async () => {
  const r = await loadRuleSet();
  expect(r.issues).toEqual([]);
  rules = r.ruleSet;
});

const ev = (type: string, daysAgo: number, data: Record<string, unknown> = {}): EventFact => ({ id: `e${String(++n).padStart(5, "0")}`, type, occurredAt: new Date(NOW.getTime() - daysAgo * DAY), data });
const facts = (events: EventFact[], tags: Record<string, string[]> = {}): ContactFacts => ({ fields: { source: "wecom", gender: "female", sourceState: null }, tags, events });

/** Process events one by one, as the events worker does, carrying tags forward. */
function replay(events: EventFact[], now = NOW, tags: Record<string, string[]> = {}) {
  const seen: EventFact[] = [];
  for (const e of events) {
    seen.push(e);
    tags = evaluate(facts(seen, tags), { kind: "event", event: e }, now, rules, EXCLUSIVE).tags;
  }
  return tags;
}
/** Tags as a comparable value: empty groups dropped, names sorted. */
const norm = (t: Record<string, string[]>) => Object.fromEntries(Object.entries(t).filter(([, v]) => v.length).map(([k, v]) => [k, [...v].sort()] as const).sort((x, y) => (x[0] < y[0] ? -1 : 1)));
const nightly = (events: EventFact[], tags: Record<string, string[]>, now = NOW) => evaluate(facts(events, tags), { kind: "schedule" }, now, rules, EXCLUSIVE);

describe("visit lifecycle 潜在 -> 首诊 -> 复诊 -> 沉睡 -> 复诊", () => {
  it("walks the lifecycle", () => {
    const added = ev("contact_added", 400);
    expect(replay([added]).visit).toEqual(["潜在"]);
    const v1 = ev("visit", 380);
    expect(replay([added, v1]).visit).toEqual(["首诊"]);
    const v2 = ev("visit", 300);
    let tags = replay([added, v1, v2]);
    expect(tags.visit).toEqual(["复诊"]);
    const r = nightly([added, v1, v2], tags);
    expect(r.tags.visit).toEqual(["沉睡"]);
    expect(r.changes).toEqual(expect.arrayContaining([{ action: "remove", group: "visit", tag: "复诊", ruleId: "visit-dormant" }, { action: "add", group: "visit", tag: "沉睡", ruleId: "visit-dormant" }]));
    tags = r.tags;
    const back = ev("visit", 0);
    expect(replay([back], NOW, tags).visit).toBeDefined();
    expect(evaluate(facts([added, v1, v2, back], tags), { kind: "event", event: back }, NOW, rules, EXCLUSIVE).tags.visit).toEqual(["复诊"]);
  });

  it.each([
    [179, undefined],
    [180, "沉睡"],
    [181, "沉睡"],
  ])("dormancy boundary: last visit %i days ago -> %s", (days, expected) => {
    const v = ev("visit", days);
    const tags = { visit: ["首诊"] };
    const r = nightly([v], tags);
    expect(r.tags.visit).toEqual(expected ? [expected] : ["首诊"]);
  });

  it("keeps potential contacts who never visited out of 沉睡", () => {
    const r = nightly([ev("contact_added", 900)], { visit: ["潜在"] });
    expect(r.changes.filter((c) => c.group === "visit")).toEqual([]);
  });
});

describe("spending tiers over 12 months", () => {
  it.each([
    [[20000], "高消费"],
    [[12000, 8000], "高消费"],
    [[19999.99], "中消费"],
    [[5000], "中消费"],
    [[4999], "低消费"],
    [[0.01], "低消费"],
  ])("purchases %j -> %s", (amounts, tier) => {
    const events = amounts.map((a, i) => ev("purchase", 10 + i, { amount: a, items: ["水光针"] }));
    expect(replay(events).spending).toEqual([tier]);
  });

  it("drops spend that leaves the 365-day window (the window is (now - 365 d, now])", () => {
    const inside = ev("purchase", 364.9, { amount: 30000, items: [] });
    const edge = ev("purchase", 365, { amount: 30000, items: [] });
    expect(nightly([inside], { spending: ["中消费"] }).tags.spending).toEqual(["高消费"]);
    const r = nightly([edge], { spending: ["高消费"] });
    expect(r.tags.spending).toEqual([]);
    expect(r.changes.filter((c) => c.group === "spending")).toEqual([{ action: "remove", group: "spending", tag: "高消费", ruleId: "spending-none" }]);
  });
});

describe("refunds", () => {
  it("count against 12-month spend: a tier drops, a full refund clears it", () => {
    const buy = ev("purchase", 30, { amount: 22000, items: ["热玛吉"] });
    expect(replay([buy]).spending).toEqual(["高消费"]);
    const part = ev("refund", 20, { amount: 4000 });
    expect(replay([buy, part]).spending).toEqual(["中消费"]);
    const rest = ev("refund", 10, { amount: 18000 });
    const r = evaluate(facts([buy, part, rest], { spending: ["中消费"] }), { kind: "event", event: rest }, NOW, rules, EXCLUSIVE);
    expect(r.tags.spending).toEqual([]);
    expect(r.changes).toEqual([{ action: "remove", group: "spending", tag: "中消费", ruleId: "spending-none" }]);
  });

  it("outside the window subtract nothing", () => {
    const buy = ev("purchase", 30, { amount: 6000, items: [] });
    const old = ev("refund", 400, { amount: 6000 });
    expect(nightly([old, buy], {}).tags.spending).toEqual(["中消费"]);
  });
});

describe("lost reasons", () => {
  const lost = (reason: string, daysAgo: number) => ev("consultation_outcome", daysAgo, { outcome: "lost", lostReason: reason });
  it.each([
    ["价格敏感", "价格敏感"],
    ["担心效果", "担心效果"],
    ["恐惧疼痛", "恐惧疼痛"],
    ["时间不便", "时间不便"],
    ["选择了其他机构", "选择了其他机构"],
  ])("a consultation lost for %s tags %s", (reason, tag) => {
    expect(replay([lost(reason, 3)]).lost_reason).toEqual([tag]);
  });

  it("keeps each reason of the window, and none for reasons without a tag", () => {
    expect(replay([lost("价格敏感", 40), lost("恐惧疼痛", 3), lost("其他", 1)]).lost_reason?.sort()).toEqual(["价格敏感", "恐惧疼痛"].sort());
  });

  it("drops them when the patient converts or buys", () => {
    const tags = replay([lost("价格敏感", 5)]);
    expect(replay([ev("consultation_outcome", 1, { outcome: "converted", amount: 3000 })], NOW, tags).lost_reason).toEqual([]);
    expect(replay([ev("purchase", 1, { amount: 300, items: [] })], NOW, tags).lost_reason).toEqual([]);
  });

  it("lets them lapse after lost_reason_days (90), nightly", () => {
    expect(nightly([lost("时间不便", 89)], { lost_reason: ["时间不便"] }).tags.lost_reason).toEqual(["时间不便"]);
    const r = nightly([lost("时间不便", 90)], { lost_reason: ["时间不便"] });
    expect(r.tags.lost_reason).toEqual([]);
    expect(r.changes.filter((c) => c.group === "lost_reason")).toEqual([{ action: "remove", group: "lost_reason", tag: "时间不便", ruleId: "lost-reason-reset" }]);
  });
});

describe("satisfaction (NPS) from the latest survey answer", () => {
  it.each([
    [10, "推荐者"],
    [9, "推荐者"],
    [8, "被动者"],
    [7, "被动者"],
    [6, "贬损者"],
    [0, "贬损者"],
  ])("score %i -> %s", (score, tag) => {
    expect(replay([ev("survey_answered", 1, { score })]).nps).toEqual([tag]);
  });

  it("follows the latest answer, whatever order answers arrive in", () => {
    const early = ev("survey_answered", 30, { score: 3 });
    const late = ev("survey_answered", 2, { score: 10 });
    expect(replay([early, late]).nps).toEqual(["推荐者"]);
    expect(replay([late, early]).nps).toEqual(["推荐者"]);
  });
});

describe("referrers", () => {
  const joined = (d: number) => ev("referral_joined", d, { referredContactId: "1b9f1c1e-7a55-4a7c-9a55-1c1e7a554a7c" });
  it("tags 推荐人 at the first friend, 推荐达人 at three or a friend who converted", () => {
    expect(replay([joined(9)]).referral).toEqual(["推荐人"]);
    expect(replay([joined(9), joined(8)]).referral).toEqual(["推荐人"]);
    expect(replay([joined(9), joined(8), joined(7)]).referral).toEqual(["推荐达人"]);
    expect(replay([joined(9), ev("referral_converted", 2, { referredContactId: "1b9f1c1e-7a55-4a7c-9a55-1c1e7a554a7c", amount: 5000 })]).referral).toEqual(["推荐达人"]);
  });
});

describe("need types", () => {
  it.each([
    ["message_received", { text: "请问祛痘要做几次？" }, "祛痘"],
    ["article_read", { articleId: "a1", topic: "热玛吉抗衰全攻略" }, "抗衰"],
    ["consultation_outcome", { outcome: "converted", items: ["隐形矫正"] }, "正畸"],
    ["appointment_booked", { at: "2026-12-01T10:00:00+08:00", item: "冰点脱毛" }, "脱毛"],
    ["purchase", { amount: 1, items: ["产后盆底修复"] }, "产后修复"],
  ])("%s %j -> %s", (type, data, need) => {
    expect(replay([ev(type, 1, data)]).need).toEqual([need]);
  });

  it("tags several needs, and nothing for words outside the window", () => {
    expect(replay([ev("message_received", 1, { text: "想美白，也想减肥" })]).need?.sort()).toEqual(["减重", "美白"]);
    expect(replay([ev("message_received", 200, { text: "想美白" }), ev("contact_added", 0)]).need).toBeUndefined();
  });
});

describe("engagement score with decay", () => {
  it.each([
    [10, 0, "高"],
    [10, 14, "中"],
    [10, 28, "低"],
    [4, 0, "中"],
    [3, 0, "低"],
  ])("%i reads %i days ago -> %s", (reads, daysAgo, level) => {
    const events = Array.from({ length: reads }, () => ev("article_read", daysAgo, { articleId: "a" }));
    const tags = replay(events, NOW);
    const r = nightly(events, tags);
    expect(r.tags.engagement).toEqual([level]);
  });

  it("weighs livestreams (3), messages (2) and group joins (2)", () => {
    const events = [ev("livestream_attended", 0, { liveId: "l", minutes: 30 }), ev("message_received", 0, { text: "你好" }), ev("group_joined", 0, { chatId: "wr1" }), ev("group_joined", 0, { chatId: "wr2" }), ev("article_read", 0, { articleId: "a" })];
    expect(replay(events).engagement).toEqual(["高"]);
  });
});

describe("engine properties", () => {
  it("is idempotent: the same event again changes nothing", () => {
    const e = ev("visit", 3);
    const first = evaluate(facts([e]), { kind: "event", event: e }, NOW, rules, EXCLUSIVE);
    expect(first.changes.length).toBeGreaterThan(0);
    const again = evaluate(facts([e], first.tags), { kind: "event", event: e }, NOW, rules, EXCLUSIVE);
    expect(again.changes).toEqual([]);
  });

  it("gives the same tags whatever order the events arrive in", () => {
    const events = [ev("contact_added", 100), ev("visit", 90), ev("purchase", 80, { amount: 6000, items: ["热玛吉"] }), ev("visit", 20), ev("message_received", 5, { text: "还想做祛痘" })];
    const inOrder = norm(replay(events));
    const reversed = norm(replay([...events].reverse()));
    const shuffled = norm(replay([events[2]!, events[4]!, events[0]!, events[3]!, events[1]!]));
    expect(reversed).toEqual(inOrder);
    expect(shuffled).toEqual(inOrder);
    expect(inOrder).toMatchObject({ visit: ["复诊"], spending: ["中消费"] });
  });

  it("keeps one tag per exclusive group and names the rule that removed the old one", () => {
    const r = evaluate(facts([ev("visit", 1)], { visit: ["潜在"] }), { kind: "event", event: ev("visit", 1) }, NOW, rules, EXCLUSIVE);
    expect(r.tags.visit).toHaveLength(1);
    expect(r.changes).toContainEqual({ action: "remove", group: "visit", tag: "潜在", ruleId: "visit-first" });
  });
});
