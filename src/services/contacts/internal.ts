import { and, eq, inArray } from "drizzle-orm";
import type { DbOrTx } from "../../db/client";
import { clinics, contacts, staff } from "../../db/schema/index";
import { ownsOnly } from "../../domain/auth/permissions";
import { normalizePhone } from "../../domain/pii/phone";
import { NotFoundError, ValidationError, type FieldIssue } from "../../errors";
import { requirePii, type Ctx } from "../context";
import type { ContactRow } from "./schemas";

export interface PhoneColumns {
  phoneEnc: string | null;
  phoneHash: string | null;
  phoneMask: string | null;
}

/** Normalise, encrypt and hash a phone; throws a ValidationError naming `field`. */
export function phoneColumns(ctx: Ctx, phone: string | null | undefined, field = "phone"): PhoneColumns {
  if (phone == null) return { phoneEnc: null, phoneHash: null, phoneMask: null };
  const n = normalizePhone(phone);
  if (!n.ok) throw new ValidationError([{ field, message: n.reason }]);
  const pii = requirePii(ctx);
  return { phoneEnc: pii.encrypt(n.e164), phoneHash: pii.hash(n.e164), phoneMask: n.masked };
}

/** Load a contact the actor may see, or throw NotFound (also for other tenants and other consultants' contacts). */
export async function loadVisibleContact(db: DbOrTx, ctx: Ctx, id: string, forUpdate = false): Promise<ContactRow> {
  const conds = [eq(contacts.tenantId, ctx.tenantId), eq(contacts.id, id)];
  if (ctx.actor.kind === "staff" && ownsOnly(ctx.actor.role)) conds.push(eq(contacts.ownerStaffId, ctx.actor.staffId));
  const q = db.select().from(contacts).where(and(...conds)).limit(1);
  const [row] = forUpdate ? await q.for("update") : await q;
  if (!row) throw new NotFoundError("contact");
  return row;
}

/** Check that referenced staff, clinic and referrer belong to the tenant; collect issues naming the fields. */
export async function checkReferences(
  db: DbOrTx,
  ctx: Ctx,
  refs: { ownerStaffId?: string | null; clinicId?: string | null; referrerContactId?: string | null },
): Promise<void> {
  const issues: FieldIssue[] = [];
  if (refs.ownerStaffId) {
    const [s] = await db
      .select({ role: staff.role, active: staff.active })
      .from(staff)
      .where(and(eq(staff.tenantId, ctx.tenantId), eq(staff.id, refs.ownerStaffId)));
    if (!s) issues.push({ field: "ownerStaffId", message: "no such staff member" });
    else if (!s.active) issues.push({ field: "ownerStaffId", message: "staff member is not active" });
    else if (s.role !== "consultant" && s.role !== "admin")
      issues.push({ field: "ownerStaffId", message: "owner must be a consultant" });
  }
  if (refs.clinicId) {
    const [c] = await db
      .select({ id: clinics.id })
      .from(clinics)
      .where(and(eq(clinics.tenantId, ctx.tenantId), eq(clinics.id, refs.clinicId)));
    if (!c) issues.push({ field: "clinicId", message: "no such clinic" });
  }
  if (refs.referrerContactId) {
    const [c] = await db
      .select({ id: contacts.id })
      .from(contacts)
      .where(and(eq(contacts.tenantId, ctx.tenantId), eq(contacts.id, refs.referrerContactId)));
    if (!c) issues.push({ field: "referrerContactId", message: "no such contact" });
  }
  if (issues.length) throw new ValidationError(issues);
}

/** Existing contacts of the tenant with any of these phone hashes or external ids. */
export async function findByKeys(
  db: DbOrTx,
  tenantId: string,
  keys: { phoneHashes?: string[]; externalUserIds?: string[] },
): Promise<{ byPhone: Map<string, ContactRow>; byExternal: Map<string, ContactRow> }> {
  const byPhone = new Map<string, ContactRow>();
  const byExternal = new Map<string, ContactRow>();
  if (keys.phoneHashes?.length) {
    const rows = await db
      .select()
      .from(contacts)
      .where(and(eq(contacts.tenantId, tenantId), inArray(contacts.phoneHash, keys.phoneHashes)));
    for (const r of rows) if (r.phoneHash) byPhone.set(r.phoneHash, r);
  }
  if (keys.externalUserIds?.length) {
    const rows = await db
      .select()
      .from(contacts)
      .where(and(eq(contacts.tenantId, tenantId), inArray(contacts.externalUserId, keys.externalUserIds)));
    for (const r of rows) if (r.externalUserId) byExternal.set(r.externalUserId, r);
  }
  return { byPhone, byExternal };
}
