import { contacts } from "../../db/schema/index";
import { ownsOnly } from "../../domain/auth/permissions";
import { ConflictError, ForbiddenError, isUniqueViolation, ValidationError, zodIssues } from "../../errors";
import { audit, requirePermission, withTransaction, type Ctx } from "../context";
import { checkReferences, findByKeys, phoneColumns } from "./internal";
import { recordReferralJoined } from "../conversions/referrals";
import { auditSnapshot, CreateContactInput, toContactView, type ContactView } from "./schemas";

export { CreateContactInput };

export async function createContact({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<ContactView> {
  requirePermission(ctx, "contacts:write");
  const parsed = CreateContactInput.safeParse(input);
  if (!parsed.success) throw new ValidationError(zodIssues(parsed.error.issues));
  const v = parsed.data;
  let ownerStaffId = v.ownerStaffId ?? null;
  if (ctx.actor.kind === "staff" && ownsOnly(ctx.actor.role)) {
    // A consultant's new contact is theirs; they cannot hand it to someone else here.
    if (ownerStaffId && ownerStaffId !== ctx.actor.staffId) {
      throw new ForbiddenError("consultants can only create contacts they own");
    }
    ownerStaffId = ctx.actor.staffId;
  }
  const phone = phoneColumns(ctx, v.phone);
  return withTransaction(ctx, async (tx, ctx) => {
    await checkReferences(tx, ctx, { ownerStaffId, clinicId: v.clinicId, referrerContactId: v.referrerContactId });
    const existing = await findByKeys(tx, ctx.tenantId, {
      phoneHashes: phone.phoneHash ? [phone.phoneHash] : [],
      externalUserIds: v.externalUserId ? [v.externalUserId] : [],
    });
    const dupe = (phone.phoneHash && existing.byPhone.get(phone.phoneHash)) || (v.externalUserId && existing.byExternal.get(v.externalUserId));
    if (dupe) throw duplicateError(dupe.id, phone.phoneHash && existing.byPhone.has(phone.phoneHash) ? "phone" : "externalUserId");
    try {
      const [row] = await tx
        .insert(contacts)
        .values({
          tenantId: ctx.tenantId,
          name: v.name ?? null,
          ...phone,
          externalUserId: v.externalUserId ?? null,
          unionId: v.unionId ?? null,
          gender: v.gender ?? null,
          source: v.source ?? "api",
          sourceState: v.sourceState ?? null,
          referrerContactId: v.referrerContactId ?? null,
          ownerStaffId,
          clinicId: v.clinicId ?? null,
          attributes: v.attributes ?? {},
        })
        .returning();
      await audit(tx, ctx, { action: "contact.create", entityType: "contact", entityId: row!.id, after: auditSnapshot(row!) });
      // 转介绍: the referrer is credited with a referral_joined event (once per referred contact).
      if (row!.referrerContactId) await recordReferralJoined(ctx, [{ referredContactId: row!.id, referrerContactId: row!.referrerContactId, at: ctx.deps.now() }]);
      return toContactView(row!, ctx.actor.kind === "staff" ? ctx.actor.role : "system", ctx.deps.pii);
    } catch (err) {
      if (isUniqueViolation(err)) throw duplicateError(null, "phone");
      throw err;
    }
  });
}

export function duplicateError(existingId: string | null, field: "phone" | "externalUserId"): ConflictError {
  const e = new ConflictError(
    `a contact with this ${field} already exists${existingId ? ` (${existingId})` : ""}`,
    [{ field, message: "already used by another contact" }],
  );
  return e;
}
