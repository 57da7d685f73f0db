import { and, desc, eq, inArray, sql } from "drizzle-orm";
import { z } from "zod";
import { tagRuleSets } from "../../db/schema/index";
import { AppError, NotFoundError, ValidationError, zodIssues } from "../../errors";
import { jobId } from "../../queue/catalog";
import { audit, dbOf, requirePermission, withTransaction, type Ctx } from "../context";
import { runSetBased, type SetBasedResult } from "./set-based";
import { activeRules, EXCLUSIVE_GROUPS, forgetActiveRules, shippedRules, validateDefinition } from "./rule-set";

export const RuleSetDefinition = z.object({
  params: z.record(z.string(), z.number()).optional(),
  needs: z.record(z.string(), z.array(z.string())).optional(),
  rules: z.array(z.unknown()).min(1),
  note: z.string().max(500).optional(),
});

export interface RuleSetVersionView {
  version: number;
  status: string;
  note: string | null;
  createdAt: string;
  publishedAt: string | null;
  rules: number;
}

const versionView = (r: typeof tagRuleSets.$inferSelect): RuleSetVersionView => ({
  version: r.version,
  status: r.status,
  note: r.note,
  createdAt: r.createdAt.toISOString(),
  publishedAt: r.publishedAt?.toISOString() ?? null,
  rules: r.definition.rules.length,
});

/** Version 1 = the shipped default set, written the first time a tenant's rules are managed. */
async function ensureSeeded(ctx: Ctx): Promise<void> {
  const db = dbOf(ctx);
  const [any] = await db.select({ v: tagRuleSets.version }).from(tagRuleSets).where(eq(tagRuleSets.tenantId, ctx.tenantId)).limit(1);
  if (any) return;
  const set = await shippedRules();
  await db
    .insert(tagRuleSets)
    .values({ tenantId: ctx.tenantId, version: 1, status: "published", definition: { params: set.params, needs: set.needs, rules: set.rules }, note: "shipped default rules", publishedAt: ctx.deps.now() })
    .onConflictDoNothing();
}

export async function getTagRules({ ctx }: { ctx: Ctx }): Promise<{ published: RuleSetVersionView & { definition: unknown }; draft: (RuleSetVersionView & { definition: unknown }) | null; versions: RuleSetVersionView[] }> {
  requirePermission(ctx, "rules:read");
  await ensureSeeded(ctx);
  const rows = await dbOf(ctx).select().from(tagRuleSets).where(eq(tagRuleSets.tenantId, ctx.tenantId)).orderBy(desc(tagRuleSets.version));
  const published = rows.find((r) => r.status === "published")!;
  const draft = rows.find((r) => r.status === "draft");
  return {
    published: { ...versionView(published), definition: published.definition },
    draft: draft ? { ...versionView(draft), definition: draft.definition } : null,
    versions: rows.map(versionView),
  };
}

function refuse(issues: ReturnType<typeof validateDefinition>["issues"]): never {
  throw new ValidationError(issues.map((i) => ({ field: i.ruleId ? `rules.${i.ruleId}.${i.path}` : i.path, message: i.ruleId ? `rule ${i.ruleId}: ${i.message}` : i.message })));
}

