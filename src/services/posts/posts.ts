import { and, asc, desc, eq, lt, or, sql } from "drizzle-orm";
import { z } from "zod";
import type { DbOrTx, Tx } from "../../db/client";
import { POST_KINDS, POST_STATUSES, postReviews, posts } from "../../db/schema/index";
import { blocking, checkPost, contentHash, TemplateError, type PostFinding } from "../../domain/compliance/posts";
import { ConflictError, ForbiddenError, NotFoundError, ValidationError, zodIssues } from "../../errors";
import type { ComplianceLists } from "../../loaders/compliance-rules";
import { activeLists } from "../compliance/check";
import { allowedRecipients } from "../consent/consent";
import { actorStaffId, audit, dbOf, requirePermission, withTransaction, type Ctx } from "../context";
import { cursorText, decodeCursor, encodeCursor, type Page } from "../pagination";

type PostRow = typeof posts.$inferSelect;
type ReviewRow = typeof postReviews.$inferSelect;

export const PostInput = z.object({
  kind: z.enum(POST_KINDS),
  title: z.string().trim().max(200).nullish(),
  body: z.string().min(1).max(20_000),
  /** Values for the template's variables in the rendered check (name, clinic, …). */
  sampleData: z.record(z.string(), z.unknown()).optional(),
});
export const PostPatch = PostInput.omit({ kind: true }).partial();
export const ListPostsQuery = z.object({
  status: z.enum(POST_STATUSES).optional(),
  kind: z.enum(POST_KINDS).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().optional(),
});
export const ReviewInput = z.object({
  decision: z.enum(["approve", "reject"]),
  /** The content hash the reviewer saw: a decision on older content is refused. */
  contentHash: z.string().regex(/^[0-9a-f]{64}$/, "a content hash this API returned"),
  /** Per finding: where it is and what to change. */
  comments: z
    .array(
      z.object({
        term: z.string(),
        start: z.number().int().min(0),
        end: z.number().int().min(0),
        /** Which text the offsets are in (the finding's `in`): title, body as written, or body rendered with sample data. */
        in: z.enum(["title", "body", "rendered"]).optional(),
        comment: z.string().min(1).max(2000),
      }),
    )
    .max(200)
    .default([]),
  note: z.string().max(2000).optional(),
  /** Admins only: approve despite blocking findings, saying why (audited). */
  overrideReason: z.string().trim().min(5).max(2000).optional(),
});

/** A reviewer's comment on one finding: where it is (offsets into the title, body or rendered body) and what to change. */
export interface ReviewComment {
  term: string;
  start: number;
  end: number;
  in?: "title" | "body" | "rendered";
  comment: string;
}

export interface ReviewView {
  level: number;
  reviewerStaffId: string;
  decision: "approve" | "reject";
  contentHash: string;
  comments: ReviewComment[];
  note: string | null;
  overrideReason: string | null;
  at: string;
}

export interface PostView {
  id: string;
  kind: (typeof POST_KINDS)[number];
  title: string | null;
  body: string;
  sampleData: Record<string, unknown>;
  status: (typeof POST_STATUSES)[number];
  contentHash: string;
  levelsRequired: number;
  reviewLevel: number | null;
  listVersion: string | null;
  findings: PostFinding[];
  /** Findings that block under the policy: the post cannot be approved without an admin override. */
  blocking: boolean;
  createdByStaffId: string | null;
  submittedAt: string | null;
  createdAt: string;
  updatedAt: string;
  reviews?: ReviewView[];
}

const reviewView = (r: ReviewRow): ReviewView => ({ level: r.level, reviewerStaffId: r.reviewerStaffId, decision: r.decision, contentHash: r.contentHash, comments: r.comments, note: r.note, overrideReason: r.overrideReason, at: r.createdAt.toISOString() });

function view(p: PostRow, lists: ComplianceLists, reviews?: ReviewRow[]): PostView {
  const findings = p.findings as PostFinding[];
  return {
    id: p.id,
    kind: p.kind,
    title: p.title,
    body: p.body,
    sampleData: p.sampleData,
    status: p.status,
    contentHash: p.contentHash,
    levelsRequired: p.levelsRequired,
    reviewLevel: p.reviewLevel,
    listVersion: p.listVersion,
    findings,
    blocking: blocking(findings, lists.blockSeverities),
    createdByStaffId: p.createdByStaffId,
    submittedAt: p.submittedAt?.toISOString() ?? null,
    createdAt: p.createdAt.toISOString(),
    updatedAt: p.updatedAt.toISOString(),
    ...(reviews ? { reviews: reviews.map(reviewView) } : {}),
  };
}

