import { describe, expect, it } from "vitest";
import { parseSegment, SegmentSyntaxError } from "../../src/domain/segments/parse";

describe("segment expressions", () => {
  it("parses tags, comparisons, precedence and NOT", () => {
    expect(parseSegment("visit:复诊 AND need:祛痘 AND NOT engagement:低")).toEqual({
      kind: "and",
      left: { kind: "and", left: { kind: "tag", group: "visit", name: "复诊" }, right: { kind: "tag", group: "need", name: "祛痘" } },
      right: { kind: "not", expr: { kind: "tag", group: "engagement", name: "低" } },
    });
    expect(parseSegment("need:抗衰 or need:美白 and spend_12m >= 5000")).toEqual({
      kind: "or",
      left: { kind: "tag", group: "need", name: "抗衰" },
      right: { kind: "and", left: { kind: "tag", group: "need", name: "美白" }, right: { kind: "cmp", field: "spend_12m", op: ">=", value: 5000 } },
    });
    expect(parseSegment('(need:抗衰 OR need:美白) AND source = "wecom"')).toMatchObject({ kind: "and", right: { kind: "cmp", field: "source", op: "=", value: "wecom" } });
    expect(parseSegment("days_since_visit>90")).toEqual({ kind: "cmp", field: "days_since_visit", op: ">", value: 90 });
  });

  it.each([
    ["", 0, /empty/],
    ["visit:复诊 AND", 12, /expected a tag/],
    ["visit:复诊 need:祛痘", 9, /expected AND, OR or the end/],
    ["(visit:复诊", 9, /expected \)/],
    ["spend >= 5", 0, /unknown field "spend"/],
    ["spend_12m >= lots", 13, /compares with a number/],
    ["source > wecom", 7, /only be compared with = or !=/],
    ["spend_12m 5000", 10, /comparison operator/],
    ['source = "wecom', 9, /unterminated string/],
    ["Visit:复诊", 0, /not a tag group key/],
    ["visit:", 6, /tag name is missing/],
  ])("%j fails at position %i", (src, pos, msg) => {
    try {
      parseSegment(src);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(SegmentSyntaxError);
      expect((err as SegmentSyntaxError).position).toBe(pos);
      expect((err as Error).message).toMatch(msg);
    }
  });
});
