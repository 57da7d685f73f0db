import { and, eq, isNull } from "drizzle-orm";
import { staff, wecomGroupChats } from "../../db/schema/index";
import { ownsOnly } from "../../domain/auth/permissions";
import { dbOf, requirePermission, type Ctx } from "../context";
import type { GroupChatView } from "./group-chats";
import { loadWecomApp } from "./settings";

/**
 * The customer group of the chat the sidebar is open in (getCurExternalChat), with Siyu's labels.
 * The chat id comes from the browser: a consultant sees the group only when they own it or, asked
 * of WeCom (groupchat/get), are a member; managers and admins see every group of the tenant. Null
 * when unknown (not synced yet, dismissed) or not theirs.
 */
export async function sidebarGroupChat({ ctx, chatId }: { ctx: Ctx; chatId: string }): Promise<GroupChatView | null> {
  requirePermission(ctx, "scripts:use");
  if (!chatId || chatId.length > 200) return null;
  const db = dbOf(ctx);
  const [row] = await db
    .select()
    .from(wecomGroupChats)
    .where(and(eq(wecomGroupChats.tenantId, ctx.tenantId), eq(wecomGroupChats.chatId, chatId), isNull(wecomGroupChats.dismissedAt)));
  if (!row) return null;
  if (ctx.actor.kind === "staff" && ownsOnly(ctx.actor.role)) {
    const [me] = await db.select({ userid: staff.wecomUserId }).from(staff).where(and(eq(staff.tenantId, ctx.tenantId), eq(staff.id, ctx.actor.staffId)));
    const userid = me?.userid?.toLowerCase();
    if (!userid) return null;
    if (row.ownerUserId?.toLowerCase() !== userid && !(await isMember(ctx, chatId, userid))) return null;
  }
  return {
    chatId: row.chatId,
    name: row.name,
    ownerUserId: row.ownerUserId,
    customerCount: row.customerCount,
    memberCount: row.memberCount,
    tags: row.tags,
    dismissed: false,
    syncedAt: row.syncedAt.toISOString(),
  };
}

/** Whether WeCom lists the staff member in the group now (members are not stored); false when WeCom cannot say. */
async function isMember(ctx: Ctx, chatId: string, userid: string): Promise<boolean> {
  const app = await loadWecomApp(ctx.deps, ctx.tenantId);
  if (!app) return false;
  try {
    const chat = await ctx.deps.wecomClient(app).groupChatGet(chatId);
    return chat.member_list.some((m) => m.type === 1 && m.userid.toLowerCase() === userid);
  } catch (err) {
    ctx.logger.warn({ chatId, err: (err as Error).message }, "could not ask WeCom who is in the group");
    return false;
  }
}
