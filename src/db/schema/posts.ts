import { index, integer, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import { POST_KINDS } from "../../domain/compliance/posts";
import { staff, tenants } from "./tenancy";

export { POST_KINDS };
export const POST_STATUSES = ["draft", "in_review", "approved", "rejected", "scheduled", "sent"] as const;

/**
 * Outgoing copy of every kind. `body` may be a handlebars template; `sample_data` fills it for the
 * rendered check. `content_hash` is the SHA-256 of (kind, title, body) and changes with every edit;
 * approvals bind to it, and the send gate compares it again at send time.
 */
export const posts = pgTable(
  "posts",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    kind: text("kind", { enum: POST_KINDS }).notNull(),
    title: text("title"),
    body: text("body").notNull(),
    sampleData: jsonb("sample_data").$type<Record<string, unknown>>().notNull().default({}),
    status: text("status", { enum: POST_STATUSES }).notNull().default("draft"),
    contentHash: text("content_hash").notNull(),
    /** Review levels this post needs (compliance-rules/policy.yaml, fixed when it is submitted). */
    levelsRequired: integer("levels_required").notNull().default(1),
    /** The level awaiting a decision while in review. */
    reviewLevel: integer("review_level"),
    /** The last check: banned-word list version and findings (as written and as rendered). */
    listVersion: text("list_version"),
    findings: jsonb("findings").$type<unknown[]>().notNull().default([]),
    createdByStaffId: uuid("created_by_staff_id").references(() => staff.id),
    updatedByStaffId: uuid("updated_by_staff_id").references(() => staff.id),
    submittedAt: timestamp("submitted_at", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("posts_tenant_status_idx").on(t.tenantId, t.status, t.submittedAt), index("posts_tenant_created_idx").on(t.tenantId, t.createdAt, t.id)],
);

/** Every review decision, bound to the content hash it saw. Never updated or deleted. */
export const postReviews = pgTable(
  "post_reviews",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    postId: uuid("post_id").notNull().references(() => posts.id),
    level: integer("level").notNull(),
    reviewerStaffId: uuid("reviewer_staff_id").notNull().references(() => staff.id),
    decision: text("decision", { enum: ["approve", "reject"] }).notNull(),
    contentHash: text("content_hash").notNull(),
    /** Per finding: {term, start, end, in?, comment} (`in`: title, body or rendered, the finding's text); plus a general note. */
    comments: jsonb("comments").$type<{ term: string; start: number; end: number; in?: "title" | "body" | "rendered"; comment: string }[]>().notNull().default([]),
    note: text("note"),
    /** An admin approving copy with blocking findings says why. */
    overrideReason: text("override_reason"),
    listVersion: text("list_version"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("post_reviews_post_idx").on(t.postId, t.createdAt), uniqueIndex("post_reviews_level_hash_uq").on(t.postId, t.contentHash, t.level)],
);
