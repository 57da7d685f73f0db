import { sql } from "drizzle-orm";
import { boolean, check, foreignKey, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import { contacts } from "./contacts";
import { clinics, staff, tenants } from "./tenancy";

export const LEAD_STATUSES = ["open", "converted", "lost"] as const;
export const LEAD_GRADES = ["A", "B", "C", "D"] as const;

/**
 * A sales opportunity on a contact. Invariants the database holds, not just the code:
 * - one open lead per contact (partial unique index);
 * - an open lead's owner is the contact's owner: (contact_id, active_owner_staff_id) references
 *   contacts (id, owner_staff_id), checked at commit, so no lead is owned by a consultant who does
 *   not own the contact (no 撞单) and a contact never has two owners through two leads;
 * - active_owner_staff_id is set only while the lead is open (NULL: in the pool, 公海).
 * owner_staff_id stays the consultant of record after the lead closes (scorecards).
 */
export const leads = pgTable(
  "leads",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    contactId: uuid("contact_id").notNull(),
    clinicId: uuid("clinic_id").references(() => clinics.id),
    status: text("status", { enum: LEAD_STATUSES }).notNull().default("open"),
    /** Where the first signal came from: rule, api, import, wecom_qr, pool, ... */
    source: text("source").notNull(),
    /** The rule id, channel id or import batch behind the source. */
    sourceRef: text("source_ref"),
    /** The need type the lead is about (skill match), when known. */
    need: text("need"),
    /** Sum of the signals' scores (a repeat signal raises it). */
    signalScore: integer("signal_score").notNull().default(0),
    signals: integer("signals").notNull().default(1),
    lastSignalAt: timestamp("last_signal_at", { withTimezone: true }).notNull().defaultNow(),
    /** Grading score (0-100) and grade, recomputed when their inputs change. */
    score: integer("score").notNull().default(0),
    grade: text("grade", { enum: LEAD_GRADES }).notNull().default("D"),
    ownerStaffId: uuid("owner_staff_id").references(() => staff.id),
    activeOwnerStaffId: uuid("active_owner_staff_id"),
    assignedAt: timestamp("assigned_at", { withTimezone: true }),
    /** First-contact deadline of the current owner (SLA), and when contact happened. */
    firstContactDueAt: timestamp("first_contact_due_at", { withTimezone: true }),
    firstContactedAt: timestamp("first_contacted_at", { withTimezone: true }),
    closedAt: timestamp("closed_at", { withTimezone: true }),
    closedReason: text("closed_reason"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("leads_one_open_per_contact_uq").on(t.tenantId, t.contactId).where(sql`${t.status} = 'open'`),
    index("leads_tenant_owner_idx").on(t.tenantId, t.activeOwnerStaffId, t.grade),
    index("leads_tenant_pool_idx").on(t.tenantId, t.createdAt).where(sql`${t.status} = 'open' and ${t.activeOwnerStaffId} is null`),
    index("leads_tenant_created_idx").on(t.tenantId, t.createdAt, t.id),
    // Metrics: leads assigned in a period (response time), deadlines falling in a period (SLA breach rate).
    index("leads_tenant_assigned_idx").on(t.tenantId, t.assignedAt),
    index("leads_tenant_first_due_idx").on(t.tenantId, t.firstContactDueAt),
    // First-contact timers still running (rebuilt into delayed jobs on start, swept every minute).
    index("leads_sla_due_idx").on(t.firstContactDueAt).where(sql`${t.status} = 'open' and ${t.activeOwnerStaffId} is not null and ${t.firstContactedAt} is null`),
    check("leads_active_owner_open", sql`${t.activeOwnerStaffId} is null or (${t.status} = 'open' and ${t.activeOwnerStaffId} = ${t.ownerStaffId})`),
    foreignKey({ name: "leads_contact_owner_fk", columns: [t.contactId, t.activeOwnerStaffId], foreignColumns: [contacts.id, contacts.ownerStaffId] }),
  ],
);

/** Every change of a lead's owner (or to and from the pool), with who did it and why. */
export const leadAssignments = pgTable(
  "lead_assignments",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    leadId: uuid("lead_id").notNull().references(() => leads.id),
    contactId: uuid("contact_id").notNull(),
    fromStaffId: uuid("from_staff_id").references(() => staff.id),
    /** NULL: to the pool. */
    toStaffId: uuid("to_staff_id").references(() => staff.id),
    /** assign (by strategy), direct (the contact added this consultant), claim (from the pool), reassign, reclaim (SLA), release, resign. */
    kind: text("kind").notNull(),
    /** The strategy step that chose the consultant (assign), e.g. skill, round_robin. */
    strategy: text("strategy"),
    reason: text("reason"),
    actorStaffId: uuid("actor_staff_id").references(() => staff.id),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("lead_assignments_lead_idx").on(t.leadId, t.at), index("lead_assignments_tenant_to_idx").on(t.tenantId, t.toStaffId, t.kind, t.at)],
);

