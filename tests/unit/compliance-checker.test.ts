import { describe, expect, it } from "vitest";
import { buildChecker, normalizeForMatch, type BannedTerm, type Severity } from "../../src/domain/compliance/index";

const term = (t: string, severity: Severity = "block", category = "absolute"): BannedTerm => ({ term: t, category, severity, basis: "《广告法》第九条", suggestion: "删除或改写" });
const terms = (...list: string[]) => list.map((t) => term(t));
/** The terms reported for a text. */
const found = (c: ReturnType<typeof buildChecker>, text: string) => c.check(text).findings.map((f) => f.term);
/** Every finding's matched text must be the original slice. */
function spans(c: ReturnType<typeof buildChecker>, text: string) {
  const r = c.check(text);
  for (const f of r.findings) expect(f.matched).toBe(text.slice(f.start, f.end));
  return r.findings.map((f) => [f.term, f.matched, f.start, f.end]);
}

describe("normalizeForMatch", () => {
  it("folds full width and case", () => {
    expect(normalizeForMatch("ＴＯＰ１ Ｎｏ．１").text).toBe("top1no1");
  });

  it("folds traditional to simplified, character by character", () => {
    expect(normalizeForMatch("全國第壹，療效顯著").text).toBe(normalizeForMatch("全国第一疗效显著").text);
    expect(normalizeForMatch("後髮").text).toBe("后发");
  });

  it("drops spaces, punctuation, zero-width, format characters and emoji, but keeps %", () => {
    expect(normalizeForMatch("最 好").text).toBe("最好");
    expect(normalizeForMatch("最.好、最，好!").text).toBe("最好最好");
    expect(normalizeForMatch("最\u200b好\u200d\u2060\ufeff\u00ad").text).toBe("最好");
    expect(normalizeForMatch("最👍🏻好❤️👨‍👩‍👧").text).toBe("最好");
    expect(normalizeForMatch("最\u3164好").text).toBe("最好");
    expect(normalizeForMatch("100%").text).toBe("100%");
    expect(normalizeForMatch("１００％").text).toBe("100%");
  });

  it("folds Cyrillic and Greek look-alikes to Latin", () => {
    expect(normalizeForMatch("tор1").text).toBe("top1"); // Cyrillic о, р
    expect(normalizeForMatch("ΤΟΡ1").text).toBe("top1"); // Greek capitals
    expect(normalizeForMatch("аеосхуі").text).toBe("aeocxyi");
    expect(normalizeForMatch("ανορ").text).toBe("avop");
  });

  it("turns Chinese numerals and styled digits into digits", () => {
    expect(normalizeForMatch("第一").text).toBe("第1");
    expect(normalizeForMatch("第1").text).toBe(normalizeForMatch("第一").text);
    expect(normalizeForMatch("零〇壹贰叁").text).toBe("00123");
    expect(normalizeForMatch("十大").text).toBe("10大");
    expect(normalizeForMatch("①❶⑴⒈㈠").text).toBe("11111");
  });

  it("collapses runs of the same Han or Latin letter, not digits", () => {
    expect(normalizeForMatch("最最最好").text).toBe("最好");
    expect(normalizeForMatch("最 最 最...好好").text).toBe("最好");
    expect(normalizeForMatch("TTOPP1").text).toBe("top1");
    expect(normalizeForMatch("100").text).toBe("100");
  });

  it("reads o between written digits as 0, and only there", () => {
    expect(normalizeForMatch("1oo%").text).toBe("100%");
    expect(normalizeForMatch("1OO%").text).toBe("100%");
    expect(normalizeForMatch("oo%").text).toBe("o%");
    expect(normalizeForMatch("一oo%").text).toBe("1o%");
  });

  it("maps every normalised character back to its original span", () => {
    const text = "𠀀 最\u200b最好";
    const n = normalizeForMatch(text);
    expect(n.text).toBe("𠀀最好");
    expect(n.starts).toEqual([0, 0, 3, 6]);
    expect(n.ends).toEqual([2, 2, 6, 7]);
    expect(normalizeForMatch("")).toEqual({ text: "", starts: [], ends: [] });
  });
});

