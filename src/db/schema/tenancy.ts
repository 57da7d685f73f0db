import { sql } from "drizzle-orm";
import { boolean, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";

import { ROLES } from "../../domain/auth/permissions";

/** A clinic group: one WeCom corp. */
export const tenants = pgTable("tenants", {
  id: uuid("id").primaryKey().defaultRandom(),
  slug: text("slug").notNull().unique(),
  name: text("name").notNull(),
  timezone: text("timezone").notNull().default("Asia/Shanghai"),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
});

export const clinics = pgTable(
  "clinics",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    name: text("name").notNull(),
    city: text("city"),
    address: text("address"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("clinics_tenant_name_uq").on(t.tenantId, t.name)],
);

export const staff = pgTable(
  "staff",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    clinicId: uuid("clinic_id").references(() => clinics.id),
    name: text("name").notNull(),
    /** Sign-in name; unique per tenant, stored lower-case. */
    email: text("email").notNull(),
    role: text("role", { enum: ROLES }).notNull(),
    /** WeCom userid (case-insensitive in WeCom; stored as given). */
    wecomUserId: text("wecom_user_id"),
    /** scrypt$N$r$p$salt$hash; null = no console sign-in. */
    passwordHash: text("password_hash"),
    /** Need types this consultant handles (skill match). */
    skills: text("skills").array().notNull().default(sql`'{}'::text[]`),
    /** Open leads this consultant can hold. */
    capacity: integer("capacity").notNull().default(50),
    /** Working hours per weekday, e.g. {"mon":["09:00","18:00"]}. */
    shift: jsonb("shift").$type<Record<string, [string, string]>>(),
    active: boolean("active").notNull().default(true),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("staff_tenant_email_uq").on(t.tenantId, t.email),
    uniqueIndex("staff_tenant_wecom_uq").on(t.tenantId, t.wecomUserId),
  ],
);

export const apiTokens = pgTable(
  "api_tokens",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    staffId: uuid("staff_id").notNull().references(() => staff.id),
    name: text("name").notNull(),
    /** First characters of the token, shown in lists so people can tell tokens apart. */
    prefix: text("prefix").notNull(),
    /** SHA-256 of the whole token; the token itself is shown once and never stored. */
    tokenHash: text("token_hash").notNull().unique(),
    lastUsedAt: timestamp("last_used_at", { withTimezone: true }),
    expiresAt: timestamp("expires_at", { withTimezone: true }),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("api_tokens_tenant_staff_idx").on(t.tenantId, t.staffId)],
);

export const sessions = pgTable(
  "sessions",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    staffId: uuid("staff_id").notNull().references(() => staff.id),
    /** SHA-256 of the cookie value. */
    tokenHash: text("token_hash").notNull().unique(),
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
    userAgent: text("user_agent"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("sessions_staff_idx").on(t.staffId)],
);
