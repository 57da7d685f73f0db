import { and, asc, eq, inArray, sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import { rowsOf } from "../../db/client";
import { segments, segmentSnapshots, staff, tagGroups, tags } from "../../db/schema/index";
import { parseSegment, SegmentSyntaxError, tagRefs, type SegmentAst } from "../../domain/segments/parse";
import { ConflictError, isUniqueViolation, NotFoundError, ValidationError, zodIssues } from "../../errors";
import { audit, dbOf, requirePermission, withTransaction, type Ctx } from "../context";
import { listContacts } from "../contacts/list";
import type { ContactView } from "../contacts/schemas";
import type { Page } from "../pagination";
import { segmentBitsCount, segmentCount, segmentWhere } from "./compile";

export const SegmentInput = z.object({
  name: z.string().trim().min(1).max(100),
  /** e.g. `visit:复诊 AND need:祛痘 AND NOT engagement:低`, `spend_12m >= 5000` */
  expression: z.string().min(1).max(2000),
});
export const PreviewInput = SegmentInput.pick({ expression: true });

export interface SegmentView {
  id: string;
  name: string;
  expression: string;
  /** Contacts in the segment right now. */
  count: number;
  createdAt: string;
  updatedAt: string;
}

/** Parse and check an expression: syntax errors with their position, unknown tags by name; both name the field. */
interface Compiled {
  ast: SegmentAst;
  /** Tag ids by "group:name". */
  ids: Map<string, string>;
  /** Tag ordinals (their bit in contact_tag_state.tag_bits) by "group:name". */
  ordinals: Map<string, number>;
  where: SQL;
}

/** Parse, resolve tags and compile an expression to a condition over `contacts c` (ValidationError naming `expression`). */
export async function compileChecked(ctx: Ctx, expression: string): Promise<Compiled> {
  let ast: SegmentAst;
  try {
    ast = parseSegment(expression);
  } catch (err) {
    if (err instanceof SegmentSyntaxError) throw new ValidationError([{ field: "expression", message: err.message }]);
    throw err;
  }
  const refs = tagRefs(ast);
  const ids = new Map<string, string>();
  const ordinals = new Map<string, number>();
  if (refs.length) {
    const known = await dbOf(ctx)
      .select({ id: tags.id, group: tagGroups.key, name: tags.name, ordinal: tags.ordinal })
      .from(tags)
      .innerJoin(tagGroups, eq(tagGroups.id, tags.groupId))
      .where(and(eq(tags.tenantId, ctx.tenantId), inArray(tagGroups.key, [...new Set(refs.map((r) => r.group))])));
    const missing = refs.filter((r) => !known.some((k) => k.group === r.group && k.name === r.name));
    if (missing.length) throw new ValidationError([{ field: "expression", message: `unknown tag ${missing.map((m) => `${m.group}:${m.name}`).join(", ")}` }]);
    for (const k of known) {
      ids.set(`${k.group}:${k.name}`, k.id);
      if (k.ordinal !== null) ordinals.set(`${k.group}:${k.name}`, k.ordinal);
    }
  }
  return { ast, ids, ordinals, where: segmentWhere(ast, ctx.deps.now().toISOString(), ids) };
}

/**
 * How common each tag is, from PostgreSQL's own statistics of contact_tags.tag_id (the planner's
 * most-common-values list), refreshed every few minutes: the segment count walks the rarest tag.
 * Tags missing from the list are rarer than any on it.
 */
let tagStats: { at: number; freq: Map<string, number> } = { at: 0, freq: new Map() };
async function tagFrequency(ctx: Ctx): Promise<(tagId: string) => number> {
  if (Date.now() - tagStats.at > 300_000) {
    const rows = rowsOf<{ vals: string | null; freqs: number[] | string | null }>(
      await dbOf(ctx).execute(sql`select most_common_vals::text as vals, most_common_freqs as freqs from pg_stats where schemaname = current_schema() and tablename = 'contact_tags' and attname = 'tag_id'`),
    );
    const freq = new Map<string, number>();
    const r = rows[0];
    if (r?.vals && r.freqs) {
      const vals = r.vals.replace(/^\{|\}$/g, "").split(",");
      const freqs = Array.isArray(r.freqs) ? r.freqs.map(Number) : r.freqs.replace(/^\{|\}$/g, "").split(",").map(Number);
      vals.forEach((v, i) => freq.set(v, freqs[i] ?? 0));
    }
    tagStats = { at: Date.now(), freq };
  }
  const { freq } = tagStats;
  return (id) => freq.get(id) ?? 0;
}

async function countWhere(ctx: Ctx, c: Compiled): Promise<number> {
  const bits = segmentBitsCount(c.ast, c.ordinals, ctx.tenantId);
  if (bits) {
    // One scan of a narrow table (in parallel on large tenants); compiling it (JIT) costs more than it saves.
    return withTransaction(ctx, async (tx) => {
      await tx.execute(sql`set local jit = off`);
      return rowsOf<{ n: number }>(await tx.execute(bits))[0]?.n ?? 0;
    });
  }
  const { query, drivenBy } = segmentCount(c.ast, ctx.deps.now().toISOString(), c.ids, ctx.tenantId, await tagFrequency(ctx), c.ordinals);
  if (drivenBy === "contacts") return rowsOf<{ n: number }>(await dbOf(ctx).execute(query))[0]?.n ?? 0;
  // A walk of one tag's index with a probe per member is short, serial work: starting parallel
  // workers and compiling it (JIT) cost more than they save (measured: docs/benchmarks.md). The
  // scan of the tag bits is the same scan as a count of tags only.
  return withTransaction(ctx, async (tx) => {
    if (drivenBy === "tag-index") await tx.execute(sql`set local max_parallel_workers_per_gather = 0`);
    await tx.execute(sql`set local jit = off`);
    return rowsOf<{ n: number }>(await tx.execute(query))[0]?.n ?? 0;
  });
}


const view = (r: typeof segments.$inferSelect, count: number): SegmentView => ({ id: r.id, name: r.name, expression: r.expression, count, createdAt: r.createdAt.toISOString(), updatedAt: r.updatedAt.toISOString() });

async function load(ctx: Ctx, id: string) {
  const [row] = await dbOf(ctx).select().from(segments).where(and(eq(segments.tenantId, ctx.tenantId), eq(segments.id, id)));
  if (!row) throw new NotFoundError("segment");
  return row;
}

export async function createSegment({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<SegmentView> {
  requirePermission(ctx, "segments:write");
  const p = SegmentInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const compiled = await compileChecked(ctx, p.data.expression);
  const row = await withTransaction(ctx, async (tx, ctx) => {
    try {
      const [r] = await tx.insert(segments).values({ tenantId: ctx.tenantId, name: p.data.name, expression: p.data.expression, createdByStaffId: ctx.actor.kind === "staff" ? ctx.actor.staffId : null }).returning();
      await audit(tx, ctx, { action: "segment.create", entityType: "segment", entityId: r!.id, after: { name: r!.name, expression: r!.expression } });
      return r!;
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError("a segment with this name exists", [{ field: "name", message: "already used" }]);
      throw err;
    }
  });
  return view(row, await countWhere(ctx, compiled));
}

export async function updateSegment({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }): Promise<SegmentView> {
  requirePermission(ctx, "segments:write");
  const p = SegmentInput.partial().safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const before = await load(ctx, id);
  const expression = p.data.expression ?? before.expression;
  const compiled = await compileChecked(ctx, expression);
  const row = await withTransaction(ctx, async (tx, ctx) => {
    try {
      const [r] = await tx
        .update(segments)
        .set({ name: p.data.name ?? before.name, expression, updatedAt: ctx.deps.now() })
        .where(and(eq(segments.tenantId, ctx.tenantId), eq(segments.id, id)))
        .returning();
      await audit(tx, ctx, { action: "segment.update", entityType: "segment", entityId: id, before: { name: before.name, expression: before.expression }, after: { name: r!.name, expression: r!.expression } });
      return r!;
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError("a segment with this name exists", [{ field: "name", message: "already used" }]);
      throw err;
    }
  });
  return view(row, await countWhere(ctx, compiled));
}

export async function getSegment({ ctx, id }: { ctx: Ctx; id: string }): Promise<SegmentView> {
  requirePermission(ctx, "segments:read");
  const row = await load(ctx, id);
  return view(row, await countWhere(ctx, await compileChecked(ctx, row.expression)));
}

export async function listSegments({ ctx }: { ctx: Ctx }): Promise<SegmentView[]> {
  requirePermission(ctx, "segments:read");
  const rows = await dbOf(ctx).select().from(segments).where(eq(segments.tenantId, ctx.tenantId)).orderBy(asc(segments.name));
  const out: SegmentView[] = [];
  for (const r of rows) {
    // A segment whose tags were deleted later still lists, with count 0.
    const count = await compileChecked(ctx, r.expression).then((c) => countWhere(ctx, c), () => 0);
    out.push(view(r, count));
  }
  return out;
}

/** Count and a sample for an expression being written (the console's live count). */
export async function previewSegment({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<{ count: number; sample: ContactView[] }> {
  requirePermission(ctx, "segments:read");
  const p = PreviewInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const compiled = await compileChecked(ctx, p.data.expression);
  const [count, page] = await Promise.all([countWhere(ctx, compiled), listContacts({ ctx, input: { limit: 10 }, where: compiled.where })]);
  return { count, sample: page.items };
}

export async function segmentMembers({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }): Promise<Page<ContactView>> {
  requirePermission(ctx, "segments:read");
  const row = await load(ctx, id);
  return listContacts({ ctx, input, where: (await compileChecked(ctx, row.expression)).where });
}

/** Members as CSV (UTF-8 with BOM so Excel opens Chinese correctly); phones masked unless the role may see them. */
export async function exportSegmentCsv({ ctx, id }: { ctx: Ctx; id: string }): Promise<{ filename: string; csv: string }> {
  requirePermission(ctx, "segments:read");
  const row = await load(ctx, id);
  const { where } = await compileChecked(ctx, row.expression);
  const owners = new Map((await dbOf(ctx).select({ id: staff.id, name: staff.name }).from(staff).where(eq(staff.tenantId, ctx.tenantId))).map((s) => [s.id, s.name]));
  const esc = (v: string | null | undefined) => (v == null ? "" : /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  const lines = ["id,姓名,手机号,external_user_id,来源,归属顾问,添加时间"];
  let cursor: string | undefined;
  for (;;) {
    const page = await listContacts({ ctx, input: { limit: 200, ...(cursor ? { cursor } : {}) }, where });
    for (const c of page.items) lines.push([c.id, esc(c.name), esc(c.phone), esc(c.externalUserId), esc(c.source), esc(c.ownerStaffId ? (owners.get(c.ownerStaffId) ?? "") : ""), c.createdAt].join(","));
    if (!page.nextCursor) break;
    cursor = page.nextCursor;
  }
  return { filename: `segment-${row.name.replace(/[^\p{L}\p{N}_-]+/gu, "_")}.csv`, csv: "\uFEFF" + lines.join("\r\n") + "\r\n" };
}

/** Record today's size of every segment of the tenant (idempotent per day). */
export async function snapshotSegments({ ctx, day }: { ctx: Ctx; day: string }): Promise<number> {
  const rows = await dbOf(ctx).select().from(segments).where(eq(segments.tenantId, ctx.tenantId));
  for (const r of rows) {
    const size = await compileChecked(ctx, r.expression).then((c) => countWhere(ctx, c), () => 0);
    await dbOf(ctx).insert(segmentSnapshots).values({ tenantId: ctx.tenantId, segmentId: r.id, day, size }).onConflictDoUpdate({ target: [segmentSnapshots.segmentId, segmentSnapshots.day], set: { size } });
  }
  return rows.length;
}

export async function segmentSizes({ ctx, id }: { ctx: Ctx; id: string }): Promise<{ day: string; size: number }[]> {
  requirePermission(ctx, "segments:read");
  await load(ctx, id);
  const rows = await dbOf(ctx).select({ day: segmentSnapshots.day, size: segmentSnapshots.size }).from(segmentSnapshots).where(and(eq(segmentSnapshots.tenantId, ctx.tenantId), eq(segmentSnapshots.segmentId, id))).orderBy(asc(segmentSnapshots.day)).limit(400);
  return rows.map((r) => ({ day: String(r.day), size: r.size }));
}