describe("buildChecker", () => {
  it("passes an empty text and a clean one", () => {
    const c = buildChecker(terms("最好", "第一"), []);
    expect(c.check("")).toEqual({ verdict: "pass", findings: [] });
    expect(c.check("欢迎预约面诊")).toEqual({ verdict: "pass", findings: [] });
    expect(c.size).toBe(2);
  });

  it("reports the list entry, its metadata and the original span", () => {
    const c = buildChecker([term("最好", "warn", "absolute")], []);
    expect(c.check("我们是最好的诊所")).toEqual({
      verdict: "warn",
      findings: [{ term: "最好", matched: "最好", start: 3, end: 5, category: "absolute", severity: "warn", basis: "《广告法》第九条", suggestion: "删除或改写" }],
    });
  });

  it("matches through every normalisation", () => {
    const c = buildChecker(terms("最好", "全国第一", "top1", "根治"), []);
    expect(found(c, "ＴＯＰ１诊所")).toEqual(["top1"]); // full width
    expect(found(c, "ToP1诊所")).toEqual(["top1"]); // case
    expect(found(c, "全國第一")).toEqual(["全国第一"]); // traditional
    expect(found(c, "最 好")).toEqual(["最好"]);
    expect(found(c, "最-好")).toEqual(["最好"]);
    expect(found(c, "最\u200b好")).toEqual(["最好"]);
    expect(found(c, "最💯好")).toEqual(["最好"]);
    expect(found(c, "tор1")).toEqual(["top1"]); // Cyrillic
    expect(found(c, "最最最好")).toEqual(["最好"]);
    expect(found(c, "全国第1")).toEqual(["全国第一"]); // written digit for a Chinese numeral
    expect(found(c, "全国第壹")).toEqual(["全国第一"]);
    expect(found(c, "根　治")).toEqual(["根治"]); // ideographic space
  });

  it("matches pinyin syllable variants, keeping at least one character literal", () => {
    const c = buildChecker(terms("最好", "根治", "最高级"), []);
    expect(found(c, "zui好的医院")).toEqual(["最好"]);
    expect(found(c, "最hao")).toEqual(["最好"]);
    expect(found(c, "ZUI 好")).toEqual(["最好"]);
    expect(found(c, "根zhi")).toEqual(["根治"]);
    expect(found(c, "最gao级")).toEqual(["最高级"]);
    expect(found(c, "zuigao级")).toEqual(["最高级"]); // two of three
    expect(found(c, "zuihao")).toEqual([]); // never all
    expect(found(c, "zuigaoji")).toEqual([]);
  });

  it("skips polyphonic characters for pinyin variants", () => {
    const c = buildChecker(terms("最长"), []);
    expect(found(c, "zui长")).toEqual(["最长"]);
    expect(found(c, "最chang")).toEqual([]);
    expect(found(c, "最zhang")).toEqual([]);
  });

  it("matches initials of long terms only when they are unambiguous", () => {
    const c = buildChecker(terms("全国第一", "根治"), []);
    expect(found(c, "我们是QGDY!")).toEqual(["全国第一"]);
    expect(found(c, "gz")).toEqual([]); // too short
    expect(found(c, "xqgdyx")).toEqual([]); // boundary rule
    const clash = buildChecker(terms("全国第一", "全国独一"), []);
    expect(found(clash, "qgdy")).toEqual([]);
    expect(found(buildChecker(terms("全国第一"), [], { initials: false }), "qgdy")).toEqual([]);
    expect(found(buildChecker(terms("全国第一"), ["qgdy"]), "qgdy")).toEqual([]); // spells an allow entry
  });

  it("reports a short term nested in a longer unfinished one, and keeps only the outermost of nested finds", () => {
    const c = buildChecker(terms("第一", "全国第一名", "全国第一"), []);
    expect(found(c, "我们是全国第一的医美机构")).toEqual(["全国第一"]);
    expect(found(c, "全国第一名")).toEqual(["全国第一名"]);
    expect(found(c, "行业第一")).toEqual(["第一"]);
    const d = buildChecker(terms("根治", "一次根治痘痘"), []);
    expect(found(d, "一次根治，不再复发")).toEqual(["根治"]);
    const e = buildChecker(terms("根治", "一次根治"), []);
    expect(spans(e, "一次根治，根治")).toEqual([
      ["一次根治", "一次根治", 0, 4],
      ["根治", "根治", 5, 7],
    ]);
  });

  it("still reports a shorter term ending at the same place when the longer one fails its boundary", () => {
    const c = buildChecker([term("免费", "warn"), term("0元免费")], []);
    expect(found(c, "仅需0元免费体验")).toEqual(["0元免费"]);
    expect(spans(c, "消费满2680元免费停车")).toEqual([["免费", "免费", 8, 10]]);
  });

  it("keeps overlapping but not nested finds", () => {
    const c = buildChecker(terms("全国第一", "第一品牌"), []);
    expect(found(c, "全国第一品牌")).toEqual(["全国第一", "第一品牌"]);
  });

  it("needs an alphanumeric boundary around terms that start or end with a letter or digit", () => {
    const c = buildChecker(terms("0元", "top1"), []);
    expect(found(c, "光子嫩肤2680元/次")).toEqual([]);
    expect(found(c, "仅需0元体验")).toEqual(["0元"]);
    expect(found(c, "0元体验")).toEqual(["0元"]);
    expect(found(c, "仅需零元")).toEqual(["0元"]);
    expect(found(c, "十元")).toEqual([]); // 十 is 10
    expect(found(c, "TOP10")).toEqual([]);
    expect(found(c, "stop1")).toEqual([]);
    expect(found(c, "TOP1!")).toEqual(["top1"]);
    expect(found(c, "top一")).toEqual(["top1"]);
  });

  it("lets Chinese numerals continue a Chinese number but not a written one", () => {
    const c = buildChecker(terms("第一"), []);
    expect(found(c, "第一")).toEqual(["第一"]);
    expect(found(c, "第1")).toEqual(["第一"]);
    expect(found(c, "第十名")).toEqual([]);
    expect(found(c, "第一百名")).toEqual([]);
    expect(found(c, "第12名")).toEqual([]);
    expect(found(c, "第一名")).toEqual(["第一"]);
  });

  it("keeps % in terms and text", () => {
    const c = buildChecker(terms("100%"), []);
    expect(found(c, "100%有效")).toEqual(["100%"]);
    expect(found(c, "１００％有效")).toEqual(["100%"]);
    expect(found(c, "1oo%有效")).toEqual(["100%"]);
    expect(found(c, "100有效")).toEqual([]);
    expect(found(c, "3100元")).toEqual([]);
    expect(found(c, "1100%")).toEqual([]);
  });

  it("drops finds inside an allow-list match", () => {
    const c = buildChecker([term("第一"), term("最好", "warn")], ["第一次", "第一时间", "最好提前预约"]);
    expect(c.check("第一次来院的顾客")).toEqual({ verdict: "pass", findings: [] });
    expect(c.check("我们会在第一时间回复")).toEqual({ verdict: "pass", findings: [] });
    expect(c.check("术后最好提前预约复诊")).toEqual({ verdict: "pass", findings: [] });
    expect(c.check("最 好 提 前 预 约").verdict).toBe("pass"); // allow entries are normalised the same way
    expect(c.check("第1次来院").verdict).toBe("pass");
    expect(found(c, "第一次来院，我们是最好的")).toEqual(["最好"]);
    expect(found(c, "最好的医院，第一")).toEqual(["最好", "第一"]);
  });

  it("maps findings to the original text through zero-width characters, emoji and astral characters", () => {
    const c = buildChecker(terms("全国第一", "最好"), []);
    expect(spans(c, "全国\u200b第一")).toEqual([["全国第一", "全国\u200b第一", 0, 5]]);
    expect(spans(c, "最🎉\ufe0f好🎉")).toEqual([["最好", "最🎉\ufe0f好", 0, 5]]);
    expect(spans(c, "𠀀𠀁😀最好")).toEqual([["最好", "最好", 6, 8]]);
    expect(spans(c, "最最最好好")).toEqual([["最好", "最最最好好", 0, 5]]);
    expect(spans(c, "ＺＵＩ好")).toEqual([["最好", "ＺＵＩ好", 0, 4]]);
    expect(spans(c, "全國 第 ①")).toEqual([["全国第一", "全國 第 ①", 0, 6]]);
  });

  it("derives the verdict from severities and blockSeverities", () => {
    const list = [term("根治", "block"), term("最好", "warn")];
    const c = buildChecker(list, []);
    expect(c.check("欢迎").verdict).toBe("pass");
    expect(c.check("最好的").verdict).toBe("warn");
    expect(c.check("最好的，根治").verdict).toBe("block");
    const strict = buildChecker(list, [], { blockSeverities: ["block", "warn"] });
    expect(strict.check("最好的").verdict).toBe("block");
    const lenient = buildChecker(list, [], { blockSeverities: [] });
    expect(lenient.check("根治").verdict).toBe("warn");
  });

  it("prefers block over warn for two entries that normalise alike, and ignores entries that normalise to nothing", () => {
    const c = buildChecker([term("第1", "warn"), term("第一", "block"), term("!!!")], []);
    expect(c.check("第一").findings.map((f) => [f.term, f.severity])).toEqual([["第一", "block"]]);
    expect(c.size).toBe(3);
  });

  it("counts its patterns and can leave pinyin out", () => {
    const list = terms("最好", "根治", "全国第一");
    expect(buildChecker(list, [], { pinyin: false }).patterns).toBe(3);
    expect(buildChecker(list, []).patterns).toBeGreaterThan(3);
    expect(buildChecker(list, [], { pinyin: false }).check("zui好").verdict).toBe("pass");
  });

  it("checks a long text in one pass", () => {
    const c = buildChecker(terms("最好", "第一"), ["第一次"]);
    const text = "欢迎第一次来院。".repeat(20_000) + "我们最好";
    const r = c.check(text);
    expect(r.findings).toHaveLength(1);
    expect(r.findings[0]!.start).toBe(text.length - 2);
  });
});