/** Save the draft (validated: a bad rule is refused with its id and the path of the bad field). */
export async function saveDraft({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<RuleSetVersionView> {
  requirePermission(ctx, "rules:write");
  const p = RuleSetDefinition.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const current = await activeRules(dbOf(ctx), ctx.tenantId);
  const def = { params: p.data.params ?? current.ruleSet.params, needs: p.data.needs ?? current.ruleSet.needs, rules: p.data.rules };
  const { issues } = validateDefinition(def);
  if (issues.length) refuse(issues);
  await ensureSeeded(ctx);
  return withTransaction(ctx, async (tx, ctx) => {
    const [draft] = await tx.select().from(tagRuleSets).where(and(eq(tagRuleSets.tenantId, ctx.tenantId), eq(tagRuleSets.status, "draft"))).for("update");
    let row;
    if (draft) {
      [row] = await tx.update(tagRuleSets).set({ definition: def, note: p.data.note ?? draft.note, createdAt: ctx.deps.now() }).where(and(eq(tagRuleSets.tenantId, ctx.tenantId), eq(tagRuleSets.version, draft.version))).returning();
    } else {
      const [max] = await tx.select({ v: sql<number>`max(${tagRuleSets.version})::int` }).from(tagRuleSets).where(eq(tagRuleSets.tenantId, ctx.tenantId));
      [row] = await tx
        .insert(tagRuleSets)
        .values({ tenantId: ctx.tenantId, version: (max?.v ?? 1) + 1, status: "draft", definition: def, note: p.data.note ?? null, createdByStaffId: ctx.actor.kind === "staff" ? ctx.actor.staffId : null })
        .returning();
    }
    await audit(tx, ctx, { action: "tag_rules.draft", entityType: "tag_rule_set", entityId: String(row!.version), after: { rules: def.rules.length } });
    return versionView(row!);
  });
}

async function loadDraft(ctx: Ctx) {
  const [draft] = await dbOf(ctx).select().from(tagRuleSets).where(and(eq(tagRuleSets.tenantId, ctx.tenantId), eq(tagRuleSets.status, "draft")));
  if (!draft) throw new NotFoundError("draft (save one with PUT /v1/tag-rules/draft)");
  const { ruleSet, issues } = validateDefinition(draft.definition);
  if (!ruleSet) refuse(issues);
  return { draft, ruleSet };
}

/** What publishing the draft would do now: per tag, how many contacts gain and lose it, with samples. Writes nothing. */
export async function dryRunDraft({ ctx }: { ctx: Ctx }): Promise<{ version: number; changes: NonNullable<SetBasedResult["preview"]> }> {
  requirePermission(ctx, "rules:read");
  const { draft, ruleSet } = await loadDraft(ctx);
  const r = await runSetBased({ ctx, mode: "backfill", dryRun: true, rules: { ruleSet, version: draft.version, exclusiveGroups: EXCLUSIVE_GROUPS } });
  return { version: draft.version, changes: r.preview ?? [] };
}

async function publish(ctx: Ctx, version: number, action: string, before: number): Promise<RuleSetVersionView> {
  const row = await withTransaction(ctx, async (tx, ctx) => {
    await tx.update(tagRuleSets).set({ status: "archived" }).where(and(eq(tagRuleSets.tenantId, ctx.tenantId), eq(tagRuleSets.status, "published")));
    const [r] = await tx.update(tagRuleSets).set({ status: "published", publishedAt: ctx.deps.now() }).where(and(eq(tagRuleSets.tenantId, ctx.tenantId), eq(tagRuleSets.version, version))).returning();
    await audit(tx, ctx, { action, entityType: "tag_rule_set", entityId: String(version), before: { published: before }, after: { published: version } });
    return r!;
  });
  forgetActiveRules(ctx.tenantId);
  // Every contact is re-tagged under the new version, set-based, in the maintenance worker.
  await ctx.deps.producer.enqueue("tagging-backfill", { tenantId: ctx.tenantId, version }, { jobId: jobId("tag-backfill", ctx.tenantId, String(version)) });
  return versionView(row);
}

export async function publishDraft({ ctx }: { ctx: Ctx }): Promise<RuleSetVersionView> {
  requirePermission(ctx, "rules:write");
  const { draft } = await loadDraft(ctx);
  const before = (await activeRules(dbOf(ctx), ctx.tenantId)).version;
  return publish(ctx, draft.version, "tag_rules.publish", before);
}

/**
 * Discard the draft: it stays in the history as `discarded` (its number is never reused, so the
 * audit log's references stay unambiguous) and the published rules are untouched.
 */
export async function discardDraft({ ctx }: { ctx: Ctx }): Promise<RuleSetVersionView> {
  requirePermission(ctx, "rules:write");
  return withTransaction(ctx, async (tx, ctx) => {
    const [row] = await tx
      .update(tagRuleSets)
      .set({ status: "discarded" })
      .where(and(eq(tagRuleSets.tenantId, ctx.tenantId), eq(tagRuleSets.status, "draft")))
      .returning();
    if (!row) throw new NotFoundError("draft");
    await audit(tx, ctx, { action: "tag_rules.discard", entityType: "tag_rule_set", entityId: String(row.version), before: { status: "draft" }, after: { status: "discarded" } });
    return versionView(row);
  });
}

/** Publish an earlier version again, as a new version (history stays linear). */
export async function rollbackTo({ ctx, version }: { ctx: Ctx; version: number }): Promise<RuleSetVersionView> {
  requirePermission(ctx, "rules:write");
  await ensureSeeded(ctx);
  const [old] = await dbOf(ctx).select().from(tagRuleSets).where(and(eq(tagRuleSets.tenantId, ctx.tenantId), eq(tagRuleSets.version, version), inArray(tagRuleSets.status, ["published", "archived"])));
  if (!old) throw new NotFoundError(`published version ${version}`);
  const before = (await activeRules(dbOf(ctx), ctx.tenantId)).version;
  if (before === version) throw new AppError("CONFLICT", `version ${version} is already the published one`);
  const copy = await withTransaction(ctx, async (tx, ctx) => {
    // A pending draft keeps its number; the copy goes after it.
    const [max] = await tx.select({ v: sql<number>`max(${tagRuleSets.version})::int` }).from(tagRuleSets).where(eq(tagRuleSets.tenantId, ctx.tenantId));
    const [r] = await tx
      .insert(tagRuleSets)
      .values({ tenantId: ctx.tenantId, version: (max?.v ?? 1) + 1, status: "archived", definition: old.definition, note: `rollback to v${version}`, createdByStaffId: ctx.actor.kind === "staff" ? ctx.actor.staffId : null })
      .returning();
    return r!;
  });
  return publish(ctx, copy.version, "tag_rules.rollback", before);
}
