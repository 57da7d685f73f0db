import { requirePermission, dbOf, type Ctx } from "../context";
import { loadVisibleContact } from "./internal";
import { toContactView, type ContactView } from "./schemas";

export async function getContact({ ctx, id }: { ctx: Ctx; id: string }): Promise<ContactView> {
  requirePermission(ctx, "contacts:read");
  const row = await loadVisibleContact(dbOf(ctx), ctx, id);
  return toContactView(row, ctx.actor.kind === "staff" ? ctx.actor.role : "system", ctx.deps.pii);
}
