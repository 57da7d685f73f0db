import { and, asc, desc, eq, inArray, isNotNull, isNull, lt, or, sql } from "drizzle-orm";
import { contacts, contactTags, staff, tagGroups, tagHistory, tags, wecomGroupChats, wecomSyncRuns } from "../../db/schema/index";
import { AppError, NotFoundError } from "../../errors";
import { jobId } from "../../queue/catalog";
import type { WecomClient } from "../../wecom/api/client";
import type { BatchContactEntry } from "../../wecom/api/types";
import { audit, dbOf, requirePermission, systemCtx, withTransaction, type Ctx, type ServiceDeps } from "../context";
import { upsertFollow } from "./follows";
import { loadWecomApp } from "./settings";
import { markTagsDue } from "../tagging/tag-state";

export type SyncRun = typeof wecomSyncRuns.$inferSelect;

export interface SyncRunView {
  id: string;
  status: string;
  phase: string;
  batch: number;
  totalBatches: number;
  counts: Record<string, number>;
  error: string | null;
  startedAt: string;
  finishedAt: string | null;
}

const view = (r: SyncRun): SyncRunView => ({
  id: r.id,
  status: r.status,
  phase: r.phase,
  batch: r.position.batch ?? 0,
  totalBatches: r.totalBatches,
  counts: r.counts,
  error: r.error,
  startedAt: r.startedAt.toISOString(),
  finishedAt: r.finishedAt?.toISOString() ?? null,
});

const GENDER: Record<number, "male" | "female" | "unknown"> = { 0: "unknown", 1: "male", 2: "female" };
/** Local tag groups that Siyu's rules own; their tags are pushed to WeCom. Others mirror WeCom. */
const isWecomOrigin = (key: string) => key.startsWith("wecom_");

/** Start a sync (or return the one already queued or running); the wecom worker does the work. */
export async function startWecomSync({ ctx, restart = false }: { ctx: Ctx; restart?: boolean }): Promise<SyncRunView> {
  requirePermission(ctx, "wecom:manage");
  if (!(await loadWecomApp(ctx.deps, ctx.tenantId))) throw new AppError("PRECONDITION_FAILED", "set up WeCom first (PUT /v1/wecom/settings)");
  const run = await withTransaction(ctx, async (tx, ctx) => {
    const [open] = await tx
      .select()
      .from(wecomSyncRuns)
      .where(and(eq(wecomSyncRuns.tenantId, ctx.tenantId), inArray(wecomSyncRuns.status, ["queued", "running", "failed"])))
      .orderBy(desc(wecomSyncRuns.startedAt))
      .limit(1)
      .for("update");
    if (open && !restart) {
      // A failed or interrupted run resumes where it stopped.
      const [r] = await tx.update(wecomSyncRuns).set({ status: open.status === "running" ? "running" : "queued", error: null, updatedAt: ctx.deps.now() }).where(eq(wecomSyncRuns.id, open.id)).returning();
      return r!;
    }
    if (open) await tx.update(wecomSyncRuns).set({ status: "failed", error: "superseded by a restart", finishedAt: ctx.deps.now() }).where(eq(wecomSyncRuns.id, open.id));
    const [r] = await tx.insert(wecomSyncRuns).values({ tenantId: ctx.tenantId }).returning();
    await audit(tx, ctx, { action: "wecom.sync.start", entityType: "wecom_sync_run", entityId: r!.id });
    return r!;
  });
  await ctx.deps.producer.enqueue("wecom-sync", { tenantId: ctx.tenantId, runId: run.id }, { jobId: jobId("wsync", run.id, String(run.updatedAt.getTime())) });
  return view(run);
}

export async function getWecomSyncStatus({ ctx, runId }: { ctx: Ctx; runId?: string }): Promise<SyncRunView> {
  requirePermission(ctx, "wecom:manage");
  const conds = [eq(wecomSyncRuns.tenantId, ctx.tenantId)];
  if (runId) conds.push(eq(wecomSyncRuns.id, runId));
  const [r] = await dbOf(ctx).select().from(wecomSyncRuns).where(and(...conds)).orderBy(desc(wecomSyncRuns.startedAt)).limit(1);
  if (!r) throw new NotFoundError("sync run");
  return view(r);
}

/**
 * Run a sync from where it stands: tags (both ways), every follow user's customers (cursor paging,
 * position saved after each page), then every customer group. Safe to run again: every write is an upsert.
 */