/** Grade changes: from, to, the score and what it was made of. */
export const leadGradeChanges = pgTable(
  "lead_grade_changes",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    leadId: uuid("lead_id").notNull().references(() => leads.id),
    fromGrade: text("from_grade"),
    toGrade: text("to_grade").notNull(),
    score: integer("score").notNull(),
    parts: jsonb("parts").$type<Record<string, number>>().notNull(),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("lead_grade_changes_lead_idx").on(t.leadId, t.at)],
);

/**
 * Lead settings per tenant (clinic_id NULL) and per clinic: grading weights and thresholds, the
 * assignment chain, pool claim cap, SLAs. A clinic without its own row uses the tenant's.
 */
export const leadSettings = pgTable(
  "lead_settings",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    clinicId: uuid("clinic_id").references(() => clinics.id),
    config: jsonb("config").$type<Record<string, unknown>>().notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("lead_settings_scope_uq").on(t.tenantId, sql`coalesce(${t.clinicId}, '00000000-0000-0000-0000-000000000000'::uuid)`)],
);

/** Round-robin and weighted turns per consultant within a scope (tenant or clinic), for fair shares. */
export const leadTurns = pgTable(
  "lead_turns",
  {
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    /** "tenant" or the clinic id. */
    scope: text("scope").notNull(),
    staffId: uuid("staff_id").notNull().references(() => staff.id),
    turns: integer("turns").notNull().default(0),
    lastAt: timestamp("last_at", { withTimezone: true }),
  },
  (t) => [uniqueIndex("lead_turns_pk").on(t.tenantId, t.scope, t.staffId)],
);

/** First-contact deadlines missed: who missed which deadline, and what happened to the lead. */
export const leadSlaBreaches = pgTable(
  "lead_sla_breaches",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    leadId: uuid("lead_id").notNull().references(() => leads.id),
    /** The owner who missed the deadline. */
    staffId: uuid("staff_id").notNull().references(() => staff.id),
    dueAt: timestamp("due_at", { withTimezone: true }).notNull(),
    breachedAt: timestamp("breached_at", { withTimezone: true }).notNull().defaultNow(),
    /** reassign (routed to another consultant), pool (returned to 公海), kept (nobody else could take it). */
    action: text("action").notNull(),
    toStaffId: uuid("to_staff_id").references(() => staff.id),
  },
  // One breach per deadline: a retried or doubled timer job records it once.
  (t) => [uniqueIndex("lead_sla_breaches_deadline_uq").on(t.leadId, t.dueAt), index("lead_sla_breaches_tenant_idx").on(t.tenantId, t.staffId, t.breachedAt), index("lead_sla_breaches_due_idx").on(t.tenantId, t.dueAt)],
);

/** Contact attempts a consultant records on a lead (the first one meets the first-contact SLA). */
export const leadContactAttempts = pgTable(
  "lead_contact_attempts",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    leadId: uuid("lead_id").notNull().references(() => leads.id),
    contactId: uuid("contact_id").notNull(),
    staffId: uuid("staff_id").references(() => staff.id),
    /** wecom, phone, sms, visit, other. */
    channel: text("channel").notNull(),
    /** reached, no_answer, busy, refused, wrong_number, left_message. */
    outcome: text("outcome").notNull(),
    note: text("note"),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("lead_contact_attempts_lead_idx").on(t.leadId, t.at)],
);

/**
 * Follow-up SOP templates: which leads they apply to (by source, need, grade; empty = any) and
 * their steps (day offset and local time, a task title, optionally an approved post sent to the
 * patient). The highest priority matching template of the lead's clinic, else the tenant's, wins.
 */
