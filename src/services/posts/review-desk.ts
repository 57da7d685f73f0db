import { and, asc, eq, inArray, isNull } from "drizzle-orm";
import { z } from "zod";
import type { DbOrTx } from "../../db/client";
import { calendarEntries, calendars, postReviews, posts, staff } from "../../db/schema/index";
import { DEFAULT_TIME_ZONE } from "../../domain/calendars/schema";
import { entryWhen, type EntryWhen } from "../../domain/calendars/when";
import { occurrence, zonedInstant } from "../../domain/delivery/schedule";
import { blocking, type PostFinding } from "../../domain/compliance/posts";
import { ValidationError, zodIssues } from "../../errors";
import { activeLists } from "../compliance/check";
import { dbOf, requirePermission, type Ctx } from "../context";
import { definitionOf, whenOfRow } from "../delivery/spec";
import { getPost, reviewQueue, type PostView, type ReviewView } from "./posts";

/**
 * What the console's review desk needs besides the posts service: where a post goes (the calendar
 * entries using it and when they are next due), the queue in order of that due time, and the names
 * of the people in its review history. Read-only; the same permissions as the posts routes.
 */

/** A calendar entry whose copy is the post, and when it next goes out. */
export interface PostUse {
  calendarId: string;
  calendarName: string;
  calendarStatus: string;
  entryId: string;
  entryKey: string;
  entryTitle: string | null;
  when: EntryWhen | null;
  timeZone: string;
  /** The next time the entry goes out (a date entry: its time, even when passed); null when it depends on each recipient (day N after enrollment, birthdays). */
  dueAt: string | null;
}

export interface ReviewWithName extends ReviewView {
  reviewerName: string | null;
}

export interface PostDetail {
  post: PostView & { reviews: ReviewWithName[] };
  authorName: string | null;
  uses: PostUse[];
}

export interface DeskItem {
  post: PostView;
  dueAt: string | null;
  uses: PostUse[];
}

/** The queue is ordered in memory (due times come from each entry's schedule): at most this many posts are ordered. */
export const DESK_MAX = 1000;

export const ReviewDeskQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().optional(),
});

/**
 * The next time an entry goes out, from `now`: a dated entry's own time (passed or not: a passed
 * one is overdue), a weekly or monthly one's next occurrence within its calendar's dates; null for
 * entries timed per recipient (day N after enrollment, minutes before an appointment, birthdays).
 */
export function entryDue(when: EntryWhen, now: Date, timeZone: string, dates: { startDate?: string | null; endDate?: string | null } = {}): Date | null {
  if (when.kind === "relative" || when.kind === "before" || when.kind === "birthday") return null;
  if (when.kind === "at") return occurrence(when, now, timeZone);
  const start = dates.startDate ? zonedInstant(dates.startDate, "00:00", timeZone) : null;
  const from = start && start.getTime() > now.getTime() ? start : now;
  const until = dates.endDate ? zonedInstant(dates.endDate, "23:59", timeZone) : null;
  try {
    return occurrence(when, from, timeZone, until);
  } catch {
    return null;
  }
}

/** The live calendar entries using each post (archived calendars and removed entries left out). */
export async function postUses(db: DbOrTx, ctx: Ctx, postIds: string[]): Promise<Map<string, PostUse[]>> {
  const out = new Map<string, PostUse[]>();
  if (!postIds.length) return out;
  const rows = await db
    .select({ e: calendarEntries, cal: { id: calendars.id, name: calendars.name, status: calendars.status, kind: calendars.kind, definition: calendars.definition } })
    .from(calendarEntries)
    .innerJoin(calendars, eq(calendars.id, calendarEntries.calendarId))
    .where(and(eq(calendarEntries.tenantId, ctx.tenantId), inArray(calendarEntries.postId, postIds), isNull(calendarEntries.removedAt)))
    .orderBy(asc(calendarEntries.createdAt));
  const now = ctx.deps.now();
  for (const { e, cal } of rows) {
    if (cal.status === "archived" || !e.postId) continue;
    const def = definitionOf(cal);
    const d = def?.entries.find((x) => x.key === e.key);
    const timeZone = def?.timeZone ?? DEFAULT_TIME_ZONE;
    let when: EntryWhen | null = null;
    try {
      when = d ? entryWhen(d) : whenOfRow(e.when, cal.kind);
    } catch {
      when = null;
    }
    const due = when ? entryDue(when, now, timeZone, { startDate: def?.startDate, endDate: def?.endDate }) : null;
    const use: PostUse = { calendarId: cal.id, calendarName: cal.name, calendarStatus: cal.status, entryId: e.id, entryKey: e.key, entryTitle: d?.title ?? null, when, timeZone, dueAt: due?.toISOString() ?? null };
    out.set(e.postId, [...(out.get(e.postId) ?? []), use]);
  }
  return out;
}

const earliest = (uses: PostUse[]): string | null => uses.map((u) => u.dueAt).filter((d): d is string => d !== null).sort()[0] ?? null;

type DeskKey = { d: string | null; s: string; id: string };
const encodeDesk = (k: DeskKey) => Buffer.from(JSON.stringify(k)).toString("base64url");
function decodeDesk(cursor: string | undefined): DeskKey | undefined {
  if (!cursor) return undefined;
  try {
    const v = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as Partial<DeskKey>;
    if ((v.d === null || typeof v.d === "string") && typeof v.s === "string" && typeof v.id === "string") return { d: v.d, s: v.s, id: v.id };
  } catch {
    // fall through
  }
  throw new ValidationError([{ field: "cursor", message: "is not a cursor this API returned" }]);
}
/** Soonest due first; entries timed per recipient (no due time) after, each group oldest submission first. */
function compareDesk(a: DeskKey, b: DeskKey): number {
  if (a.d !== b.d) {
    if (a.d === null) return 1;
    if (b.d === null) return -1;
    return a.d < b.d ? -1 : 1;
  }
  if (a.s !== b.s) return a.s < b.s ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * The reviewers' queue (the posts reviewQueue offers the caller: in review, not their own, not a
 * level they already reviewed) ordered by due time: the next send of the calendar entries using
 * each post, soonest (and overdue) first; posts whose entries go out per recipient, or that no
 * calendar uses (welcome messages, SOP steps), after them by submission. Cursor paging over that order.
 */
