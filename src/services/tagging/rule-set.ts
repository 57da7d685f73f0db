import { DEFAULT_TAG_GROUPS } from "../../domain/tagging/default-groups";
import { formatRuleIssue, type RuleSet } from "../../domain/tagging/rules";
import { loadRuleSet } from "../../loaders/tagging-rules";

export interface ActiveRules {
  ruleSet: RuleSet;
  /** Version recorded with every tag a rule sets (provenance). The shipped set is version 1. */
  version: number;
  exclusiveGroups: ReadonlySet<string>;
}

let shipped: Promise<ActiveRules> | null = null;

/**
 * The rules in force for a tenant. Today every tenant runs the shipped default set
 * (tagging-rules/, version 1); per-tenant drafts, versions and publishing come with the rule
 * management API and will be looked up here.
 */
export function activeRules(_tenantId: string): Promise<ActiveRules> {
  shipped ??= loadRuleSet().then(({ ruleSet, issues }) => {
    if (issues.length) throw new Error(`the shipped tagging rules are invalid:\n${issues.map(formatRuleIssue).join("\n")}`);
    return { ruleSet, version: 1, exclusiveGroups: new Set(DEFAULT_TAG_GROUPS.filter((g) => g.exclusive).map((g) => g.key)) };
  });
  return shipped;
}
