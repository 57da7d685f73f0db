import { sql } from "drizzle-orm";
import { bigint, bigserial, boolean, index, integer, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import { tenants } from "./tenancy";

/** A tag dimension (visit, spending, need, engagement, ...). */
export const tagGroups = pgTable(
  "tag_groups",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    key: text("key").notNull(),
    name: text("name").notNull(),
    /** A contact holds at most one tag of an exclusive group (e.g. visit status). */
    exclusive: boolean("exclusive").notNull().default(false),
    wecomGroupId: text("wecom_group_id"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("tag_groups_tenant_key_uq").on(t.tenantId, t.key)],
);

export const tags = pgTable(
  "tags",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    groupId: uuid("group_id").notNull().references(() => tagGroups.id),
    name: text("name").notNull(),
    sortOrder: integer("sort_order").notNull().default(0),
    /** The tag's bit in contact_tag_state.tag_bits: 0, 1, 2 … per tenant, given by a trigger on insert. */
    ordinal: integer("ordinal"),
    /** WeCom corp tag id (et...). */
    wecomTagId: text("wecom_tag_id"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("tags_tenant_group_name_uq").on(t.tenantId, t.groupId, t.name), uniqueIndex("tags_tenant_ordinal_uq").on(t.tenantId, t.ordinal)],
);

export const TAG_SOURCES = ["rule", "manual", "import", "wecom"] as const;

/**
 * Current tags of a contact, each with where it came from. Like tag_history, a high-volume table
 * written only by the services, in bulk: it has no foreign keys (each is a trigger call per row,
 * which made a backfill of millions of tags three times slower). Contacts and tags are never
 * hard-deleted, and every writer takes the tenant's contact and tag ids from those tables.
 */
export const contactTags = pgTable(
  "contact_tags",
  {
    tenantId: uuid("tenant_id").notNull(),
    contactId: uuid("contact_id").notNull(),
    tagId: uuid("tag_id").notNull(),
    source: text("source", { enum: TAG_SOURCES }).notNull(),
    ruleId: text("rule_id"),
    ruleVersion: integer("rule_version"),
    eventId: uuid("event_id"),
    actorStaffId: uuid("actor_staff_id"),
    addedAt: timestamp("added_at", { withTimezone: true }).notNull().defaultNow(),
    /**
     * True only when the tag is one of the tenant's first 63 (ordinal < 63, which never changes):
     * its members are then found through contact_tag_state.tag_bits, and the tag index leaves the
     * row out. Set by the set-based pass; other writers leave false, which only indexes the row.
     */
    inTagBits: boolean("in_tag_bits").notNull().default(false),
  },
  (t) => [
    primaryKey({ columns: [t.contactId, t.tagId] }),
    // Members of a tag without a bit (the 64th tag of a tenant onwards): segment counts walk one
    // such tag's members index-only (contact_id included) and probe the others by primary key. Tags
    // with a bit are found through the bits, so their rows stay out: maintaining this index for the
    // millions of tags a backfill writes cost about as much as the rest of its writes to
    // contact_tags (3.5 s of 29 at a million contacts). A tag id belongs to one tenant (the count
    // looks it up in the tenant's tags, in the same statement), so the index leaves tenant_id out.
    index("contact_tags_tag_contact_idx").on(t.tagId, t.contactId).where(sql`not ${t.inTagBits}`),
  ],
);

/**
 * Every add and remove, never deleted. No foreign keys, for the reason given at contact_tags. One
 * index, the primary key, which is also the timeline's (a contact's history, newest first): a
 * backfill writes a history row per tag changed, and each index costs as much as the row.
 */
export const tagHistory = pgTable(
  "tag_history",
  {
    id: bigserial("id", { mode: "number" }).notNull(),
    tenantId: uuid("tenant_id").notNull(),
    contactId: uuid("contact_id").notNull(),
    tagId: uuid("tag_id").notNull(),
    action: text("action", { enum: ["add", "remove"] }).notNull(),
    source: text("source", { enum: TAG_SOURCES }).notNull(),
    ruleId: text("rule_id"),
    ruleVersion: integer("rule_version"),
    eventId: uuid("event_id"),
    actorStaffId: uuid("actor_staff_id"),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ name: "tag_history_pkey", columns: [t.tenantId, t.contactId, t.at, t.id] })],
);

/**
 * Per contact, the state of its tags that the passes and segment counts read, one narrow row:
 * - recheck_at: the earliest moment its time-based tags (rules with `schedule: daily`) may change
 *   without new facts: an event leaving a rule's window, a days-since threshold crossed, a
 *   decaying score reaching a threshold. The nightly pass evaluates only contacts that are due;
 *   every contact starts due (a trigger adds the row) and anything that changes its events, tags
 *   or fields makes it due again ('-infinity'). NULL: nothing time-based can change.
 * - tag_bits: the contact's tags as bits (bit n = the tenant's tag of ordinal n, for n < 63), so a
 *   segment over tags is counted in one scan of this table instead of joins over contact_tags.
 * No index besides the key, and pages 90% full (set in the migration): passes rewrite many rows as
 * HOT updates, and counts scan it sequentially.
 */
export const contactTagState = pgTable("contact_tag_state", {
  contactId: uuid("contact_id").primaryKey(),
  tenantId: uuid("tenant_id").notNull(),
  recheckAt: timestamp("recheck_at", { withTimezone: true }),
  tagBits: bigint("tag_bits", { mode: "bigint" }).notNull().default(sql`0`),
});