export async function reviewDesk({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<{ items: DeskItem[]; nextCursor: string | null; truncated: boolean }> {
  requirePermission(ctx, "posts:review");
  const q = ReviewDeskQuery.safeParse(input);
  if (!q.success) throw new ValidationError(zodIssues(q.error.issues));
  const after = decodeDesk(q.data.cursor);
  const all: PostView[] = [];
  let cursor: string | undefined;
  do {
    const page = await reviewQueue({ ctx, input: { limit: 200, cursor } });
    all.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor && all.length < DESK_MAX);
  const uses = await postUses(dbOf(ctx), ctx, all.map((p) => p.id));
  const keyed = all
    .map((post) => {
      const u = uses.get(post.id) ?? [];
      return { item: { post, dueAt: earliest(u), uses: u }, key: { d: earliest(u), s: post.submittedAt ?? post.createdAt, id: post.id } };
    })
    .sort((a, b) => compareDesk(a.key, b.key));
  const rest = after ? keyed.filter((k) => compareDesk(k.key, after) > 0) : keyed;
  const page = rest.slice(0, q.data.limit);
  const last = page[page.length - 1];
  return { items: page.map((k) => k.item), nextCursor: rest.length > q.data.limit && last ? encodeDesk(last.key) : null, truncated: Boolean(cursor) };
}

async function staffNames(db: DbOrTx, ctx: Ctx, ids: (string | null)[]): Promise<Map<string, string>> {
  const wanted = [...new Set(ids.filter((x): x is string => x !== null))];
  if (!wanted.length) return new Map();
  const rows = await db.select({ id: staff.id, name: staff.name }).from(staff).where(and(eq(staff.tenantId, ctx.tenantId), inArray(staff.id, wanted)));
  return new Map(rows.map((r) => [r.id, r.name]));
}

/** A post with its findings, every review decision with the reviewer's name, its author's name, and the calendar entries using it. */
export async function postDetail({ ctx, id }: { ctx: Ctx; id: string }): Promise<PostDetail> {
  const post = await getPost({ ctx, id });
  const reviews = post.reviews ?? [];
  const db = dbOf(ctx);
  const names = await staffNames(db, ctx, [post.createdByStaffId, ...reviews.map((r) => r.reviewerStaffId)]);
  const uses = (await postUses(db, ctx, [post.id])).get(post.id) ?? [];
  return {
    post: { ...post, reviews: reviews.map((r) => ({ ...r, reviewerName: names.get(r.reviewerStaffId) ?? null })) },
    authorName: post.createdByStaffId ? (names.get(post.createdByStaffId) ?? null) : null,
    uses,
  };
}

/** Where a post stands in review, for lists (a calendar's entries): status, level, findings and the latest decision. */
export interface PostSummary {
  id: string;
  status: PostView["status"];
  reviewLevel: number | null;
  levelsRequired: number;
  findings: number;
  blocking: boolean;
  lastDecision: { decision: "approve" | "reject"; level: number; reviewerName: string | null; at: string; comments: number; note: string | null } | null;
}

export async function postSummaries({ ctx, ids }: { ctx: Ctx; ids: string[] }): Promise<Map<string, PostSummary>> {
  requirePermission(ctx, "posts:read");
  const out = new Map<string, PostSummary>();
  const wanted = [...new Set(ids)].filter((x) => z.uuid().safeParse(x).success);
  if (!wanted.length) return out;
  const db = dbOf(ctx);
  const lists = await activeLists(ctx.deps);
  const rows = await db
    .select({ id: posts.id, status: posts.status, reviewLevel: posts.reviewLevel, levelsRequired: posts.levelsRequired, findings: posts.findings, contentHash: posts.contentHash })
    .from(posts)
    .where(and(eq(posts.tenantId, ctx.tenantId), inArray(posts.id, wanted)));
  const reviews = await db
    .select({ postId: postReviews.postId, decision: postReviews.decision, level: postReviews.level, reviewerStaffId: postReviews.reviewerStaffId, at: postReviews.createdAt, comments: postReviews.comments, note: postReviews.note, contentHash: postReviews.contentHash })
    .from(postReviews)
    .where(and(eq(postReviews.tenantId, ctx.tenantId), inArray(postReviews.postId, wanted)))
    .orderBy(asc(postReviews.createdAt));
  const names = await staffNames(db, ctx, reviews.map((r) => r.reviewerStaffId));
  for (const r of rows) {
    const last = reviews.filter((x) => x.postId === r.id && x.contentHash === r.contentHash).pop();
    const findings = r.findings as PostFinding[];
    out.set(r.id, {
      id: r.id,
      status: r.status,
      reviewLevel: r.reviewLevel,
      levelsRequired: r.levelsRequired,
      findings: findings.length,
      blocking: blocking(findings, lists.blockSeverities),
      lastDecision: last ? { decision: last.decision, level: last.level, reviewerName: names.get(last.reviewerStaffId) ?? null, at: last.at.toISOString(), comments: last.comments.length, note: last.note } : null,
    });
  }
  return out;
}