export const sopTemplates = pgTable(
  "sop_templates",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    clinicId: uuid("clinic_id").references(() => clinics.id),
    name: text("name").notNull(),
    match: jsonb("match").$type<Record<string, unknown>>().notNull(),
    steps: jsonb("steps").$type<Record<string, unknown>[]>().notNull(),
    priority: integer("priority").notNull().default(0),
    active: boolean("active").notNull().default(true),
    createdByStaffId: uuid("created_by_staff_id").references(() => staff.id),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("sop_templates_tenant_idx").on(t.tenantId, t.active)],
);

export const TASK_STATUSES = ["open", "done", "skipped", "cancelled"] as const;

/** One step of a lead's SOP: a task for the lead's owner, due at a time, maybe with copy to send. */
export const leadTasks = pgTable(
  "lead_tasks",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    leadId: uuid("lead_id").notNull().references(() => leads.id),
    contactId: uuid("contact_id").notNull(),
    /** The lead's owner (follows the lead while the task is open; NULL while the lead is in the pool). */
    staffId: uuid("staff_id").references(() => staff.id),
    templateId: uuid("template_id").references(() => sopTemplates.id),
    stepKey: text("step_key").notNull(),
    title: text("title").notNull(),
    /** Approved copy to send to the patient for this step (through the compliance gate). */
    postId: uuid("post_id"),
    dueAt: timestamp("due_at", { withTimezone: true }).notNull(),
    status: text("status", { enum: TASK_STATUSES }).notNull().default("open"),
    completedAt: timestamp("completed_at", { withTimezone: true }),
    completedByStaffId: uuid("completed_by_staff_id").references(() => staff.id),
    skipReason: text("skip_reason"),
    /** When the step's message went to the patient, and WeCom's msgid. */
    sentAt: timestamp("sent_at", { withTimezone: true }),
    sendRef: text("send_ref"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("lead_tasks_step_uq").on(t.leadId, t.templateId, t.stepKey),
    index("lead_tasks_staff_due_idx").on(t.tenantId, t.staffId, t.status, t.dueAt),
    index("lead_tasks_lead_idx").on(t.leadId, t.dueAt),
  ],
);

/**
 * Messages to staff through the WeCom app (SLA reminders, digests, "this contact is already
 * owned"): an outbox, written in the transaction that decides to notify and delivered by a job,
 * so a crash loses none and a retry sends none twice (dedupe_key).
 */
export const staffNotifications = pgTable(
  "staff_notifications",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    staffId: uuid("staff_id").notNull().references(() => staff.id),
    /** sla_reminder, sla_breach, digest, owner_conflict, lead_assigned, transfer. */
    kind: text("kind").notNull(),
    leadId: uuid("lead_id"),
    contactId: uuid("contact_id"),
    title: text("title").notNull(),
    body: text("body").notNull(),
    /** One notification per key: the same reminder is never queued twice. */
    dedupeKey: text("dedupe_key").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    sentAt: timestamp("sent_at", { withTimezone: true }),
    /** sent, no_wecom (WeCom not set up or the staff has no userid: shown in the console only), failed. */
    outcome: text("outcome"),
    attempts: integer("attempts").notNull().default(0),
    lastError: text("last_error"),
  },
  (t) => [
    uniqueIndex("staff_notifications_dedupe_uq").on(t.tenantId, t.dedupeKey),
    index("staff_notifications_staff_idx").on(t.tenantId, t.staffId, t.createdAt),
    index("staff_notifications_unsent_idx").on(t.createdAt).where(sql`${t.sentAt} is null`),
  ],
);

/**
 * WeCom customer transfers Siyu asked for (离职继承 and on-the-job 在职继承), one row per contact
 * and request, with WeCom's answer and the final status from transfer_result.
 */
export const wecomTransfers = pgTable(
  "wecom_transfers",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    contactId: uuid("contact_id").notNull(),
    externalUserId: text("external_user_id").notNull(),
    handoverStaffId: uuid("handover_staff_id").notNull().references(() => staff.id),
    takeoverStaffId: uuid("takeover_staff_id").notNull().references(() => staff.id),
    /** resigned or on_job. */
    kind: text("kind").notNull(),
    /** requested (WeCom accepted, waiting), done, failed (errcode or refused), skipped (no WeCom relation). */
    status: text("status").notNull(),
    errcode: integer("errcode"),
    detail: text("detail"),
    requestedAt: timestamp("requested_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("wecom_transfers_tenant_idx").on(t.tenantId, t.handoverStaffId, t.requestedAt), index("wecom_transfers_contact_idx").on(t.tenantId, t.contactId, t.requestedAt)],
);
