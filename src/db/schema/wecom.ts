import { sql } from "drizzle-orm";
import { index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import { contacts } from "./contacts";
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

/** Customer group chats (客户群) as last read from WeCom. */
export const wecomGroupChats = pgTable(
  "wecom_group_chats",
  {
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    chatId: text("chat_id").notNull(),
    name: text("name"),
    ownerUserId: text("owner_user_id"),
    notice: text("notice"),
    /** 0 normal, 1 owner resigned, 2 inheriting, 3 inherited */
    status: integer("status").notNull().default(0),
    memberVersion: text("member_version"),
    memberCount: integer("member_count").notNull().default(0),
    customerCount: integer("customer_count").notNull().default(0),
    dismissedAt: timestamp("dismissed_at", { withTimezone: true }),
    syncedAt: timestamp("synced_at", { withTimezone: true }).notNull().defaultNow(),
    /** Siyu's labels for the chat (e.g. 祛痘交流群): calendars address group chats by them. Sync never touches them. */
    tags: text("tags").array().notNull().default(sql`'{}'::text[]`),
  },
  (t) => [uniqueIndex("wecom_group_chats_tenant_chat_uq").on(t.tenantId, t.chatId), index("wecom_group_chats_tags_idx").using("gin", t.tags)],
);

/** One run of `siyu wecom sync`: where it is, so a stopped run resumes instead of starting over. */
export const wecomSyncRuns = pgTable(
  "wecom_sync_runs",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    /** queued | running | done | failed */
    status: text("status").notNull().default("queued"),
    /** tags | contacts | groups | done */
    phase: text("phase").notNull().default("tags"),
    /** Resume point: { batch, cursor } for contacts, { cursor } for groups. */
    position: jsonb("position").$type<{ batch?: number; cursor?: string }>().notNull().default(sql`'{}'::jsonb`),
    counts: jsonb("counts").$type<Record<string, number>>().notNull().default(sql`'{}'::jsonb`),
    totalBatches: integer("total_batches").notNull().default(0),
    error: text("error"),
    /** A worker holds the run until then (renewed on every saved page): two workers never run it at once. */
    lockedUntil: timestamp("locked_until", { withTimezone: true }),
    startedAt: timestamp("started_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
    finishedAt: timestamp("finished_at", { withTimezone: true }),
  },
  (t) => [index("wecom_sync_runs_tenant_idx").on(t.tenantId, t.startedAt)],
);

/**
 * Channel QR codes (渠道活码, WeCom contact ways): each has a `state` that WeCom echoes in the
 * add event, which is how a new contact is attributed to its channel. A referral code is a
 * contact's personal channel (转介绍).
 */
export const wecomChannels = pgTable(
  "wecom_channels",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    /** channel | referral */
    kind: text("kind").notNull(),
    name: text("name").notNull(),
    state: text("state").notNull(),
    configId: text("config_id").notNull(),
    qrCode: text("qr_code"),
    staffUserIds: text("staff_user_ids").array().notNull(),
    /** The referrer, for referral codes. */
    contactId: uuid("contact_id"),
    /** A welcome_message post sent (through the compliance gate) to every contact the code brings. */
    welcomePostId: uuid("welcome_post_id"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("wecom_channels_tenant_state_uq").on(t.tenantId, t.state), index("wecom_channels_tenant_contact_idx").on(t.tenantId, t.contactId)],
);

/**
 * Which consultants a contact is a WeCom friend of (one row per relation). A contact may follow
 * several; losing one is churn for that consultant, losing the last one is churn for the clinic.
 */
export const contactFollows = pgTable(
  "contact_follows",
  {
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    contactId: uuid("contact_id").notNull().references(() => contacts.id),
    /** WeCom userid, lower-cased (WeCom treats them case-insensitively). */
    userId: text("user_id").notNull(),
    state: text("state"),
    addWay: integer("add_way"),
    addedAt: timestamp("added_at", { withTimezone: true }).notNull(),
    removedAt: timestamp("removed_at", { withTimezone: true }),
    /** staff: the consultant removed the patient; contact: the patient deleted or blocked the consultant. */
    removedBy: text("removed_by"),
  },
  (t) => [primaryKey({ columns: [t.contactId, t.userId] }), index("contact_follows_tenant_user_idx").on(t.tenantId, t.userId)],
);
