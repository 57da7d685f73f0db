import { createHash } from "node:crypto";
import { and, desc, eq, inArray, isNull, lt, or, sql } from "drizzle-orm";
import { z } from "zod";
import type { DbOrTx, Tx } from "../../db/client";
import { calendarEntries, calendars, posts, staff, tagGroups, tags } from "../../db/schema/index";
import { calendarComplianceIssues } from "../../domain/calendars/compliance";
import { entryPost } from "../../domain/calendars/render";
import { Key, type CalendarDefinition, type CalendarKind } from "../../domain/calendars/schema";
import { parseCalendar, type CalendarIssue } from "../../domain/calendars/validate";
import { entryWhen } from "../../domain/calendars/when";
import { blocking, contentHash, type PostFinding } from "../../domain/compliance/posts";
import { parseSegment, tagRefs } from "../../domain/segments/parse";
import { ConflictError, isUniqueViolation, NotFoundError, ValidationError, zodIssues } from "../../errors";
import { activeLists } from "../compliance/check";
import { actorStaffId, audit, dbOf, requirePermission, withTransaction, type Ctx } from "../context";
import { cursorText, decodeCursor, encodeCursor, type Page } from "../pagination";
import { createPost, submitPost } from "../posts/posts";

/**
 * Content calendars through the API (and `siyu calendar publish`, which calls it): a definition
 * is validated by the same schema as calendar files (domain/calendars; 422 names each field,
 * `entries[3].template`), plus what only the tenant knows: owner staff and tags. Publishing turns
 * each entry into a post submitted for review (posts service): an entry whose content did not
 * change keeps its post and approval, a changed one gets a new post.
 */

type CalendarRow = typeof calendars.$inferSelect;

/** The API body of a create: the calendar as written plus its key (a file's key is its name). */
export const CreateCalendarInput = z.looseObject({
  key: Key,
  /** file: published from content-calendars/ by `siyu calendar publish`; api (default): made through the API. */
  source: z.enum(["file", "api"]).optional(),
});
/** The API body of an update: the whole calendar as written (the key cannot change). */
export const UpdateCalendarInput = z.looseObject({ key: Key.optional(), source: z.enum(["file", "api"]).optional() });
export const ListCalendarsQuery = z.object({
  key: z.string().max(64).optional(),
  status: z.enum(["draft", "published", "archived"]).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().optional(),
});

export interface CalendarEntryView {
  id: string;
  key: string;
  when: Record<string, unknown>;
  kind: string;
  channel: "single" | "group";
  service: boolean;
  ownerStaffId: string | null;
  conditions: Record<string, unknown> | null;
  postId: string | null;
  postStatus: string | null;
  calendarVersion: number;
  removedAt: string | null;
}

export interface PublishedEntryView {
  key: string;
  entryId: string;
  /** new: first published; changed: new content, a new post in review; kept: same content, same post; removed: gone from the definition. */
  change: "new" | "changed" | "kept" | "removed";
  postId: string | null;
  postStatus: string | null;
  findings: number;
  blocking: boolean;
}

export interface PublishResult {
  calendarId: string;
  key: string;
  version: number;
  /** The definition was already published as it is: nothing changed (no new version). */
  unchanged: boolean;
  entries: PublishedEntryView[];
}

export interface CalendarView {
  id: string;
  key: string;
  name: string;
  source: "file" | "api";
  kind: CalendarKind;
  status: "draft" | "published" | "archived";
  version: number;
  contentHash: string;
  definition: Record<string, unknown>;
  publishedAt: string | null;
  createdAt: string;
  updatedAt: string;
  /** With a single calendar: its published entries (removed ones too) and their posts. */
  entries?: CalendarEntryView[];
  /** When saving a published calendar published the change. */
  published?: PublishResult;
}

export interface LintResult {
  ok: boolean;
  kind: CalendarKind | null;
  issues: Omit<CalendarIssue, "file" | "line">[];
}

