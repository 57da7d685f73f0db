import { sql } from "drizzle-orm";
import { index, jsonb, pgTable, text, timestamp, uniqueIndex, uuid, type AnyPgColumn } from "drizzle-orm/pg-core";
import { clinics, staff, tenants } from "./tenancy";

export const contacts = pgTable(
  "contacts",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    /** WeCom external_userid. */
    externalUserId: text("external_user_id"),
    unionId: text("union_id"),
    name: text("name"),
    /** AES-256-GCM ciphertext of the normalised phone (v1:iv:tag:data, base64). */
    phoneEnc: text("phone_enc"),
    /** HMAC-SHA256 of the normalised phone, for lookup and dedupe without decrypting. */
    phoneHash: text("phone_hash"),
    /** The masked phone (138****1234), precomputed so roles without PII rights never need the key. */
    phoneMask: text("phone_mask"),
    gender: text("gender", { enum: ["male", "female", "unknown"] }),
    /** Where the contact came from: wecom, import, api, referral, livestream, ... */
    source: text("source").notNull().default("api"),
    /** Channel QR code state (渠道活码) or campaign code. */
    sourceState: text("source_state"),
    referrerContactId: uuid("referrer_contact_id").references((): AnyPgColumn => contacts.id),
    /** Consultant of record (one owner at most). */
    ownerStaffId: uuid("owner_staff_id").references(() => staff.id),
    clinicId: uuid("clinic_id").references(() => clinics.id),
    attributes: jsonb("attributes").$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
    lastEventAt: timestamp("last_event_at", { withTimezone: true }),
    /** Set when the contact deleted the consultant in WeCom or was removed. */
    deletedAt: timestamp("deleted_at", { withTimezone: true }),
    /** When the contact opted out of marketing (退订, deleted the consultant, staff); null: they may receive it. History in consents. */
    marketingOptOutAt: timestamp("marketing_opt_out_at", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("contacts_tenant_external_uq").on(t.tenantId, t.externalUserId),
    uniqueIndex("contacts_tenant_phone_uq").on(t.tenantId, t.phoneHash),
    // Cursor pagination walks (tenant, created_at desc, id desc).
    index("contacts_tenant_created_idx").on(t.tenantId, t.createdAt, t.id),
    index("contacts_tenant_owner_idx").on(t.tenantId, t.ownerStaffId),
    // Target of leads_contact_owner_fk: an open lead's owner must be its contact's owner.
    uniqueIndex("contacts_id_owner_uq").on(t.id, t.ownerStaffId),
    index("contacts_tenant_source_idx").on(t.tenantId, t.source),
    // The few deleted contacts, so segment counts exclude them with a probe instead of reading every contact row.
    index("contacts_deleted_idx").on(t.id).where(sql`deleted_at is not null`),
  ],
);
