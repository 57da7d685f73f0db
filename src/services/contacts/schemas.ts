import { z } from "zod";
import { contacts } from "../../db/schema/index";
import type { Role } from "../../domain/auth/permissions";
import { seesPii } from "../../domain/auth/permissions";
import type { PiiCipher } from "../../domain/pii/crypto";

const attributes = z.record(z.string().max(64), z.unknown()).refine((v) => JSON.stringify(v).length <= 16_384, {
  message: "must be at most 16 KiB as JSON",
});

/** Fields a caller may set on a contact. */
export const ContactFields = z.object({
  name: z.string().trim().min(1).max(100).optional(),
  phone: z.string().trim().min(3).max(32).optional(),
  externalUserId: z.string().trim().min(1).max(128).optional(),
  unionId: z.string().trim().min(1).max(128).optional(),
  gender: z.enum(["male", "female", "unknown"]).optional(),
  source: z.string().trim().min(1).max(64).optional(),
  sourceState: z.string().trim().min(1).max(200).optional(),
  referrerContactId: z.uuid().optional(),
  ownerStaffId: z.uuid().optional(),
  clinicId: z.uuid().optional(),
  attributes: attributes.optional(),
});

export const CreateContactInput = ContactFields.refine(
  (v) => v.name !== undefined || v.phone !== undefined || v.externalUserId !== undefined,
  { message: "give at least one of name, phone or externalUserId", path: ["name"] },
);
export type CreateContactInput = z.infer<typeof CreateContactInput>;

/** PATCH: every field optional; null clears it. */
export const UpdateContactInput = z.object({
  name: ContactFields.shape.name.unwrap().nullable().optional(),
  phone: ContactFields.shape.phone.unwrap().nullable().optional(),
  externalUserId: ContactFields.shape.externalUserId.unwrap().nullable().optional(),
  unionId: ContactFields.shape.unionId.unwrap().nullable().optional(),
  gender: ContactFields.shape.gender.unwrap().nullable().optional(),
  source: ContactFields.shape.source.unwrap().optional(),
  sourceState: ContactFields.shape.sourceState.unwrap().nullable().optional(),
  referrerContactId: z.uuid().nullable().optional(),
  ownerStaffId: z.uuid().nullable().optional(),
  clinicId: z.uuid().nullable().optional(),
  attributes: attributes.optional(),
});
export type UpdateContactInput = z.infer<typeof UpdateContactInput>;

export const ContactView = z.object({
  id: z.uuid(),
  name: z.string().nullable(),
  /** In clear for roles with PII rights (admin, consultant); masked (138****1234) for the others. */
  phone: z.string().nullable(),
  phoneMasked: z.boolean(),
  externalUserId: z.string().nullable(),
  unionId: z.string().nullable(),
  gender: z.enum(["male", "female", "unknown"]).nullable(),
  source: z.string(),
  sourceState: z.string().nullable(),
  referrerContactId: z.string().nullable(),
  ownerStaffId: z.string().nullable(),
  clinicId: z.string().nullable(),
  attributes: z.record(z.string(), z.unknown()),
  lastEventAt: z.string().nullable(),
  deletedAt: z.string().nullable(),
  /** When the contact opted out of marketing (退订, deleted the consultant, staff); null: marketing allowed. History: GET /v1/contacts/{id}/consents. */
  marketingOptOutAt: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type ContactView = z.infer<typeof ContactView>;

export type ContactRow = typeof contacts.$inferSelect;

export function toContactView(row: ContactRow, role: Role | "system", pii: PiiCipher | undefined): ContactView {
  const clear = (role === "system" || seesPii(role)) && pii && row.phoneEnc;
  return {
    id: row.id,
    name: row.name,
    phone: clear ? pii.decrypt(row.phoneEnc!) : row.phoneMask,
    phoneMasked: !clear && row.phoneMask !== null,
    externalUserId: row.externalUserId,
    unionId: row.unionId,
    gender: row.gender,
    source: row.source,
    sourceState: row.sourceState,
    referrerContactId: row.referrerContactId,
    ownerStaffId: row.ownerStaffId,
    clinicId: row.clinicId,
    attributes: row.attributes,
    lastEventAt: row.lastEventAt?.toISOString() ?? null,
    deletedAt: row.deletedAt?.toISOString() ?? null,
    marketingOptOutAt: row.marketingOptOutAt?.toISOString() ?? null,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** What the audit log keeps of a contact: never the phone in clear, never the name. */
export function auditSnapshot(row: Partial<ContactRow>): Record<string, unknown> {
  return {
    phone: row.phoneMask ?? null,
    externalUserId: row.externalUserId ?? null,
    gender: row.gender ?? null,
    source: row.source ?? null,
    sourceState: row.sourceState ?? null,
    referrerContactId: row.referrerContactId ?? null,
    ownerStaffId: row.ownerStaffId ?? null,
    clinicId: row.clinicId ?? null,
    nameSet: row.name != null,
  };
}
