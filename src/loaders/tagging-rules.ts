import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseDocument } from "yaml";
import { DEFAULT_TAG_GROUPS } from "../domain/tagging/default-groups";
import { NeedDictionary, RuleFile, validateRules, type RuleIssue, type RuleSet } from "../domain/tagging/rules";

export const DEFAULT_RULES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../tagging-rules");

const GROUPS = Object.fromEntries(DEFAULT_TAG_GROUPS.map((g) => [g.key, { exclusive: g.exclusive, tags: g.tags as readonly string[] }]));

/** Parse one YAML file; syntax errors become issues naming the file, line and column. */
function parseYaml(file: string, text: string, issues: RuleIssue[]): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    for (const e of doc.errors) issues.push({ file, ruleId: null, path: e.linePos?.[0] ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : "(yaml)", message: e.message.split("\n")[0]! });
    return undefined;
  }
  return doc.toJS();
}

/**
 * Load and validate a tagging-rules folder: needs.yaml (the need dictionary) and every other
 * *.yaml (params + rules). Returns the rule set and every problem, each naming file, rule and field.
 */
export async function loadRuleSet(dir: string = DEFAULT_RULES_DIR): Promise<{ ruleSet: RuleSet; issues: RuleIssue[] }> {
  const issues: RuleIssue[] = [];
  const names = (await readdir(dir)).filter((n) => n.endsWith(".yaml") || n.endsWith(".yml")).sort();
  let needs: NeedDictionary = {};
  if (!names.includes("needs.yaml")) issues.push({ file: path.join(dir, "needs.yaml"), ruleId: null, path: "(file)", message: "is missing: it defines the need types and their words" });
  else {
    const file = path.join(dir, "needs.yaml");
    const raw = parseYaml(file, await readFile(file, "utf8"), issues);
    const parsed = NeedDictionary.safeParse(raw ?? {});
    if (!parsed.success) for (const i of parsed.error.issues) issues.push({ file, ruleId: null, path: i.path.join(".") || "(file)", message: i.message });
    else needs = parsed.data;
    for (const need of Object.keys(needs)) if (!GROUPS.need?.tags.includes(need)) issues.push({ file, ruleId: null, path: need, message: "is not a tag of the need group" });
  }
  const files: { file: string; rules: unknown[]; params: Record<string, number> }[] = [];
  for (const name of names.filter((n) => n !== "needs.yaml")) {
    const file = path.join(dir, name);
    const raw = parseYaml(file, await readFile(file, "utf8"), issues);
    if (raw === undefined) continue;
    const parsed = RuleFile.safeParse(raw);
    if (!parsed.success) {
      for (const i of parsed.error.issues) issues.push({ file, ruleId: null, path: i.path.join(".") || "(file)", message: i.message });
      continue;
    }
    files.push({ file, rules: parsed.data.rules, params: parsed.data.params });
  }
  const { rules, issues: ruleIssues } = validateRules(files, { groups: GROUPS, needs });
  issues.push(...ruleIssues);
  const params = Object.assign({}, ...files.map((f) => f.params)) as Record<string, number>;
  return { ruleSet: { params, needs, rules }, issues };
}
