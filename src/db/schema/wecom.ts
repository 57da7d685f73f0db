import { sql } from "drizzle-orm";
import { index, integer, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import { tenants } from "./tenancy";

/** A tenant's WeCom app: secrets sealed with the server key, never returned by the API. */
export const wecomSettings = pgTable("wecom_settings", {
  tenantId: uuid("tenant_id").primaryKey().references(() => tenants.id),
  corpId: text("corp_id").notNull(),
  agentId: integer("agent_id").notNull(),
  secretEnc: text("secret_enc").notNull(),
  callbackTokenEnc: text("callback_token_enc").notNull(),
  aesKeyEnc: text("aes_key_enc").notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});

/**
 * The WeCom callback inbox: every verified callback is stored once (dedupe key per tenant) before
 * WeCom gets its 200, then applied by the wecom worker; processed_at marks that.
 */
export const wecomCallbacks = pgTable(
  "wecom_callbacks",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    dedupeKey: text("dedupe_key").notNull(),
    /** external_contact | external_chat | external_tag | message | other */
    kind: text("kind").notNull(),
    changeType: text("change_type"),
    /** The decrypted XML exactly as WeCom sent it. */
    plaintext: text("plaintext").notNull(),
    decoded: jsonb("decoded").$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
    receivedAt: timestamp("received_at", { withTimezone: true }).notNull().defaultNow(),
    /** How many times WeCom delivered it (retries of an unanswered callback). */
    deliveries: integer("deliveries").notNull().default(1),
    processedAt: timestamp("processed_at", { withTimezone: true }),
    attempts: integer("attempts").notNull().default(0),
    lastError: text("last_error"),
  },
  (t) => [
    uniqueIndex("wecom_callbacks_tenant_dedupe_uq").on(t.tenantId, t.dedupeKey),
    index("wecom_callbacks_unprocessed_idx").on(t.receivedAt).where(sql`processed_at is null`),
  ],
);
