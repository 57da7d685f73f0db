import { and, eq, isNull } from "drizzle-orm";
import { contacts } from "../../db/schema/index";
import { ownsOnly } from "../../domain/auth/permissions";
import { dbOf, requirePermission, type Ctx } from "../context";
import { toContactView, type ContactView } from "./schemas";

/**
 * The contact behind a WeCom external_userid (the chat sidebar's getCurExternalContact), when the
 * caller may see it: consultants only their own, deleted contacts never. Null otherwise: the id
 * comes from the browser, so another consultant's customer reads exactly like an unknown one.
 */
export async function contactByExternalUserId({ ctx, externalUserId }: { ctx: Ctx; externalUserId: string }): Promise<ContactView | null> {
  requirePermission(ctx, "contacts:read");
  if (!externalUserId || externalUserId.length > 128) return null;
  const conds = [eq(contacts.tenantId, ctx.tenantId), eq(contacts.externalUserId, externalUserId), isNull(contacts.deletedAt)];
  if (ctx.actor.kind === "staff" && ownsOnly(ctx.actor.role)) conds.push(eq(contacts.ownerStaffId, ctx.actor.staffId));
  const [row] = await dbOf(ctx).select().from(contacts).where(and(...conds)).limit(1);
  return row ? toContactView(row, ctx.actor.kind === "staff" ? ctx.actor.role : "system", ctx.deps.pii) : null;
}
