import { and, eq } from "drizzle-orm";
import { contacts } from "../../db/schema/index";
import { ownsOnly } from "../../domain/auth/permissions";
import { ForbiddenError, isUniqueViolation, ValidationError, zodIssues } from "../../errors";
import { audit, requirePermission, withTransaction, type Ctx } from "../context";
import { duplicateError } from "./create";
import { checkReferences, findByKeys, loadVisibleContact, phoneColumns } from "./internal";
import { auditSnapshot, toContactView, UpdateContactInput, type ContactView } from "./schemas";
import { markTagsDue } from "../tagging/tag-state";
import { recordReferralJoined } from "../conversions/referrals";

export { UpdateContactInput };

export async function updateContact({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }): Promise<ContactView> {
  requirePermission(ctx, "contacts:write");
  const parsed = UpdateContactInput.safeParse(input);
  if (!parsed.success) throw new ValidationError(zodIssues(parsed.error.issues));
  const v = parsed.data;
  if (ctx.actor.kind === "staff" && ownsOnly(ctx.actor.role) && v.ownerStaffId !== undefined && v.ownerStaffId !== ctx.actor.staffId) {
    throw new ForbiddenError("consultants cannot reassign contacts; ask an admin to transfer it");
  }
  const phone = v.phone !== undefined ? phoneColumns(ctx, v.phone) : undefined;
  return withTransaction(ctx, async (tx, ctx) => {
    const before = await loadVisibleContact(tx, ctx, id, true);
    await checkReferences(tx, ctx, { ownerStaffId: v.ownerStaffId, clinicId: v.clinicId, referrerContactId: v.referrerContactId });
    if (v.referrerContactId === id) throw new ValidationError([{ field: "referrerContactId", message: "a contact cannot refer itself" }]);
    const existing = await findByKeys(tx, ctx.tenantId, {
      phoneHashes: phone?.phoneHash ? [phone.phoneHash] : [],
      externalUserIds: v.externalUserId ? [v.externalUserId] : [],
    });
    const byPhone = phone?.phoneHash ? existing.byPhone.get(phone.phoneHash) : undefined;
    if (byPhone && byPhone.id !== id) throw duplicateError(byPhone.id, "phone");
    const byExt = v.externalUserId ? existing.byExternal.get(v.externalUserId) : undefined;
    if (byExt && byExt.id !== id) throw duplicateError(byExt.id, "externalUserId");

    const set: Partial<typeof contacts.$inferInsert> = { updatedAt: ctx.deps.now() };
    for (const k of ["name", "externalUserId", "unionId", "gender", "source", "sourceState", "referrerContactId", "ownerStaffId", "clinicId"] as const) {
      if (v[k] !== undefined) (set as Record<string, unknown>)[k] = v[k];
    }
    if (v.attributes !== undefined) set.attributes = { ...before.attributes, ...v.attributes };
    if (phone) Object.assign(set, phone);
    try {
      const [row] = await tx
        .update(contacts)
        .set(set)
        .where(and(eq(contacts.tenantId, ctx.tenantId), eq(contacts.id, id)))
        .returning();
      // Time-based tag rules may read the fields (source, gender, state): the nightly pass looks again.
      await markTagsDue(tx, ctx.tenantId, [id]);
      // A referrer given for the first time credits them (once per referred contact).
      if (!before.referrerContactId && row!.referrerContactId) await recordReferralJoined(ctx, [{ referredContactId: id, referrerContactId: row!.referrerContactId, at: ctx.deps.now() }]);
      await audit(tx, ctx, {
        action: "contact.update",
        entityType: "contact",
        entityId: id,
        before: auditSnapshot(before),
        after: auditSnapshot(row!),
      });
      return toContactView(row!, ctx.actor.kind === "staff" ? ctx.actor.role : "system", ctx.deps.pii);
    } catch (err) {
      if (isUniqueViolation(err)) throw duplicateError(null, "phone");
      throw err;
    }
  });
}
