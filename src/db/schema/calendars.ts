import { sql } from "drizzle-orm";
import { boolean, date, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import { contacts } from "./contacts";
import { posts } from "./posts";
import { staff, tenants } from "./tenancy";

/**
 * A content calendar: a file of content-calendars/ (source `file`, keyed by its file name) or one
 * made through the API (source `api`). `definition` is the validated calendar (domain/calendars);
 * each publish bumps `version`. `kind`: dated (entries at dates or weekdays) or relative (day N
 * after a contact's enrollment).
 */
export const calendars = pgTable(
  "calendars",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    /** Stable key: the file name without .yaml, or given through the API. */
    key: text("key").notNull(),
    name: text("name").notNull(),
    source: text("source", { enum: ["file", "api"] }).notNull(),
    kind: text("kind", { enum: ["dated", "relative"] }).notNull(),
    definition: jsonb("definition").$type<Record<string, unknown>>().notNull(),
    /** SHA-256 of the definition as published (a republish of the same content changes nothing). */
    contentHash: text("content_hash").notNull(),
    version: integer("version").notNull().default(0),
    /** draft (saved, not published), published, archived (no new sends). */
    status: text("status", { enum: ["draft", "published", "archived"] }).notNull().default("draft"),
    publishedAt: timestamp("published_at", { withTimezone: true }),
    createdByStaffId: uuid("created_by_staff_id").references(() => staff.id),
    updatedByStaffId: uuid("updated_by_staff_id").references(() => staff.id),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("calendars_tenant_key_uq").on(t.tenantId, t.key)],
);

/**
 * One entry of a published calendar and the post its copy became (reviewed like any post). An
 * entry keeps its id across publishes while its key stays; changed copy gets a new post.
 */
export const calendarEntries = pgTable(
  "calendar_entries",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    calendarId: uuid("calendar_id").notNull().references(() => calendars.id),
    /** Unique within the calendar, e.g. day1-tips. */
    key: text("key").notNull(),
    /** {at: ISO local date-time} | {weekday, time} | {day, time} (relative), as in the definition. */
    when: jsonb("when").$type<Record<string, unknown>>().notNull(),
    /** text, article, image, miniprogram, livestream, interaction, poll. */
    kind: text("kind").notNull(),
    /** single (1:1 mass message via the owner staff) or group (customer group chats). */
    channel: text("channel", { enum: ["single", "group"] }).notNull(),
    postId: uuid("post_id").references(() => posts.id),
    /** Sender for 1:1 sends when set; else each recipient's owner consultant. */
    ownerStaffId: uuid("owner_staff_id").references(() => staff.id),
    /** Skip a recipient who matches (e.g. already holds a tag), as in the definition. */
    conditions: jsonb("conditions").$type<Record<string, unknown>>(),
    /** Service messages the patient asked for (aftercare, reminders): outside the marketing quota and opt-out. */
    service: boolean("service").notNull().default(false),
    /** The calendar version that last wrote this entry; an entry dropped from the file is `removed`. */
    calendarVersion: integer("calendar_version").notNull(),
    removedAt: timestamp("removed_at", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("calendar_entries_key_uq").on(t.calendarId, t.key), index("calendar_entries_post_idx").on(t.postId)],
);

/** A contact in a relative calendar (day N after enrolled_at); ended early by leaving or converting. */
export const calendarEnrollments = pgTable(
  "calendar_enrollments",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    calendarId: uuid("calendar_id").notNull().references(() => calendars.id),
    contactId: uuid("contact_id").notNull().references(() => contacts.id),
    enrolledAt: timestamp("enrolled_at", { withTimezone: true }).notNull(),
    /** segment, tag, outcome, rule, event, api. */
    source: text("source").notNull(),
    sourceRef: text("source_ref"),
    endedAt: timestamp("ended_at", { withTimezone: true }),
    endReason: text("end_reason"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("calendar_enrollments_active_uq").on(t.calendarId, t.contactId).where(sql`${t.endedAt} is null`),
    index("calendar_enrollments_contact_idx").on(t.tenantId, t.contactId),
  ],
);

export const SEND_STATUSES = ["planned", "skipped", "queued", "sending", "sent", "failed", "over_quota", "not_friend", "cancelled"] as const;

/**
 * One post to one recipient: a contact (1:1) or a customer group chat. UNIQUE per (post,
 * recipient, occurrence): planning twice, a retried job or a worker killed mid-batch can never send twice.
 * planned -> queued (handed to a delivery job) -> sending (WeCom called) -> sent | failed |
 * over_quota (WeCom's per-customer cap, status 3) | not_friend (status 2); before sending a send
 * may be skipped (over a quota, opted out, a condition, no sender) or cancelled (enrollment ended).
 */