function view(r: CalendarRow, extra: Pick<CalendarView, "entries" | "published"> = {}): CalendarView {
  return {
    id: r.id,
    key: r.key,
    name: r.name,
    source: r.source,
    kind: r.kind,
    status: r.status,
    version: r.version,
    contentHash: r.contentHash,
    definition: r.definition,
    publishedAt: r.publishedAt?.toISOString() ?? null,
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
    ...extra,
  };
}

/** JSON with keys sorted: the same definition always hashes the same. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v && typeof v === "object") {
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}
export const definitionHash = (d: CalendarDefinition): string => createHash("sha256").update(canonical(d)).digest("hex");

const strip = (i: CalendarIssue) => ({ entry: i.entry, path: i.path, message: i.message, level: i.level });

/** Every staff reference of the definition, with the path it sits at. */
function staffRefs(def: CalendarDefinition): { ref: string; path: string; entry: string | null }[] {
  const out: { ref: string; path: string; entry: string | null }[] = [];
  if (def.owner) out.push({ ref: def.owner, path: "owner", entry: null });
  def.entries.forEach((e, i) => e.owner && out.push({ ref: e.owner, path: `entries[${i}].owner`, entry: e.key }));
  return out;
}

/** Every segment expression or tag of the definition, with its path. */
function tagUses(def: CalendarDefinition): { refs: { group: string; name: string }[]; path: string; entry: string | null }[] {
  const out: { refs: { group: string; name: string }[]; path: string; entry: string | null }[] = [];
  const expr = (src: string | undefined, path: string, entry: string | null) => src && out.push({ refs: tagRefs(parseSegment(src)), path, entry });
  const tag = (t: string | undefined, path: string) => {
    if (!t) return;
    const at = t.indexOf(":");
    out.push({ refs: [{ group: t.slice(0, at), name: t.slice(at + 1) }], path, entry: null });
  };
  expr(def.audience.segment, "audience.segment", null);
  expr(def.audience.enrollment?.on?.segment, "audience.enrollment.on.segment", null);
  tag(def.audience.enrollment?.on?.tag, "audience.enrollment.on.tag");
  tag(def.audience.enrollment?.endOn?.tag, "audience.enrollment.endOn.tag");
  def.entries.forEach((e, i) => {
    expr(e.conditions?.skipIf, `entries[${i}].conditions.skipIf`, e.key);
    expr(e.conditions?.onlyIf, `entries[${i}].conditions.onlyIf`, e.key);
  });
  return out;
}

/**
 * What only the tenant knows: owners are active staff (by email or WeCom userid), tags exist.
 * Returns the owner ids by reference and the problems (errors).
 */
async function tenantChecks(db: DbOrTx, ctx: Ctx, def: CalendarDefinition): Promise<{ owners: Map<string, string>; issues: CalendarIssue[] }> {
  const issues: CalendarIssue[] = [];
  const owners = new Map<string, string>();
  const refs = staffRefs(def);
  if (refs.length) {
    const wanted = [...new Set(refs.map((r) => r.ref))];
    const rows = await db
      .select({ id: staff.id, email: staff.email, wecomUserId: staff.wecomUserId })
      .from(staff)
      .where(and(eq(staff.tenantId, ctx.tenantId), eq(staff.active, true), or(inArray(staff.email, wanted.map((w) => w.toLowerCase())), inArray(staff.wecomUserId, wanted))));
    for (const w of wanted) {
      const s = rows.find((r) => r.email === w.toLowerCase() || r.wecomUserId === w);
      if (s) owners.set(w, s.id);
    }
    for (const r of refs) if (!owners.has(r.ref)) issues.push({ file: null, entry: r.entry, path: r.path, message: `no active staff member has the email or WeCom userid "${r.ref}"`, level: "error" });
  }
  const uses = tagUses(def);
  if (uses.some((u) => u.refs.length)) {
    const known = await db.select({ group: tagGroups.key, name: tags.name }).from(tags).innerJoin(tagGroups, eq(tagGroups.id, tags.groupId)).where(eq(tags.tenantId, ctx.tenantId));
    const set = new Set(known.map((k) => `${k.group}:${k.name}`));
    for (const u of uses) {
      const missing = [...new Set(u.refs.map((r) => `${r.group}:${r.name}`).filter((t) => !set.has(t)))];
      if (missing.length) issues.push({ file: null, entry: u.entry, path: u.path, message: `unknown tag ${missing.join(", ")}`, level: "error" });
    }
  }
  return { owners, issues };
}

