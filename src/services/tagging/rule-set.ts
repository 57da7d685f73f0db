import { and, desc, eq } from "drizzle-orm";
import type { DbOrTx } from "../../db/client";
import { tagRuleSets } from "../../db/schema/index";
import { DEFAULT_TAG_GROUPS } from "../../domain/tagging/default-groups";
import { formatRuleIssue, NeedDictionary, validateRules, type RuleIssue, type RuleSet } from "../../domain/tagging/rules";
import { loadRuleSet } from "../../loaders/tagging-rules";

export interface ActiveRules {
  ruleSet: RuleSet;
  /** Version recorded with every tag a rule sets (provenance). */
  version: number;
  exclusiveGroups: ReadonlySet<string>;
}

export const EXCLUSIVE_GROUPS: ReadonlySet<string> = new Set(DEFAULT_TAG_GROUPS.filter((g) => g.exclusive).map((g) => g.key));
const GROUPS = Object.fromEntries(DEFAULT_TAG_GROUPS.map((g) => [g.key, { exclusive: g.exclusive, tags: g.tags as readonly string[] }]));

let shipped: Promise<RuleSet> | null = null;

/** The default set in tagging-rules/, seeded as version 1 of every tenant. */
export function shippedRules(): Promise<RuleSet> {
  shipped ??= loadRuleSet().then(({ ruleSet, issues }) => {
    if (issues.length) throw new Error(`the shipped tagging rules are invalid:\n${issues.map(formatRuleIssue).join("\n")}`);
    return ruleSet;
  });
  return shipped;
}

/** Validate a stored or submitted definition; issues name the rule id and the path. */
export function validateDefinition(def: { params?: unknown; needs?: unknown; rules?: unknown }): { ruleSet: RuleSet | null; issues: RuleIssue[] } {
  const issues: RuleIssue[] = [];
  const needs = NeedDictionary.safeParse(def.needs ?? {});
  if (!needs.success) for (const i of needs.error.issues) issues.push({ file: "definition", ruleId: null, path: `needs.${i.path.join(".")}`, message: i.message });
  const params = def.params && typeof def.params === "object" ? (def.params as Record<string, number>) : {};
  for (const [k, v] of Object.entries(params)) if (typeof v !== "number" || !Number.isFinite(v)) issues.push({ file: "definition", ruleId: null, path: `params.${k}`, message: "must be a number" });
  if (!Array.isArray(def.rules) || def.rules.length === 0) issues.push({ file: "definition", ruleId: null, path: "rules", message: "give at least one rule" });
  if (issues.length) return { ruleSet: null, issues };
  const { rules, issues: ruleIssues } = validateRules([{ file: "definition", rules: def.rules as unknown[], params }], { groups: GROUPS, needs: needs.data! });
  if (ruleIssues.length) return { ruleSet: null, issues: ruleIssues };
  return { ruleSet: { params, needs: needs.data!, rules }, issues: [] };
}

const cache = new Map<string, { at: number; value: ActiveRules }>();
/** Other processes pick up a new version within this long. */
const TTL_MS = 15_000;

export function forgetActiveRules(tenantId: string): void {
  cache.delete(tenantId);
}

/** The published rule set of a tenant (the shipped default, as version 1, until one is published). */
export async function activeRules(db: DbOrTx, tenantId: string): Promise<ActiveRules> {
  const hit = cache.get(tenantId);
  if (hit && Date.now() - hit.at < TTL_MS) return hit.value;
  const [row] = await db
    .select()
    .from(tagRuleSets)
    .where(and(eq(tagRuleSets.tenantId, tenantId), eq(tagRuleSets.status, "published")))
    .orderBy(desc(tagRuleSets.version))
    .limit(1);
  let value: ActiveRules;
  if (row) {
    const { ruleSet, issues } = validateDefinition(row.definition);
    if (!ruleSet) throw new Error(`published tag rules v${row.version} of tenant ${tenantId} are invalid: ${issues.map(formatRuleIssue).join("; ")}`);
    value = { ruleSet, version: row.version, exclusiveGroups: EXCLUSIVE_GROUPS };
  } else {
    value = { ruleSet: await shippedRules(), version: 1, exclusiveGroups: EXCLUSIVE_GROUPS };
  }
  cache.set(tenantId, { at: Date.now(), value });
  return value;
}