export async function runWecomSync({ deps, tenantId, runId }: { deps: ServiceDeps; tenantId: string; runId: string }): Promise<SyncRunView> {
  const [run] = await deps.db.select().from(wecomSyncRuns).where(and(eq(wecomSyncRuns.tenantId, tenantId), eq(wecomSyncRuns.id, runId)));
  if (!run) throw new NotFoundError("sync run");
  if (run.status === "done") return view(run);
  const app = await loadWecomApp(deps, tenantId);
  if (!app) throw new AppError("PRECONDITION_FAILED", "WeCom is not set up for this tenant");
  const client = deps.wecomClient(app);
  const ctx = systemCtx(deps, tenantId, "wecom-sync");
  const bump = (k: string, n = 1) => (counts[k] = (counts[k] ?? 0) + n);
  const lease = () => new Date(deps.now().getTime() + 5 * 60_000);
  // Claim the run: only one worker at a time (a second job for the same run finds it held and leaves).
  const [claimed] = await deps.db
    .update(wecomSyncRuns)
    .set({ status: "running", error: null, lockedUntil: lease(), updatedAt: deps.now() })
    .where(and(eq(wecomSyncRuns.id, runId), sql`${wecomSyncRuns.status} <> 'done'`, or(isNull(wecomSyncRuns.lockedUntil), lt(wecomSyncRuns.lockedUntil, deps.now()))))
    .returning();
  if (!claimed) return view(run);
  const counts: Record<string, number> = { ...claimed.counts };
  const save = async (patch: Partial<typeof wecomSyncRuns.$inferInsert>) => {
    const [r] = await deps.db.update(wecomSyncRuns).set({ ...patch, counts, lockedUntil: patch.status === "done" || patch.status === "failed" ? null : lease(), updatedAt: deps.now() }).where(eq(wecomSyncRuns.id, runId)).returning();
    return r!;
  };
  let current = claimed;
  try {
    if (current.phase === "tags") {
      const t = await reconcileTags(deps, tenantId, client);
      bump("tagsCreatedInWecom", t.createdRemote);
      bump("tagsImported", t.importedLocal);
      current = await save({ phase: "contacts", position: { batch: 0, cursor: "" } });
    }
    if (current.phase === "contacts") {
      const userIds = (await deps.db.select({ u: staff.wecomUserId }).from(staff).where(and(eq(staff.tenantId, tenantId), eq(staff.active, true), isNotNull(staff.wecomUserId))).orderBy(asc(staff.wecomUserId))).map((r) => r.u!);
      const batches: string[][] = [];
      for (let i = 0; i < userIds.length; i += 100) batches.push(userIds.slice(i, i + 100));
      current = await save({ totalBatches: batches.length });
      for (let b = current.position.batch ?? 0; b < batches.length; b++) {
        let cursor = b === (current.position.batch ?? 0) ? (current.position.cursor ?? "") : "";
        do {
          const page = await client.batchGetByUser({ userIdList: batches[b]!, cursor, limit: 100 });
          await applyContactPage(ctx, client, page.items, bump);
          cursor = page.nextCursor;
          current = await save({ position: { batch: cursor ? b : b + 1, cursor } });
        } while (cursor);
      }
      current = await save({ phase: "groups", position: { cursor: "" } });
    }
    if (current.phase === "groups") {
      let cursor = current.position.cursor ?? "";
      do {
        const page = await client.groupChatList({ cursor, limit: 1000 });
        for (const item of page.items) {
          const chat = await client.groupChatGet(item.chat_id);
          const row = {
            tenantId,
            chatId: chat.chat_id,
            name: chat.name || null,
            ownerUserId: chat.owner,
            notice: chat.notice ?? null,
            status: item.status,
            memberVersion: chat.member_version ?? null,
            memberCount: chat.member_list.length,
            customerCount: chat.member_list.filter((m) => m.type === 2).length,
            syncedAt: deps.now(),
          };
          await deps.db.insert(wecomGroupChats).values(row).onConflictDoUpdate({ target: [wecomGroupChats.tenantId, wecomGroupChats.chatId], set: row });
          bump("groupChats");
        }
        cursor = page.nextCursor;
        current = await save({ position: { cursor } });
      } while (cursor);
      current = await save({ phase: "done", status: "done", finishedAt: deps.now(), position: {} });
    }
    return view(current);
  } catch (err) {
    // Keep the position: the next `siyu wecom sync` resumes from the last saved page.
    await save({ status: "failed", error: (err as Error).message.slice(0, 500) });
    throw err;
  }
}

