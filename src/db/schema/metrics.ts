import { sql } from "drizzle-orm";
import { boolean, doublePrecision, index, jsonb, numeric, pgTable, smallint, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import { clinics, staff, tenants } from "./tenancy";

export const FACT_KINDS = ["appointment", "visit", "consultation", "purchase", "refund", "survey"] as const;
export type FactKind = (typeof FACT_KINDS)[number];

/**
 * The business facts the funnel counts, one row per event (appointments, visits, consultations,
 * purchases, refunds, survey answers), written by the events worker in the transaction that applies
 * the event. Dimensions are frozen when the event is applied: the consultant credited (the event's
 * staffId, else the contact's owner then), the clinic (the event's clinicId, else the contact's,
 * else the consultant's) and the channel (the contact's channel code state, else its source), so a
 * later reassignment does not rewrite last month's scorecard. No foreign keys (high volume, like
 * contact_tags); every writer takes ids from the tenant's own rows.
 */
export const metricFacts = pgTable(
  "metric_facts",
  {
    eventId: uuid("event_id").primaryKey(),
    tenantId: uuid("tenant_id").notNull(),
    contactId: uuid("contact_id").notNull(),
    kind: text("kind", { enum: FACT_KINDS }).notNull(),
    occurredAt: timestamp("occurred_at", { withTimezone: true }).notNull(),
    staffId: uuid("staff_id"),
    clinicId: uuid("clinic_id"),
    /** The contact's channel code state (渠道活码) when it has one, else its source (wecom, import, referral, ...). */
    channel: text("channel"),
    /** Consultations: converted or lost. */
    outcome: text("outcome"),
    /** Consultations: online or in_person. */
    mode: text("mode"),
    /** Lost consultations: the reason. */
    reason: text("reason"),
    /** Yuan: purchases, refunds, converted consultations. */
    amount: numeric("amount", { precision: 14, scale: 2, mode: "number" }),
    /** Survey answers: NPS 0-10. */
    score: smallint("score"),
    items: text("items").array(),
  },
  (t) => [
    index("metric_facts_kind_time_idx").on(t.tenantId, t.kind, t.occurredAt),
    index("metric_facts_staff_idx").on(t.tenantId, t.staffId, t.kind, t.occurredAt),
    index("metric_facts_contact_idx").on(t.tenantId, t.contactId, t.occurredAt),
  ],
);

export const FOLLOW_UP_STATUSES = ["open", "done", "skipped", "cancelled"] as const;

/**
 * Post-visit follow-ups (回访): a task for the contact's consultant, due some days after a visit, one
 * per visit. 回访率 = done / due.
 */
export const followUps = pgTable(
  "follow_ups",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    contactId: uuid("contact_id").notNull(),
    /** The consultant who should call (the contact's owner; NULL when it has none). */
    staffId: uuid("staff_id").references(() => staff.id),
    clinicId: uuid("clinic_id").references(() => clinics.id),
    /** The visit event this follows up. */
    visitEventId: uuid("visit_event_id").notNull(),
    /** post_visit (回访 after a visit). */
    kind: text("kind").notNull().default("post_visit"),
    dueAt: timestamp("due_at", { withTimezone: true }).notNull(),
    status: text("status", { enum: FOLLOW_UP_STATUSES }).notNull().default("open"),
    completedAt: timestamp("completed_at", { withTimezone: true }),
    completedByStaffId: uuid("completed_by_staff_id").references(() => staff.id),
    /** What the patient said, or why it was skipped. */
    note: text("note"),
    surveyId: uuid("survey_id"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("follow_ups_visit_uq").on(t.tenantId, t.visitEventId, t.kind),
    index("follow_ups_staff_idx").on(t.tenantId, t.staffId, t.status, t.dueAt),
    index("follow_ups_due_idx").on(t.tenantId, t.dueAt),
  ],
);

/**
 * Satisfaction surveys (NPS) sent after a visit: a link with an unguessable token the patient opens
 * without signing in; the answer becomes a survey_answered event.
 */
export const surveys = pgTable(
  "surveys",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    contactId: uuid("contact_id").notNull(),
    staffId: uuid("staff_id").references(() => staff.id),
    clinicId: uuid("clinic_id").references(() => clinics.id),
    visitEventId: uuid("visit_event_id"),
    /** Random, URL-safe; the survey page's only key. */
    token: text("token").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    sentAt: timestamp("sent_at", { withTimezone: true }),
    answeredAt: timestamp("answered_at", { withTimezone: true }),
    score: smallint("score"),
    comment: text("comment"),
    /** The survey_answered event the answer became. */
    eventId: uuid("event_id"),
  },
  (t) => [
    uniqueIndex("surveys_token_uq").on(t.token),
    uniqueIndex("surveys_visit_uq").on(t.tenantId, t.visitEventId),
    index("surveys_tenant_created_idx").on(t.tenantId, t.createdAt),
  ],
);

/** Analytics settings per tenant (attribution window, follow-up timing, ...), validated JSON with defaults. */
export const analyticsSettings = pgTable("analytics_settings", {
  tenantId: uuid("tenant_id").primaryKey().references(() => tenants.id),
  config: jsonb("config").$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});

/**
 * Anomaly alert rules (数据异常预警) over the funnel metrics, e.g. today's 成交率 more than 30% under
 * its 4-week mean for the weekday.
 */
export const alertRules = pgTable(
  "alert_rules",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    name: text("name").notNull(),
    /** The metric key (docs/metrics.md), e.g. deal_rate, sla_breach_rate, send_failures. */
    metric: text("metric").notNull(),
    /** The test and its parameters (validated JSON), e.g. { kind: "drop_vs_weekday_mean", pct: 30, weeks: 4 }. */
    condition: jsonb("condition").$type<Record<string, unknown>>().notNull(),
    /** Optional scope, e.g. { clinicId }. */
    scope: jsonb("scope").$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
    enabled: boolean("enabled").notNull().default(true),
    createdByStaffId: uuid("created_by_staff_id").references(() => staff.id),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("alert_rules_tenant_idx").on(t.tenantId)],
);

/**
 * An episode of an alert: opened when its rule's test first fails, kept open (and never notified
 * again) while it keeps failing, closed when the metric recovers. At most one open episode per rule
 * and scope, held by a partial unique index.
 */
export const alertEpisodes = pgTable(
  "alert_episodes",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    ruleId: uuid("rule_id").notNull().references(() => alertRules.id),
    /** Which slice fired, e.g. "all" or a clinic id. */
    scopeKey: text("scope_key").notNull().default("all"),
    openedAt: timestamp("opened_at", { withTimezone: true }).notNull().defaultNow(),
    lastSeenAt: timestamp("last_seen_at", { withTimezone: true }).notNull().defaultNow(),
    closedAt: timestamp("closed_at", { withTimezone: true }),
    value: doublePrecision("value"),
    baseline: doublePrecision("baseline"),
    detail: jsonb("detail").$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
    notifiedAt: timestamp("notified_at", { withTimezone: true }),
    /** A manager saw it and is handling it (it still closes when the metric recovers). */
    ackedAt: timestamp("acked_at", { withTimezone: true }),
    ackedByStaffId: uuid("acked_by_staff_id").references(() => staff.id),
  },
  (t) => [
    uniqueIndex("alert_episodes_open_uq").on(t.ruleId, t.scopeKey).where(sql`${t.closedAt} is null`),
    index("alert_episodes_tenant_idx").on(t.tenantId, t.openedAt),
  ],
);
