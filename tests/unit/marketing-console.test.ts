import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { translator } from "../../src/http/console/i18n";
import { caretAt, definitionYaml, parseDraftYaml, placeRefusals, ruleGroups, sizesSvg } from "../../src/http/console/marketing-present";
import { loadRuleSet } from "../../src/loaders/tagging-rules";

describe("marketing console presentation", () => {
  it("the editor's YAML of the shipped rules reads back to the same definition", async () => {
    const { ruleSet } = await loadRuleSet();
    const text = definitionYaml(ruleSet);
    expect(parse(text)).toEqual(JSON.parse(JSON.stringify({ params: ruleSet.params, needs: ruleSet.needs, rules: ruleSet.rules })));
    // Short parts fold onto one line, as in tagging-rules/; each rule stays a block.
    expect(text).toContain("    trigger: {events: [visit]}");
    expect(text).toMatch(/\n {2}- id: visit-potential\n {4}name: /);
  });

  it("places refusals on the line of the bad field, or of the nearest part that exists", () => {
    const text = ["rules:", "  - id: a-rule", "    name: A", "    trigger: { events: [visit] }", "    when:", "      agg: { metric: median, events: [visit] }", "      op: gt", "    then: []"].join("\n");
    const parsed = parseDraftYaml(text);
    if ("errors" in parsed) throw new Error("should parse");
    const rows = placeRefusals(
      [
        { field: "rules.a-rule.when.agg.metric", message: "rule a-rule: Invalid option" },
        { field: "rules.a-rule.when.value", message: "rule a-rule: Invalid input" },
        { field: "rules.#2.id", message: "rule #2: Required" },
        { field: "params.x", message: "must be a number" },
      ],
      parsed,
    );
    expect(rows[0]).toEqual({ ruleId: "a-rule", path: "when.agg.metric", message: "Invalid option", line: 6 });
    expect(rows[1]).toMatchObject({ ruleId: "a-rule", path: "when.value", line: 5 });
    expect(rows[2]).toMatchObject({ ruleId: "#2", path: "id", line: 1 });
    expect(rows[3]).toEqual({ ruleId: null, path: "params.x", message: "must be a number", line: undefined });
    const broken = parseDraftYaml("rules:\n  - id: [open\n");
    expect("errors" in broken && broken.errors[0]!.line).toBeGreaterThan(0);
  });

  it("groups rules by the tag group they fill, leads apart", async () => {
    const { ruleSet } = await loadRuleSet();
    const groups = ruleGroups(translator("zh-CN"), ruleSet, new Map());
    expect(groups.map((g) => g.key)).toEqual(["visit", "spending", "need", "engagement", "lost_reason", "nps", "referral", "_lead"]);
    expect(groups.reduce((n, g) => n + g.rules.length, 0)).toBe(ruleSet.rules.length);
    const acne = groups.find((g) => g.key === "need")!.rules.find((r) => r.id === "need-acne")!;
    expect(acne.actions).toEqual(["添加 need:祛痘"]);
    expect(acne.when).toContain("提到需求「祛痘」");
  });

  it("splits an expression around an error position, and escapes what the chart prints", () => {
    expect(caretAt("need:祛痘 AND AND x", 12)).toEqual({ before: "need:祛痘 AND ", at: "A", after: "ND x", column: 13 });
    expect(caretAt("a AND (", 7)).toEqual({ before: "a AND (", at: " ", after: "", column: 8 });
    const svg = sizesSvg([{ day: "2026-11-20", size: 3 }, { day: "2026-11-21", size: 5 }], `<b>"x"</b>`);
    expect(svg).not.toContain("<b>");
    expect(svg).toContain("&lt;b&gt;&quot;x&quot;&lt;/b&gt;");
    expect(svg.match(/<circle/g)).toHaveLength(2);
  });
});