export const sends = pgTable(
  "sends",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    postId: uuid("post_id").notNull().references(() => posts.id),
    calendarId: uuid("calendar_id").references(() => calendars.id),
    entryId: uuid("entry_id").references(() => calendarEntries.id),
    enrollmentId: uuid("enrollment_id").references(() => calendarEnrollments.id),
    contactId: uuid("contact_id").references(() => contacts.id),
    chatId: text("chat_id"),
    /**
     * Which occurrence of the entry: the local date for weekday, monthday and birthday entries
     * (a weekly entry reaches each recipient once a week), the enrollment for relative calendars
     * (enrolled again, sent again), '' for a one-off date.
     */
    occurrence: text("occurrence").notNull().default(""),
    /** The staff member whose WeCom account sends it (1:1: the owner consultant; group: the chat owner). */
    senderStaffId: uuid("sender_staff_id").references(() => staff.id),
    scheduledAt: timestamp("scheduled_at", { withTimezone: true }).notNull(),
    status: text("status", { enum: SEND_STATUSES }).notNull().default("planned"),
    /** Why a send was skipped or failed, in words a marketer reads. */
    reason: text("reason"),
    service: boolean("service").notNull().default(false),
    /** The rendered text handed to WeCom (after link tracking) and its hash. */
    renderedHash: text("rendered_hash"),
    wecomMsgid: text("wecom_msgid"),
    attempts: integer("attempts").notNull().default(0),
    lastError: text("last_error"),
    queuedAt: timestamp("queued_at", { withTimezone: true }),
    sentAt: timestamp("sent_at", { withTimezone: true }),
    resultAt: timestamp("result_at", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("sends_post_contact_occ_uq").on(t.postId, t.contactId, t.occurrence).where(sql`${t.contactId} is not null`),
    uniqueIndex("sends_post_chat_occ_uq").on(t.postId, t.chatId, t.occurrence).where(sql`${t.chatId} is not null`),
    index("sends_sending_idx").on(t.sentAt).where(sql`${t.status} = 'sending'`),
    index("sends_due_idx").on(t.scheduledAt).where(sql`${t.status} in ('planned', 'queued')`),
    index("sends_tenant_entry_idx").on(t.tenantId, t.entryId, t.status),
    index("sends_tenant_contact_idx").on(t.tenantId, t.contactId, t.scheduledAt),
    index("sends_msgid_idx").on(t.tenantId, t.wecomMsgid),
    // Metrics: contacts a calendar reached in a period (the calendar dimension), read index-only.
    index("sends_tenant_sent_idx").on(t.tenantId, t.sentAt, t.calendarId, t.contactId).where(sql`${t.status} = 'sent'`),
    // Alerts and metrics: failed sends per day.
    index("sends_tenant_failed_idx").on(t.tenantId, t.resultAt).where(sql`${t.status} in ('failed', 'over_quota', 'not_friend')`),
  ],
);

/**
 * The per-contact send ledger, one row per contact and local day: `mass` counts WeCom mass
 * messages (add_msg_template reaches the customer: WeCom's per-customer cap), `marketing` counts
 * marketing sends across every calendar (the fatigue cap). Reserved when a send is planned,
 * released when it is skipped or cancelled.
 */
export const sendQuota = pgTable(
  "send_quota",
  {
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    contactId: uuid("contact_id").notNull().references(() => contacts.id),
    day: date("day").notNull(),
    mass: integer("mass").notNull().default(0),
    marketing: integer("marketing").notNull().default(0),
  },
  (t) => [primaryKey({ name: "send_quota_pk", columns: [t.tenantId, t.contactId, t.day] })],
);

/** Short tracked links, one per (send, url): a click redirects and becomes an article_read event. */
export const trackedLinks = pgTable(
  "tracked_links",
  {
    /** The short code in /l/{code} (random, URL-safe). */
    code: text("code").primaryKey(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    sendId: uuid("send_id").references(() => sends.id),
    postId: uuid("post_id").references(() => posts.id),
    contactId: uuid("contact_id").references(() => contacts.id),
    url: text("url").notNull(),
    /** The article id and topic the click reports (article_read). */
    articleId: text("article_id"),
    topic: text("topic"),
    clicks: integer("clicks").notNull().default(0),
    firstClickAt: timestamp("first_click_at", { withTimezone: true }),
    lastClickAt: timestamp("last_click_at", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("tracked_links_send_url_uq").on(t.sendId, t.url), index("tracked_links_tenant_post_idx").on(t.tenantId, t.postId)],
);

/**
 * Consent history (个人信息保护法): every grant and opt-out with time, source and actor. The
 * contact's current state is contacts.marketing_opt_out_at (null: may receive marketing).
 */
export const consents = pgTable(
  "consents",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    contactId: uuid("contact_id").notNull().references(() => contacts.id),
    /** granted or revoked (opt-out). */
    status: text("status", { enum: ["granted", "revoked"] }).notNull(),
    /** message (退订), wecom_delete (deleted the consultant), staff, api, import. */
    source: text("source").notNull(),
    actorStaffId: uuid("actor_staff_id").references(() => staff.id),
    eventId: uuid("event_id"),
    note: text("note"),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("consents_contact_idx").on(t.tenantId, t.contactId, t.at)],
);
