import { and, asc, eq, gt, isNull, sql } from "drizzle-orm";
import { z } from "zod";
import { wecomGroupChats } from "../../db/schema/index";
import { NotFoundError, ValidationError, zodIssues } from "../../errors";
import { audit, dbOf, requirePermission, withTransaction, type Ctx } from "../context";

export interface GroupChatView {
  chatId: string;
  name: string | null;
  ownerUserId: string | null;
  customerCount: number;
  memberCount: number;
  tags: string[];
  dismissed: boolean;
  syncedAt: string;
}

const view = (r: typeof wecomGroupChats.$inferSelect): GroupChatView => ({
  chatId: r.chatId,
  name: r.name,
  ownerUserId: r.ownerUserId,
  customerCount: r.customerCount,
  memberCount: r.memberCount,
  tags: r.tags,
  dismissed: r.dismissedAt !== null,
  syncedAt: r.syncedAt.toISOString(),
});

export const ListGroupChatsInput = z.object({
  /** Only chats carrying this label. */
  tag: z.string().trim().min(1).max(64).optional(),
  /** Part of the chat's name. */
  q: z.string().trim().min(1).max(100).optional(),
  includeDismissed: z.enum(["true", "false"]).optional(),
  /** The last chatId of the previous page. */
  cursor: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

/** Customer group chats synced from WeCom, with Siyu's labels, by chat id (cursor paging). */
export async function listGroupChats({ ctx, input }: { ctx: Ctx; input?: unknown }): Promise<{ items: GroupChatView[]; nextCursor: string | null }> {
  requirePermission(ctx, "channels:manage");
  const p = ListGroupChatsInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const q = p.data;
  const rows = await dbOf(ctx)
    .select()
    .from(wecomGroupChats)
    .where(
      and(
        eq(wecomGroupChats.tenantId, ctx.tenantId),
        q.tag ? sql`${wecomGroupChats.tags} @> array[${q.tag}]::text[]` : undefined,
        q.q ? sql`${wecomGroupChats.name} ilike ${`%${q.q.replace(/[\\%_]/g, (m) => `\\${m}`)}%`}` : undefined,
        q.includeDismissed === "true" ? undefined : isNull(wecomGroupChats.dismissedAt),
        q.cursor ? gt(wecomGroupChats.chatId, q.cursor) : undefined,
      ),
    )
    .orderBy(asc(wecomGroupChats.chatId))
    .limit(q.limit + 1);
  const page = rows.slice(0, q.limit);
  return { items: page.map(view), nextCursor: rows.length > q.limit ? page[page.length - 1]!.chatId : null };
}

export const GroupChatTagsInput = z.object({ tags: z.array(z.string().trim().min(1).max(64)).max(20) }).strict();

/** Replace a chat's labels (calendars with `audience.groups.tags` reach the chats carrying any of them). */
export async function setGroupChatTags({ ctx, chatId, input }: { ctx: Ctx; chatId: string; input: unknown }): Promise<GroupChatView> {
  requirePermission(ctx, "channels:manage");
  const p = GroupChatTagsInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const tags = [...new Set(p.data.tags)];
  return withTransaction(ctx, async (tx, ctx) => {
    const where = and(eq(wecomGroupChats.tenantId, ctx.tenantId), eq(wecomGroupChats.chatId, chatId));
    const [before] = await tx.select().from(wecomGroupChats).where(where).for("update");
    if (!before) throw new NotFoundError("group chat");
    const [row] = await tx.update(wecomGroupChats).set({ tags }).where(where).returning();
    await audit(tx, ctx, { action: "group_chat.tags", entityType: "group_chat", entityId: chatId, before: { tags: before.tags }, after: { tags } });
    return view(row!);
  });
}
