import { stat, readdir } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import type { CheckReport } from "../../domain/compliance/checker";
import { ValidationError, zodIssues } from "../../errors";
import { formatListIssue, loadComplianceLists, type ComplianceLists } from "../../loaders/compliance-rules";
import { requirePermission, type Ctx, type ServiceDeps } from "../context";

export const CheckInput = z.object({ text: z.string().max(100_000, "at most 100,000 characters") });

export interface CheckResponse extends CheckReport {
  /** Which lists the text was checked against (a hash of compliance-rules/). */
  listVersion: string;
}

/** How often the folder is looked at for edits (a stat per file). */
const RECHECK_MS = 2000;

let cache: { dir: string; signature: string; lists: ComplianceLists; lookedAt: number } | null = null;

async function signature(dir: string): Promise<string> {
  const names = (await readdir(dir)).filter((n) => n.endsWith(".tsv") || n === "policy.yaml").sort();
  const parts = await Promise.all(names.map(async (n) => `${n}:${(await stat(path.join(dir, n))).mtimeMs}`));
  return parts.join("|");
}

/**
 * The banned-word lists in use, reloaded without a restart when a file in the folder changes.
 * Lists with problems are refused: the first load throws (naming file and line); a later broken
 * edit keeps the previous lists and logs every problem, so checking never stops.
 */
export async function activeLists(deps: Pick<ServiceDeps, "config" | "logger">): Promise<ComplianceLists> {
  const dir = deps.config.COMPLIANCE_RULES_DIR;
  if (cache && cache.dir === dir && Date.now() - cache.lookedAt < RECHECK_MS) return cache.lists;
  const sig = await signature(dir);
  if (cache && cache.dir === dir && cache.signature === sig) {
    cache.lookedAt = Date.now();
    return cache.lists;
  }
  const lists = await loadComplianceLists(dir);
  if (lists.issues.length) {
    const detail = lists.issues.map(formatListIssue).join("\n");
    if (!cache || cache.dir !== dir) throw new Error(`the banned-word lists in ${dir} have problems:\n${detail}`);
    deps.logger.error({ dir, issues: lists.issues.length }, `banned-word lists not reloaded; keeping version ${cache.lists.version}:\n${detail}`);
    cache = { ...cache, signature: sig, lookedAt: Date.now() };
    return cache.lists;
  }
  if (cache) deps.logger.info({ from: cache.lists.version, to: lists.version, terms: lists.terms.length }, "banned-word lists reloaded");
  cache = { dir, signature: sig, lists, lookedAt: Date.now() };
  return lists;
}

/** Check one text against the banned-word lists: findings with offsets into the text, law and suggestion. */
export async function checkCopy({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<CheckResponse> {
  requirePermission(ctx, "compliance:check");
  const p = CheckInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const lists = await activeLists(ctx.deps);
  return { ...lists.checker.check(p.data.text), listVersion: lists.version };
}
