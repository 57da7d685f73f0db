import { mkdtempSync, writeFileSync, copyFileSync, readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { formatRuleIssue } from "../../src/domain/tagging/rules";
import { DEFAULT_RULES_DIR, loadRuleSet } from "../../src/loaders/tagging-rules";

/** A copy of the shipped rules with one file replaced, to see how a mistake is reported. */
function withFile(name: string, text: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "siyu-rules-"));
  for (const f of readdirSync(DEFAULT_RULES_DIR)) if (f.endsWith(".yaml")) copyFileSync(path.join(DEFAULT_RULES_DIR, f), path.join(dir, f));
  writeFileSync(path.join(dir, name), text);
  return dir;
}

describe("the shipped tagging rules", () => {
  it("load without a single issue", async () => {
    const { ruleSet, issues } = await loadRuleSet();
    expect(issues.map(formatRuleIssue)).toEqual([]);
    expect(ruleSet.rules.length).toBeGreaterThanOrEqual(20);
  });

  it("cover the four groups, the visit lifecycle, at least 8 needs, spending tiers and engagement", async () => {
    const { ruleSet } = await loadRuleSet();
    const setTags = (group: string) => new Set(ruleSet.rules.flatMap((r) => r.then.flatMap((a) => ("set" in a && a.set.group === group ? [a.set.tag] : "add" in a && a.add.group === group ? [a.add.tag] : []))));
    expect(setTags("visit")).toEqual(new Set(["潜在", "首诊", "复诊", "沉睡"]));
    expect(setTags("spending")).toEqual(new Set(["高消费", "中消费", "低消费"]));
    expect(setTags("engagement")).toEqual(new Set(["高", "中", "低"]));
    expect(setTags("need").size).toBeGreaterThanOrEqual(8);
    expect(Object.keys(ruleSet.needs).length).toBeGreaterThanOrEqual(8);
    expect(ruleSet.params).toMatchObject({ dormant_days: 180, spend_high: 20000, spend_mid: 5000 });
  });
});

describe("a broken rule file", () => {
  it.each([
    ["an unknown metric", `rules:\n  - id: r1\n    name: x\n    trigger: { events: [visit] }\n    when: { all: [{ tag: { group: visit } }, { agg: { metric: median, events: [visit] }, op: gt, value: 1 }] }\n    then: [{ set: { group: visit, tag: 首诊 } }]\n`, "r1", "when.all[1].agg.metric"],
    ["an unknown param", `rules:\n  - id: r2\n    name: x\n    trigger: { events: [visit] }\n    when: { agg: { metric: count, events: [visit] }, op: gt, value: { param: nope } }\n    then: [{ set: { group: visit, tag: 首诊 } }]\n`, "r2", "when.value"],
    ["set on a non-exclusive group", `rules:\n  - id: r3\n    name: x\n    trigger: { events: [visit] }\n    then: [{ set: { group: need, tag: 祛痘 } }]\n`, "r3", "then[0].set"],
    ["a tag the group does not have", `rules:\n  - id: r4\n    name: x\n    trigger: { events: [visit] }\n    then: [{ set: { group: visit, tag: 老客户 } }]\n`, "r4", "then[0].set.tag"],
    ["an unknown event type", `rules:\n  - id: r5\n    name: x\n    trigger: { events: [teleport] }\n    then: [{ add: { group: need, tag: 祛痘 } }]\n`, "r5", "trigger.events[0]"],
    ["a sum without a field", `rules:\n  - id: r6\n    name: x\n    trigger: { events: [purchase] }\n    when: { agg: { metric: sum, events: [purchase] }, op: gt, value: 1 }\n    then: [{ set: { group: spending, tag: 高消费 } }]\n`, "r6", "when.agg.field"],
    ["a conditional score", `rules:\n  - id: r7\n    name: x\n    trigger: { events: [visit] }\n    when: { tag: { group: visit }, present: true }\n    then: [{ score: { name: engagement, add: 1, halfLifeDays: 7 } }]\n`, "r7", "then[0].score"],
    ["a duplicate id", `rules:\n  - id: visit-first\n    name: x\n    trigger: { events: [visit] }\n    then: [{ add: { group: need, tag: 祛痘 } }]\n`, "visit-first", "id"],
    ["an unknown need", `rules:\n  - id: r9\n    name: x\n    trigger: { events: [message_received] }\n    when: { match: { need: 植发 } }\n    then: [{ add: { group: need, tag: 祛痘 } }]\n`, "r9", "when.match.need"],
  ])("is refused for %s, naming the file, the rule and the field", async (_what, yaml, ruleId, pathPrefix) => {
    const dir = withFile("zz-broken.yaml", yaml);
    const { issues } = await loadRuleSet(dir);
    const mine = issues.filter((i) => i.file.endsWith("zz-broken.yaml"));
    expect(mine.length).toBeGreaterThan(0);
    expect(mine[0]!.ruleId).toBe(ruleId);
    expect(mine.some((i) => i.path.startsWith(pathPrefix))).toBe(true);
    expect(formatRuleIssue(mine[0]!)).toMatch(new RegExp(`zz-broken\\.yaml: rule ${ruleId}: `));
  });

  it("reports YAML syntax errors with their line", async () => {
    const dir = withFile("zz-broken.yaml", "rules:\n  - id: x\n    name: [unclosed\n");
    const { issues } = await loadRuleSet(dir);
    const mine = issues.filter((i) => i.file.endsWith("zz-broken.yaml"));
    expect(mine[0]!.path).toMatch(/^line \d+, column \d+$/);
  });
});