function checked(lists: ComplianceLists, p: { title: string | null; body: string; sampleData: Record<string, unknown> }): PostFinding[] {
  try {
    return checkPost(lists.checker, p).findings;
  } catch (err) {
    if (err instanceof TemplateError) throw new ValidationError([{ field: "body", message: `is not a valid template: ${err.message}` }]);
    throw err;
  }
}

async function load(tx: DbOrTx, ctx: Ctx, id: string, lock = false): Promise<PostRow> {
  const q = tx.select().from(posts).where(and(eq(posts.tenantId, ctx.tenantId), eq(posts.id, id)));
  const [row] = lock ? await q.for("update") : await q;
  if (!row) throw new NotFoundError("no such post");
  return row;
}

/** A new post, checked against the banned-word lists as written and rendered; it starts as a draft. */
export async function createPost({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<PostView> {
  requirePermission(ctx, "posts:write");
  const p = PostInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const lists = await activeLists(ctx.deps);
  const title = p.data.title ?? null;
  const sampleData = p.data.sampleData ?? {};
  const findings = checked(lists, { title, body: p.data.body, sampleData });
  const row = await withTransaction(ctx, async (tx, ctx) => {
    const [r] = await tx
      .insert(posts)
      .values({ tenantId: ctx.tenantId, kind: p.data.kind, title, body: p.data.body, sampleData, contentHash: contentHash({ kind: p.data.kind, title, body: p.data.body }), listVersion: lists.version, findings, createdByStaffId: actorStaffId(ctx), updatedByStaffId: actorStaffId(ctx) })
      .returning();
    await audit(tx, ctx, { action: "post.create", entityType: "post", entityId: r!.id, after: { kind: r!.kind, contentHash: r!.contentHash, findings: findings.length } });
    return r!;
  });
  return view(row, lists);
}

/** Any edit returns the post to draft: approvals bind to the content they saw. Sent posts are final. */
export async function updatePost({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }): Promise<PostView> {
  requirePermission(ctx, "posts:write");
  const p = PostPatch.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const lists = await activeLists(ctx.deps);
  const row = await withTransaction(ctx, async (tx, ctx) => {
    const before = await load(tx, ctx, id, true);
    if (before.status === "sent") throw new ConflictError("a sent post cannot change", [{ field: "status", message: "is sent" }]);
    const title = p.data.title === undefined ? before.title : (p.data.title ?? null);
    const body = p.data.body ?? before.body;
    const sampleData = p.data.sampleData ?? before.sampleData;
    const findings = checked(lists, { title, body, sampleData });
    const hash = contentHash({ kind: before.kind, title, body });
    const [r] = await tx
      .update(posts)
      .set({ title, body, sampleData, contentHash: hash, findings, listVersion: lists.version, status: "draft", reviewLevel: null, updatedByStaffId: actorStaffId(ctx), updatedAt: ctx.deps.now() })
      .where(and(eq(posts.tenantId, ctx.tenantId), eq(posts.id, id)))
      .returning();
    await audit(tx, ctx, { action: "post.update", entityType: "post", entityId: id, before: { status: before.status, contentHash: before.contentHash }, after: { status: "draft", contentHash: hash, findings: findings.length } });
    return r!;
  });
  return view(row, lists);
}

export async function getPost({ ctx, id }: { ctx: Ctx; id: string }): Promise<PostView> {
  requirePermission(ctx, "posts:read");
  const lists = await activeLists(ctx.deps);
  const row = await load(dbOf(ctx), ctx, id);
  const reviews = await dbOf(ctx).select().from(postReviews).where(and(eq(postReviews.tenantId, ctx.tenantId), eq(postReviews.postId, id))).orderBy(asc(postReviews.createdAt));
  return view(row, lists, reviews);
}

export async function listPosts({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<Page<PostView>> {
  requirePermission(ctx, "posts:read");
  const q = ListPostsQuery.safeParse(input);
  if (!q.success) throw new ValidationError(zodIssues(q.error.issues));
  const lists = await activeLists(ctx.deps);
  const after = decodeCursor(q.data.cursor);
  const conds = [eq(posts.tenantId, ctx.tenantId)];
  if (q.data.status) conds.push(eq(posts.status, q.data.status));
  if (q.data.kind) conds.push(eq(posts.kind, q.data.kind));
  if (after) conds.push(or(lt(posts.createdAt, sql`${after.at}::timestamptz`), and(eq(posts.createdAt, sql`${after.at}::timestamptz`), lt(posts.id, after.id)))!);
  const rows = await dbOf(ctx)
    .select({ post: posts, at: cursorText(posts.createdAt) })
    .from(posts)
    .where(and(...conds))
    .orderBy(desc(posts.createdAt), desc(posts.id))
    .limit(q.data.limit + 1);
  const more = rows.length > q.data.limit;
  const page = rows.slice(0, q.data.limit);
  return { items: page.map((r) => view(r.post, lists)), nextCursor: more ? encodeCursor(page[page.length - 1]!.at, page[page.length - 1]!.post.id) : null };
}

/** Submit a draft (or a revised rejected post) for review at level 1 of the levels its kind needs. */
export async function submitPost({ ctx, id }: { ctx: Ctx; id: string }): Promise<PostView> {
  requirePermission(ctx, "posts:write");
  const lists = await activeLists(ctx.deps);
  const row = await withTransaction(ctx, async (tx, ctx) => {
    const before = await load(tx, ctx, id, true);
    if (before.status !== "draft") throw new ConflictError(`only a draft can be submitted; this post is ${before.status}`, [{ field: "status", message: `is ${before.status}` }]);
    const findings = checked(lists, before);
    const levels = lists.policy?.kinds[before.kind]?.levels ?? lists.policy?.default?.levels ?? 1;
    const [r] = await tx
      .update(posts)
      .set({ status: "in_review", reviewLevel: 1, levelsRequired: levels, findings, listVersion: lists.version, submittedAt: ctx.deps.now(), updatedAt: ctx.deps.now() })
      .where(and(eq(posts.tenantId, ctx.tenantId), eq(posts.id, id)))
      .returning();
    await audit(tx, ctx, { action: "post.submit", entityType: "post", entityId: id, after: { contentHash: before.contentHash, levels, listVersion: lists.version, findings } });
    return r!;
  });
  return view(row, lists);
}

/** Posts awaiting a decision the caller may make, oldest submission first (the reviewers' queue), with cursor paging. */
export async function reviewQueue({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<Page<PostView>> {
  requirePermission(ctx, "posts:review");
  const q = z.object({ limit: z.coerce.number().int().min(1).max(200).default(50), cursor: z.string().optional() }).safeParse(input);
  if (!q.success) throw new ValidationError(zodIssues(q.error.issues));
  const lists = await activeLists(ctx.deps);
  const me = actorStaffId(ctx);
  const after = decodeCursor(q.data.cursor);
  const rows = await dbOf(ctx)
    .select({ post: posts, at: cursorText(posts.submittedAt) })
    .from(posts)
    .where(
      and(
        eq(posts.tenantId, ctx.tenantId),
        eq(posts.status, "in_review"),
        // Four eyes: never one's own copy, and never a second level of the same content.
        me ? sql`${posts.createdByStaffId} is distinct from ${me}::uuid and ${posts.updatedByStaffId} is distinct from ${me}::uuid` : sql`true`,
        me ? sql`not exists (select 1 from ${postReviews} r where r.post_id = ${posts.id} and r.content_hash = ${posts.contentHash} and r.reviewer_staff_id = ${me}::uuid)` : sql`true`,
        after ? sql`(${posts.submittedAt}, ${posts.id}) > (${after.at}::timestamptz, ${after.id}::uuid)` : sql`true`,
      ),
    )
    .orderBy(asc(posts.submittedAt), asc(posts.id))
    .limit(q.data.limit + 1);
  const more = rows.length > q.data.limit;
  const page = rows.slice(0, q.data.limit);
  const last = page[page.length - 1];
  return { items: page.map((r) => view(r.post, lists)), nextCursor: more && last ? encodeCursor(last.at, last.post.id) : null };
}

/**
 * A reviewer's decision at the post's current level, bound to the content hash they saw. Refused:
 * one's own copy, a second level by the same person, content changed since, approving blocking
 * findings without an admin's override and reason. Approving the last level approves the post;
 * rejecting at any level rejects it (the author revises, which returns it to draft).
 */
export async function reviewPost({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }): Promise<PostView> {
  requirePermission(ctx, "posts:review");
  const p = ReviewInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const me = actorStaffId(ctx);
  if (!me || ctx.actor.kind !== "staff") throw new ForbiddenError("reviews are made by a person");
  const role = ctx.actor.role;
  const lists = await activeLists(ctx.deps);
  const { row, reviews } = await withTransaction(ctx, async (tx, ctx) => {
    const post = await load(tx, ctx, id, true);
    if (post.status !== "in_review") throw new ConflictError(`this post is ${post.status}, not in review`, [{ field: "status", message: `is ${post.status}` }]);
    if (p.data.contentHash !== post.contentHash) throw new ConflictError("the post changed since you read it; reload it", [{ field: "contentHash", message: "is not the post's current content" }]);
    if (post.createdByStaffId === me || post.updatedByStaffId === me) throw new ForbiddenError("you cannot review copy you wrote or edited");
    const earlier = await tx.select().from(postReviews).where(and(eq(postReviews.postId, id), eq(postReviews.contentHash, post.contentHash)));
    if (earlier.some((r) => r.reviewerStaffId === me)) throw new ForbiddenError("you already reviewed this content at another level: each level needs a different reviewer");
    // Re-check against the lists in use now: a term added since submission counts.
    const findings = checked(lists, post);
    const blocks = blocking(findings, lists.blockSeverities);
    if (p.data.decision === "approve" && blocks) {
      if (!p.data.overrideReason) throw new ValidationError([{ field: "overrideReason", message: "the copy has blocking findings: revise it, or an admin approves with a reason" }]);
      if (role !== "admin") throw new ForbiddenError("only an admin may approve copy with blocking findings");
    }
    if (p.data.overrideReason && !(p.data.decision === "approve" && blocks)) throw new ValidationError([{ field: "overrideReason", message: "only for approving copy with blocking findings" }]);
    const level = post.reviewLevel ?? 1;
    await tx.insert(postReviews).values({ tenantId: ctx.tenantId, postId: id, level, reviewerStaffId: me, decision: p.data.decision, contentHash: post.contentHash, comments: p.data.comments, note: p.data.note ?? null, overrideReason: p.data.overrideReason ?? null, listVersion: lists.version });
    const done = p.data.decision === "approve" && level >= post.levelsRequired;
    const status = p.data.decision === "reject" ? "rejected" : done ? "approved" : "in_review";
    const [r] = await tx
      .update(posts)
      .set({ status, reviewLevel: status === "in_review" ? level + 1 : null, findings, listVersion: lists.version, updatedAt: ctx.deps.now() })
      .where(and(eq(posts.tenantId, ctx.tenantId), eq(posts.id, id)))
      .returning();
    await audit(tx, ctx, {
      action: p.data.overrideReason ? "post.override" : `post.${p.data.decision}`,
      entityType: "post",
      entityId: id,
      after: { level, status, contentHash: post.contentHash, listVersion: lists.version, comments: p.data.comments.length, ...(p.data.overrideReason ? { overrideReason: p.data.overrideReason, findings: findings.filter((f) => lists.blockSeverities.includes(f.severity)).map((f) => f.term) } : {}) },
    });
    const reviews = await tx.select().from(postReviews).where(eq(postReviews.postId, id)).orderBy(asc(postReviews.createdAt));
    return { row: r!, reviews };
  });
  return view(row, lists, reviews);
}

export class SendRefused extends Error {}

/**
 * Who a send goes to, for the gate's consent check. `service`: a service message the patient asked
 * for (appointment reminder, aftercare), allowed after an opt-out; everything else is marketing.
 */
export interface GateRecipient {
  contactId: string;
  service: boolean;
}

/**
 * Whether a post may be sent now with this content (the gate's test, without side effects): the
 * post must be approved (or scheduled), the content about to be sent must be exactly the approved
 * content, every required level must carry an approval of that content by a different person who
 * neither wrote nor edited it, and the lists in use now must find no blocking term that an admin
 * did not override. With a recipient, a marketing send (service: false) to a contact who opted out
 * (退订, deleted the consultant, marked by staff) is refused too; a service send (an appointment
 * reminder, aftercare the patient asked for) is not.
 */
export async function gateCheck(
  db: DbOrTx,
  ctx: Ctx,
  postId: string,
  content?: { title: string | null; body: string },
  recipient?: GateRecipient,
): Promise<{ sendable: boolean; reason: string | null; post: PostRow | null }> {
  const lists = await activeLists(ctx.deps);
  const [post] = await db.select().from(posts).where(and(eq(posts.tenantId, ctx.tenantId), eq(posts.id, postId)));
  const no = (reason: string) => ({ sendable: false, reason, post: post ?? null });
  if (!post) return no("no such post");
  // Scheduled and sent posts stay sendable (more recipients, the next occurrence): approval binds to the content.
  if (post.status !== "approved" && post.status !== "scheduled" && post.status !== "sent") return no(`the post is ${post.status}, not approved`);
  const hash = contentHash({ kind: post.kind, title: content ? content.title : post.title, body: content ? content.body : post.body });
  if (hash !== post.contentHash) return no("the content differs from the approved content");
  const approvals = await db.select().from(postReviews).where(and(eq(postReviews.postId, postId), eq(postReviews.contentHash, hash), eq(postReviews.decision, "approve")));
  const reviewers = new Set<string>();
  for (let level = 1; level <= post.levelsRequired; level++) {
    const a = approvals.find((r) => r.level === level);
    if (!a) return no(`level ${level} has not approved this content`);
    if (a.reviewerStaffId === post.createdByStaffId || a.reviewerStaffId === post.updatedByStaffId) return no(`level ${level} was approved by the post's own author`);
    if (reviewers.has(a.reviewerStaffId)) return no(`level ${level} was approved by the reviewer of another level`);
    reviewers.add(a.reviewerStaffId);
  }
  const findings = checkPost(lists.checker, post).findings.filter((f) => lists.blockSeverities.includes(f.severity));
  if (findings.length && !approvals.some((a) => a.overrideReason)) return no(`the lists in use (version ${lists.version}) find blocking terms: ${[...new Set(findings.map((f) => f.term))].join(", ")}`);
  if (recipient && !recipient.service) {
    const { refused } = await allowedRecipients(db, ctx, [recipient.contactId], { service: false });
    if (refused[0]) return no(refused[0].reason);
  }
  return { sendable: true, reason: null, post };
}

/**
 * The gate every send path calls inside its own transaction, right before handing content to
 * WeCom (see gateCheck). A refusal is audited (in its own transaction: the sender's rolls back)
 * and thrown.
 */
export async function assertSendable(tx: Tx, ctx: Ctx, postId: string, content: { title: string | null; body: string }, recipient?: GateRecipient): Promise<PostRow> {
  const r = await gateCheck(tx, ctx, postId, content, recipient);
  if (r.sendable) return r.post!;
  const to = recipient ? { contactId: recipient.contactId, service: recipient.service } : {};
  if (r.post) {
    // On its own connection, so the refusal stays recorded when the sender's transaction rolls
    // back. Embedded PGlite has one connection, held by that transaction: there the row is written
    // once it is released (not awaited, or the two would wait for each other).
    const refusal = () => audit(ctx.deps.db, ctx, { action: "post.send.refused", entityType: "post", entityId: postId, after: { reason: r.reason, ...to } });
    if (ctx.deps.config.DATABASE_URL) await refusal();
    else void refusal().catch((err: Error) => ctx.logger.warn({ postId, err: err.message }, "could not record the refused send"));
  }
  ctx.logger.warn({ postId, reason: r.reason, ...to }, "send refused by the compliance gate");
  throw new SendRefused(r.reason!);
}

/** Whether the post could be sent now, and if not why (the console shows it). */
export async function postGate({ ctx, id }: { ctx: Ctx; id: string }): Promise<{ sendable: boolean; reason: string | null }> {
  requirePermission(ctx, "posts:read");
  const r = await gateCheck(dbOf(ctx), ctx, id);
  if (!r.post) throw new NotFoundError("no such post");
  return { sendable: r.sendable, reason: r.reason };
}