/** Upsert the page's customers; pull WeCom-origin tags; push Siyu's tags to WeCom with mark_tag (one call per relation). */
async function applyContactPage(ctx: Ctx, client: WecomClient, items: BatchContactEntry[], bump: (k: string, n?: number) => void): Promise<void> {
  if (items.length === 0) return;
  const marks: { userId: string; externalUserId: string; addTag: string[]; removeTag: string[] }[] = [];
  await withTransaction(ctx, async (tx, ctx) => {
    const staffRows = await tx.select({ id: staff.id, u: staff.wecomUserId }).from(staff).where(and(eq(staff.tenantId, ctx.tenantId), isNotNull(staff.wecomUserId)));
    const staffBy = new Map(staffRows.map((s) => [s.u!.toLowerCase(), s.id]));
    const tagRows = await tx
      .select({ id: tags.id, wecomTagId: tags.wecomTagId, key: tagGroups.key })
      .from(tags)
      .innerJoin(tagGroups, eq(tagGroups.id, tags.groupId))
      .where(and(eq(tags.tenantId, ctx.tenantId), isNotNull(tags.wecomTagId)));
    const tagByRemote = new Map(tagRows.map((t) => [t.wecomTagId!, t]));
    const exts = [...new Set(items.map((i) => i.external_contact.external_userid))];
    const existing = await tx.select().from(contacts).where(and(eq(contacts.tenantId, ctx.tenantId), inArray(contacts.externalUserId, exts)));
    const byExt = new Map(existing.map((c) => [c.externalUserId!, c]));
    for (const item of items) {
      const ec = item.external_contact;
      const owner = staffBy.get(item.follow_info.userid.toLowerCase()) ?? null;
      let c = byExt.get(ec.external_userid);
      if (!c) {
        const [row] = await tx
          .insert(contacts)
          .values({ tenantId: ctx.tenantId, externalUserId: ec.external_userid, name: ec.name || null, unionId: ec.unionid ?? null, gender: ec.gender !== undefined ? (GENDER[ec.gender] ?? "unknown") : null, source: "wecom", sourceState: item.follow_info.state || null, ownerStaffId: owner })
          .onConflictDoNothing()
          .returning();
        if (!row) continue;
        c = row;
        byExt.set(ec.external_userid, row);
        bump("contactsCreated");
        await audit(tx, ctx, { action: "contact.create", entityType: "contact", entityId: row.id, after: { via: "wecom-sync" } });
      } else {
        const set: Partial<typeof contacts.$inferInsert> = {};
        if (ec.name && ec.name !== c.name) set.name = ec.name;
        if (ec.unionid && ec.unionid !== c.unionId) set.unionId = ec.unionid;
        if (!c.ownerStaffId && owner) set.ownerStaffId = owner;
        if (!c.sourceState && item.follow_info.state) set.sourceState = item.follow_info.state;
        if (Object.keys(set).length) {
          const [row] = await tx.update(contacts).set({ ...set, updatedAt: ctx.deps.now() }).where(eq(contacts.id, c.id)).returning();
          await markTagsDue(tx, ctx.tenantId, [c.id]);
          c = row!;
          byExt.set(ec.external_userid, row!);
          bump("contactsUpdated");
        }
      }
      bump("relations");
      await upsertFollow(tx, ctx.tenantId, c.id, item.follow_info.userid, new Date(item.follow_info.createtime * 1000), item.follow_info.state || null, item.follow_info.add_way);
      const remote = new Set(item.follow_info.tag_id ?? []);
      const local = await tx
        .select({ tagId: contactTags.tagId, wecomTagId: tags.wecomTagId, key: tagGroups.key })
        .from(contactTags)
        .innerJoin(tags, eq(tags.id, contactTags.tagId))
        .innerJoin(tagGroups, eq(tagGroups.id, tags.groupId))
        .where(and(eq(contactTags.tenantId, ctx.tenantId), eq(contactTags.contactId, c.id)));
      const localIds = new Set(local.map((l) => l.tagId));
      // Pull: WeCom-origin tags present in WeCom and missing here.
      for (const rid of remote) {
        const t = tagByRemote.get(rid);
        if (!t || !isWecomOrigin(t.key) || localIds.has(t.id)) continue;
        await tx.insert(contactTags).values({ tenantId: ctx.tenantId, contactId: c.id, tagId: t.id, source: "wecom" }).onConflictDoNothing();
        await tx.insert(tagHistory).values({ tenantId: ctx.tenantId, contactId: c.id, tagId: t.id, action: "add", source: "wecom" });
        localIds.add(t.id);
        bump("tagsPulled");
        await markTagsDue(tx, ctx.tenantId, [c.id]);
      }
      // Push: Siyu's tags are the truth for its own groups.
      const addTag = local.filter((l) => l.wecomTagId && !isWecomOrigin(l.key) && !remote.has(l.wecomTagId)).map((l) => l.wecomTagId!);
      const removeTag = [...remote].filter((rid) => {
        const t = tagByRemote.get(rid);
        return t && !isWecomOrigin(t.key) && !localIds.has(t.id);
      });
      if (addTag.length || removeTag.length) marks.push({ userId: item.follow_info.userid, externalUserId: ec.external_userid, addTag, removeTag });
    }
  });
  for (const m of marks) {
    await client.markTag(m);
    bump("tagsPushed", m.addTag.length + m.removeTag.length);
  }
}