/** Validate a body as a calendar: 422 naming each field, else the normalised definition. */
function parsedOrThrow(body: Record<string, unknown>): { def: CalendarDefinition; kind: CalendarKind } {
  const r = parseCalendar(body);
  const errors = r.issues.filter((i) => i.level === "error");
  if (!r.calendar || errors.length) throw new ValidationError(errors.map((i) => ({ field: i.path, message: i.message })));
  return { def: r.calendar, kind: r.kind! };
}

function throwIssues(issues: CalendarIssue[]): void {
  const errors = issues.filter((i) => i.level === "error");
  if (errors.length) throw new ValidationError(errors.map((i) => ({ field: i.path, message: i.message })));
}

/** The body without the fields that are not part of the calendar. */
function definitionPart(input: Record<string, unknown>): Record<string, unknown> {
  const { key: _key, source: _source, ...rest } = input;
  return rest;
}

async function load(db: DbOrTx, ctx: Ctx, id: string, lock = false): Promise<CalendarRow> {
  const q = db.select().from(calendars).where(and(eq(calendars.tenantId, ctx.tenantId), eq(calendars.id, id)));
  const [row] = lock ? await q.for("update") : await q;
  if (!row) throw new NotFoundError("no such calendar");
  return row;
}

/** Check a definition without saving it: schema, template variables, owners and tags, and the banned-word check of every entry. */
export async function lintCalendar({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<LintResult> {
  requirePermission(ctx, "calendars:read");
  const body = input && typeof input === "object" && !Array.isArray(input) ? definitionPart(input as Record<string, unknown>) : input;
  const r = parseCalendar(body, null, { now: ctx.deps.now() });
  const issues = [...r.issues];
  if (r.calendar) {
    const lists = await activeLists(ctx.deps);
    issues.push(...calendarComplianceIssues(r.calendar, lists.checker, lists.blockSeverities));
    issues.push(...(await tenantChecks(dbOf(ctx), ctx, r.calendar)).issues);
  }
  return { ok: !issues.some((i) => i.level === "error"), kind: r.kind, issues: issues.map(strip) };
}

/** Save a new calendar as a draft (publish it to create its posts). */
export async function createCalendar({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<CalendarView> {
  requirePermission(ctx, "calendars:write");
  const head = CreateCalendarInput.safeParse(input);
  if (!head.success) throw new ValidationError(zodIssues(head.error.issues));
  const { def, kind } = parsedOrThrow(definitionPart(head.data));
  const row = await withTransaction(ctx, async (tx, ctx) => {
    throwIssues((await tenantChecks(tx, ctx, def)).issues);
    const hash = definitionHash(def);
    let r: CalendarRow | undefined;
    try {
      [r] = await tx
        .insert(calendars)
        .values({ tenantId: ctx.tenantId, key: head.data.key, name: def.name, source: head.data.source ?? "api", kind, definition: def as unknown as Record<string, unknown>, contentHash: hash, createdByStaffId: actorStaffId(ctx), updatedByStaffId: actorStaffId(ctx) })
        .returning();
    } catch (err) {
      if (isUniqueViolation(err, "calendars_tenant_key_uq")) throw new ConflictError(`a calendar with the key ${head.data.key} exists: update it (PUT /v1/calendars/{id})`, [{ field: "key", message: "is taken" }]);
      throw err;
    }
    await audit(tx, ctx, { action: "calendar.create", entityType: "calendar", entityId: r!.id, after: { key: r!.key, kind, source: r!.source, contentHash: hash, entries: def.entries.length } });
    return r!;
  });
  return view(row);
}

/**
 * Replace a calendar's definition. A draft stays a draft; a published calendar publishes the change
 * at once (so its entries, posts and definition never disagree for delivery): changed entries get
 * new posts in review, unchanged ones keep theirs.
 */
export async function updateCalendar({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }): Promise<CalendarView> {
  requirePermission(ctx, "calendars:write");
  const head = UpdateCalendarInput.safeParse(input);
  if (!head.success) throw new ValidationError(zodIssues(head.error.issues));
  const { def, kind } = parsedOrThrow(definitionPart(head.data));
  return withTransaction(ctx, async (tx, ctx) => {
    const before = await load(tx, ctx, id, true);
    if (head.data.key !== undefined && head.data.key !== before.key) throw new ValidationError([{ field: "key", message: `cannot change (it is ${before.key}); create a new calendar instead` }]);
    if (before.status === "archived") throw new ConflictError("an archived calendar cannot change", [{ field: "status", message: "is archived" }]);
    const { owners, issues } = await tenantChecks(tx, ctx, def);
    throwIssues(issues);
    const hash = definitionHash(def);
    const [r] = await tx
      .update(calendars)
      .set({ name: def.name, kind, definition: def as unknown as Record<string, unknown>, ...(head.data.source ? { source: head.data.source } : {}), ...(before.status === "draft" ? { contentHash: hash } : {}), updatedByStaffId: actorStaffId(ctx), updatedAt: ctx.deps.now() })
      .where(and(eq(calendars.tenantId, ctx.tenantId), eq(calendars.id, id)))
      .returning();
    await audit(tx, ctx, { action: "calendar.update", entityType: "calendar", entityId: id, before: { contentHash: before.contentHash, kind: before.kind }, after: { contentHash: hash, kind, entries: def.entries.length } });
    if (before.status !== "published") return view(r!);
    const published = await publishLocked(tx, ctx, r!, def, kind, owners);
    const after = await load(tx, ctx, id);
    return view(after, { published });
  });
}

export async function getCalendar({ ctx, id }: { ctx: Ctx; id: string }): Promise<CalendarView> {
  requirePermission(ctx, "calendars:read");
  const db = dbOf(ctx);
  const row = await load(db, ctx, id);
  const rows = await db
    .select({ e: calendarEntries, postStatus: posts.status })
    .from(calendarEntries)
    .leftJoin(posts, eq(posts.id, calendarEntries.postId))
    .where(and(eq(calendarEntries.tenantId, ctx.tenantId), eq(calendarEntries.calendarId, id)))
    .orderBy(calendarEntries.createdAt, calendarEntries.key);
  return view(row, {
    entries: rows.map(({ e, postStatus }) => ({
      id: e.id,
      key: e.key,
      when: e.when,
      kind: e.kind,
      channel: e.channel,
      service: e.service,
      ownerStaffId: e.ownerStaffId,
      conditions: e.conditions,
      postId: e.postId,
      postStatus: postStatus ?? null,
      calendarVersion: e.calendarVersion,
      removedAt: e.removedAt?.toISOString() ?? null,
    })),
  });
}

export async function listCalendars({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<Page<CalendarView>> {
  requirePermission(ctx, "calendars:read");
  const q = ListCalendarsQuery.safeParse(input);
  if (!q.success) throw new ValidationError(zodIssues(q.error.issues));
  const after = decodeCursor(q.data.cursor);
  const conds = [eq(calendars.tenantId, ctx.tenantId)];
  if (q.data.key) conds.push(eq(calendars.key, q.data.key));
  if (q.data.status) conds.push(eq(calendars.status, q.data.status));
  if (after) conds.push(or(lt(calendars.createdAt, sql`${after.at}::timestamptz`), and(eq(calendars.createdAt, sql`${after.at}::timestamptz`), lt(calendars.id, after.id)))!);
  const rows = await dbOf(ctx)
    .select({ c: calendars, at: cursorText(calendars.createdAt) })
    .from(calendars)
    .where(and(...conds))
    .orderBy(desc(calendars.createdAt), desc(calendars.id))
    .limit(q.data.limit + 1);
  const more = rows.length > q.data.limit;
  const page = rows.slice(0, q.data.limit);
  const last = page[page.length - 1];
  return { items: page.map((r) => view(r.c)), nextCursor: more && last ? encodeCursor(last.at, last.c.id) : null };
}

/**
 * Publish a calendar (by id or key): each entry becomes a post submitted for review. An entry whose
 * content (kind, text, attachments) did not change keeps its post and approval; a changed one gets a
 * new post (the old approval does not carry over); entries no longer in the definition are marked
 * removed. Publishing the definition already published changes nothing. Audited.
 */
export async function publishCalendar({ ctx, id, key }: { ctx: Ctx; id?: string; key?: string }): Promise<PublishResult> {
  requirePermission(ctx, "calendars:write");
  requirePermission(ctx, "posts:write");
  return withTransaction(ctx, async (tx, ctx) => {
    let row: CalendarRow;
    if (id) row = await load(tx, ctx, id, true);
    else {
      const [r] = await tx
        .select()
        .from(calendars)
        .where(and(eq(calendars.tenantId, ctx.tenantId), eq(calendars.key, key ?? "")))
        .for("update");
      if (!r) throw new NotFoundError("no such calendar");
      row = r;
    }
    if (row.status === "archived") throw new ConflictError("an archived calendar cannot be published", [{ field: "status", message: "is archived" }]);
    // Re-validate: the stored definition may predate a rule, an owner may have left, a tag gone.
    const { def, kind } = parsedOrThrow(row.definition);
    const { owners, issues } = await tenantChecks(tx, ctx, def);
    throwIssues(issues);
    return publishLocked(tx, ctx, row, def, kind, owners);
  });
}

/** The publish itself, on a calendar row locked by the caller's transaction. */
async function publishLocked(tx: Tx, ctx: Ctx, row: CalendarRow, def: CalendarDefinition, kind: CalendarKind, owners: Map<string, string>): Promise<PublishResult> {
  const lists = await activeLists(ctx.deps);
  const hash = definitionHash(def);
  const existing = await tx.select().from(calendarEntries).where(and(eq(calendarEntries.tenantId, ctx.tenantId), eq(calendarEntries.calendarId, row.id)));
  const byKey = new Map(existing.map((e) => [e.key, e]));
  const postIds = existing.map((e) => e.postId).filter((p): p is string => p !== null);
  const postRows = postIds.length ? await tx.select({ id: posts.id, contentHash: posts.contentHash, status: posts.status, findings: posts.findings }).from(posts).where(and(eq(posts.tenantId, ctx.tenantId), inArray(posts.id, postIds))) : [];
  const postById = new Map(postRows.map((p) => [p.id, p]));
  const findingsOf = (f: unknown[]) => ({ findings: f.length, blocking: blocking(f as PostFinding[], lists.blockSeverities) });

  const current = existing.filter((e) => e.removedAt === null);
  const unchanged = row.status === "published" && row.contentHash === hash && current.length === def.entries.length && def.entries.every((e) => byKey.get(e.key)?.removedAt === null && byKey.get(e.key)?.postId);
  if (unchanged) {
    return {
      calendarId: row.id,
      key: row.key,
      version: row.version,
      unchanged: true,
      entries: def.entries.map((e) => {
        const r = byKey.get(e.key)!;
        const p = postById.get(r.postId!);
        return { key: e.key, entryId: r.id, change: "kept" as const, postId: r.postId, postStatus: p?.status ?? null, ...findingsOf(p?.findings ?? []) };
      }),
    };
  }

  const version = row.version + 1;
  const now = ctx.deps.now();
  const out: PublishedEntryView[] = [];
  for (const e of def.entries) {
    const content = entryPost(e);
    const h = contentHash(content);
    const prior = byKey.get(e.key);
    const post = prior?.postId ? postById.get(prior.postId) : undefined;
    let postId: string;
    let postStatus: string;
    let found: { findings: number; blocking: boolean };
    let change: PublishedEntryView["change"];
    if (post && post.contentHash === h) {
      // Same content: same post, its approval (or its place in the queue) stands.
      postId = post.id;
      postStatus = post.status;
      found = findingsOf(post.findings);
      change = "kept";
      if (post.status === "draft") {
        const s = await submitPost({ ctx, id: post.id });
        postStatus = s.status;
      }
    } else {
      const created = await createPost({ ctx, input: { kind: content.kind, title: content.title, body: content.body, sampleData: content.sampleData } });
      const submitted = await submitPost({ ctx, id: created.id });
      postId = submitted.id;
      postStatus = submitted.status;
      found = { findings: submitted.findings.length, blocking: submitted.blocking };
      change = prior ? "changed" : "new";
    }
    const values = {
      when: entryWhen(e) as unknown as Record<string, unknown>,
      kind: e.kind,
      channel: e.channel,
      postId,
      ownerStaffId: e.channel === "single" ? (owners.get(e.owner ?? def.owner ?? "") ?? null) : null,
      conditions: (e.conditions ?? null) as Record<string, unknown> | null,
      service: e.service,
      calendarVersion: version,
      removedAt: null,
      updatedAt: now,
    };
    const [saved] = await tx
      .insert(calendarEntries)
      .values({ tenantId: ctx.tenantId, calendarId: row.id, key: e.key, ...values })
      .onConflictDoUpdate({ target: [calendarEntries.calendarId, calendarEntries.key], set: values })
      .returning({ id: calendarEntries.id });
    out.push({ key: e.key, entryId: saved!.id, change, postId, postStatus, ...found });
  }
  const keys = new Set(def.entries.map((e) => e.key));
  const gone = current.filter((e) => !keys.has(e.key));
  if (gone.length) {
    await tx
      .update(calendarEntries)
      .set({ removedAt: now, updatedAt: now })
      .where(and(eq(calendarEntries.tenantId, ctx.tenantId), inArray(calendarEntries.id, gone.map((g) => g.id)), isNull(calendarEntries.removedAt)));
    for (const g of gone) {
      const p = g.postId ? postById.get(g.postId) : undefined;
      out.push({ key: g.key, entryId: g.id, change: "removed", postId: g.postId, postStatus: p?.status ?? null, ...findingsOf(p?.findings ?? []) });
    }
  }
  await tx
    .update(calendars)
    .set({ version, status: "published", publishedAt: now, contentHash: hash, kind, name: def.name, updatedByStaffId: actorStaffId(ctx), updatedAt: now })
    .where(and(eq(calendars.tenantId, ctx.tenantId), eq(calendars.id, row.id)));
  const count = (c: PublishedEntryView["change"]) => out.filter((o) => o.change === c).length;
  await audit(tx, ctx, {
    action: "calendar.publish",
    entityType: "calendar",
    entityId: row.id,
    before: { version: row.version, status: row.status, contentHash: row.contentHash },
    after: { version, key: row.key, contentHash: hash, new: count("new"), changed: count("changed"), kept: count("kept"), removed: count("removed"), posts: out.filter((o) => o.change === "new" || o.change === "changed").map((o) => o.postId) },
  });
  return { calendarId: row.id, key: row.key, version, unchanged: false, entries: out };
}
