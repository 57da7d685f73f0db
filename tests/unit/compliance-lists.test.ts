import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CATEGORIES, loadComplianceLists } from "../../src/loaders/compliance-rules";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

interface Labelled {
  id: string;
  text: string;
  expect: "pass" | "warn" | "block";
  evasion: string | null;
  terms: string[];
}

describe("the shipped banned-word lists", () => {
  it("are valid: at least 500 terms over every category, an allow-list and a policy", async () => {
    const lists = await loadComplianceLists();
    expect(lists.issues).toEqual([]);
    expect(lists.terms.length).toBeGreaterThanOrEqual(500);
    expect(new Set(lists.terms.map((t) => t.category))).toEqual(new Set(CATEGORIES));
    expect(lists.allow.length).toBeGreaterThan(50);
    expect(lists.policy?.block_severities).toEqual(["block"]);
  });

  it("reach high precision and recall on the labelled set of clinic copy, evasions included", async () => {
    const { checker } = await loadComplianceLists();
    const rows = readFileSync(path.join(ROOT, "tests/fixtures/compliance/labelled.jsonl"), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Labelled);
    expect(rows.length).toBeGreaterThanOrEqual(300);
    // A text is "flagged" when the verdict is not pass; precision and recall of flagging, and of blocking.
    let tp = 0;
    let fp = 0;
    let fn = 0;
    const misses: string[] = [];
    for (const r of rows) {
      const got = checker.check(r.text).verdict;
      const flagged = got !== "pass";
      const should = r.expect !== "pass";
      if (flagged && should) tp++;
      else if (flagged) {
        fp++;
        misses.push(`${r.id} false alarm`);
      } else if (should) {
        fn++;
        misses.push(`${r.id} missed (${r.evasion ?? "plain"})`);
      }
    }
    const precision = tp / (tp + fp);
    const recall = tp / (tp + fn);
    expect({ precision: precision >= 0.97, recall: recall >= 0.97, misses }).toMatchObject({ precision: true, recall: true });
    // Every evasion kind is caught in most of its examples.
    const kinds = new Map<string, { n: number; caught: number }>();
    for (const r of rows.filter((x) => x.evasion && x.expect !== "pass")) {
      const k = kinds.get(r.evasion!) ?? { n: 0, caught: 0 };
      k.n++;
      if (checker.check(r.text).verdict !== "pass") k.caught++;
      kinds.set(r.evasion!, k);
    }
    expect(kinds.size).toBeGreaterThanOrEqual(8);
    for (const [kind, k] of kinds) expect([kind, k.caught / k.n >= 0.75]).toEqual([kind, true]);
  });
});