/**
 * Tags both ways: Siyu's groups (visit, spending, need, engagement …) are created in WeCom when
 * missing and linked by id; groups made in WeCom's admin console are mirrored locally as `wecom_…`.
 * Also run when WeCom reports a tag change.
 */
export async function reconcileTags(deps: ServiceDeps, tenantId: string, client: WecomClient): Promise<{ createdRemote: number; importedLocal: number }> {
  const remote = await client.getCorpTagList();
  const out = { createdRemote: 0, importedLocal: 0 };
  const groups = await deps.db.select().from(tagGroups).where(eq(tagGroups.tenantId, tenantId));
  const localTags = await deps.db.select().from(tags).where(eq(tags.tenantId, tenantId));
  const matchedRemote = new Set<string>();
  for (const g of groups.filter((x) => !isWecomOrigin(x.key))) {
    const mine = localTags.filter((t) => t.groupId === g.id);
    let rg = remote.find((r) => r.group_id === g.wecomGroupId) ?? remote.find((r) => r.group_name === g.name);
    const missing = mine.filter((t) => !rg?.tag.some((rt) => rt.id === t.wecomTagId || rt.name === t.name));
    if (missing.length) {
      const created = await client.addCorpTag({ ...(rg ? { groupId: rg.group_id } : { groupName: g.name }), tags: missing.map((t) => ({ name: t.name })) });
      out.createdRemote += missing.length;
      rg = rg ? { ...rg, tag: [...rg.tag, ...created.tag] } : created;
    }
    if (!rg) continue;
    matchedRemote.add(rg.group_id);
    await deps.db.update(tagGroups).set({ wecomGroupId: rg.group_id }).where(eq(tagGroups.id, g.id));
    for (const t of mine) {
      const rt = rg.tag.find((x) => x.id === t.wecomTagId) ?? rg.tag.find((x) => x.name === t.name);
      if (rt && rt.id !== t.wecomTagId) await deps.db.update(tags).set({ wecomTagId: rt.id }).where(eq(tags.id, t.id));
    }
  }
  for (const rg of remote.filter((r) => !matchedRemote.has(r.group_id))) {
    const key = `wecom_${rg.group_id}`.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64);
    const [g] = await deps.db
      .insert(tagGroups)
      .values({ tenantId, key, name: rg.group_name, exclusive: false, wecomGroupId: rg.group_id })
      .onConflictDoUpdate({ target: [tagGroups.tenantId, tagGroups.key], set: { name: rg.group_name, wecomGroupId: rg.group_id } })
      .returning();
    for (const rt of rg.tag) {
      const existing = localTags.find((t) => t.wecomTagId === rt.id);
      if (existing) {
        if (existing.name !== rt.name) await deps.db.update(tags).set({ name: rt.name }).where(eq(tags.id, existing.id));
        continue;
      }
      await deps.db.insert(tags).values({ tenantId, groupId: g!.id, name: rt.name, sortOrder: rt.order, wecomTagId: rt.id }).onConflictDoUpdate({ target: [tags.tenantId, tags.groupId, tags.name], set: { wecomTagId: rt.id } });
      out.importedLocal++;
    }
  }
  return out;
}
